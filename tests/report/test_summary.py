"""The headline numbers `make demo` prints, and its science checks."""

from __future__ import annotations

import pandas as pd
import pytest

from brainpad.report.summary import headline


def write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)


@pytest.fixture
def results(tmp_path):
    out = tmp_path / "results"
    write(out / "stats/accuracy.tsv", [
        {"model": "ensemble", "n": 14, "mae": 3.3, "floor_mae": 3.0, "interval_coverage": 13 / 14,
         "interval_width": 14.2},
        {"model": "ridge_roi", "n": 14, "mae": 3.6, "floor_mae": 3.0},
    ])  # fmt: skip
    write(out / "stats/group_comparison.tsv", [
        {"first": "AD", "second": "HC", "d": 1.6},
        {"first": "sMCI", "second": "HC", "d": 0.5},
        {"first": "AD", "second": "sMCI", "d": 1.0},
    ])  # fmt: skip
    write(out / "maps/stats/truth_validation.tsv", [
        {"group": "AD", "top5_truly_affected": 4, "top5_rois": "Left_Hippocampus, ..."},
    ])  # fmt: skip
    write(out / "stats/accuracy_untrained.tsv", [
        {"model": "ensemble", "n": 45, "mae": 3.5, "mae_low": 2.9, "mae_high": 4.2, "r": 0.97,
         "floor_mae": 2.9, "mae_over_floor": 3.5 / 2.9, "mae_over_floor_low": 1.0,
         "mae_over_floor_high": 1.4},
        {"model": "cnn3d-t1w", "n": 45, "mae": 5.5, "mae_low": 4.6, "mae_high": 6.5, "r": 0.9,
         "floor_mae": 2.9, "mae_over_floor": 5.5 / 2.9, "mae_over_floor_low": 1.6,
         "mae_over_floor_high": 2.2},
    ])  # fmt: skip
    return out


def test_a_demo_that_shows_the_science_passes(results):
    lines, passed = headline(results)
    assert passed
    assert lines[0] == f"report: {results / 'report.html'}"
    assert "ensemble healthy-test MAE 3.30 y (n 14), 1.10x the simulation's floor" in lines[1]
    assert (
        lines[2]
        == "95 % interval: holds the age of 93% of the healthy test scans, mean width 14.2 y"
    )
    assert any(line.startswith("AD vs HC: Cohen's d 1.60") and "ok" in line for line in lines)
    assert any(line.startswith("sMCI vs HC: Cohen's d 0.50") for line in lines)
    assert not any("AD vs sMCI" in line for line in lines)  # controls only
    assert "4 of its 5 strongest regions truly affected" in lines[-1]
    start = lines.index(
        "every model on the 45 healthy controls it did not train on (95 % intervals):"
    )
    assert lines[start + 1 : start + 4] == [
        "  (the simulation's floor on them: 2.90 y)",
        "  ensemble   MAE  3.50 y (2.90-4.20)  r 0.97  1.21x the floor (1.00-1.40) "
        "[r >= 0.8, <= 2x: ok]",
        "  cnn3d-t1w  MAE  5.50 y (4.60-6.50)  r 0.90  1.90x the floor (1.60-2.20) "
        "[r >= 0.8, <= 2x: ok]",
    ]


def test_the_summary_says_where_the_bundle_is(results):
    (results / "bundle").mkdir()
    (results / "bundle" / "manifest.tsv").write_text("path\tbytes\tsha256\n")
    lines, _ = headline(results)
    assert lines[1] == f"trained bundle: {results / 'bundle'}"


@pytest.mark.parametrize(
    ("table", "row", "column", "value"),
    [
        ("stats/accuracy.tsv", 0, "mae", 4.6),  # 1.53x the floor
        ("stats/group_comparison.tsv", 0, "d", 0.7),
        ("maps/stats/truth_validation.tsv", 0, "top5_truly_affected", 2),
        ("stats/accuracy_untrained.tsv", 1, "r", 0.75),  # a model that did not learn
        ("stats/accuracy_untrained.tsv", 1, "mae_over_floor", 2.1),
    ],
)
def test_each_check_can_fail(results, table, row, column, value):
    path = results / table
    frame = pd.read_csv(path, sep="\t")
    frame.loc[row, column] = value
    frame.to_csv(path, sep="\t", index=False)
    lines, passed = headline(results)
    assert not passed
    assert sum("NOT MET" in line for line in lines) == 1


def test_real_data_has_no_checks(results):
    for name in ("accuracy", "accuracy_untrained"):
        path = results / f"stats/{name}.tsv"
        table = pd.read_csv(path, sep="\t").drop(columns="floor_mae")
        table.to_csv(path, sep="\t", index=False)
    (results / "maps/stats/truth_validation.tsv").unlink()
    lines, passed = headline(results)
    assert passed and not any("[" in line for line in lines)


def test_the_summary_counts_participants_per_role(results):
    write(results / "folds.tsv", [
        {"participant_id": "sub-1", "role": "train"},
        {"participant_id": "sub-1", "role": "train"},  # a repeat scan
        {"participant_id": "sub-2", "role": "unlabelled"},
        {"participant_id": "sub-3", "role": "train"},
        {"participant_id": "sub-4", "role": "excluded"},
    ])  # fmt: skip
    lines, _ = headline(results)
    assert lines[1] == (
        "cohort: 4 participants: 2 train, 1 unlabelled (no age: diffae's diffusion loss "
        "only), 1 excluded (failed QC)"
    )


def test_the_summary_repeats_the_runs_notes(results):
    (results / "report").mkdir(exist_ok=True)
    (results / "report" / "notes.txt").write_text("the models that read FLAIR were left out\n")
    lines, _ = headline(results)
    assert "note: the models that read FLAIR were left out" in lines
