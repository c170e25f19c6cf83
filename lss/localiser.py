"""Where is the left subarticular recess? A small localiser for region-of-interest crops.

The paper's model sees whole 128 x 128 slices, in which the recess it grades is a few
pixels wide. A region-of-interest (ROI) model sees a crop of ``crop_mm`` millimetres
centred on the recess instead (:attr:`lss.config.PreprocessConfig.crop_mm`). In
training the centre is the radiologist's point from ``train_label_coordinates.csv``; on
validation and test studies no such point may be used, so it comes from this
localiser, trained on the training split's points only.

The localiser is a small fully convolutional network on the labelled slice, resized to
``image_size`` squared. It scores every cell of a coarse grid, and a softmax over the
grid turns the scores into a probability map whose expected position is the answer
(a *spatial soft-argmax*): the output is a point, trained directly on the distance to
the truth, yet the network stays translation-equivariant like a heatmap model.
Everything uses ``keras.ops``, so it runs under TensorFlow, JAX and PyTorch.

Coordinates
-----------
Pixel coordinates follow ``train_label_coordinates.csv``: ``x`` is the column, ``y`` the
row, pixel centres at integers. The network works in normalised coordinates
``u = (x + 0.5) / columns`` and ``v = (y + 0.5) / rows`` in [0, 1], which survive the
resize of non-square slices. Errors in millimetres use ``PixelSpacing`` (row spacing for
``y``, column spacing for ``x``).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from lss.config import LocaliserConfig, PreprocessConfig
from lss.data import DataError, TensorCache, level_window, series_dir
from lss.data.dicom import SeriesHeader, first_file_header
from lss.model import load_model
from lss.run import RunDir, data_source

__all__ = [
    "LocaliserErrors",
    "SpatialSoftArgmax",
    "build_localiser",
    "localiser_inputs",
    "series_geometry",
    "train_localiser",
    "predict_centres",
    "centres_for_series",
    "localiser_errors",
    "save_localiser",
    "load_localiser",
    "install_localiser",
    "load_run_localiser",
    "fit_split_localiser",
    "fill_training_centres",
    "run_centres",
    "to_unit",
    "from_unit",
]

log = logging.getLogger("lss")



# --------------------------------------------------------------------------- model


@keras.saving.register_keras_serializable(package="lss")
class SpatialSoftArgmax(keras.layers.Layer):
    """Scores (B, H, W, K) -> expected positions (u, v) in [0, 1], one per channel.

    A softmax over the H * W cells of each channel gives a probability map; the output
    is its mean position, cell ``(i, j)`` sitting at ``((j + 0.5) / W, (i + 0.5) / H)``.

    Parameters
    ----------
    keep_points : bool
        False (the default, the recess localiser): one channel, output (B, 2).
        True: K channels, output (B, K, 2), one point per channel (the disc levels of
        :mod:`lss.levels`).
    """

    def __init__(self, keep_points: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.keep_points = bool(keep_points)

    def call(self, scores):
        ops = keras.ops
        h, w, k = scores.shape[1], scores.shape[2], scores.shape[3]
        if not self.keep_points and k != 1:
            raise ValueError(f"SpatialSoftArgmax without keep_points takes 1 channel, got {k}")
        scores = ops.transpose(ops.cast(scores, "float32"), (0, 3, 1, 2))  # (B, K, H, W)
        p = ops.softmax(ops.reshape(scores, (-1, k, h * w)), axis=-1)
        p = ops.reshape(p, (-1, k, h, w))
        us = (ops.arange(w, dtype="float32") + 0.5) / w
        vs = (ops.arange(h, dtype="float32") + 0.5) / h
        u = ops.sum(ops.sum(p, axis=2) * us, axis=-1)
        v = ops.sum(ops.sum(p, axis=3) * vs, axis=-1)
        uv = ops.stack([u, v], axis=-1)  # (B, K, 2)
        return uv if self.keep_points else uv[:, 0]

    def compute_output_shape(self, input_shape):
        if self.keep_points:
            return (input_shape[0], input_shape[3], 2)
        return (input_shape[0], 2)

    def get_config(self):
        return {**super().get_config(), "keep_points": self.keep_points}


def build_localiser(image_size: int = 96, filters: Sequence[int] = (16, 32, 64), *,
                    learning_rate: float = 2e-3):
    """The localiser network, compiled (Adam, mean absolute error on (u, v)).

    ``slice (B, S, S, 1) -> [Conv 3x3 -> MaxPool 2] x 2 -> Conv 3x3 -> dilated Conv 3x3
    (rate 2, 4) -> Conv 1x1 -> scores (B, S/4, S/4, 1) -> SpatialSoftArgmax -> (B, 2)``.
    The dilated convolutions give each cell a view of about 2/3 of the slice, enough to
    tell the left recess from the right one by where the canal lies.

    Examples
    --------
    >>> build_localiser(32, (4, 8)).output_shape
    (None, 2)
    """
    from keras import layers

    filters = tuple(int(f) for f in filters)
    if image_size % 4:
        raise ValueError(f"image_size must be a multiple of 4, got {image_size}")
    inp = keras.Input((image_size, image_size, 1), name="slice")
    x = inp
    for i, f in enumerate(filters[:2], start=1):
        x = layers.Conv2D(f, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    for j, f in enumerate(filters[2:], start=3):
        x = layers.Conv2D(f, 3, padding="same", activation="relu", name=f"conv{j}")(x)
    width = filters[-1]
    for rate in (2, 4):
        x = layers.Conv2D(width, 3, padding="same", dilation_rate=rate, activation="relu",
                          name=f"context{rate}")(x)
    scores = layers.Conv2D(1, 1, name="scores")(x)
    out = SpatialSoftArgmax(name="xy")(scores)
    model = keras.Model(inp, out, name="localiser")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mean_absolute_error")
    return model


def save_localiser(model, path: str | Path, config: LocaliserConfig | None = None) -> Path:
    """Save to ``path`` (``.keras``) and, with ``config``, ``<path>.json`` beside it."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"Expected a '.keras' path, got '{path}'")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    if config is not None:
        path.with_suffix(".json").write_text(json.dumps(config.to_dict(), indent=2))
    return path


def load_localiser(path: str | Path):
    """Load a saved localiser with ``safe_mode=True`` (no Python code is deserialised)."""
    return load_model(path, custom_objects={"lss>SpatialSoftArgmax": SpatialSoftArgmax},
                      what="Localiser")


# --------------------------------------------------------------------------- inputs


def to_unit(xy: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Source pixels (N, 2) ``(x, y)`` -> (u, v) in [0, 1]; ``shape`` (N, 2) is (rows, cols).

    >>> to_unit(np.array([[0.0, 9.5]]), np.array([[20, 10]])).tolist()
    [[0.05, 0.5]]
    """
    xy = np.asarray(xy, dtype=float)
    shape = np.asarray(shape, dtype=float)
    return np.stack([(xy[:, 0] + 0.5) / shape[:, 1], (xy[:, 1] + 0.5) / shape[:, 0]], axis=1)


def from_unit(uv: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_unit`, clipped to the image (``0 <= x < cols``, ``0 <= y < rows``).

    >>> from_unit(np.array([[0.05, 0.5]]), np.array([[20, 10]])).tolist()
    [[0.0, 9.5]]
    """
    uv = np.asarray(uv, dtype=float)
    shape = np.asarray(shape, dtype=float)
    x = np.clip(uv[:, 0] * shape[:, 1] - 0.5, 0.0, shape[:, 1] - 1e-3)
    y = np.clip(uv[:, 1] * shape[:, 0] - 0.5, 0.0, shape[:, 0] - 1e-3)
    return np.stack([x, y], axis=1)


def series_geometry(root: str | Path, index: pd.DataFrame, *, split: str = "train"
                    ) -> pd.DataFrame:
    """Rows, columns and ``PixelSpacing`` of each row's series, from one file's header.

    Returns
    -------
    DataFrame
        ``rows``, ``cols``, ``spacing_y`` (row spacing, mm) and ``spacing_x`` (column
        spacing, mm), one row per row of ``index``, same order. A series has one image
        size (:func:`lss.data.scan_series` refuses mixed sizes), so one header suffices.
    """
    out = []
    for study, series in index[["study_id", "series_id"]].itertuples(index=False):
        ds = first_file_header(series_dir(root, study, series, split=split),
                               ["Rows", "Columns", "PixelSpacing"])
        try:
            sy, sx = (float(v) for v in ds.PixelSpacing)
            out.append((int(ds.Rows), int(ds.Columns), sy, sx))
        except Exception as exc:  # noqa: BLE001 -- re-raised naming the file
            raise DataError(f"Cannot read Rows/Columns/PixelSpacing from {ds.filename} "
                            f"({exc})") from exc
    return pd.DataFrame(out, columns=["rows", "cols", "spacing_y", "spacing_x"])


def _input_config(image_size: int) -> PreprocessConfig:
    return PreprocessConfig(n_slices=1, image_size=int(image_size))


def localiser_inputs(root: str | Path, index: pd.DataFrame, *, image_size: int,
                     cache_dir: str | Path | None = None, workers: int | None = None,
                     split: str = "train") -> np.ndarray:
    """The labelled slice of each row, resized to ``image_size`` squared and scaled.

    Read through a :class:`~lss.data.TensorCache` (one-slice windows). The rows' ``x``
    and ``y`` are **not** read: the slice comes from ``instance_number`` alone.

    Returns
    -------
    (N, image_size, image_size) float32 ndarray
    """
    cache = TensorCache(root, _input_config(image_size), cache_dir=cache_dir, split=split)
    blind = np.full((len(index), 2), np.nan)
    return cache.load(index, centres=blind, workers=workers)[:, 0]


# --------------------------------------------------------------------------- training


def _shift_batch(x: np.ndarray, uv: np.ndarray, rng: np.random.Generator, shift: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Translate each image by a random whole number of pixels; the target moves along."""
    n, s = x.shape[0], x.shape[1]
    out = np.zeros_like(x)
    uv = uv.copy()
    limit = int(round(shift * s))
    for i in range(n):
        dx, dy = rng.integers(-limit, limit + 1, size=2) if limit else (0, 0)
        src_y = slice(max(0, -dy), min(s, s - dy))
        src_x = slice(max(0, -dx), min(s, s - dx))
        dst_y = slice(max(0, dy), min(s, s + dy))
        dst_x = slice(max(0, dx), min(s, s + dx))
        out[i, dst_y, dst_x] = x[i, src_y, src_x]
        uv[i] += (dx / s, dy / s)
    return out, uv


def _batches(x: np.ndarray, uv: np.ndarray, config: LocaliserConfig):
    class _Shifted(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch = 0

        def __len__(self):
            return math.ceil(len(x) / config.batch_size)

        def __getitem__(self, i):
            rng = np.random.default_rng((config.seed, self.epoch, i))
            order = np.random.default_rng((config.seed, self.epoch)).permutation(len(x))
            sel = order[i * config.batch_size:(i + 1) * config.batch_size]
            xb, ub = _shift_batch(x[sel], uv[sel], rng, config.shift)
            return xb[..., None], ub.astype(np.float32)

        def on_epoch_end(self):
            self.epoch += 1

    return _Shifted()


@dataclass
class LocaliserResult:
    """What :func:`train_localiser` returns."""

    model: object
    path: Path | None
    history: pd.DataFrame
    n_train: int
    excluded: list[int] = field(default_factory=list)


def train_localiser(root: str | Path, index: pd.DataFrame, path: str | Path | None = None,
                    *, config: LocaliserConfig | None = None,
                    cache_dir: str | Path | None = None, workers: int | None = None,
                    verbose: int = 0) -> LocaliserResult:
    """Train the localiser on the rows of ``index`` (pass the *training* split only).

    Parameters
    ----------
    root : str or Path
        Data root.
    index : DataFrame
        Rows of :func:`lss.data.build_index` with their ``x``, ``y`` points. Rows
        without a point (no coordinate row) are left out and listed in ``excluded``.
        Rows whose ``mirror`` column (:func:`lss.data.build_target_index`) is true are
        flipped left-right, slice and point: one localiser learns both recesses.
    path : str or Path, optional
        Save the model here (``.keras``; its config goes to ``.json`` beside it).
    config : LocaliserConfig, optional

    Returns
    -------
    LocaliserResult
    """
    config = config or LocaliserConfig()
    has_point = index[["x", "y"]].notna().all(axis=1) & index["instance_number"].notna()
    excluded = index.loc[~has_point, "study_id"].astype(int).tolist()
    rows = index[has_point].reset_index(drop=True)
    if len(rows) == 0:
        raise DataError("No rows with an (x, y) point to train the localiser on")
    x = localiser_inputs(root, rows, image_size=config.image_size, cache_dir=cache_dir,
                         workers=workers)
    geo = series_geometry(root, rows)
    uv = to_unit(rows[["x", "y"]].to_numpy(float), geo[["rows", "cols"]].to_numpy())
    if "mirror" in rows:  # a right recess in the left's place
        flip = rows["mirror"].to_numpy(bool)
        x[flip], uv[flip, 0] = x[flip][:, :, ::-1], 1.0 - uv[flip, 0]
    keras.utils.set_random_seed(config.seed)
    model = build_localiser(config.image_size, config.filters,
                            learning_rate=config.learning_rate)
    fit = model.fit(_batches(x, uv, config), epochs=config.epochs, shuffle=False,
                    verbose=verbose)
    history = pd.DataFrame(fit.history)
    history.insert(0, "epoch", np.arange(len(history)))
    if path is not None:
        path = save_localiser(model, path, config)
    return LocaliserResult(model, Path(path) if path else None, history, len(rows), excluded)


# --------------------------------------------------------------------------- prediction


def _predict_unit(model, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    s = model.input_shape[1]
    if x.shape[1:] != (s, s):
        raise ValueError(f"localiser expects slices of {s}x{s}, got {x.shape[1:]}")
    return np.asarray(model.predict(x[..., None], batch_size=batch_size, verbose=0),
                      dtype=float)


def predict_centres(model, root: str | Path, index: pd.DataFrame, *,
                    cache_dir: str | Path | None = None, workers: int | None = None,
                    split: str = "train") -> np.ndarray:
    """The localiser's (x, y) in source pixels for each row of ``index``.

    Only ``study_id``, ``series_id`` and ``instance_number`` are read: a row's own ``x``
    and ``y`` (the answer) never reach the prediction.

    Returns
    -------
    (N, 2) float ndarray
        ``(x, y)`` in the pixels of each row's series, inside the image.
    """
    size = int(model.input_shape[1])
    x = localiser_inputs(root, index, image_size=size, cache_dir=cache_dir, workers=workers,
                         split=split)
    geo = series_geometry(root, index, split=split)
    return from_unit(_predict_unit(model, x), geo[["rows", "cols"]].to_numpy())


def centres_for_series(model, headers: Sequence[SeriesHeader],
                       instances: Sequence[int | None] | None = None,
                       mirror: Sequence[bool] | None = None) -> list[tuple[float, float]]:
    """(x, y) for studies given as series headers (prediction on new studies).

    ``instances[i]`` is the slice to look at (``None``: the middle slice, as
    :func:`lss.evaluate.predict` centres its window there). Where ``mirror[i]``, the
    slice is flipped left-right before and the point after (a right recess, for a
    localiser trained with mirrored right rows).
    """
    size = int(model.input_shape[1])
    instances = list(instances) if instances is not None else [None] * len(headers)
    flip = np.zeros(len(headers), bool) if mirror is None else np.asarray(mirror, bool)
    if len(instances) != len(headers) or len(flip) != len(headers):
        raise ValueError(f"{len(headers)} headers but {len(instances)} instances and "
                         f"{len(flip)} mirror flags")
    x = np.stack([level_window(h, inst, _input_config(size)).volume[0]
                  for h, inst in zip(headers, instances, strict=True)])
    x[flip] = x[flip][:, :, ::-1]
    uv = _predict_unit(model, x)
    uv[flip, 0] = 1.0 - uv[flip, 0]
    shape = np.array([h.shape for h in headers])
    return [tuple(map(float, c)) for c in from_unit(uv, shape)]


# --------------------------------------------------------------------------- errors


@dataclass
class LocaliserErrors:
    """Distances between predicted and true points, per row and summarised.

    Attributes
    ----------
    error_px : (N,) ndarray -- Euclidean distance in source pixels
    error_mm : (N,) ndarray -- the same in millimetres (PixelSpacing)
    within_mm : float -- the tolerance for :attr:`fraction_within`
    """

    error_px: np.ndarray
    error_mm: np.ndarray
    within_mm: float = 5.0

    @property
    def fraction_within(self) -> float:
        """Share of rows whose error is at most ``within_mm``."""
        return float(np.mean(self.error_mm <= self.within_mm))

    def summary(self) -> dict[str, float]:
        """n, median and mean in pixels and mm, 90th percentile and max in mm, and
        the fraction within ``within_mm``."""
        return {
            "n": int(len(self.error_px)),
            "median_px": float(np.median(self.error_px)),
            "mean_px": float(np.mean(self.error_px)),
            "median_mm": float(np.median(self.error_mm)),
            "mean_mm": float(np.mean(self.error_mm)),
            "p90_mm": float(np.percentile(self.error_mm, 90)),
            "max_mm": float(np.max(self.error_mm)),
            "within_mm": float(self.within_mm),
            "fraction_within": self.fraction_within,
        }


def localiser_errors(pred_xy: np.ndarray, true_xy: np.ndarray, spacing: np.ndarray, *,
                     within_mm: float = 5.0) -> LocaliserErrors:
    """Errors of predicted points, in pixels and in millimetres.

    Parameters
    ----------
    pred_xy, true_xy : (N, 2) arrays
        ``(x, y)`` in source pixels.
    spacing : (N, 2) or (2,) array
        ``PixelSpacing`` as DICOM orders it: (row spacing, column spacing) in mm, i.e.
        the size of a step in ``y`` and in ``x``.
    within_mm : float
        Tolerance for :attr:`LocaliserErrors.fraction_within`.

    Examples
    --------
    >>> e = localiser_errors([[3, 4], [0, 0]], [[0, 0], [0, 1]], [0.5, 1.0])
    >>> e.error_px.tolist(), e.error_mm.tolist(), e.fraction_within
    ([5.0, 1.0], [3.605551275463989, 0.5], 1.0)
    """
    p = np.asarray(pred_xy, dtype=float)
    t = np.asarray(true_xy, dtype=float)
    if p.shape != t.shape or p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"pred_xy and true_xy must both be (N, 2), got {p.shape}, {t.shape}")
    if not np.isfinite(t).all() or not np.isfinite(p).all():
        raise ValueError("pred_xy and true_xy must be finite (drop rows without a point)")
    sp = np.broadcast_to(np.asarray(spacing, dtype=float), p.shape)
    d = p - t
    return LocaliserErrors(np.hypot(d[:, 0], d[:, 1]),
                           np.hypot(d[:, 0] * sp[:, 1], d[:, 1] * sp[:, 0]), float(within_mm))


# --------------------------------------------------------------------------- run folders


def install_localiser(source: str | Path, run_dir: str | Path | RunDir) -> Path:
    """Copy a saved localiser (and its ``.json``) into a run folder
    (:attr:`lss.run.RunDir.localiser`)."""
    source = Path(source)
    if not source.is_file():
        raise FileNotFoundError(f"Localiser file not found: {source}")
    target = RunDir(run_dir).localiser
    shutil.copy2(source, target)
    if source.with_suffix(".json").is_file():
        shutil.copy2(source.with_suffix(".json"), target.with_suffix(".json"))
    return target


def load_run_localiser(run_dir: str | Path | RunDir):
    """The localiser stored in a run folder, or None where it has none."""
    path = RunDir(run_dir).localiser
    return load_localiser(path) if path.is_file() else None


def run_centres(run_dir: str | Path | RunDir, root: str | Path, index: pd.DataFrame, *,
                cache_dir: str | Path | None = None, workers: int | None = None,
                split: str = "train") -> tuple[np.ndarray | None, str]:
    """Crop centres for an ROI run's evaluation: its localiser's, where it has one.

    Returns
    -------
    centres, source : (N, 2) ndarray or None, str
        ``(predicted centres, "localiser")``; or ``(None, "coordinate table")`` for an
        ROI run without a localiser, which then crops at the table's points (an
        optimistic, oracle evaluation, logged as a warning).
    """
    model = load_run_localiser(run_dir)
    if model is None:
        log.warning("ROI run %s has no %s: evaluating at the coordinate table's points "
                    "(oracle centres)", RunDir(run_dir).path, RunDir.LOCALISER)
        return None, "coordinate table"
    return predict_centres(model, root, index, cache_dir=cache_dir, workers=workers,
                           split=split), "localiser"


# --------------------------------------------------------------------------- workflow


def fit_split_localiser(root: str | Path, out_dir: str | Path, index: pd.DataFrame,
                        split: pd.DataFrame, *, config: LocaliserConfig | None = None,
                        cache_dir: str | Path | None = None, workers: int | None = None,
                        retrain: bool = False, verbose: int = 0
                        ) -> tuple[Path, np.ndarray, dict[str, Any]]:
    """Train (or reuse) the localiser on the training split; predict the validation centres.

    The localiser lives in ``out_dir/localiser/``. One already there is reused when it was
    trained with the same settings on the same training studies of the same data (root,
    phantom marker and coordinate table unchanged), unless ``retrain``.

    Returns
    -------
    path, val_centres, errors
        The saved ``localiser.keras``; the predicted (x, y) of every validation row, in
        ``index`` order; and :meth:`~lss.localiser.LocaliserErrors.summary` of their
        distance to the table's points (computed *after* predicting, for the report).
    """
    config = config or LocaliserConfig()
    folder = Path(out_dir) / "localiser"
    path = folder / "localiser.keras"
    is_train = (split["split"] == "train").to_numpy()
    train_rows = index[is_train].reset_index(drop=True)
    val_rows = index[~is_train].reset_index(drop=True)
    coords = Path(root) / "train_label_coordinates.csv"
    key = {"config": config.to_dict(), "data": data_source(root),
           "coordinates_mtime_ns": coords.stat().st_mtime_ns if coords.is_file() else None,
           "train_studies": sorted(int(s) for s in train_rows["study_id"])}
    old = RunDir(folder).read_manifest()
    if retrain or not path.is_file() or json.loads(json.dumps(old.get("key"))) != \
            json.loads(json.dumps(key)):
        if folder.exists():
            shutil.rmtree(folder)
        t0 = time.perf_counter()
        result = train_localiser(root, train_rows, path, config=config, cache_dir=cache_dir,
                                 workers=workers, verbose=verbose)
        RunDir(folder).write_manifest({"kind": "localiser", "data": data_source(root), "key": key,
                                "n_train": result.n_train, "excluded": result.excluded,
                                "train_seconds": round(time.perf_counter() - t0, 1),
                                "final_loss": float(result.history["loss"].iloc[-1])})
    model = load_localiser(path)
    centres = predict_centres(model, root, val_rows, cache_dir=cache_dir, workers=workers)
    # Only now are the validation points read: to measure the error, not to predict.
    has_point = val_rows[["x", "y"]].notna().all(axis=1).to_numpy()
    geo = series_geometry(root, val_rows)
    errors = localiser_errors(centres[has_point], val_rows.loc[has_point, ["x", "y"]].to_numpy(),
                              geo.loc[has_point, ["spacing_y", "spacing_x"]].to_numpy())
    per_row = pd.DataFrame({"study_id": val_rows["study_id"], "series_id": val_rows["series_id"],
                            "instance_number": val_rows["instance_number"],
                            "x_pred": centres[:, 0], "y_pred": centres[:, 1],
                            "x_true": val_rows["x"], "y_true": val_rows["y"]})
    per_row.loc[has_point, "error_px"] = errors.error_px
    per_row.loc[has_point, "error_mm"] = errors.error_mm
    per_row.to_csv(folder / "val_centres.csv", index=False)
    summary = errors.summary()
    RunDir(folder).write_manifest({"val_errors": summary})
    return path, centres, summary


def fill_training_centres(root, index: pd.DataFrame, split: pd.DataFrame, loc_path: Path, *,
                           cache_dir, workers) -> pd.DataFrame:
    """``index`` with the localiser's point for training rows that have none.

    A labelled study without a coordinate row (the "only series" rule of
    :func:`lss.data.build_index`) has no recess point to crop around; rather than drop
    it from an ROI row's training, the localiser (trained on the studies that have
    points) places its crop, as it does for every validation study. Rows with a point
    keep it.
    """
    is_train = index["study_id"].isin(split.loc[split["split"] == "train", "study_id"])
    missing = is_train.to_numpy() & index[["x", "y"]].isna().any(axis=1).to_numpy()
    if not missing.any():
        return index
    rows = index[missing].reset_index(drop=True)
    centres = predict_centres(load_localiser(loc_path), root, rows, cache_dir=cache_dir,
                              workers=workers)
    out = index.copy()
    out.loc[missing, ["x", "y"]] = centres
    return out
