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

The comparison runs from the shell as ``lss experiments --data ROOT --out OUT``. Each row
can be run again alone, from Python (:func:`run_experiment`) or from its saved config
(the manifest of every row records this command)::

    lss train --data data/phantom --config runs/experiments/no_flip/config.json --run RUN

Statistics (paired bootstrap, weighted prior) live in :mod:`lss.metrics`, the localiser
workflow in :mod:`lss.localiser`, the linear probe in :mod:`lss.baselines` and the
figures in :mod:`lss.viz.results`.

The default rows (:func:`default_experiments`) are the paper's setup, then one change
each: no horizontal flip, class weights in the loss, a region of interest around the
left recess; the last row combines the changes that improved the primary metric over
the paper's row, decided from the measured table by :func:`combine`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lss.comparison import add_differences, reference_rows
from lss.config import (
    LOWER_IS_BETTER,
    METRICS,
    PAPER_EPOCHS,
    PRIMARY_METRIC,
    Config,
    LocaliserConfig,
)
from lss.data import build_index
from lss.evaluate import evaluate_run
from lss.localiser import fill_training_centres, fit_split_localiser, install_localiser
from lss.progress import bar
from lss.run import RunDir, data_source
from lss.train import split_by_study, train

__all__ = [
    "train_roi_level",
    "Experiment",
    "Combination",
    "default_experiments",
    "combine",
    "run_experiments",
    "run_experiment",
    "shared_split",
    "train_row",
    "rerun_command",
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

    - ``paper``: the published setup (whole 128 x 128 slices; rotation, zoom and
      horizontal flip).
    - ``no_flip``: without the horizontal flip (the label names the patient's left).
    - ``class_weights``: per-class loss weights (``"balanced"``, or ``"rsna"``: the
      metric's 1/2/4).
    - ``paper_level``: a window of ``level_slices`` slices instead of 8, on whole
      slices, so that the window stays within the level (8 slices of a per-disc stack
      reach into the neighbouring levels; chapter 2).
    - ``more_epochs``: twice the epochs of every other row (too little training).
    - ``roi``: crops of ``crop_mm`` mm centred on the left recess, resized to
      ``roi_image_size`` (training: the table's points; validation and test: the
      localiser's).
    - ``roi_spatial``: ``roi`` with the slice features flattened instead of averaged
      (``pooling="flatten"``), so the model knows *where* in the crop a feature fired.
    - ``roi_level``: ``roi_spatial`` with the window of ``paper_level``.
    - ``combined``: :class:`Combination` of the rows that improved the primary metric.

    ``no_flip`` to ``roi`` change one thing of the paper's setup; ``roi_spatial`` and
    ``roi_level`` each add one change to the row above them, because flattening only
    makes sense on a crop (on a whole 128-pixel slice the LSTM would get 32,768 inputs
    per slice).

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
    >>> [e.name for e in default_experiments()]  # doctest: +NORMALIZE_WHITESPACE
    ['paper', 'no_flip', 'class_weights', 'paper_level', 'more_epochs', 'roi',
     'roi_spatial', 'roi_level', 'combined']
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
        ("paper_level", f"a window of {level_slices} slices (the level) instead of "
                        f"{base.preprocess.n_slices}, on whole slices",
         {"n_slices": int(level_slices)}),
        ("more_epochs", f"twice the epochs ({2 * base.train.epochs})",
         {"epochs": 2 * base.train.epochs}),
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


def _with_localiser(experiments: list, localiser: LocaliserConfig | None) -> list:
    """The rows with ``localiser`` as their ``config.localiser`` (unchanged for None)."""
    if localiser is None:
        return experiments
    return [dataclasses.replace(e, config=dataclasses.replace(e.config, localiser=localiser))
            if isinstance(e, Experiment) else e for e in experiments]


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
    index = build_index(root, config.condition, config.level)
    split = split_by_study(index, validation_fraction=config.train.validation_fraction,
                           seed=config.train.seed)
    return index, split


def _row(experiment: Experiment, report: Mapping[str, Any], run_dir: Path) -> dict[str, Any]:
    m = report["model"]
    manifest = RunDir(run_dir).read_manifest()
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


def rerun_command(root: str | Path, run_dir: str | Path) -> str:
    """The shell command that trains a row again from its saved config.

    Examples
    --------
    >>> rerun_command("/data/rsna", "runs/exp/no_flip")
    'lss train --data /data/rsna --config runs/exp/no_flip/config.json --run runs/exp/no_flip-rerun'
    """
    run = RunDir(run_dir)
    return (f"lss train --data {root} --config {run.config_file} "
            f"--run {run.path.with_name(run.path.name + '-rerun')}")


def train_row(root: str | Path, experiment: Experiment, out_dir: str | Path,
              index: pd.DataFrame, split: pd.DataFrame, *, cache_dir=None, workers=None,
              overwrite: bool = False, verbose: int = 0, retrain_localiser: bool = False,
              train_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train and score one row into ``out_dir/<name>``; its line of the table.

    An ROI row first gets the localiser of ``out_dir/localiser`` (trained on the training
    split with the row's ``config.localiser``, or reused), which places the crops of the
    validation studies and of training studies without a coordinate row.
    """
    out_dir = Path(out_dir)
    run_dir = out_dir / experiment.name
    val_centres, loc_path = None, None
    localiser = experiment.config.localiser
    if experiment.roi:
        loc_path, val_centres, _ = fit_split_localiser(
            root, out_dir, index, split, config=localiser, cache_dir=cache_dir,
            workers=workers, retrain=retrain_localiser)
        index = fill_training_centres(root, index, split, loc_path, cache_dir=cache_dir,
                                      workers=workers)
    train(root, experiment.config, run_dir, cache_dir=cache_dir, index=index, workers=workers,
          overwrite=overwrite, verbose=verbose, val_centres=val_centres,
          **dict(train_options or {}))
    if loc_path is not None:
        install_localiser(loc_path, run_dir)
    report = evaluate_run(run_dir, root, cache_dir=cache_dir, workers=workers, figures=False)
    if experiment.roi and report.get("centres") != "localiser":
        raise RuntimeError(f"ROI row {experiment.name} was not evaluated at localiser centres")
    RunDir(run_dir).write_manifest({"experiment": {
        "name": experiment.name, "description": experiment.description,
        "changes": experiment.changes, "centres": report.get("centres", "whole slice"),
        "localiser": localiser.to_dict() if experiment.roi else None,
        "rerun": rerun_command(Path(root).resolve(), run_dir.resolve())}})
    return _row(experiment, report, run_dir)


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
    progress_bar: bool | None = None,
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
        The localiser settings of every row (they shape only the ROI rows); default:
        each row's ``config.localiser``.
    overwrite : bool
        Replace existing run folders.
    retrain_localiser : bool
        Train the localiser again even where ``out_dir/localiser`` holds one trained with
        the same settings on the same training studies (see
        :func:`lss.localiser.fit_split_localiser`).
    train_options : mapping, optional
        Further keywords of :func:`lss.train.train` for every row, e.g. ``loader`` (from
        :func:`lss.device.loader_settings`) on a GPU.
    n_boot : int
        Paired bootstrap resamples of the validation studies for the interval of each
        row's difference from the reference row (0: none).
    progress : callable or None
        Called with one line per finished row.
    progress_bar : bool, optional
        A bar over the rows (:func:`lss.progress.bar`), the lines written above it.
        None: where :func:`lss.progress.shows` says and ``verbose=0`` (so that it never
        interleaves with Keras' own epoch output); True always, False never.

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
    experiments = _with_localiser(
        list(experiments if experiments is not None else default_experiments()), localiser)
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
    kw = dict(cache_dir=cache_dir, workers=workers, overwrite=overwrite, verbose=verbose,
              retrain_localiser=retrain_localiser, train_options=train_options)
    rows = []
    show = progress_bar if progress_bar is not None else (None if verbose == 0 else False)
    with bar(total=len(experiments), desc="experiments", unit="row", enabled=show) as rows_bar:
        say = _teller(progress, rows_bar)
        for e in plain:  # TensorFlow's retracing notes are filtered (lss.model)
            t0 = time.perf_counter()
            rows.append(train_row(root, e, out_dir, index, split, **kw))
            say(_line(rows[-1], time.perf_counter() - t0))
        rows += _combined_rows(combos, rows, plain, root, out_dir, index, split, say, kw)
    reference = rows[0]["run_dir"]
    report = json.loads((Path(reference) / "metrics.json").read_text())
    is_train = (split["split"] == "train").to_numpy()
    y = index["label"].to_numpy(int)
    table = pd.DataFrame(rows + reference_rows(report, y[is_train], y[~is_train]))
    table = add_differences(table, plain[0].name, n_boot=n_boot, seed=first.train.seed)
    source = data_source(root)
    table.attrs["data"] = source
    loc = RunDir(out_dir / "localiser").read_manifest().get("val_errors")
    if loc:
        table.attrs["localiser"] = loc
    _save_table(table, out_dir, experiments, plain[0].name)
    return table


def _teller(progress: Callable[[str], None] | None, rows_bar) -> Callable[[str], None]:
    """``say(line)`` for each finished row: ``progress(line)`` (written above the bar where
    it shows, so that the bar is not torn), then one step of the bar."""
    def say(line: str) -> None:
        if progress is not None and not rows_bar.disable:
            with rows_bar.external_write_mode():
                progress(line)
        elif progress is not None:
            progress(line)
        rows_bar.update()
    return say


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
        out.append(train_row(root, merged, out_dir, index, split, **kw))
        say(_line(out[-1], time.perf_counter() - t0))
    return out


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
    RunDir(out_dir).write_manifest({"kind": "experiments", "data": table.attrs["data"],
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
    (experiment,) = _with_localiser([experiment], localiser)
    index, split = shared_split(root, experiment.config)
    out_dir.mkdir(parents=True, exist_ok=True)
    return train_row(root, experiment, out_dir, index, split, cache_dir=cache_dir,
                     workers=workers, overwrite=overwrite, verbose=verbose,
                     train_options=train_options)




def train_roi_level(root: str | Path, out_dir: str | Path, base: Config, *, epochs: int,
                    learning_rate: float, crop_mm: float, level_slices: int,
                    localiser: LocaliserConfig, cache_dir: str | Path | None = None,
                    reuse: bool = False) -> Path:
    """The region-of-interest model that learns (the ``roi_level`` row), trained alone.

    Chapters 5 and 7 analyse it: it is :func:`default_experiments`' ``roi_level`` row of
    ``base`` at this budget, on the same split, with a localiser trained again on that
    split (``out_dir/localiser``). ``reuse``: keep a finished, evaluated run of
    ``out_dir/roi_level`` trained with the same settings instead of training it again
    (a chapter opened after the one that trained it). Returns the run folder.
    """
    rows = default_experiments(base, epochs=epochs, learning_rate=learning_rate,
                               crop_mm=crop_mm, level_slices=level_slices)
    (row,) = _with_localiser([e for e in rows if e.name == "roi_level"], localiser)
    run = RunDir(Path(out_dir) / "roi_level")
    if reuse and run.metrics().is_file() and run.config_file.is_file() \
            and run.read_config() == row.config:
        return run.path
    index, split = shared_split(root, rows[0].config)
    fit_split_localiser(root, out_dir, index, split, config=localiser, cache_dir=cache_dir,
                        retrain=True)
    run_experiment(root, row, out_dir, cache_dir=cache_dir, localiser=localiser)
    return run.path
