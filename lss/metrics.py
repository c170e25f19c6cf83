"""Scores for one graded target, always beside the scores of trivial predictors.

The paper's CNN-LSTM reached about 51 % validation accuracy where always answering
"Normal/Mild" already scores about 45 %, so a number means little alone. Every report
here therefore carries two reference points computed on the same validation split:

* **majority**: always predict the training split's most frequent class;
* **prior**: predict the training split's class frequencies for every row (the best
  constant probabilistic guess, and the reference for the RSNA log loss).

Labels are class indices ``0, 1, 2`` in the order of :data:`lss.config.SEVERITIES`;
probabilities are ``(N, 3)`` arrays with rows in that order. Nothing here modifies its
inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from lss.config import METRICS, PRIMARY_METRIC, REAL_CLASS_COUNTS, RSNA_SAMPLE_WEIGHTS, SEVERITIES

__all__ = [
    "classification_report",
    "rsna_log_loss",
    "majority_baseline",
    "prior_baseline",
    "calibration_table",
    "evaluate",
    "format_report",
    "score",
    "paired_bootstrap",
    "weighted_prior",
    "real_prior_log_loss",
    "constant_answers",
]


def _labels_array(y: Any, n_classes: int, what: str = "y_true") -> np.ndarray:
    """Validated copy of integer class labels, shape (N,)."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        hint = "; use y.argmax(axis=1) for one-hot labels" if arr.ndim == 2 else ""
        raise ValueError(f"{what} must be 1-D class indices, got shape {arr.shape}{hint}")
    if arr.size == 0:
        raise ValueError(f"{what} is empty")
    if arr.dtype.kind not in "iuf" or arr.dtype == bool:
        raise ValueError(f"{what} must hold integer class indices, got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        if np.isnan(arr).any():
            raise ValueError(f"{what} contains {int(np.isnan(arr).sum())} NaN value(s)")
        if not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"{what} must hold integer class indices, got non-integer values")
    arr = arr.astype(np.int64)
    bad = arr[(arr < 0) | (arr >= n_classes)]
    if bad.size:
        raise ValueError(
            f"{what} must be class indices in [0, {n_classes - 1}], got {sorted(set(bad.tolist()))}"
        )
    return arr


def _proba_array(proba: Any, n_rows: int, n_classes: int, *, allow_zero_rows: bool = False
                 ) -> np.ndarray:
    """Validated float64 copy of probabilities, shape (N, K); rows need not sum to 1
    (nor be non-zero, with ``allow_zero_rows``)."""
    p = np.array(proba, dtype=np.float64)  # a copy
    if p.ndim != 2 or p.shape[1] != n_classes:
        raise ValueError(f"proba must have shape (N, {n_classes}), got {p.shape}")
    if p.shape[0] != n_rows:
        raise ValueError(f"proba has {p.shape[0]} rows but y_true has {n_rows} labels")
    if not np.isfinite(p).all():
        raise ValueError(f"proba contains {int((~np.isfinite(p)).sum())} NaN or infinite value(s)")
    if (p < 0).any():
        raise ValueError(f"proba contains {int((p < 0).sum())} negative value(s)")
    zero = np.flatnonzero(p.sum(axis=1) == 0)
    if zero.size and not allow_zero_rows:
        raise ValueError(f"proba rows {zero.tolist()[:10]} sum to 0")
    return p


def classification_report(
    y_true: Sequence[int] | np.ndarray,
    proba: np.ndarray,
    *,
    labels: Sequence[str] = SEVERITIES,
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, per-class and macro scores, confusion matrix.

    The predicted class is the argmax of each row of ``proba``. Precision, recall and
    F1 come from scikit-learn with ``zero_division=0`` (a class never predicted gets
    precision 0). Balanced accuracy is the mean recall over the classes present in
    ``y_true``.

    Parameters
    ----------
    y_true : (N,) array of int
        True class indices.
    proba : (N, K) array of float
        Predicted probabilities (or any scores), ``K = len(labels)``.
    labels : sequence of str
        Class names, in column order.

    Returns
    -------
    dict
        ``n``, ``accuracy``, ``balanced_accuracy``, ``per_class`` (``{name: {precision,
        recall, f1, support}}``), ``macro`` (``{precision, recall, f1}``) and
        ``confusion_matrix`` (K lists of K counts; row = true, column = predicted).

    Examples
    --------
    >>> r = classification_report([0, 0, 1, 2], [[.8, .1, .1], [.3, .6, .1],
    ...                                          [.2, .7, .1], [.1, .2, .7]])
    >>> r["accuracy"], r["confusion_matrix"]
    (0.75, [[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    """
    k = len(labels)
    y = _labels_array(y_true, k)
    p = _proba_array(proba, len(y), k)
    pred = p.argmax(axis=1)
    idx = list(range(k))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y, pred, labels=idx, zero_division=0
    )
    macro = skm.precision_recall_fscore_support(
        y, pred, labels=idx, average="macro", zero_division=0
    )
    present = support > 0
    return {
        "n": int(len(y)),
        "accuracy": float(skm.accuracy_score(y, pred)),
        "balanced_accuracy": float(recall[present].mean()),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(labels)
        },
        "macro": {"precision": float(macro[0]), "recall": float(macro[1]), "f1": float(macro[2])},
        "confusion_matrix": skm.confusion_matrix(y, pred, labels=idx).tolist(),
    }


def rsna_log_loss(
    y_true: Sequence[int] | np.ndarray,
    proba: np.ndarray,
    *,
    weights: Sequence[float] = RSNA_SAMPLE_WEIGHTS,
    eps: float | None = None,
) -> float:
    """The RSNA 2024 competition's weighted log loss, for one condition group.

    Computed as the competition's scorer computes it (``sklearn.metrics.log_loss`` as
    of 2024, called by its ``score`` on the submitted rows; see the scorer published
    with adamnarai/kaggle-rsna-2024, ``rsna2024/utils/rsna_lumbar_metric.py``): every
    entry of ``proba`` is clipped to ``[eps, 1 - eps]`` *first* (an entry above 1 is
    clipped, not scaled), then each row is divided by its sum, so a row of zeros counts
    as the uniform answer; then

    ``loss = sum_i w[y_i] * -log p[i, y_i] / sum_i w[y_i]``

    with sample weights ``w = (1, 2, 4)`` for Normal/Mild, Moderate, Severe.
    ``weights=(1, 1, 1)`` gives the ordinary log loss.

    This is one term of the competition's score, not the score: the competition pools
    the rows of all levels (and both sides) into three condition groups (spinal canal,
    foraminal, subarticular), takes this loss per group, adds an "any severe spinal"
    term per study and averages the four. For the single target of this project the
    loss of its rows is this function.

    Parameters
    ----------
    y_true : (N,) array of int
        True class indices.
    proba : (N, K) array of float
        Non-negative scores per class; rows need not sum to 1.
    weights : sequence of float
        Weight of a row of each true class, length K.
    eps : float, optional
        Clip floor; default the machine epsilon of float64 (what the scorer's
        ``log_loss(eps="auto")`` uses), which bounds a confident mistake at about 36.

    Examples
    --------
    >>> round(rsna_log_loss([0, 1, 2], [[.5, .25, .25]] * 3), 4)  # (1*ln2 + 6*ln4) / 7
    1.2873
    >>> round(rsna_log_loss([0, 1], [[0, 0, 0], [2, 0, 0]]), 4)  # uniform; a sure mistake
    24.3953
    """
    k = len(weights)
    y = _labels_array(y_true, k)
    p = _proba_array(proba, len(y), k, allow_zero_rows=True)
    w = np.asarray(weights, dtype=np.float64)
    if not np.isfinite(w).all() or (w <= 0).any():
        raise ValueError(f"weights must be positive and finite, got {tuple(weights)}")
    eps = float(np.finfo(np.float64).eps) if eps is None else float(eps)
    if not 0 < eps < 1 / k:
        raise ValueError(f"eps must be in (0, 1/{k}), got {eps}")
    p = np.clip(p, eps, 1 - eps)
    p = p / p.sum(axis=1, keepdims=True)
    sw = w[y]
    return float(np.sum(sw * -np.log(p[np.arange(len(y)), y])) / sw.sum())


def majority_baseline(
    y_train: Sequence[int] | np.ndarray,
    y_val: Sequence[int] | np.ndarray,
    *,
    labels: Sequence[str] = SEVERITIES,
) -> dict[str, Any]:
    """Always predict the training split's most frequent class; scored on ``y_val``.

    Ties go to the lower class index (the milder grade).

    Returns
    -------
    dict
        ``class`` (its name), ``class_index``, ``accuracy``, ``balanced_accuracy`` and
        ``macro_f1`` on the validation labels.

    Examples
    --------
    >>> majority_baseline([0, 0, 1, 2], [0, 1, 1, 2])["accuracy"]
    0.25
    """
    k = len(labels)
    y_tr = _labels_array(y_train, k, "y_train")
    y_va = _labels_array(y_val, k, "y_val")
    c = int(np.bincount(y_tr, minlength=k).argmax())
    report = classification_report(y_va, np.eye(k)[np.full(len(y_va), c)], labels=labels)
    return {
        "class": labels[c],
        "class_index": c,
        "accuracy": report["accuracy"],
        "balanced_accuracy": report["balanced_accuracy"],
        "macro_f1": report["macro"]["f1"],
    }


def prior_baseline(
    y_train: Sequence[int] | np.ndarray,
    y_val: Sequence[int] | np.ndarray,
    *,
    weights: Sequence[float] = RSNA_SAMPLE_WEIGHTS,
) -> dict[str, Any]:
    """Predict the training split's class frequencies for every validation row.

    The best constant probabilistic prediction under the (unweighted) log loss on the
    training split: a model that does not beat it has learned nothing usable from the
    images. Its argmax is the majority class. A class absent from the training split
    gets probability ``eps`` (see :func:`rsna_log_loss`).

    Returns
    -------
    dict
        ``prior`` (the K training frequencies), ``rsna_log_loss`` (weighted 1/2/4) and
        ``log_loss`` (unweighted) on the validation labels.

    Examples
    --------
    >>> round(prior_baseline([0, 0, 1, 2], [0])["log_loss"], 4)  # -ln(1/2)
    0.6931
    """
    k = len(weights)
    y_tr = _labels_array(y_train, k, "y_train")
    y_va = _labels_array(y_val, k, "y_val")
    prior = np.bincount(y_tr, minlength=k) / len(y_tr)
    proba = np.tile(prior, (len(y_va), 1))
    return {
        "prior": prior.tolist(),
        "rsna_log_loss": rsna_log_loss(y_va, proba, weights=weights),
        "log_loss": rsna_log_loss(y_va, proba, weights=(1.0,) * k),
    }


def calibration_table(
    y_true: Sequence[int] | np.ndarray,
    proba: np.ndarray,
    *,
    n_bins: int = 10,
) -> pd.DataFrame:
    """Reliability of the top-class probability, in equal-width confidence bins.

    Each row is scored by its confidence (the largest probability, after normalising
    the row) and whether its argmax is right. Bins are ``[0, 1/n_bins), ...,
    [1 - 1/n_bins, 1]``; empty bins are kept with ``n = 0`` and NaN means.

    Returns
    -------
    pandas.DataFrame
        One row per bin: ``lower``, ``upper``, ``n``, ``confidence`` (mean) and
        ``accuracy``. The expected calibration error is
        ``(df.n * (df.accuracy - df.confidence).abs()).sum() / df.n.sum()``.

    Examples
    --------
    >>> calibration_table([0, 1], [[.9, .05, .05], [.9, .05, .05]], n_bins=2).n.tolist()
    [0, 2]
    """
    if isinstance(n_bins, bool) or int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    p = np.asarray(proba)
    k = p.shape[1] if p.ndim == 2 else len(SEVERITIES)
    y = _labels_array(y_true, k)
    p = _proba_array(p, len(y), k)
    p = p / p.sum(axis=1, keepdims=True)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        m = which == b
        rows.append(
            {
                "lower": edges[b],
                "upper": edges[b + 1],
                "n": int(m.sum()),
                "confidence": float(confidence[m].mean()) if m.any() else np.nan,
                "accuracy": float(correct[m].mean()) if m.any() else np.nan,
            }
        )
    return pd.DataFrame(rows)


def evaluate(
    y_true: Sequence[int] | np.ndarray,
    proba: np.ndarray,
    *,
    y_train: Sequence[int] | np.ndarray,
    labels: Sequence[str] = SEVERITIES,
) -> dict[str, Any]:
    """The model's scores on a validation split beside both reference points.

    Parameters
    ----------
    y_true : (N,) array of int
        Validation labels.
    proba : (N, K) array of float
        The model's validation probabilities.
    y_train : array of int
        Training labels, for the reference points.

    Returns
    -------
    dict
        ``model`` (:func:`classification_report` plus ``rsna_log_loss`` and
        ``log_loss``), ``majority`` (:func:`majority_baseline`), ``prior``
        (:func:`prior_baseline`), ``n_val`` and ``n_train``. Feed it to
        :func:`format_report`.
    """
    k = len(labels)
    model = classification_report(y_true, proba, labels=labels)
    model["rsna_log_loss"] = rsna_log_loss(y_true, proba)
    model["log_loss"] = rsna_log_loss(y_true, proba, weights=(1.0,) * k)
    return {
        "model": model,
        "majority": majority_baseline(y_train, y_true, labels=labels),
        "prior": prior_baseline(y_train, y_true),
        "n_val": model["n"],
        "n_train": int(len(np.asarray(y_train))),
    }


_ROWS = (
    # (row label, key in model, key in majority, key in prior); None: not defined there
    ("accuracy", "accuracy", "accuracy", None),
    ("balanced accuracy", "balanced_accuracy", "balanced_accuracy", None),
    ("macro F1", ("macro", "f1"), "macro_f1", None),
    ("RSNA weighted log loss", "rsna_log_loss", None, "rsna_log_loss"),
    ("log loss", "log_loss", None, "log_loss"),
)


def format_report(report: Mapping[str, Any], *, data_label: str) -> str:
    """A small text table: the model beside the majority and prior reference points.

    Accuracy, balanced accuracy and macro F1: higher is better; log losses: lower is
    better. "-" marks a score the reference point does not define (a hard majority
    vote has no useful log loss; the prior's argmax is the majority vote).

    Parameters
    ----------
    report : dict
        From :func:`evaluate`.
    data_label : str
        Which data the numbers come from, printed first, e.g. ``"synthetic phantom
        (seed 0)"`` or ``"RSNA 2024 train, 20 % validation split"``. Required, so that
        numbers on a phantom are never read as numbers on real scans.

    Examples
    --------
    >>> rep = evaluate([0, 1, 2, 0], [[.7, .2, .1], [.2, .7, .1], [.6, .3, .1],
    ...                              [.5, .3, .2]], y_train=[0, 0, 1, 2])
    >>> print(format_report(rep, data_label="toy example"))
    Data: toy example (validation n = 4, training n = 4)
    metric                   model  majority   prior
    accuracy                 0.750     0.500       -
    balanced accuracy        0.667     0.333       -
    macro F1                 0.600     0.222       -
    RSNA weighted log loss   1.372         -   1.213
    log loss                 0.927         -   1.040
    majority: always 'Normal/Mild', the training split's most frequent class.
    prior: the training frequencies (0.50, 0.25, 0.25) for every row.
    """
    if not isinstance(data_label, str) or not data_label.strip():
        raise ValueError(f"data_label must name the data the numbers come from, got {data_label!r}")
    missing = [key for key in ("model", "majority", "prior") if key not in report]
    if missing:
        raise ValueError(f"report lacks {missing}; build it with lss.metrics.evaluate")
    cols = {"model": report["model"], "majority": report["majority"], "prior": report["prior"]}

    def cell(source: Mapping[str, Any], key: Any) -> str:
        if key is None:
            return "-"
        value = source[key[0]][key[1]] if isinstance(key, tuple) else source[key]
        return f"{value:.3f}"

    width = max(len(r[0]) for r in _ROWS) + 3
    lines = [
        f"Data: {data_label.strip()} (validation n = {report.get('n_val', '?')}, "
        f"training n = {report.get('n_train', '?')})",
        f"{'metric':<{width}}{'model':>5}{'majority':>10}{'prior':>8}",
    ]
    for name, k_model, k_major, k_prior in _ROWS:
        lines.append(
            f"{name:<{width}}{cell(cols['model'], k_model):>5}"
            f"{cell(cols['majority'], k_major):>10}{cell(cols['prior'], k_prior):>8}"
        )
    prior = ", ".join(f"{v:.2f}" for v in cols["prior"]["prior"])
    lines.append(
        f"majority: always '{cols['majority']['class']}', the training split's most frequent class."
    )
    lines.append(f"prior: the training frequencies ({prior}) for every row.")
    return "\n".join(lines)


# --------------------------------------------------------------------------- statistics


def score(y: np.ndarray, proba: np.ndarray, metric: str) -> float:
    """One metric of :data:`lss.config.METRICS`, as :func:`evaluate` computes it, without
    its checks and report (fast enough to call a thousand times in a bootstrap).

    Examples
    --------
    >>> score(np.array([0, 1, 2]), np.eye(3)[[0, 1, 1]], "balanced_accuracy")
    0.6666666666666666
    """
    if metric == "rsna_log_loss":
        return rsna_log_loss(y, proba)
    if metric == "log_loss":
        return rsna_log_loss(y, proba, weights=(1.0, 1.0, 1.0))
    pred = proba.argmax(axis=1)
    if metric == "accuracy":
        return float(np.mean(pred == y))
    k = proba.shape[1]
    tp = np.array([np.sum((pred == c) & (y == c)) for c in range(k)], dtype=float)
    support = np.bincount(y, minlength=k).astype(float)
    predicted = np.bincount(pred, minlength=k).astype(float)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    if metric == "balanced_accuracy":
        return float(recall[support > 0].mean())
    if metric == "macro_f1":
        precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
        denom = precision + recall
        f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
        return float(f1.mean())
    raise ValueError(f"Unknown metric '{metric}'; expected one of {METRICS}")


def paired_bootstrap(y: np.ndarray, proba_a: np.ndarray, proba_b: np.ndarray, *,
                     metric: str = PRIMARY_METRIC, n_boot: int = 1000, seed: int = 0
                     ) -> tuple[float, float, float]:
    """Difference ``metric(b) - metric(a)`` on the same studies, with a 95 % interval.

    The validation studies are resampled with replacement ``n_boot`` times; both
    models are scored on each resample, so the interval reflects how much the
    difference depends on which studies happen to be in a small validation split.

    Returns
    -------
    (difference, low, high)
    """
    y = np.asarray(y, dtype=int)
    a, b = np.asarray(proba_a, float), np.asarray(proba_b, float)
    diff = score(y, b, metric) - score(y, a, metric)
    if n_boot < 1:
        return diff, np.nan, np.nan
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot)
    for i in range(n_boot):
        s = rng.integers(0, len(y), len(y))
        draws[i] = score(y[s], b[s], metric) - score(y[s], a[s], metric)
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(diff), float(low), float(high)


def weighted_prior(y_train: Sequence[int] | np.ndarray,
                   weights: Sequence[float] = RSNA_SAMPLE_WEIGHTS) -> np.ndarray:
    """The constant probabilities with the lowest *weighted* log loss on ``y_train``.

    Minimising ``sum_i w[y_i] * -log p[y_i]`` over one probability vector ``p`` gives
    ``p_c = w_c n_c / sum_k w_k n_k``: the class counts weighted as the metric weights
    them. Under the RSNA weights 1/2/4 this constant leans toward Severe, and beats the
    plain training prior on the RSNA log loss without looking at a single image, so a
    model must beat *it* before its RSNA log loss says anything about the images.

    Examples
    --------
    >>> weighted_prior([0, 0, 0, 0, 1, 1, 2]).round(3).tolist()  # counts 4, 2, 1 -> 4, 4, 4
    [0.333, 0.333, 0.333]
    """
    counts = np.bincount(np.asarray(y_train, dtype=int), minlength=len(weights)).astype(float)
    mass = counts * np.asarray(weights, dtype=float)
    if mass.sum() <= 0:
        raise ValueError("y_train is empty")
    return mass / mass.sum()


def real_prior_log_loss() -> float:
    """Log loss of always predicting the real labels' class shares (45/32/23 %).

    The entropy of :data:`lss.config.REAL_CLASS_COUNTS`, about 1.063: the validation loss of a
    model that learned the class frequencies and nothing from the images, on the real
    data (a validation split's value differs by sampling noise).

    >>> round(real_prior_log_loss(), 4)
    1.0632
    """
    p = np.asarray(REAL_CLASS_COUNTS, dtype=float) / sum(REAL_CLASS_COUNTS)
    return float(-(p * np.log(p)).sum())


def constant_answers(y_train: Sequence[int] | np.ndarray, y_eval: Sequence[int] | np.ndarray,
                     weights: Sequence[float] = RSNA_SAMPLE_WEIGHTS) -> pd.DataFrame:
    """The three constant answers a model must beat, scored on ``y_eval``.

    ``prior`` (the training frequencies) is the best constant for the plain log loss;
    ``weighted_prior`` (:func:`weighted_prior`) is the best constant for the weighted one;
    ``uniform`` (1/3 each) is neither, yet under the RSNA weights 1/2/4 it can beat the
    plain prior. Which constant is the bar depends on the metric: this table shows all
    three, so that no page calls the prior "the best constant" of a metric it is not.

    Returns
    -------
    DataFrame
        Index ``prior``, ``uniform``, ``weighted_prior``; columns ``proba`` (the constant,
        as a list), ``log_loss`` and ``rsna_log_loss`` on ``y_eval``.

    Examples
    --------
    >>> y = [0] * 887 + [1] * 624 + [2] * 461  # the real L4/L5 left subarticular labels
    >>> t = constant_answers(y, y)
    >>> t["rsna_log_loss"].round(4).to_dict()
    {'prior': 1.2126, 'uniform': 1.0986, 'weighted_prior': 1.0547}
    """
    k = len(weights)
    y_tr = _labels_array(y_train, k, "y_train")
    y_ev = _labels_array(y_eval, k, "y_eval")
    constants = {"prior": np.bincount(y_tr, minlength=k) / len(y_tr),
                 "uniform": np.full(k, 1.0 / k),
                 "weighted_prior": weighted_prior(y_tr, weights)}
    rows = {}
    for name, p in constants.items():
        proba = np.tile(p, (len(y_ev), 1))
        rows[name] = {"proba": p.round(4).tolist(),
                      "log_loss": rsna_log_loss(y_ev, proba, weights=(1.0,) * k),
                      "rsna_log_loss": rsna_log_loss(y_ev, proba, weights=weights)}
    return pd.DataFrame(rows).T.astype({"log_loss": float, "rsna_log_loss": float})
