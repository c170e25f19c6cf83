"""Patient-space geometry of a series: from a pixel of one slice to the nearest slice of another.

A disc level found on a sagittal slice (pixel ``x`` = column, ``y`` = row, as in
``train_label_coordinates.csv``) is carried into the patient's frame with
:func:`pixel_to_patient`; the level's axial slice is then the one whose *plane* lies
nearest that point (:func:`nearest_slice`), within the per-disc stack that holds it
(:func:`split_stacks`). Only headers are read (:func:`read_geometry`), never pixels.

The DICOM conventions used throughout (PS3.3 C.7.6.2):

* ``ImagePositionPatient`` (IPP) is the centre of the first pixel (x = 0, y = 0);
* ``ImageOrientationPatient`` (IOP) holds the direction along a row (of increasing
  column index x) and then the direction down a column (increasing row index y);
* ``PixelSpacing`` is (row spacing, column spacing): the distance between rows (the
  step of y) first, between columns (the step of x) second;

so a pixel is at ``IPP + x * PixelSpacing[1] * IOP[:3] + y * PixelSpacing[0] * IOP[3:]``,
and a slice's normal is ``IOP[:3] x IOP[3:]`` (toward the head for an axial slice with
IOP ``[1, 0, 0, 0, 1, 0]``, in the LPS frame of DICOM).
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError

from lss.data.dicom import DUPLICATE_POSITION_MM, _geometry, _list_files, _names, _numbers
from lss.errors import DataError

__all__ = [
    "SeriesGeometry",
    "NearestSlice",
    "read_geometry",
    "pixel_to_patient",
    "patient_to_pixel",
    "split_stacks",
    "nearest_slice",
    "check_same_frame",
    "SAME_STACK_DEG",
    "STACK_GAP_FACTOR",
]

_TAGS = ["InstanceNumber", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
         "Rows", "Columns", "SliceThickness", "FrameOfReferenceUID"]
_REQUIRED = _TAGS[:6]

#: Slices whose normals lie within this angle (degrees, either sign) share an orientation.
#: RSNA's per-disc stacks follow the lordosis and differ by about 4-25 degrees; slices of
#: one stack have one IOP (to the precision of its digits).
SAME_STACK_DEG = 2.0
#: Along their common normal, the slices of one orientation split into separate stacks
#: where the step between neighbours is more than this many times the series' typical
#: step; 2.5 keeps a stack with one slice missing (a step of 2) whole.
STACK_GAP_FACTOR = 2.5
_TIE_MM = 1e-6  # |distance| ties closer than this go to the lower instance number


@dataclass(frozen=True, eq=False)
class SeriesGeometry:
    """Where every slice of a series lies in the patient, from its headers.

    Slices are in ascending instance-number order (no number twice): the index of a
    slice is its rank by instance number, not its place in space (see
    :func:`split_stacks` for that).

    Attributes
    ----------
    series_dir : Path
    instance_numbers : (Z,) int ndarray
        Ascending.
    positions : (Z, 3) float ndarray
        ``ImagePositionPatient``: the centre of pixel (0, 0), mm.
    orientations : (Z, 6) float ndarray
        ``ImageOrientationPatient``: row direction, then column direction.
    pixel_spacing : (Z, 2) float ndarray
        (row spacing, column spacing) in mm, DICOM ``PixelSpacing`` order.
    shapes : (Z, 2) int ndarray
        (Rows, Columns).
    paths : tuple of Path, (Z,) or ()
        One file per slice; empty for a geometry built by hand.
    slice_thickness : (Z,) float ndarray or None
        ``SliceThickness`` in mm, NaN where absent (all NaN when None is given).
    frames_of_reference : tuple of (str or None)
        ``FrameOfReferenceUID`` per slice, None where absent (all None when empty).

    Examples
    --------
    >>> g = SeriesGeometry("ax", instance_numbers=[2, 1],
    ...                    positions=[[0, 0, 4], [0, 0, 0]],
    ...                    orientations=[[1, 0, 0, 0, 1, 0]] * 2,
    ...                    pixel_spacing=[[0.5, 0.5]] * 2, shapes=[[16, 16]] * 2)
    >>> g.instance_numbers.tolist(), g.positions[:, 2].tolist()
    ([1, 2], [0.0, 4.0])
    >>> g.normals[0].tolist(), g.index_of(2)
    ([0.0, 0.0, 1.0], 1)
    """

    series_dir: Path
    instance_numbers: np.ndarray
    positions: np.ndarray
    orientations: np.ndarray
    pixel_spacing: np.ndarray
    shapes: np.ndarray
    paths: tuple[Path, ...] = ()
    slice_thickness: np.ndarray | None = None
    frames_of_reference: tuple[str | None, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.instance_numbers)
        if n == 0:
            raise ValueError(f"Series {self.series_dir} has no slice")
        order = np.argsort(np.asarray(self.instance_numbers, dtype=np.int64), kind="stable")
        thick = np.full(n, np.nan) if self.slice_thickness is None else self.slice_thickness
        arrays = {"instance_numbers": (self.instance_numbers, np.int64, ()),
                  "positions": (self.positions, float, (3,)),
                  "orientations": (self.orientations, float, (6,)),
                  "pixel_spacing": (self.pixel_spacing, float, (2,)),
                  "shapes": (self.shapes, np.int64, (2,)), "slice_thickness": (thick, float, ())}
        for name, (values, dtype, tail) in arrays.items():
            arr = np.array(values, dtype=dtype)
            if arr.shape != (n, *tail):
                raise ValueError(f"{name} of series {self.series_dir}: shape {arr.shape}, "
                                 f"expected {(n, *tail)}")
            arr = arr[order]
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        frames = tuple(self.frames_of_reference) or (None,) * n
        paths = tuple(Path(p) for p in self.paths)
        if len(frames) != n or len(paths) not in (0, n):
            raise ValueError(f"Series {self.series_dir}: frames/paths do not have {n} slices")
        object.__setattr__(self, "series_dir", Path(self.series_dir))
        object.__setattr__(self, "frames_of_reference", tuple(frames[i] for i in order))
        object.__setattr__(self, "paths", tuple(paths[i] for i in order) if paths else ())

    def __len__(self) -> int:
        return len(self.instance_numbers)

    @property
    def normals(self) -> np.ndarray:
        """(Z, 3) unit normals, ``row direction x column direction``, as the headers say."""
        n = np.cross(self.orientations[:, :3], self.orientations[:, 3:])
        return n / np.linalg.norm(n, axis=1, keepdims=True)

    @property
    def centres(self) -> np.ndarray:
        """(Z, 3) patient position (mm) of each image's centre, pixel ((C-1)/2, (R-1)/2)."""
        iop, (rows, cols) = self.orientations, self.shapes.T
        return (self.positions + ((cols - 1) / 2 * self.pixel_spacing[:, 1])[:, None] * iop[:, :3]
                + ((rows - 1) / 2 * self.pixel_spacing[:, 0])[:, None] * iop[:, 3:])

    @property
    def frame_of_reference(self) -> str | None:
        """The series' ``FrameOfReferenceUID``, or None when no slice has one."""
        known = {f for f in self.frames_of_reference if f is not None}
        return known.pop() if len(known) == 1 else None

    def index_of(self, instance_number: int) -> int:
        """Index of the slice with this instance number; DataError naming the series."""
        i = int(np.searchsorted(self.instance_numbers, int(instance_number)))
        if i == len(self) or self.instance_numbers[i] != int(instance_number):
            lo, hi = self.instance_numbers.min(), self.instance_numbers.max()
            raise DataError(f"Instance {instance_number} not in series {self.series_dir} "
                            f"(instances {lo}..{hi}, {len(self)} files)")
        return i


# ----------------------------------------------------------------------------- reading


def _header(path: Path) -> pydicom.Dataset:
    """The geometry tags of one file (pydicom, no pixel data), or DataError naming it."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
    except InvalidDicomError as exc:
        raise DataError(f"Not a DICOM file: {path} ({exc})") from exc
    except (OSError, EOFError, ValueError, KeyError, TypeError, zlib.error) as exc:
        raise DataError(f"Corrupt DICOM file: {path} ({type(exc).__name__}: {exc})") from exc


def _absent(ds: pydicom.Dataset, keyword: str) -> bool:
    """Whether a tag is missing or empty, read without converting its value."""
    elem = ds.get_item(keyword)
    return elem is None or (elem.length == 0 if isinstance(elem, RawDataElement)
                            else elem.VM == 0)


def _slice(ds: pydicom.Dataset, path: Path) -> tuple:
    """(instance, IPP, IOP, spacing, shape, thickness, frame) of one header, checked.

    :func:`lss.data.dicom._geometry` checks the values (finite, a normal, positive
    spacing); the tags' presence is checked here, as that function's hint on a missing
    tag concerns pixel data, which a header read never holds.
    """
    missing = [t for t in _REQUIRED if _absent(ds, t)]
    if missing:
        raise DataError(f"{path}: missing DICOM tag(s) {', '.join(missing)}")
    inst, ipp, _, spacing, shape = _geometry(ds, path)
    iop = _numbers(ds, "ImageOrientationPatient")
    thickness = np.nan
    if not _absent(ds, "SliceThickness"):
        try:
            (thickness,) = _numbers(ds, "SliceThickness")
        except (TypeError, ValueError) as exc:
            raise DataError(f"{path}: malformed SliceThickness ({exc})") from exc
    frame = str(ds.get("FrameOfReferenceUID") or "").strip() or None
    return inst, ipp, iop, spacing, shape, thickness, frame


def _check_unique(paths: list[Path], slices: list[tuple], series_dir: Path) -> None:
    """No instance number twice, and at most one FrameOfReferenceUID in the series."""
    inst = np.array([s[0] for s in slices])
    uniq, counts = np.unique(inst, return_counts=True)
    if (counts > 1).any():
        dup = int(uniq[counts > 1][0])
        names = [p.name for p, i in zip(paths, inst, strict=True) if i == dup]
        raise DataError(f"Duplicate instance number {dup} in series {series_dir}: {names}")
    frames = sorted({s[6] for s in slices if s[6] is not None})
    if len(frames) > 1:
        odd = [i for i, s in enumerate(slices) if s[6] not in (None, frames[0])]
        raise DataError(f"Series {series_dir} mixes FrameOfReferenceUIDs: "
                        f"{_names(paths, odd)} {', '.join(frames[1:])}, others {frames[0]}")


def read_geometry(series_dir: str | os.PathLike) -> SeriesGeometry:
    """Read the geometry of every ``.dcm`` of a series folder from its headers only.

    About 0.25 ms a file (pydicom reads only the tags needed, up to the pixel data).

    Parameters
    ----------
    series_dir : str or Path
        ``.../train_images/<study_id>/<series_id>``.

    Returns
    -------
    SeriesGeometry
        Slices in ascending instance-number order.

    Raises
    ------
    DataError
        Naming the folder when it is missing, empty or holds a non-``.dcm`` entry, or
        when two files share an instance number or the files carry different
        ``FrameOfReferenceUID``; naming the file when it is not DICOM, is corrupt, or
        lacks, or has malformed or non-finite, ``InstanceNumber``,
        ``ImagePositionPatient``, ``ImageOrientationPatient``, ``PixelSpacing``, ``Rows``
        or ``Columns``.
    """
    series_dir = Path(series_dir)
    paths = _list_files(series_dir)
    slices = [_slice(_header(p), p) for p in paths]
    _check_unique(paths, slices, series_dir)
    col = list(zip(*slices, strict=True))
    return SeriesGeometry(series_dir, instance_numbers=col[0], positions=col[1],
                          orientations=col[2], pixel_spacing=col[3], shapes=col[4],
                          paths=tuple(paths), slice_thickness=col[5],
                          frames_of_reference=col[6])


# ----------------------------------------------------------------------------- one slice


def _axes(geometry: SeriesGeometry, i: int) -> np.ndarray:
    """(3, 3) columns: mm per step of x, mm per step of y, unit normal of slice ``i``."""
    iop, (row_mm, col_mm) = geometry.orientations[i], geometry.pixel_spacing[i]
    return np.stack([iop[:3] * col_mm, iop[3:] * row_mm, geometry.normals[i]], axis=1)


def pixel_to_patient(geometry: SeriesGeometry, instance_number: int, x, y) -> np.ndarray:
    """The patient-space point (mm) of pixel (x, y) of one slice.

    Parameters
    ----------
    geometry : SeriesGeometry
    instance_number : int
        The slice (its ``InstanceNumber``).
    x, y : float or array_like
        Column and row, in pixels (fractions allowed), as in
        ``train_label_coordinates.csv``; pixel (0, 0) is centred on IPP.

    Returns
    -------
    (3,) float ndarray, or (..., 3) for arrays ``x`` and ``y``

    Examples
    --------
    A sagittal slice (rows run down toward the feet): PixelSpacing (0.5, 0.8) makes one
    column 0.8 mm along the row direction and one row 0.5 mm along the column direction.

    >>> g = SeriesGeometry("sag", instance_numbers=[7], positions=[[10, -100, 50]],
    ...                    orientations=[[0, 1, 0, 0, 0, -1]],
    ...                    pixel_spacing=[[0.5, 0.8]], shapes=[[256, 256]])
    >>> pixel_to_patient(g, 7, 10, 20).tolist()
    [10.0, -92.0, 40.0]
    """
    i = geometry.index_of(instance_number)
    steps = _axes(geometry, i)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return geometry.positions[i] + x[..., None] * steps[:, 0] + y[..., None] * steps[:, 1]


def patient_to_pixel(geometry: SeriesGeometry, instance_number: int, point):
    """Where a patient-space point falls on one slice: (x, y, signed distance in mm).

    The inverse of :func:`pixel_to_patient`: ``x`` and ``y`` are the pixel the point
    projects onto (along the normal), the distance is from the slice's plane along its
    normal ``row direction x column direction`` (+ toward the head for an axial slice
    with IOP ``[1, 0, 0, 0, 1, 0]``).

    Parameters
    ----------
    geometry : SeriesGeometry
    instance_number : int
    point : (3,) or (N, 3) array_like
        mm, in the series' frame of reference.

    Returns
    -------
    x, y, distance : float, or (N,) ndarrays for (N, 3) points

    Examples
    --------
    >>> g = SeriesGeometry("sag", instance_numbers=[7], positions=[[10, -100, 50]],
    ...                    orientations=[[0, 1, 0, 0, 0, -1]],
    ...                    pixel_spacing=[[0.5, 0.8]], shapes=[[256, 256]])
    >>> [round(v, 6) for v in patient_to_pixel(g, 7, [13.0, -92.0, 40.0])]
    [10.0, 20.0, -3.0]
    """
    i = geometry.index_of(instance_number)
    p = np.asarray(point, dtype=float)
    if p.shape[-1:] != (3,) or p.ndim > 2:
        raise ValueError(f"point must be (3,) or (N, 3) mm, got shape {p.shape}")
    solved = np.linalg.solve(_axes(geometry, i), (p - geometry.positions[i]).T)
    if p.ndim == 1:
        return float(solved[0]), float(solved[1]), float(solved[2])
    return solved[0], solved[1], solved[2]


# ----------------------------------------------------------------------------- stacks


@dataclass(frozen=True, eq=False)
class _Stack:
    """One stack: its slices in ascending order along ``axis``, and that axis's range."""

    indices: np.ndarray
    axis: np.ndarray
    along: np.ndarray
    half_step: float


def _oriented(normal: np.ndarray) -> np.ndarray:
    """The unit normal turned so its largest component is positive: toward the patient's
    left (sagittal), back (coronal) or head (axial) in LPS."""
    n = normal / np.linalg.norm(normal)
    return n if n[int(np.argmax(np.abs(n)))] > 0 else -n


def _orientation_groups(normals: np.ndarray) -> list[np.ndarray]:
    """Slices grouped by orientation: each joins the first group (in index order) whose
    first slice's normal is within :data:`SAME_STACK_DEG` of its own, either sign."""
    limit = np.cos(np.deg2rad(SAME_STACK_DEG))
    refs: list[np.ndarray] = []
    members: list[list[int]] = []
    for i, n in enumerate(normals):
        for ref, group in zip(refs, members, strict=True):
            if abs(n @ ref) >= limit:
                group.append(i)
                break
        else:
            refs.append(n)
            members.append([i])
    return [np.array(g) for g in members]


def _typical_step(groups: list[tuple[np.ndarray, np.ndarray]], thickness: np.ndarray) -> float:
    """Median step between neighbouring planes of one orientation, over the series;
    the median SliceThickness when no orientation has two planes; NaN when unknown."""
    steps = np.concatenate([np.diff(along) for _, along in groups] + [np.empty(0)])
    steps = steps[steps > DUPLICATE_POSITION_MM]
    if len(steps):
        return float(np.median(steps))
    known = thickness[np.isfinite(thickness)]
    return float(np.median(known)) if len(known) else float("nan")


def _stacks(geometry: SeriesGeometry) -> list[_Stack]:
    """The stacks of :func:`split_stacks`, with their axes and positions."""
    normals, centres = geometry.normals, geometry.centres
    groups = []
    for idx in _orientation_groups(normals):
        axis = _oriented((normals[idx] * np.sign(normals[idx] @ normals[idx[0]])[:, None])
                         .mean(axis=0))
        along = centres[idx] @ axis
        order = np.argsort(along, kind="stable")  # ties: lower instance first
        groups.append((axis, idx[order], along[order]))
    typical = _typical_step([(i, a) for _, i, a in groups], geometry.slice_thickness)
    stacks = []
    for axis, idx, along in groups:
        cuts = np.flatnonzero(np.diff(along) > STACK_GAP_FACTOR * typical) + 1
        for part_idx, part_along in zip(np.split(idx, cuts), np.split(along, cuts),
                                        strict=True):
            own = np.diff(part_along)
            own = own[own > DUPLICATE_POSITION_MM]
            step = float(np.median(own)) if len(own) else typical
            stacks.append(_Stack(part_idx, axis, part_along,
                                 0.0 if np.isnan(step) else step / 2))
    reference = _oriented(np.mean([s.axis for s in stacks], axis=0))
    return sorted(stacks, key=lambda s: float(centres[s.indices].mean(axis=0) @ reference))


def split_stacks(geometry: SeriesGeometry) -> list[np.ndarray]:
    """Group a series' slices into stacks, each in spatial order.

    The rule:

    1. *Orientation*: a slice joins the first group (taking slices by instance number)
       whose first slice's normal is within :data:`SAME_STACK_DEG` degrees of its own,
       whatever the sign of either normal (an IOP with its column direction reversed is
       the same plane family).
    2. *Axis*: each group's axis is the mean of its normals turned to its largest
       component being positive: toward the head for axial slices (toward the
       patient's left for sagittal ones, the back for coronal ones), in LPS.
    3. *Runs*: along that axis, the image centres (:attr:`SeriesGeometry.centres`, not
       the IPP corners, which a tilt moves) are sorted (ties by instance number); the
       typical step is the median step between neighbours of one group over the whole
       series (the median ``SliceThickness`` where no group has two planes); a step
       more than :data:`STACK_GAP_FACTOR` times that starts a new stack.

    Parameters
    ----------
    geometry : SeriesGeometry

    Returns
    -------
    list of (K,) int ndarray
        Indices into ``geometry`` (not instance numbers), each stack ascending along
        its axis (feet to head for axial), the stacks ordered by the mean of their image
        centres along the mean of the stacks' axes.

    Examples
    --------
    Two stacks of two slices, 4 mm apart within a stack, 30 mm between them; instance
    numbers run toward the feet:

    >>> g = SeriesGeometry("ax", instance_numbers=[1, 2, 3, 4],
    ...                    positions=[[0, 0, 34], [0, 0, 30], [0, 0, 4], [0, 0, 0]],
    ...                    orientations=[[1, 0, 0, 0, 1, 0]] * 4,
    ...                    pixel_spacing=[[0.5, 0.5]] * 4, shapes=[[16, 16]] * 4)
    >>> [g.instance_numbers[s].tolist() for s in split_stacks(g)]
    [[4, 3], [2, 1]]
    """
    return [s.indices for s in _stacks(geometry)]


# ----------------------------------------------------------------------------- nearest slice


@dataclass(frozen=True)
class NearestSlice:
    """The slice of a series whose plane lies nearest a point (see :func:`nearest_slice`).

    Attributes
    ----------
    instance_number : int
    stack : int
        Index into :func:`split_stacks` of the series.
    index : int
        Index of the slice in the :class:`SeriesGeometry`.
    distance_mm : float
        Signed distance of the point from the slice's plane, along the stack's axis
        (+ toward the head for an axial stack).
    inside : bool
        Whether the point lies within its stack: within the stack's extent along its
        axis padded by half its step, and over the slice's image (x in
        [-0.5, Columns - 0.5], y in [-0.5, Rows - 0.5]).
    x, y : float
        The pixel of the slice the point projects onto (along the normal).
    """

    instance_number: int
    stack: int
    index: int
    distance_mm: float
    inside: bool
    x: float
    y: float


def _as_point(point, geometry: SeriesGeometry) -> np.ndarray:
    """``point`` as (3,) finite floats, or ValueError naming the series."""
    p = np.asarray(point, dtype=float)
    if p.shape != (3,) or not np.isfinite(p).all():
        raise ValueError(f"A point for series {geometry.series_dir} must be 3 finite mm, "
                         f"got {p.tolist()}")
    return p


def _on_image(geometry: SeriesGeometry, i: int, x: float, y: float) -> bool:
    """Whether (x, y) lies on slice ``i``'s pixels (their edges, not only centres)."""
    rows, cols = geometry.shapes[i]
    return bool(-0.5 <= x <= cols - 0.5 and -0.5 <= y <= rows - 0.5)


def nearest_slice(geometry: SeriesGeometry, point) -> NearestSlice:
    """The slice whose plane lies nearest a patient-space point, within its stack.

    The rule: the stacks of :func:`split_stacks` *contain* the point when it lies within
    the stack's extent along its axis (first to last image centre, each end padded by half the
    stack's median step) and its nearest plane's image covers the point's projection.
    Among the slices of the stacks that contain it, the one of least |distance| wins; if
    none contains it, the one of least |distance| of the whole series, with
    ``inside=False``. Ties (|distance| equal within 1e-6 mm, e.g. a point midway between
    two planes) go to the lower instance number. Distances are from each slice's plane,
    not its IPP: on a tilted stack the nearest IPP height is not the nearest plane.

    Parameters
    ----------
    geometry : SeriesGeometry
        Usually an axial series (one contiguous stack, or several per-disc stacks).
    point : (3,) array_like
        mm, in the series' frame of reference (see :func:`check_same_frame`), e.g. from
        :func:`pixel_to_patient` on a sagittal slice.

    Returns
    -------
    NearestSlice

    Examples
    --------
    Three untilted slices 4 mm apart, instances running toward the feet:

    >>> g = SeriesGeometry("ax", instance_numbers=[1, 2, 3],
    ...                    positions=[[0, 0, 8], [0, 0, 4], [0, 0, 0]],
    ...                    orientations=[[1, 0, 0, 0, 1, 0]] * 3,
    ...                    pixel_spacing=[[0.5, 0.5]] * 3, shapes=[[16, 16]] * 3)
    >>> hit = nearest_slice(g, [2.0, 3.0, 5.0])
    >>> hit.instance_number, hit.distance_mm, hit.inside, hit.x, hit.y
    (2, 1.0, True, 4.0, 6.0)
    >>> nearest_slice(g, [2.0, 3.0, 11.0]).inside  # more than 2 mm above the top plane
    False
    """
    p = _as_point(point, geometry)
    stacks = _stacks(geometry)
    hits = []
    for k, st in enumerate(stacks):
        normals = geometry.normals[st.indices]
        signs = np.sign(normals @ st.axis)
        dist = np.einsum("ij,ij->i", p - geometry.positions[st.indices], normals) * signs
        j = int(np.lexsort((geometry.instance_numbers[st.indices],
                            np.round(np.abs(dist) / _TIE_MM)))[0])
        i = int(st.indices[j])
        x, y, _ = patient_to_pixel(geometry, int(geometry.instance_numbers[i]), p)
        along = p @ st.axis
        inside = bool(st.along[0] - st.half_step <= along <= st.along[-1] + st.half_step
                      and _on_image(geometry, i, x, y))
        hits.append(NearestSlice(int(geometry.instance_numbers[i]), k, i, float(dist[j]),
                                 inside, float(x), float(y)))
    return min([h for h in hits if h.inside] or hits,
               key=lambda h: (round(abs(h.distance_mm) / _TIE_MM), h.instance_number))


def check_same_frame(a: SeriesGeometry, b: SeriesGeometry, *, study_id) -> None:
    """Refuse two series whose coordinates cannot be compared.

    Both series must share one ``FrameOfReferenceUID`` for a point of one to mean
    anything in the other. A series without one is unknown, not a mismatch: nothing is
    raised (RSNA's files keep the tag, anonymised but consistent within a study).

    Raises
    ------
    DataError
        One line naming the study, both series folders and both UIDs, when both series
        have a ``FrameOfReferenceUID`` and they differ.

    Examples
    --------
    >>> kw = dict(instance_numbers=[1], positions=[[0, 0, 0]],
    ...           orientations=[[1, 0, 0, 0, 1, 0]], pixel_spacing=[[1, 1]],
    ...           shapes=[[4, 4]])
    >>> check_same_frame(SeriesGeometry("a", frames_of_reference=("1.2",), **kw),
    ...                  SeriesGeometry("b", **kw), study_id=7)  # b unknown: fine
    >>> check_same_frame(SeriesGeometry("a", frames_of_reference=("1.2",), **kw),
    ...                  SeriesGeometry("b", frames_of_reference=("1.3",), **kw),
    ...                  study_id=7)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    lss.errors.DataError: Study 7: series a and b have different FrameOfReferenceUIDs (1.2, ...
    """
    fa, fb = a.frame_of_reference, b.frame_of_reference
    if None not in (fa, fb) and fa != fb:
        raise DataError(f"Study {study_id}: series {a.series_dir} and {b.series_dir} have "
                        f"different FrameOfReferenceUIDs ({fa}, {fb}): a point of one "
                        f"cannot be placed in the other")
