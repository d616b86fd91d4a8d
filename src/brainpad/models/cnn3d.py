"""``cnn3d``: the base model of study 3's multi-level ensembles (``SCIENCE.md`` §3).

Five blocks of 3D convolution (16, 16, 32, 64, 32 filters; kernels 3, 3, 3, 3, 1) with
leaky ReLU (0.2) and max-pooling (size 3, stride 2); then flatten, dropout 0.5, a dense
layer of 64 units and a linear output whose bias starts at the training mean age (0 in the
trainer's standard units). Loss: mean squared error; the paper trains with Adam at 5e-4.
Study 3 trains several of them per input (MRI sequence, brain region) and stacks them
(:mod:`brainpad.ensemble`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from brainpad.models import ModelSpec
from brainpad.models._layers import age_itself, bias_at_zero, input_pool

SPEC = ModelSpec(
    "cnn3d",
    reads="volumes",
    output="scalar",
    description="study 3's base 3D CNN (leaky ReLU, max-pool 3/2, MSE), stacked in sub-ensembles",
)


class CNN3D(nn.Module):
    """Study 3's 3D CNN; one age (standard units) per input.

    Parameters
    ----------
    in_channels : int
        Input channels.
    input_shape : sequence of int
        Spatial shape of the crop; fixes the size of the dense layer.
    filters, kernels : sequence of int
        Filters and kernel edge of each block (paper: 16, 16, 32, 64, 32 and 3, 3, 3, 3, 1).
    dense : int
        Units of the dense layer (paper: 64).
    dropout : float
        Dropout before the dense layer (paper: 0.5).
    downsample : int
        Average-pool the input by this factor first.
    """

    def __init__(
        self,
        in_channels: int,
        input_shape: Sequence[int],
        filters: Sequence[int] = (16, 16, 32, 64, 32),
        kernels: Sequence[int] = (3, 3, 3, 3, 1),
        dense: int = 64,
        dropout: float = 0.5,
        downsample: int = 1,
    ) -> None:
        super().__init__()
        if len(filters) != len(kernels):
            msg = f"cnn3d: {len(filters)} filters but {len(kernels)} kernels; give one per block"
            raise ValueError(msg)
        layers, shape = input_pool(downsample, input_shape)
        channels = in_channels
        for width, kernel in zip(filters, kernels, strict=True):
            layers += [
                nn.Conv3d(channels, width, kernel_size=kernel, padding=kernel // 2),
                nn.LeakyReLU(0.2, inplace=True),
                nn.MaxPool3d(kernel_size=3, stride=2, padding=1),
            ]
            channels = width
            shape = [math.floor((s - 1) / 2) + 1 for s in shape]  # pool 3, stride 2, pad 1
        self.features = nn.Sequential(*layers)
        output = nn.Linear(dense, 1)
        bias_at_zero(output)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(channels * math.prod(shape), dense),
            nn.LeakyReLU(0.2, inplace=True),
            output,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Age (standard units) of each input, shape (batch,)."""
        return self.head(self.features(x)).squeeze(1)


def build(in_channels: int, input_shape: Sequence[int], params: dict) -> CNN3D:
    """The network for the config's ``models.cnn3d`` settings."""
    return CNN3D(
        in_channels,
        input_shape,
        params["filters"],
        params["kernels"],
        params["dense"],
        params["dropout"],
        params.get("downsample", 1),
    )


def loss(output: torch.Tensor, batch, step: int, params: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean squared error (study 3); the MAE is reported."""
    error = output - batch.y
    return (error**2).mean(), error.detach().abs().mean()


to_age = age_itself
