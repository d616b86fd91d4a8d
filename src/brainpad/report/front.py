"""The report's front page: the cohort, the headline figures and the software, as
reStructuredText that ``workflow/report/workflow.rst`` includes (``brainpad report``).

The workflow's parameters come from the config in ``workflow.rst`` itself (Snakemake
renders it with the config); what the run measured comes from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from brainpad.atomic import atomic_path


def _table(header: list[str], rows: list[list[str]]) -> str:
    """An rst list-table."""
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header, *rows]:
        lines += [f"   * - {row[0]}", *(f"     - {cell}" for cell in row[1:])]
    return "\n".join(lines) + "\n"


def _number(value: float, spec: str = ".2f") -> str:
    """``value`` formatted, or ``n/a`` where too few scans left it undefined."""
    return "n/a" if pd.isna(value) else format(value, spec)


def _section(title: str, body: str) -> str:
    return f"{title}\n{'-' * len(title)}\n\n{body}\n"


def cohort_section(table: pd.DataFrame, qc: pd.DataFrame, control_group: str) -> str:
    """Scans, participants per group and role, sites and QC exclusions."""
    people = table.drop_duplicates("participant_id")
    failed = qc[~qc["passed"].astype(bool)]
    rows = []
    for group, members in people.groupby("group", sort=False):
        ages = members["age"].dropna()
        age = f"{ages.min():.0f}-{ages.max():.0f}" if len(ages) else "n/a"
        roles = ", ".join(f"{k} {v}" for k, v in members["role"].value_counts().items())
        rows.append([str(group), str(len(members)), age, roles])
    rows.sort(key=lambda r: (r[0] != control_group, r[0]))
    sites = table["site"].value_counts().sort_index()
    text = (
        f"{len(table)} scans of {len(people)} participants passed quality control and were "
        f"analysed; {len(failed)} of {len(qc)} scans failed it (listed under *QC*"
        + (f": {', '.join(failed['scan_id'])}" if len(failed) else "")
        + "). Sites: "
        + ", ".join(f"{site} ({n} scans)" for site, n in sites.items())
        + ".\n\n"
    )
    return _section("Cohort", text + _table(["group", "participants", "age (y)", "roles"], rows))


def headline_section(stats_dir: str | Path, control_group: str) -> str:
    """The ensemble's healthy-test accuracy and each group's corrected brain-PAD."""
    stats_dir = Path(stats_dir)
    accuracy = pd.read_csv(stats_dir / "accuracy.tsv", sep="\t").set_index("model")
    by_group = pd.read_csv(stats_dir / "brain_pad_by_group.tsv", sep="\t")
    comparisons = pd.read_csv(stats_dir / "group_comparison.tsv", sep="\t")
    ensemble = accuracy.loc["ensemble"]
    text = (
        f"Ensemble on the held-out healthy test participants (n {int(ensemble['n'])}): "
        f"MAE {_number(ensemble['mae'])} y, r {_number(ensemble['r'])}, "
        f"R² {_number(ensemble['r2'])}"
    )
    if "floor_mae" in accuracy and pd.notna(ensemble.get("floor_mae")):
        text += f" (simulated floor MAE {ensemble['floor_mae']:.2f} y)"
    text += ".\n\n"
    rows = []
    for row in by_group.itertuples():
        versus = comparisons[(comparisons["first"] == row.group)
                             & (comparisons["second"] == control_group)]  # fmt: skip
        if row.group == control_group:
            effect = "reference"
        elif len(versus):
            effect = f"{_number(versus['d'].iloc[0])} (p {_number(versus['p'].iloc[0], '.2g')})"
        else:
            effect = "n/a"
        true_mean = getattr(row, "true_mean", float("nan"))
        spread = f"{_number(row.mean, '.1f')} ± {_number(row.sd, '.1f')}"
        rows.append([str(row.group), str(row.n), spread, effect, _number(true_mean, ".1f")])
    header = ["group", "n", "corrected brain-PAD (y, mean ± SD)", f"Cohen's d vs {control_group}",
              "simulated truth (y)"]  # fmt: skip
    note = (
        f"\nControls from the configured minimum age on ({control_group} row); positive "
        "brain-PAD: the brain looks older than its age; n/a: too few scans for the figure"
        " (or no simulated truth).\n"
    )
    return _section("Headline figures", text + _table(header, rows) + note)


def software_section() -> str:
    """The installed versions of the packages the run used."""
    from brainpad.bundle import software_versions

    found = {k: v for k, v in software_versions().items() if v != "absent"}
    return _section("Software", ", ".join(f"{k} {v}" for k, v in found.items()) + ".\n")


def write_front_page(
    table: pd.DataFrame,
    qc: pd.DataFrame,
    stats_dir: str | Path,
    control_group: str,
    path: str | Path,
    notes: Sequence[str] = (),
) -> None:
    """Write the front page's measured part (see the module) to ``path``, after ``notes``
    (what the run changed of its config by itself, e.g. models left out), if any."""
    text = "\n".join(
        [
            *([_section("Notes", "".join(f"- {n}\n" for n in notes))] if notes else []),
            cohort_section(table, qc, control_group),
            headline_section(stats_dir, control_group),
            software_section(),
        ]
    )
    with atomic_path(path) as tmp:
        tmp.write_text(text)
