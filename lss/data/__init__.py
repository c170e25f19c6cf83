"""The RSNA 2024 data layer: label tables, DICOM series, level windows and a cache.

Public API (documented in the README):

* :func:`load_tables` and :func:`build_index` -- the label tables and one row per
  labelled study for a target;
* :func:`build_target_index`, :func:`parse_targets`, :func:`target_counts` and
  :func:`split_rows` (:mod:`lss.data.targets`) -- one row per study and target of all 25,
  and a split attached by study;
* :func:`read_series` and :func:`scan_series` -- a series in spatial order;
* :func:`level_window` -- the model input for one study;
* :func:`read_geometry`, :func:`pixel_to_patient`, :func:`nearest_slice` and their kin
  (:mod:`lss.data.geometry`) -- a point of one series in the slices of another;
* :class:`TensorCache` -- preprocessed windows on disk;
* :class:`DataError` -- raised for bad input, naming the file, study or series
  (defined in :mod:`lss.errors`, re-exported here).
"""

from lss.data.cache import CacheStats, TensorCache, default_cache_dir
from lss.data.dicom import Series, SeriesHeader, decode_slice, read_series, scan_series
from lss.data.geometry import (
    NearestSlice,
    SeriesGeometry,
    check_same_frame,
    nearest_slice,
    patient_to_pixel,
    pixel_to_patient,
    read_geometry,
    split_stacks,
)
from lss.data.tables import Tables, build_index, load_tables, series_dir
from lss.data.targets import build_target_index, parse_targets, split_rows, target_counts
from lss.data.window import (
    Window,
    crop_slice,
    level_window,
    resize_slice,
    scale_unit,
    window_indices,
)
from lss.errors import DataError, WorkerDied

__all__ = [
    "DataError",
    "Tables",
    "load_tables",
    "build_index",
    "series_dir",
    "build_target_index",
    "parse_targets",
    "target_counts",
    "split_rows",
    "Series",
    "SeriesHeader",
    "read_series",
    "scan_series",
    "decode_slice",
    "SeriesGeometry",
    "NearestSlice",
    "read_geometry",
    "pixel_to_patient",
    "patient_to_pixel",
    "split_stacks",
    "nearest_slice",
    "check_same_frame",
    "Window",
    "level_window",
    "window_indices",
    "resize_slice",
    "crop_slice",
    "scale_unit",
    "TensorCache",
    "CacheStats",
    "WorkerDied",
    "default_cache_dir",
]
