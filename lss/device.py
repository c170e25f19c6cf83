"""The device Keras runs on: what it is, its precision policy, its loader settings.

Everything here is backend-neutral Keras 3: the same calls work under
``KERAS_BACKEND=tensorflow`` (Colab's default, and CI's), ``jax`` (the project's GPU
machines, which have no TensorFlow) and ``torch``.

* :func:`describe_accelerator` -- which device Keras will train on (GPU, TPU or CPU).
* :func:`precision_policy` / :func:`use_mixed_precision` -- ``mixed_float16`` on a GPU,
  ``mixed_bfloat16`` on a TPU and on a CPU that multiplies bfloat16 natively under
  TensorFlow (:func:`fast_cpu_bf16`), ``float32`` on other CPUs (where half precision
  is emulated and slower). The model's softmax stays float32 (see
  :func:`lss.model.build_cnn_lstm`).
* :func:`loader_settings` -- ``workers`` / ``max_queue_size`` for
  :class:`lss.data.loader.WindowDataset`, so batches are read from the cache ahead of
  the accelerator.
* :func:`resolve_epochs` -- the paper's 20 epochs on an accelerator, a short run on a
  CPU (used by :func:`lss.train.train_on_device`, the book's full training run).
* :func:`distribution` -- data parallelism over every device Keras sees, through Keras'
  own API (``keras.distribution.DataParallel`` under JAX, ``tf.distribute.
  MirroredStrategy`` under TensorFlow); one device, or PyTorch, trains as before.
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from lss.config import PAPER_EPOCHS

__all__ = [
    "describe_accelerator",
    "precision_policy",
    "fast_cpu_bf16",
    "cpu_flags",
    "BF16_FLAGS",
    "use_mixed_precision",
    "loader_settings",
    "resolve_epochs",
    "Distribution",
    "distribution",
]

_KINDS = ("GPU", "TPU", "CPU")


def _cpu_name() -> str:
    """The CPU as a reader needs it beside a timing: its core count. Not the processor
    string (``platform.processor()``), which names the build machine's platform."""
    n = os.cpu_count() or 1
    return f"{n} core{'s' if n > 1 else ''}"


def _devices(backend: str) -> tuple[str, list[str], str | None]:
    """(kind, device names, compute capability of the first GPU or None)."""
    if backend == "jax":
        import jax

        devices = jax.devices()  # the default platform: tpu > gpu > cpu
        platform_ = devices[0].platform.upper()
        kind = platform_ if platform_ in ("GPU", "TPU") else "CPU"
        if kind == "CPU":
            return kind, [_cpu_name()], None
        names = [str(getattr(d, "device_kind", d)) for d in devices]
        cc = getattr(devices[0], "compute_capability", None)
        return kind, names, None if cc is None else str(cc)
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = [tf.config.experimental.get_device_details(g) for g in gpus]
            names = [d.get("device_name", g.name) for d, g in zip(details, gpus, strict=True)]
            cc = details[0].get("compute_capability")
            return "GPU", names, None if cc is None else ".".join(map(str, cc))
        tpus = tf.config.list_logical_devices("TPU")
        if tpus:
            return "TPU", [t.name for t in tpus], None
        return "CPU", [_cpu_name()], None
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            n = torch.cuda.device_count()
            cc = ".".join(map(str, torch.cuda.get_device_capability(0)))
            return "GPU", [torch.cuda.get_device_name(i) for i in range(n)], cc
        return "CPU", [_cpu_name()], None
    return "CPU", [_cpu_name()], None


def describe_accelerator() -> dict[str, Any]:
    """The device Keras trains on, as the current backend sees it.

    Returns
    -------
    dict
        ``backend`` ("tensorflow", "jax", "torch", ...), ``kind`` ("GPU", "TPU" or
        "CPU"), ``devices`` (names, one per device of that kind), ``n_devices``,
        ``compute_capability`` (of the first GPU, e.g. ``"9.0"``; None otherwise),
        ``cpu_count`` and ``label``, a phrase to print beside timings, e.g.
        ``"GPU: NVIDIA H100 80GB HBM3 (jax backend)"``.

    Examples
    --------
    >>> info = describe_accelerator()
    >>> info["kind"] in ("GPU", "TPU", "CPU")
    True
    """
    backend = keras.backend.backend()
    kind, names, cc = _devices(backend)
    count = f"{len(names)} x " if len(names) > 1 else ""
    return {
        "backend": backend,
        "kind": kind,
        "devices": names,
        "n_devices": len(names),
        "compute_capability": cc,
        "cpu_count": os.cpu_count() or 1,
        "label": f"{kind}: {count}{names[0]} ({backend} backend)",
    }


def _kind(accelerator: Mapping[str, Any] | None) -> str:
    info = describe_accelerator() if accelerator is None else accelerator
    kind = info.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"accelerator kind must be one of {_KINDS}, got {kind!r}")
    return str(kind)


#: CPU flags (``/proc/cpuinfo``) of native bfloat16 arithmetic: AVX-512 BF16, AMX-BF16.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def fast_cpu_bf16(backend: str | None = None, cpuinfo: str | os.PathLike = "/proc/cpuinfo"
                  ) -> bool:
    """Whether ``mixed_bfloat16`` is the faster policy on this CPU: True where the CPU
    has one of :data:`BF16_FLAGS` and the backend is TensorFlow.

    Measured with ``benchmarks/step_profile.py`` and ``benchmarks/bf16_vs_fp32.py``
    (book/benchmarks.md): on a 2-core AMD EPYC with AVX512_BF16, TensorFlow's
    ``mixed_bfloat16`` training step ran at twice float32's samples/s, with the same
    validation loss after a short run; on one without it (AVX2 only), 8.7 times slower,
    as bfloat16 is then emulated. JAX and PyTorch on a CPU were not measured, so they
    keep float32. A machine without ``cpuinfo`` (macOS, Windows) keeps float32.

    Examples
    --------
    >>> fast_cpu_bf16("tensorflow", cpuinfo="/nonexistent")
    False
    """
    if (backend or keras.backend.backend()) != "tensorflow":
        return False
    return any(flag in cpu_flags(cpuinfo) for flag in BF16_FLAGS)


def cpu_flags(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> list[str]:
    """The instruction-set flags of the first CPU in ``cpuinfo`` (Linux); [] without one.

    Examples
    --------
    >>> cpu_flags("/nonexistent")
    []
    """
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as f:
            return next((line.split(":", 1)[1].split() for line in f
                         if line.startswith("flags")), [])
    except OSError:
        return []


def precision_policy(kind: str, enabled: bool | None = None, *,
                     cpu_bf16: bool | None = None) -> str:
    """The Keras dtype policy for a device kind.

    Parameters
    ----------
    kind : {"GPU", "TPU", "CPU"}
    enabled : bool or None
        ``None`` (automatic): mixed precision on a GPU or TPU, and on a CPU where
        ``cpu_bf16``; float32 on other CPUs. ``False``: float32 everywhere. ``True``:
        mixed precision, and a ``ValueError`` on a CPU without native bfloat16, where
        half precision is emulated and slower than float32.
    cpu_bf16 : bool or None
        Whether this CPU runs ``mixed_bfloat16`` faster than float32; None:
        :func:`fast_cpu_bf16` tells (it reads the CPU's flags).

    Examples
    --------
    >>> precision_policy("GPU"), precision_policy("TPU"), precision_policy("CPU", cpu_bf16=False)
    ('mixed_float16', 'mixed_bfloat16', 'float32')
    >>> precision_policy("CPU", cpu_bf16=True), precision_policy("GPU", enabled=False)
    ('mixed_bfloat16', 'float32')
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    if enabled not in (None, True, False):
        raise ValueError(f"enabled must be True, False or None, got {enabled!r}")
    if enabled is False:
        return "float32"
    if kind == "CPU":
        if fast_cpu_bf16() if cpu_bf16 is None else cpu_bf16:
            return "mixed_bfloat16"
        if enabled:
            raise ValueError("Mixed precision was asked for, but Keras runs on a CPU without "
                             f"native bfloat16 ({' or '.join(BF16_FLAGS)} under TensorFlow), "
                             "where half precision is emulated and slower; pass enabled=None "
                             "or False")
        return "float32"
    return "mixed_float16" if kind == "GPU" else "mixed_bfloat16"


def use_mixed_precision(
    enabled: bool | None = None,
    *,
    accelerator: Mapping[str, Any] | None = None,
) -> str:
    """Set Keras' global dtype policy for this machine and return its name.

    Layers built afterwards compute in float16 (GPU) or bfloat16 (TPU, a CPU with
    native bfloat16) and keep their weights in float32;
    :func:`lss.model.build_cnn_lstm` keeps the softmax in float32, so probabilities
    and the loss are computed at full precision. Under
    ``mixed_float16`` ``Model.compile`` wraps the optimizer in a
    ``keras.optimizers.LossScaleOptimizer``, so that small gradients do not underflow.

    Parameters
    ----------
    enabled : bool or None
        As in :func:`precision_policy` (default: automatic).
    accelerator : dict, optional
        From :func:`describe_accelerator` (called when omitted).

    Returns
    -------
    str
        ``"mixed_float16"``, ``"mixed_bfloat16"`` or ``"float32"``. Call
        ``use_mixed_precision(False)`` to go back to float32.
    """
    backend = None if accelerator is None else accelerator.get("backend")
    kind = _kind(accelerator)
    cpu_bf16 = fast_cpu_bf16(backend) if kind == "CPU" else False
    policy = precision_policy(kind, enabled, cpu_bf16=cpu_bf16)
    keras.mixed_precision.set_global_policy(policy)
    return policy


def loader_settings(accelerator: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``workers``, ``use_multiprocessing`` and ``max_queue_size`` for the loaders.

    The settings of :class:`lss.data.loader.ReadAheadDataset` (``WindowDataset``,
    ``ArrayBatches``), named as ``keras.utils.PyDataset`` names them.

    On a GPU or TPU, up to four threads read cache entries ahead of the model (an
    entry is a plain ``.npz`` file; reading it mostly waits on the disk and releases
    the GIL, so threads suffice), keeping up to 16 batches queued. On a CPU the model
    needs every core, and batches are read in the training loop (``workers=1``).

    Parameters
    ----------
    accelerator : dict, optional
        From :func:`describe_accelerator` (called when omitted).

    Examples
    --------
    >>> loader_settings({"kind": "CPU", "cpu_count": 2})
    {'workers': 1, 'use_multiprocessing': False, 'max_queue_size': 10}
    >>> loader_settings({"kind": "GPU", "cpu_count": 16})
    {'workers': 4, 'use_multiprocessing': False, 'max_queue_size': 16}
    """
    info = describe_accelerator() if accelerator is None else accelerator
    kind = _kind(info)
    cpus = int(info.get("cpu_count") or os.cpu_count() or 1)
    if kind == "CPU" or cpus < 2:
        return {"workers": 1, "use_multiprocessing": False, "max_queue_size": 10}
    return {"workers": min(4, cpus), "use_multiprocessing": False, "max_queue_size": 16}


def resolve_epochs(epochs: int | None, accelerator: Mapping[str, Any] | None = None, *,
                   cpu_epochs: int) -> int:
    """The number of epochs to train: ``epochs`` if given, else by device.

    ``None`` means the paper's :data:`PAPER_EPOCHS` (20) on a GPU or TPU and
    ``cpu_epochs`` (a short run sized to the time available) on a CPU.

    Examples
    --------
    >>> resolve_epochs(None, {"kind": "GPU"}, cpu_epochs=6)
    20
    >>> resolve_epochs(None, {"kind": "CPU"}, cpu_epochs=6), resolve_epochs(3, cpu_epochs=6)
    (6, 3)
    """
    for value, what in ((cpu_epochs, "cpu_epochs"), (epochs, "epochs")):
        if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
            raise ValueError(f"{what} must be a positive integer, got {value!r}")
    if epochs is not None:
        return int(epochs)
    return PAPER_EPOCHS if _kind(accelerator) in ("GPU", "TPU") else int(cpu_epochs)


_KERAS_DP = "keras.distribution.DataParallel"
_TF_MIRRORED = "tf.distribute.MirroredStrategy"


@dataclass(frozen=True)
class Distribution:
    """How :func:`lss.train.train` spreads its batches over devices (see :func:`distribution`).

    Attributes
    ----------
    backend : str
        The Keras backend.
    devices : tuple of str
        The devices that train, as Keras names them (``"gpu:0"``, ``"cpu:1"``, ``"cuda:0"``).
    api : str or None
        ``"keras.distribution.DataParallel"`` (JAX), ``"tf.distribute.MirroredStrategy"``
        (TensorFlow) or None (one device: Keras as usual).
    batch_size : int
        The global batch: each device computes on ``batch_size / len(devices)`` windows
        of it, and the weights are updated once per global batch, as on one device.
    """

    backend: str
    devices: tuple[str, ...]
    api: str | None
    batch_size: int

    @functools.cached_property
    def strategy(self) -> Any:
        """The Keras distribution or TensorFlow strategy (made once), or None."""
        if self.api == _KERAS_DP:
            return keras.distribution.DataParallel(devices=list(self.devices))
        if self.api == _TF_MIRRORED:
            import tensorflow as tf

            return tf.distribute.MirroredStrategy([f"/{d}" for d in self.devices])
        return None

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Build the model, and fit it, inside this (the same strategy each time): its
        variables are copied to every device and each batch is split among them. With
        ``api=None`` nothing changes."""
        if self.strategy is None:
            yield
            return
        with self.strategy.scope():
            yield

    def batches(self, dataset: keras.utils.PyDataset) -> keras.utils.PyDataset:
        """``dataset`` as the devices can split it, each batch a multiple of their count
        (a last, short batch is padded: :class:`_EvenBatches`); one device: ``dataset``.

        JAX cannot split a batch unevenly. MirroredStrategy can, but then averages the
        devices' means, which weighs the windows of the smaller share more; padded, the
        update is the one a single device makes."""
        if self.api is None:
            return dataset
        return _EvenBatches(dataset, len(self.devices))

    def record(self) -> dict[str, Any]:
        """What a run's manifest records: backend, api, devices and the per-device batch."""
        return {"backend": self.backend, "api": self.api, "devices": list(self.devices),
                "per_device_batch": self.batch_size // len(self.devices)}


def _visible_devices(backend: str) -> list[str]:
    """The devices Keras would train on: the accelerators, or the CPU when there are none."""
    if backend in ("jax", "tensorflow"):
        return list(keras.distribution.list_devices())
    if backend == "torch":
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return [f"cuda:{i}" for i in range(n)] or ["cpu"]
    return ["cpu"]


def distribution(batch_size: int, *, backend: str | None = None,
                 devices: Sequence[str] | None = None) -> Distribution:
    """Data parallelism over the devices Keras sees, through Keras' own API.

    * One device: nothing changes (``api=None``).
    * JAX, several devices: ``keras.distribution.DataParallel(devices=...)``.
    * TensorFlow, several GPUs (or logical CPUs): ``tf.distribute.MirroredStrategy``
      (Keras 3.15's ``keras.distribution`` under TensorFlow is a DTensor prototype that
      Keras marks "do not use"). TPUs under TensorFlow are not handled: one device.
    * PyTorch: Keras 3.15 has no distribution API for torch (``fit`` runs on one device;
      torch's ``DistributedDataParallel`` needs a training loop of one's own), so the run
      uses the first device and says so in one warning.

    Parameters
    ----------
    batch_size : int
        The global batch (``TrainConfig.batch_size``); it must divide by the number of
        devices, so that each device gets an equal share.
    backend : str, optional
        Default: ``keras.backend.backend()``.
    devices : sequence of str, optional
        Default: every device of the default kind, as ``keras.distribution.list_devices``
        lists them (``CUDA_VISIBLE_DEVICES`` chooses which GPUs are seen).

    Examples
    --------
    >>> plan = distribution(8, backend="jax", devices=["gpu:0", "gpu:1"])
    >>> plan.api, plan.record()["per_device_batch"]
    ('keras.distribution.DataParallel', 4)
    >>> distribution(8, backend="jax", devices=["cpu:0"]).api is None
    True
    """
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    backend = keras.backend.backend() if backend is None else backend
    devices = tuple(_visible_devices(backend) if devices is None else devices)
    if not devices:
        raise ValueError("devices is empty: give at least one device")
    api = {"jax": _KERAS_DP, "tensorflow": _TF_MIRRORED}.get(backend)
    if backend == "tensorflow" and devices[0].lower().startswith("tpu"):
        api = None
    if len(devices) > 1 and api is None:
        warnings.warn(f"Keras has no data parallelism here ({backend} backend, "
                      f"{devices[0].split(':')[0]}): training on {devices[0]} only, "
                      f"one of {len(devices)} devices", stacklevel=2)
        devices = devices[:1]
    if len(devices) == 1:
        return Distribution(backend, devices, None, int(batch_size))
    if batch_size % len(devices):
        raise ValueError(f"batch_size {batch_size} does not divide among {len(devices)} "
                         f"devices ({', '.join(devices)}); use a multiple of {len(devices)}")
    return Distribution(backend, devices, api, int(batch_size))


class _EvenBatches(keras.utils.PyDataset):
    """``dataset``'s batches, each a multiple of ``n`` windows, for ``n`` devices.

    A last, short batch of ``r`` windows is padded to ``p``, the next multiple of ``n``,
    with copies of its first window. The copies weigh 0 and the real windows ``p / r``
    (times their class weight), so the batch's loss, a mean over ``p``, is the mean over
    the ``r`` real windows, and the gradient step is the one a single device takes.
    Keras' epoch averages still count the copies (the loss tracker weighs a batch by its
    size; accuracy is unweighted), so an epoch's reported loss and accuracy may move by
    at most ``(n - 1) / N`` of their range, for ``N`` windows. Every batch carries weights
    (ones, where ``dataset`` has none), so that all batches have the same structure.
    """

    def __init__(self, dataset: keras.utils.PyDataset, n: int) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.dataset = dataset
        self.n = int(n)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        x, y, *w = self.dataset[i]
        r = len(x)
        w = np.ones(r, dtype=np.float32) if not w else np.asarray(w[0], dtype=np.float32)
        pad = -r % self.n
        if not pad:
            return x, y, w
        take = np.r_[np.arange(r), np.zeros(pad, dtype=int)]
        w = np.r_[w * (r + pad) / r, np.zeros(pad, dtype=np.float32)].astype(np.float32)
        return x[take], y[take], w

    def on_epoch_begin(self) -> None:
        self.dataset.on_epoch_begin()

    def on_epoch_end(self) -> None:
        self.dataset.on_epoch_end()
