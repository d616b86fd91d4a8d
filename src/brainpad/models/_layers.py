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


def conv_blocks(
    channels: int, widths: Sequence[int], shape: Sequence[int], dims: int = 3
) -> tuple[list, int, list[int]]:
    """Blocks of 3×3(×3) convolution + batch norm + ReLU + 2× max-pool, one per width.

    The VGG-style stem of ``vgg3d``, ``sfcn`` and ``cnn2d``. SFCN's paper pools before the
    ReLU; max-pooling and ReLU commute exactly, so the order changes nothing.

    Returns
    -------
    layers : list of nn.Module
    channels : int
        Channels after the last block.
    shape : list of int
        Spatial shape after the last block (pooling rounds up).
    """
    conv, norm, pool = (
        (nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d)
        if dims == 3
        else (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d)
    )
    layers: list[nn.Module] = []
    for width in widths:
        layers += [
            conv(channels, width, kernel_size=3, padding=1),
            norm(width),
            nn.ReLU(inplace=True),
            pool(kernel_size=2, ceil_mode=True),
        ]
        channels, shape = width, [math.ceil(s / 2) for s in shape]
    return layers, channels, list(shape)


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
