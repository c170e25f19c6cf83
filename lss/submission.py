"""Assembling the competition's submission from whatever the models predicted.

The competition wants, for every test study, the 25 rows of
:func:`lss.competition.row_ids` (``row_id`` and the probabilities
:data:`lss.competition.PROBA_COLUMNS`). The models predict some targets of some
studies: a study without a Sagittal T1 series, say, gets no foraminal prediction.
:func:`assemble` fills every such gap from a training prior (:func:`training_prior`)
and lists each filled row, with its reason, in a report, so that a gap is never a crash
and never silent. :func:`write_submission` writes both tables and
:func:`summarise_report` says in a few lines what was filled.

Predicted rows are divided by their sums; a row that cannot be (a missing, non-finite
or negative entry, or a sum of 0) is refused, as are rows of studies not asked for and
row_ids listed twice. Nothing here modifies its inputs.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lss.competition import (
    CONDITION_GROUP,
    GROUPS,
    PROBA_COLUMNS,
    TARGETS,
    check_submission,
    constant_submission,
    parse_row_id,
    row_ids,
)
from lss.errors import DataError

__all__ = [
    "REPORT_COLUMNS",
    "DEFAULT_REASON",
    "training_prior",
    "assemble",
    "write_submission",
    "summarise_report",
]

#: The columns of :func:`assemble`'s report: one row per row filled from the prior.
REPORT_COLUMNS: tuple[str, ...] = ("study_id", "target", "reason")
#: The reason of a filled row for which ``reasons`` gives none.
DEFAULT_REASON = "not predicted"

_COLUMNS = ["row_id", *PROBA_COLUMNS]
#: Largest distance of a prior row's sum from 1 (the rows are used as given).
_PRIOR_TOLERANCE = 1e-9
#: Studies (with their reasons) that :func:`summarise_report` lists before "and N more".
_SUMMARY_ENTRIES = 5


# --------------------------------------------------------------------------- prior


def training_prior(train_df: pd.DataFrame | None, *, kind: str = "weighted_prior"
                   ) -> pd.DataFrame:
    """The constant answer of each target, learnt from a ``train.csv``-style table.

    The rows of :func:`lss.competition.constant_submission` for one study, read back:

    * ``"prior"``: the target's grade shares among its labelled studies;
    * ``"uniform"``: 1/3 each (``train_df`` is not read and may be None);
    * ``"weighted_prior"``: the shares weighted 1/2/4 and renormalised, the best
      constant for the competition's weighted log loss (its group terms).

    Parameters
    ----------
    train_df : DataFrame or None
        ``study_id`` and the 25 target columns of ``train.csv`` (grade names or empty).
    kind : {"weighted_prior", "prior", "uniform"}

    Returns
    -------
    (25, 3) DataFrame
        Indexed by ``target`` (:data:`lss.competition.TARGETS`, in order), columns
        :data:`lss.competition.PROBA_COLUMNS`; each row sums to 1.

    Raises
    ------
    DataError
        A malformed table or a target without any label (from ``constant_submission``).
    ValueError
        An unknown ``kind``.

    Examples
    --------
    >>> wide = pd.DataFrame({"study_id": [1, 2, 3], **{t: ["Normal/Mild"] * 2 + ["Severe"]
    ...                                                for t in TARGETS}})
    >>> training_prior(wide, kind="prior").iloc[0].round(3).tolist()
    [0.667, 0.0, 0.333]
    >>> training_prior(wide).iloc[0].round(3).tolist()  # 2 x 1 and 1 x 4 -> 2/6 and 4/6
    [0.333, 0.0, 0.667]
    """
    rows = constant_submission(kind, train_df, [0])
    targets = rows["row_id"].str.partition("_")[2]
    if targets.tolist() != list(TARGETS):  # constant_submission's promise, checked
        raise RuntimeError("constant_submission did not give the 25 targets in order")
    table = rows[list(PROBA_COLUMNS)].to_numpy(dtype=np.float64)
    return pd.DataFrame(table, index=pd.Index(TARGETS, name="target"),
                        columns=list(PROBA_COLUMNS))


def _checked_prior(prior: pd.DataFrame) -> np.ndarray:
    """The ``(25, 3)`` prior in :data:`TARGETS` order, refusing a missing or unknown
    target, a bad entry or a row that does not sum to 1 (naming the target)."""
    if not isinstance(prior, pd.DataFrame):
        raise DataError(f"prior must be a DataFrame indexed by target, got "
                        f"{type(prior).__name__}")
    if list(prior.columns) != list(PROBA_COLUMNS):
        raise DataError(f"prior must have the columns {list(PROBA_COLUMNS)}, got "
                        f"{list(prior.columns)}")
    index = [str(t) for t in prior.index]
    for problem, names in (("unknown", [t for t in index if t not in TARGETS]),
                           ("missing", [t for t in TARGETS if t not in index]),
                           ("repeated", sorted({t for t in index if index.count(t) > 1}))):
        if names:
            raise DataError(f"prior: {problem} target '{names[0]}' ({len(names)} such); "
                            f"expected the 25 targets of lss.competition.TARGETS")
    table = (prior.set_axis(index).loc[list(TARGETS)]
             .apply(pd.to_numeric, errors="coerce").to_numpy(np.float64))
    bad = ~np.isfinite(table).all(axis=1) | (table < 0).any(axis=1)
    bad |= np.abs(table.sum(axis=1) - 1) > _PRIOR_TOLERANCE
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise DataError(f"prior: target '{TARGETS[j]}' is not a probability row summing "
                        f"to 1: {table[j].tolist()}")
    return table


# --------------------------------------------------------------------------- predictions


def _canonical_ids(ids: pd.Series) -> list[str]:
    """Each row_id as :func:`row_ids` spells it, refusing a malformed one."""
    out = []
    for i, rid in enumerate(ids):
        try:
            study = parse_row_id(rid)[0]
        except DataError as err:
            raise DataError(f"predictions row {i}: {err}") from None
        out.append(f"{study}_{str(rid).partition('_')[2]}")
    return out


def _refuse_bad_values(ids: pd.Series, p: np.ndarray, raw: pd.DataFrame) -> None:
    """Refuse the first row that cannot be divided by its sum, naming its row_id."""
    finite = np.isfinite(p).all(axis=1)
    checks = [(~finite, "a missing, non-numeric or infinite value"),
              (finite & (p < 0).any(axis=1), "a negative value"),
              (finite & (p >= 0).all(axis=1) & (p.sum(axis=1) == 0), "values summing to 0")]
    for bad, why in checks:
        rows = np.flatnonzero(bad)
        if rows.size:
            i = int(rows[0])
            raise DataError(f"predictions: row_id '{ids.iloc[i]}' has {why}: "
                            f"{raw.iloc[i].to_dict()} ({rows.size} such row(s))")


def _checked_predictions(predictions: pd.DataFrame | None, studies: list[int]
                         ) -> tuple[list[str], np.ndarray]:
    """The canonical row_ids of ``predictions`` and their rows divided by their sums;
    refuses malformed, repeated or unexpected row_ids and bad values (naming the row)."""
    if predictions is None:
        return [], np.empty((0, len(PROBA_COLUMNS)))
    if not isinstance(predictions, pd.DataFrame):
        raise DataError(f"predictions must be a DataFrame, got {type(predictions).__name__}")
    missing = [c for c in _COLUMNS if c not in predictions.columns]
    extra = [c for c in predictions.columns if c not in _COLUMNS]
    if missing or extra:
        raise DataError(f"predictions must have the columns {_COLUMNS}; missing {missing}, "
                        f"unexpected {extra}")
    if predictions.empty:
        return [], np.empty((0, len(PROBA_COLUMNS)))
    ids = predictions["row_id"].reset_index(drop=True)
    canonical = pd.Series(_canonical_ids(ids))
    twice = canonical.duplicated(keep=False)
    if twice.any():
        first = canonical[twice].iloc[0]
        names = ids[canonical == first].astype(str).tolist()
        raise DataError(f"predictions: row_id '{first}' is predicted {len(names)} times "
                        f"(as {names})")
    asked = {str(s) for s in studies}
    stray = canonical[~canonical.str.partition("_")[0].isin(asked)]
    if len(stray):
        raise DataError(f"predictions: row_id '{ids[stray.index[0]]}' is of study "
                        f"{stray.iloc[0].partition('_')[0]}, which is not among the "
                        f"{len(studies)} studies asked for ({len(stray)} such row(s))")
    raw = predictions[list(PROBA_COLUMNS)].reset_index(drop=True)
    p = raw.apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    _refuse_bad_values(ids, p, raw)
    return canonical.tolist(), p / p.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- reasons


def _as_study(value: Any, studies: set[int]) -> int:
    """A study id key of ``reasons``, refusing one that is not among ``studies``."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) not in studies:
        raise DataError(f"reasons: study {value!r} is not among the studies asked for")
    return int(text)


def _checked_reasons(reasons: Mapping[Hashable, str] | None, studies: list[int],
                     predicted: set[str]) -> tuple[dict[tuple[int, str], str], dict[int, str]]:
    """Reasons by (study, target) and by study, refusing an unknown study or target, an
    empty reason, or a (study, target) reason for a row that was predicted."""
    by_cell: dict[tuple[int, str], str] = {}
    by_study: dict[int, str] = {}
    known = set(studies)
    for key, reason in (reasons or {}).items():
        if not isinstance(reason, str) or not reason.strip():
            raise DataError(f"reasons: the reason for {key!r} must be a non-empty string, "
                            f"got {reason!r}")
        if not isinstance(key, tuple):
            by_study[_as_study(key, known)] = reason
            continue
        if len(key) != 2 or key[1] not in TARGETS:
            raise DataError(f"reasons: key {key!r} is not a study_id or a (study_id, target) "
                            f"pair with a target of lss.competition.TARGETS")
        study = _as_study(key[0], known)
        if f"{study}_{key[1]}" in predicted:
            raise DataError(f"reasons: row_id '{study}_{key[1]}' has a reason for being "
                            f"filled from the prior ({reason!r}) but was predicted")
        by_cell[(study, key[1])] = reason
    return by_cell, by_study


# --------------------------------------------------------------------------- assemble


def assemble(study_ids: Iterable[Any], predictions: pd.DataFrame | None,
             prior: pd.DataFrame, *, reasons: Mapping[Hashable, str] | None = None
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The submission of ``study_ids``: predicted rows where given, the prior elsewhere.

    Parameters
    ----------
    study_ids : iterable of int or digit str
        The studies to submit, in the order wanted (a repeat is listed once, as in
        :func:`lss.competition.row_ids`, so the ``study_id`` column of
        ``test_series_descriptions.csv`` may be passed as it is).
    predictions : DataFrame or None
        ``row_id`` and :data:`lss.competition.PROBA_COLUMNS` (no other column), one row
        per predicted (study, target), any subset, any order; None for no predictions.
        Entries must be finite and non-negative with a positive row sum; each row is
        divided by its sum.
    prior : (25, 3) DataFrame
        As :func:`training_prior` makes it: indexed by target, rows summing to 1.
        A filled row is the prior's row exactly.
    reasons : mapping, optional
        Why rows are missing, by ``(study_id, target)`` or by ``study_id`` (all of the
        study's missing rows); a pair wins over its study. Other missing rows get
        :data:`DEFAULT_REASON`.

    Returns
    -------
    submission : DataFrame
        ``row_id`` and :data:`lss.competition.PROBA_COLUMNS`, 25 rows per study in the
        order of ``sample_submission.csv`` (studies as given, targets in
        :data:`lss.competition.TARGETS` order); passes
        :func:`lss.competition.check_submission`.
    report : DataFrame
        :data:`REPORT_COLUMNS`, one row per filled row, in submission order;
        ``report.attrs["n_rows"]`` is the submission's length.

    Raises
    ------
    DataError
        One line naming the row_id, study or target: a malformed, repeated or
        unexpected row_id, a bad value, a bad prior or reason, no studies.

    Examples
    --------
    >>> prior = training_prior(None, kind="uniform")
    >>> pred = pd.DataFrame({"row_id": ["7_spinal_canal_stenosis_l4_l5"],
    ...                      "normal_mild": [2.0], "moderate": [1.0], "severe": [1.0]})
    >>> sub, report = assemble([7], pred, prior, reasons={7: "no Axial T2 series"})
    >>> sub.set_index("row_id").loc["7_spinal_canal_stenosis_l4_l5"].tolist()
    [0.5, 0.25, 0.25]
    >>> len(sub), len(report), report["reason"].iloc[0]
    (25, 24, 'no Axial T2 series')
    """
    ids = row_ids(study_ids)
    if not ids:
        raise DataError("assemble: no study ids given")
    studies = list(dict.fromkeys(int(r.partition("_")[0]) for r in ids))
    table = _checked_prior(prior)
    predicted, rows = _checked_predictions(predictions, studies)
    by_cell, by_study = _checked_reasons(reasons, studies, set(predicted))
    proba = np.tile(table, (len(studies), 1))
    position = {rid: i for i, rid in enumerate(ids)}
    at = np.array([position[rid] for rid in predicted], dtype=np.int64)
    proba[at] = rows
    filled = np.ones(len(ids), dtype=bool)
    filled[at] = False
    cells = [(s, t) for s in studies for t in TARGETS]  # the order of ids
    report = pd.DataFrame(
        [(s, t, by_cell.get((s, t), by_study.get(s, DEFAULT_REASON)))
         for (s, t), fill in zip(cells, filled, strict=True) if fill],
        columns=list(REPORT_COLUMNS)).astype({"study_id": "int64"})
    report.attrs["n_rows"] = len(ids)
    submission = pd.DataFrame({"row_id": ids, **{c: proba[:, k]
                                                for k, c in enumerate(PROBA_COLUMNS)}})
    check_submission(submission, studies)
    return submission, report


# --------------------------------------------------------------------------- output


def _check_report(report: pd.DataFrame) -> None:
    """Refuse a report without exactly :data:`REPORT_COLUMNS`."""
    if not isinstance(report, pd.DataFrame) or list(report.columns) != list(REPORT_COLUMNS):
        got = list(report.columns) if isinstance(report, pd.DataFrame) else type(report).__name__
        raise DataError(f"report must have the columns {list(REPORT_COLUMNS)}, got {got}")


def write_submission(path: str | Path, submission: pd.DataFrame, report: pd.DataFrame
                     ) -> list[Path]:
    """Write the submission CSV and, when rows were filled, its report beside it.

    The report goes to ``<stem>_report.csv`` in the same folder (``submission.csv``
    gives ``submission_report.csv``). When the report is empty no report is written,
    and a report left there by an earlier run is removed, so that the folder never
    describes another submission. The parent folder is created.

    Parameters
    ----------
    path : str or Path
        The submission's file (not a folder).
    submission : DataFrame
        As :func:`assemble` makes it; checked with
        :func:`lss.competition.check_submission` for the studies its row_ids name.
    report : DataFrame
        As :func:`assemble` makes it.

    Returns
    -------
    list of Path
        The files written: the submission, then the report if any.

    Raises
    ------
    DataError
        ``path`` (or the report's path) is a folder, its parent is a file, or a table
        is malformed (naming the path or the row).

    Examples
    --------
    >>> sub, report = assemble([7], None, training_prior(None, kind="uniform"))
    >>> write_submission("out/submission.csv", sub, report)  # doctest: +SKIP
    [PosixPath('out/submission.csv'), PosixPath('out/submission_report.csv')]
    """
    path = Path(path)
    report_path = path.with_name(f"{path.stem}_report.csv")
    for p in (path, report_path):
        if p.is_dir():
            raise DataError(f"{p} is a folder; give the submission's file name, e.g. "
                            f"{path / 'submission.csv'}")
    _check_report(report)
    if not isinstance(submission, pd.DataFrame) or "row_id" not in submission.columns:
        raise DataError("submission must be a DataFrame with a row_id column")
    studies = list(dict.fromkeys(parse_row_id(r)[0] for r in submission["row_id"]))
    check_submission(submission, studies)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise DataError(f"cannot create the folder {path.parent} for {path.name}: "
                        f"a file is in the way") from None
    submission.to_csv(path, index=False)
    written = [path]
    if len(report):
        report.to_csv(report_path, index=False)
        written.append(report_path)
    elif report_path.is_file():
        report_path.unlink()
    return written


def _plural(n: int, one: str, many: str) -> str:
    """``1 study``, ``2 studies``."""
    return f"{n} {one if n == 1 else many}"


def _entry(study: int, reason: str, targets: list[str]) -> str:
    """``study 123 (no Sagittal T1 series): 10 foraminal rows``."""
    if len(targets) == len(TARGETS):
        what = f"all {len(TARGETS)} rows"
    else:
        groups = [CONDITION_GROUP[parse_row_id(f"{study}_{t}")[1]] for t in targets]
        counts = [f"{groups.count(g)} {g}" for g in GROUPS if g in groups]
        what = " + ".join(counts) + (" row" if len(targets) == 1 else " rows")
    return f"study {study} ({reason}): {what}"


def summarise_report(report: pd.DataFrame, *, n_rows: int | None = None) -> str:
    """A few short lines for a terminal: how many rows came from the prior, and why.

    Parameters
    ----------
    report : DataFrame
        As :func:`assemble` makes it.
    n_rows : int, optional
        The submission's length; default ``report.attrs["n_rows"]`` (set by
        ``assemble``), else left unsaid.

    Returns
    -------
    str
        A first line with the count, then one line per study and reason (at most
        five, then "... and N more").

    Examples
    --------
    >>> prior = training_prior(None, kind="uniform")
    >>> pred = pd.DataFrame({"row_id": [f"8_{t}" for t in TARGETS if "foraminal" not in t],
    ...                      "normal_mild": 1.0, "moderate": 0.0, "severe": 0.0})
    >>> _, report = assemble([7, 8], pred, prior, reasons={8: "no Sagittal T1 series"})
    >>> print(summarise_report(report))
    35 of 50 rows came from the training prior (2 studies):
      study 7 (not predicted): all 25 rows
      study 8 (no Sagittal T1 series): 10 foraminal rows
    """
    _check_report(report)
    n_rows = report.attrs.get("n_rows") if n_rows is None else n_rows
    of = "" if n_rows is None else f" of {n_rows}"
    if report.empty:
        return ("No row came from the training prior." if n_rows is None else
                f"All {n_rows} rows were predicted; none came from the training prior.")
    entries = [_entry(int(study), reason, part["target"].tolist()) for (study, reason), part
               in report.groupby(["study_id", "reason"], sort=False)]
    n_studies = report["study_id"].nunique()
    count = f"{len(report)}{of} rows" if of else _plural(len(report), "row", "rows")
    lines = [f"{count} came from the training prior "
             f"({_plural(n_studies, 'study', 'studies')}):"]
    lines += [f"  {e}" for e in entries[:_SUMMARY_ENTRIES]]
    if len(entries) > _SUMMARY_ENTRIES:
        lines.append(f"  ... and {len(entries) - _SUMMARY_ENTRIES} more (see the report)")
    return "\n".join(lines)
