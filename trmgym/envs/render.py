"""Rendering token grids: coloured terminal text (``ansi``) and labelled RGB frames (``rgb_array``).

Both renderers take a list of ``(title, grid)`` panels and lay them out side by side — the puzzle,
the agent's current answer and (when exposed) the target. Colours follow the ARC palette; Sudoku
digits are drawn as text; maze walls, start (``S``), goal (``G``) and path get distinct colours;
PAD cells (outside a puzzle) are hatched grey, never black like ARC colour 0. Each panel shows
its grid's own top-left content — the smallest top-left block holding every non-PAD cell
(:func:`~trmgym.envs.augment.content_extent`) — so an ARC puzzle appears at its own size rather
than in the corner of the 30x30 canvas; an all-PAD grid leaves its panel empty.

RGB frame layout and size
-------------------------
Every frame of an env has one shape, fixed by its canvas ``(H, W)`` (the observation shape), the
number of panels (2, or 3 with ``expose_target``) and whether a status line is drawn — never by the
puzzle posed, the step or the answer, so Gymnasium's ``RecordVideo`` and TensorBoard videos get a
constant frame size:

- ``cell = min(ceil(256 / min(H, W)), 768 // max(H, W))`` pixels per canvas cell
  (:func:`cell_size`): a panel is at least 256 px on its short side and at most 768 px on its
  long side (only canvases more elongated than about 3:1 trade the first bound for the second);
- each panel is a fixed ``H * cell`` by ``W * cell`` slot under a 24 px label band ("input",
  "answer", "target"), panels ``GAP`` px apart, an 8 px margin around, and above them an
  optional 24 px status band (e.g. "sudoku task 0  step 3  accuracy 0.75  unsolved");
- the grid shown in a slot is centred in it, the rest of the slot light grey (``SLOT_RGB``),
  and scaled by the largest whole number of pixels per cell at which the puzzle's grids (the
  input, and the target when shown) fit their slots. One scale for the panels, so sizes
  compare, and steady through an episode: an answer whose content does not fit at that scale
  (a draft scribbled over the whole canvas) alone is drawn smaller, to fit.

Frames ``(height, width)`` with the status band, 2 panels / 3 panels:

========================  ====  ============  ============
canvas                    cell  2 panels      3 panels
========================  ====  ============  ============
4x4 (Sudoku ``size=4``)    64   320 x 544     320 x 816
9x9 (Sudoku)               29   325 x 554     325 x 831
10x10 (ARCGen default)     26   324 x 552     324 x 828
11x11 (Maze ``size=11``)   24   328 x 560     328 x 840
15x15 (Maze)               18   334 x 572     334 x 858
30x30 (ARC)                 9   334 x 572     334 x 858
========================  ====  ============  ============

A 3x5 ARC puzzle on the 30x30 canvas is drawn at 54 px per cell, a 162 x 270 block centred in
its 270 x 270 slot.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from trmgym.envs import tokens as T
from trmgym.envs.augment import content_extent

MIN_PANEL_PX = 256  # a panel's short side, at least (see cell_size)
MAX_PANEL_PX = 768  # a panel's long side, at most
MARGIN = 8  # pixels around the frame
GAP = 16  # pixels between panels
BAND = 24  # height of the status band and of the label band
FONT_PX = 16  # label and status text size

BACKGROUND_RGB = (255, 255, 255)
SLOT_RGB = (232, 232, 232)  # a panel's area outside its grid
TEXT_RGB = (30, 30, 30)
GRID_LINE_RGB = (90, 90, 90)
_PAD_RGB = (200, 200, 200)  # PAD cells: hatched light grey, far from ARC black
_PAD_HATCH_RGB = (160, 160, 160)
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


def cell_size(canvas: tuple[int, int]) -> int:
    """Pixels per canvas cell of an ``rgb_array`` panel (see the module docstring).

    ``min(ceil(MIN_PANEL_PX / min(H, W)), MAX_PANEL_PX // max(H, W))``, at least 1.
    """
    height, width = int(canvas[0]), int(canvas[1])
    if height < 1 or width < 1:
        raise ValueError(f"canvas must be (H, W) with H, W >= 1, got {tuple(canvas)}")
    return max(
        1, min(math.ceil(MIN_PANEL_PX / min(height, width)), MAX_PANEL_PX // max(height, width))
    )


def frame_shape(canvas: tuple[int, int], num_panels: int, status: bool) -> tuple[int, int, int]:
    """``(height, width, 3)`` of every :func:`rgb_panels` frame for this canvas and layout."""
    cell = cell_size(canvas)
    height = 2 * MARGIN + BAND * (2 if status else 1) + int(canvas[0]) * cell
    width = 2 * MARGIN + num_panels * int(canvas[1]) * cell + (num_panels - 1) * GAP
    return height, width, 3


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    # Pillow's bundled font (FreeType build, scalable); its bitmap font where FreeType is missing
    return ImageFont.load_default(size=max(1, size))


def _draw_centred(tile: np.ndarray, text: str, ink: tuple[int, int, int], scale: float) -> None:
    """Draw ``text`` centred on a square tile in place, ``scale`` times the tile's side tall."""
    side = tile.shape[0]
    image = Image.fromarray(tile)
    draw = ImageDraw.Draw(image)
    font = _font(round(side * scale))
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    draw.text(((side - right - left) / 2, (side - bottom - top) / 2), text, fill=ink, font=font)
    tile[:] = np.asarray(image)


@functools.lru_cache(maxsize=16)
def token_tiles(cell: int) -> np.ndarray:
    """``[VOCAB_SIZE, cell, cell, 3]`` uint8 image of every token, grid lines on two edges."""
    tiles = np.zeros((T.VOCAB_SIZE, cell, cell, 3), dtype=np.uint8)
    for token in range(T.VOCAB_SIZE):
        tiles[token] = _token_rgb(token)
    stripe = max(2, cell // 6)
    rows, cols = np.indices((cell, cell))
    tiles[T.PAD][((rows + cols) // stripe) % 2 == 1] = _PAD_HATCH_RGB
    if cell >= 8:  # smaller text is unreadable: digits then show as blank cells
        for digit in range(1, T.MAX_DIGIT + 1):
            _draw_centred(tiles[T.DIGIT_OFFSET + digit], str(digit), _DIGIT_INK, 0.7)
        _draw_centred(tiles[T.MAZE_START], "S", (255, 255, 255), 0.6)
        _draw_centred(tiles[T.MAZE_GOAL], "G", (255, 255, 255), 0.6)
    line = max(1, cell // 32)
    tiles[:, -line:, :] = GRID_LINE_RGB
    tiles[:, :, -line:] = GRID_LINE_RGB
    return tiles


def rgb_grid(grid: np.ndarray, cell: int) -> np.ndarray:
    """One ``[H, W]`` token grid as an ``[H*cell, W*cell, 3]`` uint8 image with a border."""
    grid = np.asarray(grid, dtype=np.int64)
    h, w = grid.shape
    image = token_tiles(cell)[np.clip(grid, 0, T.VOCAB_SIZE - 1)]  # [H, W, cell, cell, 3]
    image = image.transpose(0, 2, 1, 3, 4).reshape(h * cell, w * cell, 3)
    line = max(1, cell // 32)
    image[:line] = GRID_LINE_RGB  # the tiles draw the bottom and right lines
    image[:, :line] = GRID_LINE_RGB
    return image


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: int) -> str:
    """``text``, cut and ended with ``...`` where it is wider than ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def rgb_panels(
    panels: list[tuple[str, np.ndarray]],
    *,
    canvas: tuple[int, int] | None = None,
    status: str | None = None,
    scale_by: tuple[int, ...] | None = None,
) -> np.ndarray:
    """A labelled side-by-side ``[height, width, 3]`` uint8 frame of several grids.

    Args:
        panels: ``(label, grid)`` pairs; each grid is ``[H, W]`` tokens with at most ``canvas``
            rows and columns, content at the top-left.
        canvas: the ``(H, W)`` that fixes the frame size (:func:`frame_shape`); ``None``: the
            largest grid's shape.
        status: a line drawn above the panels (cut to fit); ``None`` leaves the band out.
        scale_by: indices of the panels whose content sets the shared scale (``None``: all);
            another panel is drawn at that scale where its content fits, else at its own.
    """
    grids = [np.asarray(grid, dtype=np.int64) for _, grid in panels]
    if canvas is None:
        canvas = (max(g.shape[0] for g in grids), max(g.shape[1] for g in grids))
    if any(g.shape[0] > canvas[0] or g.shape[1] > canvas[1] for g in grids):
        raise ValueError(
            f"every grid must fit canvas={tuple(canvas)}, got {[g.shape for g in grids]}"
        )
    slot_h, slot_w = canvas[0] * cell_size(canvas), canvas[1] * cell_size(canvas)
    extents = [tuple(int(e[0]) for e in content_extent(g)) for g in grids]
    fits = [min(slot_h // h, slot_w // w) if h and w else None for h, w in extents]
    chosen = range(len(panels)) if scale_by is None else scale_by
    shared = min((fits[i] for i in chosen if fits[i] is not None), default=None)
    frame = np.empty(frame_shape(canvas, len(panels), status is not None), np.uint8)
    frame[...] = np.array(BACKGROUND_RGB, np.uint8)  # np.full with an RGB tuple is slower
    top = MARGIN + BAND * (2 if status is not None else 1)
    for i, (grid, (h, w)) in enumerate(zip(grids, extents)):
        left = MARGIN + i * (slot_w + GAP)
        frame[top : top + slot_h, left : left + slot_w] = SLOT_RGB
        if h and w:
            scale = fits[i] if shared is None else min(shared, fits[i])
            y = top + (slot_h - h * scale) // 2
            x = left + (slot_w - w * scale) // 2
            frame[y : y + h * scale, x : x + w * scale] = rgb_grid(grid[:h, :w], scale)
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    font = _font(FONT_PX)
    text_y = MARGIN + (BAND - FONT_PX) // 2 - 2
    if status is not None:
        line = _fit(draw, status, font, frame.shape[1] - 2 * MARGIN)
        draw.text((MARGIN, text_y), line, fill=TEXT_RGB, font=font)
        text_y += BAND
    for i, (label, _) in enumerate(panels):
        left = MARGIN + i * (slot_w + GAP)
        draw.text((left, text_y), _fit(draw, label, font, slot_w), fill=TEXT_RGB, font=font)
    return np.array(image)  # np.asarray would be a read-only view


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
    """Side-by-side 24-bit-colour terminal rendering of several grids with titles.

    Like the RGB frames, each grid is cut to its top-left content (an ARC puzzle shows at its own
    size, not in the corner of the canvas); a panel is at least as wide as its title.
    """
    grids = []
    for _, grid in panels:
        grid = np.asarray(grid)
        h, w = (int(e[0]) for e in content_extent(grid))
        grids.append(grid[:h, :w])
    height = max(grid.shape[0] for grid in grids)
    reset = "\x1b[0m"
    widths = [max(2 * grid.shape[1], len(title)) for (title, _), grid in zip(panels, grids)]
    lines = ["   ".join(title.ljust(width) for (title, _), width in zip(panels, widths))]
    for r in range(height):
        row_parts = []
        for grid, width in zip(grids, widths):
            if r < grid.shape[0]:
                cells = "".join(_ansi_cell(int(t)) for t in grid[r]) + reset
                row_parts.append(cells + " " * (width - 2 * grid.shape[1]))
            else:
                row_parts.append(" " * width)
        lines.append("   ".join(row_parts))
    return "\n".join(lines) + "\n"
