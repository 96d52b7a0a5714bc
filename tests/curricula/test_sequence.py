"""Task specs and sequences: parsing config entries, validation, env construction."""

from __future__ import annotations

import numpy as np
import pytest

from trmgym.curricula.sequence import TaskSequence, TaskSpec


def test_from_mapping_splits_sections_and_drops_nulls() -> None:
    spec = TaskSpec.from_mapping(
        {
            "id": "trmgym/Sudoku-v0",
            "name": "s4",
            "size": 4,
            "blanks": None,
            "train": {"split": "train"},
            "eval": {"split": "test"},
            "options": {"blanks": 3},
        }
    )
    assert spec.kwargs == {"size": 4}
    assert spec.train_kwargs == {"split": "train"} and spec.eval_kwargs == {"split": "test"}
    assert spec.options == {"blanks": 3}
    assert spec.train_steps is None  # the run's run.train_steps


def test_a_task_can_carry_its_own_budget() -> None:
    spec = TaskSpec.from_mapping({"id": "trmgym/Maze-v0", "size": 5, "train_steps": 40})
    assert spec.train_steps == 40 and "train_steps" not in spec.kwargs
    with pytest.raises(ValueError, match="task 'm': train_steps must be null or an int >= 1"):
        TaskSpec("m", "trmgym/Maze-v0", train_steps=-3)


def test_train_and_eval_envs_differ_as_configured() -> None:
    spec = TaskSpec.from_mapping(
        {
            "id": "trmgym/Sudoku-v0",
            "size": 4,
            "blanks": 6,
            "train": {"split": "train"},
            "eval": {"split": "test", "augment": False},
        }
    )
    train = spec.make_vec(4, train=True, max_steps=3, canvas=(6, 6))
    evaluation = spec.make_vec(4, train=False, max_steps=3, canvas=None)
    _, train_info = train.reset(seed=0)
    obs, eval_info = evaluation.reset(seed=0)
    assert "target" in train_info and "target" not in eval_info
    assert train.single_observation_space["grid"].shape == (6, 6)
    assert obs["grid"].shape == (4, 4, 4) and spec.native_shape() == (4, 4)
    assert train.unwrapped.source.split == "train" and evaluation.unwrapped.source.split == "test"


def test_options_reach_every_reset() -> None:
    spec = TaskSpec.from_mapping(
        {
            "id": "trmgym/ARCGen-v0",
            "families": ["colour_map", "flip"],
            "tasks_per_family": 3,
            "options": {"task_id": 4},
        }
    )
    env = spec.make_vec(8, train=True, max_steps=2, canvas=None)
    obs, _ = env.reset(seed=1, options=spec.options)
    assert np.all(obs["task_id"] == 4)


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"size": 4}, r"sequence.tasks\[0\] must be a mapping with an 'id' key"),
        ({"id": "trmgym/Chess-v0"}, r"sequence.tasks\[0\].id must be one of \['trmgym/ARC-v0'"),
        ({"id": "trmgym/Sudoku-v0", "train": [1]}, r"sequence.tasks\[0\].train must be a mapping"),
        (
            {"id": "trmgym/Sudoku-v0", "train_steps": 0},
            r"sequence.tasks\[0\].train_steps must be null or an int >= 1, got 0",
        ),
        (
            {"id": "trmgym/Sudoku-v0", "train_steps": 2.5},
            r"sequence.tasks\[0\].train_steps must be null or an int >= 1, got 2.5",
        ),
    ],
)
def test_bad_entries_name_the_key(entry: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TaskSequence.from_config({"tasks": [entry]})


def test_sequence_rules() -> None:
    a = TaskSpec.from_mapping({"id": "trmgym/Maze-v0", "name": "m", "size": 5})
    with pytest.raises(ValueError, match=r"repeated: \['m'\]"):
        TaskSequence([a, a])
    with pytest.raises(ValueError, match="at least one task"):
        TaskSequence([])
    with pytest.raises(ValueError, match="sequence.tasks is empty"):
        TaskSequence.from_config({"name": "x", "tasks": []})
    sequence = TaskSequence.from_config(
        {
            "name": "two",
            "tasks": [{"id": "trmgym/Maze-v0", "name": "a"}, {"id": "trmgym/Maze-v0", "name": "b"}],
        }
    )
    assert sequence.names == ["a", "b"] and len(sequence) == 2 and sequence[1].name == "b"


def puzzle_keys(spec: TaskSpec, *, train: bool, batches: int, seed: int) -> set[bytes]:
    """Distinct (grid, target) puzzles a task's train or eval env draws over several resets."""
    env = spec.make_vec(64, train=True, max_steps=2, canvas=None)  # targets exposed for keys
    if not train:
        env.close()
        kwargs = spec.env_kwargs(train=False)
        import gymnasium as gym

        env = gym.make_vec(spec.env_id, num_envs=64, expose_target=True, **kwargs)
    keys = set()
    for k in range(batches):
        obs, info = env.reset(seed=seed + k, options=spec.options or None)
        for grid, target in zip(obs["grid"], info["target"]):
            keys.add(grid.tobytes() + target.tobytes())
    env.close()
    return keys


@pytest.mark.parametrize(
    "entry",
    [
        {"id": "trmgym/Maze-v0", "size": 7},
        {"id": "trmgym/Sudoku-v0", "size": 4, "blanks": 4},
        {
            "id": "trmgym/ARCGen-v0",
            "families": ["colour_map"],
            "tasks_per_family": 1,
            "min_size": 3,
            "max_size": 3,
            "options": {"task_id": 0},
        },
    ],
    ids=["maze7", "sudoku4", "arcgen3"],
)
def test_evaluation_puzzles_are_held_out_by_default(entry: dict) -> None:
    """An entry without explicit splits is evaluated on puzzles it never trains on."""
    spec = TaskSpec.from_mapping(entry)
    assert spec.holdout and not spec.explicit_splits
    # the family's own split: Sudoku's base-puzzle split (augmented copies never cross), else the
    # content-hash holdout
    key = "split" if entry["id"] == "trmgym/Sudoku-v0" else "holdout"
    assert spec.env_kwargs(train=True)[key] == "train"
    assert spec.env_kwargs(train=False)[key] == "test"
    trained = puzzle_keys(spec, train=True, batches=6, seed=0)
    evaluated = puzzle_keys(spec, train=False, batches=6, seed=1000)
    assert len(trained) > 50 and len(evaluated) > 10
    assert trained.isdisjoint(evaluated)
    # opting out evaluates on the training pool: small pools then share puzzles
    shared = TaskSpec.from_mapping({**entry, "holdout": False})
    assert key not in shared.env_kwargs(train=False)
    if entry["id"] == "trmgym/Maze-v0":  # 7x7 mazes: a small pool, overlap is certain
        pool = puzzle_keys(shared, train=True, batches=6, seed=0)
        assert not pool.isdisjoint(puzzle_keys(shared, train=False, batches=6, seed=1000))


def test_explicit_splits_are_kept_and_bad_holdout_is_named() -> None:
    spec = TaskSpec.from_mapping(
        {
            "id": "trmgym/Sudoku-v0",
            "size": 4,
            "train": {"split": "train"},
            "eval": {"split": "test"},
        }
    )
    assert spec.explicit_splits and "holdout" not in spec.env_kwargs(train=False)
    with pytest.raises(ValueError, match=r"sequence.tasks\[0\].holdout must be true or false"):
        TaskSpec.from_mapping({"id": "trmgym/Maze-v0", "holdout": "yes"}, "sequence.tasks[0]")


def test_an_arc_entry_without_splits_trains_on_demonstrations_and_is_evaluated_on_test_pairs():
    """Never train on the test pair whose answer the evaluation scores (with augmentation, a hash
    of the augmented pair would put symmetric copies of it on both sides)."""
    spec = TaskSpec.from_mapping(
        {"id": "trmgym/ARC-v0", "task_ids": ["0ca9ddb6"], "train": {"augment": True}}
    )
    assert spec.env_kwargs(train=True)["pairs"] == "demos"
    assert spec.env_kwargs(train=False)["pairs"] == "test"
    env = spec.make_vec(16, train=True, max_steps=2, canvas=None)
    _, info = env.reset(seed=0)
    assert "demo_index" in info and "test_index" not in info  # demonstrations only
    env.close()
    env = spec.make_vec(4, train=False, max_steps=2, canvas=None)
    _, info = env.reset(seed=0)
    assert "test_index" in info
    env.close()


@pytest.mark.parametrize("key", ["max_steps", "max_episode_steps"])
def test_a_step_limit_in_a_task_entry_points_at_the_run_setting(key: str) -> None:
    entry = {"id": "trmgym/Maze-v0", "name": "m", "size": 5, key: 5}
    with pytest.raises(ValueError, match=rf"env.{key}: a run's step limit is run.max_reasoning"):
        TaskSpec.from_mapping(entry, "env")


def test_null_env_keys_mean_the_env_default() -> None:
    """The env configs carry action_mode: null and reward: null (so env.reward=sparse needs no
    +): null keys are dropped and the env's defaults apply."""
    entry = {"id": "trmgym/Maze-v0", "name": "m", "size": 5, "reward": None, "action_mode": None}
    assert TaskSpec.from_mapping(entry, "env").kwargs == {"size": 5}
    entry = {**entry, "reward": "sparse"}
    assert TaskSpec.from_mapping(entry, "env").kwargs == {"size": 5, "reward": "sparse"}
