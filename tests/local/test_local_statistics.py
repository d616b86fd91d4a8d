"""Study 1's analysis of local brain-PAD maps: ROI tables, group maps, ICC, truth check."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from brainpad.cli import main
from brainpad.cohort.arrays import tissue_map
from brainpad.local.statistics import (
    MapSet,
    icc_tables,
    local_statistics,
    read_mean_maps,
    scans_with_maps,
    statmap_path,
)
from brainpad.local.truth import (
    group_reliabilities,
    image_regional_volumes,
    regional_excess_age,
    split_half_reliability,
    truth_validation,
)
from brainpad.paths import map_paths
from brainpad.stats.measures import cohens_d, icc_2_1
from conftest import LOCAL_REGIONS


@pytest.fixture(scope="module")
def analysed(local_maps_cohort, tmp_path_factory):
    """The tables and map set of the planted cohort (one run shared by the tests)."""
    c = local_maps_cohort
    maps = MapSet.load(c["maps"], c["mask"], c["atlas"], c["labels"])
    folds = pd.read_csv(c["folds"], sep="\t")
    truth = pd.read_csv(c["truth"] / "subjects.tsv", sep="\t").set_index("participant_id")
    out = tmp_path_factory.mktemp("statmaps")
    volumes = pd.read_csv(c["roi_volumes"], sep="\t")
    tables = local_statistics(folds, maps, volumes, "HC", 60.0, out, truth)
    return tables, maps, folds, out


def stacked(maps, folds, group, min_age=0.0):
    """Corrected maps of a group's first scans (the test's reference computation)."""
    people = folds.sort_values("scan_id").drop_duplicates("participant_id")
    people = people[(people["group"] == group) & (people["age"] >= min_age)]
    return np.stack([maps.read(s) for s in people.scan_id])


def test_roi_brain_pad_is_the_mean_of_the_map_inside_each_region(analysed):
    tables, maps, folds, _ = analysed
    roi = tables["roi_brain_pad"].set_index("scan_id")
    row = folds.iloc[5]
    values = maps.read(row.scan_id)
    assert roi.loc[row.scan_id, "whole_brain"] == pytest.approx(values[maps.brain].mean())
    for label, name in zip(maps.labels["label"], maps.labels["name"], strict=True):
        assert roi.loc[row.scan_id, name] == pytest.approx(values[maps.atlas == label].mean())


def test_voxel_t_and_d_maps_equal_scipy_on_the_stacked_maps(analysed):
    _, maps, folds, out = analysed
    ad, hc = stacked(maps, folds, "AD"), stacked(maps, folds, "HC", 60.0)
    d = nib.load(statmap_path(out, "group-AD_vs_HC", "d")).get_fdata()
    t = nib.load(statmap_path(out, "group-AD_vs_HC", "t")).get_fdata()
    expected_t = sps.ttest_ind(ad, hc, axis=0, equal_var=False).statistic
    np.testing.assert_allclose(d[maps.brain], cohens_d(ad, hc, axis=0)[maps.brain], rtol=1e-5)
    np.testing.assert_allclose(t[maps.brain], expected_t[maps.brain], rtol=1e-5)
    assert np.isnan(d[~maps.brain]).all()


def test_group_comparisons_find_the_planted_region(analysed):
    tables, *_ = analysed
    roi = tables["roi_group_comparison"]
    ad = roi[(roi["first"] == "AD") & (roi["second"] == "HC")].set_index("roi")
    assert ad["d"].idxmax() == "Left_Hippocampus"
    assert ad.loc["Left_Hippocampus", "p_bonferroni"] < 0.01
    assert (roi["p_bonferroni"] >= roi["p"]).all()
    pairs = set(zip(roi["first"], roi["second"], strict=True))
    assert pairs == {("AD", "HC"), ("MCI", "HC"), ("AD", "MCI")}
    voxels = tables["voxel_group_comparison"].set_index(["first", "second"])
    assert voxels.loc[("AD", "HC"), "significant_bonferroni"] > 0
    glob = tables["global_group_comparison"]
    assert set(glob["first"]) == {"AD", "MCI"} and (glob["d"].abs() < 5).all()


def test_controls_under_the_age_limit_stay_out_of_the_comparisons(analysed):
    tables, *_ = analysed
    row = tables["roi_group_comparison"].query("first == 'AD' and second == 'HC'").iloc[0]
    n_old = 30 - int(np.sum(np.linspace(22, 84, 30).round(1) < 60))
    assert row["n_second"] == n_old and row["n_first"] == 8


def test_icc_maps_rank_test_retest_above_between_site(analysed):
    tables, maps, folds, out = analysed
    icc = tables["icc"].set_index("kind")
    assert icc.loc["test-retest", "pairs"] == 4 and icc.loc["between-site", "pairs"] == 4
    assert icc.loc["test-retest", "median"] > 0.9 > icc.loc["between-site", "median"]
    assert icc.loc["test-retest", "p2.5"] <= icc.loc["test-retest", "median"]
    # one voxel of the map equals ICC(2,1) of that voxel's ratings
    image = nib.load(statmap_path(out, "icc-test-retest", "icc")).get_fdata()
    repeat = folds[folds["scan_id"].str.endswith("ses-2") & (folds["site"] == "s1")]
    ratings = np.array(
        [
            [maps.read(f"{p}_ses-1")[3, 3, 2], maps.read(f"{p}_ses-2")[3, 3, 2]]
            for p in repeat["participant_id"]
        ]
    )
    assert image[3, 3, 2] == pytest.approx(float(icc_2_1(ratings)), rel=1e-5)


def test_tissue_icc_reads_the_input_arrays_of_the_same_pairs(analysed, tmp_path):
    _, maps, folds, _ = analysed
    # arrays whose GM + WM is each scan's corrected map, cropped to the brain's box
    crop = (slice(1, 7), slice(1, 7), slice(1, 5))
    index = pd.DataFrame({"row": range(len(folds)), "scan_id": folds["scan_id"]})
    index = index.assign(crop_x="1:7", crop_y="1:7", crop_z="1:5")
    arrays = np.stack(
        [np.stack([0.25, 0.75])[:, None, None, None] * maps.read(s)[crop] for s in folds["scan_id"]]
    )
    table = icc_tables(
        scans_with_maps(folds, maps.maps_dir),
        maps,
        tmp_path,
        tissue=lambda scan_id: tissue_map(arrays, index, scan_id, maps.brain.shape),
    ).set_index(["kind", "map"])
    assert len(table) == 4
    for kind in ("test-retest", "between-site"):
        model, inputs = table.loc[(kind, "brainPADcorrected")], table.loc[(kind, "tissue")]
        assert inputs["voxels"] == model["voxels"] == maps.brain.sum()
        assert inputs[["median", "p2.5", "p97.5"]].to_numpy() == pytest.approx(
            model[["median", "p2.5", "p97.5"]].to_numpy(), abs=1e-5
        )
    assert not any(tmp_path.glob("*tissue*"))  # the inputs' ICC is a table row, not a map


def test_tissue_map_places_the_crop_on_the_template_grid():
    arrays = np.arange(2 * 3 * 2 * 2 * 1, dtype=np.float32).reshape(2, 3, 2, 2, 1)
    index = pd.DataFrame({"row": [0, 1], "scan_id": ["a", "b"]})
    index = index.assign(crop_x="1:3", crop_y="0:2", crop_z="2:3")
    full = tissue_map(arrays, index, "b", (4, 2, 3))
    np.testing.assert_array_equal(full[1:3, 0:2, 2:3], arrays[1, 0] + arrays[1, 1])
    assert np.isnan(full[0]).all() and np.isnan(full[:, :, :2]).all()
    with pytest.raises(KeyError, match="scan 'c' is not in the cohort arrays"):
        tissue_map(arrays, index, "c", (4, 2, 3))


def test_roi_volume_correlates_negatively_with_its_brain_pad(analysed):
    tables, *_ = analysed
    r = tables["roi_volume_correlation"].set_index("roi")
    assert r.loc["Left_Hippocampus", "r"] < -0.8
    assert r.loc["Left_Hippocampus", "tissue"] == "GM"
    # calibration controls are out; one scan each: 8 test + 16 train
    assert r.loc["Left_Hippocampus", "n"] == 24


def test_local_accuracy_uses_raw_maps_of_the_healthy_test_set(analysed, local_maps_cohort):
    tables, maps, folds, _ = analysed
    test = folds[folds["role"] == "test"]
    errors = [
        np.nanmean(np.abs(maps.read(s, "brainage")[maps.brain] - age))
        for s, age in zip(test.scan_id, test.age, strict=True)
    ]
    acc = tables["accuracy"].iloc[0]
    assert acc["n"] == 8
    assert acc["median_voxel_mae"] == pytest.approx(np.median(errors))
    assert acc["floor_mae"] == pytest.approx(1.0)


def validate(mean_maps, tables, cohort, image_volumes=None, reliability=None):
    """:func:`truth_validation` of ``mean_maps`` against the planted cohort's truth."""
    mask = nib.load(cohort["mask"])
    return truth_validation(
        mean_maps,
        tables["roi_group_comparison"],
        mask,
        cohort["truth"],
        "HC",
        image_volumes=image_volumes,
        reliability=reliability,
    )


def test_truth_validation_recovers_the_planted_map(analysed, local_maps_cohort):
    tables, _maps, _, out = analysed
    mean_maps = read_mean_maps(out)
    assert set(mean_maps) == {"HC", "AD", "MCI"}
    table = validate(mean_maps, tables, local_maps_cohort).set_index("group")
    assert list(table.index) == ["AD"]  # MCI has no true map; HC is the reference
    assert table.loc["AD", "map_vs_truth_r"] > 0.8
    assert table.loc["AD", "map_vs_truth_roi_r"] > 0.9  # three regions, one affected
    # exact volumes with 1 % anatomical noise: the ceiling is near 1
    assert table.loc["AD", "volumetric_ceiling_r"] > 0.95
    assert table.loc["AD", "volumetric_ceiling_roi_r"] > 0.95
    assert table.loc["AD", "top5_rois"].startswith("Left_Hippocampus")
    assert table.loc["AD", "top5_truly_affected"] == 1
    assert table.loc["AD", "affected_rois"] == 1


def test_split_half_reliability_follows_signal_and_noise():
    """A fixed pattern (variance 1 over voxels) plus independent noise of SD sigma in each
    of n maps: the mean map's reliability is 1 / (1 + sigma^2 / n)."""
    rng = np.random.default_rng(8)
    pattern = rng.normal(size=20_000)
    for n, sigma in [(20, 3.0), (12, 1.0)]:
        maps = pattern + rng.normal(0, sigma, (n, pattern.size))
        expected = 1 / (1 + sigma**2 / n)
        assert split_half_reliability(maps, seed=1) == pytest.approx(expected, abs=0.02)
    noise = rng.normal(size=(16, 20_000))
    assert abs(split_half_reliability(noise)) < 0.05
    maps = pattern + rng.normal(0, 1, (10, pattern.size))
    maps[3, :100] = np.nan  # voxels missing in a scan are left out
    assert np.isfinite(split_half_reliability(maps))
    assert np.isnan(split_half_reliability(maps[:3]))  # too few scans to split


def test_group_reliabilities_read_the_patients_maps(analysed, local_maps_cohort):
    tables, maps, folds, out = analysed
    reliability = group_reliabilities(folds, local_maps_cohort["maps"], maps.brain, "HC", 0)
    assert set(reliability) == {"AD", "MCI"}
    brain_maps = stacked(maps, folds, "AD")[:, maps.brain]
    assert reliability["AD"] == pytest.approx(split_half_reliability(brain_maps, 0))
    table = validate(read_mean_maps(out), tables, local_maps_cohort, reliability=reliability)
    assert table.loc[0, "map_reliability"] == reliability["AD"]


def test_regional_excess_age_recovers_the_acceleration_despite_head_size():
    """Noise-free volumes: the excess age is the acceleration, though patients' heads are
    smaller (which unadjusted would look like ageing everywhere); a region that does not
    age is left out."""
    rng = np.random.default_rng(3)
    people = pd.DataFrame(
        {
            "age": rng.uniform(20, 90, 40),
            "group": ["HC"] * 30 + ["AD"] * 10,
            "head_scale": np.r_[rng.normal(1.0, 0.03, 30), rng.normal(0.96, 0.03, 10)],
        }
    )
    acceleration = np.array([8.0, 3.0, 0.0])
    rates = np.array([-0.005, -0.002, 0.0])
    local_age = people["age"].to_numpy()[:, None] + np.outer(people["group"] == "AD", acceleration)
    log_volume = (
        np.log(3000.0) + rates * local_age + 3 * np.log(people["head_scale"].to_numpy())[:, None]
    )
    volumes = pd.DataFrame(np.exp(log_volume), columns=["a", "b", "static"])
    excess = regional_excess_age(volumes, people, "AD", "HC")
    assert list(excess.index) == ["a", "b"]
    np.testing.assert_allclose(excess.to_numpy(), acceleration[:2], atol=1e-6)


def arrays_holding_the_true_volumes(cohort, out_dir):
    """Cohort arrays (GM 70 %, WM 30 %) spreading each participant's true regional volume
    evenly over its region, and their index; repeat scans hold zeros (only first scans are
    measured)."""
    mask = nib.load(cohort["mask"])
    folds = pd.read_csv(cohort["folds"], sep="\t")
    true = pd.read_csv(cohort["truth"] / "roi_volumes.tsv", sep="\t").set_index("participant_id")
    atlas = np.asarray(nib.load(cohort["atlas"]).dataobj) * (np.asarray(mask.dataobj) > 0)
    voxel_mm3 = 4.0**3
    arrays = np.zeros((len(folds), 2, *atlas.shape), np.float32)
    for row, scan in enumerate(folds.itertuples()):
        if scan.scan_id.endswith("ses-1"):
            for label, name in enumerate(LOCAL_REGIONS, start=1):
                density = true.loc[scan.participant_id, name] / ((atlas == label).sum() * voxel_mm3)
                arrays[row, :, atlas == label] = [0.7 * density, 0.3 * density]
    index = pd.DataFrame({"row": range(len(folds)), "scan_id": folds["scan_id"]})
    index = index.assign(crop_x="0:8", crop_y="0:8", crop_z="0:6")
    np.save(out_dir / "volumes.npy", arrays)
    index.to_csv(out_dir / "index.tsv", sep="\t", index=False)
    return arrays, index, folds, true


def test_image_volumes_of_maps_holding_the_true_volumes_give_the_volumetric_ceiling(
    analysed, local_maps_cohort, tmp_path
):
    tables, _maps, _, out = analysed
    arrays, index, folds, true = arrays_holding_the_true_volumes(local_maps_cohort, tmp_path)
    mask = nib.load(local_maps_cohort["mask"])
    measured = image_regional_volumes(arrays, index, folds, mask, local_maps_cohort["truth"])
    assert list(measured.columns) == LOCAL_REGIONS
    assert len(measured) == folds["participant_id"].nunique()  # first scans only
    np.testing.assert_allclose(measured.to_numpy(), true.loc[measured.index].to_numpy(), rtol=1e-5)
    table = validate(read_mean_maps(out), tables, local_maps_cohort, measured).iloc[0]
    for kind in ("r", "roi_r"):
        ceiling = table[f"volumetric_ceiling_{kind}"]
        assert table[f"image_ceiling_{kind}"] == pytest.approx(ceiling, abs=1e-6)


def test_image_ceiling_falls_with_noise_in_the_maps(analysed, local_maps_cohort, tmp_path):
    tables, _maps, _, out = analysed
    arrays, index, folds, _ = arrays_holding_the_true_volumes(local_maps_cohort, tmp_path)
    # tissue noise of 10 % per scan and region, as large as the AD effect (8 y at 0.5 %/y)
    atlas = np.asarray(nib.load(local_maps_cohort["atlas"]).dataobj)
    noise = np.random.default_rng(5).lognormal(0, 0.1, (len(arrays), atlas.max() + 1))
    noisy = arrays * noise[:, atlas][:, None]
    mask = nib.load(local_maps_cohort["mask"])
    measured = image_regional_volumes(noisy, index, folds, mask, local_maps_cohort["truth"])
    table = validate(read_mean_maps(out), tables, local_maps_cohort, measured).iloc[0]
    assert table["image_ceiling_r"] < table["volumetric_ceiling_r"] - 0.1


def test_truth_validation_finds_no_pattern_in_noise(analysed, local_maps_cohort):
    tables, maps, _, _ = analysed
    rng = np.random.default_rng(0)
    noise = {"AD": np.where(maps.brain, rng.normal(0, 1, maps.brain.shape), np.nan)}
    table = validate(noise, tables, local_maps_cohort)
    assert abs(table.loc[0, "map_vs_truth_r"]) < 0.4


def test_local_commands_write_tables_maps_and_figure(local_maps_cohort, tmp_path):
    c = local_maps_cohort
    statmaps, tables = tmp_path / "statmaps", tmp_path / "stats"
    common = ["--mask", str(c["mask"]), "--control-group", "HC"]
    arrays_holding_the_true_volumes(c, tmp_path)
    images = ["--volumes", str(tmp_path / "volumes.npy"), "--index", str(tmp_path / "index.tsv")]
    assert (
        main(
            [
                "local-stats",
                "--folds", str(c["folds"]),
                "--maps-dir", str(c["maps"]),
                "--atlas", str(c["atlas"]),
                "--labels", str(c["labels"]),
                "--roi-volumes", str(c["roi_volumes"]),
                "--truth", str(c["truth"] / "subjects.tsv"),
                "--statmaps-dir", str(statmaps),
                "--out-dir", str(tables),
                *images,
                *common,
            ]
        )
        == 0
    )  # fmt: skip
    names = {p.stem for p in tables.glob("*.tsv")}
    assert names == {
        "roi_brain_pad",
        "roi_volume_correlation",
        "global_group_comparison",
        "roi_group_comparison",
        "voxel_group_comparison",
        "icc",
        "accuracy",
    }
    truth_table = tmp_path / "truth.tsv"
    assert (
        main(
            [
                "local-truth",
                "--statmaps-dir", str(statmaps),
                "--roi-comparison", str(tables / "roi_group_comparison.tsv"),
                "--truth-dir", str(c["truth"]),
                "--out", str(truth_table),
                *common,
            ]
        )
        == 0
    )  # fmt: skip
    icc = pd.read_csv(tables / "icc.tsv", sep="\t")
    assert set(zip(icc["kind"], icc["map"], strict=True)) == {
        (kind, name)
        for kind in ("test-retest", "between-site")
        for name in ("brainPADcorrected", "tissue")
    }
    assert pd.read_csv(truth_table, sep="\t")["group"].tolist() == ["AD"]
    truth_args = [
        "local-truth",
        "--statmaps-dir", str(statmaps),
        "--roi-comparison", str(tables / "roi_group_comparison.tsv"),
        "--truth-dir", str(c["truth"]),
        "--out", str(truth_table),
        *common,
    ]  # fmt: skip
    assert main([*truth_args, *images, "--folds", str(c["folds"])]) == 0
    assert pd.read_csv(truth_table, sep="\t")["image_ceiling_r"].iloc[0] > 0.95
    assert main([*truth_args, *images]) == 2  # the image ceiling needs the folds too
    maps_args = ["--maps-dir", str(c["maps"])]
    assert main([*truth_args, *maps_args, "--folds", str(c["folds"])]) == 0
    row = pd.read_csv(truth_table, sep="\t").iloc[0]
    assert 0 < row["map_reliability"] <= 1
    assert row["noise_ceiling_r"] == pytest.approx(np.sqrt(row["map_reliability"]))
    assert row["noise_ceiling_r"] >= row["map_vs_truth_r"]
    assert main([*truth_args, *maps_args]) == 2  # the groups come from the folds
    figure = tmp_path / "local.png"
    args = ["local-figure", "--statmaps-dir", str(statmaps), "--out", str(figure)]
    args += ["--template", str(c["mask"]), "--control-group", "HC"]  # any image on the grid
    example = ["--maps-dir", str(c["maps"]), "--folds", str(c["folds"])]
    assert main([*args, *example, "--truth-dir", str(c["truth"])]) == 0
    assert figure.stat().st_size > 10_000


def test_a_mask_on_another_grid_is_refused(local_maps_cohort, tmp_path):
    c = local_maps_cohort
    other = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((5, 5, 5), np.uint8), np.eye(4)), other)
    with pytest.raises(ValueError, match=r"atlas grid .* differs from the brain mask"):
        MapSet.load(c["maps"], other, c["atlas"], c["labels"])


def test_scans_without_maps_are_left_out(local_maps_cohort, tmp_path):
    from brainpad.local.statistics import scans_with_maps

    folds = pd.read_csv(local_maps_cohort["folds"], sep="\t")
    extra = folds.iloc[:1].assign(scan_id="sub-999_ses-1", participant_id="sub-999")
    kept = scans_with_maps(pd.concat([folds, extra]), local_maps_cohort["maps"])
    assert "sub-999_ses-1" not in set(kept["scan_id"]) and len(kept) == len(folds)
    assert map_paths(local_maps_cohort["maps"], "sub-000_ses-1")["brainage"].is_file()
