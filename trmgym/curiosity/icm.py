"""Forward-model surprise, ICM-style (Pathak et al. 2017, "Curiosity-driven Exploration by
Self-supervised Prediction").

Three small networks over the one-hot token encoding (:mod:`trmgym.curiosity.encoding`):

- an embedding ``phi``: observation -> feature vector (the learned embedding of the token grid);
- a forward model ``f(phi(s), a) -> phi_hat(s')``;
- an inverse model ``g(phi(s), phi(s')) -> a`` (logits over each discrete factor of the action).

The bonus of a transition ``(s, a, s')`` is the forward model's error in feature space,
``1/2 ||f(phi(s), a) - phi(s')||^2`` (the paper's ``r^i`` with ``eta = 1``; scale it with the
wrapper's ``coef``). Training minimises ``(1 - forward_weight) * L_I + forward_weight * L_F``
(``forward_weight = 0.2`` in the paper): ``L_I`` is the inverse model's cross-entropy, and it is
what trains ``phi`` — features must keep what the agent's action changes. Without it the forward
loss alone would be minimised by a constant embedding and the bonus would vanish everywhere. To
make that impossible here the forward loss never reaches the *target* features:
``phi(s')`` is detached in ``L_F`` (its gradient still flows through ``phi(s)``, the forward
model's input), as in the common ICM implementations.

Actions must be discrete (every trmgym action mode is): see
:class:`~trmgym.curiosity.encoding.ActionEncoder`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from trmgym.curiosity.base import (
    IntrinsicBonus,
    check_mask,
    check_transition,
    copy_optimizer_state,
    mlp,
    module_state,
    nonnegative_float,
    optimizer_state,
    positive_int,
    seeded_generator,
)
from trmgym.curiosity.encoding import ActionEncoder, ObservationEncoder


class ForwardModelSurprise(IntrinsicBonus):
    """ICM bonus: the forward model's feature-space prediction error of ``(s, a, s')``.

    Args:
        observation_space: the single env's ``gymnasium.spaces.Dict``.
        action_space: the single env's (discrete) action space.
        obs_keys: keys to read (default: the grid-like keys).
        feature_size: width of the embedding ``phi``.
        hidden_size: width of every hidden layer.
        learning_rate: Adam step size.
        forward_weight: ``beta`` of the paper, in ``[0, 1]``: weight of the forward loss.
        epochs: gradient steps per :meth:`update`, each on the whole batch.
        seed: seeds the initialisation (a private ``torch.Generator``).
        frozen: see :class:`~trmgym.curiosity.base.IntrinsicBonus`.
        device: where the networks live.

    Raises:
        ValueError / TypeError: a bad argument, naming it; a continuous action space.
    """

    needs_transition = True

    def __init__(
        self,
        observation_space: gym.spaces.Dict,
        action_space: gym.Space,
        *,
        obs_keys: Sequence[str] | None = None,
        feature_size: int = 64,
        hidden_size: int = 128,
        learning_rate: float = 1e-3,
        forward_weight: float = 0.2,
        epochs: int = 1,
        seed: int = 0,
        frozen: bool = False,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(frozen=frozen)
        self.encoder = ObservationEncoder(observation_space, obs_keys)
        self.action_encoder = ActionEncoder(action_space)
        feature_size = positive_int(feature_size, "feature_size")
        hidden_size = positive_int(hidden_size, "hidden_size")
        self.epochs = positive_int(epochs, "epochs")
        learning_rate = nonnegative_float(learning_rate, "learning_rate", positive=True)
        self.forward_weight = nonnegative_float(forward_weight, "forward_weight")
        if self.forward_weight > 1:
            raise ValueError(f"forward_weight must be a float in [0, 1], got {forward_weight!r}")
        self.device = torch.device(device)
        generator = seeded_generator(seed)
        actions = self.action_encoder.num_features
        self.embedding = mlp([self.encoder.num_features, hidden_size, feature_size], generator)
        self.forward_model = mlp([feature_size + actions, hidden_size, feature_size], generator)
        self.inverse_model = mlp([2 * feature_size, hidden_size, actions], generator)
        self.networks = torch.nn.ModuleDict(
            {
                "embedding": self.embedding,
                "forward_model": self.forward_model,
                "inverse_model": self.inverse_model,
            }
        ).to(self.device)
        self.optimizer = torch.optim.Adam(self.networks.parameters(), lr=learning_rate)
        self.updates = 0

    def _losses(
        self, obs: Mapping[str, Any], actions: Any, next_obs: Mapping[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row forward errors ``[B]`` (target detached) and the mean inverse loss."""
        features = self.embedding(self.encoder.encode(obs, self.device))
        next_features = self.embedding(self.encoder.encode(next_obs, self.device))
        action_codes = self.action_encoder.one_hot(actions, self.device)
        predicted = self.forward_model(torch.cat([features, action_codes], dim=1))
        forward_errors = 0.5 * (predicted - next_features.detach()).pow(2).sum(dim=1)
        logits = self.inverse_model(torch.cat([features, next_features], dim=1))
        return forward_errors, self.action_encoder.cross_entropy(logits, actions)

    def bonus(
        self,
        obs: Mapping[str, Any],
        actions: Any = None,
        next_obs: Mapping[str, Any] | None = None,
        *,
        mask: np.ndarray | None = None,
    ) -> np.ndarray:
        """Forward-model error ``[B]`` of each transition (changes nothing; 0 outside ``mask``).

        Raises:
            ValueError: ``actions`` or ``next_obs`` is ``None``.
        """
        check_transition(type(self).__name__, actions, next_obs)
        with torch.no_grad():
            errors, _ = self._losses(obs, actions, next_obs)
        errors = errors.cpu().numpy().astype(np.float64)
        return np.where(check_mask(mask, len(errors)), errors, 0.0)

    def update(
        self,
        obs: Mapping[str, Any],
        actions: Any = None,
        next_obs: Mapping[str, Any] | None = None,
    ) -> dict[str, float]:
        """Train embedding, forward and inverse models on a batch of transitions.

        Returns:
            ``{"train/icm_forward_loss", "train/icm_inverse_loss"}`` before the last step.
        """
        self._refuse_if_frozen()
        check_transition(type(self).__name__, actions, next_obs)
        for _ in range(self.epochs):
            forward_errors, inverse_loss = self._losses(obs, actions, next_obs)
            forward_loss = forward_errors.mean()
            loss = (1 - self.forward_weight) * inverse_loss + self.forward_weight * forward_loss
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        self.updates += 1
        return {
            "train/icm_forward_loss": float(forward_loss.detach()),
            "train/icm_inverse_loss": float(inverse_loss.detach()),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "networks": module_state(self.networks),
            "optimizer": optimizer_state(self.optimizer),
            "updates": self.updates,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.networks.load_state_dict(state["networks"])
        self.optimizer.load_state_dict(copy_optimizer_state(state["optimizer"]))
        self.updates = int(state["updates"])
