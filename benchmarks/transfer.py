"""A trained bundle on a cohort it never saw, from a site it never saw (apply mode).

Simulates a transfer cohort with another seed at one new site (another voxel size and
orientation, lower SNR, stronger bias field, skull on), runs the workflow's apply mode on
it with ``recalibrate: controls``, and prints what transfers:

* the healthy controls' ensemble MAE (raw predictions) beside the simulation's floor and
  the training run's own healthy-test MAE;
* the 95 % interval's coverage and mean width on those controls;
* the controls' mean corrected brain-PAD with the bundle's correction and recalibrated on
  the new site's controls (cross-fitted), and the AD-vs-control Cohen's d after it.

Usage: python benchmarks/transfer.py --bundle results/bundle --workdir /tmp/transfer
       [--n-subjects 40] [--seed 7] [--cores 2]
Run it from the repository root (it reads config/config.yaml for everything else).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
NEW_SITE = {
    "name": "siteNew",
    "voxel_scale": [0.8, 0.9, 0.95],  # the demo scans at 4 mm: max_voxel_size_mm is 4
    "orientation": "LIA",
    "snr": 15,
    "intensity_scale": 1800,
    "bias_strength": 0.35,
    "skull": True,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--n-subjects", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    bundle = Path(args.bundle).resolve()
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config.update(bundle=str(bundle), bids_dir="simulated", seed=args.seed)
    config["recalibrate"] = "controls"
    config["simulation"].update(
        n_subjects=args.n_subjects, sites=[NEW_SITE], artefacts=[],
        n_test_retest=0, n_between_site=0,
    )  # fmt: skip
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    start = time.perf_counter()
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
        "--cores", str(args.cores), "--quiet", "rules",
    ]  # fmt: skip
    subprocess.run(command, check=True)
    minutes = (time.perf_counter() - start) / 60
    results = workdir / "results"
    accuracy = pd.read_csv(results / "stats/accuracy.tsv", sep="\t").set_index("model")
    trained = pd.read_csv(bundle.parent / "stats/accuracy.tsv", sep="\t").set_index("model")
    recalibration = pd.read_csv(results / "ensemble/recalibration.tsv", sep="\t")
    comparisons = pd.read_csv(results / "stats/group_comparison.tsv", sep="\t")
    ensemble, everyone = accuracy.loc["ensemble"], recalibration.set_index("site").loc["all"]
    ad = comparisons[(comparisons["first"] == "AD") & (comparisons["second"] == "HC")]
    print(f"transfer cohort: {args.n_subjects} participants, seed {args.seed}, one new site")
    print(f"apply mode: {minutes:.1f} min on {args.cores} cores")
    print("| figure | training run (its test set) | transfer cohort (its controls) |")
    print("|---|---|---|")
    print(f"| healthy n | {int(trained.loc['ensemble', 'n'])} | {int(ensemble['n'])} |")
    for column, label in (
        ("mae", "ensemble MAE (y)"),
        ("floor_mae", "simulation's floor MAE (y)"),
        ("interval_coverage", "95 % interval coverage"),
        ("interval_width", "mean interval width (y)"),
    ):
        print(f"| {label} | {trained.loc['ensemble', column]:.2f} | {ensemble[column]:.2f} |")
    print(
        f"| controls' mean corrected brain-PAD (y) | | bundle's correction "
        f"{everyone['mean_corrected']:+.2f} (SD {everyone['sd_corrected']:.2f}); recalibrated "
        f"{everyone['mean_recalibrated']:+.2f} (SD {everyone['sd_recalibrated']:.2f}) |"
    )
    if len(ad):
        print(f"| AD vs HC Cohen's d (recalibrated) | | {float(ad['d'].iloc[0]):.2f} |")


if __name__ == "__main__":
    main()
