"""Continual-learning metrics: hand-computed matrices, edge cases, validation, AccuracyMatrix, properties."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trmgym.metrics import (
    AccuracyMatrix,
    avg_accuracy,
    avg_forgetting,
    bwt,
    forgetting,
    forward_transfer_auc,
    fwt,
    summarize,
    undefined_note,
)

# R[i][j]: accuracy on task j after training task i.
R3 = [
    [0.9, 0.1, 0.2],
    [0.6, 0.8, 0.3],
    [0.5, 0.7, 0.95],
]
B3 = [0.1, 0.05, 0.1]

R4 = [
    [0.8, 0.9, 0.1, 0.0],
    [0.7, 0.6, 0.2, 0.1],
    [0.4, 0.6, 0.9, 0.3],
    [0.5, 0.3, 0.5, 0.7],
]
B4 = [0.0, 0.1, 0.1, 0.1]

# Accuracy on old tasks rises later: negative forgetting, positive BWT.
R3_IMPROVING = [
    [0.4, 0.0, 0.0],
    [0.5, 0.6, 0.0],
    [0.9, 0.8, 0.7],
]


def assert_same_summary(got: dict, expected: dict) -> None:
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == (value if value is None else pytest.approx(value)), key


# ---------------------------------------------------------------------------------- 3 x 3


def test_avg_accuracy_3x3() -> None:
    # last row: (0.5 + 0.7 + 0.95) / 3 = 2.15 / 3
    assert avg_accuracy(R3) == pytest.approx(2.15 / 3)


def test_forgetting_3x3() -> None:
    # j=0: max(R00=0.9, R10=0.6) - R20=0.5 = 0.4
    # j=1: max(R11=0.8) - R21=0.7 = 0.1   (R01=0.1 is before task 1 was trained: not counted)
    assert forgetting(R3) == pytest.approx([0.4, 0.1])
    # (0.4 + 0.1) / 2
    assert avg_forgetting(R3) == pytest.approx(0.25)


def test_bwt_3x3() -> None:
    # ((R20 - R00) + (R21 - R11)) / 2 = ((0.5 - 0.9) + (0.7 - 0.8)) / 2 = (-0.4 - 0.1) / 2
    assert bwt(R3) == pytest.approx(-0.25)


def test_fwt_3x3() -> None:
    # ((R01 - b1) + (R12 - b2)) / 2 = ((0.1 - 0.05) + (0.3 - 0.1)) / 2 = (0.05 + 0.2) / 2
    assert fwt(R3, B3) == pytest.approx(0.125)


# ---------------------------------------------------------------------------------- 4 x 4


def test_avg_accuracy_4x4() -> None:
    # (0.5 + 0.3 + 0.5 + 0.7) / 4 = 2.0 / 4
    assert avg_accuracy(R4) == pytest.approx(0.5)


def test_forgetting_4x4_ties_and_zero_shot_rows_ignored() -> None:
    # j=0: max(0.8, 0.7, 0.4) - 0.5 = 0.3
    # j=1: max(R11=0.6, R21=0.6) - 0.3 = 0.3   (a tie over two rows; R01=0.9 is zero-shot transfer
    #      measured before task 1 was trained, so it is excluded — including it would give 0.6)
    # j=2: max(R22=0.9) - 0.5 = 0.4
    assert forgetting(R4) == pytest.approx([0.3, 0.3, 0.4])
    # (0.3 + 0.3 + 0.4) / 3 = 1 / 3
    assert avg_forgetting(R4) == pytest.approx(1 / 3)


def test_bwt_4x4() -> None:
    # ((0.5 - 0.8) + (0.3 - 0.6) + (0.5 - 0.9)) / 3 = (-0.3 - 0.3 - 0.4) / 3 = -1 / 3
    assert bwt(R4) == pytest.approx(-1 / 3)


def test_fwt_4x4_against_random_init() -> None:
    # ((R01 - b1) + (R12 - b2) + (R23 - b3)) / 3 = ((0.9 - 0.1) + (0.2 - 0.1) + (0.3 - 0.1)) / 3
    #   = (0.8 + 0.1 + 0.2) / 3 = 1.1 / 3
    assert fwt(R4, B4) == pytest.approx(1.1 / 3)
    # a better random init lowers FWT by the mean of b_1..b_{T-1}; b_0 is never read
    assert fwt(R4, [0.9, 0.2, 0.2, 0.2]) == pytest.approx((0.7 + 0.0 + 0.1) / 3)
    assert fwt(R4, [None, 0.1, 0.1, 0.1]) == pytest.approx(1.1 / 3)


def test_summarize_4x4() -> None:
    result = summarize(np.array(R4), B4, reasoning_steps=[2, 4, 6, 8])
    assert set(result) == {
        "avg_accuracy",
        "avg_forgetting",
        "bwt",
        "fwt",
        "avg_reasoning_steps",
        "forgetting",
    }
    assert result["avg_accuracy"] == pytest.approx(0.5)
    assert result["avg_forgetting"] == pytest.approx(1 / 3)
    assert result["bwt"] == pytest.approx(-1 / 3)
    assert result["fwt"] == pytest.approx(1.1 / 3)
    assert result["avg_reasoning_steps"] == pytest.approx(5.0)  # (2 + 4 + 6 + 8) / 4
    assert result["forgetting"] == pytest.approx([0.3, 0.3, 0.4])
    json.dumps(result)  # plain Python values only: must serialise for results.json
    assert all(type(result[key]) is float for key in ("avg_accuracy", "bwt", "fwt"))


def test_summarize_without_optional_inputs() -> None:
    result = summarize(R3)
    assert result["fwt"] is None
    assert result["avg_reasoning_steps"] is None
    assert result["bwt"] == pytest.approx(-0.25)


# ---------------------------------------------------------------------------------- signs, ties


def test_negative_forgetting_and_positive_bwt() -> None:
    # j=0: max(R00=0.4, R10=0.5) - R20=0.9 = -0.4 ; j=1: R11=0.6 - R21=0.8 = -0.2
    assert forgetting(R3_IMPROVING) == pytest.approx([-0.4, -0.2])
    assert avg_forgetting(R3_IMPROVING) == pytest.approx(-0.3)
    # ((0.9 - 0.4) + (0.8 - 0.6)) / 2 = 0.35 ; differs from -avg_forgetting because column 0's max
    # is at row 1, not on the diagonal
    assert bwt(R3_IMPROVING) == pytest.approx(0.35)


def test_forgetting_tie_over_all_rows() -> None:
    tied = [
        [0.5, 0.0, 0.0],
        [0.5, 0.5, 0.0],
        [0.2, 0.5, 0.5],
    ]
    # j=0: max(0.5, 0.5) - 0.2 = 0.3 ; j=1: 0.5 - 0.5 = 0.0
    assert forgetting(tied) == pytest.approx([0.3, 0.0])
    assert bwt(tied) == pytest.approx(-0.15)  # ((0.2 - 0.5) + (0.5 - 0.5)) / 2


# ---------------------------------------------------------------------------------- T = 1


def test_single_task_metrics_are_undefined_not_zero() -> None:
    single = [[0.7]]
    assert avg_accuracy(single) == pytest.approx(0.7)
    assert forgetting(single) == []
    assert avg_forgetting(single) is None
    assert bwt(single) is None
    assert fwt(single, [0.3]) is None
    result = summarize(single, [0.3], reasoning_steps=[3.0])
    assert result == {
        "avg_accuracy": pytest.approx(0.7),
        "avg_forgetting": None,
        "bwt": None,
        "fwt": None,
        "avg_reasoning_steps": 3.0,
        "forgetting": [],
    }
    saved = json.loads(json.dumps(result, allow_nan=False))
    assert saved["bwt"] is None and saved["fwt"] is None and saved["avg_forgetting"] is None
    assert '"bwt": null' in json.dumps(result)
    with pytest.raises(ValueError, match="one entry per task"):
        fwt(single, [0.3, 0.4])  # b is still checked when the metric is undefined


def test_fwt_without_random_init_accuracy_is_undefined() -> None:
    assert fwt(R3, None) is None


def test_undefined_note_says_why_once() -> None:
    assert undefined_note(["avg_forgetting", "bwt", "fwt"]) == (
        "n/a: BWT and forgetting need at least 2 tasks; "
        "FWT needs at least 2 tasks and random-init accuracies"
    )
    # per-task keys count as their metric; each label appears once
    assert undefined_note(["forgetting[maze]", "avg_forgetting"]) == (
        "n/a: forgetting needs at least 2 tasks"
    )
    assert "reference" in undefined_note(["ft"])
    assert undefined_note(["custom"]) == "n/a: custom needs a value this run did not produce"
    assert undefined_note([]) is None


# ---------------------------------------------------------------------------------- NaN handling


def test_unread_upper_triangle_may_be_missing() -> None:
    partial = np.array(R3)
    partial[0, 2] = np.nan  # never read: not diagonal, not superdiagonal, not last row
    assert_same_summary(summarize(partial, B3), summarize(R3, B3))
    listed = [[0.9, 0.1, None], [0.6, 0.8, 0.3], [0.5, 0.7, 0.95]]
    assert bwt(listed) == pytest.approx(-0.25)


@pytest.mark.parametrize(
    ("metric", "cell", "pattern"),
    [
        (avg_accuracy, (2, 1), r"accuracy_matrix has NaN at \[2\]\[1\].*avg_accuracy"),
        (forgetting, (1, 0), r"accuracy_matrix has NaN at \[1\]\[0\].*forgetting"),
        (bwt, (1, 1), r"accuracy_matrix has NaN at \[1\]\[1\].*bwt"),
        (lambda r: fwt(r, B3), (1, 2), r"accuracy_matrix has NaN at \[1\]\[2\].*fwt"),
    ],
)
def test_nan_where_needed_is_refused(metric, cell, pattern) -> None:
    partial = np.array(R3)
    partial[cell] = np.nan
    with pytest.raises(ValueError, match=pattern):
        metric(partial)


# ---------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("matrix", "pattern"),
    [
        ([[0.1, 0.2]], r"accuracy_matrix must be square.*\(1, 2\)"),
        ([0.1, 0.2], r"accuracy_matrix must be a 2-D"),
        (np.zeros((2, 2, 2)), r"accuracy_matrix must be a 2-D.*3 dimension"),
        (np.zeros((0, 0)), r"accuracy_matrix must cover at least one task"),
        ([[0.1, 1.2], [0.3, 0.4]], r"accuracy_matrix values must lie in \[0, 1\].*1\.2.*\(0, 1\)"),
        ([[-0.1]], r"accuracy_matrix values must lie in \[0, 1\]"),
        ([[np.inf]], r"accuracy_matrix values must lie in \[0, 1\]"),
        ([[0.1, 0.2], [0.3]], r"accuracy_matrix must be a rectangular array"),
    ],
)
def test_malformed_matrix_is_refused(matrix, pattern) -> None:
    with pytest.raises(ValueError, match=pattern):
        summarize(matrix)


@pytest.mark.parametrize(
    "matrix", [[["a", "b"], ["c", "d"]], [[True, False], [False, True]], [[object()]]]
)
def test_non_numeric_matrix_is_a_type_error(matrix) -> None:
    with pytest.raises(TypeError, match="accuracy_matrix must hold real numbers"):
        avg_accuracy(matrix)


def test_random_init_accuracy_is_validated() -> None:
    with pytest.raises(
        ValueError,
        match=r"random_init_accuracy must have one entry per task \(length T = 3\), got length 2",
    ):
        fwt(R3, [0.1, 0.2])
    with pytest.raises(ValueError, match=r"random_init_accuracy values must lie in \[0, 1\]"):
        fwt(R3, [0.1, 0.2, 1.5])
    with pytest.raises(ValueError, match=r"random_init_accuracy has NaN at index 2"):
        fwt(R3, [0.1, 0.2, None])
    with pytest.raises(ValueError, match=r"random_init_accuracy must be a 1-D"):
        summarize(R3, [[0.1, 0.2, 0.3]])


def test_reasoning_steps_are_validated() -> None:
    with pytest.raises(
        ValueError, match=r"reasoning_steps must be a 1-D list with one entry per task"
    ):
        summarize(R3, reasoning_steps=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"reasoning_steps must be finite and >= 0"):
        summarize(R3, reasoning_steps=[1.0, -2.0, 3.0])


# ---------------------------------------------------------------------------------- FT AUC


def test_forward_transfer_auc_hand_computed() -> None:
    curves = [[0.0, 0.5, 1.0], [0.2, 0.2]]
    reference = [[0.0, 0.25, 0.5], [0.6, 0.6, 0.6, 0.6, 0.6]]
    # task 0: AUC = 0.5 * (0 + 0.5)/2 + 0.5 * (0.5 + 1)/2 = 0.125 + 0.375 = 0.5
    #         AUC_ref = 0.5 * (0 + 0.25)/2 + 0.5 * (0.25 + 0.5)/2 = 0.0625 + 0.1875 = 0.25
    #         FT = (0.5 - 0.25) / (1 - 0.25) = 1/3
    # task 1: AUC = 0.2 ; AUC_ref = 0.6 (5 samples; lengths may differ) ; FT = (0.2 - 0.6)/0.4 = -1
    per_task, mean = forward_transfer_auc(curves, reference)
    assert per_task == pytest.approx([1 / 3, -1.0])
    assert mean == pytest.approx((1 / 3 - 1.0) / 2)


def test_forward_transfer_auc_perfect_reference_is_undefined() -> None:
    # AUC_ref = 1: the normaliser 1 - AUC_ref is zero, so FT_j is undefined (None), not 0 or
    # AUC - 1; the mean covers the tasks where FT is defined.
    per_task, mean = forward_transfer_auc([[1.0, 1.0], [0.5, 1.0]], [[1.0, 1.0, 1.0], [1.0] * 7])
    assert per_task == [None, None] and mean is None
    # task 1: AUC = 0.75, AUC_ref = 0.5 -> FT = 0.25 / 0.5 = 0.5; the mean is over task 1 only
    per_task, mean = forward_transfer_auc([[1.0, 1.0], [0.5, 1.0]], [[1.0, 1.0], [0.5, 0.5]])
    assert per_task == [None, pytest.approx(0.5)] and mean == pytest.approx(0.5)


def test_forward_transfer_auc_accepts_arrays_and_matches_trapezoid() -> None:
    rng = np.random.default_rng(0)
    curves = rng.uniform(0.0, 1.0, size=(3, 11))
    reference = rng.uniform(0.0, 0.9, size=(3, 6))
    per_task, _ = forward_transfer_auc(curves, reference)
    for curve, ref, value in zip(curves, reference, per_task):
        auc = np.trapezoid(curve, np.linspace(0.0, 1.0, curve.size))
        auc_ref = np.trapezoid(ref, np.linspace(0.0, 1.0, ref.size))
        assert value == pytest.approx((auc - auc_ref) / (1.0 - auc_ref))


def test_forward_transfer_auc_validation() -> None:
    with pytest.raises(
        ValueError, match=r"reference_curves must have one curve per task in curves \(2\), got 1"
    ):
        forward_transfer_auc([[0.1, 0.2], [0.3, 0.4]], [[0.1, 0.2]])
    with pytest.raises(ValueError, match=r"curves\[1\] must be a 1-D curve of at least 2"):
        forward_transfer_auc([[0.1, 0.2], [0.3]], [[0.1, 0.2], [0.1, 0.2]])
    with pytest.raises(ValueError, match=r"reference_curves\[0\] has NaN at sample 1"):
        forward_transfer_auc([[0.1, 0.2]], [[0.1, np.nan]])
    with pytest.raises(ValueError, match=r"curves\[0\] values must lie in \[0, 1\]"):
        forward_transfer_auc([[0.1, 2.0]], [[0.1, 0.2]])
    with pytest.raises(ValueError, match=r"curves must hold at least one task's curve"):
        forward_transfer_auc([], [])
    with pytest.raises(TypeError, match=r"curves must be a list of per-task curves"):
        forward_transfer_auc(0.5, [[0.1, 0.2]])


# ---------------------------------------------------------------------------------- AccuracyMatrix


def test_accuracy_matrix_fills_task_by_task() -> None:
    matrix = AccuracyMatrix(3)
    assert np.isnan(matrix.result()).all()
    # after task 0, the runner evaluates tasks 0 and 1 (1 for FWT); task 2 stays unmeasured
    matrix.update(0, 0, 0.9)
    matrix.update(0, 1, 0.1)
    np.testing.assert_array_equal(matrix.row(0), [0.9, 0.1, np.nan])
    assert np.isnan(matrix.row(1)).all()
    for i, row in enumerate(R3[1:], start=1):
        for j, value in enumerate(row):
            matrix.update(i, j, value)
    expected = np.array(R3)
    expected[0, 2] = np.nan
    np.testing.assert_array_equal(matrix.result(), expected)
    assert_same_summary(summarize(matrix.result(), B3), summarize(R3, B3))
    # later writes to a cell replace earlier ones (a resumed run may re-evaluate)
    matrix.update(2, 2, 0.5)
    assert matrix.result()[2, 2] == 0.5
    assert repr(matrix) == "AccuracyMatrix(num_tasks=3, filled=8/9)"


def test_accuracy_matrix_returns_copies_and_resets() -> None:
    matrix = AccuracyMatrix(2)
    matrix.update(1, 0, 0.25)
    matrix.result()[1, 0] = 0.0
    matrix.row(1)[0] = 0.0
    assert matrix.result()[1, 0] == 0.25
    matrix.reset()
    assert np.isnan(matrix.result()).all()
    assert matrix.num_tasks == 2


def test_accuracy_matrix_json_round_trip() -> None:
    matrix = AccuracyMatrix(3)
    matrix.update(0, 0, 0.9)
    matrix.update(1, 0, 0.6)
    matrix.update(1, 1, 1.0)
    listed = matrix.to_list()
    assert listed == [[0.9, None, None], [0.6, 1.0, None], [None, None, None]]
    text = json.dumps(listed)
    assert "NaN" not in text  # strict JSON
    restored = AccuracyMatrix.from_list(json.loads(text))
    np.testing.assert_array_equal(restored.result(), matrix.result())
    # NaN (as written by a numpy array's tolist()) restores the same way
    again = AccuracyMatrix.from_list(matrix.result().tolist())
    np.testing.assert_array_equal(again.result(), matrix.result())


def test_accuracy_matrix_validation() -> None:
    matrix = AccuracyMatrix(2)
    with pytest.raises(ValueError, match=r"train_task must be in \[0, 1\], got 2"):
        matrix.update(2, 0, 0.5)
    with pytest.raises(ValueError, match=r"eval_task must be in \[0, 1\], got -1"):
        matrix.update(0, -1, 0.5)
    with pytest.raises(TypeError, match=r"train_task must be an int"):
        matrix.update(0.0, 0, 0.5)
    with pytest.raises(ValueError, match=r"value must be in \[0, 1\], got 1.5"):
        matrix.update(0, 0, 1.5)
    with pytest.raises(ValueError, match=r"value must be in \[0, 1\], got nan"):
        matrix.update(0, 0, float("nan"))
    with pytest.raises(TypeError, match=r"value must be a real number"):
        matrix.update(0, 0, "0.5")
    with pytest.raises(ValueError, match=r"num_tasks must be an int >= 1, got 0"):
        AccuracyMatrix(0)
    with pytest.raises(TypeError, match=r"num_tasks must be an int >= 1"):
        AccuracyMatrix(2.0)
    with pytest.raises(ValueError, match=r"rows must be square"):
        AccuracyMatrix.from_list([[0.1, None]])
    with pytest.raises(ValueError, match=r"rows values must lie in \[0, 1\]"):
        AccuracyMatrix.from_list([[2.0]])


# ---------------------------------------------------------------------------------- properties

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@st.composite
def diagonal_max_matrices(draw: st.DrawFn) -> np.ndarray:
    """Valid R whose column j is non-increasing over rows j..T-2 (max on the diagonal)."""
    num_tasks = draw(st.integers(min_value=2, max_value=6))  # T = 1: undefined, tested above
    matrix = np.array(
        draw(st.lists(unit, min_size=num_tasks * num_tasks, max_size=num_tasks * num_tasks))
    ).reshape(num_tasks, num_tasks)
    for j in range(num_tasks - 1):
        matrix[j : num_tasks - 1, j] = np.sort(matrix[j : num_tasks - 1, j])[::-1]
    return matrix


@st.composite
def any_matrices(draw: st.DrawFn) -> np.ndarray:
    num_tasks = draw(st.integers(min_value=2, max_value=6))  # T = 1: undefined, tested above
    values = draw(st.lists(unit, min_size=num_tasks * num_tasks, max_size=num_tasks * num_tasks))
    return np.array(values).reshape(num_tasks, num_tasks)


@settings(max_examples=60, deadline=None)
@given(diagonal_max_matrices())
def test_bwt_is_minus_forgetting_when_max_is_on_the_diagonal(matrix: np.ndarray) -> None:
    assert bwt(matrix) == pytest.approx(-avg_forgetting(matrix), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(any_matrices())
def test_forgetting_bounds_hold_for_any_matrix(matrix: np.ndarray) -> None:
    num_tasks = matrix.shape[0]
    per_task = np.array(forgetting(matrix))
    # max over rows j..T-2 includes the diagonal, so forgetting_j >= R[j][j] - R[T-1][j] = -bwt_j
    diagonal_drop = np.diag(matrix)[: num_tasks - 1] - matrix[num_tasks - 1, : num_tasks - 1]
    assert (per_task >= diagonal_drop - 1e-12).all()
    assert avg_forgetting(matrix) >= -bwt(matrix) - 1e-12
    # entries above the diagonal (zero-shot rows) never change forgetting, BWT or accuracy
    scrambled = matrix.copy()
    upper = np.triu_indices(num_tasks, k=1)
    scrambled[upper] = 1.0 - scrambled[upper]
    assert forgetting(scrambled) == pytest.approx(per_task.tolist())
    assert bwt(scrambled) == pytest.approx(bwt(matrix))
    assert 0.0 <= avg_accuracy(matrix) <= 1.0
