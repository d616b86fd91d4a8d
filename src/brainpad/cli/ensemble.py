"""``brainpad ensemble`` (``workflow/rules/ensemble.smk``)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from brainpad.cli.common import add_calibration

log = logging.getLogger("brainpad")


def _cmd_ensemble(args: argparse.Namespace) -> None:
    import pandas as pd

    from brainpad.atomic import write_json_atomic, write_table_atomic
    from brainpad.ensemble.modality import modality_table
    from brainpad.ensemble.stacking import brain_age_table
    from brainpad.models import parse_base_model

    folds = pd.read_csv(args.folds, sep="\t")
    predictions = [pd.read_csv(p, sep="\t") for p in args.predictions]
    table, fits = brain_age_table(
        folds,
        predictions,
        args.models,
        args.alpha,
        args.calibration,
        args.positive,
        args.sub_alpha,
        args.stacking_folds,
        args.seed,
    )
    t1w_models = [m for m in args.models if parse_base_model(m).input != "flair"]
    if t1w_models and len(t1w_models) < len(args.models):
        # a bundle's head for scans without FLAIR: the other base models, stacked, corrected
        # and calibrated on their own (brainpad predict picks it for a T1w-only scan)
        _, t1w_only = brain_age_table(
            folds, predictions, t1w_models, args.alpha, args.calibration, args.positive,
            args.sub_alpha, args.stacking_folds, args.seed,
        )  # fmt: skip
        fits["t1w_only"] = {"models": t1w_models, **t1w_only}
    if args.harmonise:
        table, fits["harmonise"] = _harmonise(table, fits, args)
    write_table_atomic(table, args.out)
    write_json_atomic(fits, args.fits)
    write_table_atomic(modality_table(table, args.models), args.modality)
    log.info("stacking weights %s; bias %s", fits["stacking"]["weights"], fits["bias"])


def _harmonise(table, fits: dict, args: argparse.Namespace):
    """ComBat on the corrected brain-PAD (:func:`brainpad.harmonise.tables.fit_brain_pad`),
    fitted on the bias correction's controls; both fits for the bundle."""
    from brainpad.ensemble.correction import calibration_scans
    from brainpad.harmonise.tables import fit_brain_pad

    fitted_on = table["scan_id"].isin(calibration_scans(table, args.calibration)["scan_id"])
    table, model = fit_brain_pad(table, fitted_on.to_numpy(), args.control_group)
    log.info("brain-PAD harmonised over sites %s", model.sites)
    roi = json.loads(Path(args.roi_combat).read_text()) if args.roi_combat else None
    return table, {"brain_pad": model.to_dict(), "roi": roi}


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this stage's subcommands on ``brainpad``'s subparsers."""
    ens = sub.add_parser("ensemble", help="stack the models; raw and corrected brain-PAD")
    ens.add_argument("--folds", required=True)
    ens.add_argument("--models", nargs="+", required=True)
    ens.add_argument("--alpha", type=float, default=1.0, help="ridge penalty of the top head")
    ens.add_argument(
        "--sub-alpha", type=float, default=1.0, help="ridge penalty of the sub-ensemble heads"
    )
    ens.add_argument(
        "--stacking-folds", type=int, default=5, help="inner folds cross-fitting the heads"
    )
    ens.add_argument("--seed", type=int, default=42, help="seed of the inner folds")
    ens.add_argument(
        "--positive",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="non-negative weights of the head (--no-positive: study 3's plain ridge)",
    )
    ens.add_argument("--out", required=True, help="brain-age table (TSV)")
    ens.add_argument("--fits", required=True, help="stacking and bias fits (JSON)")
    ens.add_argument(
        "--modality", required=True, help="study 4's nested multimodal stacking table (TSV)"
    )
    add_calibration(ens, "global bias corrections")
    ens.add_argument(
        "--harmonise",
        action="store_true",
        help="ComBat on the corrected brain-PAD, fitted on the bias correction's controls",
    )
    ens.add_argument("--control-group", default="HC", help="the controls ComBat is fitted on")
    ens.add_argument("--roi-combat", help="the ROI volumes' ComBat fit, kept for the bundle")
    ens.add_argument("predictions", nargs="+", help="every model x fold predictions TSV")
    ens.set_defaults(func=_cmd_ensemble)
