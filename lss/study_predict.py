"""Grading every target of a new study from its images: a whole-study run's submission.

A new study has no coordinate rows. The level finder (:mod:`lss.levels`) puts the five
discs' canal points on the middle Sagittal T2/STIR slice; carried into patient space
(:func:`lss.data.geometry.pixel_to_patient`, mm in DICOM's LPS frame: +x toward the
patient's left, +y toward the back, +z toward the head) each is the anchor ``p`` of its
level. Every other target's point is learnt as an offset from it
(:func:`target_offsets`): ``q = p + offset``, and the crop of each condition group is
placed as in training (:func:`place_targets`):

* spinal canal: the Sagittal T2/STIR series at the finder's slice, centred on the
  finder's point;
* subarticular recesses: the level's Axial T2 slice (the plane nearest ``p``, by the
  rule of :func:`lss.locate.find_levels`, from the same finder call), centred where
  the run's recess localiser finds the recess on that slice (``q``'s projection in a
  run without one); the right recess is mirrored left-right before grading, as
  :class:`lss.data.loader.WindowDataset` mirrors it in training;
* neural foramina: the Sagittal T1 series (the longest if several), on the slice
  nearest ``q`` (:func:`lss.data.geometry.nearest_slice`), centred on its pixel.

:func:`predict_whole_study` does this for every study of a root (series from the series
descriptions table, never the coordinate table) or one study folder, and assembles the
25 rows per study (:func:`lss.submission.assemble`): a target whose series is missing,
fails to read, or whose crop cannot be placed comes from the training prior (weighted
1/2/4) with its reason in the report, never a crash and never a silent gap.

:func:`load_grader` loads a run once (:class:`StudyGrader`) to grade study after study
with warm models, as ``benchmarks/whole_study.py`` times it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lss.config import CONDITIONS, LEVELS, SERIES_FOR_CONDITION, column_name
from lss.data import (
    DataError,
    check_same_frame,
    level_window,
    load_tables,
    nearest_slice,
    patient_to_pixel,
    pixel_to_patient,
    read_geometry,
    scan_series,
    series_dir,
)
from lss.evaluate import _series_description, choose_series, predict_proba
from lss.levels import load_level_localiser, predict_levels
from lss.localiser import centres_for_series, load_run_localiser
from lss.locate import _choose
from lss.progress import bar
from lss.run import RunDir
from lss.submission import assemble, training_prior

__all__ = ["OFFSET_COLUMNS", "PLACE_COLUMNS", "MIN_PAIRS", "target_offsets",
           "study_series", "place_targets", "StudyGrader", "load_grader", "predict_whole_study"]

#: Columns of :func:`target_offsets`: one row per (condition, level).
OFFSET_COLUMNS = ("condition", "level", "dx", "dy", "dz", "n_pairs", "pooled")
#: Columns of :func:`place_targets`: where each target's crop lies.
PLACE_COLUMNS = ("study_id", "target", "group", "series_id", "instance_number", "x", "y",
                 "inside", "mirror")
#: A level with fewer (canal, target) pairs than this takes its condition's median over
#: all levels (``pooled``): a median of one or two studies is mostly their noise.
MIN_PAIRS = 3

_CANAL = "spinal_canal_stenosis"
_SAGITTAL = SERIES_FOR_CONDITION[_CANAL]
_GROUP_OF = {c: next(g for g in ("spinal", "foraminal", "subarticular") if g in c)
             for c in CONDITIONS}
_TARGET_PARTS = {column_name(c, lv): (c, lv) for c in CONDITIONS for lv in LEVELS}


# --------------------------------------------------------------------------- offsets


def _described_rows(coords: pd.DataFrame, series: pd.DataFrame) -> pd.DataFrame:
    """Coordinate rows on the series their condition is labelled on, with ``key`` (the
    condition's key of :data:`lss.config.CONDITIONS`)."""
    key = coords["condition"].map({v: k for k, v in CONDITIONS.items()})
    desc = series.set_index(["study_id", "series_id"])["series_description"].reindex(
        pd.MultiIndex.from_frame(coords[["study_id", "series_id"]])).to_numpy()
    rows = coords.assign(key=key, desc=desc)
    return rows[rows["desc"] == rows["key"].map(SERIES_FOR_CONDITION)]


def _study_offsets(root: Path, rows: pd.DataFrame, study_id: int
                   ) -> tuple[list[tuple], str | None]:
    """One study's ``(condition, level, dx, dy, dz)`` rows, or none and why not."""
    canal = rows[rows["key"] == _CANAL].drop_duplicates("level").set_index("level")
    others = rows[(rows["key"] != _CANAL) & rows["level"].isin(canal.index)]
    if canal.empty:
        return [], "no Spinal Canal Stenosis row on Sagittal T2/STIR"
    if others.empty:
        return [], "no other target at a level with a canal row"
    geometries: dict[Path, object] = {}

    def point(series_id, instance, x, y):
        folder = series_dir(root, study_id, series_id)
        if folder not in geometries:
            geometries[folder] = read_geometry(folder)
        g = geometries[folder]
        return g, pixel_to_patient(g, int(instance), float(x), float(y))

    out = []
    try:
        for r in others.itertuples():
            c = canal.loc[r.level]
            sag, p = point(c["series_id"], c["instance_number"], c["x"], c["y"])
            own, q = point(r.series_id, r.instance_number, r.x, r.y)
            check_same_frame(sag, own, study_id=study_id)
            out.append((r.key, r.level, *(q - p)))
    except DataError as exc:
        return [], str(exc).splitlines()[0]
    return out, None


def _median_offsets(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per (condition, level) the median offset; levels with fewer than
    :data:`MIN_PAIRS` pairs take their condition's median over all levels."""
    rows = []
    for condition, of_cond in pairs.groupby("condition", sort=False):
        pooled = of_cond[["dx", "dy", "dz"]].median().to_numpy()
        for level in LEVELS:
            at = of_cond[of_cond["level"] == level]
            few = len(at) < MIN_PAIRS
            d = pooled if few else at[["dx", "dy", "dz"]].median().to_numpy()
            rows.append((condition, level, *map(float, d), len(at), few))
    order = {c: i for i, c in enumerate(CONDITIONS)}
    out = pd.DataFrame(rows, columns=list(OFFSET_COLUMNS))
    return out.sort_values("condition", key=lambda s: s.map(order), kind="stable",
                           ignore_index=True)


def target_offsets(root: str | Path, study_ids: Iterable[int]) -> pd.DataFrame:
    """The median patient-space offset of each target's point from its level's canal point.

    For every given study and level, the canal point is the coordinate table's Spinal
    Canal Stenosis row on Sagittal T2/STIR and the target's point its own row
    (subarticular on Axial T2, foraminal on Sagittal T1), each carried into patient
    space on its own series (:func:`lss.data.geometry.pixel_to_patient`). The offset is
    learnt per condition *and* level: the lordosis turns the spine between L1/L2 and
    L5/S1, so the foramina's and recesses' front-back and head-foot offsets from the
    canal change along it. A level with fewer than :data:`MIN_PAIRS` pairs takes the
    condition's median over all its levels (``pooled``).

    Parameters
    ----------
    root : str or Path
        A data root with training tables and images (headers only are read).
    study_ids : iterable of int
        The studies to learn from (a run's training studies).

    Returns
    -------
    DataFrame
        :data:`OFFSET_COLUMNS`: ``condition`` (key of :data:`lss.config.CONDITIONS`,
        spinal canal excluded: its offset is 0), ``level``, ``dx``, ``dy``, ``dz`` (mm,
        LPS: +x toward the patient's left, +y toward the back, +z toward the head),
        ``n_pairs`` (studies at that level) and ``pooled``. ``attrs``: ``n_studies``
        (asked for), ``n_used``, ``skipped`` (``{"study_id", "reason"}`` per study with
        no pair: no canal row, no other row at its levels, or a series failing to read).

    Raises
    ------
    DataError
        No coordinate table under ``root``, or no study gives a pair.
    """
    tables = load_tables(root)
    if tables.coordinates is None or tables.series is None:
        raise DataError(f"No train_label_coordinates.csv and train_series_descriptions.csv "
                        f"under {root} to learn the target offsets from")
    ids = sorted({int(s) for s in study_ids})
    rows = _described_rows(tables.coordinates[tables.coordinates["study_id"].isin(ids)],
                           tables.series)
    pairs, skipped = [], []
    for sid in ids:
        found, why = _study_offsets(Path(root), rows[rows["study_id"] == sid], sid)
        pairs += found
        if why:
            skipped.append({"study_id": sid, "reason": why})
    if not pairs:
        raise DataError(f"No study of {len(ids)} under {root} has a canal row and another "
                        f"target's row at one level: no offsets to learn")
    out = _median_offsets(pd.DataFrame(pairs, columns=["condition", "level", "dx", "dy",
                                                       "dz"]))
    out.attrs.update(n_studies=len(ids), n_used=len(ids) - len(skipped), skipped=skipped)
    return out


# --------------------------------------------------------------------------- series


@dataclass
class StudySeries:
    """One study's series folders by description, and why any description is unusable.

    Attributes
    ----------
    study_id : int
    folders : dict of str to list of Path
        Per series description, its existing folders (ascending series id).
    missing : dict of str to str
        Per description that cannot be used, the reason (one line naming the series).
    """

    study_id: int
    folders: dict[str, list[Path]]
    missing: dict[str, str]
    _headers: dict = field(default_factory=dict, repr=False, compare=False)

    def header(self, folder: Path):
        """The :func:`lss.data.scan_series` header of one of its folders, read once per
        study (placing the recess crops and reading the windows both need it)."""
        if folder not in self._headers:
            self._headers[folder] = scan_series(folder)
        return self._headers[folder]

    def why_not(self, description: str) -> str | None:
        """None when ``description`` has a folder, else the reason it has none."""
        if self.folders.get(description):
            return None
        return self.missing.get(description, f"no {description} series")


def _from_table(root: Path, study_id: int, group: pd.DataFrame, split: str) -> StudySeries:
    """A study's series from its rows of ``<split>_series_descriptions.csv``."""
    folders, missing = {}, {}
    for desc, rows in group.groupby("series_description", sort=True):
        paths = [series_dir(root, study_id, s, split=split) for s in sorted(rows["series_id"])]
        absent = [p for p in paths if not p.is_dir()]
        if absent:
            missing[desc] = f"{desc} series folder {absent[0]} is missing"
        else:
            folders[desc] = paths
    return StudySeries(study_id, folders, missing)


def study_series(root: str | Path | None = None, *, study_dir: str | Path | None = None,
                 split: str = "test") -> list[StudySeries]:
    """The series of every study to grade, by description.

    From ``<split>_series_descriptions.csv`` of ``root`` (never the coordinate table),
    or for one study folder from each series' DICOM SeriesDescription.

    Raises
    ------
    DataError
        No descriptions table, or a study folder that is missing or not named by its id.
    """
    if (root is None) == (study_dir is None):
        raise ValueError("Give exactly one of root and study_dir")
    if study_dir is not None:
        study_dir = Path(study_dir)
        if not study_dir.is_dir():
            raise DataError(f"Study folder not found: {study_dir}")
        if not study_dir.name.isdigit():
            raise DataError(f"Study folder name must be the study_id: {study_dir}")
        folders: dict[str, list[Path]] = {}
        for p in sorted((p for p in study_dir.iterdir() if p.is_dir()),
                        key=lambda p: (not p.name.isdigit(), p.name.zfill(20))):
            folders.setdefault(_series_description(p), []).append(p)
        return [StudySeries(int(study_dir.name), folders, {})]
    series = load_tables(root).test_series if split == "test" else load_tables(root).series
    if series is None:
        raise DataError(f"No {split}_series_descriptions.csv under {root}")
    return [_from_table(Path(root), int(sid), g, split)
            for sid, g in series.groupby("study_id", sort=True)]


# --------------------------------------------------------------------------- placing


def _offset(offsets: pd.DataFrame, condition: str, level: str) -> np.ndarray | None:
    row = offsets[(offsets["condition"] == condition) & (offsets["level"] == level)]
    return None if row.empty else row[["dx", "dy", "dz"]].to_numpy(float)[0]


def _spinal(targets, points, sag, _series, _offsets, _study_id):
    """Canal crops: the finder's slice and point on the Sagittal T2/STIR series."""
    folder = Path(sag.series_dir)
    for t in targets:
        instance, x, y = points[_TARGET_PARTS[t][1]]
        yield t, (folder, instance, x, y, True, False)


def _subarticular(targets, points, sag, series: StudySeries, offsets, study_id, recess=None):
    """Recess crops: the axial slice nearest the canal point plus the level's offset;
    centred where the run's recess localiser finds the recess on that slice (``recess``;
    without one, where the offset point projects onto it); the right recess mirrored."""
    folders = series.folders["Axial T2"]
    axials = [read_geometry(f) for f in folders]
    for g in axials:
        check_same_frame(sag, g, study_id=study_id)
    placed = []
    for t in targets:
        condition, level = _TARGET_PARTS[t]
        p = pixel_to_patient(sag, *points[level])
        d = _offset(offsets, condition, level)
        if d is None:
            yield t, f"no offset learnt for {condition} at {level}"
            continue
        i, hit = _choose(axials, p)
        x, y, _ = patient_to_pixel(axials[i], hit.instance_number, p + d)
        placed.append([t, folders[i], hit.instance_number, x, y, hit.inside,
                       condition.startswith("right_")])
    if recess is not None and placed:
        found = centres_for_series(recess, [series.header(row[1]) for row in placed],
                                   [row[2] for row in placed], [row[6] for row in placed])
        for row, (x, y) in zip(placed, found, strict=True):
            row[3:5] = x, y
    for t, *where in placed:
        yield t, tuple(where)


def _foraminal(targets, points, sag, series: StudySeries, offsets, study_id):
    """Foramen crops: the Sagittal T1 slice nearest the offset point, at its pixel."""
    folder = choose_series(series.folders["Sagittal T1"])
    t1 = read_geometry(folder)
    check_same_frame(sag, t1, study_id=study_id)
    for t in targets:
        condition, level = _TARGET_PARTS[t]
        d = _offset(offsets, condition, level)
        if d is None:
            yield t, f"no offset learnt for {condition} at {level}"
            continue
        hit = nearest_slice(t1, pixel_to_patient(sag, *points[level]) + d)
        yield t, (folder, hit.instance_number, hit.x, hit.y, hit.inside, False)


_PLACERS = {"spinal": (_spinal, _SAGITTAL), "subarticular": (_subarticular, "Axial T2"),
            "foraminal": (_foraminal, "Sagittal T1")}


def _sagittal_points(finder, series: StudySeries):
    """(Sagittal T2/STIR geometry, finder points) of a study, or the reason there are none."""
    why = series.why_not(_SAGITTAL)
    if why:
        return None, f"{why} (the levels are found on it)"
    folder = choose_series(series.folders[_SAGITTAL])
    try:
        return (read_geometry(folder), predict_levels(finder, folder)), None
    except DataError as exc:
        return None, f"{_SAGITTAL} series {folder}: {str(exc).splitlines()[0]}"


def place_targets(finder, series: StudySeries, offsets: pd.DataFrame,
                  groups: dict[str, list[str]], recess=None) -> tuple[pd.DataFrame, dict]:
    """Where each target of one study is cropped, found from its images alone.

    Parameters
    ----------
    finder
        A level finder (:func:`lss.levels.load_level_localiser`).
    series : StudySeries
        From :func:`study_series`.
    offsets : DataFrame
        :func:`target_offsets`.
    groups : dict of str to list of str
        Per condition group ("spinal", "subarticular", "foraminal") the targets to place.
    recess : optional
        A recess localiser (the run's ``subarticular/localiser.keras``), which centres
        the recess crops on the chosen axial slice.

    Returns
    -------
    places : DataFrame
        :data:`PLACE_COLUMNS`, one row per placed target (``x``, ``y`` in the pixels of
        ``series_id``'s slice ``instance_number``; ``inside``: the point lies within
        the chosen slice's stack, see :func:`lss.data.geometry.nearest_slice`).
    reasons : dict
        ``{(study_id, target): reason}`` for each target that could not be placed.
    """
    sid = series.study_id
    wanted = [t for ts in groups.values() for t in ts]
    anchor, why = _sagittal_points(finder, series)
    if anchor is None:
        return pd.DataFrame(columns=list(PLACE_COLUMNS)), {(sid, t): why for t in wanted}
    sag, points = anchor
    rows, reasons = [], {}
    for group, targets in groups.items():
        placer, needs = _PLACERS[group]
        why = series.why_not(needs)
        if why:
            reasons.update({(sid, t): why for t in targets})
            continue
        unfound = [t for t in targets if _TARGET_PARTS[t][1] not in points]
        reasons.update({(sid, t): f"the level finder gave no point for "
                        f"{_TARGET_PARTS[t][1]}" for t in unfound})
        targets = [t for t in targets if t not in unfound]
        extra = {"recess": recess} if group == "subarticular" else {}
        try:
            for t, where in list(placer(targets, points, sag, series, offsets, sid, **extra)):
                if isinstance(where, str):
                    reasons[(sid, t)] = where
                else:
                    folder, instance, x, y, inside, mirror = where
                    rows.append((sid, t, group, int(Path(folder).name), int(instance),
                                 float(x), float(y), bool(inside), bool(mirror)))
        except DataError as exc:
            reasons.update({(sid, t): str(exc).splitlines()[0] for t in targets
                            if (sid, t) not in reasons})
    return pd.DataFrame(rows, columns=list(PLACE_COLUMNS)), reasons


# --------------------------------------------------------------------------- grading


def _windows(places: pd.DataFrame, series: StudySeries, preprocess
             ) -> tuple[list[str], list[np.ndarray], dict]:
    """The placed targets' windows (right recesses mirrored), and why any failed."""
    by_name = {p.name: p for fs in series.folders.values() for p in fs}
    targets, volumes, reasons = [], [], {}
    for r in places.itertuples():
        folder = by_name[str(r.series_id)]
        try:
            v = level_window(series.header(folder), int(r.instance_number), preprocess,
                             centre_xy=(r.x, r.y)).volume
        except DataError as exc:
            reasons[(series.study_id, r.target)] = str(exc).splitlines()[0]
            continue
        targets.append(r.target)
        volumes.append(v[:, :, ::-1] if r.mirror else v)  # (Z, rows, columns)
    return targets, volumes, reasons


def _grade_study(models: dict, places: pd.DataFrame, series: StudySeries
                 ) -> tuple[pd.DataFrame, dict]:
    """Submission rows of one study's placed targets, group by group, and failures."""
    frames, reasons = [], {}
    for group, (model, config) in models.items():
        mine = places[places["group"] == group]
        if mine.empty:
            continue
        targets, volumes, failed = _windows(mine, series, config.preprocess)
        reasons.update(failed)
        if not volumes:
            continue
        proba = predict_proba(model, np.stack(volumes), batch_size=config.train.batch_size)
        frame = pd.DataFrame(proba, columns=["normal_mild", "moderate", "severe"])
        frame.insert(0, "row_id", [f"{series.study_id}_{t}" for t in targets])
        frames.append(frame)
    rows = pd.concat(frames, ignore_index=True) if frames else None
    return rows, reasons


@dataclass
class StudyGrader:
    """A whole-study run loaded once, to grade study after study (warm models).

    Attributes
    ----------
    groups : dict of str to list of str
        Per condition group with a model, the targets it grades.
    prior : DataFrame
        The training prior (the run's training studies' ``train.csv`` rows).
    offsets : DataFrame
        :func:`target_offsets` of the run's training studies.
    finder
        The run's level finder.
    models : dict
        Per group, its ``(model, config)``.
    recess : optional
        The subarticular group's recess localiser, where the run has one.
    """

    groups: dict[str, list[str]]
    prior: pd.DataFrame
    offsets: pd.DataFrame
    finder: object
    models: dict
    recess: object = None

    def grade(self, series: StudySeries) -> tuple[pd.DataFrame | None, pd.DataFrame, dict]:
        """(graded rows or None, crops placed, ``{(study_id, target): reason}``) of one
        study: the targets that could not be placed or read are in the reasons."""
        placed, why = place_targets(self.finder, series, self.offsets, self.groups,
                                    recess=self.recess)
        graded, failed = _grade_study(self.models, placed, series)
        return graded, placed, why | failed


def _training_root(run: RunDir, root: str | Path | None) -> Path:
    """Where the run's training tables are: the data root its manifest records, else
    ``root`` (a run trained elsewhere and graded on a copy of the same data, such as
    the competition's data attached to a Kaggle notebook)."""
    recorded = run.read_manifest().get("data", {}).get("root")
    for where in (recorded, root):
        if where and Path(where).is_dir():
            tables = load_tables(where)
            if tables.train is not None and tables.coordinates is not None:
                return Path(where)
    raise DataError(f"Run {run.path}: neither its recorded data root {recorded} nor "
                    f"{root} has the train.csv and train_label_coordinates.csv to learn "
                    f"the target offsets and the prior from")


def load_grader(run_dir: str | Path, root: str | Path | None = None) -> StudyGrader:
    """The :class:`StudyGrader` of a whole-study run with its level finder.

    The training studies' tables (for the prior and the target offsets) are read from
    the run's recorded data root, or from ``root`` where the recorded one is not on
    this machine.

    Raises
    ------
    DataError
        Not a whole-study run, no ``levels.keras``, or no training tables at the run's
        recorded data root nor at ``root`` (each in one line).
    """
    run = RunDir(run_dir)
    manifest = run.read_manifest()
    if manifest.get("kind") != "whole_study":
        raise DataError(f"Run {run.path} is not a whole-study run (manifest kind "
                        f"{manifest.get('kind')!r})")
    if not run.level_finder.is_file():
        raise DataError(f"Run {run.path} has no {run.LEVEL_FINDER} to find the levels of new "
                        f"studies: fit one with lss levels --run {run.path} --data ROOT")
    recorded = _training_root(run, root)
    tables = load_tables(recorded)
    split = run.read_split()
    train_ids = split.loc[split["split"] == "train", "study_id"].astype(int).tolist()
    groups = {g: list(v["targets"]) for g, v in manifest["groups"].items()}
    return StudyGrader(
        groups=groups,
        prior=training_prior(tables.train[tables.train["study_id"].isin(train_ids)]),
        offsets=target_offsets(recorded, train_ids),
        finder=load_level_localiser(run.level_finder),
        models={g: RunDir(run.path / g).load() for g in groups},
        recess=load_run_localiser(run.path / "subarticular") if "subarticular" in groups
        else None)


def predict_whole_study(run_dir: str | Path | StudyGrader, root: str | Path | None = None,
                        *, study_dir: str | Path | None = None, split: str = "test",
                        study_ids: Iterable[int] | None = None, progress: bool | None = None
                        ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The competition's submission of a whole-study run: 25 rows for every study.

    Each group with a model grades its targets at the crops :func:`place_targets`
    finds (the run's level finder, and offsets learnt by :func:`target_offsets` from
    the run's training studies of its recorded data root). Every other row comes from
    the training prior weighted 1/2/4 (the run's training studies' ``train.csv`` rows)
    with its reason in the report: a target of no group, a missing or unreadable
    series (named), a crop centre off the image.

    Parameters
    ----------
    run_dir : str, Path or StudyGrader
        A run of :func:`lss.whole_study.train_whole_study` with its ``levels.keras``
        (``lss levels --run RUN --data ROOT``), or its :func:`load_grader` (warm).
    root : str or Path, optional
        A data root with ``<split>_series_descriptions.csv`` and ``<split>_images/``.
    study_dir : str or Path, optional
        Or one study folder; series are recognised by their DICOM SeriesDescription.
    split : {"test", "train"}
    study_ids : iterable of int, optional
        Only these studies of the root (a run's validation studies, for example).
    progress : bool, optional
        A bar over the studies: None where :func:`lss.progress.shows` says.

    Returns
    -------
    submission, report : DataFrame
        :func:`lss.submission.assemble`'s; ``report.attrs["places"]`` holds every
        graded target's crop (:data:`PLACE_COLUMNS`).

    Raises
    ------
    DataError
        Not a whole-study run, no level finder, no training tables at the recorded root,
        no descriptions table (each in one line).
    """
    grader = run_dir if isinstance(run_dir, StudyGrader) else load_grader(run_dir, root)
    studies = study_series(Path(root) if root else None, study_dir=study_dir, split=split)
    if study_ids is not None:
        wanted = {int(s) for s in study_ids}
        studies = [s for s in studies if s.study_id in wanted]
    if not studies:
        raise DataError(f"No study to grade under {root or study_dir}")
    done = [grader.grade(s) for s in bar(studies, desc="grade", unit="study", enabled=progress)]
    rows = [graded for graded, _, _ in done if graded is not None]
    places = [placed for _, placed, _ in done]
    reasons = {k: v for _, _, why in done for k, v in why.items()}
    source = "the training prior (weighted_prior)"
    reasons = {k: f"{v}; {source}" for k, v in reasons.items()}
    graded_by_run = {t for ts in grader.groups.values() for t in ts}
    reasons.update({s.study_id: f"not graded by this run (no model of its group); {source}"
                    for s in studies} if len(graded_by_run) < len(_TARGET_PARTS) else {})
    predictions = pd.concat(rows, ignore_index=True) if rows else None
    sub, report = assemble([s.study_id for s in studies], predictions, grader.prior,
                           reasons=reasons)
    report.attrs["places"] = pd.concat(places, ignore_index=True)
    return sub, report
