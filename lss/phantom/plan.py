"""Plans: which series, slices, geometry, labels and coordinates a study gets.

A :class:`StudyPlan` holds everything needed to write one study except the pixels:
the ``train.csv`` row, the series with their DICOM headers and slice geometry, and
the coordinate rows. Planning is cheap; :mod:`lss.phantom.render` turns a plan into
files. Two planners exist:

- :func:`plan_sampled_study` samples everything like the real tables do;
- :func:`plan_table_study` follows one real study's tables (rows, instance numbers,
  coordinates) and invents only the images behind them.

Geometry is in the patient's LPS frame (x toward the patient's left, y toward the
back, z toward the head). Axial slices use ImageOrientationPatient
``[1, 0, 0, 0, cos t, sin t]`` (exactly ``[1, 0, 0, 0, 1, 0]`` for a contiguous
stack), so image columns run to the patient's left and rows to the back; sagittal
slices use ``[0, 1, 0, 0, 0, -1]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from lss.config import CONDITIONS, LEVELS, SEVERITIES, column_name
from lss.phantom.anatomy import (
    AxialAnatomy,
    Placement,
    StudyTraits,
    axial_anatomy,
    sample_traits,
    severity_latent,
)
from lss.phantom.sagittal import FORAMEN_OFFSET_MM, SagittalSpine, foramen_pixel
from lss.phantom.stats import (
    AXIAL_BOTTOM_SHORT_PERCENT,
    AXIAL_SERIES_PERCENT,
    AXIAL_TOP_LEVEL_PERCENT,
    LABEL_PERCENT,
    MISSING_COORDINATE_PERCENT,
    label_columns,
)
from lss.phantom.writer import SeriesTags

__all__ = [
    "SlicePlan",
    "SeriesPlan",
    "StudyPlan",
    "CoordinateRow",
    "plan_sampled_study",
    "plan_table_study",
    "IMAGE_SIZES",
    "child_seeds",
]

#: Image sizes to choose from (pixels).
IMAGE_SIZES: tuple[int, ...] = (256, 320, 384, 448, 512, 576, 640, 704, 768, 832, 896, 960, 1024)

#: (study_id, series_id, instance_number, condition, level, x, y)
CoordinateRow = tuple[int, int, int, str, str, float, float]

_SUBARTICULAR = {"left": "left_subarticular_stenosis", "right": "right_subarticular_stenosis"}
_FORAMINAL = {
    "left": "left_neural_foraminal_narrowing",
    "right": "right_neural_foraminal_narrowing",
}
_CANAL = "spinal_canal_stenosis"
_AXIAL_ORIENTATION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
_SAG_ORIENTATION = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
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


def _choice(rng: np.random.Generator, options: Sequence, percent: Sequence[float]):
    p = np.asarray(percent, dtype=float)
    return options[int(rng.choice(len(options), p=p / p.sum()))]


def _round_size(n: float) -> int:
    """Smallest entry of IMAGE_SIZES that is >= n."""
    for size in IMAGE_SIZES:
        if size >= n:
            return size
    raise ValueError(f"Needs an image of {n:.0f} px, more than the largest size {IMAGE_SIZES[-1]}")


def _axial_frame(theta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row direction, column direction and normal of an axial slice tilted by theta."""
    r = np.array([1.0, 0.0, 0.0])
    c = np.array([0.0, math.cos(theta), math.sin(theta)])
    return r, c, np.cross(r, c)


def _orientation(theta: float) -> tuple[float, ...]:
    if theta == 0.0:
        return _AXIAL_ORIENTATION
    r, c, _ = _axial_frame(theta)
    return tuple(float(v) for v in (*r, *c))


def _header(
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
    """A header with a random intensity scale, rescale slope and bit depth."""
    intensity = float(rng.uniform(350.0, 2500.0))
    slope = 1.0 if rng.random() < 0.85 else float(rng.choice([0.5, 2.0, 2.5, 4.0]))
    peak = intensity * 2.2 / slope  # CSF at the brightest part of the bias field, plus noise
    bits = 12 if (slope >= 1.0 and peak < 4000 and rng.random() < 0.4) else 16
    tr, te, ti = {
        "T2": (float(rng.uniform(3000, 5500)), float(rng.uniform(85, 120)), None),
        "T1": (float(rng.uniform(400, 700)), float(rng.uniform(8, 14)), None),
        "STIR": (float(rng.uniform(3000, 5000)), float(rng.uniform(40, 70)), 150.0),
    }[contrast]
    header = SeriesTags(
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
    return header, intensity


def _number(
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


@dataclass(frozen=True)
class _Spine3D:
    """Canal centre at each disc (LPS mm) and the disc planes' tilts (radians)."""

    centres: np.ndarray  # (5, 3)
    tilts: np.ndarray  # (5,)


def _sample_spine(rng: np.random.Generator, traits: StudyTraits) -> _Spine3D:
    gaps = rng.normal(37.0, 2.0, 4) * traits.size
    z = 60.0 + rng.uniform(-30, 30) - np.concatenate([[0.0], np.cumsum(gaps)])
    curve = rng.uniform(0.8, 2.0)
    y = rng.uniform(-10.0, 30.0) + curve * (np.arange(5) - 2.0) ** 2
    x = rng.normal(0.0, 3.0) + np.array([s[0] for s in traits.shift])
    tilts = np.deg2rad(np.asarray(_DISC_TILT_DEG) + rng.normal(0, 2.0, 5))
    return _Spine3D(np.stack([x, y, z], axis=1), tilts)


def _axial_size(rng: np.random.Generator) -> tuple[int, int, float]:
    cols = int(_choice(rng, (320, 384, 448, 512), (35, 35, 15, 15)))
    rows = cols
    if rng.random() < 0.1:  # now and then a non-square matrix
        rows = int(16 * round(cols * rng.uniform(0.75, 0.9) / 16))
    fov = rng.uniform(160.0, 220.0)  # lumbar axial fields of view are about 16-22 cm
    spacing = float(np.clip(fov / cols, 0.42, 0.8))
    return rows, cols, spacing


def _jitter(rng: np.random.Generator, spacing: float, mm: float = 0.3) -> tuple[float, float]:
    dx, dy = rng.normal(0.0, mm / spacing, 2)
    return float(dx), float(dy)


# ----------------------------------------------------------------------------- labels


def _sample_labels(
    rng: np.random.Generator, covered: Sequence[str]
) -> tuple[dict[str, str | None], float]:
    """Correlated grades with the real marginals (a Gaussian copula), and missing cells.

    A study factor (degeneration), a level factor and a side-and-level factor are
    shared between cells; each cell's normal score is cut at the quantiles of its
    column's real class frequencies, so marginals match while severities cluster.
    """
    study = rng.standard_normal()
    level = rng.standard_normal(len(LEVELS))
    side = {s: rng.standard_normal(len(LEVELS)) for s in ("left", "right")}
    missing_condition = {
        cond: rng.random() * 100 < LABEL_PERCENT[column_name(cond, LEVELS[0])][3]
        for cond in (_CANAL, *_FORAMINAL.values())
    }
    labels: dict[str, str | None] = {}
    for cond in CONDITIONS:
        for i, lvl in enumerate(LEVELS):
            col = column_name(cond, lvl)
            normal, moderate, severe, _ = LABEL_PERCENT[col]
            z = 0.5 * study + 0.5 * level[i] + rng.standard_normal() * math.sqrt(0.41)
            sd = cond.split("_")[0]
            z += 0.3 * side[sd][i] if sd in side else rng.standard_normal() * 0.3
            u = float(ndtr(z))
            total = normal + moderate + severe
            grade = (
                SEVERITIES[0]
                if u < normal / total
                else SEVERITIES[1]
                if u < (normal + moderate) / total
                else SEVERITIES[2]
            )
            if cond in _SUBARTICULAR.values():
                if lvl not in covered or rng.random() * 100 < 0.15:
                    grade = None
            elif missing_condition[cond]:
                grade = None
            labels[col] = grade
    return labels, float(study)


def _latents(rng: np.random.Generator, labels: Mapping[str, str | None]) -> dict[str, float]:
    return {col: severity_latent(labels.get(col), rng) for col in label_columns()}


# ----------------------------------------------------------------------------- sampled mode


def _axial_coverage(rng: np.random.Generator) -> list[str]:
    top = _choice(rng, list(AXIAL_TOP_LEVEL_PERCENT), list(AXIAL_TOP_LEVEL_PERCENT.values()))
    bottom = "L4/L5" if rng.random() * 100 < AXIAL_BOTTOM_SHORT_PERCENT else "L5/S1"
    return list(LEVELS[LEVELS.index(top) : LEVELS.index(bottom) + 1])


def _split_coverage(rng: np.random.Generator, covered: list[str], n: int) -> list[list[str]]:
    """Levels covered by each of ``n`` axial series (every covered level at least once)."""
    if n == 1 or len(covered) < 2:
        return [covered] * n
    if n == 2:
        r = rng.random()
        if r < 0.45:  # the series repeated
            return [covered, covered]
        if r < 0.85:  # upper levels in one series, lower in another
            k = int(rng.integers(1, len(covered)))
            overlap = 1 if rng.random() < 0.3 else 0
            return [covered[: k + overlap], covered[k:]]
        return [covered, covered[-int(rng.integers(1, 3)) :]]  # a few levels redone
    if len(covered) >= 3 and rng.random() < 0.6:
        cuts = sorted(rng.choice(np.arange(1, len(covered)), size=2, replace=False))
        return [covered[: cuts[0]], covered[cuts[0] : cuts[1]], covered[cuts[1] :]]
    k = int(rng.integers(1, len(covered)))
    return [covered, covered[:k], covered[k:]]


def _plan_axial_series(
    rng: np.random.Generator,
    *,
    study_id: int,
    series_id: int,
    series_number: int,
    levels: list[str],
    spine: _Spine3D,
    anatomy: dict[str, AxialAnatomy],
    traits: StudyTraits,
) -> tuple[SeriesPlan, dict[str, list[tuple[float, int]]]]:
    """A sampled axial series over ``levels``; also returns per level the (|d|, instance) list."""
    rows, cols, spacing = _axial_size(rng)
    thickness = float(_choice(rng, (3.0, 3.5, 4.0), (30, 30, 40)))
    between = thickness + float(_choice(rng, (0.0, 0.3, 0.5, 1.0), (40, 20, 25, 15)))
    contiguous = rng.random() < 0.2
    cx0 = cols * (0.5 + rng.normal(0, 0.03))
    cy0 = rows * (0.47 + rng.normal(0, 0.03))
    rot = rng.normal(0, math.radians(3.0))
    idx = [LEVELS.index(lvl) for lvl in levels]
    specs: list[dict] = []
    placements: dict[str, Placement] = {}
    if contiguous:
        mean = spine.centres[idx].mean(axis=0)
        x0, y0 = mean[0] - cx0 * spacing, mean[1] - cy0 * spacing
        z_top = spine.centres[idx[0], 2] + rng.uniform(6, 12)
        z_bot = spine.centres[idx[-1], 2] - rng.uniform(6, 12)
        for lvl, i in zip(levels, idx, strict=True):
            c = spine.centres[i]
            placements[lvl] = Placement(
                (c[0] - x0) / spacing,
                (c[1] - y0) / spacing,
                rot + rng.normal(0, 0.01),
                traits.size,
                spacing,
            )
        for z in np.arange(z_top, z_bot, -between):
            j = int(np.argmin(np.abs(spine.centres[idx, 2] - z)))
            specs.append(
                {
                    "level": levels[j],
                    "d": float(z - spine.centres[idx[j], 2]),
                    "position": (float(x0), float(y0), float(z)),
                    "orientation": _AXIAL_ORIENTATION,
                }
            )
    else:
        for lvl, i in zip(levels, idx, strict=True):
            n = int(_choice(rng, (3, 4, 5), (20, 35, 45)))
            theta = float(spine.tilts[i] + rng.normal(0, math.radians(1.5)))
            r, c, nrm = _axial_frame(theta)
            cx = cx0 + rng.normal(0, 2.0)
            cy = cy0 + rng.normal(0, 2.0)
            placements[lvl] = Placement(cx, cy, rot + rng.normal(0, 0.02), traits.size, spacing)
            delta = rng.uniform(-0.3, 0.3) * between
            for k in range(n):
                d = ((n - 1) / 2 - k) * between + delta
                pos = spine.centres[i] + d * nrm - cx * spacing * r - cy * spacing * c
                specs.append(
                    {
                        "level": lvl,
                        "d": float(d),
                        "position": tuple(float(v) for v in pos),
                        "orientation": _orientation(theta),
                    }
                )
    _number(specs, rng)
    specs.sort(key=lambda s: s["instance"])
    header, intensity = _header(
        rng,
        study_id=study_id,
        series_id=series_id,
        description="Axial T2",
        series_number=series_number,
        rows=rows,
        columns=cols,
        pixel_spacing=spacing,
        thickness=thickness,
        between=between,
        contrast="T2",
    )
    slices = tuple(
        SlicePlan(s["instance"], s["position"], s["orientation"], s["level"], s["d"]) for s in specs
    )
    near: dict[str, list[tuple[float, int]]] = {lvl: [] for lvl in levels}
    for s in specs:
        near[s["level"]].append((abs(s["d"]), s["instance"]))
    for lvl in near:
        near[lvl].sort()
    plan = SeriesPlan(
        header=header,
        contrast="T2",
        intensity=intensity,
        noise_sigma=float(rng.uniform(0.025, 0.045)),
        slices=slices,
        anatomy={lvl: anatomy[lvl] for lvl in levels},
        placements=placements,
    )
    return plan, near


def _sag_params(
    rng: np.random.Generator, traits: StudyTraits, latents: Mapping[str, float]
) -> dict:
    return {
        "canal_half": float(rng.uniform(6.0, 7.5) * traits.canal),
        "body_depth": float(rng.uniform(30.0, 36.0) * traits.size),
        "disc_health": traits.disc_health,
        "canal": tuple(latents[column_name(_CANAL, lvl)] for lvl in LEVELS),
        "left": tuple(latents[column_name(_FORAMINAL["left"], lvl)] for lvl in LEVELS),
        "right": tuple(latents[column_name(_FORAMINAL["right"], lvl)] for lvl in LEVELS),
        "foramen_x": tuple(float((15.0 + 1.5 * i) * traits.size) for i in range(len(LEVELS))),
        "skin": float(70.0 + traits.fat),
    }


def _sag_size(rng: np.random.Generator) -> tuple[int, float]:
    size = int(_choice(rng, (256, 320), (80, 20)))
    return size, float(rng.uniform(250.0, 300.0) / size)


def _plan_sagittal_series(
    rng: np.random.Generator,
    *,
    study_id: int,
    series_id: int,
    series_number: int,
    description: str,
    spine: _Spine3D,
    params: dict,
) -> SeriesPlan:
    size, spacing = _sag_size(rng)
    contrast = "T1" if description == "Sagittal T1" else ("T2" if rng.random() < 0.6 else "STIR")
    thickness = float(rng.uniform(3.0, 4.0))
    between = thickness + float(rng.uniform(0.3, 0.8))
    n = int(_choice(rng, (11, 13), (60, 40)))  # enough to reach both foramina (about 14-23 mm out)
    mid = spine.centres[1:4].mean(axis=0)
    y0 = mid[1] - size * rng.uniform(0.5, 0.6) * spacing
    z0 = mid[2] + size * rng.uniform(0.45, 0.55) * spacing
    points = tuple(
        (float((c[1] - y0) / spacing), float((z0 - c[2]) / spacing)) for c in spine.centres
    )
    sag = SagittalSpine(points=points, pixel_spacing=spacing, **params)
    delta = rng.uniform(-0.5, 0.5) * between
    xs = [((k - (n - 1) / 2) * between + delta) for k in range(n)]
    specs = [{"x": float(x), "position": (float(x), float(y0), float(z0))} for x in xs]
    # Sagittal stacks run right-to-left or left-to-right ("toward_feet" just flips the order).
    _number(specs, rng, toward_feet=bool(rng.random() < 0.5), start=1)
    specs.sort(key=lambda s: s["instance"])
    header, intensity = _header(
        rng,
        study_id=study_id,
        series_id=series_id,
        description=description,
        series_number=series_number,
        rows=size,
        columns=size,
        pixel_spacing=spacing,
        thickness=thickness,
        between=between,
        contrast=contrast,
    )
    slices = tuple(
        SlicePlan(s["instance"], s["position"], _SAG_ORIENTATION, None, s["x"], sag) for s in specs
    )
    return SeriesPlan(header, contrast, intensity, float(rng.uniform(0.025, 0.04)), slices)


def plan_sampled_study(
    study_id: int,
    series_ids: Sequence[int],
    seed: np.random.SeedSequence,
    *,
    split: str = "train",
) -> StudyPlan:
    """Sample one study like the real tables: series, labels, geometry, coordinates.

    Parameters
    ----------
    study_id : int
        The study's identifier.
    series_ids : sequence of int
        At least 5 unused series identifiers; the first ones are used.
    seed : numpy.random.SeedSequence
        The study's own seed: the plan depends on nothing else.
    split : str
        ``'train'`` (labels and coordinates) or ``'test'`` (images only).

    Returns
    -------
    StudyPlan
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got '{split}'")
    if len(series_ids) < 5:
        raise ValueError(f"Study {study_id}: need 5 series ids, got {len(series_ids)}")
    s_struct, s_labels, s_geom, s_render = child_seeds(seed, 4)
    rs, rl, rg = (np.random.default_rng(s) for s in (s_struct, s_labels, s_geom))

    n_axial = int(_choice(rs, list(AXIAL_SERIES_PERCENT), list(AXIAL_SERIES_PERCENT.values())))
    covered = _axial_coverage(rs)
    per_series = _split_coverage(rs, covered, n_axial)
    labels, degeneration = _sample_labels(rl, covered)
    latents = _latents(rl, labels)

    traits = sample_traits(rg, degeneration=degeneration)
    spine = _sample_spine(rg, traits)
    anatomy = {
        lvl: axial_anatomy(
            traits,
            lvl,
            rg,
            canal=latents[column_name(_CANAL, lvl)],
            left=latents[column_name(_SUBARTICULAR["left"], lvl)],
            right=latents[column_name(_SUBARTICULAR["right"], lvl)],
        )
        for lvl in LEVELS
    }
    ids = [int(s) for s in series_ids]
    order = rs.permutation(len(ids))  # which id goes to which series (ids are random anyway)
    sag_t2_id, sag_t1_id, *axial_ids = [ids[i] for i in order]
    numbers = iter(range(1, 10))

    series: list[SeriesPlan] = []
    params = _sag_params(rg, traits, latents)
    t1 = _plan_sagittal_series(
        rg,
        study_id=study_id,
        series_id=sag_t1_id,
        series_number=next(numbers),
        description="Sagittal T1",
        spine=spine,
        params=params,
    )
    t2 = _plan_sagittal_series(
        rg,
        study_id=study_id,
        series_id=sag_t2_id,
        series_number=next(numbers),
        description="Sagittal T2/STIR",
        spine=spine,
        params=params,
    )
    series += [t1, t2]
    axial: list[tuple[SeriesPlan, dict]] = []
    for k, levels in enumerate(per_series):
        plan, near = _plan_axial_series(
            rg,
            study_id=study_id,
            series_id=axial_ids[k],
            series_number=next(numbers),
            levels=levels,
            spine=spine,
            anatomy=anatomy,
            traits=traits,
        )
        axial.append((plan, near))
        series.append(plan)

    coords: list[CoordinateRow] = []
    if split == "train":
        coords += _sampled_axial_coordinates(rg, study_id, labels, axial)
        coords += _sampled_sagittal_coordinates(rg, study_id, labels, t1, t2)
        keep = [c for c in coords if rg.random() * 100 >= MISSING_COORDINATE_PERCENT]
        coords = sorted(keep, key=lambda c: (c[1], c[2], c[3], c[4]))
    series.sort(key=lambda s: s.header.series_id)
    return StudyPlan(
        study_id=int(study_id),
        split=split,
        labels=labels if split == "train" else None,
        series=tuple(series),
        coordinates=tuple(coords),
        render_seed=s_render,
    )


def _sampled_axial_coordinates(
    rng: np.random.Generator,
    study_id: int,
    labels: Mapping[str, str | None],
    axial: list[tuple[SeriesPlan, dict]],
) -> list[CoordinateRow]:
    rows: list[CoordinateRow] = []
    for lvl in LEVELS:
        holders = [(plan, near) for plan, near in axial if lvl in near]
        if not holders:
            continue
        first = holders[int(rng.integers(len(holders)))]
        same_instance = rng.random() < 0.7
        for side in ("left", "right"):
            col = column_name(_SUBARTICULAR[side], lvl)
            if labels[col] is None:
                continue
            plan, near = first if rng.random() < 0.8 else holders[int(rng.integers(len(holders)))]
            options = near[lvl]
            pick = (
                options[0] if (same_instance or len(options) < 2 or side == "left") else options[1]
            )
            x, y = plan.placements[lvl].to_pixel(*plan.anatomy[lvl].recess(side))
            dx, dy = _jitter(rng, plan.header.pixel_spacing)
            rows.append(
                (
                    study_id,
                    plan.header.series_id,
                    pick[1],
                    CONDITIONS[_SUBARTICULAR[side]],
                    lvl,
                    x + dx,
                    y + dy,
                )
            )
    return rows


def _sampled_sagittal_coordinates(
    rng: np.random.Generator,
    study_id: int,
    labels: Mapping[str, str | None],
    t1: SeriesPlan,
    t2: SeriesPlan,
) -> list[CoordinateRow]:
    rows: list[CoordinateRow] = []
    by_x = sorted(t2.slices, key=lambda s: abs(s.offset_mm))
    for lvl in LEVELS:
        if labels[column_name(_CANAL, lvl)] is None:
            continue
        sl = by_x[0] if rng.random() < 0.9 else by_x[1]
        pts = sl.spine.points[LEVELS.index(lvl)]
        dx, dy = _jitter(rng, t2.header.pixel_spacing)
        rows.append(
            (
                study_id,
                t2.header.series_id,
                sl.instance_number,
                CONDITIONS[_CANAL],
                lvl,
                pts[0] + dx,
                pts[1] + dy,
            )
        )
    for side, sign in (("left", 1.0), ("right", -1.0)):
        for i, lvl in enumerate(LEVELS):
            if labels[column_name(_FORAMINAL[side], lvl)] is None:
                continue
            sl = min(t1.slices, key=lambda s: abs(s.offset_mm - sign * s.spine.foramen_x[i]))
            x, y = foramen_pixel(sl.spine, lvl)
            dx, dy = _jitter(rng, t1.header.pixel_spacing)
            rows.append(
                (
                    study_id,
                    t1.header.series_id,
                    sl.instance_number,
                    CONDITIONS[_FORAMINAL[side]],
                    lvl,
                    x + dx,
                    y + dy,
                )
            )
    return rows


# ----------------------------------------------------------------------------- from tables


def _fit_level(
    anat: AxialAnatomy,
    refs: Mapping[str, tuple[int, float, float]],
    spacing: float,
    traits: StudyTraits,
    rng: np.random.Generator,
) -> tuple[Placement, AxialAnatomy]:
    """Place a level's anatomy so that each labelled recess lies on its coordinate.

    Rotation and scale come from the left-right pair when both exist (clamped to
    plausible values); whatever the clamps leave is taken up by shifting that
    recess (its fat, root and walls) onto the coordinate.
    """
    targets = {side: np.array(ref[1:], dtype=float) for side, ref in refs.items()}
    rot = float(rng.normal(0, math.radians(3.0)))
    scale = traits.size
    if len(targets) == 2:
        v = targets["left"] - targets["right"]
        rot = float(np.clip(math.atan2(v[1], v[0]), -math.radians(20), math.radians(20)))
        scale = float(np.clip(np.hypot(*v) * spacing / (2 * anat.recess_u), 0.75, 1.35))
    k = scale / spacing
    cr, sr = math.cos(rot), math.sin(rot)

    def offset(u: float, v: float) -> np.ndarray:
        return k * np.array([u * cr - v * sr, u * sr + v * cr])

    # Centre so that the mean of the recesses lands on the mean of the targets.
    model = {side: np.array(anat.recess(side)) for side in targets}
    centre = np.mean([targets[s] - offset(*model[s]) for s in targets], axis=0)
    place = Placement(float(centre[0]), float(centre[1]), rot, scale, spacing)
    shifts = {}
    for side, target in targets.items():
        px = np.array(place.to_pixel(*model[side]))
        err = (target - px) / k  # pixels -> rotated mm
        shifts[f"{side}_offset"] = (
            float(err[0] * cr + err[1] * sr),
            float(-err[0] * sr + err[1] * cr),
        )
    from dataclasses import replace

    return place, replace(anat, **shifts)


def _table_axial_series(
    rng: np.random.Generator,
    *,
    study_id: int,
    series_id: int,
    series_number: int,
    refs: dict[str, dict[str, tuple[int, float, float]]],
    spine: _Spine3D,
    anatomy: dict[str, AxialAnatomy],
    traits: StudyTraits,
) -> SeriesPlan:
    """An axial series that holds exactly the referenced instances (and +-3 around them)."""
    seps = [
        np.hypot(r["left"][1] - r["right"][1], r["left"][2] - r["right"][2])
        / (2 * anatomy[lvl].recess_u * traits.size)
        for lvl, r in refs.items()
        if len(r) == 2
    ]
    spacing = (
        float(np.clip(1.0 / np.median(seps), 0.3, 1.2)) if seps else float(rng.uniform(0.5, 0.7))
    )
    xs = [ref[1] for r in refs.values() for ref in r.values()]
    ys = [ref[2] for r in refs.values() for ref in r.values()]
    # Room for the coordinates plus the anatomy beside and behind the recesses (muscles,
    # fat, skin), then at least a 150 mm field of view; square, a standard size.
    must = max(max(xs), max(ys)) + 30.0
    nice = max(max(xs) + 45.0 / spacing, max(ys) + 75.0 / spacing, 150.0 / spacing)
    size = _round_size(max(must, min(nice, IMAGE_SIZES[-1])))
    rows = cols = size

    level_ref = {lvl: float(np.mean([ref[0] for ref in r.values()])) for lvl, r in refs.items()}
    ordered = sorted(level_ref, key=LEVELS.index)
    trend = [level_ref[b] - level_ref[a] for a, b in zip(ordered, ordered[1:], strict=False)]
    toward_feet = (sum(trend) > 0) if trend else bool(rng.random() < 0.85)
    contiguous = bool(trend) and min(abs(t) for t in trend) >= 7
    thickness = float(_choice(rng, (3.0, 3.5, 4.0), (30, 30, 40)))
    between = thickness + float(_choice(rng, (0.0, 0.3, 0.5), (50, 25, 25)))

    placements: dict[str, Placement] = {}
    fitted: dict[str, AxialAnatomy] = {}
    for lvl in ordered:
        placements[lvl], fitted[lvl] = _fit_level(anatomy[lvl], refs[lvl], spacing, traits, rng)

    wanted = sorted(
        {
            i
            for r in refs.values()
            for ref in r.values()
            for i in range(max(1, ref[0] - 3), ref[0] + 4)
        }
    )
    slices = []
    for inst in wanted:
        lvl = min(ordered, key=lambda lv: (abs(inst - level_ref[lv]), LEVELS.index(lv)))
        sign = -1.0 if toward_feet else 1.0
        d = sign * (inst - level_ref[lvl]) * between
        i = LEVELS.index(lvl)
        theta = 0.0 if contiguous else float(spine.tilts[i] + rng.normal(0, math.radians(1.0)))
        r, c, nrm = _axial_frame(theta)
        place = placements[lvl]
        pos = spine.centres[i] + d * nrm - place.cx * spacing * r - place.cy * spacing * c
        slices.append(
            SlicePlan(inst, tuple(float(v) for v in pos), _orientation(theta), lvl, float(d))
        )
    header, intensity = _header(
        rng,
        study_id=study_id,
        series_id=series_id,
        description="Axial T2",
        series_number=series_number,
        rows=rows,
        columns=cols,
        pixel_spacing=spacing,
        thickness=thickness,
        between=between,
        contrast="T2",
    )
    return SeriesPlan(
        header, "T2", intensity, float(rng.uniform(0.025, 0.045)), tuple(slices), fitted, placements
    )


def _fill_line(points: Mapping[int, np.ndarray], step_px: float) -> np.ndarray:
    """Five (col, row) points from those given (by level index): inter/extrapolated."""
    idx = sorted(points)
    arr = np.array([points[i] for i in idx], dtype=float)
    out = np.zeros((len(LEVELS), 2))
    if len(idx) == 1:
        for j in range(len(LEVELS)):
            out[j] = arr[0] + np.array([0.0, (j - idx[0]) * step_px])
        return out
    for dim in range(2):
        coef = np.polyfit(idx, arr[:, dim], 1)
        out[:, dim] = np.polyval(coef, np.arange(len(LEVELS)))
        for i, val in zip(idx, arr[:, dim], strict=True):
            out[i, dim] = val
    return out


def _table_sagittal_series(
    rng: np.random.Generator,
    *,
    study_id: int,
    series_id: int,
    series_number: int,
    description: str,
    refs: dict[str, dict[str, tuple[int, float, float]]],
    params: dict,
    traits: StudyTraits,
) -> SeriesPlan:
    """A sagittal series holding the referenced instances (+-3), spine fitted to the rows.

    ``refs`` maps ``'canal'``, ``'left'``, ``'right'`` to {level: (instance, x, y)}.
    """
    contrast = "T1" if description == "Sagittal T1" else ("T2" if rng.random() < 0.6 else "STIR")
    up, fwd = FORAMEN_OFFSET_MM
    # Centre-line points per role, in pixels (foramen coordinates moved back to the canal line).
    raw: dict[str, dict[int, np.ndarray]] = {}
    for role, rr in refs.items():
        if rr:
            raw[role] = {LEVELS.index(lvl): np.array(v[1:], dtype=float) for lvl, v in rr.items()}
    gaps = []
    for pts in raw.values():
        idx = sorted(pts)
        gaps += [np.hypot(*(pts[b] - pts[a])) / (b - a) for a, b in zip(idx, idx[1:], strict=False)]
    gaps = [g for g in gaps if g > 5]
    spacing = (
        float(np.clip(37.0 * traits.size / np.median(gaps), 0.3, 1.6))
        if gaps
        else float(rng.uniform(0.9, 1.1))
    )
    step = 37.0 * traits.size / spacing
    lines: dict[str, np.ndarray] = {}
    for role, pts in raw.items():
        line = _fill_line(pts, step)
        if role in ("left", "right"):
            probe = SagittalSpine(
                tuple(map(tuple, line)),
                spacing,
                7.0,
                33.0,
                (0.5,) * 5,
                (0,) * 5,
                (0,) * 5,
                (0,) * 5,
                (18,) * 5,
                80.0,
            )
            _, tan, nor = probe.frames()
            k = 1.0 / spacing
            line = line + tan[1:6] * up * k - nor[1:6] * fwd * k
        lines[role] = line
    every = [np.array(v[1:]) for rr in refs.values() for v in rr.values()]
    if every:
        size = _round_size(max(256.0, max(max(p) for p in every) + 30.0))
    else:
        size = 256
    if not lines:  # a series nobody labelled: a centred default spine
        base = np.array([size * 0.55, size * 0.5]) + np.outer(np.arange(5) - 2.0, [0.0, step])
        lines["canal"] = base
    fallback = np.mean(list(lines.values()), axis=0)

    def spine_for(role: str) -> SagittalSpine:
        line = lines.get(role, fallback)
        return SagittalSpine(
            points=tuple((float(a), float(b)) for a, b in line), pixel_spacing=spacing, **params
        )

    inst = {role: [v[0] for v in rr.values()] for role, rr in refs.items() if rr}
    fx = float(np.mean(params["foramen_x"]))
    i_l = float(np.mean(inst["left"])) if "left" in inst else None
    i_r = float(np.mean(inst["right"])) if "right" in inst else None
    i_c = float(np.median(inst["canal"])) if "canal" in inst else None
    direction = 1.0 if rng.random() < 0.5 else -1.0
    between = float(rng.uniform(3.5, 4.5))
    if i_l is not None and i_r is not None and i_l != i_r:
        direction = 1.0 if i_l > i_r else -1.0
        between = float(np.clip(2 * fx / abs(i_l - i_r), 2.5, 6.0))
        i0 = i_c if (i_c is not None and min(i_l, i_r) < i_c < max(i_l, i_r)) else (i_l + i_r) / 2
    elif i_c is not None:
        i0 = i_c
    elif i_l is not None:
        i0 = i_l - direction * fx / between
    elif i_r is not None:
        i0 = i_r + direction * fx / between
    else:
        i0 = 8.0
    thickness = min(between, float(rng.uniform(3.0, 4.0)))
    roles: dict[int, str] = {}
    for role in ("right", "left", "canal"):  # later roles win on a shared instance
        for i in inst.get(role, []):
            roles[i] = role
    wanted = sorted({i for ii in inst.values() for j in ii for i in range(max(1, j - 3), j + 4)})
    if not wanted:
        wanted = list(range(1, 16))
        i0 = 8.0
    y0, z0 = rng.uniform(-80.0, -40.0), rng.uniform(80.0, 160.0)
    slices = []
    for i in wanted:
        x = (i - i0) * between * direction
        role = roles.get(i)
        if role == "canal":
            content, sp = 0.0, spine_for("canal")
        elif role in ("left", "right"):
            sign = 1.0 if role == "left" else -1.0
            levels_here = [LEVELS.index(lvl) for lvl, v in refs[role].items() if v[0] == i]
            content = sign * float(np.mean([params["foramen_x"][j] for j in levels_here]))
            sp = spine_for(role)
        else:
            content = x
            sp = spine_for(
                "left"
                if x > 8 and "left" in lines
                else "right"
                if x < -8 and "right" in lines
                else "canal"
                if "canal" in lines
                else "none"
            )
        slices.append(
            SlicePlan(
                i, (float(x), float(y0), float(z0)), _SAG_ORIENTATION, None, float(content), sp
            )
        )
    header, intensity = _header(
        rng,
        study_id=study_id,
        series_id=series_id,
        description=description,
        series_number=series_number,
        rows=size,
        columns=size,
        pixel_spacing=spacing,
        thickness=thickness,
        between=between,
        contrast=contrast,
    )
    return SeriesPlan(header, contrast, intensity, float(rng.uniform(0.025, 0.04)), tuple(slices))


def plan_table_study(
    study_id: int,
    labels: Mapping[str, str | None] | None,
    series: Sequence[tuple[int, str]],
    coordinates: Sequence[tuple[int, int, str, str, float, float]],
    seed: np.random.SeedSequence,
    *,
    split: str = "train",
) -> StudyPlan:
    """Plan the images behind one real study's table rows.

    Parameters
    ----------
    study_id : int
        The study.
    labels : mapping or None
        Its ``train.csv`` row (column -> severity or ``None``); ``None`` for a test study.
    series : sequence of (series_id, series_description)
        Its rows of the series-descriptions table.
    coordinates : sequence of (series_id, instance_number, condition, level, x, y)
        Its rows of ``train_label_coordinates.csv``.
    seed : numpy.random.SeedSequence
        Seeds the invented anatomy and the noise.
    split : str
        ``'train'`` or ``'test'``.

    Returns
    -------
    StudyPlan
        Its ``coordinates`` are the input rows (the caller writes the real tables verbatim).

    Raises
    ------
    ValueError
        If a coordinate row names a series the study does not list, a description is
        unknown, or a condition sits on a series kind the phantom cannot draw it on.
    """
    known = {int(sid): desc for sid, desc in series}
    for sid, desc in known.items():
        if desc not in ("Axial T2", "Sagittal T1", "Sagittal T2/STIR"):
            raise ValueError(f"Study {study_id}, series {sid}: unknown series description '{desc}'")
    by_series: dict[int, list] = {sid: [] for sid in known}
    for row in coordinates:
        sid = int(row[0])
        if sid not in known:
            raise ValueError(
                f"Study {study_id}: coordinate row names series {sid}, "
                "which the study does not list"
            )
        by_series[sid].append(row)
    s_struct, s_labels, s_geom, s_render = child_seeds(seed, 4)
    rl, rg = np.random.default_rng(s_labels), np.random.default_rng(s_geom)
    latents = _latents(rl, labels or {})
    worst = [SEVERITIES.index(v) for v in (labels or {}).values() if v is not None]
    degeneration = (float(np.mean(worst)) - 0.35) * 2.0 if worst else 0.0
    traits = sample_traits(rg, degeneration=degeneration)
    spine = _sample_spine(rg, traits)
    anatomy = {
        lvl: axial_anatomy(
            traits,
            lvl,
            rg,
            canal=latents[column_name(_CANAL, lvl)],
            left=latents[column_name(_SUBARTICULAR["left"], lvl)],
            right=latents[column_name(_SUBARTICULAR["right"], lvl)],
        )
        for lvl in LEVELS
    }
    params = _sag_params(rg, traits, latents)
    inverse = {title: key for key, title in CONDITIONS.items()}
    plans: list[SeriesPlan] = []
    for number, (sid, desc) in enumerate(known.items(), start=1):
        rows = by_series[sid]
        if desc == "Axial T2":
            refs: dict[str, dict] = {}
            for _, inst, cond, lvl, x, y in rows:
                key = inverse.get(cond)
                side = {v: k for k, v in _SUBARTICULAR.items()}.get(key)
                if side is None:
                    raise ValueError(
                        f"Study {study_id}, series {sid} (Axial T2): "
                        f"cannot draw '{cond}' on an axial series"
                    )
                refs.setdefault(lvl, {})[side] = (int(inst), float(x), float(y))
            if refs:
                plan = _table_axial_series(
                    rg,
                    study_id=study_id,
                    series_id=sid,
                    series_number=number,
                    refs=refs,
                    spine=spine,
                    anatomy=anatomy,
                    traits=traits,
                )
            else:
                plan, _ = _plan_axial_series(
                    rg,
                    study_id=study_id,
                    series_id=sid,
                    series_number=number,
                    levels=list(LEVELS),
                    spine=spine,
                    anatomy=anatomy,
                    traits=traits,
                )
        else:
            refs = {"canal": {}, "left": {}, "right": {}}
            for _, inst, cond, lvl, x, y in rows:
                key = inverse.get(cond)
                role = "canal" if key == _CANAL else {v: k for k, v in _FORAMINAL.items()}.get(key)
                if role is None:
                    raise ValueError(
                        f"Study {study_id}, series {sid} ({desc}): "
                        f"cannot draw '{cond}' on a sagittal series"
                    )
                refs[role][lvl] = (int(inst), float(x), float(y))
            plan = _table_sagittal_series(
                rg,
                study_id=study_id,
                series_id=sid,
                series_number=number,
                description=desc,
                refs=refs,
                params=params,
                traits=traits,
            )
        plans.append(plan)
    plans.sort(key=lambda s: s.header.series_id)
    coords = tuple(
        (int(study_id), int(r[0]), int(r[1]), str(r[2]), str(r[3]), float(r[4]), float(r[5]))
        for r in coordinates
    )
    return StudyPlan(
        int(study_id),
        split,
        dict(labels) if labels is not None else None,
        tuple(plans),
        coords,
        s_render,
    )
