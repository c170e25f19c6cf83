"""The ``lss`` command: prepare, train, evaluate, levels, predict, experiments, phantom.

Examples
--------
::

    lss prepare     --data data/phantom
    lss train       --data data/phantom --run runs/cnn_lstm --epochs 20
    lss train       --data data/phantom --config runs/experiments/roi/config.json --run runs/roi
    lss evaluate    --run runs/cnn_lstm
    lss levels      --run runs/cnn_lstm --data data/phantom
    lss evaluate    --run runs/cnn_lstm --levels found
    lss predict     --run runs/cnn_lstm --data data/phantom --out submission.csv
    lss predict     --run runs/cnn_lstm --study data/phantom/test_images/123 --out one.csv
    lss experiments --data data/phantom --out runs/experiments [--row no_flip]
    lss phantom     --out data/phantom --n-studies 200 --seed 0

Bad paths and bad data end with a one-line ``lss: error: ...`` and exit code 2; an
interrupted training ends with exit code 130 and can be continued with ``--resume``.

The long steps show progress bars in a terminal (:mod:`lss.progress`; none in a log
file, a pipe or CI, none with ``LSS_PROGRESS=0``) and Keras' bar for the epochs (one
line per epoch where there are no bars). ``--quiet`` turns both off.
"""

from __future__ import annotations

import argparse
import contextlib
import os
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


def _config(args: argparse.Namespace, base=None):
    """The run's Config: ``--config`` (or, on ``--resume``, the run's own config.json),
    else ``base`` (default the paper's), with the options given on the command line
    applied."""
    from lss.config import Config
    from lss.run import RunDir

    if getattr(args, "config", None):
        cfg = Config.from_file(args.config)
    elif getattr(args, "resume", False) and RunDir(args.run).config_file.is_file():
        cfg = RunDir(args.run).read_config()
    else:
        cfg = base or Config()
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


def _target_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML or JSON config file (lss.config.Config), e.g. the "
                   "config.json of a run or of an experiment's row")
    p.add_argument("--condition", help="e.g. left_subarticular_stenosis")
    p.add_argument("--level", help="e.g. L4/L5")
    p.add_argument("--slices", type=int, help="slices in the level window")
    p.add_argument("--image-size", type=int, help="resize slices to this square size")


def _add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars and no per-epoch lines (lss.progress)")


def _progress(args: argparse.Namespace) -> bool | None:
    """The ``progress`` option of the library calls: False under ``--quiet``, else None
    (:func:`lss.progress.shows`: bars in a terminal, none in a log)."""
    return False if getattr(args, "quiet", False) else None


def _epoch_verbose(args: argparse.Namespace) -> int:
    """Keras' ``verbose``: its bar in a terminal, a line per epoch in a log, 0 if quiet."""
    from lss.progress import epoch_verbose

    return epoch_verbose(_progress(args))


def _add_on_error(p: argparse.ArgumentParser) -> None:
    p.add_argument("--on-error", choices=["raise", "report"], default="raise",
                   help="a series that fails to read: end the command (raise, the default), "
                   "or leave its study out and list it with its reason (report)")


def _print_failed(failed: list[dict], where: str | None = None) -> None:
    """One line per study left out, then where the list was written: none goes unseen."""
    for f in failed:
        print(f"failed: study {f['study_id']} series {f['series_id']}: "
              f"{str(f['reason']).splitlines()[0]}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} {'study' if len(failed) == 1 else 'studies'} left out because "
              f"their series failed" + (f"; listed in {where}" if where else ""))


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train the CNN-LSTM and write a run folder")
    _add_common(p)
    _target_options(p)
    _add_on_error(p)
    p.add_argument("--run", default="runs/cnn_lstm", help="run folder (default: %(default)s)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--class-weight", choices=["balanced", "rsna"])
    p.add_argument("--no-flip", action="store_true",
                   help="no horizontal flip (the label names a side: flipping moves it)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its last finished epoch")
    _add_quiet(p)
    p.add_argument("--targets", nargs="+", metavar="TARGET",
                   help="a whole-study run: 'all' (the 25 targets), a condition, or "
                   "condition_level names; one region-of-interest model per condition "
                   "group on one split (lss.whole_study.whole_study_config: chapter 6's "
                   "roi_level crop, 10 epochs at 1e-3 on a CPU, unless --config says)")


def _add_experiments(sub) -> None:
    from lss.config import PAPER_EPOCHS, Config, LocaliserConfig

    p = sub.add_parser("experiments", help="the comparison beyond the paper, or one row of it")
    _add_common(p)
    p.add_argument("--out", default="runs/experiments", help="output folder (%(default)s)")
    p.add_argument("--row", action="append", help="run only this row (repeatable); "
                   "default: every row, then the table")
    p.add_argument("--epochs", type=int, default=PAPER_EPOCHS,
                   help="epochs of every row (default %(default)s, the paper's)")
    p.add_argument("--learning-rate", type=float, default=None,
                   help="learning rate of every row (default: the paper's 1e-4)")
    p.add_argument("--level-slices", type=int, default=3,
                   help="the roi_level row's window, in slices (%(default)s)")
    p.add_argument("--seed", type=int, default=Config().train.seed,
                   help="seed of the split, the weights, the augmentation and the localiser "
                   "(%(default)s)")
    p.add_argument("--class-weight", default="balanced", choices=["balanced", "rsna"],
                   help="the class_weights row's scheme (%(default)s)")
    p.add_argument("--crop-mm", type=float, default=40.0, help="the roi row's crop (%(default)s)")
    p.add_argument("--roi-size", type=int, default=64,
                   help="the roi row's crops are resized to this (%(default)s)")
    p.add_argument("--localiser-epochs", type=int, default=LocaliserConfig().epochs)
    p.add_argument("--localiser-size", type=int, default=LocaliserConfig().image_size)
    _add_quiet(p)


def _add_phantom(sub) -> None:
    p = sub.add_parser("phantom", help="write the synthetic DICOM phantom (Kaggle layout)")
    p.add_argument("--out", type=Path, default=Path("data/phantom"), help="output folder")
    p.add_argument("--n-studies", type=int, default=None,
                   help="sampled mode: number of labelled studies (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the whole phantom")
    p.add_argument("--n-test-studies", type=int, default=3,
                   help="studies in the unlabelled test split")
    p.add_argument("--tables", type=Path, default=None,
                   help="folder of the real label tables: render images behind them")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--studies", type=int, default=None,
                       help="with --tables: number of studies to draw (seeded)")
    group.add_argument("--study-ids", type=int, nargs="+", default=None,
                       help="with --tables: these studies")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: CPU count)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing phantom in --out")
    _add_quiet(p)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and documentation)."""
    from lss import __version__

    parser = argparse.ArgumentParser(
        prog="lss", description="Grade lumbar spinal stenosis on axial T2 MRI (RSNA 2024 "
        "layout) with the paper's CNN-LSTM.")
    parser.add_argument("--version", action="version", version=f"lss {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="fill the preprocessing cache")
    _add_common(p)
    _target_options(p)
    _add_on_error(p)
    _add_quiet(p)
    _add_train(sub)

    p = sub.add_parser("evaluate", help="score a run on its validation split")
    _add_common(p, data_default=None)
    p.add_argument("--run", default="runs/cnn_lstm", help="run folder (default: %(default)s)")
    p.add_argument("--out", help="output folder (default: the run folder; with --levels "
                   "found, its levels-found folder)")
    p.add_argument("--levels", choices=["table", "found"], default="table",
                   help="grade the coordinate table's slice (the oracle) or the slice the "
                   "run's level finder finds, as for a new study (default: %(default)s); a "
                   "whole-study run is scored both ways at once")
    p.add_argument("--competition", action="store_true",
                   help="also score the validation studies the competition's way (all 25 "
                   "targets, the others from the training prior) beside the constants")
    _add_quiet(p)

    p = sub.add_parser("levels", help="fit a run's level finder on its training studies")
    _add_common(p)
    p.add_argument("--run", default="runs/cnn_lstm", help="run folder (default: %(default)s)")
    p.add_argument("--epochs", type=int, help="training epochs (default: the config's)")
    _add_quiet(p)

    p = sub.add_parser("predict", help="write a submission CSV for a test split or a study")
    p.add_argument("--run", default="runs/cnn_lstm", help="run folder (default: %(default)s)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--data", help="data root with test_series_descriptions.csv")
    where.add_argument("--study", help="one study folder: <study_id>/<series_id>/*.dcm")
    p.add_argument("--split", default="test", choices=["test", "train"])
    p.add_argument("--levels", choices=["found", "middle"], default="found",
                   help="centre the window on the level the run's level finder finds "
                   "(default), or on the middle slice of the longest Axial T2 series")
    p.add_argument("--out", default="submission.csv", help="CSV path (default: %(default)s)")
    p.add_argument("--target-only", action="store_true",
                   help="one row per study for the run's own target, instead of the "
                   "competition's 25 (the others from the training prior, listed in "
                   "<out>_report.csv)")
    _add_quiet(p)
    _add_experiments(sub)
    _add_phantom(sub)
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


def _prepare(args: argparse.Namespace) -> int:
    from lss.data import TensorCache, build_index
    from lss.run import data_label

    cfg = _config(args)
    index = build_index(args.data, cfg.condition, cfg.level)
    stats = TensorCache(args.data, cfg.preprocess, cache_dir=args.cache).prepare(
        index, workers=args.workers, on_error=args.on_error, progress=_progress(args))
    print(f"{cfg.target} on {data_label(args.data)}: {stats}")
    _print_excluded(index.attrs)
    _print_failed(stats.failed)
    return 0


def _train_roi(args: argparse.Namespace, cfg) -> int:
    """An ROI config trains its localiser first (as its experiment row did), then the model,
    and is scored at the localiser's centres (lss.experiments.run_experiment)."""
    from lss.experiments import Experiment, run_experiment

    if args.resume:
        raise ValueError("--resume is not supported for a region-of-interest config; "
                         "train it again")
    run = Path(args.run)
    row = run_experiment(args.data, Experiment(run.name, cfg, "lss train --config"),
                         run.parent, cache_dir=args.cache, workers=args.workers,
                         overwrite=False, verbose=_epoch_verbose(args))
    print(f"Done: balanced accuracy {row['balanced_accuracy']:.3f}, RSNA log loss "
          f"{row['rsna_log_loss']:.3f} (localiser centres) -> {row['run_dir']}")
    return 0


def _train_whole_study(args: argparse.Namespace, cfg) -> int:
    """``lss train --targets ...``: one model per condition group, one split."""
    from lss.run import data_label
    from lss.whole_study import ROI_SETTINGS, train_whole_study

    if args.resume:
        raise ValueError("--resume is not supported for a whole-study run; train it again")
    if cfg.preprocess.crop_mm is None:  # a --config without a crop: the ROI settings
        cfg = cfg.replace(**ROI_SETTINGS)
    targets = args.targets[0] if len(args.targets) == 1 else args.targets
    print(f"Training {' '.join(args.targets)} on {data_label(args.data)} -> {args.run}")
    manifest = train_whole_study(args.data, args.run, cfg, targets=targets,
                                 cache_dir=args.cache, workers=args.workers,
                                 verbose=_epoch_verbose(args))
    for group, info in manifest["groups"].items():
        print(f"{group}: {len(info['targets'])} targets, {info['rows']} rows")
    print(f"Done: {manifest['n_studies']} studies, one split. Next: lss levels --run "
          f"{args.run} --data {args.data}, then lss evaluate --run {args.run} "
          f"[--levels found]")
    return 0


def _train(args: argparse.Namespace) -> int:
    from lss.run import RunDir, data_label
    from lss.train import train

    if args.targets:  # the device's whole-study defaults unless --config says
        from lss.whole_study import whole_study_config

        base = None if args.config else whole_study_config(epochs=args.epochs)
        return _train_whole_study(args, _config(args, base))
    cfg = _config(args)
    print(f"Training {cfg.target} on {data_label(args.data)} -> {args.run}")
    if cfg.preprocess.crop_mm is not None:
        return _train_roi(args, cfg)
    result = train(args.data, cfg, args.run, cache_dir=args.cache, workers=args.workers,
                   resume=args.resume, verbose=_epoch_verbose(args), on_error=args.on_error)
    run = RunDir(args.run)
    _print_excluded(run.read_manifest())
    _print_failed(run.read_manifest().get("failed", []), str(run.errors))
    best = result.history.loc[result.history["val_loss"].idxmin()]
    print(f"Done in {result.seconds:.0f} s: best epoch {int(best['epoch']) + 1}, "
          f"val_loss {best['val_loss']:.4f}, val_accuracy {best['val_accuracy']:.3f}. "
          f"Next: lss evaluate --run {args.run}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from lss.evaluate import evaluate_run
    from lss.metrics import format_report
    from lss.run import RunDir

    if RunDir(args.run).read_manifest().get("kind") == "whole_study":
        return _evaluate_whole_study(args)
    out = Path(args.out) if args.out else None
    report = evaluate_run(args.run, args.data, out_dir=out, cache_dir=args.cache,
                          workers=args.workers, levels=args.levels)
    print(format_report(report, data_label=report["data"]["label"]))
    found = report["levels"]
    if found.get("source") == "level finder":
        print(f"levels found: {found['exact']:.1%} on the table's slice, "
              f"{found['within_one']:.1%} within one slice, median {found['median_mm']:.2f} "
              f"mm off ({int(found['pairs'])} validation studies)")
    if args.competition:
        from lss.scoring import whole_study_scores

        table = whole_study_scores(args.run, args.data, levels=args.levels)
        print(f"The competition's score of {table.attrs['n_studies']} validation studies "
              f"(lower is better; 'model' grades {table.attrs['target']}, the other "
              f"targets from the weighted prior):")
        print(table.drop(columns="n_rows").astype(float).round(4).to_string())
    where = out or (Path(args.run) if args.levels == "table"
                    else Path(args.run) / "levels-found")
    print(f"Wrote {RunDir(args.run).metrics(where)}, predictions.csv and figures")
    return 0


def _evaluate_whole_study(args: argparse.Namespace) -> int:
    """A whole-study run scored the competition's way beside the constants (both routes:
    levels found when the run has its finder, and the table's points), with how far the
    found route placed its crops."""
    from lss.locate import summarise_place_errors
    from lss.whole_study import evaluate_whole_study

    table, gap, places = evaluate_whole_study(args.run, args.data, cache_dir=args.cache)
    print(f"The competition's score of {table.attrs['n_studies']} validation studies "
          f"(lower is better; groups {', '.join(table.attrs['groups'])}):")
    print(table.astype(float).round(4).to_string())
    if places is None:
        print(f"No level finder: fit one with lss levels --run {args.run} --data ROOT "
              f"to score the validation studies graded as new studies")
    else:
        print("Crops placed from the levels found: distance to the table's point (mm):")
        print(summarise_place_errors(places).round(3).to_string())
    print(f"{gap.attrs['route']} minus the weighted prior, study bootstrap "
          f"({gap.attrs['n_resamples']} resamples, {gap.attrs['level']:.0%} interval):")
    print(gap.astype(float).round(4).to_string())
    return 0


def _levels(args: argparse.Namespace) -> int:
    import dataclasses

    from lss.config import LevelLocaliserConfig
    from lss.locate import fit_run_level_finder

    config = LevelLocaliserConfig()
    if args.epochs is not None:
        config = dataclasses.replace(config, epochs=args.epochs)
    result = fit_run_level_finder(args.run, args.data, config=config, cache_dir=args.cache,
                                  workers=args.workers)
    print(f"Level finder trained on {result.n_train} studies of {args.run}'s training split "
          f"-> {result.path}. Next: lss evaluate --run {args.run} --levels found")
    if result.excluded:
        print(f"left out {len(result.excluded)} studies without a spinal canal point: "
              f"{result.excluded[:5]}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from lss.evaluate import predict, predict_submission
    from lss.run import RunDir
    from lss.submission import summarise_report, write_submission

    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give the path of the CSV file to write")
    whole = RunDir(args.run).read_manifest().get("kind") == "whole_study"
    if whole and args.target_only:
        raise ValueError(f"--target-only grades one target; {args.run} is a whole-study run "
                         f"(it grades every target of its groups): drop --target-only")
    if whole:
        from lss.study_predict import predict_whole_study

        sub, report = predict_whole_study(args.run, args.data, study_dir=args.study,
                                          split=args.split, progress=_progress(args))
    elif args.target_only:
        sub = predict(args.run, args.data, study_dir=args.study, split=args.split,
                      levels=args.levels)
        out.parent.mkdir(parents=True, exist_ok=True)
        sub.to_csv(out, index=False)
        print(f"Wrote {len(sub)} rows to {out}")
        return 0
    else:
        sub, report = predict_submission(args.run, args.data, study_dir=args.study,
                                         split=args.split, levels=args.levels)
    paths = write_submission(out, sub, report)
    print(f"Wrote {len(sub)} rows to {paths[0]}")
    if len(report):
        print(summarise_report(report, n_rows=len(sub)))
        print(f"Listed in {paths[-1]}")
    return 0


def _experiments(args: argparse.Namespace) -> int:
    from lss.comparison import format_table
    from lss.config import Config, LocaliserConfig
    from lss.experiments import default_experiments, run_experiment, run_experiments
    from lss.run import data_label

    loc = LocaliserConfig(image_size=args.localiser_size, epochs=args.localiser_epochs,
                          seed=args.seed)
    label = data_label(args.data)
    rows = default_experiments(Config().replace(seed=args.seed), epochs=args.epochs,
                               learning_rate=args.learning_rate,
                               class_weight=args.class_weight, crop_mm=args.crop_mm,
                               roi_image_size=args.roi_size, level_slices=args.level_slices)
    if args.row:
        for name in args.row:
            row = run_experiment(args.data, name, args.out, experiments=rows,
                                 cache_dir=args.cache, workers=args.workers, localiser=loc,
                                 verbose=_epoch_verbose(args))
            print(f"{label}: [{row['experiment']}] {row['epochs_run']} epochs: balanced accuracy "
                  f"{row['balanced_accuracy']:.3f}, RSNA log loss {row['rsna_log_loss']:.3f} "
                  f"-> {row['run_dir']}")
        return 0
    table = run_experiments(args.data, rows, args.out, cache_dir=args.cache,
                            workers=args.workers, localiser=loc, overwrite=True,
                            verbose=_epoch_verbose(args))
    print(format_table(table, data_label=label))
    print(f"Wrote {Path(args.out) / 'experiments.csv'}")
    return 0


def _phantom(args: argparse.Namespace) -> int:
    import time

    from lss.phantom import make_phantom, read_marker

    if args.tables is None and (args.studies is not None or args.study_ids is not None):
        raise ValueError("--studies and --study-ids need --tables")
    if args.tables is not None and args.n_studies is not None:
        raise ValueError("with --tables use --studies or --study-ids, not --n-studies")
    start = time.perf_counter()
    out = make_phantom(args.out, n_studies=args.studies if args.tables else args.n_studies,
                       seed=args.seed, n_test_studies=args.n_test_studies,
                       tables_dir=args.tables, study_ids=args.study_ids,
                       workers=args.workers, overwrite=args.overwrite,
                       progress=_progress(args))
    marker = read_marker(out)
    print(f"Wrote a {marker['mode']} phantom to {out}: {marker['n_studies']} train studies, "
          f"{marker['n_test_studies']} test studies, {marker.get('n_files', '?')} DICOM files "
          f"in {time.perf_counter() - start:.1f} s")
    for name in ("train.csv", "train_series_descriptions.csv", "train_label_coordinates.csv",
                 "test_series_descriptions.csv", "sample_submission.csv", "PHANTOM.json"):
        path = out / name
        if path.exists():
            rows = sum(1 for _ in path.open()) - 1 if path.suffix == ".csv" else None
            print(f"  {name}" + (f" ({rows} rows)" if rows is not None else ""))
    print("  train_images/<study_id>/<series_id>/<instance_number>.dcm, test_images/...")
    return 0


_COMMANDS = {"prepare": _prepare, "train": _train, "evaluate": _evaluate, "levels": _levels,
             "predict": _predict, "experiments": _experiments, "phantom": _phantom}


def _one_line(exc: BaseException) -> str:
    """``lss: error: <what, which file>``: the first line of the message."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
        text = f"{text}: {exc.filename}"
    return f"lss: error: {text}".splitlines()[0]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lss`` command; returns the exit code.

    Bad input ends with one line, ``lss: error: ...`` naming what and which file, and exit
    code 2, never a traceback: data and config errors, and every operating-system error
    (a missing, unreadable or read-only file or folder, a full disk, a file-size limit, a
    symlink loop). Anything else is a bug of lss: it is reported in one line too, and
    ``LSS_DEBUG=1`` shows its traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    from lss.errors import DataError, WorkerDied
    from lss.progress import quiet

    try:  # --quiet also silences the bars of library code a command calls without options
        with quiet() if getattr(args, "quiet", False) else contextlib.nullcontext():
            return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("lss: interrupted" + (f"; continue with: lss train --resume --run {args.run}"
                                    if args.command == "train" else ""), file=sys.stderr)
        return 130
    except (DataError, WorkerDied, OSError, ValueError, OverflowError, MemoryError) as exc:
        print(_one_line(exc), file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 -- no traceback for the user; LSS_DEBUG shows it
        if os.environ.get("LSS_DEBUG"):
            raise
        print(_one_line(RuntimeError(f"unexpected {type(exc).__name__}: {exc} (a bug of lss; "
                                     f"LSS_DEBUG=1 shows where)")), file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
