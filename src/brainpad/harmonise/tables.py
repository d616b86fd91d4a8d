"""ComBat where the workflow uses it: the ROI volumes and brain-PAD (:mod:`.combat`).

* **ROI volumes** (``brainpad harmonise-roi``, before ``ridge_roi``): fitted on the
  training controls (role ``train``; calibration and test scans stay held out), applied
  to every scan *without* its own age and sex (one affine map per site and feature), so
  no scan's chronological age reaches the features a brain-age model reads.
* **brain-PAD** (``brainpad ensemble`` with harmonisation): fitted on the corrected
  brain-PAD of the scans the bias correction was fitted on (healthy controls, their
  predictions out-of-fold or held out), applied to every scan with an age, with its own
  age and sex. The harmonised values become ``brain_pad_corrected<suffix>``, which every
  later stage reads; the values before are kept as ``brain_pad_unharmonised<suffix>``.

At apply time (``brainpad predict``, apply mode) the same two steps use the bundle's fits;
a site the fits never saw is estimated from its own healthy controls
(:func:`~brainpad.harmonise.combat.harmonise_cohort`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from brainpad.harmonise.combat import (
    Combat,
    HarmonisationError,
    fit_combat,
    harmonise,
    harmonise_cohort,
)

COVARIATES = ("site", "age", "sex", "group")
CORRECTED = "brain_pad_corrected"
UNHARMONISED = "brain_pad_unharmonised"


def covariates_of(table: pd.DataFrame, scans: pd.Series) -> pd.DataFrame:
    """The ComBat covariates (``site``, ``age``, ``sex``, ``group``) of ``scans``, in order,
    from ``table`` (one row per scan id)."""
    present = [c for c in COVARIATES if c in table]
    return table.set_index("scan_id").loc[scans.to_numpy(), present].reset_index(drop=True)


def fit_roi(
    roi: pd.DataFrame, folds: pd.DataFrame, control_group: str
) -> tuple[pd.DataFrame, Combat]:
    """ComBat fitted on the training controls' ROI volumes, applied to every scan.

    Parameters
    ----------
    roi : DataFrame
        ``scan_id`` and one column per ROI volume (``brainpad regions``).
    folds : DataFrame
        ``results/folds.tsv``: each scan's ``role``, ``site``, ``age``, ``sex``, ``group``.
    control_group : str
        The healthy controls' label.

    Returns
    -------
    harmonised : DataFrame
        ``roi`` with every volume harmonised (covariate-free, see the module).
    model : Combat
        The fit, for the bundle.
    """
    features = roi.drop(columns="scan_id").astype(float)
    covariates = covariates_of(folds, roi["scan_id"])
    training = folds.set_index("scan_id").loc[roi["scan_id"], "role"].eq("train").to_numpy()
    # only labelled controls of the training role enter the fit
    fit_cov = covariates.assign(group=np.where(training, covariates["group"], "not fitted"))
    # a volume the same in every training control (an atlas label outside the crop) has
    # no site effect to remove and no variance to scale: it passes through as it is
    varying = features[training].std() > 0
    model = fit_combat(features.loc[:, varying], fit_cov, control_group)
    out = features.copy()
    out[model.features] = harmonise(model, features, covariates, own_covariates=False)
    return pd.concat([roi[["scan_id"]], out], axis=1), model


def apply_roi(
    roi: pd.DataFrame,
    covariates: pd.DataFrame,
    model: Combat,
    control_group: str,
    min_controls: int,
    max_controls: int | None = None,
    scale: bool = True,
) -> tuple[pd.DataFrame, list[str]]:
    """A new cohort's ROI volumes harmonised with the bundle's fit (unseen sites from their
    own controls, with or without their ``scale``); returns the table and the sites
    estimated so."""
    features = roi[model.features].astype(float).reset_index(drop=True)
    out, unseen = harmonise_cohort(
        model, features, covariates.reset_index(drop=True), control_group,
        own_covariates=False, min_controls=min_controls, max_controls=max_controls,
        scale=scale,
    )  # fmt: skip
    rest = roi.drop(columns=model.features).reset_index(drop=True)
    return pd.concat([rest, out], axis=1)[roi.columns], unseen


def brain_pad_columns(table: pd.DataFrame) -> list[str]:
    """The corrected brain-PAD columns (ensemble, sub-ensembles, base models)."""
    return [c for c in table.columns if c.startswith(CORRECTED)]


def _keep_unharmonised(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    kept = {c: c.replace(CORRECTED, UNHARMONISED) for c in columns}
    return table.assign(**{new: table[old] for old, new in kept.items()})


def fit_brain_pad(
    table: pd.DataFrame, fitted_on: np.ndarray, control_group: str
) -> tuple[pd.DataFrame, Combat]:
    """ComBat on the corrected brain-PAD of the bias correction's controls, applied to
    every scan with an age (with its own age and sex).

    Parameters
    ----------
    table : DataFrame
        The brain-age table: ``site``, ``age``, ``sex``, ``group`` and the
        ``brain_pad_corrected*`` columns.
    fitted_on : ndarray of bool
        The rows the bias correction was fitted on; of these, the labelled controls are
        the fit's.
    """
    columns = brain_pad_columns(table)
    labelled = table["age"].notna().to_numpy()
    covariates = table[[c for c in COVARIATES if c in table]].reset_index(drop=True)
    fit_cov = covariates.assign(group=np.where(fitted_on, covariates["group"], "not fitted"))
    model = fit_combat(table[columns].reset_index(drop=True), fit_cov, control_group)
    out = _keep_unharmonised(table, columns)
    rows = out.index[labelled]
    out.loc[rows, columns] = harmonise(
        model, out.loc[rows, columns], covariates[labelled]
    ).to_numpy()
    return out, model


def apply_brain_pad(
    table: pd.DataFrame,
    model: Combat,
    control_group: str,
    min_controls: int,
    max_controls: int | None = None,
    scale: bool = True,
) -> tuple[pd.DataFrame, list[str]]:
    """A new cohort's corrected brain-PAD harmonised with the bundle's fit (unseen sites
    from their own controls, cross-fitted, with or without their ``scale``); the values
    before are kept as
    ``brain_pad_unharmonised*``. Returns the table and the sites estimated so."""
    if missing := [c for c in model.features if c not in table]:
        msg = (
            f"the bundle's brain-PAD harmonisation was fitted on columns this table lacks "
            f"{missing}: apply the bundle whose models made them"
        )
        raise HarmonisationError(msg)
    out = _keep_unharmonised(table, model.features)
    rows = out.index[out["age"].notna()]
    if not len(rows):
        return out, []
    covariates = out.loc[rows, [c for c in COVARIATES if c in out]]
    harmonised, unseen = harmonise_cohort(
        model, out.loc[rows, model.features].reset_index(drop=True),
        covariates.reset_index(drop=True), control_group, own_covariates=True,
        min_controls=min_controls, max_controls=max_controls, scale=scale,
    )  # fmt: skip
    out.loc[rows, model.features] = harmonised.to_numpy()
    return out, unseen
