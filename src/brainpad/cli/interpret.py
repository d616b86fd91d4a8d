"""``brainpad relevance``, ``relevance-stats``, ``relevance-figure``
(``workflow/rules/interpret.smk``)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from brainpad.cli.common import freeze_gc

log = logging.getLogger("brainpad")


def _cmd_relevance(args: argparse.Namespace) -> None:
    import torch

    from brainpad.interpret.maps import cohort_relevance

    torch.set_num_threads(args.threads)
    states: dict[str, list[str]] = {}
    for path in args.states:  # results/models/<model>/fold-<k>/model.pt
        states.setdefault(Path(path).parent.parent.name, []).append(path)
    cohort_relevance(
        states,
        args.arrays_dir,
        args.folds,
        args.mask,
        args.out_dir,
        args.methods,
        args.control_group,
        args.lrp_rule,
    )


def _cmd_relevance_stats(args: argparse.Namespace) -> None:
    import nibabel as nib
    import numpy as np
    import pandas as pd

    from brainpad.atomic import write_table_atomic
    from brainpad.interpret import truth
    from brainpad.interpret.statistics import relevance_statistics
    from brainpad.paths import relevance_paths

    scans = pd.read_csv(Path(args.out_dir) / "scans.tsv", sep="\t")
    mask = nib.load(args.mask)
    atlas, labels = nib.load(args.atlas), pd.read_csv(args.labels, sep="\t")
    freeze_gc()
    tests, clusters = [], []
    for method in args.methods:
        found = relevance_statistics(
            nib.load(relevance_paths(args.out_dir, method)["absolute"]), scans, mask, atlas,
            labels, method, args.out_dir, args.control_group, args.young_max, args.old_min,
            args.n_perm, args.downsample, args.alpha, args.seed,
        )  # fmt: skip
        tests.append(found[0])
        clusters.append(found[1])
    out = Path(args.out_dir)
    tests = pd.concat(tests, ignore_index=True)
    write_table_atomic(tests, out / "tests.tsv")
    found_clusters = [c for c in clusters if len(c)]
    write_table_atomic(
        pd.concat(found_clusters, ignore_index=True) if found_clusters else clusters[0],
        out / "clusters.tsv",
    )
    if args.truth_dir:
        rng = np.random.default_rng(args.seed)
        shares, overlap = truth.truth_tables(
            out, tests, mask, args.truth_dir, args.alpha, rng, args.n_random
        )
        write_table_atomic(shares, out / "truth.tsv")
        write_table_atomic(overlap, out / "truth_clusters.tsv")


def _cmd_relevance_figure(args: argparse.Namespace) -> None:
    from brainpad.report.brainmaps import relevance_figure

    relevance_figure(args.out_dir, args.template, args.methods, args.alpha, args.out)


def add_commands(sub) -> None:
    """Register this stage's subcommands."""
    rel = sub.add_parser(
        "relevance", help="LRP and Grad-CAM maps of every scan (captum), on the MNI grid"
    )
    rel.add_argument(
        "--states", nargs="+", required=True, help="results/models/<model>/fold-<k>/model.pt"
    )
    rel.add_argument("--arrays-dir", required=True, help="the cohort arrays (results/arrays)")
    rel.add_argument("--folds", required=True, help="folds.tsv")
    rel.add_argument("--mask", required=True, help="template brain mask")
    rel.add_argument("--methods", nargs="+", default=["lrp", "gradcam"])
    rel.add_argument("--lrp-rule", default="epsilon", help="epsilon or alpha1beta0")
    rel.add_argument("--control-group", default="HC")
    rel.add_argument("--threads", type=int, default=1, help="CPU threads of torch")
    rel.add_argument("--out-dir", required=True, help="results/interpret")
    rel.set_defaults(func=_cmd_relevance)

    sta = sub.add_parser(
        "relevance-stats", help="permutation tests with TFCE of the relevance maps; truth"
    )
    sta.add_argument("--out-dir", required=True, help="results/interpret (read and written)")
    sta.add_argument("--mask", required=True, help="template brain mask")
    sta.add_argument("--atlas", required=True, help="Harvard-Oxford label image")
    sta.add_argument("--labels", required=True, help="its label table (label, name)")
    sta.add_argument("--methods", nargs="+", default=["lrp", "gradcam"])
    sta.add_argument("--control-group", default="HC")
    sta.add_argument("--young-max", type=float, default=40.0, help="young controls: age <= this")
    sta.add_argument("--old-min", type=float, default=60.0, help="old controls: age >= this")
    sta.add_argument("--n-perm", type=int, default=1000, help="permutations of each test")
    sta.add_argument("--downsample", type=int, default=1, help="test on blocks of N^3 voxels")
    sta.add_argument("--alpha", type=float, default=0.05, help="FWE p threshold")
    sta.add_argument("--truth-dir", help="the simulation's truth folder (adds truth tables)")
    sta.add_argument("--n-random", type=int, default=1000, help="random region placements")
    sta.add_argument("--seed", type=int, default=0)
    sta.set_defaults(func=_cmd_relevance_stats)

    fig = sub.add_parser("relevance-figure", help="the relevance maps and t maps (nilearn)")
    fig.add_argument("--out-dir", required=True, help="results/interpret")
    fig.add_argument("--template", required=True, help="template T1w (the background)")
    fig.add_argument("--methods", nargs="+", default=["lrp", "gradcam"])
    fig.add_argument("--alpha", type=float, default=0.05, help="FWE p threshold")
    fig.add_argument("--out", required=True, help="output PNG")
    fig.set_defaults(func=_cmd_relevance_figure)
