"""An associative key/value memory bank read by multi-head attention (the TRM cycle's memory).

A fixed number of preallocated slots holds ``(key, value)`` pairs with per-slot metadata (in use,
written-at and last-read steps, read count, reward, task). A read attends from each query over the
stored keys and returns the attention-weighted values; what is kept when the bank is full is
decided by a replacement policy and by autonomous forgetting. The lineage:

- Memorizing Transformers (Wu et al. 2022, "Memorizing Transformers"): a non-differentiable
  key/value store read by attention over the top-k (k = 32) keys found by approximate kNN search,
  gradients flowing only into the queries. This bank reads the same way.
- kNN-LM (Khandelwal et al. 2020, "Generalization through Memorization: Nearest Neighbor Language
  Models"): a large datastore queried with faiss; the large-capacity mode below.
- Memory-based parameter adaptation (Sprechmann et al. 2018, "Memory-based Parameter Adaptation"):
  an episodic memory of past states written during training and read to adapt to a task — the
  continual-learning use in trmgym (states of solved puzzles, read inside every reasoning cycle).

**Reads.** ``key_dim`` and ``value_dim`` split into ``num_heads`` heads. With ``normalize=True``
(the default) each head's query and key sub-vectors are L2-normalised first (query-key
normalisation), so head scores are cosines and one temperature fits any key scale; without it, a
random unit-norm 64-d key cut into eight 8-d heads is *not* its own best match in most heads
(measured: 0% of reads return their value with cosine > 0.99). Each read first picks ``top_k``
candidate slots per query by the summed head scores (the inner product of the head-normalised
query and key; exact in torch, or approximate with faiss), then per head
``softmax(q_h . k_h / (sqrt(d_h) * temperature))`` over the candidates, recomputed in torch so
gradients reach the queries; the read vector concatenates the heads' weighted values.
``top_k=None`` attends over every used slot (exact index only). The default temperature 0.005
(an inverse scale of ~71 on the cosines at ``d_h = 8``) makes a stored key return its own value:
at 4,096 random unit-norm 64-d keys every read's top slot is its own and its value cosine exceeds
0.99 (``benchmarks/bench_memory.py``); full attention needs ~0.002 for the same.

**Writes** fill free slots first (lowest index first); when the bank is full they replace, by
``replacement``: ``"lru"`` the least recently used slots (last read or written), ``"importance"``
the lowest :meth:`importance_scores`. Ties are broken at random with the bank's own generator.
Identical keys are not merged: each write takes its own slot, and a read then shares its weight
between the copies (their values averaged).

**Autonomous forgetting** fires on write only: after a write leaves more than
``floor(forget_threshold * capacity)`` slots in use, the ``round(forget_fraction * capacity)``
least important slots (by :meth:`importance_scores`, whatever the replacement policy) are freed —
possibly some just written.

**Task balance** (``balance_tasks=True``; a class-balanced episodic memory as in Chaudhry et
al. 2019, "On Tiny Episodic Memories in Continual Learning"): with several tasks' states in the
bank, recency alone would let a new task's many writes replace every older task's slots. Then a
replacement or a forgetting first takes, in the policy's order, the slots by which a task exceeds
its share (``slots in use afterwards // tasks present``, the incoming rows' tasks included), and
only then the policy's order over all slots.

**The clock** counts steps: a write of n rows stamps them ``clock, ..., clock + n - 1`` (so rows of
one write are ordered, oldest first) and advances it by n; a read advances it by one and stamps its
queries' top slots.

**Large capacity** (``index="faiss"``, or ``"auto"`` at ``capacity >= 100_000`` when faiss is
installed): candidates come from a faiss ``IndexIVFFlat`` (inner product; ``faiss_nlist`` lists,
default ``round(sqrt(capacity))``, ``faiss_nprobe`` probed). It is trained (k-means on up to
``64 * nlist`` used keys sampled with the bank's generator) once ``39 * nlist`` slots are in use —
until then reads search exactly — and kept consistent incrementally: a write removes the slots it
overwrites and adds the new keys under their slot ids, forgetting removes the freed slots (each
``remove_ids`` scans the lists: ~10 ms at 100k). Training costs ~1-4 s at 100k x 64;
:meth:`rebuild_index` retrains after a shift in the keys. The index lives on the CPU (queries are
copied there); checkpoints hold its centroids, never the pickled index, and loading rebuilds it.

The read's bookkeeping (stamps, counts, hit statistics) mutates buffers in place; pass
``track=False`` for a pure read (evaluation, ``torch.func`` transforms). Reads check shapes and
dtypes but never tensor values (no host syncs on the exact path); writes reject non-finite input.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trmgym.checks import boolean, positive_int

REPLACEMENTS = ("lru", "importance")
INDEXES = ("exact", "faiss", "auto")
#: ``index="auto"`` picks faiss from this capacity on (when faiss is installed)
AUTO_FAISS_CAPACITY = 100_000
#: faiss's advice: at least 39 training points per k-means centroid
_POINTS_PER_LIST = 39
_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
#: query rows per block of the exact candidate search (bounds the [rows, capacity] score matrix)
_SEARCH_ELEMENTS = 1 << 24


class MemoryRead(NamedTuple):
    """What :meth:`AssociativeMemory.read` returns.

    Attributes:
        values: ``[B, value_dim]`` float32 read vectors; zeros where nothing was found.
        found: ``[B]`` bool, whether the row attended over at least one slot (gate on it).
        slots: ``[B]`` int64 top slot per row (highest summed head score), ``-1`` where not found.
    """

    values: torch.Tensor
    found: torch.Tensor
    slots: torch.Tensor


def _import_faiss() -> Any:
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "index='faiss' needs the faiss package, which is not importable: "
            "pip install 'trmgym[faiss]' (or use index='exact')"
        ) from error
    return faiss


def _faiss_available() -> bool:
    try:
        _import_faiss()
    except ImportError:
        return False
    return True


class AssociativeMemory(nn.Module):
    """A key/value bank with multi-head attention reads, LRU/importance replacement and forgetting.

    Args:
        capacity: slots in the bank.
        key_dim: width of keys and queries (divisible by ``num_heads``).
        value_dim: width of values and read vectors (divisible by ``num_heads``).
        num_heads: attention heads of a read.
        temperature: divides the head scores (after ``sqrt(d_h)``); smaller is sharper.
        replacement: ``"lru"`` or ``"importance"``, what a write into a full bank replaces.
        forget_threshold: forgetting fires when a write leaves more than
            ``floor(forget_threshold * capacity)`` slots in use; in (0, 1], 1 disables it.
        forget_fraction: share of the capacity forgetting frees, in [0, 1].
        importance_weights: ``(w_f, w_r, w_c)`` of frequency, reward and recency in
            :meth:`importance_scores`; non-negative.
        index: ``"exact"`` (torch), ``"faiss"`` (approximate candidates) or ``"auto"``.
        balance_tasks: replacement and forgetting take first from the tasks holding more than
            their share of the slots (a task-balanced memory): see "Task balance" below.
        top_k: candidate slots each read attends over; ``None``: all (``index="exact"`` only).
        normalize: L2-normalise each head's query and key sub-vectors (cosine head scores).
        faiss_nlist: inverted lists of the faiss index (``None``: ``round(sqrt(capacity))``).
        faiss_nprobe: lists a faiss search visits.
        seed: seeds the bank's generator (tie-breaking, faiss training sample and k-means).
        device: where the buffers live (``.to(device)`` moves them later).

    Raises:
        ValueError: a bad size, string or range, naming the argument and what is allowed.
        ImportError: ``index="faiss"`` without faiss installed.
    """

    def __init__(
        self,
        capacity: int = 4096,
        *,
        key_dim: int,
        value_dim: int,
        num_heads: int = 8,
        temperature: float = 0.005,
        replacement: str = "lru",
        forget_threshold: float = 0.9,
        forget_fraction: float = 0.15,
        importance_weights: Sequence[float] = (0.3, 0.5, 0.2),
        index: str = "auto",
        top_k: int | None = 32,
        normalize: bool = True,
        balance_tasks: bool = False,
        faiss_nlist: int | None = None,
        faiss_nprobe: int = 16,
        seed: int = 0,
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__()
        self.capacity = positive_int(capacity, "capacity")
        self.key_dim = positive_int(key_dim, "key_dim")
        self.value_dim = positive_int(value_dim, "value_dim")
        self.num_heads = positive_int(num_heads, "num_heads")
        for name, width in (("key_dim", self.key_dim), ("value_dim", self.value_dim)):
            if width % self.num_heads:
                raise ValueError(
                    f"num_heads={num_heads} must divide {name}={width} (each head reads an "
                    f"equal slice); allowed: a divisor of both key_dim and value_dim"
                )
        self.temperature = _in_range(temperature, "temperature", low=0.0, low_open=True)
        self.replacement = _choice(replacement, "replacement", REPLACEMENTS)
        self.forget_threshold = _in_range(forget_threshold, "forget_threshold", 0.0, 1.0, True)
        self.forget_fraction = _in_range(forget_fraction, "forget_fraction", 0.0, 1.0)
        weights = tuple(importance_weights) if isinstance(importance_weights, Sequence) else ()
        if len(weights) != 3:
            raise ValueError(
                f"importance_weights must be three non-negative numbers (frequency, reward, "
                f"recency), got {importance_weights!r}"
            )
        self.importance_weights = tuple(
            _in_range(w, "importance_weights", low=0.0) for w in weights
        )
        self.top_k = positive_int(top_k, "top_k", allow_none=True)
        self.normalize = boolean(normalize, "normalize")
        if not isinstance(balance_tasks, bool):
            raise ValueError(f"balance_tasks must be true or false, got {balance_tasks!r}")
        self.balance_tasks = balance_tasks
        self.faiss_nprobe = positive_int(faiss_nprobe, "faiss_nprobe")
        self.faiss_nlist = positive_int(faiss_nlist, "faiss_nlist", allow_none=True) or max(
            1, round(math.sqrt(self.capacity))
        )
        self.index = self._resolve_index(_choice(index, "index", INDEXES))
        if self.index == "faiss" and self.top_k is None:
            raise ValueError("index='faiss' needs top_k (an int >= 1); top_k=None is exact-only")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise ValueError(f"seed must be an int, got {seed!r}")
        self.seed = int(seed)
        #: tie-breaking and faiss training draws (on the CPU wherever the buffers live)
        self.generator = torch.Generator().manual_seed(self.seed)
        # fires when a write leaves more than this many slots in use
        self._forget_above = math.floor(round(self.forget_threshold * self.capacity, 9))
        self._forget_count = round(self.forget_fraction * self.capacity)

        slots, long = (self.capacity,), dict(dtype=torch.int64, device=device)
        self.register_buffer("keys", torch.zeros(*slots, self.key_dim, device=device))
        self.register_buffer("values", torch.zeros(*slots, self.value_dim, device=device))
        self.register_buffer("used", torch.zeros(slots, dtype=torch.bool, device=device))
        self.register_buffer("written_at", torch.full(slots, -1, **long))
        self.register_buffer("last_read", torch.full(slots, -1, **long))
        self.register_buffer("read_count", torch.zeros(slots, **long))
        self.register_buffer("reward", torch.zeros(slots, device=device))
        self.register_buffer("task", torch.full(slots, -1, **long))
        # [hits, reads with a task]: on the device so a read never waits for the host
        self.register_buffer("_hit_counts", torch.zeros(2, **long), persistent=False)
        self.clock = 0
        self.writes = self.reads = self.evictions = self.forgotten = 0
        self._size = 0
        self._faiss_index: Any = None
        self._faiss_quantizer: Any = None

    # ------------------------------------------------------------------------- properties
    def __len__(self) -> int:
        return self._size

    @property
    def occupancy(self) -> float:
        """Share of the slots in use, in [0, 1]."""
        return self._size / self.capacity

    @property
    def room(self) -> int:
        """Slots that can be in use without autonomous forgetting firing on a write."""
        return self.capacity if self._forget_count == 0 else self._forget_above

    @property
    def hits(self) -> int:
        """Reads (rows) with a task whose top slot was written with the same task."""
        return int(self._hit_counts[0])

    @property
    def hit_rate(self) -> float | None:
        """``hits`` over rows read with a task (``memory/hit_rate``); ``None`` before any."""
        hits, asked = self._hit_counts.tolist()
        return hits / asked if asked else None

    # ------------------------------------------------------------------------------ write
    @torch.no_grad()
    def write(
        self,
        keys: torch.Tensor,
        values: torch.Tensor,
        importance: torch.Tensor | Sequence[float] | None = None,
        task: int | torch.Tensor | Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Store ``N`` key/value rows; then forget if the bank is over its threshold.

        Args:
            keys: ``[N, key_dim]`` float32/float16/bfloat16 (stored as float32), finite.
            values: ``[N, value_dim]``, same dtypes, finite.
            importance: ``[N]`` reward-like scores (the reward term of
                :meth:`importance_scores`); ``None``: 0.
            task: an int or ``[N]`` ints, the rows' task ids; ``None``: -1 (unknown, never a hit).

        Returns:
            ``[n]`` int64 slots written, row order (``n = min(N, capacity)``: of more rows than
            slots only the last ``capacity`` are kept). Forgetting may have freed some of them
            at once (see ``used``).
        """
        keys = self._rows(keys, "keys", self.key_dim, check_finite=True)
        values = self._rows(values, "values", self.value_dim, check_finite=True)
        count = len(keys)
        if len(values) != count:
            raise ValueError(f"values must have one row per key ({count}), got {len(values)}")
        reward = self._per_row(importance, count, "importance", torch.float32, 0.0)
        tasks = self._per_row(task, count, "task", torch.int64, -1)
        if count > self.capacity:  # only the newest rows fit
            keys, values = keys[-self.capacity :], values[-self.capacity :]
            reward, tasks, count = reward[-self.capacity :], tasks[-self.capacity :], self.capacity
        if count == 0:
            return torch.zeros(0, dtype=torch.int64, device=self.keys.device)
        free = torch.nonzero(~self.used).squeeze(1)[:count]
        replaced = self._lowest(  # a replacing write leaves the bank full
            count - len(free), self._replacement_scores(), incoming=tasks, after=self.capacity
        )
        slots = torch.cat((free, replaced))
        self.keys[slots], self.values[slots] = keys, values
        self.used[slots] = True
        self.written_at[slots] = self.clock + torch.arange(count, device=slots.device)
        self.last_read[slots], self.read_count[slots] = -1, 0
        self.reward[slots], self.task[slots] = reward, tasks
        self.clock += count
        self.writes += count
        self.evictions += len(replaced)
        self._size += len(free)
        self._index_replace(replaced, slots)
        self._forget()
        return slots

    @torch.no_grad()
    def clear(self) -> int:
        """Free every slot (an episodic bank between tasks); the counters of writes, reads,
        hits, evictions and the clock are kept. Returns the slots freed."""
        used = torch.nonzero(self.used).squeeze(1)
        if len(used):
            self._clear(used)
            self._index_replace(used, used[:0])
        return int(len(used))

    def _forget(self) -> None:
        """Free the least important slots when the bank is over its threshold (after a write)."""
        if self._size <= self._forget_above or self._forget_count == 0:
            return
        count = min(self._forget_count, self._size)
        freed = self._lowest(count, self.importance_scores(), after=self._size - count)
        self._clear(freed)
        self.evictions += len(freed)
        self.forgotten += len(freed)
        self._index_replace(freed, freed[:0])

    def _clear(self, slots: torch.Tensor) -> None:
        self.used[slots] = False
        self.keys[slots], self.values[slots], self.reward[slots] = 0.0, 0.0, 0.0
        self.written_at[slots], self.last_read[slots], self.task[slots] = -1, -1, -1
        self.read_count[slots] = 0
        self._size -= len(slots)

    # ------------------------------------------------------------------------ replacement
    @torch.no_grad()
    def importance_scores(self) -> torch.Tensor:
        """``[capacity]`` float32 importance of each used slot (NaN where unused).

        ``w_f * F + w_r * R + w_c * C`` with ``(w_f, w_r, w_c) = importance_weights`` and each
        term min-max normalised over the used slots (``(x - min) / (max - min)``, 0 when all are
        equal): F the read count (frequency), R the reward written with the slot, C its recency
        (the later of its write and last-read steps).
        """
        if self._size == 0:
            return torch.full((self.capacity,), math.nan, device=self.keys.device)
        frequency, reward, recency = self.read_count, self.reward, self._recency()
        weights = self.importance_weights
        score = torch.zeros(self.capacity, device=self.keys.device)
        for weight, term in zip(weights, (frequency, reward, recency)):
            if weight:
                score += weight * self._min_max(term)
        return score.masked_fill(~self.used, float("nan"))

    def _recency(self) -> torch.Tensor:
        return torch.maximum(self.written_at, self.last_read)

    def _min_max(self, term: torch.Tensor) -> torch.Tensor:
        """``term`` scaled to [0, 1] over the used slots (0 when they are all equal)."""
        if term.dtype.is_floating_point:
            big = torch.finfo(term.dtype).max
        else:
            big = torch.iinfo(term.dtype).max
        low = term.masked_fill(~self.used, big).min()
        high = term.masked_fill(~self.used, -big).max()
        span = high - low
        # subtract in the term's own dtype (int64 steps stay exact), then scale in float32
        scaled = (term - low).float() / torch.where(span > 0, span, 1).float()
        return torch.where(span > 0, scaled, torch.zeros_like(scaled))

    def _replacement_scores(self) -> torch.Tensor:
        return self._recency() if self.replacement == "lru" else self.importance_scores()

    def _lowest(
        self,
        count: int,
        scores: torch.Tensor,
        *,
        incoming: torch.Tensor | None = None,
        after: int = 0,
    ) -> torch.Tensor:
        """The ``count`` used slots with the lowest scores, ties broken by the generator; with
        :attr:`balance_tasks`, first those beyond their task's share of the ``after`` slots in
        use afterwards (``incoming``: the tasks of the rows being written, which count towards
        the tasks present)."""
        if count <= 0:
            return torch.zeros(0, dtype=torch.int64, device=self.keys.device)
        top = math.inf if scores.dtype.is_floating_point else torch.iinfo(scores.dtype).max
        scores = scores.masked_fill(~self.used, top)
        shuffle = torch.randperm(self.capacity, generator=self.generator).to(scores.device)
        order = shuffle[torch.sort(scores[shuffle], stable=True).indices]
        if self.balance_tasks:
            order = self._balanced(order, incoming, after)
        return order[:count]

    def _balanced(
        self, order: torch.Tensor, incoming: torch.Tensor | None, after: int
    ) -> torch.Tensor:
        """``order`` (all slots, most evictable first) with each task's excess moved to the
        front: a task's excess is its most evictable slots beyond ``after // tasks present``,
        its incoming rows counted among its slots."""
        used = self.used[order]
        tasks = self.task[order]
        present = tasks[used]
        if incoming is not None and len(incoming):
            present = torch.cat((present, incoming.to(present.device)))
        quota = after // max(1, len(torch.unique(present)))
        big = torch.iinfo(torch.int64).max
        grouping = torch.where(used, tasks, big)  # unused slots last, as their own group
        by_task = torch.sort(grouping, stable=True).indices  # grouped, evictable first within
        groups, sizes = torch.unique_consecutive(grouping[by_task], return_counts=True)
        starts = torch.repeat_interleave(torch.cumsum(sizes, 0) - sizes, sizes)
        rank = torch.arange(len(order), device=order.device) - starts
        held = sizes.clone()  # each task's slots once the incoming rows are in
        if incoming is not None and len(incoming):
            arriving, counts = torch.unique(incoming.to(groups.device), return_counts=True)
            match = groups[:, None] == arriving[None, :]
            held += (match.long() * counts[None, :]).sum(dim=1)
        excess_sorted = rank < torch.repeat_interleave(held, sizes) - quota
        excess = torch.zeros_like(used)
        excess[by_task] = excess_sorted
        excess &= used
        return torch.cat((order[excess], order[~excess]))

    # ------------------------------------------------------------------------------- read
    def forward(
        self, queries: torch.Tensor, task: int | torch.Tensor | Sequence[int] | None = None
    ) -> torch.Tensor:
        """``read(queries, task).values``."""
        return self.read(queries, task).values

    def read(
        self,
        queries: torch.Tensor,
        task: int | torch.Tensor | Sequence[int] | None = None,
        *,
        track: bool = True,
        scope: int | torch.Tensor | Sequence[int] | None = None,
    ) -> MemoryRead:
        """Multi-head attention from each query over its candidate slots.

        Args:
            queries: ``[B, key_dim]`` float32/float16/bfloat16; gradients flow into them (the
                bank's keys and values are buffers, never trained).
            task: an int or ``[B]`` ints, the queries' tasks; a row whose top slot has the same
                task counts as a hit (:attr:`hit_rate`).
            track: stamp the top slots as read (``last_read``, ``read_count``) and count reads
                and hits; ``False`` leaves the bank untouched.
            scope: an int or ``[B]`` ints: each row reads only the slots written with that task
                id (several episodic banks in one, e.g. one per task of a meta-batch); a row
                with no such slot reads zeros (``found`` False). ``None``: every slot. Scoped
                candidates are always searched exactly (a faiss index is not consulted).

        Returns:
            :class:`MemoryRead`: ``values`` (zeros for an empty bank), ``found``, ``slots``.
        """
        queries = self._rows(queries, "queries", self.key_dim)
        count = len(queries)
        tasks = None if task is None else self._per_row(task, count, "task", torch.int64, -1)
        if scope is not None:
            scope = self._per_row(scope, count, "scope", torch.int64, -1)
        device = self.keys.device
        if self._size == 0 or count == 0:
            result = MemoryRead(
                torch.zeros(count, self.value_dim, device=device),
                torch.zeros(count, dtype=torch.bool, device=device),
                torch.full((count,), -1, dtype=torch.int64, device=device),
            )
        else:
            with torch.autocast(device.type, enabled=False):  # sharp softmax: keep float32
                heads = self._heads(queries.float())
                result = self._attend(heads, scope)
        if track:
            self._track(result, tasks)
        return result

    def _heads(self, rows: torch.Tensor) -> torch.Tensor:
        """``[..., key_dim]`` -> ``[..., num_heads, d_h]``, normalised per head if asked."""
        heads = rows.unflatten(-1, (self.num_heads, -1))
        return F.normalize(heads, dim=-1) if self.normalize else heads

    def _attend(self, queries: torch.Tensor, scope: torch.Tensor | None = None) -> MemoryRead:
        """Attention of ``[B, H, d_h]`` head queries over each row's candidates (the slots of
        its ``scope`` task only, when given)."""
        count, scale = len(queries), 1.0 / (math.sqrt(queries.shape[-1]) * self.temperature)
        values = self.values.unflatten(-1, (self.num_heads, -1))  # [C, H, d_v]
        if self.top_k is None:  # every slot, unused ones masked
            logits = torch.einsum("bhd,chd->bhc", queries, self._heads(self.keys)) * scale
            candidates = torch.arange(self.capacity, device=values.device).expand(count, -1)
            valid = self.used.expand(count, -1)
            if scope is not None:
                valid = valid & (self.task[None, :] == scope[:, None])
            unmasked = valid | ~valid.any(dim=1, keepdim=True)  # no NaN for a row with no slot
            weights = torch.softmax(logits.masked_fill(~unmasked[:, None], -math.inf), dim=-1)
            read = torch.einsum("bhc,chd->bhd", weights, values)
        else:
            if self._faiss_index is not None and scope is None:
                candidates, valid = self._faiss_candidates(queries.detach())
                keys = self._heads(self.keys[candidates.clamp(min=0)])  # [B, k, H, d_h]
            else:
                all_keys = self._heads(self.keys)
                candidates = self._exact_candidates(queries.detach(), all_keys, scope)
                valid = torch.ones_like(candidates, dtype=torch.bool)
                if scope is not None:
                    valid = self.used[candidates] & (self.task[candidates] == scope[:, None])
                keys = all_keys[candidates]
            logits = torch.einsum("bhd,bkhd->bhk", queries, keys) * scale
            # a row without candidates (faiss only) attends over its padding, then reads zeros:
            # masking all of it would give NaN weights and NaN gradients
            unmasked = valid | ~valid.any(dim=1, keepdim=True)
            weights = torch.softmax(logits.masked_fill(~unmasked[:, None], -math.inf), dim=-1)
            read = torch.einsum("bhk,bkhd->bhd", weights, values[candidates.clamp(min=0)])
        found = valid.any(dim=1)
        read = torch.where(found[:, None, None], read, torch.zeros_like(read))
        scores = logits.detach().sum(dim=1).masked_fill(~valid, -math.inf)  # summed heads
        top = candidates.gather(1, scores.argmax(dim=1, keepdim=True)).squeeze(1)
        return MemoryRead(read.flatten(1), found, torch.where(found, top, -1))

    @torch.no_grad()
    def _exact_candidates(
        self, queries: torch.Tensor, keys: torch.Tensor, scope: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[B, k]`` used slots (of the row's ``scope`` task) with the highest summed head
        scores, best first (out-of-scope slots fill the tail where a scope has fewer than k)."""
        k, flat, keys = min(self.top_k, self._size), queries.flatten(1), keys.flatten(1)
        blocks = []
        rows = max(1, _SEARCH_ELEMENTS // self.capacity)
        for i, block in enumerate(flat.split(rows)):
            scores = block @ keys.T
            if self._size < self.capacity:
                scores.masked_fill_(~self.used, -math.inf)
            if scope is not None:
                outside = self.task[None, :] != scope[i * rows : i * rows + len(block), None]
                scores.masked_fill_(outside, -math.inf)
            blocks.append(scores.topk(k, dim=1).indices)
        return torch.cat(blocks)

    @torch.no_grad()
    def _faiss_candidates(self, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, k]`` candidate slots from the faiss index (``-1``: none) and their validity."""
        k = min(self.top_k, self._size)
        found = self._faiss_index.search(queries.flatten(1).cpu().numpy(), k)[1]
        candidates = torch.from_numpy(found).to(queries.device)
        return candidates, candidates >= 0

    @torch.no_grad()
    def _track(self, result: MemoryRead, tasks: torch.Tensor | None) -> None:
        """A read's bookkeeping: advance the clock, stamp the top slots, count hits."""
        self.clock += 1
        self.reads += len(result.found)
        top = result.slots.clamp(min=0)
        stamp = torch.where(result.found, self.clock - 1, -1)
        self.last_read.scatter_reduce_(0, top, stamp, reduce="amax")
        self.read_count.index_add_(0, top, result.found.long())
        if tasks is not None:
            asked = tasks >= 0
            hit = result.found & asked & (self.task[top] == tasks)
            self._hit_counts += torch.stack((hit.sum(), asked.sum()))

    # ------------------------------------------------------------------------- faiss index
    def _resolve_index(self, index: str) -> str:
        if index == "faiss":
            _import_faiss()
            return "faiss"
        if index == "auto" and self.capacity >= AUTO_FAISS_CAPACITY:
            if _faiss_available():
                return "faiss"
            warnings.warn(
                f"index='auto' at capacity {self.capacity} would use faiss, which is not "
                "installed; searching exactly (slow at this size): pip install 'trmgym[faiss]'",
                stacklevel=3,
            )
        return "exact"

    def _index_replace(self, removed: torch.Tensor, added: torch.Tensor) -> None:
        """Keep the faiss index in step with a write or a forgetting; train it when due."""
        if self.index != "faiss":
            return
        if self._faiss_index is None:
            if self._size >= _POINTS_PER_LIST * self.faiss_nlist:
                self.rebuild_index()
            return
        if len(removed):
            self._faiss_index.remove_ids(removed.cpu().numpy())
        if len(added):
            self._faiss_index.add_with_ids(self._search_rows(added), added.cpu().numpy())

    def _search_rows(self, slots: torch.Tensor) -> np.ndarray:
        """The keys of ``slots`` as faiss searches them: head-normalised, float32, on the CPU."""
        rows = self._heads(self.keys[slots]).flatten(1)
        return np.ascontiguousarray(rows.cpu().numpy(), dtype=np.float32)

    @torch.no_grad()
    def rebuild_index(self) -> None:
        """Retrain the faiss index's lists on the keys in use now, and refill it.

        k-means (``faiss_nlist`` centroids) on up to ``64 * nlist`` used keys drawn with the
        bank's generator. Does nothing for ``index="exact"`` or with fewer used slots than lists.
        """
        if self.index != "faiss" or self._size < self.faiss_nlist:
            return
        faiss = _import_faiss()
        used = torch.nonzero(self.used).squeeze(1).cpu()
        sample = used[torch.randperm(len(used), generator=self.generator)[: 64 * self.faiss_nlist]]
        kmeans_seed = int(torch.randint(2**31 - 1, (1,), generator=self.generator))
        kmeans = faiss.Kmeans(
            self.key_dim, self.faiss_nlist, niter=20, seed=kmeans_seed, spherical=self.normalize
        )
        kmeans.train(self._search_rows(sample.to(self.keys.device)))
        self._build_index(torch.from_numpy(kmeans.centroids.copy()))

    def _build_index(self, centroids: torch.Tensor) -> None:
        """An IVF index over the used slots with the given (trained) centroids."""
        faiss = _import_faiss()
        quantizer = faiss.IndexFlatIP(self.key_dim)
        quantizer.add(np.ascontiguousarray(centroids.numpy(), dtype=np.float32))
        index = faiss.IndexIVFFlat(
            quantizer, self.key_dim, len(centroids), faiss.METRIC_INNER_PRODUCT
        )
        index.nprobe = self.faiss_nprobe
        used = torch.nonzero(self.used).squeeze(1)
        index.add_with_ids(self._search_rows(used), used.cpu().numpy())
        self._faiss_index, self._faiss_quantizer = index, quantizer

    def _centroids(self) -> torch.Tensor:
        if self._faiss_index is None:
            return torch.zeros(0, self.key_dim)
        quantizer = _import_faiss().downcast_index(self._faiss_index.quantizer)
        return torch.from_numpy(quantizer.reconstruct_n(0, self._faiss_index.nlist))

    # -------------------------------------------------------------------------- checkpoint
    def get_extra_state(self) -> dict[str, Any]:
        """Counters, clock, generator and faiss centroids (saved with the buffers)."""
        return {
            "clock": self.clock,
            "writes": self.writes,
            "reads": self.reads,
            "evictions": self.evictions,
            "forgotten": self.forgotten,
            "hit_counts": self._hit_counts.cpu().clone(),
            "generator": self.generator.get_state(),
            "index_centroids": self._centroids(),
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_extra_state` (after the buffers loaded); rebuilds the index."""
        for name in ("clock", "writes", "reads", "evictions", "forgotten"):
            setattr(self, name, int(state[name]))
        self._hit_counts.copy_(state["hit_counts"])
        self.generator.set_state(state["generator"])
        self._size = int(self.used.sum())
        self._faiss_index = self._faiss_quantizer = None
        centroids = state["index_centroids"]
        if self.index == "faiss" and len(centroids):
            self._build_index(centroids.float())

    def extra_repr(self) -> str:
        return (
            f"capacity={self.capacity}, key_dim={self.key_dim}, value_dim={self.value_dim}, "
            f"num_heads={self.num_heads}, temperature={self.temperature}, "
            f"replacement={self.replacement!r}, index={self.index!r}, top_k={self.top_k}"
        )

    # ---------------------------------------------------------------------- argument checks
    def _rows(
        self, rows: Any, name: str, width: int, *, check_finite: bool = False
    ) -> torch.Tensor:
        """``rows`` checked as a ``[N, width]`` float tensor, as float32 on the bank's device."""
        if not isinstance(rows, torch.Tensor):
            raise TypeError(
                f"{name} must be a torch.Tensor of shape [N, {width}], got {type(rows).__name__}"
            )
        if rows.dtype not in _FLOAT_DTYPES:
            raise TypeError(
                f"{name} must have dtype float32, float16 or bfloat16 (stored and read as "
                f"float32), got {rows.dtype}"
            )
        if rows.dim() != 2 or rows.shape[1] != width:
            raise ValueError(f"{name} must have shape [N, {width}], got {list(rows.shape)}")
        if check_finite and not bool(torch.isfinite(rows).all()):
            raise ValueError(f"{name} must be finite; got NaN or inf")
        return rows.to(self.keys.device, torch.float32)

    def _per_row(
        self, value: Any, count: int, name: str, dtype: torch.dtype, default: float
    ) -> torch.Tensor:
        """A per-row ``[count]`` tensor from ``None`` (default), a scalar or ``count`` values."""
        device = self.keys.device
        if value is None:
            return torch.full((count,), default, dtype=dtype, device=device)
        integer = dtype == torch.int64
        kind = "ints" if integer else "finite numbers"
        if isinstance(value, numbers.Number) and not isinstance(value, bool):
            if integer and not isinstance(value, numbers.Integral):
                raise TypeError(f"{name} must be an int or [{count}] ints, got {value!r}")
            value = [value] * count
        try:
            tensor = torch.as_tensor(value, device=device)
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(f"{name} must be None, a number or [{count}] {kind}") from error
        if tensor.dtype == torch.bool or (integer and tensor.dtype.is_floating_point):
            raise TypeError(f"{name} must be [{count}] {kind}, got dtype {tensor.dtype}")
        if tuple(tensor.shape) != (count,):
            raise ValueError(f"{name} must have shape [{count}], got {list(tensor.shape)}")
        if not integer and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{name} must be finite; got NaN or inf")
        return tensor.to(dtype)


def _choice(value: Any, name: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return str(value)


def _in_range(
    value: Any,
    name: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    """``value`` as a finite float in ``[low, high]`` (``(low, high]`` when ``low_open``)."""
    bad = isinstance(value, bool) or not isinstance(value, numbers.Real)
    if not bad:
        value = float(value)
        bad = not math.isfinite(value)
        bad |= low is not None and (value <= low if low_open else value < low)
        bad |= high is not None and value > high
    if bad:
        left = "(" if low_open else "["
        span = f"{left}{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise ValueError(f"{name} must be a number in {span}, got {value!r}")
    return value
