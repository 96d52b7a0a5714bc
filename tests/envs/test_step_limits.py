"""Default step limits per action mode (long enough for a perfect agent) and explicit ones."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import trmgym  # noqa: F401  (registers the env ids)
from tests.envs.toy import ToyEnv, ToyVectorEnv
from trmgym.envs.arcgen import ARCGenEnv
from trmgym.envs.core import GRID_MAX_STEPS
from trmgym.envs.maze import MazeEnv
from trmgym.envs.sudoku import MAX_BLANKS, SudokuEnv, SudokuVectorEnv
from trmgym.envs.tokens import VOCAB_SIZE


def perfect_edits(grid: np.ndarray, target: np.ndarray) -> list[int]:
    """The writes of a perfect edit-mode agent: each wrong cell once."""
    width = grid.shape[1]
    cells = np.argwhere(grid != target)
    return [int((r * width + c) * VOCAB_SIZE + target[r, c]) for r, c in cells]


def test_default_edit_limit_lets_a_perfect_agent_solve_9x9_sudoku() -> None:
    env = SudokuEnv(size=9, action_mode="edit", expose_target=True)
    assert env.max_steps == MAX_BLANKS[9] + 1 == 57
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        edits = perfect_edits(obs["grid"], info["target"])
        assert len(edits) == 45  # the default blanks: far more than the old limit of 16
        for action in edits:
            _, _, terminated, truncated, _ = env.step(action)
            assert not terminated and not truncated
        _, reward, terminated, truncated, info = env.step(env.action_space.n - 1)
        assert terminated and not truncated and info["solved"] and info["steps"] == 46
        assert reward == pytest.approx(1.0 - 0.01)  # the solve bonus minus the step cost


def test_default_edit_limit_in_the_vector_env_and_with_more_blanks() -> None:
    env = SudokuVectorEnv(2, size=9, action_mode="edit", expose_target=True)
    assert env.max_episode_steps == 57
    env.set_options({"blanks": MAX_BLANKS[9]}, rows=[1])  # the hardest puzzle the env may pose
    obs, info = env.reset(seed=0)
    plans = [perfect_edits(obs["grid"][row], info["target"][row]) for row in range(2)]
    assert [len(plan) for plan in plans] == [45, 56]
    halt = env.single_action_space.n - 1
    solved = np.zeros(2, dtype=bool)
    for t in range(57):
        actions = np.array([plan[t] if t < len(plan) else halt for plan in plans])
        _, _, terminated, truncated, info = env.step(actions)
        assert not truncated.any()
        solved |= terminated & info["solved"]
        if (np.array([len(p) for p in plans]) <= t).all():
            break
    assert solved.all()


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("trmgym/Sudoku-v0", {"size": 4}),
        ("trmgym/Sudoku-v0", {"size": 6}),
        ("trmgym/Maze-v0", {"size": 9}),
        ("trmgym/Maze-v0", {"size": 9, "braid": 0.5, "min_distance": 2}),
        ("trmgym/ARC-v0", {"augment": True}),
        ("trmgym/ARC-v0", {"pairs": "demos", "task_ids": ["007bbfb7", "00d62c1b"]}),
        ("trmgym/ARCGen-v0", {"tasks_per_family": 20, "max_size": 8}),
    ],
)
def test_default_edit_limit_covers_every_drawn_puzzle(env_id: str, kwargs: dict) -> None:
    env = gym.make_vec(
        env_id,
        num_envs=64,
        action_mode="edit",
        expose_target=True,
        max_episode_steps=None,  # the env's own default, not the registry's 16
        **kwargs,
    )
    limit = env.max_episode_steps
    assert limit == env.core.default_max_steps() == env.core.source.max_cells_to_write() + 1
    most = 0
    for seed in range(6):
        obs, info = env.reset(seed=seed)
        needed = (obs["grid"] != info["target"]).sum(axis=(1, 2))
        most = max(most, int(needed.max()))
    assert most + 1 <= limit


def test_family_edit_limits() -> None:
    assert [SudokuEnv(size=s, action_mode="edit").max_steps for s in (4, 6, 9)] == [13, 27, 57]
    assert MazeEnv(size=9, action_mode="edit").max_steps == 2 * (16 - 1)  # path cells + halt
    assert ARCGenEnv(tasks_per_family=2, max_size=8, action_mode="edit").max_steps == 65
    assert ToyEnv(action_mode="edit").max_steps == 3 * 4 + 1


def test_grid_default_stays_16() -> None:
    assert GRID_MAX_STEPS == 16 and SudokuEnv(size=4).max_steps == 16
    assert ToyVectorEnv(2).max_episode_steps == 16
    env = ToyEnv()
    obs, _ = env.reset(seed=0)
    flags = [env.step({"answer": obs["grid"], "halt": 0})[3] for _ in range(16)]
    assert flags == [False] * 15 + [True]


@pytest.mark.parametrize("action_mode", ["grid", "edit"])
def test_explicit_limits_are_honoured(action_mode: str) -> None:
    env = ToyEnv(action_mode=action_mode, max_steps=3)
    vector = ToyVectorEnv(2, action_mode=action_mode, max_episode_steps=3)
    obs, _ = env.reset(seed=0)
    vector.reset(seed=0)
    if action_mode == "grid":
        action, batched = {"answer": obs["grid"], "halt": 0}, None
    else:
        action = 0
        batched = np.zeros(2, dtype=np.int64)
    for t in range(1, 4):
        _, _, terminated, truncated, _ = env.step(action)
        assert not terminated and truncated == (t == 3)
        if batched is not None:
            _, _, terminated, truncated, _ = vector.step(batched)
            assert truncated.tolist() == [t == 3] * 2
    big = ToyEnv(action_mode="edit", max_steps=500)
    assert big.max_steps == 500


def test_gym_make_without_time_limit_uses_the_env_default() -> None:
    env = gym.make("trmgym/Sudoku-v0", size=9, action_mode="edit", max_episode_steps=-1)
    assert env.unwrapped.max_steps == 57


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "16"])
def test_bad_limits_name_the_argument(bad: object) -> None:
    with pytest.raises(ValueError, match=r"max_steps must be None \(the mode's default\)"):
        ToyEnv(max_steps=bad)
    with pytest.raises(ValueError, match=r"max_episode_steps must be None"):
        ToyVectorEnv(2, max_episode_steps=bad)
