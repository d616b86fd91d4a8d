"""Training on one cross-validation fold (``brainpad train``), for any registered model.

Fold ``f`` of model ``m`` trains on the training controls outside fold ``f`` and predicts

* ``oof``: the training controls in fold ``f`` (out-of-fold, for stacking), and
* ``heldout``: every calibration, test and clinical scan that passed QC (the ensemble
  averages these over the K fold models).

Image models also set aside a ``validation`` part of their training participants (every
n-th by age) for early stopping, so the out-of-fold predictions stay untouched by model
selection. Networks train on CUDA when present, else on the CPU, from one seed; a
checkpoint is written after every epoch and a re-run job resumes from it, provided the
data, fold and settings are unchanged (a signature in the checkpoint says so).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from brainpad.atomic import write_table_atomic
from brainpad.cohort.folds import fold_count
from brainpad.models import get_spec, ridge_roi
from brainpad.training.loop import network_fold, network_state, run_epochs, save_atomic

log = logging.getLogger(__name__)
HELDOUT_ROLES = ("calibration", "test", "clinical")


def fold_sets(folds: pd.DataFrame, fold: int, validation_fraction: float = 0.0) -> pd.Series:
    """What each scan is for when training fold ``fold``.

    Parameters
    ----------
    folds : DataFrame
        ``results/folds.tsv`` (``scan_id, participant_id, age, role, fold, qc_passed``).
    fold : int
        The fold left out.
    validation_fraction : float
        Share of the training participants set aside for early stopping (0: none).

    Returns
    -------
    Series
        Indexed like ``folds``: ``train``, ``validation``, ``oof``, ``heldout`` or ``""``
        (not used: failed QC or excluded).
    """
    k = fold_count(folds)
    if not 0 <= fold < k:
        msg = f"fold {fold} does not exist: folds.tsv has folds 0..{k - 1}"
        raise ValueError(msg)
    sets = pd.Series("", index=folds.index, dtype=object)
    training = folds["role"] == "train"
    sets[training & (folds["fold"] == fold)] = "oof"
    sets[training & (folds["fold"] != fold)] = "train"
    sets[folds["role"].isin(HELDOUT_ROLES) & folds["qc_passed"].astype(bool)] = "heldout"
    if validation_fraction > 0:
        people = (
            folds[sets == "train"]
            .drop_duplicates("participant_id")
            .sort_values(["age", "participant_id"])["participant_id"]
            .to_numpy()
        )
        step = max(2, round(1 / validation_fraction))
        chosen = people[fold % step :: step]
        sets[(sets == "train") & folds["participant_id"].isin(chosen)] = "validation"
    return sets


def fit_network(
    net,
    volumes: np.ndarray,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    params: dict,
    seed: int,
    device,
    checkpoint: Path,
    signature: str,
) -> tuple[dict, list[dict], float, float]:
    """Train a whole-brain network (one age per scan) with MAE loss and Adam.

    Parameters
    ----------
    net : torch.nn.Module
        Network whose output is age in standard units of the training set.
    volumes : ndarray
        The cohort volume array (memory-mapped; read batch by batch).
    train, validation : (rows, ages)
        Array rows and ages of the training and early-stopping scans.
    params : dict
        ``batch_size, learning_rate, max_epochs, patience``.
    seed : int
        Seed of the batch order (per epoch, so a resumed run sees the same batches).
    device : torch.device
        Where to train.
    checkpoint, signature
        See :func:`run_epochs`.

    Returns
    -------
    best_state, history, age_mean, age_sd
        Weights of the best validation epoch, per-epoch figures, and the age scaling.
    """
    import torch

    from brainpad.training.inference import load_batch, predict_network

    rows, ages = train
    age_mean, age_sd = float(ages.mean()), float(ages.std()) or 1.0
    optimiser = torch.optim.Adam(net.parameters(), lr=params["learning_rate"])
    batch_size = params["batch_size"]

    def train_epoch(epoch: int) -> float:
        order = np.random.default_rng([seed, epoch]).permutation(len(rows))
        total = 0.0
        for i in range(0, len(order), batch_size):
            pick = order[i : i + batch_size]
            x = load_batch(volumes, rows[pick], device)
            y = torch.as_tensor(
                (ages[pick] - age_mean) / age_sd, dtype=torch.float32, device=device
            )
            loss = torch.nn.functional.l1_loss(net(x), y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(pick)
        return total / len(rows) * age_sd

    def validate() -> dict[str, float]:
        predicted = predict_network(net, volumes, validation[0], batch_size, device)
        return {
            "validation_mae": float(np.abs(predicted * age_sd + age_mean - validation[1]).mean())
        }

    best, history = run_epochs(
        net, optimiser, train_epoch, validate, params, checkpoint, signature, device
    )
    return best, history, age_mean, age_sd


def _train_image(
    name: str,
    folds: pd.DataFrame,
    sets: pd.Series,
    volumes_path: str | Path,
    index_path: str | Path,
    params: dict,
    seed: int,
    fold: int,
    device_name: str,
    checkpoint: Path,
) -> tuple[pd.DataFrame, dict]:
    from brainpad.models import vgg3d
    from brainpad.training.inference import predict_network

    builders = {"vgg3d": vgg3d.build}
    data = network_fold(
        name, folds, sets, volumes_path, index_path, params, seed, fold, device_name
    )
    volumes, part, device = data.volumes, data.part, data.device
    net = builders[name](volumes.shape[1], volumes.shape[2:], params).to(device)
    log.info(
        "%s fold %d on %s: %d training, %d validation scans, input %s",
        name,
        fold,
        device,
        len(part["train"][0]),
        len(part["validation"][0]),
        volumes.shape[1:],
    )
    best, history, age_mean, age_sd = fit_network(
        net,
        volumes,
        part["train"],
        part["validation"],
        params,
        seed,
        device,
        checkpoint,
        data.signature,
    )
    net.load_state_dict(best)
    use = sets.isin(["oof", "heldout"]).to_numpy()
    predicted = predict_network(net, volumes, data.rows[use], params["batch_size"], device)
    table = folds.loc[use, ["scan_id"]].assign(predicted=predicted * age_sd + age_mean)
    state = network_state(
        name,
        "image",
        params,
        best,
        age_mean,
        age_sd,
        history,
        in_channels=int(volumes.shape[1]),
        input_shape=[int(s) for s in volumes.shape[2:]],
    )
    return table, state


def train_fold(
    name: str,
    fold: int,
    folds_path: str | Path,
    params: dict,
    seed: int,
    predictions_path: str | Path,
    state_path: str | Path,
    roi_path: str | Path | None = None,
    volumes_path: str | Path | None = None,
    index_path: str | Path | None = None,
    checkpoint: str | Path | None = None,
    device: str = "auto",
    mask_path: str | Path | None = None,
    maps_path: str | Path | None = None,
) -> pd.DataFrame:
    """Train model ``name`` on fold ``fold``; write its predictions and its state.

    Parameters
    ----------
    name : str
        A registered model (:data:`brainpad.models.REGISTRY`).
    fold : int
        Fold left out.
    folds_path : path
        ``results/folds.tsv``.
    params : dict
        The model's config section (``models.<name>``).
    seed : int
        The workflow seed.
    predictions_path : path
        TSV written: ``scan_id, model, fold, set, predicted`` for oof and held-out scans.
    state_path : path
        ``.pt`` with the fitted model (plain tensors and lists; loads with
        ``weights_only=True``).
    roi_path : path, optional
        ROI volume table (tabular models).
    volumes_path, index_path : path, optional
        Cohort arrays (image models).
    checkpoint : path, optional
        Per-epoch checkpoint of image models (default: next to ``state_path``); removed
        once the fold has finished.
    device : str
        ``auto``, ``cpu``, ``cuda``, ``cuda:1``...
    mask_path, maps_path : path, optional
        Voxel models: the template brain mask, and the ``.npy`` of brain-age maps written
        for the out-of-fold and held-out scans (rows as in the predictions).
    """
    spec = get_spec(name)
    folds = pd.read_csv(folds_path, sep="\t")
    validation = params.get("validation_fraction", 0.0) if spec.kind != "tabular" else 0.0
    sets = fold_sets(folds, fold, validation)
    checkpoint = Path(checkpoint or Path(state_path).with_suffix(".checkpoint.pt"))
    if spec.kind == "tabular":
        features = pd.read_csv(roi_path, sep="\t").set_index("scan_id")
        features = features.loc[folds["scan_id"]].reset_index(drop=True)
        train = (sets == "train").to_numpy()
        state = ridge_roi.fit(
            features[train], folds["age"].to_numpy(float)[train], params["alphas"]
        )
        state.update(model=name, kind="tabular", params=params)
        use = sets.isin(["oof", "heldout"]).to_numpy()
        table = folds.loc[use, ["scan_id"]].assign(
            predicted=ridge_roi.predict(state, features[use])
        )
        log.info("%s fold %d: alpha %.3g on %d scans", name, fold, state["alpha"], train.sum())
    elif spec.kind == "image":
        table, state = _train_image(
            name, folds, sets, volumes_path, index_path, params, seed, fold, device, checkpoint
        )
    else:
        from brainpad.training.voxel import train_local

        table, state = train_local(
            folds,
            sets,
            volumes_path,
            index_path,
            mask_path,
            maps_path,
            params,
            seed,
            fold,
            device,
            checkpoint,
        )
    table.insert(1, "model", name)
    table.insert(2, "fold", fold)
    table.insert(3, "set", sets[table.index].to_numpy())
    save_atomic(state, Path(state_path))
    write_table_atomic(table, predictions_path)
    if spec.kind != "tabular":
        checkpoint.unlink(missing_ok=True)
    oof = table[table["set"] == "oof"]
    age = folds.set_index("scan_id").loc[oof["scan_id"], "age"].to_numpy()
    log.info(
        "%s fold %d: out-of-fold MAE %.2f y on %d scans",
        name,
        fold,
        np.abs(oof["predicted"].to_numpy() - age).mean(),
        len(oof),
    )
    return table
