"""``brainpad simulate``: the simulated cohort (``workflow/rules/simulate.smk``)."""

from __future__ import annotations

import argparse
import json
import logging

log = logging.getLogger("brainpad")


def _cmd_simulate(args: argparse.Namespace) -> None:
    from brainpad.simulate import Settings, simulate_cohort

    config = {"simulation": json.loads(args.settings) if args.settings else {}}
    if args.seed is not None:
        config["seed"] = args.seed
    config["control_group"] = args.control_group
    info = simulate_cohort(Settings.from_config(config), args.out_dir, threads=args.threads)
    log.info(
        "floor MAE %.2f y (expected), %.2f y (this sample); %d scans in %.1f s",
        info["floor_mae_expected"],
        info["floor_mae_sample"],
        info["n_scans"],
        info["seconds"],
    )


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this stage's subcommands on ``brainpad``'s subparsers."""
    sim = sub.add_parser("simulate", help="generate the simulated BIDS cohort with its truth")
    sim.add_argument("--out-dir", required=True, help="BIDS root to create")
    sim.add_argument("--settings", default="", help="JSON of the config's `simulation` section")
    sim.add_argument("--seed", type=int, default=None, help="random seed")
    sim.add_argument("--control-group", default="HC", help="the healthy controls' group label")
    sim.add_argument("--threads", type=int, default=1, help="worker processes")
    sim.set_defaults(func=_cmd_simulate)
