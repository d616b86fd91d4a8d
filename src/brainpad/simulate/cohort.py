"""Who is in the simulated cohort: demographics, groups, sites, sessions and clinical scores.

:func:`plan_cohort` draws everything that does not need an image (it is cheap, so the
Snakefile can call it to know the scan list before the images exist). Clinical variables
depend on each subject's realised true brain-PAD and are added by :func:`clinical_scores`
once the anatomy has been generated.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from brainpad.simulate.scanner import Site

DEFAULT_SITES = (
    Site("siteA", (1.0, 1.0, 1.0), "RAS", snr=35.0, intensity_scale=1000.0, bias_strength=0.15),
    Site(
        "siteB",
        (0.9, 0.9, 1.0),
        "LPS",
        snr=25.0,
        intensity_scale=2500.0,
        bias_strength=0.25,
        skull=True,
    ),
    Site(
        "siteC",
        (1.0, 1.0, 0.9),
        "LAS",
        snr=20.0,
        intensity_scale=600.0,
        bias_strength=0.3,
        skull=True,
    ),
)

# Clinical scores: intercept per group, slope per year of true global brain-PAD, noise SD.
MMSE_INTERCEPT = {"HC": 29.0, "sMCI": 27.0, "pMCI": 25.5, "AD": 22.0}
MMSE_SLOPE = -0.4
MMSE_NOISE_SD = 1.0
SURVIVAL_GROUP = "AD"
SURVIVAL_INTERCEPT = 72.0
SURVIVAL_SLOPE = -3.0  # months per year of brain-PAD
SURVIVAL_NOISE_SD = 8.0


@dataclass(frozen=True)
class Settings:
    """Knobs of the simulated cohort (``simulation:`` in the config, plus ``seed``)."""

    n_subjects: int = 140
    voxel_size: float = 3.0
    seed: int = 42
    control_age_range: tuple[float, float] = (20.0, 85.0)
    patient_age_range: tuple[float, float] = (60.0, 90.0)
    group_fractions: dict[str, float] = field(
        default_factory=lambda: {"HC": 0.7, "sMCI": 0.1, "pMCI": 0.1, "AD": 0.1}
    )
    bio_age_sd: float = 4.0
    severity_sd: float = 0.25
    n_test_retest: int = 8
    n_between_site: int = 8
    modalities: tuple[str, ...] = ("T1w", "FLAIR")
    anatomy_log_volume_sd: float = 0.05
    head_size_sd: float = 0.025
    lesion_rate: float = 0.1
    max_rotation_deg: float = 10.0
    max_translation_mm: float = 10.0
    motion_deg: float = 3.0
    motion_mm: float = 3.0
    sites: tuple[Site, ...] = DEFAULT_SITES
    artefacts: tuple[str, ...] = ()
    unlabelled_fraction: float = 0.0
    control_group: str = "HC"
    """The healthy controls' label (the config's ``control_group``); never inferred from
    the order of ``group_fractions``, which a YAML dump may sort."""

    def __post_init__(self) -> None:
        if self.control_group not in self.group_fractions:
            msg = (
                f"simulation.group_fractions {dict(self.group_fractions)} has no share for the "
                f"control group '{self.control_group}' (control_group); add it"
            )
            raise ValueError(msg)

    @classmethod
    def from_config(cls, config: dict) -> Settings:
        """Settings from a workflow config (``seed`` + the ``simulation`` section)."""
        sim = dict(config.get("simulation", {}))
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in sim.items() if k in known}
        if "sites" in values:
            values["sites"] = tuple(Site.from_config(s) for s in values["sites"])
        for key in ("control_age_range", "patient_age_range", "modalities", "artefacts"):
            if key in values:
                values[key] = tuple(values[key])
        if "seed" in config:
            values["seed"] = int(config["seed"])
        if "control_group" in config:
            values["control_group"] = str(config["control_group"])
        return cls(**values)


def subject_ids(n: int) -> list[str]:
    """BIDS participant ids ``sub-001`` ... (zero-padded to at least three digits)."""
    width = max(3, len(str(n)))
    return [f"sub-{i:0{width}d}" for i in range(1, n + 1)]


def _group_counts(settings: Settings) -> dict[str, int]:
    fractions = settings.group_fractions
    total = sum(fractions.values())
    counts = {g: round(settings.n_subjects * f / total) for g, f in fractions.items()}
    counts[settings.control_group] += settings.n_subjects - sum(counts.values())
    return counts


def plan_cohort(settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw participants and their scan sessions (no images).

    Returns
    -------
    participants : DataFrame
        One row per subject: ``participant_id, age, sex, group, site, bio_age_offset,
        severity, head_scale, seed``. The biological-age offsets are centred within each
        group, so a group's mean true brain-PAD is exactly its designed disease effect.
    sessions : DataFrame
        One row per scan session: ``participant_id, session, site, repeat`` where
        ``repeat`` is ``baseline``, ``test-retest`` or ``between-site``.
    """
    rng = np.random.default_rng([settings.seed, 0])
    ids = subject_ids(settings.n_subjects)
    groups = np.concatenate([[g] * n for g, n in _group_counts(settings).items()])
    rng.shuffle(groups)
    control = settings.control_group
    lo_hi = np.where(
        (groups == control)[:, None], settings.control_age_range, settings.patient_age_range
    )
    age = np.round(rng.uniform(lo_hi[:, 0], lo_hi[:, 1]), 1)
    sex = rng.choice(np.array(["F", "M"]), settings.n_subjects)
    site_names = [s.name for s in settings.sites]
    site = np.resize(np.array(site_names), settings.n_subjects)  # balanced across sites
    rng.shuffle(site)
    offset = rng.normal(0.0, settings.bio_age_sd, settings.n_subjects)
    for group in np.unique(groups):  # centre per group: group effects are exactly as designed
        members = groups == group
        if members.sum() > 1:
            offset[members] -= offset[members].mean()
    severity = np.where(
        groups == control,
        0.0,
        np.clip(rng.normal(1.0, settings.severity_sd, len(groups)), 0.2, None),
    )
    head_mean = np.where(sex == "M", np.log(1.02), np.log(0.98))
    head_scale = np.exp(rng.normal(head_mean, settings.head_size_sd))
    seeds = rng.integers(0, 2**31 - 1, settings.n_subjects)
    participants = pd.DataFrame(
        {
            "participant_id": ids,
            "age": age,
            "sex": sex,
            "group": groups,
            "site": site,
            "bio_age_offset": offset,
            "severity": severity,
            "head_scale": head_scale,
            "seed": seeds,
        }
    )
    n_repeat = min(settings.n_test_retest + settings.n_between_site, settings.n_subjects)
    repeated = rng.choice(settings.n_subjects, n_repeat, replace=False)
    rows = [
        {"participant_id": i, "session": "1", "site": s, "repeat": "baseline"}
        for i, s in zip(ids, site, strict=True)
    ]
    for k, index in enumerate(sorted(repeated)):
        retest = k < settings.n_test_retest
        first = site_names.index(site[index])
        second = site_names[first if retest else (first + 1) % len(site_names)]
        rows.append(
            {
                "participant_id": ids[index],
                "session": "2",
                "site": second,
                "repeat": "test-retest" if retest else "between-site",
            }
        )
    sessions = pd.DataFrame(rows).sort_values(["participant_id", "session"], ignore_index=True)
    sessions["artefact"] = ""
    if settings.artefacts:
        sessions = _plant_artefacts(sessions, participants, settings, control)
    return participants, sessions


def _plant_artefacts(
    sessions: pd.DataFrame, participants: pd.DataFrame, settings: Settings, control: str
) -> pd.DataFrame:
    """One healthy control scanned once per kind in ``settings.artefacts`` (own RNG
    stream: the rest of the cohort is the same with or without artefacts)."""
    scanned_once = sessions.groupby("participant_id")["session"].count() == 1
    candidates = participants.loc[
        (participants["group"] == control)
        & participants["participant_id"].map(scanned_once).to_numpy(),
        "participant_id",
    ].to_numpy()
    if len(candidates) < len(settings.artefacts):
        msg = (
            f"simulation.artefacts lists {len(settings.artefacts)} artefacts but only "
            f"{len(candidates)} controls are scanned once; simulate more subjects or fewer "
            "artefacts"
        )
        raise ValueError(msg)
    chosen = np.random.default_rng([settings.seed, 2]).choice(
        candidates, len(settings.artefacts), replace=False
    )
    for pid, kind in zip(chosen, settings.artefacts, strict=True):
        sessions.loc[sessions["participant_id"] == pid, "artefact"] = kind
    return sessions


def withheld_ages(
    participants: pd.DataFrame, sessions: pd.DataFrame, settings: Settings
) -> pd.Series:
    """Which participants' ages participants.tsv withholds (``n/a``): a share
    ``settings.unlabelled_fraction`` of the healthy controls scanned once and without a
    planted artefact, drawn from an RNG stream of their own. The truth keeps every age.

    Returns
    -------
    Series of bool
        Indexed like ``participants``.
    """
    control = settings.control_group
    once = sessions.groupby("participant_id")["session"].count() == 1
    flawed = sessions.loc[sessions["artefact"].fillna("") != "", "participant_id"]
    once[once.index.isin(flawed)] = False
    candidates = participants.loc[
        (participants["group"] == control) & participants["participant_id"].map(once).to_numpy(),
        "participant_id",
    ].to_numpy()
    n_controls = int((participants["group"] == control).sum())
    count = min(len(candidates), round(settings.unlabelled_fraction * n_controls))
    chosen = np.random.default_rng([settings.seed, 3]).choice(candidates, count, replace=False)
    return participants["participant_id"].isin(chosen)


def scan_paths(sessions: pd.DataFrame, modalities: tuple[str, ...]) -> list[str]:
    """BIDS-relative paths of every simulated image, in a stable order."""
    return [
        f"{r.participant_id}/ses-{r.session}/anat/{r.participant_id}_ses-{r.session}_{m}.nii.gz"
        for r in sessions.itertuples()
        for m in modalities
    ]


def clinical_scores(participants: pd.DataFrame, seed: int) -> pd.DataFrame:
    """MMSE-like score for everyone and survival months for :data:`SURVIVAL_GROUP`.

    Both are linear in the true global brain-PAD (``true_brain_pad`` column) with the
    module-level coefficients, plus Gaussian noise; MMSE is rounded and clipped to 0-30.
    """
    rng = np.random.default_rng([seed, 1])
    pad = participants["true_brain_pad"].to_numpy()
    intercept = participants["group"].map(MMSE_INTERCEPT).fillna(MMSE_INTERCEPT["HC"])
    mmse = intercept.to_numpy() + MMSE_SLOPE * pad + rng.normal(0, MMSE_NOISE_SD, len(pad))
    survival = (
        SURVIVAL_INTERCEPT + SURVIVAL_SLOPE * pad + rng.normal(0, SURVIVAL_NOISE_SD, len(pad))
    )
    has_survival = (participants["group"] == SURVIVAL_GROUP).to_numpy()
    return pd.DataFrame(
        {
            "mmse": np.clip(np.rint(mmse), 0, 30).astype(int),
            "survival_months": np.where(
                has_survival, np.round(np.maximum(survival, 1.0), 1), np.nan
            ),
        },
        index=participants.index,
    )


def clinical_coefficients() -> dict:
    """The generating coefficients of :func:`clinical_scores`, for the truth file."""
    return {
        "mmse": {
            "intercept_by_group": MMSE_INTERCEPT,
            "slope_per_year_brain_pad": MMSE_SLOPE,
            "noise_sd": MMSE_NOISE_SD,
            "clipped_to": [0, 30],
        },
        "survival_months": {
            "group": SURVIVAL_GROUP,
            "intercept": SURVIVAL_INTERCEPT,
            "slope_per_year_brain_pad": SURVIVAL_SLOPE,
            "noise_sd": SURVIVAL_NOISE_SD,
        },
    }
