"""Build the offline install kit of a Kaggle code submission (``make kaggle-kit``).

A competition's code submission runs without internet, so ``lss`` cannot be installed
from GitHub there. The kit is a folder to upload as a Kaggle dataset: the ``lss`` wheel
and the wheels of the pure-Python dependencies that Kaggle's image may lack or hold in
an older version (:data:`PURE`). In the notebook, with the dataset attached::

    pip install --no-index --find-links /kaggle/input/<your-kit-dataset> lss

installs ``lss`` from the kit, its other dependencies (NumPy, pandas, TensorFlow ...)
being those of the image. ``README.txt`` in the kit says the same. The kit also holds
``submission.ipynb`` (from ``data_scripts/kaggle_submission.py``): the short notebook
that installs lss from the kit, finds the attached run and writes the submission.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

#: Pure-Python wheels put in the kit beside lss's: pydicom reads the DICOM files;
#: lss needs Keras 3.14 or later (and Keras needs namex), newer than some images hold;
#: tqdm draws the progress bars.
PURE = ("pydicom", "keras", "namex", "tqdm")
REPO = Path(__file__).resolve().parents[1]
#: The submission notebook, a jupytext percent file; the kit holds it as an .ipynb.
SUBMISSION = REPO / "data_scripts" / "kaggle_submission.py"


def submission_notebook(out: str | Path, source: str | Path = SUBMISSION) -> Path:
    """Write the submission notebook (``source`` as an .ipynb) to ``out``; return it."""
    import jupytext

    nb = jupytext.read(str(source))
    jupytext.write(nb, str(out), fmt="ipynb")
    return Path(out)


def build_kit(out: str | Path, *, repo: str | Path = REPO, pure: tuple[str, ...] = PURE,
              python: str = sys.executable) -> list[Path]:
    """Write the lss wheel and the ``pure`` wheels into ``out``; return the wheels."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pip = [python, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--quiet", "--no-deps", "-w", str(out), str(repo)],
                   check=True)
    if pure:
        subprocess.run([*pip, "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "-d", str(out), *pure], check=True)
    submission_notebook(out / "submission.ipynb")
    (out / "README.txt").write_text(
        "lss offline install kit (upload this folder as a Kaggle dataset).\n"
        "In a Kaggle notebook with it attached, without internet:\n"
        "  pip install --no-index --find-links /kaggle/input/<this-dataset> lss\n"
        "submission.ipynb does that, then grades the test studies with an attached\n"
        "whole-study run: import it as a notebook, attach the competition's data,\n"
        "this kit and the run, turn internet off and submit.\n")
    return sorted(out.glob("*.whl"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="_build/kaggle-kit", help="folder (default: %(default)s)")
    args = p.parse_args(argv)
    wheels = build_kit(args.out)
    print(f"{len(wheels)} wheels in {args.out}: {', '.join(w.name for w in wheels)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
