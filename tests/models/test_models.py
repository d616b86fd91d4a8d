"""Model registry, the two base models, fold sets and the training loop."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from brainpad.models import REGISTRY, get_spec, ridge_roi
from brainpad.models.local_unet import block_geometry, build
from brainpad.models.vgg3d import VGG3D
from brainpad.training.fold import fit_network, fold_sets, train_fold
from brainpad.training.loop import network_state, save_atomic
from brainpad.training.voxel import fit_local_unet

VGG_PARAMS = {
    "widths": [4, 8],
    "dense": [16],
    "batch_size": 4,
    "learning_rate": 0.003,
    "max_epochs": 4,
    "patience": 10,
    "validation_fraction": 0.125,
}


def test_registry_knows_both_models_and_names_the_alternatives():
    assert {"ridge_roi", "vgg3d"} <= set(REGISTRY)
    assert get_spec("vgg3d").kind == "image" and get_spec("ridge_roi").kind == "tabular"
    with pytest.raises(KeyError, match=r"unknown model 'resnet'.*known models"):
        get_spec("resnet")


@pytest.mark.parametrize("shape", [(10, 12, 10), (17, 21, 19), (5, 5, 5)])
def test_vgg3d_accepts_any_crop(shape):
    net = VGG3D(2, shape, widths=(4, 8, 8), dense=(16,))
    out = net(torch.zeros(3, 2, *shape))
    assert out.shape == (3,)


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
    state = ridge_roi.fit(features, age, alphas=[1e-3, 1.0])
    assert np.abs(ridge_roi.predict(state, features) - age).max() < 0.5
    assert json.dumps(state)  # plain values only: safe to save without pickle
    with pytest.raises(ValueError, match="lacks 1 training columns"):
        ridge_roi.predict(state, features.drop(columns="b"))


def test_fold_sets_keep_participants_together(synthetic_folds):
    sets = fold_sets(synthetic_folds, 1, validation_fraction=0.2)
    assert set(sets) == {"train", "validation", "oof", "heldout"}
    per_person = synthetic_folds.assign(set=sets).groupby("participant_id")["set"].nunique()
    assert per_person.max() == 1
    assert (synthetic_folds.loc[sets == "oof", "fold"] == 1).all()
    assert (synthetic_folds.loc[sets == "heldout", "role"] != "train").all()
    with pytest.raises(ValueError, match=r"fold 3 does not exist: folds\.tsv has folds 0\.\.2"):
        fold_sets(synthetic_folds, 3)


def test_fold_sets_leave_failed_scans_out(synthetic_folds):
    folds = synthetic_folds.copy()
    clinical = folds.index[folds["role"] == "clinical"][0]
    folds.loc[clinical, "qc_passed"] = False
    assert fold_sets(folds, 0)[clinical] == ""


def test_train_fold_ridge_predicts_oof_and_heldout(synthetic_inputs, tmp_path):
    table = train_fold(
        "ridge_roi",
        0,
        synthetic_inputs["folds"],
        {"alphas": [1.0, 10.0]},
        1,
        tmp_path / "pred.tsv",
        tmp_path / "model.pt",
        roi_path=synthetic_inputs["roi"],
    )
    written = pd.read_csv(tmp_path / "pred.tsv", sep="\t")
    assert written.columns.tolist() == ["scan_id", "model", "fold", "set", "predicted"]
    assert set(written["set"]) == {"oof", "heldout"}
    folds = pd.read_csv(synthetic_inputs["folds"], sep="\t").set_index("scan_id")
    error = np.abs(table["predicted"].to_numpy() - folds.loc[table["scan_id"], "age"])
    assert error.mean() < 8  # the features carry biological age (offset SD 3 y)
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert state["model"] == "ridge_roi" and len(state["coef"]) == 6


def test_train_fold_vgg3d_writes_predictions_and_removes_checkpoint(synthetic_inputs, tmp_path):
    torch.set_num_threads(1)
    table = train_fold(
        "vgg3d",
        2,
        synthetic_inputs["folds"],
        VGG_PARAMS,
        1,
        tmp_path / "pred.tsv",
        tmp_path / "model.pt",
        volumes_path=synthetic_inputs["volumes"],
        index_path=synthetic_inputs["index"],
    )
    assert np.isfinite(table["predicted"]).all()
    assert not (tmp_path / "model.checkpoint.pt").exists()
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert len(state["history"]) == 4 and state["input_shape"] == [10, 12, 10]
    net = VGG3D(
        state["in_channels"],
        state["input_shape"],
        **{k: state["params"][k] for k in ("widths", "dense")},
    )
    net.load_state_dict(state["state_dict"])  # the saved state rebuilds the network


def _fit(volumes, checkpoint, max_epochs, signature="data-v1"):
    torch.manual_seed(0)
    net = VGG3D(2, volumes.shape[2:], widths=(4, 8), dense=(8,))
    rows = np.arange(24)
    ages = np.linspace(20, 80, 24)
    params = {**VGG_PARAMS, "max_epochs": max_epochs}
    best, history, *_ = fit_network(
        net,
        volumes,
        (rows[:18], ages[:18]),
        (rows[18:], ages[18:]),
        params,
        7,
        torch.device("cpu"),
        checkpoint,
        signature,
    )
    return best, history


def test_a_stale_checkpoint_is_ignored(synthetic_inputs, tmp_path):
    volumes = np.load(synthetic_inputs["volumes"], mmap_mode="r")
    _fit(volumes, tmp_path / "c.pt", 2, signature="old data")
    _, history = _fit(volumes, tmp_path / "c.pt", 1, signature="new data")
    assert len(history) == 1


def test_early_stopping_stops(synthetic_inputs, tmp_path):
    volumes = np.load(synthetic_inputs["volumes"], mmap_mode="r")
    torch.manual_seed(0)
    net = VGG3D(2, volumes.shape[2:], widths=(4,), dense=(4,))
    params = {**VGG_PARAMS, "learning_rate": 0.0, "max_epochs": 50, "patience": 3}
    ages = np.linspace(20, 80, 24)
    _, history, *_ = fit_network(
        net,
        volumes,
        (np.arange(18), ages[:18]),
        (np.arange(18, 24), ages[18:]),
        params,
        0,
        torch.device("cpu"),
        tmp_path / "d.pt",
        "x",
    )
    assert len(history) == 4  # no learning: the first epoch stays best, then 3 more


LOCAL_PARAMS = {
    "width": 4,
    "levels": 1,
    "bottleneck": 3,
    "batch_size": 4,
    "learning_rate": 0.003,
    "iterations_per_epoch": 3,
    "max_epochs": 2,
    "patience": 5,
    "aux_weights": [0.5, 0.25],
    "aux_decay_iterations": 4,
    "validation_fraction": 0.125,
    "validation_blocks": 2,
    "tile_overlap": 0.5,
    "standardise": True,
    "heldout_models": "one",
    "lr_decay": "cosine",
    "mix_fraction": 0.0,
    "mix_edge_mm": 3.0,
    "selection": "scan",
}


@pytest.mark.slow
@pytest.mark.parametrize("mix_fraction", [0.0, 0.5])
def test_train_fold_local_unet_writes_maps_whose_mean_is_the_global_age(
    synthetic_inputs, tmp_path, mix_fraction
):
    torch.set_num_threads(1)
    table = train_fold(
        "local_unet",
        0,
        synthetic_inputs["folds"],
        {**LOCAL_PARAMS, "mix_fraction": mix_fraction},
        1,
        tmp_path / "pred.tsv",
        tmp_path / "model.pt",
        volumes_path=synthetic_inputs["volumes"],
        index_path=synthetic_inputs["index"],
        mask_path=synthetic_inputs["mask"],
        maps_path=tmp_path / "maps.npy",
    )
    maps = np.load(tmp_path / "maps.npy")
    assert maps.shape == (len(table), 10, 12, 10) and maps.dtype == np.float16
    brain = np.isfinite(maps[0])
    assert brain.sum() > 50 and not brain.all()  # masked: NaN outside the brain
    np.testing.assert_allclose(
        [np.nanmean(m.astype(np.float32)) for m in maps], table["predicted"], rtol=1e-2
    )
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert state["block"] == [18, 2] and len(state["history"]) == 2
    assert state["best_epoch"] in (1, 2)
    assert all(h["validation_mae"] == h["validation_scan_mae"] for h in state["history"])
    assert all(h["validation_voxel_mae"] > 0 for h in state["history"])
    assert state["input_mean"].shape == state["input_sd"].shape == (2, 10, 12, 10)
    sets = fold_sets(pd.read_csv(synthetic_inputs["folds"], sep="\t"), 0)
    assert (sets == "oof").sum() < len(table) < (sets != "").sum() - (sets == "train").sum()


def _fit_local(volumes, checkpoint, max_epochs):
    torch.manual_seed(0)
    params = {**LOCAL_PARAMS, "max_epochs": max_epochs}
    size_in, size_out = block_geometry(params["levels"], params["bottleneck"])
    rows, ages = np.arange(24), np.linspace(20, 80, 24)
    best, history, *_ = fit_local_unet(
        build(2, params),
        volumes,
        np.ones(volumes.shape[2:], bool),
        (rows[:18], ages[:18]),
        (rows[18:], ages[18:]),
        params,
        7,
        torch.device("cpu"),
        checkpoint,
        "data-v1",
        size_in,
        size_out,
        mixing=(0.5, 1.0),
    )
    return best, history


# every network of the registry, trained for 4 epochs from its checkpoint file
FITTERS = {"vgg3d": _fit, "local_unet": _fit_local}


def test_every_network_joins_the_resume_test():
    assert set(FITTERS) == {name for name, spec in REGISTRY.items() if spec.kind != "tabular"}


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
@pytest.mark.parametrize("network", sorted(FITTERS))
def test_a_network_killed_mid_epoch_resumes_exactly(synthetic_inputs, tmp_path, network):
    """Killed in epoch 3 of 4, a network resumes from the epoch-2 checkpoint, does not redo
    epochs 1-2 (fails if resuming is switched off) and ends with an unbroken run's weights."""
    torch.set_num_threads(1)
    fit = FITTERS[network]
    volumes = np.load(synthetic_inputs["volumes"], mmap_mode="r")
    with optimiser_steps() as steps:
        straight, history = fit(volumes, tmp_path / "a.pt", max_epochs=4)
    per_epoch = len(steps) // 4
    with pytest.raises(Killed), optimiser_steps(kill_at=2 * per_epoch + per_epoch // 2):
        fit(volumes, tmp_path / "b.pt", max_epochs=4)
    assert torch.load(tmp_path / "b.pt", weights_only=True)["state"]["epoch"] == 2
    with optimiser_steps() as steps:
        resumed, resumed_history = fit(volumes, tmp_path / "b.pt", max_epochs=4)
    assert len(steps) == 2 * per_epoch  # epochs 3 and 4 only
    assert [h["epoch"] for h in resumed_history] == [1, 2, 3, 4]
    assert [h["validation_mae"] for h in resumed_history] == [h["validation_mae"] for h in history]
    for name, tensor in straight.items():
        assert torch.equal(tensor, resumed[name]), name


@pytest.mark.parametrize("network", sorted(FITTERS))
def test_a_corrupt_checkpoint_restarts_training_with_a_warning(
    synthetic_inputs, tmp_path, caplog, network
):
    volumes = np.load(synthetic_inputs["volumes"], mmap_mode="r")
    checkpoint = tmp_path / "c.pt"
    FITTERS[network](volumes, checkpoint, max_epochs=1)
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])  # cut short, as by a full disk
    _, history = FITTERS[network](volumes, checkpoint, max_epochs=2)
    assert [h["epoch"] for h in history] == [1, 2]
    assert f"checkpoint {checkpoint} is unreadable" in caplog.text
    assert "training this fold from scratch" in caplog.text


def test_validation_figures_match_voxel_and_scan_means():
    from brainpad.training.voxel import validation_figures

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


def test_each_heldout_participant_is_mapped_by_one_fold_model_when_asked(synthetic_folds):
    from brainpad.training.voxel import scans_to_map

    folds = synthetic_folds
    sets = [fold_sets(folds, f) for f in range(3)]
    heldout = sets[0] == "heldout"
    one = [scans_to_map(folds, sets[f], f, "one") for f in range(3)]
    assert (sum(m[heldout].astype(int) for m in one) == 1).all()
    for f, mapped in enumerate(one):
        assert mapped[sets[f] == "oof"].all() and not mapped[sets[f] == "train"].any()
        people = set(folds.loc[mapped & heldout, "participant_id"])
        assert mapped[heldout & folds["participant_id"].isin(people)].all()  # repeats follow
    everything = scans_to_map(folds, sets[1], 1, "all")
    assert everything[heldout].all() and everything[sets[1] == "oof"].all()


def test_cosine_learning_rate_decays_from_base_to_zero():
    from brainpad.training.voxel import learning_rate

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
