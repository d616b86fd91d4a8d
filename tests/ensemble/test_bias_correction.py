"""Global and voxelwise bias correction arithmetic."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy import stats

from brainpad.ensemble.correction import LinearBias
from brainpad.local.correction import VoxelBias, VoxelLinearBias, age_bin_edges, fit_voxel_bias


def test_recovers_regression_to_the_mean():
    rng = np.random.default_rng(0)
    age = rng.uniform(20, 80, 200)
    predicted = 50 + 0.6 * (age - 50) + rng.normal(0, 2, age.size)  # shrunk to the mean
    delta = predicted - age
    bias = LinearBias.fit(age, delta)
    assert bias.alpha == pytest.approx(-0.4, abs=0.03)
    assert bias.beta == pytest.approx(20, abs=1.5)
    corrected = bias.correct(age, delta)
    assert abs(np.corrcoef(age, corrected)[0, 1]) < 0.01
    assert abs(np.corrcoef(age, delta)[0, 1]) > 0.9


def test_needs_calibration_participants():
    with pytest.raises(ValueError, match="at least 3 calibration participants, got 2"):
        LinearBias.fit(np.array([30.0, 40.0]), np.array([1.0, 2.0]))


def test_age_bins_follow_study_1():
    assert age_bin_edges(last=40) == [18, 25, 30, 35, 40]


def test_voxel_bias_subtracts_the_mean_map_of_the_scans_age_bin():
    rng = np.random.default_rng(0)
    age = np.array([20.0, 22, 24, 27, 28, 29, 31, 33, 34])
    delta = rng.normal(size=(9, 3, 4, 5))
    delta[:, 0, 0, 0] = np.nan  # outside the brain
    bias = VoxelBias.fit(age, delta, [18, 25, 30, 35], min_per_bin=3)
    np.testing.assert_array_equal(bias.counts, [3, 3, 3])
    np.testing.assert_allclose(bias.maps[1], delta[3:6].mean(axis=0), rtol=1e-6)
    corrected = bias.correct(28.5, delta[4])
    np.testing.assert_allclose(corrected, delta[4] - delta[3:6].mean(axis=0), rtol=1e-6)
    assert np.isnan(corrected[0, 0, 0])
    # ages outside the bins use the nearest bin
    np.testing.assert_allclose(bias.correct(90, delta[0]), delta[0] - bias.maps[2], rtol=1e-6)
    # the calibration scans' corrected maps average to zero in every bin
    fixed = np.stack([bias.correct(a, d) for a, d in zip(age, delta, strict=True)])
    expected = np.zeros((3, 4, 5))
    expected[0, 0, 0] = np.nan
    np.testing.assert_allclose(fixed[3:6].mean(axis=0), expected, atol=1e-6)


def test_sparse_bins_are_merged_with_a_warning(caplog):
    age = np.array([20.0, 21, 22, 26, 40, 41, 42, 43])
    delta = np.zeros((8, 2, 2, 2))
    with caplog.at_level(logging.WARNING):
        bias = VoxelBias.fit(age, delta, [18, 25, 30, 35, 45], min_per_bin=3)
    assert "age bins 30-35, 25-35 held fewer than 3" in caplog.text
    assert "final bins ['18-35', '35-45']" in caplog.text
    assert bias.counts.min() >= 3 and bias.counts.sum() == 8
    with pytest.raises(ValueError, match="at least 3 calibration scans, got 2"):
        VoxelBias.fit(age[:2], delta[:2], [18, 25], min_per_bin=3)


def test_voxel_linear_bias_fits_a_line_per_voxel_as_scipy_does():
    rng = np.random.default_rng(1)
    age = rng.uniform(20, 85, 12)
    slope = rng.uniform(-0.6, 0.1, (3, 4, 5))
    delta = slope * (age[:, None, None, None] - 50) + rng.normal(0, 2, (12, 3, 4, 5))
    delta[:, 0, 0, 0] = np.nan  # outside the brain
    delta[:4, 1, 1, 1] = np.nan  # a voxel some scans do not reach
    delta[:10, 2, 2, 2] = np.nan  # too few scans for a line
    bias = VoxelLinearBias.fit(age, delta)
    for voxel in [(0, 1, 2), (1, 3, 4), (1, 1, 1), (2, 0, 0)]:
        values = delta[(slice(None), *voxel)]
        keep = np.isfinite(values)
        fit = stats.linregress(age[keep], values[keep])
        assert bias.alpha[voxel] == pytest.approx(fit.slope, rel=1e-5)
        assert bias.beta[voxel] == pytest.approx(fit.intercept, rel=1e-5)
    assert np.isnan(bias.alpha[0, 0, 0]) and np.isnan(bias.alpha[2, 2, 2])
    corrected = np.stack([bias.correct(a, d) for a, d in zip(age, delta, strict=True)])
    # the calibration scans' corrected maps no longer depend on age, voxel by voxel
    r = stats.pearsonr(age, corrected[:, 1, 3, 4]).statistic
    assert abs(r) < 1e-5
    np.testing.assert_allclose(np.nanmean(corrected[:, 0, 1, 2]), 0, atol=1e-4)


def test_voxel_methods_are_chosen_by_name_and_checked():
    age = np.array([30.0, 40, 50, 60])
    delta = np.zeros((4, 2, 2, 2))
    assert isinstance(fit_voxel_bias("linear", age, delta, [18, 100], 3), VoxelLinearBias)
    assert isinstance(fit_voxel_bias("bins", age, delta, [18, 100], 3), VoxelBias)
    with pytest.raises(ValueError, match=r"voxel_method 'median' is not one of bins, linear"):
        fit_voxel_bias("median", age, delta, [18, 100], 3)
    with pytest.raises(ValueError, match=r"at least 3 calibration scans of different ages, got 3"):
        VoxelLinearBias.fit(np.array([50.0, 50, 50]), delta[:3])
