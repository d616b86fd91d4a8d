"""The QC metrics of clean scans and of the four planted failed acquisitions.

Simulates a small cohort with every artefact of ``simulation.artefacts`` (one control's
T1w each), preprocesses every T1w and prints each scan's QC figures and reasons, then the
range of each metric over the clean scans: how far the thresholds sit from both.

Usage: python benchmarks/qc_artefacts.py [--n-subjects 12] [--voxel-size 4] [--seed 5]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import pandas as pd

from brainpad.paths import scan_folder
from brainpad.preprocess import PreprocessOptions, preprocess_scan
from brainpad.simulate import Settings, simulate_cohort
from brainpad.simulate.artefacts import ARTEFACTS
from brainpad.templates import write_template_files

METRICS = ["similarity", "mirror_gain", "tiv_ml", "fov_edge", "snr", "ghost_ratio"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-subjects", type=int, default=12)
    parser.add_argument("--voxel-size", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    simulation = {
        "n_subjects": args.n_subjects,
        "voxel_size": args.voxel_size,
        "n_test_retest": 1,
        "n_between_site": 1,
        "modalities": ["T1w"],
        "artefacts": list(ARTEFACTS),
    }
    settings = Settings.from_config({"seed": args.seed, "simulation": simulation})
    options = PreprocessOptions(voxel_size=args.voxel_size, syn_iterations=(30, 10))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root, templates = Path(tmp) / "bids", Path(tmp) / "templates"
        simulate_cohort(settings, root, threads=2)
        write_template_files(templates, args.voxel_size)
        scans = pd.read_csv(
            root / "derivatives/simulation/scans.tsv", sep="\t", keep_default_na=False
        )
        for scan in scans.itertuples():
            scan_id = Path(scan.path).name.removesuffix("_T1w.nii.gz")
            out = scan_folder(Path(tmp) / "preproc", scan_id)
            qc = preprocess_scan(root / scan.path, scan_id, templates, out, options)
            rows.append(
                {
                    "scan": scan_id,
                    "site": scan.site,
                    "artefact": scan.artefact or "-",
                    **{m: qc[m] for m in METRICS},
                    "passed": qc["passed"],
                    "reasons": "; ".join(qc["reasons"]) or "-",
                }
            )
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_colwidth", 120):
        print(table.round(3).to_string(index=False))
        clean = table[table["artefact"] == "-"]
        print("\nclean scans, min-max:")
        print(clean[METRICS].agg(["min", "max"]).round(3).to_string())


if __name__ == "__main__":
    main()
