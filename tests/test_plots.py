"""Figures: points land where asked, flips move x to W - 1 - x, landmarks name the right
tissue, and every figure reads at page width (fonts, dpi, colour-bar labels, 2 x 4 strips)."""

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
from lss.viz._style import MIN_DPI, MIN_FONT_PT, rendered_min_font_pt  # noqa: E402


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
    assert "still 'Left subarticular stenosis'" in " ".join(axes[1].get_title().split())
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


# --------------------------------------------------------------------------- page rules
#
# One small synthetic call per public plot function of lss.viz; each figure must read at
# the book's page width: text >= 9 pt as shown, >= 150 dpi, every colour bar labelled.


def _rng():
    return np.random.default_rng(7)


def _localiser_examples():
    return [{"image": _rng().random((40, 40)), "x_true": 20.0, "y_true": 18.0, "x_pred": 23.0,
             "y_pred": 20.0, "pixel_spacing": (0.8, 0.8), "study_id": 4000000 + i,
             "error_mm": 3.5 * i} for i in range(4)]


def _labelled_examples():
    header = SimpleNamespace(pixel_spacing=(0.8, 0.8))
    slices = [(_rng().random((64, 64)), (30.0, 28.0), header) for _ in range(3)]
    rows = pd.DataFrame({"study_id": [4003253, 4646740, 7143189], "label": [0, 1, 2],
                         "instance_number": [7, 9, 11]})
    return slices, rows


def _pairs():
    return pd.DataFrame({"x_left": [300.0, 150.0, 310.0], "x_right": [200.0, 250.0, 190.0],
                         "same_series": [True, False, True],
                         "left_is_right_of_image": [True, False, True]})


def _experiment_table():
    rows = [("paper", "model", 0.41, 0.38, 0.95), ("no_flip", "model", 0.45, 0.40, 0.92),
            ("roi_level", "model", 0.52, 0.47, 0.88),
            ("majority", "reference", 1 / 3, 0.21, 1.10), ("prior", "reference", 1 / 3, 0.21, 0.98),
            ("weighted_prior", "reference", 1 / 3, 0.21, 1.00)]
    return pd.DataFrame(rows, columns=["experiment", "kind", "balanced_accuracy", "macro_f1",
                                       "rsna_log_loss"])


def _paper_history():
    return pd.DataFrame({"loss": [1.1, 1.0, 0.9], "val_loss": [1.05, 0.95, 1.0],
                         "val_accuracy": [0.4, 0.6, 0.5]})


def _small_model():
    from lss.model import build_augmentation, build_cnn_lstm

    aug = build_augmentation(rotation_degrees=10, zoom=0.1, horizontal_flip=False, seed=0)
    return build_cnn_lstm(8, 32, filters=(4, 8), lstm_units=5, dense_units=6, augmentation=aug)


def _window():
    return _rng().random((8, 32, 32)).astype(np.float32)


def _saliency():
    m = np.zeros((8, 32, 32), dtype=np.float32)
    m[4, 10:20, 8:16] = 1.0
    return m


#: name -> a call with small synthetic inputs; data labels as long as the book's.
PLOTS = {
    "plot_slice": lambda: viz.plot_slice(_rng().random((40, 60)), point=(45.5, 12.0),
                                         orientation="axial", title="slice",
                                         data_label="synthetic phantom (seed 0)"),
    "plot_flip": lambda: viz.plot_flip(_rng().random((32, 50)), (40.0, 10.0), zoom=8,
                                       label="Moderate left subarticular stenosis",
                                       data_label="synthetic phantom (seed 0), study 4003253"),
    "plot_window": lambda: viz.plot_window(
        _window(), indices=[0, 0, 1, 2, 3, 4, 5, 6], instance_numbers=range(20, 12, -1),
        positions=np.arange(8) * 4.0, point=(10.0, 12.0),
        title="study 4003253, Moderate", data_label="synthetic phantom (seed 0)"),
    "plot_preprocessing_steps": lambda: viz.plot_preprocessing_steps(
        {"as stored": _rng().random((448, 448)) * 900, "resized": _rng().random((128, 128)),
         "scaled to [0, 1]": _rng().random((128, 128))}, data_label="synthetic phantom"),
    "plot_slice_order": lambda: viz.plot_slice_order(
        _header([f"{i}.dcm" for i in range(12, 0, -1)], list(range(12, 0, -1)),
                np.arange(12) * 4.0), labelled_instance=5, data_label="synthetic phantom"),
    "plot_localiser_examples": lambda: viz.plot_localiser_examples(
        _localiser_examples(), data_label="synthetic phantom (seed 0)"),
    "plot_axial_anatomy": lambda: viz.plot_axial_anatomy(
        labelled_axial_slice(shape=(128, 128), pixel_spacing=1.6, noise=False),
        data_label="synthetic phantom slice (seed 0)"),
    "plot_labelled_examples": lambda: viz.plot_labelled_examples(
        *_labelled_examples(), data_label="synthetic phantom (seed 0)"),
    "plot_confusion_matrix": lambda: viz.plot_confusion_matrix(
        [[20, 3, 1], [4, 6, 2], [1, 2, 5]], data_label="synthetic phantom, validation"),
    "plot_history": lambda: viz.plot_history(
        {"loss": [1.0, 0.8], "accuracy": [0.4, 0.5], "val_loss": [1.1, 1.0],
         "val_accuracy": [0.45, 0.5]}, baseline_accuracy=0.449, data_label="phantom"),
    "plot_reliability": lambda: viz.plot_reliability(
        [0, 0, 1, 2], [[0.95, 0.05, 0.0], [0.9, 0.1, 0.0], [0.65, 0.35, 0.0], [0.3, 0.3, 0.4]],
        n_bins=5, data_label="toy"),
    "plot_class_distribution": lambda: viz.plot_class_distribution(
        [0, 0, 0, 1, 2], data_label="RSNA train"),
    "plot_left_right_x": lambda: viz.plot_left_right_x(_pairs(), data_label="RSNA train"),
    "plot_experiment_table": lambda: viz.plot_experiment_table(
        _experiment_table(), data_label="synthetic phantom (seed 0)"),
    "plot_architecture": lambda: viz.plot_architecture(_small_model(), data_label="toy"),
    "plot_paper_comparison": lambda: viz.plot_paper_comparison(
        _paper_history(), majority_accuracy=0.45, data_label="synthetic phantom (seed 0)",
        prior_log_loss=1.0),
    "plot_sequence": lambda: viz.plot_sequence(
        _rng().standard_normal((8, 64)), what="LSTM unit", labelled_index=4,
        title="LSTM state after each slice", data_label="synthetic phantom (seed 0)"),
    "plot_slices": lambda: viz.plot_slices(_window(), overlay=_saliency(), point=(10.0, 12.0),
                                           label="row"),
    "plot_montage": lambda: viz.plot_montage(
        [_window()] * 3, row_labels=["4003253\ntrue Severe\np(true) 0.12", "b", "c"],
        overlays=[None, _saliency(), None], points=[(10.0, 12.0), None, None],
        title="The 3 validation studies the model gets most wrong",
        data_label="synthetic phantom (seed 0)"),
    "plot_found_level": lambda: viz.plot_found_level(
        _rng().random((64, 48)), {lv: (24.0, 10.0 + 10 * i) for i, lv in
                                  enumerate(["L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1"])},
        np.array([[[0.0, y], [47.0, y + 3]] for y in range(8, 60, 4)]), 8,
        _rng().random((40, 40)), level="L4/L5", labelled=9,
        table_points={"L4/L5": (25.0, 41.0)}, data_label="synthetic phantom (seed 0)"),
    "plot_saliency": lambda: viz.plot_saliency(
        _window(), _saliency(), point=(10.0, 12.0), method="Grad-CAM, 'Moderate'",
        title="Study 4003253: why 'Moderate'?", data_label="synthetic phantom (seed 0)"),
}


def _figure(drawn):
    first = np.asarray(drawn, dtype=object).ravel()[0]
    return first.get_figure(root=True)


def test_every_public_plot_function_has_a_page_check():
    public = {n for n in viz.__all__ if n.startswith("plot_")}
    assert public == set(PLOTS), f"add a case to PLOTS for {sorted(public - set(PLOTS))}"


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_figure_reads_at_page_width(name):
    fig = _figure(PLOTS[name]())
    assert rendered_min_font_pt(fig) >= MIN_FONT_PT, (
        f"{name}: smallest text reads at {rendered_min_font_pt(fig):.1f} pt")
    assert fig.dpi >= MIN_DPI
    assert fig.get_layout_engine() is not None  # constrained (or tight) layout
    assert not _colour_bar_labels(fig).count(""), f"{name}: a colour bar without a label"


def _colour_bar_labels(fig) -> list[str]:
    """The label of each colour bar of ``fig`` ("" where it has none)."""
    return [(cax.get_ylabel() if cax._colorbar.orientation == "vertical"
             else cax.get_xlabel()).strip() for cax in fig.axes if hasattr(cax, "_colorbar")]


def test_colour_bars_are_found_and_a_missing_label_is_seen():
    assert _colour_bar_labels(_figure(PLOTS["plot_sequence"]())) == ["activation (no unit)"]
    assert _colour_bar_labels(_figure(PLOTS["plot_saliency"]())) == [
        "Grad-CAM, 'Moderate' (0 to 1)"]
    fig, ax = plt.subplots()
    fig.colorbar(ax.imshow(np.eye(3)), ax=ax)
    assert _colour_bar_labels(fig) == [""]


def test_rendered_font_size_catches_small_text():
    """The check can fail: a wide figure's text is scaled down, and a small font is small."""
    fig, ax = plt.subplots(figsize=(10, 3))
    ax.set_title("nine points", fontsize=9)
    ax.tick_params(labelsize=10)
    assert rendered_min_font_pt(fig) < MIN_FONT_PT  # 9 * 730 / 960 = 6.8
    assert rendered_min_font_pt(fig) == pytest.approx(9 * 730 / (10 * 96), rel=0.01)
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.annotate("tiny", (0.5, 0.5), fontsize=6)
    assert rendered_min_font_pt(fig) == pytest.approx(6)
    ax.texts[0].set_visible(False)  # hidden text does not count
    assert rendered_min_font_pt(fig) == pytest.approx(10)  # the tick labels
    ax.axis("off")
    assert rendered_min_font_pt(fig) == float("inf")
    # the inline PNG at 150 dpi, 4 in wide, is shown at 600 CSS px: larger than its CSS size
    ax.set_title("x", fontsize=9)
    assert rendered_min_font_pt(fig, dpi=150) == pytest.approx(9 * 150 / 96)


@pytest.mark.parametrize("name", ["plot_window", "plot_slices", "plot_montage",
                                  "plot_saliency"])
def test_a_strip_of_eight_slices_is_two_rows_of_four(name):
    axes = np.asarray(PLOTS[name](), dtype=object)
    blocks = axes.reshape(-1, 8)
    for block in blocks:  # one window: slices 0-3 in a row, 4-7 in the row below
        cells = [(ss.rowspan.start, ss.colspan.start) for ss in
                 (ax.get_subplotspec() for ax in block)]
        top = cells[0][0]
        assert cells == [(top + r, c) for r in range(2) for c in range(4)]
        block[0].get_figure(root=True).draw_without_rendering()
        assert len({round(ax.get_position().y0, 3) for ax in block}) == 2  # laid out: 2 rows
