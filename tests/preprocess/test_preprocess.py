"""Per-scan preprocessing on the tiny simulated cohort, scored against its truth."""

from __future__ import annotations

import json
import tempfile

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainpad.cli import main
from brainpad.derivatives import sidecar_path
from brainpad.paths import output_paths, preproc_paths, template_files
from brainpad.preprocess import PreprocessOptions, preprocess_batch, preprocess_scan
from brainpad.preprocess.native import to_ants
from brainpad.preprocess.qc import QCThresholds, qc_metrics, summarise
from brainpad.preprocess.segmentation import modulate_and_smooth, segment

OPTIONS = PreprocessOptions(voxel_size=4.0, syn_iterations=(30, 10))


@pytest.fixture(scope="module")
def preprocessed(tiny_cohort, tiny_settings, templates_4mm, tmp_path_factory):
    """One skull-on and one brain-extracted baseline scan, preprocessed at 4 mm."""
    scans = pd.read_csv(tiny_cohort / "derivatives/simulation/scans.tsv", sep="\t")
    t1 = scans[scans.modality == "T1w"]
    skull = {s.name: s.skull for s in tiny_settings.sites}
    has_skull = t1.site.map(skull)
    chosen = [t1[~has_skull].iloc[0], t1[has_skull].iloc[0]]
    out = tmp_path_factory.mktemp("preproc")
    results = {}
    for row in chosen:
        scan_id = f"{row.participant_id}_ses-{row.session}"
        qc = preprocess_scan(tiny_cohort / row.path, scan_id, templates_4mm, out, OPTIONS)
        results[scan_id] = (row, qc)
    return out, results


def test_outputs_and_qc(preprocessed):
    out, results = preprocessed
    for scan_id, (_, qc) in results.items():
        paths = output_paths(out, scan_id)
        flairs = [paths.pop("flair"), paths.pop("flair_syn")]
        assert all(p.is_file() for p in paths.values()), scan_id
        assert not any(f.exists() for f in flairs), "no FLAIR was given, so none is written"
        assert json.loads(paths["qc"].read_text()) == qc
        assert qc["passed"], qc["reasons"]
        assert qc["similarity"] > 0.8


def test_a_batch_writes_what_single_scans_write(preprocessed, tiny_cohort, templates_4mm, tmp_path):
    out, results = preprocessed
    scans = [tiny_cohort / row.path for row, _ in results.values()]
    table = tmp_path / "batches/batch-000_qc.tsv"
    preprocess_batch(scans, list(results), templates_4mm, tmp_path, OPTIONS, table)
    for scan_id in results:
        batch_gm = preproc_paths(tmp_path, scan_id)["gm"]
        assert batch_gm.read_bytes() == output_paths(out, scan_id)["gm"].read_bytes()
    single = summarise([output_paths(out, s)["qc"] for s in results])
    from_table = pd.read_csv(table, sep="\t", na_values=["n/a"], keep_default_na=False)
    columns = ["scan_id", "passed", "reasons", "similarity", "tiv_ml"]
    pd.testing.assert_frame_equal(from_table[columns], single[columns])
    with pytest.raises(ValueError, match="2 scans, 1 scan ids and 2 FLAIRs"):
        preprocess_batch(scans, list(results)[:1], templates_4mm, tmp_path, OPTIONS, table)


def test_preprocessing_repeats_exactly(preprocessed, tiny_cohort, templates_4mm, tmp_path):
    out, results = preprocessed
    scan_id, (row, first) = next(iter(results.items()))
    again = preprocess_scan(tiny_cohort / row.path, scan_id, templates_4mm, tmp_path, OPTIONS)
    assert again["similarity"] == first["similarity"] and again["tiv_ml"] == first["tiv_ml"]
    for key in ("gm", "wm", "csf", "warp"):
        before = output_paths(out, scan_id)[key].read_bytes()
        assert output_paths(tmp_path, scan_id)[key].read_bytes() == before, key


def test_the_networks_t1w_is_affine_and_keeps_each_brains_own_shape(preprocessed, templates_4mm):
    """The T1w the networks read (affine only) lies on the template but keeps the brain's
    own shape; the SyN-warped T1w pulls every brain onto the template's anatomy, so two
    people's SyN images are more alike than their affine ones."""
    out, results = preprocessed
    mask = np.asarray(nib.load(template_files(templates_4mm, 4.0)["mask"]).dataobj) > 0
    template = np.asarray(nib.load(template_files(templates_4mm, 4.0)["t1"]).dataobj)[mask]

    def brain(scan_id, key):
        return np.asarray(nib.load(output_paths(out, scan_id)[key]).dataobj)[mask]

    first, second = results
    r = {key: np.corrcoef(brain(first, key), brain(second, key))[0, 1] for key in ("t1", "t1_syn")}
    to_template = {key: np.corrcoef(brain(first, key), template)[0, 1] for key in r}
    print(f"between people r {r}, to the template r {to_template}")
    assert to_template["t1"] > 0.6 and to_template["t1_syn"] > to_template["t1"]
    assert r["t1"] < r["t1_syn"] - 0.02
    sidecar = json.loads(sidecar_path(output_paths(out, first)["t1"]).read_text())
    assert "affine only" in sidecar["Description"]


def test_skull_and_no_skull_both_extract_the_brain(preprocessed, tiny_cohort):
    """Estimated total intracranial volume within 15 % of the simulated truth."""
    _, results = preprocessed
    root = tiny_cohort / "derivatives/simulation"
    volumes = pd.read_csv(root / "roi_volumes.tsv", sep="\t").set_index("participant_id")
    for row, qc in results.values():
        true_ml = volumes.loc[row.participant_id].sum() / 1000
        assert qc["tiv_ml"] == pytest.approx(true_ml, rel=0.15), row.site


@pytest.mark.parametrize("head_scale", [0.88, 1.1])
def test_small_and_large_heads_with_skull_keep_their_size(
    preprocessed, tiny_cohort, tiny_settings, templates_4mm, tmp_path, head_scale
):
    """A head with skull resized to 0.88 or 1.1 of the template's (beyond the cohort's
    extremes) registers with an affine of that size: a dilated first brain mask once reached
    the skull of small heads, and the affine inflated the brain onto it (determinant 1.3
    for a head of 0.94, similarity 0.66)."""

    skull = {s.name: s.skull for s in tiny_settings.sites}
    row, qc = next((r, q) for r, q in preprocessed[1].values() if skull[r.site])
    subjects = pd.read_csv(tiny_cohort / "derivatives/simulation/subjects.tsv", sep="\t")
    scale = head_scale / subjects.set_index("participant_id").at[row.participant_id, "head_scale"]
    image = nib.load(tiny_cohort / row.path)
    centre = image.affine @ np.r_[(np.array(image.shape) - 1) / 2, 1.0]
    about_centre = np.diag([scale, scale, scale, 1.0])
    about_centre[:3, 3] = centre[:3] * (1 - scale)
    resized = nib.Nifti1Image(image.get_fdata(dtype=np.float32), about_centre @ image.affine)
    nib.save(resized, tmp_path / "resized_T1w.nii.gz")
    result = preprocess_scan(
        tmp_path / "resized_T1w.nii.gz", "sub-x_ses-1", templates_4mm, tmp_path, OPTIONS
    )
    ratio = result["affine_determinant"] / qc["affine_determinant"]
    assert ratio == pytest.approx(scale**3, rel=0.05)
    assert result["similarity"] > 0.8 and result["passed"]


def test_modulated_maps_hold_tissue_volume(preprocessed):

    out, results = preprocessed
    for scan_id, (_, qc) in results.items():
        gm = nib.load(output_paths(out, scan_id)["gm"])
        total_ml = gm.get_fdata().sum() * np.prod(gm.header.get_zooms()) / 1000
        assert total_ml == pytest.approx(qc["gm_ml"], rel=0.03)  # smoothing keeps the total


def test_nonlinear_modulation_divides_out_head_size(
    preprocessed, tiny_cohort, templates_4mm, tmp_path
):
    """'nonlinear' maps are the full maps over the affine's determinant; QC is unchanged."""
    import dataclasses

    out, results = preprocessed
    scan_id, (row, full_qc) = next(iter(results.items()))
    options = dataclasses.replace(OPTIONS, modulation="nonlinear")
    qc = preprocess_scan(tiny_cohort / row.path, scan_id, templates_4mm, tmp_path, options)
    assert qc["tiv_ml"] == full_qc["tiv_ml"]
    assert abs(np.log(qc["affine_determinant"])) > 0.01  # the test scan is not MNI-sized
    for tissue in ("gm", "wm"):
        full = nib.load(output_paths(out, scan_id)[tissue]).get_fdata()
        nonlinear = nib.load(output_paths(tmp_path, scan_id)[tissue]).get_fdata()
        np.testing.assert_allclose(nonlinear * qc["affine_determinant"], full, rtol=1e-4, atol=1e-6)


def test_smoothing_preserves_total():
    rng = np.random.default_rng(0)
    prob = {"GM": rng.uniform(0, 1, (20, 20, 20)).astype(np.float32)}
    like = to_ants(np.zeros((20, 20, 20)), np.diag([2.0, 2.0, 2.0, 1.0]))
    jac = np.full((20, 20, 20), 1.5, np.float32)
    smooth = modulate_and_smooth(prob, jac, like, fwhm_mm=4.0)["GM"]
    raw = modulate_and_smooth(prob, jac, like, fwhm_mm=0.0)["GM"]
    assert np.allclose(raw, prob["GM"] * 1.5)
    assert smooth.std() < raw.std()
    assert smooth[5:-5, 5:-5, 5:-5].mean() == pytest.approx(raw[5:-5, 5:-5, 5:-5].mean(), rel=0.02)


def test_segmentation_leaves_no_temporary_files(tmp_path, monkeypatch):
    """ants.atropos writes its images under tempfile names and never deletes them."""
    system_tmp = tmp_path / "tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    grid = np.indices((16, 16, 16)).sum(axis=0)
    labels = np.digitize(grid, [15, 30])  # three slabs: CSF, GM, WM
    rng = np.random.default_rng(0)
    image = to_ants(labels * 100.0 + rng.normal(0, 10, labels.shape), np.eye(4))
    priors = [image.new_image_like((labels == k).astype(np.float32)) for k in range(3)]
    mask = image.new_image_like(np.ones(labels.shape, np.float32))
    posteriors = segment(image, priors, mask)
    assert posteriors["GM"][labels == 1].mean() > 0.9
    assert list(system_tmp.iterdir()) == []
    assert tempfile.tempdir == str(system_tmp)


@pytest.mark.parametrize(
    ("similarity_shift", "tiv", "passed", "reason"),
    [(0.0, 1500, True, None), (-5.0, 1500, False, "similarity"), (0.0, 300, False, "TIV 300 ml")],
)
def test_qc_thresholds(similarity_shift, tiv, passed, reason):
    rng = np.random.default_rng(1)
    template = rng.normal(size=(10, 10, 10))
    warped = template + rng.normal(scale=0.1, size=template.shape)
    if similarity_shift:
        warped = rng.normal(size=template.shape)
    mask = np.ones(template.shape, bool)
    volumes = {"GM": tiv * 0.5, "WM": tiv * 0.3, "CSF": tiv * 0.2}
    thresholds = QCThresholds(min_similarity=0.8)
    metrics = qc_metrics(warped, template, mask, volumes, 1.0, thresholds)
    assert metrics["passed"] is passed
    if reason:
        assert reason in metrics["reasons"][0]


@pytest.mark.parametrize(
    ("scores", "passed"),
    [
        ({"as stored": 0.84, "anterior-posterior": 0.63, "superior-inferior": 0.60}, True),
        ({"as stored": 0.70, "anterior-posterior": 0.92, "superior-inferior": 0.58}, False),
        ({"as stored": 0.80, "anterior-posterior": 0.81, "superior-inferior": 0.62}, False),
        ({"as stored": 0.80, "anterior-posterior": 0.75, "superior-inferior": 0.62}, False),
    ],
)
def test_qc_fails_a_brain_whose_mirror_image_fits_better(scores, passed):
    template = np.random.default_rng(1).normal(size=(10, 10, 10))
    volumes = {"GM": 750.0, "WM": 450.0, "CSF": 300.0}
    mask = np.ones(template.shape, bool)
    metrics = qc_metrics(template, template, mask, volumes, 1.0, QCThresholds(), None, scores)
    assert metrics["passed"] is passed
    assert metrics["mirror_gain"] == pytest.approx(
        max(scores["anterior-posterior"], scores["superior-inferior"]) - scores["as stored"]
    )
    if not passed:
        best = max(scores["anterior-posterior"], scores["superior-inferior"])
        assert metrics["reasons"] == [
            "mirrored anterior-posterior the brain matches the template about as well as or "
            f"better than as stored ({best:.2f} vs {scores['as stored']:.2f}; a brain as it "
            "should be fits far better than its mirror images): the header's orientation is "
            "wrong, or the brain incomplete; reconvert the scan from DICOM or fix its affine"
        ]


def test_working_copy_smooths_a_fine_scan_to_the_working_resolution():
    """A 1 mm checkerboard (the finest detail a scan holds) is gone at 4 mm, its mean kept;
    a scan already near the working voxel is returned as it is."""
    import ants

    from brainpad.preprocess.native import working_copy

    board = (np.indices((64, 64, 64)).sum(axis=0) % 2).astype(np.float32) * 100.0
    fine = ants.from_numpy(board, spacing=(1.0, 1.0, 1.0))
    copy = working_copy(fine, 4.0)
    assert copy.spacing == (4.0, 4.0, 4.0)
    inner = copy.numpy()[2:-2, 2:-2, 2:-2]
    assert inner.mean() == pytest.approx(50.0, abs=1.0) and inner.std() < 1.0
    coarse = ants.from_numpy(board[::4, ::4, ::4], spacing=(3.5, 3.5, 3.5))
    assert working_copy(coarse, 4.0) is coarse


def test_qc_summary_cli_lists_failures(tmp_path, caplog):
    for k, ok in enumerate([True, False]):
        data = {
            "scan_id": f"sub-0{k}",
            "passed": ok,
            "reasons": [] if ok else ["TIV 10 ml"],
            "similarity": 0.9,
            "gm_ml": 1,
            "wm_ml": 1,
            "csf_ml": 1,
            "tiv_ml": 3,
            "affine_determinant": 1,
            "seconds": 1,
            "source": "x",
        }
        (tmp_path / f"{k}.json").write_text(json.dumps(data))
    files = [str(tmp_path / "0.json"), str(tmp_path / "1.json")]
    assert main(["qc-summary", "--out", str(tmp_path / "qc.tsv"), *files]) == 0
    table = pd.read_csv(tmp_path / "qc.tsv", sep="\t")
    assert table["passed"].tolist() == [True, False]
    assert "QC failed for sub-01: TIV 10 ml" in caplog.text
    assert len(summarise(files)) == 2


def test_qc_summary_reads_the_manifest_scans(tmp_path):
    """With --manifest the T1w scans' QC JSONs are found in their sub-*/ses-*/anat/ folders."""
    rows = []
    for k in range(2):
        scan_id, pid = f"sub-0{k}_ses-1", f"sub-0{k}"
        path = preproc_paths(tmp_path / "preproc", scan_id)["qc"]
        path.parent.mkdir(parents=True)
        qc = {"scan_id": scan_id, "passed": True, "reasons": [], "similarity": 0.9}
        qc |= {"gm_ml": 1, "wm_ml": 1, "csf_ml": 1, "tiv_ml": 3, "affine_determinant": 1}
        path.write_text(json.dumps(qc | {"seconds": 1, "source": "x"}))
        rows += [(scan_id, pid, "T1w"), (scan_id, pid, "FLAIR")]
    manifest = tmp_path / "manifest.tsv"
    pd.DataFrame(rows, columns=["scan_id", "participant_id", "modality"]).to_csv(
        manifest, sep="\t", index=False
    )
    out = tmp_path / "qc.tsv"
    args = ["--manifest", str(manifest), "--preproc-dir", str(tmp_path / "preproc")]
    assert main(["qc-summary", "--out", str(out), *args]) == 0
    assert pd.read_csv(out, sep="\t")["scan_id"].tolist() == ["sub-00_ses-1", "sub-01_ses-1"]
