"""Running on whatever the machine has: the accelerator, the precision and the loader.

Everything here is backend-neutral Keras 3: the same calls work under
``KERAS_BACKEND=tensorflow`` (Colab's default, and CI's), ``jax`` (the project's GPU
machines, which have no TensorFlow) and ``torch``.

* :func:`describe_accelerator` -- which device Keras will train on (GPU, TPU or CPU).
* :func:`precision_policy` / :func:`use_mixed_precision` -- ``mixed_float16`` on a GPU,
  ``mixed_bfloat16`` on a TPU, ``float32`` on a CPU (where half precision is emulated
  and slower). The model's softmax stays float32 (see :func:`lss.model.build_cnn_lstm`).
* :func:`loader_settings` -- ``workers`` / ``max_queue_size`` for
  :class:`lss.train.WindowDataset`, so batches are read from the cache ahead of the
  accelerator.
* :class:`ArrayBatches` and :func:`batches_per_second` -- an in-memory dataset and a
  read-rate measurement, to compare the cache with memory.
* :func:`resolve_epochs` and :func:`train_on_accelerator` -- the book's full training
  run in one call: the paper's 20 epochs on an accelerator, a short run on a CPU.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from lss.config import PAPER_EPOCHS, SEVERITIES

if TYPE_CHECKING:  # pragma: no cover
    from lss.config import Config
    from lss.train import TrainResult

__all__ = [
    "describe_accelerator",
    "precision_policy",
    "use_mixed_precision",
    "loader_settings",
    "ReadAheadDataset",
    "ArrayBatches",
    "batches_per_second",
    "resolve_epochs",
    "train_on_accelerator",
]

_KINDS = ("GPU", "TPU", "CPU")


def _cpu_name() -> str:
    return platform.processor() or platform.machine() or "CPU"


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


def precision_policy(kind: str, enabled: bool | None = None) -> str:
    """The Keras dtype policy for a device kind.

    Parameters
    ----------
    kind : {"GPU", "TPU", "CPU"}
    enabled : bool or None
        ``None`` (automatic): mixed precision on a GPU or TPU, float32 on a CPU.
        ``False``: float32 everywhere. ``True``: mixed precision, and a ``ValueError``
        on a CPU, where float16 arithmetic is emulated and slower than float32.

    Examples
    --------
    >>> precision_policy("GPU"), precision_policy("TPU"), precision_policy("CPU")
    ('mixed_float16', 'mixed_bfloat16', 'float32')
    >>> precision_policy("GPU", enabled=False)
    'float32'
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    if enabled not in (None, True, False):
        raise ValueError(f"enabled must be True, False or None, got {enabled!r}")
    if enabled is False:
        return "float32"
    if kind == "CPU":
        if enabled:
            raise ValueError("Mixed precision was asked for, but Keras runs on a CPU, where "
                             "float16 is emulated and slower; pass enabled=None or False")
        return "float32"
    return "mixed_float16" if kind == "GPU" else "mixed_bfloat16"


def use_mixed_precision(
    enabled: bool | None = None,
    *,
    accelerator: Mapping[str, Any] | None = None,
) -> str:
    """Set Keras' global dtype policy for this machine and return its name.

    Layers built afterwards compute in float16 (GPU) or bfloat16 (TPU) and keep their
    weights in float32; :func:`lss.model.build_cnn_lstm` keeps the softmax in float32,
    so probabilities and the loss are computed at full precision. Under
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
    policy = precision_policy(_kind(accelerator), enabled)
    keras.mixed_precision.set_global_policy(policy)
    return policy


def loader_settings(accelerator: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``workers``, ``use_multiprocessing`` and ``max_queue_size`` for the loaders.

    The settings of :class:`ReadAheadDataset` (:class:`lss.train.WindowDataset`,
    :class:`ArrayBatches`), named as ``keras.utils.PyDataset`` names them.

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


class ReadAheadDataset(keras.utils.PyDataset):
    """A ``PyDataset`` that reads batches ahead in threads of its own, strictly in order.

    Subclasses implement :meth:`batch_indices` (which samples make batch ``i`` now) and
    :meth:`read_batch` (the batch of those samples). With ``workers`` above 1, asking for
    batch ``i`` also starts reading batches ``i + 1 .. i + max_queue_size`` of the same
    epoch in ``workers`` threads; :meth:`on_epoch_end` drops whatever was read ahead.

    Why not Keras' own workers: ``PyDataset(workers=4)`` keeps the batches it has read
    ahead when an epoch is cut short and hands them out first in the next one. Keras' JAX
    trainer cuts the first epoch short by design (``fit`` takes one batch to build the
    model, then resets), so every later epoch began with stale batches of the previous
    order, and a run with reader threads trained on other batches than the same run
    without (Keras 3.15; seen by ``tests/test_train.py`` under ``KERAS_BACKEND=jax``).
    Keras is therefore always given ``workers=1``: it asks for batches one at a time, in
    order, and the threads are ours.

    Parameters
    ----------
    workers : int
        Reader threads; 1 reads each batch when it is asked for.
    use_multiprocessing : bool
        Must be False: the cache entries are read in threads (reading releases the GIL).
    max_queue_size : int
        How many batches to read ahead.
    """

    def __init__(self, *, workers: int = 1, use_multiprocessing: bool = False,
                 max_queue_size: int = 10) -> None:
        if use_multiprocessing:
            raise ValueError("use_multiprocessing=True is not supported: lss reads ahead "
                             "in threads (workers=N)")
        if isinstance(workers, bool) or int(workers) != workers or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        super().__init__(workers=1, use_multiprocessing=False, max_queue_size=max_queue_size)
        self.read_threads = int(workers)
        self.read_ahead = max(1, int(max_queue_size))
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: dict[int, Any] = {}  # batch number -> Future, this epoch only

    def batch_indices(self, i: int) -> Any:
        """The samples of batch ``i`` in the current epoch (an index array or slice)."""
        raise NotImplementedError

    def read_batch(self, sel: Any) -> Any:
        """The batch made of the samples ``sel``."""
        raise NotImplementedError

    def __getitem__(self, i: int):
        if not 0 <= i < len(self):
            raise IndexError(f"batch {i} of {len(self)}")
        future = self._ahead.pop(i, None)
        batch = future.result() if future is not None else self.read_batch(self.batch_indices(i))
        if self.read_threads > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.read_threads, thread_name_prefix="lss-read")
            for j in range(i + 1, min(len(self), i + 1 + self.read_ahead)):
                if j not in self._ahead:  # the samples are chosen now, in this epoch's order
                    self._ahead[j] = self._pool.submit(self.read_batch, self.batch_indices(j))
        return batch

    def on_epoch_end(self) -> None:
        """Drop the batches read ahead: the next epoch may order the samples differently."""
        self.drop_read_ahead()

    def drop_read_ahead(self) -> None:
        """Forget (and cancel) every batch read ahead, keeping the order."""
        for future in self._ahead.values():
            future.cancel()
        self._ahead.clear()

    def __del__(self) -> None:
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


class ArrayBatches(ReadAheadDataset):
    """Batches of windows held in memory: ``x`` (B, Z, S, S, 1) and one-hot ``y`` (B, 3).

    The in-memory counterpart of :class:`lss.train.WindowDataset` (same batch layout,
    no shuffling), e.g. from :meth:`lss.data.TensorCache.load`.

    Parameters
    ----------
    volumes : (N, Z, S, S) array
    labels : (N,) array of int, optional
        Without labels, batches are ``(x,)``.
    batch_size : int
    **kwargs
        ``workers`` (reader threads) and ``max_queue_size`` (:class:`ReadAheadDataset`).

    Examples
    --------
    >>> ds = ArrayBatches(np.zeros((5, 2, 8, 8)), [0, 1, 2, 0, 1], batch_size=2)
    >>> len(ds), ds[2][0].shape, ds[2][1].tolist()
    (3, (1, 2, 8, 8, 1), [[0.0, 1.0, 0.0]])
    """

    def __init__(self, volumes: np.ndarray, labels: Any = None, *, batch_size: int = 8,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.volumes = np.asarray(volumes, dtype=np.float32)
        if self.volumes.ndim != 4:
            raise ValueError(f"volumes must have shape (N, Z, S, S), got {self.volumes.shape}")
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        if self.labels is not None and len(self.labels) != len(self.volumes):
            raise ValueError(f"{len(self.volumes)} volumes but {len(self.labels)} labels")
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = int(batch_size)

    def __len__(self) -> int:
        return math.ceil(len(self.volumes) / self.batch_size)

    def batch_indices(self, i: int) -> slice:
        return slice(i * self.batch_size, (i + 1) * self.batch_size)

    def read_batch(self, sel: slice):
        x = self.volumes[sel, ..., None].copy()  # a batch of its own, as a loader delivers
        if self.labels is None:
            return (x,)
        return x, np.eye(len(SEVERITIES), dtype=np.float32)[self.labels[sel]]


def batches_per_second(dataset: keras.utils.PyDataset, *, n_batches: int | None = None,
                       repeats: int = 1) -> float:
    """How many batches per second a ``PyDataset`` delivers, without a model.

    Reads batches ``0 .. n_batches - 1`` in order, the way ``Model.fit`` does (a
    :class:`ReadAheadDataset` with reader threads reads ahead while the batches are
    taken), and drops what was read ahead after each pass. The best of ``repeats`` passes is
    returned (the first pass may be slower while the operating system caches the files).

    Parameters
    ----------
    dataset : keras.utils.PyDataset
        E.g. :class:`lss.train.WindowDataset` or :class:`ArrayBatches`.
    n_batches : int, optional
        Default: all of them.
    repeats : int
        Passes over the batches.

    Examples
    --------
    >>> batches_per_second(ArrayBatches(np.zeros((4, 2, 8, 8)), batch_size=2)) > 0
    True
    """
    n = len(dataset) if n_batches is None else min(int(n_batches), len(dataset))
    if n < 1:
        raise ValueError(f"need at least one batch to time, got n_batches={n_batches}")
    if isinstance(repeats, bool) or int(repeats) != repeats or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    best = math.inf
    for _ in range(int(repeats)):
        t0 = time.perf_counter()
        for i in range(n):
            dataset[i]
        best = min(best, time.perf_counter() - t0)
        if isinstance(dataset, ReadAheadDataset):
            dataset.drop_read_ahead()  # the next pass reads everything again
    return n / best


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


def train_on_accelerator(
    root: str | Path,
    run_dir: str | Path,
    *,
    epochs: int | None = None,
    cpu_epochs: int = 6,
    seed: int = 0,
    config: Config | None = None,
    cache_dir: str | Path | None = None,
    mixed_precision: bool | None = None,
    overwrite: bool = False,
    verbose: int = 2,
) -> TrainResult:
    """The book's full training run: :func:`lss.train.train` set up for this machine.

    The paper's settings (``config``, default :class:`lss.config.Config`) with
    ``epochs`` from :func:`resolve_epochs`, the seed, mixed precision where the
    device has it (:func:`use_mixed_precision`) and the loader of
    :func:`loader_settings`. Chapter 4 makes this run; chapter 5 repeats this exact
    call when it is opened without chapter 4's run folder.

    Parameters
    ----------
    root : str or Path
        The data root.
    run_dir : str or Path
        The run folder (see :func:`lss.train.train`).
    epochs : int or None
        ``None``: 20 on a GPU or TPU, ``cpu_epochs`` on a CPU.
    seed : int
        ``TrainConfig.seed``: the split, the initial weights and the augmentation.
    mixed_precision : bool or None
        As ``enabled`` in :func:`precision_policy`.
    overwrite, verbose, cache_dir
        As in :func:`lss.train.train`.
    """
    from lss.config import Config
    from lss.train import train

    accelerator = describe_accelerator()
    n = resolve_epochs(epochs, accelerator, cpu_epochs=cpu_epochs)
    config = (config or Config()).replace(epochs=n, seed=int(seed))
    return train(root, config, run_dir, cache_dir=cache_dir, overwrite=overwrite,
                 verbose=verbose, mixed_precision=mixed_precision,
                 loader=loader_settings(accelerator))
