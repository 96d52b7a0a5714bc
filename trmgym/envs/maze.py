"""Maze puzzles: draw the shortest path from start to goal (``trmgym/Maze-v0``).

Mazes are carved on a ``size x size`` grid (outer wall included) whose *rooms* sit at odd
coordinates and whose *passages* are the wall cells between two rooms. The generator is the
randomized depth-first search ("recursive backtracker"), run for a whole batch of mazes at once
with numpy: every maze keeps its own stack, and one iteration pushes or pops on all of them. It
yields *perfect* mazes (the open cells form a tree: exactly one path between any two cells);
``braid > 0`` then opens a wall at that fraction of dead ends so that loops, and several shortest
paths, appear. Start and goal are rooms at breadth-first-search distance ``>= min_distance``; the
target is the grid with :data:`~trmgym.envs.tokens.MAZE_PATH` on the cells strictly between them
along one shortest path. Any shortest path is accepted as a solution (:meth:`MazeSource.is_solved`).

Distances count grid steps, so two neighbouring rooms are at distance 2 and a path of distance
``d`` has ``d - 1`` cells between start and goal.

The ``size`` reset option draws smaller mazes inside the env's fixed grid: an ``s x s`` maze sits
in the top-left corner and every cell outside it is a wall, so a curriculum can ramp maze size
without changing the observation shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trmgym.envs.base import PuzzleEnv
from trmgym.envs.source import PuzzleBatch, PuzzleSource
from trmgym.envs.tokens import MAZE_GOAL, MAZE_OPEN, MAZE_PATH, MAZE_START, MAZE_WALL, VOCAB_SIZE
from trmgym.envs.vector import PuzzleVectorEnv

# up, down, left, right
_STEPS = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]], dtype=np.int64)
# Rejection rounds before giving up on a batch whose rows keep missing ``min_distance``.
_MAX_ROUNDS = 64


def max_min_distance(size: int, braid: float = 0.0) -> int:
    """The largest supported ``min_distance`` for mazes of ``size`` (and ``braid``).

    Every maze, braided or not, has its opposite corner rooms at least their Manhattan distance
    ``2 * (size - 3)`` apart, so that much is always reachable. Perfect mazes (``braid == 0``)
    have far longer paths: the bound ``0.85 * (rooms - 1 + size)`` (at most ``2 * (rooms - 1)``,
    a path through every room) is met by most generated mazes of every size, so rejection
    sampling stays fast. Braiding adds shortcuts that make long detours rare, so braided mazes
    keep the corner-to-corner bound.
    """
    corners = 2 * (size - 3)
    if braid > 0:
        return corners
    rooms = ((size - 1) // 2) ** 2
    return max(corners, min(2 * (rooms - 1), int(0.85 * (rooms - 1 + size))))


def _check_size(size: Any) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise TypeError(f"size must be an odd int >= 5, got {size!r}")
    if size < 5 or size % 2 == 0:
        raise ValueError(f"size must be an odd int >= 5 (5, 7, 9, ...), got {size}")
    return int(size)


def _check_option_size(size: Any, env_size: int) -> int:
    """The ``size`` reset option: an odd int from 5 (the constructor's bound) to the env's size."""
    allowed = f"an odd int in 5..{env_size} (the env's size)"
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise TypeError(f"reset option size must be {allowed}, got {size!r}")
    if not 5 <= size <= env_size or size % 2 == 0:
        raise ValueError(f"reset option size must be {allowed}, got {size}")
    return int(size)


def _check_min_distance(min_distance: Any, size: int, braid: float, where: str = "") -> int:
    """``min_distance`` in ``1..max_min_distance(size, braid)``; ``where`` ends the message."""
    high = max_min_distance(size, braid)
    if isinstance(min_distance, bool) or not isinstance(min_distance, (int, np.integer)):
        raise TypeError(
            f"min_distance must be an int in 1..{high} for size={size}, braid={braid}{where}, "
            f"got {min_distance!r}"
        )
    if not 1 <= min_distance <= high:
        raise ValueError(
            f"min_distance must lie in 1..{high} for size={size}, braid={braid}{where}, "
            f"got {min_distance}"
        )
    return int(min_distance)


# ------------------------------------------------------------------------------------ generation
def generate_mazes(rng: np.random.Generator, n: int, size: int, braid: float = 0.0) -> np.ndarray:
    """Carve ``n`` mazes with a batched randomized depth-first search.

    Args:
        rng: source of all randomness.
        n: number of mazes.
        size: odd grid side ``>= 5`` (outer wall included).
        braid: probability that each dead end gets one extra wall opened (0 keeps mazes perfect).

    Returns:
        ``[n, size, size]`` int64 grids of :data:`MAZE_WALL` and :data:`MAZE_OPEN`.
    """
    side = (size - 1) // 2  # rooms per row
    rooms = side * side
    rows = np.arange(n)
    room_r, room_c = np.divmod(np.arange(rooms), side)
    # neighbour room of every room in each direction (-1 outside the maze)
    nr, nc = room_r[:, None] + _STEPS[:, 0], room_c[:, None] + _STEPS[:, 1]
    neighbour = np.where((nr >= 0) & (nr < side) & (nc >= 0) & (nc < side), nr * side + nc, -1)

    grid = np.full((n, size, size), MAZE_WALL, dtype=np.int64)
    grid[:, 1::2, 1::2] = MAZE_OPEN
    flat = grid.reshape(n, -1)
    visited = np.zeros((n, rooms + 1), dtype=bool)  # the extra column absorbs "-1" neighbours
    visited[:, rooms] = True
    stack = np.zeros((n, rooms), dtype=np.int64)
    stack[:, 0] = rng.integers(0, rooms, size=n)
    visited[rows, stack[:, 0]] = True
    depth = np.ones(n, dtype=np.int64)
    carved = np.zeros(n, dtype=np.int64)
    # Every maze pushes rooms-1 times and pops in between; stop once all rooms are carved.
    while carved.min() < rooms - 1:
        current = stack[rows, depth - 1]
        options = neighbour[current]  # [n, 4]
        free = ~visited[rows[:, None], options]
        scores = np.where(free, rng.random((n, 4)), -1.0)
        direction = scores.argmax(axis=1)
        push = free[rows, direction]
        who = rows[push]
        nxt = options[who, direction[push]]
        visited[who, nxt] = True
        stack[who, depth[who]] = nxt
        depth[push] += 1
        depth[~push] -= 1
        carved[push] += 1
        # the passage between two rooms is the mean of their grid coordinates
        cur = current[push]
        wall_r = room_r[cur] + room_r[nxt] + 1
        wall_c = room_c[cur] + room_c[nxt] + 1
        flat[who, wall_r * size + wall_c] = MAZE_OPEN
    if braid > 0:
        _braid(rng, grid, braid)
    return grid


def _braid(rng: np.random.Generator, grid: np.ndarray, braid: float) -> None:
    """Open one random closed inner wall at each dead end with probability ``braid`` (in place)."""
    n, size, _ = grid.shape
    side = (size - 1) // 2
    # passages and walls around each room, in _STEPS order, cropped to the rooms
    around = np.stack(
        [
            grid[:, 0:-2:2, 1::2],  # up
            grid[:, 2::2, 1::2],  # down
            grid[:, 1::2, 0:-2:2],  # left
            grid[:, 1::2, 2::2],  # right
        ],
        axis=-1,
    )
    open_count = (around == MAZE_OPEN).sum(axis=-1)
    r = np.arange(side)
    inside = np.stack(
        [
            np.broadcast_to((r > 0)[:, None], (side, side)),
            np.broadcast_to((r < side - 1)[:, None], (side, side)),
            np.broadcast_to((r > 0)[None, :], (side, side)),
            np.broadcast_to((r < side - 1)[None, :], (side, side)),
        ],
        axis=-1,
    )
    closed = (around == MAZE_WALL) & inside
    chosen = (open_count == 1) & (rng.random((n, side, side)) < braid) & closed.any(axis=-1)
    scores = np.where(closed, rng.random(closed.shape), -1.0)
    direction = scores.argmax(axis=-1)
    b, i, j = np.nonzero(chosen)
    d = direction[b, i, j]
    grid[b, 2 * i + 1 + _STEPS[d, 0], 2 * j + 1 + _STEPS[d, 1]] = MAZE_OPEN


def room_distances(grid: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Breadth-first-search distances between the rooms of a batch of mazes.

    Moves go from room to neighbouring room through an open passage (any non-wall token), so
    the search runs on the ``side x side`` room graph instead of the full grid, with the batch
    on the last axis where the neighbour shifts are contiguous copies.

    Args:
        grid: ``[n, size, size]`` maze tokens.
        source: ``[n, side, side]`` bool, the rooms at distance 0.

    Returns:
        ``[n, side, side]`` int64 distances in grid steps (twice the room steps), ``-1`` where
        unreachable.
    """
    right = np.ascontiguousarray(np.moveaxis(grid[:, 1::2, 2:-1:2] != MAZE_WALL, 0, -1))
    down = np.ascontiguousarray(np.moveaxis(grid[:, 2:-1:2, 1::2] != MAZE_WALL, 0, -1))
    origin = np.moveaxis(source, 0, -1)
    frontier = origin.copy()  # a fresh array: the loop writes into it
    unvisited = ~origin
    levels = np.zeros(frontier.shape, dtype=np.int32)
    grown = np.empty_like(frontier)
    while True:
        grown[...] = False
        grown[:, 1:] |= frontier[:, :-1] & right
        grown[:, :-1] |= frontier[:, 1:] & right
        grown[1:] |= frontier[:-1] & down
        grown[:-1] |= frontier[1:] & down
        np.logical_and(grown, unvisited, out=frontier)
        if not frontier.any():
            break
        unvisited ^= frontier
        levels += unvisited  # a room reached at level k was unvisited for k - 1 rounds
    dist = 2 * (levels.astype(np.int64) + 1)
    dist[unvisited] = -1
    dist[origin] = 0
    return np.moveaxis(dist, -1, 0)


def _pick(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """Flat index of one uniformly chosen True cell of each ``[n, H, W]`` mask row."""
    scores = np.where(mask, rng.random(mask.shape), -1.0)
    return scores.reshape(len(mask), -1).argmax(axis=1)


def _one_hot(flat_index: np.ndarray, side: int) -> np.ndarray:
    out = np.zeros((len(flat_index), side * side), dtype=bool)
    out[np.arange(len(flat_index)), flat_index] = True
    return out.reshape(len(flat_index), side, side)


def _place_endpoints(
    rng: np.random.Generator, grid: np.ndarray, min_distance: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Choose start and goal rooms at distance ``>= min_distance`` where the maze allows it.

    Returns ``(start, goal, dist_from_start, ok)``: flat room indices, ``[n, side, side]``
    distances and which rows found a pair. A random start that has no room far enough is
    replaced by the room farthest from it (an end of a longest path when the maze is a tree),
    and if that fails too by a random corner room, whose opposite corner is at least
    ``2 * (size - 3)`` away in any maze.
    """
    n, size, _ = grid.shape
    side = (size - 1) // 2
    start = rng.integers(0, side * side, size=n)
    dist = room_distances(grid, _one_hot(start, side))
    far = dist >= min_distance
    corner = np.zeros((side, side), dtype=bool)
    corner[[0, 0, -1, -1], [0, -1, 0, -1]] = True
    for fallback in ("farthest", "corner"):
        retry = np.flatnonzero(~far.any(axis=(1, 2)))
        if retry.size == 0:
            break
        if fallback == "farthest":
            reach = dist[retry]
            candidates = reach == reach.max(axis=(1, 2), keepdims=True)
        else:
            candidates = np.broadcast_to(corner, (retry.size, side, side))
        start[retry] = _pick(rng, candidates)
        dist[retry] = room_distances(grid[retry], _one_hot(start[retry], side))
        far[retry] = dist[retry] >= min_distance
    ok = far.any(axis=(1, 2))
    goal = _pick(rng, far)
    return start, goal, dist, ok


def _room_cells(size: int) -> np.ndarray:
    """Flat grid index of every room, in room order."""
    side = (size - 1) // 2
    room_r, room_c = np.divmod(np.arange(side * side), side)
    return (2 * room_r + 1) * size + 2 * room_c + 1


def _trace_path(
    rng: np.random.Generator,
    grid: np.ndarray,
    dist: np.ndarray,
    start: np.ndarray,
    goal: np.ndarray,
) -> np.ndarray:
    """Mark one shortest path (cells strictly between start and goal), walking back from goal.

    Each step moves to a neighbouring room one room step closer to the start through an open
    passage, choosing at random among ties (braided mazes).
    """
    n, size, _ = grid.shape
    rows = np.arange(n)
    cells = _room_cells(size)
    flat_grid = grid.reshape(n, -1)
    flat_dist = np.full((n, size * size), -1, dtype=np.int64)
    flat_dist[:, cells] = dist.reshape(n, -1)
    path = np.zeros((n, size * size), dtype=bool)
    offsets = _STEPS[:, 0] * size + _STEPS[:, 1]
    here = cells[goal]
    remaining = flat_dist[rows, here]
    while (remaining > 0).any():
        active = rows[remaining > 0]
        passage = here[active, None] + offsets  # [k, 4]; rooms never touch the border
        # a border room's outward passage is the outer wall, so clipping its target is harmless
        nxt = np.clip(here[active, None] + 2 * offsets, 0, size * size - 1)
        closer = (flat_grid[active[:, None], passage] != MAZE_WALL) & (
            flat_dist[active[:, None], nxt] == remaining[active, None] - 2
        )
        scores = np.where(closer, rng.random(closer.shape), -1.0)
        direction = scores.argmax(axis=1)
        pick = np.arange(active.size)
        here[active] = nxt[pick, direction]
        path[active, passage[pick, direction]] = True
        path[active, here[active]] = True
        remaining[active] -= 2
    path[rows, cells[start]] = False
    return path.reshape(n, size, size)


def _wall_around(grids: np.ndarray, size: int) -> np.ndarray:
    """``[n, s, s]`` grids in the top-left corner of ``[n, size, size]`` walls."""
    out = np.full((len(grids), size, size), MAZE_WALL, dtype=grids.dtype)
    s = grids.shape[-1]
    out[:, :s, :s] = grids
    return out


# ---------------------------------------------------------------------------------------- source
class MazeSource(PuzzleSource):
    """Perfect (or braided) mazes with start and goal at least ``min_distance`` apart.

    Args:
        size: odd grid side ``>= 5`` including the outer wall; a maze has
            ``((size - 1) // 2) ** 2`` rooms.
        min_distance: smallest BFS distance (grid steps) between start and goal — the difficulty;
            ``1..max_min_distance(size, braid)`` (default ``size``, or the bound if lower).
        braid: fraction ``0..1`` of dead ends that get an extra opening, creating loops and
            several shortest paths (``0``: perfect mazes).

    Reset options (``reset(options=...)`` or per row ``PuzzleVectorEnv.set_options``):

    - ``size``: odd int in ``5..size`` — draw ``size x size`` mazes (same generator and braid)
      in the top-left corner of the grid, every cell outside them a wall. The grid shape stays
      the constructor's. Without it (or with the constructor's size) draws are unchanged.
    - ``min_distance``: ``1..max_min_distance(s, braid)`` for the drawn size ``s`` — the
      difficulty of this reset. Without it the constructor's ``min_distance`` is used, capped at
      ``max_min_distance(s, braid)`` so that a smaller ``size`` option alone is always valid.
    """

    num_tasks = 1
    option_keys = ("min_distance", "size")
    name = "maze"
    action_modes = ("grid", "edit", "walk")

    def __init__(self, size: int = 15, min_distance: int | None = None, braid: float = 0.0) -> None:
        self.size = _check_size(size)
        self.shape = (self.size, self.size)
        if isinstance(braid, bool) or not isinstance(braid, (int, float, np.floating, np.integer)):
            raise TypeError(f"braid must be a float in [0, 1], got {braid!r}")
        if not 0.0 <= float(braid) <= 1.0:
            raise ValueError(f"braid must lie in [0, 1], got {braid}")
        self.braid = float(braid)
        if min_distance is None:
            min_distance = min(self.size, max_min_distance(self.size, self.braid))
        self.min_distance = _check_min_distance(min_distance, self.size, self.braid)

    def check_options(self, options: dict[str, Any] | None) -> dict[str, Any]:
        """Reject unknown keys and bad ``size`` or ``min_distance`` values.

        ``size`` must be an odd int in ``5..self.size``; ``min_distance`` must lie in
        ``1..max_min_distance(s, braid)`` for the drawn size ``s`` (the option's when given), so
        both keys of one options dict are checked together.
        """
        options = super().check_options(options)
        size, where = self.size, ""
        if "size" in options:
            size = options["size"] = _check_option_size(options["size"], self.size)
            where = f" (reset option size={size}; the env's size is {self.size})"
        if "min_distance" in options:
            options["min_distance"] = _check_min_distance(
                options["min_distance"], size, self.braid, where
            )
        return options

    def sample(
        self, rng: np.random.Generator, n: int, options: dict[str, Any] | None = None
    ) -> PuzzleBatch:
        """Draw ``n`` mazes; ``extra["distance"]`` holds each start-goal shortest distance."""
        options = self.check_options(options)
        size = options.get("size", self.size)
        min_distance = options.get(
            "min_distance", min(self.min_distance, max_min_distance(size, self.braid))
        )
        grid, target, distance = self._draw(rng, n, size, min_distance)
        if size < self.size:
            grid, target = _wall_around(grid, self.size), _wall_around(target, self.size)
        return PuzzleBatch(
            grid=grid,
            target=target,
            task_id=np.zeros(n, dtype=np.int64),
            extra={"distance": distance},
        )

    def _draw(
        self, rng: np.random.Generator, n: int, size: int, min_distance: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(grid, target, distance)`` of ``n`` mazes of side ``size`` (rejection sampling)."""
        grid = np.empty((n, size, size), dtype=np.int64)
        start = np.empty(n, dtype=np.int64)
        goal = np.empty(n, dtype=np.int64)
        side = (size - 1) // 2
        dist = np.empty((n, side, side), dtype=np.int64)
        todo = np.arange(n)
        for _ in range(_MAX_ROUNDS):
            mazes = generate_mazes(rng, todo.size, size, self.braid)
            s, g, d, ok = _place_endpoints(rng, mazes, min_distance)
            done = todo[ok]
            grid[done], start[done], goal[done], dist[done] = mazes[ok], s[ok], g[ok], d[ok]
            todo = todo[~ok]
            if todo.size == 0:
                break
        else:
            raise RuntimeError(
                f"could not place start and goal at distance >= {min_distance} in "
                f"{_MAX_ROUNDS} tries (size={size}, braid={self.braid}); lower min_distance"
            )
        rows = np.arange(n)
        path = _trace_path(rng, grid, dist, start, goal)
        cells = _room_cells(size)
        flat = grid.reshape(n, -1)
        flat[rows, cells[start]] = MAZE_START
        flat[rows, cells[goal]] = MAZE_GOAL
        target = np.where(path, MAZE_PATH, grid)
        distance = dist.reshape(n, -1)[rows, goal]
        return grid, target, distance

    def longest_distance(self) -> int:
        """``2 * (rooms - 1)``: no start-goal distance (grid steps) of a maze of this size (or a
        smaller ``size`` option) exceeds it, since a shortest path visits each room at most once."""
        return 2 * (((self.size - 1) // 2) ** 2 - 1)

    def max_cells_to_write(self) -> int:
        """``longest_distance() - 1``: the path cells strictly between start and goal."""
        return self.longest_distance() - 1

    def edit_tokens(self, grid: np.ndarray, target: np.ndarray) -> np.ndarray:
        """``MAZE_OPEN`` and ``MAZE_PATH`` on the open cells; nothing on walls, start or goal.

        Returns:
            ``[n, H, W, VOCAB_SIZE]`` bool (from ``grid`` alone).
        """
        tokens = np.zeros((*np.shape(grid), VOCAB_SIZE), dtype=bool)
        open_cells = np.asarray(grid) == MAZE_OPEN
        tokens[..., MAZE_OPEN] = open_cells
        tokens[..., MAZE_PATH] = open_cells
        return tokens

    def holdout_grids(self, grid: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, ...]:
        """The maze alone: its target is one of possibly several shortest paths."""
        return (grid,)

    def is_solved(self, answer: np.ndarray, target: np.ndarray, grid: np.ndarray) -> np.ndarray:
        """Whether each answer marks *a* shortest path from start to goal.

        The answer must equal the grid except for :data:`MAZE_PATH` on open cells, and the path
        cells plus start and goal must form a simple 4-connected path of the shortest length:
        exactly ``distance - 1`` path cells, start and goal with one path neighbour, every path
        cell with two. Those degrees leave only a start-goal path plus disjoint loops, and the
        count leaves no cells for loops once the path is at least the shortest distance long.
        """
        answer, target, grid = np.asarray(answer), np.asarray(target), np.asarray(grid)
        path = answer == MAZE_PATH
        kept = (answer == grid) | (path & (grid == MAZE_OPEN))
        ends = (grid == MAZE_START) | (grid == MAZE_GOAL)
        chain = path | ends
        padded = np.pad(chain, ((0, 0), (1, 1), (1, 1)))
        degree = (
            padded[:, :-2, 1:-1].astype(np.int8)
            + padded[:, 2:, 1:-1]
            + padded[:, 1:-1, :-2]
            + padded[:, 1:-1, 2:]
        )
        degree_ok = np.where(ends, degree == 1, np.where(path, degree == 2, True))
        shortest_cells = (target == MAZE_PATH).sum(axis=(1, 2))
        return (
            kept.all(axis=(1, 2))
            & degree_ok.all(axis=(1, 2))
            & (path.sum(axis=(1, 2)) == shortest_cells)
            & (ends.sum(axis=(1, 2)) == 2)
        )

    def __repr__(self) -> str:
        return f"MazeSource(size={self.size}, min_distance={self.min_distance}, braid={self.braid})"


# ------------------------------------------------------------------------------------------ envs
class MazeEnv(PuzzleEnv):
    """Find the shortest path through a maze (``trmgym/Maze-v0``).

    ## Description
    A ``size x size`` maze of walls and open cells with a start and a goal. The agent must mark
    a shortest start-goal path with ``MAZE_PATH`` tokens, leaving every other cell as it is. Any
    shortest path counts as solved (braided mazes may have several); cell accuracy is measured
    against the one stored in the target. Mazes come from a batched randomized depth-first search
    (perfect mazes), optionally braided; start and goal sit at BFS distance ``>= min_distance``.

    ## Action Space
    ``action_mode="grid"``: ``Dict(answer=Box(0, V-1, (H, W), int64), halt=Discrete(2))``;
    ``action_mode="edit"``: ``Discrete(H*W*V + 1)`` (write token ``a % V`` into cell ``a // V``;
    the last action halts). ``V`` is :data:`trmgym.envs.tokens.VOCAB_SIZE`.
    ``action_mode="walk"``: ``Discrete(5)``, ``0`` up, ``1`` right, ``2`` down, ``3`` left,
    ``4`` halt (:mod:`trmgym.envs.walk`). The agent starts on the start cell; a move into a wall
    or off the grid leaves it in place (the step counts). The answer shows the loop erasure of
    the walk (stepping back onto the drawn path erases the loop) as ``MAZE_PATH`` cells.
    Reaching the goal or halting ends the episode; it is solved when the agent is on the goal
    and the drawn path is a shortest one. :meth:`action_masks` masks moves into walls.

    ## Observation Space
    ``Dict(grid, answer, task_id)``: ``grid`` holds ``MAZE_WALL``, ``MAZE_OPEN``, ``MAZE_START``
    and ``MAZE_GOAL`` tokens (PAD outside the maze on a larger ``canvas``); ``answer`` is the
    current draft; ``task_id`` is always 0. Walk mode adds ``position``
    (``MultiDiscrete([H, W])``): the agent's ``(row, col)``.

    ## Rewards
    ``reward="dense"``: ``Δ cell_accuracy − step_cost`` each step, ``+ solve_bonus`` when the
    episode ends solved (halting on a shortest path; in walk mode, reaching the goal along one).
    ``reward="sparse"``: ``−step_cost`` each step, ``+ solve_bonus`` likewise.
    ``info["distance"]`` is the start-goal shortest distance (grid steps).

    ## Step limits
    Default ``max_steps``: 16 in grid mode; ``longest_distance()`` (``2 * (rooms - 1)``) in edit
    mode (every path cell, then halt); ``4 * (longest_distance() + 1)`` in walk mode (e.g. 68
    for ``size=7``, 388 for ``size=15``): a perfect walk needs at most ``longest_distance()``
    moves, the rest leaves room to explore.

    ## Arguments
    - ``size`` (int, odd, ``>= 5``, default 15): grid side including the outer wall.
    - ``min_distance`` (int, ``1..max_min_distance(size, braid)``, default ``size`` or the bound
      if lower): difficulty.
    - ``braid`` (float in ``[0, 1]``, default 0): fraction of dead ends opened.
    - ``holdout`` (``None`` | ``"train"`` | ``"test"``, default ``None``): only mazes of that
      held-out split, hashed from the maze grid (:mod:`trmgym.envs.holdout`).
    - ``canvas``, ``action_mode`` (``"grid"`` | ``"edit"`` | ``"walk"``), ``expose_target``,
      ``step_cost``, ``solve_bonus``, ``reward``, ``max_steps``, ``render_mode``: see
      :class:`~trmgym.envs.base.PuzzleEnv`.

    ## Reset Options
    ``reset(options=...)``, or per row of the vector env ``set_options(options, rows)``:

    - ``size`` (odd int in ``5..size``): draw ``size x size`` mazes in the top-left corner of the
      fixed grid; every cell outside them is a wall (never walkable, never on the path).
    - ``min_distance`` (int, ``1..max_min_distance(s, braid)`` for the drawn size ``s``): the
      difficulty of this reset. Without it, the constructor's ``min_distance`` capped at that
      bound.

    ## Version History
    - v0: initial version.
    """

    source_cls = MazeSource


class MazeVectorEnv(PuzzleVectorEnv):
    """``num_envs`` mazes stepped together with numpy (see :class:`MazeEnv`)."""

    source_cls = MazeSource
