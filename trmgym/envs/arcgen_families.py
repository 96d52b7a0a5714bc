"""The task families of ``trmgym/ARCGen-v0``: small ARC-style programs and their input samplers.

A *family* is a parameterised program on ARC colour grids (colours ``0..9``). A *program* is one
setting of its parameters, numbered ``0..num_programs-1``; a *task* is a program plus an *input
style* (a palette of three colours and a density) that shapes the inputs it is shown. Every family
provides three views of the same program:

- :meth:`TaskFamily.apply` — the reference: one ``h x w`` grid in, one grid out, written for
  clarity (tests check the batched code against it);
- :meth:`TaskFamily.sample_inputs` — draws a batch of input grids for a batch of tasks;
- :meth:`TaskFamily.transform` — the batched program over ``[N, M, M]`` buffers.

Batched buffers hold one grid per row at the top-left, with :data:`OUTSIDE` (``-1``) in the cells
beyond it; per-row parameters are arrays of length ``N`` (see :meth:`TaskFamily.stack`), so one
call handles many different tasks of a family without a Python loop over rows or cells.

======================  ==============================================================  ========
family                  program parameters                                              programs
======================  ==============================================================  ========
``colour_map``          ``mapping``: a permutation of the 10 colours (never identity)   10!-1
``flip``                ``axis``: left_right, up_down, transpose, anti_transpose        4
``rotate``              ``k``: quarter turns counter-clockwise (1, 2, 3), as np.rot90   3
``translate``           ``dy, dx`` in -3..3 (not both 0), ``mode``: wrap (cyclic) or    96
                        crop (cells pushed out are lost, vacated cells become black 0)
``gravity``             ``direction`` (down/up/left/right), ``background``: every       40
                        other colour slides that way until blocked
``fill_enclosed``       ``background``, ``fill``: background cells not 4-connected to   90
                        the grid border (holes of closed shapes) become ``fill``
``count_to_bar``        ``color`` (1..9), ``bar_color``, ``orientation``: the output    180
                        is a 1 x n (horizontal) or n x 1 bar, n = cells of ``color``
``scale_up``            ``factor_y, factor_x`` in 1..3 (not both 1): each cell becomes  8
                        a factor_y x factor_x block
``denoise``             ``background``, ``noise``: cells of colour ``noise`` with no    90
                        4-neighbour of that colour become ``background``
======================  ==============================================================  ========
"""

from __future__ import annotations

import abc
import math
from collections import deque
from typing import Any, ClassVar

import numpy as np

from trmgym.envs.tokens import NUM_COLORS

OUTSIDE = -1  # colour of the cells beyond a grid in the batched [N, M, M] buffers
PALETTE_SIZE = 3  # foreground colours per task style
Params = dict[str, Any]  # one task: program parameters + input style
Batch = dict[str, np.ndarray]  # per-row parameter arrays of a batch of tasks


# ----------------------------------------------------------------------------- batched helpers
def _coords(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices shaped ``[1, M, 1]`` and ``[1, 1, M]`` for broadcasting."""
    index = np.arange(size)
    return index[None, :, None], index[None, None, :]


def _col(values: np.ndarray) -> np.ndarray:
    """Per-row values shaped ``[N, 1, 1]``."""
    return np.asarray(values)[:, None, None]


def valid_mask(heights: np.ndarray, widths: np.ndarray, size: int) -> np.ndarray:
    """``[N, M, M]`` bool: the cells inside each row's ``h x w`` grid."""
    rows, cols = _coords(size)
    return (rows < _col(heights)) & (cols < _col(widths))


def _gather(grids: np.ndarray, rows: np.ndarray, cols: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``out[i, r, c] = grids[i, rows[i, r, c], cols[i, r, c]]`` where ``valid``, else OUTSIDE."""
    size = grids.shape[1]
    batch = np.arange(grids.shape[0])[:, None, None]
    picked = grids[batch, np.clip(rows, 0, size - 1), np.clip(cols, 0, size - 1)]
    return np.where(valid, picked, OUTSIDE)


def _neighbours(mask: np.ndarray) -> np.ndarray:
    """``[N, M, M]`` bool: cells with at least one 4-neighbour set in ``mask``."""
    out = np.zeros_like(mask)
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    out[:, :, 1:] |= mask[:, :, :-1]
    out[:, :, :-1] |= mask[:, :, 1:]
    return out


def _palette_colors(rng: np.random.Generator, palette: np.ndarray, size: int) -> np.ndarray:
    """``[N, M, M]`` colours drawn uniformly from each row's palette (``[N, P]``)."""
    pick = rng.integers(0, palette.shape[1], size=(palette.shape[0], size, size))
    return np.take_along_axis(palette, pick.reshape(len(palette), -1), axis=1).reshape(pick.shape)


def _scatter(
    rng: np.random.Generator, batch: Batch, background: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """Random grids: each cell a palette colour with the row's density, else the background."""
    size = valid.shape[1]
    colors = _palette_colors(rng, batch["palette"], size)
    filled = rng.random(valid.shape) < _col(batch["density"])
    return np.where(valid, np.where(filled, colors, _col(background)), OUTSIDE)


def _rectangles(
    rng: np.random.Generator, heights: np.ndarray, widths: np.ndarray, min_side: int, max_side: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One random axis-aligned rectangle per row inside its grid: ``(top, left, height, width)``."""
    rect_h = rng.integers(np.minimum(min_side, heights), np.minimum(max_side, heights) + 1)
    rect_w = rng.integers(np.minimum(min_side, widths), np.minimum(max_side, widths) + 1)
    top = rng.integers(0, heights - rect_h + 1)
    left = rng.integers(0, widths - rect_w + 1)
    return top, left, rect_h, rect_w


def _rectangle_masks(
    top: np.ndarray, left: np.ndarray, rect_h: np.ndarray, rect_w: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """``[N, M, M]`` masks of each row's rectangle: its cells and its outline."""
    rows, cols = _coords(size)
    top, left, bottom, right = (
        _col(top),
        _col(left),
        _col(top + rect_h - 1),
        _col(left + rect_w - 1),
    )
    inside = (rows >= top) & (rows <= bottom) & (cols >= left) & (cols <= right)
    outline = inside & ((rows == top) | (rows == bottom) | (cols == left) | (cols == right))
    return inside, outline


# ----------------------------------------------------------------------------------- families
class TaskFamily(abc.ABC):
    """A parameterised grid program (subclasses define one family).

    Subclasses set :attr:`name`, :attr:`num_programs`, and implement :meth:`program`,
    :meth:`sample_inputs`, :meth:`transform` and :meth:`apply`.
    """

    name: ClassVar[str]
    #: number of distinct programs; :meth:`program` decodes ``0..num_programs-1``.
    num_programs: ClassVar[int]
    #: range of the input style's ``density``.
    density_range: ClassVar[tuple[float, float]] = (0.2, 0.6)

    @abc.abstractmethod
    def program(self, index: int) -> Params:
        """The parameters of program ``index`` (``0 <= index < num_programs``)."""

    #: program parameters holding colours the input palette must avoid (background, fill...).
    reserved_keys: ClassVar[tuple[str, ...]] = ()
    #: whether the palette must also avoid black (0), the background of the default inputs.
    reserve_black: ClassVar[bool] = True

    def draw_styles(self, rng: np.random.Generator, programs: Batch) -> Batch:
        """Input styles of a sequence of tasks: ``palette`` (``[T, 3]``) and ``density`` (``[T]``).

        Every task uses one row of ``NUM_COLORS + 1`` uniform draws, so task ``i``'s style does
        not depend on how many tasks follow it.
        """
        count = len(next(iter(programs.values())))
        draws = rng.random((count, NUM_COLORS + 1))
        keys = draws[:, :NUM_COLORS].copy()
        if self.reserve_black:
            keys[:, 0] = 2.0
        for key in self.reserved_keys:
            keys[np.arange(count), programs[key]] = 2.0
        low, high = self.density_range
        return {
            "palette": np.argsort(keys, axis=1, kind="stable")[:, :PALETTE_SIZE],
            "density": np.round(low + (high - low) * draws[:, NUM_COLORS], 2),
        }

    def identity_tasks(self, batch: Batch, min_size: int, max_size: int) -> np.ndarray:
        """``[T]`` bool: tasks whose output equals the input on every input of the given sizes.

        Such a task cannot pose a puzzle; the source refuses it at construction. Default: none.
        """
        return np.zeros(len(next(iter(batch.values()))), dtype=bool)

    def stack(self, tasks: list[Params]) -> Batch:
        """Per-task parameter arrays (first axis: task) for batched sampling and transforms."""
        return {key: np.asarray([task[key] for task in tasks]) for key in tasks[0]}

    def max_input_shape(self, batch: Batch, max_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Largest input ``(heights, widths)`` per row whose output still fits ``max_size``."""
        rows = len(next(iter(batch.values())))
        full = np.full(rows, max_size, dtype=np.int64)
        return full, full.copy()

    def sample_inputs(
        self,
        rng: np.random.Generator,
        batch: Batch,
        heights: np.ndarray,
        widths: np.ndarray,
        size: int,
    ) -> np.ndarray:
        """``[N, size, size]`` input grids (OUTSIDE beyond each ``h x w``); default: scattered."""
        return _scatter(
            rng, batch, np.zeros(len(heights), dtype=np.int64), valid_mask(heights, widths, size)
        )

    @abc.abstractmethod
    def transform(
        self, batch: Batch, grids: np.ndarray, heights: np.ndarray, widths: np.ndarray
    ) -> np.ndarray:
        """The program on a batch: ``[N, M, M]`` inputs -> ``[N, M, M]`` outputs (OUTSIDE-padded)."""

    @abc.abstractmethod
    def apply(self, params: Params, grid: np.ndarray) -> np.ndarray:
        """Reference: the program on one ``h x w`` colour grid; returns the output grid."""


class ColourMap(TaskFamily):
    """Recolour every cell through a fixed permutation of the 10 colours."""

    name = "colour_map"
    num_programs = math.factorial(NUM_COLORS) - 1

    def program(self, index: int) -> Params:
        # Lehmer code of index + 1: code 0 would be the identity permutation.
        code, remaining, mapping = index + 1, list(range(NUM_COLORS)), []
        for place in range(NUM_COLORS - 1, -1, -1):
            digit, code = divmod(code, math.factorial(place))
            mapping.append(remaining.pop(digit))
        return {"mapping": tuple(mapping)}

    def draw_styles(self, rng, programs):
        styles = super().draw_styles(rng, programs)
        # A permutation that fixes black and all three palette colours maps every input to
        # itself; swap the last palette colour for the first colour the permutation moves
        # (one exists: the permutation is never the identity, and black is fixed).
        mapping, palette = programs["mapping"], styles["palette"]
        moved = mapping != np.arange(NUM_COLORS)
        rows = np.arange(len(mapping))[:, None]
        stuck = ~moved[:, 0] & ~moved[rows, palette].any(axis=1)
        palette[stuck, -1] = moved[stuck].argmax(axis=1)
        return styles

    def transform(self, batch, grids, heights, widths):
        flat = np.clip(grids, 0, None).reshape(len(grids), -1)
        mapped = np.take_along_axis(batch["mapping"], flat, axis=1).reshape(grids.shape)
        return np.where(grids == OUTSIDE, OUTSIDE, mapped)

    def apply(self, params, grid):
        return np.asarray(params["mapping"])[grid]


class Flip(TaskFamily):
    """Mirror the grid about a fixed axis (the two diagonals swap height and width)."""

    name = "flip"
    AXES = ("left_right", "up_down", "transpose", "anti_transpose")
    num_programs = len(AXES)

    def program(self, index: int) -> Params:
        return {"axis": self.AXES[index]}

    def transform(self, batch, grids, heights, widths):
        rows, cols = _coords(grids.shape[1])
        h, w, axis = _col(heights), _col(widths), _col(batch["axis"])
        left_right, up_down, transpose = (
            axis == "left_right",
            axis == "up_down",
            axis == "transpose",
        )
        diagonal = transpose | (axis == "anti_transpose")
        src_r = np.where(
            left_right,
            rows,
            np.where(up_down, h - 1 - rows, np.where(transpose, cols, h - 1 - cols)),
        )
        src_c = np.where(
            left_right,
            w - 1 - cols,
            np.where(up_down, cols, np.where(transpose, rows, w - 1 - rows)),
        )
        valid = (rows < np.where(diagonal, w, h)) & (cols < np.where(diagonal, h, w))
        return _gather(grids, src_r, src_c, valid)

    def apply(self, params, grid):
        axis = params["axis"]
        if axis == "left_right":
            return np.fliplr(grid)
        if axis == "up_down":
            return np.flipud(grid)
        if axis == "transpose":
            return grid.T
        return np.rot90(grid, 2).T


class Rotate(TaskFamily):
    """Rotate the grid by ``k`` quarter turns counter-clockwise."""

    name = "rotate"
    num_programs = 3

    def program(self, index: int) -> Params:
        return {"k": index + 1}

    def transform(self, batch, grids, heights, widths):
        rows, cols = _coords(grids.shape[1])
        h, w, k = _col(heights), _col(widths), _col(batch["k"])
        src_r = np.where(k == 1, cols, np.where(k == 2, h - 1 - rows, h - 1 - cols))
        src_c = np.where(k == 1, w - 1 - rows, np.where(k == 2, w - 1 - cols, rows))
        odd = k % 2 == 1
        valid = (rows < np.where(odd, w, h)) & (cols < np.where(odd, h, w))
        return _gather(grids, src_r, src_c, valid)

    def apply(self, params, grid):
        return np.rot90(grid, params["k"])


class Translate(TaskFamily):
    """Shift the content by ``(dy, dx)``: cyclically (wrap) or losing what leaves (crop)."""

    name = "translate"
    SHIFTS = tuple((dy, dx) for dy in range(-3, 4) for dx in range(-3, 4) if (dy, dx) != (0, 0))
    MODES = ("wrap", "crop")
    num_programs = len(SHIFTS) * len(MODES)

    def program(self, index: int) -> Params:
        shift, mode = divmod(index, len(self.MODES))
        dy, dx = self.SHIFTS[shift]
        return {"dy": dy, "dx": dx, "mode": self.MODES[mode]}

    def identity_tasks(self, batch, min_size, max_size):
        # a cyclic shift by a multiple of the side is the identity; every side in
        # min_size..max_size divides a shift of at most 3 only when that range is one side
        def still(shift: np.ndarray) -> np.ndarray:
            return (shift == 0) | ((min_size == max_size) & (shift % min_size == 0))

        return (batch["mode"] == "wrap") & still(batch["dy"]) & still(batch["dx"])

    def transform(self, batch, grids, heights, widths):
        rows, cols = _coords(grids.shape[1])
        h, w = _col(heights), _col(widths)
        src_r, src_c = rows - _col(batch["dy"]), cols - _col(batch["dx"])
        wrap = _col(batch["mode"]) == "wrap"
        src_r, src_c = np.where(wrap, src_r % h, src_r), np.where(wrap, src_c % w, src_c)
        valid = (rows < h) & (cols < w)
        inside = (src_r >= 0) & (src_r < h) & (src_c >= 0) & (src_c < w)
        return np.where(valid & ~inside, 0, _gather(grids, src_r, src_c, valid & inside))

    def apply(self, params, grid):
        dy, dx = params["dy"], params["dx"]
        if params["mode"] == "wrap":
            return np.roll(grid, (dy, dx), axis=(0, 1))
        h, w = grid.shape
        out = np.zeros_like(grid)
        dst_r, src_r = slice(max(dy, 0), h + min(dy, 0)), slice(max(-dy, 0), h - max(dy, 0))
        dst_c, src_c = slice(max(dx, 0), w + min(dx, 0)), slice(max(-dx, 0), w - max(dx, 0))
        out[dst_r, dst_c] = grid[src_r, src_c]
        return out


class Gravity(TaskFamily):
    """Every non-background cell slides in a fixed direction until blocked (order kept)."""

    name = "gravity"
    DIRECTIONS = ("down", "up", "left", "right")
    num_programs = len(DIRECTIONS) * NUM_COLORS

    def program(self, index: int) -> Params:
        direction, background = divmod(index, NUM_COLORS)
        return {"direction": self.DIRECTIONS[direction], "background": background}

    reserved_keys = ("background",)
    reserve_black = False

    def sample_inputs(self, rng, batch, heights, widths, size):
        return _scatter(rng, batch, batch["background"], valid_mask(heights, widths, size))

    def transform(self, batch, grids, heights, widths):
        direction = _col(batch["direction"])
        solid = (grids != _col(batch["background"])) & (grids != OUTSIDE)
        towards_end = (direction == "down") | (direction == "right")
        # A stable sort by (0: first, 1: second, 2: outside) moves the solid cells to one end of
        # each line while keeping their order, and keeps the outside cells past the grid's end.
        key = np.where(grids == OUTSIDE, 2, np.where(solid == towards_end, 1, 0))
        vertical = np.take_along_axis(grids, np.argsort(key, axis=1, kind="stable"), axis=1)
        horizontal = np.take_along_axis(grids, np.argsort(key, axis=2, kind="stable"), axis=2)
        return np.where((direction == "down") | (direction == "up"), vertical, horizontal)

    def apply(self, params, grid):
        background, direction = params["background"], params["direction"]

        def fall_down(g: np.ndarray) -> np.ndarray:
            out = np.full_like(g, background)
            for j in range(g.shape[1]):
                solid = g[:, j][g[:, j] != background]
                out[g.shape[0] - len(solid) :, j] = solid
            return out

        if direction == "down":
            return fall_down(grid)
        if direction == "up":
            return np.flipud(fall_down(np.flipud(grid)))
        if direction == "right":
            return fall_down(grid.T).T
        return np.fliplr(fall_down(np.fliplr(grid).T).T)


class FillEnclosed(TaskFamily):
    """Paint the holes of closed shapes: background cells cut off from the border."""

    name = "fill_enclosed"
    num_programs = NUM_COLORS * (NUM_COLORS - 1)
    RECTANGLES = 3  # outlines drawn per input (the first always, the others with probability 0.6)
    GAP_PROBABILITY = 0.35  # chance that an outline is left open by one missing cell

    def program(self, index: int) -> Params:
        background, offset = divmod(index, NUM_COLORS - 1)
        return {"background": background, "fill": (background + 1 + offset) % NUM_COLORS}

    reserved_keys = ("background", "fill")
    reserve_black = False

    def sample_inputs(self, rng, batch, heights, widths, size):
        n = len(heights)
        valid = valid_mask(heights, widths, size)
        grids = np.where(valid, _col(batch["background"]), OUTSIDE)
        rows, cols = _coords(size)
        for slot in range(self.RECTANGLES):
            top, left, rect_h, rect_w = _rectangles(rng, heights, widths, 3, size)
            _, outline = _rectangle_masks(top, left, rect_h, rect_w, size)
            # the gap: one non-corner outline cell on a random side
            side = rng.integers(0, 4, size=n)
            along_r = top + 1 + rng.integers(0, np.maximum(rect_h - 2, 1))
            along_c = left + 1 + rng.integers(0, np.maximum(rect_w - 2, 1))
            gap_r = np.select([side == 0, side == 1], [top, top + rect_h - 1], along_r)
            gap_c = np.select([side == 2, side == 3], [left, left + rect_w - 1], along_c)
            open_ = rng.random(n) < self.GAP_PROBABILITY
            outline &= ~(_col(open_) & (rows == _col(gap_r)) & (cols == _col(gap_c)))
            drawn = (rng.random(n) < 0.6) | (slot == 0)
            color = batch["palette"][np.arange(n), rng.integers(0, PALETTE_SIZE, size=n)]
            grids = np.where(outline & _col(drawn), _col(color), grids)
        return grids

    def transform(self, batch, grids, heights, widths):
        empty = grids == _col(batch["background"])
        # Flood from a frame around the buffer through background and outside cells.
        passable = np.pad(
            empty | (grids == OUTSIDE), ((0, 0), (1, 1), (1, 1)), constant_values=True
        )
        reached = np.zeros_like(passable)
        reached[:, [0, -1], :] = True
        reached[:, :, [0, -1]] = True
        while True:
            grown = (reached | _neighbours(reached)) & passable
            if np.array_equal(grown, reached):
                break
            reached = grown
        holes = empty & ~reached[:, 1:-1, 1:-1]
        return np.where(holes, _col(batch["fill"]), grids)

    def apply(self, params, grid):
        h, w = grid.shape
        empty = grid == params["background"]
        outside = np.zeros_like(empty)
        queue = deque(
            (r, c)
            for r in range(h)
            for c in range(w)
            if (r in (0, h - 1) or c in (0, w - 1)) and empty[r, c]
        )
        for r, c in queue:
            outside[r, c] = True
        while queue:
            r, c = queue.popleft()
            for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                if 0 <= nr < h and 0 <= nc < w and empty[nr, nc] and not outside[nr, nc]:
                    outside[nr, nc] = True
                    queue.append((nr, nc))
        return np.where(empty & ~outside, params["fill"], grid)


class CountToBar(TaskFamily):
    """Count the cells of one colour; answer with a bar of that many cells."""

    name = "count_to_bar"
    ORIENTATIONS = ("horizontal", "vertical")
    num_programs = (NUM_COLORS - 1) * NUM_COLORS * len(ORIENTATIONS)
    density_range = (0.1, 0.4)

    def program(self, index: int) -> Params:
        rest, orientation = divmod(index, len(self.ORIENTATIONS))
        color, bar_color = divmod(rest, NUM_COLORS)
        return {
            "color": color + 1,
            "bar_color": bar_color,
            "orientation": self.ORIENTATIONS[orientation],
        }

    reserved_keys = ("color",)

    def sample_inputs(self, rng, batch, heights, widths, size):
        n = len(heights)
        valid = valid_mask(heights, widths, size)
        grids = _scatter(rng, batch, np.zeros(n, dtype=np.int64), valid)
        # Exactly `count` cells of the counted colour, at the lowest random scores inside the grid.
        count = rng.integers(1, np.minimum(size, heights * widths // 2) + 1)
        scores = np.where(valid, rng.random(valid.shape), 2.0).reshape(n, -1)
        rank = np.empty_like(scores, dtype=np.int64)
        np.put_along_axis(
            rank, np.argsort(scores, axis=1), np.arange(scores.shape[1])[None], axis=1
        )
        counted = rank.reshape(valid.shape) < _col(count)
        return np.where(counted, _col(batch["color"]), grids)

    def transform(self, batch, grids, heights, widths):
        rows, cols = _coords(grids.shape[1])
        count = _col((grids == _col(batch["color"])).sum(axis=(1, 2)))
        horizontal = _col(batch["orientation"]) == "horizontal"
        bar = np.where(horizontal, (rows == 0) & (cols < count), (cols == 0) & (rows < count))
        return np.where(bar, _col(batch["bar_color"]), OUTSIDE)

    def apply(self, params, grid):
        count = int((grid == params["color"]).sum())
        shape = (1, count) if params["orientation"] == "horizontal" else (count, 1)
        return np.full(shape, params["bar_color"], dtype=grid.dtype)


class ScaleUp(TaskFamily):
    """Blow every cell up into a ``factor_y x factor_x`` block."""

    name = "scale_up"
    FACTORS = tuple((fy, fx) for fy in (1, 2, 3) for fx in (1, 2, 3) if (fy, fx) != (1, 1))
    num_programs = len(FACTORS)

    def program(self, index: int) -> Params:
        factor_y, factor_x = self.FACTORS[index]
        return {"factor_y": factor_y, "factor_x": factor_x}

    def max_input_shape(self, batch, max_size):
        return max_size // batch["factor_y"], max_size // batch["factor_x"]

    def transform(self, batch, grids, heights, widths):
        rows, cols = _coords(grids.shape[1])
        fy, fx = _col(batch["factor_y"]), _col(batch["factor_x"])
        valid = (rows < _col(heights) * fy) & (cols < _col(widths) * fx)
        return _gather(grids, rows // fy, cols // fx, valid)

    def apply(self, params, grid):
        return np.repeat(np.repeat(grid, params["factor_y"], axis=0), params["factor_x"], axis=1)


class Denoise(TaskFamily):
    """Erase isolated pixels of the noise colour (no 4-neighbour of the same colour)."""

    name = "denoise"
    num_programs = NUM_COLORS * (NUM_COLORS - 1)
    density_range = (0.05, 0.15)  # noise pixels per background cell
    RECTANGLES = 3  # solid blocks (>= 2 x 2) per input; some in the noise colour, which stay

    def program(self, index: int) -> Params:
        background, offset = divmod(index, NUM_COLORS - 1)
        return {"background": background, "noise": (background + 1 + offset) % NUM_COLORS}

    reserved_keys = ("background", "noise")
    reserve_black = False

    def sample_inputs(self, rng, batch, heights, widths, size):
        n = len(heights)
        valid = valid_mask(heights, widths, size)
        grids = np.where(valid, _col(batch["background"]), OUTSIDE)
        block_colors = np.concatenate([batch["palette"], batch["noise"][:, None]], axis=1)
        for _ in range(self.RECTANGLES):
            top, left, rect_h, rect_w = _rectangles(rng, heights, widths, 2, 4)
            inside, _ = _rectangle_masks(top, left, rect_h, rect_w, size)
            color = block_colors[np.arange(n), rng.integers(0, block_colors.shape[1], size=n)]
            grids = np.where(inside, _col(color), grids)
        noisy = (grids == _col(batch["background"])) & (
            rng.random(valid.shape) < _col(batch["density"])
        )
        return np.where(noisy, _col(batch["noise"]), grids)

    def transform(self, batch, grids, heights, widths):
        noise = grids == _col(batch["noise"])
        isolated = noise & ~_neighbours(noise)
        return np.where(isolated, _col(batch["background"]), grids)

    def apply(self, params, grid):
        noise = np.pad(grid == params["noise"], 1)
        lonely = noise[1:-1, 1:-1] & ~(
            noise[:-2, 1:-1] | noise[2:, 1:-1] | noise[1:-1, :-2] | noise[1:-1, 2:]
        )
        return np.where(lonely, params["background"], grid)


FAMILIES: dict[str, TaskFamily] = {
    family.name: family
    for family in (
        ColourMap(),
        Flip(),
        Rotate(),
        Translate(),
        Gravity(),
        FillEnclosed(),
        CountToBar(),
        ScaleUp(),
        Denoise(),
    )
}
FAMILY_NAMES: tuple[str, ...] = tuple(FAMILIES)
