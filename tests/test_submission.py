"""Tests for lss.submission: the training prior, assembling, writing and summarising.

A hand-made case of two studies with partial predictions checks every row of the
assembled table against what it should be (the prior's row for the target, exactly,
or the predicted row divided by its sum); the phantom checks the order against its
``sample_submission.csv`` and the weighted prior against the plain one under the score.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lss.competition import (
    CONSTANT_KINDS,
    GROUPS,
    PROBA_COLUMNS,
    TARGETS,
    check_submission,
    constant_submission,
    row_ids,
    score,
    solution_frame,
)
from lss.config import RSNA_SAMPLE_WEIGHTS, SEVERITIES
from lss.errors import DataError
from lss.submission import (
    DEFAULT_REASON,
    REPORT_COLUMNS,
    assemble,
    summarise_report,
    training_prior,
    write_submission,
)

COLS = list(PROBA_COLUMNS)
FORAMINAL = [t for t in TARGETS if "foraminal" in t]
SPINAL = [t for t in TARGETS if t.startswith("spinal")]
T1_REASON = "no Sagittal T1 series"
CELL_REASON = "axial series unreadable"
CELL = (22, "left_subarticular_stenosis_l4_l5")


# --------------------------------------------------------------------------- fixtures


def _prior() -> pd.DataFrame:
    """A prior whose 25 rows all differ, so that a row filled from the wrong target shows."""
    raw = np.array([[j + 1.0, 2.0 + (j % 3), 3.0] for j in range(len(TARGETS))])
    return pd.DataFrame(raw / raw.sum(axis=1, keepdims=True),
                        index=pd.Index(TARGETS, name="target"), columns=COLS)


def _predictions() -> pd.DataFrame:
    """Study 11: every target but the foraminal ones; study 22: the spinal canal only.
    Rows unnormalised, shuffled, on an index that is not 0..n-1."""
    rng = np.random.default_rng(0)
    ids = [f"11_{t}" for t in TARGETS if t not in FORAMINAL] + [f"22_{t}" for t in SPINAL]
    values = rng.uniform(0.1, 5.0, size=(len(ids), 3))
    values[0] = [0.0, 0.0, 7.0]  # a legal zero entry
    frame = pd.DataFrame({"row_id": ids, **{c: values[:, k] for k, c in enumerate(COLS)}})
    frame = frame.sample(frac=1.0, random_state=1)
    return frame.set_axis(np.arange(len(frame)) * 10 + 100)


@pytest.fixture
def case():
    prior, pred = _prior(), _predictions()
    reasons = {11: T1_REASON, CELL: CELL_REASON}
    sub, report = assemble([11, 22], pred, prior, reasons=reasons)
    return {"prior": prior, "pred": pred, "sub": sub, "report": report}


def _pred_row(row_id: str, **values) -> pd.DataFrame:
    base = {"normal_mild": 0.2, "moderate": 0.3, "severe": 0.5}
    return pd.DataFrame([{"row_id": row_id, **{**base, **values}}])


def _wide(labels: dict[str, list]) -> pd.DataFrame:
    """A train.csv-style table: every target gets ``labels[target]`` or the default."""
    n = len(next(iter(labels.values())))
    default = ["Normal/Mild"] * n
    return pd.DataFrame({"study_id": range(1, n + 1),
                         **{t: labels.get(t, default) for t in TARGETS}})


# --------------------------------------------------------------------------- prior


def test_training_prior_matches_class_shares_counted_here():
    labels = {TARGETS[0]: ["Normal/Mild", "Normal/Mild", "Moderate", "Severe", None],
              TARGETS[7]: ["Severe", "Severe", "Moderate", "Moderate", "Moderate"]}
    wide = _wide(labels)
    for kind, weights in (("prior", (1, 1, 1)), ("weighted_prior", RSNA_SAMPLE_WEIGHTS)):
        prior = training_prior(wide, kind=kind)
        assert prior.shape == (25, 3) and list(prior.index) == list(TARGETS)
        assert list(prior.columns) == COLS
        for target in (TARGETS[0], TARGETS[7], TARGETS[3]):
            counts = np.array([labels.get(target, ["Normal/Mild"] * 5).count(s)
                               for s in SEVERITIES], dtype=float)
            mass = counts * np.asarray(weights, dtype=float)
            np.testing.assert_allclose(prior.loc[target], mass / mass.sum())
    uniform = training_prior(None, kind="uniform")
    assert (uniform.to_numpy() == 1 / 3).all()


def test_training_prior_is_constant_submission_per_target(phantom_root):
    train = pd.read_csv(phantom_root / "train.csv")
    for kind in CONSTANT_KINDS:
        rows = constant_submission(kind, train, [5])
        prior = training_prior(train, kind=kind)
        np.testing.assert_array_equal(prior.to_numpy(), rows[COLS].to_numpy())
        np.testing.assert_allclose(prior.sum(axis=1), 1.0)


def test_training_prior_refuses_an_unknown_kind():
    with pytest.raises(ValueError, match="Unknown constant 'median'"):
        training_prior(None, kind="median")


# --------------------------------------------------------------------------- assemble


def test_filled_rows_equal_the_prior_exactly(case):
    sub = case["sub"].set_index("row_id")
    predicted = set(case["pred"]["row_id"])
    filled = [r for r in sub.index if r not in predicted]
    assert len(filled) == 50 - len(predicted) == 30
    for rid in filled:
        target = rid.partition("_")[2]
        assert sub.loc[rid].tolist() == case["prior"].loc[target].tolist(), rid


def test_predicted_rows_are_divided_by_their_sums(case):
    sub = case["sub"].set_index("row_id")
    pred = case["pred"].set_index("row_id")
    expected = pred[COLS].to_numpy() / pred[COLS].to_numpy().sum(axis=1, keepdims=True)
    np.testing.assert_allclose(sub.loc[pred.index, COLS].to_numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(sub[COLS].sum(axis=1), 1.0, rtol=1e-12)


def test_submission_is_in_row_ids_order_and_passes_the_check(case):
    assert case["sub"]["row_id"].tolist() == row_ids([11, 22])
    assert list(case["sub"].columns) == ["row_id", *COLS]
    assert isinstance(case["sub"].index, pd.RangeIndex)
    check_submission(case["sub"], [11, 22])
    # studies in the order given, not sorted; repeats (a series table's column) once
    sub, report = assemble(["22", 11, 22], case["pred"], case["prior"])
    assert sub["row_id"].tolist() == row_ids([22, 11])
    filled = [f"{s}_{t}" for s, t in zip(report["study_id"], report["target"], strict=True)]
    assert filled == [r for r in sub["row_id"] if r not in set(case["pred"]["row_id"])]
    assert filled[0] == f"22_{TARGETS[0]}"


def test_report_lists_exactly_the_filled_rows_with_their_reasons(case):
    report = case["report"]
    assert list(report.columns) == list(REPORT_COLUMNS)
    expected = ([(11, t, T1_REASON) for t in FORAMINAL]
                + [(22, t, CELL_REASON if (22, t) == CELL else DEFAULT_REASON)
                   for t in TARGETS if t not in SPINAL])
    expected.sort(key=lambda e: (e[0], TARGETS.index(e[1])))  # submission order
    assert list(report.itertuples(index=False, name=None)) == expected
    assert report["study_id"].dtype == np.int64
    assert report.attrs["n_rows"] == 50


def test_a_reason_for_the_row_wins_over_its_study():
    reasons = {22: "study-wide", CELL: CELL_REASON}
    _, report = assemble([11, 22], _predictions(), _prior(), reasons=reasons)
    why = report.set_index(["study_id", "target"])["reason"]
    assert why[CELL] == CELL_REASON
    assert (why.drop(index=[CELL]).loc[22] == "study-wide").all()
    assert (why.loc[11] == DEFAULT_REASON).all()


def test_assemble_does_not_modify_its_inputs():
    prior, pred = _prior(), _predictions()
    prior0, pred0 = prior.copy(), pred.copy()
    reasons = {11: T1_REASON}
    assemble([11, 22], pred, prior, reasons=reasons)
    pd.testing.assert_frame_equal(prior, prior0)
    pd.testing.assert_frame_equal(pred, pred0)
    assert reasons == {11: T1_REASON}


def test_no_predictions_gives_the_prior_everywhere():
    prior = _prior()
    for empty in (None, pd.DataFrame(columns=["row_id", *COLS])):
        sub, report = assemble([3], empty, prior)
        np.testing.assert_array_equal(sub[COLS].to_numpy(), prior.to_numpy())
        assert len(report) == 25 and set(report["reason"]) == {DEFAULT_REASON}


def test_prior_rows_may_come_in_any_order():
    prior = _prior()
    sub, _ = assemble([3], None, prior.iloc[::-1])
    np.testing.assert_array_equal(sub[COLS].to_numpy(), prior.to_numpy())


@pytest.mark.parametrize(("bad", "match"), [
    (pd.concat([_pred_row("11_spinal_canal_stenosis_l1_l2")] * 2),
     "row_id '11_spinal_canal_stenosis_l1_l2' is predicted 2 times"),
    (pd.concat([_pred_row("11_spinal_canal_stenosis_l1_l2"),
                _pred_row("011_spinal_canal_stenosis_l1_l2")]),
     "row_id '11_spinal_canal_stenosis_l1_l2' is predicted 2 times .*'011_spinal"),
    (_pred_row("33_spinal_canal_stenosis_l1_l2"),
     "row_id '33_spinal_canal_stenosis_l1_l2' is of study 33, which is not among"),
    (_pred_row("11_spinal_canal_stenosis_l1_l2", moderate=np.nan),
     "row_id '11_spinal_canal_stenosis_l1_l2' has a missing, non-numeric or infinite"),
    (_pred_row("11_spinal_canal_stenosis_l1_l2", severe=np.inf),
     "row_id '11_spinal_canal_stenosis_l1_l2' has a missing, non-numeric or infinite"),
    (_pred_row("11_spinal_canal_stenosis_l1_l2", severe="high"),
     "row_id '11_spinal_canal_stenosis_l1_l2' has a missing, non-numeric or infinite"),
    (_pred_row("22_spinal_canal_stenosis_l3_l4", moderate=-0.1),
     "row_id '22_spinal_canal_stenosis_l3_l4' has a negative value"),
    (_pred_row("22_spinal_canal_stenosis_l3_l4", normal_mild=0.0, moderate=0.0, severe=0.0),
     "row_id '22_spinal_canal_stenosis_l3_l4' has values summing to 0"),
    (_pred_row("11_spinal_canal_stenosis_l6_s2"),
     "predictions row 1: row_id '11_spinal_canal_stenosis_l6_s2' is not <study_id>"),
    (_pred_row("spinal_canal_stenosis_l1_l2"),
     "row_id 'spinal_canal_stenosis_l1_l2' is not <study_id>"),
    (_pred_row("11_spinal_canal_stenosis_l1_l2").assign(study_id=11),
     r"unexpected \['study_id'\]"),
    (_pred_row("11_spinal_canal_stenosis_l1_l2").drop(columns="severe"),
     r"missing \['severe'\]"),
])
def test_bad_predictions_are_one_line_errors_naming_the_row(bad, match):
    good = _pred_row("22_spinal_canal_stenosis_l1_l2")
    same = list(bad.columns) == list(good.columns)
    pred = pd.concat([good, bad], ignore_index=True) if same else bad
    with pytest.raises(DataError, match=match) as info:
        assemble([11, 22], pred, _prior())
    assert "\n" not in str(info.value)


def test_a_bad_row_is_named_even_after_good_rows():
    """The row named is the bad one, not the first row of the frame."""
    pred = pd.concat([_pred_row(f"11_{t}") for t in TARGETS[:5]]
                     + [_pred_row(f"11_{TARGETS[5]}", severe=-1.0)]).set_axis(range(6, 0, -1))
    with pytest.raises(DataError, match=f"row_id '11_{TARGETS[5]}' has a negative value"):
        assemble([11], pred, _prior())


@pytest.mark.parametrize(("prior", "match"), [
    (_prior().drop(index=TARGETS[4]), f"missing target '{TARGETS[4]}'"),
    (_prior().rename(index={TARGETS[4]: "spinal_canal_stenosis_l9"}),
     "unknown target 'spinal_canal_stenosis_l9'"),
    (_prior().assign(severe=_prior()["severe"] + 0.1), f"target '{TARGETS[0]}' is not a "
                                                        "probability row summing to 1"),
    (_prior()[["severe", "moderate", "normal_mild"]], "prior must have the columns"),
])
def test_a_bad_prior_is_refused_naming_the_target(prior, match):
    with pytest.raises(DataError, match=match):
        assemble([11], None, prior)


@pytest.mark.parametrize(("reasons", "match"), [
    ({33: T1_REASON}, "reasons: study 33 is not among"),
    ({(11, "spinal_canal_stenosis"): T1_REASON}, "is not a study_id or a"),
    ({(22, SPINAL[0]): T1_REASON}, f"row_id '22_{SPINAL[0]}' has a reason .* but was predicted"),
    ({11: ""}, "must be a non-empty string"),
])
def test_bad_reasons_are_refused(reasons, match):
    with pytest.raises(DataError, match=match):
        assemble([11, 22], _predictions(), _prior(), reasons=reasons)


def test_assemble_refuses_no_studies():
    with pytest.raises(DataError, match="no study ids"):
        assemble([], None, _prior())


# --------------------------------------------------------------------------- phantom


def test_phantom_sample_submission_order(phantom_root):
    sample = pd.read_csv(phantom_root / "sample_submission.csv")
    series = pd.read_csv(phantom_root / "test_series_descriptions.csv")
    in_sample = list(dict.fromkeys(r.partition("_")[0] for r in sample["row_id"]))
    assert set(in_sample) == {str(s) for s in series["study_id"]}
    sub, report = assemble(in_sample, None, training_prior(None, kind="uniform"))
    assert sub["row_id"].tolist() == sample["row_id"].tolist()
    assert len(report) == len(sample) == 25 * len(in_sample)
    check_submission(sub, series["study_id"])  # every test study, whatever the order
    np.testing.assert_allclose(sub[COLS].to_numpy(), sample[COLS].to_numpy())


def test_weighted_prior_scores_no_worse_than_the_prior_in_sample(phantom_root):
    train = pd.read_csv(phantom_root / "train.csv")
    solution = solution_frame(train)
    scores = {kind: score(solution, assemble(train["study_id"], None,
                                             training_prior(train, kind=kind))[0])
              for kind in ("prior", "weighted_prior")}
    for term in GROUPS:  # the best constant for each group term, so never worse
        assert scores["weighted_prior"][term] <= scores["prior"][term] + 1e-12, term
    assert scores["weighted_prior"]["score"] <= scores["prior"]["score"]
    # strictly better here (0.78 against 0.93): the kinds are not mixed up
    assert scores["weighted_prior"]["score"] < scores["prior"]["score"] - 0.05
    assert scores["prior"]["n_unscored"] > 0  # the phantom has unlabelled cells


# --------------------------------------------------------------------------- writing


def test_write_submission_round_trip_and_report(case, tmp_path):
    path = tmp_path / "out" / "nested" / "submission.csv"
    written = write_submission(path, case["sub"], case["report"])
    report_path = tmp_path / "out" / "nested" / "submission_report.csv"
    assert written == [path, report_path]
    back = pd.read_csv(path)
    pd.testing.assert_frame_equal(back, case["sub"], check_exact=True)
    pd.testing.assert_frame_equal(pd.read_csv(report_path), case["report"],
                                  check_dtype=False)
    assert path.read_text().splitlines()[0] == "row_id,normal_mild,moderate,severe"


def test_write_submission_without_filled_rows_writes_no_report(tmp_path):
    path = tmp_path / "sub.csv"
    stale = tmp_path / "sub_report.csv"
    stale.write_text("study_id,target,reason\n1,x,old run\n")
    pred = pd.DataFrame({"row_id": row_ids([4]), "normal_mild": 1.0, "moderate": 0.0,
                         "severe": 0.0})
    sub, report = assemble([4], pred, _prior())
    assert report.empty
    assert write_submission(path, sub, report) == [path]
    assert not stale.exists()


def test_write_submission_refuses_a_folder_and_a_bad_table(case, tmp_path):
    with pytest.raises(DataError, match=f"{tmp_path} is a folder"):
        write_submission(tmp_path, case["sub"], case["report"])
    (tmp_path / "blocker").write_text("")
    with pytest.raises(DataError, match="blocker for sub.csv: a file is in the way"):
        write_submission(tmp_path / "blocker" / "sub.csv", case["sub"], case["report"])
    with pytest.raises(DataError, match="missing row_id '22_spinal_canal_stenosis_l5_s1'"):
        write_submission(tmp_path / "s.csv", case["sub"].iloc[:-1], case["report"])
    assert not (tmp_path / "s.csv").exists()


# --------------------------------------------------------------------------- summary


def test_summarise_report_counts_rows_by_study_reason_and_group(case):
    text = summarise_report(case["report"])
    assert text.splitlines()[0] == "30 of 50 rows came from the training prior (2 studies):"
    lines = text.splitlines()
    assert lines[1] == f"  study 11 ({T1_REASON}): 10 foraminal rows"
    assert lines[2] == f"  study 22 ({DEFAULT_REASON}): 10 foraminal + 9 subarticular rows"
    assert lines[3] == f"  study 22 ({CELL_REASON}): 1 subarticular row"
    assert len(lines) == 4


def test_summarise_report_shortens_many_studies_and_says_when_none():
    sub, report = assemble(range(1, 9), None, _prior())
    lines = summarise_report(report).splitlines()
    assert lines[0] == "200 of 200 rows came from the training prior (8 studies):"
    assert lines[1] == f"  study 1 ({DEFAULT_REASON}): all 25 rows"
    assert lines[-1] == "  ... and 3 more (see the report)" and len(lines) == 7
    empty = report.iloc[:0]
    assert summarise_report(empty, n_rows=25) == (
        "All 25 rows were predicted; none came from the training prior.")
    assert summarise_report(pd.DataFrame(columns=list(REPORT_COLUMNS))) == (
        "No row came from the training prior.")
