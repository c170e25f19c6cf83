"""The book's structure: chapters committed clean, paired, parameterised, listed in the toc.

Executing the chapters is nbmake's job (``make test`` passes ``book`` with ``--nbmake``);
these checks catch what execution would not: committed outputs, a .py/.ipynb pair that
drifted apart, a chapter missing from the toc, a parameters cell papermill cannot find,
an install cell that is not the release's, a private path on a staged page, a student
notebook that still holds a solution, a syllabus that no longer quotes its chapters.
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
    for cell in nb["cells"]:  # partly "executed" without images: not the figure check's case
        cell["metadata"].pop("mystnb", None)
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


# --- The release: one version, one repository, every install cell derived from both ----

def test_package_version_is_pyprojects():
    import lss

    runner = _load_runner()
    assert lss.__version__ == runner.package_version(), (
        f"lss.__version__ {lss.__version__} != pyproject.toml's {runner.package_version()}")


def test_install_requirement_is_the_release_tag_of_the_configured_repository():
    runner = _load_runner()
    url = yaml.safe_load((REPO / "_config.yml").read_text())["repository"]["url"]
    version = runner.package_version()
    assert runner.install_requirement() == f"lss @ git+{url.rstrip('/')}@v{version}"
    assert f'"{runner.install_requirement()}"' in runner.install_cell()
    assert runner.install_cell().startswith(runner.INSTALL_MARKER)


def test_release_is_read_from_the_files_given(tmp_path):
    runner = _load_runner()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "lss"\nversion = "2.3.4"\n')
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://github.com/a/b.git/\n")
    assert runner.package_version(tmp_path / "pyproject.toml") == "2.3.4"
    assert runner.repository_url(tmp_path / "_config.yml") == "https://github.com/a/b"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_install_cell_is_the_derived_one(nb):
    runner = _load_runner()
    expected = runner.install_cell()
    assert runner.py_install_cell(nb.with_suffix(".py").read_text()) == expected, (
        f"{nb.with_suffix('.py').name}: install cell is not the release's: make sync-install")
    assert runner.notebook_install_cell(json.loads(nb.read_text())) == expected, (
        f"{nb.name}: install cell is not the release's: make sync-install (or make sync)")


def test_sync_install_rewrites_only_the_install_cell(tmp_path):
    runner = _load_runner()
    before = ("# %% [markdown]\n# # Title\n\n"
              "# %%\n# In Colab only: install lss from somewhere.\nimport sys\n\n"
              "# %% [markdown]\n# All imports.\n\n# %%\nimport os\n")
    path = tmp_path / "01_x.py"
    path.write_text(before)
    assert runner.sync_install([path]) == [path]
    after = path.read_text()
    assert runner.py_install_cell(after) == runner.install_cell()
    assert after.startswith("# %% [markdown]\n# # Title\n\n# %%\n")
    assert after.endswith("\n\n# %% [markdown]\n# All imports.\n\n# %%\nimport os\n")
    assert runner.sync_install([path]) == []  # idempotent
    (tmp_path / "02_y.py").write_text("# %%\nimport os\n")
    with pytest.raises(SystemExit, match="02_y.py has no cell starting"):
        runner.sync_install([tmp_path / "02_y.py"])


def _record_calls(monkeypatch) -> dict:
    """Record, instead of making, the install cell's pip runs, chdirs and makedirs."""
    import os
    import subprocess

    calls = {"run": [], "chdir": [], "makedirs": []}
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls["run"].append(a[0]))
    monkeypatch.setattr(os, "chdir", lambda p: calls["chdir"].append(p))
    monkeypatch.setattr(os, "makedirs", lambda p, **k: calls["makedirs"].append(p))
    return calls


def _fake_colab(monkeypatch, secrets):
    """A google.colab with a Secrets panel holding ``secrets``; returns the calls made."""
    import types

    class SecretNotFoundError(Exception):
        pass

    class NotebookAccessError(Exception):
        pass

    def get(name):
        if name not in secrets:
            raise SecretNotFoundError(name)
        return secrets[name]

    userdata = types.SimpleNamespace(get=get, SecretNotFoundError=SecretNotFoundError,
                                     NotebookAccessError=NotebookAccessError)
    colab = types.ModuleType("google.colab")
    colab.userdata = userdata
    try:
        import google  # noqa: F401  (a namespace package, when protobuf is installed)
    except ImportError:
        monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    calls = _record_calls(monkeypatch)
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    return calls


def test_install_cell_does_nothing_outside_colab(monkeypatch):
    import os
    import subprocess

    runner = _load_runner()
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("pip ran"))
    monkeypatch.setattr(os, "chdir", lambda p: pytest.fail("changed directory"))
    exec(compile(runner.install_cell(), "install-cell", "exec"), {})


def test_install_cell_in_colab_installs_the_release_under_content(monkeypatch, capsys):
    import os

    runner = _load_runner()
    calls = _fake_colab(monkeypatch, {"KAGGLE_USERNAME": "ann", "KAGGLE_KEY": "s3cret"})
    exec(compile(runner.install_cell(), "install-cell", "exec"), {})
    assert calls["run"] == [[sys.executable, "-m", "pip", "install", "-q",
                             runner.install_requirement()]]
    assert calls["chdir"] == ["/content/book"]  # ../data/phantom is /content/data/phantom
    assert os.path.normpath(os.path.join("/content/book", "../runs/book")) == "/content/runs/book"
    assert os.environ["KAGGLE_USERNAME"] == "ann" and os.environ["KAGGLE_KEY"] == "s3cret"
    assert "s3cret" not in capsys.readouterr().out


def _fake_kaggle(monkeypatch, *, lss_installed):
    """A Kaggle notebook (its run-type variable set); returns the calls the cell made."""
    import importlib.util

    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: (
        real(name, *a) if name != "lss" or lss_installed else None))
    calls = _record_calls(monkeypatch)
    return calls


def test_install_cell_on_kaggle_installs_the_release_and_works_in_kaggle_working(
        monkeypatch):
    import os

    runner = _load_runner()
    calls = _fake_kaggle(monkeypatch, lss_installed=False)
    exec(compile(runner.install_cell(), "install-cell", "exec"), {})
    assert calls["run"] == [[sys.executable, "-m", "pip", "install", "-q",
                             runner.install_requirement()]]
    assert calls["makedirs"] == ["/kaggle/working/book"]
    assert calls["chdir"] == ["/kaggle/working/book"]  # /kaggle/input is read-only
    assert os.path.normpath(os.path.join("/kaggle/working/book", "../.cache")) == \
        "/kaggle/working/.cache"


def test_install_cell_on_kaggle_keeps_an_lss_installed_offline(monkeypatch):
    """A notebook without internet installs lss from the offline kit first: the cell
    must not then call pip (which would fail there)."""
    runner = _load_runner()
    calls = _fake_kaggle(monkeypatch, lss_installed=True)
    exec(compile(runner.install_cell(), "install-cell", "exec"), {})
    assert calls["run"] == []
    assert calls["chdir"] == ["/kaggle/working/book"]


def test_every_chapter_finds_attached_kaggle_data_by_default():
    """``DATA_SOURCE = "auto"`` in every chapter's parameters: on Kaggle, the attached
    competition data; elsewhere the phantom (lss.data.sources.ensure_data)."""
    for nb in NOTEBOOKS:
        text = nb.with_suffix(".py").read_text()
        assert re.search(r'^DATA_SOURCE = "auto" ', text, flags=re.M), nb.name
        assert "ensure_data(DATA_DIR, source=DATA_SOURCE" in text, nb.name


def test_install_cell_in_colab_without_secrets_sets_no_credentials(monkeypatch):
    import os

    runner = _load_runner()
    calls = _fake_colab(monkeypatch, {})
    exec(compile(runner.install_cell(), "install-cell", "exec"), {})
    assert len(calls["run"]) == 1
    assert "KAGGLE_USERNAME" not in os.environ and "KAGGLE_KEY" not in os.environ


# --- Staging: the release tag, no injected parameters, nothing private on a page -------

def _executed(tmp_path, runner, first=None):
    """Fake executed notebooks: the source ones, the first replaced by ``first``."""
    executed = tmp_path / "executed"
    for chapter in runner.chapters():
        target = executed / chapter.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(first) if first is not None and chapter == NOTEBOOKS[0] \
            else chapter.read_text()
        target.write_text(text)
    return executed


def test_staged_config_opens_colab_at_the_release_tag(tmp_path):
    runner = _load_runner()
    runner.stage(_executed(tmp_path, runner), tmp_path / "site")
    staged = yaml.safe_load((tmp_path / "site" / "_config.yml").read_text())
    source = yaml.safe_load((REPO / "_config.yml").read_text())
    assert staged["repository"]["branch"] == f"v{runner.package_version()}"
    assert staged["repository"]["url"] == source["repository"]["url"]
    assert {k: v for k, v in staged.items() if k != "repository"} == \
        {k: v for k, v in source.items() if k != "repository"}


def test_every_staged_chapter_opens_in_colab_and_in_kaggle_at_the_release(tmp_path):
    runner = _load_runner()
    runner.stage(_executed(tmp_path, runner), tmp_path / "site")
    tag = f"v{runner.package_version()}"
    url = runner.repository_url()
    for nb in NOTEBOOKS:
        chapter = nb.relative_to(REPO).with_suffix("").as_posix()
        staged = json.loads((tmp_path / "site" / f"{chapter}.ipynb").read_text())
        first = "".join(staged["cells"][0]["source"]).split("\n")
        assert first[0].startswith("# "), chapter  # the title stays first
        links = first[2]
        assert f"(https://www.kaggle.com/kernels/welcome?src={url}/blob/{tag}/" \
            f"{chapter}.ipynb)" in links, links
        assert f"(https://colab.research.google.com/github/" \
            f"{url.removeprefix('https://github.com/')}/blob/{tag}/{chapter}.ipynb)" \
            in links, links
        source = json.loads(nb.read_text())["cells"][0]["source"]
        assert "Open in Kaggle" not in "".join(source)  # only the page gets them


def test_a_recorded_gpu_execution_is_published_instead_of_the_cpu_one(tmp_path):
    runner = _load_runner()
    executed = _executed(tmp_path, runner)
    chapter = next(nb for nb in NOTEBOOKS if nb.stem.startswith("04_"))
    gpu = json.loads(chapter.read_text())
    gpu["cells"].append({"cell_type": "markdown", "metadata": {}, "id": "gpu-run",
                         "source": "Executed on the recorded GPU."})
    pages = tmp_path / "measured"
    pages.mkdir()
    (pages / f"{chapter.stem}.gpu.ipynb").write_text(json.dumps(gpu))
    runner.stage(executed, tmp_path / "site", gpu_pages=pages)
    name = chapter.relative_to(REPO).as_posix()
    staged = json.loads((tmp_path / "site" / name).read_text())
    assert staged["cells"][-1]["source"] == "Executed on the recorded GPU."
    other = json.loads((tmp_path / "site" / NOTEBOOKS[0].relative_to(REPO)).read_text())
    assert "Executed on the recorded GPU." not in json.dumps(other)
    runner.stage(executed, tmp_path / "site2", gpu_pages=tmp_path / "none")  # fallback
    staged = json.loads((tmp_path / "site2" / name).read_text())
    assert "Executed on the recorded GPU." not in json.dumps(staged)


def test_staging_hides_papermills_injected_parameters(tmp_path):
    runner = _load_runner()
    nb = json.loads(NOTEBOOKS[0].read_text())
    injected = {"cell_type": "code", "execution_count": None, "outputs": [],
                "metadata": {"tags": ["injected-parameters"]},
                "source": 'DATA_DIR = "/somewhere/data/phantom"\n'}
    nb["cells"].insert(7, injected)
    runner.stage(_executed(tmp_path, runner, nb), tmp_path / "site")
    staged = json.loads((tmp_path / "site" / "book" / NOTEBOOKS[0].name).read_text())
    tags = [c.get("metadata", {}).get("tags", []) for c in staged["cells"]]
    assert tags[7] == ["injected-parameters", "remove-cell"]
    assert sum("remove-cell" in t for t in tags) == 1  # the chapter's own cell stays


def _private_values():
    import socket

    runner = _load_runner()
    values = {"build root": f"saved to {runner.REPO}/runs/book/cnn_lstm\n"}
    if str(Path.home()) not in ("", "/"):
        values["home directory"] = f"reading {Path.home()}/.keras/keras.json\n"
    if socket.gethostname() not in ("", "localhost"):
        values["host name"] = f"running on {socket.gethostname()}\n"
    return values


@pytest.mark.parametrize("what", ["build root", "home directory", "host name"])
def test_staging_stops_when_an_output_shows_a_private_value(tmp_path, what):
    runner = _load_runner()
    values = _private_values()
    if what not in values:
        pytest.skip(f"this machine's {what} is too generic to look for")
    nb = json.loads(NOTEBOOKS[0].read_text())
    code = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]
    nb["cells"][code[2]]["outputs"] = [
        {"output_type": "stream", "name": "stdout", "text": values[what]}]
    with pytest.raises(SystemExit, match=rf"{NOTEBOOKS[0].name} cell {code[2]} .*{what}") as e:
        runner.stage(_executed(tmp_path, runner, nb), tmp_path / "site")
    assert "\n" not in str(e.value)
    # the same in a rich output or a traceback
    nb["cells"][code[2]]["outputs"] = [
        {"output_type": "error", "ename": "OSError", "evalue": "x",
         "traceback": ["Traceback", values[what]]}]
    with pytest.raises(SystemExit, match=what):
        runner.stage(_executed(tmp_path, runner, nb), tmp_path / "site")


def test_private_patterns_match_whole_names_only(tmp_path):
    runner = _load_runner()
    patterns = runner.private_patterns(Path("/work/main"))
    nb = {"cells": [{"cell_type": "code", "outputs": [
        {"output_type": "stream", "name": "stdout", "text": "/work/mainline and runs/book\n"},
        {"output_type": "display_data", "data": {"image/png": "L3dvcmsvbWFpbg=="}}]}]}
    assert runner.find_private(nb, patterns) is None
    nb["cells"][0]["outputs"].append(
        {"output_type": "execute_result", "data": {"text/html": "<p>/work/main/runs</p>"}})
    assert runner.find_private(nb, patterns) == (0, "the build root /work/main",
                                                 "<p>/work/main/runs</p>")


# --- Course kits: student and instructor notebooks ------------------------------------

def _exercise_notebook() -> dict:
    def cell(kind, source, tags=()):
        c = {"cell_type": kind, "metadata": {"tags": list(tags)} if tags else {},
             "source": source}
        if kind == "code":
            c.update(outputs=[{"output_type": "stream", "name": "stdout", "text": "42\n"}],
                     execution_count=3)
        return c

    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3"}},
            "cells": [
                cell("markdown", "# Title\n\n**Exercise 1.** Compute `answer`."),
                cell("code", "answer = 6 * 7\nprint(answer)", ["solution", "hide-input"]),
                cell("code", "assert answer == 42\nprint('Exercise 1: correct')", ["check"]),
                cell("markdown", "<details><summary>Solution, explained</summary>\n\n"
                                 "Six times seven.\n</details>\n\n"
                                 "**Exercise 2.** Say why."),
                cell("markdown", "<details><summary>Solution</summary>\nBecause.\n</details>"),
                cell("markdown", "<details><summary>More reading</summary>\nKept.\n</details>"),
            ]}


def test_student_notebook_has_no_solutions_and_keeps_the_checks():
    runner = _load_runner()
    nb = _exercise_notebook()
    student = runner.student_notebook(nb)
    sources = [c["source"] for c in student["cells"]]
    text = "\n".join(sources)
    assert "6 * 7" not in text and "Six times seven" not in text and "Because" not in text
    assert "Solution" not in text
    assert sources[1] == ("# Your code here (see the exercise above); "
                          "then run the check cell below.")
    assert "solution" in student["cells"][1]["metadata"]["tags"]
    assert sources[2] == nb["cells"][2]["source"]  # the check cell
    assert sources[3] == "**Exercise 2.** Say why."
    assert "More reading" in text  # details that are not solutions stay
    assert len(student["cells"]) == 5  # the cell holding only a solution is gone
    assert all(c.get("outputs", []) == [] for c in student["cells"])
    assert nb == _exercise_notebook()  # the source is untouched


def test_instructor_notebook_keeps_solutions_and_checks_and_clears_outputs():
    runner = _load_runner()
    nb = _exercise_notebook()
    instructor = runner.instructor_notebook(nb)
    assert [c["source"] for c in instructor["cells"]] == [c["source"] for c in nb["cells"]]
    assert [c["metadata"] for c in instructor["cells"]] == [c["metadata"] for c in nb["cells"]]
    for cell in instructor["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    assert instructor["metadata"] == nb["metadata"]


def test_student_notebook_drops_the_older_solution_admonitions():
    runner = _load_runner()
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source":
                     "**Exercise 1.** Do it.\n\n:::{admonition} Solution\n:class: dropdown\n"
                     "\n```python\nx = 1\n```\n\nBecause.\n:::\n\n**Exercise 2.** Next."}]}
    assert runner.student_notebook(nb)["cells"][0]["source"] == \
        "**Exercise 1.** Do it.\n\n**Exercise 2.** Next."


def test_write_kits_and_staging_write_both_versions_of_every_chapter(tmp_path):
    runner = _load_runner()
    source = tmp_path / "07_fake.ipynb"
    source.write_text(json.dumps(_exercise_notebook()))
    written = runner.write_kits(tmp_path / "kits", [source])
    assert sorted(p.name for p in written) == ["07_fake-instructor.ipynb",
                                               "07_fake-student.ipynb"]
    student = json.loads((tmp_path / "kits" / "07_fake-student.ipynb").read_text())
    assert "6 * 7" not in json.dumps(student)
    runner.stage(_executed(tmp_path, runner), tmp_path / "site")
    kits = tmp_path / "site" / runner.KITS_DIR
    for nb in runner.chapters():
        for kind in ("student", "instructor"):
            assert (kits / f"{nb.stem}-{kind}.ipynb").is_file(), (nb.stem, kind)


def _chapter_cells():
    """(name, cells) of every chapter, the .ipynb and, where jupytext is there, the .py."""
    out = [pytest.param(nb.name, [(c["cell_type"], c.get("metadata", {}).get("tags", []))
                                  for c in _cells(nb)], id=nb.name) for nb in NOTEBOOKS]
    try:
        import jupytext
    except ImportError:
        return out
    for nb in NOTEBOOKS:
        py = jupytext.read(nb.with_suffix(".py"))
        out.append(pytest.param(f"{nb.stem}.py", [(c.cell_type, c.metadata.get("tags", []))
                                                 for c in py.cells], id=f"{nb.stem}.py"))
    return out


@pytest.mark.parametrize("name,cells", _chapter_cells())
def test_every_check_cell_follows_a_solution_cell(name, cells):
    for i, (kind, tags) in enumerate(cells):
        if "check" in tags:
            assert i > 0 and "solution" in cells[i - 1][1], (
                f"{name}: cell {i} is tagged 'check' but cell {i - 1} is not a 'solution'")
        if "solution" in tags:
            assert kind == "code" and "hide-input" in tags, (
                f"{name}: solution cell {i} must be a code cell tagged 'hide-input' too")
            assert i + 1 < len(cells) and "check" in cells[i + 1][1], (
                f"{name}: solution cell {i} is not followed by a 'check' cell")


# --- The syllabus ------------------------------------------------------------------------

def test_syllabus_is_in_the_toc_before_the_chapters():
    files = _load_runner().toc_files()
    assert "book/syllabus" in files
    first_chapter = min(files.index(f"book/{nb.stem}") for nb in NOTEBOOKS)
    assert files.index("book/syllabus") < first_chapter


def _time_to_learn(text: str) -> str:
    found = re.search(r"\*\*Time to learn\*\*:\s*([^.\n]+)", text)
    assert found, "no **Time to learn** line"
    return found.group(1).strip()


def test_syllabus_covers_every_chapter_with_its_own_figures():
    runner = _load_runner()
    syllabus = (BOOK / "syllabus.md").read_text()
    assert "each chapter's own estimate" in " ".join(syllabus.split())
    sessions = re.split(r"^## ", syllabus, flags=re.M)
    for nb in NOTEBOOKS:
        section = next((s for s in sessions if f"{{doc}}`{nb.stem}`" in s.split("\n", 3)[2]),
                       None)
        assert section is not None, f"the syllabus has no session for {nb.stem}"
        for heading in ("After it, a student can", "| Reading |", "| Running |",
                        "| Exercises |", "| Discussion |", "Prerequisites", "Compute"):
            assert heading in section, f"{nb.stem}: the syllabus lacks '{heading}'"
        minutes = [int(m) for m in re.findall(r"^\| [A-Z][a-z]+ \| (\d+) \|$", section,
                                              flags=re.M)]
        assert sum(minutes) == 90, f"{nb.stem}: the session plan adds up to {sum(minutes)}"
        outcomes = re.findall(r"^- ", section.split("After it, a student can")[1]
                              .split("| Activity")[0], flags=re.M)
        assert 3 <= len(outcomes) <= 5, f"{nb.stem}: {len(outcomes)} learning outcomes"
        stated = _time_to_learn(nb.with_suffix(".py").read_text())
        assert f"Time to learn: {stated}" in section.replace("\n", " "), (
            f"{nb.stem}: the chapter says 'Time to learn: {stated}', the syllabus does not")
        for kind in ("student", "instructor"):
            link = f"</{runner.KITS_DIR}/{nb.stem}-{kind}.ipynb>"
            assert link in syllabus, f"the syllabus does not link {link}"


def test_module_doctests():
    import doctest

    result = doctest.testmod(_load_runner())
    assert result.failed == 0 and result.attempted > 0


def test_staging_stops_when_a_declared_figure_has_no_image():
    """A cell with alt text and no image output (a kernel under MPLBACKEND=Agg) stops
    the build with one line, instead of a page without its figure."""
    run_chapters = _load_runner()
    cell = {"cell_type": "code", "metadata": {"mystnb": {"image": {"alt": "a figure"}}},
            "outputs": [{"output_type": "stream", "name": "stdout", "text": "x"}],
            "source": "plot()"}
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "t"}, cell]}
    assert run_chapters.missing_figures(nb) == [1]
    with pytest.raises(SystemExit, match=r"ch\.ipynb: cells \[1\] declare a figure"):
        run_chapters.check_figures(nb, "ch.ipynb")
    cell["outputs"].append({"output_type": "display_data", "metadata": {},
                            "data": {"image/png": "iVBOR", "text/plain": "<Figure>"}})
    assert run_chapters.missing_figures(nb) == []
    cell["outputs"] = []  # never executed: nothing to check
    assert run_chapters.missing_figures(nb) == []
    cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "no tables"}]
    cell["metadata"]["tags"] = ["figure-optional"]  # draws only when its data is there
    assert run_chapters.missing_figures(nb) == []


def test_staging_stops_on_an_output_line_wider_than_the_page():
    """Streams, bare text/plain and error messages are fixed-width on the page: a line
    over 88 columns stops the build; HTML tables and Markdown wrap, and pass."""
    run_chapters = _load_runner()
    wide = "w" * 89
    outputs = [{"output_type": "stream", "name": "stdout", "text": "short\n" + "s" * 88},
               {"output_type": "execute_result", "metadata": {}, "execution_count": 1,
                "data": {"text/plain": wide, "text/html": "<table></table>"}},
               {"output_type": "display_data", "metadata": {},
                "data": {"text/plain": "<Markdown>", "text/markdown": wide}}]
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "source": "f()",
                     "outputs": outputs}]}
    assert run_chapters.wide_lines(nb) == []
    run_chapters.check_widths(nb, "ch.ipynb")
    outputs.append({"output_type": "error", "ename": "DataError", "evalue": wide,
                    "traceback": []})
    outputs.append({"output_type": "execute_result", "metadata": {}, "execution_count": 2,
                    "data": {"text/plain": "{'a': 1}\n" + wide}})
    assert [len(line) for _, line in run_chapters.wide_lines(nb)] == [100, 89]
    with pytest.raises(SystemExit, match=r"ch\.ipynb cell 0: 2 output line\(s\) wider "
                                         r"than 88 columns, the first 100"):
        run_chapters.check_widths(nb, "ch.ipynb")


def test_the_chapters_kernels_draw_inline_whatever_the_shell_says():
    run_chapters = _load_runner()
    assert run_chapters.INLINE_BACKEND == "module://matplotlib_inline.backend_inline"
