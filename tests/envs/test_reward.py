"""``reward="dense"`` (the default, unchanged) and ``reward="sparse"`` on every env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import trmgym
from tests.envs.toy import ToyEnv, ToyVectorEnv
from trmgym.envs.sudoku import SudokuEnv
from trmgym.envs.tokens import VOCAB_SIZE

SMALL = {
    "trmgym/Sudoku-v0": {"size": 4, "blanks": 8},
    "trmgym/Maze-v0": {"size": 7},
    "trmgym/ARC-v0": {"task_ids": ["007bbfb7", "00d62c1b"]},
    "trmgym/ARCGen-v0": {"tasks_per_family": 2},
}


def improving_answers(grid: np.ndarray, target: np.ndarray) -> list[np.ndarray]:
    """Drafts that fix one more wrong cell each, ending with the target."""
    wrong = np.argwhere(grid != target)
    drafts, draft = [], grid.copy()
    for cell in map(tuple, wrong):
        draft = draft.copy()
        draft[cell] = target[cell]
        drafts.append(draft)
    return drafts


def play(reward: str, seed: int, halt_last: bool = True) -> tuple[list[float], list[float]]:
    """Rewards and cell accuracies of a toy episode that fixes one cell per step."""
    env = ToyEnv(expose_target=True, reward=reward)
    obs, info = env.reset(seed=seed)
    drafts = improving_answers(obs["grid"], info["target"])
    rewards, accuracy = [], [info["cell_accuracy"]]
    for i, draft in enumerate(drafts):
        halt = int(halt_last and i == len(drafts) - 1)
        _, r, terminated, _, info = env.step({"answer": draft, "halt": halt})
        rewards.append(r)
        accuracy.append(info["cell_accuracy"])
    assert terminated == halt_last and info["solved"]
    return rewards, accuracy


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dense_is_the_default_and_unchanged(seed: int) -> None:
    assert ToyEnv().reward == "dense" and ToyEnv().core.reward == "dense"
    rewards, accuracy = play("dense", seed)
    expected = np.diff(accuracy) - 0.01
    expected[-1] += 1.0  # the solve bonus on the correct halt
    np.testing.assert_allclose(rewards, expected)
    default_env = ToyEnv(expose_target=True)
    obs, info = default_env.reset(seed=seed)
    drafts = improving_answers(obs["grid"], info["target"])
    defaults = [
        default_env.step({"answer": d, "halt": int(i == len(drafts) - 1)})[1]
        for i, d in enumerate(drafts)
    ]
    np.testing.assert_allclose(defaults, rewards)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sparse_pays_only_the_solve_bonus_minus_step_cost(seed: int) -> None:
    rewards, accuracy = play("sparse", seed)
    assert accuracy[-1] == 1.0 and accuracy[0] < 1.0  # progress that dense would have paid
    np.testing.assert_allclose(rewards[:-1], -0.01)
    assert rewards[-1] == pytest.approx(1.0 - 0.01)
    # solved but not halted: no bonus yet
    rewards, _ = play("sparse", seed, halt_last=False)
    np.testing.assert_allclose(rewards, -0.01)


def test_sparse_unsolved_halt_and_costs_follow_the_arguments() -> None:
    env = ToyEnv(reward="sparse", step_cost=0.05, solve_bonus=2.0, expose_target=True)
    obs, info = env.reset(seed=4)
    _, r, terminated, _, _ = env.step({"answer": obs["grid"], "halt": 1})
    assert terminated and r == pytest.approx(-0.05)
    env.reset(seed=4)
    _, r, _, _, _ = env.step({"answer": info["target"], "halt": 1})
    assert r == pytest.approx(2.0 - 0.05)


def test_sparse_edit_mode_sudoku() -> None:
    env = SudokuEnv(size=4, blanks=6, action_mode="edit", reward="sparse", expose_target=True)
    obs, info = env.reset(seed=0)
    rewards = []
    for row, col in np.argwhere(obs["grid"] != info["target"]):
        action = (row * 4 + col) * VOCAB_SIZE + int(info["target"][row, col])
        rewards.append(env.step(int(action))[1])
    _, r, terminated, _, info = env.step(env.action_space.n - 1)
    assert terminated and info["solved"]
    np.testing.assert_allclose(rewards, -0.01)
    assert len(rewards) == 6 and r == pytest.approx(0.99)


def test_vector_sparse_matches_single_sparse() -> None:
    vector = ToyVectorEnv(3, reward="sparse", expose_target=True)
    obs, info = vector.reset(seed=0)
    target = info["target"]
    # row 0 halts on the target, row 1 improves without halting, row 2 halts on a wrong answer
    answer = obs["answer"].copy()
    answer[0] = target[0]
    answer[1] = improving_answers(obs["grid"][1], target[1])[0]
    _, reward, terminated, _, info = vector.step({"answer": answer, "halt": np.array([1, 0, 1])})
    np.testing.assert_allclose(reward, [0.99, -0.01, -0.01])
    assert terminated.tolist() == [True, False, True] and info["solved"].tolist()[0]


@pytest.mark.parametrize("env_id", list(trmgym.ENV_IDS))
def test_every_env_takes_reward_and_names_bad_values(env_id: str) -> None:
    env = gym.make(env_id, reward="sparse", **SMALL[env_id])
    assert env.unwrapped.core.reward == "sparse"
    obs, _ = env.reset(seed=0)
    _, r, *_ = env.step({"answer": obs["answer"], "halt": 0})
    assert r == pytest.approx(-0.01)
    vector = gym.make_vec(env_id, num_envs=2, reward="sparse", **SMALL[env_id])
    assert vector.core.reward == "sparse"
    for bad in ("shaped", None, 1):
        with pytest.raises(ValueError, match=r"reward must be one of \['dense', 'sparse'\]"):
            gym.make(env_id, reward=bad, **SMALL[env_id])
        with pytest.raises(ValueError, match=r"reward must be one of \['dense', 'sparse'\]"):
            gym.make_vec(env_id, num_envs=2, reward=bad, **SMALL[env_id])
