"""Curriculum schedulers: which level (or task) each new training puzzle comes from.

A :class:`Scheduler` is a training plugin (:mod:`trmgym.plugins.base`) with a small contract of
its own::

    probabilities() -> [L] float    the sampling distribution over its levels now
    sample(rng, n) -> [n] int       a level index for each of n new puzzles
    update(choices, outcomes)       finished puzzles: their level indices and outcomes
    state_dict() / load_state_dict  everything needed to resume exactly

A *level* is a mapping of reset options of the task's env, e.g. ``{"blanks": 12}`` (Sudoku),
``{"size": 7, "min_distance": 6}`` (Maze), ``{"family": "rotate"}`` (ARCGen). The plugin hooks do
the plumbing: :meth:`Scheduler.reset_options` hands each row's level to the env (per-row reset
options, drawn at autoreset), :meth:`Scheduler.on_episodes_end` credits each finished puzzle to
the level its options name (in-flight puzzles of an earlier choice are credited to *their* level,
not to the current one), and :meth:`Scheduler.on_chunk_end` records the probabilities over time
(``curriculum/level`` and ``curriculum/p/<level>`` in TensorBoard; ``results.json["curriculum"]``).

Evaluation is never steered: held-out puzzles use the task's own options, so a curriculum over
easier levels is judged on the level the env is configured with (the hardest, in the shipped
experiments).

Schedulers: :class:`Uniform` (the baseline), :class:`Staged`, :class:`DifficultyRamp`,
:class:`LearningProgress`, :class:`PLR` and, for continual sequences, :class:`Rehearsal`.

Why not Syllabus (``syllabus-rl`` 0.7, which has sequential, PLR and learning-progress curricula):
it draws with the global ``np.random`` state and has no ``state_dict``, so a resumed run could not
continue the same draws, and it requires Ray and PettingZoo at import. These schedulers keep one
seeded :class:`numpy.random.Generator` each and checkpoint it with their statistics.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from trmgym.envs.row_options import freeze
from trmgym.plugins.base import Plugin, TaskDirective

log = logging.getLogger(__name__)

__all__ = [
    "SCHEDULERS",
    "DifficultyRamp",
    "LearningProgress",
    "Outcomes",
    "PLR",
    "Rehearsal",
    "Scheduler",
    "Staged",
    "Uniform",
    "level_name",
]

#: the key of a level that names a task of the sequence instead of options (:class:`Rehearsal`)
TASK_KEY = "task"


class Outcomes(NamedTuple):
    """What finished puzzles ended with (``[k]`` arrays, one entry per puzzle)."""

    solved: np.ndarray
    """bool: the exact answer at the end."""
    cell_accuracy: np.ndarray
    """float in [0, 1]."""
    steps: np.ndarray
    """int: reasoning steps taken."""


def level_name(level: Mapping[str, Any]) -> str:
    """``{"size": 7, "min_distance": 6}`` -> ``"size=7,min_distance=6"``."""
    return ",".join(f"{k}={v}" for k, v in level.items())


def _number(
    name: str,
    value: Any,
    low: float,
    high: float,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> float:
    if high == math.inf:
        allowed = f"a finite number {'>' if open_low else '>='} {low:g}"
    else:
        allowed = (
            f"a number in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
        )
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"curriculum.{name} must be {allowed}, got {value!r}")
    if value < low or value > high or (open_low and value == low) or (open_high and value == high):
        raise ValueError(f"curriculum.{name} must be {allowed}, got {value!r}")
    return float(value)


def _count(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"curriculum.{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"curriculum.{name} must be one of {list(allowed)}, got {value!r}")
    return str(value)


def _plain(value: Any) -> Any:
    """``value`` with numpy arrays as lists and numpy scalars as Python numbers, recursively."""
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    return value


def check_outcomes(choices: Any, outcomes: Outcomes, n_levels: int) -> tuple[np.ndarray, Outcomes]:
    """``choices`` and ``outcomes`` of :meth:`Scheduler.update`, checked, as arrays.

    Returns:
        ``choices`` as ``[k]`` int64 and ``outcomes`` as ``[k]`` bool / float64 / int64 arrays.

    Raises:
        ValueError: naming the field: choices not integers in ``[0, n_levels)``; a field whose
            length is not ``k``; ``solved`` not bool (or 0/1 integers); ``cell_accuracy`` not
            finite numbers in [0, 1]; ``steps`` not integers >= 0.
    """
    outcomes = _as_outcomes(outcomes)
    picked = np.asarray(choices)
    if picked.ndim != 1 or not (picked.size == 0 or np.issubdtype(picked.dtype, np.integer)):
        raise ValueError(f"update: choices must be a 1-D array of level indices, got {choices!r}")
    if picked.size and (picked.min() < 0 or picked.max() >= n_levels):
        raise ValueError(
            f"update: choices must be level indices in [0, {n_levels}), got {picked.tolist()}"
        )
    k = len(picked)
    fields = {}
    for name in Outcomes._fields:
        value = np.asarray(getattr(outcomes, name))
        if value.shape != (k,):
            raise ValueError(
                f"update: outcomes.{name} must have one entry per choice (shape ({k},)), got "
                f"shape {value.shape}"
            )
        fields[name] = value
    solved = fields["solved"]
    if (
        k
        and solved.dtype != np.bool_
        and not (np.issubdtype(solved.dtype, np.integer) and np.isin(solved, (0, 1)).all())
    ):
        raise ValueError(
            f"update: outcomes.solved must be bool (or 0/1 integers), got {solved.tolist()}"
        )
    cells = fields["cell_accuracy"]
    if k and (
        not np.issubdtype(cells.dtype, np.number)
        or np.issubdtype(cells.dtype, np.complexfloating)
        or np.issubdtype(cells.dtype, np.bool_)
    ):
        raise ValueError(f"update: outcomes.cell_accuracy must be numbers, got {cells.tolist()}")
    if k and (not np.isfinite(cells).all() or cells.min() < 0 or cells.max() > 1):
        raise ValueError(
            f"update: outcomes.cell_accuracy must be fractions in [0, 1], got {cells.tolist()}"
        )
    steps = fields["steps"]
    if not (k == 0 or np.issubdtype(steps.dtype, np.integer)) or (k and steps.min() < 0):
        raise ValueError(f"update: outcomes.steps must be integers >= 0, got {steps.tolist()}")
    return picked.astype(np.int64), Outcomes(
        solved.astype(bool), cells.astype(np.float64), steps.astype(np.int64)
    )


def _as_outcomes(outcomes: Any) -> Outcomes:
    """``outcomes`` as :class:`Outcomes`: one already, a ``(solved, cell_accuracy, steps)``
    tuple or list, or a mapping with those three keys.

    Raises:
        ValueError: anything else, naming the accepted forms.
    """
    if isinstance(outcomes, Outcomes):
        return outcomes
    fields = Outcomes._fields
    if isinstance(outcomes, Mapping) and set(outcomes) == set(fields):
        return Outcomes(**{name: outcomes[name] for name in fields})
    if isinstance(outcomes, tuple | list) and len(outcomes) == len(fields):
        return Outcomes(*outcomes)
    raise ValueError(
        "update: outcomes must be an Outcomes(solved, cell_accuracy, steps), a tuple of those "
        f"three arrays or a mapping with exactly the keys {list(fields)}, got "
        f"{type(outcomes).__name__} {outcomes!r}"[:300]
    )


def check_levels(levels: Any, where: str = "curriculum.levels") -> list[dict[str, Any]]:
    """Levels as a list of option mappings, in order.

    Accepts a list of mappings (``[{blanks: 4}, {blanks: 8}]``) or a mapping of one key to its
    values (``{blanks: [4, 8]}``, expanded in order); a mapping of several keys to equally long
    lists pairs them up (``{size: [5, 7], min_distance: [3, 6]}`` -> two levels).

    Raises:
        ValueError: empty, not of those shapes, lists of unequal lengths, repeated levels, or the
            reserved key ``task``.
    """
    shape = (
        f"{where} must be a non-empty list of option mappings (e.g. [{{blanks: 4}}, "
        f"{{blanks: 8}}]) or a mapping of keys to equally long lists (e.g. {{blanks: [4, 8]}})"
    )
    levels = _plain(levels)  # numpy arrays and scalars as lists and Python numbers
    if isinstance(levels, Mapping):
        columns = {str(k): v for k, v in levels.items()}
        if not columns or not all(
            isinstance(v, Sequence) and not isinstance(v, str | bytes | bytearray)
            for v in columns.values()
        ):
            raise ValueError(f"{shape}, got {levels!r}")
        lengths = {len(v) for v in columns.values()}
        if len(lengths) != 1:
            raise ValueError(f"{shape}; the lists have different lengths: {levels!r}")
        levels = [dict(zip(columns, row)) for row in zip(*columns.values())]
    if (
        isinstance(levels, str | bytes | bytearray)
        or not isinstance(levels, Sequence)
        or not levels
    ):
        raise ValueError(f"{shape}, got {levels!r}")
    out = []
    for k, level in enumerate(levels):
        if not isinstance(level, Mapping) or not level:
            raise ValueError(f"{shape}; entry {k} is {level!r}")
        if TASK_KEY in level:
            raise ValueError(
                f"{where}[{k}] uses the reserved key {TASK_KEY!r} (tasks of a sequence are "
                "chosen by curriculum=rehearsal)"
            )
        nulls = [str(key) for key, value in level.items() if value is None]
        if nulls:
            raise ValueError(
                f"{where}[{k}].{nulls[0]} is null; give every level's options a value (a level "
                "that leaves an option out uses the env's own value)"
            )
        out.append({str(key): value for key, value in level.items()})
    keys = [freeze(level) for level in out]
    repeated = [level_name(out[k]) for k in range(len(out)) if keys.index(keys[k]) != k]
    if repeated:
        raise ValueError(f"{where} repeats levels {repeated}; each level must be listed once")
    return out


class Scheduler(Plugin):
    """A curriculum over ``levels`` (reset options of the task's env), as a training plugin.

    Args:
        levels: the levels, in order (easiest first for a ramp); see :func:`check_levels`.
        seed: seeds the scheduler's generator (``trmgym run`` derives it from the run seed).
        restart_per_task: in a continual sequence, start every task afresh (statistics and
            level back to their initial values); ``False`` carries them over.

    Subclasses implement :meth:`probabilities` (and :meth:`update` if they learn from outcomes).
    """

    name = "curriculum"
    kind = "scheduler"
    """The short name of the scheduler (its ``configs/curriculum`` file)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every subclass's own :meth:`update` gets its arguments checked (:func:`check_outcomes`)
        first: a 0.9 in ``solved`` or a cell accuracy of 5 fails, naming the field."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("update")
        if own is None or getattr(own, "_checked", False):
            return

        @functools.wraps(own)
        def update(self: Scheduler, choices: Any, outcomes: Outcomes) -> None:
            return own(self, *check_outcomes(choices, outcomes, len(self.levels)))

        update._checked = True  # type: ignore[attr-defined]
        cls.update = update  # type: ignore[method-assign]

    def __init__(self, levels: Any = None, *, seed: int = 0, restart_per_task: bool = True) -> None:
        if levels is None:
            raise ValueError(
                f"curriculum.levels must be set for curriculum={self.kind}: the reset options "
                "of each level, e.g. curriculum.levels={blanks:[4,8,12]}"
            )
        self.levels = check_levels(levels)
        if isinstance(restart_per_task, np.bool_):
            restart_per_task = bool(restart_per_task)
        if not isinstance(restart_per_task, bool):
            raise ValueError(
                f"curriculum.restart_per_task must be true or false, got {restart_per_task!r}"
            )
        self.restart_per_task = restart_per_task
        self.seed = _count("seed", seed, 0)
        #: the name results.json and comparisons give this curriculum: its configs/curriculum
        #: choice (``trmgym run`` sets it, e.g. ``arc_stages``), else :attr:`kind`
        self.label = self.kind
        self.rng = np.random.default_rng(self.seed)
        self._keys = sorted({key for level in self.levels for key in level})
        self._index = {self._project(level): k for k, level in enumerate(self.levels)}
        self.history: dict[str, list[Any]] = {
            "step": [],
            "env_steps": [],
            "level": [],
            "probabilities": [],
            # the distribution in force at the start of each task (a record above closes its
            # chunk, so it cannot say what the first chunk of a task was drawn from)
            "start_env_steps": [],
            "start_level": [],
            "start_probabilities": [],
        }
        self._start: tuple[int | None, list[float]] | None = None
        self.reset()

    # ----------------------------------------------------------------- the scheduler contract
    def reset(self) -> None:
        """Statistics back to their initial values (a new task with ``restart_per_task``)."""

    def probabilities(self) -> np.ndarray:
        """``[L]`` float: the probability that a new puzzle comes from each level now."""
        raise NotImplementedError

    @property
    def current_level(self) -> int | None:
        """The level the scheduler stands at (ramps, stages); ``None`` for pure samplers."""
        return None

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``[n]`` int64 level indices for ``n`` new puzzles, drawn from :meth:`probabilities`.

        Raises:
            ValueError: ``rng`` not a :class:`numpy.random.Generator` or ``n`` not an int >= 0.
        """
        _check_sample(rng, n)
        p = self.probabilities()
        return rng.choice(len(p), size=n, p=p).astype(np.int64)

    def update(self, choices: np.ndarray, outcomes: Outcomes) -> None:
        """Finished puzzles: ``choices`` ``[k]`` their level indices, and their ``outcomes``.

        Raises:
            ValueError: arguments outside their contract (:func:`check_outcomes`), in this and
                every subclass's own ``update``.
        """
        check_outcomes(choices, outcomes, len(self.levels))

    def check_tasks(self, tasks: Sequence[Any]) -> None:
        """Check every level against every task's training env, before any training.

        Raises:
            ValueError: ``curriculum.levels[k]`` with the env's own message (unknown key, value
                out of range), naming the task.
        """
        if len(tasks) > 1:  # a level key that tells the tasks apart makes them one task
            for key in sorted({key for level in self.levels for key in level}):
                values = [{**task.kwargs, **task.options}.get(key, _MISSING) for task in tasks]
                if len({repr(v) for v in values}) > 1:
                    log.warning(
                        "curriculum.levels sets %s, which tells the sequence's tasks apart "
                        "(%s): every task trains on the levels' %s instead of its own, so they "
                        "no longer differ there",
                        key,
                        ", ".join(f"{t.name}: {v}" for t, v in zip(tasks, values)),
                        key,
                    )
        for task in tasks:
            env = task.make_vec(1, train=True, max_steps=1, canvas=None)
            source = env.unwrapped.source
            env.close()
            for k, level in enumerate(self.levels):
                try:
                    source.check_options({**task.options, **level})
                except (TypeError, ValueError) as error:
                    hint = ""
                    if "family" in level and "family must be one of" in str(error):
                        hint = " (the env's families, env.families, must include it)"
                    raise ValueError(
                        f"{self.level_key(k)} {level} on task {task.name!r}: {error}{hint}"
                    ) from None

    def level_key(self, k: int) -> str:
        """How the config names level ``k`` (``curriculum.levels[k]``)."""
        return f"curriculum.levels[{k}]"

    # ------------------------------------------------------------------------ plugin hooks
    def before_task(self, task_index: int) -> TaskDirective | None:
        if self.restart_per_task:
            self.reset()
        self._mark_start()
        return None

    def _mark_start(self) -> None:
        """A task starts now: its first chunk draws from the distribution of this moment (kept
        in ``history.start_*`` at that chunk's end, :meth:`on_chunk_end`)."""
        self._start = (self.current_level, [float(x) for x in self.probabilities()])

    def reset_options(self, rows: np.ndarray) -> list[dict[str, Any] | None]:
        return [dict(self.levels[c]) for c in self.sample(self.rng, len(rows)).tolist()]

    def level_of(self, options: Mapping[str, Any] | None) -> int | None:
        """The index of the level ``options`` were drawn with (``None``: not one of ours)."""
        if options is None:
            return None
        return self._index.get(self._project(options))

    def on_episodes_end(
        self,
        task: int,
        rows: np.ndarray,
        solved: np.ndarray,
        cell_accuracy: np.ndarray,
        steps: np.ndarray,
        options: Sequence[Mapping[str, Any] | None],
    ) -> None:
        found = [self.level_of(o) for o in options]
        keep = np.array([c is not None for c in found], dtype=bool)
        if not keep.any():
            return
        choices = np.array([c for c in found if c is not None], dtype=np.int64)
        self.update(
            choices,
            Outcomes(
                np.asarray(solved, dtype=bool)[keep],
                np.asarray(cell_accuracy, dtype=np.float64)[keep],
                np.asarray(steps, dtype=np.int64)[keep],
            ),
        )

    def on_chunk_end(self, task_index: int, step: int, env_steps: int) -> None:
        """Record the distribution now (``history``: it governs the next chunk) and, after a task
        start, the one the chunk began with (``history.start_*``, at the env steps where the
        chunk began)."""
        if self._start is not None:
            level, start = self._start
            self._start = None
            began = self.history["env_steps"][-1] if self.history["env_steps"] else 0
            self.history.setdefault("start_env_steps", []).append(int(began))
            self.history.setdefault("start_level", []).append(level)
            self.history.setdefault("start_probabilities", []).append(start)
        p = self.probabilities()
        self.history["step"].append(int(step))
        self.history["env_steps"].append(int(env_steps))
        self.history["level"].append(self.current_level)
        self.history["probabilities"].append([float(x) for x in p])

    def metrics(self, model: Any) -> dict[str, float | None]:
        p = self.probabilities()
        values: dict[str, float | None] = {
            f"curriculum/p/{level_name(level)}": float(x) for level, x in zip(self.levels, p)
        }
        level = self.current_level
        values["curriculum/level"] = None if level is None else float(level)
        return values

    def results(self) -> dict[str, Any]:
        """The ``curriculum`` block of results.json: levels and the probabilities over time."""
        return {
            "name": self.label,
            "levels": copy.deepcopy(self.levels),
            "level_names": [level_name(level) for level in self.levels],
            "history": copy.deepcopy(self.history),
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly (a copy: editing it changes nothing here)."""
        return copy.deepcopy(
            {
                "kind": self.kind,
                "n_levels": len(self.levels),
                "rng": self.rng.bit_generator.state,
                "history": self.history,
                "stats": self._stats(),
            }
        )

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`; all or nothing.

        Raises:
            ValueError: not a state of this kind of scheduler over as many levels, or a part of
                it that does not fit (the scheduler is left as it was).
        """
        where = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, Mapping):
            raise ValueError(
                f"{where}: state must be a mapping from state_dict(), got {type(state).__name__}"
            )
        missing = [key for key in ("rng", "history", "stats") if key not in state]
        if missing:
            raise ValueError(
                f"{where}: state lacks {missing}; expected the keys of state_dict(): "
                "kind, n_levels, rng, history, stats"
            )
        kind = state.get("kind", self.kind)
        if kind != self.kind:
            raise ValueError(f"{where}: the state is a {kind!r} scheduler's, this is {self.kind!r}")
        self._check_state_levels(state.get("n_levels"), where)
        before = self.state_dict()
        try:
            self.rng.bit_generator.state = copy.deepcopy(state["rng"])
            self.history = {k: list(v) for k, v in copy.deepcopy(state["history"]).items()}
            self._load_stats(state["stats"])
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as error:
            self._restore(before)
            raise ValueError(
                f"{where}: the state does not fit ({type(error).__name__}: {error})"
            ) from None

    def _restore(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.history = state["history"]
        self._load_stats(state["stats"])

    def _check_state_levels(self, n_levels: Any, where: str) -> None:
        if n_levels is not None and n_levels != len(self.levels):
            raise ValueError(
                f"{where}: the state is of a scheduler over {n_levels} levels, this one has "
                f"{len(self.levels)}"
            )

    # -------------------------------------------------------------------------------- helpers
    def _stats(self) -> dict[str, Any]:
        """The subclass's statistics (plain values and numpy arrays)."""
        return {}

    def _load_stats(self, stats: Mapping[str, Any]) -> None:
        """Restore :meth:`_stats`."""

    def _project(self, options: Mapping[str, Any]) -> Any:
        # numpy scalars compare as their Python values (freeze keys numbers by their type)
        return freeze({k: _plain(options.get(k, _MISSING)) for k in self._keys})


def _check_sample(rng: Any, n: Any) -> None:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            f"sample: rng must be a numpy.random.Generator (np.random.default_rng(seed)), got "
            f"{type(rng).__name__}"
        )
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"sample: n must be an int >= 0 (puzzles to draw), got {n!r}")


def _sized(stats: Mapping[str, Any], key: str, n: int, dtype: Any) -> np.ndarray:
    """``stats[key]`` as a ``[n]`` array of ``dtype`` (a state of another size fails)."""
    value = np.array(stats[key], dtype=dtype)
    if value.shape != (n,):
        raise ValueError(f"stats.{key} has shape {value.shape}, this scheduler needs ({n},)")
    return value


def _index(stats: Mapping[str, Any], key: str, high: int) -> int:
    """``stats[key]`` as an int in ``[0, high)``."""
    value = stats[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value < high:
        raise ValueError(f"stats.{key} must be an int in [0, {high}), got {value!r}")
    return int(value)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"

    def __hash__(self) -> int:
        return 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Missing)


_MISSING = _Missing()


class Uniform(Scheduler):
    """Every level equally often: the baseline a curriculum is compared with."""

    kind = "uniform"

    def probabilities(self) -> np.ndarray:
        return np.full(len(self.levels), 1.0 / len(self.levels))


class _Window:
    """The last ``size`` outcomes (0/1 or [0, 1] values) of one level or stage."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.values: list[float] = []

    def add(self, values: np.ndarray) -> None:
        self.values.extend(float(v) for v in values)
        del self.values[: max(0, len(self.values) - self.size)]

    @property
    def full(self) -> bool:
        return len(self.values) >= self.size

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else 0.0


def _success(metric: str, outcomes: Outcomes) -> np.ndarray:
    if metric == "solved":
        return outcomes.solved.astype(np.float64)
    return outcomes.cell_accuracy.astype(np.float64)


class DifficultyRamp(Scheduler):
    """Climb an ordered list of levels: up when the recent success rate is high, down when low.

    The current level's last ``window`` finished puzzles decide: success ``>= upper`` moves one
    level up (not past the last), ``<= lower`` one level down (not below the first); the window
    is cleared after each move. Puzzles of other levels (drawn before a move, or the
    ``easier`` share) never count for the current level. New puzzles come from the current level,
    or with probability ``easier`` from a uniformly chosen easier one (none at level 0).

    Args:
        levels: easiest first.
        upper, lower: success thresholds in [0, 1], ``lower < upper`` (defaults 0.7 / 0.1).
        window: finished puzzles of the current level per decision (default 20).
        metric: ``"solved"`` (exact answer) or ``"cell_accuracy"``.
        easier: share of new puzzles from easier levels, in [0, 1) (default 0).
        patience: finished puzzles of a level, counted from the move to it, before the ramp may
            move *down* from it (default 0). A window fills within one optimizer step when the
            batch is larger than ``window``, so without patience a level is judged before the
            agent has trained on it, and the ramp falls straight back (the first try of
            ``experiment=curriculum_sudoku`` moved 112 times in 750 steps).

    Easy-to-hard ordering (Bengio et al., 2009, "Curriculum Learning") with promotion at a
    success threshold and demotion below a floor, as in mastery-based difficulty schedules.
    """

    kind = "ramp"

    def __init__(
        self,
        levels: Any = None,
        *,
        upper: float = 0.7,
        lower: float = 0.1,
        window: int = 20,
        metric: str = "solved",
        easier: float = 0.0,
        patience: int = 0,
        seed: int = 0,
        restart_per_task: bool = True,
    ) -> None:
        self.patience = _count("patience", patience, 0)
        self.upper = _number("upper", upper, 0.0, 1.0)
        self.lower = _number("lower", lower, 0.0, 1.0)
        if not self.lower < self.upper:
            raise ValueError(
                f"curriculum.lower must be below curriculum.upper, got lower={lower}, upper={upper}"
            )
        self.window = _count("window", window)
        self.metric = _choice("metric", metric, ("solved", "cell_accuracy"))
        self.easier = _number("easier", easier, 0.0, 1.0, open_high=True)
        super().__init__(levels, seed=seed, restart_per_task=restart_per_task)

    def reset(self) -> None:
        self.level = 0
        self.moves = 0
        self.at_level = 0  # finished puzzles of the current level since the move to it
        self.recent = _Window(self.window)

    @property
    def current_level(self) -> int:
        return self.level

    def probabilities(self) -> np.ndarray:
        p = np.zeros(len(self.levels))
        if self.level == 0 or self.easier == 0:
            p[self.level] = 1.0
        else:
            p[: self.level] = self.easier / self.level
            p[self.level] = 1.0 - self.easier
        return p

    def update(self, choices: np.ndarray, outcomes: Outcomes) -> None:
        values = _success(self.metric, outcomes)
        for value in values[choices == self.level]:  # one decision per finished puzzle
            self.recent.add(np.array([value]))
            self.at_level += 1
            if not self.recent.full:
                continue
            rate = self.recent.mean
            if rate >= self.upper and self.level < len(self.levels) - 1:
                self.level += 1
            elif rate <= self.lower and self.level > 0 and self.at_level >= self.patience:
                self.level -= 1
            else:
                continue
            self.moves += 1
            self.at_level = 0
            self.recent = _Window(self.window)
            break  # the rest of this batch was drawn at the old level

    def _stats(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "moves": self.moves,
            "at_level": self.at_level,
            "recent": list(self.recent.values),
        }

    def _load_stats(self, stats: Mapping[str, Any]) -> None:
        self.level, self.moves = _index(stats, "level", len(self.levels)), int(stats["moves"])
        self.at_level = int(stats["at_level"])
        self.recent = _Window(self.window)
        self.recent.values = [float(v) for v in stats["recent"]]


class Staged(Scheduler):
    """Stages of levels in a fixed order, promoted by mastery or by budget.

    New puzzles come uniformly from the current stage's levels (with probability ``review``
    from a uniformly chosen earlier level). A stage ends when the success rate of its last
    ``window`` finished puzzles reaches ``threshold`` or when it has had ``stage_episodes``
    finished puzzles, whichever comes first (either may be ``null``, not both); stages are never
    revisited. ``curriculum=arc_stages`` is the plan of the design this project comes from:
    colour mapping -> geometric patterns -> size transformations -> object and multi-step rules.

    Args:
        stages: a list of stages, each a list of levels (option mappings).
        threshold: promotion success rate in (0, 1], or ``None`` (budget only).
        stage_episodes: finished puzzles per stage (an int, a list with one per stage but the
            last, or ``None``: mastery only).
        window, metric: as :class:`DifficultyRamp`.
        review: share of new puzzles from earlier stages' levels, in [0, 1).
    """

    kind = "staged"

    def __init__(
        self,
        stages: Any = None,
        *,
        threshold: float | None = 0.8,
        stage_episodes: Any = None,
        window: int = 50,
        metric: str = "solved",
        review: float = 0.0,
        seed: int = 0,
        restart_per_task: bool = True,
    ) -> None:
        stages, stage_episodes = _plain(stages), _plain(stage_episodes)  # numpy as lists
        if isinstance(stages, str) or not isinstance(stages, Sequence) or not stages:
            raise ValueError(
                "curriculum.stages must be a non-empty list of stages, each a list of levels "
                f"(e.g. [[{{family: colour_map}}], [{{family: flip}}, {{family: rotate}}]]), "
                f"got {stages!r}"
            )
        self.stages = [
            check_levels(stage, f"curriculum.stages[{k}]") for k, stage in enumerate(stages)
        ]
        self.threshold = (
            None if threshold is None else _number("threshold", threshold, 0, 1, open_low=True)
        )
        budgets = stage_episodes
        if budgets is None or isinstance(budgets, numbers.Integral):
            budgets = [budgets] * (len(self.stages) - 1)
        if (
            isinstance(budgets, str)
            or not isinstance(budgets, Sequence)
            or len(budgets) != len(self.stages) - 1
        ):
            raise ValueError(
                f"curriculum.stage_episodes must be null, an int >= 1 or a list with one int per "
                f"stage but the last ({len(self.stages) - 1} here), got {stage_episodes!r}"
            )
        self.stage_episodes = [
            None if b is None else _count(f"stage_episodes[{k}]", b) for k, b in enumerate(budgets)
        ]
        if self.threshold is None and any(b is None for b in self.stage_episodes):
            raise ValueError(
                "curriculum.threshold and curriculum.stage_episodes are both null: a stage "
                "would never end; set a promotion threshold or a budget per stage"
            )
        self.window = _count("window", window)
        self.metric = _choice("metric", metric, ("solved", "cell_accuracy"))
        self.review = _number("review", review, 0.0, 1.0, open_high=True)
        flat = check_levels(
            [level for stage in self.stages for level in stage], "curriculum.stages (together)"
        )
        self.stage_of = np.repeat(np.arange(len(self.stages)), [len(s) for s in self.stages])
        super().__init__(flat, seed=seed, restart_per_task=restart_per_task)

    def reset(self) -> None:
        self.stage = 0
        self.stage_done = 0
        self.recent = _Window(self.window)

    def probabilities(self) -> np.ndarray:
        p = np.zeros(len(self.levels))
        now = self.stage_of == self.stage
        before = self.stage_of < self.stage
        if before.any() and self.review > 0:
            p[before] = self.review / before.sum()
            p[now] = (1.0 - self.review) / now.sum()
        else:
            p[now] = 1.0 / now.sum()
        return p

    def update(self, choices: np.ndarray, outcomes: Outcomes) -> None:
        if self.stage == len(self.stages) - 1:
            return
        values = _success(self.metric, outcomes)[self.stage_of[choices] == self.stage]
        for value in values:
            self.stage_done += 1
            self.recent.add(np.array([value]))
            budget = self.stage_episodes[self.stage]
            mastered = (
                self.threshold is not None
                and self.recent.full
                and self.recent.mean >= self.threshold
            )
            if mastered or (budget is not None and self.stage_done >= budget):
                self.stage += 1
                self.stage_done = 0
                self.recent = _Window(self.window)
                break

    def level_key(self, k: int) -> str:
        stage = int(self.stage_of[k])
        return f"curriculum.stages[{stage}][{k - int(np.flatnonzero(self.stage_of == stage)[0])}]"

    def on_chunk_end(self, task_index: int, step: int, env_steps: int) -> None:
        super().on_chunk_end(task_index, step, env_steps)
        self.history.setdefault("stage", []).append(self.stage)

    def metrics(self, model: Any) -> dict[str, float | None]:
        return {**super().metrics(model), "curriculum/stage": float(self.stage)}

    def results(self) -> dict[str, Any]:
        """As :meth:`Scheduler.results`, plus ``stages`` (level names per stage) and the stage
        over time (``history.stage``; ``history.level`` is null: a stage holds several)."""
        block = super().results()
        block["stages"] = [[level_name(level) for level in stage] for stage in self.stages]
        return block

    def _stats(self) -> dict[str, Any]:
        return {"stage": self.stage, "done": self.stage_done, "recent": list(self.recent.values)}

    def _load_stats(self, stats: Mapping[str, Any]) -> None:
        self.stage = _index(stats, "stage", len(self.stages))
        self.stage_done = int(stats["done"])
        self.recent = _Window(self.window)
        self.recent.values = [float(v) for v in stats["recent"]]


class LearningProgress(Scheduler):
    """Sample the levels whose success rate is changing fastest (up or down).

    Per level, a fast and a slow exponential moving average of the success of its finished
    puzzles (rates ``fast``, ``slow``); its learning progress is ``|fast EMA - slow EMA|``, the
    bidirectional progress of Kanitscheider et al. (2021), which also catches forgetting. A level
    no puzzle has finished on yet has progress 0. Sampling: ``"epsilon"`` (Matiisen et al. 2017,
    Teacher-Student Curriculum Learning): with probability ``epsilon`` a uniform level, else the
    level of largest progress (ties split evenly); ``"boltzmann"``: ``p ∝ exp(LP / temperature)``.

    Args:
        fast, slow: EMA rates in (0, 1], ``slow < fast`` (defaults 0.1 / 0.02).
        sampling: ``"epsilon"`` or ``"boltzmann"``.
        epsilon: in [0, 1] (default 0.2). temperature: > 0 (default 0.05).
        metric: ``"solved"`` or ``"cell_accuracy"``.
    """

    kind = "lp"

    def __init__(
        self,
        levels: Any = None,
        *,
        fast: float = 0.1,
        slow: float = 0.02,
        sampling: str = "epsilon",
        epsilon: float = 0.2,
        temperature: float = 0.05,
        metric: str = "solved",
        seed: int = 0,
        restart_per_task: bool = True,
    ) -> None:
        self.fast = _number("fast", fast, 0.0, 1.0, open_low=True)
        self.slow = _number("slow", slow, 0.0, 1.0, open_low=True)
        if not self.slow < self.fast:
            raise ValueError(
                f"curriculum.slow must be below curriculum.fast, got slow={slow}, fast={fast}"
            )
        self.sampling = _choice("sampling", sampling, ("epsilon", "boltzmann"))
        self.epsilon = _number("epsilon", epsilon, 0.0, 1.0)
        self.temperature = _number("temperature", temperature, 0.0, math.inf, open_low=True)
        self.metric = _choice("metric", metric, ("solved", "cell_accuracy"))
        super().__init__(levels, seed=seed, restart_per_task=restart_per_task)

    def reset(self) -> None:
        n = len(self.levels)
        self.ema_fast = np.zeros(n)
        self.ema_slow = np.zeros(n)
        self.seen = np.zeros(n, dtype=np.int64)

    def progress(self) -> np.ndarray:
        """``[L]``: ``|fast EMA - slow EMA|`` of each level's success (0 where none finished)."""
        return np.abs(self.ema_fast - self.ema_slow)

    def probabilities(self) -> np.ndarray:
        lp = self.progress()
        n = len(lp)
        if self.sampling == "boltzmann":
            z = (lp - lp.max()) / self.temperature
            w = np.exp(z)
            return w / w.sum()
        best = np.isclose(lp, lp.max(), rtol=0, atol=1e-12)
        return self.epsilon / n + (1 - self.epsilon) * best / best.sum()

    def update(self, choices: np.ndarray, outcomes: Outcomes) -> None:
        values = _success(self.metric, outcomes)
        for c, value in zip(choices.tolist(), values.tolist()):
            if self.seen[c] == 0:  # the first outcome starts both averages
                self.ema_fast[c] = self.ema_slow[c] = value
            else:
                self.ema_fast[c] += self.fast * (value - self.ema_fast[c])
                self.ema_slow[c] += self.slow * (value - self.ema_slow[c])
            self.seen[c] += 1

    def _stats(self) -> dict[str, Any]:
        return {
            "fast": self.ema_fast.copy(),
            "slow": self.ema_slow.copy(),
            "seen": self.seen.copy(),
        }

    def _load_stats(self, stats: Mapping[str, Any]) -> None:
        n = len(self.levels)
        fast, slow = _sized(stats, "fast", n, np.float64), _sized(stats, "slow", n, np.float64)
        self.ema_fast, self.ema_slow, self.seen = fast, slow, _sized(stats, "seen", n, np.int64)


class PLR(Scheduler):
    """Prioritized Level Replay (Jiang, Grefenstette and Rocktäschel, 2021) over a finite set.

    Each level seen so far has a score ``S_i`` (an EMA, rate ``score_ema``, of its finished
    puzzles' ``1 - cell accuracy`` or ``1 - solved``: where the agent is still wrong) and the
    episode count ``C_i`` at which it was last sampled. The replay distribution is
    ``P = (1 - rho) P_S + rho P_C`` with rank prioritisation ``P_S(i) ∝ (1 / rank(S_i))^(1/beta)``
    and staleness ``P_C(i) = (c - C_i) / sum_j (c - C_j)`` (``c``: puzzles sampled so far). A new
    puzzle replays a seen level with probability ``replay_prob`` and otherwise tries an unseen
    one (uniformly); once every level has been seen, it always replays. One distribution is drawn
    from per call (per batch of rows), then the counts are updated.

    The paper scores levels by the mean magnitude of the GAE (or TD) error; the episode-end hook
    reports outcomes, not TD errors, so the scores here are accuracy-based (the paper's
    ``1 - accuracy`` alternative for supervised settings).

    Args:
        score: ``"one_minus_cell_accuracy"`` (default) or ``"one_minus_solved"``.
        temperature: ``beta`` > 0 (default 0.1, the paper's).
        staleness: ``rho`` in [0, 1] (default 0.1). replay_prob: in [0, 1] (default 0.5).
        score_ema: in (0, 1] (default 0.5; 1 keeps the latest puzzle's score only).
    """

    kind = "plr"

    def __init__(
        self,
        levels: Any = None,
        *,
        score: str = "one_minus_cell_accuracy",
        temperature: float = 0.1,
        staleness: float = 0.1,
        replay_prob: float = 0.5,
        score_ema: float = 0.5,
        seed: int = 0,
        restart_per_task: bool = True,
    ) -> None:
        self.score = _choice("score", score, ("one_minus_cell_accuracy", "one_minus_solved"))
        self.temperature = _number("temperature", temperature, 0.0, math.inf, open_low=True)
        self.staleness = _number("staleness", staleness, 0.0, 1.0)
        self.replay_prob = _number("replay_prob", replay_prob, 0.0, 1.0)
        self.score_ema = _number("score_ema", score_ema, 0.0, 1.0, open_low=True)
        super().__init__(levels, seed=seed, restart_per_task=restart_per_task)

    def reset(self) -> None:
        n = len(self.levels)
        self.scores = np.zeros(n)
        self.seen = np.zeros(n, dtype=bool)
        self.last_sampled = np.zeros(n, dtype=np.int64)
        self.sampled = 0

    def replay_distribution(self) -> np.ndarray:
        """``[L]``: ``(1 - rho) P_S + rho P_C`` over seen levels (zeros where unseen)."""
        p = np.zeros(len(self.levels))
        seen = np.flatnonzero(self.seen)
        if seen.size == 0:
            return p
        scores = self.scores[seen]
        # rank 1 = highest score; ties broken by level order (stable)
        order = np.argsort(-scores, kind="stable")
        ranks = np.empty(seen.size)
        ranks[order] = np.arange(1, seen.size + 1)
        h = (1.0 / ranks) ** (1.0 / self.temperature)
        p_s = h / h.sum()
        stale = (self.sampled - self.last_sampled[seen]).astype(np.float64)
        p_c = stale / stale.sum() if stale.sum() > 0 else np.full(seen.size, 1.0 / seen.size)
        p[seen] = (1 - self.staleness) * p_s + self.staleness * p_c
        return p

    def probabilities(self) -> np.ndarray:
        unseen = ~self.seen
        replay = self.replay_distribution()
        if not unseen.any():
            return replay
        new = unseen / unseen.sum()
        if not self.seen.any():
            return new
        return self.replay_prob * replay + (1 - self.replay_prob) * new

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        choices = super().sample(rng, n)
        self.sampled += n
        self.last_sampled[np.unique(choices)] = self.sampled
        return choices

    def update(self, choices: np.ndarray, outcomes: Outcomes) -> None:
        if self.score == "one_minus_cell_accuracy":
            values = 1.0 - outcomes.cell_accuracy.astype(np.float64)
        else:
            values = 1.0 - outcomes.solved.astype(np.float64)
        for c, value in zip(choices.tolist(), values.tolist()):
            if not self.seen[c]:
                self.scores[c] = value
                self.seen[c] = True
            else:
                self.scores[c] += self.score_ema * (value - self.scores[c])

    def _stats(self) -> dict[str, Any]:
        return {
            "scores": self.scores.copy(),
            "seen": self.seen.copy(),
            "last_sampled": self.last_sampled.copy(),
            "sampled": self.sampled,
        }

    def _load_stats(self, stats: Mapping[str, Any]) -> None:
        n = len(self.levels)
        scores, seen = _sized(stats, "scores", n, np.float64), _sized(stats, "seen", n, bool)
        last = _sized(stats, "last_sampled", n, np.int64)
        self.scores, self.seen, self.last_sampled = scores, seen, last
        self.sampled = int(stats["sampled"])


class Rehearsal(Scheduler):
    """In a continual sequence, interleave puzzles of earlier tasks with the current task's.

    While task ``i`` trains, each new training puzzle comes from an earlier task (uniformly
    among tasks ``0..i-1``) with probability ``ratio``, else from task ``i``; on task 0 every
    puzzle is task 0's. The agent *plays* the rehearsed puzzles (episodes, halting and all), on
    the same training env: a rehearsed task must be the same env with the same arguments as the
    current one, differing only in its reset options (e.g. the ARCGen programs of the quickstart,
    chosen by ``task_id``); the trainer refuses others, naming both tasks. Rehearsed rows carry
    their own task's label (``run.task_labels``). Unlike ``strategy=replay`` nothing is stored:
    the puzzles are fresh draws of the earlier tasks' generators.

    Args:
        ratio: share of new puzzles from earlier tasks, in [0, 1) (default 0.25).
    """

    kind = "rehearsal"

    def __init__(self, *, ratio: float = 0.25, seed: int = 0) -> None:
        self.ratio = _number("ratio", ratio, 0.0, 1.0, open_high=True)  # 1: no current task
        self.task = 0
        super().__init__([{"rehearsal": True}], seed=seed, restart_per_task=False)
        self._set_task(0)  # levels: the tasks seen so far, as {"task": j}

    def before_task(self, task_index: int) -> None:
        """Task ``task_index`` (an int >= 0) of the sequence starts: tasks ``0..task_index`` are
        the levels from now on."""
        self._set_task(task_index)
        self._mark_start()
        return None

    def _set_task(self, task_index: Any) -> None:
        if (
            isinstance(task_index, bool)
            or not isinstance(task_index, numbers.Integral)
            or task_index < 0
        ):
            raise ValueError(f"before_task: task_index must be an int >= 0, got {task_index!r}")
        self.task = int(task_index)
        self.levels = [{TASK_KEY: j} for j in range(self.task + 1)]

    def _check_state_levels(self, n_levels: Any, where: str) -> None:
        """Any number: the levels are the tasks seen so far, restored with the task."""

    def check_tasks(self, tasks: Sequence[Any]) -> None:
        """Every task must be playable on every later task's training env: the same env id and
        training arguments, differing only in reset options (each task setting every option key
        of the later ones).

        Raises:
            ValueError: naming the two tasks and what differs.
        """
        if len(tasks) < 2:
            raise ValueError(
                "curriculum=rehearsal interleaves earlier tasks of a sequence; a single-task run "
                "has none (use it with a sequence, e.g. the quickstart)"
            )
        for i, later in enumerate(tasks):
            for earlier in tasks[:i]:
                if not earlier.playable_on(later):
                    raise ValueError(
                        f"curriculum=rehearsal plays earlier tasks on the current task's env, so "
                        f"tasks may differ only in their reset options; task {earlier.name!r} "
                        f"({earlier.env_id} {earlier.env_kwargs(train=True)}, options "
                        f"{earlier.options}) and task {later.name!r} ({later.env_id} "
                        f"{later.env_kwargs(train=True)}, options {later.options}) differ more"
                    )

    def probabilities(self) -> np.ndarray:
        if self.task == 0:
            return np.ones(1)
        p = np.full(self.task + 1, self.ratio / self.task)
        p[self.task] = 1.0 - self.ratio
        return p

    def reset_options(self, rows: np.ndarray) -> list[dict[str, Any] | None]:
        tasks = self.sample(self.rng, len(rows)).tolist()
        return [None if j == self.task else {TASK_KEY: j} for j in tasks]

    def level_of(self, options: Mapping[str, Any] | None) -> int | None:
        if options is None:
            return self.task
        j = options.get(TASK_KEY)
        return None if j is None else int(j)

    def metrics(self, model: Any) -> dict[str, float | None]:
        p = self.probabilities()
        return {f"curriculum/p/task{j}": float(x) for j, x in enumerate(p)}

    def results(self) -> dict[str, Any]:
        block = super().results()
        width = max((len(p) for p in self.history["probabilities"]), default=0)
        block["levels"] = [{TASK_KEY: j} for j in range(width)]
        block["level_names"] = [f"task={j}" for j in range(width)]
        for key in ("probabilities", "start_probabilities"):
            block["history"][key] = [
                p + [0.0] * (width - len(p)) for p in self.history.get(key, [])
            ]
        block["ratio"] = self.ratio
        return block

    def _stats(self) -> dict[str, Any]:
        return {"task": self.task}

    def _load_stats(self, stats: Mapping[str, Any]) -> None:
        self._set_task(stats["task"])


#: the schedulers by :attr:`Scheduler.kind` (the ``configs/curriculum`` files)
SCHEDULERS: dict[str, type[Scheduler]] = {
    cls.kind: cls for cls in (Uniform, Staged, DifficultyRamp, LearningProgress, PLR, Rehearsal)
}
