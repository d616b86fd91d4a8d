"""Stacking the base models into one brain age (``brainpad ensemble``).

Every scan gets one honest prediction per base model: training controls their
out-of-fold prediction, held-out scans (calibration, test, clinical) the mean over the K
fold models (their spread across folds is kept as an uncertainty). A ridge head (α = 1,
as in study 3) maps the base models' predictions to the ensemble brain age. It is fitted
on the out-of-fold predictions; for the training controls themselves it is cross-fitted
fold by fold, so their ensemble age is out-of-sample too. By default its weights are
non-negative (Breiman's stacked regressions): base models whose predictions are strongly
correlated get unconstrained weights of opposite signs that swing from one fit to the next
(on the demo, one fold's head weighted two models −0.42 and −0.32, and that fold's controls'
ensemble ages fell up to 18 years below their best model's).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge


def collect(predictions: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """One row per scan, one column per model: out-of-fold or fold-averaged predictions.

    Parameters
    ----------
    predictions : sequence of DataFrame
        The per model × fold tables written by :func:`brainpad.training.fold.train_fold`
        (``scan_id, model, fold, set, predicted``).

    Returns
    -------
    DataFrame
        Indexed by ``scan_id``: ``pred_<model>`` and ``sd_<model>`` (SD over fold models
        for held-out scans, 0 for out-of-fold ones).
    """
    table = pd.concat(predictions, ignore_index=True)
    oof = table[table["set"] == "oof"]
    twice = oof[oof.duplicated(["model", "scan_id"])]
    if len(twice):
        row = twice.iloc[0]
        msg = (
            f"scan {row.scan_id} has more than one out-of-fold prediction from {row.model}: "
            "were predictions of two different folds.tsv mixed?"
        )
        raise ValueError(msg)
    summary = table.groupby(["scan_id", "model"])["predicted"].agg(["mean", "std"])
    summary["std"] = summary["std"].fillna(0.0)
    wide = summary.unstack("model")
    wide.columns = [f"{'pred' if s == 'mean' else 'sd'}_{m}" for s, m in wide.columns]
    return wide


def stack(
    table: pd.DataFrame, models: Sequence[str], alpha: float = 1.0, positive: bool = True
) -> tuple[np.ndarray, dict]:
    """Ensemble brain age from the ``pred_<model>`` columns with a ridge head.

    Parameters
    ----------
    table : DataFrame
        One row per scan with ``age``, ``role``, ``fold`` and ``pred_<model>``.
    models : sequence of str
        Base models to combine.
    alpha : float
        Ridge penalty of the head.
    positive : bool
        Constrain the head's weights to be non-negative (``models.stacking_positive``;
        False is study 3's unconstrained ridge).

    Returns
    -------
    brain_age : ndarray
        Out-of-sample ensemble age of every row.
    head : dict
        Weights and intercept of the head fitted on all out-of-fold rows.
    """
    columns = [f"pred_{m}" for m in models]
    x = table[columns].to_numpy(dtype=float)
    age = table["age"].to_numpy(dtype=float)
    train = (table["role"] == "train").to_numpy()
    if train.sum() < len(columns) + 2:
        msg = f"stacking needs more than {len(columns) + 1} training scans, got {train.sum()}"
        raise ValueError(msg)

    def fit(rows: np.ndarray) -> Ridge:
        return Ridge(alpha=alpha, positive=positive).fit(x[rows], age[rows])

    head = fit(train)
    brain_age = head.predict(x)
    folds = table["fold"].to_numpy()
    for fold in np.unique(folds[train]):
        inside = train & (folds == fold)
        others = train & (folds != fold)
        brain_age[inside] = fit(others).predict(x[inside])
    weights = dict(zip(models, head.coef_.tolist(), strict=True))
    intercept = float(head.intercept_)
    return brain_age, {
        "weights": weights,
        "intercept": intercept,
        "alpha": alpha,
        "positive": positive,
    }


def brain_age_table(
    folds: pd.DataFrame,
    predictions: Sequence[pd.DataFrame],
    models: Sequence[str],
    alpha: float = 1.0,
    calibration: str = "calibration",
    positive: bool = True,
) -> tuple[pd.DataFrame, dict]:
    """The cohort's brain-age table: per-model and ensemble ages, raw and corrected brain-PAD.

    Parameters
    ----------
    folds : DataFrame
        ``results/folds.tsv``.
    predictions : sequence of DataFrame
        Every model × fold prediction table.
    models : sequence of str
        Base models, in config order.
    alpha : float
        Ridge penalty of the stacking head.
    calibration : str
        Scans the global bias corrections are fitted on
        (:func:`brainpad.ensemble.correction.calibration_scans`): the calibration set, or with
        ``calibration+out_of_fold`` also the training controls (their predictions are
        out-of-fold and their ensemble age cross-fitted).
    positive : bool
        Non-negative weights of the stacking head (:func:`stack`).

    Returns
    -------
    table : DataFrame
        The scans that have predictions (QC passed, not excluded), with ``pred_<model>``,
        ``sd_<model>``, ``brain_age`` and the brain-PAD columns of
        :func:`brainpad.ensemble.correction.correct_table`.
    fits : dict
        The stacking head and every bias correction.
    """
    from brainpad.ensemble.correction import calibration_scans, correct_table

    wide = collect(predictions)
    table = folds.merge(wide, left_on="scan_id", right_index=True, how="inner")
    table = table.dropna(subset=[f"pred_{m}" for m in models]).reset_index(drop=True)
    table["brain_age"], head = stack(table, models, alpha, positive)
    columns = {"": "brain_age", **{f"_{m}": f"pred_{m}" for m in models}}
    fitted_on = calibration_scans(table, calibration)["scan_id"]
    table, bias = correct_table(table, columns, table["scan_id"].isin(fitted_on).to_numpy())
    return table, {"stacking": head, "bias": bias}
