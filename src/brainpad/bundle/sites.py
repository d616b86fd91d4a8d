"""A bundle's site harmonisation on a new cohort (``brainpad predict --harmonise``, apply
mode with ``harmonise.enabled``).

The bundle carries the training run's ComBat fits (:mod:`brainpad.harmonise.tables`): one
on the ROI volumes ``ridge_roi`` reads, one on the corrected brain-PAD. A scan from a site
the training run saw is harmonised with that site's fitted terms; a site it never saw is
estimated from that site's own healthy controls, each control corrected with the estimate
from the others (:func:`brainpad.harmonise.combat.estimate_site`). Every unseen site must
bring ``min_controls`` labelled controls, which :meth:`SiteHarmonisation.check` verifies
before any scan is preprocessed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from brainpad.bundle import BundleError
from brainpad.harmonise.combat import MIN_SITE_CONTROLS, Combat, HarmonisationError
from brainpad.harmonise.tables import apply_brain_pad, apply_roi

if TYPE_CHECKING:
    from brainpad.bundle.predict import Bundle
    from brainpad.bundle.scans import ScanInput

log = logging.getLogger(__name__)


@dataclass
class SiteHarmonisation:
    """The bundle's ComBat fits and how an unseen site is estimated."""

    roi: Combat | None
    brain_pad: Combat
    control_group: str
    min_controls: int = MIN_SITE_CONTROLS
    max_controls: int | None = None
    scale: bool = True
    """Whether an unseen site gets a scale as well as a location."""

    @classmethod
    def from_bundle(
        cls,
        bundle: Bundle,
        min_controls: int = MIN_SITE_CONTROLS,
        max_controls: int | None = None,
        scale: bool = True,
    ) -> SiteHarmonisation:
        """The fits stored in the bundle's ``ensemble/fits.json``.

        Raises
        ------
        BundleError
            A bundle trained without harmonisation.
        """
        fits = bundle.fits.get("harmonise")
        if not fits:
            msg = (
                f"{bundle.root}: the bundle has no ComBat fits (trained with harmonise.enabled "
                "false); apply it without harmonisation, or retrain with harmonise.enabled: true"
            )
            raise BundleError(msg)
        roi = Combat.from_dict(fits["roi"]) if fits.get("roi") else None
        return cls(roi, Combat.from_dict(fits["brain_pad"]), bundle.control_group,
                   min_controls, max_controls, scale)  # fmt: skip

    def unseen_sites(self, covariates: pd.DataFrame) -> list[str]:
        """Sites of ``covariates`` the training run never saw."""
        return sorted(set(covariates["site"].astype(str)) - set(self.brain_pad.sites))

    def check(self, scans: Sequence[ScanInput]) -> None:
        """Every scan has a site, and every unseen site enough labelled controls (the
        message names the site, its count and the fix), before any work."""
        covariates = scan_covariates(scans)
        if covariates["site"].isna().any():
            missing = [s.scan_id for s in scans if not s.site]
            msg = (
                f"harmonisation needs each scan's site; {len(missing)} scan(s) have none "
                f"(first: {missing[0]}): give a BIDS directory whose participants.tsv (or "
                "sessions.tsv) has a 'site' column, or predict without --harmonise"
            )
            raise HarmonisationError(msg)
        for site in self.unseen_sites(covariates):
            rows = covariates[covariates["site"] == site]
            controls = rows["group"].eq(self.control_group) & rows["age"].notna()
            available = int(controls.sum())
            usable = min(available, self.max_controls or available)
            if usable < self.min_controls:
                msg = (
                    f"site {site}: {available} healthy controls ({self.control_group}) with an "
                    f"age, but a site the bundle never saw is harmonised from {self.min_controls}"
                    " or more of its own; add controls scanned there, or apply without "
                    "harmonisation (recalibration only)"
                )
                raise HarmonisationError(msg)

    def features(self, roi: pd.DataFrame, covariates: pd.DataFrame) -> pd.DataFrame:
        """The ROI volumes ``ridge_roi`` reads, harmonised (rows as ``covariates``)."""
        if self.roi is None:
            return roi
        out, unseen = apply_roi(roi, covariates, self.roi, self.control_group,
                                self.min_controls, self.max_controls, self.scale)  # fmt: skip
        if unseen:
            log.info("ROI volumes of unseen site(s) %s harmonised from their controls", unseen)
        return out

    def brain_pads(self, table: pd.DataFrame) -> pd.DataFrame:
        """The corrected brain-PADs harmonised; the values before kept as
        ``brain_pad_unharmonised*``."""
        out, unseen = apply_brain_pad(table, self.brain_pad, self.control_group,
                                      self.min_controls, self.max_controls,
                                      self.scale)  # fmt: skip
        if unseen:
            log.info("brain-PAD of unseen site(s) %s harmonised from their controls", unseen)
        return out


def scan_covariates(scans: Sequence[ScanInput]) -> pd.DataFrame:
    """``site``, ``age``, ``sex``, ``group`` of each scan, in order."""
    return pd.DataFrame(
        [{"site": s.site, "age": s.age, "sex": s.sex, "group": s.group} for s in scans]
    ).astype({"age": float})
