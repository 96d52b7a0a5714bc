"""CombinedBonus: a weighted sum of bonuses, each keeping its own statistics."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tests.curiosity.helpers import random_batch, small_space
from trmgym.curiosity import RND, CombinedBonus, CountBonus


def parts(seed: int = 0) -> dict[str, object]:
    return {
        "rnd": RND(small_space(), seed=seed, normalize_reward=False),
        "count": CountBonus(small_space(), hash="exact"),
    }


def test_bonus_is_the_weighted_sum_of_the_parts() -> None:
    combined = CombinedBonus(parts(), weights={"rnd": 3.0, "count": 0.5})
    twins = parts()
    batch = random_batch(0, 4)
    expected = 3.0 * twins["rnd"].bonus(batch) + 0.5 * twins["count"].bonus(batch)
    assert np.array_equal(combined.bonus(batch), expected)


def test_update_trains_unfrozen_parts_and_freezing_reaches_every_part() -> None:
    bonuses = parts()
    bonuses["count"].frozen = True
    combined = CombinedBonus(bonuses)
    assert not combined.frozen
    assert set(combined.update(random_batch(0, 4))) == {"train/rnd/rnd_loss"}
    combined.frozen = True
    assert bonuses["rnd"].frozen and bonuses["count"].frozen
    with pytest.raises(RuntimeError, match="CombinedBonus is frozen"):
        combined.update(random_batch(0, 4))


def test_state_round_trip_by_name() -> None:
    original, restored = CombinedBonus(parts(0)), CombinedBonus(parts(9))
    for step in range(3):
        original.bonus(random_batch(step, 2))
        original.update(random_batch(step, 2))
    restored.load_state_dict(copy.deepcopy(original.state_dict()))
    for step in range(3, 6):
        batch = random_batch(step, 2)
        assert np.array_equal(original.bonus(batch), restored.bonus(batch))


def test_bad_arguments_name_the_field() -> None:
    with pytest.raises(ValueError, match="bonuses must be a non-empty dict"):
        CombinedBonus({})
    with pytest.raises(
        ValueError, match=r"weights: unknown bonus 'icm'; allowed: \['rnd', 'count'\]"
    ):
        CombinedBonus(parts(), weights={"icm": 1.0})
    with pytest.raises(ValueError, match=r"weights\['rnd'\] must be a finite float >= 0, got -1"):
        CombinedBonus(parts(), weights={"rnd": -1})
    with pytest.raises(TypeError, match=r"bonuses\['x'\] must be an IntrinsicBonus"):
        CombinedBonus({"x": object()})
