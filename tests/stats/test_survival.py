"""Study 2's analyses: KS tests between models' brain-PAD and brain-PAD against survival."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.duration.hazard_regression import PHReg

from brainpad.stats.survival import survival_table
from brainpad.stats.tables import ks_table


def _table(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pad = rng.normal(0, 5, n)
    return pd.DataFrame(
        {
            "scan_id": [f"sub-{i:03d}_ses-1" for i in range(n)],
            "participant_id": [f"sub-{i:03d}" for i in range(n)],
            "session": "1",
            "age": rng.uniform(60, 90, n),
            "sex": rng.choice(["M", "F"], n),
            "group": np.where(np.arange(n) < n // 2, "AD", "HC"),
            "role": np.where(np.arange(n) < n // 2, "clinical", "test"),
            "brain_pad_corrected": pad,
            "brain_pad_corrected_diffae": pad,
            "brain_pad_corrected_ridge_roi": pad + 20,  # the same spread, shifted
        }
    )


def test_ks_table_compares_the_reference_with_every_model_per_group():
    table = ks_table(_table(), "diffae", ["ensemble", "ridge_roi"], "HC")
    assert set(table["group"]) == {"AD", "HC (test)"}
    same = table[table["model"] == "ensemble"]
    shifted = table[table["model"] == "ridge_roi"]
    assert (same["ks"] == 0).all() and (same["p"] == 1).all()
    assert (shifted["ks"] == 1).all() and (shifted["p"] < 1e-6).all()
    assert (table["n"] == 30).all() and (table["reference"] == "diffae").all()


def test_survival_recovers_a_shorter_life_with_an_older_brain():
    """Survival falls by 3 months per year of brain-PAD (the simulator's slope): r < 0 and
    a hazard ratio above 1 per year, significant; models without signal find none."""
    table = _table(200, seed=1)
    rng = np.random.default_rng(2)
    pad = table["brain_pad_corrected"].to_numpy()
    participants = pd.DataFrame(
        {
            "participant_id": table["participant_id"],
            "survival_months": np.maximum(72 - 3 * pad + rng.normal(0, 8, len(pad)), 1),
        }
    )
    table["brain_pad_corrected_noise"] = rng.normal(0, 5, len(table))
    result = survival_table(table, participants, ["ensemble", "noise"]).set_index("model")
    assert result.loc["ensemble", "n"] == 200 and result.loc["ensemble", "events"] == 200
    assert result.loc["ensemble", "r"] < -0.7 and result.loc["ensemble", "r_p"] < 1e-10
    ensemble = result.loc["ensemble"]
    assert ensemble["hr_low"] > 1 and ensemble["hr_p"] < 1e-6
    assert ensemble["hr_low"] < ensemble["hazard_ratio"] < ensemble["hr_high"]
    assert result.loc["noise", "hr_p"] > 0.01


def test_survival_uses_a_censoring_column_and_needs_enough_participants():
    table = _table(40, seed=3)
    participants = pd.DataFrame(
        {
            "participant_id": table["participant_id"],
            "survival_months": np.linspace(10, 80, 40),
            "survival_event": np.r_[np.ones(30), np.zeros(10)],
        }
    )
    result = survival_table(table, participants, ["ensemble"])
    assert result.loc[0, "events"] == 30
    few = participants.assign(survival_months=np.r_[np.ones(4), np.full(36, np.nan)])
    assert np.isnan(survival_table(table, few, ["ensemble"]).loc[0, "hazard_ratio"])
    assert survival_table(table, participants.drop(columns="survival_months"), ["x"]).empty


def test_survival_reads_only_participants_with_a_time():
    table = _table(20, seed=4)
    times = np.linspace(20, 60, 8)
    participants = pd.DataFrame(
        {"participant_id": table["participant_id"][:8], "survival_months": times}
    )
    assert survival_table(table, participants, ["ensemble"]).loc[0, "n"] == 8


def test_ks_and_cox_match_scipy_and_statsmodels_on_fixed_inputs():
    table = _table(30, seed=5)
    rng = np.random.default_rng(6)
    table["brain_pad_corrected_ridge_roi"] = rng.normal(1, 5, 30)
    ks = ks_table(table, "diffae", ["ridge_roi"], "HC").set_index("group")
    ad = table[table["group"] == "AD"]
    expected = stats.ks_2samp(ad["brain_pad_corrected_diffae"], ad["brain_pad_corrected_ridge_roi"])
    assert ks.loc["AD", "ks"] == pytest.approx(expected.statistic)
    assert ks.loc["AD", "p"] == pytest.approx(expected.pvalue)

    times = rng.uniform(10, 90, 30)
    participants = pd.DataFrame(
        {"participant_id": table["participant_id"], "survival_months": times}
    )
    row = survival_table(table, participants, ["ridge_roi"]).iloc[0]
    exog = np.column_stack(
        [table["brain_pad_corrected_ridge_roi"], table["age"], table["sex"] == "M"]
    ).astype(float)
    fit = PHReg(times, exog, status=np.ones(30)).fit()
    assert row["hazard_ratio"] == pytest.approx(np.exp(fit.params[0]))
    assert row["hr_p"] == pytest.approx(fit.pvalues[0])
    r = stats.pearsonr(table["brain_pad_corrected_ridge_roi"], times)
    assert row["r"] == pytest.approx(r.statistic) and row["r_p"] == pytest.approx(r.pvalue)
