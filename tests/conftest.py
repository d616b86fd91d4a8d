"""Shared fixtures: a tiny simulated cohort and a factory for small hand-made BIDS datasets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

from brainpad.simulate import Settings, simulate_cohort
from real_head import fetch_real_head

REPO = Path(__file__).resolve().parents[1]
# fixtures that simulate a cohort or run ANTs: a test using one is marked slow
SLOW_FIXTURES = {"tiny_cohort", "preprocessed", "templates_4mm", "real_head"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark slow every test that builds a cohort or runs ANTs (`-m "not slow"` skips them)."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


TINY = {
    "n_subjects": 8,
    "voxel_size": 4.0,
    "n_test_retest": 1,
    "n_between_site": 1,
    "modalities": ["T1w", "FLAIR"],
}


SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
TINY_CONFIG = {
    "bids_dir": "simulated",
    "modalities": ["T1w", "FLAIR"],
    "simulation": {
        "n_subjects": 13,  # 10 controls: 5 training ones beside the unlabelled one
        "voxel_size": 4.0,
        "n_test_retest": 1,
        "n_between_site": 1,
        "unlabelled_fraction": 0.1,  # one control without an age: diffae's unlabelled scan
    },
    "unlabelled": "use",
    "preprocess": {"voxel_size": 4.0, "syn_iterations": [30, 10]},
    "folds": {"k": 2},
    "models": {  # every architecture, inputs, a region and sub-ensemble members
        "names": ["ridge_roi", "vgg3d", "sfcn", "cnn3d", "cnn2d", "diffae", "local_unet"],
        "vgg3d": {
            "widths": [4, 8],
            "dense": [8],
            "downsample": 2,
            "max_epochs": 2,
            "inputs": ["t1w", "flair"],
        },
        "sfcn": {"widths": [4, 8], "head_width": 4, "bins": 20, "max_epochs": 2, "augment": 1},
        "cnn3d": {
            "filters": [4, 4],
            "kernels": [3, 1],
            "dense": 8,
            "max_epochs": 2,
            "regions": ["whole", "cortex"],
            "members": 2,
        },
        "cnn2d": {"widths": [4, 8], "dense": 8, "max_epochs": 2},
        "diffae": {
            "image_size": 16,
            "widths": [8, 8, 16],
            "res_blocks": 1,
            "groups": 4,
            "latent": 16,
            "head": [8],
            "max_epochs": 2,
        },
        "local_unet": {  # 28^3 -> 12^3 blocks: few tiles, a quick inference
            "width": 4,
            "bottleneck": 8,
            "batch_size": 4,
            "iterations_per_epoch": 3,
            "max_epochs": 2,
            "validation_blocks": 2,
            "tile_overlap": 0,
            "mix_fraction": 0.5,
        },
    },
    "debias": {
        "voxel_calibration": "calibration+out_of_fold",
        "global_calibration": "calibration+out_of_fold",
    },
    "interpret": {"n_perm": 10, "downsample": 2},
    "harmonise": {"enabled": True},  # ComBat: 2 training controls per site, its fewest
}
N_SCANS = 15  # 13 subjects + a test-retest and a between-site repeat
TINY_BASE_MODELS = [
    "ridge_roi", "vgg3d-t1w", "vgg3d-flair", "sfcn", "cnn3d-1", "cnn3d-2", "cnn3d-cortex-1",
    "cnn3d-cortex-2", "cnn2d", "diffae-t1w", "local_unet",
]  # fmt: skip
"""The base models TINY_CONFIG trains."""

_TRAINING = {
    "batch_size": 4,
    "learning_rate": 0.003,
    "max_epochs": 3,
    "patience": 10,
    "validation_fraction": 0.125,
}
NETWORK_PARAMS = {
    "vgg3d": {"widths": [4, 8], "dense": [16], **_TRAINING, "max_epochs": 4},
    "sfcn": {
        "widths": [4, 8],
        "head_width": 8,
        "bins": 20,
        "label_sd": 1.0,
        "dropout": 0.5,
        **_TRAINING,
        "augment": 1,
    },
    "cnn3d": {"filters": [4, 4, 8], "kernels": [3, 3, 1], "dense": 8, "dropout": 0.5, **_TRAINING},
    "cnn2d": {"widths": [4, 8], "dense": 8, **_TRAINING},
    "diffae": {
        "image_size": 16,
        "slices": 1,
        "widths": [8, 8, 16],
        "res_blocks": 1,
        "groups": 4,
        "latent": 16,
        "head": [8],
        "dropout": 0.1,
        "timesteps": 50,
        "age_weight": 1.0,
        **_TRAINING,
    },
    "local_unet": {
        "width": 4,
        "levels": 1,
        "bottleneck": 3,
        "batch_size": 4,
        "learning_rate": 0.003,
        "iterations_per_epoch": 3,
        "max_epochs": 2,
        "patience": 5,
        "aux_weights": [0.5, 0.25],
        "aux_decay_iterations": 4,
        "validation_fraction": 0.125,
        "validation_blocks": 2,
        "tile_overlap": 0.5,
        "standardise": True,
        "heldout_models": "one",
        "lr_decay": "cosine",
        "mix_fraction": 0.0,
        "mix_edge_mm": 3.0,
        "selection": "scan",
    },
}
"""Small settings of every network for unit tests (each trains in seconds on the CPU)."""

PROXY_VARIABLES = ("http_proxy", "https_proxy", "ftp_proxy", "all_proxy", "no_proxy")
OFFLINE_SITE = Path(__file__).resolve().parent / "offline_site"  # its sitecustomize.py


def offline_env() -> dict[str, str]:
    """The environment with proxies unset and a sitecustomize that refuses sockets.

    Every Python process started with it (Snakemake, and each job's ``brainpad``) fails
    on any attempt to open a network connection.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in PROXY_VARIABLES and not k.startswith("SNAKEMAKE")
    }
    paths = [str(OFFLINE_SITE), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(paths).rstrip(os.pathsep)
    return env


def snakemake_command(workdir: Path, config: dict, *args: str) -> list[str]:
    """The Snakemake command line for ``workdir`` with ``config`` (written to its config.yaml),
    with the local profile as `make demo` runs it (a ``--profile`` in ``args`` replaces it)."""
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    return [
        *SNAKEMAKE,
        "--profile",
        str(REPO / "profiles/local"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--cores",
        "2",
        *args,
    ]


def snakemake(
    workdir: Path, config: dict, *args: str, timeout: int = 900, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run the workflow in ``workdir`` with ``config``, offline (:func:`offline_env`).

    ``env`` adds or replaces environment variables (e.g. a PYTHONPATH with a fault to
    inject, whose sitecustomize must then load the offline one itself).
    """
    # `timeout -k` kills Snakemake and its jobs, so a hang fails the test instead of CI
    command = ["timeout", "-k", "10", str(timeout), *snakemake_command(workdir, config, *args)]
    environment = offline_env() | (env or {})
    return subprocess.run(command, capture_output=True, text=True, env=environment)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny simulated workflow run locally to the end (shared by the workflow tests)."""
    workdir = tmp_path_factory.mktemp("workflow")
    result = snakemake(workdir, TINY_CONFIG)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.fixture(scope="session")
def real_head(request: pytest.FixtureRequest) -> Path:
    """pycortex's real 1 mm T1w head scan (cached in pytest's cache folder), or a skip
    that says why."""
    try:
        return fetch_real_head(Path(request.config.cache.mkdir("real_head")))
    except OSError as err:  # URLError and timeouts included
        pytest.skip(f"PyPI cannot be reached for pycortex's real T1w head ({err})")


@pytest.fixture
def frozen_gc() -> Iterator[None]:
    """Objects alive before the test kept out of garbage collections, as the CLI does
    (:func:`brainpad.cli.common.freeze_gc`): nilearn collects on every image it reads, and
    with pytest and torch loaded each collection would take most of a TFCE test's time."""
    import gc

    gc.freeze()
    yield
    gc.unfreeze()


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


@pytest.fixture(scope="session")
def synthetic_folds() -> pd.DataFrame:
    """A folds.tsv-like table: 50 controls (3 folds + calibration + test), 12 patients.

    Every participant has one scan, except two controls with a repeat session.
    """
    from brainpad.cohort.folds import assign_roles

    rng = np.random.default_rng(3)
    n_hc, n_pat = 50, 12
    people = pd.DataFrame(
        {
            "participant_id": [f"sub-{i:03d}" for i in range(n_hc + n_pat)],
            "age": np.r_[rng.uniform(20, 85, n_hc), rng.uniform(60, 90, n_pat)].round(1),
            "site": rng.choice(["s1", "s2"], n_hc + n_pat),
            "group": ["HC"] * n_hc + ["AD"] * (n_pat // 2) + ["MCI"] * (n_pat - n_pat // 2),
            "qc_passed": True,
        }
    )
    roles = assign_roles(people, "HC", n_folds=3, seed=1)
    table = people.merge(roles, on="participant_id")
    table["scan_id"] = table["participant_id"] + "_ses-1"
    repeats = (
        table[table["role"] == "train"]
        .head(2)
        .assign(scan_id=lambda t: t["participant_id"] + "_ses-2")
    )
    table = pd.concat([table, repeats], ignore_index=True)
    table["sex"] = "F"
    table["session"] = table["scan_id"].str[-5:]
    return table.sort_values("scan_id").reset_index(drop=True)


@pytest.fixture(scope="session")
def synthetic_truth(synthetic_folds: pd.DataFrame) -> pd.DataFrame:
    """Simulation-style truth for :func:`synthetic_folds`: AD ages 5 y faster, MCI 2 y."""
    people = synthetic_folds.drop_duplicates("participant_id").set_index("participant_id")
    offset = people["group"].map({"HC": 0.0, "AD": 5.0, "MCI": 2.0})
    offset += np.random.default_rng(4).normal(0, 3, len(people))
    return pd.DataFrame({"true_brain_pad": offset, "true_brain_age": people["age"] + offset})


@pytest.fixture(scope="session")
def synthetic_inputs(
    tmp_path_factory: pytest.TempPathFactory,
    synthetic_folds: pd.DataFrame,
    synthetic_truth: pd.DataFrame,
) -> dict[str, Path]:
    """folds.tsv, an ROI table and tiny volume and slice arrays whose anatomy shrinks with age."""
    from brainpad.paths import array_files

    root = tmp_path_factory.mktemp("synthetic")
    folds = synthetic_folds
    bio_age = synthetic_truth.loc[folds["participant_id"], "true_brain_age"].to_numpy()
    rng = np.random.default_rng(5)
    rois = pd.DataFrame({"scan_id": folds["scan_id"]})
    for k in range(6):
        rois[f"GM_roi{k}"] = 5000 - (10 + 5 * k) * bio_age + rng.normal(0, 60, len(folds))
    files = array_files(root / "arrays")
    files["volumes"].parent.mkdir()
    shape = (10, 12, 10)
    grid = np.linalg.norm(np.indices(shape) - np.array(shape)[:, None, None, None] / 2, axis=0)
    radius = 5.0 - bio_age / 40  # the "brain" shrinks with biological age
    gm = (grid[None] < radius[:, None, None, None]).astype(np.float16)
    volumes = np.stack([gm, 1 - gm], axis=1)
    np.save(files["volumes"], volumes)
    np.save(files["slices"], volumes[..., shape[2] // 2])  # the mid-axial slices
    index = pd.DataFrame({"row": np.arange(len(folds)), "scan_id": folds["scan_id"]})
    index = index.assign(crop_x="2:12", crop_y="1:13", crop_z="0:10")  # of a 14x14x12 grid
    index.to_csv(files["index"], sep="\t", index=False)
    template_mask = np.zeros((14, 14, 12), np.uint8)
    template_mask[2:12, 1:13, 0:10] = grid < 4.5
    write_image(root / "mask.nii.gz", template_mask, zooms=(4.0, 4.0, 4.0))
    folds.to_csv(root / "folds.tsv", sep="\t", index=False)
    rois.to_csv(root / "roi_volumes.tsv", sep="\t", index=False)
    return {
        "folds": root / "folds.tsv",
        "roi": root / "roi_volumes.tsv",
        "mask": root / "mask.nii.gz",
        **files,
    }


LOCAL_REGIONS = ["Left_Hippocampus", "Right_Hippocampus", "Left_Frontal_Pole"]


@pytest.fixture(scope="session")
def local_maps_cohort(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Per-scan local maps with planted effects, as ``brainpad local-maps`` writes them.

    30 controls (8 test, 6 calibration, 16 training), 8 AD and 8 MCI patients on an
    8×8×6 grid with three atlas regions. AD looks 6 y older in Left_Hippocampus (label 1),
    MCI 1.5 y; each participant has a global offset. Eight controls have a second scan:
    four on the same site (noise SD 0.3 y), four on another site (noise SD 1.5 y). The
    Left_Hippocampus grey-matter volume shrinks as its brain-PAD grows. The truth folder
    holds an AD map accelerated 8 in label 1 and 3 elsewhere, on a grid 2 voxels wider, with
    the region map and exact regional volumes (1 % anatomical noise) that go with it.
    """
    from brainpad.paths import map_paths

    root = tmp_path_factory.mktemp("local_maps")
    rng = np.random.default_rng(11)
    shape, affine = (8, 8, 6), np.diag([4.0, 4.0, 4.0, 1.0])
    mask = np.zeros(shape, np.uint8)
    mask[1:7, 1:7, 1:5] = 1
    atlas = np.zeros(shape, np.int16)
    atlas[1:4, 1:7, 1:5], atlas[4:7, 1:4, 1:5], atlas[4:7, 4:7, 1:5] = 1, 2, 3
    nib.save(nib.Nifti1Image(mask, affine), root / "mask.nii.gz")
    nib.save(nib.Nifti1Image(atlas, affine), root / "atlas.nii.gz")
    labels = pd.DataFrame({"label": [1, 2, 3], "name": LOCAL_REGIONS})
    labels.to_csv(root / "labels.tsv", sep="\t", index=False)

    groups = ["HC"] * 30 + ["AD"] * 8 + ["MCI"] * 8
    roles = ["test"] * 8 + ["calibration"] * 6 + ["train"] * 16 + ["clinical"] * 16
    people = pd.DataFrame(
        {
            "participant_id": [f"sub-{i:03d}" for i in range(len(groups))],
            "group": groups,
            "role": roles,
            "age": np.r_[np.linspace(22, 84, 30), rng.uniform(62, 88, 16)].round(1),
            "site": "s1",
        }
    )
    people["scan_id"] = people["participant_id"] + "_ses-1"
    effect = {"HC": 0.0, "AD": 6.0, "MCI": 1.5}
    rows, volumes = [], []
    for person in people.itertuples():
        base = rng.normal(0, 2) + rng.normal(0, 1, shape)
        base[atlas == 1] += effect[person.group] + rng.normal(0, 0.5)
        repeats = [(person.scan_id, person.site, 0.0)]
        if person.group == "HC" and person.role == "train" and person.Index < 22:
            site, noise = ("s1", 0.3) if person.Index < 18 else ("s2", 1.5)
            repeats.append((f"{person.participant_id}_ses-2", site, noise))
        for scan_id, site, noise in repeats:
            pad = base + rng.normal(0, noise, shape) if noise else base
            paths = map_paths(root / "maps", scan_id)
            paths["brainage"].parent.mkdir(parents=True, exist_ok=True)
            for kind, values in (
                ("brainage", person.age + pad),
                ("brainPAD", pad),
                ("brainPADcorrected", pad),
            ):
                values = np.where(mask > 0, values, np.nan).astype(np.float32)
                nib.save(nib.Nifti1Image(values, affine), paths[kind])
            rows.append({**person._asdict(), "scan_id": scan_id, "site": site})
            hippocampus = float(pad[atlas == 1].mean())
            volumes.append(
                {
                    "scan_id": scan_id,
                    **{
                        f"GM_{n}": 3000.0
                        - 150 * hippocampus * (n == LOCAL_REGIONS[0])
                        + rng.normal(0, 50)
                        for n in LOCAL_REGIONS
                    },
                    **{f"WM_{n}": 500.0 + rng.normal(0, 20) for n in LOCAL_REGIONS},
                    **{f"CSF_{n}": 100.0 + rng.normal(0, 10) for n in LOCAL_REGIONS},
                }
            )
    folds = pd.DataFrame(rows).drop(columns="Index").sort_values("scan_id")
    folds.to_csv(root / "folds.tsv", sep="\t", index=False)
    pd.DataFrame(volumes).to_csv(root / "roi_volumes.tsv", sep="\t", index=False)

    truth = root / "truth"
    truth.mkdir()
    regions = pd.DataFrame(
        {"region": [1, 2, 3], "name": LOCAL_REGIONS, "acceleration_AD": [8.0, 3.0, 3.0]}
    )
    regions.to_csv(truth / "regions.tsv", sep="\t", index=False)
    true_map = np.zeros((12, 12, 10), np.float32)
    true_map[2:10, 2:10, 2:8] = np.select([atlas == 1, mask > 0], [8.0, 3.0], 0.0)
    wider = affine.copy()
    wider[:3, 3] = -8.0
    nib.save(
        nib.Nifti1Image(true_map, wider),
        truth / "group-AD_space-MNI152NLin2009aSym_desc-truelocalbrainPAD.nii.gz",
    )
    region_map = np.zeros_like(true_map, dtype=np.int16)
    region_map[2:10, 2:10, 2:8] = np.where(mask > 0, atlas, 0)
    regions_file = truth / "space-MNI152NLin2009aSym_desc-regions_dseg.nii.gz"
    nib.save(nib.Nifti1Image(region_map, wider), regions_file)
    head_scale = rng.normal(1.0, 0.02, len(people))
    subjects = people.assign(true_brain_age=people["age"] + 1.0, head_scale=head_scale)
    subjects.to_csv(truth / "subjects.tsv", sep="\t", index=False)
    # exact regional volumes: ageing rate x local age, head size, 1 % individual anatomy
    local_age = people["age"].to_numpy()[:, None] + np.outer(people["group"] == "AD", [8, 3, 3])
    log_volume = np.log(4000.0) - 0.005 * local_age + 3 * np.log(head_scale)[:, None]
    log_volume += rng.normal(0, 0.01, log_volume.shape)
    true_volumes = pd.DataFrame(np.exp(log_volume), columns=LOCAL_REGIONS)
    true_volumes.insert(0, "participant_id", people["participant_id"])
    true_volumes.to_csv(truth / "roi_volumes.tsv", sep="\t", index=False)
    return {
        "root": root,
        "folds": root / "folds.tsv",
        "maps": root / "maps",
        "mask": root / "mask.nii.gz",
        "atlas": root / "atlas.nii.gz",
        "labels": root / "labels.tsv",
        "roi_volumes": root / "roi_volumes.tsv",
        "truth": truth,
    }


# --- site tables for the harmonisation tests ---------------------------------------------

SHIFT = {"siteA": 0.0, "siteB": 1.5, "siteC": -1.0}
SCALE = {"siteA": 1.0, "siteB": 1.6, "siteC": 0.7}


def _site_cohort(n: int = 90, seed: int = 0, sites=("siteA", "siteB", "siteC")) -> tuple:
    """Three features with a quadratic age effect, a sex effect, a site location and scale,
    and patients (AD) shifted by −1."""
    rng = np.random.default_rng(seed)
    cov = pd.DataFrame(
        {
            "site": rng.choice(list(sites), n),
            "age": rng.uniform(20, 85, n),
            "sex": rng.choice(["F", "M"], n),
            "group": np.where(rng.random(n) < 0.25, "AD", "HC"),
        }
    )
    age = (cov["age"] - 50) / 20
    base = np.column_stack([-0.8 * age - 0.3 * age**2, 0.5 * age, np.zeros(n)])
    base += (cov["sex"] == "M").to_numpy()[:, None] * 0.4
    base += (cov["group"] == "AD").to_numpy()[:, None] * -1.0
    noise = rng.normal(size=(n, 3))
    shift = cov["site"].map(SHIFT).to_numpy()[:, None]
    scale = cov["site"].map(SCALE).to_numpy()[:, None]
    features = pd.DataFrame(base + shift + scale * noise, columns=["hippocampus", "gm", "wm"])
    return features, cov


@pytest.fixture
def site_cohort():
    """``site_cohort(n=90, seed=0, sites=...)`` → (features, covariates): three features
    with a quadratic age effect, sex, a location and scale per site, AD patients at −1."""
    return _site_cohort
