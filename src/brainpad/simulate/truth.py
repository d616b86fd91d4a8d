"""Ground-truth tables of the simulated cohort: regional ageing rates and disease effects.

Regions are the Harvard-Oxford maximum-probability labels (1-113) plus three pseudo-regions
for brain voxels the atlas leaves unlabelled (mostly cerebral white matter, cerebellar grey
matter and sulcal CSF). Each region gets

* an ageing rate: change of log volume per year of (biological) age, e.g. -0.0055/y in
  the hippocampus (≈ 28 % loss between 25 and 85 y) or +0.015/y in the lateral ventricles;
* a disease acceleration per group: extra years of ageing, e.g. AD +28 y in hippocampus and
  amygdala. A subject's *local brain age* in a region is
  ``age + global offset + severity × acceleration``, and the region's volume is the
  template's times ``exp(rate × (local brain age − REFERENCE_AGE))``.

The template (ICBM152 2009a, built from young adults) is taken to be the anatomy of a
``REFERENCE_AGE``-year-old.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from brainpad.templates import harvard_oxford_labels

REFERENCE_AGE = 25.0
N_HO = 113
WM_REGION, OTHER_GM_REGION, SULCAL_CSF_REGION = N_HO + 1, N_HO + 2, N_HO + 3
N_REGIONS = N_HO + 4  # index 0 = outside the brain
PSEUDO_REGIONS = {
    WM_REGION: "Cerebral_White_Matter_unlabelled",
    OTHER_GM_REGION: "Grey_Matter_unlabelled",
    SULCAL_CSF_REGION: "CSF_unlabelled",
}

# (substring of the Harvard-Oxford name, log-volume change per year); first match wins.
AGEING_RATES: tuple[tuple[str, float], ...] = (
    ("Lateral_Ventricle", +0.0150),
    ("Hippocampus", -0.0055),
    ("Amygdala", -0.0050),
    ("Accumbens", -0.0050),
    ("Thalamus", -0.0045),
    ("Putamen", -0.0045),
    ("Pallidum", -0.0035),
    ("Caudate", -0.0030),
    ("Brain-Stem", -0.0010),
    ("Frontal", -0.0040),
    ("Precentral", -0.0035),
    ("Paracingulate", -0.0035),
    ("Cingulate_Gyrus_anterior", -0.0035),
    ("Subcallosal", -0.0035),
    ("Juxtapositional", -0.0030),
    ("Insular", -0.0035),
    ("Temporal", -0.0030),
    ("Parahippocampal", -0.0030),
    ("Planum", -0.0025),
    ("Heschl", -0.0025),
    ("", -0.0020),  # every other cortical region (parietal, occipital, ...)
)
PSEUDO_RATES = {WM_REGION: -0.0015, OTHER_GM_REGION: -0.0015, SULCAL_CSF_REGION: +0.0080}

# Extra years of ageing at severity 1 for Alzheimer's disease (first match wins); the other
# groups scale it by GROUP_SCALE. Sized so the regional volumes match what AD does: a
# hippocampus 15 % smaller than age-matched controls' (28 y × 0.55 %/y; MRI studies report
# 15-25 %), ventricles 30 % larger, 3-4 % in the lateral temporal lobe. (At a third of
# this, 4 % in the hippocampus, no estimator could tell the pattern from individual anatomy
# in a demo-sized AD group: brainpad.local.truth.volumetric_ceiling r = 0.31.)
AD_ACCELERATION: tuple[tuple[str, float], ...] = (
    ("Hippocampus", 28.0),
    ("Amygdala", 28.0),
    ("Parahippocampal_Gyrus_anterior", 28.0),  # contains entorhinal cortex
    ("Accumbens", 18.0),
    ("Lateral_Ventricle", 18.0),
    ("Parahippocampal_Gyrus_posterior", 13.0),
    ("Temporal_Pole", 13.0),
    ("Temporal_Fusiform_Cortex_anterior", 13.0),
    ("Inferior_Temporal_Gyrus_anterior", 13.0),
    ("Middle_Temporal_Gyrus_anterior", 8.0),
    ("", 3.0),  # widespread atrophy everywhere else
)
GROUP_SCALE = {"HC": 0.0, "sMCI": 0.2, "pMCI": 0.6, "AD": 1.0}


def _lookup(name: str, table: tuple[tuple[str, float], ...], default: float) -> float:
    for key, value in table:
        if key in name:
            return value
    return default


def region_table() -> pd.DataFrame:
    """All simulated regions with their ageing rate and per-group acceleration (years).

    Returns
    -------
    DataFrame
        Columns ``region`` (index used in region maps), ``name``, ``kind``,
        ``rate_per_year`` and ``acceleration_<group>`` for every group in
        :data:`GROUP_SCALE`.
    """
    ho = harvard_oxford_labels()
    rows = [
        {
            "region": int(r.label),
            "name": r.name,
            "kind": r.kind,
            "rate_per_year": _lookup(r.name, AGEING_RATES, 0.0),
            "ad": _lookup(r.name, AD_ACCELERATION, 0.0),
        }
        for r in ho.itertuples()
    ]
    rows += [
        {
            "region": k,
            "name": v,
            "kind": "unlabelled",
            "rate_per_year": PSEUDO_RATES[k],
            "ad": _lookup(v, AD_ACCELERATION, 0.0),
        }
        for k, v in PSEUDO_REGIONS.items()
    ]
    table = pd.DataFrame(rows)
    for group, scale in GROUP_SCALE.items():
        table[f"acceleration_{group}"] = table["ad"] * scale
    return table.drop(columns="ad")


def region_map(
    atlas: np.ndarray, gm: np.ndarray, wm: np.ndarray, csf: np.ndarray, brain_mask: np.ndarray
) -> np.ndarray:
    """Region index per voxel: Harvard-Oxford label, or a pseudo-region by dominant tissue."""
    regions = np.where(brain_mask, atlas, 0).astype(np.int64)
    unlabelled = brain_mask & (regions == 0)
    tissue = np.argmax(np.stack([wm, gm, csf]), axis=0)
    pseudo = np.array([WM_REGION, OTHER_GM_REGION, SULCAL_CSF_REGION])[tissue]
    regions[unlabelled] = pseudo[unlabelled]
    return regions


def floor_mae(bio_age_sd: float) -> float:
    """Expected MAE of a model that recovers biological age exactly: σ·√(2/π)."""
    return float(bio_age_sd * np.sqrt(2.0 / np.pi))
