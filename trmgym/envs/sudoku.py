"""Sudoku puzzles with a unique solution (``trmgym/Sudoku-v0``): 4x4, 6x6 and 9x9.

Puzzles come from a *pool* of base puzzles per ``(size, blanks, split, pool_seed)``, generated
once by :mod:`trmgym.envs.sudoku_gen` (random solution grids, holes dug while the solution stays
unique, every puzzle re-verified by a solution-counting solver) and cached as ``.npz``. Each draw
picks pool puzzles with the caller's generator and, with ``augment=True``, applies a random Sudoku
symmetry (digit relabelling, band/stack and row/column-within-band permutations, transposition for
square boxes). Asking for fewer blanks than the pool has (``reset(options={"blanks": k})``) reveals
random solution cells, which keeps the solution unique; asking for more builds (and caches) a pool
at that difficulty.

Train and test are disjoint at the level of the presented puzzle: every puzzle grid is assigned to
a split by a fixed hash of its digits, and draws landing in the other split are redrawn. The two
splits also use pools generated from different seeds.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from trmgym.atomic import deferred_interrupt
from trmgym.envs import sudoku_gen
from trmgym.envs.base import PuzzleEnv
from trmgym.envs.holdout import splitmix64 as _splitmix64
from trmgym.envs.source import PuzzleBatch, PuzzleSource
from trmgym.envs.tokens import DIGIT_BLANK, DIGIT_OFFSET, VOCAB_SIZE, digits_to_tokens
from trmgym.envs.vector import PuzzleVectorEnv

SIZES = tuple(sorted(sudoku_gen.BOX_SHAPES))
SPLITS = ("train", "test")
#: default number of blank cells per grid size.
DEFAULT_BLANKS: dict[int, int] = {4: 8, 6: 18, 9: 45}
#: the most blanks per size that digging reaches reliably: a random solution grid dug in random
#: order reaches 12 (4x4), 26 (6x6) and 56 (9x9) blanks in about 70%, 70% and 85% of attempts.
MAX_BLANKS: dict[int, int] = {4: 12, 6: 26, 9: 56}
MIN_BLANKS = 1
#: bump when generation changes, so stale cache files are not reused.
CACHE_VERSION = 1
_MAX_REDRAWS = 200  # each redraw keeps a draw with probability ~1/2; 200 misses never happen


def default_cache_dir() -> Path:
    """``$TRMGYM_CACHE`` if set, else ``~/.cache/trmgym``."""
    return Path(os.environ.get("TRMGYM_CACHE") or Path.home() / ".cache" / "trmgym")


def split_of(puzzles: np.ndarray) -> np.ndarray:
    """The split (0 = train, 1 = test) of each digit grid ``[n, size, size]``, by a fixed hash.

    The hash is a sum of per-(cell, digit) random 64-bit keys, mixed once more; it depends only on
    the grid, so a grid always lands in the same split whichever pool or augmentation produced it.
    (Every env's ``holdout`` split, :mod:`trmgym.envs.holdout`, hashes puzzles the same way.)
    """
    puzzles = np.asarray(puzzles)
    num, size = len(puzzles), puzzles.shape[-1]
    cells = np.arange(size * size, dtype=np.uint64)
    keys = _splitmix64(
        ((np.uint64(size) << np.uint64(16)) + cells)[:, None] * np.uint64(16)
        + np.arange(size + 1, dtype=np.uint64)[None, :]
    )
    flat = puzzles.reshape(num, -1).astype(np.intp)
    total = keys[np.arange(size * size), flat].sum(axis=1, dtype=np.uint64)
    return (_splitmix64(total) >> np.uint64(63)).astype(np.int64)


def _check_int(name: str, value: Any, low: int, high: int | None, context: str = "") -> int:
    allowed = f"{low}..{high}" if high is not None else f">= {low}"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int in {allowed}{context}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must lie in {allowed}{context}, got {value}")
    return int(value)


def _reveal(puzzles: np.ndarray, solutions: np.ndarray, count: int, rng: np.random.Generator):
    """Fill ``count`` random blanks of each puzzle with their solution digits."""
    num = len(puzzles)
    flat, answer = puzzles.reshape(num, -1), solutions.reshape(num, -1)
    key = np.where(flat == 0, rng.random(flat.shape), 2.0)
    rank = np.argsort(np.argsort(key, axis=1), axis=1)
    return np.where(rank < count, answer, flat).reshape(puzzles.shape)


class SudokuSource(PuzzleSource):
    """Draws Sudoku puzzles with unique solutions (see the module docstring).

    Args:
        size: grid side, one of 4 (2x2 boxes), 6 (2x3 boxes), 9 (3x3 boxes).
        blanks: blank cells per puzzle, ``1..MAX_BLANKS[size]`` (12, 26, 56); default
            ``DEFAULT_BLANKS[size]`` (8, 18, 45). ``reset(options={"blanks": k})`` overrides it.
        split: ``"train"`` or ``"test"``; the two never share a puzzle.
        augment: apply a random Sudoku symmetry to every drawn puzzle.
        pool_size: base puzzles generated per difficulty (the variety without augmentation).
        pool_seed: seed of the pools (the puzzles, not the draws, which come from ``reset``).
        cache_dir: where pools are cached; default ``$TRMGYM_CACHE`` or ``~/.cache/trmgym``.
        cache: read and write the cache; ``False`` always generates in memory.
    """

    option_keys = ("blanks",)
    num_tasks = 1
    name = "sudoku"
    # the split hashes the base digit grid: augmented copies stay on their base puzzle's side
    held_out_kwargs = ({"split": "train"}, {"split": "test"})

    def __init__(
        self,
        size: int = 9,
        blanks: int | None = None,
        split: str = "train",
        augment: bool = True,
        pool_size: int = 1024,
        pool_seed: int = 0,
        cache_dir: str | os.PathLike[str] | None = None,
        cache: bool = True,
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
            raise TypeError(f"size must be one of {list(SIZES)}, got {size!r}")
        if size not in SIZES:
            raise ValueError(f"size must be one of {list(SIZES)}, got {size}")
        self.size = int(size)
        self.blanks = self.check_blanks(DEFAULT_BLANKS[self.size] if blanks is None else blanks)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
        self.split = split
        for flag_name, flag in (("augment", augment), ("cache", cache)):
            if not isinstance(flag, bool):
                raise TypeError(f"{flag_name} must be a bool, got {flag!r}")
        self.augment = augment
        self.cache = cache
        self.pool_size = _check_int("pool_size", pool_size, 1, 1_000_000)
        self.pool_seed = _check_int("pool_seed", pool_seed, 0, None)
        if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
            raise TypeError(f"cache_dir must be a path or None, got {cache_dir!r}")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.shape = (self.size, self.size)
        self._pools: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def check_blanks(self, blanks: Any) -> int:
        """Validate a number of blanks for this size; returns it as an int."""
        return _check_int(
            "blanks", blanks, MIN_BLANKS, MAX_BLANKS[self.size], f" for size={self.size}"
        )

    def check_options(self, options: dict[str, Any] | None) -> dict[str, Any]:
        """Reject unknown keys and out-of-range ``blanks``."""
        options = super().check_options(options)
        if options.get("blanks") is not None:
            options["blanks"] = self.check_blanks(options["blanks"])
        return options

    # ------------------------------------------------------------------------------------ pools
    def cache_path(self, blanks: int) -> Path:
        """The ``.npz`` file caching the pool at ``blanks``."""
        name = (
            f"sudoku-v{CACHE_VERSION}-size{self.size}-blanks{blanks}-{self.split}"
            f"-pool{self.pool_size}-seed{self.pool_seed}.npz"
        )
        return self.cache_dir / "sudoku" / name

    def pool(self, blanks: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The base ``(puzzles, solutions)`` (int8 digits ``[pool_size, size, size]``) at ``blanks``.

        Loaded from the cache when present and intact, else generated (and cached).
        """
        blanks = self.blanks if blanks is None else self.check_blanks(blanks)
        if blanks not in self._pools:
            pool = self._load(blanks) if self.cache else None
            if pool is None:
                pool = self._generate(blanks)
                if self.cache:
                    self._store(blanks, pool)
            self._pools[blanks] = pool
        return self._pools[blanks]

    def _generate(self, blanks: int) -> tuple[np.ndarray, np.ndarray]:
        seed = np.random.SeedSequence(
            [self.pool_seed, self.size, blanks, SPLITS.index(self.split), CACHE_VERSION]
        )
        rng = np.random.default_rng(seed)
        puzzles, solutions, found = [], [], 0
        while found < self.pool_size:
            need = self.pool_size - found
            batch_puzzles, batch_solutions = sudoku_gen.generate_puzzles(
                self.size, blanks, need, rng
            )
            # A puzzle hashed into the other split is moved by a random symmetry (cheap) rather
            # than thrown away (a generation lost); each try lands in this split half the time.
            for _ in range(64):
                other = np.flatnonzero(split_of(batch_puzzles) != SPLITS.index(self.split))
                if not other.size:
                    break
                batch_puzzles[other], batch_solutions[other] = sudoku_gen.augment(
                    batch_puzzles[other], batch_solutions[other], rng
                )
            mine = split_of(batch_puzzles) == SPLITS.index(self.split)
            puzzles.append(batch_puzzles[mine])
            solutions.append(batch_solutions[mine])
            found += len(puzzles[-1])
        return np.concatenate(puzzles), np.concatenate(solutions)

    def _validate(self, blanks: int, puzzles: np.ndarray, solutions: np.ndarray) -> None:
        shape = (self.pool_size, self.size, self.size)
        for name, grids in (("puzzles", puzzles), ("solutions", solutions)):
            if grids.shape != shape or grids.dtype != np.int8:
                raise ValueError(
                    f"{name} has shape {grids.shape} {grids.dtype}, expected {shape} int8"
                )
        if not np.all(sudoku_gen.is_valid_solution(solutions)):
            raise ValueError("invalid solution grid")
        if not np.all((puzzles == 0) | (puzzles == solutions)):
            raise ValueError("puzzle disagrees with its solution")
        if not np.all((puzzles == 0).sum(axis=(1, 2)) == blanks):
            raise ValueError(f"puzzle without exactly {blanks} blanks")
        if not np.all(split_of(puzzles) == SPLITS.index(self.split)):
            raise ValueError(f"puzzle outside the {self.split} split")

    def _load(self, blanks: int) -> tuple[np.ndarray, np.ndarray] | None:
        path = self.cache_path(blanks)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                puzzles, solutions = data["puzzles"], data["solutions"]
            self._validate(blanks, puzzles, solutions)
        except Exception as error:  # any unreadable or inconsistent file is regenerated
            warnings.warn(f"regenerating corrupt Sudoku cache {path}: {error}", stacklevel=3)
            return None
        return puzzles, solutions

    def _store(self, blanks: int, pool: tuple[np.ndarray, np.ndarray]) -> None:
        """Write the pool atomically: a temporary file in the same folder, then ``os.replace``."""
        path = self.cache_path(blanks)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        except OSError as error:
            warnings.warn(f"cannot write Sudoku cache {path}: {error}", stacklevel=3)
            return
        try:
            with deferred_interrupt():  # a Ctrl-C is delivered once the file is in place
                with os.fdopen(handle, "wb") as file:
                    np.savez(file, puzzles=pool[0], solutions=pool[1])
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temporary, path)
        except BaseException as error:
            Path(temporary).unlink(missing_ok=True)
            if not isinstance(error, OSError):
                raise
            warnings.warn(f"cannot write Sudoku cache {path}: {error}", stacklevel=3)

    # ----------------------------------------------------------------------------------- sample
    def sample(
        self, rng: np.random.Generator, n: int, options: dict[str, Any] | None = None
    ) -> PuzzleBatch:
        """Draw ``n`` puzzles of this split (``options``: ``{"blanks": k}``)."""
        n = _check_int("n", n, 1, None)
        blanks = (options or {}).get("blanks")
        blanks = self.blanks if blanks is None else self.check_blanks(blanks)
        base = max(blanks, self.blanks)
        pool_puzzles, pool_solutions = self.pool(base)
        puzzles = np.empty((n, self.size, self.size), dtype=np.int8)
        solutions = np.empty_like(puzzles)
        todo = np.arange(n)
        for _ in range(_MAX_REDRAWS):
            pick = rng.integers(len(pool_puzzles), size=todo.size)
            drawn, solved = pool_puzzles[pick], pool_solutions[pick]
            if self.augment:
                drawn, solved = sudoku_gen.augment(drawn, solved, rng)
            if base > blanks:
                drawn = _reveal(drawn, solved, base - blanks, rng)
            mine = split_of(drawn) == SPLITS.index(self.split)
            puzzles[todo[mine]], solutions[todo[mine]] = drawn[mine], solved[mine]
            todo = todo[~mine]
            if not todo.size:
                break
        else:
            raise RuntimeError(f"could not draw {self.split} Sudoku puzzles (split hash bug)")
        return PuzzleBatch(
            grid=digits_to_tokens(puzzles),
            target=digits_to_tokens(solutions),
            task_id=np.zeros(n, dtype=np.int64),
            extra={"blanks": np.full(n, blanks, dtype=np.int64)},
        )

    def max_cells_to_write(self) -> int:
        """``MAX_BLANKS[size]``: the most blanks any puzzle of this size may have (the ``blanks``
        reset option included), so the default edit step limit is ``MAX_BLANKS[size] + 1``
        (13, 27, 57)."""
        return MAX_BLANKS[self.size]

    def edit_tokens(self, grid: np.ndarray, target: np.ndarray) -> np.ndarray:
        """The digits ``1..size`` on the blank cells, nothing on the givens (from ``grid`` alone).

        Returns:
            ``[n, H, W, VOCAB_SIZE]`` bool.
        """
        tokens = np.zeros((*np.shape(grid), VOCAB_SIZE), dtype=bool)
        digits = slice(DIGIT_OFFSET + 1, DIGIT_OFFSET + self.size + 1)
        tokens[..., digits] = (np.asarray(grid) == DIGIT_BLANK)[..., None]
        return tokens

    def __repr__(self) -> str:
        return (
            f"SudokuSource(size={self.size}, blanks={self.blanks}, split={self.split!r}, "
            f"augment={self.augment}, pool_size={self.pool_size}, pool_seed={self.pool_seed})"
        )


class SudokuEnv(PuzzleEnv):
    """Fill in a Sudoku whose solution is unique.

    ## Description
    A ``size x size`` Sudoku (4x4 with 2x2 boxes, 6x6 with 2x3 boxes, 9x9 with 3x3 boxes) with
    ``blanks`` empty cells. Each step is one reasoning step towards the full solution. Every
    puzzle has exactly one solution, so the answer is scored against it cell by cell.

    ## Action Space
    As :class:`~trmgym.envs.base.PuzzleEnv`: ``grid`` mode proposes a whole ``size x size``
    answer plus ``halt``; ``edit`` mode writes one token into one cell, or halts.

    ## Observation Space
    ``grid``: the puzzle, tokens ``DIGIT_BLANK`` (11) for blanks and ``DIGIT_1..9`` (12..20) for
    givens; ``answer``: the current draft; ``task_id``: always 0. PAD (0) outside the puzzle when a
    larger ``canvas`` is used.

    ## Rewards
    ``Δ cell_accuracy − step_cost`` per step, ``+ solve_bonus`` when halting on the solution.
    ``info["blanks"]`` is the puzzle's number of blanks; ``info["target"]`` (the solution) only
    with ``expose_target=True``.

    ## Arguments
    ``size`` (4, 6, 9; default 9), ``blanks`` (``1..12`` / ``1..26`` / ``1..56``; default 8 /
    18 / 45), ``split`` (``"train"``/``"test"``), ``augment`` (default True), ``pool_size``,
    ``pool_seed``, ``cache_dir``, ``cache`` — see :class:`SudokuSource` — and the common
    ``canvas``, ``action_mode`` (``"grid"`` | ``"edit"``), ``expose_target``, ``step_cost``,
    ``solve_bonus``, ``reward`` (``"dense"`` | ``"sparse"``), ``max_steps`` (default 16 in grid
    mode, ``MAX_BLANKS[size] + 1`` = 13 / 27 / 57 in edit mode), ``render_mode``.
    ``reset(options={"blanks": k})`` changes the difficulty. In edit mode ``action_masks()``
    allows the digits ``1..size`` on the blank cells only. ``holdout``
    (``None`` | ``"train"`` | ``"test"``, default ``None``): only puzzles of that held-out split
    of every env (:mod:`trmgym.envs.holdout`), on top of ``split``, which picks the pool.

    ## Version History
    * v0: initial version.
    """

    source_cls = SudokuSource


class SudokuVectorEnv(PuzzleVectorEnv):
    """``num_envs`` Sudoku puzzles stepped together (see :class:`SudokuEnv`)."""

    source_cls = SudokuSource
