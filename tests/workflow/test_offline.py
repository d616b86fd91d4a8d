"""Compute nodes are often offline: nothing in brainpad may download anything.

Two checks: no source file has a download path (network modules, nilearn's ``fetch_*``
dataset downloaders, URLs handed to a reader), and the socket block works. Every
Snakemake run of the test suite (``conftest.snakemake``: the whole tiny workflow, the
fault and rerun tests) runs with every proxy variable unset and that block in place, in
Snakemake and in every job it starts.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, offline_env

NETWORK_MODULES = {"urllib.request", "requests", "httpx", "urllib3", "http.client", "ftplib"}
SOURCES = sorted((REPO / "src/brainpad").rglob("*.py"))
RULE_FILES = [REPO / "Snakefile", *sorted((REPO / "workflow/rules").glob("*.smk"))]
PROXY_VARIABLES = ("http_proxy", "https_proxy", "ftp_proxy", "all_proxy", "no_proxy")


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


def test_the_socket_block_works(tmp_path):
    code = "import socket; socket.create_connection(('pypi.org', 443), timeout=1)"
    result = subprocess.run(
        [sys.executable, "-c", code], env=offline_env(), capture_output=True, text=True
    )
    assert result.returncode != 0 and "offline test" in result.stderr
