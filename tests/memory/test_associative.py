"""Associative memory bank: recall, replacement, forgetting, faiss parity, checkpoints, gradients."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trmgym.checkpoint import from_tensors, to_tensors
from trmgym.memory import AssociativeMemory

SMALL = {"key_dim": 16, "value_dim": 8, "num_heads": 2, "forget_threshold": 1.0}


def unit_keys(count: int, dim: int, seed: int = 0) -> torch.Tensor:
    keys = torch.randn(count, dim, generator=torch.Generator().manual_seed(seed))
    return keys / keys.norm(dim=1, keepdim=True)


def row_values(ids: range | list[int], width: int = 8) -> torch.Tensor:
    """Values that carry their row id in every entry (so a slot's content names its row)."""
    return torch.tensor(list(ids), dtype=torch.float32)[:, None].expand(-1, width).clone()


def stored_rows(memory: AssociativeMemory) -> set[int]:
    return set(memory.values[memory.used, 0].round().long().tolist())


def test_exact_key_recall_at_4096_by_64() -> None:
    memory = AssociativeMemory(4096, key_dim=64, value_dim=64, forget_threshold=1.0)
    keys = unit_keys(4096, 64)
    values = torch.randn(4096, 64, generator=torch.Generator().manual_seed(1))
    slots = memory.write(keys, values)
    assert len(memory) == 4096 and memory.occupancy == 1.0
    read = memory.read(keys)
    argmax_recall = (read.slots == slots).float().mean().item()
    cosine_recall = (F.cosine_similarity(read.values, values[: len(slots)]) > 0.99).float()
    assert argmax_recall >= 0.99
    assert cosine_recall.mean().item() >= 0.99
    assert bool(read.found.all())


def test_capacity_bound_under_tenfold_overfill_keeps_newest_under_lru() -> None:
    memory = AssociativeMemory(16, **SMALL)
    keys = unit_keys(160, 16)
    for start in range(0, 160, 7):
        stop = min(start + 7, 160)
        memory.write(keys[start:stop], row_values(range(start, stop)))
        assert len(memory) == min(stop, 16) <= memory.capacity
    assert stored_rows(memory) == set(range(144, 160))
    assert (memory.writes, memory.evictions) == (160, 144)
    slots = memory.write(unit_keys(40, 16, seed=1), row_values(range(1000, 1040)))
    assert len(slots) == 16 and len(memory) == 16  # one write of 40 rows keeps its last 16
    assert stored_rows(memory) == set(range(1024, 1040))


def test_lru_evicts_the_least_recently_read() -> None:
    memory = AssociativeMemory(8, **SMALL)
    keys = unit_keys(9, 16)
    for row in range(8):  # rows 0..7, oldest first
        memory.write(keys[row : row + 1], row_values([row]))
    before = memory.last_read.clone()
    memory.read(keys[:3], track=False)  # an untracked read leaves the bank as it was
    assert torch.equal(memory.last_read, before) and memory.reads == 0
    read = memory.read(keys[:3])  # rows 0, 1, 2 become the most recently used
    assert read.slots.tolist() == [0, 1, 2]
    assert memory.read_count[:3].tolist() == [1, 1, 1] and memory.read_count[3:].sum() == 0
    slots = memory.write(keys[8:9], row_values([8]))
    assert slots.tolist() == [3]  # row 3: the oldest row nobody read
    assert stored_rows(memory) == {0, 1, 2, 4, 5, 6, 7, 8}


def test_importance_policy_keeps_high_importance_entries() -> None:
    memory = AssociativeMemory(10, replacement="importance", **SMALL)
    keys = unit_keys(15, 16)
    # the important rows are the oldest: LRU would drop exactly them
    memory.write(keys[:5], row_values(range(5)), importance=torch.ones(5))
    memory.write(keys[5:10], row_values(range(5, 10)), importance=torch.zeros(5))
    memory.write(keys[10:], row_values(range(10, 15)), importance=torch.full((5,), 0.5))
    assert stored_rows(memory) == {0, 1, 2, 3, 4, 10, 11, 12, 13, 14}
    lru = AssociativeMemory(10, **SMALL)
    lru.write(keys[:5], row_values(range(5)), importance=torch.ones(5))
    lru.write(keys[5:10], row_values(range(5, 10)), importance=torch.zeros(5))
    lru.write(keys[10:], row_values(range(10, 15)))
    assert stored_rows(lru) == set(range(5, 15))


def test_forgetting_fires_past_the_threshold_and_frees_the_least_important() -> None:
    memory = AssociativeMemory(100, key_dim=16, value_dim=8, num_heads=2)
    rewards = np.random.default_rng(0).permutation(91).astype(np.float32)
    rewards[90] = 100.0  # the 91st row is too important to go
    keys = unit_keys(91, 16)
    memory.write(keys[:90], row_values(range(90)), importance=torch.from_numpy(rewards[:90]))
    assert len(memory) == 90 and memory.forgotten == 0  # 90 is not over floor(0.9 * 100)
    memory.write(keys[90:], row_values([90]), importance=torch.from_numpy(rewards[90:]))
    assert len(memory) == 91 - 15 and memory.forgotten == 15 and memory.evictions == 15
    # importance by hand: no reads (frequency term 0), reward and recency (steps 0..90) min-max
    score = 0.5 * (rewards - rewards.min()) / np.ptp(rewards) + 0.2 * np.arange(91) / 90
    assert stored_rows(memory) == set(np.argsort(score)[15:].tolist())
    left = memory.importance_scores()
    assert torch.isnan(left[~memory.used]).all() and bool((left[memory.used] >= 0).all())


def test_faiss_and_exact_agree_on_small_banks() -> None:
    pytest.importorskip("faiss")
    options = {"key_dim": 16, "value_dim": 8, "num_heads": 2, "top_k": 8, "temperature": 0.05}
    faiss_bank = AssociativeMemory(512, index="faiss", faiss_nlist=4, faiss_nprobe=4, **options)
    exact_bank = AssociativeMemory(512, index="exact", **options)
    keys = torch.randn(700, 16, generator=torch.Generator().manual_seed(0))
    values = torch.randn(700, 8, generator=torch.Generator().manual_seed(1))
    queries = keys[:64] + 0.3 * torch.randn(64, 16, generator=torch.Generator().manual_seed(2))
    for start, stop in ((0, 300), (300, 550), (550, 700)):  # trains, fills, forgets, replaces
        for bank in (faiss_bank, exact_bank):
            bank.write(keys[start:stop], values[start:stop], importance=keys[start:stop, 0])
        assert faiss_bank._faiss_index.ntotal == len(faiss_bank) == len(exact_bank)
        fast, exact = faiss_bank.read(queries), exact_bank.read(queries)
        assert torch.equal(fast.slots, exact.slots)
        torch.testing.assert_close(fast.values, exact.values, atol=1e-5, rtol=0)
    assert faiss_bank.forgotten > 0 and faiss_bank.evictions > faiss_bank.forgotten


def round_trip(memory: AssociativeMemory) -> dict:
    """state_dict -> checkpoint-safe tensors -> bytes (weights_only) -> state."""
    buffer = io.BytesIO()
    torch.save(to_tensors(memory.state_dict(), "memory"), buffer)
    buffer.seek(0)
    return from_tensors(torch.load(buffer, weights_only=True))


@pytest.mark.parametrize("index", ["exact", "faiss"])
@pytest.mark.parametrize("replacement", ["lru", "importance"])
def test_checkpoint_round_trip_is_bit_exact(index: str, replacement: str) -> None:
    if index == "faiss":
        pytest.importorskip("faiss")
    options = {
        "key_dim": 16,
        "value_dim": 8,
        "num_heads": 2,
        "top_k": 4,
        "replacement": replacement,
        "index": index,
        "faiss_nlist": 2,
        "seed": 3,
    }
    memory = AssociativeMemory(128, **options)
    keys = torch.randn(200, 16, generator=torch.Generator().manual_seed(0))
    values = torch.randn(200, 8, generator=torch.Generator().manual_seed(1))
    memory.write(keys[:100], values[:100], task=torch.arange(100) % 3)
    memory.read(keys[40:100], task=1)
    assert (memory._faiss_index is not None) == (index == "faiss")  # trained at 78 keys
    clone = AssociativeMemory(128, **options)
    clone.load_state_dict(round_trip(memory))
    assert (len(clone), clone.clock, clone.hits, clone.evictions) == (
        len(memory),
        memory.clock,
        memory.hits,
        memory.evictions,
    )
    for bank in (memory, clone):  # the same reads, then the same writes and evictions
        bank.read(keys[:50], task=2)
        bank.write(keys[100:200], values[100:200], importance=keys[100:200, 0], task=0)
    assert torch.equal(clone.read(keys).values, memory.read(keys).values)
    for name, tensor in memory.state_dict().items():
        if isinstance(tensor, torch.Tensor):
            assert torch.equal(clone.state_dict()[name], tensor), name
    assert clone.get_extra_state().keys() == memory.get_extra_state().keys()
    assert clone.evictions == memory.evictions and clone.forgotten == memory.forgotten


@pytest.mark.parametrize("top_k", [None, 4])
def test_gradient_reaches_queries_and_query_projection(top_k: int | None) -> None:
    memory = AssociativeMemory(32, key_dim=16, value_dim=8, num_heads=2, top_k=top_k)
    memory.write(unit_keys(20, 16), torch.randn(20, 8, generator=torch.Generator().manual_seed(1)))
    projection = torch.nn.Linear(12, 16)
    states = torch.randn(5, 12, generator=torch.Generator().manual_seed(2))
    queries = projection(states)
    queries.retain_grad()
    read = memory.read(queries)
    (read.values * torch.linspace(-1, 1, 8)).sum().backward()
    assert queries.grad is not None and bool(torch.isfinite(queries.grad).all())
    assert float(queries.grad.abs().sum()) > 0
    assert float(projection.weight.grad.abs().sum()) > 0
    assert list(memory.parameters()) == [] and not memory.keys.requires_grad


def test_empty_bank_reads_zeros_and_says_nothing_was_found() -> None:
    memory = AssociativeMemory(8, **SMALL)
    read = memory.read(torch.randn(3, 16).to(torch.bfloat16))
    assert read.values.dtype == torch.float32 and not bool(read.values.any())
    assert not bool(read.found.any()) and read.slots.tolist() == [-1, -1, -1]
    memory.write(unit_keys(1, 16), torch.ones(1, 8))
    assert bool(memory.read(torch.randn(3, 16)).found.all())


def test_hit_rate_counts_reads_whose_top_slot_has_the_query_task() -> None:
    memory = AssociativeMemory(8, **SMALL)
    keys = unit_keys(8, 16)
    assert memory.hit_rate is None
    memory.write(keys, row_values(range(8)), task=[0, 0, 0, 0, 1, 1, 1, 1])
    memory.read(keys[:4], task=0)  # 4 hits
    memory.read(keys[4:6], task=0)  # top slots hold task 1: 2 misses
    memory.read(keys[6:])  # no task: not counted
    assert (memory.hits, memory.hit_rate, memory.reads) == (4, 4 / 6, 8)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"capacity": 0}, ValueError, "capacity"),
        ({"num_heads": 3}, ValueError, "num_heads"),
        ({"replacement": "fifo"}, ValueError, "replacement must be one of 'lru', 'importance'"),
        ({"index": "annoy"}, ValueError, "index must be one of 'exact', 'faiss', 'auto'"),
        ({"temperature": 0.0}, ValueError, "temperature"),
        ({"forget_threshold": 1.5}, ValueError, "forget_threshold"),
        ({"forget_fraction": -0.1}, ValueError, "forget_fraction"),
        ({"importance_weights": (1.0, 2.0)}, ValueError, "importance_weights"),
        ({"top_k": 0}, ValueError, "top_k"),
        ({"index": "faiss", "top_k": None}, ValueError, "top_k"),
    ],
)
def test_bad_constructor_arguments_name_the_argument(kwargs: dict, error: type, match: str) -> None:
    options = {"capacity": 8, "key_dim": 16, "value_dim": 8, "num_heads": 2, **kwargs}
    if options.get("index") == "faiss":
        pytest.importorskip("faiss")
    with pytest.raises(error, match=match):
        AssociativeMemory(**options)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m: m.write(torch.zeros(2, 16, dtype=torch.float64), torch.zeros(2, 8)), TypeError, "keys must have dtype"),
        (lambda m: m.write(torch.zeros(2, 16, dtype=torch.int64), torch.zeros(2, 8)), TypeError, "keys"),
        (lambda m: m.write(np.zeros((2, 16), np.float32), torch.zeros(2, 8)), TypeError, "keys"),
        (lambda m: m.write(torch.zeros(2, 15), torch.zeros(2, 8)), ValueError, r"keys must have shape \[N, 16\]"),
        (lambda m: m.write(torch.full((2, 16), float("nan")), torch.zeros(2, 8)), ValueError, "keys must be finite"),
        (lambda m: m.write(torch.zeros(2, 16), torch.zeros(3, 8)), ValueError, "values"),
        (lambda m: m.write(torch.zeros(2, 16), torch.zeros(2, 8), importance=torch.zeros(3)), ValueError, "importance"),
        (lambda m: m.write(torch.zeros(2, 16), torch.zeros(2, 8), task=1.5), TypeError, "task"),
        (lambda m: m.read(torch.zeros(2, 8)), ValueError, "queries"),
        (lambda m: m.read(torch.zeros(16)), ValueError, "queries"),
    ],
)  # fmt: skip
def test_bad_inputs_name_the_argument(call, error: type, match: str) -> None:
    memory = AssociativeMemory(8, **SMALL)
    with pytest.raises(error, match=match):
        call(memory)
    assert len(memory) == 0 and memory.writes == 0


def test_faiss_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(ImportError, match=r"pip install 'trmgym\[faiss\]'"):
        AssociativeMemory(8, index="faiss", **SMALL)
    with pytest.warns(UserWarning, match="faiss"):
        auto = AssociativeMemory(100_000, key_dim=8, value_dim=8, index="auto")
    assert auto.index == "exact"


def test_auto_index_picks_faiss_from_100k_slots() -> None:
    pytest.importorskip("faiss")
    assert AssociativeMemory(99_999, key_dim=8, value_dim=8).index == "exact"
    assert AssociativeMemory(100_000, key_dim=8, value_dim=8).index == "faiss"


# ------------------------------------------------------------------------------- task balance
def task_counts(memory: AssociativeMemory) -> dict[int, int]:
    tasks, counts = torch.unique(memory.task[memory.used], return_counts=True)
    return dict(zip(tasks.tolist(), counts.tolist()))


@pytest.mark.parametrize("replacement", ["lru", "importance"])
def test_balanced_replacement_keeps_every_tasks_share_under_a_flood_of_new_writes(
    replacement: str,
) -> None:
    memory = AssociativeMemory(24, **SMALL, replacement=replacement, balance_tasks=True)
    row = 0
    for task in range(3):  # each task writes ten times the capacity, 5 rows at a time
        for _ in range(48):
            memory.write(unit_keys(5, 16, seed=row), row_values(range(row, row + 5)), task=task)
            row += 5
        counts = task_counts(memory)
        assert len(memory) == 24 and sorted(counts) == list(range(task + 1))
        assert all(count == 24 // (task + 1) for count in counts.values()), counts
    # within a task the policy still decides: under LRU task 2 keeps its newest rows
    if replacement == "lru":
        newest = set(range(row - 8, row))
        assert newest <= stored_rows(memory)
    # without balance the last task's flood replaces everything
    plain = AssociativeMemory(24, **SMALL, replacement=replacement)
    for task in range(3):
        for k in range(48):
            plain.write(unit_keys(5, 16, seed=k), row_values(range(5)), task=task)
    assert task_counts(plain) == {2: 24}


def test_balanced_forgetting_takes_from_the_tasks_over_their_share() -> None:
    kwargs = {**SMALL, "forget_threshold": 0.9, "forget_fraction": 0.25}
    memory = AssociativeMemory(40, **kwargs, balance_tasks=True)
    memory.write(unit_keys(31, 16), row_values(range(31)), task=0)
    # 37 slots in use > floor(0.9 * 40): forgetting frees 10, leaving 27 = 13 per task; task 0
    # is 18 over that share, task 1 (6 slots) under it, so all 10 come from task 0
    memory.write(unit_keys(6, 16, seed=1), row_values(range(100, 106)), task=1)
    assert len(memory) == 27 and task_counts(memory) == {0: 21, 1: 6}
    with pytest.raises(ValueError, match="balance_tasks must be true or false"):
        AssociativeMemory(8, **SMALL, balance_tasks="yes")
