"""A header parser for plain MR files that does not need pydicom (private to lss.data).

pydicom's general reader spends about 0.6 ms per file building a full dataset; the
slices of a series must all be ordered before one is decoded, so that cost paid for
every file was most of a cold cache fill. :func:`fast_header` reads only the tags that
:mod:`lss.data.dicom` uses, and only for the simple, common case (Explicit VR Little
Endian, no undefined-length element before the pixel data); anything else returns
None and pydicom reads the file. :func:`fast_pixels` then reads the pixel data at its
offset. Tests check that both paths give the same results.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
from pydicom.uid import ExplicitVRLittleEndian

from lss.errors import DataError

__all__ = ["FastHeader", "fast_header", "fast_pixels", "plain_frame_layout", "stored_values",
           "check_pixel_length"]

_FIRST_READ = 16384

# The tags lss reads, by (group, element), for the fast header parser below.
_FAST_TAGS = {
    (0x0020, 0x000E): "SeriesInstanceUID",
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
_TEXT_TAGS = {"PhotometricInterpretation", "SeriesInstanceUID"}
# Explicit VR with a 4-byte length (after 2 reserved bytes); all others have 2 bytes.
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR",
             b"UT", b"UV"}


class FastHeader:
    """The tags lss needs from an uncompressed Explicit VR Little Endian file, and where
    its pixel data starts, parsed straight from the bytes (see :func:`fast_header`).

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


def fast_header(path: Path) -> FastHeader | None:
    """Parse the header of a plain MR file without pydicom, or None to use pydicom.

    Only the tags that :mod:`lss.data.dicom` uses are read, and only for the simple,
    common case: a preamble and
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
            parsed = _parse(f, buf, size)
    except (OSError, ValueError, UnicodeDecodeError, struct.error):
        return None
    if parsed is None:
        return None
    values, pixel = parsed
    if pixel is not None and pixel[0] + pixel[1] > size:
        raise DataError(f"Truncated DICOM file: {path} (its pixel data should have "
                        f"{pixel[1]} bytes, {max(size - pixel[0], 0)} are there)")
    return FastHeader(values, None if pixel is None else pixel[0],
                      0 if pixel is None else pixel[1])


def _parse(f, buf: bytes, size: int) -> tuple[dict, tuple[int, int] | None] | None:
    """Walk the elements after ``DICM`` up to the pixel data, reading more of ``f`` as
    needed: the tags of :data:`_FAST_TAGS` and the pixel data's ``(offset, length)``, or
    None for anything the fast path does not handle."""
    pos, values, ts = 132, {}, None
    while True:
        if pos + 8 > len(buf):
            if len(buf) >= size:
                return values, None  # end of file, no pixel data
            buf += f.read()
            continue
        group, element = struct.unpack_from("<HH", buf, pos)
        vr = buf[pos + 4:pos + 6]
        if not (vr.isalpha() and vr.isupper()):
            return None  # implicit VR or garbage: leave it to pydicom
        long_vr = vr in _LONG_VRS
        (length,) = struct.unpack_from("<I" if long_vr else "<H", buf, pos + (8 if long_vr else 6))
        start = pos + (12 if long_vr else 8)
        if length == 0xFFFFFFFF:
            return None  # undefined length (a sequence, encapsulated pixels)
        if group == 0x7FE0 and element == 0x0010:
            return values, (start, length)
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
        if name is not None:
            value = _convert(name, raw)
            if value is not None:
                values[name] = value
        pos = start + length


def _convert(name: str, raw: bytes):
    """One tag's value: an int (US), a str (CS, UI), or a float or list of floats (DS,
    IS); None for an empty number, which is as good as absent. Raises ValueError for a
    US value that is not 2 bytes (the file then goes to pydicom)."""
    if name in _US_TAGS:
        if len(raw) != 2:
            raise ValueError(f"{name} has {len(raw)} bytes")
        return struct.unpack("<H", raw)[0]
    text = raw.decode("ascii").strip(" \0")
    if name in _TEXT_TAGS:
        return text
    if not text:
        return None
    numbers = [float(v) for v in text.split("\\")]
    return numbers[0] if len(numbers) == 1 else numbers


def plain_frame_layout(ds) -> tuple[int, int, int, str] | None:
    """``(rows, cols, bits_stored, dtype)`` of one uncompressed 16-bit greyscale frame,
    the case :func:`lss.data.dicom._native_pixels` and :func:`fast_pixels` read themselves, or None
    for any other kind of pixel data (a pydicom dataset or a :class:`FastHeader`)."""
    if (ds.get("SamplesPerPixel", 1) != 1 or ds.get("BitsAllocated") != 16
            or ds.get("PixelRepresentation") not in (0, 1)
            or int(ds.get("NumberOfFrames", 1) or 1) != 1):
        return None
    rows, cols, bits = ds.get("Rows"), ds.get("Columns"), ds.get("BitsStored")
    if not (isinstance(rows, int) and isinstance(cols, int) and isinstance(bits, int)
            and rows > 0 and cols > 0 and 0 < bits <= 16):
        return None
    return rows, cols, bits, "<i2" if ds.get("PixelRepresentation") == 1 else "<u2"


def check_pixel_length(n_bytes: int, ds, path: Path) -> None:
    """Refuse uncompressed pixel data longer or shorter than its header says.

    ``Rows x Columns x SamplesPerPixel x NumberOfFrames x BitsAllocated`` (plus one pad
    byte when that is odd) is the length; anything else means the header and the data
    disagree -- a header of 256x256 on 512x512 pixels would otherwise become the first
    quarter of the bytes. Both readers call this for a pydicom dataset or a
    :class:`FastHeader`; a header without the size tags is left to pydicom to judge.
    """
    try:
        rows, cols, bits = int(ds.get("Rows")), int(ds.get("Columns")), int(ds.get("BitsAllocated"))
        spp = int(ds.get("SamplesPerPixel", 1) or 1)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return
    subsampled = str(ds.get("PhotometricInterpretation", "")).endswith(("_422", "_420"))
    if min(rows, cols, bits, spp, frames) < 1 or subsampled:
        return  # nothing to compare with, or YBR chroma stored at a lower resolution
    want = (rows * cols * spp * frames * bits + 7) // 8
    if n_bytes not in (want, want + want % 2):
        shape = f"{rows}x{cols}" + (f"x{spp}" if spp > 1 else "") + (
            f", {frames} frames" if frames > 1 else "")
        raise DataError(f"Corrupt pixel data in {path}: {n_bytes} bytes, but Rows x Columns "
                        f"{shape} at {bits} bits need {want}")


def stored_values(flat: np.ndarray, rows: int, cols: int, bits: int) -> np.ndarray:
    """A frame's stored values as ``pixel_array`` gives them: unused high bits cleared
    (unsigned) or sign-extended (signed)."""
    arr = flat.reshape(rows, cols)
    if bits < 16:
        arr = (arr << (16 - bits)) >> (16 - bits)
    return arr


def fast_pixels(h: FastHeader, path: Path) -> np.ndarray | None:
    """The stored values of a plain 16-bit greyscale frame, read at the header's pixel
    offset (as :func:`lss.data.dicom._native_pixels` does from a pydicom dataset), or None."""
    layout = plain_frame_layout(h)
    if layout is None:
        return None
    rows, cols, bits, dtype = layout  # its length is checked by check_pixel_length
    flat = np.fromfile(path, dtype=dtype, count=rows * cols, offset=h.pixel_offset)
    if flat.size != rows * cols:
        raise DataError(f"Truncated DICOM file: {path}")
    return stored_values(flat, rows, cols, bits)
