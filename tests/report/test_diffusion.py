"""Study 2's reconstruction figure from a trained diffae fold model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from brainpad.report.diffusion import chosen_scans, reconstruction_figure
from brainpad.training.fold import train_fold
from conftest import NETWORK_PARAMS


def test_chosen_scans_spread_over_the_test_ages(synthetic_folds):
    chosen = chosen_scans(synthetic_folds, 3)
    test = synthetic_folds[synthetic_folds["role"] == "test"]
    assert len(chosen) == 3 and (chosen["role"] == "test").all()
    assert chosen["age"].min() == test["age"].min() and chosen["age"].max() == test["age"].max()


def test_reconstruction_figure_draws_slices_and_their_decoding(synthetic_inputs, tmp_path):
    torch.set_num_threads(1)
    params = {**NETWORK_PARAMS["diffae"], "max_epochs": 1}
    train_fold(
        "diffae", 0, synthetic_inputs["folds"], params, 1, tmp_path / "pred.tsv",
        tmp_path / "model.pt", volumes_path=synthetic_inputs["volumes"],
        index_path=synthetic_inputs["index"],
    )  # fmt: skip
    drawn = reconstruction_figure(
        tmp_path / "model.pt", synthetic_inputs["volumes"], synthetic_inputs["index"],
        synthetic_inputs["folds"], tmp_path / "figure.png", n=3, steps=2,
    )  # fmt: skip
    assert len(drawn) == 3 and np.isfinite(drawn["brain_age"]).all()
    # the slice's own x_T gives it back whatever the training; one epoch's denoiser
    # cannot make the slice from z_sem and noise alone
    assert (drawn["r_reconstruction"] > 0.99).all()
    assert (drawn["r_sample"].abs() < 0.9).all()
    assert (tmp_path / "figure.png").stat().st_size > 5_000
    predictions = pd.read_csv(tmp_path / "pred.tsv", sep="\t").set_index("scan_id")
    assert np.allclose(
        drawn["brain_age"], predictions.loc[drawn["scan_id"], "predicted"], atol=1e-3
    )
