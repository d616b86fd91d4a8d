"""Statistics against scipy/statsmodels on small inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.weightstats import ttest_ind as sm_ttest

from brainpad.stats import accuracy, cohens_d, compare_groups, welch


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
