"""Accuracy and effect-size measures (scipy/statsmodels where they exist).

Conventions (``SCIENCE.md`` §1): Welch's t-test with Welch–Satterthwaite degrees of
freedom; Cohen's d with the pooled SD √(((n₁−1)s₁² + (n₂−1)s₂²)/(n₁+n₂−2)); Bonferroni
across the comparisons of one family; ICC(2,1) of repeated scans.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from statsmodels.stats.multitest import multipletests


def accuracy(age: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MAE, MSE, Pearson r and R² of predicted against chronological age (raw predictions)."""
    age = np.asarray(age, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    if age.size == 0:
        return {"n": 0, "mae": np.nan, "mse": np.nan, "r": np.nan, "r2": np.nan}
    return {
        "n": int(age.size),
        "mae": float(mean_absolute_error(age, predicted)),
        "mse": float(mean_squared_error(age, predicted)),
        "r": float(stats.pearsonr(age, predicted)[0]) if age.size > 2 else float("nan"),
        "r2": float(r2_score(age, predicted)) if age.size > 1 else float("nan"),
    }


def bootstrap_interval(
    statistic, samples: tuple[np.ndarray, ...], seed: int = 0, n_resamples: int = 2000
) -> tuple[float, float]:
    """The bootstrap 95 % interval (BCa, scipy) of ``statistic`` over people: each of
    ``samples`` holds one value per person, resampled together (paired)."""
    if len(samples[0]) < 3:
        return float("nan"), float("nan")
    result = stats.bootstrap(
        samples,
        statistic,
        paired=True,
        vectorized=False,
        n_resamples=n_resamples,
        random_state=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def mean_ratio(values: np.ndarray, reference: np.ndarray) -> float:
    """mean(values) / mean(reference): a model's MAE over the floor's, for
    :func:`bootstrap_interval` over people."""
    return float(np.mean(values) / np.mean(reference))


def coverage(age: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    """Share of scans whose age lies inside their interval (NaN when there are none)."""
    age = np.asarray(age, dtype=float)
    if age.size == 0:
        return float("nan")
    return float(np.mean((age >= low) & (age <= high)))


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


def bonferroni(p: pd.Series) -> np.ndarray:
    """Bonferroni-adjusted p-values (statsmodels), also for an empty family."""
    return multipletests(p, method="bonferroni")[1] if len(p) else np.array([], dtype=float)


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
    ``ICC(A,1)`` (= ICC(2,1)) voxel by voxel (tests/stats/test_stats.py).
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
