"""Local (voxelwise) brain age with the block U-Net (study 1): training and whole-brain maps.

Training draws random blocks centred in the brain from random training scans (straight
from the memory-mapped cohort array, so memory stays bounded); every output voxel inside
the brain is asked to predict the scan's age. The loss is the voxel MAE plus the two
auxiliary block-level MAEs (against the block's mean target), whose weights fade linearly
to zero over ``aux_decay_iterations`` (:func:`brainpad.models.local_unet.block_loss`).
Early stopping watches a validation MAE on fixed blocks of the validation scans
(``selection``): every voxel's own estimate, or each scan's mean over its blocks
(:func:`validation_figures`; both are kept in the history).
Inference tiles the whole brain with overlapping blocks and averages the overlaps
(:func:`brainpad.training.blocks.stitch`).

Age mixing (``mix_fraction``, off by default as in the paper) puts a soft ball of another
training scan into a share of the training blocks and mixes the voxel targets alike
(:func:`brainpad.training.blocks.training_batch`), so a voxel's age can only be read from its own
neighbourhood.

Inputs are standardised voxel by voxel against the fold's training scans (``standardise``
in the config, on by default): a block then shows how this scan's tissue differs from the
population *at that place*, which the network would otherwise have to learn by first
recognising where in the brain the block lies. On the demo cohort this halves the
iterations the U-Net needs before it learns anything (``benchmarks/local_unet.py
--standardise``). Study 1 fed raw modulated maps; the means and SDs are stored with the
model so new scans are standardised the same way.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from brainpad.cohort.arrays import crop_slices
from brainpad.cohort.folds import fold_count
from brainpad.models.local_unet import (
    aux_fade,
    block_geometry,
    block_loss,
    build,
    geometry_for_voxel,
)
from brainpad.training.blocks import sample_blocks, stitch, training_batch

log = logging.getLogger(__name__)


def geometry(params: dict, voxel_mm: float) -> tuple[int, int, int]:
    """(levels, input edge, output edge) from the config, ``null`` entries chosen by voxel."""
    convs = params.get("convs_per_scale", 2)
    levels, bottleneck = geometry_for_voxel(voxel_mm, convs=convs)
    levels = params.get("levels") or levels
    bottleneck = params.get("bottleneck") or bottleneck
    size_in, size_out = block_geometry(levels, bottleneck, convs)
    if size_out < 1:
        msg = f"local_unet: levels {levels} with bottleneck {bottleneck} leave no output voxels"
        raise ValueError(msg)
    return levels, size_in, size_out


SD_FLOOR = 0.05
"""Smallest voxel SD used when standardising (tissue fraction; keeps the background finite)."""


class Standardised:
    """A cohort array read as voxelwise z-scores: (volume - mean) / max(sd, SD_FLOOR).

    Indexing works like the array it wraps (``standardised[row, :, x0:x1, ...]``) and
    reads only that window, so blocks still come straight from the memory map.
    """

    def __init__(self, volumes: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> None:
        self.volumes = volumes
        self.mean = np.asarray(mean, dtype=np.float32)
        self.scale = np.maximum(np.asarray(sd, dtype=np.float32), SD_FLOOR)

    @classmethod
    def fit(cls, volumes: np.ndarray, rows: np.ndarray) -> Standardised:
        """Means and SDs over the given rows (the training scans), read one scan at a time."""
        from brainpad.local.measures import moments

        acc = moments(np.asarray(volumes[r], dtype=np.float32) for r in np.unique(rows))
        return cls(volumes, acc.mean, np.sqrt(acc.m2 / acc.n))

    @property
    def shape(self) -> tuple[int, ...]:
        return self.volumes.shape

    def __getitem__(self, key: tuple) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        _row, *window = key
        values = np.asarray(self.volumes[key], dtype=np.float32)
        return (values - self.mean[tuple(window)]) / self.scale[tuple(window)]


def learning_rate(base: float, step: int, total: int, decay: str = "none") -> float:
    """The learning rate at training step ``step`` of ``total``: constant, or cosine decay
    from ``base`` to 0 (steadier final epochs when training is short)."""
    if decay == "cosine" and total > 0:
        return base * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    return base


def validation_figures(
    errors: np.ndarray,
    predicted: np.ndarray,
    voxels: np.ndarray,
    scan: np.ndarray,
    ages: np.ndarray,
) -> dict[str, float]:
    """The two validation MAEs (years) of a set of blocks from the validation scans.

    Parameters
    ----------
    errors, predicted, voxels : ndarray, shape (blocks,)
        Per block: the sum over its brain output voxels of |predicted - age|, the sum of
        the predicted ages, and the number of those voxels.
    scan : ndarray of int, shape (blocks,)
        Which validation scan (0 … scans - 1) each block comes from.
    ages : ndarray, shape (scans,)
        The scans' ages (on the same scale as ``predicted``).

    Returns
    -------
    dict
        ``validation_voxel_mae``: MAE over all brain voxels of all blocks (each voxel's
        own estimate); ``validation_scan_mae``: MAE over scans of the mean predicted age
        of each scan's blocks (the global estimate the maps' mean gives).
    """
    scan_mean = np.bincount(scan, predicted) / np.maximum(np.bincount(scan, voxels), 1)
    return {
        "validation_voxel_mae": float(errors.sum() / max(voxels.sum(), 1)),
        "validation_scan_mae": float(np.abs(scan_mean - ages).mean()),
    }


def fit_local_unet(
    net,
    volumes,
    mask,
    train,
    validation,
    params,
    seed,
    device,
    checkpoint,
    signature,
    size_in,
    size_out,
    mixing=(0.0, 1.0),
):
    """Train the block U-Net; returns (best_state, history, age_mean, age_sd).

    ``train`` and ``validation`` are (array rows, ages); ``mask`` is the brain on the
    cropped grid; ``mixing`` is age mixing's (fraction, edge in voxels), see
    :func:`brainpad.training.blocks.training_batch`. See :func:`brainpad.training.fold.run_epochs` for
    checkpoints and resuming.
    """
    import torch

    from brainpad.training.loop import run_epochs

    rows, ages = train
    age_mean, age_sd = float(ages.mean()), float(ages.std()) or 1.0
    base_lr = params["learning_rate"]
    optimiser = torch.optim.Adam(net.parameters(), lr=base_lr)
    batch, per_epoch = params["batch_size"], params["iterations_per_epoch"]
    total_steps = params["max_epochs"] * per_epoch
    weights, decay = params["aux_weights"], params["aux_decay_iterations"]

    def tensors(x, m, y):
        y = torch.as_tensor(y, dtype=torch.float32, device=device)
        return torch.from_numpy(x).to(device), torch.from_numpy(m).to(device), y

    targets = (ages - age_mean) / age_sd

    def train_epoch(epoch: int) -> float:
        total = 0.0
        for it in range(per_epoch):
            step = epoch * per_epoch + it
            for group in optimiser.param_groups:
                group["lr"] = learning_rate(base_lr, step, total_steps, params["lr_decay"])
            rng = np.random.default_rng([seed, epoch, it])
            x, m, y = tensors(
                *training_batch(volumes, rows, targets, batch, mask, size_in, size_out, rng, mixing)
            )
            out, aux = net(x)
            loss, voxel_mae = block_loss(out, aux, m, y, weights, aux_fade(step, decay))
            total += float(voxel_mae.detach())
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        return total / per_epoch * age_sd

    val_rng = np.random.default_rng([seed, 10**6])
    val_scan = np.repeat(np.arange(len(validation[0])), params["validation_blocks"])
    val_targets = (validation[1][val_scan] - age_mean) / age_sd
    val_x, val_m = sample_blocks(volumes, validation[0][val_scan], mask, size_in, size_out, val_rng)
    val_voxels, val_ages = val_m.sum((1, 2, 3)), validation[1] - age_mean

    @torch.no_grad()
    def validate() -> dict[str, float]:
        net.eval()
        errors, predicted = np.zeros(len(val_scan)), np.zeros(len(val_scan))
        for i in range(0, len(val_scan), batch):
            x, m, y = tensors(
                val_x[i : i + batch], val_m[i : i + batch], val_targets[i : i + batch]
            )
            out = net(x)[0][:, 0]
            errors[i : i + batch] = ((out - y[:, None, None, None]).abs() * m).sum((1, 2, 3)).cpu()
            predicted[i : i + batch] = (out * m).sum((1, 2, 3)).cpu()
        figures = validation_figures(
            errors * age_sd, predicted * age_sd, val_voxels, val_scan, val_ages
        )
        return {"validation_mae": figures[f"validation_{params['selection']}_mae"], **figures}

    best, history = run_epochs(
        net, optimiser, train_epoch, validate, params, checkpoint, signature, device
    )
    return best, history, age_mean, age_sd


def predict_map(
    net, volume, mask, size_in, size_out, overlap, batch_size, device, age_mean, age_sd
) -> np.ndarray:
    """Voxel brain-age map (years, NaN outside ``mask``) of one scan's (channels, x, y, z)."""
    import torch

    net.eval()

    @torch.no_grad()
    def predict(blocks: np.ndarray) -> np.ndarray:
        out, _ = net(torch.from_numpy(blocks).to(device))
        return out[:, 0].float().cpu().numpy() * age_sd + age_mean

    return stitch(predict, np.asarray(volume), mask, size_in, size_out, overlap, batch_size)


class VoxelModel:
    """A trained ``local_unet`` fold model (the ``model.pt`` :func:`train_local` returns the
    state of), ready to map one scan."""

    def __init__(self, path: str | Path, device) -> None:
        import torch

        state = torch.load(path, map_location="cpu", weights_only=False)
        self.net = build(state["in_channels"], {**state["params"], "levels": state["levels"]})
        self.net.load_state_dict(state["state_dict"])
        self.net.to(device)
        self.size_in, self.size_out = state["block"]
        self.overlap = round(state["params"]["tile_overlap"] * self.size_out)
        self.batch = state["params"]["batch_size"]
        self.age = (state["age_mean"], state["age_sd"])
        self.mean = state["input_mean"].numpy() if "input_mean" in state else 0.0
        self.scale = state["input_sd"].numpy() if "input_sd" in state else 1.0
        self.device = device

    def map(self, volume: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Brain-age map (years) of one scan's modulated maps (channels, x, y, z)."""
        z = (volume - self.mean) / self.scale
        return predict_map(
            self.net, z.astype(np.float32), mask, self.size_in, self.size_out,
            self.overlap, self.batch, self.device, *self.age,
        )  # fmt: skip


def scans_to_map(
    folds: pd.DataFrame, sets: pd.Series, fold: int, heldout_models: str = "all"
) -> pd.Series:
    """Which scans the fold model maps: its out-of-fold scans, and the held-out scans.

    With ``heldout_models="all"`` every fold model maps every held-out scan (their maps are
    averaged, like the other models' predictions). ``"one"`` gives each held-out
    participant to one fold model, round-robin by participant id, so inference costs K
    times less (for CPU runs); a participant's repeat scans share their model, which keeps
    the ICC free of between-model variance.
    """
    mapped = sets == "oof"
    heldout = sets == "heldout"
    if heldout_models == "all":
        return mapped | heldout
    k = fold_count(folds)
    people = np.sort(folds.loc[heldout, "participant_id"].unique())
    return mapped | (heldout & folds["participant_id"].isin(people[fold::k]))


def train_local(
    folds: pd.DataFrame,
    sets: pd.Series,
    volumes_path: str | Path,
    index_path: str | Path,
    mask_path: str | Path,
    maps_path: str | Path,
    params: dict,
    seed: int,
    fold: int,
    device_name: str,
    checkpoint: Path,
) -> tuple[pd.DataFrame, dict]:
    """Train ``local_unet`` on one fold; write the maps of its out-of-fold and held-out scans.

    ``maps_path`` receives a float16 array (scans, x, y, z) on the cropped grid, rows in
    the order of the returned table, whose ``predicted`` is the mean over brain voxels
    (the global local-model brain age).
    """
    import nibabel as nib
    import torch

    from brainpad.training.loop import network_fold, network_state

    data = network_fold(
        "local_unet", folds, sets, volumes_path, index_path, params, seed, fold, device_name
    )
    volumes, part, device, rows = data.volumes, data.part, data.device, data.rows
    crop = crop_slices(data.index)
    mask_img = nib.load(mask_path)
    mask = np.asarray(mask_img.dataobj)[crop] > 0
    voxel = float(min(mask_img.header.get_zooms()[:3]))
    levels, size_in, size_out = geometry(params, voxel)
    if params["standardise"]:
        volumes = Standardised.fit(volumes, part["train"][0])
    net = build(volumes.shape[1], {**params, "levels": levels}).to(device)
    log.info(
        "local_unet fold %d on %s: blocks %d -> %d voxels (%d levels), %d training scans",
        fold,
        device,
        size_in,
        size_out,
        levels,
        len(part["train"][0]),
    )
    best, history, age_mean, age_sd = fit_local_unet(
        net,
        volumes,
        mask,
        part["train"],
        part["validation"],
        params,
        seed,
        device,
        checkpoint,
        data.signature,
        size_in,
        size_out,
        (params["mix_fraction"], params["mix_edge_mm"] / voxel),
    )
    net.load_state_dict(best)
    use = scans_to_map(folds, sets, fold, params["heldout_models"]).to_numpy()
    overlap = round(params["tile_overlap"] * size_out)
    tmp = Path(maps_path).with_suffix(".partial.npy")
    maps = np.lib.format.open_memmap(
        tmp, mode="w+", dtype=np.float16, shape=(int(use.sum()), *mask.shape)
    )
    globals_ = []
    for k, row in enumerate(rows[use]):
        brain_age = predict_map(
            net,
            volumes[row],
            mask,
            size_in,
            size_out,
            overlap,
            params["batch_size"],
            device,
            age_mean,
            age_sd,
        )
        maps[k] = brain_age
        globals_.append(float(np.nanmean(brain_age[mask])))
    maps.flush()
    del maps
    tmp.replace(maps_path)
    table = folds.loc[use, ["scan_id"]].assign(predicted=globals_)
    state = network_state(
        "local_unet",
        "voxel",
        params,
        best,
        age_mean,
        age_sd,
        history,
        levels=levels,
        block=[size_in, size_out],
        in_channels=int(volumes.shape[1]),
    )
    if isinstance(volumes, Standardised):
        state["input_mean"] = torch.from_numpy(volumes.mean)
        state["input_sd"] = torch.from_numpy(volumes.scale)
    return table, state
