"""The paper's exact protocol at the paper's scale, on the phantom (a measurement, not a test).

A phantom is rendered behind every labelled study of the real RSNA 2024 label tables
(``lss phantom --tables``: the real grades, series layout and coordinate rows, drawn
images), then the paper's setup is trained on it as the paper describes: an 80:20 split
by study, 20 epochs, Adam at 1e-4, no early stop (patience = epochs), the model of the
last epoch reported as the paper reports its final epoch, and the best kept model
scored beside it. The figures go to ``book/measured/paper_protocol.json``, which chapter 4
quotes as a phantom figure beside the paper's, with the machine it ran on::

    .venv/bin/python benchmarks/paper_protocol.py --tables ../shared/rsna2024-labels

About an hour on a 2-core CPU (TensorFlow; 2,024 s of training measured there, and
about 45 GB of phantom under ``--work``); minutes on a GPU. A finished run in
``--work`` is scored again without training (``--retrain`` trains it again).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from lss.config import PAPER_EPOCHS, Config
from lss.device import describe_accelerator
from lss.evaluate import evaluate_run
from lss.metrics import majority_baseline, prior_baseline
from lss.phantom import make_phantom
from lss.run import RunDir, data_label, git_commit
from lss.train import train

REPO = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tables", type=Path, required=True,
                   help="folder of the real label tables (train.csv and the rest)")
    p.add_argument("--work", type=Path, default=REPO / "benchmarks" / ".data" / "paper_protocol",
                   help="phantom, cache and run go here")
    p.add_argument("--out", type=Path, default=REPO / "book" / "measured" / "paper_protocol.json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=PAPER_EPOCHS)
    p.add_argument("--retrain", action="store_true",
                   help="train again even when --work holds a finished run")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    phantom = args.work / "phantom"
    render_s = None  # None: the phantom in --work was made by an earlier call
    if not (phantom / "PHANTOM.json").is_file():
        t0 = time.perf_counter()
        make_phantom(phantom, tables_dir=args.tables, seed=args.seed)
        render_s = round(time.perf_counter() - t0)
    config = Config().replace(seed=args.seed, epochs=args.epochs,
                              early_stopping_patience=args.epochs)
    run = RunDir(args.work / "run")
    if args.retrain or not (run.manifest.is_file() and run.is_finished()):
        train(phantom, config, run.path, cache_dir=args.work / "cache", overwrite=True)
    report = evaluate_run(run.path, phantom, cache_dir=args.work / "cache", figures=False)
    split, history = run.read_split(), run.read_history()
    y_train = split.loc[split.split == "train", "label"]
    y_val = split.loc[split.split == "val", "label"]
    last = history.iloc[-1]
    payload = {
        "what": "the paper's protocol on a phantom rendered behind the real label tables",
        "data": data_label(phantom),
        "n_train": int(len(y_train)), "n_val": int(len(y_val)),
        "epochs_run": int(len(history)), "learning_rate": config.train.learning_rate,
        "last_epoch": {"val_accuracy": float(last.val_accuracy),
                       "val_loss": float(last.val_loss), "loss": float(last.loss)},
        "best_kept": {**{k: report["model"][k] for k in
                         ("accuracy", "balanced_accuracy", "rsna_log_loss", "log_loss")},
                      "macro_f1": report["model"]["macro"]["f1"]},
        "majority_accuracy": majority_baseline(y_train, y_val)["accuracy"],
        "prior_log_loss": prior_baseline(y_train, y_val)["log_loss"],
        "machine": describe_accelerator()["label"],
        "render_seconds": render_s,
        "train_seconds": round(run.read_manifest().get("train_seconds", float("nan"))),
        "commit": git_commit(REPO),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1) + "\n")
    print(json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
