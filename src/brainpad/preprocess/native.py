"""The scan in its own space: read as RAS, a working copy on the working grid, N4, and a
first guess of where its brain is (:func:`centre_start`)."""

from __future__ import annotations

from pathlib import Path

import ants
import nibabel as nib
import numpy as np
from scipy import ndimage


def to_ants(data: np.ndarray, affine: np.ndarray) -> ants.ANTsImage:
    """An ANTs image from an array and its NIfTI (RAS) affine."""
    img = nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine)
    img.header.set_xyzt_units("mm", "sec")
    return ants.from_nibabel_nifti(img)


def load_canonical(path: str | Path) -> ants.ANTsImage:
    """Read a scan, reorient its voxel axes to RAS and return it as a float ANTs image."""
    img = nib.as_closest_canonical(nib.load(path))
    data = np.asarray(img.dataobj, dtype=np.float32)
    if data.ndim == 4:
        data = data[..., 0]
    return to_ants(data, img.affine)


FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def working_copy(image: ants.ANTsImage, voxel_mm: float) -> ants.ANTsImage:
    """``image`` on a grid of ``voxel_mm`` voxels, smoothed first so that it does not alias.

    Every stage samples the scan on the working grid (``voxel_mm``): a 1 mm scan sampled
    every 4 mm without smoothing keeps single voxels of noise, vessels and dura, a speckle
    that the template (an average of many heads) lacks and that lowers the registration's
    metric and the QC similarity. The Gaussian brings each axis to a resolution of
    ``voxel_mm`` (FWHM), as ANTs' shrink factors do with their smoothing sigmas; N4 and the
    registration then cost a fraction of their time at full resolution. A scan whose
    voxels are already near ``voxel_mm`` (the simulated cohort) is returned unchanged.
    The transforms fitted on the copy are in physical space: they apply to the original.
    """
    spacing = np.asarray(image.spacing, dtype=float)
    if spacing.min() >= 0.75 * voxel_mm:
        return image
    sigma_mm = np.sqrt(np.maximum(voxel_mm**2 - spacing**2, 0.0)) / FWHM_PER_SIGMA
    smoothed = ants.smooth_image(image, sigma_mm.tolist(), sigma_in_physical_coordinates=True)
    target = tuple(max(float(s), voxel_mm) for s in spacing)
    return ants.resample_image(smoothed, target, use_voxels=False, interp_type=0)


N4_GRID_MM = 16.0
"""The voxel of the grid N4 fits the bias field on. The field is a B-spline with knots
200 mm apart: 16 mm samples it 12 times a knot span. On the demo's 4 mm scans N4 took
3-4.5x less time than on an 8 mm grid, with nearly the same corrected image (r 0.992-0.9999
in the head; ``benchmarks/bias_field.py``, docs/benchmarks.md#qc-on-a-real-head)."""


def bias_correct(image: ants.ANTsImage, shrink_to_mm: float = N4_GRID_MM) -> ants.ANTsImage:
    """N4 bias-field correction inside a rough head mask, scaled to a median of 1.

    The field is fitted on a grid of about ``shrink_to_mm`` voxels (:data:`N4_GRID_MM`):
    the bias field varies over tens of centimetres, and N4 at full resolution costs tens
    of times more.
    """
    data = image.numpy()
    positive = data[data > 0]
    head = ants.get_mask(
        image,
        low_thresh=float(np.percentile(positive, 20)),
        high_thresh=float(data.max()) + 1.0,
        cleanup=2,
    )
    shrink = max(1, round(shrink_to_mm / min(image.spacing)))
    corrected = ants.n4_bias_field_correction(
        image,
        mask=head,
        shrink_factor=shrink,
        convergence={"iters": [30, 20, 10], "tol": 1e-5},
    )
    values = corrected.numpy()
    return corrected / float(np.median(values[head.numpy() > 0]))


SCALP_MM = 12.0
"""Typical distance from the top of the head to the top of the brain (scalp and skull)."""
MIN_SLICE_MM2 = 500.0
"""An axial slice belongs to the head (or the brain) when it holds more than 5 cm² of it."""


def _physical(image: ants.ANTsImage, index: np.ndarray) -> np.ndarray:
    """The physical point of a (fractional) voxel index."""
    spacing = np.asarray(image.spacing) * np.asarray(index, dtype=float)
    return np.asarray(image.origin) + np.asarray(image.direction) @ spacing


def _top_and_centre(mask: np.ndarray, spacing: tuple, depth_mm: float) -> np.ndarray:
    """The voxel ``depth_mm`` below the top of ``mask``, at the centre of the mask's
    axial slab there (±10 mm, holes filled): x and y of a head's or brain's middle."""
    area = mask.sum(axis=(0, 1)) * spacing[0] * spacing[1]
    top = int(np.flatnonzero(area > MIN_SLICE_MM2).max())
    z = top - depth_mm / spacing[2]
    half = 10.0 / spacing[2]
    lo, hi = max(0, round(z - half)), max(1, round(z + half) + 1)
    slab = np.stack([ndimage.binary_fill_holes(mask[:, :, k]) for k in range(lo, hi)], axis=-1)
    x, y, _ = ndimage.center_of_mass(slab)
    return np.array([x, y, z])


def centre_start(image: ants.ANTsImage, template_mask: ants.ANTsImage, path: str) -> str:
    """A translation that puts the scan's brain on the template brain: the first guess of
    the registration, written to ``path`` (an ANTs transform file).

    A real head has a neck, a face and a field of view of its own: the centre of its
    intensities (ANTs' default start) lies 3-5 cm from the brain's, and from there a rigid
    of the head onto the brain-only template can settle on a tilted pose. The top of the
    head does not move with any of that: the brain's centre is taken as :data:`SCALP_MM`
    plus the template's distance from the top of its brain to its centre below the top of
    the head (voxels above a quarter of the bright intensities), in the middle of the head
    at that height.
    """
    data = image.numpy()
    bright = np.percentile(data[data > 0], 90)
    head = ndimage.binary_opening(data > 0.25 * bright, iterations=1)
    brain = template_mask.numpy() > 0
    area = brain.sum(axis=(0, 1)) * template_mask.spacing[0] * template_mask.spacing[1]
    template_top = np.flatnonzero(area > MIN_SLICE_MM2).max()
    depth_mm = (template_top - ndimage.center_of_mass(brain)[2]) * template_mask.spacing[2]
    scan_centre = _top_and_centre(head, image.spacing, SCALP_MM + depth_mm)
    template_centre = _top_and_centre(brain, template_mask.spacing, depth_mm)
    shift = _physical(image, scan_centre) - _physical(template_mask, template_centre)
    transform = ants.create_ants_transform(
        transform_type="Euler3DTransform", dimension=3, translation=shift.tolist()
    )
    ants.write_transform(transform, path)
    return path
