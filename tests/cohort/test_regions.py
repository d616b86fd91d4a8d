"""Region summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainpad.cohort.regions import roi_brain_pad, roi_volumes


def test_roi_volumes_sum_tissue_per_label():
    atlas = np.zeros((4, 4, 4), int)
    atlas[:2] = 1
    atlas[2:, :2] = 2
    gm = np.full(atlas.shape, 0.5)
    labels = pd.DataFrame({"label": [1, 2, 3], "name": ["a", "b", "c"]})
    table = roi_volumes({"GM": gm, "WM": 1 - gm}, atlas, labels, voxel_volume_mm3=8.0)
    assert table["GM_mm3"].tolist() == [32 * 0.5 * 8, 16 * 0.5 * 8, 0.0]
    assert table["WM_mm3"].tolist() == table["GM_mm3"].tolist()


def test_roi_brain_pad_is_the_regional_mean_minus_age():
    atlas = np.array([[[1, 1], [2, 0]], [[2, 2], [3, 0]]])
    brain_age = np.array([[[60.0, 62], [70, 99]], [[72, np.nan], [50, 99]]])
    labels = pd.DataFrame({"label": [1, 2, 3, 4], "name": ["a", "b", "c", "d"]})
    pad = roi_brain_pad(brain_age, atlas, labels, age=65)
    assert pad["a"] == pytest.approx(-4.0)
    assert pad["b"] == pytest.approx(6.0)  # NaN voxels are ignored
    assert pad["c"] == pytest.approx(-15.0)
    assert np.isnan(pad["d"])  # no voxel in this region
