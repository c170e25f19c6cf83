"""The index of all 25 targets: one row per (study, condition, level) that has a label.

:func:`lss.data.build_index` gives one row per study for one target. The competition
grades 25 targets per study (five conditions at five levels), each labelled on its own
kind of series: spinal canal stenosis on ``Sagittal T2/STIR``, neural foraminal narrowing
on ``Sagittal T1``, subarticular stenosis on ``Axial T2``
(:data:`lss.config.SERIES_FOR_CONDITION`). :func:`build_target_index` stacks them into
one long frame, with the series, slice and pixel of each label's coordinate row.

Sides and mirroring
-------------------
On an axial image in the usual orientation (DICOM ``ImageOrientationPatient`` row
direction +x, toward the patient's left) the patient's left is on the image's right.
A model that grades both subarticular recesses with one set of weights sees the right
recess mirrored into the left's place: flipping a right-side axial crop horizontally
puts it where a left recess sits. Those rows carry ``mirror=True``; ``x`` stays the
pixel of the source image (the mirrored column is ``columns - 1 - x``, which needs the
image's width). Left and right foramina lie on separate sagittal slices (each row has
its own instance), so no mirroring is needed there: ``mirror=False``, as for the canal.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from lss.config import CONDITIONS, LEVELS, column_name
from lss.data.tables import (
    TRAIN_COLUMNS,
    Tables,
    _choose_series,
    _coordinate_rows,
    _labelled,
    _with_images,
    load_tables,
)
from lss.errors import DataError

__all__ = [
    "INDEX_COLUMNS",
    "EXCLUSION_KINDS",
    "parse_targets",
    "build_target_index",
    "target_counts",
    "split_rows",
    "coordinate_targets",
]

log = logging.getLogger("lss")

#: Columns of :func:`build_target_index`, in order.
INDEX_COLUMNS: tuple[str, ...] = (
    "study_id", "condition", "level", "side", "target", "series_description", "series_id",
    "instance_number", "x", "y", "label", "mirror", "group",
)
#: Why a (study, target) of ``train.csv`` is not indexed (``kind`` of an exclusion).
EXCLUSION_KINDS: tuple[str, ...] = ("no label", "no coordinate row", "wrong series",
                                    "no images")
#: The 25 targets in the competition's order (the columns of ``train.csv``).
_TARGETS: tuple[str, ...] = TRAIN_COLUMNS[1:]
_PARTS: dict[str, tuple[str, str]] = {column_name(c, lv): (c, lv)
                                      for c in CONDITIONS for lv in LEVELS}
#: The coordinate table's spelling of a condition -> its key (as in ``train.csv``).
_CONDITION_KEYS: dict[str, str] = {spelled: key for key, spelled in CONDITIONS.items()}
#: The metric's condition groups (as :data:`lss.competition.GROUPS`, a layer above).
_GROUPS: tuple[str, ...] = ("spinal", "foraminal", "subarticular")


def parse_targets(targets: str | Sequence[str] = "all") -> list[str]:
    """The ``train.csv`` columns a selection names, in the competition's order.

    Parameters
    ----------
    targets : str or sequence of str
        ``"all"`` (the 25 targets), a condition key of :data:`lss.config.CONDITIONS`
        (its five levels), one target name or a list of them
        (``"<condition>_<level>"``, e.g. ``"left_subarticular_stenosis_l4_l5"``).

    Returns
    -------
    list of str

    Raises
    ------
    ValueError
        One line naming a misspelled, repeated or missing name and listing the valid ones.

    Examples
    --------
    >>> len(parse_targets())
    25
    >>> parse_targets("spinal_canal_stenosis")[:2]
    ['spinal_canal_stenosis_l1_l2', 'spinal_canal_stenosis_l2_l3']
    >>> parse_targets(["left_subarticular_stenosis_l4_l5"])
    ['left_subarticular_stenosis_l4_l5']
    """
    if isinstance(targets, str):
        if targets == "all":
            return list(_TARGETS)
        if targets in CONDITIONS:
            return [column_name(targets, lv) for lv in LEVELS]
        targets = [targets]
    names = list(targets)
    if not names:
        raise ValueError("targets is empty; give 'all', a condition or target names")
    for name in names:
        if name not in _PARTS:
            raise ValueError(f"Unknown target {name!r}; expected 'all', a condition "
                             f"({', '.join(CONDITIONS)}) or one of: {', '.join(_TARGETS)}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"targets names {', '.join(repeated)} more than once")
    return [t for t in _TARGETS if t in names]


def coordinate_targets(coordinates: pd.DataFrame) -> pd.Series:
    """The target (``train.csv`` column) each row of a coordinate table labels.

    >>> co = pd.DataFrame({"condition": ["Right Subarticular Stenosis"], "level": ["L4/L5"]})
    >>> coordinate_targets(co).tolist()
    ['right_subarticular_stenosis_l4_l5']
    """
    unknown = set(coordinates["condition"]) - set(_CONDITION_KEYS)
    if unknown:
        raise DataError(f"Coordinate table names unknown condition(s) {sorted(unknown)}; "
                        f"expected one of {sorted(_CONDITION_KEYS)}")
    return pd.Series([column_name(_CONDITION_KEYS[c], lv) for c, lv in
                      zip(coordinates["condition"], coordinates["level"], strict=True)],
                     index=coordinates.index, name="target", dtype=object)


def _group_side(condition: str) -> tuple[str, str | None]:
    """The metric group and the side (None for the canal) of a condition key."""
    group = next(g for g in _GROUPS if g in condition)
    side = next((s for s in ("left", "right") if condition.startswith(s + "_")), None)
    return group, side


def build_target_index(
    root: str | Path | Tables,
    targets: str | Sequence[str] = "all",
    *,
    check_images: bool = True,
    on_missing_label: str = "exclude",
    on_missing_images: str = "raise",
) -> pd.DataFrame:
    """One row per (study, target) with a label, placed by its coordinate row.

    Rule
    ----
    Every cell of ``train.csv`` in the chosen targets is a candidate. Where the target's
    coordinate row exists the row is what :func:`lss.data.build_index` gives (same
    series, instance, x, y and label: its helpers are reused). The other candidates are
    excluded, each listed with its ``kind`` (:data:`EXCLUSION_KINDS`) and reason:

    * ``"no label"``: the cell is empty (whether or not a coordinate row exists);
    * ``"no coordinate row"``: labelled, but no slice or pixel. Here the index differs
      from ``build_index``, which falls back to the study's only series at its middle
      slice: for a foramen the middle sagittal slice shows the canal, and an axial
      series may cover several levels, so the fallback would be a guess;
    * ``"wrong series"``: the coordinate row's series is described otherwise than
      :data:`lss.config.SERIES_FOR_CONDITION` requires;
    * ``"no images"``: the series folder is missing or empty (with
      ``on_missing_images="exclude"``).

    Parameters
    ----------
    root : str, Path or Tables
        A data root (see :func:`lss.data.load_tables`) or tables already loaded.
    targets : str or sequence of str
        See :func:`parse_targets`.
    check_images : bool
        Check that every chosen series folder holds ``.dcm`` files; False for a root
        with tables only.
    on_missing_label : {"exclude", "raise"}
        Exclude an empty cell (default) or raise :class:`DataError` naming the studies.
    on_missing_images : {"raise", "exclude"}
        A series without images raises :class:`DataError` naming the study and folder
        (default, as ``build_index``), or excludes every row that reads it.

    Returns
    -------
    DataFrame
        :data:`INDEX_COLUMNS`, sorted by study then target (competition order):
        ``condition`` (key of :data:`lss.config.CONDITIONS`), ``level`` ("L4/L5"),
        ``side`` ("left", "right" or None), ``target`` (the ``train.csv`` column),
        ``series_description`` (from ``train_series_descriptions.csv``),
        ``series_id``, ``instance_number``, ``x``, ``y``, ``label`` (0 Normal/Mild,
        1 Moderate, 2 Severe), ``mirror`` (right subarticular rows, see the module) and
        ``group`` ("spinal", "foraminal", "subarticular"). ``df.attrs`` holds
        ``targets``, ``root``, ``n_studies``, ``n_candidates`` (``n_studies`` times the
        targets) and ``excluded`` (``{"study_id", "target", "kind", "reason"}`` each),
        so that ``len(df) + len(excluded) == n_candidates``.

    Raises
    ------
    DataError
        A coordinate row naming a series the descriptions do not list or a study
        ``train.csv`` does not list, two coordinate rows for one target, and as above.

    Examples
    --------
    >>> index = build_target_index("data/phantom")  # doctest: +SKIP
    >>> len(index) + len(index.attrs["excluded"]) == index.attrs["n_candidates"]  # doctest: +SKIP
    True
    """
    for name, value, allowed in (("on_missing_label", on_missing_label, ("exclude", "raise")),
                                 ("on_missing_images", on_missing_images,
                                  ("raise", "exclude"))):
        if value not in allowed:
            raise ValueError(f"{name} must be {' or '.join(map(repr, allowed))}, got {value!r}")
    names = parse_targets(targets)
    tables = root if isinstance(root, Tables) else load_tables(root)
    if tables.train is None or tables.coordinates is None:
        raise DataError(f"No training tables (train.csv) under {tables.root}")
    _check_coordinate_studies(tables)
    label_mode = "report" if on_missing_label == "exclude" else "raise"
    parts, excluded = [], []
    for target in names:
        df, skipped = _index_target(tables, target, label_mode)
        parts.append(df)
        excluded += skipped
    df = pd.concat(parts, ignore_index=True)
    if check_images and len(df):
        df, skipped = _with_series_images(
            df, tables.root, "report" if on_missing_images == "exclude" else "raise")
        excluded += skipped
    order = {t: i for i, t in enumerate(_TARGETS)}
    df = df.sort_values(["study_id", "target"], key=lambda s: s.map(order)
                        if s.name == "target" else s, ignore_index=True)
    excluded.sort(key=lambda e: (e["study_id"], order[e["target"]]))
    df.attrs.update(targets=names, root=str(tables.root), n_studies=len(tables.train),
                    n_candidates=len(tables.train) * len(names), excluded=excluded)
    if excluded:
        log.info("%d targets: %d rows indexed, %d excluded (see df.attrs['excluded'])",
                 len(names), len(df), len(excluded))
    return df


def _check_coordinate_studies(tables: Tables) -> None:
    """Refuse coordinate rows of a study that ``train.csv`` does not list: the tables
    contradict each other, and no candidate would account for those rows."""
    known = set(tables.train["study_id"])
    stray = sorted(set(tables.coordinates["study_id"]) - known)
    if stray:
        more = f" and {len(stray) - 5} more" if len(stray) > 5 else ""
        raise DataError(
            f"train_label_coordinates.csv: study/studies {', '.join(map(str, stray[:5]))}"
            f"{more} have coordinate rows but no row in train.csv under {tables.root}"
        )


def _exclusions(study_ids, target: str, kind: str, reasons) -> list[dict]:
    """Exclusion records of one target; ``reasons`` is one string or one per study."""
    study_ids = [int(s) for s in study_ids]
    if isinstance(reasons, str):
        reasons = [reasons] * len(study_ids)
    return [{"study_id": s, "target": target, "kind": kind, "reason": r}
            for s, r in zip(study_ids, reasons, strict=True)]


def _index_target(tables: Tables, target: str, label_mode: str
                  ) -> tuple[pd.DataFrame, list[dict]]:
    """The rows of one target (:func:`build_target_index`'s rule) and its exclusions."""
    condition, level = _PARTS[target]
    labels, unlabelled = _labelled(tables, target, label_mode)
    excluded = _exclusions([e["study_id"] for e in unlabelled], target, "no label",
                           [e["reason"] for e in unlabelled])
    placed = labels["study_id"].isin(_coordinate_rows(tables, condition, level).index)
    excluded += _exclusions(labels["study_id"][~placed], target, "no coordinate row",
                            f"no coordinate row for {CONDITIONS[condition]} at {level}")
    rows, wrong = _choose_series(tables, labels[placed], target, condition, level)
    excluded += _exclusions([e["study_id"] for e in wrong], target, "wrong series",
                            [e["reason"] for e in wrong])
    df = pd.DataFrame(rows, columns=["study_id", "series_id", "instance_number", "x", "y",
                                     "label", "series_rule", "n_series"])
    df = df.astype({"study_id": "int64", "series_id": "int64", "instance_number": "int64",
                    "x": "float64", "y": "float64", "label": "int64"})
    described = tables.series.set_index(["study_id", "series_id"])["series_description"]
    group, side = _group_side(condition)
    df = df.assign(
        condition=condition, level=level, target=target,
        side=pd.Series([side] * len(df), index=df.index, dtype=object),  # None: no str dtype
        series_description=described.reindex(
            pd.MultiIndex.from_frame(df[["study_id", "series_id"]])).to_numpy(),
        mirror=group == "subarticular" and side == "right", group=group)
    return df[list(INDEX_COLUMNS)], excluded


def _with_series_images(df: pd.DataFrame, root: Path, mode: str
                        ) -> tuple[pd.DataFrame, list[dict]]:
    """The rows whose series folder holds DICOM files, each series listed once; the
    rows of the others raise or are excluded (``mode`` as ``build_index``'s)."""
    pairs = df[["study_id", "series_id"]].drop_duplicates(ignore_index=True)
    kept, skipped = _with_images(pairs, root, mode)
    missing = pairs.drop(index=kept.index)  # in the order _with_images reported them
    why = {(int(s), int(r)): f"series {r}: {e['reason']}" for (s, r), e in
           zip(missing.itertuples(index=False), skipped, strict=True)}
    if not why:
        return df, []
    bad = pd.Series([(int(s), int(r)) in why for s, r in
                     zip(df["study_id"], df["series_id"], strict=True)], index=df.index)
    excluded = [{"study_id": int(r.study_id), "target": r.target, "kind": "no images",
                 "reason": why[(int(r.study_id), int(r.series_id))]}
                for r in df[bad].itertuples(index=False)]
    return df[~bad], excluded


def target_counts(index: pd.DataFrame) -> pd.DataFrame:
    """Candidates, indexed rows and exclusions by kind, per target of an index.

    Parameters
    ----------
    index : DataFrame
        A frame of :func:`build_target_index` (its ``attrs`` are read).

    Returns
    -------
    DataFrame
        Indexed by target (the index's targets, in order), columns ``candidates``,
        ``indexed`` and one per :data:`EXCLUSION_KINDS`; each row adds up:
        ``indexed`` plus the exclusions equals ``candidates``, unless rows were
        removed from the frame after it was built.

    Examples
    --------
    >>> target_counts(build_target_index("data/phantom"))  # doctest: +SKIP
    """
    missing = [k for k in ("targets", "n_studies", "excluded") if k not in index.attrs]
    if missing:
        raise ValueError(f"not a frame of build_target_index: attrs lacks {missing}")
    names = list(index.attrs["targets"])
    out = pd.DataFrame(0, index=pd.Index(names, name="target"),
                       columns=["candidates", "indexed", *EXCLUSION_KINDS])
    out["candidates"] = index.attrs["n_studies"]
    out["indexed"] = index["target"].value_counts().reindex(names, fill_value=0)
    for e in index.attrs["excluded"]:
        out.loc[e["target"], e["kind"]] += 1
    return out


def split_rows(index: pd.DataFrame, split: pd.DataFrame) -> pd.DataFrame:
    """Every row of an index with its study's split, so that studies stay whole.

    Parameters
    ----------
    index : DataFrame
        Any frame with a ``study_id`` column, e.g. of :func:`build_target_index`.
    split : DataFrame
        One row per study: ``study_id`` and ``split`` (e.g. "train", "val"). Studies
        the index does not hold are ignored.

    Returns
    -------
    DataFrame
        A copy of ``index`` (``attrs`` kept) with a ``split`` column.

    Raises
    ------
    DataError
        A missing column, a study listed twice or without a split, or studies of the
        index absent from ``split`` (named).

    Examples
    --------
    >>> index = pd.DataFrame({"study_id": [7, 7, 9], "level": ["L4/L5", "L5/S1", "L4/L5"]})
    >>> split = pd.DataFrame({"study_id": [9, 7], "split": ["val", "train"]})
    >>> split_rows(index, split)["split"].tolist()
    ['train', 'train', 'val']
    """
    lacking = [c for c in ("study_id", "split") if c not in split.columns]
    if lacking:
        raise DataError(f"split frame lacks column(s) {lacking}; it has {list(split.columns)}")
    if "split" in index.columns:
        raise ValueError("index already has a 'split' column")
    twice = split["study_id"][split["study_id"].duplicated()]
    if len(twice):
        raise DataError(f"split: study {twice.iloc[0]} is listed more than once")
    empty = split["study_id"][split["split"].isna()]
    if len(empty):
        raise DataError(f"split: study {empty.iloc[0]} has no split")
    of_study = split.set_index("study_id")["split"]
    absent = sorted(set(index["study_id"]) - set(of_study.index))
    if absent:
        more = f" and {len(absent) - 5} more" if len(absent) > 5 else ""
        raise DataError(f"split: study/studies {', '.join(map(str, absent[:5]))}{more} of "
                        f"the index are not in the split ({len(absent)} in all)")
    return index.assign(split=index["study_id"].map(of_study))
