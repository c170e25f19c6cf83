# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # RSNA 2024 lumbar spine: a whole-study submission with lss
#
# This notebook grades every study of the competition's test set, 25 rows each, with a
# whole-study run of `lss` (chapter 8 of the lss book: `lss train --targets all`, then
# `lss levels`). It runs as a code submission, without internet. Attach three inputs:
#
# 1. the competition's data, `rsna-2024-lumbar-spine-degenerative-classification`;
# 2. the offline install kit (`make kaggle-kit`, uploaded as a dataset);
# 3. the whole-study run folder (uploaded as a dataset).
#
# The kit and the run are found under `/kaggle/input` by what they hold, whatever their
# dataset names: the folder with the `lss-*.whl` wheel, and the folder whose
# `manifest.json` says `"kind": "whole_study"`. The submission goes to
# `/kaggle/working/submission.csv`; a report of every row filled from the training prior
# (and why) goes beside it.

# %% tags=["parameters"]
INPUT = "/kaggle/input"
WORKING = "/kaggle/working"

# %% [markdown]
# Install `lss` from the kit, offline (skipped when it is installed already).

# %%
import importlib.util
import subprocess
import sys
from pathlib import Path


def folders_with(name):
    """Folders up to three levels under INPUT that hold a file matching ``name``
    (not a recursive walk: the competition's images are 150,000 files)."""
    return [p.parent for depth in (1, 2, 3)
            for p in Path(INPUT).glob("/".join(["*"] * depth + [name]))]


def only_folder(folders, what):
    """The one folder in ``folders``; a one-line error naming ``what`` otherwise."""
    folders = sorted(set(folders))
    if len(folders) != 1:
        found = ", ".join(map(str, folders)) or "none"
        raise SystemExit(f"Attach exactly one {what} under {INPUT} (found: {found})")
    return folders[0]


if importlib.util.find_spec("lss") is None:
    kit = only_folder(folders_with("lss-*.whl"),
                      "lss kit (the folder with the lss-*.whl of make kaggle-kit)")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index",
                    "--find-links", str(kit), "lss"], check=True)
    importlib.invalidate_caches()  # so this kernel sees the package just installed

# %% [markdown]
# The competition's data and the run.

# %%
import pandas as pd

import lss.data.sources
from lss.competition import check_submission
from lss.run import RunDir
from lss.study_predict import predict_whole_study
from lss.submission import summarise_report, write_submission

DATA = lss.data.sources.attached_kaggle_data(INPUT)
if DATA is None:
    raise SystemExit(f"Attach the competition's data: no "
                     f"{lss.data.sources.KAGGLE_COMPETITION}/train.csv under {INPUT}")
runs = [p for p in folders_with(RunDir.MANIFEST)
        if RunDir(p).read_manifest().get("kind") == "whole_study"]
RUN = only_folder(runs, "whole-study run (lss train --targets all)")
print(f"data: {DATA.name}; run: {RUN.name}")

# %% [markdown]
# Grade every test study and write the submission.

# %%
submission, report = predict_whole_study(RUN, DATA, split="test")
study_ids = pd.read_csv(DATA / "test_series_descriptions.csv")["study_id"].unique()
check_submission(submission, study_ids)
paths = write_submission(Path(WORKING) / "submission.csv", submission, report)
print(f"{len(study_ids)} studies, {len(submission)} rows: {paths[0].name}")
if len(report):
    print(summarise_report(report, n_rows=len(submission)))
