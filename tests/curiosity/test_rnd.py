"""RND (Burda et al. 2018): novelty falls on trained observations, stays high on unseen ones."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from tests.curiosity.helpers import random_batch, small_space
from trmgym.curiosity import RND


def train(rnd: RND, batch: dict[str, np.ndarray], steps: int) -> None:
    for _ in range(steps):
        rnd.update(batch)


def test_novelty_falls_on_trained_observations_and_stays_higher_on_unseen_ones() -> None:
    rnd = RND(small_space(), learning_rate=1e-3, normalize_reward=False, seed=0)
    seen, unseen = random_batch(0, 8), random_batch(1, 8)
    train(rnd, seen, 1)  # sets the observation statistics
    before = rnd.prediction_error(seen).mean()
    train(rnd, seen, 100)
    after = rnd.prediction_error(seen).mean()
    assert after < 0.1 * before
    assert rnd.prediction_error(unseen).min() > 5 * rnd.prediction_error(seen).max()


def test_a_repeated_observation_loses_its_novelty() -> None:
    rnd = RND(small_space(), learning_rate=1e-3, normalize_reward=False, seed=1)
    batch = random_batch(2, 16)
    one = {key: value[:1] for key, value in batch.items()}
    errors = []
    for _ in range(5):
        errors.append(rnd.bonus(one)[0])
        train(rnd, one, 10)
    assert all(later < earlier for earlier, later in zip(errors, errors[1:]))


def test_the_target_network_never_changes() -> None:
    rnd = RND(small_space(), learning_rate=1e-2, seed=0)
    target = copy.deepcopy(rnd.target.state_dict())
    predictor = copy.deepcopy(rnd.predictor.state_dict())
    train(rnd, random_batch(0, 4), 3)
    assert all(torch.equal(target[k], v) for k, v in rnd.target.state_dict().items())
    assert not all(torch.equal(predictor[k], v) for k, v in rnd.predictor.state_dict().items())


def test_bonus_is_the_prediction_error_over_the_std_of_the_intrinsic_return() -> None:
    rnd = RND(small_space(), intrinsic_gamma=0.9, seed=0)
    returns, seen = np.zeros(4), []
    for step in range(5):
        batch = random_batch(step, 4)
        raw = rnd.prediction_error(batch)
        returns = 0.9 * returns + raw
        seen.append(returns.copy())
        # the running variance starts as one pseudo-return of variance 1 around 0 (the prior)
        stream = np.concatenate(seen)
        n = len(stream)
        mean = stream.sum() / (n + 1)
        var = (1.0 + (stream**2).sum() - (n + 1) * mean**2) / (n + 1)
        np.testing.assert_allclose(rnd.bonus(batch), raw / np.sqrt(var + 1e-8), rtol=1e-6)


def test_masked_rows_get_zero_and_frozen_bonus_changes_no_statistics() -> None:
    rnd = RND(small_space(), seed=0)
    batch = random_batch(0, 3)
    out = rnd.bonus(batch, mask=np.array([True, False, True]))
    assert out[1] == 0.0 and out[0] > 0 and out[2] > 0
    rnd.frozen = True
    state = copy.deepcopy(rnd.state_dict())
    first = rnd.bonus(batch)
    assert np.array_equal(first, rnd.bonus(batch))
    assert np.array_equal(state["reward_normalizer"]["returns"], rnd.reward_normalizer.returns)
    with pytest.raises(RuntimeError, match="RND is frozen"):
        rnd.update(batch)


def test_same_seed_same_bonuses_other_seed_other_bonuses_and_global_rng_untouched() -> None:
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    runs = []
    for seed in (5, 5, 6):
        rnd = RND(small_space(), seed=seed, learning_rate=1e-3)
        values = []
        for step in range(4):
            batch = random_batch(step, 4)
            values.append(rnd.bonus(batch))
            rnd.update(batch)
        runs.append(np.concatenate(values))
    assert np.array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])
    assert torch.equal(torch_state, torch.get_rng_state())
    assert np.array_equal(numpy_state, np.random.get_state()[1])


def test_state_round_trip_gives_identical_subsequent_bonuses() -> None:
    original = RND(small_space(), seed=0, learning_rate=1e-3)
    for step in range(3):
        batch = random_batch(step, 4)
        original.bonus(batch)
        original.update(batch)
    restored = RND(small_space(), seed=123, learning_rate=1e-3)
    restored.load_state_dict(copy.deepcopy(original.state_dict()))
    for step in range(3, 7):
        batch = random_batch(step, 4)
        assert np.array_equal(original.bonus(batch), restored.bonus(batch))
        assert original.update(batch) == restored.update(batch)


def test_bad_arguments_name_the_field() -> None:
    with pytest.raises(ValueError, match="learning_rate must be a finite float > 0, got 0"):
        RND(small_space(), learning_rate=0)
    with pytest.raises(ValueError, match="hidden_size must be an int >= 1, got 0"):
        RND(small_space(), hidden_size=0)
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -1"):
        RND(small_space(), seed=-1)
    with pytest.raises(TypeError, match="observation_space must be a gymnasium.spaces.Dict"):
        RND(small_space()["grid"])
    with pytest.raises(
        ValueError, match=r"obs\['answer'\] must have shape \[B, 3, 3\], got \(3, 3\)"
    ):
        RND(small_space()).bonus({k: v[0] for k, v in random_batch(0, 1).items()})
