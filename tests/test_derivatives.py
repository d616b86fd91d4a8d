"""brainpad's outputs as BIDS derivatives: the dataset description, image sidecars, and
file names that follow the BIDS naming rules (entities in the schema's order)."""

from __future__ import annotations

import json
from pathlib import Path

from brainpad import __version__
from brainpad.derivatives import TEMPLATE_SPACE, dataset_description, image_sidecar, sidecar_path
from brainpad.paths import map_paths, output_paths
from conftest import naming_problems


def test_every_per_scan_output_name_follows_the_bids_rules(tmp_path):
    names = [p.name for p in output_paths(tmp_path, "sub-01_ses-2_run-1").values()]
    names += [p.name for p in map_paths(tmp_path, "sub-01", "sub-01_ses-2").values()]
    assert [problem for name in names for problem in naming_problems(name)] == []
    assert naming_problems("sub-01_desc-x_space-MNI_T1w.nii.gz") == [
        "sub-01_desc-x_space-MNI_T1w.nii.gz: entities ['sub', 'desc', 'space'] not in BIDS "
        "order ['sub', 'ses', 'run', 'from', 'to', 'mode', 'space', 'label', 'desc']",
        "sub-01_desc-x_space-MNI_T1w.nii.gz: space is not the template's name "
        "MNI152NLin2009aSym",
    ]


def test_the_dataset_description_names_brainpad_and_the_source(tmp_path):
    source = tmp_path / "study"
    source.mkdir()
    (source / "dataset_description.json").write_text(json.dumps({"Name": "My study"}))
    description = dataset_description(source)
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"] == [{"Name": "brainpad", "Version": __version__}]
    assert description["SourceDatasets"] == [{"URL": source.resolve().as_uri()}]
    assert description["Name"] == "brainpad: brain age of My study"


def test_an_image_sidecar_says_what_the_image_is():
    sidecar = image_sidecar("modulated GM", 2.0, ["sub-01_T1w.nii.gz"])
    assert sidecar["SpatialReference"] == TEMPLATE_SPACE
    assert sidecar["Resolution"] == "2 mm isotropic"
    assert sidecar_path(Path("a/sub-01_space-X_T1w.nii.gz")) == Path("a/sub-01_space-X_T1w.json")
