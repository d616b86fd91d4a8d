"""Planted atrophy: the voxel model's own spatial specificity (brainpad.local.planted)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from brainpad.local.planted import (
    effective_fwhm,
    planted_factors,
    planted_response,
    planted_table,
    planted_years,
    smooth_in_mask,
)

SHAPE = (10, 10, 8)
RATES = np.array([0.0, -0.005, -0.002, -0.003])  # region 0 = outside the brain
ACCELERATION = np.array([0.0, 8.0, 3.0, 3.0])
TRUE_AD = "group-AD_space-MNI152NLin2009aSym_desc-truelocalbrainPAD.nii.gz"


@pytest.fixture
def truth(tmp_path):
    """A three-region simulated truth: region map, rates and accelerations, true AD map."""
    regions = np.zeros(SHAPE, np.int16)
    regions[1:9, 1:9, 1:7] = 3
    regions[1:5, 1:9, 1:7] = 2
    regions[2:4, 3:6, 2:5] = 1  # a small, strongly affected region
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    table = pd.DataFrame(
        {
            "region": [1, 2, 3],
            "name": ["Hippocampus", "Cortex", "White"],
            "rate_per_year": RATES[1:],
            "acceleration_HC": 0.0,
            "acceleration_AD": ACCELERATION[1:],
        }
    )
    table.to_csv(tmp_path / "regions.tsv", sep="\t", index=False)
    regions_file = tmp_path / "space-MNI152NLin2009aSym_desc-regions_dseg.nii.gz"
    nib.save(nib.Nifti1Image(regions, affine), regions_file)
    true_map = ACCELERATION[regions].astype(np.float32)
    nib.save(nib.Nifti1Image(true_map, affine), tmp_path / TRUE_AD)
    mask = nib.Nifti1Image((regions > 0).astype(np.uint8), affine)
    return tmp_path, regions, mask


class LocalModel:
    """Reads each voxel's age from its own GM volume: age = log(GM) / rate + 50."""

    def __init__(self, regions):
        self.rate = np.where(regions > 0, RATES[regions], 1.0)

    def map(self, volume, mask):
        return np.where(mask, np.log(volume[0]) / self.rate + 50.0, np.nan)


class BlurredModel(LocalModel):
    """The local model's map averaged over the whole brain: no spatial specificity."""

    def map(self, volume, mask):
        local = super().map(volume, mask)
        return np.where(mask, np.nanmean(local), np.nan) + 0.01 * np.indices(mask.shape)[0]


def test_planted_factor_is_the_simulated_volume_ratio(truth):
    truth_dir, regions, mask = truth
    factor = planted_factors(truth_dir, mask)["AD"]
    np.testing.assert_allclose(factor, np.exp(RATES[regions] * ACCELERATION[regions]))
    assert np.all(planted_factors(truth_dir, mask)["HC"] == 1.0)
    # a region that grows with age (a ventricle) grows in CSF: its tissue stays as it is
    table = pd.read_csv(truth_dir / "regions.tsv", sep="\t")
    table.loc[table["region"] == 3, "rate_per_year"] = 0.015
    table.to_csv(truth_dir / "regions.tsv", sep="\t", index=False)
    factor = planted_factors(truth_dir, mask)["AD"]
    assert np.all(factor[regions == 3] == 1.0) and np.all(factor[regions == 1] < 1.0)


def test_planted_years_leave_out_regions_that_grow(truth):
    truth_dir, regions, mask = truth
    np.testing.assert_array_equal(planted_years(truth_dir, mask)["AD"], ACCELERATION[regions])
    table = pd.read_csv(truth_dir / "regions.tsv", sep="\t")
    table.loc[table["region"] == 3, "rate_per_year"] = 0.015
    table.to_csv(truth_dir / "regions.tsv", sep="\t", index=False)
    years = planted_years(truth_dir, mask)["AD"]
    assert np.all(years[regions == 3] == 0.0) and np.all(years[regions == 1] == 8.0)


def _table(responses, truth_dir, mask_img, mask):
    """:func:`planted_table` of ``responses`` against the fixture's truth (3 scans)."""
    true_map = np.asarray(nib.load(truth_dir / TRUE_AD).dataobj)
    years = planted_years(truth_dir, mask_img)
    table = planted_table(responses, years, {"AD": true_map}, mask, 3.0, 3)
    return table.set_index("group")


def test_a_local_model_shows_the_planted_pattern_in_full(truth):
    truth_dir, regions, mask_img = truth
    mask = regions > 0
    volumes = np.random.default_rng(0).uniform(0.5, 1.0, (3, 2, *SHAPE)).astype(np.float32)
    factors = {"AD": planted_factors(truth_dir, mask_img)["AD"]}
    local = planted_response([LocalModel(regions)], volumes, [0, 1, 2], factors, mask)
    np.testing.assert_allclose(local["AD"][mask], ACCELERATION[regions][mask], rtol=1e-4)
    table = _table(local, truth_dir, mask_img, mask)
    assert table.loc["AD", "planted_response_r"] == pytest.approx(1.0)
    assert table.loc["AD", "planted_gain"] == pytest.approx(1.0, rel=1e-3)
    assert table.loc["AD", "planted_fwhm_mm"] == 0.0
    assert table.loc["AD", "resolution_ceiling_r"] == pytest.approx(1.0)

    models = [BlurredModel(regions), LocalModel(regions)]  # scan i goes to model i mod 2
    mixed = planted_response(models, volumes, [0, 1, 2], factors, mask)
    table = _table(mixed, truth_dir, mask_img, mask)
    assert table.loc["AD", "planted_gain"] == pytest.approx(1 / 3, abs=0.05)


def test_a_region_that_grows_is_not_held_against_the_model(truth):
    """Nothing is planted in a growing region, so a model that shows exactly what was
    planted scores r = 1, while the full true map (which has the region's acceleration)
    caps the resolution ceiling below 1."""
    truth_dir, regions, mask_img = truth
    table = pd.read_csv(truth_dir / "regions.tsv", sep="\t")
    table.loc[table["region"] == 2, "rate_per_year"] = 0.015
    table.to_csv(truth_dir / "regions.tsv", sep="\t", index=False)
    mask = regions > 0
    volumes = np.random.default_rng(0).uniform(0.5, 1.0, (3, 2, *SHAPE)).astype(np.float32)
    factors = {"AD": planted_factors(truth_dir, mask_img)["AD"]}
    local = planted_response([LocalModel(regions)], volumes, [0, 1, 2], factors, mask)
    assert np.allclose(local["AD"][regions == 2], 0.0, atol=1e-4)
    table = _table(local, truth_dir, mask_img, mask)
    assert table.loc["AD", "planted_response_r"] == pytest.approx(1.0)
    assert table.loc["AD", "planted_gain"] == pytest.approx(1.0, rel=1e-3)
    assert table.loc["AD", "resolution_ceiling_r"] < 0.99


def test_smoothing_stays_inside_the_mask():
    mask = np.zeros((20, 20, 20), bool)
    mask[4:16, 4:16, 4:16] = True
    constant = np.where(mask, 5.0, 100.0)
    smooth = smooth_in_mask(constant, mask, fwhm_vox=4.0)
    np.testing.assert_allclose(smooth[mask], 5.0)
    assert np.all(np.isnan(smooth[~mask]))
    values = np.random.default_rng(1).normal(size=mask.shape)
    np.testing.assert_array_equal(smooth_in_mask(values, mask, 0.0)[mask], values[mask])
    # far from the mask's edge it is an ordinary Gaussian filter
    full = np.ones_like(mask)
    reference = ndimage.gaussian_filter(values, 2.0 / np.sqrt(8 * np.log(2)))
    np.testing.assert_allclose(smooth_in_mask(values, full, 2.0)[10, 10, 10], reference[10, 10, 10])


def test_effective_fwhm_recovers_the_blur_of_a_smooth_model():
    grid = np.indices((24, 24, 24)) - 11.5
    mask = (grid**2).sum(axis=0) < 11**2
    blocks = np.random.default_rng(2).integers(0, 4, (4, 4, 4)).astype(float) * 5.0
    planted = np.kron(blocks, np.ones((6, 6, 6)))  # regions of 6 voxels (18 mm)
    for fwhm_mm in (0.0, 9.0, 15.0):
        change = 0.3 * smooth_in_mask(planted, mask, fwhm_mm / 3.0) + 1.0
        fwhm, r = effective_fwhm(change, planted, mask, voxel_mm=3.0)
        assert fwhm == fwhm_mm
        assert r == pytest.approx(1.0)
