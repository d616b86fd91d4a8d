"""BIDS discovery, participants.tsv validation and NIfTI sanity checks (``brainpad validate``).

The result is the *manifest*: one row per usable scan with the participant's variables.
Every problem found is reported in one :class:`InputError` whose message names the file,
the row or field, the bad value and the fix; nothing is written unless all checks pass.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import yaml

from brainpad.atomic import atomic_path
from brainpad.image_checks import check_image
from brainpad.layout import discover_scans, misfiled_scans, misnamed_scans

log = logging.getLogger(__name__)

DEFAULT_GROUPS = ("HC", "sMCI", "pMCI", "AD")
MISSING = {"n/a", "na", "nan", ""}
SEX_CODES = {"m": "M", "male": "M", "f": "F", "female": "F"}
MAX_LISTED_PROBLEMS = 25
SCHEMAS = Path(__file__).resolve().parents[2] / "workflow" / "schemas"
SCHEMA_PATH = SCHEMAS / "participants.schema.yaml"
SESSIONS_SCHEMA_PATH = SCHEMAS / "sessions.schema.yaml"
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
    """Bad input data; the message says what is wrong, where, and how to fix it.

    ``problems`` holds the message's problems one per line (one, the message itself,
    unless it lists several), for a caller that gathers problems from many files.
    """

    def __init__(self, message: str, problems: Sequence[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems) if problems is not None else [message]


def _raise(problems: Sequence[str], context: str) -> None:
    """Raise one InputError listing ``problems`` (at most MAX_LISTED_PROBLEMS)."""
    shown = list(problems[:MAX_LISTED_PROBLEMS])
    if len(problems) > len(shown):
        shown.append(f"... and {len(problems) - len(shown)} more problems of the same kinds")
    msg = f"{context}: {len(problems)} problem(s) found, nothing was written\n  - " + "\n  - ".join(
        shown
    )
    raise InputError(msg, problems)


@dataclass(frozen=True)
class ValidationOptions:
    """What the dataset is checked against (from the workflow config)."""

    modalities: tuple[str, ...] = ("T1w",)
    groups: tuple[str, ...] = DEFAULT_GROUPS
    control_group: str = "HC"
    on_unlisted_scan: str = "warn"  # or "error"
    max_voxel_size_mm: float = 4.0
    max_image_mb: float = 2048.0
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
    description = root / "dataset_description.json"
    try:
        json.loads(description.read_text(encoding="utf-8-sig"))
    except (ValueError, OSError) as err:  # JSONDecodeError and UnicodeDecodeError included
        msg = (
            f"{description} is not valid JSON ({err}); fix it, e.g. "
            '{"Name": "my study", "BIDSVersion": "1.9.0"}'
        )
        raise InputError(msg) from err
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


def read_tsv(path: Path, what: str) -> pd.DataFrame:
    """Read a BIDS TSV as text cells, or raise an InputError that says what is wrong.

    Refused: a folder in its place, an empty file, text that is not UTF-8, rows that do
    not parse, duplicate or blank column names. A UTF-8 byte-order mark and spaces around
    column names are tolerated; comma-separated files get a hint.
    """
    if path.is_symlink() and not path.exists():
        msg = f"{path} is a broken symbolic link; fix it or copy the {what} file in its place"
        raise InputError(msg)
    if path.is_dir():
        msg = f"{path} is a folder, not a file; replace it with the tab-separated {what} table"
        raise InputError(msg)
    try:
        raw = path.read_bytes()
    except OSError as err:
        msg = f"{path} cannot be read ({err.strerror}); fix its permissions (chmod u+r)"
        raise InputError(msg) from err
    if not raw.strip():
        msg = (
            f"{path} is empty; write a tab-separated header row ({what} columns) and one row "
            "per entry"
        )
        raise InputError(msg)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        msg = (
            f"{path} is not UTF-8 text (byte {err.start}: {raw[err.start : err.start + 1]!r}); "
            "save it as UTF-8 tab-separated text"
        )
        raise InputError(msg) from err
    lines = text.splitlines()
    header = [c.strip() for c in lines[0].split("\t")]
    if len(header) == 1 and "," in header[0]:
        msg = (
            f"{path} has one column '{header[0]}': it looks comma-separated; BIDS tables "
            "are tab-separated — save it as TSV"
        )
        raise InputError(msg)
    doubled = sorted({c for c in header if header.count(c) > 1})
    if doubled or "" in header:
        names = ", ".join(repr(c) for c in doubled) if doubled else "a blank name"
        msg = f"{path}: the header has {names} more than once or blank; give every column one name"
        raise InputError(msg)
    for number, line in enumerate(lines[1:], start=1):
        cells = line.count("\t") + 1
        if line.strip() and cells != len(header):
            msg = (
                f"{path} row {number} has {cells} cells but the header has {len(header)}; "
                "give every row one cell per column (n/a where a value is missing)"
            )
            raise InputError(msg)
    try:
        table = pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, ValueError) as err:
        msg = f"{path} cannot be parsed as a tab-separated table ({err}); save it as UTF-8 TSV"
        raise InputError(msg) from err
    table.columns = header
    return table.apply(lambda column: column.str.strip())


def check_rows(table: pd.DataFrame, schema: dict, path: Path, id_column: str) -> list[dict]:
    """Typed records of ``table``'s rows, or an InputError listing every cell that fails.

    Each cell is coerced to the schema's type (``n/a`` or empty = missing) and the row is
    validated; problems name the file, the row, the entry's id, the column, the value and
    the schema's ``fix``. Ids must be unique.
    """
    missing = [c for c in schema.get("required", []) if c not in table.columns]
    if missing:
        msg = (
            f"{path} has no column(s) {', '.join(missing)} (found: {', '.join(table.columns)}); "
            f"add them: {schema.get('columns_fix', 'see the schema')}"
        )
        raise InputError(msg)
    if table.empty:
        msg = f"{path} has a header but no rows; add one row per {id_column.split('_')[0]}"
        raise InputError(msg)
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
        entry = row.get(id_column, "?")
        for error in sorted(validator.iter_errors(record), key=lambda e: list(e.path)):
            column = error.path[0] if error.path else "?"
            fix = properties.get(column, {}).get("fix", "correct the value")
            problems.append(
                f"{path.name} row {row_number} ({entry}): {column} "
                f"{row.get(column, '')!r} {_describe(error)}; {fix}"
            )
        records.append(record)
    ids = table[id_column]
    for entry, rows in ids.groupby(ids).groups.items():
        if len(rows) > 1:
            where = " and ".join(str(r + 1) for r in rows)
            problems.append(
                f"{path.name} rows {where}: {id_column} '{entry}' appears "
                f"{len(rows)} times; each must have exactly one row"
            )
    if problems:
        _raise(problems, str(path))
    return records


def read_participants(bids_dir: str | Path, options: ValidationOptions) -> pd.DataFrame:
    """Read and validate ``participants.tsv``; return it with typed, normalised columns.

    ``age`` becomes float, ``sex`` M/F, ``group`` one of ``options.groups`` (all
    participants are controls when the column is absent); other columns are kept as text
    (numbers where every value is numeric).
    """
    path = Path(bids_dir) / "participants.tsv"
    if not path.exists() and not path.is_symlink():
        msg = (
            f"{path} is missing; every BIDS dataset needs a participants.tsv with at least "
            "the columns participant_id and age (years)"
        )
        raise InputError(msg)
    table = read_tsv(path, "participants")
    schema = load_schema(options.schema_path)
    schema["properties"]["group"]["enum"] = list(options.groups)
    if "group" not in table.columns and "participant_id" in table.columns:
        table["group"] = options.control_group
    records = check_rows(table, schema, path, "participant_id")
    typed = pd.DataFrame.from_records(records, columns=table.columns)
    typed["age"] = typed["age"].astype(float)
    for column in typed.columns.difference(["participant_id", "sex", "site", "group"]):
        converted = pd.to_numeric(typed[column], errors="coerce")
        if converted.notna().sum() == typed[column].notna().sum():
            typed[column] = converted
    return typed


def read_sessions(
    bids_dir: str | Path, participant_id: str, sessions: Sequence[str] = ()
) -> pd.DataFrame | None:
    """The optional ``sub-X/sub-X_sessions.tsv`` (per-session site or age), validated.

    Checked like participants.tsv (``sessions.schema.yaml``: ``session_id`` as
    ``ses-<label>``, ages numeric in 0–120), and every row must name one of the
    participant's ``sessions`` (labels without ``ses-``) when they are given.
    Returns None when the file does not exist.
    """
    path = Path(bids_dir) / participant_id / f"{participant_id}_sessions.tsv"
    if not path.exists() and not path.is_symlink():
        return None
    table = read_tsv(path, "sessions")
    records = check_rows(table, load_schema(SESSIONS_SCHEMA_PATH), path, "session_id")
    typed = pd.DataFrame.from_records(records, columns=table.columns)
    typed["session"] = typed["session_id"].str.removeprefix("ses-")
    unknown = sorted(set(typed["session"]) - set(sessions))
    if unknown:
        have = ", ".join(f"ses-{s}" for s in sessions) or "no ses-* folder"
        problems = [
            f"{path.name}: session_id 'ses-{s}' has no scan folder {participant_id}/ses-{s}/anat "
            f"(scans found in: {have}); correct the id or remove the row"
            for s in unknown
        ]
        _raise(problems, str(path))
    return typed


# --------------------------------------------------------------------------- manifest
def build_manifest(
    bids_dir: str | Path, options: ValidationOptions
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate the dataset and return ``(manifest, skipped)``.

    Raises
    ------
    InputError
        With every problem found (participants, sessions, file names, duplicate scans,
        missing scans, unreadable images).
    """
    root = check_bids_root(bids_dir)
    participants = read_participants(root, options)
    scans = discover_scans(root, options.modalities)
    problems = misnamed_scans(root, options.modalities, set(scans["path"]))
    problems += misfiled_scans(root, scans)
    listed = scans["participant_id"].isin(participants["participant_id"])
    skipped = scans.loc[~listed, ["path", "participant_id", "modality"]].assign(
        reason="participant_id not in participants.tsv"
    )
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
    sessions = {}
    for pid, labels in scans.groupby("participant_id")["session"]:
        try:
            sessions[pid] = read_sessions(root, pid, sorted(set(labels) - {""}))
        except InputError as err:
            problems += err.problems
    with ThreadPoolExecutor(max(1, options.threads)) as pool:
        checks = pool.map(
            lambda p: check_image(p, options.max_voxel_size_mm, options.max_image_mb),
            scans["path"],
        )
        problems += [c for c in checks if c]
    if problems:
        _raise(problems, f"BIDS dataset {root}")
    manifest = scans.merge(participants, on="participant_id", how="left", validate="many_to_one")
    manifest = _apply_sessions(manifest, sessions)
    manifest["site"] = manifest["site"].fillna("unknown")
    ordered = MANIFEST_COLUMNS + [c for c in manifest.columns if c not in MANIFEST_COLUMNS]
    return manifest[ordered].reset_index(drop=True), skipped.reset_index(drop=True)


def _apply_sessions(
    manifest: pd.DataFrame, sessions: dict[str, pd.DataFrame | None]
) -> pd.DataFrame:
    """Per-session ``site``/``age`` from sessions.tsv files override the participant's.

    ``session_site`` records whether a scan's site came from its session (True) or only
    from the participant (False): repeat scans of one participant can be told apart as
    test–retest or between-site only in the first case.
    """
    for column in ("sex", "site"):
        if column not in manifest.columns:
            manifest[column] = None
    manifest["session_site"] = False
    for pid, table in sessions.items():
        if table is None:
            continue
        rows = manifest["participant_id"] == pid
        for column in ("site", "age"):
            if column not in table.columns:
                continue
            values = dict(zip(table["session"], table[column], strict=True))
            override = manifest.loc[rows, "session"].map(values).dropna()
            manifest.loc[override.index, column] = override
            if column == "site":
                manifest.loc[override.index, "session_site"] = True
    manifest["age"] = manifest["age"].astype(float)
    return manifest


def write_table_atomic(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a TSV via a temporary file and a rename, so readers never see half a file."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False, na_rep="n/a")


def validate_dataset(
    bids_dir: str | Path,
    manifest_path: str | Path,
    skipped_path: str | Path,
    options: ValidationOptions,
) -> pd.DataFrame:
    """Validate ``bids_dir`` and write the manifest and the skipped-scan list.

    Nothing is written when validation fails, and a manifest and skipped list left by an
    earlier run are removed: no later step may read a manifest of a dataset that no
    longer validates.
    """
    try:
        manifest, skipped = build_manifest(bids_dir, options)
    except InputError:
        for stale in (manifest_path, skipped_path):
            Path(stale).unlink(missing_ok=True)
        raise
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
