"""Finding the graded level without coordinates (lss.locate) and using it in evaluation
and prediction: on a small phantom, whose sagittal and axial series share one patient
frame as real studies do."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

import lss.locate
from lss.cli import main
from lss.config import LEVELS, Config, LevelLocaliserConfig
from lss.data import DataError, level_window, load_tables, scan_series
from lss.data.geometry import read_geometry
from lss.evaluate import evaluate_run, predict
from lss.levels import load_level_localiser
from lss.locate import (
    find_levels,
    find_study_levels,
    fit_run_level_finder,
    level_hits,
    summarise_hits,
    with_found_levels,
)
from lss.phantom import make_phantom
from lss.run import RunDir
from lss.train import train

TINY = dict(n_slices=2, image_size=16, batch_size=4, cnn_filters=(4,), lstm_units=4,
            dense_units=4, early_stopping_patience=10, epochs=1)
TINY_FINDER = LevelLocaliserConfig(image_size=32, filters=(4, 8), epochs=2, batch_size=4)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    return make_phantom(tmp_path_factory.mktemp("loc") / "ph", n_studies=10, seed=4,
                        n_test_studies=2, workers=1)


def _table_points(root: Path):
    """A stand-in for the level finder that answers the table's canal points."""
    coords = load_tables(root).coordinates
    canal = coords[coords["condition"] == "Spinal Canal Stenosis"]

    def predict_levels(_model, folder):
        rows = canal[canal["series_id"] == int(Path(folder).name)].set_index("level")
        return {lv: (int(r.instance_number), float(r.x), float(r.y))
                for lv, r in rows.iterrows()}
    return predict_levels


def test_table_points_carried_into_axial_space_land_within_one_slice(phantom, monkeypatch):
    """The geometry on its own (an oracle finder): every labelled level of the phantom
    is found on, or next to, the slice its subarticular rows name."""
    monkeypatch.setattr(lss.locate, "predict_levels", _table_points(phantom))
    ids = load_tables(phantom).train["study_id"].tolist()
    found = find_study_levels(None, phantom, ids)
    assert set(found["study_id"]) == set(ids) and found["inside"].all()
    hits = level_hits(found, phantom)
    assert len(hits) > 30 and (hits["slices_off"] <= 1).all()
    summary = summarise_hits(hits).iloc[0]
    assert summary["within_one"] == 1.0 and summary["median_mm"] < 2.0
    by_level = summarise_hits(hits, by="level")
    assert list(by_level.index) == [lv for lv in LEVELS if lv in set(hits["level"])]


def test_a_point_moved_toward_the_head_misses_by_that_much(phantom, monkeypatch):
    """The comparison can fail: points 15 mm off the disc are counted as misses."""
    exact = _table_points(phantom)

    def shifted(model, folder):
        row_mm = float(read_geometry(folder).pixel_spacing[0][0])
        return {lv: (i, x, y - 15.0 / row_mm) for lv, (i, x, y) in exact(model, folder).items()}
    monkeypatch.setattr(lss.locate, "predict_levels", shifted)
    ids = load_tables(phantom).train["study_id"].tolist()[:4]
    hits = level_hits(find_study_levels(None, phantom, ids), phantom)
    summary = summarise_hits(hits).iloc[0]
    assert summary["within_one"] < 0.5 and 12.0 < summary["median_mm"] < 18.0


def test_series_in_another_frame_of_reference_are_refused(phantom, tmp_path, monkeypatch):
    monkeypatch.setattr(lss.locate, "predict_levels", _table_points(phantom))
    tables = load_tables(phantom)
    sid = int(tables.train["study_id"].iloc[0])
    study = tmp_path / str(sid)
    shutil.copytree(phantom / "train_images" / str(sid), study)
    s = tables.series[tables.series["study_id"] == sid]
    axial = [study / str(i) for i in s.loc[s.series_description == "Axial T2", "series_id"]]
    sagittal = study / str(int(s.loc[s.series_description == "Sagittal T2/STIR",
                                      "series_id"].iloc[0]))
    for f in axial[0].glob("*.dcm"):
        ds = pydicom.dcmread(f)
        ds.FrameOfReferenceUID = "1.2.3.4"
        ds.save_as(f)
    with pytest.raises(DataError, match=rf"Study {sid}: series .* different FrameOfReferenceUID"):
        find_levels(None, sagittal, axial, study_id=sid)


def test_found_levels_replace_the_tables_slice_and_clear_its_point():
    index = pd.DataFrame({"study_id": [1, 2], "series_id": [10, 20],
                          "instance_number": [3, 4], "x": [5.0, 6.0], "y": [7.0, 8.0],
                          "label": [0, 2]})
    found = pd.DataFrame({"study_id": [1, 1, 2], "level": ["L4/L5", "L5/S1", "L4/L5"],
                          "series_id": [11, 11, 21], "instance_number": [9, 12, 8]})
    out = with_found_levels(index, found, "L4/L5")
    assert out[["series_id", "instance_number"]].to_numpy().tolist() == [[11, 9], [21, 8]]
    assert out[["x", "y"]].isna().all().all() and list(out.columns) == list(index.columns)
    with pytest.raises(DataError, match=r"No level L4/L5 found for studies \[2\]"):
        with_found_levels(index, found.iloc[:2], "L4/L5")


@pytest.fixture(scope="module")
def run_with_finder(phantom, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("locrun") / "run"
    train(phantom, Config().replace(seed=0, **TINY), run, cache_dir=run.parent / "cache",
          verbose=0)
    fit_run_level_finder(run, phantom, config=TINY_FINDER, cache_dir=run.parent / "cache")
    return run


def test_evaluate_with_found_levels_scores_the_same_studies(run_with_finder):
    run = RunDir(run_with_finder)
    table = evaluate_run(run.path, figures=False)
    found = evaluate_run(run.path, figures=False, levels="found")
    assert table["levels"] == {"source": "coordinate table"}
    assert found["levels"]["source"] == "level finder"
    assert found["n_val"] == table["n_val"] == int(found["levels"]["pairs"])
    assert (run.path / "levels-found" / "metrics.json").is_file()
    assert run.read_manifest()["metrics"]["n_val"] == table["n_val"]  # the table's stays


def test_the_level_finder_learns_from_training_studies_only(run_with_finder, monkeypatch):
    seen = {}

    def spy(root, study_ids, path=None, **kw):
        seen["ids"] = list(study_ids)
        raise SystemExit
    monkeypatch.setattr(lss.locate, "train_levels", spy)
    with pytest.raises(SystemExit):
        fit_run_level_finder(run_with_finder, None)
    split = RunDir(run_with_finder).read_split()
    assert sorted(seen["ids"]) == sorted(split.loc[split.split == "train", "study_id"])


def _test_only_root(phantom: Path, out: Path) -> Path:
    """The phantom's test split alone: no train.csv, no coordinate table at all."""
    out.mkdir()
    shutil.copy2(phantom / "test_series_descriptions.csv", out)
    shutil.copytree(phantom / "test_images", out / "test_images")
    return out


def test_predict_grades_new_studies_on_the_found_slice_without_the_tables(
        phantom, run_with_finder, tmp_path):
    root = _test_only_root(phantom, tmp_path / "test_only")
    sub = predict(run_with_finder, root)
    series = pd.read_csv(root / "test_series_descriptions.csv")
    ids = sorted(series["study_id"].unique())
    assert sub["row_id"].tolist() == [f"{s}_left_subarticular_stenosis_l4_l5" for s in ids]
    run = RunDir(run_with_finder)
    model, config = run.load()
    finder = load_level_localiser(run.level_finder)
    expected = []
    for sid in ids:
        s = series[series.study_id == sid]
        folder = root / "test_images" / str(sid)
        axial = [folder / str(i) for i in sorted(s.loc[s.series_description == "Axial T2",
                                                       "series_id"])]
        sag = folder / str(int(s.loc[s.series_description == "Sagittal T2/STIR",
                                     "series_id"].iloc[0]))
        row = find_levels(finder, sag, axial, study_id=sid).set_index("level").loc["L4/L5"]
        header = scan_series(folder / str(int(row.series_id)))
        expected.append(level_window(header, int(row.instance_number),
                                     config.preprocess).volume)
    proba = model.predict(np.stack(expected)[..., None], verbose=0)
    np.testing.assert_allclose(sub[["normal_mild", "moderate", "severe"]].to_numpy(),
                               proba / proba.sum(1, keepdims=True), rtol=1e-5)
    one = predict(run_with_finder, study_dir=root / "test_images" / str(ids[0]))
    pd.testing.assert_frame_equal(one, sub.iloc[:1], rtol=1e-5)


def test_cli_levels_then_evaluate_with_found_levels(phantom, run_with_finder, tmp_path,
                                                    capsys):
    run = tmp_path / "copy"
    shutil.copytree(run_with_finder, run)
    RunDir(run).level_finder.unlink()
    assert main(["evaluate", "--run", str(run), "--levels", "found"]) == 2
    assert "has no levels.keras: fit one with lss levels" in capsys.readouterr().err
    assert main(["levels", "--run", str(run), "--data", str(phantom), "--epochs", "1"]) == 0
    assert "Next: lss evaluate" in capsys.readouterr().out
    assert main(["evaluate", "--run", str(run), "--levels", "found"]) == 0
    out = capsys.readouterr().out
    assert "levels found:" in out and "within one slice" in out
    n_val = int((RunDir(run).read_split()["split"] == "val").sum())
    assert f"({n_val} validation studies)" in out


def test_an_roi_run_places_its_crop_with_the_localiser_on_the_found_slice(
        phantom, run_with_finder, tmp_path, monkeypatch):
    """A region-of-interest run's recess localiser looks at the slice found for the
    level, not at the series' middle slice."""
    import json

    import lss.localiser
    from lss.localiser import build_localiser, save_localiser

    run = tmp_path / "roi"
    shutil.copytree(run_with_finder, run)
    cfg = json.loads(RunDir(run).config_file.read_text())
    cfg["preprocess"]["crop_mm"] = 40.0
    RunDir(run).config_file.write_text(json.dumps(cfg))
    save_localiser(build_localiser(32, (4, 8)), RunDir(run).localiser)
    seen = {}
    real = lss.localiser.centres_for_series

    def spy(model, headers, instances=None):
        seen["instances"] = list(instances)
        return real(model, headers, instances)
    monkeypatch.setattr(lss.localiser, "centres_for_series", spy)
    root = _test_only_root(phantom, tmp_path / "test_only")
    sub = predict(run, root)
    finder = load_level_localiser(RunDir(run).level_finder)
    series = pd.read_csv(root / "test_series_descriptions.csv")
    want = []
    for sid in sorted(series["study_id"].unique()):
        s, folder = series[series.study_id == sid], root / "test_images" / str(sid)
        axial = [folder / str(i) for i in sorted(s.loc[s.series_description == "Axial T2",
                                                       "series_id"])]
        sag = folder / str(int(s.loc[s.series_description == "Sagittal T2/STIR",
                                     "series_id"].iloc[0]))
        found = find_levels(finder, sag, axial, study_id=sid).set_index("level")
        want.append(int(found.loc["L4/L5", "instance_number"]))
    assert seen["instances"] == want and len(sub) == len(want)


def test_the_submission_has_25_rows_per_study_and_reports_every_filled_row(
        phantom, run_with_finder, tmp_path, capsys):
    """The competition's file: the run's target from the model, the other 24 from the
    training prior; a study without its sagittal series gets all 25 from the prior and
    a report line, never a crash."""
    from lss.competition import TARGETS, check_submission
    from lss.data.tables import load_tables as tables_of
    from lss.evaluate import predict_submission
    from lss.submission import training_prior

    root = _test_only_root(phantom, tmp_path / "test_only")
    series = pd.read_csv(root / "test_series_descriptions.csv")
    ids = sorted(series["study_id"].unique())
    broken = ids[-1]
    sag = series[(series.study_id == broken)
                 & (series.series_description == "Sagittal T2/STIR")]["series_id"].iloc[0]
    shutil.rmtree(root / "test_images" / str(broken) / str(sag))
    series[~((series.study_id == broken) & (series.series_id == sag))].to_csv(
        root / "test_series_descriptions.csv", index=False)
    sub, report = predict_submission(run_with_finder, root)
    check_submission(sub, ids)
    assert len(sub) == 25 * len(ids)
    graded = predict(run_with_finder, root, on_error="report")
    assert graded.attrs["failed"][0]["study_id"] == broken
    target = "left_subarticular_stenosis_l4_l5"
    mine = sub.set_index("row_id").loc[graded["row_id"]]
    np.testing.assert_allclose(mine.to_numpy(), graded.set_index("row_id").to_numpy())
    split = RunDir(run_with_finder).read_split()
    train = tables_of(phantom).train
    prior = training_prior(train[train.study_id.isin(split.loc[split.split == "train",
                                                               "study_id"])])
    other = sub[sub["row_id"] == f"{ids[0]}_spinal_canal_stenosis_l1_l2"].iloc[0]
    np.testing.assert_allclose(other[["normal_mild", "moderate", "severe"]].to_numpy(float),
                               prior.loc["spinal_canal_stenosis_l1_l2"].to_numpy())
    assert len(report) == 24 * (len(ids) - 1) + 25
    why = report.loc[report.study_id == broken, "reason"]
    assert len(why) == 25 and why.str.contains("no Sagittal T2/STIR series").all()
    assert report.loc[report.study_id != broken, "reason"].str.startswith(
        f"not graded by this run (it grades {target})").all()
    assert TARGETS[0] in set(report["target"])
    out = tmp_path / "sub" / "submission.csv"
    assert main(["predict", "--run", str(run_with_finder), "--data", str(root),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"Wrote {25 * len(ids)} rows" in printed and "from the training prior" in printed
    assert pd.read_csv(out).shape == (25 * len(ids), 4)
    assert (out.parent / "submission_report.csv").is_file()


def test_a_run_scored_the_competitions_way_beside_the_constants(run_with_finder, capsys):
    """All 25 targets of the validation studies: the model's differ from the weighted
    prior's only through its own target's group and the any-severe term, and the three
    constants are three different answers."""
    from lss.scoring import SCORE_COLUMNS, whole_study_scores

    evaluate_run(run_with_finder, figures=False)
    table = whole_study_scores(run_with_finder)
    assert list(table.index) == ["model", "prior", "uniform", "weighted_prior"]
    assert np.isclose(table.loc["uniform", "subarticular"], np.log(3))
    for term in ("spinal", "foraminal"):  # the run grades a subarticular target
        assert np.isclose(table.loc["model", term], table.loc["weighted_prior", term])
    for term in ("spinal", "foraminal", "subarticular"):
        assert table.loc["weighted_prior", term] != table.loc["prior", term]
    assert table[list(SCORE_COLUMNS)].notna().all().all()
    assert main(["evaluate", "--run", str(run_with_finder), "--competition"]) == 0
    out = capsys.readouterr().out
    assert "The competition's score of" in out and "weighted_prior" in out
