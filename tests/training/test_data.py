"""Views of the cohort array that training reads."""

from __future__ import annotations

import numpy as np
import pytest

from brainpad.training.data import RegionCrop


def test_a_region_crop_masks_and_crops_every_scan():
    array = np.arange(2 * 1 * 6 * 6 * 6, dtype=np.float32).reshape(2, 1, 6, 6, 6)
    labels = np.zeros((6, 6, 6), int)
    labels[2:4, 1:3, 3:5] = 2
    crop = RegionCrop.from_labels(array, labels, 2, dilation=0)
    assert crop.shape == (2, 1, 2, 2, 2)
    np.testing.assert_array_equal(crop[np.array([1])][0, 0], array[1, 0, 2:4, 1:3, 3:5])
    dilated = RegionCrop.from_labels(array, labels, 2, dilation=1)
    assert dilated.shape == (2, 1, 4, 4, 4) and dilated.mask.sum() < 64  # corners out
    with pytest.raises(ValueError, match="region label 3 has no voxel"):
        RegionCrop.from_labels(array, labels, 3)
