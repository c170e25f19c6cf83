"""How long finding the five levels of a study takes, from its DICOM files (not a test).

::

    .venv/bin/python benchmarks/find_levels.py              # 30 studies of the phantom
    .venv/bin/python benchmarks/find_levels.py --studies 64 --model runs/x/levels.keras

For each study of the benchmark's phantom (``benchmarks/.data``, made once), the time of
:func:`lss.locate.find_levels` on its Sagittal T2/STIR and Axial T2 series, with the
level finder already loaded and run once (a warm model): reading the headers, the
middle sagittal slice, the network, the projection into every axial series. The
network's weights do not change its cost, so without ``--model`` an untrained level
finder of the default size is timed. Prints the median, the 90th percentile and the
slowest study, with the machine; the goal is at most 0.5 s per study on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
GOAL_S = 0.5


def _finder(model: str | None):
    from lss.config import LevelLocaliserConfig
    from lss.levels import build_level_localiser, load_level_localiser

    if model:
        return load_level_localiser(model)
    cfg = LevelLocaliserConfig()
    return build_level_localiser(cfg.image_size, cfg.filters)


def main(argv: list[str] | None = None) -> int:
    from run_benchmarks import ensure_phantom, machine_info

    from lss.data import load_tables
    from lss.levels import sagittal_series
    from lss.locate import axial_series, find_levels

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--studies", type=int, default=30)
    p.add_argument("--model", help="a trained levels.keras (default: untrained, same size)")
    p.add_argument("--data-dir", type=Path, default=HERE / ".data")
    args = p.parse_args(argv)
    root, _ = ensure_phantom(args.data_dir, max(args.studies, 64), None)
    ids = load_tables(root).train["study_id"].tolist()[:args.studies]
    finder = _finder(args.model)
    series = [(sid, sagittal_series(root, sid), axial_series(root, sid)) for sid in ids]
    find_levels(finder, series[0][1], series[0][2], study_id=series[0][0])  # warm model
    seconds = []
    for sid, sag, axial in series:
        t0 = time.perf_counter()
        find_levels(finder, sag, axial, study_id=sid)
        seconds.append(time.perf_counter() - t0)
    m = machine_info()
    q90 = statistics.quantiles(seconds, n=10)[-1] if len(seconds) > 1 else seconds[0]
    median = statistics.median(seconds)
    print(f"Machine: {m['cpu_model']}, {m['cpus_usable']} usable CPUs, "
          f"{m['keras_backend']} backend")
    print(f"find_levels, {len(seconds)} phantom studies (warm model, warm file cache): "
          f"median {median:.3f} s, 90th percentile {q90:.3f} s, slowest {max(seconds):.3f} s "
          f"per study; goal <= {GOAL_S} s: {'met' if median <= GOAL_S else 'not met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
