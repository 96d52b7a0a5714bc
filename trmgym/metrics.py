"""Continual-learning metrics over an accuracy matrix: accuracy, forgetting, BWT, FWT, forward-transfer AUC.

A run over a sequence of ``T`` tasks fills the ``T x T`` accuracy matrix ``R``: ``R[i][j]`` is the
accuracy (exact-solve rate) on task ``j`` measured right after training on task ``i`` (rows = after
training task ``i``, columns = evaluated on task ``j``). From it (see ``results.json`` in DESIGN.md):

- ``avg_accuracy(R) = mean_j R[T-1][j]``, the accuracy on every task at the end of the sequence.
- ``forgetting_j = max_{j <= i <= T-2} R[i][j] - R[T-1][j]`` for ``j < T-1`` and
  ``avg_forgetting = mean_{j<T-1} forgetting_j`` (Chaudhry et al., 2018, "Riemannian Walk for
  Incremental Learning"). DESIGN.md writes the max as ``max_{i<T-1}``; we follow Chaudhry's
  definition and read only rows ``i >= j``, because a row ``i < j`` was measured *before* task ``j``
  was trained: it is zero-shot (forward) transfer, not knowledge that could be forgotten. The two
  agree whenever no earlier row beats the best row after training. Forgetting keeps its sign: it is
  negative when accuracy on an old task rises later (backward transfer).
- ``bwt(R) = mean_{j<T-1} (R[T-1][j] - R[j][j])`` (Lopez-Paz & Ranzato, 2017, "Gradient Episodic
  Memory for Continual Learning"); positive means later tasks helped earlier ones.
- ``fwt(R, b) = mean_{j>=1} (R[j-1][j] - b_j)`` with ``b_j`` the accuracy of a randomly initialised
  model on task ``j`` (same paper).
- Continual World's normalised forward transfer (Wolczyk et al., 2021, "Continual World: A Robotic
  Benchmark for Continual Reinforcement Learning"): ``FT_j = (AUC_j - AUC_j^ref) / (1 - AUC_j^ref)``
  where ``AUC_j`` is the area under task ``j``'s training curve in the sequence and ``AUC_j^ref`` the
  area under a single-task (from scratch) reference curve, both over normalised time ``[0, 1]``.

Undefined is not zero. A metric whose definition has nothing to average is ``None`` (``null`` in
``results.json``, "n/a" in tables), never ``0.0`` and never NaN (JSON cannot hold NaN, and a 0.0
would pass for "no forgetting" in averages over seeds): with ``T = 1`` nothing can be forgotten or
transferred, so ``avg_forgetting``, ``bwt`` and ``fwt`` are ``None`` (``forgetting`` is ``[]``);
``fwt`` is ``None`` too without random-init accuracies ``b``. ``FT_j`` is ``None`` when
``AUC_j^ref == 1``: the reference was perfect from its first sample, the normaliser ``1 - AUC_j^ref``
is zero and the ratio has no value; the mean FT is taken over the tasks where ``FT_j`` is defined
(``None`` if there are none). :data:`UNDEFINED_REASONS` and :func:`undefined_note` say why, for
the footnote beside an "n/a".

Entries that a metric does not read may be NaN (the runner may skip evaluating tasks not seen yet);
a NaN in an entry a metric needs is a ``ValueError`` naming the entry. :class:`AccuracyMatrix` is
the streaming, Avalanche-style (``update`` / ``result`` / ``reset``) holder the runner fills task by
task and restores on resume.

This module is a leaf: it imports numpy only, nothing from trmgym.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "UNDEFINED_REASONS",
    "AccuracyMatrix",
    "avg_accuracy",
    "avg_forgetting",
    "bwt",
    "forgetting",
    "forward_transfer_auc",
    "fwt",
    "summarize",
    "undefined_note",
]

# A reference AUC this close to 1 counts as perfect: the normaliser 1 - AUC_ref would only amplify
# rounding error into an arbitrarily large transfer score.
_PERFECT_AUC_TOLERANCE = 1e-12

_FT_NEEDS = "a scratch reference run whose curve is not perfect from its first sample"

#: Why a metric can be undefined (``None``) for a run: metric key -> (label, what it needs). The
#: order is the order of :func:`undefined_note`'s clauses.
UNDEFINED_REASONS: dict[str, tuple[str, str]] = {
    "avg_accuracy": ("accuracy", "the last row of the accuracy matrix (a finished run)"),
    "bwt": ("BWT", "at least 2 tasks"),
    "avg_forgetting": ("forgetting", "at least 2 tasks"),
    "forgetting": ("forgetting", "at least 2 tasks"),
    "fwt": ("FWT", "at least 2 tasks and random-init accuracies"),
    "ft": ("FT", _FT_NEEDS),
    "ft_per_task": ("FT", _FT_NEEDS),
    "avg_reasoning_steps": (
        "avg_reasoning_steps",
        "the per-task reasoning steps measured after the last task",
    ),
}


# --------------------------------------------------------------------------------------------
# validation helpers


def _as_float_array(values: Any, name: str) -> np.ndarray:
    """Convert numbers (list, nested list or array; ``None`` meaning missing) to a float array.

    Raises:
        TypeError: if an entry is not a real number (booleans and strings are refused).
        ValueError: if a nested list is ragged.
    """
    try:
        raw = np.asarray(values)
    except ValueError as error:  # numpy refuses ragged nested lists
        raise ValueError(
            f"{name} must be a rectangular array of numbers, got a ragged list"
        ) from error
    if raw.dtype == object:
        for entry in raw.ravel():
            if entry is not None and (
                isinstance(entry, bool | np.bool_) or not isinstance(entry, numbers.Real)
            ):
                if isinstance(entry, list | tuple | np.ndarray):
                    raise ValueError(
                        f"{name} must be a rectangular array of numbers, got a ragged list"
                    )
                raise TypeError(
                    f"{name} must hold real numbers in [0, 1] (or None for missing), "
                    f"got {type(entry).__name__} {entry!r}"
                )
        return np.array(
            [np.nan if entry is None else float(entry) for entry in raw.ravel()]
        ).reshape(raw.shape)
    if raw.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers in [0, 1], got dtype {raw.dtype}")
    return raw.astype(np.float64, copy=True)


def _check_unit_interval(array: np.ndarray, name: str) -> None:
    """Raise ValueError if a non-NaN entry of ``array`` lies outside [0, 1] (infinities included)."""
    present = ~np.isnan(array)
    bad = present & ((array < 0.0) | (array > 1.0))
    if bad.any():
        index = tuple(int(k) for k in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} values must lie in [0, 1], got {float(array[index])!r} at index "
            f"{index if len(index) > 1 else index[0]}"
        )


def _validate_matrix(accuracy_matrix: Any, name: str = "accuracy_matrix") -> np.ndarray:
    """Return ``accuracy_matrix`` as a square float array with entries in [0, 1] or NaN (missing)."""
    matrix = _as_float_array(accuracy_matrix, name)
    if matrix.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D T x T matrix (rows = after training task i, columns = task j), "
            f"got {matrix.ndim} dimension(s) with shape {matrix.shape}"
        )
    rows, cols = matrix.shape
    if rows != cols:
        raise ValueError(f"{name} must be square (T x T), got shape {matrix.shape}")
    if rows == 0:
        raise ValueError(f"{name} must cover at least one task, got shape {matrix.shape}")
    _check_unit_interval(matrix, name)
    return matrix


def _require_present(
    matrix: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    metric: str,
    name: str = "accuracy_matrix",
) -> None:
    """Raise ValueError naming the first NaN among ``matrix[rows, cols]``, which ``metric`` needs."""
    missing = np.isnan(matrix[rows, cols])
    if missing.any():
        k = int(np.flatnonzero(missing)[0])
        raise ValueError(
            f"{name} has NaN at [{int(rows[k])}][{int(cols[k])}], an entry {metric} needs "
            "(fill it by evaluating that task after training that row's task)"
        )


def _validate_random_init(random_init_accuracy: Any, num_tasks: int) -> np.ndarray:
    """Return ``b`` as a float vector of length ``num_tasks`` with entries in [0, 1]."""
    name = "random_init_accuracy"
    baseline = _as_float_array(random_init_accuracy, name)
    if baseline.ndim != 1:
        raise ValueError(f"{name} must be a 1-D list of T accuracies, got shape {baseline.shape}")
    if baseline.shape[0] != num_tasks:
        raise ValueError(
            f"{name} must have one entry per task (length T = {num_tasks}), got length {baseline.shape[0]}"
        )
    _check_unit_interval(baseline, name)
    # b_0 is never read (FWT starts at j = 1), so it may be missing.
    missing = np.isnan(baseline[1:])
    if missing.any():
        raise ValueError(
            f"{name} has NaN at index {int(np.flatnonzero(missing)[0]) + 1}, which fwt needs"
        )
    return baseline


# --------------------------------------------------------------------------------------------
# matrix metrics


def avg_accuracy(accuracy_matrix: Any) -> float:
    """Mean accuracy over all tasks after training on the last one: ``mean_j R[T-1][j]``.

    Args:
        accuracy_matrix: ``T x T`` accuracies in [0, 1] (list or array), rows = after training task i.

    Returns:
        The average final accuracy.

    Raises:
        ValueError: if the matrix is malformed or its last row has NaN.
    """
    matrix = _validate_matrix(accuracy_matrix)
    last = matrix.shape[0] - 1
    cols = np.arange(matrix.shape[0])
    _require_present(matrix, np.full_like(cols, last), cols, "avg_accuracy")
    return float(matrix[last].mean())


def forgetting(accuracy_matrix: Any) -> list[float]:
    """Per-task forgetting ``max_{j<=i<=T-2} R[i][j] - R[T-1][j]`` for tasks ``j < T-1``.

    Only rows measured after task ``j`` was trained (``i >= j``) count towards the best accuracy; see
    the module docstring. Values may be negative (the task improved later).

    Args:
        accuracy_matrix: ``T x T`` accuracies in [0, 1] (list or array).

    Returns:
        ``T - 1`` floats, one per task but the last (empty for ``T = 1``).

    Raises:
        ValueError: if the matrix is malformed or an entry on or below the diagonal has NaN.
    """
    matrix = _validate_matrix(accuracy_matrix)
    num_tasks = matrix.shape[0]
    if num_tasks == 1:
        return []
    rows, cols = np.tril_indices(num_tasks)
    keep = cols < num_tasks - 1
    _require_present(matrix, rows[keep], cols[keep], "forgetting")
    earlier = matrix[: num_tasks - 1, : num_tasks - 1]
    trained = np.tril(np.ones_like(earlier, dtype=bool))  # row i >= column j
    best = np.where(trained, earlier, -np.inf).max(axis=0)
    return [float(x) for x in best - matrix[num_tasks - 1, : num_tasks - 1]]


def avg_forgetting(accuracy_matrix: Any) -> float | None:
    """Mean of :func:`forgetting` over tasks ``j < T-1``.

    Args:
        accuracy_matrix: ``T x T`` accuracies in [0, 1] (list or array).

    Returns:
        The average forgetting (Chaudhry et al., 2018), sign kept; ``None`` when ``T = 1``
        (undefined: no task was followed by another, so none could be forgotten).

    Raises:
        ValueError: if the matrix is malformed or an entry on or below the diagonal has NaN.
    """
    return _mean_or_none(forgetting(accuracy_matrix))


def bwt(accuracy_matrix: Any) -> float | None:
    """Backward transfer ``mean_{j<T-1} (R[T-1][j] - R[j][j])`` (Lopez-Paz & Ranzato, 2017).

    Args:
        accuracy_matrix: ``T x T`` accuracies in [0, 1] (list or array).

    Returns:
        The backward transfer; ``None`` when ``T = 1`` (undefined: no task was followed by
        another).

    Raises:
        ValueError: if the matrix is malformed or a needed diagonal / last-row entry has NaN.
    """
    matrix = _validate_matrix(accuracy_matrix)
    num_tasks = matrix.shape[0]
    if num_tasks == 1:
        return None
    old = np.arange(num_tasks - 1)
    _require_present(matrix, old, old, "bwt")
    _require_present(matrix, np.full_like(old, num_tasks - 1), old, "bwt")
    return float(np.mean(matrix[num_tasks - 1, old] - matrix[old, old]))


def fwt(accuracy_matrix: Any, random_init_accuracy: Any) -> float | None:
    """Forward transfer ``mean_{j>=1} (R[j-1][j] - b_j)`` (Lopez-Paz & Ranzato, 2017).

    Args:
        accuracy_matrix: ``T x T`` accuracies in [0, 1] (list or array).
        random_init_accuracy: ``b``, the ``T`` accuracies of a randomly initialised model
            (``b_0`` is unused and may be NaN / None), or ``None`` when not measured.

    Returns:
        The forward transfer; ``None`` when ``T = 1`` (no task was trained before another) or
        ``random_init_accuracy`` is ``None`` (nothing to compare with): undefined, not zero.

    Raises:
        ValueError: if the matrix is malformed, ``b`` does not have length ``T`` or a needed
            superdiagonal entry has NaN.
    """
    matrix = _validate_matrix(accuracy_matrix)
    num_tasks = matrix.shape[0]
    if random_init_accuracy is None:
        return None
    baseline = _validate_random_init(random_init_accuracy, num_tasks)
    if num_tasks == 1:
        return None
    later = np.arange(1, num_tasks)
    _require_present(matrix, later - 1, later, "fwt")
    return float(np.mean(matrix[later - 1, later] - baseline[later]))


def _mean_or_none(values: Sequence[float | None]) -> float | None:
    """Mean of the defined (non-``None``) values; ``None`` when there are none (never 0, never NaN)."""
    defined = [value for value in values if value is not None]
    return float(np.mean(defined)) if defined else None


def _validate_curves(curves: Any, name: str) -> list[np.ndarray]:
    """Return each curve as a 1-D float array of at least two samples in [0, 1], no NaN."""
    if isinstance(curves, np.ndarray):
        if curves.ndim != 2:
            raise ValueError(
                f"{name} as an array must be 2-D (tasks x samples), got shape {curves.shape}"
            )
        items: Sequence[Any] = list(curves)
    elif isinstance(curves, Sequence) and not isinstance(curves, str | bytes):
        items = curves
    else:
        raise TypeError(f"{name} must be a list of per-task curves, got {type(curves).__name__}")
    if len(items) == 0:
        raise ValueError(f"{name} must hold at least one task's curve, got none")
    result = []
    for task, curve in enumerate(items):
        array = _as_float_array(curve, f"{name}[{task}]")
        if array.ndim != 1 or array.shape[0] < 2:
            raise ValueError(
                f"{name}[{task}] must be a 1-D curve of at least 2 equally spaced samples, "
                f"got shape {array.shape}"
            )
        if np.isnan(array).any():
            raise ValueError(
                f"{name}[{task}] has NaN at sample {int(np.flatnonzero(np.isnan(array))[0])}"
            )
        _check_unit_interval(array, f"{name}[{task}]")
        result.append(array)
    return result


def _auc(curve: np.ndarray, x: np.ndarray | None = None) -> float:
    """Trapezoid area under ``curve`` over normalised time [0, 1] (equally spaced if ``x`` is None)."""
    if x is not None:
        return float(np.sum((x[1:] - x[:-1]) * (curve[1:] + curve[:-1]) / 2))
    # (sum of samples - half of both ends) / number of intervals: exactly 1.0 for a constant-1 curve.
    return float((curve.sum() - 0.5 * (curve[0] + curve[-1])) / (curve.shape[0] - 1))


def _validate_positions(positions: Any, curves: list[np.ndarray], name: str) -> list[np.ndarray]:
    """Per-curve sample times: increasing, from 0 to 1, one per sample."""
    if positions is None:
        return [None] * len(curves)  # type: ignore[list-item]
    if not isinstance(positions, Sequence) or len(positions) != len(curves):
        raise ValueError(f"{name} must hold one list of sample times per curve ({len(curves)})")
    result = []
    for task, (x, curve) in enumerate(zip(positions, curves)):
        x = _as_float_array(x, f"{name}[{task}]")
        if x.shape != curve.shape:
            raise ValueError(
                f"{name}[{task}] must have one time per sample ({curve.shape[0]}), got {x.shape}"
            )
        if x[0] != 0.0 or x[-1] != 1.0 or not (np.diff(x) > 0).all():
            raise ValueError(
                f"{name}[{task}] must increase from 0 to 1, got {np.round(x, 4).tolist()}"
            )
        result.append(x)
    return result


def forward_transfer_auc(
    curves: Any,
    reference_curves: Any,
    positions: Any = None,
    reference_positions: Any = None,
) -> tuple[list[float | None], float | None]:
    """Continual World's normalised forward transfer from training curves (Wolczyk et al., 2021).

    ``AUC_j`` is the trapezoid area under task ``j``'s accuracy curve while it was trained in the
    sequence, its samples taken at equally spaced points (or at ``positions``) of the task's
    budget normalised to ``[0, 1]`` (first sample at 0, last at 1); ``AUC_j^ref`` the same for a
    single-task run from
    scratch. ``FT_j = (AUC_j - AUC_j^ref) / (1 - AUC_j^ref)``; when ``AUC_j^ref == 1`` (the
    reference was perfect from its first sample) the normaliser is zero and ``FT_j`` is ``None``.
    A curve and its reference may have different numbers of samples.

    Args:
        curves: per-task curves (a list of 1-D sequences, or a 2-D array tasks x samples), each
            at least 2 samples in [0, 1].
        reference_curves: the single-task reference curves, one per task, same format.
        positions: optional per-task sample times in [0, 1] (increasing, first 0, last 1) for
            curves sampled unevenly, e.g. a last training chunk shorter than the others;
            ``None``: equally spaced.
        reference_positions: the same for ``reference_curves``.

    Returns:
        ``(per_task, mean)``: the ``FT_j`` list (``None`` where undefined) and the mean over the
        tasks where it is defined (``None`` when it is defined for none).

    Raises:
        TypeError: if either argument is not a list/array of curves.
        ValueError: if the task counts differ or a curve is too short, has NaN or leaves [0, 1].
    """
    sequence = _validate_curves(curves, "curves")
    reference = _validate_curves(reference_curves, "reference_curves")
    if len(sequence) != len(reference):
        raise ValueError(
            f"reference_curves must have one curve per task in curves ({len(sequence)}), "
            f"got {len(reference)}"
        )
    xs = _validate_positions(positions, sequence, "positions")
    ref_xs = _validate_positions(reference_positions, reference, "reference_positions")
    per_task = []
    for curve, ref_curve, x, ref_x in zip(sequence, reference, xs, ref_xs):
        auc, auc_ref = _auc(curve, x), _auc(ref_curve, ref_x)
        # A perfect reference leaves no room to normalise by: 0/0 or x/0 is undefined, not 0.
        perfect = auc_ref >= 1.0 - _PERFECT_AUC_TOLERANCE
        per_task.append(None if perfect else (auc - auc_ref) / (1.0 - auc_ref))
    return per_task, _mean_or_none(per_task)


def summarize(
    accuracy_matrix: Any, random_init_accuracy: Any = None, reasoning_steps: Any = None
) -> dict[str, Any]:
    """All matrix metrics for ``results.json["metrics"]``, as plain JSON-ready Python values.

    Args:
        accuracy_matrix: ``T x T`` accuracies in [0, 1] (list or array).
        random_init_accuracy: ``b`` for FWT, or ``None`` to leave ``fwt`` as ``None``.
        reasoning_steps: per-task mean reasoning steps measured after the last task (``T``
            non-negative numbers), or ``None``.

    Returns:
        ``{"avg_accuracy", "avg_forgetting", "bwt", "fwt", "avg_reasoning_steps", "forgetting"}``,
        ``None`` where a metric is undefined for the run (never ``0.0``, never NaN):
        ``avg_forgetting`` and ``bwt`` when ``T = 1`` (no task was followed by another); ``fwt``
        when ``T = 1`` or ``random_init_accuracy`` is ``None``; ``avg_reasoning_steps`` when
        ``reasoning_steps`` is ``None``. ``forgetting`` is the per-task list (``[]`` when
        ``T = 1``). :func:`undefined_note` words the reasons.

    Raises:
        ValueError: if an input is malformed (the message names it).
    """
    matrix = _validate_matrix(accuracy_matrix)
    num_tasks = matrix.shape[0]
    steps_mean = None
    if reasoning_steps is not None:
        steps = _as_float_array(reasoning_steps, "reasoning_steps")
        if steps.ndim != 1 or steps.shape[0] != num_tasks:
            raise ValueError(
                f"reasoning_steps must be a 1-D list with one entry per task (length T = {num_tasks}), "
                f"got shape {steps.shape}"
            )
        if not np.isfinite(steps).all() or (steps < 0).any():
            raise ValueError(f"reasoning_steps must be finite and >= 0, got {steps.tolist()}")
        steps_mean = float(steps.mean())
    per_task = forgetting(matrix)
    return {
        "avg_accuracy": avg_accuracy(matrix),
        "avg_forgetting": _mean_or_none(per_task),
        "bwt": bwt(matrix),
        "fwt": fwt(matrix, random_init_accuracy),
        "avg_reasoning_steps": steps_mean,
        "forgetting": per_task,
    }


def undefined_note(names: Iterable[str]) -> str | None:
    """One footnote saying why the metrics ``names`` are undefined ("n/a"), or ``None`` for none.

    Metrics that need the same thing share a clause; per-task keys such as
    ``"forgetting[maze]"`` count as their metric (``"forgetting"``).

    Example:
        >>> undefined_note(["avg_forgetting", "bwt", "fwt"])
        'n/a: BWT and forgetting need at least 2 tasks; FWT needs at least 2 tasks and random-init accuracies'
    """
    order = list(UNDEFINED_REASONS)
    keys = {name.split("[", 1)[0] for name in names}
    clauses: dict[str, list[str]] = {}
    for key in sorted(keys, key=lambda k: (order.index(k) if k in order else len(order), k)):
        label, needs = UNDEFINED_REASONS.get(key, (key, "a value this run did not produce"))
        labels = clauses.setdefault(needs, [])
        if label not in labels:
            labels.append(label)
    if not clauses:
        return None
    parts = [
        f"{' and '.join(labels)} {'needs' if len(labels) == 1 else 'need'} {needs}"
        for needs, labels in clauses.items()
    ]
    return "n/a: " + "; ".join(parts)


# --------------------------------------------------------------------------------------------
# streaming holder


def _check_index(value: Any, name: str, num_tasks: int) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be an int in [0, {num_tasks - 1}], got {type(value).__name__}"
        )
    if not 0 <= int(value) < num_tasks:
        raise ValueError(f"{name} must be in [0, {num_tasks - 1}], got {int(value)}")
    return int(value)


class AccuracyMatrix:
    """A ``T x T`` accuracy matrix filled one evaluation at a time (Avalanche-style metric object).

    Cells not yet measured hold NaN. The runner calls :meth:`update` after evaluating task ``j``
    at the end of training task ``i``; a resumed run restores the object with :meth:`from_list`
    from what :meth:`to_list` wrote into ``results.json`` / the checkpoint. Writing a cell twice
    keeps the latest value (a resumed run may re-evaluate).

    Args:
        num_tasks: ``T``, the number of tasks in the sequence (>= 1).

    Example:
        >>> matrix = AccuracyMatrix(2)
        >>> matrix.update(0, 0, 0.9)
        >>> matrix.to_list()
        [[0.9, None], [None, None]]
    """

    def __init__(self, num_tasks: int) -> None:
        if isinstance(num_tasks, bool | np.bool_) or not isinstance(num_tasks, numbers.Integral):
            raise TypeError(f"num_tasks must be an int >= 1, got {type(num_tasks).__name__}")
        if num_tasks < 1:
            raise ValueError(f"num_tasks must be an int >= 1, got {num_tasks}")
        self._values = np.full((int(num_tasks), int(num_tasks)), np.nan)

    @property
    def num_tasks(self) -> int:
        """``T``, the number of tasks."""
        return self._values.shape[0]

    def update(self, train_task: int, eval_task: int, value: float) -> None:
        """Record the accuracy on ``eval_task`` measured after training ``train_task``.

        Args:
            train_task: row ``i`` in ``[0, T-1]``.
            eval_task: column ``j`` in ``[0, T-1]``.
            value: accuracy in [0, 1].

        Raises:
            TypeError: if an index is not an int or ``value`` not a real number.
            ValueError: if an index is out of range or ``value`` outside [0, 1] (NaN included).
        """
        row = _check_index(train_task, "train_task", self.num_tasks)
        col = _check_index(eval_task, "eval_task", self.num_tasks)
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
            raise TypeError(f"value must be a real number in [0, 1], got {type(value).__name__}")
        if not 0.0 <= float(value) <= 1.0:  # also refuses NaN
            raise ValueError(f"value must be in [0, 1], got {value!r}")
        self._values[row, col] = float(value)

    def row(self, train_task: int) -> np.ndarray:
        """A copy of row ``train_task`` (accuracies on every task after training it; NaN = unmeasured)."""
        return self._values[_check_index(train_task, "train_task", self.num_tasks)].copy()

    def result(self) -> np.ndarray:
        """A copy of the full ``T x T`` matrix, NaN where not yet filled."""
        return self._values.copy()

    def reset(self) -> None:
        """Forget every value (all cells back to NaN)."""
        self._values.fill(np.nan)

    def to_list(self) -> list[list[float | None]]:
        """The matrix as nested lists for JSON, ``None`` for unfilled cells (JSON has no NaN)."""
        return [[None if np.isnan(x) else float(x) for x in row] for row in self._values]

    @classmethod
    def from_list(cls, rows: Any) -> AccuracyMatrix:
        """Rebuild from :meth:`to_list`'s output (``None`` or NaN for unfilled cells).

        Raises:
            ValueError: if ``rows`` is not a square matrix of values in [0, 1] / None.
        """
        values = _validate_matrix(rows, "rows")
        matrix = cls(values.shape[0])
        matrix._values[...] = values
        return matrix

    def __repr__(self) -> str:
        filled = int((~np.isnan(self._values)).sum())
        return f"AccuracyMatrix(num_tasks={self.num_tasks}, filled={filled}/{self._values.size})"
