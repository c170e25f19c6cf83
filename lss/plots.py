"""Figures the chapters draw: confusion matrix, training curves, reliability, classes.

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
        if key == "accuracy" and baseline_accuracy is not None:
            ax.axhline(baseline_accuracy, color="grey", linestyle="--", label="majority baseline")
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
