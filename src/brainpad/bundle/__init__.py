"""Trained bundles (``brainpad bundle``): what a trained run needs to predict new scans.

A bundle is a folder of plain files, no pickles::

    bundle.json          format, software versions, settings (preprocessing, QC, models,
                         bias correction), the crop of the cohort arrays, the training
                         cohort (ages, sites, groups), base models and folds, and the
                         sha256 of every template file (the template identity)
    templates/           the MNI template, priors, brain mask and atlases the run used
    models/<base model>/fold-<k>/model.pt
                         every fold model (``torch.load(..., weights_only=True)``)
    ensemble/fits.json   the stacking heads at every level and the global bias corrections
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

import pandas as pd

FORMAT = 1
"""Bundle format version; a reader refuses other versions."""
PACKAGES = ("brainpad", "torch", "antspyx", "nilearn", "numpy", "scikit-learn", "monai")
"""Packages whose versions a bundle records."""
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
