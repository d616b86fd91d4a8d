"""Cohort arrays: union crop with margin, streamed memmaps, index table."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd

from brainpad.cohort.arrays import build_arrays, open_volumes, union_bounding_box


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
    info = build_arrays(
        scans, ["GM", "WM"], tmp_path / "v.npy", tmp_path / "s.npy", tmp_path / "index.tsv"
    )
    volumes = open_volumes(tmp_path / "v.npy")
    assert volumes.shape == (2, 2, 13, 13, 12) and volumes.dtype == np.float16
    assert isinstance(volumes, np.memmap)
    assert info["shape"] == (13, 13, 12)
    assert float(volumes[0, 0].sum()) == 0.5 * 5 * 6 * 5
    slices = np.load(tmp_path / "s.npy")
    assert slices.shape == (2, 2, 13, 13)
    assert np.array_equal(slices[1], volumes[1, :, :, :, 6])
    index = pd.read_csv(tmp_path / "index.tsv", sep="\t")
    assert index["scan_id"].tolist() == ["sub-1", "sub-2"] and index["crop_x"][0] == "3:16"
    assert not list(tmp_path.glob("*.partial.npy"))
