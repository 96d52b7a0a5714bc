"""Random Network Distillation (Burda et al. 2018, "Exploration by Random Network Distillation").

A fixed, randomly initialised *target* network ``f`` maps an observation to an embedding; a
*predictor* ``f_hat`` is trained to match it on the observations the agent visits. The
prediction error ``mean_k (f_hat(x) - f(x))_k^2`` is the novelty of ``x``: it stays high on
observations unlike those trained on and falls on familiar ones.

As in the paper (section 2.4):

- both networks read the observation whitened by a running per-feature mean/std and clipped to
  ``[-5, 5]``; the statistics are updated from the batch each :meth:`RND.update` trains on,
  before its gradient step. The paper first runs a random agent for a few steps to set them;
  here the bonuses before the first update read the initial statistics (mean 0, std 1), and the
  wrappers' first ``update_every`` steps play the random warm-up's part;
- the bonus is the prediction error divided by the running std of the non-episodic intrinsic
  *return* (discount ``intrinsic_gamma``, one stream per batch row), updated whenever a
  non-frozen bonus is computed (:class:`~trmgym.curiosity.normalize.ReturnNormalizer`). That
  std starts from a unit-variance prior of weight one return, since a per-step estimate from a
  handful of returns would inflate the first bonuses by orders of magnitude.

The observation is the one-hot token encoding of :mod:`trmgym.curiosity.encoding` (the paper's
convolutional nets read Atari frames; on token grids an MLP over the one-hot cells is the analogue).
The predictor is one hidden layer deeper than the target, as in the paper. Not implemented: the
paper's random 25% subsample of each batch for the predictor's loss (a choice for many
parallel envs), and its separate intrinsic value head (an agent's business).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from trmgym.curiosity.base import (
    IntrinsicBonus,
    check_bool,
    check_mask,
    copy_optimizer_state,
    mlp,
    module_state,
    nonnegative_float,
    optimizer_state,
    positive_int,
    seeded_generator,
)
from trmgym.curiosity.encoding import ObservationEncoder
from trmgym.curiosity.normalize import ObservationNormalizer, ReturnNormalizer


class RND(IntrinsicBonus):
    """Random Network Distillation bonus over chosen keys of a Dict observation.

    Args:
        observation_space: the single env's ``gymnasium.spaces.Dict``.
        obs_keys: keys to read (default: the grid-like keys, see
            :func:`~trmgym.curiosity.encoding.default_obs_keys`).
        hidden_size: width of the hidden layers.
        embedding_size: width of the target's output.
        learning_rate: Adam step size of the predictor (1e-4 in the paper).
        epochs: gradient steps per :meth:`update` call, each on the whole batch.
        normalize_reward: divide by the running std of the intrinsic return (paper); if false
            the bonus is the raw prediction error.
        intrinsic_gamma: discount of the intrinsic return (0.99 in the paper).
        seed: seeds the target and predictor initialisation (a private ``torch.Generator``).
        frozen: see :class:`~trmgym.curiosity.base.IntrinsicBonus`.
        device: where the networks live.

    Raises:
        ValueError / TypeError: a bad argument, naming it (see the encoder for ``obs_keys``).
    """

    def __init__(
        self,
        observation_space: gym.spaces.Dict,
        *,
        obs_keys: Sequence[str] | None = None,
        hidden_size: int = 128,
        embedding_size: int = 64,
        learning_rate: float = 1e-4,
        epochs: int = 1,
        normalize_reward: bool = True,
        intrinsic_gamma: float = 0.99,
        seed: int = 0,
        frozen: bool = False,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(frozen=frozen)
        self.encoder = ObservationEncoder(observation_space, obs_keys)
        hidden_size = positive_int(hidden_size, "hidden_size")
        embedding_size = positive_int(embedding_size, "embedding_size")
        self.epochs = positive_int(epochs, "epochs")
        learning_rate = nonnegative_float(learning_rate, "learning_rate", positive=True)
        self.device = torch.device(device)
        generator = seeded_generator(seed)
        width = self.encoder.num_features
        self.target = mlp([width, hidden_size, embedding_size], generator, nn.LeakyReLU)
        self.predictor = mlp([width, hidden_size, hidden_size, embedding_size], generator)
        self.target.to(self.device).requires_grad_(False)
        self.predictor.to(self.device)
        self.optimizer = torch.optim.Adam(self.predictor.parameters(), lr=learning_rate)
        self.obs_normalizer = ObservationNormalizer(width)
        self.normalize_reward = check_bool(normalize_reward, "normalize_reward")
        self.reward_normalizer = ReturnNormalizer(intrinsic_gamma)
        self.updates = 0

    @property
    def per_row_state(self) -> bool:
        """A normalising RND keeps one discounted intrinsic return per env row."""
        return self.normalize_reward and not self.frozen

    def _inputs(self, features: np.ndarray) -> torch.Tensor:
        normalized = self.obs_normalizer.normalize(features)
        return torch.as_tensor(normalized, dtype=torch.float32, device=self.device)

    def _errors(self, inputs: torch.Tensor) -> torch.Tensor:
        return (self.predictor(inputs) - self.target(inputs)).pow(2).mean(dim=1)

    def prediction_error(self, obs: Mapping[str, Any]) -> np.ndarray:
        """The raw novelty ``[B]`` of a batch of observations (changes nothing).

        Units: mean squared difference of the two networks' outputs over the embedding.
        """
        with torch.no_grad():
            return (
                self._errors(self._inputs(self.encoder.encode(obs).numpy()))
                .cpu()
                .numpy()
                .astype(np.float64)
            )

    def bonus(
        self,
        obs: Mapping[str, Any],
        actions: Any = None,
        next_obs: Mapping[str, Any] | None = None,
        *,
        mask: np.ndarray | None = None,
    ) -> np.ndarray:
        """Novelty ``[B]`` of the state reached (``next_obs``, else ``obs``), normalised.

        With ``normalize_reward`` it is the prediction error over the running std of the
        intrinsic return; unless frozen, the returns of the rows in ``mask`` advance first
        (so the batch size must stay the same between calls). Rows outside ``mask``: 0.
        """
        state = obs if next_obs is None else next_obs
        errors = self.prediction_error(state)
        mask = check_mask(mask, len(errors))
        if not self.normalize_reward:
            return np.where(mask, errors, 0.0)
        return self.reward_normalizer.normalize(errors, mask, update=not self.frozen)

    def update(
        self,
        obs: Mapping[str, Any],
        actions: Any = None,
        next_obs: Mapping[str, Any] | None = None,
    ) -> dict[str, float]:
        """Fold the states reached into the observation statistics, then train the predictor.

        Returns:
            ``{"train/rnd_loss": mean prediction error before the last step}``.
        """
        self._refuse_if_frozen()
        state = obs if next_obs is None else next_obs
        features = self.encoder.encode(state).numpy()
        self.obs_normalizer.update(features)
        inputs = self._inputs(features)
        for _ in range(self.epochs):
            loss = self._errors(inputs).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        self.updates += 1
        return {"train/rnd_loss": float(loss.detach())}

    def state_dict(self) -> dict[str, Any]:
        return {
            "target": module_state(self.target),
            "predictor": module_state(self.predictor),
            "optimizer": optimizer_state(self.optimizer),
            "obs_normalizer": self.obs_normalizer.state_dict(),
            "reward_normalizer": self.reward_normalizer.state_dict(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.target.load_state_dict(state["target"])
        self.predictor.load_state_dict(state["predictor"])
        self.optimizer.load_state_dict(copy_optimizer_state(state["optimizer"]))
        self.obs_normalizer.load_state_dict(state["obs_normalizer"])
        self.reward_normalizer.load_state_dict(state["reward_normalizer"])
        self.updates = int(state["updates"])
