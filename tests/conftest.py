"""Shared fixtures: the real label tables when present, and tiny synthetic roots."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/dicom_factory.py

REPO = Path(__file__).resolve().parents[1]


def real_labels_dir() -> Path | None:
    """The RSNA 2024 label tables: ``$LSS_RSNA_LABELS`` or ``../shared/rsna2024-labels``."""
    candidates = [os.environ.get("LSS_RSNA_LABELS"), REPO.parent / "shared" / "rsna2024-labels"]
    for c in candidates:
        if c and (Path(c) / "train.csv").is_file():
            return Path(c)
    return None


@pytest.fixture(scope="session")
def labels_dir() -> Path:
    path = real_labels_dir()
    if path is None:
        pytest.skip("RSNA 2024 label tables not found (set LSS_RSNA_LABELS or place them in "
                    "../shared/rsna2024-labels)")
    return path


@pytest.fixture(scope="session")
def phantom_root(tmp_path_factory) -> Path:
    """A 24-study phantom with 3 test studies (seed 0), made once per session in a
    temporary folder: tests never rely on a phantom a checkout may not hold."""
    from lss.phantom import make_phantom

    return make_phantom(tmp_path_factory.mktemp("phantom24") / "ph", n_studies=24, seed=0,
                        n_test_studies=3, workers=1)


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    """Three labelled studies with images, one with two Axial T2 series, one unlabelled."""
    from dicom_factory import write_series, write_tables

    root = tmp_path / "root"
    studies = {
        101: {"label": "Moderate", "series": [(11, "Axial T2"), (12, "Sagittal T1")],
              "coord": (11, 3, 8.0, 8.0)},
        102: {"label": "Severe", "series": [(21, "Axial T2"), (22, "Axial T2")],
              "coord": (22, 12, 5.0, 9.0)},
        103: {"label": "Normal/Mild", "series": [(31, "Axial T2")], "coord": None},
        104: {"label": None, "series": [(41, "Axial T2")], "coord": (41, 2, 8.0, 8.0)},
    }
    write_tables(root, studies)
    images = root / "train_images"
    write_series(images / "101" / "11", 6)
    write_series(images / "102" / "21", 4)
    write_series(images / "102" / "22", 6, first_instance=10)
    write_series(images / "103" / "31", 5, instances_toward_feet=False)
    write_series(images / "104" / "41", 3)
    return root
