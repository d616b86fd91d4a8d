"""Training and inference speed of every whole-scan network: scans per second, memory,
and how much of a training step is spent loading data.

Each architecture is built with the schema's settings (the studies' widths), or with
``--demo`` the shipped config's slim ones, on random two-channel maps of the MNI brain box
at ``--voxel-mm`` stored as a memory-mapped ``.npy`` (as the cohort arrays are), and
trained through the workflow's own batch source (:class:`brainpad.training.data.WholeScans`:
rows read from the memory map per batch, pinned and copied on CUDA) for ``--steps``
steps, then run in inference. On CUDA, training and inference use mixed precision, as the
workflow does. Prints one markdown row per network:

* ``train scans/s``, ``infer scans/s``: after ``--warmup`` steps (start-up, kernel choice);
* ``load %``: the share of a training step spent reading and moving the batch (the rest
  is the network's forward, backward and update; on a GPU it must stay small, <= 10 %);
* ``peak MB``: CUDA's peak allocated memory, or the process's peak resident memory on a CPU
  (the whole process, not the network alone).

Usage: python benchmarks/train_speed.py [--device cuda] [--voxel-mm 2] [--demo]
       [--models vgg3d sfcn cnn3d cnn2d] [--steps 12] [--batch-size 4] [--threads 2]
The demo's own size: --demo --voxel-mm 4.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from snakemake.utils import validate

from brainpad.models import get_spec, load
from brainpad.training.data import WholeScans
from brainpad.training.inference import load_batch

REPO = Path(__file__).resolve().parents[1]
CONFIG, SCHEMA = REPO / "config/config.yaml", REPO / "workflow/schemas/config.schema.yaml"
BRAIN_BOX_MM = (152.0, 184.0, 152.0)  # the cohort crop of the MNI brain, about


def settings(demo: bool) -> dict:
    """Every model's validated settings: the shipped config's, or the schema's defaults."""
    config = yaml.safe_load(CONFIG.read_text()) if demo else {}
    if not demo:
        config = {"models": {"names": ["ridge_roi"]}}
    validate(config, str(SCHEMA))
    return config["models"]


def cohort(path: Path, scans: int, voxel_mm: float, slices: bool) -> np.ndarray:
    """Random (scans, 2, *shape) float16 maps written to ``path`` and memory-mapped."""
    shape = tuple(round(edge / voxel_mm) for edge in BRAIN_BOX_MM)
    shape = shape[:2] if slices else shape
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(scans, 2, *shape))
    rng = np.random.default_rng(0)
    for row in range(scans):
        array[row] = rng.standard_normal((2, *shape)).astype(np.float16)
    array.flush()
    return np.load(path, mmap_mode="r")


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(name: str, params: dict, array: np.ndarray, device: torch.device, args) -> dict:
    """Seconds per training step (and its loading share) and per inference batch."""
    model = load(name)
    params = {**params, "batch_size": args.batch_size}
    net = model.build(array.shape[1], array.shape[2:], params).to(device)
    rows = np.arange(len(array))
    ages = np.random.default_rng(1).uniform(20, 85, len(array))
    source = WholeScans(array, (rows, ages), (rows, ages), args.batch_size, 0, device, 50.0, 15.0)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-4)
    mixed = device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=mixed)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    load_time = step_time = 0.0
    timed = 0
    epoch = 0
    net.train()
    while timed < args.steps:
        batches = source.batches(epoch)
        while timed < args.steps:
            start = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                break
            sync()
            loaded = time.perf_counter()
            with torch.autocast(device.type, enabled=mixed):
                loss, _ = model.loss(net(batch.x), batch, 0, params)
            optimiser.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            sync()
            done = time.perf_counter()
            load_time += loaded - start
            step_time += done - start
            timed += 1
        epoch += 1
    net.eval()
    infer = 0.0
    with torch.no_grad():
        for k in range(args.steps):
            pick = rows[(np.arange(args.batch_size) + k * args.batch_size) % len(rows)]
            start = time.perf_counter()
            with torch.autocast(device.type, enabled=mixed):
                model.to_age(net(load_batch(array, pick, device)))
            sync()
            infer += time.perf_counter() - start
    scans = args.steps * args.batch_size
    return {
        "train": scans / step_time,
        "infer": scans / infer,
        "load": 100 * load_time / step_time,
        "peak": peak_mb(device),
        "parameters": sum(p.numel() for p in net.parameters()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--voxel-mm", type=float, default=2.0)
    parser.add_argument("--demo", action="store_true", help="the shipped config's settings")
    parser.add_argument("--models", nargs="+", default=["vgg3d", "sfcn", "cnn3d", "cnn2d"])
    parser.add_argument("--steps", type=int, default=12, help="timed steps after warm-up")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--scans", type=int, default=32, help="synthetic scans on disk")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    sections = settings(args.demo)
    label = "demo settings" if args.demo else "the studies' widths"
    where = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else f"{args.threads} threads"
    )
    print(
        f"{device} ({where}), {args.voxel_mm:g} mm, {label}, batch {args.batch_size}, "
        f"mixed precision {device.type == 'cuda'}"
    )
    print("| network | input | parameters | train scans/s | infer scans/s | load % | peak MB |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            slices = get_spec(name).reads == "slices"
            array = cohort(Path(tmp) / f"{name}.npy", args.scans, args.voxel_mm, slices)
            warm = argparse.Namespace(**{**vars(args), "steps": args.warmup})
            measure(name, sections[name], array, device, warm)
            found = measure(name, sections[name], array, device, args)
            shape = "x".join(str(s) for s in array.shape[1:])
            print(
                f"| {name} | {shape} | {found['parameters'] / 1e6:.2f} M | {found['train']:.1f} "
                f"| {found['infer']:.1f} | {found['load']:.0f} | {found['peak']:.0f} |"
            )


if __name__ == "__main__":
    main()
