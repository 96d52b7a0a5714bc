"""Drawing a core's puzzles from its source, redrawing the draws a puzzle must not be.

Every env draws through :func:`draw_puzzles`. A draw is redrawn (vectorised: only the rejected
rows, with bounded retries) when

- it is *solved at reset*: the draft answer starts as the puzzle's input, so a puzzle whose input
  already solves it would reward an agent that does nothing (the built-in sources never emit one;
  this guards every source, user-written ones included);
- it lies in the other held-out split (``holdout="train"`` or ``"test"``; see
  :mod:`trmgym.envs.holdout`).

Rows that are fine on the first draw are kept as drawn and no extra random numbers are used
when nothing is rejected, so seeded draws only change where a rejected puzzle would have been.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trmgym.envs.holdout import HOLDOUTS, split_of
from trmgym.envs.source import PuzzleBatch, PuzzleSource

#: redraw rounds before giving up; a row lands in the 20% "test" split with probability 0.2,
#: so 200 rounds fail by chance with probability 0.8 ** 200 < 1e-19
MAX_REDRAWS = 200


def draw_puzzles(
    source: PuzzleSource,
    rng: np.random.Generator,
    n: int,
    options: dict[str, Any],
    holdout: str | None = None,
) -> PuzzleBatch:
    """``n`` puzzles of ``source`` that are not solved at reset and lie in ``holdout``'s split.

    Args:
        source: the family.
        rng: the env's generator.
        n: number of puzzles (>= 1).
        options: checked reset options; a 1-D array of ``n`` values (one per puzzle) is cut to
            the rows being redrawn.
        holdout: ``None`` (any puzzle), ``"train"`` or ``"test"``.

    Raises:
        ValueError: rows still rejected after :data:`MAX_REDRAWS` redraws, naming ``holdout``
            when the split could not be filled.
    """
    batch = source.sample(rng, n, options)
    check_batch(source, batch, n)
    rejected = np.flatnonzero(_rejected(source, batch, holdout))
    if not rejected.size:
        return batch
    assembly = _Assembly(batch)
    for _ in range(MAX_REDRAWS):
        redraw = source.sample(rng, int(rejected.size), _options_for(options, rejected, n))
        check_batch(source, redraw, int(rejected.size))
        keep = ~_rejected(source, redraw, holdout)
        assembly.put(rejected[keep], redraw, np.flatnonzero(keep))
        rejected = rejected[~keep]
        if not rejected.size:
            return assembly.batch()
    if holdout is not None and not np.any(_solved_at_reset(source, redraw)[~keep]):
        raise ValueError(
            f"holdout={holdout!r}: could not draw {rejected.size} {source.name} puzzle(s) of the "
            f"{holdout!r} split in {MAX_REDRAWS} redraws (options={options}); the source has too "
            f"few distinct puzzles for it (e.g. a real ARC task with few pairs and no "
            f"augmentation): allowed holdout values are {[None, *HOLDOUTS]}, None uses every "
            "puzzle"
        )
    raise ValueError(
        f"{source!r} drew {rejected.size} puzzle(s) already solved at reset (the input equals "
        f"the answer) in {MAX_REDRAWS} redraws (options={options}); a puzzle's target must "
        "differ from its grid"
    )


def check_batch(source: PuzzleSource, batch: PuzzleBatch, n: int) -> None:
    """Fail clearly when a source returns grids of the wrong shape."""
    expected = (n, *source.shape)
    for name in ("grid", "target"):
        array = getattr(batch, name)
        if array.shape != expected:
            raise RuntimeError(
                f"{type(source).__name__}.sample returned {name} of shape "
                f"{array.shape}, expected {expected}"
            )


def _solved_at_reset(source: PuzzleSource, batch: PuzzleBatch) -> np.ndarray:
    return np.asarray(source.is_solved(batch.grid, batch.target, batch.grid), dtype=bool)


def _rejected(source: PuzzleSource, batch: PuzzleBatch, holdout: str | None) -> np.ndarray:
    rejected = _solved_at_reset(source, batch)
    if holdout is not None:
        rejected |= split_of(source, batch.grid, batch.target) != HOLDOUTS.index(holdout)
    return rejected


def _options_for(options: dict[str, Any], rows: np.ndarray, n: int) -> dict[str, Any]:
    return {
        key: value[rows] if isinstance(value, np.ndarray) and value.shape == (n,) else value
        for key, value in options.items()
    }


class _Assembly:
    """A batch whose rows are replaced by redrawn ones (arrays by index, lists item by item)."""

    def __init__(self, batch: PuzzleBatch) -> None:
        self.grid, self.target = batch.grid.copy(), batch.target.copy()
        self.task_id = np.asarray(batch.task_id).copy()
        self.demos = None if batch.demos is None else list(batch.demos)
        self.extra = {
            key: values.copy() if isinstance(values, np.ndarray) else list(values)
            for key, values in (batch.extra or {}).items()
        }

    def put(self, rows: np.ndarray, redraw: PuzzleBatch, picked: np.ndarray) -> None:
        """Overwrite ``rows`` with rows ``picked`` of ``redraw``."""
        if not rows.size:
            return
        self.grid[rows], self.target[rows] = redraw.grid[picked], redraw.target[picked]
        self.task_id[rows] = np.asarray(redraw.task_id)[picked]
        if self.demos is not None:
            for row, pick in zip(rows.tolist(), picked.tolist()):
                self.demos[row] = redraw.demos[pick]
        for key, values in (redraw.extra or {}).items():
            column = self.extra[key]
            if isinstance(column, np.ndarray) and isinstance(values, np.ndarray):
                column[rows] = values[picked]
            else:
                if isinstance(column, np.ndarray):
                    column = self.extra[key] = column.tolist()
                for row, pick in zip(rows.tolist(), picked.tolist()):
                    column[row] = values[pick]

    def batch(self) -> PuzzleBatch:
        return PuzzleBatch(self.grid, self.target, self.task_id, self.demos, self.extra or None)
