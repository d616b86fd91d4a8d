"""Statistics of local brain-PAD maps: group t/d maps, ICC maps, ROI tables, truth checks.

Maps are read one scan at a time and reduced to running moments, so a cohort of any size
fits in memory. Welch's t (and its p) come from :func:`scipy.stats.ttest_ind_from_stats`
on those moments; Cohen's d uses the pooled SD (``SCIENCE.md`` §1).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from brainpad.stats.measures import icc_2_1

log = logging.getLogger(__name__)
REPEAT_UNKNOWN = "repeat-site-unknown"  # a repeat pair whose sessions have no own site


@dataclass
class RunningMoments:
    """Count, mean and sum of squared deviations of maps added one by one (Welford)."""

    n: int = 0
    mean: np.ndarray | float = 0.0
    m2: np.ndarray | float = 0.0

    def add(self, values: np.ndarray) -> None:
        """Include one more map."""
        values = np.asarray(values, dtype=np.float64)
        self.n += 1
        delta = values - self.mean
        self.mean = self.mean + delta / self.n
        self.m2 = self.m2 + delta * (values - self.mean)

    @property
    def var(self) -> np.ndarray:
        """Sample variance (ddof 1)."""
        return self.m2 / (self.n - 1)


def moments(maps: Iterable[np.ndarray]) -> RunningMoments:
    """Running moments of a stream of maps."""
    acc = RunningMoments()
    for values in maps:
        acc.add(values)
    return acc


def welch_maps(a: RunningMoments, b: RunningMoments) -> dict[str, np.ndarray]:
    """Welch's t, Welch–Satterthwaite df, two-sided p and Cohen's d of ``a`` minus ``b``."""
    sa, sb = np.sqrt(a.var), np.sqrt(b.var)
    with np.errstate(invalid="ignore", divide="ignore"):
        t, p = stats.ttest_ind_from_stats(a.mean, sa, a.n, b.mean, sb, b.n, equal_var=False)
        va, vb = a.var / a.n, b.var / b.n
        df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
        pooled = np.sqrt(((a.n - 1) * a.var + (b.n - 1) * b.var) / (a.n + b.n - 2))
        d = (a.mean - b.mean) / pooled
    return {"t": np.asarray(t), "df": np.asarray(df), "p": np.asarray(p), "d": np.asarray(d)}


def repeat_pairs(scans: pd.DataFrame) -> pd.DataFrame:
    """Participants scanned twice: their first two scans and the kind of repeat.

    Returns ``participant_id, first, second, kind`` with ``kind`` ``test-retest`` (same
    site) or ``between-site``, or ``repeat-site-unknown`` when either scan's site is the
    participant's and not its session's (``session_site`` false: the dataset has no
    sessions.tsv ``site``), so the pair cannot be told apart; a warning says how many.
    """
    rows = []
    for pid, group in scans.sort_values("scan_id").groupby("participant_id"):
        if len(group) < 2:
            continue
        first, second = group.iloc[0], group.iloc[1]
        if not (first.get("session_site", True) and second.get("session_site", True)):
            kind = REPEAT_UNKNOWN
        elif first["site"] == second["site"]:
            kind = "test-retest"
        else:
            kind = "between-site"
        rows.append(
            {
                "participant_id": pid,
                "first": first["scan_id"],
                "second": second["scan_id"],
                "kind": kind,
            }
        )
    pairs = pd.DataFrame(rows, columns=["participant_id", "first", "second", "kind"])
    if unknown := int((pairs["kind"] == REPEAT_UNKNOWN).sum()):
        log.warning(
            "%d repeat pair(s) have no per-session site (no sessions.tsv 'site'): they cannot "
            "be told apart as test-retest or between-site and are counted as %s",
            unknown,
            REPEAT_UNKNOWN,
        )
    return pairs


def icc_map(pairs: pd.DataFrame, load: Callable[[str], np.ndarray]) -> np.ndarray:
    """ICC(2,1) per voxel over the pairs' two maps (``load(scan_id)`` reads one map)."""
    ratings = np.stack(
        [np.stack([load(a), load(b)]) for a, b in zip(pairs["first"], pairs["second"], strict=True)]
    )
    return icc_2_1(ratings)


def summarise_map(values: np.ndarray, brain: np.ndarray) -> dict[str, float]:
    """Median and 95 % range of a map over the brain voxels (finite values)."""
    inside = values[brain]
    inside = inside[np.isfinite(inside)]
    low, median, high = np.percentile(inside, [2.5, 50, 97.5])
    return {
        "median": float(median),
        "p2.5": float(low),
        "p97.5": float(high),
        "voxels": int(inside.size),
    }


def spatial_correlation(a: np.ndarray, b: np.ndarray, brain: np.ndarray) -> float:
    """Pearson r between two maps over the brain voxels where both are finite (NaN when
    fewer than 3 such voxels, or a map is constant there)."""
    keep = brain & np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 3 or np.ptp(a[keep]) == 0 or np.ptp(b[keep]) == 0:
        return float("nan")
    return float(stats.pearsonr(a[keep], b[keep])[0])


def region_correlation(
    a: np.ndarray, b: np.ndarray, labels: np.ndarray, brain: np.ndarray
) -> float:
    """Pearson r over regions between the regional means of two maps.

    Each label > 0 inside ``brain`` is one point: the mean of each map over its voxels
    where that map is finite. Regions where either map has no finite voxel are left out
    (NaN when fewer than 3 regions remain, or a side is constant). Unlike
    :func:`spatial_correlation`, every region counts once whatever its size, and voxel
    noise within a region averages out.
    """
    inside = brain & (labels > 0)
    _, index = np.unique(labels[inside], return_inverse=True)
    n = int(index.max()) + 1 if index.size else 0

    def regional_means(values: np.ndarray) -> np.ndarray:
        values = values[inside]
        finite = np.isfinite(values)
        total = np.bincount(index[finite], values[finite], minlength=n)
        count = np.bincount(index[finite], minlength=n)
        return np.divide(total, count, out=np.full(n, np.nan), where=count > 0)

    return spatial_correlation(regional_means(a), regional_means(b), np.ones(n, bool))
