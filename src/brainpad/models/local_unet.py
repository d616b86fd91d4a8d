"""``local_unet``: the voxelwise local brain-age U-Net of study 1 (``SCIENCE.md`` §1).

A 3D U-Net on blocks: valid (unpadded) 3×3×3 convolutions, two per scale (``convs``),
leaky ReLU 0.2
and a squeeze-and-excitation unit after each; 2×2×2 average pooling down, 2×2×2
upsampling up with the cropped skip connection concatenated; ``width`` channels at the
top, doubling per level. Every output voxel predicts the subject's age (in standard units
of the training set). Two auxiliary heads (global average pool + dense → one age per
block) sit at the two coarsest scales.

With valid convolutions the geometry is fixed by the depth, the bottleneck size and the
convolutions per scale: for ``levels`` pooling steps, a bottleneck of ``b`` voxels and
``c`` convolutions per scale (each trims 2 voxels),

* output edge ``= 2**levels * b - 2c * (2**levels - 1)``,
* input edge ``= 2**levels * (b + 2c) + 2c * (2**levels - 1)``.

The receptive field (input − output + 1) is 17 voxels for one level with two convolutions
per scale, 9 with one. One convolution per scale departs from the paper; on the demo it
doubles how much of a focal effect the maps show (:mod:`brainpad.local.planted`) at the cost of
global accuracy (``docs/local-brain-age.md``).

The paper's 52³ → 12³ at 1.5 mm is ``levels=2, b=6, c=2``. :func:`block_geometry` computes
this, and :func:`geometry_for_voxel` picks levels and bottleneck for another working voxel
size so that the receptive field and the output block keep their size in mm.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from brainpad.models import ModelSpec

SPEC = ModelSpec(
    "local_unet",
    reads="blocks",
    output="map",
    description="block U-Net predicting brain age in every voxel (study 1, local brain age)",
)


def block_geometry(levels: int, bottleneck: int, convs: int = 2) -> tuple[int, int]:
    """(input edge, output edge) in voxels of a valid-convolution U-Net."""
    scale, trim = 2**levels, 2 * convs
    return (
        scale * (bottleneck + trim) + trim * (scale - 1),
        scale * bottleneck - trim * (scale - 1),
    )


def geometry_for_voxel(
    voxel_mm: float, receptive_mm: float = 61.5, output_mm: float = 18.0, convs: int = 2
) -> tuple[int, int]:
    """(levels, bottleneck) that scale the paper's block geometry to ``voxel_mm``.

    The depth sets the receptive field (input − output + 1 voxels: 41 for two levels,
    17 for one); it is chosen closest to the paper's 41 × 1.5 = 61.5 mm. The bottleneck
    then sets the output block, chosen closest to the paper's 12 × 1.5 = 18 mm (at least
    4 voxels). At 1.5 mm this gives the paper's 52³ → 12³; at 2 mm 48³ → 8³; at 3 mm
    22³ → 6³. The depth follows the paper's two convolutions per scale whatever ``convs``
    is, so one convolution per scale keeps the depth and halves the receptive field.
    """

    def receptive(levels: int) -> int:
        size_in, size_out = block_geometry(levels, 10)
        return size_in - size_out + 1

    levels = min((2, 1), key=lambda n: abs(receptive(n) * voxel_mm - receptive_mm))
    candidates = [b for b in range(2, 64) if block_geometry(levels, b, convs)[1] >= 4]
    bottleneck = min(
        candidates, key=lambda b: abs(block_geometry(levels, b, convs)[1] * voxel_mm - output_mm)
    )
    return levels, bottleneck


class SqueezeExcite(nn.Module):
    """Channel attention (Hu et al.): global pool → bottleneck MLP → sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool3d(1),
            nn.Flatten(),
            nn.Linear(channels, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` scaled channel by channel."""
        return x * self.gate(x)[:, :, None, None, None]


def _conv_block(c_in: int, c_out: int, convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for c in (c_in, *[c_out] * (convs - 1)):
        layers += [nn.Conv3d(c, c_out, 3), nn.LeakyReLU(0.2, inplace=True), SqueezeExcite(c_out)]
    return nn.Sequential(*layers)


def _init(module: nn.Module) -> None:
    """He initialisation for leaky ReLU; without it (and with no normalisation layers) the
    signal shrinks through every convolution and SE gate, and training barely starts."""
    if isinstance(module, nn.Conv3d):
        nn.init.kaiming_normal_(module.weight, a=0.2, nonlinearity="leaky_relu")
        nn.init.zeros_(module.bias)


def _crop(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The centre ``size`` of ``x``'s spatial dimensions."""
    starts = [(s - t) // 2 for s, t in zip(x.shape[2:], size, strict=True)]
    return x[
        :,
        :,
        starts[0] : starts[0] + size[0],
        starts[1] : starts[1] + size[1],
        starts[2] : starts[2] + size[2],
    ]


class LocalUNet(nn.Module):
    """Block-wise voxel brain-age U-Net.

    Parameters
    ----------
    in_channels : int
        Input maps (GM and WM: 2).
    width : int
        Channels at the top scale (64 in the paper), doubling per level.
    levels : int
        Pooling steps (2 in the paper).
    convs : int
        Convolutions per scale (2 in the paper).
    """

    def __init__(
        self, in_channels: int = 2, width: int = 64, levels: int = 2, convs: int = 2
    ) -> None:
        super().__init__()
        widths = [width * 2**k for k in range(levels + 1)]
        self.down = nn.ModuleList()
        c = in_channels
        for w in widths[:-1]:
            self.down.append(_conv_block(c, w, convs))
            c = w
        self.pool = nn.AvgPool3d(2)
        self.bottom = _conv_block(c, widths[-1], convs)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.up = nn.ModuleList(
            _conv_block(widths[k + 1] + widths[k], widths[k], convs)
            for k in reversed(range(levels))
        )
        self.out = nn.Conv3d(widths[0], 1, 1)
        # auxiliary block-level heads at the two coarsest scales (bottleneck, first up)
        self.aux = nn.ModuleList(nn.Linear(w, 1) for w in (widths[-1], widths[-2]))
        self.apply(_init)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Voxel ages (batch, 1, out, out, out) and the auxiliary block ages [(batch,), ...]."""
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        features = [x]
        for block, skip in zip(self.up, reversed(skips), strict=True):
            x = self.upsample(x)
            x = block(torch.cat([_crop(skip, x.shape[2:]), x], dim=1))
            features.append(x)
        coarse = features[:2]  # bottleneck and first up scale
        aux = [h(f.mean(dim=(2, 3, 4))).squeeze(1) for h, f in zip(self.aux, coarse, strict=True)]
        return self.out(x), aux


def aux_fade(step: int, decay_iterations: int) -> float:
    """Weight factor of the auxiliary losses at ``step``: 1 → 0 linearly over
    ``decay_iterations`` (study 1: gone after 50k of 500k iterations); 0 if that is 0."""
    if not decay_iterations:
        return 0.0
    return max(0.0, 1.0 - step / decay_iterations)


def block_loss(
    out: torch.Tensor,
    aux: Sequence[torch.Tensor],
    mask: torch.Tensor,
    target: torch.Tensor,
    aux_weights: Sequence[float],
    fade: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Study 1's loss on a batch of blocks: voxel MAE + faded auxiliary block MAEs.

    Parameters
    ----------
    out : torch.Tensor
        Voxel predictions, (batch, 1, s, s, s), as :meth:`LocalUNet.forward` returns.
    aux : sequence of torch.Tensor
        The auxiliary block predictions, each (batch,).
    mask : torch.Tensor
        (batch, s, s, s), 1 on brain voxels: only they count in the voxel MAE.
    target : torch.Tensor
        (batch, s, s, s) voxel targets; an auxiliary head's target is the block's mean.
    aux_weights : sequence of float
        α₁, α₂, one per auxiliary head.
    fade : float
        The factor on α (:func:`aux_fade`); at 0 the auxiliary heads get no gradient.

    Returns
    -------
    (total, voxel_mae) : tuple of torch.Tensor
        The loss to minimise and its voxel MAE part (over the masked voxels).
    """
    voxel_mae = ((out[:, 0] - target).abs() * mask).sum() / mask.sum().clamp(min=1)
    if fade <= 0:
        return voxel_mae, voxel_mae
    block_target = target.mean(dim=(1, 2, 3))
    auxiliary = sum(
        w * nn.functional.l1_loss(a, block_target) for w, a in zip(aux_weights, aux, strict=True)
    )
    return voxel_mae + fade * auxiliary, voxel_mae


def resolve(params: dict, voxel_mm: float) -> dict:
    """The block geometry for the working voxel: ``levels`` and ``block`` (input and output
    edge, voxels); the config's ``levels`` and ``bottleneck`` when set, else
    :func:`geometry_for_voxel`."""
    convs = params.get("convs_per_scale", 2)
    levels, bottleneck = geometry_for_voxel(voxel_mm, convs=convs)
    levels = params.get("levels") or levels
    bottleneck = params.get("bottleneck") or bottleneck
    size_in, size_out = block_geometry(levels, bottleneck, convs)
    if size_out < 1:
        msg = f"local_unet: levels {levels} with bottleneck {bottleneck} leave no output voxels"
        raise ValueError(msg)
    return {"levels": levels, "block": [size_in, size_out]}


def build(in_channels: int, input_shape: Sequence[int], params: dict) -> LocalUNet:
    """The network for the config's ``models.local_unet`` settings (with :func:`resolve`'s
    ``levels``); ``input_shape`` is the input block."""
    return LocalUNet(
        in_channels, params["width"], params["levels"], params.get("convs_per_scale", 2)
    )


def loss(
    output: tuple[torch.Tensor, list[torch.Tensor]], batch, step: int, params: dict
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`block_loss` on a batch of blocks, the auxiliary weights faded by ``step``."""
    out, aux = output
    fade = aux_fade(step, params["aux_decay_iterations"])
    return block_loss(out, aux, batch.mask, batch.y, params["aux_weights"], fade)


def to_age(output: tuple[torch.Tensor, list[torch.Tensor]]) -> torch.Tensor:
    """The voxel ages (standard units), (batch, s, s, s)."""
    return output[0][:, 0]
