"""Training plugins: the seam through which strategies, curiosity and curricula enter a run."""

from trmgym.plugins.base import Plugin, Plugins, PuzzleMemory, TaskDirective
from trmgym.plugins.strategies import (
    EWC,
    STRATEGIES,
    Memory,
    MemoryReplay,
    Multitask,
    Replay,
    Scratch,
    Strategy,
    make_strategy,
)

__all__ = [
    "EWC",
    "STRATEGIES",
    "Memory",
    "MemoryReplay",
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
