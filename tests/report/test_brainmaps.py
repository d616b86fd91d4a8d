"""Brain figures with nilearn: every panel drawn or saying why it is not."""

from __future__ import annotations

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainpad.local.statistics import statmap_path
from brainpad.paths import relevance_paths, stat_paths
from brainpad.report.brainmaps import local_maps_figure, relevance_figure

pytestmark = pytest.mark.usefixtures("frozen_gc")

AFFINE = np.diag([4.0, 4.0, 4.0, 1.0])
AFFINE[:3, 3] = [-72.0, -104.0, -60.0]
SHAPE = (36, 44, 36)


def _brain(seed: int = 0, signed: bool = True) -> nib.Nifti1Image:
    grid = np.indices(SHAPE).astype(float)
    centre = np.array(SHAPE)[:, None, None, None] / 2
    inside = (((grid - centre) / (np.array(SHAPE)[:, None, None, None] / 2.5)) ** 2).sum(0) < 1
    values = np.random.default_rng(seed).normal(size=SHAPE) + (0 if signed else 2)
    return nib.Nifti1Image(np.where(inside, values, 0).astype(np.float32), AFFINE)


def _drawn(path) -> np.ndarray:
    image = plt.imread(path)
    assert image.std() > 0.05  # not a blank page
    return image


def test_the_relevance_figure_draws_each_test_or_says_why_not(tmp_path):
    template = tmp_path / "t1.nii.gz"
    nib.save(_brain(9, signed=False), template)
    mean = relevance_paths(tmp_path, "lrp")["mean_absolute"]
    mean.parent.mkdir(parents=True)
    nib.save(_brain(1, signed=False), mean)
    paths = stat_paths(tmp_path, "lrp", "AD_vs_old")
    nib.save(_brain(2), paths["t"])
    p = np.where(np.asarray(_brain(2).dataobj) > 1.5, 0.01, 0.5)
    nib.save(nib.Nifti1Image(p.astype(np.float32), AFFINE), paths["p_fwe"])
    pd.DataFrame(
        {
            "method": ["lrp", "lrp"], "test": ["AD_vs_old", "sMCI_vs_old"],
            "first": ["AD", "sMCI"], "second": ["HC >= 60", "HC >= 60"],
            "n_first": [18, 1], "n_second": [11, 11], "n_perm": [50, 50],
            "max_abs_t": [4.0, np.nan], "min_p_fwe": [0.01, np.nan],
        }
    ).to_csv(tmp_path / "tests.tsv", sep="\t", index=False)  # fmt: skip
    relevance_figure(tmp_path, template, ["lrp"], 0.05, tmp_path / "relevance.png")
    assert _drawn(tmp_path / "relevance.png").shape[0] > 200


def test_the_local_maps_figure_has_the_maps_the_icc_and_one_scan(tmp_path):
    template = tmp_path / "t1.nii.gz"
    nib.save(_brain(9, signed=False), template)
    statmaps = tmp_path / "statmaps"
    statmaps.mkdir()
    for group, seed in (("HC", 3), ("AD", 4)):
        nib.save(_brain(seed), statmaps / f"group-{group}_stat-meanbrainPAD_map.nii.gz")
    nib.save(_brain(5), statmap_path(statmaps, "group-AD_vs_HC", "d"))
    nib.save(_brain(6, signed=False), statmap_path(statmaps, "icc-test-retest", "icc"))
    example = tmp_path / "scan.nii.gz"
    nib.save(_brain(7), example)
    out = tmp_path / "local.png"
    local_maps_figure(statmaps, template, "HC", out, example=("sub-1 (AD, 70 y)", example))
    wide = _drawn(out)
    # the AD row has its mean and d maps; its missing t map is a panel saying so
    local_maps_figure(statmaps, template, "HC", tmp_path / "plain.png")
    assert wide.shape[1] >= _drawn(tmp_path / "plain.png").shape[1]
