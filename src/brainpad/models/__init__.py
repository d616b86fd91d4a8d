"""Brain-age models: one module per model, found by name in a registry.

A model module declares itself with a module-level ``SPEC = ModelSpec(...)`` (literal
arguments) and holds everything that is particular to it:

* ``reads``: what it learns from: the ROI table (``"roi"``), the cohort's cropped 3D
  volumes (``"volumes"``), its 2D mid-axial slices (``"slices"``), or blocks of the 3D
  volumes (``"blocks"``, networks that predict a map);
* ``output``: what its output is: one age per scan (``"scalar"``), a distribution over
  age bins (``"bins"``, soft-label networks such as SFCN) or an age per voxel (``"map"``).

A tabular model (``reads="roi"``) defines ``fit(features, age, params) -> state`` and
``predict(state, features) -> ages``. A network defines

* ``build(in_channels, input_shape, params) -> torch.nn.Module``;
* ``loss(output, batch, step, params) -> (loss, mae)``: the loss to minimise on one
  :class:`brainpad.training.data.Batch`, and the MAE (standard units) reported per epoch;
* ``to_age(output) -> Tensor``: age in standard units of the training set, one per scan
  (``(batch,)``) or per voxel (``(batch, x, y, z)``);
* optionally ``resolve(params, voxel_mm) -> dict``: settings fixed by the data (block
  geometry), stored in ``model.pt`` and passed on to ``build`` with the config's.

:mod:`brainpad.training` trains and applies every network through one loop and one
inference path; adding a model is one module here, its config schema entry and its test.

The workflow plans with this registry on every run, so the registry reads each module's
``SPEC`` from its source (:func:`_declared_spec`) instead of importing it: a network
module imports torch, which takes over a second.

**Base models.** One architecture can be trained several times (study 3's ensembles):
per input (``inputs``: tissue maps, T1w, FLAIR), per brain region (``regions``) and per
seed (``members``), each a *base model* with its own name,
``<architecture>[-<input>][-<region>][-<member>]`` (``cnn3d-t1w-cortex-2``; the defaults
``tissue``, ``whole`` and a single member are left out, so ``vgg3d`` stays ``vgg3d``).
The base models of one architecture, input and region form a *sub-ensemble*
(:attr:`BaseModel.sub_ensemble`). :func:`base_models` expands the config;
:func:`get_spec` and :func:`load` accept base-model names.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Literal

from brainpad.paths import BRAIN_REGIONS, MODEL_INPUTS

Reads = Literal["roi", "volumes", "slices", "blocks"]
Output = Literal["scalar", "bins", "map"]


@dataclass(frozen=True)
class ModelSpec:
    """What the workflow needs to know about a model.

    Attributes
    ----------
    name : str
        Registry key, used in config ``models.names`` and in output paths.
    reads : {"roi", "volumes", "slices", "blocks"}
        The data it learns from (see the module docstring).
    output : {"scalar", "bins", "map"}
        What its output is: one age per scan, age bins, or an age per voxel.
    description : str
        One line for logs and the report.
    semi_supervised : bool
        Whether it also learns from unlabelled scans (participants without an age, role
        ``unlabelled``): they join its training batches with a NaN age, and its ``loss``
        must mask them out of every age term.
    module : str
        The module that implements it (filled in by the registry).
    """

    name: str
    reads: Reads
    output: Output
    description: str
    semi_supervised: bool = False
    module: str = ""

    @property
    def kind(self) -> Literal["tabular", "image", "voxel"]:
        """``tabular`` (ROI table), ``voxel`` (predicts a map) or ``image`` (one age per
        scan from images): what the workflow's rules distinguish."""
        if self.reads == "roi":
            return "tabular"
        return "voxel" if self.output == "map" else "image"


def _declared_spec(path: Path) -> ModelSpec | None:
    """The ``SPEC = ModelSpec(...)`` of a model module, read from its source."""
    for node in ast.parse(path.read_text()).body:
        if (
            isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == ["SPEC"]
            and isinstance(node.value, ast.Call)
        ):
            args = [ast.literal_eval(a) for a in node.value.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.value.keywords}
            return ModelSpec(*args, **kwargs, module=f"{__name__}.{path.stem}")
    return None


def _discover() -> dict[str, ModelSpec]:
    specs = (_declared_spec(p) for p in sorted(Path(__file__).parent.glob("[!_]*.py")))
    return {spec.name: spec for spec in specs if spec is not None}


REGISTRY: dict[str, ModelSpec] = _discover()


def register(module: ModuleType) -> ModelSpec:
    """Add a model module from elsewhere (a plugin, a test) to the registry."""
    spec = replace(module.SPEC, module=module.__name__)
    REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str) -> ModelSpec:
    """The registry entry of ``name`` (an architecture or a base model of one); a clear
    error lists the known models."""
    name = name.split("-", 1)[0]
    if name not in REGISTRY:
        msg = f"unknown model '{name}' in config models.names; known models: {sorted(REGISTRY)}"
        raise KeyError(msg)
    return REGISTRY[name]


def load(name: str) -> ModuleType:
    """The module implementing model ``name``."""
    return importlib.import_module(get_spec(name).module)


@dataclass(frozen=True)
class BaseModel:
    """One trained model of the ensemble: an architecture on one input, region and seed.

    Attributes
    ----------
    name : str
        ``<architecture>[-<input>][-<region>][-<member>]``: output folders, columns.
    architecture : str
        Registry name of the model module.
    input : str
        ``tissue`` (modulated GM + WM), ``t1w`` or ``flair``.
    region : str
        ``whole`` or one of :data:`brainpad.paths.BRAIN_REGIONS`.
    member : int
        Which of the sub-ensemble's seeds (0-based).
    """

    name: str
    architecture: str
    input: str = "tissue"
    region: str = "whole"
    member: int = 0

    @property
    def sub_ensemble(self) -> str:
        """The sub-ensemble it belongs to: its name without the member number."""
        return base_model_name(self.architecture, self.input, self.region)


def base_model_name(
    architecture: str, model_input: str, region: str, member: int | None = None
) -> str:
    """``<architecture>[-<input>][-<region>][-<member + 1>]``, defaults left out."""
    parts = [architecture]
    parts += [model_input] if model_input != "tissue" else []
    parts += [region] if region != "whole" else []
    parts += [str(member + 1)] if member is not None else []
    return "-".join(parts)


def parse_base_model(name: str) -> BaseModel:
    """The :class:`BaseModel` a name stands for (read from the name alone)."""
    architecture, *parts = name.split("-")
    fields = {"input": "tissue", "region": "whole", "member": 0}
    for part in parts:
        if part in MODEL_INPUTS:
            fields["input"] = part
        elif part in BRAIN_REGIONS:
            fields["region"] = part
        elif part.isdigit() and int(part) >= 1:
            fields["member"] = int(part) - 1
        else:
            msg = (
                f"base model '{name}': '{part}' is neither an input {MODEL_INPUTS}, a region "
                f"{BRAIN_REGIONS} nor a member number"
            )
            raise ValueError(msg)
    return BaseModel(name, architecture, **fields)


def base_models(models: dict) -> list[BaseModel]:
    """Every base model the config's ``models`` section asks for, in config order.

    Each architecture of ``models.names`` is trained once per entry of its ``inputs``
    (default ``[tissue]``) × ``regions`` (default ``[whole]``) × ``members`` seeds
    (default 1).
    """
    found = []
    for architecture in models["names"]:
        section = models.get(architecture) or {}
        members = int(section.get("members", 1))
        for model_input in section.get("inputs", ["tissue"]):
            for region in section.get("regions", ["whole"]):
                for member in range(members):
                    number = member if members > 1 else None
                    name = base_model_name(architecture, model_input, region, number)
                    found.append(BaseModel(name, architecture, model_input, region, member))
    return found


def without_input(models: dict, model_input: str) -> tuple[dict, list[str]]:
    """The config's ``models`` section with ``model_input`` taken out of every
    architecture's ``inputs``, and the base models that leaves out.

    An architecture left without inputs is dropped from ``names``. The workflow uses it
    for a dataset without FLAIR: the models that read it are left out, the others run.
    """
    section = {k: (dict(v) if isinstance(v, dict) else v) for k, v in models.items()}
    names = []
    for architecture in models["names"]:
        settings = section.get(architecture) or {}
        inputs = [i for i in settings.get("inputs", ["tissue"]) if i != model_input]
        if inputs:
            names.append(architecture)
            if "inputs" in settings:
                settings["inputs"] = inputs
    section["names"] = names
    kept = {m.name for m in base_models(section)}
    return section, [m.name for m in base_models(models) if m.name not in kept]
