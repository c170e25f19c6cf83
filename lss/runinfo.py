"""Provenance of a run: which data it saw and with what code, written as ``manifest.json``.

Every training, evaluation and experiment run writes a manifest, so that any number the
book or a user reports can be traced to its data (the synthetic phantom or the RSNA
scans), its settings, its seed and the code that produced it.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lss

__all__ = ["data_source", "data_label", "git_commit", "write_manifest", "read_manifest"]


def data_source(root: str | Path) -> dict[str, Any]:
    """Describe a data root: the phantom (with its marker) or real RSNA 2024 data.

    Returns
    -------
    dict
        ``root`` (absolute path), ``kind`` ("phantom" or "rsna") and ``label``, a phrase
        to print beside every number, e.g. ``"synthetic phantom (seed 0, 200 studies)"``.
    """
    from lss.phantom import read_marker

    root = Path(root).resolve()
    marker = read_marker(root)
    if marker is not None:
        what = f"seed {marker.get('seed')}, {marker.get('n_studies')} studies"
        if marker.get("mode") == "from-tables":
            what += ", rendered from the real label tables"
        return {"root": str(root), "kind": "phantom", "phantom": marker,
                "label": f"synthetic phantom ({what})"}
    return {"root": str(root), "kind": "rsna", "phantom": None,
            "label": f"RSNA 2024 data at {root}"}


def data_label(root: str | Path) -> str:
    """The phrase naming a data root's kind, e.g. ``"synthetic phantom (seed 0, ...)"``."""
    return data_source(root)["label"]


def git_commit(path: str | Path | None = None) -> str | None:
    """The git commit of the working tree holding ``lss`` (None outside a checkout)."""
    where = Path(path) if path else Path(lss.__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                             text=True, timeout=5, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=where, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _environment() -> dict[str, Any]:
    env: dict[str, Any] = {"lss_version": lss.__version__, "python": sys.version.split()[0],
                           "platform": platform.platform(), "cpu_count": os.cpu_count(),
                           "git_commit": git_commit()}
    if "keras" in sys.modules:
        import keras

        env["keras_version"] = keras.__version__
        env["keras_backend"] = keras.backend.backend()
    return env


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    """The manifest of a run folder (an empty dict where none was written)."""
    path = Path(run_dir) / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def write_manifest(run_dir: str | Path, updates: dict[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` into ``run_dir/manifest.json`` (atomically) and return it.

    The environment (package version, git commit, Python, Keras backend) and a
    timestamp are refreshed on every write.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(run_dir)
    manifest.update(updates)
    manifest["environment"] = _environment()
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    manifest.setdefault("created", now)
    manifest["updated"] = now
    tmp = run_dir / ".manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, default=_json_default))
    os.replace(tmp, run_dir / "manifest.json")
    return manifest


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)
