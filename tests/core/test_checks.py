"""The shared argument check (trmgym.checks.positive_int)."""

from __future__ import annotations

import numpy as np
import pytest

from trmgym.checks import positive_int


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
