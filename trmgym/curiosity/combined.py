"""A weighted sum of intrinsic bonuses, e.g. RND novelty plus a count bonus."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from trmgym.curiosity.base import IntrinsicBonus, check_bool, check_mask, nonnegative_float


class CombinedBonus(IntrinsicBonus):
    """``sum_name weight[name] * bonuses[name].bonus(...)``, the parts kept by name.

    Each part keeps its own statistics and rules (when counts change, how RND normalises);
    :meth:`bonus` calls every part once with the same arguments and mask. Freezing the combination
    (``frozen=True`` here, or setting :attr:`frozen`) freezes every part, and setting it false
    unfreezes every part; :meth:`update` trains the parts that are not frozen (refusing only when
    all are).

    Args:
        bonuses: ``{name: bonus}``, at least one; names key the losses and the state.
        weights: ``{name: weight >= 0}`` for some or all names (missing ones weigh 1).
        frozen: freeze every part now.

    Raises:
        TypeError: a part is not an :class:`IntrinsicBonus`.
        ValueError: no parts, a weight for an unknown name, or a negative/non-finite weight.
    """

    def __init__(
        self,
        bonuses: Mapping[str, IntrinsicBonus],
        weights: Mapping[str, float] | None = None,
        *,
        frozen: bool = False,
    ) -> None:
        if not isinstance(bonuses, Mapping) or not bonuses:
            raise ValueError("bonuses must be a non-empty dict {name: IntrinsicBonus}")
        for name, part in bonuses.items():
            if not isinstance(part, IntrinsicBonus):
                raise TypeError(
                    f"bonuses[{name!r}] must be an IntrinsicBonus (RND, CountBonus, "
                    f"ForwardModelSurprise, CombinedBonus), got {type(part).__name__}"
                )
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(bonuses))
        if unknown:
            raise ValueError(f"weights: unknown bonus {unknown[0]!r}; allowed: {list(bonuses)}")
        self.bonuses = dict(bonuses)
        self.weights = {
            name: nonnegative_float(weights.get(name, 1.0), f"weights[{name!r}]")
            for name in self.bonuses
        }
        self.needs_transition = any(part.needs_transition for part in self.bonuses.values())
        if frozen:  # never unfreeze parts handed in frozen
            self.frozen = True

    @property
    def frozen(self) -> bool:  # type: ignore[override]
        """True when every part is frozen; setting it sets every part."""
        return all(part.frozen for part in self.bonuses.values())

    @frozen.setter
    def frozen(self, value: bool) -> None:
        for part in self.bonuses.values():
            part.frozen = check_bool(value, "frozen")

    def check_observation_space(self, observation_space: Any, label: str = "env") -> None:
        for part in self.bonuses.values():
            part.check_observation_space(observation_space, label)

    def parts(
        self,
        obs: Mapping[str, Any],
        actions: Any = None,
        next_obs: Mapping[str, Any] | None = None,
        *,
        mask: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Each part's unweighted bonus ``[B]``, by name (advances their statistics as ``bonus``)."""
        return {
            name: part.bonus(obs, actions, next_obs, mask=mask)
            for name, part in self.bonuses.items()
        }

    @property
    def per_row_state(self) -> bool:
        return any(part.per_row_state for part in self.bonuses.values())

    def start_episodes(self, obs: Mapping[str, Any], rows: np.ndarray) -> None:
        for part in self.bonuses.values():
            part.start_episodes(obs, rows)

    def end_episodes(self, rows: np.ndarray) -> None:
        for part in self.bonuses.values():
            part.end_episodes(rows)

    def bonus(
        self,
        obs: Mapping[str, Any],
        actions: Any = None,
        next_obs: Mapping[str, Any] | None = None,
        *,
        mask: np.ndarray | None = None,
    ) -> np.ndarray:
        """The weighted sum ``[B]`` of the parts' bonuses."""
        values = self.parts(obs, actions, next_obs, mask=mask)
        total = sum(self.weights[name] * value for name, value in values.items())
        return np.where(check_mask(mask, len(total)), total, 0.0)

    def update(
        self,
        obs: Mapping[str, Any],
        actions: Any = None,
        next_obs: Mapping[str, Any] | None = None,
    ) -> dict[str, float]:
        """Train every part that is not frozen; losses keyed ``"train/<name>/<loss>"``."""
        self._refuse_if_frozen()
        losses: dict[str, float] = {}
        for name, part in self.bonuses.items():
            if not part.frozen:
                for key, value in part.update(obs, actions, next_obs).items():
                    losses[f"train/{name}/{key.removeprefix('train/')}"] = value
        return losses

    def state_dict(self) -> dict[str, Any]:
        return {name: part.state_dict() for name, part in self.bonuses.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        missing = sorted(set(self.bonuses) - set(state))
        if missing:
            raise ValueError(f"state lacks bonus {missing[0]!r}; it holds {sorted(state)}")
        for name, part in self.bonuses.items():
            part.load_state_dict(state[name])
