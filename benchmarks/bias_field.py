"""N4's cost and result against the grid it fits the bias field on.

Simulates one subject per demo site (4 mm, the sites' bias fields 0.15-0.3) and adds
pycortex's real 1 mm head (on its 2 mm working copy, as `brainpad preprocess` reads it
for real data), then runs :func:`brainpad.preprocess.native.bias_correct` with the field
fitted on grids of several voxel sizes (ITK on one thread): seconds, and the corrected
image's correlation inside the head with the one of the finest grid.

Usage: python benchmarks/bias_field.py [--grids 8 12 16]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")

import numpy as np
import pandas as pd

from brainpad.preprocess.native import bias_correct, load_canonical, working_copy
from brainpad.simulate import Settings, simulate_cohort

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from real_head import fetch_real_head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", type=float, nargs="+", default=[8.0, 12.0, 16.0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (the fastest kept)")
    parser.add_argument("--cache", type=Path, default=Path(".pytest_cache/d/real_head"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(n_subjects=6, voxel_size=4.0, n_test_retest=0, n_between_site=0,
                            modalities=("T1w",), seed=3)  # fmt: skip
        simulate_cohort(settings, Path(tmp), threads=1)
        scans = pd.read_csv(Path(tmp) / "derivatives/simulation/scans.tsv", sep="\t")
        cases = {
            f"simulated {site}": load_canonical(Path(tmp) / rows_["path"].iloc[0])
            for site, rows_ in scans.groupby("site")
        }
        cases["pycortex S1 (2 mm copy)"] = working_copy(
            load_canonical(fetch_real_head(args.cache)), 2.0
        )
        for case, image in cases.items():
            data = image.numpy()
            head = data > np.percentile(data[data > 0], 20)
            reference = None
            for grid in args.grids:
                seconds = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    corrected = bias_correct(image, grid).numpy()[head]
                    seconds.append(time.perf_counter() - start)
                reference = corrected if reference is None else reference
                r = np.corrcoef(reference, corrected)[0, 1]
                rows.append({"case": case, "grid_mm": grid, "seconds": min(seconds), "r": r})
    table = pd.DataFrame(rows)
    print(f"r: the corrected image in the head against the {args.grids[0]:g} mm grid's")
    print(table.to_string(index=False, float_format="%.4f"))


if __name__ == "__main__":
    main()
