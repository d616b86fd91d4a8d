"""Where brainpad's outputs live: every derived path, one function per kind of file.

Only names, no image libraries: the workflow's planning (``workflow/rules/common.smk``)
imports this module for every run, so it must load in milliseconds even when a cohort
has 10,000 scans (``benchmarks/plan_scale.py``).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from pathlib import Path

TISSUES = ("CSF", "GM", "WM")

TEMPLATE_SPACE = "MNI152NLin2009aSym"
"""The template every MNI-space output is on (nilearn's ICBM152 2009a symmetric), as the
BIDS ``space-`` entity names it."""
SPACE = f"space-{TEMPLATE_SPACE}"


CONSUMED = ("gm", "wm", "csf", "qc")


MAP_KINDS = ("brainage", "brainPAD", "brainPADcorrected")

BRAIN_REGIONS = ("cortex", "subcortex", "cerebellum")
"""Regions an image model may be restricted to; label k + 1 in the template's regions image."""

MODEL_INPUTS = ("tissue", "t1w", "flair")
"""What an image model may read: modulated GM + WM (SyN, modulated), or the T1w or FLAIR
affinely registered to MNI."""


def template_files(directory: str | Path, voxel_size: float) -> dict[str, Path]:
    """Names of the template files written by :func:`brainpad.templates.write_template_files`."""
    res = f"{voxel_size:g}".replace(".", "p")
    stem = f"tpl-MNI152NLin2009aSym_res-{res}mm"
    names = {
        "t1": f"{stem}_T1w.nii.gz",
        "gm": f"{stem}_label-GM_probseg.nii.gz",
        "wm": f"{stem}_label-WM_probseg.nii.gz",
        "csf": f"{stem}_label-CSF_probseg.nii.gz",
        "mask": f"{stem}_desc-brain_mask.nii.gz",
        "atlas": f"{stem}_atlas-HarvardOxford_dseg.nii.gz",
        "labels": f"{stem}_atlas-HarvardOxford_dseg.tsv",
        "regions": f"{stem}_desc-regions_dseg.nii.gz",
    }
    return {k: Path(directory) / v for k, v in names.items()}


def output_paths(out_dir: str | Path, scan_id: str) -> dict[str, Path]:
    """Every file :func:`brainpad.preprocess.preprocess_scan` writes for one scan."""
    base = Path(out_dir) / scan_id
    paths = {
        f"{tissue.lower()}": Path(f"{base}_{SPACE}_label-{tissue}_desc-modulated_probseg.nii.gz")
        for tissue in TISSUES
    }
    paths.update(
        # what the networks read: affinely registered, as the studies' networks read them
        t1=Path(f"{base}_{SPACE}_desc-affine_T1w.nii.gz"),
        flair=Path(f"{base}_{SPACE}_desc-affine_FLAIR.nii.gz"),
        # through the affine and SyN: on the template's anatomy, as the tissue maps
        t1_syn=Path(f"{base}_{SPACE}_desc-preproc_T1w.nii.gz"),
        flair_syn=Path(f"{base}_{SPACE}_desc-preproc_FLAIR.nii.gz"),
        mask=Path(f"{base}_desc-brain_mask.nii.gz"),
        affine=Path(f"{base}_from-T1w_to-{TEMPLATE_SPACE}_mode-image_xfm.mat"),
        warp=Path(f"{base}_from-T1w_to-{TEMPLATE_SPACE}_mode-image_warp.nii.gz"),
        inverse_warp=Path(f"{base}_from-{TEMPLATE_SPACE}_to-T1w_mode-image_warp.nii.gz"),
        qc=Path(f"{base}_desc-qc_T1w.json"),
        montage=Path(f"{base}_desc-qc_T1w.png"),
    )
    return paths


def scan_folder(root: str | Path, scan_id: str) -> Path:
    """A scan's folder in a BIDS-derivatives dataset at ``root``:
    ``sub-<label>/[ses-<label>/]anat/``, the session taken from the scan id."""
    entities = scan_id.split("_")
    sessions = [e for e in entities[1:] if e.startswith("ses-")]
    return Path(root, entities[0], *sessions[:1], "anat")


def preproc_paths(preproc_dir: str | Path, scan_id: str) -> dict[str, Path]:
    """:func:`output_paths` of one scan in its :func:`scan_folder` under ``preproc_dir``."""
    return output_paths(scan_folder(preproc_dir, scan_id), scan_id)


def scan_batches(scan_ids: Iterable[str], batches: int) -> dict[str, list[str]]:
    """Scans split into at most ``batches`` preprocessing batches, by a hash of their id.

    A scan's batch depends on its own id and ``batches`` only, so adding, removing or
    changing a scan changes one batch and the others keep their scans (and their
    results). Batches are named ``batch-000``, ``batch-001``, ...; empty ones are left out.

    Returns
    -------
    dict
        Batch name -> sorted scan ids.
    """
    width = max(3, len(str(batches - 1)))
    found: dict[int, list[str]] = {}
    for scan_id in sorted(scan_ids):
        found.setdefault(zlib.crc32(scan_id.encode()) % batches, []).append(scan_id)
    return {f"batch-{i:0{width}d}": found[i] for i in sorted(found)}


def array_files(out_dir: str | Path, model_input: str = "tissue") -> dict[str, Path]:
    """The files written by :func:`brainpad.cohort.arrays.build_arrays` in ``out_dir``.

    One pair of 3D volumes and 2D slices per input (:data:`MODEL_INPUTS`; the tissue
    maps' are ``volumes.npy`` and ``slices.npy``, the T1w's ``volumes_t1w.npy`` ...) and
    one index for all of them.
    """
    out = Path(out_dir)
    suffix = "" if model_input == "tissue" else f"_{model_input}"
    return {
        "volumes": out / f"volumes{suffix}.npy",
        "slices": out / f"slices{suffix}.npy",
        "index": out / "index.tsv",
    }


def map_paths(out_dir: str | Path, scan_id: str) -> dict[str, Path]:
    """The three local-map NIfTIs of one scan, in its :func:`scan_folder` under ``out_dir``
    (BIDS-derivatives names; ``map`` is brainpad's suffix, BIDS has none for brain age)."""
    folder = scan_folder(out_dir, scan_id)
    return {k: folder / f"{scan_id}_{SPACE}_desc-{k}_map.nii.gz" for k in MAP_KINDS}


def relevance_paths(out_dir: str | Path, method: str) -> dict[str, Path]:
    """One relevance method's 4D maps and healthy-control means
    (:mod:`brainpad.interpret.maps`) under ``out_dir`` (``results/interpret``)."""
    folder = Path(out_dir) / method
    names = ("signed", "absolute", "mean_signed", "mean_absolute")
    return {name: folder / f"{name}.nii.gz" for name in names}


def stat_paths(out_dir: str | Path, method: str, test: str) -> dict[str, Path]:
    """The t map and TFCE FWE p map of one method's test (:mod:`brainpad.interpret.statistics`)."""
    folder = Path(out_dir) / method
    return {"t": folder / f"stat-{test}_t.nii.gz", "p_fwe": folder / f"stat-{test}_pfwe.nii.gz"}
