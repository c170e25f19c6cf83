"""Finding the levels of a study without coordinates: sagittal points to axial slices.

A radiologist's coordinate row tells training which axial slice shows a level; a new
study has none. :func:`find_levels` finds them the way the strong public solutions of
the RSNA 2024 competition do (adamnarai/kaggle-rsna-2024 projects sagittal points into
axial space): the level finder (:mod:`lss.levels`) puts the five discs on the middle
Sagittal T2/STIR slice, each point is carried into patient space
(:func:`lss.data.geometry.pixel_to_patient`), and the level's axial slice is the one
whose plane lies nearest it, within the stack that contains it
(:func:`lss.data.geometry.nearest_slice`). A study with several Axial T2 series takes,
per level, the series whose stack contains the point and whose plane is nearest.

:func:`level_hits` compares found slices with the coordinate table's (how often, and by
how many slices and millimetres, the finder misses), and :func:`with_found_levels`
puts the found slices in place of the table's in an index, so that evaluation and
prediction grade the slice a new study would get.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lss.config import LEVELS
from lss.data import DataError, load_tables, series_dir
from lss.data.geometry import (
    check_same_frame,
    nearest_slice,
    patient_to_pixel,
    pixel_to_patient,
    read_geometry,
    split_stacks,
)
from lss.data.targets import coordinate_targets
from lss.levels import predict_levels, sagittal_series, train_levels
from lss.run import RunDir

__all__ = ["FOUND_COLUMNS", "find_levels", "find_study_levels", "axial_series",
           "level_hits", "with_found_levels", "summarise_hits", "fit_run_level_finder",
           "plane_traces", "place_errors", "summarise_place_errors"]

#: Columns of :func:`find_levels`: one row per (study, level).
FOUND_COLUMNS = ("study_id", "level", "sagittal_series_id", "sagittal_instance", "x", "y",
                 "series_id", "instance_number", "distance_mm", "inside", "n_stacks")


def _choose(geometries: list, point: np.ndarray):
    """``(series position, NearestSlice)``: an inside hit first, then the least |mm|."""
    hits = [nearest_slice(g, point) for g in geometries]
    order = sorted(range(len(hits)),
                   key=lambda i: (not hits[i].inside, abs(hits[i].distance_mm), i))
    return order[0], hits[order[0]]


def find_levels(model, sagittal_dir: str | Path, axial_dirs: list[str | Path], *,
                study_id: int) -> pd.DataFrame:
    """The axial slice of each level of one study (:data:`FOUND_COLUMNS`).

    Parameters
    ----------
    model
        A level finder (:func:`lss.levels.load_level_localiser`).
    sagittal_dir : str or Path
        The study's Sagittal T2/STIR series.
    axial_dirs : list of str or Path
        Its Axial T2 series (one or several).
    study_id : int
        Named in errors.

    Raises
    ------
    DataError
        No axial series, or a series in another frame of reference than the sagittal
        one (a point of one would mean nothing in the other).
    """
    if not axial_dirs:
        raise DataError(f"Study {study_id}: no Axial T2 series to find the levels in")
    sagittal = read_geometry(sagittal_dir)
    axials = [read_geometry(d) for d in axial_dirs]
    for g in axials:
        check_same_frame(sagittal, g, study_id=study_id)
    rows = []
    for level, (instance, x, y) in predict_levels(model, sagittal_dir).items():
        point = pixel_to_patient(sagittal, instance, x, y)
        i, hit = _choose(axials, point)
        rows.append((int(study_id), level, int(Path(sagittal_dir).name), instance, x, y,
                     int(Path(axial_dirs[i]).name), hit.instance_number,
                     float(hit.distance_mm), bool(hit.inside), len(split_stacks(axials[i]))))
    return pd.DataFrame(rows, columns=list(FOUND_COLUMNS))


def plane_traces(sagittal, instance_number: int, axial) -> np.ndarray:
    """Where each axial slice's plane cuts one sagittal slice, in its pixels.

    Parameters
    ----------
    sagittal, axial : SeriesGeometry
        :func:`lss.data.geometry.read_geometry` of the two series.
    instance_number : int
        The sagittal slice.

    Returns
    -------
    (Z, 2, 2) float ndarray
        For each axial slice (in ``axial``'s order), the segment ``[[x0, y0], [x1, y1]]``
        of the line where its plane meets the sagittal plane, from the sagittal image's
        first column to its last. A plane parallel to the sagittal columns (never for an
        axial slice) gives NaN.

    Examples
    --------
    >>> from lss.data.geometry import SeriesGeometry
    >>> sag = SeriesGeometry("sag", instance_numbers=[1], positions=[[0, 0, 100]],
    ...                      orientations=[[0, 1, 0, 0, 0, -1]], pixel_spacing=[[1, 1]],
    ...                      shapes=[[200, 100]])
    >>> ax = SeriesGeometry("ax", instance_numbers=[5], positions=[[0, 0, 60]],
    ...                     orientations=[[1, 0, 0, 0, 1, 0]], pixel_spacing=[[1, 1]],
    ...                     shapes=[[64, 64]])
    >>> plane_traces(sag, 1, ax).tolist()  # z = 60 is 40 rows below z = 100
    [[[0.0, 40.0], [99.0, 40.0]]]
    """
    i = sagittal.index_of(instance_number)
    o = sagittal.positions[i]
    r, c = sagittal.orientations[i][:3], sagittal.orientations[i][3:]
    row_mm, col_mm = sagittal.pixel_spacing[i]
    xs = np.array([0.0, float(sagittal.shapes[i][1] - 1)])
    out = np.full((len(axial), 2, 2), np.nan)
    for k in range(len(axial)):
        n, q = axial.normals[k], axial.positions[k]
        slope = row_mm * float(n @ c)
        if abs(slope) < 1e-9:
            continue
        ys = (float(n @ (q - o)) - xs * col_mm * float(n @ r)) / slope
        out[k] = np.stack([xs, ys], axis=1)
    return out


def axial_series(root: str | Path, study_id: int, *, split: str = "train") -> list[Path]:
    """The Axial T2 series folders of a study, from ``<split>_series_descriptions.csv``."""
    tables = load_tables(root)
    series = tables.test_series if split == "test" else tables.series
    if series is None:
        raise DataError(f"No {split}_series_descriptions.csv under {root}")
    ids = series.loc[(series["study_id"] == int(study_id))
                     & (series["series_description"] == "Axial T2"), "series_id"]
    return [series_dir(root, study_id, s, split=split) for s in sorted(ids)]


def find_study_levels(model, root: str | Path, study_ids, *, split: str = "train"
                      ) -> pd.DataFrame:
    """:func:`find_levels` for ``study_ids`` of a data root: the series come from the
    series descriptions table, never from the coordinate table."""
    frames = [find_levels(model, sagittal_series(root, sid, split=split),
                          axial_series(root, sid, split=split), study_id=sid)
              for sid in study_ids]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=list(FOUND_COLUMNS))


def _table_slices(coordinates: pd.DataFrame) -> pd.DataFrame:
    """The table's axial slice per (study, level): the left subarticular row's, else the
    right's (both lie on the level's Axial T2 slice)."""
    sub = coordinates[coordinates["condition"].isin(
        ["Left Subarticular Stenosis", "Right Subarticular Stenosis"])]
    sub = sub.sort_values(["study_id", "level", "condition"])  # "Left" before "Right"
    sub = sub.drop_duplicates(["study_id", "level"], keep="first")
    return sub[["study_id", "level", "series_id", "instance_number"]].rename(
        columns={"series_id": "true_series_id", "instance_number": "true_instance"})


def level_hits(found: pd.DataFrame, root: str | Path, *, split: str = "train"
               ) -> pd.DataFrame:
    """``found`` beside the coordinate table's slice, with the miss in slices and mm.

    The miss is measured in the series the table labels, whichever series was chosen
    (a study with several Axial T2 series may show the level in more than one): the
    found point's nearest slice there against the labelled one. Adds
    ``true_series_id``, ``true_instance``, ``same_series`` (the chosen series is the
    labelled one), ``slices_off`` (spatial positions between the two slices), ``mm_off``
    (the found point's distance from the labelled slice's plane) and ``layout``
    (``"per-disc stacks"`` or ``"contiguous"``). Only pairs the table labels are kept.
    """
    truth = _table_slices(load_tables(root).coordinates)
    merged = found.merge(truth, on=["study_id", "level"], how="inner")
    slices_off, mm_off, layout = [], [], []
    for r in merged.itertuples():
        g = read_geometry(series_dir(root, r.study_id, r.true_series_id, split=split))
        sagittal = read_geometry(series_dir(root, r.study_id, r.sagittal_series_id,
                                            split=split))
        point = pixel_to_patient(sagittal, r.sagittal_instance, r.x, r.y)
        mm_off.append(abs(float(patient_to_pixel(g, r.true_instance, point)[2])))
        stacks = split_stacks(g)
        layout.append("per-disc stacks" if len(stacks) > 1 else "contiguous")
        rank = {int(g.instance_numbers[i]): k for k, i in enumerate(np.concatenate(stacks))}
        near = nearest_slice(g, point).instance_number
        slices_off.append(abs(rank[int(near)] - rank[int(r.true_instance)]))
    return merged.assign(same_series=merged["series_id"] == merged["true_series_id"],
                         slices_off=slices_off, mm_off=mm_off, layout=layout)


def summarise_hits(hits: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Share of pairs on the labelled slice, within one slice, and the median mm off
    (:func:`level_hits`), for all pairs or per value of ``by``."""
    def one(df: pd.DataFrame) -> pd.Series:
        off = df["slices_off"]
        return pd.Series({"pairs": len(df), "exact": float((off == 0).mean()),
                          "within_one": float((off <= 1).mean()),
                          "median_mm": float(df["mm_off"].median()),
                          "max_mm": float(df["mm_off"].max())})

    if by is None:
        return one(hits).to_frame("all").T
    table = hits.groupby(by, sort=False).apply(one, include_groups=False)
    if by == "level":
        table = table.reindex([lv for lv in LEVELS if lv in table.index])
    return table


def with_found_levels(index: pd.DataFrame, found: pd.DataFrame, level: str
                      ) -> pd.DataFrame:
    """``index`` with each study's series and slice for ``level`` taken from ``found``.

    The coordinates ``x`` and ``y`` are cleared: a found slice has no radiologist's
    point, so a crop must come from the recess localiser. A study of ``index`` without
    a found row is an error naming it, never a silent drop.
    """
    pick = found.loc[found["level"] == level, ["study_id", "series_id", "instance_number"]]
    missing = sorted(set(index["study_id"]) - set(pick["study_id"]))
    if missing:
        raise DataError(f"No level {level} found for studies {missing[:5]}")
    out = index.drop(columns=["series_id", "instance_number"]).merge(
        pick, on="study_id", how="left")
    for col in ("x", "y"):
        if col in out:
            out[col] = np.nan
    return out[list(index.columns)]


def fit_run_level_finder(run_dir: str | Path | RunDir, root: str | Path, *, config=None,
                         cache_dir: str | Path | None = None, workers: int | None = None,
                         verbose: int = 0):
    """Train the level finder on a run's *training* studies (its ``splits.csv``) and
    store it as the run's :attr:`~lss.run.RunDir.level_finder`.

    The validation studies' coordinates never reach it, so ``lss evaluate --levels
    found`` measures what a new study would get. Returns
    :func:`lss.levels.train_levels`' result.
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    split = run.read_split()
    train_ids = split.loc[split["split"] == "train", "study_id"].tolist()
    return train_levels(root, train_ids, run.level_finder, config=config,
                        cache_dir=cache_dir, workers=workers, verbose=verbose)


def place_errors(places: pd.DataFrame, root: str | Path) -> pd.DataFrame:
    """How far each placed crop centre lies from the coordinate table's point.

    ``places`` as :func:`lss.study_predict.place_targets` gives them (``study_id``,
    ``target``, ``group``, ``series_id``, ``instance_number``, ``x``, ``y``). Returns
    them with ``mm`` (the distance between the two points in patient space) and
    ``same_slice`` (the placed slice is the table's), for the targets the table labels.
    """
    co = load_tables(root).coordinates
    table = co.assign(target=coordinate_targets(co))
    m = places.merge(table[["study_id", "target", "series_id", "instance_number", "x", "y"]],
                     on=["study_id", "target"], suffixes=("", "_table"))
    geometry: dict = {}

    def point(study, series, instance, x, y) -> np.ndarray:
        if (study, series) not in geometry:
            geometry[study, series] = read_geometry(series_dir(root, study, series))
        return pixel_to_patient(geometry[study, series], int(instance), x, y)

    m["mm"] = [float(np.linalg.norm(
        point(r.study_id, r.series_id, r.instance_number, r.x, r.y)
        - point(r.study_id, r.series_id_table, r.instance_number_table, r.x_table,
                r.y_table))) for r in m.itertuples()]
    m["same_slice"] = ((m["series_id"] == m["series_id_table"])
                       & (m["instance_number"] == m["instance_number_table"]))
    return m.drop(columns=["series_id_table", "instance_number_table", "x_table",
                           "y_table"])


def summarise_place_errors(errors: pd.DataFrame) -> pd.DataFrame:
    """Per condition group: targets, median and 90th-percentile mm, share within 10 mm,
    share on the table's slice (:func:`place_errors`)."""
    return errors.groupby("group").agg(
        targets=("mm", "size"), median_mm=("mm", "median"),
        p90_mm=("mm", lambda s: s.quantile(0.9)),
        within_10mm=("mm", lambda s: (s <= 10).mean()),
        same_slice=("same_slice", "mean"))
