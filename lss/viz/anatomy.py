"""Figures of anatomy: a phantom axial slice with its structures named, and the labelled
slices of some studies with a zoom on the labelled point.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from lss.config import (
    SEVERITIES,
)
from lss.phantom.landmarks import LabelledSlice
from lss.viz._style import (
    FIGURE_WIDTH_IN,
    SMALL_PT,
    TITLE_PT,
    data_title,
    display_range,
    page_subplots,
)
from lss.viz.images import plot_slice

__all__ = [
    "plot_axial_anatomy",
    "plot_labelled_examples",
]


_WHOLE = ("intervertebral disc", "thecal sac (CSF)", "psoas", "multifidus", "erector spinae",
          "subcutaneous fat")


_ZOOM = ("intervertebral disc", "thecal sac (CSF)", "nerve rootlets", "left subarticular recess",
         "right subarticular recess", "left facet joint", "right facet joint",
         "ligamentum flavum")


def _annotate(ax: Axes, landmarks: Mapping[str, tuple[float, float]], names: Sequence[str],
              box: tuple[float, float, float, float]) -> None:
    """Label ``names`` with arrows from text stacked beside the panel, left and right of
    the image (so that no label covers the tissue it or another one names).

    ``box`` is (x left, x right, y top, y bottom) in pixels.
    """
    x0, x1, top, bottom = box
    mid = (x0 + x1) / 2
    groups: dict[str, list[str]] = {"left": [], "right": []}
    for name in names:
        x, _ = landmarks[name]
        if "left " in name or name.startswith("left"):
            groups["right"].append(name)  # the patient's left is on the image's right
        elif "right " in name or name.startswith("right"):
            groups["left"].append(name)
        else:
            groups["left" if x < mid else "right"].append(name)
    # Balance the midline structures between both sides.
    while len(groups["left"]) > len(groups["right"]) + 1:
        movable = [n for n in groups["left"] if abs(landmarks[n][0] - mid) < 0.05 * (x1 - x0)]
        if not movable:
            break
        groups["left"].remove(movable[0])
        groups["right"].append(movable[0])
    for side, members in groups.items():
        members = sorted(members, key=lambda n: landmarks[n][1])
        n = len(members)
        for i, name in enumerate(members):
            ty = top + (bottom - top) * (i + 1) / (n + 1)
            ax.annotate(
                name.replace(" subarticular", "\nsubarticular"),
                xy=landmarks[name], xytext=(-0.03 if side == "left" else 1.03, ty),
                textcoords=("axes fraction", "data"),
                ha="right" if side == "left" else "left", va="center", fontsize=SMALL_PT,
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85},
                arrowprops={"arrowstyle": "->", "color": "tab:orange", "lw": 1.2,
                            "shrinkA": 2, "shrinkB": 1},
            )


def plot_axial_anatomy(
    labelled: LabelledSlice,
    *,
    zoom_mm: float = 30.0,
    axes: Sequence[Axes] | np.ndarray | None = None,
    data_label: str | None = None,
) -> np.ndarray:
    """An axial slice with its structures named: the whole slice above a zoom on the canal,
    the names beside each image.

    Parameters
    ----------
    labelled : LabelledSlice
        From :func:`lss.phantom.labelled_axial_slice`.
    zoom_mm : float
        Half-width of the zoomed panel around the thecal sac, mm.
    axes : two matplotlib Axes or None
        The names are written beside each image, outside it: leave room left and right.
    data_label : str or None
        Added to the titles.

    Returns
    -------
    (2,) ndarray of Axes
    """
    if axes is None:
        _, axes = page_subplots(2, 1, height=8.2)
    axes = np.asarray(axes, dtype=object).ravel()
    if axes.size != 2:
        raise ValueError(f"axes must be two Axes, got {axes.size}")
    img, marks = labelled.image, labelled.landmarks
    h, w = img.shape
    lo, hi = display_range(img, None, None)
    whole, zoom = axes
    plot_slice(img, ax=whole, orientation="axial", vmin=lo, vmax=hi,
               title=data_title(f"Axial T2 at {labelled.level}: the whole slice", data_label))
    whole.title.set_fontsize(TITLE_PT)
    _annotate(whole, marks, _WHOLE, (0, w - 1, 0, h - 1))
    cx, cy = marks["thecal sac (CSF)"]
    r = zoom_mm / labelled.pixel_spacing
    box = (cx - r, cx + r, cy - 1.1 * r, cy + 0.9 * r)  # x left, x right, y top, y bottom
    plot_slice(img, ax=zoom, orientation="axial", vmin=lo, vmax=hi,
               title=data_title(f"Zoom on the spinal canal ({2 * zoom_mm:.0f} mm wide)",
                                data_label))
    zoom.title.set_fontsize(TITLE_PT)
    zoom.set_xlim(box[0], box[1])
    zoom.set_ylim(box[3], box[2])  # rows run down
    _annotate(zoom, marks, _ZOOM, box)
    rect = plt.Rectangle((box[0], box[2]), box[1] - box[0], box[3] - box[2], fill=False,
                         color="tab:orange", linewidth=1, linestyle="--")
    whole.add_patch(rect)
    return axes


def plot_labelled_examples(
    slices: Sequence[tuple[np.ndarray, tuple[float, float], Any]],
    rows: pd.DataFrame,
    *,
    zoom_mm: float = 25.0,
    axes: np.ndarray | None = None,
    data_label: str | None = None,
    names: Sequence[str] = SEVERITIES,
) -> np.ndarray:
    """Labelled slices of some studies: the whole slice above a zoom on the point.

    Parameters
    ----------
    slices : sequence of (image, point, header)
        :func:`lss.data.survey.labelled_slices` of ``rows``: what is drawn.
    rows : DataFrame
        Rows of :func:`lss.data.build_index`, one per column of the figure.
    zoom_mm : float
        Half-width of the zoom in millimetres (converted with the series' pixel spacing).
    axes : (2, len(rows)) array of Axes or None
    data_label : str or None
        Added as the figure title.
    names : sequence of str
        Class names for ``rows["label"]``.

    Returns
    -------
    (2, len(rows)) ndarray of Axes
    """
    k = len(rows)
    if k == 0:
        raise ValueError("rows is empty")
    if len(slices) != k:
        raise ValueError(f"{len(slices)} slices for {k} rows")
    if axes is None:
        width = min(FIGURE_WIDTH_IN, 2.45 * k)
        _, axes = page_subplots(2, k, width=width, height=2 * (width / k + 0.45) + 0.4,
                                squeeze=False)
    axes = np.asarray(axes, dtype=object).reshape(2, k)
    for j, (row, (img, point, header)) in enumerate(
            zip(rows.itertuples(index=False), slices, strict=True)):
        grade = names[int(row.label)]
        plot_slice(img, point=point, ax=axes[0, j], orientation="axial",
                   title=f"study {row.study_id}: {grade}\ninstance {row.instance_number}, "
                         f"{img.shape[0]}x{img.shape[1]} px")
        if np.all(np.isfinite(point)):
            plot_slice(img, point=point, ax=axes[1, j], zoom=zoom_mm / header.pixel_spacing[1],
                       title=f"{2 * zoom_mm:.0f} mm around\n(x, y) = "
                             f"({point[0]:.0f}, {point[1]:.0f})")
        else:
            axes[1, j].axis("off")
    if data_label:
        axes[0, 0].figure.suptitle(data_label, fontsize=TITLE_PT)
    return axes
