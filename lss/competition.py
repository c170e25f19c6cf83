"""The RSNA 2024 competition's 25 targets, its submission table and its score.

The competition grades every study on 25 targets, five conditions at five levels. A
submission has one row per study and target, ``row_id = <study_id>_<condition>_<level>``
(e.g. ``4018886_spinal_canal_stenosis_l4_l5``), and one probability per grade in the
columns ``normal_mild``, ``moderate``, ``severe``. The hidden answers form a "solution"
table of the same rows, one-hot, with a ``sample_weight`` of 1, 2 or 4 by the true grade.

:func:`score` computes the competition's metric as the scorer published with
adamnarai/kaggle-rsna-2024 (``rsna2024/utils/rsna_lumbar_metric.py``) computes it with
the scikit-learn of 2024, re-implemented here (pure, and aligned on ``row_id``):

1. the rows are pooled into three groups across levels and sides: ``spinal`` (spinal
   canal), ``foraminal`` (left and right neural foraminal narrowing), ``subarticular``
   (left and right subarticular stenosis); each group scores a log loss weighted by the
   rows' ``sample_weight``;
2. ``any_severe_spinal``: per study, the label is 1 when any spinal canal level is
   Severe, the prediction is the largest submitted ``severe`` over the study's spinal
   rows, and the weight is the largest ``sample_weight`` of those rows (1, 2 or 4 by
   the study's worst spinal grade); scored as a weighted binary log loss;
3. the score is the mean of the four terms (the any-severe term weighted by
   :data:`ANY_SEVERE_WEIGHT`, 1 in the competition).

As in that scorer, every probability is clipped to ``[eps, 1 - eps]`` (``eps`` the
machine epsilon of float64) *before* each row is divided by its sum: a row of zeros
counts as the uniform answer, and an entry above 1 counts as 1. The any-severe term
takes the ``severe`` entries as submitted, *not* divided by their row's sum. Rows
without a label are not in the solution (:func:`solution_frame` leaves them out), so
they are not scored, nor do they enter the any-severe maximum.

Where this differs from the published file, on purpose:

* rows are paired by ``row_id``; the published ``score`` deletes ``row_id`` and pairs
  the two tables by their pandas index, so a submission in another order is scored
  against the wrong answers unless the caller has aligned it;
* the any-severe term is computed when every study has the same label; scikit-learn's
  ``log_loss`` refuses a single class (a small validation split can have no Severe);
* ``eps`` is always float64's (the same file's ``prepare_data`` passes float32, whose
  eps, 1.2e-7, caps a sure mistake at 15.9 rather than 36);
* with scikit-learn 1.7 and later the published file itself scores differently: those
  versions no longer divide rows by their sums (they warn) and refuse entries above 1.

Nothing here modifies its inputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from lss.config import CONDITIONS, LABEL_MAP, LEVELS, RSNA_SAMPLE_WEIGHTS, SEVERITIES, column_name
from lss.errors import DataError
from lss.metrics import weighted_prior

__all__ = [
    "PROBA_COLUMNS",
    "TARGETS",
    "GROUPS",
    "CONDITION_GROUP",
    "ANY_SEVERE_WEIGHT",
    "CONSTANT_KINDS",
    "row_ids",
    "parse_row_id",
    "solution_frame",
    "check_submission",
    "score",
    "study_terms",
    "bootstrap_gap",
    "constant_submission",
]

#: The probability columns of a submission (and the one-hot columns of a solution), in
#: the order of :data:`lss.config.SEVERITIES`.
PROBA_COLUMNS: tuple[str, ...] = tuple(s.lower().replace("/", "_") for s in SEVERITIES)
#: Target (condition, level) of each ``train.csv`` column name, in the order of the
#: competition's ``sample_submission.csv``: conditions alphabetically, levels top down.
_TARGET_PARTS: dict[str, tuple[str, str]] = {
    column_name(c, lv): (c, lv) for c in sorted(CONDITIONS) for lv in LEVELS}
#: The 25 targets, ``<condition>_<level>``, in the order of ``sample_submission.csv``.
TARGETS: tuple[str, ...] = tuple(_TARGET_PARTS)
#: The metric's condition groups, in the order it scores them.
GROUPS: tuple[str, ...] = ("spinal", "foraminal", "subarticular")
#: Group of each condition (the group's name is part of the condition's name).
CONDITION_GROUP: dict[str, str] = {c: next(g for g in GROUPS if g in c) for c in CONDITIONS}
#: Weight of the any-severe-spinal term beside the three groups (the competition's 1).
ANY_SEVERE_WEIGHT: float = 1.0
#: The constant submissions of :func:`constant_submission`.
CONSTANT_KINDS: tuple[str, ...] = ("prior", "uniform", "weighted_prior")

_EPS = float(np.finfo(np.float64).eps)
_SOLUTION_COLUMNS = ("row_id", *PROBA_COLUMNS, "sample_weight")


# --------------------------------------------------------------------------- row ids


def _study_key(value: Any) -> str:
    """A study id as it appears in a row_id (digits, no sign or leading zeros)."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit():
        raise DataError(f"study_id {value!r} is not a non-negative integer")
    return str(int(text))


def row_ids(study_ids: Iterable[Any]) -> list[str]:
    """The 25 row_ids of each study, studies in the given order (repeats listed once).

    Examples
    --------
    >>> ids = row_ids([4018886, 4018886])
    >>> len(ids), ids[0], ids[-1]
    (25, '4018886_left_neural_foraminal_narrowing_l1_l2', '4018886_spinal_canal_stenosis_l5_s1')
    """
    studies = dict.fromkeys(_study_key(s) for s in study_ids)
    return [f"{study}_{target}" for study in studies for target in TARGETS]


def parse_row_id(row_id: str) -> tuple[int, str, str]:
    """Study id, condition and level of a row_id (level spelled as in :data:`LEVELS`).

    Examples
    --------
    >>> parse_row_id("4018886_left_subarticular_stenosis_l4_l5")
    (4018886, 'left_subarticular_stenosis', 'L4/L5')
    """
    study, _, target = str(row_id).partition("_")
    if not study.isdigit() or target not in _TARGET_PARTS:
        raise DataError(f"row_id '{row_id}' is not <study_id>_<condition>_<level> "
                        f"(e.g. '4018886_{TARGETS[0]}')")
    condition, level = _TARGET_PARTS[target]
    return int(study), condition, level


# --------------------------------------------------------------------------- solution


def _grade_codes(train_df: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """Study keys and grade indices ``(n_studies, 25)`` (NaN where unlabelled) of a
    ``train.csv``-style wide table, columns in :data:`TARGETS` order."""
    if not isinstance(train_df, pd.DataFrame):
        raise DataError(f"labels must be a DataFrame, got {type(train_df).__name__}")
    missing = [c for c in ("study_id", *TARGETS) if c not in train_df.columns]
    if missing:
        raise DataError(f"labels table has no column '{missing[0]}' "
                        f"({len(missing)} of the 26 train.csv columns missing)")
    studies = [_study_key(s) for s in train_df["study_id"]]
    seen: set[str] = set()
    for s in studies:
        if s in seen:
            raise DataError(f"labels table lists study {s} more than once")
        seen.add(s)
    values = train_df[list(TARGETS)].to_numpy(dtype=object)
    unlabelled = pd.isna(values)
    codes = np.full(values.shape, np.nan)
    for name, code in LABEL_MAP.items():
        codes[values == name] = code
    bad = np.argwhere(~unlabelled & np.isnan(codes))
    if bad.size:
        i, j = bad[0]
        raise DataError(f"study {studies[i]}: {TARGETS[j]} is {values[i, j]!r}, "
                        f"expected one of {list(SEVERITIES)} or empty")
    return studies, codes


def solution_frame(train_df: pd.DataFrame) -> pd.DataFrame:
    """The competition's solution table from a ``train.csv``-style wide table.

    One row per study and *labelled* target (studies in table order, targets in
    :data:`TARGETS` order): ``row_id``, the one-hot columns :data:`PROBA_COLUMNS` and
    ``sample_weight`` (:data:`lss.config.RSNA_SAMPLE_WEIGHTS` of the true grade).
    Unlabelled targets are left out, as the competition leaves them out of scoring;
    their number is ``frame.attrs["n_missing"]``.

    Examples
    --------
    >>> wide = pd.DataFrame({"study_id": [7], **{t: ["Normal/Mild"] for t in TARGETS}})
    >>> wide.loc[0, TARGETS[0]], wide.loc[0, TARGETS[1]] = "Severe", None
    >>> sol = solution_frame(wide)
    >>> len(sol), sol.attrs["n_missing"]
    (24, 1)
    >>> sol.loc[0, "row_id"], sol.loc[0, ["severe", "sample_weight"]].tolist()
    ('7_left_neural_foraminal_narrowing_l1_l2', [1.0, 4.0])
    """
    studies, codes = _grade_codes(train_df)
    ids = np.array([f"{s}_{t}" for s in studies for t in TARGETS], dtype=object)
    flat = codes.ravel()
    keep = ~np.isnan(flat)
    grade = flat[keep].astype(np.int64)
    onehot = np.eye(len(SEVERITIES), dtype=np.int64)[grade]
    frame = pd.DataFrame({"row_id": ids[keep],
                          **{c: onehot[:, k] for k, c in enumerate(PROBA_COLUMNS)},
                          "sample_weight": np.asarray(RSNA_SAMPLE_WEIGHTS, float)[grade]})
    frame.attrs["n_missing"] = int((~keep).sum())
    return frame


# --------------------------------------------------------------------------- submission


def _check_columns(frame: Any, what: str, columns: tuple[str, ...]) -> None:
    """Refuse a table without exactly ``columns``."""
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{what} must be a DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    extra = [c for c in frame.columns if c not in columns]
    if missing or extra:
        raise DataError(f"{what} must have the columns {list(columns)}; "
                        f"missing {missing}, unexpected {extra}")


def _first_duplicate(ids: pd.Series, what: str) -> None:
    """Refuse a table that lists a row_id twice, naming the first."""
    dup = ids[ids.duplicated()]
    if len(dup):
        rid = dup.iloc[0]
        raise DataError(f"{what}: row_id '{rid}' appears {int((ids == rid).sum())} times")


def _probabilities(sub: pd.DataFrame, ids: pd.Series, *, at_most_one: bool) -> np.ndarray:
    """The ``(N, 3)`` float probabilities of a submission, refusing the first row with a
    non-numeric, non-finite or negative entry (or one above 1, with ``at_most_one``)."""
    p = sub[list(PROBA_COLUMNS)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    checks = [(~np.isfinite(p), "a missing, non-numeric or infinite probability"),
              (p < 0, "a negative probability")]
    if at_most_one:
        checks.append((p > 1, "a probability above 1 (the competition clips it to 1 "
                              "before normalising the row)"))
    for bad, why in checks:
        rows = np.flatnonzero(bad.any(axis=1))
        if rows.size:
            i = rows[0]
            shown = sub[list(PROBA_COLUMNS)].iloc[i].to_dict()
            raise DataError(f"submission: row_id '{ids.iloc[i]}' has {why}: {shown} "
                            f"({rows.size} such row(s))")
    return p


def check_submission(sub: pd.DataFrame, study_ids: Iterable[Any]) -> None:
    """Refuse a submission that the competition would not score as meant.

    It must have the columns ``row_id`` and :data:`PROBA_COLUMNS` only, list each row of
    :func:`row_ids` of ``study_ids`` exactly once and nothing else, in any order, and
    hold probabilities that are finite and in ``[0, 1]``. Rows need not sum to 1 (the
    scorer divides each row by its sum). Raises a one-line :class:`DataError` naming the
    first bad row_id (duplicated, unexpected, missing, then bad values, in that order).

    Examples
    --------
    >>> sub = pd.DataFrame({"row_id": row_ids([7]), "normal_mild": 1.0, "moderate": 0.0,
    ...                     "severe": 0.0})
    >>> check_submission(sub, [7])
    >>> check_submission(sub.iloc[:-1], [7])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lss.errors.DataError: submission: missing row_id '7_spinal_canal_stenosis_l5_s1' (1 of 25...
    """
    _check_columns(sub, "submission", ("row_id", *PROBA_COLUMNS))
    expected = row_ids(study_ids)
    ids = sub["row_id"].astype(str)
    _first_duplicate(ids, "submission")
    extra = ids[~ids.isin(expected)]
    if len(extra):
        raise DataError(f"submission: unexpected row_id '{extra.iloc[0]}' ({len(extra)} "
                        f"row(s) not among the 25 targets of the {len(expected) // 25} studies)")
    present = set(ids)
    missing = [r for r in expected if r not in present]
    if missing:
        raise DataError(f"submission: missing row_id '{missing[0]}' ({len(missing)} of "
                        f"{len(expected)} expected rows missing)")
    _probabilities(sub, ids, at_most_one=True)


# --------------------------------------------------------------------------- score


def _checked_solution(solution: pd.DataFrame) -> pd.DataFrame:
    """Row id, study, group, grade and weight of each solution row, refusing a row that
    is not one-hot or has no positive finite weight (naming it)."""
    _check_columns(solution, "solution", _SOLUTION_COLUMNS)
    if solution.empty:
        raise DataError("solution has no rows")
    ids = solution["row_id"].astype(str)
    _first_duplicate(ids, "solution")
    parts = [parse_row_id(r) for r in ids]
    y = solution[list(PROBA_COLUMNS)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    w = pd.to_numeric(solution["sample_weight"], errors="coerce").to_numpy(float)
    bad = ~(np.isin(y, (0.0, 1.0)).all(axis=1) & (y.sum(axis=1) == 1))
    bad |= ~(np.isfinite(w) & (w > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"solution: row_id '{ids.iloc[i]}' is not one-hot with a positive "
                        f"sample_weight: {solution.iloc[i][list(_SOLUTION_COLUMNS[1:])].tolist()}")
    return pd.DataFrame({"row_id": ids.to_numpy(), "study": [p[0] for p in parts],
                         "group": [CONDITION_GROUP[p[1]] for p in parts],
                         "grade": y.argmax(axis=1), "weight": w})


def _aligned_submission(sol_ids: pd.Series, submission: pd.DataFrame
                        ) -> tuple[np.ndarray, int]:
    """The submitted probabilities of the solution's rows, in the solution's order, and
    the number of submitted rows that the solution does not score."""
    _check_columns(submission, "submission", ("row_id", *PROBA_COLUMNS))
    ids = submission["row_id"].astype(str)
    _first_duplicate(ids, "submission")
    p = _probabilities(submission, ids, at_most_one=False)
    position = pd.Index(ids).get_indexer(sol_ids)
    if (position < 0).any():
        absent = sol_ids[position < 0]
        raise DataError(f"submission: missing row_id '{absent.iloc[0]}' ({len(absent)} of "
                        f"the solution's {len(sol_ids)} rows missing)")
    return p[position], len(ids) - len(sol_ids)


def _row_losses(grade: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Each row's ``-log q[y]`` with :func:`_weighted_log_loss`'s clip-then-divide."""
    q = np.clip(proba, _EPS, 1 - _EPS)
    q = q / q.sum(axis=1, keepdims=True)
    return -np.log(q[np.arange(len(grade)), grade])


def _worst_spinal(sol: pd.DataFrame, proba: np.ndarray) -> pd.DataFrame:
    """Per study (index): any Severe spinal level (``label``), the worst spinal weight
    and the largest submitted ``severe`` over its spinal rows."""
    spinal = (sol["group"] == "spinal").to_numpy()
    return pd.DataFrame({"study": sol["study"].to_numpy()[spinal],
                         "label": (sol["grade"].to_numpy()[spinal] == 2).astype(int),
                         "weight": sol["weight"].to_numpy()[spinal],
                         "severe": proba[spinal, PROBA_COLUMNS.index("severe")]}
                        ).groupby("study", sort=True).max()


def _weighted_log_loss(grade: np.ndarray, proba: np.ndarray, weight: np.ndarray) -> float:
    """``sum_i w_i * -log(q[i, y_i]) / sum_i w_i``, where ``q`` is ``proba`` clipped to
    ``[eps, 1 - eps]`` and then divided by its row sums (the competition's order)."""
    return float(np.sum(weight * _row_losses(grade, proba)) / weight.sum())


def _any_severe_spinal(sol: pd.DataFrame, proba: np.ndarray) -> tuple[float, int]:
    """The any-severe-spinal term and the number of studies it scores."""
    worst = _worst_spinal(sol, proba)
    p = np.clip(worst["severe"].to_numpy(), _EPS, 1 - _EPS)
    binary = np.column_stack([1 - p, p])
    return _weighted_log_loss(worst["label"].to_numpy(), binary,
                              worst["weight"].to_numpy()), len(worst)


def score(solution: pd.DataFrame, submission: pd.DataFrame, *,
          any_severe_weight: float = ANY_SEVERE_WEIGHT) -> dict[str, float | int]:
    """The competition's score of ``submission`` on ``solution`` (lower is better).

    Parameters
    ----------
    solution : DataFrame
        As made by :func:`solution_frame`: ``row_id``, one-hot :data:`PROBA_COLUMNS`,
        ``sample_weight``; only labelled rows.
    submission : DataFrame
        ``row_id`` and :data:`PROBA_COLUMNS`, rows in any order; every solution row
        exactly once; extra rows (e.g. unlabelled targets) are not scored.
        Entries must be finite and non-negative; rows need not sum to 1.
    any_severe_weight : float
        Weight of the any-severe-spinal term in the mean (the competition's 1).

    Returns
    -------
    dict
        ``score``; the terms ``spinal``, ``foraminal``, ``subarticular``,
        ``any_severe_spinal``; the counts ``n_rows`` (scored rows), ``n_spinal``,
        ``n_foraminal``, ``n_subarticular``, ``n_studies`` (of the any-severe term),
        ``n_unscored`` (submitted rows not in the solution).

    Examples
    --------
    >>> wide = pd.DataFrame({"study_id": [7], **{t: ["Normal/Mild"] for t in TARGETS}})
    >>> sub = pd.DataFrame({"row_id": row_ids([7]), "normal_mild": 1.0, "moderate": 1.0,
    ...                     "severe": 1.0})  # uniform, once normalised
    >>> s = score(solution_frame(wide), sub)
    >>> round(s["spinal"], 4), round(s["any_severe_spinal"], 4)  # ln 3; severe 1 -> -ln(eps)
    (1.0986, 36.0437)
    """
    if not (np.isfinite(any_severe_weight) and any_severe_weight >= 0):
        raise ValueError(f"any_severe_weight must be finite and >= 0, got {any_severe_weight}")
    sol = _checked_solution(solution)
    proba, n_unscored = _aligned_submission(sol["row_id"], submission)
    out: dict[str, float | int] = {}
    counts = {}
    for group in GROUPS:
        rows = (sol["group"] == group).to_numpy()
        if not rows.any():
            raise DataError(f"solution has no labelled {group} rows: the score needs all "
                            f"three groups {list(GROUPS)}")
        out[group] = _weighted_log_loss(sol["grade"].to_numpy()[rows], proba[rows],
                                        sol["weight"].to_numpy()[rows])
        counts[f"n_{group}"] = int(rows.sum())
    out["any_severe_spinal"], n_studies = _any_severe_spinal(sol, proba)
    terms = [out[g] for g in GROUPS] + [out["any_severe_spinal"]]
    out = {"score": float(np.average(terms, weights=[1.0] * len(GROUPS) + [any_severe_weight])),
           **out, "n_rows": len(sol), **counts, "n_studies": n_studies,
           "n_unscored": n_unscored}
    return out


def study_terms(solution: pd.DataFrame, submission: pd.DataFrame) -> pd.DataFrame:
    """Each study's share of every term of :func:`score`: per group its weighted loss sum
    ``<group>_loss`` and weight sum ``<group>_weight``, and ``any_severe_loss`` and
    ``any_severe_weight`` (one row per study, index ``study``).

    A term of the score is the sum of its ``_loss`` column over the studies divided by
    the sum of its ``_weight`` column: resampling studies (:func:`bootstrap_gap`)
    reweights rows without scoring again.
    """
    sol = _checked_solution(solution)
    proba, _ = _aligned_submission(sol["row_id"], submission)
    frame = pd.DataFrame({"study": sol["study"].to_numpy()})
    losses = _row_losses(sol["grade"].to_numpy(), proba)
    for group in GROUPS:
        rows = (sol["group"] == group).to_numpy()
        frame[f"{group}_loss"] = np.where(rows, sol["weight"] * losses, 0.0)
        frame[f"{group}_weight"] = np.where(rows, sol["weight"], 0.0)
    out = frame.groupby("study", sort=True).sum()
    worst = _worst_spinal(sol, proba)
    p = np.clip(worst["severe"].to_numpy(), _EPS, 1 - _EPS)
    loss = _row_losses(worst["label"].to_numpy(), np.column_stack([1 - p, p]))
    out["any_severe_loss"] = pd.Series(worst["weight"].to_numpy() * loss, worst.index)
    out["any_severe_weight"] = worst["weight"]
    return out.fillna(0.0)


def _terms_of(parts: pd.DataFrame, counts: np.ndarray) -> np.ndarray:
    """(resamples, 5) scores (score, the groups, any-severe) of ``counts`` copies of each
    study's :func:`study_terms` row."""
    names = [*GROUPS, "any_severe"]
    loss = counts @ parts[[f"{n}_loss" for n in names]].to_numpy()
    weight = counts @ parts[[f"{n}_weight" for n in names]].to_numpy()
    terms = loss / weight
    return np.column_stack([terms.mean(axis=1), terms])


def bootstrap_gap(solution: pd.DataFrame, submission: pd.DataFrame,
                  baseline: pd.DataFrame, *, n_resamples: int = 2000, seed: int = 0,
                  level: float = 0.95) -> pd.DataFrame:
    """How sure the score of ``submission`` is to lie below ``baseline``'s, by study.

    Studies are resampled with replacement (both submissions on the same resample) and
    every term of :func:`score` recomputed; a gap is ``submission - baseline`` (below 0:
    the submission scores better). A resample without a row of some group (possible with
    very few studies) is left out. The any-severe term is weighted 1, as in the
    competition.

    Returns
    -------
    DataFrame
        Index ``score``, ``spinal``, ``foraminal``, ``subarticular``,
        ``any_severe_spinal``; columns ``gap`` (on all the studies), ``low`` and ``high``
        (the percentile interval at ``level``) and ``share_below`` (the share of
        resamples with a gap below 0).
    """
    a, b = study_terms(solution, submission), study_terms(solution, baseline)
    rng = np.random.default_rng(seed)
    n = len(a)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        gaps = _terms_of(a, counts) - _terms_of(b, counts)
    gaps = gaps[np.isfinite(gaps).all(axis=1)]
    whole = _terms_of(a, np.ones((1, n)))[0] - _terms_of(b, np.ones((1, n)))[0]
    tail = (1 - level) / 2 * 100
    index = ["score", *GROUPS, "any_severe_spinal"]
    out = pd.DataFrame({"gap": whole, "low": np.percentile(gaps, tail, axis=0),
                        "high": np.percentile(gaps, 100 - tail, axis=0),
                        "share_below": (gaps < 0).mean(axis=0)}, index=index)
    out.attrs.update(n_studies=n, n_resamples=len(gaps), level=level)
    return out


# --------------------------------------------------------------------------- baselines


def constant_submission(kind: str, train_labels: pd.DataFrame | None,
                        study_ids: Iterable[Any]) -> pd.DataFrame:
    """The same answer for every study: a submission for ``study_ids``.

    The constant is chosen per target (each of the 25 targets its own), from the
    labelled rows of ``train_labels`` (a ``train.csv``-style wide table):

    * ``prior``: the target's grade frequencies, the best constant for the plain
      log loss of its rows;
    * ``uniform``: 1/3 each (``train_labels`` is not read and may be None);
    * ``weighted_prior``: the frequencies weighted 1/2/4 and renormalised
      (:func:`lss.metrics.weighted_prior`), the best constant for the group terms of
      the score, whose rows are weighted 1/2/4.

    Per target rather than per group: a group's log loss is a sum over its targets'
    rows, so the best constant of each target is at least as good on the training
    rows as the best constant of its group. (The any-severe term is optimised by
    neither.)

    Examples
    --------
    >>> sub = constant_submission("uniform", None, [7, 8])
    >>> sub.shape, sub.iloc[0, 1:].round(3).tolist()
    ((50, 4), [0.333, 0.333, 0.333])
    """
    if kind not in CONSTANT_KINDS:
        raise ValueError(f"Unknown constant '{kind}'; expected one of {list(CONSTANT_KINDS)}")
    ids = row_ids(study_ids)
    k = len(PROBA_COLUMNS)
    table = np.full((len(TARGETS), k), 1.0 / k)
    if kind != "uniform":
        _, codes = _grade_codes(train_labels)
        for j, target in enumerate(TARGETS):
            y = codes[:, j][~np.isnan(codes[:, j])].astype(np.int64)
            if y.size == 0:
                raise DataError(f"labels table has no label for {target}")
            table[j] = (weighted_prior(y) if kind == "weighted_prior"
                        else np.bincount(y, minlength=k) / y.size)
    proba = np.tile(table, (len(ids) // len(TARGETS), 1))
    return pd.DataFrame({"row_id": ids, **{c: proba[:, i] for i, c in enumerate(PROBA_COLUMNS)}})
