"""Seconds per scan of `brainpad preprocess` and its registration accuracy on the truth.

Simulates a few subjects at the working resolution, preprocesses each (ITK on one thread)
and scores the registration: the Harvard-Oxford subcortical labels are carried into each
scan once through the *true* simulated transform and once through the *estimated* one
(template → scan), and the mean Dice over the labels is reported.

Usage: python benchmarks/preprocess.py [--voxel-size 2] [--n-scans 4]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")

import ants
import nibabel as nib
import numpy as np
import pandas as pd

from brainpad.paths import output_paths
from brainpad.preprocess import PreprocessOptions, preprocess_scan
from brainpad.preprocess.native import load_canonical
from brainpad.simulate import TEMPLATE_PAD_MM, Settings, anatomy, plan_cohort, simulate_cohort
from brainpad.templates import (
    harvard_oxford_atlas,
    harvard_oxford_labels,
    load_template,
    template_files,
    write_template_files,
)


def true_labels(
    model, subject: dict, settings: Settings, pose: dict, scan: Path, atlas: np.ndarray
) -> np.ndarray:
    """Atlas labels seen at every voxel of the (RAS-canonical) scan through the true map."""
    img = nib.as_closest_canonical(nib.load(scan))
    anat = anatomy.generate_subject(model, subject, settings)
    ijk = np.indices(img.shape[:3]).reshape(3, -1)
    points = img.affine[:3, :3] @ ijk + img.affine[:3, 3:4]
    coords = np.rint(anatomy.template_coordinates(model, anat, points, pose)).astype(int)
    inside = np.all((coords >= 0) & (coords < np.array(atlas.shape)[:, None]), axis=0)
    labels = np.zeros(points.shape[1], dtype=np.int16)
    labels[inside] = atlas[tuple(coords[:, inside])]
    return labels.reshape(img.shape[:3])


def dice(a: np.ndarray, b: np.ndarray, labels: np.ndarray) -> float:
    scores = [
        2 * np.sum((a == k) & (b == k)) / max(np.sum(a == k) + np.sum(b == k), 1)
        for k in labels
        if np.any(a == k)
    ]
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voxel-size", type=float, default=2.0, help="working voxel (mm)")
    parser.add_argument("--n-scans", type=int, default=4)
    parser.add_argument("--syn-iterations", type=int, nargs="+", default=[40, 20, 10])
    args = parser.parse_args()
    settings = Settings(
        n_subjects=args.n_scans,
        voxel_size=args.voxel_size,
        n_test_retest=0,
        n_between_site=0,
        modalities=("T1w",),
        seed=11,
    )
    options = PreprocessOptions(
        voxel_size=args.voxel_size, syn_iterations=tuple(args.syn_iterations)
    )
    subcortical = harvard_oxford_labels().query("kind == 'subcortical'")["label"].to_numpy()
    with tempfile.TemporaryDirectory() as tmp:
        bids, tpl, out = Path(tmp, "bids"), Path(tmp, "tpl"), Path(tmp, "out")
        simulate_cohort(settings, bids, threads=2)
        write_template_files(tpl, args.voxel_size)
        template = load_template(settings.voxel_size, TEMPLATE_PAD_MM)
        sim_atlas = harvard_oxford_atlas(settings.voxel_size, pad_mm=TEMPLATE_PAD_MM)
        model = anatomy.AnatomyModel.build(template, sim_atlas)
        atlas_img = ants.image_read(str(template_files(tpl, args.voxel_size)["atlas"]))
        plan = plan_cohort(settings)[0].set_index("participant_id")
        scans = pd.read_csv(bids / "derivatives/simulation/scans.tsv", sep="\t")
        rows = []
        for scan in scans.to_dict("records"):
            scan_id = Path(scan["path"]).name.removesuffix("_T1w.nii.gz")
            start = time.perf_counter()
            metrics = preprocess_scan(bids / scan["path"], scan_id, tpl, out, options)
            seconds = time.perf_counter() - start
            paths = output_paths(out, scan_id)
            estimated = ants.apply_transforms(
                load_canonical(bids / scan["path"]),
                atlas_img,
                [str(paths["affine"]), str(paths["inverse_warp"])],
                whichtoinvert=[True, False],
                interpolator="nearestNeighbor",
            ).numpy()
            pose = {
                "rotation_deg": np.array([scan[f"rotation_{a}_deg"] for a in "xyz"]),
                "translation_mm": np.array([scan[f"translation_{a}_mm"] for a in "xyz"]),
            }
            subject = {**plan.loc[scan["participant_id"]], "participant_id": scan["participant_id"]}
            truth = true_labels(model, subject, settings, pose, bids / scan["path"], sim_atlas)
            rows.append(
                {
                    "scan": scan_id,
                    "site": scan["site"],
                    "seconds": seconds,
                    "similarity": metrics["similarity"],
                    "dice_subcortical": dice(truth, estimated.astype(int), subcortical),
                }
            )
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format="%.3f"))
    print(f"\nworking voxel {args.voxel_size:g} mm, SyN iterations {args.syn_iterations}")
    print(f"seconds per scan (1 ITK thread): {table.seconds.mean():.1f}")
    print(
        f"mean subcortical Dice (true vs estimated transform): {table.dice_subcortical.mean():.3f}"
    )


if __name__ == "__main__":
    main()
