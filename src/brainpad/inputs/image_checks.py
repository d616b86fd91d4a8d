"""Sanity checks of one input image: the file, its header, its compressed payload, its voxels.

The checks run in an order that never trusts the file more than it has earned: the file
itself (exists, not a broken link, not empty), then the header alone (a grayscale, real
3D image whose declared size is below ``max_image_mb``), then the payload (gzip CRC and
length, enough bytes for what the header declares), and only then the voxels. A tiny
file that claims a 32767³ image is refused from its header, without allocating anything.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

CHUNK_BYTES = 1 << 20


def _unreadable(path: Path, reason: str) -> str:
    return (
        f"{path}: cannot be read ({reason}); the file is corrupt or truncated — "
        "re-export or re-copy it, or remove it from the dataset"
    )


def file_problem(path: str | Path) -> str | None:
    """What is wrong with the file as a file (a broken link, a folder, empty), or None."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        return (
            f"{path}: is a broken symbolic link to '{os.readlink(path)}' (the target does not "
            "exist); fix the link or copy the scan into the dataset"
        )
    if not path.exists():
        return f"{path}: does not exist; add the scan or remove it from the dataset"
    if not path.is_file():
        return f"{path}: is a folder, not an image file; remove it or move the scan into its place"
    if not os.access(path, os.R_OK):
        return f"{path}: is not readable (permission denied); fix its permissions (chmod u+r)"
    if path.stat().st_size == 0:
        return f"{path}: is empty (0 bytes); re-copy or re-export the scan"
    return None


def payload_bytes(path: str | Path, limit: int) -> int:
    """Bytes of image data in ``path``: the file size, or the gzip stream's decompressed
    length after checking its CRC and length (nibabel does not).

    Raises
    ------
    ValueError
        If the gzip stream is corrupt or cut short, or decompresses to more than ``limit``.
    """
    path = Path(path)
    if not path.name.endswith(".gz"):
        return path.stat().st_size
    total = 0
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(CHUNK_BYTES):
                total += len(chunk)
                if total > limit:
                    msg = f"decompresses to more than {limit / 2**20:.0f} MB"
                    raise ValueError(msg)
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
        reason = str(err).strip() or type(err).__name__
        raise ValueError(f"gzip data is corrupt: {reason}") from err
    return total


def header_problem(img: nib.Nifti1Image, path: Path, max_image_mb: float) -> str | None:
    """What the header alone rules out: non-scalar voxels, or a size above the limit."""
    dtype = img.get_data_dtype()
    if dtype.fields is not None or dtype.kind not in "biuf":
        kind = "RGB colour" if dtype.fields is not None else f"{dtype} ({dtype.kind})"
        if dtype.kind == "c":
            kind = "complex-valued"
        return (
            f"{path}: voxels are {kind}, but a grayscale structural image is expected; "
            "export the magnitude image as integers or floats"
        )
    size_mb = float(np.prod(img.shape, dtype=float)) * dtype.itemsize / 2**20
    if size_mb > max_image_mb:
        shape = " x ".join(str(s) for s in img.shape)
        return (
            f"{path}: header declares a {shape} image ({size_mb:,.0f} MB of voxels), more "
            f"than max_image_mb ({max_image_mb:g} MB); fix the header (dim) or, for a "
            "genuinely large scan, raise max_image_mb in the config"
        )
    return None


def check_image(
    path: str | Path, max_voxel_size_mm: float = 4.0, max_image_mb: float = 2048.0
) -> str | None:
    """Sanity-check one structural image; return a problem description or None.

    Checks, in order: the file (not a broken link, a folder or empty); the header
    (readable, scalar real voxels, declared size ≤ ``max_image_mb``); the payload (gzip
    CRC and length, at least the bytes the header declares); the voxels: 3D (a trailing
    singleton 4th axis is accepted), plausible voxel sizes (0 < size ≤
    ``max_voxel_size_mm``), finite, not all zero.
    """
    path = Path(path)
    if problem := file_problem(path):
        return problem
    try:
        img = nib.load(path)
    except Exception as err:  # nibabel raises many types for files it cannot parse
        return _unreadable(path, str(err).strip() or type(err).__name__)
    if problem := header_problem(img, path, max_image_mb):
        return problem
    declared = int(np.prod(img.shape)) * img.get_data_dtype().itemsize
    needed = int(img.header.get_data_offset()) + declared
    try:
        found = payload_bytes(path, limit=max(needed, 1) * 2 + CHUNK_BYTES)
    except ValueError as err:
        return _unreadable(path, str(err))
    if found < needed:
        return _unreadable(
            path, f"the header declares {needed:,} bytes of image, the file holds {found:,}"
        )
    try:
        data = np.asanyarray(img.dataobj)
    except Exception as err:  # a payload nibabel still cannot decode
        return _unreadable(path, str(err).strip() or type(err).__name__)
    return voxel_problem(data, img.affine, path, max_voxel_size_mm)


def voxel_problem(
    data: np.ndarray, affine: np.ndarray, path: Path, max_voxel_size_mm: float
) -> str | None:
    """What is wrong with the voxels of a readable image (dimensions, voxel size, values)."""
    shape = data.shape
    if data.ndim == 4 and shape[3] == 1:
        data = data[..., 0]
    if data.ndim > 3:
        return (
            f"{path}: image is {data.ndim}D with shape {shape}, but a 3D structural image "
            "is expected; keep one volume (e.g. `fslroi in out 0 1`) or average them"
        )
    if data.ndim < 3 or min(data.shape) < 2:
        return (
            f"{path}: image has shape {shape}, which is 2D, but a 3D structural image is "
            "expected; convert the full volume from DICOM again"
        )
    zooms = tuple(float(z) for z in nib.affines.voxel_sizes(affine))
    if not all(0 < z <= max_voxel_size_mm for z in zooms):
        sizes = " x ".join(f"{z:g}" for z in zooms)
        return (
            f"{path}: voxel size {sizes} mm is implausible (each must be > 0 and <= "
            f"{max_voxel_size_mm:g} mm); fix the header (pixdim/affine) or re-export the scan"
        )
    if data.dtype.kind == "f":
        bad = int(np.size(data) - np.isfinite(data).sum())
        if bad:
            return (
                f"{path}: {bad} voxel(s) are NaN or infinite; replace them (e.g. with 0) "
                "or re-export the scan"
            )
    if not np.any(data):
        return f"{path}: every voxel is zero; the scan is empty — re-export it or remove it"
    return None
