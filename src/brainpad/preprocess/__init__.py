"""Per-scan preprocessing (``brainpad preprocess``): native T1w → modulated tissue maps in MNI.

Steps: reorient to RAS → N4 → affine to MNI on the head → template brain mask carried back
(brain extraction) → SyN on the brain → 3-class Atropos segmentation in MNI space with the
template priors → Jacobian modulation (affine × nonlinear, so voxels hold tissue volume;
or nonlinear only, free of head size) → optional smoothing → QC metrics and montage. The
bias-corrected, brain-extracted T1w is written in MNI space too, and, when the session has
one, the FLAIR: rigidly registered to the T1w and carried by the T1w's transforms.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import ants
import nibabel as nib
import numpy as np

from brainpad.paths import output_paths, preproc_paths, template_files
from brainpad.preprocess import qc
from brainpad.preprocess.native import bias_correct, load_canonical, working_copy
from brainpad.preprocess.registration import flair_to_template, nonlinear_jacobian, register
from brainpad.preprocess.segmentation import TISSUES, modulate_and_smooth, segment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreprocessOptions:
    """Preprocessing parameters (``preprocess:`` and ``qc:`` in the config)."""

    voxel_size: float = 2.0
    fwhm_mm: float = 4.0
    syn_iterations: tuple[int, ...] = (40, 20, 10)
    prior_weight: float = 0.25
    modulation: str = "full"
    qc_thresholds: qc.QCThresholds = field(default_factory=lambda: qc.QCThresholds())
    seed: int = 42


def preprocess_scan(
    scan: str | Path,
    scan_id: str,
    template_dir: str | Path,
    out_dir: str | Path,
    options: PreprocessOptions,
    flair: str | Path | None = None,
) -> dict:
    """Preprocess one T1w scan; write its outputs (:func:`output_paths`) and return its QC.

    With ``flair`` (the same session's FLAIR), the FLAIR is brought into MNI space through
    the T1w's registration (:func:`~brainpad.preprocess.registration.flair_to_template`)
    and its correlation with the T1w there is added to the QC (``flair_similarity``).
    """
    start = time.perf_counter()
    # ANTs samples the metric at random points: without a fixed seed (and one ITK thread,
    # which this also sets) two runs on the same scan differ in the 4th decimal.
    ants.config.set_ants_deterministic(True, options.seed)
    files = template_files(template_dir, options.voxel_size)
    template = ants.image_read(str(files["t1"]))
    mask = ants.image_read(str(files["mask"]))
    priors = [ants.image_read(str(files[t.lower()])) for t in TISSUES]
    paths = output_paths(out_dir, scan_id)
    paths["qc"].parent.mkdir(parents=True, exist_ok=True)

    image = load_canonical(scan)
    corrected = bias_correct(working_copy(image, min(options.voxel_size, 2.0)))
    log.info("%s: N4 done (%.1f s)", scan_id, time.perf_counter() - start)
    reg = register(corrected, template, mask, options.syn_iterations)
    try:
        log.info("%s: registration done (%.1f s)", scan_id, time.perf_counter() - start)
        tissues = segment(reg.warped, priors, mask, options.prior_weight)
        log.info("%s: segmentation done (%.1f s)", scan_id, time.perf_counter() - start)
        nonlinear = nonlinear_jacobian(reg, template)
        jacobian = nonlinear * reg.affine_determinant()
        voxel_ml = float(np.prod(template.spacing)) / 1000.0
        volumes = {t: float((p * jacobian).sum() * voxel_ml) for t, p in tissues.items()}
        modulation = jacobian if options.modulation == "full" else nonlinear
        maps = modulate_and_smooth(tissues, modulation, template, options.fwhm_mm)
        for tissue, data in maps.items():
            ants.image_write(template.new_image_like(data), str(paths[tissue.lower()]))
            what = f"{tissue} probability × Jacobian ({options.modulation} modulation)"
            _sidecar(paths[tissue.lower()], f"{what}, {options.fwhm_mm:g} mm FWHM", scan, options)
        ants.image_write(reg.warped, str(paths["t1_syn"]))
        what = "N4-corrected, brain-extracted T1w"
        _sidecar(paths["t1_syn"], f"{what} (affine + SyN)", scan, options)
        ants.image_write(reg.affine_to_template(corrected, template), str(paths["t1"]))
        _sidecar(paths["t1"], f"{what} (affine only: what the networks read)", scan, options)
        ants.image_write(reg.brain_mask, str(paths["mask"]))
        reg.save(paths["affine"], paths["warp"], paths["inverse_warp"])
        brain = mask.numpy() > 0
        native_mask = reg.brain_mask_on(image)  # on the scan's own grid
        quality = qc.image_quality(image.numpy(), native_mask.numpy() > 0, image.spacing)
        metrics = qc.qc_metrics(
            reg.warped.numpy(),
            template.numpy(),
            brain,
            volumes,
            reg.affine_determinant(),
            options.qc_thresholds,
            quality,
            reg.orientation,
        )
        metrics.update(scan_id=scan_id, source=str(scan))  # no timing: QC files repeat exactly
        if flair is not None:
            flair_mni, flair_affine, metrics["flair_similarity"] = flair_to_template(
                bias_correct(load_canonical(flair)), corrected, reg, template, mask
            )
            ants.image_write(flair_mni, str(paths["flair_syn"]))
            what = "FLAIR through the T1w's transforms"
            _sidecar(paths["flair_syn"], f"{what} (affine + SyN)", flair, options)
            ants.image_write(flair_affine, str(paths["flair"]))
            _sidecar(
                paths["flair"], f"{what} (affine only: what the networks read)", flair, options
            )
            log.info("%s: FLAIR done (%.1f s)", scan_id, time.perf_counter() - start)
        log.info("%s: maps written (%.1f s)", scan_id, time.perf_counter() - start)
        qc.montage(
            corrected.numpy(),
            reg.brain_mask.numpy(),
            reg.warped.numpy(),
            brain,
            maps["GM"],
            f"{scan_id}: similarity {metrics['similarity']:.3f}, TIV {metrics['tiv_ml']:.0f} ml",
            paths["montage"],
        )
        qc.write_json(metrics, paths["qc"])
    finally:
        reg.cleanup()
    log.info(
        "%s: done in %.1f s, similarity %.3f, passed %s",
        scan_id,
        time.perf_counter() - start,
        metrics["similarity"],
        metrics["passed"],
    )
    return metrics


def _sidecar(image: Path, description: str, source: str | Path, options: PreprocessOptions):
    """The BIDS-derivatives JSON sidecar of an image on the template grid."""
    from brainpad.derivatives import bids_uri, write_sidecar

    write_sidecar(image, description, options.voxel_size, [bids_uri("raw", source)])


def preprocess_batch(
    scans: list[str | Path],
    scan_ids: list[str],
    template_dir: str | Path,
    preproc_dir: str | Path,
    options: PreprocessOptions,
    qc_table: str | Path,
    flairs: list[str | Path | None] | None = None,
) -> None:
    """Preprocess several scans one after the other, then write their QC table.

    Each scan's files land where :func:`preprocess_scan` puts them for a single scan
    (``<preproc_dir>/sub-*/[ses-*/]anat/``); ``qc_table`` (the rows of
    :func:`brainpad.preprocess.qc.summarise`) is written last, so it exists only when
    every scan of the batch is done. ``flairs`` gives each scan's FLAIR (None: none).
    """
    from brainpad.atomic import write_table_atomic

    flairs = flairs or [None] * len(scans)
    if not len(scans) == len(scan_ids) == len(flairs):
        message = (
            f"{len(scans)} scans, {len(scan_ids)} scan ids and {len(flairs)} FLAIRs: give one "
            "id (and one FLAIR or '-') per scan"
        )
        raise ValueError(message)
    qc_files = []
    for number, (scan, scan_id, flair) in enumerate(
        zip(scans, scan_ids, flairs, strict=True), start=1
    ):
        paths = preproc_paths(preproc_dir, scan_id)
        log.info("scan %d of %d: %s", number, len(scans), scan_id)
        preprocess_scan(scan, scan_id, template_dir, paths["qc"].parent, options, flair)
        qc_files.append(paths["qc"])
    write_table_atomic(qc.summarise(qc_files), qc_table)


def load_map(path: str | Path) -> np.ndarray:
    """A preprocessed map as float32."""
    return np.asarray(nib.load(path).dataobj, dtype=np.float32)
