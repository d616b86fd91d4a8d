"""How much age each registration of the inputs leaves for a model to read.

On a finished run (``make demo``), one linear model (principal components + ridge,
k-fold cross-validation over the healthy controls that passed QC) predicts age from each
image the workflow writes per scan: the T1w through the affine only (what the networks
read), the T1w through affine + SyN, and the modulated GM + WM maps. Prints, per image,
MAE with its bootstrap 95 % interval (scipy), Pearson r, and the simulation's floor on the
same people (mean |biological - chronological age|).

Usage: python benchmarks/input_registration.py [--results results] [--components 20]
       [--folds 5] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import stats
from sklearn.decomposition import PCA
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from brainpad.cohort.arrays import normalise_top
from brainpad.paths import preproc_paths

IMAGES = {
    "T1w, affine (the networks' input)": ("t1",),
    "T1w, affine + SyN": ("t1_syn",),
    "GM + WM, modulated (affine + SyN)": ("gm", "wm"),
}


def features(results: Path, scan_ids: list[str], keys: tuple[str, ...], brain) -> np.ndarray:
    """One row per scan: its images' brain voxels (intensity images top-1 %-normalised)."""
    rows = []
    for scan_id in scan_ids:
        paths = preproc_paths(results / "preproc", scan_id)
        parts = []
        for key in keys:
            image = np.asarray(nib.load(paths[key]).dataobj, dtype=np.float32)
            parts.append((normalise_top(image) if key.startswith("t1") else image)[brain])
        rows.append(np.concatenate(parts))
    return np.stack(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results", help="a finished run's results folder")
    parser.add_argument("--components", type=int, default=20)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = Path(args.results)
    folds = pd.read_csv(results / "folds.tsv", sep="\t")
    controls = folds[folds["role"].isin(["train", "calibration", "test"])]
    controls = controls.sort_values("scan_id").drop_duplicates("participant_id")
    truth = results / "simulated/derivatives/simulation/subjects.tsv"
    offset = pd.read_csv(truth, sep="\t").set_index("participant_id")["bio_age_offset"]
    floor = float(offset.loc[controls["participant_id"]].abs().mean())
    mask_path = next((results / "templates").glob("*desc-brain_mask.nii.gz"))
    brain = np.asarray(nib.load(mask_path).dataobj) > 0
    age = controls["age"].to_numpy(float)
    model = make_pipeline(
        StandardScaler(),
        PCA(args.components, random_state=args.seed),
        RidgeCV(np.logspace(-2, 4, 13)),
    )
    split = KFold(args.folds, shuffle=True, random_state=args.seed)
    print(f"{len(controls)} healthy controls, {args.folds}-fold CV, floor {floor:.2f} y")
    print(f"{'image':<36} {'MAE (95 % CI)':>20} {'r':>6} {'x floor':>8}")
    for name, keys in IMAGES.items():
        x = features(results, controls["scan_id"].tolist(), keys, brain)
        predicted = cross_val_predict(model, x, age, cv=split)
        errors = np.abs(predicted - age)
        interval = stats.bootstrap(
            (errors,), np.mean, n_resamples=5000, random_state=args.seed
        ).confidence_interval
        r = stats.pearsonr(predicted, age).statistic
        mae = errors.mean()
        ci = f"{mae:.2f} ({interval.low:.2f}-{interval.high:.2f})"
        print(f"{name:<36} {ci:>20} {r:6.3f} {mae / floor:8.2f}")


if __name__ == "__main__":
    main()
