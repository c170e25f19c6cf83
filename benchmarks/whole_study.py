"""How long grading a whole study takes, from its DICOM files to its 25 rows (not a test).

::

    .venv/bin/lss train --targets all --data data/phantom --run runs/whole_study
    .venv/bin/lss levels --run runs/whole_study --data data/phantom
    .venv/bin/python benchmarks/whole_study.py --run runs/whole_study --data data/phantom

The run is loaded once (:func:`lss.study_predict.load_grader`: the level finder and one
model per condition group) and one study graded to warm it; then each of ``--studies``
studies of the root is graded alone (:meth:`lss.study_predict.StudyGrader.grade`:
finding the levels, placing the 25 crops, reading their windows, the three models), and
the median, 90th percentile and slowest study are printed with the machine. The goal is
at most 2 s per study on a 2-core CPU. ``--cpus 1 2`` then grades the same batch in a
child process pinned to that many CPUs (``os.sched_setaffinity``) and prints studies per
second for each, to show how the batch scales with cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
GOAL_S = 2.0


def _studies(root: Path, n: int):
    """The first ``n`` studies of the root's training split, as new studies."""
    from lss.study_predict import study_series

    return study_series(root, split="train")[:n]


def _time_batch(run: str, root: Path, n: int) -> dict:
    """Load the run, warm it on one study, then time each of ``n`` studies."""
    from lss.study_predict import load_grader

    studies = _studies(root, n + 1)
    grader = load_grader(run)
    grader.grade(studies[0])  # warm: first calls trace the models
    seconds, rows = [], 0
    t_all = time.perf_counter()
    for series in studies[1:]:
        t0 = time.perf_counter()
        graded, _, _ = grader.grade(series)
        seconds.append(time.perf_counter() - t0)
        rows += 0 if graded is None else len(graded)
    return {"seconds": seconds, "wall": time.perf_counter() - t_all, "rows": rows,
            "cpus": len(os.sched_getaffinity(0))}


def _child(args: argparse.Namespace, cpus: int) -> dict:
    """The batch timed in a child process pinned to the first ``cpus`` CPUs."""
    allowed = sorted(os.sched_getaffinity(0))[:cpus]
    cmd = [sys.executable, __file__, "--run", args.run, "--data", str(args.data),
           "--studies", str(args.studies), "--json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         preexec_fn=lambda: os.sched_setaffinity(0, allowed))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="a whole-study run with its levels.keras")
    p.add_argument("--data", type=Path, required=True, help="a data root (train split)")
    p.add_argument("--studies", type=int, default=20)
    p.add_argument("--cpus", type=int, nargs="*", default=[],
                   help="also time the batch pinned to each of these CPU counts")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    result = _time_batch(args.run, args.data, args.studies)
    if args.json:
        print(json.dumps(result))
        return 0
    from run_benchmarks import machine_info

    m = machine_info()
    s = result["seconds"]
    q90 = statistics.quantiles(s, n=10)[-1] if len(s) > 1 else s[0]
    median = statistics.median(s)
    print(f"Machine: {m['cpu_model']}, {m['cpus_usable']} usable CPUs, "
          f"{m['keras_backend']} backend")
    print(f"Whole study, DICOM files to {result['rows'] // len(s)} graded rows, "
          f"{len(s)} phantom studies (warm models): median {median:.2f} s, 90th "
          f"percentile {q90:.2f} s, slowest {max(s):.2f} s per study; goal <= {GOAL_S} s: "
          f"{'met' if median <= GOAL_S else 'not met'}")
    for cpus in args.cpus:
        r = _child(args, cpus)
        print(f"Batch of {len(r['seconds'])} studies pinned to {r['cpus']} CPU(s): "
              f"{len(r['seconds']) / r['wall']:.2f} studies/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
