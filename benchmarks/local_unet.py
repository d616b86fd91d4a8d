"""Learning curve of the local brain-age U-Net on the demo's cohort arrays.

Trains ``local_unet`` blocks on the training controls of fold 0 (no early stopping) and
prints the training voxel MAE averaged over every ``--report`` iterations, with the time.
Needs a finished demo run (``results/arrays``, ``results/folds.tsv``, ``results/templates``).

Usage: python benchmarks/local_unet.py [--iterations 2400] [--width 8] [--lr 0.002]
       [--standardise]   (voxelwise z-scored inputs, as the workflow trains by default)
       [--mix 1.0 [--mix-edge-mm 3]]   (age mixing, models.local_unet.mix_fraction)
       [--planted 8]   (at the end: AD's true atrophy planted into 8 healthy test scans,
                        r and gain of the maps' change as in results/maps/stats/)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pandas as pd
import torch

from brainpad.cohort.arrays import crop_slices
from brainpad.local.planted import planted_response, planted_table, planted_truth
from brainpad.models.local_unet import LocalUNet, block_geometry, to_age
from brainpad.training.blocks import training_batch
from brainpad.training.data import Standardised
from brainpad.training.inference import predict_map


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results", help="a finished demo run")
    parser.add_argument("--iterations", type=int, default=2400)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--levels", type=int, default=1)
    parser.add_argument("--bottleneck", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--report", type=int, default=200, help="iterations per line")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--standardise", action="store_true", help="voxelwise z-scores")
    parser.add_argument("--mix", type=float, default=0.0, help="age mixing: share of blocks")
    parser.add_argument("--mix-edge-mm", type=float, default=3.0, help="mixing ball's edge")
    parser.add_argument(
        "--evaluate", type=int, default=0, help="map this many fold-0 scans at each report"
    )
    parser.add_argument(
        "--planted", type=int, default=0, help="healthy test scans for the planted check"
    )
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    results = Path(args.results)
    raw = np.load(results / "arrays/volumes.npy", mmap_mode="r")
    index = pd.read_csv(results / "arrays/index.tsv", sep="\t")
    folds = pd.read_csv(results / "folds.tsv", sep="\t")
    mask_path = next((results / "templates").glob("*desc-brain_mask.nii.gz"))
    mask_img = nib.load(mask_path)
    crop = crop_slices(index)
    mask = np.asarray(mask_img.dataobj)[crop] > 0
    voxel = float(min(mask_img.header.get_zooms()[:3]))
    train = folds[(folds["role"] == "train") & (folds["fold"] != 0)]
    held = folds[(folds["role"] == "train") & (folds["fold"] == 0)].head(args.evaluate)
    held_rows = held["scan_id"].map(index.set_index("scan_id")["row"]).to_numpy()
    rows = train["scan_id"].map(index.set_index("scan_id")["row"]).to_numpy()
    ages = train["age"].to_numpy(dtype=float)
    mean, sd = ages.mean(), ages.std()
    volumes = Standardised.fit(raw, rows) if args.standardise else raw
    size_in, size_out = block_geometry(args.levels, args.bottleneck)
    torch.manual_seed(0)
    net = LocalUNet(volumes.shape[1], args.width, args.levels)

    def net_map(volume: np.ndarray, brain: np.ndarray) -> np.ndarray:
        """Brain-age map of one scan's raw maps, standardised as in training."""
        volume = np.asarray(volume, dtype=np.float32)
        if isinstance(volumes, Standardised):
            volume = (volume - volumes.mean) / volumes.scale
        return predict_map(
            net, to_age, volume, brain, (size_in, size_out), 2, 16, torch.device("cpu"), (mean, sd)
        )

    optimiser = torch.optim.Adam(net.parameters(), args.lr)
    print(
        f"blocks {size_in}^3 -> {size_out}^3, {len(rows)} training scans, "
        f"predicting the mean scores {np.abs(ages - np.median(ages)).mean():.2f} y"
    )
    start, errors = time.perf_counter(), []
    for it in range(args.iterations):
        x, m, y = training_batch(
            volumes, rows, (ages - mean) / sd, args.batch_size, mask, size_in, size_out,
            np.random.default_rng([0, it]), (args.mix, args.mix_edge_mm / voxel),
        )  # fmt: skip
        out, _ = net(torch.from_numpy(x))
        weight = torch.from_numpy(m)
        loss = ((out[:, 0] - torch.from_numpy(y)).abs() * weight).sum() / weight.sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        errors.append(float(loss.detach()) * sd)
        if (it + 1) % args.report == 0:
            line = f"iteration {it + 1}: training voxel MAE {np.mean(errors[-args.report :]):.2f} y"
            if len(held):
                global_age = [np.nanmean(net_map(raw[r], mask)[mask]) for r in held_rows]
                error = np.abs(np.array(global_age) - held["age"].to_numpy()).mean()
                line += f", global MAE of {len(held)} out-of-fold scans {error:.2f} y"
                net.train()
            print(f"{line} ({time.perf_counter() - start:.0f} s)", flush=True)
    if args.planted:
        test = folds[(folds["role"] == "test") & (folds["group"] == "HC")].head(args.planted)
        test_rows = test["scan_id"].map(index.set_index("scan_id")["row"]).to_numpy()
        planted(results / "simulated/derivatives/simulation", raw, test_rows, mask_img, crop,
                mask, SimpleNamespace(map=net_map))  # fmt: skip


def planted(truth_dir, raw, rows, mask_img, crop, mask, model) -> None:
    """Print the planted-atrophy response of the trained network (AD's true atrophy)."""
    factors, years, true_map = ({"AD": d["AD"]} for d in planted_truth(truth_dir, mask_img, crop))
    responses = planted_response([model], raw, rows, factors, mask)
    voxel = float(min(mask_img.header.get_zooms()[:3]))
    table = planted_table(responses, years, true_map, mask, voxel, len(rows))
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
