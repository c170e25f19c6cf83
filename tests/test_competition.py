"""Tests for lss.competition: the 25 targets, the submission checks and the score.

The score is checked three ways: against an independent implementation written here
(a merge on row_id and scikit-learn's ``log_loss`` per group with explicit weights),
against values worked out by hand, and on the real labels (skipped when absent).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss

from lss.competition import (
    CONDITION_GROUP,
    CONSTANT_KINDS,
    GROUPS,
    PROBA_COLUMNS,
    TARGETS,
    bootstrap_gap,
    check_submission,
    constant_submission,
    parse_row_id,
    row_ids,
    score,
    solution_frame,
    study_terms,
)
from lss.config import CONDITIONS, LEVELS, SEVERITIES
from lss.errors import DataError

EPS = np.finfo(np.float64).eps
COLS = list(PROBA_COLUMNS)


# --------------------------------------------------------------------------- helpers


def wide(labels: dict[int, dict[str, str | None]], default: str = "Normal/Mild") -> pd.DataFrame:
    """A train.csv-style table: every target ``default`` except the given cells."""
    rows = []
    for study, cells in labels.items():
        row = {"study_id": study, **{t: default for t in TARGETS}}
        row.update(cells)
        rows.append(row)
    return pd.DataFrame(rows)


def submission(studies, proba=(1 / 3, 1 / 3, 1 / 3)) -> pd.DataFrame:
    """A submission with ``proba`` on every row."""
    return pd.DataFrame({"row_id": row_ids(studies), **dict(zip(COLS, proba, strict=True))})


def set_row(sub: pd.DataFrame, row_id: str, values) -> pd.DataFrame:
    """A copy of ``sub`` with one row's probabilities replaced."""
    out = sub.copy()
    assert (out["row_id"] == row_id).sum() == 1, row_id
    out.loc[out["row_id"] == row_id, COLS] = values
    return out


def reference_score(solution: pd.DataFrame, sub: pd.DataFrame) -> dict[str, float]:
    """The metric written independently: merge on row_id, clip then normalise each row,
    scikit-learn's log_loss per group with the solution's weights, then the any-severe
    term from a groupby of the merged spinal rows."""
    m = solution.merge(sub, on="row_id", how="left", suffixes=("_true", "_pred"),
                       validate="one_to_one")
    pred = m[[c + "_pred" for c in COLS]].to_numpy(float)
    clipped = np.clip(pred, EPS, 1 - EPS)
    normed = clipped / clipped.sum(axis=1)[:, None]
    true = m[[c + "_true" for c in COLS]].to_numpy().argmax(axis=1)
    kind = m["row_id"].map(lambda r: "spinal" if "_spinal_" in r else
                           "foraminal" if "_foraminal_" in r else "subarticular")
    terms = {}
    for g in ("spinal", "foraminal", "subarticular"):
        sel = (kind == g).to_numpy()
        terms[g] = log_loss(true[sel], normed[sel], sample_weight=m["sample_weight"][sel],
                            labels=[0, 1, 2])
    sp = m[kind == "spinal"].assign(study=lambda d: d["row_id"].str.split("_").str[0])
    agg = sp.groupby("study").agg(label=("severe_true", "max"), w=("sample_weight", "max"),
                                  p=("severe_pred", "max"))
    terms["any_severe_spinal"] = log_loss(agg["label"], np.clip(agg["p"], EPS, 1 - EPS),
                                          sample_weight=agg["w"], labels=[0, 1])
    terms["score"] = float(np.mean(list(terms.values())))
    return terms


@pytest.fixture
def messy():
    """Seven studies with missing labels, and a submission with rows that are not
    normalised (sums from 0.1 to 3, some entries above 1, zero rows and zero entries),
    shuffled and on a non-default index."""
    rng = np.random.default_rng(7)
    studies = [11, 222, 3333, 44, 5, 606, 70707]
    cells = {}
    for s in studies:
        grades = rng.choice(SEVERITIES, size=len(TARGETS), p=[0.6, 0.25, 0.15]).astype(object)
        grades[rng.random(len(TARGETS)) < 0.1] = None
        cells[s] = dict(zip(TARGETS, grades, strict=True))
    cells[11]["spinal_canal_stenosis_l4_l5"] = "Severe"  # both any-severe labels occur
    cells[5].update({f"spinal_canal_stenosis_{lv}": "Normal/Mild" for lv in
                     ("l1_l2", "l2_l3", "l3_l4", "l4_l5", "l5_s1")})
    train = wide(cells)
    n = len(studies) * 25
    p = rng.dirichlet([1, 1, 1], size=n) * rng.uniform(0.1, 3, (n, 1))
    p[rng.random(p.shape) < 0.05] = 0.0
    # scikit-learn >= 1.7 clips again after the reference has normalised: keep rows with a
    # zero entry at sums <= 0.9, where the normalised eps stays above eps
    zero = (p == 0).any(axis=1)
    p[zero] /= np.maximum(p[zero].sum(axis=1, keepdims=True) / 0.9, 1)
    p[3] = 0.0
    sub = pd.DataFrame({"row_id": row_ids(studies), **{c: p[:, i] for i, c in enumerate(COLS)}})
    sub = sub.sample(frac=1, random_state=1)
    sub.index = np.arange(1000, 1000 + len(sub))
    return train, sub


# --------------------------------------------------------------------------- targets


def test_targets_follow_the_sample_submission(phantom_root):
    sample = pd.read_csv(phantom_root / "sample_submission.csv")
    studies = sample["row_id"].str.split("_").str[0].unique()
    assert len(TARGETS) == 25 and len(set(TARGETS)) == 25
    assert row_ids(studies) == sample["row_id"].tolist()
    assert list(sample.columns[1:]) == COLS
    check_submission(sample, studies)


def test_targets_follow_the_real_sample_submission(labels_dir):
    sample = pd.read_csv(labels_dir / "sample_submission.csv")
    assert row_ids([44036939]) == sample["row_id"].tolist()


def test_every_target_parses_back():
    for target in TARGETS:
        study, condition, level = parse_row_id(f"4018886_{target}")
        assert (study, condition in CONDITIONS, level in LEVELS) == (4018886, True, True)
        assert f"4018886_{target}" == row_ids([study])[TARGETS.index(target)]
    assert parse_row_id("12_right_neural_foraminal_narrowing_l5_s1") == (
        12, "right_neural_foraminal_narrowing", "L5/S1")


@pytest.mark.parametrize("bad", ["abc_spinal_canal_stenosis_l1_l2", "12_spinal_canal_stenosis",
                                 "12_spinal_canal_stenosis_l6_l7", "12", "-3_" + TARGETS[0]])
def test_parse_row_id_names_a_malformed_row_id(bad):
    with pytest.raises(DataError, match=f"row_id '{bad}'"):
        parse_row_id(bad)


def test_groups_pool_both_sides():
    by_group = {g: sorted(c for c, cg in CONDITION_GROUP.items() if cg == g) for g in GROUPS}
    assert by_group == {"spinal": ["spinal_canal_stenosis"],
                        "foraminal": ["left_neural_foraminal_narrowing",
                                      "right_neural_foraminal_narrowing"],
                        "subarticular": ["left_subarticular_stenosis",
                                         "right_subarticular_stenosis"]}


def test_row_ids_keep_study_order_and_list_a_repeat_once():
    ids = row_ids(["9", 8, np.int64(9)])
    assert len(ids) == 50 and ids[0].startswith("9_") and ids[25].startswith("8_")
    with pytest.raises(DataError, match="study_id 1.5"):
        row_ids([1.5])


# --------------------------------------------------------------------------- solution


def test_solution_frame_by_hand():
    train = wide({7: {"spinal_canal_stenosis_l4_l5": "Severe",
                      "left_subarticular_stenosis_l1_l2": "Moderate",
                      "right_subarticular_stenosis_l2_l3": None},
                  3: {"spinal_canal_stenosis_l1_l2": np.nan}})
    before = train.copy()
    sol = solution_frame(train)
    pd.testing.assert_frame_equal(train, before)
    assert sol.attrs["n_missing"] == 2 and len(sol) == 48
    assert list(sol.columns) == ["row_id", *COLS, "sample_weight"]
    assert sol["row_id"].iloc[0] == "7_" + TARGETS[0]
    assert sol["row_id"].iloc[24] == "3_" + TARGETS[0]
    assert "7_right_subarticular_stenosis_l2_l3" not in set(sol["row_id"])
    row = sol.set_index("row_id")
    assert row.loc["7_spinal_canal_stenosis_l4_l5"].tolist() == [0, 0, 1, 4.0]
    assert row.loc["7_left_subarticular_stenosis_l1_l2"].tolist() == [0, 1, 0, 2.0]
    assert row.loc["3_spinal_canal_stenosis_l5_s1"].tolist() == [1, 0, 0, 1.0]
    assert (sol[COLS].sum(axis=1) == 1).all()


def test_solution_frame_counts_the_real_missing_labels(labels_dir):
    sol = solution_frame(pd.read_csv(labels_dir / "train.csv"))
    assert sol.attrs["n_missing"] == 572  # the README's count of empty cells
    assert len(sol) == 1975 * 25 - 572
    assert sol["sample_weight"].value_counts(normalize=True).round(3).to_dict() == {
        1.0: 0.774, 2.0: 0.163, 4.0: 0.063}


def test_solution_frame_names_the_bad_cell():
    with pytest.raises(DataError, match="study 7: spinal_canal_stenosis_l2_l3 is 'severe'"):
        solution_frame(wide({7: {"spinal_canal_stenosis_l2_l3": "severe"}}))
    with pytest.raises(DataError, match="study 7 more than once"):
        solution_frame(pd.concat([wide({7: {}}), wide({7: {}})]))
    with pytest.raises(DataError, match=f"no column '{TARGETS[3]}'"):
        solution_frame(wide({7: {}}).drop(columns=TARGETS[3]))


# --------------------------------------------------------------------------- score


def test_score_matches_an_independent_implementation(messy):
    train, sub = messy
    sol = solution_frame(train)
    got, want = score(sol, sub), reference_score(sol, sub)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-9), key
    assert got["n_rows"] == len(sol) == 25 * 7 - sol.attrs["n_missing"]
    assert got["n_unscored"] == sol.attrs["n_missing"] > 0
    assert got["n_studies"] == 7


def test_study_terms_add_up_to_the_score(messy):
    train, sub = messy
    sol = solution_frame(train)
    parts, want = study_terms(sol, sub), score(sol, sub)
    assert list(parts.index) == sorted(train["study_id"])
    for term, name in [(g, g) for g in GROUPS] + [("any_severe_spinal", "any_severe")]:
        total = parts[f"{name}_loss"].sum() / parts[f"{name}_weight"].sum()
        assert total == pytest.approx(want[term], rel=1e-12), term


def test_bootstrap_gap_resamples_studies_not_rows(messy):
    train, sub = messy
    sol = solution_frame(train)
    uniform = submission(train["study_id"])
    gap = bootstrap_gap(sol, sub, uniform, n_resamples=300, seed=3)
    a, b = score(sol, sub), score(sol, uniform)
    for term in gap.index:
        assert gap.loc[term, "gap"] == pytest.approx(a[term] - b[term], rel=1e-9), term
        assert gap.loc[term, "low"] <= gap.loc[term, "high"]
    assert gap.attrs["n_studies"] == 7
    # a study repeated: the same as its rows scored twice by score() itself
    twice = pd.concat([train, train.assign(study_id=train["study_id"] + 10**6)])
    sub2 = pd.concat([sub, sub.assign(row_id=[f"{int(r.split('_')[0]) + 10**6}_"
                                              f"{r.split('_', 1)[1]}" for r in sub["row_id"]])])
    parts = study_terms(sol, sub)
    doubled = score(solution_frame(twice), sub2)
    w = parts["spinal_weight"].sum() * 2
    assert doubled["spinal"] == pytest.approx(2 * parts["spinal_loss"].sum() / w, rel=1e-12)


def test_bootstrap_gap_of_a_submission_against_itself_is_zero(messy):
    train, sub = messy
    gap = bootstrap_gap(solution_frame(train), sub, sub, n_resamples=50)
    assert (gap[["gap", "low", "high"]].abs().to_numpy() < 1e-12).all()
    assert (gap["share_below"] == 0).all()


def test_score_does_not_modify_its_inputs(messy):
    train, sub = messy
    sol = solution_frame(train)
    sol_before, sub_before = sol.copy(), sub.copy()
    score(sol, sub)
    pd.testing.assert_frame_equal(sol, sol_before)
    pd.testing.assert_frame_equal(sub, sub_before)


def test_score_aligns_on_row_id_not_on_position(messy):
    train, sub = messy
    sol = solution_frame(train)
    ordered = sub.set_index("row_id").loc[row_ids(train["study_id"])].reset_index()
    assert score(sol, sub) == pytest.approx(score(sol, ordered), rel=1e-12)
    assert score(sol, ordered)["score"] != pytest.approx(
        score(sol, ordered.assign(row_id=sub["row_id"].to_numpy()))["score"])


def test_uniform_answer_by_hand():
    sol = solution_frame(wide({1: {"spinal_canal_stenosis_l3_l4": "Severe"}, 2: {}}))
    s = score(sol, submission([1, 2]))
    for g in GROUPS:
        assert s[g] == pytest.approx(math.log(3))
    # study 1: label 1, weight 4, p = 1/3; study 2: label 0, weight 1, p = 1/3
    any_severe = (4 * math.log(3) + 1 * -math.log(2 / 3)) / 5
    assert s["any_severe_spinal"] == pytest.approx(any_severe)
    assert s["score"] == pytest.approx((3 * math.log(3) + any_severe) / 4)
    assert (s["n_rows"], s["n_spinal"], s["n_foraminal"], s["n_subarticular"]) == (50, 10, 20, 20)
    no_term = score(sol, submission([1, 2]), any_severe_weight=0)
    assert no_term["score"] == pytest.approx(math.log(3))


def test_weighted_rows_by_hand():
    """One Moderate foraminal row (weight 2) among Normal/Mild ones (weight 1)."""
    sol = solution_frame(wide({1: {"left_neural_foraminal_narrowing_l2_l3": "Moderate"}}))
    sub = set_row(submission([1], (0.8, 0.1, 0.1)), "1_left_neural_foraminal_narrowing_l2_l3",
                  (0.5, 0.25, 0.25))
    s = score(sol, sub)
    assert s["foraminal"] == pytest.approx((9 * -math.log(0.8) + 2 * -math.log(0.25)) / 11)
    assert s["spinal"] == pytest.approx(-math.log(0.8))


def test_any_severe_term_takes_the_largest_severe_over_levels():
    """No study is Severe; each predicts Severe 0.9 at one spinal level and is sure of
    Normal/Mild elsewhere. That one row is a fifth of the study's spinal rows, but it is
    the study's whole any-severe prediction: the any-severe term is five times the
    spinal term and dominates the score."""
    sol = solution_frame(wide({1: {}, 2: {}}))
    sub = submission([1, 2], (1.0, 0.0, 0.0))
    sub = set_row(sub, "1_spinal_canal_stenosis_l1_l2", (0.1, 0.0, 0.9))
    sub = set_row(sub, "2_spinal_canal_stenosis_l5_s1", (0.1, 0.0, 0.9))
    s = score(sol, sub)
    assert s["spinal"] == pytest.approx(-math.log(0.1) / 5)
    assert s["any_severe_spinal"] == pytest.approx(-math.log(0.1))  # not -log(1 - mean)
    assert s["foraminal"] == pytest.approx(-math.log(1 - 2 * EPS), abs=1e-12)
    assert s["score"] == pytest.approx(s["any_severe_spinal"] * 1.2 / 4)


def test_any_severe_weight_is_the_worst_spinal_grade():
    """Study 1 is at worst Moderate (label 0, weight 2), study 2 Severe (label 1, weight 4)."""
    sol = solution_frame(wide({1: {"spinal_canal_stenosis_l2_l3": "Moderate"},
                               2: {"spinal_canal_stenosis_l4_l5": "Severe",
                                   "spinal_canal_stenosis_l1_l2": "Moderate"}}))
    sub = submission([1, 2], (0.7, 0.1, 0.2))
    sub = set_row(sub, "2_spinal_canal_stenosis_l4_l5", (0.2, 0.2, 0.6))
    s = score(sol, sub)
    want = (2 * -math.log(1 - 0.2) + 4 * -math.log(0.6)) / (2 + 4)
    assert s["any_severe_spinal"] == pytest.approx(want)


def test_any_severe_term_reads_severe_as_submitted():
    """A row (0, 0, 0.01) is sure of Severe once normalised, so the group terms are
    about 0, but the any-severe term reads 0.01 (as the competition's scorer does)."""
    sol = solution_frame(wide({1: {"spinal_canal_stenosis_l4_l5": "Severe"}}))
    sub = submission([1], (1.0, 0.0, 0.0))
    sub = set_row(sub, "1_spinal_canal_stenosis_l4_l5", (0.0, 0.0, 0.01))
    s = score(sol, sub)
    assert s["spinal"] < 1e-12
    assert s["any_severe_spinal"] == pytest.approx(-math.log(0.01))


def test_clipping_comes_before_normalising():
    """(0, 0, 0) counts as uniform; (4, 1, 1) counts as (1, 1, 1) once clipped to 1."""
    sol = solution_frame(wide({1: {}}))
    zeros = set_row(submission([1], (1.0, 0.0, 0.0)), "1_spinal_canal_stenosis_l1_l2", (0, 0, 0))
    assert score(sol, zeros)["spinal"] == pytest.approx(math.log(3) / 5)
    big = set_row(submission([1], (1.0, 0.0, 0.0)), "1_spinal_canal_stenosis_l1_l2", (4, 1, 1))
    assert score(sol, big)["spinal"] == pytest.approx(math.log(3) / 5)
    sure_miss = submission([1], (0.0, 0.0, 1.0))
    assert score(sol, sure_miss)["foraminal"] == pytest.approx(-math.log(EPS / (1 + EPS)))


def test_unlabelled_rows_are_not_scored():
    train = wide({1: {"spinal_canal_stenosis_l3_l4": None,
                      "left_subarticular_stenosis_l1_l2": None},
                  2: {"spinal_canal_stenosis_l4_l5": "Severe"}})
    sol = solution_frame(train)
    base = submission([1, 2], (0.6, 0.3, 0.1))
    changed = set_row(base, "1_spinal_canal_stenosis_l3_l4", (0.0, 0.0, 0.99))
    changed = set_row(changed, "1_left_subarticular_stenosis_l1_l2", (0.0, 0.0, 1.0))
    a, b = score(sol, base), score(sol, changed)
    assert a == b and a["n_unscored"] == 2 and a["n_spinal"] == 9
    scored = set_row(base, "1_spinal_canal_stenosis_l2_l3", (0.0, 0.0, 0.99))
    assert score(sol, scored)["any_severe_spinal"] > a["any_severe_spinal"]


def test_score_refuses_bad_inputs():
    sol = solution_frame(wide({1: {}}))
    sub = submission([1])
    with pytest.raises(DataError, match="missing row_id '1_spinal_canal_stenosis_l5_s1'"):
        score(sol, sub.iloc[:-1])
    with pytest.raises(DataError, match=f"row_id '1_{TARGETS[2]}' appears 2 times"):
        score(sol, pd.concat([sub, sub.iloc[[2]]]))
    with pytest.raises(DataError, match=f"row_id '1_{TARGETS[4]}' has a missing"):
        score(sol, set_row(sub, f"1_{TARGETS[4]}", (np.nan, 0.5, 0.5)))
    with pytest.raises(DataError, match=f"row_id '1_{TARGETS[5]}' has a negative"):
        score(sol, set_row(sub, f"1_{TARGETS[5]}", (-0.1, 0.5, 0.5)))
    not_one_hot = sol.copy()
    not_one_hot.loc[3, "moderate"] = 1
    with pytest.raises(DataError, match=f"solution: row_id '1_{TARGETS[3]}' is not one-hot"):
        score(not_one_hot, sub)
    no_spinal = sol[~sol["row_id"].str.contains("spinal")]
    with pytest.raises(DataError, match="no labelled spinal rows"):
        score(no_spinal, sub)
    with pytest.raises(DataError, match="unexpected"):
        score(sol, sub.assign(extra=1.0))


# --------------------------------------------------------------------------- submission


def _bad(sub: pd.DataFrame, how: str) -> tuple[pd.DataFrame, str]:
    rid = sub["row_id"].iloc[6]
    if how == "missing":
        return sub.drop(index=6), f"missing row_id '{rid}' \\(1 of 50"
    if how == "duplicated":
        return pd.concat([sub, sub.iloc[[6]]]), f"row_id '{rid}' appears 2 times"
    if how == "extra":
        extra = sub.iloc[[6]].assign(row_id="99_" + TARGETS[0])
        return pd.concat([sub, extra]), f"unexpected row_id '99_{TARGETS[0]}'"
    values = {"nan": (0.5, np.nan, 0.5), "inf": (0.5, np.inf, 0.5), "text": (0.5, "x", 0.5),
              "negative": (0.5, -0.01, 0.5), "above_one": (1.5, 0.0, 0.0)}[how]
    bad = sub.astype({c: object for c in COLS}) if how == "text" else sub.copy()
    bad.loc[6, COLS] = values
    why = {"negative": "negative", "above_one": "probability above 1"}.get(
        how, "missing, non-numeric")
    return bad, f"row_id '{rid}' has a {why}"


@pytest.mark.parametrize("how", ["missing", "duplicated", "extra", "nan", "inf", "text",
                                 "negative", "above_one"])
def test_check_submission_names_the_first_bad_row(how):
    sub = submission([5, 6])
    check_submission(sub, [5, 6])
    check_submission(sub.iloc[::-1], ["6", 5, 5])  # any order; a repeated id is one study
    bad, msg = _bad(sub, how)
    with pytest.raises(DataError, match=msg) as info:
        check_submission(bad, [5, 6])
    assert "\n" not in str(info.value)


def test_check_submission_wants_exactly_the_columns():
    sub = submission([5])
    with pytest.raises(DataError, match=r"missing \['severe'\]"):
        check_submission(sub.drop(columns="severe"), [5])
    with pytest.raises(DataError, match=r"unexpected \['study_id'\]"):
        check_submission(sub.assign(study_id=5), [5])
    check_submission(sub.assign(normal_mild=0.2, moderate=0.1, severe=0.1), [5])  # sums < 1: fine


# --------------------------------------------------------------------------- baselines


def test_constant_submissions_by_hand():
    train = wide({1: {"spinal_canal_stenosis_l1_l2": "Severe"}, 2: {},
                  3: {"spinal_canal_stenosis_l1_l2": "Moderate"},
                  4: {"spinal_canal_stenosis_l1_l2": None}})
    target = "spinal_canal_stenosis_l1_l2"
    subs = {k: constant_submission(k, train, [8, 9]).set_index("row_id") for k in CONSTANT_KINDS}
    for sub in subs.values():
        check_submission(sub.reset_index(), [8, 9])
    assert subs["prior"].loc[f"9_{target}"].tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    assert subs["prior"].loc[f"9_{TARGETS[0]}"].tolist() == [1.0, 0.0, 0.0]
    # counts 1, 1, 1 weighted 1, 2, 4
    weighted = subs["weighted_prior"].loc[f"8_{target}"].tolist()
    assert weighted == pytest.approx([1 / 7, 2 / 7, 4 / 7])
    assert subs["uniform"].to_numpy() == pytest.approx(np.full((50, 3), 1 / 3))
    assert subs["uniform"].index.tolist() == row_ids([8, 9])
    with pytest.raises(ValueError, match="Unknown constant 'median'"):
        constant_submission("median", train, [8])
    with pytest.raises(DataError, match=f"no label for {target}"):
        constant_submission("prior", wide({1: {target: None}}), [8])


#: The three constants on all 1,975 real studies (in-sample: fitted and scored on the
#: same rows), measured with this module.
REAL_BASELINES = {
    "prior": {"score": 0.9307, "spinal": 0.8018, "foraminal": 0.8901, "subarticular": 1.0767,
              "any_severe_spinal": 0.9541},
    "uniform": {"score": 0.9994, "spinal": 1.0986, "foraminal": 1.0986, "subarticular": 1.0986,
                "any_severe_spinal": 0.7018},
    "weighted_prior": {"score": 0.7897, "spinal": 0.7063, "foraminal": 0.8037,
                       "subarticular": 0.9508, "any_severe_spinal": 0.6980},
}


def test_constant_baselines_on_the_real_labels(labels_dir):
    train = pd.read_csv(labels_dir / "train.csv")
    sol = solution_frame(train)
    got = {}
    for kind in CONSTANT_KINDS:
        sub = constant_submission(kind, train, train["study_id"])
        check_submission(sub, train["study_id"])
        got[kind] = score(sol, sub)
        want = reference_score(sol, sub)
        assert got[kind]["score"] == pytest.approx(want["score"], rel=1e-9)
        assert got[kind] == pytest.approx({**got[kind], **REAL_BASELINES[kind]}, abs=5e-5)
        assert got[kind]["n_unscored"] == 572 and got[kind]["n_studies"] == 1974
    for key in ("score", *GROUPS, "any_severe_spinal"):
        best = got["weighted_prior"][key]
        assert best <= got["prior"][key] and best <= got["uniform"][key], key
