"""The report's front page: cohort, headline figures, software; n/a where too few scans."""

from __future__ import annotations

import numpy as np
import pandas as pd
from docutils.core import publish_parts

from brainpad.report.front import write_front_page


def _tables(tmp_path):
    table = pd.DataFrame(
        {
            "scan_id": ["sub-1_ses-1", "sub-1_ses-2", "sub-2_ses-1", "sub-3_ses-1"],
            "participant_id": ["sub-1", "sub-1", "sub-2", "sub-3"],
            "group": ["HC", "HC", "AD", "HC"],
            "age": [30.0, 30.0, 70.0, 65.0],
            "role": ["train", "train", "clinical", "test"],
            "site": ["siteA", "siteB", "siteA", "siteA"],
        }
    )
    qc = pd.DataFrame({"scan_id": [*table["scan_id"], "sub-4_ses-1"], "passed": [1, 1, 1, 1, 0]})
    stats = tmp_path / "stats"
    stats.mkdir()
    pd.DataFrame(
        {"model": ["ensemble"], "n": [1], "mae": [3.5], "r": [np.nan], "r2": [np.nan],
         "floor_mae": [3.2]}
    ).to_csv(stats / "accuracy.tsv", sep="\t", index=False)  # fmt: skip
    pd.DataFrame(
        {"group": ["HC", "AD"], "n": [1, 1], "mean": [0.5, 6.0], "sd": [np.nan, np.nan],
         "true_mean": [0.0, 4.0]}
    ).to_csv(stats / "brain_pad_by_group.tsv", sep="\t", index=False)  # fmt: skip
    pd.DataFrame(
        {"first": ["AD"], "second": ["HC"], "d": [np.nan], "p": [np.nan]}
    ).to_csv(stats / "group_comparison.tsv", sep="\t", index=False)  # fmt: skip
    return table, qc, stats


def test_the_front_page_says_what_was_analysed_and_found(tmp_path):
    table, qc, stats = _tables(tmp_path)
    path = tmp_path / "front.rst"
    write_front_page(table, qc, stats, "HC", path)
    text = path.read_text()
    assert "4 scans of 3 participants passed quality control" in text
    assert "1 of 5 scans failed it (listed under *QC*: sub-4_ses-1)" in text
    assert "siteA (3 scans), siteB (1 scans)" in text
    assert "MAE 3.50 y, r n/a, R² n/a (simulated floor MAE 3.20 y)" in text
    assert "6.0 ± n/a" in text and "n/a (p n/a)" in text  # too few scans: said, not blank
    assert "torch" in text and "nilearn" in text
    # valid reStructuredText: the list tables render as tables
    html = publish_parts(text, writer="html", settings_overrides={"report_level": 2})
    assert html["html_body"].count("<table") == 2
    assert "System Message" not in html["html_body"]


def test_the_front_page_starts_with_what_the_run_changed_by_itself(tmp_path):
    table, qc, stats = _tables(tmp_path)
    path = tmp_path / "front.rst"
    note = "No FLAIR scan in the dataset: the models that read FLAIR (vgg3d-flair) were left out"
    write_front_page(table, qc, stats, "HC", path, [note])
    text = path.read_text()
    assert text.index(note) < text.index("passed quality control")
    html = publish_parts(text, writer="html", settings_overrides={"report_level": 2})
    assert "<li>No FLAIR scan" in html["html_body"] and "System Message" not in html["html_body"]
