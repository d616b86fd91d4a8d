"""The HTML report as a real browser shows it: headless Chromium screenshots
(``brainpad screenshot``).

Snakemake's report is a single-page application: a category opens when the reader clicks
it, and no address opens one. To photograph a category and one of its figures, a copy of
the report gets one line of script at its end that calls the report's own
``app.showCategory`` and ``app.setView`` (what clicking the figure's eye does) once the
page has loaded; Chromium renders that copy headless and writes the screenshot. Chromium comes
from Debian (``apt-get install chromium``; ``make screenshot-deps``); nothing is fetched
(background networking is off: this machine has no network).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def find_browser() -> str | None:
    """The path of a Chromium-type browser on PATH, or None."""
    for name in BROWSERS:
        if found := shutil.which(name):
            return found
    return None


def _opened(html: str, category: str | None, figure: str | None) -> str:
    """The report with a script that opens ``category`` and shows ``figure`` (its path in
    the report, e.g. ``results/report/relevance.png``) after loading; neither: the front
    page."""
    if category is None and figure is None:
        return html
    steps = []
    if category is not None:
        steps.append(f"app.showCategory({json.dumps(category)});")
    if figure is not None:
        path = json.dumps(figure)
        steps.append(
            f"app.setView({{content: 'img', contentPath: results[{path}].data_uri, "
            f"resultPath: {path}}});"
        )
    script = (
        "<script>window.addEventListener('load', () => setTimeout(() => {"
        + " ".join(steps)
        + "}, 200));</script>"
    )
    head, tag, tail = html.rpartition("</body>")  # the last one: scripts quote the tag too
    return head + script + tag + tail if tag else html + script


def screenshot(
    report: str | Path,
    out: str | Path,
    category: str | None = None,
    figure: str | None = None,
    size: tuple[int, int] = (1400, 1000),
    browser: str | None = None,
    timeout: float = 120.0,
) -> Path:
    """Render ``report`` in headless Chromium and save a PNG: the front page, or opened at
    ``category`` and showing ``figure`` (its path in the report).

    Raises
    ------
    InputError
        When no browser is installed (the message says how to install one), the report
        does not exist or has no such figure, or the browser writes no screenshot (its
        error output is in the message).
    """
    from brainpad.inputs.errors import InputError

    report, out = Path(report), Path(out)
    if not report.is_file():
        msg = f"{report}: no such report; run `snakemake --report {report}` first"
        raise InputError(msg)
    browser = browser or find_browser()
    if browser is None:
        msg = "no Chromium found (chromium, chromium-browser); install it: make screenshot-deps"
        raise InputError(msg)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        html = report.read_text(errors="replace")
        if figure is not None and f'"{figure}"' not in html:
            msg = f"{report} has no figure {figure}; give a path the report lists"
            raise InputError(msg)
        page.write_text(_opened(html, category, figure))
        command = [
            browser,
            *FLAGS,
            f"--user-data-dir={tmp}/profile",
            f"--window-size={size[0]},{size[1]}",
            "--virtual-time-budget=5000",  # let the page's scripts run before the shot
            f"--screenshot={out.resolve()}",
            page.as_uri(),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if not out.is_file():
        msg = f"{browser} wrote no screenshot (exit {result.returncode}): {result.stderr[-1500:]}"
        raise InputError(msg)
    return out
