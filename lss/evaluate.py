"""Evaluating a trained run and predicting new studies.

:func:`evaluate_run` scores a run folder's best model on its own validation split,
beside the two reference points, and writes ``metrics.json``, ``predictions.csv`` and
figures. :func:`predict` grades the studies of a test split (or one study folder) and
returns rows in the RSNA 2024 submission format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lss.config import SEVERITIES
from lss.data import (
    DataError,
    TensorCache,
    build_index,
    level_window,
    load_tables,
    scan_series,
    series_dir,
)
from lss.data.dicom import first_file_header, list_dicom_files
from lss.data.loader import WindowDataset
from lss.run import RunDir, data_source

__all__ = ["predict_proba", "evaluate_run", "choose_series", "predict", "predict_submission",
           "SUBMISSION_COLUMNS"]

#: Columns of the RSNA 2024 submission file.
SUBMISSION_COLUMNS = ("row_id", "normal_mild", "moderate", "severe")


def predict_proba(model, volumes: np.ndarray | list[Path], *, batch_size: int = 8
                  ) -> np.ndarray:
    """Class probabilities (N, 3) for windows given as an array (N, Z, S, S) or cache paths."""
    if isinstance(volumes, np.ndarray):
        return np.asarray(model.predict(volumes[..., None], batch_size=batch_size, verbose=0))
    return np.asarray(model.predict(WindowDataset(volumes, batch_size=batch_size), verbose=0))


def evaluate_run(
    run_dir: str | Path,
    root: str | Path | None = None,
    *,
    out_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    figures: bool = True,
    levels: str = "table",
) -> dict[str, Any]:
    """Score a run's best model on its validation split, beside both reference points.

    Parameters
    ----------
    run_dir : str or Path
        A folder written by :func:`lss.train.train`.
    root : str or Path, optional
        The data root; defaults to the one recorded in the run's manifest.
    out_dir : str or Path, optional
        Where ``metrics.json``, ``predictions.csv`` and figures go (default ``run_dir``;
        with ``levels="found"``, its ``levels-found/`` folder).
    levels : {"table", "found"}
        Which axial slice each validation study is graded on: the coordinate table's
        (the oracle a new study does not have) or the one the run's level finder finds
        (:func:`lss.locate.find_levels`), as :func:`predict` grades a new study. The
        report then gives, under ``levels``, how often the found slice is the table's.

    Returns
    -------
    dict
        :func:`lss.metrics.evaluate`'s report plus ``data`` (the data source, so every
        number says whether it came from the phantom or real scans). For a run that
        crops a region of interest (``crop_mm`` set), the crops are centred where the
        run's localiser (:attr:`lss.run.RunDir.localiser`) points, never at the
        validation studies' coordinates; ``centres`` says which was used.
    """
    from lss.metrics import evaluate

    if levels not in ("table", "found"):
        raise ValueError(f"levels must be 'table' or 'found', got {levels!r}")
    run = RunDir(run_dir)
    out_dir = Path(out_dir) if out_dir else (
        run.path if levels == "table" else run.path / "levels-found")
    root = run.data_root(root)
    model, config = run.load()
    index = build_index(root, config.condition, config.level)
    merged = _match_split(run, index, root)
    merged = merged[~merged["study_id"].isin(run.failed_studies())]  # listed in errors.csv
    val = merged[merged["split"] == "val"].reset_index(drop=True)
    y_train = merged.loc[merged["split"] == "train", "label"].to_numpy()
    found_levels = None
    if levels == "found":
        val, found_levels = _found_slices(run, root, val, config.level)

    centres, centred_by = None, None
    if config.preprocess.crop_mm is not None:
        from lss.localiser import run_centres

        centres, centred_by = run_centres(run, root, val, cache_dir=cache_dir, workers=workers)
    cache = TensorCache(root, config.preprocess, cache_dir=cache_dir)
    cache.prepare(val, centres=centres, workers=workers)
    proba = predict_proba(model, cache.paths(val, centres), batch_size=config.train.batch_size)
    report = evaluate(val["label"].to_numpy(), proba, y_train=y_train)
    source = data_source(root)
    report["data"] = source
    if centred_by is not None:
        report["centres"] = centred_by
    report["levels"] = found_levels or {"source": "coordinate table"}

    out_dir.mkdir(parents=True, exist_ok=True)
    run.write_metrics(report, out_dir)
    run.write_predictions(val["study_id"], val["label"], proba, out_dir)
    if figures:
        _save_figures(run, out_dir, report, source["label"])
    if levels == "table":
        run.write_manifest({"status": "evaluated", "metrics": {
            k: report[k] for k in ("model", "majority", "prior", "n_val", "n_train")}})
    return report


def _found_slices(run: RunDir, root: Path, val: pd.DataFrame, level: str
                  ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``val`` on the slices the run's level finder finds, and how they compare with
    the table's (share on the labelled slice, within one slice, median mm off)."""
    from lss.levels import load_level_localiser
    from lss.locate import find_study_levels, level_hits, summarise_hits, with_found_levels

    if not run.level_finder.is_file():
        raise DataError(f"Run {run.path} has no {run.LEVEL_FINDER}: fit one with "
                        f"lss levels --run {run.path} --data {root}")
    found = find_study_levels(load_level_localiser(run.level_finder), root,
                              val["study_id"].tolist())
    hits = level_hits(found[found["level"] == level], root)
    summary = summarise_hits(hits).iloc[0].to_dict()
    return with_found_levels(val, found, level), {"source": "level finder", **summary}


def _match_split(run: RunDir, index: pd.DataFrame, root: Path) -> pd.DataFrame:
    """``index`` with the run's split, checked against ``splits.csv``.

    The studies of ``root`` must be exactly those the run was trained and validated on,
    with the same labels: a validation study missing from ``root`` would be scored
    silently fewer, an extra study would be scored although never split, and a label
    changed since training would score the run against another truth.
    """
    split = run.read_split()
    merged = index.merge(split[["study_id", "split", "label"]].rename(
        columns={"label": "split_label"}), on="study_id", how="left")
    extra = merged.loc[merged["split"].isna(), "study_id"].tolist()
    if extra:
        raise DataError(f"Studies {extra[:5]} of {root} are not in the run's split: "
                        f"different data?")
    missing = sorted(set(split["study_id"]) - set(index["study_id"]))
    if missing:
        n_val = int(split.loc[split["study_id"].isin(missing), "split"].eq("val").sum())
        raise DataError(f"{len(missing)} of the run's studies ({n_val} of them validation "
                        f"studies) are not labelled in {root}: {missing[:5]}; evaluate on the "
                        f"data the run was trained on")
    changed = merged[merged["label"].to_numpy() != merged["split_label"].to_numpy()]
    if len(changed):
        what = ", ".join(f"{r.study_id} ({SEVERITIES[int(r.split_label)]} -> "
                         f"{SEVERITIES[int(r.label)]})" for r in changed.head(5).itertuples())
        raise DataError(f"{len(changed)} label(s) of {root} changed since the run was trained: "
                        f"{what}")
    return merged.drop(columns="split_label")


def _save_figures(run: RunDir, out_dir: Path, report: dict, label: str) -> None:
    """The confusion matrix and the training history, as PNG files beside metrics.json."""
    # Figures built on matplotlib.figure.Figure, not pyplot: no global backend switch
    # (which would turn off inline plots in the notebook that called us).
    from matplotlib.figure import Figure

    from lss.viz.results import plot_confusion_matrix, plot_history

    fig = Figure(figsize=(4.5, 4))
    plot_confusion_matrix(np.asarray(report["model"]["confusion_matrix"]), ax=fig.subplots(),
                          title="Validation confusion matrix", data_label=label)
    fig.savefig(out_dir / "confusion_matrix.png", dpi=150, bbox_inches="tight")
    history = run.read_history()
    if len(history):
        fig = Figure(figsize=(7.3, 3.2))
        plot_history(history, axes=fig.subplots(1, 2), data_label=label,
                     baseline_accuracy=report["majority"]["accuracy"])
        fig.savefig(out_dir / "history.png", dpi=150, bbox_inches="tight")


def choose_series(candidates: list[Path]) -> Path:
    """The series to grade when no coordinate row says which: the one with most slices.

    A study can have several Axial T2 series (a full stack and short per-disc stacks);
    the longest is the most likely to cover the level. Ties go to the lowest series id.
    """
    if not candidates:
        raise DataError("No Axial T2 series to choose from")
    return max(sorted(candidates, key=lambda p: int(p.name)),
               key=lambda p: len(list_dicom_files(p)))


def _series_description(folder: Path) -> str:
    return str(first_file_header(folder, ["SeriesDescription"]).get("SeriesDescription", ""))


def _longest(folders: list[Path]) -> Path | None:
    return choose_series(folders) if folders else None


def _study_requests(root: Path | None, study_dir: Path | None, split: str,
                    failed: list[dict] | None = None
                    ) -> list[tuple[int, list[Path], Path | None]]:
    """(study_id, Axial T2 folders, Sagittal T2/STIR folder or None) per study to predict.

    Series come from ``<split>_series_descriptions.csv`` (or, for one study folder, from
    each series' DICOM SeriesDescription); the coordinate table is never read. With a
    ``failed`` list, a study of a root whose series are missing is appended to it
    (``study_id``, ``reason``) instead of ending the call.
    """
    if study_dir is not None:
        study_dir = Path(study_dir)
        if not study_dir.is_dir():
            raise DataError(f"Study folder not found: {study_dir}")
        try:
            study_id = int(study_dir.name)
        except ValueError as exc:
            raise DataError(f"Study folder name must be the study_id: {study_dir}") from exc
        described = {p: _series_description(p) for p in sorted(study_dir.iterdir())
                     if p.is_dir()}
        axial = [p for p, d in described.items() if d == "Axial T2"]
        if not axial:
            raise DataError(f"Study {study_id}: no Axial T2 series in {study_dir}")
        sagittal = [p for p, d in described.items() if d == "Sagittal T2/STIR"]
        return [(study_id, axial, _longest(sagittal))]
    assert root is not None
    tables = load_tables(root)
    series = tables.test_series if split == "test" else tables.series
    if series is None:
        raise DataError(f"No {split}_series_descriptions.csv under {root}")
    out = []
    for study_id, group in series.groupby("study_id", sort=True):
        try:
            out.append(_root_request(root, int(study_id), group, split))
        except DataError as exc:
            if failed is None:
                raise
            failed.append({"study_id": int(study_id), "reason": str(exc)})
    return out


def _root_request(root: Path, study_id: int, group: pd.DataFrame, split: str
                  ) -> tuple[int, list[Path], Path | None]:
    """One study's request from its rows of the series descriptions table."""
    folders = {d: [series_dir(root, study_id, s, split=split) for s in
                   sorted(group.loc[group["series_description"] == d, "series_id"])]
               for d in ("Axial T2", "Sagittal T2/STIR")}
    for f in folders["Axial T2"] + folders["Sagittal T2/STIR"]:
        if not f.is_dir():
            raise DataError(f"Study {study_id}: series folder {f} is missing")
    if not folders["Axial T2"]:
        raise DataError(f"Study {study_id}: no Axial T2 series listed in {split} tables")
    return study_id, folders["Axial T2"], _longest(folders["Sagittal T2/STIR"])


def _level_finder(run: RunDir, level: str, levels: str):
    """The run's level finder for ``levels="found"``, None for ``"middle"``."""
    if levels == "middle":
        return None
    if levels != "found":
        raise ValueError(f"levels must be 'found' or 'middle', got {levels!r}")
    if not run.level_finder.is_file():
        raise DataError(f"Run {run.path} has no {run.LEVEL_FINDER} to find {level} in new "
                        f"studies: fit one with lss levels --run {run.path} --data ROOT, or "
                        f"predict with --levels middle")
    from lss.levels import load_level_localiser

    return load_level_localiser(run.level_finder)


def _level_slice(finder, request: tuple, level: str) -> tuple[Path, int | None]:
    """(Axial T2 folder, instance or None) of the graded level in one requested study.

    With a level finder (:mod:`lss.locate`): the slice found from the study's Sagittal
    T2/STIR series; without one: the middle slice of the longest Axial T2 series, the
    paper's model's only option when no level finder exists.
    """
    study_id, axial, sagittal = request
    if finder is None:
        return choose_series(axial), None
    from lss.locate import find_levels

    if sagittal is None:
        raise DataError(f"Study {study_id}: no Sagittal T2/STIR series to find {level} on")
    found = find_levels(finder, sagittal, axial, study_id=study_id)
    row = found.loc[found["level"] == level].iloc[0]
    folder = next(a for a in axial if int(a.name) == int(row["series_id"]))
    return folder, int(row["instance_number"])


def predict(
    run_dir: str | Path,
    root: str | Path | None = None,
    *,
    study_dir: str | Path | None = None,
    split: str = "test",
    levels: str = "found",
    on_error: str = "raise",
) -> pd.DataFrame:
    """Grade new studies; rows in the RSNA 2024 submission format.

    A new study has no coordinate row: with ``levels="found"`` (the default) the run's
    level finder (:attr:`lss.run.RunDir.level_finder`, fitted by ``lss levels``) finds
    the graded level's Axial T2 slice from the Sagittal T2/STIR series
    (:func:`lss.locate.find_levels`), and the window is centred there. With
    ``levels="middle"`` the window is centred on the middle slice of the longest Axial
    T2 series (:func:`choose_series`), which in a series of per-disc stacks is usually
    not the level: only for a run without a level finder. A run that crops a region of
    interest (``crop_mm`` set) crops where its stored localiser
    (:attr:`lss.run.RunDir.localiser`) points on that slice.

    Parameters
    ----------
    run_dir : str or Path
        A trained run.
    root : str or Path, optional
        A data root with ``<split>_series_descriptions.csv`` and ``<split>_images/``.
    study_dir : str or Path, optional
        Or one study folder (``.../<study_id>/<series_id>/*.dcm``); series are
        recognised by their DICOM SeriesDescription.
    split : {"test", "train"}
    levels : {"found", "middle"}
    on_error : {"raise", "report"}
        A study whose series are missing or fail to read: end the call, or leave it
        out of the rows and list it (``study_id``, ``reason``) in ``attrs["failed"]``.

    Returns
    -------
    DataFrame
        Columns ``row_id`` (``<study_id>_<target>``), ``normal_mild``, ``moderate``,
        ``severe``; one row per study, probabilities summing to 1.
    """
    if (root is None) == (study_dir is None):
        raise ValueError("Give exactly one of root and study_dir")
    if on_error not in ("raise", "report"):
        raise ValueError(f"on_error must be 'raise' or 'report', got {on_error!r}")
    run = RunDir(run_dir)
    model, config = run.load()
    failed: list[dict] | None = [] if on_error == "report" else None
    finder = _level_finder(run, config.level, levels)
    ids, headers, instances = [], [], []
    for request in _study_requests(Path(root) if root else None, study_dir, split, failed):
        try:
            folder, instance = _level_slice(finder, request, config.level)
            headers.append(scan_series(folder))
        except DataError as exc:
            if failed is None:
                raise
            failed.append({"study_id": request[0], "reason": str(exc)})
            continue
        ids.append(request[0])
        instances.append(instance)
    out = _grade(model, config, run, headers, instances, ids)
    out.attrs["failed"] = sorted(failed or [], key=lambda f: f["study_id"])
    return out


def _grade(model, config, run: RunDir, headers: list, instances: list, ids: list
           ) -> pd.DataFrame:
    """The model's rows for the studies' windows (centred by the run's localiser on a
    region-of-interest run)."""
    if not headers:
        return pd.DataFrame(columns=list(SUBMISSION_COLUMNS))
    centres: list = [None] * len(headers)
    if config.preprocess.crop_mm is not None:
        from lss.localiser import centres_for_series, load_run_localiser

        localiser = load_run_localiser(run)
        if localiser is None:
            raise DataError(f"Run {run.path} crops {config.preprocess.crop_mm} mm around the "
                            f"recess but has no {run.LOCALISER} to find it in new studies")
        centres = centres_for_series(localiser, headers, instances)
    volumes = np.stack([level_window(h, i, config.preprocess, centre_xy=c).volume
                        for h, i, c in zip(headers, instances, centres, strict=True)])
    # in float64: a float32 softmax divided by its float32 sum may still add up to 1 + 1 ulp
    proba = np.asarray(predict_proba(model, volumes, batch_size=config.train.batch_size),
                       dtype=np.float64)
    proba = proba / proba.sum(axis=1, keepdims=True)
    return pd.DataFrame({
        "row_id": [f"{sid}_{config.target}" for sid in ids],
        "normal_mild": proba[:, 0], "moderate": proba[:, 1], "severe": proba[:, 2],
    }, columns=list(SUBMISSION_COLUMNS))


def _training_labels(run: RunDir, root: Path | None) -> pd.DataFrame | None:
    """``train.csv`` of the run's training studies: from the data root the run records,
    else from ``root``; None where neither has one."""
    recorded = run.read_manifest().get("data", {}).get("root")
    for candidate in (recorded, root):
        if candidate and (Path(candidate) / "train.csv").is_file():
            train = load_tables(candidate).train
            split = run.read_split()
            ids = split.loc[split["split"] == "train", "study_id"]
            mine = train[train["study_id"].isin(ids)]
            return mine if len(mine) else train
    return None


def predict_submission(
    run_dir: str | Path,
    root: str | Path | None = None,
    *,
    study_dir: str | Path | None = None,
    split: str = "test",
    levels: str = "found",
    prior_kind: str = "weighted_prior",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The competition's submission: 25 rows for every study, from the images alone.

    The run's own target comes from :func:`predict`; every other target, and every
    target of a study whose series are missing or fail to read, comes from the training
    prior (:func:`lss.submission.training_prior`, by default the prior weighted 1/2/4,
    the best constant for the competition's metric) and is listed with its reason in
    the report: never a crash, never a silent gap. Without training labels at hand the
    prior is the uniform answer, and the report says so.

    Returns
    -------
    submission, report : DataFrame
        :func:`lss.submission.assemble`'s: rows in ``sample_submission.csv``'s order
        (studies by id), and one report row per filled (study, target).
    """
    from lss.submission import assemble, training_prior

    run = RunDir(run_dir)
    rows = predict(run.path, root, study_dir=study_dir, split=split, levels=levels,
                   on_error="report")
    config = run.read_config()
    train = _training_labels(run, Path(root) if root else None)
    kind = prior_kind if train is not None else "uniform"
    source = (f"the training prior ({kind})" if train is not None
              else "the uniform answer (no training labels found)")
    reasons = {f["study_id"]: f"{f['reason'].splitlines()[0]}; {source}"
               for f in rows.attrs["failed"]}
    graded = [int(r.split("_", 1)[0]) for r in rows["row_id"]]
    reasons.update({sid: f"not graded by this run (it grades {config.target}); {source}"
                    for sid in graded})
    studies = sorted(graded + [f["study_id"] for f in rows.attrs["failed"]])
    return assemble(studies, rows, training_prior(train, kind=kind), reasons=reasons)
