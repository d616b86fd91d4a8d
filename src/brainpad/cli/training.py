"""``brainpad train`` (``workflow/rules/training.smk``)."""

from __future__ import annotations

import argparse
import json
import logging

log = logging.getLogger("brainpad")


def _cmd_train(args: argparse.Namespace) -> None:
    import torch

    from brainpad.training.fold import train_fold

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
        slices_path=args.slices,
        regions_path=args.regions,
    )


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this stage's subcommands on ``brainpad``'s subparsers."""
    trn = sub.add_parser("train", help="train one model on one cross-validation fold")
    trn.add_argument(
        "--model", required=True, help="registered model, or a base model (cnn3d-t1w-cortex-2)"
    )
    trn.add_argument("--fold", type=int, required=True)
    trn.add_argument("--folds", required=True, help="folds.tsv")
    trn.add_argument("--params", default="{}", help="JSON of the config's models.<name>")
    trn.add_argument("--seed", type=int, default=42)
    trn.add_argument("--predictions", required=True, help="output TSV")
    trn.add_argument("--state", required=True, help="output .pt of the fitted model")
    trn.add_argument("--roi", help="ROI volume table (tabular models)")
    trn.add_argument("--volumes", help="cohort volume array .npy (models reading volumes)")
    trn.add_argument("--slices", help="cohort slice array .npy (models reading slices)")
    trn.add_argument("--index", help="array index TSV (networks)")
    trn.add_argument("--mask", help="template brain mask (map models)")
    trn.add_argument("--regions", help="template regions image (models restricted to a region)")
    trn.add_argument("--maps", help="output .npy of brain-age maps (map models)")
    trn.add_argument("--checkpoint", help="per-epoch checkpoint (resumed from if present)")
    trn.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    trn.add_argument("--threads", type=int, default=1, help="CPU threads")
    trn.set_defaults(func=_cmd_train)
