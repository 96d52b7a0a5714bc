"""ForwardModelSurprise (Pathak et al. 2017): forward error falls on a repeated transition."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest

from tests.curiosity.helpers import TOKENS, random_batch, small_space
from trmgym.curiosity import ActionEncoder, ForwardModelSurprise

#: trmgym's grid action: a whole answer and a halt flag
GRID_ACTIONS = gym.spaces.Dict(
    {"answer": gym.spaces.Box(0, TOKENS - 1, (3, 3), np.int64), "halt": gym.spaces.Discrete(2)}
)


def grid_actions(seed: int, batch_size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "answer": rng.integers(0, TOKENS, (batch_size, 3, 3)),
        "halt": rng.integers(0, 2, batch_size),
    }


def test_forward_error_falls_on_a_repeated_transition() -> None:
    icm = ForwardModelSurprise(small_space(), gym.spaces.Discrete(5), learning_rate=1e-3)
    obs, next_obs, actions = random_batch(0, 1), random_batch(1, 1), np.array([3])
    errors = [icm.bonus(obs, actions, next_obs)[0]]
    for _ in range(4):
        for _ in range(10):
            icm.update(obs, actions, next_obs)
        errors.append(icm.bonus(obs, actions, next_obs)[0])
    assert errors[-1] < 0.1 * errors[0]
    assert all(later < earlier for earlier, later in zip(errors, errors[1:]))


def test_inverse_loss_trains_the_embedding_to_tell_actions_apart() -> None:
    icm = ForwardModelSurprise(small_space(), GRID_ACTIONS, learning_rate=1e-3, seed=2)
    obs, next_obs, actions = random_batch(0, 8), random_batch(1, 8), grid_actions(0, 8)
    first = icm.update(obs, actions, next_obs)
    for _ in range(30):
        last = icm.update(obs, actions, next_obs)
    assert last["train/icm_inverse_loss"] < 0.5 * first["train/icm_inverse_loss"]
    # uniform guessing over each factor is the starting point: ln(4) per answer cell
    assert first["train/icm_inverse_loss"] == pytest.approx(
        np.log(4) * 9 / 10 + np.log(2) / 10, rel=0.5
    )


def test_action_encoder_factors_of_the_grid_action() -> None:
    encoder = ActionEncoder(GRID_ACTIONS)
    assert encoder.segments == [(9, TOKENS), (1, 2)]
    codes = encoder.one_hot(grid_actions(0, 5))
    assert codes.shape == (5, 9 * TOKENS + 2)
    assert codes.sum(dim=1).tolist() == [10.0] * 5  # one hot per factor
    with pytest.raises(TypeError, match=r"action_space must be Discrete, MultiBinary, .* got Box"):
        ActionEncoder(gym.spaces.Box(-1.0, 1.0, (2,)))
    with pytest.raises(
        TypeError, match="actions must be a dict like the action space; missing key 'answer'"
    ):
        encoder.one_hot(np.zeros((5, 3, 3), dtype=np.int64))


def test_bonus_needs_actions_and_next_obs_and_respects_the_mask() -> None:
    icm = ForwardModelSurprise(small_space(), gym.spaces.Discrete(5))
    obs = random_batch(0, 2)
    with pytest.raises(
        ValueError, match="ForwardModelSurprise rates transitions: actions is required"
    ):
        icm.bonus(obs, None, obs)
    with pytest.raises(ValueError, match="next_obs is required, got None"):
        icm.bonus(obs, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"actions values must lie in 0..4, got 0..7"):
        icm.bonus(obs, np.array([0, 7]), obs)
    out = icm.bonus(obs, np.array([0, 1]), obs, mask=np.array([False, True]))
    assert out[0] == 0.0 and out[1] > 0


def test_state_round_trip_and_seed_determinism() -> None:
    def trained(seed: int) -> ForwardModelSurprise:
        icm = ForwardModelSurprise(small_space(), GRID_ACTIONS, seed=seed)
        for step in range(3):
            icm.update(random_batch(step, 4), grid_actions(step, 4), random_batch(step + 10, 4))
        return icm

    original, twin, other = trained(0), trained(0), trained(1)
    probe = (random_batch(20, 4), grid_actions(20, 4), random_batch(21, 4))
    assert np.array_equal(original.bonus(*probe), twin.bonus(*probe))
    assert not np.allclose(original.bonus(*probe), other.bonus(*probe))
    other.load_state_dict(copy.deepcopy(original.state_dict()))
    for step in range(3, 6):
        batch = (random_batch(step, 4), grid_actions(step, 4), random_batch(step + 10, 4))
        assert original.update(*batch) == other.update(*batch)
        assert np.array_equal(original.bonus(*probe), other.bonus(*probe))


def test_bad_arguments_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"forward_weight must be a float in \[0, 1\], got 2"):
        ForwardModelSurprise(small_space(), gym.spaces.Discrete(2), forward_weight=2)
    with pytest.raises(ValueError, match="feature_size must be an int >= 1, got 0"):
        ForwardModelSurprise(small_space(), gym.spaces.Discrete(2), feature_size=0)
