"""``sfcn``: the Simple Fully Convolutional Network of Peng et al. (2021, Med. Image Anal.).

Blocks 1–5: 3×3×3 convolution + batch norm + 2×2×2 max-pool + ReLU (32, 64, 128, 256,
256 channels in the paper); block 6: 1×1×1 convolution (64) + batch norm + ReLU; then
global average pooling, dropout 0.5 and a 1×1×1 convolution to K age bins with
log-softmax. No dense layer: about 3 M parameters at the paper's widths.

Labels are soft: a Gaussian over the bins centred on the scan's age, so the loss (the
KL divergence between that Gaussian and the predicted distribution) rewards near misses;
the predicted age is the expected value over the bins. The trainer works in standard
units of the training ages, so the bins span ±3.5 standard deviations around the
training mean (:data:`BIN_RANGE`, wider than any training age) and the label's σ is
``label_sd`` bins (the paper: σ = 1 y over 1-year bins, i.e. one bin). The paper's random
shifts of ±2 voxels and left-right mirroring are the trainer's ``augment`` setting
(:class:`brainpad.training.data.WholeScans`), open to every whole-scan network.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from brainpad.models import ModelSpec
from brainpad.models._layers import conv_blocks, input_pool

SPEC = ModelSpec(
    "sfcn",
    reads="volumes",
    output="bins",
    description="SFCN: fully convolutional, soft age-bin labels, KL loss (Peng et al. 2021)",
)


BIN_RANGE = 3.5
"""The bins span ±3.5 standard deviations of the training ages around their mean."""


def bin_centres(bins: int) -> torch.Tensor:
    """Centres of ``bins`` equal bins over ±:data:`BIN_RANGE` (standard units)."""
    edges = torch.linspace(-BIN_RANGE, BIN_RANGE, bins + 1)
    return (edges[:-1] + edges[1:]) / 2


def soft_labels(age: torch.Tensor, centres: torch.Tensor, sd_bins: float) -> torch.Tensor:
    """Gaussian soft labels: (batch, bins), each row sums to 1.

    Parameters
    ----------
    age : Tensor
        (batch,) ages in standard units.
    centres : Tensor
        Bin centres (:func:`bin_centres`).
    sd_bins : float
        The Gaussian's σ in bins.
    """
    width = float(centres[1] - centres[0])
    z = (age[:, None] - centres[None, :].to(age)) / (sd_bins * width)
    weights = torch.exp(-0.5 * z**2)
    return weights / weights.sum(1, keepdim=True)


class SFCN(nn.Module):
    """SFCN on (batch, channels, x, y, z) inputs; log-probabilities over age bins.

    Parameters
    ----------
    in_channels : int
        Input channels.
    input_shape : sequence of int
        Spatial shape of the crop (only used with ``downsample``).
    widths : sequence of int
        Channels of the conv + BN + max-pool + ReLU blocks (paper: 32, 64, 128, 256, 256).
    head_width : int
        Channels of the 1×1×1 block before the classifier (paper: 64).
    bins : int
        Age bins over ±:data:`BIN_RANGE` SD (paper: 40 one-year bins).
    dropout : float
        Dropout before the classifier (paper: 0.5).
    downsample : int
        Average-pool the input by this factor first.
    """

    def __init__(
        self,
        in_channels: int,
        input_shape: Sequence[int],
        widths: Sequence[int] = (32, 64, 128, 256, 256),
        head_width: int = 64,
        bins: int = 40,
        dropout: float = 0.5,
        downsample: int = 1,
    ) -> None:
        super().__init__()
        pool, shape = input_pool(downsample, input_shape)
        blocks, channels, _ = conv_blocks(in_channels, widths, shape)
        layers = [*pool, *blocks]
        layers += [
            nn.Conv3d(channels, head_width, kernel_size=1),
            nn.BatchNorm3d(head_width),
            nn.ReLU(inplace=True),
        ]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool3d(1),
            nn.Dropout(dropout),
            nn.Conv3d(head_width, bins, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-probabilities over the age bins, (batch, bins)."""
        logits = self.classifier(self.features(x)).flatten(1)
        return torch.log_softmax(logits.float(), dim=1)


def build(in_channels: int, input_shape: Sequence[int], params: dict) -> SFCN:
    """The network for the config's ``models.sfcn`` settings."""
    return SFCN(
        in_channels,
        input_shape,
        params["widths"],
        params["head_width"],
        params["bins"],
        params["dropout"],
        params.get("downsample", 1),
    )


def expected_age(log_probs: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Expected value of the bins under the predicted distribution, (batch,)."""
    return (log_probs.exp() * centres.to(log_probs)).sum(1)


def loss(output: torch.Tensor, batch, step: int, params: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """KL divergence from the Gaussian soft labels; the MAE of the expected ages."""
    centres = bin_centres(output.shape[1]).to(output.device)
    target = soft_labels(batch.y, centres, params["label_sd"])
    kl = nn.functional.kl_div(output, target, reduction="batchmean")
    mae = (expected_age(output.detach(), centres) - batch.y).abs().mean()
    return kl, mae


def to_age(output: torch.Tensor) -> torch.Tensor:
    """Expected age (standard units) over the bins, one per scan."""
    return expected_age(output, bin_centres(output.shape[1]))
