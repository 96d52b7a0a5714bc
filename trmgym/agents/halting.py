"""Halting heads: when should a recursive reasoner stop thinking?

Two pluggable rules decide, after each reasoning step, whether to halt:

- :class:`BCEHalting` — the Tiny Recursive Model's rule (Jolicoeur-Martineau 2025, §4.6, after
  HRM's ACT): the network's ``q_halt`` logit is trained by binary cross-entropy against "the current
  answer is exactly right", and the agent halts when ``q_halt > 0``.
- :class:`DQNHalting` — halting as a two-action control problem, {continue, halt}, learned by deep
  Q-learning (Mnih et al. 2015) from the environment's own reward (Δ cell accuracy − step cost, +
  solve bonus on a correct halt), with a replay buffer, a soft-updated target network (τ = 0.005,
  Lillicrap et al. 2016) and an ε-greedy schedule. The Q-head reads a detached summary of the
  reasoning state — pooled y and z, answer-confidence statistics and the step — so the TD loss
  never reaches the reasoning network. Variants: ``mlp``; ``gru`` (a recurrent state over the
  episode's steps, reset at episode boundaries; replayed with its stored state, as in R2D2,
  Kapturowski et al. 2019); ``attention`` (self-attention over (y, z, step) tokens).

A step limit is part of the state (the step index is an input), so time-limit truncation is
treated as terminal for bootstrapping.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trmgym.checks import positive_int
from trmgym.distributed import all_ready, average_gradients
from trmgym.memory.replay import RingBuffer

HALTING_MODES = ("bce", "dqn")
Q_HEADS = ("mlp", "gru", "attention")
CONTINUE, HALT = 0, 1
ANSWER_STATS = 3  # columns of answer_statistics


def answer_statistics(logits: torch.Tensor, previous_answer: torch.Tensor | None) -> torch.Tensor:
    """``[B, 3]`` confidence features of a step's answer: mean and min over cells of the top
    token probability, and the fraction of cells that changed since the previous answer."""
    probs = logits.detach().float().softmax(dim=-1).amax(dim=-1)  # [B, L]
    answer = logits.detach().argmax(dim=-1)
    if previous_answer is None:
        changed = torch.ones(len(answer), device=logits.device)
    else:
        changed = (answer != previous_answer).float().mean(dim=-1)
    return torch.stack((probs.mean(dim=-1), probs.amin(dim=-1), changed), dim=-1)


class BCEHalting:
    """TRM's halting: learn P(answer is correct) and halt when ``q_halt > 0``."""

    def decide(self, q_halt: torch.Tensor) -> torch.Tensor:
        """Halt mask ``[B]`` (bool)."""
        return q_halt.detach() > 0

    def loss(self, q_halt: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
        """Binary cross-entropy of the halting logit against exact correctness."""
        return F.binary_cross_entropy_with_logits(q_halt, correct.float())


@dataclass
class DQNHaltingConfig:
    """Arguments of :class:`DQNHalting` (one line each, CleanRL style)."""

    q_head: str = "mlp"
    """Q-network variant: "mlp", "gru" or "attention"."""
    hidden: int = 128
    """Width of the Q-network."""
    gamma: float = 0.99
    """Discount of future reasoning-step rewards."""
    tau: float = 0.005
    """Soft target-network update rate per learning step."""
    lr: float = 1e-3
    """Adam learning rate of the Q-network."""
    eps_start: float = 0.5
    """ε of the ε-greedy halting policy at the first step."""
    eps_end: float = 0.05
    """ε after ``eps_decay_steps`` acting steps (linear decay)."""
    eps_decay_steps: int = 1000
    """Acting steps over which ε decays."""
    buffer_size: int = 20_000
    """Halting transitions kept in the replay ring."""
    batch_size: int = 256
    """Transitions per TD update."""
    learning_starts: int = 512
    """Transitions collected before the first TD update."""

    def __post_init__(self) -> None:
        if self.q_head not in Q_HEADS:
            raise ValueError(
                f"agent.dqn.q_head must be one of {list(Q_HEADS)}, got {self.q_head!r}"
            )
        for name in ("hidden", "eps_decay_steps", "buffer_size", "batch_size"):
            positive_int(getattr(self, name), f"agent.dqn.{name}")
        if self.q_head == "attention" and self.hidden % 4:
            raise ValueError(
                f"agent.dqn.hidden must be divisible by 4 for q_head='attention', got {self.hidden}"
            )
        if self.learning_starts < 0:
            raise ValueError(f"agent.dqn.learning_starts must be >= 0, got {self.learning_starts}")
        for name in ("gamma", "tau", "eps_start", "eps_end"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"agent.dqn.{name} must lie in [0, 1], got {value}")
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"agent.dqn.lr must be a finite number > 0, got {self.lr}")


class QNetwork(nn.Module):
    """Q(s, ·) over {continue, halt} from a state summary, a step index and a recurrent state."""

    def __init__(self, feature_dim: int, max_steps: int, kind: str, hidden: int) -> None:
        super().__init__()
        self.kind, self.hidden, self.max_steps = kind, hidden, max_steps
        self.step_embedding = nn.Embedding(max_steps + 1, hidden)
        self.project = nn.Linear(feature_dim, hidden)
        if kind == "gru":
            self.cell = nn.GRUCell(hidden, hidden)
        elif kind == "attention":
            # features = (pooled y [D], pooled z [D], answer statistics [3]): y and z are tokens
            width = (feature_dim - ANSWER_STATS) // 2
            if width < 1 or 2 * width + ANSWER_STATS != feature_dim:
                raise ValueError(
                    f"q_head='attention' needs feature_dim = 2 * D + {ANSWER_STATS}, got {feature_dim}"
                )
            self.tokens = nn.Linear(width, hidden)
            self.attention = nn.TransformerEncoderLayer(
                hidden, nhead=4, dim_feedforward=2 * hidden, batch_first=True, dropout=0.0
            )
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 2))

    @property
    def state_size(self) -> int:
        """Width of the recurrent state (``gru`` only; 1 otherwise, unused)."""
        return self.hidden if self.kind == "gru" else 1

    def forward(
        self, features: torch.Tensor, step: torch.Tensor, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(q [B, 2], next_state)``; ``features`` = (pooled y, pooled z, answer stats)."""
        step_emb = self.step_embedding(step.clamp(0, self.max_steps))
        if self.kind == "attention":
            width = self.tokens.in_features
            y_part, z_part = features[:, :width], features[:, width : 2 * width]
            stats = self.project(features)  # the whole summary as one more token
            tokens = torch.stack((self.tokens(y_part), self.tokens(z_part), stats, step_emb), dim=1)
            return self.head(self.attention(tokens).mean(dim=1)), state
        hidden = F.silu(self.project(features) + step_emb)
        if self.kind == "gru":
            state = self.cell(hidden, state)
            hidden = state
        return self.head(hidden), state


class DQNHalting:
    """Learns when to stop reasoning by Q-learning on the env's reward.

    Args:
        feature_dim: width of the state summary (``2 * hidden`` of the TRM + 3 answer statistics).
        max_steps: the env's step limit (the step index is embedded up to it).
        config: hyper-parameters.
        device: torch device of the Q-networks.
        seed: seeds the Q-network initialisation, ε-greedy draws and replay sampling.
    """

    def __init__(
        self,
        feature_dim: int,
        max_steps: int,
        config: DQNHaltingConfig | None = None,
        *,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        self.config = config or DQNHaltingConfig()
        self.device = torch.device(device)
        self.max_steps = int(max_steps)
        torch_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        self.q = QNetwork(feature_dim, self.max_steps, self.config.q_head, self.config.hidden)
        torch.random.set_rng_state(torch_state)
        self.q.to(self.device)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.q.parameters(), lr=self.config.lr)
        self.rng = np.random.default_rng(seed)
        state = self.q.state_size
        self.buffer = RingBuffer(
            self.config.buffer_size,
            {
                "features": ((feature_dim,), np.float32),
                "step": ((), np.int64),
                "state": ((state,), np.float32),
                "action": ((), np.int64),
                "reward": ((), np.float32),
                "next_features": ((feature_dim,), np.float32),
                "next_step": ((), np.int64),
                "next_state": ((state,), np.float32),
                "done": ((), np.float32),
            },
        )
        self.acting_steps = 0

    # --------------------------------------------------------------------------------- acting
    def initial_state(self, batch_size: int) -> torch.Tensor:
        """A zero recurrent state ``[B, state_size]``."""
        return torch.zeros(batch_size, self.q.state_size, device=self.device)

    @property
    def epsilon(self) -> float:
        """Current ε of the linear schedule."""
        c = self.config
        fraction = min(self.acting_steps / c.eps_decay_steps, 1.0)
        return c.eps_start + fraction * (c.eps_end - c.eps_start)

    @torch.no_grad()
    def decide(
        self, features: torch.Tensor, step: torch.Tensor, state: torch.Tensor, *, explore: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(halt [B] bool, q [B, 2], next_state)``; ε-greedy when ``explore``."""
        q, next_state = self.q(features.to(self.device), step.to(self.device), state)
        halt = q.argmax(dim=-1) == HALT
        if explore:
            random = torch.from_numpy(self.rng.random(len(halt)) < self.epsilon).to(self.device)
            coin = torch.from_numpy(self.rng.random(len(halt)) < 0.5).to(self.device)
            halt = torch.where(random, coin, halt)
            self.acting_steps += 1
        return halt, q, next_state

    # -------------------------------------------------------------------------------- learning
    def store(self, **transition: np.ndarray) -> None:
        """Add a batch of transitions (fields as in the replay buffer)."""
        self.buffer.add(**transition)

    def learn(self) -> dict[str, float]:
        """One TD update from replay and a soft target update; ``{}`` while warming up."""
        c = self.config
        if not all_ready(len(self.buffer) >= max(c.learning_starts, 1)):
            return {}
        batch = {
            k: torch.from_numpy(v).to(self.device)
            for k, v in self.buffer.sample(self.rng, c.batch_size).items()
        }
        q, _ = self.q(batch["features"], batch["step"], batch["state"])
        q_taken = q.gather(1, batch["action"].view(-1, 1)).squeeze(1)
        with torch.no_grad():
            q_next, _ = self.q_target(
                batch["next_features"], batch["next_step"], batch["next_state"]
            )
            target = batch["reward"] + c.gamma * (1.0 - batch["done"]) * q_next.amax(dim=-1)
        loss = F.smooth_l1_loss(q_taken, target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(self.q.parameters())  # data-parallel runs: the mean over the ranks
        nn.utils.clip_grad_norm_(self.q.parameters(), 10.0)
        self.optimizer.step()
        with torch.no_grad():
            for online, slow in zip(self.q.parameters(), self.q_target.parameters()):
                slow.lerp_(online, c.tau)
        return {
            "halt/td_loss": float(loss.detach()),
            "halt/q_mean": float(q_taken.detach().mean()),
            "halt/epsilon": self.epsilon,
        }

    # ------------------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, Any]:
        return {
            "q": self.q.state_dict(),
            "q_target": self.q_target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "buffer": self.buffer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "acting_steps": self.acting_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.q.load_state_dict(state["q"])
        self.q_target.load_state_dict(state["q_target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.buffer.load_state_dict(state["buffer"])
        self.rng.bit_generator.state = state["rng"]
        self.acting_steps = int(state["acting_steps"])


class HaltingTransitions:
    """Turns the agent's per-step halting decisions into DQN transitions ``(s, a, r, s', done)``.

    A reasoning step's transition is known in two parts: its state, action and reward when the
    step is taken (:meth:`record` then :meth:`finish`), and — for puzzles that go on — its next
    state only at the following step (:meth:`complete`). Ended puzzles are stored at once as
    terminal; the others stay open until the next :meth:`complete`.

    Args:
        dqn: the halting learner whose replay buffer receives the transitions.
    """

    def __init__(self, dqn: DQNHalting) -> None:
        self.dqn = dqn
        self._taken: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._open: tuple[torch.Tensor, ...] | None = None

    def complete(self, summary: torch.Tensor, steps: torch.Tensor, q_state: torch.Tensor) -> None:
        """Give the transitions left open at the previous step their next state (this step's)."""
        if self._open is not None:
            features, step, state, action, reward, rows = self._open
            if bool(rows.any()):
                self._store(
                    rows,
                    (features, step, state, action, reward),
                    (summary, steps, q_state),
                    done=False,
                )
        self._open = None

    def record(
        self, summary: torch.Tensor, steps: torch.Tensor, q_state: torch.Tensor, halt: torch.Tensor
    ) -> None:
        """The state ``[B, F]``, step ``[B]``, Q-state and halt decision ``[B]`` of this step."""
        self._taken = (summary, steps, q_state, halt.long())

    def finish(self, reward: torch.Tensor, done: torch.Tensor) -> None:
        """The step's env ``reward`` ``[B]`` and ``done`` ``[B]`` (bool): store ended puzzles as
        terminal transitions, keep the others open for :meth:`complete`."""
        if self._taken is None:
            raise RuntimeError("finish() needs a preceding record()")
        summary, steps, q_state, action = self._taken
        self._taken = None
        if bool(done.any()):
            # a terminal transition's next state is never used (done masks the bootstrap)
            self._store(
                done,
                (summary, steps, q_state, action, reward),
                (torch.zeros_like(summary), steps, q_state),
                done=True,
            )
        self._open = (summary, steps, q_state, action, reward, ~done)

    def clear(self) -> None:
        """Drop the step in flight and the open transitions (a new env starts)."""
        self._taken = self._open = None

    def _store(
        self,
        rows: torch.Tensor,
        taken: tuple[torch.Tensor, ...],
        following: tuple[torch.Tensor, ...],
        *,
        done: bool,
    ) -> None:
        features, step, state, action, reward = (t[rows].cpu().numpy() for t in taken)
        next_features, next_step, next_state = (t[rows].cpu().numpy() for t in following)
        self.dqn.store(
            features=features,
            step=step,
            state=state,
            action=action,
            reward=reward,
            next_features=next_features,
            next_step=next_step,
            next_state=next_state,
            done=np.full(len(features), float(done), dtype=np.float32),
        )
