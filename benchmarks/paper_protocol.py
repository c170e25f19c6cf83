"""The paper's exact protocol at the paper's scale, on the phantom (a measurement, not a test).

A phantom is rendered behind every labelled study of the real RSNA 2024 label tables
(``lss phantom --tables``: the real grades, series layout and coordinate rows, drawn
images), then the paper's setup is trained on it as the paper describes: an 80:20 split
by study, 20 epochs, Adam at 1e-4, no early stop (patience = epochs), the model of the
last epoch reported as the paper reports its final epoch, and the best kept model
scored beside it. The figures go to ``book/measured/paper_protocol.json``, which chapter 4
quotes as a phantom figure beside the paper's, with the machine it ran on::

    .venv/bin/python benchmarks/paper_protocol.py --tables ../shared/rsna2024-labels

About 50 minutes on an idle 2-core CPU (TensorFlow); minutes on a GPU.
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
from lss.run import data_label, git_commit
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
    return p.parse_args()


def main() -> None:
    args = parse_args()
    phantom = args.work / "phantom"
    t0 = time.perf_counter()
    if not (phantom / "PHANTOM.json").is_file():
        make_phantom(phantom, tables_dir=args.tables, seed=args.seed)
    render_s = time.perf_counter() - t0
    config = Config().replace(seed=args.seed, epochs=args.epochs,
                              early_stopping_patience=args.epochs)
    t1 = time.perf_counter()
    result = train(phantom, config, args.work / "run", cache_dir=args.work / "cache",
                   overwrite=True)
    train_s = time.perf_counter() - t1
    report = evaluate_run(result.run_dir, phantom, cache_dir=args.work / "cache", figures=False)
    y_train = result.split.loc[result.split.split == "train", "label"]
    y_val = result.split.loc[result.split.split == "val", "label"]
    last = result.history.iloc[-1]
    payload = {
        "what": "the paper's protocol on a phantom rendered behind the real label tables",
        "data": data_label(phantom),
        "n_train": int(len(y_train)), "n_val": int(len(y_val)),
        "epochs_run": int(len(result.history)), "learning_rate": config.train.learning_rate,
        "last_epoch": {"val_accuracy": float(last.val_accuracy),
                       "val_loss": float(last.val_loss), "loss": float(last.loss)},
        "best_kept": {k: report["model"][k] for k in
                      ("accuracy", "balanced_accuracy", "macro_f1", "rsna_log_loss", "log_loss")},
        "majority_accuracy": majority_baseline(y_train, y_val)["accuracy"],
        "prior_log_loss": prior_baseline(y_train, y_val)["log_loss"],
        "machine": describe_accelerator()["label"],
        "render_seconds": round(render_s), "train_seconds": round(train_s),
        "commit": git_commit(REPO),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1) + "\n")
    print(json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
