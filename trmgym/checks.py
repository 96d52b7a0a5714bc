"""Argument checks shared across trmgym: one wording for "must be an int >= 1" errors."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np


def boolean(value: Any, label: str) -> bool:
    """``value`` as a bool: a Python or numpy bool only, else ValueError naming ``label``.

    ``"no"``, ``"false"``, ``0.0`` or ``None`` are refused rather than read by truthiness
    (``bool("no")`` is True). Hydra has already turned ``key=false`` into a bool.
    """
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{label} must be true or false, got {value!r}")
    return bool(value)


def positive_int(value: Any, label: str, *, allow_none: bool = False) -> int | None:
    """``value`` as an ``int >= 1`` (numpy integers too; never a bool), else ValueError.

    Args:
        value: what the user gave.
        label: the key named in the error, e.g. ``"run.batch_size"``.
        allow_none: let ``None`` through (returned as ``None``), e.g. "use the default".
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        allowed = "null or an int >= 1" if allow_none else "an int >= 1"
        raise ValueError(f"{label} must be {allowed}, got {value!r}")
    return int(value)
