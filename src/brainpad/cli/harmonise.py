"""``brainpad harmonise-roi`` (``workflow/rules/harmonise.smk``)."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("brainpad")


def _cmd_harmonise_roi(args: argparse.Namespace) -> None:
    import pandas as pd

    from brainpad.atomic import write_json_atomic, write_table_atomic
    from brainpad.harmonise.tables import fit_roi

    roi = pd.read_csv(args.roi, sep="\t")
    folds = pd.read_csv(args.folds, sep="\t")
    table, model = fit_roi(roi, folds, args.control_group)
    log.info(
        "ComBat on %d ROI volumes, fitted on the training controls of sites %s",
        len(model.features), model.sites,
    )  # fmt: skip
    write_json_atomic(model.to_dict(), args.fit)
    write_table_atomic(table, args.out)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this stage's subcommands on ``brainpad``'s subparsers."""
    roi = sub.add_parser(
        "harmonise-roi", help="ComBat on the ROI volumes, fitted on the training controls"
    )
    roi.add_argument("--roi", required=True, help="ROI volumes (brainpad regions)")
    roi.add_argument("--folds", required=True, help="results/folds.tsv")
    roi.add_argument("--control-group", default="HC")
    roi.add_argument("--out", required=True, help="harmonised ROI volumes (TSV)")
    roi.add_argument("--fit", required=True, help="the ComBat fit (JSON, for the bundle)")
    roi.set_defaults(func=_cmd_harmonise_roi)
