"""The localiser: coordinates, errors by hand, learning a trivial point, safe saving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dicom_factory import write_slice, write_tables

from lss.config import LocaliserConfig
from lss.data import build_index
from lss.localiser import (
    SpatialSoftArgmax,
    build_localiser,
    from_unit,
    load_localiser,
    localiser_errors,
    predict_centres,
    save_localiser,
    series_geometry,
    to_unit,
    train_localiser,
)

SPACING = (0.8, 0.5)  # row spacing (y), column spacing (x), mm


def write_moving_square_root(root: Path, n_studies: int = 24, *, size: int = 32,
                             seed: int = 0) -> Path:
    """Studies whose labelled point is the centre of a bright square placed at random."""
    rng = np.random.default_rng(seed)
    studies = {}
    for k in range(n_studies):
        sid, ser = 2000 + k, 6000 + k
        cx, cy = rng.integers(6, size - 6, size=2)
        studies[sid] = {"label": ("Normal/Mild", "Moderate", "Severe")[k % 3],
                        "series": [(ser, "Axial T2")],
                        "coord": (ser, 2, float(cx) - 0.5, float(cy) - 0.5)}
        for z in range(3):
            img = rng.integers(0, 100, (size, size)).astype(np.uint16)
            img[cy - 3:cy + 3, cx - 3:cx + 3] += 1500
            write_slice(root / "train_images" / str(sid) / str(ser) / f"{z + 1}.dcm", img,
                        instance=z + 1, position=(0, 0, 4.0 * z), spacing=SPACING)
    write_tables(root, studies)
    return root


@pytest.fixture(scope="module")
def squares(tmp_path_factory) -> Path:
    return write_moving_square_root(tmp_path_factory.mktemp("squares") / "root")


def test_errors_computed_by_hand_with_anisotropic_spacing():
    pred = [[13.0, 14.0], [10.0, 10.0], [0.0, 20.0]]
    true = [[10.0, 10.0], [10.0, 10.0], [0.0, 10.0]]
    # dx, dy = (3, 4), (0, 0), (0, 10); spacing: y 0.8 mm, x 0.5 mm
    e = localiser_errors(pred, true, [0.8, 0.5])
    np.testing.assert_allclose(e.error_px, [5.0, 0.0, 10.0])
    np.testing.assert_allclose(e.error_mm, [np.hypot(1.5, 3.2), 0.0, 8.0])
    assert e.fraction_within == pytest.approx(2 / 3)  # 3.53 mm and 0 mm; 8 mm is out
    s = e.summary()
    assert s["n"] == 3 and s["median_px"] == 5.0 and s["max_mm"] == 8.0
    # per-row spacing, and the tolerance is a parameter
    e2 = localiser_errors(pred, true, [[1, 1], [1, 1], [0.4, 0.4]], within_mm=4.0)
    np.testing.assert_allclose(e2.error_mm, [5.0, 0.0, 4.0])
    assert e2.fraction_within == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="finite"):
        localiser_errors([[np.nan, 0]], [[0, 0]], [1, 1])


def test_unit_coordinates_round_trip_on_non_square_images():
    shape = np.array([[300, 400], [512, 512]])
    xy = np.array([[0.0, 299.0], [255.5, 17.25]])
    uv = to_unit(xy, shape)
    np.testing.assert_allclose(uv[0], [0.5 / 400, 299.5 / 300])
    np.testing.assert_allclose(from_unit(uv, shape), xy, atol=2e-3)
    # predictions outside the image are clipped into it (level_window refuses outside)
    out = from_unit(np.array([[-0.1, 1.2]]), np.array([[10, 20]]))
    assert 0 <= out[0, 0] < 20 and 0 <= out[0, 1] < 10


def test_soft_argmax_returns_the_peak_and_the_centre_of_a_flat_map():
    import keras

    scores = np.zeros((2, 4, 8, 1), dtype="float32")
    scores[0, 1, 6, 0] = 50.0  # row 1, column 6 of a 4 x 8 grid
    uv = keras.ops.convert_to_numpy(SpatialSoftArgmax()(scores))
    np.testing.assert_allclose(uv[0], [6.5 / 8, 1.5 / 4], atol=1e-4)
    np.testing.assert_allclose(uv[1], [0.5, 0.5], atol=1e-6)


def test_geometry_reads_size_and_spacing(squares):
    geo = series_geometry(squares, build_index(squares).head(2))
    assert geo.to_dict("list") == {"rows": [32, 32], "cols": [32, 32],
                                   "spacing_y": [0.8, 0.8], "spacing_x": [0.5, 0.5]}


@pytest.fixture(scope="module")
def trained(squares, tmp_path_factory):
    folder = tmp_path_factory.mktemp("loc")
    index = build_index(squares)
    cfg = LocaliserConfig(image_size=32, filters=(8, 16), epochs=60, batch_size=8,
                          learning_rate=3e-3, shift=0.1, seed=1)
    res = train_localiser(squares, index.iloc[:18], folder / "localiser.keras", config=cfg,
                          cache_dir=folder / "cache", workers=1)
    return res, index, folder


def test_localiser_points_near_the_truth_on_held_out_studies(trained, squares):
    res, index, folder = trained
    held_out = index.iloc[18:].reset_index(drop=True)
    pred = predict_centres(res.model, squares, held_out, cache_dir=folder / "cache", workers=1)
    truth = held_out[["x", "y"]].to_numpy()
    err = localiser_errors(pred, truth, SPACING)
    # guessing the training points' mean is the trivial localiser to beat
    mean_guess = np.tile(index.iloc[:18][["x", "y"]].mean().to_numpy(), (len(truth), 1))
    trivial = localiser_errors(mean_guess, truth, SPACING)
    assert np.median(err.error_px) < 2.5, err.error_px
    assert np.median(err.error_px) < 0.4 * np.median(trivial.error_px)
    assert res.n_train == 18 and res.excluded == []


def test_save_load_is_safe_and_predicts_the_same(trained, squares, tmp_path):
    res, index, folder = trained
    path = folder / "localiser.keras"
    assert path.is_file() and path.with_suffix(".json").is_file()
    again = load_localiser(path)
    x = np.random.default_rng(0).random((3, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(again.predict(x, verbose=0), res.model.predict(x, verbose=0),
                               atol=1e-6)
    with pytest.raises(ValueError, match="'.keras'"):
        load_localiser(tmp_path / "model.h5")
    with pytest.raises(FileNotFoundError, match="Localiser file not found"):
        load_localiser(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match="'.keras'"):
        save_localiser(res.model, tmp_path / "model.h5")


def test_prediction_never_reads_the_rows_points(trained, squares):
    res, index, folder = trained
    rows = index.iloc[18:].reset_index(drop=True)
    scrambled = rows.copy()
    scrambled[["x", "y"]] = np.random.default_rng(0).uniform(-1e3, 1e3, (len(rows), 2))
    a = predict_centres(res.model, squares, rows, cache_dir=folder / "cache", workers=1)
    b = predict_centres(res.model, squares, scrambled.drop(columns=["x", "y"]).assign(
        x=np.nan, y=np.nan), cache_dir=folder / "cache", workers=1)
    c = predict_centres(res.model, squares, scrambled, cache_dir=folder / "cache", workers=1)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_rows_without_a_point_are_left_out_of_training(squares, tmp_path):
    index = build_index(squares).head(4).copy()
    index.loc[index.index[0], ["x", "y"]] = np.nan
    res = train_localiser(squares, index, config=LocaliserConfig(image_size=16, filters=(2, 2),
                                                                  epochs=1), workers=1,
                          cache_dir=tmp_path)
    assert res.n_train == 3 and res.excluded == [int(index.study_id.iloc[0])]
    assert res.path is None and isinstance(res.history, pd.DataFrame)


def test_config_checks_and_builder():
    with pytest.raises(ValueError, match="multiple of 4"):
        LocaliserConfig(image_size=30)
    with pytest.raises(ValueError, match="shift"):
        LocaliserConfig(shift=0.6)
    cfg = LocaliserConfig(filters=[4, 8])
    assert LocaliserConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="Unknown key"):
        LocaliserConfig.from_dict({"size": 3})
    model = build_localiser(32, (4, 8, 8))
    assert model.output_shape == (None, 2) and model.get_layer("scores").output.shape[1] == 8


def test_mirrored_rows_train_and_predict_in_the_left_s_place(squares, tmp_path):
    """Rows flagged ``mirror`` are flipped left-right, slice and point, in training; a
    mirrored prediction is flipped back. Trained with every other row mirrored, the
    localiser still finds the held-out squares; asked for a mirrored prediction, it
    answers at the same pixel as the plain one (a missing flip back would put it at
    ``cols - 1 - x``)."""
    from lss.data import scan_series, series_dir
    from lss.localiser import centres_for_series

    index = build_index(squares)
    rows = index.iloc[:18].assign(mirror=np.arange(18) % 2 == 1)
    cfg = LocaliserConfig(image_size=32, filters=(8, 16), epochs=60, batch_size=8,
                          learning_rate=3e-3, shift=0.1, seed=1)
    res = train_localiser(squares, rows, config=cfg, cache_dir=tmp_path, workers=1)
    held_out = index.iloc[18:].reset_index(drop=True)
    pred = predict_centres(res.model, squares, held_out, cache_dir=tmp_path, workers=1)
    err = localiser_errors(pred, held_out[["x", "y"]].to_numpy(), SPACING)
    assert np.median(err.error_px) < 2.5, err.error_px
    headers = [scan_series(series_dir(squares, r.study_id, r.series_id))
               for r in held_out.itertuples()]
    instances = held_out["instance_number"].astype(int).tolist()
    plain = np.array(centres_for_series(res.model, headers, instances))
    mirrored = np.array(centres_for_series(res.model, headers, instances,
                                           mirror=[True] * len(headers)))
    assert np.median(np.abs(mirrored - plain)[:, 0]) < 2.0
    assert np.median(np.abs(mirrored[:, 0] - (31 - plain[:, 0]))) > 4.0
    with pytest.raises(ValueError, match="2 headers but 2 instances and 1 mirror"):
        centres_for_series(res.model, headers[:2], instances[:2], mirror=[True])
