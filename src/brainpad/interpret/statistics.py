"""Group statistics of the relevance maps: permutation tests with TFCE (``relevance-stats``).

Tests on the absolute relevance (:mod:`brainpad.interpret.maps`; one scan per participant,
every map out-of-sample), each with nilearn's
:func:`~nilearn.mass_univariate.permuted_ols` and threshold-free cluster enhancement, FWE
corrected by the permutations' maximum TFCE:

* ``healthy``: one-sample, the healthy controls' relevance above its uniform share (1 after
  :func:`~brainpad.interpret.relevance.normalised`): where the networks look (study 3);
* ``young_vs_old``: controls ≤ ``young_max`` vs ≥ ``old_min`` years, two-sided;
* ``<group>_vs_old``: each patient group vs the controls ≥ ``old_min``, age a confound,
  two-sided (positive t: more relevance in the patients).

TFCE's cost grows with the voxels of the grid; ``downsample`` averages the maps over
blocks of ``downsample``³ voxels first (the demo's networks read 8 mm inputs anyway), and
the grid is cropped to the brain's bounding box (the t and p maps are written on it).
Significant clusters (FWE p < ``alpha``) are listed with their peak's Harvard-Oxford label.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from brainpad.atomic import save_image_atomic
from brainpad.paths import stat_paths
from brainpad.stats.tables import baseline_scans

log = logging.getLogger(__name__)

TEST_COLUMNS = [
    "method",
    "test",
    "first",
    "second",
    "n_first",
    "n_second",
    "n_perm",
    "max_abs_t",
    "min_p_fwe",
    "significant_voxels",
    "significant_ml",
]
CLUSTER_COLUMNS = [
    "method",
    "test",
    "cluster",
    "sign",
    "peak_t",
    "x_mm",
    "y_mm",
    "z_mm",
    "volume_ml",
    "peak_region",
]


@dataclass(frozen=True)
class Contrast:
    """One group test: scans of ``first`` (vs ``second``; one-sample without it)."""

    name: str
    first: str
    first_rows: np.ndarray
    second: str = ""
    second_rows: np.ndarray | None = None


def contrasts(
    scans: pd.DataFrame, control_group: str, young_max: float, old_min: float
) -> list[Contrast]:
    """The tests of the module for the explained scans of ``scans.tsv`` (volume numbers)."""
    people = baseline_scans(scans[scans["group"].notna()])
    controls = people[people["group"] == control_group]
    labelled = controls[controls["age"].notna()]
    old_label = f"{control_group} >= {old_min:g}"
    old = labelled.loc[labelled["age"] >= old_min, "volume"].to_numpy()
    young = labelled.loc[labelled["age"] <= young_max, "volume"].to_numpy()
    tests = [
        Contrast("healthy", control_group, controls["volume"].to_numpy()),
        Contrast("young_vs_old", f"{control_group} <= {young_max:g}", young, old_label, old),
    ]
    for group in sorted(set(people["group"]) - {control_group}):
        rows = people.loc[people["group"] == group, "volume"].to_numpy()
        tests.append(Contrast(f"{group}_vs_old", group, rows, old_label, old))
    return tests


def block_mean(image: nib.Nifti1Image, factor: int) -> nib.Nifti1Image:
    """``image`` (3D or 4D) averaged over blocks of ``factor``³ voxels (the grid padded
    with zeros to a multiple), with the affine of the coarser grid."""
    if factor <= 1:
        return image
    data = np.asarray(image.dataobj, dtype=np.float32)
    spatial = data.shape[:3]
    padded = [int(np.ceil(s / factor)) * factor for s in spatial]
    grid = np.zeros((*padded, *data.shape[3:]), np.float32)
    grid[: spatial[0], : spatial[1], : spatial[2]] = data
    shape = [p // factor for p in padded]
    blocks = grid.reshape(shape[0], factor, shape[1], factor, shape[2], factor, *data.shape[3:])
    scale = np.diag([factor, factor, factor, 1.0])
    scale[:3, 3] = (factor - 1) / 2
    return nib.Nifti1Image(blocks.mean(axis=(1, 3, 5)), image.affine @ scale)


def coarse_mask(mask: nib.Nifti1Image, factor: int) -> nib.Nifti1Image:
    """The brain mask on the grid of :func:`block_mean`: blocks at least half brain."""
    mean = block_mean(mask, factor)
    inside = np.asarray(mean.dataobj) >= (0.5 if factor > 1 else 1e-6)
    return nib.Nifti1Image(inside.astype(np.uint8), mean.affine)


def brain_box(mask: nib.Nifti1Image, margin: int = 1) -> tuple[slice, ...]:
    """The mask's bounding box with ``margin`` voxels around it (within the grid)."""
    inside = np.argwhere(np.asarray(mask.dataobj) > 0)
    low = np.maximum(inside.min(0) - margin, 0)
    high = np.minimum(inside.max(0) + margin + 1, mask.shape[:3])
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))


def permutation_test(
    data: np.ndarray,
    contrast: Contrast,
    masker,
    n_perm: int,
    seed: int,
    ages: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Voxelwise t and TFCE-FWE p of one contrast with nilearn's ``permuted_ols``.

    Parameters
    ----------
    data : ndarray
        (scans, voxels) masked maps; rows are the volume numbers of ``contrast``.
    contrast : Contrast
    masker : NiftiMasker
        Fitted on the grid of ``data`` (TFCE needs the voxels' neighbours).
    n_perm : int
        Permutations (sign flips for the one-sample test).
    seed : int
    ages : ndarray, optional
        Age per volume: a confound of the two-sample tests when given.

    Returns
    -------
    dict
        ``t`` and ``p_fwe`` (TFCE, FWE-corrected) per voxel.
    """
    from nilearn.mass_univariate import permuted_ols

    if contrast.second_rows is None:
        target = data[contrast.first_rows] - 1.0  # above the uniform share
        tested = np.ones((len(target), 1))
        confounds, intercept, two_sided = None, False, False
    else:
        rows = np.concatenate([contrast.first_rows, contrast.second_rows])
        target = data[rows]
        tested = np.r_[np.ones(len(contrast.first_rows)), np.zeros(len(contrast.second_rows))]
        tested = tested[:, None]
        confounds = ages[rows][:, None] if ages is not None else None
        intercept, two_sided = True, True
    out = permuted_ols(
        tested,
        target,
        confounding_vars=confounds,
        model_intercept=intercept,
        n_perm=n_perm,
        two_sided_test=two_sided,
        random_state=seed,
        n_jobs=1,
        verbose=0,
        tfce=True,
        masker=masker,
        output_type="dict",
    )
    return {"t": out["t"][0], "p_fwe": 10.0 ** -out["logp_max_tfce"][0]}


def peak_region(
    xyz_mm: np.ndarray, atlas: nib.Nifti1Image, labels: pd.DataFrame, radius_mm: float = 8.0
) -> str:
    """The Harvard-Oxford label at a point (MNI mm): the atlas label there, else ``near``
    the commonest label within ``radius_mm`` (a coarse test grid's peak often falls in
    white matter or between regions), else ``outside atlas``."""
    data = np.asarray(atlas.dataobj).astype(np.int64)
    names = labels.set_index("label")["name"]
    grid = np.indices(data.shape).reshape(3, -1)
    world = (atlas.affine[:3, :3] @ grid + atlas.affine[:3, 3:]).T
    distance = np.linalg.norm(world - np.asarray(xyz_mm, float), axis=1)
    nearest = int(data.ravel()[np.argmin(distance)])
    if nearest > 0 and distance.min() <= min(atlas.header.get_zooms()[:3]):
        return str(names.get(nearest, "outside atlas"))
    around = data.ravel()[(distance <= radius_mm) & (data.ravel() > 0)]
    if around.size == 0:
        return "outside atlas"
    return f"near {names.get(int(np.bincount(around).argmax()), 'outside atlas')}"


def cluster_rows(
    t_img: nib.Nifti1Image,
    significant: np.ndarray,
    atlas: nib.Nifti1Image,
    labels: pd.DataFrame,
) -> list[dict]:
    """Connected clusters (26-neighbourhood) of significant voxels, split by the sign of
    t; per cluster its peak |t|, peak MNI coordinate, volume and the peak's label."""
    from scipy import ndimage

    t = np.asarray(t_img.dataobj)
    voxel_ml = float(np.prod(t_img.header.get_zooms()[:3])) / 1000
    rows = []
    for sign, name in ((1, "positive"), (-1, "negative")):
        found, n = ndimage.label(significant & (sign * t > 0), np.ones((3, 3, 3)))
        for cluster in range(1, n + 1):
            inside = found == cluster
            peak = np.unravel_index(np.argmax(np.where(inside, sign * t, -np.inf)), t.shape)
            xyz = (t_img.affine @ np.r_[peak, 1.0])[:3]
            rows.append(
                {
                    "sign": name,
                    "peak_t": float(t[peak]),
                    "x_mm": float(xyz[0]),
                    "y_mm": float(xyz[1]),
                    "z_mm": float(xyz[2]),
                    "volume_ml": float(inside.sum() * voxel_ml),
                    "peak_region": peak_region(xyz, atlas, labels),
                }
            )
    rows.sort(key=lambda r: -r["volume_ml"])
    return [{"cluster": i + 1, **r} for i, r in enumerate(rows)]


def relevance_statistics(
    absolute: nib.Nifti1Image,
    scans: pd.DataFrame,
    mask: nib.Nifti1Image,
    atlas: nib.Nifti1Image,
    labels: pd.DataFrame,
    method: str,
    out_dir: str | Path,
    control_group: str,
    young_max: float = 40.0,
    old_min: float = 60.0,
    n_perm: int = 1000,
    downsample: int = 1,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every test of the module on one method's absolute relevance; writes the t and FWE p
    maps (:func:`stat_paths`) and returns the tests' and the clusters' tables."""
    from nilearn.maskers import NiftiMasker

    grid_mask = coarse_mask(mask, downsample)
    box = brain_box(grid_mask)  # TFCE labels the whole grid: no empty margins
    grid_mask = grid_mask.slicer[box]
    masker = NiftiMasker(grid_mask).fit()
    data = masker.transform(block_mean(absolute, downsample).slicer[box])
    ages = scans.sort_values("volume")["age"].to_numpy(dtype=float)
    voxel_ml = float(np.prod(grid_mask.header.get_zooms()[:3])) / 1000
    tests, clusters = [], []
    for contrast in contrasts(scans, control_group, young_max, old_min):
        n2 = 0 if contrast.second_rows is None else len(contrast.second_rows)
        row = {
            "method": method,
            "test": contrast.name,
            "first": contrast.first,
            "second": contrast.second,
            "n_first": len(contrast.first_rows),
            "n_second": n2,
            "n_perm": n_perm,
        }
        if len(contrast.first_rows) < 3 or (contrast.second_rows is not None and n2 < 3):
            log.warning("%s %s: too few scans (%d, %d): not tested", method, contrast.name,
                        len(contrast.first_rows), n2)  # fmt: skip
            tests.append(row)
            continue
        result = permutation_test(data, contrast, masker, n_perm, seed, ages)
        paths = stat_paths(out_dir, method, contrast.name)
        t_img = masker.inverse_transform(result["t"])
        save_image_atomic(t_img, paths["t"])
        save_image_atomic(masker.inverse_transform(result["p_fwe"]), paths["p_fwe"])
        significant = np.asarray(masker.inverse_transform(result["p_fwe"] < alpha).dataobj) > 0
        row |= {
            "max_abs_t": float(np.abs(result["t"]).max()),
            "min_p_fwe": float(result["p_fwe"].min()),
            "significant_voxels": int(significant.sum()),
            "significant_ml": float(significant.sum() * voxel_ml),
        }
        tests.append(row)
        for cluster in cluster_rows(t_img, significant, atlas, labels):
            clusters.append({"method": method, "test": contrast.name, **cluster})
        log.info(
            "%s %s: max |t| %.2f, min FWE p %.3f, %d significant voxels", method, contrast.name,
            row["max_abs_t"], row["min_p_fwe"], row["significant_voxels"],
        )  # fmt: skip
    return (
        pd.DataFrame(tests, columns=TEST_COLUMNS),
        pd.DataFrame(clusters, columns=CLUSTER_COLUMNS),
    )
