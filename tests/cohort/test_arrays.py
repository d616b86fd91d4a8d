"""Cohort arrays: union crop with margin, streamed memmaps, index table."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainpad.cohort.arrays import (
    QUANT_STEP,
    build_arrays,
    normalise_top,
    open_volumes,
    union_bounding_box,
)


def _map(path, box):
    data = np.zeros((20, 22, 18), np.float32)
    data[box] = 0.5
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return str(path)


def test_union_crop_and_arrays(tmp_path):
    boxes = [np.s_[5:10, 6:12, 4:9], np.s_[8:14, 3:9, 6:12]]
    scans = pd.DataFrame(
        {
            "scan_id": ["sub-1", "sub-2"],
            "GM": [_map(tmp_path / f"g{i}.nii.gz", b) for i, b in enumerate(boxes)],
            "WM": [_map(tmp_path / f"w{i}.nii.gz", b) for i, b in enumerate(boxes)],
        }
    )
    bbox = union_bounding_box(scans[["GM", "WM"]].to_numpy(), margin=2)
    assert bbox == (slice(3, 16), slice(1, 14), slice(2, 14))
    info = build_arrays(scans, tmp_path)
    volumes = open_volumes(tmp_path / "volumes.npy")
    assert volumes.shape == (2, 2, 13, 13, 12) and volumes.dtype == np.float16
    assert isinstance(volumes, np.memmap)
    assert info["shape"] == (13, 13, 12)
    assert float(volumes[0, 0].sum()) == 0.5 * 5 * 6 * 5
    slices = np.load(tmp_path / "slices.npy")
    assert slices.shape == (2, 2, 13, 13)
    assert np.array_equal(slices[1], volumes[1, :, :, :, 6])
    index = pd.read_csv(tmp_path / "index.tsv", sep="\t")
    assert index["scan_id"].tolist() == ["sub-1", "sub-2"] and index["crop_x"][0] == "3:16"
    assert not list(tmp_path.glob("*.partial.npy"))


def test_intensity_inputs_are_normalised_by_their_top_percent_and_quantised(tmp_path):
    rng = np.random.default_rng(0)
    brain = np.s_[5:15, 5:17, 4:14]
    t1w = np.zeros((20, 22, 18), np.float32)
    t1w[brain] = rng.uniform(200, 900, t1w[brain].shape)  # a scanner's arbitrary units
    nib.save(nib.Nifti1Image(t1w, np.eye(4)), tmp_path / "t1w.nii.gz")
    scans = pd.DataFrame(
        {
            "scan_id": ["sub-1"],
            "GM": [_map(tmp_path / "g.nii.gz", brain)],
            "WM": [_map(tmp_path / "w.nii.gz", brain)],
            "T1w": [str(tmp_path / "t1w.nii.gz")],
        }
    )
    build_arrays(scans, tmp_path, inputs=["tissue", "t1w"])
    codes = np.load(tmp_path / "volumes_t1w.npy", mmap_mode="r")
    assert codes.dtype == np.uint8 and codes.shape == (1, 1, 14, 16, 14)
    values = open_volumes(tmp_path / "volumes_t1w.npy")
    assert values.shape == codes.shape and values[0].dtype == np.float32
    inside = t1w[brain]
    top = np.sort(inside.ravel())[-round(0.01 * inside.size) :].mean()
    expected = normalise_top(t1w)[3:17, 3:19, 2:16]
    assert expected.max() == pytest.approx(inside.max() / top)
    np.testing.assert_allclose(values[0, 0], expected, atol=QUANT_STEP / 2 + 1e-6)
    assert open_volumes(tmp_path / "slices_t1w.npy").shape == (1, 1, 14, 16)
