"""``brainpad summary``: the headline numbers of a finished run, for the terminal.

``make demo`` ends with it: where the report is, the ensemble's healthy-test accuracy,
every model on all the controls it did not train on, each patient group's separation from
the controls, and how the local maps found the
disease, all read from the run's own tables. On simulated data each line also says
whether the demo's science checks hold (``CHECKS``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

CHECKS = {
    "mae_over_floor": 1.5,  # the ensemble's healthy-test MAE at most 1.5x the floor
    "ad_d": 0.8,  # AD vs controls: Cohen's d of the corrected brain-PAD at least 0.8
    "ad_top5": 3,  # at least 3 of the AD map's 5 strongest ROIs are truly affected
    "learns_r": 0.8,  # every model on the controls it did not train on: r at least 0.8
    "learns_floor": 2.0,  # ... and its MAE at most 2x the simulation's floor
}
"""Thresholds of the demo's science checks (``docs/benchmarks.md``)."""


def _read(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path, sep="\t") if path.is_file() else None


def _verdict(ok: bool) -> str:
    return "ok" if ok else "NOT MET"


ROLE_NOTES = {"unlabelled": "no age: diffae's diffusion loss only", "excluded": "failed QC"}


def cohort_line(folds: pd.DataFrame) -> str:
    """Participants per role of ``folds.tsv``, in the order roles are listed there."""
    roles = folds.drop_duplicates("participant_id")["role"].value_counts(sort=False)
    parts = [
        f"{n} {role}" + (f" ({ROLE_NOTES[role]})" if role in ROLE_NOTES else "")
        for role, n in roles.items()
    ]
    return f"cohort: {int(roles.sum())} participants: {', '.join(parts)}"


def untrained_lines(table: pd.DataFrame) -> tuple[list[str], bool]:
    """One line per model of ``accuracy_untrained.tsv`` (MAE with its interval, r and, on
    simulated data, the ratio to the floor with its interval), and whether every model
    learned: r >= ``learns_r`` and MAE <= ``learns_floor`` x the floor (only checked on
    simulated data)."""
    n = int(table["n"].max())
    lines = [f"every model on the {n} healthy controls it did not train on (95 % intervals):"]
    simulated = "floor_mae" in table and table["floor_mae"].notna().all()
    learned = True
    width = max(len(m) for m in table["model"])
    for row in table.itertuples():
        line = (
            f"  {row.model:<{width}}  MAE {row.mae:5.2f} y ({row.mae_low:.2f}-{row.mae_high:.2f})"
            f"  r {row.r:.2f}"
        )
        if simulated:
            ok = row.r >= CHECKS["learns_r"] and row.mae_over_floor <= CHECKS["learns_floor"]
            learned &= bool(ok)
            low, high = row.mae_over_floor_low, row.mae_over_floor_high
            line += (
                f"  {row.mae_over_floor:.2f}x the floor ({low:.2f}-{high:.2f})"
                f" [r >= {CHECKS['learns_r']}, <= {CHECKS['learns_floor']:g}x: {_verdict(ok)}]"
            )
        lines.append(line)
    if simulated and table["floor_mae"].nunique() == 1:
        lines.insert(1, f"  (the simulation's floor on them: {table['floor_mae'].iloc[0]:.2f} y)")
    return lines, learned


def headline(results: str | Path, control_group: str = "HC") -> tuple[list[str], bool]:
    """The summary lines of the run under ``results``, and whether every check held.

    Parameters
    ----------
    results : path
        The run's ``results/`` folder.
    control_group : str
        The controls' group label (``control_group`` in the config).

    Returns
    -------
    lines, passed
        Lines to print; ``passed`` is False when a science check of simulated data fails
        (True when there is nothing to check).
    """
    results = Path(results)
    lines, passed = [f"report: {results / 'report.html'}"], True
    if (results / "bundle" / "manifest.tsv").is_file():
        lines.append(f"trained bundle: {results / 'bundle'}")
    notes = results / "report" / "notes.txt"
    if notes.is_file():
        lines += [f"note: {line}" for line in notes.read_text().splitlines() if line]
    folds = _read(results / "folds.tsv")
    if folds is not None:
        lines.append(cohort_line(folds))
    accuracy = _read(results / "stats" / "accuracy.tsv")
    if accuracy is not None:
        row = accuracy.set_index("model").loc["ensemble"]
        line = f"ensemble healthy-test MAE {row['mae']:.2f} y (n {int(row['n'])})"
        if "floor_mae" in row and pd.notna(row["floor_mae"]):
            ratio = row["mae"] / row["floor_mae"]
            ok = ratio <= CHECKS["mae_over_floor"]
            passed &= ok
            line += (
                f", {ratio:.2f}x the simulation's floor of {row['floor_mae']:.2f} y "
                f"[<= {CHECKS['mae_over_floor']}x: {_verdict(ok)}]"
            )
        lines.append(line)
        if "interval_coverage" in row and pd.notna(row["interval_coverage"]):
            lines.append(
                f"95 % interval: holds the age of {row['interval_coverage']:.0%} of the "
                f"healthy test scans, mean width {row['interval_width']:.1f} y"
            )
    untrained = _read(results / "stats" / "accuracy_untrained.tsv")
    if untrained is not None:
        model_lines, learned = untrained_lines(untrained)
        lines += model_lines
        passed &= learned
    comparisons = _read(results / "stats" / "group_comparison.tsv")
    if comparisons is not None:
        versus = comparisons[comparisons["second"] == control_group]
        for first, d in zip(versus["first"], versus["d"], strict=True):
            line = f"{first} vs {control_group}: Cohen's d {d:.2f} (corrected brain-PAD)"
            if first == "AD" and accuracy is not None and "floor_mae" in accuracy:
                ok = d >= CHECKS["ad_d"]
                passed &= ok
                line += f" [>= {CHECKS['ad_d']}: {_verdict(ok)}]"
            lines.append(line)
    truth = _read(results / "maps" / "stats" / "truth_validation.tsv")
    if truth is not None and "AD" in set(truth["group"]):
        row = truth.set_index("group").loc["AD"]
        found = int(row["top5_truly_affected"])
        ok = found >= CHECKS["ad_top5"]
        passed &= ok
        lines.append(
            f"AD local map: {found} of its 5 strongest regions truly affected "
            f"({row['top5_rois']}) [>= {CHECKS['ad_top5']}: {_verdict(ok)}]"
        )
    return lines, passed
