"""``brainpad predict`` with the tiny run's bundle: it reproduces the run and predicts a
BIDS dataset the bundle never saw; and the workflow's apply mode on a new cohort."""

from __future__ import annotations

import json
import re
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainpad.cli import main
from brainpad.paths import map_paths
from conftest import TINY_CONFIG, snakemake


def held_out_scan(results):
    """The tiny run's first healthy test scan (its brain-age row) and its T1w and FLAIR as
    `brainpad predict` arguments."""
    table = pd.read_csv(results / "ensemble/brain_age.tsv", sep="\t")
    scan = table[table["role"] == "test"].iloc[0]
    anat = results / "simulated" / scan.participant_id / f"ses-{scan.session}" / "anat"
    files = [str(anat / f"{scan.scan_id}_T1w.nii.gz"), "--flair",
             str(anat / f"{scan.scan_id}_FLAIR.nii.gz")]  # fmt: skip
    return scan, files


def test_predict_reproduces_the_runs_brain_age_of_a_held_out_scan(tiny_run, tmp_path, capsys):
    results = tiny_run / "results"
    scan, scan_files = held_out_scan(results)
    argv = [
        "predict", "--bundle", str(results / "bundle"), *scan_files, "--age", str(scan.age),
        "--sex", scan.sex, "--site", scan.site, "--harmonise", "--out", str(tmp_path / "out"),
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"{scan.scan_id}: brain age {scan.brain_age:.1f} y (95 % interval" in printed
    found = pd.read_csv(tmp_path / "out/predictions.tsv", sep="\t").iloc[0]
    compared = [c for c in found.index if c.startswith(("pred_", "brain_")) or c == "spread"]
    assert {"brain_pad_corrected", "brain_pad_unharmonised", "brain_age_low"} <= set(compared)
    assert len(compared) > 30  # every base model, sub-ensemble, the ensemble, raw and corrected
    for column in compared:
        assert found[column] == pytest.approx(scan[column], abs=1e-4), column
    # the local model's maps, voxelwise-corrected with the bundle's correction
    folder = tmp_path / "out" / scan.scan_id
    run_maps = map_paths(results / "maps/scans", scan.scan_id)
    for kind, theirs in run_maps.items():
        mine = np.asarray(nib.load(folder / theirs.name).dataobj)
        assert kind in theirs.name
        np.testing.assert_allclose(mine, np.asarray(nib.load(theirs).dataobj), atol=1e-4)
    assert (folder / f"{scan.scan_id}_desc-brainage_summary.png").stat().st_size > 10_000
    assert (folder / f"{scan.scan_id}_desc-qc_T1w.png").is_file()


def test_predict_without_an_age_gives_the_brain_age_and_no_brain_pad(tiny_run, tmp_path, capsys):
    results = tiny_run / "results"
    scan, scan_files = held_out_scan(results)
    argv = [
        "predict",
        "--bundle",
        str(results / "bundle"),
        *scan_files,
        "--site",
        scan.site,
        "--harmonise",
        "--out",
        str(tmp_path / "out"),
    ]  # fmt: skip  (the run harmonised the ROI volumes: without an age, by site alone)
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert f"{scan.scan_id}: brain age {scan.brain_age:.1f} y (95 % interval" in captured.out
    assert "brain-PAD" not in captured.out and "Traceback" not in captured.err
    found = pd.read_csv(tmp_path / "out/predictions.tsv", sep="\t").iloc[0]
    assert found["brain_age"] == pytest.approx(scan.brain_age, abs=1e-4)
    assert found["plausible"] and pd.isna(found["brain_pad"])
    assert pd.isna(found["brain_pad_corrected"])


def test_predict_runs_a_bids_dataset_the_bundle_never_saw(tiny_run, tiny_cohort, tmp_path, capsys):
    """Two participants of another simulated cohort (another seed): ages and FLAIR come
    from the dataset; every scan gets a brain age inside its interval's bounds."""
    bids = tmp_path / "new"
    bids.mkdir()
    shutil.copy(tiny_cohort / "dataset_description.json", bids)
    people = pd.read_csv(tiny_cohort / "participants.tsv", sep="\t").head(2)
    people.to_csv(bids / "participants.tsv", sep="\t", index=False)
    for pid in people["participant_id"]:
        shutil.copytree(tiny_cohort / pid, bids / pid)
    bundle = tiny_run / "results/bundle"
    argv = ["predict", "--bundle", str(bundle), str(bids), "--out", str(tmp_path / "o")]
    assert main([*argv, "--recalibrate", "controls"]) == 2  # two people: too few controls
    assert not (tmp_path / "o").exists()  # refused before anything ran
    # a site the bundle never saw is harmonised from 5 of its controls or not at all
    moved = people.assign(site=np.where(people.index == 0, "siteZ", people["site"]))
    moved.to_csv(bids / "participants.tsv", sep="\t", index=False)
    for pid in people["participant_id"]:
        (bids / pid / f"{pid}_sessions.tsv").unlink(missing_ok=True)  # the sites per session
    assert main([*argv, "--harmonise"]) == 2
    assert "site siteZ: " in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    people.to_csv(bids / "participants.tsv", sep="\t", index=False)
    assert main([*argv, "--harmonise"]) == 0  # sites the bundle saw: its own fits
    found = pd.read_csv(tmp_path / "o/predictions.tsv", sep="\t")
    assert found["brain_pad_unharmonised"].notna().all()
    assert main(argv) == 0
    found = pd.read_csv(tmp_path / "o/predictions.tsv", sep="\t")
    scans = sorted(p.name.removesuffix("_T1w.nii.gz") for p in bids.rglob("*_T1w.nii.gz"))
    assert sorted(found["scan_id"]) == scans
    ages = found["scan_id"].str.split("_").str[0].map(people.set_index("participant_id")["age"])
    np.testing.assert_allclose(found["age"], ages)
    assert (found["brain_age_low"] < found["brain_age"]).all()
    assert (found["brain_age"] < found["brain_age_high"]).all()
    assert found["brain_pad_corrected"].notna().all()
    # a changed bundle file is refused, naming it
    fits = json.loads((bundle / "ensemble/fits.json").read_text())
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    fits["interval"]["q"] /= 2  # narrower intervals, no checksum to match
    (copy / "ensemble/fits.json").write_text(json.dumps(fits))
    argv = ["predict", "--bundle", str(copy), str(bids), "--out", str(tmp_path / "x")]
    assert main(argv) == 2
    assert not (tmp_path / "x").exists()


def test_apply_mode_runs_a_new_cohort_through_snakemake_to_a_report(tiny_run, tmp_path):
    """The tiny bundle on a cohort of another seed at a site it never saw, recalibrated
    and harmonised from that site's controls: no model is trained, the statistics and
    report read the applied brain ages, and the bundle is left as it was."""
    from brainpad.bundle import verify_bundle

    bundle = tiny_run / "results/bundle"
    before = (bundle / "manifest.tsv").read_bytes()
    config = {**TINY_CONFIG, "bundle": str(bundle), "seed": 7, "recalibrate": "controls"}
    config["simulation"] = {**TINY_CONFIG["simulation"], "sites": [{"name": "siteNew"}]}
    config["harmonise"] = {"enabled": True, "min_site_controls": 3}
    workdir = tmp_path / "applied"
    workdir.mkdir()
    result = snakemake(workdir, config)
    assert result.returncode == 0, result.stderr[-3000:]
    ran = set(re.findall(r"^(?:local)?rule (\w+):", result.stderr + result.stdout, re.MULTILINE))
    assert "apply_bundle" in ran and not ran & {"train", "train_voxel", "ensemble", "bundle"}
    results = workdir / "results"
    table = pd.read_csv(results / "ensemble/brain_age.tsv", sep="\t")
    assert set(table["role"]) <= {"test", "clinical", "unlabelled"}  # unlabelled: no age
    assert table.loc[table["role"] == "unlabelled", "brain_pad"].isna().all()
    assert (table.loc[table["role"] == "test", "group"] == "HC").all()
    assert {"brain_age_low", "brain_pad_corrected", "brain_pad_bundle_corrected"} <= set(table)
    assert set(table["site"]) == {"siteNew"} and table["brain_pad_unharmonised"].notna().any()
    sites = pd.read_csv(results / "stats/harmonisation.tsv", sep="\t")
    assert sites.loc[sites["measure"] == "controls_mean", "after"].notna().all()
    accuracy = pd.read_csv(results / "stats/accuracy.tsv", sep="\t").set_index("model")
    controls = table.loc[table["role"] == "test", "participant_id"].nunique()
    assert accuracy.loc["ensemble", "n"] == controls
    assert 0 <= accuracy.loc["ensemble", "interval_coverage"] <= 1
    summary = pd.read_csv(results / "ensemble/recalibration.tsv", sep="\t").set_index("site")
    assert summary.loc["all", "n_controls"] >= 5
    scan = table.iloc[0]
    assert map_paths(results / "maps/scans", scan.scan_id)["brainPADcorrected"].is_file()
    assert (results / "report/predicted_vs_age.png").is_file()
    assert (results / "regions/roi_volumes.tsv").is_file()
    verify_bundle(bundle)
    assert (bundle / "manifest.tsv").read_bytes() == before


def test_predict_gives_a_real_head_a_brain_age_through_the_t1w_only_head(
    tiny_run, real_head, tmp_path, capsys
):
    """pycortex's 1 mm head, without FLAIR or age, through the tiny bundle (trained on
    simulated scans with FLAIR): it passes QC, gets the T1w-only head's brain age with its
    interval, and the output says plainly when that age is implausible."""
    out = tmp_path / "out"
    argv = ["predict", "--bundle", str(tiny_run / "results/bundle"), str(real_head),
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    row = pd.read_csv(out / "predictions.tsv", sep="\t").iloc[0]
    assert row["head"] == "t1w_only" and row["qc_passed"]
    assert row["brain_age_low"] < row["brain_age"] < row["brain_age_high"]
    assert pd.isna(row["brain_pad"]) and row["preprocess_seconds"] > 0
    assert "no FLAIR: the brain age is the bundle's T1w-only head's" in row["warnings"]
    assert ("IMPLAUSIBLE" in printed) is (not row["plausible"])
    assert row["plausible"] is np.bool_(True) or "IMPLAUSIBLE brain age" in row["warnings"]
    scan_id = row["scan_id"]
    assert (out / scan_id / f"{scan_id}_desc-brainage_summary.png").stat().st_size > 10_000
