"""ComBat where the workflow uses it: ROI volumes before ridge_roi, brain-PAD after the
bias correction, and a new cohort through a bundle's fits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainpad.harmonise.combat import HarmonisationError, harmonise
from brainpad.harmonise.tables import apply_brain_pad, apply_roi, fit_brain_pad, fit_roi

SHIFTS = {"siteA": 0.0, "siteB": 3.0, "siteC": -2.0}


@pytest.fixture
def cohort(site_cohort) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ROI volumes and a folds table: roles train / calibration / test for the controls."""
    features, cov = site_cohort(n=120)
    cov = cov.assign(scan_id=[f"sub-{i:03d}_ses-1" for i in range(len(cov))])
    cov["role"] = np.where(cov["group"] == "HC", ["train", "train", "calibration", "test"] * 30,
                           "clinical")  # fmt: skip
    roi = pd.concat([cov[["scan_id"]], features.assign(constant=7.0)], axis=1)
    return roi, cov


def test_roi_volumes_are_fitted_on_the_training_controls_without_own_ages(cohort):
    roi, folds = cohort
    table, model = fit_roi(roi, folds, "HC")
    assert model.features == ["hippocampus", "gm", "wm"]  # the constant passes through
    assert (table["constant"] == 7.0).all()
    # held-out controls and patients never move the fit
    held_out = ~folds["role"].eq("train")
    moved = roi.copy()
    moved.loc[held_out, ["hippocampus", "gm", "wm"]] += 100.0
    _, again = fit_roi(moved, folds, "HC")
    np.testing.assert_allclose(model.gamma, again.gamma)
    # no scan's own age enters its features
    older = folds.assign(age=folds["age"] + np.where(held_out, 20.0, 0.0))
    pd.testing.assert_frame_equal(fit_roi(roi, older, "HC")[0], table)


def test_brain_pad_keeps_its_values_before_and_fits_only_on_the_correction_controls(
    site_cohort, cohort
):
    _, folds = cohort
    rng = np.random.default_rng(1)
    table = folds.assign(
        brain_pad_corrected=rng.normal(size=len(folds)) + folds["site"].map(SHIFTS),
        brain_pad_corrected_vgg3d=rng.normal(size=len(folds)),
    )
    table.loc[3, "age"] = np.nan  # an unlabelled scan: no brain-PAD to harmonise
    table.loc[3, ["brain_pad_corrected", "brain_pad_corrected_vgg3d"]] = np.nan
    fitted_on = folds["role"].isin(["train", "calibration"]).to_numpy()
    out, model = fit_brain_pad(table, fitted_on, "HC")
    pd.testing.assert_series_equal(
        out["brain_pad_unharmonised"], table["brain_pad_corrected"], check_names=False
    )
    controls = fitted_on & (table["group"] == "HC").to_numpy()
    site_means = out[controls].groupby("site")["brain_pad_corrected"].mean()
    assert site_means.max() - site_means.min() < 0.5  # the sites' 5-year spread is gone
    assert np.isnan(out.loc[3, "brain_pad_corrected"])
    patients = table["group"].ne("HC")
    table.loc[patients, "brain_pad_corrected"] += 30.0
    _, again = fit_brain_pad(table, fitted_on, "HC")
    np.testing.assert_allclose(model.gamma, again.gamma)


def test_a_new_cohort_with_a_site_the_bundle_never_saw(site_cohort, cohort):
    roi, folds = cohort
    _, model = fit_roi(roi, folds, "HC")
    new_features, new_cov = site_cohort(n=40, seed=9, sites=("siteA", "siteNew"))
    new_roi = pd.concat([new_features.assign(constant=7.0)], axis=1)
    out, unseen = apply_roi(new_roi, new_cov, model, "HC", min_controls=5)
    assert unseen == ["siteNew"] and list(out.columns) == list(new_roi.columns)
    at_a = (new_cov["site"] == "siteA").to_numpy()
    expected = harmonise(model, new_features[at_a], new_cov[at_a], own_covariates=False)
    np.testing.assert_allclose(out.loc[at_a, model.features].to_numpy(), expected.to_numpy())
    few = new_cov.assign(group=np.where(new_cov["site"].eq("siteNew"), "AD", new_cov["group"]))
    with pytest.raises(HarmonisationError, match="site siteNew: 0 healthy controls"):
        apply_roi(new_roi, few, model, "HC", min_controls=5)
    brain_pad = new_cov.assign(brain_pad_corrected=new_features["gm"].to_numpy())
    _, pad_model = fit_brain_pad(
        folds.assign(brain_pad_corrected=roi["gm"], brain_pad_corrected_x=roi["wm"]),
        folds["role"].eq("train").to_numpy(), "HC",
    )  # fmt: skip
    with pytest.raises(HarmonisationError, match=r"lacks \['brain_pad_corrected_x'\]"):
        apply_brain_pad(brain_pad, pad_model, "HC", min_controls=5)
    brain_pad["brain_pad_corrected_x"] = new_features["wm"].to_numpy()
    harmonised, unseen = apply_brain_pad(brain_pad, pad_model, "HC", min_controls=5)
    assert unseen == ["siteNew"]
    assert "brain_pad_unharmonised_x" in harmonised
