"""Snakemake end to end on a tiny simulated cohort, plus lint and failure behaviour."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
TINY_CONFIG = {
    "bids_dir": "simulated",
    "modalities": ["T1w", "FLAIR"],
    "simulation": {"n_subjects": 8, "voxel_size": 4.0, "n_test_retest": 1, "n_between_site": 1},
    "preprocess": {"voxel_size": 4.0, "syn_iterations": [30, 10]},
    "folds": {"k": 2},
}

pytestmark = pytest.mark.workflow


def snakemake(workdir: Path, config: dict, *args: str) -> subprocess.CompletedProcess:
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    command = [
        *SNAKEMAKE,
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--cores",
        "2",
        *args,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE")}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("workflow")
    result = snakemake(workdir, TINY_CONFIG)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def test_lint_is_clean():
    result = subprocess.run([*SNAKEMAKE, "--lint"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def test_dry_run_shows_the_dag(tmp_path):
    result = snakemake(tmp_path, TINY_CONFIG, "-n")
    assert result.returncode == 0, result.stderr
    assert "simulate_cohort" in result.stdout and "validate_inputs" in result.stdout


def test_tiny_workflow_makes_a_validated_manifest(tiny_run):
    manifest = pd.read_csv(tiny_run / "results/manifest.tsv", sep="\t")
    assert len(manifest) == 20  # (8 subjects + 2 repeat sessions) x (T1w, FLAIR)
    assert set(manifest["modality"]) == {"T1w", "FLAIR"}
    assert manifest["path"].map(lambda p: (tiny_run / p).is_file()).all()
    assert (tiny_run / "results/simulated/derivatives/simulation/truth.json").is_file()
    assert (tiny_run / "results/logs/simulate_cohort.log").stat().st_size > 0
    assert (tiny_run / "results/benchmarks/simulate_cohort.tsv").is_file()


def test_preprocessing_and_folds(tiny_run):
    qc = pd.read_csv(tiny_run / "results/preproc/qc.tsv", sep="\t")
    assert len(qc) == 10 and qc["passed"].all()
    folds = pd.read_csv(tiny_run / "results/folds.tsv", sep="\t")
    assert len(folds) == 10
    assert set(folds.loc[folds.group == "HC", "role"]) == {"train", "calibration", "test"}
    assert (folds.loc[folds.group != "HC", "role"] == "clinical").all()
    assert folds.groupby("participant_id")["role"].nunique().max() == 1  # repeats share a role
    volumes = np.load(tiny_run / "results/arrays/volumes.npy", mmap_mode="r")
    assert volumes.shape[:2] == (10, 2) and volumes.dtype == np.float16
    index = pd.read_csv(tiny_run / "results/arrays/index.tsv", sep="\t")
    assert index["scan_id"].tolist() == folds["scan_id"].tolist()
    rois = pd.read_csv(tiny_run / "results/regions/roi_volumes.tsv", sep="\t")
    assert len(rois) == 10 and rois.shape[1] == 1 + 3 * 113
    assert (rois["GM_Left_Hippocampus"] > 0).all()


def test_second_run_has_nothing_to_do(tiny_run):
    result = snakemake(tiny_run, TINY_CONFIG, "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_bad_real_dataset_stops_with_message_and_no_manifest(tmp_path, make_bids):
    bids = make_bids(rows=[["participant_id", "age"], ["sub-01", "n/a"]])
    result = snakemake(tmp_path, {"bids_dir": str(bids)})
    assert result.returncode != 0
    log = (tmp_path / "results/logs/validate_inputs.log").read_text()
    assert "row 1 (sub-01): age 'n/a' is not a number; ages must be numeric years" in log
    assert "age 'n/a' is not a number" in result.stdout + result.stderr  # shown on the terminal
    assert not (tmp_path / "results/manifest.tsv").exists()
