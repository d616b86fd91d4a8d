"""``brainpad bundle`` (``workflow/rules/bundle.smk``)."""

from __future__ import annotations

import argparse
import json
import logging

log = logging.getLogger("brainpad")


def _cmd_bundle(args: argparse.Namespace) -> None:
    from brainpad.bundle import export_bundle
    from brainpad.paths import template_files

    templates = template_files(args.template_dir, args.voxel_size)
    description = export_bundle(
        args.out,
        args.states,
        args.fits,
        templates,
        args.folds,
        args.index,
        json.loads(args.settings),
    )
    log.info(
        "bundle %s: %d base models x %d folds, trained on ages %s",
        args.out,
        len(description["base_models"]),
        max(len(f) for f in description["base_models"].values()),
        description["training_cohort"]["training_age_range"],
    )


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this stage's subcommands on ``brainpad``'s subparsers."""
    bun = sub.add_parser("bundle", help="export the trained models and fits as a bundle")
    bun.add_argument("--out", required=True, help="bundle folder (replaced)")
    bun.add_argument("--fits", required=True, help="the ensemble stage's fits.json")
    bun.add_argument("--folds", required=True, help="folds.tsv (the training cohort)")
    bun.add_argument("--index", required=True, help="the arrays' index.tsv (the crop)")
    bun.add_argument("--template-dir", required=True, help="the run's templates folder")
    bun.add_argument("--voxel-size", type=float, required=True, help="working voxel (mm)")
    bun.add_argument("--settings", required=True, help="the run's settings (JSON)")
    bun.add_argument("states", nargs="+", help="every <model>/fold-<k>/model.pt")
    bun.set_defaults(func=_cmd_bundle)
