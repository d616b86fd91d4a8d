"""Snakemake end to end on a tiny simulated cohort, plus lint and failure behaviour."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from bids_names import dataset_problems
from brainpad.paths import map_paths
from conftest import (
    N_SCANS,
    OFFLINE_SITE,
    REPO,
    SNAKEMAKE,
    TINY_BASE_MODELS,
    TINY_CONFIG,
    snakemake,
)

pytestmark = pytest.mark.workflow


def test_lint_is_clean():
    result = subprocess.run([*SNAKEMAKE, "--lint"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def test_dry_run_shows_the_dag(tmp_path):
    result = snakemake(tmp_path, TINY_CONFIG, "-n")
    assert result.returncode == 0, result.stderr
    assert "simulate_cohort" in result.stdout and "validate_inputs" in result.stdout


def test_dry_run_with_preprocessing_batches(tmp_path):
    config = {**TINY_CONFIG, "preprocess": {**TINY_CONFIG["preprocess"], "batches": 3}}
    result = snakemake(tmp_path, config, "-n", "-p")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^preprocess_batch\s+3$", result.stdout, flags=re.MULTILINE)
    assert "preprocess_t1w" not in result.stdout
    assert "brainpad preprocess-batch --scans" in result.stdout
    assert "results/preproc/batches/batch-000_qc.tsv" in result.stdout


def test_tiny_workflow_makes_a_validated_manifest(tiny_run):
    manifest = pd.read_csv(tiny_run / "results/manifest.tsv", sep="\t")
    assert len(manifest) == 2 * N_SCANS  # T1w and FLAIR
    assert set(manifest["modality"]) == {"T1w", "FLAIR"}
    assert manifest["path"].map(lambda p: (tiny_run / p).is_file()).all()
    assert (tiny_run / "results/simulated/derivatives/simulation/truth.json").is_file()
    assert (tiny_run / "results/logs/simulate_cohort.log").stat().st_size > 0
    assert (tiny_run / "results/benchmarks/simulate_cohort.tsv").is_file()


def test_preprocessing_and_folds(tiny_run):
    qc = pd.read_csv(tiny_run / "results/preproc/qc.tsv", sep="\t")
    assert len(qc) == N_SCANS and qc["passed"].all()
    folds = pd.read_csv(tiny_run / "results/folds.tsv", sep="\t")
    assert len(folds) == N_SCANS
    roles = {"train", "calibration", "test", "unlabelled"}
    assert set(folds.loc[folds.group == "HC", "role"]) == roles
    unlabelled = folds[folds["role"] == "unlabelled"]  # the control whose age is withheld
    assert len(unlabelled) == 1 and unlabelled["age"].isna().all()
    assert (folds.loc[folds.group != "HC", "role"] == "clinical").all()
    assert folds.groupby("participant_id")["role"].nunique().max() == 1  # repeats share a role
    volumes = np.load(tiny_run / "results/arrays/volumes.npy", mmap_mode="r")
    assert volumes.shape[:2] == (N_SCANS, 2) and volumes.dtype == np.float16
    index = pd.read_csv(tiny_run / "results/arrays/index.tsv", sep="\t")
    assert index["scan_id"].tolist() == folds["scan_id"].tolist()
    rois = pd.read_csv(tiny_run / "results/regions/roi_volumes.tsv", sep="\t")
    assert len(rois) == N_SCANS and rois.shape[1] == 1 + 3 * 113
    assert (rois["GM_Left_Hippocampus"] > 0).all()


def test_results_are_a_bids_derivatives_dataset(tiny_run):
    """results/preproc/ and results/maps/scans/ are BIDS-derivatives datasets: described,
    each file in sub-*/[ses-*/]anat/ and valid by the BIDS schema (or in .bidsignore), and
    a sidecar beside every image on the template grid."""
    preproc, maps = tiny_run / "results/preproc", tiny_run / "results/maps/scans"
    description = json.loads((preproc / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "brainpad"
    assert description["SourceDatasets"][0]["URL"].endswith("/results/simulated")
    maps_description = json.loads((maps / "dataset_description.json").read_text())
    assert maps_description["DatasetLinks"]["preproc"] == preproc.resolve().as_uri()
    assert dataset_problems(preproc) == [] and dataset_problems(maps) == []
    files = [p for p in preproc.glob("sub-*/ses-*/anat/*") if p.is_file()]
    assert len(files) >= 10 * N_SCANS
    images = [p for p in files if "_space-" in p.name and p.name.endswith(".nii.gz")]
    images += list(maps.glob("sub-*/ses-*/anat/*_map.nii.gz"))
    assert len(images) >= 4 * N_SCANS  # GM, WM, CSF and T1w (and FLAIR), and the maps
    for image in images:
        sidecar = json.loads(image.with_name(image.name.replace(".nii.gz", ".json")).read_text())
        assert sidecar["SpatialReference"] == "MNI152NLin2009aSym"
        assert sidecar["Resolution"] == "4 mm isotropic"
        assert sidecar["Sources"][0].startswith(("bids:raw:sub-", "bids:preproc:sub-"))


def test_input_arrays_and_flair(tiny_run):
    for name in ("volumes_t1w", "slices_t1w", "volumes_flair", "slices_flair"):
        array = np.load(tiny_run / f"results/arrays/{name}.npy", mmap_mode="r")
        assert array.dtype == np.uint8 and array.shape[:2] == (N_SCANS, 1)
        assert 0.5 < np.percentile(array[0], 99.5) / 100 < 2.0  # ~1 at the top 1 %
    preproc = tiny_run / "results/preproc"
    flair = sorted(preproc.glob("sub-*/ses-*/anat/*_desc-affine_FLAIR.nii.gz"))
    assert len(flair) == N_SCANS
    qc = pd.read_csv(tiny_run / "results/preproc/qc.tsv", sep="\t")
    assert (qc["flair_similarity"] > 0.3).all()


def test_models_ensemble_stats_and_report(tiny_run):
    for model in TINY_BASE_MODELS:
        for fold in (0, 1):
            predictions = tiny_run / f"results/models/{model}/fold-{fold}/predictions.tsv"
            assert set(pd.read_csv(predictions, sep="\t")["set"]) == {"oof", "heldout"}
    state = torch.load(
        tiny_run / "results/models/cnn3d-cortex-2/fold-0/model.pt", weights_only=True
    )
    assert state["region"] == "cortex" and state["base_model"] == "cnn3d-cortex-2"
    table = pd.read_csv(tiny_run / "results/ensemble/brain_age.tsv", sep="\t")
    assert len(table) == N_SCANS - 1  # every scan passed QC; the unlabelled one has no age
    columns = [f"pred_{m}" for m in TINY_BASE_MODELS] + ["pred_cnn3d", "pred_cnn3d-cortex"]
    for column in [*columns, "brain_pad_corrected", "uncertainty", "uncertainty_cnn3d"]:
        assert np.isfinite(table[column]).all(), column
    fits = json.loads((tiny_run / "results/ensemble/fits.json").read_text())
    assert list(fits["stacking"]["weights"]) == [
        "ridge_roi", "vgg3d-t1w", "vgg3d-flair", "sfcn", "cnn3d", "cnn3d-cortex", "cnn2d",
        "diffae-t1w", "local_unet",
    ]  # fmt: skip
    assert list(fits["stacking"]["sub_ensembles"]) == ["cnn3d", "cnn3d-cortex"]
    healthy = table[table["role"].isin(["calibration", "train"])]  # global lines fitted on
    assert fits["bias"]["ensemble"]["n"] == healthy["participant_id"].nunique()
    accuracy = pd.read_csv(tiny_run / "results/stats/accuracy.tsv", sep="\t")
    assert accuracy["model"].tolist()[:7] == [
        "ensemble", "ridge_roi", "vgg3d-t1w", "vgg3d-flair", "sfcn", "cnn3d", "cnn3d-1",
    ]  # fmt: skip
    assert (accuracy["floor_mae"] > 0).all()  # the simulation's truth is in the report
    for name in ("accuracy_by_age_bin", "accuracy_by_site"):
        by = pd.read_csv(tiny_run / f"results/stats/{name}.tsv", sep="\t")
        assert set(by["model"]) == set(accuracy["model"])
    versus = pd.read_csv(tiny_run / "results/stats/ensemble_vs_base.tsv", sep="\t")
    assert versus["name"].tolist() == ["cnn3d", "cnn3d-cortex", "ensemble"]
    ks = pd.read_csv(tiny_run / "results/stats/model_distributions.tsv", sep="\t")
    assert (ks["reference"] == "diffae-t1w").all() and "ensemble" in set(ks["model"])
    assert {"AD", "HC (test)"} <= set(ks["group"])
    associations = pd.read_csv(tiny_run / "results/stats/associations.tsv", sep="\t")
    mmse = associations[associations["variable"] == "mmse"]
    assert (
        set(mmse["model"]) == {"ensemble", *TINY_BASE_MODELS} and (mmse["true_slope"] == -0.4).all()
    )
    windows = pd.read_csv(tiny_run / "results/stats/associations_by_age.tsv", sep="\t")
    assert {"age_low", "age_high", "p_bonferroni"} <= set(windows.columns)
    survival = pd.read_csv(tiny_run / "results/stats/survival.tsv", sep="\t")
    assert survival["model"].iloc[0] == "ensemble"  # one AD participant: too few to fit
    modality = pd.read_csv(tiny_run / "results/ensemble/modality_stacking.tsv", sep="\t")
    assert modality["model"].tolist() == ["t1w", "t1w + flair", "t1w + flair + sex"]
    for figure in (
        "predicted_vs_age",
        "brain_pad_by_group",
        "brain_pad_by_model",
        "associations",
        "uncertainty",
        "qc",
    ):
        assert (tiny_run / f"results/report/{figure}.png").stat().st_size > 10_000
    result = snakemake(tiny_run, TINY_CONFIG, "--report", "results/report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    html = (tiny_run / "results/report.html").read_text(errors="replace")
    # every figure the rules register with report() is produced and in the report
    registered = set(re.findall(r'"(results/report/\w+\.png)": \{"name"', html))
    assert {
        *(f"results/report/{name}.png" for name in ("predicted_vs_age", "qc_failed_montages")),
        "results/report/local_maps.png",
        "results/report/relevance.png",
        "results/report/diffae_reconstructions.png",
    } <= registered
    for figure in registered:
        assert (tiny_run / figure).stat().st_size > 2_000, figure
    assert "Headline figures" in html and "Cohort" in html and "Parameters" in html
    assert "predicted vs chronological age" in html and "brain-PAD by group" in html
    assert "multimodal stacking (study 4)" in html and "ensembles vs base models" in html
    assert "local brain-PAD maps" in html and "local maps vs truth" in html
    assert "relevance maps and their tests" in html and "relevance tests (TFCE, FWE)" in html
    assert "relevance in the truly ageing regions" in html


def test_the_report_renders_in_a_real_browser(tiny_run, tmp_path):
    from brainpad.report.screenshot import find_browser, screenshot

    if find_browser() is None:
        pytest.skip("no Chromium (make screenshot-deps installs Debian's)")
    report = tiny_run / "results/report.html"
    if not report.is_file():
        result = snakemake(tiny_run, TINY_CONFIG, "--report", "results/report.html")
        assert result.returncode == 0, result.stderr[-3000:]
    front = screenshot(report, tmp_path / "front.png")
    figure = screenshot(
        report, tmp_path / "figure.png", "Interpretability", "results/report/relevance.png"
    )
    images = [plt.imread(front), plt.imread(figure)]
    for image in images:
        assert image.shape[:2] == (1000, 1400) and image.std() > 0.05  # drawn, not blank
    assert np.abs(images[0] - images[1]).mean() > 0.01  # the figure page is another page


def test_relevance_maps_their_tests_and_truth(tiny_run):
    out = tiny_run / "results/interpret"
    scans = pd.read_csv(out / "scans.tsv", sep="\t")
    folds = pd.read_csv(tiny_run / "results/folds.tsv", sep="\t")
    # every scan that passed QC is explained by the networks that did not train on it:
    # vgg3d x 2 inputs, sfcn, cnn3d x 2 regions x 2 members
    assert set(scans["scan_id"]) == set(folds.loc[folds["qc_passed"], "scan_id"])
    assert (scans["models"] == 7).all()
    mask = nib.load(
        tiny_run / "results/templates/tpl-MNI152NLin2009aSym_res-4mm_desc-brain_mask.nii.gz"
    )
    brain = np.asarray(mask.dataobj) > 0
    for method in ("lrp", "gradcam"):
        signed = nib.load(out / method / "signed.nii.gz")
        assert signed.shape == (*mask.shape, len(scans))
        absolute = np.asarray(nib.load(out / method / "absolute.nii.gz").dataobj)
        assert (absolute[~brain] == 0).all()
        np.testing.assert_allclose(absolute[brain].mean(0), 1.0, rtol=0.05)  # averaged units
        models = sorted(p.name for p in (out / method).glob("model-*_mean_absolute.nii.gz"))
        assert len(models) == 7
    tests = pd.read_csv(out / "tests.tsv", sep="\t")
    assert set(tests["method"]) == {"lrp", "gradcam"}
    healthy = tests[tests["test"] == "healthy"]
    assert (healthy["n_perm"] == 10).all() and (healthy["min_p_fwe"] >= 1 / 11 - 1e-9).all()
    assert (out / "lrp/stat-healthy_t.nii.gz").is_file()
    truth = pd.read_csv(out / "truth.tsv", sep="\t")
    assert truth["map"].tolist()[:1] == ["all"] and truth["enrichment"].gt(0).all()
    assert (out / "truth_clusters.tsv").is_file() and (out / "clusters.tsv").is_file()
    assert (tiny_run / "results/report/relevance.png").stat().st_size > 10_000


def test_local_brain_age_maps(tiny_run):
    table = pd.read_csv(tiny_run / "results/ensemble/brain_age.tsv", sep="\t")
    mask = nib.load(
        tiny_run / "results/templates/tpl-MNI152NLin2009aSym_res-4mm_desc-brain_mask.nii.gz"
    )
    brain = np.asarray(mask.dataobj) > 0
    for row in table.itertuples():
        maps = map_paths(tiny_run / "results/maps/scans", row.scan_id)
        for kind in ("brainage", "brainPAD", "brainPADcorrected"):
            image = nib.load(maps[kind])
            assert image.shape == mask.shape
        data = image.get_fdata()
        assert np.isnan(data[~brain]).all() and np.isfinite(data[brain]).mean() > 0.95
        brain_age = nib.load(maps["brainage"])
        assert np.nanmean(brain_age.get_fdata()) == pytest.approx(row.pred_local_unet, rel=0.01)
    dependence = pd.read_csv(tiny_run / "results/maps/age_dependence.tsv", sep="\t")
    assert dependence["correction"].tolist() == [
        "raw",
        "global",
        "voxelwise_bins",
        "voxelwise_linear",
    ]
    # the schema default: study 1's age bins
    assert dependence.loc[dependence["applied"], "correction"].tolist() == ["voxelwise_bins"]
    # fitted on the calibration scans and the training controls' out-of-fold maps
    folds = pd.read_csv(tiny_run / "results/folds.tsv", sep="\t")
    roles = folds.drop_duplicates("participant_id")["role"]
    assert (dependence["calibration_n"] == roles.isin(["calibration", "train"]).sum()).all()


def test_local_statistics_and_truth_check(tiny_run):
    stats = tiny_run / "results/maps/stats"
    roi = pd.read_csv(stats / "roi_brain_pad.tsv", sep="\t")
    assert len(roi) == N_SCANS - 1 and roi.shape[1] == 6 + 113  # all but the unlabelled scan
    icc = pd.read_csv(stats / "icc.tsv", sep="\t")
    assert icc["kind"].tolist() == ["test-retest"] * 2 + ["between-site"] * 2
    assert icc["map"].tolist() == ["brainPADcorrected", "tissue"] * 2
    accuracy = pd.read_csv(stats / "accuracy.tsv", sep="\t")
    assert accuracy.loc[0, "median_voxel_mae"] > 0 and accuracy.loc[0, "floor_mae"] > 0
    truth = pd.read_csv(stats / "truth_validation.tsv", sep="\t")
    assert {
        "map_vs_truth_r",
        "map_vs_truth_roi_r",
        "volumetric_ceiling_r",
        "image_ceiling_r",
        "noise_ceiling_r",
        "planted_response_r",
        "planted_fwhm_mm",
        "resolution_ceiling_r",
    } <= set(truth.columns)
    planted = pd.read_csv(stats / "planted_response.tsv", sep="\t").set_index("group")
    assert planted.loc["AD", "scans"] >= 1 and np.isfinite(planted.loc["AD", "planted_gain"])
    means = sorted(p.name for p in (tiny_run / "results/maps/statmaps").glob("group-*"))
    assert "group-HC_stat-meanbrainPAD_map.nii.gz" in means
    assert (tiny_run / "results/report/local_maps.png").stat().st_size > 10_000


def dry_run_jobs(workdir, config) -> dict[str, str]:
    """Rule name -> job count of a dry run."""
    result = snakemake(workdir, config, "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.MULTILINE))
    counts.pop("total", None)
    return counts


def test_the_bundle_holds_every_base_model_of_every_fold(tiny_run):
    from brainpad.bundle import verify_bundle

    description = verify_bundle(tiny_run / "results/bundle")
    assert description["base_models"] == {m: [0, 1] for m in TINY_BASE_MODELS}
    assert description["settings"]["models"]["names"] == TINY_CONFIG["models"]["names"]
    fits = (tiny_run / "results/ensemble/fits.json").read_bytes()
    assert (tiny_run / "results/bundle/ensemble/fits.json").read_bytes() == fits
    assert set(json.loads(fits)) == {"stacking", "bias", "interval", "harmonise", "t1w_only"}
    for name in ("voxel_bias.nii.gz", "voxel_bias.json"):  # the local maps' correction
        saved = (tiny_run / "results/maps" / name).read_bytes()
        assert (tiny_run / "results/bundle/local" / name).read_bytes() == saved
    voxel, fov = description["scan_geometry"]["voxel_mm"], description["scan_geometry"]["fov_mm"]
    assert all(3 <= v <= 5 for v in voxel[0] + voxel[1])  # the tiny cohort's ~4 mm scans
    assert 100 < fov[0][0] <= fov[1][0]


def test_a_model_setting_reruns_that_model_and_what_reads_it(tiny_run):
    config = copy.deepcopy(TINY_CONFIG)
    config["models"]["vgg3d"]["max_epochs"] = 3
    assert dry_run_jobs(tiny_run, config) == {
        "train": "4",  # vgg3d's two inputs x two folds
        "ensemble": "1",
        "relevance": "1",
        "relevance_stats": "1",
        "relevance_figure": "1",
        "stats": "1",
        "report_figures": "1",
        "bundle": "1",
        "all": "1",
    }


def test_a_correction_setting_reruns_only_the_local_maps_and_their_statistics(tiny_run):
    config = copy.deepcopy(TINY_CONFIG)
    config.setdefault("debias", {})["voxel_method"] = "linear"
    assert dry_run_jobs(tiny_run, config) == {
        "local_maps": "1",
        "local_stats": "1",
        "local_figure": "1",
        "local_truth": "1",
        "bundle": "1",  # it records the settings
        "all": "1",
    }


FULL_DISK = """
import errno, os, runpy
runpy.run_path(os.environ["OFFLINE_SITECUSTOMIZE"])  # stay offline too
import pandas as pd

_to_csv = pd.DataFrame.to_csv


def to_csv(self, path=None, *args, **kwargs):  # half a table, then the disk is full
    if path is not None and os.environ["FULL_DISK_AT"] in str(path):
        with open(path, "w") as stream:
            stream.write("half a table")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return _to_csv(self, path, *args, **kwargs)


pd.DataFrame.to_csv = to_csv
"""


def test_a_job_that_fails_on_a_full_disk_fails_alone_and_leaves_nothing(tiny_run, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(FULL_DISK)
    env = {
        "PYTHONPATH": str(site),
        "OFFLINE_SITECUSTOMIZE": str(OFFLINE_SITE / "sitecustomize.py"),
        "FULL_DISK_AT": "results/stats/.accuracy.tsv",  # not maps/stats/accuracy.tsv
    }
    before = (tiny_run / "results/maps/stats/icc.tsv").stat().st_mtime_ns
    forced = ("--forcerun", "stats", "local_stats", "--keep-going")
    result = snakemake(tiny_run, TINY_CONFIG, *forced, env=env)
    assert result.returncode != 0
    log = (tiny_run / "results/logs/stats.log").read_text()
    assert "brainpad stats: system error: No space left on device" in log
    assert "fix the cause (free disk space, permissions) and re-run" in log
    assert "Traceback" not in log
    assert list((tiny_run / "results/stats").glob("*")) == []  # no table, whole or half
    assert (tiny_run / "results/maps/stats/icc.tsv").stat().st_mtime_ns > before  # ran alone
    assert snakemake(tiny_run, TINY_CONFIG).returncode == 0  # space freed: the re-run mends it
    assert (tiny_run / "results/stats/accuracy.tsv").is_file()


def test_second_run_has_nothing_to_do(tiny_run):
    result = snakemake(tiny_run, TINY_CONFIG, "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_the_time_profile_accounts_for_every_job(tiny_run):
    """benchmarks/demo_profile.py reads a finished run's log and benchmark files."""
    first = min((tiny_run / ".snakemake" / "log").glob("*.snakemake.log"))  # not later reruns
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "demo_profile.py"),
            "--workdir",
            str(tiny_run),
            "--log",
            str(first),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = {line.split("|")[1].strip(): line.split("|")[2:] for line in out.splitlines()[4:]}
    assert int(rows["preprocess_t1w"][0]) == N_SCANS
    assert rows["preprocess_t1w"][4].strip()  # CPU time from the benchmark files
    assert {"simulate_cohort", "train", "train_voxel", "report_figures"} <= set(rows)
