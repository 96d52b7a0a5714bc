"""What the bonuses see: chosen keys of a Dict observation, one-hot encoded."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from tests.curiosity.helpers import TOKENS, random_batch, small_space
from trmgym.curiosity import ObservationEncoder, default_obs_keys


def test_default_keys_are_the_grid_like_keys_and_position() -> None:
    assert default_obs_keys(small_space()) == ["answer", "grid"]
    with_position = gym.spaces.Dict(
        {**small_space().spaces, "position": gym.spaces.Box(0, 2, (2,), np.int64)}
    )
    assert default_obs_keys(with_position) == ["answer", "grid", "position"]
    assert ObservationEncoder(with_position).num_features == 2 * 9 * TOKENS + 2 * 3


def test_one_hot_encoding_per_cell_in_key_order() -> None:
    encoder = ObservationEncoder(small_space(), obs_keys=["grid", "task_id"])
    batch = random_batch(0, 5)
    features = encoder.encode(batch).numpy()
    assert features.shape == (5, 9 * TOKENS + 2)
    cells = features[:, : 9 * TOKENS].reshape(5, 9, TOKENS)
    assert np.array_equal(cells.argmax(axis=2), batch["grid"].reshape(5, 9))
    assert np.array_equal(features[:, 9 * TOKENS :].argmax(axis=1), batch["task_id"])
    assert np.all(cells.sum(axis=2) == 1)


def test_bad_observations_name_the_key_and_the_allowed_values() -> None:
    encoder = ObservationEncoder(small_space())
    batch = random_batch(0, 2)
    with pytest.raises(ValueError, match=r"obs\['grid'\] values must lie in 0..3, got 6..9"):
        encoder.encode({**batch, "grid": batch["grid"] + 6})
    with pytest.raises(
        ValueError, match=r"obs is missing key 'grid' \(obs_keys=\['answer', 'grid'\]\)"
    ):
        encoder.encode({"answer": batch["answer"]})
    with pytest.raises(ValueError, match="disagree on the batch size"):
        encoder.encode({**batch, "grid": batch["grid"][:1]})
    with pytest.raises(ValueError, match="obs_keys must not repeat a key"):
        ObservationEncoder(small_space(), obs_keys=["grid", "grid"])
    float_space = gym.spaces.Dict({"grid": gym.spaces.Box(0.0, 1.0, (3, 3))})
    with pytest.raises(
        TypeError, match="observation key 'grid' must be Discrete, MultiBinary, or an integer Box"
    ):
        ObservationEncoder(float_space, obs_keys=["grid"])
