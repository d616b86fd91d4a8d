"""Voxelwise bias correction of brain-age maps (study 1, ``SCIENCE.md`` §1).

The voxel analogue of :mod:`brainpad.ensemble.correction`: each voxel's brain-PAD is
corrected by the mean brain-PAD of healthy calibration scans of the same age bin
(:class:`VoxelBias`, study 1) or by a linear fit of brain-PAD on age per voxel
(:class:`VoxelLinearBias`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def age_bin_edges(first: tuple[float, float] = (18, 25), width: float = 5, last: float = 100):
    """Study 1's age bins: ``first`` (18–25), then ``width``-year bins up to ``last``."""
    return [first[0], *np.arange(first[1], last + width / 2, width).tolist()]


@dataclass
class VoxelBias:
    """Voxelwise bias correction (study 1): the mean brain-PAD map per age bin.

    Fitted on healthy calibration scans; a scan aged in bin *b* is corrected by
    subtracting that bin's mean map: Δ̃ᵥ = Δᵥ − Δ̄_{b,v}. Ages below the first edge use
    the first bin, above the last edge the last bin.
    """

    edges: np.ndarray
    maps: np.ndarray
    counts: np.ndarray

    @classmethod
    def fit(
        cls, age: np.ndarray, delta: np.ndarray, edges: list[float], min_per_bin: int = 3
    ) -> VoxelBias:
        """Mean brain-PAD map per age bin; bins with fewer than ``min_per_bin`` scans are
        merged into a neighbour (with a warning naming them).

        Parameters
        ----------
        age : ndarray
            Ages of the calibration scans.
        delta : ndarray
            Their brain-PAD maps, (scans, x, y, z); NaN outside the brain.
        edges : list of float
            Bin edges (ascending).
        min_per_bin : int
            Fewest scans a bin may hold.
        """
        age = np.asarray(age, dtype=float)
        edges = np.asarray(edges, dtype=float)
        if age.size < min_per_bin:
            msg = (
                f"voxelwise bias correction needs at least {min_per_bin} calibration scans, "
                f"got {age.size}; raise folds.calibration_fraction or add controls"
            )
            raise ValueError(msg)
        counts = np.bincount(_bin_of(age, edges), minlength=len(edges) - 1)
        merged = []
        while len(counts) > 1 and counts.min() < min_per_bin:
            k = int(np.argmin(counts))
            if k == 0:
                j = 1
            elif k == len(counts) - 1:
                j = k - 1
            else:
                j = k - 1 if counts[k - 1] <= counts[k + 1] else k + 1
            merged.append(f"{edges[k]:g}-{edges[k + 1]:g}")
            lo, hi = min(j, k), max(j, k)
            edges = np.delete(edges, hi)  # the shared edge goes
            counts = np.r_[counts[:lo], counts[lo] + counts[hi], counts[hi + 1 :]]
        if merged:
            log.warning(
                f"voxelwise bias correction: age bins {', '.join(merged)} held fewer than "
                f"{min_per_bin} calibration scans and were merged with a neighbour; final bins "
                f"{[f'{a:g}-{b:g}' for a, b in pairwise(edges)]}"
            )
        bins = _bin_of(age, edges)
        maps = np.stack([_nanmean(delta[bins == b]) for b in range(len(edges) - 1)])
        return cls(edges=edges, maps=maps.astype(np.float32), counts=counts)

    def correct(self, age: float, delta: np.ndarray) -> np.ndarray:
        """The corrected brain-PAD map of one scan aged ``age``."""
        return delta - self.maps[_bin_of(np.array([age]), self.edges)[0]]


@dataclass
class VoxelLinearBias:
    """Voxelwise linear bias correction: Δᵥ = αᵥ·age + βᵥ fitted per voxel.

    The global correction's regression, voxel by voxel, on the healthy calibration scans;
    a scan is corrected by Δ̃ᵥ = Δᵥ − (αᵥ·age + βᵥ). Study 1's age bins need many
    calibration scans per bin; with few (the demo holds 14), the bins are merged until a
    bin spans decades, and the age dependence within a bin stays. The line uses every
    calibration scan for every age. Voxels with fewer than 3 finite values are NaN.
    """

    alpha: np.ndarray
    beta: np.ndarray
    n: int

    @classmethod
    def fit(cls, age: np.ndarray, delta: np.ndarray) -> VoxelLinearBias:
        """Per-voxel ordinary least squares of brain-PAD on age.

        Parameters
        ----------
        age : ndarray
            Ages of the calibration scans.
        delta : ndarray
            Their brain-PAD maps, (scans, ...); NaN outside the brain.
        """
        age = np.asarray(age, dtype=float)
        if age.size < 3 or np.ptp(age) == 0:
            msg = (
                f"voxelwise linear bias correction needs at least 3 calibration scans of "
                f"different ages, got {age.size} (ages {sorted(set(age.tolist()))}); raise "
                f"folds.calibration_fraction or add controls"
            )
            raise ValueError(msg)
        finite = np.isfinite(delta)
        ages = np.where(finite, age.reshape((-1,) + (1,) * (delta.ndim - 1)), 0.0)
        values = np.where(finite, delta, 0.0)
        n = finite.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_age = ages.sum(axis=0) / n
            mean_delta = values.sum(axis=0) / n
            centred = np.where(finite, ages - mean_age, 0.0)
            sxx = (centred**2).sum(axis=0)
            alpha = (centred * (values - mean_delta)).sum(axis=0) / sxx
        valid = (n >= 3) & (sxx > 0)
        alpha = np.where(valid, alpha, np.nan)
        beta = np.where(valid, mean_delta - alpha * mean_age, np.nan)
        return cls(alpha=alpha.astype(np.float32), beta=beta.astype(np.float32), n=age.size)

    def correct(self, age: float, delta: np.ndarray) -> np.ndarray:
        """The corrected brain-PAD map of one scan aged ``age``."""
        return delta - (self.alpha * age + self.beta)


VOXEL_METHODS = ("bins", "linear")


def fit_voxel_bias(
    method: str, age: np.ndarray, delta: np.ndarray, edges: list[float], min_per_bin: int
) -> VoxelBias | VoxelLinearBias:
    """The voxelwise correction ``method`` (``bins``: study 1's age bins; ``linear``)."""
    if method == "bins":
        return VoxelBias.fit(age, delta, edges, min_per_bin)
    if method == "linear":
        return VoxelLinearBias.fit(age, delta)
    msg = f"debias.voxel_method {method!r} is not one of {', '.join(VOXEL_METHODS)}"
    raise ValueError(msg)


def _bin_of(age: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each age (clipped to the first and last bin)."""
    return np.clip(np.searchsorted(edges, age, side="right") - 1, 0, len(edges) - 2)


def _nanmean(stack: np.ndarray) -> np.ndarray:
    """Mean over the first axis ignoring NaN; NaN where no value is finite (no warning)."""
    finite = np.isfinite(stack)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(finite, stack, 0).sum(axis=0) / finite.sum(axis=0)


def save_voxel_bias(
    bias: VoxelBias | VoxelLinearBias, path: str | Path, template: str | Path, crop: tuple
) -> None:
    """Write a fitted voxelwise correction as a 4D NIfTI on the template grid and a JSON.

    The volumes are the per-bin mean brain-PAD maps (``bins``) or the α and β maps
    (``linear``), NaN outside the arrays' crop; the JSON sidecar (same name, ``.json``)
    holds the method and its bin edges or calibration count. :func:`load_voxel_bias`
    reads it back on the crop, so ``brainpad predict`` corrects maps as the run did.
    """
    import nibabel as nib

    grid = nib.load(template)
    if isinstance(bias, VoxelBias):
        volumes = bias.maps
        meta = {"method": "bins", "edges": bias.edges.tolist(), "counts": bias.counts.tolist()}
    else:
        volumes = np.stack([bias.alpha, bias.beta])
        meta = {"method": "linear", "n": int(bias.n)}
    full = np.full((*grid.shape[:3], len(volumes)), np.nan, dtype=np.float32)
    full[crop] = np.moveaxis(volumes, 0, -1)
    nib.save(nib.Nifti1Image(full, grid.affine), path)
    sidecar_path(path).write_text(json.dumps(meta, indent=2) + "\n")


def load_voxel_bias(path: str | Path, crop: tuple) -> VoxelBias | VoxelLinearBias:
    """A correction written by :func:`save_voxel_bias`, on the arrays' crop."""
    import nibabel as nib

    meta = json.loads(sidecar_path(path).read_text())
    volumes = np.moveaxis(np.asarray(nib.load(path).dataobj, dtype=np.float32)[crop], -1, 0)
    if meta["method"] == "bins":
        edges, counts = np.asarray(meta["edges"]), np.asarray(meta["counts"])
        return VoxelBias(edges=edges, maps=volumes, counts=counts)
    return VoxelLinearBias(alpha=volumes[0], beta=volumes[1], n=meta["n"])


def sidecar_path(path: str | Path) -> Path:
    """``voxel_bias.nii.gz`` → ``voxel_bias.json``."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(".gz").removesuffix(".nii") + ".json")
