"""Study 2's figure: healthy test slices, their reconstructions and samples from ``z_sem``.

A diffusion autoencoder encodes a slice twice: its semantic latent ``z_sem`` and its
stochastic code ``x_T`` (DDIM inversion). Decoding both gives the slice back (Diff-AE's
autoencoding, near exact for any denoiser); decoding ``z_sem`` with random noise shows
what the semantic code alone holds of the anatomy, the part only training gives. Drawn
for a few healthy test participants spread over the age range, with their age and the
model's brain age.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from brainpad.stats.tables import baseline_scans


def chosen_scans(folds: pd.DataFrame, n: int) -> pd.DataFrame:
    """``n`` healthy test participants (one scan each) evenly spread over their ages."""
    test = baseline_scans(folds[folds["role"] == "test"]).sort_values("age")
    picks = np.unique(np.linspace(0, len(test) - 1, min(n, len(test))).round().astype(int))
    return test.iloc[picks].reset_index(drop=True)


def voxel_r(image: np.ndarray, other: np.ndarray) -> float:
    """Pearson r between a slice and another image over the slice's brain (its non-zero
    pixels: the slices are brain-extracted)."""
    brain = image > 0
    return float(np.corrcoef(image[brain], other[brain])[0, 1])


def reconstruction_figure(
    model_path: str | Path,
    volumes_path: str | Path,
    index_path: str | Path,
    folds_path: str | Path,
    out: str | Path,
    n: int = 4,
    steps: int = 50,
    seed: int = 0,
) -> pd.DataFrame:
    """Draw ``n`` test slices (top row), their reconstructions (middle) and samples from
    their ``z_sem`` alone (bottom); :meth:`brainpad.models.diffae.DiffAE.reconstruct`.

    Returns the scans drawn with their age, brain age (this fold model's), and each
    row's voxelwise r with the slice over the brain (:func:`voxel_r`):
    ``r_reconstruction`` (``z_sem`` and the slice's own ``x_T``: near 1 for any denoiser,
    a check of the decoding) and ``r_sample`` (``z_sem`` and random noise: how much of the
    slice the semantic code holds, which only a trained denoiser gives back).
    """
    import torch

    from brainpad.cohort.arrays import open_volumes
    from brainpad.training.inference import FittedNetwork

    fitted = FittedNetwork(model_path, torch.device("cpu"))
    folds = pd.read_csv(folds_path, sep="\t")
    index = pd.read_csv(index_path, sep="\t").set_index("scan_id")["row"]
    scans = chosen_scans(folds, n)
    volumes = open_volumes(volumes_path)
    inputs = np.stack([volumes[int(index[s])] for s in scans["scan_id"]]).astype(np.float32)
    generator = torch.Generator().manual_seed(seed)
    rows = [
        t[:, 0].numpy() for t in fitted.net.reconstruct(torch.from_numpy(inputs), steps, generator)
    ]
    scans["brain_age"] = fitted.predict(inputs)
    for name, decoded in zip(("r_reconstruction", "r_sample"), rows[1:], strict=True):
        scans[name] = [voxel_r(a, b) for a, b in zip(rows[0], decoded, strict=True)]
    fig, axes = plt.subplots(3, len(scans), figsize=(2.2 * len(scans), 6.8), squeeze=False)
    for k, row in scans.iterrows():
        for ax, picture in zip(axes[:, k], (rows[0][k], rows[1][k], rows[2][k]), strict=True):
            ax.imshow(picture.T, cmap="gray", origin="lower", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, k].set_title(f"age {row.age:.0f}, brain age {row.brain_age:.0f}", fontsize=8)
        axes[1, k].set_title(f"r {row.r_reconstruction:.2f}", fontsize=8)
        axes[2, k].set_title(f"r {row.r_sample:.2f}", fontsize=8)
    axes[0, 0].set_ylabel("slice")
    axes[1, 0].set_ylabel("z_sem + its x_T")
    axes[2, 0].set_ylabel("z_sem + noise")
    fig.suptitle(f"diffae: reconstructions and samples ({steps} DDIM steps)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return scans[["scan_id", "age", "brain_age", "r_reconstruction", "r_sample"]]
