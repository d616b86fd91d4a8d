"""Shared fixtures: a tiny simulated cohort and a factory for small hand-made BIDS datasets."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brainpad.simulate import Settings, simulate_cohort

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "n_subjects": 8,
    "voxel_size": 4.0,
    "n_test_retest": 1,
    "n_between_site": 1,
    "modalities": ["T1w", "FLAIR"],
}


@pytest.fixture(scope="session")
def tiny_settings() -> Settings:
    """Settings of the tiny cohort: 8 subjects at 4 mm, one test-retest and one cross-site pair."""
    return Settings.from_config({"seed": 7, "simulation": TINY})


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory: pytest.TempPathFactory, tiny_settings: Settings) -> Path:
    """The tiny simulated cohort as a BIDS dataset (built once per test session)."""
    root = tmp_path_factory.mktemp("cohort") / "bids"
    simulate_cohort(tiny_settings, root, threads=2)
    return root


def write_image(path: Path, data: np.ndarray, zooms=(2.0, 2.0, 2.0)) -> Path:
    """Save ``data`` as NIfTI with the given voxel sizes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    affine = np.diag([*zooms, 1.0]) if len(zooms) == 3 else np.eye(4)
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def brain_like(shape=(12, 12, 12), seed: int = 0) -> np.ndarray:
    """A small positive 3D volume."""
    return np.random.default_rng(seed).uniform(10, 100, shape).astype(np.float32)


@pytest.fixture
def make_bids(tmp_path: Path) -> Callable[..., Path]:
    """Factory for a small valid BIDS dataset; tests then break one thing in it.

    ``make_bids(rows=...)`` takes participants.tsv rows as lists of cells (header first)
    and creates a T1w scan for every listed subject unless ``scans=False``.
    """

    def factory(
        rows: list[list[str]] | None = None, scans: bool = True, sessions: tuple[str, ...] = ("",)
    ) -> Path:
        root = tmp_path / "bids"
        root.mkdir()
        (root / "dataset_description.json").write_text(
            json.dumps({"Name": "test", "BIDSVersion": "1.9.0"})
        )
        rows = rows or [
            ["participant_id", "age", "sex", "site", "group", "mmse"],
            ["sub-01", "34.5", "F", "s1", "HC", "29"],
            ["sub-02", "71", "male", "s2", "AD", "21"],
            ["sub-03", "66.2", "M", "s1", "sMCI", "n/a"],
        ]
        (root / "participants.tsv").write_text("\n".join("\t".join(r) for r in rows) + "\n")
        if scans:
            for k, row in enumerate(rows[1:]):
                for ses in sessions:
                    sub = row[0]
                    folder = root / sub / (f"ses-{ses}" if ses else "") / "anat"
                    name = f"{sub}_ses-{ses}_T1w.nii.gz" if ses else f"{sub}_T1w.nii.gz"
                    write_image(folder / name, brain_like(seed=k))
        return root

    return factory


@pytest.fixture(scope="session")
def templates_4mm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Template, priors and atlas written at 4 mm (as the mni_templates rule does)."""
    from brainpad.templates import write_template_files

    directory = tmp_path_factory.mktemp("templates")
    write_template_files(directory, 4.0)
    return directory
