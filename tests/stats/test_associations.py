"""Clinical associations of brain-PAD: variables found, tests against scipy/statsmodels,
the recovered slope, sliding windows and their Bonferroni count."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from brainpad.stats.associations import (
    age_windows,
    associate,
    association_people,
    association_table,
    clinical_variables,
    window_table,
)


@pytest.fixture
def cohort() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A brain-age table and participants.tsv: MMSE falls 0.4 a year of brain-PAD within
    each group (the simulator's model), AD lower and older-looking."""
    rng = np.random.default_rng(0)
    n = 300
    group = rng.choice(["HC", "AD"], n, p=[0.7, 0.3])
    pad = rng.normal(0, 4, n) + np.where(group == "AD", 6, 0)
    ids = [f"sub-{i:03d}" for i in range(n)]
    table = pd.DataFrame(
        {
            "scan_id": [f"{i}_ses-1" for i in ids], "participant_id": ids, "session": "1",
            "age": rng.uniform(55, 90, n), "sex": rng.choice(["M", "F"], n), "group": group,
            "role": np.where(group == "HC", "test", "clinical"), "brain_pad_corrected": pad,
        }
    )  # fmt: skip
    table.loc[0, "role"] = "unlabelled"
    participants = pd.DataFrame(
        {
            "participant_id": ids, "age": table["age"], "group": group,
            "mmse": 29 - 7 * (group == "AD") - 0.4 * pad + rng.normal(0, 1, n),
            "apoe4": rng.choice(["carrier", "non-carrier"], n),
            "stage": rng.choice(["a", "b", "c"], n), "notes": [f"note {i}" for i in range(n)],
        }
    )  # fmt: skip
    return table, participants


def test_clinical_variables_are_numbers_or_few_levels(cohort):
    _, participants = cohort
    assert clinical_variables(participants) == {
        "mmse": "numeric", "apoe4": "categorical", "stage": "categorical",
    }  # fmt: skip


def test_the_within_group_slope_recovers_the_generating_one(cohort):
    table, participants = cohort
    people = association_people(table, participants)
    assert len(people) == 299  # the unlabelled participant is left out
    result = association_table(people, {"mmse": "numeric"}, ["ensemble"], {"mmse": -0.4})
    row = result.iloc[0]
    assert row["slope_within_groups"] == pytest.approx(-0.4, abs=0.05)
    assert row["slope"] < -0.6  # without the group the AD difference joins the slope
    assert row["true_slope"] == -0.4 and row["slope_low"] < row["slope"] < row["slope_high"]


def test_numeric_and_categorical_tests_match_scipy_and_statsmodels(cohort):
    table, participants = cohort
    people = association_people(table, participants)
    row = associate(people, "mmse", "numeric", "brain_pad_corrected")
    r = stats.pearsonr(people["brain_pad_corrected"], people["mmse"])
    assert row["value"] == pytest.approx(r.statistic) and row["p"] == pytest.approx(r.pvalue)
    fit = smf.ols("mmse ~ brain_pad_corrected + age + C(sex)", data=people).fit()
    assert row["slope"] == pytest.approx(fit.params["brain_pad_corrected"])
    assert row["slope_p"] == pytest.approx(fit.pvalues["brain_pad_corrected"])
    assert row["r_low"] < row["value"] < row["r_high"]
    welch = associate(people, "apoe4", "categorical", "brain_pad_corrected")
    parts = [g["brain_pad_corrected"] for _, g in people.groupby("apoe4")]
    assert welch["statistic"] == "welch_t"
    assert welch["value"] == pytest.approx(stats.ttest_ind(*parts, equal_var=False).statistic)
    anova = associate(people, "stage", "categorical", "brain_pad_corrected")
    parts = [g["brain_pad_corrected"] for _, g in people.groupby("stage")]
    assert anova["statistic"] == "anova_f"
    assert anova["p"] == pytest.approx(stats.f_oneway(*parts).pvalue)
    assert np.isnan(
        associate(people.head(4), "mmse", "numeric", "brain_pad_corrected").get("p", np.nan)
    )


def test_sliding_windows_overlap_by_half_and_bonferroni_counts_every_test(cohort):
    table, participants = cohort
    assert age_windows(pd.Series([61.0, 79.5])) == [
        (60.0, 70.0),
        (65.0, 75.0),
        (70.0, 80.0),
        (75.0, 85.0),
    ]
    people = association_people(table, participants)
    variables = {"mmse": "numeric", "apoe4": "categorical"}
    windows = window_table(people, variables, ["ensemble"])
    first = windows[(windows["age_low"] == 55) & (windows["variable"] == "mmse")].iloc[0]
    assert first["n"] == ((people["age"] >= 55) & (people["age"] < 65)).sum()
    assert len(windows) == 2 * len(age_windows(people["age"]))  # variables x windows
    tests = windows["p"].notna().sum()
    assert tests >= len(windows) - 2  # only a sparse last window may go untested
    assert windows["p_bonferroni"].to_numpy() == pytest.approx(
        np.minimum(windows["p"] * tests, 1).to_numpy(), nan_ok=True
    )
