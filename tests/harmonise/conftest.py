"""Simulated site tables for the harmonisation tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

SHIFT = {"siteA": 0.0, "siteB": 1.5, "siteC": -1.0}
SCALE = {"siteA": 1.0, "siteB": 1.6, "siteC": 0.7}


def _site_cohort(n: int = 90, seed: int = 0, sites=("siteA", "siteB", "siteC")) -> tuple:
    """Three features with a quadratic age effect, a sex effect, a site location and scale,
    and patients (AD) shifted by −1."""
    rng = np.random.default_rng(seed)
    cov = pd.DataFrame(
        {
            "site": rng.choice(list(sites), n),
            "age": rng.uniform(20, 85, n),
            "sex": rng.choice(["F", "M"], n),
            "group": np.where(rng.random(n) < 0.25, "AD", "HC"),
        }
    )
    age = (cov["age"] - 50) / 20
    base = np.column_stack([-0.8 * age - 0.3 * age**2, 0.5 * age, np.zeros(n)])
    base += (cov["sex"] == "M").to_numpy()[:, None] * 0.4
    base += (cov["group"] == "AD").to_numpy()[:, None] * -1.0
    noise = rng.normal(size=(n, 3))
    shift = cov["site"].map(SHIFT).to_numpy()[:, None]
    scale = cov["site"].map(SCALE).to_numpy()[:, None]
    features = pd.DataFrame(base + shift + scale * noise, columns=["hippocampus", "gm", "wm"])
    return features, cov


@pytest.fixture
def site_cohort():
    """``site_cohort(n=90, seed=0, sites=...)`` → (features, covariates): three features
    with a quadratic age effect, sex, a location and scale per site, AD patients at −1."""
    return _site_cohort
