"""Tests of the synthetic DICOM phantom (lss.phantom) and its CLI."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.pixels import apply_rescale

from lss.config import CONDITIONS, LEVELS, SERIES_DESCRIPTIONS, SEVERITIES, column_name
from lss.phantom import (
    LANDMARKS,
    MARKER_NAME,
    is_phantom,
    labelled_axial_slice,
    make_phantom,
    read_marker,
    render_axial,
    sample_tables,
)
from lss.phantom.plan import plan_sampled_study
from lss.phantom.stats import LABEL_PERCENT, label_columns

REPO = Path(__file__).resolve().parents[1]
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"


def _labels_dir() -> Path | None:
    for cand in (
        os.environ.get("LSS_RSNA_LABELS"),
        Path(__file__).parents[2] / "shared" / "rsna2024-labels",
    ):
        if cand and (Path(cand) / "train_label_coordinates.csv").is_file():
            return Path(cand)
    return None


LABELS_DIR = _labels_dir()
needs_labels = pytest.mark.skipif(
    LABELS_DIR is None,
    reason="real RSNA 2024 label tables not found "
    "(set LSS_RSNA_LABELS or place them in ../shared/rsna2024-labels)",
)


def _digest(root: Path) -> dict[str, str]:
    """sha256 of every file under root except the marker (which holds a timestamp)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MARKER_NAME
    }


def _disc_mean(
    img: np.ndarray, x: float, y: float, radius_px: float, inner_px: float = 0.0
) -> float:
    rr, cc = np.ogrid[: img.shape[0], : img.shape[1]]
    d2 = (cc - x) ** 2 + (rr - y) ** 2
    mask = (d2 <= radius_px**2) & (d2 >= inner_px**2)
    return float(img[mask].mean())


def _read(root: Path, split: str, study: int, series: int, inst: int) -> pydicom.Dataset:
    return pydicom.dcmread(root / f"{split}_images" / str(study) / str(series) / f"{inst}.dcm")


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("phantom") / "small"
    return make_phantom(root, n_studies=6, seed=3, n_test_studies=2, workers=1)


# ----------------------------------------------------------------------------- tables


def test_tables_have_the_kaggle_columns_and_spellings(small):
    train = pd.read_csv(small / "train.csv")
    series = pd.read_csv(small / "train_series_descriptions.csv")
    coords = pd.read_csv(small / "train_label_coordinates.csv")
    test = pd.read_csv(small / "test_series_descriptions.csv")
    sub = pd.read_csv(small / "sample_submission.csv")

    expected = ["study_id"] + [column_name(c, lvl) for c in CONDITIONS for lvl in LEVELS]
    assert list(train.columns) == expected
    assert expected[1:6] == [
        f"spinal_canal_stenosis_{s}" for s in ("l1_l2", "l2_l3", "l3_l4", "l4_l5", "l5_s1")
    ]
    assert (
        len(train) == 6
        and train["study_id"].is_unique
        and train["study_id"].is_monotonic_increasing
    )
    values = set(pd.unique(train.iloc[:, 1:].to_numpy().ravel()))
    assert {v for v in values if isinstance(v, str)} <= set(SEVERITIES)

    assert list(series.columns) == ["study_id", "series_id", "series_description"]
    assert set(series["series_description"]) <= set(SERIES_DESCRIPTIONS)
    assert series["series_id"].is_unique
    counts = series.groupby(["study_id", "series_description"]).size().unstack(fill_value=0)
    assert (counts["Sagittal T1"] == 1).all() and (counts["Sagittal T2/STIR"] == 1).all()
    assert (counts["Axial T2"] >= 1).all()
    assert set(series["study_id"]) == set(train["study_id"])

    assert list(coords.columns) == [
        "study_id",
        "series_id",
        "instance_number",
        "condition",
        "level",
        "x",
        "y",
    ]
    assert set(coords["condition"]) <= set(CONDITIONS.values())
    assert set(coords["level"]) <= set(LEVELS)
    assert not coords.duplicated(["study_id", "condition", "level"]).any()
    kind = coords.merge(series, on=["study_id", "series_id"], how="left")["series_description"]
    assert kind.notna().all()
    expected_kind = {
        "Left Subarticular Stenosis": "Axial T2",
        "Right Subarticular Stenosis": "Axial T2",
        "Spinal Canal Stenosis": "Sagittal T2/STIR",
        "Left Neural Foraminal Narrowing": "Sagittal T1",
        "Right Neural Foraminal Narrowing": "Sagittal T1",
    }
    assert (coords["condition"].map(expected_kind) == kind.to_numpy()).all()
    # A coordinate row only for a labelled cell.
    long = train.melt(id_vars="study_id", var_name="col", value_name="grade")
    inv = {v: k for k, v in CONDITIONS.items()}
    coords["col"] = [
        column_name(inv[c], lvl)
        for c, lvl in zip(coords["condition"], coords["level"], strict=True)
    ]
    merged = coords.merge(long, on=["study_id", "col"])
    assert merged["grade"].notna().all()

    assert len(set(test["study_id"])) == 2 and not set(test["study_id"]) & set(train["study_id"])
    assert len(sub) == 2 * 25 and list(sub.columns) == [
        "row_id",
        "normal_mild",
        "moderate",
        "severe",
    ]


def test_sample_tables_match_make_phantom(small):
    tables = sample_tables(6, seed=3, n_test_studies=2)
    for name in (
        "train.csv",
        "train_series_descriptions.csv",
        "train_label_coordinates.csv",
        "test_series_descriptions.csv",
    ):
        on_disk = pd.read_csv(small / name)
        pd.testing.assert_frame_equal(
            on_disk, pd.read_csv(io.StringIO(tables[name].to_csv(index=False)))
        )


@pytest.fixture(scope="module")
def big_tables() -> dict[str, pd.DataFrame]:
    """The tables of a 1500-study sampled phantom (no images: cheap)."""
    return sample_tables(1500, seed=11)


def test_label_frequencies_are_close_to_the_real_marginals(big_tables):
    train = big_tables["train.csv"]
    for col in label_columns():
        counts = train[col].value_counts()
        labelled = counts.sum()
        for grade, pct in zip(SEVERITIES, LABEL_PERCENT[col][:3], strict=True):
            got = 100 * counts.get(grade, 0) / labelled
            assert abs(got - pct) < 4.0, (col, grade, got, pct)
        missing = 100 * train[col].isna().mean()
        assert abs(missing - LABEL_PERCENT[col][3]) < 2.5, (col, missing)
    cells = train.iloc[:, 1:].to_numpy().ravel()
    cells = cells[pd.notna(cells)]
    overall = [100 * np.mean(cells == g) for g in SEVERITIES]
    np.testing.assert_allclose(overall, [77.4, 16.3, 6.3], atol=1.5)
    # Severities cluster within a study (a degeneration factor): the L4/L5 subarticular
    # grades of the two sides agree more often than independent draws would.
    left = train["left_subarticular_stenosis_l4_l5"].map({g: i for i, g in enumerate(SEVERITIES)})
    right = train["right_subarticular_stenosis_l4_l5"].map({g: i for i, g in enumerate(SEVERITIES)})
    assert left.corr(right) > 0.3


def test_series_structure_like_the_real_tables(big_tables):
    tables = big_tables
    series, coords = tables["train_series_descriptions.csv"], tables["train_label_coordinates.csv"]
    n_axial = series[series["series_description"] == "Axial T2"].groupby("study_id").size()
    frac = n_axial.value_counts(normalize=True)
    assert abs(frac.get(1, 0) - 0.83) < 0.04 and abs(frac.get(2, 0) - 0.155) < 0.04
    assert 0.003 < frac.get(3, 0) < 0.04
    assert (series["study_id"] < 2**32).all() and series["series_id"].is_unique
    # Studies with several axial series use more than one of them in their coordinate rows.
    sub = coords[coords["condition"].str.contains("Subarticular")]
    used = sub.groupby("study_id")["series_id"].nunique()
    multi = n_axial[n_axial >= 2].index
    assert (used.reindex(multi).fillna(0) >= 2).mean() > 0.4
    assert (sub.groupby("study_id")["series_id"].nunique() >= 1).all()


# ----------------------------------------------------------------------------- DICOM


def test_every_dicom_reads_without_force_and_has_the_tags(small):
    series = pd.concat(
        [
            pd.read_csv(small / "train_series_descriptions.csv").assign(split="train"),
            pd.read_csv(small / "test_series_descriptions.csv").assign(split="test"),
        ]
    )
    sop_uids = set()
    n_files = 0
    for row in series.itertuples():
        folder = small / f"{row.split}_images" / str(row.study_id) / str(row.series_id)
        files = sorted(folder.glob("*.dcm"))
        assert files, folder
        study_uids, series_uids = set(), set()
        for path in files:
            ds = pydicom.dcmread(path)  # no force=True
            n_files += 1
            assert ds.preamble == b"\0" * 128
            assert ds.file_meta.MediaStorageSOPClassUID == MR_IMAGE_STORAGE
            assert ds.file_meta.TransferSyntaxUID == EXPLICIT_VR_LE
            assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
            assert ds.SOPClassUID == MR_IMAGE_STORAGE and ds.Modality == "MR"
            sop_uids.add(ds.SOPInstanceUID)
            study_uids.add(ds.StudyInstanceUID)
            series_uids.add(ds.SeriesInstanceUID)
            assert ds.SeriesDescription == row.series_description
            assert int(ds.InstanceNumber) == int(path.stem)
            assert isinstance(ds.SeriesNumber, int) or int(ds.SeriesNumber) >= 1
            iop = np.asarray(ds.ImageOrientationPatient, float)
            assert len(ds.ImagePositionPatient) == 3 and iop.shape == (6,)
            np.testing.assert_allclose(
                [np.linalg.norm(iop[:3]), np.linalg.norm(iop[3:])], 1, atol=1e-5
            )
            assert abs(iop[:3] @ iop[3:]) < 1e-5
            spacing = [float(v) for v in ds.PixelSpacing]
            assert spacing[0] == spacing[1] and 0.2 < spacing[0] < 2.0
            assert 2.5 <= float(ds.SliceThickness) <= 5 and float(ds.SpacingBetweenSlices) >= float(
                ds.SliceThickness
            )
            assert ds.SamplesPerPixel == 1 and ds.PhotometricInterpretation == "MONOCHROME2"
            assert (
                ds.BitsAllocated == 16
                and ds.BitsStored in (12, 16)
                and ds.HighBit == ds.BitsStored - 1
            )
            assert ds.PixelRepresentation == 0
            assert float(ds.RescaleIntercept) == 0 and float(ds.RescaleSlope) > 0
            arr = ds.pixel_array
            assert arr.dtype == np.uint16 and arr.shape == (ds.Rows, ds.Columns)
            assert int(arr.max()) < 2**ds.BitsStored and arr.max() > 0
            if row.series_description == "Axial T2":
                # Columns toward the patient's left, rows toward the back (tilted about x at most).
                np.testing.assert_allclose(iop[:3], [1, 0, 0], atol=1e-6)
                assert iop[4] > 0.9 and abs(iop[3]) < 1e-6
            else:
                np.testing.assert_allclose(iop, [0, 1, 0, 0, 0, -1], atol=1e-6)
        assert len(study_uids) == 1 and len(series_uids) == 1
    assert len(sop_uids) == n_files  # unique SOPInstanceUIDs


def test_dicom_bytes_are_what_pydicom_writes(small):
    path = next((small / "train_images").rglob("*.dcm"))
    raw = path.read_bytes()
    ds = pydicom.dcmread(path)
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    assert buf.getvalue() == raw


def test_the_lss_loader_orders_slices_in_space(small):
    from lss.data import read_series

    series = pd.read_csv(small / "train_series_descriptions.csv")
    for row in series[series["series_description"] == "Axial T2"].itertuples():
        s = read_series(small / "train_images" / str(row.study_id) / str(row.series_id))
        steps = np.diff(s.instance_numbers)
        # Instance numbers run monotonically through space, one way or the other.
        assert (steps > 0).all() or (steps < 0).all(), s.instance_numbers
        assert s.volume.dtype == np.float32 and s.volume.max() > 100


def test_geometry_and_numbering_vary_like_real_series():
    plans = [
        plan_sampled_study(
            1000 + i, [10 + 5 * i + k for k in range(5)], np.random.SeedSequence([7, i])
        )
        for i in range(80)
    ]
    axial = [s for p in plans for s in p.series if s.is_axial]
    starts = {s.slices[0].instance_number for s in axial}
    assert 1 in starts and any(v > 1 for v in starts)
    tilted = [s for s in axial if any(abs(sl.orientation[5]) > 1e-6 for sl in s.slices)]
    flat = [
        s for s in axial if all(sl.orientation == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0) for sl in s.slices)
    ]
    assert tilted and flat
    # Angled stacks: one normal per disc, different between discs.
    assert any(len({sl.orientation for sl in s.slices}) >= 3 for s in tilted)
    # Instance numbers increase toward the feet in most series, toward the head in some.
    directions = set()
    for s in axial:
        z = [sl.position[2] for sl in s.slices]
        directions.add(bool(np.all(np.diff(z) < 0)) if len(z) > 1 else None)
    assert {True, False} <= directions
    sizes = {(s.header.rows, s.header.columns) for s in axial}
    assert len({c for _, c in sizes}) >= 3 and any(r != c for r, c in sizes)
    assert any(s.header.rescale_slope != 1.0 for p in plans for s in p.series)
    assert {s.header.bits_stored for p in plans for s in p.series} == {12, 16}
    assert all(0.42 <= s.header.pixel_spacing <= 0.8 for s in axial)


def test_coordinates_lie_inside_the_referenced_instance(small):
    coords = pd.read_csv(small / "train_label_coordinates.csv")
    assert len(coords) > 0
    for r in coords.itertuples():
        ds = _read(small, "train", r.study_id, r.series_id, r.instance_number)
        assert 0 <= r.x < ds.Columns and 0 <= r.y < ds.Rows, r
    sub = coords[coords["condition"].str.contains("Subarticular")]
    pairs = sub.pivot_table(
        index=["study_id", "series_id", "level"], columns="condition", values="x"
    ).dropna()
    # The patient's left is on the image's right.
    assert (pairs["Left Subarticular Stenosis"] > pairs["Right Subarticular Stenosis"]).all()


# ----------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = make_phantom(tmp_path / "a", n_studies=2, seed=21, n_test_studies=1, workers=1)
    b = make_phantom(tmp_path / "b", n_studies=2, seed=21, n_test_studies=1, workers=1)
    c = make_phantom(tmp_path / "c", n_studies=2, seed=22, n_test_studies=1, workers=1)
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert da == db
    assert (a / "train.csv").read_bytes() != (c / "train.csv").read_bytes()
    assert not set(da.values()) & {v for k, v in dc.items() if k.endswith(".dcm")}


def test_worker_count_does_not_change_the_result(tmp_path):
    one = make_phantom(tmp_path / "one", n_studies=3, seed=4, n_test_studies=1, workers=1)
    two = make_phantom(tmp_path / "two", n_studies=3, seed=4, n_test_studies=1, workers=2)
    assert _digest(one) == _digest(two)


# ----------------------------------------------------------------------------- severity in pixels


def test_left_subarticular_severity_darkens_the_left_recess_only():
    for seed in range(6):
        mild = render_axial(left=0.1, seed=seed, shape=(320, 320), pixel_spacing=0.6)
        severe = render_axial(left=0.9, seed=seed, shape=(320, 320), pixel_spacing=0.6)
        r = 3.0 / 0.6  # 3 mm
        assert severe.left_recess == mild.left_recess
        assert _disc_mean(severe.image, *severe.left_recess, r) < 0.8 * _disc_mean(
            mild.image, *mild.left_recess, r
        )
        # The image's right is the patient's left.
        assert mild.left_recess[0] > mild.right_recess[0]
        # The other side is untouched, pixel for pixel.
        x, y = (int(round(v)) for v in mild.right_recess)
        w = int(r) + 2
        np.testing.assert_array_equal(
            severe.image[y - w : y + w, x - w : x + w], mild.image[y - w : y + w, x - w : x + w]
        )


def test_canal_severity_shrinks_the_bright_sac():
    for seed in range(4):
        normal = render_axial(canal=0.1, seed=seed, noise=False, pixel_spacing=0.5)
        severe = render_axial(canal=0.9, seed=seed, noise=False, pixel_spacing=0.5)
        cx = (normal.left_recess[0] + normal.right_recess[0]) / 2
        cy = normal.left_recess[1] + 5 / 0.5  # the sac lies behind the recesses
        bright = [(_disc_mean(img.image, cx, cy, 8 / 0.5)) for img in (normal, severe)]
        assert bright[1] < 0.8 * bright[0]
        # Away from the disc the effect fades.
        far_n = render_axial(canal=0.1, seed=seed, noise=False, pixel_spacing=0.5, offset_mm=12)
        far_s = render_axial(canal=0.9, seed=seed, noise=False, pixel_spacing=0.5, offset_mm=12)
        assert (
            abs(_disc_mean(far_s.image, cx, cy, 8 / 0.5) - _disc_mean(far_n.image, cx, cy, 8 / 0.5))
            < 0.02
        )


def test_severity_is_visible_in_the_written_files(tmp_path):
    root = make_phantom(tmp_path / "p", n_studies=14, seed=8, n_test_studies=0, workers=1)
    train = pd.read_csv(root / "train.csv").set_index("study_id")
    coords = pd.read_csv(root / "train_label_coordinates.csv")
    rows = coords[coords["condition"] == "Left Subarticular Stenosis"]
    means: dict[str, list[float]] = {g: [] for g in SEVERITIES}
    for r in rows.itertuples():
        ds = _read(root, "train", r.study_id, r.series_id, r.instance_number)
        img = apply_rescale(ds.pixel_array, ds).astype(float)
        ref = np.percentile(img, 99)  # per-image scale: MRI has no absolute intensity
        radius = 3.0 / float(ds.PixelSpacing[0])
        grade = train.loc[r.study_id, column_name("left_subarticular_stenosis", r.level)]
        means[grade].append(_disc_mean(img, r.x, r.y, radius) / ref)
    assert len(means["Normal/Mild"]) >= 10 and len(means["Severe"]) >= 3, {
        k: len(v) for k, v in means.items()
    }
    assert np.mean(means["Severe"]) < np.mean(means["Moderate"] or means["Severe"]) + 1e-9
    assert np.mean(means["Severe"]) < 0.8 * np.mean(means["Normal/Mild"])


def test_render_axial_validates_and_sizes():
    s = render_axial(shape=(288, 352), seed=2)
    assert s.image.shape == (288, 352) and s.image.dtype == np.float32
    with pytest.raises(ValueError, match="L6/S1"):
        render_axial(level="L6/S1")
    with pytest.raises(ValueError, match="left severity must be in"):
        render_axial(left=1.5)


# ----------------------------------------------------------------------------- landmarks

# Captured from the landmark code as it was in lss.plots (a copy of the renderer's
# numbers) before it moved here and came to read the renderer's own shapes. Only the
# rootlet differs from that copy (by 0.2 and 0.6 px): the copy placed it in a sac of
# normal size, the renderer draws it in the sac that canal stenosis has shrunk.
_LANDMARK_CASES = [
    (
        dict(seed=0, shape=(256, 256), pixel_spacing=0.8, noise=False),
        {
            "intervertebral disc": (128.0, 74.4189452475224),
            "thecal sac (CSF)": (128.0, 103.31778969848011),
            "nerve rootlets": (131.56986705366407, 113.15490412071236),
            "left subarticular recess": (142.07610681896247, 99.67026266926274),
            "right subarticular recess": (113.92389318103753, 99.67026266926274),
            "left facet joint": (146.7651905141419, 113.78167653860226),
            "right facet joint": (109.23480948585812, 113.78167653860226),
            "ligamentum flavum": (136.51345628449917, 116.92292186646176),
            "psoas": (86.31134746491745, 78.6356443729697),
            "multifidus": (146.2680500733123, 161.64755577277722),
            "erector spinae": (60.34055528402847, 163.00074466709665),
            "subcutaneous fat": (128.0, 211.28281850407404),
        },
    ),
    (
        dict(
            seed=3,
            level="L5/S1",
            left=0.8,
            right=0.3,
            canal=0.6,
            shape=(320, 288),
            pixel_spacing=0.7,
            noise=False,
        ),
        {
            "intervertebral disc": (144.0, 101.37515924291921),
            "thecal sac (CSF)": (144.0, 130.95063113553508),
            "nerve rootlets": (142.57884019948574, 139.21533068729363),
            "left subarticular recess": (154.4236049049294, 128.28514718081894),
            "right subarticular recess": (133.5763950950706, 128.28514718081894),
            "left facet joint": (160.45093731169547, 143.5681430776714),
            "right facet joint": (126.4221357261834, 142.73822036318734),
            "ligamentum flavum": (150.30911410654807, 141.36827528185907),
            "psoas": (93.70270490066298, 105.21238336578512),
            "multifidus": (163.02777534091211, 190.77859360270259),
            "erector spinae": (73.52675799662178, 192.18805844277014),
            "subcutaneous fat": (144.0, 234.84906324054202),
        },
    ),
]


@pytest.mark.parametrize(("kwargs", "expected"), _LANDMARK_CASES)
def test_labelled_axial_slice_landmarks_are_where_they_were(kwargs, expected):
    s = labelled_axial_slice(**kwargs)
    assert list(s.landmarks) == list(LANDMARKS) == list(expected)
    for name, xy in expected.items():
        assert s.landmarks[name] == pytest.approx(xy, rel=1e-12, abs=1e-9), name
    assert s.image.shape == kwargs["shape"] and s.level == kwargs.get("level", "L4/L5")
    assert s.pixel_spacing == kwargs["pixel_spacing"]
    # Noise changes the pixels only, not where the structures are.
    noisy = labelled_axial_slice(**{**kwargs, "noise": True})
    assert noisy.landmarks == s.landmarks and not np.array_equal(noisy.image, s.image)


def _value_at(s, name: str) -> float:
    x, y = s.landmarks[name]
    return float(s.image[int(round(y)), int(round(x))])


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize(
    ("seed", "canal", "left", "right"), [(0, 0.1, 0.1, 0.1), (5, 0.7, 0.9, 0.4)]
)
def test_each_landmark_sits_on_the_tissue_it_names(level, seed, canal, left, right):
    s = labelled_axial_slice(
        level=level,
        seed=seed,
        canal=canal,
        left=left,
        right=right,
        shape=(320, 320),
        pixel_spacing=0.7,
        noise=False,
    )
    csf = _value_at(s, "thecal sac (CSF)")
    assert csf >= np.percentile(s.image, 99)  # CSF is the brightest tissue on T2
    assert _value_at(s, "intervertebral disc") < 0.9 * csf  # the disc is darker
    for dark in (
        "psoas", "multifidus", "erector spinae", "ligamentum flavum", "nerve rootlets",
        "left subarticular recess", "right subarticular recess",
    ):  # fmt: skip
        assert _value_at(s, dark) < 0.5 * csf, dark  # muscle, ligament, nerve root
    assert _value_at(s, "subcutaneous fat") > 0.5 * csf
    lm = s.landmarks
    assert lm["left subarticular recess"][0] > lm["right subarticular recess"][0]
    assert lm["left facet joint"][0] > lm["right facet joint"][0]
    assert lm["intervertebral disc"][1] < lm["thecal sac (CSF)"][1] < lm["left facet joint"][1]


def test_a_structure_moved_in_the_renderer_moves_its_landmark(monkeypatch):
    """The landmarks read the renderer's geometry: there is no copy of its numbers to drift."""
    from lss.phantom import axial_geometry

    kwargs = dict(seed=1, shape=(256, 256), pixel_spacing=0.8, noise=False)
    before = labelled_axial_slice(**kwargs)
    u, v, a, b = axial_geometry.MULTIFIDUS_MM
    monkeypatch.setattr(axial_geometry, "MULTIFIDUS_MM", (u + 4.0, v + 6.0, a, b))
    monkeypatch.setattr(axial_geometry, "TRUNK_BACK_MM", axial_geometry.TRUNK_BACK_MM + 9.0)
    after = labelled_axial_slice(**kwargs)
    assert not np.array_equal(after.image, before.image)  # the renderer drew them elsewhere
    (x0, y0), (x1, y1) = before.landmarks["multifidus"], after.landmarks["multifidus"]
    k = (y1 - y0) / 6.0  # pixels per anatomy mm (the slice is not rotated)
    assert k > 0 and x1 - x0 == pytest.approx(4.0 * k)
    (fx0, fy0), (fx1, fy1) = (
        before.landmarks["subcutaneous fat"],
        after.landmarks["subcutaneous fat"],
    )
    assert (fx1, fy1 - fy0) == pytest.approx((fx0, 9.0 * k))
    csf = _value_at(after, "thecal sac (CSF)")
    assert _value_at(after, "multifidus") < 0.5 * csf
    assert _value_at(after, "subcutaneous fat") > 0.5 * csf
    unmoved = set(LANDMARKS) - {"multifidus", "subcutaneous fat"}
    assert {n: after.landmarks[n] for n in unmoved} == {n: before.landmarks[n] for n in unmoved}


# ------------------------------------------------------------------- marker and output dir


def test_marker(small, tmp_path):
    marker = read_marker(small)
    assert marker["generator"] == "lss.phantom" and marker["mode"] == "sampled"
    assert marker["seed"] == 3 and marker["n_studies"] == 6 and marker["tables"] is None
    assert marker["complete"] is True and "created" in marker and "lss_version" in marker
    assert is_phantom(small)
    empty = tmp_path / "real"
    empty.mkdir()
    assert not is_phantom(empty) and read_marker(empty) is None
    (empty / MARKER_NAME).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_marker(empty)
    (empty / MARKER_NAME).write_text(json.dumps({"generator": "someone else"}))
    with pytest.raises(ValueError, match="someone else"):
        is_phantom(empty)
    with pytest.raises(NotADirectoryError, match="nowhere"):
        is_phantom(tmp_path / "nowhere")


def test_refuses_a_non_empty_directory(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=str(out)):
        make_phantom(out, n_studies=1, workers=1)
    with pytest.raises(FileExistsError, match="holds no PHANTOM.json"):
        make_phantom(out, n_studies=1, workers=1, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"

    ph = make_phantom(tmp_path / "ph", n_studies=2, seed=1, n_test_studies=0, workers=1)
    old = set(pd.read_csv(ph / "train.csv")["study_id"])
    with pytest.raises(FileExistsError, match="not empty"):
        make_phantom(ph, n_studies=1, workers=1)
    make_phantom(ph, n_studies=1, seed=2, n_test_studies=0, workers=1, overwrite=True)
    new = set(pd.read_csv(ph / "train.csv")["study_id"])
    assert len(new) == 1 and not old & new
    assert {p.name for p in (ph / "train_images").iterdir()} == {str(s) for s in new}


def test_bad_options_raise():
    with pytest.raises(ValueError, match="study_ids needs tables_dir"):
        make_phantom("/tmp/never", study_ids=[1])
    with pytest.raises(ValueError, match="n_studies must be a positive integer"):
        make_phantom("/tmp/never", n_studies=0)
    with pytest.raises(ValueError, match="workers"):
        make_phantom("/tmp/never", n_studies=1, workers=0)


def test_cli(tmp_path):
    script = REPO / "data_scripts" / "make_phantom.py"
    out = tmp_path / "cli"
    args = [
        sys.executable,
        str(script),
        "--out",
        str(out),
        "--n-studies",
        "2",
        "--n-test-studies",
        "1",
        "--workers",
        "1",
        "--seed",
        "5",
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "train.csv (2 rows)" in done.stdout and " s" in done.stdout
    assert read_marker(out)["seed"] == 5
    again = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert again.returncode != 0 and str(out) in again.stderr


# ----------------------------------------------------------------------------- from the real tables


def _pick_real_studies() -> list[int]:
    series = pd.read_csv(LABELS_DIR / "train_series_descriptions.csv")
    n_axial = series[series["series_description"] == "Axial T2"].groupby("study_id").size()
    singles = n_axial[n_axial == 1].index[:3].tolist()
    multis = n_axial[n_axial == 2].index[:1].tolist() + n_axial[n_axial == 3].index[:1].tolist()
    return [int(s) for s in singles + multis]


@pytest.fixture(scope="module")
def from_tables(tmp_path_factory):
    if LABELS_DIR is None:
        pytest.skip("real RSNA 2024 label tables not found")
    ids = _pick_real_studies()
    root = make_phantom(
        tmp_path_factory.mktemp("ft") / "p", tables_dir=LABELS_DIR, study_ids=ids, seed=0, workers=1
    )
    return root, ids


@needs_labels
def test_from_tables_writes_exactly_their_rows(from_tables):
    root, ids = from_tables
    keep = set(ids)
    for name in ("train.csv", "train_series_descriptions.csv", "train_label_coordinates.csv"):
        real = (LABELS_DIR / name).read_text().splitlines()
        want = [real[0]] + [ln for ln in real[1:] if int(ln.split(",")[0]) in keep]
        assert (root / name).read_text().splitlines() == want, name
    marker = read_marker(root)
    assert marker["mode"] == "from-tables" and marker["study_ids"] == ids
    assert Path(marker["tables"]) == LABELS_DIR.resolve()


@needs_labels
def test_from_tables_build_index_equals_the_real_one(from_tables):
    from lss.data import build_index

    root, ids = from_tables
    for condition, level in (
        ("left_subarticular_stenosis", "L4/L5"),
        ("spinal_canal_stenosis", "L3/L4"),
    ):
        ours = build_index(root, condition, level)
        real = build_index(LABELS_DIR, condition, level, check_images=False)
        real = real[real["study_id"].isin(ids)].reset_index(drop=True)
        ours.attrs, real.attrs = {}, {}
        pd.testing.assert_frame_equal(ours.reset_index(drop=True), real)


@needs_labels
def test_from_tables_instances_exist_and_points_hit_the_recess(from_tables):
    root, ids = from_tables
    coords = pd.read_csv(root / "train_label_coordinates.csv")
    train = pd.read_csv(root / "train.csv").set_index("study_id")
    hits = []
    for r in coords.itertuples():
        ds = _read(root, "train", r.study_id, r.series_id, r.instance_number)
        assert 0 <= r.x < ds.Columns and 0 <= r.y < ds.Rows, r
        if "Subarticular" not in r.condition:
            continue
        side = "left" if r.condition.startswith("Left") else "right"
        grade = train.loc[r.study_id, column_name(f"{side}_subarticular_stenosis", r.level)]
        if grade != "Normal/Mild":
            continue
        img = apply_rescale(ds.pixel_array, ds).astype(float)
        mm = 1.0 / float(ds.PixelSpacing[0])
        # A normal recess: a dark root at the point, bright fat around it.
        hits.append(
            _disc_mean(img, r.x, r.y, 0.8 * mm) < _disc_mean(img, r.x, r.y, 2.8 * mm, 1.8 * mm)
        )
    assert len(hits) >= 10 and np.mean(hits) > 0.8, (len(hits), np.mean(hits))
    # Only a few instances around each referenced one are rendered.
    for (study, series), g in coords.groupby(["study_id", "series_id"]):
        files = {
            int(p.stem) for p in (root / "train_images" / str(study) / str(series)).glob("*.dcm")
        }
        referenced = set(g["instance_number"])
        assert referenced <= files
        assert files <= {i for j in referenced for i in range(j - 3, j + 4)}


def test_workers_from_stdin_fail_clearly(tmp_path):
    code = (
        "from lss.phantom import make_phantom\n"
        f"make_phantom({str(tmp_path / 'p')!r}, n_studies=2, n_test_studies=0, workers=2)\n"
    )
    done = subprocess.run(
        [sys.executable, "-"], input=code, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert "pass workers=1" in done.stderr and "BrokenProcessPool" not in done.stderr
