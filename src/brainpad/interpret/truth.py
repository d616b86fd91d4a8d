"""Do the relevance maps point at what the simulator made age? (``relevance-stats``'s truth).

The simulator ages every region at its own rate (``regions.tsv``); the truly ageing
regions are those faster than the median region (|rate| above the median, shrinking or
growing). For a mean absolute relevance map this module reports the share of relevance
that falls inside them, their share of the brain's volume, and the enrichment (the ratio
of the two: 1 = no better than anywhere else), against a null of random placements: as
many regions drawn at random, whose enrichment the real one must beat (``p_random``).

For a patient group's test against the controls, the significant voxels are compared with
the regions the disease truly accelerates (acceleration above the median region, as in
:func:`brainpad.local.truth.truth_validation`): the share of significant voxels inside
them against their share of the brain (chance), and the same share for the 5 % of voxels
with the largest |t|, which says where the test points even when nothing survives.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from brainpad.local.truth import REGION_MAP, regions_on_grid

TRUTH_COLUMNS = [
    "map",
    "method",
    "relevance_share",
    "volume_share",
    "enrichment",
    "random_enrichment_mean",
    "random_enrichment_95",
    "p_random",
    "regions",
]
OVERLAP_COLUMNS = [
    "method",
    "test",
    "significant_voxels",
    "share_in_affected",
    "top_share_in_affected",
    "affected_volume_share",
    "affected_regions",
]
TOP_FRACTION = 0.05
"""The share of voxels with the largest |t| compared with the true disease map whether or
not any is significant."""


def ageing_regions(truth_dir: str | Path) -> pd.Series:
    """Region number → whether it ages faster than the median region (|rate|)."""
    regions = pd.read_csv(Path(truth_dir) / "regions.tsv", sep="\t").set_index("region")
    speed = regions["rate_per_year"].abs()
    return speed > speed.median()


def affected_regions(truth_dir: str | Path, group: str) -> pd.Series | None:
    """Region number → whether ``group``'s disease accelerates it beyond the median region
    (None when ``regions.tsv`` has no acceleration for the group)."""
    regions = pd.read_csv(Path(truth_dir) / "regions.tsv", sep="\t").set_index("region")
    column = f"acceleration_{group}"
    if column not in regions:
        return None
    return regions[column] > regions[column].median()


def relevance_in_regions(
    mean_map: np.ndarray,
    labels: np.ndarray,
    ageing: pd.Series,
    rng: np.random.Generator,
    n_random: int = 1000,
) -> dict[str, float]:
    """Share and enrichment of ``mean_map``'s relevance in the ageing regions (module).

    Parameters
    ----------
    mean_map : ndarray
        Mean absolute relevance over the brain's voxels (1D, like ``labels``).
    labels : ndarray of int
        The simulation's region of each voxel (0: none).
    ageing : Series of bool
        :func:`ageing_regions`.
    rng : Generator
        Draws the random placements.
    n_random : int
        Random placements.
    """
    known = labels > 0
    size = max(int(labels.max()), int(ageing.index.max())) + 1
    relevance = np.bincount(labels[known], np.abs(mean_map[known]), size)
    voxels = np.bincount(labels[known], minlength=size)
    present = ageing[voxels[ageing.index] > 0]
    pool, chosen = present.index.to_numpy(), present.index[present].to_numpy()

    def enrichment(regions: np.ndarray) -> tuple[float, float, float]:
        share = relevance[regions].sum() / relevance.sum()
        volume = voxels[regions].sum() / voxels.sum()
        return share, volume, share / volume

    share, volume, observed = enrichment(chosen)
    null = np.array(
        [enrichment(rng.choice(pool, len(chosen), replace=False))[2] for _ in range(n_random)]
    )
    return {
        "relevance_share": float(share),
        "volume_share": float(volume),
        "enrichment": float(observed),
        "random_enrichment_mean": float(null.mean()),
        "random_enrichment_95": float(np.quantile(null, 0.95)),
        "p_random": float((1 + (null >= observed).sum()) / (1 + n_random)),
        "regions": len(chosen),
    }


def significant_overlap(
    significant: np.ndarray,
    labels: np.ndarray,
    affected: pd.Series,
    t: np.ndarray | None = None,
) -> dict[str, float]:
    """Share of significant voxels (bool, like ``labels``) in the truly affected regions,
    against those regions' share of the labelled brain (chance); with the test's ``t``
    (like ``labels``), the same share for the :data:`TOP_FRACTION` of voxels with the
    largest |t|, significant or not."""
    known = labels > 0
    chosen = affected.index[affected].to_numpy()
    inside = np.isin(labels[known], chosen)
    hits = significant[known]
    top = np.nan
    if t is not None:
        strength = np.abs(t[known])
        leaders = strength >= np.quantile(strength, 1 - TOP_FRACTION)
        top = float(inside[leaders].mean())
    return {
        "significant_voxels": int(hits.sum()),
        "share_in_affected": float(inside[hits].mean()) if hits.any() else np.nan,
        "top_share_in_affected": top,
        "affected_volume_share": float(inside.mean()),
        "affected_regions": len(chosen),
    }


def truth_labels(truth_dir: str | Path, reference: nib.Nifti1Image) -> np.ndarray:
    """The simulation's region of every voxel of ``reference``'s grid."""
    return regions_on_grid(Path(truth_dir) / REGION_MAP, reference)


def truth_tables(
    out_dir: str | Path,
    tests: pd.DataFrame,
    mask: nib.Nifti1Image,
    truth_dir: str | Path,
    alpha: float,
    rng: np.random.Generator,
    n_random: int = 1000,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both truth tables of the module for what ``relevance`` and ``relevance-stats``
    wrote under ``out_dir`` (``tests`` is the latter's table of tests).

    Returns
    -------
    shares : DataFrame
        :data:`TRUTH_COLUMNS`: per method, the mean map over all networks (``all``) and
        each network's, against the ageing regions.
    overlap : DataFrame
        :data:`OVERLAP_COLUMNS`: each patient group's test against the disease's regions.
    """
    from nilearn.image import resample_to_img

    from brainpad.paths import relevance_paths, stat_paths

    inside = np.asarray(mask.dataobj) > 0
    regions = truth_labels(truth_dir, mask)[inside]
    ageing = ageing_regions(truth_dir)

    def on_mask(path: Path) -> np.ndarray:
        image = resample_to_img(nib.load(path), mask, interpolation="nearest",
                                copy_header=True, force_resample=True)  # fmt: skip
        return np.asarray(image.dataobj)[inside]

    shares, overlaps = [], []
    for method in dict.fromkeys(tests["method"]):
        mean = relevance_paths(out_dir, method)["mean_absolute"]
        maps = {"all": mean}
        maps |= {
            p.name.removeprefix("model-").removesuffix("_mean_absolute.nii.gz"): p
            for p in sorted(mean.parent.glob("model-*_mean_absolute.nii.gz"))
        }
        for name, path in maps.items():
            values = np.asarray(nib.load(path).dataobj)[inside]
            row = relevance_in_regions(values, regions, ageing, rng, n_random)
            shares.append({"map": name, "method": method, **row})
        for test in tests[tests["method"] == method].itertuples():
            one_sample = not isinstance(test.second, str) or not test.second
            affected = None if one_sample else affected_regions(truth_dir, test.first)
            if affected is None or pd.isna(test.max_abs_t):
                continue
            paths = stat_paths(out_dir, method, test.test)
            p_fwe, t = on_mask(paths["p_fwe"]), on_mask(paths["t"])
            significant = (p_fwe < alpha) & (p_fwe > 0)  # 0 outside the test's grid
            row = significant_overlap(significant, regions, affected, t)
            overlaps.append({"method": method, "test": test.test, **row})
    return (
        pd.DataFrame(shares, columns=TRUTH_COLUMNS),
        pd.DataFrame(overlaps, columns=OVERLAP_COLUMNS),
    )
