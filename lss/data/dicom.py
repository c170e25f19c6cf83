"""Reading one DICOM series in spatial order.

All DICOM geometry lives here. Slices are ordered by their position in space:
``ImagePositionPatient`` projected on the slice normal (the cross product of the two
``ImageOrientationPatient`` directions), averaged over the series so that short angled
stacks, one per disc, still share one axis. Neither file names nor ``InstanceNumber``
give that order in the RSNA data (they only break ties, so that the order does not
depend on the file system). The files of a folder must make one series: one
SeriesInstanceUID, one plane family, no position twice.
"""

from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from lss.data._fastdicom import (
    FastHeader,
    check_pixel_length,
    fast_header,
    fast_pixels,
    plain_frame_layout,
    stored_values,
)
from lss.errors import DataError

__all__ = ["SeriesHeader", "Series", "scan_series", "read_series", "decode_slice",
           "first_file_header", "list_dicom_files"]

_HEADER_TAGS = [
    "InstanceNumber", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
    "Rows", "Columns", "SliceThickness",
]
_DEFER_BYTES = 1024
# Uncompressed little-endian pixel data, once pydicom has inflated a deflated file.
_NATIVE_LITTLE_ENDIAN = (ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                         DeflatedExplicitVRLittleEndian)
_UNCOMPRESSED = (*_NATIVE_LITTLE_ENDIAN, ExplicitVRBigEndian)

@dataclass(frozen=True)
class SeriesHeader:
    """What the headers of a series say, in spatial order, without pixel data.

    Attributes
    ----------
    series_dir : Path
    paths : tuple of Path, (Z,)
        One file per slice, in spatial order.
    instance_numbers : (Z,) int ndarray
    positions : (Z,) float ndarray
        Position of each slice along the series' mean normal, in mm, increasing.
    pixel_spacing : (2,) float ndarray
        Row spacing and column spacing in mm (DICOM ``PixelSpacing`` order).
    shape : tuple of int
        (rows, columns) of every slice.
    """

    series_dir: Path
    paths: tuple[Path, ...]
    instance_numbers: np.ndarray
    positions: np.ndarray
    pixel_spacing: np.ndarray
    shape: tuple[int, int]

    def index_of(self, instance_number: int) -> int:
        """Spatial index of a slice given its instance number."""
        hits = np.flatnonzero(self.instance_numbers == int(instance_number))
        if len(hits) == 0:
            raise DataError(
                f"Instance {instance_number} not in series {self.series_dir} (instances "
                f"{self.instance_numbers.min()}..{self.instance_numbers.max()}, "
                f"{len(self.instance_numbers)} files)"
            )
        return int(hits[0])


@dataclass(frozen=True)
class Series(SeriesHeader):
    """A series with its pixels: ``volume`` is (Z, H, W) float32 in spatial order,
    with RescaleSlope/RescaleIntercept applied and MONOCHROME1 inverted."""

    volume: np.ndarray = None  # type: ignore[assignment]


def _is_dicom_name(name: str) -> bool:
    """``*.dcm`` in any case, not hidden (``._1.dcm`` is a macOS resource fork)."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() == ".dcm"


def _entries(folder: Path) -> tuple[list[Path], list[Path]]:
    """The DICOM files and the other visible entries of a folder, each sorted by name.

    Names starting with a dot (``.DS_Store``, ``._1.dcm``) are editor and OS droppings,
    never image data, and are in neither list.
    """
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise DataError(f"Series folder not found: {folder}") from exc
    files, strays = [], []
    for e in entries:
        if not e.name.startswith("."):
            (files if _is_dicom_name(e.name) and e.is_file() else strays).append(
                folder / e.name)
    return files, strays


def list_dicom_files(folder: str | Path) -> list[Path]:
    """The DICOM files of a series folder: the one file-listing rule of ``lss``.

    Regular files (or links to them) whose name ends in ``.dcm`` in any case (``1.dcm``,
    ``1.DCM``) and does not start with a dot, sorted by name (code point order), so that
    the same folder lists the same files in the same order on every file system.

    Raises
    ------
    DataError
        ``Series folder not found`` when ``folder`` is not a directory.

    Examples
    --------
    >>> [p.name for p in list_dicom_files(folder)]  # doctest: +SKIP
    ['1.dcm', '10.DCM', '2.dcm']
    """
    return _entries(Path(folder))[0]


def _list_files(series_dir: Path) -> list[Path]:
    """:func:`list_dicom_files`, refusing a folder with other entries or none."""
    files, strays = _entries(series_dir)
    if strays:
        raise DataError(f"Unexpected non-.dcm entry {strays[0]} in series folder {series_dir}")
    if not files:
        raise DataError(f"No .dcm files in series folder {series_dir}")
    return files


def first_file_header(series_dir: str | Path, tags: list[str]) -> pydicom.Dataset:
    """``tags`` from the header of a series folder's first DICOM file (by name, see
    :func:`list_dicom_files`).

    For what every file of a series shares (image size, pixel spacing, description),
    where reading one header is enough.

    Raises
    ------
    DataError
        Naming the folder when it is missing or has no ``.dcm`` file, or the file when it
        cannot be read.
    """
    folder = Path(series_dir)
    files = list_dicom_files(folder)
    if not files:
        raise DataError(f"No .dcm files in series folder {folder}")
    first = files[0]
    try:
        return pydicom.dcmread(first, stop_before_pixels=True, specific_tags=list(tags))
    except Exception as exc:  # noqa: BLE001 -- re-raised with the file named
        raise DataError(f"Not a readable DICOM file: {first} ({exc})") from exc


def _first_shape(series_dir: Path) -> tuple[int, int] | None:
    """(Rows, Columns) from the header of a series' first file (by name): every file has
    the same, or :func:`scan_series` refuses the series. None when the folder has no file
    or that header lacks them, for :func:`scan_series` to report."""
    files = list_dicom_files(series_dir)
    if not files:
        return None
    ds = _read(files[0], pixels=False)
    try:
        return int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError):
        return None


def _read(path: Path, *, pixels: bool) -> pydicom.Dataset | FastHeader:
    """One file: all of it, or (``pixels=False``) its header, with every value over
    1 KB (the pixel data) left unread in the file until it is accessed. Reading a
    header that way costs no more than ``stop_before_pixels``, and decoding such a
    dataset later reads only its pixel data rather than parsing the file again.

    A deflated file (Deflated Explicit VR Little Endian) is read whole: its values lie in
    the inflated stream, not at offsets of the file.
    """
    if not pixels:
        fast = fast_header(path)
        if fast is not None:
            return fast
    try:
        if pixels:
            return pydicom.dcmread(path)
        ds = pydicom.dcmread(path, defer_size=_DEFER_BYTES)
        if ds.file_meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
            ds = pydicom.dcmread(path)
        size = os.path.getsize(path)
    except InvalidDicomError as exc:
        raise DataError(f"Not a DICOM file: {path} ({exc})") from exc
    except (OSError, EOFError, ValueError, KeyError, TypeError, zlib.error) as exc:
        raise DataError(f"Corrupt DICOM file: {path} ({type(exc).__name__}: {exc})") from exc
    # pydicom reads a file cut short without complaint; unread pixel data shows it here.
    elem = ds.get_item("PixelData", keep_deferred=True)
    if isinstance(elem, RawDataElement) and elem.length != 0xFFFFFFFF:  # not encapsulated
        have = size - elem.value_tell if elem.value is None else len(elem.value)
        if have < elem.length:
            raise DataError(f"Truncated DICOM file: {path} (its pixel data should have "
                            f"{elem.length} bytes, {max(have, 0)} are there)")
    return ds


def _numbers(ds: pydicom.Dataset, keyword: str) -> np.ndarray:
    """A numeric string tag (DS or IS) as a float array.

    Parsed from the element's raw bytes while pydicom has not converted it yet: its
    ``DSfloat`` objects cost about 20 us each, which made ordering a series cost as
    much as decoding it. Anything else goes through pydicom's own conversion.
    """
    if isinstance(ds, FastHeader):
        return np.array(ds.values[keyword], dtype=float, ndmin=1)
    elem = ds.get_item(keyword)
    raw = getattr(elem, "value", None)
    if isinstance(elem, RawDataElement) and elem.VR in (None, "DS", "IS") and isinstance(
            raw, bytes):
        return np.array([float(v.strip(b" \0")) for v in raw.split(b"\\")], dtype=float)
    return np.array(ds[keyword].value, dtype=float, ndmin=1)


def _check_finite(path: Path, **values) -> None:
    """Every value finite: a NaN or an infinity in a header spoils every number after it."""
    for keyword, v in values.items():
        if not np.isfinite(v).all():
            shown = v.tolist() if isinstance(v, np.ndarray) else v
            raise DataError(f"{path}: non-finite {keyword} {shown}")


def _geometry(ds: pydicom.Dataset, path: Path) -> tuple[int, np.ndarray, np.ndarray,
                                                        np.ndarray, tuple[int, int]]:
    missing = [t for t in _HEADER_TAGS[:5] if t not in ds]
    if missing:
        hint = "" if "PixelData" in ds else " and no pixel data: a truncated file, or not an image?"
        raise DataError(f"{path}: missing DICOM tag(s) {', '.join(missing)}{hint}")
    try:
        iop = _numbers(ds, "ImageOrientationPatient")
        ipp = _numbers(ds, "ImagePositionPatient")
        spacing = _numbers(ds, "PixelSpacing")
        (inst_value,) = _numbers(ds, "InstanceNumber")
        if not inst_value.is_integer():
            raise ValueError(f"InstanceNumber {inst_value} is not an integer")
        inst = int(inst_value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: malformed geometry tag ({exc})") from exc
    if iop.shape != (6,) or ipp.shape != (3,) or spacing.shape != (2,):
        raise DataError(f"{path}: malformed ImageOrientationPatient/ImagePositionPatient")
    _check_finite(path, ImageOrientationPatient=iop, ImagePositionPatient=ipp,
                  PixelSpacing=spacing)
    if (spacing <= 0).any():
        raise DataError(f"{path}: PixelSpacing {spacing.tolist()} must be positive")
    normal = np.cross(iop[:3], iop[3:])
    norm = np.linalg.norm(normal)
    if norm < 1e-6:
        raise DataError(f"{path}: ImageOrientationPatient {iop.tolist()} has no normal")
    return inst, ipp, normal / norm, spacing, (int(ds.Rows), int(ds.Columns))


#: A slice whose normal is more than this far from the series' other slices lies in
#: another plane (a sagittal file in an axial series is 90 degrees off). RSNA's per-disc
#: axial stacks follow the lordosis and lie up to about 15-25 degrees from each other,
#: so the limit is the boundary between two planes, not a tolerance on one.
MAX_PLANE_ANGLE_DEG = 45.0
#: Two slices whose orientations differ by less than this and whose planes lie closer than
#: :data:`DUPLICATE_POSITION_MM` are one slice twice (a copied file, a repeated scan).
SAME_ORIENTATION_DEG = 0.5
DUPLICATE_POSITION_MM = 0.01


def _names(paths: list[Path], idx) -> str:
    """``a.dcm, b.dcm and 3 more``: the files at ``idx``, for a one-line message."""
    names = [paths[i].name for i in idx]
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return ", ".join(names[:3]) + more


def _check_series_uid(paths: list[Path], headers: list, series_dir: Path) -> None:
    """Every file carries the same SeriesInstanceUID (or none does)."""
    uids = [str(ds.get("SeriesInstanceUID") or "").strip() or None for ds in headers]
    values, counts = np.unique(np.array([u or "" for u in uids], dtype=object),
                               return_counts=True)
    if len(values) > 1:
        major = values[int(np.argmax(counts))]
        odd = [i for i, u in enumerate(uids) if (u or "") != major]
        theirs = ", ".join(sorted({uids[i] or "none" for i in odd}))
        raise DataError(
            f"Series {series_dir} mixes SeriesInstanceUIDs: {_names(paths, odd)} "
            f"{'has' if len(odd) == 1 else 'have'} {theirs}, the other "
            f"{len(paths) - len(odd)} files {major or 'none'}"
        )


def _aligned_normals(paths: list[Path], normals: np.ndarray, series_dir: Path) -> np.ndarray:
    """The slice normals, checked to lie in one plane family and turned to point one way.

    The reference is the slice whose normal is closest to all others (robust to the odd
    file out, which the mean is not); a slice more than :data:`MAX_PLANE_ANGLE_DEG` from
    it is refused, naming the files. The result keeps the first file's direction, so
    that positions increase as they always have.
    """
    cos = np.abs(normals @ normals.T)
    ref = normals[int(np.argmax(cos.sum(axis=1)))]
    to_ref = normals @ ref
    off = np.flatnonzero(np.abs(to_ref) < np.cos(np.deg2rad(MAX_PLANE_ANGLE_DEG)))
    if len(off):
        worst = np.degrees(np.arccos(np.clip(np.abs(to_ref[off]).min(), 0.0, 1.0)))
        verb = "lies" if len(off) == 1 else "lie"
        raise DataError(
            f"Series {series_dir}: {_names(paths, off)} {verb} in another plane ({worst:.0f} "
            f"degrees from the other slices' orientation): a file of another series?"
        )
    aligned = normals * np.sign(to_ref)[:, None]
    return aligned * np.sign(aligned[0] @ normals[0])


def _check_positions(paths: list[Path], ipp: np.ndarray, normals: np.ndarray,
                     series_dir: Path) -> None:
    """No two slices of one orientation lie in one plane (within
    :data:`DUPLICATE_POSITION_MM` along their normal)."""
    same = normals @ normals.T > np.cos(np.deg2rad(SAME_ORIENTATION_DEG))
    along = ipp @ normals.T  # [i, j]: slice i's position along slice j's normal
    dup = same & (np.abs(along - np.diag(along)[None, :]) < DUPLICATE_POSITION_MM)
    np.fill_diagonal(dup, False)
    if dup.any():
        i, j = sorted(np.argwhere(dup)[0])
        raise DataError(
            f"Series {series_dir}: {paths[i].name} and {paths[j].name} lie at the same "
            f"position ({along[i, i]:.2f} mm along their normal): one slice twice?"
        )


def _check_sizes_and_instances(paths: list[Path], geo: list, inst: np.ndarray,
                               series_dir: Path) -> None:
    """One image size, and no instance number twice."""
    first = geo[0][4]
    for p, g in zip(paths, geo, strict=True):
        if g[4] != first:
            raise DataError(
                f"Mixed image sizes in series {series_dir}: {p.name} is {g[4][0]}x{g[4][1]}, "
                f"{paths[0].name} is {first[0]}x{first[1]}"
            )
    uniq, counts = np.unique(inst, return_counts=True)
    if (counts > 1).any():
        dup = int(uniq[counts > 1][0])
        names = [p.name for p, i in zip(paths, inst, strict=True) if i == dup]
        raise DataError(f"Duplicate instance number {dup} in series {series_dir}: {names}")


def _order(paths: list[Path], headers: list[pydicom.Dataset], series_dir: Path):
    """Check that the files make one series, and order them in space.

    ``paths`` are in name order (:func:`list_dicom_files`). Slices are sorted by their
    position along the series' mean normal, then by instance number, then by file name,
    so that the same files give the same order on every file system.
    """
    geo = [_geometry(ds, p) for ds, p in zip(headers, paths, strict=True)]
    _check_series_uid(paths, headers, series_dir)
    normals = _aligned_normals(paths, np.stack([g[2] for g in geo]), series_dir)
    inst = np.array([g[0] for g in geo], dtype=np.int64)
    _check_sizes_and_instances(paths, geo, inst, series_dir)
    ipp = np.stack([g[1] for g in geo])
    _check_positions(paths, ipp, normals, series_dir)
    axis = normals.mean(axis=0)
    axis /= np.linalg.norm(axis)
    pos = ipp @ axis
    order = np.lexsort((np.arange(len(paths)), inst, pos))
    return order, inst[order], pos[order], geo[0][3], geo[0][4]


def _native_pixels(ds: pydicom.Dataset) -> np.ndarray | None:
    """The stored values of an uncompressed little-endian 16-bit greyscale frame, read
    straight from the buffer, or None for any other kind of pixel data.

    That is what nearly every MR file holds, and exactly what ``ds.pixel_array`` returns
    for it at a fifth of its cost, which is pydicom's per-file set-up rather than the copy.
    """
    if ds.file_meta.get("TransferSyntaxUID") not in _NATIVE_LITTLE_ENDIAN:
        return None
    layout = plain_frame_layout(ds)
    if layout is None:
        return None
    rows, cols, bits, dtype = layout  # its length is checked by decode_slice
    data = ds.PixelData
    return stored_values(np.frombuffer(data, dtype=dtype, count=rows * cols), rows, cols, bits)


def decode_slice(ds: pydicom.Dataset, path: Path) -> np.ndarray:
    """Pixels of one dataset as float32 with rescale applied and MONOCHROME1 inverted.

    Raises :class:`DataError` naming ``path`` for a missing PixelData, uncompressed pixel
    data longer or shorter than Rows x Columns says (both readers), a compressed transfer
    syntax whose decoder is not installed, or a non-finite rescale or result.
    """
    if "PixelData" not in ds:
        raise DataError(f"No PixelData in {path}")
    if isinstance(ds, FastHeader):
        check_pixel_length(ds.pixel_length, ds, path)
        arr = fast_pixels(ds, path)
        if arr is None:  # not the plain 16-bit case: let pydicom decode the whole file
            return decode_slice(_read(path, pixels=True), path)
        return _to_float(arr, ds, path)
    try:
        if ds.file_meta.get("TransferSyntaxUID") in _UNCOMPRESSED:
            check_pixel_length(len(ds.PixelData), ds, path)
        arr = _native_pixels(ds)
        if arr is None:
            arr = ds.pixel_array
    except (NotImplementedError, RuntimeError) as exc:
        ts = ds.file_meta.get("TransferSyntaxUID", "unknown")
        name = getattr(ts, "name", ts)
        if "missing dependencies" in str(exc) or "no pixel data decoders" in str(exc).lower():
            needs = "; ".join(line.strip() for line in str(exc).splitlines()[1:]) or str(exc)
            raise DataError(
                f"Cannot decode {path}: transfer syntax {name} needs a decoder that is not "
                f"installed ({needs}); e.g. `pip install pylibjpeg pylibjpeg-libjpeg "
                f"pylibjpeg-openjpeg` or `pip install python-gdcm`"
            ) from exc
        raise DataError(f"Corrupt compressed pixel data ({name}) in {path} ({exc})") from exc
    except (ValueError, AttributeError, EOFError, OSError) as exc:
        raise DataError(f"Corrupt pixel data in {path} ({exc})") from exc
    if arr.ndim != 2:
        raise DataError(f"{path}: expected one 2-D frame, got pixel array of shape {arr.shape}")
    return _to_float(arr, ds, path)


def _rescale(ds, path: Path) -> tuple[float, float]:
    """RescaleSlope and RescaleIntercept (1 and 0 when absent or empty), finite."""
    try:
        slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: malformed RescaleSlope/RescaleIntercept ({exc})") from exc
    _check_finite(path, RescaleSlope=slope, RescaleIntercept=intercept)
    return slope, intercept


def _to_float(arr: np.ndarray, ds, path: Path) -> np.ndarray:
    """Stored values to float32: MONOCHROME1 inverted, then RescaleSlope/Intercept.

    Stored values are integers, so only a rescale can make a value non-finite (float32
    overflow, e.g. a slope of 1e38): that is refused, naming the file.
    """
    out = arr.astype(np.float32)
    if ds.get("PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1":
        out = np.float32(2 ** int(ds.get("BitsStored", 16)) - 1) - out
    slope, intercept = _rescale(ds, path)
    with np.errstate(over="ignore", invalid="ignore"):
        if slope != 1.0:
            out *= np.float32(slope)
        if intercept != 0.0:
            out += np.float32(intercept)
    # float64 sum of float32 values: finite exactly when every value is (no temporary)
    if (slope != 1.0 or intercept != 0.0) and not math.isfinite(out.sum(dtype=np.float64)):
        raise DataError(f"{path}: non-finite pixel values after rescale (RescaleSlope "
                        f"{slope}, RescaleIntercept {intercept})")
    return out


def scan_series(series_dir: str | Path) -> SeriesHeader:
    """Read the headers of every ``.dcm`` in a folder and order the slices in space.

    Only the geometry tags are parsed, so this is cheap; use it to pick slices before
    decoding them (see :func:`lss.data.level_window`).

    Raises
    ------
    DataError
        For a missing or empty folder, a non-``.dcm`` entry, a file that is not DICOM
        or is corrupt, missing geometry tags, mixed image sizes or a duplicate instance
        number -- naming the file or folder -- and for files that do not make one series:
        another SeriesInstanceUID, a slice in another plane (more than
        :data:`MAX_PLANE_ANGLE_DEG` off), or two slices at one position, naming the files.
    """
    return _scan(series_dir)[0]


def _scan(series_dir: str | Path) -> tuple[SeriesHeader, list[pydicom.Dataset]]:
    """:func:`scan_series` and the datasets it read, in spatial order, pixel data unread."""
    series_dir = Path(series_dir)
    paths = _list_files(series_dir)
    headers = [_read(p, pixels=False) for p in paths]
    order, inst, pos, spacing, shape = _order(paths, headers, series_dir)
    header = SeriesHeader(series_dir, tuple(paths[i] for i in order), inst, pos, spacing,
                          shape)
    return header, [headers[i] for i in order]


def read_series(series_dir: str | Path) -> Series:
    """Read every ``.dcm`` of a series with pydicom, in spatial order.

    Parameters
    ----------
    series_dir : str or Path
        ``.../train_images/<study_id>/<series_id>``.

    Returns
    -------
    Series
        ``volume`` (Z, H, W) float32, ``instance_numbers`` (Z,), ``positions`` (Z,) in mm
        along the series normal, increasing; RescaleSlope/Intercept applied and
        MONOCHROME1 inverted.

    Raises
    ------
    DataError
        As :func:`scan_series`, and for a file without PixelData, truncated pixel data,
        or a compressed file whose decoder is missing (the message says what to install).
    """
    series_dir = Path(series_dir)
    paths = _list_files(series_dir)
    datasets = [_read(p, pixels=True) for p in paths]
    order, inst, pos, spacing, shape = _order(paths, datasets, series_dir)
    volume = np.empty((len(paths), *shape), dtype=np.float32)
    for k, i in enumerate(order):
        volume[k] = decode_slice(datasets[i], paths[i])
    return Series(series_dir, tuple(paths[i] for i in order), inst, pos, spacing, shape,
                  volume=volume)
