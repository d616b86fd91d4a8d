"""Brain-age and brain-PAD maps of every scan from the voxel model (``brainpad local-maps``).

Each scan's map comes from the fold models that predicted it: its own fold's model for a
training control (out-of-fold), the mean over the K fold models for held-out scans. The
voxelwise bias correction (``debias.voxel_method``: study 1's age bins,
:class:`brainpad.local.correction.VoxelBias`, or a line per voxel,
:class:`brainpad.local.correction.VoxelLinearBias`) is fitted on the healthy calibration scans and
applied to all (``debias.voxel_calibration``: the calibration scans alone, or with the
training controls' out-of-fold maps, :func:`~brainpad.ensemble.correction.calibration_scans`). Maps
are written one scan at a time (NIfTI on the MNI working grid, NaN outside the brain);
only the calibration scans' maps are held together, for the fit.

The residual age dependence is measured on the healthy test set: per voxel, Pearson r
between brain-PAD and age, summarised by its median |r| (study 1's goal: ≤ 0.05 after
correction), raw, after the global linear correction, and after each voxelwise one. With
n test scans, maps with no age dependence at all still give a median |r| of
:func:`chance_median_abs_r` (0.19 for n = 15): only a test set of ~180 scans can show 0.05.
A voxelwise correction fitted on few calibration scans adds its own noise to that level
(:func:`null_median_abs_r`: 0.28 for a line per voxel from the demo's 14 calibration scans).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import stats

from brainpad.cohort.arrays import crop_slices
from brainpad.derivatives import write_map_sidecars
from brainpad.ensemble.correction import LinearBias, calibration_scans
from brainpad.local.correction import (
    VOXEL_METHODS,
    VoxelBias,
    VoxelLinearBias,
    fit_voxel_bias,
    save_voxel_bias,
)
from brainpad.paths import MAP_KINDS, map_paths
from brainpad.stats.tables import baseline_scans

log = logging.getLogger(__name__)
KINDS = MAP_KINDS


class FoldMaps:
    """The maps written by the K fold models, looked up by scan (memory-mapped)."""

    def __init__(self, predictions: Sequence[str | Path], maps: Sequence[str | Path]) -> None:
        self.arrays = [np.load(m, mmap_mode="r") for m in maps]
        self.rows: dict[str, list[tuple[int, int]]] = {}
        for k, path in enumerate(predictions):
            table = pd.read_csv(path, sep="\t")
            for row, scan in enumerate(table["scan_id"]):
                self.rows.setdefault(scan, []).append((k, row))

    def __contains__(self, scan_id: str) -> bool:
        return scan_id in self.rows

    def get(self, scan_id: str) -> np.ndarray:
        """The scan's brain-age map on the cropped grid (mean over its fold models)."""
        stack = [self.arrays[k][row].astype(np.float32) for k, row in self.rows[scan_id]]
        return np.mean(stack, axis=0)


def voxel_age_correlation(age: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Pearson r between ``age`` and each voxel of ``maps`` (scans, ...), vectorised."""
    a = (age - age.mean()) / age.std()
    m = maps - maps.mean(axis=0)
    sd = maps.std(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.tensordot(a, m, axes=1) / len(age) / sd


def chance_median_abs_r(n: int) -> float:
    """Median |Pearson r| between age and a voxel with no age dependence, over n scans.

    Under independence t = r·√(n−2)/√(1−r²) follows Student's t with n−2 degrees of
    freedom, so the median |r| is r at t = t₀.₇₅(n−2): the level the measured median |r|
    of a perfectly corrected map scatters around (NaN for n < 3).
    """
    if n < 3:
        return float("nan")
    t = stats.t.ppf(0.75, n - 2)
    return float(t / np.sqrt(n - 2 + t**2))


def null_median_abs_r(
    bias: VoxelBias | VoxelLinearBias,
    calibration_age: np.ndarray,
    test_age: np.ndarray,
    seed: int,
    voxels: int = 20_000,
) -> float:
    """Median |r(brain-PAD, age)| a voxelwise correction leaves in maps of no age dependence.

    Calibration and test "maps" of pure noise (independent N(0, 1) per voxel and scan) get
    the real ages; the correction is fitted on the calibration noise as ``bias`` was on the
    maps (same bins) and applied to the test noise. Besides the test set's own sampling
    noise (:func:`chance_median_abs_r`) this holds the noise of the fitted correction: a
    correction that removes all age dependence scatters around this level, not below it.

    Parameters
    ----------
    bias : VoxelBias or VoxelLinearBias
        The fitted correction (its bins are reused).
    calibration_age, test_age : ndarray
        Ages of the calibration and the test scans.
    seed : int
        Seed of the noise.
    voxels : int
        Noise voxels drawn (20,000 puts the Monte Carlo error near 0.002).
    """
    rng = np.random.default_rng(seed)
    calibration = rng.standard_normal((len(calibration_age), voxels))
    test = rng.standard_normal((len(test_age), voxels))
    if isinstance(bias, VoxelBias):  # bins already merged to min_per_bin or more
        refit = VoxelBias.fit(calibration_age, calibration, bias.edges, min_per_bin=1)
    else:
        refit = VoxelLinearBias.fit(calibration_age, calibration)
    corrected = np.stack([refit.correct(a, t) for a, t in zip(test_age, test, strict=True)])
    return float(np.median(np.abs(voxel_age_correlation(np.asarray(test_age), corrected))))


def write_local_maps(
    folds: pd.DataFrame,
    fold_maps: FoldMaps,
    index: pd.DataFrame,
    mask_path: str | Path,
    out_dir: str | Path,
    edges: Sequence[float],
    min_per_bin: int,
    method: str = "bins",
    seed: int = 0,
    calibration_set: str = "calibration",
    bias_path: str | Path | None = None,
) -> pd.DataFrame:
    """Write every scan's maps; return the residual age dependence on the healthy test set.

    Parameters
    ----------
    folds : DataFrame
        ``results/folds.tsv``.
    fold_maps : FoldMaps
        The voxel model's per-fold maps.
    index : DataFrame
        The cohort arrays' index (its crop places the maps on the MNI grid).
    mask_path : path
        Template brain mask on the working grid.
    out_dir : path
        Folder of the per-scan maps (one subfolder per participant).
    edges : sequence of float
        Age-bin edges of the voxelwise correction.
    min_per_bin : int
        Fewest calibration scans per bin (sparser bins are merged).
    method : {"bins", "linear"}
        The voxelwise correction the corrected maps carry; the other is fitted too, for
        the age-dependence table only.
    seed : int
        Seed of the noise behind ``null_median_abs_r``.
    calibration_set : {"calibration", "calibration+out_of_fold"}
        The scans the corrections are fitted on
        (:func:`~brainpad.ensemble.correction.calibration_scans`).
    bias_path : path, optional
        Where the applied correction is saved
        (:func:`~brainpad.local.correction.save_voxel_bias`), for the bundle.

    Returns
    -------
    DataFrame
        ``correction, applied, median_abs_r, chance_median_abs_r, null_median_abs_r, n,
        calibration_n`` for raw, global linear, ``voxelwise_bins`` and ``voxelwise_linear``
        brain-PAD; ``applied`` marks the correction of the corrected maps, ``n`` counts the
        test scans and ``calibration_n`` the scans the corrections were fitted on.
        ``null_median_abs_r`` is :func:`null_median_abs_r` for the voxelwise rows and the
        chance level for the raw and global ones (the global fit's own noise, that of the
        brain mean, is left out).
    """
    mask_img = nib.load(mask_path)
    voxel_mm = float(mask_img.header.get_zooms()[0])
    crop = crop_slices(index)
    brain = np.asarray(mask_img.dataobj)[crop] > 0
    scans = folds[folds["scan_id"].map(fold_maps.__contains__)].reset_index(drop=True)

    calibration = calibration_scans(scans, calibration_set)
    log.info("voxelwise corrections fitted on %d %s scans", len(calibration), calibration_set)
    cal_deltas = np.stack([fold_maps.get(r.scan_id) - r.age for r in calibration.itertuples()])
    cal_age = calibration["age"].to_numpy()
    voxel_bias = {method: fit_voxel_bias(method, cal_age, cal_deltas, edges, min_per_bin)}
    for other in set(VOXEL_METHODS) - {method}:  # for comparison only
        try:
            voxel_bias[other] = fit_voxel_bias(other, cal_age, cal_deltas, edges, min_per_bin)
        except ValueError as error:
            log.warning("voxelwise correction %r not compared: %s", other, error)
    global_bias = LinearBias.fit(cal_age, np.nanmean(cal_deltas[:, brain], axis=1))
    del cal_deltas  # the fits hold what they need; the loop below re-reads scan by scan
    if "bins" in voxel_bias:
        bins = voxel_bias["bins"]
        log.info(
            "voxelwise correction by age bin: bins %s, scans per bin %s", bins.edges, bins.counts
        )
    log.info("the corrected maps carry the voxelwise %r correction", method)
    if bias_path is not None:
        save_voxel_bias(voxel_bias[method], bias_path, mask_path, crop)

    def full(values: np.ndarray) -> nib.Nifti1Image:
        grid = np.full(mask_img.shape, np.nan, np.float32)
        grid[crop] = np.where(brain, values, np.nan)
        return nib.Nifti1Image(grid, mask_img.affine)

    test_ids = set(baseline_scans(scans[scans["role"] == "test"])["scan_id"])
    names = ["raw", "global", *(f"voxelwise_{m}" for m in VOXEL_METHODS)]
    test = {name: [] for name in ["age", *names]}
    for row in scans.itertuples():
        brain_age = fold_maps.get(row.scan_id)
        raw = brain_age - row.age
        corrected = voxel_bias[method].correct(row.age, raw)
        paths = map_paths(out_dir, row.scan_id)
        paths["brainage"].parent.mkdir(parents=True, exist_ok=True)
        for kind, values in zip(KINDS, (brain_age, raw, corrected), strict=True):
            nib.save(full(values), paths[kind])
        write_map_sidecars(paths, voxel_mm, row.scan_id)
        if row.scan_id in test_ids:
            test["age"].append(row.age)
            test["raw"].append(raw[brain])
            test["global"].append(raw[brain] - (global_bias.alpha * row.age + global_bias.beta))
            for name, bias in voxel_bias.items():
                test[f"voxelwise_{name}"].append(bias.correct(row.age, raw)[brain])
    age = np.asarray(test["age"])
    rows = []
    chance = chance_median_abs_r(len(age))
    for name in names:
        fitted = len(test[name]) == len(age) and len(age) > 2
        r = voxel_age_correlation(age, np.stack(test[name])) if fitted else np.nan
        bias = voxel_bias.get(name.removeprefix("voxelwise_"))
        null = null_median_abs_r(bias, cal_age, age, seed) if fitted and bias else chance
        rows.append(
            {
                "correction": name,
                "applied": name == f"voxelwise_{method}",
                "median_abs_r": float(np.nanmedian(np.abs(r))),
                "chance_median_abs_r": chance,
                "null_median_abs_r": null if fitted else np.nan,
                "n": len(age),
                "calibration_n": len(calibration),
            }
        )
    table = pd.DataFrame(rows)
    log.info("median |r(brain-PAD, age)| per voxel on the healthy test set:\n%s", table)
    return table
