"""Tests for lss.model: shapes, parameter count, augmentation, save/load, training."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from lss.config import Config
from lss.model import (
    SliceAugmentation,
    _warp,
    build_augmentation,
    build_cnn_lstm,
    build_from_config,
    compile_model,
    count_flops,
    load_model,
)

Z, S = 4, 32


@pytest.fixture
def volumes() -> np.ndarray:
    return np.random.default_rng(0).random((3, Z, S, S, 1), dtype=np.float32)


def test_output_shape_and_softmax(volumes):
    model = build_cnn_lstm(Z, S, filters=(4, 8), lstm_units=8, dense_units=8)
    assert model.input_shape == (None, Z, S, S, 1)
    proba = keras.ops.convert_to_numpy(model(volumes, training=False))
    assert proba.shape == (3, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert (proba > 0).all()


def test_layer_names():
    model = build_cnn_lstm(Z, S)
    names = [layer.name for layer in model.layers]
    assert names == ["volume", "slice_features", "lstm", "dropout", "dense", "severity"]
    cnn = model.get_layer("slice_features").layer
    assert cnn.name == "slice_cnn"
    assert [layer.name for layer in cnn.layers] == [
        "conv1",
        "pool1",
        "conv2",
        "pool2",
        "conv3",
        "pool3",
        "gap",
    ]


def test_default_parameter_count():
    # conv 320 + 18,496 + 73,856; LSTM 4*(128*64 + 64*64 + 64) = 49,408;
    # dense 64*64 + 64 = 4,160; softmax 64*3 + 3 = 195.
    model = build_cnn_lstm(8, 128)
    assert model.count_params() == 146_435
    assert model.get_layer("slice_features").count_params() == 92_672
    # global average pooling: independent of the number and size of slices
    assert build_cnn_lstm(3, 64).count_params() == 146_435


def test_count_flops_by_hand():
    model = build_cnn_lstm(2, 8, filters=(4,), lstm_units=3, dense_units=5)
    conv = 2 * (8 * 8 * 4 * 3 * 3 * 1)  # per slice
    lstm = 2 * 2 * 4 * 3 * (4 + 3)
    dense = 2 * 3 * 5 + 2 * 5 * 3
    assert count_flops(model) == 2 * conv + lstm + dense == 9_612
    assert count_flops(build_cnn_lstm(8, 128)) == 2_492_211_584


def test_count_flops_refuses_unknown_layers():
    inp = keras.Input((4, 6))
    out = keras.layers.GRU(2, name="gru")(inp)
    with pytest.raises(ValueError, match="does not know layer 'gru'"):
        count_flops(keras.Model(inp, out))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_slices": 0}, "n_slices must be a positive integer, got 0"),
        ({"n_slices": 4, "image_size": 4}, "image_size 4 is too small for 3 pooling"),
        ({"n_slices": 4, "n_classes": 1}, "n_classes must be an integer >= 2, got 1"),
        ({"n_slices": 4, "filters": ()}, "filters must name at least one"),
        ({"n_slices": 4, "filters": (8, 0)}, "each entry of filters must be a positive"),
        ({"n_slices": 4, "lstm_units": 2.5}, "lstm_units must be a positive integer"),
        ({"n_slices": 4, "dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
        ({"n_slices": 4, "augmentation": "flip"}, "augmentation must be a keras Layer"),
    ],
)
def test_build_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_cnn_lstm(**kwargs)


def test_build_augmentation_none_and_errors():
    assert build_augmentation(rotation_degrees=0, zoom=0, horizontal_flip=False) is None
    with pytest.raises(ValueError, match=r"zoom must be in \[0, 1\), got 1.5"):
        build_augmentation(rotation_degrees=0, zoom=1.5, horizontal_flip=False)
    with pytest.raises(ValueError, match="rotation_degrees must be in"):
        build_augmentation(rotation_degrees=-5, zoom=0, horizontal_flip=False)
    with pytest.raises(ValueError, match="expects input of shape"):
        SliceAugmentation(zoom=0.1)(np.zeros((1, 4, 8, 8, 3), "float32"))


def _smooth_image(rng: np.random.Generator) -> np.ndarray:
    """A blob off centre, so rotation and zoom visibly move it."""
    yy, xx = np.mgrid[0:S, 0:S]
    img = np.exp(-((yy - 10.0) ** 2 + (xx - 21.0) ** 2) / 20.0)
    return (img + 0.1 * rng.random((S, S))).astype(np.float32)


def test_augmentation_same_transform_for_all_slices():
    rng = np.random.default_rng(1)
    img = _smooth_image(rng)
    # slice k = (k + 1) * img: a transform shared by the slices keeps that ratio
    # (bilinear interpolation and zero fill are linear); per-slice transforms would not.
    scale = np.arange(1, Z + 1, dtype=np.float32)
    x = np.broadcast_to(
        scale[None, :, None, None, None] * img[None, None, :, :, None], (6, Z, S, S, 1)
    ).copy()
    aug = build_augmentation(rotation_degrees=30, zoom=0.2, horizontal_flip=True, seed=3)
    out = keras.ops.convert_to_numpy(aug(x, training=True))
    assert out.shape == x.shape
    for k in range(Z):
        np.testing.assert_allclose(out[:, k], scale[k] * out[:, 0], rtol=1e-4, atol=1e-5)
    # it did transform, and differently for different samples of the batch
    assert np.abs(out - x).max() > 0.1
    assert np.abs(out[0] - out[1]).max() > 1e-3


def test_augmentation_is_identity_unless_training(volumes):
    aug = build_augmentation(rotation_degrees=30, zoom=0.2, horizontal_flip=True, seed=0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(aug(volumes, training=False)), volumes)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(aug(volumes)), volumes)
    model = build_cnn_lstm(Z, S, filters=(4,), augmentation=aug)
    np.testing.assert_array_equal(
        model.predict(volumes, verbose=0), model.predict(volumes, verbose=0)
    )


def test_horizontal_flip_mirrors_left_right():
    # A bright pixel on the image's right (the patient's left) in every slice.
    n = 16
    x = np.zeros((n, Z, S, S, 1), np.float32)
    x[:, :, 12, S - 3, 0] = 1.0
    aug = build_augmentation(rotation_degrees=0, zoom=0, horizontal_flip=True, seed=0)
    out = keras.ops.convert_to_numpy(aug(x, training=True))
    flipped = [not np.array_equal(out[i], x[i]) for i in range(n)]
    assert 0 < sum(flipped) < n  # each sample flipped with probability 1/2
    for i in range(n):
        expected = x[i, :, :, ::-1] if flipped[i] else x[i]
        np.testing.assert_array_equal(out[i], expected)
    i = flipped.index(True)
    assert (out[i, :, 12, 2, 0] == 1).all() and (out[i, :, 12, S - 3, 0] == 0).all()


def _rotation(degrees: float, scale: float = 1.0) -> np.ndarray:
    t = math.radians(degrees)
    return scale * np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]], "float32")


def test_warp_identity_rotation_and_zoom():
    img = np.random.default_rng(2).random((2, 12, 12, 3), dtype=np.float32)
    same = keras.ops.convert_to_numpy(_warp(img, np.stack([np.eye(2, dtype="float32")] * 2)))
    np.testing.assert_array_equal(same, img)
    # +90 degrees turns the content counter-clockwise as displayed (rows downwards)
    turned = keras.ops.convert_to_numpy(_warp(img, np.stack([_rotation(90)] * 2)))
    np.testing.assert_allclose(turned, np.rot90(img, k=1, axes=(1, 2)), atol=1e-5)
    # zoom factor 0.5 magnifies about the centre; bilinear is exact on a linear ramp
    yy, xx = np.mgrid[0:12, 0:12].astype(np.float32)
    ramp = (xx + 2 * yy)[None, :, :, None]
    zoomed = keras.ops.convert_to_numpy(_warp(ramp, (0.5 * np.eye(2, dtype="float32"))[None]))
    c = 5.5
    expected = (c + 0.5 * (xx - c)) + 2 * (c + 0.5 * (yy - c))
    np.testing.assert_allclose(zoomed[0, :, :, 0], expected, atol=1e-5)


def test_warp_matches_scipy_map_coordinates():
    # An independent float64 reference. (Keras' own affine_transform is not one on a
    # GPU: under JAX it computes coordinates with an einsum that runs in TF32 there.)
    img = np.random.default_rng(3).random((2, 24, 20, 3), dtype=np.float32)
    mats = np.stack([_rotation(20, 1.1), _rotation(-7, 0.9)])
    yy, xx = np.mgrid[0:24, 0:20].astype(np.float64)
    cy, cx = 11.5, 9.5
    expected = np.empty_like(img)
    for b, m in enumerate(mats.astype(np.float64)):
        x_in = cx + m[0, 0] * (xx - cx) + m[0, 1] * (yy - cy)
        y_in = cy + m[1, 0] * (xx - cx) + m[1, 1] * (yy - cy)
        for ch in range(3):
            expected[b, :, :, ch] = map_coordinates(
                img[b, :, :, ch].astype(np.float64), [y_in, x_in], order=1,
                mode="grid-constant", cval=0.0,
            )  # fmt: skip
    np.testing.assert_allclose(keras.ops.convert_to_numpy(_warp(img, mats)), expected, atol=1e-5)


def test_save_load_round_trip(tmp_path, volumes):
    aug = build_augmentation(rotation_degrees=10, zoom=0.1, horizontal_flip=False, seed=0)
    model = compile_model(build_cnn_lstm(Z, S, filters=(4, 8), augmentation=aug))
    model.optimizer.build(model.trainable_variables)
    path = tmp_path / "model.keras"
    model.save(path)
    expected = model.predict(volumes, verbose=0)
    for loaded in (load_model(path), keras.models.load_model(path, safe_mode=True)):
        np.testing.assert_array_equal(loaded.predict(volumes, verbose=0), expected)
        assert loaded.get_layer("augmentation").get_config()["rotation_degrees"] == 10.0
    with pytest.raises(ValueError, match="Expected a '.keras' file, got"):
        load_model(tmp_path / "model.h5")
    with pytest.raises(FileNotFoundError, match="missing.keras"):
        load_model(tmp_path / "missing.keras")


def test_one_training_step_changes_weights(volumes):
    cfg = Config().replace(
        n_slices=Z,
        image_size=S,
        cnn_filters=(4, 8),
        lstm_units=8,
        dense_units=8,
        learning_rate=1e-2,
    )
    model = build_from_config(cfg)
    assert model.get_layer("augmentation").horizontal_flip is True  # the paper's setting
    before = [w.copy() for w in model.get_weights()]
    y = keras.utils.to_categorical([0, 1, 2], 3)
    history = model.fit(volumes, y, batch_size=3, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert set(history.history) == {"loss", "accuracy"}
    changed = [not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True)]
    assert all(changed)


def test_compile_model_rejects_bad_learning_rate():
    with pytest.raises(ValueError, match="learning_rate must be positive, got 0"):
        compile_model(build_cnn_lstm(Z, S), learning_rate=0)


JAX_SCRIPT = textwrap.dedent(
    """
    import numpy as np, keras
    assert keras.backend.backend() == "jax", keras.backend.backend()
    from lss.model import build_augmentation, build_cnn_lstm, compile_model, load_model
    aug = build_augmentation(rotation_degrees=10, zoom=0.1, horizontal_flip=True, seed=0)
    model = compile_model(build_cnn_lstm(4, 32, filters=(4, 8), augmentation=aug),
                          learning_rate=1e-2)
    x = np.random.default_rng(0).random((4, 4, 32, 32, 1), dtype=np.float32)
    y = keras.utils.to_categorical([0, 1, 2, 0], 3)
    before = [w.copy() for w in model.get_weights()]
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    same = np.repeat(x[:, :1], 4, axis=1)  # four identical slices per sample
    out = keras.ops.convert_to_numpy(aug(same, training=True))
    np.testing.assert_allclose(out, np.repeat(out[:, :1], 4, axis=1), rtol=1e-5, atol=1e-6)
    assert np.abs(out - same).max() > 0.01
    proba = model.predict(x, verbose=0)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    model.save("{path}")
    np.testing.assert_array_equal(load_model("{path}").predict(x, verbose=0), proba)
    print("jax ok")
    """
)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_builds_and_trains_under_jax(tmp_path):
    script = JAX_SCRIPT.replace("{path}", str(tmp_path / "jax_model.keras"))
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "jax ok" in proc.stdout


def test_softmax_stays_float32_under_mixed_precision(volumes):
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = compile_model(build_cnn_lstm(Z, S, filters=(4,), lstm_units=4, dense_units=4))
    finally:
        keras.mixed_precision.set_global_policy(before)
    assert model.get_layer("slice_features").layer.get_layer("conv1").compute_dtype == "bfloat16"
    assert model.get_layer("dense").compute_dtype == "bfloat16"
    # float32: the softmax (full-precision probabilities) and the LSTM (no float16 cuDNN
    # RNN kernel under JAX)
    assert model.get_layer("lstm").compute_dtype == "float32"
    assert model.get_layer("severity").compute_dtype == "float32"
    proba = model(volumes, training=False)
    assert keras.backend.standardize_dtype(proba.dtype) == "float32"
    np.testing.assert_allclose(keras.ops.convert_to_numpy(proba).sum(axis=1), 1.0, rtol=1e-6)


def test_flatten_pooling_keeps_where_features_fired():
    from lss.model import build_cnn_lstm

    avg = build_cnn_lstm(2, 32, filters=(4, 8), pooling="average")
    flat = build_cnn_lstm(2, 32, filters=(4, 8), pooling="flatten")
    # the LSTM's input grows from F = 8 to 8 * (32 / 4)**2 = 512 features per slice
    assert avg.get_layer("slice_features").output.shape[-1] == 8
    assert flat.get_layer("slice_features").output.shape[-1] == 512
    assert flat.count_params() - avg.count_params() == 4 * 64 * (512 - 8)
    with pytest.raises(ValueError, match="pooling must be 'average' or 'flatten', got 'max'"):
        build_cnn_lstm(2, 32, pooling="max")


def test_config_passes_pooling_through():
    from lss.config import Config
    from lss.model import build_from_config

    m = build_from_config(Config().replace(n_slices=2, image_size=32, pooling="flatten"))
    assert m.get_layer("slice_features").output.shape[-1] == 128 * 4 * 4
    with pytest.raises(ValueError, match="pooling must be"):
        Config().replace(pooling="max")


def test_only_tensorflows_retracing_warning_is_dropped(caplog):
    """lss quiets one benign TensorFlow warning (many small models counted as one
    function retracing), and nothing else that TensorFlow logs."""
    import logging

    import lss.model  # noqa: F401  (installs the filter)

    tf_log = logging.getLogger("tensorflow")
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        tf_log.warning("5 out of the last 75 calls to <function f> triggered tf.function "
                       "retracing. Tracing is expensive")
        tf_log.warning("a warning that matters")
    assert [r.getMessage() for r in caplog.records] == ["a warning that matters"]
