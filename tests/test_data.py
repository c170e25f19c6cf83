"""The data layer: tables, index, series reading, level windows and the cache."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dicom_factory import JPEG2000, write_series, write_slice
from pydicom.uid import JPEGLosslessSV1

from lss.config import PreprocessConfig
from lss.data import (
    DataError,
    TensorCache,
    build_index,
    level_window,
    load_tables,
    read_series,
    scan_series,
    window_indices,
)

# --------------------------------------------------------------------------- tables


def test_load_tables_reads_the_three_files(tiny_root):
    t = load_tables(tiny_root)
    assert t.train.shape == (4, 26)
    assert set(t.series["series_description"]) == {"Axial T2", "Sagittal T1"}
    assert t.coordinates["instance_number"].dtype == "int64"
    assert t.test_series is None


def test_missing_table_is_named(tiny_root):
    (tiny_root / "train_label_coordinates.csv").unlink()
    with pytest.raises(DataError, match="Missing table: .*train_label_coordinates.csv"):
        load_tables(tiny_root)


def test_misspelled_column_is_named_with_its_near_miss(tiny_root):
    path = tiny_root / "train.csv"
    df = pd.read_csv(path).rename(
        columns={"left_subarticular_stenosis_l4_l5": "left_subarticular_stenosis_l4l5"})
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"train.csv: missing column\(s\) "
                       r"'left_subarticular_stenosis_l4_l5' \(found "
                       r"'left_subarticular_stenosis_l4l5': misspelled\?\)"):
        load_tables(tiny_root)


def test_missing_coordinate_column_is_named(tiny_root):
    path = tiny_root / "train_label_coordinates.csv"
    pd.read_csv(path).drop(columns="instance_number").to_csv(path, index=False)
    with pytest.raises(DataError, match="train_label_coordinates.csv: missing column.*"
                                        "'instance_number'"):
        load_tables(tiny_root)


def test_misspelled_severity_names_study_and_column(tiny_root):
    path = tiny_root / "train.csv"
    df = pd.read_csv(path)
    df.loc[df.study_id == 102, "spinal_canal_stenosis_l1_l2"] = "moderate"
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match="unexpected value 'moderate' in column "
                                        "'spinal_canal_stenosis_l1_l2' \\(study 102"):
        load_tables(tiny_root)


def test_misspelled_level_in_coordinates(tiny_root):
    path = tiny_root / "train_label_coordinates.csv"
    df = pd.read_csv(path)
    df.loc[0, "level"] = "L4-L5"
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match="unexpected value 'L4-L5' in column 'level'"):
        load_tables(tiny_root)


def test_non_integer_ids_and_duplicate_studies(tiny_root):
    path = tiny_root / "train.csv"
    df = pd.read_csv(path)
    pd.concat([df, df.iloc[:1]]).to_csv(path, index=False)
    with pytest.raises(DataError, match="study 101 appears more than once"):
        load_tables(tiny_root)
    df["study_id"] = df["study_id"].astype(str)
    df.loc[1, "study_id"] = "abc"
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match="column 'study_id' must hold integers; row 3 has 'abc'"):
        load_tables(tiny_root)


def test_non_numeric_coordinate(tiny_root):
    path = tiny_root / "train_label_coordinates.csv"
    df = pd.read_csv(path).astype({"x": object})
    df.loc[0, "x"] = "n/a"
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match="column 'x' must be a number; study 101"):
        load_tables(tiny_root)


# --------------------------------------------------------------------------- index


def test_build_index_rules(tiny_root):
    df = build_index(tiny_root)
    assert df["study_id"].tolist() == [101, 102, 103]
    assert df["label"].tolist() == [1, 2, 0]
    # several Axial T2 series: the coordinate row's series and instance
    row = df.set_index("study_id").loc[102]
    assert (row.series_id, row.instance_number, row.series_rule) == (22, 12, "coordinates")
    # no coordinate row, one Axial T2 series: that series, instance unknown
    row = df.set_index("study_id").loc[103]
    assert row.series_id == 31 and pd.isna(row.instance_number) and np.isnan(row.x)
    assert row.series_rule == "only series"
    # the NaN label is counted, not silently dropped
    assert df.attrs["excluded"] == [
        {"study_id": 104, "reason": "no label in 'left_subarticular_stenosis_l4_l5'"}]
    assert len(df) + len(df.attrs["excluded"]) == df.attrs["n_studies"] == 4


def test_nan_label_can_raise_naming_the_study(tiny_root):
    with pytest.raises(DataError, match="empty label in column "
                                        "'left_subarticular_stenosis_l4_l5' for study/studies 104"):
        build_index(tiny_root, on_missing_label="raise")


def test_study_without_images(tiny_root):
    shutil.rmtree(tiny_root / "train_images" / "102")
    with pytest.raises(DataError, match=r"Study 102: series folder .*102/22 is missing"):
        build_index(tiny_root)
    df = build_index(tiny_root, on_missing_images="report")
    assert 102 not in df["study_id"].tolist()
    assert {"study_id": 102, "reason": "series folder is missing"} in df.attrs["excluded"]
    assert len(df) + len(df.attrs["excluded"]) == 4


def test_empty_series_folder_in_index(tiny_root):
    folder = tiny_root / "train_images" / "101" / "11"
    shutil.rmtree(folder)
    folder.mkdir()
    with pytest.raises(DataError, match="Study 101: series folder .* has no .dcm files"):
        build_index(tiny_root)


def test_ambiguous_study_is_reported(tiny_root):
    path = tiny_root / "train_label_coordinates.csv"
    df = pd.read_csv(path)
    df[df.study_id != 102].to_csv(path, index=False)  # 102 has two Axial T2 series
    idx = build_index(tiny_root)
    assert 102 not in idx["study_id"].tolist()
    assert {"study_id": 102, "reason": "no coordinate row and 2 Axial T2 series"} in \
        idx.attrs["excluded"]


def test_coordinate_on_unlisted_series(tiny_root):
    path = tiny_root / "train_label_coordinates.csv"
    df = pd.read_csv(path)
    df.loc[df.study_id == 101, "series_id"] = 999
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match="study 101 names series 999"):
        build_index(tiny_root)


def test_build_index_on_real_tables(labels_dir):
    df = build_index(labels_dir, check_images=False)
    assert len(df) == 1972
    assert df["label"].value_counts().sort_index().tolist() == [887, 624, 461]
    missing = [e for e in df.attrs["excluded"] if e["reason"].startswith("no label")]
    assert len(missing) == 3 and len(df.attrs["excluded"]) == 3
    assert df["study_id"].is_unique
    # every study with several Axial T2 series uses the series its coordinate row names
    t = load_tables(labels_dir)
    axial = t.series[t.series.series_description == "Axial T2"].groupby("study_id").size()
    multi = set(axial[axial > 1].index)
    assert len(multi) == 335
    c = t.coordinates
    c = c[(c.condition == "Left Subarticular Stenosis") & (c.level == "L4/L5")]
    expected = c.set_index("study_id")["series_id"]
    picked = df.set_index("study_id")
    multi_labelled = sorted(multi & set(picked.index))
    assert len(multi_labelled) >= 330
    for sid in multi_labelled:
        assert picked.loc[sid, "series_id"] == expected.loc[sid], sid
        assert picked.loc[sid, "n_series"] > 1


# --------------------------------------------------------------------------- series


def test_read_series_orders_by_position_not_instance_or_name(tmp_path):
    zs = write_series(tmp_path / "s", 7, instances_toward_feet=True, shuffle_names=True)
    s = read_series(tmp_path / "s")
    assert s.volume.shape == (7, 16, 16) and s.volume.dtype == np.float32
    assert s.volume.mean(axis=(1, 2)).tolist() == [100.0 * (k + 1) for k in range(7)]
    assert s.positions.tolist() == zs
    assert s.instance_numbers.tolist() == [7, 6, 5, 4, 3, 2, 1]  # opposite to position


def test_angled_stacks_are_ordered_on_the_mean_normal(tmp_path):
    folder = tmp_path / "s"
    # two stacks tilted +/-10 degrees, the upper one written first with low instances
    for k, (z, tilt) in enumerate([(40, 10), (44, 10), (0, -10), (4, -10)]):
        t = np.deg2rad(tilt)
        write_slice(folder / f"{k + 1}.dcm", np.full((8, 8), 10 * z + 1, np.uint16),
                    instance=k + 1, position=(0, 0, z),
                    orientation=(1, 0, 0, 0, np.cos(t), np.sin(t)))
    s = read_series(folder)
    assert s.instance_numbers.tolist() == [3, 4, 1, 2]
    assert np.all(np.diff(s.positions) > 0)


def test_rescale_and_monochrome1(tmp_path):
    folder = tmp_path / "s"
    write_slice(folder / "1.dcm", np.full((4, 4), 100, np.uint16), instance=1,
                position=(0, 0, 0), slope=2.0, intercept=-50.0)
    write_slice(folder / "2.dcm", np.full((4, 4), 100, np.uint16), instance=2,
                position=(0, 0, 4), photometric="MONOCHROME1")
    v = read_series(folder).volume
    assert np.all(v[0] == 150.0)
    assert np.all(v[1] == 65535.0 - 100.0)


def test_not_dicom_file_is_named(tmp_path):
    write_series(tmp_path / "s", 3)
    (tmp_path / "s" / "junk.dcm").write_bytes(b"this is not a DICOM file" * 10)
    with pytest.raises(DataError, match="Not a DICOM file: .*junk.dcm"):
        read_series(tmp_path / "s")


def test_stray_non_dcm_entry_is_named(tmp_path):
    write_series(tmp_path / "s", 3)
    (tmp_path / "s" / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="Unexpected non-.dcm entry .*notes.txt"):
        scan_series(tmp_path / "s")
    (tmp_path / "s" / "notes.txt").unlink()
    (tmp_path / "s" / ".DS_Store").write_text("")  # hidden files are not data
    assert len(scan_series(tmp_path / "s").paths) == 3


def test_truncated_file_is_named(tmp_path):
    write_series(tmp_path / "s", 3, shape=(64, 64))
    path = tmp_path / "s" / "2.dcm"
    path.write_bytes(path.read_bytes()[:-3000])
    with pytest.raises(DataError, match=r"(Corrupt DICOM file|Corrupt pixel data in) .*2.dcm"):
        read_series(tmp_path / "s")


def test_missing_pixel_data_is_named(tmp_path):
    write_series(tmp_path / "s", 2)
    write_slice(tmp_path / "s" / "9.dcm", np.zeros((16, 16), np.uint16), instance=9,
                position=(0, 0, 50), with_pixels=False)
    with pytest.raises(DataError, match="No PixelData in .*9.dcm"):
        read_series(tmp_path / "s")


@pytest.mark.skipif(importlib.util.find_spec("pylibjpeg") is not None
                    or importlib.util.find_spec("gdcm") is not None,
                    reason="a JPEG Lossless decoder is installed here")
def test_compressed_without_decoder_says_what_to_install(tmp_path):
    write_slice(tmp_path / "s" / "1.dcm", np.zeros((16, 16), np.uint16), instance=1,
                position=(0, 0, 0), transfer_syntax=JPEGLosslessSV1)
    with pytest.raises(DataError, match=r"Cannot decode .*1.dcm: transfer syntax JPEG Lossless"
                                        r".*needs a decoder that is not installed.*pylibjpeg"):
        read_series(tmp_path / "s")


def test_corrupt_compressed_data_is_not_blamed_on_a_missing_decoder(tmp_path):
    # Pillow decodes JPEG 2000, so garbage in that syntax is corrupt data, not a missing codec
    write_slice(tmp_path / "s" / "1.dcm", np.zeros((16, 16), np.uint16), instance=1,
                position=(0, 0, 0), transfer_syntax=JPEG2000)
    with pytest.raises(DataError, match=r"Corrupt compressed pixel data \(JPEG 2000.*1.dcm"):
        read_series(tmp_path / "s")


def test_mixed_sizes_duplicates_missing_and_empty(tmp_path):
    write_series(tmp_path / "mixed", 2)
    write_slice(tmp_path / "mixed" / "7.dcm", np.zeros((8, 16), np.uint16), instance=7,
                position=(0, 0, 30))
    with pytest.raises(DataError, match="Mixed image sizes in series .*mixed: 7.dcm is 8x16"):
        read_series(tmp_path / "mixed")

    write_series(tmp_path / "dup", 2)
    write_slice(tmp_path / "dup" / "x.dcm", np.zeros((16, 16), np.uint16), instance=2,
                position=(0, 0, 30))
    with pytest.raises(DataError, match=r"Duplicate instance number 2 in series .*dup"):
        read_series(tmp_path / "dup")

    with pytest.raises(DataError, match="Series folder not found: .*nowhere"):
        read_series(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="No .dcm files in series folder .*empty"):
        read_series(tmp_path / "empty")


# --------------------------------------------------------------------------- windows


def test_window_indices_edges():
    assert window_indices(20, 10, 8).tolist() == list(range(6, 14))
    assert window_indices(20, 19, 4).tolist() == [17, 18, 19, 19]
    assert window_indices(1, 0, 3).tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="centre 5 outside a series of 5 slices"):
        window_indices(5, 5, 3)


def test_level_window_centres_on_the_labelled_instance(tmp_path):
    write_series(tmp_path / "s", 9, shape=(32, 32), instances_toward_feet=True)
    cfg = PreprocessConfig(n_slices=4, image_size=16, scale_percentiles=(0, 100))
    # instance 3 is spatial index 6 (instances run opposite to position)
    w = level_window(tmp_path / "s", 3, cfg)
    assert w.volume.shape == (4, 16, 16) and w.volume.dtype == np.float32
    assert w.indices.tolist() == [4, 5, 6, 7]
    assert w.instance_numbers.tolist() == [5, 4, 3, 2]
    means = w.volume.mean(axis=(1, 2))
    assert means[0] == 0.0 and means[-1] == 1.0 and np.all(np.diff(means) > 0)
    mid = level_window(tmp_path / "s", None, cfg)
    assert mid.indices.tolist() == [2, 3, 4, 5]


def test_level_window_bad_requests(tmp_path):
    write_series(tmp_path / "s", 3, shape=(32, 32))
    with pytest.raises(DataError, match="Instance 42 not in series .*instances 1..3"):
        level_window(tmp_path / "s", 42)
    with pytest.raises(DataError, match=r"Coordinate \(40.0, 3.0\) lies outside the 32x32 image"):
        level_window(tmp_path / "s", 1, centre_xy=(40.0, 3.0))
    with pytest.raises(DataError, match="A crop of 10.0 mm needs a centre"):
        level_window(tmp_path / "s", 1, PreprocessConfig(crop_mm=10.0))


def test_crop_follows_the_centre(tmp_path):
    folder = tmp_path / "s"
    img = np.zeros((64, 64), np.uint16)
    img[40:48, 50:58] = 1000  # a bright square near (x=54, y=44)
    write_slice(folder / "1.dcm", img, instance=1, position=(0, 0, 0), spacing=(1.0, 1.0))
    cfg = PreprocessConfig(n_slices=1, image_size=16, crop_mm=16.0, scale_percentiles=(0, 100))
    on = level_window(folder, 1, cfg, centre_xy=(54.0, 44.0)).volume
    off = level_window(folder, 1, cfg, centre_xy=(10.0, 10.0)).volume
    assert on[0, 4:12, 4:12].mean() == pytest.approx(1.0)
    assert off.max() == 0.0


# --------------------------------------------------------------------------- cache


def _expected(root, df, cfg):
    from lss.data import series_dir

    return np.stack([
        level_window(series_dir(root, r.study_id, r.series_id),
                     None if pd.isna(r.instance_number) else int(r.instance_number), cfg,
                     centre_xy=None if np.isnan(r.x) else (r.x, r.y)).volume
        for r in df.itertuples()])


def test_cache_cold_then_warm(tiny_root, tmp_path):
    df = build_index(tiny_root)
    cfg = PreprocessConfig(n_slices=4, image_size=8)
    cache = TensorCache(tiny_root, cfg, cache_dir=tmp_path / "cache")
    cold = cache.prepare(df, workers=1)
    assert (cold.hits, cold.written) == (0, 3) and cold.slices_decoded > 0
    warm = cache.prepare(df, workers=1)
    assert (warm.hits, warm.written, warm.slices_decoded) == (3, 0, 0)
    x = cache.load(df)
    assert x.shape == (3, 4, 8, 8)
    np.testing.assert_array_equal(x, _expected(tiny_root, df, cfg))


def test_cache_parallel_matches_serial(tiny_root, tmp_path):
    df = build_index(tiny_root)
    cfg = PreprocessConfig(n_slices=3, image_size=8)
    a = TensorCache(tiny_root, cfg, cache_dir=tmp_path / "a").load(df, workers=1)
    b = TensorCache(tiny_root, cfg, cache_dir=tmp_path / "b").load(df, workers=2)
    np.testing.assert_array_equal(a, b)


def test_default_workers_start_a_pool_only_for_a_job_that_repays_it(tiny_root, tmp_path,
                                                                    monkeypatch):
    import lss.data.cache as cache_mod

    used = []
    real_run = cache_mod._run
    monkeypatch.setattr(cache_mod, "_run",
                        lambda todo, w, *a, **k: used.append(w) or real_run(todo, w, *a, **k))
    monkeypatch.setattr(cache_mod.os, "cpu_count", lambda: 2)
    df = build_index(tiny_root)
    cfg = PreprocessConfig(n_slices=3, image_size=8)
    TensorCache(tiny_root, cfg, cache_dir=tmp_path / "small").prepare(df)
    monkeypatch.setattr(cache_mod, "SERIES_PER_EXTRA_WORKER", 1)
    TensorCache(tiny_root, cfg, cache_dir=tmp_path / "large").prepare(df)
    TensorCache(tiny_root, cfg, cache_dir=tmp_path / "forced").prepare(df, workers=5)
    assert used == [1, 2, 3]  # 3 series: one process; all (2) cores; capped at the tasks


def test_changed_setting_never_reads_a_stale_entry(tiny_root, tmp_path):
    df = build_index(tiny_root)
    c4 = TensorCache(tiny_root, PreprocessConfig(n_slices=4, image_size=8),
                     cache_dir=tmp_path / "c")
    c4.prepare(df, workers=1)
    c2 = TensorCache(tiny_root, PreprocessConfig(n_slices=2, image_size=8),
                     cache_dir=tmp_path / "c")
    assert c2.dir != c4.dir
    stats = c2.prepare(df, workers=1)
    assert stats.hits == 0 and stats.written == 3
    assert c2.load(df).shape == (3, 2, 8, 8)


def test_changed_series_is_recomputed(tiny_root, tmp_path):
    df = build_index(tiny_root).iloc[:1]  # study 101, series 11, instance 3
    cfg = PreprocessConfig(n_slices=1, image_size=8, scale_percentiles=(0, 100))
    cache = TensorCache(tiny_root, cfg, cache_dir=tmp_path / "c")
    before = cache.load(df, workers=1)
    path = tiny_root / "train_images" / "101" / "11" / "3.dcm"
    img = np.zeros((16, 16), np.uint16)
    img[:, 8:] = 500  # half bright: a different scaled image
    write_slice(path, img, instance=3, position=(0, 0, 12))
    stats = cache.prepare(df, workers=1)
    assert stats.written == 1
    after = cache.load(df, workers=1)
    assert not np.array_equal(before, after)


def test_crash_while_writing_leaves_no_entry(tiny_root, tmp_path, monkeypatch):
    df = build_index(tiny_root)
    cache = TensorCache(tiny_root, PreprocessConfig(n_slices=2, image_size=8),
                        cache_dir=tmp_path / "c")

    def crash(f, *args, **kwargs):
        f.write(b"PK\x03\x04 half an entry")
        raise KeyboardInterrupt("power cut")

    import lss.data.cache as cache_mod

    monkeypatch.setattr(cache_mod, "_write_entry", crash)
    with pytest.raises(KeyboardInterrupt):
        cache.prepare(df, workers=1)
    monkeypatch.undo()
    assert list(cache.dir.glob("*.npz")) == []
    assert list(cache.dir.glob(".*.tmp")) == []
    stats = cache.prepare(df, workers=1)
    assert stats.written == 3 and stats.hits == 0


def test_corrupt_or_pickled_entry_is_recomputed_not_loaded(tiny_root, tmp_path):
    df = build_index(tiny_root).iloc[:3]
    cache = TensorCache(tiny_root, PreprocessConfig(n_slices=2, image_size=8),
                        cache_dir=tmp_path / "c")
    good = cache.load(df, workers=1)
    p0, p1, p2 = cache.paths(df)
    p0.write_bytes(b"garbage")
    np.savez(p1, volume=np.array([object()], dtype=object), fingerprint=np.array("x"))
    p2.write_bytes(p2.read_bytes()[: p2.stat().st_size // 2])  # a write cut short
    stats = cache.prepare(df, workers=1)
    assert stats.written == 3
    np.testing.assert_array_equal(cache.load(df, workers=1), good)


def test_cache_surfaces_data_errors(tiny_root, tmp_path):
    df = build_index(tiny_root)
    (tiny_root / "train_images" / "101" / "11" / "3.dcm").write_bytes(b"not dicom")
    cache = TensorCache(tiny_root, PreprocessConfig(n_slices=2, image_size=8),
                        cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match="Not a DICOM file: .*101/11/3.dcm"):
        cache.prepare(df, workers=1)
    with pytest.raises(DataError, match="Not a DICOM file: .*101/11/3.dcm"):
        cache.prepare(df, workers=2)


def test_tables_only_root_is_usable_without_images(tiny_root):
    shutil.rmtree(tiny_root / "train_images")
    assert len(build_index(tiny_root, check_images=False)) == 3


def test_paths_are_strings_or_paths(tiny_root):
    assert len(build_index(str(tiny_root))) == len(build_index(Path(tiny_root)))


def test_first_file_header_reads_one_file_and_names_what_is_wrong(tmp_path):
    from lss.data.dicom import first_file_header

    folder = tmp_path / "series"
    write_series(folder, 3)
    ds = first_file_header(folder, ["Rows", "Columns"])
    assert Path(ds.filename).name == sorted(p.name for p in folder.glob("*.dcm"))[0]
    assert "PixelData" not in ds
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="No .dcm files in series folder .*empty"):
        first_file_header(tmp_path / "empty", ["Rows"])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "0.dcm").write_bytes(b"not a dicom file")
    with pytest.raises(DataError, match=r"Not a readable DICOM file: .*bad/0\.dcm"):
        first_file_header(bad, ["Rows"])
