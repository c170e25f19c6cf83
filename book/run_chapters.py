"""Execute the book's chapters with papermill, in order, and stage the site.

``make book`` calls this twice: once to execute every chapter listed in ``_toc.yml``
into ``_build/executed`` (in the toc's order, so later chapters find the files earlier
ones wrote), and once with ``--stage-only`` to assemble ``_build/site``: the book's
Markdown pages, ``_config.yml``, ``_toc.yml`` and the *executed* notebooks, from which
Jupyter Book builds the HTML without executing anything again.

Parameters reach the chapters through their ``parameters`` cell; only the names a
chapter declares are passed (``DATA_DIR``, ``WORK_DIR``, ``CACHE_DIR``, ``EPOCHS``).

Staging drops one kind of output: the lines TensorFlow's C++ runtime logs to stderr
(``I0000 00:00:... port.cc:153] oneDNN custom operations are on ...``), which
``TF_CPP_MIN_LOG_LEVEL`` no longer silences and which say nothing to a reader. Every
other stderr line, Python warnings included, stays on the page. The executed notebooks
in ``_build/executed`` keep everything. Staging also hides papermill's injected
parameters cell (it holds this machine's absolute paths), stops with one line naming
the notebook and the cell when an output shows the build root, the home directory or
the host name, stamps the release tag into the staged ``_config.yml`` (the Colab
buttons open the notebooks at that tag) and writes the course kits (below) into
``_static/notebooks``.

One place sets the release: the version is ``pyproject.toml``'s ``[project] version``,
the repository ``_config.yml``'s ``repository.url``. :func:`install_cell` derives every
chapter's Colab install cell from both (``pip install "lss @ git+<url>@v<version>"``);
``--sync-install`` (``make sync-install``) rewrites the chapters' cells from it.

``--kits OUT`` writes the course kits: for each chapter ``<name>-instructor.ipynb`` (the
source notebook, outputs cleared) and ``<name>-student.ipynb`` (the code of every cell
tagged ``solution`` replaced by a placeholder, every Markdown
``<details><summary>Solution...</summary>...</details>`` block removed, the ``check``
cells kept).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import socket
import sys
import time
from pathlib import Path

import yaml

from lss.text import PAGE_COLUMNS

REPO = Path(__file__).resolve().parents[1]


def toc_files(toc: Path = REPO / "_toc.yml") -> list[str]:
    """Every file of the toc, in reading order, without extension (``book/01_...``)."""
    data = yaml.safe_load(toc.read_text())
    files = [data["root"]]
    for part in data.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    files += [c["file"] for c in data.get("chapters", [])]
    return files


def chapters() -> list[Path]:
    """The executable chapters: toc entries that are notebooks."""
    return [REPO / f"{f}.ipynb" for f in toc_files() if (REPO / f"{f}.ipynb").is_file()]


# --- The release: one version (pyproject.toml), one repository (_config.yml) ---------

#: The first line of every chapter's install cell (how the cell is found), and the
#: first line it had before its Kaggle branch (``make sync-install`` finds those too).
INSTALL_MARKER = "# In Colab or on Kaggle: install lss"
OLD_INSTALL_MARKERS = ("# In Colab only: install lss",)

#: The install cell; ``{requirement}`` is :func:`install_requirement`. In Colab and in
#: a Kaggle notebook only, it installs the release (on Kaggle unless lss is there
#: already, from the offline kit say) and makes /content or /kaggle/working the
#: repository's root: the parameters' ``../data``, ``../runs`` and ``../.cache`` land
#: where the notebook may write (Kaggle's attached data stays read-only under
#: /kaggle/input, where ``DATA_SOURCE = "auto"`` finds it). In Colab it also copies
#: Kaggle credentials from Colab's Secrets into the variables lss.data.sources reads.
INSTALL_CELL = """\
# In Colab or on Kaggle: install lss, the book's release (`make book` did it elsewhere).
import os
import sys

if "google.colab" in sys.modules or os.environ.get("KAGGLE_KERNEL_RUN_TYPE"):
    import importlib.util
    import subprocess

    colab = "google.colab" in sys.modules
    requirement = "{requirement}"
    if colab or importlib.util.find_spec("lss") is None:  # Kaggle: the kit's, if there
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", requirement],
                       check=True)
    home = "/content" if colab else "/kaggle/working"  # where a notebook may write
    os.makedirs(f"{{home}}/book", exist_ok=True)
    os.chdir(f"{{home}}/book")  # so ../data, ../runs and ../.cache are under home
    if colab:
        from google.colab import userdata

        for name in ("KAGGLE_USERNAME", "KAGGLE_KEY"):  # from Colab's Secrets
            try:
                os.environ[name] = userdata.get(name)
            except (userdata.SecretNotFoundError, userdata.NotebookAccessError):
                pass  # not set: with DATA_SOURCE = "kaggle", lss says what is missing
"""


def package_version(pyproject: Path = REPO / "pyproject.toml") -> str:
    """The ``[project] version`` of ``pyproject.toml``, the one place it is set."""
    text = pyproject.read_text()
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the one line we need, read directly
        project = text.split("[project]", 1)[-1].split("\n[", 1)[0]
        found = re.search(r'^version\s*=\s*"([^"]+)"', project, flags=re.M)
        if not found:
            sys.exit(f"run_chapters: no [project] version in {pyproject}")
        return found.group(1)
    return tomllib.loads(text)["project"]["version"]


def repository_url(config: Path = REPO / "_config.yml") -> str:
    """``repository.url`` of ``_config.yml``, without a trailing ``/`` or ``.git``."""
    url = yaml.safe_load(config.read_text())["repository"]["url"].rstrip("/")
    return url.removesuffix(".git")


def release_tag() -> str:
    """The git tag of the release the book is built from: ``v`` + package version."""
    return f"v{package_version()}"


def install_requirement() -> str:
    """What the install cell hands pip: ``lss @ git+<repository>@v<version>``."""
    return f"lss @ git+{repository_url()}@{release_tag()}"


def install_cell() -> str:
    """The Colab install cell every chapter must hold, derived from the release."""
    return INSTALL_CELL.format(requirement=install_requirement()).rstrip("\n")


def _py_cells(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` line spans of a percent-format file's cells, header included."""
    lines = text.splitlines()
    starts = [i for i, ln in enumerate(lines) if ln.startswith("# %%")]
    return list(zip(starts, starts[1:] + [len(lines)], strict=True))


def py_install_cell(text: str) -> str | None:
    """The install cell's code in a jupytext percent file, or None if it has none."""
    lines = text.splitlines()
    for start, end in _py_cells(text):
        body = lines[start + 1:end]
        if body and body[0].startswith((INSTALL_MARKER, *OLD_INSTALL_MARKERS)):
            return "\n".join(body).rstrip("\n")
    return None


def notebook_install_cell(nb: dict) -> str | None:
    """The install cell's code in a notebook, or None if it has none."""
    for cell in nb.get("cells", []):
        src = _text(cell.get("source", ""))
        if cell.get("cell_type") == "code" and src.startswith(INSTALL_MARKER):
            return src.rstrip("\n")
    return None


def sync_install(paths: list[Path]) -> list[Path]:
    """Rewrite the install cell of each percent-format chapter in ``paths``.

    The old cell's text is replaced, exactly and once; nothing else in the file changes.
    Returns the files that changed. Their ``.ipynb`` twins follow with ``make sync``.
    """
    new, changed = install_cell(), []
    for path in paths:
        text = path.read_text()
        old = py_install_cell(text)
        if old is None:
            sys.exit(f"run_chapters: {path} has no cell starting {INSTALL_MARKER!r}")
        if old != new:
            path.write_text(text.replace(old, new, 1))
            changed.append(path)
    return changed


def _text(src: str | list[str]) -> str:
    return src if isinstance(src, str) else "".join(src)


def work_dir_for(data: Path) -> Path:
    """Keep results of different data roots apart (phantom and real runs never mix)."""
    tag = hashlib.sha1(str(data.resolve()).encode()).hexdigest()[:8]
    return REPO / "runs" / f"book-{data.name}-{tag}"


#: The kernels' matplotlib backend: the inline one, whatever MPLBACKEND the shell has (a
#: CI-style MPLBACKEND=Agg would leave every figure of the book undrawn).
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def execute(data: Path, out: Path, epochs: int | None, only: list[str] | None) -> None:
    import os

    import papermill as pm

    os.environ["MPLBACKEND"] = INLINE_BACKEND  # inherited by every kernel started below
    os.environ["LSS_PROGRESS"] = "0"  # no progress bars on the rendered pages
    work = work_dir_for(data)
    for nb in chapters():
        if only and not any(o in nb.stem for o in only):
            continue
        declared = pm.inspect_notebook(str(nb))
        params = {"DATA_DIR": str(data.resolve()), "WORK_DIR": str(work),
                  "CACHE_DIR": str(REPO / ".cache")}
        if epochs is not None:
            params["EPOCHS"] = epochs
        params = {k: v for k, v in params.items() if k in declared}
        target = out / nb.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        print(f"[book] {nb.relative_to(REPO)} {params}", flush=True)
        pm.execute_notebook(str(nb), str(target), parameters=params, cwd=str(nb.parent),
                            kernel_name="python3", progress_bar=False, log_output=False)
        print(f"[book] {nb.name} done in {time.perf_counter() - t0:.0f} s", flush=True)


#: A line of TensorFlow's native (absl) log, or absl's note that comes before the first.
NATIVE_LOG = re.compile(
    r"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w.]+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions: .* rebuild TensorFlow)")


def strip_native_logs(nb: dict) -> int:
    """Remove TensorFlow's native log lines from ``nb``'s stderr outputs, in place.

    Returns the number of lines removed; a stderr output left empty is removed too.

    >>> nb = {"cells": [{"cell_type": "code", "outputs": [{"output_type": "stream",
    ...     "name": "stderr", "text": "I0000 00:00:1.5  7 port.cc:153] oneDNN on\\n"
    ...                               "UserWarning: kept\\n"}]}]}
    >>> strip_native_logs(nb), nb["cells"][0]["outputs"][0]["text"]
    (1, 'UserWarning: kept\\n')
    """
    removed = 0
    for cell in nb.get("cells", []):
        kept = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                lines = _text(out["text"]).splitlines(keepends=True)
                keep = [ln for ln in lines if not NATIVE_LOG.match(ln)]
                removed += len(lines) - len(keep)
                if not keep:
                    continue
                out["text"] = "".join(keep)
            kept.append(out)
        if "outputs" in cell:
            cell["outputs"] = kept
    return removed


def hide_injected_parameters(nb: dict) -> int:
    """Tag papermill's injected parameters cell ``remove-cell``, in place.

    That cell holds the absolute paths of the machine that built the book; the chapter's
    own ``parameters`` cell, with its defaults, stays on the page. Returns how many
    cells were tagged.

    >>> nb = {"cells": [{"cell_type": "code",
    ...                  "metadata": {"tags": ["injected-parameters"]}}]}
    >>> hide_injected_parameters(nb), nb["cells"][0]["metadata"]["tags"]
    (1, ['injected-parameters', 'remove-cell'])
    """
    tagged = 0
    for cell in nb.get("cells", []):
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
            tagged += 1
    return tagged


#: The end of a name: not followed by more of a name (``/work/main`` is not
#: ``/work/mainline``).
END = r"(?![\w.-])"

#: Output types whose data is a picture, not text that could name a path.
BINARY_MIME = ("image/png", "image/jpeg", "image/gif", "image/webp")


def private_patterns(*roots: Path) -> dict[str, re.Pattern]:
    """What no page may show: the build ``roots``, the home directory, the host name.

    Keys say what was found (for the error line); each pattern matches the whole name
    only (``/work/main`` does not match ``/work/mainline``).
    """
    found: dict[str, re.Pattern] = {}
    for i, root in enumerate(roots):
        if any(root.is_relative_to(r) for r in roots[:i]):
            continue  # the outer root's pattern finds it
        found[f"the build root {root}"] = re.compile(re.escape(str(root)) + END)
    home = str(Path.home())
    if home not in ("", "/"):
        found[f"the home directory {home}"] = re.compile(re.escape(home) + END)
    host = socket.gethostname()
    if host and host != "localhost":
        found[f"the host name {host!r}"] = re.compile(
            r"(?<![\w.-])" + re.escape(host) + r"(?![\w-])")
    return found


def _output_texts(out: dict):
    """Every text of one output: streams, text data (not pictures), errors."""
    if "text" in out:
        yield _text(out["text"])
    for mime, value in out.get("data", {}).items():
        if mime not in BINARY_MIME:
            yield value if isinstance(value, str) else json.dumps(value)
    if out.get("output_type") == "error":
        yield out.get("evalue", "")
        yield "\n".join(out.get("traceback", []))


def find_private(nb: dict,
                 patterns: dict[str, re.Pattern]) -> tuple[int, str, str] | None:
    """The first ``(cell index, what, excerpt)`` of an output matching ``patterns``.

    ``excerpt`` is the matching output line, shortened to 100 characters.
    """
    for index, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []):
            for text in _output_texts(out):
                for what, pattern in patterns.items():
                    found = pattern.search(text)
                    if found:
                        start = text.rfind("\n", 0, found.start()) + 1
                        line = text[start:].split("\n", 1)[0].strip()
                        return index, what, line[:100]
    return None


def missing_figures(nb: dict) -> list[int]:
    """The code cells that declare a figure (their ``mystnb.image.alt``) but have no
    image output: a figure the page would silently lack. A cell tagged
    ``figure-optional`` draws only when its data is there (the real label tables); a
    notebook with no output at all has not been executed, and has nothing to check."""
    out: list[int] = []
    if not any(c.get("outputs") for c in nb.get("cells", [])):
        return out
    for i, cell in enumerate(nb.get("cells", [])):
        alt = cell.get("metadata", {}).get("mystnb", {}).get("image", {}).get("alt")
        outputs = cell.get("outputs", [])
        images = [o for o in outputs if "image/png" in o.get("data", {})]
        optional = "figure-optional" in cell.get("metadata", {}).get("tags", [])
        if cell.get("cell_type") == "code" and alt and not images and not optional:
            out.append(i)
    return out


def check_figures(nb: dict, name: str) -> None:
    """Stop with one line naming the notebook and the cells whose figure is missing."""
    missing = missing_figures(nb)
    if missing:
        sys.exit(f"run_chapters: {name}: cells {missing} declare a figure (alt text) "
                 f"but have no image output (was the kernel's matplotlib backend Agg?)")


def _plain_texts(out: dict):
    """The texts of one output that the page shows in a fixed-width block: streams, a
    ``text/plain`` that has no richer form beside it, and an error's message."""
    if "text" in out:
        yield _text(out["text"])
    data = out.get("data", {})
    richer = ("text/html", "text/markdown", *BINARY_MIME)
    if "text/plain" in data and not any(m in data for m in richer):
        yield _text(data["text/plain"])
    if out.get("output_type") == "error":
        yield f"{out.get('ename', '')}: {out.get('evalue', '')}"


def wide_lines(nb: dict, width: int = PAGE_COLUMNS) -> list[tuple[int, str]]:
    """``(cell index, line)`` for every fixed-width output line wider than ``width``.

    >>> nb = {"cells": [{"cell_type": "code", "source": "", "outputs": [
    ...     {"output_type": "stream", "name": "stdout", "text": "ok\\n" + "x" * 89}]}]}
    >>> [(i, len(line)) for i, line in wide_lines(nb)]
    [(0, 89)]
    """
    found = []
    for index, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []):
            for text in _plain_texts(out):
                found += [(index, line) for line in text.split("\n")
                          if len(line.rstrip()) > width]
    return found


def check_widths(nb: dict, name: str) -> None:
    """Stop with one line naming the notebook, the cell and the first line too wide."""
    wide = wide_lines(nb)
    if wide:
        index, line = wide[0]
        sys.exit(f"run_chapters: {name} cell {index}: {len(wide)} output line(s) "
                 f"wider than {PAGE_COLUMNS} columns, the first {len(line)}: "
                 f"{line[:60]!r}...; print them with lss.text.say, or show a table")


def check_private(nb: dict, name: str, patterns: dict[str, re.Pattern]) -> None:
    """Stop with one line naming the notebook and the cell if an output is private."""
    hit = find_private(nb, patterns)
    if hit is not None:
        index, what, line = hit
        first = _text(nb["cells"][index].get("source", "")).strip().split("\n")[0][:60]
        sys.exit(f"run_chapters: {name} cell {index} ({first!r}): an output shows "
                 f"{what}: {line!r}; keep it off the page (paths relative to WORK_DIR)")


def staged_config(config: Path = REPO / "_config.yml") -> str:
    """``_config.yml`` with ``repository.branch`` set to the release tag.

    Jupyter Book 1.x builds the Colab launch links from ``repository.branch``: the
    buttons then open each notebook as it is at the tag the book was built from.
    """
    cfg = yaml.safe_load(config.read_text())
    cfg.setdefault("repository", {})["branch"] = release_tag()
    header = ("# Staged by book/run_chapters.py from the repository's _config.yml; "
              "repository.branch is the release tag.\n")
    return header + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True)


def launch_links(chapter: str) -> str:
    """A chapter page's "Open in Colab" and "Open in Kaggle" links, at the release tag.

    Jupyter Book 1.x has a Colab launch button and none for Kaggle, so both links go
    under the page's title; each opens the chapter's notebook as it is at the tag.
    Kaggle imports a public notebook from its URL (``kaggle.com/kernels/welcome?src=``);
    attach the competition's data there and ``DATA_SOURCE = "auto"`` finds it.
    ``chapter`` is the toc path, e.g. ``"book/03_cnn_lstm"``.
    """
    url = repository_url()
    slug = url.removeprefix("https://github.com/")
    notebook = f"{release_tag()}/{chapter}.ipynb"
    colab = f"https://colab.research.google.com/github/{slug}/blob/{notebook}"
    kaggle = f"https://www.kaggle.com/kernels/welcome?src={url}/blob/{notebook}"
    return f"[Open in Colab]({colab}) · [Open in Kaggle]({kaggle})"


def add_launch_links(nb: dict, chapter: str) -> None:
    """Put :func:`launch_links` under the title of ``nb``'s first Markdown cell."""
    for cell in nb["cells"]:
        if cell.get("cell_type") == "markdown":
            lines = _text(cell.get("source", "")).split("\n")
            title = next((i for i, ln in enumerate(lines) if ln.startswith("# ")), None)
            if title is None:
                sys.exit(f"run_chapters: {chapter}.ipynb opens without a '# ' title")
            lines[title + 1:title + 1] = ["", launch_links(chapter)]
            cell["source"] = "\n".join(lines)
            return
    sys.exit(f"run_chapters: {chapter}.ipynb has no Markdown cell")


#: Chapters executed on a GPU machine and kept in the repository, as
#: ``<stem>.gpu.ipynb`` (e.g. ``papermill book/04_gpu_training.ipynb
#: book/measured/04_gpu_training.gpu.ipynb`` there, with ``KERAS_BACKEND=jax``). Staging
#: publishes such a page instead of this machine's execution; the page names its card.
GPU_PAGES = REPO / "book" / "measured"


def page_source(chapter: str, executed: Path, gpu_pages: Path = GPU_PAGES) -> Path:
    """The executed notebook to publish for ``chapter``: its recorded GPU execution
    when there is one (:data:`GPU_PAGES`), else this build's (the CPU fallback)."""
    recorded = gpu_pages / f"{Path(chapter).name}.gpu.ipynb"
    return recorded if recorded.is_file() else executed / f"{chapter}.ipynb"


def stage(executed: Path, site: Path, gpu_pages: Path = GPU_PAGES) -> None:
    """Assemble the Jupyter Book source tree from the repo and the executed notebooks
    (a chapter's recorded GPU execution in ``gpu_pages`` wins, :func:`page_source`).

    Stops (``SystemExit``, one line) when a toc entry is missing or an output is private
    (:func:`private_patterns`).
    """
    if site.exists():
        shutil.rmtree(site)
    site.mkdir(parents=True)
    (site / "_config.yml").write_text(staged_config())
    shutil.copy2(REPO / "_toc.yml", site / "_toc.yml")
    patterns = private_patterns(REPO, executed.resolve())
    for f in toc_files():
        md = REPO / f"{f}.md"
        nb = page_source(f, executed, gpu_pages)
        if md.is_file():
            (site / md.relative_to(REPO)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(md, site / md.relative_to(REPO))
        elif nb.is_file():
            (site / f).parent.mkdir(parents=True, exist_ok=True)
            data = json.loads(nb.read_text())
            strip_native_logs(data)
            hide_injected_parameters(data)
            add_launch_links(data, f)
            check_private(data, f"{f}.ipynb", patterns)
            check_figures(data, f"{f}.ipynb")
            check_widths(data, f"{f}.ipynb")
            (site / f"{f}.ipynb").write_text(json.dumps(data, indent=1,
                                                        ensure_ascii=False))
        else:
            sys.exit(f"run_chapters: {f} is in _toc.yml but neither {md} nor an "
                     f"executed {nb} exists (run the chapters first)")
    for css in sorted((REPO / "book" / "_static").glob("*.css")):
        (site / "_static").mkdir(exist_ok=True)  # Jupyter Book 1.x adds _static/*.css
        shutil.copy2(css, site / "_static" / css.name)
    for extra in ("book/images", "book/references.bib"):
        src = REPO / extra
        if src.is_dir():
            shutil.copytree(src, site / extra)
        elif src.is_file():
            shutil.copy2(src, site / extra)
    write_kits(site / KITS_DIR)


# --- Course kits: student and instructor notebooks from the same sources -------------

#: Where the staged site holds the kits (book/syllabus.md links there).
KITS_DIR = "_static/notebooks"
SOLUTION_TAG = "solution"
CHECK_TAG = "check"
STUDENT_PLACEHOLDER = ("# Your code here (see the exercise above); "
                       "then run the check cell below.")
#: A Markdown ``<details>`` block whose summary starts with "Solution", and what follows
#: it up to the next text; and the older form, a ``{admonition} Solution`` fence.
SOLUTION_BLOCKS = (
    re.compile(r"<details\b[^>]*>\s*<summary\b[^>]*>\s*Solution.*?</details>\s*", re.S),
    re.compile(r"^:::\{admonition\} Solution.*?^:::[ \t]*$\s*", re.S | re.M),
)


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def instructor_notebook(nb: dict) -> dict:
    """A copy of ``nb``, outputs and execution counts cleared, nothing else changed."""
    out = json.loads(json.dumps(nb))
    for cell in out["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    return out


def student_notebook(nb: dict) -> dict:
    """The instructor notebook without the solutions.

    Every ``solution`` cell's code becomes :data:`STUDENT_PLACEHOLDER` (the cell and its
    tags stay, so the ``check`` cell after it still has its place); every solution block
    in Markdown goes, and a Markdown cell left empty goes with it.

    >>> def cell(kind, tags, source):
    ...     return {"cell_type": kind, "metadata": {"tags": tags}, "source": source}
    >>> nb = {"cells": [cell("code", ["solution"], "x = 1"),
    ...                 cell("code", ["check"], "assert x"),
    ...                 cell("markdown", [], "<details><summary>Solution</summary>"
    ...                                      "\\nOne.\\n</details>")]}
    >>> [c["source"][:15] for c in student_notebook(nb)["cells"]]
    ['# Your code her', 'assert x']
    """
    out = instructor_notebook(nb)
    cells = []
    for cell in out["cells"]:
        if cell["cell_type"] == "code" and SOLUTION_TAG in _tags(cell):
            cell["source"] = STUDENT_PLACEHOLDER
        elif cell["cell_type"] == "markdown":
            text = _text(cell["source"])
            kept = text
            for block in SOLUTION_BLOCKS:
                kept = block.sub("", kept)
            if kept != text:
                if not kept.strip():
                    continue
                cell["source"] = kept.rstrip()
        cells.append(cell)
    out["cells"] = cells
    return out


#: The kits, by the suffix of their file names.
KITS = {"instructor": instructor_notebook, "student": student_notebook}


def write_kits(out: Path, notebooks: list[Path] | None = None) -> list[Path]:
    """Write ``<name>-instructor.ipynb`` and ``<name>-student.ipynb`` per chapter.

    ``notebooks`` defaults to the toc's chapters (the committed source notebooks, not
    the executed ones). Returns the files written.
    """
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in chapters() if notebooks is None else notebooks:
        nb = json.loads(path.read_text())
        for kind, make in KITS.items():
            target = out / f"{path.stem}-{kind}.ipynb"
            target.write_text(json.dumps(make(nb), indent=1, ensure_ascii=False) + "\n")
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO / "data" / "phantom")
    p.add_argument("--out", type=Path, default=REPO / "_build" / "executed")
    p.add_argument("--site", type=Path, default=REPO / "_build" / "site")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--only", nargs="*",
                   help="run only chapters whose name contains these")
    p.add_argument("--stage-only", action="store_true",
                   help="stage --out into --site (the kits included); execute nothing")
    p.add_argument("--kits", type=Path, metavar="OUT",
                   help="write the student and instructor notebooks into OUT")
    p.add_argument("--sync-install", action="store_true",
                   help="rewrite every chapter's Colab install cell from the release")
    args = p.parse_args(argv)
    if args.sync_install:
        sources = [nb.with_suffix(".py") for nb in chapters()]
        changed = sync_install(sources)
        print(f"[book] install cell: {install_requirement()}; rewrote "
              f"{', '.join(c.name for c in changed) or 'nothing'}")
    elif args.kits:
        written = write_kits(args.kits)
        print(f"[book] {len(written)} kit notebooks in {args.kits}")
    elif args.stage_only:
        stage(args.out, args.site)
    else:
        if not args.data.is_dir():
            sys.exit(f"run_chapters: data root not found: {args.data}")
        execute(args.data, args.out, args.epochs, args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
