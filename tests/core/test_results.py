"""Forward transfer of a run against a scratch reference (trmgym.results.forward_transfer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trmgym.results import check_reference, forward_transfer

RUN = {
    "sequence": ["a", "b"],
    "strategy": "naive",
    "seed": 0,
    "accuracy_matrix": [[0.8, 0.2], [0.5, 0.9]],
    "random_init_accuracy": [0.0, 0.1],
    "curves": [[0.4, 0.8], [0.6, 0.9]],
    "metrics": {},
}
SCRATCH = {
    **RUN,
    "strategy": "scratch",
    "accuracy_matrix": [[0.6, 0.0], [0.0, 0.6]],
    "random_init_accuracy": [0.0, 0.0],
    "curves": [[0.2, 0.6], [0.2, 0.6]],
}


def test_forward_transfer_by_hand() -> None:
    # Curves with their starting points: run a = [0, .4, .8] (b_0), b = [.2, .6, .9] (R[0][1]);
    # reference [0, .2, .6] for both. Trapezoid areas over [0, 1]: .4, .575 and .25, so
    # FT = (.4 - .25) / .75 = .2 and (.575 - .25) / .75 = .4333.
    transfer = forward_transfer(RUN, SCRATCH)
    assert transfer["ft_per_task"] == pytest.approx([0.2, 0.325 / 0.75])
    assert transfer["ft"] == pytest.approx((0.2 + 0.325 / 0.75) / 2)
    assert transfer["reference"] is None


def test_a_run_against_itself_has_zero_transfer_only_when_it_starts_alike() -> None:
    same = {**SCRATCH, "accuracy_matrix": [[0.6, 0.0], [0.0, 0.6]]}
    assert forward_transfer(same, SCRATCH)["ft_per_task"] == pytest.approx([0.0, 0.0])


def test_reference_from_a_run_directory(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(json.dumps(SCRATCH))
    transfer = forward_transfer(RUN, tmp_path)
    assert transfer["reference"] == str(tmp_path / "results.json")
    assert transfer["ft"] == pytest.approx(forward_transfer(RUN, SCRATCH)["ft"])


@pytest.mark.parametrize(
    ("reference", "match"),
    [
        (
            {**SCRATCH, "strategy": "replay"},
            "must be a run with strategy=scratch.*got strategy 'replay'",
        ),
        ({**SCRATCH, "sequence": ["a", "c"]}, r"reference's tasks \['a', 'c'\] differ"),
        (
            {**SCRATCH, "curves": [[], [0.1]]},
            "needs 'curves' with at least one evaluation per task",
        ),
    ],
)
def test_bad_references_are_named(reference: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        forward_transfer(RUN, reference)


def test_missing_reference_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such results file"):
        check_reference(tmp_path / "nowhere", ["a", "b"])


def one_task_runs(settings: dict) -> tuple[dict, dict]:
    """A one-task run with curve [0, 0, 1] (after a start of 0) and its scratch reference with
    [1, 1, 1], recording ``settings``."""
    run = {
        **RUN,
        "sequence": ["a"],
        "accuracy_matrix": [[1.0]],
        "random_init_accuracy": [0.0],
        "curves": [[0.0, 0.0, 1.0]],
        "settings": settings,
        "tasks": [{"name": "a"}],
    }
    return run, {**run, "strategy": "scratch", "curves": [[1.0, 1.0, 1.0]]}


def test_a_short_last_chunk_gives_a_short_last_interval() -> None:
    # budget 5, eval_every 2: evaluations after steps 2, 4 and 5, so the samples sit at
    # 0, .4, .8, 1 (not equally spaced). Run curve [0, 0, 0, 1]: area .5 * .2 * 1 = .1;
    # reference [0, 1, 1, 1]: area .5 * .4 + .6 = .8. FT = (.1 - .8) / (1 - .8) = -3.5.
    run, scratch = one_task_runs({"train_steps": 5, "eval_every": 2})
    assert forward_transfer(run, scratch)["ft_per_task"] == pytest.approx([-3.5])
    # equally spaced (no budgets recorded) would give areas 1/6 and 5/6 instead
    bare = {k: v for k, v in run.items() if k not in ("settings", "tasks")}
    bare_ref = {**bare, "strategy": "scratch", "curves": [[1.0, 1.0, 1.0]]}
    assert forward_transfer(bare, bare_ref)["ft_per_task"] == pytest.approx(
        [(1 / 6 - 5 / 6) / (1 / 6)]
    )


def test_sample_times_follow_the_scaled_budget(caplog: pytest.LogCaptureFixture) -> None:
    # train_steps 100 at budget_scale 0.9: 90 steps, evaluations after 40, 80 and 90, so the
    # samples sit at 0, 4/9, 8/9, 1 — not at 0, .4, .8, 1 (the unscaled budget's)
    run, scratch = one_task_runs({"train_steps": 100, "budget_scale": 0.9, "eval_every": 40})
    # run area .5 * (1/9) * 1 = 1/18; reference 4/9 * .5 + 5/9 = 7/9; FT = (1/18 - 7/9) / (2/9)
    assert forward_transfer(run, scratch)["ft_per_task"] == pytest.approx(
        [(1 / 18 - 7 / 9) / (2 / 9)]
    )
    # a curve that does not fit the recorded budget: equal spacing, and a warning saying so
    odd = {**run, "curves": [[0.0, 1.0]]}
    with caplog.at_level("WARNING", logger="trmgym.results"):
        forward_transfer(odd, {**odd, "strategy": "scratch"})
    assert "task 0's curve has 3 points, its budget of 90 steps in chunks of 40 gives 4" in (
        caplog.text
    )


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"settings": {"eval_every": 5}}, r"run.eval_every differs from the run's \(5 vs 10\)"),
        (
            {"settings": {"eval_every": 10, "train_steps": 20, "budget_scale": 0.5}},
            r"run.budget_scale differs from the run's \(0.5 vs 1.0\)",
        ),
        (
            {"settings": {"eval_every": 10, "train_steps": 20, "eval_episodes": 8}},
            r"run.eval_episodes differs from the run's \(8 vs 64\)",
        ),
        (
            {"tasks": [{"train_steps": 40}, {"train_steps": None}]},
            r"tasks\[0\].train_steps differs from the run's \(40 vs None\)",
        ),
        (
            {"tasks": [{"kwargs": {"size": 4}}, {"kwargs": {"size": 9}}]},
            r"tasks\[1\].kwargs differs",
        ),
    ],
)
def test_a_reference_with_other_budgets_or_tasks_is_refused(changes: dict, match: str) -> None:
    run = {
        **RUN,
        "settings": {
            "eval_every": 10,
            "train_steps": 20,
            "budget_scale": 1.0,
            "eval_episodes": 64,
        },
        "tasks": [
            {"train_steps": None, "kwargs": {"size": 4}},
            {"train_steps": None, "kwargs": {"size": 4}},
        ],
    }
    reference = {**SCRATCH, **changes}
    with pytest.raises(ValueError, match=match):
        check_reference(reference, run)
