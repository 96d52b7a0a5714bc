"""Running normalisers for curiosity: observations (clipped z-scores) and intrinsic rewards.

Both follow Burda et al. 2018, "Exploration by Random Network Distillation" (section 2.4):

- observations are whitened per feature by a running mean and standard deviation and clipped to
  ``[-5, 5]`` (:class:`ObservationNormalizer`);
- intrinsic rewards are divided by a running estimate of the standard deviation of the
  *intrinsic return*, a discounted sum of the rewards that never resets at episode ends (the
  paper's non-episodic intrinsic stream), one per batch row (:class:`ReturnNormalizer`). The
  paper updates the estimate once per rollout; here it is updated every step before dividing, as
  Gymnasium's ``NormalizeReward`` wrapper does, so a reward is available the moment it is earned.

The running moments are Gymnasium's :class:`gymnasium.wrappers.utils.RunningMeanStd` (Chan et
al.'s parallel update, float64 numpy). Gymnasium is a hard dependency of this room; the
Stable-Baselines3 class of the same name computes the same moments but SB3 is optional here.
Neither has ``state_dict``, so :class:`RunningMoments` adds the exact round trip.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium.wrappers.utils import RunningMeanStd

#: the clip range of normalised observations in Burda et al. 2018
OBS_CLIP = 5.0


class RunningMoments:
    """Running mean and variance of a stream of ``[n, *shape]`` batches (float64).

    Args:
        shape: shape of one item.
        epsilon: pseudo-count of the prior (mean 0, variance 1) the estimate starts from; the
            tiny default makes it the stream's own moments almost at once.

    Attributes:
        mean, var: float64 arrays of ``shape`` (``var`` is the population variance, as
            ``np.var``); ``count``: items seen plus ``epsilon``.
    """

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-8) -> None:
        self.shape = tuple(shape)
        self._moments = RunningMeanStd(epsilon=epsilon, shape=self.shape)

    @property
    def mean(self) -> np.ndarray:
        return self._moments.mean

    @property
    def var(self) -> np.ndarray:
        return self._moments.var

    @property
    def count(self) -> float:
        return float(self._moments.count)

    def update(self, batch: np.ndarray) -> None:
        """Fold in a batch ``[n, *shape]`` (``n >= 1``)."""
        batch = np.asarray(batch, dtype=np.float64)
        if batch.shape[1:] != self.shape:
            raise ValueError(f"batch must have shape [n, {self.shape}], got {batch.shape}")
        if len(batch):
            self._moments.update(batch)

    def state_dict(self) -> dict[str, Any]:
        # Scalar moments are numpy scalars, which subclass float yet do not load with
        # torch.load(weights_only=True); 0-d arrays come back 1-d from trmgym's checkpoints
        # (np.ascontiguousarray). So a scalar is saved as a Python float.
        def plain(value: np.ndarray) -> np.ndarray | float:
            return float(value) if self.shape == () else np.array(value, dtype=np.float64)

        return {"mean": plain(self.mean), "var": plain(self.var), "count": self.count}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        mean = np.asarray(state["mean"], dtype=np.float64)
        if mean.shape != self.shape:
            raise ValueError(f"state mean has shape {mean.shape}, expected {self.shape}")
        self._moments.mean = mean.copy()
        self._moments.var = np.asarray(state["var"], dtype=np.float64).copy()
        self._moments.count = float(state["count"])


class ObservationNormalizer:
    """Per-feature running whitening, clipped: ``clip((x - mean) / sqrt(var + eps), -5, 5)``.

    Args:
        num_features: width ``D`` of the feature vectors.
        clip: symmetric clip bound (5 in the paper).
        eps: added to the variance so constant features map to 0, not to ``nan``.
    """

    def __init__(self, num_features: int, clip: float = OBS_CLIP, eps: float = 1e-8) -> None:
        self.moments = RunningMoments((int(num_features),))
        self.clip = float(clip)
        self.eps = float(eps)

    def update(self, features: np.ndarray) -> None:
        """Fold in a batch ``[n, D]``."""
        self.moments.update(features)

    def scale(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` float64 ``[D]`` used by :meth:`normalize`."""
        return self.moments.mean, np.sqrt(self.moments.var + self.eps)

    def normalize(self, features: np.ndarray) -> np.ndarray:
        """Whitened, clipped ``[n, D]`` (float64)."""
        mean, std = self.scale()
        return np.clip((np.asarray(features, dtype=np.float64) - mean) / std, -self.clip, self.clip)

    def state_dict(self) -> dict[str, Any]:
        return {"moments": self.moments.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.moments.load_state_dict(state["moments"])


class ReturnNormalizer:
    """Divide intrinsic rewards by the running std of a per-row discounted intrinsic return.

    Each call of :meth:`normalize` on a batch of ``B`` rewards advances row ``i``'s return
    ``R_i <- gamma * R_i + r_i`` for the rows in ``mask`` (other rows keep their return and get
    reward 0), folds the advanced returns into the running variance, then returns
    ``r / sqrt(var + eps)``. Returns never reset at episode ends (non-episodic, as the paper).

    The variance starts from ``prior_count`` pseudo-returns of variance 1 (Gymnasium's
    ``RunningMeanStd(epsilon=...)`` prior). The paper needs no prior because it normalises a
    whole rollout (128 envs x 128 steps) at once; per step, the first few returns alone would give
    a near-zero std and bonuses hundreds of times too large. The prior's weight after ``n``
    returns is ``prior_count / (n + prior_count)``.

    Args:
        gamma: discount of the intrinsic return (0.99 in the paper).
        prior_count: weight of the unit-variance prior (``> 0``).
        eps: added to the variance before the square root.
    """

    def __init__(self, gamma: float = 0.99, prior_count: float = 1.0, eps: float = 1e-8) -> None:
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 <= gamma <= 1:
            raise ValueError(f"intrinsic_gamma must be a float in [0, 1], got {gamma!r}")
        if not prior_count > 0:
            raise ValueError(f"prior_count must be a float > 0, got {prior_count!r}")
        self.gamma = float(gamma)
        self.eps = float(eps)
        self.moments = RunningMoments((), epsilon=float(prior_count))
        self.returns: np.ndarray | None = None  # one per row, made at the first call

    def std(self) -> float:
        """The current divisor ``sqrt(var + eps)``."""
        return float(np.sqrt(self.moments.var + self.eps))

    def normalize(
        self, rewards: np.ndarray, mask: np.ndarray, *, update: bool = True
    ) -> np.ndarray:
        """Normalised rewards ``[B]``; with ``update=False`` only divides (no state changes).

        Raises:
            ValueError: ``update=True`` with a batch size different from the first call's
                (each row is one stream; a different ``B`` has no stream to continue).
        """
        rewards = np.asarray(rewards, dtype=np.float64)
        if update:
            if self.returns is None:
                self.returns = np.zeros(len(rewards))
            if len(rewards) != len(self.returns):
                raise ValueError(
                    f"reward normalisation tracks one intrinsic return per row of {len(self.returns)} "
                    f"rows, got a batch of {len(rewards)}; use one bonus module per env batch size "
                    "(or normalize_reward=False)"
                )
            self.returns[mask] = self.gamma * self.returns[mask] + rewards[mask]
            self.moments.update(self.returns[mask])
        return np.where(mask, rewards / self.std(), 0.0)

    def state_dict(self) -> dict[str, Any]:
        return {
            "moments": self.moments.state_dict(),
            "returns": None if self.returns is None else self.returns.copy(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.moments.load_state_dict(state["moments"])
        returns = state["returns"]
        self.returns = None if returns is None else np.asarray(returns, dtype=np.float64).copy()
