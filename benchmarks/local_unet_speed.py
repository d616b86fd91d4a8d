"""Seconds per training epoch of the local brain-age U-Net, on a CPU or a GPU.

Runs the workflow's own training loop (:func:`brainpad.training.loop.run_epochs` with
:class:`brainpad.training.blocks.BlockBatches`: blocks read from the cohort array, age
mixing, the auxiliary losses, Adam, the validation blocks) on random two-channel maps
filling an ellipsoidal brain in the MNI box at ``--voxel-mm``, with the shipped config's
``models.local_unet`` settings (the schema's defaults for the rest) unless overridden.
Timing does not depend on what the maps hold, so no demo run is needed and it runs on a
bare GPU machine. Prints each epoch's seconds, then iterations and blocks per second
over the epochs after the first (which carries start-up and, on a GPU, kernel selection)
and what study 1's 500,000 iterations would take at that pace. Study 1's network at 1.5
mm did not finish one epoch of 2 iterations in 400 s on 2 CPU threads.

Usage: python benchmarks/local_unet_speed.py [--device cuda] [--voxel-mm 1.5]
       [--width 64] [--batch-size 32]   (study 1's network: 52^3 -> 12^3 blocks at 1.5 mm)
       [--epochs 3] [--iterations-per-epoch 100] [--threads 2]
The defaults time the demo's network (3 mm, width 8, batch 16) on the CPU.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml

from brainpad.models import local_unet
from brainpad.training.blocks import BlockBatches
from brainpad.training.loop import run_epochs

REPO = Path(__file__).resolve().parents[1]
CONFIG, SCHEMA = REPO / "config/config.yaml", REPO / "workflow/schemas/config.schema.yaml"
MNI_BOX_MM = (156.0, 189.0, 156.0)  # the template's brain box, about
PAPER_ITERATIONS = 500_000


def synthetic_cohort(
    scans: int, voxel_mm: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random (scans, 2, x, y, z) float32 maps, an ellipsoidal brain mask and ages."""
    rng = np.random.default_rng(seed)
    shape = tuple(round(edge / voxel_mm) for edge in MNI_BOX_MM)
    grid = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    mask = sum(axis**2 for axis in grid) < 0.8
    volumes = rng.standard_normal((scans, 2, *shape), dtype=np.float32)
    return volumes, mask, rng.uniform(20, 85, scans)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--voxel-mm", type=float, default=3.0)
    parser.add_argument("--width", type=int, help="config: models.local_unet.width")
    parser.add_argument("--batch-size", type=int, help="config: models.local_unet.batch_size")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--iterations-per-epoch", type=int, default=100)
    parser.add_argument("--scans", type=int, default=24, help="synthetic training scans")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    config = yaml.safe_load(CONFIG.read_text())
    schema = yaml.safe_load(SCHEMA.read_text())["properties"]["models"]["properties"]
    defaults = {k: v["default"] for k, v in schema["local_unet"]["properties"].items()}
    params = defaults | config["models"]["local_unet"]
    if args.voxel_mm != config["simulation"]["voxel_size"]:
        # the demo's geometry is set for its voxel; at another, scale study 1's
        params["levels"] = params["bottleneck"] = None
    params |= {
        "width": args.width or params["width"],
        "batch_size": args.batch_size or params["batch_size"],
        "max_epochs": args.epochs,
        "iterations_per_epoch": args.iterations_per_epoch,
        "patience": args.epochs,
    }
    resolved = local_unet.resolve(params, args.voxel_mm)
    levels, (size_in, size_out) = resolved["levels"], resolved["block"]
    volumes, mask, ages = synthetic_cohort(args.scans, args.voxel_mm)
    train = (np.arange(args.scans - 4), ages[:-4])
    validation = (np.arange(args.scans - 4, args.scans), ages[-4:])
    device = torch.device(args.device)
    torch.manual_seed(0)
    net = local_unet.build(2, [size_in] * 3, {**params, **resolved}).to(device)
    mix_edge = params.get("mix_edge_mm", 3.0) / args.voxel_mm
    mean, sd = float(train[1].mean()), float(train[1].std())
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"{name}: {args.voxel_mm:g} mm, blocks {size_in}^3 -> {size_out}^3, {levels} levels, "
        f"width {params['width']}, batch {params['batch_size']}, "
        f"{sum(p.numel() for p in net.parameters()):,} weights, "
        f"{params['iterations_per_epoch']} iterations per epoch"
        + ("" if device.type == "cuda" else f", {args.threads} threads"),
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        data = BlockBatches(
            volumes, train, validation, mask, size_in, size_out, params, mix_edge, 0, device,
            mean, sd,
        )  # fmt: skip
        _, history = run_epochs(
            net, local_unet, data, params, device, Path(tmp) / "checkpoint.pt", "speed"
        )
    for entry in history:
        print(f"epoch {entry['epoch']}: {entry['seconds']:.1f} s")
    steady = [entry["seconds"] for entry in history[1:]] or [history[0]["seconds"]]
    per_iteration = float(np.mean(steady)) / params["iterations_per_epoch"]
    print(
        f"steady: {np.mean(steady):.1f} s per epoch, {1 / per_iteration:.1f} iterations/s, "
        f"{params['batch_size'] / per_iteration:.0f} blocks/s; study 1's {PAPER_ITERATIONS:,} "
        f"iterations would take {PAPER_ITERATIONS * per_iteration / 3600:.1f} h"
    )


if __name__ == "__main__":
    main()
