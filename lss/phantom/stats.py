"""Summary statistics of the real RSNA 2024 tables that the sampled phantom imitates.

These numbers were computed once from the competition's ``train.csv``,
``train_series_descriptions.csv`` and ``train_label_coordinates.csv`` (1,975
studies) and rounded. They are marginal percentages, not data: no row, identifier or
coordinate of the real tables is stored in this package.
"""

from __future__ import annotations

from lss.config import CONDITIONS, LEVELS, column_name

__all__ = [
    "LABEL_PERCENT",
    "AXIAL_SERIES_PERCENT",
    "AXIAL_TOP_LEVEL_PERCENT",
    "AXIAL_BOTTOM_SHORT_PERCENT",
    "MISSING_COORDINATE_PERCENT",
    "label_columns",
]

#: Per ``train.csv`` column: percent Normal/Mild, Moderate, Severe among labelled
#: studies, then percent of studies with the cell empty. Rounded from the real table
#: (e.g. left_subarticular_stenosis_l4_l5: 45.0 / 31.6 / 23.4 of the 1,972 labelled).
LABEL_PERCENT: dict[str, tuple[float, float, float, float]] = {
    "spinal_canal_stenosis_l1_l2": (95.5, 3.4, 1.1, 0.05),
    "spinal_canal_stenosis_l2_l3": (89.7, 7.6, 2.7, 0.05),
    "spinal_canal_stenosis_l3_l4": (82.2, 11.7, 6.2, 0.05),
    "spinal_canal_stenosis_l4_l5": (75.1, 12.0, 12.9, 0.05),
    "spinal_canal_stenosis_l5_s1": (96.5, 2.6, 1.0, 0.05),
    "left_neural_foraminal_narrowing_l1_l2": (96.7, 3.2, 0.1, 0.10),
    "left_neural_foraminal_narrowing_l2_l3": (90.8, 8.7, 0.6, 0.10),
    "left_neural_foraminal_narrowing_l3_l4": (77.1, 20.8, 2.0, 0.10),
    "left_neural_foraminal_narrowing_l4_l5": (61.0, 31.9, 7.1, 0.10),
    "left_neural_foraminal_narrowing_l5_s1": (63.2, 26.4, 10.4, 0.10),
    "right_neural_foraminal_narrowing_l1_l2": (96.1, 3.2, 0.7, 0.41),
    "right_neural_foraminal_narrowing_l2_l3": (91.2, 8.5, 0.3, 0.41),
    "right_neural_foraminal_narrowing_l3_l4": (76.9, 21.0, 2.1, 0.41),
    "right_neural_foraminal_narrowing_l4_l5": (61.4, 32.0, 6.6, 0.41),
    "right_neural_foraminal_narrowing_l5_s1": (65.1, 25.2, 9.7, 0.41),
    "left_subarticular_stenosis_l1_l2": (93.3, 5.1, 1.5, 8.30),
    "left_subarticular_stenosis_l2_l3": (82.1, 13.5, 4.4, 4.15),
    "left_subarticular_stenosis_l3_l4": (67.1, 23.0, 9.8, 0.15),
    "left_subarticular_stenosis_l4_l5": (45.0, 31.6, 23.4, 0.15),
    "left_subarticular_stenosis_l5_s1": (71.7, 20.8, 7.5, 0.56),
    "right_subarticular_stenosis_l1_l2": (92.6, 6.1, 1.3, 8.15),
    "right_subarticular_stenosis_l2_l3": (83.3, 12.8, 3.9, 4.15),
    "right_subarticular_stenosis_l3_l4": (67.0, 23.0, 10.0, 0.10),
    "right_subarticular_stenosis_l4_l5": (45.2, 31.5, 23.3, 0.10),
    "right_subarticular_stenosis_l5_s1": (71.1, 20.1, 8.8, 0.35),
}

#: Percent of studies with 1, 2 and 3 Axial T2 series (real: 83.0 / 15.5 / 1.4, and
#: one study with 4, folded into 3 here).
AXIAL_SERIES_PERCENT: dict[int, float] = {1: 83.0, 2: 15.5, 3: 1.5}

#: Highest level the axial series reach. Most missing subarticular labels at the
#: upper levels are studies whose axial series start lower down.
AXIAL_TOP_LEVEL_PERCENT: dict[str, float] = {"L1/L2": 91.7, "L2/L3": 4.15, "L3/L4": 4.15}

#: Percent of studies whose axial series stop at L4/L5 (no L5/S1 label).
AXIAL_BOTTOM_SHORT_PERCENT: float = 0.4

#: Percent of labelled cells with no coordinate row (real: 146 of 48,803).
MISSING_COORDINATE_PERCENT: float = 0.3


def label_columns() -> list[str]:
    """The 25 condition-level columns of ``train.csv``, in the real file's order.

    >>> label_columns()[:2]
    ['spinal_canal_stenosis_l1_l2', 'spinal_canal_stenosis_l2_l3']
    >>> len(label_columns())
    25
    """
    return [column_name(cond, lvl) for cond in CONDITIONS for lvl in LEVELS]


if list(LABEL_PERCENT) != label_columns():  # pragma: no cover - guards an edit of either list
    raise RuntimeError("LABEL_PERCENT is out of step with lss.config.CONDITIONS x LEVELS")
