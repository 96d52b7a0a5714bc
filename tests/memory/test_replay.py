"""Ring and reservoir replay buffers: FIFO semantics, uniform reservoir, quotas, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trmgym.memory.replay import (
    ReservoirBuffer,
    RingBuffer,
    balanced_quotas,
    check_task_quota,
)

FIELDS = {"x": ((2,), np.float32), "a": ((), np.int64)}


def items(start: int, n: int) -> dict:
    values = np.arange(start, start + n)
    return {"x": np.stack([values, -values], 1).astype(np.float32), "a": values}


def test_ring_overwrites_oldest_and_tracks_pos_full() -> None:
    buffer = RingBuffer(5, FIELDS)
    buffer.add(**items(0, 3))
    assert len(buffer) == 3 and buffer.pos == 3 and not buffer.full
    buffer.add(**items(3, 4))  # 0..6 offered; 5 slots keep 2..6
    assert len(buffer) == 5 and buffer.full and buffer.pos == 2
    assert sorted(buffer.data["a"].tolist()) == [2, 3, 4, 5, 6]
    np.testing.assert_array_equal(buffer.data["x"][:, 1], -buffer.data["x"][:, 0])
    buffer.add(**items(100, 12))  # more than capacity at once: only the newest 5 remain
    assert sorted(buffer.data["a"].tolist()) == [107, 108, 109, 110, 111]


def test_ring_sampling_is_seeded_and_within_stored() -> None:
    buffer = RingBuffer(8, FIELDS)
    buffer.add(**items(10, 6))
    a = buffer.sample(np.random.default_rng(0), 32)
    b = buffer.sample(np.random.default_rng(0), 32)
    np.testing.assert_array_equal(a["a"], b["a"])
    assert set(a["a"].tolist()) <= set(range(10, 16))
    assert a["x"].shape == (32, 2)


def test_ring_state_round_trip() -> None:
    buffer = RingBuffer(4, FIELDS)
    buffer.add(**items(0, 6))
    clone = RingBuffer(4, FIELDS)
    clone.load_state_dict(buffer.state_dict())
    assert (clone.pos, clone.full, len(clone)) == (buffer.pos, buffer.full, len(buffer))
    buffer.add(**items(50, 1))
    clone.add(**items(50, 1))
    np.testing.assert_array_equal(clone.data["a"], buffer.data["a"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"capacity": 0, "fields": FIELDS}, "capacity must be an int >= 1"),
        ({"capacity": 3, "fields": {}}, "fields must name at least one field"),
    ],
)
def test_bad_construction(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RingBuffer(**kwargs)


def test_bad_items_and_empty_sample() -> None:
    buffer = RingBuffer(3, FIELDS)
    with pytest.raises(ValueError, match="cannot sample from an empty buffer"):
        buffer.sample(np.random.default_rng(0), 1)
    with pytest.raises(ValueError, match=r"missing \['a'\]"):
        buffer.add(x=np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"field 'x' must have shape \[n, 2\]"):
        buffer.add(x=np.zeros((1, 3)), a=np.zeros(1))


def test_reservoir_is_uniform_over_the_stream() -> None:
    rng = np.random.default_rng(0)
    hits = np.zeros(100)
    for _ in range(300):
        buffer = ReservoirBuffer(10, {"a": ((), np.int64)})
        for start in range(0, 100, 7):
            buffer.add(rng, a=np.arange(start, min(start + 7, 100)))
        assert len(buffer) == 10
        hits[buffer.data["a"]] += 1
    # every item has inclusion probability 10/100: early and late halves alike
    assert abs(hits[:50].mean() - hits[50:].mean()) < 0.1 * hits.mean()
    assert hits.min() > 0


def test_reservoir_task_quota_balances_tasks() -> None:
    rng = np.random.default_rng(1)
    buffer = ReservoirBuffer(12, {"a": ((), np.int64), "task": ((), np.int64)}, task_quota=True)
    buffer.add(rng, a=np.arange(40), task=np.zeros(40, int))
    assert buffer.counts() == {0: 12}
    buffer.add(rng, a=np.arange(100, 140), task=np.ones(40, int))
    assert buffer.counts() == {0: 6, 1: 6}
    buffer.add(rng, a=np.arange(200, 240), task=np.full(40, 2))
    assert buffer.counts() == {0: 4, 1: 4, 2: 4}
    task0 = buffer.data["a"][: len(buffer)][buffer.data["task"][: len(buffer)] == 0]
    assert np.all(task0 < 40)  # rows keep their own task's items
    with pytest.raises(ValueError, match="needs a 'task' field"):
        ReservoirBuffer(4, {"a": ((), np.int64)}, task_quota=True)


def test_reservoir_state_round_trip_is_exact() -> None:
    buffer = ReservoirBuffer(6, {"a": ((), np.int64), "task": ((), np.int64)}, task_quota=True)
    buffer.add(np.random.default_rng(2), a=np.arange(20), task=np.repeat([0, 1], 10))
    clone = ReservoirBuffer(6, {"a": ((), np.int64), "task": ((), np.int64)}, task_quota=True)
    clone.load_state_dict(buffer.state_dict())
    buffer.add(np.random.default_rng(3), a=np.arange(30, 40), task=np.full(10, 1))
    clone.add(np.random.default_rng(3), a=np.arange(30, 40), task=np.full(10, 1))
    np.testing.assert_array_equal(buffer.data["a"][: len(buffer)], clone.data["a"][: len(clone)])
    assert buffer.counts() == clone.counts()


# --------------------------------------------------------------------------- task quotas

TASK_FIELDS = {"a": ((), np.int64), "task": ((), np.int64)}


def offer_stream(
    buffer: ReservoirBuffer,
    rng: np.random.Generator,
    stream: list[tuple[int, int]],
    batch: int,
    start: int = 0,
) -> int:
    """Offer ``(task, items)`` runs in batches; item values number the stream from ``start``."""
    offered = start
    for task, count in stream:
        for first in range(0, count, batch):
            size = min(batch, count - first)
            buffer.add(rng, a=np.arange(offered, offered + size), task=np.full(size, task))
            offered += size
    return offered


def stored(buffer: ReservoirBuffer) -> tuple[np.ndarray, np.ndarray]:
    return buffer.data["a"][: len(buffer)], buffer.data["task"][: len(buffer)]


@pytest.mark.parametrize(
    ("capacity", "counts"),
    [(2, {0: 0, 1: 1, 2: 1}), (10, {0: 4, 1: 3, 2: 3}), (2000, {0: 667, 1: 667, 2: 666})],
)
def test_quota_memory_over_three_tasks_uses_every_slot(capacity: int, counts: dict) -> None:
    # the old rule (capacity // 3 per task) ended with 0, 9 and 1998 items
    buffer = ReservoirBuffer(capacity, TASK_FIELDS, task_quota=True)
    offer_stream(buffer, np.random.default_rng(0), [(0, 700), (1, 700), (2, 700)], batch=64)
    assert len(buffer) == capacity
    assert buffer.counts() == counts == buffer.quotas()
    values, tasks = stored(buffer)
    np.testing.assert_array_equal(values // 700, tasks)  # each row holds an item of its own task


@pytest.mark.parametrize(
    ("seen", "capacity", "quotas"),
    [
        ([50, 50, 50], 10, [4, 3, 3]),  # remainder to the earliest tasks
        ([50, 50, 50], 2, [0, 1, 1]),  # more tasks than slots: the most recent keep one each
        ([100] * 5, 3, [0, 0, 1, 1, 1]),
        ([2, 100, 100], 10, [2, 4, 4]),  # a task short of its share lends the rest
        ([100, 100, 2], 10, [4, 4, 2]),
        ([3, 100, 100], 10, [3, 4, 3]),
        ([4, 100, 100], 10, [4, 3, 3]),
        ([1, 2, 3], 10, [1, 2, 3]),  # not full yet: everything kept
        ([6, 6], 12, [6, 6]),
        ([7, 0], 5, [5, 0]),
    ],
)
def test_balanced_quotas(seen: list[int], capacity: int, quotas: list[int]) -> None:
    assert balanced_quotas(seen, capacity).tolist() == quotas


@pytest.mark.parametrize(("capacity", "num_tasks"), [(2, 3), (1, 2), (9, 10)])
def test_check_task_quota_rejects_fewer_slots_than_tasks(capacity: int, num_tasks: int) -> None:
    match = (
        rf"strategy\.memory_size={capacity} is too small for {num_tasks} tasks .*"
        rf"strategy\.memory_size must be >= {num_tasks} \(the number of tasks\)"
    )
    with pytest.raises(ValueError, match=match):
        check_task_quota(capacity, num_tasks)


@pytest.mark.parametrize(
    ("capacity", "num_tasks", "match"),
    [
        (0, 3, r"strategy\.memory_size must be an int >= 1, got 0"),
        (2.5, 3, r"strategy\.memory_size must be an int >= 1, got 2\.5"),
        (4, 0, r"the number of tasks must be an int >= 1, got 0"),
    ],
)
def test_check_task_quota_rejects_non_positive_ints(
    capacity: object, num_tasks: object, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        check_task_quota(capacity, num_tasks)  # type: ignore[arg-type]


@pytest.mark.parametrize(("capacity", "num_tasks"), [(3, 3), (2000, 3), (np.int64(5), 1)])
def test_check_task_quota_accepts_one_slot_per_task(capacity: int, num_tasks: int) -> None:
    assert check_task_quota(capacity, num_tasks) is None


batches = st.lists(
    st.tuples(st.lists(st.integers(0, 6), min_size=0, max_size=9), st.booleans()),
    min_size=1,
    max_size=40,
)


@settings(max_examples=100, deadline=None)
@given(capacity=st.integers(1, 12), plan=batches, seed=st.integers(0, 2**16))
def test_quota_buffer_stays_full_and_balanced_after_every_add(
    capacity: int, plan: list[tuple[list[int], bool]], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    buffer = ReservoirBuffer(capacity, TASK_FIELDS, task_quota=True)
    owner: list[int] = []  # task of every offered item, by item value
    for tasks, sorted_batch in plan:
        labels = np.sort(tasks) if sorted_batch else np.asarray(tasks, dtype=np.int64)
        before_counts, before_seen = buffer.counts(), dict(buffer.seen)
        buffer.add(rng, a=np.arange(len(owner), len(owner) + len(labels)), task=labels)
        owner.extend(labels.tolist())

        assert len(buffer) == min(capacity, len(owner))  # full once `capacity` were offered
        counts = buffer.counts()
        assert counts == buffer.quotas()
        assert (
            list(counts.values()) == balanced_quotas(list(buffer.seen.values()), capacity).tolist()
        )
        values, rows_task = stored(buffer)
        assert len(set(values.tolist())) == len(values)  # no item stored twice
        np.testing.assert_array_equal(np.asarray(owner, dtype=np.int64)[values], rows_task)
        seen = list(buffer.seen.values())
        if seen and len(seen) <= capacity and min(seen) >= -(-capacity // len(seen)):
            assert set(counts.values()) <= {capacity // len(seen), -(-capacity // len(seen))}
        if len(owner) >= capacity and len(seen) > capacity:  # the most recent tasks hold one each
            assert list(counts.values()) == [0] * (len(seen) - capacity) + [1] * capacity
        for task, count in counts.items():
            # what keeps each task a uniform sample: a task gains slots only while it holds
            # everything it has seen, and only by receiving items
            gained = count - before_counts.get(task, 0)
            if gained > 0:
                assert before_counts.get(task, 0) == before_seen.get(task, 0)
                assert gained <= buffer.seen[task] - before_seen.get(task, 0)


@pytest.mark.slow
def test_each_task_keeps_a_uniform_sample_of_its_stream() -> None:
    stream = [(0, 20), (1, 20), (0, 10), (2, 25)]  # task 0 comes back after task 1
    owner = np.repeat([0, 1, 0, 2], [20, 20, 10, 25])
    repeats = 1500
    hits = np.zeros(len(owner))
    rng = np.random.default_rng(123)
    for _ in range(repeats):
        buffer = ReservoirBuffer(10, TASK_FIELDS, task_quota=True)
        offer_stream(buffer, rng, stream, batch=9)
        assert buffer.counts() == {0: 4, 1: 3, 2: 3}
        hits[stored(buffer)[0]] += 1
    # every item of a task is kept with probability quota / seen: 4/30, 3/20, 3/25
    expected = np.select([owner == 0, owner == 1], [4 / 30, 3 / 20], 3 / 25)
    frequency = hits / repeats
    tolerance = 4.5 * np.sqrt(expected * (1 - expected) / repeats)
    assert np.all(np.abs(frequency - expected) < tolerance)
    for task, seen in ((0, 30), (1, 20), (2, 25)):  # early and late items alike
        items = frequency[owner == task]
        assert abs(items[: seen // 2].mean() - items[seen // 2 :].mean()) < 0.15 * items.mean()


def sequential_reservoir(capacity: int, stream: np.ndarray, rng: np.random.Generator) -> list:
    """Vitter's algorithm R, one item at a time: the reference the buffer must reproduce."""
    kept: list[int] = []
    for number, item in enumerate(stream.tolist(), start=1):
        if len(kept) < capacity:
            kept.append(item)
        else:
            slot = int(rng.integers(0, number))
            if slot < capacity:
                kept[slot] = item
    return kept


@pytest.mark.parametrize("task_quota", [False, True])
def test_one_stream_is_exactly_sequential_algorithm_r(task_quota: bool) -> None:
    # without quotas (any tasks) and with quotas over one task: the same draws as item by item
    buffer = ReservoirBuffer(37, TASK_FIELDS, task_quota=task_quota)
    stream = [(0, 500), (1, 300)] if not task_quota else [(0, 800)]
    rng = np.random.default_rng(4)
    offer_stream(buffer, rng, stream, batch=13)
    reference_rng = np.random.default_rng(4)
    reference = sequential_reservoir(37, np.arange(800), reference_rng)
    assert stored(buffer)[0].tolist() == reference
    assert rng.bit_generator.state == reference_rng.bit_generator.state


def test_quota_buffer_is_deterministic_given_the_rng() -> None:
    stream = [(0, 90), (1, 40), (2, 70), (1, 30)]

    def fill(seed: int) -> tuple[np.ndarray, dict]:
        buffer = ReservoirBuffer(16, TASK_FIELDS, task_quota=True)
        rng = np.random.default_rng(seed)
        offer_stream(buffer, rng, stream, batch=11)
        return stored(buffer)[0].copy(), rng.bit_generator.state

    (first, first_rng), (second, second_rng) = fill(5), fill(5)
    np.testing.assert_array_equal(first, second)
    assert first_rng == second_rng
    assert not np.array_equal(first, fill(6)[0])


def test_quota_state_round_trip_resumes_exactly() -> None:
    buffer = ReservoirBuffer(10, TASK_FIELDS, task_quota=True)
    offered = offer_stream(buffer, np.random.default_rng(8), [(2, 30), (0, 25), (1, 2)], batch=6)
    state = buffer.state_dict()
    assert state["seen"] == {2: 30, 0: 25, 1: 2} and state["task_order"] == [2, 0, 1]
    # the saved order wins over the dict's order (e.g. a serializer that sorts keys)
    state = {**state, "seen": dict(sorted(state["seen"].items()))}
    clone = ReservoirBuffer(10, TASK_FIELDS, task_quota=True)
    clone.load_state_dict(state)
    assert list(clone.seen) == [2, 0, 1] and clone.counts() == buffer.counts() == {2: 4, 0: 4, 1: 2}
    for target in (buffer, clone):
        offer_stream(target, np.random.default_rng(9), [(1, 20), (3, 15)], batch=6, start=offered)
    np.testing.assert_array_equal(stored(buffer)[0], stored(clone)[0])
    assert clone.counts() == buffer.counts() == {2: 3, 0: 3, 1: 2, 3: 2}


def test_state_from_the_old_rule_loads_and_refills() -> None:
    # written before `task_order` existed, by the floor(capacity / k) rule: 3/3/3 of 10 slots
    legacy = {
        "size": 9,
        "data": {"a": np.arange(0, 90, 10), "task": np.repeat([0, 1, 2], 3)},
        "seen": {0: 30, 1: 30, 2: 20},
    }
    buffer = ReservoirBuffer(10, TASK_FIELDS, task_quota=True)
    buffer.load_state_dict(legacy)
    assert list(buffer.seen) == [0, 1, 2] and buffer.counts() == {0: 3, 1: 3, 2: 3}
    rng = np.random.default_rng(0)
    buffer.add(rng, a=np.arange(100, 104), task=np.full(4, 2))
    # task 0's extra slot can only be filled by task 0's items: empty, as under the old rule
    assert buffer.quotas() == {0: 4, 1: 3, 2: 3} and buffer.counts() == {0: 3, 1: 3, 2: 3}
    buffer.add(rng, a=np.arange(200, 203), task=np.full(3, 3))  # the next task: all full again
    assert len(buffer) == 10 and buffer.counts() == buffer.quotas() == {0: 3, 1: 3, 2: 2, 3: 2}


@pytest.mark.parametrize(
    ("task_quota", "change", "match"),
    [
        (True, {"task_order": [0, 5]}, r"state task_order \[0, 5\] must list the tasks of"),
        (True, {"seen": {-1: 20}}, r"state stores tasks \[0, 1\] but counts items only for \[-1\]"),
        (False, {}, r"state has per-task counters \[0, 1\] but this buffer has task_quota=False"),
    ],
)
def test_mismatched_states_are_refused(task_quota: bool, change: dict, match: str) -> None:
    source = ReservoirBuffer(6, TASK_FIELDS, task_quota=True)
    source.add(np.random.default_rng(0), a=np.arange(20), task=np.repeat([0, 1], 10))
    state = {**source.state_dict(), **change}
    if "seen" in change:
        state.pop("task_order")
    target = ReservoirBuffer(6, TASK_FIELDS, task_quota=task_quota)
    with pytest.raises(ValueError, match=match):
        target.load_state_dict(state)
    assert len(target) == 0 and target.seen == {}  # refused before anything changed
