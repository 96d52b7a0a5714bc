"""Walking a maze: ``action_mode="walk"``, batched over ``B`` mazes with numpy.

Instead of writing tokens, the agent moves one cell at a time from the start cell. The *drawn
path* is the loop erasure of the walk so far (Lawler's loop-erased random walk): stepping onto a
cell already on the path cuts the path back to that cell, so walking out and back erases what was
drawn. The answer grid is the maze with :data:`~trmgym.envs.tokens.MAZE_PATH` on every open cell
of the drawn path (the start and goal keep their tokens), so its cell accuracy against the target
path measures the drawn path.

Actions (``Discrete(5)``), clockwise from up: ``0`` up, ``1`` right, ``2`` down, ``3`` left,
``4`` halt. A move into a wall, PAD or off the grid leaves the agent in place; the step still
counts. A walk ends when the agent reaches the goal or halts; it is *solved* when the agent stands
on the goal and the drawn path is a shortest path (its length equals the start-goal distance).

Every step costs ``O(B * H * W)`` numpy work and no Python loop over rows: the loop erasure
clears the erased tail of every erasing row with one boolean mask over the path arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trmgym.envs.tokens import MAZE_GOAL, MAZE_OPEN, MAZE_PATH, MAZE_START

#: ``(row, column)`` offset of each move, in action order: up, right, down, left
MOVES = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]], dtype=np.int64)
#: the halting action of walk mode (``Discrete(5)``: 4 moves, then halt)
WALK_HALT = len(MOVES)
NUM_WALK_ACTIONS = WALK_HALT + 1
#: the default walk-mode step limit is this many times (longest shortest path + 1), so a perfect
#: agent always finishes and an exploring one has room to back-track
WALK_STEP_SLACK = 4

_WALKABLE = np.array([MAZE_OPEN, MAZE_START, MAZE_GOAL])


class MazeWalk:
    """The walk state of ``B`` mazes on an ``(H, W)`` canvas.

    Attributes:
        position: ``[B]`` flat cell index (``row * W + col``) of each agent.
        path: ``[B, H*W]`` flat cells of each drawn path, start first; entries past
            ``path_length`` are stale.
        path_length: ``[B]`` cells on each drawn path (the start included, so ``>= 1``).
        on_path: ``[B, H*W]`` index of each cell within its row's path, ``-1`` off the path.
    """

    def __init__(self, batch_size: int, canvas: tuple[int, int]) -> None:
        self.canvas = canvas
        cells = canvas[0] * canvas[1]
        self.position = np.zeros(batch_size, dtype=np.int64)
        self.goal = np.zeros(batch_size, dtype=np.int64)
        self.distance = np.ones(batch_size, dtype=np.int64)
        self.path = np.zeros((batch_size, cells), dtype=np.int64)
        self.path_length = np.ones(batch_size, dtype=np.int64)
        self.on_path = np.full((batch_size, cells), -1, dtype=np.int64)
        self.walkable = np.zeros((batch_size, cells), dtype=bool)

    def reset(self, index: np.ndarray, grid: np.ndarray, target: np.ndarray) -> None:
        """Put the agents of rows ``index`` on their start cells with an empty drawn path.

        Args:
            index: ``[k]`` rows to reset.
            grid: ``[k, H, W]`` maze tokens of those rows (one ``MAZE_START``, one ``MAZE_GOAL``).
            target: ``[k, H, W]`` their targets; the shortest distance is the number of
                ``MAZE_PATH`` cells plus one.
        """
        flat = grid.reshape(len(index), -1)
        start = np.argmax(flat == MAZE_START, axis=1)
        self.position[index] = start
        self.goal[index] = np.argmax(flat == MAZE_GOAL, axis=1)
        self.distance[index] = (target == MAZE_PATH).sum(axis=(1, 2)) + 1
        self.path[index, 0] = start
        self.path_length[index] = 1
        self.on_path[index] = -1
        self.on_path[index, start] = 0
        self.walkable[index] = np.isin(flat, _WALKABLE)

    def check_action(self, action: Any, batch_size: int) -> np.ndarray:
        """Validate batched walk actions; returns ``[B]`` int64 in ``0..4``.

        Raises:
            TypeError: not an int (or one int per env).
            ValueError: an int outside ``0..4``.
        """
        allowed = "0 up, 1 right, 2 down, 3 left, 4 halt"
        if isinstance(action, dict):
            raise TypeError(
                f"action_mode='walk' expects an int ({allowed}), got a dict "
                "(use action_mode='grid' for answer/halt dicts)"
            )
        action = np.asarray(action)
        if not np.issubdtype(action.dtype, np.integer) or action.shape not in (
            (batch_size,),
            (),
        ):
            raise TypeError(
                f"walk actions must be ints in 0..{WALK_HALT} ({allowed}), got {action!r}"
            )
        action = np.broadcast_to(action, (batch_size,)).astype(np.int64)
        if np.any((action < 0) | (action > WALK_HALT)):
            raise ValueError(
                f"walk action out of range: {action.tolist()}; allowed: 0..{WALK_HALT} ({allowed})"
            )
        return action

    def _targets(self) -> tuple[np.ndarray, np.ndarray]:
        """``([B, 4] flat cell each move leads to, [B, 4] whether that cell can be entered)``."""
        height, width = self.canvas
        row, col = np.divmod(self.position, width)
        new_row = row[:, None] + MOVES[:, 0]
        new_col = col[:, None] + MOVES[:, 1]
        inside = (new_row >= 0) & (new_row < height) & (new_col >= 0) & (new_col < width)
        cell = np.where(inside, new_row * width + new_col, 0)
        rows = np.arange(len(self.position))[:, None]
        return cell, inside & self.walkable[rows, cell]

    def move(self, action: np.ndarray) -> np.ndarray:
        """Apply checked ``[B]`` actions; returns ``[B]`` bool: the walk ended (goal or halt)."""
        moving = np.flatnonzero(action < WALK_HALT)
        cell, open_ = self._targets()
        moving = moving[open_[moving, action[moving]]]
        to = cell[moving, action[moving]]
        seen = self.on_path[moving, to]

        # stepping back onto the path erases the loop: clear every entry after the revisited one
        erase, back_to = moving[seen >= 0], seen[seen >= 0]
        if erase.size:
            steps = np.arange(self.path.shape[1])
            tail = (steps > back_to[:, None]) & (steps < self.path_length[erase, None])
            which, where = np.nonzero(tail)
            self.on_path[erase[which], self.path[erase[which], where]] = -1
            self.path_length[erase] = back_to + 1

        grow, new_cell = moving[seen < 0], to[seen < 0]
        self.path[grow, self.path_length[grow]] = new_cell
        self.on_path[grow, new_cell] = self.path_length[grow]
        self.path_length[grow] += 1

        self.position[moving] = to
        return (action == WALK_HALT) | self.at_goal()

    def at_goal(self) -> np.ndarray:
        """``[B]`` bool: the agent stands on the goal."""
        return self.position == self.goal

    def solved(self, index: np.ndarray) -> np.ndarray:
        """``[k]`` bool: at the goal along a shortest path (``path_length - 1 == distance``)."""
        return (self.position[index] == self.goal[index]) & (
            self.path_length[index] - 1 == self.distance[index]
        )

    def drawn(self, grid: np.ndarray) -> np.ndarray:
        """``[B, H, W]`` answers: ``grid`` with ``MAZE_PATH`` on the drawn path's open cells."""
        on = (self.on_path >= 0).reshape(grid.shape)
        return np.where(on & (grid == MAZE_OPEN), MAZE_PATH, grid)

    def positions(self, index: np.ndarray | int | slice) -> np.ndarray:
        """``(row, col)`` of the agents of ``index``: ``[2]`` for an int, else ``[k, 2]``."""
        row, col = np.divmod(self.position[index], self.canvas[1])
        return np.stack([row, col], axis=-1)

    def action_masks(self) -> np.ndarray:
        """``[B, 5]`` bool: the moves into an enterable cell, and halt (always valid)."""
        _, open_ = self._targets()
        return np.concatenate([open_, np.ones((len(open_), 1), dtype=bool)], axis=1)


def walk_step_limit(longest_distance: int) -> int:
    """The default walk-mode step limit: ``WALK_STEP_SLACK * (longest_distance + 1)``.

    ``longest_distance`` bounds the start-goal distance (grid steps) of every maze the env
    poses, so a perfect agent needs at most that many moves.
    """
    return WALK_STEP_SLACK * (int(longest_distance) + 1)
