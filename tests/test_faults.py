"""Faults and repeatability: killed processes, hostile files, and fast paths that must not
change a number.

* a real ``lss train`` process interrupted mid-epoch (SIGINT, then SIGKILL) and resumed
  ends with the history of an uninterrupted run;
* a preprocessing worker killed while writing a cache entry leaves nothing a later run
  reads;
* a cache entry holding an object array is never unpickled, and a ``.keras`` file with a
  ``Lambda`` layer is refused;
* the fast paths of :mod:`lss.data` (raw geometry, direct pixel decoding, one pass per
  series) give exactly what pydicom gives.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from dicom_factory import write_labelled_root, write_series, write_slice
from pydicom.uid import ImplicitVRLittleEndian

from lss.cli import main
from lss.config import PreprocessConfig
from lss.data import DataError, TensorCache, build_index, level_window, scan_series, series_dir
from lss.data.dicom import _geometry, _native_pixels, _read, decode_slice

REPO = Path(__file__).resolve().parents[1]
LSS = Path(sys.executable).parent / "lss"
TINY_TRAIN = {"batch_size": 4, "cnn_filters": [4], "lstm_units": 4, "dense_units": 4,
              "early_stopping_patience": 10}


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 600) -> None:
    """Until ``path`` exists; fails if ``proc`` ends first. The process holds at a known
    point (LSS_HOLD) or is a worker that cannot pass it: the deadline only ends a hung
    test, it is not a guess at how long the work takes."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"process ended ({proc.returncode}) before {path} appeared: "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{path} did not appear in {timeout} s")
        time.sleep(0.02)


def _default_sigint() -> None:
    """In the child: SIGINT as a terminal delivers it (a shell's background job ignores
    SIGINT, and Python then installs no KeyboardInterrupt handler)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _backup_epoch(run: Path) -> int:
    return max((int(p.stem.split("-")[1]) for p in (run / "backup").glob("epoch-*.json")),
               default=0)


# --------------------------------------------------------------------------- training


@pytest.mark.slow
@pytest.mark.skipif(not LSS.is_file(), reason="the lss console script is not installed")
def test_killed_lss_train_resumes_to_the_history_of_an_uninterrupted_run(tmp_path):
    data = write_labelled_root(tmp_path / "data", 24)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"train": TINY_TRAIN,
                               "preprocess": {"n_slices": 2, "image_size": 16}}))
    epochs = 6

    def argv(run: Path, *extra: str) -> list[str]:
        return ["train", "--data", str(data), "--cache", str(tmp_path / "cache"), "--config",
                str(cfg), "--epochs", str(epochs), "--run", str(run), "--workers", "1",
                "--quiet", *extra]

    whole = tmp_path / "whole"
    assert main(argv(whole)) == 0

    # The runs are held at a known point (LSS_HOLD, lss.callbacks.Hold) and interrupted
    # there: nothing depends on how fast this machine is.
    # 1. Ctrl-C after the first epoch's backup: exit 130 and a hint how to go on.
    cut = tmp_path / "cut"
    p = subprocess.Popen([str(LSS), *argv(cut)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint,
                         env={**os.environ, "LSS_HOLD": "after-epoch-1"})
    try:
        _wait_for(cut / "HELD", p)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=300)
    finally:
        if p.poll() is None:  # never leave a held process behind
            p.kill()
            p.communicate()
    assert p.returncode == 130, err
    assert f"lss: interrupted; continue with: lss train --resume --run {cut}" in err
    assert "Traceback" not in err
    assert _backup_epoch(cut) == 1 and not (cut / "history.json").exists()
    (cut / "HELD").unlink()

    # 2. Resumed, then killed outright (no handler runs) after the next epoch's backup.
    p = subprocess.Popen([str(LSS), *argv(cut, "--resume")], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "LSS_HOLD": "after-epoch-2"})
    try:
        _wait_for(cut / "HELD", p)
    finally:
        p.kill()
        p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL
    assert _backup_epoch(cut) == 2 and not (cut / "history.json").exists()
    (cut / "HELD").unlink()
    done = 1

    # 3. Resumed to the end: the same epochs, losses and accuracies, bit for bit.
    assert main(argv(cut, "--resume")) == 0
    a, b = (pd.read_json(run / "history.json") for run in (whole, cut))
    metrics = [c for c in a.columns if "seconds" not in c and "time" not in c]  # not clocks
    assert len(b) == epochs and {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(metrics)
    pd.testing.assert_frame_equal(a[metrics], b[metrics])
    manifest = json.loads((cut / "manifest.json").read_text())
    assert manifest["status"] == "trained" and manifest["resumed_at_epoch"] > done


# --------------------------------------------------------------------------- cache

_KILL_SCRIPT = textwrap.dedent('''
    """prepare(workers=2) in which the spawned worker dies (SIGKILL) half-way through
    writing its first entry; this process goes slowly until the worker has started, so
    that the worker is given work."""
    import multiprocessing
    import os
    import signal
    import sys
    import time
    from pathlib import Path

    import numpy as np

    import lss.data.cache as cache
    from lss.config import PreprocessConfig
    from lss.data import TensorCache, build_index

    READY = Path(os.environ["LSS_TEST_READY"])
    real_compute, real_savez = cache._compute, np.savez


    def ready():
        READY.touch()  # runs in the worker once it has imported lss


    def half_an_entry_then_die(f, *arrays):
        f.write(b"PK\\x03\\x04 half an entry")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)


    def compute(task):
        if multiprocessing.parent_process() is not None:  # the spawned worker
            cache._write_entry = half_an_entry_then_die
        else:  # this process: wait for the worker, then leave it time to be fed
            deadline = time.monotonic() + 120
            while not READY.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.05)
        return real_compute(task)


    if __name__ == "__main__":
        cache._compute, cache._ready = compute, ready
        root, cache_dir = sys.argv[1], sys.argv[2]
        index = build_index(root)
        TensorCache(root, PreprocessConfig(n_slices=2, image_size=8),
                    cache_dir=cache_dir).prepare(index, workers=2)
''')


def test_worker_killed_while_writing_leaves_no_entry_that_is_read(tmp_path):
    root = write_labelled_root(tmp_path / "data", 40)
    script = tmp_path / "kill_worker.py"
    script.write_text(_KILL_SCRIPT)
    env = {**os.environ, "LSS_TEST_READY": str(tmp_path / "ready")}
    p = subprocess.run([sys.executable, str(script), str(root), str(tmp_path / "cache")],
                       capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode != 0 and "BrokenProcessPool" in p.stderr, p.stderr[-2000:]

    cfg = PreprocessConfig(n_slices=2, image_size=8)
    cache = TensorCache(root, cfg, cache_dir=tmp_path / "cache")
    index = build_index(root)
    leftovers = list(cache.dir.glob(".*.tmp"))
    assert leftovers, "the worker died after opening its temporary file"
    assert all(p.read_bytes().startswith(b"PK\x03\x04 half") for p in leftovers)
    entries = list(cache.dir.glob("*.npz"))
    assert len(entries) < len(index)  # the dead worker's entry was never renamed into place
    for path in entries:  # whatever is in place is whole
        assert TensorCache.read(path).shape == (2, 8, 8)

    stats = cache.prepare(index, workers=1)
    assert (stats.hits, stats.written) == (len(entries), len(index) - len(entries))
    expected = np.stack([
        level_window(series_dir(root, r.study_id, r.series_id), int(r.instance_number), cfg,
                     centre_xy=(r.x, r.y)).volume for r in index.itertuples()])
    np.testing.assert_array_equal(cache.load(index, workers=1), expected)


class _Evil:
    """Unpickling this creates a file: the proof that a load ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_object_array_in_a_cache_entry_is_never_unpickled(tiny_root, tmp_path):
    from lss.data.cache import _fingerprint

    index = build_index(tiny_root).iloc[:1]
    cache = TensorCache(tiny_root, PreprocessConfig(n_slices=2, image_size=8),
                        cache_dir=tmp_path / "c")
    cache.prepare(index, workers=1)
    (path,) = cache.paths(index)
    marker = tmp_path / "pwned"
    # A hostile entry that even carries the right fingerprint, so prepare takes it as a hit.
    fingerprint = _fingerprint(series_dir(tiny_root, 101, 11))
    np.savez(path, volume=np.array([_Evil(marker)], dtype=object),
             fingerprint=np.array(fingerprint))
    import zipfile

    with zipfile.ZipFile(path, "a") as z:
        z.comment = fingerprint.encode()  # what a genuine entry carries
    assert cache.prepare(index, workers=1).hits == 1
    with pytest.raises(DataError, match=r"Unreadable cache entry \S*101_11_3\.npz .*allow_pickle"):
        cache.load(index, workers=1)
    from lss.data.loader import WindowDataset

    with pytest.raises(DataError, match="Unreadable cache entry"):
        WindowDataset([path], [0], batch_size=1)[0]
    assert not marker.exists()
    # Sanity: the object really would run code if it were unpickled.
    np.load(path, allow_pickle=True)["volume"]
    assert marker.exists()


def test_keras_file_with_a_lambda_layer_is_refused(tmp_path):
    keras = pytest.importorskip("keras")
    from lss.model import load_model

    inputs = keras.Input((3,))
    outputs = keras.layers.Lambda(lambda x: x * 2.0, name="code")(inputs)
    path = tmp_path / "evil.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(ValueError, match=r"(?is)lambda.*safe_mode|safe_mode.*lambda"):
        load_model(path)


def _unsafe_loads(tree: ast.AST, name: str) -> list[str]:
    """Calls in ``tree`` that could run code from a file: np.load without
    allow_pickle=False, Keras' load_model without safe_mode=True, torch.load without
    weights_only=True, and any import of a pickle library."""

    def keyword(call: ast.Call, key: str, value: bool) -> bool:
        return any(k.arg == key and isinstance(k.value, ast.Constant) and k.value.value is value
                   for k in call.keywords)

    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = ast.unparse(node.func.value)
            what = f"{owner}.{node.func.attr}"
            if what in ("np.load", "numpy.load") and not keyword(node, "allow_pickle", False):
                problems.append(f"{name}: {what} without allow_pickle=False")
            if node.func.attr == "load_model" and owner.startswith("keras") \
                    and not keyword(node, "safe_mode", True):
                problems.append(f"{name}: {what} without safe_mode=True")
            if what == "torch.load" and not keyword(node, "weights_only", True):
                problems.append(f"{name}: torch.load without weights_only=True")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) \
                else [node.module or ""]
            if any(n.split(".")[0] in ("pickle", "dill", "joblib", "cloudpickle") for n in names):
                problems.append(f"{name}: imports a pickle library")
    return problems


def test_package_loads_nothing_with_pickle():
    """Every np.load says allow_pickle=False and every Keras load_model safe_mode=True
    (read from the syntax tree, so a reformatted call is judged the same)."""
    problems = []
    for path in sorted((REPO / "lss").rglob("*.py")):
        problems += _unsafe_loads(ast.parse(path.read_text()), path.name)
    assert not problems, problems


def test_the_pickle_check_catches_unsafe_loads():
    bad = ast.parse("import pickle\nnp.load(f)\nkeras.saving.load_model(\n    p, compile=(1, 2))\n"
                    "np.load(f, allow_pickle=True)\n")
    assert len(_unsafe_loads(bad, "bad.py")) == 4
    good = ast.parse("np.load(f, allow_pickle=False)\nkeras.saving.load_model(p, safe_mode=True)")
    assert _unsafe_loads(good, "good.py") == []


# --------------------------------------------------------------------------- fast paths


@pytest.mark.parametrize("bits, signed", [(16, 0), (12, 0), (12, 1), (16, 1), (10, 1)])
def test_direct_pixel_decoding_equals_pydicom(tmp_path, bits, signed):
    # Random 16-bit words: the unused high bits are set too, as they may be in real files.
    raw = np.random.default_rng(bits + signed).integers(0, 2**16, (7, 9)).astype(np.uint16)
    path = write_slice(tmp_path / "1.dcm", raw, instance=1, position=(0, 0, 0))
    ds = pydicom.dcmread(path)
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, signed
    ds.save_as(path)
    ds = pydicom.dcmread(path)
    fast = _native_pixels(ds)
    assert fast is not None
    np.testing.assert_array_equal(fast, ds.pixel_array)
    assert fast.dtype == ds.pixel_array.dtype


def test_geometry_from_raw_bytes_equals_pydicom_explicit_and_implicit(tmp_path):
    for syntax in (None, ImplicitVRLittleEndian):
        path = write_slice(tmp_path / "g.dcm", np.zeros((4, 6), np.uint16), instance=17,
                           position=(-12.25, 3.5e1, 1e-3), spacing=(0.4375, 0.5),
                           orientation=(1, 0, 0, 0, 0.9848077, -0.1736482))
        if syntax is not None:
            ds = pydicom.dcmread(path)
            ds.file_meta.TransferSyntaxUID = syntax
            ds.save_as(path, enforce_file_format=True)
        inst, ipp, normal, spacing, shape = _geometry(_read(path, pixels=False), path)
        ds = pydicom.dcmread(path)
        assert inst == int(ds.InstanceNumber) == 17
        np.testing.assert_array_equal(ipp, np.asarray(ds.ImagePositionPatient, float))
        np.testing.assert_array_equal(spacing, np.asarray(ds.PixelSpacing, float))
        iop = np.asarray(ds.ImageOrientationPatient, float)
        expected = np.cross(iop[:3], iop[3:])
        np.testing.assert_allclose(normal, expected / np.linalg.norm(expected))
        assert shape == (4, 6)


def test_malformed_geometry_is_still_a_data_error(tmp_path):
    path = write_slice(tmp_path / "m.dcm", np.zeros((4, 4), np.uint16), instance=1,
                       position=(0, 0, 12345))
    raw = pydicom.dcmread(path).get_item("ImagePositionPatient").value
    assert b"12345" in raw
    # An invalid DS of the same length, as a broken writer leaves it.
    path.write_bytes(path.read_bytes().replace(raw, raw.replace(b"12345", b"1x345")))
    with pytest.raises(DataError, match=r"m\.dcm: malformed geometry tag"):
        _geometry(_read(path, pixels=False), path)


def test_one_pass_window_equals_reading_every_file_again(tmp_path):
    folder = tmp_path / "s"
    write_series(folder, 9, shape=(40, 40), instances_toward_feet=True, shuffle_names=True)
    cfg = PreprocessConfig(n_slices=4, image_size=16)
    one_pass = level_window(folder, 4, cfg)  # the folder: headers read once, pixels deferred
    two_pass = level_window(scan_series(folder), 4, cfg)  # a header: window files read again
    np.testing.assert_array_equal(one_pass.volume, two_pass.volume)
    np.testing.assert_array_equal(one_pass.instance_numbers, two_pass.instance_numbers)
    by_hand = [decode_slice(pydicom.dcmread(p), p) for p in scan_series(folder).paths]
    assert [float(v.mean()) for v in by_hand] == [100.0 * (k + 1) for k in range(9)]


def test_stale_temporaries_are_removed_fresh_ones_kept(tiny_root, tmp_path):
    import os
    import time

    from lss.config import PreprocessConfig
    from lss.data import TensorCache, build_index
    from lss.data.cache import STALE_TMP_SECONDS

    cache = TensorCache(tiny_root, PreprocessConfig(n_slices=2, image_size=8),
                        cache_dir=tmp_path / "c")
    cache.dir.mkdir(parents=True)
    old, fresh = cache.dir / ".a.npz.dead.tmp", cache.dir / ".b.npz.live.tmp"
    old.write_bytes(b"x")
    fresh.write_bytes(b"x")
    long_ago = time.time() - STALE_TMP_SECONDS - 10
    os.utime(old, (long_ago, long_ago))
    cache.prepare(build_index(tiny_root), workers=1)
    assert not old.exists() and fresh.exists()


def test_a_dying_worker_is_a_clear_error(tiny_root, tmp_path, monkeypatch):
    from concurrent.futures.process import BrokenProcessPool

    import lss.data.cache as cache_mod
    from lss.cli import main
    from lss.config import PreprocessConfig
    from lss.data import TensorCache, WorkerDied, build_index

    class Broken:
        def __init__(self, *args, **kwargs):
            pass

        def submit(self, *args, **kwargs):
            raise BrokenProcessPool("a child process terminated abruptly")

        def shutdown(self, **kwargs):
            pass

    monkeypatch.setattr(cache_mod, "ProcessPoolExecutor", Broken)
    cache = TensorCache(tiny_root, PreprocessConfig(n_slices=2, image_size=8),
                        cache_dir=tmp_path / "c")
    with pytest.raises(WorkerDied, match="worker process died"):
        cache.prepare(build_index(tiny_root), workers=2)
    assert main(["prepare", "--data", str(tiny_root), "--cache", str(tmp_path / "c2"),
                 "--workers", "2"]) == 2


def _full_decode(path):
    return decode_slice(pydicom.dcmread(path), path)


@pytest.mark.parametrize("bits, signed, photometric, slope, intercept", [
    (16, 0, "MONOCHROME2", 1.0, 0.0), (12, 0, "MONOCHROME2", 2.0, -50.0),
    (12, 1, "MONOCHROME2", 1.0, 0.0), (16, 0, "MONOCHROME1", 0.5, 10.0)])
def test_fast_header_decodes_exactly_as_pydicom(tmp_path, bits, signed, photometric, slope,
                                                intercept):
    from lss.data._fastdicom import FastHeader, fast_header

    raw = np.random.default_rng(bits).integers(0, 2**16, (7, 9)).astype(np.uint16)
    path = write_slice(tmp_path / "1.dcm", raw, instance=3, position=(1.5, -2, 7.25),
                       photometric=photometric, slope=slope, intercept=intercept)
    ds = pydicom.dcmread(path)
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, signed
    ds.save_as(path)
    fast = fast_header(path)
    assert isinstance(fast, FastHeader)
    np.testing.assert_array_equal(decode_slice(fast, path), _full_decode(path))
    slow = pydicom.dcmread(path, defer_size=1024)
    for a, b in zip(_geometry(fast, path), _geometry(slow, path), strict=True):
        np.testing.assert_array_equal(a, b)


def test_fast_header_equals_pydicom_on_every_phantom_file(tmp_path):
    from lss.data._fastdicom import fast_header
    from lss.phantom import make_phantom

    root = make_phantom(tmp_path / "ph", n_studies=2, n_test_studies=0, workers=1)
    files = sorted((root / "train_images").rglob("*.dcm"))
    assert len(files) > 20
    for path in files:
        fast = fast_header(path)
        assert fast is not None, path  # the phantom's files take the fast path
        slow = pydicom.dcmread(path, defer_size=1024)
        for a, b in zip(_geometry(fast, path), _geometry(slow, path), strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(decode_slice(fast, path), _full_decode(path))


def test_fast_header_leaves_unusual_files_to_pydicom(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from lss.data._fastdicom import fast_header

    implicit = write_slice(tmp_path / "i.dcm", np.ones((4, 4), np.uint16), instance=1,
                           position=(0, 0, 0))
    ds = pydicom.dcmread(implicit)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.save_as(implicit, enforce_file_format=True)
    assert fast_header(implicit) is None

    seq = write_slice(tmp_path / "s.dcm", np.ones((4, 4), np.uint16), instance=1,
                      position=(0, 0, 0))
    ds = pydicom.dcmread(seq)
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3"
    ds.ReferencedImageSequence = Sequence([item])
    ds["ReferencedImageSequence"].is_undefined_length = True  # delimited, as many writers do
    ds.save_as(seq, enforce_file_format=True)
    assert b"\xfe\xff\xdd\xe0" in seq.read_bytes()  # the sequence delimiter is there
    assert fast_header(seq) is None
    # ... and the files are still read right, by pydicom
    for path in (implicit, seq):
        np.testing.assert_array_equal(decode_slice(_read(path, pixels=False), path),
                                      np.ones((4, 4), np.float32))

    (tmp_path / "x.dcm").write_bytes(b"\0" * 200)
    assert fast_header(tmp_path / "x.dcm") is None
