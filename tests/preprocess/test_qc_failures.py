"""Failed acquisitions: the simulator plants them, the QC excludes each with its reason."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainpad.paths import scan_folder
from brainpad.preprocess import PreprocessOptions, preprocess_scan
from brainpad.report.figures import failed_montages
from brainpad.simulate import Settings, simulate_cohort
from brainpad.simulate.artefacts import ARTEFACTS, corrupt
from brainpad.simulate.cohort import plan_cohort

SIMULATION = {"n_subjects": 10, "voxel_size": 4.0, "n_test_retest": 0, "n_between_site": 0}
# the QC reason each artefact must produce (brainpad.preprocess.qc.qc_metrics)
EXPECTED = {
    "orientation": "the header's orientation is wrong",
    "truncation": "of the brain on the edge of the field of view",
    "ghosting": "ghost-to-signal ratio",
    "noise": "SNR",
}


def settings(artefacts=ARTEFACTS) -> Settings:
    sim = {**SIMULATION, "modalities": ["T1w"], "artefacts": list(artefacts)}
    return Settings.from_config({"seed": 5, "simulation": sim})


def test_artefacts_go_to_distinct_controls_and_leave_the_cohort_as_it_was():
    participants, sessions = plan_cohort(settings())
    plain_participants, plain_sessions = plan_cohort(settings(artefacts=()))
    pd.testing.assert_frame_equal(participants, plain_participants)
    pd.testing.assert_frame_equal(
        sessions.drop(columns="artefact"), plain_sessions.drop(columns="artefact")
    )
    planted = sessions[sessions["artefact"] != ""].merge(participants, on="participant_id")
    assert sorted(planted["artefact"]) == sorted(ARTEFACTS)
    assert (planted["group"] == "HC").all() and planted["participant_id"].is_unique


def test_too_few_controls_for_the_artefacts_is_an_error():
    sim = {**SIMULATION, "n_subjects": 3, "artefacts": list(ARTEFACTS)}
    with pytest.raises(ValueError, match=r"lists 4 artefacts but only \d controls"):
        plan_cohort(Settings.from_config({"seed": 5, "simulation": sim}))


def test_each_artefact_changes_the_image_as_described():
    rng = np.random.default_rng(0)
    data = rng.uniform(100, 200, (20, 24, 20)).astype(np.int16)
    affine = np.diag([-4.0, 4.0, 6.0, 1.0])  # LAS storage, z from -60 to 54 mm
    affine[:3, 3] = [40, -120, -60]
    img = nib.Nifti1Image(data, affine)
    flipped = corrupt(img, "orientation", rng)
    assert np.array_equal(np.asarray(flipped.dataobj), data)
    assert np.linalg.det(flipped.affine) == pytest.approx(-np.linalg.det(affine))
    cut = corrupt(img, "truncation", rng)
    assert cut.shape[2] < data.shape[2]
    top = cut.affine @ [0, 0, cut.shape[2] - 1, 1]
    assert top[2] <= 12.0 + 30.0  # the head centre (z 12 mm) + 30 mm
    assert np.array_equal(cut.affine[:3, :3], affine[:3, :3])
    ghost = np.asarray(corrupt(img, "ghosting", rng).dataobj).astype(float)
    expected = data + 0.5 * np.roll(data.astype(float), 12, axis=1)
    assert np.abs(ghost - expected).max() <= 0.5
    noisy = np.asarray(corrupt(img, "noise", rng).dataobj).astype(float)
    assert noisy.std() > 2 * data.std()
    with pytest.raises(ValueError, match="unknown artefact 'blur'"):
        corrupt(img, "blur", rng)


@pytest.mark.slow
def test_the_qc_excludes_every_planted_artefact_with_its_reason(templates_4mm, tmp_path):
    root = tmp_path / "bids"
    simulate_cohort(settings(), root, threads=2)
    scans = pd.read_csv(root / "derivatives/simulation/scans.tsv", sep="\t", keep_default_na=False)
    clean = scans[scans["artefact"] == ""].head(1)
    chosen = pd.concat([scans[scans["artefact"] != ""], clean])
    options = PreprocessOptions(voxel_size=4.0, syn_iterations=(30, 10))
    rows = []
    for scan in chosen.itertuples():
        scan_id = scan.path.split("/")[-1].removesuffix("_T1w.nii.gz")
        out = scan_folder(tmp_path / "preproc", scan_id)
        metrics = preprocess_scan(root / scan.path, scan_id, templates_4mm, out, options)
        rows.append(
            {**metrics, "artefact": scan.artefact, "reasons": "; ".join(metrics["reasons"])}
        )
    qc = pd.DataFrame(rows)
    for row in qc.itertuples():
        if row.artefact:
            assert not row.passed, row.artefact
            assert EXPECTED[row.artefact] in row.reasons, (row.artefact, row.reasons)
        else:
            assert row.passed, row.reasons
    figure = tmp_path / "montages.png"
    failed_montages(qc, tmp_path / "preproc", figure)
    assert figure.stat().st_size > 50_000  # four montages with their reasons
