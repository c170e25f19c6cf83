"""Batches for Keras: cached windows or arrays in memory, read ahead in threads, in order.

* :class:`ReadAheadDataset` -- a ``keras.utils.PyDataset`` that reads the next batches
  in threads of its own while the model trains on this one, strictly in the epoch's order;
* :class:`WindowDataset` -- batches of :class:`~lss.data.TensorCache` entries (training,
  validation, prediction), shuffled from (seed, epoch) so that a resumed run repeats them;
* :class:`ArrayBatches` -- the same layout from windows held in memory;
* :func:`batches_per_second` -- the read rate of a dataset without a model (benchmarks).

Imported as ``lss.data.loader`` (not re-exported by :mod:`lss.data`, whose tables, DICOM
and cache need no Keras).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import keras
import numpy as np

from lss.config import SEVERITIES
from lss.data.cache import TensorCache

__all__ = ["ReadAheadDataset", "WindowDataset", "ArrayBatches", "batches_per_second"]


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


class WindowDataset(ReadAheadDataset):
    """Batches of cached windows: ``x`` (B, Z, S, S, 1), one-hot ``y`` (B, 3)[, weights].

    Parameters
    ----------
    paths : sequence of Path
        Cache entries (see :meth:`lss.data.TensorCache.paths`), one per sample.
    labels : sequence of int or None
        Class indices; None for prediction (batches are ``x`` only).
    batch_size : int
    shuffle : bool
        Reshuffle at every epoch, from ``seed`` and the epoch number (repeatable).
    weights : (3,) array, optional
        Per-class weights; batches then carry per-sample weights.
    epoch : int
        The first epoch's number (the shuffle of epoch k is the same in a resumed run).
    mirror : sequence of bool, optional
        Samples to flip left-right as they are read (a right-side crop mirrored into
        the left side's place, so one model grades both sides; see
        :mod:`lss.data.targets`).
    **kwargs
        ``workers`` (reader threads) and ``max_queue_size`` (see
        :class:`ReadAheadDataset` and :func:`lss.device.loader_settings`).
    """

    def __init__(self, paths: Sequence[Path], labels: Sequence[int] | None = None, *,
                 batch_size: int = 8, shuffle: bool = False, seed: int = 0,
                 weights: np.ndarray | None = None, epoch: int = 0,
                 mirror: Sequence[bool] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.paths = [Path(p) for p in paths]
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        if self.labels is not None and len(self.labels) != len(self.paths):
            raise ValueError(f"{len(self.paths)} paths but {len(self.labels)} labels")
        self.mirror = None if mirror is None else np.asarray(mirror, dtype=bool)
        if self.mirror is not None and len(self.mirror) != len(self.paths):
            raise ValueError(f"{len(self.paths)} paths but {len(self.mirror)} mirror flags")
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.weights = weights
        self._epoch = epoch
        self._order = self._make_order()

    def _make_order(self) -> np.ndarray:
        idx = np.arange(len(self.paths))
        if self.shuffle:
            np.random.default_rng((self.seed, self._epoch)).shuffle(idx)
        return idx

    def __len__(self) -> int:
        return math.ceil(len(self.paths) / self.batch_size)

    def batch_indices(self, i: int) -> np.ndarray:
        return self._order[i * self.batch_size:(i + 1) * self.batch_size]

    def read_batch(self, sel: np.ndarray):
        x = np.stack([TensorCache.read(self.paths[j]) for j in sel])[..., None]
        if self.mirror is not None and self.mirror[sel].any():
            flip = self.mirror[sel]
            x[flip] = x[flip][:, :, :, ::-1]  # (B, Z, rows, columns, 1): columns reversed
        if self.labels is None:
            return (x,)
        y = np.eye(len(SEVERITIES), dtype=np.float32)[self.labels[sel]]
        if self.weights is None:
            return x, y
        return x, y, self.weights[self.labels[sel]]

    def on_epoch_end(self) -> None:
        super().on_epoch_end()
        self._epoch += 1
        self._order = self._make_order()


class ArrayBatches(ReadAheadDataset):
    """Batches of windows held in memory: ``x`` (B, Z, S, S, 1) and one-hot ``y`` (B, 3).

    The in-memory counterpart of :class:`WindowDataset` (same batch layout,
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
        E.g. :class:`WindowDataset` or :class:`ArrayBatches`.
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
