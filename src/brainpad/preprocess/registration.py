"""Registration to MNI (ANTsPy): a rigid of the head, an affine of the brain, SyN.

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
import numpy as np

from brainpad.preprocess.native import centre_start
from brainpad.preprocess.qc import similarity

log = logging.getLogger(__name__)


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

    def affine_to_template(
        self, image: ants.ANTsImage, template: ants.ANTsImage, extra: list[str] | None = None
    ) -> ants.ANTsImage:
        """``image`` (on the scan's grid, or a second modality with its own transforms
        ``extra`` to the scan) on the template grid through the affine only, brain-extracted
        with the scan's own brain mask: head size and position removed, the brain's own
        shape (ventricles, sulci, atrophy) kept, as the studies' networks read it."""
        brain = image * self.brain_mask_on(image) if extra is None else image
        moved = ants.apply_transforms(
            template, brain, [self.forward[1], *(extra or [])], interpolator="linear"
        )
        if extra is not None:  # a second modality: the scan's mask, carried by the affine
            mask = ants.apply_transforms(
                template, self.brain_mask, [self.forward[1]], interpolator="linear"
            )
            moved = moved * ants.threshold_image(mask, 0.5, 2.0)
        return moved

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


FLIPS = {"anterior-posterior": 1, "superior-inferior": 2}
MIRROR_FINEST_MM = 8.0
"""The finest level of the mirror check's affines: telling a brain from its mirror image
needs lobes, not sulci (at 4 mm, 8 mm made the check 3x cheaper with the same verdicts:
docs/benchmarks.md#qc-on-a-real-head)."""
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
        fitted = _linear(
            template, moving, metric_mask, f"{prefix}orient{axis or 0}_",
            finest_mm=MIRROR_FINEST_MM,
        )  # fmt: skip
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
) -> tuple[ants.ANTsImage, ants.ANTsImage, float]:
    """A session's FLAIR in template space, through its T1w's registration.

    The FLAIR is registered rigidly to the session's bias-corrected T1w (Mattes mutual
    information, which compares contrasts that differ, in the T1w's brain mask dilated
    6 mm), then carried by the T1w's affine and SyN: no second nonlinear registration, so
    FLAIR and T1w voxels of one session stay in register in MNI space. Voxels outside the
    template brain mask are zeroed (brain-extracted, like the T1w).

    Returns
    -------
    warped : ANTsImage
        The FLAIR on the template grid through affine and SyN, brain only.
    affine : ANTsImage
        The FLAIR through the affine only (:meth:`Registration.affine_to_template`).
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
    affine = registration.affine_to_template(flair, template, rigid["fwdtransforms"])
    return warped, affine, score
