"""The one training loop of every network (:func:`run_epochs`).

Epochs with early stopping on a validation MAE, the learning-rate schedule, a checkpoint
after every epoch and resuming from it when its fingerprint (data, fold and settings)
matches. The loop knows nothing of a model but its ``loss`` and ``to_age``
(:mod:`brainpad.models`) and nothing of the data but a batch source
(:class:`brainpad.training.data.WholeScans`, :class:`brainpad.training.blocks.BlockBatches`).
On CUDA it runs mixed precision (``torch.autocast`` with gradient scaling); on the CPU
full precision, so CPU runs reproduce exactly.

Why not PyTorch Lightning: its ``Trainer`` would bring the loop, checkpoints and mixed
precision, but a resumed run must repeat an unbroken one bit for bit on the CPU (the
batch order and block draws are seeded by epoch and step here), the checkpoint must load
with ``weights_only=True``, and the workflow already owns devices, logging and retries;
the loop below is ~100 lines and keeps those guarantees testable
(``docs/architecture.md``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from tqdm import tqdm

from brainpad.atomic import atomic_path

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import ModuleType

    from brainpad.training.data import Batch

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


def learning_rate(base: float, step: int, total: int, decay: str = "none") -> float:
    """The learning rate at training step ``step`` of ``total``: constant, or cosine decay
    from ``base`` to 0 (steadier final epochs when training is short)."""
    if decay == "cosine" and total > 0:
        return base * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    return base


class BatchSource(Protocol):
    """What the loop needs of the training data (whole scans or blocks)."""

    steps_per_epoch: int
    age_sd: float

    def batches(self, epoch: int) -> Iterator[Batch]:
        """The training batches of ``epoch``, drawn from the epoch number (so a resumed
        run sees the same batches)."""

    def validate(self, net, to_age) -> dict[str, float]:
        """Validation figures (years) of the current weights; early stopping watches
        ``"validation_mae"``, any others go into the history beside it."""


def run_epochs(
    net,
    model: ModuleType,
    data: BatchSource,
    params: dict,
    device,
    checkpoint: Path,
    signature: str,
) -> tuple[dict, list[dict]]:
    """Train ``net`` with Adam and early stopping; checkpoint every epoch, resume.

    Parameters
    ----------
    net : torch.nn.Module
        The network, built by ``model.build`` and on ``device``.
    model : module
        The model module: its ``loss(output, batch, step, params)`` and ``to_age``.
    data : BatchSource
        Training batches per epoch and the validation figures.
    params : dict
        ``learning_rate, max_epochs, patience``, optionally ``lr_decay`` (``none`` or
        ``cosine``); the whole section goes to ``model.loss``.
    device : torch.device
        Where to train; CUDA turns on mixed precision.
    checkpoint : Path
        Written after every epoch; resumed from when its signature matches.
    signature : str
        Fingerprint of data, fold and settings (:func:`fingerprint`).

    Returns
    -------
    best_state, history
        Weights of the best validation epoch and per-epoch figures.
    """
    import torch

    base_lr = params["learning_rate"]
    optimiser = torch.optim.Adam(net.parameters(), lr=base_lr)
    mixed = device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=mixed)
    total_steps = params["max_epochs"] * data.steps_per_epoch
    decay = params.get("lr_decay", "none")

    def train_epoch(epoch: int) -> float:
        total, weight = 0.0, 0
        for i, batch in enumerate(data.batches(epoch)):
            step = epoch * data.steps_per_epoch + i
            for group in optimiser.param_groups:
                group["lr"] = learning_rate(base_lr, step, total_steps, decay)
            with torch.autocast(device.type, enabled=mixed):
                loss, mae = model.loss(net(batch.x), batch, step, params)
            optimiser.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            total += float(mae.detach()) * batch.weight
            weight += batch.weight
        return float(total / weight * data.age_sd)

    state = {"epoch": 0, "best_mae": float("inf"), "best_state": None, "bad": 0, "history": []}
    saved = load_checkpoint(checkpoint, device)
    if saved is not None:
        if saved.get("signature") == signature:
            net.load_state_dict(saved["net"])
            optimiser.load_state_dict(saved["optimiser"])
            scaler.load_state_dict(saved.get("scaler", {}))
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
        with torch.autocast(device.type, enabled=mixed):
            figures = data.validate(net, model.to_age)
        val_mae = figures["validation_mae"]
        if val_mae < state["best_mae"] - 1e-6:
            state.update(best_mae=val_mae, bad=0, best_state=copy.deepcopy(net.state_dict()))
        else:
            state["bad"] += 1
        seconds = time.perf_counter() - start
        state["history"].append(
            {"epoch": epoch + 1, "train_mae": train_mae, **figures, "seconds": seconds}
        )
        state["epoch"] = epoch + 1
        save_atomic(
            {
                "signature": signature,
                "net": net.state_dict(),
                "optimiser": optimiser.state_dict(),
                "scaler": scaler.state_dict(),
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
