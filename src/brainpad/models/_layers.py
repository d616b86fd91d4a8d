"""Pieces shared by the network modules (not a model: the registry skips ``_`` modules)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def input_pool(downsample: int, shape: Sequence[int], dims: int = 3) -> tuple[list, list[int]]:
    """Average pooling of the input by ``downsample`` (none for 1), and the pooled shape.

    A cheap way to train at a coarser resolution, e.g. on a CPU: 2 halves every edge.
    """
    if downsample <= 1:
        return [], list(shape)
    pool = nn.AvgPool3d if dims == 3 else nn.AvgPool2d
    return [pool(downsample, ceil_mode=True)], [math.ceil(s / downsample) for s in shape]


def bias_at_zero(layer: nn.Linear | nn.Conv3d) -> None:
    """Start an output layer's bias at 0: the training mean age in standard units (study 3)."""
    nn.init.zeros_(layer.bias)


def mae_loss(
    output: torch.Tensor, batch, step: int, params: dict
) -> tuple[torch.Tensor, torch.Tensor]:
    """MAE of the predicted ages (standard units); it is also the reported training MAE."""
    mae = nn.functional.l1_loss(output, batch.y)
    return mae, mae


def age_itself(output: torch.Tensor) -> torch.Tensor:
    """The output is the age itself (standard units), one per scan."""
    return output
