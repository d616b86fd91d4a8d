"""Streaming group maps, repeat pairs, ICC maps and map summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from brainpad.local.measures import (
    icc_map,
    moments,
    region_correlation,
    repeat_pairs,
    spatial_correlation,
    summarise_map,
    welch_maps,
)
from brainpad.stats.measures import icc_2_1, voxel_welch


def test_streamed_welch_maps_equal_scipy_on_the_stacked_maps():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1, 1, (9, 4, 3)), rng.normal(0, 2, (13, 4, 3))
    streamed = welch_maps(moments(a), moments(b))
    stacked = voxel_welch(a, b)
    for key in ("t", "df", "p", "d"):
        np.testing.assert_allclose(streamed[key], stacked[key], rtol=1e-9, err_msg=key)


def test_repeat_pairs_tell_test_retest_from_between_site():
    scans = pd.DataFrame(
        {
            "scan_id": ["sub-1_ses-1", "sub-1_ses-2", "sub-2_ses-1", "sub-3_ses-1", "sub-3_ses-2"],
            "participant_id": ["sub-1", "sub-1", "sub-2", "sub-3", "sub-3"],
            "site": ["A", "A", "A", "A", "B"],
        }
    )
    pairs = repeat_pairs(scans)
    assert pairs["kind"].tolist() == ["test-retest", "between-site"]
    assert pairs["first"].tolist() == ["sub-1_ses-1", "sub-3_ses-1"]


def test_repeat_pairs_without_a_session_site_are_not_called_test_retest(caplog):
    scans = pd.DataFrame(
        {
            "scan_id": ["sub-1_ses-1", "sub-1_ses-2", "sub-3_ses-1", "sub-3_ses-2"],
            "participant_id": ["sub-1", "sub-1", "sub-3", "sub-3"],
            "site": ["A", "A", "A", "B"],
            "session_site": [False, False, True, True],  # sub-1: participants.tsv site only
        }
    )
    assert repeat_pairs(scans)["kind"].tolist() == ["repeat-site-unknown", "between-site"]
    assert "1 repeat pair(s) have no per-session site" in caplog.text


def test_icc_map_reads_each_pair():
    rng = np.random.default_rng(1)
    maps = {f"s{i}": rng.normal(size=(3, 3)) for i in range(8)}
    pairs = pd.DataFrame({"first": ["s0", "s2", "s4", "s6"], "second": ["s1", "s3", "s5", "s7"]})
    expected = icc_2_1(np.stack([[maps[f"s{2 * i}"], maps[f"s{2 * i + 1}"]] for i in range(4)]))
    np.testing.assert_allclose(icc_map(pairs, maps.__getitem__), expected)


def test_map_summaries():
    values = np.arange(100, dtype=float).reshape(10, 10)
    values[0, 0] = np.nan
    brain = np.ones((10, 10), bool)
    summary = summarise_map(values, brain)
    assert summary["voxels"] == 99 and summary["median"] == pytest.approx(50.0)
    assert spatial_correlation(values, 2 * values + 1, brain) == pytest.approx(1.0)
    assert np.isnan(spatial_correlation(np.full_like(values, np.nan), values, brain))
    assert np.isnan(spatial_correlation(np.ones_like(values), values, brain))  # constant


def test_region_correlation_correlates_regional_means():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 6, (12, 12, 12))  # 0: outside every region
    brain = np.ones(labels.shape, bool)
    brain[:2] = False
    a, b = rng.normal(size=labels.shape), rng.normal(size=labels.shape) + labels
    a[brain & (labels == 2)] = np.nan  # a region without a finite value is left out
    a[5, 5, 5] = np.nan
    table = pd.DataFrame({"label": labels[brain], "a": a[brain], "b": b[brain]})
    means = table[table["label"] > 0].groupby("label").mean().dropna()
    expected = stats.pearsonr(means["a"], means["b"])[0]
    assert len(means) == 4
    assert region_correlation(a, b, labels, brain) == pytest.approx(expected)
    assert region_correlation(b, 2 * b + 1, labels, brain) == pytest.approx(1.0)
    few = np.where(labels > 2, 0, labels)  # two regions left
    assert np.isnan(region_correlation(b, b, few, brain))
