"""Blocks for the voxelwise U-Net: sampling training batches and tiling whole brains.

A block network maps an input block of ``size_in``³ voxels to the central output block of
``size_out``³ voxels; the margin ``(size_in - size_out) / 2`` is context. Positions are
given by the *corner* of the output block in the coordinates of the (cropped) volume;
input voxels outside the volume read as zero.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def margin(size_in: int, size_out: int) -> int:
    """Context voxels on each side of the output block."""
    if (size_in - size_out) % 2:
        msg = f"input block {size_in} and output block {size_out} must differ by an even number"
        raise ValueError(msg)
    return (size_in - size_out) // 2


def padded(volume: np.ndarray, size_in: int, size_out: int) -> np.ndarray:
    """``volume`` (channels, x, y, z) as float32, zero-padded by the block margin."""
    m = margin(size_in, size_out)
    return np.pad(np.asarray(volume, dtype=np.float32), [(0, 0)] + [(m, m)] * 3)


def extract(padded_volume: np.ndarray, corners: np.ndarray, size_in: int) -> np.ndarray:
    """Input blocks (n, channels, s, s, s) at output-block ``corners`` of a padded volume.

    In padded coordinates the input block of output corner ``c`` starts at ``c`` itself.
    """
    blocks = np.empty((len(corners), padded_volume.shape[0], *(size_in,) * 3), np.float32)
    for k, (x, y, z) in enumerate(np.asarray(corners, dtype=int)):
        blocks[k] = padded_volume[:, x : x + size_in, y : y + size_in, z : z + size_in]
    return blocks


def sample_corners(mask: np.ndarray, n: int, size_out: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` output-block corners whose block centre lies inside ``mask`` (the brain).

    Corners are clipped so the output block stays inside the volume.
    """
    inside = np.argwhere(mask)
    centres = inside[rng.integers(0, len(inside), n)]
    upper = np.array(mask.shape) - size_out
    return np.clip(centres - size_out // 2, 0, upper)


def tile_corners(shape: tuple[int, ...], size_out: int, overlap: int = 0) -> np.ndarray:
    """Output-block corners covering a volume of ``shape``, neighbours overlapping by
    ``overlap`` voxels (the last tile on each axis is aligned with the far edge)."""
    step = size_out - overlap
    if step < 1:
        msg = f"overlap {overlap} must be smaller than the output block {size_out}"
        raise ValueError(msg)
    axes = []
    for n in shape:
        last = max(n - size_out, 0)
        starts = list(range(0, last + 1, step))
        if starts[-1] != last:
            starts.append(last)
        axes.append(starts)
    grid = np.meshgrid(*axes, indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=1)


def stitch(
    predict: Callable[[np.ndarray], np.ndarray],
    volume: np.ndarray,
    mask: np.ndarray,
    size_in: int,
    size_out: int,
    overlap: int = 0,
    batch_size: int = 8,
) -> np.ndarray:
    """Tile a whole volume, predict every tile that touches ``mask``, average overlaps.

    Parameters
    ----------
    predict : callable
        Input blocks (n, channels, s_in, s_in, s_in) → output blocks (n, s_out, s_out, s_out).
    volume : ndarray
        (channels, x, y, z) maps of one scan.
    mask : ndarray of bool
        (x, y, z) voxels to predict (the brain).
    size_in, size_out, overlap : int
        Block geometry and tile overlap (voxels).
    batch_size : int
        Tiles per call of ``predict`` (bounds memory on GPU and CPU alike).

    Returns
    -------
    ndarray
        (x, y, z) float32 map; NaN outside ``mask``.
    """
    source = padded(volume, size_in, size_out)
    corners = tile_corners(mask.shape, size_out, overlap)
    touches = [
        mask[x : x + size_out, y : y + size_out, z : z + size_out].any() for x, y, z in corners
    ]
    corners = corners[np.asarray(touches, dtype=bool)]
    total = np.zeros(mask.shape, np.float64)
    count = np.zeros(mask.shape, np.int32)
    for start in range(0, len(corners), batch_size):
        chunk = corners[start : start + batch_size]
        out = predict(extract(source, chunk, size_in))
        for (x, y, z), block in zip(chunk, out, strict=True):
            total[x : x + size_out, y : y + size_out, z : z + size_out] += block
            count[x : x + size_out, y : y + size_out, z : z + size_out] += 1
    result = np.full(mask.shape, np.nan, np.float32)
    covered = mask & (count > 0)
    result[covered] = (total[covered] / count[covered]).astype(np.float32)
    return result


def read_block(
    volumes: np.ndarray, row: int, corner: np.ndarray, size_in: int, size_out: int
) -> np.ndarray:
    """One input block (channels, s, s, s) read straight from a (memory-mapped) cohort array.

    Only the window is read from disk; the parts outside the volume are zeros.
    """
    m = margin(size_in, size_out)
    shape = np.array(volumes.shape[2:])
    lo = np.asarray(corner, dtype=int) - m
    hi = lo + size_in
    src_lo, src_hi = np.maximum(lo, 0), np.minimum(hi, shape)
    block = np.zeros((volumes.shape[1], size_in, size_in, size_in), np.float32)
    dst = tuple(slice(a - b, c - b) for a, b, c in zip(src_lo, lo, src_hi, strict=True))
    src = tuple(slice(a, c) for a, c in zip(src_lo, src_hi, strict=True))
    block[(slice(None), *dst)] = volumes[(row, slice(None), *src)]
    return block


def mixing_ball(size_in: int, size_out: int, edge: float, rng: np.random.Generator) -> np.ndarray:
    """Weights (0–1) of a soft ball over an input block, for age mixing.

    The ball's centre is uniform in the output block and its radius uniform between a fifth
    of the output edge and the whole edge, so it covers anything from a small patch to all
    of the output block; its edge is logistic with scale ``edge`` voxels.

    Returns
    -------
    ndarray
        (size_in, size_in, size_in) float32 weights, 1 well inside the ball, 0 far outside.
    """
    centre = (size_in - 1) / 2 + rng.uniform(-size_out / 2, size_out / 2, 3)
    radius = rng.uniform(size_out / 5, size_out)
    axis = np.arange(size_in, dtype=np.float64)
    squared = sum(
        ((axis - c) ** 2).reshape([-1 if k == a else 1 for k in range(3)])
        for a, c in enumerate(centre)
    )
    inside = (radius - np.sqrt(squared)) / edge
    return (0.5 * (1.0 + np.tanh(inside / 2))).astype(np.float32)  # the logistic, overflow-free


def blocks_at(
    volumes: np.ndarray,
    rows: np.ndarray,
    corners: np.ndarray,
    mask: np.ndarray,
    size_in: int,
    size_out: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Input blocks of the given array rows at output-block ``corners``, and the brain
    mask of each output block."""
    x = np.stack(
        [read_block(volumes, r, c, size_in, size_out) for r, c in zip(rows, corners, strict=True)]
    )
    m = np.stack(
        [mask[cx : cx + size_out, cy : cy + size_out, cz : cz + size_out] for cx, cy, cz in corners]
    )
    return x, m.astype(np.float32)


def sample_blocks(
    volumes: np.ndarray,
    rows: np.ndarray,
    mask: np.ndarray,
    size_in: int,
    size_out: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """One input block per array row, centred in the brain, and its output-block mask."""
    corners = sample_corners(mask, len(rows), size_out, rng)
    return blocks_at(volumes, rows, corners, mask, size_in, size_out)


def training_batch(
    volumes: np.ndarray,
    rows: np.ndarray,
    targets: np.ndarray,
    batch: int,
    mask: np.ndarray,
    size_in: int,
    size_out: int,
    rng: np.random.Generator,
    mixing: tuple[float, float] = (0.0, 1.0),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One training step's blocks: inputs, output masks and voxel targets.

    ``batch`` blocks are drawn from random training scans (array ``rows``, ages
    ``targets``) at random places in the brain; every output voxel's target is its scan's
    age. With age mixing (``mixing = (fraction, edge voxels)``, fraction > 0) that share of
    the blocks gets a soft ball (:func:`mixing_ball`) of another random
    training scan's maps from the same place, and each output voxel's target becomes the
    same mix of the two ages. Every voxel then has to be read from its own neighbourhood:
    a block's context no longer tells a voxel's age. Study 1 trained without mixing (every
    voxel of a block shares the whole-brain age), which rewards reading age from anywhere in
    the block and smooths focal effects away (:mod:`brainpad.planted`).

    Returns
    -------
    x : ndarray
        (batch, channels, s_in, s_in, s_in) inputs.
    m : ndarray
        (batch, s_out, s_out, s_out) brain mask of the output blocks (float).
    y : ndarray
        (batch, s_out, s_out, s_out) voxel targets.
    """
    pick = rng.integers(0, len(rows), batch)
    corners = sample_corners(mask, batch, size_out, rng)
    x, m = blocks_at(volumes, rows[pick], corners, mask, size_in, size_out)
    y = np.repeat(np.asarray(targets, np.float32)[pick], size_out**3).reshape(m.shape)
    fraction, edge = mixing
    if fraction > 0:
        lo = margin(size_in, size_out)
        inner = (slice(lo, lo + size_out),) * 3
        for i in np.flatnonzero(rng.random(batch) < fraction):
            other = rng.integers(0, len(rows))
            ball = mixing_ball(size_in, size_out, edge, rng)
            x[i] = (1 - ball) * x[i] + ball * read_block(
                volumes, rows[other], corners[i], size_in, size_out
            )
            y[i] = (1 - ball[inner]) * y[i] + ball[inner] * np.float32(targets[other])
    return x, m, y
