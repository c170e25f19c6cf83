"""A disk cache of preprocessed level windows, so each DICOM is decoded once.

Layout: ``<cache_dir>/<settings key>/<study>_<series>_<instance>[_<centre>].npz``, where
the settings key hashes every :class:`~lss.config.PreprocessConfig` field and the data
root. Each entry also stores a fingerprint of its series folder (file names, sizes and
modification times): an entry whose series changed is recomputed, never read stale.
Entries are written to a temporary file and renamed into place, so a crash mid-write
leaves no entry that a later run would read. Entries hold plain arrays and are read
with ``allow_pickle=False``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import time
import uuid
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lss.config import PreprocessConfig
from lss.data.tables import DataError, series_dir
from lss.data.window import level_window

__all__ = ["TensorCache", "CacheStats", "default_cache_dir"]

log = logging.getLogger("lss")


def default_cache_dir() -> Path:
    """``$LSS_CACHE`` if set, else ``~/.cache/lss``."""
    return Path(os.environ.get("LSS_CACHE", Path.home() / ".cache" / "lss"))


@dataclass
class CacheStats:
    """What one :meth:`TensorCache.prepare` call did."""

    entries: int = 0
    hits: int = 0
    written: int = 0
    slices_decoded: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        return (f"{self.entries} windows: {self.hits} from cache, {self.written} computed "
                f"({self.slices_decoded} slices decoded) in {self.seconds:.1f} s")


def _fingerprint(folder: Path) -> str:
    try:
        entries = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns)
                         for e in os.scandir(folder) if not e.name.startswith("."))
    except FileNotFoundError as exc:
        raise DataError(f"Series folder not found: {folder}") from exc
    return hashlib.sha1(json.dumps(entries).encode()).hexdigest()


def _compute(task: tuple) -> int:
    """Worker: compute one window and write it atomically. Returns slices decoded."""
    folder, instance, centre, config, path, fingerprint = task
    w = level_window(folder, instance, config, centre_xy=centre)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, volume=w.volume, instance_numbers=w.instance_numbers,
                     fingerprint=np.array(fingerprint))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return len(np.unique(w.indices))


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

    def _requests(self, index: pd.DataFrame, centres: np.ndarray | None) -> list[tuple]:
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
            instance = None if pd.isna(inst) else int(inst)
            centre = tuple(map(float, c)) if np.all(np.isfinite(c)) else None
            name = f"{int(study)}_{int(series)}_{'mid' if instance is None else instance}"
            if self.config.crop_mm is not None and centre is not None:
                name += f"_{centre[0]:.1f}_{centre[1]:.1f}"
            folder = series_dir(self.root, study, series, split=self.split)
            out.append((folder, instance, centre, self.dir / f"{name}.npz"))
        return out

    def paths(self, index: pd.DataFrame, centres: np.ndarray | None = None) -> list[Path]:
        """Entry paths for the rows of ``index``, in order (they may not exist yet)."""
        return [r[3] for r in self._requests(index, centres)]

    @staticmethod
    def read(path: str | Path) -> np.ndarray:
        """One entry's window, (n_slices, size, size) float32 (no pickle)."""
        with np.load(path, allow_pickle=False) as z:
            return z["volume"]

    def _valid(self, path: Path, fingerprint: str) -> bool:
        if not path.is_file():
            return False
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["fingerprint"]) == fingerprint:
                    return True
            log.info("cache entry %s is stale (series changed): recomputing", path.name)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            log.warning("cache entry %s is unreadable (%s): recomputing", path, exc)
        return False

    def prepare(self, index: pd.DataFrame, *, centres: np.ndarray | None = None,
                workers: int | None = None) -> CacheStats:
        """Compute every missing or stale window of ``index``, in parallel.

        Parameters
        ----------
        index : DataFrame
            Rows with ``study_id``, ``series_id``, ``instance_number`` (and ``x``, ``y``).
        centres : (N, 2) array, optional
            Crop centres in source pixels, overriding ``index[["x", "y"]]`` (e.g. the
            localiser's predictions at test time).
        workers : int, optional
            Processes; default ``os.cpu_count()``. ``1`` computes in this process.

        Raises
        ------
        DataError
            From the first failing series, naming its file or folder.
        """
        t0 = time.perf_counter()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "settings.json").write_text(json.dumps(self._settings, indent=2))
        todo, stats = [], CacheStats(entries=len(index))
        for folder, instance, centre, path in self._requests(index, centres):
            fp = _fingerprint(folder)
            if self._valid(path, fp):
                stats.hits += 1
            else:
                todo.append((folder, instance, centre, self.config, path, fp))
        workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
        if todo and workers == 1:
            decoded = [_compute(t) for t in todo]
        elif todo:
            ctx = multiprocessing.get_context("spawn")  # safe after TF/JAX have started
            with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                decoded = list(pool.map(_compute, todo, chunksize=max(1, len(todo) // (8 *
                                                                                 workers))))
        else:
            decoded = []
        stats.written = len(todo)
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
