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
# # Anatomy and data: what the model is asked to grade
#
# The model of this book grades one thing: **left subarticular stenosis at the L4/L5
# disc** on axial T2 MRI, as *Normal/Mild*, *Moderate* or *Severe*. Before any code
# touches a pixel, this chapter shows what that is and what the data look like.
#
# ---
#
# ## Overview
#
# 1. Lumbar spinal stenosis and the subarticular recess
# 2. The dataset: files and tables
# 3. The target and its class distribution
# 4. One row per study: the index
# 5. The labelled slices
# 6. Left and right: the radiological convention
#
# ## Prerequisites
#
# | Concepts | Importance | Notes |
# | --- | --- | --- |
# | [pandas DataFrames][pandas] | Necessary | Selecting, counting and merging rows |
# | [NumPy arrays][numpy] | Necessary | Images are 2-D arrays |
# | [Matplotlib][mpl] | Helpful | The figures come from `lss.viz` |
# | Medical imaging | Not needed | This chapter explains what you need |
#
# [pandas]: https://pandas.pydata.org/docs/user_guide/10min.html
# [numpy]: https://numpy.org/doc/stable/user/absolute_beginners.html
# [mpl]: https://matplotlib.org/stable/tutorials/pyplot.html
#
# - **Time to learn**: 30 minutes.
# - **System requirements**: a CPU; about 1 minute to run once the data exist (the
#   first run makes a 24-study synthetic phantom, a few seconds and about 0.3 GB).
#   No GPU.

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
import dataclasses
import os
from pathlib import Path

import numpy as np
import pydicom
from IPython.display import Markdown

import lss.data
import lss.data.sources
import lss.data.survey
import lss.phantom
import lss.run
import lss.viz
from lss.config import PAPER_RESULTS, REAL_MAJORITY_SHARE, SEVERITIES, column_name
from lss.text import say

# %% [markdown]
# The settings. `DATA_DIR` is a folder in the Kaggle layout: by default the synthetic
# phantom, made there if it is absent. `REAL_LABELS` may point at the real RSNA 2024
# label tables (CSV files only, no images); where they are found, this chapter prints
# the real class distribution beside the phantom's.

# %% tags=["parameters"]
DATA_DIR = "../data/phantom-small"  # Kaggle layout; the phantom is made here if absent
N_STUDIES = 24                # phantom studies needed (a larger phantom serves too)
DATA_SOURCE = "auto"          # Kaggle's attached data, else the phantom; or "kaggle"
WORK_DIR = "../runs/book"     # models and metrics that later chapters read
CACHE_DIR = "../.cache"       # preprocessed windows (lss.data.TensorCache)
SEED = 0
CONDITION = "left_subarticular_stenosis"
LEVEL = "L4/L5"
REAL_LABELS = os.environ.get("LSS_RSNA_LABELS", "../../shared/rsna2024-labels")

# %% [markdown]
# `ensure_data` returns the data root, and `data_label` the phrase that names it. Every
# number and figure below carries that phrase.

# %%
root = lss.data.sources.ensure_data(DATA_DIR, source=DATA_SOURCE, n_studies=N_STUDIES)
DATA_LABEL = lss.run.data_label(root)
TARGET = column_name(CONDITION, LEVEL)
say(DATA_LABEL, TARGET)

# %% [markdown]
# The real label tables are optional. If `REAL_LABELS` names a folder holding
# `train.csv`, they are read for facts about the real data; otherwise `real` stays
# `None` and the chapter says so where it would use them.

# %%
real_root = (
    Path(REAL_LABELS)
    if REAL_LABELS and (Path(REAL_LABELS) / "train.csv").is_file()
    else None
)
real = lss.data.load_tables(real_root) if real_root else None
REAL_DATA_LABEL = "RSNA 2024 real label tables (no images)"
print(f"real label tables: {'found' if real_root else 'not found'}")

# %% [markdown]
# ## Lumbar spinal stenosis and the subarticular recess
#
# The lumbar spine has five vertebrae, L1 to L5, above the sacrum (S1). Between two
# vertebrae lies an intervertebral disc, named after both: L4/L5 is the disc between the
# fourth and fifth lumbar vertebrae. Behind the discs runs the **spinal canal**, which
# holds the **thecal sac**: a tube of dura filled with cerebrospinal fluid (CSF), in
# which the nerve roots of the cauda equina float.
#
# **Stenosis** means narrowing. With age, discs bulge backwards, the facet joints grow
# (hypertrophy) and the **ligamentum flavum**, which lines the back of the canal,
# thickens. Each takes room from the nerves. Radiologists grade the narrowing in three
# places:
#
# - the **central canal** (the thecal sac itself);
# - the **subarticular** or **lateral recess**: the front corner of the canal on each
#   side, between the back of the disc in front and the superior articular process of
#   the facet joint behind and beside it. The root that leaves one level below runs
#   here; at L4/L5 that is the L5 root;
# - the **neural foramen**, the exit hole on each side, seen best on sagittal images.
#
# The RSNA 2024 challenge labels each of these at each of the five disc levels, on each
# side where there is a side. Our target is one of those 25 labels.
#
# On an **axial** image (a cross-section, as if looking up from the feet) the recess is
# a small corner, a few millimetres deep. The figure below names the structures on a
# slice of the synthetic phantom, which this book uses in place of real scans. It is
# drawn by `lss.phantom`: no patient is shown.

# %% mystnb={"image": {"alt": "A synthetic phantom's axial T2 slice, whole above and zoomed on the spinal canal below, its structures named by arrows from labels beside each image. The whole slice names the disc, thecal sac, psoas, multifidus, erector spinae and subcutaneous fat, with a dashed box around the canal; the zoom, of that box, names the disc, thecal sac, nerve rootlets, both subarticular recesses, both facet joints and the ligamentum flavum."}}
anatomy = lss.phantom.labelled_axial_slice(level=LEVEL, seed=SEED, shape=(576, 576),
                                         pixel_spacing=0.4)
_ = lss.viz.plot_axial_anatomy(
    anatomy, data_label=f"synthetic phantom slice (seed {SEED})")

# %% [markdown]
# Above, the whole slice: the disc at the front (top), the psoas muscles beside it,
# the paraspinal muscles (multifidus, erector spinae) behind, and subcutaneous fat.
# Below, the dashed box enlarged: the bright thecal sac with its dark rootlets, and
# at its front corners the two subarticular recesses, each holding a dark nerve root in
# bright fat, walled in behind by the facet joints and the ligamentum flavum.
#
# Grading is about how much room is left in that corner. On T2, fat and CSF are bright
# and ligament, bone cortex and nerve are dark, so a recess that closes turns dark. The
# radiological criteria, paraphrased:
#
# - **Normal/Mild**: the corner is preserved; the root sits in fat or CSF.
# - **Moderate**: the recess narrows; the fat around the root is gone and the root is
#   touched or displaced, not crushed.
# - **Severe**: the recess is obliterated by facet, ligament and disc; the root is
#   flattened.
#
# The phantom renders stenosis in the same way. Here is the same phantom patient three
# times, with only the patient's *left* recess changed.

# %% mystnb={"image": {"alt": "Three panels side by side, each the same phantom slice zoomed on the spinal canal, with the patient's left subarticular recess, on the image's right, ringed in red: graded Normal/Mild, Moderate and Severe from left to right. Letters at the edges mark the patient's right, left, front and back."}}
grades = {g: lss.phantom.render_axial(level=LEVEL, left=lss.phantom.GRADE_LATENT[g][0],
                                      seed=SEED, shape=(576, 576), pixel_spacing=0.4)
          for g in SEVERITIES}
fig, axes = lss.viz.page_subplots(1, 3, height=3.0)
for ax, (grade, s) in zip(axes, grades.items(), strict=True):
    canal = np.mean([s.left_recess, s.right_recess], axis=0)
    lss.viz.plot_slice(s.image, point=s.left_recess, zoom=60, centre=canal, ax=ax,
                         orientation="axial", title=f"left recess: {grade}")
_ = fig.suptitle(
    f"synthetic phantom slice (seed {SEED}), severity typical of each grade",
    fontsize=9)

# %% [markdown]
# Compare the ringed recess, on the **image's right**, across the panels: it is the
# patient's left (more on that in the last section). From left to right its bright fat
# disappears and the corner closes around the dark root. The recess on the image's left,
# the patient's right, does not change.
#
# ```{note}
# The phantom draws each grade from a spread of severities, and neighbouring grades
# overlap, as radiologists' grades do. The panels above use the typical severity of each
# grade; real studies, and most phantom studies, are less clear-cut.
# ```

# %% [markdown]
# ## The dataset: files and tables
#
# The RSNA 2024 Lumbar Spine Degenerative Classification data set, as downloaded from
# Kaggle, is a folder with three label tables and one folder of DICOM files per study
# and series. The phantom writes exactly that layout.

# %%
print(DATA_LABEL)
say(sorted(p.name for p in root.iterdir()))

# %% [markdown]
# `train_images/<study_id>/<series_id>/<instance_number>.dcm` holds one DICOM file per
# slice. Here is the first study: a few series, each a folder of numbered files.

# %%
study_dir = sorted((root / "train_images").iterdir())[0]
for series in sorted(study_dir.iterdir()):
    files = sorted(series.glob("*.dcm"), key=lambda p: int(p.stem))
    print(f"{study_dir.name}/{series.name}/  {len(files)} files: "
          f"{files[0].name} .. {files[-1].name}")

# %% [markdown]
# `lss.data.load_tables` reads the three tables and checks them: the columns, the
# spelling of every value, and that ids are integers. A misspelled column or value
# raises `lss.data.DataError` naming the file and the row.

# %%
tables = lss.data.load_tables(root)
print(DATA_LABEL)
say(f"train.csv {tables.train.shape}, "
      f"train_series_descriptions.csv {tables.series.shape}, "
      f"train_label_coordinates.csv {tables.coordinates.shape}")

# %% [markdown]
# **`train.csv`** has one row per study and 25 label columns: five conditions at five
# levels. Each cell is `Normal/Mild`, `Moderate`, `Severe` or empty.

# %%
tables.train[["study_id", TARGET, "spinal_canal_stenosis_l4_l5",
              "right_subarticular_stenosis_l4_l5"]].head()

# %% [markdown]
# **`train_series_descriptions.csv`** says what each series is. Subarticular stenosis is
# labelled on the `Axial T2` series; the sagittal series show the foramina and the
# canal from the side.

# %%
tables.series["series_description"].value_counts()

# %% [markdown]
# **`train_label_coordinates.csv`** says where each label was placed: in which series,
# on which slice (`instance_number`) and at which pixel (`x` is the column, `y` the
# row, from the top-left corner).

# %%
c = tables.coordinates
c[(c["condition"] == "Left Subarticular Stenosis") & (c["level"] == LEVEL)].head()

# %% [markdown]
# ## The target and its class distribution
#
# Our target is one column of `train.csv`. How its labels are distributed decides what
# a trivial classifier scores, and so what a model's accuracy means.

# %%
print(DATA_LABEL)
tables.train[TARGET].value_counts(dropna=False)

# %% [markdown]
# The real label tables, where present, are counted in the same way; both go into one
# figure, each panel labelled with its data.

# %% mystnb={"image": {"alt": "Bar chart of the number of studies of each grade of the target, Normal/Mild, Moderate and Severe, in the chapter's data, each bar labelled with its count and percentage; where the real label tables are found, a second panel on the right shows the same for the real labels."}}
n_panels = 2 if real is not None else 1
fig, axes = lss.viz.page_subplots(1, n_panels, height=3.4, squeeze=False)
lss.viz.plot_class_distribution(tables.train[TARGET].dropna(), ax=axes[0, 0],
                                  title=f"{TARGET}", data_label=DATA_LABEL)
if real is not None:
    lss.viz.plot_class_distribution(real.train[TARGET].dropna(), ax=axes[0, 1],
                                      title=f"{TARGET}", data_label=REAL_DATA_LABEL)

# %% [markdown]
# The phantom samples its labels in proportions close to the real ones, but it is a
# sample of 200: its percentages are not the real ones. What matters is the largest
# class, Normal/Mild. A "model" that answers Normal/Mild for every study is right as
# often as that class occurs.

# %%
phantom_majority = (tables.train[TARGET] == "Normal/Mild").mean()
say(f"{DATA_LABEL}: always Normal/Mild scores {100 * phantom_majority:.2f} %")
if real is not None:
    n_real = int(real.train[TARGET].notna().sum())
    real_majority = (real.train[TARGET].dropna() == "Normal/Mild").mean()
    say(f"{REAL_DATA_LABEL}: always Normal/Mild scores {100 * real_majority:.2f} % "
          f"of {n_real:,} labelled studies")
else:
    n_real, real_majority = 1972, REAL_MAJORITY_SHARE
    say(f"Real label tables not found here (set LSS_RSNA_LABELS to read them); "
          f"lss.config.REAL_MAJORITY_SHARE records {100 * real_majority:.2f} % for the "
          f"real labels (887 of 1,972, from the competition's train.csv).")
say(f"The paper (its figure, real data): {100 * PAPER_RESULTS['val_accuracy']:.1f} % "
      f"validation accuracy, "
      f"{100 * (PAPER_RESULTS['val_accuracy'] - real_majority):.1f} "
      f"points above always Normal/Mild on the real labels.")
n_val = round(0.2 * n_real)
say(f"Standard error of an accuracy near 50 % measured on a 20 % split ({n_val} real "
      f"studies): {100 * np.sqrt(0.25 / n_val):.1f} points.")

# %% [markdown]
# ```{caution}
# This is why the paper's **51 % validation accuracy** is weak evidence that its model
# learned anything about the recess: answering *Normal/Mild* every time already scores
# about 45 % on the real labels, and an accuracy measured on a 20 % validation split of
# about 400 studies is uncertain by about 2.5 points (one standard error, printed
# above), so the gap is a little over two standard errors. Accuracy alone cannot tell a
# model that reads the image from one that leans on the majority class. Later chapters
# therefore always print the majority baseline beside the model, and look at the
# confusion matrix.
# ```

# %% [markdown]
# ## One row per study: the index
#
# To train, each labelled study needs one series and one slice. `lss.data.build_index`
# decides, with a rule it applies the same way every time:
#
# 1. If the coordinate table has a row for this study, condition and level, that row
#    names the series and the slice: they are used. This settles the studies with
#    **several Axial T2 series**, which would otherwise be a guess.
# 2. A labelled study **without a coordinate row** uses its only Axial T2 series,
#    centred on the middle slice (`series_rule == "only series"`).
# 3. Without a coordinate row and with several or no Axial T2 series, or with an empty
#    label, the study is **excluded and reported**, never silently dropped.

# %%
index = lss.data.build_index(tables, CONDITION, LEVEL)
print(f"{DATA_LABEL}: {len(index)} studies indexed")
index.head()

# %% [markdown]
# `label` is the class index (0 Normal/Mild, 1 Moderate, 2 Severe); `n_series` counts
# the study's Axial T2 series. Here is how many studies took each branch of the rule,
# and the report of excluded studies, which is empty when nothing was left out.

# %%
print(DATA_LABEL)
say(index["series_rule"].value_counts().to_dict(), "Axial T2 series per study: "
    + str(index["n_series"].value_counts().sort_index().to_dict()))
excluded = index.attrs["excluded"]
print(f"excluded: {excluded}")
print(f"{len(index)} indexed + {len(excluded)} excluded = "
      f"{index.attrs['n_studies']} studies")

# %%
rules = index["series_rule"].value_counts().to_dict()
Markdown(f"{DATA_LABEL}: "
         + "; ".join([f"{n} {'study' if n == 1 else 'studies'} took the '{rule}' branch"
                  for rule, n in rules.items()])
         + f", and {len(excluded) or 'no'} "
         + ("study was" if len(excluded) == 1 else "studies were") + " excluded. "
         "To see every branch at work, take the coordinate rows away from two studies, "
         "one with a single Axial T2 series and one with several, and index again.")

# %%
one = index.loc[index["n_series"] == 1, "study_id"].iloc[0]
several = index.loc[index["n_series"] > 1, "study_id"].iloc[0]
no_coords = tables.coordinates[~tables.coordinates["study_id"].isin([one, several])]
what_if = lss.data.build_index(dataclasses.replace(tables, coordinates=no_coords),
                               CONDITION, LEVEL)
what_if[what_if["study_id"] == one]

# %% [markdown]
# The study with one Axial T2 series stays, with no slice and no point: its window will
# be centred on the middle of the series. The other one is excluded, with its reason:

# %%
what_if.attrs["excluded"]

# %% [markdown]
# On the real label tables (without images, hence `check_images=False`) all three
# branches occur.

# %%
if real is not None:
    real_index = lss.data.build_index(real, CONDITION, LEVEL, check_images=False)
    say(f"{REAL_DATA_LABEL}: {len(real_index):,} studies indexed, "
          f"{real_index['series_rule'].value_counts().to_dict()}, "
          f"{(real_index['n_series'] > 1).sum()} with several Axial T2 series")
    for e in real_index.attrs["excluded"]:
        say("excluded:", e, sep=" ")
else:
    print("Real label tables not found here: nothing to show for the real index.")

# %% [markdown]
# ## The labelled slices
#
# Now the images. For one study of each class, the figure shows the labelled slice with
# the labelled point, and below it a 5 cm square around the point. The slices are read
# in the order of space, and the point is drawn at the pixel the table gives.

# %% mystnb={"image": {"alt": "One column per grade, one study each: above, the study's labelled axial slice with the labelled point ringed in red and letters marking the patient's sides; below, a zoom of five centimetres around that point. Titles give the study, its grade, the slice's instance number and size, and the point's pixel coordinates."}}
examples = index.groupby("label").head(1).sort_values("label")
slices = lss.data.survey.labelled_slices(root, examples)
_ = lss.viz.plot_labelled_examples(slices, examples, data_label=DATA_LABEL)

# %% [markdown]
# The point sits in the front corner of the canal on the **image's right**. The recess
# is small: a few pixels across in a slice of several hundred. That is worth
# remembering when the paper's model resizes the whole slice to 128 x 128 pixels
# (chapter 2): the recess shrinks to a pixel or two.

# %% [markdown]
# ## Left and right: the radiological convention
#
# Where is the patient's left in the image? The answer is in the DICOM header, in
# `ImageOrientationPatient`: the directions, in the patient's coordinate system, of the
# image's rows and columns. DICOM's patient axes point to the patient's **L**eft, to
# the **P**osterior (back) and to the head.

# %%
first_file = sorted((root / "train_images" / str(examples["study_id"].iloc[0]) /
                     str(examples["series_id"].iloc[0])).glob("*.dcm"))[0]
ds = pydicom.dcmread(first_file, stop_before_pixels=True)
say(DATA_LABEL, first_file.name)
print("ImageOrientationPatient:",
      [round(float(v), 3) for v in ds.ImageOrientationPatient])

# %% [markdown]
# The first three numbers are the direction in which column numbers grow: about
# (1, 0, 0), toward the patient's left. The last three are the direction of growing row
# numbers: about (0, 1, 0), toward the back (the small tilt follows the disc). So
# **the patient's left is on the image's right**, and the front is at the top. This is
# the radiological convention: you look at the patient from the feet.
#
# The coordinates agree: for a study labelled on both sides, the left label's `x`
# should be larger than the right label's.

# %%
pairs = lss.data.survey.subarticular_pairs(tables.coordinates)
say(f"{DATA_LABEL}: left x > right x in "
      f"{100 * pairs['left_is_right_of_image'].mean():.1f} % "
      f"of {len(pairs)} left/right pairs")

# %% [markdown]
# On the real coordinate table, where present, the same count, split by whether both
# labels were placed on the same series:

# %% tags=["figure-optional"] mystnb={"image": {"alt": "Scatter plot of the x coordinate, in pixels, of the left-side label (vertical axis) against that of the right-side label (horizontal axis), one mark per real study labelled on both sides: circles where both labels lie on the same series, crosses where they lie on different series, and a dashed diagonal where the two are equal."}}
if real is not None:
    real_pairs = lss.data.survey.subarticular_pairs(real.coordinates)
    _ = lss.viz.plot_left_right_x(real_pairs, data_label=REAL_DATA_LABEL)
    print(REAL_DATA_LABEL)
    print(real_pairs.groupby("same_series")["left_is_right_of_image"]
          .agg(share_left_x_greater="mean", pairs="size").round(4))
else:
    say("Real label tables not found here. Their README reports that 98.7 % of the "
          "real left/right subarticular pairs have left x > right x.")

# %% [markdown]
# In the real table, where both labels sit on one series, the left label is to the
# right of the right label in practically every pair; nearly all the exceptions are
# pairs labelled on two different series, whose fields of view differ, so their `x`
# values do not compare. The convention holds.
#
# ### Why a horizontal flip changes the label's meaning
#
# The paper augments its training images with random horizontal flips. For most
# pictures a mirror image is as good as the original, but not here: the label names a
# side of the *patient*. Flip the slice and the pixels of the left recess move to the
# image's left, which in the convention is where the patient's *right* is. The label
# still says "left".

# %% mystnb={"image": {"alt": "Two panels of the same region around the middle of a labelled slice: left, as stored, with the labelled point ringed in red and the letters R on the image's left and L on its right; right, the slice flipped horizontally, the ring now on the other side of the canal and the letters swapped, under the same left-sided label. A dashed vertical line in both marks the middle column about which the flip mirrors."}}
img, point, header = lss.data.survey.read_labelled_slice(root, examples.iloc[-1])
_ = lss.viz.plot_flip(
    img, point, label="Left subarticular stenosis", zoom=30 / header.pixel_spacing[1],
    data_label=f"{DATA_LABEL}, study {examples['study_id'].iloc[-1]}")

# %% [markdown]
# Both panels show the same 6 cm around the middle column of the image (dashed), about
# which the flip mirrors. After the flip the point moved from column `x` to column
# `width - 1 - x`, to the other side of the canal, and the letters show that it now
# marks the patient's right recess, while the label did not change. A model trained on
# flipped copies sees the patient's right recess half the time under a *left* label.
# Since the two sides of one patient often differ in grade, that adds label noise, on
# top of teaching the model that the side does not matter, which for this target is
# wrong.
#
# ```{note}
# `lss.config.TrainConfig.horizontal_flip` is `True` by default only to reproduce the
# paper; `lss train --no-flip` turns it off. Published RSNA 2024 solutions that mirror
# images do it deliberately, *knowing the side*: for example
# [adamnarai/kaggle-rsna-2024](https://github.com/adamnarai/kaggle-rsna-2024) mirrors
# right-side crops to look like left ones and keeps their own, right-side labels.
# ```

# %% [markdown]
# ## Summary
#
# In this chapter we:
#
# - located the **subarticular recess**, the front corner of the spinal canal where the
#   L5 root runs at L4/L5, and saw how stenosis closes it on an axial T2 slice;
# - read the dataset's three tables with `lss.data.load_tables` and saw its layout,
#   `train_images/<study>/<series>/<instance>.dcm`;
# - counted the target's classes and saw why about 51 % accuracy is close to the
#   always-*Normal/Mild* baseline on the real labels;
# - built the **index** with `lss.data.build_index`: the coordinate row chooses the
#   series and slice, a study without one uses its only Axial T2 series, and anything
#   else is excluded with a reason;
# - drew the labelled point on its slice, and checked the **radiological convention**
#   (patient's left on the image's right) and why a horizontal flip puts a "left" label
#   on the right recess.
#
# ## Exercises
#
# Each exercise has a solution cell (folded on the website; empty in the student
# notebooks, for your code) and a check cell that tests the answer.
#
# **Exercise 1.** Print the class distribution of `right_subarticular_stenosis_l4_l5`
# on `DATA_DIR`, and, if you have them, on the real tables. Which target has the larger
# majority class?
#

# %% tags=["solution", "hide-input"]
right = column_name("right_subarticular_stenosis", LEVEL)
print(DATA_LABEL)
print(tables.train[right].value_counts(normalize=True))
if real is not None:
    print(REAL_DATA_LABEL)
    print(real.train[right].value_counts(normalize=True))

# %% tags=["check"]
shares = tables.train[right].value_counts(normalize=True)
assert right == "right_subarticular_stenosis_l4_l5" and np.isclose(shares.sum(), 1.0)
print("Exercise 1: correct")

# %% [markdown]
# <details><summary>Solution, explained</summary>
#
# Compare the `Normal/Mild` share of both columns; that share is the accuracy of always
# answering Normal/Mild, the number any model for that target must beat.
# </details>
#
# **Exercise 2.** List the studies of the index with more than one Axial T2 series.
# For one of them, which series does the index use, and why is it not a guess?
#

# %% tags=["solution", "hide-input"]
multi = index[index["n_series"] > 1]
print(multi[["study_id", "series_id", "instance_number", "series_rule"]])
s = tables.series
print(s[(s["study_id"] == multi["study_id"].iloc[0])
        & (s["series_description"] == "Axial T2")])

# %% tags=["check"]
assert len(multi) and (multi["n_series"] > 1).all()
assert (multi["series_rule"] == "coordinates").all()  # chosen by the table, not guessed
print("Exercise 2: correct")

# %% [markdown]
# <details><summary>Solution, explained</summary>
#
# `series_rule` is `"coordinates"`: the radiologist's coordinate row for this study,
# condition and level names the series and the slice on which the level was labelled.
# </details>
#
# **Exercise 3.** A slice is 448 pixels wide and a label sits at `x = 300`. Where is it
# after a horizontal flip? Would flipping be just as harmful for *spinal canal*
# stenosis?
#

# %% tags=["solution", "hide-input"]
flipped, (fx, fy) = lss.viz.flip_horizontal(np.zeros((448, 448)), (300.0, 200.0))
print(fx)  # 147.0 = 448 - 1 - 300

# %% tags=["check"]
assert (fx, fy) == (448 - 1 - 300, 200.0)
print("Exercise 3: correct")

# %% [markdown]
# <details><summary>Solution, explained</summary>
#
# Spinal canal stenosis is graded in the middle of the canal and names no side, so a
# flip keeps its meaning (it only mirrors an asymmetric canal). For a one-sided label,
# such as left subarticular stenosis, the flip moves the lesion to the other side.
# </details>
#
# ## What's next?
#
# {doc}`02_preprocessing` turns an indexed study into the array the model receives:
# slices ordered in space, a window of slices around the labelled one, resized and
# scaled, and cached on disk.
#
# ## Resources and references
#
# - RSNA 2024 Lumbar Spine Degenerative Classification, the competition and its data:
#   <https://www.kaggle.com/c/rsna-2024-lumbar-spine-degenerative-classification>
# - DICOM Image Plane Module (`ImagePositionPatient`, `ImageOrientationPatient`):
#   <https://dicom.nema.org/medical/dicom/current/output/chtml/part03/sect_C.7.6.2.html>
# - A review of the Lee grading system for lumbar stenosis on MRI:
#   <https://www.ncbi.nlm.nih.gov/pmc/articles/PMC9971835/>
# - W. S. Bartynski and L. Lin, lumbar root compression in the lateral recess on MR
#   imaging, *AJNR Am J Neuroradiol* (2003).
# - Splettstößer et al., lateral recess stenosis at L4/5 and L5/S1 on MRI in 927
#   patients, *World J Radiol* (2017).
# - The synthetic phantom: `help(lss.phantom)`; the data layer: `help(lss.data)`.
