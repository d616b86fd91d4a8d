"""ComBat against neuroCombat, controls-only fits, and unseen sites."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pandas as pd
import pytest
from neuroCombat import neuroCombat, neuroCombatFromTraining

from brainpad.harmonise.combat import (
    Combat,
    HarmonisationError,
    estimate_site,
    fit_combat,
    harmonise,
    harmonise_cohort,
)


def test_on_the_training_controls_it_is_neurocombat(site_cohort):
    features, cov = site_cohort()
    model = fit_combat(features, cov, "HC")
    controls = (cov["group"] == "HC").to_numpy()
    mine = harmonise(model, features[controls], cov[controls])
    design = model.design(cov[controls].reset_index(drop=True))
    table = pd.DataFrame(design, columns=[f"c{i}" for i in range(design.shape[1])])
    table["site"] = cov.loc[controls, "site"].to_numpy()
    with contextlib.redirect_stdout(io.StringIO()):
        theirs = neuroCombat(dat=features[controls].to_numpy().T, covars=table, batch_col="site",
                             continuous_cols=["c0", "c1", "c2"])["data"].T  # fmt: skip
    np.testing.assert_allclose(mine.to_numpy(), theirs, atol=1e-6)  # β back by least squares


def _neurocombat(features: pd.DataFrame, design: np.ndarray, sites, **options) -> dict:
    table = pd.DataFrame(design, columns=[f"c{i}" for i in range(design.shape[1])])
    table["site"] = np.asarray(sites)
    with contextlib.redirect_stdout(io.StringIO()):
        return neuroCombat(dat=features.to_numpy().T, covars=table, batch_col="site",
                           continuous_cols=list(table.columns[:-1]), **options)  # fmt: skip


def test_without_own_covariates_it_is_neurocombat_from_training(site_cohort):
    features, cov = site_cohort()
    model = fit_combat(features, cov, "HC")
    controls = (cov["group"] == "HC").to_numpy()
    design = model.design(cov[controls].reset_index(drop=True))
    estimates = _neurocombat(features[controls], design, cov.loc[controls, "site"])["estimates"]
    with contextlib.redirect_stdout(io.StringIO()), np.testing.suppress_warnings() as quiet:
        quiet.filter(DeprecationWarning)  # neuroCombat's int() of a one-element array
        theirs = neuroCombatFromTraining(features.to_numpy().T, cov["site"].to_numpy(), estimates)
    mine = harmonise(model, features, cov, own_covariates=False)  # patients too: no age used
    np.testing.assert_allclose(mine.to_numpy(), theirs["data"].T, atol=1e-6)
    # one affine map per site: the age (unknown for a new scan) plays no part
    older = cov.assign(age=cov["age"] + 30.0)
    pd.testing.assert_frame_equal(mine, harmonise(model, features, older, own_covariates=False))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # neuroCombat's priors over one feature
def test_a_single_feature_gets_the_plain_site_estimates(site_cohort):
    features, cov = site_cohort()
    one = features[["gm"]]
    model = fit_combat(one, cov, "HC")
    controls = (cov["group"] == "HC").to_numpy()
    design = model.design(cov[controls].reset_index(drop=True))
    theirs = _neurocombat(one[controls], design, cov.loc[controls, "site"], eb=False)["data"].T
    mine = harmonise(model, one[controls], cov[controls])
    np.testing.assert_allclose(mine.to_numpy(), theirs, atol=1e-6)


def test_a_cohort_of_fitted_and_unseen_sites(site_cohort):
    features, cov = site_cohort(sites=("siteA", "siteC"))
    model = fit_combat(features, cov, "HC")
    new_features, new_cov = site_cohort(n=60, seed=5, sites=("siteA", "siteB"))
    out, unseen = harmonise_cohort(model, new_features, new_cov, "HC", own_covariates=False)
    assert unseen == ["siteB"]
    at_a = (new_cov["site"] == "siteA").to_numpy()
    pd.testing.assert_frame_equal(
        out[at_a], harmonise(model, new_features[at_a], new_cov[at_a], own_covariates=False)
    )
    at_b = ~at_a
    alone = estimate_site(model, new_features[at_b], new_cov[at_b], "HC", own_covariates=False)
    pd.testing.assert_frame_equal(out[at_b], alone)
    # the estimate may rest on fewer controls, never on fewer than the minimum
    capped, _ = harmonise_cohort(model, new_features, new_cov, "HC", max_controls=5)
    every, _ = harmonise_cohort(model, new_features, new_cov, "HC")
    assert not np.allclose(capped[at_b], every[at_b])
    with pytest.raises(HarmonisationError, match="site siteB: 3 healthy controls"):
        harmonise_cohort(model, new_features, new_cov, "HC", max_controls=3)


def test_patients_never_enter_the_fit_and_keep_their_effect(site_cohort):
    features, cov = site_cohort()
    model = fit_combat(features, cov, "HC")
    patients = (cov["group"] == "AD").to_numpy()
    changed = features.copy()
    changed.loc[patients] += 50.0  # whatever the patients hold
    again = fit_combat(changed, cov, "HC")
    np.testing.assert_allclose(model.gamma, again.gamma, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(model.beta, again.beta, rtol=1e-12, atol=1e-14)
    # the disease effect survives: AD minus controls at matched sites stays near −1
    out = harmonise(model, features, cov)
    residual = out - pd.DataFrame(
        model.grand_mean + model.design(cov) @ model.beta, columns=out.columns
    )
    effect = residual[patients].mean() - residual[~patients].mean()
    assert effect.between(-1.4, -0.6).all(), effect
    # and the sites' differences are gone among the controls
    by_site = residual[~patients].groupby(cov.loc[~patients, "site"].to_numpy()).mean()
    assert (by_site.max() - by_site.min()).max() < 0.4


def test_a_model_round_trips_through_plain_values(site_cohort):
    features, cov = site_cohort()
    model = fit_combat(features, cov, "HC")
    back = Combat.from_dict(model.to_dict())
    pd.testing.assert_frame_equal(harmonise(back, features, cov), harmonise(model, features, cov))


def test_fits_and_sites_it_cannot_do_are_refused(site_cohort):
    features, cov = site_cohort()
    one_site = cov.assign(site="siteA")
    with pytest.raises(HarmonisationError, match="2 or more sites"):
        fit_combat(features, one_site, "HC")
    model = fit_combat(features, cov, "HC")
    with pytest.raises(HarmonisationError, match=r"\['siteZ'\] were not in the ComBat fit"):
        harmonise(model, features, cov.assign(site="siteZ"))


def test_an_unseen_site_is_estimated_from_its_own_controls_cross_fitted(site_cohort):
    features, cov = site_cohort(sites=("siteA", "siteC"))
    model = fit_combat(features, cov, "HC")
    new_features, new_cov = site_cohort(n=60, seed=5, sites=("siteB",))
    out = estimate_site(model, new_features, new_cov, "HC")
    controls = (new_cov["group"] == "HC").to_numpy()
    expected = model.grand_mean + model.design(new_cov) @ model.beta
    before = (new_features.to_numpy() - expected)[controls].mean(0)
    after = (out.to_numpy() - expected)[controls].mean(0)
    assert (np.abs(before) > 1.0).all() and (np.abs(after) < 0.3).all()  # siteB's +1.5 gone
    # cross-fitted: a control's own value does not move its own correction
    moved = new_features.copy()
    first = int(np.flatnonzero(controls)[0])
    moved.iloc[first] += 10.0
    shifted = estimate_site(model, moved, new_cov, "HC")
    difference = shifted.iloc[first] - out.iloc[first]
    assert (difference > 0).all()  # it keeps (a scaled part of) its own change
    others = np.flatnonzero(controls)[1:]
    assert not np.allclose(shifted.iloc[others], out.iloc[others])  # the others' estimates move


def test_an_unseen_site_may_get_a_location_only(site_cohort):
    features, cov = site_cohort(sites=("siteA", "siteC"))
    model = fit_combat(features, cov, "HC")
    new_features, new_cov = site_cohort(n=60, seed=5, sites=("siteB",))
    full = estimate_site(model, new_features, new_cov, "HC")
    shifted = estimate_site(model, new_features, new_cov, "HC", scale=False)
    patients = (new_cov["group"] == "AD").to_numpy()
    # a location only: every patient moves by the same amount per feature
    moved = (shifted - new_features)[patients]
    np.testing.assert_allclose(moved.std(), 0.0, atol=1e-9)
    assert not np.allclose((full - new_features)[patients].std(), 0.0)


def test_an_unseen_site_with_too_few_controls_is_refused(site_cohort):
    features, cov = site_cohort(sites=("siteA", "siteC"))
    model = fit_combat(features, cov, "HC")
    new_features, new_cov = site_cohort(n=60, seed=5, sites=("siteB",))
    few = new_cov.index[new_cov["group"] == "HC"][:4].union(new_cov.index[new_cov["group"] == "AD"])
    with pytest.raises(HarmonisationError, match=r"site siteB: 4 healthy controls .* needs 5"):
        estimate_site(model, new_features.loc[few], new_cov.loc[few], "HC")
    with pytest.raises(HarmonisationError, match="one site"):
        estimate_site(model, features, cov, "HC")
