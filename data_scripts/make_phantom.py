"""Write the synthetic DICOM phantom (RSNA 2024 Kaggle layout) to a directory.

Examples
--------
Sampled studies (the default)::

    python data_scripts/make_phantom.py --out data/phantom --n-studies 200 --seed 0

Images behind real label tables (the tables are copied verbatim for those studies)::

    python data_scripts/make_phantom.py --out data/phantom-real \\
        --tables ../shared/rsna2024-labels --studies 5
    python data_scripts/make_phantom.py --out data/phantom-real \\
        --tables ../shared/rsna2024-labels --study-ids 4003253 4646740
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lss.phantom import make_phantom, read_marker


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/phantom"), help="output directory")
    parser.add_argument(
        "--n-studies",
        type=int,
        default=None,
        help="sampled mode: number of labelled studies (default 200)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the whole phantom")
    parser.add_argument(
        "--n-test-studies", type=int, default=3, help="studies in the unlabelled test split"
    )
    parser.add_argument(
        "--tables",
        type=Path,
        default=None,
        help="directory of the real label tables: render images behind them",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--studies",
        type=int,
        default=None,
        help="with --tables: number of studies to draw (seeded)",
    )
    group.add_argument(
        "--study-ids", type=int, nargs="+", default=None, help="with --tables: these studies"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: CPU count)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing phantom in --out"
    )
    args = parser.parse_args(argv)
    if args.tables is None and (args.studies is not None or args.study_ids is not None):
        parser.error("--studies and --study-ids need --tables")
    if args.tables is not None and args.n_studies is not None:
        parser.error("with --tables use --studies or --study-ids, not --n-studies")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    n_studies = args.studies if args.tables is not None else args.n_studies
    start = time.perf_counter()
    try:
        out = make_phantom(
            args.out,
            n_studies=n_studies,
            seed=args.seed,
            n_test_studies=args.n_test_studies,
            tables_dir=args.tables,
            study_ids=args.study_ids,
            workers=args.workers,
            overwrite=args.overwrite,
        )
    except (FileExistsError, FileNotFoundError, NotADirectoryError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    marker = read_marker(out)
    n_files = marker.get("n_files", "?")
    print(
        f"Wrote a {marker['mode']} phantom to {out}: {marker['n_studies']} train studies, "
        f"{marker['n_test_studies']} test studies, {n_files} DICOM files in {elapsed:.1f} s"
    )
    for name in (
        "train.csv",
        "train_series_descriptions.csv",
        "train_label_coordinates.csv",
        "test_series_descriptions.csv",
        "sample_submission.csv",
        "PHANTOM.json",
    ):
        path = out / name
        if path.exists():
            rows = sum(1 for _ in path.open()) - 1 if path.suffix == ".csv" else None
            print(f"  {name}" + (f" ({rows} rows)" if rows is not None else ""))
    print("  train_images/<study_id>/<series_id>/<instance_number>.dcm, test_images/...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
