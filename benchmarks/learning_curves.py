"""Learning curves: each model's healthy MAE against the number of training controls.

Reads a run of a large simulated cohort of healthy controls prepared by the workflow up to
its arrays and ROI volumes (``benchmarks/learning_curves.yaml``; the command below). A
fixed evaluation set of controls (``--eval``) is set aside; each model is trained on the
first N of the other controls (nested sets: the 30 are among the 100) with the settings of
``--config`` and scored on the evaluation set: MAE with its bootstrap 95 % interval (BCa,
over people), r, and its ratio to the simulation's floor on the same people (mean
\\|biological - chronological age\\|). Models named in ``--syn`` are trained a second time
on the T1w warped by affine + SyN (``<model>@syn``), the rest read what the workflow
gives them (the T1w through the affine only). A model named ``<model>:key=value,...`` is
trained with those settings changed (``cnn3d-t1w:standardise=false``), to measure what a
setting costs. Prints a markdown table, writes it as TSV and draws the curves.

Usage:
  .venv/bin/snakemake -s Snakefile --profile profiles/local \\
      --configfile config/config.yaml benchmarks/learning_curves.yaml \\
      --directory lc --until build_arrays roi_volumes --cores 2
  python benchmarks/learning_curves.py --results lc/results --sizes 30 100 300 \\
      --models ridge_roi sfcn-t1w cnn3d-t1w --syn sfcn-t1w cnn3d-t1w [--eval 100]
      [--config config/config.yaml] [--max-epochs N] [--threads 2] [--out lc/curves]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from configured import REPO, model_params

from brainpad.cohort.arrays import build_arrays
from brainpad.models import get_spec, parse_base_model
from brainpad.paths import array_files, preproc_paths, template_files
from brainpad.stats.measures import bootstrap_interval, mean_ratio
from brainpad.training.fold import train_fold


def syn_arrays(results: Path, folds: pd.DataFrame) -> Path:
    """T1w arrays built from the affine + SyN T1w (``desc-preproc``) instead of the affine
    one, on the same crop (the GM and WM maps set it), under ``<results>/arrays_syn``."""
    out = results / "arrays_syn"
    if array_files(out, "t1w")["volumes"].is_file():
        return out
    out.mkdir(exist_ok=True)
    paths = [preproc_paths(results / "preproc", s) for s in folds["scan_id"]]
    scans = pd.DataFrame(
        {
            "scan_id": folds["scan_id"],
            "GM": [p["gm"] for p in paths],
            "WM": [p["wm"] for p in paths],
            "T1w": [p["t1_syn"] for p in paths],
        }
    )
    build_arrays(scans, out, ["t1w"])
    return out


def variant(label: str, config: Path, max_epochs: int | None) -> tuple[str, dict]:
    """A model label's base model and settings: the config's, changed by the label's
    ``:key=value,...`` part (values read as YAML) and without its ``@syn`` tag."""
    name, _, changes = label.split("@")[0].partition(":")
    params = model_params(config, get_spec(name).name, max_epochs)
    for change in filter(None, changes.split(",")):
        key, _, value = change.partition("=")
        params[key] = yaml.safe_load(value)
    return name, params


def design(folds: pd.DataFrame, n_eval: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The controls that passed QC, one scan each, in a seeded random order; the first
    ``n_eval`` form the evaluation set (role ``test``), the rest the training pool."""
    controls = folds[folds["role"].isin(["train", "calibration", "test"])]
    controls = controls[controls["qc_passed"].astype(bool)]
    controls = controls.sort_values("scan_id").drop_duplicates("participant_id")
    order = np.random.default_rng(seed).permutation(len(controls))
    controls = controls.iloc[order].reset_index(drop=True)
    if len(controls) <= n_eval:
        msg = f"{len(controls)} controls: too few for an evaluation set of {n_eval}"
        raise SystemExit(msg)
    return controls, np.arange(len(controls)) >= n_eval


def training_table(controls: pd.DataFrame, pool: np.ndarray, n: int) -> pd.DataFrame:
    """folds.tsv for one size: the first ``n`` of the pool train (fold 1, so that fold 0,
    the one trained, leaves none of them out), the evaluation set is held out."""
    chosen = pool & (np.cumsum(pool) <= n)
    table = controls[chosen | ~pool].copy()
    table["role"] = np.where(chosen[chosen | ~pool], "train", "test")
    table["fold"] = np.where(table["role"] == "train", 1, -1)
    return table.reset_index(drop=True)


def train_and_predict(
    name: str,
    table: pd.DataFrame,
    results: Path,
    arrays: Path,
    params: dict,
    seed: int,
    voxel: float,
) -> pd.Series:
    """``name`` trained on ``table``'s training controls (the templates at ``voxel`` mm);
    its evaluation predictions."""
    spec, base = get_spec(name), parse_base_model(name)
    templates = template_files(results / "templates", voxel)
    files = array_files(arrays, base.input)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        table.to_csv(out / "folds.tsv", sep="\t", index=False)
        data = {}
        if spec.reads == "roi":
            data["roi_path"] = results / "regions/roi_volumes.tsv"
        else:
            key = "slices_path" if spec.reads == "slices" else "volumes_path"
            data[key] = files["slices" if spec.reads == "slices" else "volumes"]
            data["index_path"] = files["index"]
            data["regions_path"] = templates["regions"]
        if spec.kind == "voxel":
            data.update(mask_path=templates["mask"], maps_path=out / "maps.npy")
        predicted = train_fold(
            name, 0, out / "folds.tsv", params, seed, out / "predictions.tsv", out / "model.pt",
            checkpoint=out / "checkpoint.pt", device="cpu", **data,
        )  # fmt: skip
    return predicted.set_index("scan_id")["predicted"]


def voxel_size(results: Path) -> float:
    """The working voxel of a run, from its templates' names."""
    name = next((results / "templates").glob("*_desc-brain_mask.nii.gz")).name
    return float(name.split("_res-")[1].split("mm")[0].replace("p", "."))


def score(evaluation: pd.DataFrame, predicted: pd.Series, floor: np.ndarray, seed: int) -> dict:
    """MAE with its interval, r, and the ratio to the floor with its interval."""
    age = evaluation["age"].to_numpy(float)
    error = np.abs(predicted.loc[evaluation["scan_id"]].to_numpy() - age)
    mae_low, mae_high = bootstrap_interval(np.mean, (error,), seed)
    ratio_low, ratio_high = bootstrap_interval(mean_ratio, (error, floor), seed)
    return {
        "mae": error.mean(),
        "mae_low": mae_low,
        "mae_high": mae_high,
        "r": np.corrcoef(predicted.loc[evaluation["scan_id"]], age)[0, 1],
        "x_floor": error.mean() / floor.mean(),
        "x_floor_low": ratio_low,
        "x_floor_high": ratio_high,
    }


def plot(table: pd.DataFrame, path: Path) -> None:
    """MAE against training controls, one line per model (95 % intervals as bars); a
    model's ``@syn`` run dashed in its colour. The floor is read back from the table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    floor = float((table["mae"] / table["x_floor"]).mean())
    bases = list(dict.fromkeys(m.split("@")[0] for m in table["model"]))
    colours = dict(zip(bases, plt.get_cmap("tab20").colors[::2] * 2, strict=False))
    fig, ax = plt.subplots(figsize=(8.5, 4.6))
    for model, rows in table.groupby("model", sort=False):
        mae, low, high = (rows[c].to_numpy(float) for c in ("mae", "mae_low", "mae_high"))
        style = "--" if model.endswith("@syn") else "-"
        ax.errorbar(rows["n_train"].to_numpy(), mae, yerr=[mae - low, high - mae],
                    fmt="o" + style, capsize=3, label=model,
                    color=colours[model.split("@")[0]])  # fmt: skip
    ax.axhline(floor, color="k", lw=1, label="simulation's floor")
    ax.axhline(1.5 * floor, color="k", lw=1, ls=":", label="1.5 x floor")
    sizes = sorted(table["n_train"].unique())
    ax.set(xscale="log", xlabel="training controls", ylabel="healthy MAE (y), 95 % CI")
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(sizes, labels=[str(n) for n in sizes])
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("lc/results"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[30, 100, 300])
    parser.add_argument("--models", nargs="+", default=["ridge_roi", "sfcn-t1w", "cnn3d-t1w"])
    parser.add_argument("--syn", nargs="*", default=[], help="also trained on SyN-warped T1w")
    parser.add_argument("--eval", type=int, default=100, help="controls in the evaluation set")
    parser.add_argument("--config", type=Path, default=REPO / "config/config.yaml")
    parser.add_argument("--max-epochs", type=int, help="override the config's (and patience)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="TSV and PNG prefix (default <results>/..)")
    parser.add_argument("--replot", type=Path, help="only redraw the figure of this TSV")
    args = parser.parse_args()
    if args.replot:
        plot(pd.read_csv(args.replot, sep="\t"), args.replot.with_suffix(".png"))
        return
    torch.set_num_threads(args.threads)
    folds = pd.read_csv(args.results / "folds.tsv", sep="\t")
    controls, pool = design(folds, args.eval, args.seed)
    evaluation = controls[~pool]
    truth = args.results / "simulated/derivatives/simulation/subjects.tsv"
    offset = pd.read_csv(truth, sep="\t").set_index("participant_id")["bio_age_offset"]
    floor = offset.loc[evaluation["participant_id"]].abs().to_numpy()
    sizes = [n for n in args.sizes if n <= pool.sum()]
    print(
        f"{len(evaluation)} evaluation controls (floor {floor.mean():.2f} y), training pool "
        f"{int(pool.sum())}, sizes {sizes}"
    )
    voxel = voxel_size(args.results)
    runs = [(m, args.results / "arrays") for m in args.models]
    runs += [(f"{m}@syn", syn_arrays(args.results, folds)) for m in args.syn]
    rows = []
    out = args.out or args.results.parent / "learning_curves"
    print("| model | N | MAE (95 % CI) | r | x floor (95 % CI) | minutes |")
    print("|---|---|---|---|---|---|")
    for label, arrays in runs:
        name, params = variant(label, args.config, args.max_epochs)
        for n in sizes:
            clock = time.perf_counter()
            table = training_table(controls, pool, n)
            predicted = train_and_predict(
                name, table, args.results, arrays, params, args.seed, voxel
            )
            minutes = (time.perf_counter() - clock) / 60
            row = {"model": label, "n_train": n, **score(evaluation, predicted, floor, args.seed)}
            rows.append({**row, "minutes": minutes})
            pd.DataFrame(rows).to_csv(f"{out}.tsv", sep="\t", index=False)  # a row at a time
            print(
                f"| {label} | {n} | {row['mae']:.2f} ({row['mae_low']:.2f}-{row['mae_high']:.2f})"
                f" | {row['r']:.2f} | {row['x_floor']:.2f} ({row['x_floor_low']:.2f}-"
                f"{row['x_floor_high']:.2f}) | {minutes:.1f} |",
                flush=True,
            )
    result = pd.DataFrame(rows)
    plot(result, Path(f"{out}.png"))
    print(f"-> {out}.tsv, {out}.png")


if __name__ == "__main__":
    main()
