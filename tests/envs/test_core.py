"""The env machinery (core, single env, vector env, rendering) on a toy puzzle family."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from tests.envs.toy import LazyVectorEnv, ToyEnv, ToyVectorEnv
from trmgym.envs.tokens import PAD, VOCAB_SIZE


def grid_action(answer: np.ndarray, halt: int) -> dict:
    return {"answer": np.asarray(answer, dtype=np.int64), "halt": halt}


def test_reset_obs_and_info() -> None:
    env = ToyEnv()
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    np.testing.assert_array_equal(obs["answer"], obs["grid"])  # the draft starts as the puzzle
    assert set(info) >= {"cell_accuracy", "solved", "steps"}
    assert "target" not in info
    assert info["steps"] == 0 and not info["solved"]


def test_correct_halt_is_solved_and_beats_wrong_halt() -> None:
    env = ToyEnv(expose_target=True)
    _, info = env.reset(seed=1)
    target = info["target"]
    _, r_right, term, trunc, info_right = env.step(grid_action(target, 1))
    assert term and not trunc and info_right["solved"] and info_right["cell_accuracy"] == 1.0

    env.reset(seed=1)
    wrong = target.copy()
    wrong[0, 0] = (wrong[0, 0] % 10) + 1
    _, r_wrong, term, _, info_wrong = env.step(grid_action(wrong, 1))
    assert term and not info_wrong["solved"]
    assert r_right > r_wrong
    # reward = Δ cell accuracy − step_cost (+ solve_bonus): recompute by hand
    cells = 3 * 3  # the last column is PAD in grid and target
    assert r_wrong == pytest.approx(info_wrong["cell_accuracy"] - info["cell_accuracy"] - 0.01)
    assert info_wrong["cell_accuracy"] == pytest.approx((cells - 1) / cells)
    assert r_right == pytest.approx(1.0 - info["cell_accuracy"] - 0.01 + 1.0)


def test_writing_into_padding_costs_accuracy_and_solve() -> None:
    env = ToyEnv(expose_target=True)
    _, info = env.reset(seed=2)
    answer = info["target"].copy()
    answer[0, -1] = 3  # the target has PAD there
    _, _, _, _, info = env.step(grid_action(answer, 1))
    assert not info["solved"] and info["cell_accuracy"] < 1.0


def test_canvas_places_puzzle_top_left_and_scores_outside() -> None:
    env = ToyEnv(canvas=(6, 7), expose_target=True)
    obs, info = env.reset(seed=3)
    assert obs["grid"].shape == (6, 7)
    assert np.all(obs["grid"][3:] == PAD) and np.all(obs["grid"][:, 4:] == PAD)
    answer = info["target"].copy()
    _, _, _, _, solved_info = env.step(grid_action(answer, 0))
    assert solved_info["solved"]
    answer[5, 6] = 1
    _, _, _, _, info = env.step(grid_action(answer, 1))
    assert not info["solved"]


def test_canvas_smaller_than_puzzle_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"canvas=\(2, 2\).*allowed: H >= 3 and W >= 4"):
        ToyEnv(canvas=(2, 2))
    with pytest.raises(TypeError, match="canvas must be None or a pair of ints"):
        ToyEnv(canvas=(3.0, 4))


@pytest.mark.parametrize(
    ("action", "error", "match"),
    [
        (grid_action(np.ones((3, 3)), 0), ValueError, r"shape \(3, 4\)"),
        (grid_action(np.full((3, 4), VOCAB_SIZE), 0), ValueError, "outside the vocabulary"),
        (grid_action(np.full((3, 4), -1), 0), ValueError, "outside the vocabulary"),
        ({"answer": np.ones((3, 4), dtype=float), "halt": 0}, TypeError, "integer tokens"),
        (grid_action(np.ones((3, 4)), 2), ValueError, "halt"),
        (5, TypeError, "action_mode='edit'"),
        ({"answer": np.ones((3, 4), dtype=np.int64)}, ValueError, "missing key"),
    ],
)
def test_bad_grid_actions(action, error, match) -> None:
    env = ToyEnv()
    env.reset(seed=0)
    before = env.core.answer.copy()
    with pytest.raises(error, match=match):
        env.step(action)
    np.testing.assert_array_equal(env.core.answer, before)  # nothing half-applied


def test_edit_mode_writes_one_cell_and_halts() -> None:
    env = ToyEnv(action_mode="edit", expose_target=True)
    _, info = env.reset(seed=4)
    assert env.action_space.n == 3 * 4 * VOCAB_SIZE + 1
    row, col = 1, 2
    token = int(info["target"][row, col])
    obs, _, term, _, _ = env.step((row * 4 + col) * VOCAB_SIZE + token)
    assert not term and obs["answer"][row, col] == token
    _, _, term, _, _ = env.step(env.action_space.n - 1)
    assert term
    # stepping on would pay the solve bonus again, every step: an ended episode needs reset()
    with pytest.raises(RuntimeError, match=r"the episode has ended .* call reset\(\)"):
        env.step(env.action_space.n - 1)
    _, info = env.reset(seed=4)
    with pytest.raises(ValueError, match=r"allowed: 0\.\.312"):
        env.step(env.action_space.n)
    with pytest.raises(TypeError, match="action_mode='grid'"):
        env.step(grid_action(info["target"], 1))


def test_edit_mode_can_solve_by_edits() -> None:
    env = ToyEnv(action_mode="edit", expose_target=True)
    obs, info = env.reset(seed=5)
    wrong = np.argwhere(obs["answer"] != info["target"])
    for row, col in wrong:
        _, _, _, _, info = env.step((row * 4 + col) * VOCAB_SIZE + int(info["target"][row, col]))
    _, reward, term, _, info = env.step(env.action_space.n - 1)
    assert term and info["solved"] and reward == pytest.approx(1.0 - 0.01)
    with pytest.raises(RuntimeError, match="the episode has ended"):
        env.step(env.action_space.n - 1)  # no second solve bonus


def test_options_are_checked_and_used() -> None:
    env = ToyEnv()
    obs, _ = env.reset(seed=0, options={"task_id": 1})
    assert obs["task_id"] == 1
    with pytest.raises(
        ValueError, match=r"unknown reset option\(s\) \['blanks'\].*allowed keys: \['task_id'\]"
    ):
        env.reset(options={"blanks": 3})


@pytest.mark.parametrize("action_mode", ["grid", "edit"])
def test_check_env_and_pickle(action_mode: str) -> None:
    env = ToyEnv(action_mode=action_mode, render_mode="rgb_array")
    check_env(env, skip_render_check=False)
    env.reset(seed=7)
    clone = pickle.loads(pickle.dumps(env))
    a, _ = env.reset(seed=8)
    b, _ = clone.reset(seed=8)
    np.testing.assert_array_equal(a["grid"], b["grid"])


def test_render_modes() -> None:
    env = ToyEnv(render_mode="rgb_array", expose_target=True)
    env.reset(seed=0)
    frame = env.render()
    # canvas 3x4: 86 px per cell (ceil(256 / 3)), 3 panels 16 px apart, two 24 px text bands
    assert frame.dtype == np.uint8 and frame.shape == (
        8 + 48 + 3 * 86 + 8,
        8 + 3 * 4 * 86 + 32 + 8,
        3,
    )
    env = ToyEnv(render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert "puzzle" in text and "answer" in text and "target" not in text and "\x1b[48;2;" in text
    with pytest.raises(ValueError, match="render_mode must be None or one of"):
        ToyEnv(render_mode="human")


@pytest.mark.parametrize(("key", "value"), [("step_cost", -1.0), ("solve_bonus", float("nan"))])
def test_bad_reward_arguments(key: str, value: float) -> None:
    with pytest.raises(ValueError, match=key):
        ToyEnv(**{key: value})


def test_vector_env_steps_batch_and_truncates() -> None:
    env = ToyVectorEnv(num_envs=5, max_episode_steps=3, expose_target=True)
    obs, info = env.reset(seed=0)
    assert obs["grid"].shape == (5, 3, 4) and obs["task_id"].shape == (5,)
    halt = np.array([1, 0, 0, 0, 0])
    answer = info["target"].copy()
    _, reward, term, trunc, info = env.step({"answer": answer, "halt": halt})
    np.testing.assert_array_equal(term, halt == 1)
    assert reward[0] > 1.0 and np.all(reward[1:] < 1.0)
    # NEXT_STEP: row 0 restarts on the next call (reward 0), the others truncate at step 3
    _, reward, term, trunc, info = env.step({"answer": answer, "halt": np.zeros(5, int)})
    assert reward[0] == 0.0 and info["steps"][0] == 0 and not trunc.any()
    _, _, term, trunc, _ = env.step({"answer": env.core.answer, "halt": np.zeros(5, int)})
    np.testing.assert_array_equal(trunc, [False, True, True, True, True])
    assert not term.any()


def test_vector_same_step_autoreset_reports_final_obs() -> None:
    env = ToyVectorEnv(num_envs=3, autoreset_mode="same_step", expose_target=True)
    obs, info = env.reset(seed=0)
    first_grids = obs["grid"].copy()
    halt = np.array([1, 0, 1])
    obs, _, term, _, info = env.step({"answer": info["target"], "halt": halt})
    assert info["_final_obs"].tolist() == [True, False, True]
    np.testing.assert_array_equal(info["final_obs"][0]["grid"], first_grids[0])
    assert info["final_info"][0]["solved"]
    assert info["steps"][0] == 0 and info["steps"][1] == 1  # row 0 already holds a new puzzle
    with pytest.raises(ValueError, match="autoreset_mode must be one of"):
        ToyVectorEnv(num_envs=2, autoreset_mode="sometimes")


def test_same_step_autoreset_refreshes_every_per_puzzle_info_key() -> None:
    env = gym.make_vec(
        "trmgym/Maze-v0", num_envs=16, size=7, autoreset_mode="same_step", max_episode_steps=1
    )
    obs, info = env.reset(seed=0)
    before = info["distance"].copy()
    obs, _, _, trunc, info = env.step({"answer": obs["answer"], "halt": np.zeros(16, int)})
    assert trunc.all()  # every maze ended and was replaced in the same step
    core = env.unwrapped.core
    assert info["distance"].tolist() == list(core.extra["distance"])  # the new mazes
    assert [final["distance"] for final in info["final_info"]] == before.tolist()
    assert info["distance"].tolist() != before.tolist()


def test_vector_seed_determinism_and_bad_batch() -> None:
    a = ToyVectorEnv(num_envs=4)
    b = ToyVectorEnv(num_envs=4)
    oa, _ = a.reset(seed=3)
    ob, _ = b.reset(seed=3)
    np.testing.assert_array_equal(oa["grid"], ob["grid"])
    with pytest.raises(ValueError, match=r"shape \(4, 3, 4\)"):
        a.step({"answer": np.zeros((3, 3, 4), dtype=np.int64), "halt": np.zeros(4, int)})
    with pytest.raises(ValueError, match="num_envs must be an int >= 1"):
        ToyVectorEnv(num_envs=0)


def test_draws_already_solved_at_reset_are_redrawn() -> None:
    env = LazyVectorEnv(num_envs=64, lazy=0.5, expose_target=True)
    for seed in range(4):
        obs, info = env.reset(seed=seed)
        assert not info["solved"].any()
        assert not np.any(np.all(obs["grid"] == info["target"], axis=(1, 2)))
        np.testing.assert_array_equal(info["shift"], obs["task_id"] + 1)  # extras follow
    with pytest.raises(ValueError, match=r"already solved at reset .* in 200 redraws"):
        LazyVectorEnv(num_envs=2, lazy=1.0).reset(seed=0)


def test_a_truncated_episode_also_needs_reset() -> None:
    env = ToyEnv(action_mode="edit", expose_target=True, max_steps=1)
    env.reset(seed=0)
    _, _, term, trunc, _ = env.step(0)  # one write, no halt: the step limit
    assert trunc and not term
    with pytest.raises(RuntimeError, match="the episode has ended"):
        env.step(0)
    env.reset(seed=0)
    env.step(0)  # a new episode steps again


def test_an_unknown_keyword_names_what_the_env_and_its_family_take() -> None:
    with pytest.raises(
        TypeError,
        match=r"unknown keyword argument\(s\) \['bogus'\]; the env takes \[.*'max_steps'.*\] and SudokuSource takes \[.*'blanks'.*\]",
    ):
        gym.make("trmgym/Sudoku-v0", size=4, bogus=1)
    with pytest.raises(
        TypeError,
        match=r"\['bogus'\]; the env takes \[.*'max_episode_steps'.*\] and MazeSource takes",
    ):
        gym.make_vec("trmgym/Maze-v0", num_envs=2, bogus=1)


def test_the_vector_env_takes_the_single_env_s_max_steps_too() -> None:
    """The README and the single env say max_steps=; the vector env's own name is
    max_episode_steps, and max_steps fell through to the family's source as a TypeError."""
    vec = gym.make_vec("trmgym/Maze-v0", num_envs=2, size=7, action_mode="walk", max_steps=5)
    assert vec.max_episode_steps == 5
    with pytest.raises(TypeError, match="give max_steps or max_episode_steps"):
        gym.make_vec("trmgym/Maze-v0", num_envs=2, max_steps=5, max_episode_steps=4)
