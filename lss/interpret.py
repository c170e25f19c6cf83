"""Reading a prediction: the paper's sentence, and where in the volume the model looked.

* :func:`describe_prediction` / :func:`describe_predictions` turn probabilities into
  the sentence the paper reports, e.g. ``"Left subarticular stenosis at L4/L5:
  Moderate (p = 0.62)"``.
* :func:`grad_cam` is Grad-CAM (Selvaraju et al., 2017) on the last convolution of the
  per-slice CNN, differentiating the class's logit: one gradient pass, under
  TensorFlow, JAX or PyTorch.
* :func:`occlusion_sensitivity` blanks one patch of one slice at a time and records
  how much the class probability falls. It needs only ``model.predict``, so it runs on
  every Keras backend, and it measures what the model actually uses; it costs one
  forward pass per patch.
* :func:`window_point` finds the labelled point in a model window;
  :func:`most_wrong` picks the studies to look at (:func:`lss.viz.plot_saliency`
  draws the maps).
* :func:`architecture_table`, :func:`slice_features` and :func:`lstm_states` show what
  each stage of the CNN-LSTM receives and passes on.

Both maps are ``(n_slices, H, W)`` arrays in [0, 1] over the whole volume, so slices
can be compared with each other: Grad-CAM is divided by its maximum, occlusion is the
fraction of the class probability lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import pandas as pd

from lss.config import SEVERITIES, condition_title
from lss.data.window import source_to_window
from lss.model import shape_text, slice_cnn

__all__ = ["describe_prediction", "describe_predictions", "grad_cam", "occlusion_sensitivity",
           "architecture_table", "slice_features", "lstm_states", "window_point", "most_wrong"]

#: Column of each class probability in :func:`describe_predictions` (the RSNA
#: submission's spelling): "normal_mild", "moderate", "severe".
_PROBA_COLUMNS = tuple(s.lower().replace("/", "_") for s in SEVERITIES)


def _check_proba_row(proba: Any, what: str = "proba") -> np.ndarray:
    p = np.array(proba, dtype=np.float64)
    if p.shape != (len(SEVERITIES),):
        raise ValueError(f"{what} must have {len(SEVERITIES)} entries, got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError(f"{what} must be finite and non-negative, got {p.tolist()}")
    if abs(p.sum() - 1) > 1e-3:
        raise ValueError(f"{what} must sum to 1 (within 1e-3), got sum {p.sum():.6g}")
    return p


def describe_prediction(
    proba: Sequence[float] | np.ndarray,
    *,
    condition: str = "left_subarticular_stenosis",
    level: str = "L4/L5",
) -> str:
    """The predicted grade as a sentence, with its probability to two decimals.

    Parameters
    ----------
    proba : (3,) array of float
        Probabilities of Normal/Mild, Moderate, Severe; must sum to 1 (within 1e-3).
    condition, level : str
        The target, as in :func:`lss.config.condition_title`.

    Examples
    --------
    >>> describe_prediction([0.30, 0.62, 0.08])
    'Left subarticular stenosis at L4/L5: Moderate (p = 0.62)'
    """
    p = _check_proba_row(proba)
    c = int(p.argmax())
    return f"{condition_title(condition, level)}: {SEVERITIES[c]} (p = {p[c]:.2f})"


def describe_predictions(
    study_ids: Sequence[Any],
    proba: np.ndarray,
    *,
    condition: str = "left_subarticular_stenosis",
    level: str = "L4/L5",
) -> pd.DataFrame:
    """One row per study: the sentence, the predicted grade and the probabilities.

    Parameters
    ----------
    study_ids : sequence
        One unique ID per row of ``proba``.
    proba : (N, 3) array of float
        Rows as in :func:`describe_prediction`.

    Returns
    -------
    pandas.DataFrame
        Columns ``study_id``, ``prediction`` (a name from ``SEVERITIES``),
        ``description``, and ``normal_mild``, ``moderate``, ``severe``.

    Examples
    --------
    >>> df = describe_predictions([101, 102], [[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]])
    >>> df.prediction.tolist()
    ['Normal/Mild', 'Severe']
    """
    ids = list(study_ids)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != len(ids):
        raise ValueError(
            f"proba must have shape ({len(ids)}, {len(SEVERITIES)}) for {len(ids)} "
            f"study_ids, got {p.shape}"
        )
    duplicated = pd.Series(ids)[pd.Series(ids).duplicated()].unique().tolist()
    if duplicated:
        raise ValueError(f"study_ids must be unique, got duplicates {duplicated[:10]}")
    rows = []
    for sid, row in zip(ids, p, strict=True):
        checked = _check_proba_row(row, f"proba of study {sid}")
        rows.append(
            {
                "study_id": sid,
                "prediction": SEVERITIES[int(checked.argmax())],
                "description": describe_prediction(checked, condition=condition, level=level),
                **dict(zip(_PROBA_COLUMNS, checked.tolist(), strict=True)),
            }
        )
    columns = ["study_id", "prediction", "description", *_PROBA_COLUMNS]
    return pd.DataFrame(rows, columns=columns)


def _check_volume(model: keras.Model, volume: Any) -> np.ndarray:
    """``volume`` as float32 ``(Z, H, W, 1)`` matching the model's input."""
    v = np.asarray(volume, dtype=np.float32)
    if v.ndim == 3:
        v = v[..., None]
    expected = tuple(model.input_shape[1:])
    if v.ndim != 4 or any(
        e is not None and e != s for e, s in zip(expected, v.shape, strict=False)
    ):
        raise ValueError(
            f"volume must have shape {expected} (or without the channel axis), got "
            f"{np.shape(volume)}"
        )
    if not np.isfinite(v).all():
        raise ValueError("volume contains NaN or infinite values")
    return v


def _class_index(class_index: int | None, proba: np.ndarray) -> int:
    if class_index is None:
        return int(np.argmax(proba))
    if isinstance(class_index, bool) or int(class_index) != class_index:
        raise ValueError(f"class_index must be an integer or None, got {class_index!r}")
    if not 0 <= class_index < proba.shape[-1]:
        raise ValueError(f"class_index must be in [0, {proba.shape[-1] - 1}], got {class_index}")
    return int(class_index)


def _scale(m: np.ndarray) -> np.ndarray:
    top = float(m.max())
    out = m / top if top > 0 else np.zeros_like(m)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _split_for_grad_cam(
    model: keras.Model, layer_name: str | None
) -> tuple[keras.Model | None, list[keras.layers.Layer], list[keras.layers.Layer],
           Callable[[Any], Any]]:
    """(prefix up to the per-slice CNN, CNN layers to the target, the rest, class scores).

    The last item maps the per-slice CNN's output ``(1, Z, F)`` to the class scores
    before the softmax, ``(1, n_classes)`` (:func:`_class_scores`).
    """
    wrappers = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.TimeDistributed)
        and isinstance(layer.layer, keras.Sequential)
    ]
    if not wrappers:
        raise ValueError(
            f"model '{model.name}' has no TimeDistributed(keras.Sequential) slice CNN; "
            "grad_cam needs one (use occlusion_sensitivity for other models)"
        )
    td = wrappers[0]
    cnn_layers = list(td.layer.layers)
    if layer_name is None:
        convs = [layer for layer in cnn_layers if isinstance(layer, keras.layers.Conv2D)]
        if not convs:
            raise ValueError(f"slice CNN '{td.layer.name}' has no Conv2D layer")
        target = convs[-1]
    else:
        names = [layer.name for layer in cnn_layers]
        if layer_name not in names:
            raise ValueError(
                f"No layer named '{layer_name}' in slice CNN '{td.layer.name}'; "
                f"its layers are {names}"
            )
        target = cnn_layers[names.index(layer_name)]
    i = cnn_layers.index(target)
    prefix = None if td.input is model.input else keras.Model(model.input, td.input)
    return prefix, cnn_layers[: i + 1], cnn_layers[i + 1 :], _class_scores(model, td)


def _class_scores(model: keras.Model, td: keras.layers.Layer) -> Callable[[Any], Any]:
    """The model after ``td`` up to its class scores: the logits its softmax receives.

    Grad-CAM differentiates the class score before the softmax (Selvaraju et al.,
    2017): the gradient of a softmax probability ``p_c`` is
    ``p_c * (dz_c - sum_j p_j dz_j)``, so it also credits features that lower the
    *other* classes, and it vanishes where ``p_c`` saturates. The model is not
    modified: the layers between ``td`` and the output ``Dense`` run as a sub-model, and
    the logit is that ``Dense``'s own ``x @ kernel + bias``.

    Raises ``ValueError`` unless the model ends in a ``Dense`` with softmax activation
    (as every :func:`lss.model.build_cnn_lstm` model does, with either pooling).
    """
    out = model.layers[-1]
    if not (isinstance(out, keras.layers.Dense) and out.output is model.output
            and out.activation is keras.activations.softmax):
        raise ValueError(
            f"grad_cam needs model '{model.name}' to end in a Dense layer with softmax "
            f"activation (to read its logits), got '{out.name}' ({type(out).__name__}); "
            "use occlusion_sensitivity for other models"
        )
    body = None if out.input is td.output else keras.Model(td.output, out.input)

    def scores(a: Any) -> Any:
        x = a if body is None else body(a, training=False)
        x = keras.ops.cast(x, out.compute_dtype)  # the Dense's own cast (mixed precision)
        z = keras.ops.matmul(x, keras.ops.cast(out.kernel, out.compute_dtype))
        return z if out.bias is None else z + keras.ops.cast(out.bias, out.compute_dtype)

    return scores


def _gradient(fn: Callable[[Any], Any], x: np.ndarray) -> np.ndarray:
    """``d fn(x) / dx`` for a scalar ``fn`` of Keras layers and ops, an array like ``x``.

    By ``tf.GradientTape`` under TensorFlow, ``jax.grad`` under JAX and
    ``torch.autograd.grad`` under PyTorch (on Keras' device); any other backend raises
    ``NotImplementedError``.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        xt = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = fn(xt)
        return tape.gradient(y, xt).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(fn)(jax.numpy.asarray(x)))
    if backend == "torch":
        import torch

        with torch.enable_grad():  # also inside a caller's torch.no_grad()
            xt = keras.ops.convert_to_tensor(x).detach().requires_grad_(True)
            return torch.autograd.grad(fn(xt), xt)[0].detach().cpu().numpy()
    raise NotImplementedError(
        f"grad_cam supports the tensorflow, jax and torch backends, not '{backend}'; "
        "occlusion_sensitivity works on every backend"
    )


def grad_cam(
    model: keras.Model,
    volume: np.ndarray,
    *,
    class_index: int | None = None,
    layer_name: str | None = None,
) -> np.ndarray:
    """Grad-CAM per slice on the last convolution of the per-slice CNN.

    For slice ``z`` with feature maps ``A[z, :, :, k]`` of the chosen convolution and
    ``g = d z_c / d A``, the gradient of the class score ``z_c`` before the softmax (the
    logit), as in Selvaraju et al. (2017),

    ``alpha[z, k] = mean_{i,j} g[z, i, j, k]``,
    ``cam[z] = relu(sum_k alpha[z, k] * A[z, :, :, k])``,

    resized bilinearly to the slice size and divided by its maximum over the volume.

    Grad-CAM weights whole feature channels, so it shows which slices and which
    feature types drive the prediction; within a slice it highlights wherever those
    features are active, which need not be where the model reads them. Use
    :func:`occlusion_sensitivity` to check a region.

    Parameters
    ----------
    model : keras.Model
        A model with a ``TimeDistributed(keras.Sequential)`` slice CNN that ends in a
        ``Dense`` layer with softmax activation, as built by
        :func:`lss.model.build_cnn_lstm`. Layers before the slice CNN (augmentation)
        and dropout run in inference mode. The logit is that last layer's
        ``x @ kernel + bias``, computed beside the model, which is not modified.
    volume : (Z, H, W) or (Z, H, W, 1) array
        One study's level window, shaped like the model's input.
    class_index : int or None
        Class to explain; default: the predicted class.
    layer_name : str or None
        A layer of the slice CNN; default: its last ``Conv2D``.

    Returns
    -------
    (Z, H, W) float32 ndarray in [0, 1]
        All zeros when no feature supports the class.

    Raises
    ------
    ValueError
        When the model has no such slice CNN or does not end in a softmax ``Dense``
        (use :func:`occlusion_sensitivity` then).

    Notes
    -----
    The logit, not the probability: the probability's gradient also credits features
    that lower the other classes, and it fades where the prediction is confident.
    Adding a constant to a class's bias changes its probability but not the map.

    Gradients are taken with ``tf.GradientTape`` under the TensorFlow backend,
    ``jax.grad`` under JAX and ``torch.autograd.grad`` under PyTorch; other backends
    raise ``NotImplementedError``.
    """
    v = _check_volume(model, volume)
    prefix, front, back, scores = _split_for_grad_cam(model, layer_name)
    proba = keras.ops.convert_to_numpy(model(v[None], training=False))[0]
    c = _class_index(class_index, proba)

    x = v[None] if prefix is None else prefix(v[None], training=False)
    x = keras.ops.reshape(x, v.shape)  # the slices as a batch: (Z, H, W, 1)
    for layer in front:
        x = layer(x, training=False)
    # (Z, h, w, K), in float32 also under a mixed policy, so that the gradient and the
    # weighted sum are taken at full precision (the layers cast back as they compute)
    features = np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float32)

    def class_score(a: Any) -> Any:
        for layer in back:
            a = layer(a, training=False)
        return scores(keras.ops.reshape(a, (1, v.shape[0], -1)))[0, c]

    grads = _gradient(class_score, features)
    alpha = grads.mean(axis=(1, 2), keepdims=True)  # (Z, 1, 1, K)
    cam = np.maximum((alpha * features).sum(axis=-1), 0.0)  # (Z, h, w)
    cam = keras.ops.image.resize(cam[..., None], v.shape[1:3], interpolation="bilinear")
    return _scale(keras.ops.convert_to_numpy(cam)[..., 0])


def occlusion_sensitivity(
    model: keras.Model,
    volume: np.ndarray,
    *,
    class_index: int | None = None,
    patch: int = 16,
    stride: int | None = None,
    fill: float = 0.0,
    batch_size: int = 32,
) -> np.ndarray:
    """How much the class probability falls when a patch of a slice is blanked.

    For every slice ``z`` and every patch position (a grid with step ``stride``), the
    patch of that slice alone is set to ``fill`` and the model is run; the map at each
    pixel is the mean fall ``p_c(volume) - p_c(occluded)`` over the patches that cover
    it, negatives set to 0, divided by ``p_c(volume)``: the fraction of the class
    probability lost. It is not stretched to a maximum of 1, so a map of weak effects
    stays faint instead of magnifying numerical noise (rescale it for display).

    Costs ``Z * ceil(H / stride) * ceil(W / stride)`` forward passes (512 for 8 slices of
    128 x 128 with 16-pixel patches). Works on every Keras backend.

    Parameters
    ----------
    model : keras.Model
        Any model taking ``(batch, Z, H, W, 1)`` and returning class probabilities.
    volume : (Z, H, W) or (Z, H, W, 1) array
        One study's level window.
    class_index : int or None
        Class to explain; default: the predicted class.
    patch : int
        Side of the square patch, in pixels.
    stride : int or None
        Step between patches; default ``patch`` (no overlap).
    fill : float
        Value written into the patch (0 is background after intensity scaling).
    batch_size : int
        Occluded volumes per forward pass.

    Returns
    -------
    (Z, H, W) float32 ndarray in [0, 1]
    """
    v = _check_volume(model, volume)
    z, h, w, _ = v.shape
    stride = patch if stride is None else stride
    for value, what in ((patch, "patch"), (stride, "stride"), (batch_size, "batch_size")):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{what} must be a positive integer, got {value!r}")
    if patch > min(h, w):
        raise ValueError(f"patch {patch} is larger than the slice ({h} x {w})")
    # The reference runs in a batch of the same size as the occluded ones: on a GPU,
    # kernels chosen per batch size differ in the last bits, which would otherwise
    # show as a faint floor of "sensitivity" everywhere.
    proba = np.asarray(model.predict_on_batch(np.repeat(v[None], batch_size, axis=0)))[0]
    c = _class_index(class_index, proba)

    tops = range(0, h, stride)
    lefts = range(0, w, stride)
    positions = [(s, r, q) for s in range(z) for r in tops for q in lefts]
    drop = np.zeros((z, h, w))
    cover = np.zeros((z, h, w))
    for start in range(0, len(positions), batch_size):
        chunk = positions[start : start + batch_size]
        batch = np.repeat(v[None], batch_size, axis=0)  # full size: one traced shape
        for i, (s, r, q) in enumerate(chunk):
            batch[i, s, r : r + patch, q : q + patch] = fill
        p = np.asarray(model.predict_on_batch(batch))[: len(chunk), c]
        for (s, r, q), p_occluded in zip(chunk, p, strict=True):
            drop[s, r : r + patch, q : q + patch] += proba[c] - p_occluded
            cover[s, r : r + patch, q : q + patch] += 1
    if proba[c] <= 0:
        return np.zeros((z, h, w), np.float32)
    lost = np.maximum(drop / np.maximum(cover, 1), 0.0) / proba[c]
    return np.clip(lost, 0.0, 1.0).astype(np.float32)


# ------------------------------------------------------------ the model, stage by stage


def architecture_table(model: keras.Model) -> pd.DataFrame:
    """The model stage by stage: each layer's output shape and parameters.

    The per-slice CNN inside ``TimeDistributed`` is listed layer by layer, with the
    shape of *one* slice's output; its parameters are counted once, because every
    slice goes through the same weights.

    Parameters
    ----------
    model : keras.Model
        As built by :func:`lss.model.build_cnn_lstm`.

    Returns
    -------
    pandas.DataFrame
        Columns ``stage`` ("input", "per slice (shared weights)", "sequence", "head"),
        ``layer``, ``type``, ``output shape`` (without the batch axis) and ``parameters``.
        The parameters add up to ``model.count_params()``.

    Examples
    --------
    >>> from lss.model import build_cnn_lstm
    >>> t = architecture_table(build_cnn_lstm(4, 32, filters=(8,)))
    >>> t["output shape"].tolist()[:3], int(t.parameters.sum())
    (['4 x 32 x 32 x 1', '32 x 32 x 8', '16 x 16 x 8'], 23123)
    """
    td = slice_cnn(model)
    rows: list[dict[str, Any]] = []
    seen_td = False
    for layer in model.layers:
        if layer is td:
            for inner in td.layer.layers:
                rows.append({"stage": "per slice (shared weights)", "layer": inner.name,
                             "type": type(inner).__name__,
                             "output shape": shape_text(inner.output.shape),
                             "parameters": inner.count_params()})
            rows.append({"stage": "per slice (shared weights)", "layer": td.name,
                         "type": "TimeDistributed", "output shape": shape_text(td.output.shape),
                         "parameters": 0})
            seen_td = True
            continue
        if isinstance(layer, keras.layers.InputLayer):
            stage, shape = "input", layer.output.shape
        else:
            stage = "head" if seen_td and not isinstance(layer, keras.layers.RNN) else (
                "sequence" if seen_td else "input")
            shape = layer.output.shape
        rows.append({"stage": stage, "layer": layer.name, "type": type(layer).__name__,
                     "output shape": shape_text(shape), "parameters": layer.count_params()})
    return pd.DataFrame(rows, columns=["stage", "layer", "type", "output shape", "parameters"])


def slice_features(model: keras.Model, volume: np.ndarray) -> np.ndarray:
    """What the LSTM receives: one feature vector per slice, ``(Z, F)``.

    The per-slice CNN (the layer inside ``TimeDistributed``) is applied to each slice
    on its own, in inference mode (no augmentation).

    Parameters
    ----------
    model : keras.Model
        As built by :func:`lss.model.build_cnn_lstm`.
    volume : (Z, H, W) or (Z, H, W, 1) array
        One study's window.
    """
    v = _check_volume(model, volume)
    cnn = slice_cnn(model).layer
    return np.asarray(keras.ops.convert_to_numpy(cnn(v, training=False)), dtype=np.float32)


def lstm_states(model: keras.Model, volume: np.ndarray) -> np.ndarray:
    """The LSTM's hidden state after each slice, ``(Z, units)``; the last row is its output.

    A copy of the model's LSTM that returns the whole sequence is run on
    :func:`slice_features`, with the trained weights.
    """
    lstm = next((layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)), None)
    if lstm is None:
        raise ValueError(f"model '{model.name}' has no LSTM layer")
    features = slice_features(model, volume)
    config = {**lstm.get_config(), "return_sequences": True, "name": "lstm_sequence",
              "dtype": "float32"}
    copy = keras.layers.LSTM.from_config(config)
    copy.build((1, *features.shape))
    copy.set_weights(lstm.get_weights())
    return np.asarray(keras.ops.convert_to_numpy(copy(features[None])), np.float32)[0]


# --------------------------------------------------------------------------- slices and maps


def window_point(window: Any, image_size: int, *, crop_px: tuple[int, int] | None = None
                 ) -> tuple[float, float] | None:
    """Where the labelled point ``(x, y)`` of the source slice lies in the window's pixels.

    Parameters
    ----------
    window : lss.data.Window
        From :func:`lss.data.level_window` (its ``centre_xy`` and ``source_shape``).
    image_size : int
        The window's side, ``PreprocessConfig.image_size``.
    crop_px : (rows, cols), optional
        The crop in source pixels when ``PreprocessConfig.crop_mm`` was set (the point is
        then the crop's centre).

    Returns
    -------
    (x, y) in window pixels, or None when the window records no point.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> w = SimpleNamespace(centre_xy=(255.5, 127.5), source_shape=(512, 512))
    >>> window_point(w, 128)
    (63.5, 31.5)
    """
    if window.centre_xy is None or not np.all(np.isfinite(window.centre_xy)):
        return None
    return source_to_window(window.centre_xy, window, image_size, crop_px=crop_px)


def most_wrong(predictions: pd.DataFrame, n: int = 4) -> pd.DataFrame:
    """The ``n`` studies whose true grade got the lowest probability.

    Parameters
    ----------
    predictions : DataFrame
        As written by :func:`lss.evaluate.evaluate_run` (``predictions.csv``):
        ``study_id``, ``label``, ``p_Normal/Mild``, ``p_Moderate``, ``p_Severe``,
        ``predicted``.

    Returns
    -------
    DataFrame
        Those rows, worst first, with ``true`` and ``predicted_grade`` (names) and
        ``p_true`` (the probability of the true grade) added. Correct predictions are
        included only when fewer than ``n`` rows are wrong.

    Examples
    --------
    >>> df = pd.DataFrame({"study_id": [1, 2], "label": [0, 2], "predicted": [0, 0],
    ...     "p_Normal/Mild": [.8, .7], "p_Moderate": [.1, .2], "p_Severe": [.1, .1]})
    >>> most_wrong(df, 1)[["study_id", "true", "p_true"]].to_dict("records")
    [{'study_id': 2, 'true': 'Severe', 'p_true': 0.1}]
    """
    columns = [f"p_{s}" for s in SEVERITIES]
    missing = sorted({"study_id", "label", *columns} - set(predictions.columns))
    if missing:
        raise ValueError(f"predictions lacks column(s) {missing} (use predictions.csv)")
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    df = predictions.copy()
    proba = df[columns].to_numpy(dtype=float)
    labels = df["label"].to_numpy(dtype=int)
    df["p_true"] = proba[np.arange(len(df)), labels]
    df["true"] = [SEVERITIES[i] for i in labels]
    df["predicted_grade"] = [SEVERITIES[i] for i in proba.argmax(axis=1)]
    df["_wrong"] = proba.argmax(axis=1) != labels
    df = df.sort_values(["_wrong", "p_true"], ascending=[False, True], kind="stable")
    return df.drop(columns="_wrong").head(int(n)).reset_index(drop=True)
