"""A bundle's brain-age maps of new scans: on the full MNI grid, raw and corrected."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from brainpad.bundle.predict import Bundle
    from brainpad.bundle.scans import ScanInput


def write_map(bundle: Bundle, values: np.ndarray, path: Path) -> None:
    """A map on the bundle's crop written as a NIfTI on the full template grid (NaN outside)."""
    import nibabel as nib

    template = nib.load(bundle.template("mask"))
    full = np.full(template.shape, np.nan, dtype=np.float32)
    full[bundle.crop] = values
    nib.save(nib.Nifti1Image(full, template.affine), path)


def write_scan_maps(
    bundle: Bundle,
    brain_age: np.ndarray,
    scan: ScanInput,
    paths: dict[str, Path],
    model: str | None = None,
) -> None:
    """A scan's brain-age map, and with an age its brain-PAD map and (with the bundle's
    voxelwise correction) its corrected one, to ``paths`` (``brainage``, ``brainPAD``,
    ``brainPADcorrected``; :data:`brainpad.paths.MAP_KINDS`), each with its sidecar."""
    from brainpad.derivatives import write_map_sidecars

    paths["brainage"].parent.mkdir(parents=True, exist_ok=True)
    write_map(bundle, brain_age, paths["brainage"])
    if scan.age is not None:
        delta = brain_age - scan.age
        write_map(bundle, delta, paths["brainPAD"])
        voxel_bias = bundle.voxel_bias
        if voxel_bias is not None:
            write_map(bundle, voxel_bias.correct(scan.age, delta), paths["brainPADcorrected"])
    voxel_mm = bundle.settings["preprocess"]["voxel_size"]
    write_map_sidecars(paths, voxel_mm, scan.scan_id, model)


def write_predicted_maps(
    bundle: Bundle, scan: ScanInput, folder: Path, maps: dict[str, np.ndarray]
) -> dict[str, Path] | None:
    """Each map model's brain-age map of a scan (and with an age its brain-PAD maps, raw
    and voxelwise corrected) on the MNI grid in ``folder``; the first map model's paths."""
    from brainpad.paths import MAP_KINDS, SPACE

    written = []
    for model, brain_age in maps.items():
        entity = f"_model-{model}" if len(maps) > 1 else ""
        stem = f"{scan.scan_id}{entity}_{SPACE}_desc"
        written.append({kind: folder / f"{stem}-{kind}_map.nii.gz" for kind in MAP_KINDS})
        write_scan_maps(bundle, brain_age, scan, written[-1], model)
    return written[0] if written else None
