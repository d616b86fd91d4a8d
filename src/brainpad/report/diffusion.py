"""Study 2's figure: healthy test slices and their reconstructions from ``z_sem`` alone.

A diffusion autoencoder's semantic latent should carry the slice's anatomy: decoding it
(DDIM from noise, :meth:`brainpad.models.diffae.DiffAE.reconstruct`) gives back a slice
that looks like the input, while fine detail comes from the noise. Drawn for a few healthy
test participants spread over the age range, with their age and the model's brain age.
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
    """Draw ``n`` test slices (top row) and their reconstructions from ``z_sem`` (bottom).

    Returns the scans drawn with their age, brain age (this fold model's) and the mean
    absolute difference between slice and reconstruction (intensities in [0, 1]).
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
    image, decoded = fitted.net.reconstruct(torch.from_numpy(inputs), steps, generator)
    scans["brain_age"] = fitted.predict(inputs)
    scans["difference"] = (image - decoded).abs().mean(dim=(1, 2, 3)).numpy()
    fig, axes = plt.subplots(2, len(scans), figsize=(2.2 * len(scans), 4.6), squeeze=False)
    for k, row in scans.iterrows():
        for ax, picture in zip(axes[:, k], (image[k, 0], decoded[k, 0]), strict=True):
            ax.imshow(picture.numpy().T, cmap="gray", origin="lower", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, k].set_title(f"age {row.age:.0f}, brain age {row.brain_age:.0f}", fontsize=8)
        axes[1, k].set_title(f"|difference| {row.difference:.3f}", fontsize=8)
    axes[0, 0].set_ylabel("slice")
    axes[1, 0].set_ylabel(f"from z_sem ({steps} DDIM steps)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return scans[["scan_id", "age", "brain_age", "difference"]]
