"""Where the paper's CPU training step loses against the matrix-multiply peak (not a test).

::

    .venv/bin/python benchmarks/step_profile.py              # profile + peak/step rounds
    .venv/bin/python benchmarks/step_profile.py --rounds 5 --batch 8

In one process (TensorFlow backend, float32 unless ``--policy``):

1. **Per-layer profile.** Each layer group of the paper's model at the default shape
   (8 slices of 128 x 128, batch 8, so 64 slices per step) is timed on its own, forward
   and backward (gradients of its weights and, except for the first convolution, whose
   input is data, of its input), inside one ``tf.function`` per group, after a warm-up
   call: the augmentation (forward only: it has no weights and nothing before it needs a
   gradient), each convolution with its bias and ReLU, each pooling, the LSTM and the
   head. Each row gives the FLOPs it does (multiply-adds as 2; forward x 3 for a
   trained layer with an input gradient, x 2 without), its milliseconds, its GFLOP/s
   and its share of the summed time.
2. **Peak and step, back to back.** Alternating rounds of a float32 2048 x 2048
   ``keras.ops.matmul`` and the whole compiled training step (``model.train_on_batch``
   on arrays in memory, after warm-up), so that a busy spell on a shared machine hits
   both; the medians, and the load average beside each round.

The figures are printed as tables; nothing is written.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def best_ms(fn, repeats: int, inner: int) -> tuple[float, float]:
    """(median, best) milliseconds per call of ``fn`` over ``repeats`` x ``inner`` calls."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner * 1e3)
    return statistics.median(times), min(times)


def groups(model, batch: int):
    """(name, layer-callable, input shape, weights, has input grad, forward FLOPs) rows."""
    import keras

    from lss.model import count_flops, slice_cnn

    td = slice_cnn(model)
    cnn = td.layer
    z = model.input_shape[1]
    n = batch * z
    rows = []
    aug = model.get_layer("augmentation")
    rows.append(("augmentation (warp, fwd only)", lambda x: aug(x, training=True),
                 (batch,) + model.input_shape[1:], [], False, 0))
    for layer in cnn.layers:
        shape = (n,) + tuple(layer.input.shape[1:])
        f = count_flops(keras.Sequential([keras.Input(shape[1:]), layer])) if \
            layer.trainable_weights else 0
        first = layer is cnn.layers[0]
        rows.append((f"{layer.name} {'x'.join(map(str, shape[1:]))}", layer, shape,
                     layer.trainable_weights, not first, n * f))
    lstm, head = model.get_layer("lstm"), [model.get_layer(k) for k in
                                           ("dropout", "dense", "severity")]
    rows.append(("lstm 8x128 -> 64", lstm, (batch, z, lstm.input.shape[-1]),
                 lstm.trainable_weights, True,
                 batch * 2 * z * 4 * lstm.units * (lstm.input.shape[-1] + lstm.units)))

    def head_fn(x):
        for layer in head:
            x = layer(x, training=True)
        return x

    hw = [w for layer in head for w in layer.trainable_weights]
    rows.append(("head (dropout, dense, softmax)", head_fn, (batch, lstm.units), hw, True,
                 batch * 2 * (lstm.units * 64 + 64 * 3)))
    return rows


def _step_fn(fn, weights, input_grad: bool):
    """A ``tf.function`` of one forward and backward pass of ``fn``."""
    import tensorflow as tf

    variables = [w.value for w in weights]

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            if input_grad:
                tape.watch(x)
            y = fn(x)
            loss = tf.reduce_sum(y * y)
        targets = variables + ([x] if input_grad else [])
        if not targets:
            return loss
        return tf.add_n([tf.reduce_sum(g) for g in tape.gradient(loss, targets)])

    return step


def profile(model, batch: int, repeats: int) -> list[dict]:
    import tensorflow as tf

    out = []
    for name, fn, shape, weights, input_grad, fwd in groups(model, batch):
        x = tf.random.uniform(shape)
        step = _step_fn(fn, weights, input_grad)
        mult = (3 if input_grad else 2) if weights else 1
        med, best = best_ms(lambda step=step, x=x: float(step(x)), repeats, 5)
        flops = fwd * mult
        out.append({"name": name, "gflop": flops / 1e9, "ms": med, "best_ms": best,
                    "gflops": flops / med / 1e6 if flops else None})
    return out


def print_profile(rows: list[dict], peak: float) -> None:
    total = sum(r["ms"] for r in rows)
    print("| Layer group (64 slices) | GFLOP fwd+bwd | ms (median) | GFLOP/s | % of peak "
          "| % of time |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        g = "-" if r["gflops"] is None else f"{r['gflops']:.0f}"
        share = "-" if r["gflops"] is None else f"{100 * r['gflops'] / peak:.0f} %"
        print(f"| {r['name']} | {r['gflop']:.3f} | {r['ms']:.1f} | {g} | {share} | "
              f"{100 * r['ms'] / total:.0f} % |")
    flops = sum(r["gflop"] for r in rows)
    print(f"| sum | {flops:.3f} | {total:.1f} | {flops / total * 1e3:.0f} | "
          f"{100 * flops / total * 1e3 / peak:.0f} % | 100 % |")


def matmul_gflops(n: int = 2048, calls: int = 20) -> float:
    import keras

    a = keras.random.normal((n, n), seed=1)
    b = keras.random.normal((n, n), seed=2)
    float(keras.ops.sum(keras.ops.matmul(a, b)[:1, :1]))
    t0 = time.perf_counter()
    c = None
    for _ in range(calls):
        c = keras.ops.matmul(a, b)
    float(keras.ops.sum(c[:1, :1]))
    return 2 * n**3 * calls / (time.perf_counter() - t0) / 1e9


class _BatchClock:
    """Keras callback: seconds inside the training steps, and from epoch start to step 1."""

    def __new__(cls):
        import keras

        class Clock(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.steps, self.t0 = 0.0, time.perf_counter()
                self.gap = None

            def on_train_batch_begin(self, batch, logs=None):
                self.tb = time.perf_counter()
                if self.gap is None:
                    self.gap = self.tb - self.t0

            def on_train_batch_end(self, batch, logs=None):
                self.steps += time.perf_counter() - self.tb

        return Clock()


def fit_rate(model, x, y, batch: int) -> tuple[float, float]:
    """(samples/s inside the steps, seconds before the first step) of one ``fit`` epoch."""
    clock = _BatchClock()
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0, callbacks=[clock])
    return len(x) / clock.steps, clock.gap


def rounds(models: dict, batch: int, n_rounds: int, n: int, flops_train: float) -> dict:
    """Alternate the matmul peak and a ``fit`` epoch of each model; print and return."""
    rng = np.random.default_rng(0)
    shape = next(iter(models.values())).input_shape[1:]
    x = rng.random((n,) + shape, dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]
    for model in models.values():
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # tracing, first steps
    peaks, rates = [], {k: [] for k in models}
    print("| Round | load (1/5/15) | matmul GFLOP/s | "
          + " | ".join(f"{k}: samples/s, share" for k in models) + " |")
    print("| ---: | --- | ---: |" + " ---: |" * len(models))
    for i in range(n_rounds):
        peaks.append(matmul_gflops())
        cells = []
        for k, model in models.items():
            rate, gap = fit_rate(model, x, y, batch)
            rates[k].append(rate)
            share = rate * flops_train / 1e9 / peaks[-1]
            cells.append(f"{rate:.2f}, {100 * share:.0f} % (start {gap:.1f} s)")
        print(f"| {i + 1} | {load()} | {peaks[-1]:.0f} | " + " | ".join(cells) + " |",
              flush=True)
    peak = statistics.median(peaks)
    out = {"peak": peak}
    for k in models:
        rate = statistics.median(rates[k])
        out[k] = {"rate": rate, "share": rate * flops_train / 1e9 / peak}
    print(f"| median | {load()} | {peak:.0f} | " + " | ".join(
        f"{out[k]['rate']:.2f}, {100 * out[k]['share']:.0f} %" for k in models) + " |")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--samples", type=int, default=32, help="samples per fit epoch")
    p.add_argument("--repeats", type=int, default=5, help="profile repeats per group")
    p.add_argument("--policies", nargs="+", default=["float32"],
                   help="one model per Keras dtype policy, timed in alternation "
                        "(e.g. float32 mixed_bfloat16); the profile is of the first")
    p.add_argument("--jit", action="store_true", help="compile the step with XLA")
    p.add_argument("--no-profile", action="store_true")
    p.add_argument("--threads", type=int, nargs=2, default=None, metavar=("INTRA", "INTER"),
                   help="TensorFlow's intra- and inter-op threads (default: its own)")
    args = p.parse_args(argv)
    import keras

    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads[0])
        tf.config.threading.set_inter_op_parallelism_threads(args.threads[1])

    from lss.config import Config
    from lss.model import build_from_config, count_flops, train_step_flops

    cfg = Config().replace(batch_size=args.batch)
    models = {}
    for policy in args.policies:
        keras.mixed_precision.set_global_policy(policy)
        keras.utils.set_random_seed(0)
        models[policy] = build_from_config(cfg)
        if args.jit:
            models[policy].compile(optimizer=keras.optimizers.Adam(cfg.train.learning_rate),
                                   loss=models[policy].loss, metrics=["accuracy"],
                                   jit_compile=True)
    keras.mixed_precision.set_global_policy(args.policies[0])
    model = models[args.policies[0]]
    fwd, train = count_flops(model), train_step_flops(model)
    print(f"load {load()}; {keras.backend.backend()}, policies "
          f"{', '.join(args.policies)}; forward {fwd / 1e9:.3f} GFLOP/sample,"
          f" training step {train / 1e9:.3f} GFLOP/sample; batch {args.batch}")
    if not args.no_profile:
        print_profile(profile(model, args.batch, args.repeats), matmul_gflops())
        print()
    rounds(models, args.batch, args.rounds, args.samples, train)
    return 0


if __name__ == "__main__":
    sys.exit(main())
