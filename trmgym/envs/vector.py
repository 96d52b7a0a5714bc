"""The native batched environment: ``B`` puzzles stepped with numpy in one call.

:class:`PuzzleVectorEnv` is a :class:`gymnasium.vector.VectorEnv` over
:class:`~trmgym.envs.core.PuzzleCore`. It applies the time limit itself and autoresets finished
puzzles (Gymnasium's ``NEXT_STEP`` mode by default; ``SAME_STEP`` puts the final observation in
``info["final_obs"]``, which suits agents that refill a batch slot the moment a puzzle ends).
``gymnasium.make_vec("trmgym/Sudoku-v0", num_envs=B)`` builds it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from trmgym.envs.base import ENV_KEYWORDS, RENDER_MODES, render_row
from trmgym.envs.core import build_core
from trmgym.envs.row_options import RowOptions
from trmgym.envs.source import PuzzleSource

#: keywords every vector env takes besides its family's own (``max_steps`` is an alias)
VECTOR_ENV_KEYWORDS = (*ENV_KEYWORDS, "num_envs", "max_episode_steps", "autoreset_mode")


def _autoreset_mode(value: Any) -> AutoresetMode:
    allowed = [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP]
    if isinstance(value, str):
        for mode in allowed:
            if value.lower().replace("_", "") in (
                mode.value.lower(),
                mode.name.lower().replace("_", ""),
            ):
                return mode
    elif value in allowed:
        return value
    raise ValueError(
        f"autoreset_mode must be one of {[m.name.lower() for m in allowed]}, got {value!r}"
    )


def _check_seed(seed: Any, num_envs: int) -> list[int] | None:
    """``None`` for an int or ``None`` seed; the checked ints of a per-env seed list."""
    allowed = f"None, an int >= 0, or a list of {num_envs} ints >= 0 (one per env)"
    if seed is None:
        return None
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)):
        if seed < 0:
            raise ValueError(f"seed must be {allowed}, got {seed}")
        return None
    if isinstance(seed, np.ndarray):
        if seed.ndim != 1 or (seed.size and seed.dtype.kind not in "iu"):
            raise TypeError(
                f"seed must be {allowed}, got an array of shape {seed.shape} {seed.dtype}"
            )
        seed = seed.tolist()
    if not isinstance(seed, (list, tuple)):
        raise TypeError(f"seed must be {allowed}, got {type(seed).__name__}")
    if len(seed) != num_envs:
        raise ValueError(
            f"seed must be {allowed}; got a list of {len(seed)} seeds for num_envs={num_envs}"
        )
    bad = [
        s for s in seed if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer))
    ]
    if bad:
        raise TypeError(
            f"seed must be {allowed} (None only as the whole seed); the list holds {bad[0]!r}"
        )
    if min(seed) < 0:
        raise ValueError(f"seed must be {allowed}; the list holds {min(seed)}")
    return [int(s) for s in seed]


class PuzzleVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` puzzles of one family, batched with numpy (see :class:`PuzzleEnv`).

    Each row may have reset options of its own (:meth:`set_options`), merged over the base
    options of ``reset(options=...)``: a curriculum picks the task or level of every row's
    next puzzle, drawn at that row's autoreset.

    Args:
        num_envs: batch size ``B >= 1``.
        max_episode_steps: reasoning steps before truncation (an int >= 1), or ``None`` (the
            default): the mode's default, long enough for a perfect agent
            (:meth:`~trmgym.envs.core.PuzzleCore.default_max_steps`).
        autoreset_mode: ``"next_step"`` (Gymnasium's default) or ``"same_step"``.
        canvas, action_mode, expose_target, step_cost, solve_bonus, reward, render_mode: as
            for :class:`~trmgym.envs.base.PuzzleEnv`.
        holdout: ``None`` (every puzzle, the default), ``"train"`` or ``"test"``: pose only
            puzzles of that held-out split (:mod:`trmgym.envs.holdout`).
        **source_kwargs: the family's arguments.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": RENDER_MODES,
        "render_fps": 4,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }
    source_cls: ClassVar[type[PuzzleSource]]

    def __init__(
        self,
        num_envs: int,
        *,
        max_episode_steps: int | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        canvas: tuple[int, int] | None = None,
        action_mode: str = "grid",
        expose_target: bool = False,
        step_cost: float = 0.01,
        solve_bonus: float = 1.0,
        holdout: str | None = None,
        reward: str = "dense",
        render_mode: str | None = None,
        **source_kwargs: Any,
    ) -> None:
        if (
            isinstance(num_envs, bool)
            or not isinstance(num_envs, (int, np.integer))
            or num_envs < 1
        ):
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        self.num_envs = int(num_envs)
        if "max_steps" in source_kwargs:  # the single env's name for it (and the README's)
            if max_episode_steps is not None:
                raise TypeError(
                    "give max_steps or max_episode_steps (the same limit), not both: got "
                    f"max_steps={source_kwargs['max_steps']!r}, "
                    f"max_episode_steps={max_episode_steps!r}"
                )
            max_episode_steps = source_kwargs.pop("max_steps")
        self.autoreset_mode = _autoreset_mode(autoreset_mode)
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        self.core = build_core(
            self.source_cls,
            self.num_envs,
            canvas=canvas,
            action_mode=action_mode,
            expose_target=expose_target,
            step_cost=step_cost,
            solve_bonus=solve_bonus,
            holdout=holdout,
            reward=reward,
            render_mode=render_mode,
            render_modes=RENDER_MODES,
            source_kwargs=source_kwargs,
            env_keywords=VECTOR_ENV_KEYWORDS,
        )
        self.source = self.core.source
        self.holdout = self.core.holdout
        self.reward = reward
        self.max_episode_steps = self.core.check_max_steps(max_episode_steps, "max_episode_steps")
        self.action_mode = action_mode
        self.expose_target = expose_target
        self.render_mode = render_mode
        self.single_observation_space = self.core.observation_space()
        self.single_action_space = self.core.action_space()
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)
        self._has_puzzles = False
        self._row_options = RowOptions(self.num_envs, self.source.check_options)

    @property
    def num_tasks(self) -> int:
        """Number of distinct tasks of this env's family."""
        return int(self.source.num_tasks)

    def reset(
        self,
        *,
        seed: int | Sequence[int] | np.ndarray | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Draw new puzzles for every row.

        Args:
            seed: ``None`` (continue the current stream), an int ``>= 0`` (as Gymnasium), or
                one int ``>= 0`` per env (a list, tuple or 1-D array of ``num_envs`` ints):
                the batch's single generator is then seeded from the whole list, so equal
                lists give equal puzzles and different lists different ones.
            options: the base reset options (see the family's source), used by this and every
                later reset; per-row options from :meth:`set_options` are merged over them.
        """
        seeds = _check_seed(seed, self.num_envs)
        self._row_options.set_base(options)  # checked before anything changes
        if seeds is None:
            super().reset(seed=None if seed is None else int(seed))
        else:
            super().reset(seed=None)
            # one generator for the batch, seeded by every entry (numpy pads entropy shorter
            # than its pool with zeros, so the length is mixed in: [3, 0] is not the int 3)
            sequence = np.random.SeedSequence(seeds, spawn_key=(len(seeds),))
            self.np_random = np.random.Generator(np.random.PCG64(sequence))
        self._reset_rows(np.arange(self.num_envs))
        self._needs_reset[:] = False
        self._has_puzzles = True
        return self.core.observation(slice(None)), self._infos()

    def step(
        self, actions: Any
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._has_puzzles:
            raise RuntimeError("call reset() before step()")
        if self.action_mode == "grid":
            if not isinstance(actions, dict) or {"answer", "halt"} - set(actions):
                raise TypeError(
                    "action_mode='grid' expects a dict {'answer': [B, H, W] ints, 'halt': [B] 0|1}"
                    f", got {type(actions).__name__}"
                )
            answer, halt = self.core.check_grid_action(actions["answer"], actions["halt"])
            reward, terminated = self.core.step(halt, answer)
        elif self.action_mode == "walk":
            reward, terminated = self.core.step(self.core.apply_walk_action(actions))
        else:
            halt = self.core.apply_edit_action(actions)
            reward, terminated = self.core.step(halt)
        truncated = (self.core.steps >= self.max_episode_steps) & ~terminated

        restarted = np.flatnonzero(self._needs_reset)
        if restarted.size:  # NEXT_STEP: these rows ignore the action and start a new puzzle
            self._reset_rows(restarted)
            reward[restarted] = 0.0
            terminated[restarted] = False
            truncated[restarted] = False

        done = terminated | truncated
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            self._needs_reset = done
            return self.core.observation(slice(None)), reward, terminated, truncated, self._infos()

        infos = self._infos()
        finished = np.flatnonzero(done)
        if finished.size:
            infos["final_obs"] = np.empty(self.num_envs, dtype=object)
            infos["final_info"] = np.empty(self.num_envs, dtype=object)
            for row in finished.tolist():
                infos["final_obs"][row] = self.core.observation(row)
                infos["final_info"][row] = self.core.info(row, self.expose_target)
            infos["_final_obs"] = done.copy()
            infos["_final_info"] = done.copy()
            self._reset_rows(finished)
            # same-step autoreset: every per-puzzle key describes the new puzzles
            infos.update({k: v for k, v in self._infos().items() if not k.startswith("_")})
        return self.core.observation(slice(None)), reward, terminated, truncated, infos

    def set_options(
        self,
        options: Mapping[str, Any] | Sequence[Mapping[str, Any] | None] | None,
        rows: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        """Set per-row reset options: the task or level of each row's next puzzles.

        A row's options are merged over the base options of the last ``reset(options=...)``
        (the row's win on shared keys) and used at every later reset of that row — autoresets
        in both modes and explicit ``reset()`` calls — until changed; ``reset(options=...)``
        replaces the base but keeps them. Rows with equal options are drawn together, one source
        draw per distinct option set; without per-row options the draws are exactly those of an
        env that never had any.

        Args:
            options: one mapping (for every row in ``rows``), ``None`` (clear the rows' options),
                or a sequence with one mapping or ``None`` per row in ``rows``.
            rows: distinct row indices (a 1-D list or int array); ``None`` means every row.

        Raises:
            TypeError: ``rows`` is not a list/array of ints (a boolean mask included), or
                ``options`` or one of its entries is not a mapping or ``None``.
            ValueError: a row outside ``0..num_envs-1`` or repeated, a sequence of ``options``
                whose length differs from ``rows``', or an option the family rejects (the
                source's own error, raised now rather than at the next reset).
        """
        self._row_options.set(options, rows)

    def action_masks(self) -> np.ndarray:
        """``[num_envs, n_actions]`` bool masks of the Discrete actions worth taking, one row per
        env (see :meth:`trmgym.envs.base.PuzzleEnv.action_masks`).

        Raises:
            TypeError: in grid mode (its action space is not Discrete).
            RuntimeError: before the first ``reset()``.
        """
        if not self._has_puzzles:
            raise RuntimeError("call reset() before action_masks()")
        return self.core.action_masks()

    def options_of(self, row: int) -> dict[str, Any] | None:
        """The options the next reset of ``row`` uses: the base merged with the row's own."""
        return self._row_options.options_of(row)

    def _reset_rows(self, rows: np.ndarray) -> None:
        """Draw new puzzles for ``rows``, one draw per group of rows with equal options."""
        for group, options in self._row_options.groups(rows):
            self.core.reset(self.np_random, group, options)

    def _infos(self) -> dict[str, Any]:
        everyone = np.ones(self.num_envs, dtype=bool)
        infos: dict[str, Any] = {
            "cell_accuracy": self.core.cell_accuracy.copy(),
            "solved": self.core.solved.copy(),
            "steps": self.core.steps.copy(),
        }
        if self.expose_target:
            infos["target"] = self.core.target.copy()
        if self.core.demos is not None:
            infos["demos"] = self.core.demos.copy()
        for key, column in self.core.extra.items():
            infos[key] = column.copy()
        for key in list(infos):
            infos[f"_{key}"] = everyone
        return infos

    def render(self) -> tuple[Any, ...] | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode")
            return None
        return tuple(
            render_row(self.core, row, self.render_mode, self.expose_target)
            for row in range(self.num_envs)
        )
