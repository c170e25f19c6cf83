"""The paper's CNN-LSTM, written against backend-neutral Keras 3.

A small 2-D CNN encodes each axial slice into a feature vector, an LSTM reads the
slices of one level window in order, and a softmax layer grades the stenosis as
Normal/Mild, Moderate or Severe (:data:`lss.config.SEVERITIES`). Everything here uses
``keras``, ``keras.layers`` and ``keras.ops`` only, so the same code builds and trains
under ``KERAS_BACKEND=tensorflow``, ``jax`` and ``torch`` (``make test-backends``).

Input layout is ``(batch, n_slices, image_size, image_size, 1)``: the slices of one
study are one volume, ordered along the patient axis, with one grey channel.
"""

from __future__ import annotations

import logging
import math
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
from keras import layers

from lss.config import POOLINGS, SEVERITIES, check_positive_int
from lss.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from lss.config import Config

class _DropRetracingWarning(logging.Filter):
    """Drops TensorFlow's "triggered tf.function retracing" warning, and only it.

    lss builds many small models in one process (the rows of an experiment, the
    localisers, the occlusion maps of chapter 5); each model's first ``predict`` traces
    its own function, and TensorFlow counts those traces together as if one function
    retraced. The warning then reports a cost that is not there, in a 700-character line
    on the page. Other TensorFlow messages pass; other backends never send this one.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


if not any(isinstance(f, _DropRetracingWarning)
           for f in logging.getLogger("tensorflow").filters):
    logging.getLogger("tensorflow").addFilter(_DropRetracingWarning())

__all__ = [
    "SliceAugmentation",
    "build_augmentation",
    "build_cnn_lstm",
    "build_from_config",
    "compile_model",
    "count_flops",
    "train_step_flops",
    "load_model",
    "slice_cnn",
    "shape_text",
]


@keras.saving.register_keras_serializable(package="lss")
class SliceAugmentation(layers.Layer):
    """Random rotation, zoom and flip, the same for every slice of a volume.

    The slices of a study are one volume, so one sample's slices must move together:
    the layer draws one transform per sample (angle, scale, flip), composes them into
    one 2 x 2 matrix about the slice centre and resamples every slice of that sample
    with it (bilinear; pixels from outside the slice are 0, the background of an
    intensity-scaled MRI slice). Different samples of a batch get different
    transforms. Only active with ``training=True``; otherwise the identity.

    Parameters
    ----------
    rotation_degrees : float
        Angles are drawn uniformly from ``[-rotation_degrees, rotation_degrees]``.
        0 disables rotation.
    zoom : float
        Scale factors are drawn uniformly from ``[1 - zoom, 1 + zoom]``; as in
        :class:`keras.layers.RandomZoom`, a factor above 1 zooms out (the anatomy
        shrinks). The same factor in both axes. 0 disables zoom.
    horizontal_flip : bool
        Mirror left-right with probability 1/2. Wrong for a label that names a side:
        in radiological convention the patient's left is on the image's right, so a
        flip moves a left-sided lesion to the image's left, where the right recess is,
        while the label still says "left". The paper used it; it is kept to reproduce
        the paper and should be off for side-specific targets.
    seed : int or None
        Seed of the random transforms.

    Notes
    -----
    Input and output shape: ``(batch, n_slices, height, width, 1)``.

    The resampling is one gather of four neighbours written with ``keras.ops``
    rather than :class:`keras.layers.RandomRotation` and :class:`keras.layers.RandomZoom`:
    under JAX those go through a 3-D ``jax.scipy.ndimage.map_coordinates`` each, which
    made an epoch of 256 volumes (8 x 128 x 128, batch 8) take 11.9 s instead of
    0.2 s on an H100. Here the transforms cost one resampling in all.
    """

    def __init__(
        self,
        rotation_degrees: float = 0.0,
        zoom: float = 0.0,
        horizontal_flip: bool = False,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _check_augmentation_args(rotation_degrees, zoom, horizontal_flip)
        self.rotation_degrees = float(rotation_degrees)
        self.zoom = float(zoom)
        self.horizontal_flip = bool(horizontal_flip)
        self.seed = None if seed is None else int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        if len(input_shape) != 5 or input_shape[-1] != 1 or None in input_shape[1:]:
            raise ValueError(
                f"{self.name} expects input of shape (batch, n_slices, height, width, 1), "
                f"got {tuple(input_shape)}"
            )
        self.built = True

    def _random_matrices(self, batch: Any) -> Any:
        """(B, 2, 2): output offset from the centre -> input offset, per sample."""
        ops = keras.ops
        angle = ops.zeros((batch,))
        scale = ops.ones((batch,))
        flip = ops.ones((batch,))
        if self.rotation_degrees > 0:
            limit = math.radians(self.rotation_degrees)
            angle = keras.random.uniform((batch,), -limit, limit, seed=self.seed_generator)
        if self.zoom > 0:
            scale = 1.0 + keras.random.uniform(
                (batch,), -self.zoom, self.zoom, seed=self.seed_generator
            )
        if self.horizontal_flip:
            coin = keras.random.uniform((batch,), 0.0, 1.0, seed=self.seed_generator)
            flip = ops.where(coin < 0.5, -1.0, 1.0)
        cos, sin = ops.cos(angle) * scale, ops.sin(angle) * scale
        # [[cos, -sin], [sin, cos]] @ diag(flip, 1), acting on (dx, dy)
        return ops.reshape(ops.stack([cos * flip, -sin, sin * flip, cos], axis=1), (-1, 2, 2))

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        if not training or not (self.rotation_degrees or self.zoom or self.horizontal_flip):
            return inputs
        x = keras.ops.squeeze(inputs, axis=-1)  # (B, Z, H, W)
        x = keras.ops.transpose(x, (0, 2, 3, 1))  # (B, H, W, Z): slices as channels
        x = _warp(x, self._random_matrices(keras.ops.shape(x)[0]))
        x = keras.ops.transpose(x, (0, 3, 1, 2))  # (B, Z, H, W)
        return keras.ops.expand_dims(x, axis=-1)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            rotation_degrees=self.rotation_degrees,
            zoom=self.zoom,
            horizontal_flip=self.horizontal_flip,
            seed=self.seed,
        )
        return config


def _warp(images: Any, matrices: Any) -> Any:
    """Resample ``images`` (B, H, W, C) through per-sample matrices (B, 2, 2).

    Output pixel ``(x, y)`` takes the bilinear value at ``c + M @ ((x, y) - c)`` of the
    input, where ``c = ((W - 1) / 2, (H - 1) / 2)`` is the image centre; neighbours
    outside the image count as 0. All channels share the transform.
    """
    ops = keras.ops
    _, h, w, c = images.shape
    batch = ops.shape(images)[0]
    dtype = images.dtype
    ys, xs = ops.meshgrid(
        ops.arange(h, dtype="float32"), ops.arange(w, dtype="float32"), indexing="ij"
    )
    dx, dy = xs - (w - 1) / 2, ys - (h - 1) / 2  # (H, W)
    m = ops.cast(matrices, "float32")[:, :, :, None, None]  # (B, 2, 2, 1, 1)
    x_in = (w - 1) / 2 + m[:, 0, 0] * dx + m[:, 0, 1] * dy  # (B, H, W)
    y_in = (h - 1) / 2 + m[:, 1, 0] * dx + m[:, 1, 1] * dy
    x0, y0 = ops.floor(x_in), ops.floor(y_in)
    wx, wy = x_in - x0, y_in - y0
    x0, y0 = ops.cast(x0, "int32"), ops.cast(y0, "int32")
    flat = ops.reshape(images, (-1, c))
    base = ops.reshape(ops.arange(batch, dtype="int32") * (h * w), (-1, 1, 1))
    out = 0.0
    for oy, ox, weight in (
        (0, 0, (1 - wy) * (1 - wx)),
        (0, 1, (1 - wy) * wx),
        (1, 0, wy * (1 - wx)),
        (1, 1, wy * wx),
    ):
        xi, yi = x0 + ox, y0 + oy
        inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        index = base + ops.clip(yi, 0, h - 1) * w + ops.clip(xi, 0, w - 1)
        values = ops.reshape(ops.take(flat, ops.reshape(index, (-1,)), axis=0), (-1, h, w, c))
        weight = ops.where(inside, weight, 0.0)[..., None]
        out = out + values * ops.cast(weight, dtype)
    return out


def _check_augmentation_args(rotation_degrees: float, zoom: float, horizontal_flip: bool) -> None:
    if not 0 <= rotation_degrees <= 180:
        raise ValueError(f"rotation_degrees must be in [0, 180], got {rotation_degrees}")
    if not 0 <= zoom < 1:
        raise ValueError(f"zoom must be in [0, 1), got {zoom}")
    if not isinstance(horizontal_flip, bool):
        raise ValueError(f"horizontal_flip must be True or False, got {horizontal_flip!r}")


def build_augmentation(
    *,
    rotation_degrees: float,
    zoom: float,
    horizontal_flip: bool,
    seed: int | None = None,
) -> SliceAugmentation | None:
    """A :class:`SliceAugmentation` layer, or ``None`` when every transform is off.

    Parameters
    ----------
    rotation_degrees, zoom, horizontal_flip, seed
        As in :class:`SliceAugmentation` (and ``TrainConfig``). See there why
        ``horizontal_flip`` is wrong for a left- or right-sided label.

    Returns
    -------
    SliceAugmentation or None
        Pass it to ``build_cnn_lstm(augmentation=...)``.

    Examples
    --------
    >>> build_augmentation(rotation_degrees=0, zoom=0, horizontal_flip=False) is None
    True
    >>> build_augmentation(rotation_degrees=10, zoom=0.1, horizontal_flip=False).name
    'augmentation'
    """
    _check_augmentation_args(rotation_degrees, zoom, horizontal_flip)
    if rotation_degrees == 0 and zoom == 0 and not horizontal_flip:
        return None
    return SliceAugmentation(
        rotation_degrees=rotation_degrees,
        zoom=zoom,
        horizontal_flip=horizontal_flip,
        seed=seed,
        name="augmentation",
    )


def build_cnn_lstm(
    n_slices: int,
    image_size: int = 128,
    n_classes: int = len(SEVERITIES),
    *,
    filters: Sequence[int] = (32, 64, 128),
    lstm_units: int = 64,
    dense_units: int = 64,
    dropout: float = 0.3,
    augmentation: layers.Layer | None = None,
    pooling: str = "average",
    name: str = "cnn_lstm",
) -> keras.Model:
    """The paper's CNN-LSTM (uncompiled; see :func:`compile_model`).

    ``volume (B, Z, S, S, 1) -> [augmentation] -> TimeDistributed(slice_cnn) (B, Z, F)
    -> LSTM (B, lstm_units) -> Dropout -> Dense(dense_units, relu) -> Dense(n_classes,
    softmax) (B, n_classes)``, where ``slice_cnn`` is one block ``Conv2D(f, 3x3, same,
    relu) -> MaxPooling2D(2)`` per entry ``f`` of ``filters`` followed by
    ``GlobalAveragePooling2D``, so ``F = filters[-1]``. The parameter count does not
    depend on ``n_slices`` or ``image_size``.

    With ``pooling="flatten"`` the last feature map is flattened instead of averaged,
    so ``F = filters[-1] * (S / 2**len(filters))**2`` and the LSTM sees *where* in the
    slice each feature fired. Averaging (the paper) discards that: a small lesion at a
    known place (the recess at the centre of a region-of-interest crop) is diluted by
    the rest of the slice. Flattening suits crops, not whole 128-pixel slices (the LSTM
    would get 32,768 inputs per slice).

    Parameters
    ----------
    n_slices : int
        Slices per volume, ``Z``.
    image_size : int
        Height and width of a slice, ``S``; must survive ``len(filters)`` halvings.
    n_classes : int
        Outputs of the softmax (3: the severities).
    filters : sequence of int
        Filters of each convolution block.
    lstm_units, dense_units : int
        Width of the LSTM and of the hidden dense layer.
    dropout : float
        Dropout rate after the LSTM, in [0, 1).
    augmentation : keras.layers.Layer or None
        A layer applied to the input first, e.g. from :func:`build_augmentation`.
    pooling : {"average", "flatten"}
        How each slice's last feature map becomes a vector (paper: "average").
    name : str
        Model name.

    Returns
    -------
    keras.Model
        Input ``"volume"`` of shape ``(None, n_slices, image_size, image_size, 1)``,
        output ``(None, n_classes)`` of probabilities.

    Examples
    --------
    >>> model = build_cnn_lstm(4, 32)
    >>> model.output_shape
    (None, 3)
    >>> model.count_params()
    146435
    """
    check_positive_int(n_slices, "n_slices")
    check_positive_int(image_size, "image_size")
    if n_classes < 2 or int(n_classes) != n_classes:
        raise ValueError(f"n_classes must be an integer >= 2, got {n_classes}")
    filters = tuple(filters)
    if not filters:
        raise ValueError("filters must name at least one convolution block, got ()")
    for f in filters:
        check_positive_int(f, "each entry of filters")
    if image_size < 2 ** len(filters):
        raise ValueError(
            f"image_size {image_size} is too small for {len(filters)} pooling steps; "
            f"need at least {2 ** len(filters)}"
        )
    check_positive_int(lstm_units, "lstm_units")
    check_positive_int(dense_units, "dense_units")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be 'average' or 'flatten', got {pooling!r}")
    if augmentation is not None and not isinstance(augmentation, layers.Layer):
        raise ValueError(f"augmentation must be a keras Layer or None, got {augmentation!r}")

    slice_cnn = keras.Sequential(name="slice_cnn")
    slice_cnn.add(keras.Input(shape=(image_size, image_size, 1), name="slice"))
    for i, f in enumerate(filters, start=1):
        slice_cnn.add(layers.Conv2D(int(f), 3, padding="same", activation="relu", name=f"conv{i}"))
        slice_cnn.add(layers.MaxPooling2D(2, name=f"pool{i}"))
    if pooling == "average":
        slice_cnn.add(layers.GlobalAveragePooling2D(name="gap"))
    else:
        slice_cnn.add(layers.Flatten(name="flatten"))

    volume = keras.Input(shape=(n_slices, image_size, image_size, 1), name="volume")
    x = volume
    if augmentation is not None:
        x = augmentation(x)
    x = layers.TimeDistributed(slice_cnn, name="slice_features")(x)
    # float32 under mixed precision: JAX's cuDNN LSTM kernel has no float16 (jaxlib
    # gpu_rnn: "Unknown output type float16"), and the recurrence is a tiny share of the work
    x = layers.LSTM(lstm_units, dtype="float32", name="lstm")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(dense_units, activation="relu", name="dense")(x)
    # float32 under mixed precision too: probabilities and the loss at full precision
    out = layers.Dense(int(n_classes), activation="softmax", dtype="float32", name="severity")(x)
    return keras.Model(volume, out, name=name)


def compile_model(model: keras.Model, *, learning_rate: float = 1e-4) -> keras.Model:
    """Compile as in the paper: Adam, categorical cross-entropy, accuracy.

    Labels for ``fit`` must therefore be one-hot, shape ``(N, n_classes)``.

    Parameters
    ----------
    model : keras.Model
        Compiled in place and returned, for chaining.
    learning_rate : float
        Adam's learning rate (paper: 1e-4).
    """
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate}")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    return model


def build_from_config(cfg: Config) -> keras.Model:
    """Build and compile the model a :class:`lss.config.Config` describes.

    Uses ``cfg.preprocess.n_slices`` and ``image_size``, and from ``cfg.train`` the
    architecture (``cnn_filters``, ``lstm_units``, ``dense_units``, ``dropout``,
    ``pooling``), the
    augmentation (``rotation_degrees``, ``zoom``, ``horizontal_flip``, ``seed``) and
    ``learning_rate``.

    Examples
    --------
    >>> from lss.config import Config
    >>> build_from_config(Config().replace(n_slices=4, image_size=32)).input_shape
    (None, 4, 32, 32, 1)
    """
    tr = cfg.train
    augmentation = build_augmentation(
        rotation_degrees=tr.rotation_degrees,
        zoom=tr.zoom,
        horizontal_flip=tr.horizontal_flip,
        seed=tr.seed,
    )
    model = build_cnn_lstm(
        cfg.preprocess.n_slices,
        cfg.preprocess.image_size,
        len(SEVERITIES),
        filters=tr.cnn_filters,
        lstm_units=tr.lstm_units,
        dense_units=tr.dense_units,
        dropout=tr.dropout,
        augmentation=augmentation,
        pooling=tr.pooling,
    )
    return compile_model(model, learning_rate=tr.learning_rate)


def count_flops(model: keras.Model) -> int:
    """Analytic forward-pass FLOPs for one sample (multiply-adds counted as 2).

    Counted per layer, with shapes without the batch axis:

    * ``Conv2D``: ``2 * H_out * W_out * C_out * kh * kw * C_in / groups``
    * ``Dense``: ``2 * d_in * units`` per input vector
    * ``LSTM``: ``2 * T * 4 * units * (d_in + units)`` (four gates, input and
      recurrent matrix products, each of ``T`` steps)
    * ``TimeDistributed``: the wrapped layer's count times the number of steps
    * nested models: the sum over their layers

    Biases, activations, gate element-wise products, pooling, dropout and
    augmentation are ignored (they are a few percent at most). A layer with weights
    of another kind raises ``ValueError`` rather than being silently counted as 0.

    Examples
    --------
    >>> count_flops(build_cnn_lstm(8, 128))  # about 2.49 GFLOP per sample
    2492211584
    """
    return int(_flops(model))


def train_step_flops(model: keras.Model) -> int:
    """Analytic FLOPs of one training step for one sample (forward and backward).

    The backward pass of a layer computes the gradient of its weights (the cost of its
    forward pass) and, unless nothing before it needs one, the gradient of its input
    (again the cost of its forward pass). So each counted layer costs 3 forward passes,
    except the first one with weights: its input is the data (the augmentation before
    it has no weights), whose gradient no step computes, so it costs 2. Counted as in
    :func:`count_flops`.

    Examples
    --------
    >>> train_step_flops(build_cnn_lstm(8, 128))  # 3 x 2.49 less the first conv's 0.08
    7401137280
    """
    first = _first_weighted(model)
    return 3 * count_flops(model) - (0 if first is None else int(_flops(first[0]) * first[1]))


def _first_weighted(model: keras.Model) -> tuple[layers.Layer, int] | None:
    """The first layer with weights of ``model`` (inside nested models) and its steps."""
    steps = 1
    layer: Any = model
    while True:
        inner = layer.layer if isinstance(layer, layers.TimeDistributed) else layer
        if isinstance(layer, layers.TimeDistributed):
            steps *= layer.input.shape[1]
        if not isinstance(inner, keras.Model):
            return (inner, steps) if inner.trainable_weights else None
        layer = next((sub for sub in inner.layers if sub.trainable_weights), None)
        if layer is None:
            return None


def _flops(layer: layers.Layer) -> int:
    if isinstance(layer, layers.TimeDistributed):
        steps = layer.input.shape[1]
        if steps is None:
            raise ValueError(f"count_flops needs a fixed number of steps in '{layer.name}'")
        return steps * _flops(layer.layer)
    if isinstance(layer, keras.Model):
        return sum(_flops(sub) for sub in layer.layers)
    if isinstance(layer, layers.Conv2D) and not isinstance(layer, layers.Conv2DTranspose):
        _, h, w, c_out = layer.output.shape
        c_in = layer.input.shape[-1]
        kh, kw = layer.kernel_size
        return 2 * h * w * c_out * kh * kw * c_in // layer.groups
    if isinstance(layer, layers.Dense):
        d_in = layer.input.shape[-1]
        vectors = math.prod(layer.input.shape[1:-1])
        return 2 * vectors * d_in * layer.units
    if isinstance(layer, layers.LSTM):
        _, steps, d_in = layer.input.shape
        return 2 * steps * 4 * layer.units * (d_in + layer.units)
    if layer.trainable_weights:
        raise ValueError(
            f"count_flops does not know layer '{layer.name}' ({type(layer).__name__}), "
            "which has weights"
        )
    return 0


def load_model(path: str | Path, *, custom_objects: dict[str, Any] | None = None,
               what: str = "Model") -> keras.Model:
    """Load a model saved with ``model.save("....keras")``, safely.

    ``safe_mode=True``: a file that would deserialize a ``Lambda`` or other Python
    bytecode is refused, so loading a file from elsewhere cannot run its code. The
    ``lss`` custom layers are registered.

    Parameters
    ----------
    path : str or Path
        A ``.keras`` file. The optimizer, loss and metrics are restored when the
        model was saved compiled.
    custom_objects : dict, optional
        Further custom layers the file uses (e.g. the localiser's, see
        :func:`lss.localiser.load_localiser`).
    what : str
        What the file holds, for the error message of a missing file.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"Expected a '.keras' file, got '{path}'")
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    objects = {"lss>SliceAugmentation": SliceAugmentation, **(custom_objects or {})}
    try:
        return keras.models.load_model(path, custom_objects=objects, safe_mode=True)
    except ValueError as exc:
        if "safe_mode" in str(exc):
            raise  # a file that would run code: refused, and said so by Keras
        # Keras says "File not found" of a file that is there but not a valid archive.
        raise DataError(f"{what} file {path} is damaged or not a Keras model file "
                        f"(truncated?)") from exc
    except (OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise DataError(f"{what} file {path} is damaged or not a Keras model file "
                        f"(truncated?): {type(exc).__name__}: {exc}") from exc


def slice_cnn(model: keras.Model) -> keras.layers.TimeDistributed:
    """The TimeDistributed wrapper of the CNN-LSTM's per-slice CNN."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.TimeDistributed) and isinstance(
            layer.layer, keras.Model
        ):
            return layer
    raise ValueError(
        f"model '{model.name}' has no TimeDistributed slice CNN (build it with "
        "lss.model.build_cnn_lstm)"
    )


def shape_text(shape: Any) -> str:
    """A layer's output shape without the batch axis, e.g. ``'8 x 64'``."""
    return " x ".join(str(d) for d in tuple(shape)[1:])
