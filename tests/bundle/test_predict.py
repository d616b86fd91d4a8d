"""``brainpad predict``'s guards: versions, inputs, and the warnings a scan can earn.

The whole path (preprocessing to brain-PAD, reproducing the workflow) is tested on the
tiny workflow run in ``tests/workflow/test_workflow.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainpad.bundle import BundleError, check_versions, scan_geometry, sha256
from brainpad.bundle.predict import Bundle, ensemble_row
from brainpad.bundle.scans import ScanInput, check_scans, scan_warnings, scans_from_files
from brainpad.cli import main
from brainpad.inputs.errors import InputError

MODELS = ["ridge_roi", "cnn3d-t1w-1", "cnn3d-t1w-2", "vgg3d-flair"]


def nifti(path: Path, shape=(20, 24, 20), zooms=(1.0, 1.0, 1.0)) -> Path:
    """A small non-empty image with the given voxel size."""
    image = nib.Nifti1Image(np.ones(shape, np.float32), np.diag([*zooms, 1.0]))
    nib.save(image, path)
    return path


@pytest.fixture
def bundle(tmp_path) -> Bundle:
    """A bundle's description and fits, as :class:`Bundle` holds them (no files needed)."""
    description = {
        "base_models": {m: [0, 1] for m in MODELS},
        "training_cohort": {"training_age_range": [30.0, 80.0]},
        "scan_geometry": {
            "voxel_mm": [[1, 1, 1], [1.2, 1.2, 1.2]],
            "fov_mm": [[200] * 3, [260] * 3],
        },
        "settings": {"seed": 1},
    }
    fits = {
        "stacking": {
            "sub_ensembles": {
                "cnn3d-t1w": {"weights": {"cnn3d-t1w-1": 0.5, "cnn3d-t1w-2": 0.5}, "intercept": 0.0}
            },
            "weights": {"ridge_roi": 0.5, "cnn3d-t1w": 0.25, "vgg3d-flair": 0.25},
            "intercept": 1.0,
        },
        "bias": {
            key: {"alpha": -0.2, "beta": 10.0, "n": 20}
            for key in ["ensemble", *(f"_{m}" for m in [*MODELS, "cnn3d-t1w"])]
        },
        "interval": {"q": 2.0, "offset": 1.0, "n": 20, "coverage": 0.95, "spread_limit": 6.0},
    }
    return Bundle(tmp_path, description, fits)


def predictions(values: dict[str, list[float]]) -> pd.DataFrame:
    rows = [
        {"model": m, "fold": k, "predicted": v}
        for m, vs in values.items()
        for k, v in enumerate(vs)
    ]
    return pd.DataFrame(rows)


def test_a_scan_gets_the_stacked_age_its_interval_and_corrected_brain_pad(bundle):
    table = predictions(
        {
            "ridge_roi": [50, 52],
            "cnn3d-t1w-1": [60, 60],
            "cnn3d-t1w-2": [58, 62],
            "vgg3d-flair": [40, 44],
        }
    )
    row = ensemble_row(bundle, table, age=50.0)
    # base = fold means 51, 60, 60, 42; sub-ensemble 60; top 1 + 25.5 + 15 + 10.5
    assert row["pred_cnn3d-t1w"] == pytest.approx(60.0)
    assert row["brain_age"] == pytest.approx(52.0)
    # per fold SD over the 4 models, averaged over the 2 folds
    spread = np.mean([np.std([50, 60, 58, 40], ddof=1), np.std([52, 60, 62, 44], ddof=1)])
    assert row["spread"] == pytest.approx(spread)
    assert row["brain_age_high"] - row["brain_age"] == pytest.approx(2.0 * (spread + 1.0))
    assert row["brain_pad"] == pytest.approx(2.0)
    assert row["brain_pad_corrected"] == pytest.approx(2.0 - (-0.2 * 50 + 10))
    assert "brain_pad_corrected_vgg3d-flair" in row
    no_age = ensemble_row(bundle, table, age=None)  # brain age and interval, no brain-PAD
    assert no_age["brain_age"] == pytest.approx(52.0) and no_age["brain_age_low"] < 52.0
    assert np.isnan(no_age["brain_pad"]) and np.isnan(no_age["brain_pad_corrected_ridge_roi"])


@pytest.mark.parametrize(
    ("brain_age", "plausible"), [(-23.0, False), (5.0, False), (10.5, True), (99.0, True),
                                 (101.0, False)],
)  # fmt: skip
def test_a_brain_age_far_outside_the_training_ages_is_called_implausible(
    bundle, brain_age, plausible
):
    """Training ages 30-80: below 0 or more than 20 y outside them is implausible."""
    from brainpad.bundle.apply import describe_row
    from brainpad.bundle.predict import implausible_age

    reason = implausible_age(bundle, brain_age)
    assert (reason is None) is plausible
    row = {"scan_id": "sub-1", "brain_age": brain_age, "brain_age_low": brain_age - 9,
           "brain_age_high": brain_age + 9, "age": None, "plausible": plausible}  # fmt: skip
    assert describe_row(row).endswith("IMPLAUSIBLE") is not plausible
    if not plausible:
        assert reason.startswith(f"IMPLAUSIBLE brain age {brain_age:.1f} y (the bundle was "
                                 "trained on ages 30-80)")  # fmt: skip


def test_the_recalibration_summary_of_scans_without_ages_is_empty():
    """``brainpad predict`` without --age: no control has a brain-PAD, and the summary says
    so with empty cells (once a KeyError after the brain ages were printed)."""
    from brainpad.bundle.recalibrate import recalibration_summary

    table = pd.DataFrame({"scan_id": ["a"], "participant_id": ["sub-1"], "site": ["s"],
                          "group": ["HC"], "brain_age": [40.0]})  # fmt: skip
    summary = recalibration_summary(table, "HC").set_index("site")
    assert summary.loc["all", "n_controls"] == 1
    assert summary[["mean_corrected", "mean_recalibrated"]].isna().all().all()


def test_each_untrustworthy_scan_is_named_with_what_to_check(bundle, tmp_path):
    usual = nifti(tmp_path / "usual.nii.gz", (200, 240, 200))
    assert scan_warnings(bundle, usual, 50.0, {"passed": True}, 2.0) == []
    coarse = nifti(tmp_path / "coarse.nii.gz", (50, 60, 50), (4.0, 4.0, 4.0))
    found = scan_warnings(bundle, coarse, 90.0, {"passed": False, "reasons": ["SNR 3 < 8"]}, 9.0)
    assert len(found) == 4
    assert "age 90 is outside the training ages 30-80" in found[0]
    assert "QC failed (SNR 3 < 8): look at the QC montage" in found[1]
    assert "voxel size [4.0, 4.0, 4.0] mm is far from the training scans'" in found[2]
    assert "models disagree far beyond their training spread (9.0 y > 6.0 y)" in found[3]
    small = nifti(tmp_path / "small.nii.gz", (100, 120, 100))  # 1 mm, a 10 cm field of view
    assert "field of view" in " ".join(scan_warnings(bundle, small, 50.0, {}, 1.0))


def test_scan_geometry_sorts_the_axes(tmp_path):
    geometry = scan_geometry(
        [nifti(tmp_path / "a.nii.gz", (10, 20, 30), (2.0, 1.0, 1.0)), nifti(tmp_path / "b.nii")]
    )
    assert geometry["voxel_mm"] == [[1.0, 1.0, 1.0], [1.0, 1.0, 2.0]]
    assert geometry["fov_mm"] == [[20.0, 20.0, 24.0], [20.0, 20.0, 30.0]]


def test_bad_inputs_stop_before_any_preprocessing(bundle, tmp_path):
    t1w = nifti(tmp_path / "sub-01_ses-1_T1w.nii.gz")
    scans = scans_from_files([t1w], age=[50.0], sex=["F"])
    assert scans == [ScanInput("sub-01_ses-1", t1w, None, 50.0, "F")]
    with pytest.raises(InputError, match=r"the bundle's models read FLAIR.*give --flair"):
        check_scans(bundle, scans)
    empty = tmp_path / "empty.nii.gz"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty.nii.gz"):
        check_scans(bundle, scans_from_files([t1w], flair=[empty]))
    with pytest.raises(InputError, match=r"--age: 2 values for 1 T1w scans; give one per scan"):
        scans_from_files([t1w], age=[50.0, 60.0])
    other = nifti(tmp_path / "scan.nii")
    assert scans_from_files([other])[0].scan_id == "scan"


def test_a_bundle_from_other_software_versions_is_refused_unless_allowed(tmp_path):
    root = tmp_path / "bundle"
    root.mkdir()
    description = {"format": 1, "software": {"brainpad": "0.0.1", "torch": "1.0.0"}}
    (root / "bundle.json").write_text(json.dumps(description))
    manifest = pd.DataFrame(
        {"path": ["bundle.json"], "bytes": [1], "sha256": [sha256(root / "bundle.json")]}
    )
    manifest.to_csv(root / "manifest.tsv", sep="\t", index=False)
    with pytest.raises(BundleError, match=r"bundle.json: made with other software versions"):
        Bundle.open(root)
    with pytest.raises(BundleError, match=r"torch: bundle 1.0.0, installed .*--allow-other"):
        check_versions(description, root)
    assert len(check_versions(description, root, allow=True)) == 5  # every checked package
    assert main(["predict", "--bundle", str(root), str(tmp_path), "--out", str(tmp_path)]) == 2


def bundle_folder(root: Path, description: dict, fits: dict) -> Path:
    """A bundle folder with a bundle.json, a fits.json and their manifest."""
    (root / "ensemble").mkdir(parents=True)
    (root / "bundle.json").write_text(json.dumps(description))
    (root / "ensemble/fits.json").write_text(json.dumps(fits))
    files = ["bundle.json", "ensemble/fits.json"]
    manifest = pd.DataFrame(
        {"path": files, "bytes": 1, "sha256": [sha256(root / f) for f in files]}
    )
    manifest.to_csv(root / "manifest.tsv", sep="\t", index=False)
    return root


def test_a_bundle_of_another_format_or_without_an_interval_is_refused(bundle, tmp_path):
    from brainpad.bundle import software_versions

    current = {**bundle.description, "format": 1, "software": software_versions()}
    old = bundle_folder(tmp_path / "old", {**current, "format": 0}, bundle.fits)
    with pytest.raises(BundleError, match=r"bundle format 0, but this brainpad reads format 1"):
        Bundle.open(old)
    fits = {k: v for k, v in bundle.fits.items() if k != "interval"}
    early = bundle_folder(tmp_path / "early", current, fits)
    with pytest.raises(BundleError, match=r"fits.json: no calibrated interval .* export"):
        Bundle.open(early)
    assert Bundle.open(bundle_folder(tmp_path / "ok", current, bundle.fits)).fits == bundle.fits


def test_a_bids_directory_is_predicted_alone(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Bundle, "open", classmethod(lambda cls, root, allow=False: None))
    argv = ["predict", "--bundle", "b", str(tmp_path), "--age", "50", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "a BIDS directory is predicted on its own" in capsys.readouterr().err


def test_recalibration_needs_a_bids_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Bundle, "open", classmethod(lambda cls, root, allow=False: None))
    t1w = str(nifti(tmp_path / "sub-01_T1w.nii.gz"))
    argv = ["predict", "--bundle", "b", t1w, "--recalibrate", "controls", "--out", "o"]
    assert main(argv) == 2
    assert "--recalibrate controls needs a BIDS directory" in capsys.readouterr().err


def test_a_scan_without_flair_goes_through_the_t1w_only_head(bundle, tmp_path):
    t1w_models = ["ridge_roi", "cnn3d-t1w-1", "cnn3d-t1w-2"]
    bundle.fits["t1w_only"] = {
        "models": t1w_models,
        "stacking": {
            "sub_ensembles": bundle.fits["stacking"]["sub_ensembles"],
            "weights": {"ridge_roi": 0.5, "cnn3d-t1w": 0.5},
            "intercept": 0.0,
        },
        "bias": {k: v for k, v in bundle.fits["bias"].items() if "flair" not in k},
        "interval": {**bundle.fits["interval"], "q": 3.0},
    }
    assert bundle.for_scan(has_flair=True) is bundle
    head = bundle.for_scan(has_flair=False)
    assert head.head == "t1w_only" and head.models == t1w_models and "flair" not in head.inputs
    table = predictions({"ridge_roi": [50, 52], "cnn3d-t1w-1": [60, 60], "cnn3d-t1w-2": [58, 62]})
    row = ensemble_row(head, table, age=50.0)
    assert row["brain_age"] == pytest.approx(0.5 * 51 + 0.5 * 60)
    spread = np.mean([np.std([50, 60, 58], ddof=1), np.std([52, 60, 62], ddof=1)])
    assert row["brain_age_high"] - row["brain_age"] == pytest.approx(3.0 * (spread + 1.0))
    assert "pred_vgg3d-flair" not in row
    # a scan without FLAIR is accepted; a bundle without the head still refuses it
    scan = ScanInput("sub-1", nifti(tmp_path / "t1.nii.gz", (200, 240, 200)))
    check_scans(bundle, [scan])
    del bundle.fits["t1w_only"]
    with pytest.raises(InputError, match="no T1w-only head, but this scan has no FLAIR"):
        check_scans(bundle, [scan])
    with pytest.raises(BundleError, match="has no T1w-only head"):
        bundle.t1w_only()
