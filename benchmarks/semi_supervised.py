"""Does unlabelled data help ``diffae``? Healthy-test MAE with and without the unlabelled scans.

On a finished run (its ``results/folds.tsv`` and T1w arrays), trains ``diffae`` on every
fold twice per seed: once with the run's unlabelled scans (participants whose age
participants.tsv withholds) in its training batches, once without them; the labelled
scans, folds, settings and seeds are the same. Each variant's healthy-test brain age is
the mean over its fold models (as the ensemble stage averages them), scored against the
test participants' ages (raw predictions, as ``accuracy.tsv``). Prints one markdown row
per seed and the mean difference with its SD over seeds (negative: the unlabelled scans
helped).

Usage: python benchmarks/semi_supervised.py --results results [--seeds 1 2 3]
       [--config config/config.yaml] [--max-epochs N] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from configured import REPO, model_params

from brainpad.cohort.folds import fold_count
from brainpad.paths import array_files
from brainpad.training.fold import train_fold


def test_mae(folds: pd.DataFrame, results: Path, params: dict, seed: int, out: Path) -> float:
    """Healthy-test MAE of ``diffae`` trained on every fold of ``folds`` with ``seed``."""
    arrays = array_files(results / "arrays", "t1w")
    folds_path = out / "folds.tsv"
    folds.to_csv(folds_path, sep="\t", index=False)
    tables = []
    for fold in range(fold_count(folds)):
        tables.append(
            train_fold(
                "diffae",
                fold,
                folds_path,
                params,
                seed,
                out / f"pred-{fold}.tsv",
                out / f"model-{fold}.pt",
                volumes_path=arrays["volumes"],
                index_path=arrays["index"],
                checkpoint=out / f"checkpoint-{fold}.pt",
            )
        )
    predicted = pd.concat(tables).groupby("scan_id")["predicted"].mean()
    test = folds[folds["role"] == "test"].drop_duplicates("participant_id")
    return float(np.abs(predicted.loc[test["scan_id"]].to_numpy() - test["age"]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--config", type=Path, default=REPO / "config/config.yaml")
    parser.add_argument("--max-epochs", type=int, help="override the config's (and patience)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folds = pd.read_csv(args.results / "folds.tsv", sep="\t")
    unlabelled = folds["role"] == "unlabelled"
    if not unlabelled.any():
        msg = f"{args.results}/folds.tsv has no unlabelled scan: run with `unlabelled: use`"
        raise SystemExit(msg)
    params = model_params(args.config, "diffae", args.max_epochs)
    print(
        f"diffae, {fold_count(folds)} folds, {int((folds['role'] == 'train').sum())} labelled "
        f"training scans, {int(unlabelled.sum())} unlabelled; "
        f"{params['max_epochs']} epochs; healthy-test MAE (y)"
    )
    print("| seed | with unlabelled | without | difference |")
    print("|---|---|---|---|")
    differences = []
    for seed in args.seeds:
        maes = []
        for variant in (folds, folds[~unlabelled]):
            with tempfile.TemporaryDirectory() as out:
                maes.append(
                    test_mae(variant.reset_index(drop=True), args.results, params, seed, Path(out))
                )
        differences.append(maes[0] - maes[1])
        print(f"| {seed} | {maes[0]:.2f} | {maes[1]:.2f} | {differences[-1]:+.2f} |")
    spread = np.std(differences, ddof=1) if len(differences) > 1 else float("nan")
    n = len(differences)
    print(f"mean difference {np.mean(differences):+.2f} y (SD {spread:.2f} over {n} seeds)")


if __name__ == "__main__":
    main()
