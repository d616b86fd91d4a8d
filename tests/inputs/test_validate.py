"""Input discovery and validation: every bad-input case stops with a clear message."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainpad.cli import main
from brainpad.inputs.bids import discover_scans
from brainpad.inputs.errors import InputError
from brainpad.inputs.validate import (
    ValidationOptions,
    build_manifest,
    check_image,
    validate_dataset,
)
from brainpad.paths import scan_batches, scan_folder
from conftest import brain_like, write_image

OPTIONS = ValidationOptions()


def validate(root: Path, tmp_path: Path, options: ValidationOptions = OPTIONS) -> pd.DataFrame:
    return validate_dataset(
        root, tmp_path / "out" / "manifest.tsv", tmp_path / "out" / "skipped.tsv", options
    )


def assert_fails(root: Path, tmp_path: Path, pattern: str, options=OPTIONS) -> None:
    with pytest.raises(InputError, match=pattern):
        validate(root, tmp_path, options)
    assert not (tmp_path / "out" / "manifest.tsv").exists()
    assert not (tmp_path / "out" / "skipped.tsv").exists()


def test_valid_dataset_gives_typed_manifest(make_bids, tmp_path):
    manifest = validate(make_bids(), tmp_path)
    assert list(manifest.columns[:10]) == [
        "scan_id",
        "participant_id",
        "session",
        "run",
        "modality",
        "path",
        "age",
        "sex",
        "site",
        "group",
    ]
    assert manifest["participant_id"].tolist() == ["sub-01", "sub-02", "sub-03"]
    assert manifest["age"].tolist() == [34.5, 71.0, 66.2]
    assert manifest["sex"].tolist() == ["F", "M", "M"]  # 'male' normalised
    assert manifest["mmse"].isna().tolist() == [False, False, True]
    written = pd.read_csv(tmp_path / "out" / "manifest.tsv", sep="\t")
    assert len(written) == 3
    assert (tmp_path / "out" / "skipped.tsv").exists()


def test_sessions_extra_modality_and_session_site(make_bids, tmp_path):
    root = make_bids(sessions=("1", "2"))
    write_image(root / "sub-01/ses-1/anat/sub-01_ses-1_FLAIR.nii.gz", brain_like())
    (root / "sub-01/sub-01_sessions.tsv").write_text("session_id\tsite\nses-1\ts1\nses-2\ts9\n")
    options = ValidationOptions(modalities=("T1w", "FLAIR"))
    manifest = validate(root, tmp_path, options).set_index(["scan_id", "modality"])
    assert len(manifest) == 7
    assert manifest.loc[("sub-01_ses-2", "T1w"), "site"] == "s9"
    assert manifest.loc[("sub-01_ses-1", "FLAIR"), "session"] == "1"
    # only sub-01's sites are known per session: its repeats can be told apart
    assert manifest.xs("T1w", level="modality")["session_site"].to_dict() == {
        "sub-01_ses-1": True,
        "sub-01_ses-2": True,
        "sub-02_ses-1": False,
        "sub-02_ses-2": False,
        "sub-03_ses-1": False,
        "sub-03_ses-2": False,
    }


def test_a_model_reading_flair_needs_one_in_every_session(make_bids, tmp_path):
    root = make_bids(sessions=("1", "2"))
    for pid in ("sub-01", "sub-02", "sub-03"):
        for ses in ("1", "2"):
            if (pid, ses) != ("sub-02", "2"):
                write_image(
                    root / f"{pid}/ses-{ses}/anat/{pid}_ses-{ses}_FLAIR.nii.gz", brain_like()
                )
    options = ValidationOptions(modalities=("T1w", "FLAIR"), required=("FLAIR",))
    assert_fails(
        root,
        tmp_path,
        r"sub-02_ses-2_T1w.nii.gz: no FLAIR in this session, but a model reads 'flair' "
        r"\(config models.<name>.inputs\); add sub-02_ses-2_FLAIR.nii.gz beside it",
        options,
    )
    write_image(root / "sub-02/ses-2/anat/sub-02_ses-2_FLAIR.nii.gz", brain_like())
    assert len(validate(root, tmp_path, options)) == 12


def test_harmless_oddities_are_tolerated(make_bids, tmp_path):
    """A byte-order mark, Windows line ends, spaces around cells and macOS '._' files."""
    root = make_bids()
    text = "participant_id \t age\r\nsub-01\t 34.5\r\nsub-02\t71\r\nsub-03\t66.2 \r\n"
    (root / "participants.tsv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    (root / "sub-01/anat/._sub-01_T1w.nii.gz").write_bytes(b"\0\5\x16\7")
    manifest = validate(root, tmp_path)
    assert manifest["age"].tolist() == [34.5, 71.0, 66.2]
    assert len(manifest) == 3


def test_discovery_parses_entities(tmp_path):
    write_image(
        tmp_path / "sub-a1/ses-bl/anat/sub-a1_ses-bl_acq-mp2_run-2_T1w.nii.gz", brain_like()
    )
    write_image(tmp_path / "sub-a1/ses-bl/anat/sub-a1_ses-bl_T2w.nii.gz", brain_like())
    scans = discover_scans(tmp_path, ["T1w"])
    assert scans.iloc[0][["scan_id", "session", "run"]].tolist() == [
        "sub-a1_ses-bl_acq-mp2_run-2",
        "bl",
        "2",
    ]
    assert len(scans) == 1


def test_scan_batches_are_stable_when_the_cohort_changes():
    scans = [f"sub-{i:04d}" for i in range(1, 1001)] + ["sub-0001_ses-2"]
    batches = scan_batches(scans, 20)
    assert len(batches) == 20 and list(batches)[:2] == ["batch-000", "batch-001"]
    assert sorted(s for b in batches.values() for s in b) == sorted(scans)
    assert max(len(b) for b in batches.values()) < 2 * len(scans) / 20
    grown = scan_batches([*scans, "sub-a1"], 20)  # one new scan: one batch changes
    assert sum(grown[name] != batches[name] for name in batches) == 1
    assert {len(name) for name in scan_batches(scans, 5000)} == {len("batch-0000")}
    assert scan_folder("out", "sub-0001_ses-2_run-1") == Path("out/sub-0001/ses-2/anat")
    assert scan_folder("out", "sub-0001") == Path("out/sub-0001/anat")


def test_missing_bids_dir(tmp_path):
    assert_fails(tmp_path / "nowhere", tmp_path, r"'.*nowhere' does not exist.*set `bids_dir`")


def test_not_a_bids_dir(make_bids, tmp_path):
    root = make_bids()
    (root / "dataset_description.json").unlink()
    assert_fails(root, tmp_path, "dataset_description.json is missing")


def test_missing_participants(make_bids, tmp_path):
    root = make_bids()
    (root / "participants.tsv").unlink()
    assert_fails(root, tmp_path, r"participants.tsv is missing.*participant_id and age")


def test_missing_age_column(make_bids, tmp_path):
    root = make_bids(rows=[["participant_id", "sex"], ["sub-01", "F"]])
    assert_fails(root, tmp_path, r"has no column\(s\) age")


@pytest.mark.parametrize(
    ("age", "pattern"),
    [
        ("n/a", r"row 2 \(sub-02\): age 'n/a' is not a number; ages must be numeric years"),
        ("", r"row 2 \(sub-02\): age '' is not a number"),
        ("seventy", r"row 2 \(sub-02\): age 'seventy' is not a number"),
        ("-3", r"row 2 \(sub-02\): age '-3' is below the minimum 0"),
        ("130", r"row 2 \(sub-02\): age '130' is above the maximum 120"),
    ],
)
def test_bad_age(make_bids, tmp_path, age, pattern):
    rows = [["participant_id", "age"], ["sub-01", "30"], ["sub-02", age]]
    assert_fails(make_bids(rows=rows), tmp_path, pattern)


def test_missing_ages_are_unlabelled_participants_when_asked(make_bids, tmp_path):
    """With ``unlabelled: use`` an n/a age passes (NaN in the manifest); a bad age still
    fails."""
    rows = [["participant_id", "age"], ["sub-01", "30"], ["sub-02", "n/a"]]
    options = ValidationOptions(unlabelled="use")
    manifest = validate(make_bids(rows=rows), tmp_path, options).set_index("participant_id")
    assert manifest.loc["sub-01", "age"] == 30 and np.isnan(manifest.loc["sub-02", "age"])
    root = tmp_path / "bids"
    text = (root / "participants.tsv").read_text().replace("n/a", "old")
    (root / "participants.tsv").write_text(text)
    assert_fails(root, tmp_path, r"age 'old' is not a number", options)


def test_duplicate_participant(make_bids, tmp_path):
    rows = [["participant_id", "age"], ["sub-01", "30"], ["sub-02", "40"], ["sub-01", "31"]]
    assert_fails(make_bids(rows=rows), tmp_path, r"rows 1 and 3: participant_id 'sub-01' appears 2")


def test_bad_group_and_sex(make_bids, tmp_path):
    rows = [["participant_id", "age", "sex", "group"], ["sub-01", "30", "X", "PD"]]
    root = make_bids(rows=rows)
    with pytest.raises(InputError, match=r"group 'PD' is not one of HC, sMCI, pMCI, AD") as err:
        validate(root, tmp_path)
    assert "sex 'X' is not one of M, F" in str(err.value)
    (root / "participants.tsv").write_text("participant_id\tage\tsex\tgroup\nsub-01\t30\tn/a\tPD\n")
    manifest = validate(root, tmp_path, ValidationOptions(groups=("HC", "PD")))
    assert manifest["group"].tolist() == ["PD"] and manifest["sex"].isna().all()


def test_groups_default_to_controls_without_column(make_bids, tmp_path):
    manifest = validate(make_bids(rows=[["participant_id", "age"], ["sub-01", "30"]]), tmp_path)
    assert manifest["group"].tolist() == ["HC"]


def test_bad_participant_id(make_bids, tmp_path):
    rows = [["participant_id", "age"], ["01", "30"]]
    assert_fails(
        make_bids(rows=rows, scans=False),
        tmp_path,
        r"row 1 \(01\): participant_id '01' does not match",
    )


def test_participant_without_scan(make_bids, tmp_path):
    root = make_bids()
    (root / "sub-03/anat/sub-03_T1w.nii.gz").unlink()
    assert_fails(root, tmp_path, r"row 3 \(sub-03\): no T1w scan found under .*sub-03")


def test_unlisted_scan_is_skipped_or_fatal(make_bids, tmp_path, caplog):
    root = make_bids()
    write_image(root / "sub-99/anat/sub-99_T1w.nii.gz", brain_like())
    manifest = validate(root, tmp_path)
    assert "sub-99" not in set(manifest["participant_id"])
    skipped = pd.read_csv(tmp_path / "out" / "skipped.tsv", sep="\t")
    assert skipped["participant_id"].tolist() == ["sub-99"]
    assert "sub-99 is not in participants.tsv" in caplog.text
    (tmp_path / "out" / "manifest.tsv").unlink()
    (tmp_path / "out" / "skipped.tsv").unlink()
    assert_fails(
        root,
        tmp_path,
        r"sub-99 is not in participants.tsv.*on_unlisted_scan: warn",
        ValidationOptions(on_unlisted_scan="error"),
    )


def _scan(root: Path) -> Path:
    return root / "sub-02/anat/sub-02_T1w.nii.gz"


def test_unreadable_image(make_bids, tmp_path):
    root = make_bids()
    _scan(root).write_bytes(b"this is not a nifti file")
    assert_fails(root, tmp_path, r"sub-02_T1w.nii.gz: cannot be read .*corrupt or truncated")


def test_truncated_image(make_bids, tmp_path):
    root = make_bids()
    raw = gzip.decompress(_scan(root).read_bytes())
    _scan(root).write_bytes(gzip.compress(raw)[: len(gzip.compress(raw)) // 2])
    assert_fails(root, tmp_path, r"sub-02_T1w.nii.gz: cannot be read")


@pytest.mark.parametrize(
    ("data", "zooms", "pattern"),
    [
        (np.ones((8, 8, 8, 3), np.float32), (2, 2, 2), r"is 4D with shape \(8, 8, 8, 3\)"),
        (np.ones((8, 8), np.float32), (2, 2, 2), r"shape \(8, 8\), which is 2D"),
        (np.ones((8, 8, 1), np.float32), (2, 2, 2), r"which is 2D"),
        (np.zeros((8, 8, 8), np.float32), (2, 2, 2), "every voxel is zero"),
        (np.full((8, 8, 8), np.nan, np.float32), (2, 2, 2), r"512 voxel\(s\) are NaN or infinite"),
        (brain_like((8, 8, 8)), (5, 5, 5), r"voxel size 5 x 5 x 5 mm is implausible"),
        (brain_like((8, 8, 8)), (1, 0, 1), r"voxel size 1 x 0 x 1 mm is implausible"),
    ],
)
def test_bad_image_content(make_bids, tmp_path, data, zooms, pattern):
    root = make_bids()
    _scan(root).unlink()
    img = nib.Nifti1Image(data, None)
    img.set_sform(np.diag([*zooms, 1.0]), code=1)  # sform only: a zero voxel edge is allowed
    nib.save(img, _scan(root))
    assert_fails(root, tmp_path, pattern)


def test_singleton_fourth_axis_is_accepted(tmp_path):
    path = write_image(tmp_path / "x.nii.gz", brain_like((8, 8, 8, 1)))
    assert check_image(path) is None


def test_inf_voxel_is_reported(tmp_path):
    data = brain_like((8, 8, 8))
    data[1, 2, 3] = np.inf
    assert "1 voxel(s) are NaN or infinite" in check_image(write_image(tmp_path / "x.nii.gz", data))


def test_all_problems_reported_at_once(make_bids, tmp_path):
    rows = [["participant_id", "age"], ["sub-01", "n/a"], ["sub-02", "200"]]
    with pytest.raises(InputError, match=r"2 problem\(s\) found") as err:
        build_manifest(make_bids(rows=rows), OPTIONS)
    assert "sub-01" in str(err.value) and "sub-02" in str(err.value)


def test_cli_reports_input_error_without_traceback(make_bids, tmp_path, capsys):
    root = make_bids(rows=[["participant_id", "age"], ["sub-01", "n/a"]])
    status = main(
        [
            "validate",
            "--bids-dir",
            str(root),
            "--manifest",
            str(tmp_path / "m.tsv"),
            "--skipped",
            str(tmp_path / "s.tsv"),
        ]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert "age 'n/a' is not a number" in err and "Traceback" not in err
    assert not (tmp_path / "m.tsv").exists()


def test_top_coded_age_and_other_sex_are_read_as_bids_means_them(make_bids, tmp_path, caplog):
    rows = [
        ["participant_id", "age", "sex"],
        ["sub-01", "89+", "O"],
        ["sub-02", "90.5+", "other"],
        ["sub-03", "40", "F"],
    ]
    manifest = validate(make_bids(rows=rows), tmp_path).set_index("participant_id")
    assert manifest["age"].to_dict() == {"sub-01": 89.0, "sub-02": 90.5, "sub-03": 40.0}
    assert manifest.loc[["sub-01", "sub-02"], "sex"].isna().all()
    assert manifest.loc["sub-03", "sex"] == "F"
    assert "row 1 (sub-01): age '89+' is top-coded; read as 89" in caplog.text
    assert "row 2 (sub-02): age '90.5+' is top-coded; read as 90.5" in caplog.text
    # a top-coded age must still be a plausible one
    (tmp_path / "out").mkdir(exist_ok=True)
    root = tmp_path / "bids"
    ages = "participant_id\tage\nsub-01\t130+\nsub-02\t3\nsub-03\t4\n"
    (root / "participants.tsv").write_text(ages)
    assert_fails(root, tmp_path, r"row 1 \(sub-01\): age '130\+' is above the maximum 120")


def test_any_group_label_when_groups_is_none(make_bids, tmp_path):
    rows = [["participant_id", "age", "group"], ["sub-01", "60", "FTD"], ["sub-02", "61", "HC"]]
    manifest = validate(make_bids(rows=rows), tmp_path, ValidationOptions(groups=None))
    assert manifest["group"].tolist() == ["FTD", "HC"]


@pytest.mark.parametrize(
    ("chosen", "excluded", "expected"),
    [
        (("01", "sub-03"), (), ["sub-01", "sub-03"]),
        ((), ("sub-02",), ["sub-01", "sub-03"]),
        (("01", "02"), ("02",), ["sub-01"]),
    ],
)
def test_participant_label_chooses_participants(make_bids, tmp_path, chosen, excluded, expected):
    options = ValidationOptions(participant_label=chosen, exclude_participant_label=excluded)
    manifest = validate(make_bids(), tmp_path, options)
    assert manifest["participant_id"].tolist() == expected
    skipped = pd.read_csv(tmp_path / "out" / "skipped.tsv", sep="\t")
    assert skipped.empty  # chosen out, not skipped for a missing row


def test_unknown_participant_labels_are_named(make_bids, tmp_path):
    root = make_bids()
    options = ValidationOptions(participant_label=("01", "07"), exclude_participant_label=("x9",))
    with pytest.raises(InputError, match="2 problem") as err:
        validate(root, tmp_path, options)
    assert "participant_label: 'sub-07' is not in participants.tsv" in str(err.value)
    assert "exclude_participant_label: 'sub-x9' is not in participants.tsv" in str(err.value)
    assert not (tmp_path / "out" / "manifest.tsv").exists()
    everybody = ValidationOptions(exclude_participant_label=("01", "02", "03"))
    assert_fails(root, tmp_path, "leave nobody", everybody)
