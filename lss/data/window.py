"""From a series to a model input: the level window, resizing and scaling.

A level window is the ``n_slices`` slices centred, in spatial order, on the slice that
the coordinate table names for the level. Each slice is optionally cropped around a
point (the region-of-interest experiment), resized to ``image_size`` squared and the
window is scaled to [0, 1].
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from lss.config import PreprocessConfig
from lss.data.dicom import SeriesHeader, _read, _scan, decode_slice
from lss.errors import DataError

__all__ = ["window_indices", "resize_slice", "crop_origin", "crop_pixels", "crop_slice",
           "source_to_window", "scale_unit", "level_window", "Window", "coordinate",
           "check_inside"]


def window_indices(n_total: int, centre: int, n_slices: int) -> np.ndarray:
    """Indices of a window of ``n_slices`` around ``centre`` in a series of ``n_total``.

    The centre sits at position ``n_slices // 2`` of the window. Where the window runs
    past an end of the series the end slice is repeated (edge padding), so the labelled
    slice keeps its place in the window and every window has the same length.

    >>> window_indices(10, 5, 4).tolist()
    [3, 4, 5, 6]
    >>> window_indices(10, 0, 4).tolist()
    [0, 0, 0, 1]
    >>> window_indices(3, 2, 5).tolist()
    [0, 1, 2, 2, 2]
    """
    if n_total < 1:
        raise ValueError(f"n_total must be >= 1, got {n_total}")
    if not 0 <= centre < n_total:
        raise ValueError(f"centre {centre} outside a series of {n_total} slices")
    start = centre - n_slices // 2
    return np.clip(np.arange(start, start + n_slices), 0, n_total - 1)


def resize_slice(img: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize a 2-D float image to ``size`` (square int, or (rows, cols)) with PIL.

    Bilinear with PIL's antialiasing filter support, so downsampling averages rather
    than skips pixels.
    """
    rows, cols = (size, size) if isinstance(size, int) else size
    if img.shape == (rows, cols):
        return img.astype(np.float32, copy=False)
    pil = Image.fromarray(np.ascontiguousarray(img, dtype=np.float32), mode="F")
    return np.asarray(pil.resize((cols, rows), Image.Resampling.BILINEAR), dtype=np.float32)


def crop_origin(centre_xy: tuple[float, float], side_px: tuple[int, int]) -> tuple[int, int]:
    """The source pixel ``(x0, y0)`` at the top left of a crop of ``side_px`` (rows, cols)
    centred at ``(x, y)``: the one rule :func:`crop_slice` cuts by, and by which a point of
    the source is found in the crop (:func:`lss.interpret.window_point`).

    >>> crop_origin((10.0, 20.0), (4, 6))
    (7, 18)
    """
    h, w = side_px
    return int(round(centre_xy[0] - w / 2)), int(round(centre_xy[1] - h / 2))


def crop_pixels(crop_mm: float, pixel_spacing: tuple[float, float]) -> tuple[int, int]:
    """The (rows, cols) in source pixels of a ``crop_mm`` square at ``pixel_spacing``
    (row, col mm): the one rule :func:`level_window` crops by.

    >>> crop_pixels(40.0, (0.8, 0.5))
    (50, 80)
    """
    return tuple(max(1, int(round(crop_mm / s))) for s in pixel_spacing)  # type: ignore[return-value]


def source_to_window(point_xy: tuple[float, float], window: Window, image_size: int, *,
                     crop_px: tuple[int, int] | None = None) -> tuple[float, float]:
    """Where a point ``(x, y)`` of the source slice lies in a window's pixels.

    The window is the whole slice resized to ``image_size`` (``crop_px`` None), or the
    ``crop_px`` crop centred at ``window.centre_xy`` resized to it. Pixel centres sit
    at integers before and after.

    >>> w = Window(None, None, None, (100.0, 100.0), (512, 512))
    >>> source_to_window((100.0, 100.0), w, 64, crop_px=(64, 64))  # crop from (68, 68)
    (32.0, 32.0)
    """
    x, y = (float(c) for c in point_xy)
    if crop_px is None:
        rows, cols = window.source_shape
        x0, y0 = 0.0, 0.0
    else:
        rows, cols = crop_px
        x0, y0 = crop_origin(window.centre_xy, crop_px)
    return ((x - x0 + 0.5) * image_size / cols - 0.5, (y - y0 + 0.5) * image_size / rows - 0.5)


def crop_slice(img: np.ndarray, centre_xy: tuple[float, float], side_px: tuple[int, int]
               ) -> np.ndarray:
    """A (rows, cols) crop of ``side_px`` centred at pixel ``(x, y)``, zero-padded
    where it leaves the image.

    >>> crop_slice(np.arange(16.).reshape(4, 4), (0, 0), (2, 2)).tolist()
    [[0.0, 0.0], [0.0, 0.0]]
    """
    h, w = side_px
    x0, y0 = crop_origin(centre_xy, side_px)
    out = np.zeros((h, w), dtype=np.float32)
    ys, xs = slice(max(y0, 0), min(y0 + h, img.shape[0])), slice(max(x0, 0),
                                                               min(x0 + w, img.shape[1]))
    if ys.start < ys.stop and xs.start < xs.stop:
        out[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0] = img[ys, xs]
    return out


def scale_unit(volume: np.ndarray, percentiles: tuple[float, float] = (0.5, 99.5)) -> np.ndarray:
    """Map intensities to [0, 1] between two percentiles of the whole volume, clipped.

    MRI has no absolute intensity scale, so each window is scaled on its own. A
    constant volume maps to zeros.
    """
    lo, hi = np.percentile(volume, percentiles)
    if hi <= lo:
        return np.zeros_like(volume, dtype=np.float32)
    out = (volume - np.float32(lo)) / np.float32(hi - lo)
    return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)


def coordinate(centre_xy, where: str) -> tuple[float, float] | None:
    """A row's labelled point as ``(x, y)`` floats, or None for a row without one.

    None and (NaN, NaN) -- what :func:`lss.data.build_index` gives a study without a
    coordinate row -- mean no point. Anything else non-finite (one of the two missing,
    an infinity) is a :class:`DataError` naming ``where`` (the study or series).

    >>> coordinate((3, 4.5), "study 1"), coordinate((float("nan"),) * 2, "study 1")
    ((3.0, 4.5), None)
    """
    if centre_xy is None:
        return None
    x, y = (float(v) for v in centre_xy)
    if math.isnan(x) and math.isnan(y):
        return None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise DataError(f"{where}: coordinate ({x}, {y}) is not finite")
    return x, y


def check_inside(centre: tuple[float, float], shape: tuple[int, int], series_dir) -> None:
    """Refuse a point ``(x, y)`` outside a ``(rows, cols)`` image, naming the series."""
    rows, cols = shape
    x, y = centre
    if not (0 <= x < cols and 0 <= y < rows):
        raise DataError(
            f"Coordinate ({x:.1f}, {y:.1f}) lies outside the {cols}x{rows} image of "
            f"series {series_dir}"
        )


class Window:
    """The result of :func:`level_window`: a model input and where it came from.

    Attributes
    ----------
    volume : (n_slices, image_size, image_size) float32 ndarray in [0, 1]
    indices : (n_slices,) int ndarray -- spatial indices used (edge slices repeat)
    instance_numbers : (n_slices,) int ndarray
    centre_xy : tuple of float or None -- the crop centre in source pixels, if cropped
    source_shape : tuple of int -- (rows, cols) of the source slices
    """

    __slots__ = ("volume", "indices", "instance_numbers", "centre_xy", "source_shape")

    def __init__(self, volume, indices, instance_numbers, centre_xy, source_shape):
        self.volume = volume
        self.indices = indices
        self.instance_numbers = instance_numbers
        self.centre_xy = centre_xy
        self.source_shape = source_shape


def level_window(
    series: str | Path | SeriesHeader,
    instance_number: int | None,
    config: PreprocessConfig | None = None,
    *,
    centre_xy: tuple[float, float] | None = None,
) -> Window:
    """The model input for one study: the level window, resized and scaled.

    Only the window's slices are decoded; the other files' headers are read to order
    the series.

    Parameters
    ----------
    series : str, Path or SeriesHeader
        A series folder, or its :func:`~lss.data.scan_series` result.
    instance_number : int or None
        The labelled slice. ``None`` (a study without a coordinate row) centres the
        window on the middle slice of the series.
    config : PreprocessConfig, optional
        ``n_slices``, ``image_size``, ``scale_percentiles`` and ``crop_mm`` (defaults).
    centre_xy : (x, y) or None
        The labelled point in source pixels: checked to be finite (None or (NaN, NaN)
        for no point) and to lie inside the image, and the crop centre when
        ``config.crop_mm`` is set (then required).

    Returns
    -------
    Window
        ``volume`` of shape (n_slices, image_size, image_size), float32 in [0, 1].
    """
    config = config or PreprocessConfig()
    if isinstance(series, SeriesHeader):
        header, datasets = series, None
    else:  # one pass: the window's pixels come from the headers already read
        header, datasets = _scan(series)
    n = len(header.paths)
    centre = n // 2 if instance_number is None else header.index_of(instance_number)
    idx = window_indices(n, centre, config.n_slices)
    centre_px = coordinate(centre_xy, f"Series {header.series_dir}")
    if centre_px is not None:
        check_inside(centre_px, header.shape, header.series_dir)
    crop_px = None
    if config.crop_mm is not None:
        if centre_px is None:
            raise DataError(
                f"A crop of {config.crop_mm} mm needs a centre (x, y) for series "
                f"{header.series_dir}"
            )
        crop_px = crop_pixels(config.crop_mm, header.pixel_spacing)
    decoded: dict[int, np.ndarray] = {}
    for i in np.unique(idx):
        path = header.paths[i]
        ds = _read(path, pixels=True) if datasets is None else datasets[i]
        img = decode_slice(ds, path)
        if crop_px is not None:
            img = crop_slice(img, centre_px, crop_px)  # type: ignore[arg-type]
        decoded[int(i)] = resize_slice(img, config.image_size)
    volume = scale_unit(np.stack([decoded[int(i)] for i in idx]), config.scale_percentiles)
    return Window(volume, idx, header.instance_numbers[idx], centre_xy, header.shape)

