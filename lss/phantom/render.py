"""Turn a :class:`~lss.phantom.plan.StudyPlan` into DICOM files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lss.phantom.axial import AxialSeriesRenderer
from lss.phantom.plan import SeriesPlan, StudyPlan, child_seeds
from lss.phantom.sagittal import SagittalSeriesRenderer
from lss.phantom.writer import write_slice

__all__ = ["render_series", "render_study"]


def render_series(plan: SeriesPlan, rng: np.random.Generator):
    """Yield ``(slice_plan, physical_image)`` for every slice of a series.

    Parameters
    ----------
    plan : SeriesPlan
        The series.
    rng : numpy.random.Generator
        Draws the bias and texture fields, then each slice's noise in order.

    Yields
    ------
    SlicePlan, (rows, columns) float32 ndarray
        Physical intensities (CSF on T2 about ``plan.intensity``).
    """
    h = plan.header
    shape = (h.rows, h.columns)
    if plan.is_axial:
        renderer = AxialSeriesRenderer(
            shape, plan.anatomy, plan.placements, rng, noise_sigma=plan.noise_sigma
        )
        for sl in plan.slices:
            yield sl, renderer.render(sl.level, sl.offset_mm, rng) * np.float32(plan.intensity)
    else:
        renderer = SagittalSeriesRenderer(
            shape, plan.contrast, rng, pixel_spacing=h.pixel_spacing, noise_sigma=plan.noise_sigma
        )
        for sl in plan.slices:
            yield sl, renderer.render(sl.spine, sl.offset_mm, rng) * np.float32(plan.intensity)


def render_study(plan: StudyPlan, root: str | Path) -> int:
    """Write every series of a study under ``root/<split>_images/<study_id>/<series_id>/``.

    Parameters
    ----------
    plan : StudyPlan
        The study.
    root : str or Path
        The phantom's root directory.

    Returns
    -------
    int
        Number of files written.
    """
    root = Path(root)
    seeds = child_seeds(plan.render_seed, len(plan.series))
    n = 0
    for series, seed in zip(plan.series, seeds, strict=True):
        folder = root / f"{plan.split}_images" / str(plan.study_id) / str(series.header.series_id)
        folder.mkdir(parents=True, exist_ok=True)
        for sl, image in render_series(series, np.random.default_rng(seed)):
            write_slice(
                folder / f"{sl.instance_number}.dcm",
                image,
                series.header,
                instance_number=sl.instance_number,
                position=np.asarray(sl.position),
                orientation=np.asarray(sl.orientation),
            )
            n += 1
    return n
