"""Sudoku generation and solving, vectorised with numpy over a batch of puzzles.

Grids are digit arrays (``0`` = blank, ``1..size`` = digits) of shape ``[B, size, size]``; the
solver works on candidate bitmasks (bit ``d-1`` set when digit ``d`` is still possible), one
``uint16`` per cell, so a whole batch propagates with a handful of numpy operations.

* :func:`propagate` applies naked and hidden singles to a fixpoint over the batch. A puzzle that
  singles alone fill has exactly one solution.
* :func:`count_solutions` adds binary branching (minimum-remaining-values cell, "this digit" or
  "not this digit") as a depth-first search run in parallel for every puzzle — one node per puzzle
  per round — and stops a puzzle once it has ``limit`` solutions.
* :func:`random_solutions` fills empty grids by the same search with randomised branching, so the
  solution grids are genuinely random rather than relabellings of one base grid.
* :func:`generate_puzzles` digs holes into random solution grids, keeping each removal only when
  the puzzle stays unique, until exactly ``blanks`` cells are blank, then re-verifies every puzzle
  with :func:`count_solutions`.
* :func:`augment` applies the uniqueness-preserving symmetries: digit relabelling, band and stack
  permutations, row/column permutations within a band/stack, and transposition (square boxes only).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

#: box shape ``(rows, cols)`` for each supported grid size.
BOX_SHAPES: dict[int, tuple[int, int]] = {4: (2, 2), 6: (2, 3), 9: (3, 3)}

_SOLVED, _STUCK, _CONTRADICTION = 1, 0, -1
_ALL_BITS = np.uint16(0xFFFF)


class Geometry(NamedTuple):
    """Index tables of one grid size (cells are numbered row-major, ``0..size*size-1``)."""

    size: int
    box: tuple[int, int]
    full: np.uint16  # candidate mask with every digit allowed
    units: np.ndarray  # [3*size, size] cell ids of each row, column and box
    cell_slots: np.ndarray  # [size*size, 3] flat (unit, position) slots holding each cell
    cell_units: np.ndarray  # [size*size, 3] the row, column and box of each cell
    bit_of_digit: np.ndarray  # [size+1] mask of digit d (digit 0 -> every digit allowed)


@functools.cache
def geometry(size: int) -> Geometry:
    """The units and lookup tables of a ``size x size`` Sudoku (size in 4, 6, 9)."""
    if size not in BOX_SHAPES:
        raise ValueError(f"size must be one of {sorted(BOX_SHAPES)}, got {size!r}")
    box_rows, box_cols = BOX_SHAPES[size]
    cells = np.arange(size * size).reshape(size, size)
    boxes = [
        cells[r : r + box_rows, c : c + box_cols].ravel()
        for r in range(0, size, box_rows)
        for c in range(0, size, box_cols)
    ]
    units = np.concatenate([cells, cells.T, np.stack(boxes)]).astype(np.intp)
    slot_of = [[] for _ in range(size * size)]
    for slot, cell in enumerate(units.ravel()):
        slot_of[cell].append(slot)
    full = np.uint16((1 << size) - 1)
    bits = np.array([full] + [1 << d for d in range(size)], dtype=np.uint16)
    cell_slots = np.array(slot_of, dtype=np.intp)
    cell_units = cell_slots // size
    for table in (units, bits, cell_slots, cell_units):
        table.setflags(write=False)
    return Geometry(size, (box_rows, box_cols), full, units, cell_slots, cell_units, bits)


def _size_of(grids: np.ndarray) -> int:
    if grids.ndim != 3 or grids.shape[1] != grids.shape[2] or grids.shape[1] not in BOX_SHAPES:
        raise ValueError(
            f"grids must have shape [B, size, size] with size in {sorted(BOX_SHAPES)}, "
            f"got {grids.shape}"
        )
    return grids.shape[1]


def digits_to_masks(grids: np.ndarray) -> np.ndarray:
    """Candidate masks ``[B, size*size]`` of digit grids ``[B, size, size]`` (0 = blank)."""
    grids = np.asarray(grids)
    geo = geometry(_size_of(grids))
    if grids.size and (grids.min() < 0 or grids.max() > geo.size):
        raise ValueError(f"grids must hold digits 0..{geo.size} (0 = blank)")
    return geo.bit_of_digit[grids.reshape(len(grids), -1)]


def masks_to_digits(masks: np.ndarray, size: int) -> np.ndarray:
    """Digit grids ``[B, size, size]`` of fully determined masks (undetermined cells -> 0)."""
    single = np.bitwise_count(masks) == 1
    digits = np.where(single, np.log2(np.maximum(masks, 1)).astype(np.int64) + 1, 0)
    return digits.reshape(len(masks), size, size)


def _once_twice(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bits seen at least once / at least twice along the last axis of ``values``."""
    once = np.zeros(values.shape[:-1], dtype=values.dtype)
    twice = np.zeros_like(once)
    for position in range(values.shape[-1]):
        column = values[..., position]
        twice |= once & column
        once |= column
    return once, twice


def _propagate_step(masks: np.ndarray, geo: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """One round of naked + hidden singles; returns the new masks and a contradiction flag."""
    # Bit masks (0xFFFF / 0) instead of np.where: several times faster on uint16.
    single = (np.bitwise_count(masks) == 1).astype(np.uint16) * _ALL_BITS
    fixed_once, fixed_twice = _once_twice(np.take(masks & single, geo.units, axis=1))
    contradiction = np.any(fixed_twice != 0, axis=1)
    # Naked singles: a fixed digit leaves every other cell of its row, column and box.
    per_unit = np.take(fixed_once, geo.cell_units, axis=1)
    taken = per_unit[..., 0] | per_unit[..., 1] | per_unit[..., 2]
    masks = masks & ~(taken & ~single)
    # Hidden singles: a digit with one possible cell in a unit goes there.
    unit_masks = np.take(masks, geo.units, axis=1)
    seen_once, seen_twice = _once_twice(unit_masks)
    contradiction |= np.any(seen_once != geo.full, axis=1)
    hidden = (unit_masks & (seen_once & ~seen_twice)[:, :, None]).reshape(len(masks), -1)
    per_cell = np.take(hidden, geo.cell_slots, axis=1)
    forced = per_cell[..., 0] | per_cell[..., 1] | per_cell[..., 2]
    contradiction |= np.any(np.bitwise_count(forced) > 1, axis=1)
    masks = forced | (masks & ~((forced != 0).astype(np.uint16) * _ALL_BITS))
    contradiction |= np.any(masks == 0, axis=1)
    return masks, contradiction


def propagate(masks: np.ndarray, geo: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Apply naked and hidden singles to a fixpoint.

    Args:
        masks: ``[B, size*size]`` uint16 candidate masks.
        geo: the grid's :func:`geometry`.

    Returns:
        ``(masks, status)``: the propagated masks and an int8 status per puzzle — ``1`` solved,
        ``0`` stuck (needs search), ``-1`` contradiction (no solution).
    """
    masks = np.array(masks, dtype=np.uint16, copy=True)
    status = np.zeros(len(masks), dtype=np.int8)
    active = np.arange(len(masks))
    while active.size:
        before = masks[active]
        after, contradiction = _propagate_step(before, geo)
        masks[active] = after
        status[active[contradiction]] = _CONTRADICTION
        moving = np.any(after != before, axis=1) & ~contradiction
        active = active[moving]
    solved = (status != _CONTRADICTION) & np.all(np.bitwise_count(masks) == 1, axis=1)
    status[solved] = _SOLVED
    return masks, status


def _pick_branch(
    masks: np.ndarray, geo: Geometry, rng: np.random.Generator | None
) -> tuple[np.ndarray, np.ndarray]:
    """Branching cell (fewest candidates) and the candidate bit to try first, per puzzle."""
    counts = np.bitwise_count(masks).astype(np.int64)
    key = np.where(counts == 1, 1 << 20, counts << 8)
    if rng is not None:
        key = key + rng.integers(0, 256, size=key.shape)
    cell = np.argmin(key, axis=1)
    rows = np.arange(len(masks))
    candidates = masks[rows, cell]
    if rng is None:
        first = candidates & (~candidates + np.uint16(1))  # lowest set bit
    else:
        bits = (candidates[:, None] >> np.arange(geo.size, dtype=np.uint16)) & 1
        choice = (rng.random(len(masks)) * counts[rows, cell]).astype(np.int64)
        position = np.argmax(np.cumsum(bits, axis=1) > choice[:, None], axis=1)
        first = (np.uint16(1) << position.astype(np.uint16)).astype(np.uint16)
    return cell, first


def search(
    masks: np.ndarray, geo: Geometry, limit: int = 2, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Count solutions (up to ``limit``) of each puzzle by propagation + depth-first search.

    Every puzzle runs its own depth-first search with binary branching (the cell with fewest
    candidates gets one digit, the sibling branch forbids it); each round propagates the current
    node of every unfinished puzzle at once, so the batch advances together.

    Args:
        masks: ``[B, size*size]`` candidate masks.
        geo: the grid's :func:`geometry`.
        limit: stop a puzzle once this many solutions are found (``>= 1``).
        rng: randomise the branching cell and digit order (for generation); ``None`` is
            deterministic.

    Returns:
        ``(counts, solutions)``: int64 ``min(#solutions, limit)`` per puzzle and the masks of
        one solution per puzzle (undefined where the count is 0).
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    num, cells = len(masks), geo.size * geo.size
    counts = np.zeros(num, dtype=np.int64)
    solutions = np.zeros((num, cells), dtype=np.uint16)
    current = np.array(masks, dtype=np.uint16, copy=True)
    stack = np.empty((num, 4, cells), dtype=np.uint16)  # pending sibling branches per puzzle
    depth = np.zeros(num, dtype=np.int64)
    active = np.arange(num)
    while active.size:
        nodes, status = propagate(current[active], geo)
        solved = active[status == _SOLVED]
        solutions[solved] = nodes[status == _SOLVED]
        counts[solved] += 1
        stuck = status == _STUCK
        if stuck.any():
            branching, nodes = active[stuck], nodes[stuck]
            cell, first = _pick_branch(nodes, geo, rng)
            rows = np.arange(len(nodes))
            if depth[branching].max() >= stack.shape[1]:
                stack = np.concatenate([stack, np.empty_like(stack)], axis=1)
            sibling = nodes.copy()
            sibling[rows, cell] &= ~first
            stack[branching, depth[branching]] = sibling
            depth[branching] += 1
            nodes[rows, cell] = first
            current[branching] = nodes
        # Finished nodes backtrack to their latest pending sibling, if the puzzle needs more.
        ended = active[~stuck]
        ended = ended[(counts[ended] < limit) & (depth[ended] > 0)]
        depth[ended] -= 1
        current[ended] = stack[ended, depth[ended]]
        active = np.concatenate([active[stuck], ended])
        active = active[counts[active] < limit]
    return counts, solutions


def count_solutions(grids: np.ndarray, limit: int = 2) -> np.ndarray:
    """Number of solutions of each digit grid ``[B, size, size]`` (0 = blank), capped at ``limit``.

    ``count_solutions(grids) == 1`` is the uniqueness test.
    """
    grids = np.asarray(grids)
    counts, _ = search(digits_to_masks(grids), geometry(_size_of(grids)), limit=limit)
    return counts


def solve(grids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One solution of each digit grid and the solution count (capped at 2).

    Returns:
        ``(solutions, counts)``: ``[B, size, size]`` digits (all zeros where unsolvable) and
        int64 counts in ``0..2``.
    """
    grids = np.asarray(grids)
    size = _size_of(grids)
    counts, masks = search(digits_to_masks(grids), geometry(size), limit=2)
    solutions = masks_to_digits(masks, size)
    solutions[counts == 0] = 0
    return solutions, counts


def is_valid_solution(grids: np.ndarray) -> np.ndarray:
    """Whether each digit grid ``[B, size, size]`` is a complete, valid Sudoku solution."""
    grids = np.asarray(grids)
    geo = geometry(_size_of(grids))
    if grids.size and (grids.min() < 0 or grids.max() > geo.size):
        return np.zeros(len(grids), dtype=bool)
    units = np.sort(grids.reshape(len(grids), -1)[:, geo.units], axis=2)
    return np.all(units == np.arange(1, geo.size + 1), axis=(1, 2))


def random_solutions(size: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random complete grids ``[n, size, size]`` (int8 digits), by randomised search."""
    geo = geometry(size)
    start = np.full((n, size * size), geo.full, dtype=np.uint16)
    # Any first row extends to a full grid (relabel any grid's digits), so draw it directly.
    start[:, :size] = geo.bit_of_digit[1 + np.argsort(rng.random((n, size)), axis=1)]
    counts, masks = search(start, geo, limit=1, rng=rng)
    if not np.all(counts == 1):
        raise RuntimeError("random_solutions failed to complete a first row (solver bug)")
    return masks_to_digits(masks, size).astype(np.int8)


def _dig(
    solutions: np.ndarray, blanks: int, geo: Geometry, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Blank cells of ``solutions`` ``[B, N]`` in random order while the puzzle stays unique.

    The first ``min(blanks, 40% of N)`` cells go in one step (checked once; almost always still
    unique); the rest one at a time, where removing cell ``c`` (value ``v``) keeps the puzzle unique
    exactly when the puzzle with ``c != v`` has no solution. Returns ``(puzzles, reached)``.
    """
    num, cells = solutions.shape
    rows = np.arange(num)
    order = np.argsort(rng.random((num, cells)), axis=1)
    bulk = min(blanks, int(0.4 * cells))
    puzzles = solutions.copy()
    puzzles[rows[:, None], order[:, :bulk]] = 0
    unique = search(geo.bit_of_digit[puzzles], geo, limit=2)[0] == 1
    puzzles[~unique] = solutions[~unique]  # rare: restart those one cell at a time
    position = np.where(unique, bulk, 0)
    removed = position.copy()
    while True:
        active = np.flatnonzero((removed < blanks) & (cells - position >= blanks - removed))
        if not active.size:
            break
        cell = order[active, position[active]]
        masks = geo.bit_of_digit[puzzles[active]]
        masks[np.arange(active.size), cell] = geo.full & ~geo.bit_of_digit[solutions[active, cell]]
        alternative = search(masks, geo, limit=1)[0] > 0
        keep_blank = active[~alternative]
        puzzles[keep_blank, cell[~alternative]] = 0
        removed[keep_blank] += 1
        position[active] += 1
    return puzzles, removed == blanks


def generate_puzzles(
    size: int, blanks: int, n: int, rng: np.random.Generator, max_batch: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random puzzles, each with exactly ``blanks`` blanks and a unique solution.

    Args:
        size: grid size, one of 4, 6, 9.
        blanks: number of blank cells per puzzle, ``0 <= blanks < size*size``.
        n: number of puzzles.
        rng: the only source of randomness.
        max_batch: largest batch generated at once (bounds memory).

    Returns:
        ``(puzzles, solutions)``: int8 digit grids ``[n, size, size]`` (0 = blank).

    Raises:
        RuntimeError: if digging rarely reaches ``blanks`` (fewer than 1 in 1000 attempts).
    """
    geo = geometry(size)
    cells = size * size
    if not 0 <= blanks < cells:
        raise ValueError(f"blanks must lie in 0..{cells - 1} for size {size}, got {blanks}")
    puzzles, solutions, found, attempts = [], [], 0, 0
    success_rate = 1.0
    while found < n:
        batch = int(min(max_batch, max(16, 1.2 * (n - found) / success_rate)))
        full = random_solutions(size, batch, rng).reshape(batch, cells)
        dug, reached = _dig(full, blanks, geo, rng)
        attempts += batch
        dug, full = dug[reached], full[reached]
        # Independent check of every kept puzzle: exactly one solution, the one we dug from.
        counts, solved = search(geo.bit_of_digit[dug], geo, limit=2)
        same = np.all(solved == geo.bit_of_digit[full], axis=1)
        if not np.all((counts == 1) & same):
            raise RuntimeError("dug a puzzle without a unique solution (generator bug)")
        puzzles.append(dug)
        solutions.append(full)
        found += len(dug)
        success_rate = max(found / attempts, 1e-3)
        if attempts >= 1000 and found / attempts < 1e-3:
            raise RuntimeError(
                f"could not reach blanks={blanks} for size {size}: "
                f"{found} of {attempts} attempts succeeded"
            )
    shape = (-1, size, size)
    return (
        np.concatenate(puzzles)[:n].reshape(shape).astype(np.int8),
        np.concatenate(solutions)[:n].reshape(shape).astype(np.int8),
    )


def augment(
    puzzles: np.ndarray, solutions: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Apply one random Sudoku symmetry per puzzle (same one to puzzle and solution).

    The symmetries — digit relabelling, permuting bands (and stacks), permuting rows within a band
    (columns within a stack), and transposition when boxes are square — map valid grids to valid
    grids bijectively, so a unique puzzle stays unique.

    Args:
        puzzles: ``[n, size, size]`` digits (0 = blank).
        solutions: ``[n, size, size]`` digits.
        rng: the only source of randomness.

    Returns:
        The transformed ``(puzzles, solutions)``.
    """
    puzzles, solutions = np.asarray(puzzles), np.asarray(solutions)
    size = _size_of(puzzles)
    box_rows, box_cols = BOX_SHAPES[size]
    num = len(puzzles)

    def line_permutation(group: int) -> np.ndarray:
        groups = size // group
        group_order = np.argsort(rng.random((num, groups)), axis=1)
        within = np.argsort(rng.random((num, groups, group)), axis=2)
        return (group_order[:, :, None] * group + within).reshape(num, size)

    row_perm = line_permutation(box_rows)
    col_perm = line_permutation(box_cols)
    relabel = np.concatenate(
        [np.zeros((num, 1), dtype=np.int64), 1 + np.argsort(rng.random((num, size)), axis=1)],
        axis=1,
    )
    transpose = rng.random(num) < 0.5 if box_rows == box_cols else np.zeros(num, dtype=bool)
    index = np.arange(num)[:, None, None]

    def apply(grids: np.ndarray) -> np.ndarray:
        moved = grids[index, row_perm[:, :, None], col_perm[:, None, :]]
        moved = np.where(transpose[:, None, None], moved.transpose(0, 2, 1), moved)
        relabelled = np.take_along_axis(relabel, moved.reshape(num, -1).astype(np.int64), axis=1)
        return relabelled.reshape(grids.shape).astype(grids.dtype)

    return apply(puzzles), apply(solutions)
