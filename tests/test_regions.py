"""Region summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd

from brainpad.regions import roi_volumes


def test_roi_volumes_sum_tissue_per_label():
    atlas = np.zeros((4, 4, 4), int)
    atlas[:2] = 1
    atlas[2:, :2] = 2
    gm = np.full(atlas.shape, 0.5)
    labels = pd.DataFrame({"label": [1, 2, 3], "name": ["a", "b", "c"]})
    table = roi_volumes({"GM": gm, "WM": 1 - gm}, atlas, labels, voxel_volume_mm3=8.0)
    assert table["GM_mm3"].tolist() == [32 * 0.5 * 8, 16 * 0.5 * 8, 0.0]
    assert table["WM_mm3"].tolist() == table["GM_mm3"].tolist()
