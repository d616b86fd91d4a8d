"""The result-stage subcommands: ensemble, statistics, local maps and the report.

Split from :mod:`brainpad.cli` (the data-stage commands) to keep each module short;
:func:`add_result_commands` registers them on the main parser.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from brainpad.folds import CALIBRATION_SETS

log = logging.getLogger("brainpad")


def _model_columns(models: Sequence[str]) -> dict[str, str]:
    """Report label → brain-age column: the ensemble, then each base model."""
    return {"ensemble": "brain_age", **{m: f"pred_{m}" for m in models}}


def _cmd_ensemble(args: argparse.Namespace) -> None:
    import pandas as pd

    from brainpad.ensemble import brain_age_table
    from brainpad.inputs import write_table_atomic

    folds = pd.read_csv(args.folds, sep="\t")
    predictions = [pd.read_csv(p, sep="\t") for p in args.predictions]
    table, fits = brain_age_table(folds, predictions, args.models, args.alpha, args.calibration)
    write_table_atomic(table, args.out)
    Path(args.fits).write_text(json.dumps(fits, indent=2) + "\n")
    log.info("stacking weights %s; bias %s", fits["stacking"]["weights"], fits["bias"])


def _cmd_stats(args: argparse.Namespace) -> None:
    import pandas as pd

    from brainpad.inputs import write_table_atomic
    from brainpad.stats import accuracy_table, group_tables

    table = pd.read_csv(args.brain_age, sep="\t")
    truth = pd.read_csv(args.truth, sep="\t").set_index("participant_id") if args.truth else None
    accuracy = accuracy_table(table, _model_columns(args.models), truth)
    by_group, comparisons = group_tables(
        table, args.control_group, args.control_min_age, truth=truth
    )
    out = Path(args.out_dir)
    write_table_atomic(accuracy, out / "accuracy.tsv")
    write_table_atomic(by_group, out / "brain_pad_by_group.tsv")
    write_table_atomic(comparisons, out / "group_comparison.tsv")
    for row in accuracy.itertuples():
        log.info("healthy test %s: MAE %.2f y, r %.2f, R2 %.2f", row.model, row.mae, row.r, row.r2)


def _cmd_local_maps(args: argparse.Namespace) -> None:
    import pandas as pd

    from brainpad.inputs import write_table_atomic
    from brainpad.maps import FoldMaps, write_local_maps

    folds = pd.read_csv(args.folds, sep="\t")
    index = pd.read_csv(args.index, sep="\t")
    table = write_local_maps(
        folds,
        FoldMaps(args.predictions, args.maps),
        index,
        args.mask,
        args.out_dir,
        args.bin_edges,
        args.min_per_bin,
        args.voxel_method,
        args.seed,
        args.calibration,
    )
    write_table_atomic(table, args.age_dependence)


def _cmd_report(args: argparse.Namespace) -> None:
    import pandas as pd

    from brainpad import report
    from brainpad.inputs import write_table_atomic

    table = pd.read_csv(args.brain_age, sep="\t")
    stats_dir = Path(args.stats_dir)
    accuracy = pd.read_csv(stats_dir / "accuracy.tsv", sep="\t")
    by_group = pd.read_csv(stats_dir / "brain_pad_by_group.tsv", sep="\t")
    qc = pd.read_csv(args.qc, sep="\t")
    out = Path(args.out_dir)
    columns = _model_columns(args.models)
    report.predicted_vs_age(table, columns, accuracy, out / "predicted_vs_age.png")
    report.brain_pad_by_group(
        table, by_group, args.control_group, args.control_min_age, out / "brain_pad_by_group.png"
    )
    report.qc_summary(qc, args.min_similarity, args.tiv_range, out / "qc.png")
    report.failed_montages(qc, args.preproc_dir, out / "qc_failed_montages.png")
    write_table_atomic(qc[~qc["passed"].astype(bool)], out / "qc_failed.tsv")


def _cmd_local_stats(args: argparse.Namespace) -> None:
    import pandas as pd

    from brainpad.arrays import open_volumes, tissue_map
    from brainpad.local_analysis import MapSet, local_statistics, write_tables

    folds = pd.read_csv(args.folds, sep="\t")
    maps = MapSet.load(args.maps_dir, args.mask, args.atlas, args.labels)
    volumes = pd.read_csv(args.roi_volumes, sep="\t")
    truth = pd.read_csv(args.truth, sep="\t").set_index("participant_id") if args.truth else None
    arrays, index = open_volumes(args.volumes), pd.read_csv(args.index, sep="\t")
    tables = local_statistics(
        folds,
        maps,
        volumes,
        args.control_group,
        args.control_min_age,
        args.statmaps_dir,
        truth,
        tissue=lambda scan_id: tissue_map(arrays, index, scan_id, maps.brain.shape),
    )
    write_tables(tables, args.out_dir)


def _cmd_local_truth(args: argparse.Namespace) -> None:
    import nibabel as nib
    import numpy as np
    import pandas as pd

    from brainpad.arrays import open_volumes
    from brainpad.inputs import InputError, write_table_atomic
    from brainpad.local_analysis import read_mean_maps
    from brainpad.recovery import group_reliabilities, image_regional_volumes, truth_validation

    mask = nib.load(args.mask)
    image_volumes = None
    if args.volumes and not (args.index and args.folds):
        message = (
            f"--volumes {args.volumes} needs --index and --folds (the arrays' index.tsv, folds.tsv)"
        )
        raise InputError(message)
    if args.maps_dir and not args.folds:
        message = f"--maps-dir {args.maps_dir} needs --folds (folds.tsv: who is in each group)"
        raise InputError(message)
    if args.volumes:
        image_volumes = image_regional_volumes(
            open_volumes(args.volumes),
            pd.read_csv(args.index, sep="\t"),
            pd.read_csv(args.folds, sep="\t"),
            mask,
            args.truth_dir,
        )
    reliability = None
    if args.maps_dir:
        brain = np.asarray(mask.dataobj) > 0
        folds = pd.read_csv(args.folds, sep="\t")
        group = args.control_group
        reliability = group_reliabilities(folds, args.maps_dir, brain, group, args.seed)
    table = truth_validation(
        read_mean_maps(args.statmaps_dir),
        pd.read_csv(args.roi_comparison, sep="\t"),
        mask,
        args.truth_dir,
        args.control_group,
        image_volumes=image_volumes,
        reliability=reliability,
    )
    if args.planted:
        planted = pd.read_csv(args.planted, sep="\t").drop(columns="scans")
        table = table.merge(planted, on="group", how="left")
    write_table_atomic(table, args.out)
    log.info("validation against the simulated truth:\n%s", table.to_string())


def _cmd_local_planted(args: argparse.Namespace) -> None:
    import torch

    from brainpad.inputs import write_table_atomic
    from brainpad.planted import run_planted
    from brainpad.predict import select_device

    torch.set_num_threads(args.threads)
    table = run_planted(
        args.models,
        args.volumes,
        args.index,
        args.folds,
        args.mask,
        args.truth_dir,
        args.control_group,
        select_device(args.device),
    )
    write_table_atomic(table, args.out)
    log.info("planted atrophy, mean change of the maps vs the truth:\n%s", table.to_string())


def _cmd_local_figure(args: argparse.Namespace) -> None:
    from brainpad.report import local_maps_figure

    local_maps_figure(args.statmaps_dir, args.mask, args.control_group, args.out, args.truth_dir)


def _add_calibration(parser: argparse.ArgumentParser, corrections: str) -> None:
    """``--calibration``: which scans the ``corrections`` are fitted on."""
    parser.add_argument(
        "--calibration",
        choices=CALIBRATION_SETS,
        default="calibration",
        help=f"scans the {corrections} are fitted on: the calibration set, or with the "
        "training controls (their out-of-fold predictions)",
    )


def add_result_commands(sub: argparse._SubParsersAction) -> None:
    """Register the result-stage subcommands on ``brainpad``'s subparsers."""
    ens = sub.add_parser("ensemble", help="stack the models; raw and corrected brain-PAD")
    ens.add_argument("--folds", required=True)
    ens.add_argument("--models", nargs="+", required=True)
    ens.add_argument("--alpha", type=float, default=1.0, help="ridge penalty of the head")
    ens.add_argument("--out", required=True, help="brain-age table (TSV)")
    ens.add_argument("--fits", required=True, help="stacking and bias fits (JSON)")
    _add_calibration(ens, "global bias corrections")
    ens.add_argument("predictions", nargs="+", help="every model x fold predictions TSV")
    ens.set_defaults(func=_cmd_ensemble)

    lmp = sub.add_parser("local-maps", help="per-scan brain-age maps, voxelwise-corrected")
    lmp.add_argument("--folds", required=True)
    lmp.add_argument("--index", required=True, help="cohort array index (the crop)")
    lmp.add_argument("--mask", required=True, help="template brain mask")
    lmp.add_argument("--predictions", nargs="+", required=True, help="per-fold predictions")
    lmp.add_argument("--maps", nargs="+", required=True, help="per-fold maps (same order)")
    lmp.add_argument("--bin-edges", type=float, nargs="+", required=True, help="age bins")
    lmp.add_argument("--min-per-bin", type=int, default=3)
    lmp.add_argument("--seed", type=int, default=0, help="seed of the null-level noise")
    lmp.add_argument(
        "--voxel-method",
        choices=["bins", "linear"],
        default="bins",
        help="voxelwise correction of the corrected maps: age bins (study 1) or a line per voxel",
    )
    _add_calibration(lmp, "voxelwise corrections")
    lmp.add_argument("--out-dir", required=True, help="folder of the per-scan maps")
    lmp.add_argument("--age-dependence", required=True, help="output TSV")
    lmp.set_defaults(func=_cmd_local_maps)

    sta = sub.add_parser("stats", help="accuracy and group comparisons of brain-PAD")
    sta.add_argument("--brain-age", required=True)
    sta.add_argument("--models", nargs="+", required=True)
    sta.add_argument("--control-group", default="HC")
    sta.add_argument("--control-min-age", type=float, default=60.0)
    sta.add_argument("--truth", help="simulation subjects.tsv (adds the truth columns)")
    sta.add_argument("--out-dir", required=True)
    sta.set_defaults(func=_cmd_stats)

    rep = sub.add_parser("report", help="figures and tables for the HTML report")
    rep.add_argument("--brain-age", required=True)
    rep.add_argument("--qc", required=True)
    rep.add_argument("--stats-dir", required=True)
    rep.add_argument("--models", nargs="+", required=True)
    rep.add_argument("--control-group", default="HC")
    rep.add_argument("--control-min-age", type=float, default=60.0)
    rep.add_argument("--min-similarity", type=float, default=0.7)
    rep.add_argument("--tiv-range", type=float, nargs=2, default=[900.0, 2600.0])
    rep.add_argument("--preproc-dir", default="results/preproc", help="for failed scans' montages")
    rep.add_argument("--out-dir", required=True)
    rep.set_defaults(func=_cmd_report)

    lst = sub.add_parser("local-stats", help="ROI tables, group t/d maps, ICC maps (study 1)")
    lst.add_argument("--folds", required=True)
    lst.add_argument("--maps-dir", required=True, help="per-scan maps from local-maps")
    lst.add_argument("--mask", required=True, help="template brain mask")
    lst.add_argument("--atlas", required=True, help="Harvard-Oxford label image (MNI grid)")
    lst.add_argument("--labels", required=True, help="atlas label table (TSV)")
    lst.add_argument("--roi-volumes", required=True, help="ROI tissue volumes (TSV)")
    lst.add_argument("--volumes", required=True, help="cohort arrays (the inputs' ICC)")
    lst.add_argument("--index", required=True, help="the cohort arrays' index (TSV)")
    lst.add_argument("--control-group", default="HC")
    lst.add_argument("--control-min-age", type=float, default=60.0)
    lst.add_argument("--truth", help="simulation subjects.tsv (adds the floor MAE)")
    lst.add_argument("--statmaps-dir", required=True, help="output folder of NIfTI maps")
    lst.add_argument("--out-dir", required=True, help="output folder of the tables")
    lst.set_defaults(func=_cmd_local_stats)

    ltr = sub.add_parser("local-truth", help="local maps and ROI effects vs the simulated truth")
    ltr.add_argument("--statmaps-dir", required=True, help="from local-stats")
    ltr.add_argument("--roi-comparison", required=True, help="roi_group_comparison.tsv")
    ltr.add_argument("--mask", required=True, help="template brain mask")
    ltr.add_argument("--truth-dir", required=True, help="the simulation's truth folder")
    ltr.add_argument("--control-group", default="HC")
    ltr.add_argument("--planted", help="from local-planted (adds its columns)")
    ltr.add_argument(
        "--volumes", help="cohort arrays volumes.npy (adds the image ceiling; needs the next two)"
    )
    ltr.add_argument("--index", help="cohort arrays index.tsv")
    ltr.add_argument("--folds", help="folds.tsv")
    ltr.add_argument(
        "--maps-dir", help="per-scan maps of local-maps (adds the maps' reliability; needs --folds)"
    )
    ltr.add_argument("--seed", type=int, default=0, help="seed of the split halves")
    ltr.add_argument("--out", required=True, help="output TSV")
    ltr.set_defaults(func=_cmd_local_truth)

    lpl = sub.add_parser(
        "local-planted", help="plant the true atrophy into healthy scans: the model's specificity"
    )
    lpl.add_argument("--models", nargs="+", required=True, help="local_unet fold model.pt files")
    lpl.add_argument("--volumes", required=True, help="cohort arrays volumes.npy")
    lpl.add_argument("--index", required=True, help="cohort arrays index.tsv")
    lpl.add_argument("--folds", required=True)
    lpl.add_argument("--mask", required=True, help="template brain mask")
    lpl.add_argument("--truth-dir", required=True, help="the simulation's truth folder")
    lpl.add_argument("--control-group", default="HC")
    lpl.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    lpl.add_argument("--threads", type=int, default=1, help="CPU threads of torch")
    lpl.add_argument("--out", required=True, help="output TSV")
    lpl.set_defaults(func=_cmd_local_planted)

    lfg = sub.add_parser("local-figure", help="slices of the group, effect-size and ICC maps")
    lfg.add_argument("--statmaps-dir", required=True, help="from local-stats")
    lfg.add_argument("--mask", required=True, help="template brain mask")
    lfg.add_argument("--control-group", default="HC")
    lfg.add_argument("--truth-dir", help="the simulation's truth folder (adds the true maps)")
    lfg.add_argument("--out", required=True, help="output PNG")
    lfg.set_defaults(func=_cmd_local_figure)
