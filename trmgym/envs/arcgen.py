"""Procedural ARC-style task families with few-shot demonstrations (``trmgym/ARCGen-v0``).

ARCGen gives meta-learning and long continual sequences an unlimited supply of ARC-like tasks
whose rules are known. A *family* (colour_map, flip, rotate, translate, gravity, fill_enclosed,
count_to_bar, scale_up, denoise; see :mod:`trmgym.envs.arcgen_families`) is a parameterised
program; a *task* is one parameter draw of it — e.g. one colour permutation, one rotation — plus
an input style (palette, density); a task yields unlimited ``(input, output)`` pairs. Each episode
shows ``num_demos`` pairs of its task in ``info["demos"]`` and asks for the output of a fresh input.

Tasks are numbered family-major: ``task_id = position of the family in families *
tasks_per_family + index``. Task ``index`` of a family is a deterministic function of
``(task_seed, family, index)`` only — it does not change with ``tasks_per_family`` or the other
families chosen: the family's programs are visited in a seeded random order without repetition,
so the first ``min(tasks_per_family, num_programs)`` tasks of a family run pairwise different
programs; families with fewer programs than tasks (``rotate`` has 3, ``flip`` 4, ``scale_up`` 8,
``gravity`` 40) cycle, task ``i`` and ``i + num_programs`` sharing a program but not their style.

No pair — posed or shown — has an output equal to its input (a puzzle the initial draft, the
input itself, would already solve): such draws are drawn again, the filter re-arc applies to its
generators (Hodel, "Addressing the Abstraction and Reasoning Corpus via Procedural Example
Generation", arXiv:2404.07353, 2024). A task that maps every input of the chosen sizes to itself
(a cyclic shift by the grid's own side) is refused at construction.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from trmgym.envs.arcgen_families import FAMILIES, FAMILY_NAMES, OUTSIDE, Params, TaskFamily
from trmgym.envs.augment import extent_edit_tokens
from trmgym.envs.base import PuzzleEnv
from trmgym.envs.source import PuzzleBatch, PuzzleSource
from trmgym.envs.tokens import COLOR_OFFSET, NUM_COLORS, PAD
from trmgym.envs.vector import PuzzleVectorEnv

MIN_GRID = 3  # smallest grid side: closed shapes with a hole need 3 x 3
MAX_GRID = 30  # ARC's largest grid side
_PROGRAM_DRAWS = 64  # programs drawn per chunk when ordering a family's programs
#: draws of a pair before a task is declared unable to pose a puzzle; the worst supported case,
#: ``denoise`` on 3x3 grids, is degenerate 96% of the time (0.96 ** 1000 < 1e-17)
MAX_REDRAWS = 1000
assert OUTSIDE + COLOR_OFFSET == PAD  # lets colors_to_tokens_padded map the outside by addition


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    allowed = f"an int >= {low}" if high is None else f"an int in {low}..{high}"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be {allowed}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return int(value)


def _check_families(families: Any) -> tuple[str, ...]:
    if isinstance(families, str):
        if families == "all":
            return FAMILY_NAMES
        families = [families]
    if (
        not isinstance(families, Sequence)
        or not families
        or not all(isinstance(name, str) for name in families)
    ):
        raise TypeError(
            f"families must be 'all' or a non-empty list of names from {list(FAMILY_NAMES)}, "
            f"got {families!r}"
        )
    unknown = [name for name in families if name not in FAMILIES]
    if unknown:
        raise ValueError(
            f"unknown families {unknown}; valid families: {list(FAMILY_NAMES)} (or 'all')"
        )
    if len(set(families)) != len(families):
        raise ValueError(f"families lists a family twice: {list(families)}")
    return tuple(str(name) for name in families)


def _program_order(family: TaskFamily, task_seed: int, count: int) -> list[int]:
    """The first ``count`` programs of a family's seeded order (distinct until all are used).

    Programs are drawn in fixed-size chunks from a generator seeded by ``(task_seed, family)``,
    skipping repeats, so the ``i``-th program does not depend on ``count``.
    """
    rng = np.random.default_rng(
        np.random.SeedSequence(task_seed, spawn_key=(zlib.crc32(family.name.encode()), 0))
    )
    distinct = min(count, family.num_programs)
    order: list[int] = []
    seen: set[int] = set()
    while len(order) < distinct:
        for program in rng.integers(0, family.num_programs, size=_PROGRAM_DRAWS).tolist():
            if program not in seen and len(order) < distinct:
                seen.add(program)
                order.append(program)
    return [order[i % family.num_programs] for i in range(count)]


class ARCGenSource(PuzzleSource):
    """Draws ARCGen puzzles: a test input/output pair plus demonstrations of the same task.

    Args:
        families: ``"all"`` (every family, in :data:`FAMILY_NAMES` order) or a list of family
            names; the list's order is the order of the task ids.
        tasks_per_family: tasks per family (``>= 1``); ``num_tasks = len(families) *
            tasks_per_family``.
        task_seed: seed (``>= 0``) of the task parameters; the same seed gives the same tasks.
        min_size: smallest input side, ``3..max_size``.
        max_size: largest grid side, ``min_size..30``; also the native shape ``(max_size,
            max_size)``. Outputs always fit: ``scale_up`` inputs are at most ``max_size //
            factor`` per side (below ``min_size`` if need be).
        num_demos: demonstration pairs per puzzle (``>= 1``).

    ``reset`` options: ``{"task_id": i}`` fixes the task, ``{"family": name}`` draws tasks of
    that family only (both may be given if they agree). Without options tasks are uniform.
    ``info["family"]`` names each puzzle's family.
    """

    option_keys = ("task_id", "family")
    name = "arcgen"

    def __init__(
        self,
        families: str | list[str] | tuple[str, ...] = "all",
        tasks_per_family: int = 100,
        task_seed: int = 0,
        min_size: int = 3,
        max_size: int = 10,
        num_demos: int = 3,
    ) -> None:
        self.families = _check_families(families)
        self.tasks_per_family = _check_int("tasks_per_family", tasks_per_family, 1)
        self.task_seed = _check_int("task_seed", task_seed, 0)
        self.max_size = _check_int("max_size", max_size, MIN_GRID, MAX_GRID)
        self.min_size = _check_int("min_size", min_size, MIN_GRID, self.max_size)
        self.num_demos = _check_int("num_demos", num_demos, 1)
        self.shape = (self.max_size, self.max_size)
        self.num_tasks = len(self.families) * self.tasks_per_family

        # [family position] -> per-task parameter arrays (program parameters + input style)
        self._stacked: list[dict[str, np.ndarray]] = []
        for name in self.families:
            family = FAMILIES[name]
            order = _program_order(family, self.task_seed, self.tasks_per_family)
            stacked = family.stack([family.program(program) for program in order])
            crc = zlib.crc32(name.encode())
            style_rng = np.random.default_rng(
                np.random.SeedSequence(self.task_seed, spawn_key=(crc, 1))
            )
            stacked.update(family.draw_styles(style_rng, stacked))
            self._stacked.append(stacked)
            identity = np.flatnonzero(family.identity_tasks(stacked, self.min_size, self.max_size))
            if identity.size:
                index = int(identity[0])
                params = {
                    key: values[index].item() for key, values in stacked.items() if values.ndim == 1
                }
                task_id = self.families.index(name) * self.tasks_per_family + index
                side = self.min_size
                raise ValueError(
                    f"family {name!r}: task_id {task_id} ({params}) maps every {side}x{side} "
                    f"input to itself, so it cannot pose a puzzle; use max_size > min_size "
                    f"or leave {name!r} out of families"
                )

    # ------------------------------------------------------------------------------ task lookup
    def describe_task(self, task_id: int) -> tuple[str, Params]:
        """``(family, params)`` of a task: program parameters plus input style (a copy)."""
        task_id = self._check_task_id(task_id)
        position, index = divmod(task_id, self.tasks_per_family)
        params = {}
        for key, values in self._stacked[position].items():
            value = values[index].tolist()
            params[key] = tuple(value) if isinstance(value, list) else value
        return self.families[position], params

    def family_task_ids(self, family: str) -> range:
        """The task ids of one family."""
        position = self._family_position(family)
        return range(position * self.tasks_per_family, (position + 1) * self.tasks_per_family)

    def apply(self, task_id: int, grid: np.ndarray) -> np.ndarray:
        """Run task ``task_id``'s program on one ``h x w`` grid of ARC colours ``0..9``."""
        family, params = self.describe_task(task_id)
        grid = np.asarray(grid)
        if grid.ndim != 2 or grid.size == 0 or grid.min() < 0 or grid.max() >= NUM_COLORS:
            raise ValueError(f"grid must be a non-empty 2-D array of colours 0..{NUM_COLORS - 1}")
        return FAMILIES[family].apply(params, grid.astype(np.int64))

    def _check_task_id(self, task_id: Any) -> int:
        return _check_int("task_id", task_id, 0, self.num_tasks - 1)

    def _family_position(self, family: Any) -> int:
        if family not in self.families:
            raise ValueError(f"family must be one of {list(self.families)}, got {family!r}")
        return self.families.index(family)

    # ---------------------------------------------------------------------------------- options
    def check_options(self, options: dict[str, Any] | None) -> dict[str, Any]:
        """Check option keys and values: ``task_id`` in range, ``family`` among the families."""
        options = super().check_options(options)
        if "task_id" in options:
            options["task_id"] = self._check_task_id(options["task_id"])
        if "family" in options:
            position = self._family_position(options["family"])
            if "task_id" in options and options["task_id"] // self.tasks_per_family != position:
                raise ValueError(
                    f"task_id {options['task_id']} is not a task of family {options['family']!r} "
                    f"(its task ids: {self.family_task_ids(options['family'])})"
                )
        return options

    # --------------------------------------------------------------------------------- sampling
    def sample(
        self, rng: np.random.Generator, n: int, options: dict[str, Any] | None = None
    ) -> PuzzleBatch:
        n = _check_int("n", n, 1)
        options = self.check_options(options)
        if "task_id" in options:
            task_ids = np.full(n, options["task_id"], dtype=np.int64)
        elif "family" in options:
            first = self._family_position(options["family"]) * self.tasks_per_family
            task_ids = first + rng.integers(0, self.tasks_per_family, size=n)
        else:
            task_ids = rng.integers(0, self.num_tasks, size=n)
        pairs = self.num_demos + 1  # the demonstrations, then the test pair
        inputs, outputs = self.sample_pairs(rng, np.repeat(task_ids, pairs))
        inputs = colors_to_tokens_padded(inputs).reshape(n, pairs, *self.shape)
        outputs = colors_to_tokens_padded(outputs).reshape(n, pairs, *self.shape)
        demos = [[(inputs[i, k], outputs[i, k]) for k in range(self.num_demos)] for i in range(n)]
        family = np.asarray(self.families)[task_ids // self.tasks_per_family]
        return PuzzleBatch(
            grid=inputs[:, -1].copy(),
            target=outputs[:, -1].copy(),
            task_id=task_ids.astype(np.int64),
            demos=demos,
            extra={"family": family.tolist()},
        )

    def sample_pairs(
        self, rng: np.random.Generator, task_ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """One fresh ``(input, output)`` pair per entry of ``task_ids``, in ARC colours.

        Returns:
            Two ``[len(task_ids), M, M]`` int64 arrays (``M = max_size``), grids at the
            top-left, ``-1`` beyond them.
        """
        task_ids = np.asarray(task_ids, dtype=np.int64)
        if task_ids.ndim != 1 or (
            task_ids.size and not 0 <= task_ids.min() <= task_ids.max() < self.num_tasks
        ):
            raise ValueError(f"task_ids must be a 1-D array of ids in 0..{self.num_tasks - 1}")
        count, size = len(task_ids), self.max_size
        inputs = np.full((count, size, size), OUTSIDE, dtype=np.int64)
        outputs = np.full((count, size, size), OUTSIDE, dtype=np.int64)
        positions = task_ids // self.tasks_per_family
        for position in np.unique(positions).tolist():
            rows = np.flatnonzero(positions == position)
            local = task_ids[rows] % self.tasks_per_family
            # A pair whose output equals its input (nothing to do) is drawn again, as re-arc
            # filters its generators; a pair that is fine on the first draw is never redrawn,
            # so draws without degenerate pairs are unchanged.
            for _ in range(MAX_REDRAWS):
                pair_in, pair_out = self._draw(rng, position, local)
                inputs[rows], outputs[rows] = pair_in, pair_out
                degenerate = np.all(pair_in == pair_out, axis=(1, 2))
                rows, local = rows[degenerate], local[degenerate]
                if not rows.size:
                    break
            else:
                family, params = self.describe_task(int(task_ids[rows[0]]))
                raise ValueError(
                    f"family {family!r} task {int(task_ids[rows[0]])} ({params}) gave an output "
                    f"equal to its input in {MAX_REDRAWS} draws (min_size={self.min_size}, "
                    f"max_size={self.max_size}); it cannot pose a puzzle at these sizes: widen "
                    f"min_size..max_size or leave {family!r} out of families"
                )
        return inputs, outputs

    def _draw(
        self, rng: np.random.Generator, position: int, local: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """One ``(input, output)`` pair per task of family ``position`` (task indices ``local``)."""
        family = FAMILIES[self.families[position]]
        batch = {key: values[local] for key, values in self._stacked[position].items()}
        max_h, max_w = family.max_input_shape(batch, self.max_size)
        heights = rng.integers(np.minimum(self.min_size, max_h), max_h + 1)
        widths = rng.integers(np.minimum(self.min_size, max_w), max_w + 1)
        grids = family.sample_inputs(rng, batch, heights, widths, self.max_size)
        return grids, family.transform(batch, grids, heights, widths)

    def edit_tokens(self, grid: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Colours inside the output's extent, PAD on input cells outside it
        (:func:`trmgym.envs.augment.extent_edit_tokens`). The default edit step limit is
        ``max_size ** 2 + 1`` (any cell of the grid may need a write)."""
        return extent_edit_tokens(grid, target)

    def __repr__(self) -> str:
        return (
            f"ARCGenSource(families={list(self.families)}, tasks_per_family={self.tasks_per_family}, "
            f"task_seed={self.task_seed}, size={self.min_size}..{self.max_size}, num_demos={self.num_demos})"
        )


def colors_to_tokens_padded(colors: np.ndarray) -> np.ndarray:
    """ARC colours (``-1`` outside the grid) to tokens (PAD outside the grid)."""
    # OUTSIDE + COLOR_OFFSET == PAD, so one addition maps both colours and the outside.
    return np.asarray(colors, dtype=np.int64) + COLOR_OFFSET


def tokens_to_grid(tokens: np.ndarray) -> np.ndarray:
    """Crop a PAD-padded token grid to its top-left content and return ARC colours ``0..9``."""
    tokens = np.asarray(tokens)
    content = tokens != PAD
    height = int(content.any(axis=1).sum())
    width = int(content.any(axis=0).sum())
    return tokens[:height, :width].astype(np.int64) - COLOR_OFFSET


class ARCGenEnv(PuzzleEnv):
    """Infer a procedural ARC-style rule from demonstrations (``trmgym/ARCGen-v0``).

    ## Description
    Each episode draws a task — one parameter setting of a family's program: a colour
    permutation, a flip axis, a rotation, a shift (wrap or crop), a gravity direction, a hole
    fill colour, a count-to-bar rule, a scale factor, a noise colour — shows ``num_demos``
    input/output pairs of that task in ``info["demos"]`` and asks for the output of a fresh
    input. Tasks are finite and numbered (``num_tasks = len(families) * tasks_per_family``,
    family-major) so continual sequences and meta-learning splits can name them;
    ``source.describe_task(i)`` gives ``(family, params)``. ``translate`` tasks either wrap
    (cyclic shift) or crop (what leaves the grid is lost, vacated cells turn black) — the
    ``mode`` parameter says which. See :mod:`trmgym.envs.arcgen_families` for every program.

    ## Action Space
    ``action_mode="grid"``: ``Dict(answer=Box(0, V-1, (H, W), int64), halt=Discrete(2))``;
    ``action_mode="edit"``: ``Discrete(H*W*V + 1)`` (write token ``a % V`` into cell ``a // V``;
    the last action halts). ``V`` is :data:`trmgym.envs.tokens.VOCAB_SIZE`.

    ## Observation Space
    ``Dict(grid, answer, task_id)`` on ``(max_size, max_size)`` (or ``canvas``): ARC colour tokens
    ``1..10`` at the top-left, PAD elsewhere. Outputs may differ in size from inputs (flip and
    rotate on the diagonals, scale_up, count_to_bar): the answer must leave PAD outside the
    output. ``task_id`` lies in ``0..num_tasks-1``.

    ## Rewards
    ``Δ cell_accuracy − step_cost`` each step, ``+ solve_bonus`` when halting on the exact output.
    ``info``: ``demos`` (list of ``(input, output)`` token grids), ``family``.

    ## Arguments
    - ``families`` (``"all"`` or list of names, default ``"all"``).
    - ``tasks_per_family`` (int >= 1, default 100); ``task_seed`` (int >= 0, default 0).
    - ``min_size`` (3..max_size, default 3), ``max_size`` (min_size..30, default 10).
    - ``num_demos`` (int >= 1, default 3).
    - ``reset(options={"task_id": i})`` or ``{"family": name}`` steer the task choice.
    - ``holdout`` (``None`` | ``"train"`` | ``"test"``, default ``None``): only puzzles (test
      input/output pairs) of that held-out split (:mod:`trmgym.envs.holdout`); demonstrations
      are not split.
    - ``canvas``, ``action_mode`` (``"grid"`` | ``"edit"``), ``expose_target``,
      ``step_cost``, ``solve_bonus``, ``reward`` (``"dense"`` | ``"sparse"``), ``max_steps``
      (default 16 in grid mode; in edit mode ``max_size ** 2 + 1``), ``render_mode``: see
      :class:`~trmgym.envs.base.PuzzleEnv`. In edit mode ``action_masks()`` allows the colours
      inside the output's extent and PAD on input cells outside it (it reveals the output size).

    ## Version History
    - v0: initial version (9 families).
    """

    source_cls = ARCGenSource


class ARCGenVectorEnv(PuzzleVectorEnv):
    """``num_envs`` ARCGen puzzles stepped together with numpy (see :class:`ARCGenEnv`)."""

    source_cls = ARCGenSource
