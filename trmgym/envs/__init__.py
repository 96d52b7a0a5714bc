"""Gymnasium environments whose actions are reasoning steps: Sudoku, Maze, ARC and ARCGen."""

from trmgym.envs import tokens
from trmgym.envs.base import PuzzleEnv
from trmgym.envs.core import PuzzleCore
from trmgym.envs.source import PuzzleBatch, PuzzleSource
from trmgym.envs.vector import PuzzleVectorEnv

__all__ = ["PuzzleBatch", "PuzzleCore", "PuzzleEnv", "PuzzleSource", "PuzzleVectorEnv", "tokens"]
