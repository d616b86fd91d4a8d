"""A real head through preprocessing: seconds per stage, QC metrics and volumes.

pycortex's real 1 mm T1w head (with neck and skull, 8-bit; downloaded once from PyPI,
``tests/real_head.py``) and nilearn's 1 mm ICBM152 template (brain only), each through
`brainpad preprocess` at every working voxel size given, on one ITK thread. The montage of
the first case is copied to ``--montage`` (docs/qc-real-head.png).

Usage: python benchmarks/real_head.py [--voxel-sizes 4 2] [--montage docs/qc-real-head.png]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")

from brainpad.preprocess import PreprocessOptions, preprocess_scan
from brainpad.templates import nilearn_file, write_template_files

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from real_head import fetch_real_head

STAGES = ("N4", "rigid + affine", "SyN", "segmentation", "maps written")
"""The log lines' clocks: N4, segmentation and maps from the scan's start, the two
registration stages from the registration's start."""


class Stages(logging.Handler):
    """Collects the seconds each preprocessing stage's log line reports."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        for stage in STAGES:
            if found := re.search(rf"{re.escape(stage)}(?: done)?:? \(?([\d.]+) s", text):
                self.seconds[stage] = float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voxel-sizes", type=float, nargs="+", default=[4.0, 2.0])
    parser.add_argument("--montage", type=Path, help="copy the real head's first montage here")
    parser.add_argument("--cache", type=Path, default=Path(".pytest_cache/d/real_head"))
    args = parser.parse_args()
    handler = Stages()
    for name in ("brainpad.preprocess", "brainpad.preprocess.registration"):
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).setLevel(logging.INFO)
    cases = {"pycortex S1": fetch_real_head(args.cache), "nilearn ICBM152": nilearn_file("t1")}
    print("case | voxel | N4 | rigid + affines | SyN | segmentation | maps and QC | total s "
          "| similarity | mirror gain | TIV ml | affine det | SNR | passed")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for voxel in args.voxel_sizes:
            templates = Path(tmp) / f"templates-{voxel:g}"
            write_template_files(templates, voxel)
            options = PreprocessOptions(voxel_size=voxel, modulation="nonlinear")
            for case, scan in cases.items():
                handler.seconds.clear()
                out = Path(tmp) / f"{case.split()[0]}-{voxel:g}"
                start = time.perf_counter()
                qc = preprocess_scan(scan, "sub-real", templates, out, options)
                total = time.perf_counter() - start
                t = {s: handler.seconds.get(s, float("nan")) for s in STAGES}
                spent = [t["N4"], t["rigid + affine"], t["SyN"] - t["rigid + affine"],
                         t["segmentation"] - t["N4"] - t["SyN"],
                         t["maps written"] - t["segmentation"]]  # fmt: skip
                stages = " | ".join(f"{seconds:.1f}" for seconds in spent)
                print(
                    f"{case} | {voxel:g} mm | {stages} | {total:.1f} | {qc['similarity']:.3f} | "
                    f"{qc['mirror_gain']:+.3f} | {qc['tiv_ml']:.0f} | "
                    f"{qc['affine_determinant']:.3f} | {qc['snr']:.0f} | {qc['passed']}"
                )
                if args.montage and case.startswith("pycortex") and voxel == args.voxel_sizes[0]:
                    shutil.copyfile(out / "sub-real_desc-qc_T1w.png", args.montage)


if __name__ == "__main__":
    main()
