"""Reliability of the data layer: what a careless copy, an odd file or a bad table does.

Each test reproduces one defect an attacker-style review found (stale cache entries,
validation that depended on the cache, non-finite values, pixel data that disagrees with
its header, deflated files, upper-case ``.DCM``, files of another series mixed in) and
checks that it is now a clear :class:`~lss.errors.DataError` or the right result.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from dicom_factory import patch_bytes, rewrite, write_series, write_slice
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from lss.config import PreprocessConfig
from lss.data import (
    DataError,
    TensorCache,
    build_index,
    decode_slice,
    level_window,
    load_tables,
    read_series,
    scan_series,
    series_dir,
)
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


# --------------------------------------------------------------------------- values

# (write_slice argument, value, the bytes pydicom writes for it, same-length replacement)
_NON_FINITE = {
    "ImagePositionPatient": ("position", (0.0, 0.0, 1234.5), b"1234.5", b"inf   "),
    "ImageOrientationPatient": ("orientation", (1, 0, 0, 0, 1, 0), b"1.0\\0.0\\0.0\\0.0\\1.0",
                                b"nan\\0.0\\0.0\\0.0\\1.0"),
    "PixelSpacing": ("spacing", (0.7, 0.6543), b"0.6543", b"-inf  "),
    "RescaleSlope": ("slope", 1.2345, b"1.2345", b"NaN   "),
    "RescaleIntercept": ("intercept", -50.5, b"-50.5", b"inf  "),
}


def _one_slice(folder: Path, syntax: str, **kwargs) -> Path:
    kwargs = {"position": (0, 0, 0), **kwargs}
    path = write_slice(folder / "1.dcm", np.full((8, 8), 7, np.uint16), instance=1, **kwargs)
    _on_path(folder, syntax)
    return path


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")
@pytest.mark.parametrize("tag", list(_NON_FINITE))
@PATHS
def test_non_finite_header_value_is_named(tmp_path, syntax, tag):
    arg, value, raw, bad = _NON_FINITE[tag]
    path = patch_bytes(_one_slice(tmp_path / "s", syntax, **{arg: value}), raw, bad)
    with pytest.raises(DataError, match=rf"{path}: non-finite {tag} "):
        level_window(tmp_path / "s", 1, PreprocessConfig(n_slices=1, image_size=8))
    with pytest.raises(DataError, match=rf"{path}: non-finite {tag} "):
        read_series(tmp_path / "s")


@PATHS
def test_rescale_that_overflows_float32_is_named(tmp_path, syntax):
    folder = tmp_path / "s"
    write_slice(folder / "1.dcm", np.full((8, 8), 65535, np.uint16), instance=1,
                position=(0, 0, 0), slope=1e38)
    _on_path(folder, syntax)
    with pytest.raises(DataError, match=r"1\.dcm: non-finite pixel values after rescale"):
        level_window(folder, 1, PreprocessConfig(n_slices=1, image_size=8))
    with pytest.raises(DataError, match=r"1\.dcm: non-finite pixel values after rescale"):
        read_series(folder)


@pytest.mark.parametrize("text", ["inf", "-inf"])
def test_non_finite_coordinate_in_the_table_names_study_and_row(tiny_root, text):
    path = tiny_root / "train_label_coordinates.csv"
    df = pd.read_csv(path).astype({"y": object})
    df.loc[1, "y"] = text
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match=rf"train_label_coordinates.csv: column 'y' must be "
                                        rf"finite; study 102 \(row 3\) has '{text}'"):
        load_tables(tiny_root)


@pytest.mark.parametrize("xy", [(np.inf, 3.0), (4.0, np.nan), (-np.inf, -np.inf)])
def test_non_finite_coordinate_in_an_index_names_the_study(tiny_root, tmp_path, xy):
    index = build_index(tiny_root).iloc[:1].copy()
    index[["x", "y"]] = [xy]
    cache = TensorCache(tiny_root, PreprocessConfig(n_slices=1, image_size=8),
                        cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match=r"Study 101, series 11: coordinate \(.*\) is not "
                                        r"finite"):
        cache.prepare(index, workers=1)
    with pytest.raises(DataError, match=r"Series \S+101/11: coordinate \(.*\) is not finite"):
        level_window(series_dir(tiny_root, 101, 11), 3, centre_xy=xy)


# --------------------------------------------------------------------------- pixel data


@pytest.mark.parametrize("header, data", [(16, 32), (32, 16)], ids=["too-long", "too-short"])
@PATHS
def test_pixel_data_of_another_size_than_the_header_is_named(tmp_path, syntax, header, data):
    folder = tmp_path / "s"
    path = write_slice(folder / "1.dcm", np.ones((data, data), np.uint16), instance=1,
                       position=(0, 0, 0))
    ds = pydicom.dcmread(path)
    ds.Rows = ds.Columns = header
    ds.save_as(path)
    _on_path(folder, syntax)
    msg = (rf"Corrupt pixel data in {path}: {2 * data * data} bytes, but Rows x Columns "
           rf"{header}x{header} at 16 bits need {2 * header * header}")
    with pytest.raises(DataError, match=msg):
        level_window(folder, 1, PreprocessConfig(n_slices=1, image_size=8))
    with pytest.raises(DataError, match=msg):
        read_series(folder)


def test_deflated_files_decode(tmp_path):
    from pydicom.data import get_testdata_file

    path = tmp_path / "dfl" / "1.dcm"
    path.parent.mkdir()
    shutil.copy(get_testdata_file("image_dfl.dcm"), path)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    np.testing.assert_array_equal(decode_slice(_read(path, pixels=False), path),
                                  pydicom.dcmread(path).pixel_array.astype(np.float32))
    # a whole deflated series reads as its plain twin does
    write_series(tmp_path / "plain", 4)
    shutil.copytree(tmp_path / "plain", tmp_path / "s")
    for p in list_dicom_files(tmp_path / "s"):
        rewrite(p, DeflatedExplicitVRLittleEndian)
    cfg = PreprocessConfig(n_slices=2, image_size=8, scale_percentiles=(0, 100))
    np.testing.assert_array_equal(level_window(tmp_path / "s", 2, cfg).volume,
                                  level_window(tmp_path / "plain", 2, cfg).volume)
    np.testing.assert_array_equal(read_series(tmp_path / "s").volume,
                                  read_series(tmp_path / "plain").volume)


def test_truncated_deflated_file_is_still_an_error(tmp_path):
    from pydicom.data import get_testdata_file

    path = tmp_path / "1.dcm"
    path.write_bytes(Path(get_testdata_file("image_dfl.dcm")).read_bytes()[:-2000])
    with pytest.raises(DataError, match=rf"Corrupt DICOM file: {path} .*truncated"):
        _read(path, pixels=False)
    with pytest.raises(DataError, match=rf"Corrupt DICOM file: {path} .*truncated"):
        _read(path, pixels=True)


# --------------------------------------------------------------------------- index


def test_coordinate_row_on_a_series_of_another_description_is_excluded(tiny_root):
    path = tiny_root / "train_label_coordinates.csv"
    df = pd.read_csv(path)
    df.loc[df.study_id == 101, "series_id"] = 12  # 101's Sagittal T1 series
    df.to_csv(path, index=False)
    idx = build_index(tiny_root)
    assert 101 not in idx["study_id"].tolist()
    assert {"study_id": 101, "reason": "coordinate row names series 12, described as "
                                       "'Sagittal T1', not 'Axial T2'"} in idx.attrs["excluded"]
    assert len(idx) + len(idx.attrs["excluded"]) == idx.attrs["n_studies"]


def test_the_real_study_whose_spinal_canal_points_lie_on_sagittal_t1_is_excluded(labels_dir):
    # study 3637444890 has its five Spinal Canal Stenosis rows on its Sagittal T1 series
    idx = build_index(labels_dir, "spinal_canal_stenosis", "L1/L2", check_images=False)
    assert 3637444890 not in idx["study_id"].tolist()
    (entry,) = [e for e in idx.attrs["excluded"] if e["study_id"] == 3637444890]
    assert "described as 'Sagittal T1', not 'Sagittal T2/STIR'" in entry["reason"]
    assert len(idx) + len(idx.attrs["excluded"]) == idx.attrs["n_studies"]


# --------------------------------------------------------------------------- cache


def _cache(root: Path, tmp_path: Path, **kwargs) -> TensorCache:
    cfg = PreprocessConfig(n_slices=1, image_size=8, scale_percentiles=(0, 100), **kwargs)
    return TensorCache(root, cfg, cache_dir=tmp_path / "cache")


def _same_size_edit(path: Path, how: str, tmp_path: Path) -> None:
    """New pixel bytes in ``path``, its size and modification time kept, done the way
    an in-place edit, ``cp -p`` or ``rsync -a`` (write elsewhere, rename over) does it."""
    st = path.stat()
    h = _read(path, pixels=False)
    raw = bytearray(path.read_bytes())
    half = np.zeros((16, 16), np.uint16)
    half[:, 8:] = 500  # half bright: another scaled image
    raw[h.pixel_offset:h.pixel_offset + h.pixel_length] = half.tobytes()
    if how == "in place":
        with open(path, "r+b") as f:
            f.write(raw)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    else:
        other = tmp_path / "edited.dcm"
        other.write_bytes(raw)
        os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
        if how == "cp -p":
            shutil.copy2(other, path)  # into the same file, timestamps copied
        else:
            os.replace(other, path)
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)


@pytest.mark.parametrize("how", ["in place", "cp -p", "rsync -a"])
def test_same_size_edit_that_keeps_the_mtime_is_recomputed(tiny_root, tmp_path, how):
    index = build_index(tiny_root).iloc[:1]  # study 101, series 11, instance 3
    cache = _cache(tiny_root, tmp_path)
    before = cache.load(index, workers=1)
    _same_size_edit(series_dir(tiny_root, 101, 11) / "3.dcm", how, tmp_path)
    stats = cache.prepare(index, workers=1)
    assert (stats.hits, stats.written) == (0, 1)
    after = cache.load(index, workers=1)
    expected = level_window(series_dir(tiny_root, 101, 11), 3, cache.config,
                            centre_xy=(8.0, 8.0)).volume
    np.testing.assert_array_equal(after[0], expected)
    assert not np.array_equal(before, after)
    assert cache.prepare(index, workers=1).hits == 1  # and then it is a hit again


def test_a_bad_index_row_fails_the_same_on_a_cold_and_a_warm_cache(tiny_root, tmp_path):
    good = build_index(tiny_root).iloc[:1]  # (8, 8) in a 16x16 image
    bad = good.copy()
    bad["x"] = 40.0
    msg = r"Coordinate \(40\.0, 8\.0\) lies outside the 16x16 image of series \S+101/11$"
    with pytest.raises(DataError, match=msg) as cold:
        _cache(tiny_root, tmp_path / "cold").prepare(bad, workers=1)
    warm = _cache(tiny_root, tmp_path / "warm")
    assert warm.prepare(good, workers=1).written == 1
    assert warm.paths(bad) == warm.paths(good)  # no crop: the same entry
    with pytest.raises(DataError, match=msg) as hot:
        warm.prepare(bad, workers=1)
    assert str(hot.value) == str(cold.value)
    with pytest.raises(DataError, match=msg):
        warm.load(bad, workers=1)
    bad["x"], bad["instance_number"] = 8.0, 42  # another entry: computed, so an error too
    with pytest.raises(DataError, match="Instance 42 not in series"):
        warm.prepare(bad, workers=1)


def test_a_fractional_instance_number_is_not_rounded(tiny_root, tmp_path):
    index = build_index(tiny_root).iloc[:1].astype({"instance_number": float})
    index["instance_number"] = 3.5
    with pytest.raises(DataError, match=r"Study 101, series 11: instance_number 3\.5 is not "
                                        r"an integer"):
        _cache(tiny_root, tmp_path).prepare(index, workers=1)
