"""Training on one cross-validation fold (``brainpad train``), for any registered model.

A tabular model is fitted on the fold's training scans in one call. A network goes
through the one path every network shares: :func:`~brainpad.training.data.network_fold`
(seed, memory-mapped array, parts), the model module's ``build``, a batch source by what
the model reads (whole scans or blocks), :func:`~brainpad.training.loop.run_epochs`, and
inference by what it outputs (:func:`~brainpad.training.inference.predict_rows`, or a
map per scan with :func:`~brainpad.training.inference.predict_map`). Networks train on
CUDA when present, else on the CPU, from one seed; a checkpoint is written after every
epoch and a re-run job resumes from it, provided the data, fold and settings are
unchanged (a signature in the checkpoint says so).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from brainpad.atomic import write_table_atomic
from brainpad.models import ModelSpec, get_spec, load, parse_base_model
from brainpad.training.loop import network_state, run_epochs, save_atomic
from brainpad.training.sets import fold_sets, scans_to_map

log = logging.getLogger(__name__)

MEMBER_SEED_STEP = 7919
"""Member m of a sub-ensemble trains with seed ``seed + 7919 m`` (member 0 with ``seed``)."""


def _train_tabular(
    spec: ModelSpec, folds: pd.DataFrame, sets: pd.Series, roi_path: str | Path, params: dict
) -> tuple[pd.DataFrame, dict]:
    model = load(spec.name)
    features = pd.read_csv(roi_path, sep="\t").set_index("scan_id")
    features = features.loc[folds["scan_id"]].reset_index(drop=True)
    train = (sets == "train").to_numpy()
    state = model.fit(features[train], folds["age"].to_numpy(float)[train], params)
    state.update(model=spec.name, kind=spec.kind, params=params)
    use = sets.isin(["oof", "heldout"]).to_numpy()
    table = folds.loc[use, ["scan_id"]].assign(predicted=model.predict(state, features[use]))
    log.info("%s: %d training scans", spec.name, train.sum())
    return table, state


def _brain_mask(index: pd.DataFrame, mask_path: str | Path) -> tuple[np.ndarray, float]:
    """The template brain mask on the cohort arrays' crop, and the voxel size (mm)."""
    import nibabel as nib

    from brainpad.cohort.arrays import crop_slices

    image = nib.load(mask_path)
    mask = np.asarray(image.dataobj)[crop_slices(index)] > 0
    return mask, float(min(image.header.get_zooms()[:3]))


def _write_maps(
    predict, array, rows: np.ndarray, mask: np.ndarray, maps_path: str | Path
) -> list[float]:
    """Map each of ``rows`` into a float16 ``.npy`` (scans, x, y, z); their brain means."""
    tmp = Path(maps_path).with_suffix(".partial.npy")
    maps = np.lib.format.open_memmap(
        tmp, mode="w+", dtype=np.float16, shape=(len(rows), *mask.shape)
    )
    means = []
    for k, row in enumerate(rows):
        brain_age = predict(array[row])
        maps[k] = brain_age
        means.append(float(np.nanmean(brain_age[mask])))
    maps.flush()
    del maps
    tmp.replace(maps_path)
    return means


def train_network(
    spec: ModelSpec,
    folds: pd.DataFrame,
    sets: pd.Series,
    array_path: str | Path,
    index_path: str | Path,
    params: dict,
    seed: int,
    fold: int,
    device_name: str,
    checkpoint: Path,
    mask_path: str | Path | None = None,
    maps_path: str | Path | None = None,
    regions_path: str | Path | None = None,
    name: str | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Train network ``spec`` on one fold; its predictions (and maps) and its state.

    ``name`` is the base model (:func:`brainpad.models.parse_base_model`): its member
    number shifts the seed, and a region other than ``whole`` restricts the inputs to
    that label of ``regions_path`` (the template's regions image), masked and cropped
    (:class:`~brainpad.training.data.RegionCrop`); box and mask are stored with the model.

    Map models (``output="map"``) write the maps of their out-of-fold and held-out scans
    to ``maps_path`` (float16, rows in the order of the returned table, whose
    ``predicted`` is the mean over brain voxels: the global brain age of the maps).
    A semi-supervised model (:attr:`~brainpad.models.ModelSpec.semi_supervised`) also
    trains on the fold's ``unlabelled`` scans, with a NaN age; the age scaling comes from
    the labelled training scans only.
    With ``standardise`` in the settings, inputs are read as voxelwise z-scores of the
    fold's training scans (:class:`~brainpad.training.data.Standardised`), whose means and
    SDs are stored with the model.
    """
    import torch

    from brainpad.training.blocks import BlockBatches
    from brainpad.training.data import Standardised, WholeScans, network_fold
    from brainpad.training.inference import predict_map, predict_rows

    model = load(spec.name)
    base = parse_base_model(name or spec.name)
    seed = seed + MEMBER_SEED_STEP * base.member
    data = network_fold(
        base.name, folds, sets, array_path, index_path, params, seed, fold, device_name
    )
    array, part, device = data.volumes, data.part, data.device
    region = None
    if base.region != "whole":
        array = region = _region_crop(array, data.index, regions_path, base.region)
    mask, voxel = _brain_mask(data.index, mask_path) if mask_path else (None, 1.0)
    resolved = model.resolve(params, voxel) if hasattr(model, "resolve") else {}
    settings = {**params, **resolved}
    if params.get("standardise"):
        array = Standardised.fit(array, part["train"][0])
    age_mean, age_sd = float(part["train"][1].mean()), float(part["train"][1].std()) or 1.0
    train = part["train"]
    if spec.semi_supervised and "unlabelled" in part:
        train = tuple(np.concatenate(pair) for pair in zip(train, part["unlabelled"], strict=True))
    if spec.reads == "blocks":
        size_in, size_out = resolved["block"]
        input_shape = [size_in] * 3
    else:
        input_shape = [int(s) for s in array.shape[2:]]
    net = model.build(array.shape[1], input_shape, settings).to(device)
    log.info(
        "%s fold %d on %s: %d training (%d unlabelled), %d validation scans, input %s",
        base.name, fold, device, len(train[0]), len(train[0]) - len(part["train"][0]),
        len(part["validation"][0]), [int(array.shape[1]), *input_shape],
    )  # fmt: skip
    if spec.reads == "blocks":
        mix_edge = params.get("mix_edge_mm", voxel) / voxel
        source = BlockBatches(
            array, part["train"], part["validation"], mask, size_in, size_out, params,
            mix_edge, seed, device, age_mean, age_sd,
        )  # fmt: skip
    else:
        source = WholeScans(
            array, train, part["validation"], params["batch_size"], seed, device,
            age_mean, age_sd, params.get("augment", 0),
        )  # fmt: skip
    best, history = run_epochs(net, model, source, params, device, checkpoint, data.signature)
    net.load_state_dict(best)
    if spec.output == "map":
        use = scans_to_map(folds, sets, fold, params.get("heldout_models", "all")).to_numpy()
        overlap = round(params.get("tile_overlap", 0.0) * size_out)

        def predict(volume: np.ndarray) -> np.ndarray:
            return predict_map(
                net, model.to_age, volume, mask, (size_in, size_out), overlap,
                params["batch_size"], device, (age_mean, age_sd),
            )  # fmt: skip

        predicted = _write_maps(predict, array, data.rows[use], mask, maps_path)
    else:
        use = sets.isin(["oof", "heldout"]).to_numpy()
        scaled = predict_rows(
            net, model.to_age, array, data.rows[use], params["batch_size"], device
        )
        predicted = scaled * age_sd + age_mean
    table = folds.loc[use, ["scan_id"]].assign(predicted=predicted)
    state = network_state(
        spec.name,
        spec.kind,
        params,
        best,
        age_mean,
        age_sd,
        history,
        in_channels=int(array.shape[1]),
        input_shape=input_shape,
        settings=resolved,
    )
    if isinstance(array, Standardised):
        state["input_mean"] = torch.from_numpy(array.mean)
        state["input_sd"] = torch.from_numpy(array.scale)
    if region is not None:
        state["region"] = base.region
        state["region_box"] = [[b.start, b.stop] for b in region.box]
        state["region_mask"] = torch.from_numpy(region.mask.astype(np.uint8))
    return table, state


def _region_crop(array, index: pd.DataFrame, regions_path: str | Path | None, region: str):
    """``array`` restricted to ``region`` of the template's regions image."""
    import nibabel as nib

    from brainpad.cohort.arrays import crop_slices
    from brainpad.paths import BRAIN_REGIONS
    from brainpad.training.data import RegionCrop

    if regions_path is None:
        msg = f"a model restricted to the {region} needs the template's regions image (--regions)"
        raise ValueError(msg)
    labels = np.asarray(nib.load(regions_path).dataobj)[crop_slices(index)]
    crop = RegionCrop.from_labels(array, labels, BRAIN_REGIONS.index(region) + 1)
    log.info("%s: inputs cropped to %s voxels", region, list(crop.shape[2:]))
    return crop


def train_fold(
    name: str,
    fold: int,
    folds_path: str | Path,
    params: dict,
    seed: int,
    predictions_path: str | Path,
    state_path: str | Path,
    roi_path: str | Path | None = None,
    volumes_path: str | Path | None = None,
    index_path: str | Path | None = None,
    checkpoint: str | Path | None = None,
    device: str = "auto",
    mask_path: str | Path | None = None,
    maps_path: str | Path | None = None,
    slices_path: str | Path | None = None,
    regions_path: str | Path | None = None,
) -> pd.DataFrame:
    """Train model ``name`` on fold ``fold``; write its predictions and its state.

    Parameters
    ----------
    name : str
        A registered model (:data:`brainpad.models.REGISTRY`) or a base model of one
        (``cnn3d-t1w-cortex-2``, :func:`brainpad.models.parse_base_model`).
    fold : int
        Fold left out.
    folds_path : path
        ``results/folds.tsv``.
    params : dict
        The model's config section (``models.<name>``).
    seed : int
        The workflow seed.
    predictions_path : path
        TSV written: ``scan_id, model, fold, set, predicted`` for oof and held-out scans.
    state_path : path
        ``.pt`` with the fitted model (plain tensors and lists; loads with
        ``weights_only=True``).
    roi_path : path, optional
        ROI volume table (models that read ``roi``).
    volumes_path, slices_path, index_path : path, optional
        Cohort arrays: 3D volumes (models that read volumes or blocks) or 2D slices, and
        their index.
    checkpoint : path, optional
        Per-epoch checkpoint of networks (default: next to ``state_path``); removed once
        the fold has finished.
    device : str
        ``auto``, ``cpu``, ``cuda``, ``cuda:1``...
    mask_path, maps_path : path, optional
        Map models: the template brain mask, and the ``.npy`` of brain-age maps written
        for the out-of-fold and held-out scans (rows as in the predictions).
    regions_path : path, optional
        The template's regions image (base models restricted to a region).
    """
    spec = get_spec(name)
    folds = pd.read_csv(folds_path, sep="\t")
    validation = params.get("validation_fraction", 0.0) if spec.reads != "roi" else 0.0
    sets = fold_sets(folds, fold, validation)
    checkpoint = Path(checkpoint or Path(state_path).with_suffix(".checkpoint.pt"))
    if spec.reads == "roi":
        table, state = _train_tabular(spec, folds, sets, roi_path, params)
    else:
        array_path = slices_path if spec.reads == "slices" else volumes_path
        table, state = train_network(
            spec, folds, sets, array_path, index_path, params, seed, fold, device,
            checkpoint, mask_path, maps_path, regions_path, name,
        )  # fmt: skip
    state["base_model"] = name
    table.insert(1, "model", name)
    table.insert(2, "fold", fold)
    table.insert(3, "set", sets[table.index].to_numpy())
    save_atomic(state, Path(state_path))
    write_table_atomic(table, predictions_path)
    checkpoint.unlink(missing_ok=True)
    oof = table[table["set"] == "oof"]
    if len(oof):  # a fold without out-of-fold scans (benchmarks/learning_curves.py) has none
        age = folds.set_index("scan_id").loc[oof["scan_id"], "age"].to_numpy()
        error = np.abs(oof["predicted"].to_numpy() - age).mean()
        log.info("%s fold %d: out-of-fold MAE %.2f y on %d scans", name, fold, error, len(oof))
    return table
