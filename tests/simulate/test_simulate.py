"""The simulated cohort: its truth must be real, measurable and reproducible."""

from __future__ import annotations

import json
from dataclasses import replace

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage, stats

from brainpad.inputs.validate import ValidationOptions, build_manifest
from brainpad.simulate import (
    Settings,
    anatomy,
    deform,
    expected_outputs,
    plan_cohort,
    scanner,
    truth,
)
from brainpad.simulate.cohort import withheld_ages
from brainpad.simulate.scanner import Site
from brainpad.templates import harvard_oxford_atlas, load_template

VOXEL = 4.0


@pytest.fixture(scope="module")
def model() -> anatomy.AnatomyModel:
    """The anatomy model at 4 mm."""
    template = load_template(VOXEL, 12.0)
    return anatomy.AnatomyModel.build(template, harvard_oxford_atlas(VOXEL, pad_mm=12.0))


def subject(age: float, group: str = "HC", seed: int = 3) -> dict:
    return {
        "participant_id": "sub-x",
        "age": age,
        "bio_age_offset": 0.0,
        "group": group,
        "severity": 1.0 if group != "HC" else 0.0,
        "head_scale": 1.0,
        "seed": seed,
    }


def test_poisson_velocity_has_prescribed_divergence():
    rng = np.random.default_rng(0)
    source = ndimage.gaussian_filter(rng.standard_normal((24, 20, 22)), 2.0)
    velocity = deform.velocity_from_divergence(source)
    divergence = sum(np.gradient(velocity[i])[i] for i in range(3))
    inner = (slice(3, -3),) * 3
    r = np.corrcoef(divergence[inner].ravel(), (source - source.mean())[inner].ravel())[0, 1]
    assert r > 0.95


def test_exponential_of_zero_and_inverse():
    rng = np.random.default_rng(1)
    velocity = deform.random_velocity((20, 20, 20), rng, smoothness=3.0, log_volume_sd=0.1)
    assert np.allclose(deform.exponentiate(np.zeros_like(velocity)), 0.0)
    forward, backward = deform.exponentiate(velocity), deform.exponentiate(-velocity)
    coords = np.indices((20, 20, 20), dtype=np.float32) + forward
    round_trip = forward + np.stack(
        [ndimage.map_coordinates(b, coords, order=1, mode="nearest") for b in backward]
    )
    assert np.abs(round_trip[:, 4:-4, 4:-4, 4:-4]).max() < 0.05  # φ⁻¹∘φ ≈ identity
    assert deform.jacobian_determinant(forward).min() > 0  # diffeomorphic: no folding


def test_jacobian_matches_prescribed_regional_change(model):
    """Every region (≥ 20 voxels) of an 85-year-old AD patient changes volume as prescribed."""
    person = subject(85.0, "AD")
    local_age = person["age"] + model.acceleration["AD"]
    target = model.rates * (local_age - truth.REFERENCE_AGE)
    result = deform.prescribed_deformation(
        model.regions, target, model.compensation, n_iterations=2, gains=model.gains
    )
    counts = np.bincount(model.regions.ravel(), minlength=truth.N_REGIONS)
    measured = deform.regional_mean(result.jacobian, model.regions, truth.N_REGIONS)
    big = np.flatnonzero(counts >= 20)[1:]
    rel = np.abs((measured[big] - 1) - np.expm1(target[big])) / np.abs(np.expm1(target[big]))
    assert rel.max() < 0.10, f"worst region {big[rel.argmax()]}: {rel.max():.3f}"
    hippocampus = truth.region_table().query("name == 'Left_Hippocampus'")["region"].item()
    assert measured[hippocampus] < 0.75  # ≈ exp(-0.0055 × 68) = 0.69


def test_warped_labels_confirm_volume_change(model):
    """Independent of Jacobians: count ventricle voxels after pulling labels through φ⁻¹."""
    young = anatomy.generate_subject(model, subject(25.0), Settings(anatomy_log_volume_sd=0.0))
    old = anatomy.generate_subject(model, subject(85.0), Settings(anatomy_log_volume_sd=0.0))
    ventricles = truth.region_table().query("name.str.contains('Ventricle')")["region"].to_numpy()
    labels = np.isin(model.regions, ventricles).astype(np.float32)

    def volume(anat):
        coords = np.indices(labels.shape, dtype=np.float32)
        for displacement in anat.to_template:
            coords = coords + np.stack(
                [ndimage.map_coordinates(d, coords, order=1, mode="nearest") for d in displacement]
            )
        return ndimage.map_coordinates(labels, coords, order=1).sum()

    ratio = volume(old) / volume(young)
    expected = np.exp(0.015 * 60)
    assert abs(ratio - expected) / (expected - 1) < 0.15


def test_older_subjects_have_less_grey_matter(model):
    """One anatomy aged 30 and 80, posed in the scanner: grey matter seen on the scan grid."""
    settings = Settings(anatomy_log_volume_sd=0.0, lesion_rate=0.0)
    shape, affine = scanner.acquisition_grid(Site("any"), VOXEL)
    points = affine[:3, :3] @ np.indices(shape).reshape(3, -1) + affine[:3, 3:4]
    pose = {"rotation_deg": np.array([5.0, -3.0, 2.0]), "translation_mm": np.array([2.0, 0, -4])}
    gm_ml = []
    for age in (30.0, 80.0):
        anat = anatomy.generate_subject(model, subject(age), settings)
        tissues = anatomy.sample_tissues(model, anat, points, pose, skull=False)
        gm_ml.append(tissues["gm"].sum() * VOXEL**3 / 1000)
    assert gm_ml[1] < 0.92 * gm_ml[0]


def test_subject_generation_is_deterministic(model):
    a = anatomy.generate_subject(model, subject(60.0, "pMCI"), Settings())
    b = anatomy.generate_subject(model, subject(60.0, "pMCI"), Settings())
    assert np.array_equal(a.to_template[0], b.to_template[0])
    assert a.true_brain_age == b.true_brain_age


def test_plan_is_deterministic_and_balanced():
    settings = Settings(n_subjects=40, n_test_retest=4, n_between_site=3)
    p1, s1 = plan_cohort(settings)
    p2, s2 = plan_cohort(settings)
    pd.testing.assert_frame_equal(p1, p2)
    pd.testing.assert_frame_equal(s1, s2)
    assert not p1.equals(plan_cohort(replace(settings, seed=1))[0])
    assert p1["group"].value_counts().to_dict() == {"HC": 28, "sMCI": 4, "pMCI": 4, "AD": 4}
    assert (p1.loc[p1.group != "HC", "age"] >= 60).all()
    repeats = s1[s1.session == "2"].merge(s1[s1.session == "1"], on="participant_id")
    retest = repeats[repeats.repeat_x == "test-retest"]
    between = repeats[repeats.repeat_x == "between-site"]
    assert len(retest) == 4 and (retest.site_x == retest.site_y).all()
    assert len(between) == 3 and (between.site_x != between.site_y).all()


def test_the_control_group_is_named_not_the_first_of_the_fractions():
    """A config dumped with sorted keys lists AD first: the controls stay the controls."""
    fractions = {"AD": 0.2, "HC": 0.6, "pMCI": 0.1, "sMCI": 0.1}
    settings = Settings.from_config(
        {"control_group": "HC", "simulation": {"n_subjects": 50, "group_fractions": fractions}}
    )
    participants, _ = plan_cohort(settings)
    assert participants["group"].value_counts()["HC"] == 30
    assert (participants.loc[participants.group == "AD", "age"] >= 60).all()
    assert (participants.loc[participants.group == "HC", "severity"] == 0).all()
    assert (participants.loc[participants.group == "AD", "severity"] > 0).all()
    with pytest.raises(ValueError, match="no share for the control group 'CN'"):
        Settings(control_group="CN")


def test_withheld_ages_are_a_share_of_the_controls_scanned_once():
    settings = Settings(n_subjects=40, n_test_retest=4, n_between_site=3, unlabelled_fraction=0.25)
    participants, sessions = plan_cohort(settings)
    withheld = withheld_ages(participants, sessions, settings)
    chosen = participants[withheld]
    assert len(chosen) == 7 and (chosen["group"] == "HC").all()  # 0.25 x 28 controls
    repeated = sessions.loc[sessions["session"] == "2", "participant_id"]
    assert not chosen["participant_id"].isin(repeated).any()
    assert withheld.equals(withheld_ages(participants, sessions, settings))
    assert not withheld_ages(participants, sessions, Settings(n_subjects=40)).any()


def test_settings_from_config_defaults_match_schema():
    import yaml

    from conftest import REPO

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    defaults = Settings()
    for key, spec in schema["properties"]["simulation"]["properties"].items():
        if "default" in spec:
            value = getattr(defaults, key)
            value = list(value) if isinstance(value, tuple) else value
            assert value == spec["default"], key
    assert schema["properties"]["seed"]["default"] == defaults.seed


# ----------------------------------------------------------------- the tiny cohort on disk
def test_tiny_cohort_is_valid_bids_with_all_truth(tiny_cohort, tiny_settings):
    written = {str(p.relative_to(tiny_cohort)) for p in tiny_cohort.rglob("*") if p.is_file()}
    expected = set(expected_outputs(tiny_settings))
    assert expected <= written
    assert written - expected == {f"sub-{i:03d}/sub-{i:03d}_sessions.tsv" for i in range(1, 9)}
    manifest, skipped = build_manifest(tiny_cohort, ValidationOptions(modalities=("T1w", "FLAIR")))
    assert len(manifest) == 20 and skipped.empty  # 10 sessions x 2 modalities
    between = manifest[(manifest.session == "2")].groupby("participant_id")["site"].first()
    assert len(between) == 2


def test_truth_files(tiny_cohort, tiny_settings):
    root = tiny_cohort / "derivatives/simulation"
    info = json.loads((root / "truth.json").read_text())
    assert info["floor_mae_expected"] == pytest.approx(4.0 * np.sqrt(2 / np.pi))
    subjects = pd.read_csv(root / "subjects.tsv", sep="\t")
    assert (
        subjects["true_brain_age"] - subjects["age"] - subjects["true_brain_pad"]
    ).abs().max() < 1e-3
    hc = subjects[subjects.group == "HC"]
    assert info["floor_mae_sample"] == pytest.approx(hc["true_brain_pad"].abs().mean(), abs=1e-3)
    assert np.allclose(hc["true_brain_pad"], hc["bio_age_offset"], atol=1e-3)
    space = "space-MNI152NLin2009aSym"
    ad = nib.load(root / f"group-AD_{space}_desc-truelocalbrainPAD.nii.gz").get_fdata()
    regions = nib.load(root / f"{space}_desc-regions_dseg.nii.gz").get_fdata().astype(int)
    table = pd.read_csv(root / "regions.tsv", sep="\t").set_index("region")
    hippo = table.index[table.name == "Left_Hippocampus"][0]
    assert ad[regions == hippo].mean() == pytest.approx(28.0)
    assert np.all(
        nib.load(root / f"group-HC_{space}_desc-truelocalbrainPAD.nii.gz").get_fdata() == 0
    )
    volumes = pd.read_csv(root / "roi_volumes.tsv", sep="\t")
    assert volumes.shape == (8, truth.N_REGIONS)  # participant_id + 116 regions
    cortex = volumes[[c for c in table.name[table.kind == "cortical"]]].sum(axis=1)
    normalised = cortex / subjects["head_scale"] ** 3
    assert stats.pearsonr(subjects["age"] + subjects["bio_age_offset"], normalised)[0] < -0.5


def test_clinical_variables_follow_brain_pad(tiny_cohort):
    subjects = pd.read_csv(tiny_cohort / "derivatives/simulation/subjects.tsv", sep="\t")
    participants = pd.read_csv(tiny_cohort / "participants.tsv", sep="\t")
    assert participants["mmse"].between(0, 30).all()
    assert participants.loc[participants.group != "AD", "survival_months"].isna().all()
    assert set(participants.columns) == {
        "participant_id",
        "age",
        "sex",
        "site",
        "group",
        "mmse",
        "survival_months",
    }
    assert "true_brain_pad" not in participants.columns  # truth stays in derivatives
    assert subjects["mmse"].equals(participants["mmse"])


def test_sites_store_their_orientation_and_voxel_size(tiny_cohort, tiny_settings):
    scans = pd.read_csv(tiny_cohort / "derivatives/simulation/scans.tsv", sep="\t")
    sites = {s.name: s for s in tiny_settings.sites}
    for row in scans.itertuples():
        img = nib.load(tiny_cohort / row.path)
        site = sites[row.site]
        assert "".join(nib.aff2axcodes(img.affine)) == site.orientation
        zooms = sorted(nib.affines.voxel_sizes(img.affine))
        assert zooms == pytest.approx(sorted(np.array(site.voxel_scale) * VOXEL), abs=1e-4)


def _to_head_space(path, pose_row, reference_shape, reference_affine):
    """Resample a scan into a reference grid of head coordinates using its known pose."""
    from brainpad.simulate.scanner import pose_matrix

    img = nib.load(path)
    pose = {
        "rotation_deg": np.array([pose_row[f"rotation_{a}_deg"] for a in "xyz"]),
        "translation_mm": np.array([pose_row[f"translation_{a}_mm"] for a in "xyz"]),
    }
    ijk = np.indices(reference_shape).reshape(3, -1)
    head = reference_affine[:3, :3] @ ijk + reference_affine[:3, 3:4]
    world = pose_matrix(pose) @ np.vstack([head, np.ones(head.shape[1])])
    vox = np.linalg.inv(img.affine) @ world
    data = np.asarray(img.dataobj, dtype=np.float32)
    data /= np.percentile(data[data > 0], 95)
    return ndimage.map_coordinates(data, vox[:3], order=1).reshape(reference_shape)


def test_repeat_scans_differ_only_by_pose_and_noise(tiny_cohort):
    """Undoing each session's recorded pose aligns a test-retest pair better than it aligns
    two different subjects, and far better than ignoring the pose."""
    scans = pd.read_csv(tiny_cohort / "derivatives/simulation/scans.tsv", sep="\t")
    t1 = scans[scans.modality == "T1w"]
    pid = t1.loc[t1.repeat == "test-retest", "participant_id"].item()
    first, second = (t1[t1.participant_id == pid].iloc[k] for k in (0, 1))
    other = t1[(t1.participant_id != pid) & (t1.site == first.site)].iloc[0]
    unposed = second.copy()
    unposed[[c for c in t1.columns if c.startswith(("rotation", "translation"))]] = 0.0
    shape, affine = (44, 52, 44), np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = [-86, -122, -74]

    def head_image(row):  # smooth multiplicative bias divided out
        x = _to_head_space(tiny_cohort / row.path, row, shape, affine)
        return x / np.maximum(ndimage.gaussian_filter(x, 4.0), 1e-3)

    a = head_image(first)
    brain = ndimage.binary_erosion(
        _to_head_space(tiny_cohort / first.path, first, shape, affine) > 0.3, iterations=2
    )

    def mse(row):
        return float(np.mean((a - head_image(row))[brain] ** 2))

    same, different, ignored_pose = mse(second), mse(other), mse(unposed)
    assert same < 0.8 * different
    assert same < 0.5 * ignored_pose


def test_site_contrast_and_blur_are_site_effects_that_default_to_none():
    tissues = {"gm": np.array([1.0, 0.0]), "wm": np.array([0.0, 1.0])}
    plain = scanner.contrast_image(tissues, "T1w", 25.0)
    assert np.array_equal(scanner.contrast_image(tissues, "T1w", 25.0, 1.0), plain)
    flat = scanner.contrast_image(tissues, "T1w", 25.0, 0.5)  # half the grey-white gap
    assert flat[1] == plain[1] and flat[0] == pytest.approx(1.0 - 0.5 * (1.0 - plain[0]))
    image = np.zeros((21, 21, 21), np.float32)
    image[10, 10, 10] = 1.0
    assert scanner.blurred(image, np.array([2.0, 2.0, 2.0]), 0.0) is image
    spread = scanner.blurred(image, np.array([2.0, 2.0, 2.0]), 8.0)
    assert spread.sum() == pytest.approx(1.0, rel=1e-4)  # blurs, keeps the signal
    profile = spread[:, 10, 10] / spread.max()
    half = np.flatnonzero(profile >= 0.5)
    assert (half.max() - half.min() + 1) * 2.0 == pytest.approx(8.0, abs=2.0)  # FWHM in mm
    site = scanner.Site.from_config({"name": "siteD", "gm_contrast": 0.8, "blur_fwhm_mm": 3})
    assert site.gm_contrast == 0.8 and site.blur_fwhm_mm == 3
