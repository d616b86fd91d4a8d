"""Faults on the tiny workflow: a real dataset is never written, bad input computes nothing,
a run killed with SIGKILL resumes to the outputs of an unbroken run, exactly.

Tests run as root in CI, and root ignores permission bits, so "read-only" is checked by a
snapshot of the dataset (every path, size, modification time and checksum) before and
after, as well as by the permission bits that stop any other user.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from conftest import TINY_CONFIG, offline_env, snakemake, snakemake_command

pytestmark = pytest.mark.workflow

# outputs that differ between runs by design: where the data lives, logs, timings, and
# what only a simulated cohort has (its truth, the planted-atrophy check, figures that
# draw the truth)
NOT_COMPARED = ("simulated/", "logs/", "benchmarks/", "report.html")
SIMULATED_ONLY = (
    "maps/stats/truth_validation.tsv",
    "maps/stats/planted_response.tsv",
    "report/local_maps.png",
    "report/predicted_vs_age.png",
    "report/brain_pad_by_group.png",
    "interpret/truth.tsv",
    "interpret/truth_clusters.tsv",
    "report/front.rst",  # its headline table has the truth beside each group
)
# columns and fields naming the input scan or dataset
WHERE_THE_DATA_IS = ("path", "source", "SourceDatasets", "DatasetLinks")


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file and folder under ``root``: size, modification time and SHA-256."""
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        found[str(path.relative_to(root))] = (path.is_dir(), info.st_size, info.st_mtime_ns, digest)
    return found


def read_only_copy(source: Path, target: Path) -> Path:
    """A copy of a BIDS dataset with every write permission removed."""
    shutil.copytree(source, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    return target


def restore_permissions(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def compare_outputs(expected: Path, found: Path) -> list[str]:
    """Files of ``expected``'s results/ that ``found`` lacks or holds with other bytes.

    The manifest's ``path`` column names each run's own dataset and is left out; TSVs of
    the simulated run may carry extra truth columns, which a real dataset cannot have.
    """
    differences = []
    for path in sorted((expected / "results").rglob("*")):
        rel = str(path.relative_to(expected / "results"))
        if not path.is_file() or rel.startswith(NOT_COMPARED) or rel in SIMULATED_ONLY:
            continue
        other = found / "results" / rel
        if not other.is_file():
            differences.append(f"missing: {rel}")
        elif path.read_bytes() != other.read_bytes() and not same_content(path, other):
            differences.append(f"differs: {rel}")
    return differences


def same_content(expected: Path, found: Path) -> bool:
    """Two TSVs (JSONs) equal, as text, in every column (field) of ``found`` but the ones
    naming the input scan; the simulated run's TSVs may have extra truth columns."""
    if expected.suffix == ".json":
        a, b = (json.loads(p.read_text()) for p in (expected, found))
        for key in WHERE_THE_DATA_IS:
            a.pop(key, None)
            b.pop(key, None)
        return a == b
    if expected.suffix != ".tsv":
        return False
    a = pd.read_csv(expected, sep="\t", dtype=str, keep_default_na=False)
    b = pd.read_csv(found, sep="\t", dtype=str, keep_default_na=False)
    columns = [c for c in b.columns if c not in WHERE_THE_DATA_IS]
    extra = set(a.columns) - set(b.columns)
    truthful = all("true" in c or "floor" in c or "truth" in c for c in extra)
    return truthful and set(columns) <= set(a.columns) and a[columns].equals(b[columns])


def finished_checkpoints(workdir: Path):
    """Checkpoints written whole (not the ``.partial`` name one is written under)."""
    return (workdir / "results/models").glob("*/fold-*/[!.]*checkpoint.pt")


def test_a_killed_run_on_a_read_only_real_dataset_resumes_to_identical_outputs(tiny_run, tmp_path):
    """The tiny cohort as a real dataset: SIGKILL to Snakemake and every job while a network
    trains, `--unlock`, re-run: the outputs are byte for byte those of the unbroken
    simulated run (tiny_run), and the dataset was never touched."""
    bids = read_only_copy(tiny_run / "results/simulated", tmp_path / "bids")
    before = snapshot(bids)
    workdir = tmp_path / "run"
    workdir.mkdir()
    config = {**TINY_CONFIG, "bids_dir": str(bids)}
    try:
        plan = snakemake(workdir, config, "-n")
        assert plan.returncode == 0, plan.stderr[-3000:]
        assert "simulate_cohort" not in plan.stdout  # the simulator is not even planned
        with open(tmp_path / "killed.log", "w") as log:
            run = subprocess.Popen(
                snakemake_command(workdir, config),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=offline_env(),
                start_new_session=True,  # its own process group: Snakemake and its jobs
            )
            checkpoint = None
            deadline = time.monotonic() + 600
            while checkpoint is None and run.poll() is None and time.monotonic() < deadline:
                if next(finished_checkpoints(workdir), None) is not None:
                    # freeze every job, then look again: a two-epoch network may have
                    # finished (and removed its checkpoint) since the first look
                    os.killpg(run.pid, signal.SIGSTOP)
                    checkpoint = next(finished_checkpoints(workdir), None)
                    if checkpoint is None:
                        os.killpg(run.pid, signal.SIGCONT)
                time.sleep(0.02)
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        assert checkpoint is not None, "the run ended before any network wrote a checkpoint"
        assert not (workdir / "results/stats/accuracy.tsv").exists()  # it was cut off
        assert snakemake(workdir, config, "--unlock").returncode == 0
        rerun = snakemake(workdir, config)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert snapshot(bids) == before
    finally:
        restore_permissions(bids)
    logs = (workdir / "results/logs").rglob("*.log")
    assert any("resuming from" in p.read_text() for p in logs)  # the network went on
    differences = compare_outputs(tiny_run, workdir)
    assert differences == [], differences

    # a corrected scan and an edited participants.tsv at once: the scan is re-validated
    # and re-preprocessed, no other scan is (the masking that ancient() inputs suffer)
    scan = sorted(bids.glob("sub-*/ses-*/anat/*_T1w.nii.gz"))[3]
    image = nib.load(scan)
    data = np.asarray(image.dataobj).copy()
    data[tuple(s // 2 for s in data.shape)] += 1
    nib.save(nib.Nifti1Image(data, image.affine, image.header), scan)
    table = pd.read_csv(bids / "participants.tsv", sep="\t", dtype=str)
    table.assign(handedness="R").to_csv(bids / "participants.tsv", sep="\t", index=False)
    rerun = snakemake(workdir, config)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    jobs = executed_jobs(rerun.stdout + rerun.stderr)
    assert jobs.pop("preprocess_t1w") == [scan.name.removesuffix("_T1w.nii.gz")]
    assert sorted(jobs) == sorted(COHORT_JOBS)


# what one changed scan re-runs besides its own preprocessing (a real dataset: no truth)
COHORT_JOBS = [
    "validate_inputs", "qc_summary", "make_folds", "build_arrays", "roi_volumes",
    "harmonise_roi", "train",
    "train_voxel", "ensemble", "local_maps", "local_stats", "stats", "local_figure",
    "diffae_figure", "relevance", "relevance_stats", "relevance_figure", "report_figures",
    "bundle", "all",
]  # fmt: skip


def executed_jobs(output: str) -> dict[str, list[str]]:
    """Rule name -> the ``scan`` wildcard (or "") of every job a Snakemake run executed."""
    jobs: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=\[)", output):
        rule = re.search(r"^(?:local)?(?:rule|checkpoint) (\w+):$", block, flags=re.MULTILINE)
        if rule:
            scan = re.search(r"scan=([\w-]+)", block)
            jobs.setdefault(rule[1], []).append(scan[1] if scan else "")
    return jobs


def test_bad_real_dataset_computes_nothing_and_is_not_touched(tmp_path, make_bids):
    """Even with --keep-going, no job besides validation runs on a dataset that fails it."""
    bids = make_bids(rows=[["participant_id", "age"], ["sub-01", "n/a"]])
    (bids / "participants.tsv").chmod(0o444)
    before = snapshot(bids)
    workdir = tmp_path / "run"
    workdir.mkdir()
    result = snakemake(workdir, {"bids_dir": str(bids)}, "--keep-going")
    assert result.returncode != 0
    log = (workdir / "results/logs/validate_inputs.log").read_text()
    assert "row 1 (sub-01): age 'n/a' is not a number; ages must be numeric years" in log
    assert "age 'n/a' is not a number" in result.stdout + result.stderr  # on the terminal
    written = sorted(str(p.relative_to(workdir)) for p in (workdir / "results").rglob("*"))
    assert written == ["results/logs", "results/logs/validate_inputs.log"]
    assert snapshot(bids) == before


def test_a_dataset_without_participants_is_an_error_not_a_simulation(tmp_path, make_bids):
    """The data-loss report: a real dataset without participants.tsv was overwritten by
    the simulator. Now the simulator does not exist for it; validation says what is missing."""
    bids = make_bids()
    (bids / "participants.tsv").unlink()
    before = snapshot(bids)
    workdir = tmp_path / "run"
    workdir.mkdir()
    until = snakemake(workdir, {"bids_dir": str(bids)}, "--until", "simulate_cohort")
    assert until.returncode != 0
    result = snakemake(workdir, {"bids_dir": str(bids)}, "--keep-going")
    assert result.returncode != 0
    assert "participants.tsv is missing" in result.stdout + result.stderr
    assert snapshot(bids) == before


def test_outputs_may_not_land_inside_the_dataset(tmp_path, make_bids):
    bids = make_bids()
    inside = bids / "derivatives" / "brainpad"
    inside.mkdir(parents=True)
    result = snakemake(inside, {"bids_dir": str(bids)}, "-n")
    assert result.returncode != 0
    assert "contains the working directory" in result.stdout + result.stderr
    result = snakemake(tmp_path, {"bids_dir": str(tmp_path / "results" / "data")}, "-n")
    assert "lies inside the workflow's output folder" in result.stdout + result.stderr
