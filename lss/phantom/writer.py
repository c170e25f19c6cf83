"""Writing phantom slices as MR Image Storage DICOM files.

Files carry a preamble and a file meta group (Explicit VR Little Endian), so
``pydicom.dcmread`` reads them without ``force=True``, plus the geometry tags a
real loader uses to order slices and convert pixels to millimetres.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

__all__ = ["MR_IMAGE_STORAGE", "SeriesTags", "phantom_uid", "write_slice"]

#: SOP Class UID of MR Image Storage.
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def phantom_uid(*parts: object) -> str:
    """A deterministic UID (``2.25.<int>``, a UUID-style root) derived from ``parts``.

    The integer is the first 128 bits of a SHA-256 of the parts, so the same study,
    series and instance always get the same UID and different ones practically never
    collide.

    >>> phantom_uid("study", 1) == phantom_uid("study", 1) != phantom_uid("study", 2)
    True
    >>> len(phantom_uid(4003253, 702807833, 8)) <= 64
    True
    """
    digest = hashlib.sha256("\x1f".join(["lss.phantom", *map(str, parts)]).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


@dataclass(frozen=True)
class SeriesTags:
    """The series-level tags that every file of one series shares.

    (Named apart from :class:`lss.data.dicom.SeriesHeader`, which is what a loader
    reads back from a series.)

    Parameters
    ----------
    study_id, series_id : int
        RSNA identifiers (also the folder names).
    description : str
        SeriesDescription, e.g. ``'Axial T2'``.
    series_number : int
        SeriesNumber.
    rows, columns : int
        Image size.
    pixel_spacing : float
        Square pixel side, mm (PixelSpacing is written as [row, column] spacing).
    slice_thickness, spacing_between_slices : float
        mm.
    rescale_slope : float
        Physical value = stored value * slope (intercept 0).
    bits_stored : int
        12 or 16.
    repetition_time, echo_time : float
        ms, for the look of the header only.
    inversion_time : float or None
        ms, for STIR.
    window_center, window_width : float
        Display window in physical units.
    """

    study_id: int
    series_id: int
    description: str
    series_number: int
    rows: int
    columns: int
    pixel_spacing: float
    slice_thickness: float
    spacing_between_slices: float
    rescale_slope: float = 1.0
    bits_stored: int = 16
    repetition_time: float = 4000.0
    echo_time: float = 100.0
    inversion_time: float | None = None
    window_center: float = 500.0
    window_width: float = 1000.0

    def __post_init__(self) -> None:
        if self.bits_stored not in (12, 16):
            raise ValueError(f"bits_stored must be 12 or 16, got {self.bits_stored}")
        if self.rescale_slope <= 0:
            raise ValueError(f"rescale_slope must be positive, got {self.rescale_slope}")


def _num(v: float) -> str:
    """A decimal string short enough for DS (at most 16 characters)."""
    return f"{float(v):.6g}"


_TEXT_PAD = {"UI": b"\0"}
_LONG_VRS = {"OB", "OW", "OF", "SQ", "UT", "UN"}


def _element(group: int, elem: int, vr: str, value: object) -> bytes:
    """One data element in Explicit VR Little Endian."""
    if vr in ("US",):
        data = struct.pack("<H", int(value))
    elif vr == "UL":
        data = struct.pack("<I", int(value))
    elif vr in ("OB", "OW"):
        data = bytes(value)
    else:
        if isinstance(value, (list, tuple)):
            value = "\\".join(str(v) for v in value)
        data = str(value).encode("ascii")
    if len(data) % 2:
        data += _TEXT_PAD.get(vr, b" ") if vr not in ("OB", "OW") else b"\0"
    head = struct.pack("<HH", group, elem) + vr.encode("ascii")
    if vr in _LONG_VRS:
        return head + b"\0\0" + struct.pack("<I", len(data)) + data
    if len(data) > 0xFFFF:
        raise ValueError(f"Value of ({group:04X},{elem:04X}) too long for VR {vr}")
    return head + struct.pack("<H", len(data)) + data


class _SeriesEncoder:
    """Pre-encodes the elements a series shares; adds the per-instance ones."""

    def __init__(self, header: SeriesTags) -> None:
        h = header
        uid_study = phantom_uid(h.study_id)
        uid_series = phantom_uid(h.study_id, h.series_id)
        fixed: list[tuple[int, int, str, object]] = [
            (0x0008, 0x0005, "CS", "ISO_IR 100"),
            (0x0008, 0x0008, "CS", ["ORIGINAL", "PRIMARY", "M", "ND"]),
            (0x0008, 0x0016, "UI", MR_IMAGE_STORAGE),
            (0x0008, 0x0060, "CS", "MR"),
            (0x0008, 0x0070, "LO", "lss.phantom (synthetic)"),
            (0x0008, 0x103E, "LO", h.description),
            (0x0010, 0x0010, "PN", "PHANTOM"),
            (0x0010, 0x0020, "LO", str(h.study_id)),
            (0x0018, 0x0015, "CS", "LSPINE"),
            (0x0018, 0x0020, "CS", "IR" if h.inversion_time is not None else "SE"),
            (0x0018, 0x0021, "CS", "SK"),
            (0x0018, 0x0023, "CS", "2D"),
            (0x0018, 0x0050, "DS", _num(h.slice_thickness)),
            (0x0018, 0x0080, "DS", _num(h.repetition_time)),
            (0x0018, 0x0081, "DS", _num(h.echo_time)),
            (0x0018, 0x0087, "DS", "1.5"),
            (0x0018, 0x0088, "DS", _num(h.spacing_between_slices)),
            (0x0018, 0x5100, "CS", "HFS"),
            (0x0020, 0x000D, "UI", uid_study),
            (0x0020, 0x000E, "UI", uid_series),
            (0x0020, 0x0010, "SH", str(h.study_id)[-16:]),
            (0x0020, 0x0011, "IS", str(int(h.series_number))),
            (0x0020, 0x0052, "UI", phantom_uid(h.study_id, "frame")),
            (0x0028, 0x0002, "US", 1),
            (0x0028, 0x0004, "CS", "MONOCHROME2"),
            (0x0028, 0x0010, "US", h.rows),
            (0x0028, 0x0011, "US", h.columns),
            (0x0028, 0x0030, "DS", [_num(h.pixel_spacing)] * 2),
            (0x0028, 0x0100, "US", 16),
            (0x0028, 0x0101, "US", h.bits_stored),
            (0x0028, 0x0102, "US", h.bits_stored - 1),
            (0x0028, 0x0103, "US", 0),
            (0x0028, 0x1050, "DS", _num(h.window_center)),
            (0x0028, 0x1051, "DS", _num(h.window_width)),
            (0x0028, 0x1052, "DS", "0"),
            (0x0028, 0x1053, "DS", _num(h.rescale_slope)),
            (0x0028, 0x1054, "LO", "US"),
        ]
        if h.inversion_time is not None:
            fixed.append((0x0018, 0x0082, "DS", _num(h.inversion_time)))
        self.fixed = [((g, e), _element(g, e, vr, v)) for g, e, vr, v in fixed]

    def encode(
        self, sop_uid: str, instance_number: int, position, orientation, pixel_bytes: bytes
    ) -> bytes:
        normal = np.cross(np.asarray(orientation[:3], float), np.asarray(orientation[3:], float))
        per = [
            (0x0008, 0x0018, "UI", sop_uid),
            (0x0020, 0x0013, "IS", str(int(instance_number))),
            (0x0020, 0x0032, "DS", [_num(v) for v in position]),
            (0x0020, 0x0037, "DS", [_num(v) for v in orientation]),
            (0x0020, 0x1041, "DS", _num(float(np.dot(normal, position)))),
            (0x7FE0, 0x0010, "OW", pixel_bytes),
        ]
        elements = self.fixed + [((g, e), _element(g, e, vr, v)) for g, e, vr, v in per]
        elements.sort(key=lambda item: item[0])
        body = b"".join(data for _, data in elements)
        meta = b"".join(
            [
                _element(0x0002, 0x0001, "OB", b"\0\1"),
                _element(0x0002, 0x0002, "UI", MR_IMAGE_STORAGE),
                _element(0x0002, 0x0003, "UI", sop_uid),
                _element(0x0002, 0x0010, "UI", ExplicitVRLittleEndian),
                _element(0x0002, 0x0012, "UI", PYDICOM_IMPLEMENTATION_UID),
                _element(0x0002, 0x0013, "SH", "LSS_PHANTOM"),
            ]
        )
        group_length = _element(0x0002, 0x0000, "UL", len(meta))
        return b"\0" * 128 + b"DICM" + group_length + meta + body


_ENCODERS: dict[SeriesTags, _SeriesEncoder] = {}


def write_slice(
    path: str | Path,
    physical: np.ndarray,
    header: SeriesTags,
    *,
    instance_number: int,
    position: np.ndarray,
    orientation: np.ndarray,
) -> None:
    """Write one slice.

    Parameters
    ----------
    path : str or Path
        Output file (its folder must exist).
    physical : (rows, columns) float ndarray
        Intensities after rescale (non-negative); stored as
        ``round(physical / rescale_slope)`` in uint16, clipped to ``bits_stored``.
    header : SeriesTags
        Series-level tags.
    instance_number : int
        InstanceNumber (>= 1).
    position : (3,) array_like
        ImagePositionPatient: centre of the first pixel, patient LPS mm.
    orientation : (6,) array_like
        ImageOrientationPatient: unit row direction (toward increasing column), then
        unit column direction (toward increasing row).

    Notes
    -----
    The bytes are assembled directly (pre-encoded series elements plus the
    per-instance ones) because building a ``pydicom.Dataset`` per file costs several
    times the rendering; ``tests/test_phantom.py`` checks that ``pydicom`` reads every
    file without ``force`` and writes the same bytes back.
    """
    if physical.shape != (header.rows, header.columns):
        raise ValueError(
            f"Series {header.series_id}: image shape {physical.shape} != "
            f"({header.rows}, {header.columns})"
        )
    if instance_number < 1:
        raise ValueError(
            f"Series {header.series_id}: instance_number must be >= 1, got {instance_number}"
        )
    hi = (1 << header.bits_stored) - 1
    stored = np.clip(np.rint(physical / header.rescale_slope), 0, hi).astype("<u2")
    encoder = _ENCODERS.get(header)
    if encoder is None:
        if len(_ENCODERS) > 64:
            _ENCODERS.clear()
        encoder = _ENCODERS[header] = _SeriesEncoder(header)
    sop_uid = phantom_uid(header.study_id, header.series_id, instance_number)
    data = encoder.encode(sop_uid, instance_number, position, orientation, stored.tobytes())
    Path(path).write_bytes(data)
