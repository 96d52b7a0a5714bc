"""A tiny puzzle family for testing the env machinery without a real generator."""

from __future__ import annotations

from typing import Any

import numpy as np

from trmgym.envs.base import PuzzleEnv
from trmgym.envs.source import PuzzleBatch, PuzzleSource
from trmgym.envs.tokens import COLOR_OFFSET, PAD
from trmgym.envs.vector import PuzzleVectorEnv


class ToySource(PuzzleSource):
    """Recolour task on a 3x4 grid: the target is the input with every colour shifted by one.

    ``task_id`` picks the shift (1 or 2); the last column is PAD so canvas logic is exercised.
    """

    name = "toy"
    option_keys = ("task_id",)

    def __init__(self, height: int = 3, width: int = 4, num_tasks: int = 2) -> None:
        self.shape = (height, width)
        self.num_tasks = num_tasks

    def sample(
        self, rng: np.random.Generator, n: int, options: dict[str, Any] | None = None
    ) -> PuzzleBatch:
        options = options or {}
        h, w = self.shape
        colours = rng.integers(0, 8, size=(n, h, w))
        task = (
            np.full(n, options["task_id"])
            if "task_id" in options
            else rng.integers(0, self.num_tasks, n)
        )
        grid = colours + COLOR_OFFSET
        target = (colours + 1 + task[:, None, None]) % 10 + COLOR_OFFSET
        grid[:, :, -1] = PAD
        target[:, :, -1] = PAD
        return PuzzleBatch(
            grid=grid,
            target=target,
            task_id=task.astype(np.int64),
            extra={"shift": (task + 1).tolist()},
        )


class ToyEnv(PuzzleEnv):
    source_cls = ToySource


class ToyVectorEnv(PuzzleVectorEnv):
    source_cls = ToySource


class LazySource(ToySource):
    """The toy family, but a share ``lazy`` of its draws has the target equal to the grid."""

    def __init__(self, lazy: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lazy = lazy

    def sample(
        self, rng: np.random.Generator, n: int, options: dict[str, Any] | None = None
    ) -> PuzzleBatch:
        batch = super().sample(rng, n, options)
        lazy = rng.random(n) < self.lazy
        return batch._replace(target=np.where(lazy[:, None, None], batch.grid, batch.target))


class LazyVectorEnv(PuzzleVectorEnv):
    source_cls = LazySource
