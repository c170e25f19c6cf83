"""The ``lss`` command: prepare, train, evaluate, predict.

Examples
--------
::

    lss prepare  --data data/phantom
    lss train    --data data/phantom --run runs/cnn_lstm --epochs 20
    lss evaluate --run runs/cnn_lstm
    lss predict  --run runs/cnn_lstm --data data/phantom --out submission.csv
    lss predict  --run runs/cnn_lstm --study data/phantom/test_images/123 --out one.csv

Bad paths and bad data end with a one-line ``lss: error: ...`` and exit code 2; an
interrupted training ends with exit code 130 and can be continued with ``--resume``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]


def _add_common(p: argparse.ArgumentParser, *, data_default: str | None = "data/phantom"
                ) -> None:
    p.add_argument("--data", default=data_default,
                   help="data root in the Kaggle layout (default: %(default)s)")
    p.add_argument("--cache", default=None,
                   help="preprocessing cache folder (default: $LSS_CACHE or ~/.cache/lss)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes for preprocessing (default: all cores, fewer for a small job)")


def _config(args: argparse.Namespace):
    from lss.config import Config

    cfg = Config.from_file(args.config) if getattr(args, "config", None) else Config()
    changes = {k: v for k, v in {
        "condition": getattr(args, "condition", None),
        "level": getattr(args, "level", None),
        "n_slices": getattr(args, "slices", None),
        "image_size": getattr(args, "image_size", None),
        "epochs": getattr(args, "epochs", None),
        "batch_size": getattr(args, "batch_size", None),
        "seed": getattr(args, "seed", None),
        "class_weight": getattr(args, "class_weight", None),
    }.items() if v is not None}
    if getattr(args, "no_flip", False):
        changes["horizontal_flip"] = False
    return cfg.replace(**changes)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and documentation)."""
    parser = argparse.ArgumentParser(
        prog="lss", description="Grade lumbar spinal stenosis on axial T2 MRI (RSNA 2024 "
        "layout) with the paper's CNN-LSTM.")
    from lss import __version__

    parser.add_argument("--version", action="version", version=f"lss {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def target_options(p):
        p.add_argument("--config", help="YAML or JSON config file (lss.config.Config)")
        p.add_argument("--condition", help="e.g. left_subarticular_stenosis")
        p.add_argument("--level", help="e.g. L4/L5")
        p.add_argument("--slices", type=int, help="slices in the level window")
        p.add_argument("--image-size", type=int, help="resize slices to this square size")

    p = sub.add_parser("prepare", help="fill the preprocessing cache")
    _add_common(p)
    target_options(p)

    p = sub.add_parser("train", help="train the CNN-LSTM and write a run folder")
    _add_common(p)
    target_options(p)
    p.add_argument("--run", default="runs/cnn_lstm", help="run folder (default: %(default)s)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--class-weight", choices=["balanced", "rsna"])
    p.add_argument("--no-flip", action="store_true",
                   help="no horizontal flip (the label names a side: flipping moves it)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its last finished epoch")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")

    p = sub.add_parser("evaluate", help="score a run on its validation split")
    _add_common(p, data_default=None)
    p.add_argument("--run", default="runs/cnn_lstm", help="run folder (default: %(default)s)")
    p.add_argument("--out", help="output folder (default: <run>/eval)")

    p = sub.add_parser("predict", help="write a submission CSV for a test split or a study")
    p.add_argument("--run", default="runs/cnn_lstm", help="run folder (default: %(default)s)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--data", help="data root with test_series_descriptions.csv")
    where.add_argument("--study", help="one study folder: <study_id>/<series_id>/*.dcm")
    p.add_argument("--split", default="test", choices=["test", "train"])
    p.add_argument("--out", default="submission.csv", help="CSV path (default: %(default)s)")
    return parser


def _print_excluded(info: dict) -> None:
    """Name the studies an index left out (``attrs["excluded"]``), so none goes unseen."""
    excluded = info.get("excluded") or []
    if excluded:
        names = ", ".join(f"{e['study_id']} ({e['reason']})" for e in excluded[:5])
        more = f", and {len(excluded) - 5} more" if len(excluded) > 5 else ""
        total = info.get("n_studies")
        what = f"of {total} studies" if total else ("study" if len(excluded) == 1 else "studies")
        print(f"excluded {len(excluded)} {what}: {names}{more}")


def _run(args: argparse.Namespace) -> int:
    from lss.runinfo import data_label

    if args.command == "prepare":
        from lss.data import TensorCache, build_index

        cfg = _config(args)
        index = build_index(args.data, cfg.condition, cfg.level)
        stats = TensorCache(args.data, cfg.preprocess, cache_dir=args.cache).prepare(
            index, workers=args.workers)
        print(f"{cfg.target} on {data_label(args.data)}: {stats}")
        _print_excluded(index.attrs)
        return 0

    if args.command == "train":
        from lss.train import train

        cfg = _config(args)
        print(f"Training {cfg.target} on {data_label(args.data)} -> {args.run}")
        result = train(args.data, cfg, args.run, cache_dir=args.cache, workers=args.workers,
                       resume=args.resume, verbose=0 if args.quiet else 2)
        from lss.runinfo import read_manifest

        _print_excluded(read_manifest(args.run))
        best = result.history.loc[result.history["val_loss"].idxmin()]
        print(f"Done in {result.seconds:.0f} s: best epoch {int(best['epoch']) + 1}, "
              f"val_loss {best['val_loss']:.4f}, val_accuracy {best['val_accuracy']:.3f}. "
              f"Next: lss evaluate --run {args.run}")
        return 0

    if args.command == "evaluate":
        from lss.evaluate import evaluate_run
        from lss.metrics import format_report

        out = Path(args.out) if args.out else Path(args.run) / "eval"
        report = evaluate_run(args.run, args.data, out_dir=out, cache_dir=args.cache,
                              workers=args.workers)
        print(format_report(report, data_label=report["data"]["label"]))
        print(f"Wrote {out / 'metrics.json'}, predictions.csv and figures")
        return 0

    if args.command == "predict":
        from lss.evaluate import predict

        sub = predict(args.run, args.data, study_dir=args.study, split=args.split)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        sub.to_csv(out, index=False)
        print(f"Wrote {len(sub)} rows to {out}")
        return 0
    raise AssertionError(args.command)  # argparse restricts the choices


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lss`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from lss.data import DataError, WorkerDied

    try:
        return _run(args)
    except KeyboardInterrupt:
        print("lss: interrupted" + (f"; continue with: lss train --resume --run {args.run}"
                                    if args.command == "train" else ""), file=sys.stderr)
        return 130
    except (DataError, WorkerDied, FileNotFoundError, FileExistsError, NotADirectoryError,
            PermissionError, ValueError, json.JSONDecodeError) as exc:
        print(f"lss: error: {exc}".splitlines()[0], file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
