"""What several stages' subcommands share: model labels and the ``--calibration`` option."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from brainpad.cohort.folds import CALIBRATION_SETS


def model_columns(models: Sequence[str], members: bool = True) -> dict[str, str]:
    """Report label → brain-age column: the ensemble, then each sub-ensemble of several
    members followed by its base models (without them when ``members`` is false)."""
    from brainpad.ensemble.stacking import sub_ensembles

    columns = {"ensemble": "brain_age"}
    for name, base in sub_ensembles(models).items():
        if len(base) > 1:
            columns[name] = f"pred_{name}"
        if members or len(base) == 1:
            columns.update({m: f"pred_{m}" for m in base})
    return columns


def add_calibration(parser: argparse.ArgumentParser, corrections: str) -> None:
    """``--calibration``: which scans the ``corrections`` are fitted on."""
    parser.add_argument(
        "--calibration",
        choices=CALIBRATION_SETS,
        default="calibration",
        help=f"scans the {corrections} are fitted on: the calibration set, or with the "
        "training controls (their out-of-fold predictions)",
    )
