"""The sampled planner: a study whose series, labels and coordinates resemble the real tables.

:func:`plan_sampled_study` draws, from the study's own seed, which levels the axial
series cover, correlated grades with the real class frequencies, the study's body,
two sagittal series and one to three axial series, and the coordinate rows a reader
would have clicked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.special import ndtr

from lss.config import CONDITIONS, LEVELS, SEVERITIES, column_name
from lss.phantom.plan.common import (
    CANAL,
    FORAMINAL,
    SAG_ORIENTATION,
    SUBARTICULAR,
    CoordinateRow,
    SeriesPlan,
    SlicePlan,
    Spine3D,
    StudyPlan,
    child_seeds,
    choice,
    jitter,
    latents_for,
    number_instances,
    plan_axial_series,
    sample_body,
    series_tags,
)
from lss.phantom.sagittal import SagittalSpine, foramen_pixel
from lss.phantom.stats import (
    AXIAL_BOTTOM_SHORT_PERCENT,
    AXIAL_SERIES_PERCENT,
    AXIAL_TOP_LEVEL_PERCENT,
    LABEL_PERCENT,
    MISSING_COORDINATE_PERCENT,
)

__all__ = ["plan_sampled_study"]


# ----------------------------------------------------------------------------- labels


def _grade(u: float, normal: float, moderate: float, severe: float) -> str:
    """The grade whose share of the column's real frequencies holds the quantile ``u``."""
    total = normal + moderate + severe
    if u < normal / total:
        return SEVERITIES[0]
    if u < (normal + moderate) / total:
        return SEVERITIES[1]
    return SEVERITIES[2]


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
        for cond in (CANAL, *FORAMINAL.values())
    }
    labels: dict[str, str | None] = {}
    for cond in CONDITIONS:
        for i, lvl in enumerate(LEVELS):
            col = column_name(cond, lvl)
            normal, moderate, severe, _ = LABEL_PERCENT[col]
            z = 0.5 * study + 0.5 * level[i] + rng.standard_normal() * math.sqrt(0.41)
            sd = cond.split("_")[0]
            z += 0.3 * side[sd][i] if sd in side else rng.standard_normal() * 0.3
            grade: str | None = _grade(float(ndtr(z)), normal, moderate, severe)
            if cond in SUBARTICULAR.values():
                if lvl not in covered or rng.random() * 100 < 0.15:
                    grade = None
            elif missing_condition[cond]:
                grade = None
            labels[col] = grade
    return labels, float(study)


# ----------------------------------------------------------------------------- axial coverage


def _axial_coverage(rng: np.random.Generator) -> list[str]:
    """The levels the study's axial series cover together (from the top level down)."""
    top = choice(rng, list(AXIAL_TOP_LEVEL_PERCENT), list(AXIAL_TOP_LEVEL_PERCENT.values()))
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


# ----------------------------------------------------------------------------- sagittal series


def _sag_size(rng: np.random.Generator) -> tuple[int, float]:
    """Matrix size and pixel spacing of a sagittal series (a 25-30 cm field of view)."""
    size = int(choice(rng, (256, 320), (80, 20)))
    return size, float(rng.uniform(250.0, 300.0) / size)


def _plan_sagittal_series(
    rng: np.random.Generator,
    *,
    study_id: int,
    series_id: int,
    series_number: int,
    description: str,
    spine: Spine3D,
    params: dict,
) -> SeriesPlan:
    """A sampled sagittal series: 11 or 13 slices across the spine, numbered from one side."""
    size, spacing = _sag_size(rng)
    contrast = "T1" if description == "Sagittal T1" else ("T2" if rng.random() < 0.6 else "STIR")
    thickness = float(rng.uniform(3.0, 4.0))
    between = thickness + float(rng.uniform(0.3, 0.8))
    n = int(choice(rng, (11, 13), (60, 40)))  # enough to reach both foramina (about 14-23 mm out)
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
    number_instances(specs, rng, toward_feet=bool(rng.random() < 0.5), start=1)
    specs.sort(key=lambda s: s["instance"])
    tags, intensity = series_tags(
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
        SlicePlan(s["instance"], s["position"], SAG_ORIENTATION, None, s["x"], sag) for s in specs
    )
    return SeriesPlan(tags, contrast, intensity, float(rng.uniform(0.025, 0.04)), slices)


# ----------------------------------------------------------------------------- coordinates


def _sampled_axial_coordinates(
    rng: np.random.Generator,
    study_id: int,
    labels: Mapping[str, str | None],
    axial: list[tuple[SeriesPlan, dict]],
) -> list[CoordinateRow]:
    """Subarticular rows: each on a recess, on a slice near its disc, of one or two series."""
    rows: list[CoordinateRow] = []
    for lvl in LEVELS:
        holders = [(plan, near) for plan, near in axial if lvl in near]
        if not holders:
            continue
        first = holders[int(rng.integers(len(holders)))]
        same_instance = rng.random() < 0.7
        for side in ("left", "right"):
            col = column_name(SUBARTICULAR[side], lvl)
            if labels[col] is None:
                continue
            plan, near = first if rng.random() < 0.8 else holders[int(rng.integers(len(holders)))]
            options = near[lvl]
            pick = (
                options[0] if (same_instance or len(options) < 2 or side == "left") else options[1]
            )
            x, y = plan.placements[lvl].to_pixel(*plan.anatomy[lvl].recess(side))
            dx, dy = jitter(rng, plan.header.pixel_spacing)
            condition = CONDITIONS[SUBARTICULAR[side]]
            rows.append((study_id, plan.header.series_id, pick[1], condition, lvl, x + dx, y + dy))
    return rows


def _sampled_sagittal_coordinates(
    rng: np.random.Generator,
    study_id: int,
    labels: Mapping[str, str | None],
    t1: SeriesPlan,
    t2: SeriesPlan,
) -> list[CoordinateRow]:
    """Canal rows on the midline T2 slice, foraminal rows on the T1 slice through each foramen."""
    rows: list[CoordinateRow] = []
    by_x = sorted(t2.slices, key=lambda s: abs(s.offset_mm))
    for lvl in LEVELS:
        if labels[column_name(CANAL, lvl)] is None:
            continue
        sl = by_x[0] if rng.random() < 0.9 else by_x[1]
        pts = sl.spine.points[LEVELS.index(lvl)]
        dx, dy = jitter(rng, t2.header.pixel_spacing)
        rows.append(
            (
                study_id,
                t2.header.series_id,
                sl.instance_number,
                CONDITIONS[CANAL],
                lvl,
                pts[0] + dx,
                pts[1] + dy,
            )
        )
    for side, sign in (("left", 1.0), ("right", -1.0)):
        for i, lvl in enumerate(LEVELS):
            if labels[column_name(FORAMINAL[side], lvl)] is None:
                continue
            sl = min(t1.slices, key=lambda s: abs(s.offset_mm - sign * s.spine.foramen_x[i]))
            x, y = foramen_pixel(sl.spine, lvl)
            dx, dy = jitter(rng, t1.header.pixel_spacing)
            condition = CONDITIONS[FORAMINAL[side]]
            rows.append(
                (study_id, t1.header.series_id, sl.instance_number, condition, lvl, x + dx, y + dy)
            )
    return rows


def _sampled_coordinates(
    rng: np.random.Generator,
    study_id: int,
    labels: Mapping[str, str | None],
    axial: list[tuple[SeriesPlan, dict]],
    t1: SeriesPlan,
    t2: SeriesPlan,
) -> list[CoordinateRow]:
    """Every coordinate row of a train study, a few dropped as in the real table, sorted."""
    coords = _sampled_axial_coordinates(rng, study_id, labels, axial)
    coords += _sampled_sagittal_coordinates(rng, study_id, labels, t1, t2)
    keep = [c for c in coords if rng.random() * 100 >= MISSING_COORDINATE_PERCENT]
    return sorted(keep, key=lambda c: (c[1], c[2], c[3], c[4]))


# ----------------------------------------------------------------------------- the study


def _check_request(study_id: int, series_ids: Sequence[int], split: str) -> None:
    """Fail on a split other than train/test or fewer than five series ids."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got '{split}'")
    if len(series_ids) < 5:
        raise ValueError(f"Study {study_id}: need 5 series ids, got {len(series_ids)}")


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
    _check_request(study_id, series_ids, split)
    s_struct, s_labels, s_geom, s_render = child_seeds(seed, 4)
    rs, rl, rg = (np.random.default_rng(s) for s in (s_struct, s_labels, s_geom))

    n_axial = int(choice(rs, list(AXIAL_SERIES_PERCENT), list(AXIAL_SERIES_PERCENT.values())))
    covered = _axial_coverage(rs)
    per_series = _split_coverage(rs, covered, n_axial)
    labels, degeneration = _sample_labels(rl, covered)
    body = sample_body(rg, latents_for(rl, labels), degeneration)
    ids = [int(s) for s in series_ids]
    order = rs.permutation(len(ids))  # which id goes to which series (ids are random anyway)
    sag_t2_id, sag_t1_id, *axial_ids = [ids[i] for i in order]
    numbers = iter(range(1, 10))

    t1, t2 = (
        _plan_sagittal_series(
            rg,
            study_id=study_id,
            series_id=sid,
            series_number=next(numbers),
            description=description,
            spine=body.spine,
            params=body.sagittal,
        )
        for sid, description in ((sag_t1_id, "Sagittal T1"), (sag_t2_id, "Sagittal T2/STIR"))
    )
    axial = [
        plan_axial_series(
            rg,
            study_id=study_id,
            series_id=axial_ids[k],
            series_number=next(numbers),
            levels=levels,
            body=body,
        )
        for k, levels in enumerate(per_series)
    ]
    coords = _sampled_coordinates(rg, study_id, labels, axial, t1, t2) if split == "train" else []
    series = sorted([t1, t2, *(plan for plan, _ in axial)], key=lambda s: s.header.series_id)
    return StudyPlan(
        study_id=int(study_id),
        split=split,
        labels=labels if split == "train" else None,
        series=tuple(series),
        coordinates=tuple(coords),
        render_seed=s_render,
    )
