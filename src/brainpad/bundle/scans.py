"""The scans ``brainpad predict`` is given: NIfTI files or a BIDS dataset, checked before
anything runs, and the warnings a scan can earn once preprocessed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from brainpad.bundle import scan_geometry

if TYPE_CHECKING:
    from brainpad.bundle.predict import Bundle

GEOMETRY_FACTOR = 1.5
"""A voxel size or field of view this many times outside the training range warns."""


@dataclass(frozen=True)
class ScanInput:
    """One scan to predict: its T1w, optional FLAIR, and age and sex when known."""

    scan_id: str
    t1w: Path
    flair: Path | None = None
    age: float | None = None
    sex: str | None = None
    participant_id: str | None = None
    site: str | None = None
    group: str | None = None


def scans_from_files(
    t1w: list[str | Path],
    flair: list[str | Path] | None = None,
    age: list[float] | None = None,
    sex: list[str] | None = None,
    site: list[str] | None = None,
) -> list[ScanInput]:
    """Scans given as NIfTI files, with per-scan FLAIR, age, sex and site (one each, or
    none)."""
    from brainpad.inputs.bids import describe_scan
    from brainpad.inputs.errors import InputError

    for name, values in (("--flair", flair), ("--age", age), ("--sex", sex), ("--site", site)):
        if values is not None and len(values) != len(t1w):
            msg = (
                f"{name}: {len(values)} values for {len(t1w)} T1w scans; give one per scan, "
                "in the same order"
            )
            raise InputError(msg)
    scans = []
    for k, path in enumerate(map(Path, t1w)):
        described = describe_scan(path)
        stem = path.name.removesuffix(".gz").removesuffix(".nii")
        scans.append(
            ScanInput(
                scan_id=described["scan_id"] if described else stem,
                t1w=path,
                flair=Path(flair[k]) if flair else None,
                age=float(age[k]) if age else None,
                sex=sex[k] if sex else None,
                site=site[k] if site else None,
            )
        )
    return scans


def scans_from_manifest(manifest: pd.DataFrame) -> list[ScanInput]:
    """Every T1w scan of a validated manifest (:mod:`brainpad.inputs.validate`), with its
    session's FLAIR, age, sex, site and group."""
    flair = manifest[manifest["modality"] == "FLAIR"].set_index("scan_id")["path"]
    return [
        ScanInput(
            scan_id=row["scan_id"],
            t1w=Path(row["path"]),
            flair=Path(flair[row["scan_id"]]) if row["scan_id"] in flair.index else None,
            age=None if pd.isna(row["age"]) else float(row["age"]),
            sex=None if pd.isna(row.get("sex")) else str(row["sex"]),
            participant_id=row["participant_id"],
            site=str(row["site"]),
            group=str(row["group"]),
        )
        for row in manifest[manifest["modality"] == "T1w"].to_dict("records")
    ]


def scans_from_bids(
    bundle: Bundle,
    bids_dir: str | Path,
    participant_label: Sequence[str] = (),
    exclude_participant_label: Sequence[str] = (),
) -> list[ScanInput]:
    """Every T1w scan of a BIDS dataset (of the participants chosen), validated as the
    workflow validates one.

    Ages (per session when ``sessions.tsv`` gives them), sex and each session's FLAIR come
    from the dataset; participants.tsv is required, as for training, but an age may be
    ``n/a``: that scan gets a brain age without a brain-PAD. Any group label is accepted:
    only the bundle's control group has a meaning (recalibration, harmonisation).
    """
    from brainpad.inputs.validate import ValidationOptions, build_manifest

    modalities = tuple(bundle.settings.get("modalities", ["T1w"]))
    # a session without FLAIR goes through the bundle's T1w-only head, if it has one
    required = ("FLAIR",) if "flair" in bundle.inputs and "t1w_only" not in bundle.fits else ()
    options = ValidationOptions(
        modalities,
        required,
        groups=None,
        control_group=bundle.settings.get("control_group", "HC"),
        unlabelled="use",
        participant_label=tuple(participant_label),
        exclude_participant_label=tuple(exclude_participant_label),
    )
    manifest, _ = build_manifest(bids_dir, options)
    return scans_from_manifest(manifest)


def check_scans(bundle: Bundle, scans: list[ScanInput]) -> None:
    """Raise an :class:`~brainpad.inputs.errors.InputError` naming every unusable scan."""
    from brainpad.inputs.errors import raise_problems
    from brainpad.inputs.image_checks import check_image

    problems = []
    if not scans:
        problems.append("no scans to predict: give T1w NIfTI files or a BIDS directory")
    if len({s.scan_id for s in scans}) < len(scans):
        problems.append("two scans share a scan id (file name); rename one")
    for scan in scans:
        for path in (scan.t1w, scan.flair):
            if path is not None and (problem := check_image(path, 10.0, 4096.0)):
                problems.append(problem)
        if "flair" in bundle.inputs and scan.flair is None and "t1w_only" not in bundle.fits:
            problems.append(
                f"{scan.t1w}: the bundle's models read FLAIR and it has no T1w-only head, "
                "but this scan has no FLAIR; give --flair (or put the session's "
                "*_FLAIR.nii.gz beside it in BIDS), or export the bundle again"
            )
    if problems:
        raise_problems(problems, "brainpad predict")


def scan_warnings(
    bundle: Bundle, scan: Path, age: float | None, qc: dict, spread: float
) -> list[str]:
    """Why a scan's brain age may not be trustworthy, each with what to check."""
    warnings = []
    low, high = bundle.description["training_cohort"]["training_age_range"]
    if age is not None and not low <= age <= high:
        warnings.append(
            f"age {age:g} is outside the training ages {low:g}-{high:g}: the bias "
            "correction extrapolates; interpret its brain-PAD with care"
        )
    if not qc.get("passed", True):
        reasons = qc.get("reasons") or []
        warnings.append(
            f"QC failed ({'; '.join(reasons) if isinstance(reasons, list) else reasons}): "
            "look at the QC montage before using this brain age"
        )
    trained = bundle.description.get("scan_geometry")
    if trained:
        found = scan_geometry([scan])
        for key, what in (("voxel_mm", "voxel size"), ("fov_mm", "field of view")):
            value = np.array(found[key][0])
            lo, hi = np.array(trained[key][0]), np.array(trained[key][1])
            if (value > hi * GEOMETRY_FACTOR).any() or (value < lo / GEOMETRY_FACTOR).any():
                warnings.append(
                    f"{what} {np.round(value, 1).tolist()} mm is far from the training "
                    f"scans' ({np.round(lo, 1).tolist()} to {np.round(hi, 1).tolist()} mm): "
                    "check that this is the intended scan and protocol"
                )
    limit = bundle.fits["interval"]["spread_limit"]
    if spread > limit:
        warnings.append(
            f"the models disagree far beyond their training spread ({spread:.1f} y > "
            f"{limit:.1f} y): an unusual scan (artefact, lesion, protocol); check it"
        )
    return warnings
