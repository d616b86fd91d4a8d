"""The report in a headless browser: the script that opens a figure, and clear errors."""

from __future__ import annotations

import pytest

from brainpad.inputs.errors import InputError
from brainpad.report import screenshot as shots


def test_the_figure_script_goes_before_the_last_body_tag():
    html = "<html><body><script>var s = '</body>';</script></body></html>"
    opened = shots._opened(html, "Interpretability", "results/report/relevance.png")
    head, _, tail = opened.partition("<script>window")
    assert head.startswith("<html><body><script>var s = '</body>'")  # the quoted tag kept
    assert tail.endswith("</script></body></html>")
    assert 'app.showCategory("Interpretability")' in opened
    assert 'results["results/report/relevance.png"].data_uri' in opened
    assert shots._opened(html, None, None) == html


def test_missing_browser_report_or_figure_say_what_to_do(tmp_path, monkeypatch):
    report = tmp_path / "report.html"
    with pytest.raises(InputError, match="no such report; run `snakemake --report"):
        shots.screenshot(report, tmp_path / "out.png")
    report.write_text('<html><body>{"results/report/qc.png": 1}</body></html>')
    monkeypatch.setattr(shots.shutil, "which", lambda name: None)
    with pytest.raises(InputError, match=r"no Chromium found .* make screenshot-deps"):
        shots.screenshot(report, tmp_path / "out.png")
    with pytest.raises(InputError, match=r"has no figure results/report/x\.png"):
        shots.screenshot(report, tmp_path / "out.png", figure="results/report/x.png",
                         browser="/bin/true")  # fmt: skip
