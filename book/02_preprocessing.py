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
# # Preprocessing: from a DICOM series to a model input
#
# The paper's CNN-LSTM reads a short stack of axial slices around the labelled disc,
# each resized to 128 x 128 pixels. This chapter builds that input, one decision at a
# time, and shows what each decision does to the pixels.
#
# ---
#
# ## Overview
#
# 1. Choosing the series
# 2. Ordering slices in space
# 3. The level window
# 4. Resizing and scaling
# 5. The cache
# 6. What the model receives
#
# ## Prerequisites
#
# | Concepts | Importance | Notes |
# | --- | --- | --- |
# | {doc}`01_anatomy_and_data` | Necessary | The tables, the index and the recess |
# | [NumPy arrays][numpy] | Necessary | Shapes, dtypes, percentiles |
# | [DICOM image plane attributes][dicom] | Helpful | Explained here as needed |
#
# [numpy]: https://numpy.org/doc/stable/user/absolute_beginners.html
# [dicom]: https://dicom.nema.org/medical/dicom/current/output/chtml/part03/sect_C.7.6.2.html
#
# - **Time to learn**: 40 minutes.
# - **System requirements**: a CPU; about 1 minute to run once the phantom exists
#   (chapter 1 makes it, or the data cell below does). No GPU.

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
import json
import os
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pydicom
from IPython.display import Markdown, display

import lss.data
import lss.data.sources
import lss.data.survey
import lss.run
import lss.viz
from lss.config import SEVERITIES, PreprocessConfig
from lss.text import say

# %% [markdown]
# The settings. `N_SLICES` and `IMAGE_SIZE` are the paper's window: 8 slices of
# 128 x 128 pixels. `WORKERS` is the number of processes that fill the cache (`None`:
# `prepare` decides, all CPU cores for a large job and fewer for a small one, where
# starting a process would cost more than it saves; see {doc}`benchmarks`).

# %% tags=["parameters"]
DATA_DIR = "../data/phantom-small"  # Kaggle layout; the phantom is made here if absent
N_STUDIES = 24                # phantom studies needed (a larger phantom serves too)
DATA_SOURCE = "auto"          # Kaggle's attached data, else the phantom; or "kaggle"
WORK_DIR = "../runs/book"     # models and metrics that later chapters read
CACHE_DIR = "../.cache"       # preprocessed windows (lss.data.TensorCache)
SEED = 0
CONDITION = "left_subarticular_stenosis"
LEVEL = "L4/L5"
N_SLICES = 8
IMAGE_SIZE = 128
WORKERS = None

# %% [markdown]
# The data root and its label, then the index of chapter 1: one row per labelled study,
# with the series and the slice to read.

# %%
root = lss.data.sources.ensure_data(DATA_DIR, source=DATA_SOURCE, n_studies=N_STUDIES)
DATA_LABEL = lss.run.data_label(root)
tables = lss.data.load_tables(root)
index = lss.data.build_index(tables, CONDITION, LEVEL)
print(f"{DATA_LABEL}: {len(index)} studies indexed, "
      f"{len(index.attrs['excluded'])} excluded")

# %% [markdown]
# ## Choosing the series
#
# A study holds several series: sagittal T1, sagittal T2/STIR and one or more axial T2.
# The subarticular recess is graded on axial T2, and chapter 1's rule picks the series:
# the one the coordinate row names. Here is a study with more than one Axial T2 series.

# %%
row = index[index["n_series"] > 1].iloc[0]
s = tables.series
s[s["study_id"] == row["study_id"]]

# %% [markdown]
# The index chose the series on which the radiologist placed the L4/L5 label:

# %%
print(DATA_LABEL)
row[["study_id", "series_id", "instance_number", "series_rule", "n_series"]].to_dict()

# %% [markdown]
# Two axial series can cover different levels, or repeat the same ones. Choosing by
# description alone ("the first Axial T2") would pick the wrong series in some of these
# studies, and the model would learn from a slice that may not show L4/L5 at all.

# %% [markdown]
# ## Ordering slices in space
#
# A series folder is a bag of files. To stack them in the order they lie in the body,
# three orderings suggest themselves: by **file name**, by the **`InstanceNumber`** tag,
# or by **position in space**. Only the last is right by construction. Each file's
# header says where its slice is:

# %%
first = index[index["series_rule"] == "coordinates"].iloc[0]
header = lss.data.scan_series(
    lss.data.series_dir(root, first["study_id"], first["series_id"]))
ds = pydicom.dcmread(header.paths[0], stop_before_pixels=True)
say(DATA_LABEL, header.series_dir.relative_to(root), header.paths[0].name)
for tag in ("InstanceNumber", "ImagePositionPatient", "ImageOrientationPatient",
            "PixelSpacing", "SliceThickness", "Rows", "Columns"):
    print(f"{tag:>24}: {ds.get(tag)}")

# %% [markdown]
# `ImagePositionPatient` is the position, in millimetres, of the image's top-left pixel;
# `ImageOrientationPatient` gives the directions of the rows and columns. Their cross
# product is the **slice normal**, pointing toward the head for an axial slice. A
# slice's position along the normal is the dot product of the two:

# %%
iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
normal = np.cross(iop[:3], iop[3:])
print(f"normal {np.round(normal, 3)}; position along it: "
      f"{np.dot(np.asarray(ds.ImagePositionPatient, dtype=float), normal):.1f} mm")

# %% [markdown]
# `lss.data.scan_series` does this for every file (using the series' mean normal,
# because short stacks, one per disc, are tilted differently) and sorts by it. The
# table lists the same files in spatial order, with the rank each would get if sorted
# by `InstanceNumber` or by file name.

# %%
order = lss.data.survey.slice_order_table(header)
print(DATA_LABEL)
order.round(1)

# %% [markdown]
# The figure shows the same thing for this series.

# %% mystnb={"image": {"alt": "Two panels. Left: each slice's position along the slice normal, in millimetres, against its InstanceNumber, the labelled slice a red star; right: for each slice in spatial order, its rank when the files are sorted by InstanceNumber (circles) and by file name (crosses), beside the grey diagonal of the spatial order."}}
_ = lss.viz.plot_slice_order(header, labelled_instance=int(first["instance_number"]),
                               data_label=DATA_LABEL)
plt.tight_layout()

# %%
grows_up = bool(np.corrcoef(order.instance_number, order.position_mm)[0, 1] > 0)
by_name = bool((order.name_rank == order.spatial_rank).all())
Markdown(
    f"On the left, position {'rises' if grows_up else 'falls'} as `InstanceNumber` "
    f"grows: this series numbers its slices from the "
    f"{'feet toward the head' if grows_up else 'head toward the feet'}, while the "
    f"normal points {'to the head' if normal[2] > 0 else 'to the feet'} (its z "
    f"component is {normal[2]:+.2f}; DICOM's z axis points to the head). Jumps in "
    f"position are the gaps between short stacks, one per disc. On the right, sorting "
    f"by `InstanceNumber` gives the spatial order{'' if grows_up else ' *reversed*'}, "
    f"and sorting file names as text (`\"10.dcm\"` before `\"9.dcm\"`) "
    f"{'happens to give it too' if by_name else 'gives neither'}.")

# %% [markdown]
# How common is each direction? `lss.data.survey.window_survey` reads every indexed
# series' headers (no pixels) and records, among other things, which way its instance
# numbers run.

# %%
survey = lss.data.survey.window_survey(root, index, n_slices=N_SLICES)
runs = survey["instances_run_with_position"].map({True: "toward the head",
                                                  False: "toward the feet"})
say(DATA_LABEL, "InstanceNumber grows " + str(runs.value_counts().to_dict()))

# %% [markdown]
# A loader that sorted by `InstanceNumber` would hand the LSTM some stacks head first
# and others feet first, and one that sorted file names would shuffle them. The phantom
# numbers its series both ways because real RSNA series do; in real series, positions
# can also jump between stacks. Only the position along the normal is reliable.
#
# ```{note}
# `lss.data.read_series` and `lss.data.scan_series` never use file names or
# `InstanceNumber` for order; `InstanceNumber` is used only to *find* the labelled
# slice, because that is what the coordinate table records.
# ```

# %% [markdown]
# ## The level window
#
# The model does not see the whole series; it sees `N_SLICES` slices centred, in
# spatial order, on the labelled one. `lss.data.window_indices` gives their indices; the
# labelled slice sits at position `N_SLICES // 2`.

# %%
print(lss.data.window_indices(20, 10, N_SLICES))

# %% [markdown]
# Where the window runs past an end of the series, the end slice is repeated (**edge
# padding**). The labelled slice keeps its place and every window has the same length,
# at the price of a few duplicated slices.

# %%
print(lss.data.window_indices(20, 1, N_SLICES), lss.data.window_indices(5, 3, N_SLICES))

# %% [markdown]
# Here is the window of the study above, read with `lss.data.level_window`: each slice
# titled with its position in the window, its index in the series, its
# `InstanceNumber`, and its distance from the labelled slice along the normal.

# %% mystnb={"image": {"alt": "The level window's slices in spatial order, four to a row, each titled with its place in the window, its index in the series, its InstanceNumber and its distance in millimetres from the labelled slice; the labelled slice is framed in red, with the labelled point ringed."}}
config = PreprocessConfig(n_slices=N_SLICES, image_size=IMAGE_SIZE)
window = lss.data.level_window(header, int(first["instance_number"]), config,
                               centre_xy=(first["x"], first["y"]))
scale = (IMAGE_SIZE / header.shape[1], IMAGE_SIZE / header.shape[0])
_ = lss.viz.plot_window(
    window.volume, indices=window.indices, instance_numbers=window.instance_numbers,
    positions=header.positions[window.indices],
    point=(first["x"] * scale[0], first["y"] * scale[1]),
    title=f"study {first['study_id']}, {SEVERITIES[first['label']]}",
    data_label=DATA_LABEL)

# %% [markdown]
# The framed slice is the labelled one, with its point. Look at the distances, and
# the sentence computed from them:

# %%
span = float(np.ptp(header.positions[window.indices]))
gaps = np.diff(header.positions)
Markdown(f"This window's {N_SLICES} slices span {span:.1f} mm from first to last; the "
         f"series' slices are {np.median(gaps):.1f} mm apart at the median and up to "
         f"{gaps.max():.1f} mm at its largest jump"
         + (", the gap between two short stacks, one per disc."
            if gaps.max() > 2 * np.median(gaps) else ", without a jump between stacks.")
         + " The window is counted in slices, not millimetres.")

# %% [markdown]
# How far do windows reach across the whole index?

# %%
say(DATA_LABEL, f"{N_SLICES}-slice windows span (mm, first to last slice):")
say(survey["span_mm"].describe().round(1).to_dict())

# %% [markdown]
# And how often does the edge rule fire? The survey marks the windows that run past an
# end of their series:

# %%
edge = survey[survey["edge"]]
say(DATA_LABEL, f"{len(edge)} of {len(survey)} windows repeat an end slice")
edge[["study_id", "n_in_series", "centre", "span_mm"]].head(3)

# %% [markdown]
# `centre` is the labelled slice's index in its series: near 0 or near the series'
# length, the window runs out of slices. To see the rule at work, take the series above
# and suppose the label were on its second slice (index 1):

# %% mystnb={"image": {"alt": "The slices of a window centred on the series' second slice, four to a row, titled as in the window above: the series' first slice fills the places before the centre, its copies marked repeat, and the centred slice is framed in red."}}
e_window = lss.data.level_window(header, int(header.instance_numbers[1]), config)
_ = lss.viz.plot_window(e_window.volume, indices=e_window.indices,
                          instance_numbers=e_window.instance_numbers,
                          positions=header.positions[e_window.indices],
                          title=f"study {first['study_id']}, window centred on index 1",
                          data_label=DATA_LABEL)

# %% [markdown]
# Slice 0 fills the positions before the centre ("repeat" in the titles, at the same
# position in mm), and the centred slice is still the framed one, at position
# `N_SLICES // 2`. The model sees a few identical neighbours rather than a shorter
# stack.
#
# ## Resizing and scaling
#
# Each slice is then resized to `IMAGE_SIZE` x `IMAGE_SIZE` pixels with
# `lss.data.resize_slice` (bilinear, with antialiasing, so downsampling averages pixels
# rather than skipping them), and the whole window is scaled to [0, 1] with
# `lss.data.scale_unit` (between the 0.5th and 99.5th percentiles of the window's
# pixels). Here are the three stages of the labelled slice, the last one taken from the
# window above, with the histogram of its intensities under each.

# %% mystnb={"image": {"alt": "Three columns, the labelled slice as stored, resized, and scaled to the range zero to one, each image above the histogram of its pixel intensities, with the number of pixels on a logarithmic axis."}}
raw, point, _header = lss.data.survey.read_labelled_slice(root, first)
resized = lss.data.resize_slice(raw, IMAGE_SIZE)
scaled = window.volume[N_SLICES // 2]
_ = lss.viz.plot_preprocessing_steps(
    {"as stored": raw, "resized": resized, "scaled to [0, 1]": scaled},
    data_label=DATA_LABEL)
plt.tight_layout()

# %% [markdown]
# Resizing keeps the shape of the histogram (background, muscle, fat, CSF) and only
# smooths it; scaling maps the window's 0.5th percentile to 0 and its 99.5th to 1, and
# clips what lies beyond them (the spike at 1 is the brightest CSF).
#
# **What resizing costs.** A 448-pixel slice shrunk to 128 pixels loses 3.5 times its
# resolution in each direction. The number that matters is the size of a pixel in
# millimetres after resizing, since the recess is only a few millimetres deep:

# %%
mm_after = survey["pixel_spacing"] * survey["columns"] / IMAGE_SIZE
say(DATA_LABEL, f"pixel size after resizing to {IMAGE_SIZE}: "
      f"{mm_after.describe().round(2)[['min', '50%', 'max']].to_dict()} mm")

# %% [markdown]
# At the pixel sizes printed above, well over a millimetre, a recess 3 to 5 mm deep is
# 2 to 4 pixels across: the grade has to be read from a handful of pixels. Here is the
# same 3 cm around the labelled point before and after:

# %% mystnb={"image": {"alt": "Two panels of the same three-centimetre square around the labelled point, ringed in red: left, the slice as stored; right, the same region in the model's input, after resizing and scaling."}}
half_px = 15 / header.pixel_spacing[1]
fig, axes = lss.viz.page_subplots(1, 2, height=3.8)
lss.viz.plot_slice(raw, point=point, zoom=half_px, ax=axes[0], title="as stored")
lss.viz.plot_slice(scaled, point=(point[0] * scale[0], point[1] * scale[1]),
                   zoom=half_px * scale[0], ax=axes[1],
                   title=f"in the {IMAGE_SIZE}-pixel input")
_ = fig.suptitle(f"{DATA_LABEL}, study {first['study_id']}: 3 cm around the point",
                 fontsize=9)

# %% [markdown]
# The root, its fat and the facet that narrows the recess are each a few pixels in the
# model's input. The
# alternative, beyond the paper, is to crop a square of a few centimetres around the
# recess before resizing (`PreprocessConfig(crop_mm=...)`), which keeps its detail.
#
# Resizing to a square also **distorts non-square images**: both axes become
# `IMAGE_SIZE`, whatever their length.

# %%
ns = survey[survey["rows"] != survey["columns"]]
examples = ns[["study_id", "rows", "columns"]].head(3).to_dict("records")
say(DATA_LABEL, f"{len(ns)} of {len(survey)} series are not square, e.g. {examples}")

# %% [markdown]
# One of them, before and after:

# %% tags=["figure-optional"] mystnb={"image": {"alt": "Two columns, a non-square slice as stored and after resizing to a square, each image above the histogram of its pixel intensities, with the number of pixels on a logarithmic axis."}}
if len(ns):
    r = index[index["study_id"] == ns["study_id"].iloc[0]].iloc[0]
    img = lss.data.survey.read_labelled_slice(root, r)[0]
    lss.viz.plot_preprocessing_steps(
        {"as stored": img, "resized": lss.data.resize_slice(img, IMAGE_SIZE)},
        data_label=f"{DATA_LABEL}, study {r['study_id']}")
    plt.tight_layout()
    rows, cols = int(ns["rows"].iloc[0]), int(ns["columns"].iloc[0])
    display(Markdown(
        f"The body is stretched {'vertically' if rows < cols else 'horizontally'} by "
        f"{max(rows, cols) / min(rows, cols):.2f} "
        f"({max(rows, cols)} / {min(rows, cols)}, "
        f"its longer side over its shorter). The model is shown anatomy in "
        f"proportions that differ between studies; a crop in millimetres, or padding "
        f"to a square before resizing, would avoid that."))

# %% [markdown]
# **Why scale each window on its own?** MRI intensities have no absolute unit: each
# series has its own gain, which depends on the scanner, the coil and the settings, so
# the same tissue has different values in different studies. The 99.5th percentile of
# the labelled slice, as stored, in the first 20 studies:

# %%
top = [np.percentile(lss.data.survey.read_labelled_slice(root, r)[0], 99.5)
       for _, r in index.head(20).iterrows()]
say(DATA_LABEL, f"99.5th percentile of the raw labelled slice, 20 studies: "
      f"{min(top):.0f} to {max(top):.0f} ({max(top) / min(top):.1f}-fold)")

# %% [markdown]
# After `scale_unit` every window spans [0, 1], so the model compares contrasts, not
# scanner gains. Percentiles rather than the minimum and maximum keep a few extreme
# pixels from setting the scale.

# %% [markdown]
# ## The cache
#
# Decoding DICOM files is the slow part, and training reads every window once per
# epoch. `lss.data.TensorCache` computes each window once and stores it on disk as a
# small `.npz` file. To show a cold start honestly, the next cell uses a fresh,
# temporary cache folder, fills it (**cold**), and then asks again (**warm**).

# %%
demo_dir = Path(tempfile.mkdtemp(prefix="lss-cache-demo-"))
demo = lss.data.TensorCache(root, config, cache_dir=demo_dir)
cold = demo.prepare(index, workers=WORKERS)
warm = demo.prepare(index, workers=WORKERS)
used = WORKERS or lss.data.cache.default_workers(cold.written)
print(f"{DATA_LABEL}, {os.cpu_count()} CPU cores, {used} process(es)")
print(f"cold: {cold}\nwarm: {warm}")

# %% [markdown]
# The warm call only checks that each entry exists and is current. Those timings are of
# this machine, on this data; the operating system's file cache may already hold the
# DICOM files, so a first run after a reboot is slower.
#
# Where do the entries go? Into a folder named by a **settings key**: a hash of every
# `PreprocessConfig` field, the data root and the split. Next to the entries,
# `settings.json` says what the key stands for.

# %%
say(demo.dir.name, sorted(p.name for p in demo.dir.iterdir())[:3], "...")
settings = json.loads((demo.dir / "settings.json").read_text())
settings["root"] = "DATA_DIR"  # the data root's path, shown by name
print(json.dumps(settings, indent=1))

# %% [markdown]
# Change any setting and the key changes, so windows made with other settings are never
# read by mistake:

# %%
other = lss.data.TensorCache(root, PreprocessConfig(n_slices=N_SLICES, image_size=64),
                             cache_dir=demo_dir)
print(f"image_size={IMAGE_SIZE}: {demo.dir.name}\nimage_size=64:  {other.dir.name}")

# %% [markdown]
# Two more safeguards:
#
# - **Atomic writes.** Each entry is written to a temporary file in the same folder,
#   closed, and renamed into place with `os.replace`, which is atomic. A run killed
#   mid-write leaves no half-written entry under the entry's name, so a later run
#   cannot read one. There is no `fsync`: after a power cut, an entry whose bytes had
#   not reached the disk fails its fingerprint check or its load, and is computed
#   again. No temporary file is left here:

# %%
print("temporary files left:", list(demo.dir.glob(".*.tmp")))

# %% [markdown]
# - **Stale entries.** Each entry stores a fingerprint of its series folder (each file's
#   name, size, modification and status-change times and inode), so that even a
#   same-size edit whose modification time was put back is noticed. If the series
#   changes (a re-download, a fixed file), the entry is recomputed instead of being
#   read.
#
# The demonstration folder is removed; the windows the next chapters use go into
# `CACHE_DIR`, where a second run of this chapter, or chapter 3, finds them.

# %%
shutil.rmtree(demo_dir)
cache = lss.data.TensorCache(root, config, cache_dir=CACHE_DIR)
print(cache.prepare(index, workers=WORKERS))

# %% [markdown]
# ## What the model receives
#
# `TensorCache.load` stacks the windows of the index, in the order of its rows. With
# the labels from the index, that is the whole training set:

# %%
x = cache.load(index)
y = index["label"].to_numpy()
print(f"{DATA_LABEL}\nx: shape {x.shape}, dtype {x.dtype}, range [{x.min():.2f}, "
      f"{x.max():.2f}], {x.nbytes / 2**20:.0f} MiB\ny: shape {y.shape}, classes "
      f"{dict(zip(SEVERITIES, np.bincount(y, minlength=3).tolist(), strict=True))}")

# %% [markdown]
# One study is an array of shape (`N_SLICES`, `IMAGE_SIZE`, `IMAGE_SIZE`): float32,
# in [0, 1]. `lss.train` adds a channel axis when it makes batches, so the model's input
# is `(batch, 8, 128, 128, 1)`, and the label is one of three classes. This is exactly
# what the model of chapter 3 will see for the first study:

# %% mystnb={"image": {"alt": "The first study's model input: its window's slices in spatial order, four to a row, on one grey scale from zero to one, each titled with its place in the window, the middle, labelled slice framed in red."}}
_ = lss.viz.plot_window(x[0], title=f"model input x[0], label {SEVERITIES[y[0]]}",
                          data_label=DATA_LABEL, vmin=0, vmax=1)

# %% [markdown]
# Everything the model will ever know about study `index.study_id[0]` is in these
# eight small images.

# %% [markdown]
# ## Summary
#
# In this chapter we:
#
# - chose the series from the **coordinate row**, not from the series description;
# - ordered slices by **position along the slice normal**, and saw that
#   `InstanceNumber` runs head-to-feet in some series and feet-to-head in others, and
#   that file names sort as text;
# - cut the **level window**: `N_SLICES` slices centred on the labelled one, the end
#   slice repeated where the series ends; with short stacks per disc it reaches into
#   the neighbouring levels;
# - **resized** each slice to `IMAGE_SIZE` squared (a recess of a few millimetres
#   becomes 2-3 pixels; non-square images are stretched) and **scaled** each window to
#   [0, 1] between percentiles;
# - stored every window once in the **cache**, keyed by the settings and written
#   atomically, and loaded the model's input: `(N, 8, 128, 128)` float32 in [0, 1].
#
# ## Exercises
#
# Each exercise has a solution cell (folded on the website; empty in the student
# notebooks, for your code) and a check cell that tests the answer.
#
# **Exercise 1.** For a window of 8 slices, which indices does the edge rule give for
# the labelled slice at index 0 of a 3-slice series? Where is the labelled slice in the
# window?
#

# %% tags=["solution", "hide-input"]
lss.data.window_indices(3, 0, 8)   # array([0, 0, 0, 0, 0, 1, 2, 2])

# %% tags=["check"]
assert lss.data.window_indices(3, 0, 8).tolist() == [0, 0, 0, 0, 0, 1, 2, 2]
print("Exercise 1: correct")

# %% [markdown]
# <details><summary>Solution, explained</summary>
#
# The labelled slice (index 0) is at position `8 // 2 = 4` of the window, as always;
# slice 0 fills positions 0-4 and slice 2 is repeated at the end.
# </details>
#
# **Exercise 2.** Sort the files of the first series by `InstanceNumber` and compare
# with the spatial order from `lss.data.scan_series`. Are they equal, reversed, or
# neither?
#

# %% tags=["solution", "hide-input"]
by_instance = sorted(header.paths, key=lambda p: int(pydicom.dcmread(
    p, stop_before_pixels=True).InstanceNumber))
spatial = list(header.paths)
print(by_instance == spatial, by_instance == spatial[::-1])

# %% tags=["check"]
assert sorted(by_instance) == sorted(spatial)  # the same files, maybe in another order
print("equal" if by_instance == spatial else
      "reversed" if by_instance == spatial[::-1] else "neither", f"({DATA_LABEL})")
print("Exercise 2: correct")

# %% [markdown]
# <details><summary>Solution, explained</summary>
#
# The line above says which, for this series: "reversed" when its instance numbers run
# toward the feet while the positions run toward the head (the figure of "Ordering
# slices in space" shows the same series).
# </details>
#
# **Exercise 3.** Make a cache with windows of 4 slices of 64 x 64 pixels in a temporary
# folder. How large is the training set in memory, compared with the paper's setting?
#

# %% tags=["solution", "hide-input"]
small = lss.data.TensorCache(root, PreprocessConfig(n_slices=4, image_size=64),
                             cache_dir=tempfile.mkdtemp())
xs = small.load(index)
print(xs.shape, xs.nbytes / x.nbytes)   # (N, 4, 64, 64), 1/8 of the memory

# %% tags=["check"]
assert xs.shape == (len(index), 4, 64, 64)
assert np.isclose(xs.nbytes / x.nbytes, 1 / 8)
assert small.dir.name != cache.dir.name  # another settings key
print("Exercise 3: correct")

# %% [markdown]
# <details><summary>Solution, explained</summary>
#
# Half the slices and a quarter of the pixels per slice: one eighth of the memory, and
# a new settings key, so neither cache can be read for the other.
# </details>
#
# ## What's next?
#
# {doc}`03_cnn_lstm` builds the paper's CNN-LSTM, shows what each part sees of these
# windows, and trains it briefly.
#
# ## Resources and references
#
# - DICOM Image Plane Module, the meaning of `ImagePositionPatient`,
#   `ImageOrientationPatient` and `PixelSpacing`:
#   <https://dicom.nema.org/medical/dicom/current/output/chtml/part03/sect_C.7.6.2.html>
# - pydicom, reading DICOM files in Python: <https://pydicom.github.io/pydicom/stable/>
# - Pillow's resampling filters (`Image.resize`):
#   <https://pillow.readthedocs.io/en/stable/handbook/concepts.html#filters>
# - The "Fix direction" step of a published RSNA 2024 solution's loader, which also
#   orders slices by `ImagePositionPatient`:
#   [adamnarai/kaggle-rsna-2024](https://github.com/adamnarai/kaggle-rsna-2024)
# - The data layer's reference: `help(lss.data)`.
