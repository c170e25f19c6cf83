"""The run folder, the contract between training, evaluation, prediction and the chapters.

A run folder holds everything needed to evaluate, resume or repeat a run::

    run_dir/
      manifest.json    data root (and whether it is the phantom), settings, seed, versions,
                       git commit, class counts, metrics once evaluated
      config.json      the Config, loadable with Config.from_file (and lss train --config)
      splits.csv       study_id, label, split ("train" / "val")
      best.keras       weights of the best validation loss (ModelCheckpoint)
      history.csv      one row per epoch (CSVLogger), with its wall time in epoch_seconds;
                       history.json at the end
      backup/          state at the last finished epoch while a run is in progress (--resume)
      localiser.keras  the recess localiser of a region-of-interest run
      levels.keras     the level finder, for studies without coordinates (lss levels)
      metrics.json     the validation scores (lss evaluate), predictions.csv, figures

:class:`RunDir` is the only place that spells these names; every other module and
chapter asks it for a path or for the file's contents. The provenance helpers
(:func:`data_source`, :func:`data_label`, :func:`git_commit`) live here too: every
training, evaluation and experiment run writes a manifest, so that any number the book
or a user reports can be traced to its data (the synthetic phantom or the RSNA scans),
its settings, its seed and the code that produced it.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import lss
from lss.config import SEVERITIES, Config
from lss.errors import DataError
from lss.phantom.marker import read_marker

__all__ = ["RunDir", "data_source", "data_label", "git_commit", "check_history"]


def data_source(root: str | Path) -> dict[str, Any]:
    """Describe a data root: the phantom (with its marker) or real RSNA 2024 data.

    Returns
    -------
    dict
        ``root`` (absolute path), ``kind`` ("phantom" or "rsna") and ``label``, a phrase
        to print beside every number, e.g. ``"synthetic phantom (seed 0, 200 studies)"``
        or ``"the RSNA 2024 data (rsna-2024-lumbar-spine-degenerative-classification)"``
        (the folder's name, not its path: a printed label shows no machine's paths).
    """
    root = Path(root).resolve()
    marker = read_marker(root)
    if marker is not None:
        what = f"seed {marker.get('seed')}, {marker.get('n_studies')} studies"
        if marker.get("mode") == "from-tables":
            what += ", rendered from the real label tables"
        return {"root": str(root), "kind": "phantom", "phantom": marker,
                "label": f"synthetic phantom ({what})"}
    return {"root": str(root), "kind": "rsna", "phantom": None,
            "label": f"the RSNA 2024 data ({root.name})"}


def data_label(root: str | Path) -> str:
    """The phrase naming a data root's kind, e.g. ``"synthetic phantom (seed 0, ...)"``."""
    return data_source(root)["label"]


def git_commit(path: str | Path | None = None) -> str | None:
    """The git commit of the working tree holding ``lss`` (None outside a checkout)."""
    where = Path(path) if path else Path(lss.__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                             text=True, timeout=5, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=where, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _environment() -> dict[str, Any]:
    env: dict[str, Any] = {"lss_version": lss.__version__, "python": sys.version.split()[0],
                           "platform": platform.platform(), "cpu_count": os.cpu_count(),
                           "git_commit": git_commit()}
    if "keras" in sys.modules:
        import keras

        env["keras_version"] = keras.__version__
        env["keras_backend"] = keras.backend.backend()
    return env


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def check_history(history: pd.DataFrame, data_label: str) -> None:
    """Refuse a history without epochs or the columns a comparison reads, or a figure
    without the name of its data (``ValueError``)."""
    if not isinstance(data_label, str) or not data_label.strip():
        raise ValueError(f"data_label must name the data, got {data_label!r}")
    need = {"loss", "val_loss", "val_accuracy"}
    if not need <= set(history.columns) or history.empty:
        raise ValueError(f"history must have rows with {sorted(need)}, got columns "
                         f"{list(history.columns)}")


class RunDir:
    """One run folder: the paths of its files and the functions that read and write them.

    Parameters
    ----------
    path : str or Path
        The folder (it need not exist yet).

    Examples
    --------
    >>> run = RunDir("runs/cnn_lstm")
    >>> run.model.name, run.splits.name, run.localiser.name
    ('best.keras', 'splits.csv', 'localiser.keras')
    """

    MANIFEST = "manifest.json"
    CONFIG = "config.json"
    SPLITS = "splits.csv"
    MODEL = "best.keras"
    HISTORY = "history.csv"
    HISTORY_JSON = "history.json"
    BACKUP = "backup"
    LOCALISER = "localiser.keras"
    LEVEL_FINDER = "levels.keras"
    METRICS = "metrics.json"
    PREDICTIONS = "predictions.csv"
    ERRORS = "errors.csv"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # ----------------------------------------------------------------- paths

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def manifest(self) -> Path:
        """``manifest.json``: provenance and status."""
        return self.path / self.MANIFEST

    @property
    def config_file(self) -> Path:
        """``config.json``: the run's :class:`~lss.config.Config`."""
        return self.path / self.CONFIG

    @property
    def splits(self) -> Path:
        """``splits.csv``: study_id, label, split."""
        return self.path / self.SPLITS

    @property
    def model(self) -> Path:
        """``best.keras``: the model of the best validation loss."""
        return self.path / self.MODEL

    @property
    def history(self) -> Path:
        """``history.csv``: one row per epoch."""
        return self.path / self.HISTORY

    @property
    def history_json(self) -> Path:
        """``history.json``: the history of a finished run."""
        return self.path / self.HISTORY_JSON

    @property
    def backup(self) -> Path:
        """``backup/``: the state after the last finished epoch of a running run."""
        return self.path / self.BACKUP

    @property
    def localiser(self) -> Path:
        """``localiser.keras``: a region-of-interest run's recess localiser."""
        return self.path / self.LOCALISER

    @property
    def level_finder(self) -> Path:
        """``levels.keras``: the sagittal level localiser that finds the graded level
        in a study without coordinates (:mod:`lss.levels`)."""
        return self.path / self.LEVEL_FINDER

    @property
    def errors(self) -> Path:
        """``errors.csv``: the studies left out because their series failed to read."""
        return self.path / self.ERRORS

    def write_errors(self, failed: list[dict[str, Any]]) -> None:
        """Write ``errors.csv`` (study_id, series_id, reason), or remove it when none failed."""
        if failed:
            pd.DataFrame(failed, columns=["study_id", "series_id", "reason"]).to_csv(
                self.errors, index=False)
        else:
            self.errors.unlink(missing_ok=True)

    def failed_studies(self) -> set[int]:
        """The studies the run left out because their series failed (manifest ``failed``)."""
        return {int(f["study_id"]) for f in self.read_manifest().get("failed", [])}

    def metrics(self, out_dir: str | Path | None = None) -> Path:
        """``metrics.json`` in the run folder, or in ``out_dir`` where an evaluation went."""
        return Path(out_dir or self.path) / self.METRICS

    def predictions(self, out_dir: str | Path | None = None) -> Path:
        """``predictions.csv`` in the run folder, or in ``out_dir``."""
        return Path(out_dir or self.path) / self.PREDICTIONS

    # ----------------------------------------------------------------- manifest

    def read_manifest(self) -> dict[str, Any]:
        """The manifest (an empty dict where none was written)."""
        if not self.manifest.is_file():
            return {}
        try:
            return json.loads(self.manifest.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{self.manifest} is not valid JSON ({exc.msg})") from None

    def write_manifest(self, updates: dict[str, Any]) -> dict[str, Any]:
        """Merge ``updates`` into the manifest (atomically) and return it.

        The environment (package version, git commit, Python, Keras backend) and a
        timestamp are refreshed on every write.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        manifest = self.read_manifest()
        manifest.update(updates)
        manifest["environment"] = _environment()
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        manifest.setdefault("created", now)
        manifest["updated"] = now
        tmp = self.path / f".{self.MANIFEST}.tmp"
        tmp.write_text(json.dumps(manifest, indent=2, default=_json_default))
        os.replace(tmp, self.manifest)
        return manifest

    def data_root(self, root: str | Path | None = None) -> Path:
        """``root`` if given, else the data root the manifest records."""
        if root is not None:
            return Path(root)
        recorded = self.read_manifest().get("data", {}).get("root")
        if recorded is None:
            raise DataError(f"Run {self.path} records no data root; pass one")
        return Path(recorded)

    def is_finished(self) -> bool:
        """Whether training ran to its end (the manifest says trained or evaluated)."""
        return self.read_manifest().get("status") in ("trained", "evaluated")

    # ----------------------------------------------------------------- files

    def _require(self, path: Path) -> Path:
        if not path.is_file():
            raise DataError(f"No {path.name} in run folder {self.path} (train first)")
        return path

    def write_config(self, config: Config) -> None:
        """Write ``config.json``."""
        self.config_file.write_text(json.dumps(config.to_dict(), indent=2))

    def read_config(self) -> Config:
        """The run's :class:`~lss.config.Config`."""
        return Config.from_file(self._require(self.config_file))

    def write_split(self, split: pd.DataFrame) -> None:
        """Write ``splits.csv``."""
        split.to_csv(self.splits, index=False)

    def read_split(self) -> pd.DataFrame:
        """``splits.csv``: study_id, label, split."""
        if not self.splits.is_file():
            raise DataError(f"No {self.SPLITS} in run folder {self.path} (train first)")
        return pd.read_csv(self.splits)

    def read_history(self) -> pd.DataFrame:
        """``history.csv``, one row per epoch (an empty frame where none was written)."""
        if not self.history.is_file() or self.history.stat().st_size == 0:
            return pd.DataFrame()
        try:
            h = pd.read_csv(self.history)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DataError(f"{self.history} is not a readable history ({exc})") from None
        if "epoch" not in h.columns:
            raise DataError(f"{self.history} has no header row with an 'epoch' column "
                            f"(damaged); train the run again with --overwrite")
        return h.drop_duplicates("epoch", keep="last").reset_index(drop=True)

    def load_model(self):
        """The best model (``best.keras``), loaded in Keras' safe mode."""
        from lss.model import load_model

        return load_model(self._require(self.model))

    def load(self):
        """The best model and the :class:`~lss.config.Config`."""
        self._require(self.model)
        return self.load_model(), self.read_config()

    def write_predictions(self, study_ids: Any, labels: Any, proba: np.ndarray,
                          out_dir: str | Path | None = None) -> Path:
        """Write ``predictions.csv``: study_id, label, p_<grade>..., predicted."""
        preds = pd.DataFrame(proba, columns=[f"p_{s}" for s in SEVERITIES])
        preds.insert(0, "study_id", np.asarray(study_ids))
        preds.insert(1, "label", np.asarray(labels))
        preds["predicted"] = np.asarray(proba).argmax(axis=1)
        path = self.predictions(out_dir)
        preds.to_csv(path, index=False)
        return path

    def read_predictions(self, out_dir: str | Path | None = None
                         ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """A scored run's predictions: the frame, labels (N,) and probabilities (N, 3)."""
        path = self.predictions(out_dir)
        if not path.is_file():
            raise FileNotFoundError(f"No {self.PREDICTIONS} in {path.parent} "
                                    f"(evaluate the run first)")
        df = pd.read_csv(path)
        return df, df["label"].to_numpy(int), df[[f"p_{s}" for s in SEVERITIES]].to_numpy(float)

    def write_metrics(self, report: dict[str, Any], out_dir: str | Path | None = None) -> Path:
        """Write ``metrics.json``."""
        path = self.metrics(out_dir)
        path.write_text(json.dumps(report, indent=2, default=float))
        return path

    def read_metrics(self, out_dir: str | Path | None = None) -> dict[str, Any]:
        """``metrics.json`` of an evaluated run."""
        path = self.metrics(out_dir)
        if not path.is_file():
            raise FileNotFoundError(f"No {self.METRICS} in {path.parent} (evaluate the run first)")
        return json.loads(path.read_text())
