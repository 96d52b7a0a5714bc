"""Curiosity as a training plugin: an intrinsic bonus added to the training env's reward.

``curiosity=count|rnd|surprise|combined`` (``configs/curiosity``) builds a :class:`Curiosity`
plugin. Through the seam's ``wrap_env`` it wraps each *training* env in
:class:`~trmgym.curiosity.IntrinsicRewardVector` (``reward = extrinsic + coef * intrinsic``);
evaluation envs are left alone, so every accuracy the run reports is the extrinsic one.

What learns from the shaped reward:

- Stable-Baselines3 agents (``agent=sb3_ppo`` ...): all of their learning — the reward is theirs.
- The TRM agent: only its DQN halting head (the halting transitions carry the env reward). Its
  answer is trained by cross-entropy on the target (deep supervision), which no reward changes.

One bonus module lives for the whole run: it is built on the first training env (it needs the
observation and action spaces), keeps learning across chunks and tasks (novelty is lifelong unless
the bonus is episodic, e.g. ``CountBonus(episodic=True)``), and is checkpointed with the wrapper's
pending transitions and step counter, so a resumed run rates and trains exactly as an uninterrupted
one. Every task of a sequence must give the bonus the same observation space (one canvas).

Sources: RND — Burda et al. 2018; counts — Tang et al. 2017 (#Exploration); forward-model
surprise — Pathak et al. 2017 (ICM). See :mod:`trmgym.curiosity`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from trmgym.curiosity import (
    RND,
    CombinedBonus,
    CountBonus,
    ForwardModelSurprise,
    IntrinsicBonus,
    IntrinsicRewardVector,
)
from trmgym.plugins.base import Plugin

#: ``bonus`` names and the classes they build
BONUSES: dict[str, type[IntrinsicBonus]] = {
    "count": CountBonus,
    "rnd": RND,
    "surprise": ForwardModelSurprise,
}


class _Recording(IntrinsicRewardVector):
    """The intrinsic-reward wrapper, also summing what it paid for the plugin's scalars."""

    def __init__(
        self,
        env: Any,
        bonus: IntrinsicBonus,
        coef: float,
        update_every: int,
        totals: dict[str, float],
    ) -> None:
        super().__init__(env, bonus, coef=coef, update_every=update_every)
        self.totals = totals

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        obs, reward, terminated, truncated, info = super().step(actions)
        self.totals["intrinsic"] += float(np.sum(info["intrinsic_reward"]))
        self.totals["extrinsic"] += float(np.sum(info["extrinsic_reward"]))
        self.totals["transitions"] += float(len(reward))
        return obs, reward, terminated, truncated, info


class Curiosity(Plugin):
    """Adds ``coef`` × an intrinsic bonus to the training reward (see the module docstring).

    Args:
        bonus: ``"count"`` (:class:`~trmgym.curiosity.CountBonus`), ``"rnd"``
            (:class:`~trmgym.curiosity.RND`), ``"surprise"``
            (:class:`~trmgym.curiosity.ForwardModelSurprise`) or ``"combined"`` (a
            :class:`~trmgym.curiosity.CombinedBonus` of ``parts``).
        coef: weight of the intrinsic reward, a float ``>= 0`` (reward units per unit bonus;
            default 0.1, as `curiosity.coef` in every config).
        update_every: training-env steps between the bonus module's training steps (an int
            ``>= 1``; each trains on the transitions since the last).
        args: keyword arguments of the bonus class (e.g. ``{beta: 0.1, episodic: true,
            obs_keys: [position]}`` for counts); for ``"combined"``, unused.
        parts: for ``"combined"`` only: ``{name: {bonus: count|rnd|surprise, weight: w,
            args: {...}}}``.
        seed: seeds the bonus networks and hash projections (``trmgym run`` derives it from the
            run seed unless the node sets it).

    Raises:
        ValueError: an unknown ``bonus`` (or part bonus), ``coef < 0``, ``update_every < 1``,
            ``parts`` without ``combined`` or the reverse — naming ``curiosity.<key>`` and the
            allowed values; a bonus argument the class refuses, at the first training env.
    """

    name = "curiosity"

    def __init__(
        self,
        bonus: str = "count",
        *,
        coef: float = 0.1,
        update_every: int = 16,
        args: Mapping[str, Any] | None = None,
        parts: Mapping[str, Mapping[str, Any]] | None = None,
        seed: int = 0,
    ) -> None:
        allowed = [*BONUSES, "combined"]
        if bonus not in allowed:
            raise ValueError(f"curiosity.bonus must be one of {allowed}, got {bonus!r}")
        if (
            isinstance(coef, bool)
            or not isinstance(coef, int | float)
            or not math.isfinite(coef)
            or not coef >= 0
        ):
            raise ValueError(f"curiosity.coef must be a finite float >= 0, got {coef!r}")
        if isinstance(update_every, bool) or not isinstance(update_every, int) or update_every < 1:
            raise ValueError(f"curiosity.update_every must be an int >= 1, got {update_every!r}")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"curiosity.seed must be an int >= 0, got {seed!r}")
        if (bonus == "combined") != bool(parts):
            raise ValueError(
                "curiosity.parts must be given with curiosity.bonus=combined, and only then "
                f"(got bonus={bonus!r}, parts={dict(parts or {})!r})"
            )
        for name, part in (parts or {}).items():
            if not isinstance(part, Mapping) or part.get("bonus") not in BONUSES:
                raise ValueError(
                    f"curiosity.parts.{name}.bonus must be one of {list(BONUSES)}, got "
                    f"{part.get('bonus') if isinstance(part, Mapping) else part!r}"
                )
            unknown = set(part) - {"bonus", "weight", "args"}
            if unknown:
                raise ValueError(
                    f"curiosity.parts.{name} has unknown keys {sorted(unknown)}; allowed: "
                    "bonus, weight, args"
                )
        self.kind = bonus
        self.coef, self.update_every, self.seed = float(coef), int(update_every), int(seed)
        self.args = dict(args or {})
        self.parts = {k: dict(v) for k, v in (parts or {}).items()}
        #: the bonus module (built on the first training env)
        self.bonus: IntrinsicBonus | None = None
        self._wrapper: _Recording | None = None
        self._wrapper_state: dict[str, Any] | None = None  # carried from chunk to chunk
        self._pending_bonus_state: Mapping[str, Any] | None = None  # loaded before the build
        self._totals = {"intrinsic": 0.0, "extrinsic": 0.0, "transitions": 0.0}

    # ------------------------------------------------------------------------------ build
    def _make(self, kind: str, args: Mapping[str, Any], seed: int, env: Any, where: str):
        cls = BONUSES[kind]
        kwargs = {"seed": seed, **args}
        try:
            if cls is ForwardModelSurprise:
                return cls(env.single_observation_space, env.single_action_space, **kwargs)
            return cls(env.single_observation_space, **kwargs)
        except TypeError as error:
            raise ValueError(f"{where}: {error}") from None
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None

    def _build(self, env: Any) -> IntrinsicBonus:
        if self.kind != "combined":
            return self._make(self.kind, self.args, self.seed, env, "curiosity.args")
        bonuses, weights = {}, {}
        for k, (name, part) in enumerate(self.parts.items()):
            bonuses[name] = self._make(
                part["bonus"],
                part.get("args") or {},
                self.seed + k,
                env,
                f"curiosity.parts.{name}.args",
            )
            weights[name] = float(part.get("weight", 1.0))
        return CombinedBonus(bonuses, weights)

    def check_tasks(self, tasks: Any) -> None:
        """Build the bonus once on each task's env (one row), so a bad ``curiosity.args`` value
        fails before any training, in one line naming the key.

        Raises:
            ValueError: as :meth:`_build`, e.g. ``curiosity.args: bits must be an int >= 1``.
        """
        for task in tasks:
            env = task.make_vec(1, train=True, max_steps=1, canvas=None)
            try:
                self._build(env)
            finally:
                env.close()

    # -------------------------------------------------------------------------- the seam
    def wrap_env(self, env: Any, task: Any, train: bool) -> Any:
        if not train:
            return env
        if self.bonus is None:
            self.bonus = self._build(env)
            if self._pending_bonus_state is not None:
                self.bonus.load_state_dict(self._pending_bonus_state)
                self._pending_bonus_state = None
        if self._wrapper is not None:  # the last chunk's env is done with the bonus
            self.bonus.release(self._wrapper)
        self._wrapper = _Recording(env, self.bonus, self.coef, self.update_every, self._totals)
        if self._wrapper_state is not None:
            self._wrapper.load_state_dict(self._wrapper_state)
        return self._wrapper

    def on_chunk_end(self, task_index: int, step: int, env_steps: int) -> None:
        if self._wrapper is not None:  # pending transitions and the counter go to the next env
            self._wrapper_state = copy.deepcopy(self._wrapper.state_dict())

    def metrics(self, model: Any) -> dict[str, float | None]:
        n = self._totals["transitions"]
        out: dict[str, float | None] = {
            "curiosity/intrinsic_reward": self._totals["intrinsic"] / n if n else None,
            "curiosity/extrinsic_reward": self._totals["extrinsic"] / n if n else None,
        }
        if self._wrapper is not None:
            for key, value in self._wrapper.last_losses.items():
                out[f"curiosity/{key.split('/', 1)[-1]}"] = float(value)
        self._totals.update(intrinsic=0.0, extrinsic=0.0, transitions=0.0)
        return out

    # ------------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, Any]:
        if self._wrapper_state is not None:
            wrapper = self._wrapper_state
        elif self.bonus is not None:
            wrapper = {
                "bonus": self.bonus.state_dict(),
                "steps_since_update": 0,
                "pending": None,
                "last_losses": {},
            }
        else:
            wrapper = None
        return {"wrapper": copy.deepcopy(wrapper)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        wrapper = state.get("wrapper")
        self._wrapper_state = None if wrapper is None else copy.deepcopy(dict(wrapper))
        if wrapper is None:
            return
        if self.bonus is None:
            self._pending_bonus_state = wrapper["bonus"]
        else:
            self.bonus.load_state_dict(wrapper["bonus"])
