"""The TRM agent: one env step is one TRM supervision step, and halting is learned.

Each call of :meth:`TRMAgent.act` runs one supervision step of the Tiny Recursive Model
(Jolicoeur-Martineau 2025) on a batch of puzzles — T cycles of latent and answer refinement, starting
from the carry of the previous step — and returns the answer (the argmax tokens) and a halting
decision as a batched env action. :meth:`TRMAgent.learn` then applies *deep supervision*: the
cross-entropy of that step's answer against the target (exposed by training envs only) plus the
halting loss (``bce``: the paper's correctness classifier; ``dqn``: Q-learning from the env reward,
see :mod:`trmgym.agents.halting`), one AdamW step with warm-up and clipping, and an EMA update.
The carry is detached between steps, so each step is its own small backward pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch

from trmgym.agents.halting import (
    HALTING_MODES,
    BCEHalting,
    DQNHalting,
    DQNHaltingConfig,
    answer_statistics,
)
from trmgym.agents.trm import EMA, TRM, TRMCarry, TRMConfig

SIZES = ("tiny", "small", "paper")


def resolve_device(device: str) -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU; ``"cuda"`` without CUDA is an error."""
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device must be one of ['auto', 'cpu', 'cuda'], got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available; use device=cpu or auto")
    return torch.device(device)


@dataclass
class TRMAgentConfig:
    """Arguments of :class:`TRMAgent` (the ``agent`` config group)."""

    size: str = "tiny"
    """Model preset: "tiny" (D=64), "small" (D=128) or "paper" (D=512, T=3, n=6)."""
    model: dict[str, Any] = field(default_factory=dict)
    """Overrides of :class:`~trmgym.agents.trm.TRMConfig` fields, e.g. {"h_cycles": 2}."""
    halting: str = "dqn"
    """Halting rule: "dqn" (Q-learning from the env reward) or "bce" (TRM's classifier)."""
    dqn: DQNHaltingConfig = field(default_factory=DQNHaltingConfig)
    """DQN halting hyper-parameters (used when halting="dqn")."""
    halt_loss_weight: float = 0.5
    """Weight of the BCE halting loss next to the answer cross-entropy."""
    lr: float = 1e-3
    """AdamW learning rate after warm-up."""
    weight_decay: float = 0.1
    """AdamW weight decay."""
    beta2: float = 0.95
    """AdamW second-moment decay (beta1 = 0.9)."""
    warmup_steps: int = 100
    """Optimizer steps of linear learning-rate warm-up."""
    grad_clip: float = 1.0
    """Gradient-norm clip (0 disables)."""
    ema_decay: float = 0.999
    """EMA decay of the weights used for evaluation (0 disables the EMA)."""
    compile: bool = False
    """Wrap the network with torch.compile."""

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ValueError(f"agent.size must be one of {list(SIZES)}, got {self.size!r}")
        if self.halting not in HALTING_MODES:
            raise ValueError(
                f"agent.halting must be one of {list(HALTING_MODES)}, got {self.halting!r}"
            )
        if isinstance(self.dqn, dict):
            self.dqn = DQNHaltingConfig(**self.dqn)
        for name in ("lr", "halt_loss_weight", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0 or (name == "lr" and value == 0):
                raise ValueError(
                    f"agent.{name} must be a number {'> 0' if name == 'lr' else '>= 0'}, got {value!r}"
                )
        if not 0 <= self.beta2 < 1:
            raise ValueError(f"agent.beta2 must lie in [0, 1), got {self.beta2}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"agent.ema_decay must lie in [0, 1), got {self.ema_decay}")
        if self.warmup_steps < 0:
            raise ValueError(f"agent.warmup_steps must be >= 0, got {self.warmup_steps}")


class AgentCarry(NamedTuple):
    """Per-puzzle recurrent state of the agent between reasoning steps."""

    trm: TRMCarry
    """(y, z) of the network."""
    q_state: torch.Tensor
    """Recurrent state of the DQN Q-head (``gru``; zeros otherwise)."""
    steps: torch.Tensor
    """Reasoning steps taken on the current puzzle ``[B]``."""
    answer: torch.Tensor
    """The previous answer tokens ``[B, L]`` (for the answer-change statistic)."""


class _Pending(NamedTuple):
    logits: torch.Tensor
    q_halt: torch.Tensor
    summary: torch.Tensor
    steps: torch.Tensor
    q_state: torch.Tensor
    halt: torch.Tensor


class _Open(NamedTuple):
    summary: torch.Tensor
    steps: torch.Tensor
    q_state: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    open: torch.Tensor


class TRMAgent:
    """A Tiny Recursive Model that answers puzzles step by step and learns when to stop.

    Args:
        config: agent hyper-parameters.
        canvas: ``(H, W)`` of the env's grids.
        max_steps: the env's reasoning-step limit.
        num_tasks: tasks with a learned embedding (0: none).
        seed: seeds initialisation and all of the agent's random draws.
        device: "auto", "cpu" or "cuda".
    """

    def __init__(
        self,
        config: TRMAgentConfig | None = None,
        *,
        canvas: tuple[int, int],
        max_steps: int = 16,
        num_tasks: int = 0,
        seed: int = 0,
        device: str = "auto",
    ) -> None:
        self.config = config or TRMAgentConfig()
        self.device = resolve_device(device)
        self.canvas = (int(canvas[0]), int(canvas[1]))
        self.max_steps = int(max_steps)
        preset = getattr(TRMConfig, self.config.size)
        overrides = {
            "seq_len": self.canvas[0] * self.canvas[1],
            "grid_height": self.canvas[0],
            "grid_width": self.canvas[1],
            "num_task_embeddings": int(num_tasks),
        }
        overrides.update(self.config.model)
        if self.device.type == "cuda":
            overrides.setdefault("forward_dtype", "bfloat16")
        self.model_config = preset(**overrides)
        torch.manual_seed(seed)
        self.model = TRM(self.model_config).to(self.device)
        self.network = torch.compile(self.model) if self.config.compile else self.model
        c = self.config
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=c.lr, weight_decay=c.weight_decay, betas=(0.9, c.beta2)
        )
        self.ema = EMA(self.model, c.ema_decay) if c.ema_decay > 0 else None
        self.bce = BCEHalting()
        feature_dim = 2 * self.model_config.hidden_size + 3
        self.dqn = (
            DQNHalting(feature_dim, self.max_steps, c.dqn, device=self.device, seed=seed + 1)
            if c.halting == "dqn"
            else None
        )
        self.updates = 0
        self._pending: _Pending | None = None
        self._open: _Open | None = None  # DQN transitions awaiting their next state

    # ------------------------------------------------------------------------------- carries
    def initial_carry(self, batch_size: int) -> AgentCarry:
        """The starting carry of ``batch_size`` fresh puzzles."""
        q_state = (
            self.dqn.initial_state(batch_size)
            if self.dqn
            else torch.zeros(batch_size, 1, device=self.device)
        )
        return AgentCarry(
            self.model.initial_carry(batch_size, self.device),
            q_state,
            torch.zeros(batch_size, dtype=torch.long, device=self.device),
            torch.full(
                (batch_size, self.model_config.seq_len), -1, dtype=torch.long, device=self.device
            ),
        )

    def reset_carry(self, carry: AgentCarry, mask: np.ndarray | torch.Tensor) -> AgentCarry:
        """Reset the rows where ``mask`` is true (puzzles that just ended)."""
        mask = torch.as_tensor(
            mask if isinstance(mask, torch.Tensor) else np.asarray(mask),
            dtype=torch.bool,
            device=self.device,
        )
        if not bool(mask.any()):
            return carry
        rows = mask.view(-1, 1)
        return AgentCarry(
            self.model.reset_carry(carry.trm, mask),
            torch.where(rows, torch.zeros_like(carry.q_state), carry.q_state),
            torch.where(mask, torch.zeros_like(carry.steps), carry.steps),
            torch.where(rows, torch.full_like(carry.answer, -1), carry.answer),
        )

    # --------------------------------------------------------------------------------- acting
    def _tensor_obs(self, obs: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor | None]:
        grid = torch.as_tensor(obs["grid"], device=self.device).reshape(len(obs["grid"]), -1)
        task = None
        if self.model_config.num_task_embeddings:
            task = torch.as_tensor(np.asarray(obs["task_id"]), device=self.device).long()
        return grid.long(), task

    def act(
        self,
        obs: dict[str, np.ndarray],
        carry: AgentCarry,
        *,
        explore: bool = False,
        learn: bool = False,
    ) -> tuple[dict[str, np.ndarray], AgentCarry]:
        """One reasoning step on a batch: ``({"answer": [B,H,W], "halt": [B]}, new carry)``.

        With ``learn=True`` the step keeps its graph for the next :meth:`learn` call.
        """
        grid, task = self._tensor_obs(obs)
        with torch.set_grad_enabled(learn):
            out = self.network(grid, carry.trm, task)
        answer = out.logits.detach().argmax(dim=-1)
        summary = torch.cat(
            (out.features.detach(), answer_statistics(out.logits, carry.answer)), dim=-1
        )
        if self.dqn is not None:
            halt, _, q_state = self.dqn.decide(summary, carry.steps, carry.q_state, explore=explore)
        else:
            halt, q_state = self.bce.decide(out.q_halt), carry.q_state
        # the last allowed step ends the episode anyway; halting there collects the solve bonus
        halt = halt | (carry.steps + 1 >= self.max_steps)
        if learn:
            self._complete_transitions(summary, carry.steps, carry.q_state)
            self._pending = _Pending(
                out.logits, out.q_halt, summary, carry.steps, carry.q_state, halt
            )
        action = {
            "answer": answer.view(-1, *self.canvas).cpu().numpy(),
            "halt": halt.long().cpu().numpy(),
        }
        return action, AgentCarry(out.carry, q_state, carry.steps + 1, answer)

    # ------------------------------------------------------------------------------- learning
    def _complete_transitions(
        self, summary: torch.Tensor, steps: torch.Tensor, q_state: torch.Tensor
    ) -> None:
        """Give the transitions left open at the previous step their next state."""
        if self.dqn is None or self._open is None:
            return
        prev, rows = self._open, self._open.open
        if bool(rows.any()):
            self.dqn.store(
                features=prev.summary[rows].cpu().numpy(),
                step=prev.steps[rows].cpu().numpy(),
                state=prev.q_state[rows].cpu().numpy(),
                action=prev.action[rows].cpu().numpy(),
                reward=prev.reward[rows].cpu().numpy(),
                next_features=summary[rows].cpu().numpy(),
                next_step=steps[rows].cpu().numpy(),
                next_state=q_state[rows].cpu().numpy(),
                done=np.zeros(int(rows.sum()), dtype=np.float32),
            )
        self._open = None

    def begin_chunk(self) -> None:
        """Forget in-flight steps (a new training env starts; open transitions are dropped)."""
        self._pending = self._open = None

    def supervised_loss(
        self, grid: np.ndarray, target: np.ndarray, task: np.ndarray | None
    ) -> torch.Tensor:
        """Cross-entropy of one reasoning step from a fresh carry (replay, Fisher estimates)."""
        n = len(grid)
        x = torch.as_tensor(np.asarray(grid), device=self.device).reshape(n, -1).long()
        task_t = None
        if self.model_config.num_task_embeddings and task is not None:
            task_t = torch.as_tensor(np.asarray(task), device=self.device).long()
        out = self.network(x, self.model.initial_carry(n, self.device), task_t)
        y = torch.as_tensor(np.asarray(target), device=self.device).reshape(n, -1).long()
        return self.model.cross_entropy(out.logits, y)

    def learn(
        self,
        target: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        *,
        replay: Any = None,
        penalty: Callable[[torch.nn.Module], torch.Tensor | None] | None = None,
    ) -> dict[str, float]:
        """Deep supervision on the last :meth:`act` (``learn=True``) and a halting update.

        Args:
            target: ``[B, H, W]`` target tokens of the puzzles that step acted on.
            reward: ``[B]`` env rewards of that step.
            done: ``[B]`` whether each puzzle ended (halted or truncated) at that step.
            replay: optional extra supervised puzzles (``grid``, ``target``, ``task`` fields),
                trained from a fresh carry on top of the current batch (experience replay).
            penalty: optional ``penalty(model) -> loss`` added to the loss (e.g. EWC).
        """
        if self._pending is None:
            raise RuntimeError("learn() needs a preceding act(..., learn=True)")
        pending, self._pending = self._pending, None
        c = self.config
        target_t = (
            torch.as_tensor(np.asarray(target), device=self.device).reshape(len(target), -1).long()
        )
        ce = self.model.cross_entropy(pending.logits, target_t)
        correct = (pending.logits.detach().argmax(-1) == target_t).all(dim=-1)
        loss = ce
        metrics: dict[str, float] = {}
        if replay is not None:
            replay_ce = self.supervised_loss(replay.grid, replay.target, replay.task)
            # each replayed puzzle weighs as much as a current one; the current batch stays whole
            loss = loss + replay_ce * (len(replay.grid) / len(target))
            metrics["train/replay_ce"] = float(replay_ce.detach())
        if penalty is not None:
            extra = penalty(self.model)
            if extra is not None:
                loss = loss + extra
                metrics["train/penalty"] = float(extra.detach())
        if self.dqn is None:
            halt_loss = self.bce.loss(pending.q_halt, correct)
            loss = loss + c.halt_loss_weight * halt_loss
            metrics["halt/bce_loss"] = float(halt_loss.detach())
        lr = c.lr * min(1.0, (self.updates + 1) / max(c.warmup_steps, 1))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = (
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
            if c.grad_clip > 0
            else torch.tensor(math.nan)
        )
        self.optimizer.step()
        self.updates += 1
        if self.ema is not None:
            # warm-up of the decay (as TensorFlow's ExponentialMovingAverage with num_updates):
            # early on the average would otherwise be dominated by the random initialisation
            self.ema.mu = min(c.ema_decay, (1 + self.updates) / (10 + self.updates))
            self.ema.update(self.model)
        metrics.update(
            {
                "train/loss": float(loss.detach()),
                "train/ce": float(ce.detach()),
                "train/exact": float(correct.float().mean()),
                "train/cell_accuracy": float(
                    (pending.logits.detach().argmax(-1) == target_t).float().mean()
                ),
                "train/grad_norm": float(grad_norm),
                "train/lr": lr,
            }
        )
        if self.dqn is not None:
            done_t = torch.as_tensor(np.asarray(done), dtype=torch.bool, device=self.device)
            reward_t = torch.as_tensor(np.asarray(reward), dtype=torch.float32, device=self.device)
            action = pending.halt.long()
            if bool(done_t.any()):
                rows = done_t
                self.dqn.store(
                    features=pending.summary[rows].cpu().numpy(),
                    step=pending.steps[rows].cpu().numpy(),
                    state=pending.q_state[rows].cpu().numpy(),
                    action=action[rows].cpu().numpy(),
                    reward=reward_t[rows].cpu().numpy(),
                    next_features=np.zeros_like(pending.summary[rows].cpu().numpy()),
                    next_step=pending.steps[rows].cpu().numpy(),
                    next_state=pending.q_state[rows].cpu().numpy(),
                    done=np.ones(int(rows.sum()), dtype=np.float32),
                )
            # keep the open rows until the next act supplies their next state
            self._open = _Open(
                pending.summary, pending.steps, pending.q_state, action, reward_t, ~done_t
            )
            metrics.update(self.dqn.learn())
        return metrics

    # ----------------------------------------------------------------------------- evaluation
    def eval_weights(self):  # noqa: ANN201 - a context manager
        """Context manager: the EMA weights while evaluating (a no-op without EMA)."""
        import contextlib

        return (
            self.ema.swap(self.model)
            if self.ema is not None
            else contextlib.nullcontext(self.model)
        )

    # ----------------------------------------------------------------------------- checkpoint
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly (tensors, numpy arrays and plain values)."""
        return {
            "config": asdict(self.config),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "dqn": self.dqn.state_dict() if self.dqn else None,
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        if self.dqn is not None:
            self.dqn.load_state_dict(state["dqn"])
        self.updates = int(state["updates"])
        self._pending = self._open = None
