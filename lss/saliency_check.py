"""Saliency sanity checks: how much of a map lies near the labelled point, against chance.

A Grad-CAM or occlusion map "looks at the recess" only if a larger share of its mass
lies near the radiologist's point than a uniform map would put there. Chapter 5 prints
this share for a model that learned nothing and for one that reads the image.
:func:`window_spacing_mm` gives the millimetres of one window pixel, so the radius is
physical (10 mm) whatever the resize.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lss.config import check_positive_int

__all__ = ["window_spacing_mm", "saliency_share_near"]


def window_spacing_mm(window: Any, image_size: int, pixel_spacing: Sequence[float], *,
                      crop_px: tuple[int, int] | None = None) -> tuple[float, float]:
    """The size of one window pixel in mm, ``(row, col)``: the ``spacing_mm`` of a map.

    :func:`lss.data.level_window` resizes the whole slice (``window.source_shape``) or
    the crop (``crop_px``) to ``image_size`` squared, so a window pixel covers
    ``rows * row_spacing / image_size`` by ``cols * col_spacing / image_size`` mm; the
    two differ when the source is not square.

    Parameters
    ----------
    window : lss.data.Window
        Its ``source_shape`` (rows, cols) is used when there is no crop.
    image_size : int
        The window's side, ``PreprocessConfig.image_size``.
    pixel_spacing : (row, col) mm
        Of the source slices, ``SeriesHeader.pixel_spacing`` (DICOM ``PixelSpacing``).
    crop_px : (rows, cols), optional
        As for :func:`lss.interpret.window_point`: the crop in source pixels when
        ``crop_mm`` was set.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> window_spacing_mm(SimpleNamespace(source_shape=(512, 384)), 128, (0.5, 0.5))
    (2.0, 1.5)
    """
    rows, cols = window.source_shape if crop_px is None else crop_px
    row_mm, col_mm = _check_pair(pixel_spacing, "pixel_spacing", positive=True)
    check_positive_int(image_size, "image_size")
    return rows * row_mm / image_size, cols * col_mm / image_size


def saliency_share_near(saliency: Any, point_px: Sequence[float], spacing_mm: Sequence[float],
                        *, radius_mm: float = 10.0, slice_index: int | None = None
                        ) -> dict[str, float]:
    """How much of a saliency map lies within ``radius_mm`` of a point, against chance.

    A sanity check of a map: the share of its total mass on the pixels whose centres
    lie within ``radius_mm`` of the labelled point, beside the share a uniform map gives
    (the fraction of the image's pixels in that disc, clipped to the image). A ratio
    near 1 means the map is no closer to the point than chance. With a volume the disc
    is taken on every slice (a cylinder through the window) and the mass is that of
    the whole volume, so a map on the wrong slices scores low; ``slice_index`` restricts
    both to one slice.

    Parameters
    ----------
    saliency : (Z, H, W) or (H, W) array
        Finite and non-negative: :func:`lss.interpret.grad_cam` or
        :func:`lss.interpret.occlusion_sensitivity`.
    point_px : (x, y)
        The point in the map's pixels (pixel centres at integers), e.g. from
        :func:`lss.interpret.window_point` for a model window; it must lie on the map.
    spacing_mm : (row, col)
        Size of one map pixel in mm; for a model window, :func:`window_spacing_mm`.
    radius_mm : float
        Radius of the disc.
    slice_index : int or None
        Only this slice of a volume (its mass and its disc); default: all slices.

    Returns
    -------
    dict
        ``share`` (of the map's mass in the disc), ``uniform_share`` (the disc's share
        of the pixels) and ``ratio`` (``share / uniform_share``). A map with no mass
        (all zeros: no feature supports the class) has no share: ``share`` and
        ``ratio`` are NaN, ``uniform_share`` is still given.

    Examples
    --------
    >>> m = np.zeros((10, 10)); m[5, 2] = 1.0
    >>> r = saliency_share_near(m, (2, 5), (1.0, 1.0), radius_mm=1.0)
    >>> r["share"], r["uniform_share"], r["ratio"]
    (1.0, 0.05, 20.0)
    """
    m = _check_saliency(saliency, slice_index)
    x, y = _check_pair(point_px, "point_px")
    row_mm, col_mm = _check_pair(spacing_mm, "spacing_mm", positive=True)
    h, w = m.shape[1:]
    if not (-0.5 <= x <= w - 0.5 and -0.5 <= y <= h - 0.5):
        raise ValueError(f"point_px ({x}, {y}) lies outside the {w} x {h} map")
    if isinstance(radius_mm, bool) or not isinstance(radius_mm, int | float | np.number) or not (
            np.isfinite(radius_mm) and radius_mm > 0):
        raise ValueError(f"radius_mm must be positive and finite, got {radius_mm!r}")
    rows, cols = np.ogrid[:h, :w]
    disc = ((rows - y) * row_mm) ** 2 + ((cols - x) * col_mm) ** 2 <= radius_mm**2
    if not disc.any():
        raise ValueError(f"radius_mm {radius_mm} covers no pixel centre at spacing "
                         f"({row_mm}, {col_mm}) mm")
    uniform = float(disc.mean())
    total = float(m.sum())
    share = float(m[:, disc].sum()) / total if total > 0 else float("nan")
    return {"share": share, "uniform_share": uniform, "ratio": share / uniform}


def _check_saliency(saliency: Any, slice_index: int | None) -> np.ndarray:
    """The map as float64 ``(Z, H, W)`` (one slice when ``slice_index`` is given)."""
    m = np.asarray(saliency, dtype=np.float64)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3 or 0 in m.shape:
        raise ValueError(f"saliency must be a non-empty (Z, H, W) or (H, W) map, got shape "
                         f"{np.shape(saliency)}")
    if not np.isfinite(m).all() or (m < 0).any():
        raise ValueError("saliency must hold finite, non-negative values")
    if slice_index is None:
        return m
    if isinstance(slice_index, bool) or int(slice_index) != slice_index or not (
            0 <= slice_index < m.shape[0]):
        raise ValueError(f"slice_index must be in [0, {m.shape[0] - 1}], got {slice_index!r}")
    return m[int(slice_index)][None]


def _check_pair(value: Any, what: str, *, positive: bool = False) -> tuple[float, float]:
    """``value`` as two finite floats (positive ones when ``positive``)."""
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be two numbers, got {value!r}") from None
    if not (np.isfinite(a) and np.isfinite(b)) or (positive and min(a, b) <= 0):
        kind = "positive and finite" if positive else "finite"
        raise ValueError(f"{what} must be {kind}, got ({a}, {b})")
    return a, b

