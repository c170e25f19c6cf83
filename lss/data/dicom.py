"""Reading one DICOM series in spatial order.

All DICOM geometry lives here. Slices are ordered by their position in space:
``ImagePositionPatient`` projected on the slice normal (the cross product of the two
``ImageOrientationPatient`` directions), averaged over the series so that short angled
stacks, one per disc, still share one axis. Neither file names nor ``InstanceNumber``
give that order in the RSNA data.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from lss.errors import DataError

__all__ = ["SeriesHeader", "Series", "scan_series", "read_series", "decode_slice",
           "first_file_header"]

_HEADER_TAGS = [
    "InstanceNumber", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
    "Rows", "Columns", "SliceThickness",
]
_DEFER_BYTES = 1024
_NATIVE_LITTLE_ENDIAN = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)

# The tags lss reads, by (group, element), for the fast header parser below.
_FAST_TAGS = {
    (0x0020, 0x0013): "InstanceNumber", (0x0020, 0x0032): "ImagePositionPatient",
    (0x0020, 0x0037): "ImageOrientationPatient", (0x0028, 0x0002): "SamplesPerPixel",
    (0x0028, 0x0004): "PhotometricInterpretation", (0x0028, 0x0008): "NumberOfFrames",
    (0x0028, 0x0010): "Rows", (0x0028, 0x0011): "Columns", (0x0028, 0x0030): "PixelSpacing",
    (0x0028, 0x0100): "BitsAllocated", (0x0028, 0x0101): "BitsStored",
    (0x0028, 0x0103): "PixelRepresentation", (0x0028, 0x1052): "RescaleIntercept",
    (0x0028, 0x1053): "RescaleSlope",
}
_US_TAGS = {"SamplesPerPixel", "Rows", "Columns", "BitsAllocated", "BitsStored",
            "PixelRepresentation"}
# Explicit VR with a 4-byte length (after 2 reserved bytes); all others have 2 bytes.
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR",
             b"UT", b"UV"}
_FIRST_READ = 16384


class _FastHeader:
    """The tags lss needs from an uncompressed Explicit VR Little Endian file, and where
    its pixel data starts, parsed straight from the bytes (see :func:`_fast_header`).

    Behaves like the few parts of a ``pydicom.Dataset`` that ordering and decoding use:
    ``keyword in h``, ``h.get(keyword, default)`` and ``h.Rows``.
    """

    __slots__ = ("values", "pixel_offset", "pixel_length")

    def __init__(self, values: dict, pixel_offset: int | None, pixel_length: int) -> None:
        self.values, self.pixel_offset, self.pixel_length = values, pixel_offset, pixel_length

    def __contains__(self, keyword: str) -> bool:
        if keyword == "PixelData":
            return self.pixel_offset is not None
        return keyword in self.values

    def get(self, keyword: str, default=None):
        return self.values.get(keyword, default)

    def __getattr__(self, keyword: str):
        try:
            return self.values[keyword]
        except KeyError:
            raise AttributeError(keyword) from None


def _fast_header(path: Path) -> _FastHeader | None:
    """Parse the header of a plain MR file without pydicom, or None to use pydicom.

    pydicom's general reader spends about 0.6 ms per file building a full dataset; the
    slices of a series must all be ordered before one is decoded, so that cost paid for
    every file was most of a cold cache fill. This reads only what :func:`_geometry` and
    :func:`decode_slice` use, and only for the simple, common case: a preamble and
    ``DICM``, Explicit VR Little Endian, no undefined-length element before the pixel
    data. Anything else -- or anything odd -- returns None, and pydicom reads the file
    (and reports any error) as before; tests check both give the same results.
    """
    try:
        with open(path, "rb") as f:
            buf = f.read(_FIRST_READ)
            if len(buf) < 132 or buf[128:132] != b"DICM":
                return None
            size = os.fstat(f.fileno()).st_size
            pos, values, ts, pixel = 132, {}, None, None
            while True:
                if pos + 8 > len(buf):
                    if len(buf) >= size:
                        break  # end of file, no pixel data
                    buf += f.read()
                    continue
                group, element = struct.unpack_from("<HH", buf, pos)
                vr = buf[pos + 4:pos + 6]
                if not (vr.isalpha() and vr.isupper()):
                    return None  # implicit VR or garbage: leave it to pydicom
                if vr in _LONG_VRS:
                    (length,) = struct.unpack_from("<I", buf, pos + 8)
                    start = pos + 12
                else:
                    (length,) = struct.unpack_from("<H", buf, pos + 6)
                    start = pos + 8
                if length == 0xFFFFFFFF:
                    return None  # undefined length (a sequence, encapsulated pixels)
                if group == 0x7FE0 and element == 0x0010:
                    pixel = (start, length)
                    break
                if group != 0x0002 and ts != ExplicitVRLittleEndian:
                    return None
                if start + length > len(buf):
                    if len(buf) >= size:
                        return None  # cut short inside the header
                    buf += f.read()
                    continue
                raw = buf[start:start + length]
                if group == 0x0002 and element == 0x0010:
                    ts = raw.rstrip(b" \0").decode("ascii")
                name = _FAST_TAGS.get((group, element))
                if name in _US_TAGS:
                    if length != 2:
                        return None
                    values[name] = struct.unpack("<H", raw)[0]
                elif name == "PhotometricInterpretation":
                    values[name] = raw.decode("ascii").strip(" \0")
                elif name is not None:
                    text = raw.decode("ascii").strip(" \0")
                    if text:  # an empty value is as good as absent
                        numbers = [float(v) for v in text.split("\\")]
                        values[name] = numbers[0] if len(numbers) == 1 else numbers
                pos = start + length
    except (OSError, ValueError, UnicodeDecodeError, struct.error):
        return None
    if pixel is not None and pixel[0] + pixel[1] > size:
        raise DataError(f"Truncated DICOM file: {path} (its pixel data should have "
                        f"{pixel[1]} bytes, {max(size - pixel[0], 0)} are there)")
    return _FastHeader(values, None if pixel is None else pixel[0],
                       0 if pixel is None else pixel[1])


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


def _list_files(series_dir: Path) -> list[Path]:
    if not series_dir.is_dir():
        raise DataError(f"Series folder not found: {series_dir}")
    files, strays = [], []
    for p in series_dir.iterdir():
        if p.name.startswith("."):
            continue  # editor and OS droppings (.DS_Store); never image data
        (files if p.suffix.lower() == ".dcm" and p.is_file() else strays).append(p)
    if strays:
        raise DataError(f"Unexpected non-.dcm entry {strays[0]} in series folder {series_dir}")
    if not files:
        raise DataError(f"No .dcm files in series folder {series_dir}")
    return files


def first_file_header(series_dir: str | Path, tags: list[str]) -> pydicom.Dataset:
    """``tags`` from the header of a series folder's first ``.dcm`` file (by name).

    For what every file of a series shares (image size, pixel spacing, description),
    where reading one header is enough.

    Raises
    ------
    DataError
        Naming the folder when it has no ``.dcm`` file, or the file when it cannot be read.
    """
    folder = Path(series_dir)
    first = next(iter(sorted(folder.glob("*.dcm"))), None)
    if first is None:
        raise DataError(f"No .dcm files in series folder {folder}")
    try:
        return pydicom.dcmread(first, stop_before_pixels=True, specific_tags=list(tags))
    except Exception as exc:  # noqa: BLE001 -- re-raised with the file named
        raise DataError(f"Not a readable DICOM file: {first} ({exc})") from exc


def _read(path: Path, *, pixels: bool) -> pydicom.Dataset | _FastHeader:
    """One file: all of it, or (``pixels=False``) its header, with every value over
    1 KB (the pixel data) left unread in the file until it is accessed. Reading a
    header that way costs no more than ``stop_before_pixels``, and decoding such a
    dataset later reads only its pixel data rather than parsing the file again."""
    if not pixels:
        fast = _fast_header(path)
        if fast is not None:
            return fast
    try:
        if pixels:
            return pydicom.dcmread(path)
        ds = pydicom.dcmread(path, defer_size=_DEFER_BYTES)
        size = os.path.getsize(path)
    except InvalidDicomError as exc:
        raise DataError(f"Not a DICOM file: {path} ({exc})") from exc
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
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
    if isinstance(ds, _FastHeader):
        return np.array(ds.values[keyword], dtype=float, ndmin=1)
    elem = ds.get_item(keyword)
    raw = getattr(elem, "value", None)
    if isinstance(elem, RawDataElement) and elem.VR in (None, "DS", "IS") and isinstance(
            raw, bytes):
        return np.array([float(v.strip(b" \0")) for v in raw.split(b"\\")], dtype=float)
    return np.array(ds[keyword].value, dtype=float, ndmin=1)


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
    normal = np.cross(iop[:3], iop[3:])
    norm = np.linalg.norm(normal)
    if norm < 1e-6:
        raise DataError(f"{path}: ImageOrientationPatient {iop.tolist()} has no normal")
    return inst, ipp, normal / norm, spacing, (int(ds.Rows), int(ds.Columns))


def _order(paths: list[Path], headers: list[pydicom.Dataset], series_dir: Path):
    geo = [_geometry(ds, p) for ds, p in zip(headers, paths, strict=True)]
    first = geo[0][4]
    for p, g in zip(paths, geo, strict=True):
        if g[4] != first:
            raise DataError(
                f"Mixed image sizes in series {series_dir}: {p.name} is {g[4][0]}x{g[4][1]}, "
                f"{paths[0].name} is {first[0]}x{first[1]}"
            )
    inst = np.array([g[0] for g in geo], dtype=np.int64)
    uniq, counts = np.unique(inst, return_counts=True)
    if (counts > 1).any():
        dup = int(uniq[counts > 1][0])
        names = [p.name for p, i in zip(paths, inst, strict=True) if i == dup]
        raise DataError(f"Duplicate instance number {dup} in series {series_dir}: {names}")
    normals = np.stack([g[2] for g in geo])
    normals *= np.sign(normals @ normals[0])[:, None]  # one orientation for all slices
    axis = normals.mean(axis=0)
    axis /= np.linalg.norm(axis)
    pos = np.stack([g[1] for g in geo]) @ axis
    order = np.argsort(pos, kind="stable")
    return order, inst[order], pos[order], geo[0][3], geo[0][4]


def _plain_frame_layout(ds) -> tuple[int, int, int, str] | None:
    """``(rows, cols, bits_stored, dtype)`` of one uncompressed 16-bit greyscale frame,
    the case :func:`_native_pixels` and :func:`_fast_pixels` read themselves, or None
    for any other kind of pixel data (a pydicom dataset or a :class:`_FastHeader`)."""
    if (ds.get("SamplesPerPixel", 1) != 1 or ds.get("BitsAllocated") != 16
            or ds.get("PixelRepresentation") not in (0, 1)
            or int(ds.get("NumberOfFrames", 1) or 1) != 1):
        return None
    rows, cols, bits = ds.get("Rows"), ds.get("Columns"), ds.get("BitsStored")
    if not (isinstance(rows, int) and isinstance(cols, int) and isinstance(bits, int)
            and rows > 0 and cols > 0 and 0 < bits <= 16):
        return None
    return rows, cols, bits, "<i2" if ds.get("PixelRepresentation") == 1 else "<u2"


def _stored_values(flat: np.ndarray, rows: int, cols: int, bits: int) -> np.ndarray:
    """A frame's stored values as ``pixel_array`` gives them: unused high bits cleared
    (unsigned) or sign-extended (signed)."""
    arr = flat.reshape(rows, cols)
    if bits < 16:
        arr = (arr << (16 - bits)) >> (16 - bits)
    return arr


def _native_pixels(ds: pydicom.Dataset) -> np.ndarray | None:
    """The stored values of an uncompressed little-endian 16-bit greyscale frame, read
    straight from the buffer, or None for any other kind of pixel data.

    That is what nearly every MR file holds, and exactly what ``ds.pixel_array`` returns
    for it at a fifth of its cost, which is pydicom's per-file set-up rather than the copy.
    """
    if ds.file_meta.get("TransferSyntaxUID") not in _NATIVE_LITTLE_ENDIAN:
        return None
    layout = _plain_frame_layout(ds)
    if layout is None:
        return None
    rows, cols, bits, dtype = layout
    data = ds.PixelData
    if len(data) < 2 * rows * cols:
        return None  # let pydicom say what is missing
    return _stored_values(np.frombuffer(data, dtype=dtype, count=rows * cols), rows, cols, bits)


def _fast_pixels(h: _FastHeader, path: Path) -> np.ndarray | None:
    """The stored values of a plain 16-bit greyscale frame, read at the header's pixel
    offset (as :func:`_native_pixels` does from a pydicom dataset), or None."""
    layout = _plain_frame_layout(h)
    if layout is None:
        return None
    rows, cols, bits, dtype = layout
    if h.pixel_length < 2 * rows * cols:
        return None
    flat = np.fromfile(path, dtype=dtype, count=rows * cols, offset=h.pixel_offset)
    if flat.size != rows * cols:
        raise DataError(f"Truncated DICOM file: {path}")
    return _stored_values(flat, rows, cols, bits)


def decode_slice(ds: pydicom.Dataset, path: Path) -> np.ndarray:
    """Pixels of one dataset as float32 with rescale applied and MONOCHROME1 inverted.

    Raises :class:`DataError` naming ``path`` for a missing PixelData, truncated pixel
    data, or a compressed transfer syntax whose decoder is not installed.
    """
    if "PixelData" not in ds:
        raise DataError(f"No PixelData in {path}")
    if isinstance(ds, _FastHeader):
        arr = _fast_pixels(ds, path)
        if arr is None:  # not the plain 16-bit case: let pydicom decode the whole file
            return decode_slice(_read(path, pixels=True), path)
        return _to_float(arr, ds)
    try:
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
    return _to_float(arr, ds)


def _to_float(arr: np.ndarray, ds) -> np.ndarray:
    """Stored values to float32: MONOCHROME1 inverted, then RescaleSlope/Intercept."""
    out = arr.astype(np.float32)
    if ds.get("PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1":
        out = np.float32(2 ** int(ds.get("BitsStored", 16)) - 1) - out
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    if slope != 1.0:
        out *= np.float32(slope)
    if intercept != 0.0:
        out += np.float32(intercept)
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
        number -- naming the file or folder.
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
