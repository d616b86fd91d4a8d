"""Adding a model is one module: this file is the whole of ``linear_slices``, a model that
ships nowhere, registered here and trained by the real loop (``docs/architecture.md``).

The module-level ``SPEC``, ``build``, ``loss`` and ``to_age`` below are everything a
network module declares; nothing in ``src/`` knows of it.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from brainpad.models import REGISTRY, ModelSpec, get_spec, register
from brainpad.training.fold import train_fold
from brainpad.training.inference import FittedNetwork

SPEC = ModelSpec(
    "linear_slices",
    reads="slices",
    output="scalar",
    description="a linear regression on the mid-axial slices (test model)",
)


def build(in_channels: int, input_shape, params: dict) -> nn.Module:
    """One linear layer over every pixel of every channel."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(in_channels * int(np.prod(input_shape)), 1), nn.Flatten(0)
    )


def loss(output: torch.Tensor, batch, step: int, params: dict):
    """Mean squared error to train, its MAE to report."""
    return nn.functional.mse_loss(output, batch.y), (output - batch.y).abs().mean()


def to_age(output: torch.Tensor) -> torch.Tensor:
    return output


PARAMS = {
    "batch_size": 8,
    "learning_rate": 0.01,
    "max_epochs": 30,
    "patience": 30,
    "validation_fraction": 0.125,
}


@pytest.fixture
def linear_slices():
    spec = register(sys.modules[__name__])
    yield spec
    REGISTRY.pop(spec.name)


def test_a_registered_module_is_a_model(linear_slices):
    assert get_spec("linear_slices") == linear_slices
    assert linear_slices.kind == "image" and linear_slices.reads == "slices"


def test_the_real_loop_trains_a_model_added_in_one_module(
    linear_slices, synthetic_inputs, tmp_path
):
    torch.set_num_threads(1)
    table = train_fold(
        "linear_slices", 0, synthetic_inputs["folds"], PARAMS, 3, tmp_path / "pred.tsv",
        tmp_path / "model.pt", slices_path=synthetic_inputs["slices"],
        index_path=synthetic_inputs["index"],
    )  # fmt: skip
    folds = pd.read_csv(synthetic_inputs["folds"], sep="\t").set_index("scan_id")
    age = folds.loc[table["scan_id"], "age"].to_numpy()
    train_age = folds.loc[folds["role"] == "train", "age"]
    # the slices carry age (the "brain" shrinks with it): better than the mean age
    assert np.abs(table["predicted"] - age).mean() < np.abs(train_age.mean() - age).mean()
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert state["model"] == "linear_slices" and state["input_shape"] == [10, 12]
    assert len(state["history"]) >= 2 and not (tmp_path / "model.checkpoint.pt").exists()
    # the one inference path rebuilds it from model.pt and predicts as training did
    slices = np.load(synthetic_inputs["slices"])
    index = pd.read_csv(synthetic_inputs["index"], sep="\t").set_index("scan_id")
    rows = index.loc[table["scan_id"], "row"].to_numpy()
    fitted = FittedNetwork(tmp_path / "model.pt", torch.device("cpu"))
    np.testing.assert_allclose(fitted.predict(slices[rows]), table["predicted"], atol=1e-4)
