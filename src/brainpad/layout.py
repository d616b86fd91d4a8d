"""Where brainpad's inputs and outputs live: BIDS scan names and every derived path.

Only names, no image libraries: the workflow's planning (``workflow/rules/common.smk``)
imports this module for every run, so it must load in milliseconds even when a cohort
has 10,000 scans (``benchmarks/plan_scale.py``).
"""

from __future__ import annotations

import re
import zlib
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
TISSUES = ("CSF", "GM", "WM")
# what the cohort-level rules read of a scan's preprocessing; the other files
# (:func:`output_paths`) are written beside them but not declared to Snakemake
BIDS_ENTITY = re.compile(r"^[a-z]+-[A-Za-z0-9]+$")
CONSUMED = ("gm", "wm", "csf", "qc")
MAP_KINDS = ("brainage", "brainPAD", "brainPADcorrected")


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
    or ``.nii.gz`` (any letter case) that :func:`brainpad.layout.discover_scans` did not
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
    }
    return {k: Path(directory) / v for k, v in names.items()}


def output_paths(out_dir: str | Path, scan_id: str) -> dict[str, Path]:
    """Every file :func:`brainpad.preprocess.preprocess_scan` writes for one scan."""
    base = Path(out_dir) / scan_id
    paths = {
        f"{tissue.lower()}": Path(f"{base}_space-MNI_label-{tissue}_desc-modulated_probseg.nii.gz")
        for tissue in TISSUES
    }
    paths.update(
        t1=Path(f"{base}_space-MNI_desc-preproc_T1w.nii.gz"),
        mask=Path(f"{base}_desc-brain_mask.nii.gz"),
        affine=Path(f"{base}_from-T1w_to-MNI_mode-image_xfm.mat"),
        warp=Path(f"{base}_from-T1w_to-MNI_mode-image_warp.nii.gz"),
        inverse_warp=Path(f"{base}_from-MNI_to-T1w_mode-image_warp.nii.gz"),
        qc=Path(f"{base}_desc-qc.json"),
        montage=Path(f"{base}_desc-qc.png"),
    )
    return paths


def preproc_paths(preproc_dir: str | Path, participant: str, scan_id: str) -> dict[str, Path]:
    """:func:`output_paths` of one scan in its participant's folder under ``preproc_dir``."""
    return output_paths(Path(preproc_dir) / participant, scan_id)


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


def participant_of(scan_id: str) -> str:
    """The ``sub-<label>`` a scan id (``sub-01_ses-1_run-2``) belongs to."""
    return scan_id.split("_", 1)[0]


def array_files(out_dir: str | Path) -> dict[str, Path]:
    """The files written by :func:`brainpad.arrays.build_arrays` in ``out_dir``."""
    out = Path(out_dir)
    return {
        "volumes": out / "volumes.npy",
        "slices": out / "slices.npy",
        "index": out / "index.tsv",
    }


def map_paths(out_dir: str | Path, participant: str, scan_id: str) -> dict[str, Path]:
    """The three local-map NIfTIs of one scan (BIDS-derivatives style names)."""
    folder = Path(out_dir) / participant
    return {k: folder / f"{scan_id}_space-MNI_desc-{k}_map.nii.gz" for k in MAP_KINDS}


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
