"""Global bias correction of brain-PAD (``SCIENCE.md`` §1).

Brain-age models regress to the mean: brain-PAD (Δ = predicted − age) is negative in the
old and positive in the young. The global (Cole / de Lange) correction fits
Δ = α·age + β on a healthy *calibration* set that was not used for training, and reports
Δ̃ = Δ − (α·age + β). Accuracy is always reported on the raw predictions.
:func:`calibration_scans` picks the scans a correction is fitted on: the calibration set,
or with the training controls, whose predictions are out-of-fold.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm

from brainpad.cohort.folds import CALIBRATION_SETS
from brainpad.stats.tables import baseline_scans

log = logging.getLogger(__name__)


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


def calibration_scans(scans: pd.DataFrame, which: str = "calibration") -> pd.DataFrame:
    """The healthy scans a bias correction is fitted on, one per participant.

    ``calibration`` is the studies' choice: the calibration set, healthy scans no model
    trained on. ``calibration+out_of_fold`` adds the training controls, whose predictions
    (and maps) come from the one fold model that did not train on them (and whose ensemble
    age is cross-fitted), so every prediction is still one for an unseen scan; a fit on a
    few dozen scans instead of a few carries less of its own noise into every corrected
    brain-PAD (study 1 calibrated on 200).
    """
    if which not in CALIBRATION_SETS:
        msg = (
            f"calibration set {which!r} (debias.voxel_calibration, debias.global_calibration)"
            f" is not one of {', '.join(CALIBRATION_SETS)}"
        )
        raise ValueError(msg)
    roles = ["calibration"] if which == "calibration" else ["calibration", "train"]
    return baseline_scans(scans[scans["role"].isin(roles)]).reset_index(drop=True)


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
