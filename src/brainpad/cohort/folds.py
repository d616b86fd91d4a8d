"""Roles and cross-validation folds (``brainpad folds``): who trains, calibrates and tests.

Units are *participants*, never scans, so the repeat scans of one person always share a
role and a fold (no leakage between training and evaluation).

* Healthy controls that pass QC are split into ``train`` (cross-validated in K folds),
  ``calibration`` (held out, to fit the bias correction) and ``test`` (held out, to report
  accuracy).
* Every other group is ``clinical``.
* Controls with a scan that failed QC are ``excluded`` (and listed in the report).
* Participants without an age (``unlabelled: use``) are ``unlabelled``, whatever their
  group: they train only the semi-supervised models' unsupervised loss (study 2), never a
  supervised head, a bias correction or a statistic.

Stratification by age decile and site uses blocked randomisation: within each site the
participants are sorted by age and cut into consecutive blocks; inside a block, the roles
(or folds) are assigned in a random order. Every role and fold therefore spans the whole
age range of every site, for any cohort size (the study 4 recipe, without the need for
each stratum to hold K members as scikit-learn's stratified splitters require).

With ``split="kl"`` (study 4's choice), ``candidates`` such blocked assignments of the
held-out roles are drawn and the one whose calibration and test sets have age
distributions closest to the whole set of usable controls is kept: the smallest sum of
Kullback-Leibler divergences over the controls' age deciles (:func:`age_divergence`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from brainpad.inputs.errors import InputError

ROLES = ("train", "calibration", "test", "clinical", "excluded", "unlabelled")
CALIBRATION_SETS = ("calibration", "calibration+out_of_fold")
"""Scans a bias correction may be fitted on
(:func:`brainpad.ensemble.correction.calibration_scans`)."""
MIN_HELD_OUT = {"calibration": 3, "test": 1}  # the bias fit needs 3 points at least


def _blocked_assignment(order: pd.Index, labels: list, rng: np.random.Generator) -> pd.Series:
    """Assign ``labels`` (one block's worth) to ``order`` block by block, shuffled per block."""
    out = []
    for start in range(0, len(order), len(labels)):
        block = rng.permutation(labels)[: len(order) - start].tolist()
        out.extend(block)
    return pd.Series(out, index=order)


def _by_site_and_age(participants: pd.DataFrame) -> pd.Index:
    """Participants ordered by site, then age (the stratification order)."""
    return participants.sort_index().sort_values(["site", "age"], kind="stable").index


def age_divergence(part: pd.Series, whole: pd.Series, bins: int = 10) -> float:
    """KL divergence of ``part``'s age distribution from ``whole``'s, over the deciles of
    ``whole`` (scipy's ``entropy``; half a count added to every bin, so an empty bin of a
    small set stays finite)."""
    from scipy.stats import entropy

    edges = np.unique(np.quantile(whole, np.linspace(0, 1, bins + 1)))
    edges[0], edges[-1] = -np.inf, np.inf
    p = np.histogram(part, edges)[0] + 0.5
    q = np.histogram(whole, edges)[0] + 0.5
    return float(entropy(p / p.sum(), q / q.sum()))


def assign_roles(
    participants: pd.DataFrame,
    control_group: str,
    n_folds: int = 5,
    calibration_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 42,
    split: str = "blocked",
    candidates: int = 200,
) -> pd.DataFrame:
    """Give every participant a role and, for training controls, a fold.

    Parameters
    ----------
    participants : DataFrame
        One row per participant with ``participant_id, age, site, group`` and a boolean
        ``qc_passed`` (all of that participant's scans passed QC). A missing age (NaN)
        makes the participant ``unlabelled`` (``excluded`` when a scan failed QC).
    control_group : str
        Label of the healthy controls.
    n_folds : int
        Cross-validation folds among the training controls.
    calibration_fraction, test_fraction : float
        Shares of the passing controls held out for bias correction and for testing.
    seed : int
        Random seed.
    split : {"blocked", "kl"}
        One blocked randomisation of the held-out roles, or the best of ``candidates``
        by age divergence from the whole (study 4).
    candidates : int
        Blocked assignments drawn with ``split="kl"``.

    Returns
    -------
    DataFrame
        ``participant_id, role, fold`` (fold is -1 outside training).

    Raises
    ------
    InputError
        If there are too few controls for three calibration, one test and ``n_folds``
        training participants.
    """
    rng = np.random.default_rng([seed, 2])
    table = participants.set_index("participant_id")
    roles = pd.Series("clinical", index=table.index, dtype=object)
    unlabelled = table["age"].isna()
    roles[unlabelled] = np.where(table.loc[unlabelled, "qc_passed"], "unlabelled", "excluded")
    controls = table[(table["group"] == control_group) & ~unlabelled]
    roles[controls.index[~controls["qc_passed"]]] = "excluded"
    usable = controls[controls["qc_passed"]]
    n_needed = n_folds + sum(MIN_HELD_OUT.values())
    if len(usable) < n_needed:
        msg = (
            f"only {len(usable)} healthy controls ('{control_group}') passed QC, but "
            f"{n_folds} folds need at least {n_needed} (three calibration, one test, one per "
            "fold); lower `folds.k` or add controls"
        )
        raise InputError(msg)
    block = 20
    n_cal = max(1, round(block * calibration_fraction))
    n_test = max(1, round(block * test_fraction))
    pattern = ["calibration"] * n_cal + ["test"] * n_test + ["train"] * (block - n_cal - n_test)

    def draw() -> pd.Series:
        held = _blocked_assignment(_by_site_and_age(usable), pattern, rng)
        for role, least in MIN_HELD_OUT.items():  # tiny cohorts: top up the held-out sets
            while (held == role).sum() < least:
                held[rng.choice(held.index[held == "train"])] = role
        return held

    def divergence(held: pd.Series) -> float:
        ages = usable.loc[held.index, "age"]
        return sum(age_divergence(ages[held == r], ages) for r in ("calibration", "test"))

    if split not in ("blocked", "kl"):
        msg = f"folds.split {split!r} is not one of blocked, kl"
        raise ValueError(msg)
    held = (
        draw() if split == "blocked" else min((draw() for _ in range(candidates)), key=divergence)
    )
    roles[held.index] = held
    train = usable.loc[held.index[held == "train"]]
    folds = pd.Series(-1, index=table.index)
    folds[train.index] = _blocked_assignment(_by_site_and_age(train), list(range(n_folds)), rng)
    return pd.DataFrame(
        {"participant_id": table.index, "role": roles.values, "fold": folds.astype(int).values}
    )


def scan_roles(
    manifest: pd.DataFrame,
    qc: pd.DataFrame,
    control_group: str,
    n_folds: int,
    calibration_fraction: float,
    test_fraction: float,
    seed: int,
    split: str = "blocked",
) -> pd.DataFrame:
    """Roles per T1w scan from the manifest and the QC table (``results/folds.tsv``).

    A participant passes QC when all of their T1w scans do. Returns one row per T1w scan:
    ``scan_id, participant_id, session, age, sex, site, session_site, group, qc_passed,
    role, fold`` (``session_site``: the site is the session's own, from sessions.tsv).
    """
    scans = manifest[manifest["modality"] == "T1w"].merge(
        qc[["scan_id", "passed"]].rename(columns={"passed": "qc_passed"}),
        on="scan_id",
        how="left",
        validate="one_to_one",
    )
    scans["qc_passed"] = scans["qc_passed"].fillna(False).astype(bool)
    people = (
        scans.groupby("participant_id")
        .agg(
            age=("age", "first"),
            site=("site", "first"),
            group=("group", "first"),
            qc_passed=("qc_passed", "all"),
        )
        .reset_index()
    )
    roles = assign_roles(
        people, control_group, n_folds, calibration_fraction, test_fraction, seed, split
    )
    if "session_site" not in scans.columns:  # a manifest from before the column existed
        scans["session_site"] = False
    columns = ["scan_id", "participant_id", "session", "age", "sex", "site", "session_site"]
    return scans[[*columns, "group", "qc_passed"]].merge(
        roles, on="participant_id", validate="many_to_one"
    )


def fold_count(folds: pd.DataFrame) -> int:
    """K, the number of cross-validation folds in a folds.tsv table."""
    return int(folds.loc[folds["role"] == "train", "fold"].max()) + 1
