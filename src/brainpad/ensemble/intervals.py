"""Calibrated 95 % prediction intervals of the ensemble brain age (split-conformal).

The spread of the base models (study 3's uncertainty) says which scans are hard, but not
how wide an interval must be to hold the true age 95 % of the time. Normalised
split-conformal prediction turns it into one: on healthy calibration scans the score of
a scan is its absolute error over its spread, ``s = |age − brain age| / (σ + m)``, and
``q`` is the ⌈(n + 1)·0.95⌉-th smallest of the n scores. A new scan's interval is
``brain age ± q·(σ + m)``: hard scans (large σ) get wider intervals, and if the new scans
are exchangeable with the calibration scans, the interval holds the true age with
probability at least 95 % (Lei et al. 2018, "Distribution-free predictive inference
for regression", §5.2).

The spread σ of a scan is the standard deviation of the base models' predictions of one
fold, averaged over the folds that predicted it: a training control has one such fold
(its out-of-fold models), a held-out or new scan K, so both are measured alike. ``m``
(a quarter of the calibration scans' median σ; 1 year for a single model, whose σ is 0)
keeps a scan on which the models happen to agree from getting an interval of width zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

COVERAGE = 0.95
OFFSET = 0.25
"""m as a share of the calibration scans' median spread."""


def model_spread(predictions: pd.DataFrame, models: Sequence[str]) -> pd.Series:
    """σ of every scan: SD (ddof 1) over the base models within each fold, averaged over folds.

    Parameters
    ----------
    predictions : DataFrame
        ``scan_id, model, fold, predicted`` (every base model × fold prediction).
    models : sequence of str
        The ensemble's base models.

    Returns
    -------
    Series
        σ by ``scan_id`` (0 for an ensemble of one model).
    """
    chosen = predictions[predictions["model"].isin(models)]
    per_fold = chosen.groupby(["scan_id", "fold"])["predicted"].std(ddof=1).fillna(0.0)
    return per_fold.groupby("scan_id").mean()


def conformal_fit(
    age: np.ndarray, brain_age: np.ndarray, spread: np.ndarray, coverage: float = COVERAGE
) -> dict:
    """The interval's multiplier ``q`` and offset ``m`` from healthy calibration scans.

    Returns
    -------
    dict
        ``q``, ``offset`` (m), ``n``, ``coverage``, and ``guaranteed``: False when n is
        below ``1 / (1 − coverage) − 1`` (19 scans for 95 %), where the finite-sample rank
        exceeds n and the largest score is used instead (the interval may then cover less).
    """
    age, brain_age, spread = (np.asarray(v, dtype=float) for v in (age, brain_age, spread))
    n = age.size
    if n < 2:
        msg = (
            f"the prediction interval needs at least 2 healthy calibration scans, got {n}; "
            "raise folds.calibration_fraction or use debias.global_calibration: "
            "calibration+out_of_fold"
        )
        raise ValueError(msg)
    offset = OFFSET * float(np.median(spread)) or 1.0
    scores = np.sort(np.abs(age - brain_age) / (spread + offset))
    rank = math.ceil((n + 1) * coverage)
    return {
        "q": float(scores[min(rank, n) - 1]),
        "offset": offset,
        "n": int(n),
        "coverage": coverage,
        "guaranteed": rank <= n,
    }


def interval(brain_age: np.ndarray, spread: np.ndarray, fit: dict) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper ends of each scan's interval under a :func:`conformal_fit`."""
    half = fit["q"] * (np.asarray(spread, dtype=float) + fit["offset"])
    centre = np.asarray(brain_age, dtype=float)
    return centre - half, centre + half


def add_intervals(
    table: pd.DataFrame,
    predictions: Sequence[pd.DataFrame],
    models: Sequence[str],
    calibration: np.ndarray,
) -> tuple[pd.DataFrame, dict]:
    """``spread``, ``brain_age_low`` and ``brain_age_high`` of every row, and the fit.

    Parameters
    ----------
    table : DataFrame
        The brain-age table (``scan_id``, ``age``, ``brain_age``).
    predictions : sequence of DataFrame
        Every base model × fold prediction table.
    models : sequence of str
        The ensemble's base models.
    calibration : ndarray of bool
        Rows of the healthy scans the interval is calibrated on (those of the global
        bias correction).

    Returns
    -------
    table : DataFrame
        A copy with the three columns added.
    fit : dict
        :func:`conformal_fit`'s fit, plus ``spread_limit``: twice the 95th percentile of
        the calibration scans' spread, above which ``brainpad predict`` warns that the
        models disagree far more than they did in training.
    """
    out = table.copy()
    spread = out["scan_id"].map(model_spread(pd.concat(predictions), models)).to_numpy(float)
    fit = conformal_fit(
        out["age"].to_numpy(float)[calibration],
        out["brain_age"].to_numpy(float)[calibration],
        spread[calibration],
    )
    fit["spread_limit"] = 2 * float(np.percentile(spread[calibration], 95))
    out["spread"] = spread
    out["brain_age_low"], out["brain_age_high"] = interval(out["brain_age"], spread, fit)
    return out, fit
