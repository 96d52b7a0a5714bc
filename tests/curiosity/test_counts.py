"""CountBonus: beta / sqrt(n) on SimHash or exact codes (Tang et al. 2017)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tests.curiosity.helpers import random_batch, repeat, small_space
from trmgym.curiosity import CountBonus


@pytest.mark.parametrize("hash_kind", ["simhash", "exact"])
def test_bonus_falls_as_one_over_sqrt_n_on_a_repeated_state(hash_kind: str) -> None:
    counts = CountBonus(small_space(), beta=0.5, hash=hash_kind)
    state = repeat(random_batch(0, 1), 0, 1)
    values = [counts.bonus(state)[0] for _ in range(6)]
    assert values == [0.5 / np.sqrt(n) for n in range(1, 7)]
    assert counts.count(state).tolist() == [6]


def test_the_state_reached_is_counted_not_the_state_left() -> None:
    counts = CountBonus(small_space(), hash="exact")
    before, after = random_batch(0, 2), random_batch(1, 2)
    counts.bonus(before, next_obs=after)
    assert counts.count(after).tolist() == [1, 1]
    assert counts.count(before).tolist() == [0, 0]


def test_a_batch_is_counted_as_a_whole_and_masked_rows_are_not_counted() -> None:
    counts = CountBonus(small_space(), hash="exact", beta=1.0)
    batch = repeat(random_batch(0, 1), 0, 3)
    out = counts.bonus(batch, mask=np.array([True, True, False]))
    assert out.tolist() == [1 / np.sqrt(2), 1 / np.sqrt(2), 0.0]
    assert counts.count(batch).tolist() == [2, 2, 2]


def test_simhash_collides_identical_and_separates_different_observations() -> None:
    counts = CountBonus(small_space(), bits=32, seed=3)
    batch = random_batch(0, 20)
    codes = counts.codes(batch)
    assert codes == counts.codes(copy.deepcopy(batch))
    assert len(set(codes)) == 20  # 20 random grids, 20 codes
    assert all(len(code) == 4 for code in codes)  # 32 bits


def test_simhash_bits_decide_the_code_length_and_the_seed_the_projection() -> None:
    batch = random_batch(0, 8)
    assert {len(c) for c in CountBonus(small_space(), bits=9).codes(batch)} == {2}
    assert CountBonus(small_space(), seed=1).codes(batch) != CountBonus(
        small_space(), seed=2
    ).codes(batch)
    assert CountBonus(small_space(), seed=1).codes(batch) == CountBonus(
        small_space(), seed=1
    ).codes(batch)


def test_frozen_counts_rate_without_counting() -> None:
    counts = CountBonus(small_space(), hash="exact", beta=2.0)
    seen, unseen = random_batch(0, 1), random_batch(1, 1)
    for _ in range(3):
        counts.bonus(seen)
    counts.frozen = True
    assert counts.bonus(seen).tolist() == [2.0 / np.sqrt(3)]
    assert counts.bonus(unseen).tolist() == [2.0]
    assert counts.count(seen).tolist() == [3] and counts.count(unseen).tolist() == [0]
    with pytest.raises(RuntimeError, match="CountBonus is frozen"):
        counts.update(seen)


@pytest.mark.parametrize("hash_kind", ["simhash", "exact"])
def test_state_round_trip_gives_identical_bonuses(hash_kind: str) -> None:
    original = CountBonus(small_space(), hash=hash_kind, seed=4)
    for seed in range(5):
        original.bonus(random_batch(seed % 3, 4))
    restored = CountBonus(small_space(), hash=hash_kind, seed=99)
    restored.load_state_dict(copy.deepcopy(original.state_dict()))
    for seed in range(4):
        batch = random_batch(seed, 4)
        assert restored.bonus(batch).tolist() == original.bonus(batch).tolist()


def test_bad_arguments_name_the_field_and_allowed_values() -> None:
    with pytest.raises(ValueError, match="bits must be an int >= 1, got 0"):
        CountBonus(small_space(), bits=0)
    with pytest.raises(ValueError, match=r"hash must be one of \['simhash', 'exact'\], got 'md5'"):
        CountBonus(small_space(), hash="md5")
    with pytest.raises(ValueError, match="beta must be a finite float > 0, got -1"):
        CountBonus(small_space(), beta=-1)
    with pytest.raises(
        ValueError, match=r"obs_keys: unknown key 'board'; allowed: \['answer', 'grid', 'task_id'\]"
    ):
        CountBonus(small_space(), obs_keys=["board"])
    counts = CountBonus(small_space())
    batch = random_batch(0, 2)
    batch["grid"] = batch["grid"].astype(np.float32)
    with pytest.raises(TypeError, match=r"obs\['grid'\] must hold integers .* got dtype float32"):
        counts.bonus(batch)


def test_episodic_counts_are_per_row_and_forgotten_when_the_episode_ends() -> None:
    counts = CountBonus(small_space(), hash="exact", beta=1.0, episodic=True)
    state = repeat(random_batch(0, 1), 0, 2)
    assert counts.bonus(state).tolist() == [1.0, 1.0]  # each row's own first visit
    assert counts.bonus(state).tolist() == [1 / np.sqrt(2)] * 2
    counts.end_episodes(np.array([True, False]))
    assert counts.bonus(state).tolist() == [1.0, 1 / np.sqrt(3)]
    assert counts.count(state).tolist() == [1, 3]
    assert counts.counts == {}  # nothing lifelong is kept
    lifelong = CountBonus(small_space(), hash="exact", beta=1.0)
    lifelong.bonus(state)
    lifelong.end_episodes(np.array([True, True]))  # ignored by a lifelong count
    assert lifelong.count(state).tolist() == [2, 2]


def test_episodic_state_round_trips_and_mismatches_are_named() -> None:
    counts = CountBonus(small_space(), bits=16, episodic=True)
    batch = random_batch(1, 3)
    counts.bonus(batch)
    counts.bonus(random_batch(2, 3))
    clone = CountBonus(small_space(), bits=16, episodic=True)
    clone.load_state_dict(copy.deepcopy(counts.state_dict()))
    assert clone.bonus(batch).tolist() == counts.bonus(batch).tolist()
    with pytest.raises(ValueError, match="episodic=True"):
        CountBonus(small_space(), bits=16).load_state_dict(counts.state_dict())
    with pytest.raises(ValueError, match="counts 3 env rows; got a batch of 2"):
        counts.bonus(random_batch(3, 2))
    with pytest.raises(ValueError, match="episodic must be true or false"):
        CountBonus(small_space(), episodic="yes")


def test_episodic_position_counts_on_a_walk_maze_reward_new_cells() -> None:
    """Through the vector wrapper: a row pays beta for each cell new in its episode (the start
    cell counts as visited), and its next episode starts with a fresh table."""
    import gymnasium as gym

    import trmgym  # noqa: F401 - registers the env ids
    from trmgym.curiosity import IntrinsicRewardVector

    env = gym.make_vec("trmgym/Maze-v0", num_envs=2, size=5, action_mode="walk", reward="sparse")
    counts = CountBonus(
        env.single_observation_space, obs_keys=["position"], hash="exact", episodic=True
    )
    wrapped = IntrinsicRewardVector(env, counts, coef=1.0)
    obs, _ = wrapped.reset(seed=0)
    visits = [{tuple(p): 1} for p in obs["position"]]  # the start is visited once
    autoresetting = np.zeros(2, dtype=bool)
    rng = np.random.default_rng(0)
    returned_to_start, restarts = False, 0
    for _ in range(80):
        obs, _, terminated, truncated, info = wrapped.step(rng.integers(0, 4, 2))
        for row in range(2):
            cell = tuple(obs["position"][row])
            if autoresetting[row]:
                assert info["intrinsic_reward"][row] == 0.0
                visits[row] = {cell: 1}
                restarts += 1
                continue
            visits[row][cell] = visits[row].get(cell, 0) + 1
            assert info["intrinsic_reward"][row] == pytest.approx(1 / np.sqrt(visits[row][cell]))
            returned_to_start |= visits[row][cell] >= 2
        autoresetting = terminated | truncated
    assert returned_to_start and restarts >= 2  # revisits paid less, and new episodes began


@pytest.mark.parametrize("value", ["false", 1, None])
def test_boolean_arguments_refuse_non_bools(value) -> None:  # noqa: ANN001
    from trmgym.curiosity import RND

    with pytest.raises(ValueError, match="episodic must be true or false"):
        CountBonus(small_space(), episodic=value)
    with pytest.raises(ValueError, match="normalize_reward must be true or false"):
        RND(small_space(), normalize_reward=value)
    with pytest.raises(ValueError, match="frozen must be true or false"):
        CountBonus(small_space(), frozen=value)
