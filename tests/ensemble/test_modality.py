"""Study 4's nested multimodal stacking and its F-tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from brainpad.ensemble.modality import modality_sets, modality_table


def cohort(second_informative: bool, n: int = 240, seed: int = 0) -> pd.DataFrame:
    """Training and test controls; the T1w model sees half the age-independent noise
    the FLAIR model sees (informative) or the FLAIR model is noise around the mean age."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(20, 85, n)
    bio = age + rng.normal(0, 4, n)
    t1w = bio + rng.normal(0, 5, n)
    flair = bio + rng.normal(0, 5, n) if second_informative else 52 + rng.normal(0, 5, n)
    return pd.DataFrame(
        {
            "participant_id": [f"sub-{i:03d}" for i in range(n)],
            "scan_id": [f"sub-{i:03d}_ses-1" for i in range(n)],
            "role": np.where(np.arange(n) < 180, "train", "test"),
            "age": age,
            "sex": rng.choice(["F", "M"], n),
            "pred_vgg3d-t1w": t1w,
            "pred_vgg3d-flair": flair,
            "pred_ridge_roi": bio,
        }
    )


MODELS = ["ridge_roi", "vgg3d-t1w", "vgg3d-flair"]


def test_only_architectures_with_several_inputs_are_stacked():
    assert modality_sets(MODELS) == {
        ("vgg3d", "whole"): [("t1w", "vgg3d-t1w"), ("flair", "vgg3d-flair")]
    }
    assert modality_sets(["ridge_roi", "vgg3d-t1w-1", "vgg3d-t1w-2"]) == {}
    assert modality_table(cohort(True), ["ridge_roi"]).empty


def test_the_f_test_is_statsmodels_nested_comparison():
    table = modality_table(cohort(True), MODELS)
    assert table["model"].tolist() == ["t1w", "t1w + flair", "t1w + flair + sex"]
    assert np.isnan(table["p"].iloc[0]) and table["n_train"].iloc[0] == 180
    train = cohort(True).query("role == 'train'")
    small = sm.OLS(train["age"], sm.add_constant(train[["pred_vgg3d-t1w"]])).fit()
    large = sm.OLS(
        train["age"], sm.add_constant(train[["pred_vgg3d-t1w", "pred_vgg3d-flair"]])
    ).fit()
    f = (small.ssr - large.ssr) / (large.ssr / large.df_resid)
    assert table["f"].iloc[1] == pytest.approx(f)
    assert table["p"].iloc[1] == pytest.approx(stats.f.sf(f, 1, large.df_resid))
    # a second modality with its own noise helps; sex does not
    assert table["p"].iloc[1] < 1e-6 and table["mae"].iloc[1] < table["mae"].iloc[0]
    assert table["p"].iloc[2] > 0.01


def test_an_uninformative_modality_is_not_significant():
    table = modality_table(cohort(False), MODELS)
    assert table["p"].iloc[1] > 0.05
