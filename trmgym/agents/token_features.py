"""Features of token-grid observations for Stable-Baselines3 policies (:class:`TokenGridExtractor`).

The puzzle envs observe ``grid`` and ``answer`` as ``[H, W]`` ints of one shared token vocabulary
(:mod:`trmgym.envs.tokens`) and a ``task_id``; an MLP over raw token values would treat token 21
as "more" than token 20. The extractor embeds tokens instead, then reads the grid with a small
convolutional net (the standard SB3 recipe for grid observations, with an embedding in place of
pixel scaling).
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import get_flattened_obs_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

__all__ = ["TokenGridExtractor"]


def _is_token_grid(space: spaces.Space) -> bool:
    return (
        isinstance(space, spaces.Box)
        and len(space.shape) == 2
        and np.issubdtype(space.dtype, np.integer)
    )


class TokenGridExtractor(BaseFeaturesExtractor):
    """Features of a Dict observation of token grids: embedding, two 3x3 convs, a linear layer.

    Every 2-D integer ``Box`` key (``grid``, ``answer``: ``[H, W]`` tokens ``0..V-1``) is
    embedded (one table shared by the keys, ``embed_dim`` per token), the embeddings are stacked
    as channels and run through two ``Conv2d(3x3, channels) + ReLU``; every other key (the
    one-hot ``task_id``, any ``Box``) is flattened; both go through ``Linear -> ReLU`` to
    ``features_dim``. Input: the dict SB3's preprocessing makes (tokens as floats), ``[B, ...]``
    per key. Output: ``[B, features_dim]``.

    Raises:
        ValueError: no token grid in the space, or grids of different shapes.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        embed_dim: int = 16,
        channels: int = 32,
        features_dim: int = 128,
    ) -> None:
        super().__init__(observation_space, features_dim)
        self.grid_keys = sorted(k for k, s in observation_space.spaces.items() if _is_token_grid(s))
        self.other_keys = sorted(k for k in observation_space.spaces if k not in self.grid_keys)
        if not self.grid_keys:
            raise ValueError(
                f"TokenGridExtractor needs at least one 2-D integer Box key, got "
                f"{list(observation_space.spaces)}"
            )
        shapes = {observation_space[k].shape for k in self.grid_keys}
        if len(shapes) != 1:
            raise ValueError(f"token grids must share one shape, got {sorted(shapes)}")
        height, width = shapes.pop()
        vocab = max(int(np.max(observation_space[k].high)) for k in self.grid_keys) + 1
        self.embedding = nn.Embedding(vocab, embed_dim)
        self.conv = nn.Sequential(
            nn.Conv2d(len(self.grid_keys) * embed_dim, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        others = sum(get_flattened_obs_dim(observation_space[k]) for k in self.other_keys)
        self.head = nn.Sequential(
            nn.Linear(channels * height * width + others, features_dim), nn.ReLU()
        )

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        planes = [
            self.embedding(observations[k].long()).permute(0, 3, 1, 2) for k in self.grid_keys
        ]
        parts = [self.conv(torch.cat(planes, dim=1))]
        parts += [torch.flatten(observations[k].float(), 1) for k in self.other_keys]
        return self.head(torch.cat(parts, dim=1))
