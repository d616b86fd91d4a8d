"""Relevance maps: captum's LRP and Grad-CAM on small networks, normalisation, cohort maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from brainpad.interpret.relevance import last_convolution, normalised, relevance
from brainpad.models.cnn3d import CNN3D
from brainpad.models.sfcn import SFCN
from brainpad.models.sfcn import to_age as sfcn_age
from brainpad.models.vgg3d import VGG3D


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


class Linear3D(nn.Module):
    """age = Σ w·x: LRP's ε rule must give back w·x per voxel."""

    def __init__(self, shape) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.dense = nn.Linear(int(np.prod(shape)), 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.flatten(x)).squeeze(1)


def test_lrp_of_a_linear_model_is_weight_times_input():
    torch.manual_seed(0)
    shape = (1, 4, 5, 3)
    net = Linear3D(shape)
    x = np.random.default_rng(0).normal(size=(3, *shape)).astype(np.float32)
    maps = relevance(net, _identity, x, "lrp")
    expected = (net.dense.weight.detach().numpy().reshape(shape) * x).sum(1)
    np.testing.assert_allclose(maps, expected, rtol=1e-4, atol=1e-6)
    # relevance is conserved: each map sums to the prediction
    predicted = net(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(maps.reshape(3, -1).sum(1), predicted, rtol=1e-4)


def test_alpha1beta0_keeps_only_positive_contributions():
    torch.manual_seed(0)
    shape = (1, 3, 3, 3)
    net = Linear3D(shape)
    x = np.abs(np.random.default_rng(1).normal(size=(2, *shape))).astype(np.float32)
    maps = relevance(net, _identity, x, "lrp", lrp_rule="alpha1beta0")
    contributions = (net.dense.weight.detach().numpy().reshape(shape) * x).sum(1)
    assert (maps[contributions <= 0] == 0).all()  # negative contributions get nothing
    positive = contributions.clip(min=0)
    output = net(torch.from_numpy(x)).detach().numpy()
    # the output is shared among the positive contributions in proportion
    expected = positive / positive.reshape(2, -1).sum(1)[:, None, None, None]
    np.testing.assert_allclose(maps, expected * output[:, None, None, None], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize(
    ("net", "to_age", "channels"),
    [
        (VGG3D(2, (12, 14, 12), widths=(4, 8), dense=(8,)), _identity, 2),
        (CNN3D(1, (12, 14, 12), filters=(4, 4), kernels=(3, 1), dense=8), _identity, 1),
        (SFCN(2, (12, 14, 12), widths=(4, 8), head_width=4, bins=10), sfcn_age, 2),
    ],
    ids=["vgg3d", "cnn3d", "sfcn"],
)
@pytest.mark.parametrize("method", ["lrp", "gradcam"])
def test_every_3d_network_gets_a_finite_map_on_its_input_grid(net, to_age, channels, method):
    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(3, channels, 12, 14, 12)).astype(np.float32)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    maps = relevance(net, to_age, x, method, batch_size=2)
    assert maps.shape == (3, 12, 14, 12)
    assert np.isfinite(maps).all() and np.abs(maps).sum() > 0
    # the trained network is left as it was (captum works on a copy)
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_grad_cam_uses_the_feature_extractor_not_a_pooled_classifier():
    net = SFCN(2, (12, 14, 12), widths=(4, 8), head_width=4, bins=10)
    convolutions = [m for m in net.features.modules() if isinstance(m, nn.Conv3d)]
    assert last_convolution(net) is convolutions[-1]
    with pytest.raises(ValueError, match="no convolutional layer"):
        last_convolution(nn.Sequential(nn.Flatten(), nn.Linear(4, 1)))


def test_unknown_method_and_rule_are_refused():
    net = Linear3D((1, 2, 2, 2))
    x = np.zeros((1, 1, 2, 2, 2), np.float32)
    with pytest.raises(ValueError, match="unknown relevance method 'shap'"):
        relevance(net, _identity, x, "shap")
    with pytest.raises(ValueError, match=r"interpret\.lrp_rule is 'gamma'"):
        relevance(net, _identity, x, "lrp", lrp_rule="gamma")


def test_normalised_maps_have_mean_absolute_one_inside_the_mask():
    rng = np.random.default_rng(0)
    maps = (
        rng.normal(size=(4, 5, 6, 7)).astype(np.float32)
        * np.array([1, 10, 100, 0])[:, None, None, None]
    )
    mask = rng.random((5, 6, 7)) > 0.3
    out = normalised(maps, mask)
    assert (out[:, ~mask] == 0).all()
    np.testing.assert_allclose(np.abs(out[:3, mask]).mean(1), 1.0, rtol=1e-5)
    assert (out[3] == 0).all()  # an all-zero map stays zero
