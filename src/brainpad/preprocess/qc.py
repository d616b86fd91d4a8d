"""Quality control of one preprocessed scan: metrics (qc.json) and a montage (PNG)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import ndimage

from brainpad.atomic import atomic_path


def similarity(warped: np.ndarray, template: np.ndarray, mask: np.ndarray) -> float:
    """Pearson correlation of the registered scan with the template inside the brain."""
    return float(np.corrcoef(warped[mask], template[mask])[0, 1])


@dataclass(frozen=True)
class QCThresholds:
    """What a scan must reach to be used (``qc:`` in the config)."""

    min_similarity: float = 0.5
    max_mirror_gain: float = -0.1
    tiv_range_ml: tuple[float, float] = (900.0, 2600.0)
    max_fov_edge: float = 0.01
    min_snr: float = 10.0
    max_ghost_ratio: float = 0.15

    @classmethod
    def from_config(cls, qc: dict) -> QCThresholds:
        """Thresholds from the config's ``qc`` section (missing keys keep the defaults)."""
        values = dict(qc)
        if "tiv_range_ml" in values:
            values["tiv_range_ml"] = tuple(float(v) for v in values["tiv_range_ml"])
        return cls(**values)


def image_quality(
    native: np.ndarray, native_brain: np.ndarray, spacing_mm: Sequence[float]
) -> dict:
    """Acquisition quality of the native scan, given its brain mask (carried back from MNI).

    ``fov_edge``: the fraction of the brain within 2 voxels of the field of view's edge
    (0 when the whole brain was imaged; a cut field of view puts brain on the edge).
    ``snr``: the median of the brightest quarter of the brain (white matter in a T1w,
    eroded 2 voxels) over the noise SD, estimated from differences of neighbouring voxels
    there (a robust SD / sqrt 2: smooth bias and anatomy cancel; :func:`_robust_sd`).
    ``ghost_ratio``: the mean signal where a half-field-of-view (N/2) ghost of the brain
    would fall, along either in-plane axis, more than 25 mm from the brain, over the
    brain's mean (MRIQC's ghost-to-signal ratio); air there holds only the noise floor.
    """
    shell = np.ones(native.shape, bool)
    shell[2:-2, 2:-2, 2:-2] = False
    fov_edge = float((native_brain & shell).sum() / max(int(native_brain.sum()), 1))
    core = ndimage.binary_erosion(native_brain, iterations=2)
    bright = core & (native >= np.percentile(native[core], 75))
    differences = np.concatenate([_neighbour_differences(native, bright, a) for a in range(3)])
    noise = _robust_sd(differences) / np.sqrt(2.0)
    snr = float(np.median(native[bright]) / noise) if noise > 0 else float("inf")
    near = ndimage.distance_transform_edt(~native_brain, sampling=spacing_mm) <= 25.0
    brain_mean = float(native[native_brain].mean())
    ghost = 0.0
    for axis in (0, 1):  # left-right and anterior-posterior (the scan is RAS)
        region = np.roll(native_brain, native.shape[axis] // 2, axis=axis) & ~near
        if region.any() and brain_mean > 0:
            ghost = max(ghost, float(native[region].mean()) / brain_mean)
    return {"fov_edge": fov_edge, "snr": snr, "ghost_ratio": ghost}


def _robust_sd(values: np.ndarray) -> float:
    """1.4826 MAD, or the plain SD where the MAD is 0: on integer data most neighbours of
    a smooth region tie (an 8-bit scan), and the MAD says nothing of the noise."""
    mad = float(np.median(np.abs(values - np.median(values))))
    return 1.4826 * mad if mad > 0 else float(np.std(values))


def _neighbour_differences(image: np.ndarray, where: np.ndarray, axis: int) -> np.ndarray:
    """``image[i + 1] - image[i]`` along ``axis`` for neighbours both in ``where``."""
    head = [slice(None)] * image.ndim
    tail = [slice(None)] * image.ndim
    head[axis], tail[axis] = slice(0, -1), slice(1, None)
    both = where[tuple(head)] & where[tuple(tail)]
    return (image[tuple(tail)] - image[tuple(head)])[both]


def qc_metrics(
    warped: np.ndarray,
    template: np.ndarray,
    mask: np.ndarray,
    volumes_ml: dict[str, float],
    affine_det: float,
    thresholds: QCThresholds,
    quality: dict[str, float] | None = None,
    orientation: dict[str, float] | None = None,
) -> dict:
    """All QC numbers of a scan and whether it passes, with a reason for each failure.

    A scan fails when its registration similarity is below ``min_similarity``, its total
    intracranial volume (GM + WM + CSF) falls outside ``tiv_range_ml``, a mirrored copy of
    its brain comes closer to the brain as stored than ``max_mirror_gain`` in its match with
    the template (``orientation``: the scores of
    :func:`brainpad.preprocess.registration.orientation_scores`; a header that flips an
    axis), or (given the :func:`image_quality` figures) its brain reaches the edge of the
    field of view, its SNR is too low or its ghost ratio too high.
    """
    t = thresholds
    sim = similarity(warped, template, mask)
    tiv = float(sum(volumes_ml.values()))
    reasons = []
    if not sim >= t.min_similarity:
        reasons.append(f"registration similarity {sim:.3f} < {t.min_similarity}")
    if not t.tiv_range_ml[0] <= tiv <= t.tiv_range_ml[1]:
        reasons.append(
            f"TIV {tiv:.0f} ml outside {t.tiv_range_ml[0]:.0f}-{t.tiv_range_ml[1]:.0f} ml"
        )
    mirror = {}
    if orientation:
        stored = orientation["as stored"]
        axis, best = max(
            ((k, v) for k, v in orientation.items() if k != "as stored"), key=lambda kv: kv[1]
        )
        mirror = {"orientation_similarity": stored, "mirror_gain": best - stored}
        if not best - stored <= t.max_mirror_gain:
            reasons.append(
                f"mirrored {axis} the brain matches the template about as well as or better "
                f"than as stored ({best:.2f} vs {stored:.2f}; a brain as it should be fits "
                "far better than its mirror images): the header's orientation is wrong, or the "
                "brain incomplete; reconvert the scan from DICOM or fix its affine"
            )
    quality = quality or {}
    if "fov_edge" in quality and not quality["fov_edge"] <= t.max_fov_edge:
        reasons.append(
            f"{quality['fov_edge']:.1%} of the brain on the edge of the field of view > "
            f"{t.max_fov_edge:.0%} (brain cut off)"
        )
    if "snr" in quality and not quality["snr"] >= t.min_snr:
        reasons.append(f"SNR {quality['snr']:.1f} < {t.min_snr}")
    if "ghost_ratio" in quality and not quality["ghost_ratio"] <= t.max_ghost_ratio:
        reasons.append(
            f"ghost-to-signal ratio {quality['ghost_ratio']:.2f} > {t.max_ghost_ratio} "
            "(ghosting or heavy noise)"
        )
    return {
        "similarity": sim,
        **{f"{tissue.lower()}_ml": float(v) for tissue, v in volumes_ml.items()},
        "tiv_ml": tiv,
        "affine_determinant": affine_det,
        **mirror,
        **quality,
        "passed": not reasons,
        "reasons": reasons,
    }


def write_json(data: dict, path: str | Path) -> None:
    """Write JSON through a temporary file."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2))


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
    """The QC JSON of every T1w scan in ``manifest`` (``<preproc_dir>/sub-*/[ses-*/]anat/``)."""
    import pandas as pd

    from brainpad.paths import preproc_paths

    scans = pd.read_csv(manifest, sep="\t", dtype=str)
    t1w = scans[scans["modality"] == "T1w"]
    return [preproc_paths(preproc_dir, scan_id)["qc"] for scan_id in t1w["scan_id"]]


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
        "orientation_similarity",
        "mirror_gain",
        "fov_edge",
        "snr",
        "ghost_ratio",
        "flair_similarity",
        "source",
    ]
    # reindex: a qc.json from before a metric existed gives an empty cell, not an error
    return pd.DataFrame(rows).reindex(columns=columns).sort_values("scan_id", ignore_index=True)
