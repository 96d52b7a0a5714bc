"""Preallocated replay buffers: a FIFO ring and a reservoir, over named numpy fields.

Both store transitions as a dict of fixed-shape numpy arrays allocated once (like
Stable-Baselines3's ``ReplayBuffer``: ``pos`` and ``full`` mark the ring) and sample with an
explicit ``np.random.Generator`` — never global state — so a run is reproducible from its seed and a
buffer round-trips through ``state_dict`` / ``load_state_dict`` exactly (for checkpoints).

- :class:`RingBuffer` keeps the most recent ``capacity`` transitions (DQN halting replay).
- :class:`ReservoirBuffer` keeps a uniform sample of everything ever offered (Vitter's algorithm
  R; Vitter 1985, "Random Sampling with a Reservoir"), optionally split into balanced per-task
  quotas, each task's share a uniform reservoir sample of that task's stream (continual-learning
  experience replay; Chaudhry et al. 2019, "On Tiny Episodic Memories in Continual Learning").
  :func:`balanced_quotas` is the split; :func:`check_task_quota` rejects, at start-up, a memory
  too small to give every task a slot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from trmgym.checks import boolean, positive_int


def _check_capacity(capacity: int) -> int:
    return positive_int(capacity, "capacity")


def check_task_quota(capacity: int, num_tasks: int) -> None:
    """Reject, before a run starts, a task-balanced memory that cannot give every task a slot.

    Args:
        capacity: the memory size (``strategy.memory_size``).
        num_tasks: tasks in the run's sequence.

    Raises:
        ValueError: ``capacity < num_tasks`` (or either is not an int >= 1). At run time such a
            buffer would keep only the most recent ``capacity`` tasks, one item each.
    """
    capacity = positive_int(capacity, "strategy.memory_size")
    num_tasks = positive_int(num_tasks, "the number of tasks")
    if capacity < num_tasks:
        raise ValueError(
            f"strategy.memory_size={capacity} is too small for {num_tasks} tasks with "
            f"strategy.task_quota=true: every task needs at least one slot, so "
            f"strategy.memory_size must be >= {num_tasks} (the number of tasks); or set "
            f"strategy.task_quota=false"
        )


def balanced_quotas(seen: Sequence[int] | np.ndarray, capacity: int) -> np.ndarray:
    """Slots per task of a task-balanced memory: an even split, topped up by tasks' spare slots.

    Water-filling: a task that has seen fewer items than its fair share keeps them all and the
    others share its spare slots; every other task gets ``level`` or ``level + 1`` slots, ``level``
    being the largest for which the total fits. So the quotas sum to ``min(capacity, sum(seen))``
    and, once every task has seen ``ceil(capacity / k)`` items, each of the ``k`` tasks gets
    ``capacity // k`` or one more. The ``capacity % k`` extra slots go to the *earliest* tasks (the
    longest gone; ``memory_size=10`` over 3 tasks splits 4/3/3). With more tasks than slots
    (``level == 0``) the *most recent* ``capacity`` tasks get one slot each, so the memory never
    empties (:func:`check_task_quota` refuses such runs up front).

    A task's quota never grows while it receives nothing, and grows only while it has kept every
    item it has seen (by one per item), which is what lets each task stay a uniform reservoir
    sample: see :class:`ReservoirBuffer`.

    Args:
        seen: items offered per task, in the order the tasks first arrived.
        capacity: slots in the memory.

    Returns:
        ``int64`` quotas, one per task, in the order of ``seen``.
    """
    seen = np.asarray(seen, dtype=np.int64)
    if seen.sum() <= capacity:
        return seen.copy()
    ordered = np.sort(seen)
    before = np.concatenate([[0], np.cumsum(ordered)[:-1]])
    shares = (capacity - before) // (len(ordered) - np.arange(len(ordered)))
    # the first task (fewest items first) above the even share of what the smaller ones left
    level = int(shares[np.argmax(ordered > shares)])
    quotas = np.minimum(seen, level)
    capped = np.flatnonzero(seen > level)
    priority = capped if level > 0 else capped[::-1]
    quotas[priority[: capacity - int(quotas.sum())]] += 1
    return quotas


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

    Without quotas this is Vitter's algorithm R over the whole stream: the first ``capacity``
    items are stored, then the ``k``-th is kept with probability ``capacity / k`` in place of a
    uniformly chosen stored one.

    With ``task_quota=True`` (the ``task`` field must exist) the slots are split among the tasks
    seen so far by :func:`balanced_quotas` (even shares, the remainder to the earliest tasks; with
    more tasks than slots, one slot each for the most recent tasks), and each task runs algorithm
    R inside its own quota, as in Chaudhry et al. 2019's reservoir with per-task balance. Once
    ``capacity`` items have been offered the buffer always holds exactly ``capacity``. Why each
    task's items stay a uniform sample of its stream (every item kept with probability
    ``quota / seen``): a task's quota grows only while the task has kept every item it has seen,
    so growing means storing the new item; a quota never grows otherwise, and shrinking by
    uniform random eviction leaves a uniform sample. Tasks register in the order they first
    appear (within one batch: order of first row); that order is saved with the state.

    Each batch is handled task by task, vectorised over that task's rows; all draws come from
    the ``rng`` passed to :meth:`add`.

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
        task_quota = boolean(task_quota, "task_quota")
        if task_quota and "task" not in self.fields:
            raise ValueError("task_quota=True needs a 'task' field in fields")
        self.task_quota = task_quota
        #: items offered per task (a single key -1 without quotas), in order of first arrival
        self.seen: dict[int, int] = {}

    def add(self, rng: np.random.Generator, **items: Any) -> None:
        """Offer a batch of ``n`` transitions; each is kept with the reservoir probability."""
        arrays, count = self._batch(items)
        if count == 0:
            return
        if not self.task_quota:
            self._offer(-1, arrays, rng)
            return
        tasks = arrays["task"].astype(np.int64)
        labels, first_row = np.unique(tasks, return_index=True)
        for task in labels[np.argsort(first_row)].tolist():
            rows = np.flatnonzero(tasks == task)
            self._offer(int(task), {name: array[rows] for name, array in arrays.items()}, rng)

    def quotas(self) -> dict[int, int]:
        """Slots each task is entitled to now (``{-1: ...}`` without quotas)."""
        if not self.task_quota:
            return {task: min(seen, self.capacity) for task, seen in self.seen.items()}
        quotas = balanced_quotas(list(self.seen.values()), self.capacity)
        return dict(zip(self.seen, quotas.tolist()))

    def _rows_by_task(self) -> dict[int, np.ndarray]:
        if not self.task_quota:
            return {task: np.arange(self.size) for task in self.seen}
        labels = self.data["task"][: self.size]
        return {task: np.flatnonzero(labels == task) for task in self.seen}

    def _offer(self, task: int, arrays: dict[str, np.ndarray], rng: np.random.Generator) -> None:
        """Offer ``n`` items of one task: make room, store while under quota, then algorithm R."""
        count = len(next(iter(arrays.values())))
        start = self.seen.get(task, 0)
        self.seen[task] = start + count
        quotas = self.quotas()
        held = self._rows_by_task()
        # 1. tasks over their (new) quota shrink by uniform eviction: still uniform samples
        evicted: list[np.ndarray] = []
        for other, rows in held.items():
            excess = len(rows) - quotas[other]
            if excess > 0:
                drop = np.sort(rng.choice(rows, size=excess, replace=False))
                evicted.append(drop)
                held[other] = np.setdiff1d(rows, drop, assume_unique=True)
        freed = np.concatenate(evicted) if evicted else np.zeros(0, dtype=np.int64)
        free = np.concatenate([freed, np.arange(self.size, self.capacity)])
        # 2. the task's first items fill its new slots (it had kept all it had seen: exact)
        mine = held[task]
        grow = min(quotas[task] - len(mine), count)
        new_rows = free[:grow]
        for name, array in arrays.items():
            self.data[name][new_rows] = array[:grow]
        mine = np.concatenate([mine, new_rows])
        # 3. algorithm R for the rest: the k-th item of the task's stream draws j in [0, k) and
        #    replaces its j-th slot when j < quota; a later item drawing the same slot wins
        if count > grow:
            number = start + grow + 1 + np.arange(count - grow)
            draws = rng.integers(0, number)
            kept = np.flatnonzero(draws < len(mine))
            _, last = np.unique(draws[kept][::-1], return_index=True)
            kept = kept[len(kept) - 1 - last]
            for name, array in arrays.items():
                self.data[name][mine[draws[kept]]] = array[grow + kept]
        self._settle(freed, new_rows)

    def _settle(self, freed: np.ndarray, new_rows: np.ndarray) -> None:
        """Set ``size``; rows left empty (only after loading an older state) take the last rows."""
        if len(new_rows) >= len(freed):  # new rows took every freed row first: no holes
            self.size += len(new_rows) - len(freed)
            return
        occupied = np.zeros(self.capacity, dtype=bool)
        occupied[: self.size] = True
        occupied[freed] = False
        occupied[new_rows] = True
        self.size = int(occupied.sum())
        if not occupied[: self.size].all():
            order = np.flatnonzero(occupied)
            for array in self.data.values():
                array[: self.size] = array[order]

    def counts(self) -> dict[int, int]:
        """Stored items per task (``{-1: size}`` without quotas)."""
        if not self.task_quota:
            return {-1: self.size}
        return {task: len(rows) for task, rows in self._rows_by_task().items()}

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["seen"] = dict(self.seen)
        state["task_order"] = list(self.seen)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`.

        A state saved before ``task_order`` existed loads with the order of its ``seen`` dict
        (which was the arrival order). Its per-task counts may not match :meth:`quotas`: the
        older rule gave ``capacity // k`` slots per task, and emptied a memory with more tasks
        than slots. The next :meth:`add` evicts tasks above their quota; a task below it refills
        only from its own next items (which are then slightly over-represented), so a slot the
        old rule left empty stays empty until that task returns or a new task shrinks the quotas.
        """
        seen = {int(task): int(n) for task, n in state["seen"].items()}
        order = [int(task) for task in state.get("task_order", list(seen))]
        if sorted(order) != sorted(seen):
            raise ValueError(
                f"state task_order {order} must list the tasks of state seen {sorted(seen)}"
            )
        if not self.task_quota and set(seen) - {-1}:
            raise ValueError(
                f"state has per-task counters {sorted(seen)} but this buffer has task_quota=False"
            )
        if self.task_quota:
            stored = set(
                np.unique(np.asarray(state["data"]["task"])[: int(state["size"])]).tolist()
            )
            if not stored <= set(seen):
                raise ValueError(
                    f"state stores tasks {sorted(stored)} but counts items only for "
                    f"{sorted(seen)}: was it saved with task_quota=False?"
                )
        super().load_state_dict(state)
        self.seen = {task: seen[task] for task in order}
