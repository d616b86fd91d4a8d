"""The simulated scanner: field of view, pose, contrast, bias field, noise and storage.

A site is described by :class:`Site`. An acquisition samples the subject's anatomy (given
as a function from scanner millimetres to template voxel coordinates) on the site's grid,
mixes tissue probabilities into a T1w or FLAIR contrast, multiplies a smooth bias field,
adds Rician noise at the site's SNR and stores the image as int16 in the site's voxel
orientation (RAS, LPS, LAS, ...), so that reorientation and resampling are exercised.
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np
from nibabel import orientations

HEAD_CENTRE_MM = np.array([0.0, -18.0, 12.0])  # roughly the brain's centre in MNI space
FIELD_OF_VIEW_MM = np.array([216.0, 252.0, 216.0])

# Relative tissue intensities per contrast (white matter = 1 in T1w).
CONTRASTS = {
    "T1w": {"gm": 0.60, "wm": 1.00, "csf": 0.18, "lesion": 0.50, "skull": 0.06, "scalp": 0.85},
    "FLAIR": {"gm": 0.80, "wm": 0.62, "csf": 0.08, "lesion": 1.30, "skull": 0.05, "scalp": 0.55},
}
GM_FADING_PER_YEAR = 0.002  # T1w grey matter brightens with age: grey/white contrast fades


@dataclass(frozen=True)
class Site:
    """Acquisition settings of one simulated scanner.

    Attributes
    ----------
    name : str
        Site label (written to participants/sessions tables).
    voxel_scale : tuple of float
        Voxel edge per axis (R, A, S) as a multiple of the working voxel size.
    orientation : str
        Stored axis codes, e.g. ``"RAS"``, ``"LPS"``, ``"LAS"``.
    snr : float
        White-matter signal over noise SD.
    intensity_scale : float
        Stored value of white matter.
    bias_strength : float
        Amplitude of the log bias field (0.2 ≈ ±20 %).
    skull : bool
        Whether skull and scalp are in the image (else brain-extracted).
    gm_contrast : float
        Grey-white contrast as a multiple of the default (the grey-matter level moves
        towards white matter below 1): a site effect on contrast.
    blur_fwhm_mm : float
        Gaussian blur of the image before noise (the scanner's point spread): a site
        effect on resolution.
    """

    name: str
    voxel_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    orientation: str = "RAS"
    snr: float = 30.0
    intensity_scale: float = 1000.0
    bias_strength: float = 0.2
    skull: bool = False
    gm_contrast: float = 1.0
    blur_fwhm_mm: float = 0.0

    @classmethod
    def from_config(cls, entry: dict) -> Site:
        """Build a site from one entry of ``simulation.sites`` in the config."""
        values = dict(entry)
        values["voxel_scale"] = tuple(float(v) for v in values.get("voxel_scale", (1, 1, 1)))
        return cls(**values)


def acquisition_grid(site: Site, working_voxel: float) -> tuple[tuple[int, ...], np.ndarray]:
    """Shape and RAS affine of the site's field of view around the head centre."""
    zooms = np.asarray(site.voxel_scale) * working_voxel
    shape = tuple(int(n) for n in np.ceil(FIELD_OF_VIEW_MM / zooms))
    affine = np.diag([*zooms, 1.0])
    affine[:3, 3] = HEAD_CENTRE_MM - zooms * (np.array(shape) - 1) / 2.0
    return shape, affine


def _rotation(angles_rad: np.ndarray) -> np.ndarray:
    cx, cy, cz = np.cos(angles_rad)
    sx, sy, sz = np.sin(angles_rad)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def random_pose(rng: np.random.Generator, max_degrees: float, max_mm: float) -> dict:
    """A random rigid head pose: rotation angles (degrees) and translation (mm)."""
    return {
        "rotation_deg": rng.uniform(-max_degrees, max_degrees, 3),
        "translation_mm": rng.uniform(-max_mm, max_mm, 3),
    }


def pose_matrix(pose: dict) -> np.ndarray:
    """4×4 matrix moving a head from template position to its pose in the scanner."""
    rot = _rotation(np.deg2rad(pose["rotation_deg"]))
    matrix = np.eye(4)
    matrix[:3, :3] = rot
    matrix[:3, 3] = HEAD_CENTRE_MM - rot @ HEAD_CENTRE_MM + pose["translation_mm"]
    return matrix


def bias_field(points_mm: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Smooth multiplicative field exp(strength · quadratic polynomial) at points (3, N)."""
    centred = (points_mm - HEAD_CENTRE_MM[:, None]) / 100.0
    linear = rng.normal(0, 1, 3) @ centred
    quad = np.einsum("in,ij,jn->n", centred, rng.normal(0, 0.5, (3, 3)), centred)
    log_field = linear + quad
    log_field /= max(float(np.abs(log_field).max()), 1e-6)
    return np.exp(strength * log_field).astype(np.float32)


def contrast_image(
    tissues: dict[str, np.ndarray], modality: str, age: float, gm_contrast: float = 1.0
) -> np.ndarray:
    """Mix tissue fractions into one noise-free image (white matter = 1 for T1w); with
    ``gm_contrast`` ≠ 1 the grey-white difference is scaled by it (a site's contrast)."""
    levels = dict(CONTRASTS[modality])
    if modality == "T1w":
        levels["gm"] += GM_FADING_PER_YEAR * (age - 25.0)
    if gm_contrast != 1.0:  # (the default leaves the levels bit for bit)
        levels["gm"] = levels["wm"] - gm_contrast * (levels["wm"] - levels["gm"])
    return sum(levels[k] * tissues[k] for k in tissues if k in levels)


def blurred(image: np.ndarray, zooms: np.ndarray, fwhm_mm: float) -> np.ndarray:
    """``image`` (on a grid of voxel edges ``zooms`` mm) smoothed by a Gaussian of
    ``fwhm_mm`` (a site's point spread); unchanged for 0."""
    if fwhm_mm <= 0:
        return image
    from scipy import ndimage

    sigma = fwhm_mm / (2 * np.sqrt(2 * np.log(2))) / np.asarray(zooms, float)
    return ndimage.gaussian_filter(image, sigma).astype(image.dtype)


def rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the signal plus complex Gaussian noise of SD ``sigma``."""
    real = signal + rng.normal(0.0, sigma, signal.shape)
    imag = rng.normal(0.0, sigma, signal.shape)
    return np.hypot(real, imag).astype(np.float32)


def store(data_ras: np.ndarray, affine_ras: np.ndarray, site: Site) -> nib.Nifti1Image:
    """Scale to int16 and reorder the voxel axes to the site's orientation."""
    target = orientations.axcodes2ornt(tuple(site.orientation))
    transform = orientations.ornt_transform(orientations.axcodes2ornt(("R", "A", "S")), target)
    data = orientations.apply_orientation(data_ras, transform)
    affine = affine_ras @ orientations.inv_ornt_aff(transform, data_ras.shape)
    scaled = np.clip(np.rint(data * site.intensity_scale), 0, np.iinfo(np.int16).max)
    img = nib.Nifti1Image(scaled.astype(np.int16), affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    return img
