"""Drawing a core's puzzles from its source, redrawing the draws a puzzle must not be.

Every env draws through :func:`draw_puzzles`. A draw is redrawn (vectorised: only the rejected
rows, with bounded retries) when it is *solved at reset*: the draft answer starts as the
puzzle's input, so a puzzle whose input already solves it would reward an agent that does
nothing (the built-in sources never emit one; this guards every source, user-written ones
included).

Rows that are fine on the first draw are kept as drawn and no extra random numbers are used
when nothing is rejected, so seeded draws only change where a rejected puzzle would have been.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trmgym.envs.source import PuzzleBatch, PuzzleSource

#: redraw rounds before a source is declared unable to pose unsolved puzzles
MAX_REDRAWS = 200


def draw_puzzles(
    source: PuzzleSource,
    rng: np.random.Generator,
    n: int,
    options: dict[str, Any],
) -> PuzzleBatch:
    """``n`` puzzles of ``source`` that are not solved at reset.

    Args:
        source: the family.
        rng: the env's generator.
        n: number of puzzles (>= 1).
        options: checked reset options; a 1-D array of ``n`` values (one per puzzle) is cut to
            the rows being redrawn.

    Raises:
        ValueError: rows still rejected after :data:`MAX_REDRAWS` redraws.
    """
    batch = source.sample(rng, n, options)
    check_batch(source, batch, n)
    rejected = np.flatnonzero(_rejected(source, batch))
    if not rejected.size:
        return batch
    assembly = _Assembly(batch)
    for _ in range(MAX_REDRAWS):
        redraw = source.sample(rng, int(rejected.size), _options_for(options, rejected, n))
        check_batch(source, redraw, int(rejected.size))
        keep = ~_rejected(source, redraw)
        assembly.put(rejected[keep], redraw, np.flatnonzero(keep))
        rejected = rejected[~keep]
        if not rejected.size:
            return assembly.batch()
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


def _rejected(source: PuzzleSource, batch: PuzzleBatch) -> np.ndarray:
    return _solved_at_reset(source, batch)


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
