"""Beyond the paper: one change at a time, on the same split and seed, in one table.

An :class:`Experiment` is a name and a :class:`~lss.config.Config` (and, through
``crop_mm``, whether it crops a region of interest). :func:`run_experiments` trains every
row on the same studies with the same seed, scores each on the same validation split
beside the two reference points (always-majority and the training prior), and writes::

    out_dir/
      experiments.csv     the table (one row per experiment, then the reference points)
      experiments.json    the table, the data it came from, the combination rule
      manifest.json       provenance of the whole comparison
      localiser/          the ROI rows' localiser (trained on the training split only),
                          its validation errors and predicted centres
      <row name>/         a full run folder per row (lss.train.train), with manifest.json,
                          config.json, splits.csv, best.keras, metrics.json,
                          predictions.csv -- and localiser.keras for an ROI row

Each row can be run again alone, from Python (:func:`run_experiment`) or the shell::

    python -m lss.experiments --data data/phantom --out runs/experiments --row no_flip

The default rows (:func:`default_experiments`) are the paper's setup, then one change
each: no horizontal flip, class weights in the loss, a region of interest around the
left recess; the last row combines the changes that improved the primary metric over
the paper's row, decided from the measured table by :func:`combine`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lss.config import (
    BOOK_EPOCHS,
    BOOK_LEARNING_RATE,
    BOOK_LOCALISER,
    LOWER_IS_BETTER,
    METRICS,
    PAPER_EPOCHS,
    PRIMARY_METRIC,
    RSNA_SAMPLE_WEIGHTS,
    SEVERITIES,
    Config,
    LocaliserConfig,
)
from lss.localiser import (
    LOCALISER_FILE,
    install_localiser,
    load_localiser,
    localiser_errors,
    predict_centres,
    series_geometry,
    train_localiser,
)
from lss.runinfo import data_source, read_manifest, write_manifest

__all__ = [
    "Experiment",
    "Combination",
    "default_experiments",
    "combine",
    "run_experiments",
    "run_experiment",
    "shared_split",
    "prepare_localiser",
    "cli_command",
    "cli_commands",
    "paired_bootstrap",
    "linear_probe",
    "weighted_prior",
    "best_row",
    "load_predictions",
    "load_table",
    "format_table",
    "summarise",
    "plot_experiment_table",
    "plot_localiser_examples",
    "main",
]

@dataclass(frozen=True)
class Experiment:
    """One row: a name, the full :class:`~lss.config.Config`, and what it changes.

    Parameters
    ----------
    name : str
        A folder name (letters, digits, ``_`` and ``-``).
    config : Config
    description : str
        One line for the table.
    changes : mapping
        The settings this row changes relative to the reference row, as
        :meth:`Config.replace` keywords; :func:`combine` merges them.
    """

    name: str
    config: Config
    description: str = ""
    changes: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "_-" for c in self.name):
            raise ValueError(f"Experiment name must be letters, digits, '_' or '-', "
                             f"got {self.name!r}")
        object.__setattr__(self, "changes", dict(self.changes))

    @property
    def roi(self) -> bool:
        """Whether the row crops a region of interest (and so needs a localiser)."""
        return self.config.preprocess.crop_mm is not None


@dataclass(frozen=True)
class Combination:
    """A row built after the others: the changes of every row that improved ``metric``
    over ``reference`` (see :func:`combine`)."""

    name: str = "combined"
    reference: str = "paper"
    metric: str = PRIMARY_METRIC
    description: str = "every change that improved the primary metric, together"

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")


def default_experiments(base: Config | None = None, *, epochs: int | None = PAPER_EPOCHS,
                        learning_rate: float | None = None, class_weight: str = "balanced",
                        crop_mm: float = 40.0, roi_image_size: int = 64,
                        level_slices: int = 3, combination: bool = True
                        ) -> list[Experiment | Combination]:
    """The rows of the comparison.

    1. ``paper``: the published setup (whole 128 x 128 slices; rotation, zoom and
       horizontal flip).
    2. ``no_flip``: without the horizontal flip (the label names the patient's left).
    3. ``class_weights``: per-class loss weights (``"balanced"``, or ``"rsna"``: the
       metric's 1/2/4).
    4. ``roi``: crops of ``crop_mm`` mm centred on the left recess, resized to
       ``roi_image_size`` (training: the table's points; validation and test: the
       localiser's).
    5. ``roi_spatial``: ``roi`` with the slice features flattened instead of averaged
       (``pooling="flatten"``), so the model knows *where* in the crop a feature fired.
    6. ``roi_level``: ``roi_spatial`` with a window of ``level_slices`` slices instead of
       8, so that the window stays within the level (8 slices of a per-disc stack reach
       into the neighbouring levels; chapter 2).
    7. ``combined``: :class:`Combination` of the rows that improved the primary metric.

    Rows 2-4 change one thing of the paper's setup; rows 5 and 6 each add one change to
    the row above them, because flattening only makes sense on a crop (on a whole
    128-pixel slice the LSTM would get 32,768 inputs per slice).

    Parameters
    ----------
    base : Config, optional
        The paper's setup (default :class:`Config()`); every row starts from it.
    epochs : int or None
        The same number of epochs for every row (None keeps ``base``'s).
    learning_rate : float or None
        The same learning rate for every row (None keeps ``base``'s, the paper's 1e-4).

    Examples
    --------
    >>> [e.name for e in default_experiments()]
    ['paper', 'no_flip', 'class_weights', 'roi', 'roi_spatial', 'roi_level', 'combined']
    """
    base = base or Config()
    if epochs is not None:
        base = base.replace(epochs=epochs)
    if learning_rate is not None:
        base = base.replace(learning_rate=learning_rate)
    roi = {"crop_mm": float(crop_mm), "image_size": int(roi_image_size)}
    spatial = {**roi, "pooling": "flatten"}
    level = {**spatial, "n_slices": int(level_slices)}
    rows = [
        ("paper", "the paper: whole slices, rotation/zoom/horizontal flip", {}),
        ("no_flip", "no horizontal flip", {"horizontal_flip": False}),
        ("class_weights", f"class weights ({class_weight}) in the loss",
         {"class_weight": class_weight}),
        ("roi", f"{crop_mm:g} mm crop around the left recess, {roi_image_size} px", roi),
        ("roi_spatial", "roi, slice features flattened instead of averaged", spatial),
        ("roi_level", f"roi_spatial, a window of {level_slices} slices (the level) "
                      f"instead of {base.preprocess.n_slices}", level),
    ]
    out: list[Experiment | Combination] = [
        Experiment(name, base.replace(**changes), description, changes)
        for name, description, changes in rows
    ]
    if combination:
        out.append(Combination())
    return out


def combine(combination: Combination, table: pd.DataFrame,
            experiments: Sequence[Experiment]) -> Experiment | None:
    """The experiment that joins the changes of every row that beat the reference.

    Rule: a row *helped* when its ``combination.metric`` on the validation split is
    strictly better than the reference row's (higher; lower for a log loss). The
    combined row applies all their ``changes`` to the reference row's config. With no
    row that helped there is nothing to combine (``None``).

    Raises
    ------
    ValueError
        When two helping rows set one setting to different values, or a row is missing.
    """
    by_name = {e.name: e for e in experiments}
    measured = table.set_index("experiment")
    if combination.reference not in by_name or combination.reference not in measured.index:
        raise ValueError(f"Reference row '{combination.reference}' has not been run")
    ref = float(measured.loc[combination.reference, combination.metric])
    lower = combination.metric in LOWER_IS_BETTER
    helped = []
    for e in experiments:
        if e.name == combination.reference or e.name not in measured.index:
            continue
        value = float(measured.loc[e.name, combination.metric])
        if (value < ref) if lower else (value > ref):
            helped.append(e)
    if not helped:
        return None
    changes: dict[str, Any] = {}
    for e in helped:
        for k, v in e.changes.items():
            if k in changes and changes[k] != v:
                raise ValueError(f"Rows disagree on '{k}': {changes[k]!r} vs {v!r} ({e.name})")
            changes[k] = v
    base = by_name[combination.reference].config
    names = " + ".join(e.name for e in helped)
    return Experiment(combination.name, base.replace(**changes),
                      f"{combination.description}: {names}", changes)


# --------------------------------------------------------------------------- running


def _same_split(experiments: Sequence[Experiment]) -> Config:
    first = experiments[0].config
    for e in experiments[1:]:
        c = e.config
        if (c.condition, c.level, c.train.seed, c.train.validation_fraction) != (
                first.condition, first.level, first.train.seed, first.train.validation_fraction):
            raise ValueError(f"Experiment '{e.name}' differs from '{experiments[0].name}' in "
                             f"target, seed or validation fraction: rows must share one split")
    return first


def shared_split(root: str | Path, config: Config) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The index of the config's target and the split every row uses.

    The same as :func:`lss.train.train` computes (by study, stratified, from the
    config's ``seed`` and ``validation_fraction``).

    Returns
    -------
    index, split : DataFrame, DataFrame
        :func:`lss.data.build_index`'s rows and :func:`lss.train.split_by_study`'s.
    """
    from lss.data import build_index
    from lss.train import split_by_study

    index = build_index(root, config.condition, config.level)
    split = split_by_study(index, validation_fraction=config.train.validation_fraction,
                           seed=config.train.seed)
    return index, split


def prepare_localiser(
    root: str | Path,
    out_dir: str | Path,
    index: pd.DataFrame,
    split: pd.DataFrame,
    *,
    config: LocaliserConfig | None = None,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    retrain: bool = False,
    verbose: int = 0,
) -> tuple[Path, np.ndarray, dict[str, Any]]:
    """Train (or reuse) the localiser on the training split; predict the validation centres.

    The localiser lives in ``out_dir/localiser/``. One already there is reused when it was
    trained with the same settings on the same training studies of the same data (root,
    phantom marker and coordinate table unchanged), unless ``retrain``.

    Returns
    -------
    path, val_centres, errors
        The saved ``localiser.keras``; the predicted (x, y) of every validation row, in
        ``index`` order; and :meth:`~lss.localiser.LocaliserErrors.summary` of their
        distance to the table's points (computed *after* predicting, for the report).
    """
    config = config or LocaliserConfig()
    folder = Path(out_dir) / "localiser"
    path = folder / "localiser.keras"
    is_train = (split["split"] == "train").to_numpy()
    train_rows = index[is_train].reset_index(drop=True)
    val_rows = index[~is_train].reset_index(drop=True)
    coords = Path(root) / "train_label_coordinates.csv"
    key = {"config": config.to_dict(), "data": data_source(root),
           "coordinates_mtime_ns": coords.stat().st_mtime_ns if coords.is_file() else None,
           "train_studies": sorted(int(s) for s in train_rows["study_id"])}
    old = read_manifest(folder)
    if retrain or not path.is_file() or json.loads(json.dumps(old.get("key"))) != \
            json.loads(json.dumps(key)):
        if folder.exists():
            shutil.rmtree(folder)
        t0 = time.perf_counter()
        result = train_localiser(root, train_rows, path, config=config, cache_dir=cache_dir,
                                 workers=workers, verbose=verbose)
        write_manifest(folder, {"kind": "localiser", "data": data_source(root), "key": key,
                                "n_train": result.n_train, "excluded": result.excluded,
                                "train_seconds": round(time.perf_counter() - t0, 1),
                                "final_loss": float(result.history["loss"].iloc[-1])})
    model = load_localiser(path)
    centres = predict_centres(model, root, val_rows, cache_dir=cache_dir, workers=workers)
    # Only now are the validation points read: to measure the error, not to predict.
    has_point = val_rows[["x", "y"]].notna().all(axis=1).to_numpy()
    geo = series_geometry(root, val_rows)
    errors = localiser_errors(centres[has_point], val_rows.loc[has_point, ["x", "y"]].to_numpy(),
                              geo.loc[has_point, ["spacing_y", "spacing_x"]].to_numpy())
    per_row = pd.DataFrame({"study_id": val_rows["study_id"], "series_id": val_rows["series_id"],
                            "instance_number": val_rows["instance_number"],
                            "x_pred": centres[:, 0], "y_pred": centres[:, 1],
                            "x_true": val_rows["x"], "y_true": val_rows["y"]})
    per_row.loc[has_point, "error_px"] = errors.error_px
    per_row.loc[has_point, "error_mm"] = errors.error_mm
    per_row.to_csv(folder / "val_centres.csv", index=False)
    summary = errors.summary()
    write_manifest(folder, {"val_errors": summary})
    return path, centres, summary


def _row(experiment: Experiment, report: Mapping[str, Any], run_dir: Path) -> dict[str, Any]:
    m = report["model"]
    manifest = read_manifest(run_dir)
    predicted = np.asarray(m["confusion_matrix"]).sum(axis=0)
    return {
        "experiment": experiment.name,
        "description": experiment.description,
        "kind": "model",
        "accuracy": m["accuracy"],
        "balanced_accuracy": m["balanced_accuracy"],
        "macro_f1": m["macro"]["f1"],
        "rsna_log_loss": m["rsna_log_loss"],
        "log_loss": m["log_loss"],
        "n_val": report["n_val"],
        "grades_predicted": int(np.count_nonzero(predicted)),
        "epochs_run": manifest.get("epochs_run"),
        "train_seconds": manifest.get("train_seconds"),
        "centres": report.get("centres", "whole slice"),
        "changes": json.dumps(experiment.changes, sort_keys=True),
        "run_dir": str(run_dir),
    }


def _fill_training_centres(root, index: pd.DataFrame, split: pd.DataFrame, loc_path: Path, *,
                           cache_dir, workers) -> pd.DataFrame:
    """``index`` with the localiser's point for training rows that have none.

    A labelled study without a coordinate row (the "only series" rule of
    :func:`lss.data.build_index`) has no recess point to crop around; rather than drop
    it from an ROI row's training, the localiser (trained on the studies that have
    points) places its crop, as it does for every validation study. Rows with a point
    keep it.
    """
    is_train = index["study_id"].isin(split.loc[split["split"] == "train", "study_id"])
    missing = is_train.to_numpy() & index[["x", "y"]].isna().any(axis=1).to_numpy()
    if not missing.any():
        return index
    rows = index[missing].reset_index(drop=True)
    centres = predict_centres(load_localiser(loc_path), root, rows, cache_dir=cache_dir,
                              workers=workers)
    out = index.copy()
    out.loc[missing, ["x", "y"]] = centres
    return out


def _train_row(root, experiment: Experiment, out_dir: Path, index, split, *, cache_dir,
               workers, localiser, overwrite, verbose, retrain_localiser=False,
               train_options=None) -> dict[str, Any]:
    from lss.evaluate import evaluate_run
    from lss.train import train

    run_dir = out_dir / experiment.name
    val_centres, loc_path = None, None
    if experiment.roi:
        loc_path, val_centres, _ = prepare_localiser(root, out_dir, index, split,
                                                     config=localiser, cache_dir=cache_dir,
                                                     workers=workers, retrain=retrain_localiser)
        index = _fill_training_centres(root, index, split, loc_path, cache_dir=cache_dir,
                                       workers=workers)
    train(root, experiment.config, run_dir, cache_dir=cache_dir, index=index, workers=workers,
          overwrite=overwrite, verbose=verbose, val_centres=val_centres,
          **dict(train_options or {}))
    if loc_path is not None:
        install_localiser(loc_path, run_dir)
    report = evaluate_run(run_dir, root, cache_dir=cache_dir, workers=workers, figures=False)
    if experiment.roi and report.get("centres") != "localiser":
        raise RuntimeError(f"ROI row {experiment.name} was not evaluated at localiser centres")
    write_manifest(run_dir, {"experiment": {
        "name": experiment.name, "description": experiment.description,
        "changes": experiment.changes, "centres": report.get("centres", "whole slice"),
        "localiser": localiser.to_dict() if experiment.roi and localiser else None,
        "rerun": cli_command(Path(root).resolve(), out_dir.resolve(), experiment.name,
                             experiment.config, localiser=localiser if experiment.roi else None)}})
    return _row(experiment, report, run_dir)


def cli_command(data: str | Path, out_dir: str | Path, row: str, config: Config, *,
                localiser: LocaliserConfig | None = None) -> str:
    """The shell command that runs one default row with ``config``'s settings.

    The options are those that shape that row (epochs and seed always; the class
    weights, the crop and the localiser where the row uses them).

    Examples
    --------
    >>> cli_command("/data/rsna", "runs/exp", "no_flip", Config().replace(epochs=20, seed=0))
    'python -m lss.experiments --data /data/rsna --out runs/exp --row no_flip --epochs 20 --seed 0'
    """
    tr, pre = config.train, config.preprocess
    parts = ["python -m lss.experiments", f"--data {data}", f"--out {out_dir}", f"--row {row}",
             f"--epochs {tr.epochs}", f"--seed {tr.seed}"]
    paper = Config()
    if tr.learning_rate != paper.train.learning_rate:
        parts.append(f"--learning-rate {tr.learning_rate:g}")
    if row in ("roi_level", "combined") and pre.n_slices != paper.preprocess.n_slices:
        parts.append(f"--level-slices {pre.n_slices}")  # the option shapes only these rows
    if tr.class_weight:
        parts.append(f"--class-weight {tr.class_weight}")
    if pre.crop_mm is not None:
        parts += [f"--crop-mm {pre.crop_mm:g}", f"--roi-size {pre.image_size}"]
        loc = localiser or LocaliserConfig()
        parts += [f"--localiser-size {loc.image_size}", f"--localiser-epochs {loc.epochs}"]
    return " ".join(parts)


def cli_commands(data: str | Path, out_dir: str | Path,
                 experiments: Sequence[Experiment | Combination], *,
                 localiser: LocaliserConfig | None = None) -> list[str]:
    """One :func:`cli_command` per row, in order; the combination's carries every row's
    options, since it is decided from all of them.

    Examples
    --------
    >>> for c in cli_commands("/rsna", "out", default_experiments(Config().replace(seed=0))):
    ...     print(c.split("--row ")[1])
    paper --epochs 20 --seed 0
    no_flip --epochs 20 --seed 0
    class_weights --epochs 20 --seed 0 --class-weight balanced
    roi --epochs 20 --seed 0 --crop-mm 40 --roi-size 64 --localiser-size 96 --localiser-epochs 40
    roi_spatial --epochs 20 --seed 0 --crop-mm 40 --roi-size 64 --localiser-size 96 \
--localiser-epochs 40
    roi_level --epochs 20 --seed 0 --level-slices 3 --crop-mm 40 --roi-size 64 \
--localiser-size 96 --localiser-epochs 40
    combined --epochs 20 --seed 0 --level-slices 3 --class-weight balanced --crop-mm 40 \
--roi-size 64 --localiser-size 96 --localiser-epochs 40
    """
    plain = [e for e in experiments if isinstance(e, Experiment)]
    out = []
    for e in experiments:
        if isinstance(e, Experiment):
            out.append(cli_command(data, out_dir, e.name, e.config,
                                   localiser=localiser if e.roi else None))
            continue
        union: dict[str, Any] = {}
        for p in plain:
            union.update(p.changes)
        union.pop("horizontal_flip", None)  # not an option: no_flip is its own row
        config = plain[0].config.replace(**union)
        out.append(cli_command(data, out_dir, e.name, config, localiser=localiser))
    return out


def weighted_prior(y_train: Sequence[int] | np.ndarray,
                   weights: Sequence[float] = RSNA_SAMPLE_WEIGHTS) -> np.ndarray:
    """The constant probabilities with the lowest *weighted* log loss on ``y_train``.

    Minimising ``sum_i w[y_i] * -log p[y_i]`` over one probability vector ``p`` gives
    ``p_c = w_c n_c / sum_k w_k n_k``: the class counts weighted as the metric weights
    them. Under the RSNA weights 1/2/4 this constant leans toward Severe, and beats the
    plain training prior on the RSNA log loss without looking at a single image, so a
    model must beat *it* before its RSNA log loss says anything about the images.

    Examples
    --------
    >>> weighted_prior([0, 0, 0, 0, 1, 1, 2]).round(3).tolist()  # counts 4, 2, 1 -> 4, 4, 4
    [0.333, 0.333, 0.333]
    """
    counts = np.bincount(np.asarray(y_train, dtype=int), minlength=len(weights)).astype(float)
    mass = counts * np.asarray(weights, dtype=float)
    if mass.sum() <= 0:
        raise ValueError("y_train is empty")
    return mass / mass.sum()


def _reference_rows(report: Mapping[str, Any], y_train: np.ndarray, y_val: np.ndarray
                    ) -> list[dict[str, Any]]:
    from lss.metrics import rsna_log_loss

    maj, prior = report["majority"], report["prior"]
    wp = weighted_prior(y_train)
    constant = np.tile(wp, (len(y_val), 1))
    return [
        {"experiment": "majority", "kind": "reference",
         "description": f"always '{maj['class']}' (training split's most frequent grade)",
         "accuracy": maj["accuracy"], "balanced_accuracy": maj["balanced_accuracy"],
         "macro_f1": maj["macro_f1"], "rsna_log_loss": np.nan, "log_loss": np.nan,
         "n_val": report["n_val"]},
        {"experiment": "prior", "kind": "reference",
         "description": "training class frequencies for every study",
         "accuracy": np.nan, "balanced_accuracy": np.nan, "macro_f1": np.nan,
         "rsna_log_loss": prior["rsna_log_loss"], "log_loss": prior["log_loss"],
         "n_val": report["n_val"]},
        {"experiment": "weighted_prior", "kind": "reference",
         "description": "training class frequencies weighted 1/2/4 (the best constant for "
                        "the RSNA log loss) for every study",
         "accuracy": np.nan, "balanced_accuracy": np.nan, "macro_f1": np.nan,
         "rsna_log_loss": rsna_log_loss(y_val, constant),
         "log_loss": rsna_log_loss(y_val, constant, weights=(1.0,) * len(wp)),
         "n_val": report["n_val"]},
    ]


def run_experiments(
    root: str | Path,
    experiments: Sequence[Experiment | Combination] | None = None,
    out_dir: str | Path = "runs/experiments",
    *,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    localiser: LocaliserConfig | None = None,
    overwrite: bool = False,
    retrain_localiser: bool = False,
    train_options: Mapping[str, Any] | None = None,
    verbose: int = 0,
    n_boot: int = 1000,
    progress: Callable[[str], None] | None = print,
) -> pd.DataFrame:
    """Train and score every row on the same split and seed; return and save the table.

    Parameters
    ----------
    root : str or Path
        Data root (the phantom or the RSNA 2024 data).
    experiments : sequence, optional
        :class:`Experiment` rows and at most one :class:`Combination` (resolved after
        the others). Default :func:`default_experiments`.
    out_dir : str or Path
        One run folder per row, and the table (see the module docstring).
    localiser : LocaliserConfig, optional
        For the ROI rows (default :class:`~lss.localiser.LocaliserConfig`).
    overwrite : bool
        Replace existing run folders.
    retrain_localiser : bool
        Train the localiser again even where ``out_dir/localiser`` holds one trained with
        the same settings on the same training studies (see :func:`prepare_localiser`).
    train_options : mapping, optional
        Further keywords of :func:`lss.train.train` for every row, e.g. ``loader`` (from
        :func:`lss.accelerate.loader_settings`) on a GPU.
    n_boot : int
        Paired bootstrap resamples of the validation studies for the interval of each
        row's difference from the reference row (0: none).
    progress : callable or None
        Called with one line per finished row.

    Returns
    -------
    DataFrame
        One row per experiment (``kind == "model"``) then the references ``majority``
        and ``prior`` (``kind == "reference"``), with :data:`METRICS`, the difference
        in :data:`PRIMARY_METRIC` from the reference row and its 95 % bootstrap
        interval, ``epochs_run``, ``train_seconds``, ``centres`` and ``run_dir``.
        ``df.attrs`` holds ``data`` (the data source) and ``localiser`` (its
        validation errors, where an ROI row ran).
    """
    experiments = list(experiments if experiments is not None else default_experiments())
    plain = [e for e in experiments if isinstance(e, Experiment)]
    combos = [e for e in experiments if isinstance(e, Combination)]
    if not plain:
        raise ValueError("No experiments to run")
    if len(combos) > 1:
        raise ValueError("At most one Combination row")
    names = [e.name for e in experiments]
    if len(set(names)) != len(names):
        raise ValueError(f"Experiment names must be unique, got {names}")
    first = _same_split(plain)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    index, split = shared_split(root, first)
    say = progress or (lambda _line: None)
    kw = dict(cache_dir=cache_dir, workers=workers, localiser=localiser, overwrite=overwrite,
              verbose=verbose, retrain_localiser=retrain_localiser, train_options=train_options)
    rows = []
    with _quiet_retracing():
        for e in plain:
            t0 = time.perf_counter()
            rows.append(_train_row(root, e, out_dir, index, split, **kw))
            say(_line(rows[-1], time.perf_counter() - t0))
        rows += _combined_rows(combos, rows, plain, root, out_dir, index, split, say, kw)
    reference = rows[0]["run_dir"]
    report = json.loads((Path(reference) / "metrics.json").read_text())
    is_train = (split["split"] == "train").to_numpy()
    y = index["label"].to_numpy(int)
    table = pd.DataFrame(rows + _reference_rows(report, y[is_train], y[~is_train]))
    table = _add_differences(table, plain[0].name, n_boot=n_boot, seed=first.train.seed)
    source = data_source(root)
    table.attrs["data"] = source
    loc = read_manifest(out_dir / "localiser").get("val_errors")
    if loc:
        table.attrs["localiser"] = loc
    _save_table(table, out_dir, experiments, plain[0].name)
    return table


def _combined_rows(combos, done, plain, root, out_dir, index, split, say, kw
                   ) -> list[dict[str, Any]]:
    """Resolve and run the Combination rows from the rows measured so far (``done``)."""
    out: list[dict[str, Any]] = []
    for c in combos:
        table = pd.DataFrame(done)
        merged = combine(c, table, plain)
        if merged is None:
            out.append({"experiment": c.name, "kind": "model", "centres": "-",
                        "description": f"nothing to combine: no row improved {c.metric} "
                                       f"over '{c.reference}'"})
            say(f"[{c.name}] nothing to combine: no row improved {c.metric} over {c.reference}")
            continue
        same = [e for e in plain if e.config == merged.config]
        if same:
            row = dict(next(r for r in done if r["experiment"] == same[0].name))
            row.update(experiment=c.name, description=f"{merged.description} (the same "
                       f"config as '{same[0].name}': its run, not trained again)")
            out.append(row)
            say(f"[{c.name}] = {same[0].name} (only that row helped)")
            continue
        t0 = time.perf_counter()
        out.append(_train_row(root, merged, out_dir, index, split, **kw))
        say(_line(out[-1], time.perf_counter() - t0))
    return out


@contextlib.contextmanager
def _quiet_retracing():
    """Silence TensorFlow's "triggered tf.function retracing" notes while many models
    predict one after another (expected here, and harmless); other backends: no-op."""
    import logging

    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _line(row: Mapping[str, Any], seconds: float) -> str:
    return (f"[{row['experiment']}] {row['epochs_run']} epochs, {seconds:.0f} s: balanced "
            f"accuracy {row['balanced_accuracy']:.3f}, RSNA log loss {row['rsna_log_loss']:.3f}")


def _save_table(table: pd.DataFrame, out_dir: Path, experiments, reference: str) -> None:
    table.to_csv(out_dir / "experiments.csv", index=False)
    payload = {
        "data": table.attrs["data"],
        "primary_metric": PRIMARY_METRIC,
        "reference_row": reference,
        "combination_rule": f"rows whose {PRIMARY_METRIC} is strictly better than "
                            f"'{reference}' on the validation split",
        "localiser": table.attrs.get("localiser"),
        "rows": json.loads(table.to_json(orient="records")),
    }
    (out_dir / "experiments.json").write_text(json.dumps(payload, indent=2))
    write_manifest(out_dir, {"kind": "experiments", "data": table.attrs["data"],
                             "rows": [e.name for e in experiments],
                             "primary_metric": PRIMARY_METRIC})


def run_experiment(
    root: str | Path,
    experiment: Experiment | str,
    out_dir: str | Path = "runs/experiments",
    *,
    epochs: int | None = None,
    experiments: Sequence[Experiment | Combination] | None = None,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    localiser: LocaliserConfig | None = None,
    overwrite: bool = True,
    train_options: Mapping[str, Any] | None = None,
    verbose: int = 0,
) -> dict[str, Any]:
    """Run one row again, alone, into ``out_dir/<name>`` (same split and seed).

    Parameters
    ----------
    experiment : Experiment or str
        A row, or a row's name in ``experiments`` (default
        :func:`default_experiments(epochs=epochs)`). ``"combined"`` is resolved from
        the ``experiments.csv`` that :func:`run_experiments` left in ``out_dir``.

    Returns
    -------
    dict
        The row of the table (metrics, epochs, seconds, run folder).
    """
    out_dir = Path(out_dir)
    if isinstance(experiment, str):
        pool = list(experiments if experiments is not None else
                    default_experiments(epochs=epochs if epochs is not None else PAPER_EPOCHS))
        plain = [e for e in pool if isinstance(e, Experiment)]
        found = [e for e in pool if e.name == experiment]
        if not found:
            raise ValueError(f"No experiment named '{experiment}'; expected one of "
                             f"{[e.name for e in pool]}")
        chosen = found[0]
        if isinstance(chosen, Combination):
            csv = out_dir / "experiments.csv"
            if not csv.is_file():
                raise FileNotFoundError(f"'{chosen.name}' is decided from the other rows' "
                                        f"table, and {csv} does not exist: run them first")
            chosen = combine(chosen, pd.read_csv(csv), plain)
            if chosen is None:
                raise ValueError(f"No row improved on the reference in {csv}: nothing to "
                                 f"combine")
        experiment = chosen
    elif epochs is not None:
        experiment = Experiment(experiment.name, experiment.config.replace(epochs=epochs),
                                experiment.description, experiment.changes)
    index, split = shared_split(root, experiment.config)
    out_dir.mkdir(parents=True, exist_ok=True)
    return _train_row(root, experiment, out_dir, index, split, cache_dir=cache_dir,
                      workers=workers, localiser=localiser, overwrite=overwrite, verbose=verbose,
                      train_options=train_options)


# --------------------------------------------------------------------------- statistics


def _scores(y: np.ndarray, proba: np.ndarray, metric: str) -> float:
    """One metric, as :func:`lss.metrics.evaluate` computes it (fast, for resampling)."""
    from lss.metrics import rsna_log_loss

    if metric == "rsna_log_loss":
        return rsna_log_loss(y, proba)
    if metric == "log_loss":
        return rsna_log_loss(y, proba, weights=(1.0, 1.0, 1.0))
    pred = proba.argmax(axis=1)
    if metric == "accuracy":
        return float(np.mean(pred == y))
    k = proba.shape[1]
    tp = np.array([np.sum((pred == c) & (y == c)) for c in range(k)], dtype=float)
    support = np.bincount(y, minlength=k).astype(float)
    predicted = np.bincount(pred, minlength=k).astype(float)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    if metric == "balanced_accuracy":
        return float(recall[support > 0].mean())
    if metric == "macro_f1":
        precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
        denom = precision + recall
        f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
        return float(f1.mean())
    raise ValueError(f"Unknown metric '{metric}'; expected one of {METRICS}")


def paired_bootstrap(y: np.ndarray, proba_a: np.ndarray, proba_b: np.ndarray, *,
                     metric: str = PRIMARY_METRIC, n_boot: int = 1000, seed: int = 0
                     ) -> tuple[float, float, float]:
    """Difference ``metric(b) - metric(a)`` on the same studies, with a 95 % interval.

    The validation studies are resampled with replacement ``n_boot`` times; both
    models are scored on each resample, so the interval reflects how much the
    difference depends on which studies happen to be in a small validation split.

    Returns
    -------
    (difference, low, high)
    """
    y = np.asarray(y, dtype=int)
    a, b = np.asarray(proba_a, float), np.asarray(proba_b, float)
    diff = _scores(y, b, metric) - _scores(y, a, metric)
    if n_boot < 1:
        return diff, np.nan, np.nan
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot)
    for i in range(n_boot):
        s = rng.integers(0, len(y), len(y))
        draws[i] = _scores(y[s], b[s], metric) - _scores(y[s], a[s], metric)
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(diff), float(low), float(high)


def load_table(out_dir: str | Path) -> pd.DataFrame:
    """The table a :func:`run_experiments` call left in ``out_dir``, with ``attrs["data"]``
    (which data it was measured on) and ``attrs["localiser"]``.

    Raises
    ------
    FileNotFoundError
        Where no comparison has been run into ``out_dir``.
    """
    path = Path(out_dir) / "experiments.json"
    if not path.is_file():
        raise FileNotFoundError(f"No experiments.json in {out_dir}: run the comparison first "
                                f"(python -m lss.experiments --data ... --out {out_dir})")
    payload = json.loads(path.read_text())
    table = pd.DataFrame(payload["rows"])
    table.attrs["data"] = payload["data"]
    if payload.get("localiser"):
        table.attrs["localiser"] = payload["localiser"]
    return table


def load_predictions(run_dir: str | Path) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """A scored run's ``predictions.csv``: the frame, labels (N,) and probabilities (N, 3)."""
    path = Path(run_dir) / "predictions.csv"
    if not path.is_file():
        raise FileNotFoundError(f"No predictions.csv in {run_dir} (evaluate the run first)")
    df = pd.read_csv(path)
    return df, df["label"].to_numpy(int), df[[f"p_{s}" for s in SEVERITIES]].to_numpy(float)


def _add_differences(table: pd.DataFrame, reference: str, *, n_boot: int, seed: int
                     ) -> pd.DataFrame:
    table = table.copy()
    col = f"delta_{PRIMARY_METRIC}"
    for c in (col, f"{col}_low", f"{col}_high"):
        table[c] = np.nan
    ref_dir = table.loc[table.experiment == reference, "run_dir"].iloc[0]
    ref_df, y, ref_p = load_predictions(ref_dir)
    for i, row in table.iterrows():
        if row["kind"] != "model" or not isinstance(row.get("run_dir"), str):
            continue
        df, y_b, p = load_predictions(row["run_dir"])
        if not np.array_equal(df["study_id"], ref_df["study_id"]) or not np.array_equal(y, y_b):
            raise ValueError(f"{row['run_dir']} was scored on other studies than {ref_dir}")
        table.loc[i, [col, f"{col}_low", f"{col}_high"]] = paired_bootstrap(
            y, ref_p, p, metric=PRIMARY_METRIC, n_boot=n_boot, seed=seed)
    return table


def linear_probe(
    run_dir: str | Path,
    root: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    size: int = 32,
    cs: Sequence[float] = (1e-3, 1e-2, 1e-1, 1.0, 10.0),
    folds: int = 4,
) -> dict[str, Any]:
    """How much of the grade a linear model reads off a run's own inputs.

    A multinomial logistic regression on the pixels of the labelled slice (the middle
    of each window, resized to ``size`` squared so that whole slices and crops offer
    the same number of features), with its regularisation chosen by cross-validation
    on the training split only (balanced accuracy), scored on the validation split. The
    inputs are exactly the run's: whole slices, or ROI crops centred on the table's
    points in training and on the run's localiser's points in validation. It asks
    whether the grade is *in* the input at all, apart from whether the CNN-LSTM
    learns it in a given budget.

    Returns
    -------
    dict
        ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``rsna_log_loss`` on the
        validation split, ``C`` (the chosen inverse regularisation), ``n_features``,
        ``centres`` and ``crop_mm``.
    """
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    from lss.data import TensorCache, build_index, resize_slice
    from lss.localiser import run_centres
    from lss.metrics import evaluate
    from lss.train import load_split

    run_dir = Path(run_dir)
    config = Config.from_file(run_dir / "config.json")
    root = root or read_manifest(run_dir).get("data", {}).get("root")
    if root is None:
        raise ValueError(f"Run {run_dir} records no data root; pass one")
    split = load_split(run_dir)
    index = build_index(root, config.condition, config.level).merge(
        split[["study_id", "split"]], on="study_id", how="left")
    centres, centred_by = None, "whole slice"
    if config.preprocess.crop_mm is not None:  # as the run's training saw them
        index = _fill_training_centres(root, index, split, run_dir / LOCALISER_FILE,
                                       cache_dir=cache_dir, workers=workers)
    tr = index[index["split"] == "train"].reset_index(drop=True)
    va = index[index["split"] == "val"].reset_index(drop=True)
    if config.preprocess.crop_mm is not None:
        centres, centred_by = run_centres(run_dir, root, va, cache_dir=cache_dir, workers=workers)
    cache = TensorCache(root, config.preprocess, cache_dir=cache_dir)
    mid = config.preprocess.n_slices // 2

    def features(windows: np.ndarray) -> np.ndarray:
        return np.stack([resize_slice(w[mid], size).ravel() for w in windows])

    x_tr = features(cache.load(tr, workers=workers))
    x_va = features(cache.load(va, centres=centres, workers=workers))
    y_tr, y_va = tr["label"].to_numpy(int), va["label"].to_numpy(int)
    cv = StratifiedKFold(folds, shuffle=True, random_state=config.train.seed)
    clf = LogisticRegressionCV(Cs=list(cs), cv=cv, scoring="balanced_accuracy", max_iter=3000)
    with warnings.catch_warnings():  # scikit-learn 1.8 announces changes of defaults
        warnings.simplefilter("ignore", FutureWarning)
        clf.fit(x_tr, y_tr)
    proba = np.zeros((len(va), len(SEVERITIES)))
    proba[:, clf.classes_] = clf.predict_proba(x_va)
    rep = evaluate(y_va, proba, y_train=y_tr)["model"]
    return {"accuracy": rep["accuracy"], "balanced_accuracy": rep["balanced_accuracy"],
            "macro_f1": rep["macro"]["f1"], "rsna_log_loss": rep["rsna_log_loss"],
            "C": float(np.ravel(clf.C_)[0]), "n_features": int(x_tr.shape[1]),
            "centres": centred_by, "crop_mm": config.preprocess.crop_mm}


def best_row(table: pd.DataFrame, metric: str = PRIMARY_METRIC) -> pd.Series:
    """The trained row with the best ``metric`` (ties: the lower RSNA log loss, then the
    earlier row)."""
    models = table[(table["kind"] == "model") & table[metric].notna()]
    if models.empty:
        raise ValueError("The table has no scored model rows")
    sign = 1 if metric in LOWER_IS_BETTER else -1
    order = models.assign(_m=sign * models[metric], _pos=range(len(models)))
    return order.sort_values(["_m", "rsna_log_loss", "_pos"]).iloc[0].drop(["_m", "_pos"])


def summarise(table: pd.DataFrame, *, reference: str = "paper",
              metric: str = PRIMARY_METRIC) -> list[str]:
    """Sentences read off a measured table (nothing in them is written in advance).

    Which rows still answer one grade for every validation study, which beat the
    reference row on ``metric`` (and whether the 95 % bootstrap interval of the
    difference excludes 0), and which beat the training prior on the RSNA log loss.
    """
    models = table[(table["kind"] == "model") & table[metric].notna()]
    refs = table[table["kind"] == "reference"].set_index("experiment")
    ref = models.set_index("experiment").loc[reference]
    lower = metric in LOWER_IS_BETTER
    name = metric.replace("_", " ")

    def names(rows: pd.DataFrame) -> str:
        return ", ".join(f"'{n}'" for n in rows["experiment"]) or "none"

    out = []
    if "grades_predicted" in models:
        one = models[models["grades_predicted"] <= 1]
        out.append(f"Rows that answer a single grade for every validation study: {names(one)} "
                   f"(of {len(models)}).")
    better = models[(models[metric] < ref[metric]) if lower else (models[metric] > ref[metric])]
    col = f"delta_{metric}"
    if len(better) and col in better:
        sure = better[(better[f"{col}_low"] > 0) | (better[f"{col}_high"] < 0)]
        out.append(f"Rows with a better {name} than '{reference}' ({ref[metric]:.3f}): "
                   f"{names(better)}; with a 95 % interval of the difference that excludes 0: "
                   f"{names(sure)}.")
    else:
        out.append(f"Rows with a better {name} than '{reference}' ({ref[metric]:.3f}): none.")
    if "prior" in refs.index:
        prior = refs.loc["prior", "rsna_log_loss"]
        below = models[models["rsna_log_loss"] < prior]
        out.append(f"Rows whose RSNA weighted log loss beats the training prior's "
                   f"({prior:.3f}): {names(below)}.")
    if "weighted_prior" in refs.index:
        best_constant = refs.loc["weighted_prior", "rsna_log_loss"]
        below = models[models["rsna_log_loss"] < best_constant]
        out.append(f"Rows whose RSNA weighted log loss beats the best constant answer, the "
                   f"weighted prior ({best_constant:.3f}): {names(below)}.")
    return out


def format_table(table: pd.DataFrame, *, data_label: str) -> str:
    """The table as text, headed by the data it was measured on (required)."""
    if not isinstance(data_label, str) or not data_label.strip():
        raise ValueError(f"data_label must name the data the numbers come from, got {data_label!r}")
    col = f"delta_{PRIMARY_METRIC}"
    lines = [f"Data: {data_label.strip()} (validation n = {int(table['n_val'].dropna().iloc[0])})",
             f"{'row':<15}{'acc':>7}{'bal.acc':>9}{'macroF1':>9}{'RSNA LL':>9}"
             f"{'Δ bal.acc vs paper [95% CI]':>31}"]

    def f(v):
        return "      -" if pd.isna(v) else f"{v:7.3f}"

    for _, r in table.iterrows():
        delta = "" if pd.isna(r.get(col)) else \
            f"{r[col]:+.3f} [{r[f'{col}_low']:+.3f}, {r[f'{col}_high']:+.3f}]"
        lines.append(f"{r['experiment']:<15}{f(r['accuracy'])}{f(r['balanced_accuracy']):>9}"
                     f"{f(r['macro_f1']):>9}{f(r['rsna_log_loss']):>9}{delta:>31}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- figures


def plot_experiment_table(table: pd.DataFrame, *, data_label: str,
                          metrics: Sequence[str] = ("balanced_accuracy", "macro_f1",
                                                    "rsna_log_loss"), axes=None):
    """One horizontal bar chart per metric, the reference points as dashed lines.

    Returns
    -------
    ndarray of matplotlib Axes
    """
    import matplotlib.pyplot as plt

    models = table[(table["kind"] == "model") & table["balanced_accuracy"].notna()]
    refs = table[table["kind"] == "reference"].set_index("experiment")
    if axes is None:
        _, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 0.5 * len(models) + 1.6),
                               sharey=True)
    axes = np.atleast_1d(axes)
    for ax, metric in zip(axes, metrics, strict=True):
        ax.barh(models["experiment"], models[metric], color="tab:blue")
        for name, style in (("majority", "--"), ("prior", ":"), ("weighted_prior", "-.")):
            if name in refs.index and pd.notna(refs.loc[name, metric]):
                ax.axvline(refs.loc[name, metric], color="k", linestyle=style, label=name)
        if metric not in LOWER_IS_BETTER:
            ax.set_xlim(0, 1)
        ax.set_title(metric.replace("_", " ") + (" (lower is better)"
                                                 if metric in LOWER_IS_BETTER else ""),
                     fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower right")
    axes[0].invert_yaxis()
    axes[0].figure.suptitle(f"Beyond the paper, validation split: {data_label}", fontsize=9)
    axes[0].figure.tight_layout()
    return axes


def plot_localiser_examples(root: str | Path, centres_csv: str | Path, *, data_label: str,
                            n: int = 4, crop_mm: float | None = 40.0, axes=None):
    """Validation slices with the table's point (green) and the localiser's (red).

    Shows the ``n`` validation studies with the largest errors (the ones worth looking
    at), each titled with its error in mm; with ``crop_mm``, the square the ROI model
    would see around the prediction is drawn too.

    Returns
    -------
    ndarray of matplotlib Axes
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from lss.data import read_series, series_dir

    rows = pd.read_csv(centres_csv).sort_values("error_mm", ascending=False).head(n)
    if axes is None:
        _, axes = plt.subplots(1, len(rows), figsize=(3 * len(rows), 3.3))
    axes = np.atleast_1d(axes)
    for ax, r in zip(axes, rows.itertuples(), strict=False):
        s = read_series(series_dir(root, r.study_id, r.series_id))
        img = s.volume[s.index_of(int(r.instance_number))]
        ax.imshow(img, cmap="gray", vmin=np.percentile(img, 0.5), vmax=np.percentile(img, 99.5))
        ax.plot(r.x_true, r.y_true, "o", color="lime", ms=4, label="table")
        ax.plot(r.x_pred, r.y_pred, "x", color="red", ms=6, label="localiser")
        if crop_mm is not None:
            sy, sx = s.pixel_spacing
            w, h = crop_mm / sx, crop_mm / sy
            ax.add_patch(Rectangle((r.x_pred - w / 2, r.y_pred - h / 2), w, h, fill=False,
                                   color="red", lw=0.8))
        ax.set_title(f"study {r.study_id}: {r.error_mm:.1f} mm", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(fontsize=7, loc="lower left")
    axes[0].figure.suptitle(f"Localiser on validation studies (largest errors): {data_label}",
                            fontsize=9)
    return axes


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lss.experiments``: run the comparison, or one row of it."""
    p = argparse.ArgumentParser(prog="python -m lss.experiments", description=__doc__.split(
        "\n")[0])
    p.add_argument("--data", required=True, help="data root in the Kaggle layout")
    p.add_argument("--out", default="runs/experiments", help="output folder (%(default)s)")
    p.add_argument("--row", action="append", help="run only this row (repeatable); "
                   "default: every row, then the table")
    p.add_argument("--epochs", type=int, default=PAPER_EPOCHS,
                   help="epochs of every row (default %(default)s, the paper's)")
    p.add_argument("--learning-rate", type=float, default=None,
                   help="learning rate of every row (default: the paper's 1e-4)")
    p.add_argument("--level-slices", type=int, default=3,
                   help="the roi_level row's window, in slices (%(default)s)")
    p.add_argument("--seed", type=int, default=Config().train.seed,
                   help="seed of the split, the weights, the augmentation and the localiser "
                   "(%(default)s)")
    p.add_argument("--class-weight", default="balanced", choices=["balanced", "rsna"],
                   help="the class_weights row's scheme (%(default)s)")
    p.add_argument("--crop-mm", type=float, default=40.0, help="the roi row's crop (%(default)s)")
    p.add_argument("--roi-size", type=int, default=64,
                   help="the roi row's crops are resized to this (%(default)s)")
    p.add_argument("--localiser-epochs", type=int, default=LocaliserConfig().epochs)
    p.add_argument("--localiser-size", type=int, default=LocaliserConfig().image_size)
    p.add_argument("--cache", default=None, help="preprocessing cache folder")
    p.add_argument("--workers", type=int, default=None)
    args = p.parse_args(argv)
    loc = LocaliserConfig(image_size=args.localiser_size, epochs=args.localiser_epochs,
                          seed=args.seed)
    from lss.runinfo import data_label

    label = data_label(args.data)
    rows = default_experiments(Config().replace(seed=args.seed), epochs=args.epochs,
                               learning_rate=args.learning_rate,
                               class_weight=args.class_weight, crop_mm=args.crop_mm,
                               roi_image_size=args.roi_size, level_slices=args.level_slices)
    if args.row:
        for name in args.row:
            row = run_experiment(args.data, name, args.out, experiments=rows,
                                 cache_dir=args.cache, workers=args.workers, localiser=loc)
            print(f"{label}: " + _line(row, row["train_seconds"] or 0) + f" -> {row['run_dir']}")
        return 0
    table = run_experiments(args.data, rows, args.out, cache_dir=args.cache,
                            workers=args.workers, localiser=loc, overwrite=True)
    print(format_table(table, data_label=label))
    print(f"Wrote {Path(args.out) / 'experiments.csv'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
