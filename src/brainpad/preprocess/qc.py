"""Quality control of one preprocessed scan: metrics (qc.json) and a montage (PNG)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def similarity(warped: np.ndarray, template: np.ndarray, mask: np.ndarray) -> float:
    """Pearson correlation of the registered scan with the template inside the brain."""
    return float(np.corrcoef(warped[mask], template[mask])[0, 1])


def qc_metrics(
    warped: np.ndarray,
    template: np.ndarray,
    mask: np.ndarray,
    volumes_ml: dict[str, float],
    affine_det: float,
    min_similarity: float,
    tiv_range_ml: tuple[float, float],
) -> dict:
    """All QC numbers of a scan and whether it passes.

    A scan fails when its registration similarity is below ``min_similarity`` or its total
    intracranial volume (GM + WM + CSF) falls outside ``tiv_range_ml``.
    """
    sim = similarity(warped, template, mask)
    tiv = float(sum(volumes_ml.values()))
    reasons = []
    if not sim >= min_similarity:
        reasons.append(f"registration similarity {sim:.3f} < {min_similarity}")
    if not tiv_range_ml[0] <= tiv <= tiv_range_ml[1]:
        reasons.append(f"TIV {tiv:.0f} ml outside {tiv_range_ml[0]:.0f}-{tiv_range_ml[1]:.0f} ml")
    return {
        "similarity": sim,
        **{f"{tissue.lower()}_ml": float(v) for tissue, v in volumes_ml.items()},
        "tiv_ml": tiv,
        "affine_determinant": affine_det,
        "passed": not reasons,
        "reasons": reasons,
    }


def write_json(data: dict, path: str | Path) -> None:
    """Write JSON through a temporary file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _mid_slices(volume: np.ndarray) -> list[np.ndarray]:
    x, y, z = (s // 2 for s in volume.shape)
    return [volume[x, :, :].T, volume[:, y, :].T, volume[:, :, z].T]


def montage(
    native: np.ndarray,
    native_mask: np.ndarray,
    warped: np.ndarray,
    template_mask: np.ndarray,
    gm: np.ndarray,
    title: str,
    path: str | Path,
) -> None:
    """Three rows (scan + brain mask, registered scan + template outline, modulated GM),
    three orthogonal mid-slices each."""
    fig, axes = plt.subplots(3, 3, figsize=(9, 9))
    rows = [
        (native, native_mask, "scan + brain mask"),
        (warped, template_mask, "in MNI + template brain"),
        (gm, None, "modulated GM"),
    ]
    for row, (image, outline, label) in zip(axes, rows, strict=True):
        outlines = _mid_slices(outline.astype(float)) if outline is not None else [None] * 3
        for ax, slice_, edge in zip(row, _mid_slices(image), outlines, strict=True):
            ax.imshow(slice_, origin="lower", cmap="gray")
            if edge is not None:
                ax.contour(edge, levels=[0.5], colors="r", linewidths=0.6)
            ax.set_axis_off()
        row[0].set_title(label, fontsize=9, loc="left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=60)
    plt.close(fig)


def manifest_qc_files(manifest: str | Path, preproc_dir: str | Path) -> list[Path]:
    """The qc.json of every T1w scan in ``manifest`` (``<preproc_dir>/<sub>/...``)."""
    import pandas as pd

    from brainpad.layout import preproc_paths

    scans = pd.read_csv(manifest, sep="\t", dtype=str)
    t1w = scans[scans["modality"] == "T1w"]
    return [
        preproc_paths(preproc_dir, pid, scan_id)["qc"]
        for scan_id, pid in zip(t1w["scan_id"], t1w["participant_id"], strict=True)
    ]


def summarise(qc_files: list[str | Path]) -> pd.DataFrame:
    """One row per scan from its qc.json files (the cohort QC table)."""
    import pandas as pd

    rows = []
    for path in qc_files:
        data = json.loads(Path(path).read_text())
        data["reasons"] = "; ".join(data.get("reasons", []))
        rows.append(data)
    columns = [
        "scan_id",
        "passed",
        "reasons",
        "similarity",
        "gm_ml",
        "wm_ml",
        "csf_ml",
        "tiv_ml",
        "affine_determinant",
        "seconds",
        "source",
    ]
    return pd.DataFrame(rows)[columns].sort_values("scan_id", ignore_index=True)
