"""Compare two finished runs' ``results/`` trees file by file: what is identical, and the
largest difference of what is not.

For refactors that must not change outputs: run the same config before and after, then
``python benchmarks/compare_results.py OLD/results NEW/results``. Logs and benchmark
timings are skipped. Tables are compared column by column (text exactly, numbers by
their largest absolute difference), NIfTI and ``.npy`` arrays voxel by voxel (largest
difference, voxels that differ, NaN pattern), ``model.pt`` files by their weights.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

SKIPPED = ("logs/", "benchmarks/", ".snakemake")


def _files(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not any(s in str(p.relative_to(root)) for s in SKIPPED)
    }


def _arrays(a: np.ndarray, b: np.ndarray) -> str:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape:
        return f"shapes differ: {a.shape} vs {b.shape}"
    both = np.isfinite(a) & np.isfinite(b)
    d = np.abs(a - b)[both]
    nan = int((np.isnan(a) != np.isnan(b)).sum())
    worst = float(d.max()) if d.size else 0.0
    return f"max |diff| {worst:.3g} in {int((d > 0).sum())} of {a.size} values; NaN differ {nan}"


def _tables(a: Path, b: Path) -> str:
    x, y = pd.read_csv(a, sep="\t"), pd.read_csv(b, sep="\t")
    if list(x.columns) != list(y.columns) or len(x) != len(y):
        return "columns or rows differ"
    numbers = x.select_dtypes("number").columns.intersection(y.select_dtypes("number").columns)
    text = [c for c in x.columns if c not in numbers]
    if not x[text].astype(str).equals(y[text].astype(str)):
        return "text cells differ"
    return _arrays(x[numbers].to_numpy(float), y[numbers].to_numpy(float))


def _models(a: Path, b: Path) -> str:
    import torch

    x, y = (torch.load(p, map_location="cpu", weights_only=True) for p in (a, b))
    if "state_dict" not in x or "state_dict" not in y:
        return "not a network"
    worst = max(
        float((x["state_dict"][k].double() - y["state_dict"][k].double()).abs().max())
        for k in x["state_dict"]
    )
    return f"weights max |diff| {worst:.3g}"


def describe(a: Path, b: Path) -> str:
    """How file ``b`` differs from ``a`` (which differ in bytes)."""
    name = a.name
    if name.endswith(".tsv"):
        return _tables(a, b)
    if name.endswith((".nii", ".nii.gz")):
        return _arrays(nib.load(a).get_fdata(), nib.load(b).get_fdata())
    if name.endswith(".npy"):
        return _arrays(np.load(a), np.load(b))
    if name.endswith(".pt"):
        return _models(a, b)
    return "bytes differ"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path, help="results/ of the first run")
    parser.add_argument("new", type=Path, help="results/ of the second run")
    args = parser.parse_args()
    old, new = _files(args.old), _files(args.new)
    for label, names in (("only in old", old - new), ("only in new", new - old)):
        if names:
            print(f"{label}: {sorted(names)}")
    identical = 0
    for name in sorted(old & new):
        a, b = args.old / name, args.new / name
        if a.read_bytes() == b.read_bytes():
            identical += 1
        else:
            print(f"{name}: {describe(a, b)}")
    print(f"{identical} of {len(old & new)} files byte-identical")


if __name__ == "__main__":
    main()
