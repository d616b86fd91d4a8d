"""brainpad's outputs as a BIDS-derivatives dataset: its ``dataset_description.json`` and
the JSON sidecar of each image (BIDS 1.9, "Derivatives": common data types).

Only names and JSON, no image libraries (the preprocessing and the workflow's rules use it).
"""

from __future__ import annotations

import json
from pathlib import Path

from brainpad import __version__
from brainpad.atomic import atomic_path
from brainpad.paths import TEMPLATE_SPACE

BIDS_VERSION = "1.9.0"


def write_json(data: dict, path: str | Path) -> None:
    """``data`` as indented JSON, written whole or not at all."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def dataset_description(source: str | Path) -> dict:
    """The ``dataset_description.json`` of brainpad's results for the BIDS dataset at
    ``source``: DatasetType ``derivative``, GeneratedBy brainpad and its version, and the
    source dataset (its Name when its own description gives one)."""
    source = Path(source).resolve()
    name = source.name
    described = source / "dataset_description.json"
    if described.is_file():
        try:
            name = json.loads(described.read_text(encoding="utf-8-sig")).get("Name", name)
        except ValueError:
            pass  # validation reports a broken description with its fix
    return {
        "Name": f"brainpad: brain age of {name}",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "brainpad", "Version": __version__}],
        "SourceDatasets": [{"URL": source.as_uri()}],
    }


def image_sidecar(description: str, voxel_mm: float, sources: list[str]) -> dict:
    """The JSON sidecar of an image on the template grid: what it is, its space and
    voxel size, and the files it was made from."""
    return {
        "Description": description,
        "SpatialReference": TEMPLATE_SPACE,
        "Resolution": f"{voxel_mm:g} mm isotropic",
        "Sources": sources,
        "GeneratedBy": [{"Name": "brainpad", "Version": __version__}],
    }


def sidecar_path(image: str | Path) -> Path:
    """``x.nii.gz`` → ``x.json``."""
    name = Path(image).name.removesuffix(".gz").removesuffix(".nii")
    return Path(image).with_name(f"{name}.json")
