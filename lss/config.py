"""Names, label maps and settings shared by every stage of ``lss``.

One place for the vocabulary of the RSNA 2024 Lumbar Spine tables (conditions,
levels, severities, series descriptions) and for the settings that a run passes
from preprocessing to training to evaluation. Settings are frozen dataclasses so
that they can key a cache and be written next to a model as JSON.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "check_positive_int",
    "SEVERITIES",
    "LABEL_MAP",
    "CONDITIONS",
    "LEVELS",
    "SERIES_DESCRIPTIONS",
    "RSNA_SAMPLE_WEIGHTS",
    "PAPER_RESULTS",
    "REAL_CLASS_COUNTS",
    "REAL_MAJORITY_SHARE",
    "POOLINGS",
    "SERIES_FOR_CONDITION",
    "PAPER_EPOCHS",
    "PRIMARY_METRIC",
    "METRICS",
    "LOWER_IS_BETTER",
    "BOOK_EPOCHS",
    "BOOK_LEARNING_RATE",
    "BOOK_LOCALISER",
    "column_name",
    "condition_title",
    "PreprocessConfig",
    "TrainConfig",
    "LocaliserConfig",
    "LevelLocaliserConfig",
    "Config",
]

#: The three classes, in the order of the model's softmax and of the submission columns.
SEVERITIES: tuple[str, ...] = ("Normal/Mild", "Moderate", "Severe")
#: Severity spelling in the tables -> class index.
LABEL_MAP: dict[str, int] = {name: i for i, name in enumerate(SEVERITIES)}
#: Weights of the RSNA 2024 metric (log loss) per class: Normal/Mild, Moderate, Severe.
RSNA_SAMPLE_WEIGHTS: tuple[float, ...] = (1.0, 2.0, 4.0)

#: What the reproduced paper reports for left subarticular stenosis at L4/L5 on the real
#: RSNA 2024 data (its figures, quoted; nothing in lss is tuned toward them). Always
#: print them labelled as the paper's, beside what a run measured and on which data.
PAPER_RESULTS: dict[str, float] = {
    "train_loss_first_epoch": 1.0974,
    "train_loss_last_epoch": 1.0333,
    "val_loss_first_epoch": 1.0878,
    "val_loss_last_epoch": 1.0358,
    "val_accuracy": 0.5109,
}
#: Real label counts of that target (Normal/Mild, Moderate, Severe; 3 studies unlabelled),
#: measured on the competition's train.csv (tests/test_data.py checks them there).
REAL_CLASS_COUNTS: tuple[int, int, int] = (887, 624, 461)
#: Share of Normal/Mild among them (887 of 1,972, 45 %): the accuracy of always
#: answering Normal/Mild.
REAL_MAJORITY_SHARE: float = REAL_CLASS_COUNTS[0] / sum(REAL_CLASS_COUNTS)

#: How the per-slice CNN turns its last feature map into a vector: ``"average"``
#: (GlobalAveragePooling2D, the paper) or ``"flatten"`` (see lss.model.build_cnn_lstm).
POOLINGS: tuple[str, ...] = ("average", "flatten")

#: Condition keys (snake case, as in ``train.csv``) -> spelling in the coordinate table.
CONDITIONS: dict[str, str] = {
    "spinal_canal_stenosis": "Spinal Canal Stenosis",
    "left_neural_foraminal_narrowing": "Left Neural Foraminal Narrowing",
    "right_neural_foraminal_narrowing": "Right Neural Foraminal Narrowing",
    "left_subarticular_stenosis": "Left Subarticular Stenosis",
    "right_subarticular_stenosis": "Right Subarticular Stenosis",
}
#: Disc levels, top to bottom, as spelled in the coordinate table.
LEVELS: tuple[str, ...] = ("L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1")
#: Series descriptions that occur in the tables.
SERIES_DESCRIPTIONS: tuple[str, ...] = ("Axial T2", "Sagittal T1", "Sagittal T2/STIR")
#: The series description on which each condition is labelled in RSNA 2024.
SERIES_FOR_CONDITION: dict[str, str] = {
    "spinal_canal_stenosis": "Sagittal T2/STIR",
    "left_neural_foraminal_narrowing": "Sagittal T1",
    "right_neural_foraminal_narrowing": "Sagittal T1",
    "left_subarticular_stenosis": "Axial T2",
    "right_subarticular_stenosis": "Axial T2",
}

#: Epochs the paper trains for ("up to 20"): the default of a run on an accelerator,
#: of :class:`TrainConfig` and of every row of the full comparison (lss.experiments).
PAPER_EPOCHS: int = 20

#: The metric that decides which changes "helped" and which model is best. Balanced
#: accuracy is the mean recall over the three grades: always answering the majority
#: grade scores 1/3 however skewed the labels are, so it measures exactly the failure
#: under study (a model that stays near the majority class).
PRIMARY_METRIC: str = "balanced_accuracy"
#: Columns of the comparison table, in order. Higher is better except for the log losses.
METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "macro_f1", "rsna_log_loss",
                            "log_loss")
#: The metrics of :data:`METRICS` where lower is better.
LOWER_IS_BETTER: frozenset[str] = frozenset({"rsna_log_loss", "log_loss"})

#: The book's small budget on a 2-core CPU: every row of chapter 6 (and chapter 4's run)
#: gets the same few epochs, at a learning rate ten times the paper's (a few dozen
#: steps at 1e-4 move nothing).
BOOK_EPOCHS: int = 6
BOOK_LEARNING_RATE: float = 1e-3


#: The largest integer setting: anything above is a typo, and would overflow int32/int64
#: arithmetic downstream (array shapes, seeds).
_MAX_INT = 2**31 - 1
_SECTION = {"PreprocessConfig": "preprocess", "TrainConfig": "train",
            "LocaliserConfig": "localiser", "Config": "config"}


def check_positive_int(value: Any, what: str) -> None:
    """Refuse anything but a positive integer (a bool, 2.5, 0), naming the setting
    (for the arguments of functions; a Config checks its own fields below)."""
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")


def _check_value(kind: str, value: Any) -> str | None:
    """Why ``value`` does not fit the annotation ``kind`` (None when it does)."""
    if kind.endswith(" | None"):
        return None if value is None else _check_value(kind[:-7], value)
    if kind.startswith("tuple["):
        if not isinstance(value, (tuple, list)):
            return "a list"
        inner = kind[6:-1].split(",")[0].strip()
        return next((f"a list of {inner}s" for v in value if _check_value(inner, v)), None)
    if kind == "bool":
        return None if isinstance(value, bool) else "true or false"
    if kind == "str":
        return None if isinstance(value, str) else "a string"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "a number" if kind == "float" else "an integer"
    if kind == "int" and (not isinstance(value, int) or not 0 <= value <= _MAX_INT):
        return f"an integer from 0 to {_MAX_INT}"
    if kind == "float" and not math.isfinite(value):
        return "a finite number"
    return None


def _check_types(obj: Any) -> None:
    """Refuse a setting of the wrong type (``n_slices: true`` is not 1), naming it."""
    for f in dataclasses.fields(obj):
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        if kind not in ("int", "float", "bool", "str") and not kind.startswith("tuple[") \
                and not kind.endswith(" | None"):
            continue  # a nested config: checked by its own class
        why = _check_value(kind, getattr(obj, f.name))
        if why:
            where = _SECTION.get(type(obj).__name__, type(obj).__name__)
            raise ValueError(f"{where}.{f.name} must be {why}, got {getattr(obj, f.name)!r}")


def column_name(condition: str, level: str) -> str:
    """The ``train.csv`` column for a condition and a level.

    >>> column_name("left_subarticular_stenosis", "L4/L5")
    'left_subarticular_stenosis_l4_l5'
    """
    if condition not in CONDITIONS:
        raise ValueError(f"Unknown condition '{condition}'; expected one of {sorted(CONDITIONS)}")
    if level not in LEVELS:
        raise ValueError(f"Unknown level '{level}'; expected one of {list(LEVELS)}")
    return f"{condition}_{level.replace('/', '_').lower()}"


def condition_title(condition: str, level: str) -> str:
    """A reader's name for a target, e.g. ``'Left subarticular stenosis at L4/L5'``."""
    column_name(condition, level)  # validates both
    return f"{CONDITIONS[condition].capitalize()} at {level}"


@dataclass(frozen=True)
class PreprocessConfig:
    """How a labelled series becomes a model input of shape (n_slices, size, size).

    Parameters
    ----------
    n_slices : int
        Slices in the level window, centred on the labelled instance (paper: a short
        stack around the disc). Where the window runs past an end of the series, the
        end slice is repeated, so the labelled slice stays at index ``n_slices // 2``.
    image_size : int
        Every slice is resized to ``image_size x image_size`` (the paper uses 128).
    scale_percentiles : tuple of float
        Intensities are mapped to [0, 1] between these percentiles of the window and
        clipped; MRI has no absolute intensity scale, so a per-window scale is used.
    crop_mm : float or None
        ``None`` keeps the whole slice (the paper). A number crops a square of this side
        in millimetres around a point (the recess) before resizing (the ROI experiment).
    """

    n_slices: int = 8
    image_size: int = 128
    scale_percentiles: tuple[float, float] = (0.5, 99.5)
    crop_mm: float | None = None

    def __post_init__(self) -> None:
        _check_types(self)
        if self.n_slices < 1:
            raise ValueError(f"n_slices must be >= 1, got {self.n_slices}")
        if self.image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {self.image_size}")
        lo, hi = self.scale_percentiles
        if not 0 <= lo < hi <= 100:
            raise ValueError(f"scale_percentiles must satisfy 0 <= lo < hi <= 100, got {lo, hi}")
        if self.crop_mm is not None and self.crop_mm <= 0:
            raise ValueError(f"crop_mm must be positive or None, got {self.crop_mm}")
        object.__setattr__(self, "scale_percentiles", (float(lo), float(hi)))

    def key(self) -> str:
        """A short hash of every setting: two configs share cache entries only if equal."""
        return _hash(dataclasses.asdict(self))


@dataclass(frozen=True)
class TrainConfig:
    """Training settings. Defaults reproduce the paper except where noted.

    The paper trains with Adam (learning rate 1e-4), categorical cross-entropy, up to
    20 epochs, an 80:20 split and augmentation by rotation, zoom and horizontal flip.
    ``horizontal_flip`` defaults to True only to reproduce it: for a label that names
    the patient's left, a flip moves the lesion to the other side of the image, so the
    flipped image shows the *right* recess under the *left* label.
    """

    epochs: int = PAPER_EPOCHS
    batch_size: int = 8
    learning_rate: float = 1e-4
    validation_fraction: float = 0.2
    seed: int = 0
    rotation_degrees: float = 10.0
    zoom: float = 0.1
    horizontal_flip: bool = True
    class_weight: str | None = None  # None, "balanced" or "rsna" (1/2/4)
    early_stopping_patience: int = 5
    cnn_filters: tuple[int, ...] = (32, 64, 128)
    lstm_units: int = 64
    dense_units: int = 64
    dropout: float = 0.3
    pooling: str = "average"  # "average" (paper) or "flatten": see lss.model.build_cnn_lstm

    def __post_init__(self) -> None:
        _check_types(self)
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction}"
            )
        if self.class_weight not in (None, "balanced", "rsna"):
            raise ValueError(
                f"class_weight must be None, 'balanced' or 'rsna', got {self.class_weight!r}"
            )
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be 'average' or 'flatten', got {self.pooling!r}")
        object.__setattr__(self, "cnn_filters", tuple(int(f) for f in self.cnn_filters))


@dataclass(frozen=True)
class LocaliserConfig:
    """Settings of the recess localiser (:mod:`lss.localiser`).

    Parameters
    ----------
    image_size : int
        The labelled slice is resized to ``image_size`` squared (a multiple of 4).
    filters : tuple of int
        Convolution widths; the score grid is ``image_size / 4`` cells on a side.
    epochs, batch_size, learning_rate : int, int, float
        Adam on the mean absolute error of (u, v); no validation data (the training
        split's points are all it may see).
    shift : float
        Random translation in training, up to this fraction of the image in x and y
        (the target moves with the image). No flips: the recess has a side.
    seed : int
    """

    image_size: int = 96
    filters: tuple[int, ...] = (16, 32, 64)
    epochs: int = 40
    batch_size: int = 16
    learning_rate: float = 2e-3
    shift: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        _check_types(self)
        if self.image_size < 16 or self.image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4 and >= 16, got {self.image_size}")
        if len(self.filters) < 2:
            raise ValueError(f"filters needs at least 2 entries, got {self.filters}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs}, "
                             f"{self.batch_size}")
        if not 0 <= self.shift < 0.5:
            raise ValueError(f"shift must be in [0, 0.5), got {self.shift}")
        object.__setattr__(self, "filters", tuple(int(f) for f in self.filters))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LocaliserConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` naming them."""
        return _build(cls, d, "localiser config")


@dataclass(frozen=True)
class LevelLocaliserConfig(LocaliserConfig):
    """Settings of the sagittal disc-level localiser (:mod:`lss.levels`).

    The fields, their meaning and their checks are those of :class:`LocaliserConfig`;
    only the defaults differ. The middle Sagittal T2/STIR slice is resized to
    ``image_size`` squared: at 128 a pixel is about 2.1 mm of a 270 mm field of view.
    On the phantom (160 training studies, 2-core CPU, about 2-3 min) these defaults
    gave a held-out median error of 0.6 mm (head-foot 0.5 mm, max 2.5 mm); 60 epochs
    gave 0.8 mm, 96 pixels and 60 epochs 1.2 mm (axial slices lie 3-5 mm apart).
    ``shift`` is smaller than the recess localiser's: 0.1 would move L1/L2 or L5/S1
    close to the image edge, where the soft-argmax cannot follow.
    """

    image_size: int = 128
    filters: tuple[int, ...] = (16, 32, 64)
    epochs: int = 100
    batch_size: int = 16
    learning_rate: float = 2e-3
    shift: float = 0.05
    seed: int = 0


#: The book's localiser: smaller input and fewer epochs than :class:`LocaliserConfig`.
BOOK_LOCALISER = LocaliserConfig(image_size=64, epochs=12)


@dataclass(frozen=True)
class Config:
    """One run: the target, the preprocessing and the training settings, and the
    recess localiser's (used only where ``preprocess.crop_mm`` crops a region)."""

    condition: str = "left_subarticular_stenosis"
    level: str = "L4/L5"
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    localiser: LocaliserConfig = field(default_factory=LocaliserConfig)

    def __post_init__(self) -> None:
        column_name(self.condition, self.level)  # validates both

    @property
    def target(self) -> str:
        """The ``train.csv`` column this run predicts."""
        return column_name(self.condition, self.level)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Config:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` naming them."""
        for part in ("preprocess", "train", "localiser"):
            if not isinstance(d.get(part, {}), Mapping):
                raise ValueError(f"'{part}' must be a mapping of settings, got {d[part]!r}")
        d = dict(d)
        pre = _build(PreprocessConfig, d.pop("preprocess", {}), "preprocess")
        tr = _build(TrainConfig, d.pop("train", {}), "train")
        loc = _build(LocaliserConfig, d.pop("localiser", {}), "localiser")
        return _build(cls, d, "config", extra={"preprocess": pre, "train": tr, "localiser": loc})

    @classmethod
    def from_file(cls, path: str | Path) -> Config:
        """Read a config from YAML or JSON (``.yml``, ``.yaml``, ``.json``).

        Every problem is a one-line ``ValueError`` naming the file: a folder, text that is
        not JSON or YAML (YAML is read with ``safe_load``: no Python tags), a setting
        that is unknown or of the wrong type.
        """
        path = Path(path)
        if path.is_dir():
            raise ValueError(f"Config file {path} is a folder")
        if not path.is_file():
            raise FileNotFoundError(f"Config file not found: {path}")
        text = path.read_text(errors="replace")
        try:
            if path.suffix in (".yml", ".yaml"):
                import yaml

                d = yaml.safe_load(text) or {}
            else:
                d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"Config file {path} is not valid JSON: {exc}") from None
        except Exception as exc:  # noqa: BLE001 -- yaml.YAMLError and its subclasses
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ValueError(f"Config file {path} is not valid YAML: {first}") from None
        if not isinstance(d, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        try:
            return cls.from_dict(d)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from None

    def replace(self, **changes: Any) -> Config:
        """A copy with top-level fields or ``preprocess``/``train`` sub-fields changed.

        >>> Config().replace(epochs=2, n_slices=4).train.epochs
        2
        """
        top, pre, tr = {}, {}, {}
        pre_names = {f.name for f in dataclasses.fields(PreprocessConfig)}
        tr_names = {f.name for f in dataclasses.fields(TrainConfig)}
        for k, v in changes.items():
            if k in {"condition", "level", "preprocess", "train", "localiser"}:
                top[k] = v
            elif k in pre_names:
                pre[k] = v
            elif k in tr_names:
                tr[k] = v
            else:
                raise ValueError(f"Unknown setting '{k}'")
        out = dataclasses.replace(self, **top)
        if pre:
            out = dataclasses.replace(out, preprocess=dataclasses.replace(out.preprocess, **pre))
        if tr:
            out = dataclasses.replace(out, train=dataclasses.replace(out.train, **tr))
        return out


def _build(cls: type, d: Mapping[str, Any], where: str, extra: Mapping[str, Any] | None = None):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"Unknown key(s) in {where}: {sorted(unknown)}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    kwargs.update(extra or {})
    return cls(**kwargs)


def _hash(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
