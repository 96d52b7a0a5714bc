"""Checkpoints that are safe to load and safe to interrupt.

- Content is restricted to tensors, numbers, strings, lists and dicts, so it loads with
  ``torch.load(..., weights_only=True)`` (no arbitrary unpickling); numpy arrays are stored as
  tensors under a marker and converted back on load (:func:`to_tensors` / :func:`from_tensors`).
- Writing is atomic: the checkpoint goes to a temporary file in the same directory, is flushed and
  fsynced, then renamed over ``last.pt`` after the previous ``last.pt`` was hard-linked (or copied)
  as ``previous.pt``. Once written, ``last.pt`` is always present and complete; a kill at any
  moment leaves it and at most two temporary files, which the next start deletes
  (:func:`remove_temporaries`, called while it holds the run directory).
- :func:`load_latest` falls back to ``previous.pt`` (with a warning) when ``last.pt`` is corrupt.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trmgym.atomic import deferred_interrupt

_ARRAY = "__ndarray__"
LAST, PREVIOUS = "last.pt", "previous.pt"


#: plain values ``torch.load(..., weights_only=True)`` restores as they were saved
_PLAIN = (bool, int, float, complex, str, bytes, type(None), torch.dtype, torch.device, torch.Size)


def to_tensors(value: Any, path: str = "state") -> Any:
    """Recursively replace numpy arrays/scalars by tensors (marked), checking that every value
    loads back with ``weights_only=True``.

    Kept as they are: tensors, ``bool``/``int``/``float``/``complex``/``str``/``bytes``/``None``,
    dicts, lists, tuples and sets of those. Numeric and bool numpy arrays become marked tensors,
    numpy scalars Python numbers.

    Raises:
        TypeError: any other value (an object array, a string array, a deque, a custom class),
            naming where it is, e.g. ``state.plugins.curriculum.queue`` — at save time, so a
            checkpoint that could not be restored is never written.
    """
    if isinstance(value, np.generic):  # before _PLAIN: np.float64 is a float, np.bool_ is not
        return value.item()
    if isinstance(value, torch.Tensor) or isinstance(value, _PLAIN):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufc":
            raise TypeError(
                f"{path}: a numpy array of dtype {value.dtype} cannot be checkpointed safely; "
                "allowed: bool, int, float and complex arrays (store strings or objects as lists)"
            )
        # copy(order="C"), not ascontiguousarray: that one turns a 0-d array into shape (1,)
        return {_ARRAY: torch.from_numpy(value.copy(order="C"))}
    if isinstance(value, dict):
        return {k: to_tensors(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [to_tensors(v, f"{path}[{k}]") for k, v in enumerate(value)]
    if type(value) is tuple:
        return tuple(to_tensors(v, f"{path}[{k}]") for k, v in enumerate(value))
    if type(value) in (set, frozenset):
        return type(value)(to_tensors(v, f"{path}{{}}") for v in value)
    raise TypeError(
        f"{path}: a {type(value).__name__} cannot be checkpointed safely (torch.load with "
        "weights_only=True refuses it); allowed: tensors, numpy arrays of numbers, numbers, "
        "strings, bytes, None, and dicts, lists, tuples and sets of them"
    )


def from_tensors(value: Any) -> Any:
    """Inverse of :func:`to_tensors`."""
    if isinstance(value, dict):
        if set(value) == {_ARRAY}:
            return value[_ARRAY].numpy().copy()
        return {k: from_tensors(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_tensors(v) for v in value]
    if type(value) is tuple:
        return tuple(from_tensors(v) for v in value)
    return value


def _keep_as_previous(last: Path, previous: Path) -> None:
    """Make ``previous`` a copy of ``last`` while ``last`` stays in place.

    A hard link under a temporary name, renamed over ``previous`` (a plain copy where the file
    system has no hard links). Renaming ``last`` away instead would leave a moment with no
    ``last.pt``, in which a kill, or anyone looking for the run's checkpoint, finds none.
    """
    fd, staged = tempfile.mkstemp(prefix=".previous-", suffix=".tmp", dir=last.parent)
    os.close(fd)
    try:
        os.unlink(staged)
        try:
            os.link(last, staged)
        except OSError:
            shutil.copyfile(last, staged)
        os.replace(staged, previous)
    except BaseException:
        Path(staged).unlink(missing_ok=True)
        raise


#: names of the temporary files a save writes before renaming them
TEMPORARIES = (".ckpt-*.tmp", ".previous-*.tmp")


def remove_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete what a save killed half-way left in ``directory`` (:data:`TEMPORARIES`); returns
    the paths deleted. Call it only while holding the run directory (:mod:`trmgym.rundir`): a
    save of another process in flight would lose its file."""
    directory = Path(directory)
    stale = sorted(p for pattern in TEMPORARIES for p in directory.glob(pattern) if p.is_file())
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def save_atomic(state: dict[str, Any], directory: str | os.PathLike) -> Path:
    """Write ``state`` as ``directory/last.pt`` atomically, keeping the previous as ``previous.pt``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = to_tensors(state)
    with deferred_interrupt():  # Ctrl-C inside torch.save's zip writer would become a RuntimeError
        fd, tmp = tempfile.mkstemp(prefix=".ckpt-", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                torch.save(tensors, handle)
                handle.flush()
                os.fsync(handle.fileno())
            last = directory / LAST
            if last.exists():
                _keep_as_previous(last, directory / PREVIOUS)
            os.replace(tmp, last)  # last.pt is never absent once written: no window without it
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return directory / LAST


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Load one checkpoint file with ``weights_only=True``."""
    return from_tensors(torch.load(path, map_location="cpu", weights_only=True))


def load_latest(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The newest readable checkpoint in ``directory`` (``None`` when there is none).

    Falls back from ``last.pt`` to ``previous.pt`` with a warning when the newer file is
    unreadable (a kill during a write on a file system without atomic rename).

    Raises:
        RuntimeError: checkpoint files exist but none can be read — a run must then stop rather
            than silently start again from scratch over the directory's results.
    """
    directory = Path(directory)
    errors = []
    for name in (LAST, PREVIOUS):
        path = directory / name
        if not path.exists():
            continue
        try:
            return load(path)
        except Exception as error:  # noqa: BLE001 - any unreadable file means: try the older one
            errors.append(f"{path}: {error!r}")
            warnings.warn(
                f"checkpoint {path} is unreadable ({error!r}); trying an older one", stacklevel=2
            )
    if errors:
        raise RuntimeError(
            f"no checkpoint in {directory} can be read, so the run cannot resume (and would "
            f"start again over its results): {'; '.join(errors)}. Move the directory away to "
            "start afresh"
        )
    return None


def first_difference(saved: Any, current: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """The first ``(dotted key, saved value, current value)`` where two JSON-like trees differ.

    Mappings are compared key by key (in ``saved``'s order, then keys only ``current`` has; a
    missing key reads as ``"<absent>"``), lists element by element; ``None`` when equal.
    """
    if isinstance(saved, dict) and isinstance(current, dict):
        for key in [*saved, *(k for k in current if k not in saved)]:
            where = f"{path}.{key}" if path else str(key)
            if key not in saved or key not in current:
                return where, saved.get(key, "<absent>"), current.get(key, "<absent>")
            found = first_difference(saved[key], current[key], where)
            if found is not None:
                return found
        return None
    if isinstance(saved, list) and isinstance(current, list):
        for k, (a, b) in enumerate(zip(saved, current)):
            found = first_difference(a, b, f"{path}[{k}]")
            if found is not None:
                return found
        if len(saved) != len(current):
            return f"{path} (length)", len(saved), len(current)
        return None
    return None if saved == current else (path, saved, current)
