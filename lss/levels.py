"""Where are the five disc levels? A localiser on the middle Sagittal T2/STIR slice.

A new study has no radiologist coordinates, so to grade a level on its axial series
the level must first be found. This module finds the five disc levels (L1/L2 ... L5/S1)
as five points ``(x, y)`` on the middle slice of the study's Sagittal T2/STIR series;
:mod:`lss.data.geometry` carries such points into patient space (not done here).

The network is the recess localiser's (:mod:`lss.localiser`) widened to five score
channels: a small fully convolutional net whose :class:`~lss.localiser.SpatialSoftArgmax`
(``keep_points=True``) turns each channel into one point. It learns from the training
studies' "Spinal Canal Stenosis" coordinate rows, which lie on the Sagittal T2/STIR
series and mark the canal at each disc. A level without a row is masked out of the
loss (:func:`masked_point_loss`): no point is invented, and no study is dropped silently
(a study with no row at all is listed in ``excluded``).

Which slice
-----------
Training and prediction both look at the **middle slice by spatial order** of the
series, never at the labelled instance: at prediction no label exists, so training on
the labelled instance would teach the network on slices it never sees later. The five
rows of a study may also name different instances (a level labelled one slice off the
midline), so "the labelled slice" is not even one slice. The canal's in-plane position
hardly changes between the midline slice and its neighbours, and the labels' ``(x, y)``
are in the series' pixel space whatever the slice.

Which series
------------
In training, the one Sagittal T2/STIR series the study's coordinate rows name (rows on
another series leave the study without points, reported). Otherwise, and for a new
study, its longest Sagittal T2/STIR series, ties to the lowest id: the rule of
:func:`lss.evaluate.choose_series` (restated: evaluate is a layer above). A study with
none raises :class:`~lss.data.DataError` naming it.

Coordinates follow ``train_label_coordinates.csv`` (``x`` column, ``y`` row) and the
normalised ``(u, v)`` of :func:`lss.localiser.to_unit`.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pandas as pd

from lss.config import CONDITIONS, LEVELS, SERIES_FOR_CONDITION, LevelLocaliserConfig
from lss.data import DataError, SeriesHeader, level_window, load_tables, scan_series, series_dir
from lss.data.dicom import list_dicom_files
from lss.localiser import (
    LocaliserResult,
    SpatialSoftArgmax,
    _batches,
    _input_config,
    _predict_unit,
    from_unit,
    localiser_errors,
    localiser_inputs,
    save_localiser,
    series_geometry,
    to_unit,
)
from lss.model import load_model

__all__ = ["SAGITTAL", "masked_point_loss", "build_level_localiser", "load_level_localiser",
           "sagittal_series", "level_index", "level_points", "train_levels", "predict_levels",
           "predict_level_points", "level_errors", "summarise_level_errors"]

#: The series description the levels are found on (that of spinal canal stenosis).
SAGITTAL: str = SERIES_FOR_CONDITION["spinal_canal_stenosis"]
_CONDITION = CONDITIONS["spinal_canal_stenosis"]


# --------------------------------------------------------------------------- model


@keras.saving.register_keras_serializable(package="lss")
def masked_point_loss(y_true, y_pred):
    """Mean absolute error over the coordinates present; NaN targets are ignored.

    Parameters
    ----------
    y_true, y_pred : (B, K, 2) tensors
        ``(u, v)`` per point; a missing point is NaN in ``y_true``.

    Returns
    -------
    (B,) tensor
        Per study, the mean of ``|y_pred - y_true|`` over its present coordinates
        (0 for a study without any).
    """
    ops = keras.ops
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    present = ops.logical_not(ops.isnan(y_true))
    diff = ops.abs(y_pred - ops.where(present, y_true, 0.0))
    diff = ops.where(present, diff, 0.0)
    n = ops.sum(ops.cast(present, "float32"), axis=(1, 2))
    return ops.sum(diff, axis=(1, 2)) / ops.maximum(n, 1.0)


def build_level_localiser(image_size: int = 128, filters=(16, 32, 64), *,
                          learning_rate: float = 2e-3):
    """The level localiser, compiled (Adam, :func:`masked_point_loss`).

    ``slice (B, S, S, 1) -> [Conv 3x3 -> MaxPool 2] x 2 -> Conv 3x3 -> dilated Conv 3x3
    (rate 2, 4, 8) -> Conv 1x1 -> scores (B, S/4, S/4, 5) -> SpatialSoftArgmax ->
    (B, 5, 2)``. The dilations give each cell a view of most of the slice: to tell
    L2/L3 from L3/L4 a cell must see how far the sacrum is.

    Examples
    --------
    >>> build_level_localiser(32, (4, 8)).output_shape
    (None, 5, 2)
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
    for rate in (2, 4, 8):
        x = layers.Conv2D(filters[-1], 3, padding="same", dilation_rate=rate,
                          activation="relu", name=f"context{rate}")(x)
    scores = layers.Conv2D(len(LEVELS), 1, name="scores")(x)
    out = SpatialSoftArgmax(keep_points=True, name="levels")(scores)
    model = keras.Model(inp, out, name="level_localiser")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=masked_point_loss)
    return model


def load_level_localiser(path: str | Path):
    """Load a level localiser saved by :func:`train_levels` (``safe_mode=True``)."""
    return load_model(path, custom_objects={"lss>SpatialSoftArgmax": SpatialSoftArgmax,
                                            "lss>masked_point_loss": masked_point_loss},
                      what="Level localiser")


# --------------------------------------------------------------------------- series


def _longest(folders: list[Path]) -> Path:
    """The folder with most ``.dcm`` files, ties to the lowest series id."""
    return max(sorted(folders, key=lambda p: int(p.name)),
               key=lambda p: len(list_dicom_files(p)))


def _sagittal_folder(series: pd.DataFrame, root: Path, study_id: int, split: str) -> Path:
    """:func:`sagittal_series` on a descriptions table already read."""
    rows = series[(series["study_id"] == study_id) & (series["series_description"] == SAGITTAL)]
    if rows.empty:
        raise DataError(f"Study {study_id}: no {SAGITTAL} series in "
                        f"{split}_series_descriptions.csv")
    folders = [series_dir(root, study_id, s, split=split) for s in rows["series_id"]]
    missing = [f for f in folders if not f.is_dir()]
    if missing:
        raise DataError(f"Study {study_id}: series folder {missing[0]} is missing")
    return _longest(folders)


def sagittal_series(root: str | Path, study_id: int, *, split: str = "train") -> Path:
    """The Sagittal T2/STIR series folder of a study, from ``<split>_series_descriptions.csv``.

    Several: the one with most slices, ties to the lowest series id. None: a
    :class:`~lss.data.DataError` naming the study.
    """
    tables = load_tables(root)
    series = tables.test_series if split == "test" else tables.series
    if series is None:
        raise DataError(f"No {split}_series_descriptions.csv under {root}")
    return _sagittal_folder(series, Path(root), int(study_id), split)


# --------------------------------------------------------------------------- inputs


def _point_columns() -> list[str]:
    return [f"{a}_{lv}" for lv in LEVELS for a in ("x", "y")]


def _study_row(study_id: int, coords: pd.DataFrame, series: pd.DataFrame, root: Path
               ) -> tuple[list, str | None]:
    """One row of :func:`level_index` and, for a study without a usable point, why."""
    if coords["level"].duplicated().any():
        raise DataError(f"Study {study_id}: several {_CONDITION} rows for one level")
    named = sorted(set(coords["series_id"].astype(int)))
    desc = series.loc[(series["study_id"] == study_id) & series["series_id"].isin(named),
                      "series_description"].tolist()
    why = None
    if not named:
        why = f"no {_CONDITION} coordinate rows"
    elif len(named) > 1:
        why = f"its {_CONDITION} rows name several series {named}"
    elif desc != [SAGITTAL]:
        why = f"its {_CONDITION} rows name series {named[0]}, described as {desc}"
    if why:
        folder = _sagittal_folder(series, root, study_id, "train")
        return [study_id, int(folder.name)] + [np.nan] * 2 * len(LEVELS), why
    at = coords.set_index("level")
    points = [float(at.loc[lv, a]) if lv in at.index else np.nan
              for lv in LEVELS for a in ("x", "y")]
    return [study_id, named[0]] + points, None


def level_index(root: str | Path, study_ids=None) -> pd.DataFrame:
    """One row per study: its Sagittal T2/STIR series and the five labelled points.

    Parameters
    ----------
    root : str or Path
        A data root with the training tables.
    study_ids : sequence of int, optional
        The studies (default: every study of ``train_series_descriptions.csv``).

    Returns
    -------
    DataFrame
        ``study_id``, ``series_id``, ``instance_number`` (always missing: the middle
        slice is read, see the module docstring) and ``x_<level>``, ``y_<level>`` for
        each of :data:`lss.config.LEVELS` (NaN without a coordinate row). A study
        without a usable point (no row, or rows on another series than a Sagittal
        T2/STIR one, like real study 3637444890's on its Sagittal T1) keeps its row,
        points NaN, and is listed with the reason in ``df.attrs["excluded"]``.
    """
    root = Path(root)
    tables = load_tables(root)
    s, c = tables.series, tables.coordinates
    c = c[c["condition"] == _CONDITION]
    rows, excluded = [], []
    for sid in (int(v) for v in (sorted(set(s["study_id"])) if study_ids is None
                                 else study_ids)):
        row, why = _study_row(sid, c[c["study_id"] == sid], s, root)
        rows.append(row)
        if why:
            excluded.append({"study_id": sid, "reason": why})
    df = pd.DataFrame(rows, columns=["study_id", "series_id"] + _point_columns())
    df.insert(2, "instance_number", pd.array([pd.NA] * len(df), dtype="Int64"))
    df.attrs["excluded"] = excluded
    return df


def level_points(index: pd.DataFrame) -> np.ndarray:
    """The labelled points of :func:`level_index` rows as an (N, 5, 2) array of (x, y)."""
    return index[_point_columns()].to_numpy(float).reshape(len(index), len(LEVELS), 2)


def _to_unit_points(xy: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """(N, K, 2) pixels -> (N, K, 2) unit coordinates; ``shape`` (N, 2) rows, cols."""
    n, k = xy.shape[:2]
    return to_unit(xy.reshape(-1, 2), np.repeat(shape, k, axis=0)).reshape(n, k, 2)


def _from_unit_points(uv: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_to_unit_points`, clipped to each image."""
    n, k = uv.shape[:2]
    return from_unit(uv.reshape(-1, 2), np.repeat(shape, k, axis=0)).reshape(n, k, 2)


# --------------------------------------------------------------------------- training


def train_levels(
    root: str | Path,
    study_ids,
    path: str | Path | None = None,
    *,
    config: LevelLocaliserConfig | None = None,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    verbose: int = 0,
) -> LocaliserResult:
    """Train the level localiser on ``study_ids`` (pass the *training* studies only).

    Parameters
    ----------
    root : str or Path
        Data root (training tables and ``train_images/``).
    study_ids : sequence of int
        The training studies. Levels without a coordinate row are masked out of the
        loss; a study without any is left out and listed in ``excluded``.
    path : str or Path, optional
        Save the model here (``.keras``, with its config in ``.json`` beside it).
    config : LevelLocaliserConfig, optional

    Returns
    -------
    LocaliserResult
        ``model``, ``path``, ``history``, ``n_train`` and ``excluded`` (study ids).
    """
    config = config or LevelLocaliserConfig()
    index = level_index(root, study_ids)
    excluded = [e["study_id"] for e in index.attrs["excluded"]]
    rows = index[~index["study_id"].isin(excluded)].reset_index(drop=True)
    if len(rows) == 0:
        raise DataError(f"No study with a {_CONDITION} point to train the level localiser on")
    x = localiser_inputs(root, rows, image_size=config.image_size, cache_dir=cache_dir,
                         workers=workers)
    shape = series_geometry(root, rows)[["rows", "cols"]].to_numpy()
    uv = _to_unit_points(level_points(rows), shape)
    keras.utils.set_random_seed(config.seed)
    model = build_level_localiser(config.image_size, config.filters,
                                  learning_rate=config.learning_rate)
    fit = model.fit(_batches(x, uv, config), epochs=config.epochs, shuffle=False,
                    verbose=verbose)
    history = pd.DataFrame(fit.history)
    history.insert(0, "epoch", np.arange(len(history)))
    if path is not None:
        path = save_localiser(model, path, config)
    return LocaliserResult(model, Path(path) if path else None, history, len(rows), excluded)


# --------------------------------------------------------------------------- prediction


def predict_levels(model, series: str | Path | SeriesHeader
                   ) -> dict[str, tuple[int, float, float]]:
    """The five levels of one series: ``{level: (instance_number, x, y)}``.

    ``series`` is a Sagittal T2/STIR folder (see :func:`sagittal_series`) or its
    :func:`~lss.data.scan_series` header. The points lie on the middle slice by
    spatial order, whose ``InstanceNumber`` every level carries, in that series' pixels
    (``x`` column, ``y`` row, inside the image).
    """
    header = series if isinstance(series, SeriesHeader) else scan_series(series)
    window = level_window(header, None, _input_config(int(model.input_shape[1])))
    uv = _predict_unit(model, window.volume)
    xy = _from_unit_points(uv, np.array([header.shape]))[0]
    instance = int(window.instance_numbers[0])
    return {lv: (instance, float(x), float(y)) for lv, (x, y) in zip(LEVELS, xy, strict=True)}


def predict_level_points(model, root: str | Path, index: pd.DataFrame, *,
                         cache_dir: str | Path | None = None, workers: int | None = None,
                         split: str = "train") -> np.ndarray:
    """(N, 5, 2) predicted ``(x, y)`` for the rows of ``index`` (``study_id``,
    ``series_id``), on each series' middle slice; the rows' own points are not read."""
    rows = index[["study_id", "series_id"]].assign(
        instance_number=pd.array([pd.NA] * len(index), dtype="Int64"))
    x = localiser_inputs(root, rows, image_size=int(model.input_shape[1]),
                         cache_dir=cache_dir, workers=workers, split=split)
    shape = series_geometry(root, rows, split=split)[["rows", "cols"]].to_numpy()
    return _from_unit_points(_predict_unit(model, x), shape)


# --------------------------------------------------------------------------- errors


def level_errors(pred_xy: np.ndarray, true_xy: np.ndarray, spacing: np.ndarray,
                 study_ids=None) -> pd.DataFrame:
    """Per study and level with a true point: the error in mm and its head-foot part.

    Parameters
    ----------
    pred_xy, true_xy : (N, 5, 2) arrays
        ``(x, y)`` in source pixels; NaN in ``true_xy`` for a level without a label
        (that row is left out).
    spacing : (N, 2) array
        ``PixelSpacing`` (row spacing, column spacing) in mm of each study's series.
    study_ids : sequence of int, optional

    Returns
    -------
    DataFrame
        ``study_id``, ``level``, ``error_mm`` (Euclidean, in plane) and
        ``head_foot_mm`` (``|dy|`` times the row spacing: on a sagittal slice the rows
        run head to foot on a standard sagittal slice: this part picks the axial slice).
    """
    pred, true = np.asarray(pred_xy, float), np.asarray(true_xy, float)
    n, k = true.shape[:2]
    sp = np.repeat(np.asarray(spacing, float).reshape(n, 2), k, axis=0)
    p, t = pred.reshape(-1, 2), true.reshape(-1, 2)
    has = np.isfinite(t).all(axis=1)
    err = localiser_errors(p[has], t[has], sp[has])
    ids = np.repeat(np.arange(n) if study_ids is None else np.asarray(study_ids), k)
    return pd.DataFrame({"study_id": ids[has], "level": np.tile(LEVELS, n)[has],
                         "error_mm": err.error_mm,
                         "head_foot_mm": np.abs(p[has, 1] - t[has, 1]) * sp[has, 0]})


def summarise_level_errors(errors: pd.DataFrame) -> pd.DataFrame:
    """Median, 90th percentile and max of :func:`level_errors` per level and overall.

    >>> e = pd.DataFrame({"level": ["L1/L2", "L1/L2"], "error_mm": [1.0, 3.0],
    ...                   "head_foot_mm": [0.5, 2.0]})
    >>> summarise_level_errors(e).loc["all", ["n", "median_mm", "max_hf_mm"]].tolist()
    [2.0, 2.0, 2.0]
    """
    def one(df: pd.DataFrame) -> dict[str, float]:
        e, hf = df["error_mm"].to_numpy(), df["head_foot_mm"].to_numpy()
        return {"n": float(len(df)), "median_mm": float(np.median(e)),
                "p90_mm": float(np.percentile(e, 90)), "max_mm": float(np.max(e)),
                "median_hf_mm": float(np.median(hf)), "p90_hf_mm": float(np.percentile(hf, 90)),
                "max_hf_mm": float(np.max(hf))}

    out = {lv: one(g) for lv, g in errors.groupby("level", sort=False)}
    out["all"] = one(errors)
    order = [lv for lv in LEVELS if lv in out] + ["all"]
    return pd.DataFrame(out).T.loc[order]



def study_level_errors(model, root: str | Path, study_ids, *,
                       cache_dir: str | Path | None = None,
                       workers: int | None = None) -> pd.DataFrame:
    """:func:`level_errors` of ``model`` on ``study_ids`` (pass held-out studies): its
    points against their Spinal Canal Stenosis rows, in mm, per (study, level)."""
    index = level_index(root, study_ids)
    rows = index[index[_point_columns()].notna().any(axis=1)].reset_index(drop=True)
    pred = predict_level_points(model, root, rows, cache_dir=cache_dir, workers=workers)
    spacing = series_geometry(root, rows)[["spacing_y", "spacing_x"]].to_numpy()
    return level_errors(pred, level_points(rows), spacing, rows["study_id"].to_numpy())
