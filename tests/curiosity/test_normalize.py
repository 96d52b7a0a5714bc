"""The running normalisers against numpy over a stream."""

from __future__ import annotations

import numpy as np
import pytest

from trmgym.curiosity import ObservationNormalizer, ReturnNormalizer, RunningMoments


def test_running_moments_match_numpy_over_a_stream() -> None:
    rng = np.random.default_rng(0)
    stream = [rng.normal(3.0, 2.0, (int(n), 5)) for n in rng.integers(1, 20, 30)]
    moments = RunningMoments((5,))
    for batch in stream:
        moments.update(batch)
    everything = np.concatenate(stream)
    np.testing.assert_allclose(moments.mean, everything.mean(axis=0), rtol=1e-7)
    np.testing.assert_allclose(moments.var, everything.var(axis=0), rtol=1e-7)
    assert moments.count == pytest.approx(len(everything))


def test_running_moments_state_round_trip() -> None:
    rng = np.random.default_rng(1)
    first, second = RunningMoments((2,)), RunningMoments((2,))
    first.update(rng.normal(size=(7, 2)))
    second.load_state_dict(first.state_dict())
    batch = rng.normal(size=(4, 2))
    first.update(batch)
    second.update(batch)
    assert np.array_equal(first.mean, second.mean) and np.array_equal(first.var, second.var)


def test_observation_normalizer_whitens_and_clips_to_five() -> None:
    rng = np.random.default_rng(2)
    normalizer = ObservationNormalizer(3)
    data = rng.normal(1.0, 0.5, (200, 3))
    normalizer.update(data)
    probe = np.array([[1.0, 1.0, 1.0], [100.0, -100.0, 1.5]])
    expected = np.clip((probe - data.mean(0)) / np.sqrt(data.var(0) + 1e-8), -5, 5)
    np.testing.assert_allclose(normalizer.normalize(probe), expected, rtol=1e-7)
    assert normalizer.normalize(probe)[1, 0] == 5.0 and normalizer.normalize(probe)[1, 1] == -5.0


def test_return_normalizer_divides_by_the_std_of_discounted_returns() -> None:
    rng = np.random.default_rng(3)
    gamma = 0.9
    normalizer = ReturnNormalizer(gamma, prior_count=1e-8)
    returns = np.zeros(3)
    seen = []
    for _ in range(40):
        rewards = rng.uniform(0, 2, 3)
        out = normalizer.normalize(rewards, np.ones(3, dtype=bool))
        returns = gamma * returns + rewards
        seen.append(returns.copy())
        np.testing.assert_allclose(out, rewards / np.sqrt(np.var(seen) + 1e-8), rtol=1e-6)


def test_return_normalizer_prior_is_one_unit_variance_pseudo_return() -> None:
    normalizer = ReturnNormalizer(0.99)  # prior_count = 1: var = (1 * 1 + 1 * 0) / 2 at first
    out = normalizer.normalize(np.array([0.5]), np.ones(1, dtype=bool))
    # the prior (mean 0, var 1, weight 1) and one return 0.5: var = (1 + 0 + 0.5**2 / 2) / 2
    assert out[0] == pytest.approx(0.5 / np.sqrt((1 + 0.125) / 2 + 1e-8))


def test_return_normalizer_masked_rows_keep_their_return_and_get_zero() -> None:
    normalizer = ReturnNormalizer(0.5, prior_count=1e-8)
    normalizer.normalize(np.array([1.0, 1.0]), np.array([True, True]))
    out = normalizer.normalize(np.array([1.0, 7.0]), np.array([True, False]))
    assert out[1] == 0.0
    np.testing.assert_allclose(normalizer.returns, [1.5, 1.0])
    np.testing.assert_allclose(normalizer.moments.var, np.var([1.0, 1.0, 1.5]), rtol=1e-6)


def test_return_normalizer_refuses_a_new_batch_size_and_bad_gamma() -> None:
    normalizer = ReturnNormalizer()
    normalizer.normalize(np.ones(2), np.ones(2, dtype=bool))
    with pytest.raises(
        ValueError, match="one intrinsic return per row of 2 rows, got a batch of 3"
    ):
        normalizer.normalize(np.ones(3), np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match=r"intrinsic_gamma must be a float in \[0, 1\], got 1.5"):
        ReturnNormalizer(1.5)
