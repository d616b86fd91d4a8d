"""How sharp must a local brain-age map be to match the simulated truth?

For each patient group of a simulated cohort, prints the Pearson r over the brain between
the group's true local brain-PAD map and the same pattern as a noise-free map could show
it: only where tissue shrinks (the model reads GM and WM, so nothing shows in the growing
CSF regions: :func:`brainpad.local.planted.planted_years`), blurred by a Gaussian of each FWHM
(:func:`brainpad.local.planted.smooth_in_mask`). ``planted_response.tsv`` gives the FWHM that
the workflow's maps have (``planted_fwhm_mm``) and this r at it (``resolution_ceiling_r``);
this prints the whole curve, so the FWHM a goal needs can be read off. Needs only the
simulated cohort and the templates (``results/simulated``, ``results/templates``).

Usage: python benchmarks/resolution_ceiling.py [--results results]
       [--fwhm 0 4 8 12 16 20 28 40]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np

from brainpad.local.measures import spatial_correlation
from brainpad.local.planted import planted_years, smooth_in_mask
from brainpad.local.truth import read_true_map


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results", help="a demo run's results folder")
    parser.add_argument(
        "--fwhm", type=float, nargs="+", default=[0, 4, 8, 12, 16, 20, 28, 40], help="mm"
    )
    args = parser.parse_args()
    results = Path(args.results)
    truth_dir = results / "simulated/derivatives/simulation"
    mask_img = nib.load(next((results / "templates").glob("*desc-brain_mask.nii.gz")))
    mask = np.asarray(mask_img.dataobj) > 0
    voxel = float(min(mask_img.header.get_zooms()[:3]))
    print("FWHM (mm)   " + "  ".join(f"{f:5.0f}" for f in args.fwhm))
    for group, years in planted_years(truth_dir, mask_img).items():
        true_map = read_true_map(truth_dir, group, mask_img)
        if true_map is None or not np.ptp(true_map[mask]):
            continue
        r = [
            spatial_correlation(smooth_in_mask(years, mask, f / voxel), true_map, mask)
            for f in args.fwhm
        ]
        print(f"{group:<10}  " + "  ".join(f"{value:5.3f}" for value in r))


if __name__ == "__main__":
    main()
