"""Bias correction of brain-PAD (``SCIENCE.md`` §1).

Brain-age models regress to the mean: brain-PAD (Δ = predicted − age) is negative in the
old and positive in the young. The global (Cole / de Lange) correction fits
Δ = α·age + β on a healthy *calibration* set that was not used for training, and reports
Δ̃ = Δ − (α·age + β). Accuracy is always reported on the raw predictions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm


@dataclass(frozen=True)
class LinearBias:
    """Δ = alpha · age + beta, fitted on healthy calibration participants."""

    alpha: float
    beta: float
    n: int

    @classmethod
    def fit(cls, age: np.ndarray, delta: np.ndarray) -> LinearBias:
        """Ordinary least squares of brain-PAD on age."""
        age = np.asarray(age, dtype=float)
        if age.size < 3:
            msg = (
                f"the bias correction needs at least 3 calibration participants, got "
                f"{age.size}; raise folds.calibration_fraction or add controls"
            )
            raise ValueError(msg)
        fit = sm.OLS(np.asarray(delta, dtype=float), sm.add_constant(age)).fit()
        beta, alpha = fit.params
        return cls(alpha=float(alpha), beta=float(beta), n=int(age.size))

    def correct(self, age: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """Corrected brain-PAD Δ̃ = Δ − (α·age + β)."""
        return np.asarray(delta, dtype=float) - (self.alpha * np.asarray(age, float) + self.beta)


def correct_table(
    table: pd.DataFrame, columns: dict[str, str], calibration: np.ndarray
) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Raw and bias-corrected brain-PAD for several brain-age columns.

    Parameters
    ----------
    table : DataFrame
        One row per scan with ``age`` and the brain-age columns.
    columns : dict
        Output suffix → brain-age column, e.g. ``{"": "brain_age", "_vgg3d": "pred_vgg3d"}``
        gives ``brain_pad`` / ``brain_pad_corrected`` and ``brain_pad_vgg3d`` /
        ``brain_pad_corrected_vgg3d``.
    calibration : ndarray of bool
        Rows of the healthy calibration set (never used for training).

    Returns
    -------
    table : DataFrame
        A copy with the brain-PAD columns added.
    fits : dict
        Suffix → ``{"alpha", "beta", "n"}`` of each fitted correction.
    """
    out = table.copy()
    fits = {}
    age = out["age"].to_numpy(dtype=float)
    for suffix, column in columns.items():
        delta = out[column].to_numpy(dtype=float) - age
        bias = LinearBias.fit(age[calibration], delta[calibration])
        out[f"brain_pad{suffix}"] = delta
        out[f"brain_pad_corrected{suffix}"] = bias.correct(age, delta)
        fits[suffix or "ensemble"] = {"alpha": bias.alpha, "beta": bias.beta, "n": bias.n}
    return out, fits
