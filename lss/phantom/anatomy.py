"""Per-study anatomy of the phantom: sizes in millimetres and severity latents.

A study draws one :class:`StudyTraits` (body build, canal size, disc health per
level). Each disc level then gets an :class:`AxialAnatomy` in an anatomy frame:
``u`` toward the patient's left (image right), ``v`` toward the patient's back
(image down), millimetres, origin at the centre of the thecal sac at the disc.
Renderers place that frame into an image with a :class:`Placement`.

Severity enters as a continuous latent in [0, 1] per side and level, drawn from
overlapping distributions per grade (:func:`severity_latent`), so the same grade
covers a range of appearances and neighbouring grades overlap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from lss.config import LEVELS, SEVERITIES

__all__ = [
    "GRADE_LATENT",
    "severity_latent",
    "StudyTraits",
    "sample_traits",
    "AxialAnatomy",
    "axial_anatomy",
    "Placement",
]

#: Mean and standard deviation of the severity latent for each grade. The spreads
#: overlap (Normal/Mild and Moderate share values near 0.33, Moderate and Severe
#: near 0.67): the grade is learnable from the image but not a lookup.
GRADE_LATENT: dict[str, tuple[float, float]] = {
    "Normal/Mild": (0.18, 0.14),
    "Moderate": (0.50, 0.14),
    "Severe": (0.80, 0.12),
}


def severity_latent(grade: str | None, rng: np.random.Generator) -> float:
    """Draw the continuous severity in [0, 1] behind a grade.

    Parameters
    ----------
    grade : str or None
        One of :data:`lss.config.SEVERITIES`, or ``None`` for a missing label, which
        draws from an even mixture of the three grades.
    rng : numpy.random.Generator
        Random source.

    Returns
    -------
    float
        The latent, clipped to [0, 1].

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> 0.0 <= severity_latent("Severe", rng) <= 1.0
    True
    """
    if grade is None:
        grade = SEVERITIES[int(rng.integers(len(SEVERITIES)))]
    if grade not in GRADE_LATENT:
        raise ValueError(f"Unknown severity '{grade}'; expected one of {list(SEVERITIES)} or None")
    mean, sd = GRADE_LATENT[grade]
    return float(np.clip(rng.normal(mean, sd), 0.0, 1.0))


@dataclass(frozen=True)
class StudyTraits:
    """What stays the same across the levels and series of one study.

    Parameters
    ----------
    size : float
        Overall size factor (about 0.9-1.1).
    canal : float
        Factor on the thecal sac size (congenitally narrow or wide canals).
    fat : float
        Subcutaneous fat thickness behind the paraspinal muscles, mm.
    disc_health : (5,) tuple of float
        Nucleus brightness per level, 1 healthy to 0 desiccated.
    lf : float
        Baseline ligamentum flavum thickness, mm.
    facet_angles : (5,) tuple of float
        Facet joint angle from the sagittal plane per level, radians.
    shift : (5, 2) tuple
        Small in-plane drift of the canal per level, mm (u, v).
    """

    size: float
    canal: float
    fat: float
    disc_health: tuple[float, ...]
    lf: float
    facet_angles: tuple[float, ...]
    shift: tuple[tuple[float, float], ...]


def sample_traits(rng: np.random.Generator, *, degeneration: float = 0.0) -> StudyTraits:
    """Draw the traits of one study.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random source.
    degeneration : float
        Study-level degeneration (standard normal scale); higher means darker discs
        and thicker ligamenta flava, more so at the lower levels.
    """
    lvl = np.arange(len(LEVELS))
    health = 0.85 - 0.08 * lvl - 0.15 * degeneration + rng.normal(0, 0.12, len(LEVELS))
    base_facet = np.deg2rad([28.0, 35.0, 40.0, 46.0, 52.0])
    return StudyTraits(
        size=float(rng.uniform(0.9, 1.1)),
        canal=float(np.clip(rng.normal(1.0, 0.07), 0.82, 1.2)),
        fat=float(rng.uniform(6.0, 25.0)),
        disc_health=tuple(float(h) for h in np.clip(health, 0.0, 1.0)),
        lf=float(np.clip(rng.normal(2.4 + 0.3 * degeneration, 0.3), 1.6, 3.6)),
        facet_angles=tuple(float(a) for a in base_facet + rng.normal(0, np.deg2rad(4), 5)),
        shift=tuple((float(u), float(v)) for u, v in rng.normal(0, 0.6, (len(LEVELS), 2))),
    )


@dataclass(frozen=True)
class AxialAnatomy:
    """Geometry of one disc level in the anatomy frame (mm) with its severities.

    Parameters
    ----------
    level : str
        Disc level, e.g. ``'L4/L5'``.
    disc_a, disc_b : float
        Disc semi-axes, transverse and antero-posterior.
    sac_a, sac_b : float
        Thecal sac semi-axes of a normal canal.
    recess_u, recess_v : float
        Centre of the left lateral recess (the right one mirrors ``recess_u``).
    psoas_a, psoas_b : float
        Psoas semi-axes (the muscle grows toward the sacrum).
    facet_angle : float
        Facet joint angle from the sagittal plane, radians.
    lf : float
        Ligamentum flavum thickness without stenosis.
    nucleus : float
        Disc health in [0, 1]: brightness of the nucleus on T2.
    fat : float
        Subcutaneous fat thickness behind the muscles.
    rootlets : (N, 2) tuple
        Nerve-rootlet positions as fractions of the sac semi-axes.
    canal, left, right : float
        Severity latents in [0, 1]: spinal canal, left and right subarticular.
    left_offset, right_offset : (2,) tuple of float
        Extra displacement of each recess, mm (used to fit real label coordinates).
    recess_size : (2,) tuple of float
        Size factor of the (left, right) recess contents regardless of stenosis: some
        recesses are roomy, some tight, so the image does not read off the grade.
    """

    level: str
    disc_a: float
    disc_b: float
    sac_a: float
    sac_b: float
    recess_u: float
    recess_v: float
    psoas_a: float
    psoas_b: float
    facet_angle: float
    lf: float
    nucleus: float
    fat: float
    rootlets: tuple[tuple[float, float], ...]
    canal: float = 0.1
    left: float = 0.1
    right: float = 0.1
    left_offset: tuple[float, float] = (0.0, 0.0)
    right_offset: tuple[float, float] = (0.0, 0.0)
    recess_size: tuple[float, float] = (1.0, 1.0)

    def with_severity(
        self, *, canal: float | None = None, left: float | None = None, right: float | None = None
    ) -> AxialAnatomy:
        """A copy with some severity latents replaced (each must lie in [0, 1])."""
        changes = {}
        for name, value in (("canal", canal), ("left", left), ("right", right)):
            if value is None:
                continue
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} severity must be in [0, 1], got {value}")
            changes[name] = float(value)
        return replace(self, **changes)

    def recess(self, side: str) -> tuple[float, float]:
        """Centre of the ``'left'`` or ``'right'`` lateral recess, (u, v) in mm."""
        if side == "left":
            du, dv = self.left_offset
            return self.recess_u + du, self.recess_v + dv
        if side == "right":
            du, dv = self.right_offset
            return -self.recess_u + du, self.recess_v + dv
        raise ValueError(f"side must be 'left' or 'right', got '{side}'")


def axial_anatomy(
    traits: StudyTraits,
    level: str,
    rng: np.random.Generator,
    *,
    canal: float = 0.1,
    left: float = 0.1,
    right: float = 0.1,
) -> AxialAnatomy:
    """The anatomy of one level of a study.

    Parameters
    ----------
    traits : StudyTraits
        The study's traits.
    level : str
        One of :data:`lss.config.LEVELS`.
    rng : numpy.random.Generator
        Random source for per-level variation (rootlet layout, small size changes).
    canal, left, right : float
        Severity latents in [0, 1].
    """
    if level not in LEVELS:
        raise ValueError(f"Unknown level '{level}'; expected one of {list(LEVELS)}")
    i = LEVELS.index(level)
    jitter = rng.normal(1.0, 0.04, 4)
    sac_a = (8.6 - 0.25 * i) * traits.canal * jitter[0]
    sac_b = (6.6 - 0.1 * i) * traits.canal * jitter[1]
    disc_a = (21.0 + 1.3 * i) * jitter[2]
    disc_b = (15.0 + 0.6 * i) * jitter[3]
    # Rootlets of the cauda equina lie dorsally in the supine patient.
    n = int(rng.integers(9, 14))
    ang = rng.uniform(0.1 * math.pi, 0.9 * math.pi, n)  # a crescent in the back of the sac
    rad = rng.uniform(0.35, 0.72, n)
    rootlets = tuple(
        (float(r * math.cos(t)), float(r * math.sin(t))) for r, t in zip(rad, ang, strict=True)
    )
    anat = AxialAnatomy(
        level=level,
        disc_a=disc_a,
        disc_b=disc_b,
        sac_a=sac_a,
        sac_b=sac_b,
        recess_u=sac_a + 1.0 + float(rng.normal(0, 0.4)),
        recess_v=-(sac_b + 1.5) + 2.6,
        psoas_a=7.0 + 3.3 * i,
        psoas_b=9.0 + 2.8 * i,
        facet_angle=traits.facet_angles[i],
        lf=traits.lf,
        nucleus=traits.disc_health[i],
        fat=traits.fat,
        rootlets=rootlets,
        recess_size=tuple(float(v) for v in np.clip(rng.normal(1.0, 0.15, 2), 0.7, 1.3)),
    )
    return anat.with_severity(canal=canal, left=left, right=right)


@dataclass(frozen=True)
class Placement:
    """Where the anatomy frame sits in an image.

    ``col = cx + k (u cos r - v sin r)``, ``row = cy + k (u sin r + v cos r)`` with
    ``k = scale / pixel_spacing``.

    Parameters
    ----------
    cx, cy : float
        Pixel (column, row) of the anatomy origin (centre of the sac).
    rotation : float
        In-plane rotation, radians.
    scale : float
        Size factor of the anatomy (the study's build).
    pixel_spacing : float
        Millimetres per pixel.
    """

    cx: float
    cy: float
    rotation: float = 0.0
    scale: float = 1.0
    pixel_spacing: float = 0.6

    @property
    def k(self) -> float:
        """Pixels per anatomy millimetre."""
        return self.scale / self.pixel_spacing

    def to_pixel(self, u: float, v: float) -> tuple[float, float]:
        """Anatomy (u, v) in mm to image (column, row) in pixels."""
        c, s, k = math.cos(self.rotation), math.sin(self.rotation), self.k
        return float(self.cx + k * (u * c - v * s)), float(self.cy + k * (u * s + v * c))
