"""brainpad's outputs as BIDS derivatives: the dataset description, image sidecars, and
file names that follow the BIDS naming rules (entities in the schema's order)."""

from __future__ import annotations

import json
from pathlib import Path

from bids_names import dataset_problems, name_problems
from brainpad import __version__
from brainpad.derivatives import (
    TEMPLATE_SPACE,
    bids_uri,
    dataset_description,
    describe,
    image_sidecar,
    sidecar_path,
)
from brainpad.paths import SPACE, map_paths, preproc_paths


def test_every_per_scan_output_name_follows_the_bids_schema(tmp_path):
    """Each per-scan output, in its sub-*/[ses-*/]anat/ folder, matches a derivative rule of
    the BIDS schema, or is one of the files .bidsignore lists (transforms, montage, maps)."""
    describe(tmp_path / "preproc", "preproc", dataset_description(tmp_path))
    describe(tmp_path / "maps", "maps", dataset_description(tmp_path, "maps", "preproc"))
    for scan_id in ("sub-01_ses-2_run-1", "sub-02"):
        for path in [*preproc_paths(tmp_path / "preproc", scan_id).values()]:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            if SPACE in path.name:  # the images on the template grid have sidecars
                sidecar_path(path).touch()
        for path in map_paths(tmp_path / "maps", scan_id).values():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    assert (tmp_path / "preproc/sub-01/ses-2/anat").is_dir()
    assert (tmp_path / "maps/sub-02/anat").is_dir()
    assert dataset_problems(tmp_path / "preproc") == []
    assert dataset_problems(tmp_path / "maps") == []
    assert all(SPACE in p.name for p in map_paths(tmp_path, "sub-01").values())


def test_the_schema_check_catches_names_that_break_the_rules():
    assert name_problems("sub-01/anat/sub-01_desc-x_space-MNI_T1w.nii.gz") == [
        "sub-01/anat/sub-01_desc-x_space-MNI_T1w.nii.gz: entities ['sub', 'desc', 'space'] "
        "not in the schema's order"
    ]
    assert name_problems("sub-01/sub-01_T1w.nii.gz") == [
        "sub-01/sub-01_T1w.nii.gz: not in sub-01/<datatype>/"
    ]
    assert name_problems("sub-01/anat/sub-01_label-GM_T1w.nii.gz") == [
        "sub-01/anat/sub-01_label-GM_T1w.nii.gz: no derivative rule of the schema has suffix "
        "T1w, extension .nii.gz, data type 'anat' and entities ['sub', 'label']"
    ]
    assert name_problems("sub-01/anat/sub-01_model-x_map.nii.gz") == [
        "sub-01/anat/sub-01_model-x_map.nii.gz: unknown entity model"
    ]
    assert name_problems("sub-01/anat/sub-01_space-X_desc-brainage_map.nii.gz") != []
    assert name_problems("sub-01/ses-1/anat/sub-01_ses-1_run-a_T1w.nii.gz") == [
        "sub-01/ses-1/anat/sub-01_ses-1_run-a_T1w.nii.gz: run-a is not an index"
    ]


def test_a_sidecars_sources_are_bids_uris():
    assert bids_uri("raw", "/data/study/sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz") == (
        "bids:raw:sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz"
    )
    assert bids_uri("raw", "/tmp/scan.nii.gz") == "bids:raw:scan.nii.gz"


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
