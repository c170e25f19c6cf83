"""Where the structures of an axial slice are: the renderer's geometry, named once.

Positions and shapes are in the anatomy frame of :class:`~lss.phantom.anatomy.AxialAnatomy`
(mm from the centre of a normal thecal sac at the disc, ``u`` toward the patient's
left, ``v`` toward the back). :mod:`lss.phantom.axial` paints these shapes and
:mod:`lss.phantom.landmarks` points at them, so a landmark moves with its structure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lss.phantom.anatomy import AxialAnatomy
from lss.phantom.shapes import Shape

__all__ = [
    "SIDE_SIGN",
    "TRUNK_BACK_MM",
    "TRUNK_HALF_MM",
    "SKIN_MM",
    "DISC_GAP_MM",
    "DISC_CANAL_SHIFT_MM",
    "MULTIFIDUS_MM",
    "ERECTOR_SPINAE_MM",
    "FLAVUM_NORMAL",
    "SliceWeights",
    "slice_weights",
    "trunk_back",
    "trunk_shape",
    "posterior_disc_margin",
    "disc_shape",
    "psoas_shape",
    "multifidus_shape",
    "erector_spinae_shape",
    "FacetJoint",
    "facet_joint",
    "flavum_shape",
    "sac_scale",
    "sac_shape",
    "rootlet_centres",
]

#: +1 for the patient's left (anatomy u > 0, the image's right), -1 for the right.
SIDE_SIGN: dict[str, float] = {"left": 1.0, "right": -1.0}

#: The trunk: its back surface lies TRUNK_BACK_MM + the subcutaneous fat behind the sac.
TRUNK_BACK_MM = 68.0
#: Semi-axes (u, v) of the trunk's outline.
TRUNK_HALF_MM = (150.0, 110.0)
#: Thickness of the skin, the rim of the trunk outline; the subcutaneous fat lies inside it.
SKIN_MM = 2.5
#: Gap between the posterior disc margin and the front of a normal sac.
DISC_GAP_MM = 1.5
#: How far canal stenosis moves the posterior disc margin back (per unit latent).
DISC_CANAL_SHIFT_MM = 1.2
#: Multifidus of the patient's left: (u, v, a, b); the right one mirrors u.
MULTIFIDUS_MM = (13.5, 37.0, 12.0, 20.0)
#: Erector spinae of the patient's left: (u, v, a, b); the right one mirrors u.
ERECTOR_SPINAE_MM = (36.0, 41.0, 27.0, 25.0)
#: Outward normal (u of the left side, v) of the ligamentum flavum on the sac's back corner.
FLAVUM_NORMAL = (0.67, 0.74)


def _smoothstep(x: float, e0: float, e1: float) -> float:
    t = min(max((x - e0) / (e1 - e0), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass(frozen=True)
class SliceWeights:
    """How a slice's distance from the disc weighs each structure (0 absent, 1 full).

    ``disc`` is 1 for the disc and 0 for the vertebral body; ``stenosis`` is where
    stenosis shows (1 at the disc plane, fading within about a slice); the rest are
    the opacities of the pedicles, transverse processes, foramina, facets, laminae,
    ligamenta flava, recesses and the spinous process.
    """

    disc: float
    stenosis: float
    pedicle: float
    transverse: float
    foramen: float
    facet: float
    lamina: float
    flavum: float
    recess: float
    spinous: float


def slice_weights(d_mm: float) -> SliceWeights:
    """The weights of the slice at ``d_mm`` from the disc (+ toward the head)."""
    ad = abs(d_mm)
    return SliceWeights(
        disc=1.0 - _smoothstep(ad, 3.0, 7.0),
        stenosis=math.exp(-((d_mm / 5.0) ** 2)),
        pedicle=_smoothstep(-d_mm, 7.0, 10.0) * (1.0 - _smoothstep(-d_mm, 19.0, 23.0)),
        transverse=_smoothstep(-d_mm, 11.0, 14.0) * (1.0 - _smoothstep(-d_mm, 19.0, 22.0)),
        foramen=_smoothstep(d_mm, 6.0, 9.0) * (1.0 - _smoothstep(d_mm, 18.0, 22.0)),
        facet=1.0 - _smoothstep(abs(d_mm - 1.5), 6.0, 10.0),
        lamina=_smoothstep(ad, 4.5, 8.0),
        flavum=1.0 - _smoothstep(ad, 6.0, 10.0),
        recess=1.0 - _smoothstep(ad, 5.0, 9.0),
        spinous=0.4 + 0.6 * _smoothstep(ad, 3.0, 7.0),
    )


def trunk_back(anat: AxialAnatomy) -> float:
    """v of the skin surface of the back, behind the muscles and the subcutaneous fat."""
    return TRUNK_BACK_MM + anat.fat


def trunk_shape(anat: AxialAnatomy) -> Shape:
    """The trunk's outline: skin (SKIN_MM), then subcutaneous fat ``anat.fat`` thick inside."""
    a, b = TRUNK_HALF_MM
    return Shape(0.0, trunk_back(anat) - b, a, b)


def posterior_disc_margin(anat: AxialAnatomy, sc: float = 0.0, wd: float = 1.0) -> float:
    """v of the disc's back edge; canal stenosis ``sc`` (on disc slices, ``wd``) moves it back."""
    return -(anat.sac_b + DISC_GAP_MM) + DISC_CANAL_SHIFT_MM * sc * wd


def disc_shape(anat: AxialAnatomy, w: SliceWeights) -> Shape:
    """The disc, or toward the vertebral body (slightly smaller) away from the disc plane."""
    v_pm = posterior_disc_margin(anat, anat.canal * w.stenosis, w.disc)
    a = anat.disc_a - 0.8 * (1.0 - w.disc)
    b = anat.disc_b - 0.5 * (1.0 - w.disc)
    return Shape(0.0, v_pm - b, a, b, 0.0, 2.3)


def psoas_shape(anat: AxialAnatomy, sg: float) -> Shape:
    """The psoas beside the disc on side ``sg`` (+1 the patient's left)."""
    pu = sg * (0.55 * anat.disc_a + 0.8 * anat.psoas_a + 4.0)
    pv = posterior_disc_margin(anat) - 0.8 * anat.disc_b
    return Shape(pu, pv, anat.psoas_a, anat.psoas_b, sg * 0.35)


def multifidus_shape(sg: float) -> Shape:
    """The multifidus beside the spinous process on side ``sg``."""
    u, v, a, b = MULTIFIDUS_MM
    return Shape(sg * u, v, a, b)


def erector_spinae_shape(sg: float) -> Shape:
    """The erector spinae lateral to the multifidus on side ``sg`` (drawn before it)."""
    u, v, a, b = ERECTOR_SPINAE_MM
    return Shape(sg * u, v, a, b)


@dataclass(frozen=True)
class FacetJoint:
    """One facet joint: the superior and inferior articular processes and the joint line."""

    superior: Shape
    inferior: Shape
    joint: Shape


def facet_joint(anat: AxialAnatomy, side: str, h: float) -> FacetJoint:
    """The facet joint behind the ``side`` recess; hypertrophy ``h`` pushes it into the recess.

    The superior process starts just behind the recess and runs along the joint angle
    (front-medial to back-lateral); the inferior process lies behind it, across the
    joint line.
    """
    sg = SIDE_SIGN[side]
    ru, rv = anat.recess(side)
    th = anat.facet_angle
    du, dv = sg * math.sin(th), math.cos(th)  # along the joint
    nu, nv = -sg * math.cos(th), math.sin(th)  # toward the back and the midline
    ang = math.atan2(dv, du)
    half_len, half_w = 7.5 * (1 + 0.25 * h), 4.2 * (1 + 0.3 * h)
    tip_u = ru + sg * 2.8 - sg * 2.2 * h
    tip_v = rv + 1.6 - 1.0 * h
    cu, cv = tip_u + du * half_len, tip_v + dv * half_len
    iu = cu + nu * (half_w + 5.2) + du * 1.5
    iv = cv + nv * (half_w + 5.2) + dv * 1.5
    ju, jv = cu + nu * (half_w + 0.3), cv + nv * (half_w + 0.3)
    return FacetJoint(
        superior=Shape(cu, cv, half_len, half_w, ang),
        inferior=Shape(iu, iv, 7.0, 4.6, ang),
        joint=Shape(ju, jv, 5.5, 0.4, ang),
    )


def flavum_shape(anat: AxialAnatomy, sg: float, sev: float, g: float) -> Shape:
    """The ligamentum flavum on the back corner of the sac; thickens with stenosis.

    ``sev`` is the side's subarticular latent, ``g`` the stenosis weight of the slice.
    """
    th = anat.lf + 2.6 * max(anat.canal, sev) * g
    nu, nv = sg * FLAVUM_NORMAL[0], FLAVUM_NORMAL[1]  # outward normal
    r_sac = 1.0 / math.sqrt((nu / anat.sac_a) ** 2 + (nv / anat.sac_b) ** 2)
    r_c = r_sac + 0.8 + anat.lf - th / 2
    angle = math.atan2(-FLAVUM_NORMAL[0], sg * FLAVUM_NORMAL[1])
    return Shape(nu * r_c, nv * r_c, 8.0, th / 2, angle)


def sac_scale(anat: AxialAnatomy, sc: float, wd: float) -> tuple[float, float]:
    """(factor on the sac's semi-axes, v of its centre) under canal stenosis ``sc``.

    The sac shrinks toward its back wall (and is a little larger on body slices).
    """
    f = (1.0 - 0.47 * sc) * (1.0 + 0.05 * (1.0 - wd))
    sac_v = (1.0 - f) * anat.sac_b * 0.6 if f < 1 else 0.0
    return f, sac_v


def sac_shape(anat: AxialAnatomy, sc: float, wd: float) -> Shape:
    """The thecal sac (its CSF) under canal stenosis ``sc``."""
    f, sac_v = sac_scale(anat, sc, wd)
    return Shape(0.0, sac_v, anat.sac_a * f, anat.sac_b * f, 0.0, 2.2)


def rootlet_centres(anat: AxialAnatomy, sc: float, wd: float) -> list[tuple[float, float]]:
    """Where the rootlets are drawn: fixed fractions of the (shrunk) sac's semi-axes."""
    f, sac_v = sac_scale(anat, sc, wd)
    return [(fu * anat.sac_a * f, sac_v + fv * anat.sac_b * f) for fu, fv in anat.rootlets]
