"""Stacking the base models into one brain age (``brainpad ensemble``): study 3's two levels.

Every scan gets one honest prediction per base model: training controls their
out-of-fold prediction, held-out scans (calibration, test, clinical) the mean over the K
fold models (their spread across folds is kept as an uncertainty).

**Level 1, sub-ensembles.** The base models of one architecture, input and region (the
members, differing by seed: :class:`brainpad.models.BaseModel`) are combined by a ridge
head (``models.sub_ensemble_alpha``, α = 1 as in study 3). A sub-ensemble of one member
is that member.

**Level 2, the top head.** A ridge head (``models.stacking_alpha``) over the
sub-ensembles gives the ensemble brain age.

Both heads are fitted on the training controls' out-of-fold predictions. For the
training controls themselves the whole two-level stack is cross-fitted with an inner
``models.stacking_folds``-fold split by participant (study 3's 5-fold): a control's
ensemble age comes from heads fitted on the other folds' controls only, so no head ever
sees the label of the scan it predicts. Held-out scans get the heads fitted on all training
controls. By default the weights are non-negative (Breiman's stacked regressions): base
models whose predictions are strongly correlated get unconstrained weights of opposite
signs that swing from one fit to the next (on the demo, one fold's head weighted two models
−0.42 and −0.32, and that fold's controls' ensemble ages fell up to 18 years below their
best model's).
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


def sub_ensembles(models: Sequence[str]) -> dict[str, list[str]]:
    """Sub-ensemble name → its base models, in config order (:mod:`brainpad.models`)."""
    from brainpad.models import parse_base_model

    groups: dict[str, list[str]] = {}
    for name in models:
        groups.setdefault(parse_base_model(name).sub_ensemble, []).append(name)
    return groups


def inner_folds(table: pd.DataFrame, k: int, seed: int) -> np.ndarray:
    """The inner cross-validation fold (0 … k−1) of each training control, −1 for others.

    Participants are dealt to folds in a seeded random order, so repeat scans of one
    person share a fold.
    """
    train = (table["role"] == "train").to_numpy()
    people = np.unique(table.loc[train, "participant_id"])
    order = np.random.default_rng([seed, 5]).permutation(len(people))
    fold_of = dict(zip(people[order], np.arange(len(people)) % k, strict=True))
    folds = table["participant_id"].map(fold_of).fillna(-1).to_numpy(dtype=int)
    return np.where(train, folds, -1)


def _ridge(alpha: float, positive: bool) -> Ridge:
    return Ridge(alpha=alpha, positive=positive)


def _fit_levels(
    x: dict[str, np.ndarray], age: np.ndarray, rows: np.ndarray, alphas: tuple, positive: bool
) -> tuple[dict[str, Ridge], Ridge]:
    """Both levels' heads fitted on ``rows`` (sub-ensembles of one member have none)."""
    subs = {name: _ridge(alphas[0], positive).fit(v[rows], age[rows]) for name, v in x.items()
            if v.shape[1] > 1}  # fmt: skip
    level1 = np.column_stack(
        [subs[n].predict(v[rows]) if n in subs else v[rows, 0] for n, v in x.items()]
    )
    return subs, _ridge(alphas[1], positive).fit(level1, age[rows])


def _apply_levels(
    heads: tuple[dict[str, Ridge], Ridge], x: dict[str, np.ndarray], rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sub-ensemble predictions (rows, sub-ensembles) and the ensemble age of ``rows``."""
    subs, top = heads
    level1 = np.column_stack(
        [subs[n].predict(v[rows]) if n in subs else v[rows, 0] for n, v in x.items()]
    )
    return level1, top.predict(level1)


def _describe(model: Ridge, names: Sequence[str], alpha: float, positive: bool) -> dict:
    return {
        "weights": dict(zip(names, model.coef_.tolist(), strict=True)),
        "intercept": float(model.intercept_),
        "alpha": alpha,
        "positive": positive,
    }


def stack(
    table: pd.DataFrame,
    models: Sequence[str],
    alpha: float = 1.0,
    positive: bool = True,
    sub_alpha: float = 1.0,
    stacking_folds: int = 5,
    seed: int = 0,
) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """Sub-ensemble and ensemble ages from the ``pred_<model>`` columns (two ridge levels).

    Parameters
    ----------
    table : DataFrame
        One row per scan with ``age``, ``role``, ``participant_id`` and ``pred_<model>``.
    models : sequence of str
        Base models to combine (grouped into sub-ensembles by :func:`sub_ensembles`).
    alpha, sub_alpha : float
        Ridge penalties of the top head and of the sub-ensemble heads.
    positive : bool
        Constrain every head's weights to be non-negative (``models.stacking_positive``;
        False is study 3's unconstrained ridge).
    stacking_folds : int
        Inner cross-validation folds of the training controls.
    seed : int
        Seed of the inner split.

    Returns
    -------
    sub_ages : DataFrame
        ``pred_<sub-ensemble>`` of every row (out-of-sample), for sub-ensembles of more
        than one member.
    brain_age : ndarray
        Out-of-sample ensemble age of every row.
    heads : dict
        The heads fitted on all training controls: ``sub_ensembles`` (name → weights,
        intercept) and the top head's ``weights`` and ``intercept``.
    """
    groups = sub_ensembles(models)
    x = {n: table[[f"pred_{m}" for m in ms]].to_numpy(dtype=float) for n, ms in groups.items()}
    age = table["age"].to_numpy(dtype=float)
    train = (table["role"] == "train").to_numpy()
    if train.sum() < max(3, stacking_folds):
        msg = (
            f"stacking needs at least {max(3, stacking_folds)} training scans (one per inner "
            f"fold, models.stacking_folds), got {train.sum()}"
        )
        raise ValueError(msg)
    alphas = (sub_alpha, alpha)
    heads = _fit_levels(x, age, train, alphas, positive)
    level1, brain_age = _apply_levels(heads, x, np.arange(len(table)))
    inner = inner_folds(table, stacking_folds, seed)
    for fold in range(stacking_folds):
        inside, others = inner == fold, train & (inner != fold)
        if inside.any():
            level1[inside], brain_age[inside] = _apply_levels(
                _fit_levels(x, age, others, alphas, positive), x, inside
            )
    names = list(groups)
    multi = [n for n in names if len(groups[n]) > 1]
    sub_ages = pd.DataFrame(
        {f"pred_{n}": level1[:, names.index(n)] for n in multi}, index=table.index
    )
    subs, top = heads
    described = {
        "sub_ensembles": {n: _describe(subs[n], groups[n], sub_alpha, positive) for n in multi},
        **_describe(top, names, alpha, positive),
        "inner_folds": stacking_folds,
    }
    return sub_ages, brain_age, described


def brain_age_table(
    folds: pd.DataFrame,
    predictions: Sequence[pd.DataFrame],
    models: Sequence[str],
    alpha: float = 1.0,
    calibration: str = "calibration",
    positive: bool = True,
    sub_alpha: float = 1.0,
    stacking_folds: int = 5,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict]:
    """The cohort's brain-age table: per-model, sub-ensemble and ensemble ages, their
    uncertainty, raw and corrected brain-PAD.

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
        Non-negative weights of the stacking heads (:func:`stack`).
    sub_alpha, stacking_folds, seed
        Ridge penalty of the sub-ensemble heads; inner folds and their seed (:func:`stack`).

    Returns
    -------
    table : DataFrame
        The scans that have predictions (QC passed, not excluded), with ``pred_<model>``,
        ``sd_<model>``, ``pred_<sub-ensemble>``, ``brain_age``, the uncertainties of
        :func:`brainpad.ensemble.uncertainty.interval_widths`, the brain-PAD columns
        of :func:`brainpad.ensemble.correction.correct_table` and the calibrated
        interval of :func:`brainpad.ensemble.intervals.add_intervals`.
    fits : dict
        The stacking heads, every bias correction and the interval's fit.
    """
    from brainpad.ensemble.correction import calibration_scans, correct_table
    from brainpad.ensemble.intervals import add_intervals
    from brainpad.ensemble.uncertainty import interval_widths

    wide = collect(predictions)
    table = folds.merge(wide, left_on="scan_id", right_index=True, how="inner")
    table = table.dropna(subset=[f"pred_{m}" for m in models]).reset_index(drop=True)
    sub_ages, brain_age, head = stack(
        table, models, alpha, positive, sub_alpha, stacking_folds, seed
    )
    table = pd.concat([table, sub_ages], axis=1).assign(brain_age=brain_age)
    table = pd.concat([table, interval_widths(predictions, table, models)], axis=1)
    labels = [*models, *(c.removeprefix("pred_") for c in sub_ages.columns)]
    columns = {"": "brain_age", **{f"_{m}": f"pred_{m}" for m in labels}}
    fitted_on = table["scan_id"].isin(calibration_scans(table, calibration)["scan_id"])
    table, bias = correct_table(table, columns, fitted_on.to_numpy())
    table, interval = add_intervals(table, predictions, models, fitted_on.to_numpy())
    return table, {"stacking": head, "bias": bias, "interval": interval}


def apply_heads(heads: dict, predictions: dict[str, float]) -> tuple[dict[str, float], float]:
    """Sub-ensemble ages and the ensemble age of one scan from stored heads.

    Parameters
    ----------
    heads : dict
        The ``stacking`` entry of ``fits.json`` (:func:`stack`'s ``heads``).
    predictions : dict
        Base model → its prediction of the scan (the mean over fold models).

    Returns
    -------
    sub_ages : dict
        Sub-ensemble (of several members) → its age.
    brain_age : float
        The ensemble age: what :func:`stack` gives a held-out scan.
    """

    def head(fit: dict, values: dict[str, float]) -> float:
        weights = fit["weights"]
        return float(
            np.dot([values[n] for n in weights], list(weights.values())) + fit["intercept"]
        )

    sub_ages = {name: head(fit, predictions) for name, fit in heads["sub_ensembles"].items()}
    level1 = {
        name: sub_ages[name] if name in sub_ages else predictions[members[0]]
        for name, members in sub_ensembles(list(predictions)).items()
    }
    return sub_ages, head(heads, level1)
