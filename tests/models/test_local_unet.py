"""Study 1's training loss: masked voxel MAE plus auxiliary block MAEs that fade out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainpad.models.local_unet import LocalUNet, aux_fade, block_geometry, block_loss


@pytest.fixture
def batch():
    """Two 4³ output blocks with random predictions, targets and a partial brain mask."""
    rng = np.random.default_rng(0)
    out = rng.normal(size=(2, 1, 4, 4, 4))
    target = rng.normal(size=(2, 4, 4, 4))
    mask = (rng.random((2, 4, 4, 4)) < 0.6).astype(float)
    aux = [rng.normal(size=2), rng.normal(size=2)]
    return out, aux, mask, target


def as_tensors(out, aux, mask, target):
    f = torch.float64
    return (
        torch.tensor(out, dtype=f),
        [torch.tensor(a, dtype=f) for a in aux],
        torch.tensor(mask, dtype=f),
        torch.tensor(target, dtype=f),
    )


def test_voxel_mae_counts_only_brain_voxels(batch):
    out, aux, mask, target = batch
    total, voxel = block_loss(*as_tensors(out, aux, mask, target), [0.5, 0.25], fade=0.0)
    inside = mask.astype(bool)
    expected = np.abs(out[:, 0] - target)[inside].mean()
    assert float(voxel) == pytest.approx(expected)
    assert float(total) == pytest.approx(expected)
    # predictions outside the brain do not matter
    wild = out.copy()
    wild[:, 0][~inside] = 1e6
    _, voxel_wild = block_loss(*as_tensors(wild, aux, mask, target), [0.5, 0.25], fade=0.0)
    assert float(voxel_wild) == pytest.approx(expected)


def test_auxiliary_losses_compare_each_head_with_the_block_mean_target(batch):
    out, aux, mask, target = batch
    weights, fade = [0.5, 0.25], 0.4
    total, voxel = block_loss(*as_tensors(out, aux, mask, target), weights, fade)
    block_mean = target.mean(axis=(1, 2, 3))
    auxiliary = sum(w * np.abs(a - block_mean).mean() for w, a in zip(weights, aux, strict=True))
    assert float(total) == pytest.approx(float(voxel) + fade * auxiliary)


@pytest.mark.parametrize(
    ("step", "decay", "expected"),
    [
        (0, 500, 1.0),
        (125, 500, 0.75),
        (499, 500, 0.002),
        (500, 500, 0.0),
        (900, 500, 0.0),
        (0, 0, 0.0),
    ],
)
def test_auxiliary_weights_fade_linearly_to_zero(step, decay, expected):
    assert aux_fade(step, decay) == pytest.approx(expected)


@pytest.mark.parametrize(("fade", "heads_learn"), [(1.0, True), (0.0, False)])
def test_auxiliary_heads_learn_only_while_their_weight_lasts(fade, heads_learn):
    torch.manual_seed(0)
    net = LocalUNet(2, width=2, levels=1, convs=1)
    size_in, size_out = block_geometry(1, 4, 1)
    out, aux = net(torch.randn(2, 2, size_in, size_in, size_in))
    mask = torch.ones(2, size_out, size_out, size_out)
    target = torch.full((2, size_out, size_out, size_out), 0.5)
    loss, _ = block_loss(out, aux, mask, target, [0.5, 0.25], fade)
    loss.backward()
    head_grads = [h.weight.grad for h in net.aux]
    learns = [g is not None and bool(g.abs().sum() > 0) for g in head_grads]
    assert learns == [heads_learn, heads_learn]
    assert net.out.weight.grad.abs().sum() > 0
