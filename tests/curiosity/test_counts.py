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
