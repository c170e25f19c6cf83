"""Axial T2 slices of the lumbar spine, rendered analytically.

The slice at distance ``d`` (mm, positive toward the head) from a disc shows, front
(top) to back (bottom): the abdomen and great vessels, the disc (or the vertebral
body once ``|d|`` exceeds a few millimetres) flanked by the psoas muscles, the
thecal sac with bright CSF and dark rootlets, the lateral recesses at its front
corners, the ligamentum flavum, the facet joints, lamina and spinous process, the
paraspinal muscles and the subcutaneous fat. It is "2.5D": a slice's content
depends only on the level and on ``d``.

Severity acts where it acts in reality and fades within about a slice of the disc:

- left (right) subarticular stenosis narrows the recess on the patient's left
  (right), i.e. on the image's right (left): the superior articular facet and the
  ligamentum flavum move in, the disc bulges from the front, the fat goes and the
  root flattens;
- spinal canal stenosis shrinks the sac (about 160 mm^2 normal to about 55 mm^2
  severe) and dims the CSF between crowded rootlets.

Where each structure is (its shape in the anatomy frame) is
:mod:`lss.phantom.axial_geometry`, shared with :mod:`lss.phantom.landmarks`; this
module holds what the tissues look like and paints them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lss.config import LEVELS
from lss.phantom.anatomy import AxialAnatomy, Placement, axial_anatomy, sample_traits
from lss.phantom.axial_geometry import (
    SKIN_MM,
    SliceWeights,
    disc_shape,
    erector_spinae_shape,
    facet_joint,
    flavum_shape,
    multifidus_shape,
    posterior_disc_margin,
    psoas_shape,
    rootlet_centres,
    sac_shape,
    slice_weights,
    trunk_shape,
)
from lss.phantom.shapes import NoiseBank, Shape, bias_field, paint, paint_dots, texture_field

__all__ = ["T2_AXIAL", "AxialSlice", "AxialSeriesRenderer", "render_axial", "axial_layers"]

#: Relative intensities of tissues on an axial T2 fast spin echo image.
T2_AXIAL: dict[str, float] = {
    "csf": 1.0,
    "fat": 0.62,
    "recess": 0.78,
    "deep": 0.36,
    "marrow": 0.42,
    "ilium": 0.55,
    "cortex": 0.07,
    "annulus": 0.24,
    "nucleus": 0.80,
    "muscle": 0.20,
    "multifidus": 0.24,
    "ligament": 0.13,
    "flavum": 0.17,
    "facet_marrow": 0.27,
    "joint": 0.5,
    "root": 0.22,
    "vessel": 0.05,
    "vein": 0.35,
    "abdomen": 0.27,
    "skin": 0.35,
}

# A layer: (shape in anatomy mm, value, edge softness mm, opacity, inset mm, core).
# ``core`` is None, a value painted 1 mm inside the outline (bone: dark cortex around
# marrow), a (value, rim mm) pair, or _DOT (a rootlet, painted in one batch).
Layer = tuple[Shape, float, float, float, float, "float | tuple[float, float] | None"]


_DOT = -1.0  # core marker: a small round dot, batched with its neighbours in the list


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


def _bone(shape: Shape, opacity: float, marrow: float) -> list[Layer]:
    """Dark cortex (about 1 mm) around a marrow core."""
    return [(shape, T2_AXIAL["cortex"], 0.5, opacity, 0.0, marrow)]


# ----------------------------------------------------------------------------- layers


def _body_layers(anat: AxialAnatomy) -> list[Layer]:
    """The trunk: skin, subcutaneous fat and the deeper soft tissue (same at every level)."""
    t = T2_AXIAL
    trunk = trunk_shape(anat)
    return [
        (trunk, t["skin"], 1.0, 1.0, 0.0, (t["fat"], SKIN_MM)),
        (trunk, t["deep"], 3.0, 1.0, anat.fat, None),
    ]


def _vessel_layers(anat: AxialAnatomy, v_ant: float) -> list[Layer]:
    """Aorta and vena cava in front of the upper discs; the iliac vessels below."""
    t = T2_AXIAL
    if LEVELS.index(anat.level) <= 2:
        return [
            (Shape(8.0, v_ant - 10.0, 8.5, 8.5), t["vessel"], 0.6, 1.0, 0.0, None),
            (Shape(-15.0, v_ant - 8.0, 11.0, 7.0), t["vein"], 0.8, 1.0, 0.0, None),
        ]
    layers: list[Layer] = []
    for sg in (1.0, -1.0):
        layers.append((Shape(sg * 11.0, v_ant - 8.0, 5.0, 5.0), t["vessel"], 0.6, 1.0, 0.0, None))
        layers.append((Shape(sg * 18.0, v_ant - 4.0, 6.0, 4.5), t["vein"], 0.8, 1.0, 0.0, None))
    return layers


def _background_layers(anat: AxialAnatomy, *, body: bool = True) -> list[Layer]:
    """Structures that do not depend on the distance from the disc."""
    t = T2_AXIAL
    i = LEVELS.index(anat.level)
    v_pm = posterior_disc_margin(anat)
    v_ant = v_pm - 2 * anat.disc_b  # anterior disc margin
    layers: list[Layer] = _body_layers(anat) if body else []
    layers.append((Shape(0.0, v_ant - 60.0, 125.0, 58.0), t["abdomen"], 4.0, 1.0, 0.0, None))
    for sg in (1.0, -1.0):
        layers.append((psoas_shape(anat, sg), t["muscle"], 1.0, 1.0, 0.0, None))
        if i <= 3:  # quadratus lumborum
            qu = sg * (anat.disc_a + 2 * anat.psoas_a + 12.0)
            layers.append((Shape(qu, 4.0, 12.0, 5.5, sg * -0.4), t["muscle"], 1.0, 1.0, 0.0, None))
        erector = erector_spinae_shape(sg)
        layers.append((erector, t["ligament"], 0.5, 1.0, 0.0, (t["muscle"], 0.5)))
        multifidus = multifidus_shape(sg)
        layers.append((multifidus, t["ligament"], 0.5, 1.0, 0.0, (t["multifidus"], 0.5)))
        if i == 4:  # iliac wings beside L5/S1
            ilium = Shape(sg * 74.0, 10.0, 12.0, 38.0, sg * 0.45)
            layers.append((ilium, t["cortex"], 0.6, 1.0, 0.0, (t["ilium"], 1.8)))
    return layers + _vessel_layers(anat, v_ant)


def _disc_layers(anat: AxialAnatomy, w: SliceWeights) -> list[Layer]:
    """Disc, or vertebral body with its cortex, and the nucleus on disc slices."""
    t = T2_AXIAL
    body = disc_shape(anat, w)
    rim = _lerp(t["annulus"], t["cortex"], 1.0 - w.disc)
    core = _lerp(t["annulus"], t["marrow"], 1.0 - w.disc)
    nucleus = _lerp(t["annulus"], t["nucleus"], anat.nucleus)
    v_pm = posterior_disc_margin(anat, anat.canal * w.stenosis, w.disc)
    a, b = body.a, body.b
    return [
        (body, rim, 0.6, 1.0, 0.0, core),
        (Shape(0.0, v_pm - 1.05 * b, 0.55 * a, 0.5 * b), nucleus, 3.0, w.disc, 0.0, None),
    ]


def _process_layers(anat: AxialAnatomy, w: SliceWeights) -> list[Layer]:
    """Transverse processes and pedicles of the vertebra, on body slices below the disc."""
    t = T2_AXIAL
    layers: list[Layer] = []
    for sg in (1.0, -1.0):
        if w.transverse > 0:
            tp = Shape(sg * (anat.disc_a + 10.0), -3.0, 15.0, 3.5, sg * 0.12)
            layers += _bone(tp, w.transverse, t["marrow"])
        if w.pedicle > 0:
            ped = Shape(sg * (anat.sac_a + 5.0), -3.5, 4.2, 7.5, sg * -0.25)
            layers += _bone(ped, w.pedicle, t["marrow"])
    return layers


def _epidural_layers(anat: AxialAnatomy, w: SliceWeights) -> list[Layer]:
    """Epidural fat filling the canal, and the foramina opening laterally above the disc."""
    t = T2_AXIAL
    canal = Shape(0.0, 1.0, anat.sac_a + 2.6, anat.sac_b + 2.4, 0.0, 2.2)
    layers: list[Layer] = [(canal, t["fat"], 0.8, 1.0, 0.0, None)]
    if w.foramen > 0:
        for sg in (1.0, -1.0):
            fat = Shape(sg * (anat.sac_a + 8.0), -1.0, 6.5, 5.0)
            layers.append((fat, t["fat"], 1.0, w.foramen, 0.0, None))
            root = Shape(sg * (anat.sac_a + 9.5), -2.0, 2.0, 2.0)
            layers.append((root, t["root"], 0.5, w.foramen, 0.0, None))
    return layers


def _sides(anat: AxialAnatomy) -> tuple[tuple[str, float, float], ...]:
    """(side, sign, subarticular latent) of the patient's left, then right."""
    return (("left", 1.0, anat.left), ("right", -1.0, anat.right))


def _facet_layers(anat: AxialAnatomy, w: SliceWeights) -> list[Layer]:
    """Facet joints: superior articular process (front), joint line, inferior process (back)."""
    t = T2_AXIAL
    layers: list[Layer] = []
    if w.facet > 0:
        for side, _sg, sev in _sides(anat):
            facet = facet_joint(anat, side, sev * w.stenosis)  # hypertrophy toward the recess
            layers += _bone(facet.superior, w.facet, t["facet_marrow"])
            layers += _bone(facet.inferior, w.facet, t["facet_marrow"])
            layers.append((facet.joint, t["joint"], 0.35, w.facet, 0.0, None))
    return layers


def _posterior_arch_layers(anat: AxialAnatomy, w: SliceWeights) -> list[Layer]:
    """Lamina and spinous process (bone); at the disc the interlaminar gap holds the ligament."""
    t = T2_AXIAL
    layers: list[Layer] = []
    if w.lamina > 0:
        for sg in (1.0, -1.0):
            u0, v0 = sg * (anat.sac_a + 3.5), 3.0
            u1, v1 = 0.0, anat.sac_b + 6.5
            length = math.hypot(u1 - u0, v1 - v0)
            lam = Shape(
                (u0 + u1) / 2, (v0 + v1) / 2, length / 2 + 1.0, 2.4, math.atan2(v1 - v0, u1 - u0)
            )
            layers += _bone(lam, w.lamina, t["marrow"])
    layers += _bone(Shape(0.0, anat.sac_b + 24.0, 2.8, 18.0), w.spinous, t["marrow"])
    return layers


def _recess_fat_layers(anat: AxialAnatomy, w: SliceWeights) -> list[Layer]:
    """Fat and CSF of the lateral recesses, in the corners between disc and facets."""
    layers: list[Layer] = []
    for side, _sg, sev in _sides(anat):
        s = sev * w.stenosis
        ru, rv = anat.recess(side)
        size = anat.recess_size[0 if side == "left" else 1]
        fat = Shape(ru, rv, 3.4, 2.7).scaled(size * (1.0 - 0.72 * s))
        layers.append((fat, T2_AXIAL["recess"], 0.6, w.recess * (1.0 - 0.6 * s), 0.0, None))
    return layers


def _sac_layers(anat: AxialAnatomy, w: SliceWeights) -> list[Layer]:
    """Thecal sac, its rootlets (painted together, see _paint_layers), the central disc bulge.

    The sac shrinks with canal stenosis and its CSF dims between crowded rootlets.
    """
    t = T2_AXIAL
    sc = anat.canal * w.stenosis
    csf = t["csf"] - 0.5 * sc**1.5
    layers: list[Layer] = [(sac_shape(anat, sc, w.disc), csf, 0.7, 1.0, 0.0, None)]
    for cu, cv in rootlet_centres(anat, sc, w.disc):
        layers.append((Shape(cu, cv, 0.75, 0.75), t["root"], 0.5, 0.85, 0.0, _DOT))
    bulge = Shape(0.0, posterior_disc_margin(anat), 0.45 * anat.disc_a, 0.8 + 3.4 * sc)
    layers.append((bulge, t["annulus"], 0.7, w.disc, 0.0, None))
    return layers


def _flavum_layers(anat: AxialAnatomy, w: SliceWeights) -> list[Layer]:
    """Ligamentum flavum lining the back and sides of the sac; thickens with stenosis."""
    return [
        (flavum_shape(anat, sg, sev, w.stenosis), T2_AXIAL["flavum"], 0.6, w.flavum, 0.0, None)
        for _side, sg, sev in _sides(anat)
    ]


def _recess_layers(anat: AxialAnatomy, w: SliceWeights) -> list[Layer]:
    """The recess itself: encroaching facet/ligament behind, disc bulge in front, the root."""
    t = T2_AXIAL
    layers: list[Layer] = []
    for side, sg, sev in _sides(anat):
        s = sev * w.stenosis
        ru, rv = anat.recess(side)
        pinch = 1.0 - 0.72 * s
        enc = Shape(ru + sg * 3.3 * pinch, rv + 3.0 * pinch, 2.0 + 1.7 * s, 1.5 + 1.5 * s)
        layers.append((enc, t["flavum"], 0.6, w.recess * (0.1 + 0.9 * s), 0.0, None))
        front = Shape(ru - sg * 0.6, rv - 3.0 + 2.0 * s, 3.6, 1.4 + 1.3 * s)
        front_opacity = w.recess * w.disc * min(1.0, 0.2 + 1.2 * s)
        layers.append((front, t["annulus"], 0.6, front_opacity, 0.0, None))
        root = Shape(ru, rv + 0.3 * s, 1.3 * (1 + 0.55 * s), 1.3 * (1 - 0.5 * s))
        layers.append((root, t["root"], 0.5, w.recess * 0.95, 0.0, None))
    return layers


#: The slice's own layers, in painting order (later ones paint over earlier ones).
_SLICE_STEPS = (
    _disc_layers,
    _process_layers,
    _epidural_layers,
    _facet_layers,
    _posterior_arch_layers,
    _recess_fat_layers,
    _sac_layers,
    _flavum_layers,
    _recess_layers,
)


def axial_layers(anat: AxialAnatomy, d_mm: float, *, background: bool = True) -> list[Layer]:
    """Every layer of the slice at distance ``d_mm`` from the disc, back to front.

    Parameters
    ----------
    anat : AxialAnatomy
        The level's anatomy and severities.
    d_mm : float
        Signed distance from the disc plane, mm, positive toward the head.
    background : bool
        Include the layers that do not depend on ``d_mm`` (body, muscles, vessels).

    Returns
    -------
    list of (Shape, value, soft_mm, opacity, inset_mm, core)
        Shapes in the anatomy frame (mm), in painting order; ``core`` is a marrow
        value painted 1 mm inside a bone's cortex, or ``None``.
    """
    w = slice_weights(d_mm)
    layers = _background_layers(anat) if background else []
    for step in _SLICE_STEPS:
        layers += step(anat, w)
    return layers


def _paint_layers(canvas: np.ndarray, layers: list[Layer], place: Placement) -> None:
    k = place.k
    rot = place.rotation
    dots: list[tuple[float, float]] = []
    dot_style: tuple = ()
    for shape, value, soft, opacity, inset, core in layers:
        cx, cy = place.to_pixel(shape.cx, shape.cy)
        if isinstance(core, float) and core == _DOT:
            dots.append((cx, cy))
            dot_style = (shape.a * k, value, soft * k, opacity)
            continue
        if dots:
            radius, dv, ds, do = dot_style
            paint_dots(canvas, np.array(dots), radius, dv, soft=ds, opacity=do)
            dots = []
        px = Shape(cx, cy, shape.a * k, shape.b * k, shape.angle + rot, shape.p)
        rim = 1.0
        if isinstance(core, tuple):
            core, rim = core
        paint(
            canvas,
            px,
            value,
            soft=soft * k,
            opacity=opacity,
            inset=inset * k,
            core=core,
            core_inset=rim * k,
        )
    if dots:
        radius, dv, ds, do = dot_style
        paint_dots(canvas, np.array(dots), radius, dv, soft=ds, opacity=do)


@dataclass(frozen=True)
class AxialSlice:
    """One rendered axial slice.

    Parameters
    ----------
    image : (H, W) float32 ndarray
        Magnitude image, CSF about 1 before bias and noise.
    left_recess, right_recess : (2,) tuple of float
        (x, y) = (column, row) of the patient's left and right lateral recess, px.
    pixel_spacing : float
        Millimetres per pixel.
    """

    image: np.ndarray
    left_recess: tuple[float, float]
    right_recess: tuple[float, float]
    pixel_spacing: float


class AxialSeriesRenderer:
    """Renders the slices of one axial series, caching what slices share.

    Parameters
    ----------
    shape : (H, W) tuple of int
        Image size (rows, columns).
    anatomy : dict of str to AxialAnatomy
        Anatomy per level.
    placements : dict of str to Placement
        Placement of each level's anatomy in the image.
    rng : numpy.random.Generator
        Random source for the bias and texture fields (drawn once here).
    noise_sigma : float
        Rician noise level relative to CSF.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        anatomy: dict[str, AxialAnatomy],
        placements: dict[str, Placement],
        rng: np.random.Generator,
        *,
        noise_sigma: float = 0.035,
    ) -> None:
        if set(anatomy) != set(placements):
            raise ValueError(
                f"anatomy levels {sorted(anatomy)} != placement levels {sorted(placements)}"
            )
        self.shape = (int(shape[0]), int(shape[1]))
        self.anatomy = anatomy
        self.placements = placements
        self.noise_sigma = float(noise_sigma)
        spacing = next(iter(placements.values())).pixel_spacing
        self._gain = bias_field(self.shape, rng) * texture_field(self.shape, rng, pixel_mm=spacing)
        self._noise = NoiseBank(self.shape, self.noise_sigma, rng)
        self._backgrounds: dict[str, np.ndarray] = {}
        self._body: np.ndarray | None = None

    def _background(self, level: str) -> np.ndarray:
        if level not in self._backgrounds:
            if self._body is None:
                # The trunk is drawn once per series, placed as the first level places it.
                first = min(self.anatomy, key=LEVELS.index)
                self._body = np.zeros(self.shape, dtype=np.float32)
                _paint_layers(self._body, _body_layers(self.anatomy[first]), self.placements[first])
            canvas = self._body.copy()
            layers = _background_layers(self.anatomy[level], body=False)
            _paint_layers(canvas, layers, self.placements[level])
            self._backgrounds[level] = canvas
        return self._backgrounds[level]

    def render(self, level: str, d_mm: float, rng: np.random.Generator | None) -> np.ndarray:
        """The slice at ``d_mm`` from ``level``'s disc; ``rng=None`` gives no noise.

        Returns
        -------
        (H, W) float32 ndarray
        """
        if level not in self.anatomy:
            raise ValueError(f"Level '{level}' not in this series ({sorted(self.anatomy)})")
        canvas = self._background(level).copy()
        _paint_layers(
            canvas,
            axial_layers(self.anatomy[level], d_mm, background=False),
            self.placements[level],
        )
        canvas *= self._gain
        if rng is not None:
            canvas = self._noise.apply(canvas, rng)
        return canvas

    def recess_pixel(self, level: str, side: str) -> tuple[float, float]:
        """(x, y) pixel position of a lateral recess at ``level``."""
        return self.placements[level].to_pixel(*self.anatomy[level].recess(side))


def render_axial(
    *,
    level: str = "L4/L5",
    offset_mm: float = 0.0,
    canal: float = 0.1,
    left: float = 0.1,
    right: float = 0.1,
    shape: tuple[int, int] = (384, 384),
    pixel_spacing: float = 0.6,
    seed: int = 0,
    noise: bool = True,
) -> AxialSlice:
    """Render one axial T2 slice of a random phantom patient.

    The patient (anatomy, position, bias field, noise) depends only on ``seed``, so
    two calls that differ in one severity differ only where that severity acts.

    Parameters
    ----------
    level : str
        Disc level, one of :data:`lss.config.LEVELS`.
    offset_mm : float
        Distance of the slice from the disc plane, mm, positive toward the head;
        beyond about 5 mm the disc gives way to the vertebral body.
    canal, left, right : float
        Severity latents in [0, 1] for spinal canal, left and right subarticular
        stenosis (see :data:`lss.phantom.anatomy.GRADE_LATENT` for the grades).
    shape : (H, W) tuple of int
        Image size (rows, columns).
    pixel_spacing : float
        Millimetres per pixel.
    seed : int
        Chooses the patient and the noise.
    noise : bool
        Add Rician noise.

    Returns
    -------
    AxialSlice
        The image, ``(H, W)`` float32, and the pixel positions of both recesses.

    Examples
    --------
    >>> s = render_axial(left=0.9, seed=1, shape=(256, 256))
    >>> s.image.shape, s.left_recess[0] > s.right_recess[0]
    ((256, 256), True)
    """
    if level not in LEVELS:
        raise ValueError(f"Unknown level '{level}'; expected one of {list(LEVELS)}")
    if pixel_spacing <= 0:
        raise ValueError(f"pixel_spacing must be positive, got {pixel_spacing}")
    rng = np.random.default_rng(seed)
    traits = sample_traits(rng)
    anat = axial_anatomy(traits, level, rng, canal=canal, left=left, right=right)
    h, w = int(shape[0]), int(shape[1])
    place = Placement(
        cx=w / 2 + rng.normal(0, 0.03) * w,
        cy=h * 0.47 + rng.normal(0, 0.03) * h,
        rotation=float(rng.normal(0, math.radians(3))),
        scale=traits.size,
        pixel_spacing=pixel_spacing,
    )
    renderer = AxialSeriesRenderer((h, w), {level: anat}, {level: place}, rng)
    image = renderer.render(level, offset_mm, rng if noise else None)
    return AxialSlice(
        image=image,
        left_recess=renderer.recess_pixel(level, "left"),
        right_recess=renderer.recess_pixel(level, "right"),
        pixel_spacing=pixel_spacing,
    )
