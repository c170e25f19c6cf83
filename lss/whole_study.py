"""A whole-study run: one model per condition group, on one split, for many targets.

The competition grades 25 targets per study. :func:`train_whole_study` trains, into one
run folder, one region-of-interest CNN-LSTM per condition group that the chosen targets
touch (its rows from :func:`lss.data.build_target_index`):

* ``subarticular/``: both sides and every level on Axial T2, one model, the right
  recess mirrored into the left's place (``mirror``; patient left is on the image's
  right, so a flipped right-side crop looks like a left one), and a recess localiser
  (:func:`fit_recess_localiser`) that centres a new study's recess crops;
* ``spinal/``: the canal at every level on Sagittal T2/STIR;
* ``foraminal/``: both foramina at every level on Sagittal T1 (separate lateral
  slices, nothing mirrored).

All share one split by study (``splits.csv`` at the top, the per-row splits in each
group's folder), and the top ``manifest.json`` lists the groups and their targets. The
crop is centred on the coordinate table's point in training. :func:`whole_study_scores`
scores the validation studies with crops at the table's points too (the oracle);
:func:`evaluate_whole_study` also grades them as new studies, every crop placed from
the images (:mod:`lss.study_predict`).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lss.competition import (
    CONSTANT_KINDS,
    PROBA_COLUMNS,
    bootstrap_gap,
    score,
    solution_frame,
)
from lss.config import Config, LocaliserConfig
from lss.data import TensorCache, build_target_index, load_tables, split_rows
from lss.data.loader import WindowDataset
from lss.localiser import train_localiser
from lss.run import RunDir, data_source
from lss.scoring import SCORE_COLUMNS
from lss.submission import assemble, training_prior
from lss.train import split_by_study, train

__all__ = ["GROUP_CONDITION", "ROI_SETTINGS", "CPU_EPOCHS", "CPU_LEARNING_RATE",
           "RECESS_LOCALISER", "whole_study_config", "group_config", "study_split",
           "train_whole_study", "fit_recess_localiser",
           "whole_study_scores", "evaluate_whole_study"]

#: The condition a group's Config names (its runs grade every target of the group).
GROUP_CONDITION = {"subarticular": "left_subarticular_stenosis",
                   "spinal": "spinal_canal_stenosis",
                   "foraminal": "left_neural_foraminal_narrowing"}


#: The region of interest every group's model grades: chapter 6's ``roi_level`` row.
ROI_SETTINGS = {"crop_mm": 40.0, "image_size": 64, "pooling": "flatten", "n_slices": 3}
#: On a CPU, the epochs and learning rate of a whole-study run (the chapters' CPU
#: budget of the ``roi_level`` row: the default phantom's 25 targets train in about
#: 8 minutes on 2 cores); on a GPU or TPU the paper's 20 epochs at its 1e-4.
CPU_EPOCHS = 10
CPU_LEARNING_RATE = 1e-3
#: The subarticular group's recess localiser (``Config.localiser`` of a whole-study
#: run, seeded with its training seed): on the default phantom (160 training
#: studies, left rows only) 96 pixels and 20 epochs placed the held-out left recesses a
#: median 1.5 pixels from the table's point in about 50 s on 2 cores, 64 pixels and 12
#: epochs 2.1; the offset from the canal point alone, 3.1 mm.
RECESS_LOCALISER = LocaliserConfig(image_size=96, epochs=20)


def whole_study_config(base: Config | None = None, *, epochs: int | None = None,
                       accelerator: dict | None = None) -> Config:
    """The default Config of a whole-study run on this device.

    ``base`` (default the paper's) with :data:`ROI_SETTINGS` and the recess localiser
    :data:`RECESS_LOCALISER` (seeded with ``base``'s seed); ``epochs`` if given,
    else :data:`CPU_EPOCHS` at :data:`CPU_LEARNING_RATE` on a CPU and the paper's
    budget on a GPU or TPU (``accelerator``: :func:`lss.device.describe_accelerator`).

    >>> cfg = whole_study_config(accelerator={"kind": "CPU"})
    >>> cfg.train.epochs, cfg.train.learning_rate, cfg.preprocess.crop_mm
    (10, 0.001, 40.0)
    >>> whole_study_config(accelerator={"kind": "GPU"}).train.epochs
    20
    """
    from lss.device import describe_accelerator, resolve_epochs

    accelerator = accelerator or describe_accelerator()
    cfg = (base or Config()).replace(**ROI_SETTINGS)
    cfg = cfg.replace(localiser=dataclasses.replace(RECESS_LOCALISER, seed=cfg.train.seed))
    on_cpu = accelerator["kind"] == "CPU"
    cfg = cfg.replace(epochs=resolve_epochs(epochs, accelerator, cpu_epochs=CPU_EPOCHS))
    return cfg.replace(learning_rate=CPU_LEARNING_RATE) if on_cpu else cfg


def group_config(base: Config, group: str) -> Config:
    """``base`` for one group: no horizontal flip (the label names a side), and the
    group's condition in the config (the level field is not used: rows carry theirs)."""
    if group not in GROUP_CONDITION:
        raise ValueError(f"Unknown group {group!r}; expected one of {list(GROUP_CONDITION)}")
    if base.preprocess.crop_mm is None:
        raise ValueError("a whole-study run crops a region of interest: set crop_mm")
    return base.replace(condition=GROUP_CONDITION[group], horizontal_flip=False)


def study_split(index: pd.DataFrame, *, validation_fraction: float, seed: int
                ) -> pd.DataFrame:
    """One split by study for every group (``study_id``, ``label``, ``split``), stratified
    by each study's most frequent grade over its targets."""
    per_row = split_by_study(index, validation_fraction=validation_fraction, seed=seed)
    return per_row.drop_duplicates("study_id").reset_index(drop=True)


def train_whole_study(root: str | Path, run_dir: str | Path, base: Config, *,
                      targets: str | Sequence[str] = "all",
                      cache_dir: str | Path | None = None, workers: int | None = None,
                      overwrite: bool = False, reuse: bool = False,
                      verbose: int = 0) -> dict[str, Any]:
    """Train one model per condition group that ``targets`` touch, on one split.

    ``base`` gives the model and budget (a region-of-interest Config, e.g. chapter 6's
    ``roi_level`` row). ``reuse``: keep a finished whole-study run of the same data,
    Config and targets in ``run_dir`` instead of training it again (a chapter run a
    second time); anything else there is trained over. Returns the top manifest: the
    groups, their targets and row counts, the split's size.
    """
    run = RunDir(run_dir)
    index = build_target_index(root, targets)
    if reuse and _finished(run, root, base, index.attrs["targets"]):
        return run.read_manifest()
    if (overwrite or reuse) and run.path.exists():
        shutil.rmtree(run.path)  # no stale level finder or scores of another split
    split = study_split(index, validation_fraction=base.train.validation_fraction,
                        seed=base.train.seed)
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_split(split)
    groups = {}
    for group in GROUP_CONDITION:
        rows = index[index["group"] == group].reset_index(drop=True)
        if rows.empty:
            continue
        train(root, group_config(base, group), run.path / group, index=rows,
              study_split=split[["study_id", "split"]], cache_dir=cache_dir,
              workers=workers, overwrite=overwrite, verbose=verbose)
        groups[group] = {"targets": sorted(rows["target"].unique()), "rows": len(rows)}
        if group == "subarticular":
            groups[group]["localiser"] = fit_recess_localiser(
                root, run, rows, split, config=base.localiser, cache_dir=cache_dir,
                workers=workers)
    manifest = {"kind": "whole_study", "data": data_source(root),
                "targets": index.attrs["targets"], "groups": groups,
                "config": base.to_dict(), "n_studies": len(split),
                "excluded": index.attrs["excluded"]}
    run.write_manifest(manifest)
    return manifest


def fit_recess_localiser(root, run: RunDir, rows: pd.DataFrame, split: pd.DataFrame, *,
                         config: LocaliserConfig, cache_dir=None, workers=None
                         ) -> dict[str, Any]:
    """The subarticular group's recess localiser (``subarticular/localiser.keras``),
    trained on the training studies' recess points, both sides (the right mirrored).

    A new study's recess crop is centred where it finds the recess on the chosen axial
    slice (:func:`lss.study_predict.place_targets`). Returns its manifest entry.
    """
    train_ids = split.loc[split["split"] == "train", "study_id"]
    mine = rows[rows["study_id"].isin(train_ids)].reset_index(drop=True)
    result = train_localiser(root, mine, RunDir(run.path / "subarticular").localiser,
                             config=config, cache_dir=cache_dir, workers=workers)
    return {"n_train": result.n_train, "config": config.to_dict()}


def _finished(run: RunDir, root, base: Config, targets: list[str]) -> bool:
    """Whether ``run`` is a finished whole-study run of this data, Config and targets."""
    if not run.manifest.is_file():
        return False
    manifest = run.read_manifest()
    return (manifest.get("kind") == "whole_study" and manifest.get("targets") == targets
            and Config.from_dict(manifest.get("config", {})) == base
            and manifest.get("data", {}).get("root") == data_source(root)["root"]
            and all(RunDir(run.path / g).model.is_file() for g in manifest["groups"]))


def _group_predictions(run: RunDir, group: str, root: Path, cache_dir) -> pd.DataFrame:
    """A group model's rows for its validation rows (crops at the table's points)."""
    grun = RunDir(run.path / group)
    model, config = grun.load()
    index = build_target_index(root, run.read_manifest()["groups"][group]["targets"])
    val = split_rows(index, run.read_split()[["study_id", "split"]])
    val = val[val["split"] == "val"].reset_index(drop=True)
    cache = TensorCache(root, config.preprocess, cache_dir=cache_dir)
    cache.prepare(val, workers=1)
    proba = _predict_windows(model, cache.paths(val), val["mirror"], config.train.batch_size)
    rows = pd.DataFrame(proba, columns=list(PROBA_COLUMNS))
    rows.insert(0, "row_id", [f"{s}_{t}" for s, t in zip(val["study_id"], val["target"],
                                                         strict=True)])
    return rows


def _predict_windows(model, paths: list, mirror, batch_size: int) -> np.ndarray:
    """Probabilities for cached windows, mirrored where ``mirror`` says."""
    ds = WindowDataset(paths, batch_size=batch_size, mirror=np.asarray(mirror, bool))
    return np.asarray(model.predict(ds, verbose=0))


def _validation_submissions(run: RunDir, root: Path, cache_dir
                            ) -> tuple[pd.DataFrame, list[int], dict[str, pd.DataFrame]]:
    """(solution, validation study ids, submissions) of a run's validation studies: the
    model at the table's points (``model``) and each constant of :data:`CONSTANT_KINDS`;
    the rows of targets without a model come from the weighted prior."""
    manifest, split = run.read_manifest(), run.read_split()
    train_df = load_tables(root).train
    in_train = train_df["study_id"].isin(split.loc[split["split"] == "train", "study_id"])
    val_ids = split.loc[split["split"] == "val", "study_id"].astype(int).tolist()
    solution = solution_frame(train_df[train_df["study_id"].isin(val_ids)])
    predicted = pd.concat([_group_predictions(run, g, root, cache_dir)
                           for g in manifest["groups"]], ignore_index=True)
    answers = {"model": (predicted, "weighted_prior"),
               **{kind: (None, kind) for kind in CONSTANT_KINDS}}
    subs = {name: assemble(val_ids, pred, training_prior(train_df[in_train], kind=kind))[0]
            for name, (pred, kind) in answers.items()}
    return solution, val_ids, subs


def _score_table(solution: pd.DataFrame, subs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row of :data:`lss.scoring.SCORE_COLUMNS` per submission."""
    rows = {}
    for name, sub in subs.items():
        result = score(solution, sub)
        rows[name] = {c: result[c] for c in SCORE_COLUMNS}
    return pd.DataFrame(rows).T


def whole_study_scores(run_dir: str | Path, root: str | Path | None = None, *,
                       cache_dir: str | Path | None = None) -> pd.DataFrame:
    """The competition's score of a whole-study run's validation studies, beside the
    training prior, the uniform answer and the weighted prior (the rows of targets
    without a model from the weighted prior). Crops at the table's points."""
    run = RunDir(run_dir)
    solution, val_ids, subs = _validation_submissions(run, run.data_root(root), cache_dir)
    table = _score_table(solution, subs)
    table.attrs.update(n_studies=len(val_ids), centres="coordinate table",
                       groups=list(run.read_manifest()["groups"]))
    return table


def evaluate_whole_study(run_dir: str | Path, root: str | Path | None = None, *,
                         cache_dir: str | Path | None = None, n_resamples: int = 2000,
                         seed: int = 0
                         ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """A whole-study run's validation studies scored end to end, the competition's way.

    Returns three tables, each also written to the run folder:

    * ``scores`` (``competition_scores.csv``): rows ``levels found`` (graded as new
      studies by :func:`lss.study_predict.predict_whole_study`; only when the run has
      its level finder), ``table's points`` (crops at the coordinate table's points),
      ``prior``, ``uniform`` and ``weighted_prior`` (the best constant);
    * ``gap`` (``competition_gap.csv``): :func:`lss.competition.bootstrap_gap` of the
      first model row against the weighted prior, by study;
    * ``places`` (``place_errors.csv``): :func:`lss.locate.place_errors` of every crop
      the found route placed (None without a level finder).
    """
    from lss.locate import place_errors
    from lss.study_predict import predict_whole_study

    run = RunDir(run_dir)
    root = run.data_root(root)
    solution, val_ids, subs = _validation_submissions(run, root, cache_dir)
    routes, places = {"table's points": subs.pop("model")}, None
    if run.level_finder.is_file():
        found, report = predict_whole_study(run.path, root, split="train", study_ids=val_ids)
        routes = {"levels found": found, **routes}
        places = place_errors(report.attrs["places"], root)
        places.to_csv(run.path / "place_errors.csv", index=False)
    table = _score_table(solution, {**routes, **subs})
    first = next(iter(routes))
    gap = bootstrap_gap(solution, routes[first], subs["weighted_prior"],
                        n_resamples=n_resamples, seed=seed)
    gap.attrs["route"] = first
    table.attrs.update(n_studies=len(val_ids), groups=list(run.read_manifest()["groups"]))
    table.to_csv(run.path / "competition_scores.csv", index_label="answer")
    gap.to_csv(run.path / "competition_gap.csv", index_label="term")
    return table, gap, places
