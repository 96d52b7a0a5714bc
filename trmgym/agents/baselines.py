"""Classic RL baselines for the puzzle envs: Stable-Baselines3 PPO, DQN, MaskablePPO, and random.

These agents play the Discrete action modes (``edit``: write one token into one cell, or halt;
``walk`` where the env has it) and train themselves on an SB3 ``VecEnv``
(:class:`~trmgym.agents.sb3_vec_env.SB3VecEnv`, all puzzles in one call), chunk by chunk, so a
continual run (:class:`trmgym.experiment.ContinualRun`) can evaluate and checkpoint between chunks
exactly as it does for the TRM. What a run needs of such an agent is :class:`EnvLearner`.

- PPO: Schulman et al. 2017, "Proximal Policy Optimization Algorithms" (SB3's ``PPO``).
- DQN: Mnih et al. 2015, "Human-level control through deep reinforcement learning" (SB3's ``DQN``).
- MaskablePPO: PPO with invalid-action masking (Huang & Ontañón 2022), sb3-contrib's
  ``MaskablePPO``; needs ``pip install 'trmgym[sb3]'`` and an env with ``action_masks()``.
- random: uniform actions from the action space, seeded: the floor every learner must beat.

Observations are token grids (``grid``, ``answer``: ints of one shared vocabulary) plus the task
label; :class:`TokenGridExtractor` embeds the tokens, runs a small conv net and an MLP.

Budgets: one chunk of ``k`` TRM optimizer steps of a batch of ``B`` puzzles is exactly ``k * B``
env steps for these agents (SB3 is stopped by a callback when the chunk's steps are played;
DQN with ``train_freq > 1`` may take up to ``train_freq - 1`` vector steps more). PPO
trains on whole rollouts of ``n_steps * B`` env steps: the steps of a chunk after its last whole
rollout are played (and counted) but not trained on, so choose ``n_steps`` dividing
``run.eval_every`` (the default 10 divides 20, 250 and 1250); DQN stores every transition. The
learning-rate and exploration schedules run over each task's budget
(``learn_chunk(task_progress=...)``), restarting at every new task.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.vec_env import VecEnv, VecMonitor
from torch import nn

from trmgym.agents.baseline_configs import (
    BASELINE_AGENTS,
    BaselineAgentConfig,
    ChunkResult,
    EnvLearner,
    PolicySummary,
    RandomAgentConfig,
    SB3AgentConfig,
    SB3DQNConfig,
    SB3MaskablePPOConfig,
    SB3PPOConfig,
)
from trmgym.agents.random_agent import RandomAgent, sample_actions
from trmgym.agents.token_features import TokenGridExtractor
from trmgym.agents.trm_agent import resolve_device

__all__ = [
    "BASELINE_AGENTS",
    "BaselineAgentConfig",
    "ChunkResult",
    "EnvLearner",
    "PolicySummary",
    "RandomAgent",
    "RandomAgentConfig",
    "SB3Agent",
    "SB3AgentConfig",
    "SB3DQNConfig",
    "SB3MaskablePPOConfig",
    "SB3PPOConfig",
    "TokenGridExtractor",
    "make_baseline_agent",
    "sample_actions",
]

INSTALL_HINT = "pip install 'trmgym[sb3]' (or pip install sb3-contrib)"


# ------------------------------------------------------------------------------- helpers
class _SpacesOnly(VecEnv):
    """A stand-in VecEnv that only carries spaces and a batch size (SB3 builds its buffers and
    policy from an env; the real one arrives with each chunk)."""

    def __init__(self, num_envs: int, observation_space: spaces.Space, action_space: spaces.Space):
        self.render_mode = None
        super().__init__(num_envs, observation_space, action_space)

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("this agent was not given an env yet; call learn_chunk(env, ...)")

    reset = step_async = step_wait = _refuse

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        if attr_name == "render_mode":
            return [None] * self.num_envs
        raise AttributeError(attr_name)

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        raise AttributeError(attr_name)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list:
        raise AttributeError(method_name)

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * self.num_envs


class _Capture(KVWriter):
    """An SB3 logger output that hands each dump to ``sink(values, step)`` (numbers only; the
    wall-clock ``time/…`` keys are dropped so logs do not depend on the machine's speed)."""

    def __init__(self, sink: Callable[[dict[str, float], int], None]) -> None:
        self.sink = sink

    def write(self, key_values: dict[str, Any], key_excluded: Any, step: int = 0) -> None:
        values = {
            k: float(v)
            for k, v in key_values.items()
            if not k.startswith("time/") and isinstance(v, int | float | np.number)
        }
        self.sink(values, step)

    def close(self) -> None:
        pass


class _StopAt(BaseCallback):
    """Stops SB3's ``learn`` when the model has taken ``limit`` env steps in all.

    SB3 asks after every vector step (``num_envs`` env steps, already played). The step that
    reaches ``limit`` is kept when it completes a PPO rollout (which then trains) or is an
    off-policy transition (stored; with ``train_freq=1`` it also trains); a PPO step that
    reaches it mid-rollout ends the rollout untrained. So a ``limit`` that is a multiple of
    ``num_envs`` is met exactly (DQN with ``train_freq > 1``: up to ``train_freq - 1`` vector
    steps more)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = int(limit)

    def _on_step(self) -> bool:
        done = self.model.num_timesteps
        if done < self.limit:
            return True
        if done > self.limit:
            return False
        stored, rollout = self.locals.get("n_steps"), self.locals.get("n_rollout_steps")
        if isinstance(stored, int) and isinstance(rollout, int):  # on-policy
            return stored + 1 >= rollout
        return True


class _TaskSchedule:
    """Progress (for SB3's learning-rate and exploration schedules) over the current task's
    budget rather than over one ``learn()`` call: SB3 measures it from each call's own total."""

    schedule_origin: int = 0
    schedule_length: int = 0

    def _update_current_progress_remaining(self, num_timesteps: int, total_timesteps: int) -> None:
        if self.schedule_length <= 0:
            super()._update_current_progress_remaining(num_timesteps, total_timesteps)  # type: ignore[misc]
            return
        done = (num_timesteps - self.schedule_origin) / self.schedule_length
        self._current_progress_remaining = float(min(1.0, max(0.0, 1.0 - done)))


class _PPO(_TaskSchedule, PPO):
    pass


class _DQN(_TaskSchedule, DQN):
    pass


def _maskable_ppo_class() -> type:
    try:
        from sb3_contrib import MaskablePPO
    except ImportError:
        raise RuntimeError(
            f"agent=sb3_maskable_ppo needs sb3-contrib, which is not installed: {INSTALL_HINT}"
        ) from None

    class _MaskablePPO(_TaskSchedule, MaskablePPO):
        pass

    return _MaskablePPO


def _global_rng_state() -> dict[str, Any]:
    """The generators SB3 draws from: numpy's and Python's global ones (torch's is saved by
    the run), as checkpoint-safe values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "numpy": {
            "kind": kind,
            "keys": keys.astype(np.int64),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": random.getstate(),
        "torch": torch.random.get_rng_state(),
    }


def _set_global_rng_state(state: Mapping[str, Any]) -> None:
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], np.asarray(n["keys"]).astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
    )
    python = state["python"]
    random.setstate((python[0], tuple(int(x) for x in python[1]), python[2]))
    torch.random.set_rng_state(state["torch"])


# --------------------------------------------------------------------------- SB3 agents
class SB3Agent:
    """A Stable-Baselines3 PPO, DQN or MaskablePPO that trains chunk by chunk (:class:`EnvLearner`).

    Args:
        config: an :class:`SB3PPOConfig`, :class:`SB3DQNConfig` or :class:`SB3MaskablePPOConfig`.
        observation_space: the Dict space of one puzzle (with the run's ``task_id`` labels).
        action_space: the Discrete space of one puzzle (``edit`` or ``walk`` mode).
        num_envs: puzzles stepped together (every env given to :meth:`learn_chunk` has these).
        seed: seeds the weights and every draw (SB3's ``set_random_seed``: Python, numpy and
            torch global generators and the action space).
        device: "auto", "cpu" or "cuda".

    Raises:
        TypeError: the action space is not Discrete.
        RuntimeError: MaskablePPO without sb3-contrib installed (with the install command).
    """

    def __init__(
        self,
        config: SB3AgentConfig,
        *,
        observation_space: spaces.Dict,
        action_space: spaces.Space,
        num_envs: int,
        seed: int = 0,
        device: str = "auto",
    ) -> None:
        if not isinstance(action_space, spaces.Discrete):
            raise TypeError(
                f"agent={config.name} needs a Discrete action space (env.action_mode=edit or "
                f"walk), got {action_space}"
            )
        self.config = config
        self.device = resolve_device(device)
        self.wants_action_masks = isinstance(config, SB3MaskablePPOConfig)
        c = config
        policy_kwargs = {
            "features_extractor_class": TokenGridExtractor,
            "features_extractor_kwargs": {
                "embed_dim": c.embed_dim,
                "channels": c.channels,
                "features_dim": c.features_dim,
            },
            "net_arch": list(c.net_arch),
        }
        stand_in = _SpacesOnly(num_envs, observation_space, action_space)
        common = {
            "policy_kwargs": policy_kwargs,
            "learning_rate": c.learning_rate,
            "gamma": c.gamma,
            "seed": int(seed),
            "device": self.device,
            "verbose": 0,
        }
        if isinstance(c, SB3DQNConfig):
            self.algo = _DQN(
                "MultiInputPolicy",
                stand_in,
                buffer_size=c.buffer_size,
                learning_starts=c.learning_starts,
                batch_size=c.batch_size,
                tau=c.tau,
                train_freq=c.train_freq,
                gradient_steps=c.gradient_steps,
                target_update_interval=c.target_update_interval,
                exploration_fraction=c.exploration_fraction,
                exploration_initial_eps=c.exploration_initial_eps,
                exploration_final_eps=c.exploration_final_eps,
                max_grad_norm=c.max_grad_norm,
                **common,
            )
        else:
            cls = _maskable_ppo_class() if self.wants_action_masks else _PPO
            self.algo = cls(
                "MultiInputPolicy",
                stand_in,
                n_steps=c.n_steps,
                batch_size=min(c.batch_size, c.n_steps * num_envs),
                n_epochs=c.n_epochs,
                gae_lambda=c.gae_lambda,
                clip_range=c.clip_range,
                ent_coef=c.ent_coef,
                vf_coef=c.vf_coef,
                max_grad_norm=c.max_grad_norm,
                **common,
            )
        self._metrics: dict[str, float] = {}
        self._on_dump: Callable[[dict[str, float], int], None] | None = None
        self.algo.set_logger(Logger(folder=None, output_formats=[_Capture(self._dump)]))
        #: env steps asked for by every learn_chunk so far (the budget; SB3 may run past it)
        self.requested = 0
        policy = self.algo.policy
        self.model_config = PolicySummary(
            policy=f"{type(self.algo).__mro__[2].__name__}/{type(policy).__name__}",
            parameters=sum(p.numel() for p in policy.parameters() if p.requires_grad),
            features=f"TokenGridExtractor(embed_dim={c.embed_dim}, channels={c.channels}, "
            f"features_dim={c.features_dim})",
            net_arch=list(c.net_arch),
        )

    @property
    def model(self) -> nn.Module:
        """The policy network (what plugins' ``after_task`` and ``metrics`` see)."""
        return self.algo.policy

    @property
    def num_timesteps(self) -> int:
        """Env steps trained on so far."""
        return int(self.algo.num_timesteps)

    def _dump(self, values: dict[str, float], step: int) -> None:
        self._metrics.update(values)
        if self._on_dump is not None:
            self._on_dump(values, step)

    # ------------------------------------------------------------------------------ acting
    def initial_carry(self, batch_size: int) -> None:
        """No recurrent state: ``None``."""
        return None

    def act(
        self,
        obs: Mapping[str, np.ndarray],
        carry: None = None,
        *,
        action_masks: np.ndarray | None = None,
        **_: Any,
    ) -> tuple[np.ndarray, None]:
        """The action of each row, ``([B] int64, None)``: the greedy one, or a draw from the
        policy with ``agent.deterministic_eval=false`` (from torch's global generator, whose state
        the checkpoint keeps).

        ``obs`` holds ``[B, H, W]`` ``grid``/``answer`` tokens and ``[B]`` ``task_id`` labels
        (``0`` when the run has no labels); ``action_masks`` (``[B, n]`` bool) restricts
        MaskablePPO to valid actions.
        """
        policy_obs = {k: np.asarray(obs[k]) for k in self.algo.observation_space.spaces}
        labels = self.algo.observation_space["task_id"].n
        policy_obs["task_id"] = (
            np.clip(policy_obs["task_id"], 0, labels - 1)
            if labels > 1
            else np.zeros_like(policy_obs["task_id"])
        )
        kwargs = {"action_masks": action_masks} if self.wants_action_masks else {}
        actions, _ = self.algo.predict(
            policy_obs,
            # DQN has no policy to sample from (a draw would be epsilon-greedy): always greedy
            deterministic=self.config.deterministic_eval or self.config.name == "sb3_dqn",
            **kwargs,
        )
        return np.asarray(actions, dtype=np.int64).reshape(-1), None

    def eval_weights(self) -> contextlib.AbstractContextManager[Any]:
        """The weights used to evaluate: the trained ones (SB3 keeps no average)."""
        return contextlib.nullcontext()

    # ----------------------------------------------------------------------------- learning
    def learn_chunk(
        self,
        env: VecEnv,
        env_steps: int,
        *,
        task_progress: tuple[int, int] = (0, 0),
        on_progress: Callable[[int, dict[str, float]], None] | None = None,
    ) -> ChunkResult:
        """Train on ``env`` (fresh puzzles: it is reset first) for about ``env_steps`` env steps.

        Args:
            env: an SB3 ``VecEnv`` with this agent's spaces and ``num_envs``.
            env_steps: this chunk's share of the budget: SB3 is stopped when every chunk's
                steps so far are played (exactly, for a multiple of ``num_envs``).
            task_progress: ``(env steps already trained on this task, the task's budget in env
                steps)``: the learning-rate and exploration schedules run over the task's budget.
            on_progress: called as ``on_progress(env_steps_done_in_chunk, scalars)`` at each of
                SB3's log dumps.

        Returns:
            The env steps taken and the last value of each logged scalar.
        """
        algo = self.algo
        start = algo.num_timesteps
        algo.schedule_origin = start - int(task_progress[0])
        algo.schedule_length = int(task_progress[1])
        self._metrics = {}
        if on_progress is not None:
            self._on_dump = lambda values, step: on_progress(int(step) - start, values)
        try:
            algo.set_env(VecMonitor(env), force_reset=True)
            self.requested += int(env_steps)
            todo = self.requested - algo.num_timesteps
            if todo > 0:
                algo.learn(
                    total_timesteps=todo,
                    callback=_StopAt(self.requested),
                    reset_num_timesteps=False,
                    # PPO: a dump per rollout; DQN counts episodes: about one per batch of them
                    log_interval=algo.n_envs if isinstance(algo, DQN) else 1,
                )
                algo.logger.dump(algo.num_timesteps)  # the last update's train/… values
        finally:
            self._on_dump = None
        return ChunkResult(algo.num_timesteps - start, dict(self._metrics))

    # ---------------------------------------------------------------------------- checkpoint
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly: weights, optimizer, step
        counters, schedule position, DQN's replay buffer, episode statistics and the global
        random generators SB3 draws from (numpy, Python, torch) and the action space's."""
        algo = self.algo
        state: dict[str, Any] = {
            "policy": algo.policy.state_dict(),
            "optimizer": algo.policy.optimizer.state_dict(),
            "num_timesteps": int(algo.num_timesteps),
            "requested": int(self.requested),
            "n_updates": int(algo._n_updates),
            "episode_num": int(algo._episode_num),
            "progress_remaining": float(algo._current_progress_remaining),
            "episodes": [{k: float(v) for k, v in e.items()} for e in (algo.ep_info_buffer or [])],
            "action_space_rng": algo.action_space.np_random.bit_generator.state,
            "rng": _global_rng_state(),
            "replay": None,
        }
        if isinstance(algo, DQN):
            state["n_calls"] = int(algo._n_calls)
            state["exploration_rate"] = float(algo.exploration_rate)
            state["replay"] = _buffer_state(algo.replay_buffer)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        algo = self.algo
        algo.policy.load_state_dict(state["policy"])
        algo.policy.optimizer.load_state_dict(state["optimizer"])
        algo.num_timesteps = int(state["num_timesteps"])
        self.requested = int(state["requested"])
        algo._n_updates = int(state["n_updates"])
        algo._episode_num = int(state["episode_num"])
        algo._current_progress_remaining = float(state["progress_remaining"])
        from collections import deque

        algo.ep_info_buffer = deque(
            ({k: v for k, v in e.items()} for e in state["episodes"]),
            maxlen=algo._stats_window_size,
        )
        algo.ep_success_buffer = deque(maxlen=algo._stats_window_size)
        algo.action_space.np_random.bit_generator.state = state["action_space_rng"]
        if isinstance(algo, DQN):
            algo._n_calls = int(state["n_calls"])
            algo.exploration_rate = float(state["exploration_rate"])
            _load_buffer(algo.replay_buffer, state["replay"])
        _set_global_rng_state(state["rng"])


def _buffer_state(buffer: Any) -> dict[str, Any]:
    """The filled part of an SB3 (Dict)ReplayBuffer."""
    end = buffer.buffer_size if buffer.full else buffer.pos
    arrays = {}
    for name in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        value = getattr(buffer, name)
        arrays[name] = (
            {k: v[:end].copy() for k, v in value.items()}
            if isinstance(value, dict)
            else value[:end].copy()
        )
    return {"pos": int(buffer.pos), "full": bool(buffer.full), "arrays": arrays}


def _load_buffer(buffer: Any, state: Mapping[str, Any]) -> None:
    for name, saved in state["arrays"].items():
        target = getattr(buffer, name)
        if isinstance(target, dict):
            for key, value in saved.items():
                target[key][: len(value)] = value
        else:
            target[: len(saved)] = saved
    buffer.pos, buffer.full = int(state["pos"]), bool(state["full"])


def make_baseline_agent(
    config: BaselineAgentConfig,
    *,
    observation_space: spaces.Dict,
    action_space: spaces.Space,
    num_envs: int,
    seed: int,
    device: str,
) -> RandomAgent | SB3Agent:
    """The agent of ``config`` for these spaces (see :class:`SB3Agent`, :class:`RandomAgent`)."""
    if isinstance(config, RandomAgentConfig) or config.name == "random":
        return RandomAgent(action_space, seed=seed, device=device)
    return SB3Agent(
        config,  # type: ignore[arg-type]
        observation_space=observation_space,
        action_space=action_space,
        num_envs=num_envs,
        seed=seed,
        device=device,
    )
