"""Figures of level finding: the sagittal points, the axial planes they choose, and the
slice chosen (:mod:`lss.locate` computes everything drawn here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from lss.viz._style import SMALL_PT, TITLE_PT, data_title, display_range, page_subplots

__all__ = ["plot_found_level"]


def plot_found_level(
    sagittal: np.ndarray,
    points: Mapping[str, tuple[float, float]],
    traces: np.ndarray,
    chosen: int,
    axial: np.ndarray,
    *,
    level: str,
    data_label: str,
    labelled: int | None = None,
    table_points: Mapping[str, tuple[float, float]] | None = None,
    axes: Sequence | None = None,
):
    """The found level on the sagittal slice, the axial planes, and the chosen slice.

    Parameters
    ----------
    sagittal : (H, W) ndarray
        The middle Sagittal T2/STIR slice.
    points : mapping
        ``{level: (x, y)}``: the level finder's points on it (red crosses, named).
    traces : (Z, 2, 2) ndarray
        :func:`lss.locate.plane_traces` of the chosen axial series: every slice's plane
        as a line on the sagittal slice (thin cyan).
    chosen : int
        Index into ``traces`` of the slice chosen for ``level`` (thick yellow).
    axial : (H', W') ndarray
        That axial slice (right panel).
    labelled : int, optional
        Index into ``traces`` of the slice the coordinate table names (dashed green).
    table_points : mapping, optional
        The table's points (green circles), for comparison.
    axes : pair of Axes, optional

    Returns
    -------
    ndarray of two Axes
    """
    if not 0 <= chosen < len(traces):
        raise ValueError(f"chosen {chosen} outside {len(traces)} traces")
    if axes is None:
        _, axes = page_subplots(1, 2, height=4.4, width=7.3)
    axes = np.asarray(axes).ravel()
    ax = axes[0]
    ax.imshow(sagittal, cmap="gray", vmin=display_range(sagittal, None, None)[0],
              vmax=display_range(sagittal, None, None)[1])
    for k, ((x0, y0), (x1, y1)) in enumerate(traces):
        if k not in (chosen, labelled):
            ax.plot([x0, x1], [y0, y1], color="cyan", lw=0.4, alpha=0.6)
    (x0, y0), (x1, y1) = traces[chosen]
    ax.plot([x0, x1], [y0, y1], color="yellow", lw=1.8, label=f"chosen for {level}")
    if labelled is not None:  # dashed, on top: where it is the chosen one, both show
        (x0, y0), (x1, y1) = traces[labelled]
        ax.plot([x0, x1], [y0, y1], "--", color="lime", lw=1.2, label="table's slice")
    for x, y in (table_points or {}).values():
        ax.plot(x, y, "o", color="lime", ms=5, mfc="none")
    for name, (x, y) in points.items():
        ax.plot(x, y, "x", color="red", ms=6)
        ax.annotate(name, (x, y), xytext=(6, 0), textcoords="offset points",
                    color="red", fontsize=SMALL_PT, va="center")
    ax.set_xlim(-0.5, sagittal.shape[1] - 0.5)
    ax.set_ylim(sagittal.shape[0] - 0.5, -0.5)
    ax.set_title("Sagittal T2/STIR, middle slice", fontsize=SMALL_PT)
    ax.legend(fontsize=SMALL_PT, loc="lower left")
    ax.set_xticks([])
    ax.set_yticks([])
    lo, hi = display_range(axial, None, None)
    axes[1].imshow(axial, cmap="gray", vmin=lo, vmax=hi)
    axes[1].set_title(f"Axial T2 slice chosen for {level}", fontsize=SMALL_PT)
    axes[1].set_xticks([])
    axes[1].set_yticks([])
    axes[0].figure.suptitle(data_title("From a sagittal point to an axial slice",
                                       data_label), fontsize=TITLE_PT)
    return axes
