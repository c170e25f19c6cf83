"""Tests for lss.interpret: sentences, Grad-CAM and occlusion maps."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

from lss.interpret import (
    describe_prediction,
    describe_predictions,
    grad_cam,
    occlusion_sensitivity,
)
from lss.model import build_augmentation, build_cnn_lstm

Z, S = 3, 16
ROWS, COLS = slice(4, 8), slice(8, 12)  # the region the toy model reads, on the 4-px grid
READ_SLICE = 1  # the slice the toy model reads


def test_describe_prediction_exact_text():
    assert (
        describe_prediction([0.30, 0.62, 0.08])
        == "Left subarticular stenosis at L4/L5: Moderate (p = 0.62)"
    )
    assert (
        describe_prediction(np.array([0.996, 0.002, 0.002], np.float32), level="L5/S1")
        == "Left subarticular stenosis at L5/S1: Normal/Mild (p = 1.00)"
    )
    assert (
        describe_prediction([0.1, 0.1, 0.8], condition="spinal_canal_stenosis")
        == "Spinal canal stenosis at L4/L5: Severe (p = 0.80)"
    )


@pytest.mark.parametrize(
    ("proba", "match"),
    [
        ([0.5, 0.5], r"must have 3 entries, got shape \(2,\)"),
        ([0.5, 0.3, 0.3], "must sum to 1 \\(within 1e-3\\), got sum 1.1"),
        ([1.2, -0.1, -0.1], "must be finite and non-negative"),
        ([np.nan, 0.5, 0.5], "must be finite and non-negative"),
    ],
)
def test_describe_prediction_rejects_bad_proba(proba, match):
    with pytest.raises(ValueError, match=match):
        describe_prediction(proba)


def test_describe_prediction_rejects_unknown_level():
    with pytest.raises(ValueError, match="Unknown level 'L4-L5'"):
        describe_prediction([1.0, 0.0, 0.0], level="L4-L5")


def test_describe_predictions_frame():
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.25, 0.65]])
    df = describe_predictions(["s1", "s2"], proba)
    assert list(df.columns) == [
        "study_id",
        "prediction",
        "description",
        "normal_mild",
        "moderate",
        "severe",
    ]
    assert df.study_id.tolist() == ["s1", "s2"]
    assert df.prediction.tolist() == ["Normal/Mild", "Severe"]
    assert df.description[1] == "Left subarticular stenosis at L4/L5: Severe (p = 0.65)"
    np.testing.assert_allclose(df[["normal_mild", "moderate", "severe"]].to_numpy(), proba)
    with pytest.raises(ValueError, match=r"duplicates \['s1'\]"):
        describe_predictions(["s1", "s1"], proba)
    with pytest.raises(ValueError, match=r"proba must have shape \(3, 3\) for 3 study_ids"):
        describe_predictions(["a", "b", "c"], proba)
    with pytest.raises(ValueError, match="proba of study s2 must sum to 1"):
        describe_predictions(pd.Series(["s1", "s2"]), [[1, 0, 0], [0.5, 0.2, 0.2]])


def toy_model() -> keras.Model:
    """Class 0's evidence is the mean of one region of one slice, and nothing else.

    Per slice: identity 1x1 convolution ("conv") -> crop to the region -> mean; then a
    dense layer that weights only slice READ_SLICE for class 0 (class 1 gets 0).
    """
    cnn = keras.Sequential(
        [
            keras.Input((S, S, 1)),
            keras.layers.Conv2D(1, 1, use_bias=False, name="conv"),
            keras.layers.Cropping2D(
                ((ROWS.start, S - ROWS.stop), (COLS.start, S - COLS.stop)), name="crop"
            ),
            keras.layers.GlobalAveragePooling2D(name="gap"),
        ],
        name="slice_cnn",
    )
    inp = keras.Input((Z, S, S, 1))
    x = keras.layers.TimeDistributed(cnn, name="slice_features")(inp)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(2, activation="softmax", name="out")(x)
    model = keras.Model(inp, out)
    cnn.get_layer("conv").set_weights([np.ones((1, 1, 1, 1), np.float32)])
    kernel = np.zeros((Z, 2), np.float32)
    kernel[READ_SLICE, 0] = 3.0
    model.get_layer("out").set_weights([kernel, np.zeros(2, np.float32)])
    return model


@pytest.fixture
def toy_volume() -> np.ndarray:
    return (0.5 + 0.5 * np.random.default_rng(0).random((Z, S, S))).astype(np.float32)


def test_occlusion_finds_the_region_the_model_reads(toy_volume):
    model = toy_model()
    m = occlusion_sensitivity(model, toy_volume, class_index=0, patch=4)
    assert m.shape == (Z, S, S) and m.dtype == np.float32
    # blanking the region zeroes class 0's logit: p0 falls from sigmoid(3 * mean) to 1/2
    p_ref = 1 / (1 + np.exp(-3 * toy_volume[READ_SLICE, ROWS, COLS].mean()))
    inside = np.zeros_like(m, dtype=bool)
    inside[READ_SLICE, ROWS, COLS] = True
    np.testing.assert_allclose(m[inside], (p_ref - 0.5) / p_ref, rtol=1e-3)
    assert m[~inside].max() < 1e-3  # blanking anything else changes nothing
    # class 1 gains from blanking the region: no positive evidence anywhere
    assert occlusion_sensitivity(model, toy_volume, class_index=1, patch=4).max() == 0


def test_occlusion_overlapping_patches_and_errors(toy_volume):
    model = toy_model()
    m = occlusion_sensitivity(model, toy_volume, class_index=0, patch=4, stride=2, batch_size=7)
    assert m.shape == (Z, S, S)
    inside = np.zeros((S, S), dtype=bool)
    inside[ROWS, COLS] = True
    # overlapping patches spill up to 3 px past the region, but the peak is inside
    assert m[READ_SLICE][inside].mean() > 2 * m[READ_SLICE][~inside].mean() > 0
    assert inside[np.unravel_index(m[READ_SLICE].argmax(), (S, S))]
    assert m[[0, 2]].max() < 1e-3
    with pytest.raises(ValueError, match="patch 32 is larger than the slice"):
        occlusion_sensitivity(model, toy_volume, patch=32)
    with pytest.raises(ValueError, match="stride must be a positive integer, got 0"):
        occlusion_sensitivity(model, toy_volume, stride=0)
    with pytest.raises(ValueError, match=r"class_index must be in \[0, 1\], got 2"):
        occlusion_sensitivity(model, toy_volume, class_index=2)
    with pytest.raises(ValueError, match=r"volume must have shape \(3, 16, 16, 1\)"):
        occlusion_sensitivity(model, toy_volume[:2])


def test_grad_cam_matches_hand_computation(toy_volume):
    # Only slice READ_SLICE gets gradient, so alpha is positive there and 0 elsewhere;
    # the map is relu(alpha * A) = alpha * volume on that slice, scaled to max 1.
    model = toy_model()
    cam = grad_cam(model, toy_volume, class_index=0)
    assert cam.shape == (Z, S, S) and cam.dtype == np.float32
    expected = np.zeros((Z, S, S), np.float32)
    expected[READ_SLICE] = toy_volume[READ_SLICE] / toy_volume[READ_SLICE].max()
    np.testing.assert_allclose(cam, expected, atol=1e-5)
    # class 1's probability falls as the region brightens: no supporting feature
    assert grad_cam(model, toy_volume, class_index=1).max() == 0
    # the default class is the predicted one (class 0: its logit is positive)
    np.testing.assert_array_equal(grad_cam(model, toy_volume), cam)


def test_grad_cam_on_the_cnn_lstm():
    aug = build_augmentation(rotation_degrees=10, zoom=0.1, horizontal_flip=False, seed=0)
    model = build_cnn_lstm(4, 32, filters=(4, 8), augmentation=aug)
    volume = np.random.default_rng(1).random((4, 32, 32, 1), dtype=np.float32)
    for c in (0, 1, 2):
        cam = grad_cam(model, volume, class_index=c)
        assert cam.shape == (4, 32, 32)
        assert cam.min() >= 0 and cam.max() <= 1
    cam = grad_cam(model, volume, layer_name="conv1")
    assert cam.shape == (4, 32, 32) and np.isfinite(cam).all()
    with pytest.raises(ValueError, match="No layer named 'conv9' in slice CNN 'slice_cnn'"):
        grad_cam(model, volume, layer_name="conv9")


def test_grad_cam_needs_a_slice_cnn(toy_volume):
    inp = keras.Input((Z, S, S, 1))
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(inp)))
    with pytest.raises(ValueError, match="has no TimeDistributed"):
        grad_cam(model, toy_volume)
