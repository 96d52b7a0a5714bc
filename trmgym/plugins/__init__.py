"""Training plugins: the seam through which strategies, curiosity and curricula enter a run."""

from trmgym.plugins.base import Plugin, Plugins, PuzzleMemory, TaskDirective
from trmgym.plugins.strategies import (
    EWC,
    STRATEGIES,
    Multitask,
    Replay,
    Scratch,
    Strategy,
    make_strategy,
)

__all__ = [
    "EWC",
    "STRATEGIES",
    "Multitask",
    "Plugin",
    "Plugins",
    "PuzzleMemory",
    "Replay",
    "Scratch",
    "Strategy",
    "TaskDirective",
    "make_strategy",
]
