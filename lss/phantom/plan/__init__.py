"""Plans: which series, slices, geometry, labels and coordinates a study gets.

A :class:`StudyPlan` holds everything needed to write one study except the pixels:
the ``train.csv`` row, the series with their DICOM tags and slice geometry, and
the coordinate rows. Planning is cheap; :mod:`lss.phantom.render` turns a plan into
files. Two planners exist:

- :func:`plan_sampled_study` (:mod:`~lss.phantom.plan.sampled`) samples everything
  like the real tables do;
- :func:`plan_table_study` (:mod:`~lss.phantom.plan.from_tables`) follows one real
  study's tables (rows, instance numbers, coordinates) and invents only the images
  behind them.

What both share (the dataclasses, seeds, the study's body, series tags and the
sampled axial series) is in :mod:`~lss.phantom.plan.common`, which also describes
the patient frame.
"""

from lss.phantom.plan.common import (
    IMAGE_SIZES,
    CoordinateRow,
    SeriesPlan,
    SlicePlan,
    StudyPlan,
    child_seeds,
)
from lss.phantom.plan.from_tables import plan_table_study
from lss.phantom.plan.sampled import plan_sampled_study

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
