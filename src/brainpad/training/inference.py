"""Inference helpers shared by training and ``brainpad predict``: device and batched forward."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


def select_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; or an explicit torch device name."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_batch(volumes: np.ndarray, rows: Sequence[int], device: torch.device) -> torch.Tensor:
    """Rows of the (memory-mapped) volume array as a float32 tensor on ``device``.

    Rows are read in ascending order (fast on a memmap) and put back in the asked order.
    """
    rows = np.asarray(rows)
    order = np.argsort(rows, kind="stable")
    batch = np.empty((len(rows), *volumes.shape[1:]), dtype=np.float32)
    batch[order] = volumes[rows[order]]
    return torch.from_numpy(batch).to(device)


@torch.no_grad()
def predict_network(
    net: nn.Module,
    volumes: np.ndarray,
    rows: Sequence[int],
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """Network outputs for ``rows`` of ``volumes``, in eval mode, batch by batch."""
    net.eval()
    rows = list(rows)
    out = [
        net(load_batch(volumes, rows[i : i + batch_size], device)).float().cpu().numpy()
        for i in range(0, len(rows), batch_size)
    ]
    return np.concatenate(out) if out else np.empty(0, dtype=np.float32)
