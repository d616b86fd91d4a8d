"""Brain-PAD against survival (study 2): Pearson r and a Cox proportional-hazards fit
(statsmodels ``PHReg``) with brain-PAD, age and sex."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from brainpad.stats.tables import baseline_scans, pad_column

MIN_SURVIVAL = 5
"""Fewer participants with a survival time than this: no survival analysis (a row of NaN)."""


def survival_table(
    table: pd.DataFrame,
    participants: pd.DataFrame,
    models: Sequence[str],
    column: str = "survival_months",
    event_column: str = "survival_event",
) -> pd.DataFrame:
    """Corrected brain-PAD of each model against survival time.

    For the participants with a survival time (one scan each): Pearson r of brain-PAD
    and survival, and a Cox proportional-hazards model of survival on brain-PAD, age and
    sex (statsmodels ``PHReg``); the hazard ratio is per year of brain-PAD, with its 95 %
    confidence interval. ``event_column`` (1 = died, 0 = censored) is used when
    participants.tsv has it; otherwise every survival time is an observed event.

    Returns
    -------
    DataFrame
        ``model, n, events, r, r_p, hazard_ratio, hr_low, hr_high, hr_p``; NaN where
        fewer than :data:`MIN_SURVIVAL` participants have a survival time, no rows when
        participants.tsv has no ``column``.
    """
    from statsmodels.duration.hazard_regression import PHReg

    columns = ["model", "n", "events", "r", "r_p", "hazard_ratio", "hr_low", "hr_high", "hr_p"]
    if column not in participants.columns:
        return pd.DataFrame(columns=columns)
    keep = [c for c in ("participant_id", column, event_column) if c in participants.columns]
    people = baseline_scans(table[table["role"].isin(["test", "clinical"])])
    people = people.merge(participants[keep], on="participant_id", how="inner")
    rows = []
    for model in [m for m in models if pad_column(m) in people]:
        data = people.dropna(subset=[column, pad_column(model), "age"])
        row = {"model": model, "n": len(data)}
        if len(data) < MIN_SURVIVAL:
            rows.append(row)
            continue
        time = data[column].to_numpy(float)
        status = data[event_column].to_numpy(float) if event_column in data else np.ones(len(data))
        pad = data[pad_column(model)].to_numpy(float)
        r, r_p = sps.pearsonr(pad, time)
        exog = np.column_stack([pad, data["age"].to_numpy(float)])
        if data["sex"].nunique() > 1:
            exog = np.column_stack([exog, (data["sex"] == "M").to_numpy(float)])
        fit = PHReg(time, exog, status=status).fit()
        low, high = fit.conf_int()[0]
        row.update(
            events=int(status.sum()),
            r=float(r),
            r_p=float(r_p),
            hazard_ratio=float(np.exp(fit.params[0])),
            hr_low=float(np.exp(low)),
            hr_high=float(np.exp(high)),
            hr_p=float(fit.pvalues[0]),
        )
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=columns)
