"""The ``PHANTOM.json`` marker that labels a directory as synthetic data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["MARKER_NAME", "GENERATOR", "read_marker", "is_phantom", "write_marker"]

#: File name of the marker at the phantom's root.
MARKER_NAME = "PHANTOM.json"
#: Value of the marker's ``generator`` field.
GENERATOR = "lss.phantom"


def read_marker(root: str | Path) -> dict[str, Any] | None:
    """The phantom marker of a data directory, or ``None`` for real data.

    Parameters
    ----------
    root : str or Path
        A directory in the RSNA 2024 layout.

    Returns
    -------
    dict or None
        The parsed ``PHANTOM.json`` (``generator``, ``lss_version``, ``seed``,
        ``n_studies``, ``mode``, ``tables``, ``study_ids``, ``created``, ...), or
        ``None`` when the directory has no marker.

    Raises
    ------
    NotADirectoryError
        If ``root`` is not a directory.
    ValueError
        If a marker exists but is not valid JSON or was not written by ``lss.phantom``.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"Not a directory: {root}")
    path = root / MARKER_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict) or data.get("generator") != GENERATOR:
        found = data.get("generator") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path}: not a {GENERATOR} marker (generator={found!r})")
    return data


def is_phantom(root: str | Path) -> bool:
    """True if ``root`` holds a phantom written by :func:`lss.phantom.make_phantom`.

    Use it to label every number computed from the directory as phantom data.

    Raises
    ------
    NotADirectoryError
        If ``root`` is not a directory.
    """
    return read_marker(root) is not None


def write_marker(root: str | Path, fields: dict[str, Any]) -> Path:
    """Write ``PHANTOM.json`` with ``generator`` set; returns its path."""
    path = Path(root) / MARKER_NAME
    path.write_text(json.dumps({"generator": GENERATOR, **fields}, indent=2) + "\n")
    return path
