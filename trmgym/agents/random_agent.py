"""The random baseline: uniform actions from the action space, seeded — the floor a learner must beat.

:class:`RandomAgent` is an :class:`~trmgym.agents.baseline_configs.EnvLearner` for any action
mode (grid, edit, walk); it learns nothing but plays its budget, so its rollout statistics (the
solve rate of random play) sit next to a learner's. Needs no Stable-Baselines3.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces
from torch import nn

from trmgym.agents.baseline_configs import ChunkResult, PolicySummary
from trmgym.agents.trm_agent import resolve_device

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env import VecEnv

__all__ = ["RandomAgent", "sample_actions"]


def sample_actions(space: spaces.Space, n: int, rng: np.random.Generator) -> Any:
    """``n`` uniform draws from ``space`` as one batched action (``[n]`` for Discrete,
    ``[n, *shape]`` for a Box, a dict of those for a Dict), all from ``rng``.

    Raises:
        TypeError: a space other than Discrete, Box, MultiDiscrete, MultiBinary or Dict.
    """
    if isinstance(space, spaces.Discrete):
        return space.start + rng.integers(0, space.n, size=n, dtype=np.int64)
    if isinstance(space, spaces.Box):
        if np.issubdtype(space.dtype, np.integer):
            return rng.integers(
                space.low, space.high, size=(n, *space.shape), endpoint=True
            ).astype(space.dtype)
        return rng.uniform(space.low, space.high, size=(n, *space.shape)).astype(space.dtype)
    if isinstance(space, spaces.MultiDiscrete):
        return (rng.random((n, *space.shape)) * space.nvec).astype(np.int64) + space.start
    if isinstance(space, spaces.MultiBinary):
        return rng.integers(0, 2, size=(n, *np.atleast_1d(space.n)), dtype=np.int8)
    if isinstance(space, spaces.Dict):
        return {k: sample_actions(s, n, rng) for k, s in space.spaces.items()}
    raise TypeError(f"cannot sample a batch of {type(space).__name__} actions")


class RandomAgent:
    """Uniform random actions from the action space, seeded (:class:`EnvLearner`): the floor.

    It learns nothing; :meth:`learn_chunk` still plays its share of env steps so that its
    rollout statistics (solve rate of random play) sit next to a learner's.

    Args:
        action_space: the action space of one puzzle (any mode: grid, edit, walk).
        seed: seeds the agent's one generator (checkpointed).
    """

    wants_action_masks = False

    def __init__(self, action_space: spaces.Space, *, seed: int = 0, device: str = "cpu") -> None:
        self.action_space = action_space
        self.rng = np.random.default_rng(seed)
        self.device = resolve_device(device)
        self.model = nn.Module()
        self.model_config = PolicySummary(policy="uniform random", parameters=0)
        sample_actions(action_space, 1, np.random.default_rng(0))  # unsupported space: fail now

    def initial_carry(self, batch_size: int) -> None:
        return None

    def act(self, obs: Mapping[str, np.ndarray], carry: None = None, **_: Any) -> tuple[Any, None]:
        """``len(obs["grid"])`` uniform actions (a batched action of the space), and ``None``."""
        return sample_actions(self.action_space, len(obs["grid"]), self.rng), None

    def eval_weights(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def learn_chunk(
        self,
        env: VecEnv,
        env_steps: int,
        *,
        task_progress: tuple[int, int] = (0, 0),
        on_progress: Callable[[int, dict[str, float]], None] | None = None,
    ) -> ChunkResult:
        """Play ``ceil(env_steps / num_envs)`` vector steps of random actions on ``env``."""
        env.reset()
        steps = -(-int(env_steps) // env.num_envs)
        for _ in range(steps):
            env.step(sample_actions(self.action_space, env.num_envs, self.rng))
        return ChunkResult(steps * env.num_envs, {})

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
