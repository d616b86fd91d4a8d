"""Brain-age models, a registry by name.

Each entry says what a model reads and how to build it:

* ``tabular`` models (``ridge_roi``) learn from a feature table, one row per scan
  (Harvard-Oxford ROI tissue volumes);
* ``image`` models (``vgg3d``) are PyTorch networks that read the cohort's memory-mapped
  volume array (modulated GM and WM maps cropped to the brain);
* ``voxel`` models (``local_unet``) read the same array block by block and predict a
  brain-age *map*; their global brain age is the map's mean over the brain.

:mod:`brainpad.train` trains any registered model on one cross-validation fold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ModelKind = Literal["tabular", "image", "voxel"]


@dataclass(frozen=True)
class ModelSpec:
    """What the workflow needs to know about a model.

    Attributes
    ----------
    name : str
        Registry key, used in config ``models.names`` and in output paths.
    kind : {"tabular", "image", "voxel"}
        Which input it reads (ROI table or volume array) and what it predicts (one age
        per scan, or a map); image and voxel models may use a GPU.
    description : str
        One line for logs and the report.
    """

    name: str
    kind: ModelKind
    description: str


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "ridge_roi",
            "tabular",
            "ridge regression on Harvard-Oxford ROI GM/WM/CSF volumes (classical baseline)",
        ),
        ModelSpec(
            "vgg3d",
            "image",
            "VGG-style 3D CNN on modulated GM+WM maps (study 4)",
        ),
        ModelSpec(
            "local_unet",
            "voxel",
            "block U-Net predicting brain age in every voxel (study 1, local brain age)",
        ),
    )
}


def get_spec(name: str) -> ModelSpec:
    """The registry entry of ``name``; a clear error lists the known models."""
    if name not in REGISTRY:
        msg = f"unknown model '{name}' in config models.names; known models: {sorted(REGISTRY)}"
        raise KeyError(msg)
    return REGISTRY[name]
