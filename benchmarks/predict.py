"""Seconds per new scan of ``brainpad predict``, split into preprocessing and inference.

Runs the real command path (:func:`brainpad.bundle.apply.predict_scans`) on the given
scans once per thread count and prints one markdown row per count: the mean and the
range over scans of the preprocessing (N4, registration, segmentation, FLAIR; ANTs runs
on one thread whatever the count, for exact reruns) and of the inference (inputs on the
bundle's crop, every base model of every fold, the ensemble). The first scan of each
pass is left out of the means (Python and torch warm-up), unless it is the only one.

Usage: python benchmarks/predict.py --bundle results/bundle INPUT... [--threads 1 2]
       [--device cpu] [--limit N]
INPUT: T1w NIfTI files, or one BIDS directory (as for ``brainpad predict``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from brainpad.bundle.apply import predict_scans
from brainpad.bundle.predict import Bundle
from brainpad.bundle.scans import scans_from_bids, scans_from_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, torch.get_num_threads()])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--limit", type=int, help="the first N scans only")
    args = parser.parse_args()
    bundle = Bundle.open(args.bundle)
    if Path(args.inputs[0]).is_dir():
        scans = scans_from_bids(bundle, args.inputs[0])
    else:
        scans = scans_from_files(args.inputs)
    scans = scans[: args.limit]
    voxel = bundle.settings["preprocess"]["voxel_size"]
    models = len(bundle.models)
    folds = max(len(f) for f in bundle.description["base_models"].values())
    print(
        f"bundle {args.bundle}: {voxel:g} mm, {models} base models x {folds} folds; "
        f"{len(scans)} scans on {args.device}"
    )
    print("| threads | preprocessing s/scan (range) | inference s/scan (range) |")
    print("|---|---|---|")
    for threads in args.threads:
        torch.set_num_threads(threads)
        with tempfile.TemporaryDirectory() as out:
            table = predict_scans(bundle, scans, out, args.device)
        timed = table.iloc[1:] if len(table) > 1 else table
        cells = [
            f"{timed[c].mean():.1f} ({timed[c].min():.1f}-{timed[c].max():.1f})"
            for c in ("preprocess_seconds", "inference_seconds")
        ]
        print(f"| {threads} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
