"""Figures of results: confusion matrices, training curves, reliability, class shares,
the comparison table, the model's architecture and a run beside the paper's figures.

Every function draws into ``ax`` (or ``axes``) when given one and creates a figure
otherwise, and returns what it drew into; ``data_label`` names the data in the title.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from lss.config import (
    LABEL_MAP,
    LOWER_IS_BETTER,
    PAPER_EPOCHS,
    PAPER_RESULTS,
    REAL_MAJORITY_SHARE,
    SEVERITIES,
)
from lss.metrics import calibration_table, real_prior_log_loss
from lss.model import shape_text, slice_cnn
from lss.run import check_history
from lss.viz._style import SMALL_PT, TITLE_PT, data_title, page_subplots

__all__ = [
    "plot_confusion_matrix",
    "plot_history",
    "plot_reliability",
    "plot_class_distribution",
    "plot_left_right_x",
    "plot_experiment_table",
    "plot_architecture",
    "plot_paper_comparison",
]


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
        _, ax = page_subplots(width=4.5, height=4)
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
    ax.set_title(data_title(base, data_label), fontsize=TITLE_PT)
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
        _, axes = page_subplots(1, 2, height=3.3)
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
        ax.set_title(data_title(key.capitalize(), data_label), fontsize=TITLE_PT)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=SMALL_PT)
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
        _, ax = page_subplots(width=4, height=4)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="calibrated")
    ax.plot(used.confidence, used.accuracy, "-o", label="model")
    for _, row in used.iterrows():
        ax.annotate(
            f"{int(row.n)}",
            (row.confidence, row.accuracy),
            fontsize=SMALL_PT,
            textcoords="offset points",
            xytext=(3, -9),
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("fraction correct")
    ax.set_title(data_title(f"Reliability (ECE = {ece:.3f}, N = {int(table.n.sum())})",
                            data_label), fontsize=TITLE_PT)
    ax.legend(loc="upper left", fontsize=SMALL_PT)
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
        _, ax = page_subplots(width=4.5, height=3.5)
    sns.barplot(x=list(names), y=counts, color="tab:blue", ax=ax)
    for i, n in enumerate(counts):
        ax.annotate(f"{n}\n({100 * n / total:.1f} %)", (i, n), ha="center", va="bottom",
                    fontsize=SMALL_PT)
    ax.set_ylim(0, counts.max() * 1.25)
    ax.set_ylabel("studies")
    ax.set_title(data_title(title or f"Classes (N = {total})", data_label), fontsize=TITLE_PT)
    return ax


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
        _, ax = page_subplots(width=4.5, height=4.5)
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
    ax.set_title(data_title(f"Left x > right x in {share:.1f} % of {len(pairs)} pairs",
                            data_label),
                 fontsize=TITLE_PT)
    ax.legend(fontsize=SMALL_PT, loc="lower right")
    return ax


def plot_experiment_table(table: pd.DataFrame, *, data_label: str,
                          metrics: Sequence[str] = ("balanced_accuracy", "macro_f1",
                                                    "rsna_log_loss"), axes=None):
    """One horizontal bar chart per metric, the reference points as dashed lines.

    The panels share one legend, under them (in a figure made here; in the first panel
    when ``axes`` are given).

    Returns
    -------
    ndarray of matplotlib Axes
    """
    models = table[(table["kind"] == "model") & table["balanced_accuracy"].notna()]
    refs = table[table["kind"] == "reference"].set_index("experiment")
    own = axes is None
    if own:
        _, axes = page_subplots(1, len(metrics), height=0.3 * len(models) + 1.9, sharey=True)
    axes = np.atleast_1d(axes)
    legend: dict[str, Any] = {}
    for ax, metric in zip(axes, metrics, strict=True):
        ax.barh(models["experiment"], models[metric], color="tab:blue")
        for name, style in (("majority", "--"), ("prior", ":"), ("weighted_prior", "-.")):
            if name in refs.index and pd.notna(refs.loc[name, metric]):
                legend[name] = ax.axvline(refs.loc[name, metric], color="k", linestyle=style,
                                          label=name)
        if metric not in LOWER_IS_BETTER:
            ax.set_xlim(0, 1)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.set_title(metric.replace("_", " ") + ("\n(lower is better)"
                                                 if metric in LOWER_IS_BETTER else ""),
                     fontsize=SMALL_PT)
    fig = axes[0].figure
    if legend and own:
        fig.legend(list(legend.values()), list(legend), loc="outside lower center",
                   ncols=len(legend), fontsize=SMALL_PT, title="reference points",
                   title_fontsize=SMALL_PT)
    elif legend:
        axes[0].legend(list(legend.values()), list(legend), fontsize=SMALL_PT,
                       loc="lower right")
    axes[0].invert_yaxis()
    fig.suptitle(data_title("Beyond the paper, validation split", data_label),
                 fontsize=TITLE_PT)
    if not own and fig.get_layout_engine() is None:
        fig.tight_layout()
    return axes


def _layer_text(layer: keras.layers.Layer) -> str:
    """A box label: the layer's name and what it does, in a few words, on one line."""
    L = keras.layers  # noqa: N806
    if isinstance(layer, L.Conv2D):
        what = f"{'x'.join(map(str, layer.kernel_size))} conv, {layer.filters} filters, " \
               f"{layer.activation.__name__}"
    elif isinstance(layer, L.MaxPooling2D):
        what = "max pool " + "x".join(map(str, layer.pool_size))
    elif isinstance(layer, L.GlobalAveragePooling2D):
        what = "global average pool"
    elif isinstance(layer, L.LSTM):
        what = f"{layer.units} units"
    elif isinstance(layer, L.Dropout):
        what = f"rate {layer.rate:g}"
    elif isinstance(layer, L.Dense):
        what = f"{layer.units} units, {layer.activation.__name__}"
    elif isinstance(layer, L.InputLayer):
        return "input: the window's slices"
    elif layer.name == "augmentation":
        done = [name for name, on in (("rotate", getattr(layer, "rotation_degrees", 1)),
                                      ("zoom", getattr(layer, "zoom", 1)),
                                      ("flip", getattr(layer, "horizontal_flip", True))) if on]
        what = ", ".join(done) + " (training only)"
    else:
        what = type(layer).__name__
    return f"{layer.name}: {what}"


#: Box colours of the architecture diagram: input, per-slice CNN, sequence and head.
_STAGE_COLOURS = {"input": "#dddddd", "cnn": "#cfe2f3", "head": "#fce5cd"}


def _architecture_boxes(model: keras.Model) -> list[tuple[str, str, str]]:
    """(label, output shape, stage) of each box, the per-slice CNN's layers inlined."""
    td = slice_cnn(model)
    boxes = []
    for layer in model.layers:
        if layer is td:
            boxes += [(_layer_text(inner), shape_text(inner.output.shape), "cnn")
                      for inner in td.layer.layers]
            continue
        stage = "input" if isinstance(layer, keras.layers.InputLayer) or (
            layer.name == "augmentation") else "head"
        boxes.append((_layer_text(layer), shape_text(layer.output.shape), stage))
    return boxes


def plot_architecture(model: keras.Model, *, ax: Any = None, data_label: str | None = None
                      ) -> Any:
    """A box diagram of the CNN-LSTM, one box per layer from top to bottom, each with the
    shape it outputs.

    The per-slice CNN is drawn once, inside a frame that says it runs on every slice
    with the same weights. Shapes are per study (no batch axis); inside the frame they
    are per slice.

    Returns
    -------
    matplotlib.axes.Axes
    """
    from matplotlib.patches import FancyBboxPatch

    n_slices = slice_cnn(model).input.shape[1]
    boxes = _architecture_boxes(model)
    n = len(boxes)
    if ax is None:
        _, ax = page_subplots(height=0.4 * n + 1.1)
    x0, x1, xs = 2.5, 7.0, 7.25  # box left and right, shape column (of 10 units)
    for i, (text, shape, stage) in enumerate(boxes):
        ax.add_patch(FancyBboxPatch((x0, i - 0.33), x1 - x0, 0.66, boxstyle="round,pad=0.02",
                                    fc=_STAGE_COLOURS[stage], ec="black", lw=0.8))
        ax.text((x0 + x1) / 2, i, text, ha="center", va="center", fontsize=SMALL_PT)
        ax.text(xs, i, shape, ha="left", va="center", fontsize=SMALL_PT, color="#333333")
        if i:
            ax.annotate("", ((x0 + x1) / 2, i - 0.33), ((x0 + x1) / 2, i - 0.67),
                        arrowprops={"arrowstyle": "->", "lw": 0.8})
    ax.text(xs, -0.85, "output shape", ha="left", va="center", fontsize=SMALL_PT,
            style="italic")
    cnn = [i for i, b in enumerate(boxes) if b[2] == "cnn"]
    top, bottom = cnn[0] - 0.5, cnn[-1] + 0.5
    ax.add_patch(FancyBboxPatch((x0 - 0.2, top), 9.9 - x0, bottom - top,
                                boxstyle="round,pad=0.02", fc="none", ec="tab:blue", lw=1.2,
                                ls="--"))
    ax.text(0.05, (top + bottom) / 2, f"TimeDistributed:\nthe same CNN on\neach of the "
            f"{n_slices}\nslices, one set\nof weights;\nshapes per slice", ha="left",
            va="center", fontsize=SMALL_PT, color="tab:blue")
    ax.set_xlim(0, 10)
    ax.set_ylim(n - 0.4, -1.2)  # first layer at the top
    ax.axis("off")
    title = f"{model.name}: {model.count_params():,} parameters"
    title += "; shapes per study, without the batch axis"
    ax.set_title(data_title(title, data_label), fontsize=TITLE_PT)
    return ax


def plot_paper_comparison(history: pd.DataFrame, *, majority_accuracy: float,
                          data_label: str, prior_log_loss: float | None = None,
                          axes: Any = None) -> np.ndarray:
    """A run's loss and validation accuracy per epoch, with the paper's reported points.

    The paper reports only its first and last epoch (of 20) and its final validation
    accuracy; they are drawn as open markers at epochs 1 and 20, labelled as the
    paper's (real scans). References are drawn as lines, the run's own split dashed
    and the real labels' dotted: the accuracy of always answering Normal/Mild (45.0 %
    on the real labels) and, on the loss panel, the log loss of predicting the class
    shares (``prior_log_loss`` for the run; :func:`real_prior_log_loss` for the paper).

    Returns
    -------
    (2,) ndarray of Axes: loss, accuracy.
    """
    check_history(history, data_label)
    h = history.reset_index(drop=True)
    own = axes is None
    if own:
        _, axes = page_subplots(1, 2, height=5.2)
    axes = np.asarray(axes, dtype=object).ravel()
    epochs = np.arange(1, len(h) + 1)
    ends = [1, PAPER_EPOCHS]
    loss_ax, acc_ax = axes
    loss_ax.plot(epochs, h["loss"], "-o", ms=3, color="tab:blue", label="training (this run)")
    loss_ax.plot(epochs, h["val_loss"], "-s", ms=3, color="tab:orange",
                 label="validation (this run)")
    # the paper reports first and last epoch only: markers, no line between them
    loss_ax.plot(ends, [PAPER_RESULTS["train_loss_first_epoch"],
                        PAPER_RESULTS["train_loss_last_epoch"]], "o", mfc="none", ms=8,
                 color="tab:blue", label="training (paper, real scans)")
    loss_ax.plot(ends, [PAPER_RESULTS["val_loss_first_epoch"],
                        PAPER_RESULTS["val_loss_last_epoch"]], "s", mfc="none", ms=8,
                 color="tab:orange", label="validation (paper, real scans)")
    if prior_log_loss is not None:
        loss_ax.axhline(prior_log_loss, color="grey", ls="--",
                        label="class shares only (this run's split)")
    loss_ax.axhline(real_prior_log_loss(), color="black", ls=":",
                    label="class shares only (real labels)")
    loss_ax.set_ylabel("loss (categorical cross-entropy)")
    acc_ax.plot(epochs, h["val_accuracy"], "-s", ms=3, color="tab:orange",
                label="validation (this run)")
    acc_ax.plot([PAPER_EPOCHS], [PAPER_RESULTS["val_accuracy"]], "s", mfc="none", ms=8,
                color="tab:orange", label="validation, last epoch (paper, real scans)")
    acc_ax.axhline(majority_accuracy, color="grey", ls="--",
                   label="always Normal/Mild (this run's split)")
    acc_ax.axhline(REAL_MAJORITY_SHARE, color="black", ls=":",
                   label="always Normal/Mild (real labels)")
    acc_ax.set_ylabel("validation accuracy")
    for ax, name in ((loss_ax, "Loss"), (acc_ax, "Validation accuracy")):
        ax.set_xlabel("epoch")
        ax.set_xlim(0.5, max(PAPER_EPOCHS, len(h)) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(name, fontsize=TITLE_PT)
        # under the panel: six entries inside it would cover the curves
        ax.legend(fontsize=SMALL_PT, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    fig = axes[0].figure
    run = textwrap.fill(f"This run: {data_label.strip()} (filled markers, dashed reference)",
                        90, break_long_words=False)
    fig.suptitle(f"{run}\nThe paper: RSNA 2024 real scans, its reported first and last "
                 "epoch\n(open markers, dotted reference)", fontsize=TITLE_PT)
    if not own and fig.get_layout_engine() is None:
        fig.tight_layout()
    return axes
