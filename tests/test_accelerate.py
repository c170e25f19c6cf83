"""Tests for lss.device (device description, precision policy, loader settings, epochs),
lss.data.loader's in-memory batches and lss.train.train_on_device."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from lss.config import PAPER_EPOCHS
from lss.data.loader import ArrayBatches, ReadAheadDataset, batches_per_second
from lss.device import (
    describe_accelerator,
    fast_cpu_bf16,
    loader_settings,
    precision_policy,
    resolve_epochs,
    use_mixed_precision,
)
from lss.model import build_cnn_lstm
from lss.train import train_on_device


@pytest.fixture
def restore_policy():
    before = keras.mixed_precision.global_policy()
    yield
    keras.mixed_precision.set_global_policy(before)


def test_describe_accelerator_names_backend_and_kind():
    info = describe_accelerator()
    assert info["backend"] == keras.backend.backend()
    assert info["kind"] in ("GPU", "TPU", "CPU")
    assert info["n_devices"] == len(info["devices"]) >= 1
    assert info["cpu_count"] >= 1
    assert info["label"].startswith(f"{info['kind']}: ")
    assert f"({info['backend']} backend)" in info["label"]
    json.dumps(info)  # printable and storable in a manifest
    if info["kind"] == "CPU":
        assert info["compute_capability"] is None


@pytest.mark.parametrize(
    ("kind", "enabled", "policy"),
    [
        ("GPU", None, "mixed_float16"),
        ("GPU", True, "mixed_float16"),
        ("GPU", False, "float32"),
        ("TPU", None, "mixed_bfloat16"),
        ("CPU", None, "float32"),
        ("CPU", False, "float32"),
    ],
)
def test_precision_policy(kind, enabled, policy):
    assert precision_policy(kind, enabled, cpu_bf16=False) == policy


@pytest.mark.parametrize(("enabled", "policy"),
                         [(None, "mixed_bfloat16"), (True, "mixed_bfloat16"),
                          (False, "float32")])
def test_precision_policy_on_a_cpu_with_native_bfloat16(enabled, policy):
    assert precision_policy("CPU", enabled, cpu_bf16=True) == policy


def test_precision_policy_refuses_mixed_on_cpu_and_bad_values():
    with pytest.raises(ValueError, match="runs on a CPU without native bfloat16"):
        precision_policy("CPU", True, cpu_bf16=False)
    with pytest.raises(ValueError, match=r"kind must be one of \('GPU', 'TPU', 'CPU'\), got 'NPU'"):
        precision_policy("NPU")
    with pytest.raises(ValueError, match="enabled must be True, False or None, got 'yes'"):
        precision_policy("GPU", "yes")


def test_use_mixed_precision_sets_the_global_policy(restore_policy):
    assert use_mixed_precision(accelerator={"kind": "GPU"}) == "mixed_float16"
    assert keras.mixed_precision.global_policy().name == "mixed_float16"
    model = build_cnn_lstm(2, 16, filters=(4,), lstm_units=4, dense_units=4)
    assert model.get_layer("dense").compute_dtype == "float16"
    assert model.get_layer("dense").variable_dtype == "float32"
    # the softmax stays float32, so probabilities sum to 1 at full precision
    assert model.get_layer("severity").compute_dtype == "float32"
    out = model(np.random.default_rng(0).random((2, 2, 16, 16, 1), dtype=np.float32))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    assert use_mixed_precision(False) == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"
    here = describe_accelerator()["kind"]
    assert use_mixed_precision() == precision_policy(here)
    with pytest.raises(ValueError, match="accelerator kind must be one of"):
        use_mixed_precision(accelerator={"kind": "gpu"})


def test_loader_settings():
    cpu = loader_settings({"kind": "CPU", "cpu_count": 16})
    assert cpu == {"workers": 1, "use_multiprocessing": False, "max_queue_size": 10}
    assert loader_settings({"kind": "GPU", "cpu_count": 2})["workers"] == 2
    assert loader_settings({"kind": "TPU", "cpu_count": 96})["workers"] == 4
    assert loader_settings({"kind": "GPU", "cpu_count": 1})["workers"] == 1
    assert set(loader_settings()) == {"workers", "use_multiprocessing", "max_queue_size"}


def test_array_batches_layout_and_errors():
    x = np.arange(5 * 2 * 4 * 4, dtype=np.float32).reshape(5, 2, 4, 4)
    ds = ArrayBatches(x, [0, 1, 2, 1, 0], batch_size=2, workers=2)
    assert len(ds) == 3 and ds.read_threads == 2
    assert ds.workers == 1  # Keras never runs its own enqueuer (ReadAheadDataset)
    xb, yb = ds[1]
    np.testing.assert_array_equal(xb[..., 0], x[2:4])
    np.testing.assert_array_equal(yb, [[0, 0, 1], [0, 1, 0]])
    assert ds[2][0].shape == (1, 2, 4, 4, 1)
    assert len(ArrayBatches(x, batch_size=8)[0]) == 1  # no labels: (x,)
    with pytest.raises(ValueError, match="5 volumes but 2 labels"):
        ArrayBatches(x, [0, 1])
    with pytest.raises(ValueError, match=r"volumes must have shape \(N, Z, S, S\)"):
        ArrayBatches(x[0])
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        ArrayBatches(x, batch_size=0)
    with pytest.raises(ValueError, match="use_multiprocessing=True is not supported"):
        ArrayBatches(x, use_multiprocessing=True)
    with pytest.raises(ValueError, match="workers must be a positive integer, got 0"):
        ArrayBatches(x, workers=0)
    with pytest.raises(IndexError, match="batch 3 of 3"):
        ds[3]


def test_batches_per_second_reads_every_batch_once_per_pass():
    class Counting(ArrayBatches):  # counts the reads, wherever they happen
        calls: list[int] = []

        def read_batch(self, sel):
            self.calls.append(sel.start // self.batch_size)
            return super().read_batch(sel)

    for workers in (1, 3):
        Counting.calls = []
        ds = Counting(np.zeros((10, 2, 4, 4)), batch_size=2, workers=workers)
        assert batches_per_second(ds, repeats=2) > 0
        assert sorted(Counting.calls) == sorted(list(range(5)) * 2)
    Counting.calls = []
    batches_per_second(Counting(np.zeros((10, 2, 4, 4)), batch_size=2), n_batches=3)
    assert Counting.calls == [0, 1, 2]
    with pytest.raises(ValueError, match="repeats must be a positive integer"):
        batches_per_second(ds, repeats=0)
    with pytest.raises(ValueError, match="need at least one batch"):
        batches_per_second(ds, n_batches=0)


def test_resolve_epochs():
    assert resolve_epochs(None, {"kind": "GPU"}, cpu_epochs=4) == PAPER_EPOCHS == 20
    assert resolve_epochs(None, {"kind": "TPU"}, cpu_epochs=4) == 20
    assert resolve_epochs(None, {"kind": "CPU"}, cpu_epochs=4) == 4
    assert resolve_epochs(7, {"kind": "GPU"}, cpu_epochs=4) == 7
    with pytest.raises(ValueError, match="epochs must be a positive integer, got 0"):
        resolve_epochs(0, {"kind": "CPU"}, cpu_epochs=4)
    with pytest.raises(ValueError, match="cpu_epochs must be a positive integer"):
        resolve_epochs(None, {"kind": "CPU"}, cpu_epochs=1.5)


@pytest.mark.slow
def test_train_on_device_records_precision_loader_and_times(tmp_path):
    from dicom_factory import write_labelled_root

    from lss.config import Config

    root = write_labelled_root(tmp_path / "root", 12)
    cfg = Config().replace(n_slices=2, image_size=16, batch_size=4, cnn_filters=(4,),
                           lstm_units=4, dense_units=4)
    res = train_on_device(root, tmp_path / "run", epochs=2, seed=3, config=cfg,
                               cache_dir=tmp_path / "cache", verbose=0)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    here = describe_accelerator()
    assert manifest["precision"] == precision_policy(here["kind"])
    assert manifest["loader"] == loader_settings(here)
    assert manifest["config"]["train"]["epochs"] == 2
    assert manifest["config"]["train"]["seed"] == 3
    assert (res.history["epoch_seconds"] > 0).all()
    assert keras.mixed_precision.global_policy().name == "float32"  # restored


def test_read_ahead_follows_the_order_of_the_current_epoch():
    """Batches read ahead belong to their epoch: a new order is never served stale."""

    class Shuffled(ReadAheadDataset):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.epoch = 0

        def __len__(self):
            return 4

        def batch_indices(self, i):
            return np.roll(np.arange(8), 3 * self.epoch)[2 * i:2 * i + 2]

        def read_batch(self, sel):
            return np.asarray(sel).copy()

        def on_epoch_end(self):
            super().on_epoch_end()
            self.epoch += 1

    plain, ahead = Shuffled(), Shuffled(workers=3, max_queue_size=2)
    for ds in (plain, ahead):
        ds[0]  # as Keras' JAX trainer does: one batch to build the model, then a reset
        ds.on_epoch_end()
    for _ in range(3):
        got = [[ds[i].tolist() for i in range(len(ds))] for ds in (plain, ahead)]
        assert got[0] == got[1]
        assert sorted(sum(got[1], [])) == list(range(8))  # every sample once per epoch
        plain.on_epoch_end()
        ahead.on_epoch_end()


_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
flags\t\t: fpu sse2 avx2 fma {extra}
bogomips\t: 4800.00
"""


@pytest.mark.parametrize(("extra", "backend", "fast"), [
    ("avx512f avx512_bf16", "tensorflow", True),
    ("amx_tile amx_bf16", "tensorflow", True),
    ("avx512f avx512bw", "tensorflow", False),  # AVX-512 without BF16: emulated
    ("", "tensorflow", False),
    ("avx512_bf16", "jax", False),  # measured under TensorFlow only
    ("avx512_bf16", "torch", False),
])
def test_fast_cpu_bf16_reads_the_cpu_flags(tmp_path, extra, backend, fast):
    info = tmp_path / "cpuinfo"
    info.write_text(_CPUINFO.format(extra=extra))
    assert fast_cpu_bf16(backend, cpuinfo=info) is fast


def test_fast_cpu_bf16_without_cpuinfo_or_flags_is_false(tmp_path):
    assert fast_cpu_bf16("tensorflow", cpuinfo=tmp_path / "absent") is False
    (tmp_path / "noflags").write_text("processor\t: 0\nmodel name\t: avx512_bf16 lookalike\n")
    assert fast_cpu_bf16("tensorflow", cpuinfo=tmp_path / "noflags") is False


def test_use_mixed_precision_follows_the_cpu_flags(restore_policy, monkeypatch):
    import lss.device as device

    monkeypatch.setattr(device, "fast_cpu_bf16", lambda backend=None, cpuinfo=None: True)
    assert use_mixed_precision(accelerator={"kind": "CPU", "backend": "tensorflow"}) == \
        "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    monkeypatch.setattr(device, "fast_cpu_bf16", lambda backend=None, cpuinfo=None: False)
    assert use_mixed_precision(accelerator={"kind": "CPU"}) == "float32"
