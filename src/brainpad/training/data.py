"""The data side of training one fold: the cohort array, its parts, and batches of scans.

:func:`network_fold` seeds torch, opens the cohort array (memory-mapped, so training
memory does not grow with the number of scans) and splits its rows by what each scan is
for (:func:`brainpad.training.fold.fold_sets`). :class:`Standardised` reads the array as
voxelwise z-scores. :class:`WholeScans` is the batch source of networks that read whole
scans (3D volumes or 2D slices); :class:`brainpad.training.blocks.BlockBatches` that of
networks that read blocks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from brainpad.cohort.arrays import open_volumes
from brainpad.training.loop import fingerprint

log = logging.getLogger(__name__)

SD_FLOOR = 0.05
"""Smallest voxel SD used when standardising (tissue fraction; keeps the background finite)."""


@dataclass
class Batch:
    """One training step's data, on the training device.

    Attributes
    ----------
    x : torch.Tensor
        Inputs, (batch, channels, *spatial).
    y : torch.Tensor
        Targets in standard units of the training ages: (batch,) for whole scans,
        (batch, *spatial output) for blocks.
    mask : torch.Tensor or None
        Brain mask of the output blocks (networks that predict maps), else None.
    weight : int
        How much the batch's MAE counts in the epoch's training MAE (its scans with an
        age: unlabelled scans, NaN in ``y``, have no MAE).
    """

    x: object
    y: object
    mask: object = None
    weight: int = 1


class Standardised:
    """A cohort array read as voxelwise z-scores: (volume - mean) / max(sd, SD_FLOOR).

    Indexing works like the array it wraps (``standardised[row, :, x0:x1, ...]``) and
    reads only that window, so blocks still come straight from the memory map.

    With ``standardise`` in a network's settings (``local_unet``'s default), inputs are
    standardised voxel by voxel against the fold's training scans: a block then shows how
    this scan's tissue differs from the population *at that place*, which the network
    would otherwise have to learn by first recognising where in the brain the block lies.
    On the demo cohort this halves the iterations the U-Net needs before it learns anything
    (``benchmarks/local_unet.py --standardise``). Study 1 fed raw modulated maps; the
    means and SDs are stored with the model so new scans are standardised the same way.
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


class RegionCrop:
    """A cohort array restricted to one brain region: masked, and cropped to its box.

    Study 3 trains base models on cortex, subcortex and cerebellum separately. Indexing by
    rows (``crop[rows]``) reads those scans and returns (rows, channels, *box) float32,
    zero outside the region.

    Parameters
    ----------
    array : array-like
        The cohort array (scans, channels, x, y, z), memory-mapped or a view of one.
    box : tuple of slice
        The region's bounding box on the array's crop.
    mask : ndarray of bool
        The region within ``box``.
    """

    def __init__(self, array, box: tuple[slice, ...], mask: np.ndarray) -> None:
        self.array, self.box = array, tuple(box)
        self.mask = np.asarray(mask, dtype=np.float32)

    @classmethod
    def from_labels(cls, array, labels: np.ndarray, code: int, dilation: int = 1) -> RegionCrop:
        """The crop of label ``code`` in ``labels`` (on the array's crop), dilated by
        ``dilation`` voxels so partial-volume voxels at its edge stay in."""
        from scipy import ndimage

        region = labels == code
        if not region.any():
            msg = f"region label {code} has no voxel in the cohort arrays' crop"
            raise ValueError(msg)
        if dilation:
            region = ndimage.binary_dilation(region, iterations=dilation)
        coords = np.argwhere(region)
        box = tuple(
            slice(int(a), int(b) + 1) for a, b in zip(coords.min(0), coords.max(0), strict=True)
        )
        return cls(array, box, region[box])

    @property
    def shape(self) -> tuple[int, ...]:
        return (*self.array.shape[:2], *self.mask.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        values = np.asarray(self.array[rows], dtype=np.float32)
        return values[(..., *self.box)] * self.mask


@dataclass
class NetworkFold:
    """What every network needs to train one fold: device, data, parts and fingerprint."""

    device: object
    volumes: np.ndarray
    index: pd.DataFrame
    rows: np.ndarray
    part: dict[str, tuple[np.ndarray, np.ndarray]]
    signature: str


def network_fold(
    name: str,
    folds: pd.DataFrame,
    sets: pd.Series,
    volumes_path: str | Path,
    index_path: str | Path,
    params: dict,
    seed: int,
    fold: int,
    device_name: str,
) -> NetworkFold:
    """Seed torch, open the cohort array (memory-mapped) and split its rows by set.

    ``part`` maps each set (``train``, ``validation``, ``oof``, ``heldout``) to its array
    rows and ages; without validation scans, early stopping watches the training scans.
    """
    import torch

    from brainpad.training.inference import select_device

    device = select_device(device_name)
    torch.manual_seed(seed * 1000 + fold)
    torch.use_deterministic_algorithms(True, warn_only=True)
    volumes = open_volumes(volumes_path)
    index = pd.read_csv(index_path, sep="\t")
    rows = folds["scan_id"].map(index.set_index("scan_id")["row"]).to_numpy()
    ages = folds["age"].to_numpy(dtype=float)
    part = {s: (rows[sets.to_numpy() == s], ages[sets.to_numpy() == s]) for s in sets.unique()}
    if "validation" not in part or len(part["validation"][0]) == 0:
        part["validation"] = part["train"]
        log.warning("no validation scans: early stopping watches the training scans")
    stat = os.stat(volumes_path)
    signature = fingerprint(
        name,
        fold,
        seed,
        params,
        rows.tolist(),
        ages.tolist(),
        sets.tolist(),
        stat.st_size,
        stat.st_mtime_ns,
    )
    return NetworkFold(device, volumes, index, rows, part, signature)


class WholeScans:
    """Batches of whole scans (3D volumes or 2D slices), in a seeded order per epoch.

    Parameters
    ----------
    array : ndarray
        The cohort array (scans, channels, *spatial), memory-mapped: each batch is read
        from disk when it is drawn.
    train, validation : (rows, ages)
        Array rows and ages of the training and early-stopping scans.
    batch_size : int
        Scans per step.
    seed : int
        Seed of the batch order (with the epoch number).
    device : torch.device
        Where batches go.
    age_mean, age_sd : float
        The training ages' scaling (targets are in standard units).
    augment : int
        SFCN's augmentation (Peng et al.): each training scan shifted by up to this many
        voxels along every axis and mirrored left-right with probability 1/2, drawn anew
        every epoch (0: none). The crop's margin is background, so the shift wraps it.
    """

    def __init__(
        self,
        array: np.ndarray,
        train: tuple[np.ndarray, np.ndarray],
        validation: tuple[np.ndarray, np.ndarray],
        batch_size: int,
        seed: int,
        device,
        age_mean: float,
        age_sd: float,
        augment: int = 0,
    ) -> None:
        self.array, self.train, self.validation = array, train, validation
        self.augment = augment
        self.batch_size, self.seed, self.device = batch_size, seed, device
        self.age_mean, self.age_sd = age_mean, age_sd
        self.steps_per_epoch = -(-len(train[0]) // batch_size)

    def batches(self, epoch: int) -> Iterator[Batch]:
        """The epoch's batches: every training scan once, in a seeded random order."""
        import torch

        from brainpad.training.inference import load_batch

        rows, ages = self.train
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(rows))
        for i in range(0, len(order), self.batch_size):
            pick = order[i : i + self.batch_size]
            y = (ages[pick] - self.age_mean) / self.age_sd
            x = load_batch(self.array, rows[pick], self.device)
            yield Batch(
                shift_and_mirror(x, self.augment, rng) if self.augment else x,
                torch.as_tensor(y, dtype=torch.float32, device=self.device),
                weight=int(np.isfinite(y).sum()),
            )

    def validate(self, net, to_age) -> dict[str, float]:
        """MAE (years) of the validation scans."""
        from brainpad.training.inference import predict_rows

        rows, ages = self.validation
        predicted = predict_rows(net, to_age, self.array, rows, self.batch_size, self.device)
        return {
            "validation_mae": float(np.abs(predicted * self.age_sd + self.age_mean - ages).mean())
        }


def shift_and_mirror(x, shift: int, rng: np.random.Generator):
    """Each scan of a batch (scans, channels, *spatial) rolled by up to ``shift`` voxels per
    axis and flipped along the first spatial axis (left-right in RAS) with probability 1/2."""
    import torch

    out = torch.empty_like(x)
    spatial = tuple(range(1, x.ndim - 1))
    for k in range(len(x)):
        moved = torch.roll(
            x[k], [int(v) for v in rng.integers(-shift, shift + 1, len(spatial))], spatial
        )
        out[k] = moved.flip(1) if rng.random() < 0.5 else moved
    return out
