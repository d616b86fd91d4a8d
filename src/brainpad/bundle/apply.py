"""Many scans through a bundle: ``brainpad predict``'s loop and the workflow's apply mode.

:func:`predict_scans` preprocesses and predicts the scans given to ``brainpad predict``;
:func:`apply_cohort` predicts a cohort the workflow has already validated and
preprocessed (``brainpad apply``, the ``apply_bundle`` rule of apply mode), writing the
tables the workflow's statistics and report read. Both can recalibrate the global
correction on the cohort's own controls (:mod:`brainpad.bundle.recalibrate`) and
harmonise its sites with the bundle's ComBat fits (:mod:`brainpad.bundle.sites`).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pandas as pd

from brainpad.bundle.predict import Bundle, scan_row
from brainpad.bundle.scans import ScanInput, check_scans, scans_from_manifest
from brainpad.bundle.sites import SiteHarmonisation

log = logging.getLogger(__name__)


def predict_scans(
    bundle: Bundle,
    scans: list[ScanInput],
    out_dir: str | Path,
    device_name: str = "auto",
    recalibrate: bool = False,
    harmonisation: SiteHarmonisation | None = None,
) -> pd.DataFrame:
    """Preprocess and predict each scan, with progress; ``predictions.tsv`` written last.

    Every scan is checked first (readable files, a FLAIR when a model reads one, enough
    healthy controls to recalibrate or to harmonise an unseen site), so a bad input stops
    the run before any preprocessing. All scans are preprocessed before any is predicted,
    because an unseen site's harmonisation rests on its controls' ROI volumes. With
    ``recalibrate``, the global and voxelwise corrections are refitted on the scans' own
    healthy controls, cross-fitted (:func:`finish`), and ``recalibration.tsv`` compares
    the controls' brain-PAD per site before and after; with ``harmonisation``
    (:mod:`brainpad.bundle.sites`) the ROI volumes and brain-PADs are harmonised. Each
    scan's summary figure shows its final values.
    """
    import torch
    from tqdm import tqdm

    from brainpad.atomic import write_table_atomic
    from brainpad.bundle.maps import write_predicted_maps
    from brainpad.bundle.predict import preprocess_for_bundle
    from brainpad.bundle.recalibrate import recalibrate as recalibrate_table
    from brainpad.bundle.summary import summary_figure
    from brainpad.training.inference import select_device

    check_scans(bundle, scans)
    if recalibrate:
        listed = pd.DataFrame([vars(s) for s in scans])
        listed["brain_age"] = 0.0  # the count of controls is checked before any work
        recalibrate_table(listed, ["brain_age"], bundle.control_group)
    if harmonisation is not None:
        harmonisation.check(scans)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = select_device(device_name)
    torch.manual_seed(bundle.settings["seed"])
    quiet = not sys.stderr.isatty()
    prepared = []
    for scan in tqdm(scans, desc="preprocessing", unit="scan", disable=quiet):
        prepared.append(preprocess_for_bundle(bundle, scan, out))
        log.info("%s preprocessed in %.0f s", scan.scan_id, prepared[-1][2])
    volumes, features = roi_inputs(bundle, scans, [images for _, images, _ in prepared],
                                   harmonisation)  # fmt: skip
    rows, mapped, warned = [], {}, []
    bar = tqdm(scans, desc="brainpad predict", unit="scan", disable=quiet)
    for k, scan in enumerate(bar):
        bar.set_postfix_str(scan.scan_id)
        qc, images, seconds = prepared[k]
        row, maps, warnings, _ = scan_row(bundle, scan, images, qc, device, volumes[k], features[k])
        row["preprocess_seconds"] = seconds
        if (paths := write_predicted_maps(bundle, scan, out / scan.scan_id, maps)) is not None:
            mapped[scan.scan_id] = paths
        log.info("%s", describe_row(row))
        rows.append(row)
        warned.append(warnings)
    table, summary = finish(pd.DataFrame(rows), bundle, recalibrate, mapped, harmonisation)
    for row, warnings in zip(table.to_dict("records"), warned, strict=True):
        figure = out / row["scan_id"] / f"{row['scan_id']}_desc-brainage_summary.png"
        models = [m for m in bundle.models if pd.notna(row.get(f"pred_{m}"))]  # its head's
        summary_figure(row, models, warnings, figure)
    if recalibrate:
        write_table_atomic(summary, out / "recalibration.tsv")
    write_table_atomic(table, out / "predictions.tsv")
    return table


def roi_inputs(
    bundle: Bundle,
    scans: list[ScanInput],
    images: list[dict[str, Path]],
    harmonisation: SiteHarmonisation | None,
) -> tuple[list[pd.DataFrame], list[pd.DataFrame]]:
    """Each scan's Harvard-Oxford volumes (one row each), and what the ROI models read:
    the same, or harmonised over the cohort (an unseen site needs all its controls')."""
    from brainpad.bundle.predict import roi_features
    from brainpad.bundle.sites import scan_covariates

    volumes = [roi_features(bundle, i) for i in images]
    if harmonisation is None or not volumes:
        return volumes, volumes
    table = pd.concat(volumes, ignore_index=True)
    harmonised = harmonisation.features(table, scan_covariates(scans))
    return volumes, [harmonised.iloc[[k]].reset_index(drop=True) for k in range(len(volumes))]


def finish(
    table: pd.DataFrame,
    bundle: Bundle,
    recalibrate: bool,
    mapped: dict[str, dict[str, Path]],
    harmonisation: SiteHarmonisation | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The controls' brain-PAD per site; with ``recalibrate``, the corrections refitted on
    the cohort's controls: the recalibrated brain-PADs become the corrected ones
    (:func:`~brainpad.bundle.recalibrate.adopt`) and the ``mapped`` scans' corrected maps
    are rewritten (:func:`~brainpad.bundle.recalibrate.recalibrate_maps`); then with
    ``harmonisation`` the corrected brain-PADs are harmonised (the values before kept as
    ``brain_pad_unharmonised*``)."""
    from brainpad.bundle.recalibrate import adopt, recalibrate_maps, recalibration_summary
    from brainpad.bundle.recalibrate import recalibrate as recalibrate_table

    control_group = bundle.control_group
    if recalibrate:
        columns = [c for c in table.columns if c == "brain_age" or c.startswith("pred_")]
        table = recalibrate_table(table, columns, control_group)
    summary = recalibration_summary(table, control_group)
    if recalibrate:
        log.info("controls' brain-PAD per site, before and after recalibration:\n%s", summary)
        table = adopt(table)
        if mapped:
            scans = table[table["scan_id"].isin(list(mapped))]
            recalibrate_maps(scans, mapped, bundle.settings["debias"], control_group)
    if harmonisation is not None and table["age"].notna().any():
        table = harmonisation.brain_pads(table)
    return table, summary


def describe_row(row: dict) -> str:
    """One line per scan: the brain age always with its interval."""
    text = (
        f"{row['scan_id']}: brain age {row['brain_age']:.1f} y "
        f"(95 % interval {row['brain_age_low']:.1f}-{row['brain_age_high']:.1f})"
    )
    if not row.get("plausible", True):
        text += " IMPLAUSIBLE"
    if row.get("age") is not None and not pd.isna(row.get("age")):
        text += (
            f", age {row['age']:g}, brain-PAD {row['brain_pad']:+.1f} y "
            f"(corrected {row['brain_pad_corrected']:+.1f} y)"
        )
    return text + (" [warnings]" if row.get("warnings") else "")


def apply_role(group: str, age: float | None, control_group: str) -> str:
    """A new cohort's scan in the statistics: ``test`` (a control), ``clinical``, or
    ``unlabelled`` without an age (it gets a brain age, but no brain-PAD or statistic)."""
    if age is None or pd.isna(age):
        return "unlabelled"
    return "test" if group == control_group else "clinical"


def apply_cohort(
    bundle: Bundle,
    manifest_path: str | Path,
    qc_path: str | Path,
    preproc_dir: str | Path,
    out: dict[str, Path],
    recalibrate: bool = False,
    device_name: str = "auto",
    harmonisation: SiteHarmonisation | None = None,
) -> pd.DataFrame:
    """A validated, preprocessed cohort through a bundle (the workflow's apply mode).

    Every T1w scan of the manifest that passed QC gets :func:`~brainpad.bundle.predict.scan_row`
    from its preprocessed images. Healthy controls take the role ``test`` (the bundle never
    saw them: the statistics' healthy accuracy is the transfer accuracy), everyone else
    ``clinical``. With ``recalibrate``, the global correction and the local maps' voxelwise
    one are refitted on the cohort's controls, cross-fitted
    (:mod:`brainpad.bundle.recalibrate`). With ``harmonisation``, the ROI volumes and
    brain-PADs are harmonised with the bundle's ComBat fits, an unseen site from its own
    controls (:mod:`brainpad.bundle.sites`).

    Parameters
    ----------
    out : dict
        ``brain_age`` (the brain-age table the statistics and report read),
        ``roi_volumes``, ``recalibration`` (the controls' brain-PAD per site) and
        ``maps`` (folder of the map model's per-scan maps, as the training run writes).
    """
    from brainpad.atomic import write_table_atomic
    from brainpad.bundle.maps import write_scan_maps
    from brainpad.bundle.predict import scan_images
    from brainpad.derivatives import describe_maps
    from brainpad.paths import map_paths, scan_folder
    from brainpad.training.inference import select_device

    manifest = pd.read_csv(manifest_path, sep="\t", dtype={"session": str, "run": str})
    qc = pd.read_csv(qc_path, sep="\t").set_index("scan_id")
    passed = qc["passed"].astype(bool)
    scans = [s for s in scans_from_manifest(manifest) if passed.get(s.scan_id, False)]
    if harmonisation is not None:
        harmonisation.check(scans)
    t1w = manifest[manifest["modality"] == "T1w"].set_index("scan_id")
    device = select_device(device_name)
    images = [scan_images(scan_folder(preproc_dir, s.scan_id), s.scan_id) for s in scans]
    volumes, inputs = roi_inputs(bundle, scans, images, harmonisation)
    rows, features, mapped = [], [], {}
    Path(out["maps"]).mkdir(parents=True, exist_ok=True)
    describe_maps(out["maps"], preproc_dir)
    for k, scan in enumerate(scans):
        checked = {"passed": True, "reasons": []}
        row, maps, _, _ = scan_row(bundle, scan, images[k], checked, device, volumes[k], inputs[k])
        row.update(session=t1w.at[scan.scan_id, "session"], run=t1w.at[scan.scan_id, "run"])
        row["role"] = apply_role(scan.group, scan.age, bundle.control_group)
        rows.append(row)
        features.append(volumes[k].assign(scan_id=scan.scan_id))
        for model, brain_age in list(maps.items())[:1]:  # the first map model, as in training
            mapped[scan.scan_id] = map_paths(out["maps"], scan.scan_id)
            write_scan_maps(bundle, brain_age, scan, mapped[scan.scan_id], model)
        log.info("%s", describe_row(row))
    table, summary = finish(pd.DataFrame(rows), bundle, recalibrate, mapped, harmonisation)
    roi = pd.concat(features, ignore_index=True)
    write_table_atomic(roi[["scan_id", *roi.columns.drop("scan_id")]], out["roi_volumes"])
    write_table_atomic(summary, out["recalibration"])
    write_table_atomic(table, out["brain_age"])
    return table
