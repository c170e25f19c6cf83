"""Figures: points land where asked, flips move x to W - 1 - x, landmarks name the right tissue."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from lss import viz  # noqa: E402
from lss.data import survey as data_survey  # noqa: E402
from lss.phantom import labelled_axial_slice  # noqa: E402
from lss.viz import anatomy  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _texts_by_side(ax) -> dict[str, str]:
    """Orientation letters keyed by where they sit: left, right, top or bottom."""
    out = {}
    for t in ax.texts:
        x, y = t.get_position()
        if x < 0.1:
            out["left"] = t.get_text()
        elif x > 0.9:
            out["right"] = t.get_text()
        elif y > 0.9:
            out["top"] = t.get_text()
        elif y < 0.1:
            out["bottom"] = t.get_text()
    return out


# --------------------------------------------------------------------------- plot_slice


def test_plot_slice_draws_the_point_where_asked():
    img = np.random.default_rng(0).random((40, 60))
    ax = viz.plot_slice(img, point=(45.5, 12.0))
    xs, ys = ax.lines[0].get_data()
    assert (float(xs[0]), float(ys[0])) == (45.5, 12.0)
    ring = ax.patches[0]
    assert ring.center == (45.5, 12.0)
    assert ax.images[0].get_array().shape == (40, 60)


def test_plot_slice_skips_a_missing_point_and_refuses_a_volume():
    ax = viz.plot_slice(np.zeros((8, 8)), point=(np.nan, np.nan))
    assert not ax.lines and not ax.patches
    with pytest.raises(ValueError, match="2-D slice"):
        viz.plot_slice(np.zeros((2, 8, 8)))


def test_plot_slice_writes_the_radiological_convention():
    ax = viz.plot_slice(np.zeros((8, 8)), orientation="axial")
    assert _texts_by_side(ax) == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    with pytest.raises(ValueError, match="orientation must be"):
        viz.plot_slice(np.zeros((8, 8)), orientation="coronal")


def test_plot_slice_zoom_centres_on_the_point():
    ax = viz.plot_slice(np.zeros((100, 100)), point=(30.0, 70.0), zoom=10)
    assert ax.get_xlim() == (20.0, 40.0)
    assert ax.get_ylim() == (80.0, 60.0)  # rows run down
    ax = viz.plot_slice(np.zeros((100, 100)), point=(30.0, 70.0), zoom=10, centre=(50, 50))
    assert ax.get_xlim() == (40.0, 60.0)
    with pytest.raises(ValueError, match="zoom needs"):
        viz.plot_slice(np.zeros((10, 10)), zoom=3)


# --------------------------------------------------------------------------- flips


def test_flip_moves_x_to_width_minus_one_minus_x_and_keeps_the_pixel():
    img = np.arange(5 * 7, dtype=float).reshape(5, 7)
    flipped, (fx, fy) = viz.flip_horizontal(img, (1.0, 3.0))
    assert (fx, fy) == (5.0, 3.0)
    assert flipped[3, 5] == img[3, 1]
    again, back = viz.flip_horizontal(flipped, (fx, fy))
    np.testing.assert_array_equal(again, img)
    assert back == (1.0, 3.0)


def test_plot_flip_moves_the_point_and_swaps_the_sides():
    img = np.random.default_rng(1).random((32, 50))
    axes = viz.plot_flip(img, (40.0, 10.0), data_label="test data")
    x0 = axes[0].lines[0].get_data()[0][0]
    x1 = axes[1].lines[0].get_data()[0][0]
    assert (x0, x1) == (40.0, 9.0)
    assert _texts_by_side(axes[0])["right"] == "L"
    assert _texts_by_side(axes[1])["left"] == "L"
    assert "still 'Left subarticular stenosis'" in axes[1].get_title()
    np.testing.assert_array_equal(axes[1].images[0].get_array(), img[:, ::-1])
    zoomed = viz.plot_flip(img, (40.0, 10.0), zoom=5, axes=plt.subplots(1, 2)[1])
    assert zoomed[0].get_xlim() == zoomed[1].get_xlim() == (19.5, 29.5)  # around column 24.5


# --------------------------------------------------------------------------- windows


def test_plot_window_frames_the_labelled_slice_and_marks_repeats():
    vol = np.random.default_rng(2).random((4, 16, 16))
    axes = viz.plot_window(vol, indices=[0, 0, 1, 2], instance_numbers=[9, 9, 8, 7],
                             point=(3.0, 4.0), title="w", data_label="test data")
    assert len(axes) == 4
    assert "repeat" in axes[1].get_title() and "repeat" not in axes[0].get_title()
    assert "inst 8" in axes[2].get_title()
    centre = axes[2]  # 4 // 2
    assert centre.spines["left"].get_edgecolor()[:3] == matplotlib.colors.to_rgb("tab:red")
    assert [bool(ax.lines) for ax in axes] == [False, False, True, False]


def test_plot_window_checks_lengths():
    with pytest.raises(ValueError, match="instance_numbers has 2 entries for 3 slices"):
        viz.plot_window(np.zeros((3, 4, 4)), instance_numbers=[1, 2])
    with pytest.raises(ValueError, match="centre 5 outside"):
        viz.plot_window(np.zeros((3, 4, 4)), centre=5)


def test_plot_preprocessing_steps_has_an_image_and_a_histogram_per_step():
    steps = {"raw": np.random.default_rng(3).random((20, 30)) * 900, "scaled": np.ones((8, 8))}
    axes = viz.plot_preprocessing_steps(steps)
    assert axes.shape == (2, 2)
    assert "20x30" in axes[0, 0].get_title()
    assert len(axes[1, 0].patches) == 60
    with pytest.raises(ValueError, match="empty"):
        viz.plot_preprocessing_steps({})


# --------------------------------------------------------------------------- orderings


def _header(names, instances, positions):
    return SimpleNamespace(paths=tuple(Path("/s") / n for n in names),
                           instance_numbers=np.array(instances),
                           positions=np.array(positions, dtype=float), series_dir=Path("/s"))


def test_slice_order_table_ranks_by_instance_and_by_name_as_text():
    # spatial order (feet to head): instance numbers run toward the feet
    h = _header(["10.dcm", "9.dcm", "2.dcm", "1.dcm"], [10, 9, 2, 1], [-30, -26, 40, 44])
    df = data_survey.slice_order_table(h)
    assert df["instance_rank"].tolist() == [3, 2, 1, 0]
    assert df["name_rank"].tolist() == [1, 3, 2, 0]  # "1" < "10" < "2" < "9"
    assert df["position_mm"].tolist() == [-30, -26, 40, 44]


def test_plot_slice_order_stars_the_labelled_instance():
    h = _header(["3.dcm", "2.dcm", "1.dcm"], [3, 2, 1], [0, 4, 8])
    axes = viz.plot_slice_order(h, labelled_instance=2)
    star = axes[0].lines[-1].get_data()
    assert (star[0][0], star[1][0]) == (2, 4.0)
    with pytest.raises(ValueError, match="instance 7 is not in"):
        viz.plot_slice_order(h, labelled_instance=7)


def test_subarticular_pairs_and_their_plot():
    coords = pd.DataFrame({
        "study_id": [1, 1, 2, 2, 3],
        "series_id": [10, 10, 20, 21, 30],
        "condition": ["Left Subarticular Stenosis", "Right Subarticular Stenosis"] * 2
        + ["Left Subarticular Stenosis"],
        "level": ["L4/L5"] * 5,
        "x": [300.0, 200.0, 150.0, 250.0, 100.0],
    })
    pairs = data_survey.subarticular_pairs(coords)
    assert pairs["study_id"].tolist() == [1, 2]  # study 3 has no right label
    assert pairs["same_series"].tolist() == [True, False]
    assert pairs["left_is_right_of_image"].tolist() == [True, False]
    ax = viz.plot_left_right_x(pairs, data_label="test data")
    assert "50.0 % of 2 pairs" in ax.get_title() and "test data" in ax.get_title()
    with pytest.raises(ValueError, match="lack column"):
        data_survey.subarticular_pairs(coords.drop(columns="x"))


# --------------------------------------------------------------------------- anatomy


@pytest.mark.parametrize("seed", [0, 3])
def test_anatomy_landmarks_sit_on_the_tissue_they_name(seed):
    s = labelled_axial_slice(seed=seed, shape=(256, 256), pixel_spacing=0.8, noise=False)
    img = s.image

    def value(name):
        x, y = s.landmarks[name]
        return float(img[int(round(y)), int(round(x))])

    csf = value("thecal sac (CSF)")
    assert csf >= np.percentile(img, 99)  # CSF is the brightest tissue on T2
    for dark in ("psoas", "multifidus", "erector spinae", "ligamentum flavum", "nerve rootlets",
                 "left subarticular recess", "right subarticular recess"):
        assert value(dark) < 0.5 * csf, dark  # muscle, ligament, nerve root
    assert value("subcutaneous fat") > 0.5 * csf
    lm = s.landmarks
    assert lm["left subarticular recess"][0] > lm["right subarticular recess"][0]
    assert lm["left facet joint"][0] > lm["right facet joint"][0]
    assert lm["intervertebral disc"][1] < lm["thecal sac (CSF)"][1] < lm["left facet joint"][1]


def test_plot_axial_anatomy_points_every_arrow_at_its_landmark():
    s = labelled_axial_slice(shape=(128, 128), pixel_spacing=1.6, noise=False)
    axes = viz.plot_axial_anatomy(s, data_label="test data")
    for ax, names in ((axes[0], anatomy._WHOLE), (axes[1], anatomy._ZOOM)):
        anns = [t for t in ax.texts if hasattr(t, "xy")]
        assert len(anns) == len(names)
        for a in anns:
            name = a.get_text().replace("\n", " ")
            assert a.xy == pytest.approx(s.landmarks[name])
    assert "test data" in axes[0].get_title()


def test_window_survey_finds_edges_spans_and_direction(tiny_root):
    from lss.data import build_index

    index = build_index(tiny_root)
    survey = data_survey.window_survey(tiny_root, index, n_slices=4)
    assert survey["study_id"].tolist() == index["study_id"].tolist()
    assert (survey["span_mm"] >= 0).all()
    # the factory numbers study 103's slices toward the head, the others toward the feet
    by_study = dict(zip(survey["study_id"], survey["instances_run_with_position"], strict=True))
    assert by_study == {101: False, 102: False, 103: True}
    one = data_survey.window_survey(tiny_root, index, n_slices=1)
    assert not one["edge"].any()  # a one-slice window never runs past an end
    wide = data_survey.window_survey(tiny_root, index, n_slices=99)
    assert wide["edge"].all()
    assert (wide["span_mm"] >= survey["span_mm"]).all()


def test_plot_window_writes_positions_relative_to_the_labelled_slice():
    axes = viz.plot_window(np.zeros((3, 4, 4)), positions=[-8.0, -4.0, 0.0], centre=2)
    assert "-8 mm" in axes[0].get_title() and "+0 mm" in axes[2].get_title()
