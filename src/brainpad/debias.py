"""Bias correction of brain-PAD (``SCIENCE.md`` §1).

Brain-age models regress to the mean: brain-PAD (Δ = predicted − age) is negative in the
old and positive in the young. The global (Cole / de Lange) correction fits
Δ = α·age + β on a healthy *calibration* set that was not used for training, and reports
Δ̃ = Δ − (α·age + β). Accuracy is always reported on the raw predictions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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
