"""The corpus of defective datasets: each class of bad input is one generated fixture.

Every case runs ``brainpad validate`` as the workflow does and must end with exit status
2, a message naming the file (and row or field), the bad value and the fix, no
traceback, and no manifest (not even one left by an earlier, valid run).
"""

from __future__ import annotations

import gzip
import os
import re
import struct
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brainpad.cli import main
from conftest import brain_like, write_image

SCAN = "sub-02/anat/sub-02_T1w.nii.gz"
SESSIONS = "sub-01/sub-01_sessions.tsv"


def _write(root: Path, rel: str, text: str | bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def _rewrite_scan(root: Path, data: np.ndarray, dtype=None) -> None:
    image = nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0]), dtype=dtype)
    nib.save(image, root / SCAN)


def _patch_gzip(root: Path, change: Callable[[bytearray], bytes]) -> None:
    path = root / SCAN
    path.write_bytes(change(bytearray(path.read_bytes())))


def _flip_payload_byte(raw: bytearray) -> bytes:
    """One voxel byte changed, the original CRC kept: only the CRC check can tell."""
    voxels = bytearray(gzip.decompress(bytes(raw)))
    voxels[400] ^= 0xFF
    body = gzip.compress(bytes(voxels), mtime=0)
    return body[:-8] + bytes(raw[-8:-4]) + body[-4:]


def _wrong_length(raw: bytearray) -> bytes:
    return bytes(raw[:-4]) + struct.pack("<I", (struct.unpack("<I", raw[-4:])[0] + 7) % 2**32)


def _huge_header(root: Path) -> None:
    header = nib.Nifti1Header()
    header.set_data_shape((32767, 32767, 32767))
    header.set_data_dtype(np.float32)
    header.set_zooms((1.0, 1.0, 1.0))
    with gzip.open(root / SCAN, "wb") as stream:
        stream.write(header.binaryblock + b"\0" * 4 + b"\1" * 1000)


def _dangling(root: Path) -> None:
    (root / SCAN).unlink()
    os.symlink(root / "elsewhere/sub-02_T1w.nii.gz", root / SCAN)


def _lowercase_suffix(root: Path) -> None:
    (root / SCAN).rename(root / "sub-02/anat/sub-02_t1w.nii.gz")


def _bad_session_label(root: Path) -> None:
    write_image(root / "sub-01/ses-1.5/anat/sub-01_ses-1.5_T1w.nii.gz", brain_like())


def _wrong_folder(root: Path) -> None:
    write_image(root / "sub-02/anat/sub-01_T1w.nii.gz", brain_like(seed=4))


def _participants_dir(root: Path) -> None:
    (root / "participants.tsv").unlink()
    (root / "participants.tsv").mkdir()


def _participants_missing(root: Path) -> None:
    (root / "participants.tsv").unlink()


# (class, how to break a valid dataset, what the message must say)
CASES: list[tuple[str, Callable[[Path], None], str]] = [
    ("participants missing", _participants_missing, r"participants.tsv is missing.*participant_id"),
    ("participants empty", lambda r: _write(r, "participants.tsv", b""), r"is empty; write"),
    ("participants a folder", _participants_dir, r"participants.tsv is a folder, not a file"),
    (
        "participants header only",
        lambda r: _write(r, "participants.tsv", "participant_id\tage\n"),
        r"has a header but no rows; add one row per participant",
    ),
    (
        "participants not UTF-8",
        lambda r: _write(
            r, "participants.tsv", "participant_id\tage\nsub-01\t3\xe9\n".encode("latin-1")
        ),
        r"is not UTF-8 text \(byte \d+: b'\\xe9'\); save it as UTF-8",
    ),
    (
        "participants comma-separated",
        lambda r: _write(r, "participants.tsv", "participant_id,age\nsub-01,30\n"),
        r"looks comma-separated; BIDS tables are tab-separated",
    ),
    (
        "participants duplicate column",
        lambda r: _write(r, "participants.tsv", "participant_id\tage\tage\nsub-01\t3\t4\n"),
        r"the header has 'age' more than once",
    ),
    (
        "participants row with an extra cell",
        lambda r: _write(r, "participants.tsv", "participant_id\tage\nsub-01\t30\t99\n"),
        r"participants.tsv row 1 has 3 cells but the header has 2; give every row one cell",
    ),
    (
        "dataset_description.json not JSON",
        lambda r: _write(r, "dataset_description.json", "{not json"),
        r"dataset_description.json is not valid JSON \(Expecting property name",
    ),
    (
        "sessions empty",
        lambda r: _write(r, SESSIONS, b""),
        r"sub-01_sessions.tsv is empty",
    ),
    (
        "sessions without session_id",
        lambda r: _write(r, SESSIONS, "session\tsite\nses-1\ts1\n"),
        r"sub-01_sessions.tsv has no column\(s\) session_id .*add them: session_id as ses-",
    ),
    (
        "sessions age not a number",
        lambda r: _write(r, SESSIONS, "session_id\tage\nses-1\tforty\n"),
        r"sub-01_sessions.tsv row 1 \(ses-1\): age 'forty' is not a number",
    ),
    (
        "sessions age out of range",
        lambda r: _write(r, SESSIONS, "session_id\tage\nses-1\t300\n"),
        r"row 1 \(ses-1\): age '300' is above the maximum 120",
    ),
    (
        "sessions unknown session",
        lambda r: _write(r, SESSIONS, "session_id\tsite\nses-1\ts1\nses-7\ts2\n"),
        r"session_id 'ses-7' has no scan folder sub-01/ses-7/anat .*remove the row",
    ),
    (
        "sessions malformed",
        lambda r: _write(r, SESSIONS, 'session_id\tsite\nses-1\t"s1\n'),
        r"sub-01_sessions.tsv cannot be parsed as a tab-separated table",
    ),
    (
        "RGB image",
        lambda r: _rewrite_scan(r, np.zeros((8, 8, 8), [("R", "u1"), ("G", "u1"), ("B", "u1")])),
        r"voxels are RGB colour, but a grayscale",
    ),
    (
        "complex image",
        lambda r: _rewrite_scan(r, brain_like((8, 8, 8)).astype(np.complex64)),
        r"voxels are complex-valued.*export the magnitude",
    ),
    (
        "same scan as .nii and .nii.gz",
        lambda r: write_image(r / "sub-02/anat/sub-02_T1w.nii", brain_like()),
        r"sub-02 \(T1w\) is present 2 times: .*sub-02_T1w.nii, .*sub-02_T1w.nii.gz; keep one",
    ),
    (
        "scan under another subject's folder",
        _wrong_folder,
        r"sub-02/anat/sub-01_T1w.nii.gz: the file name says sub-01 but it is filed under sub-02/",
    ),
    (
        "gzip CRC wrong",
        lambda r: _patch_gzip(r, _flip_payload_byte),
        r"sub-02_T1w.nii.gz: cannot be read \(gzip data is corrupt: CRC check failed",
    ),
    (
        "gzip length wrong",
        lambda r: _patch_gzip(r, _wrong_length),
        r"cannot be read \(gzip data is corrupt: Incorrect length",
    ),
    (
        "gzip trailer cut",
        lambda r: _patch_gzip(r, lambda raw: bytes(raw[:-5])),
        r"cannot be read \(gzip data is corrupt: Compressed file ended",
    ),
    (
        "header claims a huge image",
        _huge_header,
        r"header declares a 32767 x 32767 x 32767 image \(134,205,440 MB.*raise max_image_mb",
    ),
    (
        "dangling symlink",
        _dangling,
        r"sub-02_T1w.nii.gz: is a broken symbolic link to '.*elsewhere/sub-02_T1w.nii.gz'",
    ),
    (
        "lowercase suffix",
        _lowercase_suffix,
        r"sub-02_t1w.nii.gz: not used as a T1w scan because the suffix '_t1w' must be '_T1w'",
    ),
    (
        "session label with a dot",
        _bad_session_label,
        r"sub-01_ses-1.5_T1w.nii.gz: not used as a T1w scan because 'ses-1.5' is not a BIDS "
        r"key-value pair with a letters-and-digits label",
    ),
    (
        "empty image file",
        lambda r: _write(r, SCAN, b""),
        r"sub-02_T1w.nii.gz: is empty \(0 bytes\); re-copy",
    ),
]


def _validate(root: Path, out: Path) -> int:
    return main(
        [
            "validate",
            "--bids-dir",
            str(root),
            "--manifest",
            str(out / "manifest.tsv"),
            "--skipped",
            str(out / "skipped.tsv"),
        ]
    )


@pytest.mark.parametrize(("name", "breaks", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_dataset_stops_with_one_clear_message(
    make_bids, tmp_path, capsys, name, breaks, message
):
    root = make_bids(sessions=("1",)) if "session" in name else make_bids()
    out = tmp_path / "out"
    assert _validate(root, out) == 0  # the intact dataset validates, and leaves a manifest
    capsys.readouterr()
    breaks(root)
    status = _validate(root, out)
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    assert err.startswith("brainpad validate: input error\n"), err
    assert any(re.search(message, line) for line in err.splitlines()), err
    assert not (out / "manifest.tsv").exists()  # removed: it described the intact dataset
    assert not (out / "skipped.tsv").exists()
