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
# # Beyond the paper: what holds the model near the majority class
#
# ## Overview
#
# The paper's CNN-LSTM ends six points above always answering Normal/Mild. This chapter
# names six things in its setup that could hold it there, changes them one at a time on
# the same split and seed, and measures each change in one table, beside the reference
# points. The last row combines the changes that helped, chosen by a rule fixed before
# the table is read.
#
# 1. Six suspects and one rule
# 2. A localiser for the recess
# 3. One split, one row per change
# 4. The table
# 5. What the inputs hold: a linear probe
# 6. Calibration of the best row
# 7. What the phantom can and cannot tell
# 8. On the real data
#
# ## Prerequisites
#
# | Concepts | Importance | Notes |
# | --- | --- | --- |
# | {doc}`02_preprocessing` | Necessary | The level window and `crop_mm` |
# | {doc}`03_cnn_lstm` | Necessary | The model and its augmentation |
# | {doc}`05_error_analysis` | Necessary | The reference points; reading the scores |
# | [The bootstrap][boot] | Helpful | For the intervals of the differences |
#
# [boot]: https://en.wikipedia.org/wiki/Bootstrapping_(statistics)
#
# - **Time to learn**: 40 minutes.
# - **System requirements**: a CPU. With the defaults, every row trains `CPU_EPOCHS`
#   epochs on a CPU, about 7 minutes in all on 2 cores; on a GPU, the paper's 20 epochs
#   per row, a few minutes in all on the phantom.

# %% [markdown]
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
import textwrap
import time
from pathlib import Path

import pandas as pd
from IPython.display import Markdown

import lss.baselines
import lss.comparison
import lss.config
import lss.data.sources
import lss.data.survey
import lss.device
import lss.experiments
import lss.localiser
import lss.run
import lss.viz
from lss.config import PAPER_RESULTS, REAL_MAJORITY_SHARE, Config, LocaliserConfig
from lss.text import command, say

# %% [markdown]
# The settings. `EPOCHS = None` means the paper's 20 epochs at its learning rate of 1e-4
# for every row on a GPU or TPU, and on a CPU `CPU_EPOCHS` epochs at `CPU_LEARNING_RATE`
# for every row: the same budget for every row, so that the comparison is fair.
# `CLASS_WEIGHT`, `CROP_MM`, `ROI_IMAGE_SIZE` and `LEVEL_SLICES` shape the rows of
# those names below; `LOCALISER_SIZE` and `LOCALISER_EPOCHS` the localiser.
# `REAL_RUN_DIR` may name the output folder of your own run on the RSNA data (see the
# last section).

# %% tags=["parameters"]
DATA_DIR = "../data/phantom"  # Kaggle layout; the phantom is made here if absent
N_STUDIES = 200               # phantom studies needed (a larger phantom serves too)
DATA_SOURCE = "auto"          # Kaggle's attached data, else the phantom; or "kaggle"
WORK_DIR = "../runs/book"     # models and metrics that later chapters read
CACHE_DIR = "../.cache"       # preprocessed windows (lss.data.TensorCache)
SEED = 0
EPOCHS = None          # None: 20 (the paper) on a GPU or TPU, CPU_EPOCHS on a CPU
LEARNING_RATE = None   # None: the paper's 1e-4 on a GPU or TPU, else CPU_LEARNING_RATE
CPU_EPOCHS = 10        # sized for about 7 minutes in all on 2 CPU cores
CPU_LEARNING_RATE = 1e-3  # 10x the paper's: 10 epochs of 20 steps at 1e-4 move nothing
CLASS_WEIGHT = "balanced"  # or "rsna": the metric's weights 1/2/4
CROP_MM = 40.0         # side of the region of interest, in millimetres
ROI_IMAGE_SIZE = 64    # the crop is resized to this many pixels
LEVEL_SLICES = 3       # the level rows' window: the slices of the level, not 8
LOCALISER_SIZE = 64    # the localiser sees the labelled slice at this size (96 in full)
LOCALISER_EPOCHS = 12  # 40 in full
N_BOOT = 1000          # bootstrap resamples for the intervals of the differences
REAL_RUN_DIR = None    # the --out folder of `lss experiments` on the RSNA data

# %% [markdown]
# The data root and its label, the device, and the budget every row gets.

# %%
t_start = time.perf_counter()
root = lss.data.sources.ensure_data(DATA_DIR, source=DATA_SOURCE, n_studies=N_STUDIES)
DATA_LABEL = lss.run.data_label(root)
accelerator = lss.device.describe_accelerator()
epochs = lss.device.resolve_epochs(EPOCHS, accelerator, cpu_epochs=CPU_EPOCHS)
learning_rate = LEARNING_RATE or (CPU_LEARNING_RATE if accelerator["kind"] == "CPU" else
                                  Config().train.learning_rate)
OUT_DIR = Path(WORK_DIR) / "experiments"
say(f"{DATA_LABEL}\n{accelerator['label']}: {epochs} epochs at learning rate "
      f"{learning_rate:g} for every row but more_epochs ({2 * epochs})")

# %%
paper_cfg = Config().train
Markdown(
    f"**The budget of every number below.** Each row trains {epochs} epochs at a "
    f"learning rate of {learning_rate:g} (`more_epochs`: {2 * epochs}); the paper "
    f"trained {paper_cfg.epochs} epochs at {paper_cfg.learning_rate:g}. "
    + ("So the `paper` row is the paper's *setup* at this chapter's budget, not the "
       "paper's run." if (epochs, learning_rate) != (paper_cfg.epochs,
                                                     paper_cfg.learning_rate)
       else "So the `paper` row is the paper's setup at the paper's budget."))

# %% [markdown]
# ## Six suspects and one rule
#
# What could keep the paper's model near the majority class?
#
# 1. **The horizontal flip.** The label names the patient's *left* recess, which lies on
#    the image's *right*. A flipped training image shows the right recess where the
#    left one was, under the left recess's label: half the time the model is taught
#    with the other side's anatomy.
# 2. **The class imbalance.** With cross-entropy and no weights, answering Normal/Mild
#    (the largest class) is a good first answer, and a model with little signal stays
#    there.
# 3. **The field of view.** A whole axial slice, resized to 128 x 128 pixels, shows the
#    whole trunk; the recess is a few pixels wide. A crop centred on the recess shows it
#    large and little else.
# 4. **Averaging away the place.** The paper's CNN ends in global average pooling: each
#    feature is averaged over the whole slice, so the model learns *whether* a pattern
#    occurs, not *where*. A narrowed recess a few pixels wide is diluted by everything
#    else. On a crop centred on the recess the place is known, and flattening the last
#    feature map keeps it.
# 5. **A window wider than the level.** Chapter 2 found that 8 slices of a short
#    per-disc stack span several centimetres and reach into the neighbouring levels,
#    whose recesses have grades of their own. A window of `LEVEL_SLICES` slices stays
#    within the level.
# 6. **Too little training.** Every other row shares one budget (printed above); a
#    model that is still near its start at the end of it may only need more epochs.
#
# Each suspect is a row: `no_flip` (1), `class_weights` (2) and `roi` (3) change one
# thing of the paper's setup; suspect 5 is tested twice, on whole slices
# (`paper_level`) and on the crop (`roi_level`); suspect 6 is `more_epochs`, the paper's
# setup with twice the epochs. Suspect 4 (`roi_spatial`) adds one change to `roi`,
# because flattening only makes sense on a crop (on a whole 128-pixel slice the LSTM
# would receive 32,768 numbers per slice), and `roi_level` adds the level window to it.
#
# The rows, built from the paper's `Config` with our seed:

# %%
base = Config().replace(seed=SEED)
experiments = lss.experiments.default_experiments(
    base, epochs=epochs, learning_rate=learning_rate, class_weight=CLASS_WEIGHT,
    crop_mm=CROP_MM, roi_image_size=ROI_IMAGE_SIZE, level_slices=LEVEL_SLICES)
pd.DataFrame([{"row": e.name, "what": e.description,
               "changes": getattr(e, "changes", "-")}
              for e in experiments]).set_index("row")

# %% [markdown]
# **The rule, fixed before any number is seen.** The primary metric is *balanced
# accuracy*, the mean recall over the three grades: always answering one grade scores
# exactly 1/3 on it, however skewed the labels, so it measures precisely the failure
# under study. A row *helped* when its balanced accuracy on the validation split is
# higher than the paper row's; the `combined` row applies the changes of every row that
# helped, together. Every row trains on the same studies with the same seed and the
# same epochs (`more_epochs` excepted: its change is the epochs), and is scored on the
# same validation studies.
#
# :::{note}
# In every row, including the region of interest, the *slice* of the level comes from
# the coordinate table, as in the paper's baseline (chapter 2): the labelled instance
# is the middle of each window. Only the position *within* the slice is predicted by
# the localiser below. A new study has no table row: {doc}`07_finding_the_level` finds
# the level's slice first, and measures what that costs the grade.
# :::
#
# ## A localiser for the recess
#
# The region-of-interest rows (`roi`, `roi_spatial`, `roi_level`) crop `CROP_MM`
# millimetres around the left recess. In training, the centre is the radiologist's
# point from the coordinate table. On validation and test studies the table's point may
# not be used, because at prediction time there is none. A small network, the
# *localiser*, learns from the training studies' points where the recess is, and
# places the validation crops.
#
# It is a few convolutions on the labelled slice (resized to `LOCALISER_SIZE` pixels),
# ending in a score per cell of a coarse grid; a softmax turns the scores into a
# probability map, and the answer is the map's mean position (a *spatial
# soft-argmax*). `lss.localiser.fit_split_localiser` trains it on the training split
# only, saves it, predicts the validation studies' points and then, and only then,
# measures their distance to the table's points.

# %%
LOCALISER = LocaliserConfig(image_size=LOCALISER_SIZE, epochs=LOCALISER_EPOCHS,
                            seed=SEED)
index, split = lss.experiments.shared_split(root, experiments[0].config)
_, _, loc_errors = lss.localiser.fit_split_localiser(
    root, OUT_DIR, index, split, config=LOCALISER, cache_dir=CACHE_DIR, retrain=True)
say(f"{DATA_LABEL}: localiser on {loc_errors['n']} validation studies: median error "
      f"{loc_errors['median_px']:.1f} px = {loc_errors['median_mm']:.2f} mm, "
      f"90th percentile {loc_errors['p90_mm']:.2f} mm, "
      f"largest {loc_errors['max_mm']:.2f} mm; within 5 mm: "
      f"{loc_errors['fraction_within']:.0%}")

# %% [markdown]
# Pixels are converted to millimetres with each series' `PixelSpacing` (row spacing
# for y, column spacing for x). The four validation studies it places worst, with the
# table's point (green), the localiser's (red cross) and the square the ROI model sees:

# %% mystnb={"image": {"alt": "The validation studies the localiser places worst, side by side, each its labelled slice titled with the study and the error in millimetres: the table's point as a green dot, the localiser's as a red cross, and around the cross a red square, the crop the region-of-interest model sees; a legend below names the three marks."}}
worst = lss.data.survey.localiser_examples(
    root, OUT_DIR / "localiser" / "val_centres.csv")
_ = lss.viz.plot_localiser_examples(worst, data_label=DATA_LABEL, crop_mm=CROP_MM)

# %% [markdown]
# Check that the red square holds the green point, with some margin, even for the
# worst studies: the ROI model then sees the recess in every validation study, only
# shifted a little from the centre where it saw it in training.
#
# ## One split, one row per change
#
# `run_experiments` trains the rows one after another on the same split, writes one run
# folder with a manifest per row (which data, which settings, how to rerun it), scores
# each with `evaluate_run`, and resolves the `combined` row from the measured table by
# the rule above. The ROI rows find the localiser trained above and store a copy in
# their run folder, so `lss predict --run .../roi` crops where it points.

# %%
table = lss.experiments.run_experiments(
    root, experiments, OUT_DIR, cache_dir=CACHE_DIR, localiser=LOCALISER,
    overwrite=True, n_boot=N_BOOT,
    train_options={"loader": lss.device.loader_settings(accelerator)})

# %% [markdown]
# ## The table
#
# One row per experiment, then the reference points: **majority** (always the training
# split's most frequent grade), **prior** (the training split's grade shares as
# probabilities for every study) and **weighted_prior** (the same shares weighted 1/2/4,
# as the RSNA metric weights the grades). The weighted prior is the constant answer with
# the lowest RSNA log loss on the training split: it leans toward Severe and beats the
# plain prior on that metric without looking at an image. A row's RSNA log loss says
# something about the images only where it is below the weighted prior's.
#
# Accuracy, balanced accuracy and macro F1: higher is better; the RSNA weighted log
# loss: lower is better. The last column is each row's difference in balanced accuracy
# from the paper's row, with a 95 % interval from resampling the validation studies
# (the same resample for both rows).

# %%
print(lss.comparison.format_table(table, data_label=DATA_LABEL))

# %% [markdown]
# The same as bars, the reference points as lines:

# %% mystnb={"image": {"alt": "Three horizontal bar charts side by side, one bar per experiment row on a shared vertical axis: balanced accuracy and macro F1, each on an axis from zero to one, and the RSNA weighted log loss, where lower is better. Black vertical lines mark the reference points, majority dashed, prior dotted and weighted prior dash-dotted, named in a legend below."}}
_ = lss.viz.plot_experiment_table(table, data_label=DATA_LABEL)

# %% [markdown]
# A row whose balanced-accuracy bar sits on the majority line answers one grade for
# every study; a row whose log-loss bar does not reach below the dash-dotted line (the
# weighted prior) has not shown, on this metric, that it reads the images. What the
# table says, read off it by code:

# %%
print(f"[{DATA_LABEL}, {epochs} epochs per row, more_epochs {2 * epochs}]")
combined = table.set_index("experiment").loc["combined", "description"]
for sentence in [*lss.comparison.summarise(table), f"combined: {combined}"]:
    print(textwrap.fill(sentence, 88, initial_indent="- ", subsequent_indent="  "))

# %% [markdown]
# The `combined` row follows the rule: it joins the rows that improved on the paper's
# balanced accuracy, however small the improvement, or says that there was nothing to
# combine. With a few dozen validation studies a difference of one or two studies is
# within the noise; the interval column shows how far. A row whose interval contains 0
# has not been shown to help, on this split, at this budget.
#
# Each row's cost, from its manifest (one line per row):

# %%
table.loc[table.kind == "model",
          ["experiment", "epochs_run", "train_seconds", "grades_predicted",
           "centres"]].set_index("experiment")

# %% [markdown]
# Every run folder's manifest records the command that runs that row again, alone, with
# the same split, seed and settings (on a CPU it reproduces the row's numbers exactly):

# %%
rerun = lss.run.RunDir(OUT_DIR / "roi_level").read_manifest()["experiment"]["rerun"]
print(command(rerun.replace(str(Path(WORK_DIR).resolve()), "WORK_DIR")
              .replace(str(Path(root).resolve()), "DATA_DIR")))

# %% [markdown]
# ## What the inputs hold: a linear probe
#
# A row that stays at the majority class raises a question the table cannot answer:
# is the grade not *in* the input, or has the network not *learned* it in this budget?
# A linear probe separates the two. `linear_probe` fits a logistic regression to the
# pixels of each study's labelled slice, exactly as a run saw it (both resized to 32 x
# 32, so that each offers the same 1,024 numbers), chooses its regularisation by
# cross-validation on the training split, and scores it on the validation split; the
# ROI's validation crops are centred by the localiser, as the run's were.

# %%
probe = pd.DataFrame({name: lss.baselines.linear_probe(OUT_DIR / name, root,
                                                         cache_dir=CACHE_DIR)
                      for name in ("paper", "roi")}).T
print(DATA_LABEL)
probe[["balanced_accuracy", "macro_f1", "rsna_log_loss", "C", "centres"]]

# %% [markdown]
# A probe well above 1/3 in balanced accuracy says the grade can be read off that input
# by a straight line through its pixels; a probe near 1/3 says that, at that size, it
# cannot. Compare the probe's row with the CNN-LSTM's row on the same input: where the
# probe is far ahead, the network's setup or budget, not the input, holds it back. (The
# probe's regularisation is chosen for balanced accuracy, not for calibrated
# probabilities, so its log loss can be poor; read its balanced accuracy.)
#
# ## Calibration of the best row
#
# The best row by balanced accuracy (ties: the lower RSNA log loss). Its reliability
# diagram bins the validation studies by the probability of the predicted grade and
# plots how often that grade was right:

# %% mystnb={"image": {"alt": "Reliability diagram of the best row: the fraction of validation studies graded right (vertical axis) against the confidence, the top-grade probability (horizontal axis), one point per non-empty bin, written with its number of studies and joined by a line, beside a dashed grey diagonal of perfect calibration; the title names the row and gives its expected calibration error."}}
best = lss.comparison.best_row(table)
_, y_val, proba_val = lss.run.RunDir(best["run_dir"]).read_predictions()
ax = lss.viz.plot_reliability(y_val, proba_val, n_bins=5, data_label=DATA_LABEL)
_ = ax.set_title(f"Reliability of '{best['experiment']}'\n{DATA_LABEL}", fontsize=9)

# %% [markdown]
# Points on the diagonal are calibrated; below it, over-confident; above it,
# under-confident. A model that gives every study nearly the same probabilities puts
# them all in one bin: at the share of the majority class it is calibrated without
# telling the studies apart (calibration is necessary, not sufficient). The RSNA log
# loss rewards telling the studies apart and being calibrated, both. About the row
# plotted:

# %%
best_cfg = lss.run.RunDir(best["run_dir"]).read_config().train
top = proba_val.max(axis=1)
Markdown(
    f"'{best['experiment']}' {lss.comparison.describe_answers(proba_val)}, with a "
    f"top-grade probability from {top.min():.2f} to {top.max():.2f} (median "
    f"{float(pd.Series(top).median()):.2f}); it was trained "
    + (f"with class weights ({best_cfg.class_weight}), which pull its probabilities "
       "toward the rarer grades" if best_cfg.class_weight else
       "without class weights")
    + f". ({DATA_LABEL}.)")

# %% [markdown]
# ## What the phantom can and cannot tell
#
# Every number above was measured on the data named with it. On the synthetic phantom
# (`lss.phantom`), each study's left recess is drawn narrowed according to its grade,
# at a known position, with left and right grades correlated roughly as in the real
# tables.
#
# **Evidence on the phantom.**
#
# - The machinery: one split for every row, the localiser trained on training studies
#   only and used for every validation and test crop, one manifest and one command per
#   row, the combination decided by a stated rule.
# - Whether a change lets *this* model, at *this* budget, find a lesion that is
#   certainly there. The linear probe says whether it is visible in each input.
# - How sensitive each conclusion is to which studies are in a small validation split
#   (the intervals).
#
# **Not evidence for real MRI.**
#
# - The size of any effect. The phantom's anatomy, contrast and noise are drawn; real
#   scans add scanners, artefacts, degenerate anatomy and graders who disagree.
# - The localiser's error. The phantom's recess always looks alike and sits where the
#   anatomy says; real errors will be larger, and a crop must leave room for them.
# - The flip's harm, which depends on how strongly left and right grades go together:
#   the phantom samples that dependence, real patients have their own.
# - Anything about the paper's 51 %: only a run on the RSNA data can say that.
#
# :::{caution}
# Quote these rows only with their data label, as phantom numbers. They show that a
# change *can* matter and how to measure it; they do not show that it matters on real
# scans.
# :::
#
# ## On the real data
#
# The paper's figures, quoted as the paper's:

# %%
say("Paper (real RSNA 2024 data): validation accuracy "
      f"{PAPER_RESULTS['val_accuracy']:.1%}; "
      f"always Normal/Mild on the real labels: {REAL_MAJORITY_SHARE:.1%}")

# %% [markdown]
# The full comparison on the RSNA data is one command, with the paper's 20 epochs and
# the full localiser; run it on a GPU. `--class-weight`, `--crop-mm`, `--roi-size` and
# `--level-slices` set what the rows of those names test, as above; they choose
# nothing for `combined`, which is decided from the RSNA table by the same rule as
# here. Each row can then be trained again alone from its saved settings,
# `lss train --config <row>/config.json` (its manifest records the command):

# %%
REAL_DATA = "/path/to/rsna-2024-lumbar-spine-degenerative-classification"
print(command(f"lss experiments --data {REAL_DATA} --out runs/experiments-rsna "
              f"--epochs {lss.config.PAPER_EPOCHS} --seed {SEED} "
              f"--class-weight {CLASS_WEIGHT} "
              f"--crop-mm {CROP_MM:g} --roi-size {ROI_IMAGE_SIZE} "
              f"--level-slices {LEVEL_SLICES}"))

# %% [markdown]
# One row alone: add `--row roi` (repeatable). Once `lss levels --run
# runs/experiments-rsna/roi --data ...` has fitted its level finder (chapter 7), the ROI
# run folder predicts the test split with `lss predict --run runs/experiments-rsna/roi
# --data ...`: on the slice found for the level, cropping where its localiser points.
#
# The real column below is filled only by such a run: with `REAL_RUN_DIR` set to its
# output folder, its table is read and shown beside the phantom's; otherwise nothing is
# shown. No number on real scans appears here that your run did not produce.

# %%
if REAL_RUN_DIR is None:
    print("No run on the RSNA data given (REAL_RUN_DIR): the real column stays empty.")
else:
    real = lss.comparison.load_table(REAL_RUN_DIR)
    if real.attrs["data"]["kind"] != "rsna":
        raise ValueError(f"{REAL_RUN_DIR} was measured on "
                         f"{real.attrs['data']['label']}, not on the RSNA data")
    side = table.set_index("experiment")[["balanced_accuracy", "rsna_log_loss"]].join(
        real.set_index("experiment")[["balanced_accuracy", "rsna_log_loss"]],
        lsuffix=" (phantom)", rsuffix=" (RSNA)")
    print(f"phantom: {DATA_LABEL}\nRSNA: {real.attrs['data']['label']}")
    print(side.round(3).to_string())

# %% [markdown]
# This chapter's run time on this machine:

# %%
print(f"{accelerator['label']}: {time.perf_counter() - t_start:.0f} s for the chapter, "
      f"{epochs} epochs per row")

# %% [markdown]
# ## Summary
#
# In this chapter we:
#
# - named six things that can hold the paper's model near the majority class: the
#   horizontal flip, the class imbalance, the whole-slice field of view, averaging away
#   the place of the lesion, a window wider than the level, and the budget;
# - trained a localiser on the training studies' points and measured its error on the
#   validation studies in pixels and millimetres;
# - changed one thing per row on one split, seed and budget, with a run folder, a
#   manifest and a rerun command per row, and combined what helped by a fixed rule;
# - read the table beside the majority and prior reference points, with intervals for
#   the differences;
# - asked with a linear probe whether the grade is in each input at all;
# - checked the calibration of the best row;
# - separated what the phantom shows from what only the real data can.
#
# ## Exercises
#
# Each exercise has a solution cell (folded on the website; empty in the student
# notebooks, for your code) and a check cell that tests the answer.
#
# **Exercise 1.** Train `roi_level`, the row that learns, again with the competition's
# class weights 1/2/4 in the loss, as a row of its own (`roi_level_rsna`) in the same
# folder, so that it reuses the localiser. Does its RSNA log loss move in the direction
# you expect?
#

# %% tags=["solution", "hide-input"]
level_row = next(e for e in experiments if e.name == "roi_level")
weighted = lss.experiments.Experiment(
    "roi_level_rsna", level_row.config.replace(class_weight="rsna"),
    "roi_level with the metric's class weights 1/2/4",
    {**level_row.changes, "class_weight": "rsna"})
row = lss.experiments.run_experiment(root, weighted, OUT_DIR, cache_dir=CACHE_DIR,
                                     localiser=LOCALISER)
before = table.set_index("experiment").loc["roi_level"]
say(f"{DATA_LABEL}: RSNA log loss {before.rsna_log_loss:.3f} -> "
      f"{row['rsna_log_loss']:.3f}, balanced accuracy "
      f"{before.balanced_accuracy:.3f} -> {row['balanced_accuracy']:.3f}")

# %% tags=["check"]
rsna_config = lss.run.RunDir(OUT_DIR / "roi_level_rsna").read_config()
assert rsna_config.train.class_weight == "rsna"
assert rsna_config.train.learning_rate == learning_rate  # the table's budget
assert rsna_config.preprocess == level_row.config.preprocess  # only the weights change
print("Exercise 1: correct")

# %% [markdown]
# <details><summary>Solution, explained</summary>
#
# The weights 1/2/4 are the metric's own, so training with them aims at the weighted
# log loss directly, usually at the price of more Moderate and Severe answers, and so
# of accuracy. On a few dozen validation studies one run can go either way: the line
# above says which way it went here.
# </details>
#
# **Exercise 2.** Decide the combination by the RSNA weighted log loss instead of
# balanced accuracy, as `merged`. Which rows would it join?

# %% tags=["solution", "hide-input"]
plain = [e for e in experiments if isinstance(e, lss.experiments.Experiment)]
merged = lss.experiments.combine(
    lss.experiments.Combination(metric="rsna_log_loss"), table, plain)
say(DATA_LABEL, "nothing to combine" if merged is None else merged.description, sep=" ")

# %% tags=["check"]
scored = table.set_index("experiment")["rsna_log_loss"]
joined = [e.name for e in plain
          if e.name != "paper" and scored[e.name] < scored["paper"]]
assert (merged is None) == (not joined)
assert merged is None or all(n in merged.description for n in joined)
print("Exercise 2: correct")

# %% [markdown]
# <details><summary>Solution, explained</summary>
#
# The rule is the same, only the metric changes: every row whose RSNA weighted log loss
# is below the paper row's is joined. A lower log loss can come from better
# probabilities without a better grade, so this combination can differ from the
# balanced-accuracy one.
# </details>
#
#
# ## What's next?
#
# {doc}`07_finding_the_level` grades a study without the table's slice: it finds the
# levels on the sagittal series first. {doc}`benchmarks` times every stage on a CPU and
# a GPU, and {doc}`reproducing` gives the commands for a repeatable run on the real
# data, including the comparison above.
#
# ## Resources and references
#
# - RSNA 2024 Lumbar Spine Degenerative Classification (Kaggle): the data and the
#   weighted log-loss metric.
# - Nibali et al., *Numerical Coordinate Regression with Convolutional Neural Networks*
#   (2018), [arXiv:1801.07372](https://arxiv.org/abs/1801.07372): the soft-argmax used
#   by the localiser.
# - Brodersen et al., *The balanced accuracy and its posterior distribution*
#   (ICPR 2010).
# - Alain and Bengio, *Understanding intermediate layers using linear classifier
#   probes* (2016), [arXiv:1610.01644](https://arxiv.org/abs/1610.01644).
# - Efron and Tibshirani, *An Introduction to the Bootstrap* (1993).
