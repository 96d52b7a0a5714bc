"""ARC-style augmentations of token grids: the 8 dihedral transforms and colour permutations.

An :class:`Augmentation` is one dihedral transform (index ``0..7``, see :data:`TRANSFORM_NAMES`)
followed by a permutation of the ten ARC colours. Both act on the *content* of a token grid — the
``h x w`` block at the top-left of a PAD-filled canvas — and the result is placed back at the
top-left with PAD elsewhere, so a 3x5 grid becomes a 5x3 grid under a quarter turn. Tokens that are
not colours (PAD, Sudoku digits, maze cells) are left unchanged by the colour permutation.

Every function is vectorised over a batch ``[n, H, W]`` with one augmentation per grid, and every
augmentation has an exact inverse (:func:`inverse_augmentation`, :func:`unaugment_grids`), so an
answer produced in the augmented frame can be mapped back to the task's own frame
(:func:`unaugment_answer`) before it is scored. ARC and ARCGen share this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from trmgym.envs.tokens import COLOR_OFFSET, NUM_COLORS, PAD, VOCAB_SIZE

NUM_TRANSFORMS = 8

#: Names of the dihedral transforms by index; rotations are counter-clockwise, as ``np.rot90``.
TRANSFORM_NAMES: tuple[str, ...] = (
    "identity",
    "rot90",
    "rot180",
    "rot270",
    "flip_lr",
    "flip_ud",
    "transpose",
    "anti_transpose",
)

#: ``INVERSE_TRANSFORM[t]`` undoes transform ``t`` (quarter turns swap, the rest are involutions).
INVERSE_TRANSFORM = np.array([0, 3, 2, 1, 4, 5, 6, 7], dtype=np.int64)

#: Transforms that swap height and width.
_SWAPS_AXES = np.array([False, True, False, True, False, False, True, True])

# Transform t sends output cell (i, j) of an h x w source to source cell
#   r = R[t,0]*i + R[t,1]*j + R[t,2]*(h-1),   c = C[t,0]*i + C[t,1]*j + C[t,2]*(w-1),
# a table form of np.rot90 / fliplr / flipud / transpose that lets one gather serve a whole batch
# whose grids have different sizes and different transforms.
_ROW_COEF = np.array(
    [[1, 0, 0], [0, 1, 0], [-1, 0, 1], [0, -1, 1], [1, 0, 0], [-1, 0, 1], [0, 1, 0], [0, -1, 1]],
    dtype=np.int64,
)
_COL_COEF = np.array(
    [[0, 1, 0], [-1, 0, 1], [0, -1, 1], [1, 0, 0], [0, -1, 1], [0, 1, 0], [1, 0, 0], [-1, 0, 1]],
    dtype=np.int64,
)

_IDENTITY_PERM = tuple(range(NUM_COLORS))


class Augmentation(NamedTuple):
    """One ARC augmentation: a dihedral transform, then a colour permutation.

    Attributes:
        transform: dihedral transform index ``0..7`` (names in :data:`TRANSFORM_NAMES`).
        color_perm: ``color_perm[c]`` is the colour that ARC colour ``c`` becomes; a permutation
            of ``0..9``. Sampled permutations keep colour 0 (black, the usual background) fixed.
    """

    transform: int = 0
    color_perm: tuple[int, ...] = _IDENTITY_PERM


IDENTITY = Augmentation()


def check_augmentation(augmentation: Augmentation | Sequence) -> Augmentation:
    """Validate ``augmentation`` (an :class:`Augmentation` or a ``(transform, color_perm)`` pair).

    Raises:
        ValueError: if the transform is not in ``0..7`` or the colour map is not a permutation of
            ``0..9``.
        TypeError: if it is not a pair.
    """
    if isinstance(augmentation, Augmentation):
        transform, color_perm = augmentation
    else:
        try:
            transform, color_perm = augmentation
        except (TypeError, ValueError):
            raise TypeError(
                "augmentation must be an Augmentation or a (transform, color_perm) pair, "
                f"got {augmentation!r}"
            ) from None
    if isinstance(transform, bool) or not isinstance(transform, int | np.integer):
        raise TypeError(f"augmentation transform must be an int in 0..7, got {transform!r}")
    if not 0 <= int(transform) < NUM_TRANSFORMS:
        raise ValueError(f"augmentation transform must lie in 0..7, got {int(transform)}")
    perm = np.asarray(color_perm)
    if perm.shape != (NUM_COLORS,) or perm.dtype.kind not in "iu":
        raise ValueError(
            f"augmentation color_perm must be {NUM_COLORS} ints, got {np.asarray(color_perm)!r}"
        )
    if not np.array_equal(np.sort(perm), np.arange(NUM_COLORS)):
        raise ValueError(
            f"augmentation color_perm must be a permutation of 0..{NUM_COLORS - 1}, "
            f"got {perm.tolist()}"
        )
    return Augmentation(int(transform), tuple(int(c) for c in perm))


def inverse_augmentation(augmentation: Augmentation | Sequence) -> Augmentation:
    """The augmentation that undoes ``augmentation`` (inverse transform, inverse permutation)."""
    transform, color_perm = check_augmentation(augmentation)
    inverse_perm = np.argsort(np.asarray(color_perm))
    return Augmentation(int(INVERSE_TRANSFORM[transform]), tuple(int(c) for c in inverse_perm))


def sample_augmentations(
    rng: np.random.Generator, n: int, *, dihedral: bool = True, colors: bool = True
) -> list[Augmentation]:
    """Draw ``n`` augmentations: uniform transforms and colour permutations fixing colour 0.

    Args:
        rng: the caller's generator.
        n: how many, ``n >= 0``.
        dihedral: draw the transform uniformly from ``0..7`` (else identity).
        colors: draw a uniform permutation of colours ``1..9`` (else identity).
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    transforms = (
        rng.integers(0, NUM_TRANSFORMS, size=n) if dihedral else np.zeros(n, dtype=np.int64)
    )
    perms = np.tile(np.arange(NUM_COLORS), (n, 1))
    if colors:
        perms[:, 1:] = rng.permuted(perms[:, 1:], axis=1)
    return [
        Augmentation(int(t), tuple(int(c) for c in p)) for t, p in zip(transforms, perms.tolist())
    ]


def dihedral(grid: np.ndarray, transform: int) -> np.ndarray:
    """Apply dihedral ``transform`` (``0..7``) to an unpadded 2-D array of any dtype."""
    grid = np.asarray(grid)
    if grid.ndim != 2:
        raise ValueError(f"grid must be 2-D, got shape {grid.shape}")
    check_augmentation((transform, _IDENTITY_PERM))
    operations = (
        lambda g: g,
        lambda g: np.rot90(g, 1),
        lambda g: np.rot90(g, 2),
        lambda g: np.rot90(g, 3),
        np.fliplr,
        np.flipud,
        lambda g: g.T,
        lambda g: np.rot90(g, 2).T,
    )
    return np.ascontiguousarray(operations[int(transform)](grid))


def extent_edit_tokens(grid: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The edit-mode mask of an ARC-style puzzle: which tokens an edit may write into each cell.

    Inside the target's extent (:func:`content_extent`, the output's size): the ten colours.
    Outside it: PAD, on the cells the input covers (the draft starts as the input, so they must
    be erased when the output is smaller). Nothing elsewhere. The solution's writes are always
    allowed; the mask reveals the output's size.

    Args:
        grid: ``[n, H, W]`` input tokens.
        target: ``[n, H, W]`` output tokens.

    Returns:
        ``[n, H, W, VOCAB_SIZE]`` bool.
    """
    grid, target = np.asarray(grid), np.asarray(target)
    heights, widths = content_extent(target)
    rows = np.arange(grid.shape[1]).reshape(1, -1, 1)
    cols = np.arange(grid.shape[2]).reshape(1, 1, -1)
    inside = (rows < heights.reshape(-1, 1, 1)) & (cols < widths.reshape(-1, 1, 1))
    tokens = np.zeros((*grid.shape, VOCAB_SIZE), dtype=bool)
    tokens[..., COLOR_OFFSET : COLOR_OFFSET + NUM_COLORS] = inside[..., None]
    tokens[..., PAD] = ~inside & (grid != PAD)
    return tokens


def content_extent(grids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Heights and widths of the top-left content of ``[n, H, W]`` (or ``[H, W]``) token grids.

    The extent is the smallest top-left block that holds every non-PAD cell; an all-PAD grid has
    extent ``(0, 0)``.
    """
    grids = np.asarray(grids)
    batch = grids if grids.ndim == 3 else grids[None]
    filled = batch != PAD
    rows = filled.any(axis=2)
    cols = filled.any(axis=1)
    heights = np.where(rows.any(axis=1), rows.shape[1] - np.argmax(rows[:, ::-1], axis=1), 0)
    widths = np.where(cols.any(axis=1), cols.shape[1] - np.argmax(cols[:, ::-1], axis=1), 0)
    return heights.astype(np.int64), widths.astype(np.int64)


def augment_grids(
    grids: np.ndarray,
    augmentations: Augmentation | Sequence,
    shapes: np.ndarray | Sequence | None = None,
) -> np.ndarray:
    """Apply one augmentation per grid to the top-left content of token grids.

    Args:
        grids: ``[n, H, W]`` (or a single ``[H, W]``) int tokens, content at the top-left, PAD
            elsewhere.
        augmentations: one :class:`Augmentation` for all grids, or a sequence of ``n``.
        shapes: ``[n, 2]`` content heights and widths (a single ``(h, w)`` for one grid); by
            default the extent of the non-PAD cells (:func:`content_extent`).

    Returns:
        A new int64 array of the same shape: the transformed content at the top-left, PAD
        elsewhere, colours permuted.

    Raises:
        ValueError: bad augmentations, shapes outside the canvas, tokens outside the vocabulary,
            or transformed content that does not fit a non-square canvas.
    """
    return _apply(grids, augmentations, shapes, invert=False)


def unaugment_grids(
    grids: np.ndarray,
    augmentations: Augmentation | Sequence,
    shapes: np.ndarray | Sequence | None = None,
) -> np.ndarray:
    """Undo :func:`augment_grids`; ``shapes`` are the content extents in the augmented frame."""
    return _apply(grids, augmentations, shapes, invert=True)


def unaugment_answer(
    answer: np.ndarray,
    augmentation: Augmentation | Sequence,
    shape: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """Map an answer given in an augmented episode back to the original task's frame.

    Args:
        answer: ``[H, W]`` token grid (or ``[n, H, W]`` with one augmentation per answer), as
            produced for the observation the env showed.
        augmentation: the episode's ``info["augmentation"]`` (a sequence of them for a batch).
        shape: the answer's content ``(h, w)`` in the augmented frame (``[n, 2]`` for a batch);
            by default the extent of its non-PAD cells.

    Returns:
        The answer in the task's frame: inverse transform, inverse colour permutation, content at
        the top-left, PAD elsewhere. Crop it to :func:`content_extent` and apply
        :func:`trmgym.envs.tokens.tokens_to_colors` for a plain ARC colour grid.
    """
    return unaugment_grids(answer, augmentation, shape)


def _as_batch(augmentations: Augmentation | Sequence, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(transforms [n], color_perms [n, 10])`` from one or ``n`` augmentations."""
    single = isinstance(augmentations, Augmentation) or (
        isinstance(augmentations, Sequence)
        and len(augmentations) == 2
        and isinstance(augmentations[0], int | np.integer)
    )
    if isinstance(augmentations, str | bytes):
        raise TypeError(
            "augmentation must be an Augmentation, a (transform, color_perm) pair or a sequence "
            f"of them, got {augmentations!r}"
        )
    if single:
        transform, perm = check_augmentation(augmentations)
        return np.full(n, transform, dtype=np.int64), np.tile(np.array(perm), (n, 1))
    items = list(augmentations)
    if len(items) != n:
        raise ValueError(f"augmentations must be one or {n} (one per grid), got {len(items)}")
    # fast vectorised check; on any doubt, check item by item for a precise message
    try:
        transforms = np.array([item[0] for item in items])
        perms = np.array([item[1] for item in items])
        valid = (
            all(len(item) == 2 for item in items)
            and transforms.dtype.kind in "iu"
            and perms.dtype.kind in "iu"
            and perms.shape == (n, NUM_COLORS)
            and bool(np.all((transforms >= 0) & (transforms < NUM_TRANSFORMS)))
            and np.array_equal(np.sort(perms, axis=1), np.tile(np.arange(NUM_COLORS), (n, 1)))
        )
    except (TypeError, ValueError, IndexError, KeyError):
        valid = False
    if not valid:
        for item in items:
            check_augmentation(item)
    return transforms.astype(np.int64).reshape(n), perms.astype(np.int64).reshape(n, NUM_COLORS)


def _apply(
    grids: np.ndarray,
    augmentations: Augmentation | Sequence,
    shapes: np.ndarray | Sequence | None,
    *,
    invert: bool,
) -> np.ndarray:
    grids = np.asarray(grids)
    if grids.ndim not in (2, 3):
        raise ValueError(f"grids must be [H, W] or [n, H, W], got shape {grids.shape}")
    if grids.dtype.kind not in "iu":
        raise TypeError(f"grids must hold integer tokens, got dtype {grids.dtype}")
    single = grids.ndim == 2
    batch = grids[None] if single else grids
    n, height, width = batch.shape
    if batch.size and (batch.min() < 0 or batch.max() >= VOCAB_SIZE):
        raise ValueError(
            f"grids must hold tokens in 0..{VOCAB_SIZE - 1}, got values in "
            f"{int(batch.min())}..{int(batch.max())}"
        )
    transforms, perms = _as_batch(augmentations, n)
    if invert:
        transforms = INVERSE_TRANSFORM[transforms]
        perms = np.argsort(perms, axis=1)

    if shapes is None:
        heights, widths = content_extent(batch)
    else:
        shape_array = np.asarray(shapes, dtype=np.int64).reshape(-1, 2)
        if shape_array.shape[0] != n:
            raise ValueError(f"shapes must give one (h, w) per grid ({n}), got {len(shape_array)}")
        heights, widths = shape_array[:, 0], shape_array[:, 1]
        if (
            np.any(heights < 0)
            or np.any(heights > height)
            or np.any(widths < 0)
            or np.any(widths > width)
        ):
            raise ValueError(f"shapes must lie within the canvas {height}x{width}")
    swaps = _SWAPS_AXES[transforms]
    out_heights = np.where(swaps, widths, heights)
    out_widths = np.where(swaps, heights, widths)
    if np.any(out_heights > height) or np.any(out_widths > width):
        raise ValueError(
            f"transformed content does not fit the {height}x{width} canvas; use a square canvas"
        )

    # Flat source index of every output cell, split into a part that varies with the output row
    # i ([n, H, 1]) and one that varies with the output column j ([n, 1, W]): one broadcast add
    # builds the whole [n, H, W] gather index.
    i = np.arange(height).reshape(1, height, 1)
    j = np.arange(width).reshape(1, 1, width)
    row_coef = _ROW_COEF[transforms].reshape(n, 3, 1, 1)
    col_coef = _COL_COEF[transforms].reshape(n, 3, 1, 1)
    h_last = (heights - 1).reshape(n, 1, 1)
    w_last = (widths - 1).reshape(n, 1, 1)
    grid_start = (np.arange(n) * (height * width)).reshape(n, 1, 1)
    by_row = (row_coef[:, 0] * i + row_coef[:, 2] * h_last) * width
    by_row = by_row + col_coef[:, 0] * i + col_coef[:, 2] * w_last + grid_start
    by_col = row_coef[:, 1] * j * width + col_coef[:, 1] * j
    # cells outside the output extent gather junk (clipped into range) and are masked below
    moved = np.take(batch.reshape(-1), by_row + by_col, mode="clip")

    # one token lookup table per grid: colours permuted, every other token fixed
    table = np.tile(np.arange(VOCAB_SIZE, dtype=np.int64), (n, 1))
    table[:, COLOR_OFFSET : COLOR_OFFSET + NUM_COLORS] = perms + COLOR_OFFSET
    table_start = (np.arange(n) * VOCAB_SIZE).reshape(n, 1, 1)
    recoloured = np.take(table.reshape(-1), moved + table_start)
    inside = (i < out_heights.reshape(n, 1, 1)) & (j < out_widths.reshape(n, 1, 1))
    result = np.where(inside, recoloured, PAD)
    return result[0] if single else result
