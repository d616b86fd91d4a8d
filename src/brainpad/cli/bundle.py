"""``brainpad bundle`` (``workflow/rules/bundle.smk``)."""

from __future__ import annotations

import argparse
import json
import logging

from brainpad.cli.inputs import add_participant_selection

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
        args.manifest,
        args.voxel_bias,
    )
    log.info(
        "bundle %s: %d base models x %d folds, trained on ages %s",
        args.out,
        len(description["base_models"]),
        max(len(f) for f in description["base_models"].values()),
        description["training_cohort"]["training_age_range"],
    )


def _cmd_predict(args: argparse.Namespace) -> None:
    from pathlib import Path

    from brainpad.bundle.apply import describe_row, predict_scans
    from brainpad.bundle.predict import Bundle
    from brainpad.bundle.scans import scans_from_bids, scans_from_files
    from brainpad.inputs.errors import InputError

    bundle = Bundle.open(args.bundle, args.allow_other_versions)
    folders = [p for p in args.inputs if Path(p).is_dir()]
    if folders:
        if len(args.inputs) > 1 or args.age or args.sex or args.flair or args.site:
            msg = (
                f"{folders[0]}: a BIDS directory is predicted on its own, with ages, sex, "
                "sites and FLAIR from the dataset; give it alone, without --age, --sex, "
                "--site or --flair"
            )
            raise InputError(msg)
        scans = scans_from_bids(
            bundle, folders[0], args.participant_label, args.exclude_participant_label
        )
    else:
        if args.participant_label or args.exclude_participant_label:
            msg = (
                "--participant-label and --exclude-participant-label choose participants of "
                "a BIDS directory; with NIfTI files, give only the files to predict"
            )
            raise InputError(msg)
        scans = scans_from_files(args.inputs, args.flair, args.age, args.sex, args.site)
    if args.recalibrate and not folders:
        msg = (
            "--recalibrate controls needs a BIDS directory: the new cohort's healthy "
            "controls are read from its participants.tsv (group column)"
        )
        raise InputError(msg)
    table = predict_scans(
        bundle, scans, args.out, args.device, args.recalibrate == "controls",
        _harmonisation(bundle, args),
    )  # fmt: skip
    print(f"{len(table)} scans -> {Path(args.out) / 'predictions.tsv'}")
    for row in table.to_dict("records"):
        print(describe_row(row))
        for warning in filter(None, str(row["warnings"] or "").split(" | ")):
            print(f"  warning: {warning}")


def _harmonisation(bundle, args: argparse.Namespace):
    """The bundle's site harmonisation with ``--harmonise``, else None."""
    if not args.harmonise:
        return None
    from brainpad.bundle.sites import SiteHarmonisation

    return SiteHarmonisation.from_bundle(
        bundle, args.min_site_controls, args.site_controls, args.site_scale
    )


def _add_harmonise(parser: argparse.ArgumentParser) -> None:
    """``--harmonise``, ``--min-site-controls`` and ``--site-controls``."""
    parser.add_argument(
        "--harmonise",
        action="store_true",
        help="harmonise with the bundle's ComBat fits; a site it never saw from that site's "
        "own healthy controls (cross-fitted)",
    )
    parser.add_argument(
        "--min-site-controls", type=int, default=5,
        help="fewest healthy controls an unseen site is harmonised from",
    )  # fmt: skip
    parser.add_argument(
        "--site-controls", type=int, default=None,
        help="at most this many of an unseen site's controls estimate it (default: all)",
    )  # fmt: skip
    parser.add_argument(
        "--site-scale", action=argparse.BooleanOptionalAction, default=True,
        help="an unseen site gets a scale as well as a location (--no-site-scale: location "
        "only, its spread left as it is)",
    )  # fmt: skip


def _cmd_apply(args: argparse.Namespace) -> None:
    from pathlib import Path

    import torch

    from brainpad.bundle.apply import apply_cohort
    from brainpad.bundle.predict import Bundle

    torch.set_num_threads(args.threads)
    bundle = Bundle.open(args.bundle, args.allow_other_versions)
    out = {
        "brain_age": Path(args.out),
        "roi_volumes": Path(args.roi_volumes),
        "recalibration": Path(args.recalibration),
        "maps": Path(args.maps_dir),
    }
    table = apply_cohort(
        bundle, args.manifest, args.qc, args.preproc_dir, out, args.recalibrate == "controls",
        args.device, _harmonisation(bundle, args),
    )  # fmt: skip
    log.info("applied %s to %d scans -> %s", args.bundle, len(table), args.out)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this stage's subcommands on ``brainpad``'s subparsers."""
    bun = sub.add_parser("bundle", help="export the trained models and fits as a bundle")
    bun.add_argument("--out", required=True, help="bundle folder (replaced)")
    bun.add_argument("--fits", required=True, help="the ensemble stage's fits.json")
    bun.add_argument("--folds", required=True, help="folds.tsv (the training cohort)")
    bun.add_argument("--index", required=True, help="the arrays' index.tsv (the crop)")
    bun.add_argument("--manifest", help="manifest.tsv (the training scans' geometry)")
    bun.add_argument("--voxel-bias", help="the local maps' voxelwise correction (NIfTI)")
    bun.add_argument("--template-dir", required=True, help="the run's templates folder")
    bun.add_argument("--voxel-size", type=float, required=True, help="working voxel (mm)")
    bun.add_argument("--settings", required=True, help="the run's settings (JSON)")
    bun.add_argument("states", nargs="+", help="every <model>/fold-<k>/model.pt")
    bun.set_defaults(func=_cmd_bundle)
    pre = sub.add_parser(
        "predict",
        help="apply a trained bundle to new scans (NIfTI files or a BIDS directory)",
        description="Preprocess new scans exactly as the bundle's training run did, apply "
        "every model, the ensemble, its calibrated 95 %% interval and, with an age, the "
        "bias correction. Writes <out>/predictions.tsv and a folder per scan.",
    )
    pre.add_argument("--bundle", required=True, help="a bundle folder (results/bundle)")
    pre.add_argument("inputs", nargs="+", metavar="INPUT", help="T1w NIfTI files or one BIDS dir")
    pre.add_argument("--out", required=True, help="output folder")
    pre.add_argument("--flair", nargs="+", help="each T1w's FLAIR, in order")
    add_participant_selection(pre)
    pre.add_argument("--age", type=float, nargs="+", help="each scan's age (years)")
    pre.add_argument("--sex", nargs="+", choices=["M", "F"], help="each scan's sex")
    pre.add_argument(
        "--site", nargs="+",
        help="each scan's site (--harmonise; a site the bundle never saw needs a BIDS "
        "directory with its healthy controls)",
    )  # fmt: skip
    pre.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    pre.add_argument(
        "--recalibrate",
        choices=["controls"],
        help="refit the bias correction on the BIDS cohort's own healthy controls "
        "(cross-fitted); writes recalibration.tsv",
    )
    pre.add_argument(
        "--allow-other-versions",
        action="store_true",
        help="use a bundle made with other versions of brainpad, torch, ANTs ... (warns)",
    )
    _add_harmonise(pre)
    pre.set_defaults(func=_cmd_predict)
    app = sub.add_parser(
        "apply", help="apply a bundle to a validated, preprocessed cohort (apply mode)"
    )
    app.add_argument("--bundle", required=True)
    app.add_argument("--manifest", required=True, help="the cohort's manifest.tsv")
    app.add_argument("--qc", required=True, help="the QC table (failed scans are left out)")
    app.add_argument("--preproc-dir", required=True, help="each scan's preprocessing")
    app.add_argument("--recalibrate", choices=["none", "controls"], default="none")
    app.add_argument("--out", required=True, help="the brain-age table (TSV)")
    app.add_argument("--roi-volumes", required=True, help="Harvard-Oxford volumes (TSV)")
    app.add_argument("--recalibration", required=True, help="controls' brain-PAD per site")
    app.add_argument("--maps-dir", required=True, help="the map model's per-scan maps")
    app.add_argument("--device", default="auto")
    app.add_argument("--threads", type=int, default=1, help="torch threads")
    app.add_argument("--allow-other-versions", action="store_true")
    _add_harmonise(app)
    app.set_defaults(func=_cmd_apply)
