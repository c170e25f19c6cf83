"""The sentences the chapters print about a model come from its numbers (lss.comparison)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lss.comparison import describe_answers, describe_history


def test_a_model_that_answers_one_grade_is_said_to():
    proba = np.tile([0.5, 0.3, 0.2], (40, 1))
    assert describe_answers(proba) == "answers Normal/Mild for all 40 validation studies"


def test_the_spread_of_answers_is_counted():
    proba = np.eye(3)[[0] * 5 + [2] * 2 + [1]]
    assert describe_answers(proba, what="studies") == \
        "answers Normal/Mild for 5, Moderate for 1 and Severe for 2 of the 8 studies"


def test_answers_refuse_a_wrong_shape():
    with pytest.raises(ValueError, match="proba must be"):
        describe_answers(np.ones((4, 2)))


def _history(val_loss, val_accuracy):
    return pd.DataFrame({"epoch": range(len(val_loss)), "val_loss": val_loss,
                         "val_accuracy": val_accuracy})


def test_a_run_stuck_at_the_references_is_described_as_such():
    # chapter 4's collapsed run: the loss ends above the class-share loss, the accuracy
    # never leaves the majority share
    text = describe_history(_history([1.05, 1.031, 1.0309], [0.5, 0.5, 0.5]),
                            majority=0.5, prior=1.0298)
    assert "ends at 1.0309, above the class-share loss 1.0298" in text
    assert "equals the majority share (0.500) at every one of the 3 epochs" in text


def test_a_run_that_learns_is_described_as_such():
    text = describe_history(_history([1.0, 0.8, 0.9], [0.5, 0.6, 0.55]), majority=0.5,
                            prior=1.0298)
    assert "ends at 0.9000, below" in text and "lowest 0.8000 at epoch 2, below" in text
    assert "above the majority share (0.500) at 2 of the 3 epochs (highest 0.600)" in text
