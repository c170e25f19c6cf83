"""Getting a data root for the chapters: the phantom (default) or the Kaggle download.

The RSNA 2024 images are licence-gated (a Kaggle account that accepted the competition
rules), about 35 GB, and cannot be fetched on the machines this project is built on.
:func:`ensure_data` therefore makes the synthetic phantom by default and downloads the
real data only when asked, with the user's own Kaggle credentials.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

from lss.errors import DataError

__all__ = ["ensure_data", "download_kaggle", "attached_kaggle_data", "KAGGLE_COMPETITION",
           "KAGGLE_INPUT", "SOURCES"]

KAGGLE_COMPETITION = "rsna-2024-lumbar-spine-degenerative-classification"
#: Where a Kaggle notebook finds its attached datasets and competitions (read-only).
KAGGLE_INPUT = Path("/kaggle/input")
#: The values of :func:`ensure_data`'s ``source``.
SOURCES = ("auto", "phantom", "kaggle", "existing")


def attached_kaggle_data(input_dir: str | Path | None = None) -> Path | None:
    """The competition's data attached to a Kaggle notebook, or None elsewhere.

    ``input_dir`` defaults to :data:`KAGGLE_INPUT`; the data counts as attached when
    ``<input_dir>/<KAGGLE_COMPETITION>/train.csv`` exists.
    """
    root = Path(KAGGLE_INPUT if input_dir is None else input_dir) / KAGGLE_COMPETITION
    return root if (root / "train.csv").is_file() else None


def ensure_data(
    data_dir: str | Path,
    *,
    source: str = "phantom",
    n_studies: int = 200,
    seed: int = 0,
    workers: int | None = None,
) -> Path:
    """Make sure ``data_dir`` holds a data root, and return it.

    Parameters
    ----------
    data_dir : str or Path
        The root in the Kaggle layout.
    source : {"auto", "phantom", "kaggle", "existing"}
        ``"auto"``: the competition's data attached to a Kaggle notebook
        (:func:`attached_kaggle_data`) when there is one, else as ``"phantom"`` (a
        folder with real data is used as it is, else the phantom). ``"phantom"``:
        reuse the phantom in ``data_dir`` if it was made with the same ``n_studies``
        and ``seed``, make it if the folder is absent or empty; a folder with real
        data is used as it is. ``"kaggle"``: download and unpack the
        competition data there (needs Kaggle credentials; see
        :func:`download_kaggle`). ``"existing"``: only check that the tables are there.
    n_studies, seed : int
        The fewest phantom studies the caller needs, and the seed. A complete phantom
        with the same seed and at least ``n_studies`` studies is used as it is, so a
        chapter that needs 24 studies runs on the book's 200-study phantom, and opened
        alone makes only its 24.

    Raises
    ------
    DataError
        If a phantom with other settings is in the way, or ``"existing"`` finds no
        ``train.csv``.
    """
    from lss.phantom import make_phantom, read_marker

    data_dir = Path(data_dir)
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(map(repr, SOURCES))}, "
                         f"got {source!r}")
    if source == "auto":
        attached = attached_kaggle_data()
        if attached is not None:
            return attached
        source = "phantom"
    has_tables = (data_dir / "train.csv").is_file()
    if source == "existing" or (source == "phantom" and has_tables
                                and read_marker(data_dir) is None):
        if not has_tables:
            raise DataError(f"No train.csv in {data_dir}")
        return data_dir  # real data (or another layout-compatible root): use as is
    if source == "kaggle":
        return data_dir if has_tables else download_kaggle(data_dir)
    marker = read_marker(data_dir) if data_dir.is_dir() else None
    if marker is not None:
        if _serves(marker, n_studies=n_studies, seed=seed):
            return data_dir
        if not marker.get("complete"):
            return make_phantom(data_dir, n_studies=n_studies, seed=seed, workers=workers,
                                overwrite=True)
        raise DataError(
            f"{data_dir} holds a phantom with n_studies={marker.get('n_studies')}, "
            f"seed={marker.get('seed')}; asked for n_studies>={n_studies}, seed={seed}. "
            f"Use another DATA_DIR or delete that folder."
        )
    return make_phantom(data_dir, n_studies=n_studies, seed=seed, workers=workers)


def _serves(marker: dict, *, n_studies: int, seed: int) -> bool:
    """Whether a phantom's marker answers a request for ``n_studies`` with ``seed``.

    >>> _serves({"mode": "sampled", "complete": True, "n_studies": 200, "seed": 0},
    ...         n_studies=24, seed=0)
    True
    >>> _serves({"mode": "sampled", "complete": True, "n_studies": 24, "seed": 0},
    ...         n_studies=200, seed=0)
    False
    """
    return (marker.get("mode") == "sampled" and marker.get("complete") is True
            and marker.get("seed") == seed
            and int(marker.get("n_studies") or 0) >= n_studies)


def download_kaggle(data_dir: str | Path, *, competition: str = KAGGLE_COMPETITION) -> Path:
    """Download and unpack the RSNA 2024 competition data with the Kaggle CLI.

    Needs ``pip install kaggle``, a Kaggle account that has accepted the competition
    rules, and credentials in ``~/.kaggle/kaggle.json`` or the ``KAGGLE_USERNAME`` and
    ``KAGGLE_KEY`` environment variables (in Colab: the Secrets panel). About 35 GB.
    """
    data_dir = Path(data_dir)
    if shutil.which("kaggle") is None:
        raise DataError("The Kaggle CLI is not installed: pip install kaggle")
    creds = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle")) / "kaggle.json"
    if not creds.is_file() and not (os.environ.get("KAGGLE_USERNAME")
                                    and os.environ.get("KAGGLE_KEY")):
        raise DataError(f"No Kaggle credentials: put kaggle.json in {creds.parent} or set "
                        f"KAGGLE_USERNAME and KAGGLE_KEY")
    data_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["kaggle", "competitions", "download", "-c", competition, "-p",
                    str(data_dir)], check=True)
    archive = data_dir / f"{competition}.zip"
    with zipfile.ZipFile(archive) as z:
        z.extractall(data_dir)
    archive.unlink()
    if not (data_dir / "train.csv").is_file():
        raise DataError(f"The download did not produce {data_dir / 'train.csv'}")
    return data_dir
