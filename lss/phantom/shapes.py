"""Soft-edged analytic shapes painted into a float image, and the MR image model.

Every structure of the phantom is a superellipse given in pixel units (centre,
semi-axes, rotation, exponent). :func:`paint` evaluates an approximate signed
distance to its outline only inside the shape's bounding box and blends a value
into the canvas through a smooth step a few tenths of a millimetre wide, so edges
look like partial-volume edges rather than jagged masks.

The acquisition model (:func:`bias_field`, :func:`texture_field`, :class:`NoiseBank`)
turns the noiseless composite into something with the look of a magnitude MR image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "Shape",
    "paint",
    "paint_dots",
    "bias_field",
    "texture_field",
    "NoiseBank",
]


@dataclass(frozen=True)
class Shape:
    """A superellipse in pixel coordinates.

    Parameters
    ----------
    cx, cy : float
        Centre, as (column, row) in pixels.
    a, b : float
        Semi-axes in pixels along the shape's own x and y axes (before rotation).
    angle : float
        Rotation in radians; positive turns the shape's x axis toward +row
        (clockwise on screen, because rows run down).
    p : float
        Superellipse exponent: 2 is an ellipse, larger values approach a rectangle.
    """

    cx: float
    cy: float
    a: float
    b: float
    angle: float = 0.0
    p: float = 2.0

    def scaled(self, factor: float) -> Shape:
        """The same shape with both semi-axes multiplied by ``factor``."""
        return Shape(self.cx, self.cy, self.a * factor, self.b * factor, self.angle, self.p)


def _distance(shape: Shape, reach_extra: float, h: int, w: int):
    """Approximate signed distance (px) to the outline inside the shape's bounding box.

    Returns ``None`` when the box misses the image, else ``(rows, cols, dist)`` with
    ``rows``/``cols`` slices into the image and ``dist`` negative inside.
    """
    a, b = shape.a, shape.b
    reach = max(a, b) + reach_extra
    c0 = max(int(math.floor(shape.cx - reach)), 0)
    c1 = min(int(math.ceil(shape.cx + reach)) + 1, w)
    r0 = max(int(math.floor(shape.cy - reach)), 0)
    r1 = min(int(math.ceil(shape.cy + reach)) + 1, h)
    if c0 >= c1 or r0 >= r1:
        return None
    xs = np.arange(c0, c1, dtype=np.float32) - np.float32(shape.cx)
    ys = np.arange(r0, r1, dtype=np.float32) - np.float32(shape.cy)
    cos_t, sin_t = math.cos(shape.angle), math.sin(shape.angle)
    if shape.p == 2.0:
        # q = A x^2 + B x y + C y^2 for the rotated ellipse; grad q is linear in x, y.
        ia, ib = 1.0 / (a * a), 1.0 / (b * b)
        qa = cos_t * cos_t * ia + sin_t * sin_t * ib
        qb = 2.0 * cos_t * sin_t * (ia - ib)
        qc = sin_t * sin_t * ia + cos_t * cos_t * ib
        q = (np.float32(qa) * xs * xs - np.float32(1.0))[None, :] + (np.float32(qc) * ys * ys)[
            :, None
        ]
        q += np.float32(qb) * ys[:, None] * xs[None, :]
        gx = (np.float32(2 * qa) * xs)[None, :] + (np.float32(qb) * ys)[:, None]
        gy = (np.float32(qb) * xs)[None, :] + (np.float32(2 * qc) * ys)[:, None]
    else:
        p = np.float32(shape.p)
        xn = (xs[None, :] * np.float32(cos_t) + ys[:, None] * np.float32(sin_t)) * np.float32(
            1.0 / a
        )
        yn = (ys[:, None] * np.float32(cos_t) - xs[None, :] * np.float32(sin_t)) * np.float32(
            1.0 / b
        )
        ax, ay = np.abs(xn), np.abs(yn)
        px, py = ax ** (p - 1), ay ** (p - 1)
        q = px * ax + py * ay - np.float32(1.0)
        # Gradient in the shape frame (the norm does not depend on the rotation).
        gx = px * np.float32(shape.p / a)
        gy = py * np.float32(shape.p / b)
    g2 = gx * gx
    g2 += gy * gy
    np.maximum(g2, np.float32(1e-12), out=g2)
    q /= np.sqrt(g2, out=g2)
    return slice(r0, r1), slice(c0, c1), q


def _ramp(dist: np.ndarray, soft: float, shift: float = 0.0) -> np.ndarray:
    """Smooth step 1 inside -> 0 outside across ``soft`` px, outline moved in by ``shift``."""
    t = (dist + np.float32(shift)) * np.float32(-1.0 / soft) + np.float32(0.5)
    np.maximum(t, np.float32(0.0), out=t)
    np.minimum(t, np.float32(1.0), out=t)
    return t * t * (np.float32(3.0) - np.float32(2.0) * t)


def paint(
    canvas: np.ndarray,
    shape: Shape,
    value: float,
    *,
    soft: float = 1.0,
    opacity: float = 1.0,
    inset: float = 0.0,
    core: float | None = None,
    core_inset: float = 1.0,
    core_soft: float | None = None,
) -> None:
    """Blend ``value`` into ``canvas`` inside ``shape``, in place.

    Parameters
    ----------
    canvas : (H, W) float32 ndarray
        Image to paint into; modified in place.
    shape : Shape
        Outline in pixel coordinates.
    value : float
        Intensity inside the shape.
    soft : float
        Width of the edge ramp in pixels (1 -> 0 over about ``soft`` pixels).
    opacity : float
        Blend weight in [0, 1]; 0 leaves the canvas unchanged.
    inset : float
        Moves the outline inward by this many pixels (negative: outward).
    core : float, optional
        Then paint this value inside an outline ``core_inset`` pixels further in
        (a bone: dark cortex ``value`` around a marrow ``core``) from one distance map.
    core_inset : float
        Rim width for ``core``, pixels.
    core_soft : float, optional
        Edge width of the core (default ``soft``).

    Notes
    -----
    The distance is the first-order estimate ``(q - 1) / |grad q|`` with
    ``q = |x/a|^p + |y/b|^p``: exact on the outline and monotonic inside the
    bounding box, which is all a soft edge needs.
    """
    if opacity <= 0.004 or shape.a - inset <= 0.05 or shape.b - inset <= 0.05:
        return
    soft = max(float(soft), 1e-3)
    h, w = canvas.shape
    hit = _distance(shape, 2.0 * soft + 1.0 + max(-inset, 0.0), h, w)
    if hit is None:
        return
    rows, cols, dist = hit
    region = canvas[rows, cols]
    alpha = _ramp(dist, soft, inset)
    if opacity != 1.0:
        alpha *= np.float32(opacity)
    region += alpha * (np.float32(value) - region)
    if (
        core is not None
        and shape.a - inset - core_inset > 0.05
        and shape.b - inset - core_inset > 0.05
    ):
        alpha = _ramp(dist, soft if core_soft is None else max(core_soft, 1e-3), inset + core_inset)
        if opacity != 1.0:
            alpha *= np.float32(opacity)
        region += alpha * (np.float32(core) - region)


def paint_dots(
    canvas: np.ndarray,
    centres: np.ndarray,
    radius: float,
    value: float,
    *,
    soft: float = 1.0,
    opacity: float = 1.0,
) -> None:
    """Paint equal round dots (e.g. nerve rootlets) in one pass, in place.

    Parameters
    ----------
    canvas : (H, W) float32 ndarray
        Image to paint into.
    centres : (N, 2) ndarray
        Dot centres as (column, row), pixels.
    radius : float
        Dot radius, pixels.
    value : float
        Intensity of the dots.
    soft, opacity : float
        As in :func:`paint`.
    """
    if opacity <= 0.004 or len(centres) == 0 or radius <= 0.05:
        return
    centres = np.asarray(centres, dtype=np.float32)
    h, w = canvas.shape
    reach = radius + 2.0 * soft + 1.0
    c0 = max(int(math.floor(centres[:, 0].min() - reach)), 0)
    c1 = min(int(math.ceil(centres[:, 0].max() + reach)) + 1, w)
    r0 = max(int(math.floor(centres[:, 1].min() - reach)), 0)
    r1 = min(int(math.ceil(centres[:, 1].max() + reach)) + 1, h)
    if c0 >= c1 or r0 >= r1:
        return
    xs = np.arange(c0, c1, dtype=np.float32)
    ys = np.arange(r0, r1, dtype=np.float32)
    dx2 = (xs[None, :] - centres[:, :1]) ** 2  # (N, W')
    dy2 = (ys[None, :] - centres[:, 1:]) ** 2  # (N, H')
    d2 = (dy2[:, :, None] + dx2[:, None, :]).min(axis=0)
    dist = np.sqrt(d2) - np.float32(radius)
    alpha = _ramp(dist, max(float(soft), 1e-3))
    if opacity != 1.0:
        alpha *= np.float32(opacity)
    region = canvas[r0:r1, c0:c1]
    region += alpha * (np.float32(value) - region)


def bias_field(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    strength: float = 0.15,
    posterior_gain: float = 0.25,
) -> np.ndarray:
    """A smooth multiplicative coil-sensitivity field.

    Parameters
    ----------
    shape : (H, W) tuple of int
        Image size.
    rng : numpy.random.Generator
        Source of the random low-order terms.
    strength : float
        Amplitude of the random smooth variation.
    posterior_gain : float
        Extra gain toward the bottom rows (the patient's back lies on the spine coil).

    Returns
    -------
    (H, W) float32 ndarray
        Values around 1.
    """
    h, w = shape
    y = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
    x = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :]
    c = rng.normal(0.0, strength / 2.0, size=5).astype(np.float32)
    field = 1.0 + c[0] * x + c[1] * y + c[2] * x * y + c[3] * (x * x - 0.33) + c[4] * (y * y - 0.33)
    field = field + np.float32(posterior_gain) * (y + 1.0) * 0.5
    return np.clip(field, 0.5, 1.8).astype(np.float32)


def texture_field(
    shape: tuple[int, int], rng: np.random.Generator, *, pixel_mm: float, amplitude: float = 0.05
) -> np.ndarray:
    """Fine, smooth multiplicative texture (fat streaks in muscle, bowel contents).

    Parameters
    ----------
    shape : (H, W) tuple of int
        Image size.
    rng : numpy.random.Generator
        Random source.
    pixel_mm : float
        Pixel spacing, so the texture has the same grain in millimetres at any size.
    amplitude : float
        Standard deviation of the relative intensity change.

    Returns
    -------
    (H, W) float32 ndarray
        Values around 1.
    """
    h, w = shape
    # Generate on a coarser grid (about 1.5 mm cells) and upsample: cheap and smooth.
    cell = 1.5 / pixel_mm
    gh, gw = max(int(h / cell), 8), max(int(w / cell), 8)
    g = rng.standard_normal((gh, gw)).astype(np.float32)
    g = ndimage.gaussian_filter(g, 1.0)
    g /= max(float(g.std()), 1e-6)
    up = ndimage.zoom(g, (h / gh, w / gw), order=1)[:h, :w]
    if up.shape != (h, w):  # zoom may round one pixel short
        up = np.pad(up, ((0, h - up.shape[0]), (0, w - up.shape[1])), mode="edge")
    return (1.0 + np.float32(amplitude) * up).astype(np.float32)


class NoiseBank:
    """Rician noise for many slices of one series at the cost of a few.

    Two Gaussian fields a little larger than the image are drawn once; each slice
    takes its real and imaginary noise from independently offset windows of them.
    Slices then differ in noise as independent draws would to the eye and to simple
    statistics, at a fraction of the cost of drawing fresh normals per slice.

    Parameters
    ----------
    shape : (H, W) tuple of int
        Image size.
    sigma : float
        Noise standard deviation per channel, in image units.
    rng : numpy.random.Generator
        Draws the fields (here) and the offsets (in :meth:`apply`).
    pad : int
        Extra rows and columns; offsets range over ``pad`` values per axis.
    """

    def __init__(
        self, shape: tuple[int, int], sigma: float, rng: np.random.Generator, *, pad: int = 48
    ) -> None:
        h, w = shape
        self.shape = (h, w)
        self.pad = int(pad)
        self._real = rng.standard_normal((h + pad, w + pad), dtype=np.float32)
        self._real *= np.float32(sigma)
        imag = rng.standard_normal((h + pad, w + pad), dtype=np.float32)
        imag *= np.float32(sigma)
        self._imag_sq = imag * imag

    def apply(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``sqrt((image + n1)^2 + n2^2)`` with this slice's windows of the fields.

        Parameters
        ----------
        image : (H, W) float32 ndarray
            Noiseless magnitude; not modified.
        rng : numpy.random.Generator
            Chooses the window offsets.

        Returns
        -------
        (H, W) float32 ndarray
        """
        if image.shape != self.shape:
            raise ValueError(f"image shape {image.shape} != noise bank shape {self.shape}")
        h, w = self.shape
        oy, ox, iy, ix = (int(v) for v in rng.integers(0, self.pad, 4))
        out = image + self._real[oy : oy + h, ox : ox + w]
        out *= out
        out += self._imag_sq[iy : iy + h, ix : ix + w]
        return np.sqrt(out, out=out)
