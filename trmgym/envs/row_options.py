"""Per-row reset options of a vector env: base options, per-row overrides, grouped resets.

A curriculum steers each row of a :class:`~trmgym.envs.vector.PuzzleVectorEnv` on its own: the
task or level of the next puzzle of row ``i`` (Syllabus' task-wrapper contract, batched).
:class:`RowOptions` keeps the *base* options (the last ``reset(options=...)``) and, per row, an
optional *override* merged over them (the override wins on shared keys). Rows are reset in groups
of equal options, one source draw per group, so a batch costs as many draws as it has distinct
options, never one per row; with no overrides it is the single draw the env always made.

Overrides are stored once per distinct value and referenced by an integer code per row, so a
reset groups rows with one ``np.unique`` over those codes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

NO_OVERRIDE = -1


def freeze(value: Any) -> Hashable:
    """A hashable key equal for equal option values (arrays and lists compared by content).

    Unequal values never share a key; equal values of different types (``1`` and ``1.0``) may
    get different keys, which only costs one more group.
    """
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda item: str(item[0]))
        return ("map", tuple((str(key), freeze(item)) for key, item in items))
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return ("objects", value.shape, tuple(freeze(item) for item in value.ravel()))
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(freeze(item) for item in value))
    if isinstance(value, np.generic):
        return (type(value).__name__, value.item())
    try:
        hash(value)
    except TypeError:  # an unhashable object: equal only to itself (it stays referenced)
        return ("id", id(value))
    return (type(value).__qualname__, value)


class RowOptions:
    """Base reset options plus per-row overrides for ``num_envs`` rows.

    Args:
        num_envs: the number of rows.
        check: the source's ``check_options``: raises the family's errors for bad keys or
            values; called on every override merged with the base at the time it is set (and
            again when the base changes), so a bad option fails at once, not at a later reset.
    """

    def __init__(self, num_envs: int, check: Callable[[dict[str, Any] | None], Any]) -> None:
        self.num_envs = int(num_envs)
        self._check = check
        self.base: dict[str, Any] | None = None
        self._code = np.full(self.num_envs, NO_OVERRIDE, dtype=np.int64)
        self._overrides: list[dict[str, Any]] = []
        self._codes: dict[Hashable, int] = {}
        # codes checked against the current base; a stored override set again after the base
        # changed is checked anew (options may depend on each other, e.g. family and task_id)
        self._checked: set[int] = set()

    # ---------------------------------------------------------------------------------- setting
    def set_base(self, options: dict[str, Any] | None) -> None:
        """Make ``options`` the base; every override in use is re-checked against it first."""
        self._check(options)
        in_use = np.unique(self._code[self._code >= 0]).tolist()
        for code in in_use:
            self._check(_merge(options, self._overrides[code]))
        self.base = options
        self._checked = set(in_use)

    def set(
        self,
        options: Mapping[str, Any] | Sequence[Mapping[str, Any] | None] | None,
        rows: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        """Override the options of ``rows`` (see :meth:`PuzzleVectorEnv.set_options`)."""
        rows = self.check_rows(rows)
        if options is None or isinstance(options, Mapping):
            codes = np.full(rows.size, self._register(options), dtype=np.int64)
        else:
            entries = self._check_entries(options, rows.size)
            codes = np.array([self._register(entry) for entry in entries], dtype=np.int64)
        self._code[rows] = codes
        if len(self._overrides) > 4 * self.num_envs + 64:
            self._compact()

    def check_rows(self, rows: Any) -> np.ndarray:
        """``rows`` as distinct int64 row indices (``None``: every row)."""
        allowed = f"None (every row) or a 1-D list/array of distinct ints in 0..{self.num_envs - 1}"
        if rows is None:
            return np.arange(self.num_envs)
        if isinstance(rows, (int, np.integer)) and not isinstance(rows, (bool, np.bool_)):
            rows = [rows]
        array = np.asarray(rows)
        if array.dtype == bool:
            raise TypeError(
                f"rows must be {allowed}, got a boolean mask (pass np.flatnonzero(mask))"
            )
        if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
            raise TypeError(f"rows must be {allowed}, got {rows!r}")
        array = array.astype(np.int64)
        if array.size and (array.min() < 0 or array.max() >= self.num_envs):
            bad = array[(array < 0) | (array >= self.num_envs)][0]
            raise ValueError(f"rows must be {allowed}; row {int(bad)} is out of range")
        if np.unique(array).size != array.size:
            raise ValueError(f"rows must be {allowed}; got a repeated row in {array.tolist()}")
        return array

    def _check_entries(self, options: Any, count: int) -> list[dict[str, Any] | None]:
        if isinstance(options, (str, bytes)) or not isinstance(options, (Sequence, np.ndarray)):
            raise TypeError(
                "options must be a mapping (for every given row), None (clear those rows), or a "
                f"sequence with one mapping or None per row; got {type(options).__name__}"
            )
        entries = list(options)
        if len(entries) != count:
            raise ValueError(
                f"options has {len(entries)} entries for {count} rows; allowed: one mapping or "
                "None per row in rows"
            )
        for position, entry in enumerate(entries):
            if entry is not None and not isinstance(entry, Mapping):
                raise TypeError(
                    f"options[{position}] must be a mapping or None, got {type(entry).__name__}"
                )
        return [None if entry is None else dict(entry) for entry in entries]

    def _register(self, entry: Mapping[str, Any] | None) -> int:
        """The code of an override, checked (merged with the base) once per base."""
        if entry is None:
            return NO_OVERRIDE
        entry = dict(entry)
        key = freeze(entry)
        code = self._codes.get(key)
        if code is None:
            self._check(_merge(self.base, entry))
            code = len(self._overrides)
            self._overrides.append(entry)
            self._codes[key] = code
        elif code not in self._checked:
            self._check(_merge(self.base, self._overrides[code]))
        self._checked.add(code)
        return code

    def _compact(self) -> None:
        """Forget overrides no row uses any more (curricula with ever-new options)."""
        used, self._code = np.unique(self._code, return_inverse=True)
        self._code = self._code.astype(np.int64)
        old_codes = [code for code in used.tolist() if code >= 0]
        if used[0] < 0:
            self._code -= 1  # the NO_OVERRIDE group came first and stays -1
        self._overrides = [self._overrides[code] for code in old_codes]
        self._codes = {freeze(entry): code for code, entry in enumerate(self._overrides)}
        self._checked = {new for new, old in enumerate(old_codes) if old in self._checked}

    # ---------------------------------------------------------------------------------- reading
    def options_of(self, row: int) -> dict[str, Any] | None:
        """The options the next reset of ``row`` uses (base merged with its override)."""
        row = int(self.check_rows([row])[0])
        code = int(self._code[row])
        return self.base if code < 0 else _merge(self.base, self._overrides[code])

    def groups(self, rows: np.ndarray) -> Iterator[tuple[np.ndarray, dict[str, Any] | None]]:
        """``(rows with equal options, those options)``, rows kept in their given order.

        Without overrides this is the single group ``(rows, base)``, so the draws are exactly
        those of an env without per-row options.
        """
        codes = self._code[rows]
        if not np.any(codes >= 0):
            yield rows, self.base
            return
        for code in np.unique(codes).tolist():
            group = rows[codes == code]
            yield group, self.base if code < 0 else _merge(self.base, self._overrides[code])


def _merge(base: dict[str, Any] | None, override: dict[str, Any]) -> dict[str, Any]:
    return {**(base or {}), **override}
