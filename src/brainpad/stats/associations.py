"""Brain-PAD against the clinical columns of participants.tsv, overall and in sliding age
windows (study 3's Fig. 7).

Every column of participants.tsv that is not an identifier or a covariate is a clinical
variable: *numeric* when all its values are numbers, *categorical* when it has 2–10
levels. For each model's corrected brain-PAD (one scan per participant; excluded and
unlabelled participants left out):

* numeric: Pearson r (scipy) and ordinary least squares (statsmodels) of the variable on
  brain-PAD, age and sex (``slope``: the variable's change per year of brain-PAD, with its
  95 % CI and p); ``slope_within_groups`` adds the diagnostic group as a factor, the model
  the simulator's clinical scores follow;
* categorical: Welch's t (two levels) or one-way ANOVA (more) of brain-PAD across levels.

The sliding windows are 10 years wide and overlap by half (60–70, 65–75, ...); their p
values are Bonferroni-corrected across windows × variables, per model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from brainpad.stats.tables import baseline_scans, pad_column

NOT_CLINICAL = {"participant_id", "age", "sex", "site", "group", "survival_event"}
"""participants.tsv columns that are identifiers or covariates, not clinical variables."""
MAX_LEVELS = 10
"""A non-numeric column with more levels than this is free text, not a category."""
MIN_N = 5
"""Fewer participants with a value than this: no test (NaN)."""
WINDOW = 10.0
STEP = 5.0
"""Sliding age windows: ``WINDOW`` years wide, starting every ``STEP`` years."""


def clinical_variables(participants: pd.DataFrame) -> dict[str, str]:
    """Column → ``numeric`` or ``categorical`` for the clinical columns of participants.tsv."""
    found = {}
    for column in participants.columns.difference(sorted(NOT_CLINICAL), sort=False):
        values = participants[column].dropna()
        if values.empty:
            continue
        if pd.to_numeric(values, errors="coerce").notna().all():
            found[column] = "numeric"
        elif 2 <= values.nunique() <= MAX_LEVELS:
            found[column] = "categorical"
    return found


def association_people(table: pd.DataFrame, participants: pd.DataFrame) -> pd.DataFrame:
    """One scan per participant with a brain-PAD, joined with their clinical columns."""
    people = baseline_scans(table[~table["role"].isin(["excluded", "unlabelled"])])
    extra = participants.drop(
        columns=[c for c in participants if c in people and c != "participant_id"]
    )
    return people.merge(extra, on="participant_id", how="left")


def _ols(data: pd.DataFrame, variable: str, pad: str, groups: bool) -> dict[str, float]:
    import statsmodels.api as sm

    design = pd.DataFrame({"pad": data[pad], "age": data["age"]})
    if data["sex"].nunique() > 1:
        design["male"] = (data["sex"] == "M").astype(float)
    if groups and data["group"].nunique() > 1:
        design = design.join(
            pd.get_dummies(data["group"], prefix="group", drop_first=True, dtype=float)
        )
    fit = sm.OLS(data[variable].astype(float), sm.add_constant(design)).fit()
    low, high = fit.conf_int().loc["pad"]
    return {
        "slope": fit.params["pad"],
        "slope_low": low,
        "slope_high": high,
        "slope_p": fit.pvalues["pad"],
    }


def associate(data: pd.DataFrame, variable: str, kind: str, pad: str) -> dict[str, float]:
    """One association of ``pad`` (a brain-PAD column) with ``variable`` in ``data``."""
    data = data.dropna(subset=[variable, pad, "age"])
    row: dict[str, float] = {"n": len(data)}
    if len(data) < MIN_N:
        return row
    if kind == "numeric":
        r, p = sps.pearsonr(data[pad], data[variable].astype(float))
        half = 1.96 / np.sqrt(len(data) - 3)  # Fisher's z
        row.update(statistic="r", value=r, p=p, r_low=np.tanh(np.arctanh(r) - half),
                   r_high=np.tanh(np.arctanh(r) + half))  # fmt: skip
        row.update(_ols(data, variable, pad, groups=False))
        within = _ols(data, variable, pad, groups=True)
        row.update(slope_within_groups=within["slope"], slope_within_groups_p=within["slope_p"])
        return row
    levels = [part[pad].to_numpy() for _, part in data.groupby(variable) if len(part) > 1]
    if len(levels) < 2:
        return row
    if len(levels) == 2:
        result = sps.ttest_ind(*levels, equal_var=False)
        row.update(statistic="welch_t", value=result.statistic, p=result.pvalue)
    else:
        result = sps.f_oneway(*levels)
        row.update(statistic="anova_f", value=result.statistic, p=result.pvalue)
    return row


def association_table(
    people: pd.DataFrame,
    variables: dict[str, str],
    models: Sequence[str],
    true_slopes: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Every model × clinical variable over all participants (:func:`associate`).

    ``true_slopes`` (simulated data: the generating slope of a variable per year of true
    brain-PAD) adds a ``true_slope`` column beside ``slope_within_groups``, the model the
    simulator used; measured brain-PAD is true brain-PAD plus error, so the recovered
    slope is attenuated towards 0.
    """
    rows = [
        {"model": model, "variable": variable, "kind": kind,
         **associate(people, variable, kind, pad_column(model))}
        for model in models
        if pad_column(model) in people
        for variable, kind in variables.items()
    ]  # fmt: skip
    table = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["model", "variable", "kind", "n"])
    if true_slopes and not table.empty:
        table["true_slope"] = table["variable"].map(true_slopes)
    return table


def age_windows(
    ages: pd.Series, width: float = WINDOW, step: float = STEP
) -> list[tuple[float, float]]:
    """Overlapping ``[start, start + width)`` windows every ``step`` years covering ``ages``."""
    start = np.floor(ages.min() / step) * step
    windows = []
    while start < ages.max():
        windows.append((float(start), float(start + width)))
        start += step
    return windows


def window_table(
    people: pd.DataFrame, variables: dict[str, str], models: Sequence[str]
) -> pd.DataFrame:
    """The associations within each sliding age window, Bonferroni-corrected across the
    windows × variables of each model (``p_bonferroni``; untested windows do not count)."""
    rows = []
    for low, high in age_windows(people["age"]):
        inside = people[(people["age"] >= low) & (people["age"] < high)]
        for model in models:
            if pad_column(model) not in people:
                continue
            for variable, kind in variables.items():
                result = associate(inside, variable, kind, pad_column(model))
                rows.append({"model": model, "variable": variable, "kind": kind,
                             "age_low": low, "age_high": high, **result})  # fmt: skip
    columns = ["model", "variable", "kind", "age_low", "age_high", "n"]
    table = pd.DataFrame(rows) if rows else pd.DataFrame(columns=columns)
    if table.empty or "p" not in table:
        return table.assign(p_bonferroni=np.nan)
    tests = table.groupby("model")["p"].transform("count")
    table["p_bonferroni"] = np.minimum(table["p"] * tests, 1.0)
    return table
