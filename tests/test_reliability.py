"""Faults met by trying ``lss`` as an attacker would: interrupted and altered runs, files
where folders are expected, damaged models and backups, broken configs, a full disk.

Every case ends with one line ``lss: error: <what, which file>`` and exit code 2 (or
trains to the right result), never a traceback. No test waits on the clock: a run is
interrupted from inside at a known point (a callback), or blocked there (``LSS_HOLD``).
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from dicom_factory import write_labelled_root

from lss.cli import main
from lss.config import Config
from lss.data import DataError, TensorCache, build_index
from lss.evaluate import evaluate_run
from lss.run import RunDir
from lss.train import train

TINY = dict(n_slices=2, image_size=16, batch_size=4, cnn_filters=(4,), lstm_units=4,
            dense_units=4, early_stopping_patience=10, learning_rate=1e-2)
LSS = Path(sys.executable).parent / "lss"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_labelled_root(tmp_path_factory.mktemp("rel") / "root", 16)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "run"
    train(data, Config().replace(epochs=2, **TINY), run, cache_dir=run.parent / "cache",
          workers=1, verbose=0)
    return run


def _default_sigint() -> None:
    """In the child: SIGINT as a terminal delivers it. A shell that starts a job in the
    background (``cmd &``) makes it ignore SIGINT, and Python then installs no handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


class _InterruptInFirstEpoch(keras.callbacks.Callback):
    """Ctrl-C after the first batch of the first epoch, before any backup exists."""

    def on_train_batch_end(self, batch, logs=None):
        raise KeyboardInterrupt


# --------------------------------------------------------------------------- resume


def test_resume_before_the_first_epoch_ends_trains_the_whole_run(data, tmp_path):
    cfg = Config().replace(epochs=3, **TINY)
    whole = train(data, cfg, tmp_path / "whole", cache_dir=tmp_path / "c", workers=1,
                  verbose=0)
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        train(data, cfg, cut, cache_dir=tmp_path / "c", workers=1, verbose=0,
              callbacks=[_InterruptInFirstEpoch()])
    assert not (cut / "backup").exists() or not any((cut / "backup").iterdir())
    resumed = train(data, cfg, cut, cache_dir=tmp_path / "c", workers=1, verbose=0,
                    resume=True)
    history = RunDir(cut).read_history()
    assert history["epoch"].tolist() == [0, 1, 2]
    cols = ["loss", "val_loss", "accuracy", "val_accuracy"]
    pd.testing.assert_frame_equal(resumed.history[cols], whole.history[cols])


def test_a_history_without_header_is_named_not_a_key_error(trained, tmp_path):
    run = RunDir(tmp_path / "copy")
    run.path.mkdir()
    run.history.write_text("0,0.5,1.0\n")
    with pytest.raises(DataError, match=r"history.csv has no header row"):
        run.read_history()


@pytest.mark.parametrize("option, value, setting", [
    ("--image-size", "8", "preprocess.image_size: 16 -> 8"),
    ("--slices", "3", "preprocess.n_slices: 2 -> 3"),
    ("--batch-size", "2", "train.batch_size: 4 -> 2"),
])
def test_resume_with_other_settings_is_refused_naming_the_setting(data, tmp_path, capsys,
                                                                  option, value, setting):
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):  # an interrupted run, as Ctrl-C leaves it
        train(data, Config().replace(epochs=2, **TINY), run, cache_dir=tmp_path / "c",
              workers=1, verbose=0, callbacks=[_InterruptInFirstEpoch()])
    before = (run / "config.json").read_text()
    base = ["train", "--data", str(data), "--cache", str(tmp_path / "c"), "--workers", "1",
            "--run", str(run), "--quiet"]
    assert main([*base, "--resume", option, value]) == 2
    err = _err(capsys)
    assert setting in err and "only the number of epochs may change" in err
    assert (run / "config.json").read_text() == before


def test_resume_may_change_the_epoch_budget(data, tmp_path):
    cfg = Config().replace(epochs=1, **TINY)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(data, cfg.replace(epochs=2), run, cache_dir=tmp_path / "c", workers=1,
              verbose=0, callbacks=[_InterruptInFirstEpoch()])
    result = train(data, cfg.replace(epochs=3), run, cache_dir=tmp_path / "c", workers=1,
                   verbose=0, resume=True)
    assert len(result.history) == 3


def test_a_damaged_backup_is_named(data, tmp_path):
    cfg = Config().replace(epochs=2, **TINY)
    run = RunDir(tmp_path / "run")

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt  # after Backup (listed before the extra callbacks)

    with pytest.raises(KeyboardInterrupt):
        train(data, cfg, run.path, cache_dir=tmp_path / "c", workers=1, verbose=0,
              callbacks=[StopAfterFirstEpoch()])
    weights = run.backup / "epoch-1.weights.h5"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(DataError, match=r"Backup .* of epoch 1 is damaged"):
        train(data, cfg, run.path, cache_dir=tmp_path / "c", workers=1, verbose=0,
              resume=True)


@pytest.mark.slow
@pytest.mark.skipif(not LSS.is_file(), reason="the lss console script is not installed")
def test_a_held_run_is_interrupted_at_the_point_it_holds(data, tmp_path):
    """LSS_HOLD blocks the run after epoch 1's backup: SIGINT then finds it there."""
    run = tmp_path / "run"
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(Config().replace(epochs=3, **TINY).to_dict()))
    p = subprocess.Popen([str(LSS), "train", "--data", str(data), "--cache",
                          str(tmp_path / "c"), "--workers", "1", "--config", str(cfg),
                          "--run", str(run), "--quiet"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint,
                         env={**os.environ, "LSS_HOLD": "after-epoch-1"})
    try:
        while not (run / "HELD").exists():
            assert p.poll() is None, p.communicate()[1]
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=300)
    finally:
        if p.poll() is None:  # never leave a held process behind
            p.kill()
            p.communicate()
    assert p.returncode == 130 and "Traceback" not in err
    assert (run / "backup" / "epoch-1.json").is_file()
    assert not (run / "backup" / "epoch-2.json").exists()


# --------------------------------------------------------------------------- evaluate


def _copy_without(data: Path, tmp_path: Path, study: int) -> Path:
    import shutil

    other = tmp_path / "other"
    shutil.copytree(data, other)
    train_csv = pd.read_csv(other / "train.csv")
    train_csv[train_csv.study_id != study].to_csv(other / "train.csv", index=False)
    return other


def test_evaluate_on_data_missing_a_validation_study_is_refused(trained, data, tmp_path):
    split = RunDir(trained).read_split()
    study = int(split.loc[split.split == "val", "study_id"].iloc[0])
    other = _copy_without(data, tmp_path, study)
    before = RunDir(trained).read_manifest().get("metrics")
    with pytest.raises(DataError, match=rf"1 of the run's studies \(1 of them validation "
                                        rf"studies\) are not labelled in .*\[{study}\]"):
        evaluate_run(trained, other, cache_dir=tmp_path / "c", workers=1, figures=False)
    assert RunDir(trained).read_manifest().get("metrics") == before


def test_evaluate_reports_a_label_changed_since_training(trained, data, tmp_path):
    import shutil

    other = tmp_path / "changed"
    shutil.copytree(data, other)
    split = RunDir(trained).read_split()
    study = int(split.loc[split.split == "val", "study_id"].iloc[0])
    df = pd.read_csv(other / "train.csv")
    col = Config().target
    old = df.loc[df.study_id == study, col].iloc[0]
    new = "Severe" if old != "Severe" else "Moderate"
    df.loc[df.study_id == study, col] = new
    df.to_csv(other / "train.csv", index=False)
    with pytest.raises(DataError, match=rf"1 label\(s\) of .* changed since the run was "
                                        rf"trained: {study} \({old} -> {new}\)"):
        evaluate_run(trained, other, cache_dir=tmp_path / "c", workers=1, figures=False)


# --------------------------------------------------------------------------- one line


@pytest.mark.parametrize("name, text, message", [
    ("bad.json", "{\"train\": ", r"Config file .*bad.json is not valid JSON"),
    ("bad.yaml", "train: [1, 2\n", r"Config file .*bad.yaml is not valid YAML"),
    ("tag.yaml", "train: !!python/object/apply:os.system ['true']\n",
     r"Config file .*tag.yaml is not valid YAML"),
    ("type.yaml", "preprocess:\n  n_slices: true\n",
     r"type.yaml: preprocess.n_slices must be an integer, got True"),
    ("huge.json", "{\"train\": {\"seed\": 123456789012345678901234567890}}",
     r"huge.json: train.seed must be an integer from 0 to 2147483647"),
    ("list.json", "{\"train\": [1]}", r"list.json: 'train' must be a mapping"),
])
def test_a_broken_config_is_one_line_naming_the_file(data, tmp_path, capsys, name, text,
                                                     message):
    path = tmp_path / name
    path.write_text(text)
    assert main(["prepare", "--data", str(data), "--config", str(path), "--cache",
                 str(tmp_path / "c")]) == 2
    err = _err(capsys)
    assert re.search(message, err), err


def test_a_folder_where_a_file_is_expected_is_one_line(data, trained, tmp_path, capsys):
    (tmp_path / "cfg.json").mkdir()
    assert main(["prepare", "--data", str(data), "--config", str(tmp_path / "cfg.json")]) == 2
    assert "is a folder" in _err(capsys)
    assert main(["predict", "--run", str(trained), "--data", str(data), "--out",
                 str(tmp_path)]) == 2
    assert "is a folder" in _err(capsys)
    cache = tmp_path / "cache"
    TensorCache(data, Config().preprocess, cache_dir=cache).dir.mkdir(parents=True)
    (TensorCache(data, Config().preprocess, cache_dir=cache).dir / "settings.json").mkdir()
    assert main(["prepare", "--data", str(data), "--cache", str(cache), "--workers", "1"]) == 2
    assert "settings.json" in _err(capsys)


def test_a_truncated_model_is_damaged_not_missing(trained, data, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    model = RunDir(run).model
    model.write_bytes(model.read_bytes()[:1000])
    assert main(["predict", "--run", str(run), "--data", str(data), "--split", "train",
                 "--out", str(tmp_path / "s.csv")]) == 2
    err = _err(capsys)
    assert "best.keras is damaged or not a Keras model file (truncated?)" in err
    assert "not found" not in err.lower()


def test_a_full_disk_is_one_line(trained, data, capsys):
    assert main(["predict", "--run", str(trained), "--data", str(data), "--split", "train",
                 "--levels", "middle", "--out", "/dev/full"]) == 2
    assert "No space left on device" in _err(capsys)


@pytest.mark.skipif(not LSS.is_file(), reason="the lss console script is not installed")
def test_a_file_size_limit_is_one_line(data, tmp_path):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    p = subprocess.run([str(LSS), "prepare", "--data", str(data), "--cache",
                        str(tmp_path / "c"), "--workers", "1"], capture_output=True, text=True,
                       preexec_fn=limit, timeout=300)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "File too large" in p.stderr


def test_a_symlink_loop_is_one_line(data, tmp_path, capsys):
    import shutil

    other = tmp_path / "loop"
    shutil.copytree(data, other)
    index = build_index(other)
    series = other / "train_images" / str(index.study_id[0]) / str(index.series_id[0])
    shutil.rmtree(series)
    series.symlink_to(series)
    assert main(["prepare", "--data", str(other), "--cache", str(tmp_path / "c"),
                 "--workers", "1"]) == 2
    assert str(index.study_id[0]) in _err(capsys)


def test_a_cache_entry_claiming_terabytes_is_named(data, tmp_path):
    import io
    import zipfile

    path = tmp_path / "entry.npz"
    header = np.lib.format.header_data_from_array_1_0(np.zeros((2, 2), np.float32))
    header["shape"] = (10**6, 10**6, 10**3)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("volume.npy", buf.getvalue() + b"\0" * 64)
    with pytest.raises(DataError, match=r"Unreadable cache entry .*entry.npz"):
        TensorCache.read(path)


def test_an_unexpected_error_is_one_line(monkeypatch, capsys, data):
    def boom(*a, **k):
        raise RuntimeError("something nobody foresaw")

    monkeypatch.setattr("lss.data.build_index", boom)
    assert main(["prepare", "--data", str(data)]) == 2
    err = _err(capsys)
    assert "unexpected RuntimeError: something nobody foresaw" in err and "LSS_DEBUG" in err
    monkeypatch.setenv("LSS_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["prepare", "--data", str(data)])


# --------------------------------------------------------------------------- on-error


def _break_one_series(data: Path, tmp_path: Path) -> tuple[Path, int]:
    import shutil

    other = tmp_path / "broken"
    shutil.copytree(data, other)
    index = build_index(other)
    study, series = int(index.study_id[3]), int(index.series_id[3])
    for f in (other / "train_images" / str(study) / str(series)).glob("*.dcm"):
        f.write_bytes(f.read_bytes()[:400])
    return other, study


def test_prepare_on_error_report_lists_the_failed_study_and_goes_on(data, tmp_path, capsys):
    other, study = _break_one_series(data, tmp_path)
    args = ["prepare", "--data", str(other), "--cache", str(tmp_path / "c"), "--workers", "1"]
    assert main(args) == 2  # the default stays raise
    assert str(study) in _err(capsys)
    assert main([*args, "--on-error", "report"]) == 0
    out = capsys.readouterr()
    assert f"failed: study {study} series" in out.err
    assert "1 study left out because their series failed" in out.out
    assert "1 failed" in out.out


def test_train_on_error_report_leaves_the_study_out_with_a_line(data, tmp_path, capsys):
    other, study = _break_one_series(data, tmp_path)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(Config().replace(epochs=1, **TINY).to_dict()))
    run = RunDir(tmp_path / "run")
    assert main(["train", "--data", str(other), "--cache", str(tmp_path / "c"), "--workers",
                 "1", "--config", str(cfg), "--run", str(run.path), "--quiet",
                 "--on-error", "report"]) == 0
    out = capsys.readouterr()
    assert f"failed: study {study} series" in out.err
    assert f"listed in {run.errors}" in out.out
    manifest = run.read_manifest()
    assert [f["study_id"] for f in manifest["failed"]] == [study]
    errors = pd.read_csv(run.errors)
    assert errors.study_id.tolist() == [study] and errors.reason.str.len().gt(0).all()
    assert manifest["n_train"] + manifest["n_val"] == len(build_index(other)) - 1
    report = evaluate_run(run.path, other, cache_dir=tmp_path / "c", workers=1,
                          figures=False)
    assert report["n_val"] == manifest["n_val"]

