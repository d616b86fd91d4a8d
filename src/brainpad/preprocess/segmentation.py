"""Tissue segmentation in template space and Jacobian modulation."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import ants
import numpy as np

from brainpad.paths import TISSUES

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def segment(
    warped: ants.ANTsImage,
    priors: list[ants.ANTsImage],
    mask: ants.ANTsImage,
    prior_weight: float = 0.25,
    iterations: int = 3,
) -> dict[str, np.ndarray]:
    """Three-class Atropos segmentation with the template's CSF, GM and WM priors.

    Parameters
    ----------
    warped : ANTsImage
        The scan resampled into template space.
    priors : list of ANTsImage
        CSF, GM and WM probability maps on the same grid.
    mask : ANTsImage
        Template brain mask.
    prior_weight : float
        Atropos prior weight (0: data only, 1: priors only).
    iterations : int
        Maximum EM iterations.

    Returns
    -------
    dict
        Posterior probability per tissue (``CSF``, ``GM``, ``WM``), zero outside the mask.
    """
    # r=0: Atropos seeds its random generator with a constant (its default is a random
    # seed, which makes two runs on the same scan differ)
    with _private_tempdir():
        result = ants.atropos(
            a=warped,
            x=mask,
            i=priors,
            m="[0.1,1x1x1]",
            c=f"[{iterations},0]",
            priorweight=prior_weight,
            r=0,
        )
        return {t: p.numpy() for t, p in zip(TISSUES, result["probabilityimages"], strict=True)}


@contextmanager
def _private_tempdir() -> Iterator[None]:
    """Point :mod:`tempfile` at a folder deleted on exit.

    ``ants.atropos`` writes its prior and posterior images under names from
    ``tempfile.mktemp`` and never removes them: ~350 kB left in the system temp folder
    per scan (0.5 GB after a few thousand scans on a cluster node's /tmp).
    """
    previous = tempfile.tempdir
    with tempfile.TemporaryDirectory(prefix="brainpad-atropos-") as folder:
        tempfile.tempdir = folder
        try:
            yield
        finally:
            tempfile.tempdir = previous


def modulate_and_smooth(
    probabilities: dict[str, np.ndarray], jacobian: np.ndarray, like: ants.ANTsImage, fwhm_mm: float
) -> dict[str, np.ndarray]:
    """Tissue volume per voxel (probability × |J|), optionally Gaussian-smoothed.

    Smoothing preserves the total (values stay mm³-per-voxel fractions), so summing a map
    and multiplying by the voxel volume gives that tissue's volume.
    """
    out = {}
    for tissue, probability in probabilities.items():
        modulated = probability * jacobian
        if fwhm_mm > 0:
            image = like.new_image_like(modulated.astype(np.float32))
            modulated = ants.smooth_image(
                image, fwhm_mm * FWHM_TO_SIGMA, sigma_in_physical_coordinates=True
            ).numpy()
        out[tissue] = modulated.astype(np.float32)
    return out
