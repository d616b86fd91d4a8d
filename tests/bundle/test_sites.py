"""A bundle's ComBat fits on a new cohort: sites it saw, sites it never saw, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainpad.bundle.scans import ScanInput
from brainpad.bundle.sites import SiteHarmonisation, scan_covariates
from brainpad.harmonise.combat import HarmonisationError, fit_combat, harmonise


@pytest.fixture
def harmonisation(site_cohort) -> SiteHarmonisation:
    features, cov = site_cohort(sites=("siteA", "siteC"))
    pads = features[["gm", "wm"]].set_axis(["brain_pad_corrected", "brain_pad_corrected_x"], axis=1)
    return SiteHarmonisation(fit_combat(features, cov, "HC"), fit_combat(pads, cov, "HC"), "HC")


def _scans(cov: pd.DataFrame) -> list[ScanInput]:
    return [
        ScanInput(
            f"sub-{i:02d}", Path("t1w.nii.gz"), age=r.age, sex=r.sex, site=r.site, group=r.group
        )
        for i, r in enumerate(cov.itertuples())
    ]


def test_unseen_sites_need_their_controls_and_every_scan_a_site(harmonisation, site_cohort):
    _, cov = site_cohort(n=30, seed=3, sites=("siteA", "siteNew"))
    harmonisation.check(_scans(cov))  # ~11 controls at siteNew
    harmonisation.max_controls = 4
    with pytest.raises(HarmonisationError, match=r"site siteNew: \d+ healthy controls .* from 5"):
        harmonisation.check(_scans(cov))
    with pytest.raises(HarmonisationError, match=r"1 scan\(s\) have none .* 'site' column"):
        harmonisation.check(_scans(cov.assign(site=np.where(cov.index == 2, None, cov["site"]))))


def test_seen_sites_use_the_fit_and_brain_pads_keep_their_values_before(harmonisation, site_cohort):
    features, cov = site_cohort(n=30, seed=3, sites=("siteA", "siteNew"))
    out = harmonisation.features(features, scan_covariates(_scans(cov)))
    at_a = (cov["site"] == "siteA").to_numpy()
    expected = harmonise(harmonisation.roi, features[at_a], cov[at_a], own_covariates=False)
    np.testing.assert_allclose(out[at_a].to_numpy(), expected.to_numpy())
    table = cov.assign(brain_pad_corrected=features["gm"], brain_pad_corrected_x=features["wm"])
    pads = harmonisation.brain_pads(table)
    np.testing.assert_allclose(pads["brain_pad_unharmonised"], features["gm"])
    assert not np.allclose(pads["brain_pad_corrected"], features["gm"])
