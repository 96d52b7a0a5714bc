"""Small spaces and batches shared by the curiosity tests."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

TOKENS = 4
SHAPE = (3, 3)


def small_space() -> gym.spaces.Dict:
    """A 3x3 puzzle over 4 tokens: ``grid``, ``answer`` and a ``task_id``."""
    return gym.spaces.Dict(
        {
            "grid": gym.spaces.Box(0, TOKENS - 1, SHAPE, np.int64),
            "answer": gym.spaces.Box(0, TOKENS - 1, SHAPE, np.int64),
            "task_id": gym.spaces.Discrete(2),
        }
    )


def random_batch(seed: int, batch_size: int) -> dict[str, np.ndarray]:
    """``batch_size`` random observations of :func:`small_space`."""
    rng = np.random.default_rng(seed)
    return {
        "grid": rng.integers(0, TOKENS, (batch_size, *SHAPE)),
        "answer": rng.integers(0, TOKENS, (batch_size, *SHAPE)),
        "task_id": rng.integers(0, 2, batch_size),
    }


def repeat(obs: dict[str, np.ndarray], row: int, times: int) -> dict[str, np.ndarray]:
    """Row ``row`` of a batch repeated ``times`` times."""
    return {key: np.repeat(value[row : row + 1], times, axis=0) for key, value in obs.items()}
