"""The from-tables planner: images invented behind one real study's table rows.

:func:`plan_table_study` keeps the study's rows as they are (series, instance
numbers, coordinates) and fits the phantom's anatomy to them: each series holds
every referenced instance (and three on either side), each subarticular coordinate
lies on its recess, each canal and foraminal coordinate on the sagittal spine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from lss.config import CONDITIONS, LEVELS, SEVERITIES
from lss.phantom.anatomy import AxialAnatomy, Placement, StudyTraits
from lss.phantom.plan.common import (
    CANAL,
    FORAMINAL,
    IMAGE_SIZES,
    SAG_ORIENTATION,
    SUBARTICULAR,
    SeriesPlan,
    SlicePlan,
    Spine3D,
    StudyBody,
    StudyPlan,
    axial_frame,
    child_seeds,
    choice,
    latents_for,
    orientation,
    plan_axial_series,
    round_size,
    sample_body,
    series_tags,
)
from lss.phantom.sagittal import FORAMEN_OFFSET_MM, SagittalSpine

__all__ = ["plan_table_study"]

#: {level: {side: (instance, x, y)}} of an axial series; for a sagittal series
#: {role: {level: (instance, x, y)}} with role 'canal', 'left' or 'right'.
Refs = dict[str, dict[str, tuple[int, float, float]]]

_DESCRIPTIONS = ("Axial T2", "Sagittal T1", "Sagittal T2/STIR")


# ----------------------------------------------------------------------------- axial series


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
    return place, replace(anat, **shifts)


def _axial_spacing(
    rng: np.random.Generator, refs: Refs, anatomy: dict[str, AxialAnatomy], traits: StudyTraits
) -> float:
    """Pixel spacing that puts the recesses of a left-right pair as far apart as the anatomy's."""
    seps = [
        np.hypot(r["left"][1] - r["right"][1], r["left"][2] - r["right"][2])
        / (2 * anatomy[lvl].recess_u * traits.size)
        for lvl, r in refs.items()
        if len(r) == 2
    ]
    if seps:
        return float(np.clip(1.0 / np.median(seps), 0.3, 1.2))
    return float(rng.uniform(0.5, 0.7))


def _axial_image_size(refs: Refs, spacing: float) -> int:
    """A square standard size holding the coordinates and the anatomy around the recesses.

    Room for the coordinates plus the anatomy beside and behind the recesses (muscles,
    fat, skin), then at least a 150 mm field of view.
    """
    xs = [ref[1] for r in refs.values() for ref in r.values()]
    ys = [ref[2] for r in refs.values() for ref in r.values()]
    must = max(max(xs), max(ys)) + 30.0
    nice = max(max(xs) + 45.0 / spacing, max(ys) + 75.0 / spacing, 150.0 / spacing)
    return round_size(max(must, min(nice, IMAGE_SIZES[-1])))


@dataclass(frozen=True)
class _AxialStack:
    """How a table axial series runs through its levels."""

    level_ref: dict[str, float]  # mean referenced instance number per level
    ordered: list[str]  # those levels, head to feet
    toward_feet: bool  # instance numbers grow toward the feet
    contiguous: bool  # one untilted stack, not one small tilted stack per disc


def _axial_stack(rng: np.random.Generator, refs: Refs) -> _AxialStack:
    """Read the numbering direction and the stack kind off the referenced instances."""
    level_ref = {lvl: float(np.mean([ref[0] for ref in r.values()])) for lvl, r in refs.items()}
    ordered = sorted(level_ref, key=LEVELS.index)
    trend = [level_ref[b] - level_ref[a] for a, b in zip(ordered, ordered[1:], strict=False)]
    toward_feet = (sum(trend) > 0) if trend else bool(rng.random() < 0.85)
    contiguous = bool(trend) and min(abs(t) for t in trend) >= 7
    return _AxialStack(level_ref, ordered, toward_feet, contiguous)


def _wanted_instances(refs: Refs) -> list[int]:
    """Every referenced instance and three on either side of it (none below 1)."""
    refs_inst = [ref[0] for r in refs.values() for ref in r.values()]
    return sorted({i for j in refs_inst for i in range(max(1, j - 3), j + 4)})


def _table_axial_slices(
    rng: np.random.Generator,
    refs: Refs,
    stack: _AxialStack,
    placements: dict[str, Placement],
    spine: Spine3D,
    spacing: float,
    between: float,
) -> list[SlicePlan]:
    """The slices of a table axial series: each shows the level whose instances are nearest."""
    level_ref = stack.level_ref
    slices = []
    for inst in _wanted_instances(refs):
        lvl = min(stack.ordered, key=lambda lv: (abs(inst - level_ref[lv]), LEVELS.index(lv)))
        sign = -1.0 if stack.toward_feet else 1.0
        d = sign * (inst - level_ref[lvl]) * between
        i = LEVELS.index(lvl)
        theta = (
            0.0 if stack.contiguous else float(spine.tilts[i] + rng.normal(0, math.radians(1.0)))
        )
        r, c, nrm = axial_frame(theta)
        place = placements[lvl]
        pos = spine.centres[i] + d * nrm - place.cx * spacing * r - place.cy * spacing * c
        slices.append(
            SlicePlan(inst, tuple(float(v) for v in pos), orientation(theta), lvl, float(d))
        )
    return slices


def _table_axial_series(
    rng: np.random.Generator,
    *,
    study_id: int,
    series_id: int,
    series_number: int,
    refs: Refs,
    body: StudyBody,
) -> SeriesPlan:
    """An axial series that holds exactly the referenced instances (and +-3 around them)."""
    spacing = _axial_spacing(rng, refs, body.anatomy, body.traits)
    size = _axial_image_size(refs, spacing)
    stack = _axial_stack(rng, refs)
    thickness = float(choice(rng, (3.0, 3.5, 4.0), (30, 30, 40)))
    between = thickness + float(choice(rng, (0.0, 0.3, 0.5), (50, 25, 25)))
    placements: dict[str, Placement] = {}
    fitted: dict[str, AxialAnatomy] = {}
    for lvl in stack.ordered:
        placements[lvl], fitted[lvl] = _fit_level(
            body.anatomy[lvl], refs[lvl], spacing, body.traits, rng
        )
    slices = _table_axial_slices(rng, refs, stack, placements, body.spine, spacing, between)
    tags, intensity = series_tags(
        rng,
        study_id=study_id,
        series_id=series_id,
        description="Axial T2",
        series_number=series_number,
        rows=size,
        columns=size,
        pixel_spacing=spacing,
        thickness=thickness,
        between=between,
        contrast="T2",
    )
    noise = float(rng.uniform(0.025, 0.045))
    return SeriesPlan(tags, "T2", intensity, noise, tuple(slices), fitted, placements)


# ----------------------------------------------------------------------------- sagittal series


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


def _sagittal_spacing(
    rng: np.random.Generator, raw: dict[str, dict[int, np.ndarray]], traits: StudyTraits
) -> float:
    """Pixel spacing that makes the labelled levels about 37 mm (times the build) apart."""
    gaps = []
    for pts in raw.values():
        idx = sorted(pts)
        gaps += [np.hypot(*(pts[b] - pts[a])) / (b - a) for a, b in zip(idx, idx[1:], strict=False)]
    gaps = [g for g in gaps if g > 5]
    if gaps:
        return float(np.clip(37.0 * traits.size / np.median(gaps), 0.3, 1.6))
    return float(rng.uniform(0.9, 1.1))


def _foramen_to_canal_line(line: np.ndarray, spacing: float) -> np.ndarray:
    """Move foramen coordinates back onto the canal line they hang off.

    The sagittal renderer draws each foramen FORAMEN_OFFSET_MM (up, forward) of the
    canal line, along the line's local frame; a probe spine gives that frame.
    """
    up, fwd = FORAMEN_OFFSET_MM
    points, zeros = tuple(map(tuple, line)), (0,) * 5
    probe = SagittalSpine(
        points, spacing, 7.0, 33.0, (0.5,) * 5, zeros, zeros, zeros, (18,) * 5, 80.0
    )
    _, tan, nor = probe.frames()
    k = 1.0 / spacing
    return line + tan[1:6] * up * k - nor[1:6] * fwd * k


def _sagittal_lines(
    rng: np.random.Generator, refs: Refs, traits: StudyTraits
) -> tuple[float, float, dict[str, np.ndarray]]:
    """Pixel spacing, disc step (px) and a five-point canal line per labelled role."""
    raw: dict[str, dict[int, np.ndarray]] = {}
    for role, rr in refs.items():
        if rr:
            raw[role] = {LEVELS.index(lvl): np.array(v[1:], dtype=float) for lvl, v in rr.items()}
    spacing = _sagittal_spacing(rng, raw, traits)
    step = 37.0 * traits.size / spacing
    lines: dict[str, np.ndarray] = {}
    for role, pts in raw.items():
        line = _fill_line(pts, step)
        if role in ("left", "right"):
            line = _foramen_to_canal_line(line, spacing)
        lines[role] = line
    return spacing, step, lines


def _sagittal_image_size(refs: Refs) -> int:
    """A square standard size holding every coordinate with a 30 px margin (at least 256)."""
    every = [np.array(v[1:]) for rr in refs.values() for v in rr.values()]
    if every:
        return round_size(max(256.0, max(max(p) for p in every) + 30.0))
    return 256


@dataclass(frozen=True)
class _LateralStack:
    """Where the sagittal slices sit across the patient.

    ``x = (instance - centre) * between * direction`` mm, + toward the patient's left.
    """

    centre: float
    between: float
    direction: float
    thickness: float


def _lateral_stack(
    rng: np.random.Generator, inst: dict[str, list[int]], foramen_x: float
) -> _LateralStack:
    """Slice spacing, direction and midline instance from the labelled instances.

    With both foramina labelled on different instances their distance fixes the
    spacing and the direction; otherwise the canal's instance (or one foramen's,
    moved by the foramen's distance from the midline) marks the midline.
    """
    i_l = float(np.mean(inst["left"])) if "left" in inst else None
    i_r = float(np.mean(inst["right"])) if "right" in inst else None
    i_c = float(np.median(inst["canal"])) if "canal" in inst else None
    direction = 1.0 if rng.random() < 0.5 else -1.0
    between = float(rng.uniform(3.5, 4.5))
    if i_l is not None and i_r is not None and i_l != i_r:
        direction = 1.0 if i_l > i_r else -1.0
        between = float(np.clip(2 * foramen_x / abs(i_l - i_r), 2.5, 6.0))
        between_lr = i_c is not None and min(i_l, i_r) < i_c < max(i_l, i_r)
        i0 = i_c if between_lr else (i_l + i_r) / 2
    elif i_c is not None:
        i0 = i_c
    elif i_l is not None:
        i0 = i_l - direction * foramen_x / between
    elif i_r is not None:
        i0 = i_r + direction * foramen_x / between
    else:
        i0 = 8.0
    thickness = min(between, float(rng.uniform(3.0, 4.0)))
    return _LateralStack(i0, between, direction, thickness)


def _sagittal_slice_content(
    i: int,
    x: float,
    roles: dict[int, str],
    refs: Refs,
    params: dict,
    lines: dict[str, np.ndarray],
) -> tuple[float, str]:
    """The lateral position a slice is drawn for and whose canal line it uses.

    A labelled slice shows what its label needs (the midline, or the foramen of its
    levels); any other slice shows its own position, with the line of the side it is on.
    """
    role = roles.get(i)
    if role == "canal":
        return 0.0, "canal"
    if role in ("left", "right"):
        sign = 1.0 if role == "left" else -1.0
        levels_here = [LEVELS.index(lvl) for lvl, v in refs[role].items() if v[0] == i]
        return sign * float(np.mean([params["foramen_x"][j] for j in levels_here])), role
    if x > 8 and "left" in lines:
        return x, "left"
    if x < -8 and "right" in lines:
        return x, "right"
    return x, "canal" if "canal" in lines else "none"


def _sagittal_slices(
    rng: np.random.Generator,
    refs: Refs,
    params: dict,
    lines: dict[str, np.ndarray],
    spacing: float,
    foramen_x: float,
) -> tuple[list[SlicePlan], _LateralStack]:
    """The slices of a table sagittal series: the labelled instances and three either side."""
    inst = {role: [v[0] for v in rr.values()] for role, rr in refs.items() if rr}
    stack = _lateral_stack(rng, inst, foramen_x)
    roles: dict[int, str] = {}
    for role in ("right", "left", "canal"):  # later roles win on a shared instance
        for i in inst.get(role, []):
            roles[i] = role
    wanted = sorted({i for ii in inst.values() for j in ii for i in range(max(1, j - 3), j + 4)})
    if not wanted:
        wanted = list(range(1, 16))
        stack = replace(stack, centre=8.0)
    y0, z0 = rng.uniform(-80.0, -40.0), rng.uniform(80.0, 160.0)
    fallback = np.mean(list(lines.values()), axis=0)
    spines = {
        role: SagittalSpine(
            points=tuple((float(a), float(b)) for a, b in lines.get(role, fallback)),
            pixel_spacing=spacing,
            **params,
        )
        for role in ("canal", "left", "right", "none")
    }
    slices = []
    for i in wanted:
        x = (i - stack.centre) * stack.between * stack.direction
        content, role = _sagittal_slice_content(i, x, roles, refs, params, lines)
        slices.append(
            SlicePlan(
                i, (float(x), float(y0), float(z0)), SAG_ORIENTATION, None, content, spines[role]
            )
        )
    return slices, stack


def _table_sagittal_series(
    rng: np.random.Generator,
    *,
    study_id: int,
    series_id: int,
    series_number: int,
    description: str,
    refs: Refs,
    params: dict,
    traits: StudyTraits,
) -> SeriesPlan:
    """A sagittal series holding the referenced instances (+-3), spine fitted to the rows.

    ``refs`` maps ``'canal'``, ``'left'``, ``'right'`` to {level: (instance, x, y)}.
    """
    contrast = "T1" if description == "Sagittal T1" else ("T2" if rng.random() < 0.6 else "STIR")
    spacing, step, lines = _sagittal_lines(rng, refs, traits)
    size = _sagittal_image_size(refs)
    if not lines:  # a series nobody labelled: a centred default spine
        base = np.array([size * 0.55, size * 0.5]) + np.outer(np.arange(5) - 2.0, [0.0, step])
        lines["canal"] = base
    foramen_x = float(np.mean(params["foramen_x"]))
    slices, stack = _sagittal_slices(rng, refs, params, lines, spacing, foramen_x)
    tags, intensity = series_tags(
        rng,
        study_id=study_id,
        series_id=series_id,
        description=description,
        series_number=series_number,
        rows=size,
        columns=size,
        pixel_spacing=spacing,
        thickness=stack.thickness,
        between=stack.between,
        contrast=contrast,
    )
    noise = float(rng.uniform(0.025, 0.04))
    return SeriesPlan(tags, contrast, intensity, noise, tuple(slices))


# ----------------------------------------------------------------------------- the study


def _rows_by_series(
    study_id: int,
    series: Sequence[tuple[int, str]],
    coordinates: Sequence[tuple[int, int, str, str, float, float]],
) -> tuple[dict[int, str], dict[int, list]]:
    """The study's series (id -> description) and its coordinate rows per series.

    Fails on an unknown description or a row naming a series the study does not list.
    """
    known = {int(sid): desc for sid, desc in series}
    for sid, desc in known.items():
        if desc not in _DESCRIPTIONS:
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
    return known, by_series


_CONDITION_KEY = {title: key for key, title in CONDITIONS.items()}
_SIDE_OF_SUBARTICULAR = {v: k for k, v in SUBARTICULAR.items()}
_SIDE_OF_FORAMINAL = {v: k for k, v in FORAMINAL.items()}


def _axial_refs(study_id: int, sid: int, rows: list) -> Refs:
    """{level: {side: (instance, x, y)}} of an axial series' subarticular rows."""
    refs: Refs = {}
    for _, inst, cond, lvl, x, y in rows:
        side = _SIDE_OF_SUBARTICULAR.get(_CONDITION_KEY.get(cond))
        if side is None:
            raise ValueError(
                f"Study {study_id}, series {sid} (Axial T2): "
                f"cannot draw '{cond}' on an axial series"
            )
        refs.setdefault(lvl, {})[side] = (int(inst), float(x), float(y))
    return refs


def _sagittal_refs(study_id: int, sid: int, desc: str, rows: list) -> Refs:
    """{role: {level: (instance, x, y)}} of a sagittal series' canal and foraminal rows."""
    refs: Refs = {"canal": {}, "left": {}, "right": {}}
    for _, inst, cond, lvl, x, y in rows:
        key = _CONDITION_KEY.get(cond)
        role = "canal" if key == CANAL else _SIDE_OF_FORAMINAL.get(key)
        if role is None:
            raise ValueError(
                f"Study {study_id}, series {sid} ({desc}): "
                f"cannot draw '{cond}' on a sagittal series"
            )
        refs[role][lvl] = (int(inst), float(x), float(y))
    return refs


def _plan_table_series(
    rng: np.random.Generator,
    study_id: int,
    sid: int,
    desc: str,
    number: int,
    rows: list,
    body: StudyBody,
) -> SeriesPlan:
    """One series of the study: fitted to its rows, or sampled where it has none (axial)."""
    if desc != "Axial T2":
        return _table_sagittal_series(
            rng,
            study_id=study_id,
            series_id=sid,
            series_number=number,
            description=desc,
            refs=_sagittal_refs(study_id, sid, desc, rows),
            params=body.sagittal,
            traits=body.traits,
        )
    refs = _axial_refs(study_id, sid, rows)
    if refs:
        return _table_axial_series(
            rng, study_id=study_id, series_id=sid, series_number=number, refs=refs, body=body
        )
    plan, _ = plan_axial_series(
        rng, study_id=study_id, series_id=sid, series_number=number, levels=list(LEVELS), body=body
    )
    return plan


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
    known, by_series = _rows_by_series(study_id, series, coordinates)
    s_struct, s_labels, s_geom, s_render = child_seeds(seed, 4)
    rl, rg = np.random.default_rng(s_labels), np.random.default_rng(s_geom)
    latents = latents_for(rl, labels or {})
    worst = [SEVERITIES.index(v) for v in (labels or {}).values() if v is not None]
    degeneration = (float(np.mean(worst)) - 0.35) * 2.0 if worst else 0.0
    body = sample_body(rg, latents, degeneration)
    plans = [
        _plan_table_series(rg, study_id, sid, desc, number, by_series[sid], body)
        for number, (sid, desc) in enumerate(known.items(), start=1)
    ]
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
