"""``brainpad templates``, ``preprocess``, ``preprocess-batch``, ``qc-summary``
(``workflow/rules/preprocess.smk``).
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from brainpad.preprocess import PreprocessOptions


log = logging.getLogger("brainpad")


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
    preprocess_scan(args.scan, args.scan_id, args.templates_dir, args.out_dir, options, args.flair)


def _cmd_preprocess_batch(args: argparse.Namespace) -> None:
    from brainpad.preprocess import preprocess_batch

    options = _preprocess_options(args)
    flairs = [None if f == "-" else f for f in args.flairs] if args.flairs else None
    preprocess_batch(
        args.scans,
        args.scan_ids,
        args.templates_dir,
        args.preproc_dir,
        options,
        args.qc_table,
        flairs,
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
    from brainpad.atomic import write_table_atomic
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


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this stage's subcommands on ``brainpad``'s subparsers."""
    tpl = sub.add_parser("templates", help="write the MNI template, priors and atlas")
    tpl.add_argument("--out-dir", required=True)
    tpl.add_argument("--voxel-size", type=float, required=True, help="working voxel (mm)")
    tpl.add_argument("--atlas-threshold", type=float, default=25.0, help="percent")
    tpl.set_defaults(func=_cmd_templates)
    pre = sub.add_parser("preprocess", help="one T1w scan to modulated tissue maps in MNI")
    pre.add_argument("--scan", required=True, help="input T1w NIfTI")
    pre.add_argument("--scan-id", required=True, help="output name stem, e.g. sub-01_ses-1")
    pre.add_argument("--flair", help="the session's FLAIR, brought into MNI through the T1w")
    pre.add_argument("--out-dir", required=True)
    _add_preprocess_options(pre)
    pre.set_defaults(func=_cmd_preprocess)
    bat = sub.add_parser("preprocess-batch", help="several T1w scans, then their QC table")
    bat.add_argument("--scans", nargs="+", required=True, help="input T1w NIfTIs")
    bat.add_argument("--scan-ids", nargs="+", required=True, help="one output stem per scan")
    bat.add_argument("--flairs", nargs="+", help="each scan's FLAIR, or '-' for none")
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
