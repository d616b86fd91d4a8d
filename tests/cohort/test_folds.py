"""Roles and folds: participants, not scans; stratified; held-out sets always present."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainpad.cohort.folds import age_divergence, assign_roles


def cohort(n_controls: int = 100, n_patients: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_controls + n_patients
    return pd.DataFrame(
        {
            "participant_id": [f"sub-{i:03d}" for i in range(n)],
            "age": rng.uniform(20, 90, n),
            "site": rng.choice(["a", "b", "c"], n),
            "group": ["HC"] * n_controls + ["AD"] * n_patients,
            "qc_passed": True,
        }
    )


def test_roles_and_folds_are_balanced():
    people = cohort()
    roles = assign_roles(people, "HC", n_folds=5, seed=1).merge(people, on="participant_id")
    counts = roles["role"].value_counts()
    assert counts["clinical"] == 20
    assert counts["calibration"] == pytest.approx(15, abs=3)
    assert counts["test"] == pytest.approx(15, abs=3)
    train = roles[roles.role == "train"]
    assert sorted(train["fold"].unique()) == [0, 1, 2, 3, 4]
    assert train["fold"].value_counts().max() - train["fold"].value_counts().min() <= 3
    assert (roles.loc[roles.role != "train", "fold"] == -1).all()
    # every fold spans the age range and holds every site
    for _, fold in train.groupby("fold"):
        assert fold["age"].min() < 35 and fold["age"].max() > 75
        assert set(fold["site"]) == {"a", "b", "c"}
    assert abs(roles.loc[roles.role == "test", "age"].mean() - train["age"].mean()) < 8


def test_deterministic_for_a_seed():
    people = cohort()
    pd.testing.assert_frame_equal(
        assign_roles(people, "HC", seed=3), assign_roles(people, "HC", seed=3)
    )
    assert not assign_roles(people, "HC", seed=3).equals(assign_roles(people, "HC", seed=4))


def test_qc_failures_are_excluded_not_trained():
    people = cohort()
    people.loc[[0, 1], "qc_passed"] = False
    people.loc[110, "qc_passed"] = False  # a patient: stays clinical (flagged by QC elsewhere)
    roles = assign_roles(people, "HC").set_index("participant_id")
    assert roles.loc[["sub-000", "sub-001"], "role"].tolist() == ["excluded", "excluded"]
    assert roles.loc["sub-110", "role"] == "clinical"


def test_participants_without_an_age_are_unlabelled_whatever_their_group():
    people = cohort()
    people.loc[[0, 1, 110], "age"] = np.nan  # two controls and a patient
    people.loc[1, "qc_passed"] = False
    roles = assign_roles(people, "HC", seed=1).set_index("participant_id")
    assert roles.loc[["sub-000", "sub-110"], "role"].tolist() == ["unlabelled", "unlabelled"]
    assert roles.loc["sub-001", "role"] == "excluded"
    assert (roles.loc[roles["role"] == "unlabelled", "fold"] == -1).all()
    labelled = assign_roles(people.drop(index=[0, 1, 110]), "HC", seed=1)
    assert (labelled["role"] == "train").sum() == (roles["role"] == "train").sum()


def test_tiny_cohort_still_has_calibration_and_test():
    roles = assign_roles(cohort(n_controls=7, n_patients=2), "HC", n_folds=2)
    assert {"train", "calibration", "test", "clinical"} == set(roles["role"])
    assert (roles["role"] == "calibration").sum() >= 3  # enough to fit the bias correction


def test_too_few_controls_is_a_clear_error():
    with pytest.raises(ValueError, match=r"only 4 healthy controls .* 5 folds need at least 9"):
        assign_roles(cohort(n_controls=4), "HC", n_folds=5)


def test_age_divergence_is_scipys_kl_over_the_deciles():
    whole = pd.Series(np.arange(100.0))
    assert age_divergence(whole, whole) == pytest.approx(0.0)
    young = whole[whole < 30]
    assert age_divergence(young, whole) > 0.5
    # by hand: 30 ages fill 3 of 10 decile bins (+0.5 each), against 10 per bin (+0.5)
    p = np.array([10.5] * 3 + [0.5] * 7)
    assert age_divergence(young, whole) == pytest.approx(
        float(np.sum(p / p.sum() * np.log(p / p.sum() / 0.1)))
    )


def test_the_kl_split_picks_held_out_sets_whose_ages_match_the_cohort():
    people = cohort(n_controls=80, seed=2)
    controls = people[people["group"] == "HC"].set_index("participant_id")["age"]

    def held_out_divergence(roles: pd.DataFrame) -> float:
        roles = roles.set_index("participant_id")["role"]
        return sum(
            age_divergence(controls[roles[controls.index] == r], controls)
            for r in ("calibration", "test")
        )

    blocked = [assign_roles(people, "HC", seed=s) for s in range(5)]
    best = assign_roles(people, "HC", seed=0, split="kl", candidates=50)
    assert held_out_divergence(best) < min(held_out_divergence(b) for b in blocked)
    assert (best["role"] == "test").sum() == (blocked[0]["role"] == "test").sum()
    with pytest.raises(ValueError, match=r"folds\.split 'random' is not one of"):
        assign_roles(people, "HC", split="random")
