"""Bad input through the ``lss`` command: one line ``lss: error: ...`` naming the file or
study, exit code 2, no traceback, and nothing silently dropped or miscounted.

The library-level checks (the exception type and its message) live in test_data.py;
here every case goes through the command line, as a user meets it: ``lss prepare`` reads
the tables, builds the index, scans each series and computes its level window.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dicom_factory import write_series, write_slice
from pydicom.uid import JPEGLosslessSV1

from lss.cli import main

SERIES = Path("train_images") / "101" / "11"  # tiny_root: 6 slices, labelled instance 3
LABELLED = SERIES / "3.dcm"  # instance 3 is at z = 12 mm (instances run toward the feet)
NO_DECODER = (importlib.util.find_spec("pylibjpeg") is None
              and importlib.util.find_spec("gdcm") is None)


def _edit_csv(path: Path, fn) -> None:
    df = pd.read_csv(path)
    fn(df).to_csv(path, index=False)


def _truncate_header(root: Path) -> None:
    path = root / LABELLED
    path.write_bytes(path.read_bytes()[:300])


def _truncate_pixels(root: Path) -> None:
    path = root / SERIES / "1.dcm"  # the last slice in space: outside a 2-slice window
    path.write_bytes(path.read_bytes()[:-100])


def _junk_dcm(root: Path) -> None:
    (root / SERIES / "junk.dcm").write_bytes(b"this is not a DICOM file" * 10)


def _stray_file(root: Path) -> None:
    (root / SERIES / "notes.txt").write_text("read me")


def _no_pixel_data(root: Path) -> None:
    write_slice(root / LABELLED, np.zeros((16, 16), np.uint16), instance=3,
                position=(0, 0, 12), with_pixels=False)


def _compressed(root: Path) -> None:
    write_slice(root / LABELLED, np.zeros((16, 16), np.uint16), instance=3,
                position=(0, 0, 12), transfer_syntax=JPEGLosslessSV1)


def _mixed_sizes(root: Path) -> None:
    write_slice(root / SERIES / "7.dcm", np.zeros((8, 16), np.uint16), instance=7,
                position=(0, 0, 24))


def _duplicate_instance(root: Path) -> None:
    write_slice(root / SERIES / "x.dcm", np.zeros((16, 16), np.uint16), instance=2,
                position=(0, 0, 30))


def _missing_series_folder(root: Path) -> None:
    shutil.rmtree(root / SERIES)


def _missing_column(root: Path) -> None:
    _edit_csv(root / "train.csv", lambda df: df.drop(columns="left_subarticular_stenosis_l4_l5"))


def _misspelled_column(root: Path) -> None:
    _edit_csv(root / "train_series_descriptions.csv",
              lambda df: df.rename(columns={"series_description": "series_descripton"}))


def _coordinate_outside(root: Path) -> None:
    def move(df):
        df.loc[df.study_id == 101, "x"] = 40.0
        return df

    _edit_csv(root / "train_label_coordinates.csv", move)


def _empty_series_folder(root: Path) -> None:
    for p in (root / SERIES).iterdir():
        p.unlink()


def _study_without_images(root: Path) -> None:
    shutil.rmtree(root / "train_images" / "103")


# (id, how to break the root, pattern the one error line must match)
CASES = [
    ("truncated-header", _truncate_header,
     r"\S*101/11/3\.dcm: missing DICOM tag\(s\) .* a truncated file, or not an image\?"),
    ("truncated-pixels", _truncate_pixels,
     r"Truncated DICOM file: \S*101/11/1\.dcm \(its pixel data should have 512 bytes, "
     r"412 are there\)"),
    ("non-dicom-file", _junk_dcm, r"Not a DICOM file: \S*101/11/junk\.dcm"),
    ("non-dcm-entry", _stray_file, r"Unexpected non-\.dcm entry \S*101/11/notes\.txt"),
    ("no-pixel-data", _no_pixel_data, r"No PixelData in \S*101/11/3\.dcm"),
    pytest.param("compressed-no-decoder", _compressed,
                 r"Cannot decode \S*101/11/3\.dcm: transfer syntax JPEG Lossless.*needs a "
                 r"decoder that is not installed.*pip install pylibjpeg",
                 marks=pytest.mark.skipif(not NO_DECODER,
                                          reason="a JPEG Lossless decoder is installed here")),
    ("mixed-image-sizes", _mixed_sizes,
     r"Mixed image sizes in series \S*101/11: 7\.dcm is 8x16"),
    ("duplicate-instance", _duplicate_instance,
     r"Duplicate instance number 2 in series \S*101/11"),
    ("missing-series-folder", _missing_series_folder,
     r"Study 101: series folder \S*101/11 is missing"),
    ("missing-column", _missing_column,
     r"train\.csv: missing column\(s\) 'left_subarticular_stenosis_l4_l5' in \S*train\.csv"),
    ("misspelled-column", _misspelled_column,
     r"train_series_descriptions\.csv: missing column\(s\) 'series_description' \(found "
     r"'series_descripton': misspelled\?\)"),
    ("coordinate-outside-image", _coordinate_outside,
     r"Coordinate \(40\.0, 8\.0\) lies outside the 16x16 image of series \S*101/11"),
    ("empty-series-folder", _empty_series_folder,
     r"Study 101: series folder \S*101/11 has no \.dcm files"),
    ("study-without-images", _study_without_images,
     r"Study 103: series folder \S*103/31 is missing"),
]


def _prepare_argv(root: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["prepare", "--data", str(root), "--cache", str(tmp_path / "cache"),
            "--slices", "2", "--image-size", "8", *extra]


def _assert_one_line_error(err: str, pattern: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("lss: error: "), lines[0]
    assert re.search(pattern, lines[0]), lines[0]


@pytest.mark.parametrize("name, break_root, pattern", CASES)
def test_prepare_reports_bad_input_in_one_line(tiny_root, tmp_path, capsys, name, break_root,
                                               pattern):
    break_root(tiny_root)
    assert main(_prepare_argv(tiny_root, tmp_path, "--workers", "1")) == 2
    captured = capsys.readouterr()
    _assert_one_line_error(captured.err, pattern)
    # No entry for the broken series is left behind for a later run to read.
    assert not [p for p in (tmp_path / "cache").rglob("*.npz") if p.name.startswith("101_")]


def test_train_reports_bad_input_before_training(tiny_root, tmp_path, capsys):
    _duplicate_instance(tiny_root)
    run = tmp_path / "run"
    argv = ["train", "--data", str(tiny_root), "--cache", str(tmp_path / "cache"), "--run",
            str(run), "--slices", "2", "--image-size", "8", "--epochs", "1", "--workers", "1",
            "--quiet"]
    assert main(argv) == 2
    _assert_one_line_error(capsys.readouterr().err,
                           r"Duplicate instance number 2 in series \S*101/11")
    assert not (run / "best.keras").exists()


def test_nan_label_is_excluded_and_reported_not_an_error(tiny_root, tmp_path, capsys):
    # Study 104 has an empty label: the real tables have three such studies for the
    # default target, so they are left out and named, and the counts add up.
    assert main(_prepare_argv(tiny_root, tmp_path, "--workers", "1")) == 0
    out = capsys.readouterr().out
    assert "3 windows: 0 from cache, 3 computed" in out
    assert "excluded 1 of 4 studies: 104 (no label in 'left_subarticular_stenosis_l4_l5')" in out


def test_several_bad_studies_name_the_first_and_count_nothing_twice(tiny_root, tmp_path,
                                                                   capsys):
    _study_without_images(tiny_root)
    _mixed_sizes(tiny_root)
    assert main(_prepare_argv(tiny_root, tmp_path, "--workers", "1")) == 2
    _assert_one_line_error(capsys.readouterr().err, r"Study 103: series folder")
    shutil.rmtree(tiny_root / "train_images" / "101" / "11")
    write_series(tiny_root / SERIES, 6)  # repaired: only 103 is still broken
    assert main(_prepare_argv(tiny_root, tmp_path, "--workers", "1")) == 2
    _assert_one_line_error(capsys.readouterr().err, r"Study 103: series folder")


@pytest.mark.skipif(not (Path(sys.executable).parent / "lss").is_file(),
                    reason="the lss console script is not installed next to this Python")
def test_real_lss_process_prints_one_line_and_exits_2(tiny_root, tmp_path):
    # A real process, with worker processes (spawn): no traceback from anywhere.
    _duplicate_instance(tiny_root)
    lss = Path(sys.executable).parent / "lss"
    p = subprocess.run([str(lss), *_prepare_argv(tiny_root, tmp_path, "--workers", "2")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    _assert_one_line_error(p.stderr, r"Duplicate instance number 2 in series \S*101/11")
