"""How much of a local effect the voxel model shows: planted atrophy (``brainpad local-planted``).

The truth validation (:mod:`brainpad.local.truth`) compares a patient group's mean map with
its true map, and the volumetric ceiling says how much of that pattern the cohort's
individual anatomy leaves visible. This module measures the third factor, the model's own
spatial specificity, free of both: it plants a group's true regional atrophy into healthy
test scans' modulated tissue maps (each region's GM and WM scaled by its simulated volume
change ``exp(rate × acceleration)``), maps the scans with and without it, and compares the
mean change with the planted extra years. A model that saw only the tissue under each voxel
would give r = 1 and a gain of 1 (the change equals the planted extra years); one that
mixes a wide neighbourhood spreads a focal effect over it, which lowers both.

The planted change is sharp at region borders where a real deformation is smooth. Regions
that grow with age (ventricles, sulcal CSF) grow in CSF, which the model does not read, so
their tissue is left as it is: the model cannot show them, in this test as in the cohort.
The change is therefore compared with what was planted (:func:`planted_years`: the extra
years in the shrinking regions, none in the growing ones), not with the full true map.

How far a focal effect spreads is the map's effective resolution (study 1: about the
network's receptive field). :func:`effective_fwhm` finds the Gaussian blur of the planted
years that the mean change matches best; the same blur applied to the planted years gives
the resolution ceiling, the correlation with the full true map that a noise-free map of
this model's sharpness, reading tissue only, would reach.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from scipy import ndimage

from brainpad.cohort.arrays import crop_slices
from brainpad.local.measures import spatial_correlation
from brainpad.local.truth import REGION_MAP, read_true_map, regions_on_grid
from brainpad.stats.tables import baseline_scans
from brainpad.training.inference import FittedNetwork

log = logging.getLogger(__name__)

PLANTED_COLUMNS = [
    "group",
    "planted_response_r",
    "planted_gain",
    "planted_fwhm_mm",
    "planted_blurred_r",
    "resolution_ceiling_r",
    "scans",
]


def _planted(
    truth_dir: str | Path, reference: nib.Nifti1Image
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per-voxel ageing rate of the shrinking regions (0 elsewhere) and per group of
    ``regions.tsv`` the extra years planted there, both on ``reference``'s grid."""
    truth_dir = Path(truth_dir)
    regions = pd.read_csv(truth_dir / "regions.tsv", sep="\t")
    labels = regions_on_grid(truth_dir / REGION_MAP, reference)
    shrinks = regions["rate_per_year"] < 0

    def per_voxel(values: pd.Series) -> np.ndarray:
        lookup = np.zeros(max(int(regions["region"].max()), int(labels.max())) + 1)
        lookup[regions["region"]] = values.where(shrinks, 0.0)
        return lookup[labels]

    columns = regions.columns[regions.columns.str.startswith("acceleration_")]
    years = {c.removeprefix("acceleration_"): per_voxel(regions[c]) for c in columns}
    return per_voxel(regions["rate_per_year"]), years


def planted_years(truth_dir: str | Path, reference: nib.Nifti1Image) -> dict[str, np.ndarray]:
    """Per group of ``regions.tsv``: the extra years of ageing planted in each voxel, on
    ``reference``'s grid: the group's acceleration in regions that shrink with age, 0 in
    regions that grow (CSF, left as it is) and outside the simulated regions."""
    return _planted(truth_dir, reference)[1]


def planted_factors(truth_dir: str | Path, reference: nib.Nifti1Image) -> dict[str, np.ndarray]:
    """Per group of ``regions.tsv``: the per-voxel tissue volume ratio
    ``exp(rate × planted years)`` on ``reference``'s grid (:func:`planted_years`), 1 outside
    the simulated regions and in regions that grow (CSF)."""
    rate, years = _planted(truth_dir, reference)
    return {group: np.exp(rate * value) for group, value in years.items()}


def planted_truth(
    truth_dir: str | Path,
    reference: nib.Nifti1Image,
    crop: tuple[slice, ...],
    exclude: Sequence[str] = (),
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """What :func:`planted_response` and :func:`planted_table` need, cropped to ``crop``,
    for every group of ``regions.tsv`` but ``exclude``: the tissue factors
    (:func:`planted_factors`), the planted years (:func:`planted_years`) and the true maps
    (groups without one are left out of the last)."""
    rate, years = _planted(truth_dir, reference)
    years = {group: value[crop] for group, value in years.items() if group not in exclude}
    factors = {group: np.exp(rate[crop] * value) for group, value in years.items()}
    true_maps = {group: read_true_map(truth_dir, group, reference) for group in years}
    true_maps = {group: value[crop] for group, value in true_maps.items() if value is not None}
    return factors, years, true_maps


def planted_response(
    models: Sequence[FittedNetwork],
    volumes: np.ndarray,
    rows: Sequence[int],
    factors: dict[str, np.ndarray],
    mask: np.ndarray,
) -> dict[str, np.ndarray]:
    """Mean change of the maps when each group's atrophy is planted (group → map).

    Scan ``i`` (array row ``rows[i]``) is mapped by model ``i mod K``, once as it is and
    once per group with its maps multiplied by the group's factor.
    """
    changes = {group: np.zeros(mask.shape) for group in factors}
    for i, row in enumerate(rows):
        model = models[i % len(models)]
        volume = np.asarray(volumes[row], dtype=np.float32)
        before = model.map(volume, mask)
        for group, factor in factors.items():
            changes[group] += model.map(volume * factor[None].astype(np.float32), mask) - before
        log.info("planted scan %d/%d", i + 1, len(rows))
    return {group: total / len(rows) for group, total in changes.items()}


def smooth_in_mask(values: np.ndarray, mask: np.ndarray, fwhm_vox: float) -> np.ndarray:
    """Gaussian smoothing (FWHM in voxels) of ``values`` inside ``mask`` only: each voxel's
    weighted mean over the mask's voxels, so the brain's edge is not pulled towards the
    zeros outside it. NaN outside the mask."""
    if fwhm_vox <= 0:
        return np.where(mask, values, np.nan)
    sigma = fwhm_vox / np.sqrt(8.0 * np.log(2.0))
    inside = mask.astype(np.float64)
    total = ndimage.gaussian_filter(np.where(mask, values, 0.0), sigma, mode="constant")
    weight = ndimage.gaussian_filter(inside, sigma, mode="constant")
    return np.where(mask, total / np.where(mask, weight, 1.0), np.nan)


def effective_fwhm(
    change: np.ndarray, planted: np.ndarray, mask: np.ndarray, voxel_mm: float, max_mm: float = 60.0
) -> tuple[float, float]:
    """The Gaussian blur (FWHM, mm, searched in 1 mm steps up to ``max_mm``) of the planted
    years whose correlation with the mean change is highest, and that correlation. Blurs
    far below a voxel barely change a map; of FWHMs within 1e-6 of the best r, the
    smallest is taken."""
    fwhms = np.arange(0.0, max_mm + 0.5, 1.0)
    r = [
        spatial_correlation(change, smooth_in_mask(planted, mask, f / voxel_mm), mask)
        for f in fwhms
    ]
    if np.all(np.isnan(r)):
        return float("nan"), float("nan")
    best = int(np.argmax(np.asarray(r) >= np.nanmax(r) - 1e-6))
    if best == len(fwhms) - 1:
        log.warning("effective FWHM at the search limit (%g mm): the maps are blurrier", max_mm)
    return float(fwhms[best]), float(r[best])


def planted_table(
    responses: dict[str, np.ndarray],
    planted: dict[str, np.ndarray],
    true_maps: dict[str, np.ndarray],
    mask: np.ndarray,
    voxel_mm: float,
    n_scans: int,
) -> pd.DataFrame:
    """Per group: how the mean change of the maps compares with what was planted.

    Columns: ``planted_response_r`` (r with the planted years), ``planted_gain``
    (least-squares slope of change on planted years: the fraction of a local effect the map
    shows), ``planted_fwhm_mm`` and ``planted_blurred_r`` (:func:`effective_fwhm`), and
    ``resolution_ceiling_r``: r between the planted years blurred by that FWHM and the full
    true map (``true_maps``), the most a noise-free map this sharp that reads tissue only
    could reach in the truth validation.
    """
    rows = []
    for group, change in responses.items():
        years = planted[group]
        keep = mask & np.isfinite(change)
        slope = np.polyfit(years[keep], change[keep], 1)[0] if np.ptp(years[keep]) else np.nan
        fwhm, blurred_r = effective_fwhm(change, years, mask, voxel_mm)
        ceiling = np.nan
        if np.isfinite(fwhm) and group in true_maps:
            blurred = smooth_in_mask(years, mask, fwhm / voxel_mm)
            ceiling = spatial_correlation(blurred, true_maps[group], mask)
        rows.append(
            {
                "group": group,
                "planted_response_r": spatial_correlation(change, years, mask),
                "planted_gain": float(slope),
                "planted_fwhm_mm": fwhm,
                "planted_blurred_r": blurred_r,
                "resolution_ceiling_r": ceiling,
                "scans": n_scans,
            }
        )
    return pd.DataFrame(rows, columns=PLANTED_COLUMNS)


def run_planted(
    model_paths: Sequence[str | Path],
    volumes_path: str | Path,
    index_path: str | Path,
    folds_path: str | Path,
    mask_path: str | Path,
    truth_dir: str | Path,
    control_group: str,
    device: torch.device,
) -> pd.DataFrame:
    """Plant every patient group's true atrophy into the healthy test scans; see the module."""
    index = pd.read_csv(index_path, sep="\t")
    folds = pd.read_csv(folds_path, sep="\t")
    reference = nib.load(mask_path)
    crop = crop_slices(index)
    mask = np.asarray(reference.dataobj)[crop] > 0
    factors, years, true_maps = planted_truth(truth_dir, reference, crop, [control_group])
    test = baseline_scans(folds[(folds["role"] == "test") & (folds["group"] == control_group)])
    rows = index.set_index("scan_id").loc[test["scan_id"], "row"].to_numpy()
    models = [FittedNetwork(p, device) for p in model_paths]
    volumes = np.load(volumes_path, mmap_mode="r")
    responses = planted_response(models, volumes, rows, factors, mask)
    voxel_mm = float(min(reference.header.get_zooms()[:3]))
    return planted_table(responses, years, true_maps, mask, voxel_mm, len(rows))
