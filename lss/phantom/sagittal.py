"""Sagittal T1 and T2/STIR slices of the lumbar spine (simple, 2.5D).

A sagittal slice at lateral position ``x`` (mm, positive toward the patient's left)
is drawn around the spine's centre line, given as the canal centre at each of the
five disc levels in pixels. Near the midline it shows the vertebral bodies, the
discs, the canal (bright CSF on T2, dark on T1), the ligamenta flava and spinous
processes; from about 10 mm off the midline the canal gives way to pedicles and
neural foramina (fat around the exiting root), with the articular pillars behind.

Spinal canal stenosis narrows the canal at the disc on midline slices (disc bulge
in front, ligamentum flavum behind, CSF lost); foraminal narrowing shrinks the
foramen and its fat on that side's slices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lss.config import LEVELS
from lss.phantom.shapes import NoiseBank, Shape, bias_field, paint, texture_field

__all__ = [
    "SAGITTAL_CONTRASTS",
    "SagittalSpine",
    "SagittalSeriesRenderer",
    "FORAMEN_OFFSET_MM",
    "foramen_pixel",
]

#: Relative tissue intensities per sagittal contrast.
SAGITTAL_CONTRASTS: dict[str, dict[str, float]] = {
    "T1": {
        "csf": 0.12,
        "fat": 0.85,
        "marrow": 0.62,
        "cortex": 0.06,
        "annulus": 0.30,
        "nucleus": 0.38,
        "muscle": 0.30,
        "flavum": 0.22,
        "root": 0.30,
        "abdomen": 0.36,
        "skin": 0.40,
        "deep": 0.45,
    },
    "T2": {
        "csf": 1.0,
        "fat": 0.62,
        "marrow": 0.45,
        "cortex": 0.06,
        "annulus": 0.24,
        "nucleus": 0.82,
        "muscle": 0.20,
        "flavum": 0.17,
        "root": 0.28,
        "abdomen": 0.28,
        "skin": 0.35,
        "deep": 0.36,
    },
    "STIR": {
        "csf": 1.0,
        "fat": 0.07,
        "marrow": 0.15,
        "cortex": 0.04,
        "annulus": 0.22,
        "nucleus": 0.75,
        "muscle": 0.18,
        "flavum": 0.14,
        "root": 0.28,
        "abdomen": 0.24,
        "skin": 0.20,
        "deep": 0.12,
    },
}

#: Where a foramen's centre sits relative to the canal centre line at its disc:
#: (toward the head, toward the front), mm.
FORAMEN_OFFSET_MM: tuple[float, float] = (4.0, 1.0)


def _smoothstep(x: np.ndarray | float, e0: float, e1: float):
    t = np.clip((np.asarray(x, dtype=np.float32) - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass(frozen=True)
class SagittalSpine:
    """The spine as one sagittal slice sees it.

    Parameters
    ----------
    points : (5, 2) tuple
        (column, row) in pixels of the canal centre at each disc level, top to bottom.
    pixel_spacing : float
        Millimetres per pixel.
    canal_half : float
        Half the antero-posterior canal width, mm.
    body_depth : float
        Antero-posterior depth of the vertebral bodies, mm.
    disc_health : (5,) tuple of float
        Nucleus brightness per level, 1 healthy to 0 desiccated.
    canal, left, right : (5,) tuple of float
        Severity latents per level: spinal canal stenosis, left and right neural
        foraminal narrowing.
    foramen_x : (5,) tuple of float
        Lateral distance of each level's foramina from the midline, mm.
    skin : float
        Distance from the canal centre to the skin of the back, mm.
    """

    points: tuple[tuple[float, float], ...]
    pixel_spacing: float
    canal_half: float
    body_depth: float
    disc_health: tuple[float, ...]
    canal: tuple[float, ...]
    left: tuple[float, ...]
    right: tuple[float, ...]
    foramen_x: tuple[float, ...]
    skin: float

    def frames(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Extended centre line and its unit tangents and front-pointing normals.

        Returns
        -------
        pts : (8, 2) ndarray
            T12/L1, the five levels, then S1/S2 and S2/S3 (extrapolated), px.
        tangent, normal : (8, 2) ndarray
            Unit vectors in the image: tangent toward the feet, normal toward the front.
        """
        p = np.asarray(self.points, dtype=float)
        step = p[1] - p[0]
        top = p[0] - step
        d = p[4] - p[3]
        ang = math.radians(28.0)  # the sacrum bends backward below L5/S1
        rot = np.array([[math.cos(ang), math.sin(ang)], [-math.sin(ang), math.cos(ang)]])
        d1 = rot @ d * 0.85
        s1 = p[4] + d1
        s2 = s1 + rot @ d1 * 0.8
        pts = np.vstack([top, p, s1, s2])
        tan = np.gradient(pts, axis=0)
        tan /= np.linalg.norm(tan, axis=1, keepdims=True)
        normal = np.stack([-tan[:, 1], tan[:, 0]], axis=1)  # rotate: down -> left (front)
        return pts, tan, normal


class SagittalSeriesRenderer:
    """Renders the slices of one sagittal series.

    Parameters
    ----------
    shape : (H, W) tuple of int
        Image size.
    contrast : str
        ``'T1'``, ``'T2'`` or ``'STIR'``.
    rng : numpy.random.Generator
        Random source for the bias and texture fields (drawn once here).
    pixel_spacing : float
        Millimetres per pixel.
    noise_sigma : float
        Rician noise level relative to CSF on T2.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        contrast: str,
        rng: np.random.Generator,
        *,
        pixel_spacing: float,
        noise_sigma: float = 0.03,
    ) -> None:
        if contrast not in SAGITTAL_CONTRASTS:
            raise ValueError(
                f"Unknown contrast '{contrast}'; expected one of {sorted(SAGITTAL_CONTRASTS)}"
            )
        self.shape = (int(shape[0]), int(shape[1]))
        self.contrast = contrast
        self.values = SAGITTAL_CONTRASTS[contrast]
        self.noise_sigma = float(noise_sigma)
        self._gain = bias_field(self.shape, rng, posterior_gain=0.0) * texture_field(
            self.shape, rng, pixel_mm=pixel_spacing
        )
        # The spine coil lies behind the patient: brighter toward the right edge (back).
        ramp = np.linspace(0.9, 1.2, self.shape[1], dtype=np.float32)[None, :]
        self._gain = self._gain * ramp
        self._noise = NoiseBank(self.shape, self.noise_sigma, rng)
        self._cache: tuple[SagittalSpine, np.ndarray, np.ndarray] | None = None

    def _background(self, spine: SagittalSpine, pts: np.ndarray, w_mid: float) -> np.ndarray:
        t = self.values
        if self._cache is not None and self._cache[0] == spine:
            _, base, p = self._cache
        else:
            h, w = self.shape
            mm = spine.pixel_spacing
            rows = np.arange(h, dtype=np.float32)
            order = np.argsort(pts[:, 1])
            spine_col = np.interp(rows, pts[order, 1], pts[order, 0]).astype(np.float32)
            # Signed distance behind the canal centre line, mm (horizontal approximation).
            p = (np.arange(w, dtype=np.float32)[None, :] - spine_col[:, None]) * np.float32(mm)
            # Front to back: abdomen, prevertebral tissue, muscles, fat, skin, air.
            base = np.full((h, w), t["abdomen"], dtype=np.float32)
            base += (t["deep"] - base) * _smoothstep(p, -60.0, -50.0)
            base += (t["muscle"] - base) * _smoothstep(p, 8.0, 12.0)
            fat_start = spine.skin - 14.0
            base += (t["fat"] - base) * _smoothstep(p, fat_start - 2.0, fat_start + 2.0)
            base += (t["skin"] - base) * _smoothstep(p, spine.skin - 2.5, spine.skin - 1.5)
            base *= 1.0 - _smoothstep(p, spine.skin - 0.5, spine.skin + 0.5)
            self._cache = (spine, base, p)
        img = base.copy()
        if w_mid > 0:
            # Canal: epidural fat behind the sac, then the CSF column.
            half = spine.canal_half
            fat = (1.0 - _smoothstep(np.abs(p - 1.0), half + 0.6, half + 1.6)) * np.float32(w_mid)
            img += (t["fat"] - img) * fat
            csf = (1.0 - _smoothstep(np.abs(p), half - 0.5, half + 0.5)) * np.float32(w_mid)
            img += (t["csf"] - img) * csf
        return img

    def render(
        self, spine: SagittalSpine, x_mm: float, rng: np.random.Generator | None
    ) -> np.ndarray:
        """The slice at lateral position ``x_mm``; ``rng=None`` gives no noise.

        Returns
        -------
        (H, W) float32 ndarray
        """
        f = _frame(spine, x_mm)
        img = self._background(spine, f.pts, f.w_mid)
        if f.body_frac > 0:
            _paint_bodies_and_discs(img, self.values, spine, f)
        if f.w_mid > 0:
            _paint_canal(img, self.values, spine, f)
        if f.w_spin > 0:
            _paint_spinous_processes(img, self.values, f)
        if f.w_lat > 0:
            _paint_pedicles(img, self.values, f)
            lateral_sev = spine.left if x_mm > 0 else spine.right
            for j in range(1, 6):
                _paint_foramen(img, self.values, spine, f, j, lateral_sev[j - 1])
        img *= self._gain
        if rng is not None:
            img = self._noise.apply(img, rng)
        return img


@dataclass(frozen=True)
class _SliceFrame:
    """What the painting steps of one sagittal slice share.

    ``pts``, ``tan``, ``nor``: the spine's points and frames (px); ``k``: px per mm;
    ``half``: the canal's half width (mm); ``depth``: the vertebral bodies' depth as
    this slice cuts them (mm); the weights of the midline, lateral and spinous
    structures at this lateral position ``ax`` (mm from the midline).
    """

    pts: np.ndarray
    tan: np.ndarray
    nor: np.ndarray
    k: float
    ax: float
    half: float
    depth: float
    body_frac: float
    w_mid: float
    w_lat: float
    w_spin: float


def _frame(spine: SagittalSpine, x_mm: float) -> _SliceFrame:
    """The spine's frames and the weights of the slice at lateral position ``x_mm``."""
    pts, tan, nor = spine.frames()
    ax = abs(x_mm)
    body_frac = math.sqrt(max(0.0, 1.0 - (ax / 27.0) ** 2))
    return _SliceFrame(
        pts=pts,
        tan=tan,
        nor=nor,
        k=1.0 / spine.pixel_spacing,  # px per mm
        ax=ax,
        half=spine.canal_half,
        depth=spine.body_depth * max(body_frac, 0.25),
        body_frac=body_frac,
        w_mid=float(1.0 - _smoothstep(ax, 7.0, 12.0)),
        w_lat=float(_smoothstep(ax, 8.0, 13.0) * (1.0 - _smoothstep(ax, 27.0, 33.0))),
        w_spin=float(1.0 - _smoothstep(ax, 4.0, 8.0)),
    )


def _ang(v: np.ndarray) -> float:
    return math.atan2(v[1], v[0])


def _bone(
    img: np.ndarray, t: dict, k: float, shape: Shape, opacity: float, rim_mm: float = 1.0
) -> None:
    """Dark cortex around marrow."""
    paint(
        img,
        shape,
        t["cortex"],
        soft=0.6 * k,
        opacity=opacity,
        core=t["marrow"],
        core_inset=rim_mm * k,
        core_soft=0.8 * k,
    )


def _paint_bodies_and_discs(img: np.ndarray, t: dict, spine: SagittalSpine, f: _SliceFrame) -> None:
    """Vertebral bodies between consecutive discs (L1 .. L5, then S1, S2), then the discs.

    Disc centres lie in front of the canal by its half width plus half a body depth.
    """
    pts, tan, nor, k, depth = f.pts, f.tan, f.nor, f.k, f.depth
    disc_c = pts + nor * (f.half + 1.0 + depth / 2.0) * k
    for j in range(len(pts) - 1):
        c = (disc_c[j] + disc_c[j + 1]) / 2
        gap = float(np.linalg.norm(disc_c[j + 1] - disc_c[j]))
        tj = (tan[j] + tan[j + 1]) / 2
        nj = np.array([-tj[1], tj[0]])
        shape = Shape(c[0], c[1], depth / 2 * k, max(gap / 2 - 4.8 * k, 2.0), _ang(nj), 4.0)
        _bone(img, t, k, shape, 1.0, 1.2)
    # Discs (the five labelled levels; the sacral ones are fused).
    for j in range(1, 6):
        health = spine.disc_health[j - 1]
        hgt = (4.2 + 1.4 * health) * k
        disc = Shape(disc_c[j][0], disc_c[j][1], (depth / 2 + 0.8) * k, hgt, _ang(nor[j]))
        nuc = t["annulus"] + (t["nucleus"] - t["annulus"]) * health
        paint(
            img, disc, t["annulus"], soft=0.7 * k, core=nuc, core_inset=0.4 * hgt, core_soft=2.0 * k
        )


def _paint_canal(img: np.ndarray, t: dict, spine: SagittalSpine, f: _SliceFrame) -> None:
    """At each disc: roots crowding out the CSF, the disc bulge in front, the flavum behind."""
    pts, nor, k, half, w_mid = f.pts, f.nor, f.k, f.half, f.w_mid
    for j in range(1, 6):
        s = spine.canal[j - 1]
        if s > 0.2:  # crowded roots replace the CSF at the stenosis
            csf_loss = Shape(
                pts[j][0], pts[j][1], (half - 0.5) * k, (3.0 + 4.0 * s) * k, _ang(nor[j])
            )
            paint(img, csf_loss, t["root"], soft=1.5 * k, opacity=w_mid * 0.8 * s**1.5)
        front = pts[j] + nor[j] * (half + 1.0) * k
        bulge = Shape(front[0], front[1], (1.0 + 4.0 * s) * k, (5.0 + 2.0 * s) * k, _ang(nor[j]))
        paint(img, bulge, t["annulus"], soft=0.7 * k, opacity=w_mid)
        back = pts[j] - nor[j] * (half + 1.2) * k
        lf = Shape(back[0], back[1], (1.5 + 0.6 + 3.0 * s) * k, 5.0 * k, _ang(nor[j]))
        paint(img, lf, t["flavum"], soft=0.7 * k, opacity=w_mid)


def _paint_spinous_processes(img: np.ndarray, t: dict, f: _SliceFrame) -> None:
    """The spinous processes behind the canal, between consecutive levels (near the midline)."""
    pts, tan, nor, k = f.pts, f.tan, f.nor, f.k
    for j in range(len(pts) - 2):
        c = (pts[j] + pts[j + 1]) / 2 - (nor[j] + nor[j + 1]) / 2 * (f.half + 17.0) * k
        tj = (tan[j] + tan[j + 1]) / 2
        sp = Shape(c[0], c[1], 14.0 * k, 6.5 * k, _ang(-np.array([-tj[1], tj[0]])) + 0.25)
        _bone(img, t, k, sp, f.w_spin)


def _paint_pedicles(img: np.ndarray, t: dict, f: _SliceFrame) -> None:
    """Pedicles (upper half of each vertebra, where the canal would be) and the pillars behind."""
    pts, tan, nor, k = f.pts, f.tan, f.nor, f.k
    for j in range(len(pts) - 2):
        c = pts[j] + (pts[j + 1] - pts[j]) * 0.38
        _bone(img, t, k, Shape(c[0], c[1], 7.0 * k, 6.5 * k, _ang(nor[j])), f.w_lat)
        pc = c - nor[j] * 15.0 * k + tan[j] * 6.0 * k
        _bone(img, t, k, Shape(pc[0], pc[1], 8.0 * k, 11.0 * k, _ang(nor[j])), f.w_lat)


def _foramen_centre(pts: np.ndarray, tan: np.ndarray, nor: np.ndarray, j: int, k: float):
    """Pixel centre of the foramen below point ``j``: FORAMEN_OFFSET_MM off the canal line."""
    up, fwd = FORAMEN_OFFSET_MM
    return pts[j] - tan[j] * up * k + nor[j] * fwd * k


def _paint_foramen(
    img: np.ndarray, t: dict, spine: SagittalSpine, f: _SliceFrame, j: int, s: float
) -> None:
    """One foramen (fat around the exiting root) on the slice through it.

    Severity ``s`` shrinks the fat and flattens the root between the disc below and
    the ligamentum flavum behind.
    """
    tan, nor, k = f.tan, f.nor, f.k
    vis = f.w_lat * math.exp(-(((f.ax - spine.foramen_x[j - 1]) / 6.0) ** 2))
    if vis < 0.01:
        return
    c = _foramen_centre(f.pts, tan, nor, j, k)
    hole = Shape(c[0], c[1], 4.5 * k, 7.0 * k, _ang(nor[j]))
    paint(img, hole.scaled(1.0 - 0.55 * s), t["fat"], soft=0.8 * k, opacity=vis * (1 - 0.6 * s))
    root = c - tan[j] * 2.0 * k
    root_shape = Shape(root[0], root[1], 2.3 * k, 2.3 * k * (1 - 0.4 * s))
    paint(img, root_shape, t["root"], soft=0.6 * k, opacity=vis)
    wall = vis * min(1.0, 0.2 + 1.2 * s)
    lo = c + tan[j] * (4.5 - 2.5 * s) * k + nor[j] * 1.5 * k
    lo_shape = Shape(lo[0], lo[1], (3.0 + 1.5 * s) * k, (1.5 + 2.0 * s) * k, _ang(nor[j]))
    paint(img, lo_shape, t["annulus"], soft=0.6 * k, opacity=wall)
    bk = c - nor[j] * (4.0 - 2.0 * s) * k
    bk_shape = Shape(bk[0], bk[1], (1.5 + 2.0 * s) * k, (3.0 + 1.5 * s) * k, _ang(nor[j]))
    paint(img, bk_shape, t["flavum"], soft=0.6 * k, opacity=wall)


def foramen_pixel(spine: SagittalSpine, level: str) -> tuple[float, float]:
    """(x, y) pixel position of the foramen at ``level`` on a lateral slice."""
    pts, tan, nor = spine.frames()
    c = _foramen_centre(pts, tan, nor, LEVELS.index(level) + 1, 1.0 / spine.pixel_spacing)
    return float(c[0]), float(c[1])
