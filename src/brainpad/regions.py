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
