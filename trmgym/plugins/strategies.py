"""Continual-learning strategies: training plugins (:mod:`trmgym.plugins.base`).

A strategy sees the run through the plugin hooks and returns values; it never reaches into the
trainer:

- ``before_task(i) -> TaskDirective``: e.g. ``fresh_agent=True`` (the ``scratch`` reference);
- ``observe(grid, target, task)``: the puzzles the agent starts on while training (replay memory);
- ``replay_batch() -> PuzzleMemory | None``: extra supervised puzzles mixed into each update;
- ``penalty(model) -> Tensor | None``: a regulariser added to the loss (EWC);
- ``after_task(i, model, loss_fn)``: consolidate (e.g. estimate the Fisher information).

Strategies: ``naive`` (fine-tuning), ``replay`` (experience replay from a reservoir with per-task
quotas; Chaudhry et al. 2019, "On Tiny Episodic Memories in Continual Learning"), ``ewc`` (online
EWC; Kirkpatrick et al. 2017, Schwarz et al. 2018), ``multitask`` (joint training on fresh puzzles
of every task seen so far — the upper reference), ``scratch`` (a fresh agent per task — the
reference for forward transfer), ``memory`` (the states of solved puzzles written to the agent's
associative memory bank, read in every reasoning cycle; memory-based parameter adaptation,
Sprechmann et al. 2018) and ``memory_replay`` (memory and replay together).

**The memory bank and the strategies.** The bank belongs to the agent (``agent.memory``: a
:class:`~trmgym.agents.memory_reader.MemoryReader` inside the TRM, its buffers in the model's
state and checkpoint); *writing* it is the strategy's business. Only ``memory`` and
``memory_replay`` write; under any other strategy an agent's bank stays empty and its reader adds
exactly nothing. In particular ``scratch`` with ``agent.memory`` starts each task with a fresh
agent, hence a fresh, empty bank, and never writes it: it neither keeps nor drops anything, and
``trmgym run`` warns that the bank is unused. Memory and replay compose as one class,
:class:`MemoryReplay` (a run holds one strategy; its name, state and resume guard stay one
strategy's), not as a plugin list.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trmgym.agents.memory_reader import WRITE_EVERY, MemoryReader, SlotEpisodes, WritePolicy
from trmgym.checks import boolean, positive_int
from trmgym.memory.replay import ReservoirBuffer, check_task_quota
from trmgym.plugins.base import Plugin, PuzzleMemory, TaskDirective

STRATEGIES = ("naive", "replay", "ewc", "multitask", "scratch", "memory", "memory_replay")


#: ``sample(task_index, n) -> PuzzleMemory``: fresh training puzzles of a task.
Sampler = Callable[[int, int], PuzzleMemory]


def _check_positive_int(name: str, value: Any) -> int:
    return positive_int(value, f"strategy.{name}")


def _check_number(name: str, value: Any, low: float, high: float = float("inf")) -> float:
    """``value`` as a float in ``[low, high]``; the error names ``strategy.<name>``."""
    allowed = f"in [{low:g}, {high:g}]" if high != float("inf") else f">= {low:g}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"strategy.{name} must be a number {allowed}, got {value!r}")
    if not low <= value <= high or not math.isfinite(value):  # also rejects NaN and inf
        raise ValueError(f"strategy.{name} must be a number {allowed}, got {value}")
    return float(value)


def _mixed_count(mix_ratio: Any, batch_size: int) -> int:
    """Puzzles mixed into each update: ``round(mix_ratio * batch_size)``, ratio checked.

    Raises:
        ValueError: the ratio is out of [0, 1], or above 0 but rounds to no puzzle at all
            (which would switch the strategy off while the run is still labelled with it).
    """
    ratio = _check_number("mix_ratio", mix_ratio, 0.0, 1.0)
    batch = _check_positive_int("batch_size", batch_size)
    count = int(round(ratio * batch))
    if ratio > 0 and count == 0:
        raise ValueError(
            f"strategy.mix_ratio={ratio:g} with run.batch_size={batch} mixes in no puzzle at all "
            f"(round({ratio:g} * {batch}) = 0); allowed: mix_ratio > {0.5 / batch:g} "
            "for this batch size, or 0 to switch mixing off"
        )
    return count


class Strategy(Plugin):
    """Naive fine-tuning: the base strategy, whose hooks only track the task being trained."""

    name = "naive"

    def __init__(self, *, seed: int = 0, sampler: Sampler | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.sampler = sampler
        self.tasks_seen: list[int] = []
        self.current = -1
        """The task being trained (-1 before the first)."""

    def before_task(self, task_index: int) -> TaskDirective:
        self.current = task_index
        if task_index not in self.tasks_seen:
            self.tasks_seen.append(task_index)
        return TaskDirective()

    def state_dict(self) -> dict[str, Any]:
        return {
            "rng": self.rng.bit_generator.state,
            "tasks_seen": list(self.tasks_seen),
            "current": self.current,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.tasks_seen = [int(t) for t in state["tasks_seen"]]
        # checkpoints written before `current` was saved: the last task seen is the current one
        self.current = int(state.get("current", self.tasks_seen[-1] if self.tasks_seen else -1))


class Scratch(Strategy):
    """A fresh, untrained agent for every task: the single-task reference."""

    name = "scratch"

    def before_task(self, task_index: int) -> TaskDirective:
        super().before_task(task_index)
        return TaskDirective(fresh_agent=task_index > 0)


class Replay(Strategy):
    """Experience replay: a reservoir of past puzzles, some of them mixed into every update.

    Args:
        memory_size: puzzles kept in the reservoir (split evenly among tasks when ``task_quota``).
        mix_ratio: replayed puzzles per current puzzle, in ``[0, 1]``: each update trains the full
            current-task batch plus ``round(mix_ratio * batch_size)`` puzzles from memory
            (0 turns replay off; 1 replays as many puzzles as the batch holds).
        batch_size: puzzles in the current-task batch (``run.batch_size``).
        task_quota: balance the memory across tasks.
        only_past: replay only tasks before the current one (the current one is trained anyway).
        grid_shape: ``(H, W)`` of stored grids.
        num_tasks: tasks in the sequence, when known: with ``task_quota`` a memory smaller than
            this cannot keep one puzzle of every task, which is refused up front.

    Raises:
        ValueError: a setting out of range, naming ``strategy.<key>``.
    """

    name = "replay"

    def __init__(
        self,
        *,
        grid_shape: tuple[int, int],
        memory_size: int = 2000,
        mix_ratio: float = 0.5,
        batch_size: int = 64,
        task_quota: bool = True,
        only_past: bool = True,
        num_tasks: int | None = None,
        seed: int = 0,
        sampler: Sampler | None = None,
    ) -> None:
        super().__init__(seed=seed, sampler=sampler)
        memory_size = _check_positive_int("memory_size", memory_size)
        task_quota = boolean(task_quota, "strategy.task_quota")
        only_past = boolean(only_past, "strategy.only_past")
        if task_quota and num_tasks is not None:
            check_task_quota(memory_size, num_tasks)
        self.replay_batch_size = _mixed_count(mix_ratio, batch_size)
        self.mix_ratio = float(mix_ratio)
        self.only_past = only_past
        cells = tuple(int(d) for d in grid_shape)
        self.memory = ReservoirBuffer(
            memory_size,
            {"grid": (cells, np.int8), "target": (cells, np.int8), "task": ((), np.int64)},
            task_quota=task_quota,
        )

    def observe(self, grid: np.ndarray, target: np.ndarray, task: np.ndarray) -> None:
        self.memory.add(
            self.rng, grid=grid.astype(np.int8), target=target.astype(np.int8), task=task
        )

    def replay_batch(self) -> PuzzleMemory | None:
        size = len(self.memory)
        if size == 0 or self.replay_batch_size == 0:
            return None
        tasks = self.memory.data["task"][:size]
        rows = np.flatnonzero(tasks != self.current) if self.only_past else np.arange(size)
        if rows.size == 0:
            return None
        pick = rows[self.rng.integers(0, rows.size, size=self.replay_batch_size)]
        data = self.memory.data
        return PuzzleMemory(
            data["grid"][pick].astype(np.int64), data["target"][pick].astype(np.int64), tasks[pick]
        )

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "memory": self.memory.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.memory.load_state_dict(state["memory"])


class Multitask(Strategy):
    """Joint training: each update also sees fresh puzzles of every earlier task (upper bound).

    Args:
        mix_ratio: puzzles of earlier tasks per current puzzle, in ``[0, 1]``: each update adds
            ``round(mix_ratio * batch_size)`` fresh puzzles, their tasks drawn uniformly.
        batch_size: puzzles in the current-task batch (``run.batch_size``).
    """

    name = "multitask"

    def __init__(
        self,
        *,
        mix_ratio: float = 1.0,
        batch_size: int = 64,
        seed: int = 0,
        sampler: Sampler | None = None,
    ) -> None:
        super().__init__(seed=seed, sampler=sampler)
        if sampler is None:
            raise ValueError("multitask needs a sampler of fresh puzzles")
        self.replay_batch_size = _mixed_count(mix_ratio, batch_size)
        self.mix_ratio = float(mix_ratio)

    def replay_batch(self) -> PuzzleMemory | None:
        past = [t for t in self.tasks_seen if t != self.current]
        if not past or self.replay_batch_size == 0:
            return None
        counts = np.bincount(
            self.rng.integers(0, len(past), self.replay_batch_size), minlength=len(past)
        )
        parts = [self.sampler(past[k], int(n)) for k, n in enumerate(counts) if n > 0]
        return PuzzleMemory(*(np.concatenate(field_) for field_ in zip(*parts)))


class EWC(Strategy):
    """Online elastic weight consolidation: ``λ/2 Σ F (θ − θ*)²`` with a running Fisher.

    After each task the diagonal Fisher is estimated from ``fisher_batches`` batches of the task's
    puzzles, as the mean over batches of the squared gradient of the batch-mean loss (as
    Avalanche's ``EWCPlugin`` does; a cheap approximation of the per-example empirical Fisher
    whose scale shrinks as ``fisher_batch_size`` grows, so ``ewc_lambda`` is large), and merged as
    ``F ← γ F + F_task`` (Schwarz et al. 2018); θ* is the weights at that moment.

    Args:
        ewc_lambda: penalty strength λ.
        gamma: decay of earlier tasks' Fisher (1 = plain sum over tasks).
        fisher_batches: batches of fresh puzzles used to estimate the Fisher.
        fisher_batch_size: puzzles per batch.
    """

    name = "ewc"

    def __init__(
        self,
        *,
        ewc_lambda: float = 1.0e8,
        gamma: float = 1.0,
        fisher_batches: int = 8,
        fisher_batch_size: int = 64,
        seed: int = 0,
        sampler: Sampler | None = None,
    ) -> None:
        super().__init__(seed=seed, sampler=sampler)
        if sampler is None:
            raise ValueError("ewc needs a sampler of the task's puzzles")
        self.ewc_lambda = _check_number("ewc_lambda", ewc_lambda, 0.0)
        self.gamma = _check_number("gamma", gamma, 0.0, 1.0)
        self.fisher_batches = _check_positive_int("fisher_batches", fisher_batches)
        self.fisher_batch_size = _check_positive_int("fisher_batch_size", fisher_batch_size)
        self.fisher: dict[str, torch.Tensor] = {}
        self.anchor: dict[str, torch.Tensor] = {}

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        if not self.fisher:
            return None
        total = None
        for name, param in model.named_parameters():
            if name in self.fisher:
                fisher, anchor = self._on(name, param.device)
                term = (fisher * (param - anchor) ** 2).sum()
                total = term if total is None else total + term
        return None if total is None else 0.5 * self.ewc_lambda * total

    def after_task(
        self, task_index: int, model: nn.Module, loss_fn: Callable[[PuzzleMemory], torch.Tensor]
    ) -> None:
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        fisher = {n: torch.zeros_like(p) for n, p in params.items()}
        for _ in range(self.fisher_batches):
            batch = self.sampler(task_index, self.fisher_batch_size)
            model.zero_grad(set_to_none=True)
            loss_fn(batch).backward()
            for n, p in params.items():
                if p.grad is not None:
                    fisher[n] += p.grad.detach() ** 2 / self.fisher_batches
        model.zero_grad(set_to_none=True)
        for n, f in fisher.items():
            old = self._on(n, f.device)[0] if n in self.fisher else None
            self.fisher[n] = f if old is None else self.gamma * old + f
            self.anchor[n] = params[n].detach().clone()

    def _on(self, name: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The Fisher and anchor of ``name`` on ``device`` (a checkpoint loads them on the CPU)."""
        if self.fisher[name].device != device:
            self.fisher[name] = self.fisher[name].to(device)
            self.anchor[name] = self.anchor[name].to(device)
        return self.fisher[name], self.anchor[name]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "fisher": dict(self.fisher), "anchor": dict(self.anchor)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.fisher = {k: v.clone() for k, v in state["fisher"].items()}
        self.anchor = {k: v.clone() for k, v in state["anchor"].items()}


class Memory(Strategy):
    """The associative memory bank: the states of solved puzzles are written to the agent's bank.

    The bank lives in the agent's network (``agent.memory``; see
    :mod:`trmgym.agents.memory_reader` for what a write stores); this strategy decides what is
    written and when, and never resets it, so it persists across tasks (and no gradient or EMA
    touches it). It reaches the bank through the network the seam hands to plugins:
    :meth:`penalty`, called by every update before that step's :meth:`on_episodes_end`, finds the
    reader and sets its :class:`~trmgym.agents.memory_reader.WritePolicy` (the current task).

    Writes (task = the task's index in the sequence, importance = the step's env reward):

    - ``write_every="episode"``: when episodes end, the last step's states of those the env
      reports solved;
    - ``write_every="step"``: after every update, the rows whose answer is exactly the target.

    Each write also stores the puzzle (input grid, target, task) at the slot it took
    (:class:`~trmgym.agents.memory_reader.SlotEpisodes`), so the bank is an episodic memory of
    solved puzzles as well as of states.

    **Local adaptation at evaluation** (memory-based parameter adaptation, MbPA: Sprechmann et
    al. 2018, "Memory-based Parameter Adaptation"; de Masson d'Autume et al. 2019, "Episodic
    Memory in Lifelong Language Learning"). Before an evaluation answers its held-out puzzles,
    with ``adapt_steps > 0``:

    1. *Keys.* Every held-out puzzle and every stored puzzle is encoded with the evaluation
       weights: the reader's query of the last cycle of one reasoning step from a fresh carry
       (the key a training step writes, recomputed now so that old keys do not drift from new
       queries as the weights train).
    2. *Retrieval.* Each held-out puzzle retrieves its ``neighbours`` most similar stored
       puzzles (cosine); with task labels (``run.task_labels``) only among those written by its
       own task, since the keys carry task context. The ``adapt_batch`` stored puzzles retrieved
       by the most held-out puzzles (ties: the more similar in total, then the lower slot) form
       the local set. With nothing to retrieve, the puzzles are answered without adaptation.
    3. *Adaptation.* A copy of the evaluation weights takes ``adapt_steps`` Adam steps
       (``adapt_lr``) on the local set's deep-supervision loss (the answer's cross-entropy at
       each of the run's reasoning steps from a fresh carry, averaged: evaluation may halt at
       any of them), plus ``adapt_l2 / 2 * ||theta - theta_eval||^2`` (MbPA's pull towards the
       global weights). The held-out puzzles are answered with the adapted weights, which are
       then discarded: the weights, their gradients and the bank come back exactly as they were.
       Adapted weights whose loss on the local set is not below the loss they started from are
       dropped and the puzzles answered unadapted (``memory/adaptations_reverted`` counts them):
       Adam's first steps at ``adapt_lr`` can overshoot — on a task the weights already solved,
       5 steps took the local loss from 0.03 to 0.3 and exact accuracy from 0.99 to 0.03 — and
       an adaptation that made its own objective worse has no business answering.

    The paper adapts per test example; here one adaptation serves one evaluation batch (one
    task's held-out puzzles), on the union of their neighbours — the same retrieval, at the cost
    of one adaptation per evaluation instead of one per puzzle. Retrieval reads only the stored
    keys the evaluation recomputes; the bank's bookkeeping (LRU stamps, counts) is untouched.

    Logs ``memory/occupancy``, ``memory/hit_rate`` (of the training reads since the bank was
    built: the top slot was written by the query's task; needs ``run.task_labels``),
    ``memory/evictions`` and ``memory/writes`` (counts since the bank was built) after each
    training chunk.

    Args:
        write_every: ``"episode"`` or ``"step"``.
        adapt_steps: local adaptation steps per evaluation (0: none; the bank is then only
            read inside the reasoning cycles).
        adapt_lr: Adam learning rate of the local adaptation (> 0).
        neighbours: stored puzzles each held-out puzzle retrieves (>= 1).
        adapt_batch: the local set's size (>= 1): the most retrieved stored puzzles.
        adapt_l2: weight of the pull towards the evaluation weights (>= 0).

    Raises:
        ValueError: a bad ``write_every`` or adaptation setting (naming ``strategy.<key>``);
            at the first update, an agent without ``agent.memory`` (naming it).
        RuntimeError: the bank was replaced or emptied between updates (e.g. another plugin
            asked for a fresh agent): the bank is meant to persist across tasks.
    """

    name = "memory"

    def __init__(
        self,
        *,
        write_every: str = "episode",
        adapt_steps: int = 60,
        adapt_lr: float = 2e-3,
        neighbours: int = 32,
        adapt_batch: int = 64,
        adapt_l2: float = 0.0,
        seed: int = 0,
        sampler: Sampler | None = None,
    ) -> None:
        super().__init__(seed=seed, sampler=sampler)
        self._init_memory(write_every, adapt_steps, adapt_lr, neighbours, adapt_batch, adapt_l2)

    def _init_memory(
        self,
        write_every: str,
        adapt_steps: int = 60,
        adapt_lr: float = 2e-3,
        neighbours: int = 32,
        adapt_batch: int = 64,
        adapt_l2: float = 0.0,
    ) -> None:
        if write_every not in WRITE_EVERY:
            raise ValueError(
                f"strategy.write_every must be one of {list(WRITE_EVERY)}, got {write_every!r}"
            )
        self.write_every = write_every
        self.adapt_steps = _whole("strategy.adapt_steps", adapt_steps, 0)
        self.neighbours = _whole("strategy.neighbours", neighbours, 1)
        self.adapt_batch = _whole("strategy.adapt_batch", adapt_batch, 1)
        self.adapt_lr = _real("strategy.adapt_lr", adapt_lr, positive=True)
        self.adapt_l2 = _real("strategy.adapt_l2", adapt_l2, positive=False)
        #: the reader found in the last update's network
        self.reader: MemoryReader | None = None
        #: the bank's write count when last seen (in :meth:`penalty` or a write here): a bank
        #: with fewer writes was replaced or reset
        self.bank_writes = 0
        #: the puzzle behind each slot (allocated with the bank's capacity at the first update)
        self.episodes: SlotEpisodes | None = None
        self._episodes_state: dict[str, Any] | None = None  # loaded before the first update
        #: local adaptations run, and those whose loss on the local set ended no lower than it
        #: started, whose weights were dropped (the evaluation answered unadapted)
        self.adaptations = 0
        self.adaptations_reverted = 0

    def reader_of(self, model: nn.Module) -> MemoryReader:
        """The memory reader of ``model``; ValueError naming ``agent.memory`` when it has none."""
        reader = getattr(model, "cycle_reader", None)
        if not isinstance(reader, MemoryReader):
            raise ValueError(
                f"strategy={self.name} writes the agent's memory bank, but agent.memory is null: "
                "set it with agent/memory=bank (trmgym run), or TRMAgentConfig(memory="
                "MemoryConfig()) in Python"
            )
        return reader

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        reader = self.reader_of(model)
        if reader.memory.writes < self.bank_writes:
            raise RuntimeError(
                f"strategy={self.name}: the agent's memory bank holds {reader.memory.writes} "
                f"writes, fewer than the {self.bank_writes} seen before: it was replaced or reset "
                "(a fresh agent?), but the bank must persist across tasks"
            )
        self.bank_writes = reader.memory.writes
        reader.write_policy = WritePolicy(self.write_every, self.current)
        self._attach_episodes(reader)
        self.reader = reader
        return None

    def _attach_episodes(self, reader: MemoryReader) -> SlotEpisodes:
        """The slot episodes, made (or restored from a checkpoint) for ``reader``'s bank."""
        if self.episodes is None or self.episodes.capacity != reader.memory.capacity:
            self.episodes = SlotEpisodes(reader.memory.capacity)
            if self._episodes_state is not None:
                self.episodes.load_state_dict(self._episodes_state)
                self._episodes_state = None
        reader.episodes = self.episodes
        return self.episodes

    # ------------------------------------------------------------------ local adaptation
    def adapted(
        self, agent: Any, grid: np.ndarray, task: np.ndarray | None
    ) -> contextlib.AbstractContextManager[None] | None:
        if self.adapt_steps == 0:
            return None
        reader = self.reader_of(agent.model)
        episodes = self._attach_episodes(reader)
        used = torch.nonzero(reader.memory.used).squeeze(1).cpu().numpy()
        if len(used) == 0 or episodes.inputs is None:
            return None
        return self._local_adaptation(agent, reader, episodes, used, grid, task)

    @contextlib.contextmanager
    def _local_adaptation(
        self,
        agent: Any,
        reader: MemoryReader,
        episodes: SlotEpisodes,
        used: np.ndarray,
        grid: np.ndarray,
        task: np.ndarray | None,
    ) -> Iterator[None]:
        model = agent.model
        stored_inputs, stored_targets, stored_tasks = episodes.get(used)
        queries = _keys_of(agent, reader, np.asarray(grid).reshape(len(grid), -1), task)
        keys = _keys_of(agent, reader, stored_inputs, stored_tasks if task is not None else None)
        allowed = None
        if task is not None:  # keys carry task context: a puzzle retrieves its own task's
            labels = torch.as_tensor(np.asarray(task, dtype=np.int64))
            allowed = labels[:, None] == torch.from_numpy(stored_tasks)[None, :]
            allowed = allowed.to(queries.device)
        local = _retrieve(queries, keys, self.neighbours, self.adapt_batch, allowed)
        if len(local) == 0:  # nothing stored of these puzzles' tasks: answer as they are
            yield
            return
        params = [p for p in model.parameters() if p.requires_grad]
        saved = [p.detach().clone() for p in params]
        grads = [p.grad for p in params]
        inputs, targets = stored_inputs[local], stored_targets[local]
        local_tasks = stored_tasks[local] if task is not None else None

        def objective() -> torch.Tensor:
            loss = _deep_supervision_loss(agent, inputs, targets, local_tasks)
            if self.adapt_l2 > 0:
                pull = sum(((p - s) ** 2).sum() for p, s in zip(params, saved))
                loss = loss + 0.5 * self.adapt_l2 * pull
            return loss

        try:
            with torch.enable_grad():
                optimizer = torch.optim.Adam(params, lr=self.adapt_lr)
                for step in range(self.adapt_steps):
                    loss = objective()
                    if step == 0:
                        before = float(loss.detach())
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
            with torch.no_grad():
                after = float(objective())
                self.adaptations += 1
                if not after < before:  # Adam's first steps can overshoot: never answer worse
                    self.adaptations_reverted += 1
                    for p, s in zip(params, saved):
                        p.copy_(s)
            yield
        finally:
            with torch.no_grad():
                for p, s, g in zip(params, saved, grads):
                    p.copy_(s)
                    p.grad = g

    def on_episodes_end(
        self,
        task: int,
        rows: np.ndarray,
        solved: np.ndarray,
        cell_accuracy: np.ndarray,
        steps: np.ndarray,
        options: Any,
    ) -> None:
        if self.write_every != "episode":
            return
        if self.reader is None:
            raise RuntimeError(
                f"strategy={self.name}: episodes ended before any update (penalty(model) finds "
                "the agent's memory reader)"
            )
        solved_rows = np.asarray(rows)[np.asarray(solved, dtype=bool)]
        self.reader.write_recorded(torch.from_numpy(solved_rows), int(task))
        self.bank_writes = self.reader.memory.writes

    def metrics(self, model: nn.Module) -> dict[str, float | None]:
        bank = self.reader_of(model).memory
        return {
            "memory/occupancy": bank.occupancy,
            "memory/hit_rate": bank.hit_rate,
            "memory/evictions": float(bank.evictions),
            "memory/writes": float(bank.writes),
            "memory/adaptations_reverted": float(self.adaptations_reverted),
        }

    def state_dict(self) -> dict[str, Any]:
        # the bank itself is the agent's (its network's state_dict); the puzzles behind its slots
        # are this strategy's
        episodes = self.episodes.state_dict() if self.episodes is not None else self._episodes_state
        counts = {
            "adaptations": self.adaptations,
            "adaptations_reverted": self.adaptations_reverted,
        }
        return {
            **super().state_dict(),
            "bank_writes": self.bank_writes,
            "episodes": episodes,
            **counts,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.bank_writes = int(state["bank_writes"])
        # checkpoints written before these counts were kept start them at 0
        self.adaptations = int(state.get("adaptations", 0))
        self.adaptations_reverted = int(state.get("adaptations_reverted", 0))
        self.episodes, self._episodes_state = None, state.get("episodes")
        if self.reader is not None and self._episodes_state is not None:
            self._attach_episodes(self.reader)


def _whole(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _real(name: str, value: Any, *, positive: bool) -> float:
    bound = "> 0" if positive else ">= 0"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return value


#: stored or held-out puzzles encoded per forward pass when computing retrieval keys
KEY_CHUNK = 512


@torch.no_grad()
def _keys_of(
    agent: Any, reader: MemoryReader, grids: np.ndarray, task: np.ndarray | None
) -> torch.Tensor:
    """``[n, key_dim]`` retrieval keys of puzzles ``grids`` (``[n, seq_len]``): the reader's
    query of the last cycle of one reasoning step from a fresh carry (pure reads)."""
    keys = []
    for start in range(0, len(grids), KEY_CHUNK):
        rows = slice(start, start + KEY_CHUNK)
        x = agent.to_device(np.asarray(grids[rows])).long()
        labels = None
        if task is not None and agent.model_config.num_task_embeddings:
            labels = agent.to_device(np.asarray(task[rows])).long()
        carry = agent.model.initial_carry(len(x), agent.device)
        with reader.capturing() as queries:
            agent.network(x, carry, labels)
        keys.append(queries[-1].float())
    return torch.cat(keys)


def _deep_supervision_loss(
    agent: Any, grids: np.ndarray, targets: np.ndarray, task: np.ndarray | None
) -> torch.Tensor:
    """The answers' cross-entropy averaged over ``agent.max_steps`` reasoning steps from a fresh
    carry (the carry detached between steps, as the TRM's deep supervision): evaluation may halt
    at any step, so every step's answer is fitted, not only the first."""
    x = agent.to_device(np.asarray(grids)).reshape(len(grids), -1).long()
    y = agent.to_device(np.asarray(targets)).reshape(len(grids), -1).long()
    labels = None
    if task is not None and agent.model_config.num_task_embeddings:
        labels = agent.to_device(np.asarray(task)).long()
    carry = agent.model.initial_carry(len(x), agent.device)
    total = x.new_zeros((), dtype=torch.float32)
    steps = int(agent.max_steps)
    for _ in range(steps):
        out = agent.network(x, carry, labels)
        total = total + agent.model.cross_entropy(out.logits, y)
        carry = out.carry
    return total / steps


def _retrieve(
    queries: torch.Tensor,
    keys: torch.Tensor,
    neighbours: int,
    size: int,
    allowed: torch.Tensor | None = None,
) -> np.ndarray:
    """Indices into ``keys`` of the local set: each query's ``neighbours`` nearest keys
    (cosine) among those ``allowed`` (``[E, S]`` bool; ``None``: all), then the ``size``
    retrieved by the most queries (ties: the larger summed similarity, then the lower index).
    Empty when no query is allowed any key."""
    sim = F.normalize(queries, dim=-1) @ F.normalize(keys, dim=-1).T  # [E, S]
    if allowed is not None:
        sim = sim.masked_fill(~allowed, float("-inf"))
    k = min(neighbours, keys.shape[0])
    top = sim.topk(k, dim=1)
    found = torch.isfinite(top.values)
    indices, values = top.indices[found].cpu(), top.values[found].double().cpu()
    votes = torch.bincount(indices, minlength=keys.shape[0]).numpy()
    weight = torch.zeros(keys.shape[0], dtype=torch.float64)
    weight.index_add_(0, indices, values)
    order = np.lexsort((np.arange(len(votes)), -weight.numpy(), -votes))
    order = order[votes[order] > 0]
    return order[:size]


class MemoryReplay(Memory, Replay):
    """:class:`Memory` and :class:`Replay` together: solved puzzles' states go to the agent's
    bank, past puzzles are replayed into every update. Arguments: both strategies'."""

    name = "memory_replay"

    def __init__(
        self,
        *,
        grid_shape: tuple[int, int],
        memory_size: int = 2000,
        mix_ratio: float = 0.5,
        batch_size: int = 64,
        task_quota: bool = True,
        only_past: bool = True,
        num_tasks: int | None = None,
        write_every: str = "episode",
        adapt_steps: int = 60,
        adapt_lr: float = 2e-3,
        neighbours: int = 32,
        adapt_batch: int = 64,
        adapt_l2: float = 0.0,
        seed: int = 0,
        sampler: Sampler | None = None,
    ) -> None:
        Replay.__init__(
            self,
            grid_shape=grid_shape,
            memory_size=memory_size,
            mix_ratio=mix_ratio,
            batch_size=batch_size,
            task_quota=task_quota,
            only_past=only_past,
            num_tasks=num_tasks,
            seed=seed,
            sampler=sampler,
        )
        self._init_memory(write_every, adapt_steps, adapt_lr, neighbours, adapt_batch, adapt_l2)


#: the built-in strategy classes, by name (the order of ``STRATEGIES``)
BUILT_IN: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (Strategy, Replay, EWC, Multitask, Scratch, Memory, MemoryReplay)
}
#: arguments that come from the run, passed to each strategy whose constructor takes them
RUN_TIME_ARGUMENTS = ("grid_shape", "seed", "sampler", "batch_size", "num_tasks")


def make_strategy(
    config: dict[str, Any],
    *,
    grid_shape: tuple[int, int],
    seed: int,
    sampler: Sampler,
    batch_size: int = 64,
    num_tasks: int | None = None,
) -> Strategy:
    """Build a strategy from ``{"name": ..., **arguments}``; unknown names list the choices.

    The config may also carry Hydra's ``_target_`` (the strategy class as a dotted path, e.g.
    ``trmgym.plugins.strategies.Replay``, or a :class:`Strategy` subclass of your own) and
    ``_partial_``, as the ``strategy`` node of ``trmgym run`` does (schemas in
    :mod:`trmgym.config`): :func:`hydra.utils.instantiate` turns it into a partial of the class.
    Without ``_target_`` the class is the built-in strategy of that name. Either way the partial
    is then called with the run-time arguments its constructor takes.

    Args:
        config: ``{"name": ..., **arguments}`` (``name`` defaults to ``"naive"``); not modified.
        grid_shape: ``(H, W)`` of the run's canvas (the replay memory's grids).
        seed: seeds the strategy's generator.
        sampler: ``sampler(task_index, n)``, fresh training puzzles (multitask, EWC).
        batch_size: the run's current-task batch, the unit of the strategies' ``mix_ratio``.
        num_tasks: tasks in the sequence (replay refuses a per-task quota it cannot fill).

    Raises:
        ValueError: an unknown name, argument or ``_target_``, a run-time argument in ``config``,
            or a value out of range; the message names the key.
        TypeError: ``_target_`` is not a :class:`Strategy` class.
    """
    import functools
    import inspect

    config = dict(config)
    name = config.pop("name", "naive")
    target = config.pop("_target_", None)
    config.pop("_partial_", None)
    if target is None and name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {name!r}")
    if "replay_batch_size" in config:
        raise ValueError(
            "strategy.replay_batch_size was replaced by strategy.mix_ratio: replayed puzzles per "
            "current puzzle, in [0, 1] (0.5 with run.batch_size=64 replays 32)"
        )
    supplied = sorted(set(config) & set(RUN_TIME_ARGUMENTS))
    if supplied:  # a partial would let the config's value win silently
        raise ValueError(
            f"strategy.{supplied[0]} is set by the run, not the strategy config "
            f"(run-time arguments: {list(RUN_TIME_ARGUMENTS)})"
        )
    if target is None:
        factory = functools.partial(BUILT_IN[name], **config)
    else:
        factory = _partial_of_target(target, config)
        cls = factory.func
        if name in BUILT_IN and cls.name != name:
            raise ValueError(
                f"strategy.name {name!r} is the built-in {BUILT_IN[name].__name__} strategy, but "
                f"strategy._target_ is {target!r} (a {cls.name!r} strategy)"
            )
    parameters = inspect.signature(factory.func).parameters
    any_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    run_time = {
        "grid_shape": grid_shape,
        "seed": seed,
        "sampler": sampler,
        "batch_size": batch_size,
        "num_tasks": num_tasks,
    }
    # a constructor taking **kwargs forwards them to its bases: give it what they name
    accepted = set(parameters)
    for cls in factory.func.__mro__[1:] if any_keyword else ():
        if "__init__" not in vars(cls) or cls is object:
            continue
        base = inspect.signature(cls.__init__).parameters
        accepted |= set(base)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in base.values()):
            break
    run_time = {k: v for k, v in run_time.items() if k in accepted}
    try:
        return factory(**run_time)
    except TypeError as error:  # an unknown argument: name it
        raise ValueError(f"bad arguments for strategy {name!r}: {error}") from None


def _partial_of_target(target: Any, arguments: dict[str, Any]) -> Callable[..., Strategy]:
    """``hydra.utils.instantiate`` of a ``_partial_`` strategy node, its class checked."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    node = {"_target_": str(target), **arguments}
    try:
        factory = instantiate(node, _partial_=True, _convert_="all")
    except InstantiationException as error:
        raise ValueError(f"strategy._target_ {target!r} cannot be loaded: {error}") from None
    cls = getattr(factory, "func", None)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise TypeError(f"strategy._target_ must name a Strategy subclass, got {target!r}")
    return factory
