"""A simulated BIDS cohort with known ground truth (``brainpad simulate``).

The cohort is both the demo dataset and the scientific test of the pipeline: every
quantity the pipeline estimates (brain age, local brain-PAD maps, regional volumes, group
effects, test-retest reliability) has a recorded true value under
``derivatives/simulation/``. See :mod:`.truth` for the ageing model, :mod:`.anatomy` for
how a subject is generated and :mod:`.scanner` for the acquisition.

This package shares no code with the pipeline (templates aside), so a bug in pipeline
code cannot cancel out when the pipeline is scored against this truth.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from tqdm import tqdm

from brainpad.simulate import anatomy, artefacts, truth
from brainpad.simulate.cohort import (
    Settings,
    clinical_coefficients,
    clinical_scores,
    plan_cohort,
    scan_paths,
    withheld_ages,
)
from brainpad.templates import harvard_oxford_atlas, load_template

__all__ = ["Settings", "expected_outputs", "plan_cohort", "simulate_cohort"]

SPACE = "space-MNI152NLin2009aSym"  # the template's name, as BIDS's space- entity

log = logging.getLogger(__name__)
TEMPLATE_PAD_MM = 12.0  # room around the template for a scalp
TRUTH_DIR = "derivatives/simulation"
TRUTH_FILES = (
    "dataset_description.json",
    "truth.json",
    "subjects.tsv",
    "scans.tsv",
    "regions.tsv",
    "roi_volumes.tsv",
    f"{SPACE}_desc-regions_dseg.nii.gz",
)

_MODEL: anatomy.AnatomyModel | None = None  # shared with forked workers


def expected_outputs(settings: Settings) -> list[str]:
    """Every file :func:`simulate_cohort` writes, relative to the BIDS root."""
    _, sessions = plan_cohort(settings)
    groups = list(settings.group_fractions)
    return [
        "dataset_description.json",
        "participants.tsv",
        "participants.json",
        *scan_paths(sessions, settings.modalities),
        *(f"{TRUTH_DIR}/{name}" for name in TRUTH_FILES),
        *(f"{TRUTH_DIR}/group-{g}_{SPACE}_desc-truelocalbrainPAD.nii.gz" for g in groups),
    ]


def _single_threaded_torch() -> None:
    """One torch thread: parallelism comes from the worker processes, and no OpenMP pool
    may exist in the parent when it forks them."""
    import torch  # imported here so that planning a cohort (the Snakefile) stays light

    torch.set_num_threads(1)


def _simulate_one(job: tuple[dict, list[dict], Settings, Path]) -> dict:
    """Worker: generate one subject and write its scans into the staging folder."""
    subject, sessions, settings, staging = job
    model = _MODEL
    subj = anatomy.generate_subject(model, subject, settings)
    sites = {s.name: s for s in settings.sites}
    scans = []
    for session in sessions:
        rng = np.random.default_rng([int(subject["seed"]), 1, int(session["session"])])
        images, pose = anatomy.scan_subject(
            model,
            subj,
            sites[session["site"]],
            settings.modalities,
            subject["age"],
            rng,
            settings.max_rotation_deg,
            settings.max_translation_mm,
            (settings.motion_deg, settings.motion_mm),
            np.random.default_rng([int(subject["seed"]), 2, int(session["session"])]),
        )
        if session["artefact"] and "T1w" in images:
            images["T1w"] = artefacts.corrupt(images["T1w"], session["artefact"], rng)
        for modality, img in images.items():
            rel = scan_paths(pd.DataFrame([session]), (modality,))[0]
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            nib.save(img, staging / rel)
            scans.append(
                {
                    "participant_id": subject["participant_id"],
                    "session": session["session"],
                    "modality": modality,
                    "path": rel,
                    "site": session["site"],
                    "repeat": session["repeat"],
                    "artefact": session["artefact"] if modality == "T1w" else "",
                    **{
                        f"rotation_{a}_deg": r
                        for a, r in zip("xyz", pose["rotation_deg"], strict=True)
                    },
                    **{
                        f"translation_{a}_mm": t
                        for a, t in zip("xyz", pose["translation_mm"], strict=True)
                    },
                }
            )
    return {
        "participant_id": subject["participant_id"],
        "true_brain_age": subj.true_brain_age,
        "lesion_count": subj.lesion_count,
        "lesion_volume_mm3": subj.lesion_volume_mm3,
        "volumes": subj.regional_volume_mm3,
        "achieved": subj.achieved_log_change,
        "target": model.rates * (subj.local_age - truth.REFERENCE_AGE),
        "scans": scans,
    }


def _write_description(folder: Path, name: str, kind: str) -> None:
    """A BIDS dataset_description.json (``kind``: raw or derivative)."""
    description = {
        "Name": name,
        "BIDSVersion": "1.9.0",
        "DatasetType": kind,
        "GeneratedBy": [{"Name": "brainpad simulate"}],
    }
    (folder / "dataset_description.json").write_text(json.dumps(description, indent=2))


def _write_tsv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, sep="\t", index=False, na_rep="n/a", float_format="%.4f")


def simulate_cohort(settings: Settings, out_dir: str | Path, threads: int = 1) -> dict:
    """Generate the cohort as a BIDS dataset with its truth under ``derivatives/simulation``.

    The dataset is built in a staging folder next to ``out_dir`` and moved into place at the
    end, so a failed run never leaves a half-written dataset.

    Parameters
    ----------
    settings : Settings
        Cohort size, resolution, sites, ... and the seed.
    out_dir : path
        BIDS root to create (replaced if it exists).
    threads : int
        Worker processes.

    Returns
    -------
    dict
        The content of ``truth.json`` (floor MAE, coefficients, timings).
    """
    global _MODEL
    start = time.perf_counter()
    out_dir = Path(out_dir)
    staging = out_dir.parent / f".{out_dir.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / TRUTH_DIR).mkdir(parents=True)

    if threads > 1:
        _single_threaded_torch()
    template = load_template(settings.voxel_size, TEMPLATE_PAD_MM)
    atlas = harvard_oxford_atlas(settings.voxel_size, pad_mm=TEMPLATE_PAD_MM)
    log.info("building the anatomy model at %.1f mm", settings.voxel_size)
    _MODEL = anatomy.AnatomyModel.build(template, atlas)
    participants, sessions = plan_cohort(settings)
    jobs = [
        (
            row,
            sessions[sessions.participant_id == row["participant_id"]].to_dict("records"),
            settings,
            staging,
        )
        for row in participants.to_dict("records")
    ]
    log.info(
        "simulating %d subjects (%d sessions) with %d worker(s)", len(jobs), len(sessions), threads
    )
    progress = {
        "total": len(jobs),
        "desc": "simulate",
        "unit": "subject",
        "disable": not os.isatty(2),
    }
    pool = (
        multiprocessing.get_context("fork").Pool(threads, _single_threaded_torch)
        if threads > 1
        else None
    )
    results = []
    try:
        mapped = pool.imap(_simulate_one, jobs) if pool else map(_simulate_one, jobs)
        for result in tqdm(mapped, **progress):
            results.append(result)
            if len(results) % max(1, len(jobs) // 10) == 0:
                log.info("subject %d/%d done", len(results), len(jobs))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # never leave a half-written dataset
        raise
    finally:
        if pool:
            pool.terminate()

    info = _write_truth(settings, participants, sessions, results, staging, _MODEL)
    info["seconds"] = round(time.perf_counter() - start, 1)
    (staging / TRUTH_DIR / "truth.json").write_text(json.dumps(info, indent=2, default=str))
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(staging, out_dir)
    log.info("simulated cohort written to %s in %.1f s", out_dir, info["seconds"])
    return info


def _write_truth(
    settings: Settings,
    participants: pd.DataFrame,
    sessions: pd.DataFrame,
    results: list[dict],
    root: Path,
    model: anatomy.AnatomyModel,
) -> dict:
    """Write the BIDS top-level files and every truth file except ``truth.json``."""
    truth_dir = root / TRUTH_DIR
    by_id = {r["participant_id"]: r for r in results}
    subjects = participants.copy()
    subjects["true_brain_age"] = [by_id[i]["true_brain_age"] for i in subjects.participant_id]
    subjects["true_brain_pad"] = subjects["true_brain_age"] - subjects["age"]
    subjects["lesion_count"] = [by_id[i]["lesion_count"] for i in subjects.participant_id]
    subjects["lesion_volume_mm3"] = [by_id[i]["lesion_volume_mm3"] for i in subjects.participant_id]
    subjects = subjects.join(clinical_scores(subjects, settings.seed))
    subjects["age_withheld"] = withheld_ages(subjects, sessions, settings)

    public = subjects[["participant_id", "age", "sex", "site", "group", "mmse", "survival_months"]]
    public = public.assign(age=public["age"].mask(subjects["age_withheld"]))
    _write_tsv(public, root / "participants.tsv")
    (root / "participants.json").write_text(json.dumps(PARTICIPANTS_JSON, indent=2))
    _write_description(root, "brainpad simulated ageing cohort", "raw")
    for pid, rows in sessions.groupby("participant_id"):
        table = rows.assign(session_id="ses-" + rows["session"])[["session_id", "site"]]
        _write_tsv(table, root / pid / f"{pid}_sessions.tsv")

    _write_description(truth_dir, "brainpad simulation ground truth", "derivative")
    _write_tsv(subjects.drop(columns="seed"), truth_dir / "subjects.tsv")
    _write_tsv(pd.DataFrame([s for r in results for s in r["scans"]]), truth_dir / "scans.tsv")
    regions = truth.region_table()
    _write_tsv(regions, truth_dir / "regions.tsv")
    volumes = pd.DataFrame(
        np.stack([by_id[i]["volumes"] for i in subjects.participant_id])[:, regions["region"]],
        columns=regions["name"],
    )
    volumes.insert(0, "participant_id", subjects["participant_id"].to_numpy())
    _write_tsv(volumes, truth_dir / "roi_volumes.tsv")

    affine = model.template.grid.affine
    nib.save(
        nib.Nifti1Image(model.regions.astype(np.int16), affine),
        truth_dir / f"{SPACE}_desc-regions_dseg.nii.gz",
    )
    brain = model.regions > 0
    for group, accel in model.acceleration.items():
        pad_map = np.where(brain, accel[model.regions], 0.0).astype(np.float32)
        nib.save(
            nib.Nifti1Image(pad_map, affine),
            truth_dir / f"group-{group}_{SPACE}_desc-truelocalbrainPAD.nii.gz",
        )

    achieved = np.stack([r["achieved"] for r in results])[:, 1:]
    target = np.stack([r["target"] for r in results])[:, 1:]
    rel_error = np.abs(np.expm1(achieved) - np.expm1(target)) / np.maximum(
        np.abs(np.expm1(target)), 1e-3
    )
    controls = subjects[subjects.group == settings.control_group]
    return {
        "seed": settings.seed,
        "settings": asdict(settings),
        "reference_age": truth.REFERENCE_AGE,
        "floor_mae_expected": truth.floor_mae(settings.bio_age_sd),
        "floor_mae_sample": float(np.abs(controls["true_brain_pad"]).mean()),
        "bio_age_sd": settings.bio_age_sd,
        "n_subjects": len(subjects),
        "n_scans": int(len(sessions) * len(settings.modalities)),
        "clinical": clinical_coefficients(),
        "deformation_median_relative_volume_error": float(np.median(rel_error)),
        "group_mean_true_brain_pad": subjects.groupby("group")["true_brain_pad"].mean().to_dict(),
    }


PARTICIPANTS_JSON = {
    "age": {
        "Description": "age at the baseline scan; n/a where withheld (an unlabelled control)",
        "Units": "years",
    },
    "sex": {"Description": "sex", "Levels": {"F": "female", "M": "male"}},
    "site": {"Description": "scanner site of the baseline session"},
    "group": {
        "Description": "diagnostic group",
        "Levels": {
            "HC": "healthy control",
            "sMCI": "stable MCI",
            "pMCI": "progressive MCI",
            "AD": "Alzheimer's disease",
        },
    },
    "mmse": {"Description": "MMSE-like cognitive score (0-30)"},
    "survival_months": {"Description": "survival after the scan (AD only)", "Units": "months"},
}
