"""Compute nodes are often offline: nothing in brainpad may download anything.

Two checks: no source file has a download path (network modules, nilearn's ``fetch_*``
dataset downloaders, URLs handed to a reader), and the commands that read packaged
templates and atlases run with every proxy variable unset and sockets disabled.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

NETWORK_MODULES = {"urllib.request", "requests", "httpx", "urllib3", "http.client", "ftplib"}
SOURCES = sorted((REPO / "src/brainpad").rglob("*.py"))
RULE_FILES = [REPO / "Snakefile", *sorted((REPO / "workflow/rules").glob("*.smk"))]
PROXY_VARIABLES = ("http_proxy", "https_proxy", "ftp_proxy", "all_proxy", "no_proxy")

BLOCK_SOCKETS = """
import socket

def _refuse(*args, **kwargs):
    raise OSError("network access attempted in an offline test")

socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.create_connection = _refuse
socket.getaddrinfo = _refuse
"""


def imported_modules(path: Path) -> set[str]:
    """Every module a Python file imports."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_source_module_can_download(path):
    modules = imported_modules(path)
    assert not modules & NETWORK_MODULES, modules & NETWORK_MODULES
    calls = re.findall(r"\bfetch_\w+\s*\(", path.read_text())
    assert not calls, f"{path.name} calls a dataset downloader: {calls}"


def test_no_rule_fetches_remote_files():
    for path in RULE_FILES:
        text = path.read_text()
        assert "storage." not in text and "HTTP" not in text, path.name
        assert not re.search(r"https?://", text), f"{path.name} names a URL"


def offline_env(tmp_path: Path) -> dict[str, str]:
    """The environment with proxies unset and a sitecustomize that refuses sockets."""
    site = tmp_path / "offline_site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCK_SOCKETS)
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in PROXY_VARIABLES and not k.startswith("SNAKEMAKE")
    }
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def test_the_socket_block_works(tmp_path):
    code = "import socket; socket.create_connection(('pypi.org', 443), timeout=1)"
    result = subprocess.run(
        [sys.executable, "-c", code], env=offline_env(tmp_path), capture_output=True, text=True
    )
    assert result.returncode != 0 and "offline test" in result.stderr


def test_templates_and_simulation_run_offline(tmp_path):
    env = offline_env(tmp_path)
    brainpad = [sys.executable, "-m", "brainpad"]
    steps = [
        [*brainpad, "templates", "--out-dir", str(tmp_path / "tpl"), "--voxel-size", "4"],
        [
            *brainpad, "simulate", "--out-dir", str(tmp_path / "bids"), "--seed", "3",
            "--settings", '{"n_subjects": 2, "voxel_size": 4.0, "n_test_retest": 0,'
            ' "n_between_site": 0, "modalities": ["T1w"]}',
        ],
    ]  # fmt: skip
    for command in steps:
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
    assert any((tmp_path / "tpl").glob("*atlas-HarvardOxford_dseg.nii.gz"))
    assert (tmp_path / "bids/participants.tsv").is_file()
