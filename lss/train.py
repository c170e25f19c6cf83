"""Training the CNN-LSTM: the split, the input pipeline and the run folder.

A run folder holds everything needed to evaluate, resume or repeat a run::

    run_dir/
      manifest.json   data root (and whether it is the phantom), settings, seed, versions,
                      git commit, class counts, metrics once evaluated
      config.json     the Config, loadable with Config.from_file
      splits.csv      study_id, label, split ("train" / "val")
      best.keras      weights of the best validation loss (ModelCheckpoint)
      history.csv     one row per epoch (CSVLogger), with its wall time in epoch_seconds;
                      history.json at the end
      backup/         state at the last finished epoch while a run is in progress (--resume)

The input pipeline reads preprocessed windows from the :class:`~lss.data.TensorCache`;
no DICOM is decoded inside the epoch loop.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lss.accelerate import ReadAheadDataset, describe_accelerator, precision_policy
from lss.config import RSNA_SAMPLE_WEIGHTS, SEVERITIES, Config
from lss.data import TensorCache, build_index
from lss.data.tables import DataError
from lss.runinfo import data_source, read_manifest, write_manifest

__all__ = [
    "split_by_study",
    "class_weights",
    "WindowDataset",
    "TrainResult",
    "train",
    "load_split",
]


def split_by_study(
    index: pd.DataFrame,
    *,
    validation_fraction: float = 0.2,
    seed: int = 42,
) -> pd.DataFrame:
    """Assign whole studies to ``train`` or ``val``, stratified by label.

    Every study goes to one side only (the model never sees a validation study's
    slices in training). Within each class, ``round(validation_fraction * n_class)``
    studies go to validation, so each class's validation count is within one study of
    its exact share. Studies with several rows take their most frequent label for the
    stratification.

    Parameters
    ----------
    index : DataFrame
        With ``study_id`` and ``label``.

    Returns
    -------
    DataFrame
        ``study_id``, ``label``, ``split`` -- one row per row of ``index``, same order.

    Examples
    --------
    >>> df = pd.DataFrame({"study_id": range(10), "label": [0] * 5 + [1] * 5})
    >>> split_by_study(df, seed=0)["split"].value_counts().to_dict()
    {'train': 8, 'val': 2}
    """
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    if index["label"].isna().any():
        bad = index.loc[index["label"].isna(), "study_id"].tolist()
        raise DataError(f"Cannot split studies with missing labels: {bad}")
    per_study = index.groupby("study_id")["label"].agg(lambda s: s.mode().iloc[0])
    rng = np.random.default_rng(seed)
    val: set[int] = set()
    for label in sorted(per_study.unique()):
        studies = np.sort(per_study.index[per_study == label].to_numpy())
        rng.shuffle(studies)
        val.update(studies[: int(round(validation_fraction * len(studies)))].tolist())
    split = np.where(index["study_id"].isin(val), "val", "train")
    return pd.DataFrame({"study_id": index["study_id"].to_numpy(),
                         "label": index["label"].to_numpy(), "split": split})


def class_weights(labels: Sequence[int], scheme: str | None, n_classes: int = 3
                  ) -> np.ndarray | None:
    """Per-class loss weights: None, ``"balanced"`` (n / (k * count)) or ``"rsna"`` (1/2/4).

    >>> [round(float(w), 3) for w in class_weights([0, 0, 0, 1], "balanced")]
    [0.667, 2.0, 0.0]
    """
    if scheme is None:
        return None
    if scheme == "rsna":
        return np.asarray(RSNA_SAMPLE_WEIGHTS, dtype=np.float32)
    if scheme == "balanced":
        counts = np.bincount(np.asarray(labels, dtype=int), minlength=n_classes)
        w = np.zeros(n_classes, dtype=np.float32)
        nz = counts > 0
        w[nz] = len(labels) / (np.count_nonzero(nz) * counts[nz])
        return w
    raise ValueError(f"class weight scheme must be None, 'balanced' or 'rsna', got {scheme!r}")


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
    **kwargs
        ``workers`` (reader threads) and ``max_queue_size`` (see
        :class:`lss.accelerate.ReadAheadDataset` and
        :func:`lss.accelerate.loader_settings`).
    """

    def __init__(self, paths: Sequence[Path], labels: Sequence[int] | None = None, *,
                 batch_size: int = 8, shuffle: bool = False, seed: int = 0,
                 weights: np.ndarray | None = None, epoch: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.paths = [Path(p) for p in paths]
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        if self.labels is not None and len(self.labels) != len(self.paths):
            raise ValueError(f"{len(self.paths)} paths but {len(self.labels)} labels")
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


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    run_dir: Path
    model: object
    history: pd.DataFrame
    split: pd.DataFrame
    seconds: float


def _seed_everything(seed: int) -> None:
    import keras

    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def _seed_states(model) -> list:
    """The random-number states of dropout and augmentation layers (not in save_weights)."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def _backup_class():
    import keras

    class Backup(keras.callbacks.Callback):
        """Everything a resumed run needs, written atomically at every epoch end.

        ``epoch-<k>.weights.h5`` holds the model and optimizer variables after epoch
        ``k - 1``; ``epoch-<k>.json`` (written last) the random-number states, so a
        backup counts only once both exist. Unlike Keras' BackupAndRestore this keeps
        the dropout and augmentation RNG, so a resumed run equals an uninterrupted one.
        """

        def __init__(self, folder: Path) -> None:
            super().__init__()
            self.folder = Path(folder)

        def on_epoch_end(self, epoch, logs=None):
            import keras

            self.folder.mkdir(parents=True, exist_ok=True)
            k = epoch + 1
            weights = self.folder / f"epoch-{k}.weights.h5"
            tmp = self.folder / f".epoch-{k}.tmp.weights.h5"
            self.model.save_weights(str(tmp))
            os.replace(tmp, weights)
            rng = [keras.ops.convert_to_numpy(v).tolist() for v in _seed_states(self.model)]
            meta = self.folder / f"epoch-{k}.json"
            tmp = self.folder / f".epoch-{k}.json.tmp"
            tmp.write_text(json.dumps({"epoch": k, "rng": rng}))
            os.replace(tmp, meta)
            for old in self.folder.glob("epoch-*"):
                if not old.name.startswith(f"epoch-{k}."):
                    old.unlink(missing_ok=True)

    return Backup


def _Backup(folder: Path):  # noqa: N802 -- builds the callback lazily (keras import)
    return _backup_class()(folder)


def _epoch_timer():
    """A callback adding ``epoch_seconds`` (wall time of the epoch, validation included)
    to the epoch's logs; listed before the CSVLogger, so history.csv records it."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["epoch_seconds"] = time.perf_counter() - self._t0

    return EpochTimer()


_LOADER_KEYS = ("workers", "use_multiprocessing", "max_queue_size")


def _check_loader(loader: Mapping[str, Any] | None) -> dict[str, Any]:
    loader = dict(loader or {})
    unknown = sorted(set(loader) - set(_LOADER_KEYS))
    if unknown:
        raise ValueError(f"Unknown loader setting(s) {unknown}; expected some of "
                         f"{list(_LOADER_KEYS)}")
    return loader


def _backup_epoch(run_dir: Path) -> int:
    """The epoch a resumed run starts at: the newest complete backup, else 0."""
    done = [int(p.stem.split("-")[1]) for p in (run_dir / "backup").glob("epoch-*.json")]
    done = [k for k in done if (run_dir / "backup" / f"epoch-{k}.weights.h5").is_file()]
    return max(done, default=0)


def _restore_backup(model, folder: Path, epoch: int) -> None:
    meta = json.loads((folder / f"epoch-{epoch}.json").read_text())
    model.optimizer.build(model.trainable_variables)
    model.load_weights(str(folder / f"epoch-{epoch}.weights.h5"))
    states = _seed_states(model)
    if len(states) != len(meta["rng"]):
        raise DataError(f"Backup {folder} does not match this model (RNG states differ)")
    for v, value in zip(states, meta["rng"], strict=True):
        v.assign(np.asarray(value, dtype=v.dtype))


def _read_history(path: Path) -> pd.DataFrame:
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame()
    h = pd.read_csv(path)
    return h.drop_duplicates("epoch", keep="last").reset_index(drop=True)


def _early_stopping(patience: int, past: pd.DataFrame, start_epoch: int):
    """EarlyStopping on val_loss that, on a resumed run, remembers the epochs before it."""
    import keras

    class _Resumable(keras.callbacks.EarlyStopping):
        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            if len(past):
                best_at = int(past["epoch"].iloc[int(past["val_loss"].to_numpy().argmin())])
                self.best = float(past["val_loss"].min())
                self.best_epoch = best_at
                self.wait = start_epoch - 1 - best_at

    return _Resumable(monitor="val_loss", patience=patience)


def _with_val_centres(index: pd.DataFrame, split: pd.DataFrame,
                      val_centres: np.ndarray | None) -> np.ndarray | None:
    """index's (x, y) with the validation rows' replaced by ``val_centres`` (or None)."""
    if val_centres is None:
        return None
    is_val = (split["split"] == "val").to_numpy()
    val_centres = np.asarray(val_centres, dtype=float)
    if val_centres.shape != (int(is_val.sum()), 2):
        raise ValueError(f"val_centres must have shape ({int(is_val.sum())}, 2), one (x, y) "
                         f"per validation row, got {val_centres.shape}")
    centres = np.full((len(index), 2), np.nan)
    if {"x", "y"} <= set(index.columns):
        centres[:] = index[["x", "y"]].to_numpy(dtype=float)
    centres[is_val] = val_centres
    return centres


def load_split(run_dir: str | Path) -> pd.DataFrame:
    """The ``splits.csv`` of a run."""
    path = Path(run_dir) / "splits.csv"
    if not path.is_file():
        raise DataError(f"No splits.csv in run folder {run_dir} (train first)")
    return pd.read_csv(path)


def train(
    root: str | Path,
    config: Config | None = None,
    run_dir: str | Path = "runs/cnn_lstm",
    *,
    cache_dir: str | Path | None = None,
    index: pd.DataFrame | None = None,
    workers: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    verbose: int = 2,
    callbacks: Sequence[object] = (),
    val_centres: np.ndarray | None = None,
    mixed_precision: bool | None = False,
    loader: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train the paper's CNN-LSTM on one target and write a run folder.

    Parameters
    ----------
    root : str or Path
        Data root (the Kaggle layout; the phantom by default in the book).
    config : Config, optional
        Target, preprocessing and training settings (defaults: the paper).
    run_dir : str or Path
        Where the model, history, split and manifest go. An existing run folder is
        refused unless ``resume`` or ``overwrite`` (so that a finished run is never
        replaced by accident).
    cache_dir : str or Path, optional
        Preprocessing cache (default :func:`lss.data.default_cache_dir`).
    index : DataFrame, optional
        Rows to use (default :func:`lss.data.build_index` for the config's target).
    workers : int, optional
        Processes for filling the cache.
    resume : bool
        Continue an interrupted run from the last epoch it finished (its ``backup/``:
        weights, optimizer and random-number states). An epoch cut short is run again
        from its start, with the same shuffle, so the result equals an uninterrupted
        run with the same seed (on CPU; see the book on GPU determinism).
    verbose : int
        Keras verbosity: 2 prints one line per epoch, 1 a progress bar.
    overwrite : bool
        Delete an existing run folder first (the chapters rerun from scratch).
    callbacks : sequence
        Extra Keras callbacks.
    val_centres : (n_val, 2) array, optional
        Crop centres (x, y in source pixels) for the validation rows, in the order they
        have in ``index`` (for a ``crop_mm`` run: a localiser's predictions, so that
        neither the reported validation scores nor the choice of the best epoch use
        the validation studies' coordinates). Training rows keep ``index``'s x, y.
    mixed_precision : bool or None
        The model's dtype policy (see :func:`lss.accelerate.precision_policy`):
        ``False`` (default) float32; ``None`` mixed precision where the device has it
        (GPU: ``mixed_float16``, TPU: ``mixed_bfloat16``, CPU: float32); ``True``
        mixed precision, refused on a CPU. Set only while the model is built; the
        global Keras policy is restored afterwards. Recorded in the manifest.
    loader : dict, optional
        ``workers``, ``use_multiprocessing`` and ``max_queue_size`` of the training and
        validation :class:`WindowDataset`: with ``workers`` above 1, that many threads
        read batches from the cache ahead of the model, in the epoch's order
        (:class:`lss.accelerate.ReadAheadDataset`), so the run is the same as without.
        See :func:`lss.accelerate.loader_settings`. Default: read in the loop.

    Returns
    -------
    TrainResult
    """
    import keras

    from lss.model import build_from_config

    config = config or Config()
    tc = config.train
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other")
    if resume and _backup_epoch(run_dir) == 0 and \
            read_manifest(run_dir).get("status") in ("trained", "evaluated"):
        raise FileExistsError(f"Run folder {run_dir} holds a finished run; nothing to resume "
                              f"(train again with overwrite, or into another folder)")
    loader = _check_loader(loader)
    kind = "CPU" if mixed_precision is False else describe_accelerator()["kind"]
    policy = precision_policy(kind, mixed_precision)
    if overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    if run_dir.exists() and any(run_dir.iterdir()) and not resume:
        raise FileExistsError(f"Run folder {run_dir} already exists and is not empty; "
                              f"choose another, delete it, or pass resume=True")
    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    if index is None:
        index = build_index(root, config.condition, config.level)
    split = split_by_study(index, validation_fraction=tc.validation_fraction, seed=tc.seed)
    if (run_dir / "splits.csv").is_file() and resume:
        old = load_split(run_dir)
        if not old[["study_id", "split"]].equals(split[["study_id", "split"]]):
            raise DataError(f"Cannot resume {run_dir}: the data or the split changed")
    split.to_csv(run_dir / "splits.csv", index=False)
    (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))

    cache = TensorCache(root, config.preprocess, cache_dir=cache_dir)
    centres = _with_val_centres(index, split, val_centres)
    stats = cache.prepare(index, centres=centres, workers=workers)
    paths = np.asarray(cache.paths(index, centres), dtype=object)
    is_train = (split["split"] == "train").to_numpy()
    y = index["label"].to_numpy()
    weights = class_weights(y[is_train], tc.class_weight)
    val_ds = WindowDataset(paths[~is_train], y[~is_train], batch_size=tc.batch_size,
                           **loader)

    write_manifest(run_dir, {
        "kind": "train",
        "data": data_source(root),
        "config": config.to_dict(),
        "seed": tc.seed,
        "n_train": int(is_train.sum()),
        "n_val": int((~is_train).sum()),
        "class_counts": {
            "train": np.bincount(y[is_train], minlength=3).tolist(),
            "val": np.bincount(y[~is_train], minlength=3).tolist(),
        },
        "excluded": index.attrs.get("excluded", []),
        "cache": {"dir": str(cache.dir), "hits": stats.hits, "computed": stats.written},
        "precision": policy,
        "loader": loader,
        "status": "running",
    })

    _seed_everything(tc.seed)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build_from_config(config)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    history_path = run_dir / "history.csv"
    start_epoch = _backup_epoch(run_dir) if resume else 0
    past = _read_history(history_path) if resume else pd.DataFrame()
    past = past[past["epoch"] < start_epoch] if len(past) else past
    past.to_csv(history_path, index=False) if resume else history_path.unlink(missing_ok=True)
    train_ds = WindowDataset(paths[is_train], y[is_train], batch_size=tc.batch_size,
                             shuffle=True, seed=tc.seed, weights=weights, epoch=start_epoch,
                             **loader)

    checkpoint = keras.callbacks.ModelCheckpoint(str(run_dir / "best.keras"),
                                                 monitor="val_loss", save_best_only=True)
    if len(past):  # a resumed run keeps the best model of the epochs before it
        checkpoint.best = float(past["val_loss"].min())
    cbs = [
        # Order matters: history row and best model are written before the backup, so
        # an interruption between them repeats an epoch rather than losing one.
        _epoch_timer(),
        keras.callbacks.CSVLogger(str(history_path), append=True),
        checkpoint,
        _early_stopping(tc.early_stopping_patience, past, start_epoch),
        _Backup(run_dir / "backup"),
        *callbacks,
    ]
    if start_epoch:
        _restore_backup(model, run_dir / "backup", start_epoch)
    # shuffle=False: WindowDataset shuffles itself from (seed, epoch); Keras' own batch
    # shuffle draws from the global NumPy state, which a resumed process does not share.
    model.fit(train_ds, validation_data=val_ds, epochs=tc.epochs, initial_epoch=start_epoch,
              shuffle=False, callbacks=cbs, verbose=verbose)
    shutil.rmtree(run_dir / "backup", ignore_errors=True)
    # The result is the best-validation model on disk, whether or not the run was resumed.
    if (run_dir / "best.keras").is_file():
        model.load_weights(str(run_dir / "best.keras"))
    history = _read_history(history_path)
    (run_dir / "history.json").write_text(history.to_json(orient="records", indent=2))
    seconds = time.perf_counter() - t0
    write_manifest(run_dir, {"status": "trained", "train_seconds": round(seconds, 1),
                             "epochs_run": int(len(history)), "resumed_at_epoch":
                             start_epoch if resume else None})
    return TrainResult(run_dir, model, history, split, seconds)

