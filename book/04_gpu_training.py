# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Training on a GPU: the full run
#
# ## Overview
#
# Chapter 3 trained for two epochs on a CPU. The paper trains for 20. This chapter
# makes the full run, on whatever the machine has: it finds the accelerator, computes in
# half precision where a GPU makes that pay, keeps the GPU fed from the cache, and puts
# the result beside the paper's figures. Chapter 5 analyses the run it writes.
#
# 1. Finding the accelerator
# 2. Mixed precision
# 3. The input pipeline
# 4. The full training run
# 5. Beside the paper
# 6. What it costs
#
# ## Prerequisites
#
# | Concepts | Importance | Notes |
# | --- | --- | --- |
# | {doc}`03_cnn_lstm` | Necessary | The model and `lss.train.train` |
# | [Keras mixed precision][mp] | Helpful | float16 compute, float32 weights |
# | [`keras.utils.PyDataset`][pyds] | Helpful | Batches from Python, read in threads |
# | A GPU runtime | Helpful | In Colab: *Runtime > Change runtime type > GPU* |
#
# [mp]: https://keras.io/api/mixed_precision/
# [pyds]: https://keras.io/api/utils/python_utils/#pydataset-class
#
# - **Time to learn**: 30 minutes.
# - **System requirements**: a GPU for the paper's 20 epochs; on the phantom that is
#   well under a minute of training (measured on an NVIDIA H200: 8 s for the first
#   epoch, 0.4 s for each further one). Without a GPU, the chapter says so and trains
#   `CPU_EPOCHS` epochs: about 2.5 minutes on 2 CPU cores.

# %% [markdown]
# ---
#
# In Colab, the next cell installs the `lss` package; elsewhere it does nothing.

# %%
# In Colab or on Kaggle: install lss, the book's release (`make book` did it elsewhere).
import os
import sys

if "google.colab" in sys.modules or os.environ.get("KAGGLE_KERNEL_RUN_TYPE"):
    import importlib.util
    import subprocess

    colab = "google.colab" in sys.modules
    requirement = "lss @ git+https://github.com/lss-book/lss@v0.1.0"
    if colab or importlib.util.find_spec("lss") is None:  # Kaggle: the kit's, if there
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", requirement],
                       check=True)
    home = "/content" if colab else "/kaggle/working"  # where a notebook may write
    os.makedirs(f"{home}/book", exist_ok=True)
    os.chdir(f"{home}/book")  # so ../data, ../runs and ../.cache are under home
    if colab:
        from google.colab import userdata

        for name in ("KAGGLE_USERNAME", "KAGGLE_KEY"):  # from Colab's Secrets
            try:
                os.environ[name] = userdata.get(name)
            except (userdata.SecretNotFoundError, userdata.NotebookAccessError):
                pass  # not set: with DATA_SOURCE = "kaggle", lss says what is missing

# %% [markdown]
# All imports, in one place. Keras reads its backend (`KERAS_BACKEND`: `tensorflow`,
# `jax` or `torch`) when it is first imported; set it before this cell to change it.

# %%
import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Markdown

import lss.comparison
import lss.data
import lss.data.loader
import lss.data.sources
import lss.device
import lss.interpret
import lss.metrics
import lss.model
import lss.paper
import lss.run
import lss.train
import lss.viz
from lss.config import (
    PAPER_EPOCHS,
    PAPER_RESULTS,
    REAL_CLASS_COUNTS,
    REAL_MAJORITY_SHARE,
    Config,
)
from lss.text import say

# %% [markdown]
# The settings. `EPOCHS = None` means: the paper's 20 on a GPU or TPU, `CPU_EPOCHS` on a
# CPU. `MIXED_PRECISION = None` means: where the device has it.

# %% tags=["parameters"]
DATA_DIR = "../data/phantom"  # Kaggle layout; the phantom is made here if absent
N_STUDIES = 200               # phantom studies needed (a larger phantom serves too)
DATA_SOURCE = "auto"          # Kaggle's attached data, else the phantom; or "kaggle"
WORK_DIR = "../runs/book"     # models and metrics that later chapters read
CACHE_DIR = "../.cache"       # preprocessed windows (lss.data.TensorCache)
SEED = 0
CONDITION = "left_subarticular_stenosis"
LEVEL = "L4/L5"
EPOCHS = None          # None: 20 (the paper) on a GPU or TPU, CPU_EPOCHS on a CPU
CPU_EPOCHS = 6         # sized for about 2.5 minutes on 2 CPU cores
MIXED_PRECISION = None  # None: where the device has it; False: float32 everywhere
WORKERS = None

# %% [markdown]
# The data root, its label, and the run folder that chapter 5 reads.

# %%
root = lss.data.sources.ensure_data(DATA_DIR, source=DATA_SOURCE, n_studies=N_STUDIES)
DATA_LABEL = lss.run.data_label(root)
RUN_DIR = Path(WORK_DIR) / "cnn_lstm"
config = Config(condition=CONDITION, level=LEVEL)
print(DATA_LABEL, "-> WORK_DIR /", RUN_DIR.name)

# %% [markdown]
# ## Finding the accelerator
#
# `describe_accelerator` asks the Keras backend which device it will train on.

# %%
accelerator = lss.device.describe_accelerator()
pd.Series(accelerator, name="this machine").to_frame()

# %% [markdown]
# Which machine executed the page you are reading:

# %%
if accelerator["kind"] == "CPU":
    page_note = (
        f"**This page was executed on a CPU** ({accelerator['cpu_count']} cores, "
        f"{accelerator['backend']} backend): no execution "
        "of this chapter on a GPU is recorded yet. The float16 layer table, the "
        "loss-scale optimizer and the GPU timings below are therefore described in "
        "the text, not shown; run the chapter on a GPU (Colab or Kaggle) to see them.")
else:
    page_note = f"This page was executed on **{accelerator['label']}**."
Markdown(page_note)

# %% [markdown]
# `kind` is what matters below: `GPU`, `TPU` or `CPU`. In Colab, a GPU runtime gives
# a `GPU` here (often an NVIDIA T4); a TPU is used through the JAX backend
# (`KERAS_BACKEND=jax`). The number of epochs follows from it:

# %%
epochs = lss.device.resolve_epochs(EPOCHS, accelerator, cpu_epochs=CPU_EPOCHS)
if accelerator["kind"] == "CPU" and EPOCHS is None:
    say(f"No GPU or TPU: a short run of {epochs} epochs on the CPU "
          f"({accelerator['cpu_count']} cores). The paper trains 20; "
          "see 'What it costs'.")
else:
    print(f"{accelerator['label']}: {epochs} epochs")

# %% [markdown]
# ## Mixed precision
#
# A GPU with tensor cores (NVIDIA compute capability 7.0 or newer: the T4, A100, H100)
# multiplies float16 matrices several times faster than float32 ones, and moves half the
# bytes. **Mixed precision** computes in float16 while keeping the weights in float32,
# so that small weight updates are not rounded away. On a TPU the half type is bfloat16.
# On most CPUs half precision is emulated and slower (8.7 times slower than float32 on
# an AVX2-only CPU, {doc}`benchmarks`), so `use_mixed_precision` leaves it off there.
# A CPU with native bfloat16 instructions (AVX512_BF16 or AMX-BF16), under TensorFlow,
# is the exception: there `mixed_bfloat16` trained twice as fast as float32 at the same
# validation loss ({doc}`benchmarks`), so it is switched on
# (`lss.device.fast_cpu_bf16` reads the CPU's flags):

# %%
policy = lss.device.use_mixed_precision(MIXED_PRECISION, accelerator=accelerator)
print(f"{accelerator['label']}: dtype policy '{policy}'")
if accelerator["kind"] == "CPU":
    native = lss.device.fast_cpu_bf16(accelerator["backend"])
    say(f"This CPU {'has' if native else 'has no'} native bfloat16 under the "
        f"{accelerator['backend']} backend, so the policy is {policy}.")

# %% [markdown]
# A model built now follows that policy. Each layer has a compute type and a variable
# (weight) type:

# %%
demo = lss.model.build_from_config(config)
pd.DataFrame([(layer.name, layer.compute_dtype, layer.variable_dtype)
              for layer in demo.layers[1:]],
             columns=["layer", "computes in", "weights in"])

# %% [markdown]
# This run's table, counted:

# %%
half = [layer for layer in demo.layers[1:] if layer.compute_dtype != "float32"]
if half:
    say(f"Under {policy}, {len(half)} of {len(demo.layers) - 1} layers compute in "
        f"{' and '.join(sorted({layer.compute_dtype for layer in half}))} and keep "
        "float32 weights; the others compute in float32.")
else:
    say(f"Under {policy}, every layer computes in float32.")

# %% [markdown]
# Under a mixed policy the table reads float16 (bfloat16 on a TPU or such a CPU) /
# float32 for every layer except two, which `lss.model` keeps in float32:
#
# - `severity`, the softmax: probabilities near 0 or 1, and the log of the
#   cross-entropy, need float32's range;
# - `lstm`: under the JAX backend the LSTM runs on cuDNN's fused kernel, which JAX
#   provides for float32 only (in float16 it fails with "Unknown output type
#   float16"). The recurrence over 8 slices is a tiny share of the work; the
#   convolutions, which are nearly all of it, run in float16.
#
# Under `mixed_float16`, `compile` also wraps the optimizer in a `LossScaleOptimizer`,
# which scales the loss up before the gradients are computed so that small gradients
# do not underflow to 0 in float16; bfloat16 has float32's range and needs none.
#
# `train` sets the policy for its own model and restores the previous one, so the global
# policy goes back to float32 here:

# %%
print(lss.device.use_mixed_precision(False), "| the optimizer of the demo model:",
      type(demo.optimizer).__name__)

# %% [markdown]
# ## The input pipeline
#
# An epoch reads every training window once. The windows come from the cache of
# chapter 2, one `.npz` file of 8 x 128 x 128 float32 (512 KiB) per study, through
# `lss.data.loader.WindowDataset`, a `keras.utils.PyDataset`. With `workers` above 1, it
# reads batches in that many threads, up to `max_queue_size` batches ahead of the
# model: the next batches are being read while the accelerator computes on this one
# (prefetching). The threads are `lss`'s own, not Keras': Keras' reader keeps batches it
# read ahead for an epoch that was cut short and serves them first in the next epoch,
# which under the JAX backend mixed every epoch with the previous one's order. With
# `lss`'s reader a run with threads trains on exactly the batches of the same run
# without (a test checks that on both backends). `loader_settings` picks the settings
# for this machine:

# %%
loader = lss.device.loader_settings(accelerator)
say(accelerator["label"], "->", loader, sep=" ")

# %% [markdown]
# How fast can the cache deliver? `batches_per_second` reads the batches the way
# `fit` does, without a model. We compare the cache read in the training loop, the
# cache read by 4 threads ahead, and the same windows already in memory
# (`TensorCache.load` and `ArrayBatches`).

# %%
index = lss.data.build_index(root, CONDITION, LEVEL)
cache = lss.data.TensorCache(root, config.preprocess, cache_dir=CACHE_DIR)
say(DATA_LABEL, cache.prepare(index, workers=WORKERS))
paths, batch = cache.paths(index), config.train.batch_size
in_memory = lss.data.loader.ArrayBatches(cache.load(index), batch_size=batch)
print(f"in memory: {in_memory.volumes.nbytes / 2**20:.0f} MiB for {len(index)} studies")

# %% [markdown]
# Each rate is the best of two passes over all batches:

# %%
rates = pd.Series({
    "cache, read in the loop": lss.data.loader.batches_per_second(
        lss.data.loader.WindowDataset(paths, batch_size=batch), repeats=2),
    "cache, 4 threads ahead": lss.data.loader.batches_per_second(
        lss.data.loader.WindowDataset(paths, batch_size=batch, workers=4), repeats=2),
    "in memory": lss.data.loader.batches_per_second(in_memory, repeats=2),
}, name=f"batches of {batch} per second ({accelerator['label']}; {DATA_LABEL})")
rates.round(1).to_frame()

# %% [markdown]
# Memory is fastest, but it holds every window: 512 KiB per study, so about 1 GiB for
# the real 1,972 studies, and more again for more slices or larger images. The cache
# costs one file read per study, and threads hide part of that. What matters is whether
# the loader outpaces the model: we compare with the model's own rate once it has
# trained, below.
#
# ## The full training run
#
# `train_on_device` is `lss.train.train` set up for this machine: the paper's
# settings, `epochs` as above, the seed, the precision policy and the loader settings.
# Chapter 5 repeats this exact call when it is opened without this run folder.
# `overwrite=True` replaces a previous run of this chapter. `epochs` is a maximum: the
# run stops early when the validation loss has not improved for 5 epochs
# (`TrainConfig.early_stopping_patience`).

# %%
result = lss.train.train_on_device(
    root, RUN_DIR, epochs=EPOCHS, cpu_epochs=CPU_EPOCHS, seed=SEED, config=config,
    cache_dir=CACHE_DIR, mixed_precision=MIXED_PRECISION, overwrite=True)

# %% [markdown]
# The run folder records what was run, on which data, with which precision and loader:

# %%
manifest = lss.run.RunDir(RUN_DIR).read_manifest()
({k: manifest[k] for k in ("status", "precision", "loader", "epochs_run",
                           "train_seconds", "n_train", "n_val", "class_counts")}
 | {"data": DATA_LABEL})

# %% [markdown]
# The references for this split: always answering the training split's most frequent
# grade (accuracy), and always predicting the training split's class shares (log loss).
# A model that learned nothing from the images scores about these.

# %%
y_train = result.split.loc[result.split.split == "train", "label"]
y_val = result.split.loc[result.split.split == "val", "label"]
majority = lss.metrics.majority_baseline(y_train, y_val)["accuracy"]
prior = lss.metrics.prior_baseline(y_train, y_val)["log_loss"]
say(f"{DATA_LABEL}: always Normal/Mild {majority:.3f}; "
      f"class-share log loss {prior:.4f}")

# %% [markdown]
# The curves, saved in the run folder beside the model:

# %% mystnb={"image": {"alt": "Accuracy (left) and loss (right) per epoch of the full run, training and validation curves, with the majority-class accuracy as a dashed line on the accuracy panel and the class-share log loss as a dotted line on the loss panel."}}
axes = lss.viz.plot_history(result.history, baseline_accuracy=majority,
                            data_label=DATA_LABEL)
axes[0].set_ylim(0, 1)
axes[1].axhline(prior, color="grey", linestyle=":", label="class shares only")
axes[1].legend()
_ = axes[0].figure.savefig(RUN_DIR / "training_curves.png", dpi=150,
                           bbox_inches="tight")

# %% [markdown]
# Read the loss panel against the dotted line: a validation loss that settles on it has
# learned the class frequencies and little else; a validation loss below it has found
# something in the images. The accuracy panel says the same through the dashed line.
# The model kept in `best.keras` is that of the lowest validation loss. What this run's
# curves say, read off them by code:

# %%
Markdown(f"On {DATA_LABEL}, at this budget ({len(result.history)} epochs), "
         + lss.comparison.describe_history(result.history, majority=majority,
                                           prior=prior)
         + ".")

# %% [markdown]
# ## Beside the paper
#
# The paper reports four losses, the first and last epoch's, and a final validation
# accuracy, on the real RSNA 2024 scans. On those labels, two references are computed
# the same way as ours:

# %%
real_shares = np.asarray(REAL_CLASS_COUNTS) / sum(REAL_CLASS_COUNTS)
Markdown(f"The paper's final validation accuracy is "
         f"{PAPER_RESULTS['val_accuracy']:.2%}. "
         f"On the real labels, always answering Normal/Mild scores "
         f"{REAL_MAJORITY_SHARE:.1%} ({REAL_CLASS_COUNTS[0]:,} of "
         f"{sum(REAL_CLASS_COUNTS):,} studies), and always predicting the class "
         f"shares ("
         + " / ".join(f"{v:.1%}" for v in real_shares)
         + f") has a log loss of {lss.metrics.real_prior_log_loss():.3f}. Each column "
         f"below names its data:")

# %%
pd.set_option("display.max_colwidth", 60)
lss.paper.paper_comparison(result.history, majority_accuracy=majority,
                               data_label=DATA_LABEL, prior_log_loss=prior)

# %% [markdown]
# And as curves, the paper's reported points as open markers at epochs 1 and 20:

# %% mystnb={"image": {"alt": "Loss (left) and validation accuracy (right) per epoch: this run's curves with filled markers, and as open markers the paper's reported losses at its first and last epoch and its final accuracy. Grey dashed lines give the references of this run's split, the class-share loss and always answering Normal/Mild, and black dotted lines those of the real labels; the legends sit under the panels."}}
axes = lss.viz.plot_paper_comparison(result.history, majority_accuracy=majority,
                                     data_label=DATA_LABEL, prior_log_loss=prior)
_ = axes[0].figure.savefig(RUN_DIR / "paper_comparison.png", dpi=150,
                           bbox_inches="tight")

# %% [markdown]
# **The paper's protocol at the paper's scale, on the phantom.** The run above is
# sized for a CPU. `benchmarks/paper_protocol.py` runs the paper's exact protocol once:
# a phantom rendered behind every labelled study of the real label tables, 80:20 by
# study, 20 epochs, Adam at 1e-4, no early stop. Its recorded figures, where a record
# exists, with the data and the machine they came from:

# %%
protocol_file = Path("measured") / "paper_protocol.json"
if protocol_file.is_file():
    rec = json.loads(protocol_file.read_text())
    last = rec["last_epoch"]
    print(textwrap.fill(
        f"{rec['data']}, {rec['n_train']} training and {rec['n_val']} validation "
        f"studies, {rec['epochs_run']} epochs at {rec['learning_rate']:g} on "
        f"{rec['machine']}: last-epoch validation accuracy {last['val_accuracy']:.1%} "
        f"(always Normal/Mild {rec['majority_accuracy']:.1%}), validation loss "
        f"{last['val_loss']:.4f} (class shares {rec['prior_log_loss']:.4f}); "
        f"the paper, on real scans: {PAPER_RESULTS['val_accuracy']:.1%} and "
        f"{PAPER_RESULTS['val_loss_last_epoch']:.4f}.", 88))
    gap = abs(last["val_accuracy"] - rec["majority_accuracy"])
    at_majority = gap < 0.5 / rec["n_val"]  # within half a study of the majority share
    ending = ("ends at the majority share: on this phantom the paper's protocol learns "
              "nothing usable from the images." if at_majority else
              "ends away from the majority share.")
    print(textwrap.fill(f"At the paper's scale and budget the model {ending}", 88))
else:
    say("Not measured yet: run benchmarks/paper_protocol.py (about an hour on a "
          "2-core CPU,\nminutes on a GPU); this cell then quotes its record.")

# %%
real_prior = lss.metrics.real_prior_log_loss()
paper_acc = PAPER_RESULTS["val_accuracy"]
paper_loss = PAPER_RESULTS["val_loss_last_epoch"]
Markdown(
    f"Compare each curve with the references *of its own data*, never across columns. "
    f"The paper's validation loss ends {abs(real_prior - paper_loss):.3f} "
    f"{'below' if paper_loss < real_prior else 'above'} its class-share line "
    f"({paper_loss:.3f} against {real_prior:.3f}) and its accuracy "
    f"{100 * (paper_acc - REAL_MAJORITY_SHARE):.1f} points above always answering "
    f"Normal/Mild ({paper_acc:.1%} against {REAL_MAJORITY_SHARE:.1%}): a small margin "
    f"over a model that ignores the images. This run's column comes from {DATA_LABEL}: "
    f"it shows that the code runs and how to read such curves, not how the model would "
    f"do on real scans.")

# %% [markdown]
# :::{note}
# **Reproducing on the real data.** With the competition data downloaded (Kaggle
# account, about 35 GB), run every chapter on it, 20 epochs:
#
# ```bash
# make book DATA=/path/to/rsna-2024-lumbar-spine-degenerative-classification EPOCHS=20
# ```
#
# Every number and figure is then labelled with that data root instead of the phantom.
# :::
#
# ## What it costs
#
# Every epoch's wall time is in the history (`epoch_seconds`, validation included).
# The first epoch also traces and compiles the model, so it is reported apart. Figures
# measured on other machines, a GPU among them, are on the {doc}`benchmarks` page, each
# with the machine it came from.

# %%
seconds = result.history["epoch_seconds"]
per_epoch = (float(seconds.iloc[1:].median()) if len(seconds) > 1
             else float(seconds.iloc[0]))
print(f"{accelerator['label']}, {DATA_LABEL}:\n"
      f"  first epoch {seconds.iloc[0]:.1f} s, then "
      f"{per_epoch:.1f} s per epoch; {len(seconds)} epochs took {seconds.sum():.0f} s\n"
      f"  the paper's 20 epochs: about "
      f"{(seconds.iloc[0] + 19 * per_epoch) / 60:.1f} min")

# %% [markdown]
# Is the loader the bottleneck? An epoch reads the training and the validation batches
# once; the model's rate is the number of batches over the epoch's time. Compare it with
# the loader's rates above:

# %%
n_batches = -(-len(y_train) // batch) + -(-len(y_val) // batch)
say(f"{accelerator['label']}: the model takes {n_batches / per_epoch:.1f} batches/s; "
      f"the cache read in the loop gives {rates.iloc[0]:.0f}, with 4 threads "
      f"{rates.iloc[1]:.0f} ({DATA_LABEL})")

# %%
margin = rates.iloc[0] / (n_batches / per_epoch)
Markdown(f"Here ({accelerator['label']}) the cache read in the loop delivers "
         f"{margin:.0f} times the batches the model takes"
         + (": the model is the bottleneck, and threads would only take cores from "
            "it, which is why `loader_settings` reads in the loop on a CPU."
            if margin > 3 else
            ": a small margin, and the threads that read ahead are what keeps the "
            "model from waiting for the disk.")
         + " On a GPU the step is much faster and the margin shrinks; a faster step (a "
           "larger batch, a leaner model) makes the loader the bottleneck.")

# %% [markdown]
# The real data has more labelled studies than the phantom, so an epoch there takes
# longer on the same machine. Scaled from the timing above (an estimate, not a
# measurement):

# %%
n_real = sum(REAL_CLASS_COUNTS)
scale = n_real / len(index)
say(f"{accelerator['label']}: about {scale * per_epoch:.0f} s per epoch on "
      f"{n_real:,} real studies, {PAPER_EPOCHS * scale * per_epoch / 60:.0f} min for "
      f"{PAPER_EPOCHS} epochs (estimated from {DATA_LABEL})")

# %% [markdown]
# :::{note}
# **Repeatability.** The seed fixes the split, the initial weights, the augmentation and
# the order of the batches, and on a CPU a rerun gives the same numbers to the last
# digit (`lss` switches on TensorFlow's deterministic kernels). On a GPU, some kernels
# add in an order that varies from run to run, so the last digits of the losses can
# differ, and with them, occasionally, the epoch kept.
# :::
#
# ## Summary
#
# In this chapter we:
#
# - found the accelerator with `lss.device.describe_accelerator` and chose the
#   number of epochs from it: the paper's 20 on a GPU, a short run on a CPU;
# - switched on mixed precision where the device has it (float16 compute on a GPU,
#   bfloat16 on a TPU or a CPU with native bfloat16; float32 weights, a float32
#   softmax, loss scaling for float16);
# - measured how fast the cache, the cache with threads and memory deliver batches,
#   and compared that with how fast the model takes them;
# - trained the full run into `WORK_DIR/cnn_lstm`, with its curves;
# - put the run beside the paper's reported figures, each against the references of
#   its own data, and stated the cost per epoch.
#
# ## Exercises
#
# Each exercise has a solution cell (folded on the website; empty in the student
# notebooks, for your code) and a check cell that tests the answer.
#
# **Exercise 1.** Beat the dummy. At which epochs, if any, is this run's validation
# accuracy above always answering Normal/Mild, and its validation loss below the
# class-share log loss?
#

# %% tags=["solution", "hide-input"]
h = result.history
print(DATA_LABEL)
above = (h.epoch[h.val_accuracy > majority] + 1).tolist()
below = (h.epoch[h.val_loss < prior] + 1).tolist()
print("accuracy above the dummy at epochs", above)
print("loss below the class shares at epochs", below)

# %% tags=["check"]
assert above == [int(r.epoch) + 1 for r in h.itertuples() if r.val_accuracy > majority]
assert below == [int(r.epoch) + 1 for r in h.itertuples() if r.val_loss < prior]
print("Exercise 1: correct")

# %% [markdown]
# <details><summary>Solution, explained</summary>
#
# Empty lists mean the model has not beaten the dummy on this data. One validation
# study is worth `100 / len(y_val)` points of accuracy, so a lead of one or two studies
# is within chance; chapter 5 looks at the predictions.
# </details>
#
# **Exercise 2.** Time the loader with 1, 2, 4 and 8 threads, and with batches of 8
# and 32. Where does adding threads stop helping on this machine?
#

# %% tags=["solution", "hide-input"]
thread_rates = {}
for size in (8, 32):
    for workers in (1, 2, 4, 8):
        ds = lss.data.loader.WindowDataset(paths, batch_size=size, workers=workers)
        rate = lss.data.loader.batches_per_second(ds, repeats=2)
        thread_rates[size, workers] = rate * size
        print(f"batch {size}, {workers} threads: {rate * size:.0f} studies/s")

# %% tags=["check"]
assert len(thread_rates) == 8 and all(r > 0 for r in thread_rates.values())
print("Exercise 2: correct")

# %% [markdown]
# <details><summary>Solution, explained</summary>
#
# Compare in studies per second, since the batch size changes. Threads help until the
# disk or the CPU cores are busy; on a 2-core machine that is 2 to 4 threads.
# </details>
#
# **Exercise 3.** Where the run above was mixed precision (on a GPU, say), train once
# more with `mixed_precision=False` into another folder and compare the time per epoch
# with the mixed-precision run.
#

# %% tags=["solution", "hide-input"]
if policy != "float32":
    fp32 = lss.train.train_on_device(
        root, Path(WORK_DIR) / "cnn_lstm_fp32", epochs=EPOCHS, cpu_epochs=CPU_EPOCHS,
        seed=SEED, config=config, cache_dir=CACHE_DIR, mixed_precision=False,
        overwrite=True)
    for name, h in ((policy, result.history), ("float32", fp32.history)):
        print(name, h.epoch_seconds.iloc[1:].median().round(2), "s per epoch")
else:
    fp32 = None
    print(f"{accelerator['label']}: the policy was float32, so that run already ran")

# %% tags=["check"]
assert fp32 is None or fp32.history["epoch_seconds"].notna().all()
print("Exercise 3: correct")

# %% [markdown]
# <details><summary>Solution, explained</summary>
#
# This model is small and its batches are small (8 studies), so on a GPU part of the
# step is overhead that precision does not change; the gain grows with the batch size.
# Where the policy was float32 (most CPUs), `mixed_precision=False` is what already
# ran.
# </details>
#
# ## What's next?
#
# {doc}`05_error_analysis` loads this run, scores it beside the reference points, and
# looks at the studies it gets most wrong and where in the slices it looked.
#
# ## Resources and references
#
# - Keras, mixed precision: <https://keras.io/api/mixed_precision/>
# - P. Micikevicius et al., "Mixed precision training", ICLR 2018:
#   <https://arxiv.org/abs/1710.03740>
# - Keras, `PyDataset`: <https://keras.io/api/utils/python_utils/#pydataset-class>
# - Google Colab, using a GPU or TPU runtime: <https://colab.research.google.com/>
# - The code of this chapter: `help(lss.device)`, `help(lss.train.train)`.
