"""``brainpad validate`` (``workflow/rules/inputs.smk``)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from brainpad.inputs.tables import SCHEMA_PATH
from brainpad.inputs.validate import ValidationOptions, validate_dataset

log = logging.getLogger("brainpad")


def _cmd_validate(args: argparse.Namespace) -> None:
    options = ValidationOptions(
        modalities=tuple(dict.fromkeys([*args.modalities, *args.require])),
        required=tuple(args.require),
        groups=None if args.any_group else tuple(args.groups),
        control_group=args.control_group,
        on_unlisted_scan=args.on_unlisted_scan,
        max_voxel_size_mm=args.max_voxel_size,
        max_image_mb=args.max_image_mb,
        schema_path=Path(args.schema),
        threads=args.threads,
        unlabelled=args.unlabelled,
        participant_label=tuple(args.participant_label),
        exclude_participant_label=tuple(args.exclude_participant_label),
    )
    validate_dataset(args.bids_dir, args.manifest, args.skipped, options)


def _cmd_describe(args: argparse.Namespace) -> None:
    from brainpad.derivatives import dataset_description, describe

    describe(args.out_dir, "preproc", dataset_description(args.bids_dir))


def add_participant_selection(parser: argparse.ArgumentParser) -> None:
    """``--participant-label`` and ``--exclude-participant-label`` (BIDS apps' flags)."""
    parser.add_argument(
        "--participant-label",
        nargs="*",
        default=[],
        metavar="LABEL",
        help="only these participants (BIDS labels, with or without sub-)",
    )
    parser.add_argument(
        "--exclude-participant-label",
        nargs="*",
        default=[],
        metavar="LABEL",
        help="leave these participants out",
    )


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this stage's subcommands on ``brainpad``'s subparsers."""
    val = sub.add_parser("validate", help="validate a BIDS dataset and write the manifest")
    val.add_argument("--bids-dir", required=True)
    val.add_argument("--manifest", required=True, help="output manifest TSV")
    val.add_argument("--skipped", required=True, help="output TSV of skipped scans")
    val.add_argument("--modalities", nargs="+", default=["T1w"])
    val.add_argument(
        "--require", nargs="*", default=[], help="suffixes every T1w session needs (FLAIR)"
    )
    val.add_argument("--groups", nargs="+", default=["HC", "sMCI", "pMCI", "AD"])
    val.add_argument("--any-group", action="store_true", help="accept any group label (apply mode)")
    val.add_argument("--control-group", default="HC")
    add_participant_selection(val)
    val.add_argument("--on-unlisted-scan", choices=["warn", "error"], default="warn")
    val.add_argument("--max-voxel-size", type=float, default=4.0, help="mm")
    val.add_argument(
        "--max-image-mb", type=float, default=2048.0, help="largest image read (MB of voxels)"
    )
    val.add_argument("--schema", default=str(SCHEMA_PATH), help="participants.tsv JSON schema")
    val.add_argument("--threads", type=int, default=1)
    val.add_argument(
        "--unlabelled",
        choices=["error", "use"],
        default="error",
        help="a participant without an age: an error, or unlabelled (semi-supervised models)",
    )
    val.set_defaults(func=_cmd_validate)
    des = sub.add_parser(
        "describe",
        help="results/preproc/dataset_description.json and .bidsignore: the preprocessing as "
        "a BIDS-derivatives dataset",
    )
    des.add_argument("--bids-dir", required=True, help="the source dataset")
    des.add_argument("--out-dir", required=True, help="the derivatives dataset's root")
    des.set_defaults(func=_cmd_describe)
