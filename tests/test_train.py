"""Training, evaluation, prediction and the command line, on a tiny learnable dataset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from dicom_factory import write_labelled_root

from lss.cli import main
from lss.config import Config
from lss.data import TensorCache, build_index
from lss.data.loader import WindowDataset
from lss.evaluate import SUBMISSION_COLUMNS, evaluate_run, predict
from lss.train import class_weights, split_by_study, train

TINY = dict(n_slices=2, image_size=16, batch_size=4, cnn_filters=(4,), lstm_units=4,
            dense_units=4, early_stopping_patience=10)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return write_labelled_root(tmp_path_factory.mktemp("tiny") / "root", 24)


@pytest.fixture
def cfg() -> Config:
    return Config().replace(epochs=2, **TINY)


# --------------------------------------------------------------------------- split


def test_split_keeps_studies_whole_and_classes_in_ratio():
    rng = np.random.default_rng(0)
    labels = rng.choice(3, size=500, p=[0.45, 0.32, 0.23])
    df = pd.DataFrame({"study_id": np.arange(500) * 7 + 3, "label": labels})
    s = split_by_study(df, validation_fraction=0.2, seed=1)
    assert s["study_id"].tolist() == df["study_id"].tolist()
    val = s[s.split == "val"]
    for c in range(3):
        n_c = int((labels == c).sum())
        assert abs((val.label == c).sum() - 0.2 * n_c) <= 1, c
    # same seed, same split; another seed, another split
    assert split_by_study(df, seed=1).equals(s)
    assert not split_by_study(df, seed=2).equals(s)


def test_split_never_puts_one_study_on_both_sides():
    df = pd.DataFrame({"study_id": [1, 1, 2, 2, 3, 3, 4, 4, 5, 5] * 2,
                       "label": [0, 0, 1, 1, 0, 0, 1, 1, 0, 0] * 2})
    s = split_by_study(df, validation_fraction=0.4, seed=0)
    assert (s.groupby("study_id")["split"].nunique() == 1).all()
    assert set(s["split"]) == {"train", "val"}


def test_class_weights():
    np.testing.assert_allclose(class_weights([0, 0, 1, 2], "balanced"), [2 / 3, 4 / 3, 4 / 3])
    np.testing.assert_allclose(class_weights([0], "rsna"), [1, 2, 4])
    assert class_weights([0, 1], None) is None
    with pytest.raises(ValueError, match="'inverse'"):
        class_weights([0], "inverse")


def test_window_dataset_batches(tiny_data, tmp_path):
    idx = build_index(tiny_data)
    cache = TensorCache(tiny_data, Config().replace(**TINY).preprocess, cache_dir=tmp_path)
    cache.prepare(idx, workers=1)
    ds = WindowDataset(cache.paths(idx), idx["label"], batch_size=5, shuffle=True, seed=3,
                       weights=np.array([1.0, 2.0, 4.0]))
    assert len(ds) == 5
    x, y, w = ds[0]
    assert x.shape == (5, 2, 16, 16, 1) and y.shape == (5, 3)
    np.testing.assert_array_equal(w, np.array([1.0, 2.0, 4.0])[y.argmax(1)])
    seen = np.concatenate([ds[i][1].argmax(1) for i in range(len(ds))])
    assert sorted(seen.tolist()) == sorted(idx["label"].tolist())  # nothing dropped
    first = ds._order.copy()
    ds.on_epoch_end()
    assert not np.array_equal(first, ds._order)


def test_window_dataset_mirrors_only_the_flagged_samples(tiny_data, tmp_path):
    idx = build_index(tiny_data)
    cache = TensorCache(tiny_data, Config().replace(**TINY).preprocess, cache_dir=tmp_path)
    cache.prepare(idx, workers=1)
    flags = np.arange(len(idx)) % 3 == 0
    plain = WindowDataset(cache.paths(idx), batch_size=len(idx))[0][0]
    flipped = WindowDataset(cache.paths(idx), batch_size=len(idx), mirror=flags)[0][0]
    np.testing.assert_array_equal(flipped[~flags], plain[~flags])
    np.testing.assert_array_equal(flipped[flags], plain[flags][:, :, :, ::-1])
    assert not np.array_equal(flipped[flags], plain[flags])  # the windows are not symmetric
    with pytest.raises(ValueError, match="mirror flags"):
        WindowDataset(cache.paths(idx), mirror=flags[:-1])


# --------------------------------------------------------------------------- training


def test_a_shared_study_split_serves_an_index_with_several_rows_per_study(tiny_data,
                                                                           tmp_path, cfg):
    """The models of a whole-study run share one split by study, and an index may hold
    one row per target (here each study twice, once mirrored): no study on both sides."""
    idx = build_index(tiny_data)
    study_split = split_by_study(idx, seed=5)[["study_id", "split"]]
    rows = pd.concat([idx.assign(mirror=False), idx.assign(mirror=True)], ignore_index=True)
    res = train(tiny_data, cfg, tmp_path / "run", cache_dir=tmp_path / "cache",
                index=rows, study_split=study_split, verbose=0)
    split = res.split
    assert len(split) == 2 * len(idx)
    assert split.groupby("study_id")["split"].nunique().max() == 1
    expected = study_split.set_index("study_id")["split"]
    assert (split["split"].to_numpy() == expected.loc[split["study_id"]].to_numpy()).all()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["n_train"] + manifest["n_val"] == 2 * len(idx)


def test_two_epoch_run_writes_its_folder_and_changes_weights(tiny_data, tmp_path, cfg):
    keras.utils.set_random_seed(cfg.train.seed)
    from lss.model import build_from_config

    initial = build_from_config(cfg).get_weights()
    res = train(tiny_data, cfg, tmp_path / "run", cache_dir=tmp_path / "cache", verbose=0)
    run = tmp_path / "run"
    for name in ("best.keras", "history.csv", "history.json", "splits.csv", "config.json",
                 "manifest.json"):
        assert (run / name).is_file(), name
    assert not (run / "backup").exists()
    assert len(res.history) == 2 and set(res.history) >= {"loss", "val_loss", "accuracy"}
    changed = [not np.array_equal(a, b) for a, b in zip(initial, res.model.get_weights(),
                                                         strict=True)]
    assert any(changed)
    m = json.loads((run / "manifest.json").read_text())
    assert m["status"] == "trained" and m["seed"] == 0
    assert m["data"]["kind"] == "rsna" and m["data"]["root"] == str(tiny_data.resolve())
    assert m["config"]["train"]["epochs"] == 2
    assert m["n_train"] + m["n_val"] == 24
    assert m["environment"]["lss_version"]
    assert Config.from_file(run / "config.json") == cfg
    with pytest.raises(FileExistsError, match="already exists"):
        train(tiny_data, cfg, run, cache_dir=tmp_path / "cache", verbose=0)


class _Interrupt(keras.callbacks.Callback):
    """Raise in the middle of a given epoch, as a killed process would stop."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.at, self.epoch = epoch, -1

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == self.at and batch == 1:
            raise KeyboardInterrupt("simulated kill")


class _LastWeights(keras.callbacks.Callback):
    """The weights after the last epoch (train() returns the best epoch's)."""

    def on_train_end(self, logs=None):
        self.weights = self.model.get_weights()


def test_resume_after_a_mid_epoch_interruption_equals_an_uninterrupted_run(tiny_data,
                                                                          tmp_path):
    cfg = Config().replace(epochs=4, **TINY)
    kw = dict(cache_dir=tmp_path / "cache", verbose=0)
    whole_last, resumed_last = _LastWeights(), _LastWeights()
    whole = train(tiny_data, cfg, tmp_path / "whole", callbacks=[whole_last], **kw)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_data, cfg, tmp_path / "cut", callbacks=[_Interrupt(2)], **kw)
    assert (tmp_path / "cut" / "backup" / "epoch-2.json").is_file()
    resumed = train(tiny_data, cfg, tmp_path / "cut", resume=True, callbacks=[resumed_last],
                    **kw)
    timing = ["epoch_seconds"]  # wall time: the one column allowed to differ
    pd.testing.assert_frame_equal(whole.history.drop(columns=timing),
                                  resumed.history.drop(columns=timing))
    for a, b in zip(whole.model.get_weights(), resumed.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(whole_last.weights, resumed_last.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(FileExistsError, match="holds a finished run; nothing to resume"):
        train(tiny_data, cfg, tmp_path / "cut", resume=True, **kw)


def test_a_backup_keeps_the_torch_generators_only_under_torch(tmp_path):
    from lss.callbacks import Backup

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dropout(0.5)])
    backup = Backup(tmp_path / "backup")
    backup.set_model(model)
    backup.on_epoch_end(0)
    meta = json.loads((tmp_path / "backup" / "epoch-1.json").read_text())
    assert ("torch_rng" in meta) == (keras.backend.backend() == "torch")


@pytest.mark.skipif(keras.backend.backend() != "torch",
                    reason="torch's global generator feeds unseeded Dropout only under "
                           "KERAS_BACKEND=torch")
def test_a_resumed_run_gets_the_torch_generators_when_training_begins(tmp_path):
    import torch

    from lss.callbacks import Backup

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dropout(0.5)])
    saved = Backup(tmp_path / "backup")
    saved.set_model(model)
    saved.on_epoch_end(0)
    state = torch.get_rng_state().clone()
    torch.rand(10)  # what a new process's seeding and fit's own setup would do
    resumed = Backup(tmp_path / "backup", resume_epoch=1)
    resumed.set_model(model)
    resumed.on_train_begin()
    assert torch.equal(torch.get_rng_state(), state)
    meta = tmp_path / "backup" / "epoch-1.json"
    meta.write_text(json.dumps({k: v for k, v in json.loads(meta.read_text()).items()
                                if k != "torch_rng"}))
    with pytest.warns(UserWarning, match="holds no torch generator state"):
        resumed.on_train_begin()


def test_same_seed_same_metrics_on_cpu(tiny_data, tmp_path, cfg):
    kw = dict(cache_dir=tmp_path / "cache", verbose=0)
    a = train(tiny_data, cfg, tmp_path / "a", **kw).history
    b = train(tiny_data, cfg, tmp_path / "b", **kw).history
    a, b = (h.drop(columns="epoch_seconds") for h in (a, b))  # wall time differs
    pd.testing.assert_frame_equal(a, b)


# --------------------------------------------------------------------------- evaluate


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "run"
    cfg = Config().replace(epochs=2, **TINY)
    train(tiny_data, cfg, run, cache_dir=run.parent / "cache", verbose=0)
    return run


def test_evaluate_run_reports_model_beside_reference_points(trained, tmp_path):
    import matplotlib

    backend = matplotlib.get_backend()
    report = evaluate_run(trained, out_dir=tmp_path / "eval",
                          cache_dir=trained.parent / "cache")
    assert report["n_val"] == len(pd.read_csv(trained / "splits.csv").query("split == 'val'"))
    assert {"model", "majority", "prior", "data"} <= set(report)
    assert report["data"]["kind"] == "rsna"
    for name in ("metrics.json", "predictions.csv", "confusion_matrix.png", "history.png"):
        assert (tmp_path / "eval" / name).is_file(), name
    preds = pd.read_csv(tmp_path / "eval" / "predictions.csv")
    np.testing.assert_allclose(preds.filter(like="p_").sum(axis=1), 1.0, rtol=1e-5)
    assert json.loads((trained / "manifest.json").read_text())["status"] == "evaluated"
    assert matplotlib.get_backend() == backend  # a notebook keeps its inline plots


def _make_test_split(root: Path, study_ids: list[int]) -> None:
    """Copy some train studies into a Kaggle-style test split (no labels)."""
    series = pd.read_csv(root / "train_series_descriptions.csv")
    series = series[series.study_id.isin(study_ids)]
    series.to_csv(root / "test_series_descriptions.csv", index=False)
    for sid in study_ids:
        shutil.copytree(root / "train_images" / str(sid), root / "test_images" / str(sid),
                        dirs_exist_ok=True)


def test_predict_writes_exactly_the_submission_rows(trained, tiny_data):
    _make_test_split(tiny_data, [1003, 1001])
    sub = predict(trained, tiny_data, levels="middle")  # tiny_data has no sagittal series
    assert tuple(sub.columns) == SUBMISSION_COLUMNS
    assert sub["row_id"].tolist() == ["1001_left_subarticular_stenosis_l4_l5",
                                      "1003_left_subarticular_stenosis_l4_l5"]
    np.testing.assert_allclose(sub[list(SUBMISSION_COLUMNS[1:])].sum(axis=1), 1.0)
    one = predict(trained, study_dir=tiny_data / "test_images" / "1001", levels="middle")
    pd.testing.assert_frame_equal(one, sub.iloc[:1], rtol=1e-5)


# --------------------------------------------------------------------------- CLI


def test_cli_end_to_end(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    common = ["--data", str(tiny_data), "--cache", str(tmp_path / "cache")]
    assert main(["prepare", *common, "--slices", "2", "--image-size", "16"]) == 0
    assert "24 windows" in capsys.readouterr().out
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"train": {k: v for k, v in TINY.items() if k not in
                                         ("n_slices", "image_size")},
                               "preprocess": {"n_slices": 2, "image_size": 16}}))
    assert main(["train", *common, "--config", str(cfg), "--epochs", "1", "--run", str(run),
                 "--quiet"]) == 0
    assert "Next: lss evaluate" in capsys.readouterr().out
    assert main(["evaluate", "--run", str(run), "--cache", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert "Data: the RSNA 2024 data (" in out and "majority" in out and "prior" in out
    _make_test_split(tiny_data, [1002])
    csv = tmp_path / "sub.csv"
    assert main(["predict", "--run", str(run), "--data", str(tiny_data), "--levels", "middle",
                 "--out", str(csv)]) == 0
    assert pd.read_csv(csv).shape == (25, 4)  # the competition's 25 rows of the study
    assert main(["predict", "--run", str(run), "--data", str(tiny_data), "--levels", "middle",
                 "--target-only", "--out", str(csv)]) == 0
    assert pd.read_csv(csv).shape == (1, 4)


@pytest.mark.parametrize("argv, message", [
    (["prepare", "--data", "/no/such/root"], "lss: error: Data root not found: /no/such/root"),
    (["evaluate", "--run", "/no/such/run"], "lss: error: Run /no/such/run records no data root"),
    (["predict", "--run", "/no/such/run", "--study", "/tmp"],
     "lss: error: No best.keras in run folder /no/such/run"),
])
def test_cli_bad_paths_are_one_line_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip() == message or err.startswith(message), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_bad_data_is_a_one_line_error(tiny_data, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_data, bad)
    (bad / "train_images" / "1004" / "5004" / "1.dcm").write_bytes(b"garbage")
    assert main(["prepare", "--data", str(bad), "--cache", str(tmp_path / "c"),
                 "--slices", "2", "--image-size", "16", "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lss: error: Not a DICOM file: ") and "1004/5004/1.dcm" in err
    assert len(err.splitlines()) == 1


# ------------------------------------------------------------ precision, loader, timing


def test_verbose_2_prints_one_wrapped_line_per_epoch(tiny_data, tmp_path, cfg, capsys):
    """Keras' own verbose=2 line runs past a page's 88 columns; lss prints its own."""
    res = train(tiny_data, cfg, tmp_path / "run", cache_dir=tmp_path / "cache", verbose=2)
    out = capsys.readouterr().out
    starts = [line for line in out.splitlines() if line.startswith("Epoch ")]
    epochs = cfg.train.epochs
    assert starts and [s.split()[1] for s in starts] == [f"{k}/{epochs}"
                                                        for k in range(1, len(res.history) + 1)]
    assert max(len(line) for line in out.splitlines()) <= 88
    assert "val_loss" in out and "ms/step" not in out  # lss's line, not Keras'


def test_history_records_epoch_seconds(tiny_data, tmp_path, cfg):
    res = train(tiny_data, cfg, tmp_path / "run", cache_dir=tmp_path / "cache", verbose=0)
    assert "epoch_seconds" in res.history and (res.history["epoch_seconds"] > 0).all()
    assert "epoch_seconds" in pd.read_csv(tmp_path / "run" / "history.csv")
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert m["precision"] == "float32" and m["loader"] == {}


def test_loader_threads_give_the_same_run_as_the_plain_loop(tiny_data, tmp_path, cfg):
    kw = dict(cache_dir=tmp_path / "cache", verbose=0)
    plain = train(tiny_data, cfg, tmp_path / "plain", **kw).history
    threads = train(tiny_data, cfg, tmp_path / "threads", loader={"workers": 3,
                    "max_queue_size": 4}, **kw).history
    cols = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    pd.testing.assert_frame_equal(plain[cols], threads[cols])
    m = json.loads((tmp_path / "threads" / "manifest.json").read_text())
    assert m["loader"] == {"workers": 3, "max_queue_size": 4}
    with pytest.raises(ValueError, match=r"Unknown loader setting\(s\) \['threads'\]"):
        train(tiny_data, cfg, tmp_path / "bad", loader={"threads": 2}, **kw)


def test_mixed_precision_is_set_for_the_model_only(tiny_data, tmp_path, cfg, monkeypatch):
    import lss.device as device

    before = keras.mixed_precision.global_policy().name
    if device.describe_accelerator()["kind"] == "CPU":
        # a CPU without native bfloat16 refuses; one with it trains in mixed_bfloat16
        monkeypatch.setattr(device, "fast_cpu_bf16", lambda *a, **k: False)
        with pytest.raises(ValueError, match="runs on a CPU without native bfloat16"):
            train(tiny_data, cfg, tmp_path / "mp", mixed_precision=True,
                  cache_dir=tmp_path / "cache", verbose=0)
        monkeypatch.setattr(device, "fast_cpu_bf16", lambda *a, **k: True)
        res = train(tiny_data, cfg, tmp_path / "bf16", mixed_precision=True,
                    cache_dir=tmp_path / "cache", verbose=0)
        m = json.loads((tmp_path / "bf16" / "manifest.json").read_text())
        assert m["precision"] == res.model.dtype_policy.name == "mixed_bfloat16"
        assert keras.mixed_precision.global_policy().name == before
        monkeypatch.undo()
    res = train(tiny_data, cfg, tmp_path / "auto", mixed_precision=None,
                cache_dir=tmp_path / "cache", verbose=0)
    m = json.loads((tmp_path / "auto" / "manifest.json").read_text())
    assert m["precision"] == res.model.dtype_policy.name
    assert res.model.get_layer("severity").compute_dtype == "float32"
    assert keras.mixed_precision.global_policy().name == before
