"""Relevance maps of a cohort (``brainpad relevance``): every scan, every whole-brain network.

Each fold model explains the scans it predicts without having trained on them: its
out-of-fold training controls, every held-out scan (calibration, test, patients) and the
unlabelled scans. A scan's map of one base model is the mean over those fold models; its
map of a method is the mean over base models, each map first scaled to a mean absolute
relevance of 1 inside the brain (:func:`~brainpad.interpret.relevance.normalised`), so
every network counts alike. Maps are put back on the template grid (MNI) and written per
method as 4D NIfTI images, one volume per scan in ``scans.tsv``'s order:

* ``<method>/signed.nii.gz``: positive where the voxel pushed the predicted age up;
* ``<method>/absolute.nii.gz``: the mean of the absolute maps (a magnitude that does not
  cancel between networks of opposite sign), what the group statistics test;
* ``<method>/mean_signed.nii.gz``, ``mean_absolute.nii.gz``: their means over the healthy
  controls (one scan per participant);
* ``<method>/model-<name>_mean_absolute.nii.gz``: each network's mean over the healthy
  controls (which parts of the brain each network reads).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from brainpad.atomic import save_image_atomic, write_table_atomic
from brainpad.cohort.arrays import crop_slices, open_volumes
from brainpad.interpret.relevance import normalised, relevance
from brainpad.paths import array_files, relevance_paths
from brainpad.stats.tables import baseline_scans
from brainpad.training.inference import FittedNetwork
from brainpad.training.sets import fold_sets

log = logging.getLogger(__name__)

EXPLAINED = ("oof", "heldout", "unlabelled")
"""The parts of a fold (:func:`~brainpad.training.sets.fold_sets`) its model explains."""


def _fold_of(path: Path) -> int:
    """``.../fold-2/model.pt`` → 2."""
    return int(path.parent.name.removeprefix("fold-"))


def model_relevance(
    states: Sequence[str | Path],
    volumes,
    folds: pd.DataFrame,
    rows: pd.Series,
    crop_mask: np.ndarray,
    methods: Sequence[str],
    lrp_rule: str,
) -> dict[str, dict[str, np.ndarray]]:
    """One base model's normalised relevance per method and scan, averaged over folds.

    Parameters
    ----------
    states : sequence of path
        The base model's ``fold-<k>/model.pt`` files.
    volumes : array
        Its cohort array (scans, channels, x, y, z), read through
        :func:`~brainpad.cohort.arrays.open_volumes`.
    folds : DataFrame
        ``folds.tsv``.
    rows : Series
        scan_id → row of the cohort arrays.
    crop_mask : ndarray of bool
        The brain mask on the arrays' crop.
    methods, lrp_rule
        See :func:`~brainpad.interpret.relevance.relevance`.

    Returns
    -------
    dict
        method → scan_id → (2, x, y, z) on the crop grid: the mean signed map and the mean
        of the absolute maps (magnitudes that do not cancel between folds).
    """
    sums: dict[str, dict[str, np.ndarray]] = {m: {} for m in methods}
    counts: dict[str, int] = {}
    for path in map(Path, states):
        network = FittedNetwork(path, torch.device("cpu"))
        sets = fold_sets(folds, _fold_of(path))
        scans = folds.loc[sets.isin(EXPLAINED), "scan_id"].tolist()
        inputs = network.inputs(volumes[rows.loc[scans].to_numpy()])
        for method in methods:
            maps = relevance(network.net, network.model.to_age, inputs, method, lrp_rule=lrp_rule)
            if network.region is not None:  # back from the region's box to the crop
                box, region_mask = network.region  # the network saw nothing outside it
                full = np.zeros((len(maps), *crop_mask.shape), np.float32)
                full[(slice(None), *box)] = maps * region_mask
                maps = full
            for scan, values in zip(scans, normalised(maps, crop_mask), strict=True):
                both = np.stack([values, np.abs(values)])
                sums[method][scan] = sums[method].get(scan, 0.0) + both
        for scan in scans:
            counts[scan] = counts.get(scan, 0) + 1
    return {m: {s: v / counts[s] for s, v in maps.items()} for m, maps in sums.items()}


def cohort_relevance(
    models: dict[str, Sequence[str | Path]],
    arrays_dir: str | Path,
    folds_path: str | Path,
    mask_path: str | Path,
    out_dir: str | Path,
    methods: Sequence[str],
    control_group: str,
    lrp_rule: str = "epsilon",
) -> pd.DataFrame:
    """Relevance maps of every explained scan (see the module); returns ``scans.tsv``.

    Parameters
    ----------
    models : dict
        Base model name → its fold ``model.pt`` files.
    arrays_dir : path
        The cohort arrays (``results/arrays``).
    folds_path, mask_path : path
        ``folds.tsv`` and the template brain mask.
    out_dir : path
        Where the maps go (``results/interpret``).
    methods : sequence of str
        Relevance methods (:data:`~brainpad.interpret.relevance.METHODS`).
    control_group : str
        Label of the healthy controls (each network's mean map is over them).
    lrp_rule : str
        LRP rule of convolutions and dense layers.
    """
    from brainpad.models import parse_base_model

    folds = pd.read_csv(folds_path, sep="\t")
    index = pd.read_csv(array_files(arrays_dir)["index"], sep="\t")
    rows = index.set_index("scan_id")["row"]
    mask_img = nib.load(mask_path)
    mask = np.asarray(mask_img.dataobj) > 0
    crop = crop_slices(index)
    per_model: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    names = tqdm(models, desc="relevance", disable=not os.isatty(2))
    for name in names:
        volumes = open_volumes(array_files(arrays_dir, parse_base_model(name).input)["volumes"])
        per_model[name] = model_relevance(
            models[name], volumes, folds, rows, mask[crop], methods, lrp_rule
        )
        log.info("relevance of %s: %d scans", name, len(per_model[name][methods[0]]))
    scans = folds.set_index("scan_id").loc[
        sorted({s for maps in per_model.values() for s in maps[methods[0]]})
    ]
    table = scans.reset_index()[["scan_id", "participant_id", "group", "age", "role"]]
    table.insert(0, "volume", np.arange(len(table)))
    table["models"] = [sum(s in m[methods[0]] for m in per_model.values()) for s in table.scan_id]
    controls = table["group"] == control_group
    baseline = table.scan_id.isin(baseline_scans(table[controls])["scan_id"])

    def on_grid(values: np.ndarray) -> nib.Nifti1Image:
        grid = np.zeros((*mask.shape, len(values)), np.float32)
        grid[crop] = np.moveaxis(values, 0, -1)
        return nib.Nifti1Image(grid, mask_img.affine)

    for method in methods:
        stacked = np.zeros((2, len(table), *mask[crop].shape), np.float32)
        for name, maps in per_model.items():
            mine = np.array([s in maps[method] for s in table.scan_id])
            stacked[:, mine] += np.stack([maps[method][s] for s in table.scan_id[mine]], 1)
            if (mine & baseline).any():
                ids = table.scan_id[mine & baseline]
                mean = np.mean([maps[method][s][1] for s in ids], axis=0)
                path = Path(out_dir) / method / f"model-{name}_mean_absolute.nii.gz"
                save_image_atomic(on_grid(mean[None]).slicer[..., 0], path)
        stacked /= table["models"].to_numpy()[None, :, None, None, None]
        paths = relevance_paths(out_dir, method)
        for kind, values in zip(("signed", "absolute"), stacked, strict=True):
            save_image_atomic(on_grid(values), paths[kind])
            mean = values[baseline.to_numpy()].mean(0, keepdims=True)
            save_image_atomic(on_grid(mean).slicer[..., 0], paths[f"mean_{kind}"])
    write_table_atomic(table, Path(out_dir) / "scans.tsv")
    return table
