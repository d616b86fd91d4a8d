"""``brainpad stats`` (``workflow/rules/stats.smk``)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from brainpad.cli.common import model_columns

log = logging.getLogger("brainpad")
KS_REFERENCE = "diffae"
"""The architecture whose (first) base model's brain-PAD distribution is compared with
every other's (study 2); the ensemble's when it is not trained."""


def _true_slopes(truth: str | None) -> dict[str, float]:
    """The simulator's slope of each clinical score per year of true brain-PAD (its
    truth.json beside subjects.tsv), or nothing for real data."""
    import json

    info = Path(truth).parent / "truth.json" if truth else None
    if info is None or not info.is_file():
        return {}
    clinical = json.loads(info.read_text()).get("clinical", {})
    return {k: v["slope_per_year_brain_pad"] for k, v in clinical.items()}


def _participants(path: str | None):
    """participants.tsv (n/a read as missing), or an empty table without one."""
    import pandas as pd

    if not path:
        return pd.DataFrame(columns=["participant_id"])
    return pd.read_csv(path, sep="\t", na_values=["n/a"])


def _cmd_stats(args: argparse.Namespace) -> None:
    import numpy as np
    import pandas as pd

    from brainpad.atomic import write_table_atomic
    from brainpad.ensemble.stacking import sub_ensembles
    from brainpad.stats.associations import (
        association_people,
        association_table,
        clinical_variables,
        window_table,
    )
    from brainpad.stats.harmonisation import harmonisation_table
    from brainpad.stats.survival import survival_table
    from brainpad.stats.tables import (
        accuracy_by,
        accuracy_table,
        ensemble_vs_base,
        group_tables,
        ks_table,
        untrained_accuracy,
    )

    table = pd.read_csv(args.brain_age, sep="\t")
    truth = pd.read_csv(args.truth, sep="\t").set_index("participant_id") if args.truth else None
    columns = model_columns(args.models)
    accuracy = accuracy_table(table, columns, truth)
    by_group, comparisons = group_tables(
        table, args.control_group, args.control_min_age, truth=truth
    )
    out = Path(args.out_dir)
    write_table_atomic(accuracy, out / "accuracy.tsv")
    untrained = untrained_accuracy(table, columns, truth, args.seed)
    write_table_atomic(untrained, out / "accuracy_untrained.tsv")
    write_table_atomic(by_group, out / "brain_pad_by_group.tsv")
    write_table_atomic(comparisons, out / "group_comparison.tsv")
    write_table_atomic(accuracy_by(table, columns, "age_bin"), out / "accuracy_by_age_bin.tsv")
    write_table_atomic(accuracy_by(table, columns, "site"), out / "accuracy_by_site.tsv")
    versus = ensemble_vs_base(accuracy, sub_ensembles(args.models))
    write_table_atomic(versus, out / "ensemble_vs_base.tsv")
    labels = ["ensemble", *args.models]
    reference = next((m for m in args.models if m.split("-")[0] == KS_REFERENCE), "ensemble")
    others = [m for m in labels if m != reference]
    distributions = ks_table(table, reference, others, args.control_group)
    write_table_atomic(distributions, out / "model_distributions.tsv")
    participants = _participants(args.participants)
    survival = survival_table(table, participants, labels)
    write_table_atomic(survival, out / "survival.tsv")
    people = association_people(table, participants)
    variables = clinical_variables(participants)
    slopes = _true_slopes(args.truth)
    overall = association_table(people, variables, labels, slopes)
    write_table_atomic(overall, out / "associations.tsv")
    write_table_atomic(
        window_table(people, variables, ["ensemble"]), out / "associations_by_age.tsv"
    )
    sites = harmonisation_table(table, args.control_group, args.control_min_age)
    write_table_atomic(sites, out / "harmonisation.tsv")
    for row in overall[overall["model"] == "ensemble"].itertuples():
        log.info("ensemble brain-PAD vs %s: %s %.2f (p %.3g, n %d)", row.variable,
                 getattr(row, "statistic", "?"), getattr(row, "value", np.nan),
                 getattr(row, "p", np.nan), row.n)  # fmt: skip
    if survival["r"].notna().any():
        best = survival.iloc[0]
        log.info(
            "survival (n %d): ensemble brain-PAD r %.2f (p %.3g), hazard ratio %.2f per year",
            best["n"], best["r"], best["r_p"], best["hazard_ratio"],
        )  # fmt: skip
    for row in accuracy.itertuples():
        log.info("healthy test %s: MAE %.2f y, r %.2f, R2 %.2f", row.model, row.mae, row.r, row.r2)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this stage's subcommands on ``brainpad``'s subparsers."""
    sta = sub.add_parser("stats", help="accuracy and group comparisons of brain-PAD")
    sta.add_argument("--brain-age", required=True)
    sta.add_argument("--models", nargs="+", required=True)
    sta.add_argument("--control-group", default="HC")
    sta.add_argument("--control-min-age", type=float, default=60.0)
    sta.add_argument("--truth", help="simulation subjects.tsv (adds the truth columns)")
    sta.add_argument(
        "--participants", help="participants.tsv (survival_months: the survival analysis)"
    )
    sta.add_argument("--seed", type=int, default=0, help="seed of the bootstrap intervals")
    sta.add_argument("--out-dir", required=True)
    sta.set_defaults(func=_cmd_stats)
