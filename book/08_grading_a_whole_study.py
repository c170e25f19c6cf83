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
# # Grading a whole study: 25 targets, the submission and the competition's metric
#
# ## Overview
#
# The paper grades one target: left subarticular stenosis at L4/L5. The RSNA 2024
# competition grades 25 for every study (five conditions at five levels) and scores
# them together. This chapter grades them all with the book's model family, one
# region-of-interest CNN-LSTM per condition group on one split, writes the
# competition's submission from the images alone, and scores the held-out studies the
# competition's way, beside three constant answers that are not the same thing.
#
# 1. The 25 targets, and where each is read
# 2. One split, three models
# 3. Left and right: one model for both recesses
# 4. The submission
# 5. The metric, and why its three constants differ
# 6. The held-out studies, graded as new studies
# 7. What the public top solutions do
# 8. On the RSNA data, and on Kaggle
#
# ## Prerequisites
#
# | Concepts | Importance | Notes |
# | --- | --- | --- |
# | {doc}`06_beyond_the_paper` | Necessary | The region-of-interest model |
# | {doc}`07_finding_the_level` | Necessary | The level finder and the found slice |
# | [Log loss][logloss] | Helpful | Weighted, as the competition scores it |
#
# [logloss]: https://scikit-learn.org/stable/modules/model_evaluation.html#log-loss
#
# - **Time to learn**: 40 minutes.
# - **System requirements**: a CPU; about 9 minutes on 2 CPU cores, nearly all of it
#   training the three models, the recess localiser and the level finder; on a GPU, the
#   paper's 20 epochs per model, a few minutes on the phantom. No earlier chapter's
#   files are needed.

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
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Markdown

import lss.competition
import lss.config
import lss.data
import lss.data.sources
import lss.locate
import lss.run
import lss.study_predict
import lss.submission
import lss.viz
import lss.whole_study
from lss.config import Config, LevelLocaliserConfig
from lss.text import command, say

# %% [markdown]
# The settings. `EPOCHS` is each model's budget (`None`: the device's whole-study
# default, `lss.whole_study.whole_study_config`); `LEVEL_EPOCHS` the level finder's.
# `REAL_DATA` and `KAGGLE_DATA` only appear in the commands printed at the end.

# %% tags=["parameters"]
DATA_DIR = "../data/phantom"  # Kaggle layout; the phantom is made here if absent
N_STUDIES = 200               # phantom studies needed (a larger phantom serves too)
DATA_SOURCE = "auto"          # Kaggle's attached data, else the phantom; or "kaggle"
WORK_DIR = "../runs/book"     # models and metrics that later chapters read
CACHE_DIR = "../.cache"       # preprocessed windows (lss.data.TensorCache)
SEED = 0
EPOCHS = None         # None: 10 at 1e-3 on a CPU, the paper's 20 at 1e-4 on a GPU
LEVEL_EPOCHS = None   # None: LevelLocaliserConfig's 100
N_RESAMPLES = 2000    # study bootstrap of the score gap
REAL_DATA = "/path/to/rsna-2024-lumbar-spine-degenerative-classification"
KAGGLE_DATA = "/kaggle/input/rsna-2024-lumbar-spine-degenerative-classification"

# %% [markdown]
# The data root and its label.

# %%
root = lss.data.sources.ensure_data(DATA_DIR, source=DATA_SOURCE, n_studies=N_STUDIES)
DATA_LABEL = lss.run.data_label(root)
tables = lss.data.load_tables(root)
print(DATA_LABEL)

# %% [markdown]
# ## The 25 targets, and where each is read
#
# `train.csv` has one column per target, `<condition>_<level>`: spinal canal stenosis,
# left and right neural foraminal narrowing, left and right subarticular stenosis, each
# at L1/L2 to L5/S1. Radiologists graded each on its own series type: the canal on the
# Sagittal T2/STIR series (the midline slice), the foramina on Sagittal T1 (the lateral
# slices, one side each), the subarticular recesses on Axial T2 (both sides on one
# slice). `train_label_coordinates.csv` places each grade on one slice of one series.
# `lss.data.build_target_index` stacks them, one row per (study, target) with a grade
# and a place; the competition's metric pools them into three groups.

# %%
index = lss.data.build_target_index(root)
index.groupby("condition", sort=False).agg(
    group=("group", "first"), series=("series_description", "first"),
    rows=("target", "size"), studies=("study_id", "nunique"),
    mirrored=("mirror", "mean")).round(2)

# %%
excluded = pd.DataFrame(index.attrs["excluded"], columns=["study_id", "target", "kind"])
Markdown(
    f"{len(index):,} rows from {index['study_id'].nunique()} studies "
    f"({DATA_LABEL}); {len(excluded):,} of the {index.attrs['n_candidates']:,} "
    f"(study, target) cells are left out, each with its reason in "
    f"`index.attrs['excluded']`"
    + (": " + ", ".join(f"{n} {k}" for k, n in excluded["kind"].value_counts().items())
       if len(excluded) else "") + ".")

# %% [markdown]
# ## One split, three models
#
# One model per condition group, each chapter 6's region-of-interest CNN-LSTM
# (`roi_level`: a 40 mm crop centred on the target's point, 64 pixels, the level's
# slice and its neighbours): one for the canal at every level, one for both foramina at
# every level, one for both recesses at every level (with a recess localiser, used
# below). All three share one split by study, so that no validation study is seen in
# training by any of them.
# `lss.whole_study.whole_study_config` gives the device's budget; `lss train --targets
# all` does the same from the command line.

# %%
config = lss.whole_study.whole_study_config(Config().replace(seed=SEED), epochs=EPOCHS)
RUN = Path(WORK_DIR) / "whole_study"
manifest = lss.whole_study.train_whole_study(root, RUN, config, cache_dir=CACHE_DIR,
                                             reuse=True)
run = lss.run.RunDir(RUN)
split = run.read_split()
val_ids = split.loc[split["split"] == "val", "study_id"].astype(int).tolist()
say(DATA_LABEL, f"{manifest['n_studies']} studies, {len(val_ids)} held out; each model "
    f"{config.train.epochs} epochs at learning rate {config.train.learning_rate:g}")

# %% [markdown]
# Each group's rows and its training history's best epoch, on the validation rows of
# the held-out studies (crops at the table's points):

# %%
histories = {g: lss.run.RunDir(RUN / g).read_history() for g in manifest["groups"]}
pd.DataFrame({g: {"targets": len(info["targets"]), "rows": info["rows"],
                  "best epoch": int(histories[g]["val_loss"].idxmin()) + 1,
                  "val_loss": histories[g]["val_loss"].min(),
                  "val_accuracy": histories[g].loc[histories[g]["val_loss"].idxmin(),
                                                   "val_accuracy"]}
              for g, info in manifest["groups"].items()}).T.round(3)

# %% [markdown]
# A new study has no table points, so the crops must be placed from the images: the
# level finder of {doc}`07_finding_the_level`, fitted on this run's training studies
# only, puts the five disc points on the sagittal series, and each target's crop is
# placed from them. The canal's crop is centred on the point; a foramen's on the point
# moved by the offset the training studies show, carried into the Sagittal T1 series;
# a recess's on the axial slice nearest that offset point, where the subarticular
# group's recess localiser (chapter 6's, trained with the model on both sides of the
# training studies) finds the recess.

# %%
finder_config = LevelLocaliserConfig(seed=SEED) if LEVEL_EPOCHS is None else \
    LevelLocaliserConfig(seed=SEED, epochs=LEVEL_EPOCHS)
fitted = lss.locate.fit_run_level_finder(run, root, config=finder_config,
                                         cache_dir=CACHE_DIR)
say(DATA_LABEL, f"level finder: {fitted.n_train} training studies, "
    f"{finder_config.epochs} epochs")

# %% [markdown]
# ## Left and right: one model for both recesses
#
# On an axial slice the patient's left is on the image's right (the radiological
# convention of {doc}`01_anatomy_and_data`). A left recess crop and a right one are
# mirror images of each other, so the right one is flipped left-right as it is read
# (the index's `mirror` column) and one model grades both, with each row keeping its
# own side's label. Nothing else is flipped: a random horizontal flip would put a left
# label on a right recess, so the whole-study models train without it. The foramina
# are read on separate lateral sagittal slices and are not mirrored. Here the middle
# slice of both L4/L5 crops of one held-out study, and the right one as the model sees
# it:

# %%
recesses = index[(index["group"] == "subarticular") & (index["level"] == "L4/L5")
                 & index["study_id"].isin(val_ids)]
both = recesses.groupby("study_id").filter(lambda g: len(g) == 2)
pair = both[both["study_id"] == both["study_id"].iloc[0]].sort_values("side")
sub_config = lss.run.RunDir(RUN / "subarticular").read_config()
cache = lss.data.TensorCache(root, sub_config.preprocess, cache_dir=CACHE_DIR)
crops = cache.load(pair)
middle = crops.shape[1] // 2
say(DATA_LABEL, f"study {pair['study_id'].iloc[0]}: sides {pair['side'].tolist()}, "
    f"mirrored {pair['mirror'].tolist()}")

# %% mystnb={"image": {"alt": "Three 64-pixel crops of one axial T2 slice at L4/L5 of a held-out phantom study: the left subarticular recess as stored, the right recess as stored, and the right recess flipped left-right, which looks like the left one."}}
fig, axes = lss.viz.page_subplots(1, 3, height=3.0)
panels = [(crops[0, middle], "axial", "left recess, as stored"),
          (crops[1, middle], "axial", "right recess, as stored"),
          (crops[1, middle, :, ::-1], "axial-flipped", "right recess, mirrored")]
for ax, (img, letters, title) in zip(axes, panels, strict=True):
    lss.viz.plot_slice(img, ax=ax, orientation=letters, title=title)
_ = fig.suptitle(f"L4/L5 crops of study {pair['study_id'].iloc[0]}, {DATA_LABEL}")

# %% [markdown]
# The letters at the edges name the patient's sides. After the flip, the right recess
# sits where a left recess sits in the first panel, and its label still says *right*:
# the submission's row for the right side gets that crop's grade.
#
# ## The submission
#
# For every study of `test_series_descriptions.csv`, the competition wants 25 rows,
# `row_id = <study_id>_<condition>_<level>`, with the probabilities of `normal_mild`,
# `moderate` and `severe`. `lss.study_predict.predict_whole_study` writes them from the
# images alone: it finds the levels, places each crop, grades it with its group's model
# and fills any row it cannot grade from the training prior, with a line in the report.
# `load_grader` loads the run once, for study after study.

# %%
grader = lss.study_predict.load_grader(RUN)
submission, report = lss.study_predict.predict_whole_study(grader, root)
test_ids = sorted(tables.test_series["study_id"].unique().tolist())
lss.competition.check_submission(submission, test_ids)
submission.head(6).round(3)

# %%
sums = submission[list(lss.competition.PROBA_COLUMNS)].sum(axis=1)
Markdown(
    f"{len(submission)} rows for {len(test_ids)} test studies ({DATA_LABEL}); every "
    f"row sums to 1 within {abs(sums - 1).max():.1e}; "
    f"{len(report)} rows came from the training prior.")

# %% [markdown]
# A study that lacks a series still gets its 25 rows: those the missing series would
# grade come from the training prior, and the report says why. Here one test study
# copied without its Sagittal T1 series (the foramina's):

# %%
study = test_ids[0]
gone = tables.test_series.query("study_id == @study and "
                                "series_description == 'Sagittal T1'")["series_id"]
partial = Path(WORK_DIR) / "partial_study" / str(study)
shutil.rmtree(partial.parent, ignore_errors=True)
shutil.copytree(lss.data.series_dir(root, study, gone.iloc[0], split="test").parent,
                partial, ignore=shutil.ignore_patterns(*map(str, gone)))
rows, missing = lss.study_predict.predict_whole_study(grader, study_dir=partial)
missing.groupby("reason").size().rename("rows").to_frame()

# %%
Markdown(f"Study {study} without its Sagittal T1 series: {len(rows)} rows written, "
         f"{len(missing)} of them from the training prior ({DATA_LABEL}).")

# %% [markdown]
# ## The metric, and why its three constants differ
#
# The competition's score (`lss.competition.score`, checked in the test suite against
# an independent implementation) pools the rows into three groups, across levels and
# sides: spinal canal, foraminal, subarticular. Each group is a log loss in which a
# row weighs 1, 2 or 4 by its true grade (Normal/Mild, Moderate, Severe). A fourth
# term asks, per study, whether any spinal level is Severe: its prediction is the
# largest `severe` over the study's spinal rows, its weight that of the study's worst
# spinal grade. The score is the mean of the four; lower is better.
#
# Three constant answers give every study the same rows, and they are not the same
# answer. *Uniform* (1/3 each) scores $\ln 3 \approx 1.099$ on every group, whatever
# the data. The *training prior* (each target's grade shares $p_k$) is the best
# constant for a plain log loss. But with weights $w = (1, 2, 4)$ the constant $q$
# scores $-\sum_k w_k p_k \ln q_k / \sum_k w_k p_k$, which is smallest at
# $q_k \propto w_k p_k$: the *weighted prior*, which moves probability towards the
# rarer, heavier grades. For one target of this run's training studies:

# %%
train_ids = split.loc[split["split"] == "train", "study_id"]
in_train = tables.train["study_id"].isin(train_ids)
target = "spinal_canal_stenosis_l4_l5"
pd.DataFrame({kind: lss.submission.training_prior(tables.train[in_train], kind=kind)
              .loc[target] for kind in lss.competition.CONSTANT_KINDS}).T.round(3)

# %% [markdown]
# ## The held-out studies, graded as new studies
#
# `lss.whole_study.evaluate_whole_study` (`lss evaluate --run RUN` on the command
# line) grades the validation studies twice: as new studies (levels found, crops
# placed, `levels found`) and with the crops at the coordinate table's points (the
# oracle, `table's points`), and puts both beside the three constants.

# %%
scores, gap, places = lss.whole_study.evaluate_whole_study(
    RUN, root, cache_dir=CACHE_DIR, n_resamples=N_RESAMPLES, seed=SEED)
scores.astype(float).round(3)

# %%
terms = ["spinal", "foraminal", "subarticular", "any_severe_spinal"]
found, best = scores.loc["levels found"], scores.loc["weighted_prior"]
oracle = scores.loc["table's points"]
constants = scores.loc[list(lss.competition.CONSTANT_KINDS), terms + ["score"]]
below = [t for t in terms if found[t] < best[t]]
Markdown(
    f"On {len(val_ids)} held-out studies ({DATA_LABEL}), graded as new studies, the "
    f"score is {found['score']:.3f} against {best['score']:.3f} for the weighted "
    f"prior and {oracle['score']:.3f} with the table's points. It is below the "
    f"weighted prior on "
    + ("all four terms" if len(below) == 4 else
       f"{len(below)} of the four terms ({', '.join(below) or 'none'})")
    + ". The best constant on each term is "
    + ", ".join(f"{t}: {constants[t].idxmin()}" for t in terms) + ".")

# %% [markdown]
# The weighted prior is the constant to beat on the three group terms; on the
# any-severe term, whose prediction is a maximum over five rows, none of the three is
# built to be best. Is the gap to it more than the luck of which studies were held
# out? A bootstrap over studies (each resample draws the held-out studies again, with
# all 25 of their rows) gives an interval for each term's difference:

# %%
gap.astype(float).round(3)

# %%
clear = [t for t in gap.index if gap.loc[t, "high"] < 0]
Markdown(
    f"Levels found minus the weighted prior ({N_RESAMPLES} study resamples, "
    f"{gap.attrs['level']:.0%} interval; {DATA_LABEL}): the whole interval lies below "
    f"zero for " + (", ".join(clear) if clear else "no term") + "; for the score, "
    f"{gap.loc['score', 'gap']:+.3f} [{gap.loc['score', 'low']:+.3f}, "
    f"{gap.loc['score', 'high']:+.3f}].")

# %% [markdown]
# Where the found route loses against the table's points, the crop was placed
# elsewhere. How far each placed crop centre lies from the table's point, in
# millimetres in the patient, and how often it is on the table's slice:

# %%
place_table = lss.locate.summarise_place_errors(places)
place_table.round(3)

# %%
worst = (scores.loc["levels found", ["spinal", "foraminal", "subarticular"]]
         - oracle[["spinal", "foraminal", "subarticular"]]).idxmax()
Markdown(
    f"The largest loss against the table's points is in the {worst} group "
    f"({oracle[worst]:.3f} there, {found[worst]:.3f} with the crops placed; "
    f"{DATA_LABEL}), whose crops lie a median "
    f"{place_table.loc[worst, 'median_mm']:.2f} mm from the table's point "
    f"({place_table.loc[worst, 'same_slice']:.0%} on its slice). On real scans the "
    "levels and offsets vary more than on the phantom; the same call measures by how "
    "much.")

# %% [markdown]
# :::{caution}
# These are phantom numbers. The phantom's stenosis is drawn from its grade, cleanly,
# so a model can learn it in minutes; on the RSNA scans the top of the competition's
# private leaderboard scored about 0.37 with far larger models. Compare routes and
# baselines here, not the phantom's score with the leaderboard's.
# :::
#
# ## What the public top solutions do
#
# The strong solutions of the competition share one plan: find the points first, crop
# per level, grade the crops with a loss weighted 1/2/4 as the metric is. They differ
# in how. In our words, from their public code:
#
# - **brendanartley/RSNA-2024-Competition** (2nd place) works on the sagittal series
#   only: a 2D network regresses the ten points (canal and foramina) on the middle
#   slices, crops are sized by the spacing of the levels, and a per-slice encoder with
#   an LSTM and attention grades them; pseudo-labels and corrected external
#   coordinates add data.
# - **yu4u/kaggle-rsna2024-4th** (4th) classifies the level of every axial slice with a
#   CNN and a bidirectional LSTM, finds 2D keypoints, cuts 224-pixel crops of five
#   slices with a similarity transform, grades them with a 2.5D network with
#   attention, swaps left and right labels when it flips an image, and stacks the
#   models with gradient boosting.
# - **hengck23/solution-rsna-2024-lumbar-spine** (7th) is one stage: a 2D encoder and a
#   3D U-Net predict heatmaps of the points, and the grade is pooled under each
#   heatmap.
# - **lhwcv/solution-rsna-2024-lumbar-spine** (the same 7th-place team) finds 2D and 3D
#   keypoints on sagittal and axial series, classifies the axial level, and fuses the
#   views in one model.
# - **adamnarai/kaggle-rsna-2024** (9th) predicts heatmaps per series type, projects
#   the sagittal points into the axial series as {doc}`07_finding_the_level` does,
#   grades 50 mm crops of five slices with a 2.5D network and a GRU, mirrors the right
#   subarticular side into the left's place as this chapter does, and ensembles six
#   models over five folds. Its repository also holds the competition's scorer.
#
# What this chapter keeps of them: points before grades, a crop per level, one model
# per condition group with mirrored recesses, the loss's weights. What it leaves out:
# larger pretrained backbones, ensembles, pseudo-labels and tuned crop sizes, which is
# where most of the distance between this model and the leaderboard lies.
#
# ## On the RSNA data, and on Kaggle
#
# The same steps from the command line, on the downloaded competition data
# (`lss.data.sources.download_kaggle`, about 35 GB): train the three models on one
# split, fit the level finder on its training studies, score the held-out studies both
# ways, and write the submission of the test studies:

# %%
RUN_DIR = "runs/whole_study"
for line in (f"lss train --targets all --data {REAL_DATA} --run {RUN_DIR}",
             f"lss levels --run {RUN_DIR} --data {REAL_DATA}",
             f"lss evaluate --run {RUN_DIR}",
             f"lss predict --run {RUN_DIR} --data {REAL_DATA} --out submission.csv"):
    print(command(line))

# %% [markdown]
# A Kaggle submission runs in a Kaggle notebook, on the hidden test studies, without
# internet. Upload the trained run folder as a Kaggle dataset (with the
# [Kaggle CLI](https://github.com/Kaggle/kaggle-api): `kaggle datasets init`, name it
# in `dataset-metadata.json`, `kaggle datasets create`), attach it and the competition
# data to the notebook, install `lss` there and write `submission.csv` to the working
# folder. Without internet, install it from a second dataset: `make kaggle-kit` writes
# the `lss` wheel and the pure-Python wheels it needs into `_build/kaggle-kit`; upload
# that folder and run `pip install --no-index --find-links /kaggle/input/<your-kit>
# lss` in the notebook. The run reads its training tables from the attached
# competition data when the folder it was trained on is not there:

# %%
KAGGLE_RUN = "/kaggle/input/<your-run-dataset>"
for line in (f"kaggle datasets init -p {RUN_DIR}",
             f"kaggle datasets create -p {RUN_DIR} --dir-mode zip",
             f"lss predict --run {KAGGLE_RUN} --data {KAGGLE_DATA} "
             "--out /kaggle/working/submission.csv"):
    print(command(line))

# %% [markdown]
# ## Summary
#
# In this chapter we:
#
# - listed the 25 targets, the series each is read on and the rows the index keeps;
# - trained one region-of-interest model per condition group on one split by study,
#   and a level finder on its training studies;
# - graded both recesses with one model by mirroring the right one, the label keeping
#   its side;
# - wrote the competition's submission from the images alone, a missing series
#   answered from the training prior and reported;
# - scored the held-out studies the competition's way, with levels found and with the
#   table's points, beside three constants, and bootstrapped the gap by study;
# - read what the public top solutions do, and the commands for the RSNA data and a
#   Kaggle submission.
#
# ## Exercises
#
# Each exercise has a solution cell (folded on the website; empty in the student
# notebooks, for your code) and a check cell that tests the answer.
#
# **Exercise 1.** Compute the weighted prior of `target` by hand from the training
# studies' grades: count each grade, weight the counts 1, 2 and 4, divide by their
# sum. Call the three numbers `by_hand` (Normal/Mild, Moderate, Severe).

# %% tags=["solution", "hide-input"]
grades = tables.train.loc[in_train, target].dropna()
counts = np.array([(grades == g).sum() for g in ("Normal/Mild", "Moderate", "Severe")])
by_hand = counts * np.array([1, 2, 4]) / (counts * np.array([1, 2, 4])).sum()
say(DATA_LABEL, f"{target}: {by_hand.round(3).tolist()}")

# %% tags=["check"]
expected = lss.submission.training_prior(tables.train[in_train]).loc[target]
assert np.allclose(by_hand, expected.to_numpy(float))
print("Exercise 1: correct")

# %% [markdown]
# <details><summary>Solution, explained</summary>
#
# The constant $q$ that minimises $-\sum_k w_k n_k \ln q_k$ under $\sum_k q_k = 1$ is
# $q_k = w_k n_k / \sum_j w_j n_j$ (a Lagrange multiplier, or Gibbs' inequality). It
# gives Severe four times the share its count alone would: a Severe row costs four
# times as much when it is missed.
# </details>
#
# **Exercise 2.** The any-severe-spinal term by hand. For the weighted prior's answer
# to the held-out studies (`lss.competition.constant_submission`), take per study the
# largest `severe` over its five spinal rows as the prediction, whether any spinal
# level is Severe as the label, and the weight 1, 2 or 4 of its worst spinal grade;
# compute the weighted binary log loss. Call it `any_severe`.

# %% tags=["solution", "hide-input"]
answer = lss.competition.constant_submission("weighted_prior", tables.train[in_train],
                                             val_ids)
spinal_cols = [c for c in tables.train.columns if c.startswith("spinal_canal")]
held_out = tables.train.set_index("study_id").loc[val_ids, spinal_cols]
worst = held_out.apply(lambda r: r.map(lss.config.LABEL_MAP).max(), axis=1)
rows = answer[answer["row_id"].str.contains("spinal_canal")]
pred = rows.groupby(rows["row_id"].str.split("_").str[0].astype(int))["severe"].max()
pred = pred.loc[worst.index].clip(1e-15, 1 - 1e-15)
label, weight = (worst == 2).astype(float), np.array([1, 2, 4])[worst.astype(int)]
any_severe = -np.sum(weight * (label * np.log(pred) + (1 - label) * np.log(1 - pred))) \
    / weight.sum()
say(DATA_LABEL, f"any-severe-spinal term of the weighted prior: {any_severe:.4f}")

# %% tags=["check"]
solution = lss.competition.solution_frame(
    tables.train[tables.train["study_id"].isin(val_ids)])
reference = lss.competition.score(solution, answer)["any_severe_spinal"]
assert abs(any_severe - reference) < 1e-6, (any_severe, reference)
print("Exercise 2: correct")

# %% [markdown]
# <details><summary>Solution, explained</summary>
#
# The term is a binary question per study, so the five spinal rows become one
# prediction, their largest `severe`. A constant answer gives every study the same
# prediction, so it cannot tell a study with a Severe level from one without; a model
# that grades each level can. (Studies without a spinal grade are not scored; on the
# phantom every study has one.)
# </details>
#
# ## What's next?
#
# {doc}`benchmarks` times grading a whole study (DICOM files to 25 rows) beside the
# other stages, and {doc}`reproducing` gives the commands for the real data.
#
# ## Resources and references
#
# - Dhopavkar et al., *Deep Learning for Detection and Severity Classification of
#   Lumbar Spinal Stenosis in MRI Scans*: the CNN-LSTM each group's model follows.
# - RSNA 2024 Lumbar Spine Degenerative Classification (Kaggle):
#   <https://www.kaggle.com/c/rsna-2024-lumbar-spine-degenerative-classification>, its
#   data, submission format and metric.
# - Public solutions on GitHub: brendanartley/RSNA-2024-Competition,
#   yu4u/kaggle-rsna2024-4th, hengck23/solution-rsna-2024-lumbar-spine,
#   lhwcv/solution-rsna-2024-lumbar-spine, adamnarai/kaggle-rsna-2024 (with the
#   competition's scorer, `rsna2024/utils/rsna_lumbar_metric.py`).
