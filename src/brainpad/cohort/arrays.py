"""Cohort arrays on disk (``brainpad arrays``): cropped 3D maps and 2D slices, memory-mapped.

All scans are already in MNI space, so one bounding box fits all: the union of every scan's
brain (modulated GM + WM above a small threshold) plus a margin. The maps are streamed one
scan at a time into ``.npy`` files opened with :func:`numpy.lib.format.open_memmap`, so
neither building nor training ever holds the cohort in memory.

One pair of arrays (3D volumes, 2D mid-axial slices) per model input
(:data:`INPUT_CHANNELS`): the modulated GM and WM maps as float16, and the T1w and FLAIR
in MNI space divided by the mean of their top 1 % of brain voxels (study 4), clipped and
quantised to uint8 in steps of :data:`QUANT_STEP` as study 3 stores its inputs (half the
disk and page cache of float16; the step is far below the scans' noise).
:func:`open_volumes` reads either kind back as float32 values.
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
INPUT_CHANNELS = {"tissue": CHANNELS, "t1w": ("T1w",), "flair": ("FLAIR",)}
"""The channels (preprocessed images) of each model input."""
QUANT_STEP = 0.01
"""uint8 step of the intensity inputs: 0-2.55 times the mean of the scan's top 1 %."""
TOP_FRACTION = 0.01


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


def normalise_top(image: np.ndarray, fraction: float = TOP_FRACTION) -> np.ndarray:
    """An intensity image divided by the mean of its top ``fraction`` of brain voxels.

    Study 4's normalisation: the brain is the image's non-zero voxels (the preprocessed
    T1w and FLAIR are brain-extracted). An image without brain voxels is returned as is.
    """
    brain = image[image > 0]
    if brain.size == 0:
        return image
    count = max(1, round(fraction * brain.size))
    top = np.partition(brain, brain.size - count)[brain.size - count :]
    return image / float(top.mean())


def quantise(values: np.ndarray) -> np.ndarray:
    """Normalised intensities as uint8 codes (steps of :data:`QUANT_STEP`, clipped)."""
    return np.clip(np.round(values / QUANT_STEP), 0, 255).astype(np.uint8)


def stored_volume(
    channel_paths: Sequence[str | Path], model_input: str, bbox: tuple[slice, ...]
) -> np.ndarray:
    """One scan's row of a cohort array, as stored: (channels, x, y, z) on the crop.

    Tissue maps as float16; T1w and FLAIR normalised (:func:`normalise_top`) and quantised
    to uint8 (:func:`quantise`). ``brainpad predict`` builds a new scan's inputs with this
    same function, so they match the training arrays bit for bit.
    """
    dtype = np.float16 if model_input == "tissue" else np.uint8
    shape = tuple(s.stop - s.start for s in bbox)
    out = np.empty((len(channel_paths), *shape), dtype=dtype)
    for c, path in enumerate(channel_paths):
        image = _load(path)
        if dtype == np.uint8:
            image = quantise(normalise_top(image))
        out[c] = image[bbox]
    return out


def mid_slice(volume: np.ndarray) -> np.ndarray:
    """The mid-axial slice (channels, x, y) of a (channels, x, y, z) volume."""
    return volume[:, :, :, volume.shape[3] // 2]


def as_values(stored: np.ndarray) -> np.ndarray:
    """Stored array values as the networks read them (float32; uint8 codes × step)."""
    return Quantised(stored)[...] if stored.dtype == np.uint8 else np.asarray(stored, np.float32)


def build_arrays(
    scans: pd.DataFrame,
    out_dir: str | Path,
    inputs: Sequence[str] = ("tissue",),
    margin: int = 2,
) -> dict:
    """Stack every scan's images into memory-mapped arrays, one pair per input.

    Parameters
    ----------
    scans : DataFrame
        One row per scan: ``scan_id`` plus one column of image paths per channel of the
        inputs (:data:`INPUT_CHANNELS`; ``GM`` and ``WM`` always, they set the crop).
    out_dir : path
        Where the arrays go (:func:`brainpad.paths.array_files`): per input, 3D volumes
        (scans, channels, x, y, z), cropped, and the mid-axial slices of the crop
        (scans, channels, x, y); one index TSV mapping array row → ``scan_id`` (and the
        crop, for writing maps back).
    inputs : sequence of str
        Model inputs to build.
    margin : int
        Voxels around the union brain.

    Returns
    -------
    dict
        ``shape`` and ``bbox`` of the crop.
    """
    from brainpad.paths import array_files

    bbox = union_bounding_box(scans[list(CHANNELS)].to_numpy(), margin)
    shape = tuple(s.stop - s.start for s in bbox)
    n = len(scans)
    for model_input in inputs:
        channels = INPUT_CHANNELS[model_input]
        files = array_files(out_dir, model_input)
        dtype = np.float16 if model_input == "tissue" else np.uint8
        paths = scans[list(channels)].to_numpy()
        with (
            atomic_path(files["volumes"]) as tmp_volume,
            atomic_path(files["slices"]) as tmp_slices,
        ):
            volumes = np.lib.format.open_memmap(
                tmp_volume, mode="w+", dtype=dtype, shape=(n, len(channels), *shape)
            )
            slices = np.lib.format.open_memmap(
                tmp_slices, mode="w+", dtype=dtype, shape=(n, len(channels), *shape[:2])
            )
            rows = tqdm(paths, desc=f"arrays {model_input}", disable=not os.isatty(2))
            for row, channel_paths in enumerate(rows):
                volumes[row] = stored_volume(channel_paths, model_input, bbox)
                slices[row] = mid_slice(volumes[row])
            volumes.flush()
            slices.flush()
            del volumes, slices
        log.info("arrays %s: %d scans x %d channels", model_input, n, len(channels))
    index = pd.DataFrame({"row": np.arange(n), "scan_id": scans["scan_id"].to_numpy()})
    for axis, s in zip("xyz", bbox, strict=True):
        index[f"crop_{axis}"] = f"{s.start}:{s.stop}"
    index.to_csv(array_files(out_dir)["index"], sep="\t", index=False)
    log.info("arrays: crop %s of the MNI grid", shape)
    return {"shape": shape, "bbox": bbox}


def crop_slices(index: pd.DataFrame) -> tuple[slice, ...]:
    """The MNI-grid crop of the cohort arrays, from their index table (``crop_x`` ...)."""
    first = index.iloc[0]
    bounds = [first[f"crop_{axis}"].split(":") for axis in "xyz"]
    return tuple(slice(int(a), int(b)) for a, b in bounds)


class Quantised:
    """A uint8 cohort array read back as float32 values (code × :data:`QUANT_STEP`).

    Indexing works like the array it wraps and reads only what is asked for.
    """

    def __init__(self, codes: np.ndarray) -> None:
        self.codes = codes

    @property
    def shape(self) -> tuple[int, ...]:
        return self.codes.shape

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, key) -> np.ndarray:
        return np.asarray(self.codes[key], dtype=np.float32) * np.float32(QUANT_STEP)


def open_volumes(path: str | Path) -> np.ndarray | Quantised:
    """A cohort array (volumes or slices), memory-mapped read-only; quantised intensity
    arrays are read back as values (:class:`Quantised`)."""
    array = np.load(path, mmap_mode="r")
    return Quantised(array) if array.dtype == np.uint8 else array


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
