"""The model registry and what each model module builds."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from brainpad.models import REGISTRY, get_spec, load, ridge_roi
from brainpad.models.vgg3d import VGG3D


def test_registry_knows_every_model_and_names_the_alternatives():
    assert {"ridge_roi", "vgg3d", "local_unet"} <= set(REGISTRY)
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
    state = ridge_roi.fit(features, age, {"alphas": [1e-3, 1.0]})
    assert np.abs(ridge_roi.predict(state, features) - age).max() < 0.5
    assert json.dumps(state)  # plain values only: safe to save without pickle
    with pytest.raises(ValueError, match="lacks 1 training columns"):
        ridge_roi.predict(state, features.drop(columns="b"))
