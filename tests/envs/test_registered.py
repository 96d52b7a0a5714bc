"""Every registered env id: Gymnasium's checker, seed determinism, pickling, vector parity."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import trmgym
from trmgym.envs.vector import PuzzleVectorEnv

# small, fast settings per family (the defaults are exercised by the per-family tests)
SMALL = {
    "trmgym/Sudoku-v0": {"size": 4, "blanks": 8},
    "trmgym/Maze-v0": {"size": 7},
    "trmgym/ARC-v0": {"task_ids": ["007bbfb7", "00d62c1b", "017c7c7b"]},
    "trmgym/ARCGen-v0": {"tasks_per_family": 4},
}
CASES = [(env_id, mode) for env_id in trmgym.ENV_IDS for mode in ("grid", "edit")] + [
    ("trmgym/Maze-v0", "walk")
]


def test_all_ids_registered() -> None:
    assert set(SMALL) == set(trmgym.ENV_IDS)
    for env_id in trmgym.ENV_IDS:
        spec = gym.spec(env_id)
        assert spec.max_episode_steps is None  # each env truncates itself
        assert spec.vector_entry_point is not None


@pytest.mark.parametrize(("env_id", "action_mode"), CASES)
def test_check_env(env_id: str, action_mode: str) -> None:
    env = gym.make(env_id, action_mode=action_mode, render_mode="rgb_array", **SMALL[env_id])
    check_env(env.unwrapped)
    env.close()


@pytest.mark.parametrize(
    ("env_id", "action_mode"), [case for case in CASES if case[1] in ("edit", "walk")]
)
def test_stable_baselines3_check_env(env_id: str, action_mode: str) -> None:
    env = gym.make(env_id, action_mode=action_mode, **SMALL[env_id])
    with warnings.catch_warnings():
        # SB3 suggests flattening the 2-D grid observations; they are the design, not an error
        warnings.filterwarnings("ignore", message=".*unconventional shape")
        sb3_check_env(env.unwrapped)
    assert env.unwrapped.action_masks().shape == (env.action_space.n,)


def rollout(env: gym.Env, seed: int, steps: int = 6) -> list:
    env.action_space.seed(seed)
    obs, info = env.reset(seed=seed)
    trace = [obs, info["cell_accuracy"]]
    for _ in range(steps):
        action = env.action_space.sample()
        if isinstance(action, dict):
            action["halt"] = 0
        obs, reward, terminated, truncated, info = env.step(action)
        trace += [obs, reward, terminated, truncated, info["cell_accuracy"]]
    return trace


def assert_same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, dict):
            for key in x:
                np.testing.assert_array_equal(x[key], y[key])
        else:
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(("env_id", "action_mode"), CASES)
def test_same_seed_same_rollout(env_id: str, action_mode: str) -> None:
    a = gym.make(env_id, action_mode=action_mode, **SMALL[env_id])
    b = gym.make(env_id, action_mode=action_mode, **SMALL[env_id])
    assert_same(rollout(a, 11), rollout(b, 11))
    first, _ = a.reset(seed=1)
    others = [a.reset(seed=s)[0]["grid"] for s in range(2, 8)]
    assert any(not np.array_equal(first["grid"], g) for g in others)  # seeds matter


@pytest.mark.parametrize(("env_id", "action_mode"), CASES)
def test_pickle_round_trip(env_id: str, action_mode: str) -> None:
    env = gym.make(env_id, action_mode=action_mode, **SMALL[env_id])
    env.reset(seed=3)
    clone = pickle.loads(pickle.dumps(env))
    env.action_space.seed(0)
    action = env.action_space.sample()
    if isinstance(action, dict):
        action["halt"] = 0
    obs_a, r_a, *_ = env.step(action)
    obs_b, r_b, *_ = clone.step(action)
    np.testing.assert_array_equal(obs_a["answer"], obs_b["answer"])
    assert r_a == r_b
    assert_same([env.reset(seed=4)[0]], [clone.reset(seed=4)[0]])


@pytest.mark.parametrize("env_id", list(trmgym.ENV_IDS))
def test_make_vec_is_native_and_consistent(env_id: str) -> None:
    vec = gym.make_vec(env_id, num_envs=3, **SMALL[env_id])
    assert isinstance(vec, PuzzleVectorEnv)
    single = gym.make(env_id, **SMALL[env_id])
    assert vec.single_observation_space == single.observation_space
    assert vec.single_action_space == single.action_space
    obs, info = vec.reset(seed=0)
    assert vec.observation_space.contains(obs)
    assert "target" not in info
    action = {"answer": obs["answer"], "halt": np.zeros(3, dtype=np.int64)}
    obs, reward, terminated, truncated, info = vec.step(action)
    assert reward.shape == (3,) and not terminated.any()
    np.testing.assert_allclose(reward, -0.01)  # unchanged answer: only the step cost


# the easiest settings of each family: the likeliest to pose a puzzle that is already solved
EASIEST = {
    "trmgym/Sudoku-v0": {"size": 4, "blanks": 1},
    "trmgym/Maze-v0": {"size": 5, "min_distance": 1, "braid": 1.0},
    "trmgym/ARC-v0": {  # each has a demonstration whose output equals its input
        "task_ids": ["22eb0ac0", "253bf280", "44d8ac46", "4938f0c2"],
        "pairs": "demos",
        "augment": True,
    },
    "trmgym/ARCGen-v0": {"tasks_per_family": 20, "min_size": 3, "max_size": 4},
}


@pytest.mark.parametrize("env_id", list(trmgym.ENV_IDS))
def test_no_puzzle_is_solved_at_reset(env_id: str) -> None:
    # the draft answer starts as the puzzle: halting at once must never solve it
    assert set(EASIEST) == set(trmgym.ENV_IDS)
    env = gym.make_vec(env_id, num_envs=128, expose_target=True, **EASIEST[env_id])
    halt = np.ones(128, dtype=np.int64)
    for seed in range(8):
        obs, info = env.reset(seed=seed)
        assert not info["solved"].any()
        assert not np.any(np.all(obs["answer"] == info["target"], axis=(1, 2)))
        _, _, terminated, _, info = env.step({"answer": obs["answer"], "halt": halt})
        assert terminated.all() and not info["solved"].any()


def test_made_envs_keep_their_action_modes_step_limit() -> None:
    """``gymnasium.make`` adds no 16-step TimeLimit: an edit-mode 9x9 Sudoku gets its own limit."""
    from trmgym.envs.core import GRID_MAX_STEPS

    assert trmgym.DEFAULT_MAX_STEPS == GRID_MAX_STEPS
    grid = gym.make("trmgym/Sudoku-v0", size=4)
    assert grid.unwrapped.max_steps == GRID_MAX_STEPS
    edit = gym.make("trmgym/Sudoku-v0", size=9, action_mode="edit")
    limit = edit.unwrapped.max_steps
    assert limit > 45  # a 9x9 Sudoku can need 45 writes and a halt
    edit.reset(seed=0)
    steps, truncated = 0, False
    while not truncated:
        _, _, terminated, truncated, _ = edit.step(0)  # write token 0 into cell 0, never halt
        assert not terminated
        steps += 1
    assert steps == limit
