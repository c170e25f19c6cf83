"""Keras callbacks of a training run: backups for an exact resume, epoch timing, and
early stopping that remembers the epochs before a resume.

Plain classes (Keras is imported at the top, as everywhere else in the training code).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from lss.errors import DataError
from lss.text import wrap

__all__ = ["Backup", "EpochTimer", "EpochLine", "epoch_line", "ResumableEarlyStopping",
           "Hold", "seed_states", "torch_rng_state", "backup_epoch", "restore_backup",
           "HOLD_ENV"]

#: Environment variable of the test hook :class:`Hold`: ``"after-epoch-<k>"`` or
#: ``"in-epoch-<k>"`` (1-based).
HOLD_ENV = "LSS_HOLD"


def seed_states(model: keras.Model) -> list:
    """The random-number states of dropout and augmentation layers (not in save_weights)."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def torch_rng_state() -> dict[str, list] | None:
    """PyTorch's own generators under ``KERAS_BACKEND=torch``, else None.

    Under torch, Keras draws an unseeded ``Dropout`` (``seed=None``, as in
    :func:`lss.model.build_cnn_lstm`) from ``torch.nn.functional.dropout``, i.e. from
    torch's global generator, not from the layer's ``SeedGenerator`` variable (which
    TensorFlow and JAX use, and :func:`seed_states` saves). A resumed process reseeds
    that generator when it builds the model, so its dropout masks would start again
    from the seed: an exact resume needs this state too.

    Returns
    -------
    dict or None
        ``"cpu"``: the CPU generator's bytes; ``"cuda"``: one list per CUDA device, where
        CUDA is in use.
    """
    if keras.backend.backend() != "torch":
        return None
    import torch

    state = {"cpu": torch.get_rng_state().tolist()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def _set_torch_rng_state(state: dict[str, list]) -> None:
    import torch

    torch.set_rng_state(torch.tensor(state["cpu"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8)
                                      for s in state["cuda"]])


class Backup(keras.callbacks.Callback):
    """Everything a resumed run needs, written atomically at every epoch end.

    ``epoch-<k>.weights.h5`` holds the model and optimizer variables after epoch
    ``k - 1``; ``epoch-<k>.json`` (written last) the random-number states (the layers'
    :func:`seed_states` and, under PyTorch, :func:`torch_rng_state`), so a backup counts
    only once both exist. Unlike Keras' BackupAndRestore this keeps the dropout and
    augmentation RNG, so a resumed run equals an uninterrupted one.

    On a resumed run (``resume_epoch`` > 0) it also sets PyTorch's generators to the
    backup's when training begins: not earlier, because ``fit`` itself draws from them
    before its first epoch (each ``torch.utils.data.DataLoader`` iterator draws its base
    seed, and Keras builds one to read a first batch), as the uninterrupted run did
    before the epoch it saved. Under torch, a backup without that state (written under
    another backend) resumes with a warning: its dropout masks then differ.

    Parameters
    ----------
    folder : Path
        The run's ``backup/`` folder (:attr:`lss.run.RunDir.backup`).
    resume_epoch : int
        The backup the run resumed from (:func:`restore_backup`), 0 for a new run.
    """

    def __init__(self, folder: Path, resume_epoch: int = 0) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.resume_epoch = int(resume_epoch)

    def on_train_begin(self, logs=None):
        if not self.resume_epoch or keras.backend.backend() != "torch":
            return
        meta_path = self.folder / f"epoch-{self.resume_epoch}.json"
        meta = json.loads(meta_path.read_text())
        if "torch_rng" in meta:
            _set_torch_rng_state(meta["torch_rng"])
        else:
            warnings.warn(f"Backup {meta_path} holds no torch generator state (written "
                          f"under another backend); the resumed run's dropout will differ "
                          f"from an uninterrupted run's", stacklevel=2)

    def on_epoch_end(self, epoch, logs=None):
        self.folder.mkdir(parents=True, exist_ok=True)
        k = epoch + 1
        weights = self.folder / f"epoch-{k}.weights.h5"
        tmp = self.folder / f".epoch-{k}.tmp.weights.h5"
        self.model.save_weights(str(tmp))
        os.replace(tmp, weights)
        rng = [keras.ops.convert_to_numpy(v).tolist() for v in seed_states(self.model)]
        meta = self.folder / f"epoch-{k}.json"
        tmp = self.folder / f".epoch-{k}.json.tmp"
        state = {"epoch": k, "rng": rng}
        torch_state = torch_rng_state()
        if torch_state is not None:
            state["torch_rng"] = torch_state
        tmp.write_text(json.dumps(state))
        os.replace(tmp, meta)
        for old in self.folder.glob("epoch-*"):
            if not old.name.startswith(f"epoch-{k}."):
                old.unlink(missing_ok=True)


def backup_epoch(folder: Path) -> int:
    """The epoch a resumed run starts at: the newest complete backup in ``folder``, else 0."""
    done = [int(p.stem.split("-")[1]) for p in Path(folder).glob("epoch-*.json")]
    done = [k for k in done if (Path(folder) / f"epoch-{k}.weights.h5").is_file()]
    return max(done, default=0)


def restore_backup(model: keras.Model, folder: Path, epoch: int) -> None:
    """Load the weights, optimizer state and random-number states of backup ``epoch``.

    A damaged backup (cut short by a full disk, say) is a :class:`DataError` naming its
    file; the run can then be trained again from the start. PyTorch's own generators
    are set later, when training begins (``Backup(..., resume_epoch=epoch)``).
    """
    meta_path, weights = folder / f"epoch-{epoch}.json", folder / f"epoch-{epoch}.weights.h5"
    try:
        meta = json.loads(meta_path.read_text())
        model.optimizer.build(model.trainable_variables)
        model.load_weights(str(weights))
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"Backup {meta_path.parent} of epoch {epoch} is damaged ({exc}); "
                        f"delete {folder} to train again from the start") from exc
    states = seed_states(model)
    if len(states) != len(meta["rng"]):
        raise DataError(f"Backup {folder} does not match this model (RNG states differ)")
    for v, value in zip(states, meta["rng"], strict=True):
        v.assign(np.asarray(value, dtype=v.dtype))


class EpochTimer(keras.callbacks.Callback):
    """Adds ``epoch_seconds`` (wall time of the epoch, validation included) to the epoch's
    logs; listed before the CSVLogger, so history.csv records it."""

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._t0


def epoch_line(epoch: int, epochs: int, logs: dict) -> str:
    """One epoch's summary, wrapped at the page width: training, then validation.

    >>> print(epoch_line(2, 6, {"loss": 1.06771, "accuracy": 0.5, "val_loss": 1.0582,
    ...                         "val_accuracy": 0.5, "epoch_seconds": 9.48}))
    Epoch 3/6 (9.5 s) | loss 1.0677, accuracy 0.5000 | val_loss 1.0582, val_accuracy 0.5000
    """
    def part(names):
        return ", ".join(f"{k} {float(logs[k]):.4f}" for k in names)

    train = [k for k in logs if not k.startswith("val_") and k != "epoch_seconds"]
    val = [k for k in logs if k.startswith("val_")]
    head = f"Epoch {epoch + 1}/{epochs}"
    if "epoch_seconds" in logs:
        head += f" ({float(logs['epoch_seconds']):.1f} s)"
    return wrap(head, *(part(names) for names in (train, val) if names))


class EpochLine(keras.callbacks.Callback):
    """Prints :func:`epoch_line` after each epoch: Keras' one-line-per-epoch log
    (``verbose=2``) fits no page once a run has several metrics; listed after
    :class:`EpochTimer`, so the line gives the epoch's wall time."""

    def on_epoch_end(self, epoch, logs=None):
        print(epoch_line(epoch, self.params.get("epochs", epoch + 1), logs or {}),
              flush=True)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping on val_loss that, on a resumed run, remembers the epochs before it.

    Parameters
    ----------
    patience : int
    past : DataFrame
        The history of the epochs already run (empty for a new run).
    start_epoch : int
        The first epoch this process trains.
    """

    def __init__(self, patience: int, past: pd.DataFrame, start_epoch: int) -> None:
        super().__init__(monitor="val_loss", patience=patience)
        self.past = past
        self.start_epoch = start_epoch

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if len(self.past):
            losses = self.past["val_loss"].to_numpy()
            self.best = float(losses.min())
            self.best_epoch = int(self.past["epoch"].iloc[int(losses.argmin())])
            self.wait = self.start_epoch - 1 - self.best_epoch


class Hold(keras.callbacks.Callback):
    """A test hook: block the run at a known point until the process is interrupted.

    Tests of interruption and resume must not race the clock: instead of sending a
    signal after some time (by when a tiny run may have finished), they start
    ``lss train`` with ``LSS_HOLD=after-epoch-1`` (after that epoch's backup) or
    ``LSS_HOLD=in-epoch-1`` (after its first batch, before any backup), wait for the
    file ``<run>/HELD`` and then interrupt or kill the process, which cannot have moved on.

    Parameters
    ----------
    spec : str
        ``"after-epoch-<k>"`` or ``"in-epoch-<k>"`` (k counts from 1).
    marker : Path
        The file written once the run holds.
    """

    def __init__(self, spec: str, marker: Path) -> None:
        super().__init__()
        where, _, k = spec.rpartition("-")
        if where not in ("after-epoch", "in-epoch") or not k.isdigit() or int(k) < 1:
            raise ValueError(f"{HOLD_ENV} must be 'after-epoch-<k>' or 'in-epoch-<k>', "
                             f"got {spec!r}")
        self.where, self.epoch, self.marker = where, int(k) - 1, Path(marker)
        self._current = -1

    def _hold(self) -> None:
        self.marker.write_text("held\n")
        # Until a signal ends the process. Not signal.pause(): the signal may be delivered
        # to one of the backend's threads, and Python raises KeyboardInterrupt in the main
        # thread only when it next runs bytecode, which a short sleep gives it.
        while True:
            time.sleep(0.05)

    def on_epoch_begin(self, epoch, logs=None):
        self._current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.where == "in-epoch" and self._current == self.epoch and batch == 0:
            self._hold()

    def on_epoch_end(self, epoch, logs=None):
        if self.where == "after-epoch" and epoch == self.epoch:
            self._hold()

