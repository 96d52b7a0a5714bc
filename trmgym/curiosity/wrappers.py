"""Gymnasium wrappers that add an intrinsic bonus to the reward and train it online.

``reward = extrinsic + coef * intrinsic`` on every step, with ``info["intrinsic_reward"]`` and
``info["extrinsic_reward"]`` reporting both parts (per env row for the vector wrapper, with
Gymnasium's ``_key`` masks, all true). The bonus rates the transition ``(obs, action, next_obs)``
just taken (:mod:`trmgym.curiosity.base`). Unless the bonus module is frozen, the wrapper keeps the
transitions since the last training step and, every ``update_every`` calls of ``step``, hands
them to ``bonus.update`` in one batch and forgets them (``last_losses`` holds what it returned).

- :class:`IntrinsicReward` wraps a single env. ``reset`` is never rated (no action led there);
  after ``terminated``/``truncated`` the next call is ``reset``, so no transition crosses
  episodes. It is an ordinary ``gymnasium.Wrapper``: ``check_env`` and Stable-Baselines3 (via
  ``DummyVecEnv``) use it unchanged.
- :class:`IntrinsicRewardVector` wraps a ``gymnasium.vector.VectorEnv`` such as trmgym's
  ``PuzzleVectorEnv``, honouring its ``metadata["autoreset_mode"]``:

  - ``NEXT_STEP`` (the default): the step after a row finishes ignores that row's action and
    returns the first observation of a new puzzle with extrinsic reward 0. That is no transition,
    so the row's intrinsic reward is 0 and it is neither rated (no visit counted, no return
    advanced) nor trained on. The step that *finished* the row is an ordinary transition into
    the true final observation and is rated as usual.
  - ``SAME_STEP``: a finishing row's returned observation is already the next puzzle's first; its
    transition is rated and trained on with ``info["final_obs"]`` as ``next_obs``, and the next
    step starts from the new puzzle's observation.
  - ``DISABLED``: every row of every step is a transition (the caller resets finished rows).

``state_dict`` / ``load_state_dict`` save the bonus module's state, the transitions waiting for
the next training step, the step counter and ``last_losses``, so a checkpoint resumes exactly. The env's own state
is not in it: after loading, ``reset`` the env as usual.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from trmgym.curiosity.base import IntrinsicBonus, nonnegative_float, positive_int
from trmgym.curiosity.encoding import add_batch_axis, concat_batches, take_rows


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _copy(item) for key, item in value.items()}
    return np.array(value, copy=True)


class _OnlineTraining:
    """The part both wrappers share: the bonus, its coefficient and the pending transitions."""

    def __init__(self, bonus: IntrinsicBonus, coef: float, update_every: int) -> None:
        if not isinstance(bonus, IntrinsicBonus):
            raise TypeError(
                "bonus must be an IntrinsicBonus (RND, CountBonus, ForwardModelSurprise, "
                f"CombinedBonus), got {type(bonus).__name__}"
            )
        self.bonus = bonus
        self.coef = nonnegative_float(coef, "coef")
        self.update_every = positive_int(update_every, "update_every")
        self.pending: list[dict[str, Any]] = []
        self.steps_since_update = 0
        self.last_losses: dict[str, float] = {}

    def rate_and_learn(
        self, obs: Any, actions: Any, next_obs: Any, mask: np.ndarray | None = None
    ) -> np.ndarray:
        """The bonus ``[B]`` of a batch of transitions; stores them, and trains when due."""
        intrinsic = self.bonus.bonus(obs, actions, next_obs, mask=mask)
        if self.bonus.frozen:
            return intrinsic
        rows = np.ones(len(intrinsic), dtype=bool) if mask is None else mask
        if rows.any():
            self.pending.append(
                {
                    "obs": take_rows(obs, rows),
                    "actions": _take(actions, rows),
                    "next_obs": take_rows(next_obs, rows),
                }
            )
        self.steps_since_update += 1
        if self.steps_since_update >= self.update_every:
            if self.pending:
                batch = concat_batches(self.pending)
                self.last_losses = self.bonus.update(
                    batch["obs"], batch["actions"], batch["next_obs"]
                )
            self.pending = []
            self.steps_since_update = 0
        return intrinsic

    def state_dict(self) -> dict[str, Any]:
        return {
            "bonus": self.bonus.state_dict(),
            "steps_since_update": self.steps_since_update,
            "pending": concat_batches(self.pending) if self.pending else None,
            "last_losses": dict(self.last_losses),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.bonus.load_state_dict(state["bonus"])
        self.steps_since_update = int(state["steps_since_update"])
        self.pending = [] if state["pending"] is None else [_copy(state["pending"])]
        self.last_losses = dict(state["last_losses"])


class _Shaping:
    """What both wrappers expose of their :class:`_OnlineTraining` (``self._training``)."""

    _training: _OnlineTraining

    def action_masks(self) -> np.ndarray:
        """The wrapped env's ``action_masks()`` (edit and walk modes), unchanged: the nearest
        wrapper that has it, else the unwrapped env's.

        Raises:
            AttributeError: no env below has ``action_masks`` (grid mode envs, most others).
        """
        env = self.env
        while not hasattr(env, "action_masks"):
            inner = getattr(env, "env", None)
            if inner is None or inner is env:
                raise AttributeError(f"{type(self.unwrapped).__name__} has no action_masks()")
            env = inner
        return env.action_masks()

    def close(self) -> None:
        self.bonus.release(self)
        super().close()  # type: ignore[misc]

    @property
    def bonus(self) -> IntrinsicBonus:
        return self._training.bonus

    @property
    def coef(self) -> float:
        return self._training.coef

    @property
    def last_losses(self) -> dict[str, float]:
        return self._training.last_losses

    def state_dict(self) -> dict[str, Any]:
        """The bonus module's state, the pending transitions and the step counter."""
        return self._training.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._training.load_state_dict(state)


def _take(actions: Any, rows: np.ndarray) -> Any:
    if isinstance(actions, Mapping):
        return take_rows(actions, rows)
    return np.array(np.asarray(actions)[rows], copy=True)


class IntrinsicReward(_Shaping, gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Add ``coef * bonus`` to a single env's reward, training the bonus online.

    Args:
        env: a Gymnasium env with a Dict observation space the bonus was built for.
        bonus: an :class:`~trmgym.curiosity.base.IntrinsicBonus`; a frozen one is only read.
        coef: weight of the intrinsic reward (a finite float ``>= 0``).
        update_every: ``step`` calls between training steps (an int ``>= 1``); each trains on
            the ``update_every`` transitions since the last.

    Attributes:
        last_losses: what the latest ``bonus.update`` returned (``{}`` before the first).

    Raises:
        TypeError: ``bonus`` is not an IntrinsicBonus, or the env's observations are not a Dict.
        ValueError: ``coef < 0``, ``update_every < 1``, or an observation space the bonus
            cannot read (naming the key).
    """

    def __init__(
        self,
        env: gym.Env,
        bonus: IntrinsicBonus,
        *,
        coef: float = 1.0,
        update_every: int = 128,
    ) -> None:
        # recorded in env.spec, so gymnasium.make(env.spec) rebuilds the wrapper (around the
        # same bonus object, whose statistics it then shares)
        gym.utils.RecordConstructorArgs.__init__(
            self, bonus=bonus, coef=coef, update_every=update_every
        )
        super().__init__(env)
        self._training = _OnlineTraining(bonus, coef, update_every)
        bonus.check_observation_space(env.observation_space, "env")
        bonus.claim(self)
        self._last_obs: dict[str, np.ndarray] | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._last_obs = add_batch_axis(_copy(obs))
        self.bonus.end_episodes(np.ones(1, dtype=bool))
        self.bonus.start_episodes(self._last_obs, np.ones(1, dtype=bool))
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self._last_obs is None:
            raise RuntimeError("call reset() before step()")
        obs, reward, terminated, truncated, info = self.env.step(action)
        next_obs = add_batch_axis(_copy(obs))
        intrinsic = float(
            self._training.rate_and_learn(self._last_obs, add_batch_axis(action), next_obs)[0]
        )
        self._last_obs = next_obs
        if terminated or truncated:
            self.bonus.end_episodes(np.ones(1, dtype=bool))
        info = dict(info)
        info["extrinsic_reward"] = float(reward)
        info["intrinsic_reward"] = intrinsic
        return obs, float(reward) + self.coef * intrinsic, terminated, truncated, info


class IntrinsicRewardVector(_Shaping, gym.vector.VectorWrapper):
    """Add ``coef * bonus`` to every row of a vector env's reward, training the bonus online.

    Args:
        env: a ``gymnasium.vector.VectorEnv`` whose ``single_observation_space`` is a Dict the
            bonus was built for.
        bonus: an :class:`~trmgym.curiosity.base.IntrinsicBonus`; a frozen one is only read.
        coef: weight of the intrinsic reward (a finite float ``>= 0``).
        update_every: batched ``step`` calls between training steps (an int ``>= 1``); each
            trains on the up to ``update_every * num_envs`` transitions since the last.

    ``info["intrinsic_reward"]`` and ``info["extrinsic_reward"]`` are float64 ``[num_envs]``.
    See the module docstring for how each autoreset mode is handled.

    Raises:
        TypeError / ValueError: as :class:`IntrinsicReward`.
    """

    def __init__(
        self,
        env: gym.vector.VectorEnv,
        bonus: IntrinsicBonus,
        *,
        coef: float = 1.0,
        update_every: int = 16,
    ) -> None:
        super().__init__(env)
        self._training = _OnlineTraining(bonus, coef, update_every)
        bonus.check_observation_space(env.single_observation_space, "env")
        bonus.claim(self)
        self.autoreset_mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        self._last_obs: dict[str, np.ndarray] | None = None
        self._autoresetting = np.zeros(self.num_envs, dtype=bool)

    def reset(
        self, *, seed: Any = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._last_obs = _copy(obs)
        self._autoresetting = np.zeros(self.num_envs, dtype=bool)
        self.bonus.end_episodes(np.ones(self.num_envs, dtype=bool))
        self.bonus.start_episodes(self._last_obs, np.ones(self.num_envs, dtype=bool))
        return obs, info

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._last_obs is None:
            raise RuntimeError("call reset() before step()")
        obs, reward, terminated, truncated, info = self.env.step(actions)
        done = np.asarray(terminated) | np.asarray(truncated)
        next_obs = _copy(obs)
        mask = np.ones(self.num_envs, dtype=bool)
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            mask = ~self._autoresetting
            self._autoresetting = done
        elif self.autoreset_mode == AutoresetMode.SAME_STEP and "final_obs" in info:
            for row in np.flatnonzero(info.get("_final_obs", done)):
                for key in next_obs:
                    next_obs[key][row] = info["final_obs"][row][key]
        intrinsic = self._training.rate_and_learn(self._last_obs, actions, next_obs, mask)
        self.bonus.end_episodes(done)  # after rating: the final state counts in its episode
        self._last_obs = _copy(obs)
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:  # rows showing a new first obs
            self.bonus.start_episodes(self._last_obs, ~mask)
        elif self.autoreset_mode == AutoresetMode.SAME_STEP:
            self.bonus.start_episodes(self._last_obs, done)
        extrinsic = np.asarray(reward, dtype=np.float64)
        info = dict(info)
        everyone = np.ones(self.num_envs, dtype=bool)
        info.update(
            extrinsic_reward=extrinsic.copy(),
            _extrinsic_reward=everyone,
            intrinsic_reward=intrinsic,
            _intrinsic_reward=everyone.copy(),
        )
        return obs, extrinsic + self.coef * intrinsic, terminated, truncated, info
