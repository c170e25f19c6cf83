"""The offline install kit of a Kaggle code submission (data_scripts/kaggle_kit.py)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import lss

REPO = Path(__file__).resolve().parents[1]


def _kit_module():
    spec = importlib.util.spec_from_file_location("kaggle_kit",
                                                  REPO / "data_scripts" / "kaggle_kit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _offline_pip(*args: str) -> subprocess.CompletedProcess:
    """pip with no index and no configured wheel folders: only what ``args`` name."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check",
                           "install", "--no-index", *args], env=env, capture_output=True,
                          text=True)


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kit") / "kaggle-kit"
    _kit_module().build_kit(out, pure=("pydicom",))
    return out


def test_the_kit_holds_the_lss_wheel_the_pure_wheels_and_how_to_install(kit):
    names = sorted(p.name for p in kit.glob("*.whl"))
    assert f"lss-{lss.__version__}-py3-none-any.whl" in names
    assert any(n.startswith("pydicom-") and n.endswith("-none-any.whl") for n in names)
    assert "--no-index --find-links /kaggle/input/" in (kit / "README.txt").read_text()


def test_the_kit_holds_the_submission_notebook_with_its_parameters(kit):
    import json

    import jupytext

    nb = json.loads((kit / "submission.ipynb").read_text())
    source = jupytext.read(str(REPO / "data_scripts" / "kaggle_submission.py"))
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert code == [c["source"] for c in source["cells"] if c["cell_type"] == "code"]
    assert nb["cells"][0]["source"][0].startswith("# ")  # a title first
    params = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(params) == 1 and 'INPUT = "/kaggle/input"' in "".join(params[0]["source"])
    assert "--no-index" in code[1] and "--find-links" in code[1]


def test_lss_installs_from_the_kit_without_an_index(kit, tmp_path):
    """As on Kaggle without internet: pip finds lss and pydicom in the kit only (the
    other dependencies are the environment's), and the installed package imports."""
    target = tmp_path / "site"
    done = _offline_pip("--find-links", str(kit), "--no-deps", "--target", str(target),
                        "lss", "pydicom")
    assert done.returncode == 0, done.stderr
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import lss, lss.cli, pydicom; "
            "print(lss.__version__, lss.__file__)")
    out = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[0] == lss.__version__ and Path(out[1]).is_relative_to(target)
    # the check can fail: without the kit, the same offline install finds nothing
    empty = tmp_path / "empty"
    empty.mkdir()
    missed = _offline_pip("--find-links", str(empty), "--no-deps", "--target",
                          str(tmp_path / "other"), "lss")
    assert missed.returncode != 0 and "lss" in missed.stderr
