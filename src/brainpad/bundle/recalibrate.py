"""Recalibration to a new cohort (``brainpad predict --recalibrate controls``).

A bundle's bias correction was fitted on the training run's healthy scans. At another
scanner or site, brain age can be shifted as a whole (an offset of a few years is common),
and the bundle's corrected brain-PAD of healthy people there is then not centred on 0.
Recalibration refits the global correction Δ = α·age + β on the new cohort's own healthy
controls, pooled over its sites. It is **cross-fitted by participant**: each control's
recalibrated brain-PAD comes from a fit on the other controls only (leave one participant
out), so a control's own scan never pulls its value towards 0; every other scan (patients,
repeat scans of nobody in the controls) gets the fit on all controls.

:func:`recalibrate_maps` does the same for the local maps' voxelwise correction (apply
mode). What it assumes: the new cohort's controls are healthy and span the ages of its
patients; with a narrow age range the slope α is poorly determined (the fit then
extrapolates).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from brainpad.ensemble.correction import LinearBias
from brainpad.inputs.errors import InputError

MIN_CONTROLS = 5
"""Fewest healthy control participants a recalibration accepts."""


def recalibrate(
    table: pd.DataFrame,
    columns: Sequence[str],
    control_group: str,
    min_controls: int = MIN_CONTROLS,
) -> pd.DataFrame:
    """Add ``brain_pad_recalibrated<suffix>`` for each brain-age column, cross-fitted.

    Parameters
    ----------
    table : DataFrame
        One row per scan: ``participant_id``, ``group``, ``age`` and the brain-age columns.
    columns : sequence of str
        Brain-age columns: ``brain_age`` (suffix ``""``) and ``pred_<model>`` (``_<model>``).
    control_group : str
        The healthy controls' group label.
    min_controls : int
        Fewest control participants accepted.

    Raises
    ------
    InputError
        With fewer controls than ``min_controls`` (naming how many there are and the fix).
    """
    controls = table["group"].astype(str).eq(control_group) & table["age"].notna()
    people = table.loc[controls, "participant_id"].unique()
    if len(people) < min_controls:
        msg = (
            f"recalibration needs at least {min_controls} healthy controls (group "
            f"'{control_group}' in participants.tsv) with an age, found {len(people)}; add "
            "controls scanned at this site, or predict without --recalibrate"
        )
        raise InputError(msg)
    out = table.copy()
    age = out["age"].to_numpy(dtype=float)
    for column in columns:
        suffix = "" if column == "brain_age" else "_" + column.removeprefix("pred_")
        delta = out[column].to_numpy(dtype=float) - age
        fitted = np.full(len(out), np.nan)
        everyone = _fit(out, delta, controls.to_numpy())
        others = ~out["participant_id"].isin(people).to_numpy()
        fitted[others] = everyone.correct(age[others], delta[others])
        for person in people:
            own = (out["participant_id"] == person).to_numpy()
            fit = _fit(out, delta, controls.to_numpy() & ~own)
            fitted[own] = fit.correct(age[own], delta[own])
        out[f"brain_pad_recalibrated{suffix}"] = fitted
    return out


def _fit(table: pd.DataFrame, delta: np.ndarray, rows: np.ndarray) -> LinearBias:
    """The linear correction on ``rows``, one scan per participant (the first by scan id)."""
    chosen = table[rows].sort_values("scan_id").drop_duplicates("participant_id").index
    return LinearBias.fit(table.loc[chosen, "age"].to_numpy(float), delta[chosen])


def adopt(table: pd.DataFrame) -> pd.DataFrame:
    """Make the recalibrated brain-PADs the corrected ones, as the statistics read them.

    ``brain_pad_corrected<suffix>`` (the bundle's correction) becomes
    ``brain_pad_bundle_corrected<suffix>``, and ``brain_pad_recalibrated<suffix>`` becomes
    ``brain_pad_corrected<suffix>``.
    """
    renamed = {}
    for column in table.columns:
        if column.startswith("brain_pad_corrected"):
            renamed[column] = column.replace("brain_pad_corrected", "brain_pad_bundle_corrected")
        elif column.startswith("brain_pad_recalibrated"):
            renamed[column] = column.replace("brain_pad_recalibrated", "brain_pad_corrected")
    return table.rename(columns=renamed)


def recalibration_summary(table: pd.DataFrame, control_group: str) -> pd.DataFrame:
    """The controls' ensemble brain-PAD per site: bundle-corrected and recalibrated.

    Reads ``brain_pad_corrected`` and ``brain_pad_recalibrated`` (before :func:`adopt`);
    without the latter (no recalibration) its columns are NaN.

    Returns
    -------
    DataFrame
        ``site, n_controls, mean_corrected, sd_corrected, mean_recalibrated,
        sd_recalibrated`` (one scan per participant), and a row ``all``.
    """
    for column in ("brain_pad_corrected", "brain_pad_recalibrated"):
        if column not in table:  # no scan with an age; no recalibration
            table = table.assign(**{column: float("nan")})
    controls = table[table["group"].astype(str).eq(control_group)]
    controls = controls.sort_values("scan_id").drop_duplicates("participant_id")
    rows = []
    parts = [(str(s), p) for s, p in controls.groupby("site")] + [("all", controls)]
    for site, part in parts:
        rows.append(
            {
                "site": site,
                "n_controls": len(part),
                "mean_corrected": part["brain_pad_corrected"].mean(),
                "sd_corrected": part["brain_pad_corrected"].std(),
                "mean_recalibrated": part["brain_pad_recalibrated"].mean(),
                "sd_recalibrated": part["brain_pad_recalibrated"].std(),
            }
        )
    return pd.DataFrame(rows)


def recalibrate_maps(
    table: pd.DataFrame,
    paths: dict[str, dict[str, Path]],
    debias: dict,
    control_group: str,
) -> None:
    """Refit the voxelwise correction on the cohort's controls' maps, cross-fitted.

    The map-level twin of :func:`recalibrate`: each control's corrected map comes from a
    correction (``debias.voxel_method``, bins or a line per voxel) fitted on the other
    controls' brain-PAD maps (one scan per participant), every other scan's from the fit on
    all controls. Rewrites each scan's ``brainPADcorrected`` map in place.

    Parameters
    ----------
    table : DataFrame
        ``scan_id``, ``participant_id``, ``group``, ``age`` of the mapped scans.
    paths : dict
        Scan id → its maps (:func:`brainpad.paths.map_paths`; ``brainPAD`` read,
        ``brainPADcorrected`` written).
    debias : dict
        The bundle's ``debias`` settings (``voxel_method``, ``voxel_bin_edges``,
        ``min_per_bin``).
    control_group : str
        The healthy controls' group label.
    """
    import nibabel as nib

    from brainpad.local.correction import fit_voxel_bias

    def fit(rows: pd.DataFrame):
        return fit_voxel_bias(
            debias["voxel_method"], rows["age"].to_numpy(float),
            np.stack([deltas[s] for s in rows["scan_id"]]), debias["voxel_bin_edges"],
            debias["min_per_bin"],
        )  # fmt: skip

    controls = table[table["group"].astype(str).eq(control_group) & table["age"].notna()]
    controls = controls.sort_values("scan_id").drop_duplicates("participant_id")
    deltas = {
        s: np.asarray(nib.load(paths[s]["brainPAD"]).dataobj, dtype=np.float32)
        for s in controls["scan_id"]
    }
    everyone = fit(controls)
    for row in table[table["age"].notna()].itertuples():
        own = controls["participant_id"] == row.participant_id
        bias = fit(controls[~own]) if own.any() else everyone
        image = nib.load(paths[row.scan_id]["brainPAD"])
        delta = np.asarray(image.dataobj, dtype=np.float32)
        corrected = bias.correct(row.age, delta).astype(np.float32)
        nib.save(nib.Nifti1Image(corrected, image.affine), paths[row.scan_id]["brainPADcorrected"])
