"""The SLURM profile against a real single-node SLURM cluster on localhost.

Skipped, with the reason, where the cluster cannot start (no Debian SLURM/munge packages:
``make slurm-deps``; not root; a foreign /etc/slurm/slurm.conf; daemons that fail to
start or whose node never becomes idle). The run goes through
``--profile`` with profiles/slurm's settings and the test overlay ``tests/slurm_overlay``
merged into them as a user merges their site's values into a copy (no accounting, a 2-CPU
node without GPU), and no workflow profile.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import N_SCANS, REPO, TINY_CONFIG, snakemake
from local_slurm import LocalSlurm, missing_requirements

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

# The tiny workflow with the ROI model only: the same preprocessing, folds and ridge
# predictions as the local run, in fewer DAG levels (each costs ~10 s of polling).
SLURM_CONFIG = {**TINY_CONFIG, "models": {"names": ["ridge_roi"]}}


def merged(base: dict, overlay: dict) -> dict:
    """``overlay`` over ``base``, dictionaries merged key by key."""
    out = dict(base)
    for key, value in overlay.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merged(out[key], value) if both else value
    return out


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """``--profile`` of a copy of profiles/slurm with the local cluster's values merged in."""
    folder = tmp_path_factory.mktemp("profile")
    shipped, overlay = (
        yaml.safe_load((REPO / p / "config.yaml").read_text())
        for p in ("profiles/slurm", "tests/slurm_overlay")
    )
    (folder / "config.yaml").write_text(yaml.safe_dump(merged(shipped, overlay)))
    return ["--profile", str(folder)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    reason = missing_requirements()
    if reason:
        pytest.skip(f"no local SLURM cluster: {reason}")
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as err:
        cluster.stop()
        pytest.skip(f"the local SLURM cluster did not start: {err}")
    yield cluster
    cluster.stop()


def job_counts(output: str) -> dict[str, int]:
    """The "Job stats" table of a Snakemake run: rule → number of jobs."""
    return {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", output, flags=re.MULTILINE)}


def submitted(output: str) -> int:
    """How many SLURM jobs the run submitted (sbatch calls, retries included)."""
    return len(re.findall(r"has been submitted with SLURM jobid", output))


def test_slurm_run_reports_a_failed_job_and_resumes_after_the_fix(
    cluster, profile, tmp_path, tiny_run
):
    # 20 folds need more healthy controls than the tiny cohort has: make_folds fails on
    # the cluster after preprocessing finished.
    broken = {**SLURM_CONFIG, "folds": {"k": 20}}
    first = snakemake(tmp_path, broken, *profile, timeout=600)
    output = first.stdout + first.stderr
    assert first.returncode != 0, output[-3000:]
    assert "SLURM status is: 'FAILED'" in output, output[-3000:]
    assert "Error in rule make_folds" in output
    assert "Trying to restart job" in output  # the profile's retries
    assert "lower `folds.k`" in (tmp_path / "results/logs/make_folds.log").read_text()
    done = sorted((tmp_path / "results/preproc").glob("sub-*/ses-*/anat/*_desc-qc_T1w.json"))
    assert len(done) == N_SCANS
    # grouping: the 14 preprocessing jobs went to SLURM as 3 group jobs of at most 5
    groups = set(re.findall(r"slurm_logs/group_preprocess_preprocess_t1w/(\d+)\.log", output))
    assert len(groups) == 3

    second = snakemake(tmp_path, SLURM_CONFIG, *profile, timeout=600)
    output = second.stdout + second.stderr
    assert second.returncode == 0, output[-3000:]
    counts = job_counts(output)
    assert "preprocess_t1w" not in counts and "simulate_cohort" not in counts, counts
    assert counts["make_folds"] == 1 and counts["train"] == 2
    assert submitted(output) == counts["total"] - 1  # every job but the local `all`

    # the cluster computed what the local run did
    for table in ("folds.tsv", "regions/roi_volumes.tsv"):
        expected = pd.read_csv(tiny_run / "results" / table, sep="\t")
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "results" / table, sep="\t"), expected)
    for fold in (0, 1):
        name = Path(f"results/models/ridge_roi/fold-{fold}/predictions.tsv")
        expected = pd.read_csv(tiny_run / name, sep="\t")
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / name, sep="\t"), expected)
    assert (tmp_path / "results/report/predicted_vs_age.png").is_file()
