"""Group statistics of relevance maps (TFCE permutations) and their truth validation."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.maskers import NiftiMasker
from nilearn.mass_univariate import permuted_ols
from scipy import stats

from brainpad.interpret.statistics import (
    Contrast,
    block_mean,
    cluster_rows,
    coarse_mask,
    contrasts,
    permutation_test,
    relevance_statistics,
)
from brainpad.interpret.truth import (
    ageing_regions,
    relevance_in_regions,
    significant_overlap,
)
from brainpad.paths import stat_paths

AFFINE = np.diag([4.0, 4.0, 4.0, 1.0])
AFFINE[:3, 3] = -20.0


def _mask(shape=(8, 8, 8)) -> nib.Nifti1Image:
    data = np.zeros(shape, np.uint8)
    data[1:-1, 1:-1, 1:-1] = 1
    return nib.Nifti1Image(data, AFFINE)


def _scans() -> pd.DataFrame:
    """10 controls (one scanned twice, one unlabelled), 4 AD, 2 sMCI."""
    ages = [25, 30, 35, 38, 50, 62, 66, 70, 75, np.nan, 80, 72, 68, 77, 70, 71]
    groups = ["HC"] * 10 + ["HC"] + ["AD"] * 4 + ["sMCI"]
    ids = [f"sub-{i:02d}" for i in range(len(ages))]
    ids[10] = ids[8]  # a repeat scan of sub-08
    table = pd.DataFrame({"participant_id": ids, "group": groups, "age": ages})
    sessions = table.groupby("participant_id").cumcount() + 1
    table["scan_id"] = table["participant_id"] + "_ses-" + sessions.astype(str)
    table["volume"] = np.arange(len(table))
    return table


def test_contrasts_pick_one_scan_per_person_and_the_age_bands():
    tests = {c.name: c for c in contrasts(_scans(), "HC", 40, 60)}
    assert list(tests) == ["healthy", "young_vs_old", "AD_vs_old", "sMCI_vs_old"]
    assert list(tests["healthy"].first_rows) == list(range(10))  # the repeat scan 10 left out
    assert list(tests["young_vs_old"].first_rows) == [0, 1, 2, 3]
    assert list(tests["young_vs_old"].second_rows) == [5, 6, 7, 8]  # unlabelled 9 left out
    assert list(tests["AD_vs_old"].first_rows) == [11, 12, 13, 14]
    assert tests["healthy"].second_rows is None


def test_block_mean_averages_blocks_and_keeps_world_coordinates():
    data = np.arange(4 * 4 * 2, dtype=np.float32).reshape(4, 4, 2)
    image = nib.Nifti1Image(data, AFFINE)
    coarse = block_mean(image, 2)
    assert coarse.shape == (2, 2, 1)
    assert coarse.get_fdata()[1, 0, 0] == pytest.approx(data[2:4, 0:2, 0:2].mean())
    # a coarse voxel's centre is the centre of its fine voxels
    centre = coarse.affine @ [1, 0, 0, 1]
    fine = np.mean([AFFINE @ [i, j, k, 1] for i in (2, 3) for j in (0, 1) for k in (0, 1)], 0)
    np.testing.assert_allclose(centre, fine)
    assert block_mean(image, 1) is image
    # blocks at least half brain: the 8 inner ones and the 24 half-filled on the faces
    assert coarse_mask(_mask(), 2).get_fdata().sum() == 32


def _data(effect: float, seed: int = 0) -> tuple[np.ndarray, NiftiMasker]:
    """16 scans on the mask's 216 voxels: AD (rows 11-14) get ``effect`` in a corner."""
    masker = NiftiMasker(_mask()).fit()
    rng = np.random.default_rng(seed)
    data = 1.0 + 0.3 * rng.normal(size=(16, 216))
    corner = np.zeros((8, 8, 8), bool)
    corner[1:4, 1:4, 1:4] = True
    inside = masker.transform(nib.Nifti1Image(corner.astype(np.float32), AFFINE))[0] > 0
    data[11:15, :] += effect * inside
    return data, masker


@pytest.mark.usefixtures("frozen_gc")
def test_the_two_sample_test_is_nilearns_permuted_ols_with_tfce():
    data, masker = _data(effect=2.0)
    contrast = Contrast("AD_vs_old", "AD", np.arange(11, 15), "HC", np.arange(5, 9))
    result = permutation_test(data, contrast, masker, n_perm=99, seed=3)
    t_scipy = stats.ttest_ind(data[11:15], data[5:9]).statistic
    np.testing.assert_allclose(result["t"], t_scipy, rtol=1e-6)
    rows = np.r_[11:15, 5:9]
    direct = permuted_ols(
        np.r_[np.ones(4), np.zeros(4)][:, None], data[rows], n_perm=99, two_sided_test=True,
        random_state=3, n_jobs=1, verbose=0, tfce=True, masker=masker, output_type="dict",
    )  # fmt: skip
    np.testing.assert_allclose(result["p_fwe"], 10 ** -direct["logp_max_tfce"][0])
    # 4 vs 4 scans: 35 distinct splits, so p cannot go far below 1/35; the corner gets it
    corner = data[11:15].mean(0) > 2.0
    assert result["p_fwe"][corner].max() == result["p_fwe"].min() < 0.1


@pytest.mark.usefixtures("frozen_gc")
def test_the_one_sample_test_is_against_the_uniform_share():
    data, masker = _data(effect=0.0)
    data[:10] += 0.5  # every healthy voxel above its share
    contrast = Contrast("healthy", "HC", np.arange(10))
    result = permutation_test(data, contrast, masker, n_perm=50, seed=0)
    np.testing.assert_allclose(result["t"], stats.ttest_1samp(data[:10] - 1, 0).statistic)
    assert (result["p_fwe"] < 0.05).mean() > 0.9


@pytest.mark.usefixtures("frozen_gc")
def test_relevance_statistics_writes_maps_clusters_and_says_when_a_group_is_too_small(tmp_path):
    data, masker = _data(effect=3.0)
    absolute = masker.inverse_transform(data)
    atlas = nib.Nifti1Image(np.where(np.arange(8)[:, None, None] < 4, 1, 2) * np.ones((8, 8, 8)),
                            AFFINE)  # fmt: skip
    labels = pd.DataFrame({"label": [1, 2], "name": ["Left_Thing", "Right_Thing"]})
    tests, clusters = relevance_statistics(
        absolute, _scans(), _mask(), atlas, labels, "lrp", tmp_path, "HC", n_perm=30, seed=0
    )
    assert list(tests["test"]) == ["healthy", "young_vs_old", "AD_vs_old", "sMCI_vs_old"]
    small = tests.set_index("test").loc["sMCI_vs_old"]
    assert small["n_first"] == 1 and np.isnan(small["max_abs_t"])
    assert not stat_paths(tmp_path, "lrp", "sMCI_vs_old")["t"].exists()
    ad = tests.set_index("test").loc["AD_vs_old"]
    assert ad["significant_voxels"] > 0
    assert stat_paths(tmp_path, "lrp", "AD_vs_old")["p_fwe"].is_file()
    found = clusters[clusters["test"] == "AD_vs_old"].iloc[0]
    assert found["sign"] == "positive" and found["peak_region"] == "Left_Thing"
    assert -20 <= found["x_mm"] <= -4  # inside the planted corner


def test_clusters_split_by_sign_and_report_the_peak():
    t = np.zeros((8, 8, 8))
    t[1:3, 1:3, 1:3] = 3.0
    t[2, 2, 2] = 5.0
    t[5:7, 5:7, 5:7] = -4.0
    atlas = nib.Nifti1Image(np.zeros((8, 8, 8)), AFFINE)
    rows = cluster_rows(nib.Nifti1Image(t, AFFINE), t != 0, atlas, pd.DataFrame(
        {"label": [1], "name": ["x"]}))  # fmt: skip
    assert [r["sign"] for r in rows] == ["positive", "negative"]
    assert rows[0]["peak_t"] == 5.0 and rows[0]["x_mm"] == -12.0
    assert rows[0]["volume_ml"] == pytest.approx(8 * 64 / 1000)
    assert rows[1]["peak_region"] == "outside atlas"


def _regions(tmp_path) -> tuple[pd.Series, np.ndarray]:
    table = pd.DataFrame(
        {
            "region": [1, 2, 3, 4, 5, 6],
            "name": list("abcdef"),
            "rate_per_year": [-0.006, -0.005, 0.01, -0.001, -0.002, -0.001],
            "acceleration_AD": [20, 20, 0, 1, 1, 1],
        }
    )
    table.to_csv(tmp_path / "regions.tsv", sep="\t", index=False)
    labels = np.repeat(np.arange(7), 10)  # 10 voxels a region, 10 unlabelled
    return ageing_regions(tmp_path), labels


def test_relevance_inside_the_ageing_regions_beats_random_placements(tmp_path):
    ageing, labels = _regions(tmp_path)
    assert list(ageing.index[ageing]) == [1, 2, 3]  # faster than the median |rate|
    rng = np.random.default_rng(0)
    focused = np.isin(labels, [1, 2, 3]).astype(float)
    row = relevance_in_regions(focused, labels, ageing, rng, n_random=200)
    assert row["relevance_share"] == 1.0 and row["volume_share"] == 0.5
    assert row["enrichment"] == 2.0
    assert row["p_random"] == pytest.approx((1 + 200 / 20) / 201, abs=0.05)  # 1 of 20 draws ties
    uniform = relevance_in_regions(np.ones(70), labels, ageing, rng, n_random=50)
    assert uniform["enrichment"] == pytest.approx(1.0) and uniform["p_random"] == 1.0


def test_significant_clusters_are_compared_with_the_true_disease_map(tmp_path):
    _, labels = _regions(tmp_path)
    from brainpad.interpret.truth import affected_regions

    affected = affected_regions(tmp_path, "AD")
    assert list(affected.index[affected]) == [1, 2]
    assert affected_regions(tmp_path, "pMCI") is None
    significant = np.isin(labels, [1, 4]) & (np.arange(70) % 2 == 0)
    t = np.where(np.isin(labels, [2]), 5.0, 0.1) * np.linspace(1, 2, 70)  # region 2 leads
    row = significant_overlap(significant, labels, affected, t)
    assert row["significant_voxels"] == 10
    assert row["share_in_affected"] == 0.5
    assert row["top_share_in_affected"] == 1.0  # the 5 % largest |t| all in region 2
    assert row["affected_volume_share"] == pytest.approx(20 / 60)
    assert np.isnan(significant_overlap(significant, labels, affected)["top_share_in_affected"])
