"""Applying a trained bundle to new scans (``brainpad predict``).

For each scan, exactly what the training run did to its held-out scans: the bundle's
preprocessing with the bundle's templates (:func:`brainpad.preprocess.preprocess_scan`),
its inputs built by the function that built the cohort arrays
(:func:`brainpad.cohort.arrays.stored_volume`), every base model of every fold
(:class:`brainpad.training.inference.FittedNetwork`, or the tabular model on the
Harvard-Oxford volumes), the mean over folds per base model, the stored stacking heads
(:func:`brainpad.ensemble.stacking.apply_heads`), the spread and the calibrated interval
(:mod:`brainpad.ensemble.intervals`), and with an age the global bias correction.

Nothing is printed or written without its interval, and every scan gets the warnings of
:func:`~brainpad.bundle.scans.scan_warnings` (age outside the training range, failed QC,
a voxel size or field of view far from the training scans', models that disagree far
beyond their training spread).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from brainpad.bundle import BundleError, check_versions, verify_bundle
from brainpad.bundle.scans import ScanInput, scan_warnings

log = logging.getLogger(__name__)


@dataclass
class Bundle:
    """A verified bundle folder and what it holds (:mod:`brainpad.bundle`)."""

    root: Path
    description: dict
    fits: dict
    loaded: dict = field(default_factory=dict, repr=False)
    """Fold models already read (:meth:`fold_model`), so a cohort reads each once."""

    @classmethod
    def open(cls, root: str | Path, allow_other_versions: bool = False) -> Bundle:
        """Verify every file against the manifest and the software versions, then load.

        Raises
        ------
        BundleError
            A missing or changed file, another format, or other versions (unless
            ``allow_other_versions``, which logs them as a warning instead).
        """
        root = Path(root)
        description = verify_bundle(root)
        for mismatch in check_versions(description, root, allow_other_versions):
            log.warning("bundle made with another version: %s", mismatch)
        fits = json.loads((root / "ensemble" / "fits.json").read_text())
        if "interval" not in fits:
            msg = (
                f"{root / 'ensemble' / 'fits.json'}: no calibrated interval (a bundle from "
                "before intervals existed); re-run the workflow to export the bundle again"
            )
            raise BundleError(msg)
        return cls(root, description, fits)

    def for_scan(self, has_flair: bool) -> Bundle:
        """The head that predicts a scan: this bundle, or for a scan without FLAIR when
        models read FLAIR, :meth:`t1w_only`."""
        return self if has_flair or "flair" not in self.inputs else self.t1w_only()

    def t1w_only(self) -> Bundle:
        """The bundle's head for scans without FLAIR: its base models that read none,
        with their own stacking heads, bias corrections and calibrated interval (fitted by
        the training run; ``t1w_only`` in fits.json). Shares the fold models read."""
        if "t1w_only" not in self.fits:
            msg = (
                f"{self.root}: its models read FLAIR and it has no T1w-only head (a bundle "
                "from before it existed); give each scan its FLAIR, or re-run the workflow "
                "to export the bundle again"
            )
            raise BundleError(msg)
        head = self.fits["t1w_only"]
        models = self.description["base_models"]
        description = {
            **self.description,
            "base_models": {m: models[m] for m in head["models"]},
            "head": "t1w_only",
        }
        fits = {**self.fits, **{k: v for k, v in head.items() if k != "models"}}
        return Bundle(self.root, description, fits, self.loaded)

    @property
    def head(self) -> str:
        """``all`` (every base model) or ``t1w_only`` (:meth:`t1w_only`)."""
        return self.description.get("head", "all")

    @property
    def settings(self) -> dict:
        return self.description["settings"]

    @property
    def control_group(self) -> str:
        """The training run's healthy-control label (``HC`` for bundles made before it
        was recorded)."""
        return self.settings.get("control_group", "HC")

    @property
    def models(self) -> list[str]:
        """Base models, in the order of the run's config."""
        return list(self.description["base_models"])

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    @property
    def crop(self) -> tuple[slice, ...]:
        return tuple(slice(a, b) for a, b in self.description["crop"])

    def template(self, key: str) -> Path:
        """A template file of the bundle (``t1``, ``mask``, ``atlas``, ``labels`` ...)."""
        return self.root / self.description["templates"][key]["file"]

    def states(self, model: str) -> list[Path]:
        """The ``model.pt`` of every fold of a base model."""
        folds = self.description["base_models"][model]
        return [self.root / "models" / model / f"fold-{k}" / "model.pt" for k in folds]

    @cached_property
    def inputs(self) -> list[str]:
        """The model inputs (``tissue``, ``t1w``, ``flair``) the image models read."""
        from brainpad.models import get_spec, parse_base_model

        found = [parse_base_model(m).input for m in self.models if get_spec(m).reads != "roi"]
        return list(dict.fromkeys(found))

    @cached_property
    def voxel_bias(self):
        """The local maps' voxelwise correction on the crop, or None without one."""
        from brainpad.bundle import VOXEL_BIAS
        from brainpad.local.correction import load_voxel_bias

        path = self.root / VOXEL_BIAS
        return load_voxel_bias(path, self.crop) if path.is_file() else None

    @cached_property
    def mask(self) -> np.ndarray:
        """The template brain mask on the crop (the voxels a map model predicts)."""
        import nibabel as nib

        return np.asarray(nib.load(self.template("mask")).dataobj)[self.crop] > 0

    def fold_model(self, path: Path, device, tabular: bool = False):
        """A fold's model: a :class:`~brainpad.training.inference.FittedNetwork`, or with
        ``tabular`` the model's saved state; read once, then kept."""
        if path not in self.loaded:
            import torch

            from brainpad.training.inference import FittedNetwork

            if tabular:
                self.loaded[path] = torch.load(path, map_location="cpu", weights_only=True)
            else:
                self.loaded[path] = FittedNetwork(path, device)
        return self.loaded[path]

    def preprocess_options(self):
        """The bundle's :class:`~brainpad.preprocess.PreprocessOptions`."""
        from brainpad.preprocess import PreprocessOptions
        from brainpad.preprocess.qc import QCThresholds

        pre = self.settings["preprocess"]
        return PreprocessOptions(
            voxel_size=pre["voxel_size"],
            fwhm_mm=pre["fwhm_mm"],
            syn_iterations=tuple(pre["syn_iterations"]),
            prior_weight=pre["prior_weight"],
            modulation=pre["modulation"],
            qc_thresholds=QCThresholds.from_config(self.settings["qc"]),
            seed=self.settings["seed"],
        )


def scan_inputs(bundle: Bundle, images: dict[str, Path]) -> dict[str, np.ndarray]:
    """A preprocessed scan's model inputs as the networks read them, on the bundle's crop.

    Parameters
    ----------
    images : dict
        Channel (``GM``, ``WM``, ``T1w``, ``FLAIR``) → preprocessed image.

    Returns
    -------
    dict
        Input → (channels, x, y, z) float32 values, as in the cohort arrays.
    """
    from brainpad.cohort.arrays import INPUT_CHANNELS, as_values, stored_volume

    return {
        name: as_values(stored_volume([images[c] for c in INPUT_CHANNELS[name]], name, bundle.crop))
        for name in bundle.inputs
    }


def fold_predictions(
    bundle: Bundle, inputs: dict[str, np.ndarray], features: pd.DataFrame | None, device
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Every base model × fold prediction of one scan, and each map model's mean map.

    Returns
    -------
    predictions : DataFrame
        ``model, fold, predicted`` (years).
    maps : dict
        Map model → brain-age map (years, NaN outside the brain) on the bundle's crop,
        the mean over its fold models.
    """
    from brainpad.cohort.arrays import mid_slice
    from brainpad.models import get_spec, load, parse_base_model

    rows, maps = [], {}
    for model in bundle.models:
        spec = get_spec(model)
        volume = None if spec.reads == "roi" else inputs[parse_base_model(model).input]
        fold_maps = []
        for path in bundle.states(model):
            fold = int(path.parent.name.removeprefix("fold-"))
            fitted = bundle.fold_model(path, device, tabular=spec.reads == "roi")
            if spec.reads == "roi":
                predicted = float(load(spec.name).predict(fitted, features)[0])
            elif spec.output == "map":
                brain_age = fitted.map(volume, bundle.mask)
                fold_maps.append(brain_age.astype(np.float16).astype(np.float32))  # as stored
                predicted = float(np.nanmean(brain_age[bundle.mask]))
            else:
                x = mid_slice(volume) if spec.reads == "slices" else volume
                predicted = float(fitted.predict(x[None])[0])
            rows.append({"model": model, "fold": fold, "predicted": predicted})
        if fold_maps:
            maps[model] = np.mean(fold_maps, axis=0)
    return pd.DataFrame(rows), maps


def ensemble_row(bundle: Bundle, predictions: pd.DataFrame, age: float | None) -> dict:
    """Base-model, sub-ensemble and ensemble ages, spread, interval and brain-PAD of a scan.

    The base model's age is the mean over its fold models, as for a held-out scan of the
    training run; with ``age``, raw and globally corrected brain-PAD of the ensemble and
    of every model follow.
    """
    from brainpad.ensemble.correction import LinearBias
    from brainpad.ensemble.intervals import interval, model_spread
    from brainpad.ensemble.stacking import apply_heads
    from brainpad.ensemble.uncertainty import interval_width

    per_model = predictions.groupby("model", sort=False)["predicted"].mean()
    base = {m: float(per_model[m]) for m in bundle.models}
    sub_ages, brain_age = apply_heads(bundle.fits["stacking"], base)
    spread = float(model_spread(predictions.assign(scan_id="scan"), bundle.models).iloc[0])
    low, high = interval(np.array([brain_age]), np.array([spread]), bundle.fits["interval"])
    row = {
        "brain_age": brain_age,
        "brain_age_low": float(low[0]),
        "brain_age_high": float(high[0]),
        "spread": spread,
        "uncertainty": interval_width(predictions["predicted"].to_numpy()),
        **{f"pred_{m}": v for m, v in {**base, **sub_ages}.items()},
    }
    for suffix, column in {
        "": "brain_age",
        **{f"_{m}": f"pred_{m}" for m in [*base, *sub_ages]},
    }.items():
        # without an age: brain age and interval, and brain-PAD columns left empty
        delta, corrected = float("nan"), float("nan")
        if age is not None:
            fit = bundle.fits["bias"][suffix or "ensemble"]
            delta = row[column] - age
            bias = LinearBias(fit["alpha"], fit["beta"], fit["n"])
            corrected = float(bias.correct(np.array([age]), np.array([delta]))[0])
        row[f"brain_pad{suffix}"] = delta
        row[f"brain_pad_corrected{suffix}"] = corrected
    return row


IMPLAUSIBLE_MARGIN_Y = 20.0
"""A brain age this many years outside the training ages (or below 0) is implausible."""


def implausible_age(bundle: Bundle, brain_age: float) -> str | None:
    """Why ``brain_age`` cannot be a brain's age for this bundle, or None when it can.

    Below 0, or more than :data:`IMPLAUSIBLE_MARGIN_Y` outside the training cohort's ages:
    the scan is unlike the bundle's training scans (another scanner, contrast, population
    or a failed preprocessing), and the value says nothing about its brain.
    """
    low, high = bundle.description["training_cohort"]["training_age_range"]
    if brain_age >= 0 and low - IMPLAUSIBLE_MARGIN_Y <= brain_age <= high + IMPLAUSIBLE_MARGIN_Y:
        return None
    return (
        f"IMPLAUSIBLE brain age {brain_age:.1f} y (the bundle was trained on ages "
        f"{low:g}-{high:g}): this scan is unlike the bundle's training scans (scanner, "
        "contrast, population) or its preprocessing failed; do not use this value, look "
        "at the QC montage, and use a bundle trained on scans like it"
    )


def roi_features(bundle: Bundle, images: dict[str, Path]) -> pd.DataFrame:
    """The Harvard-Oxford tissue volumes of one preprocessed scan (``ridge_roi``'s input)."""
    from brainpad.cohort.regions import cohort_roi_volumes

    tissues = ("GM", "WM", "CSF")
    scan = pd.DataFrame([{"scan_id": "scan", **{t: images[t] for t in tissues}}])
    table = cohort_roi_volumes(
        scan, {t: t for t in tissues}, str(bundle.template("atlas")), str(bundle.template("labels"))
    )
    return table.drop(columns="scan_id")


def scan_images(folder: Path, scan_id: str) -> dict[str, Path]:
    """A preprocessed scan's images by channel (``GM``, ``WM``, ``CSF``, ``T1w``, ``FLAIR``)."""
    from brainpad.paths import output_paths

    files = output_paths(folder, scan_id)
    keys = {"GM": "gm", "WM": "wm", "CSF": "csf", "T1w": "t1", "FLAIR": "flair"}
    return {channel: files[key] for channel, key in keys.items()}


def scan_row(
    bundle: Bundle,
    scan: ScanInput,
    images: dict[str, Path],
    qc: dict,
    device,
    volumes: pd.DataFrame | None = None,
    features: pd.DataFrame | None = None,
) -> tuple[dict, dict[str, np.ndarray], list[str], pd.DataFrame]:
    """A preprocessed scan through every model, the ensemble and the corrections.

    Parameters
    ----------
    volumes : DataFrame, optional
        The scan's Harvard-Oxford tissue volumes (one row, :func:`roi_features`), when
        already measured.
    features : DataFrame, optional
        What the ROI models read instead of ``volumes`` (harmonised volumes,
        :mod:`brainpad.bundle.sites`).

    Returns
    -------
    row : dict
        The scan's identity, :func:`ensemble_row`, QC, ``inference_seconds`` (inputs,
        every model, the ensemble) and ``warnings`` (joined by `` | ``).
    maps : dict
        Map model → brain-age map on the bundle's crop (:func:`fold_predictions`).
    warnings : list of str
        :func:`~brainpad.bundle.scans.scan_warnings`.
    volumes : DataFrame
        Its Harvard-Oxford tissue volumes (one row).
    """
    start = time.perf_counter()
    bundle = bundle.for_scan(scan.flair is not None)
    volumes = roi_features(bundle, images) if volumes is None else volumes
    features = volumes if features is None else features
    predictions, maps = fold_predictions(bundle, scan_inputs(bundle, images), features, device)
    row = {
        "scan_id": scan.scan_id,
        "source": str(scan.t1w),
        "participant_id": scan.participant_id,
        "site": scan.site,
        "group": scan.group,
        "age": scan.age,
        "sex": scan.sex,
        **ensemble_row(bundle, predictions, scan.age),
        "head": bundle.head,
        "qc_passed": bool(qc.get("passed", True)),
        "inference_seconds": round(time.perf_counter() - start, 2),
    }
    implausible = implausible_age(bundle, row["brain_age"])
    row["plausible"] = implausible is None
    warnings = [implausible] if implausible else []
    if bundle.head == "t1w_only":
        warnings.append(
            f"no FLAIR: the brain age is the bundle's T1w-only head's ({len(bundle.models)} "
            "base models that read no FLAIR, stacked and calibrated on their own)"
        )
    warnings += scan_warnings(bundle, scan.t1w, scan.age, qc, row["spread"])
    row["warnings"] = " | ".join(warnings)
    for warning in warnings:
        log.warning("%s: %s", scan.scan_id, warning)
    return row, maps, warnings, volumes


def preprocess_for_bundle(
    bundle: Bundle, scan: ScanInput, out_dir: Path
) -> tuple[dict, dict[str, Path], float]:
    """One scan through the bundle's preprocessing into ``out_dir/<scan_id>/`` (images and
    QC montage, :func:`brainpad.paths.output_paths`).

    Returns its QC, its preprocessed images by channel (:func:`scan_images`) and the
    seconds it took.
    """
    from brainpad.preprocess import preprocess_scan

    folder = out_dir / scan.scan_id
    start = time.perf_counter()
    options = bundle.preprocess_options()
    qc = preprocess_scan(scan.t1w, scan.scan_id, bundle.templates_dir, folder, options, scan.flair)
    return qc, scan_images(folder, scan.scan_id), round(time.perf_counter() - start, 2)
