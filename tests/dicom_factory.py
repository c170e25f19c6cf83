"""Tiny DICOM files for tests, written with pydicom (no phantom, no real data).

Each function writes exactly what a test needs to control: geometry, rescale,
photometric interpretation, transfer syntax, missing pixel data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import JPEG2000, ExplicitVRLittleEndian, MRImageStorage, generate_uid


def write_slice(
    path: Path,
    pixels: np.ndarray,
    *,
    instance: int,
    position: tuple[float, float, float],
    orientation: tuple[float, ...] = (1, 0, 0, 0, 1, 0),
    spacing: tuple[float, float] = (0.7, 0.7),
    slope: float = 1.0,
    intercept: float = 0.0,
    photometric: str = "MONOCHROME2",
    transfer_syntax: str = ExplicitVRLittleEndian,
    with_pixels: bool = True,
    series_uid: str | None = None,
) -> Path:
    """Write one MR slice; ``pixels`` are the stored (pre-rescale) uint16 values.

    ``series_uid`` sets SeriesInstanceUID (left out by default, as lss does not need it).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.SeriesDescription = "Axial T2"
    if series_uid is not None:
        ds.SeriesInstanceUID = series_uid
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.PixelSpacing = [float(v) for v in spacing]
    ds.SliceThickness = 4.0
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    if with_pixels:
        if transfer_syntax == ExplicitVRLittleEndian:
            ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint16).tobytes()
        else:  # encapsulated bytes that only a real codec could decode
            from pydicom.encaps import encapsulate

            ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\0" * 64])
            ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def write_series(
    folder: Path,
    n: int = 6,
    *,
    shape: tuple[int, int] = (16, 16),
    first_instance: int = 1,
    instances_toward_feet: bool = True,
    shuffle_names: bool = False,
    tilt_deg: float = 0.0,
    seed: int = 0,
    **kwargs,
) -> list[float]:
    """Write ``n`` slices whose pixel value encodes their spatial rank.

    Slice at z = 4*k (k = 0..n-1, k = 0 lowest) has every pixel equal to 100*(k+1), so a
    correctly ordered volume has increasing means. Instance numbers run opposite to z
    when ``instances_toward_feet`` (as often in RSNA data). File names are the instance
    numbers, or random names when ``shuffle_names``. Returns the z positions.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.deg2rad(tilt_deg)
    orientation = (1, 0, 0, 0, np.cos(t), np.sin(t))
    names = rng.permutation(n) + 1000 if shuffle_names else None
    zs = []
    for k in range(n):
        inst = first_instance + (n - 1 - k if instances_toward_feet else k)
        z = 4.0 * k
        name = f"{names[k]}.dcm" if names is not None else f"{inst}.dcm"
        write_slice(folder / name, np.full(shape, 100 * (k + 1), np.uint16), instance=inst,
                    position=(0.0, 0.0, z), orientation=orientation, **kwargs)
        zs.append(z)
    return zs


def write_tables(root: Path, studies: dict[int, dict]) -> None:
    """Write the three RSNA tables for ``studies``.

    ``studies[study_id] = {"label": "Moderate" | None, "series": [(series_id, desc)],
    "coord": (series_id, instance, x, y) | None}``; every other label is Normal/Mild.
    """
    import pandas as pd

    from lss.data.tables import TRAIN_COLUMNS

    train, series, coords = [], [], []
    for sid, s in studies.items():
        row = {c: "Normal/Mild" for c in TRAIN_COLUMNS[1:]}
        row["study_id"] = sid
        row["left_subarticular_stenosis_l4_l5"] = s.get("label")
        train.append(row)
        series += [(sid, ser, desc) for ser, desc in s["series"]]
        if s.get("coord"):
            ser, inst, x, y = s["coord"]
            coords.append((sid, ser, inst, "Left Subarticular Stenosis", "L4/L5", x, y))
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(train, columns=list(TRAIN_COLUMNS)).to_csv(root / "train.csv", index=False)
    pd.DataFrame(series, columns=["study_id", "series_id", "series_description"]).to_csv(
        root / "train_series_descriptions.csv", index=False)
    pd.DataFrame(coords, columns=["study_id", "series_id", "instance_number", "condition",
                                  "level", "x", "y"]).to_csv(
        root / "train_label_coordinates.csv", index=False)


def rewrite(path: Path, transfer_syntax: str) -> Path:
    """Save a file again in another (uncompressed) transfer syntax: Implicit VR files take
    pydicom's path through :mod:`lss.data.dicom`, Explicit VR LE ones the fast parser."""
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.save_as(path, enforce_file_format=True)
    return path


def patch_bytes(path: Path, old: bytes, new: bytes) -> Path:
    """Replace the one occurrence of ``old`` in a file by ``new`` of the same length, as a
    broken writer (or a hand edit) leaves a value, without pydicom validating it."""
    raw = path.read_bytes()
    assert len(old) == len(new) and raw.count(old) == 1, (old, raw.count(old))
    path.write_bytes(raw.replace(old, new))
    return path


__all__ = ["write_slice", "write_series", "write_tables", "rewrite", "patch_bytes", "pydicom",
           "JPEG2000"]


def write_labelled_root(root: Path, n_studies: int = 16, *, n_slices: int = 4, size: int = 16,
                        seed: int = 0) -> Path:
    """A small learnable dataset: a bright square on the image right grows with severity."""
    rng = np.random.default_rng(seed)
    studies = {}
    names = ("Normal/Mild", "Moderate", "Severe")
    for k in range(n_studies):
        sid, ser = 1000 + k, 5000 + k
        label = k % 3
        studies[sid] = {"label": names[label], "series": [(ser, "Axial T2")],
                        "coord": (ser, 1 + n_slices // 2, size * 0.75, size / 2)}
        folder = root / "train_images" / str(sid) / str(ser)
        for z in range(n_slices):
            img = rng.integers(0, 200, (size, size)).astype(np.uint16)
            half = 1 + label * size // 8
            c = size // 2
            img[c - half:c + half, size * 3 // 4 - half:size * 3 // 4 + half] += 1500
            write_slice(folder / f"{z + 1}.dcm", img, instance=z + 1, position=(0, 0, 4.0 * z))
    write_tables(root, studies)
    return root


def set_tags(path: Path, **tags) -> Path:
    """Rewrite a file with ``tags`` set by keyword (``FrameOfReferenceUID="1.2.3"``);
    ``None`` removes a tag, as a writer that leaves one out does."""
    ds = pydicom.dcmread(path)
    for keyword, value in tags.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_stack(
    folder: Path,
    positions,
    *,
    instances,
    orientation: tuple[float, ...] = (1, 0, 0, 0, 1, 0),
    shape: tuple[int, int] = (16, 16),
    spacing: tuple[float, float] = (0.7, 0.7),
    frame_uid: str | None = None,
) -> list[Path]:
    """Write one slice per ImagePositionPatient in ``positions``, all in one orientation,
    named by instance number; ``frame_uid`` sets FrameOfReferenceUID (absent by default).

    Several calls on one folder make one series of several stacks (RSNA's per-disc axial
    stacks); a sagittal series is ``orientation=(0, 1, 0, 0, 0, -1)``.
    """
    paths = []
    for pos, inst in zip(positions, instances, strict=True):
        path = write_slice(folder / f"{inst}.dcm", np.zeros(shape, np.uint16), instance=int(inst),
                           position=tuple(float(v) for v in pos),
                           orientation=tuple(float(v) for v in orientation), spacing=spacing)
        if frame_uid is not None:
            set_tags(path, FrameOfReferenceUID=frame_uid)
        paths.append(path)
    return paths


#: Sagittal slices: rows run head to foot (-z), columns anterior to posterior (+y).
SAGITTAL_ORIENTATION = (0, 1, 0, 0, 0, -1)


def write_level_root(root: Path, n_studies: int = 16, *, shape: tuple[int, int] = (40, 24),
                     n_slices: int = 4, spacing: tuple[float, float] = (0.8, 0.5),
                     missing: dict[int, tuple[str, ...]] | None = None,
                     seed: int = 0) -> Path:
    """Studies whose Sagittal T2/STIR series shows the five disc levels as bright squares.

    Study ``1000 + k`` has series ``5000 + k`` (Sagittal T2/STIR, ``n_slices`` slices along
    the patient's x, instance numbers 10, 11, ... running opposite to x) and an Axial T2
    series ``7000 + k`` listed in the tables only. Level ``i`` sits at column ``cx``
    and row ``top + 6 i`` (``cx``, ``top`` drawn per study; brightness grows with ``i``).
    Its "Spinal Canal Stenosis" row names instance 11 and that (x, y), except for the
    levels ``missing[k]`` lists. Returns ``root``.
    """
    import pandas as pd

    from lss.config import LEVELS
    from lss.data.tables import TRAIN_COLUMNS

    rng = np.random.default_rng(seed)
    rows, cols = shape
    missing = missing or {}
    series, coords = [], []
    for k in range(n_studies):
        sid, ser = 1000 + k, 5000 + k
        cx, top = int(rng.integers(4, cols - 4)), int(rng.integers(4, rows - 28))
        folder = root / "train_images" / str(sid) / str(ser)
        for z in range(n_slices):
            img = rng.integers(0, 100, shape).astype(np.uint16)
            for i in range(len(LEVELS)):
                y = top + 6 * i
                img[y - 1:y + 2, cx - 1:cx + 2] += 400 * (i + 2)
            write_slice(folder / f"{z}.dcm", img, instance=10 + n_slices - 1 - z,
                        position=(4.0 * z, 0.0, 0.0), orientation=SAGITTAL_ORIENTATION,
                        spacing=spacing)
        series += [(sid, ser, "Sagittal T2/STIR"), (sid, 7000 + k, "Axial T2")]
        coords += [(sid, ser, 11, "Spinal Canal Stenosis", lv, float(cx), float(top + 6 * i))
                   for i, lv in enumerate(LEVELS) if lv not in missing.get(k, ())]
    root.mkdir(parents=True, exist_ok=True)
    train = pd.DataFrame([{"study_id": 1000 + k, **{c: "Normal/Mild" for c in TRAIN_COLUMNS[1:]}}
                          for k in range(n_studies)], columns=list(TRAIN_COLUMNS))
    train.to_csv(root / "train.csv", index=False)
    pd.DataFrame(series, columns=["study_id", "series_id", "series_description"]).to_csv(
        root / "train_series_descriptions.csv", index=False)
    pd.DataFrame(coords, columns=["study_id", "series_id", "instance_number", "condition",
                                  "level", "x", "y"]).to_csv(
        root / "train_label_coordinates.csv", index=False)
    return root
