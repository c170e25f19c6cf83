"""Patient-space geometry (lss.data.geometry) on hand-made studies with known answers."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
from dicom_factory import patch_bytes, set_tags, write_series, write_stack

from lss.data import scan_series
from lss.data.geometry import (
    SeriesGeometry,
    check_same_frame,
    nearest_slice,
    patient_to_pixel,
    pixel_to_patient,
    read_geometry,
    split_stacks,
)
from lss.errors import DataError

SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
FRAME = "1.2.826.0.1.3680043.8.498.42"


def axial_frame(theta_deg: float, *, flip: bool = False):
    """Row direction, column direction and normal of an axial slice tilted about x (the
    phantom's frame); ``flip`` reverses the column direction (the normal then points to
    the feet)."""
    t = np.deg2rad(theta_deg)
    r, c = np.array([1.0, 0, 0]), np.array([0, np.cos(t), np.sin(t)])
    c = -c if flip else c
    return r, c, np.cross(r, c)


def tilted_stack(folder, centre, theta_deg, offsets, instances, *, flip=False, size=64,
                 spacing=1.0, frame_uid=None):
    """Slices whose planes lie at ``offsets`` mm along the normal from ``centre``, with
    ``centre`` on pixel (size/2, size/2) of each: the phantom's per-disc stack."""
    r, c, n = axial_frame(theta_deg, flip=flip)
    half = size / 2 * spacing
    pos = [np.asarray(centre, float) + d * n - half * r - half * c for d in offsets]
    write_stack(folder, pos, instances=instances, orientation=(*r, *c), shape=(size, size),
                spacing=(spacing, spacing), frame_uid=frame_uid)
    return n


def plane_distances(g: SeriesGeometry, point) -> np.ndarray:
    """|distance| of ``point`` from every slice's plane, computed independently."""
    n = np.cross(g.orientations[:, :3], g.orientations[:, 3:])
    return np.abs(np.einsum("ij,ij->i", np.asarray(point) - g.positions, n))


# ----------------------------------------------------------------------------- reading


def test_read_geometry_orders_by_instance_and_keeps_every_tag(tmp_path):
    write_series(tmp_path / "ax", 4, instances_toward_feet=True, spacing=(0.5, 0.8))
    g = read_geometry(tmp_path / "ax")
    assert g.instance_numbers.tolist() == [1, 2, 3, 4]
    assert g.positions[:, 2].tolist() == [12.0, 8.0, 4.0, 0.0]
    assert g.orientations.shape == (4, 6) and g.shapes.tolist() == [[16, 16]] * 4
    assert g.pixel_spacing[0].tolist() == [0.5, 0.8]
    assert g.slice_thickness.tolist() == [4.0] * 4
    assert [p.name for p in g.paths] == ["1.dcm", "2.dcm", "3.dcm", "4.dcm"]
    assert g.frame_of_reference is None  # absent: unknown
    with pytest.raises(ValueError, match="read-only"):
        g.positions[0, 0] = 1.0


def test_a_missing_orientation_names_the_file(tmp_path):
    write_series(tmp_path / "ax", 3)
    set_tags(tmp_path / "ax" / "2.dcm", ImageOrientationPatient=None)
    with pytest.raises(DataError, match=r"ax/2\.dcm: missing DICOM tag\(s\) ImageOrientation"):
        read_geometry(tmp_path / "ax")


def test_a_non_finite_position_names_the_file(tmp_path):
    (path,) = write_stack(tmp_path / "ax", [(0, 0, 1234.5)], instances=[1])
    patch_bytes(path, b"1234.5", b"nan   ")
    with pytest.raises(DataError, match=r"ax/1\.dcm: non-finite ImagePositionPatient"):
        read_geometry(tmp_path / "ax")


def test_other_bad_series_are_refused_with_their_names(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "1.dcm").write_bytes(b"not dicom at all" * 20)
    with pytest.raises(DataError, match=r"Not a DICOM file: .*junk/1\.dcm"):
        read_geometry(tmp_path / "junk")
    write_stack(tmp_path / "dup", [(0, 0, 0)], instances=[3])
    write_stack(tmp_path / "dup2", [(0, 0, 4)], instances=[3])
    shutil.copy(tmp_path / "dup2" / "3.dcm", tmp_path / "dup" / "3b.dcm")
    with pytest.raises(DataError, match="Duplicate instance number 3 in series .*dup"):
        read_geometry(tmp_path / "dup")
    write_stack(tmp_path / "mix", [(0, 0, 0)], instances=[1], frame_uid="1.2.3")
    write_stack(tmp_path / "mix", [(0, 0, 4)], instances=[2], frame_uid="1.2.4")
    with pytest.raises(DataError, match=r"mix mixes FrameOfReferenceUIDs: 2\.dcm"):
        read_geometry(tmp_path / "mix")
    g = read_geometry(tmp_path / "dup2")
    with pytest.raises(DataError, match="Instance 9 not in series .*dup2"):
        pixel_to_patient(g, 9, 0, 0)


# ----------------------------------------------------------------------------- one slice


def test_pixel_spacing_is_row_spacing_then_column_spacing(tmp_path):
    r, c, _ = axial_frame(10.0)
    write_stack(tmp_path / "ax", [(5, -3, 2)], instances=[1], orientation=(*r, *c),
                shape=(20, 30), spacing=(0.5, 0.8))
    g = read_geometry(tmp_path / "ax")
    ipp = np.array([5.0, -3, 2])
    np.testing.assert_allclose(pixel_to_patient(g, 1, 1, 0), ipp + 0.8 * r)  # x: a column
    np.testing.assert_allclose(pixel_to_patient(g, 1, 0, 1), ipp + 0.5 * c)  # y: a row


def test_pixel_patient_pixel_round_trip(tmp_path):
    r, c, n = axial_frame(-17.0)
    write_stack(tmp_path / "ax", [(12.5, -40, 33)], instances=[8], orientation=(*r, *c),
                shape=(48, 80), spacing=(0.43, 0.61))
    g = read_geometry(tmp_path / "ax")
    rng = np.random.default_rng(0)
    xs, ys = rng.uniform(0, 79, 20), rng.uniform(0, 47, 20)
    pts = pixel_to_patient(g, 8, xs, ys)
    assert pts.shape == (20, 3)
    bx, by, bd = patient_to_pixel(g, 8, pts + 2.5 * n)
    np.testing.assert_allclose(bx, xs, atol=1e-9)
    np.testing.assert_allclose(by, ys, atol=1e-9)
    np.testing.assert_allclose(bd, 2.5, atol=1e-9)
    x, y, d = patient_to_pixel(g, 8, pts[0])
    assert (x, y) == pytest.approx((xs[0], ys[0])) and d == pytest.approx(0.0, abs=1e-9)


def test_pydicom_mr_small_round_trip(tmp_path):
    src = pydicom.data.get_testdata_file("MR_small.dcm")
    if src is None:
        pytest.skip("pydicom's test file MR_small.dcm is not installed")
    (tmp_path / "mr").mkdir()
    shutil.copy(src, tmp_path / "mr" / "1.dcm")
    g = read_geometry(tmp_path / "mr")
    ds = pydicom.dcmread(src)
    inst = int(ds.InstanceNumber)
    assert g.instance_numbers.tolist() == [inst]
    np.testing.assert_allclose(g.positions[0], [float(v) for v in ds.ImagePositionPatient])
    np.testing.assert_allclose(g.pixel_spacing[0], [float(v) for v in ds.PixelSpacing])
    assert g.frame_of_reference == ds.get("FrameOfReferenceUID")
    p = pixel_to_patient(g, inst, 31.5, 12.25)
    assert patient_to_pixel(g, inst, p) == pytest.approx((31.5, 12.25, 0.0), abs=1e-9)
    hit = nearest_slice(g, p)
    assert (hit.instance_number, hit.inside) == (inst, True)
    assert hit.distance_mm == pytest.approx(0.0, abs=1e-9)


# ----------------------------------------------------------------------------- stacks


def test_on_a_tilted_stack_the_nearest_plane_is_not_the_nearest_ipp(tmp_path):
    offsets = [8, 4, 0, -4, -8]  # instances 1..5 toward the feet
    n = tilted_stack(tmp_path / "ax", (0, 0, 0), 20.0, offsets, [1, 2, 3, 4, 5])
    g = read_geometry(tmp_path / "ax")
    _, c, _ = axial_frame(20.0)
    point = 28.0 * c + 1.0 * n  # over pixel (32, 60), 1 mm above the middle plane
    hit = nearest_slice(g, point)
    assert (hit.instance_number, hit.stack, hit.inside) == (3, 0, True)
    assert hit.distance_mm == pytest.approx(1.0)
    assert (hit.x, hit.y) == pytest.approx((32.0, 60.0))
    by_ipp_z = g.instance_numbers[np.argmin(np.abs(g.positions[:, 2] - point[2]))]
    assert by_ipp_z == 1 != hit.instance_number
    assert hit.index == int(np.argmin(plane_distances(g, point)))


@pytest.mark.parametrize("toward_feet", [True, False])
def test_a_contiguous_stack_in_either_instance_order(tmp_path, toward_feet):
    write_series(tmp_path / "ax", 6, instances_toward_feet=toward_feet)  # z = 0, 4, ..., 20
    g = read_geometry(tmp_path / "ax")
    (stack,) = split_stacks(g)
    assert g.positions[stack, 2].tolist() == [0, 4, 8, 12, 16, 20]  # feet to head
    in_space = scan_series(tmp_path / "ax").instance_numbers  # lss.data.dicom's order
    assert g.instance_numbers[stack].tolist() == in_space.tolist()
    inst_at_z8 = 4 if toward_feet else 3
    hit = nearest_slice(g, [5.0, 5.0, 9.0])
    assert (hit.instance_number, hit.distance_mm, hit.inside) == (inst_at_z8, 1.0, True)
    assert nearest_slice(g, [5.0, 5.0, -1.9]).inside  # within half a step of the end
    outside = nearest_slice(g, [5.0, 5.0, -2.1])
    assert not outside.inside and outside.distance_mm == pytest.approx(-2.1)
    assert not nearest_slice(g, [50.0, 5.0, 9.0]).inside  # beside the image


def test_a_tie_goes_to_the_lower_instance_number(tmp_path):
    write_series(tmp_path / "ax", 6, instances_toward_feet=True)  # z=4: 5, z=8: 4
    hit = nearest_slice(read_geometry(tmp_path / "ax"), [5.0, 5.0, 6.0])
    assert hit.instance_number == 4 and abs(hit.distance_mm) == pytest.approx(2.0)


def test_a_missing_slice_does_not_split_a_stack_but_a_wider_gap_does(tmp_path):
    write_stack(tmp_path / "one", [(0, 0, z) for z in (0, 4, 12, 16)], instances=[1, 2, 3, 4])
    assert len(split_stacks(read_geometry(tmp_path / "one"))) == 1  # a step of 2
    write_stack(tmp_path / "two", [(0, 0, z) for z in (0, 4, 8, 20, 24)],
                instances=[1, 2, 3, 4, 5])
    assert [s.tolist() for s in split_stacks(read_geometry(tmp_path / "two"))] == [
        [0, 1, 2], [3, 4]]  # a step of 3
    tie = nearest_slice(read_geometry(tmp_path / "two"), [5.0, 5.0, 14.0])  # 6 mm from z 8, 20
    assert (tie.instance_number, tie.stack, tie.inside) == (3, 0, False)


def per_disc_series(folder, frame_uid=None):
    """Three tilted per-disc stacks in one series, instances running toward the feet
    through the whole series; the middle stack's column direction is reversed."""
    centres = [(0, 10, 70), (0, 10, 35), (0, 10, 0)]  # head to feet
    tilts = [-4.0, 9.0, 16.0]
    normals, inst = [], 1
    for k, (centre, tilt) in enumerate(zip(centres, tilts, strict=True)):
        normals.append(tilted_stack(folder, centre, tilt, [4, 0, -4], [inst, inst + 1, inst + 2],
                                    flip=k == 1, frame_uid=frame_uid))
        inst += 3
    return np.array(centres, float), normals


def test_several_per_disc_stacks_in_one_series(tmp_path):
    centres, normals = per_disc_series(tmp_path / "ax")
    g = read_geometry(tmp_path / "ax")
    stacks = split_stacks(g)
    # feet to head, each stack ascending toward the head (also the flipped one)
    assert [g.instance_numbers[s].tolist() for s in stacks] == [[9, 8, 7], [4, 5, 6], [3, 2, 1]]
    assert normals[1][2] < 0  # its header normal points to the feet
    hit = nearest_slice(g, centres[1] - 1.5 * normals[1])  # 1.5 mm toward the head
    assert (hit.instance_number, hit.stack, hit.inside) == (5, 1, True)
    assert hit.distance_mm == pytest.approx(1.5)  # + toward the head, whatever the IOP
    assert (hit.x, hit.y) == pytest.approx((32.0, 32.0))


def test_a_point_between_two_stacks_is_outside_and_goes_to_the_nearest_plane(tmp_path):
    per_disc_series(tmp_path / "ax")
    g = read_geometry(tmp_path / "ax")
    point = np.array([0.0, 10.0, 20.0])  # between the stacks at z = 0 and z = 35
    hit = nearest_slice(g, point)
    assert not hit.inside
    assert hit.index == int(np.argmin(plane_distances(g, point)))
    assert hit.instance_number == 4 and hit.stack == 1  # the lower plane of the 9-degree stack


def test_stacks_are_ordered_by_their_centres_not_their_ipp_corners(tmp_path):
    """A 16-degree tilt on a 200 mm field moves the IPP corner 28 mm along z: the stack
    whose centre lies 20 mm higher has the lower corner."""
    tilted_stack(tmp_path / "ax", (0, 0, 0), -16.0, [3, 0, -3], [1, 2, 3], size=200)
    tilted_stack(tmp_path / "ax", (0, 0, 20), 16.0, [3, 0, -3], [4, 5, 6], size=200)
    g = read_geometry(tmp_path / "ax")
    assert g.positions[0, 2] > g.positions[3, 2]  # the corners say the other order
    half_pixel = [-0.5 * (axial_frame(t)[0] + axial_frame(t)[1]) for t in (-16.0, 16.0)]
    np.testing.assert_allclose(g.centres[[1, 4]], np.array([[0, 0, 0], [0, 0, 20]]) + half_pixel,
                               atol=1e-4)  # the centre of pixel (99.5, 99.5)
    assert [g.instance_numbers[s].tolist() for s in split_stacks(g)] == [[3, 2, 1], [6, 5, 4]]


# ----------------------------------------------------------------------------- one study


def sagittal_series(folder, xs, instances, frame_uid=FRAME):
    """Sagittal slices at ``xs`` (mm, + toward the patient's left), IPP (x, -100, 120),
    PixelSpacing (1.2, 1.5): rows 1.2 mm apart toward the feet, columns 1.5 mm apart
    toward the back."""
    write_stack(folder, [(x, -100.0, 120.0) for x in xs], instances=instances,
                orientation=SAGITTAL, shape=(128, 128), spacing=(1.2, 1.5), frame_uid=frame_uid)


def test_a_sagittal_pixel_projects_to_the_known_axial_instance(tmp_path):
    study = tmp_path / "42"
    sagittal_series(study / "10", [8, 4, 0, -4, -8], [1, 2, 3, 4, 5])  # middle: x = 0
    centres, normals = per_disc_series(study / "20", frame_uid=FRAME)
    sag, ax = read_geometry(study / "10"), read_geometry(study / "20")
    check_same_frame(sag, ax, study_id=42)
    disc = centres[0] + 0.8 * normals[0]  # 0.8 mm above the top disc, along its plane normal
    x, y = (disc[1] + 100.0) / 1.5, (120.0 - disc[2]) / 1.2  # by hand, not via the module
    point = pixel_to_patient(sag, 3, x, y)
    np.testing.assert_allclose(point, disc, atol=1e-9)
    hit = nearest_slice(ax, point)
    assert (hit.instance_number, hit.stack, hit.inside) == (2, 2, True)
    assert hit.distance_mm == pytest.approx(0.8)
    assert patient_to_pixel(sag, 3, point) == pytest.approx((x, y, 0.0), abs=1e-9)


def test_series_of_different_frames_of_reference_are_refused(tmp_path):
    study = tmp_path / "42"
    sagittal_series(study / "10", [0], [1], frame_uid="1.2.3")
    sagittal_series(study / "11", [0], [1], frame_uid=None)
    write_stack(study / "20", [(0, 0, 0)], instances=[1], frame_uid="1.2.4")
    sag, ax = read_geometry(study / "10"), read_geometry(study / "20")
    with pytest.raises(DataError, match=r"^Study 42: series \S+/42/10 and \S+/42/20 have "
                                        r"different FrameOfReferenceUIDs \(1\.2\.3, 1\.2\.4\)"):
        check_same_frame(sag, ax, study_id=42)
    check_same_frame(read_geometry(study / "11"), ax, study_id=42)  # unknown: no error
