"""Global bias correction arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from brainpad.debias import LinearBias


def test_recovers_regression_to_the_mean():
    rng = np.random.default_rng(0)
    age = rng.uniform(20, 80, 200)
    predicted = 50 + 0.6 * (age - 50) + rng.normal(0, 2, age.size)  # shrunk to the mean
    delta = predicted - age
    bias = LinearBias.fit(age, delta)
    assert bias.alpha == pytest.approx(-0.4, abs=0.03)
    assert bias.beta == pytest.approx(20, abs=1.5)
    corrected = bias.correct(age, delta)
    assert abs(np.corrcoef(age, corrected)[0, 1]) < 0.01
    assert abs(np.corrcoef(age, delta)[0, 1]) > 0.9


def test_needs_calibration_participants():
    with pytest.raises(ValueError, match="at least 3 calibration participants, got 2"):
        LinearBias.fit(np.array([30.0, 40.0]), np.array([1.0, 2.0]))
