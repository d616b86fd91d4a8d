"""Per-scan uncertainty of the ensemble: the spread of its base models' predictions.

Study 3's measure: the width of the 95 % interval (2.5th to 97.5th percentile) of the
base-model predictions of a scan. Every prediction a scan has counts: a training control
has one out-of-fold prediction per base model, a held-out scan one per base model and
fold. It is given for the whole ensemble (``uncertainty``: every base model) and for each
sub-ensemble of more than one member (``uncertainty_<sub-ensemble>``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from brainpad.ensemble.stacking import sub_ensembles

COVERAGE = 0.95


def interval_width(values: np.ndarray, coverage: float = COVERAGE) -> float:
    """Width of the central ``coverage`` interval of ``values`` (linear percentiles)."""
    tail = (1 - coverage) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(high - low)


def interval_widths(
    predictions: Sequence[pd.DataFrame], table: pd.DataFrame, models: Sequence[str]
) -> pd.DataFrame:
    """``uncertainty`` and ``uncertainty_<sub-ensemble>`` of each row of ``table``.

    Parameters
    ----------
    predictions : sequence of DataFrame
        Every model × fold prediction table (``scan_id, model, fold, set, predicted``).
    table : DataFrame
        The brain-age table (``scan_id``); the result has its index.
    models : sequence of str
        The base models of the ensemble.
    """
    every = pd.concat(predictions, ignore_index=True)
    every = every[every["model"].isin(models) & every["scan_id"].isin(table["scan_id"])]
    scopes = {"uncertainty": list(models)}
    for name, members in sub_ensembles(models).items():
        if len(members) > 1:
            scopes[f"uncertainty_{name}"] = members
    out = pd.DataFrame(index=table.index)
    for column, members in scopes.items():
        chosen = every[every["model"].isin(members)]
        widths = chosen.groupby("scan_id")["predicted"].agg(interval_width)
        out[column] = table["scan_id"].map(widths).to_numpy()
    return out
