"""Figures for the HTML report (``brainpad report``); Snakemake's ``report()`` collects them.

Each function draws one figure from the workflow's tables and saves it as PNG. On the
simulated cohort the figures also show the truth: the floor MAE and the simulated group
brain-PAD.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from brainpad.paths import preproc_paths
from brainpad.stats.tables import baseline_scans, comparison_people, heldout_people, pad_column


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = 110) -> None:
    """Save ``fig`` as PNG, whole or not at all (via a temporary name), and close it."""
    from brainpad.atomic import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)


def predicted_vs_age(
    table: pd.DataFrame, columns: dict[str, str], accuracy: pd.DataFrame, path: str | Path
) -> None:
    """Predicted against chronological age, one panel per model and the ensemble.

    Healthy test participants in blue, patients coloured by group; titles carry the test
    MAE (and the floor on simulated data).
    """
    people = baseline_scans(table[table["role"].isin(["test", "clinical"])])
    patients = people.loc[people["role"] == "clinical", "group"].unique().tolist()
    colours = dict(zip(patients, plt.cm.tab10(np.arange(1, len(patients) + 1)), strict=True))
    fig, axes = _panels(len(columns), 4.2)
    values = np.r_[people["age"], *(people[c] for c in columns.values())]
    lo, hi = float(np.nanmin(values)) - 5, float(np.nanmax(values)) + 5
    for ax, (label, column) in zip(axes, columns.items(), strict=False):
        test = people[people["role"] == "test"]
        ax.scatter(test["age"], test[column], s=14, color="tab:blue", label="healthy test")
        for group, part in people[people["role"] == "clinical"].groupby("group", sort=False):
            ax.scatter(
                part["age"], part[column], s=14, color=colours[group], marker="^", label=str(group)
            )
        ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--")
        row = accuracy.set_index("model").loc[label]
        title = f"{label}\nMAE {row['mae']:.2f} y, r {row['r']:.2f}"
        if "floor_mae" in row:
            title += f" (floor {row['floor_mae']:.2f} y)"
        ax.set_title(title, fontsize=10)
        ax.set(
            xlabel="chronological age (y)",
            ylabel="predicted age (y)",
            xlim=(lo, hi),
            ylim=(lo, hi),
        )
    axes[0].legend(fontsize=8, loc="upper left")
    save_figure(fig, path)


def _panels(n: int, size: float, columns: int = 5) -> tuple[plt.Figure, list]:
    """A grid of ``n`` square panels, at most ``columns`` a row (unused ones hidden)."""
    cols = min(n, columns)
    rows = -(-n // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(size * cols, size * rows), squeeze=False, layout="constrained"
    )
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def uncertainty_vs_error(table: pd.DataFrame, path: str | Path) -> dict[str, float]:
    """Per-scan uncertainty against absolute error on the healthy test set, for the
    ensemble and each sub-ensemble of several members; Pearson r in each title.

    Returns
    -------
    dict
        Panel → Pearson r of uncertainty and absolute error.
    """
    from scipy import stats

    test = baseline_scans(table[table["role"] == "test"])
    scopes = {"ensemble": ("uncertainty", "brain_age")}
    for column in table.columns:
        if column.startswith("uncertainty_"):
            name = column.removeprefix("uncertainty_")
            scopes[name] = (column, f"pred_{name}")
    fig, axes = _panels(len(scopes), 3.8)
    found = {}
    for ax, (label, (width, age)) in zip(axes, scopes.items(), strict=True):
        error = (test[age] - test["age"]).abs()
        r = float(stats.pearsonr(test[width], error)[0]) if len(test) > 2 else float("nan")
        found[label] = r
        ax.scatter(test[width], error, s=14, color="tab:blue")
        ax.set(
            title=f"{label}: r {r:.2f} (n {len(test)})",
            xlabel="95 % interval of base models (y)",
            ylabel="absolute error (y)",
        )
    save_figure(fig, path)
    return found


def brain_pad_by_group(
    table: pd.DataFrame,
    by_group: pd.DataFrame,
    control_group: str,
    control_min_age: float,
    path: str | Path,
    value: str = "brain_pad_corrected",
) -> None:
    """Corrected brain-PAD per group (controls ≥ ``control_min_age``), box + points.

    A red diamond marks the simulated true mean brain-PAD of the group when known.
    """
    people = comparison_people(table, control_group, control_min_age)
    groups = by_group["group"].tolist()
    data = [people.loc[people["group"] == g, value].to_numpy() for g in groups]
    fig, ax = plt.subplots(figsize=(1.6 * len(groups) + 2, 4.2))
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(groups) + 1), groups)
    rng = np.random.default_rng(0)
    for k, values in enumerate(data, start=1):
        ax.scatter(k + rng.uniform(-0.15, 0.15, values.size), values, s=10, alpha=0.6)
    if "true_mean" in by_group:
        ax.scatter(
            range(1, len(groups) + 1),
            by_group["true_mean"],
            marker="D",
            s=60,
            color="red",
            zorder=3,
            label="simulated truth (mean)",
        )
        ax.legend(fontsize=8)
    ax.axhline(0, color="grey", lw=1, ls="--")
    ax.set(
        ylabel="brain-PAD, bias-corrected (y)",
        title=f"brain-PAD by group ({control_group} aged ≥ {control_min_age:g})",
    )
    save_figure(fig, path)


def brain_pad_by_site(table: pd.DataFrame, control_group: str, path: str | Path) -> None:
    """The healthy controls' corrected brain-PAD per site, before and after harmonisation
    (one panel without it), box + points; one scan per participant."""
    from brainpad.stats.harmonisation import AFTER, BEFORE

    usable = table[~table["role"].isin(["excluded", "unlabelled"]) & table["age"].notna()]
    people = baseline_scans(usable[usable["group"] == control_group])
    harmonised = BEFORE in people
    panels = {"before harmonisation": BEFORE, "after": AFTER} if harmonised else {
        "not harmonised (harmonise.enabled: false)": AFTER}  # fmt: skip
    sites = sorted(people["site"].astype(str).unique())
    fig, axes = plt.subplots(1, len(panels), figsize=(2 + 1.3 * len(sites) * len(panels), 4),
                             sharey=True, squeeze=False)  # fmt: skip
    rng = np.random.default_rng(0)
    for ax, (title, column) in zip(axes[0], panels.items(), strict=True):
        data = [people.loc[people["site"].astype(str) == s, column].to_numpy() for s in sites]
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, len(sites) + 1), sites)
        for k, values in enumerate(data, start=1):
            ax.scatter(k + rng.uniform(-0.15, 0.15, values.size), values, s=10, alpha=0.6)
        ax.axhline(0, color="grey", lw=1, ls="--")
        ax.set_title(title)
    axes[0][0].set_ylabel(f"{control_group} brain-PAD, bias-corrected (y)")
    save_figure(fig, path)


def brain_pad_by_model(
    table: pd.DataFrame, labels: Sequence[str], control_group: str, path: str | Path
) -> None:
    """Corrected brain-PAD of every model, one panel per patient group (study 2's box
    plot): where each model places the group, beside the healthy test participants.

    ``labels`` are the report's model labels (``ensemble``, sub-ensembles, base models).
    """
    people = heldout_people(table, control_group)
    groups = list(dict.fromkeys(people["group"]))
    labels = [m for m in labels if pad_column(m) in people]
    fig, axes = _panels(len(groups), 0.45 * len(labels) + 1.8, columns=2)
    for ax, group in zip(axes, groups, strict=False):
        part = people[people["group"] == group]
        data = [part[pad_column(m)].dropna().to_numpy() for m in labels]
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, len(labels) + 1), labels, rotation=60, ha="right", fontsize=7)
        ax.axhline(0, color="grey", lw=1, ls="--")
        ax.set(title=f"{group} (n {len(part)})", ylabel="brain-PAD, bias-corrected (y)")
    save_figure(fig, path)


def associations_by_age(windows: pd.DataFrame, path: str | Path) -> None:
    """Pearson r of the ensemble's brain-PAD with each numeric clinical variable per
    sliding age window, with its 95 % band; filled points survive Bonferroni correction.
    Says so in the panel when there is no numeric variable or no window to draw."""
    columns = {"kind", "value", "r_low", "r_high", "p_bonferroni"}
    numeric = (
        windows[(windows["kind"] == "numeric") & windows["value"].notna()]
        if columns <= set(windows)
        else windows.iloc[0:0]
    )
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    if numeric.empty:
        ax.text(0.5, 0.5, "no numeric clinical variable with 5 or more participants a window",
                ha="center", va="center", transform=ax.transAxes)  # fmt: skip
        ax.set_axis_off()
    for variable, part in numeric.groupby("variable", sort=False):
        centre = (part["age_low"] + part["age_high"]) / 2
        line = ax.plot(centre, part["value"], marker="o", mfc="white", label=variable)[0]
        ax.fill_between(centre, part["r_low"], part["r_high"], color=line.get_color(), alpha=0.15)
        hit = part["p_bonferroni"] < 0.05
        ax.scatter(centre[hit], part.loc[hit, "value"], color=line.get_color(), zorder=3)
    if not numeric.empty:
        ax.axhline(0, color="grey", lw=1, ls="--")
        ax.set(xlabel="age window centre (y; windows 10 y wide)", ylabel="Pearson r with brain-PAD",
               title="ensemble brain-PAD vs clinical variables by age", ylim=(-1, 1))  # fmt: skip
        ax.legend(fontsize=8)
    save_figure(fig, path)


def qc_summary(
    qc: pd.DataFrame, min_similarity: float, tiv_range: Sequence[float], path: str | Path
) -> None:
    """Registration similarity against TIV for every scan, thresholds drawn, failures in red."""
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    passed = qc["passed"].astype(bool)
    ax.scatter(qc.loc[passed, "tiv_ml"], qc.loc[passed, "similarity"], s=12, label="passed")
    ax.scatter(
        qc.loc[~passed, "tiv_ml"],
        qc.loc[~passed, "similarity"],
        s=30,
        color="red",
        marker="x",
        label=f"failed ({(~passed).sum()})",
    )
    ax.axhline(min_similarity, color="grey", ls="--", lw=1)
    for tiv in tiv_range:
        ax.axvline(tiv, color="grey", ls="--", lw=1)
    ax.set(
        xlabel="total intracranial volume (ml)",
        ylabel="similarity to template",
        title=f"QC: {passed.sum()} of {len(qc)} scans passed",
    )
    ax.legend(fontsize=8)
    save_figure(fig, path)


def failed_montages(qc: pd.DataFrame, preproc_dir: str | Path, path: str | Path) -> None:
    """The QC montage of every scan that failed, titled with its reasons, in one figure.

    Montages are the preprocessing's own (native scan with its brain mask, the scan in
    MNI with the template outline, modulated GM); a scan whose montage is missing gets a
    panel saying so.
    """
    failed = qc[~qc["passed"].astype(bool)]
    if failed.empty:
        fig, ax = plt.subplots(figsize=(5, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, f"all {len(qc)} scans passed QC", ha="center", va="center")
        save_figure(fig, path)
        return
    columns = min(3, len(failed))
    rows = -(-len(failed) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 4.8 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, row in zip(axes.ravel(), failed.itertuples(), strict=False):
        montage = preproc_paths(preproc_dir, row.scan_id)["montage"]
        if montage.is_file():
            ax.imshow(plt.imread(montage))
        else:
            ax.text(0.5, 0.5, f"no montage at\n{montage}", ha="center", va="center", fontsize=7)
        reasons = textwrap.fill(str(row.reasons), 48)
        ax.set_title(f"{row.scan_id}\n{reasons}", fontsize=8, color="darkred")
    save_figure(fig, path)
