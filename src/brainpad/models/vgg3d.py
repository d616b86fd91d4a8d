"""``vgg3d``: the VGG-style 3D CNN of study 4 (``SCIENCE.md`` §4).

Blocks of 3×3×3 convolution + batch norm + ReLU + 2×2×2 max-pool (16, 32, 64, 128, 256
channels in the paper), then a dense head (512 → 128 → 1). The output is the age in
standard units of the training set (the trainer scales it back to years), so the last
bias starts at the training mean age, as in study 3.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from brainpad.models import ModelSpec
from brainpad.models._layers import age_itself, bias_at_zero, conv_blocks, input_pool, mae_loss

SPEC = ModelSpec(
    "vgg3d",
    reads="volumes",
    output="scalar",
    description="VGG-style 3D CNN on modulated GM+WM maps (study 4)",
)


class VGG3D(nn.Module):
    """VGG-style 3D regression network.

    Parameters
    ----------
    in_channels : int
        Input channels (modulated GM and WM: 2).
    input_shape : sequence of int
        Spatial shape of the input crop; fixes the size of the first dense layer.
    widths : sequence of int
        Channels of each convolutional block (one block per pooling step).
    dense : sequence of int
        Hidden sizes of the dense head.
    downsample : int
        Average-pool the input by this factor first (1: full working resolution). A
        cheap way to train at a coarser resolution, e.g. on a CPU.
    """

    def __init__(
        self,
        in_channels: int,
        input_shape: Sequence[int],
        widths: Sequence[int] = (16, 32, 64, 128, 256),
        dense: Sequence[int] = (512, 128),
        downsample: int = 1,
    ) -> None:
        super().__init__()
        pool, shape = input_pool(downsample, input_shape)
        blocks, channels, shape = conv_blocks(in_channels, widths, shape)
        self.features = nn.Sequential(*pool, *blocks)
        head: list[nn.Module] = [nn.Flatten()]
        size = channels * math.prod(shape)
        for hidden in dense:
            head += [nn.Linear(size, hidden), nn.ReLU(inplace=True)]
            size = hidden
        output = nn.Linear(size, 1)
        bias_at_zero(output)
        head.append(output)
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Age (standard units) of each input, shape (batch,)."""
        return self.head(self.features(x)).squeeze(1)


def build(in_channels: int, input_shape: Sequence[int], params: dict) -> VGG3D:
    """The network for the config's ``models.vgg3d`` settings."""
    return VGG3D(
        in_channels, input_shape, params["widths"], params["dense"], params.get("downsample", 1)
    )


loss = mae_loss
to_age = age_itself
