"""Failed acquisitions for the QC to catch: each corrupts one stored T1w scan.

``simulation.artefacts`` lists the kinds to plant, one healthy control's baseline T1w
each (:func:`brainpad.simulate.cohort.plan_cohort` picks them); the truth's ``scans.tsv``
records which scan carries which, so the QC can be scored against it.

- ``orientation``: the header's anterior–posterior axis is flipped (the voxels are
  unchanged): a mirror image that no rigid registration can undo.
- ``truncation``: the field of view ends 30 mm above the brain's centre (the slices
  above it are not acquired), cutting off the top of the head.
- ``ghosting``: a half-field-of-view (N/2) ghost along the phase-encoding axis
  (anterior–posterior) at half the image's intensity, as from motion or a timing fault.
- ``noise``: added noise of a third of the white-matter signal (an SNR near 3).
"""

from __future__ import annotations

import nibabel as nib
import numpy as np

from brainpad.simulate.scanner import HEAD_CENTRE_MM

ARTEFACTS = ("orientation", "truncation", "ghosting", "noise")
TRUNCATION_ABOVE_CENTRE_MM = 30.0
GHOST_AMPLITUDE = 0.5
NOISE_FRACTION = 0.33


def corrupt(img: nib.Nifti1Image, kind: str, rng: np.random.Generator) -> nib.Nifti1Image:
    """``img`` (a stored int16 scan) with the artefact ``kind`` (one of :data:`ARTEFACTS`)."""
    if kind not in ARTEFACTS:
        msg = f"unknown artefact {kind!r}; use one of {', '.join(ARTEFACTS)}"
        raise ValueError(msg)
    data = np.asarray(img.dataobj).astype(np.float32)
    affine = img.affine.copy()
    axes = nib.orientations.io_orientation(affine)[:, 0].astype(int)  # voxel axis -> R/A/S
    ap = int(np.flatnonzero(axes == 1)[0])
    if kind == "orientation":
        flip = np.eye(4)
        flip[ap, ap] = -1.0
        flip[ap, 3] = data.shape[ap] - 1
        affine = affine @ flip
    elif kind == "truncation":  # fewer slices: the field of view ends above the centre
        si = int(np.flatnonzero(axes == 2)[0])
        index = np.arange(data.shape[si])
        superior = affine[2, si] * index + affine[2, 3]  # the voxel axis is along S
        kept = index[superior <= HEAD_CENTRE_MM[2] + TRUNCATION_ABOVE_CENTRE_MM]
        data = np.take(data, kept, axis=si)
        shift = np.eye(4)
        shift[si, 3] = kept[0]
        affine = affine @ shift
    elif kind == "ghosting":
        data = data + GHOST_AMPLITUDE * np.roll(data, data.shape[ap] // 2, axis=ap)
    else:  # noise
        sigma = NOISE_FRACTION * float(np.percentile(data[data > 0], 90))
        data = np.hypot(data + rng.normal(0, sigma, data.shape), rng.normal(0, sigma, data.shape))
    stored = np.clip(np.rint(data), 0, np.iinfo(np.int16).max).astype(np.int16)
    out = nib.Nifti1Image(stored, affine, img.header)
    out.set_qform(affine, code=1)
    out.set_sform(affine, code=1)
    return out
