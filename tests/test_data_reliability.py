"""Reliability of the data layer: what a careless copy, an odd file or a bad table does.

Each test reproduces one defect an attacker-style review found (stale cache entries,
validation that depended on the cache, non-finite values, pixel data that disagrees with
its header, deflated files, upper-case ``.DCM``, files of another series mixed in) and
checks that it is now a clear :class:`~lss.errors.DataError` or the right result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dicom_factory import rewrite, write_series, write_slice
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from lss.data import DataError, build_index, read_series, scan_series
from lss.data._fastdicom import FastHeader
from lss.data.dicom import _read, first_file_header, list_dicom_files

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


# --------------------------------------------------------------------------- one series

# Explicit VR LE files take the fast header parser, Implicit VR ones pydicom's reader.
PATHS = pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian],
                                ids=["fast", "pydicom"])


def _on_path(folder: Path, syntax: str) -> Path:
    """Every file of ``folder`` in ``syntax``, checking which reader it will take."""
    for p in list_dicom_files(folder):
        if syntax != ExplicitVRLittleEndian:
            rewrite(p, syntax)
        assert isinstance(_read(p, pixels=False), FastHeader) == (syntax == ExplicitVRLittleEndian)
    return folder


@PATHS
def test_file_of_another_series_is_named(tmp_path, syntax):
    folder = tmp_path / "s"
    write_series(folder, 4, series_uid="1.2.3.4")
    write_slice(folder / "9.dcm", np.zeros((16, 16), np.uint16), instance=9,
                position=(0, 0, 40), series_uid="1.2.3.5")
    _on_path(folder, syntax)
    with pytest.raises(DataError, match=r"Series \S+/s mixes SeriesInstanceUIDs: 9\.dcm has "
                                        r"1\.2\.3\.5, the other 4 files 1\.2\.3\.4"):
        scan_series(folder)
    assert len(scan_series(_remove(folder / "9.dcm")).paths) == 4


def _remove(path: Path) -> Path:
    path.unlink()
    return path.parent


@PATHS
def test_file_in_another_plane_is_named(tmp_path, syntax):
    folder = tmp_path / "s"
    write_series(folder, 5)
    # a sagittal slice (normal along x) in an axial series (normal along z)
    write_slice(folder / "sag.dcm", np.zeros((16, 16), np.uint16), instance=20,
                position=(0, 0, 8), orientation=(0, 1, 0, 0, 0, -1))
    _on_path(folder, syntax)
    with pytest.raises(DataError, match=r"Series \S+/s: sag\.dcm lies in another plane "
                                        r"\(90 degrees from the other slices"):
        read_series(folder)


def test_per_disc_stacks_angled_apart_still_read(tmp_path):
    # per-disc stacks as RSNA series have them, 35 degrees between the outer two
    folder = tmp_path / "s"
    for k, (z, tilt) in enumerate([(0, -15), (4, -15), (40, 0), (44, 0), (80, 20), (84, 20)]):
        t = np.deg2rad(tilt)
        write_slice(folder / f"{k + 1}.dcm", np.full((8, 8), k, np.uint16), instance=k + 1,
                    position=(0, 0, z), orientation=(1, 0, 0, 0, np.cos(t), np.sin(t)))
    s = read_series(folder)
    assert s.instance_numbers.tolist() == [1, 2, 3, 4, 5, 6]


@PATHS
def test_two_slices_at_one_position_are_named(tmp_path, syntax):
    folder = tmp_path / "s"
    write_series(folder, 4)  # z = 0, 4, 8, 12; instance 2 is at z = 8
    write_slice(folder / "copy.dcm", np.zeros((16, 16), np.uint16), instance=7,
                position=(0, 0, 8.004))
    _on_path(folder, syntax)
    with pytest.raises(DataError, match=r"Series \S+/s: 2\.dcm and copy\.dcm lie at the same "
                                        r"position"):
        scan_series(folder)


def test_ties_in_position_are_ordered_by_instance_then_name(tmp_path):
    # Two stacks that cross: the same position on the series axis, other orientations.
    folder = tmp_path / "s"
    for name, inst, tilt in [("a.dcm", 5, 8.0), ("b.dcm", 2, -8.0), ("c.dcm", 3, 0.0)]:
        t = np.deg2rad(tilt)
        write_slice(folder / name, np.full((8, 8), inst, np.uint16), instance=inst,
                    position=(0, 0, 0 if name != "c.dcm" else 10),
                    orientation=(1, 0, 0, 0, np.cos(t), np.sin(t)))
    s = scan_series(folder)
    assert s.positions[0] == s.positions[1]
    assert s.instance_numbers.tolist() == [2, 5, 3]
    assert [p.name for p in s.paths] == ["b.dcm", "a.dcm", "c.dcm"]
