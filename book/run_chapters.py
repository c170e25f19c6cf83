"""Execute the book's chapters with papermill, in order, and stage the site for Jupyter Book.

``make book`` calls this twice: once to execute every chapter listed in ``_toc.yml`` into
``_build/executed`` (in the toc's order, so later chapters find the files earlier ones
wrote), and once with ``--stage-only`` to assemble ``_build/site``: the book's Markdown
pages, ``_config.yml``, ``_toc.yml`` and the *executed* notebooks, from which Jupyter
Book builds the HTML without executing anything again.

Parameters reach the chapters through their ``parameters`` cell; only the names a
chapter declares are passed (``DATA_DIR``, ``WORK_DIR``, ``CACHE_DIR``, ``EPOCHS``).

Staging drops one kind of output: the lines TensorFlow's C++ runtime logs to stderr
(``I0000 00:00:... port.cc:153] oneDNN custom operations are on ...``), which
``TF_CPP_MIN_LOG_LEVEL`` no longer silences and which say nothing to a reader. Every
other stderr line, Python warnings included, stays on the page. The executed notebooks in
``_build/executed`` keep everything.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
import time
from pathlib import Path

import yaml

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


def work_dir_for(data: Path) -> Path:
    """Keep results of different data roots apart (the phantom's never mix with real runs)."""
    tag = hashlib.sha1(str(data.resolve()).encode()).hexdigest()[:8]
    return REPO / "runs" / f"book-{data.name}-{tag}"


def execute(data: Path, out: Path, epochs: int | None, only: list[str] | None) -> None:
    import papermill as pm

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
                text = out["text"] if isinstance(out["text"], str) else "".join(out["text"])
                lines = text.splitlines(keepends=True)
                keep = [ln for ln in lines if not NATIVE_LOG.match(ln)]
                removed += len(lines) - len(keep)
                if not keep:
                    continue
                out["text"] = "".join(keep)
            kept.append(out)
        if "outputs" in cell:
            cell["outputs"] = kept
    return removed


def stage(executed: Path, site: Path) -> None:
    """Assemble the Jupyter Book source tree from the repo and the executed notebooks."""
    if site.exists():
        shutil.rmtree(site)
    site.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(REPO / name, site / name)
    for f in toc_files():
        md = REPO / f"{f}.md"
        nb = executed / f"{f}.ipynb"
        if md.is_file():
            (site / md.relative_to(REPO)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(md, site / md.relative_to(REPO))
        elif nb.is_file():
            (site / f).parent.mkdir(parents=True, exist_ok=True)
            data = json.loads(nb.read_text())
            strip_native_logs(data)
            (site / f"{f}.ipynb").write_text(json.dumps(data, indent=1, ensure_ascii=False))
        else:
            sys.exit(f"run_chapters: {f} is in _toc.yml but neither {md} nor an executed "
                     f"{nb} exists (run the chapters first)")
    for extra in ("book/images", "book/references.bib"):
        src = REPO / extra
        if src.is_dir():
            shutil.copytree(src, site / extra)
        elif src.is_file():
            shutil.copy2(src, site / extra)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO / "data" / "phantom")
    p.add_argument("--out", type=Path, default=REPO / "_build" / "executed")
    p.add_argument("--site", type=Path, default=REPO / "_build" / "site")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--only", nargs="*", help="run only chapters whose name contains these")
    p.add_argument("--stage-only", action="store_true")
    args = p.parse_args(argv)
    if args.stage_only:
        stage(args.out, args.site)
    else:
        if not args.data.is_dir():
            sys.exit(f"run_chapters: data root not found: {args.data}")
        execute(args.data, args.out, args.epochs, args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
