"""How much of a local effect the voxel model shows: planted atrophy (``brainpad local-planted``).

The truth validation (:mod:`brainpad.recovery`) compares a patient group's mean map with
its true map, and the volumetric ceiling says how much of that pattern the cohort's
individual anatomy leaves visible. This module measures the third factor, the model's own
spatial specificity, free of both: it plants a group's true regional atrophy into healthy
test scans' modulated tissue maps (each region's GM and WM scaled by its simulated volume
change ``exp(rate × acceleration)``), maps the scans with and without it, and compares the
mean change with the true map. A model that saw only the tissue under each voxel would
give r = 1 and a gain of 1 (the change equals the planted extra years); one that mixes a
wide neighbourhood spreads a focal effect over it, which lowers both.

The planted change is sharp at region borders where a real deformation is smooth. Regions
that grow with age (ventricles, sulcal CSF) grow in CSF, which the model does not read, so
their tissue is left as it is: the model cannot show them, in this test as in the cohort.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch

from brainpad.arrays import crop_slices
from brainpad.local import VoxelModel
from brainpad.local_stats import spatial_correlation
from brainpad.recovery import REGION_MAP, read_true_map, regions_on_grid
from brainpad.stats import baseline_scans

log = logging.getLogger(__name__)


def planted_factors(truth_dir: str | Path, reference: nib.Nifti1Image) -> dict[str, np.ndarray]:
    """Per group of ``regions.tsv``: the per-voxel tissue volume ratio
    ``exp(rate × acceleration)`` on ``reference``'s grid, 1 outside the simulated regions
    and in regions that grow (CSF). The region map is read and resampled once."""
    truth_dir = Path(truth_dir)
    regions = pd.read_csv(truth_dir / "regions.tsv", sep="\t")
    labels = regions_on_grid(truth_dir / REGION_MAP, reference)
    rate = regions["rate_per_year"].clip(upper=0.0)
    factors = {}
    for column in regions.columns[regions.columns.str.startswith("acceleration_")]:
        log_change = np.zeros(int(regions["region"].max()) + 1)
        log_change[regions["region"]] = rate * regions[column]
        factors[column.removeprefix("acceleration_")] = np.exp(log_change[labels])
    return factors


def planted_response(
    models: Sequence[VoxelModel],
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


def planted_table(
    responses: dict[str, np.ndarray],
    truth_dir: str | Path,
    reference: nib.Nifti1Image,
    crop: tuple[slice, ...],
    mask: np.ndarray,
    n_scans: int,
) -> pd.DataFrame:
    """Per group: r between mean change and true map, and the gain (least-squares slope of
    change on truth: the fraction of a local effect the map shows)."""
    rows = []
    for group, change in responses.items():
        true_map = read_true_map(truth_dir, group, reference)[crop]
        keep = mask & np.isfinite(change)
        slope = np.polyfit(true_map[keep], change[keep], 1)[0] if np.ptp(true_map[keep]) else np.nan
        rows.append(
            {
                "group": group,
                "planted_response_r": spatial_correlation(change, true_map, mask),
                "planted_gain": float(slope),
                "scans": n_scans,
            }
        )
    return pd.DataFrame(rows, columns=["group", "planted_response_r", "planted_gain", "scans"])


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
    factors = planted_factors(truth_dir, reference)
    factors.pop(control_group, None)
    factors = {group: factor[crop] for group, factor in factors.items()}
    test = baseline_scans(folds[(folds["role"] == "test") & (folds["group"] == control_group)])
    rows = index.set_index("scan_id").loc[test["scan_id"], "row"].to_numpy()
    models = [VoxelModel(p, device) for p in model_paths]
    volumes = np.load(volumes_path, mmap_mode="r")
    responses = planted_response(models, volumes, rows, factors, mask)
    return planted_table(responses, truth_dir, reference, crop, mask, len(rows))
