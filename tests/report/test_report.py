"""The report figures are drawn from the workflow's tables (smoke test via the CLI)."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pandas as pd

from brainpad.cli import main


def test_stats_and_report_commands_write_tables_and_figures(
    synthetic_folds, synthetic_truth, tmp_path
):
    noise = np.random.default_rng(0).normal(0, 2, len(synthetic_folds))
    table = synthetic_folds.assign(
        brain_age=synthetic_folds["age"] + noise,
        pred_m1=synthetic_folds["age"] - 1.0,
        uncertainty=np.abs(noise) * 2 + 1,  # wider where the error is larger
    )
    table["brain_pad_corrected"] = table["brain_age"] - table["age"] + noise
    table.loc[table["group"] == "AD", "brain_pad_corrected"] += 4
    table.to_csv(tmp_path / "brain_age.tsv", sep="\t", index=False)
    synthetic_truth.reset_index().to_csv(tmp_path / "subjects.tsv", sep="\t", index=False)
    qc = pd.DataFrame(
        {
            "scan_id": table["scan_id"],
            "similarity": 0.9,
            "tiv_ml": 1500.0,
            "passed": True,
            "reasons": "",
        }
    )
    qc.loc[0, ["similarity", "passed", "reasons"]] = [0.5, False, "registration similarity"]
    qc.to_csv(tmp_path / "qc.tsv", sep="\t", index=False)
    stats_dir, out = tmp_path / "stats", tmp_path / "report"
    assert (
        main(
            [
                "stats",
                "--brain-age",
                str(tmp_path / "brain_age.tsv"),
                "--models",
                "m1",
                "--truth",
                str(tmp_path / "subjects.tsv"),
                "--out-dir",
                str(stats_dir),
            ]
        )
        == 0
    )
    accuracy = pd.read_csv(stats_dir / "accuracy.tsv", sep="\t")
    assert accuracy["model"].tolist() == ["ensemble", "m1"] and "floor_mae" in accuracy
    by_site = pd.read_csv(stats_dir / "accuracy_by_site.tsv", sep="\t")
    test = table[table["role"] == "test"].drop_duplicates("participant_id")
    assert by_site.groupby("model")["n"].sum().tolist() == [len(test)] * 2
    by_age = pd.read_csv(stats_dir / "accuracy_by_age_bin.tsv", sep="\t")
    assert by_age["age_bin"].str.fullmatch(r"\d+-\d+").all()
    assert (
        main(
            [
                "report",
                "--brain-age",
                str(tmp_path / "brain_age.tsv"),
                "--qc",
                str(tmp_path / "qc.tsv"),
                "--stats-dir",
                str(stats_dir),
                "--models",
                "m1",
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    sites = pd.read_csv(stats_dir / "harmonisation.tsv", sep="\t")  # not harmonised: before
    assert sites["after"].isna().all() and (sites["measure"] == "controls_mean").any()
    for name in (
        "predicted_vs_age",
        "brain_pad_by_group",
        "brain_pad_by_site",
        "uncertainty",
        "qc",
    ):
        image = mpimg.imread(out / f"{name}.png")
        assert image.shape[0] > 200 and image.std() > 0.05, name
    failed = pd.read_csv(out / "qc_failed.tsv", sep="\t")
    assert failed["scan_id"].tolist() == [table.loc[0, "scan_id"]]


def test_figures_show_sub_ensembles_and_tables_keep_their_members():
    from brainpad.cli.common import model_columns

    models = ["ridge_roi", "cnn3d-t1w-1", "cnn3d-t1w-2", "sfcn"]
    tables = model_columns(models)
    assert list(tables) == [
        "ensemble",
        "ridge_roi",
        "cnn3d-t1w",
        "cnn3d-t1w-1",
        "cnn3d-t1w-2",
        "sfcn",
    ]
    figures = model_columns(models, members=False)
    assert figures == {
        "ensemble": "brain_age",
        "ridge_roi": "pred_ridge_roi",
        "cnn3d-t1w": "pred_cnn3d-t1w",
        "sfcn": "pred_sfcn",
    }
