"""A do-nothing agent: halts at once on the initial draft (a puzzle's input)."""

from __future__ import annotations

from typing import Any

import numpy as np


def do_nothing_solves(env: Any, rounds: int = 10, *, seed: int = 0) -> int:
    """Episodes a halt-at-step-1 agent solves over ``rounds`` batches of ``env``'s puzzles.

    Also asserts that no puzzle is already solved at reset. Each round halts every row on its
    draft, then steps once more so a next-step autoreset draws fresh puzzles.
    """
    obs, info = env.reset(seed=seed)
    halt = np.ones(env.num_envs, dtype=np.int64)
    solved = 0
    for _ in range(rounds):
        assert not info["solved"].any()
        obs, _, terminated, _, info = env.step({"answer": obs["answer"], "halt": halt})
        assert terminated.all()
        solved += int(info["solved"].sum())
        obs, _, _, _, info = env.step({"answer": obs["answer"], "halt": halt})  # autoreset
    return solved
