"""Ring and reservoir replay buffers: FIFO semantics, uniform reservoir, quotas, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from trmgym.memory.replay import ReservoirBuffer, RingBuffer

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
