"""ComBat on tabular features (ROI volumes, brain-PAD), fitted on healthy controls only.

The fit is neuroCombat's (Fortin et al.; empirical Bayes location and scale per site),
with age (a linear and a quadratic term, standardised) and sex as the covariates it
preserves. A fitted model is applied in one of two ways:

* **with each scan's own covariates** (``own_covariates=True``), the ComBat model itself:

      x* = (x − α − Xβ − σ γ*_site) / √δ*_site + α + Xβ

  (α the grand mean, Xβ the covariate effects, σ² the pooled variance, γ*, δ* the site's
  location and scale). On the training controls it gives back neuroCombat's output (to
  1e-6, tested). brainpad uses it for brain-PAD, which is defined with the age anyway.
* **without them** (``own_covariates=False``), neuroCombat's ``neuroCombatFromTraining``:
  Xβ is replaced by its mean over the training controls, so the adjustment is one affine
  map per site and feature (tested against neuroCombat). brainpad uses it for the ROI
  features a brain-age model reads: with its own age in the adjustment, a scan's features
  would carry its chronological age into the prediction whenever δ* ≠ 1, and a new scan's
  features would need an age before its brain age is known.

β is recovered from neuroCombat's fitted covariate means by least squares. With a single
feature there is nothing to borrow strength across, and the site terms are the plain
(not empirical Bayes) estimates.

**Unseen sites** (:func:`estimate_site`): a site the fit never saw gets its location and
scale from its own healthy controls, as the mean and variance of their standardised
residuals against the trained reference (no empirical Bayes: one site has no other sites
to borrow from). Each control is corrected with the estimate from the *other* controls
(cross-fitted), patients with the estimate from all of them. The estimate assumes the new
site's controls are healthy, drawn from the same age and sex model as the training
controls, and differ from them only by a location and a scale per feature.
:func:`harmonise_cohort` takes a whole cohort: fitted sites as fitted, the others each
from its own controls.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from brainpad.inputs.errors import InputError

MIN_SITE_CONTROLS = 5
"""The fewest healthy controls a site's own estimate may rest on."""


class HarmonisationError(InputError):
    """Data ComBat cannot fit or apply; the message says what and how to fix it."""


@dataclass
class Combat:
    """A fitted ComBat model (see the module). Arrays are per feature, ``gamma`` and
    ``delta`` per site × feature."""

    features: list[str]
    sites: list[str]
    grand_mean: np.ndarray
    beta: np.ndarray
    var_pooled: np.ndarray
    gamma: np.ndarray
    delta: np.ndarray
    age_centre: float
    age_scale: float
    sexes: list[str] = field(default_factory=list)
    design_mean: np.ndarray = field(default_factory=lambda: np.empty(0))
    """The training controls' mean design row (``own_covariates=False``)."""

    def design(self, covariates: pd.DataFrame) -> np.ndarray:
        """The covariate design of ``covariates`` (``age``, ``sex``): standardised age,
        its square, and a dummy per sex but the first."""
        age = (covariates["age"].to_numpy(float) - self.age_centre) / self.age_scale
        columns = [age, age**2]
        if self.sexes:
            sex = covariates["sex"].astype(str).to_numpy()
            columns += [(sex == level).astype(float) for level in self.sexes[1:]]
        return np.column_stack(columns)

    def to_dict(self) -> dict:
        """Plain values for JSON (the bundle)."""
        return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, values: dict) -> Combat:
        """The inverse of :meth:`to_dict`."""
        arrays = ("grand_mean", "beta", "var_pooled", "gamma", "delta", "design_mean")
        return cls(**{k: np.asarray(v, float) if k in arrays else v for k, v in values.items()})


def _controls(covariates: pd.DataFrame, control_group: str) -> np.ndarray:
    """Rows of labelled healthy controls: the only scans ComBat is ever fitted on."""
    return ((covariates["group"] == control_group) & covariates["age"].notna()).to_numpy()


def fit_combat(features: pd.DataFrame, covariates: pd.DataFrame, control_group: str) -> Combat:
    """Fit ComBat (neuroCombat, empirical Bayes) on the healthy controls.

    Parameters
    ----------
    features : DataFrame
        One row per scan, one column per feature.
    covariates : DataFrame
        The same rows: ``site``, ``age``, ``group`` and optionally ``sex``.
    control_group : str
        The healthy controls' label; no other scan enters the fit.

    Raises
    ------
    HarmonisationError
        When a site has fewer than 2 controls or there is a single site.
    """
    from neuroCombat import neuroCombat

    rows = _controls(covariates, control_group)
    cov = covariates.loc[rows].reset_index(drop=True)
    counts = cov["site"].value_counts()
    if len(counts) < 2 or counts.min() < 2:
        msg = (
            f"ComBat needs 2 or more sites with 2 or more healthy controls ({control_group}) "
            f"each; the controls per site are {counts.to_dict()}. Turn harmonisation off "
            "(harmonise.enabled: false) or add controls"
        )
        raise HarmonisationError(msg)
    age = cov["age"].to_numpy(float)
    sexes = sorted(cov["sex"].astype(str).unique()) if "sex" in cov else []
    model = Combat(list(features.columns), sorted(counts.index.astype(str)), np.empty(0),
                   np.empty(0), np.empty(0), np.empty(0), np.empty(0), float(age.mean()),
                   float(age.std()) or 1.0, sexes if len(sexes) > 1 else [])  # fmt: skip
    design = model.design(cov)
    table = pd.DataFrame(design, columns=[f"c{i}" for i in range(design.shape[1])])
    table["site"] = cov["site"].astype(str).to_numpy()
    single = features.shape[1] == 1
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        # neuroCombat prints its progress, and computes EB priors over one feature anyway
        if single:
            warnings.simplefilter("ignore", RuntimeWarning)
        fitted = neuroCombat(
            dat=features.loc[rows].to_numpy(float).T,
            covars=table,
            batch_col="site",
            continuous_cols=[c for c in table if c != "site"],
            eb=not single,  # EB priors pool over features: one has no pool
        )["estimates"]
    if list(fitted["batches"].astype(str)) != model.sites:
        msg = f"neuroCombat ordered the sites {list(fitted['batches'])}, not {model.sites}"
        raise HarmonisationError(msg)
    model.grand_mean = fitted["stand.mean"][:, 0]
    # the covariate effects Xβ of every training control, back to β
    model.beta = np.linalg.lstsq(design, fitted["mod.mean"].T, rcond=None)[0]
    model.design_mean = design.mean(axis=0)
    model.var_pooled = fitted["var.pooled"][:, 0]
    model.gamma = np.asarray(fitted["gamma.star"], float)
    model.delta = np.asarray(fitted["delta.star"], float)
    return model


def expected(model: Combat, covariates: pd.DataFrame, own_covariates: bool = True) -> np.ndarray:
    """α + Xβ per scan and feature: what the features would be at the reference, site-free;
    without ``own_covariates``, α + X̄β (the training controls' mean design) for every scan."""
    if not own_covariates:
        return np.tile(model.grand_mean + model.design_mean @ model.beta, (len(covariates), 1))
    return model.grand_mean + model.design(covariates) @ model.beta


def standardised(model: Combat, features: pd.DataFrame, centre: np.ndarray) -> np.ndarray:
    """(x − α − Xβ) / σ per scan and feature (``centre``: :func:`expected`): the residuals
    ComBat's site terms act on."""
    return (features[model.features].to_numpy(float) - centre) / np.sqrt(model.var_pooled)


def _adjusted(
    model: Combat, z: np.ndarray, centre: np.ndarray, gamma: np.ndarray, delta: np.ndarray
) -> np.ndarray:
    return (z - gamma) / np.sqrt(delta) * np.sqrt(model.var_pooled) + centre


def harmonise(
    model: Combat, features: pd.DataFrame, covariates: pd.DataFrame, own_covariates: bool = True
) -> pd.DataFrame:
    """Every scan of the fitted sites harmonised, with its own covariates or with the
    training controls' mean (``own_covariates``; see the module).

    Raises
    ------
    HarmonisationError
        For a site the fit never saw (:func:`estimate_site` handles those).
    """
    sites = covariates["site"].astype(str).to_numpy()
    unknown = sorted(set(sites) - set(model.sites))
    if unknown:
        msg = (
            f"site(s) {unknown} were not in the ComBat fit (sites {model.sites}); estimate "
            "them from their own healthy controls (unseen-site harmonisation)"
        )
        raise HarmonisationError(msg)
    index = np.array([model.sites.index(s) for s in sites], dtype=int)
    centre = expected(model, covariates, own_covariates)
    z = standardised(model, features, centre)
    out = _adjusted(model, z, centre, model.gamma[index], model.delta[index])
    return pd.DataFrame(out, index=features.index, columns=model.features)


def estimate_site(
    model: Combat,
    features: pd.DataFrame,
    covariates: pd.DataFrame,
    control_group: str,
    min_controls: int = MIN_SITE_CONTROLS,
    own_covariates: bool = True,
    max_controls: int | None = None,
    scale: bool = True,
) -> pd.DataFrame:
    """Harmonise the scans of one site the fit never saw, from its own healthy controls.

    The site's location γ and scale δ are the mean and variance of its controls'
    standardised residuals (:func:`standardised`, always with the controls' own age and
    sex); each control is corrected with the estimate from the other controls, every other
    scan with the estimate from all. ``own_covariates`` is as in :func:`harmonise`;
    ``max_controls`` caps the controls the estimate uses (the first by row), to measure
    how many a site needs; the others are corrected like patients. Without ``scale`` the
    site gets a location only (δ = 1): its spread is left as it is.

    Raises
    ------
    HarmonisationError
        With fewer than ``min_controls`` labelled healthy controls (the message names the
        site, the count and the fix), or scans of several sites.
    """
    sites = covariates["site"].astype(str).unique()
    if len(sites) != 1:
        msg = f"estimate_site takes the scans of one site; these are of {sorted(sites)}"
        raise HarmonisationError(msg)
    controls = _controls(covariates, control_group)
    if max_controls is not None:
        controls &= np.cumsum(controls) <= max_controls
    if controls.sum() < min_controls:
        msg = (
            f"site {sites[0]}: {int(controls.sum())} healthy controls ({control_group}) with an "
            f"age, but an unseen site's harmonisation needs {min_controls} or more; add "
            "controls scanned there, or apply without harmonisation (recalibration only)"
        )
        raise HarmonisationError(msg)
    z = standardised(model, features, expected(model, covariates))
    reference = z[controls]
    n = len(reference)
    total, squares = reference.sum(0), (reference**2).sum(0)
    gamma = np.tile(total / n, (len(z), 1))
    delta = np.tile(reference.var(0, ddof=1), (len(z), 1))
    for row, position in zip(np.flatnonzero(controls), range(n), strict=True):
        others_sum, others_sq = total - reference[position], squares - reference[position] ** 2
        mean = others_sum / (n - 1)
        gamma[row] = mean
        delta[row] = (others_sq - (n - 1) * mean**2) / (n - 2) if n > 2 else 1.0
    delta = np.where((delta > 0) & scale, delta, 1.0)
    centre = expected(model, covariates, own_covariates)
    z = standardised(model, features, centre)
    out = _adjusted(model, z, centre, gamma, delta)
    return pd.DataFrame(out, index=features.index, columns=model.features)


def harmonise_cohort(
    model: Combat,
    features: pd.DataFrame,
    covariates: pd.DataFrame,
    control_group: str,
    own_covariates: bool = True,
    min_controls: int = MIN_SITE_CONTROLS,
    max_controls: int | None = None,
    scale: bool = True,
) -> tuple[pd.DataFrame, list[str]]:
    """Every scan of a cohort harmonised: the fitted sites with the fit, each other site
    from its own healthy controls (:func:`estimate_site`, with or without its ``scale``).

    Returns
    -------
    harmonised : DataFrame
        The features, same index and columns.
    unseen : list of str
        The sites estimated from their own controls.

    Raises
    ------
    HarmonisationError
        An unseen site with fewer than ``min_controls`` controls.
    """
    sites = covariates["site"].astype(str)
    out = pd.DataFrame(np.nan, index=features.index, columns=model.features)
    seen = sites.isin(model.sites).to_numpy()
    if seen.any():
        fitted = harmonise(model, features[seen], covariates[seen], own_covariates)
        out.loc[seen] = fitted.to_numpy()
    unseen = sorted(set(sites[~seen]))
    for site in unseen:
        rows = (sites == site).to_numpy()
        out.loc[rows] = estimate_site(
            model, features[rows], covariates[rows], control_group, min_controls,
            own_covariates, max_controls, scale,
        ).to_numpy()  # fmt: skip
    return out, unseen
