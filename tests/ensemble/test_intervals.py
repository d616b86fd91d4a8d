"""Split-conformal intervals: the rank, the spread, and coverage on exchangeable data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainpad.ensemble.intervals import add_intervals, conformal_fit, interval, model_spread
from brainpad.stats.measures import coverage


def test_the_multiplier_is_the_finite_sample_rank_of_the_scores():
    age = np.zeros(39)
    brain_age = np.arange(1, 40, dtype=float)  # scores 1..39 over (σ 0 + m 1)
    fit = conformal_fit(age, brain_age, np.zeros(39))
    # ⌈(39 + 1) · 0.95⌉ = 38th smallest score; m falls back to 1 when every σ is 0
    assert fit["q"] == 38.0 and fit["offset"] == 1.0 and fit["guaranteed"]


def test_too_few_scans_for_the_guarantee_use_the_largest_score_and_say_so():
    fit = conformal_fit(np.zeros(10), np.arange(1, 11, dtype=float), np.ones(10))
    assert fit["q"] == pytest.approx(10 / 1.25) and not fit["guaranteed"]
    with pytest.raises(ValueError, match="at least 2 healthy calibration scans"):
        conformal_fit(np.zeros(1), np.zeros(1), np.zeros(1))


def test_intervals_cover_95_percent_of_exchangeable_scans_and_widen_with_the_spread():
    rng = np.random.default_rng(0)
    n = 4000
    spread = rng.uniform(0.5, 3.0, 2 * n)
    age = rng.uniform(20, 80, 2 * n)
    brain_age = age + rng.normal(0, 1, 2 * n) * 2 * spread  # heteroscedastic errors
    fit = conformal_fit(age[:n], brain_age[:n], spread[:n])
    low, high = interval(brain_age[n:], spread[n:], fit)
    assert 0.94 <= coverage(age[n:], low, high) <= 0.96
    hard, easy = spread[n:] > 2.5, spread[n:] < 1.0
    # a constant width with the same overall coverage leaves the hard scans far more often
    flat = conformal_fit(age[:n], brain_age[:n], np.zeros(n))
    flat_low, flat_high = interval(brain_age[n:], np.zeros(n), flat)
    assert coverage(age[n:][hard], low[hard], high[hard]) > 0.9
    assert coverage(age[n:][hard], flat_low[hard], flat_high[hard]) < 0.87
    assert (high - low)[hard].mean() > 2 * (high - low)[easy].mean()


def test_the_spread_is_the_sd_over_models_within_a_fold_averaged_over_folds():
    predictions = pd.DataFrame(
        {
            "scan_id": ["a"] * 4 + ["b"] * 2,
            "model": ["m1", "m2", "m1", "m2", "m1", "m2"],
            "fold": [0, 0, 1, 1, 1, 1],
            "predicted": [50.0, 52.0, 40.0, 46.0, 30.0, 30.0],
        }
    )
    spread = model_spread(predictions, ["m1", "m2"])
    assert spread["a"] == pytest.approx((np.std([50, 52], ddof=1) + np.std([40, 46], ddof=1)) / 2)
    assert spread["b"] == 0.0
    table = pd.DataFrame(
        {
            "scan_id": ["a", "b", "a", "b"],
            "age": [50.0, 31, 52, 29],
            "brain_age": [51.0, 30, 50, 30],
        }
    )
    out, fit = add_intervals(
        table, [predictions], ["m1", "m2"], np.array([True, True, False, False])
    )
    assert fit["n"] == 2 and fit["spread_limit"] > 0
    assert (out["brain_age_low"] < out["brain_age"]).all()
    assert (out["brain_age_high"] > out["brain_age"]).all()
