"""BIDS discovery, participants.tsv validation and NIfTI sanity checks (``brainpad validate``).

The result is the *manifest*: one row per usable scan with the participant's variables.
Every problem found is reported in one :class:`InputError` whose message names the file,
the row or field, the bad value and the fix; nothing is written unless all checks pass.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import nibabel as nib
import numpy as np
import pandas as pd
import yaml

from brainpad.layout import discover_scans

log = logging.getLogger(__name__)

DEFAULT_GROUPS = ("HC", "sMCI", "pMCI", "AD")
MISSING = {"n/a", "na", "nan", ""}
SEX_CODES = {"m": "M", "male": "M", "f": "F", "female": "F"}
MAX_LISTED_PROBLEMS = 25
SCHEMA_PATH = (
    Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "participants.schema.yaml"
)
MANIFEST_COLUMNS = [
    "scan_id",
    "participant_id",
    "session",
    "run",
    "modality",
    "path",
    "age",
    "sex",
    "site",
    "group",
]


class InputError(ValueError):
    """Bad input data; the message says what is wrong, where, and how to fix it."""


def _raise(problems: Sequence[str], context: str) -> None:
    """Raise one InputError listing ``problems`` (at most MAX_LISTED_PROBLEMS)."""
    shown = list(problems[:MAX_LISTED_PROBLEMS])
    if len(problems) > len(shown):
        shown.append(f"... and {len(problems) - len(shown)} more problems of the same kinds")
    msg = f"{context}: {len(problems)} problem(s) found, nothing was written\n  - " + "\n  - ".join(
        shown
    )
    raise InputError(msg)


@dataclass(frozen=True)
class ValidationOptions:
    """What the dataset is checked against (from the workflow config)."""

    modalities: tuple[str, ...] = ("T1w",)
    groups: tuple[str, ...] = DEFAULT_GROUPS
    control_group: str = "HC"
    on_unlisted_scan: str = "warn"  # or "error"
    max_voxel_size_mm: float = 4.0
    schema_path: Path = SCHEMA_PATH
    threads: int = 1


# --------------------------------------------------------------------------- discovery
def check_bids_root(bids_dir: str | Path) -> Path:
    """Return the BIDS root as a Path, or raise if it is missing or not a BIDS dataset."""
    root = Path(bids_dir)
    if not root.is_dir():
        msg = (
            f"BIDS directory '{root}' does not exist or is not a directory; set "
            "`bids_dir` in config/config.yaml to your dataset's root (or 'simulated')"
        )
        raise InputError(msg)
    if not os.access(root, os.R_OK | os.X_OK):
        msg = f"BIDS directory '{root}' is not readable; fix its permissions (chmod -R u+rX)"
        raise InputError(msg)
    if not (root / "dataset_description.json").is_file():
        msg = (
            f"'{root}' is not a BIDS dataset: dataset_description.json is missing; add one "
            'with at least {"Name": ..., "BIDSVersion": "1.9.0"}'
        )
        raise InputError(msg)
    return root


# --------------------------------------------------------------------------- participants
def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    """The JSON schema of one participants.tsv row."""
    return yaml.safe_load(Path(path).read_text())


def _coerce(value: str, kinds: list[str]) -> object:
    """Turn a TSV cell into the JSON type the schema expects (or leave it for an error)."""
    text = value.strip()
    if text.lower() in MISSING:
        return None if "null" in kinds else text
    if "number" in kinds:
        try:
            number = float(text)
        except ValueError:
            return text
        return number if math.isfinite(number) else text
    return text


def _describe(error: jsonschema.ValidationError) -> str:
    kind = error.validator
    if kind == "type":
        wanted = [t for t in np.atleast_1d(error.validator_value) if t != "null"]
        return "is not a number" if "number" in wanted else f"is not of type {wanted[0]}"
    if kind == "minimum":
        return f"is below the minimum {error.validator_value:g}"
    if kind == "maximum":
        return f"is above the maximum {error.validator_value:g}"
    if kind == "enum":
        allowed = ", ".join(str(v) for v in error.validator_value if v is not None)
        return f"is not one of {allowed}"
    if kind == "pattern":
        return f"does not match the pattern {error.validator_value}"
    return error.message


def read_participants(bids_dir: str | Path, options: ValidationOptions) -> pd.DataFrame:
    """Read and validate ``participants.tsv``; return it with typed, normalised columns.

    ``age`` becomes float, ``sex`` M/F, ``group`` one of ``options.groups`` (all
    participants are controls when the column is absent); other columns are kept as text
    (numbers where every value is numeric).
    """
    path = Path(bids_dir) / "participants.tsv"
    if not path.is_file():
        msg = (
            f"{path} is missing; every BIDS dataset needs a participants.tsv with at least "
            "the columns participant_id and age (years)"
        )
        raise InputError(msg)
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        msg = f"{path} cannot be parsed as a tab-separated table ({err}); save it as UTF-8 TSV"
        raise InputError(msg) from err
    schema = load_schema(options.schema_path)
    schema["properties"]["group"]["enum"] = list(options.groups)
    missing = [c for c in schema.get("required", []) if c not in table.columns]
    if missing:
        msg = (
            f"{path} has no column(s) {', '.join(missing)} (found: {', '.join(table.columns)}); "
            "add them: participant_id as sub-<label>, age in years"
        )
        raise InputError(msg)
    if "group" not in table.columns:
        table["group"] = options.control_group
    properties = schema["properties"]
    validator = jsonschema.Draft202012Validator(schema)
    problems, records = [], []
    for row_number, row in enumerate(table.to_dict("records"), start=1):
        record = {}
        for column, raw in row.items():
            kinds = list(np.atleast_1d(properties.get(column, {}).get("type", ["string", "null"])))
            record[column] = _coerce(raw, kinds)
        if isinstance(record.get("sex"), str):
            record["sex"] = SEX_CODES.get(record["sex"].lower(), record["sex"])
        pid = row.get("participant_id", "?")
        for error in sorted(validator.iter_errors(record), key=lambda e: list(e.path)):
            column = error.path[0] if error.path else "?"
            fix = properties.get(column, {}).get("fix", "correct the value")
            problems.append(
                f"{path.name} row {row_number} ({pid}): {column} "
                f"{row.get(column, '')!r} {_describe(error)}; {fix}"
            )
        records.append(record)
    ids = table["participant_id"]
    for pid, rows in ids.groupby(ids).groups.items():
        if len(rows) > 1:
            where = " and ".join(str(r + 1) for r in rows)
            problems.append(
                f"{path.name} rows {where}: participant_id '{pid}' appears "
                f"{len(rows)} times; each participant must have exactly one row"
            )
    if problems:
        _raise(problems, str(path))
    typed = pd.DataFrame.from_records(records, columns=table.columns)
    typed["age"] = typed["age"].astype(float)
    for column in typed.columns.difference(["participant_id", "sex", "site", "group"]):
        converted = pd.to_numeric(typed[column], errors="coerce")
        if converted.notna().sum() == typed[column].notna().sum():
            typed[column] = converted
    return typed


def read_sessions(bids_dir: str | Path, participant_id: str) -> pd.DataFrame | None:
    """The optional ``sub-X/sub-X_sessions.tsv`` (per-session site or age), if present."""
    path = Path(bids_dir) / participant_id / f"{participant_id}_sessions.tsv"
    if not path.is_file():
        return None
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    table["session"] = table["session_id"].str.removeprefix("ses-")
    return table


# --------------------------------------------------------------------------- images
def check_image(path: str | Path, max_voxel_size_mm: float = 4.0) -> str | None:
    """Sanity-check one structural image; return a problem description or None.

    Checks: readable and complete, 3D (a trailing singleton 4th axis is accepted),
    plausible voxel sizes (0 < size ≤ ``max_voxel_size_mm``), finite, not all zero.
    """
    try:
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)
    except Exception as err:  # nibabel raises many types for corrupt or truncated files
        reason = str(err).strip() or type(err).__name__
        return (
            f"{path}: cannot be read ({reason}); the file is corrupt or truncated — "
            "re-export or re-copy it, or remove it from the dataset"
        )
    shape = data.shape
    if data.ndim == 4 and shape[3] == 1:
        data = data[..., 0]
    if data.ndim > 3:
        return (
            f"{path}: image is {data.ndim}D with shape {shape}, but a 3D structural image "
            "is expected; keep one volume (e.g. `fslroi in out 0 1`) or average them"
        )
    if data.ndim < 3 or min(data.shape) < 2:
        return (
            f"{path}: image has shape {shape}, which is 2D, but a 3D structural image is "
            "expected; convert the full volume from DICOM again"
        )
    zooms = tuple(float(z) for z in nib.affines.voxel_sizes(img.affine))
    if not all(0 < z <= max_voxel_size_mm for z in zooms):
        sizes = " x ".join(f"{z:g}" for z in zooms)
        return (
            f"{path}: voxel size {sizes} mm is implausible (each must be > 0 and <= "
            f"{max_voxel_size_mm:g} mm); fix the header (pixdim/affine) or re-export the scan"
        )
    if data.dtype.kind == "f":
        bad = int(np.size(data) - np.isfinite(data).sum())
        if bad:
            return (
                f"{path}: {bad} voxel(s) are NaN or infinite; replace them (e.g. with 0) "
                "or re-export the scan"
            )
    if not np.any(data):
        return f"{path}: every voxel is zero; the scan is empty — re-export it or remove it"
    return None


# --------------------------------------------------------------------------- manifest
def build_manifest(
    bids_dir: str | Path, options: ValidationOptions
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate the dataset and return ``(manifest, skipped)``.

    Raises
    ------
    InputError
        With every problem found (participants, missing scans, unreadable images).
    """
    root = check_bids_root(bids_dir)
    participants = read_participants(root, options)
    scans = discover_scans(root, options.modalities)
    listed = scans["participant_id"].isin(participants["participant_id"])
    skipped = scans.loc[~listed, ["path", "participant_id", "modality"]].assign(
        reason="participant_id not in participants.tsv"
    )
    problems = []
    if len(skipped) and options.on_unlisted_scan == "error":
        for r in skipped.itertuples():
            problems.append(
                f"{r.path}: {r.participant_id} is not in participants.tsv; add a row "
                "for it or set on_unlisted_scan: warn to skip such scans"
            )
    for r in skipped.itertuples():
        log.warning("skipping %s: %s is not in participants.tsv", r.path, r.participant_id)
    scans = scans[listed]
    have_t1 = set(scans.loc[scans.modality == "T1w", "participant_id"])
    for row_number, pid in enumerate(participants["participant_id"], start=1):
        if pid not in have_t1:
            problems.append(
                f"participants.tsv row {row_number} ({pid}): no T1w scan found under "
                f"{root / pid}/[ses-*/]anat/; add the scan or remove the row"
            )
    with ThreadPoolExecutor(max(1, options.threads)) as pool:
        checks = pool.map(lambda p: check_image(p, options.max_voxel_size_mm), scans["path"])
        problems += [c for c in checks if c]
    if problems:
        _raise(problems, f"BIDS dataset {root}")
    manifest = scans.merge(participants, on="participant_id", how="left", validate="many_to_one")
    manifest = _apply_sessions(manifest, root)
    manifest["site"] = manifest["site"].fillna("unknown")
    ordered = MANIFEST_COLUMNS + [c for c in manifest.columns if c not in MANIFEST_COLUMNS]
    return manifest[ordered].reset_index(drop=True), skipped.reset_index(drop=True)


def _apply_sessions(manifest: pd.DataFrame, root: Path) -> pd.DataFrame:
    """Per-session ``site``/``age`` from sessions.tsv files override the participant's."""
    for column in ("sex", "site"):
        if column not in manifest.columns:
            manifest[column] = None
    for pid in manifest["participant_id"].unique():
        sessions = read_sessions(root, pid)
        if sessions is None:
            continue
        for column in ("site", "age"):
            if column not in sessions.columns:
                continue
            values = dict(zip(sessions["session"], sessions[column], strict=True))
            rows = manifest["participant_id"] == pid
            override = manifest.loc[rows, "session"].map(values)
            override = override[override.notna() & ~override.str.lower().isin(MISSING)]
            if column == "age":
                override = override.astype(float)
            manifest.loc[override.index, column] = override
    return manifest


def write_table_atomic(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a TSV via a temporary file and a rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(tmp, sep="\t", index=False, na_rep="n/a")
    os.replace(tmp, path)


def validate_dataset(
    bids_dir: str | Path,
    manifest_path: str | Path,
    skipped_path: str | Path,
    options: ValidationOptions,
) -> pd.DataFrame:
    """Validate ``bids_dir`` and write the manifest and the skipped-scan list.

    Nothing is written when validation fails.
    """
    manifest, skipped = build_manifest(bids_dir, options)
    write_table_atomic(skipped, skipped_path)
    write_table_atomic(manifest, manifest_path)
    log.info(
        "manifest: %d scans of %d participants (%d skipped) -> %s",
        len(manifest),
        manifest["participant_id"].nunique(),
        len(skipped),
        manifest_path,
    )
    summary = manifest.groupby(["modality", "group"]).size().to_dict()
    log.info("scans by modality and group: %s", json.dumps({str(k): v for k, v in summary.items()}))
    return manifest
