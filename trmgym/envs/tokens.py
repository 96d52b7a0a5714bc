"""The token vocabulary shared by every trmgym environment.

All grids (puzzle inputs, drafts, targets, demonstrations) are integer arrays of these tokens, so
one agent with one embedding table can face Sudoku, Maze and ARC puzzles in a single sequence.

======  ==================  =======================================================
token   name                meaning
======  ==================  =======================================================
0       ``PAD``             outside the puzzle (canvas padding, ARC output margin)
1-10    ``COLOR_0..9``      ARC colours 0..9 (black, blue, red, green, yellow, grey,
                            magenta, orange, azure, maroon)
11      ``DIGIT_BLANK``     an empty Sudoku cell
12-20   ``DIGIT_1..9``      Sudoku digits 1..9
21      ``MAZE_OPEN``       a free maze cell
22      ``MAZE_WALL``       a maze wall
23      ``MAZE_START``      the maze start cell
24      ``MAZE_GOAL``       the maze goal cell
25      ``MAZE_PATH``       a cell on the drawn path (answers only)
======  ==================  =======================================================
"""

from __future__ import annotations

import numpy as np

PAD = 0
COLOR_OFFSET = 1
NUM_COLORS = 10
DIGIT_BLANK = 11
DIGIT_OFFSET = 11  # digit d (1..9) is token DIGIT_OFFSET + d
MAX_DIGIT = 9
MAZE_OPEN = 21
MAZE_WALL = 22
MAZE_START = 23
MAZE_GOAL = 24
MAZE_PATH = 25
VOCAB_SIZE = 26

TOKEN_NAMES: tuple[str, ...] = (
    ("PAD",)
    + tuple(f"COLOR_{c}" for c in range(NUM_COLORS))
    + ("DIGIT_BLANK",)
    + tuple(f"DIGIT_{d}" for d in range(1, MAX_DIGIT + 1))
    + ("MAZE_OPEN", "MAZE_WALL", "MAZE_START", "MAZE_GOAL", "MAZE_PATH")
)
assert len(TOKEN_NAMES) == VOCAB_SIZE

# The ARC palette (RGB) indexed by ARC colour 0..9, as used by the ARC-AGI viewers.
ARC_PALETTE = np.array(
    [
        [0, 0, 0],
        [0, 116, 217],
        [255, 65, 54],
        [46, 204, 64],
        [255, 220, 0],
        [170, 170, 170],
        [240, 18, 190],
        [255, 133, 27],
        [127, 219, 255],
        [135, 12, 37],
    ],
    dtype=np.uint8,
)


def colors_to_tokens(colors: np.ndarray) -> np.ndarray:
    """Map ARC colours 0..9 to tokens 1..10 (any shape)."""
    colors = np.asarray(colors)
    if colors.size and (colors.min() < 0 or colors.max() >= NUM_COLORS):
        raise ValueError(
            f"colors must lie in 0..{NUM_COLORS - 1}, got values in "
            f"{int(colors.min())}..{int(colors.max())}"
        )
    return colors.astype(np.int64) + COLOR_OFFSET


def tokens_to_colors(tokens: np.ndarray) -> np.ndarray:
    """Map colour tokens 1..10 back to ARC colours 0..9; PAD becomes -1."""
    tokens = np.asarray(tokens, dtype=np.int64)
    return np.where(tokens == PAD, -1, tokens - COLOR_OFFSET)


def digits_to_tokens(digits: np.ndarray) -> np.ndarray:
    """Map Sudoku digits (0 = blank, 1..9) to tokens 11..20 (any shape)."""
    digits = np.asarray(digits)
    if digits.size and (digits.min() < 0 or digits.max() > MAX_DIGIT):
        raise ValueError(f"digits must lie in 0..{MAX_DIGIT} (0 = blank)")
    return digits.astype(np.int64) + DIGIT_OFFSET


def tokens_to_digits(tokens: np.ndarray) -> np.ndarray:
    """Map digit tokens 11..20 back to digits 0..9 (0 = blank)."""
    return np.asarray(tokens, dtype=np.int64) - DIGIT_OFFSET


def token_name(token: int) -> str:
    """The documented name of a token, e.g. ``token_name(12) == "DIGIT_1"``."""
    if not 0 <= int(token) < VOCAB_SIZE:
        raise ValueError(f"token must lie in 0..{VOCAB_SIZE - 1}, got {token}")
    return TOKEN_NAMES[int(token)]
