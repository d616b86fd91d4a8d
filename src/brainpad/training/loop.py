"""The machinery every network shares: the epoch loop and the set-up of one fold.

:func:`run_epochs` runs epochs with early stopping on a validation MAE, writes a
checkpoint after every epoch and resumes from it when its fingerprint (data, fold and
settings) matches; :func:`network_fold` seeds torch, opens the cohort array and splits
its rows by what each scan is for (:func:`brainpad.training.fold.fold_sets`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from brainpad.atomic import atomic_path

log = logging.getLogger(__name__)


def save_atomic(obj: dict, path: Path) -> None:
    """``torch.save`` to a temporary name, then rename: readers never see half a file."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: Path, device) -> dict | None:
    """A checkpoint's contents, or None when there is none or it cannot be read.

    A corrupt or truncated checkpoint (a full disk, a copy cut short) is not fatal:
    training restarts from scratch with a warning that names the file.
    """
    import torch

    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
        if not isinstance(saved, dict):
            raise TypeError(f"holds a {type(saved).__name__}, not a checkpoint")
    except Exception as err:  # torch raises many types for damaged files
        log.warning(
            "checkpoint %s is unreadable (%s: %s); training this fold from scratch",
            path,
            type(err).__name__,
            str(err).strip().splitlines()[0] if str(err).strip() else "",
        )
        return None
    return saved


def fingerprint(*parts: object) -> str:
    """A hash of data, fold and settings: a checkpoint is resumed only when it matches."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def run_epochs(
    net,
    optimiser,
    train_epoch: Callable[[int], float],
    validate: Callable[[], dict[str, float]],
    params: dict,
    checkpoint: Path,
    signature: str,
    device,
) -> tuple[dict, list[dict]]:
    """The epoch loop shared by all networks: early stopping, checkpoints, resuming.

    Parameters
    ----------
    net, optimiser : torch objects
        What is trained; their states go into the checkpoint.
    train_epoch : callable
        ``train_epoch(epoch)`` runs one epoch and returns its training MAE (years). It
        must draw its randomness from the epoch number, so a resumed run repeats exactly.
    validate : callable
        Returns the validation figures (years) of the current weights: early stopping
        watches ``"validation_mae"``; any others go into the history beside it.
    params : dict
        ``max_epochs, patience``.
    checkpoint : Path
        Written after every epoch; resumed from when its signature matches.
    signature : str
        Fingerprint of data, fold and settings.
    device : torch.device
        Where the checkpoint's tensors are loaded.

    Returns
    -------
    best_state, history
        Weights of the best validation epoch and per-epoch figures.
    """
    import torch

    state = {"epoch": 0, "best_mae": float("inf"), "best_state": None, "bad": 0, "history": []}
    saved = load_checkpoint(checkpoint, device)
    if saved is not None:
        if saved.get("signature") == signature:
            net.load_state_dict(saved["net"])
            optimiser.load_state_dict(saved["optimiser"])
            torch.set_rng_state(saved["torch_rng"])
            state = saved["state"]
            log.info("resuming from %s after epoch %d", checkpoint, state["epoch"])
        else:
            log.info("ignoring %s: it belongs to other data or settings", checkpoint)
    epochs = range(state["epoch"], params["max_epochs"])
    bar = tqdm(epochs, desc="epochs", disable=not sys.stderr.isatty())
    for epoch in bar:
        if state["bad"] >= params["patience"]:
            break
        start = time.perf_counter()
        net.train()
        train_mae = train_epoch(epoch)
        figures = validate()
        val_mae = figures["validation_mae"]
        if val_mae < state["best_mae"] - 1e-6:
            state.update(best_mae=val_mae, bad=0, best_state=copy.deepcopy(net.state_dict()))
        else:
            state["bad"] += 1
        seconds = time.perf_counter() - start
        state["history"].append(
            {
                "epoch": epoch + 1,
                "train_mae": train_mae,
                **figures,
                "seconds": seconds,
            }
        )
        state["epoch"] = epoch + 1
        save_atomic(
            {
                "signature": signature,
                "net": net.state_dict(),
                "optimiser": optimiser.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "state": state,
            },
            checkpoint,
        )
        log.info(
            "epoch %d: train MAE %.2f y, validation MAE %.2f y (best %.2f), %.1f s",
            epoch + 1,
            train_mae,
            val_mae,
            state["best_mae"],
            seconds,
        )
        bar.set_postfix(val_mae=f"{val_mae:.2f}")
    return state["best_state"], state["history"]


def network_state(
    model: str,
    kind: str,
    params: dict,
    best: dict,
    age_mean: float,
    age_sd: float,
    history: list[dict],
    **extra: object,
) -> dict:
    """What a fitted network's ``model.pt`` holds (plain values and CPU tensors, so it
    loads with ``torch.load(..., weights_only=True)``).

    ``best`` is the kept epoch's state dict, ``history`` the per-epoch figures of
    :func:`run_epochs`; ``best_epoch`` (1-based) is the epoch with the lowest validation
    MAE. ``extra`` adds what rebuilding the network needs (shapes, block geometry).
    """
    return {
        "model": model,
        "kind": kind,
        "params": params,
        **extra,
        "state_dict": {k: v.cpu() for k, v in best.items()},
        "age_mean": age_mean,
        "age_sd": age_sd,
        # per-epoch figures as plain numbers, without their timing and with interned keys
        # (pickle shares equal objects by identity; epochs read back from a checkpoint
        # have their own key strings), so that a resumed run writes an unbroken run's bytes
        "history": [
            {
                sys.intern(k): int(v) if k == "epoch" else float(v)
                for k, v in h.items()
                if k != "seconds"
            }
            for h in history
        ],
        "best_epoch": int(np.argmin([h["validation_mae"] for h in history])) + 1,
    }


@dataclass
class NetworkFold:
    """What every network needs to train one fold: device, data, parts and fingerprint."""

    device: object
    volumes: np.ndarray
    index: pd.DataFrame
    rows: np.ndarray
    part: dict[str, tuple[np.ndarray, np.ndarray]]
    signature: str


def network_fold(
    name: str,
    folds: pd.DataFrame,
    sets: pd.Series,
    volumes_path: str | Path,
    index_path: str | Path,
    params: dict,
    seed: int,
    fold: int,
    device_name: str,
) -> NetworkFold:
    """Seed torch, open the cohort array (memory-mapped) and split its rows by set.

    ``part`` maps each set (``train``, ``validation``, ``oof``, ``heldout``) to its array
    rows and ages; without validation scans, early stopping watches the training scans.
    """
    import torch

    from brainpad.training.inference import select_device

    device = select_device(device_name)
    torch.manual_seed(seed * 1000 + fold)
    torch.use_deterministic_algorithms(True, warn_only=True)
    volumes = np.load(volumes_path, mmap_mode="r")
    index = pd.read_csv(index_path, sep="\t")
    rows = folds["scan_id"].map(index.set_index("scan_id")["row"]).to_numpy()
    ages = folds["age"].to_numpy(dtype=float)
    part = {s: (rows[sets.to_numpy() == s], ages[sets.to_numpy() == s]) for s in sets.unique()}
    if "validation" not in part or len(part["validation"][0]) == 0:
        part["validation"] = part["train"]
        log.warning("no validation scans: early stopping watches the training scans")
    stat = os.stat(volumes_path)
    signature = fingerprint(
        name,
        fold,
        seed,
        params,
        rows.tolist(),
        ages.tolist(),
        sets.tolist(),
        stat.st_size,
        stat.st_mtime_ns,
    )
    return NetworkFold(device, volumes, index, rows, part, signature)
