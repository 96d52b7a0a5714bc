"""Sudoku: solver correctness, unique generated puzzles, splits, difficulty options and the cache."""

from __future__ import annotations

import itertools
import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import trmgym  # noqa: F401  (registers the env ids)
from trmgym.envs import sudoku_gen
from trmgym.envs.sudoku import (
    MAX_BLANKS,
    SudokuEnv,
    SudokuSource,
    SudokuVectorEnv,
    default_cache_dir,
    split_of,
)
from trmgym.envs.tokens import DIGIT_BLANK, tokens_to_digits


def all_4x4_grids() -> np.ndarray:
    """Every valid 4x4 Sudoku, by brute force over rows (independent of the solver)."""
    rows = np.array(list(itertools.permutations(range(1, 5))))
    index = np.stack(np.meshgrid(*[np.arange(24)] * 4, indexing="ij"), -1).reshape(-1, 4)
    grids = rows[index]  # [24^4, 4, 4]
    ok = np.all(np.sort(grids, axis=1) == np.arange(1, 5)[:, None], axis=(1, 2))
    boxes = grids.reshape(-1, 2, 2, 2, 2).transpose(0, 1, 3, 2, 4).reshape(-1, 4, 4)
    ok &= np.all(np.sort(boxes, axis=2) == np.arange(1, 5), axis=(1, 2))
    return grids[ok]


def digits(batch_grid: np.ndarray) -> np.ndarray:
    return tokens_to_digits(batch_grid).astype(np.int8)


def canonical_9x9() -> np.ndarray:
    return np.array([[(r * 3 + r // 3 + c) % 9 + 1 for c in range(9)] for r in range(9)])


@pytest.fixture
def small(tmp_path: Path):
    def make(**kwargs) -> SudokuSource:
        kwargs.setdefault("size", 4)
        kwargs.setdefault("pool_size", 128)
        kwargs.setdefault("cache_dir", tmp_path)
        return SudokuSource(**kwargs)

    return make


# ------------------------------------------------------------------------------------- solver
def test_solver_counts_match_brute_force_on_4x4() -> None:
    grids = all_4x4_grids()
    assert len(grids) == 288
    rng = np.random.default_rng(0)
    partial = grids[rng.integers(len(grids), size=1500)].copy()
    partial[rng.random(partial.shape) < rng.random((1500, 1, 1))] = 0
    noisy = rng.integers(0, 5, size=(500, 4, 4))
    noisy[rng.random(noisy.shape) < 0.6] = 0  # many of these have no solution
    puzzles = np.concatenate([partial, noisy])
    fits = np.all((puzzles[:, None] == 0) | (puzzles[:, None] == grids[None]), axis=(2, 3))
    expected = np.minimum(fits.sum(axis=1), 2)
    assert set(expected) == {0, 1, 2}
    np.testing.assert_array_equal(sudoku_gen.count_solutions(puzzles), expected)
    solutions, counts = sudoku_gen.solve(puzzles)
    unique = counts == 1
    np.testing.assert_array_equal(solutions[unique], grids[np.argmax(fits[unique], axis=1)])


def test_solver_on_9x9_edge_cases() -> None:
    grid = sudoku_gen.random_solutions(9, 1, np.random.default_rng(0))[0].astype(np.int64)
    assert sudoku_gen.is_valid_solution(grid[None]).all()
    # An unavoidable rectangle: two rows of one band, two columns of different stacks, values
    # swapping a <-> b. Blanking just those four cells leaves exactly two solutions.
    r1, r2, c1, c2 = next(
        (r1, r2, c1, c2)
        for r1, r2 in itertools.combinations(range(9), 2)
        for c1, c2 in itertools.combinations(range(9), 2)
        if r1 // 3 == r2 // 3
        and c1 // 3 != c2 // 3
        and grid[r1, c1] == grid[r2, c2]
        and grid[r1, c2] == grid[r2, c1]
    )
    rectangle = grid.copy()
    rectangle[[r1, r1, r2, r2], [c1, c2, c1, c2]] = 0
    one_missing = grid.copy()
    one_missing[4, 4] = 0
    clash = grid.copy()
    clash[0, 0], clash[0, 1] = 0, grid[0, 0]  # digit repeated in row 0
    empty = np.zeros((9, 9), dtype=np.int64)
    counts = sudoku_gen.count_solutions(np.stack([grid, rectangle, one_missing, clash, empty]))
    np.testing.assert_array_equal(counts, [1, 2, 1, 0, 2])
    assert sudoku_gen.count_solutions(empty[None], limit=1)[0] == 1


def test_is_valid_solution_rejects_broken_grids() -> None:
    grid = canonical_9x9()
    swapped = grid.copy()
    swapped[0, [0, 1]] = swapped[0, [1, 0]]  # rows still fine, columns broken
    blank = grid.copy()
    blank[3, 3] = 0
    np.testing.assert_array_equal(
        sudoku_gen.is_valid_solution(np.stack([grid, swapped, blank])), [True, False, False]
    )


def test_random_solutions_are_valid_and_varied() -> None:
    solutions = sudoku_gen.random_solutions(9, 64, np.random.default_rng(1))
    assert sudoku_gen.is_valid_solution(solutions).all()
    # Not relabellings of one grid: relabel each so its first row reads 1..9, then compare.
    relabel = np.zeros((64, 10), dtype=np.int64)
    relabel[np.arange(64)[:, None], solutions[:, 0, :]] = np.arange(1, 10)
    normalised = np.take_along_axis(relabel, solutions.reshape(64, -1).astype(np.int64), axis=1)
    assert len({row.tobytes() for row in normalised}) == 64


@pytest.mark.parametrize("size", [4, 6, 9])
def test_generate_puzzles_reaches_max_blanks_uniquely(size: int) -> None:
    blanks = MAX_BLANKS[size]
    puzzles, solutions = sudoku_gen.generate_puzzles(size, blanks, 6, np.random.default_rng(2))
    assert np.all((puzzles == 0).sum(axis=(1, 2)) == blanks)
    assert np.all((puzzles == 0) | (puzzles == solutions))
    assert sudoku_gen.is_valid_solution(solutions).all()
    np.testing.assert_array_equal(sudoku_gen.count_solutions(puzzles), 1)


# ----------------------------------------------------------------------------------- samples
@pytest.mark.parametrize(("size", "blanks"), [(4, 8), (6, 18), (9, 45), (6, 26)])
def test_samples_are_unique_valid_puzzles(tmp_path: Path, size: int, blanks: int) -> None:
    source = SudokuSource(size=size, blanks=blanks, pool_size=64, cache_dir=tmp_path)
    batch = source.sample(np.random.default_rng(0), 48)
    assert batch.grid.shape == batch.target.shape == (48, size, size)
    assert batch.grid.dtype == np.int64
    np.testing.assert_array_equal(batch.task_id, 0)
    np.testing.assert_array_equal(batch.extra["blanks"], blanks)
    grid, target = digits(batch.grid), digits(batch.target)
    assert grid.min() >= 0 and grid.max() <= size and target.min() >= 1
    assert np.all((batch.grid == DIGIT_BLANK).sum(axis=(1, 2)) == blanks)
    assert np.all((grid == 0) | (grid == target))
    assert sudoku_gen.is_valid_solution(target).all()
    solutions, counts = sudoku_gen.solve(grid)
    np.testing.assert_array_equal(counts, 1)
    np.testing.assert_array_equal(solutions, target)


def test_same_seed_same_batch(small) -> None:
    first = small().sample(np.random.default_rng(5), 16, {"blanks": 6})
    again = small().sample(np.random.default_rng(5), 16, {"blanks": 6})
    other = small().sample(np.random.default_rng(6), 16, {"blanks": 6})
    np.testing.assert_array_equal(first.grid, again.grid)
    np.testing.assert_array_equal(first.target, again.target)
    assert not np.array_equal(first.grid, other.grid)


def test_augmentation_keeps_validity_and_uniqueness(small) -> None:
    source = small(size=9, blanks=50, pool_size=16)
    pool_puzzles, pool_solutions = source.pool()
    puzzles, solutions = sudoku_gen.augment(
        np.repeat(pool_puzzles, 4, axis=0),
        np.repeat(pool_solutions, 4, axis=0),
        np.random.default_rng(3),
    )
    assert sudoku_gen.is_valid_solution(solutions).all()
    assert np.all((puzzles == 0) | (puzzles == solutions))
    np.testing.assert_array_equal(sudoku_gen.count_solutions(puzzles), 1)
    seen = {p.tobytes() for p in pool_puzzles}
    assert sum(p.tobytes() not in seen for p in puzzles) >= 60  # the symmetries do move grids
    for size in (4, 6):
        pool = small(size=size, pool_size=16).pool()
        moved, solved = sudoku_gen.augment(*pool, np.random.default_rng(4))
        assert sudoku_gen.is_valid_solution(solved).all()
        np.testing.assert_array_equal(sudoku_gen.count_solutions(moved), 1)


def test_without_augmentation_draws_come_from_the_pool(small) -> None:
    source = small(augment=False, pool_size=32)
    pool = {p.tobytes() for p in source.pool()[0]}
    batch = source.sample(np.random.default_rng(0), 200)
    assert {p.tobytes() for p in digits(batch.grid)} <= pool


@pytest.mark.parametrize("blanks", [2, 12])
def test_train_and_test_never_share_a_puzzle(small, blanks: int) -> None:
    # 4x4 puzzles with 2 or 12 blanks are few enough that unsplit draws would collide often.
    train = small(split="train", blanks=blanks).sample(np.random.default_rng(0), 3000)
    test = small(split="test", blanks=blanks).sample(np.random.default_rng(0), 3000)
    train_grids, test_grids = digits(train.grid), digits(test.grid)
    np.testing.assert_array_equal(split_of(train_grids), 0)
    np.testing.assert_array_equal(split_of(test_grids), 1)
    train_set = {g.tobytes() for g in train_grids}
    test_set = {g.tobytes() for g in test_grids}
    assert len(train_set) > 100 and len(test_set) > 100
    assert not train_set & test_set
    assert not np.array_equal(small(split="train").pool()[0], small(split="test").pool()[0])


def test_split_hash_is_balanced() -> None:
    # Grids differing in only two cells must still spread evenly over the splits.
    grid = canonical_9x9()
    pairs = np.array(list(itertools.combinations(range(81), 2)))
    near = np.repeat(grid.reshape(1, 81), len(pairs), axis=0)
    near[np.arange(len(pairs))[:, None], pairs] = 0
    assert 0.46 < split_of(near.reshape(-1, 9, 9)).mean() < 0.54


def test_blanks_option_changes_difficulty(small) -> None:
    source = small(size=6, blanks=18, pool_size=32)
    for blanks in (1, 10, 18, 22):
        batch = source.sample(np.random.default_rng(blanks), 24, {"blanks": blanks})
        assert np.all((batch.grid == DIGIT_BLANK).sum(axis=(1, 2)) == blanks)
        np.testing.assert_array_equal(batch.extra["blanks"], blanks)
        np.testing.assert_array_equal(sudoku_gen.count_solutions(digits(batch.grid)), 1)
    default = source.sample(np.random.default_rng(0), 4, {"blanks": None})
    assert np.all((default.grid == DIGIT_BLANK).sum(axis=(1, 2)) == 18)


# ------------------------------------------------------------------------------------ errors
def test_bad_arguments_name_the_field(small) -> None:
    with pytest.raises(ValueError, match=r"size must be one of \[4, 6, 9\]"):
        SudokuSource(size=5)
    with pytest.raises(TypeError, match="size"):
        SudokuSource(size="9")
    with pytest.raises(ValueError, match=r"blanks must lie in 1\.\.12 for size=4"):
        SudokuSource(size=4, blanks=13)
    with pytest.raises(ValueError, match=r"blanks must lie in 1\.\.56 for size=9"):
        SudokuSource(size=9, blanks=60)
    with pytest.raises(ValueError, match="blanks"):
        SudokuSource(size=6, blanks=0)
    with pytest.raises(TypeError, match="blanks"):
        SudokuSource(size=6, blanks=2.5)
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'test'\]"):
        SudokuSource(split="val")
    with pytest.raises(TypeError, match="augment"):
        SudokuSource(augment=1)
    with pytest.raises(ValueError, match="pool_size"):
        SudokuSource(pool_size=0)
    source = small()
    with pytest.raises(ValueError, match=r"blanks must lie in 1\.\.12"):
        source.check_options({"blanks": 14})
    with pytest.raises(ValueError, match="allowed keys"):
        source.check_options({"difficulty": 3})
    with pytest.raises(ValueError, match="size"):
        sudoku_gen.geometry(7)


# ------------------------------------------------------------------------------------- cache
def test_cache_is_written_atomically_and_reused(small, tmp_path: Path, monkeypatch) -> None:
    first = small().sample(np.random.default_rng(0), 8)
    files = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert len(files) == 1 and files[0].endswith(".npz")

    def no_generation(*args, **kwargs):
        raise AssertionError("the cached pool should have been reused")

    monkeypatch.setattr(sudoku_gen, "generate_puzzles", no_generation)
    again = small().sample(np.random.default_rng(0), 8)
    np.testing.assert_array_equal(first.grid, again.grid)
    with pytest.raises(AssertionError, match="reused"):
        small(blanks=9).sample(np.random.default_rng(0), 1)  # another difficulty: not cached


def test_failed_cache_write_leaves_nothing(small, tmp_path: Path, monkeypatch) -> None:
    def broken_savez(file, **arrays):
        file.write(b"PK\x03\x04 half")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.warns(UserWarning, match="cannot write Sudoku cache"):
        batch = small().sample(np.random.default_rng(0), 4)
    assert batch.grid.shape == (4, 4, 4)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "inconsistent"])
def test_corrupt_cache_is_regenerated(small, damage: str) -> None:
    source = small()
    puzzles, solutions = source.pool()
    path = source.cache_path(source.blanks)
    if damage == "garbage":
        path.write_bytes(b"not an npz file")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    else:
        wrong = puzzles.copy()
        wrong[0, 0, 0] = solutions[0, 0, 0] % 4 + 1  # disagrees with its solution
        np.savez(path, puzzles=wrong, solutions=solutions)
    with pytest.warns(UserWarning, match="regenerating corrupt Sudoku cache"):
        regenerated = small().pool()
    np.testing.assert_array_equal(regenerated[0], puzzles)
    with np.load(path) as data:  # and the file is whole again
        np.testing.assert_array_equal(data["puzzles"], puzzles)


def test_cache_disabled_and_default_dir(small, tmp_path: Path, monkeypatch) -> None:
    small(cache=False).pool()
    assert not list(tmp_path.rglob("*.npz"))
    monkeypatch.setenv("TRMGYM_CACHE", str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere"
    assert SudokuSource(size=4).cache_path(8).is_relative_to(tmp_path / "elsewhere")


# --------------------------------------------------------------------------------------- envs
def test_env_and_vector_env(tmp_path: Path) -> None:
    env = gym.make("trmgym/Sudoku-v0", size=4, blanks=6, pool_size=64, cache_dir=tmp_path)
    assert isinstance(env.unwrapped, SudokuEnv)
    obs, info = env.reset(seed=0, options={"blanks": 3})
    assert (obs["grid"] == DIGIT_BLANK).sum() == 3 and info["blanks"] == 3
    assert obs["task_id"] == 0
    clone = pickle.loads(pickle.dumps(env))
    np.testing.assert_array_equal(clone.reset(seed=1)[0]["grid"], env.reset(seed=1)[0]["grid"])
    env.close()

    vec = gym.make_vec(
        "trmgym/Sudoku-v0", num_envs=5, size=6, pool_size=32, cache_dir=tmp_path, expose_target=True
    )
    assert isinstance(vec, SudokuVectorEnv)
    obs, info = vec.reset(seed=0, options={"blanks": 20})
    assert obs["grid"].shape == (5, 6, 6)
    np.testing.assert_array_equal((obs["grid"] == DIGIT_BLANK).sum(axis=(1, 2)), 20)
    np.testing.assert_array_equal(sudoku_gen.count_solutions(digits(obs["grid"])), 1)
    vec.close()


def test_zero_blanks_is_refused_everywhere(small) -> None:
    # a Sudoku without blanks is solved before the first step
    with pytest.raises(ValueError, match=r"blanks must lie in 1\.\.12 for size=4, got 0"):
        small(blanks=0)
    env = gym.make_vec("trmgym/Sudoku-v0", num_envs=2, size=4, blanks=4)
    with pytest.raises(ValueError, match=r"blanks must lie in 1\.\.12 for size=4, got 0"):
        env.reset(seed=0, options={"blanks": 0})
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"blanks must lie in 1\.\.12 for size=4, got 0"):
        env.unwrapped.set_options({"blanks": 0}, rows=[1])
    obs, info = env.reset(seed=0, options={"blanks": 1})  # one blank is the easiest puzzle
    assert info["blanks"].tolist() == [1, 1] and not info["solved"].any()
