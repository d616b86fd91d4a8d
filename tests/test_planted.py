"""Planted atrophy: the voxel model's own spatial specificity (brainpad.planted)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainpad.planted import planted_factors, planted_response, planted_table

SHAPE = (10, 10, 8)
RATES = np.array([0.0, -0.005, -0.002, -0.003])  # region 0 = outside the brain
ACCELERATION = np.array([0.0, 8.0, 3.0, 3.0])


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
    nib.save(nib.Nifti1Image(regions, affine), tmp_path / "space-MNI_desc-regions_dseg.nii.gz")
    true_map = ACCELERATION[regions].astype(np.float32)
    name = "group-AD_space-MNI_desc-truelocalbrainPAD.nii.gz"
    nib.save(nib.Nifti1Image(true_map, affine), tmp_path / name)
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


def test_a_local_model_shows_the_planted_pattern_in_full(truth):
    truth_dir, regions, mask_img = truth
    mask = regions > 0
    volumes = np.random.default_rng(0).uniform(0.5, 1.0, (3, 2, *SHAPE)).astype(np.float32)
    factors = {"AD": planted_factors(truth_dir, mask_img)["AD"]}
    local = planted_response([LocalModel(regions)], volumes, [0, 1, 2], factors, mask)
    np.testing.assert_allclose(local["AD"][mask], ACCELERATION[regions][mask], rtol=1e-4)
    table = planted_table(local, truth_dir, mask_img, (slice(None),) * 3, mask, 3).set_index(
        "group"
    )
    assert table.loc["AD", "planted_response_r"] == pytest.approx(1.0)
    assert table.loc["AD", "planted_gain"] == pytest.approx(1.0, rel=1e-3)

    models = [BlurredModel(regions), LocalModel(regions)]  # scan i goes to model i mod 2
    mixed = planted_response(models, volumes, [0, 1, 2], factors, mask)
    table = planted_table(mixed, truth_dir, mask_img, (slice(None),) * 3, mask, 3).set_index(
        "group"
    )
    assert table.loc["AD", "planted_gain"] == pytest.approx(1 / 3, abs=0.05)
