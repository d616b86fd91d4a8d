"""``brainpad validate``: a BIDS dataset checked whole, and its manifest.

The result is the *manifest*: one row per usable scan with the participant's variables.
Every problem found is reported in one :class:`~brainpad.inputs.errors.InputError` whose
message names the file, the row or field, the bad value and the fix; nothing is written
unless all checks pass.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from brainpad.atomic import write_table_atomic
from brainpad.inputs.bids import discover_scans, misfiled_scans, misnamed_scans
from brainpad.inputs.errors import InputError, raise_problems
from brainpad.inputs.image_checks import check_image
from brainpad.inputs.tables import (
    SCHEMA_PATH,
    SESSIONS_SCHEMA_PATH,
    check_rows,
    load_schema,
    read_tsv,
)

log = logging.getLogger(__name__)


DEFAULT_GROUPS = ("HC", "sMCI", "pMCI", "AD")


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


@dataclass(frozen=True)
class ValidationOptions:
    """What the dataset is checked against (from the workflow config)."""

    modalities: tuple[str, ...] = ("T1w",)
    required: tuple[str, ...] = ()  # suffixes every T1w session needs (FLAIR a model reads)
    groups: tuple[str, ...] | None = DEFAULT_GROUPS  # None: any label (apply mode, predict)
    control_group: str = "HC"
    on_unlisted_scan: str = "warn"  # or "error"
    max_voxel_size_mm: float = 4.0
    max_image_mb: float = 2048.0
    schema_path: Path = SCHEMA_PATH
    threads: int = 1
    unlabelled: str = "error"  # or "use": a missing age makes the participant unlabelled
    participant_label: tuple[str, ...] = ()  # only these participants (BIDS apps' flag)
    exclude_participant_label: tuple[str, ...] = ()  # all but these


def participant_ids(labels: Sequence[str]) -> list[str]:
    """BIDS participant labels with or without ``sub-`` as participant ids (``sub-01``)."""
    return [label if label.startswith("sub-") else f"sub-{label}" for label in labels]


def select_participants(participants: pd.DataFrame, options: ValidationOptions) -> pd.DataFrame:
    """The rows of ``participants`` that ``participant_label`` and
    ``exclude_participant_label`` choose (BIDS apps' ``--participant-label``).

    Raises
    ------
    InputError
        Naming every label that is not in participants.tsv.
    """
    chosen = participant_ids(options.participant_label)
    excluded = participant_ids(options.exclude_participant_label)
    known = set(participants["participant_id"])
    problems = [
        f"{key}: '{label}' is not in participants.tsv; use labels of its participant_id "
        "column (with or without sub-)"
        for key, labels in (
            ("participant_label", chosen),
            ("exclude_participant_label", excluded),
        )
        for label in labels
        if label not in known
    ]
    if problems:
        raise_problems(problems, "participant selection")
    keep = participants["participant_id"].isin(chosen) if chosen else True
    keep = keep & ~participants["participant_id"].isin(excluded)
    selected = participants[keep].reset_index(drop=True)
    if selected.empty:
        msg = (
            "participant selection: participant_label and exclude_participant_label leave "
            "nobody; choose at least one participant"
        )
        raise InputError(msg)
    return selected


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


def read_participants(bids_dir: str | Path, options: ValidationOptions) -> pd.DataFrame:
    """Read and validate ``participants.tsv``; return it with typed, normalised columns.

    ``age`` becomes float, ``sex`` M/F (or missing), ``group`` one of ``options.groups``
    (any label when it is None; all participants are controls when the column is absent);
    other columns are kept as text (numbers where every value is numeric). A missing age
    is an error unless ``options.unlabelled`` is ``"use"``: it is then NaN (an unlabelled
    participant).
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
    if options.groups is not None:
        schema["properties"]["group"]["enum"] = list(options.groups)
    if options.unlabelled == "use":
        schema["properties"]["age"]["type"] = ["number", "null"]
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
        raise_problems(problems, str(path))
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
    listed_participants = read_participants(root, options)
    participants = select_participants(listed_participants, options)
    scans = discover_scans(root, options.modalities)
    problems = misnamed_scans(root, options.modalities, set(scans["path"]))
    problems += misfiled_scans(root, scans)
    unselected = scans["participant_id"].isin(listed_participants["participant_id"]) & ~scans[
        "participant_id"
    ].isin(participants["participant_id"])
    if unselected.any():
        log.info(
            "%d scans of %d participants left out by participant_label / exclude_participant_label",
            unselected.sum(),
            scans.loc[unselected, "participant_id"].nunique(),
        )
    scans = scans[~unselected]
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
    problems += missing_companions(scans, options.required)
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
        raise_problems(problems, f"BIDS dataset {root}")
    manifest = scans.merge(participants, on="participant_id", how="left", validate="many_to_one")
    manifest = _apply_sessions(manifest, sessions)
    manifest["site"] = manifest["site"].fillna("unknown")
    ordered = MANIFEST_COLUMNS + [c for c in manifest.columns if c not in MANIFEST_COLUMNS]
    return manifest[ordered].reset_index(drop=True), skipped.reset_index(drop=True)


def missing_companions(scans: pd.DataFrame, required: Sequence[str]) -> list[str]:
    """A problem for every T1w scan whose session lacks a scan of a ``required`` suffix.

    A model that reads FLAIR needs one in every session it predicts; without this check
    the run would stop only after preprocessing every scan.
    """
    problems = []
    t1w = scans[scans["modality"] == "T1w"]
    for modality in required:
        have = set(
            scans.loc[scans["modality"] == modality, ["participant_id", "session"]].itertuples(
                index=False, name=None
            )
        )
        for row in t1w.itertuples():
            if (row.participant_id, row.session) not in have:
                expected = Path(row.path).name.replace("_T1w.", f"_{modality}.")
                problems.append(
                    f"{row.path}: no {modality} in this session, but a model reads "
                    f"'{modality.lower()}' (config models.<name>.inputs); add {expected} "
                    f"beside it, or drop '{modality.lower()}' from the models' inputs"
                )
    return problems


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
