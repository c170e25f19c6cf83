"""Training on several devices (:func:`lss.device.distribution`).

Keras' own data parallelism: ``keras.distribution.DataParallel`` under JAX,
``tf.distribute.MirroredStrategy`` under TensorFlow, one device under PyTorch (Keras has
no distribution API there). Two devices on a CPU are made in a subprocess, before the
backend starts: JAX's by ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` (XLA
reads it at start), TensorFlow's as two logical CPUs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from dicom_factory import write_labelled_root

from lss.device import Distribution, _EvenBatches, distribution

#: Trains test_train.py's TINY model for 2 epochs and prints the history, the manifest's
#: devices and a prediction's shape; argv: data root, cache dir, run dir, device count.
#: Under TensorFlow the CPU is split into that many logical devices, and the random layers
#: are off: MirroredStrategy draws dropout and augmentation per device, so they differ
#: from one device's by design (JAX draws them for the whole batch, then splits it).
_TRAIN = """
import json, os, sys
import numpy as np
extra = {}
if os.environ["KERAS_BACKEND"] == "tensorflow":
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * int(sys.argv[4]))
    extra = dict(dropout=0.0, rotation_degrees=0.0, zoom=0.0, horizontal_flip=False)
from lss.config import Config
from lss.train import train
cfg = Config().replace(epochs=2, n_slices=2, image_size=16, batch_size=4, cnn_filters=(4,),
                       lstm_units=4, dense_units=4, early_stopping_patience=10,
                       learning_rate=1e-2, **extra)  # weights that move: a wrong step shows
res = train(sys.argv[1], cfg, sys.argv[3], cache_dir=sys.argv[2], verbose=0)
manifest = json.loads((res.run_dir / "manifest.json").read_text())
x = np.zeros((3, 2, 16, 16, 1), dtype="float32")  # the returned model predicts
print(json.dumps({"history": res.history.to_dict(orient="list"),
                  "devices": manifest["devices"],
                  "predict_shape": list(res.model.predict(x, verbose=0).shape)}))
"""


def _start(backend: str, n_devices: int, root: Path, cache: Path, run: Path
           ) -> subprocess.Popen:
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={n_devices}",
           "CUDA_VISIBLE_DEVICES": "", "LSS_PROGRESS": "0"}
    args = [str(root), str(cache), str(run), str(n_devices)]
    return subprocess.Popen([sys.executable, "-c", _TRAIN, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


HAS_JAX = importlib.util.find_spec("jax") is not None


_APIS = {"jax": "keras.distribution.DataParallel", "tensorflow": "tf.distribute.MirroredStrategy"}


@pytest.mark.skipif(not HAS_JAX and keras.backend.backend() == "jax",
                    reason="jax is not installed (pip install -e '.[backends]')")
@pytest.mark.skipif(keras.backend.backend() not in _APIS,
                    reason="Keras has no distribution API under this backend (see "
                           "test_torch_trains_on_one_device_and_says_so)")
def test_two_devices_train_as_one(tmp_path):
    """This session's backend (TensorFlow in ``make test``, JAX in ``make test-backends``)
    trains on two CPU devices and on one, in subprocesses started together (most of each
    is starting the backend and compiling).

    25 studies: 19 training windows (batches 4, 4, 4, 4, 3) and 6 validation windows
    (4, 2). Two devices split each batch; the short batch of 3 is padded to 4 (a copy
    weighing 0, the others 4/3), so every weight update is the one a single device makes.

    Tolerances: validation loss and accuracy, which see the weights after each epoch's
    updates, agree within 1e-5 relative: the same sums in float32, added per device and
    then across devices (1e-7 apart here, 2e-5 under TensorFlow before the short batch was
    padded). Training loss and accuracy are Keras' running means, which count the padded
    copy: 20 windows instead of 19, so they may differ by about 1/19."""
    backend = keras.backend.backend()
    root = write_labelled_root(tmp_path / "root", 25)
    procs = {n: _start(backend, n, root, tmp_path / f"cache{n}", tmp_path / f"run{n}")
             for n in (2, 1)}
    two, one = (_result(procs[n]) for n in (2, 1))
    assert two["devices"] == {"backend": backend, "api": _APIS[backend],
                              "devices": ["cpu:0", "cpu:1"], "per_device_batch": 2}
    assert one["devices"]["api"] is None and one["devices"]["devices"] == ["cpu:0"]
    assert two["predict_shape"] == one["predict_shape"] == [3, 3]
    h2, h1 = two["history"], one["history"]
    assert h2["epoch"] == h1["epoch"] == [0, 1]
    for key in ("val_loss", "val_accuracy"):
        np.testing.assert_allclose(h2[key], h1[key], rtol=1e-5, err_msg=key)
    np.testing.assert_allclose(h2["loss"], h1["loss"], rtol=1 / 19)
    np.testing.assert_allclose(h2["accuracy"], h1["accuracy"], atol=1 / 19 + 1e-6)


def test_one_device_sets_no_distribution():
    plan = distribution(8, devices=["cpu:0"])
    assert plan.api is None and plan.strategy is None and plan.devices == ("cpu:0",)
    before = keras.distribution.distribution()
    with plan.scope():
        assert keras.distribution.distribution() is before
    data = keras.utils.PyDataset()
    assert plan.batches(data) is data
    assert plan.record()["per_device_batch"] == 8


def test_this_machine_trains_on_what_keras_sees():
    """CI's CPU (no XLA flag, no GPU): one device, as before."""
    plan = distribution(4)
    assert plan.backend == keras.backend.backend()
    assert len(plan.devices) >= 1
    if len(plan.devices) == 1:
        assert plan.api is None


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_a_batch_that_does_not_divide_among_the_devices_is_refused(backend):
    with pytest.raises(ValueError, match=r"^batch_size 5 does not divide among 2 devices "
                                         r"\(gpu:0, gpu:1\); use a multiple of 2$"):
        distribution(5, backend=backend, devices=["gpu:0", "gpu:1"])
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        distribution(0, devices=["cpu:0"])


def test_the_api_per_backend():
    gpus = ["gpu:0", "gpu:1", "gpu:2", "gpu:3"]
    assert distribution(8, backend="jax", devices=gpus).api == "keras.distribution.DataParallel"
    tf_plan = distribution(8, backend="tensorflow", devices=gpus)
    assert tf_plan.api == "tf.distribute.MirroredStrategy"
    assert tf_plan.record() == {"backend": "tensorflow", "api": "tf.distribute.MirroredStrategy",
                                "devices": gpus, "per_device_batch": 2}


def test_torch_trains_on_one_device_and_says_so():
    """Keras 3.15 has no distribution API under torch: the first GPU, and one warning."""
    with pytest.warns(UserWarning, match=r"torch backend.*training on cuda:0 only, one of 2"):
        plan = distribution(5, backend="torch", devices=["cuda:0", "cuda:1"])
    assert plan == Distribution("torch", ("cuda:0",), None, 5)  # 5: no split to divide


class _Batches(keras.utils.PyDataset):
    """10 windows in batches of 4, 4, 2 or 4, 4, 3 (11), with or without class weights."""

    def __init__(self, n: int, weights: bool):
        super().__init__()
        self.x = np.arange(n, dtype=np.float32)[:, None]
        self.y = np.eye(3, dtype=np.float32)[np.arange(n) % 3]
        self.w = np.linspace(1, 2, n).astype(np.float32) if weights else None
        self.ended = 0

    def __len__(self):
        return -(-len(self.x) // 4)

    def __getitem__(self, i):
        sel = slice(4 * i, 4 * i + 4)
        return (self.x[sel], self.y[sel]) + (() if self.w is None else (self.w[sel],))

    def on_epoch_end(self):
        self.ended += 1


@pytest.mark.parametrize("weights", [False, True])
def test_a_short_batch_is_padded_so_its_mean_loss_is_unchanged(weights):
    inner = _Batches(11, weights)
    even = _EvenBatches(inner, 2)
    assert len(even) == 3
    x, y, w = even[2]  # 3 windows padded to 4
    assert x.shape == (4, 1) and y.shape == (4, 3) and w.dtype == np.float32
    np.testing.assert_array_equal(x[:, 0], [8, 9, 10, 8])
    real_w = np.ones(3) if not weights else inner.w[8:]
    np.testing.assert_allclose(w, np.r_[real_w * 4 / 3, 0], rtol=1e-6)
    losses = np.array([0.5, 1.0, 2.0])  # any per-window losses of the 3 real windows
    padded = np.sum(np.r_[losses, 7.0] * w) / 4  # Keras: sum(loss * weight) / batch size
    np.testing.assert_allclose(padded, np.sum(losses * real_w) / 3, rtol=1e-6)
    x0, _, w0 = even[0]  # a full batch: unchanged, weights of one where there were none
    assert len(x0) == 4
    np.testing.assert_allclose(w0, np.ones(4) if not weights else inner.w[:4])
    even.on_epoch_end()
    assert inner.ended == 1  # the inner dataset reshuffles as before
