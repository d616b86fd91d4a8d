"""Validation of the local brain-PAD maps against the simulated truth (``brainpad local-truth``).

Per patient group: does the group's mean corrected brain-PAD map look like the group's
true local brain-PAD map, and are the ROIs with the largest effects the truly affected
ones? A correlation alone does not say whether a miss is the model's fault or the
cohort's: with a few dozen patients, individual anatomy hides part of any regional
pattern. :func:`volumetric_ceiling` measures that limit from the simulation's own
records (true regional volumes, ages and head sizes): the map correlation an estimator
that knew every region's exact volume would reach on the same participants. The image
ceiling (:func:`image_regional_volumes`) runs the same estimator on the regional tissue
volumes the preprocessed maps (the model's input) carry: the gap between the two is what
registration, segmentation and resampling lose, the gap between the image ceiling and the
maps is what the model loses.

Reads only the truth folder's files; shares no code with the simulation.
"""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import statsmodels.api as sm

from brainpad.local.measures import region_correlation, spatial_correlation

log = logging.getLogger(__name__)

TRUE_MAP = "group-{group}_space-MNI152NLin2009aSym_desc-truelocalbrainPAD.nii.gz"
REGION_MAP = "space-MNI152NLin2009aSym_desc-regions_dseg.nii.gz"


def truth_validation(
    mean_maps: dict[str, np.ndarray],
    roi_tests: pd.DataFrame,
    brain: nib.Nifti1Image,
    truth_dir: str | Path,
    control_group: str,
    top: int = 5,
    image_volumes: pd.DataFrame | None = None,
    reliability: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Compare the recovered group maps and ROI effects with the simulation's truth.

    Per patient group: Pearson r over the brain between its mean corrected brain-PAD map
    and its true local brain-PAD map (study 1's goal for AD: r ≥ 0.8), the same r for
    the exact-volume estimator of :func:`volumetric_ceiling` (what this cohort allows),
    each also over the simulation's regions (``*_roi_r``,
    :func:`~brainpad.local.measures.region_correlation`: one point per region, its voxel
    noise averaged out), and how many of the ``top`` ROIs with the largest |Cohen's d|
    against the controls are truly affected, i.e. accelerated beyond the brain-wide common
    rate (the median over regions).

    Parameters
    ----------
    mean_maps : dict
        Group → mean corrected brain-PAD map on the grid of ``brain``.
    roi_tests : DataFrame
        ROI group comparisons (:func:`brainpad.local.statistics.roi_comparisons`).
    brain : Nifti1Image
        The template brain mask (grid and voxels of the comparison).
    truth_dir : path
        The simulation's truth folder (``regions.tsv``, ``group-*_..._truelocalbrainPAD``;
        ``subjects.tsv``, ``roi_volumes.tsv`` and the region map for the ceiling).
    control_group : str
        Label of the controls (no true map to compare with: theirs is zero).
    top : int
        How many leading ROIs to check.
    image_volumes : DataFrame, optional
        Regional tissue volumes measured in the preprocessed maps
        (:func:`image_regional_volumes`); adds ``image_ceiling_r``, the same estimator's r
        from them.
    reliability : dict, optional
        Group → :func:`split_half_reliability` of its mean map; adds ``map_reliability``
        and ``noise_ceiling_r`` (its square root: the most any r over voxels of a mean map
        this noisy can reach).
    """
    truth_dir = Path(truth_dir)
    regions = pd.read_csv(truth_dir / "regions.tsv", sep="\t").set_index("name")
    inside = np.asarray(brain.dataobj) > 0
    labels = regions_on_grid(truth_dir / REGION_MAP, brain)
    patients = [g for g in mean_maps if g != control_group and f"acceleration_{g}" in regions]
    ceilings = volumetric_ceiling(truth_dir, patients, control_group, brain)
    if image_volumes is not None:
        image_ceilings = volumetric_ceiling(
            truth_dir, patients, control_group, brain, volumes=image_volumes
        )
    rows = []
    for group in patients:
        column = f"acceleration_{group}"
        true_map = read_true_map(truth_dir, group, brain)
        if true_map is None:
            continue
        acceleration = regions[column]
        affected = acceleration > acceleration.median()
        tests = roi_tests[(roi_tests["first"] == group) & (roi_tests["second"] == control_group)]
        leaders = tests.loc[tests["d"].abs().sort_values(ascending=False).index].head(top)
        hits = [name for name in leaders["roi"] if affected.get(name, False)]
        estimates = {"map_vs_truth": mean_maps[group], "volumetric_ceiling": ceilings[group]}
        if image_volumes is not None:
            estimates["image_ceiling"] = image_ceilings[group]
        row = {"group": group}
        for name, estimate in estimates.items():
            row[f"{name}_r"] = spatial_correlation(estimate, true_map, inside)
            row[f"{name}_roi_r"] = region_correlation(estimate, true_map, labels, inside)
        if reliability is not None:
            value = reliability.get(group, np.nan)
            row["map_reliability"] = value
            row["noise_ceiling_r"] = float(np.sqrt(value)) if value > 0 else np.nan
        row |= {
            f"top{top}_rois": ", ".join(leaders["roi"]),
            f"top{top}_truly_affected": len(hits),
            "affected_rois": int(affected.sum()),
            "rois": len(affected),
        }
        rows.append(row)
    estimates = ["map_vs_truth", "volumetric_ceiling"]
    estimates += ["image_ceiling"] if image_volumes is not None else []
    columns = ["group"] + [f"{name}_{kind}" for name in estimates for kind in ("r", "roi_r")]
    columns += ["map_reliability", "noise_ceiling_r"] if reliability is not None else []
    columns += [f"top{top}_rois", f"top{top}_truly_affected", "affected_rois", "rois"]
    return pd.DataFrame(rows, columns=columns)


def split_half_reliability(maps: np.ndarray, seed: int = 0, splits: int = 100) -> float:
    """Reliability of a group's mean map: mean split-half r, Spearman–Brown corrected.

    The group's scans are split at random into two halves ``splits`` times; the Pearson r
    over voxels between the two halves' mean maps, averaged over the splits, is stepped up
    to the full group by Spearman–Brown (2r / (1 + r)). Its square root bounds the
    correlation of the group's mean map with *any* fixed map (the "noise ceiling"): a mean
    map this noisy reaches it only if its expected pattern were exactly the truth. Errors
    all scans share (a bias correction's own noise) count as reliable, so it is an upper
    bound.

    Parameters
    ----------
    maps : ndarray
        (scans, voxels) maps of the group; voxels NaN in any scan are left out.
    seed : int
        Seed of the random splits.
    splits : int
        Random splits averaged.

    Returns
    -------
    float
        The reliability (NaN for fewer than 4 scans or a constant half).
    """
    maps = np.asarray(maps, dtype=np.float64)
    maps = maps[:, np.isfinite(maps).all(axis=0)]
    n = len(maps)
    if n < 4 or maps.shape[1] < 3:
        return float("nan")
    rng = np.random.default_rng(seed)
    rs = []
    for _ in range(splits):
        order = rng.permutation(n)
        first, second = maps[order[: n // 2]].mean(axis=0), maps[order[n // 2 :]].mean(axis=0)
        if np.ptp(first) == 0 or np.ptp(second) == 0:
            return float("nan")
        rs.append(np.corrcoef(first, second)[0, 1])
    r = float(np.mean(rs))
    return 2 * r / (1 + r)


def group_reliabilities(
    folds: pd.DataFrame,
    maps_dir: str | Path,
    brain: np.ndarray,
    control_group: str,
    seed: int = 0,
) -> dict[str, float]:
    """:func:`split_half_reliability` of each patient group's mean corrected brain-PAD map,
    over the scans its mean map holds (one per participant, ``local-stats``' choice)."""
    from brainpad.local.statistics import scans_with_maps
    from brainpad.paths import map_paths
    from brainpad.stats.tables import comparison_people

    # the patients compared do not depend on the controls' age limit
    people = comparison_people(scans_with_maps(folds, maps_dir), control_group, 0.0)
    reliability = {}
    for group, members in people[people["group"] != control_group].groupby("group"):
        maps = np.stack(
            [
                np.asarray(nib.load(map_paths(maps_dir, s)["brainPADcorrected"]).dataobj)[brain]
                for s in members["scan_id"]
            ]
        )
        reliability[str(group)] = split_half_reliability(maps, seed)
    return reliability


def regional_excess_age(
    volumes: pd.DataFrame, people: pd.DataFrame, group: str, control_group: str
) -> pd.Series:
    """Mean extra years of ageing of ``group`` per region, from exact regional volumes.

    Per region, ordinary least squares of log volume on age and log head volume
    (3 · log head scale) in the controls; a patient's excess age is its residual over the
    age slope, and the group's is their mean. Regions whose volume does not change with
    age (|t| of the slope < 2) carry no age information and are left out, as are regions
    with no volume in some participant (a region the measured maps hold no tissue of).

    Parameters
    ----------
    volumes : DataFrame
        Region volumes, one column per region, indexed like ``people``.
    people : DataFrame
        ``age``, ``group`` and ``head_scale`` per participant.
    """
    controls = (people["group"] == control_group).to_numpy()
    patients = (people["group"] == group).to_numpy()
    design = sm.add_constant(
        np.column_stack([people["age"], 3 * np.log(people["head_scale"])]).astype(float)
    )
    excess = {}
    for name in volumes.columns:
        volume = volumes[name].to_numpy(dtype=float)
        if not np.all(volume > 0):
            continue
        log_volume = np.log(volume)
        fit = sm.OLS(log_volume[controls], design[controls]).fit()
        if not abs(fit.tvalues[1]) >= 2:  # also a slope of exactly 0 (t NaN)
            continue
        residual = log_volume[patients] - fit.predict(design[patients])
        excess[name] = float(residual.mean() / fit.params[1])
    return pd.Series(excess, dtype=float)


def volumetric_ceiling(
    truth_dir: str | Path,
    groups: list[str],
    control_group: str,
    reference: nib.Nifti1Image,
    volumes: pd.DataFrame | None = None,
) -> dict[str, np.ndarray]:
    """The exact-volume estimator's local brain-PAD map of each of ``groups`` (NaN: no
    estimate).

    :func:`regional_excess_age` from the simulation's true regional volumes, painted on
    its region map and put on the grid of ``reference``. The estimator knows every
    participant's exact regional volumes and head size, so only individual anatomy and
    the group's size limit it: its correlation with the true map bounds what a model
    working from the images of the same participants can reach. Given ``volumes``
    (participant × region, e.g. :func:`image_regional_volumes`), the estimator uses those
    instead, for the participants they list.
    """
    truth_dir = Path(truth_dir)
    people = pd.read_csv(truth_dir / "subjects.tsv", sep="\t").set_index("participant_id")
    if volumes is None:
        volumes = pd.read_csv(truth_dir / "roi_volumes.tsv", sep="\t").set_index("participant_id")
    people = people.loc[people.index.intersection(volumes.index)]
    volumes = volumes.loc[people.index]
    regions = pd.read_csv(truth_dir / "regions.tsv", sep="\t").set_index("name")
    labels = regions_on_grid(truth_dir / REGION_MAP, reference)
    maps = {}
    for group in groups:
        excess = regional_excess_age(volumes, people, group, control_group)
        lookup = np.full(int(regions["region"].max()) + 1, np.nan)
        lookup[regions.loc[excess.index, "region"].to_numpy()] = excess.to_numpy()
        maps[group] = np.where(labels > 0, lookup[labels], np.nan)
    return maps


def image_regional_volumes(
    volumes: np.ndarray,
    index: pd.DataFrame,
    folds: pd.DataFrame,
    reference: nib.Nifti1Image,
    truth_dir: str | Path,
) -> pd.DataFrame:
    """Tissue volume (mm³, GM + WM) in each simulated region, read from the modulated maps.

    Parameters
    ----------
    volumes : ndarray
        The cohort arrays (scans, channels, x, y, z; modulated GM and WM first), cropped
        from ``reference``'s grid as ``index`` records.
    index : DataFrame
        The arrays' index (``row``, ``scan_id``, ``crop_x`` ...).
    folds : DataFrame
        The folds table; each participant's first scan is measured.
    reference : Nifti1Image
        The template grid of the maps (its voxel volume scales the sums).
    truth_dir : path
        The simulation's truth folder (``regions.tsv`` and the region map).

    Returns
    -------
    DataFrame
        Participant × region name, the regions of ``regions.tsv``.
    """
    from brainpad.cohort.arrays import crop_slices, scan_tissue
    from brainpad.stats.tables import baseline_scans

    truth_dir = Path(truth_dir)
    regions = pd.read_csv(truth_dir / "regions.tsv", sep="\t")
    labels = regions_on_grid(truth_dir / REGION_MAP, reference)[crop_slices(index)].ravel()
    voxel_mm3 = float(abs(np.linalg.det(reference.affine[:3, :3])))
    scans = baseline_scans(folds[folds["scan_id"].isin(index["scan_id"])])
    rows = index.set_index("scan_id").loc[scans["scan_id"], "row"]
    n_labels = max(int(regions["region"].max()), int(labels.max())) + 1
    measured = [np.bincount(labels, scan_tissue(volumes, row).ravel(), n_labels) for row in rows]
    table = np.stack(measured)[:, regions["region"].to_numpy()] * voxel_mm3
    return pd.DataFrame(table, index=scans["participant_id"].to_numpy(), columns=regions["name"])


def read_true_map(
    truth_dir: str | Path, group: str, reference: nib.Nifti1Image
) -> np.ndarray | None:
    """A group's simulated true local brain-PAD map on the grid of ``reference`` (or None)."""
    path = Path(truth_dir) / TRUE_MAP.format(group=group)
    if not path.is_file():
        return None
    return _on_grid(nib.load(path), reference)


def regions_on_grid(path: str | Path, reference: nib.Nifti1Image) -> np.ndarray:
    """The simulation's region map (``path``) as integer labels on ``reference``'s grid."""
    return _on_grid(nib.load(path), reference).astype(np.int64)


def _on_grid(image: nib.Nifti1Image, reference: nib.Nifti1Image) -> np.ndarray:
    """``image`` on the grid of ``reference``. The simulation's grid is the template's with
    a wider field of view, so nearest-neighbour resampling only re-indexes it."""
    from nilearn.image import resample_to_img

    resampled = resample_to_img(
        image, reference, interpolation="nearest", copy_header=True, force_resample=True
    )
    return resampled.get_fdata()
