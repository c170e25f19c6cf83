"""Reliability of the data layer: what a careless copy, an odd file or a bad table does.

Each test reproduces one defect an attacker-style review found (stale cache entries,
validation that depended on the cache, non-finite values, pixel data that disagrees with
its header, deflated files, upper-case ``.DCM``, files of another series mixed in) and
checks that it is now a clear :class:`~lss.errors.DataError` or the right result.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dicom_factory import write_series

from lss.data import DataError, build_index, scan_series
from lss.data.dicom import first_file_header, list_dicom_files

# --------------------------------------------------------------------------- file listing


def _upper_case_names(folder: Path) -> None:
    for p in sorted(folder.glob("*.dcm")):
        p.rename(p.with_suffix(".DCM"))


def test_list_dicom_files_is_the_one_rule(tmp_path):
    folder = tmp_path / "s"
    write_series(folder, 3)
    (folder / "2.dcm").rename(folder / "2.DCM")
    (folder / "._1.dcm").write_bytes(b"AppleDouble")  # hidden: never image data
    (folder / "sub.dcm").mkdir()  # not a file
    assert [p.name for p in list_dicom_files(folder)] == ["1.dcm", "2.DCM", "3.dcm"]
    with pytest.raises(DataError, match="Series folder not found: .*nowhere"):
        list_dicom_files(tmp_path / "nowhere")


def test_upper_case_dcm_works_through_index_scan_and_first_header(tiny_root):
    folder = tiny_root / "train_images" / "101" / "11"
    _upper_case_names(folder)
    df = build_index(tiny_root)  # found, not "has no .dcm files"
    assert 101 in df["study_id"].tolist()
    assert len(scan_series(folder).paths) == 6
    ds = first_file_header(folder, ["Rows"])
    assert Path(ds.filename).name == "1.DCM" and ds.Rows == 16
