"""Accuracy, group comparisons and effect sizes (scipy/statsmodels where they exist).

Conventions (``SCIENCE.md`` §1): Welch's t-test with Welch–Satterthwaite degrees of
freedom; Cohen's d with the pooled SD √(((n₁−1)s₁² + (n₂−1)s₂²)/(n₁+n₂−2)); Bonferroni
across the comparisons of one family.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import mean_absolute_error, r2_score
from statsmodels.stats.multitest import multipletests

COMPARISON_COLUMNS = [
    "first", "second", "n_first", "n_second", "mean_first", "mean_second",
    "t", "df", "p", "d", "p_bonferroni",
]  # fmt: skip
"""Columns of a group-comparison table (:func:`compare_groups`)."""


def accuracy(age: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MAE, Pearson r and R² of predicted against chronological age (raw predictions)."""
    age = np.asarray(age, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    return {
        "n": int(age.size),
        "mae": float(mean_absolute_error(age, predicted)),
        "r": float(stats.pearsonr(age, predicted)[0]) if age.size > 2 else float("nan"),
        "r2": float(r2_score(age, predicted)) if age.size > 1 else float("nan"),
    }


def cohens_d(a: np.ndarray, b: np.ndarray, axis: int | None = None) -> float | np.ndarray:
    """Cohen's d of ``a`` minus ``b`` with the pooled standard deviation.

    With ``axis`` (e.g. 0 for (subjects, voxels...) arrays) it is computed along that axis
    for every other index at once, as for voxel maps.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if axis is None:
        a, b, axis = a.ravel(), b.ravel(), 0
    n1, n2 = a.shape[axis], b.shape[axis]
    pooled = np.sqrt(
        ((n1 - 1) * a.var(axis=axis, ddof=1) + (n2 - 1) * b.var(axis=axis, ddof=1)) / (n1 + n2 - 2)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        d = (a.mean(axis=axis) - b.mean(axis=axis)) / pooled
    return float(d) if np.ndim(d) == 0 else d


def welch(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Welch's t-test of ``a`` against ``b``: t, Welch–Satterthwaite df, two-sided p."""
    result = stats.ttest_ind(a, b, equal_var=False)
    return {"t": float(result.statistic), "df": float(result.df), "p": float(result.pvalue)}


def compare_groups(
    table: pd.DataFrame,
    value: str,
    group: str = "group",
    pairs: list[tuple[str, str]] | None = None,
) -> pd.DataFrame:
    """Welch t, df, p, Bonferroni p and Cohen's d for each pair of groups.

    Parameters
    ----------
    table : DataFrame
        One row per participant.
    value : str
        Column to compare (e.g. ``brain_pad``).
    group : str
        Column with the group labels.
    pairs : list of (str, str), optional
        Comparisons as (first, second); d and t are first minus second. Default: every
        pair of groups with at least two members, in order of appearance.
    """
    sizes = table[group].value_counts()
    present = [g for g in table[group].unique() if sizes[g] >= 2]
    pairs = pairs or list(combinations(present, 2))
    rows = []
    for first, second in pairs:
        a = table.loc[table[group] == first, value].dropna().to_numpy()
        b = table.loc[table[group] == second, value].dropna().to_numpy()
        if a.size < 2 or b.size < 2:
            continue
        rows.append(
            {
                "first": first,
                "second": second,
                "n_first": a.size,
                "n_second": b.size,
                "mean_first": a.mean(),
                "mean_second": b.mean(),
                **welch(a, b),
                "d": cohens_d(a, b),
            }
        )
    result = pd.DataFrame(rows, columns=COMPARISON_COLUMNS[:-1])
    result["p_bonferroni"] = bonferroni(result["p"])
    return result


def bonferroni(p: pd.Series) -> np.ndarray:
    """Bonferroni-adjusted p-values (statsmodels), also for an empty family."""
    return multipletests(p, method="bonferroni")[1] if len(p) else np.array([], dtype=float)


def baseline_scans(table: pd.DataFrame) -> pd.DataFrame:
    """One scan per participant (the first by scan id), so repeat scans do not count twice."""
    return table.sort_values("scan_id").drop_duplicates("participant_id").reset_index(drop=True)


def accuracy_table(
    table: pd.DataFrame, columns: dict[str, str], truth: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Healthy-test accuracy of each brain-age column, on raw predictions.

    Parameters
    ----------
    table : DataFrame
        The brain-age table (``role``, ``age`` and the brain-age columns).
    columns : dict
        Label → brain-age column, e.g. ``{"ensemble": "brain_age", "vgg3d": "pred_vgg3d"}``.
    truth : DataFrame, optional
        Simulation truth indexed by ``participant_id`` with ``true_brain_age``: adds the
        floor MAE of the same test participants (what a perfect model would score) and
        each model's MAE above it.
    """
    test = baseline_scans(table[table["role"] == "test"])
    rows = [{"model": label, **accuracy(test["age"], test[col])} for label, col in columns.items()]
    result = pd.DataFrame(rows)
    if truth is not None:
        true_age = truth.loc[test["participant_id"], "true_brain_age"].to_numpy()
        result["floor_mae"] = float(np.abs(true_age - test["age"].to_numpy()).mean())
        result["mae_above_floor"] = result["mae"] - result["floor_mae"]
    return result


def comparison_people(
    table: pd.DataFrame, control_group: str, control_min_age: float
) -> pd.DataFrame:
    """One scan per participant for the group comparisons: every patient, and the controls
    aged ``control_min_age`` or more (excluded participants left out)."""
    people = baseline_scans(table[table["role"] != "excluded"])
    keep = (people["group"] != control_group) | (people["age"] >= control_min_age)
    return people[keep].reset_index(drop=True)


def group_tables(
    table: pd.DataFrame,
    control_group: str,
    control_min_age: float,
    value: str = "brain_pad_corrected",
    truth: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Brain-PAD by group and the group comparisons (controls vs patients, patients pairwise).

    Controls are the healthy participants aged ``control_min_age`` or more (their
    out-of-fold or held-out predictions), so they match the patients' age range.

    Returns
    -------
    by_group : DataFrame
        ``group, n, mean, sd`` of ``value`` (and ``true_mean`` of the simulated brain-PAD
        when ``truth`` is given).
    comparisons : DataFrame
        :func:`compare_groups` rows, patient group first, Bonferroni over all pairs.
    """
    people = comparison_people(table, control_group, control_min_age)
    order = [control_group] + [g for g in people["group"].unique() if g != control_group]
    summary = people.groupby("group")[value].agg(["size", "mean", "std"]).reindex(order)
    summary = summary.dropna(subset=["size"]).rename(columns={"size": "n", "std": "sd"})
    summary = summary.astype({"n": int}).rename_axis("group").reset_index()
    if truth is not None:
        true_pad = truth.loc[people["participant_id"], "true_brain_pad"].to_numpy()
        means = pd.Series(true_pad, index=people.index).groupby(people["group"]).mean()
        summary["true_mean"] = summary["group"].map(means)
    return summary, compare_groups(people, value, pairs=comparison_pairs(people, control_group))


def comparison_pairs(people: pd.DataFrame, control_group: str) -> list[tuple[str, str]]:
    """Each patient group vs the controls, then the patient groups pairwise."""
    patients = [g for g in people["group"].unique() if g != control_group]
    return [(g, control_group) for g in patients] + list(combinations(patients, 2))


def icc_2_1(ratings: np.ndarray) -> np.ndarray:
    """ICC(2,1) of Shrout & Fleiss (two-way random effects, absolute agreement, single
    measurement), vectorised over every trailing axis (e.g. voxels).

    Parameters
    ----------
    ratings : ndarray
        (subjects, sessions, ...): e.g. the test and retest brain-PAD maps of each subject.

    Returns
    -------
    ndarray
        ICC per trailing index: (MSR − MSE) / (MSR + (k−1)·MSE + k·(MSC − MSE)/n).

    Notes
    -----
    No library computes it per voxel at once; it matches ``pingouin.intraclass_corr``'s
    ``ICC(A,1)`` (= ICC(2,1)) voxel by voxel (tests/test_stats.py).
    """
    y = np.asarray(ratings, dtype=float)
    n, k = y.shape[:2]
    grand = y.mean(axis=(0, 1))
    subject_means = y.mean(axis=1)
    session_means = y.mean(axis=0)
    ss_subjects = k * ((subject_means - grand) ** 2).sum(axis=0)
    ss_sessions = n * ((session_means - grand) ** 2).sum(axis=0)
    ss_total = ((y - grand) ** 2).sum(axis=(0, 1))
    ms_subjects = ss_subjects / (n - 1)
    ms_sessions = ss_sessions / (k - 1)
    ms_error = (ss_total - ss_subjects - ss_sessions) / ((n - 1) * (k - 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ms_subjects - ms_error) / (
            ms_subjects + (k - 1) * ms_error + k * (ms_sessions - ms_error) / n
        )


def voxel_welch(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """Welch's t, df, p and Cohen's d of ``a`` minus ``b`` at every voxel (axis 0 = subjects)."""
    result = stats.ttest_ind(a, b, axis=0, equal_var=False)
    return {
        "t": np.asarray(result.statistic),
        "df": np.asarray(result.df),
        "p": np.asarray(result.pvalue),
        "d": cohens_d(a, b, axis=0),
    }
