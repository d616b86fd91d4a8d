"""``cnn2d``: a small 2D CNN on each scan's mid-axial slice, the 2D baseline.

Independent benchmarks find 3D networks beat 2D-slice models; this one is here to measure
that on the same cohort. Blocks of 3×3 convolution + batch norm + ReLU + 2×2 max-pool,
global average pooling, a dense layer and a linear output whose bias starts at the
training mean age. It reads the cohort's 2D slices (``slices.npy``: the modulated GM and
WM of the crop's middle axial plane). Loss: MAE.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from brainpad.models import ModelSpec
from brainpad.models._layers import age_itself, bias_at_zero, conv_blocks, input_pool, mae_loss

SPEC = ModelSpec(
    "cnn2d",
    reads="slices",
    output="scalar",
    description="small 2D CNN on the mid-axial slice (2D baseline)",
)


class CNN2D(nn.Module):
    """2D CNN on (batch, channels, x, y) slices; one age (standard units) per slice.

    Parameters
    ----------
    in_channels : int
        Input channels.
    input_shape : sequence of int
        Spatial shape of the slice (only used with ``downsample``).
    widths : sequence of int
        Channels of each conv + BN + ReLU + max-pool block.
    dense : int
        Units of the dense layer.
    downsample : int
        Average-pool the input by this factor first.
    """

    def __init__(
        self,
        in_channels: int,
        input_shape: Sequence[int],
        widths: Sequence[int] = (16, 32, 64, 128),
        dense: int = 64,
        downsample: int = 1,
    ) -> None:
        super().__init__()
        pool, shape = input_pool(downsample, input_shape, dims=2)
        blocks, channels, _ = conv_blocks(in_channels, widths, shape, dims=2)
        self.features = nn.Sequential(*pool, *blocks)
        output = nn.Linear(dense, 1)
        bias_at_zero(output)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(channels, dense),
            nn.ReLU(inplace=True),
            output,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Age (standard units) of each slice, shape (batch,)."""
        return self.head(self.features(x)).squeeze(1)


def build(in_channels: int, input_shape: Sequence[int], params: dict) -> CNN2D:
    """The network for the config's ``models.cnn2d`` settings."""
    return CNN2D(
        in_channels, input_shape, params["widths"], params["dense"], params.get("downsample", 1)
    )


loss = mae_loss
to_age = age_itself
