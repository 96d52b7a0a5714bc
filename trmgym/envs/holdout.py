"""Held-out splits for every puzzle family: a fixed hash of a puzzle's contents names its split.

An env made with ``holdout="train"`` or ``holdout="test"`` only poses puzzles of that split
(draws of the other are redrawn, see :mod:`trmgym.envs.draw`), so training and evaluation envs
never share a puzzle. A puzzle's split depends on its contents alone — the input grid and the
target on the source's native grid (not the canvas) — never on the seed, the pool or the
augmentation that produced it: about :data:`TEST_FRACTION` of all puzzles are "test".

The split is of the puzzles as posed. For a source that augments base puzzles (Sudoku's
symmetries, ARC's dihedral and colour maps) two augmentations of one base puzzle may land in
different splits, so a held-out puzzle can be a symmetric copy of a training one: for those
families prefer their own split of the base puzzles (Sudoku ``split``, ARC ``pairs``), which is what
a task sequence entry without explicit splits uses (``PuzzleSource.held_out_kwargs``).

The hash sums one SplitMix64 key per (cell, token) — so it sees every cell and its position —
and mixes the sum once more (Steele, Lea and Flood, "Fast splittable pseudorandom number
generators", OOPSLA 2014). Sudoku's pool split (:func:`trmgym.envs.sudoku.split_of`) is built
the same way on digits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from trmgym.envs.tokens import VOCAB_SIZE

if TYPE_CHECKING:
    from trmgym.envs.source import PuzzleSource

#: the held-out splits, in split-index order (``split_of`` gives 0 for "train", 1 for "test")
HOLDOUTS = ("train", "test")
#: the share of all puzzles that belongs to the "test" split
TEST_FRACTION = 0.2
_SALT = np.uint64(0x5EED_0F_7E57_5EED)  # keeps these keys apart from Sudoku's digit keys
_THRESHOLD = np.uint64(int(TEST_FRACTION * 2**64))
_CELLS_PER_CHUNK = 1 << 20  # hash at most this many cells at once (bounded temporaries)


def splitmix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser, elementwise on uint64 arrays (wrapping arithmetic)."""
    values = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def content_hash(*grids: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each puzzle's token grids (``[n, ...]`` arrays, tokens ``0..V-1``).

    The grids of one puzzle are read as one sequence of cells; the hash changes with any token
    at any position.
    """
    n = len(grids[0])
    cells = np.concatenate([np.asarray(grid).reshape(n, -1) for grid in grids], axis=1)
    position = np.arange(cells.shape[1], dtype=np.uint64) * np.uint64(VOCAB_SIZE)
    total = np.empty(n, dtype=np.uint64)
    step = max(1, _CELLS_PER_CHUNK // max(cells.shape[1], 1))
    for start in range(0, n, step):  # chunks of many puzzles, for memory only
        chunk = cells[start : start + step].astype(np.uint64)
        keys = splitmix64((position + chunk) ^ _SALT)
        total[start : start + step] = keys.sum(axis=1, dtype=np.uint64)
    return splitmix64(total)


def split_of(source: PuzzleSource, grid: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The split (0 = "train", 1 = "test") of each puzzle ``[n, H, W]`` of ``source``."""
    return (content_hash(*source.holdout_grids(grid, target)) < _THRESHOLD).astype(np.int64)


def check_holdout(holdout: Any) -> str | None:
    """``holdout`` if it is ``None``, ``"train"`` or ``"test"``; else a ``ValueError``."""
    if holdout is not None and (not isinstance(holdout, str) or holdout not in HOLDOUTS):
        raise ValueError(f"holdout must be None (every puzzle), 'train' or 'test', got {holdout!r}")
    return holdout
