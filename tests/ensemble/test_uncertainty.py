"""The per-scan uncertainty: the width of the 95 % interval of the base-model predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainpad.ensemble.uncertainty import interval_width, interval_widths


def test_interval_width_is_the_central_95_percent():
    values = np.arange(101.0)
    assert interval_width(values) == pytest.approx(95.0)
    assert interval_width(np.array([3.0, 3.0])) == 0.0


def test_widths_per_scan_over_every_prediction_it_has():
    predictions = [
        pd.DataFrame(
            {
                "scan_id": ["a", "b", "b"],
                "model": [model] * 3,
                "fold": [0, 0, 1],
                "set": ["oof", "heldout", "heldout"],
                "predicted": [50 + shift, 60 + shift, 64 + shift],
            }
        )
        for model, shift in (("m-1", 0.0), ("m-2", 2.0), ("r", 10.0))
    ]
    table = pd.DataFrame({"scan_id": ["b", "a"]})
    widths = interval_widths(predictions, table, ["m-1", "m-2", "r"])
    assert list(widths.columns) == ["uncertainty", "uncertainty_m"]
    # scan b: six predictions 60, 64, 62, 66, 70, 74; scan a: 50, 52, 60
    assert widths["uncertainty"].tolist() == pytest.approx(
        [interval_width(np.array([60, 64, 62, 66, 70, 74])), interval_width(np.array([50, 52, 60]))]
    )
    assert widths["uncertainty_m"].tolist() == pytest.approx([0.95 * 6.0, 0.95 * 2.0])
