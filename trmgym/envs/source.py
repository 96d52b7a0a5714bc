"""Puzzle sources: the per-family generators behind every trmgym environment.

A :class:`PuzzleSource` knows how to draw a batch of puzzles (input grid, target grid, task id and,
for few-shot families, demonstration pairs) with an explicit ``np.random.Generator``. The
environments (:mod:`trmgym.envs.base`, :mod:`trmgym.envs.vector`) own everything else: the canvas,
actions, rewards, time limits and rendering. A source is cheap to pickle (it holds parameters and
caches, never open files).
"""

from __future__ import annotations

import abc
from typing import Any, NamedTuple

import numpy as np

from trmgym.envs.tokens import VOCAB_SIZE


class PuzzleBatch(NamedTuple):
    """A batch of ``n`` puzzles at the source's native shape ``(H, W)``.

    Attributes:
        grid: ``[n, H, W]`` int64 tokens — the puzzle as the agent sees it (PAD outside it).
        target: ``[n, H, W]`` int64 tokens — the exact answer (PAD outside it).
        task_id: ``[n]`` int64 — index of each puzzle's task within the source (``0`` when the
            source has a single task).
        demos: ``None``, or a length-``n`` list whose items are lists of ``(input, output)``
            token arrays at native shape — the task's demonstration pairs (ARC, ARCGen).
        extra: per-puzzle metadata for ``info`` (e.g. the augmentation applied), a dict of
            length-``n`` arrays or lists; may be empty.
    """

    grid: np.ndarray
    target: np.ndarray
    task_id: np.ndarray
    demos: list[list[tuple[np.ndarray, np.ndarray]]] | None = None
    extra: dict[str, Any] | None = None


class PuzzleSource(abc.ABC):
    """Draws puzzles of one family.

    Subclasses set :attr:`shape` (native ``(H, W)``), :attr:`num_tasks` and
    :attr:`option_keys`, and implement :meth:`sample`.
    """

    #: native grid shape ``(H, W)``; every grid/target of :meth:`sample` has exactly this shape.
    shape: tuple[int, int]
    #: number of distinct tasks; ``task_id`` lies in ``0..num_tasks-1``.
    num_tasks: int = 1
    #: keys accepted in ``reset(options=...)``, e.g. ``("blanks",)`` or ``("task_id",)``.
    option_keys: tuple[str, ...] = ()
    #: short human name used in ``repr`` and rendering titles.
    name: str = "puzzle"
    #: constructor arguments that put a task's training and evaluation puzzles on disjoint
    #: sides: ``(training kwargs, evaluation kwargs)``. The default is the shared content-hash
    #: split; a source whose draws are augmented copies of base puzzles overrides it with a split
    #: of the base puzzles, so no evaluation puzzle is a symmetry of a training one.
    held_out_kwargs: tuple[dict[str, Any], dict[str, Any]] = (
        {"holdout": "train"},
        {"holdout": "test"},
    )
    #: the ``action_mode`` values the family supports. Maze adds ``"walk"``, which needs maze
    #: tokens (:mod:`trmgym.envs.walk`) and a ``longest_distance()`` method for its step limit.
    action_modes: tuple[str, ...] = ("grid", "edit")

    @abc.abstractmethod
    def sample(
        self, rng: np.random.Generator, n: int, options: dict[str, Any] | None = None
    ) -> PuzzleBatch:
        """Draw ``n`` puzzles using only ``rng`` for randomness.

        Args:
            rng: the caller's generator (the env's ``np_random``).
            n: batch size, ``n >= 1``.
            options: validated ``reset`` options (keys among :attr:`option_keys`).
        """

    def is_solved(self, answer: np.ndarray, target: np.ndarray, grid: np.ndarray) -> np.ndarray:
        """Whether each ``[n, H, W]`` answer solves its puzzle (default: equals the target).

        Families with several correct answers (e.g. mazes with more than one shortest path)
        override this; it must stay vectorised over the batch.
        """
        return np.all(answer == target, axis=(1, 2))

    def max_cells_to_write(self) -> int:
        """An upper bound on the cells an edit-mode agent must write to solve any puzzle this
        source poses (under any reset option); the default edit-mode step limit is this plus one
        (for the halt). Default: every cell of the native grid."""
        return int(self.shape[0] * self.shape[1])

    def edit_tokens(self, grid: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Which tokens an edit may write into each cell: the edit-mode action mask.

        It must allow every write of the solution (the target's token on each cell where the
        draft starts different from it). Default: every token on every cell.

        Args:
            grid: ``[n, H, W]`` puzzles at the native shape.
            target: ``[n, H, W]`` their targets.

        Returns:
            ``[n, H, W, VOCAB_SIZE]`` bool.
        """
        return np.ones((*np.shape(grid), VOCAB_SIZE), dtype=bool)

    def holdout_grids(self, grid: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, ...]:
        """The contents whose hash puts each puzzle in a held-out split (default: both grids).

        Families whose stored target is one of several correct answers (mazes with more than one
        shortest path) hash the grid alone, so one puzzle never lands in both splits.
        """
        return grid, target

    def check_options(self, options: dict[str, Any] | None) -> dict[str, Any]:
        """Reject unknown ``reset`` option keys with a message listing the allowed ones."""
        if options is None:
            return {}
        if not isinstance(options, dict):
            raise TypeError(f"options must be a dict or None, got {type(options).__name__}")
        unknown = sorted(set(options) - set(self.option_keys))
        if unknown:
            raise ValueError(
                f"unknown reset option(s) {unknown} for {self.name}; "
                f"allowed keys: {list(self.option_keys)}"
            )
        return dict(options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, num_tasks={self.num_tasks})"
