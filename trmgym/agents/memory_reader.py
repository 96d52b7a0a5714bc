"""The TRM's memory reader: an associative memory bank read inside every reasoning cycle.

:class:`MemoryReader` is a ``cycle_reader`` of :class:`~trmgym.agents.trm.TRM` (its injection
point: ``z = z + reader(y, z)`` after the n latent updates of each cycle). In each cycle it pools
the states, projects them to a query, reads the bank (:class:`~trmgym.memory.AssociativeMemory`,
multi-head attention over the top-k slots) and adds a projection of the read vector to every
position of z through a learned scalar gate::

    query = W_q [mean(y); mean(z)]                          [B, key_dim]
    read  = bank.read(query)                                [B, value_dim], found [B]
    z     = z + where(found, gate * W_o read, 0)            broadcast over positions

The lineage is the bank's (Memorizing Transformers, Wu et al. 2022: a non-differentiable store
read by attention, gradients reaching only the queries; Sprechmann et al. 2018, memory-based
parameter adaptation: an episodic memory of past states read to adapt to a task). With task labels
the states include the task-embedding prefix positions, so queries and keys carry task context.

**An empty or useless bank costs nothing.** A row whose read found no slot adds exactly zero (an
empty bank leaves the TRM's output unchanged), and the gate starts near zero (``gate_init``, 0.01),
so a bank the network cannot use stays a small perturbation until the gate learns otherwise.

**What is written** (by a memory strategy, :mod:`trmgym.plugins.strategies`): for each row of a
training step the *key* is the query of the step's last cycle and the *value* the pooled latent
``mean(z)`` of that cycle (after its latent updates, before the read is added), both detached —
the state in which the network answered. The reader records them during the step
(:meth:`step`), the agent adds the step's outcome after its update (:meth:`commit`), and the
writer picks rows (:meth:`write_recorded`): puzzles solved at the end of an episode, or rows
answered exactly at a step (``write_every: step``). Keys are queries of the projection at write
time; as ``W_q`` trains, old keys drift from new queries (as in Memorizing Transformers).

**Reads and the bank's bookkeeping.** Inside :meth:`step` (the agent's training steps) the read of
the last cycle is *tracked* — it stamps the slots read (LRU, frequency) and counts hits
(``memory/hit_rate``: the top slot was written by the query's task) — so one read per reasoning
step counts, not one per cycle. Every other read (evaluation, replayed puzzles, EWC's Fisher,
``torch.func`` transforms) is pure: the bank is left untouched. The bank is a submodule: its
buffers travel with the model's ``state_dict`` and ``.to(device)``; they are buffers, not
parameters, so no optimizer step, gradient or weight EMA ever changes them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from trmgym.memory.associative import AssociativeMemory

__all__ = [
    "WRITE_EVERY",
    "MemoryConfig",
    "MemoryReader",
    "SlotEpisodes",
    "StepRecord",
    "WritePolicy",
]

#: when a memory strategy writes: at the end of each solved episode, or after each step
WRITE_EVERY = ("episode", "step")


@dataclass
class MemoryConfig:
    """The agent's memory bank and its reader (``agent.memory``; ``null``: no memory).

    Bank defaults are the issue's design (4,096 slots, 8 heads, LRU, importance 0.3 frequency +
    0.5 reward + 0.2 recency, forgetting above 90% occupancy of 15% of the slots, faiss top-k
    from 100k slots when installed); see :class:`~trmgym.memory.AssociativeMemory`.
    """

    capacity: int = 4096
    """Slots in the bank."""
    key_dim: int = 64
    """Width of queries and keys (divisible by num_heads)."""
    num_heads: int = 8
    """Attention heads of a read (must divide key_dim and the TRM's hidden size, the values'
    width)."""
    temperature: float = 0.05
    """Softmax temperature of a read (on cosine scores). The bank's own default 0.005 is near
    one-hot, which leaves the query projection almost no gradient; 0.05 still ranks a stored key
    first but lets the reader learn where to look."""
    replacement: str = "lru"
    """What a write into a full bank replaces: "lru" or "importance"."""
    forget_threshold: float = 0.9
    """Autonomous forgetting fires when a write leaves more than this share of slots in use
    (in (0, 1]; 1 disables it)."""
    forget_fraction: float = 0.15
    """Share of the capacity forgetting frees (the least important slots), in [0, 1]."""
    importance_weights: list[float] = field(default_factory=lambda: [0.3, 0.5, 0.2])
    """Weights of frequency, reward and recency in a slot's importance."""
    index: str = "auto"
    """Candidate search: "exact", "faiss" or "auto" (faiss from 100k slots when installed)."""
    top_k: int = 32
    """Candidate slots each read attends over."""
    balance_tasks: bool = True
    """Replacement and forgetting take first from the tasks holding more than their share of the
    slots, so a new task's writes cannot replace every earlier task's (a task-balanced memory,
    Chaudhry et al. 2019); false: the replacement policy and importance alone."""
    gate_init: float = 0.01
    """Initial value of the learned scalar gate on the read vector (near zero: a bank the network
    cannot use yet barely moves z)."""

    def __post_init__(self) -> None:
        if not isinstance(self.gate_init, int | float) or isinstance(self.gate_init, bool):
            raise ValueError(f"agent.memory.gate_init must be a number, got {self.gate_init!r}")
        if not math.isfinite(self.gate_init):
            raise ValueError(f"agent.memory.gate_init must be finite, got {self.gate_init}")
        try:  # the bank's own checks, on the meta device (nothing is allocated)
            self.bank(value_dim=self.num_heads if isinstance(self.num_heads, int) else 1)
        except (TypeError, ValueError) as error:
            raise ValueError(f"agent.memory.{error}") from None

    def bank(
        self, value_dim: int, *, seed: int = 0, device: str | torch.device | None = "meta"
    ) -> AssociativeMemory:
        """The :class:`~trmgym.memory.AssociativeMemory` this config describes."""
        return AssociativeMemory(
            self.capacity,
            key_dim=self.key_dim,
            value_dim=value_dim,
            num_heads=self.num_heads,
            temperature=self.temperature,
            replacement=self.replacement,
            forget_threshold=self.forget_threshold,
            forget_fraction=self.forget_fraction,
            importance_weights=tuple(self.importance_weights),
            index=self.index,
            top_k=self.top_k,
            balance_tasks=self.balance_tasks,
            seed=seed,
            device=device,
        )


class StepRecord(NamedTuple):
    """The states of one training step, per batch row, for the writer."""

    keys: torch.Tensor
    """``[B, key_dim]`` queries of the step's last cycle (detached, float32)."""
    values: torch.Tensor
    """``[B, hidden]`` pooled latent of that cycle (detached, float32)."""
    task: torch.Tensor | None
    """``[B]`` task labels the step read with (``None``: no task labels)."""
    correct: torch.Tensor | None = None
    """``[B]`` bool, the step's answer was exactly the target (set by :meth:`MemoryReader.commit`)."""
    reward: torch.Tensor | None = None
    """``[B]`` env reward of the step (set by :meth:`MemoryReader.commit`)."""
    inputs: torch.Tensor | None = None
    """``[B, seq_len]`` the step's input grids, flattened (when the agent passed them)."""
    targets: torch.Tensor | None = None
    """``[B, seq_len]`` the puzzles' targets, flattened (set by :meth:`MemoryReader.commit`)."""


class SlotEpisodes:
    """The puzzle behind each bank slot: input grid, target and task, stored at the slot a write
    took (:attr:`MemoryReader.episodes`; a memory strategy owns it and checkpoints it).

    This is the episodic side of memory-based parameter adaptation (Sprechmann et al. 2018): the
    bank's slots index stored examples that evaluation retrieves and adapts on. Arrays are
    allocated at the first write (``[capacity, seq_len]`` int16); a slot's entry is meaningful
    while the bank marks the slot used (a freed or replaced slot's entry is stale or overwritten).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self.inputs: np.ndarray | None = None
        self.targets: np.ndarray | None = None
        self.tasks = np.full(self.capacity, -1, dtype=np.int64)

    def put(
        self, slots: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor, task: int
    ) -> None:
        """Store ``inputs``/``targets`` (``[n, seq_len]`` ints) at ``slots`` (``[n]``)."""
        index = slots.detach().cpu().numpy()
        rows = inputs.detach().cpu().numpy()
        if self.inputs is None or self.inputs.shape[1] != rows.shape[1]:
            if self.inputs is not None:
                raise ValueError(
                    f"SlotEpisodes holds grids of {self.inputs.shape[1]} cells, got "
                    f"{rows.shape[1]}: one bank serves one canvas"
                )
            self.inputs = np.zeros((self.capacity, rows.shape[1]), dtype=np.int16)
            self.targets = np.zeros((self.capacity, rows.shape[1]), dtype=np.int16)
        assert self.targets is not None
        self.inputs[index] = rows
        self.targets[index] = targets.detach().cpu().numpy()
        self.tasks[index] = int(task)

    def get(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(inputs, targets, tasks)`` of ``slots``: ``[n, seq_len]`` int64 twice, ``[n]``."""
        if self.inputs is None or self.targets is None:
            raise RuntimeError("SlotEpisodes: nothing has been stored yet")
        return (
            self.inputs[slots].astype(np.int64),
            self.targets[slots].astype(np.int64),
            self.tasks[slots].copy(),
        )

    def state_dict(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "targets": self.targets, "tasks": self.tasks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        tasks = np.asarray(state["tasks"], dtype=np.int64)
        if tasks.shape != (self.capacity,):
            raise ValueError(
                f"SlotEpisodes: a checkpoint of {tasks.shape[0]} slots for a bank of "
                f"{self.capacity}"
            )
        self.tasks = tasks.copy()
        for name in ("inputs", "targets"):
            value = state[name]
            setattr(self, name, None if value is None else np.asarray(value, np.int16).copy())


class WritePolicy(NamedTuple):
    """What a memory strategy asks of the reader (:attr:`MemoryReader.write_policy`)."""

    every: str
    """"episode" (the strategy writes solved episodes itself) or "step" (the reader writes the
    exactly answered rows at every :meth:`MemoryReader.commit`)."""
    task: int
    """The task index stamped on the writes."""


class MemoryReader(nn.Module):
    """Reads an associative memory bank into the TRM's latent, once per reasoning cycle.

    Args:
        config: the bank and the reader (:class:`MemoryConfig`).
        hidden_size: the TRM's width D (the states' and the values' width).
        cycles_per_step: the TRM's ``h_cycles``: calls per supervision step, so the last one of a
            :meth:`step` is known.
        seed: seeds the bank's generator (tie-breaking, faiss training).

    Attributes:
        memory: the bank (a submodule; buffers only).
        query: ``Linear(2D -> key_dim)`` from the pooled (y, z).
        out: ``Linear(D -> D)`` from the read vector to the latent.
        gate: the learned scalar gate.
        record: the states of the last training step (:class:`StepRecord`), ``None`` before one.
        write_policy: set by a memory strategy; ``None``: nothing is written.
    """

    def __init__(
        self, config: MemoryConfig, hidden_size: int, *, cycles_per_step: int, seed: int = 0
    ) -> None:
        super().__init__()
        self.config = config
        self.cycles_per_step = int(cycles_per_step)
        self.memory = config.bank(hidden_size, seed=seed, device=None)
        self.query = nn.Linear(2 * hidden_size, config.key_dim)
        self.out = nn.Linear(hidden_size, hidden_size)
        self.gate = nn.Parameter(torch.tensor(float(config.gate_init)))
        self.record: StepRecord | None = None
        self.write_policy: WritePolicy | None = None
        #: where each write also stores its puzzles (set by a memory strategy); ``None``: nowhere
        self.episodes: SlotEpisodes | None = None
        self._step: dict | None = None  # inside step(): {"cycle", "task", "record", "inputs"}
        self._captured: list[torch.Tensor] | None = None  # inside capturing()
        self._scope: torch.Tensor | None = None  # inside scoped(): each row's task

    # --------------------------------------------------------------------------- reading
    @contextlib.contextmanager
    def step(
        self,
        task: torch.Tensor | None = None,
        *,
        record: bool = True,
        inputs: torch.Tensor | None = None,
    ) -> Iterator[None]:
        """Context of one supervision step (one ``TRM.forward``) of the agent.

        Args:
            task: ``[B]`` task labels of the rows (``None``: unknown; no hit statistics).
            record: track the last cycle's read (the bank's bookkeeping) and keep its states in
                :attr:`record` for the writer — the agent's training steps; ``False``: pure reads.
            inputs: ``[B, seq_len]`` the step's input grids, kept in the record so that writes
                can store the puzzles too (:attr:`episodes`).
        """
        if self._step is not None:
            raise RuntimeError("MemoryReader.step() contexts do not nest")
        self._step = {"cycle": 0, "task": task, "record": record, "inputs": inputs}
        try:
            yield
        finally:
            self._step = None

    @contextlib.contextmanager
    def scoped(self, scope: torch.Tensor) -> Iterator[None]:
        """Context in which row ``b`` of every read sees only the slots written with task
        ``scope[b]`` (``[B]`` ints): one bank holding several episodic memories, e.g. the
        support states of each task of a meta-batch (:mod:`trmgym.meta.episodic`)."""
        if self._scope is not None:
            raise RuntimeError("MemoryReader.scoped() contexts do not nest")
        self._scope = scope
        try:
            yield
        finally:
            self._scope = None

    @contextlib.contextmanager
    def capturing(self) -> Iterator[list[torch.Tensor]]:
        """Context collecting every cycle's query (``[B, key_dim]``, detached), in call order,
        also when the bank is empty; the reads themselves are unchanged. Call the TRM outside
        :meth:`step` in it for pure reads (the bank's bookkeeping untouched): the last query of
        a forward is the key a training step would write."""
        if self._captured is not None:
            raise RuntimeError("MemoryReader.capturing() contexts do not nest")
        self._captured = []
        try:
            yield self._captured
        finally:
            self._captured = None

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The read added to z: ``[B, 1, D]`` (zeros where nothing was found)."""
        step = self._step
        last = False
        if step is not None:
            step["cycle"] += 1
            last = step["record"] and step["cycle"] == self.cycles_per_step
        if last and _under_transform(z):
            raise RuntimeError(
                "MemoryReader: a recorded training step (TRMAgent.act(learn=True)) cannot run "
                "under torch.func transforms (it updates the bank's bookkeeping); call the TRM "
                "outside MemoryReader.step() for a pure, transformable read"
            )
        capture = self._captured is not None
        if len(self.memory) == 0 and not last and not capture:
            return z.new_zeros(())  # nothing to read: z is left exactly as it is
        pooled_z = z.mean(dim=1)
        query = self.query(torch.cat((y.mean(dim=1), pooled_z), dim=-1))
        if capture:
            assert self._captured is not None
            self._captured.append(query.detach())
            if len(self.memory) == 0 and not last:
                return z.new_zeros(())
        task = step["task"] if step is not None else None
        read = self.memory.read(query, task if last else None, track=last, scope=self._scope)
        if last:
            inputs = step["inputs"]
            self.record = StepRecord(
                query.detach().float(),
                pooled_z.detach().float(),
                None if task is None else task.detach().clone(),
                inputs=None if inputs is None else inputs.detach().clone(),
            )
        vector = self.gate * self.out(read.values.to(z.dtype))
        return torch.where(read.found[:, None], vector, 0.0).unsqueeze(1)

    # --------------------------------------------------------------------------- writing
    @torch.no_grad()
    def commit(
        self, correct: torch.Tensor, reward: torch.Tensor, targets: torch.Tensor | None = None
    ) -> int:
        """Add the outcome of the recorded step (after the agent's update).

        With a ``"step"`` :attr:`write_policy` the rows answered exactly are written now.

        Args:
            correct: ``[B]`` bool, the step's answer equals the target.
            reward: ``[B]`` env reward of the step (the writes' importance).
            targets: ``[B, seq_len]`` the puzzles' targets (stored with :attr:`episodes`).

        Returns:
            rows written.
        """
        if self.record is None:
            return 0
        self.record = self.record._replace(
            correct=correct.detach().to(torch.bool),
            reward=reward.detach().float(),
            targets=None if targets is None else targets.detach().clone(),
        )
        policy = self.write_policy
        if policy is None or policy.every != "step":
            return 0
        rows = torch.nonzero(self.record.correct).squeeze(1)
        return self.write_recorded(rows, policy.task)

    @torch.no_grad()
    def write_recorded(self, rows: torch.Tensor, task: int) -> int:
        """Write the recorded states of ``rows`` (batch indices) with task ``task``.

        The importance of each write is the step's reward when :meth:`commit` gave one, else 1.
        With :attr:`episodes` set, the rows' input grids and targets are stored at the slots
        the write took.

        Returns:
            rows written.

        Raises:
            RuntimeError: no step has been recorded, or :attr:`episodes` is set but the record
                lacks the step's inputs or targets.
        """
        if self.record is None:
            raise RuntimeError("no recorded training step to write (MemoryReader.step)")
        rows = torch.as_tensor(rows, dtype=torch.long, device=self.record.keys.device)
        if rows.numel() == 0:
            return 0
        reward = self.record.reward
        importance = reward[rows] if reward is not None else torch.ones(len(rows))
        slots = self.memory.write(
            self.record.keys[rows], self.record.values[rows], importance=importance, task=task
        )
        if self.episodes is not None:
            inputs, targets = self.record.inputs, self.record.targets
            if inputs is None or targets is None:
                raise RuntimeError(
                    "MemoryReader.episodes is set, but the recorded step has no inputs or "
                    "targets (pass inputs= to step() and targets= to commit())"
                )
            kept = rows[len(rows) - len(slots) :]  # of more rows than slots the last are kept
            self.episodes.put(slots, inputs[kept], targets[kept], task)
        return int(rows.numel())

    def clear_record(self) -> None:
        """Forget the recorded step (a new training env starts)."""
        self.record = None

    def extra_repr(self) -> str:
        return f"cycles_per_step={self.cycles_per_step}"


def _under_transform(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is wrapped by a ``torch.func`` transform (vmap, grad, jvp)."""
    check = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)
    return bool(check(tensor)) if check is not None else False
