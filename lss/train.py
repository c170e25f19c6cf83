"""Training the CNN-LSTM: the split by study, the class weights and the training run.

:func:`train` writes a run folder (its layout: :mod:`lss.run`). The input pipeline reads
preprocessed windows from the :class:`~lss.data.TensorCache` through
:class:`~lss.data.loader.WindowDataset`; no DICOM is decoded inside the epoch loop.
:func:`train_on_device` is the book's full training run, set up for the machine.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from lss.callbacks import (
    HOLD_ENV,
    Backup,
    EpochLine,
    EpochTimer,
    Hold,
    ResumableEarlyStopping,
    backup_epoch,
    restore_backup,
)
from lss.config import RSNA_SAMPLE_WEIGHTS, Config
from lss.data import TensorCache, build_index, split_rows
from lss.data.loader import WindowDataset
from lss.device import (
    describe_accelerator,
    distribution,
    loader_settings,
    precision_policy,
    resolve_epochs,
)
from lss.errors import DataError
from lss.model import build_from_config
from lss.run import RunDir, data_source

__all__ = [
    "split_by_study",
    "class_weights",
    "TrainResult",
    "train",
    "train_on_device",
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


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    run_dir: Path
    model: object
    history: pd.DataFrame
    split: pd.DataFrame
    seconds: float


@dataclass
class _Inputs:
    """The datasets of a run and what the manifest records about them."""

    train_paths: np.ndarray
    train_labels: np.ndarray
    train_mirror: np.ndarray | None
    val_ds: WindowDataset
    weights: np.ndarray | None
    manifest: dict[str, Any]


def _seed_everything(seed: int) -> None:
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


_LOADER_KEYS = ("workers", "use_multiprocessing", "max_queue_size")


def _check_loader(loader: Mapping[str, Any] | None) -> dict[str, Any]:
    loader = dict(loader or {})
    unknown = sorted(set(loader) - set(_LOADER_KEYS))
    if unknown:
        raise ValueError(f"Unknown loader setting(s) {unknown}; expected some of "
                         f"{list(_LOADER_KEYS)}")
    return loader


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


def _open_run(run: RunDir, *, resume: bool, overwrite: bool) -> None:
    """Refuse what would lose a run, then create the folder.

    A finished run is never resumed; an existing, non-empty folder is reused only to
    resume, and deleted first only with ``overwrite``.
    """
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other")
    if resume and backup_epoch(run.backup) == 0 and run.is_finished():
        raise FileExistsError(f"Run folder {run.path} holds a finished run; nothing to resume "
                              f"(train again with overwrite, or into another folder)")
    if overwrite and run.path.exists():
        shutil.rmtree(run.path)
    if run.path.exists() and any(run.path.iterdir()) and not resume:
        raise FileExistsError(f"Run folder {run.path} already exists and is not empty; "
                              f"choose another, delete it, or pass resume=True")
    run.path.mkdir(parents=True, exist_ok=True)


def _check_resumable(run: RunDir, config: Config) -> None:
    """Refuse to resume with other settings than the run's: only the epoch budget may
    change (the saved weights would load into a model of another size, or train on
    windows of another shape, without a word)."""
    if not run.config_file.is_file():
        return
    old = run.read_config()
    asked = dataclasses.replace(config, train=dataclasses.replace(config.train,
                                                                  epochs=old.train.epochs))
    if asked == old:
        return
    a, b = old.to_dict(), asked.to_dict()
    changed = [f"{part}.{k}: {a[part][k]!r} -> {b[part][k]!r}"
               for part in ("preprocess", "train", "localiser") for k in a[part]
               if a[part][k] != b[part][k]]
    changed += [f"{k}: {a[k]!r} -> {b[k]!r}" for k in ("condition", "level") if a[k] != b[k]]
    raise DataError(f"Cannot resume {run.path} with other settings ({'; '.join(changed)}); "
                    f"only the number of epochs may change")


def _split(run: RunDir, index: pd.DataFrame, config: Config, *, resume: bool,
           study_split: pd.DataFrame | None = None) -> pd.DataFrame:
    """The split by study (``study_split``'s where given, one row per study shared by
    several runs), checked against the folder's on a resume, and saved."""
    tc = config.train
    if study_split is not None:
        split = split_rows(index[["study_id", "label"]], study_split)[
            ["study_id", "label", "split"]]
    else:
        split = split_by_study(index, validation_fraction=tc.validation_fraction,
                               seed=tc.seed)
    if resume and run.splits.is_file():
        old = run.read_split()
        if not old[["study_id", "split"]].equals(split[["study_id", "split"]]):
            raise DataError(f"Cannot resume {run.path}: the data or the split changed")
    run.write_split(split)
    run.write_config(config)
    return split


def _inputs(root: str | Path, config: Config, index: pd.DataFrame, split: pd.DataFrame, *,
            cache_dir, workers, val_centres, loader: dict[str, Any],
            on_error: str = "raise") -> _Inputs:
    """Fill the cache for every row; the validation dataset and the training samples.

    With ``on_error="report"`` a row whose series fails is left out of both datasets and
    listed, with its reason, in the returned manifest entries (``failed``).
    """
    tc = config.train
    cache = TensorCache(root, config.preprocess, cache_dir=cache_dir)
    centres = _with_val_centres(index, split, val_centres)
    stats = cache.prepare(index, centres=centres, workers=workers, on_error=on_error)
    ok = np.ones(len(index), dtype=bool)
    ok[[f["row"] for f in stats.failed]] = False
    paths = np.full(len(index), None, dtype=object)
    paths[ok] = cache.paths(index[ok], None if centres is None else centres[ok])
    is_train = (split["split"] == "train").to_numpy() & ok
    is_val = (split["split"] == "val").to_numpy() & ok
    y = index["label"].to_numpy()
    mirror = index["mirror"].to_numpy(bool) if "mirror" in index else None
    weights = class_weights(y[is_train], tc.class_weight)
    val_ds = WindowDataset(paths[is_val], y[is_val], batch_size=tc.batch_size,
                           mirror=None if mirror is None else mirror[is_val], **loader)
    manifest = {
        "n_train": int(is_train.sum()),
        "n_val": int(is_val.sum()),
        "class_counts": {
            "train": np.bincount(y[is_train], minlength=3).tolist(),
            "val": np.bincount(y[is_val], minlength=3).tolist(),
        },
        "excluded": index.attrs.get("excluded", []),
        "cache": {"dir": str(cache.dir), "hits": stats.hits, "computed": stats.written},
    }
    if stats.failed:
        manifest["failed"] = [{k: f[k] for k in ("study_id", "series_id", "reason")}
                              for f in stats.failed]
    return _Inputs(paths[is_train], y[is_train],
                   None if mirror is None else mirror[is_train], val_ds, weights, manifest)


def _build_model(config: Config, policy: str) -> keras.Model:
    """The model under ``policy``; Keras' global policy is restored afterwards."""
    _seed_everything(config.train.seed)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        return build_from_config(config)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _history_so_far(run: RunDir, *, resume: bool) -> tuple[int, pd.DataFrame]:
    """The epoch to start at and the history before it; history.csv is cut to match."""
    start_epoch = backup_epoch(run.backup) if resume else 0
    past = run.read_history() if resume and start_epoch else pd.DataFrame()
    past = past[past["epoch"] < start_epoch] if len(past) else past
    if len(past):
        past.to_csv(run.history, index=False)
    else:  # nothing to keep: CSVLogger writes a new file, header first
        run.history.unlink(missing_ok=True)
    return start_epoch, past


def _callbacks(run: RunDir, config: Config, past: pd.DataFrame, start_epoch: int,
               extra: Sequence[object], *, verbose: int = 0) -> list:
    """Timer, history, best model, early stopping and backup, in the order that is safe.

    The history row and the best model are written before the backup, so an
    interruption between them repeats an epoch rather than losing one. ``verbose=2``
    adds :class:`~lss.callbacks.EpochLine` (one wrapped line per epoch).
    """
    checkpoint = keras.callbacks.ModelCheckpoint(str(run.model), monitor="val_loss",
                                                 save_best_only=True)
    if len(past):  # a resumed run keeps the best model of the epochs before it
        checkpoint.best = float(past["val_loss"].min())
    hold = [Hold(os.environ[HOLD_ENV], run.path / "HELD")] if os.environ.get(HOLD_ENV) else []
    return [
        EpochTimer(),
        *([EpochLine()] if verbose == 2 else []),
        keras.callbacks.CSVLogger(str(run.history), append=True),
        checkpoint,
        ResumableEarlyStopping(config.train.early_stopping_patience, past, start_epoch),
        Backup(run.backup, start_epoch),
        *extra,
        *hold,
    ]


def _finish(run: RunDir, model: keras.Model, *, seconds: float, start_epoch: int,
            resume: bool) -> pd.DataFrame:
    """Drop the backup, load the best model, write history.json and the manifest."""
    shutil.rmtree(run.backup, ignore_errors=True)
    # The result is the best-validation model on disk, whether or not the run was resumed.
    if run.model.is_file():
        model.load_weights(str(run.model))
    history = run.read_history()
    run.history_json.write_text(history.to_json(orient="records", indent=2))
    run.write_manifest({"status": "trained", "train_seconds": round(seconds, 1),
                        "epochs_run": int(len(history)),
                        "resumed_at_epoch": start_epoch if resume else None})
    return history


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
    on_error: str = "raise",
    study_split: pd.DataFrame | None = None,
) -> TrainResult:
    """Train the paper's CNN-LSTM on one target and write a run folder.

    Parameters
    ----------
    root : str or Path
        Data root (the Kaggle layout; the phantom by default in the book).
    config : Config, optional
        Target, preprocessing and training settings (defaults: the paper).
    run_dir : str or Path
        Where the model, history, split and manifest go (layout: :class:`lss.run.RunDir`).
        An existing run folder is refused unless ``resume`` or ``overwrite`` (so that a
        finished run is never replaced by accident).
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
        2 prints one line per epoch (:func:`lss.callbacks.epoch_line`, wrapped at the
        page width), 1 Keras' progress bar, 0 nothing.
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
        The model's dtype policy (see :func:`lss.device.precision_policy`):
        ``False`` (default) float32; ``None`` mixed precision where the device has it
        (GPU: ``mixed_float16``, TPU and a CPU with native bfloat16:
        ``mixed_bfloat16``, other CPUs: float32); ``True`` mixed precision, refused on
        a CPU without native bfloat16. Set only while the model is built; the
        global Keras policy is restored afterwards. Recorded in the manifest.
    loader : dict, optional
        ``workers``, ``use_multiprocessing`` and ``max_queue_size`` of the training and
        validation :class:`~lss.data.loader.WindowDataset`: with ``workers`` above 1,
        that many threads read batches from the cache ahead of the model, in the epoch's
        order, so the run is the same as without. See :func:`lss.device.loader_settings`.
        Default: read in the loop.
    on_error : {"raise", "report"}
        ``"report"``: a study whose series fails to read is left out of training and
        validation, and listed with its reason in the manifest (``failed``) and in
        ``errors.csv``; ``"raise"`` (default): the first such study ends the run.
    study_split : DataFrame, optional
        ``study_id`` and ``split`` ("train"/"val"), one row per study: the split to use
        instead of :func:`split_by_study`'s, so that the models of one whole-study run
        share it. ``index`` may then hold several rows per study (one per target); a
        ``mirror`` column flips those rows' windows left-right as they are read.

    Returns
    -------
    TrainResult
    """
    config = config or Config()
    run = RunDir(run_dir)
    loader = _check_loader(loader)
    kind = "CPU" if mixed_precision is False else describe_accelerator()["kind"]
    policy = precision_policy(kind, mixed_precision)
    dist = distribution(config.train.batch_size)  # every device Keras sees (lss.device)
    _open_run(run, resume=resume, overwrite=overwrite)
    t0 = time.perf_counter()

    if resume:
        _check_resumable(run, config)
    if index is None:
        index = build_index(root, config.condition, config.level)
    split = _split(run, index, config, resume=resume, study_split=study_split)
    inputs = _inputs(root, config, index, split, cache_dir=cache_dir, workers=workers,
                     val_centres=val_centres, loader=loader, on_error=on_error)
    run.write_errors(inputs.manifest.get("failed", []))
    run.write_manifest({"kind": "train", "data": data_source(root), "config": config.to_dict(),
                        "seed": config.train.seed, **inputs.manifest, "precision": policy,
                        "loader": loader, "devices": dist.record(), "status": "running"})

    with dist.scope():  # the variables are copied to each device
        model = _build_model(config, policy)
    start_epoch, past = _history_so_far(run, resume=resume)
    train_ds = WindowDataset(inputs.train_paths, inputs.train_labels,
                             batch_size=config.train.batch_size, shuffle=True,
                             seed=config.train.seed, weights=inputs.weights, epoch=start_epoch,
                             mirror=inputs.train_mirror, **loader)
    cbs = _callbacks(run, config, past, start_epoch, callbacks, verbose=verbose)
    if start_epoch:
        restore_backup(model, run.backup, start_epoch)
    # shuffle=False: WindowDataset shuffles itself from (seed, epoch); Keras' own batch
    # shuffle draws from the global NumPy state, which a resumed process does not share.
    with dist.scope():  # each batch is split among the devices
        model.fit(dist.batches(train_ds), validation_data=dist.batches(inputs.val_ds),
                  epochs=config.train.epochs, initial_epoch=start_epoch, shuffle=False,
                  callbacks=cbs, verbose=0 if verbose == 2 else verbose)
    seconds = time.perf_counter() - t0
    history = _finish(run, model, seconds=seconds, start_epoch=start_epoch, resume=resume)
    return TrainResult(run.path, model, history, split, seconds)


def train_on_device(
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
    """The book's full training run: :func:`train` set up for this machine.

    The paper's settings (``config``, default :class:`lss.config.Config`) with
    ``epochs`` from :func:`lss.device.resolve_epochs`, the seed, mixed precision where
    the device has it (:func:`lss.device.use_mixed_precision`) and the loader of
    :func:`lss.device.loader_settings`. Chapter 4 makes this run; chapter 5 repeats
    this exact call when it is opened without chapter 4's run folder.

    Parameters
    ----------
    root : str or Path
        The data root.
    run_dir : str or Path
        The run folder (see :func:`train`).
    epochs : int or None
        ``None``: 20 on a GPU or TPU, ``cpu_epochs`` on a CPU.
    seed : int
        ``TrainConfig.seed``: the split, the initial weights and the augmentation.
    mixed_precision : bool or None
        As ``enabled`` in :func:`lss.device.precision_policy`.
    overwrite, verbose, cache_dir
        As in :func:`train`.
    """
    accelerator = describe_accelerator()
    n = resolve_epochs(epochs, accelerator, cpu_epochs=cpu_epochs)
    config = (config or Config()).replace(epochs=n, seed=int(seed))
    return train(root, config, run_dir, cache_dir=cache_dir, overwrite=overwrite,
                 verbose=verbose, mixed_precision=mixed_precision,
                 loader=loader_settings(accelerator))
