"""Compose the report's front figures into one image for the README (``docs/report-front.png``).

Reads a finished run's ``results/report/predicted_vs_age.png`` (every model's predicted
against chronological age) and ``brain_pad_by_group.png`` (corrected brain-PAD by group)
and stacks them, scaled to one width::

    python benchmarks/front_figure.py --results results --out docs/report-front.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

FIGURES = ("predicted_vs_age.png", "brain_pad_by_group.png")


def compose(results: Path, out: Path, width_in: float = 12.0) -> None:
    """Stack the front figures of ``results/report/`` into ``out``, each at full width."""
    images = [plt.imread(results / "report" / name) for name in FIGURES]
    heights = [width_in * im.shape[0] / im.shape[1] for im in images]
    fig, axes = plt.subplots(
        len(images), 1, figsize=(width_in, sum(heights)), gridspec_kw={"height_ratios": heights}
    )
    for ax, image in zip(axes, images, strict=True):
        ax.imshow(image)
        ax.set_axis_off()
    fig.subplots_adjust(left=0, right=1, top=1, bottom=0, hspace=0.02)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    print(f"{out}: {', '.join(FIGURES)} from {results / 'report'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--out", type=Path, default=Path("docs/report-front.png"))
    args = parser.parse_args()
    compose(args.results, args.out)


if __name__ == "__main__":
    main()
