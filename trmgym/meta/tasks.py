"""Few-shot task batches and the TRM as a pure function of its parameters.

Meta-learning sees a *task* as a small supervised problem: a support set of ``k`` demonstration
pairs to adapt on and a query set of ``q`` fresh pairs of the same task to score the adapted
weights on (Finn et al., "Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks",
ICML 2017). :class:`FewShotBatch` holds a batch of such tasks as token tensors; :func:`arcgen_batch`
draws one from an :class:`~trmgym.envs.arcgen.ARCGenSource`; :class:`TRMObjective` is the loss and
the prediction of a :class:`~trmgym.agents.trm.TRM` written over an explicit parameter dict, so
``torch.func.grad`` can differentiate it and ``torch.func.vmap`` can batch it over tasks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from trmgym.agents.trm import TRM, TRMCarry
from trmgym.envs.arcgen import ARCGenSource, colors_to_tokens_padded

__all__ = ["FewShotBatch", "TRMObjective", "arcgen_batch", "check_count"]

Params = dict[str, torch.Tensor]


def check_count(name: str, value: object, low: int = 1) -> int:
    """``value`` as an int ``>= low``; a bool, float or string is refused naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


class FewShotBatch(NamedTuple):
    """A batch of few-shot tasks as flattened token grids (``L = H * W`` cells per grid).

    All four grids are int64 tensors; PAD (0) marks cells outside a grid.
    """

    support_x: torch.Tensor
    """``[tasks, k, L]`` demonstration inputs (the support set)."""
    support_y: torch.Tensor
    """``[tasks, k, L]`` demonstration outputs."""
    query_x: torch.Tensor
    """``[tasks, q, L]`` inputs to answer after adaptation (the query set)."""
    query_y: torch.Tensor
    """``[tasks, q, L]`` their outputs."""
    task_ids: torch.Tensor
    """``[tasks]`` int64 ids of the tasks in their source."""

    @property
    def num_tasks(self) -> int:
        return int(self.support_x.shape[0])

    @property
    def shots(self) -> int:
        """``k``, demonstrations per task."""
        return int(self.support_x.shape[1])

    def take(self, k: int) -> FewShotBatch:
        """The same tasks with only their first ``k`` demonstrations (``1 <= k <= shots``)."""
        k = check_count("k", k)
        if k > self.shots:
            raise ValueError(f"k must be an int in 1..{self.shots}, got {k}")
        return self._replace(support_x=self.support_x[:, :k], support_y=self.support_y[:, :k])

    def to(self, device: torch.device | str) -> FewShotBatch:
        return FewShotBatch(*(t.to(device) for t in self))


def arcgen_batch(
    source: ARCGenSource,
    task_ids: Sequence[int] | np.ndarray,
    k: int,
    q: int,
    rng: np.random.Generator,
) -> FewShotBatch:
    """Draw ``k`` support and ``q`` query pairs for each task of ``task_ids`` (fresh pairs).

    Args:
        source: the ARCGen tasks; grids are ``source.max_size`` square, flattened row-major.
        task_ids: ``[tasks]`` ids in ``0..source.num_tasks - 1``.
        k: support pairs per task (``>= 1``).
        q: query pairs per task (``>= 1``).
        rng: the generator the pairs are drawn from.

    Returns:
        A :class:`FewShotBatch` on the CPU.
    """
    k, q = check_count("k", k), check_count("q", q)
    ids = np.asarray(task_ids, dtype=np.int64)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(f"task_ids must be a non-empty 1-D list of task ids, got {task_ids!r}")
    inputs, outputs = source.sample_pairs(rng, np.repeat(ids, k + q))
    cells = source.max_size * source.max_size
    x = torch.from_numpy(colors_to_tokens_padded(inputs).reshape(len(ids), k + q, cells))
    y = torch.from_numpy(colors_to_tokens_padded(outputs).reshape(len(ids), k + q, cells))
    return FewShotBatch(x[:, :k], y[:, :k], x[:, k:], y[:, k:], torch.from_numpy(ids))


def fixed_arcgen_batch(
    source: ARCGenSource,
    task_ids: Sequence[int] | np.ndarray,
    k: int,
    q: int,
    seed: int,
    stream: int = 0,
) -> FewShotBatch:
    """Like :func:`arcgen_batch`, but each pair comes from its own generator, keyed by
    ``(stream, task, support|query, index)`` under ``seed``: the query pairs and the first ``j``
    support pairs of a task are the same whatever ``k``, ``q`` and the other tasks are. A
    held-out set drawn this way scores ``k = 1`` on the same demos and query grids in a run
    with ``k_shots=[1]`` as in one with ``[1, 2, 3]`` (one stream drew every pair after the
    first ``max(k_shots)`` support pairs, so all of them moved with it).

    Args:
        source, task_ids, k, q: as :func:`arcgen_batch`.
        seed: an int ``>= 0``, the root of every pair's generator.
        stream: tells apart batches under one seed (a split's index).
    """
    k, q = check_count("k", k), check_count("q", q)
    ids = np.asarray(task_ids, dtype=np.int64)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(f"task_ids must be a non-empty 1-D list of task ids, got {task_ids!r}")
    pairs = [  # [tasks * (k + q)] in task-major order, support then query, as arcgen_batch
        source.sample_pairs(
            np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, task, role, i))),
            np.array([task]),
        )
        for task in ids.tolist()
        for role, count in ((0, k), (1, q))
        for i in range(count)
    ]
    inputs = np.concatenate([p[0] for p in pairs])
    outputs = np.concatenate([p[1] for p in pairs])
    cells = source.max_size * source.max_size
    x = torch.from_numpy(colors_to_tokens_padded(inputs).reshape(len(ids), k + q, cells))
    y = torch.from_numpy(colors_to_tokens_padded(outputs).reshape(len(ids), k + q, cells))
    return FewShotBatch(x[:, :k], y[:, :k], x[:, k:], y[:, k:], torch.from_numpy(ids))


class TRMObjective:
    """A TRM's loss and prediction as pure functions of a parameter dict.

    ``loss(params, x, y)`` runs ``supervision_steps`` TRM steps from the fixed initial carry
    (each step's carry detached, as TRM's deep supervision) and averages the token
    cross-entropy of every step; ``predict(params, x)`` is the last step's argmax. Both accept
    one task's grids ``[n, L]``; ``torch.func.vmap`` maps them over a task dimension.

    What the meta-gradient sees: inside each step the first ``h_cycles - 1`` cycles run under
    ``torch.no_grad`` and the carry between steps is detached, so ``torch.func.grad`` — the
    inner-loop gradient — flows through the last cycle of each step only, and MAML's
    second-order term (the Hessian-vector product through the inner update) is that of this
    truncated gradient: the no-grad cycles act as a fixed, parameter-dependent input transform
    whose dependence on the parameters is ignored, exactly as in TRM's own training.

    Args:
        model: the network (its buffers — the initial carry — are closed over, not adapted).
        supervision_steps: TRM steps per prediction (``>= 1``).
    """

    def __init__(self, model: TRM, supervision_steps: int = 1) -> None:
        if not isinstance(model, TRM):
            raise TypeError(f"model must be a TRM, got {type(model).__name__}")
        self.model = model
        self.supervision_steps = check_count("supervision_steps", supervision_steps)

    def params(self) -> Params:
        """The model's parameters as a dict (the live tensors, for an outer optimiser)."""
        return dict(self.model.named_parameters())

    def _buffers(self) -> Params:
        return dict(self.model.named_buffers())

    def step_logits(
        self, params: Mapping[str, torch.Tensor], x: torch.Tensor
    ) -> list[torch.Tensor]:
        """``[n, L, vocab]`` logits of every supervision step for inputs ``x`` ``[n, L]``."""
        model, buffers = self.model, self._buffers()
        shape = (x.shape[0], model.config.total_len, model.config.hidden_size)
        carry = TRMCarry(
            buffers["y_init"].expand(shape).clone(), buffers["z_init"].expand(shape).clone()
        )
        logits = []
        for _ in range(self.supervision_steps):
            out = functional_call(model, ({**params}, buffers), (x, carry))
            logits.append(out.logits)
            carry = out.carry
        return logits

    def loss(
        self, params: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        """Scalar: token cross-entropy averaged over supervision steps and cells."""
        steps = self.step_logits(params, x)
        return sum(self.model.cross_entropy(logits, y) for logits in steps) / len(steps)

    def predict(self, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """``[n, L]`` int64 predicted tokens (the last supervision step's argmax)."""
        return self.step_logits(params, x)[-1].argmax(-1)


def exact(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``[...]`` bool: every cell of the grid (last dim) equals the target."""
    return (prediction == target).all(dim=-1)


def detached(params: Mapping[str, torch.Tensor]) -> Params:
    """A copy of ``params`` cut from the graph (same storage; no deep copy)."""
    return {name: value.detach() for name, value in params.items()}


def module_params(module: nn.Module) -> Params:
    """``dict(module.named_parameters())``."""
    return dict(module.named_parameters())
