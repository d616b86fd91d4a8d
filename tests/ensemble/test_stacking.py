"""Collecting fold predictions, the stacking head and the brain-age table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge

from brainpad.ensemble.stacking import (
    apply_heads,
    brain_age_table,
    collect,
    inner_folds,
    stack,
    sub_ensembles,
)
from brainpad.training.fold import fold_sets


def fake_predictions(folds: pd.DataFrame, model: str, bias: float, seed: int) -> list:
    """Per-fold tables as train_fold writes them: age * 0.8 + bias + noise."""
    rng = np.random.default_rng(seed)
    tables = []
    for fold in range(int(folds["fold"].max()) + 1):
        sets = fold_sets(folds, fold)
        use = sets.isin(["oof", "heldout"])
        predicted = folds.loc[use, "age"] * 0.8 + bias + rng.normal(0, 2, use.sum())
        tables.append(
            folds.loc[use, ["scan_id"]].assign(
                model=model, fold=fold, set=sets[use], predicted=predicted
            )
        )
    return tables


def test_collect_gives_one_honest_prediction_per_scan(synthetic_folds):
    tables = fake_predictions(synthetic_folds, "m1", 5.0, 0)
    wide = collect(tables)
    assert len(wide) == len(synthetic_folds)
    train = synthetic_folds.set_index("scan_id")["role"] == "train"
    assert (wide.loc[train[train].index, "sd_m1"] == 0).all()  # one out-of-fold value
    assert (wide.loc[train[~train].index, "sd_m1"] > 0).all()  # spread over 3 fold models
    heldout = train[~train].index[0]
    expected = np.mean([t.set_index("scan_id").loc[heldout, "predicted"] for t in tables])
    assert wide.loc[heldout, "pred_m1"] == pytest.approx(expected)


def test_collect_rejects_two_oof_predictions(synthetic_folds):
    tables = fake_predictions(synthetic_folds, "m1", 0.0, 0)
    with pytest.raises(ValueError, match="more than one out-of-fold prediction from m1"):
        collect([*tables, tables[0]])


@pytest.fixture
def two_models(synthetic_folds):
    """The synthetic folds with two models' out-of-fold / fold-averaged predictions."""
    return synthetic_folds.merge(
        collect(
            fake_predictions(synthetic_folds, "m1", 5.0, 0)
            + fake_predictions(synthetic_folds, "m2", -3.0, 1)
        ),
        left_on="scan_id",
        right_index=True,
    )


def test_stack_cross_fits_the_training_scans_with_inner_folds(two_models):
    table = two_models
    _, brain_age, head = stack(table, ["m1", "m2"], positive=False, stacking_folds=5, seed=3)
    train = (table["role"] == "train").to_numpy()
    x = table[["pred_m1", "pred_m2"]].to_numpy()
    full = Ridge(alpha=1.0).fit(x[train], table["age"][train])
    np.testing.assert_allclose(brain_age[~train], full.predict(x[~train]))
    assert not np.allclose(brain_age[train], full.predict(x[train]))  # out-of-sample
    inner = inner_folds(table, 5, 3)
    assert set(inner[train]) == set(range(5)) and (inner[~train] == -1).all()
    folds_per_person = pd.Series(inner[train]).groupby(table["participant_id"][train].to_numpy())
    assert folds_per_person.nunique().max() == 1 and folds_per_person.ngroups > 5
    inside, others = inner == 0, train & (inner != 0)
    one = Ridge(alpha=1.0).fit(x[others], table["age"][others])
    np.testing.assert_allclose(brain_age[inside], one.predict(x[inside]))
    assert head["weights"].keys() == {"m1", "m2"} and head["inner_folds"] == 5
    # the head undoes the models' shrinkage: the stack is more accurate than either model
    age = table["age"].to_numpy()
    assert np.abs(brain_age - age).mean() < np.abs(table["pred_m1"] - age).mean()


def test_no_head_sees_the_label_of_the_scan_it_predicts(two_models):
    """A training control's ensemble (and sub-ensemble) age does not move when its own
    age label changes; other controls' do (their heads used it)."""
    table = two_models.assign(**{"pred_m1-1": two_models["pred_m1"] + 1.0})
    models = ["m1", "m1-1", "m2"]  # m1 has two members: a sub-ensemble head too
    subs, before, _ = stack(table, models, positive=False)
    train = np.flatnonzero((table["role"] == "train").to_numpy())
    changed = table.copy()
    changed.loc[train[0], "age"] += 30.0
    subs_after, after, _ = stack(changed, models, positive=False)
    assert after[train[0]] == before[train[0]]
    assert subs_after.loc[train[0], "pred_m1"] == subs.loc[train[0], "pred_m1"]
    assert not np.allclose(after[train[1:]], before[train[1:]])


def test_sub_ensembles_stack_their_members_before_the_top_head(two_models):
    noise = np.random.default_rng(9).normal(0, 3, len(two_models))
    table = two_models.assign(**{"pred_m1-1": two_models["pred_m1"] + noise})
    assert sub_ensembles(["m1", "m1-1", "m2", "cnn3d-t1w-2"]) == {
        "m1": ["m1", "m1-1"], "m2": ["m2"], "cnn3d-t1w": ["cnn3d-t1w-2"],
    }  # fmt: skip
    subs, _, head = stack(table, ["m1", "m1-1", "m2"], positive=True)
    assert list(subs.columns) == ["pred_m1"]  # one-member sub-ensembles are their member
    assert head["sub_ensembles"]["m1"]["weights"].keys() == {"m1", "m1-1"}
    assert head["weights"].keys() == {"m1", "m2"}
    train = (table["role"] == "train").to_numpy()
    x = table[["pred_m1", "pred_m1-1"]].to_numpy()
    sub = Ridge(alpha=1.0, positive=True).fit(x[train], table["age"][train])
    np.testing.assert_allclose(subs["pred_m1"][~train], sub.predict(x[~train]))
    assert (
        head["sub_ensembles"]["m1"]["weights"]["m1"]
        > head["sub_ensembles"]["m1"]["weights"]["m1-1"]
    )


def test_stored_heads_give_a_held_out_scan_the_ages_stack_gave_it(two_models):
    noise = np.random.default_rng(9).normal(0, 3, len(two_models))
    table = two_models.assign(**{"pred_m1-1": two_models["pred_m1"] + noise})
    models = ["m1", "m1-1", "m2"]
    subs, brain_age, heads = stack(table, models)
    heldout = np.flatnonzero((table["role"] != "train").to_numpy())
    for row in heldout[:5]:
        sub_ages, age = apply_heads(heads, {m: table.loc[row, f"pred_{m}"] for m in models})
        assert age == pytest.approx(brain_age[row], abs=1e-9)
        assert sub_ages["m1"] == pytest.approx(subs.loc[row, "pred_m1"], abs=1e-9)


def test_positive_stacking_matches_a_constrained_ridge(two_models):
    """A model anti-correlated with age gets weight 0, not a negative one, in every fit."""
    table = two_models.copy()
    table["pred_m2"] = 100.0 - table["pred_m2"]  # a model that says old brains are young
    _, _, plain_head = stack(table, ["m1", "m2"], positive=False)
    _, brain_age, head = stack(table, ["m1", "m2"], positive=True)
    assert plain_head["weights"]["m2"] < 0 and not plain_head["positive"]
    assert head["weights"]["m2"] == 0.0 and head["weights"]["m1"] > 0 and head["positive"]
    train = (table["role"] == "train").to_numpy()
    x = table[["pred_m1", "pred_m2"]].to_numpy()
    constrained = Ridge(alpha=1.0, positive=True).fit(x[train], table["age"][train])
    np.testing.assert_allclose(brain_age[~train], constrained.predict(x[~train]))


def test_brain_age_table_has_raw_and_corrected_pad(synthetic_folds):
    predictions = fake_predictions(synthetic_folds, "m1", 5.0, 0)
    table, fits = brain_age_table(synthetic_folds, predictions, ["m1"])
    assert {
        "brain_age",
        "brain_pad",
        "brain_pad_corrected",
        "brain_pad_m1",
        "brain_pad_corrected_m1",
    } <= set(table.columns)
    np.testing.assert_allclose(table["brain_pad"], table["brain_age"] - table["age"])
    calibration = table[table["role"] == "calibration"]
    slope = np.polyfit(calibration["age"], calibration["brain_pad_corrected_m1"], 1)[0]
    assert abs(slope) < 1e-9  # the correction removes the age trend where it was fitted
    assert fits["bias"]["_m1"]["alpha"] == pytest.approx(-0.2, abs=0.15)
    assert fits["bias"]["_m1"]["n"] == len(calibration)


def test_global_correction_can_include_the_training_controls(synthetic_folds):
    predictions = fake_predictions(synthetic_folds, "m1", 5.0, 0)
    table, fits = brain_age_table(
        synthetic_folds, predictions, ["m1"], calibration="calibration+out_of_fold"
    )
    fitted = table[table["role"].isin(["calibration", "train"])].drop_duplicates("participant_id")
    assert fits["bias"]["ensemble"]["n"] == len(fitted) > (table["role"] == "calibration").sum()
    slope, intercept = np.polyfit(fitted["age"], fitted["brain_pad"], 1)
    assert fits["bias"]["ensemble"]["alpha"] == pytest.approx(slope)
    assert fits["bias"]["ensemble"]["beta"] == pytest.approx(intercept)
    with pytest.raises(ValueError, match=r"calibration set .train. .* is not one of"):
        brain_age_table(synthetic_folds, predictions, ["m1"], calibration="train")
