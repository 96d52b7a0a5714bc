"""Edit-mode ``action_masks()``: the solution is never masked, and the family's rules hold."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import trmgym  # noqa: F401  (registers the env ids)
from tests.envs.toy import ToyEnv
from trmgym.envs.augment import content_extent
from trmgym.envs.sudoku import SudokuEnv
from trmgym.envs.tokens import (
    COLOR_OFFSET,
    DIGIT_BLANK,
    DIGIT_OFFSET,
    MAZE_OPEN,
    MAZE_PATH,
    NUM_COLORS,
    PAD,
    VOCAB_SIZE,
)

# families and settings whose draws differ in kind (sizes, braids, augmentations, pairs)
CASES = {
    "sudoku4": ("trmgym/Sudoku-v0", {"size": 4, "blanks": 10}),
    "sudoku9": ("trmgym/Sudoku-v0", {"size": 9}),
    "sudoku4-on-canvas": ("trmgym/Sudoku-v0", {"size": 4, "canvas": (6, 7)}),
    "maze": ("trmgym/Maze-v0", {"size": 9}),
    "maze-braided": ("trmgym/Maze-v0", {"size": 9, "braid": 1.0}),
    "arc-test": ("trmgym/ARC-v0", {"augment": True}),
    "arc-demos": ("trmgym/ARC-v0", {"pairs": "demos", "augment": True}),
    "arcgen": ("trmgym/ARCGen-v0", {"tasks_per_family": 20}),
}


def solution_actions(grid: np.ndarray, target: np.ndarray) -> list[np.ndarray]:
    """Per row, the edit actions that turn ``grid`` into ``target`` (``[B, H, W]`` each)."""
    width = grid.shape[2]
    actions = []
    for row in range(len(grid)):
        cells = np.argwhere(grid[row] != target[row])
        tokens = target[row][tuple(cells.T)]
        actions.append((cells[:, 0] * width + cells[:, 1]) * VOCAB_SIZE + tokens)
    return actions


@pytest.mark.parametrize("case", sorted(CASES))
def test_masks_never_mask_the_solution(case: str) -> None:
    env_id, kwargs = CASES[case]
    env = gym.make_vec(env_id, num_envs=64, action_mode="edit", expose_target=True, **kwargs)
    checked = 0
    for seed in range(8):
        obs, info = env.reset(seed=seed)
        masks = env.action_masks()
        assert masks.shape == (64, env.single_action_space.n) and masks.dtype == bool
        assert masks[:, -1].all()  # halt is always valid
        for row, actions in enumerate(solution_actions(obs["grid"], info["target"])):
            assert actions.size and masks[row, actions].all()
            checked += actions.size
    assert checked > 64 * 8


def test_sudoku_mask_allows_digits_on_blanks_only() -> None:
    env = SudokuEnv(size=6, blanks=12, action_mode="edit")
    obs, _ = env.reset(seed=0)
    mask = env.action_masks()
    assert mask.shape == (env.action_space.n,) and mask[-1]
    cells = mask[:-1].reshape(6, 6, VOCAB_SIZE)
    blank = obs["grid"] == DIGIT_BLANK
    assert blank.sum() == 12
    assert not cells[~blank].any()  # givens: nothing
    digits = np.zeros(VOCAB_SIZE, dtype=bool)
    digits[DIGIT_OFFSET + 1 : DIGIT_OFFSET + 7] = True
    assert (cells[blank] == digits).all()  # blanks: exactly the digits 1..6
    # the mask is the puzzle's: it stays after a write
    env.step(int(np.flatnonzero(mask)[0]))
    np.testing.assert_array_equal(env.action_masks(), mask)


def test_sudoku_canvas_padding_is_masked() -> None:
    env = SudokuEnv(size=4, canvas=(6, 7), action_mode="edit")
    env.reset(seed=0)
    cells = env.action_masks()[:-1].reshape(6, 7, VOCAB_SIZE)
    assert not cells[4:].any() and not cells[:, 4:].any() and cells[:4, :4].any()


def test_maze_mask_allows_open_and_path_on_open_cells() -> None:
    env = gym.make("trmgym/Maze-v0", size=9, action_mode="edit")
    obs, _ = env.reset(seed=0)
    cells = env.unwrapped.action_masks()[:-1].reshape(9, 9, VOCAB_SIZE)
    open_cells = obs["grid"] == MAZE_OPEN
    assert not cells[~open_cells].any()  # walls, start, goal
    tokens = np.flatnonzero(cells[open_cells].any(axis=0)).tolist()
    assert tokens == [MAZE_OPEN, MAZE_PATH] and cells[open_cells][:, tokens].all()


def test_arc_mask_is_colours_inside_the_output_and_pad_to_erase() -> None:
    env = gym.make_vec(
        "trmgym/ARC-v0", num_envs=32, action_mode="edit", expose_target=True, augment=True
    )
    obs, info = env.reset(seed=0)
    cells = env.action_masks()[:, :-1].reshape(32, 30, 30, VOCAB_SIZE)
    heights, widths = content_extent(info["target"])
    colours = np.zeros(VOCAB_SIZE, dtype=bool)
    colours[COLOR_OFFSET : COLOR_OFFSET + NUM_COLORS] = True
    smaller = 0
    for row in range(32):
        h, w = heights[row], widths[row]
        assert (cells[row, :h, :w] == colours).all()
        outside = np.ones((30, 30), dtype=bool)
        outside[:h, :w] = False
        erase = outside & (obs["grid"][row] != PAD)
        assert cells[row][erase][:, PAD].all() and cells[row][erase].sum() == erase.sum()
        assert not cells[row][outside & ~erase].any()
        smaller += int(erase.any())
    assert smaller > 0  # some outputs are smaller than their inputs: PAD must stay allowed


def test_masked_random_agent_then_solution_solves() -> None:
    # writes allowed by the mask never block the solution: after random masked writes, the
    # solution's writes (all allowed) still solve the puzzle
    env = SudokuEnv(size=4, blanks=8, action_mode="edit", expose_target=True, max_steps=100)
    obs, info = env.reset(seed=3)
    rng = np.random.default_rng(0)
    mask = env.action_masks()
    for _ in range(10):
        obs, *_ = env.step(int(rng.choice(np.flatnonzero(mask[:-1]))))
    for action in solution_actions(obs["answer"][None], info["target"][None])[0]:
        assert env.action_masks()[action]
        env.step(int(action))
    _, reward, terminated, _, info = env.step(env.action_space.n - 1)
    assert terminated and info["solved"] and reward > 0.9


def test_masks_need_a_discrete_mode_and_a_reset() -> None:
    with pytest.raises(RuntimeError, match=r"reset\(\) before action_masks"):
        ToyEnv(action_mode="edit").action_masks()
    env = ToyEnv()
    env.reset(seed=0)
    with pytest.raises(TypeError, match="action_mode='edit' or 'walk', got action_mode='grid'"):
        env.action_masks()
    toy = ToyEnv(action_mode="edit")
    toy.reset(seed=0)
    # a family without its own rule masks nothing but canvas padding
    assert toy.action_masks().all()
