"""Diffeomorphic deformations with a prescribed local volume change.

The simulation ages an anatomy by a deformation φ whose Jacobian determinant realises a
prescribed log-volume-change field L (negative where tissue is lost, positive where CSF
expands). Construction:

1. solve the Poisson equation ∇²Φ = L with Neumann boundaries (DCT), so the velocity
   v = ∇Φ has divergence L;
2. exponentiate the stationary velocity field, φ = exp(v), by scaling and squaring, which
   guarantees an invertible, smooth map with log|Jφ| ≈ div v;
3. measure the regional volume change ∑_R |Jφ| / |R| and correct the regional values of L
   until it matches the prescription (the first-order relation is not exact for large
   changes).

All fields live on one voxel grid and are expressed in voxel units; the voxels must be
isotropic. This module is deliberately independent of ``brainpad.preprocess``: the truth
must not share code with the pipeline that is scored against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft, ndimage


def solve_poisson(source: np.ndarray) -> np.ndarray:
    """Solve ∇²Φ = source (unit grid spacing) with zero-flux boundaries.

    The mean of ``source`` is removed first (a Neumann problem only has a solution for a
    zero-mean source).
    """
    src = np.asarray(source, dtype=np.float64)
    coeffs = fft.dctn(src - src.mean(), type=2, norm="ortho")
    eig = np.zeros(src.shape)
    for axis, n in enumerate(src.shape):
        k = np.arange(n)
        shape = [1] * src.ndim
        shape[axis] = n
        eig = eig + (2.0 * np.cos(np.pi * k / n) - 2.0).reshape(shape)
    eig.flat[0] = 1.0
    coeffs /= eig
    coeffs.flat[0] = 0.0
    return fft.idctn(coeffs, type=2, norm="ortho")


def velocity_from_divergence(log_change: np.ndarray) -> np.ndarray:
    """A curl-free velocity field (3, X, Y, Z) whose divergence is ``log_change``."""
    potential = solve_poisson(log_change)
    return np.stack(np.gradient(potential)).astype(np.float32)


def sample(volumes: np.ndarray, coords: np.ndarray, outside: str = "border") -> np.ndarray:
    """Trilinear samples of a stack of volumes at voxel coordinates.

    Parameters
    ----------
    volumes : ndarray, shape (C, X, Y, Z)
        Channels to sample.
    coords : ndarray, shape (3, ...)
        Voxel coordinates (x, y, z) of the sample points.
    outside : {"border", "zeros"}
        Value beyond the grid: the nearest edge value, or 0.

    Returns
    -------
    ndarray, shape (C, ...)
        float32 samples (torch's grid_sample: several times faster than
        scipy.ndimage.map_coordinates for this).
    """
    import torch  # lazily: importing this module (e.g. to plan a cohort) stays light

    volumes = np.ascontiguousarray(volumes, dtype=np.float32)
    sizes = np.array(volumes.shape[1:], dtype=np.float32).reshape(3, *([1] * (coords.ndim - 1)))
    normalised = 2.0 * np.asarray(coords, dtype=np.float32) / (sizes - 1.0) - 1.0
    grid = torch.from_numpy(np.ascontiguousarray(normalised[::-1].reshape(3, -1).T))
    with torch.no_grad():
        out = torch.nn.functional.grid_sample(
            torch.from_numpy(volumes)[None],
            grid.reshape(1, -1, 1, 1, 3),
            mode="bilinear",
            padding_mode=outside,
            align_corners=True,
        )
    return out.reshape(volumes.shape[0], *coords.shape[1:]).numpy()


def warp_points(displacement: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Move points (3, ...) by a displacement field sampled at them: x + u(x)."""
    return coords + sample(displacement, coords)


def _warp_field(field: np.ndarray, disp: np.ndarray) -> np.ndarray:
    """Sample each component of ``field`` at x + disp(x) (linear, edge-clamped)."""
    return sample(field, np.indices(field.shape[1:], dtype=np.float32) + disp)


def exponentiate(velocity: np.ndarray, max_step: float = 0.5) -> np.ndarray:
    """Displacement u of φ = exp(v), φ(x) = x + u(x), by scaling and squaring.

    Parameters
    ----------
    velocity : ndarray, shape (3, X, Y, Z)
        Stationary velocity field in voxels.
    max_step : float
        Largest displacement (voxels) of the initial small step.
    """
    peak = float(np.abs(velocity).max())
    n_squarings = max(0, int(np.ceil(np.log2(max(peak / max_step, 1.0)))))
    disp = velocity.astype(np.float32) / (2**n_squarings)
    for _ in range(n_squarings):
        disp = disp + _warp_field(disp, disp)
    return disp


def jacobian_determinant(disp: np.ndarray) -> np.ndarray:
    """Determinant of the Jacobian of x ↦ x + disp(x) (central differences)."""
    grads = [np.gradient(disp[i]) for i in range(3)]
    jac = np.empty((3, 3, *disp.shape[1:]), dtype=np.float32)
    for i in range(3):
        for j in range(3):
            jac[i, j] = grads[i][j] + (1.0 if i == j else 0.0)
    return (
        jac[0, 0] * (jac[1, 1] * jac[2, 2] - jac[1, 2] * jac[2, 1])
        - jac[0, 1] * (jac[1, 0] * jac[2, 2] - jac[1, 2] * jac[2, 0])
        + jac[0, 2] * (jac[1, 0] * jac[2, 1] - jac[1, 1] * jac[2, 0])
    )


def regional_mean(values: np.ndarray, regions: np.ndarray, n_regions: int) -> np.ndarray:
    """Mean of ``values`` within each integer region 0..n_regions-1."""
    flat = regions.ravel()
    counts = np.bincount(flat, minlength=n_regions).astype(np.float64)
    sums = np.bincount(flat, weights=values.ravel().astype(np.float64), minlength=n_regions)
    return sums / np.maximum(counts, 1.0)


@dataclass
class PrescribedDeformation:
    """Result of :func:`prescribed_deformation` (all fields in voxel units)."""

    velocity: np.ndarray  # (3, X, Y, Z) stationary velocity v
    displacement: np.ndarray  # (3, X, Y, Z) displacement of φ = exp(v)
    jacobian: np.ndarray  # |Jφ| per voxel
    achieved: np.ndarray  # realised log volume ratio per region
    level: np.ndarray  # regional source values that realise it


def prescribed_deformation(
    regions: np.ndarray,
    target_log_change: np.ndarray,
    compensation: np.ndarray,
    n_iterations: int = 3,
    gains: np.ndarray | None = None,
) -> PrescribedDeformation:
    """Velocity field whose exponential changes each region's volume as prescribed.

    Parameters
    ----------
    regions : ndarray of int
        Region index per voxel; region 0 is unconstrained.
    target_log_change : ndarray, shape (n_regions,)
        Prescribed log volume ratio per region (entry 0 ignored).
    compensation : ndarray of bool
        Voxels that absorb the net volume change (e.g. everything outside the head), so
        the Neumann problem is solvable; they should lie in region 0.
    n_iterations : int
        Correction passes after the first solution.
    gains : ndarray, optional
        Per-region ratio of source value to realised change, learnt on a similar
        prescription (``level / target`` of an earlier result). Used for the starting point
        and as the step size of the corrections (a Newton step with a diagonal Jacobian);
        default 1 (first-order relation).
    """
    n_regions = len(target_log_change)
    target = np.asarray(target_log_change, dtype=np.float64)
    gains = np.ones(n_regions) if gains is None else np.asarray(gains, dtype=np.float64)
    level = gains * target
    constrained = regions > 0
    n_comp = max(int(compensation.sum()), 1)
    for iteration in range(n_iterations + 1):
        source = np.where(constrained, level[regions], 0.0)
        source[compensation] -= source.sum() / n_comp
        velocity = velocity_from_divergence(source)
        displacement = exponentiate(velocity)
        jacobian = jacobian_determinant(displacement)
        achieved = np.log(np.maximum(regional_mean(jacobian, regions, n_regions), 1e-6))
        if iteration < n_iterations:
            level[1:] += gains[1:] * (target[1:] - achieved[1:])
    return PrescribedDeformation(velocity, displacement, jacobian, achieved, level)


def random_velocity(
    shape: tuple[int, ...],
    rng: np.random.Generator,
    smoothness: float,
    log_volume_sd: float,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Smooth random velocity field whose divergence has a given SD inside ``mask``.

    Parameters
    ----------
    shape : tuple of int
        Grid shape.
    rng : numpy.random.Generator
        Source of randomness.
    smoothness : float
        Gaussian sigma (voxels) of the smoothed white-noise potential.
    log_volume_sd : float
        Target standard deviation of div v (≈ local log volume change) inside ``mask``.
    mask : ndarray of bool, optional
        Where the SD is measured (default: everywhere).
    """
    potential = ndimage.gaussian_filter(rng.standard_normal(shape), smoothness)
    velocity = np.stack(np.gradient(potential)).astype(np.float32)
    divergence = sum(np.gradient(velocity[i])[i] for i in range(3))
    sd = float(divergence[mask].std() if mask is not None else divergence.std())
    return velocity * (log_volume_sd / max(sd, 1e-12))
