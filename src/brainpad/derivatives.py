"""brainpad's outputs as BIDS-derivatives datasets (``results/preproc/``, the
preprocessing; ``results/maps/scans/``, the local brain-age maps): each one's
``dataset_description.json`` and the JSON sidecar of each image (BIDS 1.9, "Derivatives").

Only names and JSON, no image libraries (the preprocessing and the workflow's rules use it).
"""

from __future__ import annotations

import json
from pathlib import Path

from brainpad import __version__
from brainpad.atomic import atomic_path
from brainpad.paths import TEMPLATE_SPACE

BIDS_VERSION = "1.9.0"

BIDS_IGNORE = {
    "preproc": [
        "*_xfm.mat",  # the ANTs transforms: BIDS has no rule for them yet (BEP014)
        "*_warp.nii.gz",
        "*_desc-qc_T1w.png",  # the QC montage (a figure)
        "qc.tsv",
        "batches/",
    ],
    "maps": ["*_map.nii.gz", "*_map.json"],  # BIDS has no suffix for a brain-age map
}
"""What each of brainpad's derivatives datasets holds that the BIDS rules do not cover,
as its ``.bidsignore`` lists it."""


def write_json(data: dict, path: str | Path) -> None:
    """``data`` as indented JSON, written whole or not at all."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def dataset_description(source: str | Path, name: str | None = None, link: str = "raw") -> dict:
    """The ``dataset_description.json`` of a brainpad derivatives dataset made from the BIDS
    dataset at ``source``: DatasetType ``derivative``, GeneratedBy brainpad and its version,
    the source dataset, and a ``DatasetLinks`` entry ``link`` that the sidecars' ``Sources``
    name it by (``bids:<link>:<path>``, :func:`bids_uri`).

    ``name`` defaults to "brainpad: brain age of" the source's Name (or folder name).
    """
    source = Path(source).resolve()
    if name is None:
        title = source.name
        described = source / "dataset_description.json"
        if described.is_file():
            try:
                text = described.read_text(encoding="utf-8-sig")
                title = json.loads(text).get("Name", title)
            except ValueError:
                pass  # validation reports a broken description with its fix
        name = f"brainpad: brain age of {title}"
    return {
        "Name": name,
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "brainpad", "Version": __version__}],
        "SourceDatasets": [{"URL": source.as_uri()}],
        "DatasetLinks": {link: source.as_uri()},
    }


def describe(root: str | Path, kind: str, description: dict) -> None:
    """A derivatives dataset's ``dataset_description.json`` and ``.bidsignore``
    (:data:`BIDS_IGNORE` ``[kind]``) written into ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    ignored = "\n".join(["# brainpad's files that BIDS has no rule for", *BIDS_IGNORE[kind]])
    with atomic_path(root / ".bidsignore") as tmp:
        tmp.write_text(ignored + "\n")
    write_json(description, root / "dataset_description.json")


def bids_uri(dataset: str, path: str | Path) -> str:
    """``bids:<dataset>:<path>``: a file of a BIDS dataset named in ``DatasetLinks``, its
    path taken from the participant's ``sub-*`` folder on (the file name alone outside one).
    """
    parts = Path(path).parts
    folders = [i for i, part in enumerate(parts[:-1]) if part.startswith("sub-")]
    inside = parts[folders[-1] :] if folders else parts[-1:]
    return f"bids:{dataset}:{Path(*inside).as_posix()}"


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


def write_sidecar(image: str | Path, description: str, voxel_mm: float, sources: list[str]):
    """:func:`image_sidecar` written beside ``image``."""
    write_json(image_sidecar(description, voxel_mm, sources), sidecar_path(image))


MAP_DESCRIPTIONS = {
    "brainage": "local brain age (years): each voxel's predicted age",
    "brainPAD": "local brain-PAD (years): local brain age minus chronological age",
    "brainPADcorrected": "local brain-PAD (years), voxelwise age-bias corrected",
}
"""What each local map (:data:`brainpad.paths.MAP_KINDS`) holds, for its sidecar."""


def write_map_sidecars(
    paths: dict[str, Path], voxel_mm: float, scan_id: str, model: str | None = None
) -> None:
    """The sidecar of each of a scan's local maps that was written (``paths``: kind →
    image, ``model`` the map model's name); its sources are the scan's preprocessed GM and
    WM maps (``bids:preproc:``)."""
    from brainpad.paths import preproc_paths

    inputs = preproc_paths("", scan_id)  # relative to the preprocessing dataset's root
    sources = [f"bids:preproc:{inputs[tissue].as_posix()}" for tissue in ("gm", "wm")]
    by = f", by {model}" if model else ""
    for kind, image in paths.items():
        if Path(image).is_file():
            write_sidecar(image, f"{MAP_DESCRIPTIONS[kind]}{by}", voxel_mm, sources)


def describe_maps(maps_dir: str | Path, preproc_dir: str | Path) -> None:
    """``dataset_description.json`` of the local maps' folder, linked to the
    preprocessing derivatives they were made from."""
    description = dataset_description(preproc_dir, "brainpad: local brain-age maps", "preproc")
    describe(maps_dir, "maps", description)
