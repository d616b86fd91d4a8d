"""How faithfully the preprocessed maps keep the simulated regional volumes.

For each region of the simulation's region map, the GM + WM tissue (mm³) the cohort
arrays hold there in each participant's first scan (what the models read) against the
participant's true volume of that region: Pearson r across participants, against the
absolute volume and against the volume relative to the participant's total (the right
reference for ``modulation: nonlinear`` maps, which divide head size out). Then the
regional excess age of a patient group estimated from the image volumes against the one
from the true volumes (:func:`brainpad.local.truth.regional_excess_age`), correlated over
regions. Compare registration settings by running it on two finished runs.

Needs a finished demo run on simulated data (``results/arrays``, ``results/folds.tsv``,
``results/templates``, ``results/simulated``).

Usage: python benchmarks/regional_fidelity.py [--results results] [--group AD]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from brainpad.cohort.arrays import open_volumes
from brainpad.local.truth import image_regional_volumes, regional_excess_age

SHOWN = ("Hippocampus", "Amygdala", "Thalamus", "Lateral_Ventricle")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results", help="a finished demo run")
    parser.add_argument("--group", default="AD", help="patient group of the excess ages")
    parser.add_argument("--control-group", default="HC")
    args = parser.parse_args()
    results = Path(args.results)
    truth_dir = results / "simulated/derivatives/simulation"
    index = pd.read_csv(results / "arrays/index.tsv", sep="\t")
    folds = pd.read_csv(results / "folds.tsv", sep="\t")
    mask = nib.load(next((results / "templates").glob("*desc-brain_mask.nii.gz")))
    volumes = open_volumes(results / "arrays/volumes.npy")
    image = image_regional_volumes(volumes, index, folds, mask, truth_dir)
    true = pd.read_csv(truth_dir / "roi_volumes.tsv", sep="\t").set_index("participant_id")
    true = true.loc[image.index, image.columns]
    relative = true.div(true.sum(axis=1), axis=0)
    varying = image.columns[image.std() > 0]
    fidelity = pd.DataFrame(
        {
            "r_absolute": [np.corrcoef(image[c], true[c])[0, 1] for c in varying],
            "r_relative": [np.corrcoef(image[c], relative[c])[0, 1] for c in varying],
        },
        index=varying,
    )
    print(f"{results}: {len(image)} participants, {len(varying)} regions with tissue")
    print("image vs true regional volume, r across participants (over regions):")
    print(fidelity.describe().loc[["25%", "50%", "75%"]].round(2).to_string())
    shown = [name for name in fidelity.index if name.endswith(SHOWN)]
    print(fidelity.loc[shown].round(2).to_string())

    people = pd.read_csv(truth_dir / "subjects.tsv", sep="\t").set_index("participant_id")
    people = people.loc[image.index]
    excess = pd.DataFrame(
        {
            "image": regional_excess_age(image, people, args.group, args.control_group),
            "true": regional_excess_age(true, people, args.group, args.control_group),
        }
    ).dropna()
    print(
        f"{args.group} excess age per region, image vs true estimate over {len(excess)} "
        f"regions: Pearson r {excess.corr().iloc[0, 1]:.2f}, "
        f"Spearman {excess.corr('spearman').iloc[0, 1]:.2f}"
    )
    print(excess.loc[[n for n in excess.index if n.endswith(SHOWN)]].round(1).to_string())


if __name__ == "__main__":
    main()
