"""``brainpad <command>``: one subcommand per workflow rule, plus ``simulate``.

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

from brainpad import __version__
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
        schema_path=Path(args.schema),
        threads=args.threads,
    )
    validate_dataset(args.bids_dir, args.manifest, args.skipped, options)


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
    val.add_argument("--schema", default=str(SCHEMA_PATH), help="participants.tsv JSON schema")
    val.add_argument("--threads", type=int, default=1)
    val.set_defaults(func=_cmd_validate)
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
    return 0
