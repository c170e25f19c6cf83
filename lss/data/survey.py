"""Tables and slices that describe a data root for the chapters: the order of a series'
slices, the windows of an index, left/right recess pairs, and the slice a row points at.

They read headers and pixels; the figures of :mod:`lss.viz` draw what these return.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "slice_order_table",
    "window_survey",
    "subarticular_pairs",
    "read_labelled_slice",
    "labelled_slices",
    "localiser_examples",
]


def slice_order_table(header: Any) -> pd.DataFrame:
    """Each slice of a series under three orderings: space, ``InstanceNumber``, file name.

    Parameters
    ----------
    header : lss.data.SeriesHeader
        From :func:`lss.data.scan_series` (slices already in spatial order).

    Returns
    -------
    DataFrame
        One row per slice in spatial order (``spatial_rank`` 0 is the lowest position
        along the slice normal, i.e. the slice nearest the feet for an axial series
        whose normal points to the head), with ``file``, ``instance_number``,
        ``position_mm``, and the slice's rank when the files are sorted by
        ``InstanceNumber`` (``instance_rank``) or by name as text (``name_rank``,
        what ``sorted(os.listdir(...))`` gives).
    """
    names = [p.name for p in header.paths]
    inst = np.asarray(header.instance_numbers)
    df = pd.DataFrame({"spatial_rank": np.arange(len(names)), "file": names,
                       "instance_number": inst, "position_mm": np.asarray(header.positions)})
    df["instance_rank"] = np.argsort(np.argsort(inst, kind="stable"), kind="stable")
    df["name_rank"] = np.argsort(np.argsort(np.array(names), kind="stable"), kind="stable")
    return df


def window_survey(root: Any, index: pd.DataFrame, *, n_slices: int) -> pd.DataFrame:
    """Where the level window of each indexed study falls in its series (headers only).

    A descriptive table for the preprocessing chapter's figures and counts; it reads
    the series headers (no pixels) with :func:`lss.data.scan_series`.

    Parameters
    ----------
    root : str or Path
        The data root.
    index : DataFrame
        From :func:`lss.data.build_index`.
    n_slices : int
        Slices in the window.

    Returns
    -------
    DataFrame
        One row per study: ``study_id``, ``series_id``, ``n_in_series`` (slices in the
        series), ``centre`` (spatial index of the labelled slice; the middle without a
        coordinate row), ``edge`` (the window runs past an end, so an end slice
        repeats), ``span_mm`` (distance along the normal between the window's first
        and last slices), ``rows``, ``columns``, ``pixel_spacing`` (column spacing, mm)
        and ``instances_run_with_position`` (``InstanceNumber`` grows with the
        position: toward the head for an axial series).
    """
    from lss.data import scan_series, series_dir, window_indices

    out = []
    for r in index.itertuples(index=False):
        h = scan_series(series_dir(root, r.study_id, r.series_id))
        n = len(h.paths)
        centre = n // 2 if pd.isna(r.instance_number) else h.index_of(int(r.instance_number))
        idx = window_indices(n, centre, n_slices)
        pos = np.asarray(h.positions)[idx]
        inst = np.asarray(h.instance_numbers)
        out.append({
            "study_id": int(r.study_id), "series_id": int(r.series_id), "n_in_series": n,
            "centre": centre, "edge": bool(len(np.unique(idx)) < len(idx)),
            "span_mm": float(pos.max() - pos.min()), "rows": h.shape[0],
            "columns": h.shape[1], "pixel_spacing": float(h.pixel_spacing[1]),
            "instances_run_with_position": bool(n < 2 or inst[-1] > inst[0]),
        })
    return pd.DataFrame(out)


def subarticular_pairs(coordinates: pd.DataFrame) -> pd.DataFrame:
    """Left and right subarticular labels of the same study and level, side by side.

    Parameters
    ----------
    coordinates : DataFrame
        ``train_label_coordinates.csv`` (e.g. ``load_tables(root).coordinates``).

    Returns
    -------
    DataFrame
        One row per (study, level) labelled on both sides: ``study_id``, ``level``,
        ``x_left``, ``x_right``, ``same_series`` (both points on one series, so their
        x compare in one image) and ``left_is_right_of_image`` (``x_left > x_right``).
    """
    need = {"study_id", "series_id", "condition", "level", "x"}
    if not need <= set(coordinates.columns):
        raise ValueError(f"coordinates lack column(s) {sorted(need - set(coordinates.columns))}")
    keys = ["study_id", "level"]
    cols = keys + ["series_id", "x"]
    left = coordinates[coordinates["condition"] == "Left Subarticular Stenosis"][cols]
    right = coordinates[coordinates["condition"] == "Right Subarticular Stenosis"][cols]
    pairs = left.drop_duplicates(keys).merge(right.drop_duplicates(keys), on=keys,
                                             suffixes=("_left", "_right"))
    pairs["same_series"] = pairs["series_id_left"] == pairs["series_id_right"]
    pairs["left_is_right_of_image"] = pairs["x_left"] > pairs["x_right"]
    return pairs[keys + ["x_left", "x_right", "same_series", "left_is_right_of_image"]]


def read_labelled_slice(
    root: Any, row: Any, *, split: str = "train"
) -> tuple[np.ndarray, tuple[float, float], Any]:
    """The slice an index row points at, its labelled point, and its series header.

    Only the headers of the series and the one slice's pixels are read.

    Parameters
    ----------
    root : str or Path
        The data root.
    row : pandas row or mapping
        A row of :func:`lss.data.build_index` (``study_id``, ``series_id``,
        ``instance_number``, ``x``, ``y``). A missing instance number means the
        middle slice (the index's rule for a study without a coordinate row); its
        point is then (NaN, NaN).
    split : {"train", "test"}

    Returns
    -------
    image : (H, W) float32 ndarray
    point : (x, y)
    header : lss.data.SeriesHeader
    """
    import pydicom

    from lss.data import decode_slice, scan_series, series_dir

    r = row._asdict() if hasattr(row, "_asdict") else dict(row)  # itertuples() row or mapping
    header = scan_series(series_dir(root, r["study_id"], r["series_id"], split=split))
    inst = r["instance_number"]
    k = len(header.paths) // 2 if pd.isna(inst) else header.index_of(int(inst))
    path = header.paths[k]
    image = decode_slice(pydicom.dcmread(path), path)
    return image, (float(r["x"]), float(r["y"])), header


def labelled_slices(root: Any, rows: pd.DataFrame, *, split: str = "train") -> list:
    """:func:`read_labelled_slice` of every row: (image, point, header) per row, in order
    (what :func:`lss.viz.plot_labelled_examples` draws)."""
    return [read_labelled_slice(root, row, split=split) for row in rows.itertuples(index=False)]


def localiser_examples(root: Any, centres_csv: Any, *, n: int = 4) -> list[dict[str, Any]]:
    """The ``n`` validation slices where the localiser erred most, for a figure.

    Parameters
    ----------
    root : str or Path
        The data root.
    centres_csv : str or Path
        The localiser's ``val_centres.csv`` (:func:`lss.localiser.fit_split_localiser`).

    Returns
    -------
    list of dict
        ``image`` (the labelled slice), ``pixel_spacing`` (row, column mm), and the row's
        ``study_id``, ``x_true``, ``y_true``, ``x_pred``, ``y_pred``, ``error_mm``; largest
        error first.
    """
    from lss.data.dicom import read_series
    from lss.data.tables import series_dir

    rows = pd.read_csv(centres_csv).sort_values("error_mm", ascending=False).head(n)
    out = []
    for r in rows.itertuples():
        s = read_series(series_dir(root, r.study_id, r.series_id))
        out.append({"image": s.volume[s.index_of(int(r.instance_number))],
                    "pixel_spacing": tuple(s.pixel_spacing), "study_id": r.study_id,
                    "x_true": r.x_true, "y_true": r.y_true, "x_pred": r.x_pred,
                    "y_pred": r.y_pred, "error_mm": r.error_mm})
    return out

