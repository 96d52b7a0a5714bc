"""Rendering (trmgym.envs.render): frame sizes, labels, cropped ARC grids, colours, ANSI panels."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from trmgym.envs import ARCEnv, ARCGenEnv, ARCVectorEnv, MazeEnv, SudokuEnv
from trmgym.envs import tokens as T
from trmgym.envs.render import (
    BACKGROUND_RGB,
    BAND,
    GAP,
    MARGIN,
    SLOT_RGB,
    cell_size,
    frame_shape,
    rgb_panels,
    token_tiles,
)

CANVAS = (30, 30)
SLOT = CANVAS[0] * cell_size(CANVAS)  # 270 px


def colour_grid(colours: list[list[int]], canvas: tuple[int, int] = CANVAS) -> np.ndarray:
    """ARC colours at the top-left of a PAD canvas (``-1`` marks a PAD cell inside)."""
    colours = np.asarray(colours)
    grid = np.full(canvas, T.PAD, dtype=np.int64)
    grid[: colours.shape[0], : colours.shape[1]] = np.where(colours < 0, T.PAD, colours + 1)
    return grid


def slot_box(panel: int, canvas: tuple[int, int] = CANVAS) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of a panel's slot in a frame with a status band."""
    cell = cell_size(canvas)
    height, width = canvas[0] * cell, canvas[1] * cell
    return MARGIN + 2 * BAND, MARGIN + panel * (width + GAP), height, width


def drawn_box(
    frame: np.ndarray, panel: int, canvas: tuple[int, int] = CANVAS
) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of the pixels in a panel's slot that are not slot grey."""
    top, left, height, width = slot_box(panel, canvas)
    slot = frame[top : top + height, left : left + width]
    rows, cols = np.nonzero(np.any(slot != SLOT_RGB, axis=2))
    return (
        top + rows.min(),
        left + cols.min(),
        rows.max() - rows.min() + 1,
        cols.max() - cols.min() + 1,
    )


# ------------------------------------------------------------------------------------ sizes
@pytest.mark.parametrize(
    ("canvas", "cell"), [((4, 4), 64), ((9, 9), 29), ((11, 11), 24), ((30, 30), 9), ((4, 30), 25)]
)
def test_cell_size_rule(canvas: tuple[int, int], cell: int) -> None:
    assert cell_size(canvas) == cell
    short, long = sorted((canvas[0] * cell, canvas[1] * cell))
    assert long <= 768
    if max(canvas) <= 3 * min(canvas):  # not too elongated: the short side gets its 256 px
        assert 256 <= short < 256 + min(canvas)


def test_small_sudoku_frame_is_large_enough() -> None:
    env = SudokuEnv(size=4, blanks=8, render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert frame.shape == (320, 544, 3) == frame_shape((4, 4), 2, status=True)
    assert min(frame.shape[:2]) >= 256
    top, left, height, width = slot_box(0, (4, 4))
    assert height == width == 256
    slot = frame[top : top + height, left : left + width]
    assert not np.any(np.all(slot == SLOT_RGB, axis=2))  # the 4x4 grid fills its 256 px slot


def arc_tasks(folder: Path) -> Path:
    """Two ARC tasks whose test inputs are 3x5 and 7x2 (outputs: the colours shifted by one)."""

    def pair(rows: int, cols: int, seed: int) -> dict:
        grid = np.random.default_rng(seed).integers(0, 9, size=(rows, cols))
        return {"input": grid.tolist(), "output": (grid + 1).tolist()}

    for name, (rows, cols) in {"wide": (3, 5), "tall": (7, 2)}.items():
        task = {"train": [pair(rows, cols, 1), pair(2, 2, 2)], "test": [pair(rows, cols, 3)]}
        (folder / f"{name}.json").write_text(json.dumps(task))
    return folder


def rollout_frames(env: gym.Env, seeds: range, steps: int = 3) -> list[np.ndarray]:
    frames = []
    env.action_space.seed(0)
    for seed in seeds:
        env.reset(seed=seed)
        frames.append(env.render())
        for _ in range(steps):
            action = env.action_space.sample()
            if isinstance(action, dict):
                action["halt"] = 0
            env.step(action)
            frames.append(env.render())
    return frames


@pytest.mark.parametrize("expose_target", [False, True])
@pytest.mark.parametrize(
    ("env_cls", "kwargs"),
    [
        (SudokuEnv, {"size": 4, "blanks": 8}),
        (SudokuEnv, {"size": 9, "blanks": 30}),
        (MazeEnv, {"size": 7}),
        (ARCGenEnv, {"tasks_per_family": 2, "max_size": 8}),
        (ARCEnv, {}),  # tasks_path: the 3x5 and 7x2 tasks
    ],
)
def test_frame_shape_is_constant_per_env(
    env_cls: type, kwargs: dict, expose_target: bool, tmp_path: Path
) -> None:
    if env_cls is ARCEnv:
        kwargs = {"tasks_path": arc_tasks(tmp_path)}
    env = env_cls(render_mode="rgb_array", expose_target=expose_target, **kwargs)
    frames = rollout_frames(env, range(6))
    expected = frame_shape(env.canvas, 3 if expose_target else 2, status=True)
    assert {frame.shape for frame in frames} == {expected}
    assert all(frame.dtype == np.uint8 for frame in frames)
    if env_cls is ARCEnv:  # both puzzle sizes were drawn, on one frame size
        heights = {drawn_box(frame, 0)[2] for frame in frames}
        assert len(heights) == 2


def test_vector_frames_match_the_single_env(tmp_path: Path) -> None:
    folder = arc_tasks(tmp_path)
    vector = ARCVectorEnv(num_envs=2, tasks_path=folder, render_mode="rgb_array")
    vector.reset(seed=0, options={"task_id": 0})
    single = ARCEnv(tasks_path=folder, render_mode="rgb_array")
    single.reset(seed=0, options={"task_id": 0})
    frames = vector.render()
    assert len(frames) == 2
    assert frames[0].shape == frames[1].shape == single.render().shape
    # same puzzle in both rows (one task, one test pair): same grid drawn
    top, left, height, width = drawn_box(single.render(), 0)
    np.testing.assert_array_equal(
        frames[0][top : top + height, left : left + width],
        single.render()[top : top + height, left : left + width],
    )


# ---------------------------------------------------------------------------- ARC cropping
WIDE = [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [3, 3, 0, 3, 3]]  # 3 x 5


def test_arc_frame_shows_the_puzzle_at_its_own_aspect_centred() -> None:
    frame = rgb_panels([("input", colour_grid(WIDE))], canvas=CANVAS, status="s")
    top, left, height, width = drawn_box(frame, 0)
    assert width / height == pytest.approx(5 / 3, rel=0.02)
    assert (height, width) == (3 * 54, 5 * 54)  # scaled up: 54 px per cell fills the slot width
    slot_top, slot_left, _, _ = slot_box(0)
    assert top - slot_top == SLOT - (top - slot_top + height)  # centred vertically
    assert left == slot_left


def test_arc_env_frame_shows_the_cropped_puzzle(tmp_path: Path) -> None:
    env = ARCEnv(tasks_path=arc_tasks(tmp_path), render_mode="rgb_array", expose_target=True)
    for task_id, (rows, cols) in enumerate([(7, 2), (3, 5)]):  # task names sort: tall, wide
        obs, _ = env.reset(seed=0, options={"task_id": task_id})
        frame = env.render()
        _, _, height, width = drawn_box(frame, 0)
        assert width / height == pytest.approx(cols / rows, rel=0.02)
        assert max(height, width) > SLOT // 2  # scaled up, not a corner of the 30x30 canvas
        for panel in (1, 2):  # the answer and the target have the input's size here
            assert drawn_box(frame, panel)[2:] == (height, width)


def cell_pixels(
    frame: np.ndarray,
    panel: int,
    shape: tuple[int, int],
    row: int,
    col: int,
    canvas: tuple[int, int] = CANVAS,
) -> np.ndarray:
    """The pixels of cell ``(row, col)`` (less a 2 px rim) of a panel whose grid has ``shape``."""
    top, left, height, width = drawn_box(frame, panel, canvas)
    cell_h, cell_w = height // shape[0], width // shape[1]
    return frame[
        top + row * cell_h + 2 : top + (row + 1) * cell_h - 2,
        left + col * cell_w + 2 : left + (col + 1) * cell_w - 2,
    ]


@pytest.mark.parametrize(("row", "col"), [(0, 0), (0, 2), (1, 4), (2, 2)])
def test_arc_cells_have_their_palette_colour(row: int, col: int) -> None:
    frame = rgb_panels([("input", colour_grid(WIDE))], canvas=CANVAS, status="s")
    pixels = cell_pixels(frame, 0, (3, 5), row, col).reshape(-1, 3)
    expected = T.ARC_PALETTE[WIDE[row][col]]
    assert np.all(pixels == expected)


def test_pad_cells_are_not_black() -> None:
    grid = colour_grid([[0, -1, 0], [2, 2, 2]])  # a PAD cell between two black cells
    frame = rgb_panels([("answer", grid)], canvas=CANVAS, status="s")
    black = cell_pixels(frame, 0, (2, 3), 0, 0).reshape(-1, 3)
    pad = cell_pixels(frame, 0, (2, 3), 0, 1).reshape(-1, 3)
    assert np.all(black == 0)
    assert pad.min() >= 150  # light grey hatch: every pixel far from black
    assert len(np.unique(pad, axis=0)) == 2  # hatched, so also unlike any flat colour
    assert min(SLOT_RGB) >= 150  # the slot around the grid is not black either


def test_an_all_pad_panel_is_empty_and_sets_no_scale() -> None:
    empty = np.full(CANVAS, T.PAD, dtype=np.int64)
    frame = rgb_panels(
        [("input", colour_grid(WIDE)), ("answer", empty)], canvas=CANVAS, status=None
    )
    top, left = MARGIN + BAND, MARGIN + SLOT + GAP
    assert np.all(frame[top : top + SLOT, left : left + SLOT] == SLOT_RGB)
    assert frame.shape == frame_shape(CANVAS, 2, status=False)


def test_a_grid_larger_than_the_canvas_is_refused() -> None:
    with pytest.raises(ValueError, match=r"every grid must fit canvas=\(4, 4\)"):
        rgb_panels([("input", np.ones((5, 4), dtype=np.int64))], canvas=(4, 4))


# ----------------------------------------------------------------------- Sudoku and Maze cells
def test_sudoku_cells_show_their_digits() -> None:
    env = SudokuEnv(size=4, blanks=8, render_mode="rgb_array", expose_target=True)
    obs, info = env.reset(seed=0)
    frame = env.render()
    blank = np.argwhere(obs["grid"] == T.DIGIT_BLANK)[0]
    given = np.argwhere(obs["grid"] != T.DIGIT_BLANK)[0]
    blank_pixels = cell_pixels(frame, 0, (4, 4), *blank, (4, 4)).reshape(-1, 3)
    assert np.all(blank_pixels == (245, 245, 240))  # an empty cell: background only
    ink = np.all(cell_pixels(frame, 0, (4, 4), *given, (4, 4)) == (20, 40, 120), axis=2)
    assert 0.03 < ink.mean() < 0.5  # a digit drawn in ink on the cell
    # the target's cell at a blank holds a digit too, drawn like the same digit elsewhere
    digit = info["target"][tuple(blank)]
    same = np.argwhere(obs["grid"] == digit)
    if len(same):
        np.testing.assert_array_equal(
            cell_pixels(frame, 2, (4, 4), *blank, (4, 4)),
            cell_pixels(frame, 0, (4, 4), *same[0], (4, 4)),
        )


def test_maze_tokens_stay_distinguishable() -> None:
    tiles = token_tiles(cell_size((11, 11)))
    maze = [T.MAZE_OPEN, T.MAZE_WALL, T.MAZE_START, T.MAZE_GOAL, T.MAZE_PATH]
    corners = {tuple(tiles[token, 2, 2]) for token in maze}  # off the S / G letters
    assert len(corners) == len(maze)
    env = MazeEnv(size=11, render_mode="rgb_array", expose_target=True)
    obs, info = env.reset(seed=0)
    frame = env.render()
    for token, panel, grid in [
        (T.MAZE_WALL, 0, obs["grid"]),
        (T.MAZE_START, 0, obs["grid"]),
        (T.MAZE_PATH, 2, info["target"]),
    ]:
        row, col = np.argwhere(grid == token)[0]
        corner = cell_pixels(frame, panel, (11, 11), row, col, (11, 11))[0, 0]
        np.testing.assert_array_equal(corner, tiles[token, 2, 2])
    start_pixels = cell_pixels(
        frame, 0, (11, 11), *np.argwhere(obs["grid"] == T.MAZE_START)[0], (11, 11)
    )
    assert np.any(np.all(start_pixels == 255, axis=2))  # the white "S"


# --------------------------------------------------------------------------------- labels
def test_label_and_status_bands_hold_text() -> None:
    env = ARCGenEnv(tasks_per_family=2, render_mode="rgb_array", expose_target=True)
    env.reset(seed=0)
    frame = env.render()
    status_band = frame[MARGIN : MARGIN + BAND]
    assert np.any(np.all(status_band < 100, axis=2))  # dark text on the white band
    slot_w = env.canvas[1] * cell_size(env.canvas)
    labels = []
    for panel in range(3):
        left = MARGIN + panel * (slot_w + GAP)
        band = frame[MARGIN + BAND : MARGIN + 2 * BAND, left : left + slot_w]
        assert np.any(np.any(band != BACKGROUND_RGB, axis=2))
        labels.append(band)
    # "input", "answer" and "target" are different words
    assert not np.array_equal(labels[0], labels[1]) and not np.array_equal(labels[1], labels[2])


def test_status_line_follows_the_step() -> None:
    env = SudokuEnv(size=4, blanks=8, render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    before = env.render()
    env.step({"answer": obs["answer"], "halt": 0})
    after = env.render()
    status = slice(MARGIN, MARGIN + BAND)
    assert not np.array_equal(before[status], after[status])  # "step 0" -> "step 1"
    np.testing.assert_array_equal(before[MARGIN + BAND :], after[MARGIN + BAND :])


# ----------------------------------------------------------------------------------- ANSI
def test_ansi_arc_panels_are_cropped_to_the_puzzle(tmp_path: Path) -> None:
    env = ARCEnv(tasks_path=arc_tasks(tmp_path), render_mode="ansi")
    env.reset(seed=0, options={"task_id": 1})  # the 3x5 task
    lines = env.render().splitlines()
    assert len(lines) == 1 + 1 + 3 + 1  # title, panel titles, 3 rows, accuracy line
    assert lines[1].split() == ["puzzle", "answer"]
    assert lines[2].count("\x1b[48;2;") == 2 * 5  # 5 cells per row in each panel
