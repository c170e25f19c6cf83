"""Figures the chapters draw: slices, windows, anatomy, orderings, and results.

Chapters 1-2 use the image figures (:func:`plot_slice`, :func:`plot_flip`,
:func:`plot_window`, :func:`plot_axial_anatomy`, :func:`plot_slice_order`,
:func:`plot_preprocessing_steps`, :func:`plot_left_right_x`); later chapters the
confusion matrix, training curves, reliability diagram and class distribution.

Every function draws into ``ax`` (or ``axes``) when given one and creates a figure
otherwise, and returns what it drew into. Functions that show numbers take a
``data_label`` (e.g. ``"synthetic phantom (seed 0)"``) that is written into the
title, so that a figure cut out of a chapter still says which data it shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from lss.config import LABEL_MAP, SEVERITIES
from lss.metrics import calibration_table

__all__ = [
    "AXIAL_ORIENTATION",
    "AXIAL_ORIENTATION_FLIPPED",
    "plot_slice",
    "flip_horizontal",
    "plot_flip",
    "plot_window",
    "plot_preprocessing_steps",
    "slice_order_table",
    "plot_slice_order",
    "window_survey",
    "subarticular_pairs",
    "plot_left_right_x",
    "LabelledSlice",
    "labelled_axial_slice",
    "plot_axial_anatomy",
    "read_labelled_slice",
    "plot_labelled_examples",
    "plot_confusion_matrix",
    "plot_history",
    "plot_reliability",
    "plot_class_distribution",
]


def _title(base: str, data_label: str | None) -> str:
    return base if not data_label else f"{base}\n{data_label}"


def plot_confusion_matrix(
    cm: Sequence[Sequence[int]] | np.ndarray,
    *,
    labels: Sequence[str] = SEVERITIES,
    normalize: bool = False,
    ax: Axes | None = None,
    title: str | None = None,
    data_label: str | None = None,
) -> Axes:
    """Heatmap of a confusion matrix; rows are true classes, columns predicted.

    Parameters
    ----------
    cm : (K, K) array of int
        Counts, e.g. ``classification_report(...)["confusion_matrix"]``.
    labels : sequence of str
        Class names, length K.
    normalize : bool
        Divide each row by its total, so the diagonal shows each class's recall
        (a row with no samples stays 0).
    ax : matplotlib Axes or None
        Where to draw; a new figure if None.
    title : str or None
        Default ``"Confusion matrix"`` (``"... (row-normalised)"`` with ``normalize``).
    data_label : str or None
        Which data the counts come from; added under the title.

    Returns
    -------
    matplotlib.axes.Axes
    """
    m = np.asarray(cm, dtype=float)
    k = len(labels)
    if m.shape != (k, k):
        raise ValueError(f"cm must have shape ({k}, {k}) for {k} labels, got {m.shape}")
    if not np.isfinite(m).all() or (m < 0).any():
        raise ValueError("cm must hold finite, non-negative counts")
    if normalize:
        totals = m.sum(axis=1, keepdims=True)
        m = np.divide(m, totals, out=np.zeros_like(m), where=totals > 0)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4))
    sns.heatmap(
        m,
        annot=True,
        fmt=".2f" if normalize else ".0f",
        cmap="Blues",
        vmin=0,
        vmax=1 if normalize else None,
        xticklabels=list(labels),
        yticklabels=list(labels),
        square=True,
        cbar=False,
        ax=ax,
    )
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    base = title or ("Confusion matrix (row-normalised)" if normalize else "Confusion matrix")
    ax.set_title(_title(base, data_label))
    return ax


def plot_history(
    history: Mapping[str, Sequence[float]] | pd.DataFrame | Any,
    *,
    axes: Sequence[Axes] | np.ndarray | None = None,
    baseline_accuracy: float | None = None,
    data_label: str | None = None,
) -> np.ndarray:
    """Accuracy and loss per epoch, training beside validation.

    Parameters
    ----------
    history : dict, DataFrame or keras History
        ``History.history`` (or the History itself, or a CSVLogger table) with
        ``accuracy``/``loss`` and optionally ``val_accuracy``/``val_loss``.
    axes : two matplotlib Axes or None
        Accuracy is drawn into the first, loss into the second; a new figure if None.
    baseline_accuracy : float or None
        Drawn as a dashed line on the accuracy panel, e.g. the majority baseline's
        validation accuracy: a curve below it has learned nothing useful.
    data_label : str or None
        Which data trained and validated the model; added to the titles.

    Returns
    -------
    (2,) ndarray of Axes
    """
    if hasattr(history, "history") and not isinstance(history, (Mapping, pd.DataFrame)):
        history = history.history
    frame = pd.DataFrame(history)  # a copy; the caller's object is not touched
    keys = [k for k in ("accuracy", "loss") if k in frame or f"val_{k}" in frame]
    if not keys:
        raise ValueError(
            f"history has neither accuracy nor loss; its keys are {list(frame.columns)}"
        )
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    axes = np.asarray(axes, dtype=object).ravel()
    if axes.size != 2:
        raise ValueError(f"axes must be two Axes (accuracy, loss), got {axes.size}")
    epochs = np.arange(1, len(frame) + 1)
    for ax, key in zip(axes, ("accuracy", "loss"), strict=True):
        for column, name, style in ((key, "training", "-o"), (f"val_{key}", "validation", "-s")):
            if column in frame:
                ax.plot(epochs, frame[column], style, markersize=3, label=name)
        if key == "accuracy":
            ax.set_ylim(0, 1)  # autoscaling turns 0.494 -> 0.500 into a cliff
            if baseline_accuracy is not None:
                ax.axhline(baseline_accuracy, color="grey", linestyle="--",
                           label="majority baseline")
        if key not in keys:
            ax.text(0.5, 0.5, f"no {key} recorded", ha="center", transform=ax.transAxes)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(key)
        ax.set_title(_title(key.capitalize(), data_label))
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    return axes


def plot_reliability(
    y_true: Sequence[int] | np.ndarray,
    proba: np.ndarray,
    *,
    n_bins: int = 10,
    ax: Axes | None = None,
    data_label: str | None = None,
) -> Axes:
    """Reliability diagram of the top-class probability, with its calibration error.

    Rows are binned by confidence (their largest probability); each non-empty bin is
    plotted at (mean confidence, fraction correct). A calibrated model lies on the
    diagonal; points below it are over-confident. The title gives the expected
    calibration error, ``sum_b n_b / N * |accuracy_b - confidence_b|``. See
    :func:`lss.metrics.calibration_table` for the numbers.

    Returns
    -------
    matplotlib.axes.Axes
    """
    table = calibration_table(y_true, proba, n_bins=n_bins)
    used = table[table.n > 0]
    ece = float((used.n * (used.accuracy - used.confidence).abs()).sum() / used.n.sum())
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="calibrated")
    ax.plot(used.confidence, used.accuracy, "-o", label="model")
    for _, row in used.iterrows():
        ax.annotate(
            f"{int(row.n)}",
            (row.confidence, row.accuracy),
            fontsize=7,
            textcoords="offset points",
            xytext=(3, -9),
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("fraction correct")
    ax.set_title(_title(f"Reliability (ECE = {ece:.3f}, N = {int(table.n.sum())})", data_label))
    ax.legend(loc="upper left")
    return ax


def plot_class_distribution(
    labels: Sequence[int] | Sequence[str] | np.ndarray | pd.Series,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    names: Sequence[str] = SEVERITIES,
    data_label: str | None = None,
) -> Axes:
    """Bar chart of how many samples each class has, with percentages.

    Parameters
    ----------
    labels : sequence of int or str
        Class indices, or severity names as spelled in ``names``. Missing values are
        refused (drop them first and say so).
    names : sequence of str
        Class names in index order; every class gets a bar, empty ones too.
    title, data_label : str or None
        Default title ``"Classes (N = ...)"``; the data label is added under it.

    Returns
    -------
    matplotlib.axes.Axes
    """
    s = pd.Series(np.asarray(labels, dtype=object))
    if s.isna().any():
        raise ValueError(f"labels contain {int(s.isna().sum())} missing value(s); drop them first")
    if s.empty:
        raise ValueError("labels is empty")
    lookup = LABEL_MAP if tuple(names) == SEVERITIES else {n: i for i, n in enumerate(names)}

    def to_index(v: Any) -> int | None:
        if isinstance(v, str):
            return lookup.get(v)
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return int(v) if 0 <= v < len(names) else None
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            return to_index(int(v))
        return None

    index = [to_index(v) for v in s]
    bad = sorted({str(v) for v, i in zip(s, index, strict=True) if i is None})
    if bad:
        raise ValueError(f"labels must be class indices or names in {list(names)}, got {bad}")
    counts = np.bincount(np.asarray(index, dtype=int), minlength=len(names))
    total = int(counts.sum())
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.5))
    sns.barplot(x=list(names), y=counts, color="tab:blue", ax=ax)
    for i, n in enumerate(counts):
        ax.annotate(f"{n}\n({100 * n / total:.1f} %)", (i, n), ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, counts.max() * 1.25)
    ax.set_ylabel("studies")
    ax.set_title(_title(title or f"Classes (N = {total})", data_label))
    return ax


# --------------------------------------------------------------------------- images
# Figures of slices, windows and orderings for chapters 1 and 2. Images are (H, W)
# arrays in DICOM order: row 0 at the top, column 0 at the left; a point is (x, y) =
# (column, row) in pixels, as in ``train_label_coordinates.csv``.

#: Orientation letters for an axial slice in the radiological convention: the patient's
#: right (R) on the image's left, anterior (A) at the top.
AXIAL_ORIENTATION: dict[str, str] = {"left": "R", "right": "L", "top": "A", "bottom": "P"}
#: The same slice after a horizontal flip: the patient's left is now on the image's left.
AXIAL_ORIENTATION_FLIPPED: dict[str, str] = {"left": "L", "right": "R", "top": "A", "bottom": "P"}


def _display_range(img: np.ndarray, vmin: float | None, vmax: float | None
                   ) -> tuple[float, float]:
    """Grey-level range for display: 0.5th and 99.5th percentiles unless given."""
    lo, hi = np.percentile(img, (0.5, 99.5)) if vmin is None or vmax is None else (vmin, vmax)
    lo = float(lo) if vmin is None else float(vmin)
    hi = float(hi) if vmax is None else float(vmax)
    return lo, (hi if hi > lo else lo + 1.0)


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
        _, ax = plt.subplots(figsize=(4, 4))
    lo, hi = _display_range(img, vmin, vmax)
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
        ax.set_title(_title(title or "", data_label), fontsize=9)
    return ax


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
        _, axes = plt.subplots(1, 2, figsize=(8, 4.4))
    axes = np.asarray(axes, dtype=object).ravel()
    if axes.size != 2:
        raise ValueError(f"axes must be two Axes, got {axes.size}")
    flipped, fpoint = flip_horizontal(img, point)
    w = img.shape[1]
    side = "right" if point[0] > (w - 1) / 2 else "left"
    centre = ((w - 1) / 2, float(point[1]))
    plot_slice(img, point=point, ax=axes[0], orientation="axial", zoom=zoom, centre=centre,
               title=f"As stored: label '{label}'\npoint at x = {point[0]:.0f} (image {side})")
    other = "left" if side == "right" else "right"
    plot_slice(flipped, point=fpoint, ax=axes[1], orientation="axial-flipped", zoom=zoom,
               centre=centre, title=f"Flipped: label still '{label}'\npoint at x = "
                                    f"{fpoint[0]:.0f} (image {other})")
    for ax in axes:
        ax.axvline((w - 1) / 2, color="tab:cyan", linestyle="--", linewidth=0.8)
    if data_label:
        axes[0].figure.suptitle(data_label, fontsize=9)
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
        Panels per row; default all in one row up to 8.
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
        ncols = ncols or min(n, 8)
        nrows = -(-n // ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(2.0 * ncols, 2.6 * nrows + 0.6),
                                 squeeze=False)
        for ax in axes.ravel()[n:]:
            ax.axis("off")
    axes = np.asarray(axes, dtype=object).ravel()[:n]
    if axes.size != n:
        raise ValueError(f"need {n} axes, got {axes.size}")
    lo, hi = _display_range(volume, vmin, vmax)
    for k, ax in enumerate(axes):
        plot_slice(volume[k], point=point if k == centre else None, ax=ax, vmin=lo, vmax=hi)
        parts = [f"{k}"]
        if indices is not None:
            repeat = k > 0 and indices[k] == indices[k - 1]
            parts.append(f"idx {int(indices[k])}" + (" repeat" if repeat else ""))
        if instance_numbers is not None:
            parts.append(f"inst {int(instance_numbers[k])}")
        if positions is not None:
            parts.append(f"{float(positions[k]) - float(positions[centre]):+.0f} mm")
        ax.set_title("\n".join(parts), fontsize=7)
        if k == centre:
            for spine in ax.spines.values():
                spine.set_edgecolor("tab:red")
                spine.set_linewidth(2.5)
    if title or data_label:
        axes[0].figure.suptitle(_title(title or "", data_label), fontsize=9)
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
        _, axes = plt.subplots(2, k, figsize=(3.2 * k, 6), squeeze=False,
                               gridspec_kw={"height_ratios": [3, 2]})
    axes = np.asarray(axes, dtype=object).reshape(2, k)
    for j, (name, img) in enumerate(steps.items()):
        img = np.asarray(img, dtype=float)
        plot_slice(img, ax=axes[0, j], title=f"{name}\n{img.shape[0]}x{img.shape[1]}")
        axes[1, j].hist(img.ravel(), bins=bins, color="tab:blue")
        axes[1, j].set_yscale("log")
        axes[1, j].set_xlabel("intensity")
        axes[1, j].set_title(f"range {img.min():.3g} .. {img.max():.3g}", fontsize=8)
    axes[1, 0].set_ylabel("pixels (log scale)")
    if data_label:
        axes[0, 0].figure.suptitle(data_label, fontsize=9)
    return axes


# --------------------------------------------------------------------------- orderings


def slice_order_table(header: Any) -> pd.DataFrame:
    """Each slice of a series under three orderings: space, ``InstanceNumber``, file name.

    Parameters
    ----------
    header : lss.data.SeriesHeader
        From :func:`lss.data.scan_series` (slices already in spatial order).

    Returns
    -------
    DataFrame
        One row per slice in spatial order (``spatial_rank`` 0 is the lowest position
        along the slice normal, i.e. the slice nearest the feet for an axial series
        whose normal points to the head), with ``file``, ``instance_number``,
        ``position_mm``, and the slice's rank when the files are sorted by
        ``InstanceNumber`` (``instance_rank``) or by name as text (``name_rank``,
        what ``sorted(os.listdir(...))`` gives).
    """
    names = [p.name for p in header.paths]
    inst = np.asarray(header.instance_numbers)
    df = pd.DataFrame({"spatial_rank": np.arange(len(names)), "file": names,
                       "instance_number": inst, "position_mm": np.asarray(header.positions)})
    df["instance_rank"] = np.argsort(np.argsort(inst, kind="stable"), kind="stable")
    df["name_rank"] = np.argsort(np.argsort(np.array(names), kind="stable"), kind="stable")
    return df


def window_survey(root: Any, index: pd.DataFrame, *, n_slices: int) -> pd.DataFrame:
    """Where the level window of each indexed study falls in its series (headers only).

    A descriptive table for the preprocessing chapter's figures and counts; it reads
    the series headers (no pixels) with :func:`lss.data.scan_series`.

    Parameters
    ----------
    root : str or Path
        The data root.
    index : DataFrame
        From :func:`lss.data.build_index`.
    n_slices : int
        Slices in the window.

    Returns
    -------
    DataFrame
        One row per study: ``study_id``, ``series_id``, ``n_in_series`` (slices in the
        series), ``centre`` (spatial index of the labelled slice; the middle without a
        coordinate row), ``edge`` (the window runs past an end, so an end slice
        repeats), ``span_mm`` (distance along the normal between the window's first
        and last slices), ``rows``, ``columns``, ``pixel_spacing`` (column spacing, mm)
        and ``instances_run_with_position`` (``InstanceNumber`` grows with the
        position: toward the head for an axial series).
    """
    from lss.data import scan_series, series_dir, window_indices

    out = []
    for r in index.itertuples(index=False):
        h = scan_series(series_dir(root, r.study_id, r.series_id))
        n = len(h.paths)
        centre = n // 2 if pd.isna(r.instance_number) else h.index_of(int(r.instance_number))
        idx = window_indices(n, centre, n_slices)
        pos = np.asarray(h.positions)[idx]
        inst = np.asarray(h.instance_numbers)
        out.append({
            "study_id": int(r.study_id), "series_id": int(r.series_id), "n_in_series": n,
            "centre": centre, "edge": bool(len(np.unique(idx)) < len(idx)),
            "span_mm": float(pos.max() - pos.min()), "rows": h.shape[0],
            "columns": h.shape[1], "pixel_spacing": float(h.pixel_spacing[1]),
            "instances_run_with_position": bool(n < 2 or inst[-1] > inst[0]),
        })
    return pd.DataFrame(out)


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
        _, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    axes = np.asarray(axes, dtype=object).ravel()
    if axes.size != 2:
        raise ValueError(f"axes must be two Axes, got {axes.size}")
    a, b = axes
    a.plot(df.instance_number, df.position_mm, "o", markersize=4)
    a.set_xlabel("InstanceNumber")
    a.set_ylabel("position along the slice normal (mm)")
    a.set_title(_title("Position against InstanceNumber", data_label), fontsize=9)
    b.plot(df.spatial_rank, df.spatial_rank, "-", color="grey", label="spatial order")
    b.plot(df.spatial_rank, df.instance_rank, "o", markersize=4, label="sorted by InstanceNumber")
    b.plot(df.spatial_rank, df.name_rank, "x", markersize=5, label="sorted by file name")
    b.set_xlabel("rank in space (0 = lowest position)")
    b.set_ylabel("rank under the other ordering")
    b.set_title(_title("Three orderings of the same files", data_label), fontsize=9)
    b.legend(fontsize=7)
    if labelled_instance is not None:
        hit = df[df.instance_number == int(labelled_instance)]
        if hit.empty:
            raise ValueError(f"instance {labelled_instance} is not in {header.series_dir}")
        r = hit.iloc[0]
        a.plot([r.instance_number], [r.position_mm], "*", color="tab:red", markersize=12,
               label=f"labelled instance {int(labelled_instance)}")
        a.legend(fontsize=7)
        b.plot([r.spatial_rank], [r.spatial_rank], "*", color="tab:red", markersize=12)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return axes


# --------------------------------------------------------------------------- left and right


def subarticular_pairs(coordinates: pd.DataFrame) -> pd.DataFrame:
    """Left and right subarticular labels of the same study and level, side by side.

    Parameters
    ----------
    coordinates : DataFrame
        ``train_label_coordinates.csv`` (e.g. ``load_tables(root).coordinates``).

    Returns
    -------
    DataFrame
        One row per (study, level) labelled on both sides: ``study_id``, ``level``,
        ``x_left``, ``x_right``, ``same_series`` (both points on one series, so their
        x compare in one image) and ``left_is_right_of_image`` (``x_left > x_right``).
    """
    need = {"study_id", "series_id", "condition", "level", "x"}
    if not need <= set(coordinates.columns):
        raise ValueError(f"coordinates lack column(s) {sorted(need - set(coordinates.columns))}")
    keys = ["study_id", "level"]
    cols = keys + ["series_id", "x"]
    left = coordinates[coordinates["condition"] == "Left Subarticular Stenosis"][cols]
    right = coordinates[coordinates["condition"] == "Right Subarticular Stenosis"][cols]
    pairs = left.drop_duplicates(keys).merge(right.drop_duplicates(keys), on=keys,
                                             suffixes=("_left", "_right"))
    pairs["same_series"] = pairs["series_id_left"] == pairs["series_id_right"]
    pairs["left_is_right_of_image"] = pairs["x_left"] > pairs["x_right"]
    return pairs[keys + ["x_left", "x_right", "same_series", "left_is_right_of_image"]]


def plot_left_right_x(
    pairs: pd.DataFrame, *, ax: Axes | None = None, data_label: str | None = None
) -> Axes:
    """x of the left label against x of the right label, one dot per pair.

    Dots above the diagonal have the patient's left on the image's right (the
    radiological convention). The title gives that share.

    Parameters
    ----------
    pairs : DataFrame
        From :func:`subarticular_pairs`.
    ax : matplotlib Axes or None
    data_label : str or None

    Returns
    -------
    matplotlib.axes.Axes
    """
    if pairs.empty:
        raise ValueError("pairs is empty: no study has both a left and a right label")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    for same, name, marker in ((True, "same series", "o"), (False, "different series", "x")):
        p = pairs[pairs["same_series"] == same]
        if len(p):
            ax.plot(p["x_right"], p["x_left"], marker, markersize=2.5, alpha=0.5,
                    linestyle="none", label=f"{name} ({len(p)})")
    hi = float(max(pairs["x_left"].max(), pairs["x_right"].max())) * 1.05
    ax.plot([0, hi], [0, hi], "--", color="grey", label="x_left = x_right")
    share = 100 * pairs["left_is_right_of_image"].mean()
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    ax.set_xlabel("x of the right-side label (px)")
    ax.set_ylabel("x of the left-side label (px)")
    ax.set_title(_title(f"Left x > right x in {share:.1f} % of {len(pairs)} pairs", data_label),
                 fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return ax


# --------------------------------------------------------------------------- anatomy


class LabelledSlice:
    """A phantom axial slice at a disc and where its structures are.

    Attributes
    ----------
    image : (H, W) float32 ndarray
    landmarks : dict of str to (x, y)
        Pixel position of each named structure (see :func:`labelled_axial_slice`).
    pixel_spacing : float
        Millimetres per pixel.
    level : str
    """

    __slots__ = ("image", "landmarks", "pixel_spacing", "level")

    def __init__(self, image: np.ndarray, landmarks: dict[str, tuple[float, float]],
                 pixel_spacing: float, level: str) -> None:
        self.image = image
        self.landmarks = landmarks
        self.pixel_spacing = pixel_spacing
        self.level = level


def labelled_axial_slice(
    *,
    level: str = "L4/L5",
    left: float = 0.1,
    right: float = 0.1,
    canal: float = 0.1,
    shape: tuple[int, int] = (384, 384),
    pixel_spacing: float = 0.6,
    seed: int = 0,
    noise: bool = True,
) -> LabelledSlice:
    """Render a phantom axial T2 slice through a disc and locate its structures.

    The slice is drawn by the phantom's renderer (:mod:`lss.phantom.axial`) with the
    anatomy centred and unrotated, so that the positions of the structures, known in
    the phantom's anatomy frame (millimetres from the centre of the thecal sac,
    ``u`` toward the patient's left, ``v`` toward the back), map to pixels exactly.

    Landmarks (patient's sides): ``"intervertebral disc"``, ``"thecal sac (CSF)"``,
    ``"nerve rootlets"``, ``"left subarticular recess"``, ``"right subarticular
    recess"``, ``"left facet joint"``, ``"right facet joint"``, ``"ligamentum
    flavum"`` (left), ``"psoas"`` (right), ``"multifidus"`` (left), ``"erector
    spinae"`` (right), ``"subcutaneous fat"``.

    Parameters
    ----------
    level : str
        Disc level.
    left, right, canal : float
        Severity latents in [0, 1] (see :func:`lss.phantom.render_axial`).
    shape : (H, W)
    pixel_spacing : float
        mm per pixel.
    seed : int
        Chooses the patient and the noise.
    noise : bool
        Add Rician noise.

    Returns
    -------
    LabelledSlice
    """
    import math

    from lss.phantom.anatomy import Placement, axial_anatomy, sample_traits
    from lss.phantom.axial import AxialSeriesRenderer

    rng = np.random.default_rng(seed)
    traits = sample_traits(rng)
    anat = axial_anatomy(traits, level, rng, canal=canal, left=left, right=right)
    h, w = int(shape[0]), int(shape[1])
    place = Placement(cx=w / 2, cy=h * 0.42, rotation=0.0, scale=traits.size,
                      pixel_spacing=pixel_spacing)
    renderer = AxialSeriesRenderer((h, w), {level: anat}, {level: place}, rng)
    image = renderer.render(level, 0.0, rng if noise else None)

    # Positions in the anatomy frame at the disc (d = 0), from the phantom's geometry.
    sac_a, sac_b = anat.sac_a, anat.sac_b
    v_pm = -(sac_b + 1.5) + 1.2 * anat.canal  # posterior disc margin
    rootlet = max(anat.rootlets, key=lambda r: r[1])  # the most dorsal one
    marks: dict[str, tuple[float, float]] = {
        "intervertebral disc": (0.0, v_pm - anat.disc_b),
        "thecal sac (CSF)": (0.0, -0.45 * sac_b),
        "nerve rootlets": (rootlet[0] * sac_a, rootlet[1] * sac_b),
        "left subarticular recess": anat.recess("left"),
        "right subarticular recess": anat.recess("right"),
    }
    for side, sg, sev in (("left", 1.0, anat.left), ("right", -1.0, anat.right)):
        ru, rv = anat.recess(side)
        th = anat.facet_angle
        du, dv, nu, nv = sg * math.sin(th), math.cos(th), -sg * math.cos(th), math.sin(th)
        half_len, half_w = 7.5 * (1 + 0.25 * sev), 4.2 * (1 + 0.3 * sev)
        cu = ru + sg * 2.8 - sg * 2.2 * sev + du * half_len
        cv = rv + 1.6 - 1.0 * sev + dv * half_len
        marks[f"{side} facet joint"] = (cu + nu * (half_w + 0.3), cv + nv * (half_w + 0.3))
    th_lf = anat.lf + 2.6 * max(anat.canal, anat.left)
    r_sac = 1.0 / math.sqrt((0.67 / sac_a) ** 2 + (0.74 / sac_b) ** 2)
    r_lf = r_sac + 0.8 + anat.lf - th_lf / 2
    marks["ligamentum flavum"] = (0.67 * r_lf, 0.74 * r_lf)
    marks["psoas"] = (-(0.55 * anat.disc_a + 0.8 * anat.psoas_a + 4.0),
                      -(sac_b + 1.5) - 0.8 * anat.disc_b)
    marks["multifidus"] = (13.5, 40.0)
    marks["erector spinae"] = (-50.0, 41.0)
    marks["subcutaneous fat"] = (0.0, 68.0 + anat.fat - (2.5 + anat.fat) / 2)
    landmarks = {k: place.to_pixel(u, v) for k, (u, v) in marks.items()}
    return LabelledSlice(image, landmarks, pixel_spacing, level)


_WHOLE = ("intervertebral disc", "thecal sac (CSF)", "psoas", "multifidus", "erector spinae",
          "subcutaneous fat")
_ZOOM = ("intervertebral disc", "thecal sac (CSF)", "nerve rootlets", "left subarticular recess",
         "right subarticular recess", "left facet joint", "right facet joint",
         "ligamentum flavum")


def _annotate(ax: Axes, landmarks: Mapping[str, tuple[float, float]], names: Sequence[str],
              box: tuple[float, float, float, float]) -> None:
    """Label ``names`` with arrows from text stacked along the box's left and right edges.

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
            tx = x0 + 0.03 * (x1 - x0) if side == "left" else x1 - 0.03 * (x1 - x0)
            ax.annotate(
                name.replace(" subarticular", "\nsubarticular"),
                xy=landmarks[name], xytext=(tx, ty), textcoords="data",
                ha="left" if side == "left" else "right", va="center", fontsize=7.5,
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
    """An axial slice with its structures named: the whole slice and a zoom on the canal.

    Parameters
    ----------
    labelled : LabelledSlice
        From :func:`labelled_axial_slice`.
    zoom_mm : float
        Half-width of the zoomed panel around the thecal sac, mm.
    axes : two matplotlib Axes or None
    data_label : str or None
        Added to the titles.

    Returns
    -------
    (2,) ndarray of Axes
    """
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 5.6))
    axes = np.asarray(axes, dtype=object).ravel()
    if axes.size != 2:
        raise ValueError(f"axes must be two Axes, got {axes.size}")
    img, marks = labelled.image, labelled.landmarks
    h, w = img.shape
    lo, hi = _display_range(img, None, None)
    whole, zoom = axes
    plot_slice(img, ax=whole, orientation="axial", vmin=lo, vmax=hi,
               title=_title(f"Axial T2 at {labelled.level}: the whole slice", data_label))
    _annotate(whole, marks, _WHOLE, (0, w - 1, 0, h - 1))
    cx, cy = marks["thecal sac (CSF)"]
    r = zoom_mm / labelled.pixel_spacing
    box = (cx - r, cx + r, cy - 1.1 * r, cy + 0.9 * r)  # x left, x right, y top, y bottom
    plot_slice(img, ax=zoom, orientation="axial", vmin=lo, vmax=hi,
               title=_title(f"Zoom on the spinal canal ({2 * zoom_mm:.0f} mm wide)", data_label))
    zoom.set_xlim(box[0], box[1])
    zoom.set_ylim(box[3], box[2])  # rows run down
    _annotate(zoom, marks, _ZOOM, box)
    rect = plt.Rectangle((box[0], box[2]), box[1] - box[0], box[3] - box[2], fill=False,
                         color="tab:orange", linewidth=1, linestyle="--")
    whole.add_patch(rect)
    return axes


# --------------------------------------------------------------------------- labelled slices


def read_labelled_slice(
    root: Any, row: Any, *, split: str = "train"
) -> tuple[np.ndarray, tuple[float, float], Any]:
    """The slice an index row points at, its labelled point, and its series header.

    Only the headers of the series and the one slice's pixels are read.

    Parameters
    ----------
    root : str or Path
        The data root.
    row : pandas row or mapping
        A row of :func:`lss.data.build_index` (``study_id``, ``series_id``,
        ``instance_number``, ``x``, ``y``). A missing instance number means the
        middle slice (the index's rule for a study without a coordinate row); its
        point is then (NaN, NaN).
    split : {"train", "test"}

    Returns
    -------
    image : (H, W) float32 ndarray
    point : (x, y)
    header : lss.data.SeriesHeader
    """
    import pydicom

    from lss.data import decode_slice, scan_series, series_dir

    r = row._asdict() if hasattr(row, "_asdict") else dict(row)  # itertuples() row or mapping
    header = scan_series(series_dir(root, r["study_id"], r["series_id"], split=split))
    inst = r["instance_number"]
    k = len(header.paths) // 2 if pd.isna(inst) else header.index_of(int(inst))
    path = header.paths[k]
    image = decode_slice(pydicom.dcmread(path), path)
    return image, (float(r["x"]), float(r["y"])), header


def plot_labelled_examples(
    root: Any,
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
    root : str or Path
        The data root.
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
    if axes is None:
        _, axes = plt.subplots(2, k, figsize=(3.3 * k, 7.2), squeeze=False)
    axes = np.asarray(axes, dtype=object).reshape(2, k)
    for j, row in enumerate(rows.itertuples(index=False)):
        img, point, header = read_labelled_slice(root, row)
        grade = names[int(row.label)]
        plot_slice(img, point=point, ax=axes[0, j], orientation="axial",
                   title=f"study {row.study_id}: {grade}\ninstance {row.instance_number}, "
                         f"{img.shape[0]}x{img.shape[1]} px")
        if np.all(np.isfinite(point)):
            plot_slice(img, point=point, ax=axes[1, j], zoom=zoom_mm / header.pixel_spacing[1],
                       title=f"{2 * zoom_mm:.0f} mm around (x, y) = "
                             f"({point[0]:.0f}, {point[1]:.0f})")
        else:
            axes[1, j].axis("off")
    if data_label:
        axes[0, 0].figure.suptitle(data_label, fontsize=9)
    return axes
