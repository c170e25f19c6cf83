"""What both planners share: the plan dataclasses, seeds, the study's body and series tags.

Geometry is in the patient's LPS frame (x toward the patient's left, y toward the
back, z toward the head). Axial slices use ImageOrientationPatient
``[1, 0, 0, 0, cos t, sin t]`` (exactly ``[1, 0, 0, 0, 1, 0]`` for a contiguous
stack), so image columns run to the patient's left and rows to the back; sagittal
slices use ``[0, 1, 0, 0, 0, -1]``.

Every draw from a random generator happens in a fixed order: a phantom written
with the same seed is the same, byte for byte. Keep that order when editing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lss.config import LEVELS, column_name
from lss.phantom.anatomy import (
    AxialAnatomy,
    Placement,
    StudyTraits,
    axial_anatomy,
    sample_traits,
    severity_latent,
)
from lss.phantom.sagittal import SagittalSpine
from lss.phantom.stats import label_columns
from lss.phantom.writer import SeriesTags

__all__ = [
    "SlicePlan",
    "SeriesPlan",
    "StudyPlan",
    "CoordinateRow",
    "IMAGE_SIZES",
    "child_seeds",
]

#: Image sizes to choose from (pixels).
IMAGE_SIZES: tuple[int, ...] = (256, 320, 384, 448, 512, 576, 640, 704, 768, 832, 896, 960, 1024)

#: (study_id, series_id, instance_number, condition, level, x, y)
CoordinateRow = tuple[int, int, int, str, str, float, float]

SUBARTICULAR = {"left": "left_subarticular_stenosis", "right": "right_subarticular_stenosis"}
FORAMINAL = {
    "left": "left_neural_foraminal_narrowing",
    "right": "right_neural_foraminal_narrowing",
}
CANAL = "spinal_canal_stenosis"
AXIAL_ORIENTATION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SAG_ORIENTATION = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
# Lordotic tilt of each disc plane (about the patient's x axis), degrees.
_DISC_TILT_DEG = (-4.0, 0.0, 4.0, 9.0, 16.0)


@dataclass(frozen=True)
class SlicePlan:
    """One DICOM file of a series.

    Parameters
    ----------
    instance_number : int
        InstanceNumber and file name.
    position : (3,) tuple of float
        ImagePositionPatient, mm.
    orientation : (6,) tuple of float
        ImageOrientationPatient.
    level : str or None
        Axial: the disc whose anatomy the slice shows. Sagittal: ``None``.
    offset_mm : float
        Axial: distance from that disc (+ toward the head). Sagittal: the lateral
        position the content is drawn for (+ toward the patient's left).
    spine : SagittalSpine or None
        Sagittal only: the spine as this slice sees it.
    """

    instance_number: int
    position: tuple[float, float, float]
    orientation: tuple[float, ...]
    level: str | None
    offset_mm: float
    spine: SagittalSpine | None = None


@dataclass(frozen=True)
class SeriesPlan:
    """One series: header, slices and what the renderer needs.

    Parameters
    ----------
    header : SeriesTags
        Series-level DICOM tags.
    contrast : str
        ``'T2'`` (axial), ``'T1'``, ``'T2'`` or ``'STIR'`` (sagittal).
    intensity : float
        Physical pixel value of CSF on T2 (the series' intensity scale).
    noise_sigma : float
        Rician noise relative to that scale.
    slices : tuple of SlicePlan
        In instance-number order.
    anatomy, placements : dict or None
        Axial only: anatomy and placement per level.
    """

    header: SeriesTags
    contrast: str
    intensity: float
    noise_sigma: float
    slices: tuple[SlicePlan, ...]
    anatomy: dict[str, AxialAnatomy] | None = None
    placements: dict[str, Placement] | None = None

    @property
    def is_axial(self) -> bool:
        return self.header.description == "Axial T2"


@dataclass(frozen=True)
class StudyPlan:
    """Everything about one study except its pixels.

    Parameters
    ----------
    study_id : int
        The study.
    split : str
        ``'train'`` or ``'test'``.
    labels : dict or None
        ``train.csv`` row (column -> severity or ``None``); ``None`` for test studies.
    series : tuple of SeriesPlan
        In ``series_id`` order.
    coordinates : tuple of CoordinateRow
        Rows for ``train_label_coordinates.csv``.
    render_seed : numpy.random.SeedSequence
        Seeds the noise and fields of the rendering.
    """

    study_id: int
    split: str
    labels: dict[str, str | None] | None
    series: tuple[SeriesPlan, ...]
    coordinates: tuple[CoordinateRow, ...]
    render_seed: np.random.SeedSequence


# ----------------------------------------------------------------------------- helpers


def child_seeds(seed: np.random.SeedSequence, n: int) -> list[np.random.SeedSequence]:
    """The first ``n`` children of ``seed``, without advancing it (unlike ``spawn``)."""
    return [
        np.random.SeedSequence(
            seed.entropy, spawn_key=(*seed.spawn_key, i), pool_size=seed.pool_size
        )
        for i in range(n)
    ]


def choice(rng: np.random.Generator, options: Sequence, percent: Sequence[float]):
    """One of ``options``, drawn with the relative frequencies ``percent``."""
    p = np.asarray(percent, dtype=float)
    return options[int(rng.choice(len(options), p=p / p.sum()))]


def round_size(n: float) -> int:
    """Smallest entry of IMAGE_SIZES that is >= n."""
    for size in IMAGE_SIZES:
        if size >= n:
            return size
    raise ValueError(f"Needs an image of {n:.0f} px, more than the largest size {IMAGE_SIZES[-1]}")


def axial_frame(theta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row direction, column direction and normal of an axial slice tilted by theta."""
    r = np.array([1.0, 0.0, 0.0])
    c = np.array([0.0, math.cos(theta), math.sin(theta)])
    return r, c, np.cross(r, c)


def orientation(theta: float) -> tuple[float, ...]:
    """ImageOrientationPatient of an axial slice tilted by theta (exact for theta 0)."""
    if theta == 0.0:
        return AXIAL_ORIENTATION
    r, c, _ = axial_frame(theta)
    return tuple(float(v) for v in (*r, *c))


def jitter(rng: np.random.Generator, spacing: float, mm: float = 0.3) -> tuple[float, float]:
    """A reader's aim error on a coordinate: about ``mm`` millimetres, in pixels."""
    dx, dy = rng.normal(0.0, mm / spacing, 2)
    return float(dx), float(dy)


def number_instances(
    slices_head_to_feet: list[dict],
    rng: np.random.Generator,
    *,
    toward_feet: bool | None = None,
    start: int | None = None,
) -> None:
    """Assign instance numbers: a random start, increasing toward the feet or the head."""
    r = rng.random()
    if start is None:
        start = (
            1
            if r < 0.75
            else int(rng.integers(2, 21))
            if r < 0.9
            else int(rng.choice([101, 501, 1001, 2001]))
        )
    if toward_feet is None:
        toward_feet = rng.random() < 0.85
    order = slices_head_to_feet if toward_feet else slices_head_to_feet[::-1]
    for i, s in enumerate(order):
        s["instance"] = start + i


# ----------------------------------------------------------------------------- series tags


def _acquisition_times(
    rng: np.random.Generator, contrast: str
) -> tuple[float, float, float | None]:
    """(TR, TE, TI) in ms for the contrast; only the header's look depends on them.

    All three contrasts' times are drawn whatever ``contrast`` is (the draw order of
    the phantom's first version, kept so that seeds give the same files).
    """
    return {
        "T2": (float(rng.uniform(3000, 5500)), float(rng.uniform(85, 120)), None),
        "T1": (float(rng.uniform(400, 700)), float(rng.uniform(8, 14)), None),
        "STIR": (float(rng.uniform(3000, 5000)), float(rng.uniform(40, 70)), 150.0),
    }[contrast]


def series_tags(
    rng: np.random.Generator,
    *,
    study_id: int,
    series_id: int,
    description: str,
    series_number: int,
    rows: int,
    columns: int,
    pixel_spacing: float,
    thickness: float,
    between: float,
    contrast: str,
) -> tuple[SeriesTags, float]:
    """Series tags with a random intensity scale, rescale slope and bit depth.

    Returns the tags and the intensity scale (the physical value of CSF on T2).
    """
    intensity = float(rng.uniform(350.0, 2500.0))
    slope = 1.0 if rng.random() < 0.85 else float(rng.choice([0.5, 2.0, 2.5, 4.0]))
    peak = intensity * 2.2 / slope  # CSF at the brightest part of the bias field, plus noise
    bits = 12 if (slope >= 1.0 and peak < 4000 and rng.random() < 0.4) else 16
    tr, te, ti = _acquisition_times(rng, contrast)
    tags = SeriesTags(
        study_id=study_id,
        series_id=series_id,
        description=description,
        series_number=series_number,
        rows=rows,
        columns=columns,
        pixel_spacing=round(float(pixel_spacing), 6),
        slice_thickness=round(float(thickness), 3),
        spacing_between_slices=round(float(between), 3),
        rescale_slope=slope,
        bits_stored=bits,
        repetition_time=round(tr, 1),
        echo_time=round(te, 1),
        inversion_time=ti,
        window_center=round(intensity * 0.5, 1),
        window_width=round(intensity * 1.0, 1),
    )
    return tags, intensity


# ----------------------------------------------------------------------------- the study's body


@dataclass(frozen=True)
class Spine3D:
    """Canal centre at each disc (LPS mm) and the disc planes' tilts (radians)."""

    centres: np.ndarray  # (5, 3)
    tilts: np.ndarray  # (5,)


@dataclass(frozen=True)
class StudyBody:
    """The anatomy one study's series all show.

    Parameters
    ----------
    traits : StudyTraits
        Build, canal size, disc health.
    spine : Spine3D
        Where the discs are in the patient frame.
    anatomy : dict of str to AxialAnatomy
        Axial anatomy of every level, with its canal and subarticular severities.
    sagittal : dict
        Keyword arguments of :class:`~lss.phantom.sagittal.SagittalSpine` except the
        points and the pixel spacing.
    """

    traits: StudyTraits
    spine: Spine3D
    anatomy: dict[str, AxialAnatomy]
    sagittal: dict


def _sample_spine(rng: np.random.Generator, traits: StudyTraits) -> Spine3D:
    """Disc centres about 37 mm apart on a lordotic curve, and the disc tilts."""
    gaps = rng.normal(37.0, 2.0, 4) * traits.size
    z = 60.0 + rng.uniform(-30, 30) - np.concatenate([[0.0], np.cumsum(gaps)])
    curve = rng.uniform(0.8, 2.0)
    y = rng.uniform(-10.0, 30.0) + curve * (np.arange(5) - 2.0) ** 2
    x = rng.normal(0.0, 3.0) + np.array([s[0] for s in traits.shift])
    tilts = np.deg2rad(np.asarray(_DISC_TILT_DEG) + rng.normal(0, 2.0, 5))
    return Spine3D(np.stack([x, y, z], axis=1), tilts)


def _sag_params(
    rng: np.random.Generator, traits: StudyTraits, latents: Mapping[str, float]
) -> dict:
    """The sagittal spine's sizes and its canal and foraminal severities per level."""
    return {
        "canal_half": float(rng.uniform(6.0, 7.5) * traits.canal),
        "body_depth": float(rng.uniform(30.0, 36.0) * traits.size),
        "disc_health": traits.disc_health,
        "canal": tuple(latents[column_name(CANAL, lvl)] for lvl in LEVELS),
        "left": tuple(latents[column_name(FORAMINAL["left"], lvl)] for lvl in LEVELS),
        "right": tuple(latents[column_name(FORAMINAL["right"], lvl)] for lvl in LEVELS),
        "foramen_x": tuple(float((15.0 + 1.5 * i) * traits.size) for i in range(len(LEVELS))),
        "skin": float(70.0 + traits.fat),
    }


def latents_for(rng: np.random.Generator, labels: Mapping[str, str | None]) -> dict[str, float]:
    """A severity latent for every label column (a missing grade draws any grade)."""
    return {col: severity_latent(labels.get(col), rng) for col in label_columns()}


def sample_body(
    rng: np.random.Generator, latents: Mapping[str, float], degeneration: float
) -> StudyBody:
    """Traits, spine, axial anatomy and sagittal parameters of a study, in that draw order."""
    traits = sample_traits(rng, degeneration=degeneration)
    spine = _sample_spine(rng, traits)
    anatomy = {
        lvl: axial_anatomy(
            traits,
            lvl,
            rng,
            canal=latents[column_name(CANAL, lvl)],
            left=latents[column_name(SUBARTICULAR["left"], lvl)],
            right=latents[column_name(SUBARTICULAR["right"], lvl)],
        )
        for lvl in LEVELS
    }
    return StudyBody(traits, spine, anatomy, _sag_params(rng, traits, latents))


# ----------------------------------------------------------------------------- sampled axial series


@dataclass(frozen=True)
class _AxialAcquisition:
    """The sampled acquisition of an axial series: matrix, slices and field of view."""

    rows: int
    cols: int
    spacing: float
    thickness: float
    between: float
    contiguous: bool
    cx0: float
    cy0: float
    rotation: float


def _axial_size(rng: np.random.Generator) -> tuple[int, int, float]:
    """Rows, columns and pixel spacing of an axial series (a 16-22 cm field of view)."""
    cols = int(choice(rng, (320, 384, 448, 512), (35, 35, 15, 15)))
    rows = cols
    if rng.random() < 0.1:  # now and then a non-square matrix
        rows = int(16 * round(cols * rng.uniform(0.75, 0.9) / 16))
    fov = rng.uniform(160.0, 220.0)  # lumbar axial fields of view are about 16-22 cm
    spacing = float(np.clip(fov / cols, 0.42, 0.8))
    return rows, cols, spacing


def _sample_axial_acquisition(rng: np.random.Generator) -> _AxialAcquisition:
    """Matrix, slice thickness and gap, stack kind and where the canal sits in the image."""
    rows, cols, spacing = _axial_size(rng)
    thickness = float(choice(rng, (3.0, 3.5, 4.0), (30, 30, 40)))
    between = thickness + float(choice(rng, (0.0, 0.3, 0.5, 1.0), (40, 20, 25, 15)))
    contiguous = rng.random() < 0.2
    cx0 = cols * (0.5 + rng.normal(0, 0.03))
    cy0 = rows * (0.47 + rng.normal(0, 0.03))
    rot = rng.normal(0, math.radians(3.0))
    return _AxialAcquisition(rows, cols, spacing, thickness, between, contiguous, cx0, cy0, rot)


def _contiguous_stack(
    rng: np.random.Generator,
    acq: _AxialAcquisition,
    levels: list[str],
    spine: Spine3D,
    traits: StudyTraits,
) -> tuple[list[dict], dict[str, Placement]]:
    """One untilted stack from above the top disc to below the bottom one.

    Each slice shows the anatomy of the disc nearest to it; the image frame is fixed,
    so each level's placement follows that disc's canal centre.
    """
    idx = [LEVELS.index(lvl) for lvl in levels]
    spacing = acq.spacing
    mean = spine.centres[idx].mean(axis=0)
    x0, y0 = mean[0] - acq.cx0 * spacing, mean[1] - acq.cy0 * spacing
    z_top = spine.centres[idx[0], 2] + rng.uniform(6, 12)
    z_bot = spine.centres[idx[-1], 2] - rng.uniform(6, 12)
    placements: dict[str, Placement] = {}
    for lvl, i in zip(levels, idx, strict=True):
        c = spine.centres[i]
        placements[lvl] = Placement(
            (c[0] - x0) / spacing,
            (c[1] - y0) / spacing,
            acq.rotation + rng.normal(0, 0.01),
            traits.size,
            spacing,
        )
    specs: list[dict] = []
    for z in np.arange(z_top, z_bot, -acq.between):
        j = int(np.argmin(np.abs(spine.centres[idx, 2] - z)))
        specs.append(
            {
                "level": levels[j],
                "d": float(z - spine.centres[idx[j], 2]),
                "position": (float(x0), float(y0), float(z)),
                "orientation": AXIAL_ORIENTATION,
            }
        )
    return specs, placements


def _per_level_stacks(
    rng: np.random.Generator,
    acq: _AxialAcquisition,
    levels: list[str],
    spine: Spine3D,
    traits: StudyTraits,
) -> tuple[list[dict], dict[str, Placement]]:
    """3-5 slices per disc, each small stack tilted along its disc plane."""
    spacing, between = acq.spacing, acq.between
    specs: list[dict] = []
    placements: dict[str, Placement] = {}
    for lvl in levels:
        i = LEVELS.index(lvl)
        n = int(choice(rng, (3, 4, 5), (20, 35, 45)))
        theta = float(spine.tilts[i] + rng.normal(0, math.radians(1.5)))
        r, c, nrm = axial_frame(theta)
        cx = acq.cx0 + rng.normal(0, 2.0)
        cy = acq.cy0 + rng.normal(0, 2.0)
        rot = acq.rotation + rng.normal(0, 0.02)
        placements[lvl] = Placement(cx, cy, rot, traits.size, spacing)
        delta = rng.uniform(-0.3, 0.3) * between
        for k in range(n):
            d = ((n - 1) / 2 - k) * between + delta
            pos = spine.centres[i] + d * nrm - cx * spacing * r - cy * spacing * c
            specs.append(
                {
                    "level": lvl,
                    "d": float(d),
                    "position": tuple(float(v) for v in pos),
                    "orientation": orientation(theta),
                }
            )
    return specs, placements


def _nearest_slices(specs: list[dict], levels: list[str]) -> dict[str, list[tuple[float, int]]]:
    """Per level, its slices as (distance from the disc, instance), nearest first."""
    near: dict[str, list[tuple[float, int]]] = {lvl: [] for lvl in levels}
    for s in specs:
        near[s["level"]].append((abs(s["d"]), s["instance"]))
    for lvl in near:
        near[lvl].sort()
    return near


def plan_axial_series(
    rng: np.random.Generator,
    *,
    study_id: int,
    series_id: int,
    series_number: int,
    levels: list[str],
    body: StudyBody,
) -> tuple[SeriesPlan, dict[str, list[tuple[float, int]]]]:
    """A sampled axial series over ``levels``; also returns per level the (|d|, instance) list.

    The sampled planner draws every axial series this way; the from-tables planner
    draws an axial series that no coordinate row refers to this way.
    """
    acq = _sample_axial_acquisition(rng)
    stack = _contiguous_stack if acq.contiguous else _per_level_stacks
    specs, placements = stack(rng, acq, levels, body.spine, body.traits)
    number_instances(specs, rng)
    specs.sort(key=lambda s: s["instance"])
    tags, intensity = series_tags(
        rng,
        study_id=study_id,
        series_id=series_id,
        description="Axial T2",
        series_number=series_number,
        rows=acq.rows,
        columns=acq.cols,
        pixel_spacing=acq.spacing,
        thickness=acq.thickness,
        between=acq.between,
        contrast="T2",
    )
    slices = tuple(
        SlicePlan(s["instance"], s["position"], s["orientation"], s["level"], s["d"]) for s in specs
    )
    plan = SeriesPlan(
        header=tags,
        contrast="T2",
        intensity=intensity,
        noise_sigma=float(rng.uniform(0.025, 0.045)),
        slices=slices,
        anatomy={lvl: body.anatomy[lvl] for lvl in levels},
        placements=placements,
    )
    return plan, _nearest_slices(specs, levels)
