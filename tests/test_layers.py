"""The package's structure: imports point down the layers, never in a circle.

Walks every module of ``lss`` with :mod:`ast` (no import is executed), so the rules hold
for imports inside functions too:

* ``lss.config`` and ``lss.errors`` import nothing of lss;
* ``lss.data``, ``lss.model`` and ``lss.phantom`` import only those (and their own
  modules); ``lss.data.sources``, which makes the phantom for a chapter, may also
  import ``lss.phantom``;
* figures (``lss.viz``) import no training code;
* nothing but ``lss.cli`` imports ``lss.cli``;
* no module imports a module of a higher layer, and there is no import circle.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lss"

#: Layer of each top-level part of lss; a module may import only its own or lower layers.
LAYERS = {
    "lss": 0, "config": 0, "errors": 0, "text": 0, "progress": 0,
    "data": 1, "model": 1, "phantom": 1,
    "run": 2, "device": 2, "callbacks": 2, "metrics": 2, "viz": 2, "saliency_check": 2,
    "competition": 2, "submission": 2,
    "localiser": 3, "levels": 3, "train": 3, "interpret": 3,
    "evaluate": 4, "baselines": 4, "paper": 4, "locate": 4,
    "experiments": 5, "comparison": 4, "attribution": 4, "scoring": 5,
    "whole_study": 5, "study_predict": 5,
    "cli": 6,
}
TRAINING = {"train", "callbacks", "device", "experiments", "evaluate", "localiser", "baselines"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every ``lss`` module ``path`` imports, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "lss"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "lss":
            found.add(node.module)
    return found


@functools.cache
def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "lss"


def test_every_part_of_the_package_has_a_layer():
    missing = sorted({_part(m) for m in _graph()} - set(LAYERS))
    assert not missing, f"give these a layer in LAYERS: {missing}"


def test_no_import_runs_up_the_layers():
    problems = []
    for module, imported in _graph().items():
        here = _part(module)
        for target in imported:
            there = _part(target)
            if module == "lss.data.sources" and there == "phantom":
                continue  # makes the phantom for a chapter (documented above)
            if there != here and LAYERS[there] > LAYERS[here]:
                problems.append(f"{module} imports {target} ({there} is above {here})")
            if there != here and LAYERS[there] == LAYERS[here] and LAYERS[here] <= 1:
                problems.append(f"{module} imports {target} (sideways at the bottom)")
    assert not problems, "\n".join(problems)


def test_bottom_modules_import_nothing_of_lss():
    graph = _graph()
    for module in ("lss.config", "lss.errors"):
        assert not graph[module], f"{module} imports {sorted(graph[module])}"


def test_figures_import_no_training_code():
    problems = [f"{m} imports {t}" for m, imported in _graph().items()
                if _part(m) == "viz" for t in imported if _part(t) in TRAINING]
    assert not problems, problems


def test_only_the_command_line_imports_the_command_line():
    problems = [m for m, imported in _graph().items()
                if _part(m) != "cli" and any(_part(t) == "cli" for t in imported)]
    assert not problems, problems


def test_there_is_no_import_circle():
    nodes = set(_graph())
    graph = {m: {t for t in imported if t in nodes} for m, imported in _graph().items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt == node or _is_package_of(nxt, node):
                continue
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if state.get(nxt) is None:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if state.get(node) is None:
            visit(node, [node])


def _is_package_of(package: str, module: str) -> bool:
    """``lss.data`` re-exports its modules: importing the package from one of its own
    modules is not a circle of meaning (Python loads the module first)."""
    return module.startswith(package + ".")


def test_the_layer_rules_catch_a_violation(tmp_path, monkeypatch):
    """The walk finds an import inside a function (the test would be blind otherwise)."""
    bad = tmp_path / "lss" / "data" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("def f():\n    from lss.train import train\n")
    assert _imports(bad) == {"lss.train"}
    assert LAYERS[_part("lss.train")] > LAYERS[_part("lss.data.bad")]


#: The most lines a module of lss may have: one obvious job per file.
MAX_MODULE_LINES = 600


def test_no_module_is_a_thousand_line_room():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in sorted(PACKAGE.rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"split these by job (at most {MAX_MODULE_LINES} lines): {long}"
