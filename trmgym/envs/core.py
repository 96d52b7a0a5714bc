"""Batched puzzle state shared by the single and the vector environments.

:class:`PuzzleCore` holds ``B`` puzzles (input grid, current draft answer, target, task id, step
count) on one canvas and implements everything about them with numpy over the batch: drawing new
puzzles from a :class:`~trmgym.envs.source.PuzzleSource`, checking actions, scoring and rewards.
:class:`~trmgym.envs.base.PuzzleEnv` is its ``B = 1`` view and
:class:`~trmgym.envs.vector.PuzzleVectorEnv` its batched one, so both run the same code.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from gymnasium import spaces

from trmgym.envs.draw import draw_puzzles
from trmgym.envs.holdout import check_holdout
from trmgym.envs.source import PuzzleSource
from trmgym.envs.tokens import PAD, VOCAB_SIZE
from trmgym.envs.walk import NUM_WALK_ACTIONS, MazeWalk, walk_step_limit

#: every action mode; each family allows a subset (``PuzzleSource.action_modes``)
ACTION_MODES = ("grid", "edit", "walk")
#: ``"dense"``: Δ cell accuracy − step_cost (+ solve_bonus); ``"sparse"``: −step_cost (+ solve_bonus)
REWARDS = ("dense", "sparse")
#: the default step limit of grid mode (one full answer per step)
GRID_MAX_STEPS = 16


def check_choice(value: Any, name: str, allowed: tuple[str, ...], where: str = "") -> str:
    """``value`` if it is one of ``allowed``, else a ``ValueError`` naming ``name`` and them."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}{where}, got {value!r}")
    return value


def check_canvas(canvas: Any, shape: tuple[int, int]) -> tuple[int, int]:
    """Validate ``canvas`` against a source's native ``shape``; ``None`` means the native shape."""
    if canvas is None:
        return (int(shape[0]), int(shape[1]))
    if (
        not isinstance(canvas, (tuple, list))
        or len(canvas) != 2
        or not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in canvas)
    ):
        raise TypeError(f"canvas must be None or a pair of ints (H, W), got {canvas!r}")
    height, width = int(canvas[0]), int(canvas[1])
    if height < shape[0] or width < shape[1]:
        raise ValueError(
            f"canvas={tuple(canvas)} is smaller than this puzzle's grid {tuple(shape)}; "
            f"allowed: H >= {shape[0]} and W >= {shape[1]}"
        )
    if height > 64 or width > 64:
        raise ValueError(f"canvas={tuple(canvas)} is too large; allowed: H, W <= 64")
    return height, width


def place(grids: np.ndarray, canvas: tuple[int, int]) -> np.ndarray:
    """Place ``[n, h, w]`` grids at the top-left of a PAD-filled ``[n, H, W]`` canvas."""
    n, h, w = grids.shape
    if (h, w) == canvas:
        return grids.astype(np.int64, copy=True)
    out = np.full((n, *canvas), PAD, dtype=np.int64)
    out[:, :h, :w] = grids
    return out


_NUMBERS = (bool, int, float, np.bool_, np.integer, np.floating)


def _column_values(values: Any, n: int) -> np.ndarray:
    """``n`` per-puzzle values as a numeric 1-D array when they are all numbers, else objects."""
    if isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype.kind in "biuf":
        if values.size != n:
            raise RuntimeError(f"an extra column holds {values.size} values for {n} puzzles")
        return values
    values = list(values)
    if len(values) != n:
        raise RuntimeError(f"an extra column holds {len(values)} values for {n} puzzles")
    if values and all(isinstance(value, _NUMBERS) for value in values):
        return np.asarray(values)
    # fromiter keeps tuples and lists as single objects (np.asarray would make them a 2-D array)
    return np.fromiter(values, dtype=object, count=n)


def _is_per_row(value: Any, batch_size: int) -> bool:
    return isinstance(value, np.ndarray) and value.ndim == 1 and value.size == batch_size


class PuzzleCore:
    """``B`` puzzles of one source on one canvas, stepped together.

    Args:
        source: the puzzle family.
        batch_size: ``B``.
        canvas: ``(H, W)`` on which every grid is placed (``None``: the source's native shape).
        action_mode: ``"grid"`` (a full answer + halt flag), ``"edit"`` (write one token into
            one cell, or halt) or, for families that allow it (``source.action_modes``: Maze),
            ``"walk"`` (move one cell or halt; :mod:`trmgym.envs.walk`).
        step_cost: subtracted from the reward at every reasoning step (>= 0).
        solve_bonus: added when an episode ends solved (>= 0): halting on a correct answer, or
            in walk mode reaching the goal along a shortest path.
        reward: ``"dense"`` (``Δ cell_accuracy − step_cost``, ``+ solve_bonus``) or
            ``"sparse"`` (``−step_cost``, ``+ solve_bonus``).
        holdout: ``None`` (every puzzle), ``"train"`` or ``"test"``: only puzzles of that
            held-out split (:mod:`trmgym.envs.holdout`); ``None`` draws exactly as before.

    Raises:
        ValueError: ``action_mode`` not allowed for the family, ``reward`` not in
            :data:`REWARDS`, a negative or non-finite ``step_cost``/``solve_bonus``.
    """

    def __init__(
        self,
        source: PuzzleSource,
        batch_size: int,
        *,
        canvas: tuple[int, int] | None = None,
        action_mode: str = "grid",
        step_cost: float = 0.01,
        solve_bonus: float = 1.0,
        holdout: str | None = None,
        reward: str = "dense",
    ) -> None:
        check_choice(action_mode, "action_mode", source.action_modes, f" for {source.name}")
        self.reward = check_choice(reward, "reward", REWARDS)
        for name, value in (("step_cost", step_cost), ("solve_bonus", solve_bonus)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, got {type(value).__name__}")
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        self.source = source
        self.batch_size = int(batch_size)
        self.canvas = check_canvas(canvas, source.shape)
        self.action_mode = action_mode
        self.step_cost = float(step_cost)
        self.solve_bonus = float(solve_bonus)
        self.holdout = check_holdout(holdout)
        self.native = (int(source.shape[0]), int(source.shape[1]))

        shape = (self.batch_size, *self.canvas)
        self.grid = np.zeros(shape, dtype=np.int64)
        self.answer = np.zeros(shape, dtype=np.int64)
        self.target = np.zeros(shape, dtype=np.int64)
        self.task_id = np.zeros(self.batch_size, dtype=np.int64)
        self.steps = np.zeros(self.batch_size, dtype=np.int64)
        self.cell_accuracy = np.zeros(self.batch_size, dtype=np.float64)
        self.solved = np.zeros(self.batch_size, dtype=bool)
        # per-puzzle Python objects, held in 1-D object arrays so the vector env's infos are
        # one C-level copy per step rather than a loop over the batch
        self.demos: np.ndarray | None = None
        """``[B]`` object array: each puzzle's demonstration pairs (sources with demos)."""
        self.extra: dict[str, np.ndarray] = {}
        """``[B]`` array per key of the source's ``PuzzleBatch.extra``: numeric (int, float or
        bool dtype) when the values are numbers, else an object array."""
        self.walk = MazeWalk(self.batch_size, self.canvas) if action_mode == "walk" else None
        """The agents' positions and drawn paths in walk mode, else ``None``."""

    # ----------------------------------------------------------------------------------- spaces
    def observation_space(self) -> spaces.Dict:
        """The single-puzzle observation space (walk mode adds ``position``)."""
        board = spaces.Box(0, VOCAB_SIZE - 1, shape=self.canvas, dtype=np.int64)
        keys: dict[str, spaces.Space] = {
            "grid": board,
            "answer": spaces.Box(0, VOCAB_SIZE - 1, shape=self.canvas, dtype=np.int64),
            "task_id": spaces.Discrete(max(int(self.source.num_tasks), 1)),
        }
        if self.walk is not None:
            keys["position"] = spaces.MultiDiscrete(np.array(self.canvas, dtype=np.int64))
        return spaces.Dict(keys)

    def action_space(self) -> spaces.Space:
        """The single-puzzle action space of this core's ``action_mode``."""
        if self.action_mode == "grid":
            return spaces.Dict(
                {
                    "answer": spaces.Box(0, VOCAB_SIZE - 1, shape=self.canvas, dtype=np.int64),
                    "halt": spaces.Discrete(2),
                }
            )
        if self.walk is not None:
            return spaces.Discrete(NUM_WALK_ACTIONS)
        return spaces.Discrete(self.num_edit_actions)

    def default_max_steps(self) -> int:
        """The step limit when none is given, long enough for a perfect agent to finish.

        - grid: :data:`GRID_MAX_STEPS` (16);
        - edit: ``source.max_cells_to_write() + 1`` (every needed write, then halt);
        - walk: ``WALK_STEP_SLACK * (source.longest_distance() + 1)``
          (:func:`trmgym.envs.walk.walk_step_limit`).
        """
        if self.action_mode == "edit":
            return int(self.source.max_cells_to_write()) + 1
        if self.action_mode == "walk":
            return walk_step_limit(self.source.longest_distance())
        return GRID_MAX_STEPS

    def check_max_steps(self, max_steps: Any, name: str) -> int:
        """``max_steps`` as an int ``>= 1``; ``None`` gives :meth:`default_max_steps`.

        Raises:
            ValueError: not ``None`` and not an int ``>= 1`` (the message names ``name``).
        """
        if max_steps is None:
            return self.default_max_steps()
        if (
            isinstance(max_steps, bool)
            or not isinstance(max_steps, (int, np.integer))
            or max_steps < 1
        ):
            raise ValueError(
                f"{name} must be None (the mode's default) or an int >= 1, got {max_steps!r}"
            )
        return int(max_steps)

    @property
    def num_edit_actions(self) -> int:
        """``H * W * VOCAB_SIZE + 1``: write token ``a % V`` into cell ``a // V``; the last halts."""
        return self.canvas[0] * self.canvas[1] * VOCAB_SIZE + 1

    # ------------------------------------------------------------------------------------ reset
    def reset(self, rng: np.random.Generator, index: np.ndarray, options: dict | None) -> None:
        """Draw new puzzles for the rows in ``index`` (an int array) from ``rng``.

        A checked option holding a 1-D array of ``batch_size`` values (one per row, e.g. ARC's
        ``task_id``) is cut to the rows in ``index``.
        """
        options = self.source.check_options(options)
        index = np.asarray(index, dtype=np.int64)
        if index.size == 0:
            return
        # a per-puzzle option array over the whole batch (ARC's task_id per env) applies to
        # the rows being reset only
        options = {
            key: value[index] if _is_per_row(value, self.batch_size) else value
            for key, value in options.items()
        }
        batch = draw_puzzles(self.source, rng, int(index.size), options, self.holdout)
        self.grid[index] = place(batch.grid, self.canvas)
        self.target[index] = place(batch.target, self.canvas)
        self.answer[index] = self.grid[index]
        self.task_id[index] = batch.task_id
        self.steps[index] = 0
        if self.walk is not None:
            self.walk.reset(index, self.grid[index], self.target[index])
        self.cell_accuracy[index], self.solved[index] = self.score(index)
        if batch.demos is not None:
            if self.demos is None:
                self.demos = np.empty(self.batch_size, dtype=object)
                for row in range(self.batch_size):  # once; rows without demos yet hold []
                    self.demos[row] = []
            for row, pairs in zip(index.tolist(), batch.demos):
                self.demos[row] = [
                    (place(i[None], self.canvas)[0], place(o[None], self.canvas)[0])
                    for i, o in pairs
                ]
        for key, values in (batch.extra or {}).items():
            self._store_extra(key, index, values)

    def _store_extra(self, key: str, index: np.ndarray, values: Any) -> None:
        """Write one ``extra`` column for the rows in ``index``.

        Numeric columns (ints, floats, bools) are kept as numeric arrays, promoted when a later
        batch needs a wider dtype, so the vector env's infos batch like ``SyncVectorEnv``'s;
        anything else (names, augmentations) lives in a 1-D object array.
        """
        values = _column_values(values, int(index.size))
        column = self.extra.get(key)
        if column is None:
            column = (
                np.zeros(self.batch_size, dtype=values.dtype)
                if values.dtype != object
                else np.full(self.batch_size, None, dtype=object)
            )
        elif column.dtype != values.dtype:
            wider = (
                np.result_type(column, values)
                if object not in (column.dtype, values.dtype)
                else object
            )
            column = column.astype(wider)
        column[index] = values
        self.extra[key] = column

    # ------------------------------------------------------------------------------------- step
    def check_grid_action(self, answer: Any, halt: Any) -> tuple[np.ndarray, np.ndarray]:
        """Validate a batched grid action; returns ``(answer [B,H,W] int64, halt [B] bool)``."""
        if self.action_mode != "grid":
            raise TypeError(
                f"this env was made with action_mode={self.action_mode!r} and expects an int "
                f"action in 0..{self.action_space().n - 1}; got a grid answer "
                "(use action_mode='grid')"
            )
        answer = np.asarray(answer)
        expected = (self.batch_size, *self.canvas)
        if answer.shape != expected:
            shown = expected[1:] if self.batch_size == 1 else expected
            got = answer.shape[1:] if self.batch_size == 1 and answer.ndim == 3 else answer.shape
            raise ValueError(f"action['answer'] must have shape {shown}, got {got}")
        if not np.issubdtype(answer.dtype, np.integer):
            raise TypeError(f"action['answer'] must hold integer tokens, got dtype {answer.dtype}")
        if answer.size and (answer.min() < 0 or answer.max() >= VOCAB_SIZE):
            bad = answer[(answer < 0) | (answer >= VOCAB_SIZE)].flat[0]
            raise ValueError(
                f"action['answer'] holds token {int(bad)} outside the vocabulary; "
                f"allowed tokens: 0..{VOCAB_SIZE - 1} (see trmgym.envs.tokens)"
            )
        halt = np.asarray(halt)
        if halt.shape not in ((self.batch_size,), ()) or not (
            np.issubdtype(halt.dtype, np.integer) or halt.dtype == bool
        ):
            raise TypeError(f"action['halt'] must be 0 or 1 (one per env), got {halt!r}")
        if np.any((halt != 0) & (halt != 1)):
            raise ValueError(f"action['halt'] must be 0 or 1, got {halt!r}")
        return answer.astype(np.int64, copy=False), np.broadcast_to(halt, (self.batch_size,)) == 1

    def apply_edit_action(self, action: Any) -> np.ndarray:
        """Validate batched edit actions, write their tokens; returns the halt mask [B]."""
        if self.action_mode != "edit":
            raise TypeError(
                f"this env was made with action_mode={self.action_mode!r}, not 'edit'; got "
                f"{type(action).__name__} {action!r} for an edit action"
            )
        action = np.asarray(action)
        if not np.issubdtype(action.dtype, np.integer) or action.shape not in (
            (self.batch_size,),
            (),
        ):
            raise TypeError(
                f"edit actions must be ints in 0..{self.num_edit_actions - 1}, got {action!r}"
            )
        action = np.broadcast_to(action, (self.batch_size,)).astype(np.int64)
        if np.any((action < 0) | (action >= self.num_edit_actions)):
            raise ValueError(
                f"edit action out of range: {action.tolist()}; "
                f"allowed: 0..{self.num_edit_actions - 1} (the last one halts)"
            )
        halt = action == self.num_edit_actions - 1
        rows = np.flatnonzero(~halt)
        cell, token = np.divmod(action[rows], VOCAB_SIZE)
        row_idx, col_idx = np.divmod(cell, self.canvas[1])
        self.answer[rows, row_idx, col_idx] = token
        return halt

    def apply_walk_action(self, action: Any) -> np.ndarray:
        """Validate and apply batched walk moves, redraw the answers; returns ``[B]`` bool: the
        walk ended (the agent reached the goal or halted)."""
        if self.walk is None:
            raise TypeError(
                f"this env was made with action_mode={self.action_mode!r}, not 'walk'; got "
                f"{type(action).__name__} {action!r} for a walk action"
            )
        ended = self.walk.move(self.walk.check_action(action, self.batch_size))
        self.answer[...] = self.walk.drawn(self.grid)
        return ended

    def step(
        self, halt: np.ndarray, new_answer: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Advance every row one reasoning step; returns ``(reward [B], terminated [B])``.

        ``halt`` ends the episode (in walk mode: halting or reaching the goal). The reward is
        ``Δ cell_accuracy − step_cost`` (``"dense"``) or ``−step_cost`` (``"sparse"``), plus
        ``solve_bonus`` on the rows that end solved.
        """
        if new_answer is not None:
            self.answer[...] = new_answer
        previous = self.cell_accuracy.copy()
        everyone = np.arange(self.batch_size)
        self.cell_accuracy[...], self.solved[...] = self.score(everyone)
        self.steps += 1
        reward = np.full(self.batch_size, -self.step_cost)
        if self.reward == "dense":
            reward += self.cell_accuracy - previous
        reward = reward + self.solve_bonus * (halt & self.solved)
        return reward, halt.copy()

    def action_masks(self) -> np.ndarray:
        """``[B, n_actions]`` bool: the Discrete actions worth taking (MaskablePPO's convention).

        Edit mode: the family's :meth:`PuzzleSource.edit_tokens` on the puzzle's cells (nothing
        on canvas padding), then halt. Walk mode: the moves into an enterable cell, then halt.
        Halt is always valid, and no action of the solution is ever masked.

        Raises:
            TypeError: in grid mode, whose action is not Discrete.
        """
        if self.walk is not None:
            return self.walk.action_masks()
        if self.action_mode != "edit":
            raise TypeError(
                "action_masks() needs a Discrete action space: action_mode='edit' or 'walk', "
                f"got action_mode={self.action_mode!r}"
            )
        h, w = self.native
        tokens = np.zeros((self.batch_size, *self.canvas, VOCAB_SIZE), dtype=bool)
        tokens[:, :h, :w] = self.source.edit_tokens(self.grid[:, :h, :w], self.target[:, :h, :w])
        halt = np.ones((self.batch_size, 1), dtype=bool)
        return np.concatenate([tokens.reshape(self.batch_size, -1), halt], axis=1)

    def score(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cell accuracy and solved flag for the rows in ``index``.

        Cell accuracy is measured over the cells where the puzzle, the target or the answer is
        not PAD, so writing outside the puzzle costs accuracy and 1.0 means an exact answer.
        """
        answer, target, grid = self.answer[index], self.target[index], self.grid[index]
        region = (grid != PAD) | (target != PAD) | (answer != PAD)
        correct = ((answer == target) & region).sum(axis=(1, 2))
        accuracy = correct / np.maximum(region.sum(axis=(1, 2)), 1)
        h, w = self.native
        outside_clean = np.ones(len(index), dtype=bool)
        if (h, w) != self.canvas:
            outside = answer.copy()
            outside[:, :h, :w] = PAD
            outside_clean = ~np.any(outside != PAD, axis=(1, 2))
        if self.walk is not None:  # at the goal along a shortest path
            return accuracy, self.walk.solved(np.asarray(index))
        solved = outside_clean & self.source.is_solved(
            answer[:, :h, :w], target[:, :h, :w], grid[:, :h, :w]
        )
        return accuracy, np.asarray(solved, dtype=bool)

    # ---------------------------------------------------------------------------- observations
    def observation(self, index: np.ndarray | int | slice) -> dict[str, np.ndarray]:
        """Observation dict for a row (int) or rows (array or slice); walk mode adds
        ``position``, the agent's ``(row, col)`` on the canvas."""
        obs = {
            "grid": self.grid[index].copy(),
            "answer": self.answer[index].copy(),
            "task_id": self.task_id[index].copy(),
        }
        if self.walk is not None:
            obs["position"] = self.walk.positions(index)
        return obs

    def info(self, row: int, expose_target: bool) -> dict[str, Any]:
        """Info dict of one row."""
        info: dict[str, Any] = {
            "cell_accuracy": float(self.cell_accuracy[row]),
            "solved": bool(self.solved[row]),
            "steps": int(self.steps[row]),
        }
        if expose_target:
            info["target"] = self.target[row].copy()
        if self.demos is not None:
            info["demos"] = self.demos[row]
        for key, column in self.extra.items():
            info[key] = column[row] if column.dtype == object else column[row].item()
        return info


def build_core(
    source_cls: type[PuzzleSource],
    batch_size: int,
    *,
    canvas: tuple[int, int] | list[int] | None,
    action_mode: str,
    expose_target: bool,
    step_cost: float,
    solve_bonus: float,
    holdout: str | None,
    reward: str,
    render_mode: str | None,
    render_modes: list[str],
    source_kwargs: dict[str, Any],
    env_keywords: tuple[str, ...] = (),
) -> PuzzleCore:
    """Check the env-level arguments shared by the single and vector envs, then build the
    family's source and a :class:`PuzzleCore` of ``batch_size`` puzzles over it.

    Raises:
        TypeError: a keyword neither the env (``env_keywords``, for the message) nor the
            family's source takes, naming both lists.
    """
    accepted = inspect.signature(source_cls.__init__).parameters.values()
    if not any(p.kind is p.VAR_KEYWORD for p in accepted):
        own = [p.name for p in accepted if p.name != "self" and p.kind is not p.VAR_POSITIONAL]
        unknown = sorted(set(source_kwargs) - set(own))
        if unknown:
            raise TypeError(
                f"unknown keyword argument(s) {unknown}; the env takes {sorted(env_keywords)} "
                f"and {source_cls.__name__} takes {sorted(own)}"
            )
    if render_mode is not None and render_mode not in render_modes:
        raise ValueError(f"render_mode must be None or one of {render_modes}, got {render_mode!r}")
    if not isinstance(expose_target, bool):
        raise TypeError(f"expose_target must be a bool, got {expose_target!r}")
    if isinstance(canvas, list):
        canvas = tuple(canvas)
    return PuzzleCore(
        source_cls(**source_kwargs),
        batch_size,
        canvas=canvas,
        action_mode=action_mode,
        step_cost=step_cost,
        solve_bonus=solve_bonus,
        holdout=holdout,
        reward=reward,
    )
