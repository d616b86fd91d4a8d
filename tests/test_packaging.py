"""The package as users install it: a wheel (not this checkout) that validates a BIDS
dataset and predicts without the workflow's extras."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
from pathlib import Path

import pytest

from conftest import REPO

WORKFLOW_ONLY = ("snakemake", "snakemake_executor_plugin_slurm", "captum", "neuroCombat")
BLOCKER = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {WORKFLOW_ONLY!r}:
            raise ImportError(f"{{name}} is a workflow extra, not installed")
sys.meta_path.insert(0, Block())
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with brainpad's wheel installed (its dependencies borrowed from this
    venv's site-packages, where this checkout's editable install is not seen), and the
    workflow's extras made unimportable. Returns its bin folder."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*build, "-w", str(root / "dist"), str(source)], check=True)
    env = root / "venv"
    venv.create(env, with_pip=False)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(env), "platbase": str(env)}))
    borrowed = sysconfig.get_path("purelib")
    (site / "borrowed.pth").write_text(f"{borrowed}\n")  # a plain path: its .pth not read
    (site / "block_extras.pth").write_text("import block_extras\n")
    (site / "block_extras.py").write_text(BLOCKER)
    install = [str(env / "bin/python"), "-m", "pip", "install", "--no-deps", "--no-index", "-q"]
    subprocess.run([*install, *map(str, (root / "dist").glob("*.whl"))], check=True)
    return env / "bin"


def run(bin_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / "brainpad"), *args], capture_output=True, text=True)


def test_the_wheel_validates_a_bids_dataset(installed, make_bids, tmp_path):
    where = subprocess.run(
        [str(installed / "python"), "-c", "import brainpad; print(brainpad.__file__)"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert str(installed.parent) in where and str(REPO) not in where
    root = make_bids()
    out = tmp_path / "out"
    argv = ["validate", "--bids-dir", str(root), "--manifest", str(out / "manifest.tsv"),
            "--skipped", str(out / "skipped.tsv")]  # fmt: skip
    result = run(installed, *argv)
    assert result.returncode == 0, result.stderr
    assert len((out / "manifest.tsv").read_text().splitlines()) == 4  # header + 3 scans
    (root / "participants.tsv").write_text("participant_id\tage\nsub-01\told\n")
    result = run(installed, *argv)
    assert result.returncode == 2 and "age 'old' is not a number" in result.stderr
    assert "Traceback" not in result.stderr


def test_predict_needs_none_of_the_workflow_extras(installed):
    result = run(installed, "predict", "--help")
    assert result.returncode == 0, result.stderr
    assert "--bundle" in result.stdout and "--participant-label" in result.stdout
    python = str(installed / "python")
    modules = "brainpad.bundle.apply, brainpad.bundle.summary, brainpad.models, brainpad.preprocess"
    imported = subprocess.run([python, "-c", f"import {modules}"], capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr  # what predict runs
    blocked = subprocess.run([python, "-c", "import captum"], capture_output=True, text=True)
    assert "workflow extra" in blocked.stderr  # the blocker holds


def test_the_licence_file_matches_pyproject():
    licence = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"]
    assert licence == "MIT"
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
