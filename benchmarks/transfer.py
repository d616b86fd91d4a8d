"""A trained bundle on a cohort it never saw, from a site it never saw (apply mode).

Simulates a transfer cohort with another seed at one new site (another voxel size and
orientation, lower SNR, a stronger bias field, skull on, lower grey-white contrast and a
blur), preprocesses it once, and runs the workflow's apply mode on it under each way of
handling the new site:

* ``none``: the bundle's corrections as they are;
* ``recalibrated``: the global correction refitted on the site's controls (cross-fitted);
* ``harmonised n=N`` (with a bundle trained with ``harmonise.enabled``): the ROI volumes
  and brain-PADs harmonised from N of the site's controls (cross-fitted), for each
  ``--site-controls``.

For each it prints the healthy controls' ensemble MAE (raw predictions) beside the
simulation's floor, the 95 % interval's coverage, the controls' mean and SD of corrected
brain-PAD and the AD-vs-controls Cohen's d; and the training run's own figures.

Usage: python benchmarks/transfer.py --bundle results/bundle --workdir /tmp/transfer
       [--n-subjects 50] [--seed 7] [--cores 2] [--site-controls 5 10 20]
Run it from the repository root (it reads config/config.yaml for everything else).
"""

from __future__ import annotations

import argparse
import json
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
    "gm_contrast": 0.85,
    "blur_fwhm_mm": 3.0,
}
TARGETS = ["results/ensemble/brain_age.tsv", "results/stats/accuracy.tsv",
           "results/stats/group_comparison.tsv"]  # fmt: skip


def apply_run(workdir: Path, config: dict, cores: int) -> float:
    """Apply mode in ``workdir`` with ``config``; minutes it took."""
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    start = time.perf_counter()
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
        "--cores", str(cores), "--quiet", "rules", "--", *TARGETS,
    ]  # fmt: skip
    subprocess.run(command, check=True)
    return (time.perf_counter() - start) / 60


def figures(results: Path, control_group: str = "HC") -> dict:
    """Healthy MAE, floor, coverage, controls' brain-PAD and AD d of one apply run."""
    accuracy = pd.read_csv(results / "stats/accuracy.tsv", sep="\t").set_index("model")
    comparisons = pd.read_csv(results / "stats/group_comparison.tsv", sep="\t")
    table = pd.read_csv(results / "ensemble/brain_age.tsv", sep="\t")
    controls = table[(table["group"] == control_group) & table["age"].notna()]
    controls = controls.sort_values("scan_id").drop_duplicates("participant_id")
    ad = comparisons[(comparisons["first"] == "AD") & (comparisons["second"] == control_group)]
    ensemble = accuracy.loc["ensemble"]
    return {
        "n": int(ensemble["n"]),
        "mae": ensemble["mae"],
        "floor": ensemble.get("floor_mae", float("nan")),
        "coverage": ensemble["interval_coverage"],
        "pad_mean": controls["brain_pad_corrected"].mean(),
        "pad_sd": controls["brain_pad_corrected"].std(),
        "pad_abs": controls["brain_pad_corrected"].abs().mean(),
        "ad_d": float(ad["d"].iloc[0]) if len(ad) else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--n-subjects", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--site-controls", type=int, nargs="*", default=[5, 10, 20])
    args = parser.parse_args()
    bundle = Path(args.bundle).resolve()
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config.update(bundle=str(bundle), bids_dir="simulated", seed=args.seed)
    config["simulation"].update(
        n_subjects=args.n_subjects, sites=[NEW_SITE], artefacts=[],
        n_test_retest=0, n_between_site=0,
    )  # fmt: skip
    harmonised = "harmonise" in json.loads((bundle / "ensemble/fits.json").read_text())
    conditions = {"none": {}, "recalibrated": {"recalibrate": "controls"}}
    for n in args.site_controls if harmonised else []:
        conditions[f"harmonised n={n}"] = {
            "harmonise": {"enabled": True, "min_site_controls": min(5, n), "site_controls": n}
        }
    rows = {}
    for name, change in conditions.items():
        run = {**config, "recalibrate": "none", "harmonise": {"enabled": False}, **change}
        minutes = apply_run(workdir, run, args.cores)
        rows[name] = figures(workdir / "results")
        print(f"{name}: {minutes:.1f} min", flush=True)
    trained = figures(bundle.parent)
    print(f"\ntransfer cohort: {args.n_subjects} participants, seed {args.seed}, one new site;"
          f" bundle {bundle}")  # fmt: skip
    print("\n| new site | healthy n | ensemble MAE (y) | floor MAE (y) | 95 % coverage | "
          "controls' brain-PAD mean (SD) | mean abs brain-PAD | AD vs HC d |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name, r in {"training run (its test set)": trained, **rows}.items():
        print(f"| {name} | {r['n']} | {r['mae']:.2f} | {r['floor']:.2f} | {r['coverage']:.2f} "
              f"| {r['pad_mean']:+.2f} ({r['pad_sd']:.2f}) | {r['pad_abs']:.2f} "
              f"| {r['ad_d']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
