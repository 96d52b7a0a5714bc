"""Schemas and the agent protocol of the baseline agents, without importing Stable-Baselines3.

The configs (``agent=sb3_ppo|sb3_dqn|sb3_maskable_ppo|random``), what
:class:`~trmgym.experiment.ContinualRun` needs of a self-training agent (:class:`EnvLearner`)
and what it returns (:class:`ChunkResult`); the agents themselves live in
:mod:`trmgym.agents.baselines` (imported only by runs that use one: SB3 takes a second to import).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env import VecEnv

__all__ = [
    "BASELINE_AGENTS",
    "BaselineAgentConfig",
    "ChunkResult",
    "EnvLearner",
    "PolicySummary",
    "RandomAgentConfig",
    "SB3AgentConfig",
    "SB3DQNConfig",
    "SB3MaskablePPOConfig",
    "SB3PPOConfig",
]


# ---------------------------------------------------------------------------------- configs
@dataclass
class BaselineAgentConfig:
    """The base of the baseline agents' schemas (``agent/base_random``, ``agent/base_sb3_*``)."""

    name: str = "random"
    """Which agent: "random", "sb3_ppo", "sb3_dqn" or "sb3_maskable_ppo"."""

    def __post_init__(self) -> None:
        if self.name not in BASELINE_AGENTS:
            raise ValueError(
                f"agent.name must be one of {list(BASELINE_AGENTS)}, got {self.name!r}"
            )
        own = type(self).__dataclass_fields__["name"].default
        if type(self) is not BaselineAgentConfig and self.name != own:
            # the name labels results.json, the banner and report groups, and picks the
            # algorithm in places: a name that is not the schema's would run one agent as another
            raise ValueError(
                f"agent.name is fixed by the agent= choice ({own!r} for agent={own}), got "
                f"{self.name!r}: choose the agent with agent={self.name} instead"
            )


@dataclass
class RandomAgentConfig(BaselineAgentConfig):
    """Uniform random actions (``agent=random``): the floor."""

    name: str = "random"


@dataclass
class SB3AgentConfig(BaselineAgentConfig):
    """What every SB3 agent shares: the token-grid features extractor and the policy MLP."""

    name: str = "sb3_ppo"
    embed_dim: int = 16
    """Token embedding width of :class:`TokenGridExtractor`."""
    channels: int = 32
    """Channels of its two 3x3 convolutions."""
    features_dim: int = 128
    """Width of its output features."""
    net_arch: list[int] = field(default_factory=lambda: [128, 128])
    """Hidden layers of the policy (and value / Q) MLP after the extractor."""
    learning_rate: float = 3e-4
    """Adam learning rate (constant)."""
    gamma: float = 0.99
    """Discount factor."""
    deterministic_eval: bool = True
    """Evaluate with the policy's most likely action (SB3's ``evaluate_policy`` default); false
    samples from the policy, as Procgen-style evaluations on procedurally generated levels do — a
    memoryless greedy policy can repeat a blocked move in a maze until the step limit. DQN's
    greedy action is taken either way."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.deterministic_eval, bool):
            raise ValueError(
                f"agent.deterministic_eval must be true or false, got {self.deterministic_eval!r}"
            )
        for key in ("embed_dim", "channels", "features_dim"):
            _positive_int(getattr(self, key), f"agent.{key}")
        if not isinstance(self.net_arch, list) or not all(
            isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in self.net_arch
        ):
            raise ValueError(f"agent.net_arch must be a list of ints >= 1, got {self.net_arch!r}")
        _number_in(self.learning_rate, "agent.learning_rate", 0.0, None, low_open=True)
        _number_in(self.gamma, "agent.gamma", 0.0, 1.0)


@dataclass
class SB3PPOConfig(SB3AgentConfig):
    """SB3 PPO (``agent=sb3_ppo``); keys as ``stable_baselines3.PPO``'s arguments."""

    name: str = "sb3_ppo"
    n_steps: int = 10
    """Env steps per puzzle row per rollout: a rollout is ``n_steps * run.batch_size`` steps
    (choose it dividing ``run.eval_every``: a chunk's steps after its last whole rollout are not
    trained on, which a run warns of; a chunk shorter than one rollout is refused, since PPO
    would never train)."""
    batch_size: int = 320
    """Minibatch size of the PPO epochs (``>= 2``; at most one rollout's
    ``n_steps * run.batch_size``)."""
    n_epochs: int = 4
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("n_steps", "batch_size", "n_epochs"):
            _positive_int(getattr(self, key), f"agent.{key}")
        if self.batch_size < 2:  # SB3 normalises advantages over each minibatch (its issue 440)
            raise ValueError(f"agent.batch_size must be an int >= 2, got {self.batch_size!r}")
        _number_in(self.gae_lambda, "agent.gae_lambda", 0.0, 1.0)
        _number_in(self.clip_range, "agent.clip_range", 0.0, None, low_open=True)
        for key in ("ent_coef", "vf_coef", "max_grad_norm"):
            _number_in(getattr(self, key), f"agent.{key}", 0.0, None)


@dataclass
class SB3MaskablePPOConfig(SB3PPOConfig):
    """sb3-contrib MaskablePPO (``agent=sb3_maskable_ppo``): PPO over the env's valid actions."""

    name: str = "sb3_maskable_ppo"


@dataclass
class SB3DQNConfig(SB3AgentConfig):
    """SB3 DQN (``agent=sb3_dqn``); keys as ``stable_baselines3.DQN``'s arguments."""

    name: str = "sb3_dqn"
    learning_rate: float = 1e-4
    buffer_size: int = 10_000
    """Transitions in the replay buffer (checkpointed with the run)."""
    learning_starts: int = 1000
    """Env steps of random actions before learning starts."""
    batch_size: int = 64
    tau: float = 1.0
    train_freq: int = 1
    """Vector-env steps (each ``run.batch_size`` transitions) between updates."""
    gradient_steps: int = 1
    target_update_interval: int = 1000
    exploration_fraction: float = 0.2
    """Share of each task's budget over which epsilon falls to ``exploration_final_eps``."""
    exploration_initial_eps: float = 1.0
    exploration_final_eps: float = 0.05
    max_grad_norm: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in (
            "buffer_size",
            "batch_size",
            "train_freq",
            "gradient_steps",
            "target_update_interval",
        ):
            _positive_int(getattr(self, key), f"agent.{key}")
        if (
            isinstance(self.learning_starts, bool)
            or not isinstance(self.learning_starts, int)
            or self.learning_starts < 0
        ):
            raise ValueError(
                f"agent.learning_starts must be an int >= 0, got {self.learning_starts!r}"
            )
        for key in (
            "tau",
            "exploration_fraction",
            "exploration_initial_eps",
            "exploration_final_eps",
        ):
            _number_in(getattr(self, key), f"agent.{key}", 0.0, 1.0)
        _number_in(self.max_grad_norm, "agent.max_grad_norm", 0.0, None, low_open=True)


#: the schema of each baseline agent, by ``name``
BASELINE_AGENTS: dict[str, type[BaselineAgentConfig]] = {
    "random": RandomAgentConfig,
    "sb3_ppo": SB3PPOConfig,
    "sb3_dqn": SB3DQNConfig,
    "sb3_maskable_ppo": SB3MaskablePPOConfig,
}


def _positive_int(value: Any, key: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key} must be an int >= 1, got {value!r}")


def _number_in(
    value: Any, key: str, low: float, high: float | None, *, low_open: bool = False
) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and (high is None or value <= high)
    if not ok:
        bounds = f"{'>' if low_open else '>='} {low:g}" + (
            "" if high is None else f" and <= {high:g}"
        )
        raise ValueError(f"{key} must be a finite number {bounds}, got {value!r}")


# ------------------------------------------------------------------------- the agent protocol
class ChunkResult(NamedTuple):
    """What :meth:`EnvLearner.learn_chunk` did."""

    env_steps: int
    """Env steps actually taken (one per puzzle row and vector step)."""
    metrics: dict[str, float]
    """The last value of each scalar the learner logged (``train/…``, ``rollout/…``)."""


@dataclass
class PolicySummary:
    """What results.json records of a baseline's network (``agent.model_config``)."""

    policy: str
    """The policy class."""
    parameters: int
    """Trainable parameters."""
    features: str = ""
    """The features extractor and its widths."""
    net_arch: list[int] = field(default_factory=list)


@runtime_checkable
class EnvLearner(Protocol):
    """An agent that trains itself on a vector env, chunk by chunk.

    :class:`~trmgym.experiment.ContinualRun` drives such an agent instead of stepping it
    (the TRM's :class:`~trmgym.runner.TaskTrainer`): it evaluates it with :meth:`act` between
    chunks and checkpoints :meth:`state_dict`. ``initial_carry``/``act``/``eval_weights`` are
    the same calls the TRM answers, so :func:`trmgym.runner.evaluate` serves both.
    """

    device: torch.device
    model: nn.Module
    model_config: PolicySummary
    #: whether :meth:`act` wants the env's ``action_masks()`` (MaskablePPO)
    wants_action_masks: bool

    def initial_carry(self, batch_size: int) -> None: ...

    def act(
        self, obs: Mapping[str, np.ndarray], carry: None, *, action_masks: np.ndarray | None = None
    ) -> tuple[np.ndarray | dict[str, np.ndarray], None]: ...

    def eval_weights(self) -> contextlib.AbstractContextManager[Any]: ...

    def learn_chunk(
        self,
        env: VecEnv,
        env_steps: int,
        *,
        task_progress: tuple[int, int] = (0, 0),
        on_progress: Callable[[int, dict[str, float]], None] | None = None,
    ) -> ChunkResult: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...
