"""Held-out splits: every env's train and test puzzles are disjoint; holdout=None is unchanged."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import trmgym  # noqa: F401  (registers the env ids)
from tests.envs.pinned import FINGERPRINTS, PINNED, fingerprint
from trmgym.envs.arc import ARCSource
from trmgym.envs.holdout import TEST_FRACTION, check_holdout, content_hash, split_of
from trmgym.envs.maze import MazeSource
from trmgym.envs.tokens import MAZE_OPEN, MAZE_PATH, VOCAB_SIZE

# small families, so that unsplit draws repeat puzzles often and a leak would show
KINDS = {
    "sudoku": ("trmgym/Sudoku-v0", {"size": 4, "blanks": 2}),
    "maze": ("trmgym/Maze-v0", {"size": 7}),
    "arcgen": ("trmgym/ARCGen-v0", {"min_size": 6, "max_size": 6, "tasks_per_family": 10}),
    "arc": ("trmgym/ARC-v0", {"task_ids": ["007bbfb7"], "augment": True}),
}
# puzzles drawn per split; one ARC task with augmentation has about 72 distinct puzzles (8
# dihedral transforms x 9 colours for its one non-black colour) and its draws cost the most
DRAWS = {"sudoku": 3000, "maze": 3000, "arcgen": 3000, "arc": 1200}


def puzzles(env_id: str, kwargs: dict, holdout: str | None, seeds=range(6), draws=3000) -> tuple:
    """``draws`` puzzles of a vector env: (fingerprint set, grids, targets)."""
    env = gym.make_vec(
        env_id, num_envs=draws // len(seeds), expose_target=True, holdout=holdout, **kwargs
    )
    grids, targets = [], []
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        grids.append(obs["grid"])
        targets.append(info["target"])
    grids, targets = np.concatenate(grids), np.concatenate(targets)
    prints = {g.tobytes() + t.tobytes() for g, t in zip(grids, targets)}
    return prints, grids, targets


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_train_and_test_never_share_a_puzzle(kind: str) -> None:
    env_id, kwargs = KINDS[kind]
    draws, later = DRAWS[kind], range(10, 16)
    train, train_grids, train_targets = puzzles(env_id, kwargs, "train", draws=draws)
    test, test_grids, test_targets = puzzles(env_id, kwargs, "test", later, draws)
    assert len(train & test) == 0
    source = gym.make(env_id, **kwargs).unwrapped.source
    assert np.all(split_of(source, train_grids, train_targets) == 0)
    assert np.all(split_of(source, test_grids, test_targets) == 1)
    unsplit, *_ = puzzles(env_id, kwargs, None, draws=draws)
    other, *_ = puzzles(env_id, kwargs, None, later, draws)
    assert len(unsplit & other) > 10  # unsplit draws do repeat: the disjointness is no luck


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_about_a_fifth_of_the_puzzles_are_test(kind: str) -> None:
    env_id, kwargs = KINDS[kind]
    _, grids, targets = puzzles(env_id, kwargs, None, range(2), DRAWS[kind])
    source = gym.make(env_id, **kwargs).unwrapped.source
    assert abs(split_of(source, grids, targets).mean() - TEST_FRACTION) < 0.06


@pytest.mark.parametrize(("name", "autoreset_mode"), sorted(FINGERPRINTS))
def test_holdout_none_draws_exactly_as_before(name: str, autoreset_mode: str) -> None:
    env_id, kwargs = PINNED[name]
    got = fingerprint(env_id, kwargs, autoreset_mode, holdout=None)
    assert got == FINGERPRINTS[name, autoreset_mode]


@pytest.mark.parametrize("env_id", sorted(trmgym.ENV_IDS))
def test_make_and_make_vec_take_holdout(env_id: str) -> None:
    kwargs = {**dict(KINDS.values())[env_id], "holdout": "test", "expose_target": True}
    single = gym.make(env_id, **kwargs)
    vector = gym.make_vec(env_id, num_envs=8, **kwargs)
    assert single.unwrapped.holdout == vector.unwrapped.holdout == "test"
    source = single.unwrapped.source
    for seed in range(3):
        obs, info = single.reset(seed=seed)
        assert split_of(source, obs["grid"][None], info["target"][None]).tolist() == [1]
    obs, info = vector.reset(seed=0)
    assert np.all(split_of(source, obs["grid"], info["target"]) == 1)


@pytest.mark.parametrize("bad", ["validation", "Test", 1, ["test"]])
def test_bad_holdout_names_the_allowed_values(bad) -> None:
    with pytest.raises(ValueError, match=r"holdout must be None \(every puzzle\), 'train' or"):
        gym.make("trmgym/Maze-v0", size=7, holdout=bad)
    with pytest.raises(ValueError, match="holdout must be"):
        gym.make_vec("trmgym/Maze-v0", num_envs=2, size=7, holdout=bad)
    assert check_holdout(None) is None and check_holdout("train") == "train"


def test_a_split_without_puzzles_fails_naming_holdout() -> None:
    # without augmentation this task poses one puzzle (its single test pair): one split is empty
    source = ARCSource(task_ids=["007bbfb7"])
    batch = source.sample(np.random.default_rng(0), 1)
    empty = ["train", "test"][1 - int(split_of(source, batch.grid, batch.target)[0])]
    env = gym.make("trmgym/ARC-v0", task_ids=["007bbfb7"], holdout=empty)
    with pytest.raises(ValueError, match=rf"holdout='{empty}': could not draw 1 arc puzzle"):
        env.reset(seed=0)
    full = "train" if empty == "test" else "test"
    obs, _ = gym.make("trmgym/ARC-v0", task_ids=["007bbfb7"], holdout=full).reset(seed=0)
    np.testing.assert_array_equal(obs["grid"], batch.grid[0])


def test_holdout_keeps_per_env_task_ids() -> None:
    env = gym.make_vec(
        "trmgym/ARC-v0",
        num_envs=4,
        task_ids=["007bbfb7", "00d62c1b"],
        augment=True,
        holdout="test",
        autoreset_mode="same_step",
        max_episode_steps=1,
    )
    obs, info = env.reset(seed=0, options={"task_id": [1, 0, 0, 1]})
    for _ in range(4):
        assert obs["task_id"].tolist() == [1, 0, 0, 1]
        assert list(info["arc_task_id"]) == ["00d62c1b", "007bbfb7", "007bbfb7", "00d62c1b"]
        obs, _, _, _, info = env.step({"answer": obs["answer"], "halt": np.zeros(4, np.int64)})


def test_maze_split_follows_the_maze_not_the_stored_path() -> None:
    # a braided maze may have several shortest paths; the target stores one of them
    source = MazeSource(size=7, braid=1.0)
    batch = source.sample(np.random.default_rng(0), 200)
    other = np.where(batch.target == MAZE_PATH, MAZE_OPEN, batch.target)  # any other target
    np.testing.assert_array_equal(
        split_of(source, batch.grid, batch.target), split_of(source, batch.grid, other)
    )


def test_content_hash_sees_every_cell_and_position() -> None:
    rng = np.random.default_rng(0)
    grids = rng.integers(0, VOCAB_SIZE, size=(500, 5, 5))
    hashes = content_hash(grids)
    np.testing.assert_array_equal(hashes, content_hash(grids.copy()))
    assert len(np.unique(hashes)) == 500
    swapped = grids.copy()
    swapped[:, 0, 0], swapped[:, 4, 4] = grids[:, 4, 4], grids[:, 0, 0]
    moved = np.any(grids[:, 0, 0] != grids[:, 4, 4])
    assert moved and np.all((content_hash(swapped) != hashes) | (swapped == grids).all(axis=(1, 2)))
    assert not np.any(content_hash(grids, grids) == content_hash(grids))
