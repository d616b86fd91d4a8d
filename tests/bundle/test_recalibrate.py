"""Recalibration on a new cohort's controls: cross-fitted, refused with too few controls."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from brainpad.bundle.recalibrate import (
    adopt,
    recalibrate,
    recalibrate_maps,
    recalibration_summary,
)
from brainpad.inputs.errors import InputError


@pytest.fixture
def new_site() -> pd.DataFrame:
    """12 controls and 4 patients whose brain ages run 5 years old at every age."""
    rng = np.random.default_rng(2)
    n = 16
    age = rng.uniform(40, 80, n)
    table = pd.DataFrame(
        {
            "scan_id": [f"sub-{i:02d}_ses-1" for i in range(n)],
            "participant_id": [f"sub-{i:02d}" for i in range(n)],
            "group": ["HC"] * 12 + ["AD"] * 4,
            "site": ["new"] * n,
            "age": age,
            "brain_age": age + 5 + rng.normal(0, 2, n),
            "pred_m": age + 3 + rng.normal(0, 3, n),
        }
    )
    table["brain_pad_corrected"] = table["brain_age"] - table["age"]
    return table


def test_each_control_is_recalibrated_by_a_fit_on_the_other_controls(new_site):
    out = recalibrate(new_site, ["brain_age", "pred_m"], "HC")
    delta = (new_site["brain_age"] - new_site["age"]).to_numpy()
    controls = np.arange(12)
    for k in (0, 7):
        others = controls[controls != k]
        fit = sm.OLS(delta[others], sm.add_constant(new_site["age"].to_numpy()[others])).fit()
        beta, alpha = fit.params
        expected = delta[k] - (alpha * new_site["age"][k] + beta)
        assert out["brain_pad_recalibrated"][k] == pytest.approx(expected)
    everyone = sm.OLS(delta[:12], sm.add_constant(new_site["age"].to_numpy()[:12])).fit()
    patient = delta[13] - (everyone.params[1] * new_site["age"][13] + everyone.params[0])
    assert out["brain_pad_recalibrated"][13] == pytest.approx(patient)
    assert "brain_pad_recalibrated_m" in out
    summary = recalibration_summary(out, "HC").set_index("site")
    assert summary.loc["all", "n_controls"] == 12
    assert summary.loc["all", "mean_corrected"] > 4  # the site's offset ...
    assert abs(summary.loc["all", "mean_recalibrated"]) < 1  # ... is gone


def test_too_few_controls_are_refused_with_the_fix(new_site):
    few = new_site.iloc[8:]  # 4 controls
    with pytest.raises(InputError, match=r"at least 5 healthy controls .* found 4; add controls"):
        recalibrate(few, ["brain_age"], "HC")


def test_adopted_recalibration_is_what_the_statistics_read(new_site):
    out = adopt(recalibrate(new_site, ["brain_age"], "HC"))
    assert "brain_pad_recalibrated" not in out
    np.testing.assert_array_equal(
        out["brain_pad_bundle_corrected"], new_site["brain_pad_corrected"]
    )
    assert abs(out.loc[out["group"] == "HC", "brain_pad_corrected"].mean()) < 1


def test_the_voxelwise_correction_is_refitted_on_the_other_controls_maps(new_site, tmp_path):
    import nibabel as nib

    from brainpad.local.correction import VoxelLinearBias
    from brainpad.paths import map_paths

    rng = np.random.default_rng(5)
    offset = rng.normal(6, 1, (4, 5, 3))  # the new site's brains look older, unevenly
    paths, deltas = {}, {}
    for row in new_site.itertuples():
        paths[row.scan_id] = map_paths(tmp_path, row.scan_id)
        paths[row.scan_id]["brainPAD"].parent.mkdir(parents=True)
        deltas[row.scan_id] = (offset + rng.normal(0, 1, offset.shape)).astype(np.float32)
        image = nib.Nifti1Image(deltas[row.scan_id], np.eye(4))
        nib.save(image, paths[row.scan_id]["brainPAD"])
    debias = {"voxel_method": "linear", "voxel_bin_edges": [18, 100], "min_per_bin": 3}
    recalibrate_maps(new_site, paths, debias, "HC")
    first, others = new_site.iloc[0], new_site.iloc[1:12]
    fit = VoxelLinearBias.fit(others["age"], np.stack([deltas[s] for s in others["scan_id"]]))
    found = np.asarray(nib.load(paths[first.scan_id]["brainPADcorrected"]).dataobj)
    np.testing.assert_allclose(found, fit.correct(first.age, deltas[first.scan_id]), atol=1e-5)
    controls = np.stack(
        [nib.load(paths[s]["brainPADcorrected"]).get_fdata() for s in new_site["scan_id"][:12]]
    )
    assert abs(controls.mean()) < 0.5  # the site's offset is gone from the controls' maps
