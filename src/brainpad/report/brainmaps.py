"""Brain figures drawn the way neuroimagers read them: nilearn over the MNI template.

Every panel is an orthogonal view (sagittal, coronal, axial) with its MNI cut coordinates,
a colour bar and a title saying what is shown and from which threshold; signed maps are
centred on zero. A panel whose map could not be computed says why instead of staying
blank.
"""

from __future__ import annotations

import gc
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pandas as pd

from brainpad.report.figures import save_figure

TITLE_SIZE = 8


def empty_panel(ax: plt.Axes, title: str, reason: str) -> None:
    """A panel that says why it has no map."""
    ax.axis("off")
    ax.set_title(title, fontsize=TITLE_SIZE)
    ax.text(0.5, 0.5, reason, ha="center", va="center", fontsize=TITLE_SIZE, wrap=True,
            transform=ax.transAxes, color="0.3")  # fmt: skip


def _inside(image: nib.Nifti1Image, point_mm) -> bool:
    """Whether ``point_mm`` lies within the image's field of view."""
    corners = np.array(np.meshgrid(*[[0, n - 1] for n in image.shape[:3]])).reshape(3, -1)
    world = image.affine[:3, :3] @ corners + image.affine[:3, 3:]
    point = np.asarray(point_mm, float)
    return bool(np.all(point >= world.min(1)) and np.all(point <= world.max(1)))


def brain_panel(
    ax: plt.Axes,
    image: nib.Nifti1Image,
    template: nib.Nifti1Image,
    title: str,
    signed: bool = True,
    threshold: float | None = None,
    vmax: float | None = None,
    cut_coords: tuple[float, float, float] | None = None,
    cmap: str | None = None,
) -> None:
    """One orthogonal view of ``image`` over ``template`` in ``ax``.

    Parameters
    ----------
    signed : bool
        Diverging colours centred on zero (else 0 to ``vmax``, hot colours).
    threshold : float, optional
        |value| below which nothing is drawn (stated by the caller's title); by default
        only exact zeros (outside the brain) are left out, so the template shows there.
    vmax : float, optional
        Colour bar limit (default: the 99th percentile of |value| over non-zero voxels).
    cut_coords : tuple, optional
        MNI coordinates of the cuts (default: nilearn's choice, the map's centre of mass).
    cmap : str, optional
        Colour map (default: ``RdBu_r`` signed, ``hot`` otherwise).
    """
    from nilearn import plotting

    gc.freeze()  # nilearn collects garbage on every image it reads: see cli.common.freeze_gc
    if cut_coords is not None and not _inside(image, cut_coords):
        cut_coords = None  # not an MNI grid (a test's): nilearn's own choice
    data = np.nan_to_num(np.asarray(image.dataobj, dtype=np.float32))
    nonzero = np.abs(data[data != 0])
    if vmax is None:
        vmax = float(np.percentile(nonzero, 99)) if nonzero.size else 1.0
    plotting.plot_stat_map(
        nib.Nifti1Image(data, image.affine),
        bg_img=template,
        display_mode="ortho",
        cut_coords=cut_coords,
        threshold=1e-6 if threshold is None else threshold,
        vmax=vmax or 1.0,
        vmin=None if signed else 0.0,
        cmap=cmap or ("RdBu_r" if signed else "hot"),
        symmetric_cbar=signed,
        colorbar=True,
        annotate=True,
        draw_cross=False,
        black_bg=False,
        axes=ax,
        title=None,
    )
    ax.set_title(title, fontsize=TITLE_SIZE)


def relevance_figure(
    out_dir: str | Path,
    template_path: str | Path,
    methods: list[str],
    alpha: float,
    path: str | Path,
) -> None:
    """Per method: the healthy controls' mean absolute relevance, then each test's t map
    where its TFCE FWE p is below ``alpha`` (|t| > 2 when no voxel is).

    Reads what ``relevance`` and ``relevance-stats`` wrote under ``out_dir``.
    """
    from brainpad.paths import relevance_paths, stat_paths

    out_dir = Path(out_dir)
    template = nib.load(template_path)
    tests = pd.read_csv(out_dir / "tests.tsv", sep="\t")
    columns = 3
    per_method = 1 + int(tests.groupby("method").size().max())
    rows_per_method = int(np.ceil(per_method / columns))
    fig, axes = plt.subplots(
        rows_per_method * len(methods),
        columns,
        figsize=(4.6 * columns, 2.2 * rows_per_method * len(methods)),
        squeeze=False,
    )
    for ax in axes.ravel():
        ax.axis("off")
    for m, method in enumerate(methods):
        cells = iter(axes[m * rows_per_method : (m + 1) * rows_per_method].ravel())
        mean = nib.load(relevance_paths(out_dir, method)["mean_absolute"])
        brain_panel(
            next(cells), mean, template,
            f"{method}: healthy controls' mean |relevance|\n(1 = uniform share; above 1 shown)",
            signed=False, threshold=1.0,
        )  # fmt: skip
        for test in tests[tests["method"] == method].itertuples():
            ax = next(cells)
            versus = f"{test.first} vs {test.second}" if isinstance(test.second, str) else (
                f"{test.first} above uniform"
            )  # fmt: skip
            title = f"{method}: {versus} (n {test.n_first}"
            title += f", {test.n_second})" if test.n_second else ")"
            if pd.isna(test.max_abs_t):
                empty_panel(ax, title, "not computed: fewer than 3 scans in a group")
                continue
            paths = stat_paths(out_dir, method, test.test)
            t_img, p_img = nib.load(paths["t"]), nib.load(paths["p_fwe"])
            t = np.asarray(t_img.dataobj)
            p = np.asarray(p_img.dataobj)
            significant = (p < alpha) & (p > 0)
            if significant.any():
                shown = nib.Nifti1Image(np.where(significant, t, 0.0), t_img.affine)
                title += f"\nt where TFCE FWE p < {alpha:g} ({int(significant.sum())} voxels)"
                threshold = None  # the significant voxels only (the others are 0)
            else:
                shown, threshold = t_img, 2.0
                title += f"\n|t| > 2; none at FWE p < {alpha:g} (min p {test.min_p_fwe:.2f})"
            brain_panel(ax, shown, template, title, signed=True, threshold=threshold)
    save_figure(fig, path, dpi=100)


def example_scan(folds: pd.DataFrame, maps_dir: str | Path) -> tuple[str, Path] | None:
    """The local figure's example: the first held-out patient's corrected brain-PAD map
    (else the first test control's), labelled with participant, group and age; None when
    ``folds`` names neither."""
    from brainpad.paths import map_paths
    from brainpad.stats.tables import baseline_scans

    if "qc_passed" in folds:
        folds = folds[folds["qc_passed"].astype(bool)]
    people = baseline_scans(folds)
    for role in ("clinical", "test"):
        chosen = people[people["role"] == role] if "role" in people else people.iloc[0:0]
        if len(chosen):
            scan = chosen.iloc[0]
            path = map_paths(maps_dir, scan.scan_id)["brainPADcorrected"]
            return f"{scan.participant_id} ({scan.group}, {scan.age:.0f} y)", path
    return None


LOCAL_CUTS = (-24.0, -20.0, -14.0)
"""The local maps' cuts (MNI mm): through the left hippocampus and amygdala, where study 1
found the largest effects."""


def local_maps_figure(
    statmaps_dir: str | Path,
    template_path: str | Path,
    control_group: str,
    path: str | Path,
    truth_dir: str | Path | None = None,
    example: tuple[str, str | Path] | None = None,
) -> None:
    """Study 1's maps over the template: per patient group its mean corrected brain-PAD,
    Welch t and Cohen's d against the controls and (simulated data) the true map; the ICC
    maps; and one example scan's corrected brain-PAD map (``example``: its label and NIfTI
    path)."""
    from brainpad.local.measures import REPEAT_UNKNOWN
    from brainpad.local.statistics import read_mean_maps, statmap_path
    from brainpad.local.truth import read_true_map

    template = nib.load(template_path)

    def image(values: np.ndarray) -> nib.Nifti1Image:
        return nib.Nifti1Image(np.asarray(values, np.float32), template.affine)

    panels: list[list[tuple[str, nib.Nifti1Image | None, dict]]] = []
    signed = {"signed": True, "cut_coords": LOCAL_CUTS}
    for group, mean_map in read_mean_maps(statmaps_dir).items():
        if group == control_group:
            continue
        d_path = statmap_path(statmaps_dir, f"group-{group}_vs_{control_group}", "d")
        t_path = statmap_path(statmaps_dir, f"group-{group}_vs_{control_group}", "t")
        row = [
            (f"{group}: mean corrected brain-PAD (y)", image(mean_map), signed),
            (
                f"{group} vs older {control_group}: Welch t, |t| > 2",
                nib.load(t_path) if t_path.is_file() else None,
                {**signed, "threshold": 2.0},
            ),
            (
                f"{group} vs older {control_group}: Cohen's d, |d| > 0.2",
                nib.load(d_path) if d_path.is_file() else None,
                {**signed, "threshold": 0.2},
            ),
        ]
        if truth_dir is not None:
            true_map = read_true_map(truth_dir, group, template)
            row.append((f"{group}: simulated true brain-PAD (y)",
                        None if true_map is None else image(true_map), signed))  # fmt: skip
        panels.append(row)
    last = [
        (f"ICC(2,1) {kind} (0-1)", nib.load(p), {"signed": False, "vmax": 1.0,
                                                "cmap": "viridis", "cut_coords": LOCAL_CUTS})
        for kind in ("test-retest", "between-site", REPEAT_UNKNOWN)
        if (p := statmap_path(statmaps_dir, f"icc-{kind}", "icc")).is_file()
    ]  # fmt: skip
    if example is not None:
        label, example_path = example
        last.append((f"one scan, {label}: corrected brain-PAD (y)", nib.load(example_path),
                     signed))  # fmt: skip
    if last:
        panels.append(last)
    columns = max((len(r) for r in panels), default=1)
    rows = max(len(panels), 1)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 2.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, row in enumerate(panels):
        for c, (title, shown, options) in enumerate(row):
            if shown is None:
                empty_panel(axes[r, c], title, "not computed: too few scans or no true map")
            else:
                brain_panel(axes[r, c], shown, template, title, **options)
    if not panels:
        empty_panel(axes[0, 0], "local brain-PAD maps", "no patient group and no repeat scans")
    save_figure(fig, path, dpi=100)
