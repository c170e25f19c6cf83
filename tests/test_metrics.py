"""Tests for lss.metrics against values computed by hand, and for the lss.viz figures."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score

from lss.metrics import (
    calibration_table,
    classification_report,
    evaluate,
    format_report,
    majority_baseline,
    prior_baseline,
    rsna_log_loss,
)
from lss.viz import (
    plot_class_distribution,
    plot_confusion_matrix,
    plot_history,
    plot_reliability,
)

Y = np.array([0, 1, 2, 0])
P = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.5, 0.3, 0.2]])


def test_classification_report_by_hand():
    r = classification_report(Y, P)
    # predictions 0, 1, 0, 0: the Severe row is called Normal/Mild
    assert r["n"] == 4
    assert r["accuracy"] == 0.75
    assert r["confusion_matrix"] == [[2, 0, 0], [0, 1, 0], [1, 0, 0]]
    assert r["per_class"]["Normal/Mild"] == pytest.approx(
        {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
    )
    assert r["per_class"]["Severe"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert r["macro"]["f1"] == pytest.approx((0.8 + 1.0 + 0.0) / 3)
    assert r["macro"]["precision"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert r["balanced_accuracy"] == pytest.approx(2 / 3)


def test_balanced_accuracy_matches_sklearn_with_absent_class():
    y = np.array([0, 0, 1, 1, 1])  # no Severe
    p = np.eye(3)[[0, 1, 1, 1, 2]]
    with pytest.warns(UserWarning):  # sklearn warns about the absent class; we do not
        expected = balanced_accuracy_score(y, p.argmax(axis=1))
    assert classification_report(y, p)["balanced_accuracy"] == pytest.approx(expected)
    assert expected == pytest.approx((0.5 + 2 / 3) / 2)


def test_rsna_log_loss_by_hand():
    y = [0, 1, 2]
    p = [[0.5, 0.25, 0.25], [0.2, 0.6, 0.2], [0.1, 0.1, 0.8]]
    expected = -(1 * math.log(0.5) + 2 * math.log(0.6) + 4 * math.log(0.8)) / 7
    assert rsna_log_loss(y, p) == pytest.approx(expected, rel=1e-12)
    unweighted = -(math.log(0.5) + math.log(0.6) + math.log(0.8)) / 3
    assert rsna_log_loss(y, p, weights=(1, 1, 1)) == pytest.approx(unweighted, rel=1e-12)


def _scorer_log_loss(y, p, weights=(1.0, 2.0, 4.0)):
    """The competition scorer's log loss written out independently: sklearn's log_loss of
    2024 (eps = float64 machine epsilon) clips every entry to [eps, 1 - eps], then
    divides each row by its sum, then takes the weighted mean of -log p[true]."""
    eps = np.finfo(np.float64).eps
    q = np.clip(np.asarray(p, dtype=float), eps, 1 - eps)
    q = q / q.sum(axis=1, keepdims=True)
    w = np.asarray(weights)[np.asarray(y)]
    return float((w * -np.log(q[np.arange(len(y)), y])).sum() / w.sum())


def test_rsna_log_loss_clips_then_normalises_as_the_competition_scorer():
    # entries above 1 are clipped before the row is normalised: (2, 1, 1) is uniform
    assert rsna_log_loss([0], [[2.0, 1.0, 1.0]]) == pytest.approx(math.log(3))
    # a row of zeros is the uniform answer, not an error
    assert rsna_log_loss([1], [[0.0, 0.0, 0.0]]) == pytest.approx(math.log(3))
    # a confident mistake costs -log(machine epsilon), not infinity
    eps = np.finfo(np.float64).eps
    assert rsna_log_loss([2], [[1.0, 0.0, 0.0]]) == pytest.approx(-math.log(eps), rel=1e-6)
    assert rsna_log_loss([2], [[1.0, 0.0, 0.0]], eps=1e-3) == pytest.approx(
        -math.log(1e-3 / (0.999 + 2e-3)), rel=1e-9)
    # fixed inputs with unnormalised rows, zero rows and entries above 1
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 40)
    p = rng.uniform(0, 3, (40, 3))
    p[::7] = 0.0
    p[3] = [5.0, 0.0, 0.0]
    assert rsna_log_loss(y, p) == pytest.approx(_scorer_log_loss(y, p), rel=1e-12)
    assert rsna_log_loss(y, p, weights=(1, 1, 1)) == pytest.approx(
        _scorer_log_loss(y, p, (1, 1, 1)), rel=1e-12)


def test_rsna_log_loss_equals_sklearn_on_probabilities():
    from sklearn.metrics import log_loss

    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 50)
    p = rng.dirichlet([1, 1, 1], 50)
    w = np.array([1.0, 2.0, 4.0])[y]
    assert rsna_log_loss(y, p) == pytest.approx(
        log_loss(y, p, sample_weight=w, labels=[0, 1, 2]), rel=1e-9)


def test_inputs_are_not_modified():
    y = pd.Series([0, 1, 2])
    p = np.array([[2.0, 1.0, 1.0], [0.0, 1.0, 0.0], [0.2, 0.2, 0.6]])
    y0, p0 = y.copy(), p.copy()
    rsna_log_loss(y, p)
    classification_report(y, p)
    evaluate(y, p, y_train=y)
    calibration_table(y, p)
    pd.testing.assert_series_equal(y, y0)
    np.testing.assert_array_equal(p, p0)


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        ([0, 1], [[0.5, 0.5, 0.0]], "proba has 1 rows but y_true has 2 labels"),
        ([0], [[0.5, 0.5]], r"proba must have shape \(N, 3\), got \(1, 2\)"),
        ([0], [[np.nan, 0.5, 0.5]], "proba contains 1 NaN or infinite value"),
        ([0], [[-0.1, 0.6, 0.5]], "proba contains 1 negative value"),
        ([0, 3], [[1.0, 0, 0]] * 2, r"class indices in \[0, 2\], got \[3\]"),
        ([0.0, 1.5], [[1.0, 0, 0]] * 2, "non-integer values"),
        ([np.nan], [[1.0, 0, 0]], "y_true contains 1 NaN"),
        (np.eye(3), np.eye(3), r"1-D class indices, got shape \(3, 3\); use y.argmax"),
        (["Severe"], [[1.0, 0, 0]], "must hold integer class indices, got dtype <U6"),
        ([], np.zeros((0, 3)), "y_true is empty"),
    ],
)
def test_bad_input_raises(y, p, match):
    with pytest.raises(ValueError, match=match):
        rsna_log_loss(y, p)


def test_a_report_refuses_a_row_of_zeros():
    with pytest.raises(ValueError, match=r"proba rows \[0\] sum to 0"):
        classification_report([0, 1], [[0.0, 0.0, 0.0], [1.0, 0, 0]])


def test_bad_weights_and_eps():
    with pytest.raises(ValueError, match="weights must be positive"):
        rsna_log_loss([0], [[1.0, 0, 0]], weights=(1, 0, 4))
    with pytest.raises(ValueError, match=r"eps must be in \(0, 1/3\), got 0.5"):
        rsna_log_loss([0], [[1.0, 0, 0]], eps=0.5)


def test_majority_baseline_by_hand():
    y_train = [0, 0, 0, 1, 2, 2]
    y_val = [0, 1, 2, 2, 0]
    b = majority_baseline(y_train, y_val)
    assert b["class"] == "Normal/Mild" and b["class_index"] == 0
    assert b["accuracy"] == pytest.approx(2 / 5)
    assert b["balanced_accuracy"] == pytest.approx(1 / 3)
    # Normal/Mild: precision 2/5, recall 1 -> F1 = 4/7; the others 0
    assert b["macro_f1"] == pytest.approx(4 / 7 / 3)
    # the training split decides, not the validation split
    assert majority_baseline([2, 2, 0], [0, 0, 0])["accuracy"] == 0.0
    # ties go to the milder grade
    assert majority_baseline([1, 2, 2, 1], [1])["class"] == "Moderate"


def test_prior_baseline_by_hand():
    y_train = [0, 0, 0, 0, 0, 0, 1, 1, 2, 2]  # prior (.6, .2, .2)
    y_val = [0, 1, 2]
    b = prior_baseline(y_train, y_val)
    assert b["prior"] == pytest.approx([0.6, 0.2, 0.2])
    lp, lm, ls = -math.log(0.6), -math.log(0.2), -math.log(0.2)
    assert b["log_loss"] == pytest.approx((lp + lm + ls) / 3)
    assert b["rsna_log_loss"] == pytest.approx((1 * lp + 2 * lm + 4 * ls) / 7)


def test_calibration_table_by_hand():
    y = [0, 0, 1, 2]
    p = [[0.95, 0.05, 0.0], [0.9, 0.1, 0.0], [0.65, 0.35, 0.0], [0.3, 0.3, 0.4]]
    t = calibration_table(y, p, n_bins=5)
    assert t.n.tolist() == [0, 0, 1, 1, 2]
    assert t.upper.iloc[-1] == 1.0
    last = t.iloc[-1]
    assert last.confidence == pytest.approx(0.925) and last.accuracy == 1.0
    assert t.accuracy.iloc[2] == 1.0 and t.accuracy.iloc[3] == 0.0  # (.4 right, .65 wrong)
    assert np.isnan(t.confidence.iloc[0])
    with pytest.raises(ValueError, match="n_bins must be a positive integer, got 0"):
        calibration_table(y, p, n_bins=0)


def test_evaluate_and_format_report():
    rep = evaluate(Y, P, y_train=[0, 0, 1, 2])
    assert rep["n_val"] == 4 and rep["n_train"] == 4
    assert rep["model"]["accuracy"] == 0.75
    assert rep["majority"]["accuracy"] == 0.5
    assert rep["model"]["log_loss"] == pytest.approx(
        -(2 * math.log(0.7) + math.log(0.1) + math.log(0.5)) / 4
    )
    text = format_report(rep, data_label="synthetic phantom (seed 0)")
    lines = text.splitlines()
    assert lines[0] == "Data: synthetic phantom (seed 0) (validation n = 4, training n = 4)"
    assert lines[1].split() == ["metric", "model", "majority", "prior"]
    assert lines[2].split() == ["accuracy", "0.750", "0.500", "-"]
    assert lines[5].split()[-3:] == ["1.372", "-", "1.213"]
    # aligned: every table row has the same width
    assert len({len(line) for line in lines[1:7]}) == 1


@pytest.mark.parametrize("label", ["", "   ", None])
def test_format_report_requires_a_data_label(label):
    rep = evaluate(Y, P, y_train=[0, 0, 1, 2])
    with pytest.raises(ValueError, match="data_label must name the data"):
        format_report(rep, data_label=label)
    with pytest.raises(ValueError, match=r"report lacks \['prior'\]"):
        format_report({"model": {}, "majority": {}}, data_label="x")


# --- lss.viz: the figures built on these metrics -------------------------------------


@pytest.fixture
def close_figures():
    yield
    plt.close("all")


def _texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_plot_confusion_matrix(close_figures):
    cm = [[2, 0, 0], [0, 1, 0], [1, 0, 0]]
    ax = plot_confusion_matrix(cm, data_label="synthetic phantom (seed 0)")
    assert _texts(ax) == ["2", "0", "0", "0", "1", "0", "1", "0", "0"]
    assert ax.get_title() == "Confusion matrix\nsynthetic phantom (seed 0)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Normal/Mild", "Moderate", "Severe"]
    assert ax.get_xlabel() == "Predicted" and ax.get_ylabel() == "True"
    _, ax2 = plt.subplots()
    out = plot_confusion_matrix(np.array([[3, 1, 0], [0, 0, 0], [1, 1, 2]]), normalize=True, ax=ax2)
    assert out is ax2
    assert _texts(ax2) == ["0.75", "0.25", "0.00", "0.00", "0.00", "0.00", "0.25", "0.25", "0.50"]
    assert ax2.get_title() == "Confusion matrix (row-normalised)"
    with pytest.raises(ValueError, match=r"cm must have shape \(3, 3\) for 3 labels, got \(2, 2\)"):
        plot_confusion_matrix([[1, 0], [0, 1]])


def test_plot_history(close_figures):
    history = {
        "loss": [1.0, 0.8, 0.7],
        "accuracy": [0.4, 0.5, 0.6],
        "val_loss": [1.1, 1.0, 1.0],
        "val_accuracy": [0.45, 0.45, 0.5],
    }
    original = {k: list(v) for k, v in history.items()}
    axes = plot_history(history, baseline_accuracy=0.449, data_label="phantom")
    assert history == original
    acc, loss = axes
    assert [line.get_label() for line in acc.lines] == [
        "training",
        "validation",
        "majority baseline",
    ]
    np.testing.assert_array_equal(acc.lines[1].get_ydata(), [0.45, 0.45, 0.5])
    np.testing.assert_array_equal(loss.lines[0].get_xdata(), [1, 2, 3])
    assert acc.lines[2].get_ydata()[0] == 0.449
    assert loss.get_title() == "Loss\nphantom"
    # a DataFrame without validation columns works too
    axes = plot_history(pd.DataFrame({"loss": [1.0, 0.9]}))
    assert len(axes[1].lines) == 1 and "no accuracy recorded" in _texts(axes[0])
    with pytest.raises(ValueError, match=r"neither accuracy nor loss; its keys are \['auc'\]"):
        plot_history({"auc": [0.5]})


def test_plot_reliability(close_figures):
    y = [0, 0, 1, 2]
    p = [[0.95, 0.05, 0.0], [0.9, 0.1, 0.0], [0.65, 0.35, 0.0], [0.3, 0.3, 0.4]]
    ax = plot_reliability(y, p, n_bins=5, data_label="toy")
    model = [line for line in ax.lines if line.get_label() == "model"][0]
    np.testing.assert_allclose(model.get_xdata(), [0.4, 0.65, 0.925])
    np.testing.assert_allclose(model.get_ydata(), [1.0, 0.0, 1.0])
    # ECE = (1 * 0.6 + 1 * 0.65 + 2 * 0.075) / 4 = 0.35
    assert ax.get_title() == "Reliability (ECE = 0.350, N = 4)\ntoy"


def test_plot_class_distribution(close_figures):
    ax = plot_class_distribution([0, 0, 0, 1], data_label="RSNA train")
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == [3, 1, 0]
    assert _texts(ax) == ["3\n(75.0 %)", "1\n(25.0 %)", "0\n(0.0 %)"]
    assert ax.get_title() == "Classes (N = 4)\nRSNA train"
    ax = plot_class_distribution(pd.Series(["Severe", "Normal/Mild", "Severe"]), title="x")
    assert [patch.get_height() for patch in ax.patches] == [1, 0, 2]
    assert [patch.get_height() for patch in plot_class_distribution([2.0, 0.0]).patches] == [
        1,
        0,
        1,
    ]
    with pytest.raises(ValueError, match="labels contain 1 missing value"):
        plot_class_distribution(pd.Series(["Severe", None]))
    with pytest.raises(ValueError, match=r"got \['3', 'Mild'\]"):
        plot_class_distribution([0, 3, "Mild"])


def test_the_best_constant_depends_on_the_metric():
    """The prior is the best constant for the log loss, the weighted prior for the RSNA
    weighted log loss, and uniform beats the prior on the latter for the real labels."""
    from lss.metrics import constant_answers, rsna_log_loss

    y = np.repeat([0, 1, 2], [887, 624, 461])
    t = constant_answers(y, y)
    assert t.loc["prior", "log_loss"] < t.loc["uniform", "log_loss"]
    assert t.loc["uniform", "rsna_log_loss"] < t.loc["prior", "rsna_log_loss"]
    best = np.asarray(t.loc["weighted_prior", "proba"])
    rng = np.random.default_rng(0)
    for _ in range(50):  # no nearby constant does better on the weighted loss
        p = np.clip(best + rng.normal(0, 0.02, 3), 1e-3, None)
        p /= p.sum()
        assert rsna_log_loss(y, np.tile(p, (len(y), 1))) >= t.loc["weighted_prior",
                                                                 "rsna_log_loss"] - 1e-4
