"""Write a whole phantom in the RSNA 2024 Kaggle layout."""

from __future__ import annotations

import datetime as _dt
import multiprocessing
import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

import lss
from lss.config import SERIES_DESCRIPTIONS
from lss.phantom.marker import MARKER_NAME, read_marker, write_marker
from lss.phantom.plan import StudyPlan, child_seeds, plan_sampled_study, plan_table_study
from lss.phantom.render import render_study
from lss.phantom.stats import label_columns
from lss.progress import bar

__all__ = ["make_phantom", "sample_tables", "TABLE_FILES"]

#: The tables of the Kaggle layout that a phantom writes.
TABLE_FILES: tuple[str, ...] = (
    "train.csv",
    "train_series_descriptions.csv",
    "train_label_coordinates.csv",
    "test_series_descriptions.csv",
    "sample_submission.csv",
)
_OUTPUTS = (*TABLE_FILES, "train_images", "test_images", MARKER_NAME)
_COORD_COLUMNS = ["study_id", "series_id", "instance_number", "condition", "level", "x", "y"]
_ID_LOW, _ID_HIGH = 1_000_000, 4_294_967_295  # real ids are unsigned 32-bit-ish integers


# ----------------------------------------------------------------------------- tasks


def _unique_ints(
    rng: np.random.Generator, n: int, low: int, high: int, exclude: set[int]
) -> list[int]:
    out: list[int] = []
    seen = set(exclude)
    while len(out) < n:
        for v in rng.integers(low, high, size=n - len(out)).tolist():
            if v not in seen:
                seen.add(v)
                out.append(v)
    return out


def _sampled_tasks(n_studies: int, n_test: int, seed: int) -> list[tuple]:
    """(study_id, series_ids, seed, split) per study; seeds from SeedSequence(seed)."""
    master = np.random.SeedSequence(seed)
    ids_seed, study_root = child_seeds(master, 2)
    rng = np.random.default_rng(ids_seed)
    total = n_studies + n_test
    study_ids = _unique_ints(rng, total, _ID_LOW, _ID_HIGH, set())
    series_ids = _unique_ints(rng, 5 * total, 10_000, _ID_HIGH, set(study_ids))
    seeds = child_seeds(study_root, total)
    return [
        (
            study_ids[i],
            series_ids[5 * i : 5 * i + 5],
            seeds[i],
            "train" if i < n_studies else "test",
        )
        for i in range(total)
    ]


def _plan(task: tuple) -> StudyPlan:
    kind, *args = task
    if kind == "sampled":
        study_id, series_ids, seed, split = args
        return plan_sampled_study(study_id, series_ids, seed, split=split)
    study_id, labels, series, coords, seed, split = args
    return plan_table_study(study_id, labels, series, coords, seed, split=split)


def _run(task_and_root: tuple[tuple, str]) -> tuple[StudyPlan, int]:
    """Worker: plan and render one study; returns the plan (without pixels) and the file count."""
    task, root = task_and_root
    plan = _plan(task)
    return plan, render_study(plan, root)


def _check_spawnable(workers: int) -> None:
    """Fail early, and clearly, where 'spawn' workers could not start.

    A spawned worker re-imports the parent's main script by its path; for code read
    from stdin that path does not exist and every worker would die on start.
    """
    main = sys.modules.get("__main__")
    if getattr(getattr(main, "__spec__", None), "name", None) is not None:
        return  # started with -m: workers import the module by name
    path = getattr(main, "__file__", None)
    if path is not None and not Path(path).is_file():
        raise RuntimeError(
            f"workers={workers} starts 'spawn' processes, which re-import the main script "
            f"{path!r}, and that is not a file (code from stdin?). Run the code from a file "
            "(with an `if __name__ == '__main__':` guard) or a notebook, or pass workers=1."
        )


def _map(tasks: list[tuple], root: Path, workers: int, *, progress: bool | None = None
         ) -> list[tuple[StudyPlan, int]]:
    """Plan and render every task, here or in ``workers`` spawned processes, in order,
    with a bar over the studies (:func:`lss.progress.bar`)."""
    jobs = [(t, str(root)) for t in tasks]
    if workers == 1 or len(jobs) <= 1:
        return [_run(j) for j in bar(jobs, desc="phantom", unit="study", enabled=progress)]
    _check_spawnable(workers)
    ctx = multiprocessing.get_context("spawn")
    chunk = max(1, len(jobs) // (workers * 4))
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        return list(bar(pool.map(_run, jobs, chunksize=chunk), total=len(jobs),
                        desc="phantom", unit="study", enabled=progress))


# ----------------------------------------------------------------------------- tables


def _tables_from_plans(plans: Iterable[StudyPlan]) -> dict[str, Any]:
    import pandas as pd

    plans = list(plans)
    columns = label_columns()
    train = [p for p in plans if p.split == "train"]
    test = [p for p in plans if p.split == "test"]
    labels = pd.DataFrame(
        [[p.study_id] + [p.labels[c] for c in columns] for p in train],
        columns=["study_id", *columns],
    )
    for c in columns:
        labels[c] = labels[c].astype(object).where(labels[c].notna(), np.nan)

    def series_frame(group: list[StudyPlan]) -> pd.DataFrame:
        rows = [
            (p.study_id, s.header.series_id, s.header.description) for p in group for s in p.series
        ]
        frame = pd.DataFrame(rows, columns=["study_id", "series_id", "series_description"])
        return frame.sort_values(["study_id", "series_id"], kind="stable").reset_index(drop=True)

    coords = pd.DataFrame([c for p in train for c in p.coordinates], columns=_COORD_COLUMNS)
    coords = coords.astype(
        {
            "study_id": "int64",
            "series_id": "int64",
            "instance_number": "int64",
            "x": "float64",
            "y": "float64",
        }
    )
    coords = coords.sort_values(
        ["study_id", "series_id", "instance_number", "condition", "level"], kind="stable"
    )
    submission = pd.DataFrame(
        [(f"{p.study_id}_{c}", 1 / 3, 1 / 3, 1 / 3) for p in test for c in sorted(columns)],
        columns=["row_id", "normal_mild", "moderate", "severe"],
    )
    return {
        "train.csv": labels.sort_values("study_id", kind="stable").reset_index(drop=True),
        "train_series_descriptions.csv": series_frame(train),
        "train_label_coordinates.csv": coords.reset_index(drop=True),
        "test_series_descriptions.csv": series_frame(test),
        "sample_submission.csv": submission,
    }


def sample_tables(n_studies: int, *, seed: int = 0, n_test_studies: int = 0) -> dict[str, Any]:
    """The tables a sampled phantom would have, without rendering any image.

    ``make_phantom(out, n_studies=n, seed=s, n_test_studies=t)`` writes exactly
    these tables (same ids, labels, series and coordinates), so this is the cheap
    way to study the label statistics of a large phantom.

    Parameters
    ----------
    n_studies : int
        Labelled (train) studies.
    seed : int
        Seed of the whole phantom.
    n_test_studies : int
        Unlabelled (test) studies.

    Returns
    -------
    dict of str to pandas.DataFrame
        Keyed by file name: ``train.csv``, ``train_series_descriptions.csv``,
        ``train_label_coordinates.csv``, ``test_series_descriptions.csv``,
        ``sample_submission.csv``.

    Examples
    --------
    >>> t = sample_tables(3, seed=1)
    >>> t["train.csv"].shape
    (3, 26)
    """
    _check_counts(n_studies, n_test_studies)
    tasks = [("sampled", *t) for t in _sampled_tasks(n_studies, n_test_studies, seed)]
    return _tables_from_plans(_plan(t) for t in tasks)


# ----------------------------------------------------------------------------- from tables


def _read_lines(path: Path) -> tuple[str, list[str]]:
    if not path.is_file():
        raise FileNotFoundError(f"Label table not found: {path}")
    lines = path.read_text().splitlines(keepends=True)
    if not lines:
        raise ValueError(f"Empty table: {path}")
    return lines[0], lines[1:]


def _lines_for(lines: list[str], keep: set[int]) -> list[str]:
    return [ln for ln in lines if ln.strip() and int(ln.split(",", 1)[0]) in keep]


def _choose_studies(
    available: list[int],
    study_ids: Sequence[int] | None,
    n_studies: int | None,
    seed: int,
    train_csv: Path,
) -> list[int]:
    """The studies to render: exactly ``study_ids``, ``n_studies`` drawn with ``seed``, or all."""
    if study_ids is not None:
        chosen = [int(s) for s in study_ids]
        missing = sorted(set(chosen) - set(available))
        if missing:
            raise ValueError(f"Study ids not in {train_csv}: {missing}")
        if len(set(chosen)) != len(chosen):
            raise ValueError(f"Duplicate study ids in study_ids: {chosen}")
        return chosen
    if n_studies is None:
        return list(available)
    if n_studies > len(available):
        raise ValueError(f"n_studies={n_studies} but {train_csv} has {len(available)} studies")
    pick = np.random.default_rng(seed).choice(len(available), size=n_studies, replace=False)
    return [available[i] for i in sorted(pick)]


def _train_task(sid: int, labels: Any, series: Any, coords: Any, seed: int) -> tuple:
    """The task of one real train study: its label row, series and coordinate rows."""
    import pandas as pd

    row = labels.loc[sid]
    lab = {c: (None if pd.isna(row[c]) else str(row[c])) for c in label_columns()}
    ser = series[series["study_id"] == sid]
    cor = coords[coords["study_id"] == sid]
    ser_rows = [
        (int(a), str(b)) for a, b in zip(ser["series_id"], ser["series_description"], strict=True)
    ]
    cor_rows = [
        (
            int(r.series_id),
            int(r.instance_number),
            str(r.condition),
            str(r.level),
            float(r.x),
            float(r.y),
        )
        for r in cor.itertuples()
    ]
    return (
        "tables",
        sid,
        lab,
        ser_rows,
        cor_rows,
        np.random.SeedSequence([seed, int(sid)]),
        "train",
    )


def _test_tasks(tables_dir: Path, n_test: int, seed: int) -> tuple[list[tuple], dict[str, str]]:
    """Tasks for the first ``n_test`` real test studies, and their verbatim table lines."""
    if n_test <= 0:
        return [], {
            "test_series_descriptions.csv": "study_id,series_id,series_description\n",
            "sample_submission.csv": "row_id,normal_mild,moderate,severe\n",
        }
    head, body = _read_lines(tables_dir / "test_series_descriptions.csv")
    test_ids: list[int] = []
    for ln in body:
        if ln.strip():
            sid = int(ln.split(",", 1)[0])
            if sid not in test_ids:
                test_ids.append(sid)
    test_ids = test_ids[:n_test]
    test_lines = _lines_for(body, set(test_ids))
    texts = {"test_series_descriptions.csv": head + "".join(test_lines)}
    tasks = []
    for sid in test_ids:
        ser = [
            (int(ln.split(",")[1]), ln.rstrip("\r\n").split(",", 2)[2])
            for ln in test_lines
            if int(ln.split(",", 1)[0]) == sid
        ]
        tasks.append(("tables", sid, None, ser, [], np.random.SeedSequence([seed, sid]), "test"))
    sub = tables_dir / "sample_submission.csv"
    if sub.is_file():
        shead, sbody = _read_lines(sub)
        texts["sample_submission.csv"] = shead + "".join(
            ln for ln in sbody if ln.strip() and int(ln.split("_", 1)[0]) in set(test_ids)
        )
    return tasks, texts


def _table_tasks(
    tables_dir: Path, study_ids: Sequence[int] | None, n_studies: int | None, n_test: int, seed: int
) -> tuple[list[tuple], dict[str, str], list[int]]:
    """Tasks for real studies, and the verbatim table subsets to write."""
    import pandas as pd

    names = ("train.csv", "train_series_descriptions.csv", "train_label_coordinates.csv")
    raw = {name: _read_lines(tables_dir / name) for name in names}
    train = pd.read_csv(tables_dir / "train.csv")
    series = pd.read_csv(tables_dir / "train_series_descriptions.csv")
    coords = pd.read_csv(tables_dir / "train_label_coordinates.csv")
    available = train["study_id"].tolist()
    chosen = _choose_studies(available, study_ids, n_studies, seed, tables_dir / "train.csv")
    keep = set(chosen)
    labels = train.set_index("study_id")
    tasks = [_train_task(sid, labels, series, coords, seed) for sid in chosen]
    out_tables = {
        name: head + "".join(_lines_for(body, keep)) for name, (head, body) in raw.items()
    }
    test_tasks, test_texts = _test_tasks(tables_dir, n_test, seed)
    return tasks + test_tasks, {**out_tables, **test_texts}, chosen


# ----------------------------------------------------------------------------- main entry


def _check_counts(n_studies: int | None, n_test: int) -> None:
    if n_studies is not None and (not isinstance(n_studies, (int, np.integer)) or n_studies < 1):
        raise ValueError(f"n_studies must be a positive integer, got {n_studies!r}")
    if not isinstance(n_test, (int, np.integer)) or n_test < 0:
        raise ValueError(f"n_test_studies must be a non-negative integer, got {n_test!r}")


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"Output path exists and is not a directory: {out}")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"Output directory is not empty: {out} (pass overwrite=True to replace a phantom)"
            )
        if read_marker(out) is None:
            raise FileExistsError(
                f"Output directory is not empty and holds no {MARKER_NAME}: {out}; "
                "refusing to delete what may be real data"
            )
        for name in _OUTPUTS:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _check_options(
    n_studies: int | None,
    n_test: int,
    tables_dir: str | Path | None,
    study_ids: Sequence[int] | None,
    workers: int | None,
) -> int:
    """Fail on inconsistent options before anything is written; the worker count to use."""
    _check_counts(n_studies, n_test)
    if workers is None:
        workers = os.cpu_count() or 1
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if tables_dir is None and study_ids is not None:
        raise ValueError("study_ids needs tables_dir (the real tables to take the studies from)")
    if study_ids is not None and n_studies is not None:
        raise ValueError(f"Give study_ids or n_studies, not both (got n_studies={n_studies})")
    return int(workers)


def _write_tables(
    out: Path, results: list[tuple[StudyPlan, int]], texts: dict[str, str] | None
) -> None:
    """The label tables: built from the plans (sampled), or the real lines (``texts``)."""
    if texts is None:
        for name, frame in _tables_from_plans(plan for plan, _ in results).items():
            frame.to_csv(out / name, index=False)
    else:
        for name, text in texts.items():
            (out / name).write_text(text)
    descriptions = {s.header.description for plan, _ in results for s in plan.series}
    unknown = descriptions - set(SERIES_DESCRIPTIONS)
    if unknown:  # pragma: no cover - the planners only use known descriptions
        raise RuntimeError(f"Unknown series descriptions written: {sorted(unknown)}")


def make_phantom(
    out: str | Path,
    *,
    n_studies: int | None = None,
    seed: int = 0,
    n_test_studies: int = 3,
    tables_dir: str | Path | None = None,
    study_ids: Sequence[int] | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
) -> Path:
    """Write a synthetic DICOM phantom in the RSNA 2024 Lumbar Spine Kaggle layout.

    Two modes:

    - **sampled** (``tables_dir=None``): ``n_studies`` (default 200) studies whose
      series, labels and coordinates are sampled to resemble the real tables (class
      frequencies per column, correlated severities, missing cells, 1-3 axial series);
    - **from tables** (``tables_dir`` given): the real label tables of
      ``study_ids`` (or of ``n_studies`` studies drawn with ``seed``, or of every
      study) are copied verbatim and images are invented behind them: every
      referenced instance exists, with the subarticular (x, y) on its recess.

    Either way ``out`` receives ``train.csv``, ``train_series_descriptions.csv``,
    ``train_label_coordinates.csv``, ``train_images/<study>/<series>/<instance>.dcm``,
    a small test split (``test_series_descriptions.csv``, ``test_images/``,
    ``sample_submission.csv``) and ``PHANTOM.json``.

    Parameters
    ----------
    out : str or Path
        Output directory; must be empty or absent unless ``overwrite``.
    n_studies : int, optional
        Sampled mode: number of labelled studies (default 200). From tables: how many
        studies to draw (default: all, or exactly ``study_ids``).
    seed : int
        Seeds everything; each study has its own seed, so results do not depend on
        ``workers``.
    n_test_studies : int
        Sampled mode: unlabelled studies in the test split. From tables: at most this
        many studies of the real ``test_series_descriptions.csv``.
    tables_dir : str or Path, optional
        Directory with the real ``train.csv``, ``train_series_descriptions.csv`` and
        ``train_label_coordinates.csv`` (switches to the from-tables mode).
    study_ids : sequence of int, optional
        From tables only: the studies to render.
    workers : int, optional
        Worker processes (default: the number of CPUs); 1 renders in this process.
    overwrite : bool
        Replace an existing phantom in ``out`` (only one that has a ``PHANTOM.json``).
    progress : bool, optional
        A bar over the studies written: None where :func:`lss.progress.shows` says
        (a terminal, a notebook), True always, False never.

    Returns
    -------
    Path
        ``out``.

    Notes
    -----
    Workers are started with the ``spawn`` method on every platform, so a script that
    calls this with ``workers > 1`` needs the usual ``if __name__ == "__main__":``
    guard (notebooks need nothing).

    Raises
    ------
    FileExistsError
        If ``out`` is not empty and ``overwrite`` is false, or holds no marker.
    RuntimeError
        If ``workers > 1`` from code that spawned processes cannot re-import (stdin).
    ValueError
        For inconsistent options or study ids that are not in the tables.
    FileNotFoundError
        If a table is missing from ``tables_dir``.
    """
    out = Path(out)
    workers = _check_options(n_studies, n_test_studies, tables_dir, study_ids, workers)
    if tables_dir is not None:
        tables_dir = Path(tables_dir)
        if not tables_dir.is_dir():
            raise FileNotFoundError(f"tables_dir is not a directory: {tables_dir}")
        tasks, texts, chosen = _table_tasks(tables_dir, study_ids, n_studies, n_test_studies, seed)
        mode = "from-tables"
        n_train = len(chosen)
    else:
        n_train = 200 if n_studies is None else int(n_studies)
        tasks = [("sampled", *t) for t in _sampled_tasks(n_train, n_test_studies, seed)]
        texts, chosen, mode = {}, None, "sampled"
    _prepare_out(out, overwrite)
    marker = {
        "lss_version": lss.__version__,
        "seed": int(seed),
        "n_studies": n_train,
        "n_test_studies": sum(1 for t in tasks if t[-1] == "test"),
        "mode": mode,
        "tables": str(tables_dir.resolve()) if tables_dir is not None else None,
        "study_ids": [int(s) for s in chosen] if chosen is not None else None,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "complete": False,
        "note": "Synthetic images (lss.phantom); every number computed from them is phantom data.",
    }
    write_marker(out, marker)
    results = _map(tasks, out, min(workers, max(len(tasks), 1)), progress=progress)
    _write_tables(out, results, texts if mode == "from-tables" else None)
    marker["complete"] = True
    marker["n_files"] = int(sum(n for _, n in results))
    write_marker(out, marker)
    return out
