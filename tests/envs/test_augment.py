"""Tests for trmgym.envs.augment: dihedral transforms and colour permutations of token grids."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trmgym.envs.augment import (
    IDENTITY,
    INVERSE_TRANSFORM,
    NUM_TRANSFORMS,
    Augmentation,
    augment_grids,
    content_extent,
    dihedral,
    inverse_augmentation,
    sample_augmentations,
    unaugment_answer,
    unaugment_grids,
)
from trmgym.envs.tokens import COLOR_OFFSET, MAZE_WALL, PAD, colors_to_tokens

CANVAS = 30


def place(colors: np.ndarray, canvas: int = CANVAS) -> np.ndarray:
    tokens = np.zeros((canvas, canvas), dtype=np.int64)
    tokens[: colors.shape[0], : colors.shape[1]] = colors_to_tokens(colors)
    return tokens


def test_dihedral_matches_numpy_definitions_on_a_non_square_grid() -> None:
    grid = np.arange(6).reshape(2, 3)
    expected = [
        grid,
        np.rot90(grid),
        np.rot90(grid, 2),
        np.rot90(grid, 3),
        grid[:, ::-1],
        grid[::-1, :],
        grid.T,
        grid[::-1, ::-1].T,
    ]
    for transform, want in enumerate(expected):
        np.testing.assert_array_equal(dihedral(grid, transform), want)
    # the eight transforms of an asymmetric grid are all different
    assert (
        len({dihedral(grid, t).tobytes() + bytes(dihedral(grid, t).shape) for t in range(8)}) == 8
    )


@pytest.mark.parametrize("transform", range(NUM_TRANSFORMS))
def test_inverse_transform_undoes_each_transform(transform: int) -> None:
    grid = np.arange(12).reshape(3, 4)
    back = dihedral(dihedral(grid, transform), int(INVERSE_TRANSFORM[transform]))
    np.testing.assert_array_equal(back, grid)


@pytest.mark.parametrize("transform", range(NUM_TRANSFORMS))
def test_augment_transforms_content_at_top_left_and_keeps_pad(transform: int) -> None:
    rng = np.random.default_rng(transform)
    colors = rng.integers(0, 10, size=(4, 7))
    perm = (0, 3, 1, 2, 9, 8, 7, 6, 5, 4)
    out = augment_grids(place(colors), Augmentation(transform, perm))
    expected_colors = np.array(perm)[dihedral(colors, transform)]
    h, w = expected_colors.shape
    np.testing.assert_array_equal(out[:h, :w], colors_to_tokens(expected_colors))
    assert np.all(out[h:, :] == PAD) and np.all(out[:, w:] == PAD)


def test_colour_permutation_leaves_pad_and_non_colour_tokens_alone() -> None:
    grid = np.full((5, 5), PAD)
    grid[:2, :3] = [[MAZE_WALL, 1, 2], [3, MAZE_WALL, PAD + 1]]
    perm = (0, 2, 1, 3, 4, 5, 6, 7, 8, 9)  # swaps colours 1 and 2 = tokens 2 and 3
    out = augment_grids(grid, Augmentation(0, perm), shapes=(2, 3))
    np.testing.assert_array_equal(out[:2, :3], [[MAZE_WALL, 1, 3], [2, MAZE_WALL, 1]])
    assert np.all(out[2:] == PAD) and np.all(out[:, 3:] == PAD)


@st.composite
def batches(draw: st.DrawFn) -> tuple[np.ndarray, list[Augmentation], np.ndarray]:
    n = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    shapes = np.array(
        [[draw(st.integers(1, CANVAS)), draw(st.integers(1, CANVAS))] for _ in range(n)]
    )
    grids = np.stack([place(rng.integers(0, 10, size=tuple(shape))) for shape in shapes])
    augmentations = [
        Augmentation(draw(st.integers(0, 7)), tuple(int(c) for c in rng.permutation(10)))
        for _ in range(n)
    ]
    return grids, augmentations, shapes


@settings(max_examples=60, deadline=None)
@given(batches())
def test_augment_then_unaugment_round_trips_exactly(batch) -> None:
    grids, augmentations, shapes = batch
    augmented = augment_grids(grids, augmentations)
    # content extents follow the transform: swapped for quarter turns and (anti-)transposes
    heights, widths = content_extent(augmented)
    for (h, w), aug, out_h, out_w in zip(shapes, augmentations, heights, widths):
        assert (out_h, out_w) == ((w, h) if aug.transform in (1, 3, 6, 7) else (h, w))
    np.testing.assert_array_equal(unaugment_grids(augmented, augmentations), grids)
    # the inverse augmentation applied forwards is the same as unaugmenting
    inverses = [inverse_augmentation(a) for a in augmentations]
    np.testing.assert_array_equal(augment_grids(augmented, inverses), grids)


def test_unaugment_answer_on_one_grid_with_explicit_shape() -> None:
    colors = np.array([[1, 2, 0], [0, 0, 3]])  # black border cells still count via the shape
    aug = Augmentation(1, (0, 9, 8, 7, 6, 5, 4, 3, 2, 1))
    answer = augment_grids(place(colors), aug, shapes=(2, 3))
    np.testing.assert_array_equal(unaugment_answer(answer, aug, shape=(3, 2)), place(colors))
    # a (transform, perm) pair works as well as an Augmentation
    np.testing.assert_array_equal(unaugment_answer(answer, tuple(aug)), place(colors))


def test_content_extent() -> None:
    grids = np.zeros((3, 6, 6), dtype=np.int64)
    grids[0, :2, :5] = COLOR_OFFSET
    grids[1, 4, 0] = COLOR_OFFSET + 3
    heights, widths = content_extent(grids)
    assert heights.tolist() == [2, 5, 0] and widths.tolist() == [5, 1, 0]


def test_sample_augmentations_keep_black_and_are_seeded() -> None:
    first = sample_augmentations(np.random.default_rng(7), 200)
    again = sample_augmentations(np.random.default_rng(7), 200)
    assert first == again
    assert all(a.color_perm[0] == 0 and sorted(a.color_perm) == list(range(10)) for a in first)
    assert {a.transform for a in first} == set(range(8))
    assert len({a.color_perm for a in first}) > 150
    plain = sample_augmentations(np.random.default_rng(7), 5, dihedral=False, colors=False)
    assert plain == [IDENTITY] * 5


@pytest.mark.parametrize(
    ("augmentation", "error", "match"),
    [
        (Augmentation(8), ValueError, "transform must lie in 0..7"),
        (Augmentation(-1), ValueError, "transform must lie in 0..7"),
        ((True, tuple(range(10))), TypeError, "transform"),
        (Augmentation(0, (0, 1, 1, 3, 4, 5, 6, 7, 8, 9)), ValueError, "permutation"),
        (Augmentation(0, (0, 1, 2)), ValueError, "10 ints"),
        ("rot90", TypeError, "augmentation must be"),
    ],
)
def test_bad_augmentations_are_rejected(augmentation, error, match) -> None:
    with pytest.raises(error, match=match):
        augment_grids(np.zeros((3, 3), dtype=np.int64), augmentation)


def test_bad_grids_and_shapes_are_rejected() -> None:
    grids = np.zeros((2, 4, 4), dtype=np.int64)
    with pytest.raises(ValueError, match="one or 2"):
        augment_grids(grids, [IDENTITY] * 3)
    with pytest.raises(ValueError, match="tokens in 0..25"):
        augment_grids(np.full((2, 2), 26), IDENTITY)
    with pytest.raises(TypeError, match="integer tokens"):
        augment_grids(np.zeros((2, 2)), IDENTITY)
    with pytest.raises(ValueError, match="shapes must lie within"):
        augment_grids(grids, IDENTITY, shapes=[(5, 1), (1, 1)])
    # a quarter turn of 2x4 content cannot fit a 2x4 canvas
    with pytest.raises(ValueError, match="does not fit"):
        augment_grids(np.ones((2, 4), dtype=np.int64), Augmentation(1))
