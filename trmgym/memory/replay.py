"""Preallocated replay buffers: a FIFO ring and a reservoir, over named numpy fields.

Both store transitions as a dict of fixed-shape numpy arrays allocated once (like
Stable-Baselines3's ``ReplayBuffer``: ``pos`` and ``full`` mark the ring) and sample with an
explicit ``np.random.Generator`` — never global state — so a run is reproducible from its seed and a
buffer round-trips through ``state_dict`` / ``load_state_dict`` exactly (for checkpoints).

- :class:`RingBuffer` keeps the most recent ``capacity`` transitions (DQN halting replay).
- :class:`ReservoirBuffer` keeps a uniform sample of everything ever offered (Vitter's algorithm
  R), optionally with a per-task quota (continual-learning experience replay).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from trmgym.checks import positive_int


def _check_capacity(capacity: int) -> int:
    return positive_int(capacity, "capacity")


class _FieldStore:
    """Preallocated storage for named fields with fixed per-item shapes and dtypes."""

    def __init__(self, capacity: int, fields: Mapping[str, tuple[tuple[int, ...], Any]]) -> None:
        self.capacity = _check_capacity(capacity)
        if not fields:
            raise ValueError("fields must name at least one field: {name: (shape, dtype)}")
        self.fields = {
            name: (tuple(shape), np.dtype(dtype)) for name, (shape, dtype) in fields.items()
        }
        self.data = {
            name: np.zeros((self.capacity, *shape), dtype=dtype)
            for name, (shape, dtype) in self.fields.items()
        }
        self.size = 0

    def _batch(self, items: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], int]:
        missing = set(self.fields) - set(items)
        extra = set(items) - set(self.fields)
        if missing or extra:
            raise ValueError(
                f"transition fields must be exactly {sorted(self.fields)}; "
                f"missing {sorted(missing)}, unexpected {sorted(extra)}"
            )
        arrays: dict[str, np.ndarray] = {}
        count = -1
        for name, (shape, _) in self.fields.items():
            array = np.asarray(items[name])
            if array.shape[1:] != shape:
                raise ValueError(
                    f"field {name!r} must have shape [n, {', '.join(map(str, shape))}], got {array.shape}"
                )
            if count not in (-1, len(array)):
                raise ValueError(f"all fields need the same batch size; {name!r} has {len(array)}")
            count = len(array)
            arrays[name] = array
        return arrays, count

    def sample(self, rng: np.random.Generator, batch_size: int) -> dict[str, np.ndarray]:
        """A uniform sample (with replacement) of ``batch_size`` stored transitions."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty buffer")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        index = rng.integers(0, self.size, size=batch_size)
        return {name: array[index] for name, array in self.data.items()}

    def __len__(self) -> int:
        return self.size

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to restore the buffer exactly (arrays only up to ``size``)."""
        return {
            "size": self.size,
            "data": {name: array[: self.size].copy() for name, array in self.data.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        size = int(state["size"])
        if size > self.capacity:
            raise ValueError(f"state holds {size} items but capacity is {self.capacity}")
        for name, array in self.data.items():
            array[:size] = state["data"][name]
        self.size = size


class RingBuffer(_FieldStore):
    """FIFO replay: once full, each new transition overwrites the oldest.

    Args:
        capacity: number of transitions kept.
        fields: ``{name: (shape, dtype)}`` of one transition, e.g.
            ``{"obs": ((130,), np.float32), "action": ((), np.int64)}``.
    """

    def __init__(self, capacity: int, fields: Mapping[str, tuple[tuple[int, ...], Any]]) -> None:
        super().__init__(capacity, fields)
        self.pos = 0
        self.full = False

    def add(self, **items: Any) -> None:
        """Append a batch of ``n`` transitions (each field ``[n, *shape]``)."""
        arrays, count = self._batch(items)
        if count > self.capacity:  # only the newest ``capacity`` survive
            arrays = {name: array[-self.capacity :] for name, array in arrays.items()}
            count = self.capacity
        slots = (self.pos + np.arange(count)) % self.capacity
        for name, array in arrays.items():
            self.data[name][slots] = array
        self.pos = int((self.pos + count) % self.capacity)
        self.full = self.full or self.size + count >= self.capacity
        self.size = self.capacity if self.full else self.size + count

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["data"] = (
            {name: array.copy() for name, array in self.data.items()}
            if self.full
            else state["data"]
        )
        state.update(pos=self.pos, full=self.full)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.pos, self.full = int(state["pos"]), bool(state["full"])


class ReservoirBuffer(_FieldStore):
    """A uniform random sample of every transition offered so far (reservoir sampling).

    With ``task_quota=True`` the capacity is split evenly among the tasks seen so far (by the
    ``task`` field, which must then exist): when a new task arrives, older tasks shrink to their
    new quota by random eviction, so every task keeps an equal share.

    Args:
        capacity: number of transitions kept.
        fields: ``{name: (shape, dtype)}`` of one transition.
        task_quota: balance the buffer across tasks.
    """

    def __init__(
        self,
        capacity: int,
        fields: Mapping[str, tuple[tuple[int, ...], Any]],
        *,
        task_quota: bool = False,
    ) -> None:
        super().__init__(capacity, fields)
        if task_quota and "task" not in self.fields:
            raise ValueError("task_quota=True needs a 'task' field in fields")
        self.task_quota = task_quota
        self.seen: dict[int, int] = {}  # items offered per task (or under key -1)

    def add(self, rng: np.random.Generator, **items: Any) -> None:
        """Offer a batch of ``n`` transitions; each is kept with the reservoir probability."""
        arrays, count = self._batch(items)
        tasks = arrays["task"].astype(np.int64) if self.task_quota else np.full(count, -1)
        for task in np.unique(tasks).tolist():
            rows = np.flatnonzero(tasks == task)
            self._add_task({name: array[rows] for name, array in arrays.items()}, int(task), rng)

    def _task_rows(self, task: int) -> np.ndarray:
        if not self.task_quota:
            return np.arange(self.size)
        return np.flatnonzero(self.data["task"][: self.size] == task)

    def _quota(self) -> int:
        return self.capacity // max(len(self.seen), 1) if self.task_quota else self.capacity

    def _add_task(self, arrays: dict[str, np.ndarray], task: int, rng: np.random.Generator) -> None:
        new_task = task not in self.seen
        self.seen.setdefault(task, 0)
        if new_task and self.task_quota:
            self._shrink_to_quota(rng)
        quota = self._quota()
        for i in range(len(next(iter(arrays.values())))):
            self.seen[task] += 1
            held = self._task_rows(task)
            if len(held) < quota and self.size < self.capacity:
                slot = self.size
                self.size += 1
            else:
                # algorithm R: keep the k-th item of this stream with probability quota / k
                j = int(rng.integers(0, self.seen[task]))
                if j >= len(held):
                    continue
                slot = int(held[j])
            for name, array in arrays.items():
                self.data[name][slot] = array[i]

    def _shrink_to_quota(self, rng: np.random.Generator) -> None:
        quota = self._quota()
        keep: list[np.ndarray] = []
        for task in self.seen:
            rows = self._task_rows(task)
            if len(rows) > quota:
                rows = np.sort(rng.choice(rows, size=quota, replace=False))
            keep.append(rows)
        order = np.sort(np.concatenate(keep)) if keep else np.arange(0)
        for array in self.data.values():
            array[: len(order)] = array[order]
        self.size = len(order)

    def counts(self) -> dict[int, int]:
        """Stored items per task (``{-1: size}`` without quotas)."""
        if not self.task_quota:
            return {-1: self.size}
        return {task: int(len(self._task_rows(task))) for task in self.seen}

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["seen"] = dict(self.seen)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.seen = {int(k): int(v) for k, v in state["seen"].items()}
