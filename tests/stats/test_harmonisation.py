"""stats/harmonisation.tsv: the site effects on brain-PAD before and after ComBat."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainpad.stats.harmonisation import harmonisation_table


def _table(harmonised: bool) -> pd.DataFrame:
    """Controls at two sites (siteB 4 years older in brain-PAD), 3 between-site pairs and AD
    patients 5 years older; harmonised, siteB's offset is gone."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):
        site = "siteA" if i % 2 else "siteB"
        group = "AD" if i >= 30 else "HC"
        pad = rng.normal(0, 1) + (4.0 if site == "siteB" else 0.0) + (5.0 if group == "AD" else 0)
        role = "test" if group == "HC" else "clinical"
        fixed = pad - (4.0 if site == "siteB" else 0.0)
        person = f"sub-{i:02d}"
        rows.append(
            dict(scan_id=f"{person}_ses-1", participant_id=person, site=site, group=group,
                 age=65.0 + i % 7, role=role, pad=pad, fixed=fixed)
        )  # fmt: skip
    for i in range(3):  # a second scan at the other site
        first = rows[i]
        other = "siteA" if first["site"] == "siteB" else "siteB"
        rows.append({**first, "scan_id": f"sub-{i:02d}_ses-2", "site": other,
                     "pad": first["fixed"] + (4.0 if other == "siteB" else 0.0) + 0.1,
                     "fixed": first["fixed"] + 0.1})  # fmt: skip
    table = pd.DataFrame(rows)
    if harmonised:
        return table.rename(
            columns={"pad": "brain_pad_unharmonised", "fixed": "brain_pad_corrected"}
        )
    return table.drop(columns="fixed").rename(columns={"pad": "brain_pad_corrected"})


def test_before_and_after_per_site_pairs_and_disease_effect():
    out = harmonisation_table(_table(True), "HC", 60).set_index(["measure", "subset"])
    means = out.loc["controls_mean"]
    assert means.loc["siteB", "before"] - means.loc["siteA", "before"] == pytest.approx(4, abs=1.2)
    assert abs(means.loc["siteB", "after"] - means.loc["siteA", "after"]) < 1.2
    icc = out.loc[("icc_between_site", "pairs")]
    assert icc["n"] == 3 and icc["after"] > 0.9 > icc["before"]
    d = out.loc[("cohens_d", "AD vs HC")]
    assert d["after"] > d["before"] > 0  # the disease effect survives, clearer without sites


def test_without_harmonisation_after_is_empty():
    out = harmonisation_table(_table(False), "HC", 60)
    assert out["after"].isna().all() and out["before"].notna().all()
