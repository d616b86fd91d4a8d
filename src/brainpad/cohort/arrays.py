"""Cohort arrays on disk (``brainpad arrays``): cropped 3D maps and 2D slices, memory-mapped.

All scans are already in MNI space, so one bounding box fits all: the union of every scan's
brain (modulated GM + WM above a small threshold) plus a margin. The maps are streamed one
scan at a time into ``.npy`` files opened with :func:`numpy.lib.format.open_memmap`, so
neither building nor training ever holds the cohort in memory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from tqdm import tqdm

from brainpad.atomic import atomic_path

log = logging.getLogger(__name__)
BRAIN_THRESHOLD = 0.05  # modulated GM + WM fraction counted as brain
CHANNELS = ("GM", "WM")


def _load(path: str | Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj, dtype=np.float32)


def union_bounding_box(scans: Sequence[Sequence[str | Path]], margin: int = 2) -> tuple[slice, ...]:
    """Bounding box (slices) of the union of all scans' brains, plus ``margin`` voxels.

    Parameters
    ----------
    scans : sequence of sequences of paths
        Per scan, its channel maps (e.g. modulated GM and WM) on one common grid.
    margin : int
        Voxels added on each side (clipped to the grid).
    """
    union = None
    for channels in scans:
        brain = sum(_load(p) for p in channels) > BRAIN_THRESHOLD
        union = brain if union is None else union | brain
    if union is None or not union.any():
        msg = "no brain voxels in any scan: the modulated maps are empty"
        raise ValueError(msg)
    coords = np.argwhere(union)
    lo = np.maximum(coords.min(axis=0) - margin, 0)
    hi = np.minimum(coords.max(axis=0) + margin + 1, union.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def build_arrays(
    scans: pd.DataFrame,
    channels: Sequence[str],
    volume_path: str | Path,
    slice_path: str | Path,
    index_path: str | Path,
    margin: int = 2,
) -> dict:
    """Stack every scan's channel maps into memory-mapped arrays.

    Parameters
    ----------
    scans : DataFrame
        One row per scan: ``scan_id`` plus one column of map paths per channel.
    channels : sequence of str
        Channel columns, in order (e.g. ``["GM", "WM"]``).
    volume_path : path
        ``.npy`` of shape (scans, channels, x, y, z), float16, cropped.
    slice_path : path
        ``.npy`` of shape (scans, channels, x, y): the mid-axial slice of the crop.
    index_path : path
        TSV mapping array row → ``scan_id`` (and the crop, for writing maps back).

    Returns
    -------
    dict
        ``shape`` and ``bbox`` of the crop.
    """
    paths = scans[list(channels)].to_numpy()
    bbox = union_bounding_box(paths, margin)
    shape = tuple(s.stop - s.start for s in bbox)
    n = len(scans)
    with atomic_path(volume_path) as tmp_volume, atomic_path(slice_path) as tmp_slices:
        volumes = np.lib.format.open_memmap(
            tmp_volume, mode="w+", dtype=np.float16, shape=(n, len(channels), *shape)
        )
        slices = np.lib.format.open_memmap(
            tmp_slices, mode="w+", dtype=np.float16, shape=(n, len(channels), *shape[:2])
        )
        for row, channel_paths in enumerate(tqdm(paths, desc="arrays", disable=not os.isatty(2))):
            for c, path in enumerate(channel_paths):
                cropped = _load(path)[bbox]
                volumes[row, c] = cropped
                slices[row, c] = cropped[:, :, shape[2] // 2]
        volumes.flush()
        slices.flush()
        del volumes, slices
    index = pd.DataFrame({"row": np.arange(n), "scan_id": scans["scan_id"].to_numpy()})
    for axis, s in zip("xyz", bbox, strict=True):
        index[f"crop_{axis}"] = f"{s.start}:{s.stop}"
    index.to_csv(index_path, sep="\t", index=False)
    log.info("arrays: %d scans x %d channels, crop %s of the MNI grid", n, len(channels), shape)
    return {"shape": shape, "bbox": bbox}


def crop_slices(index: pd.DataFrame) -> tuple[slice, ...]:
    """The MNI-grid crop of the cohort arrays, from their index table (``crop_x`` ...)."""
    first = index.iloc[0]
    bounds = [first[f"crop_{axis}"].split(":") for axis in "xyz"]
    return tuple(slice(int(a), int(b)) for a, b in bounds)


def open_volumes(path: str | Path) -> np.ndarray:
    """The cohort volume array, memory-mapped read-only."""
    return np.load(path, mmap_mode="r")


def scan_tissue(volumes: np.ndarray, row: int) -> np.ndarray:
    """GM + WM (the first two channels) of array row ``row``, float64, on the cropped grid."""
    return np.asarray(volumes[row, :2], np.float64).sum(0)


def tissue_map(
    volumes: np.ndarray, index: pd.DataFrame, scan_id: str, shape: tuple[int, ...]
) -> np.ndarray:
    """One scan's tissue (GM + WM, the first two channels) on the full template grid.

    Parameters
    ----------
    volumes : ndarray
        The cohort arrays (scans, channels, x, y, z), cropped as ``index`` records.
    index : DataFrame
        The arrays' index (``row``, ``scan_id``, ``crop_x`` ...).
    scan_id : str
        The scan to read.
    shape : tuple of int
        The template grid's shape.

    Returns
    -------
    ndarray
        float64 of ``shape``; NaN outside the crop.
    """
    row = index.loc[index["scan_id"] == scan_id, "row"]
    if row.empty:
        msg = f"arrays index: scan {scan_id!r} is not in the cohort arrays; rebuild them"
        raise KeyError(msg)
    full = np.full(shape, np.nan)
    full[crop_slices(index)] = scan_tissue(volumes, int(row.iloc[0]))
    return full
