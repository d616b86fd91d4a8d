"""``ridge_roi``: ridge regression on atlas ROI tissue volumes, the classical baseline.

Features are standardised on the training scans; the penalty is chosen among ``alphas``
by efficient leave-one-out cross-validation (scikit-learn's ``RidgeCV``). The fitted
model is stored as plain arrays (no pickle), so a bundle can be loaded safely anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import RidgeCV
from sklearn.preprocessing import StandardScaler

from brainpad.models import ModelSpec

SPEC = ModelSpec(
    "ridge_roi",
    reads="roi",
    output="scalar",
    description="ridge regression on Harvard-Oxford ROI GM/WM/CSF volumes (classical baseline)",
)


def fit(features: pd.DataFrame, age: np.ndarray, params: dict) -> dict:
    """Fit the ridge model; returns its state (plain lists, safe to save).

    Parameters
    ----------
    features : DataFrame
        One row per training scan, one numeric column per feature.
    age : ndarray
        Chronological age of each row.
    params : dict
        The config's ``models.ridge_roi``: ``alphas``, the candidate penalties.
    """
    alphas: Sequence[float] = params["alphas"]
    scaler = StandardScaler().fit(features.to_numpy(dtype=float))
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    x = (features.to_numpy(dtype=float) - scaler.mean_) / scale
    ridge = RidgeCV(alphas=np.asarray(alphas, dtype=float)).fit(x, np.asarray(age, float))
    return {
        "columns": list(features.columns),
        "mean": scaler.mean_.tolist(),
        "scale": scale.tolist(),
        "coef": ridge.coef_.tolist(),
        "intercept": float(ridge.intercept_),
        "alpha": float(ridge.alpha_),
    }


def predict(state: dict, features: pd.DataFrame) -> np.ndarray:
    """Predicted age of each row of ``features`` (needs the training columns)."""
    missing = sorted(set(state["columns"]) - set(features.columns))
    if missing:
        msg = (
            f"ridge_roi: the feature table lacks {len(missing)} training columns, "
            f"e.g. {missing[:3]}; were the ROI volumes made with the same atlas?"
        )
        raise ValueError(msg)
    x = features[state["columns"]].to_numpy(dtype=float)
    x = (x - np.asarray(state["mean"])) / np.asarray(state["scale"])
    return x @ np.asarray(state["coef"]) + state["intercept"]
