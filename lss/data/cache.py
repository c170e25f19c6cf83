"""A disk cache of preprocessed level windows, so each DICOM is decoded once.

Layout: ``<cache_dir>/<settings key>/<study>_<series>_<instance>[_<centre>].npz``, where
the settings key hashes every :class:`~lss.config.PreprocessConfig` field and the data
root. Each entry also stores a fingerprint of its series folder (see
:func:`_fingerprint`: every file's name, size, modification time, status-change time and
inode) and the source image size: an entry whose series changed in any way -- also a
same-size edit whose modification time was put back, as ``cp -p``, ``rsync -a``, ``tar``
and ``unzip`` do -- is recomputed, never read stale. Every index row is checked (a finite
coordinate inside the image) before its entry is looked up, so a warm cache refuses the
same rows as a cold one. Entries are written to a temporary file and renamed into place,
so a crash mid-write leaves no entry that a later run would read. Entries hold plain
arrays and are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import time
import uuid
import zipfile
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lss.config import PreprocessConfig
from lss.data.dicom import _first_shape
from lss.data.tables import series_dir
from lss.data.window import check_inside, coordinate, level_window
from lss.errors import DataError, WorkerDied
from lss.progress import bar

__all__ = ["TensorCache", "CacheStats", "default_cache_dir", "ON_ERROR"]

log = logging.getLogger("lss")


def default_cache_dir() -> Path:
    """``$LSS_CACHE`` if set, else ``~/.cache/lss``."""
    return Path(os.environ.get("LSS_CACHE", Path.home() / ".cache" / "lss"))


#: What :meth:`TensorCache.prepare` does with a row whose series fails: ``"raise"`` the
#: first DataError, or ``"report"`` every failure in ``CacheStats.failed`` and go on.
ON_ERROR: tuple[str, ...] = ("raise", "report")


@dataclass
class CacheStats:
    """What one :meth:`TensorCache.prepare` call did.

    ``failed`` (with ``on_error="report"``) lists every row left out: ``row`` (its
    position in the index), ``study_id``, ``series_id`` and ``reason`` (the DataError).
    """

    entries: int = 0
    hits: int = 0
    written: int = 0
    slices_decoded: int = 0
    seconds: float = 0.0
    failed: list[dict] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        failed = f", {len(self.failed)} failed" if self.failed else ""
        return (f"{self.entries} windows: {self.hits} from cache, {self.written} computed "
                f"({self.slices_decoded} slices decoded){failed} in {self.seconds:.1f} s")


def _fingerprint(folder: Path) -> str:
    """Name, size, modification time, status-change time and inode of every file of a
    series folder, hashed.

    One ``stat`` per file and no read, so a cache hit stays about 50 times cheaper than
    computing the window. Size and ``st_mtime_ns`` alone miss a same-size edit whose
    modification time was put back (``cp -p``, ``rsync -a``, ``tar``, ``unzip``, or
    ``os.utime``); ``st_ctime_ns`` is set by the kernel on every write, rename and
    metadata change and no tool can set it back, and a file replaced by a rename has a
    new inode. So a file added, removed, renamed, replaced or rewritten in any way changes
    the fingerprint. (A change of permissions does too: the window is then computed once
    more, which is harmless.) Hashing the window's bytes instead would cost about as much
    as decoding them (the report of the change measures it). What this relies on: a
    POSIX file system with a real ``ctime`` -- on Windows ``st_ctime`` is the creation
    time -- and, on Linux before 6.13 (coarse timestamps), no rewrite within the same
    clock tick (a few ms) as the last change before the fingerprint was taken.
    """
    try:
        with os.scandir(folder) as it:
            entries = sorted((e.name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
                             for e in it if not e.name.startswith(".") for st in (e.stat(),))
    except FileNotFoundError as exc:
        raise DataError(f"Series folder not found: {folder}") from exc
    return hashlib.sha1(repr(entries).encode()).hexdigest()  # str and int reprs are stable


def _write_entry(f, volume: np.ndarray, instance_numbers: np.ndarray, fingerprint: str,
                 shape: tuple[int, int] | None = None) -> None:
    """An ``.npz`` (what ``np.savez`` writes) whose zip comment is the fingerprint and the
    source image size (``<fingerprint> <rows>x<cols>``).

    The members are plain arrays (``allow_pickle=False``); the comment, the last bytes
    of the file, lets :meth:`TensorCache._hit` check an entry, and the index row's
    coordinate against the image, with one small read.
    """
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in (("volume", volume), ("instance_numbers", instance_numbers),
                          ("fingerprint", np.array(fingerprint))):
            with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=False)
        comment = fingerprint if shape is None else f"{fingerprint} {shape[0]}x{shape[1]}"
        zf.comment = comment.encode("ascii")


#: Room in an entry's zip comment after its fingerprint, for `` <rows>x<cols>``.
_SHAPE_ROOM = 16


def _stored_shape(path: Path, fingerprint: str) -> tuple[int, ...] | None:
    """The source image size an entry was computed for, if it was computed for
    ``fingerprint``: ``(rows, cols)``, ``()`` for an entry that recorded none, or None
    when the entry does not end with a zip end record whose comment starts with it."""
    want = fingerprint.encode("ascii")
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        n = min(size, 22 + len(want) + _SHAPE_ROOM)  # the end record, then the comment
        f.seek(size - n)
        tail = f.read(n)
    for at in range(len(tail) - 22 - len(want), -1, -1):
        comment = tail[at + 22:]
        if (tail[at:at + 4] == b"PK\x05\x06"
                and tail[at + 20:at + 22] == len(comment).to_bytes(2, "little")):
            break
    else:
        return None
    if comment == want:
        return ()
    head, _, shape = comment.partition(b" ")
    rows, _, cols = shape.partition(b"x")
    if head != want or not (rows.isdigit() and cols.isdigit()):
        return None
    return int(rows), int(cols)


def _compute(task: tuple) -> int:
    """Worker: compute one window and write it atomically. Returns slices decoded."""
    folder, instance, centre, config, path, fingerprint = task
    w = level_window(folder, instance, config, centre_xy=centre)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            _write_entry(f, w.volume, w.instance_numbers, fingerprint, w.source_shape)
        # No fsync: the rename is what makes an entry visible, so a crashed process never
        # leaves a partial one. After a power cut an entry whose bytes did not reach the
        # disk fails its fingerprint check (or to load) and is computed again.
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return len(np.unique(w.indices))


def _ready() -> None:
    """A worker's first call: it returns once the worker has started (imported lss)."""


def _attempt(task: tuple, i: int, failed: dict[int, str] | None) -> int:
    """``_compute(task)``; with a ``failed`` dict, a DataError is recorded under ``i``."""
    if failed is None:
        return _compute(task)
    try:
        return _compute(task)
    except DataError as exc:
        failed[i] = str(exc)
        return 0


def _collect(future: Future, i: int, failed: dict[int, str] | None) -> int:
    """A worker's answer; with a ``failed`` dict, its DataError is recorded under ``i``."""
    if failed is None:
        return future.result()  # raises the worker's DataError
    try:
        return future.result()
    except DataError as exc:
        failed[i] = str(exc)
        return 0


def _run(todo: list[tuple], workers: int, failed: dict[int, str] | None = None, *,
         progress: bool | None = None) -> list[int]:
    """``_compute`` every task, here and in ``workers - 1`` spawned processes.

    This process starts on the tasks at once. A spawned worker takes about a second to
    import numpy, pandas and pydicom, so it is fed only once its first call has come
    back, and then kept two tasks ahead; a job that ends before a worker is up never
    waits for it. Every task is computed exactly once, whoever computes it. With
    ``failed``, a task whose series fails is recorded there (by its position in ``todo``)
    instead of raising. A bar counts the windows done (:func:`lss.progress.bar`; none
    for no task).
    """
    progress = progress if todo else False
    if workers == 1:
        return [_attempt(t, i, failed)
                for i, t in enumerate(bar(todo, desc="prepare", unit="window",
                                          enabled=progress))]
    queue = collections.deque(range(len(todo)))
    decoded = [0] * len(todo)
    running: dict[Future, int] = {}
    ctx = multiprocessing.get_context("spawn")  # safe after TF/JAX have started threads
    pool = ProcessPoolExecutor(workers - 1, mp_context=ctx)
    done = bar(total=len(todo), desc="prepare", unit="window", enabled=progress)
    try:
        starting = [pool.submit(_ready) for _ in range(workers - 1)]
        while queue or running:
            for f in [f for f in running if f.done()]:
                i = running.pop(f)
                decoded[i] = _collect(f, i, failed)
                done.update()
            started = sum(f.done() for f in starting)
            while queue and len(running) < 2 * started:
                i = queue.pop()  # workers take from the end, this process from the front
                running[pool.submit(_compute, todo[i])] = i
            if queue:
                i = queue.popleft()
                decoded[i] = _attempt(todo[i], i, failed)
                done.update()
            elif running:
                wait(running, return_when=FIRST_COMPLETED)
    except BrokenProcessPool as exc:
        raise WorkerDied(
            "A preprocessing worker process died (killed, or out of memory?); the entries "
            "already written are kept: run again, or with fewer workers"
        ) from exc
    finally:
        done.close()
        # Tasks not yet started are dropped; a worker still starting up is not waited for.
        pool.shutdown(wait=False, cancel_futures=True)
    return decoded


def _instance(value, where: str) -> int | None:
    """An index row's ``instance_number``: None when missing (the middle slice), else an
    integer -- a fractional one is refused rather than rounded to another slice."""
    if pd.isna(value):
        return None
    number = float(value)
    if not number.is_integer():
        raise DataError(f"{where}: instance_number {value} is not an integer")
    return int(number)


#: Series a spawned worker must have ahead of it to be worth starting. One series costs
#: about 10 ms here and a worker about 0.5 s to start (spawn, import numpy and pydicom), so
#: a worker that is not given about a second of work adds more than it saves
#: (``benchmarks/run_benchmarks.py`` measures both).
SERIES_PER_EXTRA_WORKER = 100


def default_workers(n_tasks: int, cpus: int | None = None) -> int:
    """Processes :meth:`TensorCache.prepare` uses for ``n_tasks`` series by default.

    All cores for a large job, one more process per :data:`SERIES_PER_EXTRA_WORKER`
    series for a small one, and this process alone for fewer than that.

    Examples
    --------
    >>> default_workers(64, cpus=2), default_workers(200, cpus=2), default_workers(2000, cpus=16)
    (1, 2, 16)
    """
    cpus = cpus or os.cpu_count() or 1
    return max(1, min(cpus, 1 + n_tasks // SERIES_PER_EXTRA_WORKER))


#: A temporary entry older than this was left by a process that died; younger ones may
#: belong to a run in progress (another process filling the same cache).
STALE_TMP_SECONDS = 3600


def _remove_stale_temporaries(folder: Path) -> int:
    """Delete ``.*.tmp`` files a killed writer left behind (never read either way)."""
    now, removed = time.time(), 0
    for tmp in folder.glob(".*.tmp"):
        try:
            if now - tmp.stat().st_mtime > STALE_TMP_SECONDS:
                tmp.unlink()
                removed += 1
        except FileNotFoundError:
            pass  # its writer renamed or removed it meanwhile
    return removed


class TensorCache:
    """Preprocessed windows for the rows of an index, on disk.

    Parameters
    ----------
    root : str or Path
        The data root the index refers to.
    config : PreprocessConfig
    cache_dir : str or Path, optional
        Defaults to :func:`default_cache_dir`.
    split : {"train", "test"}
        Which image folder (``train_images`` or ``test_images``) the rows live in.

    Examples
    --------
    >>> cache = TensorCache("data/phantom", PreprocessConfig())  # doctest: +SKIP
    >>> stats = cache.prepare(index)                             # doctest: +SKIP
    >>> x = cache.load(index)            # (N, 8, 128, 128) float32   # doctest: +SKIP
    """

    def __init__(self, root: str | Path, config: PreprocessConfig, *,
                 cache_dir: str | Path | None = None, split: str = "train") -> None:
        self.root = Path(root)
        self.config = config
        self.split = split
        root_id = str(self.root.resolve())
        key = hashlib.sha256(f"{config.key()}|{root_id}|{split}".encode()).hexdigest()[:16]
        self.dir = Path(cache_dir or default_cache_dir()) / key
        self._settings = {"preprocess": dataclasses.asdict(config), "root": root_id, "split": split}

    def _requests(self, index: pd.DataFrame, centres: np.ndarray | None,
                  failed: dict[int, str] | None = None) -> list[tuple | None]:
        """(folder, instance, centre, entry path) per row; with ``failed``, a row whose
        instance or coordinate is bad is recorded there (by row) and is None."""
        need = {"study_id", "series_id", "instance_number"}
        if not need <= set(index.columns):
            raise ValueError(f"index lacks column(s) {sorted(need - set(index.columns))}")
        if centres is None:
            if {"x", "y"} <= set(index.columns):
                centres = index[["x", "y"]].to_numpy(dtype=float)
            else:
                centres = np.full((len(index), 2), np.nan)
        centres = np.asarray(centres, dtype=float)
        if centres.shape != (len(index), 2):
            raise ValueError(f"centres must have shape ({len(index)}, 2), got {centres.shape}")
        out = []
        for (study, series, inst), c in zip(
            index[["study_id", "series_id", "instance_number"]].itertuples(index=False),
            centres, strict=True,
        ):
            where = f"Study {int(study)}, series {int(series)}"
            try:
                instance = _instance(inst, where)
                centre = coordinate(c, where)
            except DataError as exc:
                if failed is None:
                    raise
                failed[len(out)] = str(exc)
                out.append(None)
                continue
            name = f"{int(study)}_{int(series)}_{'mid' if instance is None else instance}"
            if self.config.crop_mm is not None and centre is not None:
                name += f"_{centre[0]:.1f}_{centre[1]:.1f}"
            folder = series_dir(self.root, study, series, split=self.split)
            out.append((folder, instance, centre, self.dir / f"{name}.npz"))
        return out

    def paths(self, index: pd.DataFrame, centres: np.ndarray | None = None) -> list[Path]:
        """Entry paths for the rows of ``index``, in order (they may not exist yet)."""
        return [r[3] for r in self._requests(index, centres)]  # type: ignore[index]

    @staticmethod
    def read(path: str | Path) -> np.ndarray:
        """One entry's window, (n_slices, size, size) float32 (no pickle).

        Raises :class:`DataError` naming the entry if it is not a plain array (an object
        array is refused, never unpickled) or cannot be read.
        """
        try:
            with np.load(path, allow_pickle=False) as z:
                return z["volume"]
        except (OSError, ValueError, KeyError, MemoryError, zipfile.BadZipFile) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise DataError(f"Unreadable cache entry {path} ({exc}); delete it and run "
                            f"again") from exc

    def _hit(self, path: Path, fingerprint: str) -> tuple[int, ...] | None:
        """The source image size recorded by a valid entry (``()`` if it recorded none),
        or None to compute it. One small read at the end of the entry: its zip comment.
        Nothing in the entry is parsed, unpickled or evaluated here."""
        try:
            shape = _stored_shape(path, fingerprint)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cache entry %s is unreadable (%s): recomputing", path, exc)
            return None
        if shape is None:
            log.info("cache entry %s is stale or incomplete: recomputing", path.name)
        return shape

    def _triage(self, requests: list[tuple | None], failed: dict[int, str] | None
                ) -> tuple[list[tuple], list[int], int]:
        """Check every row, then sort them into hits and tasks to compute.

        The checks do not depend on what the cache holds, so a warm cache refuses what a
        cold one does: a coordinate must be finite (:meth:`_requests`) and inside the
        image, whose size a hit recorded in its entry and a miss reads from its series'
        first header. An instance number needs no check here: an entry is named after it,
        made only once :func:`~lss.data.level_window` found it in the series, and any
        change to the folder since then invalidates the entry.

        Returns the tasks, the row of each task, and the number of hits. With ``failed``,
        a row that fails its checks is recorded there (by row) instead of raising.
        """
        todo, rows, hits = [], [], 0
        for row, request in enumerate(requests):
            if request is None:
                continue
            folder, instance, centre, path = request
            try:
                fp = _fingerprint(folder)
                shape = self._hit(path, fp)
                if centre is not None:
                    known = shape or _first_shape(folder)
                    if known:
                        check_inside(centre, known, folder)
            except DataError as exc:
                if failed is None:
                    raise
                failed[row] = str(exc)
                continue
            if shape is None:
                todo.append((folder, instance, centre, self.config, path, fp))
                rows.append(row)
            else:
                hits += 1
        return todo, rows, hits

    def prepare(self, index: pd.DataFrame, *, centres: np.ndarray | None = None,
                workers: int | None = None, on_error: str = "raise",
                progress: bool | None = None) -> CacheStats:
        """Compute every missing or stale window of ``index``, in parallel.

        Parameters
        ----------
        index : DataFrame
            Rows with ``study_id``, ``series_id``, ``instance_number`` (and ``x``, ``y``).
        centres : (N, 2) array, optional
            Crop centres in source pixels, overriding ``index[["x", "y"]]`` (e.g. the
            localiser's predictions at test time).
        workers : int, optional
            Processes; ``1`` computes in this process. Default
            :func:`default_workers`: all cores, fewer for a job too small to repay
            starting them.
        on_error : {"raise", "report"}
            ``"raise"``: the first failing row ends the call. ``"report"``: every failing
            row is left out and listed in the returned ``CacheStats.failed`` with its
            reason (a long run on real data then does not die at its 1,437th study).
        progress : bool, optional
            A bar over the windows computed (none for a warm cache): None where
            :func:`lss.progress.shows` says (a terminal, a notebook), True always,
            False never.

        Raises
        ------
        DataError
            For a row with a non-finite coordinate or one outside the image (checked for
            every row before anything is computed, whether its entry exists or not), and
            from a failing series (the first one met), naming its file or folder.
        """
        t0 = time.perf_counter()
        self.dir.mkdir(parents=True, exist_ok=True)
        settings = self.dir / "settings.json"  # for people browsing the cache
        text = json.dumps(self._settings, indent=2)
        if not settings.is_file() or settings.read_text() != text:
            settings.write_text(text)  # a hit writes nothing
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        failed: dict[int, str] | None = {} if on_error == "report" else None
        todo, rows, hits = self._triage(self._requests(index, centres, failed), failed)
        stats = CacheStats(entries=len(index), hits=hits)
        if todo:
            _remove_stale_temporaries(self.dir)  # a writer's leftovers; never read anyway
        workers = (default_workers(len(todo)) if workers is None
                   else max(1, min(workers, len(todo))))
        task_failed: dict[int, str] = {}
        decoded = _run(todo, workers, None if failed is None else task_failed,
                       progress=progress)
        if failed is not None:
            failed.update({rows[i]: reason for i, reason in task_failed.items()})
            stats.failed = [{"row": r, "study_id": int(index["study_id"].iloc[r]),
                             "series_id": int(index["series_id"].iloc[r]), "reason": why}
                            for r, why in sorted(failed.items())]
        stats.written = len(todo) - len(task_failed)
        stats.slices_decoded = int(sum(decoded))
        stats.seconds = time.perf_counter() - t0
        return stats

    def load(self, index: pd.DataFrame, *, centres: np.ndarray | None = None,
             workers: int | None = None) -> np.ndarray:
        """Prepare (if needed) and return all windows of ``index`` stacked.

        Returns
        -------
        (N, n_slices, image_size, image_size) float32 ndarray, in the order of ``index``.
        """
        self.prepare(index, centres=centres, workers=workers)
        c = self.config
        out = np.empty((len(index), c.n_slices, c.image_size, c.image_size), dtype=np.float32)
        for i, p in enumerate(self.paths(index, centres)):
            out[i] = self.read(p)
        return out
