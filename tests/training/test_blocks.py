"""Blocks of the voxelwise U-Net: sampling for training, and whole-brain tiling (MONAI)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainpad.models.local_unet import LocalUNet, block_geometry, geometry_for_voxel
from brainpad.training.blocks import (
    margin,
    mixing_ball,
    read_block,
    sample_blocks,
    sample_corners,
    training_batch,
)
from brainpad.training.inference import predict_map


def reference_stitch(predict, volume, mask, size_in, size_out, overlap, batch_size):
    """The hand-written tiling brainpad used before MONAI's (kept as the reference):
    output-block corners every size_out - overlap voxels (the last one aligned with the
    far edge), only blocks touching the mask, overlaps averaged in float64."""
    m = margin(size_in, size_out)
    ends = [(m, m + max(size_out - n, 0)) for n in mask.shape]  # short axes: one block
    source = np.pad(volume.astype(np.float32), [(0, 0), *ends])
    axes = []
    for n in mask.shape:
        last = max(n - size_out, 0)
        starts = list(range(0, last + 1, size_out - overlap))
        axes.append(starts + ([last] if starts[-1] != last else []))
    corners = np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], axis=1)
    corners = [c for c in corners if mask[tuple(slice(a, a + size_out) for a in c)].any()]
    total, count = np.zeros(mask.shape), np.zeros(mask.shape, int)
    for i in range(0, len(corners), batch_size):
        chunk = corners[i : i + batch_size]
        blocks = np.stack(
            [source[(slice(None), *(slice(a, a + size_in) for a in c))] for c in chunk]
        )
        for c, out in zip(chunk, predict(blocks), strict=True):
            where = tuple(slice(a, a + size_out) for a in c)
            total[where] += out[tuple(slice(0, s) for s in total[where].shape)]
            count[where] += 1
    result = np.full(mask.shape, np.nan, np.float32)
    covered = mask & (count > 0)
    result[covered] = (total[covered] / count[covered]).astype(np.float32)
    return result


def first_channel(output):
    return output[:, 0]


class Centre(torch.nn.Module):
    """A stand-in network whose output block is the centre of its input's first channel."""

    def __init__(self, size_in, size_out):
        super().__init__()
        self.inner = slice(margin(size_in, size_out), margin(size_in, size_out) + size_out)

    def forward(self, x):
        return x[:, :1, self.inner, self.inner, self.inner]


def test_tiling_a_centre_crop_gives_back_the_volume():
    rng = np.random.default_rng(0)
    volume = rng.normal(size=(2, 20, 18, 16)).astype(np.float32)
    mask = np.zeros((20, 18, 16), bool)
    mask[3:17, 2:15, 4:12] = True
    size_in, size_out = 14, 6
    net, cpu = Centre(size_in, size_out), torch.device("cpu")
    for overlap in (0, 3):
        result = predict_map(
            net, first_channel, volume, mask, (size_in, size_out), overlap, 5, cpu, (0.0, 1.0)
        )
        np.testing.assert_allclose(result[mask], volume[0][mask], rtol=1e-6)
        assert np.isnan(result[~mask]).all()


@pytest.mark.parametrize(
    ("shape", "overlap"), [((23, 17, 30), 0), ((23, 17, 30), 2), ((19, 5, 12), 1)]
)
def test_monai_tiling_reproduces_the_hand_written_one(shape, overlap):
    """MONAI's sliding window with brainpad's predictor gives the maps of the former
    hand-written tiling (same blocks, same averaging) to float32 rounding, including an
    axis shorter than the output block."""
    torch.manual_seed(0)
    net = LocalUNet(2, width=4, levels=1).eval()
    size_in, size_out = block_geometry(1, 5)  # 22 -> 6
    rng = np.random.default_rng(1)
    volume = rng.normal(size=(2, *shape)).astype(np.float32)
    mask = rng.random(shape) < 0.3
    mask[:, :, : shape[2] // 3] = False  # some blocks touch no brain and are skipped

    @torch.no_grad()
    def predict(blocks):
        return net(torch.from_numpy(blocks))[0][:, 0].numpy() * 10.0 + 50.0

    expected = reference_stitch(predict, volume, mask, size_in, size_out, overlap, 4)
    result = predict_map(
        net, lambda out: out[0][:, 0], volume, mask, (size_in, size_out), overlap, 4,
        torch.device("cpu"), (50.0, 10.0),
    )  # fmt: skip
    np.testing.assert_allclose(result[mask], expected[mask], rtol=1e-6, atol=1e-5)
    assert np.isnan(result[~mask]).all() and np.isfinite(result[mask]).all()


def test_a_constant_input_maps_to_the_per_block_output():
    torch.manual_seed(0)
    net = LocalUNet(2, width=4, levels=1).eval()
    size_in, size_out = block_geometry(1, 4)
    edge = size_out + margin(size_in, size_out)  # tiles touching the mask read no padding
    shape = (2 * edge + 6,) * 3
    volume = np.full((2, *shape), 0.5, np.float32)
    mask = np.zeros(shape, bool)
    inner = slice(edge, edge + 6)
    mask[inner, inner, inner] = True
    with torch.no_grad():
        block = net(torch.full((1, 2, size_in, size_in, size_in), 0.5))[0][:, 0].numpy()
    assert np.ptp(block) < 1e-5  # a constant input gives a constant block
    result = predict_map(
        net, lambda out: out[0][:, 0], volume, mask, (size_in, size_out), 2, 8,
        torch.device("cpu"), (0.0, 1.0),
    )  # fmt: skip
    np.testing.assert_allclose(result[mask], block.flat[0], rtol=1e-5)


def test_sampled_blocks_are_centred_in_the_brain():
    mask = np.zeros((30, 30, 30), bool)
    mask[10:20, 12:18, 5:25] = True
    corners = sample_corners(mask, 200, 6, np.random.default_rng(1))
    centres = corners + 3
    assert mask[tuple(np.clip(centres, 0, 29).T)].mean() > 0.9
    volume = np.arange(2 * 30**3, dtype=np.float32).reshape(1, 2, 30, 30, 30)
    block = read_block(volume, 0, corners[0], 16, 6)
    x, y, z = corners[0]
    np.testing.assert_array_equal(
        block[:, 5:11, 5:11, 5:11], volume[0, :, x : x + 6, y : y + 6, z : z + 6]
    )


def test_geometry_follows_the_paper_and_scales_with_the_voxel():
    assert block_geometry(2, 6) == (52, 12)  # study 1 at 1.5 mm
    assert block_geometry(1, 6, convs=1) == (18, 10)  # receptive field 9 voxels
    assert geometry_for_voxel(3.0, convs=1)[0] == geometry_for_voxel(3.0)[0]
    assert geometry_for_voxel(1.5) == (2, 6)
    size_in, size_out = block_geometry(*geometry_for_voxel(3.0))
    assert abs(size_out * 3.0 - 18) <= 3 and size_in > size_out
    with pytest.raises(ValueError, match="even number"):
        margin(13, 6)
    with pytest.raises(ValueError, match="overlap 6 must be smaller"):
        predict_map(
            None,
            None,
            np.zeros((1, 9, 9, 9)),
            np.ones((9, 9, 9), bool),
            (16, 6),
            6,
            1,
            torch.device("cpu"),
            (0.0, 1.0),
        )


def test_reading_a_block_from_the_array_matches_padding_the_scan():
    rng = np.random.default_rng(2)
    volumes = rng.normal(size=(3, 2, 15, 12, 14)).astype(np.float16)
    source = np.pad(volumes[1].astype(np.float32), [(0, 0)] + [(4, 4)] * 3)
    for corner in ([0, 0, 0], [9, 6, 8], [4, 3, 2]):
        expected = source[(slice(None), *(slice(c, c + 14) for c in corner))]
        np.testing.assert_array_equal(read_block(volumes, 1, np.array(corner), 14, 6), expected)


@pytest.mark.parametrize(("levels", "convs"), [(1, 1), (1, 2), (2, 1)])
def test_network_output_matches_the_block_geometry(levels, convs):
    size_in, size_out = block_geometry(levels, 4, convs)
    net = LocalUNet(2, width=2, levels=levels, convs=convs)
    out, aux = net(torch.zeros(1, 2, size_in, size_in, size_in))
    assert out.shape == (1, 1, size_out, size_out, size_out)
    assert [a.shape for a in aux] == [(1,), (1,)]
    convolutions = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
    assert len(convolutions) == (2 * levels + 1) * convs + 1  # + the 1x1 output


def test_mixing_ball_sits_in_the_output_block_with_a_soft_edge():
    rng = np.random.default_rng(3)
    size_in, size_out = 26, 10
    inner = (slice(8, 18),) * 3
    shares = []
    for _ in range(50):
        ball = mixing_ball(size_in, size_out, 1.0, rng)
        assert ball.shape == (size_in,) * 3 and 0 <= ball.min() and ball.max() <= 1
        centre = np.unravel_index(np.argmax(ball), ball.shape)
        assert all(7 <= c <= 18 for c in centre)  # centred in the output block
        assert ball[0, 0, 0] < 1e-3  # the far corner of the context is the block's own scan
        shares.append((ball[inner] > 0.5).mean())
    assert 0 < min(shares) < 0.2 and max(shares) > 0.8  # from a patch to most of the block
    sharp = mixing_ball(size_in, size_out, 0.05, np.random.default_rng(4))
    assert ((sharp < 0.01) | (sharp > 0.99)).mean() > 0.95


def test_age_mixing_mixes_inputs_and_targets_alike():
    # every scan's maps hold its own target age, so any mix of inputs shows in the input
    targets = np.array([20.0, 40.0, 60.0, 80.0])
    volumes = np.broadcast_to(targets[:, None, None, None, None], (4, 2, 16, 16, 16)).copy()
    mask = np.zeros((16, 16, 16), bool)
    mask[3:13, 3:13, 3:13] = True
    size_in, size_out, inner = 14, 6, (slice(4, 10),) * 3
    rows = np.arange(4)

    x, m, y = training_batch(volumes, rows, targets, 8, mask, size_in, size_out, rng(5))
    pick = rng(5).integers(0, 4, 8)
    assert (y == targets[pick][:, None, None, None]).all()  # without mixing: the scan's age
    rest = rng(5)
    rest.integers(0, 4, 8)
    expected_x, expected_m = sample_blocks(volumes, rows[pick], mask, size_in, size_out, rest)
    np.testing.assert_array_equal(x, expected_x)
    np.testing.assert_array_equal(m, expected_m)

    x, m, y = training_batch(volumes, rows, targets, 32, mask, size_in, size_out, rng(6), (1, 1))
    inside = x[:, 0][(slice(None), *inner)] != 0  # zeros: padding outside the volume
    np.testing.assert_allclose(x[:, 0][(slice(None), *inner)][inside], y[inside], rtol=1e-5)
    assert 20 - 1e-3 <= y.min() and y.max() <= 80 + 1e-3
    assert (np.ptp(y.reshape(32, -1), axis=1) > 1).mean() > 0.5  # mixed targets vary in a block


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)
