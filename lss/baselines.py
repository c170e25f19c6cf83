"""Baselines that are not the CNN-LSTM: how much of the grade a simple model reads.

:func:`linear_probe` fits a regularised logistic regression on a run's own inputs (whole
slices or region-of-interest crops), as a check of whether the grade is *in* the input
at all, apart from whether the CNN-LSTM learns it in a given budget.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold

from lss.config import SEVERITIES, Config
from lss.data import TensorCache, build_index, resize_slice
from lss.localiser import fill_training_centres, run_centres
from lss.metrics import evaluate
from lss.run import RunDir

__all__ = ["linear_probe"]


def _run_rows(run: RunDir, root: Path, config: Config, *, cache_dir, workers
              ) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray | None, str]:
    """The run's training and validation rows, centred as its training saw them.

    ROI crops are centred on the table's points in training (the localiser's where a
    study has none) and on the run's localiser's points in validation.
    """
    split = run.read_split()
    index = build_index(root, config.condition, config.level).merge(
        split[["study_id", "split"]], on="study_id", how="left")
    centres, centred_by = None, "whole slice"
    if config.preprocess.crop_mm is not None:
        index = fill_training_centres(root, index, split, run.localiser, cache_dir=cache_dir,
                                      workers=workers)
    tr = index[index["split"] == "train"].reset_index(drop=True)
    va = index[index["split"] == "val"].reset_index(drop=True)
    if config.preprocess.crop_mm is not None:
        centres, centred_by = run_centres(run, root, va, cache_dir=cache_dir, workers=workers)
    return tr, va, centres, centred_by


def linear_probe(
    run_dir: str | Path,
    root: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    size: int = 32,
    cs: Sequence[float] = (1e-3, 1e-2, 1e-1, 1.0, 10.0),
    folds: int = 4,
) -> dict[str, Any]:
    """How much of the grade a linear model reads off a run's own inputs.

    A multinomial logistic regression on the pixels of the labelled slice (the middle
    of each window, resized to ``size`` squared so that whole slices and crops offer
    the same number of features), with its regularisation chosen by cross-validation
    on the training split only (balanced accuracy), scored on the validation split. The
    inputs are exactly the run's: whole slices, or ROI crops centred on the table's
    points in training and on the run's localiser's points in validation. It asks
    whether the grade is *in* the input at all, apart from whether the CNN-LSTM
    learns it in a given budget.

    Returns
    -------
    dict
        ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``rsna_log_loss`` on the
        validation split, ``C`` (the chosen inverse regularisation), ``n_features``,
        ``centres`` and ``crop_mm``.
    """
    run = RunDir(run_dir)
    config = run.read_config()
    root = run.data_root(root)
    tr, va, centres, centred_by = _run_rows(run, root, config, cache_dir=cache_dir,
                                           workers=workers)
    cache = TensorCache(root, config.preprocess, cache_dir=cache_dir)
    mid = config.preprocess.n_slices // 2

    def features(windows: np.ndarray) -> np.ndarray:
        return np.stack([resize_slice(w[mid], size).ravel() for w in windows])

    x_tr = features(cache.load(tr, workers=workers))
    x_va = features(cache.load(va, centres=centres, workers=workers))
    y_tr, y_va = tr["label"].to_numpy(int), va["label"].to_numpy(int)
    cv = StratifiedKFold(folds, shuffle=True, random_state=config.train.seed)
    clf = LogisticRegressionCV(Cs=list(cs), cv=cv, scoring="balanced_accuracy", max_iter=3000)
    with warnings.catch_warnings():  # scikit-learn 1.8 announces changes of defaults
        warnings.simplefilter("ignore", FutureWarning)
        clf.fit(x_tr, y_tr)
    proba = np.zeros((len(va), len(SEVERITIES)))
    proba[:, clf.classes_] = clf.predict_proba(x_va)
    rep = evaluate(y_va, proba, y_train=y_tr)["model"]
    return {"accuracy": rep["accuracy"], "balanced_accuracy": rep["balanced_accuracy"],
            "macro_f1": rep["macro"]["f1"], "rsna_log_loss": rep["rsna_log_loss"],
            "C": float(np.ravel(clf.C_)[0]), "n_features": int(x_tr.shape[1]),
            "centres": centred_by, "crop_mm": config.preprocess.crop_mm}
