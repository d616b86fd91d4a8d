"""Blocks for networks that predict maps (``reads="blocks"``): training batches and validation.

A block network maps an input block of ``size_in``³ voxels to the central output block of
``size_out``³ voxels; the margin ``(size_in - size_out) / 2`` is context. Positions are
given by the *corner* of the output block in the coordinates of the (cropped) volume;
input voxels outside the volume read as zero. Training draws random blocks centred in the
brain from random training scans, straight from the memory-mapped cohort array
(:class:`BlockBatches`); whole-brain inference tiles the volume with MONAI's sliding
window (:func:`brainpad.training.inference.predict_map`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from brainpad.training.data import Batch


def margin(size_in: int, size_out: int) -> int:
    """Context voxels on each side of the output block."""
    if (size_in - size_out) % 2:
        msg = f"input block {size_in} and output block {size_out} must differ by an even number"
        raise ValueError(msg)
    return (size_in - size_out) // 2


def sample_corners(mask: np.ndarray, n: int, size_out: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` output-block corners whose block centre lies inside ``mask`` (the brain).

    Corners are clipped so the output block stays inside the volume.
    """
    inside = np.argwhere(mask)
    centres = inside[rng.integers(0, len(inside), n)]
    upper = np.array(mask.shape) - size_out
    return np.clip(centres - size_out // 2, 0, upper)


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
    the block and smooths focal effects away (:mod:`brainpad.local.planted`).

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


def validation_figures(
    errors: np.ndarray,
    predicted: np.ndarray,
    voxels: np.ndarray,
    scan: np.ndarray,
    ages: np.ndarray,
) -> dict[str, float]:
    """The two validation MAEs (years) of a set of blocks from the validation scans.

    Parameters
    ----------
    errors, predicted, voxels : ndarray, shape (blocks,)
        Per block: the sum over its brain output voxels of |predicted - age|, the sum of
        the predicted ages, and the number of those voxels.
    scan : ndarray of int, shape (blocks,)
        Which validation scan (0 … scans - 1) each block comes from.
    ages : ndarray, shape (scans,)
        The scans' ages (on the same scale as ``predicted``).

    Returns
    -------
    dict
        ``validation_voxel_mae``: MAE over all brain voxels of all blocks (each voxel's
        own estimate); ``validation_scan_mae``: MAE over scans of the mean predicted age
        of each scan's blocks (the global estimate the maps' mean gives).
    """
    scan_mean = np.bincount(scan, predicted) / np.maximum(np.bincount(scan, voxels), 1)
    return {
        "validation_voxel_mae": float(errors.sum() / max(voxels.sum(), 1)),
        "validation_scan_mae": float(np.abs(scan_mean - ages).mean()),
    }


class BlockBatches:
    """Batches of random blocks for networks that predict maps, and their validation.

    Every training step draws ``batch_size`` blocks centred in the brain from random
    training scans (:func:`training_batch`, seeded by epoch and step, with age mixing when
    ``mix_fraction`` > 0); every output voxel inside the brain is asked for its scan's age.
    Validation uses fixed blocks of the validation scans (``validation_blocks`` per scan)
    and reports both MAEs of :func:`validation_figures`; early stopping watches the one
    named by ``selection`` (``voxel`` or ``scan``).

    Parameters
    ----------
    array : ndarray or Standardised
        The cohort array (scans, channels, x, y, z).
    train, validation : (rows, ages)
        Array rows and ages of the training and early-stopping scans.
    mask : ndarray of bool
        The brain on the cropped grid.
    size_in, size_out : int
        Block geometry (voxels).
    params : dict
        ``batch_size, iterations_per_epoch, validation_blocks, selection``, optionally
        ``mix_fraction``.
    mix_edge : float
        Age mixing's ball edge, in voxels.
    seed : int
        Seed of the draws.
    device : torch.device
        Where batches go.
    age_mean, age_sd : float
        The training ages' scaling.
    """

    def __init__(
        self,
        array,
        train: tuple[np.ndarray, np.ndarray],
        validation: tuple[np.ndarray, np.ndarray],
        mask: np.ndarray,
        size_in: int,
        size_out: int,
        params: dict,
        mix_edge: float,
        seed: int,
        device,
        age_mean: float,
        age_sd: float,
    ) -> None:
        self.array, self.mask, self.size_in, self.size_out = array, mask, size_in, size_out
        self.rows, ages = train
        self.targets = (ages - age_mean) / age_sd
        self.batch_size = params["batch_size"]
        self.steps_per_epoch = params["iterations_per_epoch"]
        self.mixing = (params.get("mix_fraction", 0.0), mix_edge)
        self.selection = params["selection"]
        self.seed, self.device, self.age_mean, self.age_sd = seed, device, age_mean, age_sd
        rng = np.random.default_rng([seed, 10**6])
        self.val_scan = np.repeat(np.arange(len(validation[0])), params["validation_blocks"])
        self.val_targets = (validation[1][self.val_scan] - age_mean) / age_sd
        self.val_x, self.val_m = sample_blocks(
            array, validation[0][self.val_scan], mask, size_in, size_out, rng
        )
        self.val_voxels, self.val_ages = self.val_m.sum((1, 2, 3)), validation[1] - age_mean

    def _batch(self, x: np.ndarray, m: np.ndarray, y: np.ndarray):
        import torch

        y = torch.as_tensor(y, dtype=torch.float32, device=self.device)
        return Batch(torch.from_numpy(x).to(self.device), y, torch.from_numpy(m).to(self.device))

    def batches(self, epoch: int) -> Iterator[Batch]:
        """The epoch's ``iterations_per_epoch`` batches of random blocks."""
        for it in range(self.steps_per_epoch):
            rng = np.random.default_rng([self.seed, epoch, it])
            yield self._batch(
                *training_batch(
                    self.array, self.rows, self.targets, self.batch_size, self.mask,
                    self.size_in, self.size_out, rng, self.mixing,
                )
            )  # fmt: skip

    def validate(self, net, to_age) -> dict[str, float]:
        """Both validation MAEs on the fixed validation blocks; ``validation_mae`` is the
        one ``selection`` names."""
        import torch

        net.eval()
        n, size = len(self.val_scan), self.batch_size
        errors, predicted = np.zeros(n), np.zeros(n)
        with torch.no_grad():
            for i in range(0, n, size):
                window = slice(i, i + size)
                b = self._batch(self.val_x[window], self.val_m[window], self.val_targets[window])
                out = to_age(net(b.x)).float()
                errors[i : i + size] = (
                    ((out - b.y[:, None, None, None]).abs() * b.mask).sum((1, 2, 3)).cpu()
                )
                predicted[i : i + size] = (out * b.mask).sum((1, 2, 3)).cpu()
        figures = validation_figures(
            errors * self.age_sd, predicted * self.age_sd, self.val_voxels, self.val_scan,
            self.val_ages,
        )  # fmt: skip
        return {"validation_mae": figures[f"validation_{self.selection}_mae"], **figures}
