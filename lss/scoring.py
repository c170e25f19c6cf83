"""A run scored the competition's way: all 25 targets of its validation studies.

The competition scores a whole study (:func:`lss.competition.score`: three condition
groups and the any-severe-spinal term). A run of this package grades one target; on
its validation studies, :func:`whole_study_scores` puts the run's predictions (from
``lss evaluate``, on the table's or the found slices) into a full submission, the other
24 targets from the training prior weighted 1/2/4, and scores it beside the three
constant answers: the training prior, the uniform 1/3 and the weighted prior (the best
constant for the group terms). The three are not the same thing, and the table shows
by how much; the model's row can only differ from the weighted prior's in the rows of
its own target's group and in the any-severe term.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lss.competition import CONSTANT_KINDS, GROUPS, PROBA_COLUMNS, score, solution_frame
from lss.data import load_tables
from lss.run import RunDir
from lss.submission import assemble, training_prior

__all__ = ["whole_study_scores", "SCORE_COLUMNS"]

#: Columns of :func:`whole_study_scores`: the overall score, then each term.
SCORE_COLUMNS = ("score", *GROUPS, "any_severe_spinal")


def _model_rows(run: RunDir, out_dir: Path | None, target: str) -> pd.DataFrame:
    """The run's validation predictions as submission rows of its target."""
    df, _, proba = run.read_predictions(out_dir)
    rows = pd.DataFrame(proba, columns=list(PROBA_COLUMNS))
    rows.insert(0, "row_id", [f"{int(s)}_{target}" for s in df["study_id"]])
    return rows


def whole_study_scores(run_dir: str | Path, root: str | Path | None = None, *,
                       levels: str = "table") -> pd.DataFrame:
    """The competition's score of a run's validation studies beside the constants.

    Parameters
    ----------
    run_dir : str or Path
        A run evaluated by :func:`lss.evaluate.evaluate_run` (its ``predictions.csv``;
        with ``levels="found"``, the one in ``levels-found/``).
    root : str or Path, optional
        The data root (default: the run's).

    Returns
    -------
    DataFrame
        One row per answer (``model``: the run's target from the model, the rest from
        the weighted prior; then ``prior``, ``uniform``, ``weighted_prior``), columns
        :data:`SCORE_COLUMNS` (lower is better) and ``n_rows``; ``attrs["n_studies"]``.
    """
    run = RunDir(run_dir)
    config = run.read_config()
    train = load_tables(run.data_root(root)).train
    split = run.read_split()
    in_train = train["study_id"].isin(split.loc[split["split"] == "train", "study_id"])
    val_ids = split.loc[split["split"] == "val", "study_id"].astype(int).tolist()
    solution = solution_frame(train[train["study_id"].isin(val_ids)])
    out_dir = None if levels == "table" else run.path / "levels-found"
    answers = {"model": (_model_rows(run, out_dir, config.target), "weighted_prior")}
    answers.update({kind: (None, kind) for kind in CONSTANT_KINDS})
    rows = {}
    for name, (predicted, kind) in answers.items():
        prior = training_prior(train[in_train], kind=kind)
        sub, _ = assemble(val_ids, predicted, prior)
        result = score(solution, sub)
        rows[name] = {**{c: result[c] for c in SCORE_COLUMNS}, "n_rows": result["n_rows"]}
    table = pd.DataFrame(rows).T
    table.attrs["n_studies"] = len(val_ids)
    table.attrs["target"] = config.target
    return table
