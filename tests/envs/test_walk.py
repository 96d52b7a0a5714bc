"""Maze walk mode: moves, walls, loop erasure, solving, rewards, the vector env and its options."""

from __future__ import annotations

from collections import deque

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import trmgym  # noqa: F401  (registers the env ids)
from trmgym.envs.maze import MazeEnv, MazeSource, MazeVectorEnv
from trmgym.envs.tokens import MAZE_GOAL, MAZE_OPEN, MAZE_PATH, MAZE_START, MAZE_WALL
from trmgym.envs.walk import MOVES, MazeWalk, walk_step_limit

UP, RIGHT, DOWN, LEFT, HALT = 0, 1, 2, 3, 4


def walkable(grid: np.ndarray, cell: tuple[int, int]) -> bool:
    r, c = cell
    h, w = grid.shape
    return 0 <= r < h and 0 <= c < w and grid[r, c] in (MAZE_OPEN, MAZE_START, MAZE_GOAL)


def neighbours(grid: np.ndarray, cell: tuple[int, int]) -> list[tuple[int, tuple[int, int]]]:
    out = []
    for move, (dr, dc) in enumerate(MOVES.tolist()):
        nxt = (cell[0] + dr, cell[1] + dc)
        if walkable(grid, nxt):
            out.append((move, nxt))
    return out


def find(grid: np.ndarray, token: int) -> tuple[int, int]:
    r, c = np.argwhere(grid == token)[0]
    return int(r), int(c)


def shortest_moves(grid: np.ndarray) -> list[int]:
    """A shortest start-goal walk, by a plain breadth-first search over the grid."""
    start, goal = find(grid, MAZE_START), find(grid, MAZE_GOAL)
    parent: dict[tuple[int, int], tuple[tuple[int, int], int] | None] = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        for move, nxt in neighbours(grid, cell):
            if nxt not in parent:
                parent[nxt] = (cell, move)
                queue.append(nxt)
    moves, cell = [], goal
    while parent[cell] is not None:
        cell, move = parent[cell]
        moves.append(move)
    return moves[::-1]


def detour_moves(grid: np.ndarray, distance: int) -> list[int] | None:
    """A simple start-goal path longer than ``distance`` (depth-first search), or None."""
    start, goal = find(grid, MAZE_START), find(grid, MAZE_GOAL)
    stack = [(start, [start], [])]
    while stack:
        cell, seen, moves = stack.pop()
        for move, nxt in neighbours(grid, cell):
            if nxt in seen:
                continue
            if nxt == goal:
                if len(moves) + 1 > distance:
                    return moves + [move]
                continue
            stack.append((nxt, seen + [nxt], moves + [move]))
    return None


class ReferenceWalk:
    """One loop-erased walk kept as a Python list: the specification the batched code meets."""

    def __init__(self, grid: np.ndarray) -> None:
        self.grid = grid
        self.path = [find(grid, MAZE_START)]

    def move(self, action: int) -> None:
        if action == HALT:
            return
        dr, dc = MOVES[action]
        nxt = (self.path[-1][0] + int(dr), self.path[-1][1] + int(dc))
        if not walkable(self.grid, nxt):
            return
        if nxt in self.path:
            del self.path[self.path.index(nxt) + 1 :]
        else:
            self.path.append(nxt)

    def answer(self) -> np.ndarray:
        answer = self.grid.copy()
        for cell in self.path:
            if answer[cell] == MAZE_OPEN:
                answer[cell] = MAZE_PATH
        return answer


# -------------------------------------------------------------------------------- the space
def test_spaces_and_position() -> None:
    env = MazeEnv(size=7, action_mode="walk")
    assert env.action_space == gym.spaces.Discrete(5)
    assert env.observation_space["position"] == gym.spaces.MultiDiscrete([7, 7])
    obs, info = env.reset(seed=0)
    assert tuple(obs["position"]) == find(obs["grid"], MAZE_START)
    np.testing.assert_array_equal(obs["answer"], obs["grid"])  # nothing drawn yet
    assert not info["solved"] and info["steps"] == 0


@pytest.mark.parametrize("check_env", [gym_check_env, sb3_check_env])
def test_env_checkers_accept_walk_mode(check_env) -> None:
    env = MazeEnv(size=7, action_mode="walk")
    check_env(env)


def test_walk_is_refused_by_other_families_naming_allowed_modes() -> None:
    for env_id, kwargs in (
        ("trmgym/Sudoku-v0", {"size": 4}),
        ("trmgym/ARC-v0", {"task_ids": ["007bbfb7"]}),
        ("trmgym/ARCGen-v0", {"tasks_per_family": 2}),
    ):
        with pytest.raises(ValueError, match=r"action_mode must be one of \['grid', 'edit'\]"):
            gym.make(env_id, action_mode="walk", **kwargs)
    with pytest.raises(
        ValueError, match=r"action_mode must be one of \['grid', 'edit', 'walk'\] for maze"
    ):
        MazeEnv(size=7, action_mode="jump")


def test_bad_walk_actions_name_the_allowed_values() -> None:
    env = MazeEnv(size=7, action_mode="walk")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"allowed: 0\.\.4 \(0 up, 1 right, 2 down, 3 left"):
        env.step(5)
    with pytest.raises(TypeError, match="action_mode='walk' expects an int"):
        env.step({"answer": np.zeros((7, 7), np.int64), "halt": 1})
    with pytest.raises(TypeError, match="walk actions must be ints"):
        env.step(1.5)


# -------------------------------------------------------------------------------- the walk
def test_walls_block_and_the_step_still_counts() -> None:
    env = MazeEnv(size=9, action_mode="walk", expose_target=True)
    obs, info = env.reset(seed=3)
    start = tuple(obs["position"])
    blocked = [m for m in range(4) if not walkable(obs["grid"], tuple(np.add(start, MOVES[m])))]
    assert blocked  # a room has at least one wall around it in a perfect maze
    for steps, move in enumerate(blocked, start=1):
        obs, reward, terminated, truncated, info = env.step(move)
        assert tuple(obs["position"]) == start and info["steps"] == steps
        assert reward == pytest.approx(-0.01) and not terminated and not truncated
        np.testing.assert_array_equal(obs["answer"], obs["grid"])


def test_off_grid_and_pad_block_too() -> None:
    # a hand-made 3x4 grid whose start sits on the top edge, and PAD beyond the last column
    grid = np.array(
        [
            [MAZE_START, MAZE_OPEN, MAZE_OPEN, 0],
            [MAZE_OPEN, MAZE_WALL, MAZE_OPEN, 0],
            [MAZE_OPEN, MAZE_OPEN, MAZE_GOAL, 0],
        ]
    )
    walk = MazeWalk(1, (3, 4))
    walk.reset(np.array([0]), grid[None], np.zeros((1, 3, 4), np.int64))
    walk.move(np.array([UP]))
    walk.move(np.array([LEFT]))
    assert walk.positions(0).tolist() == [0, 0] and walk.path_length[0] == 1
    walk.move(np.array([RIGHT]))
    walk.move(np.array([RIGHT]))
    walk.move(np.array([RIGHT]))  # into PAD
    assert walk.positions(0).tolist() == [0, 2] and walk.path_length[0] == 3
    assert walk.action_masks()[0].tolist() == [False, False, True, True, True]


def test_walking_out_and_back_erases_the_path() -> None:
    env = MazeEnv(size=9, action_mode="walk", expose_target=True)
    obs, _ = env.reset(seed=1)
    start = tuple(obs["position"])
    move, _ = neighbours(obs["grid"], start)[0]
    for _ in range(2):  # a room, then the passage, then the next room: always open
        obs, *_ = env.step(move)
    assert (obs["answer"] == MAZE_PATH).sum() == 2
    assert tuple(obs["position"]) == (start[0] + 2 * MOVES[move][0], start[1] + 2 * MOVES[move][1])
    for _ in range(2):
        obs, *_ = env.step((move + 2) % 4)
    assert tuple(obs["position"]) == start
    np.testing.assert_array_equal(obs["answer"], obs["grid"])
    assert env.unwrapped.core.walk.path_length[0] == 1


def test_going_round_a_loop_erases_it() -> None:
    # an open 3x3 room: right, down, left, up returns to the start by another way
    grid = np.full((5, 5), MAZE_WALL)
    grid[1:4, 1:4] = MAZE_OPEN
    grid[1, 1], grid[3, 3] = MAZE_START, MAZE_GOAL
    reference = ReferenceWalk(grid)
    walk = MazeWalk(1, (5, 5))
    walk.reset(np.array([0]), grid[None], np.zeros((1, 5, 5), np.int64))
    for move in (RIGHT, RIGHT, DOWN, LEFT, LEFT, UP):
        walk.move(np.array([move]))
        reference.move(move)
        np.testing.assert_array_equal(walk.drawn(grid[None])[0], reference.answer())
    assert walk.positions(0).tolist() == [1, 1] and walk.path_length[0] == 1
    np.testing.assert_array_equal(walk.drawn(grid[None])[0], grid)


def test_shortest_walk_solves_and_ends_at_the_goal() -> None:
    env = MazeEnv(size=9, action_mode="walk", expose_target=True)
    obs, info = env.reset(seed=4)
    moves = shortest_moves(obs["grid"])
    assert len(moves) == info["distance"]
    total = 0.0
    for i, move in enumerate(moves):
        obs, reward, terminated, truncated, info = env.step(move)
        total += reward
        assert terminated == (i == len(moves) - 1) and not truncated
    assert info["solved"] and info["cell_accuracy"] == 1.0
    assert tuple(obs["position"]) == find(obs["grid"], MAZE_GOAL)
    np.testing.assert_array_equal(obs["answer"], info["target"])
    first = MazeEnv(size=9, action_mode="walk").reset(seed=4)[1]["cell_accuracy"]
    assert total == pytest.approx(1.0 - first - 0.01 * len(moves) + 1.0)  # Δ sums, + bonus


def test_a_loop_erased_back_to_the_shortest_path_still_solves() -> None:
    env = MazeEnv(size=11, action_mode="walk", expose_target=True)
    obs, info = env.reset(seed=2)
    moves = shortest_moves(obs["grid"])
    # step into a side branch of the start (or of the first cell) and back, then go
    start = find(obs["grid"], MAZE_START)
    side = [m for m, _ in neighbours(obs["grid"], start) if m != moves[0]]
    detour = [side[0], (side[0] + 2) % 4] if side else [moves[0], (moves[0] + 2) % 4]
    for move in detour + moves:
        obs, reward, terminated, _, info = env.step(move)
    assert terminated and info["solved"] and info["steps"] == len(detour) + len(moves)
    assert reward > 0.5  # the solve bonus


def test_a_detour_reaching_the_goal_ends_unsolved() -> None:
    for seed in range(40):
        env = MazeEnv(size=9, braid=1.0, action_mode="walk", expose_target=True)
        obs, info = env.reset(seed=seed)
        moves = detour_moves(obs["grid"], info["distance"])
        if moves is not None:
            break
    else:
        pytest.fail("no braided maze with a detour in 40 seeds")
    for i, move in enumerate(moves):
        obs, reward, terminated, truncated, info = env.step(move)
        assert terminated == (i == len(moves) - 1)
    assert tuple(obs["position"]) == find(obs["grid"], MAZE_GOAL)
    assert not info["solved"] and reward < 0.5  # no solve bonus
    assert env.core.walk.path_length[0] - 1 == len(moves) > info["distance"]


def test_halting_ends_unsolved_and_the_limit_truncates() -> None:
    env = MazeEnv(size=7, action_mode="walk")
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step(HALT)
    assert terminated and not truncated and not info["solved"]
    assert reward == pytest.approx(-0.01)
    env = MazeEnv(size=7, action_mode="walk", max_steps=3)
    obs, _ = env.reset(seed=0)
    blocked = next(
        m for m in range(4) if not walkable(obs["grid"], tuple(obs["position"] + MOVES[m]))
    )
    flags = [env.step(blocked)[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]


def test_sparse_walk_pays_only_the_bonus_minus_step_cost() -> None:
    plans, rewards = {}, {}
    for reward in ("dense", "sparse"):
        env = MazeEnv(size=9, action_mode="walk", reward=reward)
        obs, _ = env.reset(seed=5)
        here, moves = tuple(obs["position"]), shortest_moves(obs["grid"])
        bumps = [m for m in range(4) if not walkable(obs["grid"], tuple(np.add(here, MOVES[m])))]
        side = [m for m, _ in neighbours(obs["grid"], here) if m != moves[0]]
        excursion = [side[0], (side[0] + 2) % 4] if side else []
        plans[reward] = bumps + excursion + moves
        rewards[reward] = [env.step(move)[1] for move in plans[reward]]
    assert env.core.solved[0]
    np.testing.assert_allclose(rewards["sparse"][:-1], -0.01)
    assert rewards["sparse"][-1] == pytest.approx(1.0 - 0.01)
    assert any(abs(r + 0.01) > 1e-6 for r in rewards["dense"])  # dense pays progress on the way


def test_default_walk_limit_lets_a_perfect_agent_finish_and_explore() -> None:
    for size in (5, 7, 9, 15):
        source = MazeSource(size=size)
        assert source.longest_distance() == 2 * (((size - 1) // 2) ** 2 - 1)
        env = MazeEnv(size=size, action_mode="walk")
        assert env.max_steps == walk_step_limit(source.longest_distance())
        assert env.max_steps == 4 * (source.longest_distance() + 1)
    env = MazeVectorEnv(64, size=9, action_mode="walk")
    _, info = env.reset(seed=0)
    assert env.max_episode_steps == 4 * (2 * 15 + 1)
    assert np.all(info["distance"] <= 2 * 15)  # the bound holds on real draws


def test_walk_masks_are_exactly_the_moves_that_move() -> None:
    env = MazeEnv(size=9, braid=0.5, action_mode="walk")
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(60):
        mask = env.action_masks()
        assert mask.shape == (5,) and mask.dtype == bool and mask[HALT]
        here = tuple(obs["position"])
        for move in range(4):
            assert mask[move] == walkable(obs["grid"], tuple(np.add(here, MOVES[move])))
        obs, _, terminated, truncated, _ = env.step(int(rng.choice(np.flatnonzero(mask[:4]))))
        if terminated or truncated:
            obs, _ = env.reset()


# -------------------------------------------------------------------------------- the vector env
def test_vector_env_matches_the_single_env_on_the_same_seed() -> None:
    single = MazeEnv(size=9, braid=0.3, action_mode="walk")
    vector = MazeVectorEnv(1, size=9, braid=0.3, action_mode="walk")
    obs_s, _ = single.reset(seed=7)
    obs_v, _ = vector.reset(seed=7)
    rng = np.random.default_rng(1)
    for _ in range(80):
        for key in obs_s:
            np.testing.assert_array_equal(obs_v[key][0], obs_s[key])
        np.testing.assert_array_equal(vector.action_masks()[0], single.action_masks())
        action = int(rng.integers(0, 4)) if rng.random() > 0.02 else HALT
        obs_s, r_s, term_s, trunc_s, info_s = single.step(action)
        obs_v, r_v, term_v, trunc_v, info_v = vector.step(np.array([action]))
        assert (r_v[0], term_v[0], trunc_v[0]) == (pytest.approx(r_s), term_s, trunc_s)
        assert info_v["solved"][0] == info_s["solved"]
        if term_s or trunc_s:
            obs_s, _ = single.reset()
            obs_v, *_ = vector.step(np.array([HALT]))  # next-step autoreset ignores the action


def test_vector_rows_follow_the_reference_walk() -> None:
    batch = 16
    env = MazeVectorEnv(batch, size=9, braid=0.5, action_mode="walk", max_episode_steps=10_000)
    obs, _ = env.reset(seed=0)
    references = [ReferenceWalk(obs["grid"][row]) for row in range(batch)]
    rng = np.random.default_rng(0)
    compared = 0
    for _ in range(150):
        actions = rng.integers(0, 4, size=batch)  # no halts: a row ends only at its goal
        obs, _, terminated, _, _ = env.step(actions)
        for row in range(batch):
            references[row].move(int(actions[row]))
            np.testing.assert_array_equal(obs["answer"][row], references[row].answer())
            assert tuple(obs["position"][row]) == references[row].path[-1]
            assert env.core.walk.path_length[row] == len(references[row].path)
            compared += 1
        assert np.array_equal(
            terminated, [ref.path[-1] == find(ref.grid, MAZE_GOAL) for ref in references]
        )
        if terminated.any():  # start afresh rather than follow the next-step autoreset
            obs, _ = env.reset(seed=int(rng.integers(1 << 30)))
            references = [ReferenceWalk(obs["grid"][row]) for row in range(batch)]
    assert compared == 150 * batch


def test_per_row_size_and_min_distance_options_walk_and_solve() -> None:
    env = MazeVectorEnv(6, size=11, action_mode="walk", expose_target=True)
    env.set_options({"size": 5, "min_distance": 2}, rows=[0, 1])
    env.set_options({"size": 7}, rows=[2])
    obs, info = env.reset(seed=0)
    assert np.all(obs["grid"][:2, 5:, :] == MAZE_WALL) and np.all(
        obs["grid"][2, 7:, :] == MAZE_WALL
    )
    assert np.all(obs["position"][:2] < 5) and np.all(obs["position"][2] < 7)
    plans = [shortest_moves(obs["grid"][row]) for row in range(6)]
    done = np.zeros(6, dtype=bool)
    solved = np.zeros(6, dtype=bool)
    for t in range(max(map(len, plans))):
        actions = np.array([plan[t] if t < len(plan) else HALT for plan in plans])
        actions[done] = HALT
        _, _, terminated, _, info = env.step(actions)
        fresh = terminated & ~done
        solved[fresh] = info["solved"][fresh]
        done |= terminated
    assert done.all() and solved.all()


def test_walk_on_a_larger_canvas_solves_and_stays_on_the_maze() -> None:
    env = MazeEnv(size=7, canvas=(9, 11), action_mode="walk", expose_target=True)
    assert env.observation_space["position"] == gym.spaces.MultiDiscrete([9, 11])
    obs, info = env.reset(seed=0)
    assert np.all(obs["grid"][7:] == 0) and np.all(obs["grid"][:, 7:] == 0)  # PAD around
    for move in shortest_moves(obs["grid"]):
        obs, _, terminated, _, info = env.step(move)
        assert np.all(obs["position"] < 7)
    assert terminated and info["solved"]


def test_same_step_autoreset_keeps_the_final_walk() -> None:
    env = MazeVectorEnv(2, size=7, action_mode="walk", autoreset_mode="same_step")
    obs, _ = env.reset(seed=0)
    plan = shortest_moves(obs["grid"][0])
    here = tuple(obs["position"][1])
    bump = next(m for m in range(4) if not walkable(obs["grid"][1], tuple(np.add(here, MOVES[m]))))
    for i, move in enumerate(plan):  # row 0 walks to its goal; row 1 bumps a wall, then halts
        actions = np.array([move, HALT if i == len(plan) - 1 else bump])
        obs, reward, terminated, _, info = env.step(actions)
        assert terminated.tolist() == [i == len(plan) - 1] * 2
    assert terminated.tolist() == [True, True]
    final = info["final_obs"][0]
    assert tuple(final["position"]) == find(final["grid"], MAZE_GOAL)
    assert info["final_info"][0]["solved"] and not info["final_info"][1]["solved"]
    # the new puzzles start afresh: agents on their start cells, nothing drawn
    for row in range(2):
        assert tuple(obs["position"][row]) == find(obs["grid"][row], MAZE_START)
        np.testing.assert_array_equal(obs["answer"][row], obs["grid"][row])
