"""Per-scan local brain-age maps, voxelwise correction and residual age dependence."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from brainpad.ensemble.correction import calibration_scans
from brainpad.local.correction import (
    VoxelBias,
    VoxelLinearBias,
    age_bin_edges,
    load_voxel_bias,
    save_voxel_bias,
)
from brainpad.local.maps import (
    FoldMaps,
    chance_median_abs_r,
    null_median_abs_r,
    voxel_age_correlation,
    write_local_maps,
)
from brainpad.paths import map_paths
from brainpad.training.fold import fold_sets


def test_voxel_age_correlation_matches_scipy():
    rng = np.random.default_rng(0)
    age = rng.uniform(20, 80, 30)
    maps = rng.normal(size=(30, 4, 5)) + age[:, None, None] * rng.normal(size=(4, 5))
    r = voxel_age_correlation(age, maps)
    for idx in [(0, 0), (3, 4), (2, 1)]:
        assert (
            r[idx] == np.float64(stats.pearsonr(age, maps[(slice(None), *idx)])[0]).round(12)
            or abs(r[idx] - stats.pearsonr(age, maps[(slice(None), *idx)])[0]) < 1e-10
        )


def fake_fold_outputs(folds: pd.DataFrame, tmp_path, shape, bias_slope: float):
    """Per-fold predictions + maps: brain age regressing to the mean, plus fold noise."""
    rng = np.random.default_rng(1)
    predictions, maps = [], []
    for k in range(int(folds["fold"].max()) + 1):
        sets = fold_sets(folds, k)
        use = folds[sets.isin(["oof", "heldout"])]
        ages = use["age"].to_numpy()[:, None, None, None]
        values = 50 + (1 - bias_slope) * (ages - 50) + rng.normal(0, 1, (len(use), *shape))
        pred = tmp_path / f"pred{k}.tsv"
        use[["scan_id"]].assign(predicted=values.mean(axis=(1, 2, 3))).to_csv(
            pred, sep="\t", index=False
        )
        np.save(tmp_path / f"maps{k}.npy", values.astype(np.float16))
        predictions.append(pred)
        maps.append(tmp_path / f"maps{k}.npy")
    return predictions, maps


def test_local_maps_are_written_and_lose_their_age_dependence(synthetic_inputs, tmp_path):
    folds = pd.read_csv(synthetic_inputs["folds"], sep="\t")
    index = pd.read_csv(synthetic_inputs["index"], sep="\t")
    predictions, maps = fake_fold_outputs(folds, tmp_path, (10, 12, 10), bias_slope=0.4)
    fold_maps = FoldMaps(predictions, maps)
    out = tmp_path / "maps"
    # a denser calibration set (study 1 had 200): two folds' controls join it
    dense = folds.assign(role=folds["role"].mask(folds["fold"].isin([0, 1]), "calibration"))
    table = write_local_maps(
        dense, fold_maps, index, synthetic_inputs["mask"], out, age_bin_edges(), 2
    )
    first = folds[folds["role"] == "clinical"].iloc[0]
    paths = map_paths(out, first["scan_id"])
    image = nib.load(paths["brainPADcorrected"])
    assert image.shape == (14, 14, 12)
    data = image.get_fdata()
    mask = nib.load(synthetic_inputs["mask"]).get_fdata() > 0
    assert np.isfinite(data[mask]).all() and np.isnan(data[~mask]).all()
    # a held-out scan's map is the mean of the fold models' maps
    expected = np.mean(
        [
            np.load(m)[k].astype(np.float32)
            for m, k in zip(
                maps,
                [
                    pd.read_csv(p, sep="\t")["scan_id"].tolist().index(first["scan_id"])
                    for p in predictions
                ],
                strict=True,
            )
        ],
        axis=0,
    )
    brain_age = nib.load(paths["brainage"]).get_fdata()[2:12, 1:13, 0:10]
    inside = mask[2:12, 1:13, 0:10]
    np.testing.assert_allclose(brain_age[inside], expected[inside], rtol=1e-5)
    r = table.set_index("correction")["median_abs_r"]
    assert r["raw"] > 0.5  # regression to the mean: brain-PAD falls with age
    assert r["global"] < r["raw"] / 2
    assert r["voxelwise_bins"] < r["raw"] / 2 and r["voxelwise_linear"] < r["raw"] / 2
    assert table.loc[table["applied"], "correction"].tolist() == ["voxelwise_bins"]
    levels = table.set_index("correction")
    assert (
        levels.loc[["raw", "global"], "null_median_abs_r"] == levels["chance_median_abs_r"].iloc[0]
    ).all()
    assert (levels["null_median_abs_r"] >= levels["chance_median_abs_r"] - 0.01).all()
    # the linear correction's maps carry a line per voxel instead
    linear_out = tmp_path / "linear"
    write_local_maps(
        dense, fold_maps, index, synthetic_inputs["mask"], linear_out, age_bin_edges(), 2, "linear"
    )
    linear = nib.load(map_paths(linear_out, first["scan_id"])["brainPADcorrected"]).get_fdata()
    assert not np.allclose(linear[mask], data[mask])


def test_out_of_fold_controls_join_the_calibration_when_asked(synthetic_inputs, tmp_path):
    folds = pd.read_csv(synthetic_inputs["folds"], sep="\t")
    index = pd.read_csv(synthetic_inputs["index"], sep="\t")
    fold_maps = FoldMaps(*fake_fold_outputs(folds, tmp_path, (10, 12, 10), bias_slope=0.4))
    both = calibration_scans(folds, "calibration+out_of_fold")
    alone = calibration_scans(folds, "calibration")
    assert set(alone["scan_id"]) == set(folds.loc[folds["role"] == "calibration", "scan_id"])
    assert set(both["role"]) == {"calibration", "train"} and both["participant_id"].is_unique
    assert len(both) == len(alone) + folds.loc[folds["role"] == "train", "participant_id"].nunique()
    with pytest.raises(ValueError, match=r"set 'everything' \(debias\.voxel_calibration"):
        calibration_scans(folds, "everything")

    out = tmp_path / "maps"
    table = write_local_maps(
        folds, fold_maps, index, synthetic_inputs["mask"], out, age_bin_edges(), 2, "linear", 0,
        "calibration+out_of_fold",
    )  # fmt: skip
    assert (table["calibration_n"] == len(both)).all()
    # the corrected maps carry the line fitted on the out-of-fold maps as well
    deltas = np.stack([fold_maps.get(r.scan_id) - r.age for r in both.itertuples()])
    line = VoxelLinearBias.fit(both["age"].to_numpy(), deltas)
    scan = folds[folds["role"] == "clinical"].iloc[0]
    raw = fold_maps.get(scan["scan_id"]) - scan["age"]
    paths = map_paths(out, scan["scan_id"])
    corrected = nib.load(paths["brainPADcorrected"]).get_fdata()[2:12, 1:13, 0:10]
    inside = np.isfinite(corrected)
    expected = line.correct(scan["age"], raw)
    np.testing.assert_allclose(corrected[inside], expected[inside], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n", [5, 15, 40])
def test_chance_median_abs_r_matches_noise(n):
    rng = np.random.default_rng(n)
    age = rng.uniform(20, 80, n)
    noise = rng.normal(size=(n, 40_000))
    observed = np.median(np.abs(voxel_age_correlation(age, noise)))
    assert chance_median_abs_r(n) == pytest.approx(observed, abs=0.005)
    assert chance_median_abs_r(15) == pytest.approx(0.19, abs=0.005)
    assert np.isnan(chance_median_abs_r(2))


def test_null_level_of_the_voxelwise_line_has_its_closed_form():
    # brain-PAD slope on age after the line: the test set's own slope minus the fitted one,
    # so t scales by k = 1 + Sxx_test / Sxx_cal; the median |r| is r at t = √k·t₀.₇₅(n − 2)
    rng = np.random.default_rng(3)
    cal_age, test_age = rng.uniform(20, 85, 14), rng.uniform(20, 85, 15)
    bias = VoxelLinearBias.fit(cal_age, rng.normal(size=(14, 5)))
    sxx_test, sxx_cal = (((a - a.mean()) ** 2).sum() for a in (test_age, cal_age))
    t = np.sqrt(1 + sxx_test / sxx_cal) * stats.t.ppf(0.75, 13)
    expected = t / np.sqrt(13 + t**2)
    observed = null_median_abs_r(bias, cal_age, test_age, seed=0, voxels=100_000)
    assert observed == pytest.approx(expected, abs=0.004)
    assert observed > chance_median_abs_r(15) + 0.05
    assert null_median_abs_r(bias, cal_age, test_age, seed=0) == null_median_abs_r(
        bias, cal_age, test_age, seed=0
    )


def test_null_level_of_age_bins_rises_as_the_bins_thin():
    rng = np.random.default_rng(4)
    test_age = rng.uniform(20, 85, 15)
    few, many = rng.uniform(20, 85, 14), rng.uniform(20, 85, 200)
    edges = age_bin_edges()
    levels = [
        null_median_abs_r(VoxelBias.fit(a, rng.normal(size=(len(a), 3)), edges, 3), a, test_age, 0)
        for a in (few, many)
    ]
    assert levels[0] > levels[1] + 0.03
    assert levels[1] == pytest.approx(chance_median_abs_r(15), abs=0.03)


@pytest.mark.parametrize("method", ["bins", "linear"])
def test_a_saved_voxelwise_correction_corrects_as_the_fitted_one(method, tmp_path):
    rng = np.random.default_rng(4)
    age = rng.uniform(20, 80, 30)
    delta = rng.normal(0, 1, (30, 5, 6, 4)) + (age[:, None, None, None] - 50) * 0.1
    delta[:, 0, 0, 0] = np.nan  # outside the brain
    if method == "bins":
        bias = VoxelBias.fit(age, delta, age_bin_edges(), min_per_bin=3)
    else:
        bias = VoxelLinearBias.fit(age, delta)
    template = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((9, 8, 6), np.uint8), np.eye(4)), template)
    crop = (slice(2, 7), slice(1, 7), slice(1, 5))
    save_voxel_bias(bias, tmp_path / "voxel_bias.nii.gz", template, crop)
    assert (tmp_path / "voxel_bias.json").is_file()
    loaded = load_voxel_bias(tmp_path / "voxel_bias.nii.gz", crop)
    assert type(loaded) is type(bias)
    np.testing.assert_array_equal(loaded.correct(61.0, delta[0]), bias.correct(61.0, delta[0]))
