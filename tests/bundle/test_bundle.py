"""Bundle export: every file a trained run needs, checksummed; a changed bundle is refused."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from brainpad.bundle import BundleError, export_bundle, sha256, verify_bundle
from brainpad.cli import main
from brainpad.paths import template_files


@pytest.fixture
def trained_run(tmp_path, synthetic_folds):
    """The files a finished run leaves: two models x two folds, fits, templates, tables."""
    run = tmp_path / "results"
    states = []
    for model in ("ridge_roi", "cnn3d-t1w-2"):
        for fold in (0, 1):
            state = run / "models" / model / f"fold-{fold}" / "model.pt"
            state.parent.mkdir(parents=True)
            torch.save({"weights": torch.full((3,), float(fold))}, state)
            states.append(state)
    fits = run / "ensemble" / "fits.json"
    fits.parent.mkdir(parents=True)
    fits.write_text(json.dumps({"stacking": {"weights": {"ridge_roi": 1.0}}, "bias": {}}))
    templates = template_files(run / "templates", 4.0)
    for key, path in templates.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(key.encode() * 10)
    synthetic_folds.to_csv(run / "folds.tsv", sep="\t", index=False)
    index = pd.DataFrame(
        {"row": [0, 1], "scan_id": ["a", "b"], "crop_x": "4:46", "crop_y": "4:55", "crop_z": "0:42"}
    )
    index.to_csv(run / "index.tsv", sep="\t", index=False)
    return run, states


def export(run, states, out):
    settings = {"seed": 42, "preprocess": {"voxel_size": 4.0}}
    templates = template_files(run / "templates", 4.0)
    return export_bundle(
        out, states, run / "ensemble/fits.json", templates, run / "folds.tsv",
        run / "index.tsv", settings,
    )  # fmt: skip


def test_a_bundle_holds_every_fold_model_the_fits_the_templates_and_their_checksums(
    trained_run, synthetic_folds, tmp_path
):
    run, states = trained_run
    out = tmp_path / "bundle"
    description = export(run, states, out)
    assert description == verify_bundle(out)
    assert description["base_models"] == {"ridge_roi": [0, 1], "cnn3d-t1w-2": [0, 1]}
    assert description["crop"] == [[4, 46], [4, 55], [0, 42]]
    assert description["settings"]["preprocess"] == {"voxel_size": 4.0}
    assert description["software"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    train = synthetic_folds.drop_duplicates("participant_id").query("role == 'train'")
    cohort = description["training_cohort"]
    assert cohort["training_age_range"] == [train["age"].min(), train["age"].max()]
    assert cohort["sites"] == ["s1", "s2"] and cohort["groups"] == ["AD", "HC", "MCI"]
    state = torch.load(out / "models/cnn3d-t1w-2/fold-1/model.pt", weights_only=True)
    assert torch.equal(state["weights"], torch.ones(3))
    mask = template_files(run / "templates", 4.0)["mask"]
    assert description["templates"]["mask"]["sha256"] == sha256(mask)
    manifest = pd.read_csv(out / "manifest.tsv", sep="\t")
    assert len(manifest) == 4 + 1 + 8 + 1  # models, fits, templates, bundle.json
    assert not list(tmp_path.glob(".bundle*"))  # no partial folder left


def test_a_changed_missing_or_extra_file_is_refused_with_the_fix(trained_run, tmp_path):
    run, states = trained_run
    out = tmp_path / "bundle"
    export(run, states, out)
    fits = out / "ensemble/fits.json"
    fits.write_text(fits.read_text().replace("1.0", "2.0"))
    with pytest.raises(BundleError, match=r"fits.json: its checksum differs .* re-export it"):
        verify_bundle(out)
    export(run, states, out)  # a second export replaces the first
    (out / "models/ridge_roi/fold-0/model.pt").unlink()
    with pytest.raises(BundleError, match=r"fold-0/model.pt: listed in .* but missing"):
        verify_bundle(out)
    export(run, states, out)
    (out / ".snakemake_timestamp").touch()  # Snakemake stamps a folder output: allowed
    verify_bundle(out)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(BundleError, match=r"notes.txt: not in .*manifest.tsv \(1 such files\)"):
        verify_bundle(out)
    with pytest.raises(BundleError, match=r"no manifest\.tsv, so this is not a brainpad bundle"):
        verify_bundle(tmp_path)


def test_the_bundle_command_exports_what_the_rule_asks_for(trained_run, tmp_path):
    run, states = trained_run
    out = tmp_path / "bundle"
    argv = [
        "bundle", "--out", str(out), "--fits", str(run / "ensemble/fits.json"),
        "--folds", str(run / "folds.tsv"), "--index", str(run / "index.tsv"),
        "--template-dir", str(run / "templates"), "--voxel-size", "4",
        "--settings", json.dumps({"seed": 7}), *map(str, states),
    ]  # fmt: skip
    assert main(argv) == 0
    assert verify_bundle(out)["settings"] == {"seed": 7}
