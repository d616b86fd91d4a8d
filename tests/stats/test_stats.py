"""Statistics against scipy/statsmodels on small inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.weightstats import ttest_ind as sm_ttest

from brainpad.stats.measures import accuracy, cohens_d, icc_2_1, voxel_welch, welch
from brainpad.stats.tables import (
    accuracy_table,
    compare_groups,
    group_tables,
    untrained_accuracy,
)


def test_accuracy():
    age = np.array([20.0, 40, 60, 80])
    predicted = age + np.array([2.0, -2, 2, -2])
    result = accuracy(age, predicted)
    assert result["mae"] == pytest.approx(2.0)
    assert result["r"] == pytest.approx(sps.pearsonr(age, predicted)[0])
    assert result["r2"] == pytest.approx(1 - 16 / np.sum((age - 50) ** 2))


def test_welch_matches_statsmodels():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 15), rng.normal(1, 3, 9)
    t, p, df = sm_ttest(a, b, usevar="unequal")
    assert welch(a, b) == pytest.approx({"t": t, "p": p, "df": df})


def test_cohens_d_pooled_sd():
    a, b = np.array([1.0, 2, 3, 4]), np.array([3.0, 5, 7])
    pooled = np.sqrt((3 * np.var(a, ddof=1) + 2 * np.var(b, ddof=1)) / 5)
    assert cohens_d(a, b) == pytest.approx((2.5 - 5) / pooled)


def test_compare_groups_bonferroni():
    rng = np.random.default_rng(1)
    table = pd.DataFrame(
        {
            "group": ["HC"] * 30 + ["AD"] * 20 + ["MCI"] * 10 + ["X"],
            "pad": np.r_[rng.normal(0, 4, 30), rng.normal(5, 4, 20), rng.normal(2, 4, 10), 0.0],
        }
    )
    result = compare_groups(table, "pad")
    assert len(result) == 3  # 'X' has one member: no test
    assert np.allclose(result["p_bonferroni"], np.minimum(result["p"] * 3, 1))
    hc_ad = result[(result["first"] == "HC") & (result["second"] == "AD")].iloc[0]
    assert hc_ad["d"] < 0 and hc_ad["t"] < 0


@pytest.fixture
def brain_age(synthetic_folds, synthetic_truth):
    """A brain-age table whose ensemble predicts the true biological age plus noise."""
    true_age = synthetic_truth.loc[synthetic_folds["participant_id"], "true_brain_age"]
    noise = np.random.default_rng(0).normal(0, 1, len(synthetic_folds))
    table = synthetic_folds.assign(brain_age=true_age.to_numpy() + noise)
    table["pred_m1"] = table["brain_age"] + 2
    table["brain_pad_corrected"] = table["brain_age"] - table["age"]
    return table


def test_accuracy_table_on_the_healthy_test_set_with_the_floor(brain_age, synthetic_truth):
    result = accuracy_table(brain_age, {"ensemble": "brain_age", "m1": "pred_m1"}, synthetic_truth)
    test = brain_age[brain_age["role"] == "test"].drop_duplicates("participant_id")
    assert result["n"].tolist() == [len(test)] * 2
    assert result.loc[0, "mae"] == pytest.approx(np.abs(test["brain_age"] - test["age"]).mean())
    floor = np.abs(synthetic_truth.loc[test["participant_id"], "true_brain_pad"]).mean()
    assert result["floor_mae"].tolist() == pytest.approx([floor] * 2)
    np.testing.assert_allclose(result["mae_above_floor"], result["mae"] - result["floor_mae"])


def test_every_model_is_scored_on_all_the_controls_it_did_not_train_on(brain_age, synthetic_truth):
    """All 50 controls (out-of-fold training ones and held-out ones, first scans), not the
    test set's few; the MAE's and the floor ratio's bootstrap intervals hold the values and
    match a percentile bootstrap done here by hand."""
    table = brain_age.copy()
    table.loc[table["group"] != "HC", "pred_m1"] = 200.0  # patients are not scored
    table.loc[table.index[0], "pred_m1"] = np.nan  # a model that skipped a scan
    columns = {"ensemble": "brain_age", "m1": "pred_m1"}
    result = untrained_accuracy(table, columns, synthetic_truth, seed=1).set_index("model")
    controls = brain_age[brain_age["group"] == "HC"].sort_values("scan_id")
    controls = controls.drop_duplicates("participant_id")
    assert result.loc["ensemble", "n"] == len(controls) == 50
    assert result.loc["m1", "n"] == 49
    errors = np.abs(controls["brain_age"] - controls["age"]).to_numpy()
    floor = np.abs(synthetic_truth.loc[controls["participant_id"], "true_brain_pad"]).to_numpy()
    row = result.loc["ensemble"]
    assert row["mae"] == pytest.approx(errors.mean())
    assert row["floor_mae"] == pytest.approx(floor.mean())
    assert row["mae_over_floor"] == pytest.approx(errors.mean() / floor.mean())
    assert row["mae_low"] < row["mae"] < row["mae_high"]
    assert row["mae_over_floor_low"] < row["mae_over_floor"] < row["mae_over_floor_high"]
    rng = np.random.default_rng(0)
    draws = rng.integers(0, len(errors), (4000, len(errors)))
    low, high = np.percentile(errors[draws].mean(axis=1), [2.5, 97.5])
    assert row["mae_low"] == pytest.approx(low, abs=0.1)
    assert row["mae_high"] == pytest.approx(high, abs=0.1)
    scored = controls[controls["scan_id"] != table.loc[table.index[0], "scan_id"]]
    m1 = np.abs(scored["pred_m1"] - scored["age"]).mean()
    assert result.loc["m1", "mae"] == pytest.approx(m1)


def test_group_tables_match_controls_by_age(brain_age, synthetic_truth):
    by_group, comparisons = group_tables(brain_age, "HC", 60, truth=synthetic_truth)
    people = brain_age.drop_duplicates("participant_id")
    old_hc = people[(people["group"] == "HC") & (people["age"] >= 60)]
    assert by_group.set_index("group").loc["HC", "n"] == len(old_hc)
    assert comparisons[["first", "second"]].values.tolist() == [
        ["AD", "HC"],
        ["MCI", "HC"],
        ["AD", "MCI"],
    ]
    ad = comparisons.iloc[0]
    assert ad["d"] > 0.8  # AD simulated 5 y older, noise SD ~3 y
    assert ad["p_bonferroni"] == pytest.approx(min(1.0, 3 * ad["p"]))
    true_ad = synthetic_truth.loc[people.loc[people.group == "AD", "participant_id"]]
    assert by_group.set_index("group").loc["AD", "true_mean"] == pytest.approx(
        true_ad["true_brain_pad"].mean()
    )


def test_icc_matches_pingouin_voxel_by_voxel():
    pingouin = pytest.importorskip("pingouin")
    rng = np.random.default_rng(0)
    subject = rng.normal(0, 3, (12, 1, 4))
    ratings = subject + rng.normal(0, 1, (12, 2, 4)) + np.array([0, 0.5])[None, :, None]
    icc = icc_2_1(ratings)
    for voxel in range(4):
        long = pd.DataFrame(
            {
                "subject": np.repeat(np.arange(12), 2),
                "session": np.tile([0, 1], 12),
                "value": ratings[:, :, voxel].ravel(),
            }
        )
        table = pingouin.intraclass_corr(long, "subject", "session", "value").set_index(
            "Type"
        )  # ICC(A,1) = ICC(2,1)
        assert icc[voxel] == pytest.approx(table.loc["ICC(A,1)", "ICC"], abs=1e-10)


def test_voxel_welch_matches_the_scalar_tests():
    rng = np.random.default_rng(1)
    a, b = rng.normal(1, 1, (9, 3, 2)), rng.normal(0, 2, (14, 3, 2))
    maps = voxel_welch(a, b)
    one = welch(a[:, 2, 1], b[:, 2, 1])
    assert maps["t"][2, 1] == pytest.approx(one["t"]) and maps["df"][2, 1] == pytest.approx(
        one["df"]
    )
    assert maps["d"][2, 1] == pytest.approx(cohens_d(a[:, 2, 1], b[:, 2, 1]))
