"""A whole-study run (lss.whole_study): one model per condition group on one split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lss.config import Config, LocaliserConfig
from lss.run import RunDir
from lss.whole_study import group_config, train_whole_study, whole_study_scores

TINY = dict(n_slices=2, image_size=16, batch_size=8, cnn_filters=(4,), lstm_units=4,
            dense_units=4, early_stopping_patience=10, epochs=1, crop_mm=40.0, seed=0,
            localiser=LocaliserConfig(image_size=32, filters=(4, 8), epochs=1, batch_size=8))


@pytest.fixture(scope="module")
def whole(phantom_root, tmp_path_factory):
    run = tmp_path_factory.mktemp("whole") / "run"
    manifest = train_whole_study(phantom_root, run, Config().replace(**TINY),
                                 cache_dir=run.parent / "cache")
    return run, manifest


def test_every_group_trains_on_one_shared_split(whole):
    run, manifest = whole
    assert set(manifest["groups"]) == {"subarticular", "spinal", "foraminal"}
    assert sum(len(g["targets"]) for g in manifest["groups"].values()) == 25
    top = RunDir(run).read_split().set_index("study_id")["split"]
    for group in manifest["groups"]:
        rows = RunDir(run / group).read_split()
        assert (rows["split"].to_numpy() == top.loc[rows["study_id"]].to_numpy()).all()
        assert len(rows) == manifest["groups"][group]["rows"]
        assert not RunDir(run / group).read_config().train.horizontal_flip


def test_scores_beside_the_constants(whole, phantom_root):
    run, _ = whole
    table = whole_study_scores(run, cache_dir=run.parent / "cache")
    assert list(table.index) == ["model", "prior", "uniform", "weighted_prior"]
    assert np.isclose(table.loc["uniform", "spinal"], np.log(3))
    assert table.notna().all().all() and table.attrs["centres"] == "coordinate table"
    # every group has a model: each term differs from the weighted prior's
    for term in ("spinal", "foraminal", "subarticular"):
        assert table.loc["model", term] != table.loc["weighted_prior", term]


def test_a_subset_of_targets_trains_only_their_group(phantom_root, tmp_path):
    targets = ["left_subarticular_stenosis_l4_l5", "right_subarticular_stenosis_l4_l5"]
    manifest = train_whole_study(phantom_root, tmp_path / "run", Config().replace(**TINY),
                                 targets=targets, cache_dir=tmp_path / "cache")
    assert list(manifest["groups"]) == ["subarticular"]
    sub = manifest["groups"]["subarticular"]
    assert sub["targets"] == targets
    # the recess localiser: the training studies' rows of both sides, nothing held out
    split = RunDir(tmp_path / "run").read_split()
    held_out = set(split.loc[split["split"] == "val", "study_id"])
    rows = pd.read_csv(tmp_path / "run" / "subarticular" / "splits.csv")
    assert sub["localiser"]["n_train"] == (~rows["study_id"].isin(held_out)).sum()
    assert RunDir(tmp_path / "run" / "subarticular").localiser.is_file()
    table = whole_study_scores(tmp_path / "run", cache_dir=tmp_path / "cache")
    for term in ("spinal", "foraminal"):  # no model: the weighted prior's rows
        assert np.isclose(table.loc["model", term], table.loc["weighted_prior", term])
    split = pd.read_csv(tmp_path / "run" / "subarticular" / "splits.csv")
    assert split.groupby("study_id").size().max() == 2  # one row per side


def test_reuse_keeps_a_finished_run_and_retrains_a_different_one(phantom_root, tmp_path,
                                                                 monkeypatch):
    """reuse=True returns a finished run of the same data, Config and targets without
    training; another Config (or other targets) in that folder is trained over, the old
    run's files (its level finder) removed first."""
    import lss.whole_study

    targets = ["right_subarticular_stenosis_l1_l2"]
    cfg = Config().replace(**TINY)
    train_whole_study(phantom_root, tmp_path / "run", cfg, targets=targets,
                      cache_dir=tmp_path / "cache")
    first = RunDir(tmp_path / "run").read_manifest()
    calls = []
    real = lss.whole_study.train
    monkeypatch.setattr(lss.whole_study, "train",
                        lambda *a, **k: calls.append(a) or real(*a, **k))
    again = train_whole_study(phantom_root, tmp_path / "run", cfg, targets=targets,
                              cache_dir=tmp_path / "cache", reuse=True)
    assert again == first and calls == []
    other = cfg.replace(seed=1)
    stale = RunDir(tmp_path / "run").level_finder
    stale.write_text("a level finder fitted on the old split")
    retrained = train_whole_study(phantom_root, tmp_path / "run", other, targets=targets,
                                  cache_dir=tmp_path / "cache", reuse=True)
    assert len(calls) == 1 and Config.from_dict(retrained["config"]) == other
    assert not stale.exists()  # its training studies were another split's
    assert RunDir(tmp_path / "run").read_manifest()["targets"] == targets


def test_a_whole_study_run_crops_and_names_no_flip():
    with pytest.raises(ValueError, match="crop_mm"):
        group_config(Config(), "spinal")
    with pytest.raises(ValueError, match="Unknown group"):
        group_config(Config().replace(crop_mm=40.0), "lumbar")


def test_cli_trains_and_scores_a_whole_study_run(phantom_root, tmp_path, capsys):
    import json

    from lss.cli import main

    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(Config().replace(**TINY).to_dict()))
    run = tmp_path / "run"
    common = ["--data", str(phantom_root), "--cache", str(tmp_path / "cache")]
    assert main(["train", *common, "--run", str(run), "--config", str(cfg),
                 "--targets", "spinal_canal_stenosis", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "spinal: 5 targets" in out and "lss evaluate --run" in out
    assert main(["evaluate", "--run", str(run), "--cache", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert "The competition's score of" in out and "weighted_prior" in out
    assert main(["train", *common, "--run", str(run), "--targets", "spinal_canal",
                 "--quiet"]) == 2
    assert "spinal_canal" in capsys.readouterr().err


def test_cli_trains_with_the_devices_whole_study_defaults(monkeypatch, phantom_root,
                                                         tmp_path):
    """lss train --targets: chapter 6's crop, on a CPU 10 epochs at 1e-3; an option
    given on the command line wins over the defaults."""
    import lss.whole_study
    from lss.cli import main

    seen = []

    def fake(root, run, cfg, **kwargs):
        seen.append(cfg)
        return {"groups": {}, "n_studies": 0}

    monkeypatch.setattr(lss.whole_study, "train_whole_study", fake)
    monkeypatch.setattr("lss.device.describe_accelerator", lambda: {"kind": "CPU"})
    base = ["train", "--targets", "all", "--data", str(phantom_root), "--run",
            str(tmp_path / "run")]
    assert main(base) == 0
    assert main([*base, "--epochs", "3", "--image-size", "32"]) == 0
    default, chosen = seen
    assert (default.train.epochs, default.train.learning_rate) == (10, 1e-3)
    assert default.preprocess.crop_mm == 40.0 and default.preprocess.image_size == 64
    assert (chosen.train.epochs, chosen.preprocess.image_size) == (3, 32)
    assert chosen.preprocess.crop_mm == 40.0
