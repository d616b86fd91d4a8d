"""Reorientation, N4 bias correction, brain extraction and registration to MNI (ANTsPy).

Brain extraction is done by registration: the template brain mask is carried back into
the scan through an affine fitted on the head, so scans with and without skull work the
same way. The nonlinear (SyN) registration is then fitted on the extracted brain.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import ants
import nibabel as nib
import numpy as np
from scipy import ndimage

from brainpad.preprocess.qc import similarity

log = logging.getLogger(__name__)


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


def bias_correct(image: ants.ANTsImage, shrink_to_mm: float = 8.0) -> ants.ANTsImage:
    """N4 bias-field correction inside a rough head mask, scaled to a median of 1.

    The field is fitted on a grid of about ``shrink_to_mm`` voxels: the bias field varies
    over tens of centimetres, and N4 at full resolution costs ten times more.
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


@dataclass
class Registration:
    """Result of :func:`register`: native-space brain mask and transforms to MNI.

    ``forward`` warps the scan into template space (``[warp, affine]``, ANTs order);
    ``inverse`` brings template images into the scan (``[affine, inverse warp]`` with the
    affine inverted).
    """

    brain_mask: ants.ANTsImage
    warped: ants.ANTsImage
    forward: list[str]
    inverse: list[str]
    workdir: Path
    orientation: dict[str, float] = field(default_factory=dict)

    def save(
        self, affine_path: str | Path, warp_path: str | Path, inverse_warp_path: str | Path
    ) -> None:
        """Copy the transform files to their final names."""
        shutil.copyfile(self.forward[1], affine_path)
        shutil.copyfile(self.forward[0], warp_path)
        shutil.copyfile(self.inverse[1], inverse_warp_path)

    def affine_determinant(self) -> float:
        """Volume ratio scan / template of the affine part (head size)."""
        matrix = np.asarray(ants.read_transform(self.forward[1]).parameters[:9]).reshape(3, 3)
        return float(abs(np.linalg.det(matrix)))

    def brain_mask_on(self, image: ants.ANTsImage) -> ants.ANTsImage:
        """The brain mask on ``image``'s grid (the scan at its own resolution, when the
        registration ran on a :func:`working_copy`)."""
        if image.shape == self.brain_mask.shape and np.allclose(
            image.spacing, self.brain_mask.spacing
        ):
            return self.brain_mask
        resampled = ants.resample_image_to_target(self.brain_mask, image, interp_type="linear")
        return ants.threshold_image(resampled, 0.5, 2.0)

    def cleanup(self) -> None:
        """Remove the temporary transform files."""
        shutil.rmtree(self.workdir, ignore_errors=True)


def _linear(
    template: ants.ANTsImage,
    image: ants.ANTsImage,
    metric_mask: ants.ANTsImage,
    prefix: str,
    kind: str = "Affine",
    initial: str | None = None,
    finest_mm: float = 4.0,
) -> dict:
    """Rigid or affine registration, never finer than about ``finest_mm``.

    A linear transform has 6 or 12 parameters: voxels finer than ~4 mm add cost, not
    accuracy (at 2 mm, stopping at 4 mm makes this stage 3x faster). The levels are the
    same in millimetres on every working grid (shrink factors to about 4, 2 and 1 times
    ``finest_mm``, smoothing sigmas of 2, 1 and 0 times ``finest_mm``): in voxels, a 2 mm
    template was smoothed half as much as a 4 mm one, and a real head's rigid then went
    astray. A refinement (``initial`` given) skips the coarsest level.
    """
    finest = max(1, round(finest_mm / min(template.spacing)))
    if initial:
        levels = ((2 * finest, finest), (finest_mm, 0), (60, 30))
    else:
        levels = ((4 * finest, 2 * finest, finest), (2 * finest_mm, finest_mm, 0), (150, 75, 25))
    return ants.registration(
        template,
        image,
        type_of_transform=kind,
        mask=metric_mask,
        initial_transform=initial,
        aff_shrink_factors=levels[0],
        aff_smoothing_sigmas=levels[1],
        aff_iterations=levels[2],
        smoothing_in_mm=True,
        outprefix=prefix,
    )


def _voxels(mm: float, image: ants.ANTsImage) -> int:
    """A distance in mm as a whole number of (the smallest) voxels, at least 1."""
    return max(1, round(mm / min(image.spacing)))


def _carry_mask(
    image: ants.ANTsImage, template_mask: ants.ANTsImage, inverse: list[str], dilation: int
) -> ants.ANTsImage:
    """Bring the template brain mask into the scan through inverse transforms.

    ``inverse`` is ANTs' ``invtransforms`` list; its affine (``.mat``) must be inverted
    explicitly (ANTsPy only guesses that for a [matrix, warp] pair).
    """
    invert = [name.endswith(".mat") for name in inverse]
    carried = ants.apply_transforms(
        image, template_mask, inverse, whichtoinvert=invert, interpolator="linear"
    )
    mask = ants.threshold_image(carried, 0.5, 2.0)
    return ants.morphology(mask, "dilate", dilation) if dilation else mask


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


def centre_start(
    image: ants.ANTsImage, template_mask: ants.ANTsImage, path: str
) -> str:
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


FLIPS = {"anterior-posterior": 1, "superior-inferior": 2}
"""Mirrorings of a RAS scan that a wrong header can cause and a rigid cannot undo
(left-right is left out: the symmetric template cannot tell it)."""


def orientation_scores(
    brain: ants.ANTsImage, template: ants.ANTsImage, metric_mask: ants.ANTsImage, prefix: str
) -> dict[str, float]:
    """How well the extracted brain matches the template brain as stored and mirrored
    along each of :data:`FLIPS`: the correlation with the template after an affine, in the
    metric mask (the template brain dilated 8 mm).

    A scan whose header swaps an axis is a mirror image: some mirrored copy of its brain
    then matches the template better than the brain as stored (frontal and occipital
    lobes, cerebrum and cerebellum differ enough for an affine to tell). A real head and a
    simulated one differ from the template in different ways (anatomy, sharpness), so the
    absolute similarity has no threshold that catches a flip in both; this comparison of
    one scan with itself does.
    """
    inside = metric_mask.numpy() > 0
    scores = {}
    for name, axis in {"as stored": None, **FLIPS}.items():
        moving = brain if axis is None else brain.new_image_like(np.flip(brain.numpy(), axis))
        fitted = _linear(template, moving, metric_mask, f"{prefix}orient{axis or 0}_")
        scores[name] = similarity(fitted["warpedmovout"].numpy(), template.numpy(), inside)
    return scores


AFFINE_STARTS_MM = (-6.0, 6.0)
"""First brain masks of the affine: the rigidly carried template mask eroded (a brain core,
inside any head down to 0.86 of the template's) or dilated (all of a large head's brain)."""


def _affine_from(
    image: ants.ANTsImage,
    template_brain: ants.ANTsImage,
    template_mask: ants.ANTsImage,
    metric_mask: ants.ANTsImage,
    rigid_mask: ants.ANTsImage,
    rigid: str,
    start_mm: float,
    prefix: str,
) -> tuple[float, dict, ants.ANTsImage]:
    """An affine of the brain from one first mask: (match score, transform, brain mask).

    The masked image's cut edge pulls the affine: the template brain's edge is fitted onto
    it. The rigid cannot scale the template brain, so no one first mask suits every head:
    dilated, it reaches the skull of small heads (with skull), and the affine inflates the
    brain onto it (determinant 1.3 for a head of 0.94); eroded, it cuts large brains. So
    ``rigid_mask`` (the template mask carried back through the ``rigid`` transform) is
    eroded or dilated by ``start_mm`` (negative: eroded), an affine fitted, then refitted on
    its own mask dilated 3 mm. The score is the correlation of the affinely registered brain
    with the template brain (:func:`brainpad.preprocess.qc.similarity`); the brain mask is
    the template mask carried back through the refit, dilated 3 mm.
    """
    operation = "erode" if start_mm < 0 else "dilate"
    mask = ants.morphology(rigid_mask, operation, _voxels(abs(start_mm), image))
    initial = rigid
    for step in ("first", "refit"):
        brain = _linear(
            template_brain,
            image * mask,
            metric_mask,
            f"{prefix}{start_mm:+.0f}{step}_",
            initial=initial,
        )
        initial = brain["fwdtransforms"][0]
        mask = _carry_mask(image, template_mask, brain["invtransforms"], _voxels(3.0, image))
    warped = ants.apply_transforms(template_brain, image * mask, brain["fwdtransforms"])
    score = similarity(warped.numpy(), template_brain.numpy(), template_mask.numpy() > 0)
    return score, brain, mask


def register(
    image: ants.ANTsImage,
    template: ants.ANTsImage,
    template_mask: ants.ANTsImage,
    syn_iterations: tuple[int, ...] = (40, 20, 10),
) -> Registration:
    """Affine + SyN registration of a bias-corrected scan to the template.

    1. rigid on the whole head, the metric restricted to the (dilated) template brain;
    2. an affine of the brain to the template brain from two first masks (the template
       mask carried back through the rigid, eroded 6 mm or dilated 6 mm), each refitted
       once; the one matching the template brain better is kept (:func:`_affine_from`);
    3. the template mask carried back through the affine, dilated 3 mm → brain; SyN of
       that brain to the template brain, starting from the affine;
    4. the final brain mask is the template mask carried back through affine + SyN.
    """
    workdir = Path(tempfile.mkdtemp(prefix="brainpad-reg-"))
    prefix = str(workdir / "reg_")
    clock = time.perf_counter()
    template_brain = template * template_mask
    metric_mask = ants.morphology(template_mask, "dilate", _voxels(8.0, template))
    # Rigid first: an affine fitted on a head with skull and scalp can inflate the template
    # brain onto the scalp (seen on atrophied brains); a rigid cannot.
    start = centre_start(image, template_mask, prefix + "start.mat")
    head = _linear(template, image, metric_mask, prefix + "head_", "Rigid", initial=start)
    rigid_mask = _carry_mask(image, template_mask, head["invtransforms"], dilation=0)
    candidates = [
        _affine_from(
            image,
            template_brain,
            template_mask,
            metric_mask,
            rigid_mask,
            head["fwdtransforms"][0],
            start,
            prefix,
        )
        for start in AFFINE_STARTS_MM
    ]
    _, brain, brain_mask = max(candidates, key=lambda candidate: candidate[0])
    orientation = orientation_scores(image * brain_mask, template_brain, metric_mask, prefix)
    log.info("rigid + affine: %.1f s", time.perf_counter() - clock)
    syn = ants.registration(
        template_brain,
        image * brain_mask,
        type_of_transform="SyNOnly",
        initial_transform=brain["fwdtransforms"][0],
        reg_iterations=syn_iterations,
        outprefix=prefix + "syn_",
    )
    final_mask = _carry_mask(image, template_mask, syn["invtransforms"], dilation=0)
    log.info("SyN: %.1f s", time.perf_counter() - clock)
    return Registration(
        final_mask,
        syn["warpedmovout"],
        syn["fwdtransforms"],
        syn["invtransforms"],
        workdir,
        orientation,
    )


def nonlinear_jacobian(registration: Registration, template: ants.ANTsImage) -> np.ndarray:
    """|J| of the nonlinear part of the template → scan map per template voxel.

    Times :meth:`Registration.affine_determinant` it is the total |J|: multiplying a warped
    tissue map by the total gives tissue *volume* per template voxel, by the nonlinear part
    alone volume relative to head size (SPM's "modulated, non-linear only").
    """
    nonlinear = ants.create_jacobian_determinant_image(template, registration.forward[0]).numpy()
    return np.clip(nonlinear, 0.0, None)


def flair_to_template(
    flair: ants.ANTsImage,
    t1w: ants.ANTsImage,
    registration: Registration,
    template: ants.ANTsImage,
    template_mask: ants.ANTsImage,
) -> tuple[ants.ANTsImage, float]:
    """A session's FLAIR in template space, through its T1w's registration.

    The FLAIR is registered rigidly to the session's bias-corrected T1w (Mattes mutual
    information, which compares contrasts that differ, in the T1w's brain mask dilated
    6 mm), then carried by the T1w's affine and SyN: no second nonlinear registration, so
    FLAIR and T1w voxels of one session stay in register in MNI space. Voxels outside the
    template brain mask are zeroed (brain-extracted, like the T1w).

    Returns
    -------
    warped : ANTsImage
        The FLAIR on the template grid, brain only.
    similarity : float
        Correlation of the warped FLAIR with the warped T1w in the brain (a QC figure:
        FLAIR and T1w contrasts differ, so it is far from 1, but a misregistered FLAIR
        drops it towards 0).
    """
    mask = ants.morphology(registration.brain_mask, "dilate", _voxels(6.0, t1w))
    rigid = _linear(
        t1w, flair, mask, str(registration.workdir / "flair_"), kind="Rigid", finest_mm=4.0
    )
    transforms = registration.forward + rigid["fwdtransforms"]
    warped = ants.apply_transforms(template, flair, transforms, interpolator="linear")
    warped = warped * template_mask
    brain = template_mask.numpy() > 0
    score = float(np.corrcoef(warped.numpy()[brain], registration.warped.numpy()[brain])[0, 1])
    return warped, score
