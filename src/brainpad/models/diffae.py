"""``diffae``: study 2's semi-supervised diffusion autoencoder on the mid-axial T1w slice.

A *semantic encoder* (the down path and middle block of a diffusion U-Net) maps the
slice to a latent ``z_sem``; a conditional noise-prediction U-Net denoises the slice
conditioned on ``z_sem`` (DDPM); an MLP predicts age from ``z_sem``. Both losses train
jointly: the diffusion loss (noise-prediction MSE) on every scan, the age loss (MSE) on
the scans that have an age. Participants without an age (``unlabelled: use``) therefore
still shape ``z_sem``: that is what makes the model semi-supervised (Ijishakin et al.).

The networks and the noise schedule are MONAI's (``DiffusionModelUNet``,
``DDPMScheduler`` for training, ``DDIMScheduler`` for reconstructions). MONAI's U-Net
has no slot for a latent condition in every residual block (Diff-AE's adaptive group
norm), but it adds a class embedding to the timestep embedding that every residual
block receives; here that embedding is a linear map of ``z_sem`` (instead of a lookup of
class labels), so ``z_sem`` shifts every block's features, as Diff-AE's condition does
(without its per-channel scale). The encoder is the conv-in, down blocks and middle
block of a second MONAI U-Net, run with a zero timestep embedding (it sees clean images
only), followed by group norm, SiLU, global average pooling and a linear map to
``latent`` dimensions.

Input: the model reads the cohort's 3D T1w crop (``inputs: [t1w]``: N4-corrected,
brain-extracted, in MNI space, divided by its brightest voxels' mean); its first layer
takes the middle axial plane (and ``slices - 1`` neighbours as channels), pads it square,
resizes it to ``image_size`` and clips it to [0, 1]. Age inference needs only the
encoder and the head; no sampling.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from brainpad.models import ModelSpec
from brainpad.models._layers import bias_at_zero

SPEC = ModelSpec(
    "diffae",
    reads="volumes",
    output="scalar",
    description="study 2's semi-supervised diffusion autoencoder on the mid-axial T1w slice",
    semi_supervised=True,
)


class DiffusionOutput(NamedTuple):
    """What the network returns while training: the age (standard units) of each scan,
    the predicted noise and the noise that was added."""

    age: torch.Tensor
    predicted_noise: torch.Tensor
    noise: torch.Tensor


class SliceImage(nn.Module):
    """(batch, channels, x, y, z) crops → (batch, channels × slices, size, size) in [0, 1].

    Parameters
    ----------
    depth : int
        Axial planes of the crop; the middle one is ``depth // 2`` (as in the cohort's
        2D slices).
    slices : int
        Odd number of neighbouring axial planes, centred on the middle one, stacked as
        channels (study 2: one).
    size : int
        Edge of the square image (study 2: 128); the plane is zero-padded square first,
        so its aspect is kept.
    """

    def __init__(self, depth: int, slices: int, size: int) -> None:
        super().__init__()
        if slices < 1 or slices % 2 == 0 or slices > depth:
            msg = f"models.diffae.slices must be odd and at most {depth}, not {slices}"
            raise ValueError(msg)
        self.start = depth // 2 - slices // 2
        self.stop = self.start + slices
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        planes = x[..., self.start : self.stop].permute(0, 1, 4, 2, 3).flatten(1, 2)
        height, width = planes.shape[-2:]
        edge = max(height, width)
        dx, dy = edge - height, edge - width
        planes = F.pad(planes, (dy // 2, dy - dy // 2, dx // 2, dx - dx // 2))
        planes = F.interpolate(planes, size=(self.size, self.size), mode="bilinear")
        return planes.clamp(0.0, 1.0)


def _unet(channels: int, widths: Sequence[int], res_blocks: int, groups: int, **extra):
    from monai.networks.nets import DiffusionModelUNet

    return DiffusionModelUNet(
        spatial_dims=2,
        in_channels=channels,
        out_channels=channels,
        channels=list(widths),
        attention_levels=[False] * len(widths),
        num_res_blocks=res_blocks,
        norm_num_groups=groups,
        num_head_channels=widths[-1],  # one attention head in the middle block
        **extra,
    )


class SemanticEncoder(nn.Module):
    """Image → ``z_sem``: a MONAI diffusion U-Net's conv-in, down blocks and middle block
    (attention in the middle), then group norm, SiLU, global pooling and a linear map."""

    def __init__(
        self, channels: int, widths: Sequence[int], res_blocks: int, groups: int, latent: int
    ) -> None:
        super().__init__()
        unet = _unet(channels, widths, res_blocks, groups)
        self.conv_in, self.down_blocks, self.middle_block = (
            unet.conv_in,
            unet.down_blocks,
            unet.middle_block,
        )
        self.embedding = widths[0] * 4  # MONAI's timestep-embedding width
        self.out = nn.Sequential(
            nn.GroupNorm(groups, widths[-1]),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(widths[-1], latent),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        emb = image.new_zeros(len(image), self.embedding)
        h = self.conv_in(image)
        for block in self.down_blocks:
            h, _ = block(hidden_states=h, temb=emb)
        return self.out(self.middle_block(hidden_states=h, temb=emb))


class DiffAE(nn.Module):
    """Study 2's diffusion autoencoder with an age head.

    Parameters
    ----------
    in_channels : int
        Channels of the cohort array (1 for the T1w).
    input_shape : sequence of int
        The crop's (x, y, z).
    image_size : int
        Edge of the square slice the networks see.
    slices : int
        Neighbouring axial planes stacked as channels.
    widths : sequence of int
        Channels per U-Net level (study 2: 32 × (1, 1, 2, 3, 4)).
    res_blocks : int
        Residual blocks per level.
    groups : int
        Group-norm groups (must divide every width).
    latent : int
        Size of ``z_sem`` (study 2: 512).
    head : sequence of int
        Hidden units of the age MLP (study 2: 128, 32), each linear + batch norm + ReLU +
        dropout.
    dropout : float
        Dropout of the age MLP (study 2: 0.5).
    timesteps : int
        Diffusion steps of the DDPM noise schedule (linear betas).
    """

    def __init__(
        self,
        in_channels: int,
        input_shape: Sequence[int],
        image_size: int = 128,
        slices: int = 1,
        widths: Sequence[int] = (32, 32, 64, 96, 128),
        res_blocks: int = 2,
        groups: int = 32,
        latent: int = 512,
        head: Sequence[int] = (128, 32),
        dropout: float = 0.5,
        timesteps: int = 1000,
    ) -> None:
        super().__init__()
        from monai.networks.schedulers import DDPMScheduler

        levels = len(widths) - 1
        if image_size % 2**levels:
            msg = f"models.diffae.image_size {image_size} must be divisible by 2^{levels}"
            raise ValueError(msg)
        self.image = SliceImage(int(input_shape[-1]), slices, image_size)
        channels = in_channels * slices
        self.encoder = SemanticEncoder(channels, widths, res_blocks, groups, latent)
        self.denoiser = _unet(channels, widths, res_blocks, groups, num_class_embeds=1)
        self.denoiser.class_embedding = nn.Linear(latent, widths[0] * 4)  # z_sem → embedding
        layers: list[nn.Module] = []
        width = latent
        for units in head:
            layers += [
                nn.Linear(width, units),
                nn.BatchNorm1d(units),
                nn.ReLU(),
                nn.Dropout(dropout),
            ]
            width = units
        output = nn.Linear(width, 1)
        bias_at_zero(output)
        self.head = nn.Sequential(*layers, output)
        self.timesteps = timesteps
        self.scheduler = DDPMScheduler(num_train_timesteps=timesteps)

    def age(self, z: torch.Tensor) -> torch.Tensor:
        """Age (standard units) from ``z_sem``. A lone scan in a training batch goes
        through the batch norms with their running statistics (batch statistics of one
        scan are undefined)."""
        if self.training and len(z) == 1:
            self.head.eval()
            try:
                return self.head(z).squeeze(1)
            finally:
                self.head.train()
        return self.head(z).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | DiffusionOutput:
        """In eval mode the age of each scan (standard units, shape (batch,)); while
        training a :class:`DiffusionOutput` for one random timestep per scan."""
        image = self.image(x)
        z = self.encoder(image)
        age = self.age(z)
        if not self.training:
            return age
        target = image * 2 - 1  # diffusion runs on [-1, 1]
        noise = torch.randn_like(target)
        t = torch.randint(0, self.timesteps, (len(target),), device=target.device)
        noisy = self.scheduler.add_noise(target, noise, t)
        return DiffusionOutput(age, self.denoiser(noisy, t, class_labels=z), noise)

    def _ddim_path(self, steps: int) -> list[tuple[int, torch.Tensor]]:
        """The ``steps`` timesteps of a DDIM path from the noisiest to the clean image, each
        with its cumulative alpha (of the training schedule), ending at the clean image
        (alpha 1, timestep -1)."""
        alphas = self.scheduler.alphas_cumprod
        ts = torch.linspace(self.timesteps - 1, 0, steps).round().long().unique_consecutive()
        return [(int(t), alphas[t]) for t in ts] + [(-1, torch.tensor(1.0))]

    def _ddim_move(self, sample, z, start: tuple, end: tuple) -> torch.Tensor:
        """One deterministic DDIM move of ``sample`` from timestep ``start`` to ``end``
        (either direction; (timestep, alpha) pairs): the noise predicted at the start,
        the clean image it implies, re-noised to the end's level. MONAI's
        ``DDIMScheduler.step`` / ``reversed_step`` do this with a fixed stride of
        ``timesteps // steps``, which does not meet its own rounded timesteps, so an
        inversion through them does not retrace the decoding."""
        (t, alpha), (_, alpha_end) = start, end
        step = torch.full((len(sample),), max(t, 0), device=sample.device, dtype=torch.long)
        noise = self.denoiser(sample, step, class_labels=z)
        clean = (sample - (1 - alpha).sqrt() * noise) / alpha.sqrt()
        return alpha_end.sqrt() * clean + (1 - alpha_end).sqrt() * noise

    def invert(self, image: torch.Tensor, z: torch.Tensor, steps: int = 50) -> torch.Tensor:
        """The stochastic code ``x_T`` of slices ``image`` (in [0, 1]): the DDIM path run
        from the clean image to the noisiest timestep, conditioned on their ``z_sem``.
        Decoding it with the same ``z_sem`` (:meth:`decode`) gives the slices back:
        Diff-AE's autoencoding."""
        return self._walk(image * 2 - 1, z, self._ddim_path(steps)[::-1])

    def decode(self, x_t: torch.Tensor, z: torch.Tensor, steps: int = 50) -> torch.Tensor:
        """Slices in [0, 1] decoded from ``x_T`` along the DDIM path, conditioned on
        ``z_sem``."""
        return ((self._walk(x_t, z, self._ddim_path(steps)) + 1) / 2).clamp(0.0, 1.0)

    def _walk(self, sample: torch.Tensor, z: torch.Tensor, path: list) -> torch.Tensor:
        for start, end in itertools.pairwise(path):
            sample = self._ddim_move(sample, z, start, end)
        return sample

    @torch.no_grad()
    def reconstruct(
        self, x: torch.Tensor, steps: int = 50, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The slices, their reconstructions and samples from their ``z_sem``.

        The reconstruction decodes the slice's own ``x_T`` (:meth:`invert`) with its
        ``z_sem``, as Diff-AE autoencodes an image; the sample decodes Gaussian noise with
        the same ``z_sem``: what the semantic code alone keeps of the slice. All three in
        [0, 1], (batch, channels, size, size); DDIM with ``steps`` steps.
        """
        was_training = self.training
        self.eval()
        image = self.image(x)
        z = self.encoder(image)
        reconstruction = self.decode(self.invert(image, z, steps), z, steps)
        noise = torch.randn(image.shape, generator=generator).to(image.device)
        sample = self.decode(noise, z, steps)
        self.train(was_training)
        return image, reconstruction, sample


def build(in_channels: int, input_shape: Sequence[int], params: dict) -> DiffAE:
    """The network for the config's ``models.diffae`` settings."""
    return DiffAE(
        in_channels,
        input_shape,
        image_size=params["image_size"],
        slices=params.get("slices", 1),
        widths=params["widths"],
        res_blocks=params.get("res_blocks", 2),
        groups=params.get("groups", 32),
        latent=params.get("latent", 512),
        head=params.get("head", (128, 32)),
        dropout=params.get("dropout", 0.5),
        timesteps=params.get("timesteps", 1000),
    )


def loss(
    output: DiffusionOutput, batch, step: int, params: dict
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise-prediction MSE on every scan + ``age_weight`` × age MSE on the scans with an
    age (``batch.y`` is NaN for unlabelled scans); the MAE of those scans (0 if none)."""
    diffusion = F.mse_loss(output.predicted_noise.float(), output.noise.float())
    labelled = torch.isfinite(batch.y)
    if not labelled.any():
        zero = output.age.sum() * 0.0  # keeps the head in the graph
        return diffusion + zero, zero.detach()
    error = output.age.float()[labelled] - batch.y[labelled]
    age_loss = (error**2).mean()
    return diffusion + params.get("age_weight", 1.0) * age_loss, error.abs().mean()


def to_age(output: torch.Tensor) -> torch.Tensor:
    """The eval-mode output is the age itself (standard units)."""
    return output
