"""``brainpad stats``: accuracy per model on the healthy test scans, group comparisons of
brain-PAD (one scan per participant), and study 2's KS comparison of models' brain-PAD
distributions, as tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats as sps

from brainpad.stats.measures import (
    accuracy,
    bonferroni,
    bootstrap_interval,
    cohens_d,
    coverage,
    mean_ratio,
    welch,
)

COMPARISON_COLUMNS = [
    "first", "second", "n_first", "n_second", "mean_first", "mean_second",
    "t", "df", "p", "d", "p_bonferroni",
]  # fmt: skip
"""Columns of a group-comparison table (:func:`compare_groups`)."""
KS_COLUMNS = ["group", "model", "n", "reference_mean", "model_mean", "ks", "p", "reference"]
"""Columns of :func:`ks_table`."""


def compare_groups(
    table: pd.DataFrame,
    value: str,
    group: str = "group",
    pairs: list[tuple[str, str]] | None = None,
) -> pd.DataFrame:
    """Welch t, df, p, Bonferroni p and Cohen's d for each pair of groups.

    Parameters
    ----------
    table : DataFrame
        One row per participant.
    value : str
        Column to compare (e.g. ``brain_pad``).
    group : str
        Column with the group labels.
    pairs : list of (str, str), optional
        Comparisons as (first, second); d and t are first minus second. Default: every
        pair of groups with at least two members, in order of appearance.
    """
    sizes = table[group].value_counts()
    present = [g for g in table[group].unique() if sizes[g] >= 2]
    pairs = pairs or list(combinations(present, 2))
    rows = []
    for first, second in pairs:
        a = table.loc[table[group] == first, value].dropna().to_numpy()
        b = table.loc[table[group] == second, value].dropna().to_numpy()
        if a.size < 2 or b.size < 2:
            continue
        rows.append(
            {
                "first": first,
                "second": second,
                "n_first": a.size,
                "n_second": b.size,
                "mean_first": a.mean(),
                "mean_second": b.mean(),
                **welch(a, b),
                "d": cohens_d(a, b),
            }
        )
    result = pd.DataFrame(rows, columns=COMPARISON_COLUMNS[:-1])
    result["p_bonferroni"] = bonferroni(result["p"])
    return result


def baseline_scans(table: pd.DataFrame) -> pd.DataFrame:
    """One scan per participant (the first by scan id), so repeat scans do not count twice."""
    return table.sort_values("scan_id").drop_duplicates("participant_id").reset_index(drop=True)


def accuracy_table(
    table: pd.DataFrame, columns: dict[str, str], truth: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Healthy-test accuracy of each brain-age column, on raw predictions.

    Parameters
    ----------
    table : DataFrame
        The brain-age table (``role``, ``age`` and the brain-age columns).
    columns : dict
        Label → brain-age column, e.g. ``{"ensemble": "brain_age", "vgg3d": "pred_vgg3d"}``.
    truth : DataFrame, optional
        Simulation truth indexed by ``participant_id`` with ``true_brain_age``: adds the
        floor MAE of the same test participants (what a perfect model would score) and
        each model's MAE above it.
    """
    test = baseline_scans(table[table["role"] == "test"])
    rows = [{"model": label, **accuracy(test["age"], test[col])} for label, col in columns.items()]
    result = pd.DataFrame(rows)
    if "brain_age_low" in test and "brain_age" in columns.values():
        low, high = test["brain_age_low"], test["brain_age_high"]
        ensemble = [col == "brain_age" for col in columns.values()]
        result["interval_coverage"] = np.where(ensemble, coverage(test["age"], low, high), np.nan)
        result["interval_width"] = np.where(ensemble, (high - low).mean(), np.nan)
    if truth is not None:
        true_age = truth.loc[test["participant_id"], "true_brain_age"].to_numpy()
        result["floor_mae"] = float(np.abs(true_age - test["age"].to_numpy()).mean())
        result["mae_above_floor"] = result["mae"] - result["floor_mae"]
    return result


UNTRAINED_ROLES = ("train", "calibration", "test")
"""The healthy controls' roles: every model predicts each of them without having trained
on them (training controls out-of-fold, calibration and test controls held out)."""


def untrained_accuracy(
    table: pd.DataFrame, columns: dict[str, str], truth: pd.DataFrame | None = None, seed: int = 0
) -> pd.DataFrame:
    """Each model scored on every healthy control it did not train on, with intervals.

    The healthy-test table (:func:`accuracy_table`) holds a few held-out controls; this
    one holds all of them (:data:`UNTRAINED_ROLES`, one scan per participant): the
    training controls' out-of-fold predictions and the held-out controls' predictions.

    Returns
    -------
    DataFrame
        ``model, n, mae, mae_low, mae_high, r`` (the bootstrap 95 % interval of the MAE over
        people, :func:`~brainpad.stats.measures.bootstrap_interval`) and, with ``truth``
        (``true_brain_age``), ``floor_mae`` on the same people and ``mae_over_floor`` with
        its interval (``mae_over_floor_low``, ``mae_over_floor_high``: people resampled for both).
    """
    people = baseline_scans(table[table["role"].isin(UNTRAINED_ROLES)])
    rows = []
    for label, column in columns.items():
        scored = people[people[column].notna()]
        age, predicted = scored["age"].to_numpy(float), scored[column].to_numpy(float)
        error = np.abs(predicted - age)
        row = {"model": label, **accuracy(age, predicted)}
        row["mae_low"], row["mae_high"] = bootstrap_interval(np.mean, (error,), seed)
        if truth is not None:
            true_age = truth.loc[scored["participant_id"], "true_brain_age"].to_numpy(float)
            floor = np.abs(true_age - age)
            row["floor_mae"] = float(floor.mean())
            row["mae_over_floor"] = row["mae"] / row["floor_mae"]
            row["mae_over_floor_low"], row["mae_over_floor_high"] = bootstrap_interval(
                mean_ratio, (error, floor), seed
            )
        rows.append(row)
    return pd.DataFrame(rows).drop(columns=["mse", "r2"])


def accuracy_by(
    table: pd.DataFrame, columns: dict[str, str], by: str, bin_years: float = 5.0
) -> pd.DataFrame:
    """Healthy-test accuracy of each brain-age column per site or per age bin (study 4's
    Tables 2-3).

    Parameters
    ----------
    table : DataFrame
        The brain-age table.
    columns : dict
        Label → brain-age column (:func:`accuracy_table`).
    by : str
        ``site``, or ``age_bin`` for bins of ``bin_years`` (``[20, 25)`` is ``20-25``).
    """
    test = baseline_scans(table[table["role"] == "test"])
    if by == "age_bin":
        low = np.floor(test["age"] / bin_years) * bin_years
        test = test.assign(age_bin=[f"{a:g}-{a + bin_years:g}" for a in low], _low=low)
        keys = test.sort_values("_low")["age_bin"].unique()
    else:
        keys = sorted(test[by].unique())
    rows = [
        {"model": label, by: key, **accuracy(part["age"], part[column])}
        for label, column in columns.items()
        for key in keys
        for part in [test[test[by] == key]]
    ]
    return pd.DataFrame(rows)


def ensemble_vs_base(accuracy: pd.DataFrame, groups: dict[str, list[str]]) -> pd.DataFrame:
    """Each sub-ensemble and the ensemble against their base models (study 3's Table 1).

    Parameters
    ----------
    accuracy : DataFrame
        :func:`accuracy_table` (``model``, ``mae`` ...), with a row per base model, per
        sub-ensemble of several members, and ``ensemble``.
    groups : dict
        Sub-ensemble → its base models (:func:`brainpad.ensemble.stacking.sub_ensembles`).

    Returns
    -------
    DataFrame
        ``level`` (``sub-ensemble``, ``ensemble``), ``name``, ``n_base``, the base models'
        mean, SD and best MAE, the stack's own ``mae`` and whether it beats the best one.
    """
    mae = accuracy.set_index("model")["mae"]
    scopes = [
        ("sub-ensemble", name, members) for name, members in groups.items() if len(members) > 1
    ]
    scopes.append(("ensemble", "ensemble", [m for ms in groups.values() for m in ms]))
    rows = []
    for level, name, members in scopes:
        base = mae.loc[members]
        rows.append(
            {
                "level": level,
                "name": name,
                "n_base": len(members),
                "base_mae_mean": float(base.mean()),
                "base_mae_sd": float(base.std(ddof=1)) if len(base) > 1 else np.nan,
                "base_mae_best": float(base.min()),
                "best_base": str(base.idxmin()),
                "mae": float(mae.loc[name]),
                "beats_best_base": bool(mae.loc[name] < base.min()),
            }
        )
    return pd.DataFrame(rows)


def comparison_people(
    table: pd.DataFrame, control_group: str, control_min_age: float
) -> pd.DataFrame:
    """One scan per participant for the group comparisons: every patient, and the controls
    aged ``control_min_age`` or more (excluded and unlabelled participants left out)."""
    people = baseline_scans(table[~table["role"].isin(["excluded", "unlabelled"])])
    keep = (people["group"] != control_group) | (people["age"] >= control_min_age)
    return people[keep].reset_index(drop=True)


def group_tables(
    table: pd.DataFrame,
    control_group: str,
    control_min_age: float,
    value: str = "brain_pad_corrected",
    truth: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Brain-PAD by group and the group comparisons (controls vs patients, patients pairwise).

    Controls are the healthy participants aged ``control_min_age`` or more (their
    out-of-fold or held-out predictions), so they match the patients' age range.

    Returns
    -------
    by_group : DataFrame
        ``group, n, mean, sd`` of ``value`` (and ``true_mean`` of the simulated brain-PAD
        when ``truth`` is given).
    comparisons : DataFrame
        :func:`compare_groups` rows, patient group first, Bonferroni over all pairs.
    """
    people = comparison_people(table, control_group, control_min_age)
    order = [control_group] + [g for g in people["group"].unique() if g != control_group]
    summary = people.groupby("group")[value].agg(["size", "mean", "std"]).reindex(order)
    summary = summary.dropna(subset=["size"]).rename(columns={"size": "n", "std": "sd"})
    summary = summary.astype({"n": int}).rename_axis("group").reset_index()
    if truth is not None:
        true_pad = truth.loc[people["participant_id"], "true_brain_pad"].to_numpy()
        means = pd.Series(true_pad, index=people.index).groupby(people["group"]).mean()
        summary["true_mean"] = summary["group"].map(means)
    return summary, compare_groups(people, value, pairs=comparison_pairs(people, control_group))


def comparison_pairs(people: pd.DataFrame, control_group: str) -> list[tuple[str, str]]:
    """Each patient group vs the controls, then the patient groups pairwise."""
    patients = [g for g in people["group"].unique() if g != control_group]
    return [(g, control_group) for g in patients] + list(combinations(patients, 2))


def pad_column(model: str) -> str:
    """The corrected brain-PAD column of ``model`` (``ensemble``: the ensemble's)."""
    return "brain_pad_corrected" if model == "ensemble" else f"brain_pad_corrected_{model}"


def heldout_people(table: pd.DataFrame, control_group: str) -> pd.DataFrame:
    """One scan per held-out participant (healthy test and clinical), the test controls'
    group relabelled ``<control_group> (test)``: study 2's per-group model comparisons."""
    people = baseline_scans(table[table["role"].isin(["test", "clinical"])])
    return people.assign(
        group=np.where(people["role"] == "test", f"{control_group} (test)", people["group"])
    )


def ks_table(
    table: pd.DataFrame, reference: str, models: Sequence[str], control_group: str
) -> pd.DataFrame:
    """Two-sample KS tests of ``reference``'s corrected brain-PAD against each other
    model's, per clinical group (one scan per participant).

    Parameters
    ----------
    table : DataFrame
        ``results/ensemble/brain_age.tsv``.
    reference : str
        The model compared with the others (study 2: the diffusion autoencoder).
    models : sequence of str
        The other models (``ensemble`` for the stacked brain age).
    control_group : str
        Its healthy test participants form the ``<control_group> (test)`` rows.

    Returns
    -------
    DataFrame
        ``group, model, n, reference_mean, model_mean, ks, p, reference`` (scipy's
        ``ks_2samp``); models without a corrected brain-PAD column are left out.
    """
    people = heldout_people(table, control_group)
    models = [m for m in models if pad_column(m) in people]
    rows = []
    if pad_column(reference) not in people:
        return pd.DataFrame(rows, columns=KS_COLUMNS)
    for group, part in people.groupby("group", sort=False):
        ref = part[pad_column(reference)].dropna().to_numpy()
        for model in models:
            other = part[pad_column(model)].dropna().to_numpy()
            result = sps.ks_2samp(ref, other) if len(ref) and len(other) else None
            rows.append(
                {
                    "group": group,
                    "model": model,
                    "n": int(min(len(ref), len(other))),
                    "reference_mean": float(ref.mean()) if len(ref) else np.nan,
                    "model_mean": float(other.mean()) if len(other) else np.nan,
                    "ks": float(result.statistic) if result else np.nan,
                    "p": float(result.pvalue) if result else np.nan,
                }
            )
    return pd.DataFrame(rows, columns=KS_COLUMNS[:-1]).assign(reference=reference)
