"""Trained bundles (``brainpad bundle``): what a trained run needs to predict new scans.

A bundle is a folder of plain files, no pickles::

    bundle.json          format, software versions, settings (preprocessing, QC, models,
                         bias correction), the crop of the cohort arrays, the training
                         cohort (ages, sites, groups), base models and folds, and the
                         sha256 of every template file (the template identity)
    templates/           the MNI template, priors, brain mask and atlases the run used
    models/<base model>/fold-<k>/model.pt
                         every fold model (``torch.load(..., weights_only=True)``)
    ensemble/fits.json   the stacking heads at every level, the global bias corrections and
                         the calibrated interval
    local/voxel_bias.nii.gz, .json
                         the local maps' voxelwise bias correction (with a map model)
    manifest.tsv         path, bytes and sha256 of every other file

:func:`export_bundle` writes it (into a temporary folder renamed at the end, so a bundle
is whole or absent); :func:`verify_bundle` checks every file against the manifest before a
bundle is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

FORMAT = 1
"""Bundle format version; a reader refuses other versions."""
PACKAGES = ("brainpad", "torch", "antspyx", "nilearn", "numpy", "scikit-learn", "monai")
"""Packages whose versions a bundle records."""
CHECKED_PACKAGES = ("brainpad", "torch", "antspyx", "numpy", "scikit-learn")
"""Packages whose version must match the bundle's for ``brainpad predict`` to use it: they
change the preprocessing (ANTs), the networks (torch), the heads and the arrays."""
VOXEL_BIAS = "local/voxel_bias.nii.gz"
"""Where a bundle keeps the local maps' voxelwise bias correction (with a JSON sidecar)."""
UNLISTED = {"manifest.tsv", ".snakemake_timestamp"}
"""Files of a bundle folder the manifest does not list (Snakemake stamps its folders)."""


class BundleError(ValueError):
    """A bundle that cannot be used as it is: the message says which file and what to do."""


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def software_versions() -> dict[str, str]:
    """Python's and each of :data:`PACKAGES`' installed version ("absent" if missing)."""
    found = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def version_mismatches(recorded: Mapping[str, str]) -> list[str]:
    """``package: bundle X, installed Y`` for each of :data:`CHECKED_PACKAGES` that differs.

    Local build tags are ignored (``2.13.0+cpu`` matches ``2.13.0+cu128``): a bundle
    trained on a GPU runs on a CPU.
    """
    installed = software_versions()
    return [
        f"{name}: bundle {recorded.get(name)}, installed {installed[name]}"
        for name in CHECKED_PACKAGES
        if str(recorded.get(name)).split("+")[0] != installed[name].split("+")[0]
    ]


def scan_geometry(paths: Sequence[str | Path]) -> dict:
    """Range of the voxel sizes and fields of view (mm, axes sorted) of NIfTI scans."""
    import nibabel as nib

    voxels, fovs = [], []
    for path in paths:
        header = nib.load(path).header
        zooms = np.asarray(header.get_zooms()[:3], dtype=float)
        voxels.append(np.sort(zooms))
        fovs.append(np.sort(zooms * np.asarray(header.get_data_shape()[:3])))
    voxels, fovs = np.array(voxels), np.array(fovs)
    return {
        "voxel_mm": [voxels.min(0).tolist(), voxels.max(0).tolist()],
        "fov_mm": [fovs.min(0).tolist(), fovs.max(0).tolist()],
    }


def training_cohort(folds: pd.DataFrame) -> dict:
    """What the models were trained and calibrated on: counts per role, the training
    controls' age range, sites and groups (one row per participant)."""
    people = folds.drop_duplicates("participant_id")
    train = people[people["role"] == "train"]
    return {
        "participants_by_role": {k: int(v) for k, v in people["role"].value_counts().items()},
        "training_age_range": [float(train["age"].min()), float(train["age"].max())],
        "sites": sorted(str(s) for s in people["site"].dropna().unique()),
        "groups": sorted(str(g) for g in people["group"].dropna().unique()),
    }


def export_bundle(
    out_dir: str | Path,
    states: Sequence[str | Path],
    fits: str | Path,
    templates: Mapping[str, str | Path],
    folds: str | Path,
    index: str | Path,
    settings: Mapping,
    manifest: str | Path | None = None,
    voxel_bias: str | Path | None = None,
) -> dict:
    """Write a bundle to ``out_dir`` (replacing one there) and return its ``bundle.json``.

    Parameters
    ----------
    out_dir : path
        The bundle folder, e.g. ``results/bundle``.
    states : sequence of path
        Every fold model's ``model.pt``, as ``.../<base model>/fold-<k>/model.pt``.
    fits : path
        The ensemble stage's ``fits.json`` (stacking heads, global bias corrections).
    templates : mapping
        Template file key → path (:func:`brainpad.paths.template_files`).
    folds, index : path
        ``folds.tsv`` (the training cohort) and the arrays' ``index.tsv`` (the crop).
    settings : mapping
        The run's configuration sections the bundle must reproduce (``seed``,
        ``preprocess``, ``qc``, ``models``, ``debias``, ...), stored as given.
    manifest : path, optional
        The run's ``manifest.tsv``: the voxel sizes and fields of view of its T1w scans
        are recorded (:func:`scan_geometry`), so ``brainpad predict`` can warn about a
        scan far from them.
    """
    from brainpad.cohort.arrays import crop_slices

    out = Path(out_dir)
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    models: dict[str, list[int]] = {}
    try:
        for state in map(Path, states):
            model, fold = state.parent.parent.name, state.parent.name
            target = tmp / "models" / model / fold / "model.pt"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(state, target)
            models.setdefault(model, []).append(int(fold.removeprefix("fold-")))
        (tmp / "ensemble").mkdir(parents=True)
        shutil.copy2(fits, tmp / "ensemble" / "fits.json")
        if voxel_bias is not None:
            from brainpad.local.correction import sidecar_path

            (tmp / "local").mkdir()
            shutil.copy2(voxel_bias, tmp / VOXEL_BIAS)
            shutil.copy2(sidecar_path(voxel_bias), sidecar_path(tmp / VOXEL_BIAS))
        copied = {}
        for key, path in templates.items():
            copied[key] = f"templates/{Path(path).name}"
            (tmp / "templates").mkdir(exist_ok=True)
            shutil.copy2(path, tmp / copied[key])
        checksums = {
            p.relative_to(tmp).as_posix(): sha256(p) for p in tmp.rglob("*") if p.is_file()
        }
        description = {
            "format": FORMAT,
            "software": software_versions(),
            "settings": dict(settings),
            "crop": [[s.start, s.stop] for s in crop_slices(pd.read_csv(index, sep="\t"))],
            "training_cohort": training_cohort(pd.read_csv(folds, sep="\t")),
            "scan_geometry": _geometry(manifest, folds),
            "base_models": {name: sorted(f) for name, f in models.items()},
            "templates": {k: {"file": f, "sha256": checksums[f]} for k, f in copied.items()},
        }
        (tmp / "bundle.json").write_text(json.dumps(description, indent=2) + "\n")
        checksums["bundle.json"] = sha256(tmp / "bundle.json")
        listed = sorted(checksums)
        manifest = pd.DataFrame(
            {
                "path": listed,
                "bytes": [(tmp / f).stat().st_size for f in listed],
                "sha256": [checksums[f] for f in listed],
            }
        )
        manifest.to_csv(tmp / "manifest.tsv", sep="\t", index=False)
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return description


def _geometry(manifest: str | Path | None, folds: str | Path) -> dict | None:
    """:func:`scan_geometry` of the T1w scans of ``folds`` (None without a manifest)."""
    if manifest is None:
        return None
    scans = pd.read_csv(manifest, sep="\t", dtype=str)
    used = set(pd.read_csv(folds, sep="\t")["scan_id"])
    t1w = scans[(scans["modality"] == "T1w") & scans["scan_id"].isin(used)]
    return scan_geometry(t1w["path"].tolist())


def check_versions(description: Mapping, root: str | Path, allow: bool = False) -> list[str]:
    """Refuse a bundle made with other versions of :data:`CHECKED_PACKAGES`.

    Returns the mismatches (empty when there are none); with ``allow`` they are returned
    instead of raised, for the caller to warn about.
    """
    mismatches = version_mismatches(description.get("software", {}))
    if mismatches and not allow:
        msg = (
            f"{Path(root) / 'bundle.json'}: made with other software versions "
            f"({'; '.join(mismatches)}); its predictions would not be the ones it was "
            "validated with. Install those versions (pip install 'torch==...'), or pass "
            "--allow-other-versions to use it anyway"
        )
        raise BundleError(msg)
    return mismatches


def verify_bundle(bundle_dir: str | Path) -> dict:
    """Check a bundle against its manifest and return its ``bundle.json``.

    Raises
    ------
    BundleError
        Naming the first file that is missing, changed or unlisted, or a format this
        version cannot read, with what to do.
    """
    root = Path(bundle_dir)
    manifest_path = root / "manifest.tsv"
    if not manifest_path.is_file():
        msg = (
            f"{root}: no manifest.tsv, so this is not a brainpad bundle (or an incomplete "
            "copy of one); export it again with the workflow's bundle rule"
        )
        raise BundleError(msg)
    manifest = pd.read_csv(manifest_path, sep="\t", dtype={"sha256": str})
    for row in manifest.itertuples():
        path = root / row.path
        if not path.is_file():
            msg = f"{path}: listed in {manifest_path} but missing; copy the whole bundle again"
            raise BundleError(msg)
        if sha256(path) != row.sha256:
            msg = (
                f"{path}: its checksum differs from {manifest_path} (the file was changed "
                "or damaged after export); copy the whole bundle again, or re-export it"
            )
            raise BundleError(msg)
    listed = set(manifest["path"]) | UNLISTED
    extra = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).as_posix() not in listed
    )
    if extra:
        msg = (
            f"{root / extra[0]}: not in {manifest_path} ({len(extra)} such files); a bundle "
            "is used only as exported: remove the file or re-export the bundle"
        )
        raise BundleError(msg)
    description = json.loads((root / "bundle.json").read_text())
    if description.get("format") != FORMAT:
        msg = (
            f"{root / 'bundle.json'}: bundle format {description.get('format')!r}, but this "
            f"brainpad reads format {FORMAT}; use the brainpad version in its 'software' field"
        )
        raise BundleError(msg)
    return description
