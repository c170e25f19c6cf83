"""The comparison table of :mod:`lss.experiments`: its reference rows, the bootstrap
intervals of each row's difference from the reference row, and how it is read back,
summarised in sentences and printed.

Every sentence of :func:`summarise` is computed from the measured table, so the book's
text cannot run ahead of its numbers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lss.config import LOWER_IS_BETTER, PRIMARY_METRIC, SEVERITIES
from lss.metrics import constant_answers, paired_bootstrap
from lss.run import RunDir

__all__ = ["reference_rows", "add_differences", "load_table", "best_row", "summarise",
           "format_table", "describe_answers", "describe_history"]


def reference_rows(report: Mapping[str, Any], y_train: np.ndarray, y_val: np.ndarray
                   ) -> list[dict[str, Any]]:
    """The constant answers as table rows: always-majority, the training prior and the
    weighted prior (the best constant for the RSNA weighted log loss)."""
    maj, prior = report["majority"], report["prior"]
    wp = constant_answers(y_train, y_val).loc["weighted_prior"]
    return [
        {"experiment": "majority", "kind": "reference",
         "description": f"always '{maj['class']}' (training split's most frequent grade)",
         "accuracy": maj["accuracy"], "balanced_accuracy": maj["balanced_accuracy"],
         "macro_f1": maj["macro_f1"], "rsna_log_loss": np.nan, "log_loss": np.nan,
         "n_val": report["n_val"]},
        {"experiment": "prior", "kind": "reference",
         "description": "training class frequencies for every study",
         "accuracy": np.nan, "balanced_accuracy": np.nan, "macro_f1": np.nan,
         "rsna_log_loss": prior["rsna_log_loss"], "log_loss": prior["log_loss"],
         "n_val": report["n_val"]},
        {"experiment": "weighted_prior", "kind": "reference",
         "description": "training class frequencies weighted 1/2/4 (the best constant for "
                        "the RSNA log loss) for every study",
         "accuracy": np.nan, "balanced_accuracy": np.nan, "macro_f1": np.nan,
         "rsna_log_loss": float(wp["rsna_log_loss"]), "log_loss": float(wp["log_loss"]),
         "n_val": report["n_val"]},
    ]


def load_table(out_dir: str | Path) -> pd.DataFrame:
    """The table a :func:`run_experiments` call left in ``out_dir``, with ``attrs["data"]``
    (which data it was measured on) and ``attrs["localiser"]``.

    Raises
    ------
    FileNotFoundError
        Where no comparison has been run into ``out_dir``.
    """
    path = Path(out_dir) / "experiments.json"
    if not path.is_file():
        raise FileNotFoundError(f"No experiments.json in {out_dir}: run the comparison first "
                                f"(lss experiments --data ... --out {out_dir})")
    payload = json.loads(path.read_text())
    table = pd.DataFrame(payload["rows"])
    table.attrs["data"] = payload["data"]
    if payload.get("localiser"):
        table.attrs["localiser"] = payload["localiser"]
    return table


def add_differences(table: pd.DataFrame, reference: str, *, n_boot: int, seed: int
                    ) -> pd.DataFrame:
    """``table`` with each model row's difference in :data:`PRIMARY_METRIC` from the
    ``reference`` row and its paired-bootstrap 95 % interval."""
    table = table.copy()
    col = f"delta_{PRIMARY_METRIC}"
    for c in (col, f"{col}_low", f"{col}_high"):
        table[c] = np.nan
    ref_dir = table.loc[table.experiment == reference, "run_dir"].iloc[0]
    ref_df, y, ref_p = RunDir(ref_dir).read_predictions()
    for i, row in table.iterrows():
        if row["kind"] != "model" or not isinstance(row.get("run_dir"), str):
            continue
        df, y_b, p = RunDir(row["run_dir"]).read_predictions()
        if not np.array_equal(df["study_id"], ref_df["study_id"]) or not np.array_equal(y, y_b):
            raise ValueError(f"{row['run_dir']} was scored on other studies than {ref_dir}")
        table.loc[i, [col, f"{col}_low", f"{col}_high"]] = paired_bootstrap(
            y, ref_p, p, metric=PRIMARY_METRIC, n_boot=n_boot, seed=seed)
    return table


def best_row(table: pd.DataFrame, metric: str = PRIMARY_METRIC) -> pd.Series:
    """The trained row with the best ``metric`` (ties: the lower RSNA log loss, then the
    earlier row)."""
    models = table[(table["kind"] == "model") & table[metric].notna()]
    if models.empty:
        raise ValueError("The table has no scored model rows")
    sign = 1 if metric in LOWER_IS_BETTER else -1
    order = models.assign(_m=sign * models[metric], _pos=range(len(models)))
    return order.sort_values(["_m", "rsna_log_loss", "_pos"]).iloc[0].drop(["_m", "_pos"])


def summarise(table: pd.DataFrame, *, reference: str = "paper",
              metric: str = PRIMARY_METRIC) -> list[str]:
    """Sentences read off a measured table (nothing in them is written in advance).

    Which rows still answer one grade for every validation study, which beat the
    reference row on ``metric`` (and whether the 95 % bootstrap interval of the
    difference excludes 0), and which beat the training prior on the RSNA log loss.
    """
    models = table[(table["kind"] == "model") & table[metric].notna()]
    refs = table[table["kind"] == "reference"].set_index("experiment")
    ref = models.set_index("experiment").loc[reference]
    lower = metric in LOWER_IS_BETTER
    name = metric.replace("_", " ")

    def names(rows: pd.DataFrame) -> str:
        return ", ".join(f"'{n}'" for n in rows["experiment"]) or "none"

    out = []
    if "grades_predicted" in models:
        one = models[models["grades_predicted"] <= 1]
        out.append(f"Rows that answer a single grade for every validation study: {names(one)} "
                   f"(of {len(models)}).")
    better = models[(models[metric] < ref[metric]) if lower else (models[metric] > ref[metric])]
    col = f"delta_{metric}"
    if len(better) and col in better:
        sure = better[(better[f"{col}_low"] > 0) | (better[f"{col}_high"] < 0)]
        out.append(f"Rows with a better {name} than '{reference}' ({ref[metric]:.3f}): "
                   f"{names(better)}; with a 95 % interval of the difference that excludes 0: "
                   f"{names(sure)}.")
    else:
        out.append(f"Rows with a better {name} than '{reference}' ({ref[metric]:.3f}): none.")
    if "prior" in refs.index:
        prior = refs.loc["prior", "rsna_log_loss"]
        below = models[models["rsna_log_loss"] < prior]
        out.append(f"Rows whose RSNA weighted log loss beats the training prior's "
                   f"({prior:.3f}): {names(below)}.")
    if "weighted_prior" in refs.index:
        best_constant = refs.loc["weighted_prior", "rsna_log_loss"]
        below = models[models["rsna_log_loss"] < best_constant]
        out.append(f"Rows whose RSNA weighted log loss beats the best constant answer, the "
                   f"weighted prior ({best_constant:.3f}): {names(below)}.")
    return out


def format_table(table: pd.DataFrame, *, data_label: str) -> str:
    """The table as text, headed by the data it was measured on (required)."""
    if not isinstance(data_label, str) or not data_label.strip():
        raise ValueError(f"data_label must name the data the numbers come from, got {data_label!r}")
    col = f"delta_{PRIMARY_METRIC}"
    lines = [f"Data: {data_label.strip()} (validation n = {int(table['n_val'].dropna().iloc[0])})",
             f"{'row':<15}{'acc':>7}{'bal.acc':>9}{'macroF1':>9}{'RSNA LL':>9}"
             f"{'Δ bal.acc vs paper [95% CI]':>31}"]

    def f(v):
        return "      -" if pd.isna(v) else f"{v:7.3f}"

    for _, r in table.iterrows():
        delta = "" if pd.isna(r.get(col)) else \
            f"{r[col]:+.3f} [{r[f'{col}_low']:+.3f}, {r[f'{col}_high']:+.3f}]"
        lines.append(f"{r['experiment']:<15}{f(r['accuracy'])}{f(r['balanced_accuracy']):>9}"
                     f"{f(r['macro_f1']):>9}{f(r['rsna_log_loss']):>9}{delta:>31}")
    return "\n".join(lines)


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def describe_answers(proba: Any, *, what: str = "validation studies") -> str:
    """How a model's answers (the most probable grade) spread over the grades, as a
    sentence: "answers Normal/Mild for all 40 validation studies", or "answers
    Normal/Mild for 31, Moderate for 6 and Severe for 3 of the 40 validation studies".

    A chapter prints this beside a model's numbers so that its text says what the model
    did, whatever it did.
    """
    p = np.asarray(proba, dtype=float)
    if p.ndim != 2 or p.shape[1] != len(SEVERITIES) or not len(p):
        raise ValueError(f"proba must be (N, {len(SEVERITIES)}) with N > 0, got shape {p.shape}")
    counts = np.bincount(p.argmax(axis=1), minlength=len(SEVERITIES))
    n = int(counts.sum())
    if counts.max() == n:
        return f"answers {SEVERITIES[int(counts.argmax())]} for all {n} {what}"
    parts = [f"{SEVERITIES[k]} for {c}" for k, c in enumerate(counts) if c]
    return f"answers {_join(parts)} of the {n} {what}"


def describe_history(history: pd.DataFrame, *, majority: float, prior: float) -> str:
    """What a run's validation curves say against the two constant references, as a
    sentence: where its lowest and its last validation loss lie against the class-share
    loss ``prior``, and whether its validation accuracy ever left the majority share
    ``majority``.

    ``history`` has the columns of :func:`lss.run.RunDir.read_history` (``epoch`` from
    0, ``val_loss``, ``val_accuracy``); epochs are reported from 1.
    """
    if history.empty:
        raise ValueError("The history has no epochs")
    h = history.reset_index(drop=True)
    best = h.loc[h["val_loss"].idxmin()]
    last = h.iloc[-1]

    def side(v: float) -> str:
        return "below" if v < prior else ("above" if v > prior else "equal to")

    loss = (f"its validation loss ends at {last.val_loss:.4f}, {side(last.val_loss)} the "
            f"class-share loss {prior:.4f} (lowest {best.val_loss:.4f} at epoch "
            f"{int(best.epoch) + 1}, {side(best.val_loss)} it)")
    at_majority = np.isclose(h["val_accuracy"], majority, atol=1e-6)
    if at_majority.all():
        acc = (f"its validation accuracy equals the majority share ({majority:.3f}) at "
               f"every one of the {len(h)} epochs")
    else:
        above = int((h["val_accuracy"] > majority + 1e-6).sum())
        acc = (f"its validation accuracy is above the majority share ({majority:.3f}) at "
               f"{above} of the {len(h)} epochs (highest {h['val_accuracy'].max():.3f})")
    return f"{loss}; {acc}"
