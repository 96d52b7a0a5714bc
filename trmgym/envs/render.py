"""Rendering token grids: coloured terminal text (``ansi``) and RGB images (``rgb_array``).

Both renderers take a list of ``(title, grid)`` panels and lay them out side by side — the puzzle,
the agent's current answer and (when exposed) the target. Colours follow the ARC palette; Sudoku
digits get drawn glyphs; maze walls, start, goal and path get distinct colours. The RGB renderer is
a lookup into pre-drawn per-token tiles, so it costs a few numpy ops per frame.
"""

from __future__ import annotations

import functools

import numpy as np

from trmgym.envs import tokens as T

CELL = 12  # pixels per cell in rgb_array frames
GAP = 8  # pixels between panels

# 3x5 bitmap digits 0..9 (rows top to bottom, '#' = ink), drawn at 2x inside a 12 px cell.
_GLYPHS = {
    0: ("###", "#.#", "#.#", "#.#", "###"),
    1: (".#.", "##.", ".#.", ".#.", "###"),
    2: ("###", "..#", "###", "#..", "###"),
    3: ("###", "..#", "###", "..#", "###"),
    4: ("#.#", "#.#", "###", "..#", "..#"),
    5: ("###", "#..", "###", "..#", "###"),
    6: ("###", "#..", "###", "#.#", "###"),
    7: ("###", "..#", ".#.", ".#.", ".#."),
    8: ("###", "#.#", "###", "#.#", "###"),
    9: ("###", "#.#", "###", "..#", "###"),
}

_PAD_RGB = (24, 24, 24)
_DIGIT_BG = (245, 245, 240)
_DIGIT_INK = (20, 40, 120)
_MAZE_RGB = {
    T.MAZE_OPEN: (250, 250, 250),
    T.MAZE_WALL: (55, 60, 75),
    T.MAZE_START: (46, 204, 64),
    T.MAZE_GOAL: (255, 65, 54),
    T.MAZE_PATH: (255, 200, 0),
}


def _token_rgb(token: int) -> tuple[int, int, int]:
    if token == T.PAD:
        return _PAD_RGB
    if T.COLOR_OFFSET <= token < T.COLOR_OFFSET + T.NUM_COLORS:
        return tuple(int(c) for c in T.ARC_PALETTE[token - T.COLOR_OFFSET])
    if T.DIGIT_BLANK <= token <= T.DIGIT_OFFSET + T.MAX_DIGIT:
        return _DIGIT_BG
    return _MAZE_RGB[token]


@functools.lru_cache(maxsize=1)
def token_tiles() -> np.ndarray:
    """``[VOCAB_SIZE, CELL, CELL, 3]`` uint8 image of every token, with a 1 px grid line."""
    tiles = np.zeros((T.VOCAB_SIZE, CELL, CELL, 3), dtype=np.uint8)
    for token in range(T.VOCAB_SIZE):
        tiles[token] = _token_rgb(token)
        digit = token - T.DIGIT_OFFSET
        if 1 <= digit <= T.MAX_DIGIT:
            glyph = np.array([[ch == "#" for ch in row] for row in _GLYPHS[digit]])
            ink = np.kron(glyph, np.ones((2, 2), dtype=bool))  # 10 x 6
            tiles[token, 1:11, 3:9][ink] = _DIGIT_INK
        if token == T.MAZE_START or token == T.MAZE_GOAL:
            tiles[token, 4:8, 4:8] = (255, 255, 255)
    tiles[:, -1, :, :] = 90  # grid lines
    tiles[:, :, -1, :] = 90
    return tiles


def rgb_grid(grid: np.ndarray) -> np.ndarray:
    """One ``[H, W]`` token grid as an ``[H*CELL, W*CELL, 3]`` uint8 image."""
    grid = np.asarray(grid, dtype=np.int64)
    h, w = grid.shape
    image = token_tiles()[np.clip(grid, 0, T.VOCAB_SIZE - 1)]  # [H, W, CELL, CELL, 3]
    return image.transpose(0, 2, 1, 3, 4).reshape(h * CELL, w * CELL, 3)


def rgb_panels(panels: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """Side-by-side RGB image of several equally-shaped grids (titles are not drawn)."""
    images = [rgb_grid(grid) for _, grid in panels]
    height = max(image.shape[0] for image in images)
    spacer = np.full((height, GAP, 3), 255, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for i, image in enumerate(images):
        if i:
            parts.append(spacer)
        parts.append(image)
    return np.concatenate(parts, axis=1)


def _ansi_cell(token: int) -> str:
    r, g, b = _token_rgb(token)
    digit = token - T.DIGIT_OFFSET
    if 1 <= digit <= T.MAX_DIGIT:
        text, fg = f" {digit}", "20;40;120"
    elif token == T.DIGIT_BLANK:
        text, fg = " .", "150;150;150"
    elif token == T.MAZE_START:
        text, fg = " S", "255;255;255"
    elif token == T.MAZE_GOAL:
        text, fg = " G", "255;255;255"
    elif token == T.PAD:
        text, fg = " ·", "80;80;80"
    else:
        text, fg = "  ", "0;0;0"
    return f"\x1b[48;2;{r};{g};{b}m\x1b[38;2;{fg}m{text}"


def ansi_panels(panels: list[tuple[str, np.ndarray]]) -> str:
    """Side-by-side 24-bit-colour terminal rendering of several grids with titles."""
    grids = [np.asarray(grid) for _, grid in panels]
    height = max(grid.shape[0] for grid in grids)
    reset = "\x1b[0m"
    widths = [2 * grid.shape[1] for grid in grids]
    lines = ["   ".join(title.ljust(width)[:width] for (title, _), width in zip(panels, widths))]
    for r in range(height):
        row_parts = []
        for grid, width in zip(grids, widths):
            if r < grid.shape[0]:
                row_parts.append("".join(_ansi_cell(int(t)) for t in grid[r]) + reset)
            else:
                row_parts.append(" " * width)
        lines.append("   ".join(row_parts))
    return "\n".join(lines) + "\n"
