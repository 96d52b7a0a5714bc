"""The interface every intrinsic bonus shares, and the helpers the bonuses build on.

A bonus rates a batch of transitions ``(obs, actions, next_obs)`` of Dict observations
(``{key: [B, ...] ints}``; see :mod:`trmgym.curiosity.encoding` for what it reads):

- :meth:`IntrinsicBonus.bonus` returns ``[B]`` float64 intrinsic rewards. State bonuses (RND,
  counts) rate the state reached, ``next_obs``, or ``obs`` when ``next_obs`` is ``None``;
  transition bonuses (forward-model surprise) need all three. Unless the bonus is ``frozen`` this
  call also advances the statistics that belong to *visiting* a state: visit counts and the
  running intrinsic-return scale. Rows outside ``mask`` get 0 and change nothing.
- :meth:`IntrinsicBonus.update` takes one training step on a batch of transitions (networks and
  the observation normaliser) and returns its losses; a frozen bonus refuses.
- ``state_dict`` / ``load_state_dict`` round-trip everything (weights, optimiser, statistics,
  counts, the random draws made at construction) so a checkpoint resumes exactly. No bonus
  draws random numbers after construction; construction draws from its own seeded generators,
  never from global RNG state.
"""

from __future__ import annotations

import math
import numbers
import weakref
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from trmgym.checks import boolean


class IntrinsicBonus(ABC):
    """An intrinsic reward module. Subclasses: RND, CountBonus, ForwardModelSurprise, CombinedBonus.

    Attributes:
        frozen: when true, :meth:`bonus` changes no statistics and :meth:`update` raises —
            evaluation, or a module trained elsewhere.
        needs_transition: whether :meth:`bonus` needs ``actions`` and ``next_obs``.
        encoder: the :class:`~trmgym.curiosity.encoding.ObservationEncoder` a single-module
            bonus reads through (used by :meth:`check_observation_space`).
    """

    needs_transition: bool = False

    def __init__(self, *, frozen: bool = False) -> None:
        self.frozen = check_bool(frozen, "frozen")

    @abstractmethod
    def bonus(
        self,
        obs: Mapping[str, Any],
        actions: Any = None,
        next_obs: Mapping[str, Any] | None = None,
        *,
        mask: np.ndarray | None = None,
    ) -> np.ndarray:
        """Intrinsic rewards ``[B]`` (float64) of a batch of transitions; 0 outside ``mask``."""

    @abstractmethod
    def update(
        self,
        obs: Mapping[str, Any],
        actions: Any = None,
        next_obs: Mapping[str, Any] | None = None,
    ) -> dict[str, float]:
        """One training step on a batch of transitions; returns ``{"train/…": loss}``."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (numpy arrays, tensors, plain values)."""

    @abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (into a bonus built with the same arguments)."""

    @property
    def per_row_state(self) -> bool:
        """Whether the bonus keeps state per env row (episodic counts, RND's per-row intrinsic
        returns): then one wrapper at a time may use it (:meth:`claim`)."""
        return False

    def claim(self, wrapper: Any) -> None:
        """Called by a wrapper that starts using this bonus. A bonus with per-row state refuses
        a second live wrapper: rows of different envs would share one row's statistics (e.g. a
        ``DummyVecEnv`` of single-env wrappers around one episodic bonus, where one env's episode
        end would empty the other's counts).

        Raises:
            ValueError: another live wrapper holds this bonus.
        """
        holder = self._holder() if getattr(self, "_holder", None) is not None else None
        if self.per_row_state and holder is not None and holder is not wrapper:
            raise ValueError(
                f"this {type(self).__name__} keeps state per env row (episodic counts or "
                "per-row intrinsic returns) and is already used by another wrapper: give each "
                "env its own bonus (e.g. DummyVecEnv([lambda: IntrinsicReward(make_env(), "
                "CountBonus(...))])), or wrap one vector env with IntrinsicRewardVector"
            )
        self._holder = weakref.ref(wrapper)

    def release(self, wrapper: Any) -> None:
        """``wrapper`` no longer uses this bonus (its env closed, or a new chunk's env)."""
        if getattr(self, "_holder", None) is not None and self._holder() is wrapper:
            self._holder = None

    def start_episodes(self, obs: Mapping[str, Any], rows: np.ndarray) -> None:
        """``rows`` (bool ``[B]``) start new episodes at ``obs`` (reached by a reset, so never
        rated): an episodic bonus counts the start state as visited. The wrappers call it after
        ``reset`` and on the step that returns an autoreset row's first observation."""
        return None

    def end_episodes(self, rows: np.ndarray) -> None:
        """The episodes of ``rows`` (bool ``[B]``) just ended: an episodic bonus forgets their
        visits (:class:`~trmgym.curiosity.counts.CountBonus` with ``episodic=True``). The
        wrappers call it after rating each step and on ``reset``; a lifelong bonus ignores it."""
        return None  # a lifelong bonus has nothing per episode

    def check_observation_space(self, observation_space: Any, label: str = "env") -> None:
        """Raise unless ``observation_space`` matches what this bonus was built for."""
        self.encoder.check_space(observation_space, label)  # type: ignore[attr-defined]

    def _refuse_if_frozen(self) -> None:
        if self.frozen:
            raise RuntimeError(
                f"{type(self).__name__} is frozen: update() trains nothing; set frozen=False to "
                "train it"
            )


def check_mask(mask: np.ndarray | None, batch_size: int) -> np.ndarray:
    """``mask`` as a bool ``[B]`` array (``None`` means every row)."""
    if mask is None:
        return np.ones(batch_size, dtype=bool)
    mask = np.asarray(mask)
    if mask.dtype != np.bool_ or mask.shape != (batch_size,):
        raise ValueError(
            f"mask must be a bool array of shape [{batch_size}] (one per row), "
            f"got {mask.dtype} {mask.shape}"
        )
    return mask


def check_transition(name: str, actions: Any, next_obs: Any) -> None:
    """ValueError naming the missing argument of a transition bonus."""
    for label, value in (("actions", actions), ("next_obs", next_obs)):
        if value is None:
            raise ValueError(f"{name} rates transitions: {label} is required, got None")


def check_bool(value: Any, label: str) -> bool:
    """``value`` as a bool (a Python or numpy bool only: not ``"false"``, ``1`` or ``None``)."""
    return boolean(value, label)


def nonnegative_float(value: Any, label: str, *, positive: bool = False) -> float:
    """``value`` as a finite float ``>= 0`` (``> 0`` if ``positive``), else ValueError."""
    bound = "> 0" if positive else ">= 0"
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{label} must be a finite float {bound}, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{label} must be a finite float {bound}, got {value!r}")
    return float(value)


def positive_int(value: Any, label: str) -> int:
    """``value`` as an int ``>= 1`` (never a bool), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{label} must be an int >= 1, got {value!r}")
    return int(value)


def seeded_generator(seed: Any) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` (an int >= 0)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return generator


def mlp(
    sizes: list[int], generator: torch.Generator, activation: type[nn.Module] = nn.ReLU
) -> nn.Sequential:
    """Linear layers ``sizes[0] -> ... -> sizes[-1]`` with ``activation`` between them.

    Weights are orthogonal with gain sqrt(2) and biases 0 (the RND paper's initialisation),
    drawn from ``generator``; the layers skip PyTorch's default initialisation so the global
    RNG is never touched.
    """
    layers: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = torch.nn.utils.skip_init(nn.Linear, fan_in, fan_out)
        with torch.no_grad():
            nn.init.orthogonal_(linear.weight, gain=math.sqrt(2), generator=generator)
            linear.bias.zero_()
        layers.append(linear)
        if index < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """A deep copy of an optimiser's state (tensors cloned)."""
    return copy_optimizer_state(optimizer.state_dict())


def copy_optimizer_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a saved optimiser state, so saving or loading never aliases live tensors."""
    return {
        "state": {
            index: {k: v.clone() if torch.is_tensor(v) else v for k, v in slot.items()}
            for index, slot in state["state"].items()
        },
        "param_groups": [dict(group) for group in state["param_groups"]],
    }


def module_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of a module's parameters and buffers (cloned to CPU)."""
    return {name: tensor.detach().cpu().clone() for name, tensor in module.state_dict().items()}
