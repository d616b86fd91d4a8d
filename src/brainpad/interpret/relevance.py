"""Relevance maps of the whole-brain networks, computed with captum.

Two methods, one per study:

* ``lrp``: layer-wise relevance propagation (study 3), captum's :class:`~captum.attr.LRP`.
  captum only has default rules for 2D layers, so every leaf module gets its rule here:
  the ε rule (:data:`LRP_RULES`, study 3's choice) or α1β0 (positive relevance only) on
  convolutions and dense layers, the ε rule on pooling, batch norm and the pass-through
  modules (leaky ReLU, flatten: with z = f(x) the ε rule hands relevance through
  unchanged). Relevance sums to the network's output (standard units of age), so a voxel's
  sign says whether it pushed the predicted age up (older) or down.
* ``gradcam``: Grad-CAM of the last convolutional layer (study 4), captum's
  :class:`~captum.attr.LayerGradCam`, upsampled trilinearly to the input grid. Its signed
  form is kept (no ReLU): positive where the layer's features raise the predicted age.

Both run on a copy of the network in eval mode with in-place activations turned off
(captum's hooks cannot follow in-place edits).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

METHODS = ("lrp", "gradcam")
LRP_RULES = ("epsilon", "alpha1beta0")
PASS_THROUGH = (nn.ReLU, nn.Dropout, nn.Tanh)
"""Modules captum's LRP treats as non-linear gates (no rule)."""
WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


class AgeOutput(nn.Module):
    """A network followed by its model's ``to_age``: one age (standard units) per input.

    Parameters
    ----------
    net : nn.Module
        A trained whole-brain network (its leaf modules are this module's leaves).
    to_age : callable
        The model module's ``to_age`` (identity for direct regression, the expected age of
        the bins for SFCN).
    """

    def __init__(self, net: nn.Module, to_age: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.net = net
        self.to_age = to_age

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Age (standard units) of each input, shape (batch,)."""
        return self.to_age(self.net(x))


def _prepared(net: nn.Module, to_age) -> AgeOutput:
    """An eval-mode copy of ``net`` with in-place activations off, wrapped in
    :class:`AgeOutput`."""
    model = AgeOutput(copy.deepcopy(net), to_age).eval()
    for module in model.modules():
        if getattr(module, "inplace", False):
            module.inplace = False
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def attach_lrp_rules(model: nn.Module, rule: str = "epsilon", epsilon: float = 1e-6) -> None:
    """Give every leaf module of ``model`` the LRP rule captum needs (see the module).

    Raises
    ------
    ValueError
        For an unknown ``rule``.
    """
    from captum.attr._utils.lrp_rules import Alpha1_Beta0_Rule, EpsilonRule

    if rule not in LRP_RULES:
        msg = f"interpret.lrp_rule is '{rule}'; use one of {list(LRP_RULES)}"
        raise ValueError(msg)
    for module in model.modules():
        if list(module.children()) or isinstance(module, PASS_THROUGH):
            continue
        if rule == "alpha1beta0" and isinstance(module, WEIGHTED):
            module.rule = Alpha1_Beta0_Rule()
        else:
            module.rule = EpsilonRule(epsilon)


def last_convolution(net: nn.Module) -> nn.Module:
    """The last convolutional layer of the network's feature extractor (its ``features``
    when it has one: SFCN's classifier convolves after global pooling, with no space left
    to map), Grad-CAM's layer."""
    features = getattr(net, "features", net)
    convolutions = [m for m in features.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    if not convolutions:
        msg = f"{type(net).__name__} has no convolutional layer: Grad-CAM needs one"
        raise ValueError(msg)
    return convolutions[-1]


def relevance(
    net: nn.Module,
    to_age,
    inputs: np.ndarray,
    method: str,
    batch_size: int = 8,
    lrp_rule: str = "epsilon",
) -> np.ndarray:
    """Signed relevance of every voxel of every input, summed over channels.

    Parameters
    ----------
    net : nn.Module
        A trained network taking ``inputs`` as it was trained (standardised, cropped).
    to_age : callable
        Its model's ``to_age``.
    inputs : ndarray
        (scans, channels, x, y, z) float32.
    method : {"lrp", "gradcam"}
    batch_size : int
        Scans per backward pass.
    lrp_rule : {"epsilon", "alpha1beta0"}
        The LRP rule of convolutions and dense layers.

    Returns
    -------
    ndarray
        (scans, x, y, z) float32.
    """
    from captum.attr import LRP, LayerAttribution, LayerGradCam

    if method not in METHODS:
        msg = f"unknown relevance method '{method}'; use one of {list(METHODS)}"
        raise ValueError(msg)
    model = _prepared(net, to_age)
    if method == "lrp":
        explainer = LRP(model)
    else:
        explainer = LayerGradCam(model, last_convolution(model.net))
    out = []
    for start in range(0, len(inputs), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(inputs[start : start + batch_size]))
        x.requires_grad_(True)
        if method == "lrp":
            attach_lrp_rules(model, lrp_rule)  # captum removes the rules after each pass
            attribution = explainer.attribute(x).sum(1)
        else:
            cam = explainer.attribute(x, relu_attributions=False, attr_dim_summation=True)
            mode = "trilinear" if x.dim() == 5 else "bilinear"
            attribution = LayerAttribution.interpolate(cam, tuple(x.shape[2:]), mode)[:, 0]
        out.append(attribution.detach().float().numpy())
    return np.concatenate(out) if out else np.empty((0, *inputs.shape[2:]), np.float32)


def normalised(maps: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each map scaled so that its mean absolute relevance inside ``mask`` is 1 (0 outside).

    Networks and scans differ in the scale of their relevance; this puts them on one scale
    before averaging and testing (a voxel of value 2 carries twice its uniform share).
    """
    inside = maps * mask
    scale = np.abs(inside).reshape(len(maps), -1).sum(1) / max(int(mask.sum()), 1)
    scale[scale == 0] = 1.0
    return (inside / scale[:, None, None, None]).astype(np.float32)
