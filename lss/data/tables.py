"""The RSNA 2024 label tables: reading, checking, and the per-target index.

The competition ships three CSV files next to ``train_images/``:

* ``train.csv`` -- one row per study, one column per condition and level
  (``left_subarticular_stenosis_l4_l5`` ...), values ``Normal/Mild``, ``Moderate``,
  ``Severe`` or empty;
* ``train_series_descriptions.csv`` -- which series of a study is ``Axial T2``,
  ``Sagittal T1`` or ``Sagittal T2/STIR``;
* ``train_label_coordinates.csv`` -- for each study, condition and level, the series,
  the instance (slice) and the pixel (x, y) where the radiologist placed the label.

:func:`load_tables` reads and validates them; :func:`build_index` turns them into one
row per labelled study for a chosen target.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lss.config import (
    CONDITIONS,
    LABEL_MAP,
    LEVELS,
    SERIES_DESCRIPTIONS,
    SERIES_FOR_CONDITION,
    column_name,
)
from lss.data.dicom import list_dicom_files
from lss.errors import DataError

__all__ = [
    "Tables",
    "load_tables",
    "build_index",
    "series_dir",
    "TRAIN_COLUMNS",
]

log = logging.getLogger("lss")

#: ``train.csv`` columns in the competition's order.
TRAIN_COLUMNS: tuple[str, ...] = ("study_id",) + tuple(
    column_name(c, lv) for c in CONDITIONS for lv in LEVELS
)
_SERIES_COLUMNS = ("study_id", "series_id", "series_description")
_COORD_COLUMNS = ("study_id", "series_id", "instance_number", "condition", "level", "x", "y")

@dataclass(frozen=True)
class Tables:
    """The label tables of one data root, validated.

    Attributes
    ----------
    root : Path
        The data root the tables came from.
    train : DataFrame or None
        ``train.csv`` (None for a root with only a test split).
    series : DataFrame
        ``train_series_descriptions.csv`` (or the test one for a test-only root).
    coordinates : DataFrame or None
        ``train_label_coordinates.csv``.
    test_series : DataFrame or None
        ``test_series_descriptions.csv`` where present.
    """

    root: Path
    train: pd.DataFrame | None
    series: pd.DataFrame
    coordinates: pd.DataFrame | None
    test_series: pd.DataFrame | None


def _read_csv(path: Path, required: tuple[str, ...], int_cols: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"Missing table: {path}")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot be read as CSV ({exc})") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        hints = []
        for m in missing:
            others = [str(c) for c in df.columns if c not in required]  # not its neighbours
            close = difflib.get_close_matches(m, others, n=1)
            hints.append(f"'{m}'" + (f" (found '{close[0]}': misspelled?)" if close else ""))
        raise DataError(f"{path.name}: missing column(s) {', '.join(hints)} in {path}")
    for col in int_cols:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() | (values != values.round())
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{path.name}: column '{col}' must hold integers; row {row + 2} has "
                f"{df[col].iloc[row]!r} in {path}"
            )
        df[col] = values.astype("int64")
    return df


def _check_values(df: pd.DataFrame, col: str, allowed, path: Path, *, allow_nan: bool) -> None:
    values = df[col]
    bad = ~values.isin(list(allowed))
    if allow_nan:
        bad &= values.notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        study = df["study_id"].iloc[i] if "study_id" in df.columns else "?"
        raise DataError(
            f"{path.name}: unexpected value {values.iloc[i]!r} in column '{col}' "
            f"(study {study}, row {i + 2}); expected one of {sorted(allowed)}"
        )


def load_tables(root: str | Path) -> Tables:
    """Read and validate the label tables under a data root.

    Parameters
    ----------
    root : str or Path
        A folder laid out like the Kaggle download (``train.csv``,
        ``train_series_descriptions.csv``, ``train_label_coordinates.csv``, and
        optionally ``test_series_descriptions.csv``). A folder holding only
        ``test_series_descriptions.csv`` is accepted as a test-only root.

    Returns
    -------
    Tables

    Raises
    ------
    DataError
        Naming the file and the missing or misspelled column, a non-integer id, or an
        unexpected value spelling (with the study and row).

    Examples
    --------
    >>> from lss.data import load_tables  # doctest: +SKIP
    >>> t = load_tables("data/phantom")  # doctest: +SKIP
    >>> t.train.shape[1]  # doctest: +SKIP
    26
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"Data root not found: {root}")
    test_path = root / "test_series_descriptions.csv"
    test_series = (
        _read_csv(test_path, _SERIES_COLUMNS, ("study_id", "series_id"))
        if test_path.is_file()
        else None
    )
    if test_series is not None:
        _check_values(test_series, "series_description", SERIES_DESCRIPTIONS, test_path,
                      allow_nan=False)
    if not (root / "train.csv").is_file() and test_series is not None:
        return Tables(root, None, test_series, None, test_series)

    train_path = root / "train.csv"
    train = _read_csv(train_path, TRAIN_COLUMNS, ("study_id",))
    for col in TRAIN_COLUMNS[1:]:
        _check_values(train, col, LABEL_MAP, train_path, allow_nan=True)
    dup = train["study_id"].duplicated()
    if dup.any():
        raise DataError(
            f"train.csv: study {train['study_id'][dup].iloc[0]} appears more than once in "
            f"{train_path}"
        )

    series_path = root / "train_series_descriptions.csv"
    series = _read_csv(series_path, _SERIES_COLUMNS, ("study_id", "series_id"))
    _check_values(series, "series_description", SERIES_DESCRIPTIONS, series_path,
                  allow_nan=False)

    coord_path = root / "train_label_coordinates.csv"
    coords = _read_csv(coord_path, _COORD_COLUMNS, ("study_id", "series_id", "instance_number"))
    _check_values(coords, "condition", set(CONDITIONS.values()), coord_path, allow_nan=False)
    _check_values(coords, "level", LEVELS, coord_path, allow_nan=False)
    for col in ("x", "y"):
        coords[col] = _coordinate_column(coords, col, coord_path)
    return Tables(root, train, series, coords, test_series)


def _coordinate_column(coords: pd.DataFrame, col: str, path: Path) -> pd.Series:
    """Column ``x`` or ``y`` as float64: every value a finite number, else a DataError
    naming the study and the row (``inf`` parses as a number but is no pixel)."""
    values = pd.to_numeric(coords[col], errors="coerce")
    for bad, what in ((values.isna(), "a number"), (~np.isfinite(values), "finite")):
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{path.name}: column '{col}' must be {what}; study "
                f"{coords['study_id'].iloc[i]} (row {i + 2}) has {str(coords[col].iloc[i])!r}"
            )
    return values.astype("float64")


def series_dir(root: str | Path, study_id: int, series_id: int, *, split: str = "train") -> Path:
    """The folder of one series: ``<root>/<split>_images/<study_id>/<series_id>``."""
    return Path(root) / f"{split}_images" / str(int(study_id)) / str(int(series_id))


def build_index(
    root: str | Path | Tables,
    condition: str = "left_subarticular_stenosis",
    level: str = "L4/L5",
    *,
    check_images: bool = True,
    on_missing_label: str = "report",
    on_missing_images: str = "raise",
) -> pd.DataFrame:
    """One row per labelled study for one target, with the series and slice to read.

    Series rule
    -----------
    * The coordinate row for (study, condition, level) names the series and the
      instance that shows the level: that series is used, also for the 335 real
      studies that have several Axial T2 series.
    * A coordinate row whose series ``train_series_descriptions.csv`` describes
      otherwise than the condition needs (:data:`lss.config.SERIES_FOR_CONDITION`, e.g.
      a Sagittal series for subarticular stenosis) excludes its study, with the reason
      in ``excluded``: the window would come from the wrong kind of image. It is
      reported rather than raised, like an ambiguous series, because the real tables
      have such a study (3637444890: its five Spinal Canal Stenosis rows are on its
      Sagittal T1 series) and an error would make the whole target unusable. A
      coordinate row naming a series the descriptions do not list at all raises: the
      tables then contradict each other (a broken download or edit).
    * A labelled study without a coordinate row uses its only series of the
      condition's description (``Axial T2`` for subarticular stenosis), with
      ``instance_number`` missing: the level window is then centred on the middle of
      the series. With several or no such series the study is excluded and reported
      (the choice would be a guess).

    Parameters
    ----------
    root : str, Path or Tables
        A data root (see :func:`load_tables`) or tables already loaded.
    condition : str
        A key of :data:`lss.config.CONDITIONS`.
    level : str
        One of :data:`lss.config.LEVELS`.
    check_images : bool
        Check that each chosen series folder exists and holds ``.dcm`` files (any case, see
        :func:`lss.data.dicom.list_dicom_files`). Set False for a root with tables only
        (such as the label tables without images).
    on_missing_label : {"report", "raise"}
        Studies whose label is empty in ``train.csv`` are excluded and listed in
        ``df.attrs["excluded"]`` ("report", the default: the real tables have 3 for the
        default target) or raise :class:`DataError` naming them ("raise").
    on_missing_images : {"raise", "report"}
        A chosen series without images raises :class:`DataError` naming the study and
        folder (default: it means a broken download), or is excluded and reported.

    Returns
    -------
    DataFrame
        Columns ``study_id``, ``series_id``, ``instance_number`` (nullable Int64),
        ``x``, ``y`` (float, NaN without a coordinate row), ``label`` (0 Normal/Mild,
        1 Moderate, 2 Severe), ``series_rule`` ("coordinates" or "only series") and
        ``n_series`` (series of that description in the study), sorted by study.
        ``df.attrs`` holds ``target``, ``root``, ``n_studies`` (rows of train.csv) and
        ``excluded`` (a list of ``{"study_id", "reason"}``), so that
        ``len(df) + len(excluded) == n_studies``.
    """
    for name, value in (("on_missing_label", on_missing_label),
                        ("on_missing_images", on_missing_images)):
        if value not in ("report", "raise"):
            raise ValueError(f"{name} must be 'report' or 'raise', got {value!r}")
    target = column_name(condition, level)
    tables = root if isinstance(root, Tables) else load_tables(root)
    if tables.train is None or tables.coordinates is None:
        raise DataError(f"No training tables (train.csv) under {tables.root}")
    labels, excluded = _labelled(tables, target, on_missing_label)
    rows, skipped = _choose_series(tables, labels, target, condition, level)
    excluded += skipped
    df = pd.DataFrame(rows, columns=["study_id", "series_id", "instance_number", "x", "y",
                                     "label", "series_rule", "n_series"])
    df = df.astype({"study_id": "int64", "series_id": "int64", "instance_number": "Int64",
                    "label": "int64", "n_series": "int64"})
    if check_images and len(df):
        df, skipped = _with_images(df, tables.root, on_missing_images)
        excluded += skipped
    df = df.sort_values("study_id", ignore_index=True)
    df.attrs.update(target=target, root=str(tables.root), n_studies=len(tables.train),
                    excluded=sorted(excluded, key=lambda e: e["study_id"]))
    if excluded:
        log.info("%s: %d studies indexed, %d excluded (see df.attrs['excluded'])",
                 target, len(df), len(excluded))
    return df


def _labelled(tables: Tables, target: str, on_missing_label: str
              ) -> tuple[pd.DataFrame, list[dict]]:
    """The studies with a label in ``target``, and the others as exclusions (or raise)."""
    labels = tables.train[["study_id", target]]
    missing = labels[labels[target].isna()]["study_id"].tolist()
    if missing and on_missing_label == "raise":
        raise DataError(
            f"train.csv: empty label in column '{target}' for study/studies "
            f"{', '.join(map(str, missing))} in {tables.root / 'train.csv'}"
        )
    excluded = [{"study_id": int(s), "reason": f"no label in '{target}'"} for s in missing]
    return labels[labels[target].notna()], excluded


def _coordinate_rows(tables: Tables, condition: str, level: str) -> pd.DataFrame:
    """The coordinate rows of one condition and level, indexed by study (one each)."""
    c = tables.coordinates
    coords = c[(c["condition"] == CONDITIONS[condition]) & (c["level"] == level)]
    dup = coords["study_id"].duplicated()
    if dup.any():
        raise DataError(
            f"train_label_coordinates.csv: study {coords['study_id'][dup].iloc[0]} has several "
            f"rows for {CONDITIONS[condition]} at {level}"
        )
    return coords.set_index("study_id")


def _choose_series(tables: Tables, labels: pd.DataFrame, target: str, condition: str,
                   level: str) -> tuple[list[tuple], list[dict]]:
    """The series rule of :func:`build_index`: one row per study it can place, and the
    studies it cannot, with their reasons."""
    description = SERIES_FOR_CONDITION[condition]
    coords = _coordinate_rows(tables, condition, level)
    s = tables.series
    per_study = (
        s[s["series_description"] == description].groupby("study_id")["series_id"].apply(list)
    )
    described = dict(zip(zip(s["study_id"], s["series_id"], strict=True),
                         s["series_description"], strict=True))
    rows, excluded = [], []
    for study_id, severity in zip(labels["study_id"], labels[target], strict=True):
        candidates = per_study.get(study_id, [])
        if study_id in coords.index:
            r = coords.loc[study_id]
            series_id = int(r["series_id"])
            desc = described.get((study_id, series_id))
            if desc is None:
                raise DataError(
                    f"train_label_coordinates.csv: study {study_id} names series {series_id}, "
                    f"which train_series_descriptions.csv does not list"
                )
            if desc != description:
                excluded.append({"study_id": int(study_id), "reason": (
                    f"coordinate row names series {series_id}, described as '{desc}', "
                    f"not '{description}'")})
                continue
            rows.append((study_id, series_id, int(r["instance_number"]), float(r["x"]),
                         float(r["y"]), LABEL_MAP[severity], "coordinates", len(candidates)))
        elif len(candidates) == 1:
            rows.append((study_id, int(candidates[0]), pd.NA, np.nan, np.nan,
                         LABEL_MAP[severity], "only series", 1))
        else:
            excluded.append({
                "study_id": int(study_id),
                "reason": f"no coordinate row and {len(candidates)} {description} series",
            })
    return rows, excluded


def _with_images(df: pd.DataFrame, root: Path, on_missing_images: str
                 ) -> tuple[pd.DataFrame, list[dict]]:
    """The rows whose series folder holds DICOM files; the others raise or are excluded."""
    ok = np.ones(len(df), dtype=bool)
    excluded = []
    for i, (study_id, sid) in enumerate(zip(df["study_id"], df["series_id"], strict=True)):
        folder = series_dir(root, study_id, sid)
        if folder.is_dir() and list_dicom_files(folder):
            continue
        what = "has no .dcm files" if folder.is_dir() else "is missing"
        if on_missing_images == "raise":
            raise DataError(f"Study {study_id}: series folder {folder} {what}")
        ok[i] = False
        excluded.append({"study_id": int(study_id), "reason": f"series folder {what}"})
    return df[ok], excluded
