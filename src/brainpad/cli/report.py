"""``brainpad report`` and ``local-figure`` (``workflow/rules/report.smk``), ``summary``
(the headline numbers ``make demo`` prints at its end) and ``screenshot`` (the HTML report
in a headless browser)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from brainpad.cli.common import model_columns

log = logging.getLogger("brainpad")


def _cmd_report(args: argparse.Namespace) -> None:
    import pandas as pd

    from brainpad.atomic import atomic_path, write_table_atomic
    from brainpad.report import figures as report
    from brainpad.report.front import write_front_page

    table = pd.read_csv(args.brain_age, sep="\t")
    stats_dir = Path(args.stats_dir)
    accuracy = pd.read_csv(stats_dir / "accuracy.tsv", sep="\t")
    by_group = pd.read_csv(stats_dir / "brain_pad_by_group.tsv", sep="\t")
    qc = pd.read_csv(args.qc, sep="\t")
    out = Path(args.out_dir)
    # one panel per sub-ensemble, not per member: study 3 stacks ten seeds per input
    columns = model_columns(args.models, members=False)
    report.predicted_vs_age(table, columns, accuracy, out / "predicted_vs_age.png")
    report.brain_pad_by_group(
        table, by_group, args.control_group, args.control_min_age, out / "brain_pad_by_group.png"
    )
    report.brain_pad_by_model(
        table, list(columns), args.control_group, out / "brain_pad_by_model.png"
    )
    report.brain_pad_by_site(table, args.control_group, out / "brain_pad_by_site.png")
    windows = pd.read_csv(stats_dir / "associations_by_age.tsv", sep="\t")
    report.associations_by_age(windows, out / "associations.png")
    report.uncertainty_vs_error(table, out / "uncertainty.png")
    report.qc_summary(qc, args.min_similarity, args.tiv_range, out / "qc.png")
    report.failed_montages(qc, args.preproc_dir, out / "qc_failed_montages.png")
    write_table_atomic(qc[~qc["passed"].astype(bool)], out / "qc_failed.tsv")
    write_front_page(table, qc, stats_dir, args.control_group, out / "front.rst", args.note)
    with atomic_path(out / "notes.txt") as tmp:
        tmp.write_text("".join(f"{note}\n" for note in args.note))


def _cmd_local_figure(args: argparse.Namespace) -> None:
    import pandas as pd

    from brainpad.report.brainmaps import example_scan, local_maps_figure

    example = None
    if args.folds and args.maps_dir:
        example = example_scan(pd.read_csv(args.folds, sep="\t"), args.maps_dir)
    local_maps_figure(
        args.statmaps_dir, args.template, args.control_group, args.out, args.truth_dir, example
    )


def _cmd_diffae_figure(args: argparse.Namespace) -> None:
    from brainpad.report.diffusion import reconstruction_figure

    drawn = reconstruction_figure(
        args.model, args.volumes, args.index, args.folds, args.out, args.n, args.steps
    )
    for row in drawn.itertuples():
        log.info(
            "%s: age %.1f, brain age %.1f, r with the slice: reconstruction %.3f, "
            "sample from z_sem %.3f",
            row.scan_id, row.age, row.brain_age, row.r_reconstruction, row.r_sample,
        )  # fmt: skip


def _cmd_screenshot(args: argparse.Namespace) -> None:
    from brainpad.report.screenshot import screenshot

    out = screenshot(args.report, args.out, args.category, args.figure, tuple(args.size))
    log.info("screenshot: %s", out)


def _cmd_summary(args: argparse.Namespace) -> None:
    from brainpad.report.summary import headline

    lines, _ = headline(args.results, args.control_group)
    print("\n".join(lines))


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this stage's subcommands on ``brainpad``'s subparsers."""
    rep = sub.add_parser("report", help="figures and tables for the HTML report")
    rep.add_argument("--brain-age", required=True)
    rep.add_argument("--qc", required=True)
    rep.add_argument("--stats-dir", required=True)
    rep.add_argument("--models", nargs="+", required=True)
    rep.add_argument("--control-group", default="HC")
    rep.add_argument("--control-min-age", type=float, default=60.0)
    rep.add_argument("--min-similarity", type=float, default=0.5)
    rep.add_argument("--tiv-range", type=float, nargs=2, default=[900.0, 2600.0])
    rep.add_argument("--preproc-dir", default="results/preproc", help="for failed scans' montages")
    rep.add_argument("--out-dir", required=True)
    rep.add_argument(
        "--note", action="append", default=[],
        help="what the run changed of its config by itself (front page, notes.txt)",
    )  # fmt: skip
    rep.set_defaults(func=_cmd_report)
    lfg = sub.add_parser("local-figure", help="the group, effect-size and ICC maps (nilearn)")
    lfg.add_argument("--statmaps-dir", required=True, help="from local-stats")
    lfg.add_argument("--template", required=True, help="template T1w (the background)")
    lfg.add_argument("--maps-dir", help="per-scan maps of local-maps (adds one example scan)")
    lfg.add_argument("--folds", help="folds.tsv (picks the example scan)")
    lfg.add_argument("--control-group", default="HC")
    lfg.add_argument("--truth-dir", help="the simulation's truth folder (adds the true maps)")
    lfg.add_argument("--out", required=True, help="output PNG")
    lfg.set_defaults(func=_cmd_local_figure)

    dfg = sub.add_parser("diffae-figure", help="test slices and their reconstructions (study 2)")
    dfg.add_argument("--model", required=True, help="a diffae fold model (model.pt)")
    dfg.add_argument("--volumes", required=True, help="the cohort array it reads")
    dfg.add_argument("--index", required=True, help="the arrays' index.tsv")
    dfg.add_argument("--folds", required=True, help="folds.tsv (the healthy test scans)")
    dfg.add_argument("--n", type=int, default=4, help="scans drawn")
    dfg.add_argument("--steps", type=int, default=50, help="DDIM decoding steps")
    dfg.add_argument("--out", required=True, help="output PNG")
    dfg.set_defaults(func=_cmd_diffae_figure)

    shot = sub.add_parser(
        "screenshot", help="the HTML report in headless Chromium: front page or one figure"
    )
    shot.add_argument("--report", default="results/report.html")
    shot.add_argument("--category", help="open this category (e.g. Interpretability)")
    shot.add_argument("--figure", help="show this figure (e.g. results/report/relevance.png)")
    shot.add_argument("--size", type=int, nargs=2, default=[1400, 1000], help="window pixels")
    shot.add_argument("--out", required=True, help="output PNG")
    shot.set_defaults(func=_cmd_screenshot)

    smy = sub.add_parser("summary", help="headline numbers of a finished run")
    smy.add_argument("--results", default="results", help="the run's results folder")
    smy.add_argument("--control-group", default="HC")
    smy.set_defaults(func=_cmd_summary)
