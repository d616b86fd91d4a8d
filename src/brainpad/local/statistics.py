"""Study 1's analysis of the local brain-PAD maps (``brainpad local-stats``).

From the per-scan maps written by :func:`brainpad.local.maps.write_local_maps`:

- ROI brain-PAD (Harvard-Oxford, voxelwise-corrected) of every scan, and per ROI the
  Pearson r between its tissue volume and its brain-PAD in healthy controls (Table 3);
- group comparisons (controls aged ≥ ``control_min_age`` vs each patient group, patient
  groups pairwise) per ROI and per voxel: Welch's t, df, p, Bonferroni, Cohen's d
  (Tables 4 and 5), with t and d maps as NIfTI;
- ICC(2,1) maps of the test–retest and between-site pairs, summarised by median and
  95 % range, beside the ICC of the same pairs' input tissue maps;
- the local model's accuracy on the healthy test set (median voxel MAE, global MAE);
- (the validation against the simulated truth is in :mod:`brainpad.local.truth`).

Maps are read one scan at a time; group maps are reduced to running moments.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import stats as sps

from brainpad.atomic import write_table_atomic
from brainpad.cohort.regions import roi_brain_pad
from brainpad.local.measures import (
    REPEAT_UNKNOWN,
    RunningMoments,
    icc_map,
    repeat_pairs,
    summarise_map,
    welch_maps,
)
from brainpad.paths import map_paths
from brainpad.stats.measures import bonferroni
from brainpad.stats.tables import (
    COMPARISON_COLUMNS,
    baseline_scans,
    compare_groups,
    comparison_pairs,
    comparison_people,
)

log = logging.getLogger(__name__)
TISSUES = ("GM", "WM", "CSF")


def statmap_path(out_dir: str | Path, name: str, stat: str) -> Path:
    """NIfTI of one statistic map, e.g. ``group-AD_vs_HC_stat-d_map.nii.gz``."""
    return Path(out_dir) / f"{name}_stat-{stat}_map.nii.gz"


@dataclass
class MapSet:
    """The per-scan maps of a cohort on the template grid, with the brain and atlas."""

    maps_dir: Path
    brain: np.ndarray
    atlas: np.ndarray
    labels: pd.DataFrame
    affine: np.ndarray

    @classmethod
    def load(cls, maps_dir, mask_path, atlas_path, labels_path) -> MapSet:
        """Read the template brain mask, the atlas labels and their table."""
        mask_img = nib.load(mask_path)
        atlas = np.asarray(nib.load(atlas_path).dataobj).astype(np.int64)
        if atlas.shape != mask_img.shape:
            msg = (
                f"{atlas_path}: atlas grid {atlas.shape} differs from the brain mask "
                f"{mask_img.shape} ({mask_path}); both must be the working-resolution templates"
            )
            raise ValueError(msg)
        labels = pd.read_csv(labels_path, sep="\t")
        brain = np.asarray(mask_img.dataobj) > 0
        return cls(Path(maps_dir), brain, atlas, labels, mask_img.affine)

    def read(self, scan_id: str, kind: str = "brainPADcorrected") -> np.ndarray:
        """One scan's map (``brainage``, ``brainPAD`` or ``brainPADcorrected``)."""
        path = map_paths(self.maps_dir, scan_id)[kind]
        return np.asarray(nib.load(path).dataobj, dtype=np.float32)

    def save(self, values: np.ndarray, path: Path) -> None:
        """Write a map on the template grid, NaN outside the brain."""
        grid = np.where(self.brain, values, np.nan).astype(np.float32)
        nib.save(nib.Nifti1Image(grid, self.affine), path)


def scans_with_maps(folds: pd.DataFrame, maps_dir: str | Path) -> pd.DataFrame:
    """The rows of ``folds`` whose maps were written (every scan the voxel model predicted)."""
    have = [map_paths(maps_dir, s)["brainPADcorrected"].is_file() for s in folds["scan_id"]]
    return folds[np.asarray(have, dtype=bool)].reset_index(drop=True)


def summarise_scans(
    scans: pd.DataFrame, people: pd.DataFrame, maps: MapSet
) -> tuple[pd.DataFrame, dict[str, RunningMoments]]:
    """Read every scan's corrected brain-PAD map once and reduce it.

    Returns
    -------
    roi_pad : DataFrame
        Per scan: identifying columns, ``whole_brain`` (the mean over brain voxels), then
        one column per ROI.
    groups : dict
        Running moments of the maps per group, over the scans of ``people`` (the group
        comparisons' participants).
    """
    compared = set(people["scan_id"])
    rows, groups = [], {}
    for row in scans.itertuples():
        pad_map = maps.read(row.scan_id)
        pad = roi_brain_pad(pad_map, maps.atlas, maps.labels, 0.0)
        rows.append([float(np.nanmean(pad_map[maps.brain])), *pad.to_numpy()])
        if row.scan_id in compared:
            groups.setdefault(row.group, RunningMoments()).add(pad_map)
    keys = scans[["scan_id", "participant_id", "group", "age", "role"]].reset_index(drop=True)
    values = pd.DataFrame(rows, columns=["whole_brain", *maps.labels["name"]])
    return pd.concat([keys, values], axis=1), groups


def volume_pad_correlation(
    roi_pad: pd.DataFrame, volumes: pd.DataFrame, names: list[str], control_group: str
) -> pd.DataFrame:
    """Pearson r between ROI tissue volume and ROI brain-PAD in the healthy controls.

    Controls of the calibration set are left out (the voxelwise correction was fitted on
    them). Each ROI's volume is that of its main tissue (the largest mean volume among
    GM, WM and CSF over the controls): grey matter for the cortex and deep nuclei, CSF for
    the ventricles.
    """
    keep = (roi_pad["group"] == control_group) & (roi_pad["role"] != "calibration")
    controls = baseline_scans(roi_pad[keep]).merge(volumes, on="scan_id")
    rows = []
    for name in names:
        tissue = max(TISSUES, key=lambda t: controls.get(f"{t}_{name}", pd.Series([0])).mean())
        pad, volume = controls[name].to_numpy(), controls[f"{tissue}_{name}"].to_numpy()
        ok = np.isfinite(pad) & np.isfinite(volume)
        r, p = sps.pearsonr(volume[ok], pad[ok]) if ok.sum() > 2 else (np.nan, np.nan)
        rows.append({"roi": name, "tissue": tissue, "n": int(ok.sum()), "r": r, "p": p})
    table = pd.DataFrame(rows)
    table["p_bonferroni"] = bonferroni(table["p"].fillna(1.0))
    return table


def roi_comparisons(
    roi_pad: pd.DataFrame, names: list[str], pairs: list[tuple[str, str]]
) -> pd.DataFrame:
    """Welch t, df, p, Cohen's d per ROI and comparison; Bonferroni over the whole table."""
    frames = [compare_groups(roi_pad, name, pairs=pairs).assign(roi=name) for name in names]
    table = pd.concat(frames, ignore_index=True)
    table["p_bonferroni"] = bonferroni(table["p"])
    return table[["roi", *COMPARISON_COLUMNS]]


def voxel_comparisons(
    groups: dict[str, RunningMoments],
    pairs: list[tuple[str, str]],
    maps: MapSet,
    out_dir: Path,
) -> pd.DataFrame:
    """t and d maps (NIfTI) per comparison and a summary row each.

    Bonferroni is over the brain voxels of one comparison: a voxel is significant when
    p · n_voxels < 0.05.
    """
    rows = []
    n_voxels = int(maps.brain.sum())
    for first, second in pairs:
        a, b = groups.get(first, RunningMoments()), groups.get(second, RunningMoments())
        if a.n < 2 or b.n < 2:
            continue
        result = welch_maps(a, b)
        name = f"group-{first}_vs_{second}"
        for stat in ("t", "d"):
            maps.save(result[stat], statmap_path(out_dir, name, stat))
        p, d, t = (result[k][maps.brain] for k in ("p", "d", "t"))
        rows.append(
            {
                "first": first,
                "second": second,
                "n_first": a.n,
                "n_second": b.n,
                "voxels": n_voxels,
                "significant_bonferroni": int(np.sum(np.nan_to_num(p, nan=1.0) * n_voxels < 0.05)),
                "median_d": float(np.nanmedian(d)),
                "max_abs_t": float(np.nanmax(np.abs(t))),
                "max_abs_d": float(np.nanmax(np.abs(d))),
            }
        )
    columns = ["first", "second", "n_first", "n_second", "voxels", "significant_bonferroni"]
    return pd.DataFrame(rows, columns=[*columns, "median_d", "max_abs_t", "max_abs_d"])


def icc_tables(
    scans: pd.DataFrame,
    maps: MapSet,
    out_dir: Path,
    tissue: Callable[[str], np.ndarray] | None = None,
) -> pd.DataFrame:
    """ICC(2,1) maps of the corrected brain-PAD over test–retest and between-site pairs.

    With ``tissue`` (scan id → its GM + WM input map on the template grid), the same pairs'
    ICC of the input tissue maps too (``map`` = ``tissue``, no NIfTI written): the
    reliability the model starts from, which tells a noisy network from noisy inputs.
    """
    pairs = repeat_pairs(scans)
    loaders = {"brainPADcorrected": maps.read}
    if tissue is not None:
        loaders["tissue"] = tissue
    rows = []
    kinds = ["test-retest", "between-site"]
    kinds += [REPEAT_UNKNOWN] if (pairs["kind"] == REPEAT_UNKNOWN).any() else []
    for kind in kinds:
        chosen = pairs[pairs["kind"] == kind]
        if len(chosen) < 2:
            log.warning("ICC %s: %d pair(s); at least 2 are needed, skipped", kind, len(chosen))
            rows += [{"kind": kind, "map": name, "pairs": len(chosen)} for name in loaders]
            continue
        for name, load in loaders.items():
            icc = icc_map(chosen, load)
            if name == "brainPADcorrected":
                maps.save(icc, statmap_path(out_dir, f"icc-{kind}", "icc"))
            rows.append(
                {"kind": kind, "map": name, "pairs": len(chosen), **summarise_map(icc, maps.brain)}
            )
    return pd.DataFrame(rows)


def local_accuracy(scans: pd.DataFrame, maps: MapSet, truth: pd.DataFrame | None) -> pd.DataFrame:
    """Healthy-test accuracy of the local model (raw brain-age maps, one scan each).

    ``median_voxel_mae``: per participant the mean |brain age − age| over brain voxels,
    then the median across participants (study 1 reports 9.5 y); ``global_mae``: MAE of
    the map means (the global local-model brain age); ``floor_mae`` (simulated data): what
    a perfect model would score on the same participants.
    """
    test = baseline_scans(scans[scans["role"] == "test"])
    voxel_mae, global_age = [], []
    for row in test.itertuples():
        brain_age = maps.read(row.scan_id, "brainage")[maps.brain]
        voxel_mae.append(float(np.nanmean(np.abs(brain_age - row.age))))
        global_age.append(float(np.nanmean(brain_age)))
    age = test["age"].to_numpy(dtype=float)
    global_age = np.asarray(global_age)
    result = {
        "n": len(test),
        "median_voxel_mae": float(np.median(voxel_mae)) if voxel_mae else np.nan,
        "global_mae": float(np.abs(global_age - age).mean()) if len(age) else np.nan,
        "global_r": float(sps.pearsonr(age, global_age)[0]) if len(age) > 2 else np.nan,
    }
    if truth is not None and len(test):
        true_age = truth.loc[test["participant_id"], "true_brain_age"].to_numpy()
        result["floor_mae"] = float(np.abs(true_age - age).mean())
    return pd.DataFrame([result])


def local_statistics(
    folds: pd.DataFrame,
    maps: MapSet,
    volumes: pd.DataFrame,
    control_group: str,
    control_min_age: float,
    out_dir: str | Path,
    truth: pd.DataFrame | None = None,
    tissue: Callable[[str], np.ndarray] | None = None,
) -> dict[str, pd.DataFrame]:
    """Run the whole analysis; write the NIfTI maps to ``out_dir`` and return the tables.

    ``tissue`` (scan id → GM + WM input map) adds the inputs' ICC to the ``icc`` table.

    Returns
    -------
    dict
        ``roi_brain_pad``, ``roi_volume_correlation``, ``global_group_comparison``,
        ``roi_group_comparison``,
        ``voxel_group_comparison``, ``icc`` and ``accuracy`` (with the floor MAE when
        the simulation's ``truth`` subjects table, indexed by participant, is given).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scans = scans_with_maps(folds, maps.maps_dir)
    names = maps.labels["name"].tolist()
    people = comparison_people(scans, control_group, control_min_age)
    pairs = comparison_pairs(people, control_group)
    log.info("group comparisons: %s", ", ".join(f"{a} vs {b}" for a, b in pairs))
    roi_pad, groups = summarise_scans(scans, people, maps)
    roi_people = roi_pad[roi_pad["scan_id"].isin(people["scan_id"])]
    for group, acc in groups.items():
        maps.save(acc.mean, statmap_path(out_dir, f"group-{group}", "meanbrainPAD"))
    tables = {
        "roi_brain_pad": roi_pad,
        "roi_volume_correlation": volume_pad_correlation(roi_pad, volumes, names, control_group),
        "global_group_comparison": compare_groups(roi_people, "whole_brain", pairs=pairs),
        "roi_group_comparison": roi_comparisons(roi_people, names, pairs),
        "voxel_group_comparison": voxel_comparisons(groups, pairs, maps, out_dir),
        "icc": icc_tables(scans, maps, out_dir, tissue),
    }
    tables["accuracy"] = local_accuracy(scans, maps, truth)
    for name, table in tables.items():
        log.info("%s:\n%s", name, table.head(10).to_string())
    return tables


def read_mean_maps(statmaps_dir: str | Path) -> dict[str, np.ndarray]:
    """The per-group mean corrected brain-PAD maps written by :func:`local_statistics`."""
    suffix = "_stat-meanbrainPAD_map.nii.gz"
    return {
        path.name.removeprefix("group-").removesuffix(suffix): np.asarray(
            nib.load(path).dataobj, dtype=np.float64
        )
        for path in sorted(Path(statmaps_dir).glob(f"group-*{suffix}"))
    }


def write_tables(tables: dict[str, pd.DataFrame], out_dir: str | Path) -> None:
    """Each table as ``<out_dir>/<name>.tsv`` (written atomically)."""
    for name, table in tables.items():
        write_table_atomic(table, Path(out_dir) / f"{name}.tsv")
