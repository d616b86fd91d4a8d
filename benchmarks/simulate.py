"""Time the simulation of a cohort and report its size and floor MAE.

Usage: python benchmarks/simulate.py [--n-subjects 140] [--voxel-size 3] [--threads 2]
Defaults are the demo cohort of config/config.yaml.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from brainpad.simulate import Settings, simulate_cohort

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-subjects", type=int, default=config["simulation"]["n_subjects"])
    parser.add_argument("--voxel-size", type=float, default=config["simulation"]["voxel_size"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    config["simulation"].update(n_subjects=args.n_subjects, voxel_size=args.voxel_size)
    settings = Settings.from_config(config)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        info = simulate_cohort(settings, Path(tmp) / "bids", threads=args.threads)
        seconds = time.perf_counter() - start
        files = [p for p in (Path(tmp) / "bids").rglob("*") if p.is_file()]
        size_mb = sum(p.stat().st_size for p in files) / 1e6
    print(f"subjects            {info['n_subjects']}")
    print(f"scans               {info['n_scans']}")
    print(f"working voxel (mm)  {args.voxel_size:g}")
    print(f"threads             {args.threads}")
    print(f"seconds             {seconds:.1f}")
    print(f"seconds per subject {seconds * args.threads / info['n_subjects']:.2f} (CPU)")
    print(f"size on disk (MB)   {size_mb:.1f}")
    print(f"floor MAE expected  {info['floor_mae_expected']:.2f} y")
    print(f"floor MAE sample    {info['floor_mae_sample']:.2f} y")
    print(f"median |volume err| {info['deformation_median_relative_volume_error']:.4f}")


if __name__ == "__main__":
    main()
