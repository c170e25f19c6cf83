"""Figures of what the model sees and uses: the window's slices, saliency maps over
them (Grad-CAM, occlusion), and the sequence of slice features and LSTM states.
"""


from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

from lss.viz._style import FIGURE_WIDTH_IN, SMALL_PT, TITLE_PT, page_figure, page_subplots

__all__ = [
    "plot_slices",
    "plot_montage",
    "plot_saliency",
    "plot_sequence",
]


def plot_sequence(
    values: np.ndarray,
    *,
    ax: Any = None,
    what: str = "feature",
    labelled_index: int | None = None,
    title: str | None = None,
    data_label: str | None = None,
    colorbar_label: str | None = None,
) -> Any:
    """A ``(Z, F)`` sequence as a heat map: one row per slice, one column per feature.

    Parameters
    ----------
    values : (Z, F) array
        E.g. :func:`slice_features` or :func:`lstm_states`.
    what : str
        Name of a column, for the axis label.
    labelled_index : int, optional
        The labelled slice's row, marked on the axis.
    colorbar_label : str, optional
        What the colour means; default ``"activation (no unit)"`` (slice features and
        LSTM states are activations).
    """

    v = np.asarray(values, dtype=np.float32)
    if v.ndim != 2:
        raise ValueError(f"values must be 2-D (slices, features), got shape {v.shape}")
    if ax is None:
        _, ax = page_subplots(height=3.0)
    lim = float(np.abs(v).max()) or 1.0
    cmap, vmin = ("viridis", 0.0) if v.min() >= 0 else ("RdBu_r", -lim)
    image = ax.imshow(v, aspect="auto", cmap=cmap, vmin=vmin, vmax=lim,
                      interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, fraction=0.04, pad=0.02,
                       label=colorbar_label or "activation (no unit)")
    ax.set_xlabel(f"{what} (of {v.shape[1]})")
    ax.set_ylabel("slice")
    ax.set_yticks(range(v.shape[0]))
    if labelled_index is not None:
        labels = [str(i) for i in range(v.shape[0])]
        labels[labelled_index] = f"{labelled_index} (labelled)"
        ax.set_yticklabels(labels)
    base = title or f"{v.shape[0]} slices x {v.shape[1]} {what}s"
    ax.set_title(base if not data_label else f"{base}\n{data_label}", fontsize=TITLE_PT)
    return ax


def plot_slices(
    volume: np.ndarray,
    *,
    overlay: np.ndarray | None = None,
    point: tuple[float, float] | None = None,
    labelled_index: int | None = None,
    axes: Any = None,
    label: str | None = None,
    alpha: float = 0.45,
    overlay_label: str | None = None,
) -> np.ndarray:
    """A window's slices, optionally with a map over them and the labelled point.

    The slices are drawn by :func:`lss.viz.plot_window` (grey levels 0 to 1, the
    labelled slice framed in red, the point ringed on it), four to a row: eight slices
    make a 2 x 4 grid. The map is laid over them in colour, transparent where it is
    (nearly) 0, with a colour bar that says what it is.

    Parameters
    ----------
    volume : (Z, H, W) or (Z, H, W, 1) array in [0, 1]
    overlay : (Z, H, W) array in [0, 1], optional
        E.g. :func:`grad_cam` or :func:`occlusion_sensitivity`; values up to 0.02 are
        not drawn.
    point : (x, y), optional
        The labelled point in window pixels (:func:`window_point`).
    labelled_index : int, optional
        The labelled slice (default ``Z // 2``, where :func:`lss.data.level_window`
        puts it).
    axes : sequence of Z Axes, optional
        Where to draw; a new figure if None.
    label : str, optional
        Written left of the first slice.
    overlay_label : str, optional
        The colour bar's label; default ``"map value (0 to 1)"``.

    Returns
    -------
    (Z,) ndarray of Axes
    """
    from lss.viz.images import plot_window

    v = np.asarray(volume, dtype=np.float32)
    if v.ndim == 4 and v.shape[-1] == 1:
        v = v[..., 0]
    if v.ndim != 3:
        raise ValueError(f"volume must have shape (Z, H, W) or (Z, H, W, 1), got {v.shape}")
    z = v.shape[0]
    if overlay is not None:
        overlay = np.asarray(overlay, dtype=np.float32)
        if overlay.shape != v.shape:
            raise ValueError(f"overlay must have the volume's shape {v.shape}, got "
                             f"{overlay.shape}")
    labelled = z // 2 if labelled_index is None else int(labelled_index)
    if not 0 <= labelled < z:
        raise ValueError(f"labelled_index must be in [0, {z - 1}], got {labelled_index}")
    if axes is not None and np.asarray(axes, dtype=object).size != z:
        raise ValueError(f"axes must be {z} Axes (one per slice), got "
                         f"{np.asarray(axes, dtype=object).size}")
    axes = plot_window(v, centre=labelled, point=point, axes=axes, vmin=0.0, vmax=1.0)
    for i, ax in enumerate(axes):
        if overlay is not None:
            masked = np.ma.masked_less_equal(overlay[i], 0.02)
            ax.imshow(masked, cmap=OVERLAY_CMAP, vmin=0, vmax=1, alpha=alpha,
                      interpolation="bilinear")
        ax.set_title(f"slice {i}" + (" (labelled)" if i == labelled else ""),
                     fontsize=SMALL_PT, color="tab:red" if i == labelled else "black")
    if overlay is not None:
        axes[0].figure.colorbar(ScalarMappable(Normalize(0, 1), cmap=OVERLAY_CMAP),
                                ax=list(axes), shrink=0.85, fraction=0.04, alpha=alpha,
                                label=overlay_label or "map value (0 to 1)")
    if label:
        axes[0].set_ylabel(label, fontsize=SMALL_PT)
    return axes


#: Colour map of a saliency map laid over the slices.
OVERLAY_CMAP = "inferno"


def plot_montage(
    volumes: Sequence[np.ndarray],
    *,
    row_labels: Sequence[str] | None = None,
    overlays: Sequence[np.ndarray | None] | None = None,
    points: Sequence[tuple[float, float] | None] | None = None,
    labelled_index: int | None = None,
    title: str,
    data_label: str,
    alpha: float = 0.45,
    overlay_label: str | None = None,
) -> np.ndarray:
    """Several windows (or one window several ways) in one figure, one block each.

    Each window is a block of :func:`plot_slices`, four slices to a row (eight slices:
    2 x 4), the blocks one below the other with a gap between them.

    Parameters
    ----------
    volumes : sequence of (Z, H, W) arrays
        The windows, all with the same number of slices.
    row_labels, overlays, points : sequences, one entry per window, optional
        As ``label``, ``overlay`` and ``point`` of :func:`plot_slices`.
    title : str
        The figure's title.
    data_label : str
        Which data the slices come from (e.g. ``lss.run.data_label(root)``), written
        under the title; required, so that a phantom figure is never read as a scan.
    overlay_label : str, optional
        Label of the colour bar of each block with an overlay.

    Returns
    -------
    (windows, Z) ndarray of Axes
        Row ``r`` holds the axes of window ``r``, in slice order.
    """

    if not isinstance(data_label, str) or not data_label.strip():
        raise ValueError(f"data_label must name the data, got {data_label!r}")
    n = len(volumes)
    if n == 0:
        raise ValueError("volumes is empty")
    for what, seq in (("row_labels", row_labels), ("overlays", overlays), ("points", points)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{what} must have one entry per volume ({n}), got {len(seq)}")
    z = np.shape(volumes[0])[0]
    fig, blocks = _montage_axes(n, z, colorbar=overlays is not None
                                and any(o is not None for o in overlays))
    for r in range(n):
        plot_slices(volumes[r], axes=blocks[r],
                    overlay=None if overlays is None else overlays[r],
                    point=None if points is None else points[r],
                    labelled_index=labelled_index,
                    label=None if row_labels is None else row_labels[r], alpha=alpha,
                    overlay_label=overlay_label)
    fig.suptitle(f"{title}\n{data_label}", fontsize=TITLE_PT)
    return blocks


def _montage_axes(n: int, z: int, *, colorbar: bool) -> tuple[Any, np.ndarray]:
    """A page-wide figure with ``n`` blocks of ``z`` axes, four per row, on one grid (the
    columns line up from block to block), a thin empty row between blocks so that the eye
    sees where a window ends."""
    from lss.viz.images import WINDOW_COLUMNS

    ncols = min(z, WINDOW_COLUMNS)
    rows = -(-z // ncols)
    extra = 0.8 + (0.7 if colorbar else 0.0)  # row label, colour bar
    width = min(FIGURE_WIDTH_IN, 1.7 * ncols + extra)
    panel = (width - extra) / ncols
    gap = 0.25  # of a row of panels
    fig = page_figure(height=(n * rows + (n - 1) * gap) * (panel + 0.3) + 0.6, width=width)
    ratios = [gap if (i + 1) % (rows + 1) == 0 else 1.0 for i in range(n * (rows + 1) - 1)]
    grid = fig.add_gridspec(len(ratios), ncols, height_ratios=ratios)
    blocks = np.empty((n, z), dtype=object)
    for r in range(n):
        for i in range(z):
            blocks[r, i] = fig.add_subplot(grid[r * (rows + 1) + i // ncols, i % ncols])
    return fig, blocks


def plot_saliency(
    volume: np.ndarray,
    saliency: np.ndarray,
    *,
    point: tuple[float, float] | None = None,
    labelled_index: int | None = None,
    method: str = "Grad-CAM",
    title: str | None = None,
    data_label: str,
    alpha: float = 0.5,
) -> np.ndarray:
    """A window's slices above the same slices with a saliency map laid over them.

    Parameters
    ----------
    volume : (Z, H, W) array
    saliency : (Z, H, W) array in [0, 1]
        From :func:`grad_cam` or :func:`occlusion_sensitivity` (rescale a faint
        occlusion map with ``m / m.max()`` to see its shape).
    point, labelled_index
        As in :func:`plot_slices`: the labelled point is circled in both rows.
    method : str
        Names the map in the row label.
    title : str, optional
        Default ``"Where the model looked (<method>)"``.
    data_label : str
        Which data the slices come from.

    Returns
    -------
    (2, Z) ndarray of Axes
    """
    s = np.asarray(saliency, dtype=np.float32)
    if not np.isfinite(s).all() or s.min() < 0 or s.max() > 1:
        raise ValueError("saliency must hold finite values in [0, 1]")
    return plot_montage([volume, volume], overlays=[None, s], points=[point, point],
                        row_labels=["slices", method], labelled_index=labelled_index,
                        title=title or f"Where the model looked ({method})",
                        data_label=data_label, alpha=alpha,
                        overlay_label=f"{method} (0 to 1)")
