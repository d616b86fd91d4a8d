"""BIDS scan names: discovery, misnamed and misfiled scans, and where the dataset lies.

Only names, no image libraries: planning imports this module for every run
(``benchmarks/plan_scale.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

SCAN_PATTERN = re.compile(
    r"^(?P<subject>sub-[A-Za-z0-9]+)"
    r"(?:_ses-(?P<session>[A-Za-z0-9]+))?"
    r"(?P<other>(?:_(?:task|acq|ce|rec)-[A-Za-z0-9]+)*)"
    r"(?:_run-(?P<run>[0-9]+))?"
    r"_(?P<modality>[A-Za-z0-9]+)\.nii(?:\.gz)?$"
)


# what the cohort-level rules read of a scan's preprocessing; the other files
# (:func:`output_paths`) are written beside them but not declared to Snakemake
BIDS_ENTITY = re.compile(r"^[a-z]+-[A-Za-z0-9]+$")


def describe_scan(path: str | Path) -> dict | None:
    """BIDS entities of a scan file name, or None if it is not ``sub-*_<suffix>.nii[.gz]``.

    ``scan_id`` is the file name without the modality suffix and extension, e.g.
    ``sub-01_ses-1_run-2``.
    """
    name = Path(path).name
    match = SCAN_PATTERN.match(name)
    if not match:
        return None
    return {
        "scan_id": name[: name.rindex("_" + match["modality"])],
        "participant_id": match["subject"],
        "session": match["session"] or "",
        "run": match["run"] or "",
        "modality": match["modality"],
        "path": str(path),
    }


def discover_scans(bids_dir: str | Path, modalities: Iterable[str]) -> pd.DataFrame:
    """Find ``sub-*/[ses-*/]anat/*_<modality>.nii[.gz]`` files from their names only.

    Returns
    -------
    DataFrame
        ``scan_id, participant_id, session, run, modality, path`` sorted by path.
    """
    root = Path(bids_dir)
    wanted = set(modalities)
    rows = []
    for anat in sorted([*root.glob("sub-*/anat"), *root.glob("sub-*/ses-*/anat")]):
        for path in sorted(anat.iterdir()):
            scan = describe_scan(path)
            if scan and scan["modality"] in wanted:
                rows.append(scan)
    columns = ["scan_id", "participant_id", "session", "run", "modality", "path"]
    return pd.DataFrame(rows, columns=columns)


def misnamed_scans(root: Path, modalities: Sequence[str], found: set[str]) -> list[str]:
    """Files that look like scans of a wanted modality but that discovery cannot use.

    A scan is never dropped silently: a file under ``sub-*/`` ending in ``_<modality>.nii``
    or ``.nii.gz`` (any letter case) that :func:`brainpad.inputs.bids.discover_scans` did not
    take gets a problem saying why (suffix case, folder, or a label with characters other
    than letters and digits). Hidden files (``._sub-01_T1w.nii.gz`` from macOS) are ignored.
    """
    wanted = {m.lower(): m for m in modalities}
    problems = []
    for path in sorted(root.glob("sub-*/**/*.nii*")):
        name = path.name
        if str(path) in found or name.startswith(".") or not re.search(r"\.nii(\.gz)?$", name):
            continue
        stem = re.sub(r"\.nii(\.gz)?$", "", name)
        suffix = stem.rsplit("_", 1)[-1]
        if suffix.lower() not in wanted:
            continue
        proper = wanted[suffix.lower()]
        rel = path.relative_to(root)
        if suffix != proper:
            why = f"the suffix '_{suffix}' must be '_{proper}' (BIDS suffixes are case-sensitive)"
            fix = f"rename it to {name.replace('_' + suffix + '.', '_' + proper + '.')}"
        elif not _in_anat_folder(rel):
            why = "it is not in a sub-<label>/[ses-<label>/]anat/ folder"
            fix = "move it there"
        else:
            bad = [p for p in stem.split("_")[:-1] if not BIDS_ENTITY.match(p)]
            why = (
                f"'{bad[0]}' is not a BIDS key-value pair with a letters-and-digits label"
                if bad
                else "its name does not follow sub-<label>[_ses-<label>][_run-<index>]_<suffix>"
            )
            fix = "rename the file (and its ses-* folder) with letters and digits only"
        problems.append(f"{path}: not used as a {proper} scan because {why}; {fix}")
    return problems


def _in_anat_folder(rel: Path) -> bool:
    parts = rel.parts
    return (len(parts) == 3 and parts[1] == "anat") or (
        len(parts) == 4 and parts[1].startswith("ses-") and parts[2] == "anat"
    )


def misfiled_scans(root: Path, scans: pd.DataFrame) -> list[str]:
    """Scans filed under another subject's or session's folder, and scans found twice.

    The file name's ``sub-``/``ses-`` must match its folders, and one scan (the same
    ``scan_id`` and modality) must exist once: ``.nii`` beside ``.nii.gz``, or a copy
    under the wrong folder, would give two manifest rows with one identity.
    """
    problems = []
    for r in scans.itertuples():
        parts = Path(r.path).relative_to(root).parts
        folder_session = parts[1].removeprefix("ses-") if len(parts) == 4 else ""
        if parts[0] != r.participant_id or folder_session != r.session:
            where = "/".join(parts[:-2]) if len(parts) == 4 else parts[0]
            named = r.participant_id + (f"/ses-{r.session}" if r.session else "")
            problems.append(
                f"{r.path}: the file name says {named} but it is filed under {where}/; "
                "move it to its own folder or correct its name"
            )
    for (scan_id, modality), rows in scans.groupby(["scan_id", "modality"])["path"]:
        if len(rows) > 1:
            problems.append(
                f"{scan_id} ({modality}) is present {len(rows)} times: {', '.join(rows)}; "
                "keep one file per scan"
            )
    return problems


def listed_participants(bids_dir: str | Path) -> list[str] | None:
    """The ``participant_id`` column of ``participants.tsv``, or None if it cannot be read.

    Planning only needs the ids to leave out scans of unlisted subjects; whatever is
    wrong with the file (missing, empty, not a table, no such column) is left for
    ``brainpad validate`` to report with its fix.
    """
    path = Path(bids_dir) / "participants.tsv"
    try:
        listed = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError):
        return None
    if "participant_id" not in listed.columns:
        return None
    return listed["participant_id"].str.strip().tolist()


def dataset_overlap(bids_dir: str | Path, workdir: str | Path) -> str | None:
    """Why the workflow's outputs would land in a real dataset (or it in them), or None.

    The workflow writes ``results/`` and ``.snakemake/`` in ``workdir``: neither may be
    inside ``bids_dir``, and ``bids_dir`` may not be inside ``results/``.
    """
    bids = Path(bids_dir).resolve()
    work = Path(workdir).resolve()
    results = work / "results"
    if work == bids or bids in work.parents:
        return (
            f"bids_dir '{bids_dir}' contains the working directory {work}, so results/ and "
            ".snakemake/ would be written inside the dataset; run the workflow from another "
            "directory (e.g. the brainpad checkout, or snakemake --directory /scratch/run)"
        )
    if bids == results or results in bids.parents:
        return (
            f"bids_dir '{bids_dir}' lies inside the workflow's output folder {results}, which "
            "the workflow writes and cleans; move the dataset elsewhere"
        )
    return None
