"""Study 4's multimodal stacking: one model per input, a linear model on their predictions.

For every architecture trained on more than one input (``vgg3d`` on T1w and FLAIR, say)
and one region, the sub-ensembles that differ only by input are stacked by ordinary
least squares in nested steps: the first input alone, then each further input added,
then sex as a covariate. Each step is compared with the one before by an F-test on the
nested models (statsmodels' ``anova_lm``), as study 4 did; the models are fitted on the
training controls' out-of-sample predictions and scored on the healthy test set (MAE,
MSE, R²: study 4's Table 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from brainpad.ensemble.stacking import sub_ensembles

COLUMNS = [
    "architecture", "region", "model", "n_train", "n_test", "mae", "mse", "r2", "f", "p",
]  # fmt: skip


def modality_sets(models: Sequence[str]) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(architecture, region) → [(input, sub-ensemble), ...] where there are two or more
    inputs, inputs in config order."""
    from brainpad.models import parse_base_model

    found: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for name, members in sub_ensembles(models).items():
        base = parse_base_model(members[0])
        found.setdefault((base.architecture, base.region), []).append((base.input, name))
    return {key: subs for key, subs in found.items() if len(subs) > 1}


def nested_stacking(
    table: pd.DataFrame, subs: Sequence[tuple[str, str]]
) -> list[dict[str, float | str | int]]:
    """The nested OLS stacking models of one architecture's per-input sub-ensembles.

    Parameters
    ----------
    table : DataFrame
        The brain-age table (``role``, ``age``, ``sex``, ``participant_id``,
        ``pred_<sub-ensemble>``).
    subs : sequence of (input, sub-ensemble)
        In the order they enter the model.

    Returns
    -------
    list of dict
        One row per step: ``model`` (e.g. ``t1w + flair + sex``), sizes, test MAE, MSE,
        R², and the F statistic and p of the step against the one before (NaN first).
    """
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    from brainpad.stats.measures import accuracy
    from brainpad.stats.tables import baseline_scans

    data = table.assign(**{f"x{k}": table[f"pred_{name}"] for k, (_, name) in enumerate(subs)})
    train = baseline_scans(data[data["role"] == "train"])
    test = baseline_scans(data[data["role"] == "test"])
    steps = [[f"x{k}" for k in range(n + 1)] for n in range(len(subs))]
    if train["sex"].nunique() > 1:
        steps.append([*steps[-1], "C(sex)"])
    rows, previous = [], None
    for terms in steps:
        fitted = smf.ols("age ~ " + " + ".join(terms), data=train).fit()
        scores = accuracy(test["age"], fitted.predict(test))
        f, p = (np.nan, np.nan)
        if previous is not None:
            comparison = anova_lm(previous, fitted)
            f, p = float(comparison["F"].iloc[1]), float(comparison["Pr(>F)"].iloc[1])
        names = [subs[int(t[1:])][0] if t.startswith("x") else "sex" for t in terms]
        rows.append(
            {
                "model": " + ".join(names),
                "n_train": int(fitted.nobs),
                "n_test": len(test),
                "mae": scores["mae"],
                "mse": scores["mse"],
                "r2": scores["r2"],
                "f": f,
                "p": p,
            }
        )
        previous = fitted
    return rows


def modality_table(table: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """Study 4's stacking table for every multi-input architecture (empty without one)."""
    rows = [
        {"architecture": architecture, "region": region, **row}
        for (architecture, region), subs in modality_sets(models).items()
        for row in nested_stacking(table, subs)
    ]
    return pd.DataFrame(rows, columns=COLUMNS)
