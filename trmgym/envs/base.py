"""The single-puzzle Gymnasium environment: one reasoning step per ``step``.

Every trmgym env (Sudoku, Maze, ARC, ARCGen) is a :class:`PuzzleEnv` whose ``source_cls`` draws its
puzzles. The env is the ``B = 1`` view of :class:`~trmgym.envs.core.PuzzleCore`, the same code the
batched :class:`~trmgym.envs.vector.PuzzleVectorEnv` runs.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from trmgym.envs.core import PuzzleCore, build_core
from trmgym.envs.render import ansi_panels, rgb_panels
from trmgym.envs.source import PuzzleSource

RENDER_MODES = ["ansi", "rgb_array"]
#: keywords every single env takes besides its family's own (named when a keyword is unknown)
ENV_KEYWORDS = (
    "canvas",
    "action_mode",
    "expose_target",
    "step_cost",
    "solve_bonus",
    "holdout",
    "reward",
    "max_steps",
    "render_mode",
)


def render_row(core: PuzzleCore, row: int, render_mode: str, expose_target: bool) -> Any:
    """Row ``row`` of ``core`` as ``ansi`` panels (text) or an ``rgb_array`` frame.

    The RGB frame labels its panels "input", "answer" (and "target"), with a status line (task,
    step, cell accuracy, solved) above; its shape depends only on the canvas and
    ``expose_target`` (:func:`trmgym.envs.render.frame_shape`). The ANSI panels keep their
    "puzzle" title; :meth:`PuzzleEnv.render` adds the status lines around them.
    """
    grids = [core.grid[row], core.answer[row]] + ([core.target[row]] if expose_target else [])
    if render_mode == "ansi":
        return ansi_panels(list(zip(["puzzle", "answer", "target"], grids)))
    status = (
        f"{core.source.name} task {int(core.task_id[row])}  step {int(core.steps[row])}  "
        f"accuracy {core.cell_accuracy[row]:.2f}  {'solved' if core.solved[row] else 'unsolved'}"
    )
    return rgb_panels(
        list(zip(["input", "answer", "target"], grids)),
        canvas=core.canvas,
        status=status,
        scale_by=(0, 2) if expose_target else (0,),  # the puzzle's grids, steady all episode
    )


class PuzzleEnv(gym.Env):
    """A puzzle whose actions are an agent's reasoning steps.

    ## Description
    Each episode presents one puzzle. The observation holds the puzzle (``grid``), the agent's
    current draft (``answer``, initialised to the puzzle) and the puzzle's ``task_id``. Each
    step is one reasoning step: the agent proposes a whole answer (``grid`` mode), writes one
    token (``edit`` mode) or, in a maze, moves one cell (``walk`` mode), and may halt. Halting
    ends the episode; the env truncates it after ``max_steps`` steps. No puzzle is solved at
    reset: a draw whose input already solves it is drawn again (:mod:`trmgym.envs.draw`).

    ## Action Space
    - ``action_mode="grid"``: ``Dict(answer=Box(0, V-1, (H, W), int64), halt=Discrete(2))``.
    - ``action_mode="edit"``: ``Discrete(H*W*V + 1)``; action ``a < H*W*V`` writes token
      ``a % V`` into flat cell ``a // V``; the last action halts. ``V`` is
      :data:`trmgym.envs.tokens.VOCAB_SIZE`. :meth:`action_masks` gives the writes worth making.
    - ``action_mode="walk"`` (Maze only): ``Discrete(5)``: ``0`` up, ``1`` right, ``2`` down,
      ``3`` left, ``4`` halt (:mod:`trmgym.envs.walk`).

    ## Observation Space
    ``Dict(grid=Box(0, V-1, (H, W), int64), answer=Box(0, V-1, (H, W), int64),
    task_id=Discrete(num_tasks))`` with ``(H, W)`` the ``canvas`` (default: the family's grid);
    walk mode adds ``position=MultiDiscrete([H, W])``, the agent's ``(row, col)``.

    ## Rewards
    ``reward="dense"`` (default): ``Δ cell_accuracy − step_cost`` every step, ``+ solve_bonus``
    when the episode ends solved (halting on a correct answer; in walk mode, reaching the goal
    along a shortest path). ``reward="sparse"``: ``−step_cost`` every step, ``+ solve_bonus``
    likewise. ``info``: ``cell_accuracy`` (0..1), ``solved``, ``steps``; ``target`` only with
    ``expose_target=True``; ``demos`` for few-shot families; family metadata (e.g. the
    augmentation applied).

    ## Arguments
    canvas, action_mode, expose_target, step_cost, solve_bonus, holdout, reward, max_steps,
    render_mode; every other keyword goes to the family's source (see its class). ``holdout``
    (``None`` | ``"train"`` | ``"test"``, default ``None``): pose only puzzles of that held-out
    split, chosen by a fixed hash of each puzzle's contents (about 20% are "test";
    :mod:`trmgym.envs.holdout`), so a training env and an evaluation env never share a puzzle;
    ``None`` poses every puzzle. ``max_steps`` (int ``>= 1`` or ``None``): steps before the env
    truncates the episode; ``None`` picks the mode's default, long enough for a perfect agent
    (:meth:`~trmgym.envs.core.PuzzleCore.default_max_steps`: 16 in grid mode, the most cells a
    puzzle needs written + 1 in edit mode, ``4 * (longest shortest path + 1)`` in walk mode).
    A ``TimeLimit`` around the env (``gymnasium.make``'s ``max_episode_steps``) truncates too:
    the shorter limit wins.

    ## Rendering
    ``"ansi"``: coloured text panels with a status line above and below. ``"rgb_array"``: a uint8
    frame with labelled panels (input, answer, target when exposed) under a status line (task,
    step, cell accuracy, solved), each grid cut to its content and scaled up (an ARC puzzle at its
    own size); the frame's shape is fixed by the canvas and ``expose_target``
    (:func:`trmgym.envs.render.frame_shape`), e.g. 320 x 544 for a 4x4 Sudoku.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": RENDER_MODES, "render_fps": 4}
    source_cls: ClassVar[type[PuzzleSource]]

    def __init__(
        self,
        *,
        canvas: tuple[int, int] | None = None,
        action_mode: str = "grid",
        expose_target: bool = False,
        step_cost: float = 0.01,
        solve_bonus: float = 1.0,
        holdout: str | None = None,
        reward: str = "dense",
        max_steps: int | None = None,
        render_mode: str | None = None,
        **source_kwargs: Any,
    ) -> None:
        self.core = build_core(
            self.source_cls,
            1,
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
            env_keywords=ENV_KEYWORDS,
        )
        self.source = self.core.source
        self.holdout = self.core.holdout
        self.reward = reward
        self.max_steps = self.core.check_max_steps(max_steps, "max_steps")
        self.action_mode = action_mode
        self.expose_target = expose_target
        self.render_mode = render_mode
        self.observation_space = self.core.observation_space()
        self.action_space = self.core.action_space()
        self._has_puzzle = False
        self._ended = False

    @property
    def num_tasks(self) -> int:
        """Number of distinct tasks of this env (``task_id`` lies in ``0..num_tasks-1``)."""
        return int(self.source.num_tasks)

    @property
    def canvas(self) -> tuple[int, int]:
        """``(H, W)`` of every observed grid."""
        return self.core.canvas

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        self.core.reset(self.np_random, np.zeros(1, dtype=np.int64), options)
        self._has_puzzle = True
        self._ended = False
        return self.core.observation(0), self.core.info(0, self.expose_target)

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if not self._has_puzzle:
            raise RuntimeError("call reset() before step()")
        if self._ended:  # stepping on would pay the solve bonus again, every step
            raise RuntimeError(
                "the episode has ended (terminated or truncated); call reset() before step()"
            )
        if self.action_mode == "grid":
            if not isinstance(action, dict):
                raise TypeError(
                    "action_mode='grid' expects a dict {'answer': HxW int array, 'halt': 0|1}, "
                    f"got {type(action).__name__} (use action_mode='edit' for Discrete actions)"
                )
            missing = {"answer", "halt"} - set(action)
            if missing:
                raise ValueError(
                    f"action is missing key(s) {sorted(missing)}; needs 'answer' and 'halt'"
                )
            answer = np.asarray(action["answer"])
            answer, halt = self.core.check_grid_action(answer[None], np.asarray(action["halt"]))
            reward, terminated = self.core.step(halt, answer)
        elif self.action_mode == "walk":
            reward, terminated = self.core.step(self.core.apply_walk_action(action))
        else:
            if isinstance(action, dict):
                raise TypeError(
                    f"action_mode='edit' expects an int in 0..{self.core.num_edit_actions - 1}, "
                    "got a dict (use action_mode='grid' for answer/halt dicts)"
                )
            halt = self.core.apply_edit_action(action)
            reward, terminated = self.core.step(halt)
        obs = self.core.observation(0)
        ended = bool(terminated[0])
        truncated = not ended and int(self.core.steps[0]) >= self.max_steps
        self._ended = ended or truncated
        return (obs, float(reward[0]), ended, truncated, self.core.info(0, self.expose_target))

    def action_masks(self) -> np.ndarray:
        """``[n_actions]`` bool mask of the Discrete actions worth taking (sb3-contrib's
        MaskablePPO convention); halt is always valid and no action of the solution is masked.

        Edit mode: Sudoku allows its digits on the blank cells only; Maze ``MAZE_OPEN`` and
        ``MAZE_PATH`` on the open cells (never on walls, start or goal); ARC and ARCGen the
        colours inside the target output's extent and PAD on the input's cells outside it (so
        the mask reveals the output's size); canvas padding allows nothing. Walk mode: the
        moves into an enterable cell (not a wall, PAD or off the grid).

        Raises:
            TypeError: in grid mode (its action space is not Discrete).
            RuntimeError: before the first ``reset()``.
        """
        if not self._has_puzzle:
            raise RuntimeError("call reset() before action_masks()")
        return self.core.action_masks()[0]

    def render(self) -> str | np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn(
                "render() called without a render_mode; pass render_mode='ansi' or 'rgb_array'"
            )
            return None
        if not self._has_puzzle:
            raise RuntimeError("call reset() before render()")
        frame = render_row(self.core, 0, self.render_mode, self.expose_target)
        if self.render_mode == "ansi":
            title = f"{self.source.name} task {int(self.core.task_id[0])} step {int(self.core.steps[0])}"
            info = f"cell accuracy {self.core.cell_accuracy[0]:.2f}  solved {bool(self.core.solved[0])}"
            return f"{title}\n{frame}{info}\n"
        return frame
