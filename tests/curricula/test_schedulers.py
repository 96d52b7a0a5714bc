"""Curriculum schedulers (``trmgym.curricula.schedulers``) driven by a scripted learner, their
plugin hooks and checkpoints, their argument checks, the trainer's per-row options, and the
curriculum comparison's steps-to-threshold (``trmgym.comparison``)."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from tests.agents.conftest import _one_thread  # noqa: F401 - an autouse fixture
from tests.tiny_run import AGENT, TASKS
from trmgym import checkpoint
from trmgym import comparison as compare
from trmgym.curricula.schedulers import (
    PLR,
    SCHEDULERS,
    DifficultyRamp,
    LearningProgress,
    Outcomes,
    Rehearsal,
    Scheduler,
    Staged,
    Uniform,
)
from trmgym.curricula.sequence import TaskSpec
from trmgym.envs.tokens import DIGIT_BLANK
from trmgym.plugins import Plugins

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "curriculum"
BATCH = 8
ROWS = np.arange(BATCH)


# ------------------------------------------------------------------------------ helpers
class ScriptedLearner:
    """Solves a puzzle of level ``l`` with probability ``success(l, plays of l so far, round)``."""

    def __init__(self, levels: int, success: Callable[[int, int, int], float]) -> None:
        self.success = success
        self.played = np.zeros(levels, dtype=np.int64)
        self.round = 0

    def play(self, choices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        p = np.array([self.success(c, int(self.played[c]), self.round) for c in choices.tolist()])
        np.add.at(self.played, choices, 1)
        self.round += 1
        return rng.random(len(choices)) < p


def outcomes(solved: list[float], cells: list[float] | None = None) -> Outcomes:
    solved_array = np.array(solved, dtype=bool)
    cell_array = np.array(solved if cells is None else cells, dtype=np.float64)
    return Outcomes(solved_array, cell_array, np.ones(len(solved), dtype=np.int64))


def finish(
    scheduler: Scheduler, options: list[dict | None], solved: np.ndarray, task: int = 0
) -> None:
    """Hand finished puzzles to the scheduler's episode-end hook, as the trainer does."""
    solved = np.asarray(solved, dtype=bool)
    scheduler.on_episodes_end(
        task,
        np.arange(len(options)),
        solved,
        solved.astype(np.float64),
        np.full(len(options), 3, dtype=np.int64),
        options,
    )


def play_rounds(
    scheduler: Scheduler, learner: ScriptedLearner, rng: np.random.Generator, rounds: int
) -> list[int | None]:
    """``rounds`` of: choose options for a batch, the learner plays them, credit the outcomes.
    Returns the scheduler's current level after each round."""
    levels = []
    for _ in range(rounds):
        options = scheduler.reset_options(ROWS)
        choices = np.array([scheduler.levels.index(o) for o in options])
        finish(scheduler, options, learner.play(choices, rng))
        levels.append(scheduler.current_level)
    return levels


def blanks(*values: int) -> list[dict[str, int]]:
    return [{"blanks": v} for v in values]


# ------------------------------------------------------------------------- DifficultyRamp
def test_ramp_patience_holds_a_new_level_before_it_may_fall_back() -> None:
    ramp = DifficultyRamp(blanks(2, 4, 6), window=4, patience=10)
    finish(ramp, blanks(2) * 4, [1] * 4)  # mastered: up to level 1
    assert ramp.level == 1
    finish(ramp, blanks(4) * 9, [0] * 9)  # 9 failures at the new level: still held
    assert ramp.level == 1 and ramp.at_level == 9
    finish(ramp, blanks(4), [0])  # the 10th: patience spent, the full window says fall back
    assert ramp.level == 0 and ramp.at_level == 0
    # moving up is never held back
    finish(ramp, blanks(2) * 4, [1] * 4)
    assert ramp.level == 1
    # without patience the first full window decides
    eager = DifficultyRamp(blanks(2, 4), window=4)
    finish(eager, blanks(2) * 4, [1] * 4)
    finish(eager, blanks(4) * 4, [0] * 4)
    assert eager.level == 0


def test_ramp_defaults_match_its_config_file() -> None:
    ramp = DifficultyRamp({"blanks": [4, 8]})
    assert (ramp.upper, ramp.lower, ramp.window) == (0.7, 0.1, 20)
    assert (ramp.metric, ramp.easier, ramp.restart_per_task) == ("solved", 0.0, True)
    assert ramp.levels == blanks(4, 8)  # the mapping form, expanded in order


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_config_files_repeat_the_class_defaults(path: Path) -> None:
    """Defaults live in the YAML and in the signature; they must agree (a curated file such as
    arc_stages, which sets its own plan, is an instance, not the defaults)."""
    import inspect

    node = yaml.safe_load(path.read_text())
    cls = {c.__name__: c for c in SCHEDULERS.values()}[node["_target_"].rsplit(".", 1)[-1]]
    defaults = {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    assert set(node) - {"_target_"} <= set(defaults), f"{path.name}: unknown keys"
    if path.stem == "arc_stages":
        cls(**{k: v for k, v in node.items() if k != "_target_"})  # it builds
        return
    for key, value in node.items():
        if key != "_target_":
            assert value == defaults[key], f"{path.name}: {key}={value!r}, class {defaults[key]!r}"


def test_ramp_climbs_to_the_top_then_falls_back_when_the_learner_forgets() -> None:
    def success(level: int, plays: int, round_: int) -> float:
        if round_ >= 300:  # the learner forgets everything
            return 0.0
        return min(0.95, 0.3 + plays / 40)

    ramp = DifficultyRamp(blanks(2, 4, 6, 8), seed=1)
    learner = ScriptedLearner(4, success)
    rng = np.random.default_rng(0)
    climbing = play_rounds(ramp, learner, rng, 300)
    assert climbing[-1] == 3 and max(climbing) == 3  # reached the top, never past it
    assert np.abs(np.diff([0, *climbing])).max() == 1  # one level per move
    # on top with ~95% success: sampled only there, no move (no level 4 to climb to)
    assert ramp.probabilities().tolist() == [0.0, 0.0, 0.0, 1.0]
    falling = play_rounds(ramp, learner, rng, 100)
    assert falling[-1] == 0 and min(falling) == 0  # fell back to the first, never below
    assert np.all(np.diff([3, *falling]) <= 0)  # only down while everything fails
    # after a move the window restarts empty and the rest of that batch (drawn at the old
    # level) is dropped: 20 failures of the new level take 3 rounds of 8
    moves = np.flatnonzero(np.diff([3, *falling]))
    assert len(moves) == 3 and np.diff(moves).tolist() == [3, 3]
    assert ramp.moves == len(moves) + sum(np.diff([0, *climbing]) != 0)


def test_ramp_window_counts_only_puzzles_of_the_current_level() -> None:
    ramp = DifficultyRamp(blanks(2, 4, 6), window=4, upper=0.75, lower=0.25)
    # successes credited to other levels (in-flight puzzles of older choices) never count
    finish(ramp, [{"blanks": 4}] * 10 + [{"blanks": 6}] * 10, np.ones(20))
    assert ramp.level == 0 and ramp.recent.values == []
    # options of other plugins merged in, and options that name no level, are fine
    finish(ramp, [{"blanks": 2, "pool_seed": 1}, None, {"blanks": 3}, {"blanks": 4}], [1, 1, 1, 0])
    assert ramp.recent.values == [1.0]
    finish(ramp, [{"blanks": 2}, {"blanks": 4}, {"blanks": 2}], [0, 0, 1])
    assert ramp.level == 0 and ramp.recent.values == [1.0, 0.0, 1.0]
    finish(ramp, [{"blanks": 4}, {"blanks": 2}], [0, 1])  # the fourth of level 0: 3/4 >= 0.75
    assert ramp.level == 1 and ramp.recent.values == []
    # failures of the old level after the move do not pull it back down
    finish(ramp, [{"blanks": 2}] * 8, np.zeros(8))
    assert ramp.level == 1
    finish(ramp, [{"blanks": 4}] * 4, [1, 0, 0, 0])  # 1/4 <= 0.25: down again
    assert ramp.level == 0


def test_ramp_moves_at_most_once_per_batch_and_clears_its_window() -> None:
    ramp = DifficultyRamp(blanks(2, 4, 6), window=3)
    ramp.update(np.zeros(9, dtype=np.int64), outcomes([1] * 9))
    assert ramp.level == 1 and ramp.recent.values == []  # the rest were drawn at level 0
    ramp.update(np.array([1, 1]), outcomes([1, 1]))
    assert ramp.level == 1
    ramp.update(np.array([1]), outcomes([1]))
    assert ramp.level == 2


def test_ramp_easier_share_and_cell_accuracy_metric() -> None:
    ramp = DifficultyRamp(blanks(2, 4, 6, 8), easier=0.3, window=2, metric="cell_accuracy")
    assert ramp.probabilities().tolist() == [1.0, 0.0, 0.0, 0.0]  # nothing easier at level 0
    ramp.update(np.array([0, 0]), outcomes([0, 0], cells=[0.8, 0.7]))  # mean 0.75 >= 0.7
    assert ramp.level == 1
    np.testing.assert_allclose(ramp.probabilities(), [0.3, 0.7, 0.0, 0.0], rtol=0, atol=1e-15)
    ramp.update(np.array([1, 1]), outcomes([0, 0], cells=[0.9, 0.9]))
    np.testing.assert_allclose(ramp.probabilities(), [0.15, 0.15, 0.7, 0.0], rtol=0, atol=1e-15)
    counts = np.bincount(ramp.sample(np.random.default_rng(0), 20000), minlength=4)
    np.testing.assert_allclose(counts / 20000, [0.15, 0.15, 0.7, 0.0], atol=0.015)


def test_ramp_restarts_per_task_unless_told_to_carry_over() -> None:
    for restart, expected in ((True, 0), (False, 1)):
        ramp = DifficultyRamp(blanks(2, 4), window=1, restart_per_task=restart)
        ramp.before_task(0)
        ramp.update(np.array([0]), outcomes([1]))
        assert ramp.level == 1
        ramp.before_task(1)
        assert ramp.level == expected


def test_ramp_hooks_report_levels_probabilities_and_history() -> None:
    ramp = DifficultyRamp({"blanks": [2, 4]}, window=1)
    ramp.on_chunk_end(0, 5, 40)
    finish(ramp, [{"blanks": 2}], [1])
    ramp.on_chunk_end(0, 10, 80)
    assert ramp.metrics(None) == {
        "curriculum/p/blanks=2": 0.0,
        "curriculum/p/blanks=4": 1.0,
        "curriculum/level": 1.0,
    }
    assert ramp.results() == {
        "name": "ramp",
        "levels": blanks(2, 4),
        "level_names": ["blanks=2", "blanks=4"],
        "history": {
            "step": [5, 10],
            "env_steps": [40, 80],
            "level": [0, 1],
            "probabilities": [[1.0, 0.0], [0.0, 1.0]],
            "start_env_steps": [],  # no task started (before_task): no start recorded
            "start_level": [],
            "start_probabilities": [],
        },
    }
    assert ramp.reset_options(np.arange(3)) == blanks(4, 4, 4)


# -------------------------------------------------------------------------------- Uniform
def test_uniform_probabilities_are_equal_and_draws_pass_a_chi_square_bound() -> None:
    uniform = Uniform(blanks(2, 4, 6, 8, 10), seed=4)
    assert uniform.probabilities().tolist() == [0.2] * 5
    assert uniform.current_level is None and uniform.metrics(None)["curriculum/level"] is None
    n = 10000
    counts = np.bincount(uniform.sample(np.random.default_rng(0), n), minlength=5)
    chi_square = float(((counts - n / 5) ** 2 / (n / 5)).sum())
    assert chi_square < 18.47  # 4 degrees of freedom, p = 0.001
    # the hook draws with the scheduler's own seeded generator: copies of the levels
    options = uniform.reset_options(np.arange(n))
    counts = np.bincount([o["blanks"] // 2 - 1 for o in options], minlength=5)
    assert float(((counts - n / 5) ** 2 / (n / 5)).sum()) < 18.47
    options[0]["blanks"] = 99
    assert uniform.levels == blanks(2, 4, 6, 8, 10)
    # the same seed, the same draws; another seed, others
    again = Uniform(blanks(2, 4, 6, 8, 10), seed=4).reset_options(np.arange(n))
    assert again[1:] == options[1:]
    assert Uniform(blanks(2, 4, 6, 8, 10), seed=5).reset_options(np.arange(n)) != again


# ---------------------------------------------------------------------- LearningProgress
def test_learning_progress_epsilon_mix_is_exact_and_bidirectional() -> None:
    lp = LearningProgress(blanks(2, 4, 6), epsilon=0.3)
    assert lp.probabilities().tolist() == pytest.approx([1 / 3] * 3, abs=1e-15)  # no progress yet
    # level 0 improves 0 -> 1, level 1 forgets 1 -> 0, level 2 stays at 1
    lp.update(np.array([0, 1, 2]), outcomes([0, 1, 1]))
    lp.update(np.array([0, 1, 2]), outcomes([1, 0, 1]))
    # fast EMA: 0 + 0.1 * 1 = 0.1 and 1 - 0.1 = 0.9; slow: 0.02 and 0.98
    np.testing.assert_allclose(lp.progress(), [0.08, 0.08, 0.0], rtol=0, atol=1e-15)
    expected = [0.3 / 3 + 0.7 / 2, 0.3 / 3 + 0.7 / 2, 0.3 / 3]
    np.testing.assert_allclose(lp.probabilities(), expected, rtol=0, atol=1e-15)
    lp.update(np.array([0]), outcomes([1]))  # level 0 alone is the fastest now
    fast, slow = 0.1 + 0.1 * 0.9, 0.02 + 0.02 * 0.98
    assert lp.progress()[0] == pytest.approx(fast - slow, abs=1e-15)
    np.testing.assert_allclose(lp.probabilities(), [0.1 + 0.7, 0.1, 0.1], rtol=0, atol=1e-15)


def test_learning_progress_boltzmann_is_a_softmax_of_progress() -> None:
    lp = LearningProgress(blanks(2, 4, 6), sampling="boltzmann", temperature=0.04)
    lp.update(np.array([0, 1, 2, 0, 1]), outcomes([0, 1, 1, 1, 0]))
    weights = [math.exp(0.08 / 0.04), math.exp(0.08 / 0.04), math.exp(0.0)]
    expected = [w / sum(weights) for w in weights]
    np.testing.assert_allclose(lp.probabilities(), expected, rtol=1e-12)
    assert lp.probabilities().sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("sampling", ["epsilon", "boltzmann"])
def test_learning_progress_prefers_the_improving_level_over_flat_ones(sampling: str) -> None:
    flat_zero, improving, flat_one = 0, 1, 2

    def success(level: int, plays: int, round_: int) -> float:
        return {flat_zero: 0.0, improving: min(1.0, plays / 300), flat_one: 1.0}[level]

    lp = LearningProgress(blanks(2, 4, 6), sampling=sampling, seed=2)
    learner = ScriptedLearner(3, success)
    rng = np.random.default_rng(0)
    history = []
    for _ in range(60):
        play_rounds(lp, learner, rng, 1)
        p = lp.probabilities()
        assert p.sum() == pytest.approx(1.0, abs=1e-12)
        history.append(p)
    late = np.mean(history[-20:], axis=0)
    assert late[improving] > 0.6 and late[improving] > 3 * max(late[flat_zero], late[flat_one])
    # the flat levels are still tried (epsilon share / nonzero softmax weight)
    assert learner.played[flat_zero] > 0 and learner.played[flat_one] > 0
    assert learner.played[improving] > learner.played[flat_zero] + learner.played[flat_one]
    assert lp.progress()[flat_zero] == 0.0 and lp.progress()[flat_one] == 0.0


# ------------------------------------------------------------------------------------ PLR
def test_plr_probabilities_follow_the_paper_formula() -> None:
    """Jiang et al. (2021): P = (1 - rho) P_S + rho P_C, P_S(i) ∝ (1/rank(S_i))^(1/beta),
    P_C(i) = (c - C_i) / sum_j (c - C_j); unseen levels get 1 - replay_prob."""
    plr = PLR(blanks(2, 4, 6, 8), temperature=0.5, staleness=0.3, replay_prob=0.6, score_ema=0.5)
    assert plr.probabilities().tolist() == [0.25] * 4  # nothing seen: unseen levels, uniformly
    # scores (1 - cell accuracy, EMA 0.5): level 0: 0.8 then 0.8 + 0.5 (0.4 - 0.8) = 0.6;
    # level 1: 0.1; level 2: 0.5; level 3 unseen
    plr.update(np.array([0, 1, 2]), outcomes([0, 0, 0], cells=[0.2, 0.9, 0.5]))
    plr.update(np.array([0]), outcomes([0], cells=[0.6]))
    np.testing.assert_allclose(plr.scores[:3], [0.6, 0.1, 0.5], rtol=0, atol=1e-15)
    # ranks 1, 3, 2 -> h = (1/rank)^(1/0.5) = 1, 1/9, 1/4; nothing sampled yet: P_C uniform
    h = np.array([1.0, 1 / 9, 1 / 4])
    p_s = h / h.sum()
    replay = 0.7 * p_s + 0.3 * np.full(3, 1 / 3)
    np.testing.assert_allclose(plr.probabilities(), [*(0.6 * replay), 0.4], rtol=1e-12)

    # staleness: c counts sampled puzzles; C_i the count when level i was last sampled
    rng = np.random.default_rng(5)
    count, last = 0, np.zeros(4)
    for n in (1, 2, 3, 1):
        choices = plr.sample(rng, n)
        count += n
        last[np.unique(choices)] = count
    stale = count - last[:3]
    assert stale.sum() > 0 and len(set(stale.tolist())) > 1, "a telling example"
    replay = 0.7 * p_s + 0.3 * stale / stale.sum()
    np.testing.assert_allclose(plr.probabilities(), [*(0.6 * replay), 0.4], rtol=1e-12)

    # every level seen: always replay
    plr.update(np.array([3]), outcomes([0], cells=[0.0]))  # score 1: rank 1
    h = np.array([1 / 4, 1 / 16, 1 / 9, 1.0])  # ranks 2, 4, 3, 1
    stale = count - last
    expected = 0.7 * h / h.sum() + 0.3 * stale / stale.sum()
    np.testing.assert_allclose(plr.probabilities(), expected, rtol=1e-12)
    assert plr.probabilities().sum() == pytest.approx(1.0, abs=1e-12)


def test_plr_one_minus_solved_scores_and_replay_prob_extremes() -> None:
    plr = PLR(blanks(2, 4, 6), score="one_minus_solved", replay_prob=0.0, staleness=0.0)
    plr.update(np.array([0, 1]), outcomes([1, 0], cells=[0.0, 1.0]))
    assert plr.scores[:2].tolist() == [0.0, 1.0]
    assert plr.probabilities().tolist() == [0.0, 0.0, 1.0]  # only the unseen level
    plr = PLR(blanks(2, 4, 6), replay_prob=1.0, staleness=0.0, temperature=1.0)
    plr.update(np.array([0, 1]), outcomes([0, 0], cells=[0.5, 0.0]))
    np.testing.assert_allclose(plr.probabilities(), [1 / 3, 2 / 3, 0.0], rtol=1e-12)


# --------------------------------------------------------------------------------- Staged
STAGES = [
    [{"family": "colour_map"}],
    [{"family": "flip"}, {"family": "rotate"}],
    [{"family": "gravity"}],
]


def test_staged_promotes_at_the_threshold_and_never_goes_back() -> None:
    staged = Staged(STAGES, threshold=0.75, window=4, review=0.2)
    assert staged.probabilities().tolist() == [1.0, 0.0, 0.0, 0.0]
    finish(staged, [{"family": "flip"}] * 8, np.ones(8))  # another stage's: not counted
    finish(staged, [{"family": "colour_map"}] * 3, [1, 1, 0])
    assert staged.stage == 0
    finish(staged, [{"family": "colour_map"}], [1])  # 3 of the last 4
    assert staged.stage == 1
    # review: a fifth on the earlier stage's level, the rest split over this stage's
    np.testing.assert_allclose(staged.probabilities(), [0.2, 0.4, 0.4, 0.0], rtol=1e-12)
    finish(staged, [{"family": "flip"}, {"family": "rotate"}] * 2, [1, 1, 1, 1])
    assert staged.stage == 2
    np.testing.assert_allclose(staged.probabilities(), [0.2 / 3] * 3 + [0.8], rtol=1e-12)
    for _ in range(5):  # everything fails from now on: the last stage stays
        finish(staged, [{"family": "gravity"}, {"family": "colour_map"}] * 4, np.zeros(8))
    assert staged.stage == 2


def test_staged_promotes_by_budget_whichever_comes_first() -> None:
    staged = Staged(STAGES, threshold=None, stage_episodes=[3, 5])
    finish(staged, [{"family": "colour_map"}] * 2, [0, 0])
    assert staged.stage == 0
    finish(staged, [{"family": "colour_map"}, {"family": "flip"}], [0, 0])  # the third
    assert (staged.stage, staged.stage_done) == (1, 0)
    finish(staged, [{"family": "flip"}] * 4 + [{"family": "colour_map"}] * 3, np.zeros(7))
    assert (staged.stage, staged.stage_done) == (1, 4)
    finish(staged, [{"family": "rotate"}], [0])
    assert staged.stage == 2
    # both: mastery after 2 puzzles comes before the budget of 10
    staged = Staged(STAGES, threshold=1.0, window=2, stage_episodes=10)
    finish(staged, [{"family": "colour_map"}] * 2, [1, 1])
    assert staged.stage == 1


def test_staged_records_its_stage_and_no_single_level() -> None:
    """results.json's ``history.level`` is read as an index into ``levels``/``level_names``
    (report.py: "current level <name>", the plot's level axis); a stage holds several levels,
    so Staged records null there and its stage in ``history.stage``."""
    staged = Staged(STAGES, threshold=None, stage_episodes=1)
    finish(staged, [{"family": "colour_map"}], [0])
    finish(staged, [{"family": "flip"}], [0])
    assert staged.stage == 2
    staged.on_chunk_end(0, 1, 8)
    block = staged.results()
    assert block["stages"] == [
        ["family=colour_map"],
        ["family=flip", "family=rotate"],
        ["family=gravity"],
    ]
    assert block["history"]["level"] == [None] and block["history"]["stage"] == [2]
    metrics = staged.metrics(None)
    assert metrics["curriculum/level"] is None and metrics["curriculum/stage"] == 2.0
    assert metrics["curriculum/p/family=gravity"] == 1.0


# ------------------------------------------------------------------------------ Rehearsal
def test_rehearsal_task_zero_plays_only_itself() -> None:
    rehearsal = Rehearsal(ratio=0.25)
    assert rehearsal.before_task(0) is None
    assert rehearsal.reset_options(np.arange(200)) == [None] * 200
    assert rehearsal.probabilities().tolist() == [1.0]
    assert rehearsal.metrics(None) == {"curriculum/p/task0": 1.0}


def test_rehearsal_mixes_earlier_tasks_evenly_at_the_ratio() -> None:
    rehearsal = Rehearsal(ratio=0.25, seed=3)
    rehearsal.before_task(0)
    rehearsal.on_chunk_end(0, 3, 24)
    rehearsal.before_task(2)
    np.testing.assert_allclose(rehearsal.probabilities(), [0.125, 0.125, 0.75], rtol=1e-15)
    n = 16000
    options = rehearsal.reset_options(np.arange(n))
    assert {None if o is None else tuple(o.items()) for o in options} == {
        None,
        (("task", 0),),
        (("task", 1),),
    }
    share = np.mean([o is not None for o in options])
    assert abs(share - 0.25) < 0.015  # ~4.4 standard deviations
    zeros = sum(o == {"task": 0} for o in options)
    ones = sum(o == {"task": 1} for o in options)
    assert abs(zeros - ones) / n < 0.012
    # outcomes: the current task's rows carry no options; a rehearsed row names its task
    assert rehearsal.level_of(None) == 2 and rehearsal.level_of({"task": 0}) == 0
    assert rehearsal.level_of({"blanks": 4}) is None
    rehearsal.on_chunk_end(2, 9, 72)
    assert rehearsal.metrics(None) == {
        "curriculum/p/task0": 0.125,
        "curriculum/p/task1": 0.125,
        "curriculum/p/task2": 0.75,
    }
    block = rehearsal.results()
    assert block["level_names"] == ["task=0", "task=1", "task=2"] and block["ratio"] == 0.25
    assert block["history"]["probabilities"] == [[1.0, 0.0, 0.0], [0.125, 0.125, 0.75]]
    never = Rehearsal(ratio=0.0)
    never.before_task(2)
    assert never.reset_options(np.arange(50)) == [None] * 50


# ---------------------------------------------------------------------- state round trip
def drive(scheduler: Scheduler, rng: np.random.Generator, rounds: int) -> list[Any]:
    """Rounds of options and outcomes (success depends on the level index); returns what was
    chosen and the probabilities after each round."""
    trace = []
    for r in range(rounds):
        options = scheduler.reset_options(ROWS)
        found = [scheduler.level_of(o) for o in options]
        chance = np.array([0.2 + 0.15 * (c % 4) for c in found])
        solved = rng.random(BATCH) < chance
        cells = np.clip(chance + rng.normal(0, 0.1, BATCH), 0, 1)
        scheduler.on_episodes_end(
            0, ROWS, solved, cells, rng.integers(1, 4, BATCH, dtype=np.int64), options
        )
        if r % 3 == 2:
            scheduler.on_chunk_end(0, r, r * BATCH)
        trace.append((options, scheduler.probabilities().tolist(), scheduler.current_level))
    return trace


LEVELS = {"blanks": [2, 4, 6, 8, 10]}
ALL_SCHEDULERS: list[tuple[type[Scheduler], dict[str, Any]]] = [
    (Uniform, {"levels": LEVELS}),
    (DifficultyRamp, {"levels": LEVELS, "window": 4, "upper": 0.5, "lower": 0.2, "easier": 0.2}),
    (
        Staged,
        {
            "stages": [[{"blanks": 2}], [{"blanks": 4}, {"blanks": 6}], [{"blanks": 8}]],
            "threshold": 0.9,
            "window": 4,
            "stage_episodes": 60,
            "review": 0.3,
        },
    ),
    (LearningProgress, {"levels": LEVELS, "sampling": "epsilon"}),
    (LearningProgress, {"levels": LEVELS, "sampling": "boltzmann", "metric": "cell_accuracy"}),
    (PLR, {"levels": LEVELS, "staleness": 0.3}),
    (Rehearsal, {"ratio": 0.4}),
]


def test_every_scheduler_kind_is_covered() -> None:
    assert {cls for cls, _ in ALL_SCHEDULERS} == set(SCHEDULERS.values())


def through_checkpoint(state: dict[str, Any]) -> dict[str, Any]:
    """What a resumed run gets back: to_tensors, torch.save, a weights_only load."""
    buffer = io.BytesIO()
    torch.save(checkpoint.to_tensors({"curriculum": state}, "plugins"), buffer)
    buffer.seek(0)
    return checkpoint.from_tensors(torch.load(buffer, weights_only=True))["curriculum"]


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    ALL_SCHEDULERS,
    ids=[f"{c.kind}-{k.get('sampling', '')}" for c, k in ALL_SCHEDULERS],
)
def test_state_round_trip_continues_the_same_draws(cls: type[Scheduler], kwargs: dict) -> None:
    original = cls(**kwargs, seed=11)
    original.before_task(2)
    drive(original, np.random.default_rng(0), 4)
    state = through_checkpoint(original.state_dict())
    ahead = drive(original, np.random.default_rng(1), 25)
    restored = cls(**kwargs, seed=12)  # another seed: the checkpoint's generator must win
    restored.load_state_dict(state)
    assert drive(restored, np.random.default_rng(1), 25) == ahead
    assert restored.results() == original.results()
    assert restored.metrics(None) == original.metrics(None)
    np.testing.assert_array_equal(restored.probabilities(), original.probabilities())
    # the draws vary, and (but for the fixed mixes) the statistics moved after the checkpoint
    assert len({str(options) for options, _, _ in ahead}) > len(ahead) // 2
    if cls not in (Uniform, Rehearsal):
        assert len({str(p) for _, p, _ in ahead}) > 1


# ----------------------------------------------------------------------------- bad input
def _bad(factory: Callable[[], Any], key: str, allowed: str) -> Any:
    return pytest.param(factory, key, allowed, id=f"{key}-{next(_CASE)}")


_CASE = iter(range(1000))


BAD_INPUT = [
    _bad(lambda: Uniform(), "levels", "e.g. curriculum.levels={blanks:[4,8,12]}"),
    _bad(lambda: Uniform([]), "levels", "non-empty list of option mappings"),
    _bad(lambda: Uniform("blanks"), "levels", "non-empty list of option mappings"),
    _bad(lambda: Uniform({"blanks": 4}), "levels", "mapping of keys to equally long lists"),
    _bad(lambda: Uniform({"size": [5, 7], "min_distance": [3]}), "levels", "different lengths"),
    _bad(lambda: Uniform([4, 8]), "levels", "entry 0 is 4"),
    _bad(lambda: Uniform([{}]), "levels", "entry 0 is {}"),
    _bad(lambda: Uniform(blanks(4, 4)), "levels", "repeats levels ['blanks=4']"),
    _bad(lambda: Uniform({"blanks": [4, 8, 4]}), "levels", "repeats levels ['blanks=4']"),
    _bad(lambda: Uniform([{"blanks": 4}, {"task": 1}]), "levels[1]", "reserved key 'task'"),
    _bad(lambda: Uniform({"task": [0, 1]}), "levels[0]", "curriculum=rehearsal"),
    _bad(lambda: Uniform(blanks(4), seed=-1), "seed", "an int >= 0"),
    _bad(lambda: Uniform(blanks(4), restart_per_task=1), "restart_per_task", "true or false"),
    _bad(
        lambda: DifficultyRamp(blanks(4), upper=0.1, lower=0.1), "lower", "below curriculum.upper"
    ),
    _bad(lambda: DifficultyRamp(blanks(4), upper=1.5), "upper", "a number in [0, 1]"),
    _bad(lambda: DifficultyRamp(blanks(4), lower=-0.1), "lower", "a number in [0, 1]"),
    _bad(lambda: DifficultyRamp(blanks(4), window=0), "window", "an int >= 1"),
    _bad(lambda: DifficultyRamp(blanks(4), patience=-1), "patience", "an int >= 0"),
    _bad(lambda: DifficultyRamp(blanks(4), patience=2.5), "patience", "an int >= 0"),
    _bad(lambda: DifficultyRamp(blanks(4), window=2.5), "window", "an int >= 1"),
    _bad(
        lambda: DifficultyRamp(blanks(4), metric="accuracy"),
        "metric",
        "['solved', 'cell_accuracy']",
    ),
    _bad(lambda: DifficultyRamp(blanks(4), easier=1.0), "easier", "a number in [0, 1)"),
    _bad(lambda: DifficultyRamp(blanks(4), easier=2), "easier", "a number in [0, 1)"),
    _bad(lambda: Staged(None), "stages", "non-empty list of stages"),
    _bad(lambda: Staged([[{"a": 1}], "b"]), "stages[1]", "non-empty list of option mappings"),
    _bad(lambda: Staged([[{"a": 1}], [{"a": 1}]]), "stages", "repeats levels ['a=1']"),
    _bad(lambda: Staged(STAGES, threshold=0), "threshold", "a number in (0, 1]"),
    _bad(lambda: Staged(STAGES, threshold=None), "threshold", "stage_episodes are both null"),
    _bad(
        lambda: Staged(STAGES, threshold=None, stage_episodes=[5, None]),
        "stage_episodes",
        "both null",
    ),
    _bad(
        lambda: Staged(STAGES, stage_episodes=[5]),
        "stage_episodes",
        "one int per stage but the last (2 here)",
    ),
    _bad(
        lambda: Staged(STAGES, stage_episodes="5"),
        "stage_episodes",
        "one int per stage but the last (2 here)",
    ),
    _bad(lambda: Staged(STAGES, stage_episodes=0), "stage_episodes[0]", "an int >= 1"),
    _bad(lambda: Staged(STAGES, review=1.0), "review", "a number in [0, 1)"),
    _bad(lambda: Staged(STAGES, review=1.5), "review", "a number in [0, 1)"),
    _bad(lambda: Staged(STAGES, metric="x"), "metric", "['solved', 'cell_accuracy']"),
    _bad(lambda: LearningProgress(blanks(4), fast=0), "fast", "a number in (0, 1]"),
    _bad(lambda: LearningProgress(blanks(4), slow=0.5), "slow", "below curriculum.fast"),
    _bad(
        lambda: LearningProgress(blanks(4), sampling="greedy"),
        "sampling",
        "['epsilon', 'boltzmann']",
    ),
    _bad(lambda: LearningProgress(blanks(4), epsilon=1.2), "epsilon", "a number in [0, 1]"),
    _bad(lambda: LearningProgress(blanks(4), temperature=0), "temperature", "a finite number > 0"),
    _bad(
        lambda: LearningProgress(blanks(4), temperature=True), "temperature", "a finite number > 0"
    ),
    _bad(
        lambda: PLR(blanks(4), score="td_error"),
        "score",
        "['one_minus_cell_accuracy', 'one_minus_solved']",
    ),
    _bad(lambda: PLR(blanks(4), temperature=-1), "temperature", "a finite number > 0"),
    _bad(lambda: PLR(blanks(4), staleness=1.1), "staleness", "a number in [0, 1]"),
    _bad(lambda: PLR(blanks(4), replay_prob=float("nan")), "replay_prob", "a number in [0, 1]"),
    _bad(lambda: PLR(blanks(4), score_ema=0), "score_ema", "a number in (0, 1]"),
    _bad(lambda: Rehearsal(ratio=1), "ratio", "a number in [0, 1)"),
    _bad(lambda: Rehearsal(ratio=-0.5), "ratio", "a number in [0, 1)"),
]


@pytest.mark.parametrize(("factory", "key", "allowed"), BAD_INPUT)
def test_bad_arguments_name_the_key_and_the_allowed_values(
    factory: Callable[[], Any], key: str, allowed: str
) -> None:
    with pytest.raises(ValueError) as error:
        factory()
    message = str(error.value)
    assert f"curriculum.{key}" in message and allowed in message, message


# ------------------------------------------------------------ per-row options in training
def tiny_agent(canvas: tuple[int, int]) -> Any:
    from trmgym.agents.trm_agent import TRMAgent

    return TRMAgent(AGENT, canvas=canvas, max_steps=3, seed=0, device="cpu")


class Credited(Uniform):
    """Uniform, remembering the options each finished puzzle was credited with."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.credited: list[tuple[int, dict]] = []

    def on_episodes_end(self, task, rows, solved, cell_accuracy, steps, options) -> None:
        self.credited += list(zip(rows.tolist(), options))
        super().on_episodes_end(task, rows, solved, cell_accuracy, steps, options)


def test_each_row_plays_the_level_chosen_for_it_and_is_credited_there() -> None:
    from trmgym.runner import TaskTrainer

    task = TaskSpec("sudoku4", "trmgym/Sudoku-v0", {"size": 4, "blanks": 8, "pool_size": 32})
    scheduler = Credited({"blanks": [2, 5, 8]}, seed=0)
    trainer = TaskTrainer(
        tiny_agent((4, 4)),
        task,
        batch_size=BATCH,
        max_steps=3,
        canvas=(4, 4),
        seed=1,
        plugins=Plugins([scheduler]),
    )
    seen = set()
    for _ in range(10):
        playing = (trainer.obs["grid"] == DIGIT_BLANK).sum(axis=(1, 2))
        assert playing.tolist() == [o["blanks"] for o in trainer.current_options]
        seen |= set(playing.tolist())
        before = len(scheduler.credited)
        trainer.train(1)
        for row, options in scheduler.credited[before:]:
            assert options["blanks"] == playing[row]  # the level the finished puzzle had
    trainer.close()
    assert seen == {2, 5, 8} and len(scheduler.credited) >= 2 * BATCH


def test_rehearsed_rows_play_and_carry_their_own_task() -> None:
    from trmgym.runner import TaskTrainer

    rehearsal = Rehearsal(ratio=0.5, seed=0)
    rehearsal.before_task(1)
    agent = tiny_agent((3, 3))
    labels_seen: list[np.ndarray] = []
    act = agent.act

    def recording_act(obs, carry, **kwargs):
        labels_seen.append(obs["task_id"].copy())
        return act(obs, carry, **kwargs)

    agent.act = recording_act
    trainer = TaskTrainer(
        agent,
        TASKS[1],
        batch_size=BATCH,
        max_steps=3,
        canvas=(3, 3),
        seed=1,
        plugins=Plugins([rehearsal]),
        task_label=1,
        task_index=1,
        sequence=TASKS,
    )
    both = np.zeros(2, dtype=np.int64)
    for _ in range(9):
        # the ARCGen program in flight (TASKS[k] is task_id k) and the options chosen for it
        program = trainer.obs["task_id"].copy()
        chosen = [
            0 if o == {"task": 0} else 1 if o is None else -1 for o in trainer.current_options
        ]
        assert program.tolist() == chosen
        trainer.train(1)
        assert labels_seen[-1].tolist() == program.tolist()  # the label the agent saw
        both += np.bincount(program, minlength=2)
    trainer.close()
    assert both.min() > 10  # both tasks were played on this one env


@pytest.mark.parametrize(
    "other",
    [
        TaskSpec("sudoku", "trmgym/Sudoku-v0", {"size": 4, "pool_size": 32}),
        TaskSpec(
            "wider",
            "trmgym/ARCGen-v0",
            {"families": ["colour_map"], "tasks_per_family": 3, "min_size": 3, "max_size": 3},
            options={"task_id": 0},
        ),
    ],
    ids=["other-env", "other-arguments"],
)
def test_rehearsing_a_task_of_another_env_is_refused_naming_both(other: TaskSpec) -> None:
    from trmgym.runner import TaskTrainer

    rehearsal = Rehearsal(ratio=0.9, seed=0)
    rehearsal.before_task(1)
    with pytest.raises(ValueError, match=rf"task '{other.name}'.*on task 'recolour-b'"):
        TaskTrainer(
            tiny_agent((3, 3)),
            TASKS[1],
            batch_size=BATCH,
            max_steps=3,
            canvas=(4, 4),
            seed=1,
            plugins=Plugins([rehearsal]),
            task_label=1,
            task_index=1,
            sequence=[other, TASKS[1]],
        )


# ------------------------------------------------------------------- curriculum comparison
def results_of(accuracy: list[float], task: dict | None = None, **settings: Any) -> dict:
    base = {"train_steps": 10, "batch_size": 8, "eval_every": 4, "budget_scale": 1}
    return {
        "settings": {**base, **settings},
        "tasks": [task or {"name": "t"}],
        "curves": [accuracy],
    }


def test_curve_ends_at_the_budget_when_it_is_not_a_multiple_of_eval_every() -> None:
    # evaluations after optimizer steps 4, 8 and 10 (the budget), 8 env steps each
    assert compare.curve(results_of([0.1, 0.5, 0.9])) == {
        "env_steps": [32, 64, 80],
        "accuracy": [0.1, 0.5, 0.9],
    }
    assert compare.curve(results_of([0.1, 0.2], {"train_steps": 6}))["env_steps"] == [32, 48]
    assert compare.curve(results_of([0.1, 0.2], budget_scale=0.5))["env_steps"] == [32, 40]


def test_steps_to_threshold_is_the_first_evaluation_at_or_above_it() -> None:
    results = results_of([0.1, 0.5, 0.9])
    assert compare.steps_to_threshold(results, 0.5) == 64  # reached exactly
    assert compare.steps_to_threshold(results, 0.05) == 32
    assert compare.steps_to_threshold(results, 0.9) == 80  # at the budget, not at 12 * 8
    assert compare.steps_to_threshold(results, 0.95) is None
    dipping = results_of([0.85, 0.3, 0.9])
    assert compare.steps_to_threshold(dipping, 0.8) == 32  # the first, not the last


def test_speedup_is_the_other_curriculums_steps_over_the_main_ones() -> None:
    exact = {"lower_bound": False, "upper_bound": False}
    assert compare.speedup(64, 96, 128) == {"ratio": 1.5, **exact}
    assert compare.speedup(64, 32, 128) == {"ratio": 0.5, **exact}  # slower main
    # the other never reached it: it needed more than the budget, so at least budget / main
    assert compare.speedup(64, None, 128) == {
        "ratio": 2.0,
        "lower_bound": True,
        "upper_bound": False,
    }
    # the main never reached it: it needed more than its budget, so at most other / budget;
    # dropping such a seed would favour the main curriculum
    assert compare.speedup(None, 96, 128) == {
        "ratio": 0.75,
        "lower_bound": False,
        "upper_bound": True,
    }
    assert compare.speedup(None, 96, 256, main_budget=128)["ratio"] == 0.75  # the main's budget
    assert compare.speedup(None, None, 128) is None  # neither: undefined
    with pytest.raises(ValueError, match="main must be in 1..64"):
        compare.speedup(96, 32, 128, main_budget=64)
    assert compare.budget_env_steps(results_of([0.1, 0.5, 0.9])) == 80
    assert compare.budget_env_steps(results_of([0.1], budget_scale=0.5)) == 40


def test_summarize_bounds_each_curriculum_by_its_own_budget(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    main = results_of([0.1, 0.9, 0.9])  # 0.8 first reached after 8 optimizer steps: 64 env steps
    longer = results_of([0.1, 0.2, 0.3, 0.4], {"name": "t", "train_steps": 16})  # never: > 128
    faster = results_of([0.9, 0.9, 0.9])  # 32 env steps
    block = compare.summarize("ramp", main, {"uniform": longer, "plr": faster}, 0.8, tmp_path)
    assert block["steps_to_threshold"] == {"ramp": 64, "uniform": None, "plr": 32}
    assert block["budget_env_steps"] == 80
    assert block["speedup"] == {
        "uniform": {"ratio": 2.0, "lower_bound": True, "upper_bound": False},  # its own budget
        "plr": {"ratio": 0.5, "lower_bound": False, "upper_bound": False},  # (128), not main's 80
    }
    # the main curriculum never reached it: an upper bound over the main's budget (80)
    never = results_of([0.1, 0.2, 0.3])
    block = compare.summarize("ramp", never, {"plr": faster}, 0.8, tmp_path)
    assert block["speedup"] == {"plr": {"ratio": 0.4, "lower_bound": False, "upper_bound": True}}
    assert "ramp never in 80" in compare.describe(block)
    assert "(ramp <= 0.40x as fast)" in compare.describe(block)
    # a compared run whose budget (8) is below the main run's steps (64): each is checked
    # against its own budget, so the ratio stands (it was refused when main was checked
    # against the other's budget)
    odd = results_of([0.9, 0.9], {"name": "t", "train_steps": 1})
    block = compare.summarize("ramp", main, {"uniform": odd}, 0.8, tmp_path)
    assert block["speedup"] == {
        "uniform": {"ratio": 8 / 64, "lower_bound": False, "upper_bound": False}
    }

    # a ratio that cannot be formed: no ratio, a warning, nothing lost
    def refuse(*args: object) -> None:
        raise ValueError("bad")

    monkeypatch.setattr(compare, "speedup", refuse)
    with caplog.at_level("WARNING", logger="trmgym.comparison"):
        block = compare.summarize("ramp", main, {"uniform": odd}, 0.8, tmp_path)
    assert block["speedup"] == {"uniform": None}
    assert "no speedup for 'uniform': bad" in caplog.text


def test_the_comparison_line_names_each_curriculums_steps_and_speedup() -> None:
    block = {
        "steps_to_threshold": {"ramp": 86400, "uniform": None, "plr": 96000, "lp": None},
        "threshold": 0.8,
        "budget_env_steps": 128000,
        "speedup": {
            "uniform": {"ratio": 128000 / 86400, "lower_bound": True},
            "plr": {"ratio": 96000 / 86400, "lower_bound": False},
            "lp": None,
        },
    }
    assert compare.describe(block) == (
        "ramp 86,400 env steps to exact >= 0.8; uniform never in 128,000 (ramp >= 1.48x as fast)"
        "; plr 96,000 (ramp 1.11x as fast); lp never in 128,000"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 10, 100), "main must be in 1..100"),
        ((10, 101, 100), "other must be in 1..100"),
        ((10.0, 20, 100), "main must be an int"),
        ((10, True, 100), "other must be an int"),
        ((10, 20, 0), "budget must be a positive int"),
    ],
)
def test_speedup_rejects_steps_outside_the_budget(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compare.speedup(*args)


def test_levels_given_as_numpy_arrays_or_scalars_are_plain_values() -> None:
    grid = Uniform(levels={"blanks": np.array([1, 2])})
    listed = Uniform(levels=[{"blanks": np.int64(1)}, {"blanks": np.int64(2)}])
    assert grid.levels == listed.levels == [{"blanks": 1}, {"blanks": 2}]
    assert all(type(level["blanks"]) is int for level in grid.levels + listed.levels)


@pytest.mark.parametrize("kind", ["uniform", "ramp", "staged", "lp", "plr"])
@pytest.mark.parametrize(
    ("choices", "solved", "cells", "steps", "message"),
    [
        ([0, 1], [0.9, 1.0], [0.5, 0.5], [1, 1], "outcomes.solved must be bool (or 0/1"),
        ([0, 1], [True, False], [5.0, 0.7], [1, 1], "outcomes.cell_accuracy must be fractions"),
        ([0, 1], [True, False], [np.nan, 0.7], [1, 1], "outcomes.cell_accuracy must be"),
        ([0, 1], [True, False], [0.5, 0.7], [1.5, 1], "outcomes.steps must be integers >= 0"),
        ([0, 1], [True], [0.5, 0.7], [1, 1], "outcomes.solved must have one entry per choice"),
        ([0, 2], [True, False], [0.5, 0.7], [1, 1], "choices must be level indices in [0, 2)"),
        ([0.0, 1.0], [True, False], [0.5, 0.7], [1, 1], "choices must be a 1-D array"),
    ],
)
def test_update_refuses_outcomes_outside_their_contract(
    kind: str, choices: list, solved: list, cells: list, steps: list, message: str
) -> None:
    if kind == "staged":
        scheduler = SCHEDULERS[kind](stages=[[{"blanks": 1}], [{"blanks": 2}]])
    else:
        scheduler = SCHEDULERS[kind](levels={"blanks": [1, 2]})
    state = scheduler.state_dict()
    bad = Outcomes(np.array(solved), np.array(cells), np.array(steps))
    with pytest.raises(ValueError, match=re.escape(message)):
        scheduler.update(np.array(choices), bad)
    assert str(scheduler.state_dict()) == str(state)  # nothing learnt from them
    # 0/1 integers are solved flags; the scheduler learns from them as from bools
    scheduler.update(np.array([0, 1]), Outcomes(np.array([1, 0]), np.array([1.0, 0.2]), [3, 4]))


def test_levels_over_the_key_that_tells_tasks_apart_are_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("WARNING", logger="trmgym.curricula.schedulers"):
        Uniform(levels={"task_id": [0, 1]}).check_tasks(TASKS)
    [record] = caplog.records
    assert "curriculum.levels sets task_id, which tells the sequence's tasks apart" in (
        record.getMessage()
    )
    assert "recolour: 0, recolour-b: 1" in record.getMessage()
    caplog.clear()
    with caplog.at_level("WARNING", logger="trmgym.curricula.schedulers"):
        Uniform(levels={"family": ["colour_map"]}).check_tasks(TASKS)  # no task sets it
        Uniform(levels={"task_id": [0, 1]}).check_tasks(TASKS[:1])  # one task: its levels
    assert caplog.records == []


# ------------------------------------------------------- state, copies and odd inputs
def _every_scheduler(levels: int = 3) -> list[Scheduler]:
    values = list(range(1, levels + 1))
    return [
        Uniform(blanks(*values)),
        DifficultyRamp(blanks(*values), window=2),
        LearningProgress(blanks(*values)),
        PLR(blanks(*values)),
        Staged([[level] for level in blanks(*values)], window=2),
    ]


def test_a_state_over_another_number_of_levels_is_refused_and_changes_nothing() -> None:
    for big, small in zip(_every_scheduler(3), _every_scheduler(2)):
        big.update(np.array([2, 2, 1, 0]), outcomes([0, 1, 1, 1]))
        big.on_chunk_end(0, 1, 8)
        before = str(small.state_dict())
        with pytest.raises(ValueError, match="over 3 levels, this one has 2"):
            small.load_state_dict(big.state_dict())
        old = big.state_dict()
        del old["n_levels"]  # as a checkpoint written before n_levels was recorded
        if isinstance(small, LearningProgress | PLR):  # statistics per level: they misfit
            with pytest.raises(ValueError, match="the state does not fit"):
                small.load_state_dict(old)
        assert str(small.state_dict()) == before  # all or nothing
        assert len(small.probabilities()) == 2
    with pytest.raises(ValueError, match="the state is a 'lp' scheduler's, this is 'plr'"):
        PLR(blanks(1, 2)).load_state_dict(LearningProgress(blanks(1, 2)).state_dict())
    with pytest.raises(ValueError, match=r"state lacks \['rng', 'history', 'stats'\]"):
        Uniform(blanks(1, 2)).load_state_dict({})
    with pytest.raises(ValueError, match="state must be a mapping"):
        Uniform(blanks(1, 2)).load_state_dict([1, 2])


def test_state_dict_and_results_are_copies() -> None:
    for scheduler in [*_every_scheduler(2), Rehearsal()]:
        scheduler.on_chunk_end(0, 1, 8)
        kept = str(scheduler.state_dict())
        state, results = scheduler.state_dict(), scheduler.results()
        state["history"]["probabilities"][0][0] = 99.0
        results["history"]["probabilities"][0][0] = 99.0
        results["levels"][0]["blanks" if "blanks" in results["levels"][0] else "task"] = 99
        state["rng"]["state"]["state"] = 0
        assert str(scheduler.state_dict()) == kept, type(scheduler).__name__


def test_levels_of_bytes_are_refused_and_numpy_inputs_are_accepted() -> None:
    for bad in (b"48", bytearray(b"48")):
        with pytest.raises(ValueError, match="curriculum.levels must be a non-empty list"):
            DifficultyRamp({"blanks": bad})
    with pytest.raises(ValueError, match="curriculum.levels must be a non-empty list"):
        DifficultyRamp(b"48")
    ramp = DifficultyRamp(blanks(1, 2), restart_per_task=np.bool_(False))
    assert ramp.restart_per_task is False
    stages = [[{"blanks": 1}], [{"blanks": 2}], [{"blanks": 3}]]
    staged = Staged(np.array(stages, dtype=object), stage_episodes=np.array([5, 6]))
    assert staged.stages == stages and staged.stage_episodes == [5, 6]
    assert Staged(stages, stage_episodes=np.int64(4)).stage_episodes == [4, 4]


def test_update_takes_empty_lists_tuples_and_mappings_and_names_what_it_refuses() -> None:
    for scheduler in _every_scheduler(2):
        before = str(scheduler.state_dict())
        scheduler.update([], Outcomes([], [], []))  # nothing finished: nothing changes
        scheduler.update(np.array([], dtype=np.int64), ([], [], []))
        assert str(scheduler.state_dict()) == before
    lp = LearningProgress(blanks(1, 2))
    lp.update([0, 1], ([True, False], [1.0, 0.5], [3, 4]))  # a plain tuple
    lp.update([0], {"solved": [True], "cell_accuracy": [1.0], "steps": [2]})  # a mapping
    assert lp.seen.tolist() == [2, 1]
    for bad in ({"solved": [True]}, ([True], [1.0]), "solved"):
        with pytest.raises(ValueError, match=r"update: outcomes must be an Outcomes\("):
            lp.update([0], bad)


def test_sample_names_a_bad_generator_or_count() -> None:
    for scheduler in _every_scheduler(2):
        with pytest.raises(ValueError, match="sample: rng must be a numpy.random.Generator"):
            scheduler.sample(None, 3)
        for n in (-1, 1.5, True):
            with pytest.raises(ValueError, match="sample: n must be an int >= 0"):
                scheduler.sample(np.random.default_rng(0), n)
        assert scheduler.sample(np.random.default_rng(0), np.int64(0)).shape == (0,)


def test_rehearsal_is_usable_on_task_0_and_refuses_a_negative_task() -> None:
    rehearsal = Rehearsal()
    assert rehearsal.levels == [{"task": 0}]
    rehearsal.update([0], Outcomes([True], [1.0], [1]))  # task 0's own puzzles
    assert rehearsal.probabilities().tolist() == [1.0]
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="before_task: task_index must be an int >= 0"):
            rehearsal.before_task(bad)
    assert rehearsal.task == 0 and rehearsal.levels == [{"task": 0}]


def test_each_task_start_records_the_distribution_its_first_chunk_drew_from() -> None:
    """A record closes its chunk; what a task's first chunk drew from is kept too, at the env
    steps where it began (the plot draws each record over the chunk it closes)."""
    from trmgym.report import _per_chunk, curriculum_block

    ramp = DifficultyRamp(blanks(1, 2), window=1)
    ramp.before_task(0)
    ramp.update([0], outcomes([1]))  # climbs within the first chunk
    ramp.on_chunk_end(0, 10, 80)
    ramp.on_chunk_end(0, 20, 160)
    ramp.before_task(1)  # restart_per_task: back to level 0 for task 1
    ramp.on_chunk_end(1, 30, 240)
    history = ramp.results()["history"]
    assert history["level"] == [1, 1, 0]
    assert history["start_env_steps"] == [0, 160] and history["start_level"] == [0, 0]
    assert history["start_probabilities"] == [[1.0, 0.0], [1.0, 0.0]]
    edges, p, level = _per_chunk(curriculum_block({"curriculum": ramp.results()}))
    # each record over the chunk it closes, from 0: the climb within chunk 1 shows there, the
    # restart of task 1 over its first chunk, and the last chunk keeps its width
    assert edges.tolist() == [0, 80, 160, 240]
    assert level.tolist() == [1, 1, 0, 0]
    assert p[:, 1].tolist() == [1.0, 1.0, 0.0, 0.0]
    # the start survives a checkpoint round trip
    again = DifficultyRamp(blanks(1, 2), window=1)
    again.load_state_dict(ramp.state_dict())
    assert again.results()["history"] == history
