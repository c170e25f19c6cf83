"""The experiment runner: one split for every row, manifests, reruns, ROI without leaks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dicom_factory import write_labelled_root

from lss.baselines import linear_probe
from lss.cli import main
from lss.comparison import best_row, format_table, summarise
from lss.config import Config, LocaliserConfig
from lss.data import DataError, build_index, level_window, scan_series
from lss.evaluate import evaluate_run, predict
from lss.experiments import (
    Combination,
    Experiment,
    combine,
    default_experiments,
    run_experiment,
    run_experiments,
)
from lss.localiser import centres_for_series, load_run_localiser
from lss.metrics import classification_report, paired_bootstrap, rsna_log_loss, score
from lss.run import RunDir
from lss.train import split_by_study, train

TINY = dict(n_slices=2, image_size=16, batch_size=4, cnn_filters=(4,), lstm_units=4,
            dense_units=4, early_stopping_patience=10, epochs=3, learning_rate=1e-2)
LOCALISER_FILE = RunDir.LOCALISER
LOC = LocaliserConfig(image_size=16, filters=(4, 4), epochs=3, batch_size=8)


def tiny_rows() -> list:
    base = Config().replace(**TINY)
    rows = [("paper", {}), ("no_flip", {"horizontal_flip": False}),
            ("roi", {"crop_mm": 8.0, "image_size": 8})]
    return [Experiment(n, base.replace(**c), n, c) for n, c in rows] + [Combination()]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_labelled_root(tmp_path_factory.mktemp("exp") / "root", 24)


@pytest.fixture(scope="module")
def ran(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "experiments"
    table = run_experiments(data, tiny_rows(), out, cache_dir=out.parent / "cache", workers=1,
                            localiser=LOC, n_boot=50, progress=None)
    return table, out


def test_every_row_has_its_run_folder_manifest_and_the_same_split(ran, data):
    table, out = ran
    models = table[table.kind == "model"]
    assert models.experiment.tolist() == ["paper", "no_flip", "roi", "combined"]
    assert table[table.kind == "reference"].experiment.tolist() == ["majority", "prior",
                                                                   "weighted_prior"]
    splits = []
    for name in ("paper", "no_flip", "roi"):
        run = out / name
        m = json.loads((run / "manifest.json").read_text())
        assert m["experiment"]["name"] == name and m["data"]["root"] == str(data.resolve())
        assert m["status"] == "evaluated" and m["seed"] == 0
        assert m["experiment"]["rerun"] == (f"lss train --data {data.resolve()} --config "
                                            f"{(run / 'config.json').resolve()} --run "
                                            f"{run.resolve()}-rerun")
        splits.append(pd.read_csv(run / "splits.csv"))
    for s in splits[1:]:
        pd.testing.assert_frame_equal(s, splits[0])
    assert (out / "experiments.csv").is_file() and (out / "manifest.json").is_file()
    payload = json.loads((out / "experiments.json").read_text())
    assert payload["data"]["kind"] == "rsna" and payload["primary_metric"] == "balanced_accuracy"
    # the ROI row carries its localiser and was scored at the localiser's centres
    roi = models.set_index("experiment").loc["roi"]
    assert roi.centres == "localiser" and (out / "roi" / LOCALISER_FILE).is_file()
    assert models.set_index("experiment").loc["paper", "centres"] == "whole slice"
    assert set(table.attrs["localiser"]) >= {"median_mm", "fraction_within"}
    assert (out / "localiser" / "val_centres.csv").is_file()
    # the paper row's difference from itself is exactly zero
    paper = models.set_index("experiment").loc["paper"]
    assert paper.delta_balanced_accuracy == 0 and paper.delta_balanced_accuracy_high == 0
    text = format_table(table, data_label="tiny test data")
    assert text.startswith("Data: tiny test data (validation n = ")
    said = summarise(table)
    assert said[0].startswith("Rows that answer a single grade") and len(said) == 4
    # the rerun command reads the row's config.json, which holds every setting that shapes
    # the row, the localiser's included
    roi_cfg = RunDir(out / "roi").read_config()
    assert roi_cfg.preprocess.crop_mm == 8.0 and roi_cfg.preprocess.image_size == 8
    assert roi_cfg.train.epochs == 3 and roi_cfg.train.learning_rate == 0.01
    assert roi_cfg.localiser == LOC


def test_rerunning_one_row_reproduces_its_metrics(ran, data, tmp_path):
    table, out = ran
    rows = tiny_rows()
    again = run_experiment(data, rows[1], tmp_path / "again", cache_dir=out.parent / "cache",
                           workers=1, localiser=LOC)
    first = table.set_index("experiment").loc["no_flip"]
    for m in ("accuracy", "balanced_accuracy", "macro_f1", "rsna_log_loss"):
        assert again[m] == pytest.approx(first[m], abs=1e-12), m
    # by name, from a list of rows
    by_name = run_experiment(data, "roi", tmp_path / "again", experiments=rows,
                             cache_dir=out.parent / "cache", workers=1, localiser=LOC)
    assert by_name["rsna_log_loss"] == pytest.approx(
        table.set_index("experiment").loc["roi", "rsna_log_loss"], abs=1e-12)


def test_roi_validation_never_reads_the_validation_coordinates(ran, data, tmp_path):
    table, out = ran
    run = out / "roi"
    scrambled = tmp_path / "scrambled"
    shutil.copytree(data, scrambled)
    split = pd.read_csv(run / "splits.csv")
    val = set(split.loc[split.split == "val", "study_id"])
    coords = pd.read_csv(scrambled / "train_label_coordinates.csv")
    rng = np.random.default_rng(1)
    is_val = coords.study_id.isin(val)
    coords.loc[is_val, "x"] = rng.uniform(0, 15, is_val.sum())
    coords.loc[is_val, "y"] = rng.uniform(0, 15, is_val.sum())
    coords.to_csv(scrambled / "train_label_coordinates.csv", index=False)
    report = evaluate_run(run, scrambled, out_dir=tmp_path / "eval", cache_dir=tmp_path / "c",
                          workers=1, figures=False)
    assert report["centres"] == "localiser"
    a = pd.read_csv(run / "predictions.csv")
    b = pd.read_csv(tmp_path / "eval" / "predictions.csv")
    pd.testing.assert_frame_equal(a, b, rtol=1e-6)
    # an ROI run without its localiser falls back to the table's points, and says so
    (run / LOCALISER_FILE).rename(tmp_path / "moved.keras")
    try:
        oracle = evaluate_run(run, data, out_dir=tmp_path / "oracle",
                              cache_dir=out.parent / "cache", workers=1, figures=False)
    finally:
        (tmp_path / "moved.keras").rename(run / LOCALISER_FILE)
    assert oracle["centres"] == "coordinate table"


def test_train_crops_validation_rows_at_the_given_centres(data, tmp_path):
    cfg = Config().replace(**TINY).replace(crop_mm=8.0, image_size=8, epochs=1)
    index = build_index(data)
    split = split_by_study(index, seed=cfg.train.seed)
    n_val = int((split.split == "val").sum())
    train(data, cfg, tmp_path / "run", cache_dir=tmp_path / "c", workers=1, verbose=0,
          val_centres=np.full((n_val, 2), 4.0))
    entries = list((tmp_path / "c").glob("*/*.npz"))
    at_given = [p for p in entries if p.name.endswith("_4.0_4.0.npz")]
    assert len(at_given) == n_val and len(entries) == len(index)
    with pytest.raises(ValueError, match="val_centres must have shape"):
        train(data, cfg, tmp_path / "bad", cache_dir=tmp_path / "c", workers=1, verbose=0,
              val_centres=np.zeros((n_val + 1, 2)))


def _make_test_split(root: Path, study_ids: list[int]) -> None:
    series = pd.read_csv(root / "train_series_descriptions.csv")
    series[series.study_id.isin(study_ids)].to_csv(root / "test_series_descriptions.csv",
                                                   index=False)
    for sid in study_ids:
        shutil.copytree(root / "train_images" / str(sid), root / "test_images" / str(sid),
                        dirs_exist_ok=True)


def test_predict_on_an_roi_run_crops_where_its_localiser_points(ran, data, tmp_path):
    table, out = ran
    run = out / "roi"
    _make_test_split(data, [1002, 1005])
    sub = predict(run, data, levels="middle")
    model, config = RunDir(run).load()
    headers = [scan_series(data / "test_images" / str(s) / str(s + 4000)) for s in (1002, 1005)]
    centres = centres_for_series(load_run_localiser(run), headers)
    x = np.stack([level_window(h, None, config.preprocess, centre_xy=c).volume
                  for h, c in zip(headers, centres, strict=True)])
    expected = model.predict(x[..., None], verbose=0)
    np.testing.assert_allclose(sub[["normal_mild", "moderate", "severe"]].to_numpy(),
                               expected / expected.sum(1, keepdims=True), rtol=1e-5)
    bare = tmp_path / "bare"
    shutil.copytree(run, bare)
    (bare / LOCALISER_FILE).unlink()
    with pytest.raises(DataError, match="has no localiser.keras"):
        predict(bare, data, levels="middle")
    with pytest.raises(DataError, match=r"has no levels.keras to find L4/L5 in new studies: "
                                        r"fit one with lss levels"):
        predict(run, data)  # found levels (the default) need the run's level finder


def _table(values: dict[str, float], metric: str = "balanced_accuracy") -> pd.DataFrame:
    return pd.DataFrame({"experiment": list(values), metric: list(values.values())})


def test_combination_takes_exactly_the_rows_that_beat_the_reference():
    base = Config()
    rows = [Experiment("paper", base), Experiment("a", base.replace(horizontal_flip=False),
                                                  changes={"horizontal_flip": False}),
            Experiment("b", base.replace(class_weight="rsna"), changes={"class_weight": "rsna"}),
            Experiment("c", base.replace(crop_mm=40.0, image_size=64),
                       changes={"crop_mm": 40.0, "image_size": 64})]
    c = Combination()
    merged = combine(c, _table({"paper": 0.40, "a": 0.45, "b": 0.40, "c": 0.50}), rows)
    assert merged.config == base.replace(horizontal_flip=False, crop_mm=40.0, image_size=64)
    assert merged.name == "combined" and "a + c" in merged.description
    assert combine(c, _table({"paper": 0.5, "a": 0.4, "b": 0.5, "c": 0.1}), rows) is None
    loss = Combination(metric="rsna_log_loss")
    merged = combine(loss, _table({"paper": 1.0, "a": 1.1, "b": 0.9, "c": 1.0},
                                  "rsna_log_loss"), rows)
    assert merged.config == base.replace(class_weight="rsna")
    clash = rows + [Experiment("d", base.replace(class_weight="balanced"),
                               changes={"class_weight": "balanced"})]
    with pytest.raises(ValueError, match="disagree on 'class_weight'"):
        combine(c, _table({"paper": 0.1, "a": 0.1, "b": 0.2, "c": 0.1, "d": 0.2}), clash)


def test_rows_must_share_one_split(data, tmp_path):
    rows = [Experiment("a", Config()), Experiment("b", Config().replace(seed=1))]
    with pytest.raises(ValueError, match="must share one split"):
        run_experiments(data, rows, tmp_path, progress=None)
    with pytest.raises(ValueError, match="letters, digits"):
        Experiment("no/slash", Config())


def test_default_rows_change_one_thing_each():
    rows = default_experiments(epochs=3, learning_rate=1e-3)
    paper = rows[0].config
    names = [r.name for r in rows]
    assert names == ["paper", "no_flip", "class_weights", "paper_level", "more_epochs",
                     "roi", "roi_spatial", "roi_level", "combined"]
    by = {r.name: r for r in rows[:-1]}
    assert paper == Config().replace(epochs=3, learning_rate=1e-3)
    assert paper.train.horizontal_flip and paper.train.pooling == "average"
    for r in rows[1:-1]:
        assert r.config == paper.replace(**r.changes)
        assert r.config.train.seed == paper.train.seed
        assert r.config.train.learning_rate == 1e-3
        assert r.config.train.epochs == (6 if r.name == "more_epochs" else 3)
    assert [r.roi for r in rows[:-1]] == [False] * 5 + [True] * 3
    # the level window is tested on whole slices and on the crop alike
    assert dict(by["paper_level"].changes) == {"n_slices": 3}
    assert by["paper_level"].config.preprocess.crop_mm is None
    assert dict(by["more_epochs"].changes) == {"epochs": 6}
    # roi_spatial and roi_level each add one change to the row above them
    roi, spatial, level = (dict(by[n].changes) for n in ("roi", "roi_spatial", "roi_level"))
    assert {k: v for k, v in spatial.items() if k not in roi} == {"pooling": "flatten"}
    assert {k: v for k, v in level.items() if k not in spatial} == {"n_slices": 3}
    assert default_experiments()[0].config.train.learning_rate == 1e-4  # the paper's


def test_fast_scores_match_lss_metrics_and_bootstrap_of_a_model_against_itself():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    p = rng.dirichlet([1, 1, 1], 60)
    rep = classification_report(y, p)
    assert score(y, p, "accuracy") == pytest.approx(rep["accuracy"])
    assert score(y, p, "balanced_accuracy") == pytest.approx(rep["balanced_accuracy"])
    assert score(y, p, "macro_f1") == pytest.approx(rep["macro"]["f1"])
    assert score(y, p, "rsna_log_loss") == pytest.approx(rsna_log_loss(y, p))
    assert paired_bootstrap(y, p, p, n_boot=20) == (0.0, 0.0, 0.0)
    d, lo, hi = paired_bootstrap(y, p, np.eye(3)[y], n_boot=200)
    assert d > 0 and lo <= d <= hi


def test_best_row_prefers_the_primary_metric_then_the_lower_log_loss():
    t = pd.DataFrame({"experiment": ["a", "b", "c", "majority"],
                      "kind": ["model", "model", "model", "reference"],
                      "balanced_accuracy": [0.5, 0.6, 0.6, 0.9],
                      "rsna_log_loss": [1.0, 1.2, 1.1, np.nan]})
    assert best_row(t)["experiment"] == "c"


def test_command_line_runs_the_named_row(monkeypatch, tmp_path, capsys, data):
    seen = {}

    def fake(root, name, out, **kw):
        seen.update(root=root, name=name, out=out, **kw)
        return {"experiment": name, "epochs_run": 1, "balanced_accuracy": 0.5,
                "rsna_log_loss": 1.0, "train_seconds": 1.0, "run_dir": str(tmp_path)}

    monkeypatch.setattr("lss.experiments.run_experiment", fake)
    assert main(["experiments", "--data", str(data), "--out", str(tmp_path), "--row", "no_flip",
                 "--epochs", "2", "--localiser-epochs", "5", "--class-weight", "rsna"]) == 0
    assert seen["name"] == "no_flip" and seen["localiser"].epochs == 5
    rows = {e.name: e for e in seen["experiments"]}
    assert rows["no_flip"].config.train.epochs == 2
    assert rows["class_weights"].config.train.class_weight == "rsna"
    assert "the RSNA 2024 data (" in capsys.readouterr().out


def test_linear_probe_reads_the_runs_own_inputs(ran):
    from lss.comparison import load_table

    table, out = ran
    probe = linear_probe(out / "roi", size=8, cs=(1.0,), folds=2, workers=1,
                         cache_dir=out.parent / "cache")
    assert probe["centres"] == "localiser" and probe["n_features"] == 64
    assert 0 <= probe["balanced_accuracy"] <= 1 and probe["rsna_log_loss"] > 0
    whole = linear_probe(out / "paper", size=8, cs=(1.0,), folds=2, workers=1,
                         cache_dir=out.parent / "cache")
    assert whole["centres"] == "whole slice" and whole["crop_mm"] is None
    again = load_table(out)
    assert again.attrs["data"]["kind"] == "rsna"
    assert again.experiment.tolist() == table.experiment.tolist()


def test_weighted_prior_is_the_best_constant_for_the_rsna_log_loss():
    from lss.metrics import weighted_prior

    y = np.array([0] * 9 + [1] * 6 + [2] * 3)
    best = weighted_prior(y)
    np.testing.assert_allclose(best, np.array([9, 12, 12]) / 33)
    loss = rsna_log_loss(y, np.tile(best, (len(y), 1)))
    rng = np.random.default_rng(0)
    for _ in range(50):
        other = np.clip(best + rng.normal(0, 0.05, 3), 1e-3, None)
        assert rsna_log_loss(y, np.tile(other / other.sum(), (len(y), 1))) >= loss - 1e-12
    plain = np.bincount(y) / len(y)
    assert rsna_log_loss(y, np.tile(plain, (len(y), 1))) > loss


def test_a_combination_of_several_rows_is_trained_as_its_own_row(data, tmp_path, monkeypatch):
    import lss.experiments as ex

    base = Config().replace(**TINY).replace(epochs=1)
    rows = [Experiment("paper", base), Experiment("no_flip", base.replace(horizontal_flip=False),
                                                  changes={"horizontal_flip": False})]
    merged = Experiment("combined", base.replace(horizontal_flip=False, class_weight="rsna"),
                        "two changes", {"horizontal_flip": False, "class_weight": "rsna"})
    monkeypatch.setattr(ex, "combine", lambda c, table, plain: merged)
    table = run_experiments(data, rows + [Combination()], tmp_path, workers=1, n_boot=0,
                            cache_dir=tmp_path / "cache", progress=None)
    row = table.set_index("experiment").loc["combined"]
    assert row.run_dir == str(tmp_path / "combined") and row.epochs_run == 1
    cfg = Config.from_file(tmp_path / "combined" / "config.json")
    assert cfg.train.class_weight == "rsna" and not cfg.train.horizontal_flip


def test_roi_row_trains_on_a_study_without_a_coordinate_row(data, tmp_path):
    # Two training studies lose their coordinate rows: build_index keeps them ("only
    # series", no point); the ROI row crops them where the localiser points.
    root = tmp_path / "root"
    shutil.copytree(data, root)
    rows = tiny_rows()
    index = build_index(root)
    split = split_by_study(index, seed=rows[0].config.train.seed)
    dropped = split.loc[split.split == "train", "study_id"].iloc[:2].tolist()
    coords = pd.read_csv(root / "train_label_coordinates.csv")
    coords[~coords.study_id.isin(dropped)].to_csv(root / "train_label_coordinates.csv",
                                                  index=False)
    assert build_index(root).set_index("study_id").loc[dropped, "x"].isna().all()
    roi = next(r for r in rows if r.name == "roi")
    row = run_experiment(root, roi, tmp_path / "out", cache_dir=tmp_path / "c", workers=1,
                         localiser=LOC)
    assert row["n_val"] == int((split.split == "val").sum())
    manifest = json.loads((tmp_path / "out" / "roi" / "manifest.json").read_text())
    assert manifest["n_train"] == int((split.split == "train").sum())  # nobody dropped
    probe = linear_probe(tmp_path / "out" / "roi", root, cache_dir=tmp_path / "c", workers=1)
    assert probe["centres"] == "localiser"


def test_saliency_audit_scores_every_validation_study_of_whole_slice_and_crop_runs(ran, data):
    from lss.attribution import saliency_audit, summarise_audit

    _, out = ran
    for name in ("paper", "roi"):
        run = RunDir(out / name)
        n_val = int((run.read_split().split == "val").sum())
        audit = saliency_audit(out / name, data, cache_dir=out.parent / "cache",
                               occlusion_patch=4)
        assert len(audit) == n_val  # nothing dropped: a missed crop is a row, 'outside'
        inside = audit[~audit.outside.astype(bool)]
        assert len(inside) > 0
        for col in ("grad_cam_share", "occlusion_share"):
            shares = inside[col].dropna()
            assert ((shares >= 0) & (shares <= 1 + 1e-9)).all()
        assert ((inside.grad_cam_max >= 0) & (inside.grad_cam_max <= 1)).all()
        assert (inside.occlusion_max >= 0).all()
        assert ((inside.uniform_share > 0) & (inside.uniform_share <= 1)).all()
        summary = summarise_audit(audit)
        assert summary["n"] + summary["n_outside"] == n_val
        assert np.isclose(summary["grad_cam_ratio"],
                          summary["grad_cam_share"] / summary["uniform_share"])
    with pytest.raises(ValueError, match="methods must be"):
        saliency_audit(out / "paper", data, methods=("lime",))
