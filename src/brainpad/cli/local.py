"""``brainpad local-maps``, ``local-stats``, ``local-planted``, ``local-truth``
(``workflow/rules/local.smk``).
"""

from __future__ import annotations

import argparse
import logging

from brainpad.cli.common import add_calibration

log = logging.getLogger("brainpad")


def _cmd_local_maps(args: argparse.Namespace) -> None:
    import pandas as pd

    from brainpad.atomic import write_table_atomic
    from brainpad.local.maps import FoldMaps, write_local_maps

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
        args.voxel_bias,
    )
    write_table_atomic(table, args.age_dependence)
    if args.preproc_dir:
        from brainpad.derivatives import describe_maps

        describe_maps(args.out_dir, args.preproc_dir)


def _cmd_local_stats(args: argparse.Namespace) -> None:
    import pandas as pd

    from brainpad.cohort.arrays import open_volumes, tissue_map
    from brainpad.local.statistics import MapSet, local_statistics, write_tables

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

    from brainpad.atomic import write_table_atomic
    from brainpad.cohort.arrays import open_volumes
    from brainpad.inputs.errors import InputError
    from brainpad.local.statistics import read_mean_maps
    from brainpad.local.truth import group_reliabilities, image_regional_volumes, truth_validation

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

    from brainpad.atomic import write_table_atomic
    from brainpad.local.planted import run_planted
    from brainpad.training.inference import select_device

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


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this stage's subcommands on ``brainpad``'s subparsers."""
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
    add_calibration(lmp, "voxelwise corrections")
    lmp.add_argument("--out-dir", required=True, help="folder of the per-scan maps")
    lmp.add_argument(
        "--preproc-dir",
        help="the preprocessing derivatives the maps come from: --out-dir is then described "
        "as a BIDS-derivatives dataset linked to it",
    )
    lmp.add_argument("--age-dependence", required=True, help="output TSV")
    lmp.add_argument(
        "--voxel-bias", help="the applied voxelwise correction (NIfTI + JSON), for the bundle"
    )
    lmp.set_defaults(func=_cmd_local_maps)
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
