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
# chapter 4 beside the constant answers, breaks the score down by grade, and diagnoses
# from four measurements whether the model has collapsed onto the class frequencies.
# Then it trains a model that does use the image (chapter 6's region-of-interest
# model), looks at the studies it gets most wrong, asks where in the slices it looked,
# checks that answer against the labelled recess, and ends with what these numbers,
# measured on a synthetic phantom, can and cannot tell us.
#
# 1. The run from chapter 4
# 2. Scores beside the reference points
# 3. The confusion matrix and the report per grade
# 4. Diagnosing a collapse
# 5. A model that learns
# 6. The studies it gets most wrong
# 7. Where the model looks: Grad-CAM and occlusion
# 8. A sanity check of the maps
# 9. The prediction as a sentence
# 10. What the phantom numbers do and do not say
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
# - **System requirements**: a CPU; a few minutes on 2 CPU cores when chapter 4's run
#   exists (otherwise this chapter trains it first, as chapter 4 does); the
#   region-of-interest model and its localiser train here in about two minutes.

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

import numpy as np
import pandas as pd
from IPython.display import Markdown

import lss.attribution
import lss.baselines
import lss.comparison
import lss.data
import lss.data.sources
import lss.device
import lss.evaluate
import lss.experiments
import lss.interpret
import lss.localiser
import lss.metrics
import lss.run
import lss.train
import lss.viz
from lss.config import (
    PAPER_RESULTS,
    REAL_CLASS_COUNTS,
    REAL_MAJORITY_SHARE,
    SEVERITIES,
    Config,
    LocaliserConfig,
)
from lss.text import say

# %% [markdown]
# The settings. `EPOCHS` and `CPU_EPOCHS` matter only when chapter 4's run is missing
# and this chapter has to train it; they are chapter 4's. `N_WORST` studies are shown,
# and occlusion blanks patches of `OCCLUSION_PATCH` pixels.

# %% tags=["parameters"]
DATA_DIR = "../data/phantom"  # Kaggle layout; the phantom is made here if absent
N_STUDIES = 200               # phantom studies needed (a larger phantom serves too)
DATA_SOURCE = "auto"          # Kaggle's attached data, else the phantom; or "kaggle"
WORK_DIR = "../runs/book"     # models and metrics that later chapters read
CACHE_DIR = "../.cache"       # preprocessed windows (lss.data.TensorCache)
SEED = 0
CONDITION = "left_subarticular_stenosis"
LEVEL = "L4/L5"
EPOCHS = None       # as in chapter 4: None is 20 on a GPU or TPU, CPU_EPOCHS on a CPU
CPU_EPOCHS = 6
N_WORST = 3
OCCLUSION_PATCH = 16  # pixels of the 128-pixel whole slice
ROI_CROP_MM = 40.0    # the region-of-interest model's crop (chapter 6)
LEVEL_SLICES = 3      # and its window: the slices of the level
ROI_CPU_EPOCHS = 10   # chapter 6's budget on a CPU (the paper's 20 on a GPU)
ROI_CPU_LEARNING_RATE = 1e-3  # chapter 6's on a CPU (the paper's 1e-4 on a GPU)

# %% [markdown]
# The data root and its label.

# %%
root = lss.data.sources.ensure_data(DATA_DIR, source=DATA_SOURCE, n_studies=N_STUDIES)
DATA_LABEL = lss.run.data_label(root)
RUN_DIR = Path(WORK_DIR) / "cnn_lstm"
run = lss.run.RunDir(RUN_DIR)
say(DATA_LABEL, f"run folder: WORK_DIR / {RUN_DIR.name}")

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
        config=Config(condition=CONDITION, level=LEVEL), cache_dir=CACHE_DIR,
        overwrite=True)

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
# the model must beat the majority column. Balanced accuracy gives every grade the same
# weight, so a model that answers one grade for everyone scores exactly 1/3 on it,
# however skewed the labels. Its macro F1 is not fixed: it depends on the share of the
# grade it answers.

# %%
y_real = np.repeat([0, 1, 2], REAL_CLASS_COUNTS)
f1_here = report["majority"]["macro_f1"]
f1_real = lss.metrics.majority_baseline(y_real, y_real)["macro_f1"]
Markdown(f"Always answering Normal/Mild has a macro F1 of {f1_here:.3f} on this "
         f"validation split ({DATA_LABEL}) and of {f1_real:.3f} on the real labels, "
         f"whose Normal/Mild share is {REAL_MAJORITY_SHARE:.1%}.")

# %% [markdown]
# The log losses: lower is better. For the plain log loss the best constant answer is
# the prior; for the RSNA weighted log loss, which counts a Moderate study twice and a
# Severe one four times (missing severe cases is expensive), it is not. The three
# constants, on this split and on the real labels:

# %%
split = run.read_split()
y_tr, y_va = (split.loc[split.split == name, "label"] for name in ("train", "val"))
constants = pd.concat({DATA_LABEL: lss.metrics.constant_answers(y_tr, y_va),
                       "real labels (all studies)":
                           lss.metrics.constant_answers(y_real, y_real)})
constants.round(4)

# %%
real_ll = constants.loc["real labels (all studies)", "rsna_log_loss"]
Markdown(
    f"On the real labels the uniform answer (1/3 each) scores {real_ll['uniform']:.4f} "
    f"on the RSNA weighted log loss, "
    f"{'below' if real_ll['uniform'] < real_ll['prior'] else 'above'} the prior's "
    f"{real_ll['prior']:.4f}; the best constant is the weighted prior (the class "
    f"shares weighted 1/2/4), at {real_ll['weighted_prior']:.4f}. A model's RSNA log "
    f"loss says something about the images only below the weighted prior's.")

# %% [markdown]
# An accuracy measured on a few dozen validation studies is uncertain by several
# points; one standard error (binomial) is:

# %%
n_val, accuracy = report["n_val"], report["model"]["accuracy"]
error = np.sqrt(accuracy * (1 - accuracy) / n_val)
say(f"{DATA_LABEL}: accuracy {accuracy:.3f} +/- {error:.3f} (one standard error, "
      f"{n_val} validation studies)")

# %% [markdown]
# ## The confusion matrix and the report per grade
#
# Rows are the true grades, columns the predicted ones; the diagonal is right. On the
# right, each row divided by its total: the diagonal is then each grade's recall. The
# figure is saved beside the metrics.

# %% mystnb={"image": {"alt": "Two confusion matrices side by side, the true grades in rows and the predicted grades in columns, each cell shaded in blue and written in: left, the number of validation studies; right, each row divided by its total, so that the diagonal gives each grade's recall."}}
fig, axes = lss.viz.page_subplots(1, 2, height=3.6)
cm = report["model"]["confusion_matrix"]
lss.viz.plot_confusion_matrix(cm, ax=axes[0], data_label=DATA_LABEL)
lss.viz.plot_confusion_matrix(cm, normalize=True, ax=axes[1], data_label=DATA_LABEL)
_ = fig.savefig(RUN_DIR / "confusion_matrix.png", dpi=150, bbox_inches="tight")

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
# ## Diagnosing a collapse
#
# A model that has learned only the class frequencies leaves four fingerprints. Each is
# measured here on chapter 4's run, and each sentence is written from the numbers.
#
# **1. One column.** How many grades does the model ever answer?

# %%
predictions, _, paper_proba = run.read_predictions()
columns = [f"p_{s}" for s in SEVERITIES]
used = int((np.asarray(cm).sum(axis=0) > 0).sum())
Markdown(f"On {DATA_LABEL}, the model {lss.comparison.describe_answers(paper_proba)}: "
         f"{used} of the 3 columns of its confusion matrix hold a study.")

# %% [markdown]
# **2. Calibrated at the prior.** A collapsed model gives every study about the
# training split's class shares. How far do its probabilities stray from them?

# %%
prior_shares = np.asarray(report["prior"]["prior"])
spread = np.abs(paper_proba - prior_shares).max()
Markdown(f"The training shares are {', '.join(f'{v:.2f}' for v in prior_shares)}; the "
         f"model's probabilities differ from them by at most {spread:.3f} over the "
         f"{len(paper_proba)} validation studies"
         + (": it answers the prior, whatever the image." if spread < 0.05 else
            ": its answers move with the image."))

# %% [markdown]
# **3. Blind to the image.** Occlusion (explained below) blanks one patch at a time; a
# model that ignores the image loses nothing. Over the first few validation studies,
# the largest share of the predicted probability that one patch removes:

# %%
N_AUDIT = 4  # occlusion on whole slices costs 512 forward passes per study
paper_audit = lss.attribution.saliency_audit(RUN_DIR, root, cache_dir=CACHE_DIR,
                                             n_studies=N_AUDIT,
                                             occlusion_patch=OCCLUSION_PATCH)
blank = paper_audit["occlusion_max"].tolist()  # the maps are reused by the check below
Markdown(f"Blanking one {OCCLUSION_PATCH}-pixel patch removes at most "
         f"{max(blank):.2%} of the predicted probability over {len(blank)} studies"
         + (": no part of the image matters to the answer." if max(blank) < 0.01 else
            ": some patches matter."))

# %% [markdown]
# **4. Is the grade in the input at all?** A linear probe (a logistic regression on the
# pixels of each study's labelled slice, resized to 32 x 32, regularisation chosen on
# the training split) answers whether a straight line through the pixels can read the
# grade where the network did not:

# %%
probe = lss.baselines.linear_probe(RUN_DIR, root, cache_dir=CACHE_DIR)
Markdown(f"The probe reaches a balanced accuracy of {probe['balanced_accuracy']:.3f} "
         f"on the validation split, against the network's "
         f"{report['model']['balanced_accuracy']:.3f} and 1/3 for any one-grade "
         f"answer"
         + (": the grade can be read off these pixels, so the network's setup or "
            "budget, not the input, holds it back." if probe["balanced_accuracy"] > 0.4
            else ": at this size the grade is hard to read off the whole slice, even "
            "for the probe.") + f" (On {DATA_LABEL}.)")

# %% [markdown]
# ## A model that learns
#
# Looking for *where* a collapsed model looks is reading tea leaves: it looks nowhere.
# The rest of the chapter analyses a model that does use the image: chapter 6's
# region-of-interest model on the level's slices (`roi_level`: a `ROI_CROP_MM` mm crop
# around the left recess, placed by a small localiser trained on the training studies'
# points, `LEVEL_SLICES` slices, flattened features). Chapter 6 explains each of its
# changes; here it is trained once, on the same split as chapter 4's run and at
# chapter 6's budget, so it is chapter 6's `roi_level` row.

# %%
accelerator = lss.device.describe_accelerator()
on_cpu = accelerator["kind"] == "CPU"
roi_epochs = lss.device.resolve_epochs(None, accelerator, cpu_epochs=ROI_CPU_EPOCHS)
roi_lr = ROI_CPU_LEARNING_RATE if on_cpu else Config().train.learning_rate
print(f"{accelerator['label']}: {roi_epochs} epochs at learning rate {roi_lr:g}")
ROI_RUN = lss.experiments.train_roi_level(
    root, Path(WORK_DIR) / "roi_model",
    Config(condition=CONDITION, level=LEVEL).replace(seed=SEED), epochs=roi_epochs,
    learning_rate=roi_lr, crop_mm=ROI_CROP_MM, level_slices=LEVEL_SLICES,
    localiser=LocaliserConfig(image_size=64, epochs=12, seed=SEED), cache_dir=CACHE_DIR)
roi_report = lss.run.RunDir(ROI_RUN).read_metrics()
print(lss.metrics.format_report(roi_report, data_label=roi_report["data"]["label"]))

# %%
_, _, roi_proba = lss.run.RunDir(ROI_RUN).read_predictions()
learns = roi_report["model"]["balanced_accuracy"] > 1 / 3 + 1e-9
Markdown(("" if learns else "**This run did not learn either**: read what follows as "
          "a second collapsed model, and try more epochs. ")
         + "The region-of-interest model "
         f"{lss.comparison.describe_answers(roi_proba)}, "
         f"with a balanced accuracy of {roi_report['model']['balanced_accuracy']:.3f} "
         f"(chapter 4's run: {report['model']['balanced_accuracy']:.3f}) and an RSNA "
         f"weighted log loss of {roi_report['model']['rsna_log_loss']:.3f} (the best "
         f"constant: "
         f"{constants.loc[DATA_LABEL, 'rsna_log_loss']['weighted_prior']:.3f}), "
         f"on {DATA_LABEL}.")

# %% [markdown]
# ## The studies it gets most wrong
#
# `predictions.csv` holds each validation study's probabilities. The worst mistakes are
# the wrong predictions that gave the true grade the lowest probability. For a model
# that answers one grade for everyone this ranking is noise; for this one it is not:

# %%
run = lss.run.RunDir(ROI_RUN)
predictions, _, _ = run.read_predictions()
worst = lss.interpret.most_wrong(predictions, N_WORST)
print(DATA_LABEL)
worst[["study_id", "true", "predicted_grade", "p_true", *columns]].round(3)

# %% [markdown]
# To look at them, we load the model and read each study's window again as the model
# saw it: the crop centred where the localiser points (`study_window`), with the
# radiologist's point, which the model was not given, marked in it.

# %%
model, config = run.load()
index = lss.data.build_index(root, CONDITION, LEVEL)
picked = index.set_index("study_id").loc[list(worst.study_id)].reset_index()
centres, _ = lss.localiser.run_centres(run, root, picked, cache_dir=CACHE_DIR)
seen = [lss.attribution.study_window(config, root, r, c)
        for r, c in zip(picked.itertuples(), centres, strict=True)]
windows, points = [w for w, _, _ in seen], [p for _, p, _ in seen]
size = config.preprocess.image_size

# %% [markdown]
# One block per study, the labelled slice framed in red, the labelled point (the recess
# the radiologist graded) ringed:

# %% mystnb={"image": {"alt": "The validation studies the region-of-interest model gets most wrong, one block per study, one below the other: the level's slices cropped where the localiser points, in rows of up to four, the labelled slice framed in red with the radiologist's point ringed where it lies in the crop; each block is labelled with its study, its true grade and the probability the model gave that grade."}}
labels = [f"{s}\ntrue {t}\np(true) {p:.2f}" for s, t, p in
          worst[["study_id", "true", "p_true"]].itertuples(index=False)]
_ = lss.viz.plot_montage(
    [w.volume for w in windows[:N_WORST]], row_labels=labels, points=points[:N_WORST],
    title=f"The {N_WORST} validation studies the region-of-interest model gets most "
          f"wrong",
    data_label=DATA_LABEL)

# %% [markdown]
# Each crop is `ROI_CROP_MM` mm wide: the recess fills a good part of it, where on a
# whole 128-pixel slice it spanned a few pixels. A narrowed recess has lost its bright
# corner of fat and fluid; this is the detail the model has to find.
#
# ## Where the model looks: Grad-CAM and occlusion
#
# **Grad-CAM** (Selvaraju et al.) takes the last convolution's feature maps of each
# slice and weights each map by how much the class score *before* the softmax (the
# logit) rises with it, on average over the map. The sum, with negative parts set to 0,
# shows where the features that support the grade are active. Here, for the worst study
# and the grade the model predicted:

# %% mystnb={"image": {"alt": "Two blocks of the worst study's crop, one below the other, its slices in rows of up to four, the labelled slice framed in red and the labelled point ringed: above, the slices alone; below, the same slices with the Grad-CAM map of the predicted grade laid over them in colour, left out where it is near zero, and a colour bar from zero to one."}}
volume, point = windows[0].volume, points[0]
predicted = SEVERITIES.index(worst.predicted_grade[0])
cam = lss.interpret.grad_cam(model, volume, class_index=predicted)
_ = lss.viz.plot_saliency(volume, cam, point=point, data_label=DATA_LABEL,
                          method=f"Grad-CAM, '{SEVERITIES[predicted]}'",
                          title=f"Study {worst.study_id[0]}: why "
                                f"'{SEVERITIES[predicted]}'?")

# %% [markdown]
# Bright means: features there pushed the grade's score up. The map is divided by its
# own maximum, so it always fills the colour scale, even when the gradients behind it
# are tiny: Grad-CAM shows *where*, not *how much*.
#
# **Occlusion** answers *how much*. It blanks one patch of one slice at a time and
# records the fraction of the predicted probability that is lost. It needs only
# forward passes, one per patch position, so it works on every backend, and it measures
# what the model actually uses.

# %%
ROI_PATCH = max(4, size // 8)
occlusion = lss.interpret.occlusion_sensitivity(model, volume, class_index=predicted,
                                                patch=ROI_PATCH)
say(f"{DATA_LABEL}, study {worst.study_id[0]}: blanking one {ROI_PATCH}-pixel patch "
      f"removes at most {occlusion.max():.2%} of p({SEVERITIES[predicted]})")

# %% [markdown]
# That maximum is the scale of the map. To see its shape, it is stretched to [0, 1]
# (the colour bar says so):

# %% mystnb={"image": {"alt": "Two blocks of the worst study's crop, one below the other, its slices in rows of up to four, the labelled slice framed in red and the labelled point ringed: above, the slices alone; below, the same slices with the occlusion map laid over them in colour, stretched so that its largest loss reads one on the colour bar, and left out where it is near zero."}}
shape = occlusion / occlusion.max() if occlusion.max() > 0 else occlusion
_ = lss.viz.plot_saliency(volume, shape, point=point, method="occlusion (stretched)",
                          title=f"Study {worst.study_id[0]}: what the prediction needs",
                          data_label=DATA_LABEL)

# %% [markdown]
# ## A sanity check of the maps
#
# One map can be read into. Measured instead, over the validation studies: the share of
# each map's mass within 10 mm of the labelled point, beside the share a uniform map
# would put there (`lss.attribution.saliency_audit`). For chapter 4's whole-slice model
# on its first `N_AUDIT` studies (occlusion there is costly), and for the
# region-of-interest model on all of them:

# %%
audits = {"chapter 4 (whole slices)": paper_audit,
          "roi_level (crop)": lss.attribution.saliency_audit(
              ROI_RUN, root, cache_dir=CACHE_DIR, occlusion_patch=ROI_PATCH)}
sanity = pd.DataFrame(
    {k: lss.attribution.summarise_audit(v) for k, v in audits.items()}).T
print(DATA_LABEL)
sanity.round(3)

# %%
def _reads(r):
    return (f"Grad-CAM puts {r.grad_cam_share:.1%} of its mass within 10 mm of the "
            f"point ({r.grad_cam_ratio:.1f} times a uniform map's "
            f"{r.uniform_share:.1%}) and occlusion {r.occlusion_share:.1%} "
            f"({r.occlusion_ratio:.1f} times)")


Markdown(". ".join(f"For {name}, {_reads(r)}" for name, r in sanity.iterrows())
         + ". A ratio near 1 is a map no closer to the recess than chance. "
         f"({DATA_LABEL}; "
         f"{int(sanity['n_outside'].sum())} studies whose crop missed the point are "
         f"counted apart.)")

# %% [markdown]
# ## The prediction as a sentence
#
# The paper reports a prediction as a sentence. `describe_prediction` writes it from a
# row of probabilities:

# %%
proba = worst.loc[0, columns].to_numpy(dtype=float)
say(f"{lss.interpret.describe_prediction(proba, condition=CONDITION, level=LEVEL)}"
      f"  [study {worst.study_id[0]}; label: {worst.true[0]}; {DATA_LABEL}]")

# %% [markdown]
# And for every validation study at once, with `describe_predictions`:

# %%
sentences = lss.interpret.describe_predictions(
    predictions.study_id, predictions[columns].to_numpy(), condition=CONDITION,
    level=LEVEL)
sentences.insert(1, "label", [SEVERITIES[i] for i in predictions.label])
print(DATA_LABEL)
sentences[["study_id", "label", "description"]].head(8)

# %% [markdown]
# A sentence with a probability reads as a finding. It is only as good as the model
# behind it: chapter 4's collapsed model would write nearly the same sentence, with
# nearly the same probability, for every study, and so say nothing about any of them.
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
# - How to read the paper's figures (computed below from its reported numbers). The
#   tools of this chapter (the reference columns, the confusion matrix, occlusion, the
#   sanity check of the maps) are how to tell a model that reads the images from one
#   that has learned the class frequencies.
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
#   points (one standard error is printed above), from a single split and seed.

# %%
paper_acc = PAPER_RESULTS["val_accuracy"]
n_paper_val = round(0.2 * sum(REAL_CLASS_COUNTS))
paper_se = np.sqrt(paper_acc * (1 - paper_acc) / n_paper_val)
real_prior = lss.metrics.real_prior_log_loss()
Markdown(
    "On real scans the paper's CNN-LSTM ends "
    f"{100 * (paper_acc - REAL_MAJORITY_SHARE):.1f} "
    f"points above always answering Normal/Mild ({paper_acc:.1%} against "
    f"{REAL_MAJORITY_SHARE:.1%}), with a validation loss "
    f"{real_prior - PAPER_RESULTS['val_loss_last_epoch']:.3f} below the class-share "
    f"log loss ({PAPER_RESULTS['val_loss_last_epoch']:.3f} against "
    f"{real_prior:.3f}). Its validation split, about {n_paper_val} studies (20 % of "
    f"{sum(REAL_CLASS_COUNTS):,}), gives an accuracy near {paper_acc:.0%} a standard "
    f"error of {100 * paper_se:.1f} points.")

# %% [markdown]
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
# - scored it with `evaluate_run` beside the constant answers (majority, prior,
#   uniform, weighted prior), with the uncertainty of a small validation split;
# - read the confusion matrix and the precision, recall and F1 of each grade;
# - diagnosed a collapse from four measurements: one column, probabilities at the
#   prior, occlusion near zero, and a linear probe of the input;
# - trained a model that uses the image, found the studies it gets most wrong and
#   looked at their crops and labelled points;
# - asked where it looks with Grad-CAM (where) and occlusion (how much), and measured
#   how much of each map lies near the labelled recess against chance;
# - wrote the predictions as the paper's sentences;
# - separated what the phantom numbers say (the code works; how to read a score) from
#   what they cannot (anything about real scans).
#
# ## Exercises
#
# Each exercise has a solution cell (folded on the website; empty in the student
# notebooks, for your code) and a check cell that tests the answer.
#
# **Exercise 1.** Beat the dummy. On which rows of the report does the model beat its
# reference point? Print, for each, the model's score and the reference's.
#

# %% tags=["solution", "hide-input"]
m, maj = report["model"], report["majority"]
best_constant = constants.loc[DATA_LABEL, "rsna_log_loss"]["weighted_prior"]
checks = {
    "accuracy": (m["accuracy"], maj["accuracy"], True),
    "balanced accuracy": (m["balanced_accuracy"], maj["balanced_accuracy"], True),
    "macro F1": (m["macro"]["f1"], maj["macro_f1"], True),
    "RSNA weighted log loss": (m["rsna_log_loss"], best_constant, False),
}
print(DATA_LABEL)
for name, (model_score, reference, higher) in checks.items():
    better = model_score > reference if higher else model_score < reference
    say(f"{name}: model {model_score:.3f}, reference {reference:.3f}, "
          f"{'beats' if better else 'does not beat'} it")

# %% tags=["check"]
assert set(checks) == {"accuracy", "balanced accuracy", "macro F1",
                       "RSNA weighted log loss"}
# the best constant, not the prior
assert checks["RSNA weighted log loss"][1] == best_constant
print("Exercise 1: correct")

# %% [markdown]
# <details><summary>Solution, explained</summary>
#
# Remember the standard error printed above: a lead smaller than it is not evidence.
# </details>
#
# **Exercise 2.** Compute Grad-CAM for the worst study's *true* grade instead of the
# predicted one. What does an all-zero map mean?
#

# %% tags=["solution", "hide-input"] mystnb={"image": {"alt": "Two blocks of the worst study's crop, one below the other, the labelled slice framed in red and the labelled point ringed: above, the slices alone; below, the same slices under the Grad-CAM map of the study's true grade, in colour on a scale from zero to one; a map that is zero everywhere leaves the lower block bare."}}
true = SEVERITIES.index(worst.true[0])
cam_true = lss.interpret.grad_cam(model, volume, class_index=true)
print(f"largest value: {cam_true.max():.3f} ({DATA_LABEL})")
_ = lss.viz.plot_saliency(volume, cam_true, point=point,
                          method=f"Grad-CAM, '{SEVERITIES[true]}'",
                          data_label=DATA_LABEL)

# %% tags=["check"]
assert cam_true.shape == volume.shape and 0 <= cam_true.min() <= cam_true.max() <= 1
print("Exercise 2: correct")

# %% [markdown]
# <details><summary>Solution, explained</summary>
#
# All zeros means that no feature map of the last convolution raises the probability of
# that grade anywhere in the window: after the ReLU nothing is left. The model has no
# evidence *for* the true grade in this study, which is why it gave it so little
# probability.
# </details>
#
# **Exercise 3.** Is the model calibrated? Draw the reliability diagram of the
# validation predictions with `lss.viz.plot_reliability`.
#

# %% tags=["solution", "hide-input"] mystnb={"image": {"alt": "Reliability diagram of the region-of-interest model: the fraction of validation studies graded right (vertical axis) against the model's confidence, its top-grade probability (horizontal axis), one point per non-empty bin, written with its number of studies and joined by a line, beside a dashed grey diagonal of perfect calibration; the title gives the expected calibration error."}}
reliability = lss.viz.plot_reliability(
    predictions.label, predictions[[f"p_{s}" for s in SEVERITIES]].to_numpy(),
    n_bins=5, data_label=DATA_LABEL)

# %% tags=["check"]
assert reliability.get_xlabel() and reliability.get_ylabel()
print("Exercise 3: correct")

# %% [markdown]
# <details><summary>Solution, explained</summary>
#
# A model that predicts about the class shares for every study puts all its points in
# one bin, near 0.5 confidence; it can be calibrated and useless at once.
# </details>
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
