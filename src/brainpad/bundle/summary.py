"""The one-page PNG summary ``brainpad predict`` writes for each scan."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def summary_figure(row: dict, models: Sequence[str], warnings: Sequence[str], path: Path) -> None:
    """Each base model's brain age, the ensemble with its 95 % interval, the age if known.

    Parameters
    ----------
    row : dict
        :func:`brainpad.bundle.predict.ensemble_row`'s row with ``scan_id`` and ``age``.
    models : sequence of str
        The base models (``pred_<model>`` in ``row``).
    warnings : sequence of str
        Printed under the plot.
    path : path
        The PNG written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [*models, "ensemble"]
    values = [row[f"pred_{m}"] for m in models] + [row["brain_age"]]
    y = np.arange(len(labels))[::-1]
    plot_height, note_height = 1.4 + 0.28 * len(labels), 0.35 * len(warnings)
    fig, axes = plt.subplots(
        2 if warnings else 1, 1, figsize=(7, plot_height + note_height), layout="constrained",
        height_ratios=[plot_height, note_height] if warnings else None, squeeze=False,
    )  # fmt: skip
    ax = axes[0, 0]
    ax.scatter(values[:-1], y[:-1], color="0.45", s=18, label="base models (mean of folds)")
    low, high = row["brain_age"] - row["brain_age_low"], row["brain_age_high"] - row["brain_age"]
    ax.errorbar(
        values[-1], y[-1], xerr=[[low], [high]], fmt="o", color="C3", capsize=4,
        label="ensemble, 95 % interval",
    )  # fmt: skip
    age = row.get("age")
    title = (
        f"{row['scan_id']}: brain age {row['brain_age']:.1f} y "
        f"(95 % interval {row['brain_age_low']:.1f}-{row['brain_age_high']:.1f})"
    )
    if not row.get("plausible", True):
        title = f"IMPLAUSIBLE {title}"
    if age is not None and not np.isnan(age):
        ax.axvline(age, color="C0", linestyle="--", label=f"age {age:g} y")
        title += (
            f"\nbrain-PAD {row['brain_pad']:+.1f} y, corrected {row['brain_pad_corrected']:+.1f} y"
        )
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel("brain age (years)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best")
    if warnings:
        note = axes[1, 0]
        note.axis("off")
        text = "\n".join(textwrap.fill(f"warning: {w}", 105) for w in warnings)
        note.text(0, 1, text, fontsize=7, color="C3", va="top", transform=note.transAxes)
    fig.savefig(path, dpi=110)
    plt.close(fig)
