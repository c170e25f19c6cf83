"""The book's structure: chapters committed clean, paired, parameterised, listed in the toc.

Executing the chapters is nbmake's job (``make test`` passes ``book`` with ``--nbmake``);
these checks catch what execution would not: committed outputs, a .py/.ipynb pair that
drifted apart, a chapter missing from the toc, a parameters cell papermill cannot find.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
NOTEBOOKS = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))
COMMON_PARAMETERS = {"DATA_DIR", "DATA_SOURCE", "WORK_DIR", "CACHE_DIR", "SEED"}


def _load_runner():
    spec = importlib.util.spec_from_file_location("run_chapters", BOOK / "run_chapters.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_chapters"] = module
    spec.loader.exec_module(module)
    return module


def _cells(nb_path: Path) -> list[dict]:
    return json.loads(nb_path.read_text())["cells"]


def _source(cell: dict) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def test_there_are_chapters():
    assert len(NOTEBOOKS) >= 5, [p.name for p in NOTEBOOKS]


def test_toc_lists_every_chapter_and_every_entry_exists():
    runner = _load_runner()
    files = runner.toc_files()
    for f in files:
        assert (REPO / f"{f}.md").is_file() or (REPO / f"{f}.ipynb").is_file(), f
    listed = {f for f in files if f.startswith("book/")}
    for nb in NOTEBOOKS:
        assert f"book/{nb.stem}" in listed, f"{nb.name} is not in _toc.yml"
    assert [p.stem for p in runner.chapters()] == sorted(p.stem for p in runner.chapters())


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_is_committed_without_outputs(nb):
    for cell in _cells(nb):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{nb.name} has outputs"
            assert cell.get("execution_count") is None, f"{nb.name} has execution counts"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_has_a_parameters_cell_papermill_can_use(nb):
    tagged = [c for c in _cells(nb) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{nb.name}: expected one cell tagged 'parameters'"
    names = set(re.findall(r"^([A-Z][A-Z0-9_]*)\s*=", _source(tagged[0]), flags=re.M))
    assert COMMON_PARAMETERS <= names, f"{nb.name} lacks {COMMON_PARAMETERS - names}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_opens_with_title_and_colab_bootstrap(nb):
    cells = _cells(nb)
    assert cells[0]["cell_type"] == "markdown" and _source(cells[0]).startswith("# ")
    first_code = next(c for c in cells if c["cell_type"] == "code")
    src = _source(first_code)
    assert '"google.colab" in sys.modules' in src and "pip" in src, nb.name
    text = "\n".join(_source(c) for c in cells if c["cell_type"] == "markdown")
    for heading in ("Overview", "Prerequisites", "Summary", "What's next"):
        assert heading in text, f"{nb.name} lacks a '{heading}' section"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_pairs_are_in_sync(nb):
    jupytext = pytest.importorskip("jupytext")
    py = nb.with_suffix(".py")
    assert py.is_file(), f"{py.name} (the jupytext percent source) is missing"
    a = jupytext.read(py)
    b = jupytext.read(nb)

    def strip(cells):
        return [(c.cell_type, c.source.strip()) for c in cells]

    assert strip(a.cells) == strip(b.cells), f"{nb.name} and {py.name} differ: make sync"


def test_pins_that_matter():
    tomllib = pytest.importorskip("tomllib")
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = meta["optional-dependencies"]
    assert any(r.replace(" ", "").startswith("jupyter-book") and "<2" in r
               for r in extras["book"])
    assert any(r.startswith("pytest") and "<10" in r for r in extras["dev"])
    # Colab ships TensorFlow: the core install must not pull a second one
    assert not any("tensorflow" in r for r in meta["dependencies"])
    assert any("tensorflow-cpu" in r for r in extras["tf"])


def test_book_config_builds_from_executed_notebooks():
    cfg = yaml.safe_load((REPO / "_config.yml").read_text())
    assert cfg["execute"]["execute_notebooks"] == "off"
    assert "colab_url" in cfg["launch_buttons"]
    assert cfg["repository"]["url"].startswith("https://github.com/")


def test_stage_copies_pages_and_executed_notebooks(tmp_path):
    runner = _load_runner()
    executed = tmp_path / "executed"
    for nb in runner.chapters():
        target = executed / nb.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(nb.read_text())
    site = tmp_path / "site"
    runner.stage(executed, site)
    assert (site / "_config.yml").is_file() and (site / "_toc.yml").is_file()
    for f in runner.toc_files():
        assert (site / f"{f}.md").is_file() or (site / f"{f}.ipynb").is_file(), f
    (executed / "book" / NOTEBOOKS[0].name).unlink()
    with pytest.raises(SystemExit, match="neither"):
        runner.stage(executed, site)


def test_staging_drops_tensorflow_native_logs_and_keeps_python_warnings(tmp_path):
    runner = _load_runner()
    logs = ("WARNING: All log messages before absl::InitializeLog() is called are written "
            "to STDERR\n"
            "I0000 00:00:1795764941.886666   14988 cpu_feature_guard.cc:227] This "
            "TensorFlow binary is optimized to use available CPU instructions.\n"
            "To enable the following instructions: AVX2 FMA, in other operations, rebuild "
            "TensorFlow with the appropriate compiler flags.\n"
            "E0000 00:00:1795765216.474323   14988 node_def_util.cc:682] NodeDef mentions "
            "attribute use_unbounded_threadpool\n")
    warning = "/x/lss/train.py:12: UserWarning: only 3 studies in the validation split\n"
    nb = json.loads(NOTEBOOKS[0].read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    code[0]["outputs"] = [{"output_type": "stream", "name": "stderr", "text": logs}]
    code[1]["outputs"] = [{"output_type": "stream", "name": "stderr", "text": logs + warning},
                          {"output_type": "stream", "name": "stdout", "text": "I0000 kept\n"}]
    executed = tmp_path / "executed"
    for chapter in runner.chapters():
        target = executed / chapter.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(nb) if chapter == NOTEBOOKS[0] else chapter.read_text())
    runner.stage(executed, tmp_path / "site")
    staged = json.loads((tmp_path / "site" / "book" / NOTEBOOKS[0].name).read_text())
    staged_code = [c for c in staged["cells"] if c["cell_type"] == "code"]
    assert staged_code[0]["outputs"] == []
    assert staged_code[1]["outputs"] == [
        {"output_type": "stream", "name": "stderr", "text": warning},
        {"output_type": "stream", "name": "stdout", "text": "I0000 kept\n"}]
    assert json.loads((executed / "book" / NOTEBOOKS[0].name).read_text()) == nb  # untouched
