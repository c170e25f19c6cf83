"""Tests for lss.interpret: sentences, Grad-CAM and occlusion maps."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

from lss.interpret import (
    _gradient,
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


def test_gradient_matches_the_analytic_gradient():
    # fn(a) = sum(w * sin(a)) + sum(a @ K): d fn / da = w * cos(a) + K.sum(axis=1), on
    # every backend (a wrong or missing term, or a gradient of zeros, fails)
    rng = np.random.default_rng(2)
    a = rng.normal(size=(3, 5)).astype(np.float32)
    w = rng.normal(size=(3, 5)).astype(np.float32)
    dense = keras.layers.Dense(4, use_bias=False)
    dense.build((None, 5))
    kernel = rng.normal(size=(5, 4)).astype(np.float32)
    dense.set_weights([kernel])

    def fn(x):
        return keras.ops.sum(keras.ops.multiply(w, keras.ops.sin(x))) + keras.ops.sum(dense(x))

    got = _gradient(fn, a)
    assert got.shape == a.shape and isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, w * np.cos(a) + kernel.sum(axis=1), rtol=1e-5, atol=1e-6)


def test_gradient_through_a_convolution_matches_finite_differences():
    keras.utils.set_random_seed(3)
    conv = keras.layers.Conv2D(2, 3, padding="same", activation="tanh")
    x = np.random.default_rng(3).random((2, 6, 6, 1)).astype(np.float32)
    conv.build(x.shape)

    def fn(a):
        return keras.ops.sum(conv(a) ** 2)

    def value(a):
        return float(keras.ops.convert_to_numpy(fn(a)))

    got = _gradient(fn, x)
    eps = 1e-2
    for index in [(0, 0, 0, 0), (0, 2, 3, 0), (1, 5, 1, 0), (1, 3, 3, 0)]:
        up, down = x.copy(), x.copy()
        up[index] += eps
        down[index] -= eps
        numeric = (value(up) - value(down)) / (2 * eps)
        assert got[index] == pytest.approx(numeric, rel=1e-2, abs=1e-3), index


def test_gradient_names_a_backend_it_does_not_support(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "numpy")
    with pytest.raises(NotImplementedError, match="not 'numpy'; occlusion_sensitivity"):
        _gradient(keras.ops.sum, np.ones(2, np.float32))


@pytest.mark.skipif(keras.backend.backend() != "torch",
                    reason="torch.no_grad() is a PyTorch context (KERAS_BACKEND=torch)")
def test_grad_cam_under_torch_no_grad(toy_volume):
    import torch

    model = toy_model()
    with torch.no_grad():
        cam = grad_cam(model, toy_volume, class_index=0)
    np.testing.assert_array_equal(cam, grad_cam(model, toy_volume, class_index=0))
    assert cam.max() == 1


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


def test_grad_cam_under_mixed_bfloat16_is_float32_and_near_the_float32_map():
    # a model built under mixed_bfloat16 (lss.device's policy on a CPU with native
    # bfloat16): the map is float32, in [0, 1], and close to the float32 model's
    volume = np.random.default_rng(4).random((4, 32, 32, 1), dtype=np.float32)
    keras.utils.set_random_seed(5)
    plain = build_cnn_lstm(4, 32, filters=(4, 8))
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        half = build_cnn_lstm(4, 32, filters=(4, 8))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    half.set_weights(plain.get_weights())
    assert half.get_layer("slice_features").layer.compute_dtype == "bfloat16"
    want = grad_cam(plain, volume, class_index=1)
    got = grad_cam(half, volume, class_index=1)
    assert got.dtype == np.float32 and got.min() >= 0 and got.max() == pytest.approx(1)
    assert np.abs(got - want).mean() < 0.05, np.abs(got - want).mean()


def two_class_reader() -> keras.Model:
    """Class 0's logit is 3 x the mean of slice 0; class 1's is -3 x the mean of slice 2.

    Per slice: identity 1x1 convolution ("conv") -> mean; then a 3-class softmax dense
    layer. Class 0's logit does not depend on slice 2, but its probability does:
    brightening slice 2 lowers class 1 and so raises p_0.
    """
    cnn = keras.Sequential(
        [
            keras.Input((S, S, 1)),
            keras.layers.Conv2D(1, 1, use_bias=False, name="conv"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
        ],
        name="slice_cnn",
    )
    inp = keras.Input((Z, S, S, 1))
    x = keras.layers.TimeDistributed(cnn, name="slice_features")(inp)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(3, activation="softmax", name="out")(x)
    model = keras.Model(inp, out)
    cnn.get_layer("conv").set_weights([np.ones((1, 1, 1, 1), np.float32)])
    kernel = np.zeros((Z, 3), np.float32)
    kernel[0, 0], kernel[2, 1] = 3.0, -3.0
    model.get_layer("out").set_weights([kernel, np.array([0.0, 1.0, 0.0], np.float32)])
    return model


def test_grad_cam_differentiates_the_logit_not_the_probability(toy_volume):
    # d logit_0 / dA is 3 / (S * S) on slice 0 and 0 elsewhere: the map is slice 0's
    # volume scaled to max 1. The probability's gradient would be positive on slice 2
    # too (p_0 * p_1 * 3 / (S * S)), lighting a slice class 0's score never reads.
    cam = grad_cam(two_class_reader(), toy_volume, class_index=0)
    expected = np.zeros((Z, S, S), np.float32)
    expected[0] = toy_volume[0] / toy_volume[0].max()
    np.testing.assert_allclose(cam, expected, atol=1e-5)


def test_grad_cam_ignores_a_shift_of_the_bias():
    # a constant added to a class's bias changes every probability but no logit's
    # gradient, so the map stays; the probability's gradient would change with it
    keras.utils.set_random_seed(0)
    model = build_cnn_lstm(4, 32, filters=(4, 8), dropout=0.5)
    volume = np.random.default_rng(4).random((4, 32, 32, 1), dtype=np.float32)
    before = [grad_cam(model, volume, class_index=c) for c in range(3)]
    assert all(b.max() == 1 for b in before)  # not a vacuous comparison of empty maps
    layer = model.get_layer("severity")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel, bias + np.array([3.0, 0.0, -3.0], np.float32)])
    for c in range(3):
        np.testing.assert_allclose(grad_cam(model, volume, class_index=c), before[c],
                                   atol=1e-5)


def test_grad_cam_needs_a_softmax_dense_at_the_end(toy_volume):
    model = two_class_reader()
    logits = keras.layers.Dense(3, name="logits")(model.get_layer("out").input)
    with pytest.raises(ValueError, match="end in a Dense layer with softmax activation"):
        grad_cam(keras.Model(model.input, logits), toy_volume)


def test_grad_cam_needs_a_slice_cnn(toy_volume):
    inp = keras.Input((Z, S, S, 1))
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(inp)))
    with pytest.raises(ValueError, match="has no TimeDistributed"):
        grad_cam(model, toy_volume)


# ------------------------------------------------------ architecture, features, figures

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from lss.interpret import (  # noqa: E402
    architecture_table,
    lstm_states,
    most_wrong,
    slice_features,
    window_point,
)
from lss.paper import paper_comparison  # noqa: E402
from lss.viz import (  # noqa: E402
    plot_architecture,
    plot_montage,
    plot_paper_comparison,
    plot_saliency,
    plot_sequence,
    plot_slices,
)


@pytest.fixture
def small_model() -> keras.Model:
    aug = build_augmentation(rotation_degrees=10, zoom=0.1, horizontal_flip=False, seed=0)
    return build_cnn_lstm(4, 32, filters=(4, 8), lstm_units=5, dense_units=6, augmentation=aug)


def test_architecture_table_lists_the_per_slice_cnn_once(small_model):
    t = architecture_table(small_model)
    assert int(t.parameters.sum()) == small_model.count_params()
    per_slice = t[t.stage == "per slice (shared weights)"]
    assert per_slice.layer.tolist() == ["conv1", "pool1", "conv2", "pool2", "gap",
                                        "slice_features"]
    assert per_slice["output shape"].tolist() == ["32 x 32 x 4", "16 x 16 x 4", "16 x 16 x 8",
                                                  "8 x 8 x 8", "8", "4 x 8"]
    assert t.set_index("layer").loc["lstm", "stage"] == "sequence"
    assert t.set_index("layer").loc["severity", "output shape"] == "3"
    assert t.set_index("layer").loc["augmentation", "stage"] == "input"
    ax = plot_architecture(small_model, data_label="toy")
    assert "parameters" in ax.get_title() and "toy" in ax.get_title()
    plt.close("all")


def test_slice_features_are_the_time_distributed_output(small_model):
    volume = np.random.default_rng(2).random((4, 32, 32), dtype=np.float32)
    f = slice_features(small_model, volume)
    assert f.shape == (4, 8) and f.dtype == np.float32
    td = keras.Model(small_model.input, small_model.get_layer("slice_features").output)
    np.testing.assert_allclose(f, keras.ops.convert_to_numpy(td(volume[None, ..., None]))[0],
                               rtol=1e-5, atol=1e-6)
    # shared weights: a slice's features do not depend on its position in the window
    np.testing.assert_allclose(slice_features(small_model, volume[::-1])[::-1], f, rtol=1e-5,
                               atol=1e-6)


def test_lstm_states_end_in_the_lstm_output(small_model):
    volume = np.random.default_rng(3).random((4, 32, 32, 1), dtype=np.float32)
    h = lstm_states(small_model, volume)
    assert h.shape == (4, 5)
    out = keras.Model(small_model.input, small_model.get_layer("lstm").output)
    np.testing.assert_allclose(h[-1], keras.ops.convert_to_numpy(out(volume[None]))[0],
                               rtol=1e-4, atol=1e-6)
    ax = plot_sequence(h, what="unit", labelled_index=2, data_label="toy")
    assert ax.get_yticklabels()[2].get_text() == "2 (labelled)"
    plt.close("all")
    with pytest.raises(ValueError, match="values must be 2-D"):
        plot_sequence(h[0])


def test_window_point_with_and_without_crop():
    from types import SimpleNamespace

    w = SimpleNamespace(centre_xy=(99.5, 49.5), source_shape=(100, 200))
    assert window_point(w, 100) == (49.5, 49.5)  # columns halve, rows keep their scale
    # a crop centred on the point: the point lands in the middle of the window
    x, y = window_point(w, 64, crop_px=(40, 40))
    assert abs(x - 31.5) < 1 and abs(y - 31.5) < 1
    assert window_point(SimpleNamespace(centre_xy=None, source_shape=(9, 9)), 8) is None


def test_plot_slices_montage_and_saliency():
    rng = np.random.default_rng(0)
    volume = rng.random((4, 16, 16), dtype=np.float32)
    sal = np.zeros_like(volume)
    sal[2, 4:8, 4:8] = 1.0
    axes = plot_slices(volume, overlay=sal, point=(5.0, 6.0), label="row")
    assert len(axes) == 4 and axes[2].get_title() == "slice 2 (labelled)"
    assert len(axes[2].images) == 2 and len(axes[2].lines) == 1 and not axes[0].lines
    plt.close("all")
    axes = plot_saliency(volume, sal, point=(5.0, 6.0), labelled_index=1, data_label="toy data")
    assert axes.shape == (2, 4)
    assert "toy data" in axes[0, 0].figure._suptitle.get_text()
    assert axes[1, 1].get_title() == "slice 1 (labelled)"
    plt.close("all")
    axes = plot_montage([volume] * 3, row_labels=["a", "b", "c"], title="t", data_label="toy")
    assert axes.shape == (3, 4) and axes[1, 0].get_ylabel() == "b"
    plt.close("all")
    with pytest.raises(ValueError, match="data_label must name the data"):
        plot_montage([volume], title="t", data_label="")
    with pytest.raises(ValueError, match=r"overlay must have the volume's shape"):
        plot_slices(volume, overlay=sal[:2])
    with pytest.raises(ValueError, match=r"saliency must hold finite values in \[0, 1\]"):
        plot_saliency(volume, sal * 2, data_label="toy")
    with pytest.raises(ValueError, match=r"labelled_index must be in \[0, 3\], got 4"):
        plot_slices(volume, labelled_index=4)
    plt.close("all")


def test_most_wrong_puts_confident_mistakes_first():
    df = pd.DataFrame({
        "study_id": [1, 2, 3, 4],
        "label": [0, 1, 2, 0],
        "p_Normal/Mild": [0.9, 0.6, 0.3, 0.2],
        "p_Moderate": [0.05, 0.3, 0.3, 0.7],
        "p_Severe": [0.05, 0.1, 0.4, 0.1],
    })
    out = most_wrong(df, 3)
    assert out.study_id.tolist() == [4, 2, 3]  # wrong, by p(true); then the least sure right
    assert out.true.tolist() == ["Normal/Mild", "Moderate", "Severe"]
    assert out.predicted_grade.tolist() == ["Moderate", "Normal/Mild", "Severe"]
    np.testing.assert_allclose(out.p_true, [0.2, 0.3, 0.4])
    assert most_wrong(df, 10).shape[0] == 4
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['p_Severe'\]"):
        most_wrong(df.drop(columns="p_Severe"))


def test_paper_comparison_labels_both_columns():
    from lss.config import PAPER_RESULTS, REAL_CLASS_COUNTS, REAL_MAJORITY_SHARE

    h = pd.DataFrame({"epoch": [0, 1, 2], "loss": [1.1, 1.0, 0.9],
                      "val_loss": [1.05, 0.95, 1.0], "val_accuracy": [0.4, 0.6, 0.5]})
    t = paper_comparison(h, majority_accuracy=0.45, data_label="synthetic phantom (seed 0)")
    paper, run = t.columns
    assert "paper" in paper and "real scans" in paper
    assert run == "this run (synthetic phantom (seed 0))"
    assert t.loc["val accuracy, last epoch", paper] == PAPER_RESULTS["val_accuracy"]
    assert t.loc["val accuracy, last epoch", run] == 0.5
    assert t.loc["val accuracy, epoch kept (lowest val loss)", run] == 0.6
    assert t.loc["accuracy of always Normal/Mild (reference)", paper] == round(
        REAL_MAJORITY_SHARE, 4)
    assert t.loc["log loss of the class shares (reference)", run] == "-"
    assert t.loc["val accuracy, epoch kept (lowest val loss)", paper] == "-"
    assert t.loc["epochs", paper] == 20 and isinstance(t.loc["epochs", run], int)
    t2 = paper_comparison(h, majority_accuracy=0.45, data_label="x", prior_log_loss=1.01)
    assert t2.loc["log loss of the class shares (reference)"].round(4).tolist() == [1.0632, 1.01]
    assert REAL_CLASS_COUNTS[0] / sum(REAL_CLASS_COUNTS) == REAL_MAJORITY_SHARE
    assert t.loc["train loss, last epoch", run] == 0.9 and t.loc["epochs", run] == 3
    axes = plot_paper_comparison(h, majority_accuracy=0.45, data_label="phantom",
                                 prior_log_loss=1.0)
    assert len(axes[0].lines) == 6  # 2 run curves, 2 paper pairs, 2 reference lines
    title = axes[0].figure._suptitle.get_text()
    assert "This run: phantom" in title and "real scans" in title
    plt.close("all")
    with pytest.raises(ValueError, match="data_label must name the data"):
        paper_comparison(h, majority_accuracy=0.4, data_label=" ")
    with pytest.raises(ValueError, match="history must have rows with"):
        paper_comparison(h.drop(columns="val_loss"), majority_accuracy=0.4, data_label="x")
