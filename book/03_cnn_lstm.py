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
# # The CNN-LSTM: one CNN per slice, an LSTM across slices
#
# ## Overview
#
# The paper grades a study from a short stack of axial slices around the L4/L5 disc.
# Its model has two parts: a small **convolutional network (CNN)** that turns each
# slice into a vector of features, and a **long short-term memory network (LSTM)** that
# reads those vectors in order, from the slice nearest the feet to the one nearest the
# head (chapter 2: `lss.data` sorts the slices by position along the slice normal, which
# points to the head). This chapter builds that model with `lss.model` and opens it up.
#
# 1. The architecture
# 2. What `TimeDistributed` sees: one slice at a time
# 3. What the LSTM sees: a sequence of slice features
# 4. Augmentation: one transform per study
# 5. A short training run
#
# ## Prerequisites
#
# | Concepts | Importance | Notes |
# | --- | --- | --- |
# | {doc}`02_preprocessing` | Necessary | The input: 8 slices of 128 x 128, in [0, 1] |
# | [Convolutional networks][cnn] | Helpful | Convolution, pooling, feature maps |
# | [Recurrent networks and LSTMs][lstm] | Helpful | A state updated step by step |
# | [Keras models][keras] | Helpful | `keras.Model`, layers, `fit` |
#
# [cnn]: https://cs231n.github.io/convolutional-networks/
# [lstm]: https://colah.github.io/posts/2015-08-Understanding-LSTMs/
# [keras]: https://keras.io/guides/functional_api/
#
# - **Time to learn**: 40 minutes.
# - **System requirements**: a CPU is enough; about 1.5 minutes on 2 CPU cores once
#   the cache is filled (the two training epochs take most of it; in the book's run
#   chapter 2 fills it, opened alone this chapter does).
#   Chapters 3-6 share a 200-study phantom, made by the first of them to run (about
#   40 s and 2.3 GB).

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
# All imports, in one place.

# %%
from pathlib import Path

import keras
import numpy as np
from IPython.display import Markdown

import lss.comparison
import lss.data
import lss.data.sources
import lss.device
import lss.evaluate
import lss.interpret
import lss.metrics
import lss.model
import lss.run
import lss.train
import lss.viz
from lss.config import SEVERITIES, Config
from lss.text import say

# %% [markdown]
# The settings. `DEMO_EPOCHS` is the length of this chapter's short run; the full
# training run is chapter 4's.

# %% tags=["parameters"]
DATA_DIR = "../data/phantom"  # Kaggle layout; the phantom is made here if absent
N_STUDIES = 200               # phantom studies needed (a larger phantom serves too)
DATA_SOURCE = "auto"          # Kaggle's attached data, else the phantom; or "kaggle"
WORK_DIR = "../runs/book"     # models and metrics that later chapters read
CACHE_DIR = "../.cache"       # preprocessed windows (lss.data.TensorCache)
SEED = 0
CONDITION = "left_subarticular_stenosis"
LEVEL = "L4/L5"
N_SLICES = 8
IMAGE_SIZE = 128
DEMO_EPOCHS = 2
WORKERS = None

# %% [markdown]
# The data root and its label, the index of chapter 1 and the cache of chapter 2 (filled
# here if this chapter runs first). One `Config` holds every setting of the model and of
# its training: the paper's, with our slice count, image size, epochs and seed.

# %%
root = lss.data.sources.ensure_data(DATA_DIR, source=DATA_SOURCE, n_studies=N_STUDIES)
DATA_LABEL = lss.run.data_label(root)
config = Config(condition=CONDITION, level=LEVEL).replace(
    n_slices=N_SLICES, image_size=IMAGE_SIZE, epochs=DEMO_EPOCHS, seed=SEED)
index = lss.data.build_index(root, CONDITION, LEVEL)
cache = lss.data.TensorCache(root, config.preprocess, cache_dir=CACHE_DIR)
say(DATA_LABEL, cache.prepare(index, workers=WORKERS))

# %% [markdown]
# One study to look at: the first study graded Severe. `level_window` returns its model
# input and the labelled point, which `window_point` moves into the window's pixels.

# %%
row = index[index["label"] == 2].iloc[0]
window = lss.data.level_window(lss.data.series_dir(root, row.study_id, row.series_id),
                               int(row.instance_number), config.preprocess,
                               centre_xy=(row.x, row.y))
volume, point = window.volume, lss.interpret.window_point(window, IMAGE_SIZE)
print(f"{DATA_LABEL}: study {row.study_id}, {SEVERITIES[row.label]}, "
      f"window {volume.shape}")

# %% [markdown]
# ## The architecture
#
# `build_from_config` builds and compiles the model that `Config` describes. The seed
# fixes the initial weights, so the numbers below repeat from run to run.

# %%
keras.utils.set_random_seed(SEED)
model = lss.model.build_from_config(config)
model.summary()

# %% [markdown]
# Keras lists the per-slice CNN as one line, `slice_features (TimeDistributed)`. Its
# inside is a `keras.Sequential` of three convolution blocks and a global average:

# %%
model.get_layer("slice_features").layer.summary()

# %% [markdown]
# `architecture_table` puts both summaries in one table, stage by stage, with each
# layer's output shape for one study (no batch axis). Inside the CNN the shape is that
# of one slice.

# %%
lss.interpret.architecture_table(model)

# %% [markdown]
# The same as a diagram. The dashed frame is the part `TimeDistributed` runs on every
# slice; the boxes after it run once per study.

# %% mystnb={"image": {"alt": "Box diagram of the CNN-LSTM read from top to bottom, one box per layer with its output shape to the right: the input and the augmentation; the per-slice CNN's convolution, pooling and global average layers, inside a dashed blue frame saying that the same CNN runs on every slice; then the LSTM, dropout, and the dense layers ending in the severity softmax."}}
_ = lss.viz.plot_architecture(model)

# %% [markdown]
# Read it from top to bottom: a study enters as 8 x 128 x 128 x 1, each slice shrinks to
# a 128-number vector, the LSTM folds the 8 vectors into 64 numbers, and two dense
# layers turn those into three probabilities. The augmentation box does nothing at
# prediction time; it is explained below.
#
# The model is small in parameters; its cost is in the convolutions, which run on all
# 8 slices at full resolution. `count_flops` counts the arithmetic of one forward pass:

# %%
GFLOP = lss.model.count_flops(model) / 1e9
print(f"{GFLOP:.2f} GFLOP per study (forward pass); "
      f"{model.count_params():,} parameters")

# %% [markdown]
# Training costs about three times the forward pass (forward, and twice that for the
# gradients). The short run below records each epoch's wall time on this machine;
# chapter 4 measures the same run on an accelerator.
#
# ## What `TimeDistributed` sees: one slice at a time
#
# `TimeDistributed(slice_cnn)` reshapes a batch of studies, `(B, 8, 128, 128, 1)`, into
# a batch of slices, `(B * 8, 128, 128, 1)`, runs the CNN once on all of them, and
# reshapes the result back to `(B, 8, 128)`. There is **one** CNN: every slice goes
# through the same weights. So the wrapper adds no parameters, and the model's size does
# not depend on the number of slices:

# %%
cnn = model.get_layer("slice_features")
say(f"TimeDistributed: {cnn.count_params():,} parameters = its CNN's "
      f"{cnn.layer.count_params():,}; with 16 slices the model still has "
      f"{lss.model.build_cnn_lstm(16, IMAGE_SIZE).count_params():,}")

# %% [markdown]
# `slice_features` applies that CNN to each slice of our study. The result is what the
# LSTM receives: one row per slice, 128 features per row.

# %% mystnb={"image": {"alt": "Heat map of the untrained CNN's slice features: one row per slice of the window, the labelled slice marked on the vertical axis, and one column per feature, the colour giving each activation as read on the colour bar."}}
features = lss.interpret.slice_features(model, volume)
_ = lss.viz.plot_sequence(
    features, labelled_index=N_SLICES // 2,
    title=f"Slice features of study {row.study_id} (untrained CNN)",
    data_label=DATA_LABEL)

# %% [markdown]
# Each row is one slice's vector; neighbouring slices look alike, so their rows do too.
# The weights are still random, so the features mean nothing yet: training will shape
# them.
#
# The CNN sees one slice and nothing else. Feed it slice 4 eight times over, and each
# row equals row 4 above: the features of a slice do not depend on its neighbours or on
# its place in the stack.

# %%
alone = lss.interpret.slice_features(model, np.repeat(volume[[4]], N_SLICES, axis=0))
print(f"largest difference from row 4: {np.abs(alone - features[4]).max():.1e}")

# %% [markdown]
# ## What the LSTM sees: a sequence of slice features
#
# The LSTM reads the 8 rows in order and keeps a state of 64 numbers, which it updates
# at each slice: what to forget, what to add. `lstm_states` records that state after
# each slice. The last row is the LSTM's output, the only thing the dense layers see.

# %% mystnb={"image": {"alt": "Heat map of the untrained LSTM's state after each slice: one row per slice, the labelled slice marked on the vertical axis, and one column per LSTM unit, the colour giving each activation as read on the colour bar."}}
states = lss.interpret.lstm_states(model, volume)
_ = lss.viz.plot_sequence(
    states, what="LSTM unit", labelled_index=N_SLICES // 2,
    title=f"LSTM state after each slice, study {row.study_id} (untrained)",
    data_label=DATA_LABEL)

# %% [markdown]
# Each row builds on the one above it: the state after slice 7 summarises all 8 slices.
# Unlike an average, this summary depends on the order. The slices arrive from the
# feet up; feed them the other way, from the head down, and compare the final states:

# %%
reversed_states = lss.interpret.lstm_states(model, volume[::-1])
order_diff = float(np.abs(states[-1] - reversed_states[-1]).max())
state_size = float(np.abs(states[-1]).max())
say(f"final state, slices in order vs reversed: largest difference {order_diff:.1e}; "
      f"largest state value {state_size:.1e}")

# %%
Markdown(
    f"The final state does change, by at most {order_diff:.1e}, against state values "
    f"of up to {state_size:.1e}: {order_diff / state_size:.1e} of their size. "
    + ("With random weights the LSTM barely tells the two orders apart; whether a "
       "*trained* model does is exercise 3." if order_diff < 0.01 * state_size else
       "Even with random weights the order shows in the state."))

# %% [markdown]
# Why an LSTM? A disc bulge or a thick facet shows on a few neighbouring slices, and the
# paper lets the network learn how to combine them. Whether the order matters for
# grading the recess is a question the paper does not test; exercise 3 shows how to ask
# it.
#
# ## Augmentation: one transform per study
#
# The paper augments its training data with random rotations (up to 10 degrees), zooms
# (up to 10 %) and horizontal flips. In `lss` this is the model's first layer,
# `SliceAugmentation`, so it runs on the accelerator with the rest of the model and is
# switched off when the model predicts.
#
# The slices of one study are one volume, so they must move together: the layer draws
# **one** transform per study and applies it to all 8 slices. Here are three draws for
# our study, below the original (each a block of slices 0 to 7, read like text):

# %% mystnb={"image": {"alt": "Four blocks of the study's window, one below the other, each four slices to a row with the labelled slice framed in red: the original, its labelled point ringed, then three random draws of the augmentation, each rotating, zooming and possibly mirroring every slice of its block in the same way."}}
augment = model.get_layer("augmentation")
draws = keras.ops.convert_to_numpy(
    augment(np.repeat(volume[None, ..., None], 3, axis=0), training=True))[..., 0]
_ = lss.viz.plot_montage(
    [volume, *draws], row_labels=["original", "draw 1", "draw 2", "draw 3"],
    points=[point, None, None, None],
    title="The paper's augmentation: one rotation, zoom and flip per study, the same "
          "on all its slices",
    data_label=DATA_LABEL)

# %% [markdown]
# Within a block, every slice is turned and scaled the same way; between blocks, the
# transforms differ. A mirrored block has its bright recess on the other side. The
# circle marks the labelled point on the original's labelled slice.
#
# A check that the transform is shared: a study whose 8 slices are identical stays
# identical slice for slice after augmentation.

# %%
same = np.repeat(volume[[4]], N_SLICES, axis=0)[None, ..., None]
out = keras.ops.convert_to_numpy(augment(same, training=True))
spread = float(np.ptp(out, axis=1).max())
print(f"largest difference between slices after augmentation: {spread}")
assert spread == 0.0, "the augmentation moved the slices of one study differently"

# %% [markdown]
# ### The flip caveat
#
# Our label names a side: **left** subarticular stenosis. In the radiological
# convention the patient's left is on the image's right. A horizontal flip moves the
# left recess to the image's left, where the right recess belongs, while the label
# still says "left":

# %% mystnb={"image": {"alt": "Two panels: left, the labelled slice of the model input as stored, with the labelled point ringed in red and letters marking the patient's sides; right, the slice flipped horizontally, the ring on the other side and the letters swapped, under the same left-sided label. A dashed vertical line marks the middle column about which the flip mirrors."}}
_ = lss.viz.plot_flip(volume[N_SLICES // 2], point,
                        label=f"{SEVERITIES[row.label]} left subarticular stenosis",
                        data_label=f"study {row.study_id}, {DATA_LABEL}")

# %% [markdown]
# After the flip, the ringed recess is the patient's *right* one as the image is read,
# and half of the training samples teach the model that a lesion on either side
# counts as "left".
#
# :::{caution}
# `TrainConfig.horizontal_flip` is `True` only to reproduce the paper. For a label that
# names a side, turn it off: `config.replace(horizontal_flip=False)`, or
# `lss train --no-flip`. Exercise 2 compares both.
# :::
#
# ## A short training run
#
# `lss.train.train` does everything a run needs: it splits the studies 80:20 by study
# (never one study on both sides), reads the windows from the cache, trains with Adam at
# a learning rate of 1e-4 on categorical cross-entropy, keeps the model of the lowest
# validation loss, and writes a run folder. Here, `DEMO_EPOCHS` epochs:

# %%
short = lss.train.train(root, config, Path(WORK_DIR) / "cnn_lstm_short",
                        cache_dir=CACHE_DIR, overwrite=True)

# %% [markdown]
# One line per epoch: the training loss and accuracy (with augmentation and dropout
# on), then the same on the validation studies (without), and the epoch's wall time.
# The history, with the data it was measured on:

# %%
print(DATA_LABEL)
short.history.round(4)

# %%
n_train = int((short.split.split == "train").sum())
Markdown(f"The last of the {len(short.history)} epochs, {n_train} training studies and "
         f"{int((short.split.split == 'val').sum())} validation "
         f"studies, took {short.history.epoch_seconds.iloc[-1]:.0f} s on this machine "
         f"({lss.device.describe_accelerator()['label']}); the first also compiles the "
         f"model.")

# %% [markdown]
# An accuracy needs its reference point: always answering the most frequent grade of
# the training split, scored on the validation split.

# %%
y_train = short.split.loc[short.split.split == "train", "label"]
y_val = short.split.loc[short.split.split == "val", "label"]
majority = lss.metrics.majority_baseline(y_train, y_val)
say(f"{DATA_LABEL}: always '{majority['class']}' scores "
      f"{majority['accuracy']:.3f} on the {len(y_val)} validation studies")

# %% [markdown]
# The curves, with that reference as a dashed line. The accuracy axis runs from 0 to 1,
# so that a change of one study in 40 is not drawn as a cliff.

# %% mystnb={"image": {"alt": "Accuracy (left) and loss (right) per epoch of the short run, training and validation curves, with the majority-class accuracy as a dashed grey line on the accuracy panel, whose axis runs from zero to one."}}
axes = lss.viz.plot_history(short.history, baseline_accuracy=majority["accuracy"],
                              data_label=DATA_LABEL)
_ = axes[0].set_ylim(0, 1)

# %% [markdown]
# What did the short run learn? `evaluate_run` scores its kept model on the validation
# studies, and the sentence below is written from those predictions and the curves:

# %%
report = lss.evaluate.evaluate_run(short.run_dir, root, cache_dir=CACHE_DIR,
                                   figures=False)
_, _, short_proba = lss.run.RunDir(short.run_dir).read_predictions()
prior_loss = lss.metrics.prior_baseline(y_train, y_val)["log_loss"]
curves = lss.comparison.describe_history(short.history, majority=majority["accuracy"],
                                         prior=prior_loss)
Markdown(f"On {DATA_LABEL}, after {len(short.history)} epochs the kept model "
         f"{lss.comparison.describe_answers(short_proba)}; {curves}. Chapter 4 trains "
         f"the full run.")

# %% [markdown]
# ## Summary
#
# In this chapter we:
#
# - built the paper's CNN-LSTM with `lss.model.build_from_config`, read it stage by
#   stage and counted its parameters and its arithmetic per study;
# - saw that `TimeDistributed` runs **one** CNN on each slice on its own, with shared
#   weights, and turns a study into 8 feature vectors;
# - saw that the LSTM reads those vectors in order and passes on a 64-number summary
#   that depends on the order;
# - augmented a study with one rotation, zoom and flip for all its slices, and saw why
#   a horizontal flip contradicts a left-sided label;
# - trained a short run and compared it with always answering Normal/Mild.
#
# ## Exercises
#
# Each exercise has a solution cell (hidden on the website: click to show it; in the
# student notebooks it is empty, for your code) and a check cell that tests your
# answer.
#
# **Exercise 1.** Build the model for 4 slices of 64 x 64 with
# `lss.model.build_cnn_lstm`, as `small`. How many parameters does it have, and how many
# FLOPs per study? Explain both numbers.

# %% tags=["solution", "hide-input"]
small = lss.model.build_cnn_lstm(4, 64)
print(f"{small.count_params():,} parameters, "
      f"{lss.model.count_flops(small) / 1e9:.2f} GFLOP per study")

# %% tags=["check"]
assert small.input_shape[1:4] == (4, 64, 64), small.input_shape
assert small.count_params() == model.count_params()
assert np.isclose(lss.model.count_flops(small), lss.model.count_flops(model) / 8,
                  rtol=0.05)
print("Exercise 1: correct")

# %% [markdown]
# <details><summary>Solution, explained</summary>
#
# The parameters do not change: the CNN's weights are shared across slices, and the
# global average pooling makes its output 128 numbers whatever the slice size. The FLOPs
# fall about 8-fold: half the slices, and a quarter of the pixels per slice (the check
# cell holds this to 5 %).
# </details>
#
# **Exercise 2.** Beat the dummy. Train the short run again with the flip switched
# off, as `no_flip`, into another run folder, and compare both runs' best validation
# accuracy with always answering Normal/Mild.

# %% tags=["solution", "hide-input"]
no_flip = lss.train.train(root, config.replace(horizontal_flip=False),
                          Path(WORK_DIR) / "cnn_lstm_short_no_flip",
                          cache_dir=CACHE_DIR, overwrite=True, verbose=0)
for name, run in (("flip (paper)", short), ("no flip", no_flip)):
    best = run.history.loc[run.history.val_loss.idxmin()]
    say(f"{name}: val accuracy {best.val_accuracy:.3f}, val loss "
          f"{best.val_loss:.4f}; always Normal/Mild {majority['accuracy']:.3f} "
          f"({DATA_LABEL})")

# %% tags=["check"]
assert not no_flip.model.get_layer("augmentation").horizontal_flip
assert len(no_flip.history) == len(short.history)
assert no_flip.split.equals(short.split), "both runs must use the same split"
print("Exercise 2: correct")

# %% [markdown]
# <details><summary>Solution, explained</summary>
#
# With so few epochs, both runs may still answer one grade for almost every study and
# tie with the dummy: too few epochs to tell the difference. Compare the validation
# losses too, and rerun both with more epochs (chapter 4) before drawing a conclusion.
# Whatever you find holds for this data only; say which data it is.
# </details>
#
# **Exercise 3.** Does the order of the slices matter to the *trained* model? Compute
# its predicted probabilities for `volume` and for `volume[::-1]`, as `p` (two rows).

# %% tags=["solution", "hide-input"]
p = short.model.predict(np.stack([volume, volume[::-1]])[..., None], verbose=0)
print(DATA_LABEL)
print(np.round(p, 4))

# %% tags=["check"]
assert p.shape == (2, 3) and np.allclose(p.sum(axis=1), 1, atol=1e-4)
order_effect = float(np.abs(p[0] - p[1]).max())
print(f"Exercise 3: correct. Reversing the slices moves the probabilities by at most "
      f"{order_effect:.1e}.")

# %% [markdown]
# <details><summary>Solution, explained</summary>
#
# The line above says by how much reversing the slices moves the trained model's
# probabilities: that is how much this model relies on the order. A model that
# averaged the slice features would give identical rows; a difference near zero says
# this model, at this budget, barely uses the order either.
# </details>
#
# ## What's next?
#
# {doc}`04_gpu_training` finds the accelerator, switches on mixed precision where there
# is a GPU, feeds the model from the cache ahead of the GPU, and trains the full run
# that chapter 5 analyses.
#
# ## Resources and references
#
# - Keras, `TimeDistributed`:
#   <https://keras.io/api/layers/recurrent_layers/time_distributed/>
# - Keras, `LSTM`: <https://keras.io/api/layers/recurrent_layers/lstm/>
# - S. Hochreiter and J. Schmidhuber, "Long short-term memory", *Neural Computation*
#   9 (8), 1997.
# - C. Olah, "Understanding LSTM networks" (2015):
#   <https://colah.github.io/posts/2015-08-Understanding-LSTMs/>
# - Keras example closest to this model, a CNN-RNN on video frames:
#   <https://keras.io/examples/vision/video_classification/>
# - The model's code: `help(lss.model.build_cnn_lstm)`,
#   `help(lss.model.SliceAugmentation)`.
