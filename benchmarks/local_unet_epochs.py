"""What each training epoch of one local_unet fold model gives: validation, global age, maps.

Trains ``local_unet`` on one fold with the workflow's own code and config
(:func:`brainpad.training.fold.train_fold`, the settings of ``config/config.yaml``), keeps every
epoch's weights, and prints per epoch the two validation MAEs early stopping can watch
(``models.local_unet.selection``), the out-of-fold global MAE (mean over each fold
control's whole-brain map, against its age), the median voxel MAE of those maps, and how
well the AD patients' mean brain-PAD map minus the held-out controls' (≥ 60), neither
corrected, correlates with the simulation's true AD map (r over the brain, as
``map_vs_truth_r`` in ``results/maps/stats/truth_validation.tsv``). Needs a demo run up
to the cohort arrays (``results/arrays``, ``results/folds.tsv``, ``results/templates``).

Usage: python benchmarks/local_unet_epochs.py [--results results] [--fold 0]
       [--epochs 1 2 4 8 16]   (epochs to map; default every other one and the first)
       [--set convs_per_scale=1 ...]   (models.local_unet settings to change, YAML values)
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
import yaml
from snakemake.utils import validate

import brainpad.epochs
from brainpad.cohort.arrays import crop_slices
from brainpad.local.measures import spatial_correlation
from brainpad.local.truth import read_true_map
from brainpad.models import local_unet
from brainpad.paths import array_files, template_files
from brainpad.training.data import Standardised
from brainpad.training.fold import fold_sets, train_fold
from brainpad.training.inference import predict_map

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results", help="a demo run's results")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--epochs", type=int, nargs="*", help="epochs to map")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="local_unet settings to change"
    )
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    for setting in args.set:
        key, equals, value = setting.partition("=")
        if not equals:
            parser.error(f"--set {setting!r}: expected KEY=VALUE, e.g. convs_per_scale=1")
        config["models"]["local_unet"][key] = yaml.safe_load(value)
    validate(config, str(ROOT / "workflow/schemas/config.schema.yaml"))  # fills defaults
    params = {**config["models"]["local_unet"], "heldout_models": "one"}
    results = Path(args.results)
    arrays = array_files(results / "arrays")
    mask_path = template_files(results / "templates", config["preprocess"]["voxel_size"])["mask"]

    weights = {}
    save = brainpad.training.loop.save_atomic

    def keep_weights(state: dict, path: Path) -> None:  # run_epochs saves once per epoch
        weights[state["state"]["epoch"]] = copy.deepcopy(state["net"])
        save(state, path)

    brainpad.training.loop.save_atomic = keep_weights
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        train_fold(
            "local_unet", args.fold, results / "folds.tsv", params, config["seed"],
            out / "pred.tsv", out / "model.pt", volumes_path=arrays["volumes"],
            index_path=arrays["index"], mask_path=mask_path, maps_path=out / "maps.npy",
        )  # fmt: skip
        model = torch.load(out / "model.pt", weights_only=True)
    print(f"fold {args.fold}: trained in {time.perf_counter() - start:.0f} s")

    folds = pd.read_csv(results / "folds.tsv", sep="\t")
    groups = pd.read_csv(results / "simulated/participants.tsv", sep="\t")
    group = folds["participant_id"].map(groups.set_index("participant_id")["group"])
    sets = fold_sets(folds, args.fold, params["validation_fraction"])
    index = pd.read_csv(arrays["index"], sep="\t")
    rows = folds["scan_id"].map(index.set_index("scan_id")["row"]).to_numpy()
    ages = folds["age"].to_numpy(dtype=float)
    first_scan = ~folds.duplicated("participant_id")
    heldout = (sets == "heldout") & first_scan
    scans = {
        "oof": (sets == "oof").to_numpy(),
        "AD": (heldout & (group == "AD")).to_numpy(),
        "HC60": (heldout & (group == "HC") & (folds["age"] >= 60)).to_numpy(),
    }

    volumes = np.load(arrays["volumes"], mmap_mode="r")
    if params["standardise"]:
        volumes = Standardised.fit(volumes, rows[(sets == "train").to_numpy()])
    crop = crop_slices(index)
    mask_img = nib.load(mask_path)
    mask = np.asarray(mask_img.dataobj)[crop] > 0
    resolved = local_unet.resolve(params, float(min(mask_img.header.get_zooms()[:3])))
    size_in, size_out = resolved["block"]
    truth = read_true_map(results / "simulated/derivatives/simulation", "AD", mask_img)[crop]
    net = local_unet.build(volumes.shape[1], [size_in] * 3, {**params, **resolved})
    overlap = round(params["tile_overlap"] * size_out)

    def brain_pad(which: np.ndarray) -> np.ndarray:
        return np.stack([
            predict_map(
                net, local_unet.to_age, volumes[row], mask, (size_in, size_out), overlap,
                params["batch_size"], torch.device("cpu"), (model["age_mean"], model["age_sd"]),
            ) - age
            for row, age in zip(rows[which], ages[which], strict=True)
        ])  # fmt: skip

    history = pd.DataFrame(model["history"]).set_index("epoch")
    chosen = args.epochs or sorted({1, *range(2, len(weights) + 1, 2), len(weights)})
    lines = []
    for epoch in chosen:
        net.load_state_dict(weights[epoch])
        oof, ad, controls = (brain_pad(scans[k])[:, mask] for k in ("oof", "AD", "HC60"))
        difference = np.full(mask.shape, np.nan)
        difference[mask] = np.nanmean(ad, axis=0) - np.nanmean(controls, axis=0)
        lines.append({
            "epoch": epoch,
            "validation_voxel_mae": history.loc[epoch, "validation_voxel_mae"],
            "validation_scan_mae": history.loc[epoch, "validation_scan_mae"],
            "oof_global_mae": np.abs(np.nanmean(oof, axis=1)).mean(),
            "oof_median_voxel_mae": np.median(np.nanmean(np.abs(oof), axis=1)),
            "ad_minus_controls_pad": np.nanmean(difference),
            "ad_minus_controls_r": spatial_correlation(difference, truth, mask),
        })  # fmt: skip
    print(pd.DataFrame(lines).round(2).to_string(index=False))
    kept = history["validation_mae"].idxmin()
    print(
        f"{scans['oof'].sum()} out-of-fold, {scans['AD'].sum()} AD, {scans['HC60'].sum()} "
        f"controls >= 60; early stopping ({params['selection']}) kept epoch {kept}"
    )


if __name__ == "__main__":
    main()
