"""Study 2's diffusion autoencoder: its slice input, its masked semi-supervised loss, its
reconstructions, and training on a fold with unlabelled scans."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch

from brainpad.models import get_spec
from brainpad.models.diffae import DiffusionOutput, SliceImage, build, loss
from brainpad.training.data import Batch
from brainpad.training.fold import train_fold
from conftest import NETWORK_PARAMS

PARAMS = NETWORK_PARAMS["diffae"]


@pytest.fixture
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return build(1, [10, 12, 9], PARAMS)


def test_slice_image_takes_the_middle_planes_square_and_in_unit_range():
    volume = torch.zeros(2, 1, 4, 6, 5)
    volume[:, :, :, :, 2] = 2.0  # the middle axial plane (5 // 2), above 1
    volume[:, :, :, :, 1] = 0.5
    image = SliceImage(depth=5, slices=1, size=6)(volume)
    assert image.shape == (2, 1, 6, 6)
    assert image.max() == 1.0 and image[:, :, 0].max() == 0  # padded rows (4 -> 6) are 0
    three = SliceImage(depth=5, slices=3, size=6)(volume)
    assert three.shape == (2, 3, 6, 6)
    assert three[0, 0, 3, 3] == 0.5 and three[0, 1, 3, 3] == 1.0 and three[0, 2, 3, 3] == 0
    with pytest.raises(ValueError, match="slices must be odd and at most 5, not 2"):
        SliceImage(depth=5, slices=2, size=6)


def test_age_in_eval_mode_and_diffusion_terms_while_training(net):
    x = torch.rand(3, 1, 10, 12, 9)
    net.eval()
    assert net(x).shape == (3,)
    net.train()
    out = net(x)
    assert isinstance(out, DiffusionOutput)
    assert out.age.shape == (3,) and out.predicted_noise.shape == out.noise.shape == (3, 1, 16, 16)
    assert net(x[:1]).age.shape == (1,)  # a lone scan passes the batch norms


def test_unlabelled_scans_train_only_the_diffusion_loss(net):
    """An unlabelled scan (NaN age) adds nothing to the age term: the loss equals the
    noise MSE + the labelled scans' age MSE, and with no labelled scan the age head gets
    no gradient at all."""
    net.train()
    for weight in net.denoiser.parameters():  # MONAI starts its output convs at zero
        if not weight.any():
            torch.nn.init.normal_(weight, std=0.1)
    torch.manual_seed(1)
    out = net(torch.rand(3, 1, 10, 12, 9))
    y = torch.tensor([0.5, float("nan"), -1.0])
    total, mae = loss(out, Batch(None, y), 0, {"age_weight": 2.0})
    noise_mse = torch.mean((out.predicted_noise - out.noise) ** 2)
    labelled = out.age[[0, 2]] - y[[0, 2]]
    assert total.item() == pytest.approx((noise_mse + 2.0 * (labelled**2).mean()).item(), rel=1e-5)
    assert mae.item() == pytest.approx(labelled.abs().mean().item(), rel=1e-5)

    net.zero_grad()
    total, mae = loss(out, Batch(None, torch.full((3,), float("nan"))), 0, {})
    total.backward()
    assert mae.item() == 0 and total.item() == pytest.approx(noise_mse.item(), rel=1e-5)
    head_grad = [p.grad for p in net.head.parameters()]
    assert all(g is None or torch.count_nonzero(g) == 0 for g in head_grad)
    assert any(torch.count_nonzero(p.grad) for p in net.encoder.parameters())  # via z_sem


def test_reconstructions_retrace_the_inversion_and_samples_are_seeded(net):
    """Decoding a slice's own x_T (DDIM inversion) gives the slice back, even from an
    untrained denoiser; decoding noise with the same z_sem does not, and is seeded."""
    x = torch.rand(2, 1, 10, 12, 9)
    image, rebuilt, first = net.reconstruct(x, steps=3, generator=torch.Generator().manual_seed(0))
    _, again, second = net.reconstruct(x, steps=3, generator=torch.Generator().manual_seed(0))
    assert image.shape == rebuilt.shape == first.shape == (2, 1, 16, 16)
    assert torch.allclose(rebuilt, image, atol=1e-3) and torch.equal(rebuilt, again)
    assert 0 <= float(first.min()) and float(first.max()) <= 1
    assert torch.equal(first, second) and not torch.allclose(first, image, atol=0.1)
    assert net.training


def test_inversion_is_the_decoding_run_backwards(net):
    """The path runs from the noisiest timestep to the clean image, and decoding the
    inverted code retraces it to the slice."""
    net.eval()
    image = torch.rand(1, 1, 16, 16)
    z = net.encoder(image)
    path = net._ddim_path(4)
    steps = [t for t, _ in path]
    assert steps[0] == net.timesteps - 1 and steps[-2:] == [0, -1]
    assert len(path) == 5 and float(path[-1][1]) == 1.0
    with torch.no_grad():
        code = net.invert(image, z, 4)
        assert not torch.allclose(code, image * 2 - 1, atol=0.1)
        assert torch.allclose(net.decode(code, z, 4), image, atol=1e-3)


def test_image_size_must_fit_the_levels():
    with pytest.raises(ValueError, match="image_size 10 must be divisible by 2\\^2"):
        build(1, [10, 12, 9], {**PARAMS, "image_size": 10})


@pytest.mark.parametrize("name", ["diffae", "cnn3d"])
def test_only_semi_supervised_models_train_on_unlabelled_scans(
    synthetic_inputs, tmp_path, caplog, name
):
    """Four training controls lose their age (role ``unlabelled``): diffae trains on them
    (its log counts them), cnn3d does not; both predict only scans with an age."""
    torch.set_num_threads(1)
    folds = pd.read_csv(synthetic_inputs["folds"], sep="\t")
    hidden = folds.index[(folds["role"] == "train") & (folds["fold"] != 0)][:4]
    folds.loc[hidden, ["role", "fold"]] = ["unlabelled", -1]
    folds.loc[hidden, "age"] = np.nan
    folds.to_csv(tmp_path / "folds.tsv", sep="\t", index=False)
    params = {**NETWORK_PARAMS[name], "max_epochs": 1}
    with caplog.at_level(logging.INFO, logger="brainpad.training.fold"):
        table = train_fold(
            name, 0, tmp_path / "folds.tsv", params, 1, tmp_path / "pred.tsv",
            tmp_path / "model.pt", volumes_path=synthetic_inputs["volumes"],
            index_path=synthetic_inputs["index"],
        )  # fmt: skip
    unlabelled = 4 if get_spec(name).semi_supervised else 0
    assert f"({unlabelled} unlabelled)" in caplog.text
    assert not set(table["scan_id"]) & set(folds.loc[hidden, "scan_id"])
    assert np.isfinite(table["predicted"]).all()


def test_noise_schedule_is_ddpm_linear_betas(net):
    """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps with abar_t the product of
    1 - beta_s, betas linear from 1e-4 to 0.02 over the timesteps (Ho et al.)."""
    betas = np.linspace(1e-4, 0.02, PARAMS["timesteps"])
    abar = np.cumprod(1 - betas)
    x0, eps = torch.rand(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    t = torch.tensor([0, 10, PARAMS["timesteps"] - 1])
    noisy = net.scheduler.add_noise(x0, eps, t)
    a = torch.tensor(abar[t.numpy()], dtype=torch.float32).view(3, 1, 1, 1)
    assert torch.allclose(noisy, a.sqrt() * x0 + (1 - a).sqrt() * eps, atol=1e-5)
