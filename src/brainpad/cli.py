"""``brainpad <command>``: one subcommand per workflow rule.

Each command is a thin wrapper: parse arguments, set up logging, call the module that
owns the logic. Input problems (:class:`brainpad.inputs.InputError`) are printed as one
clear message without a traceback and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from brainpad.preprocess import PreprocessOptions

from brainpad import __version__
from brainpad.cli_results import add_result_commands
from brainpad.inputs import SCHEMA_PATH, InputError, ValidationOptions, validate_dataset

log = logging.getLogger("brainpad")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _cmd_simulate(args: argparse.Namespace) -> None:
    from brainpad.simulate import Settings, simulate_cohort

    config = {"simulation": json.loads(args.settings) if args.settings else {}}
    if args.seed is not None:
        config["seed"] = args.seed
    info = simulate_cohort(Settings.from_config(config), args.out_dir, threads=args.threads)
    log.info(
        "floor MAE %.2f y (expected), %.2f y (this sample); %d scans in %.1f s",
        info["floor_mae_expected"],
        info["floor_mae_sample"],
        info["n_scans"],
        info["seconds"],
    )


def _cmd_validate(args: argparse.Namespace) -> None:
    options = ValidationOptions(
        modalities=tuple(args.modalities),
        groups=tuple(args.groups),
        control_group=args.control_group,
        on_unlisted_scan=args.on_unlisted_scan,
        max_voxel_size_mm=args.max_voxel_size,
        max_image_mb=args.max_image_mb,
        schema_path=Path(args.schema),
        threads=args.threads,
    )
    validate_dataset(args.bids_dir, args.manifest, args.skipped, options)


def _cmd_templates(args: argparse.Namespace) -> None:
    from brainpad.templates import write_template_files

    write_template_files(args.out_dir, args.voxel_size, args.atlas_threshold)


def _preprocess_options(args: argparse.Namespace) -> PreprocessOptions:
    from brainpad.preprocess import PreprocessOptions
    from brainpad.preprocess.qc import QCThresholds

    return PreprocessOptions(
        voxel_size=args.voxel_size,
        fwhm_mm=args.fwhm,
        syn_iterations=tuple(args.syn_iterations),
        prior_weight=args.prior_weight,
        modulation=args.modulation,
        qc_thresholds=QCThresholds.from_config(json.loads(args.qc)),
        seed=args.seed,
    )


def _cmd_preprocess(args: argparse.Namespace) -> None:
    from brainpad.preprocess import preprocess_scan

    options = _preprocess_options(args)
    preprocess_scan(args.scan, args.scan_id, args.templates_dir, args.out_dir, options)


def _cmd_preprocess_batch(args: argparse.Namespace) -> None:
    from brainpad.preprocess import preprocess_batch

    options = _preprocess_options(args)
    preprocess_batch(
        args.scans, args.scan_ids, args.templates_dir, args.preproc_dir, options, args.qc_table
    )


def _add_preprocess_options(parser: argparse.ArgumentParser) -> None:
    """The options ``preprocess`` and ``preprocess-batch`` share."""
    parser.add_argument("--templates-dir", required=True)
    parser.add_argument("--voxel-size", type=float, required=True, help="working voxel (mm)")
    parser.add_argument("--fwhm", type=float, default=4.0, help="smoothing FWHM (mm), 0 = none")
    parser.add_argument("--syn-iterations", type=int, nargs="+", default=[40, 20, 10])
    parser.add_argument("--prior-weight", type=float, default=0.25)
    parser.add_argument(
        "--modulation",
        choices=["full", "nonlinear"],
        default="full",
        help="Jacobian modulation: total (tissue volume) or nonlinear only (head-size free)",
    )
    parser.add_argument(
        "--qc", default="{}", help="QC thresholds as JSON (the config's qc section)"
    )
    parser.add_argument("--seed", type=int, default=42, help="ANTs random seed")


def _cmd_qc_summary(args: argparse.Namespace) -> None:
    from brainpad.inputs import write_table_atomic
    from brainpad.preprocess.qc import manifest_qc_files, summarise

    files = list(args.qc_files)
    if args.manifest:
        files += manifest_qc_files(args.manifest, args.preproc_dir)
    if not files:
        msg = "qc-summary: no QC files; name them, or give --manifest and --preproc-dir"
        raise SystemExit(msg)
    table = summarise(files)
    write_table_atomic(table, args.out)
    failed = table[~table["passed"]]
    for row in failed.itertuples():
        log.warning("QC failed for %s: %s (excluded from training)", row.scan_id, row.reasons)
    log.info("QC: %d of %d scans passed", len(table) - len(failed), len(table))


def _cmd_folds(args: argparse.Namespace) -> None:
    import pandas as pd

    from brainpad.folds import scan_roles
    from brainpad.inputs import write_table_atomic

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
    )
    write_table_atomic(table, args.out)
    counts = table.drop_duplicates("participant_id")["role"].value_counts().to_dict()
    log.info("participants per role: %s", counts)


def _scan_maps(folds_path: str, preproc_dir: str, tissues: tuple[str, ...]) -> pd.DataFrame:
    """The scans of folds.tsv with the paths of their modulated maps, one column per tissue."""
    import pandas as pd

    from brainpad.layout import preproc_paths

    scans = pd.read_csv(folds_path, sep="\t")[["scan_id", "participant_id"]]
    for tissue in tissues:
        scans[tissue] = [
            preproc_paths(preproc_dir, pid, scan_id)[tissue.lower()]
            for scan_id, pid in zip(scans["scan_id"], scans["participant_id"], strict=True)
        ]
    return scans


def _cmd_arrays(args: argparse.Namespace) -> None:
    from brainpad.arrays import CHANNELS, build_arrays
    from brainpad.layout import array_files

    scans = _scan_maps(args.folds, args.preproc_dir, CHANNELS)
    files = array_files(args.out_dir)
    build_arrays(scans, CHANNELS, files["volumes"], files["slices"], files["index"], args.margin)


def _cmd_regions(args: argparse.Namespace) -> None:
    from brainpad.inputs import write_table_atomic
    from brainpad.regions import cohort_roi_volumes

    tissues = ("GM", "WM", "CSF")
    scans = _scan_maps(args.folds, args.preproc_dir, tissues)
    table = cohort_roi_volumes(scans, {t: t for t in tissues}, args.atlas, args.labels)
    write_table_atomic(table, args.out)
    log.info("ROI volumes: %d scans x %d columns", len(table), table.shape[1] - 1)


def _cmd_train(args: argparse.Namespace) -> None:
    import torch

    from brainpad.train import train_fold

    torch.set_num_threads(args.threads)
    train_fold(
        args.model,
        args.fold,
        args.folds,
        json.loads(args.params),
        args.seed,
        args.predictions,
        args.state,
        roi_path=args.roi,
        volumes_path=args.volumes,
        index_path=args.index,
        checkpoint=args.checkpoint,
        device=args.device,
        mask_path=args.mask,
        maps_path=args.maps,
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``brainpad`` command."""
    parser = argparse.ArgumentParser(prog="brainpad", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"brainpad {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="generate the simulated BIDS cohort with its truth")
    sim.add_argument("--out-dir", required=True, help="BIDS root to create")
    sim.add_argument("--settings", default="", help="JSON of the config's `simulation` section")
    sim.add_argument("--seed", type=int, default=None, help="random seed")
    sim.add_argument("--threads", type=int, default=1, help="worker processes")
    sim.set_defaults(func=_cmd_simulate)

    val = sub.add_parser("validate", help="validate a BIDS dataset and write the manifest")
    val.add_argument("--bids-dir", required=True)
    val.add_argument("--manifest", required=True, help="output manifest TSV")
    val.add_argument("--skipped", required=True, help="output TSV of skipped scans")
    val.add_argument("--modalities", nargs="+", default=["T1w"])
    val.add_argument("--groups", nargs="+", default=["HC", "sMCI", "pMCI", "AD"])
    val.add_argument("--control-group", default="HC")
    val.add_argument("--on-unlisted-scan", choices=["warn", "error"], default="warn")
    val.add_argument("--max-voxel-size", type=float, default=4.0, help="mm")
    val.add_argument(
        "--max-image-mb", type=float, default=2048.0, help="largest image read (MB of voxels)"
    )
    val.add_argument("--schema", default=str(SCHEMA_PATH), help="participants.tsv JSON schema")
    val.add_argument("--threads", type=int, default=1)
    val.set_defaults(func=_cmd_validate)

    tpl = sub.add_parser("templates", help="write the MNI template, priors and atlas")
    tpl.add_argument("--out-dir", required=True)
    tpl.add_argument("--voxel-size", type=float, required=True, help="working voxel (mm)")
    tpl.add_argument("--atlas-threshold", type=float, default=25.0, help="percent")
    tpl.set_defaults(func=_cmd_templates)

    pre = sub.add_parser("preprocess", help="one T1w scan to modulated tissue maps in MNI")
    pre.add_argument("--scan", required=True, help="input T1w NIfTI")
    pre.add_argument("--scan-id", required=True, help="output name stem, e.g. sub-01_ses-1")
    pre.add_argument("--out-dir", required=True)
    _add_preprocess_options(pre)
    pre.set_defaults(func=_cmd_preprocess)

    bat = sub.add_parser("preprocess-batch", help="several T1w scans, then their QC table")
    bat.add_argument("--scans", nargs="+", required=True, help="input T1w NIfTIs")
    bat.add_argument("--scan-ids", nargs="+", required=True, help="one output stem per scan")
    bat.add_argument("--preproc-dir", required=True, help="each scan goes to <dir>/<sub-*>/")
    bat.add_argument("--qc-table", required=True, help="output TSV, written last")
    _add_preprocess_options(bat)
    bat.set_defaults(func=_cmd_preprocess_batch)

    qcs = sub.add_parser("qc-summary", help="collect per-scan QC into one table")
    qcs.add_argument("--out", required=True)
    qcs.add_argument("qc_files", nargs="*", help="qc.json files")
    qcs.add_argument(
        "--manifest",
        help="also every T1w scan of this manifest (its qc.json under --preproc-dir): keeps "
        "the command short for cohorts of thousands",
    )
    qcs.add_argument("--preproc-dir", default="results/preproc")
    qcs.set_defaults(func=_cmd_qc_summary)

    fol = sub.add_parser("folds", help="roles (train/calibration/test/clinical) and CV folds")
    fol.add_argument("--manifest", required=True)
    fol.add_argument("--qc", required=True, help="QC table from qc-summary")
    fol.add_argument("--out", required=True)
    fol.add_argument("--control-group", default="HC")
    fol.add_argument("--k", type=int, default=5, help="cross-validation folds")
    fol.add_argument("--calibration-fraction", type=float, default=0.15)
    fol.add_argument("--test-fraction", type=float, default=0.15)
    fol.add_argument("--seed", type=int, default=42)
    fol.set_defaults(func=_cmd_folds)

    arr = sub.add_parser("arrays", help="stack cropped GM/WM maps into memory-mapped arrays")
    arr.add_argument("--folds", required=True, help="folds.tsv (the scans, in order)")
    arr.add_argument("--preproc-dir", required=True)
    arr.add_argument("--out-dir", required=True)
    arr.add_argument("--margin", type=int, default=2, help="voxels around the union brain")
    arr.set_defaults(func=_cmd_arrays)

    reg = sub.add_parser("regions", help="Harvard-Oxford ROI tissue volumes of every scan")
    reg.add_argument("--folds", required=True, help="folds.tsv (the scans, in order)")
    reg.add_argument("--preproc-dir", required=True)
    reg.add_argument("--atlas", required=True, help="atlas label image on the MNI grid")
    reg.add_argument("--labels", required=True, help="atlas label table (TSV)")
    reg.add_argument("--out", required=True)
    reg.set_defaults(func=_cmd_regions)

    trn = sub.add_parser("train", help="train one model on one cross-validation fold")
    trn.add_argument("--model", required=True, help="registered model name")
    trn.add_argument("--fold", type=int, required=True)
    trn.add_argument("--folds", required=True, help="folds.tsv")
    trn.add_argument("--params", default="{}", help="JSON of the config's models.<name>")
    trn.add_argument("--seed", type=int, default=42)
    trn.add_argument("--predictions", required=True, help="output TSV")
    trn.add_argument("--state", required=True, help="output .pt of the fitted model")
    trn.add_argument("--roi", help="ROI volume table (tabular models)")
    trn.add_argument("--volumes", help="cohort volume array .npy (image models)")
    trn.add_argument("--index", help="array index TSV (image models)")
    trn.add_argument("--mask", help="template brain mask (voxel models)")
    trn.add_argument("--maps", help="output .npy of brain-age maps (voxel models)")
    trn.add_argument("--checkpoint", help="per-epoch checkpoint (resumed from if present)")
    trn.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    trn.add_argument("--threads", type=int, default=1, help="CPU threads")
    trn.set_defaults(func=_cmd_train)

    add_result_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``brainpad`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        args.func(args)
    except InputError as err:
        print(f"brainpad {args.command}: input error\n{err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a folder made read-only, a file that vanished
        log.debug("%s failed", args.command, exc_info=True)
        where = f" ({err.filename})" if err.filename else ""
        print(
            f"brainpad {args.command}: system error: {err.strerror or err}{where}; fix the "
            "cause (free disk space, permissions) and re-run",
            file=sys.stderr,
        )
        return 1
    return 0
