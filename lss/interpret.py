"""Reading a prediction: the paper's sentence, and where in the volume the model looked.

* :func:`describe_prediction` / :func:`describe_predictions` turn probabilities into
  the sentence the paper reports, e.g. ``"Left subarticular stenosis at L4/L5:
  Moderate (p = 0.62)"``.
* :func:`grad_cam` is Grad-CAM (Selvaraju et al., 2017) on the last convolution of the
  per-slice CNN: one gradient pass, under TensorFlow or JAX.
* :func:`occlusion_sensitivity` blanks one patch of one slice at a time and records
  how much the class probability falls. It needs only ``model.predict``, so it runs on
  every Keras backend, and it measures what the model actually uses; it costs one
  forward pass per patch.
* :func:`plot_saliency` lays either map over the slices, with the labelled point;
  :func:`most_wrong` picks the studies to look at.
* :func:`architecture_table`, :func:`plot_architecture`, :func:`slice_features` and
  :func:`lstm_states` show what each stage of the CNN-LSTM receives and passes on.
* :func:`paper_comparison` and :func:`plot_paper_comparison` put a run beside the
  paper's reported figures, each labelled with its data.

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

from lss.config import PAPER_EPOCHS, REAL_CLASS_COUNTS, SEVERITIES, condition_title

__all__ = [
    "describe_prediction",
    "describe_predictions",
    "grad_cam",
    "occlusion_sensitivity",
    "architecture_table",
    "plot_architecture",
    "slice_features",
    "lstm_states",
    "plot_sequence",
    "window_point",
    "plot_slices",
    "plot_montage",
    "plot_saliency",
    "most_wrong",
    "real_prior_log_loss",
    "paper_comparison",
    "plot_paper_comparison",
]

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
) -> tuple[keras.Model | None, list[keras.layers.Layer], list[keras.layers.Layer], keras.Model]:
    """(prefix up to the per-slice CNN, CNN layers to the target, the rest, head)."""
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
    head = keras.Model(td.output, model.output)
    return prefix, cnn_layers[: i + 1], cnn_layers[i + 1 :], head


def _gradient(fn: Callable[[Any], Any], x: np.ndarray) -> np.ndarray:
    """d fn(x) / dx for a scalar function built from Keras layers."""
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
    raise NotImplementedError(
        f"grad_cam supports the tensorflow and jax backends, not '{backend}'; "
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
    ``g = d p_c / d A`` (the gradient of the class probability; the model ends in a
    softmax and is not modified to expose logits),

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
        A model with a ``TimeDistributed(keras.Sequential)`` slice CNN, as built by
        :func:`lss.model.build_cnn_lstm`. Layers before it (augmentation) run in
        inference mode.
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

    Notes
    -----
    Gradients are taken with ``tf.GradientTape`` under the TensorFlow backend and
    ``jax.grad`` under JAX; other backends raise ``NotImplementedError``.
    """
    v = _check_volume(model, volume)
    prefix, front, back, head = _split_for_grad_cam(model, layer_name)
    proba = keras.ops.convert_to_numpy(model(v[None], training=False))[0]
    c = _class_index(class_index, proba)

    x = v[None] if prefix is None else prefix(v[None], training=False)
    x = keras.ops.reshape(x, v.shape)  # the slices as a batch: (Z, H, W, 1)
    for layer in front:
        x = layer(x, training=False)
    features = keras.ops.convert_to_numpy(x)  # (Z, h, w, K)

    def class_probability(a: Any) -> Any:
        for layer in back:
            a = layer(a, training=False)
        a = keras.ops.reshape(a, (1, v.shape[0], -1))
        return head(a, training=False)[0, c]

    grads = _gradient(class_probability, features)
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


def _slice_cnn_wrapper(model: keras.Model) -> keras.layers.TimeDistributed:
    for layer in model.layers:
        if isinstance(layer, keras.layers.TimeDistributed) and isinstance(
            layer.layer, keras.Model
        ):
            return layer
    raise ValueError(
        f"model '{model.name}' has no TimeDistributed slice CNN (build it with "
        "lss.model.build_cnn_lstm)"
    )


def _shape(shape: Any) -> str:
    return " x ".join(str(d) for d in tuple(shape)[1:])


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
    td = _slice_cnn_wrapper(model)
    rows: list[dict[str, Any]] = []
    seen_td = False
    for layer in model.layers:
        if layer is td:
            for inner in td.layer.layers:
                rows.append({"stage": "per slice (shared weights)", "layer": inner.name,
                             "type": type(inner).__name__,
                             "output shape": _shape(inner.output.shape),
                             "parameters": inner.count_params()})
            rows.append({"stage": "per slice (shared weights)", "layer": td.name,
                         "type": "TimeDistributed", "output shape": _shape(td.output.shape),
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
                     "output shape": _shape(shape), "parameters": layer.count_params()})
    return pd.DataFrame(rows, columns=["stage", "layer", "type", "output shape", "parameters"])


def _layer_text(layer: keras.layers.Layer) -> str:
    """A box label: the layer's name and what it does, in a few words."""
    L = keras.layers  # noqa: N806
    if isinstance(layer, L.Conv2D):
        what = f"{'x'.join(map(str, layer.kernel_size))}, {layer.filters}\n" \
               f"{layer.activation.__name__}"
    elif isinstance(layer, L.MaxPooling2D):
        what = "max " + "x".join(map(str, layer.pool_size))
    elif isinstance(layer, L.GlobalAveragePooling2D):
        what = "global\naverage"
    elif isinstance(layer, L.LSTM):
        what = f"{layer.units} units"
    elif isinstance(layer, L.Dropout):
        what = f"{layer.rate:g}"
    elif isinstance(layer, L.Dense):
        what = f"{layer.units}, {layer.activation.__name__}"
    elif isinstance(layer, L.InputLayer):
        return "input"
    elif layer.name == "augmentation":
        return "augment\nrotate, zoom,\nflip"
    else:
        what = type(layer).__name__
    return f"{layer.name}\n{what}"


def plot_architecture(model: keras.Model, *, ax: Any = None, data_label: str | None = None
                      ) -> Any:
    """A box diagram of the CNN-LSTM, one box per layer, with the shapes between them.

    The per-slice CNN is drawn once, inside a frame that says it runs on every slice
    with the same weights. Shapes are per study (no batch axis); inside the frame they
    are per slice.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    td = _slice_cnn_wrapper(model)
    n_slices = td.input.shape[1]
    boxes: list[tuple[str, str, str]] = []  # (text, shape below, colour)
    for layer in model.layers:
        if layer is td:
            for inner in td.layer.layers:
                boxes.append((_layer_text(inner), _shape(inner.output.shape), "#cfe2f3"))
            continue
        colour = "#dddddd" if isinstance(layer, keras.layers.InputLayer) or (
            layer.name == "augmentation") else "#fce5cd"
        boxes.append((_layer_text(layer), _shape(layer.output.shape), colour))
    if ax is None:
        _, ax = plt.subplots(figsize=(max(8.0, 1.2 * len(boxes)), 2.7))
    w, h, gap = 1.0, 0.95, 0.3
    cnn = [i for i, b in enumerate(boxes) if b[2] == "#cfe2f3"]
    for i, (text, shape, colour) in enumerate(boxes):
        x = i * (w + gap)
        ax.add_patch(FancyBboxPatch((x, 0), w, h, boxstyle="round,pad=0.02", fc=colour,
                                    ec="black", lw=0.8))
        ax.text(x + w / 2, h / 2, text, ha="center", va="center", fontsize=7)
        ax.text(x + w / 2, -0.12, shape.replace(" x ", "x"), ha="center", va="top",
                fontsize=6.5, color="#333333")
        if i:
            ax.annotate("", (x, h / 2), (x - gap, h / 2),
                        arrowprops={"arrowstyle": "->", "lw": 0.8})
    x0, x1 = cnn[0] * (w + gap) - 0.1, cnn[-1] * (w + gap) + w + 0.1
    ax.add_patch(FancyBboxPatch((x0, -0.42), x1 - x0, h + 0.72, boxstyle="round,pad=0.02",
                                fc="none", ec="tab:blue", lw=1.2, ls="--"))
    ax.text((x0 + x1) / 2, h + 0.38, f"TimeDistributed: the same CNN on each of the "
            f"{n_slices} slices (one set of weights); shapes per slice", ha="center",
            fontsize=8, color="tab:blue")
    ax.set_xlim(-0.2, len(boxes) * (w + gap))
    ax.set_ylim(-0.6, h + 0.65)
    ax.axis("off")
    title = (f"{model.name}: {model.count_params():,} parameters; shapes per study, "
             "without the batch axis")
    ax.set_title(title if not data_label else f"{title}\n{data_label}", fontsize=10)
    return ax


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
    cnn = _slice_cnn_wrapper(model).layer
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


def plot_sequence(
    values: np.ndarray,
    *,
    ax: Any = None,
    what: str = "feature",
    labelled_index: int | None = None,
    title: str | None = None,
    data_label: str | None = None,
) -> Any:
    """A ``(Z, F)`` sequence as a heat map: one row per slice, one column per feature.

    Parameters
    ----------
    values : (Z, F) array
        E.g. :func:`slice_features` or :func:`lstm_states`.
    what : str
        Name of a column, for the axis label.
    labelled_index : int, optional
        The labelled slice's row, marked on the axis.
    """
    import matplotlib.pyplot as plt

    v = np.asarray(values, dtype=np.float32)
    if v.ndim != 2:
        raise ValueError(f"values must be 2-D (slices, features), got shape {v.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 2.6))
    lim = float(np.abs(v).max()) or 1.0
    cmap, vmin = ("viridis", 0.0) if v.min() >= 0 else ("RdBu_r", -lim)
    image = ax.imshow(v, aspect="auto", cmap=cmap, vmin=vmin, vmax=lim,
                      interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
    ax.set_xlabel(f"{what} (of {v.shape[1]})")
    ax.set_ylabel("slice")
    ax.set_yticks(range(v.shape[0]))
    if labelled_index is not None:
        labels = [str(i) for i in range(v.shape[0])]
        labels[labelled_index] = f"{labelled_index} (labelled)"
        ax.set_yticklabels(labels)
    base = title or f"{v.shape[0]} slices x {v.shape[1]} {what}s"
    ax.set_title(base if not data_label else f"{base}\n{data_label}", fontsize=10)
    return ax


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
    x, y = (float(c) for c in window.centre_xy)
    if crop_px is None:
        rows, cols = window.source_shape
        x0, y0 = 0.0, 0.0
    else:
        rows, cols = crop_px
        x0, y0 = round(x - cols / 2), round(y - rows / 2)
    return ((x - x0 + 0.5) * image_size / cols - 0.5, (y - y0 + 0.5) * image_size / rows - 0.5)


def plot_slices(
    volume: np.ndarray,
    *,
    overlay: np.ndarray | None = None,
    point: tuple[float, float] | None = None,
    labelled_index: int | None = None,
    axes: Any = None,
    label: str | None = None,
    alpha: float = 0.45,
) -> np.ndarray:
    """One row of slices, optionally with a map over them and the labelled point.

    The slices are drawn by :func:`lss.plots.plot_window` (grey levels 0 to 1, the
    labelled slice framed in red, the point ringed on it); the map is laid over them in
    colour, transparent where it is (nearly) 0.

    Parameters
    ----------
    volume : (Z, H, W) or (Z, H, W, 1) array in [0, 1]
    overlay : (Z, H, W) array in [0, 1], optional
        E.g. :func:`grad_cam` or :func:`occlusion_sensitivity`.
    point : (x, y), optional
        The labelled point in window pixels (:func:`window_point`).
    labelled_index : int, optional
        The labelled slice (default ``Z // 2``, where :func:`lss.data.level_window`
        puts it).
    axes : sequence of Z Axes, optional
        Where to draw; a new one-row figure if None.
    label : str, optional
        Written left of the row.

    Returns
    -------
    (Z,) ndarray of Axes
    """
    from lss.plots import plot_window

    v = np.asarray(volume, dtype=np.float32)
    if v.ndim == 4 and v.shape[-1] == 1:
        v = v[..., 0]
    if v.ndim != 3:
        raise ValueError(f"volume must have shape (Z, H, W) or (Z, H, W, 1), got {v.shape}")
    z = v.shape[0]
    if overlay is not None:
        overlay = np.asarray(overlay, dtype=np.float32)
        if overlay.shape != v.shape:
            raise ValueError(f"overlay must have the volume's shape {v.shape}, got "
                             f"{overlay.shape}")
    labelled = z // 2 if labelled_index is None else int(labelled_index)
    if not 0 <= labelled < z:
        raise ValueError(f"labelled_index must be in [0, {z - 1}], got {labelled_index}")
    if axes is not None and np.asarray(axes, dtype=object).size != z:
        raise ValueError(f"axes must be {z} Axes (one per slice), got "
                         f"{np.asarray(axes, dtype=object).size}")
    axes = plot_window(v, centre=labelled, point=point, axes=axes, vmin=0.0, vmax=1.0)
    for i, ax in enumerate(axes):
        if overlay is not None:
            masked = np.ma.masked_less_equal(overlay[i], 0.02)
            ax.imshow(masked, cmap="inferno", vmin=0, vmax=1, alpha=alpha,
                      interpolation="bilinear")
        ax.set_title(f"slice {i}" + (" (labelled)" if i == labelled else ""), fontsize=7.5,
                     color="tab:red" if i == labelled else "black")
    if label:
        axes[0].set_ylabel(label, fontsize=8)
    return axes


def plot_montage(
    volumes: Sequence[np.ndarray],
    *,
    row_labels: Sequence[str] | None = None,
    overlays: Sequence[np.ndarray | None] | None = None,
    points: Sequence[tuple[float, float] | None] | None = None,
    labelled_index: int | None = None,
    title: str,
    data_label: str,
    alpha: float = 0.45,
) -> np.ndarray:
    """Several windows (or one window several ways), one row each, in one figure.

    Parameters
    ----------
    volumes : sequence of (Z, H, W) arrays
        Rows of the figure, all with the same number of slices.
    row_labels, overlays, points : sequences, one entry per row, optional
        As ``label``, ``overlay`` and ``point`` of :func:`plot_slices`.
    title : str
        The figure's title.
    data_label : str
        Which data the slices come from (e.g. ``lss.runinfo.data_label(root)``), written
        under the title; required, so that a phantom figure is never read as a scan.

    Returns
    -------
    (rows, Z) ndarray of Axes
    """
    import matplotlib.pyplot as plt

    if not isinstance(data_label, str) or not data_label.strip():
        raise ValueError(f"data_label must name the data, got {data_label!r}")
    n = len(volumes)
    if n == 0:
        raise ValueError("volumes is empty")
    for what, seq in (("row_labels", row_labels), ("overlays", overlays), ("points", points)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{what} must have one entry per volume ({n}), got {len(seq)}")
    z = np.shape(volumes[0])[0]
    fig, axes = plt.subplots(n, z, figsize=(1.55 * z, 1.75 * n + 0.7), squeeze=False)
    for r in range(n):
        plot_slices(volumes[r], axes=axes[r],
                    overlay=None if overlays is None else overlays[r],
                    point=None if points is None else points[r],
                    labelled_index=labelled_index,
                    label=None if row_labels is None else row_labels[r], alpha=alpha)
    fig.suptitle(f"{title}\n{data_label}", fontsize=10)
    fig.tight_layout()
    return axes


def plot_saliency(
    volume: np.ndarray,
    saliency: np.ndarray,
    *,
    point: tuple[float, float] | None = None,
    labelled_index: int | None = None,
    method: str = "Grad-CAM",
    title: str | None = None,
    data_label: str,
    alpha: float = 0.5,
) -> np.ndarray:
    """A window's slices above the same slices with a saliency map laid over them.

    Parameters
    ----------
    volume : (Z, H, W) array
    saliency : (Z, H, W) array in [0, 1]
        From :func:`grad_cam` or :func:`occlusion_sensitivity` (rescale a faint
        occlusion map with ``m / m.max()`` to see its shape).
    point, labelled_index
        As in :func:`plot_slices`: the labelled point is circled in both rows.
    method : str
        Names the map in the row label.
    title : str, optional
        Default ``"Where the model looked (<method>)"``.
    data_label : str
        Which data the slices come from.

    Returns
    -------
    (2, Z) ndarray of Axes
    """
    s = np.asarray(saliency, dtype=np.float32)
    if not np.isfinite(s).all() or s.min() < 0 or s.max() > 1:
        raise ValueError("saliency must hold finite values in [0, 1]")
    return plot_montage([volume, volume], overlays=[None, s], points=[point, point],
                        row_labels=["slices", method], labelled_index=labelled_index,
                        title=title or f"Where the model looked ({method})",
                        data_label=data_label, alpha=alpha)


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


# --------------------------------------------------------------------------- the paper beside a run

def real_prior_log_loss() -> float:
    """Log loss of always predicting the real labels' class shares (45/32/23 %).

    The entropy of :data:`lss.config.REAL_CLASS_COUNTS`, about 1.063: the validation loss of a
    model that learned the class frequencies and nothing from the images, on the real
    data (a validation split's value differs by sampling noise).

    >>> round(real_prior_log_loss(), 4)
    1.0632
    """
    p = np.asarray(REAL_CLASS_COUNTS, dtype=float) / sum(REAL_CLASS_COUNTS)
    return float(-(p * np.log(p)).sum())


def paper_comparison(history: pd.DataFrame, *, majority_accuracy: float, data_label: str,
                     prior_log_loss: float | None = None) -> pd.DataFrame:
    """The paper's reported figures beside a run's, each column naming its data.

    Parameters
    ----------
    history : DataFrame
        A run's ``history.csv`` (``loss``, ``val_loss``, ``val_accuracy`` per epoch).
    majority_accuracy : float
        Accuracy of always answering the most frequent grade on the run's validation
        split (:func:`lss.metrics.majority_baseline`).
    data_label : str
        The run's data, e.g. ``"synthetic phantom (seed 0, 200 studies)"``.
    prior_log_loss : float, optional
        Log loss of predicting the training split's class shares on the run's
        validation split (:func:`lss.metrics.prior_baseline`): a loss curve that ends
        there has learned the class frequencies only.

    Returns
    -------
    DataFrame
        Indexed by quantity; one column with the paper's figures (RSNA 2024 real scans,
        :data:`lss.config.PAPER_RESULTS`, :data:`lss.config.REAL_MAJORITY_SHARE` and
        :func:`real_prior_log_loss`), one with the run's, rounded to 4 decimals ("-"
        where a figure is not defined). The run's validation accuracy is that of its
        last epoch; the model kept (``best.keras``) is the epoch of lowest validation
        loss, shown too.
    """
    from lss.config import PAPER_RESULTS, REAL_MAJORITY_SHARE

    if not isinstance(data_label, str) or not data_label.strip():
        raise ValueError(f"data_label must name the data, got {data_label!r}")
    need = {"loss", "val_loss", "val_accuracy"}
    if not need <= set(history.columns) or history.empty:
        raise ValueError(f"history must have rows with {sorted(need)}, got columns "
                         f"{list(history.columns)}")
    h = history.reset_index(drop=True)
    best = int(h["val_loss"].to_numpy().argmin())
    paper = "paper (RSNA 2024 real scans, as reported)"
    run = f"this run ({data_label.strip()})"
    rows = {
        "epochs": (PAPER_EPOCHS, len(h)),
        "train loss, first epoch": (PAPER_RESULTS["train_loss_first_epoch"], h["loss"].iloc[0]),
        "train loss, last epoch": (PAPER_RESULTS["train_loss_last_epoch"], h["loss"].iloc[-1]),
        "val loss, first epoch": (PAPER_RESULTS["val_loss_first_epoch"], h["val_loss"].iloc[0]),
        "val loss, last epoch": (PAPER_RESULTS["val_loss_last_epoch"], h["val_loss"].iloc[-1]),
        "val accuracy, last epoch": (PAPER_RESULTS["val_accuracy"], h["val_accuracy"].iloc[-1]),
        "val accuracy, epoch kept (lowest val loss)": (np.nan, h["val_accuracy"].iloc[best]),
        "accuracy of always Normal/Mild (reference)": (REAL_MAJORITY_SHARE,
                                                        float(majority_accuracy)),
        "log loss of the class shares (reference)": (
            real_prior_log_loss(), np.nan if prior_log_loss is None else float(prior_log_loss)),
    }
    def cell(value: Any) -> Any:
        if isinstance(value, (int, np.integer)):
            return int(value)
        return "-" if value is None or np.isnan(value) else round(float(value), 4)

    out = pd.DataFrame([[cell(a), cell(b)] for a, b in rows.values()], index=list(rows),
                       columns=[paper, run], dtype=object)
    out.index.name = "quantity"
    return out


def plot_paper_comparison(history: pd.DataFrame, *, majority_accuracy: float,
                          data_label: str, prior_log_loss: float | None = None,
                          axes: Any = None) -> np.ndarray:
    """A run's loss and validation accuracy per epoch, with the paper's reported points.

    The paper reports only its first and last epoch (of 20) and its final validation
    accuracy; they are drawn as open markers at epochs 1 and 20, labelled as the
    paper's (real scans). References are drawn as lines, the run's own split dashed
    and the real labels' dotted: the accuracy of always answering Normal/Mild (44.9 %
    on the real labels) and, on the loss panel, the log loss of predicting the class
    shares (``prior_log_loss`` for the run; :func:`real_prior_log_loss` for the paper).

    Returns
    -------
    (2,) ndarray of Axes: loss, accuracy.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from lss.config import PAPER_RESULTS, REAL_MAJORITY_SHARE

    paper_comparison(history, majority_accuracy=majority_accuracy,
                     data_label=data_label)  # validates the inputs
    h = history.reset_index(drop=True)
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    axes = np.asarray(axes, dtype=object).ravel()
    epochs = np.arange(1, len(h) + 1)
    ends = [1, PAPER_EPOCHS]
    loss_ax, acc_ax = axes
    loss_ax.plot(epochs, h["loss"], "-o", ms=3, color="tab:blue", label="training (this run)")
    loss_ax.plot(epochs, h["val_loss"], "-s", ms=3, color="tab:orange",
                 label="validation (this run)")
    # the paper reports first and last epoch only: markers, no line between them
    loss_ax.plot(ends, [PAPER_RESULTS["train_loss_first_epoch"],
                        PAPER_RESULTS["train_loss_last_epoch"]], "o", mfc="none", ms=8,
                 color="tab:blue", label="training (paper, real scans)")
    loss_ax.plot(ends, [PAPER_RESULTS["val_loss_first_epoch"],
                        PAPER_RESULTS["val_loss_last_epoch"]], "s", mfc="none", ms=8,
                 color="tab:orange", label="validation (paper, real scans)")
    if prior_log_loss is not None:
        loss_ax.axhline(prior_log_loss, color="grey", ls="--",
                        label="class shares only (this run's split)")
    loss_ax.axhline(real_prior_log_loss(), color="black", ls=":",
                    label="class shares only (real labels)")
    loss_ax.set_ylabel("loss (categorical cross-entropy)")
    acc_ax.plot(epochs, h["val_accuracy"], "-s", ms=3, color="tab:orange",
                label="validation (this run)")
    acc_ax.plot([PAPER_EPOCHS], [PAPER_RESULTS["val_accuracy"]], "s", mfc="none", ms=8,
                color="tab:orange", label="validation, last epoch (paper, real scans)")
    acc_ax.axhline(majority_accuracy, color="grey", ls="--",
                   label="always Normal/Mild (this run's split)")
    acc_ax.axhline(REAL_MAJORITY_SHARE, color="black", ls=":",
                   label="always Normal/Mild (real labels)")
    acc_ax.set_ylabel("validation accuracy")
    for ax, name in ((loss_ax, "Loss"), (acc_ax, "Validation accuracy")):
        ax.set_xlabel("epoch")
        ax.set_xlim(0.5, max(PAPER_EPOCHS, len(h)) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=7)
    axes[0].figure.suptitle(
        f"This run: {data_label.strip()} (filled markers, dashed reference)\n"
        "The paper: RSNA 2024 real scans, its reported first and last epoch (open markers, "
        "dotted reference)", fontsize=9)
    axes[0].figure.tight_layout()
    return axes
