"""A trained bundle on a cohort it never saw, from a site it never saw (apply mode).

Simulates a transfer cohort with another seed at one new site (another voxel size and
orientation, lower SNR, a stronger bias field, skull on, lower grey-white contrast and a
blur), preprocesses it once, and runs the workflow's apply mode on it under each way of
handling the new site:

* ``none``: the bundle's corrections as they are;
* ``recalibrated``: the global correction refitted on the site's controls (cross-fitted);
* ``harmonised n=N`` (with a bundle trained with ``harmonise.enabled``): the ROI volumes
  and brain-PADs harmonised from N of the site's controls (cross-fitted), for each
  ``--site-controls``; then the same with a location only (``site_scale: false``).

For each it prints the healthy controls' ensemble MAE (raw predictions) beside the
simulation's floor, the 95 % interval's coverage, the controls' mean and SD of corrected
brain-PAD, their offset from where the training run's controls of the same age and sex lie
(with a harmonised bundle), the AD-minus-controls difference beside its simulated truth,
and the AD-vs-controls Cohen's d; and the training run's own figures.

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

from brainpad.stats.tables import comparison_people

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


def reference_offset(controls: pd.DataFrame, bundle: Path) -> float:
    """The controls' mean corrected brain-PAD minus where the training run's controls of
    the same age and sex lie (the bundle's brain-PAD ComBat reference α + Xβ): what
    harmonisation aims to bring to 0. NaN for a bundle trained without harmonisation."""
    from brainpad.harmonise.combat import Combat, expected

    fits = json.loads((bundle / "ensemble/fits.json").read_text())
    if "harmonise" not in fits:
        return float("nan")
    model = Combat.from_dict(fits["harmonise"]["brain_pad"])
    column = model.features.index("brain_pad_corrected")
    reference = expected(model, controls)[:, column]
    return float((controls["brain_pad_corrected"].to_numpy() - reference).mean())


def figures(results: Path, bundle: Path, control_group: str = "HC") -> dict:
    """Healthy MAE, floor, coverage, controls' brain-PAD and AD d of one apply run (or of
    the training run), with the simulated truth of the group difference."""
    accuracy = pd.read_csv(results / "stats/accuracy.tsv", sep="\t").set_index("model")
    comparisons = pd.read_csv(results / "stats/group_comparison.tsv", sep="\t")
    table = pd.read_csv(results / "ensemble/brain_age.tsv", sep="\t")
    controls = table[(table["group"] == control_group) & table["age"].notna()]
    controls = controls.sort_values("scan_id").drop_duplicates("participant_id")
    ad = comparisons[(comparisons["first"] == "AD") & (comparisons["second"] == control_group)]
    truth = pd.read_csv(results / "simulated/derivatives/simulation/subjects.tsv", sep="\t")
    true_pad = truth.set_index("participant_id")["true_brain_pad"]
    people = comparison_people(table, control_group, 60.0)
    people = people.assign(true=true_pad.loc[people["participant_id"]].to_numpy())
    pad = people.groupby("group")[["brain_pad_corrected", "true"]].mean()
    ensemble = accuracy.loc["ensemble"]
    return {
        "offset": reference_offset(controls, bundle),
        "ad_diff": pad.loc["AD", "brain_pad_corrected"]
        - pad.loc[control_group, "brain_pad_corrected"],
        "ad_true_diff": pad.loc["AD", "true"] - pad.loc[control_group, "true"],
        "controls_true": true_pad.loc[controls["participant_id"]].mean(),
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
    for scale in (True, False):
        for n in args.site_controls if harmonised else []:
            label = f"harmonised n={n}" + ("" if scale else ", location only")
            settings = {"enabled": True, "min_site_controls": min(5, n), "site_controls": n}
            conditions[label] = {"harmonise": {**settings, "site_scale": scale}}
    rows = {}
    for name, change in conditions.items():
        run = {**config, "recalibrate": "none", "harmonise": {"enabled": False}, **change}
        minutes = apply_run(workdir, run, args.cores)
        rows[name] = figures(workdir / "results", bundle)
        print(f"{name}: {minutes:.1f} min", flush=True)
    trained = figures(bundle.parent, bundle)
    print(f"\ntransfer cohort: {args.n_subjects} participants, seed {args.seed}, one new site;"
          f" bundle {bundle}")  # fmt: skip
    print(f"controls' true brain-PAD (simulation): training run {trained['controls_true']:+.2f}"
          f" y, transfer cohort {rows['none']['controls_true']:+.2f} y")  # fmt: skip
    print("\n| new site | healthy n | ensemble MAE (y) | floor MAE (y) | 95 % coverage | "
          "controls' brain-PAD mean (SD) | mean abs | offset from the training reference | "
          "AD minus HC >= 60 (truth) | AD vs HC d |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in {"training run (its test set)": trained, **rows}.items():
        print(f"| {name} | {r['n']} | {r['mae']:.2f} | {r['floor']:.2f} | {r['coverage']:.2f} "
              f"| {r['pad_mean']:+.2f} ({r['pad_sd']:.2f}) | {r['pad_abs']:.2f} "
              f"| {r['offset']:+.2f} | {r['ad_diff']:.2f} ({r['ad_true_diff']:.2f}) "
              f"| {r['ad_d']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
