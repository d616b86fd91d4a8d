"""The one inference path of every network: for training, the local checks and new scans.

:func:`predict_rows` gives one age per scan of a cohort array (batched); :func:`predict_map`
gives a whole-brain map of a network that predicts blocks, tiled with MONAI's
``sliding_window_inference``; :class:`FittedNetwork` rebuilds a trained fold model from
its ``model.pt`` (through the model registry) and applies it. On CUDA, inference runs
in mixed precision from pinned memory; on the CPU in full precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn


def select_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; or an explicit torch device name."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_batch(volumes: np.ndarray, rows: Sequence[int], device: torch.device) -> torch.Tensor:
    """Rows of the (memory-mapped) cohort array as a float32 tensor on ``device``.

    Rows are read in ascending order (fast on a memmap) and put back in the asked order;
    on CUDA the batch is copied from pinned memory.
    """
    rows = np.asarray(rows)
    order = np.argsort(rows, kind="stable")
    batch = np.empty((len(rows), *volumes.shape[1:]), dtype=np.float32)
    batch[order] = volumes[rows[order]]
    tensor = torch.from_numpy(batch)
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


@torch.no_grad()
def predict_rows(
    net: nn.Module,
    to_age,
    volumes: np.ndarray,
    rows: Sequence[int],
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """Ages (standard units) of ``rows`` of the cohort array, in eval mode, batch by batch."""
    net.eval()
    rows = list(rows)
    out = []
    for i in range(0, len(rows), batch_size):
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            age = to_age(net(load_batch(volumes, rows[i : i + batch_size], device)))
        out.append(age.float().cpu().numpy())
    return np.concatenate(out) if out else np.empty(0, dtype=np.float32)


@torch.no_grad()
def predict_map(
    net: nn.Module,
    to_age,
    volume: np.ndarray,
    mask: np.ndarray,
    block: tuple[int, int],
    overlap: int,
    batch_size: int,
    device: torch.device,
    age: tuple[float, float],
) -> np.ndarray:
    """Brain-age map (years, NaN outside ``mask``) of one scan, tiled by MONAI.

    The volume is tiled with output blocks that overlap by ``overlap`` voxels (the last
    block of each axis aligned with the far edge); only blocks that touch ``mask`` are
    predicted, and overlapping predictions are averaged. MONAI's
    ``sliding_window_inference`` does the tiling and the summing over input windows
    (``size_in``, the output block plus its context margin); the network's output block
    is put back into the centre of its window with a second channel of ones, so the
    average counts only the voxels a block predicted. Sums run in float64.

    Parameters
    ----------
    net, to_age
        The network and its model's ``to_age`` (standard units, ``(n, s, s, s)``).
    volume : ndarray
        (channels, x, y, z) inputs of one scan.
    mask : ndarray of bool
        (x, y, z) voxels to predict (the brain).
    block : (size_in, size_out)
        Block geometry (voxels).
    overlap : int
        Overlap of neighbouring output blocks (voxels).
    batch_size : int
        Windows per forward pass.
    device : torch.device
        Where the network runs.
    age : (mean, sd)
        The training ages' scaling.

    Returns
    -------
    ndarray
        (x, y, z) float32 map.
    """
    from monai.inferers import sliding_window_inference

    size_in, size_out = block
    if (size_in - size_out) % 2:
        msg = f"input block {size_in} and output block {size_out} must differ by an even number"
        raise ValueError(msg)
    step = size_out - overlap
    if step < 1:
        msg = f"overlap {overlap} must be smaller than the output block {size_out}"
        raise ValueError(msg)
    net.eval()
    margin = (size_in - size_out) // 2
    shape = np.array(mask.shape)
    full = np.maximum(shape, size_out)  # a volume smaller than a block gets one block
    brain = np.zeros(full, dtype=bool)
    brain[tuple(slice(0, n) for n in shape)] = mask
    padded = np.zeros((volume.shape[0], *(full + 2 * margin)), dtype=np.float64)
    padded[(slice(None), *(slice(margin, margin + n) for n in shape))] = volume
    inner = (slice(margin, margin + size_out),) * 3

    def predictor(windows: torch.Tensor, coords: list) -> torch.Tensor:
        # the window at padded offset s predicts the output block at unpadded offset s
        touches = [
            brain[tuple(slice(c.start, c.start + size_out) for c in where[2:])].any()
            for where in coords
        ]
        out = torch.zeros((len(windows), 2, *(size_in,) * 3), dtype=torch.float64)
        keep = torch.from_numpy(np.flatnonzero(touches))
        if len(keep):
            x = windows[keep].to(device, torch.float32)
            with torch.autocast(device.type, enabled=device.type == "cuda"):
                predicted = to_age(net(x)).float().cpu()
            out[(keep, 0, *inner)] = (predicted * age[1] + age[0]).double()
            out[(keep, 1, *inner)] = 1.0
        return out

    summed = sliding_window_inference(
        torch.from_numpy(padded)[None],
        roi_size=size_in,
        sw_batch_size=batch_size,
        predictor=predictor,
        overlap=1.0 - (step + 0.5) / size_in,  # MONAI's stride int(size_in·(1 - overlap))
        mode="constant",
        with_coord=True,
    )[0].numpy()
    crop = tuple(slice(margin, margin + n) for n in shape)
    total, count = summed[0][crop], summed[1][crop]
    result = np.full(mask.shape, np.nan, np.float32)
    covered = mask & (count > 0)
    result[covered] = (total[covered] / count[covered]).astype(np.float32)
    return result


class FittedNetwork:
    """A trained fold network (its ``model.pt``), rebuilt through the model registry.

    Parameters
    ----------
    path : path
        The ``model.pt`` written by :func:`brainpad.training.fold.train_fold`.
    device : torch.device
        Where it runs.
    """

    def __init__(self, path: str | Path, device: torch.device) -> None:
        from brainpad.models import get_spec, load

        state = torch.load(path, map_location="cpu", weights_only=True)
        self.spec, self.model = get_spec(state["model"]), load(state["model"])
        self.params = state["params"]
        self.settings = {**state["params"], **state["settings"]}
        self.net = self.model.build(state["in_channels"], state["input_shape"], self.settings)
        self.net.load_state_dict(state["state_dict"])
        self.net.to(device)
        self.age = (state["age_mean"], state["age_sd"])
        self.mean = state["input_mean"].numpy() if "input_mean" in state else 0.0
        self.scale = state["input_sd"].numpy() if "input_sd" in state else 1.0
        self.region = None
        if "region_box" in state:
            box = tuple(slice(a, b) for a, b in state["region_box"])
            self.region = (box, state["region_mask"].numpy().astype(np.float32))
        self.device = device

    def inputs(self, volume: np.ndarray) -> np.ndarray:
        """Inputs as in training: cropped to the model's region, then standardised."""
        if self.region is not None:
            box, mask = self.region
            volume = volume[(..., *box)] * mask
        return ((volume - self.mean) / self.scale).astype(np.float32)

    def map(self, volume: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Brain-age map (years) of one scan's inputs (channels, x, y, z)."""
        size_out = self.settings["block"][1]
        return predict_map(
            self.net, self.model.to_age, self.inputs(volume), mask, self.settings["block"],
            round(self.params["tile_overlap"] * size_out), self.params["batch_size"],
            self.device, self.age,
        )  # fmt: skip

    def predict(self, volumes: np.ndarray) -> np.ndarray:
        """Brain age (years) of each scan of ``volumes`` (scans, channels, ...)."""
        inputs = self.inputs(np.asarray(volumes))
        rows = range(len(inputs))
        age = predict_rows(
            self.net, self.model.to_age, inputs, rows, self.params["batch_size"], self.device
        )
        return age * self.age[1] + self.age[0]
