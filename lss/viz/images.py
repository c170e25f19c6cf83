"""Figures of images: slices, windows, orderings, saliency maps, localiser points.

Every function draws into ``ax`` (or ``axes``) when given one and creates a figure
otherwise, and returns what it drew into. Figures that show numbers take a
``data_label`` (e.g. ``"synthetic phantom (seed 0)"``) written into the title, so that
a figure cut out of a chapter still says which data it shows.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from lss.data.survey import slice_order_table
from lss.viz._style import (
    FIGURE_WIDTH_IN,
    SMALL_PT,
    TITLE_PT,
    data_title,
    display_range,
    page_subplots,
)

__all__ = [
    "AXIAL_ORIENTATION",
    "AXIAL_ORIENTATION_FLIPPED",
    "plot_slice",
    "flip_horizontal",
    "plot_flip",
    "plot_window",
    "plot_preprocessing_steps",
    "plot_slice_order",
    "plot_localiser_examples",
]


#: Orientation letters for an axial slice in the radiological convention: the patient's
#: right (R) on the image's left, anterior (A) at the top.
AXIAL_ORIENTATION: dict[str, str] = {"left": "R", "right": "L", "top": "A", "bottom": "P"}


#: The same slice after a horizontal flip: the patient's left is now on the image's left.
AXIAL_ORIENTATION_FLIPPED: dict[str, str] = {"left": "L", "right": "R", "top": "A", "bottom": "P"}


#: Slices per row of a window's montage: eight slices are drawn as 2 rows x 4 columns.
WINDOW_COLUMNS = 4


def _orientation_letters(ax: Axes, orientation: Mapping[str, str] | str | None) -> None:
    if orientation is None:
        return
    if isinstance(orientation, str):
        presets = {"axial": AXIAL_ORIENTATION, "axial-flipped": AXIAL_ORIENTATION_FLIPPED}
        if orientation not in presets:
            raise ValueError(
                f"orientation must be a mapping or one of {sorted(presets)}, got {orientation!r}"
            )
        orientation = presets[orientation]
    where = {"left": (0.02, 0.5, "left", "center"), "right": (0.98, 0.5, "right", "center"),
             "top": (0.5, 0.98, "center", "top"), "bottom": (0.5, 0.02, "center", "bottom")}
    unknown = set(orientation) - set(where)
    if unknown:
        raise ValueError(f"orientation keys must be among {sorted(where)}, got {sorted(unknown)}")
    for side, letter in orientation.items():
        x, y, ha, va = where[side]
        ax.text(x, y, letter, transform=ax.transAxes, ha=ha, va=va, color="yellow",
                fontsize=11, fontweight="bold")


def _panel_grid(n: int, ncols: int, *, title_in: float, extra_in: float) -> np.ndarray:
    """``n`` square image panels, ``ncols`` to a row, at most page width: the axes in
    reading order (the unused ones of the last row switched off)."""
    nrows = -(-n // ncols)
    width = min(FIGURE_WIDTH_IN, 1.8 * ncols + 0.1)
    _, grid = page_subplots(nrows, ncols, width=width,
                            height=(width / ncols + title_in) * nrows + extra_in, squeeze=False)
    for ax in grid.ravel()[n:]:
        ax.axis("off")
    return grid.ravel()[:n]


def plot_slice(
    img: np.ndarray,
    *,
    point: tuple[float, float] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    data_label: str | None = None,
    orientation: Mapping[str, str] | str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    point_color: str = "tab:red",
    zoom: float | None = None,
    centre: tuple[float, float] | None = None,
) -> Axes:
    """One 2-D slice in grey levels, optionally with a labelled point and orientation.

    Parameters
    ----------
    img : (H, W) ndarray
        The slice, rows top to bottom as stored in the DICOM file.
    point : (x, y) or None
        A point in pixels, x the column and y the row (the convention of
        ``train_label_coordinates.csv``), drawn as a ring with a centre dot. NaN
        coordinates draw nothing.
    ax : matplotlib Axes or None
        Where to draw; a new figure if None.
    title, data_label : str or None
        The title; the data label is added under it.
    orientation : mapping, "axial", "axial-flipped" or None
        Letters to write at the image's edges, e.g. :data:`AXIAL_ORIENTATION`
        (``{"left": "R", "right": "L", "top": "A", "bottom": "P"}``).
    vmin, vmax : float or None
        Grey-level range; default the 0.5th and 99.5th percentiles of ``img``.
    point_color : str
        Colour of the point.
    zoom : float or None
        Show only a square of ``2 * zoom`` pixels around ``centre``.
    centre : (x, y) or None
        Centre of the zoom; default ``point``.

    Returns
    -------
    matplotlib.axes.Axes
        The point, if drawn, is the first line of ``ax.lines``.
    """
    img = np.asarray(img)
    if img.ndim != 2:
        raise ValueError(f"img must be a 2-D slice, got shape {img.shape}")
    if ax is None:
        _, ax = page_subplots(width=4, height=4)
    lo, hi = display_range(img, vmin, vmax)
    ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
    if point is not None and np.all(np.isfinite(point)):
        x, y = float(point[0]), float(point[1])
        size = (max(img.shape) / 20) if zoom is None else 2 * zoom / 16
        ax.plot([x], [y], marker="+", markersize=6, markeredgewidth=1, color=point_color,
                linestyle="none")
        ring = plt.Circle((x, y), size, fill=False, color=point_color, linewidth=1.5)
        ax.add_patch(ring)
    if zoom is not None:
        centre = point if centre is None else centre
        if centre is None or not np.all(np.isfinite(centre)):
            raise ValueError("zoom needs a finite centre (or point) to centre on")
        ax.set_xlim(centre[0] - zoom, centre[0] + zoom)
        ax.set_ylim(centre[1] + zoom, centre[1] - zoom)  # rows run down
    _orientation_letters(ax, orientation)
    ax.set_xticks([])
    ax.set_yticks([])
    if title or data_label:
        ax.set_title(data_title(title or "", data_label), fontsize=SMALL_PT)
    return ax


def _wrap(text: str, width: int = 44) -> str:
    """Break a panel title into lines of at most ``width`` characters (about half the
    page at 9 pt), so that two panels' titles do not run into each other."""
    return textwrap.fill(text, width, break_long_words=False)


def flip_horizontal(
    img: np.ndarray, point: tuple[float, float] | None = None
) -> tuple[np.ndarray, tuple[float, float] | None]:
    """Mirror a slice left-right, and a point with it.

    A pixel at column ``x`` moves to column ``W - 1 - x``; the row does not change.

    Parameters
    ----------
    img : (H, W) ndarray
    point : (x, y) or None

    Returns
    -------
    flipped : (H, W) ndarray
    point : (W - 1 - x, y) or None

    Examples
    --------
    >>> img = np.arange(6).reshape(2, 3)
    >>> flipped, p = flip_horizontal(img, (0.0, 1.0))
    >>> flipped.tolist(), p
    ([[2, 1, 0], [5, 4, 3]], (2.0, 1.0))
    """
    img = np.asarray(img)
    if img.ndim != 2:
        raise ValueError(f"img must be a 2-D slice, got shape {img.shape}")
    flipped = img[:, ::-1]
    if point is None:
        return flipped, None
    return flipped, (float(img.shape[1] - 1 - point[0]), float(point[1]))


def plot_flip(
    img: np.ndarray,
    point: tuple[float, float],
    *,
    label: str = "Left subarticular stenosis",
    zoom: float | None = None,
    axes: Sequence[Axes] | np.ndarray | None = None,
    data_label: str | None = None,
) -> np.ndarray:
    """A slice beside its horizontal flip, the labelled point moving with the pixels.

    The left panel is the slice as stored (patient's left on the image's right); the
    right panel is the flipped slice, whose orientation letters are swapped: the same
    label now sits on the patient's *other* side.

    Parameters
    ----------
    img : (H, W) ndarray
    point : (x, y)
        The labelled point in pixels.
    label : str
        What the label says (it is the same in both panels; that is the problem).
    zoom : float or None
        Show a square of ``2 * zoom`` pixels centred on the image's middle column at
        the point's row, the same region in both panels. The middle column, about
        which the flip mirrors, is drawn dashed.
    axes : two matplotlib Axes or None
    data_label : str or None

    Returns
    -------
    (2,) ndarray of Axes
    """
    if axes is None:
        _, axes = page_subplots(1, 2, height=4.5)
    axes = np.asarray(axes, dtype=object).ravel()
    if axes.size != 2:
        raise ValueError(f"axes must be two Axes, got {axes.size}")
    flipped, fpoint = flip_horizontal(img, point)
    w = img.shape[1]
    side = "right" if point[0] > (w - 1) / 2 else "left"
    centre = ((w - 1) / 2, float(point[1]))
    plot_slice(img, point=point, ax=axes[0], orientation="axial", zoom=zoom, centre=centre,
               title=_wrap(f"As stored: label '{label}'")
               + f"\npoint at x = {point[0]:.0f} (image {side})")
    other = "left" if side == "right" else "right"
    plot_slice(flipped, point=fpoint, ax=axes[1], orientation="axial-flipped", zoom=zoom,
               centre=centre, title=_wrap(f"Flipped: label still '{label}'")
               + f"\npoint at x = {fpoint[0]:.0f} (image {other})")
    for ax in axes:
        ax.axvline((w - 1) / 2, color="tab:cyan", linestyle="--", linewidth=0.8)
    if data_label:
        axes[0].figure.suptitle(data_label, fontsize=TITLE_PT)
    return axes


def plot_window(
    volume: np.ndarray,
    *,
    indices: Sequence[int] | np.ndarray | None = None,
    instance_numbers: Sequence[int] | np.ndarray | None = None,
    positions: Sequence[float] | np.ndarray | None = None,
    centre: int | None = None,
    point: tuple[float, float] | None = None,
    ncols: int | None = None,
    axes: Sequence[Axes] | np.ndarray | None = None,
    title: str | None = None,
    data_label: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
) -> np.ndarray:
    """A montage of the slices of a window (a short stack), the labelled one framed.

    Parameters
    ----------
    volume : (N, H, W) ndarray
        The slices, in spatial order.
    indices : (N,) ints or None
        Spatial index of each slice in its series (a repeated index, from the edge
        rule, is marked "repeat").
    instance_numbers : (N,) ints or None
        ``InstanceNumber`` of each slice, written under it.
    positions : (N,) floats or None
        Position of each slice along the slice normal in mm; written relative to the
        labelled slice (``+12 mm``).
    centre : int or None
        Position of the labelled slice in the window; default ``N // 2``.
    point : (x, y) or None
        Drawn on the labelled slice, in the pixels of ``volume``.
    ncols : int or None
        Panels per row; default 4 (up to four slices in one row, eight in a 2 x 4 grid),
        so that each panel is about 1.8 in wide at page width.
    axes : N matplotlib Axes or None
    title, data_label : str or None
        The figure title; the data label is added under it.
    vmin, vmax : float or None
        One grey-level range for all slices; default percentiles of the whole volume.

    Returns
    -------
    ndarray of Axes, one per slice
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"volume must be (N, H, W), got shape {volume.shape}")
    n = volume.shape[0]
    centre = n // 2 if centre is None else int(centre)
    if not 0 <= centre < n:
        raise ValueError(f"centre {centre} outside a window of {n} slices")
    for name, seq in (("indices", indices), ("instance_numbers", instance_numbers),
                      ("positions", positions)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{name} has {len(seq)} entries for {n} slices")
    if axes is None:
        axes = _panel_grid(n, ncols or min(n, WINDOW_COLUMNS), title_in=0.45, extra_in=0.5)
    axes = np.asarray(axes, dtype=object).ravel()[:n]
    if axes.size != n:
        raise ValueError(f"need {n} axes, got {axes.size}")
    lo, hi = display_range(volume, vmin, vmax)
    for k, ax in enumerate(axes):
        plot_slice(volume[k], point=point if k == centre else None, ax=ax, vmin=lo, vmax=hi)
        first, second = f"{k}", []
        if indices is not None:
            repeat = k > 0 and indices[k] == indices[k - 1]
            first += f": idx {int(indices[k])}" + (" (repeat)" if repeat else "")
        if instance_numbers is not None:
            second.append(f"inst {int(instance_numbers[k])}")
        if positions is not None:
            second.append(f"{float(positions[k]) - float(positions[centre]):+.0f} mm")
        ax.set_title("\n".join([first, ", ".join(second)] if second else [first]),
                     fontsize=SMALL_PT)
        if k == centre:
            for spine in ax.spines.values():
                spine.set_edgecolor("tab:red")
                spine.set_linewidth(2.5)
    if title or data_label:
        axes[0].figure.suptitle(data_title(title or "", data_label), fontsize=TITLE_PT)
    return axes


def plot_preprocessing_steps(
    steps: Mapping[str, np.ndarray],
    *,
    axes: np.ndarray | None = None,
    bins: int = 60,
    data_label: str | None = None,
) -> np.ndarray:
    """Each stage of a slice (top row) above the histogram of its intensities (bottom).

    Parameters
    ----------
    steps : mapping of str to (H, W) ndarray
        Stage name (e.g. ``"raw 448x448"``) to the slice at that stage, in order.
    axes : (2, K) array of Axes or None
    bins : int
        Histogram bins.
    data_label : str or None
        Added as the figure title.

    Returns
    -------
    (2, K) ndarray of Axes
    """
    if not steps:
        raise ValueError("steps is empty")
    k = len(steps)
    if axes is None:
        # "tight": the chapters call plt.tight_layout() after this figure
        width = min(FIGURE_WIDTH_IN, 2.45 * k)
        _, axes = page_subplots(2, k, width=width, height=width / k * 1.7 + 0.9,
                                squeeze=False, layout="tight",
                                gridspec_kw={"height_ratios": [3, 2]})
    axes = np.asarray(axes, dtype=object).reshape(2, k)
    for j, (name, img) in enumerate(steps.items()):
        img = np.asarray(img, dtype=float)
        plot_slice(img, ax=axes[0, j], title=f"{name}\n{img.shape[0]}x{img.shape[1]}")
        axes[1, j].hist(img.ravel(), bins=bins, color="tab:blue")
        axes[1, j].set_yscale("log")
        axes[1, j].set_xlabel("intensity")
        axes[1, j].set_title(f"range {img.min():.3g} .. {img.max():.3g}", fontsize=SMALL_PT)
    axes[1, 0].set_ylabel("pixels (log scale)")
    if data_label:
        axes[0, 0].figure.suptitle(data_label, fontsize=TITLE_PT)
    return axes


def plot_slice_order(
    header: Any,
    *,
    labelled_instance: int | None = None,
    axes: Sequence[Axes] | np.ndarray | None = None,
    data_label: str | None = None,
) -> np.ndarray:
    """How a series' slices are ordered in space, by ``InstanceNumber`` and by file name.

    Left: the position of each slice along the slice normal (mm) against its
    ``InstanceNumber``. Right: for each slice in spatial order, its rank when the
    files are sorted by ``InstanceNumber`` and by file name; spatial order is the
    diagonal.

    Parameters
    ----------
    header : lss.data.SeriesHeader
    labelled_instance : int or None
        Marked with a star in both panels.
    axes : two matplotlib Axes or None
    data_label : str or None

    Returns
    -------
    (2,) ndarray of Axes
    """
    df = slice_order_table(header)
    if axes is None:
        # "tight": the chapter calls plt.tight_layout() after this figure
        _, axes = page_subplots(1, 2, height=4.4, layout="tight")
    axes = np.asarray(axes, dtype=object).ravel()
    if axes.size != 2:
        raise ValueError(f"axes must be two Axes, got {axes.size}")
    a, b = axes
    a.plot(df.instance_number, df.position_mm, "o", markersize=4)
    a.set_xlabel("InstanceNumber")
    a.set_ylabel("position along the\nslice normal (mm)")
    a.set_title(data_title("Position against InstanceNumber", data_label), fontsize=SMALL_PT)
    b.plot(df.spatial_rank, df.spatial_rank, "-", color="grey", label="spatial order")
    b.plot(df.spatial_rank, df.instance_rank, "o", markersize=4, label="sorted by InstanceNumber")
    b.plot(df.spatial_rank, df.name_rank, "x", markersize=5, label="sorted by file name")
    b.set_xlabel("rank in space (0 = lowest position)")
    b.set_ylabel("rank under the other ordering")
    b.set_title(data_title("Three orderings of the same files", data_label), fontsize=SMALL_PT)
    b.legend(fontsize=SMALL_PT, loc="upper center", bbox_to_anchor=(0.5, -0.2))  # under
    if labelled_instance is not None:
        hit = df[df.instance_number == int(labelled_instance)]
        if hit.empty:
            raise ValueError(f"instance {labelled_instance} is not in {header.series_dir}")
        r = hit.iloc[0]
        a.plot([r.instance_number], [r.position_mm], "*", color="tab:red", markersize=12,
               label=f"labelled instance {int(labelled_instance)}")
        a.legend(fontsize=SMALL_PT)
        b.plot([r.spatial_rank], [r.spatial_rank], "*", color="tab:red", markersize=12)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return axes


def plot_localiser_examples(examples: Sequence[Mapping[str, Any]], *, data_label: str,
                            crop_mm: float | None = 40.0, axes=None):
    """Validation slices with the table's point (green) and the localiser's (red).

    Parameters
    ----------
    examples : sequence of dict
        :func:`lss.data.survey.localiser_examples`: the slices where the localiser erred
        most, each titled with its error in mm.
    crop_mm : float or None
        Also draw the square the ROI model would see around the prediction.
    axes : sequence of Axes or None
        One per example; default a new figure, four panels per row.

    Returns
    -------
    ndarray of matplotlib Axes, one per example
    """
    from matplotlib.patches import Rectangle

    n = len(examples)
    if n == 0:
        raise ValueError("examples is empty")
    own = axes is None
    if own:
        axes = _panel_grid(n, min(n, WINDOW_COLUMNS), title_in=0.3, extra_in=0.8)
    axes = np.atleast_1d(axes)
    for ax, r in zip(axes, examples, strict=False):
        img = r["image"]
        ax.imshow(img, cmap="gray", vmin=np.percentile(img, 0.5), vmax=np.percentile(img, 99.5))
        ax.plot(r["x_true"], r["y_true"], "o", color="lime", ms=4, label="table")
        ax.plot(r["x_pred"], r["y_pred"], "x", color="red", ms=6, label="localiser")
        if crop_mm is not None:
            sy, sx = r["pixel_spacing"]
            w, h = crop_mm / sx, crop_mm / sy
            ax.add_patch(Rectangle((r["x_pred"] - w / 2, r["y_pred"] - h / 2), w, h,
                                   fill=False, color="red", lw=0.8,
                                   label=f"ROI crop ({crop_mm:g} mm)"))
        ax.set_title(f"study {r['study_id']}: {r['error_mm']:.1f} mm", fontsize=SMALL_PT)
        ax.set_xticks([])
        ax.set_yticks([])
    fig = axes[0].figure
    if own:
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center",
                   ncols=3, fontsize=SMALL_PT)
    else:
        axes[0].legend(fontsize=SMALL_PT, loc="lower left")
    fig.suptitle(data_title("Localiser on validation studies (largest errors)", data_label),
                 fontsize=TITLE_PT)
    return axes
