"""ComBat on a finished run's ROI volumes: site effects, the disease effect, unseen sites.

    python benchmarks/harmonise.py --results results [--draws 20]

On the run's ``regions/roi_volumes.tsv`` and ``folds.tsv`` (scans that passed QC; ages
of the unlabelled controls left out), with :mod:`brainpad.harmonise.combat` fitted on the
healthy controls and applied as the workflow applies it to ROI volumes (one affine map
per site, without each scan's own age and sex):

* site effect among the controls: per ROI feature, the one-way ANOVA F of the sites on the
  residuals of age, age² and sex; the median F and the share of features with p < 0.05,
  before and after ComBat;
* between-site pairs (participants scanned at two sites): ICC(2,1) of each feature, median;
* disease effect: Cohen's d of AD against controls ≥ 60 on the hippocampus + amygdala GM
  and on total GM, before and after;
* unseen site: each site in turn left out of the fit, its scans harmonised from n of its
  own controls (``estimate_site``, n = 5, 10, 20 where it has them, ``--draws`` random
  draws): the mean |site offset| of its other controls in pooled SD units, before and
  after, averaged over features and draws.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from brainpad.harmonise.combat import (
    HarmonisationError,
    estimate_site,
    expected,
    fit_combat,
    harmonise,
)
from brainpad.stats.measures import cohens_d, icc_2_1

CONTROL = "HC"


def residuals(features: pd.DataFrame, covariates: pd.DataFrame, fit_rows: np.ndarray):
    """Features minus their age, age² and sex fit on ``fit_rows``, in the fit's SD units."""
    age = covariates["age"].to_numpy(float)
    age = (age - np.nanmean(age)) / np.nanstd(age)
    design = np.column_stack([np.ones(len(age)), age, age**2, covariates["sex"].eq("M")])
    values = features.to_numpy(float)
    beta = np.linalg.lstsq(design[fit_rows], values[fit_rows], rcond=None)[0]
    out = values - design @ beta
    return out / out[fit_rows].std(0, ddof=1)


def site_effect(values: np.ndarray, sites: np.ndarray) -> tuple[float, float]:
    groups = [values[sites == s] for s in np.unique(sites)]
    f, p = stats.f_oneway(*groups, axis=0)
    return float(np.nanmedian(f)), float(np.mean(p < 0.05))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results", type=Path)
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    folds = pd.read_csv(args.results / "folds.tsv", sep="\t")
    folds = folds[folds["qc_passed"].astype(bool) & folds["age"].notna()].reset_index(drop=True)
    roi = pd.read_csv(args.results / "regions/roi_volumes.tsv", sep="\t").set_index("scan_id")
    features = roi.loc[folds["scan_id"]].reset_index(drop=True)
    controls = (folds["group"] == CONTROL).to_numpy()
    features = features.loc[:, features[controls].std() > 0]
    covariates = folds[["site", "age", "sex", "group"]]
    model = fit_combat(features, covariates, CONTROL)
    after = harmonise(model, features, covariates, own_covariates=False)  # as the workflow
    sites = folds["site"].to_numpy()
    print(f"{len(folds)} scans, {controls.sum()} control scans, {features.shape[1]} ROI features,"
          f" sites {dict(folds['site'].value_counts())}")  # fmt: skip

    print("\n| measure | before | after ComBat |\n|---|---|---|")
    both = {"before": features, "after": after}
    res = {k: residuals(v, covariates, controls) for k, v in both.items()}
    effects = {k: site_effect(r[controls], sites[controls]) for k, r in res.items()}
    print(f"| controls: median site F | {effects['before'][0]:.2f} | {effects['after'][0]:.2f} |")
    print(f"| controls: features with site p < 0.05 | {effects['before'][1]:.0%} |"
          f" {effects['after'][1]:.0%} |")  # fmt: skip
    pairs = folds[folds["participant_id"].duplicated(keep=False)]
    pairs = pairs[pairs.groupby("participant_id")["site"].transform("nunique") > 1]
    if len(pairs):
        rows = [g.index.to_numpy()[:2] for _, g in pairs.groupby("participant_id")]
        iccs = {k: np.nanmedian(icc_2_1(np.stack([v.to_numpy()[r] for r in rows])))
                for k, v in both.items()}  # fmt: skip
        print(f"| between-site pairs ({len(rows)}): median ICC(2,1) | {iccs['before']:.3f} |"
              f" {iccs['after']:.3f} |")  # fmt: skip
    old = controls & (folds["age"] >= 60).to_numpy()
    ad = (folds["group"] == "AD").to_numpy()
    medial = [
        c for c in features if c.startswith("GM_") and ("Hippocampus" in c or "Amygdala" in c)
    ]
    grey = [c for c in features if c.startswith("GM_")]
    for label, columns in (("hippocampus + amygdala GM", medial), ("total GM", grey)):
        d = {k: cohens_d(v[columns].sum(1)[ad].to_numpy(), v[columns].sum(1)[old].to_numpy())
             for k, v in both.items()}  # fmt: skip
        print(f"| AD vs controls >= 60, d on {label} | {d['before']:.2f} | {d['after']:.2f} |")

    print("\nUnseen site: left out of the fit, harmonised from n of its own controls\n")
    print("| site | n controls | offset before (SD) | offset after (SD) | draws |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(args.seed)
    for site in sorted(set(sites)):
        here = sites == site
        model = fit_combat(features[~here], covariates[~here], CONTROL)
        pool = np.flatnonzero(here & controls)
        for n in (5, 10, 20):
            if n >= len(pool):
                continue
            before, after_, done = [], [], 0
            for _ in range(args.draws):
                chosen = rng.choice(pool, n, replace=False)
                rest = np.setdiff1d(pool, chosen)
                scans = np.r_[chosen, rest]
                cov = covariates.iloc[scans].assign(
                    group=np.r_[[CONTROL] * n, ["held-out"] * len(rest)]
                )  # only the chosen controls estimate the site
                try:
                    out = estimate_site(
                        model, features.iloc[scans], cov, CONTROL, own_covariates=False
                    )
                except HarmonisationError:
                    continue
                sd = np.sqrt(model.var_pooled)
                centre = expected(model, covariates.iloc[rest])
                raw = features.iloc[rest].to_numpy()
                before.append(np.abs(((raw - centre) / sd).mean(0)).mean())
                after_.append(np.abs(((out.to_numpy()[n:] - centre) / sd).mean(0)).mean())
                done += 1
            print(f"| {site} | {n} | {np.mean(before):.2f} | {np.mean(after_):.2f} | {done} |")


if __name__ == "__main__":
    main()
