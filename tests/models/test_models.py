"""The model registry and what each model module builds."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from brainpad.models import REGISTRY, cnn3d, get_spec, load, ridge_roi, sfcn
from brainpad.models.cnn2d import CNN2D
from brainpad.models.cnn3d import CNN3D
from brainpad.models.sfcn import SFCN
from brainpad.models.vgg3d import VGG3D
from brainpad.training.data import Batch


def test_registry_knows_every_model_and_names_the_alternatives():
    assert {"ridge_roi", "vgg3d", "sfcn", "cnn3d", "cnn2d", "local_unet"} <= set(REGISTRY)
    assert get_spec("sfcn").output == "bins" and get_spec("cnn2d").reads == "slices"
    assert get_spec("vgg3d").kind == "image" and get_spec("ridge_roi").kind == "tabular"
    assert get_spec("local_unet").kind == "voxel"
    with pytest.raises(KeyError, match=r"unknown model 'resnet'.*known models"):
        get_spec("resnet")


def test_the_registry_reads_specs_without_importing_torch():
    """Planning imports the registry on every run; torch alone takes over a second."""
    code = (
        "import sys; import brainpad.models as m; m.get_spec('vgg3d'); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_model_module_declares_the_spec_it_is_registered_with(name):
    module = load(name)
    assert module.SPEC.name == name and module.SPEC.reads == get_spec(name).reads
    needed = ("fit", "predict") if module.SPEC.reads == "roi" else ("build", "loss", "to_age")
    assert all(callable(getattr(module, f, None)) for f in needed)


def test_vgg3d_has_study4_blocks():
    net = VGG3D(2, (32, 32, 32))
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv3d)]
    assert [c.out_channels for c in convs] == [16, 32, 64, 128, 256]
    assert sum(isinstance(m, torch.nn.BatchNorm3d) for m in net.features) == 5
    dense = [m.out_features for m in net.head if isinstance(m, torch.nn.Linear)]
    assert dense == [512, 128, 1]


def test_ridge_recovers_a_linear_age_signal():
    rng = np.random.default_rng(0)
    age = rng.uniform(20, 80, 200)
    features = pd.DataFrame({"a": 3000 - 10 * age, "b": rng.normal(0, 1, 200), "c": 0.0})
    state = ridge_roi.fit(features, age, {"alphas": [1e-3, 1.0]})
    assert np.abs(ridge_roi.predict(state, features) - age).max() < 0.5
    assert json.dumps(state)  # plain values only: safe to save without pickle
    with pytest.raises(ValueError, match="lacks 1 training columns"):
        ridge_roi.predict(state, features.drop(columns="b"))


def test_sfcn_soft_labels_sum_to_one_and_their_expected_age_is_the_age():
    centres = sfcn.bin_centres(60)
    assert len(centres) == 60 and torch.isclose(centres.mean(), torch.tensor(0.0), atol=1e-6)
    age = torch.linspace(-2.0, 2.0, 101)  # well inside the ±3.5 SD the bins span
    labels = sfcn.soft_labels(age, centres, sd_bins=1.0)
    assert torch.allclose(labels.sum(1), torch.ones(101))
    expected = sfcn.expected_age(labels.log(), centres)
    assert (expected - age).abs().max() < 1e-4  # unbiased, bin centres or not
    # σ of one bin: the label's SD equals the bin width
    sd = ((labels * (centres - age[:, None]) ** 2).sum(1)).sqrt()
    assert torch.allclose(sd, torch.full_like(sd, float(centres[1] - centres[0])), rtol=0.05)


def test_sfcn_expected_age_is_unbiased_over_a_known_age_distribution():
    """Predicting each age's own soft label, the expected ages carry no bias and no
    shrinkage over a uniform 20-85 y cohort in standard units."""
    rng = np.random.default_rng(0)
    years = rng.uniform(20, 85, 2000)
    age = torch.as_tensor((years - years.mean()) / years.std(), dtype=torch.float32)
    centres = sfcn.bin_centres(40)
    back = sfcn.expected_age(sfcn.soft_labels(age, centres, 1.0).log(), centres)
    slope = np.polyfit(age.numpy(), back.numpy(), 1)[0]
    assert abs(float((back - age).mean())) < 1e-3 and abs(slope - 1) < 1e-3


def test_sfcn_outputs_log_probabilities_and_its_loss_is_zero_on_its_own_labels():
    net = SFCN(2, (12, 14, 10), widths=(4, 8, 8), head_width=8, bins=30)
    out = net(torch.randn(3, 2, 12, 14, 10))
    assert out.shape == (3, 30) and torch.allclose(out.exp().sum(1), torch.ones(3))
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv3d)]
    assert [c.kernel_size for c in convs] == [(3, 3, 3)] * 3 + [(1, 1, 1)]
    assert not any(isinstance(m, torch.nn.Linear) for m in net.modules())  # fully convolutional
    batch = Batch(x=None, y=torch.tensor([-1.0, 0.0, 1.5]))
    target = sfcn.soft_labels(batch.y, sfcn.bin_centres(30), 1.0)
    kl, mae = sfcn.loss(target.clamp_min(1e-30).log(), batch, 0, {"label_sd": 1.0})
    assert float(kl) == pytest.approx(0.0, abs=1e-6) and float(mae) < 1e-4
    shifted = target.roll(3, dims=1).clamp_min(1e-30).log()
    kl_off, _ = sfcn.loss(shifted, batch, 0, {"label_sd": 1.0})
    assert float(kl_off) > 1.0


def test_sfcn_has_the_papers_blocks_at_its_default_widths():
    net = SFCN(1, (40, 48, 40))
    convs = [m.out_channels for m in net.features if isinstance(m, torch.nn.Conv3d)]
    assert convs == [32, 64, 128, 256, 256, 64]
    assert 2.5e6 < sum(p.numel() for p in net.parameters()) < 3.5e6  # "~3 M parameters"


def test_cnn3d_has_study3_blocks_and_starts_at_the_mean_age():
    net = CNN3D(2, (40, 48, 40))
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv3d)]
    assert [c.out_channels for c in convs] == [16, 16, 32, 64, 32]
    assert [c.kernel_size[0] for c in convs] == [3, 3, 3, 3, 1]
    pools = [m for m in net.features if isinstance(m, torch.nn.MaxPool3d)]
    assert all(p.kernel_size == 3 and p.stride == 2 for p in pools) and len(pools) == 5
    slopes = {m.negative_slope for m in net.modules() if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.2}
    dense = [m for m in net.head if isinstance(m, torch.nn.Linear)]
    assert [d.out_features for d in dense] == [64, 1] and dense[-1].bias.item() == 0.0
    with pytest.raises(ValueError, match="3 filters but 2 kernels"):
        CNN3D(2, (10, 10, 10), filters=(4, 4, 4), kernels=(3, 3))


def test_cnn3d_loss_is_the_squared_error_and_reports_the_mae():
    batch = Batch(x=None, y=torch.tensor([0.0, 1.0]))
    mse, mae = cnn3d.loss(torch.tensor([1.0, 3.0]), batch, 0, {})
    assert float(mse) == pytest.approx(2.5) and float(mae) == pytest.approx(1.5)


@pytest.mark.parametrize("shape", [(10, 12, 10), (17, 21, 19), (5, 5, 5)])
def test_3d_networks_accept_any_crop(shape):
    x = torch.zeros(3, 2, *shape)
    assert VGG3D(2, shape, widths=(4, 8, 8), dense=(16,))(x).shape == (3,)
    assert CNN3D(2, shape, filters=(4, 4, 8), kernels=(3, 3, 1), dense=8)(x).shape == (3,)
    assert SFCN(2, shape, widths=(4, 8), head_width=4, bins=10)(x).shape == (3, 10)
    assert CNN3D(2, shape, filters=(4,), kernels=(3,), downsample=2)(x).shape == (3,)


@pytest.mark.parametrize("shape", [(10, 12), (33, 41), (3, 3)])
def test_cnn2d_accepts_any_slice(shape):
    net = CNN2D(2, shape, widths=(4, 8), dense=8, downsample=2)
    assert net(torch.zeros(3, 2, *shape)).shape == (3,)
    assert net.head[-1].bias.item() == 0.0
