"""A lab's own dataset with the default config: without FLAIR (most are), the models that
read FLAIR are left out with one line and the others planned; ``participant_label`` and
``exclude_participant_label`` plan only the participants chosen."""

from __future__ import annotations

import re
import subprocess

import yaml

from brainpad.models import base_models, without_input
from conftest import REPO, SNAKEMAKE


def test_without_input_leaves_out_the_base_models_of_that_input():
    models = {
        "names": ["ridge_roi", "vgg3d", "diffae"],
        "vgg3d": {"inputs": ["t1w", "flair"], "widths": [8]},
        "diffae": {"inputs": ["flair"]},
    }
    kept, left_out = without_input(models, "flair")
    assert left_out == ["vgg3d-flair", "diffae-flair"]
    assert [m.name for m in base_models(kept)] == ["ridge_roi", "vgg3d-t1w"]
    assert kept["vgg3d"] == {"inputs": ["t1w"], "widths": [8]}
    assert models["vgg3d"]["inputs"] == ["t1w", "flair"]  # the config given is left alone


def dry_run(tmp_path, config: dict, *args: str) -> str:
    """A dry run with the default config and ``config`` over it: Snakemake's messages."""
    overlay = tmp_path / "config.yaml"
    overlay.write_text(yaml.safe_dump(config))
    command = [*SNAKEMAKE, "--directory", str(tmp_path / "run"), "--configfile",
               str(REPO / "config/config.yaml"), str(overlay), "--dry-run", *args]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout + result.stderr


def test_a_t1w_only_dataset_runs_the_models_that_need_no_flair(make_bids, tmp_path):
    root = make_bids()  # three participants, a T1w each
    output = dry_run(tmp_path, {"bids_dir": str(root)})
    notes = re.findall(r"^brainpad: (.*)$", output, flags=re.MULTILINE)
    assert notes == [
        "No FLAIR scan in the dataset: the models that read FLAIR (vgg3d-flair) were left "
        "out; the others ran on the T1w."
    ]
    planned = set(re.findall(r"model=([\w-]+), fold=0", output))
    assert "vgg3d-t1w" in planned and "vgg3d-flair" not in planned


def test_participant_label_plans_only_the_participants_chosen(make_bids, tmp_path):
    root = make_bids()
    config = {
        "bids_dir": str(root),
        "preprocess": {"batches": 0},  # a job per scan: its wildcards name the participant
        "participant_label": ["01", "sub-03"],
        "exclude_participant_label": ["03"],
    }
    output = dry_run(tmp_path, config, "--printshellcmds")
    assert set(re.findall(r"wildcards: folder=(sub-\w+)/", output)) == {"sub-01"}
    assert "--participant-label 01 sub-03 --exclude-participant-label 03" in output
