"""What each scan is for when training one fold: training, validation, out-of-fold, held out.

Fold ``f`` of model ``m`` trains on the training controls outside fold ``f`` and predicts

* ``oof``: the training controls in fold ``f`` (out-of-fold, for stacking), and
* ``heldout``: every calibration, test and clinical scan that passed QC (the ensemble
  averages these over the K fold models).

Scans of ``unlabelled`` participants (no age) that passed QC form the ``unlabelled``
part: only semi-supervised models (:attr:`brainpad.models.ModelSpec.semi_supervised`)
train on them, with their unsupervised loss.

Networks also set aside a ``validation`` part of their training participants (every
n-th by age) for early stopping, so the out-of-fold predictions stay untouched by model
selection.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from brainpad.cohort.folds import fold_count

HELDOUT_ROLES = ("calibration", "test", "clinical")


def fold_sets(folds: pd.DataFrame, fold: int, validation_fraction: float = 0.0) -> pd.Series:
    """What each scan is for when training fold ``fold``.

    Parameters
    ----------
    folds : DataFrame
        ``results/folds.tsv`` (``scan_id, participant_id, age, role, fold, qc_passed``).
    fold : int
        The fold left out.
    validation_fraction : float
        Share of the training participants set aside for early stopping (0: none).

    Returns
    -------
    Series
        Indexed like ``folds``: ``train``, ``validation``, ``oof``, ``heldout``,
        ``unlabelled`` or ``""`` (not used: failed QC or excluded).
    """
    k = fold_count(folds)
    if not 0 <= fold < k:
        msg = f"fold {fold} does not exist: folds.tsv has folds 0..{k - 1}"
        raise ValueError(msg)
    sets = pd.Series("", index=folds.index, dtype=object)
    training = folds["role"] == "train"
    sets[training & (folds["fold"] == fold)] = "oof"
    sets[training & (folds["fold"] != fold)] = "train"
    passed = folds["qc_passed"].astype(bool)
    sets[folds["role"].isin(HELDOUT_ROLES) & passed] = "heldout"
    sets[(folds["role"] == "unlabelled") & passed] = "unlabelled"
    if validation_fraction > 0:
        people = (
            folds[sets == "train"]
            .drop_duplicates("participant_id")
            .sort_values(["age", "participant_id"])["participant_id"]
            .to_numpy()
        )
        step = max(2, round(1 / validation_fraction))
        chosen = people[fold % step :: step]
        sets[(sets == "train") & folds["participant_id"].isin(chosen)] = "validation"
    return sets


def scans_to_map(
    folds: pd.DataFrame, sets: pd.Series, fold: int, heldout_models: str = "all"
) -> pd.Series:
    """Which scans the fold model maps: its out-of-fold scans, and the held-out scans.

    With ``heldout_models="all"`` every fold model maps every held-out scan (their maps are
    averaged, like the other models' predictions). ``"one"`` gives each held-out
    participant to one fold model, round-robin by participant id, so inference costs K
    times less (for CPU runs); a participant's repeat scans share their model, which keeps
    the ICC free of between-model variance.
    """
    mapped = sets == "oof"
    heldout = sets == "heldout"
    if heldout_models == "all":
        return mapped | heldout
    k = fold_count(folds)
    people = np.sort(folds.loc[heldout, "participant_id"].unique())
    return mapped | (heldout & folds["participant_id"].isin(people[fold::k]))
