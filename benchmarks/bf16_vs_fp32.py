"""mixed_bfloat16 against float32 on this CPU: speed and validation metrics (not a test).

::

    .venv/bin/python data_scripts/make_phantom.py --out /tmp/bf16ph --n-studies 40 --seed 0
    .venv/bin/python benchmarks/bf16_vs_fp32.py --data /tmp/bf16ph --epochs 3

The same short seeded run of :func:`lss.train.train` (the paper's model at the default
shape, default target, the same split, seed and cache) once per dtype policy, in one
process, in turn. ``lss.device.precision_policy`` refuses mixed precision on a CPU, so
this script substitutes the policy for the run only (``lss.train.precision_policy`` is
replaced while it runs); nothing in ``lss`` changes. It prints, per policy, training
samples/s (from the epochs after the first, whose time includes tracing), the wall
time, and the last epoch's validation loss and accuracy, beside the CPU's bf16 flags
and the load average.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def bf16_flags() -> str:
    """The CPU's bfloat16 instruction-set flags ('none' if none; lss.device.cpu_flags)."""
    from lss.device import cpu_flags

    found = [f for f in cpu_flags() if "bf16" in f or f.startswith("amx")]
    return " ".join(found) or "none"


def _epoch_clock():
    """A Keras callback that records each epoch's seconds (validation included)."""
    import time

    import keras

    class Clock(keras.callbacks.Callback):
        seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.t0)

    clock = Clock()
    clock.seconds = []
    return clock


def run(policy: str, data: Path, epochs: int, cache: Path, out: Path) -> dict:
    """One seeded short training run under ``policy``; its speed and last metrics."""
    import lss.train as lt
    from lss.config import Config

    cfg = Config().replace(epochs=epochs, early_stopping_patience=epochs + 1)
    clock = _epoch_clock()
    original = lt.precision_policy
    lt.precision_policy = lambda *args, **kwargs: policy
    try:
        res = lt.train(data, cfg, out / policy, cache_dir=cache, verbose=0, overwrite=True,
                       callbacks=[clock])
    finally:
        lt.precision_policy = original
    n_train = int((res.split["split"] == "train").sum())
    seconds = clock.seconds
    last = res.history.iloc[-1]
    return {"policy": policy, "wall_s": res.seconds, "n_train": n_train,
            "epoch_s": None if seconds is None else list(seconds),
            "val_loss": float(last["val_loss"]), "val_accuracy": float(last["val_accuracy"]),
            "load": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="a phantom (or data) root")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--policies", nargs="+", default=["float32", "mixed_bfloat16"])
    args = p.parse_args(argv)
    print(f"CPU bf16 flags: {bf16_flags()}; load {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        rows = [run(policy, args.data, args.epochs, cache, Path(tmp)) for policy in
                [args.policies[0], *args.policies]][1:]  # the first run fills the cache
    print("| Policy | train windows | wall s | s/epoch (after the 1st) | samples/s | "
          "val loss | val accuracy | load (1/5/15) |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | --- |")
    for r in rows:
        later = r["epoch_s"][1:] if r["epoch_s"] else None
        rate = "-" if not later else f"{r['n_train'] / min(later):.2f}"
        per = "-" if not later else ", ".join(f"{s:.1f}" for s in later)
        load = "/".join(f"{x:.2f}" for x in r["load"])
        print(f"| {r['policy']} | {r['n_train']} | {r['wall_s']:.0f} | {per} | {rate} | "
              f"{r['val_loss']:.4f} | {r['val_accuracy']:.3f} | {load} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
