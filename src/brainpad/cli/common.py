"""What several stages' subcommands share: model labels, the ``--calibration`` option and
nilearn's garbage collections made cheap."""

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


def freeze_gc() -> None:
    """Keep the objects alive now out of later garbage collections.

    nilearn runs ``gc.collect()`` each time it reads an image's data (every permutation of
    a TFCE test; :func:`brainpad.report.brainmaps.brain_panel` freezes before each panel
    itself); with pandas, scipy and nilearn loaded each collection takes ~0.1 s, 3-4x the
    work it guards. What is alive at this point lives to the end of
    the command anyway.
    """
    import gc

    gc.freeze()


def add_calibration(parser: argparse.ArgumentParser, corrections: str) -> None:
    """``--calibration``: which scans the ``corrections`` are fitted on."""
    parser.add_argument(
        "--calibration",
        choices=CALIBRATION_SETS,
        default="calibration",
        help=f"scans the {corrections} are fitted on: the calibration set, or with the "
        "training controls (their out-of-fold predictions)",
    )
