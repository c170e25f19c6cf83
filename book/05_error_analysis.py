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
# # Error analysis: what the model gets wrong, and where it looks
#
# ## Overview
#
# A validation accuracy is one number. This chapter opens it up: it scores the run of
# chapter 4 beside the two reference points, breaks the score down by grade, looks at
# the studies the model gets most wrong, asks where in the slices it looked, and ends
# with what these numbers, measured on a synthetic phantom, can and cannot tell us.
#
# 1. The run from chapter 4
# 2. Scores beside the reference points
# 3. The confusion matrix and the report per grade
# 4. The studies it gets most wrong
# 5. Where the model looks: Grad-CAM and occlusion
# 6. The prediction as a sentence
# 7. What the phantom numbers do and do not say
#
# ## Prerequisites
#
# | Concepts | Importance | Notes |
# | --- | --- | --- |
# | {doc}`04_gpu_training` | Necessary | The run analysed here (retrained if absent) |
# | [Confusion matrix, precision, recall][skl] | Helpful | Scores per class |
# | [Grad-CAM][gradcam] | Helpful | Explained below |
#
# [skl]: https://scikit-learn.org/stable/modules/model_evaluation.html#classification-metrics
# [gradcam]: https://arxiv.org/abs/1610.02391
#
# - **Time to learn**: 40 minutes.
# - **System requirements**: a CPU; about 1.5 minutes on 2 CPU cores when chapter 4's
#   run exists (otherwise this chapter trains it first, as chapter 4 does).

# %% [markdown]
# ---
#
# In Colab, the next cell installs the `lss` package; elsewhere it does nothing.

# %%
# In Colab only: install lss from its repository (`make book` has installed it elsewhere).
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "lss @ git+https://github.com/lss-book/lss"], check=True)

# %% [markdown]
# All imports, in one place.

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import lss.data
import lss.data.sources
import lss.device
import lss.evaluate
import lss.interpret
import lss.metrics
import lss.run
import lss.train
import lss.viz
from lss.config import SEVERITIES, Config

# %% [markdown]
# The settings. `EPOCHS` and `CPU_EPOCHS` matter only when chapter 4's run is missing
# and this chapter has to train it; they are chapter 4's. `N_WORST` studies are shown,
# and occlusion blanks patches of `OCCLUSION_PATCH` pixels.

# %% tags=["parameters"]
DATA_DIR = "../data/phantom"  # a root in the Kaggle layout; the phantom is made here if absent
DATA_SOURCE = "phantom"       # "phantom", or "kaggle" (your own Kaggle credentials, ~35 GB)
WORK_DIR = "../runs/book"     # models and metrics that later chapters read
CACHE_DIR = "../.cache"       # preprocessed windows (lss.data.TensorCache)
SEED = 0
CONDITION = "left_subarticular_stenosis"
LEVEL = "L4/L5"
EPOCHS = None       # as in chapter 4: None is 20 on a GPU or TPU, CPU_EPOCHS on a CPU
CPU_EPOCHS = 6
N_WORST = 3
OCCLUSION_PATCH = 16

# %% [markdown]
# The data root and its label.

# %%
root = lss.data.sources.ensure_data(DATA_DIR, source=DATA_SOURCE)
DATA_LABEL = lss.run.data_label(root)
RUN_DIR = Path(WORK_DIR) / "cnn_lstm"
run = lss.run.RunDir(RUN_DIR)
print(DATA_LABEL, "|", RUN_DIR)

# %% [markdown]
# ## The run from chapter 4
#
# Chapter 4 wrote its run to `WORK_DIR/cnn_lstm`. Opened alone (in Colab, say), this
# chapter finds no run there and trains it with the same call as chapter 4.

# %%
if not run.model.is_file():
    print(f"No run in {RUN_DIR}: training it as chapter 4 does")
    lss.train.train_on_device(
        root, RUN_DIR, epochs=EPOCHS, cpu_epochs=CPU_EPOCHS, seed=SEED,
        config=Config(condition=CONDITION, level=LEVEL), cache_dir=CACHE_DIR, overwrite=True)

# %% [markdown]
# The manifest says what the run is: its data (which must be this chapter's), its
# epochs, its precision and where it ran.

# %%
manifest = run.read_manifest()
print(f"run data: {manifest['data']['label']}\nthis chapter's data: {DATA_LABEL}\n"
      f"epochs run: {manifest['epochs_run']}, precision: {manifest['precision']}, "
      f"backend: {manifest['environment']['keras_backend']}")

# %% [markdown]
# ## Scores beside the reference points
#
# `evaluate_run` predicts the run's validation studies with its best model (the epoch of
# lowest validation loss) and scores the predictions beside the two reference points
# computed on the same split: **majority**, always the training split's most frequent
# grade, and **prior**, always the training split's class shares as probabilities. It
# writes `metrics.json` and `predictions.csv` into the run folder (the figures are
# drawn below instead).

# %%
report = lss.evaluate.evaluate_run(RUN_DIR, root, cache_dir=CACHE_DIR, figures=False)
print(lss.metrics.format_report(report, data_label=report["data"]["label"]))

# %% [markdown]
# Read each row across. Accuracy, balanced accuracy and macro F1: higher is better, and
# the model must beat the majority column. The log losses: lower is better, and the
# model must beat the prior column. Balanced accuracy and macro F1 give every grade the
# same weight, so a model that answers Normal/Mild for everyone scores 1/3 and about
# 0.22 on them however large the Normal/Mild class is. The RSNA weighted log loss counts
# a Moderate study twice and a Severe one four times: missing severe cases is expensive.
#
# An accuracy measured on a few dozen validation studies is uncertain by several
# points; one standard error (binomial) is:

# %%
n_val, accuracy = report["n_val"], report["model"]["accuracy"]
error = np.sqrt(accuracy * (1 - accuracy) / n_val)
print(f"{DATA_LABEL}: accuracy {accuracy:.3f} +/- {error:.3f} (one standard error, "
      f"{n_val} validation studies)")

# %% [markdown]
# ## The confusion matrix and the report per grade
#
# Rows are the true grades, columns the predicted ones; the diagonal is right. On the
# right, each row divided by its total: the diagonal is then each grade's recall. The
# figure is saved beside the metrics.

# %%
fig, axes = plt.subplots(1, 2, figsize=(9.5, 4))
cm = report["model"]["confusion_matrix"]
lss.viz.plot_confusion_matrix(cm, ax=axes[0], data_label=DATA_LABEL)
lss.viz.plot_confusion_matrix(cm, normalize=True, ax=axes[1], data_label=DATA_LABEL)
_ = fig.savefig(RUN_DIR / "confusion_matrix.png", dpi=120, bbox_inches="tight")

# %% [markdown]
# Look at the columns first: a column that is all zeros is a grade the model never
# predicts. A model that has learned only the class frequencies puts every study in
# the Normal/Mild column; its diagonal then reads 1, 0, 0.
#
# The same per grade, with precision (of the studies predicted as this grade, the
# fraction right), recall (of the studies of this grade, the fraction found) and F1:

# %%
per_class = pd.DataFrame(report["model"]["per_class"]).T.astype({"support": int})
per_class.index.name = f"grade ({DATA_LABEL})"
per_class.round(3)

# %% [markdown]
# ## The studies it gets most wrong
#
# `predictions.csv` holds each validation study's probabilities. The worst mistakes are
# the wrong predictions that gave the true grade the lowest probability:

# %%
predictions, _, _ = run.read_predictions()
worst = lss.interpret.most_wrong(predictions, N_WORST)
print(DATA_LABEL)
columns = [f"p_{s}" for s in SEVERITIES]
worst[["study_id", "true", "predicted_grade", "p_true", *columns]].round(3)

# %% [markdown]
# To look at them, we load the model and read each study's window again with its
# labelled point (`level_window` decodes only the window's 8 slices). One correctly
# graded Normal/Mild study comes last, for comparison.

# %%
model, config = run.load()
index = lss.data.build_index(root, CONDITION, LEVEL).set_index("study_id")
normal_id = predictions.query("label == 0 and predicted == 0").study_id.iloc[0]
windows = [lss.data.level_window(
    lss.data.series_dir(root, sid, r.series_id),
    None if pd.isna(r.instance_number) else int(r.instance_number), config.preprocess,
    centre_xy=(r.x, r.y)) for sid, r in index.loc[[*worst.study_id, normal_id]].iterrows()]
size = config.preprocess.image_size

# %% [markdown]
# One row per study, the labelled slice framed in red, the labelled point (the recess
# the radiologist graded) ringed:

# %%
labels = [f"{s}\ntrue {t}\np(true) {p:.2f}" for s, t, p in
          worst[["study_id", "true", "p_true"]].itertuples(index=False)]
_ = lss.viz.plot_montage(
    [w.volume for w in windows[:N_WORST]], row_labels=labels,
    points=[lss.interpret.window_point(w, size) for w in windows[:N_WORST]],
    title=f"The {N_WORST} validation studies the model gets most wrong", data_label=DATA_LABEL)

# %% [markdown]
# At 128 x 128 pixels for a whole cross-section of the body, the recess spans a few
# pixels. Zoomed on the labelled slice of the worst study and of the Normal/Mild one,
# around the midline so that both recesses show (the patient's left on the image's
# right):

# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 4.4))
for ax, w, sid in zip(axes, [windows[0], windows[-1]], [worst.study_id[0], normal_id],
                      strict=True):
    pt = lss.interpret.window_point(w, size)
    lss.viz.plot_slice(w.volume[len(w.volume) // 2], point=pt, zoom=size / 6, ax=ax,
                         centre=((size - 1) / 2, pt[1]), orientation="axial",
                         title=f"study {sid}: {SEVERITIES[int(index.label[sid])]}")
_ = fig.suptitle(f"Labelled slices, zoomed on the recesses\n{DATA_LABEL}", fontsize=9)

# %% [markdown]
# Compare the ringed recess with the one across the midline, and with the Normal/Mild
# study: a narrowed recess has lost its bright corner. This is the detail the model has
# to find, without being told where it is.
#
# ## Where the model looks: Grad-CAM and occlusion
#
# **Grad-CAM** takes the last convolution's feature maps of each slice and weights each
# map by how much the predicted probability rises with it (the mean of the gradient).
# The sum, with negative parts set to 0, shows where the features that support the
# prediction are active. Here, for the worst study and the grade the model predicted:

# %%
volume = windows[0].volume
point = lss.interpret.window_point(windows[0], config.preprocess.image_size)
predicted = SEVERITIES.index(worst.predicted_grade[0])
cam = lss.interpret.grad_cam(model, volume, class_index=predicted)
_ = lss.viz.plot_saliency(volume, cam, point=point, data_label=DATA_LABEL,
                                method=f"Grad-CAM, '{SEVERITIES[predicted]}'",
                                title=f"Study {worst.study_id[0]}: why "
                                      f"'{SEVERITIES[predicted]}'?")

# %% [markdown]
# Bright means: features there pushed the prediction up. The map is divided by its own
# maximum, so it always fills the colour scale, even when the gradients behind it are
# tiny: Grad-CAM shows *where*, not *how much*. Features that respond to large bright
# structures (the body outline, the fat, the spinal canal) give broad maps, which say
# little about the recess.
#
# **Occlusion** answers *how much*. It blanks one `OCCLUSION_PATCH` x `OCCLUSION_PATCH`
# patch of one slice at a time and records the fraction of the predicted probability
# that is lost. It needs only forward passes, one per patch position (512 for 8 slices
# of 128 x 128 and 16-pixel patches), so it works on every backend, and it measures
# what the model actually uses.

# %%
occlusion = lss.interpret.occlusion_sensitivity(model, volume, class_index=predicted,
                                                patch=OCCLUSION_PATCH)
print(f"{DATA_LABEL}, study {worst.study_id[0]}: blanking one patch removes at most "
      f"{occlusion.max():.2%} of p({SEVERITIES[predicted]})")

# %% [markdown]
# That maximum is the scale of the map. To see its shape, it is stretched to [0, 1]:

# %%
shape = occlusion / occlusion.max() if occlusion.max() > 0 else occlusion
_ = lss.viz.plot_saliency(volume, shape, point=point,
                                method="occlusion (stretched)",
                                title=f"Study {worst.study_id[0]}: what the prediction needs",
                                data_label=DATA_LABEL)

# %% [markdown]
# If the printed maximum is a fraction of a percent, no single patch matters: the model
# gives nearly the same answer whatever is hidden, which is what a model that answers
# from the class frequencies does. A model that had learned the recess would lose a
# large share of its confidence when the ringed region on the framed slice is blanked.
#
# ## The prediction as a sentence
#
# The paper reports a prediction as a sentence. `describe_prediction` writes it from a
# row of probabilities:

# %%
proba = worst.loc[0, columns].to_numpy(dtype=float)
print(f"{lss.interpret.describe_prediction(proba, condition=CONDITION, level=LEVEL)}"
      f"  [study {worst.study_id[0]}; label: {worst.true[0]}; {DATA_LABEL}]")

# %% [markdown]
# And for every validation study at once, with `describe_predictions`:

# %%
sentences = lss.interpret.describe_predictions(
    predictions.study_id, predictions[columns].to_numpy(), condition=CONDITION, level=LEVEL)
sentences.insert(1, "label", [SEVERITIES[i] for i in predictions.label])
print(DATA_LABEL)
sentences[["study_id", "label", "description"]].head(8)

# %% [markdown]
# A sentence with a probability reads as a finding. It is only as good as the model
# behind it: a probability of 0.50 from a model that answers every study the same way
# says nothing about that study.
#
# ## What the phantom numbers do and do not say
#
# Everything above was measured on the synthetic phantom
# (`lss.run.data_label(root)` printed it with every number). The phantom is a set of
# drawn cross-sections of the lower back, stored as DICOM in the Kaggle layout, in
# which each study's recess is narrowed according to a sampled grade.
#
# **What they do say.**
#
# - The pipeline runs end to end: series chosen, slices ordered, windows cached, model
#   trained, best epoch kept, predictions written, and each number traceable through the
#   run's manifest to its data and settings.
# - How to read the paper's figures. On real scans the paper's CNN-LSTM ends 6 points
#   above always answering Normal/Mild (51.1 % against 44.9 %), with a validation loss
#   0.03 below the class-share log loss (1.036 against 1.063). The tools of this chapter
#   (the reference columns, the confusion matrix, occlusion) are how to tell a model
#   that reads the images from one that has learned the class frequencies.
# - Whether a given change (no flip, a crop around the recess, class weights, more
#   epochs) lets *this* model find a lesion of known position and size at all. If it
#   cannot on the phantom, where the grade is drawn into the image, there is little
#   reason to expect it to on real scans.
#
# **What they do not say.**
#
# - How well the model grades real scans. Real anatomy, scanners, noise, artefacts and
#   the disagreement between radiologists are absent from the phantom; its labels are
#   exact by construction, real labels are not.
# - Whether the paper's 51 % is reproduced. Only `make book DATA=... EPOCHS=20` on the
#   real data can say that, and its numbers will be labelled as such.
# - Anything precise: a few dozen validation studies give an accuracy to within several
#   points (one standard error is printed above), from a single split and seed. The
#   paper's validation split, about 394 studies, has a standard error of about 2.5
#   points.
#
# :::{caution}
# Never quote a phantom number as a result of the model. Quote it with its data label
# ("on the synthetic phantom (seed 0, 200 studies)"), as a check that the code works and
# as a way to learn to read the real numbers.
# :::
#
# ## Summary
#
# In this chapter we:
#
# - loaded chapter 4's run (or trained it with the same call) and checked its data;
# - scored it with `evaluate_run` beside the majority and prior reference points, with
#   the uncertainty of a small validation split;
# - read the confusion matrix and the precision, recall and F1 of each grade;
# - found the studies the model gets most wrong and looked at their slices and
#   labelled points;
# - asked where the model looks with Grad-CAM (where) and occlusion (how much);
# - wrote the predictions as the paper's sentences;
# - separated what the phantom numbers say (the code works; how to read a score) from
#   what they cannot (anything about real scans).
#
# ## Exercises
#
# **Exercise 1.** Beat the dummy. On which rows of the report does the model beat its
# reference point? Print, for each, the model's score and the reference's.
#
# :::{admonition} Solution
# :class: dropdown
#
# ```python
# m, maj, pri = report["model"], report["majority"], report["prior"]
# checks = {
#     "accuracy": (m["accuracy"], maj["accuracy"], True),
#     "balanced accuracy": (m["balanced_accuracy"], maj["balanced_accuracy"], True),
#     "macro F1": (m["macro"]["f1"], maj["macro_f1"], True),
#     "RSNA weighted log loss": (m["rsna_log_loss"], pri["rsna_log_loss"], False),
# }
# print(DATA_LABEL)
# for name, (model_score, reference, higher) in checks.items():
#     better = model_score > reference if higher else model_score < reference
#     print(f"{name}: model {model_score:.3f}, reference {reference:.3f}, "
#           f"{'beats' if better else 'does not beat'} it")
# ```
#
# Remember the standard error printed above: a lead smaller than it is not evidence.
# :::
#
# **Exercise 2.** Compute Grad-CAM for the worst study's *true* grade instead of the
# predicted one. What does an all-zero map mean?
#
# :::{admonition} Solution
# :class: dropdown
#
# ```python
# true = SEVERITIES.index(worst.true[0])
# cam_true = lss.interpret.grad_cam(model, volume, class_index=true)
# print(f"largest value: {cam_true.max():.3f} ({DATA_LABEL})")
# _ = lss.viz.plot_saliency(volume, cam_true, point=point,
#                                 method=f"Grad-CAM, '{SEVERITIES[true]}'",
#                                 data_label=DATA_LABEL)
# ```
#
# All zeros means that no feature map of the last convolution raises the probability of
# that grade anywhere in the window: after the ReLU nothing is left. The model has no
# evidence *for* the true grade in this study, which is why it gave it so little
# probability.
# :::
#
# **Exercise 3.** Is the model calibrated? Draw the reliability diagram of the
# validation predictions with `lss.viz.plot_reliability`.
#
# :::{admonition} Solution
# :class: dropdown
#
# ```python
# _ = lss.viz.plot_reliability(predictions.label,
#                                predictions[[f"p_{s}" for s in SEVERITIES]].to_numpy(),
#                                n_bins=5, data_label=DATA_LABEL)
# ```
#
# A model that predicts about the class shares for every study puts all its points in
# one bin, near 0.5 confidence; it can be calibrated and useless at once.
# :::
#
# ## What's next?
#
# {doc}`06_beyond_the_paper` changes what the paper fixed (the flip, the whole-slice
# input, the class weights) and measures each change against the same reference points.
#
# ## Resources and references
#
# - R. R. Selvaraju et al., "Grad-CAM: visual explanations from deep networks via
#   gradient-based localization", ICCV 2017: <https://arxiv.org/abs/1610.02391>
# - M. D. Zeiler and R. Fergus, "Visualizing and understanding convolutional
#   networks" (occlusion), ECCV 2014: <https://arxiv.org/abs/1311.2901>
# - J. Adebayo et al., "Sanity checks for saliency maps", NeurIPS 2018:
#   <https://arxiv.org/abs/1810.03292>
# - scikit-learn, classification metrics:
#   <https://scikit-learn.org/stable/modules/model_evaluation.html#classification-metrics>
# - The code of this chapter: `help(lss.evaluate.evaluate_run)`, `help(lss.interpret)`.
