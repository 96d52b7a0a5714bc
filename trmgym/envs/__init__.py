"""Gymnasium environments whose actions are reasoning steps: Sudoku, Maze, ARC and ARCGen."""

from trmgym.envs import tokens
from trmgym.envs.arc import ARCEnv, ARCSource, ARCVectorEnv
from trmgym.envs.arcgen import ARCGenEnv, ARCGenSource, ARCGenVectorEnv
from trmgym.envs.base import PuzzleEnv
from trmgym.envs.core import PuzzleCore
from trmgym.envs.maze import MazeEnv, MazeSource, MazeVectorEnv
from trmgym.envs.source import PuzzleBatch, PuzzleSource
from trmgym.envs.sudoku import SudokuEnv, SudokuSource, SudokuVectorEnv
from trmgym.envs.vector import PuzzleVectorEnv

__all__ = [
    "ARCEnv",
    "ARCGenEnv",
    "ARCGenSource",
    "ARCGenVectorEnv",
    "ARCSource",
    "ARCVectorEnv",
    "MazeEnv",
    "MazeSource",
    "MazeVectorEnv",
    "PuzzleBatch",
    "PuzzleCore",
    "PuzzleEnv",
    "PuzzleSource",
    "PuzzleVectorEnv",
    "SudokuEnv",
    "SudokuSource",
    "SudokuVectorEnv",
    "tokens",
]
