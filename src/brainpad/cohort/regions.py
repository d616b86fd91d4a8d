"""Harvard-Oxford region summaries of modulated tissue maps."""

from __future__ import annotations

import numpy as np
import pandas as pd


def roi_volumes(
    maps: dict[str, np.ndarray], atlas: np.ndarray, labels: pd.DataFrame, voxel_volume_mm3: float
) -> pd.DataFrame:
    """Tissue volume (mm³) per atlas region from modulated maps.

    Parameters
    ----------
    maps : dict
        Tissue name (e.g. ``GM``) → modulated map (tissue volume fraction per voxel).
    atlas : ndarray of int
        Label image on the same grid (0 = no region).
    labels : DataFrame
        ``label`` and ``name`` of the regions to report.
    voxel_volume_mm3 : float
        Volume of one voxel.

    Returns
    -------
    DataFrame
        One row per region: ``label, name`` and ``<tissue>_mm3`` per tissue.
    """
    flat = atlas.ravel().astype(np.int64)
    n = max(int(flat.max()), int(labels["label"].max())) + 1
    table = labels[["label", "name"]].copy()
    for tissue, volume in maps.items():
        sums = np.bincount(flat, weights=np.asarray(volume, dtype=np.float64).ravel(), minlength=n)
        table[f"{tissue}_mm3"] = sums[table["label"].to_numpy()] * voxel_volume_mm3
    return table.reset_index(drop=True)


def cohort_roi_volumes(
    scans: pd.DataFrame, channels: dict[str, str], atlas_path: str, labels_path: str
) -> pd.DataFrame:
    """ROI tissue volumes of every scan, one wide row per scan (streams one scan at a time).

    Parameters
    ----------
    scans : DataFrame
        ``scan_id`` plus one column of map paths per tissue in ``channels``.
    channels : dict
        Tissue name → column of ``scans`` holding its modulated map.
    atlas_path, labels_path : str
        Harvard-Oxford label image on the maps' grid and its label table (TSV).

    Returns
    -------
    DataFrame
        ``scan_id`` then one column ``<tissue>_<region name>`` (mm³) per tissue and region.
    """
    import nibabel as nib

    atlas_img = nib.load(atlas_path)
    atlas = np.asarray(atlas_img.dataobj).astype(np.int64)
    labels = pd.read_csv(labels_path, sep="\t")
    voxel = float(np.prod(atlas_img.header.get_zooms()[:3]))
    rows = []
    for scan in scans.to_dict("records"):
        maps = {
            t: np.asarray(nib.load(scan[c]).dataobj, dtype=np.float32) for t, c in channels.items()
        }
        table = roi_volumes(maps, atlas, labels, voxel)
        row = {"scan_id": scan["scan_id"]}
        for tissue in channels:
            row.update(zip(tissue + "_" + table["name"], table[f"{tissue}_mm3"], strict=True))
        rows.append(row)
    return pd.DataFrame(rows)


def roi_brain_pad(
    brain_age: np.ndarray, atlas: np.ndarray, labels: pd.DataFrame, age: float
) -> pd.Series:
    """ROI brain-PAD of one scan: mean voxel brain age inside each region minus age.

    Parameters
    ----------
    brain_age : ndarray
        Local brain-age map (NaN outside the brain).
    atlas : ndarray of int
        Label image on the same grid (0 = no region).
    labels : DataFrame
        ``label`` and ``name`` of the regions to report.
    age : float
        The scan's chronological age.

    Returns
    -------
    Series
        Indexed by region name; NaN for a region with no brain voxel.
    """
    flat = atlas.ravel().astype(np.int64)
    values = np.asarray(brain_age, dtype=np.float64).ravel()
    finite = np.isfinite(values)
    n = max(int(flat.max()), int(labels["label"].max())) + 1
    sums = np.bincount(flat[finite], weights=values[finite], minlength=n)
    counts = np.bincount(flat[finite], minlength=n)
    index = labels["label"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums[index] / counts[index]
    return pd.Series(means - age, index=labels["name"].to_numpy())
