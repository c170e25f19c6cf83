"""Grading every target of a new study from its images (lss.study_predict): offsets
learnt from the coordinate table, crops placed from the level finder's canal points,
and the 25-row submission of a whole-study run, on the session's 24-study phantom."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lss.data.sources
import lss.study_predict
from lss.competition import check_submission
from lss.config import CONDITIONS, Config, LevelLocaliserConfig, LocaliserConfig
from lss.data import DataError, load_tables, pixel_to_patient, read_geometry, series_dir
from lss.data.targets import coordinate_targets
from lss.locate import fit_run_level_finder
from lss.study_predict import (
    place_targets,
    predict_whole_study,
    study_series,
    target_offsets,
)
from lss.whole_study import train_whole_study

TINY = dict(n_slices=2, image_size=16, batch_size=8, cnn_filters=(4,), lstm_units=4,
            dense_units=4, early_stopping_patience=10, epochs=1, crop_mm=40.0, seed=0,
            localiser=LocaliserConfig(image_size=32, filters=(4, 8), epochs=1, batch_size=8))
TINY_FINDER = LevelLocaliserConfig(image_size=32, filters=(4, 8), epochs=2, batch_size=4)
GROUPS = {g: [t for t in lss.study_predict._TARGET_PARTS
              if lss.study_predict._GROUP_OF[lss.study_predict._TARGET_PARTS[t][0]] == g]
          for g in ("spinal", "subarticular", "foraminal")}


def _train_ids(root: Path) -> list[int]:
    return load_tables(root).train["study_id"].astype(int).tolist()


def _table_points(root: Path):
    """A stand-in for the level finder that answers the table's canal points."""
    coords = load_tables(root).coordinates
    canal = coords[coords["condition"] == "Spinal Canal Stenosis"]

    def predict_levels(_model, folder):
        rows = canal[canal["series_id"] == int(Path(folder).name)].set_index("level")
        return {lv: (int(r.instance_number), float(r.x), float(r.y))
                for lv, r in rows.iterrows()}
    return predict_levels


# --------------------------------------------------------------------------- offsets


def test_offsets_point_to_each_side_and_foramina_lie_further_out(phantom_root):
    offsets = target_offsets(phantom_root, _train_ids(phantom_root))
    dx = offsets.set_index(["condition", "level"])["dx"]
    assert len(offsets) == 20 and not offsets["pooled"].any()
    assert (dx["left_subarticular_stenosis"] > 0).all()  # +x: toward the patient's left
    assert (dx["right_subarticular_stenosis"] < 0).all()
    for side in ("left", "right"):
        assert (dx[f"{side}_neural_foraminal_narrowing"].abs()
                > dx[f"{side}_subarticular_stenosis"].abs()).all()
    assert offsets.attrs["n_used"] == 24 and offsets.attrs["skipped"] == []


def _root_with(phantom_root: Path, tmp_path: Path, coordinates: pd.DataFrame) -> Path:
    """A root with the phantom's tables and images but the given coordinate table."""
    root = tmp_path / "root"
    root.mkdir()
    for name in ("train.csv", "train_series_descriptions.csv"):
        shutil.copy(phantom_root / name, root / name)
    coordinates.to_csv(root / "train_label_coordinates.csv", index=False)
    (root / "train_images").symlink_to(phantom_root / "train_images")
    return root


def test_studies_without_a_canal_row_are_skipped_and_counted(phantom_root, tmp_path):
    coords = load_tables(phantom_root).coordinates
    ids = _train_ids(phantom_root)
    gone = coords[~((coords["study_id"] == ids[0])
                    & (coords["condition"] == "Spinal Canal Stenosis"))]
    offsets = target_offsets(_root_with(phantom_root, tmp_path, gone), ids)
    assert offsets.attrs["skipped"] == [{"study_id": ids[0], "reason":
                                         "no Spinal Canal Stenosis row on Sagittal T2/STIR"}]
    assert offsets.attrs["n_used"] == 23
    with pytest.raises(DataError, match="no offsets to learn"):
        target_offsets(phantom_root, [ids[0] + 1])  # a study the table does not hold


def test_a_level_with_too_few_pairs_takes_its_conditions_median(phantom_root, tmp_path):
    coords = load_tables(phantom_root).coordinates
    ids = _train_ids(phantom_root)
    few = coords[~((coords["level"] == "L1/L2") & ~coords["study_id"].isin(ids[:2]))]
    offsets = target_offsets(_root_with(phantom_root, tmp_path, few), ids)
    l12 = offsets[offsets["level"] == "L1/L2"]
    assert l12["pooled"].all() and (l12["n_pairs"] == 2).all()
    assert not offsets.loc[offsets["level"] != "L1/L2", "pooled"].any()


# --------------------------------------------------------------------------- oracle centres


def _centre_errors(root: Path, offsets: pd.DataFrame) -> pd.DataFrame:
    """Per placed training target, the mm between its crop centre and the table's point."""
    coords = load_tables(root).coordinates
    key = {v: k for k, v in CONDITIONS.items()}
    rows = []
    for series in study_series(root, split="train"):
        places, _ = place_targets(None, series, offsets, GROUPS)
        mine = coords[coords["study_id"] == series.study_id]
        for p in places.itertuples():
            condition, level = lss.study_predict._TARGET_PARTS[p.target]
            truth = mine[(mine["condition"].map(key) == condition) & (mine["level"] == level)]
            if truth.empty:
                continue
            t = truth.iloc[0]
            at = pixel_to_patient(read_geometry(series_dir(root, p.study_id, p.series_id)),
                                  p.instance_number, p.x, p.y)
            true = pixel_to_patient(read_geometry(series_dir(root, t.study_id, t.series_id)),
                                    int(t.instance_number), t.x, t.y)
            rows.append((p.group, float(np.linalg.norm(at - true))))
    return pd.DataFrame(rows, columns=["group", "mm"])


def test_oracle_canal_points_put_the_crops_on_the_tables_points(phantom_root, monkeypatch):
    """With the table's canal points in place of the finder, the learnt offsets carry
    the crops to within 10 mm of the radiologist's points for most targets; with no
    offset (the crop left at the canal) the foramina are missed: the check can fail."""
    monkeypatch.setattr(lss.study_predict, "predict_levels", _table_points(phantom_root))
    offsets = target_offsets(phantom_root, _train_ids(phantom_root))
    errors = _centre_errors(phantom_root, offsets)
    share = errors.assign(ok=errors["mm"] <= 10).groupby("group")["ok"].mean()
    print("share within 10 mm:", share.round(3).to_dict(), "median mm:",
          errors.groupby("group")["mm"].median().round(2).to_dict())
    assert set(share.index) == {"spinal", "subarticular", "foraminal"}
    assert share["spinal"] == 1.0 and share["subarticular"] >= 0.9
    assert share["foraminal"] >= 0.9
    zero = _centre_errors(phantom_root, offsets.assign(dx=0.0, dy=0.0, dz=0.0))
    assert (zero.loc[zero["group"] == "foraminal", "mm"] <= 10).mean() < 0.2


class _FixedPoint:
    """A stand-in recess localiser that always answers a quarter across, half down."""

    input_shape = (None, 32, 32, 1)

    def predict(self, x, batch_size=32, verbose=0):
        return np.tile([0.25, 0.5], (len(x), 1))


def test_a_recess_localiser_centres_the_recess_crops_on_the_chosen_slice(phantom_root,
                                                                         monkeypatch):
    """With a recess localiser, each recess crop keeps its slice and is centred where the
    localiser answers: a quarter across for a left recess, and for a right one (its
    slice mirrored in and the answer mirrored back) three quarters; the canal and the
    foramina are placed as without it."""
    monkeypatch.setattr(lss.study_predict, "predict_levels", _table_points(phantom_root))
    offsets = target_offsets(phantom_root, _train_ids(phantom_root))
    series = study_series(phantom_root, split="train")[0]
    plain, _ = place_targets(None, series, offsets, GROUPS)
    found, _ = place_targets(None, series, offsets, GROUPS, recess=_FixedPoint())
    recess = found["group"] == "subarticular"
    assert recess.sum() == 10
    pd.testing.assert_frame_equal(found[~recess], plain[~recess])
    keep = ["target", "series_id", "instance_number", "mirror"]
    pd.testing.assert_frame_equal(found.loc[recess, keep], plain.loc[recess, keep])
    cols = read_geometry(series.folders["Axial T2"][0]).shapes[0][1]
    want = np.where(found.loc[recess, "mirror"], 0.75 * cols - 0.5, 0.25 * cols - 0.5)
    np.testing.assert_allclose(found.loc[recess, "x"], want)


# --------------------------------------------------------------------------- predicting


@pytest.fixture(scope="module")
def whole_run(phantom_root, tmp_path_factory):
    """A tiny whole-study run with its level finder."""
    run = tmp_path_factory.mktemp("whole_predict") / "run"
    train_whole_study(phantom_root, run, Config().replace(**TINY),
                      cache_dir=run.parent / "cache")
    fit_run_level_finder(run, phantom_root, config=TINY_FINDER,
                         cache_dir=run.parent / "cache")
    return run


def _test_root(phantom_root: Path, tmp_path: Path) -> Path:
    """A test-only root: the test series descriptions and images, nothing else."""
    root = tmp_path / "test_root"
    root.mkdir()
    shutil.copy(phantom_root / "test_series_descriptions.csv", root)
    shutil.copytree(phantom_root / "test_images", root / "test_images")
    return root


def test_every_study_gets_25_rows_from_its_images(whole_run, phantom_root, tmp_path):
    root = _test_root(phantom_root, tmp_path)
    sub, report = predict_whole_study(whole_run, root)
    ids = sorted(pd.read_csv(root / "test_series_descriptions.csv")["study_id"].unique())
    assert len(ids) == 3 and len(sub) == 75
    check_submission(sub, ids)
    assert report.empty, report["reason"].unique()
    places = report.attrs["places"]
    assert len(places) == 75 and places.groupby("group").size().to_dict() == {
        "foraminal": 30, "spinal": 15, "subarticular": 30}
    assert places.loc[places["mirror"], "target"].str.startswith("right_sub").all()


def test_a_study_without_sagittal_t1_gets_its_foramina_from_the_prior(
        whole_run, phantom_root, tmp_path):
    root = _test_root(phantom_root, tmp_path)
    table = pd.read_csv(root / "test_series_descriptions.csv")
    sid = int(table["study_id"].iloc[0])
    t1 = table[(table["study_id"] == sid) & (table["series_description"] == "Sagittal T1")]
    table.drop(index=t1.index).to_csv(root / "test_series_descriptions.csv", index=False)
    shutil.rmtree(series_dir(root, sid, int(t1["series_id"].iloc[0]), split="test"))
    sub, report = predict_whole_study(whole_run, root)
    assert len(sub) == 75
    assert set(report["study_id"]) == {sid} and len(report) == 10
    assert report["target"].str.contains("neural_foraminal").all()
    assert report["reason"].str.startswith("no Sagittal T1 series").all()
    assert report["reason"].str.contains("training prior").all()


def test_a_listed_but_missing_sagittal_t2_series_fills_the_study_from_the_prior(
        whole_run, phantom_root, tmp_path):
    root = _test_root(phantom_root, tmp_path)
    table = pd.read_csv(root / "test_series_descriptions.csv")
    sid = int(table["study_id"].iloc[-1])
    sag = table[(table["study_id"] == sid)
                & (table["series_description"] == "Sagittal T2/STIR")]["series_id"].iloc[0]
    shutil.rmtree(series_dir(root, sid, int(sag), split="test"))
    sub, report = predict_whole_study(whole_run, root)
    check_submission(sub, sorted(table["study_id"].unique()))
    assert set(report["study_id"]) == {sid} and len(report) == 25
    assert report["reason"].str.contains(f"{sag} is missing").all()


def test_a_run_without_its_level_finder_says_how_to_fit_one(whole_run, phantom_root,
                                                            tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(whole_run, bare, ignore=shutil.ignore_patterns("levels.keras"))
    with pytest.raises(DataError, match=r"no levels.keras .* lss levels --run"):
        predict_whole_study(bare, _test_root(phantom_root, tmp_path))


def test_cli_writes_a_whole_study_runs_submission(whole_run, phantom_root, tmp_path, capsys):
    from lss.cli import main

    root = _test_root(phantom_root, tmp_path)
    out = tmp_path / "sub.csv"
    assert main(["predict", "--run", str(whole_run), "--data", str(root),
                 "--out", str(out)]) == 0
    assert f"Wrote 75 rows to {out}" in capsys.readouterr().out
    assert len(pd.read_csv(out)) == 75
    assert main(["predict", "--run", str(whole_run), "--data", str(root), "--out",
                 str(out), "--target-only"]) == 2
    err = capsys.readouterr().err
    assert "whole-study run" in err and len(err.strip().splitlines()) == 1


def test_right_recesses_are_graded_mirrored_and_a_study_folder_works(
        whole_run, phantom_root, monkeypatch):
    """The windows the models see: right subarticular ones reversed left-right (as
    WindowDataset(mirror=...) does in training), the others as level_window gives them."""
    from lss.data import level_window, scan_series
    from lss.run import RunDir

    seen = []
    real = lss.study_predict.predict_proba
    monkeypatch.setattr(lss.study_predict, "predict_proba",
                        lambda model, v, **kw: seen.append(v) or real(model, v, **kw))
    study = sorted((phantom_root / "test_images").iterdir())[0]
    sub, report = predict_whole_study(whole_run, study_dir=study)
    check_submission(sub, [int(study.name)])
    assert report.empty
    places = report.attrs["places"]
    sub_places = places[places["group"] == "subarticular"].reset_index(drop=True)
    volumes = next(v for v in seen if len(v) == len(sub_places))
    preprocess = RunDir(whole_run / "subarticular").read_config().preprocess
    for r, v in zip(sub_places.itertuples(), volumes, strict=True):
        plain = level_window(scan_series(study / str(r.series_id)), r.instance_number,
                             preprocess, centre_xy=(r.x, r.y)).volume
        assert np.array_equal(v, plain[:, :, ::-1] if r.mirror else plain)
    assert sub_places["mirror"].sum() == 5


def test_a_loaded_grader_gives_the_same_submission(whole_run, phantom_root, tmp_path):
    """predict_whole_study on a run folder and on its load_grader (warm models, as the
    benchmark times it) write the same rows."""
    from lss.study_predict import load_grader

    root = _test_root(phantom_root, tmp_path)
    cold, _ = predict_whole_study(whole_run, root)
    warm, _ = predict_whole_study(load_grader(whole_run), root)
    pd.testing.assert_frame_equal(cold, warm)


def test_a_run_trained_elsewhere_reads_its_training_tables_from_the_given_root(
        whole_run, phantom_root, tmp_path):
    """A run folder copied to another machine (a Kaggle dataset): its recorded data root
    is not there, so the training tables come from the root it grades, which has them;
    with neither, one line naming both."""
    import json

    from lss.study_predict import load_grader

    moved = tmp_path / "moved_run"
    shutil.copytree(whole_run, moved)
    manifest = json.loads((moved / "manifest.json").read_text())
    manifest["data"]["root"] = str(tmp_path / "elsewhere")
    (moved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="neither its recorded data root .*elsewhere"):
        load_grader(moved)
    here, _ = predict_whole_study(whole_run, phantom_root, split="train", study_ids=[
        int(load_tables(phantom_root).train["study_id"].iloc[0])])
    there, _ = predict_whole_study(moved, phantom_root, split="train",
                                   study_ids=[int(here["row_id"].iloc[0].split("_")[0])])
    pd.testing.assert_frame_equal(here, there)


def test_evaluate_whole_study_puts_both_routes_beside_the_constants(whole_run, capsys):
    """lss evaluate on a whole-study run with its finder: levels found (the validation
    studies graded as new studies, never their table rows for the crops) and the table's
    points in one table, the constants the same as the oracle's own scoring, the
    bootstrap gap of the found route against the weighted prior and the placed crops'
    errors, all written to the run folder."""
    from lss.cli import main
    from lss.competition import score, solution_frame
    from lss.locate import place_errors
    from lss.run import RunDir
    from lss.whole_study import evaluate_whole_study, whole_study_scores

    cache = whole_run.parent / "cache"
    table, gap, places = evaluate_whole_study(whole_run, cache_dir=cache, n_resamples=200)
    assert list(table.index) == ["levels found", "table's points", "prior", "uniform",
                                 "weighted_prior"]
    oracle = whole_study_scores(whole_run, cache_dir=cache)
    np.testing.assert_allclose(table.loc["table's points"].to_numpy(float),
                               oracle.loc["model"].to_numpy(float))
    constants = ["prior", "uniform", "weighted_prior"]
    np.testing.assert_allclose(table.loc[constants].to_numpy(float),
                               oracle.loc[constants].to_numpy(float))
    assert not np.allclose(table.loc["levels found"].to_numpy(float),
                           oracle.loc["model"].to_numpy(float))
    root = RunDir(whole_run).data_root()
    split = RunDir(whole_run).read_split()
    val_ids = split.loc[split["split"] == "val", "study_id"].tolist()
    found, report = predict_whole_study(whole_run, root, split="train", study_ids=val_ids)
    train_df = load_tables(root).train
    direct = score(solution_frame(train_df[train_df["study_id"].isin(val_ids)]), found)
    assert table.loc["levels found", "score"] == pytest.approx(direct["score"], abs=1e-12)
    want = table.loc["levels found"] - table.loc["weighted_prior"]
    np.testing.assert_allclose(gap["gap"].to_numpy(float), want[gap.index].to_numpy(float))
    assert gap.attrs["route"] == "levels found"
    assert len(places) == len(place_errors(report.attrs["places"], root)) > 0
    saved = pd.read_csv(whole_run / "competition_scores.csv", index_col="answer")
    assert list(saved.index) == list(table.index)
    assert (whole_run / "competition_gap.csv").is_file()
    assert len(pd.read_csv(whole_run / "place_errors.csv")) == len(places)
    for levels in ("table", "found"):
        assert main(["evaluate", "--run", str(whole_run), "--cache", str(cache),
                     "--levels", levels]) == 0
        out = capsys.readouterr().out
        assert "levels found" in out and "minus the weighted prior" in out
        assert "distance to the table's point" in out


def test_place_errors_measure_mm_from_the_tables_point(phantom_root):
    """Places at the table's own points are 0 mm off and on its slice; moved 10 pixels
    along a row they are 10 pixel spacings off; a target the table lacks is left out."""
    from lss.data.geometry import read_geometry
    from lss.locate import place_errors, summarise_place_errors

    co = load_tables(phantom_root).coordinates
    co = co[co["study_id"] == co["study_id"].iloc[0]]
    places = pd.DataFrame({
        "study_id": co["study_id"],
        "target": coordinate_targets(co),
        "group": "any", "series_id": co["series_id"],
        "instance_number": co["instance_number"], "x": co["x"], "y": co["y"]})
    exact = place_errors(places, phantom_root)
    assert len(exact) == len(co) and (exact["mm"] < 1e-6).all() and exact["same_slice"].all()
    moved = place_errors(places.assign(x=places["x"] + 10), phantom_root)
    first = co.iloc[0]
    geo = read_geometry(series_dir(phantom_root, first.study_id, first.series_id))
    column = geo.pixel_spacing[geo.index_of(int(first.instance_number)), 1]
    assert moved["mm"].iloc[0] == pytest.approx(10 * column, rel=1e-6)
    extra = pd.concat([places, places.iloc[:1].assign(target="not_a_target")])
    assert len(place_errors(extra, phantom_root)) == len(co)
    table = summarise_place_errors(exact)
    assert table.loc["any", "targets"] == len(co) and table.loc["any", "within_10mm"] == 1


# --------------------------------------------------------- the Kaggle submission notebook

def _kaggle_input(phantom_root: Path, whole_run: Path, tmp_path: Path) -> Path:
    """A stand-in /kaggle/input: the competition's folder (its tables, test images only),
    the offline kit (a wheel's name is enough: lss is installed here) and the run, each
    under its own dataset name."""
    from lss.data.sources import KAGGLE_COMPETITION

    inputs = tmp_path / "input"
    inputs.mkdir()
    data = _test_root(phantom_root, inputs).rename(inputs / KAGGLE_COMPETITION)
    for table in phantom_root.glob("*.csv"):  # train.csv and the rest, as on Kaggle
        shutil.copy(table, data)
    (inputs / "my-lss-kit").mkdir()
    (inputs / "my-lss-kit" / "lss-0.1.0-py3-none-any.whl").write_bytes(b"")
    shutil.copytree(whole_run, inputs / "my-whole-study-run" / "run")
    return inputs


def _run_submission_notebook(inputs: Path, working: Path) -> dict:
    """Execute data_scripts/kaggle_submission.py's code cells in order, in one
    namespace, with its parameters cell replaced; return the namespace."""
    import jupytext

    nb = jupytext.read(str(Path(__file__).parents[1] / "data_scripts"
                           / "kaggle_submission.py"))
    namespace: dict = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        code = cell.source
        if "parameters" in cell.metadata.get("tags", []):
            code = f"INPUT = {str(inputs)!r}\nWORKING = {str(working)!r}\n"
        exec(compile(code, "kaggle_submission", "exec"), namespace)
    return namespace


def test_the_kaggle_submission_notebook_finds_its_inputs_and_writes_25_rows_a_study(
        whole_run, phantom_root, tmp_path, capsys):
    inputs = _kaggle_input(phantom_root, whole_run, tmp_path)
    working = tmp_path / "working"
    ns = _run_submission_notebook(inputs, working)
    assert ns["RUN"] == inputs / "my-whole-study-run" / "run"  # not a group's manifest
    sub = pd.read_csv(working / "submission.csv")
    ids = pd.read_csv(inputs / lss.data.sources.KAGGLE_COMPETITION
                      / "test_series_descriptions.csv")["study_id"].unique()
    assert len(sub) == 25 * len(ids) == 75
    check_submission(sub, ids)
    assert "3 studies, 75 rows: submission.csv" in capsys.readouterr().out


def test_the_kaggle_submission_notebook_names_a_missing_run(whole_run, phantom_root,
                                                               tmp_path):
    inputs = _kaggle_input(phantom_root, whole_run, tmp_path)
    shutil.rmtree(inputs / "my-whole-study-run")
    with pytest.raises(SystemExit, match=r"^Attach exactly one whole-study run .*"
                                         r"\(found: none\)$"):
        _run_submission_notebook(inputs, tmp_path / "working")
