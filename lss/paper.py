"""The reproduced paper beside a run: its reported figures and the run's, each column
naming its data.

Dhopavkar, Shende, Ahirkar, Ahirkar, Bodelkar, Kale, Barapatre, "Deep Learning for
Detection and Severity Classification of Lumbar Spinal Stenosis in MRI Scans"
(Yeshwantrao Chavan College of Engineering, Nagpur). Its figures are
:data:`lss.config.PAPER_RESULTS`, measured on the real RSNA 2024 data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lss.config import (
    PAPER_EPOCHS,
    PAPER_RESULTS,
    REAL_MAJORITY_SHARE,
)
from lss.metrics import real_prior_log_loss
from lss.run import check_history

__all__ = [
    "paper_comparison",
]


def paper_comparison(history: pd.DataFrame, *, majority_accuracy: float, data_label: str,
                     prior_log_loss: float | None = None) -> pd.DataFrame:
    """The paper's reported figures beside a run's, each column naming its data.

    Parameters
    ----------
    history : DataFrame
        A run's ``history.csv`` (``loss``, ``val_loss``, ``val_accuracy`` per epoch).
    majority_accuracy : float
        Accuracy of always answering the most frequent grade on the run's validation
        split (:func:`lss.metrics.majority_baseline`).
    data_label : str
        The run's data, e.g. ``"synthetic phantom (seed 0, 200 studies)"``.
    prior_log_loss : float, optional
        Log loss of predicting the training split's class shares on the run's
        validation split (:func:`lss.metrics.prior_baseline`): a loss curve that ends
        there has learned the class frequencies only.

    Returns
    -------
    DataFrame
        Indexed by quantity; one column with the paper's figures (RSNA 2024 real scans,
        :data:`lss.config.PAPER_RESULTS`, :data:`lss.config.REAL_MAJORITY_SHARE` and
        :func:`real_prior_log_loss`), one with the run's, rounded to 4 decimals ("-"
        where a figure is not defined). The run's validation accuracy is that of its
        last epoch; the model kept (``best.keras``) is the epoch of lowest validation
        loss, shown too.
    """

    check_history(history, data_label)
    h = history.reset_index(drop=True)
    best = int(h["val_loss"].to_numpy().argmin())
    paper = "paper (RSNA 2024 real scans, as reported)"
    run = f"this run ({data_label.strip()})"
    rows = {
        "epochs": (PAPER_EPOCHS, len(h)),
        "train loss, first epoch": (PAPER_RESULTS["train_loss_first_epoch"], h["loss"].iloc[0]),
        "train loss, last epoch": (PAPER_RESULTS["train_loss_last_epoch"], h["loss"].iloc[-1]),
        "val loss, first epoch": (PAPER_RESULTS["val_loss_first_epoch"], h["val_loss"].iloc[0]),
        "val loss, last epoch": (PAPER_RESULTS["val_loss_last_epoch"], h["val_loss"].iloc[-1]),
        "val accuracy, last epoch": (PAPER_RESULTS["val_accuracy"], h["val_accuracy"].iloc[-1]),
        "val accuracy, epoch kept (lowest val loss)": (np.nan, h["val_accuracy"].iloc[best]),
        "accuracy of always Normal/Mild (reference)": (REAL_MAJORITY_SHARE,
                                                        float(majority_accuracy)),
        "log loss of the class shares (reference)": (
            real_prior_log_loss(), np.nan if prior_log_loss is None else float(prior_log_loss)),
    }
    def cell(value: Any) -> Any:
        if isinstance(value, (int, np.integer)):
            return int(value)
        return "-" if value is None or np.isnan(value) else round(float(value), 4)

    out = pd.DataFrame([[cell(a), cell(b)] for a, b in rows.values()], index=list(rows),
                       columns=[paper, run], dtype=object)
    out.index.name = "quantity"
    return out
