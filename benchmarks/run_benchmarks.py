"""Speed and memory of lss on this machine, printed as a table (not a test).

::

    .venv/bin/python benchmarks/run_benchmarks.py                   # all parts, < 10 min on 2 cores
    .venv/bin/python benchmarks/run_benchmarks.py --only preprocess
    KERAS_BACKEND=jax python benchmarks/run_benchmarks.py --only train --precision fp32 mixed
    .venv/bin/python benchmarks/run_benchmarks.py --make-book        # also time `make book`

Parts (``--only``):

* ``preprocess`` -- DICOM series to cached tensors: the cold path
  (:meth:`lss.data.TensorCache.prepare` on an empty cache), the warm path (every entry a
  hit), a naive serial loop and the bare rate of pydicom on all cores, on the same files;
* ``train`` -- the paper's model at the default shape, fed by the real input pipeline
  (:class:`lss.data.loader.WindowDataset` over the cache) and from arrays in memory, with the
  achieved GFLOP/s and the remedies tried for a low share of the GEMM peak;
* ``gemm`` -- a float32 (and, for ``--precision mixed``, the mixed policy's half type:
  float16 on a GPU, bfloat16 on a TPU or a CPU with native bfloat16) matrix-multiply
  peak through the active Keras backend, and numpy's;
* ``make book`` only with ``--make-book``.

Every part runs in its own child process, so that memory peaks are its own and
TensorFlow's oneDNN and thread settings are fixed before it starts; under
``KERAS_BACKEND=jax`` no part imports TensorFlow. The phantom is made once under
``benchmarks/.data`` (ignored by git). The table goes to stdout and, with the raw numbers,
to ``benchmarks/results-<machine>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PARTS = ("preprocess", "train", "gemm")
TARGETS = {
    "cold_vs_naive": 2.0,  # cold path >= 2x the naive loop
    "cold_vs_limit": 0.8,  # cold path >= 80 % of pydicom's bare rate on all cores
    "warm_vs_cold": 50.0,  # cache hit >= 50x faster than the cold path
    "pipeline_cost": 0.05,  # input pipeline <= 5 % slower than arrays in memory
    "share_of_peak": 0.70,  # training step >= 70 % of the GEMM peak
}


# ----------------------------------------------------------------------------- machine


def machine_info() -> dict:
    """CPU model and count, memory, OS and versions; the backend's devices where cheap."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[1])
        mem_gb = round(kb / 2**20, 1)
    except (OSError, TypeError):
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    import pydicom

    return {
        "hostname": platform.node(),
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "memory_gb": mem_gb,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pydicom": pydicom.__version__,
        "keras_backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
    }


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]


# ----------------------------------------------------------------------------- helpers


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def maxrss_mb(who: int) -> float:
    """Peak resident memory of this process or of its largest reaped child, in MB."""
    import resource

    rss = resource.getrusage(who).ru_maxrss
    return round(rss / (2**20 if sys.platform == "darwin" else 2**10), 1)


class TreeMemory:
    """Peak RSS of this process's children (largest one and their sum), sampled.

    Uses psutil where installed (every 20 ms); otherwise reports nothing and the caller
    falls back to ``ru_maxrss`` of reaped children. ``exclude_existing`` leaves out the
    children that already run when it starts.
    """

    def __init__(self, every: float = 0.02, *, exclude_existing: bool = False) -> None:
        self.every, self.max_child, self.max_sum = every, 0.0, 0.0
        self._stop = threading.Event()
        self._skip: set[int] = set()
        try:
            import psutil

            self._me = psutil.Process()
            if exclude_existing:  # e.g. an idle pool that is not being measured
                self._skip = {c.pid for c in self._me.children(recursive=True)}
        except ImportError:
            self._me = None

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = []
            for c in self._me.children(recursive=True):
                if c.pid in self._skip:
                    continue
                try:
                    rss.append(c.memory_info().rss / 2**20)
                except Exception:  # noqa: BLE001 -- a child that just exited
                    pass
            if rss:
                self.max_child = max(self.max_child, max(rss))
                self.max_sum = max(self.max_sum, sum(rss))
            self._stop.wait(self.every)

    def __enter__(self) -> TreeMemory:
        if self._me is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._me is not None:
            self._thread.join()

    def result(self) -> dict:
        if self._me is None:
            return {"sampled": False}
        return {"sampled": True, "max_child_mb": round(self.max_child, 1),
                "max_children_sum_mb": round(self.max_sum, 1)}


def ensure_phantom(data_dir: Path, n_studies: int, workers: int | None) -> tuple[Path, float]:
    """The benchmark's own phantom (made once); returns its root and the seconds spent."""
    from lss.phantom import make_phantom

    root = data_dir / f"phantom-{n_studies}"
    if (root / "PHANTOM.json").is_file():
        return root, 0.0
    t0 = time.perf_counter()
    make_phantom(root, n_studies=n_studies, seed=0, n_test_studies=0, workers=workers,
                 overwrite=True)
    return root, time.perf_counter() - t0


# ----------------------------------------------------------------------------- children
# Each child prints one line "RESULT <json>"; they run as `python run_benchmarks.py
# --child NAME --spec JSON`. Pool workers re-import this file, so its top level stays light.


def _read_pixels(path: str) -> int:
    """The practical limit's work: read one file and decode its pixels, nothing else."""
    import pydicom

    return int(pydicom.dcmread(path).pixel_array.size)


def _start(_: int) -> int:
    import pydicom  # noqa: F401 -- what a limit worker needs

    return os.getpid()


def child_preprocess(spec: dict) -> dict:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import pydicom

    from lss.config import PreprocessConfig
    from lss.data import TensorCache, build_index, series_dir
    from lss.data.cache import _ready, default_workers
    from lss.data.window import resize_slice

    root, repeats, workers = Path(spec["root"]), spec["repeats"], spec["workers"]
    cfg = PreprocessConfig()
    index = build_index(root)
    files = [str(p) for s, r in zip(index["study_id"], index["series_id"], strict=True)
             for p in sorted(series_dir(root, s, r).glob("*.dcm"))]
    n_files, n_windows = len(files), len(index)
    read_bytes = sum(len(Path(f).read_bytes()) for f in files)  # into the page cache
    ctx = multiprocessing.get_context("spawn")
    out: dict = {"n_windows": n_windows, "n_files": n_files,
                 "mb_read": round(read_bytes / 2**20, 1), "workers": workers,
                 "image_size": cfg.image_size, "n_slices": cfg.n_slices, "rows": {}}

    def naive() -> None:
        for f in files:
            resize_slice(pydicom.dcmread(f).pixel_array.astype(np.float32), cfg.image_size)

    # Worker start-up, measured on its own: spawn one process and import lss.data in it.
    startup = []
    for _ in range(2):
        t0 = time.perf_counter()
        with ProcessPoolExecutor(1, mp_context=ctx) as pool:
            pool.submit(_ready).result()
            startup.append(time.perf_counter() - t0)
    out["worker_startup_s"] = startup

    tmp = Path(tempfile.mkdtemp(prefix="cold-", dir=spec["scratch"]))
    caches = iter(range(10**6))
    seconds: dict[str, list[float]] = {
        k: [] for k in ("naive", "limit", "cold_serial", "cold_pool", "cold")}
    # "cold" is what `lss prepare` does: `prepare`'s default workers for this job size
    # (lss.data.cache.default_workers), or --workers where given.
    cold_workers = spec["cold_workers"]
    out["cold_workers"] = cold_workers or default_workers(n_windows)
    stats: list = []

    def cold(n_workers: int | None) -> None:
        cache = TensorCache(root, cfg, cache_dir=tmp / str(next(caches)))
        stats.append(cache.prepare(index, workers=n_workers))

    try:
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            list(pool.map(_start, range(4 * workers)))  # every limit worker up before timing
            chunk = max(1, n_files // (8 * workers))
            with TreeMemory(exclude_existing=True) as mem:  # the cold runs' workers only
                # Interleaved, so that a busy spell on a shared machine hits every row.
                for _ in range(repeats):
                    seconds["naive"] += timed(naive, 1)
                    seconds["limit"] += timed(
                        lambda: list(pool.map(_read_pixels, files, chunksize=chunk)), 1)
                    seconds["cold_serial"] += timed(lambda: cold(1), 1)
                    seconds["cold_pool"] += timed(lambda: cold(workers), 1)
                    seconds["cold"] += timed(lambda: cold(cold_workers), 1)
        decoded = {s.slices_decoded for s in stats}
        assert len(decoded) == 1, decoded  # every cold run decoded the same slices
        decoded = decoded.pop()
        for name in seconds:
            out["rows"][name] = {"seconds": seconds[name],
                                 "decoded": decoded if name.startswith("cold") else n_files}
        out["rows"]["cold_pool"]["workers_memory"] = mem.result()
        cache = TensorCache(root, cfg, cache_dir=tmp / "0")
        # A hit takes milliseconds, so its rows take the best of more repeats than the
        # cold rows (as timeit does): three are too few to see past scheduler noise.
        warm_repeats = max(repeats, 10)
        warm = timed(lambda: cache.prepare(index, workers=workers), warm_repeats)
        out["rows"]["warm"] = {"seconds": warm, "decoded": 0}
        out["rows"]["warm_load"] = {"seconds": timed(lambda: cache.load(index), warm_repeats),
                                    "decoded": 0}
        out["entry_kb"] = round(sum(p.stat().st_size for p in cache.paths(index))
                                / n_windows / 2**10, 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out["parent_maxrss_mb"] = maxrss_mb(0)  # RUSAGE_SELF
    out["children_maxrss_mb"] = maxrss_mb(-1)  # RUSAGE_CHILDREN: the largest reaped one
    return out


def _sync(x) -> float:
    import keras

    # in float32: numpy cannot take TensorFlow's bfloat16 scalar
    return float(keras.ops.convert_to_numpy(keras.ops.cast(keras.ops.sum(x[:1, :1]),
                                                           "float32")))


def _mixed_policy() -> str:
    """This device's mixed policy: mixed_float16 on a GPU, mixed_bfloat16 on a TPU or a
    CPU with native bfloat16; a one-line error on another CPU."""
    from lss.device import describe_accelerator, precision_policy

    return precision_policy(describe_accelerator()["kind"], True)


def child_gemm(spec: dict) -> dict:
    """Matrix-multiply peak through the active Keras backend (and numpy's, float32)."""
    import keras

    n = spec["n"]
    dtype = spec["dtype"] if spec["dtype"] != "mixed" else _mixed_policy().split("_")[1]
    a = keras.random.normal((n, n), dtype=dtype, seed=1)
    b = keras.random.normal((n, n), dtype=dtype, seed=2)
    _sync(keras.ops.matmul(a, b))
    t0 = time.perf_counter()
    _sync(keras.ops.matmul(a, b))
    k = max(1, min(200, int(spec["seconds"] / max(time.perf_counter() - t0, 1e-6))))

    def run() -> None:
        c = None
        for _ in range(k):
            c = keras.ops.matmul(a, b)
        _sync(c)

    secs = timed(run, spec["repeats"])
    out = {"backend": keras.backend.backend(), "dtype": dtype, "n": n, "calls": k,
           "seconds": secs, "gflops": round(2 * n**3 * k / min(secs) / 1e9, 1)}
    if spec.get("numpy"):
        an = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
        an @ an
        ks = max(1, k)
        secs_np = timed(lambda: [an @ an for _ in range(ks)], spec["repeats"])
        out["numpy_gflops"] = round(2 * n**3 * ks / min(secs_np) / 1e9, 1)
    out["device"] = _device()
    out["tensorflow_imported"] = "tensorflow" in sys.modules
    return out


def _device() -> str:
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            d = jax.devices()[0]
            kind = str(getattr(d, "device_kind", d))
            return d.platform if kind == d.platform else f"{d.platform}: {kind}"
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            return f"GPU: {gpus[0].name}" if gpus else "cpu"
        if backend == "torch":
            import torch

            return f"cuda: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() \
                else "cpu"
    except Exception as exc:  # noqa: BLE001 -- only a label
        return f"unknown ({exc})"
    return "cpu"


def child_train(spec: dict) -> dict:
    """Samples/s of ``model.fit`` on the paper's model, per feeding mode, epoch by epoch."""
    import keras

    if spec.get("threads") and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(spec["threads"][0])
        tf.config.threading.set_inter_op_parallelism_threads(spec["threads"][1])
    if spec["precision"] == "mixed":  # the device's: lss.device.precision_policy(kind, True)
        keras.mixed_precision.set_global_policy(_mixed_policy())

    from lss.config import Config
    from lss.data import TensorCache, build_index
    from lss.data.loader import WindowDataset
    from lss.model import build_from_config, count_flops, train_step_flops

    cfg = Config().replace(batch_size=spec["batch"])
    index = build_index(spec["root"]).iloc[: spec["n_samples"]]
    n = len(index)
    cache = TensorCache(spec["root"], cfg.preprocess, cache_dir=spec["cache_dir"])
    cache.prepare(index)
    x = cache.load(index)[..., None]
    labels = index["label"].to_numpy()
    y = np.eye(3, dtype=np.float32)[labels]
    keras.utils.set_random_seed(0)
    model = build_from_config(cfg)
    if spec.get("jit") is not None:
        model.compile(optimizer=keras.optimizers.Adam(cfg.train.learning_rate),
                      loss=keras.losses.CategoricalCrossentropy(),
                      metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
                      jit_compile=spec["jit"])
    flops = count_flops(model)
    readers = {"pipeline": {},  # read in the training loop: lss's setting on a CPU
               # lss.device.loader_settings on an accelerator: reader threads ahead
               "pipeline_threads": {"workers": min(4, os.cpu_count() or 1),
                                    "use_multiprocessing": False, "max_queue_size": 16}}
    feed = {m: WindowDataset(cache.paths(index), labels, batch_size=spec["batch"],
                             shuffle=True, seed=0, **readers[m])
            for m in spec["modes"] if m in readers}

    class EpochClock(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.t0)

    def fit(mode: str, epochs: int) -> list[float]:
        clock = EpochClock()
        if mode == "memory":
            model.fit(x, y, batch_size=spec["batch"], epochs=epochs, shuffle=False,
                      verbose=0, callbacks=[clock])
        else:
            model.fit(feed[mode], epochs=epochs, shuffle=False, verbose=0,
                      callbacks=[clock])
        return clock.seconds

    modes = spec["modes"]
    t0 = time.perf_counter()
    warmup = {m: fit(m, 1) for m in modes}  # tracing / XLA compilation
    first = {m: fit(m, 1) for m in modes}  # the first measured epoch; sizes the rest
    epoch_s = min(min(v) for v in first.values())
    per_fit = max(1, min(50, math.ceil(spec["seconds_per_fit"] / epoch_s)))
    seconds = {m: list(first[m]) for m in modes}
    for _ in range(spec["rounds"] - 1):
        for m in modes:  # interleaved, so that a busy spell on a shared machine hits both
            seconds[m] += fit(m, per_fit)
    rates = {m: {"best": round(n / min(s), 3), "median": round(n / float(np.median(s)), 3),
                 "epochs": len(s)} for m, s in seconds.items()}
    return {"backend": keras.backend.backend(), "device": _device(), "n_samples": n,
            "batch": spec["batch"], "precision": spec["precision"], "jit": spec.get("jit"),
            "threads": spec.get("threads"), "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
            "flops_forward": flops, "flops_train": train_step_flops(model),
            "warmup_s": {m: round(v[0], 2) for m, v in warmup.items()},
            "epoch_seconds": seconds, "rates": rates, "seconds": time.perf_counter() - t0,
            "maxrss_mb": maxrss_mb(0), "tensorflow_imported": "tensorflow" in sys.modules}


CHILDREN = {"preprocess": child_preprocess, "train": child_train, "gemm": child_gemm}


def run_child(name: str, spec: dict, *, env: dict | None = None, timeout: float = 900) -> dict:
    """Run one child; its result, or ``{"error": ...}`` with the end of its stderr."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--spec",
           json.dumps(spec)]
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", "TF_CPP_MIN_LOG_LEVEL": "2",
                **(env or {})}
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout,
                           cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            out = json.loads(line[7:])
            out["child_wall_s"] = round(time.perf_counter() - t0, 1)
            return out
    tail = " | ".join(p.stderr.strip().splitlines()[-3:])
    return {"error": f"exit {p.returncode}: {tail}"}


# ----------------------------------------------------------------------------- parts


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def part_preprocess(args, root: Path) -> dict:
    log("preprocess: naive loop, pydicom on all cores, cold and warm cache ...")
    return run_child("preprocess", {"root": str(root), "repeats": args.repeats,
                                    "workers": args.workers or os.cpu_count() or 1,
                                    "cold_workers": args.workers,
                                    "scratch": str(args.data_dir)})


def train_variants(args) -> list[tuple[str, dict, dict]]:
    """(label, spec, env) of every training run: the main pair, then the remedies."""
    base = {"batch": 8, "precision": "fp32", "modes": ["memory", "pipeline"],
            "n_samples": args.train_samples, "rounds": args.rounds,
            "seconds_per_fit": args.seconds_per_fit}
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if args.accelerator:
        base["modes"] = ["memory", "pipeline", "pipeline_threads"]
    out = []
    for precision in args.precision:
        tag = "" if precision == "fp32" else f", {precision}"
        out.append((f"batch 8{tag}", {**base, "precision": precision}, {}))
        out.append((f"batch 32{tag}", {**base, "precision": precision, "batch": 32,
                                       "modes": ["memory"]}, {}))
    if backend == "tensorflow" and not args.no_remedies:
        small = {**base, "modes": ["memory"], "n_samples": min(args.train_samples, 32),
                 "rounds": 2}
        out += [
            ("batch 8, XLA jit_compile", {**small, "jit": True}, {}),
            ("batch 8, oneDNN off", small, {"TF_ENABLE_ONEDNN_OPTS": "0"}),
            ("batch 8, 1 intra-op thread", {**small, "threads": [1, 1]}, {}),
        ]
    return out


def part_train(args, root: Path) -> list[dict]:
    cache_dir = args.data_dir / "cache"
    out = []
    for label, spec, env in train_variants(args):
        log(f"train: {label} ...")
        res = run_child("train", {**spec, "root": str(root), "cache_dir": str(cache_dir)},
                        env=env)
        res["label"] = label
        out.append(res)
        if "error" in res:
            log(f"  failed: {res['error']}")
    return out


def part_gemm(args) -> list[dict]:
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    out = []
    for precision in args.precision:
        dtype = "float32" if precision == "fp32" else "mixed"  # the child resolves it
        log(f"gemm: {dtype} through Keras ({backend}) ...")
        res = run_child("gemm", {"dtype": dtype, "n": args.gemm_n, "repeats": args.repeats,
                                 "seconds": 1.0, "numpy": dtype == "float32"})
        res["precision"] = precision
        out.append(res)
    return out


def part_make_book() -> dict:
    log("make book ... (minutes)")
    t0 = time.perf_counter()
    p = subprocess.run(["make", "book"], cwd=REPO, capture_output=True, text=True)
    return {"seconds": round(time.perf_counter() - t0, 1), "returncode": p.returncode,
            "tail": p.stderr.strip().splitlines()[-3:] if p.returncode else []}


# ----------------------------------------------------------------------------- report


def _fmt(x: float | None, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:,.{digits}f}"


def _met(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "**missed**")


def summarise(res: dict) -> dict:
    """Derived rates, ratios and the target table from the raw results."""
    s: dict = {"targets": []}
    pre = res.get("preprocess")
    if pre and "error" not in pre:
        rows = {}
        for name, r in pre["rows"].items():
            t = min(r["seconds"])
            rows[name] = {"best_s": t, "median_s": float(np.median(r["seconds"])),
                          "files_per_s": pre["n_files"] / t,
                          "decoded_per_s": r.get("decoded", 0) / t,
                          "windows_per_s": pre["n_windows"] / t}
        s["preprocess"] = rows
        cold = rows["cold"]["best_s"]
        for key, value, name in (
            ("cold_vs_naive", rows["naive"]["best_s"] / cold, "cold path vs naive loop"),
            ("cold_vs_limit", rows["limit"]["best_s"] / cold,
             "cold path vs pydicom on all cores"),
            ("warm_vs_cold", cold / rows["warm"]["best_s"], "warm (cache hit) vs cold"),
        ):
            s["targets"].append({"name": name, "measured": value, "target": TARGETS[key],
                                 "met": value >= TARGETS[key], "unit": "x"})
    peaks = {}  # the machine's peak per precision: the better of the backend and numpy
    for g in res.get("gemm", []):
        if "error" not in g:
            best = max(g["gflops"], g.get("numpy_gflops") or 0)
            peaks[g["precision"]] = {**g, "gflops": best}
    s["peaks"] = {k: v["gflops"] for k, v in peaks.items()}
    train = []
    for t in res.get("train", []):
        if "error" in t:
            train.append({"label": t["label"], "error": t["error"]})
            continue
        row = {"label": t["label"], "batch": t["batch"], "precision": t["precision"],
               "maxrss_mb": t["maxrss_mb"], "modes": {}}
        peak = peaks.get(t["precision"])
        for mode, r in t["rates"].items():
            gflops = r["best"] * t["flops_train"] / 1e9
            row["modes"][mode] = {**r, "gflops": gflops,
                                  "share_of_peak": gflops / peak["gflops"] if peak else None}
        row["share_of_peak"] = max((m["share_of_peak"] for m in row["modes"].values()),
                                   default=None) if peak else None
        mem = t["rates"].get("memory")
        for mode in ("pipeline", "pipeline_threads"):
            if mem and mode in t["rates"]:
                pipe = t["rates"][mode]
                row["modes"][mode]["cost"] = 1 - pipe["best"] / mem["best"]
                row["modes"][mode]["cost_median"] = 1 - pipe["median"] / mem["median"]
        # the target is on the reader lss uses: threads on an accelerator, else in the loop
        used = "pipeline_threads" if "pipeline_threads" in t["rates"] else "pipeline"
        if mem and used in t["rates"]:
            row["pipeline_cost"] = row["modes"][used]["cost"]
            row["pipeline_mode"] = used
        train.append(row)
    s["train"] = train
    main = [r for r in train if "pipeline_cost" in r]
    for r in main:
        reader = "reader threads" if r["pipeline_mode"] == "pipeline_threads" else "in the loop"
        s["targets"].append({"name": f"input pipeline cost ({r['label']}, {reader})",
                             "measured": r["pipeline_cost"], "target": TARGETS["pipeline_cost"],
                             "met": r["pipeline_cost"] <= TARGETS["pipeline_cost"],
                             "unit": "%"})
    # The target is on the configurations lss trains with (fed through its pipeline); the
    # other rows (batch 32, XLA, oneDNN off, one thread) are alternatives measured beside.
    for r in [r for r in main if r.get("share_of_peak") is not None]:
        s["targets"].append({"name": f"training GFLOP/s / GEMM peak ({r['label']})",
                             "measured": r["share_of_peak"], "target": TARGETS["share_of_peak"],
                             "met": r["share_of_peak"] >= TARGETS["share_of_peak"],
                             "unit": "%"})
    return s


def render(res: dict, s: dict) -> str:
    m = res["machine"]
    lines = [f"# lss benchmarks, {res['date']}", ""]
    lines.append(f"- Machine: {m['cpu_model']}, {m['cpu_count']} CPUs ({m['cpus_usable']} usable), "
                 f"{m['memory_gb']} GB RAM; host `{m['hostname']}`; {m['platform']}")
    lines.append(f"- Software: Python {m['python']}, numpy {m['numpy']}, pydicom {m['pydicom']}, "
                 f"Keras backend {m['keras_backend']}"
                 + (f" on {res['device']}" if res.get("device") else ""))
    lines.append(f"- Load average (1, 5, 15 min) before: {res['load_before']}, after: "
                 f"{res['load_after']}; wall time {res['wall_s']:.0f} s")
    if res.get("phantom"):
        ph = res["phantom"]
        lines.append(f"- Data: synthetic phantom, {ph['n_studies']} studies (seed 0) at "
                     f"`{ph['root']}`" + (f", made in {ph['seconds']:.0f} s" if ph["seconds"]
                                          else ", reused"))
    lines.append("")
    pre, rows = res.get("preprocess"), s.get("preprocess")
    if pre and "error" in pre:
        lines += ["## 1. DICOM series to cached tensors", "", f"Failed: {pre['error']}", ""]
    elif rows:
        lines += [
            "## 1. DICOM series to cached tensors", "",
            f"The same job for every row: the {pre['n_windows']} labelled series of the "
            f"default target ({pre['n_files']} files, {pre['mb_read']} MB, in the page "
            f"cache), {pre['n_slices']} x {pre['image_size']} x {pre['image_size']} windows. "
            f"*Files/s* = {pre['n_files']} files / wall time for every row; *decoded/s* = "
            f"slices whose pixels were decoded / wall time. Best of "
            f"{len(pre['rows']['naive']['seconds'])} runs, interleaved; the warm rows best "
            f"of {len(pre['rows']['warm']['seconds'])} (medians in the JSON).", "",
            "| Path | What it does | Processes | Wall s | Files/s | Decoded/s | Windows/s |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        what = {
            "naive": ("naive loop: `dcmread` + `pixel_array` + resize, every file, serial", 1),
            "limit": ("limit: `dcmread(f).pixel_array` only, every file, process pool "
                      "(already started)", pre["workers"]),
            "cold_serial": ("cold, `workers=1`: headers of every file, decode + resize the "
                            "window's slices, scale, write", 1),
            "cold_pool": ("cold, `workers` = all CPUs (pool start-up included)",
                          pre["workers"]),
            "cold": ("cold, `TensorCache.prepare` on an empty cache with its default "
                     "`workers` for this job (what `lss prepare` does)",
                     pre.get("cold_workers", pre["workers"])),
            "warm": ("warm, `prepare` again: every entry a hit (fingerprint check)", 1),
            "warm_load": ("warm, `TensorCache.load`: hits + read every window", 1),
        }
        for name, (text, procs) in what.items():
            if name not in rows:  # a results file from before the row existed
                continue
            r = rows[name]
            lines.append(f"| {name} | {text} | {procs} | {r['best_s']:.3f} | "
                         f"{_fmt(r['files_per_s'])} | {_fmt(r['decoded_per_s'])} | "
                         f"{_fmt(r['windows_per_s'], 1)} |")
        mem = (pre["rows"].get("cold_pool") or pre["rows"]["cold"]).get("workers_memory", {})
        lines += ["",
                  f"Worker start-up (spawn + import lss.data): "
                  f"{min(pre['worker_startup_s']):.2f} s. Cache entry: {pre['entry_kb']} KB. "
                  f"Peak memory: preprocessing parent {pre['parent_maxrss_mb']} MB, largest "
                  f"worker {pre['children_maxrss_mb']} MB (ru_maxrss)"
                  + (f", workers together {mem['max_children_sum_mb']} MB (psutil, sampled)"
                     if mem.get("sampled") else "") + ".", ""]
    if res.get("train") is not None:
        lines += ["## 2-3. Training throughput and FLOPs", ""]
        tr = [t for t in res["train"] if "error" not in t]
        if tr:
            t0 = tr[0]
            lines.append(f"Model: the paper's CNN-LSTM at 8 x 128 x 128, "
                         f"{t0['flops_forward'] / 1e9:.2f} GFLOP per sample forward "
                         f"(`lss.model.count_flops`: convolutions, LSTM and dense layers; "
                         f"augmentation, pooling and activations not counted); a training "
                         f"step (`lss.model.train_step_flops`: x 3, the first convolution "
                         f"x 2, its input needing no gradient) = "
                         f"{t0['flops_train'] / 1e9:.2f} GFLOP per sample. "
                         f"{t0['n_samples']} samples per epoch on "
                         f"{t0['device']}; samples/s from whole epochs after one warm-up "
                         f"epoch, best (median).")
            lines.append("")
        lines += ["| Variant | Fed from | Samples/s | GFLOP/s | % of GEMM peak | Peak RSS MB |",
                  "| --- | --- | ---: | ---: | ---: | ---: |"]
        for r in s["train"]:
            if "error" in r:
                lines.append(f"| {r['label']} | failed: {r['error'][:120]} | | | | |")
                continue
            for mode, m in r["modes"].items():
                fed = {"memory": "arrays in memory", "pipeline": "cache (WindowDataset)",
                       "pipeline_threads": "cache (WindowDataset, 4 reader threads)"}[mode]
                share = "-" if m["share_of_peak"] is None else f"{100 * m['share_of_peak']:.0f} %"
                lines.append(f"| {r['label']} | {fed} | {m['best']:.2f} ({m['median']:.2f}) | "
                             f"{m['gflops']:.1f} | {share} | {r['maxrss_mb']:.0f} |")
        for r in s["train"]:
            for mode, m in r.get("modes", {}).items():
                if "cost" in m:
                    lines.append("")
                    lines.append(f"Input pipeline cost ({r['label']}, {mode}): "
                                 f"{100 * m['cost']:.1f} % from the best epochs, "
                                 f"{100 * m['cost_median']:.1f} % from the medians.")
        tf_seen = [t.get("tensorflow_imported") for t in res["train"] if "error" not in t]
        if tf_seen and res["machine"]["keras_backend"] != "tensorflow":
            lines += ["", "TensorFlow imported by the training runs: "
                      + ("yes" if any(tf_seen) else "no") + "."]
        lines.append("")
    if res.get("gemm"):
        lines += ["The peak each training row is compared with is the better of the two "
                  "columns (float32), or the backend's half-type rate for mixed precision.", "",
                  "| Matrix-multiply peak | n | GFLOP/s | numpy float32 GFLOP/s |",
                  "| --- | ---: | ---: | ---: |"]
        for g in res["gemm"]:
            if "error" in g:
                lines.append(f"| {g['precision']} | failed: {g['error'][:120]} | | |")
                continue
            lines.append(f"| {g['dtype']} via Keras ({g['backend']}, {g['device']}) | {g['n']} | "
                         f"{g['gflops']:,.1f} | {_fmt(g.get('numpy_gflops'), 1)} |")
        lines.append("")
    if res.get("make_book"):
        mb = res["make_book"]
        lines += ["## 5. make book", "",
                  f"`make book` (defaults): {mb['seconds']:.0f} s, exit code {mb['returncode']}.",
                  ""]
    if s["targets"]:
        lines += ["## Targets", "", "| Target | Measured | Goal | |", "| --- | ---: | ---: | --- |"]
        for t in s["targets"]:
            if t["unit"] == "%":
                meas, goal = f"{100 * t['measured']:.1f} %", f"{100 * t['target']:.0f} %"
                goal = ("<= " if "pipeline" in t["name"] else ">= ") + goal
            else:
                meas, goal = f"{t['measured']:.2f} x", f">= {t['target']:g} x"
            lines.append(f"| {t['name']} | {meas} | {goal} | {_met(t['met'])} |")
        lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS),
                   help="parts to run (default: all)")
    p.add_argument("--precision", nargs="+", choices=["fp32", "mixed"], default=["fp32"],
                   help="training and GEMM precisions; mixed = the device's mixed policy "
                   "(mixed_float16 on a GPU, mixed_bfloat16 on a TPU or a CPU with native "
                   "bfloat16)")
    p.add_argument("--studies", type=int, default=64,
                   help="phantom studies (default %(default)s; made once)")
    p.add_argument("--train-samples", type=int, default=64,
                   help="windows per training epoch (default %(default)s)")
    p.add_argument("--rounds", type=int, default=3,
                   help="measured fits per feeding mode (default %(default)s)")
    p.add_argument("--seconds-per-fit", type=float, default=5.0,
                   help="after the first measured epoch, fits last about this long")
    p.add_argument("--repeats", type=int, default=3, help="repeats of each timing")
    p.add_argument("--gemm-n", type=int, default=None,
                   help="matrix size (default 2048 on CPU, 8192 on an accelerator)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs)")
    p.add_argument("--no-remedies", action="store_true",
                   help="skip the XLA / oneDNN / thread variants of the training run")
    p.add_argument("--make-book", action="store_true", help="also time `make book`")
    p.add_argument("--data-dir", type=Path, default=HERE / ".data",
                   help="phantom and caches (default: benchmarks/.data)")
    p.add_argument("--out", type=Path, default=HERE, help="folder for results-*.md/.json")
    p.add_argument("--render", type=Path, default=None,
                   help="print the table of a saved results-*.json again and exit")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(CHILDREN[args.child](json.loads(args.spec))), flush=True)
        return 0
    if args.render:
        res = json.loads(args.render.read_text())["results"]
        print(render(res, summarise(res)))
        return 0
    t_start = time.perf_counter()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    res: dict = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                 "machine": machine_info(), "load_before": load_average(),
                 "args": {k: str(v) for k, v in vars(args).items() if k not in ("child", "spec")},
                 "targets": TARGETS}
    log(f"{res['machine']['cpu_model']}, {res['machine']['cpu_count']} CPUs, load "
        f"{res['load_before']}")
    if "gemm" in args.only or "train" in args.only:
        probe = run_child("gemm", {"dtype": "float32", "n": 64, "repeats": 1, "seconds": 0})
        res["device"] = probe.get("device", probe.get("error"))
        args.accelerator = not str(res["device"]).lower().startswith("cpu")
        if args.gemm_n is None:
            args.gemm_n = 8192 if args.accelerator else 2048
    args.accelerator = getattr(args, "accelerator", False)
    root = None
    if "preprocess" in args.only or "train" in args.only:
        log(f"phantom: {args.studies} studies under {args.data_dir} ...")
        root, secs = ensure_phantom(args.data_dir, args.studies, args.workers)
        res["phantom"] = {"root": str(root), "n_studies": args.studies, "seconds": secs}
    if "preprocess" in args.only:
        res["preprocess"] = part_preprocess(args, root)
    if "gemm" in args.only or "train" in args.only:
        res["gemm"] = part_gemm(args)
    if "train" in args.only:
        res["train"] = part_train(args, root)
        # The peak again after training, on a shared machine the busier spell may differ:
        # each precision keeps its best.
        for before, after in zip(res["gemm"], part_gemm(args), strict=True):
            before["gflops_runs"] = [before.get("gflops"), after.get("gflops")]
            if "error" in before or after.get("gflops", 0) > before["gflops"]:
                before.update({k: v for k, v in after.items() if k != "gflops_runs"})
    if args.make_book:
        res["make_book"] = part_make_book()
    res["load_after"] = load_average()
    res["wall_s"] = time.perf_counter() - t_start
    summary = summarise(res)
    text = render(res, summary)
    print(text)
    m = res["machine"]
    device = str(res.get("device") or "cpu")
    name = f"{slug(m['cpu_model'])}-{m['cpu_count']}cpu"
    if not device.lower().startswith("cpu"):
        name = slug(device.split(":")[-1]) + "-" + name
    name += f"-{m['keras_backend']}"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"results-{name}.md").write_text(text + "\n")
    (args.out / f"results-{name}.json").write_text(
        json.dumps({"results": res, "summary": summary}, indent=2, default=str) + "\n")
    log(f"wrote {args.out / f'results-{name}.md'} and .json in {res['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
