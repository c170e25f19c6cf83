"""The disc-level localiser: shapes, the masked loss, pixel space, saving, bad studies."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from dicom_factory import write_level_root

from lss.config import LEVELS, LevelLocaliserConfig
from lss.data import DataError, scan_series
from lss.levels import (
    _from_unit_points,
    _to_unit_points,
    build_level_localiser,
    level_errors,
    level_index,
    level_points,
    load_level_localiser,
    masked_point_loss,
    predict_level_points,
    predict_levels,
    sagittal_series,
    summarise_level_errors,
    train_levels,
)
from lss.localiser import SpatialSoftArgmax

SPACING = (0.8, 0.5)  # row spacing (y), column spacing (x), mm
SHAPE = (40, 24)  # rows, cols: not square


@pytest.fixture(scope="module")
def levels_root(tmp_path_factory) -> Path:
    return write_level_root(tmp_path_factory.mktemp("levels") / "root", 20, shape=SHAPE,
                            spacing=SPACING, missing={0: ("L2/L3",), 1: tuple(LEVELS)})


@pytest.fixture(scope="module")
def trained(levels_root, tmp_path_factory):
    folder = tmp_path_factory.mktemp("lvl")
    cfg = LevelLocaliserConfig(image_size=32, filters=(8, 16), epochs=60, batch_size=8,
                               learning_rate=3e-3, shift=0.05, seed=1)
    res = train_levels(levels_root, range(1000, 1016), folder / "levels.keras", config=cfg,
                       cache_dir=folder / "cache", workers=1)
    return res, folder


def test_soft_argmax_keeps_one_point_per_channel():
    scores = np.zeros((2, 4, 8, 5), dtype="float32")
    scores[0, 1, 6, 0] = 50.0  # channel 0: row 1, column 6
    scores[0, 3, 0, 4] = 50.0  # channel 4: row 3, column 0
    uv = keras.ops.convert_to_numpy(SpatialSoftArgmax(keep_points=True)(scores))
    assert uv.shape == (2, 5, 2)
    np.testing.assert_allclose(uv[0, 0], [6.5 / 8, 1.5 / 4], atol=1e-4)
    np.testing.assert_allclose(uv[0, 4], [0.5 / 8, 3.5 / 4], atol=1e-4)
    np.testing.assert_allclose(uv[1], 0.5, atol=1e-6)
    with pytest.raises(ValueError, match="1 channel, got 5"):
        SpatialSoftArgmax()(scores)
    model = build_level_localiser(32, (4, 8))
    assert model.output_shape == (None, 5, 2)
    assert model.get_layer("scores").output.shape[1:] == (8, 8, 5)


def test_masked_loss_ignores_missing_levels():
    pred = np.full((2, 5, 2), 0.5, dtype="float32")
    true = np.full((2, 5, 2), 0.5, dtype="float32")
    true[0, 0] = (0.6, 0.7)  # |error| 0.1 and 0.2 on study 0's first level
    true[0, 1] = np.nan  # missing level: whatever the prediction, it must not count
    pred[0, 1] = (9.0, 9.0)
    true[1] = np.nan  # a study without any level: zero loss, not NaN
    loss = keras.ops.convert_to_numpy(masked_point_loss(true, pred))
    np.testing.assert_allclose(loss, [0.3 / 8, 0.0], atol=1e-6)  # 8 coordinates present
    # and no NaN reaches the weights (any backend): one training step on such targets
    model = build_level_localiser(16, (2, 2))
    x = np.random.default_rng(0).random((2, 16, 16, 1)).astype("float32")
    assert np.isfinite(model.train_on_batch(x, true))
    assert all(np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in model.weights)


def test_unit_points_round_trip_on_non_square_slices():
    shape = np.array([[40, 24], [300, 512]])
    xy = np.array([[[0.0, 39.0], [23.0, 0.0]], [[255.5, 17.25], [511.0, 299.0]]])
    uv = _to_unit_points(xy, shape)
    np.testing.assert_allclose(uv[0, 0], [0.5 / 24, 39.5 / 40])
    np.testing.assert_allclose(_from_unit_points(uv, shape), xy, atol=2e-3)


def test_index_masks_missing_levels_and_lists_studies_without_points(levels_root):
    index = level_index(levels_root, [1000, 1001, 1002])
    assert index["series_id"].tolist() == [5000, 5001, 5002]
    assert index["instance_number"].isna().all()  # the middle slice is read
    pts = level_points(index)
    assert pts.shape == (3, 5, 2)
    assert np.isnan(pts[0, 1]).all() and np.isfinite(np.delete(pts[0], 1, axis=0)).all()
    assert np.isnan(pts[1]).all() and np.isfinite(pts[2]).all()
    assert index.attrs["excluded"] == [{"study_id": 1001,
                                        "reason": "no Spinal Canal Stenosis coordinate rows"}]


def test_training_learns_the_levels_in_the_series_pixels(trained, levels_root):
    res, folder = trained
    assert res.n_train == 15 and res.excluded == [1001]  # 1000 trains on four levels
    held = level_index(levels_root, range(1016, 1020))
    pred = predict_level_points(res.model, levels_root, held, cache_dir=folder / "cache",
                                workers=1)
    truth = level_points(held)
    err = level_errors(pred, truth, np.tile(SPACING, (len(held), 1)), held["study_id"])
    train_mean = np.nanmean(level_points(level_index(levels_root, range(1000, 1016))), axis=0)
    trivial = level_errors(np.broadcast_to(train_mean, truth.shape), truth,
                           np.tile(SPACING, (len(held), 1)))
    assert err["error_mm"].median() < 0.5 * trivial["error_mm"].median(), err
    assert err["error_mm"].median() < 1.5, err


def test_predict_levels_names_the_middle_slice_and_stays_in_the_image(trained, levels_root):
    res, _ = trained
    folder = sagittal_series(levels_root, 1017)
    out = predict_levels(res.model, folder)
    assert list(out) == list(LEVELS)
    header = scan_series(folder)
    middle = int(header.instance_numbers[len(header.paths) // 2])
    # the middle slice of 10..13 in spatial order, not the labelled instance 11
    assert middle == 12 and {inst for inst, _, _ in out.values()} == {middle}
    for _, x, y in out.values():
        assert 0 <= x < SHAPE[1] and 0 <= y < SHAPE[0]
    assert predict_levels(res.model, header) == out
    ys = [y for _, _, y in out.values()]
    assert ys == sorted(ys)  # head to foot


def test_save_load_predicts_the_same(trained, levels_root):
    res, folder = trained
    path = folder / "levels.keras"
    assert res.path == path and path.with_suffix(".json").is_file()
    import json

    saved = LevelLocaliserConfig.from_dict(json.loads(path.with_suffix('.json').read_text()))
    assert saved.image_size == 32 and saved.epochs == 60
    again = load_level_localiser(path)
    series = sagittal_series(levels_root, 1018)
    a, b = predict_levels(res.model, series), predict_levels(again, series)
    for lv in LEVELS:
        assert a[lv][0] == b[lv][0]
        np.testing.assert_allclose(a[lv][1:], b[lv][1:], atol=1e-4)
    with pytest.raises(FileNotFoundError, match="Level localiser file not found"):
        load_level_localiser(folder / "missing.keras")


def test_a_study_without_a_sagittal_t2_series_is_named(levels_root, tmp_path):
    series = pd.read_csv(levels_root / "train_series_descriptions.csv")
    root = tmp_path / "root"
    root.mkdir()
    for name in ("train.csv", "train_label_coordinates.csv"):
        (root / name).write_bytes((levels_root / name).read_bytes())
    series = series[~((series.study_id == 1003) & (series.series_description != "Axial T2"))]
    series.to_csv(root / "train_series_descriptions.csv", index=False)
    coords = pd.read_csv(root / "train_label_coordinates.csv")
    coords[coords.study_id != 1003].to_csv(root / "train_label_coordinates.csv", index=False)
    for call in (lambda: sagittal_series(root, 1003), lambda: level_index(root, [1002, 1003]),
                 lambda: train_levels(root, [1003], config=LevelLocaliserConfig(epochs=1))):
        with pytest.raises(DataError, match="^Study 1003: no Sagittal T2/STIR series") as e:
            call()
        assert "\n" not in str(e.value)


def test_errors_by_hand_with_anisotropic_spacing():
    true = np.full((2, 5, 2), np.nan)
    pred = np.zeros((2, 5, 2))
    true[0, 0], pred[0, 0] = (0, 0), (3, 4)  # dx 3 px (0.5 mm), dy 4 px (0.8 mm)
    true[1, 4], pred[1, 4] = (10, 10), (10, 0)
    e = level_errors(pred, true, [SPACING, (1.0, 1.0)], [7, 8])
    assert e[["study_id", "level"]].values.tolist() == [[7, "L1/L2"], [8, "L5/S1"]]
    np.testing.assert_allclose(e["error_mm"], [np.hypot(1.5, 3.2), 10.0])
    np.testing.assert_allclose(e["head_foot_mm"], [3.2, 10.0])
    s = summarise_level_errors(e)
    assert s.index.tolist() == ["L1/L2", "L5/S1", "all"] and s.loc["all", "max_hf_mm"] == 10.0


def test_config_checks_and_round_trip():
    with pytest.raises(ValueError, match="multiple of 4"):
        LevelLocaliserConfig(image_size=30)
    with pytest.raises(ValueError, match="shift"):
        LevelLocaliserConfig(shift=0.5)
    cfg = LevelLocaliserConfig(filters=[4, 8])
    assert LevelLocaliserConfig.from_dict(cfg.to_dict()) == cfg
    assert LevelLocaliserConfig().seed == 0
