"""``brainpad <command>``: one subcommand per workflow rule.

One module per stage, named like its rule file and its subpackage (``cli/local.py`` holds
the commands of ``workflow/rules/local.smk``, which run ``brainpad.local``). Each command
is a thin wrapper: parse arguments, call the module that owns the logic. Input problems
(:class:`brainpad.inputs.errors.InputError`) are printed as one clear message without a
traceback and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from brainpad import __version__
from brainpad.bundle import BundleError
from brainpad.cli import (
    bundle,
    cohort,
    ensemble,
    harmonise,
    inputs,
    interpret,
    local,
    preprocess,
    report,
    simulate,
    stats,
    training,
)
from brainpad.inputs.errors import InputError

log = logging.getLogger("brainpad")
STAGES = (
    simulate, inputs, preprocess, cohort, harmonise, training, ensemble, local, interpret,
    stats, report, bundle,
)  # fmt: skip
"""The subcommand modules, in workflow order (``brainpad --help`` lists them so)."""


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``brainpad`` command."""
    parser = argparse.ArgumentParser(prog="brainpad", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"brainpad {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    for stage in STAGES:
        stage.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``brainpad`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        args.func(args)
    except (InputError, BundleError) as err:
        print(f"brainpad {args.command}: input error\n{err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a folder made read-only, a file that vanished
        log.debug("%s failed", args.command, exc_info=True)
        where = f" ({err.filename})" if err.filename else ""
        print(
            f"brainpad {args.command}: system error: {err.strerror or err}{where}; fix the "
            "cause (free disk space, permissions) and re-run",
            file=sys.stderr,
        )
        return 1
    return 0
