"""A dataset without FLAIR (most are) with the default config: the models that read FLAIR
are left out with one line, the others planned; and ``without_input`` itself."""

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


def test_a_t1w_only_dataset_runs_the_models_that_need_no_flair(make_bids, tmp_path):
    root = make_bids()  # three participants, a T1w each
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"bids_dir": str(root)}))
    workdir = tmp_path / "run"
    command = [*SNAKEMAKE, "--directory", str(workdir), "--configfile",
               str(REPO / "config/config.yaml"), str(config), "--dry-run"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    notes = re.findall(r"^brainpad: (.*)$", output, flags=re.MULTILINE)
    assert notes == [
        "No FLAIR scan in the dataset: the models that read FLAIR (vgg3d-flair) were left "
        "out; the others ran on the T1w."
    ]
    planned = set(re.findall(r"model=([\w-]+), fold=0", output))
    assert "vgg3d-t1w" in planned and "vgg3d-flair" not in planned
