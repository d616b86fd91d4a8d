"""A real head through preprocessing: pycortex's 1 mm T1w (neck, skull, 8-bit, LIA) from
PyPI, and nilearn's 1 mm ICBM152 template (brain only). Both pass QC with plausible
volumes, their mirror images are told apart from them, and the montage shows the brain."""

from __future__ import annotations

import json

import pytest

from brainpad.preprocess import PreprocessOptions, preprocess_scan
from brainpad.templates import nilearn_file

OPTIONS = PreprocessOptions(voxel_size=4.0, modulation="nonlinear")


@pytest.mark.parametrize("source", ["pycortex", "nilearn"])
def test_a_real_head_passes_qc_with_a_plausible_tiv(source, templates_4mm, tmp_path, request):
    scan = request.getfixturevalue("real_head") if source == "pycortex" else nilearn_file("t1")
    metrics = preprocess_scan(scan, "sub-real", templates_4mm, tmp_path, OPTIONS)
    assert metrics["passed"], metrics["reasons"]
    assert 1100 <= metrics["tiv_ml"] <= 1900
    assert 0.8 <= metrics["affine_determinant"] <= 1.1
    assert metrics["similarity"] >= 0.65  # the threshold is 0.5
    assert metrics["mirror_gain"] < -0.1  # the brain as stored fits far better
    assert 20 <= metrics["snr"] < 1000  # finite on an 8-bit scan
    written = json.loads((tmp_path / "sub-real_desc-qc_T1w.json").read_text())
    assert written["passed"] and written["tiv_ml"] == pytest.approx(metrics["tiv_ml"])
    assert (tmp_path / "sub-real_desc-qc_T1w.png").stat().st_size > 30_000
