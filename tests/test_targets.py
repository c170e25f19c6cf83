"""The index of all 25 targets (lss.data.targets): on the phantom, the real label tables
and hand-made roots."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lss.competition import CONDITION_GROUP
from lss.config import CONDITIONS, LABEL_MAP, LEVELS, SERIES_FOR_CONDITION, column_name
from lss.data import (
    DataError,
    build_index,
    build_target_index,
    load_tables,
    parse_targets,
    split_rows,
    target_counts,
)
from lss.data.tables import TRAIN_COLUMNS
from lss.data.targets import EXCLUSION_KINDS, INDEX_COLUMNS, coordinate_targets


@pytest.fixture(scope="module")
def phantom_index(phantom_root) -> pd.DataFrame:
    return build_target_index(phantom_root)  # check_images=True: the phantom has its images


@pytest.fixture(scope="module")
def real_index(labels_dir) -> pd.DataFrame:
    return build_target_index(labels_dir, check_images=False)


@pytest.fixture(params=["phantom", "real"])
def any_index(request) -> pd.DataFrame:
    return request.getfixturevalue(f"{request.param}_index")


def _excluded(index: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(index.attrs["excluded"],
                        columns=["study_id", "target", "kind", "reason"])


# --------------------------------------------------------------------------- targets


def test_parse_targets_all_condition_and_list():
    assert parse_targets() == list(TRAIN_COLUMNS[1:])
    assert parse_targets("all") == [column_name(c, lv) for c in CONDITIONS for lv in LEVELS]
    assert parse_targets("right_neural_foraminal_narrowing") == [
        column_name("right_neural_foraminal_narrowing", lv) for lv in LEVELS]
    # a list comes back in the competition's order
    assert parse_targets(["spinal_canal_stenosis_l5_s1", "spinal_canal_stenosis_l1_l2"]) == [
        "spinal_canal_stenosis_l1_l2", "spinal_canal_stenosis_l5_s1"]
    assert parse_targets("left_subarticular_stenosis_l4_l5") == [
        "left_subarticular_stenosis_l4_l5"]


def test_a_misspelled_target_is_one_line_listing_the_valid_ones():
    with pytest.raises(ValueError, match="Unknown target 'left_subarticular_stenosis_l4l5'") \
            as err:
        parse_targets(["left_subarticular_stenosis_l4_l5", "left_subarticular_stenosis_l4l5"])
    msg = str(err.value)
    assert "\n" not in msg
    assert all(t in msg for t in TRAIN_COLUMNS[1:])
    with pytest.raises(ValueError, match="Unknown target 'spinal_stenosis'"):
        build_target_index("/nonexistent", "spinal_stenosis")  # checked before reading
    with pytest.raises(ValueError, match="more than once"):
        parse_targets(["spinal_canal_stenosis_l1_l2"] * 2)
    with pytest.raises(ValueError, match="empty"):
        parse_targets([])


def test_coordinate_rows_name_their_targets_and_refuse_an_unknown_condition():
    """Every (condition, level) spelling of the coordinate table maps to its train.csv
    column; a condition the competition does not have is one line naming it."""
    co = pd.DataFrame([(spelled, lv) for spelled in CONDITIONS.values() for lv in LEVELS],
                      columns=["condition", "level"])
    assert coordinate_targets(co).tolist() == [column_name(c, lv) for c in CONDITIONS
                                               for lv in LEVELS]
    bad = pd.DataFrame({"condition": ["Spinal canal stenosis"], "level": ["L4/L5"]})
    with pytest.raises(DataError, match="unknown condition.*'Spinal canal stenosis'"):
        coordinate_targets(bad)


def test_bad_options_are_refused(tiny_root):
    with pytest.raises(ValueError, match="on_missing_label must be 'exclude' or 'raise'"):
        build_target_index(tiny_root, on_missing_label="report")
    with pytest.raises(ValueError, match="on_missing_images must be"):
        build_target_index(tiny_root, on_missing_images="skip")


# --------------------------------------------------------------------------- phantom and real


def test_the_phantom_has_every_conditions_coordinates(phantom_root):
    c = load_tables(phantom_root).coordinates
    have = set(zip(c["condition"], c["level"], strict=True))
    assert have == {(name, lv) for name in CONDITIONS.values() for lv in LEVELS}


def test_counts_add_up_to_train_csv(any_index):
    index = any_index
    train = pd.read_csv(Path(index.attrs["root"]) / "train.csv")
    ex = _excluded(index)
    assert len(index) + len(ex) == index.attrs["n_candidates"] == len(train) * 25
    assert set(ex["kind"]) <= set(EXCLUSION_KINDS)
    assert not ex.duplicated(["study_id", "target"]).any()
    assert not index.duplicated(["study_id", "target"]).any()
    indexed = index["target"].value_counts()
    for target in TRAIN_COLUMNS[1:]:
        mine = ex[ex["target"] == target]
        labelled = int(train[target].notna().sum())
        assert (mine["kind"] == "no label").sum() == len(train) - labelled, target
        assert indexed.get(target, 0) == labelled - (mine["kind"] != "no label").sum(), target
    counts = target_counts(index)
    assert counts.index.tolist() == list(TRAIN_COLUMNS[1:])
    assert (counts["indexed"] + counts[list(EXCLUSION_KINDS)].sum(axis=1)
            == counts["candidates"]).all()


def test_rows_carry_the_labels_of_train_csv(any_index):
    index = any_index
    train = pd.read_csv(Path(index.attrs["root"]) / "train.csv").set_index("study_id")
    cells = train.stack().map(LABEL_MAP)  # (study, target) -> grade; empty cells dropped
    got = index.set_index(["study_id", "target"])["label"]
    assert (got == cells.reindex(got.index)).all()
    assert list(index.columns) == list(INDEX_COLUMNS)
    key = index["target"].map({t: i for i, t in enumerate(TRAIN_COLUMNS[1:])})
    assert pd.MultiIndex.from_arrays([index["study_id"], key]).is_monotonic_increasing


def test_left_l4_l5_agrees_with_build_index(any_index):
    """The same studies, series, slices, pixels and labels where build_index used the
    coordinate row; its only-series fallback rows are excluded here, and listed."""
    index = any_index
    old = build_index(index.attrs["root"], "left_subarticular_stenosis", "L4/L5",
                      check_images=False)
    target = "left_subarticular_stenosis_l4_l5"
    new = index[index["target"] == target].reset_index(drop=True)
    placed = old[old["series_rule"] == "coordinates"].reset_index(drop=True)
    cols = ["study_id", "series_id", "instance_number", "x", "y", "label"]
    pd.testing.assert_frame_equal(new[cols], placed[cols].astype({"instance_number": "int64"}))
    ex = _excluded(index)
    no_coord = set(ex[(ex["target"] == target) & (ex["kind"] == "no coordinate row")]
                   ["study_id"])
    fallback = set(old.loc[old["series_rule"] == "only series", "study_id"])
    assert fallback <= no_coord
    old_excluded = {e["study_id"] for e in old.attrs["excluded"]}
    assert no_coord - fallback <= old_excluded  # several or no Axial T2 series there


def test_sides_mirror_groups_and_series(any_index):
    index = any_index
    side = index["condition"].str.split("_").str[0]
    assert (index.loc[side == "left", "side"] == "left").all()
    assert (index.loc[side == "right", "side"] == "right").all()
    assert index.loc[index["condition"] == "spinal_canal_stenosis", "side"].isna().all()
    right_sub = index["condition"] == "right_subarticular_stenosis"
    assert right_sub.any() and index.loc[right_sub, "mirror"].all()
    assert not index.loc[~right_sub, "mirror"].any()
    assert (index["series_description"] == index["condition"].map(SERIES_FOR_CONDITION)).all()
    assert (index["group"] == index["condition"].map(CONDITION_GROUP)).all()
    assert (index["target"] == [column_name(c, lv) for c, lv in
                                zip(index["condition"], index["level"], strict=True)]).all()
    assert set(index["condition"]) == set(CONDITIONS)
    assert index[["instance_number", "x", "y"]].notna().all().all()


def test_the_real_exclusions(real_index):
    ex = _excluded(real_index)
    assert len(real_index) == 48652
    assert ex["kind"].value_counts().to_dict() == {
        "no label": 572, "no coordinate row": 146, "wrong series": 5}
    wrong = ex[ex["kind"] == "wrong series"]
    assert set(wrong["study_id"]) == {3637444890}
    assert set(wrong["target"]) == set(parse_targets("spinal_canal_stenosis"))


def test_a_condition_selects_its_five_levels(labels_dir, real_index):
    one = build_target_index(labels_dir, "right_subarticular_stenosis", check_images=False)
    assert one.attrs["targets"] == parse_targets("right_subarticular_stenosis")
    assert one.attrs["n_candidates"] == 5 * one.attrs["n_studies"]
    full = real_index[real_index["condition"] == "right_subarticular_stenosis"]
    pd.testing.assert_frame_equal(one, full.reset_index(drop=True))


# --------------------------------------------------------------------------- hand-made


def test_tiny_root_rules(tiny_root):
    target = "left_subarticular_stenosis_l4_l5"
    index = build_target_index(tiny_root, [target])
    assert index["study_id"].tolist() == [101, 102]
    assert index["series_id"].tolist() == [11, 22]  # 102: the coordinate row's series
    assert index["instance_number"].tolist() == [3, 12]
    assert index["label"].tolist() == [1, 2]
    assert [(e["study_id"], e["kind"]) for e in index.attrs["excluded"]] == [
        (103, "no coordinate row"), (104, "no label")]
    # the other 24 targets are labelled Normal/Mild but have no coordinate row
    everything = build_target_index(tiny_root)
    counts = target_counts(everything)
    assert counts.loc[target].tolist() == [4, 2, 1, 1, 0, 0]
    assert (counts.drop(target)["no coordinate row"] == 4).all()
    with pytest.raises(DataError, match="study/studies 104"):
        build_target_index(tiny_root, [target], on_missing_label="raise")


def test_missing_images_raise_or_are_excluded(tiny_root):
    shutil.rmtree(tiny_root / "train_images" / "101" / "11")
    target = "left_subarticular_stenosis_l4_l5"
    with pytest.raises(DataError, match="Study 101: series folder .*101/11 is missing"):
        build_target_index(tiny_root, [target])
    index = build_target_index(tiny_root, [target], on_missing_images="exclude")
    assert index["study_id"].tolist() == [102]
    assert {"study_id": 101, "target": target, "kind": "no images",
            "reason": "series 11: series folder is missing"} in index.attrs["excluded"]
    assert build_target_index(tiny_root, [target], check_images=False)["study_id"].tolist() \
        == [101, 102]


def test_wrong_series_and_stray_coordinates(tiny_root):
    path = tiny_root / "train_label_coordinates.csv"
    coords = pd.read_csv(path)
    coords.loc[coords.study_id == 101, "series_id"] = 12  # 101's Sagittal T1
    coords.to_csv(path, index=False)
    index = build_target_index(tiny_root, "left_subarticular_stenosis")
    assert 101 not in index["study_id"].tolist()
    [e] = [e for e in index.attrs["excluded"] if e["kind"] == "wrong series"]
    assert e["study_id"] == 101 and "'Sagittal T1', not 'Axial T2'" in e["reason"]
    stray = coords.iloc[[0]].assign(study_id=999)
    pd.concat([coords, stray]).to_csv(path, index=False)
    with pytest.raises(DataError, match="study/studies 999 have coordinate rows but no row "
                                        "in train.csv"):
        build_target_index(tiny_root)


def test_target_counts_needs_an_index():
    with pytest.raises(ValueError, match="not a frame of build_target_index"):
        target_counts(pd.DataFrame({"target": []}))


# --------------------------------------------------------------------------- split_rows


def test_split_rows_keeps_studies_whole(any_index):
    studies = np.sort(any_index["study_id"].unique())
    rng = np.random.default_rng(0)
    split = pd.DataFrame({"study_id": rng.permutation(studies),
                          "split": rng.choice(["train", "val"], len(studies))})
    out = split_rows(any_index, split)
    assert len(out) == len(any_index) and out.attrs == any_index.attrs
    assert (out.groupby("study_id")["split"].nunique() == 1).all()
    want = split.set_index("study_id")["split"]
    assert (out["split"] == out["study_id"].map(want)).all()
    assert "split" not in any_index.columns  # a copy


def test_split_rows_errors_name_the_study():
    index = pd.DataFrame({"study_id": [1, 1, 2, 3], "target": list("abcd")})
    with pytest.raises(DataError, match=r"study/studies 3 of the index are not in the split"):
        split_rows(index, pd.DataFrame({"study_id": [1, 2, 4], "split": ["t", "v", "t"]}))
    with pytest.raises(DataError, match="study 2 is listed more than once"):
        split_rows(index, pd.DataFrame({"study_id": [1, 2, 2, 3], "split": list("tvtv")}))
    with pytest.raises(DataError, match="study 3 has no split"):
        split_rows(index, pd.DataFrame({"study_id": [1, 2, 3], "split": ["t", "v", None]}))
    with pytest.raises(DataError, match=r"lacks column\(s\) \['split'\]"):
        split_rows(index, pd.DataFrame({"study_id": [1, 2, 3], "fold": [0, 1, 2]}))
