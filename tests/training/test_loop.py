"""The one training loop: resuming, early stopping, checkpoints, learning rate, model files."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from brainpad.models import REGISTRY, load
from brainpad.training.blocks import BlockBatches, validation_figures
from brainpad.training.data import WholeScans
from brainpad.training.loop import learning_rate, network_state, run_epochs, save_atomic
from conftest import NETWORK_PARAMS

NETWORKS = sorted(name for name, spec in REGISTRY.items() if spec.reads != "roi")


def fit(name, volumes, checkpoint, max_epochs, signature="data-v1", **settings):
    """Train network ``name`` on 18 of the synthetic scans through the real loop."""
    torch.manual_seed(0)
    model = load(name)
    params = {**NETWORK_PARAMS[name], "max_epochs": max_epochs, **settings}
    rows, ages = np.arange(24), np.linspace(20, 80, 24)
    train, validation = (rows[:18], ages[:18]), (rows[18:], ages[18:])
    mean, sd, cpu = float(ages[:18].mean()), float(ages[:18].std()), torch.device("cpu")
    if model.SPEC.reads == "blocks":
        resolved = model.resolve(params, 1.0)
        size_in, size_out = resolved["block"]
        net = model.build(2, [size_in] * 3, {**params, **resolved})
        brain = np.ones(volumes.shape[2:], bool)
        data = BlockBatches(
            volumes, train, validation, brain, size_in, size_out, params, 1.0, 7, cpu, mean, sd
        )
    else:
        if model.SPEC.reads == "slices":  # the mid-axial slices, as build_arrays writes them
            volumes = np.ascontiguousarray(volumes[..., volumes.shape[-1] // 2])
        net = model.build(2, volumes.shape[2:], params)
        data = WholeScans(volumes, train, validation, params["batch_size"], 7, cpu, mean, sd)
    return run_epochs(net, model, data, params, cpu, checkpoint, signature)


def test_every_network_has_test_settings():
    assert set(NETWORKS) <= set(NETWORK_PARAMS)


@pytest.fixture
def volumes(synthetic_inputs):
    return np.load(synthetic_inputs["volumes"], mmap_mode="r")


def test_a_stale_checkpoint_is_ignored(volumes, tmp_path):
    fit("vgg3d", volumes, tmp_path / "c.pt", 2, signature="old data")
    _, history = fit("vgg3d", volumes, tmp_path / "c.pt", 1, signature="new data")
    assert len(history) == 1


def test_early_stopping_stops(volumes, tmp_path):
    _, history = fit(
        "vgg3d", volumes, tmp_path / "d.pt", 50, learning_rate=0.0, patience=3, widths=[4]
    )
    assert len(history) == 4  # no learning: the first epoch stays best, then 3 more


class Killed(Exception):
    """Stands in for SIGKILL: raised from inside an optimiser step, mid-epoch."""


@contextlib.contextmanager
def optimiser_steps(kill_at: int | None = None):
    """Count every optimiser step (of any network) and raise Killed at step ``kill_at``."""
    steps: list[int] = []

    def hook(optimiser, args, kwargs):
        steps.append(len(steps))
        if kill_at is not None and len(steps) > kill_at:
            raise Killed("killed mid-epoch")

    handle = register_optimizer_step_pre_hook(hook)
    try:
        yield steps
    finally:
        handle.remove()


@pytest.mark.slow
@pytest.mark.parametrize("network", NETWORKS)
def test_a_network_killed_mid_epoch_resumes_exactly(volumes, tmp_path, network):
    """Killed in epoch 3 of 4, a network resumes from the epoch-2 checkpoint, does not redo
    epochs 1-2 (fails if resuming is switched off) and ends with an unbroken run's weights."""
    torch.set_num_threads(1)
    with optimiser_steps() as steps:
        straight, history = fit(network, volumes, tmp_path / "a.pt", max_epochs=4)
    per_epoch = len(steps) // 4
    with pytest.raises(Killed), optimiser_steps(kill_at=2 * per_epoch + per_epoch // 2):
        fit(network, volumes, tmp_path / "b.pt", max_epochs=4)
    assert torch.load(tmp_path / "b.pt", weights_only=True)["state"]["epoch"] == 2
    with optimiser_steps() as steps:
        resumed, resumed_history = fit(network, volumes, tmp_path / "b.pt", max_epochs=4)
    assert len(steps) == 2 * per_epoch  # epochs 3 and 4 only
    assert [h["epoch"] for h in resumed_history] == [1, 2, 3, 4]
    assert [h["validation_mae"] for h in resumed_history] == [h["validation_mae"] for h in history]
    for name, tensor in straight.items():
        assert torch.equal(tensor, resumed[name]), name


@pytest.mark.parametrize("network", NETWORKS)
def test_a_corrupt_checkpoint_restarts_training_with_a_warning(volumes, tmp_path, caplog, network):
    checkpoint = tmp_path / "c.pt"
    fit(network, volumes, checkpoint, max_epochs=1)
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])  # cut short, as by a full disk
    _, history = fit(network, volumes, checkpoint, max_epochs=2)
    assert [h["epoch"] for h in history] == [1, 2]
    assert f"checkpoint {checkpoint} is unreadable" in caplog.text
    assert "training this fold from scratch" in caplog.text


def test_validation_figures_match_voxel_and_scan_means():
    rng = np.random.default_rng(3)
    scan = np.array([0, 0, 0, 1, 1, 2])
    ages = np.array([30.0, 55.0, 72.0])
    out = rng.normal(50, 15, (6, 4, 4, 4))
    mask = rng.random((6, 4, 4, 4)) < 0.6
    errors = (np.abs(out - ages[scan][:, None, None, None]) * mask).sum((1, 2, 3))
    figures = validation_figures(
        errors, (out * mask).sum((1, 2, 3)), mask.sum((1, 2, 3)), scan, ages
    )
    voxel_ages = np.broadcast_to(ages[scan][:, None, None, None], out.shape)
    assert figures["validation_voxel_mae"] == pytest.approx(np.abs(out - voxel_ages)[mask].mean())
    scan_means = [out[scan == s][mask[scan == s]].mean() for s in range(3)]
    assert figures["validation_scan_mae"] == pytest.approx(np.abs(scan_means - ages).mean())


def test_cosine_learning_rate_decays_from_base_to_zero():
    assert learning_rate(0.002, 0, 100, "cosine") == pytest.approx(0.002)
    assert learning_rate(0.002, 50, 100, "cosine") == pytest.approx(0.001)
    assert learning_rate(0.002, 100, 100, "cosine") == pytest.approx(0.0, abs=1e-12)
    assert learning_rate(0.002, 70, 100, "none") == 0.002


def test_a_model_file_does_not_depend_on_whether_training_was_resumed(tmp_path):
    """model.pt of a resumed run (early epochs read back from the checkpoint) has the
    bytes of an unbroken run's: no timings, plain numbers, the same pickled structure."""
    history = [
        {"epoch": e, "train_mae": 10.0 / e, "validation_mae": 12.0 / e, "seconds": 0.1 * e}
        for e in (1, 2, 3)
    ]
    save_atomic({"history": history[:2]}, tmp_path / "checkpoint.pt")
    resumed = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["history"] + history[2:]
    files = []
    for h in (history, resumed):
        state = network_state("vgg3d", "image", {"widths": [4]}, {"w": torch.ones(2)}, 50.0, 9.0, h)
        torch.save(state, tmp_path / "model.pt")
        files.append((tmp_path / "model.pt").read_bytes())
    assert files[0] == files[1]
