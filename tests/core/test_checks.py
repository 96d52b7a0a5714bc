"""The shared argument checks (trmgym.checks.positive_int, trmgym.checks.boolean)."""

from __future__ import annotations

import numpy as np
import pytest

from trmgym.checks import boolean, positive_int


def test_accepts_ints_and_numpy_ints_and_returns_int() -> None:
    assert positive_int(3, "x") == 3
    value = positive_int(np.int64(7), "x")
    assert value == 7 and type(value) is int
    assert positive_int(None, "x", allow_none=True) is None


@pytest.mark.parametrize("value", [0, -2, 2.0, True, "3", None])
def test_rejects_and_names_the_key(value: object) -> None:
    with pytest.raises(ValueError, match=r"run\.batch_size must be an int >= 1, got "):
        positive_int(value, "run.batch_size")


def test_the_message_says_null_is_allowed_when_it_is() -> None:
    with pytest.raises(ValueError, match=r"steps must be null or an int >= 1, got 0"):
        positive_int(0, "steps", allow_none=True)


def test_boolean_takes_python_and_numpy_bools_only() -> None:
    assert boolean(True, "x") is True and boolean(np.bool_(False), "x") is False


def _replay(**flag: object) -> object:
    from trmgym.plugins.strategies import Replay

    return Replay(grid_shape=(3, 3), num_tasks=2, **flag)


def _memory(**flag: object) -> object:
    from trmgym.memory.associative import AssociativeMemory

    return AssociativeMemory(capacity=16, key_dim=8, value_dim=8, num_heads=2, **flag)


def _reservoir(**flag: object) -> object:
    from trmgym.memory.replay import ReservoirBuffer

    return ReservoirBuffer(8, {"x": ((2,), np.int64), "task": ((), np.int64)}, **flag)


@pytest.mark.parametrize("value", ["no", "false", 0.0, 1, None])
@pytest.mark.parametrize(
    ("build", "key", "label"),
    [
        (_replay, "task_quota", "strategy.task_quota"),
        (_replay, "only_past", "strategy.only_past"),
        (_memory, "normalize", "normalize"),  # bool("no") turned normalisation on
        (_reservoir, "task_quota", "task_quota"),
    ],
)
def test_a_flag_given_as_anything_but_a_bool_is_refused_not_read_by_truthiness(
    build, key: str, label: str, value: object
) -> None:
    with pytest.raises(ValueError) as refused:
        build(**{key: value})
    assert str(refused.value) == f"{label} must be true or false, got {value!r}"
    build(**{key: np.bool_(False)})  # numpy bools are bools
