"""``brainpad folds``, ``arrays``, ``regions`` (``workflow/rules/cohort.smk``)."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


log = logging.getLogger("brainpad")


def _cmd_folds(args: argparse.Namespace) -> None:
    import pandas as pd

    from brainpad.atomic import write_table_atomic
    from brainpad.cohort.folds import scan_roles

    manifest = pd.read_csv(args.manifest, sep="\t", dtype={"session": str, "run": str})
    qc = pd.read_csv(args.qc, sep="\t")
    table = scan_roles(
        manifest,
        qc,
        args.control_group,
        args.k,
        args.calibration_fraction,
        args.test_fraction,
        args.seed,
        args.split,
    )
    write_table_atomic(table, args.out)
    counts = table.drop_duplicates("participant_id")["role"].value_counts().to_dict()
    log.info("participants per role: %s", counts)


def _scan_maps(folds_path: str, preproc_dir: str, tissues: tuple[str, ...]) -> pd.DataFrame:
    """The scans of folds.tsv with the paths of their preprocessed images, one column per
    tissue (``GM``, ``WM``, ``CSF``: the modulated maps) or image (``T1w``, ``FLAIR``)."""
    import pandas as pd

    from brainpad.paths import preproc_paths

    scans = pd.read_csv(folds_path, sep="\t")[["scan_id", "participant_id"]]
    for tissue in tissues:
        key = "t1" if tissue == "T1w" else tissue.lower()
        scans[tissue] = [preproc_paths(preproc_dir, scan_id)[key] for scan_id in scans["scan_id"]]
    return scans


def _cmd_arrays(args: argparse.Namespace) -> None:
    from pathlib import Path

    from brainpad.cohort.arrays import INPUT_CHANNELS, build_arrays

    channels = tuple(dict.fromkeys(c for i in ("tissue", *args.inputs) for c in INPUT_CHANNELS[i]))
    scans = _scan_maps(args.folds, args.preproc_dir, channels)
    for channel in channels:
        missing = scans.loc[~scans[channel].map(lambda p: Path(p).is_file()), "scan_id"]
        if len(missing):
            msg = (
                f"arrays: {len(missing)} scans have no preprocessed {channel} (first: "
                f"{missing.iloc[0]}, expected {scans.loc[missing.index[0], channel]}); a model "
                f"reads '{channel.lower()}' (config models.<name>.inputs): give every session "
                f"a {channel} scan, or drop '{channel.lower()}' from the models' inputs"
            )
            raise SystemExit(msg)
    build_arrays(scans, args.out_dir, args.inputs, args.margin)


def _cmd_regions(args: argparse.Namespace) -> None:
    from brainpad.atomic import write_table_atomic
    from brainpad.cohort.regions import cohort_roi_volumes

    tissues = ("GM", "WM", "CSF")
    scans = _scan_maps(args.folds, args.preproc_dir, tissues)
    table = cohort_roi_volumes(scans, {t: t for t in tissues}, args.atlas, args.labels)
    write_table_atomic(table, args.out)
    log.info("ROI volumes: %d scans x %d columns", len(table), table.shape[1] - 1)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this stage's subcommands on ``brainpad``'s subparsers."""
    fol = sub.add_parser("folds", help="roles (train/calibration/test/clinical) and CV folds")
    fol.add_argument("--manifest", required=True)
    fol.add_argument("--qc", required=True, help="QC table from qc-summary")
    fol.add_argument("--out", required=True)
    fol.add_argument("--control-group", default="HC")
    fol.add_argument("--k", type=int, default=5, help="cross-validation folds")
    fol.add_argument("--calibration-fraction", type=float, default=0.15)
    fol.add_argument("--test-fraction", type=float, default=0.15)
    fol.add_argument("--seed", type=int, default=42)
    fol.add_argument(
        "--split",
        choices=["blocked", "kl"],
        default="blocked",
        help="held-out roles: one blocked randomisation, or the best of 200 by age KL (study 4)",
    )
    fol.set_defaults(func=_cmd_folds)
    arr = sub.add_parser("arrays", help="stack cropped GM/WM maps into memory-mapped arrays")
    arr.add_argument("--folds", required=True, help="folds.tsv (the scans, in order)")
    arr.add_argument("--preproc-dir", required=True)
    arr.add_argument("--out-dir", required=True)
    arr.add_argument("--margin", type=int, default=2, help="voxels around the union brain")
    arr.add_argument(
        "--inputs",
        nargs="+",
        choices=["tissue", "t1w", "flair"],
        default=["tissue"],
        help="model inputs to build arrays for (tissue maps, T1w, FLAIR)",
    )
    arr.set_defaults(func=_cmd_arrays)
    reg = sub.add_parser("regions", help="Harvard-Oxford ROI tissue volumes of every scan")
    reg.add_argument("--folds", required=True, help="folds.tsv (the scans, in order)")
    reg.add_argument("--preproc-dir", required=True)
    reg.add_argument("--atlas", required=True, help="atlas label image on the MNI grid")
    reg.add_argument("--labels", required=True, help="atlas label table (TSV)")
    reg.add_argument("--out", required=True)
    reg.set_defaults(func=_cmd_regions)
