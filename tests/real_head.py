"""pycortex's real T1w head scan from PyPI: the real-head tests and benchmarks/real_head.py."""

from __future__ import annotations

import json
from pathlib import Path

REAL_HEAD = {
    "package": "pycortex",
    "version": "1.4.0",
    "sha256": "9fdb292a2df96bba6087ee07d428969ba1eb07ed03724bcfaca96ec8e28a5fd5",
    "member": "pycortex-1.4.0/filestore/db/S1/anatomicals/raw.nii.gz",
}
"""One real subject's 1 mm T1w head (with neck and skull, LIA, uint8), as pycortex's
source distribution on PyPI ships it."""


def fetch_real_head(cache: Path) -> Path:
    """pycortex's real T1w head, downloaded once from PyPI into ``cache``.

    The source distribution (70 MB) is checked against its published SHA-256 and only the
    one scan is kept. Raises OSError when PyPI cannot be reached.
    """
    import hashlib
    import tarfile
    import tempfile
    import urllib.parse
    import urllib.request

    scan = cache / f"pycortex-{REAL_HEAD['version']}-S1-raw_T1w.nii.gz"
    if scan.is_file():
        return scan
    api = f"https://pypi.org/pypi/{REAL_HEAD['package']}/json"
    with urllib.request.urlopen(api, timeout=30) as response:
        files = json.load(response)["releases"][REAL_HEAD["version"]]
    sdist = next(u for u in files if u["packagetype"] == "sdist")
    url = urllib.parse.urljoin(api, sdist["url"])
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "sdist.tar.gz"
        urllib.request.urlretrieve(url, archive)
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        if digest != REAL_HEAD["sha256"]:
            msg = f"{url}: SHA-256 {digest} is not the release's {REAL_HEAD['sha256']}"
            raise ValueError(msg)
        with tarfile.open(archive) as tar:
            source = tar.extractfile(REAL_HEAD["member"])
            cache.mkdir(parents=True, exist_ok=True)
            scan.with_suffix(".part").write_bytes(source.read())
    scan.with_suffix(".part").rename(scan)
    return scan
