"""One simulated subject: aged, individual anatomy, and its scans.

The anatomy of a subject is the MNI template pushed through three maps, applied in order:

1. **ageing** φ_age: a diffeomorphism whose Jacobian realises, per region, the volume
   ratio ``exp(rate × (local brain age − 25))`` (see :mod:`brainpad.simulate.truth`);
2. **individual variability** φ_ind: a smooth random diffeomorphism;
3. **head size**: an isotropic scaling about the head centre (sex-dependent).

White-matter lesions are painted in template space before warping. A scan then places the
head in the scanner with a random rigid pose and samples tissue fractions on the site's grid
(:mod:`brainpad.simulate.scanner`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from brainpad.simulate import deform, scanner, truth
from brainpad.templates import Template

CALIBRATION_YEARS = 40.0  # magnitude of the prescription used to learn regional gains


@dataclass
class AnatomyModel:
    """Everything shared by all subjects: template maps, regions and truth tables."""

    template: Template
    regions: np.ndarray  # region index per voxel (truth.region_map)
    rates: np.ndarray  # log-volume change per year, per region
    acceleration: dict[str, np.ndarray]  # extra years per region, per group
    compensation: np.ndarray  # voxels absorbing net volume change
    gains: np.ndarray  # regional source / target ratio learnt once
    tissues: dict[str, np.ndarray]  # gm, wm, csf, skull, scalp, rim (fractions)
    tissue_weight: np.ndarray  # gm + wm, for the global brain age average

    @classmethod
    def build(cls, template: Template, atlas: np.ndarray) -> AnatomyModel:
        """Prepare the model from a padded template and its Harvard-Oxford labels."""
        table = truth.region_table()
        regions = truth.region_map(
            atlas, template.gm, template.wm, template.csf, template.brain_mask
        )
        rates = np.zeros(truth.N_REGIONS)
        rates[table["region"]] = table["rate_per_year"]
        acceleration = {}
        for column in table.columns:
            if column.startswith("acceleration_"):
                values = np.zeros(truth.N_REGIONS)
                values[table["region"]] = table[column]
                acceleration[column.removeprefix("acceleration_")] = values
        voxel = template.grid.voxel_size[0]
        distance = ndimage.distance_transform_edt(~template.brain_mask) * voxel
        compensation = distance > 2.0 * voxel
        target = rates * CALIBRATION_YEARS
        calibrated = deform.prescribed_deformation(regions, target, compensation, n_iterations=6)
        gains = np.divide(calibrated.level, target, out=np.ones_like(target), where=target != 0)

        def shell(inner_mm: float, outer_mm: float) -> np.ndarray:
            band = ((distance > inner_mm) & (distance <= outer_mm)).astype(np.float32)
            return ndimage.gaussian_filter(band, 0.5)

        tissues = {
            "gm": template.gm,
            "wm": template.wm,
            "csf": template.csf,
            "rim": shell(0.0, 2.5),
            "skull": shell(2.5, 7.0),
            "scalp": shell(7.0, 12.0),
        }
        return cls(
            template,
            regions,
            rates,
            acceleration,
            compensation,
            gains,
            tissues,
            template.gm + template.wm,
        )


@dataclass
class SubjectAnatomy:
    """A generated subject: the maps needed to scan it plus its recorded truth."""

    to_template: list[np.ndarray]  # inverse displacements, applied in order (voxels)
    head_scale: float
    tissues: dict[str, np.ndarray]  # template-space fractions incl. this subject's lesions
    local_age: np.ndarray  # per-region local brain age (years)
    true_brain_age: float
    regional_volume_mm3: np.ndarray  # per region, in this subject's head
    achieved_log_change: np.ndarray  # per region, ageing only
    lesion_count: int
    lesion_volume_mm3: float


def _lesions(model: AnatomyModel, count: int, rng: np.random.Generator) -> np.ndarray:
    """Fraction of each voxel's white matter replaced by lesion (template space)."""
    wm = model.tissues["wm"]
    candidates = np.argwhere(wm > 0.9)
    voxel = model.template.grid.voxel_size[0]
    blobs = np.zeros(wm.shape, dtype=np.float32)
    for index in rng.choice(len(candidates), size=min(count, len(candidates)), replace=False):
        spot = np.zeros(wm.shape, dtype=np.float32)
        spot[tuple(candidates[index])] = 1.0
        radius_vox = rng.uniform(1.5, 4.0) / voxel
        spot = ndimage.gaussian_filter(spot, radius_vox)
        blobs += spot / spot.max()
    return np.clip(blobs, 0.0, 1.0) * wm


def generate_subject(model: AnatomyModel, subject: dict, settings) -> SubjectAnatomy:
    """Age and individualise the template for one planned subject.

    Parameters
    ----------
    model : AnatomyModel
        Shared template and truth tables.
    subject : dict
        One row of :func:`brainpad.simulate.cohort.plan_cohort`'s participants table.
    settings : brainpad.simulate.cohort.Settings
        Cohort knobs (anatomical variability, lesion rate).
    """
    rng = np.random.default_rng([int(subject["seed"]), 0])
    bio_age = subject["age"] + subject["bio_age_offset"]
    acceleration = model.acceleration.get(subject["group"], np.zeros(truth.N_REGIONS))
    local_age = bio_age + subject["severity"] * acceleration
    target = model.rates * (local_age - truth.REFERENCE_AGE)
    ageing = deform.prescribed_deformation(
        model.regions,
        target,
        model.compensation,
        n_iterations=2,
        gains=model.gains,
    )
    voxel = model.template.grid.voxel_size[0]
    individual_velocity = deform.random_velocity(
        model.regions.shape,
        rng,
        smoothness=10.0 / voxel,
        log_volume_sd=settings.anatomy_log_volume_sd,
        mask=model.template.brain_mask,
    )
    individual = deform.exponentiate(individual_velocity)
    coords = np.indices(model.regions.shape, dtype=np.float32) + ageing.displacement
    individual_jac = deform.sample(deform.jacobian_determinant(individual)[None], coords)[0]
    scale = float(subject["head_scale"])
    total_jac = ageing.jacobian * individual_jac * scale**3
    volumes = (
        np.bincount(model.regions.ravel(), weights=total_jac.ravel(), minlength=truth.N_REGIONS)
        * model.template.grid.voxel_volume
    )

    n_lesions = int(rng.poisson(settings.lesion_rate * max(0.0, bio_age - 40.0)))
    lesion = _lesions(model, n_lesions, rng)
    tissues = dict(model.tissues)
    tissues["wm"] = model.tissues["wm"] - lesion
    tissues["lesion"] = lesion
    weight = model.tissue_weight
    voxel_age = local_age[model.regions]
    true_brain_age = float((voxel_age * weight).sum() / weight.sum())
    return SubjectAnatomy(
        to_template=[
            deform.exponentiate(-individual_velocity),
            deform.exponentiate(-ageing.velocity),
        ],
        head_scale=scale,
        tissues=tissues,
        local_age=local_age,
        true_brain_age=true_brain_age,
        regional_volume_mm3=volumes,
        achieved_log_change=ageing.achieved,
        lesion_count=n_lesions,
        lesion_volume_mm3=float(lesion.sum() * model.template.grid.voxel_volume),
    )


def template_coordinates(
    model: AnatomyModel, anatomy: SubjectAnatomy, points_mm: np.ndarray, pose: dict
) -> np.ndarray:
    """Template voxel coordinates seen at scanner points (3, N) for a head in ``pose``."""
    head = np.linalg.inv(scanner.pose_matrix(pose))
    centre = scanner.HEAD_CENTRE_MM[:, None]
    unposed = head[:3, :3] @ points_mm + head[:3, 3:4]
    unscaled = centre + (unposed - centre) / anatomy.head_scale
    to_voxel = np.linalg.inv(model.template.grid.affine)
    coords = to_voxel[:3, :3] @ unscaled + to_voxel[:3, 3:4]
    for displacement in anatomy.to_template:
        coords = deform.warp_points(displacement, coords)
    return coords


def sample_tissues(
    model: AnatomyModel, anatomy: SubjectAnatomy, points_mm: np.ndarray, pose: dict, skull: bool
) -> dict[str, np.ndarray]:
    """Tissue fractions of the posed subject at scanner points (3, N).

    Returns ``gm, wm, csf, lesion`` and, with ``skull``, ``skull`` and ``scalp`` (the CSF
    rim between brain and skull is added to ``csf``).
    """
    coords = template_coordinates(model, anatomy, points_mm, pose)
    keep = ["gm", "wm", "csf", "lesion"] + (["rim", "skull", "scalp"] if skull else [])
    values = deform.sample(np.stack([anatomy.tissues[k] for k in keep]), coords, outside="zeros")
    sampled = dict(zip(keep, values, strict=True))
    if skull:
        sampled["csf"] = sampled["csf"] + sampled.pop("rim")
    return sampled


def scan_subject(
    model: AnatomyModel,
    anatomy: SubjectAnatomy,
    site: scanner.Site,
    modalities: tuple[str, ...],
    age: float,
    rng: np.random.Generator,
    max_rotation_deg: float,
    max_translation_mm: float,
    motion: tuple[float, float] = (0.0, 0.0),
    motion_rng: np.random.Generator | None = None,
) -> tuple[dict[str, object], dict]:
    """Acquire one session: returns NIfTI images per modality and the T1w's pose.

    The T1w (the first modality) is acquired in a random pose; every later scan of the
    session after the head moved by up to ``motion`` (degrees, mm) per axis, drawn from
    ``motion_rng`` (so the T1w's own draws do not depend on it). The brain-extracted
    sites' masks follow the head.
    """
    voxel = model.template.grid.voxel_size[0]
    shape, affine = scanner.acquisition_grid(site, voxel)
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1)
    points = affine[:3, :3] @ ijk + affine[:3, 3:4]
    pose = scanner.random_pose(rng, max_rotation_deg, max_translation_mm)
    images = {}
    for number, modality in enumerate(modalities):
        posed = pose
        if number and any(motion):
            moved = scanner.random_pose(motion_rng or rng, *motion)
            posed = {k: np.asarray(pose[k]) + moved[k] for k in ("rotation_deg", "translation_mm")}
        if number == 0 or posed is not pose:
            sampled = sample_tissues(model, anatomy, points, posed, site.skull)
            # a brain-extracted site delivers zeros outside the brain
            inside = None if site.skull else sum(sampled.values()) > 0.5
        clean = scanner.contrast_image(sampled, modality, age, site.gm_contrast)
        if site.blur_fwhm_mm > 0:
            zooms = np.linalg.norm(affine[:3, :3], axis=0)
            clean = scanner.blurred(clean.reshape(shape), zooms, site.blur_fwhm_mm).ravel()
        biased = clean * scanner.bias_field(points, rng, site.bias_strength)
        noisy = scanner.rician(biased, 1.0 / site.snr, rng)
        if inside is not None:
            noisy = noisy * inside
        images[modality] = scanner.store(noisy.reshape(shape), affine, site)
    return images, pose
