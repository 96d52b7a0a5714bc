"""The ``memory`` few-shot method: write the support states into the bank, read them at query
time, take no gradient step.

A TRM with a :class:`~trmgym.agents.memory_reader.MemoryReader` (the associative bank read in every
reasoning cycle) adapts to a task by *writing*, not by training: for each support pair it stores

- key: the reader's query on the demo input — ``W_q [mean(y); mean(z)]`` of the last reasoning
  cycle of the first supervision step from the initial carry, with an empty bank: approximately
  the state a query input forms (whose earlier cycles already read the bank), so a query grid of
  the same task finds its task's demos;
- value: the pooled latent ``mean(z)`` of the last cycle of a forward pass on the demo input whose
  answer latent ``y`` starts at the embedded demo *output* (the state of the network holding the
  whole demonstration pair, input and answer);

and then predicts each query grid with the bank holding that task's ``k`` pairs only (the bank is
cleared per task). This is memory-based parameter adaptation without a parameter step
(Sprechmann et al., "Memory-based Parameter Adaptation", ICLR 2018) on the Memorizing
Transformers store (Wu et al. 2022): keys and values are detached buffers, gradients reach the
reader's query projection, its output projection and gate and the TRM through the query pass.

Training (:meth:`EpisodicLearner.loss`, multi-task like ``pretrained`` on the same meta-batches):
per task, the support grids are scored with an empty bank (their own states would give their
answers away), then the support states are written and the query grids are scored reading them;
the loss is the per-grid mean of both, the same weighting as ``pretrained``. One bank holds every
task of a batch; each query row reads only its own task's slots
(:meth:`~trmgym.agents.memory_reader.MemoryReader.scoped`), so a batch runs as one forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from trmgym.agents.memory_reader import MemoryConfig, MemoryReader
from trmgym.agents.trm import TRM, TRMCarry
from trmgym.meta.tasks import FewShotBatch, TRMObjective, exact

__all__ = ["EpisodicLearner", "attach_memory", "check_memory_method"]


def check_memory_method(config: MemoryConfig, hidden_size: int, support_states: int) -> None:
    """Refuse, before anything runs, a bank the ``memory`` method cannot use.

    Args:
        config: the bank (``agent.memory``).
        hidden_size: the TRM's width (the values' width; ``num_heads`` must divide it).
        support_states: the most support states one batch writes (tasks x demos).

    Raises:
        ValueError: naming ``agent.memory.<key>``.
    """
    try:
        bank = config.bank(hidden_size)
    except (TypeError, ValueError) as error:
        raise ValueError(f"agent.memory.{error}") from None
    if support_states > bank.room:
        raise ValueError(
            f"agent.memory.capacity: a batch writes up to {support_states} support states, more "
            f"than the {bank.room} slots the bank holds below its forgetting threshold "
            f"(capacity {bank.capacity}, forget_threshold {bank.forget_threshold}); raise the "
            f"capacity"
        )


def attach_memory(model: TRM, config: MemoryConfig, seed: int) -> MemoryReader:
    """Give ``model`` a memory reader of ``config`` (in place) and return it.

    The reader is initialised from its own random stream (``seed + 2``, as
    :class:`~trmgym.agents.trm_agent.TRMAgent` does), so the TRM's weights are those of the
    other methods' seeded initialisation.

    Raises:
        ValueError: ``model`` has a cycle reader already, or ``config`` does not fit it (named
            ``agent.memory.<key>``).
    """
    if not isinstance(model, TRM):
        raise TypeError(f"model must be a TRM, got {type(model).__name__}")
    if model.cycle_reader is not None:
        raise ValueError("the model has a cycle reader already")
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 2)
        try:
            reader = MemoryReader(
                config,
                model.config.hidden_size,
                cycles_per_step=model.config.h_cycles,
                seed=seed + 2,
            )
        except ValueError as error:
            raise ValueError(f"agent.memory.{error}") from None
    model.cycle_reader = reader.to(device)
    return reader


class EpisodicLearner:
    """Few-shot adaptation by writing a task's demonstrations into the memory bank.

    Args:
        objective: the TRM (with a :class:`MemoryReader` as its ``cycle_reader``) as a function
            of its parameters.

    Raises:
        ValueError: the TRM has no memory reader.
    """

    def __init__(self, objective: TRMObjective) -> None:
        reader = objective.model.cycle_reader
        if not isinstance(reader, MemoryReader):
            raise ValueError(
                "the memory method needs a TRM with a MemoryReader (attach_memory), got "
                f"cycle_reader={type(reader).__name__}"
            )
        self.objective = objective
        self.reader = reader

    @property
    def model(self) -> TRM:
        return self.objective.model

    @torch.no_grad()
    def support_states(
        self, support_x: torch.Tensor, support_y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``([n, key_dim], [n, hidden])`` keys and values of ``n`` demos ``[n, L]``."""
        model, reader = self.model, self.reader
        buffers = dict(model.named_buffers())
        shape = (support_x.shape[0], model.config.total_len, model.config.hidden_size)
        z0 = buffers["z_init"].expand(shape).clone()
        keyed = TRMCarry(buffers["y_init"].expand(shape).clone(), z0)
        answered = TRMCarry(model._embed(support_y, None).to(z0.dtype), z0.clone())
        states = []
        for carry in (keyed, answered):
            with reader.step(record=True):
                model(support_x, carry)
            states.append(reader.record)
        reader.clear_record()
        return states[0].keys, states[1].values

    def write(self, batch: FewShotBatch) -> None:
        """Clear the bank and write every task's support states, task ``i`` with id ``i``.

        Raises:
            ValueError: more support pairs than the bank holds below its forgetting threshold
                (``agent.memory.capacity``).
        """
        memory = self.reader.memory
        memory.clear()
        tasks, k = batch.num_tasks, batch.shots
        if tasks * k > memory.room:
            raise ValueError(
                f"agent.memory.capacity: {tasks} tasks x {k} demos = {tasks * k} support states "
                f"do not fit below the forgetting threshold ({memory.room} slots); raise the "
                f"capacity"
            )
        keys, values = self.support_states(
            batch.support_x.flatten(0, 1), batch.support_y.flatten(0, 1)
        )
        ids = torch.arange(tasks, device=keys.device).repeat_interleave(k)
        memory.write(keys, values, importance=torch.ones(len(keys)), task=ids)

    def _scope(self, batch: FewShotBatch) -> torch.Tensor:
        q = batch.query_x.shape[1]
        return torch.arange(batch.num_tasks, device=batch.query_x.device).repeat_interleave(q)

    def loss(self, batch: FewShotBatch) -> torch.Tensor:
        """Scalar training loss of a batch of tasks (grids weighted equally, as ``pretrained``):
        the support grids with an empty bank, then the query grids reading their task's states.
        The bank is left empty, also when the pass raises."""
        objective, params = self.objective, self.objective.params()
        sx, sy = batch.support_x.flatten(0, 1), batch.support_y.flatten(0, 1)
        qx, qy = batch.query_x.flatten(0, 1), batch.query_y.flatten(0, 1)
        self.reader.memory.clear()
        try:
            support = objective.loss(params, sx, sy)
            self.write(batch)
            with self.reader.scoped(self._scope(batch)):
                query = objective.loss(params, qx, qy)
        finally:
            self.reader.memory.clear()
        return (support * len(sx) + query * len(qx)) / (len(sx) + len(qx))

    @torch.no_grad()
    def query_logits(self, batch: FewShotBatch) -> torch.Tensor:
        """``[tasks * q, L, vocab]`` last-step logits of the query grids, each task reading its
        own support states (the bank is left empty, also when the pass raises)."""
        try:
            self.write(batch)
            with self.reader.scoped(self._scope(batch)):
                params = self.objective.params()
                return self.objective.step_logits(params, batch.query_x.flatten(0, 1))[-1]
        finally:
            self.reader.memory.clear()

    @torch.no_grad()
    def accuracy(self, batch: FewShotBatch) -> torch.Tensor:
        """``[tasks]`` fraction of each task's query grids answered exactly with its support
        states in the bank (no gradient step)."""
        prediction = self.query_logits(batch).argmax(-1)
        right = exact(prediction, batch.query_y.flatten(0, 1)).float()
        return right.view(batch.num_tasks, -1).mean(dim=1)

    def evaluate(self, batches: Sequence[FewShotBatch], k: int) -> np.ndarray | None:
        """``[tasks, 1]`` query exact accuracy with ``k`` demos written (tasks with fewer demos
        are left out; ``None``: none left)."""
        device = next(self.model.parameters()).device
        rows = [
            self.accuracy(batch.take(k).to(device)).cpu().numpy()[:, None]
            for batch in batches
            if batch.shots >= k
        ]
        return np.concatenate(rows, 0) if rows else None
