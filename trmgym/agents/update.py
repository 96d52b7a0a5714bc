"""Update rules: how a loss becomes new weights (optimizer step, warm-up, clipping, EMA).

An agent computes its loss and hands it to its update rule, so the rule is replaceable without
touching the agent: :class:`GradientUpdate` is the plain gradient step (AdamW with linear warm-up,
gradient-norm clipping and an EMA of the weights for evaluation, as TRM trains); the meta-learning
room provides rules of its own (MAML's inner/outer loop, test-time training).

An update rule implements :class:`UpdateRule`: ``step(loss) -> metrics``, ``eval_weights()`` (a
context manager giving the weights to evaluate with), ``updates`` (steps taken) and
``state_dict``/``load_state_dict`` for exact resume.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from trmgym.agents.trm import EMA
from trmgym.distributed import average_gradients

__all__ = ["GradientUpdate", "UpdateRule"]


@runtime_checkable
class UpdateRule(Protocol):
    """What an agent needs of an update rule."""

    updates: int
    """Optimizer steps taken so far."""

    def step(self, loss: torch.Tensor) -> dict[str, float]:
        """Apply one update from the scalar ``loss``; returns ``train/...`` metrics."""
        ...

    def eval_weights(self) -> contextlib.AbstractContextManager[nn.Module]:
        """Context manager: the model holds the weights to evaluate with inside it."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


class GradientUpdate:
    """AdamW with linear warm-up, gradient-norm clipping and a weight EMA.

    Args:
        model: the network whose parameters are updated.
        lr: learning rate after warm-up (> 0).
        weight_decay: AdamW weight decay (decoupled; Loshchilov & Hutter 2019).
        beta2: AdamW second-moment decay (beta1 = 0.9).
        warmup_steps: steps of linear learning-rate warm-up (0: none).
        grad_clip: maximum global gradient norm (0 disables clipping).
        ema_decay: decay of the EMA used for evaluation (0 disables it); the decay warms up as
            ``min(ema_decay, (1 + t) / (10 + t))`` after ``t`` updates (TensorFlow's
            ``ExponentialMovingAverage`` with ``num_updates``) so early averages are not dominated
            by the random initialisation.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        beta2: float = 0.95,
        warmup_steps: int = 100,
        grad_clip: float = 1.0,
        ema_decay: float = 0.999,
    ) -> None:
        self.model = model
        self.lr, self.warmup_steps = float(lr), int(warmup_steps)
        self.grad_clip, self.ema_decay = float(grad_clip), float(ema_decay)
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, beta2)
        )
        self.ema = EMA(model, ema_decay) if ema_decay > 0 else None
        self.updates = 0

    def learning_rate(self) -> float:
        """The learning rate of the next step (linear warm-up, then constant)."""
        return self.lr * min(1.0, (self.updates + 1) / max(self.warmup_steps, 1))

    def step(self, loss: torch.Tensor) -> dict[str, float]:
        """Backpropagate ``loss``, clip, step, update the EMA; ``train/grad_norm``, ``train/lr``.

        In a data-parallel run (:mod:`trmgym.distributed`) the gradients are averaged over the
        ranks before clipping, so every rank takes the same step.
        """
        lr = self.learning_rate()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(self.model.parameters())
        grad_norm = (
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            if self.grad_clip > 0
            else torch.tensor(math.nan)
        )
        self.optimizer.step()
        self.updates += 1
        if self.ema is not None:
            self.ema.mu = min(self.ema_decay, (1 + self.updates) / (10 + self.updates))
            self.ema.update(self.model)
        return {"train/grad_norm": float(grad_norm), "train/lr": lr}

    def eval_weights(self) -> contextlib.AbstractContextManager[nn.Module]:
        """The EMA weights while inside (a no-op without EMA)."""
        if self.ema is None:
            return contextlib.nullcontext(self.model)
        return self.ema.swap(self.model)

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "updates": self.updates,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.updates = int(state["updates"])
