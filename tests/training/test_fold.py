"""Training one fold of each kind of model, and the fitted networks it writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from brainpad.models.vgg3d import VGG3D
from brainpad.training.fold import train_fold
from brainpad.training.inference import FittedNetwork
from brainpad.training.sets import fold_sets, scans_to_map
from conftest import NETWORK_PARAMS, write_image

VGG_PARAMS = NETWORK_PARAMS["vgg3d"]
LOCAL_PARAMS = NETWORK_PARAMS["local_unet"]


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


def test_each_heldout_participant_is_mapped_by_one_fold_model_when_asked(synthetic_folds):
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


@pytest.mark.parametrize("name", ["sfcn", "cnn3d", "cnn2d", "cnn3d-cortex-2"])
def test_every_whole_scan_network_trains_on_a_fold_and_reloads(synthetic_inputs, tmp_path, name):
    """sfcn and cnn3d read the 3D volumes, cnn2d the mid-axial slices, a region's base
    model (standardised) its crop; each learns something of the synthetic age signal in a
    few epochs and rebuilds from its model.pt, predicting as in training."""
    torch.set_num_threads(1)
    architecture = name.split("-")[0]
    params = {**NETWORK_PARAMS[architecture], "max_epochs": 25, "patience": 25}
    regions = np.zeros((14, 14, 12), np.int16)
    regions[4:11, 3:10, 2:8] = 1  # "cortex": a box inside the crop (2:12, 1:13, 0:10)
    write_image(tmp_path / "regions.nii.gz", regions, zooms=(4.0, 4.0, 4.0))
    if "cortex" in name:
        params["standardise"] = True
    table = train_fold(
        name,
        0,
        synthetic_inputs["folds"],
        params,
        1,
        tmp_path / "pred.tsv",
        tmp_path / "model.pt",
        volumes_path=synthetic_inputs["volumes"],
        slices_path=synthetic_inputs["slices"],
        index_path=synthetic_inputs["index"],
        regions_path=tmp_path / "regions.nii.gz",
    )
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    shape = {"cnn2d": [10, 12], "cnn3d-cortex-2": [9, 9, 8]}.get(name, [10, 12, 10])
    assert state["input_shape"] == shape  # the cortex box dilated by a voxel
    folds = pd.read_csv(synthetic_inputs["folds"], sep="\t").set_index("scan_id")
    age = folds.loc[table["scan_id"], "age"].to_numpy()
    r = np.corrcoef(table["predicted"], age)[0, 1]
    assert np.isfinite(table["predicted"]).all() and r > 0.5, r
    fitted = FittedNetwork(tmp_path / "model.pt", torch.device("cpu"))
    array = np.load(synthetic_inputs["slices" if name == "cnn2d" else "volumes"])
    rows = pd.read_csv(synthetic_inputs["index"], sep="\t").set_index("scan_id")["row"]
    again = fitted.predict(array[rows.loc[table["scan_id"]].to_numpy()])
    assert np.allclose(again, table["predicted"], atol=1e-3)


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
    assert state["settings"] == {"levels": 1, "block": [18, 2]} and len(state["history"]) == 2
    assert state["best_epoch"] in (1, 2)
    assert all(h["validation_mae"] == h["validation_scan_mae"] for h in state["history"])
    assert all(h["validation_voxel_mae"] > 0 for h in state["history"])
    assert state["input_mean"].shape == state["input_sd"].shape == (2, 10, 12, 10)
    sets = fold_sets(pd.read_csv(synthetic_inputs["folds"], sep="\t"), 0)
    assert (sets == "oof").sum() < len(table) < (sets != "").sum() - (sets == "train").sum()


@pytest.mark.slow
def test_a_fitted_network_reloads_and_maps_a_scan_as_in_training(synthetic_inputs, tmp_path):
    """FittedNetwork (the one inference path of the local checks and new scans) rebuilds
    the fold model from model.pt alone and gives back the maps training wrote."""
    import nibabel as nib

    from brainpad.cohort.arrays import crop_slices
    from brainpad.training.inference import FittedNetwork

    torch.set_num_threads(1)
    table = train_fold(
        "local_unet", 1, synthetic_inputs["folds"], LOCAL_PARAMS, 1, tmp_path / "pred.tsv",
        tmp_path / "model.pt", volumes_path=synthetic_inputs["volumes"],
        index_path=synthetic_inputs["index"], mask_path=synthetic_inputs["mask"],
        maps_path=tmp_path / "maps.npy",
    )  # fmt: skip
    index = pd.read_csv(synthetic_inputs["index"], sep="\t").set_index("scan_id")
    mask = np.asarray(nib.load(synthetic_inputs["mask"]).dataobj)
    mask = mask[crop_slices(index.reset_index())] > 0
    volumes = np.load(synthetic_inputs["volumes"], mmap_mode="r")
    fitted = FittedNetwork(tmp_path / "model.pt", torch.device("cpu"))
    first = table["scan_id"].iloc[0]
    mapped = fitted.map(np.asarray(volumes[index.loc[first, "row"]], np.float32), mask)
    written = np.load(tmp_path / "maps.npy")[0].astype(np.float32)
    np.testing.assert_allclose(mapped[mask], written[mask], atol=0.05)  # float16 on disk
    assert np.isnan(mapped[~mask]).all()
