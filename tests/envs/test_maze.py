"""Tests for the maze family: generator, BFS distances, start/goal placement, path checking, envs."""

from __future__ import annotations

import hashlib
from collections import deque

import gymnasium as gym
import numpy as np
import pytest

from trmgym.envs.maze import (
    MazeEnv,
    MazeSource,
    MazeVectorEnv,
    generate_mazes,
    max_min_distance,
    room_distances,
)
from trmgym.envs.tokens import MAZE_GOAL, MAZE_OPEN, MAZE_PATH, MAZE_START, MAZE_WALL

STEPS = ((-1, 0), (1, 0), (0, -1), (0, 1))


# ------------------------------------------------------------------------- reference helpers
def reference_bfs(grid: np.ndarray, source: tuple[int, int]) -> np.ndarray:
    """Plain queue-based BFS over the non-wall cells of one grid (independent of the module)."""
    dist = np.full(grid.shape, -1, dtype=np.int64)
    dist[source] = 0
    queue = deque([source])
    while queue:
        r, c = queue.popleft()
        for dr, dc in STEPS:
            nr, nc = r + dr, c + dc
            if grid[nr, nc] != MAZE_WALL and dist[nr, nc] < 0:
                dist[nr, nc] = dist[r, c] + 1
                queue.append((nr, nc))
    return dist


def cell_of(grid: np.ndarray, token: int) -> tuple[int, int]:
    rows, cols = np.nonzero(grid == token)
    assert rows.size == 1
    return int(rows[0]), int(cols[0])


def walk_path(target: np.ndarray) -> int:
    """Follow MAZE_PATH cells from start; return the steps to goal (-1 if the chain breaks)."""
    here, goal = cell_of(target, MAZE_START), cell_of(target, MAZE_GOAL)
    seen = {here}
    steps = 0
    while here != goal:
        nxt = [
            (here[0] + dr, here[1] + dc)
            for dr, dc in STEPS
            if (here[0] + dr, here[1] + dc) not in seen
            and target[here[0] + dr, here[1] + dc] in (MAZE_PATH, MAZE_GOAL)
        ]
        if len(nxt) != 1:
            return -1
        here = nxt[0]
        seen.add(here)
        steps += 1
    return steps if len(seen) == int((target == MAZE_PATH).sum()) + 2 else -1


def open_edges(grid: np.ndarray) -> int:
    passable = grid != MAZE_WALL
    return int((passable[1:] & passable[:-1]).sum() + (passable[:, 1:] & passable[:, :-1]).sum())


SYMBOLS = {"#": MAZE_WALL, ".": MAZE_OPEN, "S": MAZE_START, "G": MAZE_GOAL, "*": MAZE_PATH}


def parse(rows: list[str]) -> np.ndarray:
    return np.array([[SYMBOLS[ch] for ch in row] for row in rows], dtype=np.int64)


# A 5x5 maze whose four rooms form a loop: two shortest paths from (1,1) to (3,3).
LOOP = parse(["#####", "#S..#", "#.#.#", "#..G#", "#####"])


def with_path(grid: np.ndarray, cells: list[tuple[int, int]]) -> np.ndarray:
    out = grid.copy()
    for cell in cells:
        out[cell] = MAZE_PATH
    return out


# ------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("size", [4, 3, 1, 6, 16, -7])
def test_bad_size_names_size_and_allowed_values(size: int) -> None:
    with pytest.raises(ValueError, match=r"size must be an odd int >= 5"):
        MazeSource(size=size)


@pytest.mark.parametrize("size", [7.0, "9", True, None])
def test_size_must_be_int(size: object) -> None:
    with pytest.raises(TypeError, match="size"):
        MazeSource(size=size)  # type: ignore[arg-type]


def test_bad_min_distance_names_range_for_size() -> None:
    high = max_min_distance(9)
    with pytest.raises(ValueError, match=rf"min_distance must lie in 1\.\.{high} for size=9"):
        MazeSource(size=9, min_distance=high + 1)
    with pytest.raises(ValueError, match=r"min_distance must lie in 1\.\."):
        MazeSource(size=9, min_distance=0)
    with pytest.raises(TypeError, match="min_distance"):
        MazeSource(size=9, min_distance=4.5)  # type: ignore[arg-type]
    # a braided maze only guarantees the corner-to-corner distance
    with pytest.raises(ValueError, match=r"min_distance must lie in 1\.\.12 for size=9, braid=0.5"):
        MazeSource(size=9, braid=0.5, min_distance=13)


def test_bad_braid_and_options() -> None:
    with pytest.raises(ValueError, match=r"braid must lie in \[0, 1\]"):
        MazeSource(braid=1.5)
    with pytest.raises(TypeError, match="braid"):
        MazeSource(braid="lots")  # type: ignore[arg-type]
    source = MazeSource(size=7)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"min_distance must lie in 1\.\.12 for size=7"):
        source.sample(rng, 2, {"min_distance": 13})
    with pytest.raises(ValueError, match=r"allowed keys: \['min_distance', 'size'\]"):
        source.sample(rng, 2, {"blanks": 3})


def test_max_min_distance_is_possible_and_covers_default() -> None:
    for size in (5, 7, 9, 15, 31):
        rooms = ((size - 1) // 2) ** 2
        for braid in (0.0, 0.3):
            high = max_min_distance(size, braid)
            assert 2 * (size - 3) <= high <= 2 * (rooms - 1)
            assert MazeSource(size=size, braid=braid).min_distance == min(size, high)
    assert max_min_distance(5) == 6  # a 2x2-room tree is always a path through all four rooms


# -------------------------------------------------------------------------------- generator
@pytest.mark.parametrize("size", [5, 7, 15])
def test_generated_mazes_are_perfect(size: int) -> None:
    grids = generate_mazes(np.random.default_rng(size), 16, size)
    assert grids.shape == (16, size, size)
    for grid in grids:
        assert set(np.unique(grid)) == {MAZE_OPEN, MAZE_WALL}
        assert np.all(grid[[0, -1], :] == MAZE_WALL) and np.all(grid[:, [0, -1]] == MAZE_WALL)
        assert np.all(grid[1::2, 1::2] == MAZE_OPEN)  # every room is carved
        assert np.all(grid[::2, ::2] == MAZE_WALL)  # pillars stay walls
        n_open = int((grid != MAZE_WALL).sum())
        reach = reference_bfs(grid, (1, 1))
        assert int((reach >= 0).sum()) == n_open  # connected
        assert open_edges(grid) == n_open - 1  # and a tree


def test_braid_opens_dead_ends_and_makes_loops() -> None:
    grids = generate_mazes(np.random.default_rng(3), 8, 11, braid=1.0)
    for grid in grids:
        n_open = int((grid != MAZE_WALL).sum())
        assert int((reference_bfs(grid, (1, 1)) >= 0).sum()) == n_open
        assert open_edges(grid) > n_open - 1
        rooms = grid[1::2, 1::2]
        degree = (
            (grid[0:-2:2, 1::2] == MAZE_OPEN).astype(int)
            + (grid[2::2, 1::2] == MAZE_OPEN)
            + (grid[1::2, 0:-2:2] == MAZE_OPEN)
            + (grid[1::2, 2::2] == MAZE_OPEN)
        )
        assert rooms.shape == degree.shape and degree.min() >= 2  # no dead ends left


def test_room_distances_match_reference_bfs() -> None:
    grids = generate_mazes(np.random.default_rng(5), 6, 9, braid=0.5)
    source = np.zeros((6, 4, 4), dtype=bool)
    source[np.arange(6), [0, 1, 2, 3, 0, 3], [0, 1, 2, 3, 3, 0]] = True
    dist = room_distances(grids, source)
    for grid, src, d in zip(grids, source, dist):
        i, j = np.argwhere(src)[0]
        np.testing.assert_array_equal(d, reference_bfs(grid, (2 * i + 1, 2 * j + 1))[1::2, 1::2])
    # one maze at a time: the source mask must come back untouched and at distance 0
    single = source[:1].copy()
    np.testing.assert_array_equal(room_distances(grids[:1], single), dist[:1])
    np.testing.assert_array_equal(single, source[:1])


# ----------------------------------------------------------------------------------- source
@pytest.mark.parametrize(
    ("size", "braid", "min_distance"), [(7, 0.0, 12), (15, 0.0, 40), (11, 0.6, 16)]
)
def test_sample_places_far_endpoints_and_a_shortest_path(
    size: int, braid: float, min_distance: int
) -> None:
    source = MazeSource(size=size, braid=braid, min_distance=min_distance)
    batch = source.sample(np.random.default_rng(11), 24)
    assert batch.grid.shape == batch.target.shape == (24, size, size)
    assert batch.grid.dtype == batch.target.dtype == np.int64
    np.testing.assert_array_equal(batch.task_id, np.zeros(24))
    for grid, target, distance in zip(batch.grid, batch.target, batch.extra["distance"]):
        start, goal = cell_of(grid, MAZE_START), cell_of(grid, MAZE_GOAL)
        assert start[0] % 2 == start[1] % 2 == goal[0] % 2 == goal[1] % 2 == 1  # rooms
        true_distance = reference_bfs(grid, start)[goal]
        assert true_distance == distance >= min_distance
        # the target is the grid with MAZE_PATH on the open cells of one shortest path
        on_path = target == MAZE_PATH
        np.testing.assert_array_equal(target[~on_path], grid[~on_path])
        assert np.all(grid[on_path] == MAZE_OPEN)
        assert int(on_path.sum()) == distance - 1
        assert walk_path(target) == distance
    assert source.is_solved(batch.target, batch.target, batch.grid).all()


def test_reset_option_steers_difficulty() -> None:
    source = MazeSource(size=15)
    rng = np.random.default_rng(0)
    easy = source.sample(rng, 64, {"min_distance": 2}).extra["distance"]
    hard = source.sample(rng, 64, {"min_distance": max_min_distance(15)}).extra["distance"]
    assert hard.min() >= max_min_distance(15) > source.min_distance
    assert easy.mean() < hard.mean()
    assert easy.min() < source.min_distance  # without the option's override this cannot happen


def test_sampling_is_deterministic_by_seed() -> None:
    source = MazeSource(size=9, braid=0.3)
    a = source.sample(np.random.default_rng(42), 8)
    b = source.sample(np.random.default_rng(42), 8)
    c = source.sample(np.random.default_rng(43), 8)
    np.testing.assert_array_equal(a.grid, b.grid)
    np.testing.assert_array_equal(a.target, b.target)
    assert not np.array_equal(a.grid, c.grid)


# ------------------------------------------------------------------------------- is_solved
def test_is_solved_accepts_any_shortest_path_in_a_loop() -> None:
    source = MazeSource(size=5)
    top = with_path(LOOP, [(1, 2), (1, 3), (2, 3)])
    left = with_path(LOOP, [(2, 1), (3, 1), (3, 2)])
    both = with_path(top, [(2, 1), (3, 1), (3, 2)])
    answers = np.stack([top, left, both, LOOP])
    grid = np.broadcast_to(LOOP, answers.shape)
    target = np.broadcast_to(top, answers.shape)
    np.testing.assert_array_equal(
        source.is_solved(answers, target, grid), [True, True, False, False]
    )


def test_is_solved_rejects_longer_path_and_path_through_wall() -> None:
    source = MazeSource(size=5)
    # goal next to start: the shortest path is one cell, the way round the loop is five
    grid = LOOP.copy()
    grid[3, 3], grid[1, 3] = MAZE_OPEN, MAZE_GOAL
    short = with_path(grid, [(1, 2)])
    around = with_path(grid, [(2, 1), (3, 1), (3, 2), (3, 3), (2, 3)])
    # close one side of the loop: drawing through the wall has the right length but is invalid
    walled = LOOP.copy()
    walled[2, 1] = MAZE_WALL
    through_wall = with_path(walled, [(2, 1), (3, 1), (3, 2)])
    valid = with_path(walled, [(1, 2), (1, 3), (2, 3)])
    assert source.is_solved(short[None], short[None], grid[None]).all()
    assert not source.is_solved(around[None], short[None], grid[None]).any()
    np.testing.assert_array_equal(
        source.is_solved(
            np.stack([through_wall, valid]), np.stack([valid, valid]), np.stack([walled, walled])
        ),
        [False, True],
    )


def test_is_solved_rejects_broken_stray_and_tampered_answers() -> None:
    source = MazeSource(size=11)
    batch = source.sample(np.random.default_rng(7), 4)
    grid, target = batch.grid, batch.target
    answers = []
    for k in range(4):
        answer = target[k].copy()
        path_cells = np.argwhere(answer == MAZE_PATH)
        if k == 0:  # broken: one path cell missing
            answer[tuple(path_cells[len(path_cells) // 2])] = MAZE_OPEN
        elif k == 1:  # the path moved one cell into a wall, with a stray cell to keep the count
            answer[tuple(path_cells[0])] = MAZE_OPEN
            walls = np.argwhere(grid[k] == MAZE_WALL)
            answer[tuple(walls[len(walls) // 2])] = MAZE_PATH
        elif k == 2:  # start overwritten
            answer[cell_of(grid[k], MAZE_START)] = MAZE_PATH
        else:  # a wall erased
            answer[0, 0] = MAZE_OPEN
        answers.append(answer)
    assert not source.is_solved(np.stack(answers), target, grid).any()
    assert not source.is_solved(grid, target, grid).any()  # the untouched puzzle


def test_braided_alternative_shortest_path_is_solved() -> None:
    """In braided mazes, every shortest path found by a reference search counts as solved."""
    source = MazeSource(size=9, braid=1.0, min_distance=8)
    batch = source.sample(np.random.default_rng(1), 16)
    found_other = 0
    for grid, target in zip(batch.grid, batch.target):
        start, goal = cell_of(grid, MAZE_START), cell_of(grid, MAZE_GOAL)
        from_start, from_goal = reference_bfs(grid, start), reference_bfs(grid, goal)
        # walk from start, preferring the last direction that stays on some shortest path
        here, cells = start, []
        while True:
            options = [
                (here[0] + dr, here[1] + dc)
                for dr, dc in STEPS
                if from_start[here[0] + dr, here[1] + dc] == from_start[here] + 1
                and from_goal[here[0] + dr, here[1] + dc] == from_goal[here] - 1
            ]
            here = options[-1]
            if here == goal:
                break
            cells.append(here)
        answer = with_path(grid, cells)
        assert source.is_solved(answer[None], target[None], grid[None]).all()
        found_other += not np.array_equal(answer, target)
    assert found_other > 0  # the check exercised paths other than the stored target


# -------------------------------------------------------------------------------------- envs
def test_env_reset_options_and_solving_step() -> None:
    env = MazeEnv(size=7, expose_target=True)
    obs, info = env.reset(seed=3, options={"min_distance": 12})
    assert obs["grid"].shape == (7, 7) and info["distance"] >= 12
    assert env.source.option_keys == ("min_distance", "size") and env.num_tasks == 1
    _, reward, terminated, _, info = env.step({"answer": info["target"], "halt": 1})
    assert terminated and info["solved"] and reward > 1.0
    with pytest.raises(ValueError, match="min_distance"):
        env.reset(options={"min_distance": 99})


def test_vector_env_batches_mazes() -> None:
    envs = MazeVectorEnv(4, size=9, braid=0.2)
    obs, info = envs.reset(seed=0)
    assert obs["grid"].shape == (4, 9, 9)
    assert np.all((obs["grid"] == MAZE_START).sum(axis=(1, 2)) == 1)
    assert np.all(np.asarray(info["distance"]) >= 9)


def test_registered_id_builds_maze_env() -> None:
    import trmgym  # noqa: F401  (registers the ids)

    env = gym.make("trmgym/Maze-v0", size=5)
    assert isinstance(env.unwrapped, MazeEnv)
    obs, _ = env.reset(seed=0)
    assert obs["grid"].shape == (5, 5)


@pytest.mark.parametrize("braid", [0.0, 1.0])
def test_nearest_endpoints_still_pose_a_path(braid: float) -> None:
    # min_distance=1 allows neighbouring rooms: distance 2, one path cell to mark
    source = MazeSource(size=5, min_distance=1, braid=braid)
    batch = source.sample(np.random.default_rng(0), 4000)
    assert batch.extra["distance"].min() == 2
    assert np.all((batch.target == MAZE_PATH).sum(axis=(1, 2)) >= 1)
    assert not source.is_solved(batch.grid, batch.target, batch.grid).any()


# ------------------------------------------------------------------------------- size option
def check_maze_in_block(grid: np.ndarray, target: np.ndarray, distance: int, size: int) -> None:
    """A ``size x size`` maze in the top-left corner, walls outside, a shortest path in target."""
    block, inner = grid[:size, :size], grid[1 : size - 1, 1 : size - 1]
    outside = np.ones(grid.shape, dtype=bool)
    outside[:size, :size] = False
    assert np.all(grid[outside] == MAZE_WALL) and np.all(target[outside] == MAZE_WALL)
    assert np.all(block[[0, -1], :] == MAZE_WALL) and np.all(block[:, [0, -1]] == MAZE_WALL)
    assert np.all(block[1::2, 1::2] != MAZE_WALL)  # every room of the block is carved
    assert np.any(inner == MAZE_START) and np.any(inner == MAZE_GOAL)
    start, goal = cell_of(grid, MAZE_START), cell_of(grid, MAZE_GOAL)
    assert reference_bfs(grid, start)[goal] == distance  # BFS over the whole grid
    on_path = target == MAZE_PATH
    np.testing.assert_array_equal(target[~on_path], grid[~on_path])
    assert np.all(grid[on_path] == MAZE_OPEN) and int(on_path.sum()) == distance - 1
    assert walk_path(target) == distance


def batch_digest(source: MazeSource, seed: int, n: int, options: dict | None) -> str:
    """Digest of a draw and of the generator's next values (pins how much rng it consumed)."""
    rng = np.random.default_rng(seed)
    batch = source.sample(rng, n, options)
    digest = hashlib.sha256()
    arrays = (batch.grid, batch.target, batch.extra["distance"], rng.integers(0, 2**63, size=4))
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


# Recorded from the code before the size option existed (commit b1f1343).
UNCHANGED_DRAWS = [
    ((9, 0.0), 0, 16, None, "64c767422286e928"),
    ((11, 0.4), 1, 16, {"min_distance": 10}, "36a0b27fc1ea2e07"),
    ((15, 0.0), 2, 32, {"min_distance": 2}, "ba45eef2c1b26a00"),
]


@pytest.mark.parametrize(("args", "seed", "n", "options", "expected"), UNCHANGED_DRAWS)
def test_draws_without_size_option_are_unchanged(
    args: tuple[int, float], seed: int, n: int, options: dict | None, expected: str
) -> None:
    size, braid = args
    source = MazeSource(size=size, braid=braid)
    assert batch_digest(source, seed, n, options) == expected
    # the env's own size as the option is the same draw, with the same rng consumption
    assert batch_digest(source, seed, n, {**(options or {}), "size": size}) == expected


@pytest.mark.parametrize("bad", [3, 4, 6, 8, 11, -5])
def test_size_option_must_be_odd_and_within_env_size(bad: int) -> None:
    source = MazeSource(size=9)
    with pytest.raises(
        ValueError, match=r"reset option size must be an odd int in 5\.\.9 \(the env's size\)"
    ):
        source.check_options({"size": bad})
    with pytest.raises(TypeError, match=r"reset option size must be an odd int in 5\.\.9"):
        source.check_options({"size": 7.0})
    with pytest.raises(TypeError, match=r"reset option size"):
        source.check_options({"size": True})


def test_min_distance_is_checked_against_size_option() -> None:
    source = MazeSource(size=9)
    rng = np.random.default_rng(0)
    assert max_min_distance(5) == 6 < 7 <= max_min_distance(9)
    source.sample(rng, 2, {"min_distance": 7})  # valid for the env's size
    with pytest.raises(
        ValueError,
        match=r"min_distance must lie in 1\.\.6 for size=5, braid=0.0 "
        r"\(reset option size=5; the env's size is 9\), got 7",
    ):
        source.sample(rng, 2, {"min_distance": 7, "size": 5})
    batch = source.sample(rng, 8, {"min_distance": 6, "size": 5})
    assert np.all(batch.extra["distance"] == 6)


def test_size_option_caps_the_constructor_min_distance() -> None:
    source = MazeSource(size=15)  # min_distance 15 > max_min_distance(7) == 12
    batch = source.sample(np.random.default_rng(0), 16, {"size": 7})
    assert source.min_distance == 15 and batch.extra["distance"].min() >= max_min_distance(7)
    braided = MazeSource(size=15, braid=0.5, min_distance=3)  # below the cap: kept
    distance = braided.sample(np.random.default_rng(0), 64, {"size": 7}).extra["distance"]
    assert distance.min() >= 3 and distance.min() < max_min_distance(7, 0.5)


@pytest.mark.parametrize(("braid", "size"), [(0.0, 5), (0.0, 9), (0.6, 7)])
def test_size_option_draws_walled_mazes_in_the_corner(braid: float, size: int) -> None:
    source = MazeSource(size=11, braid=braid)
    batch = source.sample(np.random.default_rng(size), 12, {"size": size})
    assert batch.grid.shape == batch.target.shape == (12, 11, 11)
    for grid, target, distance in zip(batch.grid, batch.target, batch.extra["distance"]):
        check_maze_in_block(grid, target, int(distance), size)
        if braid == 0.0:  # still a perfect maze: a tree over the block's open cells
            assert open_edges(grid) == int((grid != MAZE_WALL).sum()) - 1
    # the target is judged solved, and the bare maze is not
    assert source.is_solved(batch.target, batch.target, batch.grid).all()
    assert not source.is_solved(batch.grid, batch.target, batch.grid).any()


def test_env_size_option_target_solves() -> None:
    env = MazeEnv(size=9, expose_target=True)
    obs, info = env.reset(seed=0, options={"size": 5})
    assert obs["grid"].shape == (9, 9) and np.all(obs["grid"][5:, :] == MAZE_WALL)
    _, reward, terminated, _, info = env.step({"answer": info["target"], "halt": 1})
    assert terminated and info["solved"] and reward > 1.0
    with pytest.raises(ValueError, match=r"reset option size must be an odd int in 5\.\.9"):
        env.reset(options={"size": 11})


def test_vector_rows_draw_their_own_maze_size() -> None:
    import trmgym  # noqa: F401  (registers the ids)

    envs = gym.make_vec("trmgym/Maze-v0", num_envs=4, size=9, expose_target=True)
    sizes = [5, 7, 9, 5]
    envs.unwrapped.set_options([{"size": 5}, {"size": 7}, None], rows=[0, 1, 2])
    envs.unwrapped.set_options({"size": 5, "min_distance": 2}, rows=[3])
    obs, info = envs.reset(seed=0)
    assert obs["grid"].shape == (4, 9, 9)
    for row, size in enumerate(sizes):
        check_maze_in_block(obs["grid"][row], info["target"][row], int(info["distance"][row]), size)
    assert info["distance"][0] == 6 and info["distance"][1] >= 9  # default min_distance 9
    halt = np.ones(4, dtype=np.int64)
    _, reward, terminated, _, info = envs.step({"answer": info["target"], "halt": halt})
    assert terminated.all() and info["solved"].all() and np.all(reward > 1.0)
    # a base min_distance too far for a row's size is refused, whichever of the two comes last
    too_far = r"min_distance must lie in 1\.\.6 for size=5, braid=0\.0 \(reset option size=5"
    with pytest.raises(ValueError, match=too_far):
        envs.reset(seed=1, options={"min_distance": 12})
    envs.unwrapped.set_options(None)  # clear every row
    envs.reset(seed=1, options={"min_distance": 12})
    with pytest.raises(ValueError, match=too_far):
        envs.unwrapped.set_options({"size": 5}, rows=[1])
