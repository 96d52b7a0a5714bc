"""The native vector env: pinned draws, seeds, per-row reset options and batched infos."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import trmgym  # noqa: F401  (registers the env ids)
from tests.envs.pinned import FINGERPRINTS, PINNED, fingerprint
from tests.envs.toy import ToyVectorEnv


@pytest.mark.parametrize(("name", "autoreset_mode"), sorted(FINGERPRINTS))
def test_int_seeded_draws_are_pinned(name: str, autoreset_mode: str) -> None:
    env_id, kwargs = PINNED[name]
    assert fingerprint(env_id, kwargs, autoreset_mode) == FINGERPRINTS[name, autoreset_mode]


# ------------------------------------------------------------------------------------------ infos
def test_numeric_infos_are_numeric_arrays() -> None:
    sudoku = gym.make_vec("trmgym/Sudoku-v0", num_envs=3, size=4, blanks=6)
    _, info = sudoku.reset(seed=0)
    assert info["blanks"].dtype == np.int64 and info["blanks"].tolist() == [6, 6, 6]
    assert torch.as_tensor(info["blanks"]).tolist() == [6, 6, 6]
    maze = gym.make_vec("trmgym/Maze-v0", num_envs=3, size=7)
    obs, info = maze.reset(seed=0)
    assert info["distance"].dtype.kind == "i" and np.all(info["distance"] >= 7)
    obs, *_, info = maze.step({"answer": obs["answer"], "halt": np.ones(3, np.int64)})
    obs, *_, info = maze.step({"answer": obs["answer"], "halt": np.zeros(3, np.int64)})
    assert info["distance"].dtype.kind == "i"  # still numeric after an autoreset


def test_arc_infos_keep_objects_only_for_non_numbers() -> None:
    env = gym.make_vec("trmgym/ARC-v0", num_envs=2, task_ids=["007bbfb7", "00d62c1b"], augment=True)
    _, info = env.reset(seed=1)
    assert info["test_index"].dtype == np.int64 and info["test_index"].tolist() == [0, 0]
    assert info["arc_task_id"].dtype == object and info["augmentation"].dtype == object
    assert info["demos"].dtype == object and len(info["demos"][0]) >= 2
    single = gym.make("trmgym/ARC-v0", task_ids=["007bbfb7"])
    _, info = single.reset(seed=0)
    assert type(info["test_index"]) is int


def test_same_step_final_info_holds_numbers() -> None:
    env = gym.make_vec("trmgym/Sudoku-v0", num_envs=2, size=4, blanks=5, autoreset_mode="same_step")
    obs, _ = env.reset(seed=0)
    _, _, _, _, info = env.step({"answer": obs["answer"], "halt": np.array([1, 0])})
    assert info["blanks"].dtype == np.int64
    assert info["_final_info"].tolist() == [True, False]
    assert type(info["final_info"][0]["blanks"]) is int and info["final_info"][0]["blanks"] == 5


def test_toy_extra_list_of_ints_becomes_int_array() -> None:
    env = ToyVectorEnv(num_envs=4)
    _, info = env.reset(seed=0)
    assert info["shift"].dtype.kind == "i"
    np.testing.assert_array_equal(info["shift"], env.core.task_id + 1)


# ------------------------------------------------------------------------------------------ seeds
def maze_grids(seed) -> np.ndarray:
    env = gym.make_vec("trmgym/Maze-v0", num_envs=3, size=7)
    obs, _ = env.reset(seed=seed)
    return obs["grid"]


def test_seed_lists_follow_gymnasiums_contract() -> None:
    same = maze_grids([0, 1, 2])
    np.testing.assert_array_equal(same, maze_grids([0, 1, 2]))
    np.testing.assert_array_equal(same, maze_grids(np.array([0, 1, 2])))
    np.testing.assert_array_equal(same, maze_grids((0, 1, 2)))
    assert not np.array_equal(same, maze_grids([0, 7, 9]))
    assert not np.array_equal(same, maze_grids([2, 1, 0]))
    assert not np.array_equal(maze_grids([5, 0, 0]), maze_grids(5))  # the length is mixed in
    np.testing.assert_array_equal(maze_grids(np.int64(4)), maze_grids(4))


@pytest.mark.parametrize(
    ("seed", "error", "match"),
    [
        ([0], ValueError, r"list of 3 ints >= 0 .*got a list of 1 seeds for num_envs=3"),
        ([0, 1, 2, 3, 4], ValueError, r"got a list of 5 seeds for num_envs=3"),
        ([], ValueError, r"got a list of 0 seeds for num_envs=3"),
        ([0, None, 2], TypeError, r"None only as the whole seed"),
        ([0, 1.5, 2], TypeError, r"seed must be None, an int >= 0, or a list of 3 ints"),
        ([0, -1, 2], ValueError, r"the list holds -1"),
        (-3, ValueError, r"seed must be None, an int >= 0.*got -3"),
        ("7", TypeError, r"seed must be .*got str"),
        (np.zeros((3, 1), dtype=int), TypeError, r"array of shape \(3, 1\)"),
    ],
)
def test_bad_seeds_name_seed_and_num_envs(seed, error, match) -> None:
    env = gym.make_vec("trmgym/Maze-v0", num_envs=3, size=7)
    with pytest.raises(error, match=match):
        env.reset(seed=seed)


# --------------------------------------------------------------------------- per-row reset options
def arcgen(num_envs: int = 6, **kwargs) -> gym.vector.VectorEnv:
    # families in FAMILY_NAMES order, 4 tasks each: colour_map 0..3, flip 4..7, rotate 8..11, ...
    return gym.make_vec(
        "trmgym/ARCGen-v0", num_envs=num_envs, tasks_per_family=4, max_episode_steps=1, **kwargs
    )


def run_out(env, obs) -> dict:
    """One step that ends every episode (max_episode_steps=1); returns the next observation."""
    halt = np.zeros(env.num_envs, dtype=np.int64)
    obs, *_ = env.step({"answer": obs["answer"], "halt": halt})
    if env.autoreset_mode == gym.vector.AutoresetMode.NEXT_STEP:
        obs, *_ = env.step({"answer": obs["answer"], "halt": halt})
    return obs


@pytest.mark.parametrize("autoreset_mode", ["next_step", "same_step"])
def test_row_options_steer_every_later_autoreset(autoreset_mode: str) -> None:
    env = arcgen(autoreset_mode=autoreset_mode)
    obs, _ = env.reset(seed=0)
    env.set_options({"task_id": 5}, rows=[1, 4])
    env.set_options([{"task_id": 7}, None], rows=np.array([2, 3]))
    seen = []
    for _ in range(6):
        obs = run_out(env, obs)
        assert obs["task_id"][[1, 4]].tolist() == [5, 5] and obs["task_id"][2] == 7
        seen.append(obs["task_id"][[0, 3, 5]])
    assert len(np.unique(seen)) > 3  # the other rows still draw any task
    # a new base keeps the overrides; rows without one follow the base
    obs, _ = env.reset(seed=1, options={"family": "flip"})
    assert obs["task_id"][[1, 4]].tolist() == [5, 5] and obs["task_id"][2] == 7
    assert np.all((obs["task_id"] >= 4) & (obs["task_id"] <= 7))
    env.set_options(None, rows=[1])  # cleared: row 1 follows the base again
    assert env.options_of(1) == {"family": "flip"}
    assert env.options_of(4) == {"family": "flip", "task_id": 5}
    found = set()
    for _ in range(8):
        obs = run_out(env, obs)
        found.add(int(obs["task_id"][1]))
        assert obs["task_id"][4] == 5
    assert found <= {4, 5, 6, 7} and len(found) > 1


def test_rows_with_equal_options_share_one_draw() -> None:
    env = arcgen()
    calls = []
    sample = env.unwrapped.source.sample
    env.unwrapped.source.sample = lambda rng, n, options=None: (
        calls.append(n) or sample(rng, n, options)
    )
    env.reset(seed=0)
    assert calls == [6]
    env.set_options([{"task_id": 5}, {"task_id": 9}, {"task_id": 5}, None], rows=[0, 1, 2, 5])
    calls.clear()
    obs, _ = env.reset(seed=0)
    assert sorted(calls) == [1, 2, 3]  # task 5 (rows 0, 2), task 9 (row 1), no override (3 rows)
    assert obs["task_id"][[0, 1, 2]].tolist() == [5, 9, 5]


def test_without_row_options_draws_are_unchanged() -> None:
    plain, steered = arcgen(), arcgen()
    steered.reset(seed=3)
    steered.set_options({"task_id": 2})
    steered.set_options(None)  # every override cleared again
    a, _ = plain.reset(seed=3)
    b, _ = steered.reset(seed=3)
    for _ in range(3):
        np.testing.assert_array_equal(a["grid"], b["grid"])
        a, b = run_out(plain, a), run_out(steered, b)
    name, mode = "maze", "same_step"
    env_id, kwargs = PINNED[name]
    assert fingerprint(env_id, kwargs, mode) == FINGERPRINTS[name, mode]


def test_row_options_are_deterministic_under_a_seed() -> None:
    def rollout() -> list:
        env = arcgen(autoreset_mode="same_step")
        obs, _ = env.reset(seed=4)
        env.set_options([{"family": "rotate"}, {"task_id": 1}, None], rows=[0, 2, 5])
        grids = [obs["grid"]]
        for _ in range(3):
            obs = run_out(env, obs)
            grids.append(obs["grid"])
        return grids

    for a, b in zip(rollout(), rollout()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("options", "rows", "error", "match"),
    [
        ({"task_id": 1}, [0, 6], ValueError, r"rows must be .*0\.\.5; row 6 is out of range"),
        ({"task_id": 1}, [-1], ValueError, r"row -1 is out of range"),
        ({"task_id": 1}, [1, 1], ValueError, r"rows must be .*repeated row"),
        ({"task_id": 1}, np.ones(6, dtype=bool), TypeError, r"boolean mask .*flatnonzero"),
        ({"task_id": 1}, [0.5], TypeError, r"rows must be None \(every row\) or a 1-D"),
        ([{"task_id": 1}], [0, 1], ValueError, r"options has 1 entries for 2 rows"),
        ([{"task_id": 1}, 3], [0, 1], TypeError, r"options\[1\] must be a mapping or None"),
        ("task_id", None, TypeError, r"options must be a mapping .*got str"),
        ({"blanks": 3}, None, ValueError, r"unknown reset option\(s\) \['blanks'\]"),
        ({"task_id": 36}, [2], ValueError, r"task_id must be an int in 0\.\.35"),
        ([None, {"family": "nope"}], [0, 1], ValueError, r"family must be one of"),
    ],
)
def test_bad_row_options_fail_when_set(options, rows, error, match) -> None:
    env = arcgen()
    env.reset(seed=0)
    with pytest.raises(error, match=match):
        env.set_options(options, rows=rows)
    assert all(env.options_of(row) is None for row in range(6))  # nothing was applied


def test_row_options_are_checked_against_the_base() -> None:
    env = arcgen()
    env.reset(seed=0, options={"family": "flip"})
    with pytest.raises(ValueError, match=r"task_id 9 is not a task of family 'flip'"):
        env.set_options({"task_id": 9}, rows=[0])
    env.set_options({"task_id": 5}, rows=[0])
    with pytest.raises(ValueError, match=r"task_id 5 is not a task of family 'rotate'"):
        env.reset(seed=0, options={"family": "rotate"})
    assert env.options_of(0) == {"family": "flip", "task_id": 5}  # the old base stands


def test_row_option_set_again_is_checked_against_a_new_base() -> None:
    # an override seen under an older base is checked anew, not waved through as already seen
    env = arcgen()
    env.reset(seed=0)
    env.set_options({"task_id": 9}, rows=[0])  # fine without a family
    env.set_options(None)
    env.reset(seed=0, options={"family": "flip"})
    with pytest.raises(ValueError, match=r"task_id 9 is not a task of family 'flip'"):
        env.set_options({"task_id": 9}, rows=[1])
    assert env.options_of(1) == {"family": "flip"}


def test_arc_task_id_per_env_survives_autoreset() -> None:
    env = gym.make_vec("trmgym/ARC-v0", num_envs=3, task_ids=["007bbfb7", "00d62c1b", "017c7c7b"])
    obs, _ = env.reset(seed=2, options={"task_id": [2, 0, 2]})
    obs, *_ = env.step({"answer": obs["answer"], "halt": np.array([1, 0, 1])})
    obs, *_ = env.step({"answer": obs["answer"], "halt": np.zeros(3, np.int64)})
    assert obs["task_id"].tolist() == [2, 0, 2]  # rows 0 and 2 drew their own task again
    env.set_options({"task_id": 1}, rows=[2])
    obs, _ = env.reset(seed=2)
    assert obs["task_id"].tolist() == [2, 0, 1]


def test_ever_new_row_options_do_not_pile_up() -> None:
    # a curriculum with a continuous knob sets new options all the time; unused ones are dropped
    env = ToyVectorEnv(num_envs=3)
    env.reset(seed=0)
    for value in range(500):  # toy task t shifts colours by t + 1 (mod 10): keep that at 1
        env.set_options({"task_id": 10 * value}, rows=[value % 3])
    expected = [4980, 4990, 4970]
    assert [env.options_of(row) for row in range(3)] == [{"task_id": t} for t in expected]
    assert len(env._row_options._overrides) <= 4 * 3 + 64 + 1
    obs, _ = env.reset(seed=0)
    assert obs["task_id"].tolist() == expected
