"""Test-time training (TTT) with augmentation voting, scored as ARC scores: pass@1 and pass@2.

The recipe of the ARC Prize 2024 leaders — the ARChitects (Franzen, Disselhoff & Hartmann, "The
LLM ARChitect: Solving ARC-AGI Is A Matter of Perspective", 2024) and Akyürek et al., "The
Surprising Effectiveness of Test-Time Training for Abstract Reasoning" (arXiv:2411.07279, 2024):

1. **Augment the demonstrations** (:func:`augment_demos`): each augmentation is one of the 8
   dihedral transforms followed by a permutation of the ARC colours that keeps colour 0 (black,
   token 1) fixed; it acts identically on a demo's input and output, so a pair stays a pair.
   The first augmentation is always the identity (the demos themselves are always trained on).
2. **Fine-tune a copy** of the parameters on the augmented demos (:func:`test_time_train`):
   ``steps`` Adam or SGD steps on minibatches of augmented pairs; the caller's tensors are never
   written (the copy is a detached clone of each tensor of the dict, not a deep copy of a module).
3. **Predict under several views and vote** (:func:`predict_with_voting`, :func:`vote`): each
   test input is predicted under ``vote_augmentations`` augmentations (view 0 is the identity),
   each prediction is mapped back to the task's frame with the exact inverse
   (:func:`trmgym.envs.augment.unaugment_answer`), and identical answers are counted. The two
   most frequent answers are the two attempts; ties go to the answer seen first, in view order,
   so the identity view wins a tie.
4. **Score as ARC does** (:func:`pass_at`): two attempts per test input; a task counts only if
   *every* test input is right — pass@1 on the first attempt, pass@2 on either attempt.

What differs from the papers, honestly stated:

* The TRM reads **no demonstrations** in its input — it maps an input grid to an output grid — so
  the papers' leave-one-out *in-context* tasks (``k - 1`` demos as context, the held-out one as
  query) reduce here to the demo pairs themselves: fine-tuning trains on every augmented pair.
  :attr:`TTTConfig.leave_one_out` (off by default) only adds a *diagnostic*: for ``k >= 2`` demos,
  fine-tune on the other ``k - 1`` demos and predict the held-out one, reporting the fraction
  answered right on the first attempt (:attr:`TaskResult.loo_accuracy`); it costs ``k`` extra
  fine-tunes and does not change the answer to the test inputs.
* Without the demos in context, an augmentation keeps the *rule* only if the task commutes with
  it: a colour permutation ``p`` turns a colour mapping ``f`` into ``p f p^-1``, and a rotation
  turns "flip left-right" into "flip up-down". The papers' models see each augmented task whole
  (its demos and query under one augmentation), so the rule they infer moves along; a
  context-free model trained on a mixture of augmented copies sees conflicting pairs instead.
  :attr:`TTTConfig.dihedral` and :attr:`TTTConfig.colors` turn either group off for such tasks
  (e.g. ``colors=False`` for colour-mapping tasks; both off: plain fine-tuning on the demos).
  Giving each augmented copy its own task embedding, as the TRM paper does for ARC, would remove
  the conflict; :class:`~trmgym.meta.tasks.TRMObjective` has no task-id input, so it is not done.
* On a non-square canvas only the 4 transforms that keep height and width (identity, rot180,
  flip_lr, flip_ud) are used, so every grid and every prediction always fits the canvas.

Grids are flattened row-major token grids ``[n, L]`` with ``L = H * W`` (``grid_shape = (H, W)``),
content at the top-left, PAD (0) outside it, colour tokens ``1..10`` for ARC colours ``0..9``
(:mod:`trmgym.envs.tokens`). The objective is anything with ``loss(params, x, y) -> scalar`` and
``predict(params, x) -> [n, L]`` over a parameter dict, such as
:class:`~trmgym.meta.tasks.TRMObjective`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch

from trmgym.envs.arc_data import ARCTask
from trmgym.envs.augment import (
    NUM_TRANSFORMS,
    Augmentation,
    augment_grids,
    sample_augmentations,
    unaugment_answer,
)
from trmgym.envs.tokens import COLOR_OFFSET, PAD, VOCAB_SIZE
from trmgym.meta.tasks import FewShotBatch, check_count

__all__ = [
    "OPTIMIZERS",
    "TTTConfig",
    "TTTTask",
    "TaskResult",
    "augment_demos",
    "evaluate_task",
    "evaluate_tasks",
    "pass_at",
    "predict_with_voting",
    "tasks_from_arc",
    "tasks_from_batch",
    "test_time_train",
    "view_augmentations",
    "vote",
]

OPTIMIZERS = ("adam", "sgd")
#: transforms that keep a grid's height and width (usable on a non-square canvas)
_SHAPE_KEEPING = (0, 2, 4, 5)

Params = dict[str, torch.Tensor]


class Objective(Protocol):
    """What TTT needs of a model: a loss and a prediction over an explicit parameter dict."""

    def loss(self, params: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> Any:
        """Scalar loss of inputs ``x`` ``[n, L]`` against targets ``y`` ``[n, L]``."""

    def predict(self, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """``[n, L]`` predicted tokens for inputs ``x`` ``[n, L]``."""


# ------------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class TTTConfig:
    """Test-time training and voting settings.

    Raises:
        ValueError: naming the field, for a count out of range, a non-positive or non-finite
            learning rate, an unknown optimizer or a non-bool flag.
    """

    steps: int = 32
    """Optimizer steps of fine-tuning per task (``>= 0``; 0 predicts with the given params)."""
    lr: float = 1e-3
    """Learning rate (``> 0``, finite)."""
    batch_size: int = 16
    """Augmented pairs per step (``>= 1``; capped at the number of augmented pairs)."""
    augmentations: int = 8
    """Augmented copies of the demo set to train on (``>= 1``; copy 0 is the identity)."""
    vote_augmentations: int = 8
    """Views each test input is predicted under (``>= 1``; view 0 is the identity)."""
    optimizer: str = "adam"
    """``"adam"`` or ``"sgd"``."""
    dihedral: bool = True
    """Use the dihedral transforms (else the identity transform only)."""
    colors: bool = True
    """Use colour permutations fixing colour 0 (else the identity permutation only)."""
    leave_one_out: bool = False
    """Also report the leave-one-out demo accuracy (diagnostic; ``k`` extra fine-tunes)."""

    def __post_init__(self) -> None:
        check_count("steps", self.steps, low=0)
        check_count("batch_size", self.batch_size)
        check_count("augmentations", self.augmentations)
        check_count("vote_augmentations", self.vote_augmentations)
        lr = self.lr
        if (
            isinstance(lr, bool)
            or not isinstance(lr, int | float)
            or not math.isfinite(lr)
            or lr <= 0
        ):
            raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        for name in ("dihedral", "colors", "leave_one_out"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")


# --------------------------------------------------------------------------------- validation
def _check_grid_shape(grid_shape: Any) -> tuple[int, int]:
    try:
        height, width = grid_shape
    except (TypeError, ValueError):
        raise ValueError(
            f"grid_shape must be a pair (H, W) of ints >= 1, got {grid_shape!r}"
        ) from None
    return check_count("grid_shape[0] (H)", height), check_count("grid_shape[1] (W)", width)


def _check_grids(name: str, grids: Any, cells: int, rows: int | None = None) -> torch.Tensor:
    """``grids`` as an int64 CPU tensor ``[n, cells]`` of tokens (``n >= 1``, or ``rows``)."""
    tensor = torch.as_tensor(np.asarray(grids) if not torch.is_tensor(grids) else grids)
    if tensor.ndim != 2 or tensor.shape[1] != cells or tensor.shape[0] < 1:
        raise ValueError(
            f"{name} must be [n, L] token grids with n >= 1 and L = H*W = {cells}, got shape {tuple(tensor.shape)}"
        )
    if rows is not None and tensor.shape[0] != rows:
        raise ValueError(f"{name} must hold {rows} grids, got {tensor.shape[0]}")
    if tensor.dtype.is_floating_point or tensor.dtype == torch.bool or tensor.is_complex():
        raise ValueError(f"{name} must hold integer tokens, got dtype {tensor.dtype}")
    tensor = tensor.detach().cpu().long()
    if tensor.min() < 0 or tensor.max() >= VOCAB_SIZE:
        raise ValueError(
            f"{name} must hold tokens in 0..{VOCAB_SIZE - 1}, got "
            f"{int(tensor.min())}..{int(tensor.max())}"
        )
    return tensor


def _check_rng(rng: Any) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    return rng


def _check_config(config: Any) -> TTTConfig:
    if not isinstance(config, TTTConfig):
        raise TypeError(f"config must be a TTTConfig, got {type(config).__name__}")
    return config


def _check_objective(objective: Any, cells: int) -> Any:
    for method in ("loss", "predict"):
        if not callable(getattr(objective, method, None)):
            raise TypeError(
                f"objective must have loss(params, x, y) and predict(params, x); "
                f"{type(objective).__name__} has no {method}()"
            )
    seq_len = getattr(getattr(getattr(objective, "model", None), "config", None), "seq_len", None)
    if isinstance(seq_len, int) and seq_len != cells:
        raise ValueError(
            f"grid_shape gives L = H*W = {cells} cells, but the objective's model has "
            f"seq_len {seq_len}"
        )
    return objective


def _check_params(params: Any) -> Params:
    if not isinstance(params, Mapping) or not all(
        isinstance(k, str) and torch.is_tensor(v) for k, v in params.items()
    ):
        raise TypeError("params must be a dict of str -> torch.Tensor")
    return dict(params)


# ------------------------------------------------------------------------------ augmentations
def _allowed_transforms(grid_shape: tuple[int, int], dihedral: bool) -> tuple[int, ...]:
    if not dihedral:
        return (0,)
    return tuple(range(NUM_TRANSFORMS)) if grid_shape[0] == grid_shape[1] else _SHAPE_KEEPING


def view_augmentations(
    count: int,
    grid_shape: Sequence[int],
    rng: np.random.Generator,
    *,
    dihedral: bool = True,
    colors: bool = True,
) -> list[Augmentation]:
    """``count`` augmentations: the identity first, then the allowed transforms in a random order.

    Transforms cycle through a shuffled list of the allowed ones (all 8 on a square canvas, the 4
    that keep height and width on a non-square one, the identity alone with ``dihedral=False``),
    so ``count = 8`` on a square canvas gives the 8 distinct transforms. Every augmentation but
    the first draws a colour permutation of colours ``1..9`` (colour 0, token 1, stays fixed)
    when ``colors`` is set.

    Raises:
        ValueError: ``count < 1`` or a bad ``grid_shape``.
    """
    count = check_count("count", count)
    grid_shape = _check_grid_shape(grid_shape)
    rng = _check_rng(rng)
    allowed = np.array(_allowed_transforms(grid_shape, dihedral), dtype=np.int64)
    others = rng.permutation(allowed[1:]) if len(allowed) > 1 else allowed[:0]
    order = np.concatenate([[0], others])
    perms = sample_augmentations(rng, count, dihedral=False, colors=colors)
    views = [Augmentation()]
    for index in range(1, count):
        views.append(Augmentation(int(order[index % len(order)]), perms[index].color_perm))
    return views


def _augment(
    flat: np.ndarray, grid_shape: tuple[int, int], augmentation: Augmentation
) -> np.ndarray:
    """Apply one augmentation to every grid of ``flat`` ``[n, L]``; returns ``[n, L]``."""
    height, width = grid_shape
    grids = flat.reshape(-1, height, width)
    return augment_grids(grids, [augmentation] * len(grids)).reshape(len(grids), -1)


def augment_demos(
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    grid_shape: Sequence[int],
    count: int,
    rng: np.random.Generator,
    *,
    dihedral: bool = True,
    colors: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` augmented copies of a demo set, each augmentation applied to inputs and outputs.

    Args:
        x: ``[k, L]`` demo inputs (tokens, content at the top-left, PAD elsewhere).
        y: ``[k, L]`` demo outputs.
        grid_shape: the canvas ``(H, W)``, ``H * W = L``.
        count: augmented copies (``>= 1``); copy 0 is the identity, the rest follow
            :func:`view_augmentations`.
        rng: the generator the augmentations are drawn from.
        dihedral, colors: which augmentation groups to use.

    Returns:
        ``(x_aug, y_aug)`` int64 ``[count * k, L]``, copy-major (rows ``c * k .. c * k + k - 1``
        are copy ``c``).

    Raises:
        ValueError: naming the argument, for bad shapes, tokens or counts.
    """
    grid_shape = _check_grid_shape(grid_shape)
    cells = grid_shape[0] * grid_shape[1]
    x = _check_grids("x", x, cells)
    y = _check_grids("y", y, cells, rows=x.shape[0])
    views = view_augmentations(count, grid_shape, rng, dihedral=dihedral, colors=colors)
    xs, ys = x.numpy(), y.numpy()
    x_aug = np.concatenate([_augment(xs, grid_shape, view) for view in views])
    y_aug = np.concatenate([_augment(ys, grid_shape, view) for view in views])
    return torch.from_numpy(x_aug), torch.from_numpy(y_aug)


# ----------------------------------------------------------------------------- fine-tuning
def test_time_train(
    objective: Objective,
    params: Mapping[str, torch.Tensor],
    support_x: torch.Tensor | np.ndarray,
    support_y: torch.Tensor | np.ndarray,
    grid_shape: Sequence[int],
    config: TTTConfig,
    rng: np.random.Generator,
) -> Params:
    """Fine-tune a copy of ``params`` on the augmented demos of one task.

    Args:
        objective: ``loss(params, x, y)`` / ``predict(params, x)`` over a parameter dict.
        params: the starting parameters; never modified (each tensor is detached and cloned).
        support_x: ``[k, L]`` demo inputs; ``support_y``: ``[k, L]`` demo outputs.
        grid_shape: the canvas ``(H, W)`` with ``H * W = L``.
        config: steps, learning rate, batch size, optimizer, augmentations.
        rng: draws the augmentations and the minibatches.

    Returns:
        The fine-tuned parameters: a new dict of detached tensors on the parameters' devices.
        With ``steps = 0`` it is a detached clone of ``params``.

    Raises:
        ValueError / TypeError: naming the argument, for bad grids, shapes, config or params.
    """
    config = _check_config(config)
    grid_shape = _check_grid_shape(grid_shape)
    cells = grid_shape[0] * grid_shape[1]
    objective = _check_objective(objective, cells)
    params = _check_params(params)
    rng = _check_rng(rng)
    x_aug, y_aug = augment_demos(
        support_x,
        support_y,
        grid_shape,
        config.augmentations,
        rng,
        dihedral=config.dihedral,
        colors=config.colors,
    )
    tuned = {name: value.detach().clone() for name, value in params.items()}
    trainable = [value for value in tuned.values() if value.is_floating_point()]
    if config.steps == 0 or not trainable:
        return tuned
    for value in trainable:
        value.requires_grad_(True)
    if config.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(trainable, lr=config.lr)
    else:
        optimizer = torch.optim.SGD(trainable, lr=config.lr)
    device = trainable[0].device
    x_aug, y_aug = x_aug.to(device), y_aug.to(device)
    batch = min(config.batch_size, len(x_aug))
    order = rng.permutation(len(x_aug))
    cursor = 0
    with torch.enable_grad():
        for _ in range(config.steps):
            if cursor + batch > len(order):  # a fresh pass through the pairs, reshuffled
                order, cursor = rng.permutation(len(x_aug)), 0
            rows = torch.from_numpy(order[cursor : cursor + batch]).to(device)
            cursor += batch
            loss = objective.loss(tuned, x_aug[rows], y_aug[rows])
            if not torch.is_tensor(loss) or loss.ndim != 0:
                raise ValueError("objective.loss must return a scalar tensor")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return {name: value.detach() for name, value in tuned.items()}


test_time_train.__test__ = False  # type: ignore[attr-defined]  # not a pytest test by its name


# ------------------------------------------------------------------------------------ voting
def vote(predictions: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The two most frequent answers per test input across views.

    Args:
        predictions: ``[views, t, L]`` token grids, already in the task's frame; view 0 should
            be the identity view.

    Returns:
        ``(candidates [t, 2, L], counts [t, 2])`` int64. Answers are ranked by how many views
        gave them; ties go to the answer whose first appearance comes first in view order (so
        the identity view wins a tie). With a single distinct answer the second attempt repeats
        it with count 0.

    Raises:
        ValueError: ``predictions`` not 3-D or with no views or no test inputs.
    """
    preds = torch.as_tensor(predictions).detach().cpu().long()
    if preds.ndim != 3 or preds.shape[0] < 1 or preds.shape[1] < 1:
        raise ValueError(
            f"predictions must be [views, t, L] with views >= 1 and t >= 1, got {tuple(preds.shape)}"
        )
    views, tests, cells = preds.shape
    candidates = torch.zeros(tests, 2, cells, dtype=torch.long)
    counts = torch.zeros(tests, 2, dtype=torch.long)
    for test in range(tests):
        tally: dict[bytes, list[int]] = {}  # answer -> [count, first view]
        for view in range(views):
            key = preds[view, test].numpy().tobytes()
            entry = tally.setdefault(key, [0, view])
            entry[0] += 1
        ranked = sorted(tally.values(), key=lambda entry: (-entry[0], entry[1]))
        for attempt in range(2):
            count, first = ranked[attempt] if attempt < len(ranked) else (0, ranked[0][1])
            candidates[test, attempt] = preds[first, test]
            counts[test, attempt] = count
    return candidates, counts


def _predict_views(
    objective: Objective,
    params: Mapping[str, torch.Tensor],
    test_x: torch.Tensor,
    grid_shape: tuple[int, int],
    views: Sequence[Augmentation],
) -> torch.Tensor:
    """``[views, t, L]`` predictions in the task's frame, one batched forward for all views."""
    height, width = grid_shape
    tests = len(test_x)
    inputs = np.concatenate([_augment(test_x.numpy(), grid_shape, view) for view in views])
    device = next((v.device for v in params.values()), torch.device("cpu"))
    with torch.no_grad():
        raw = objective.predict(params, torch.from_numpy(inputs).to(device))
    raw = torch.as_tensor(raw).detach().cpu().long()
    if raw.shape != (len(inputs), height * width):
        raise ValueError(
            f"objective.predict must return [n, L] = {[len(inputs), height * width]}, "
            f"got {list(raw.shape)}"
        )
    answers = raw.clamp(0, VOCAB_SIZE - 1).numpy().reshape(len(views), tests, height, width)
    back = np.stack(
        [
            unaugment_answer(answers[v], [view] * tests).reshape(tests, -1)
            for v, view in enumerate(views)
        ]
    )
    return torch.from_numpy(back)


def predict_with_voting(
    objective: Objective,
    params: Mapping[str, torch.Tensor],
    test_x: torch.Tensor | np.ndarray,
    grid_shape: Sequence[int],
    config: TTTConfig,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predict each test input under ``config.vote_augmentations`` views and vote.

    Each view augments the inputs, predicts, and maps the prediction back with the exact
    inverse (its content extent — non-PAD cells — read in the augmented frame).

    Args:
        objective, params: the model (see :func:`test_time_train`).
        test_x: ``[t, L]`` test inputs.
        grid_shape: the canvas ``(H, W)``.
        config: ``vote_augmentations``, ``dihedral``, ``colors``.
        rng: draws the views (view 0 is the identity).

    Returns:
        ``(candidates [t, 2, L], counts [t, 2])`` as :func:`vote`.
    """
    config = _check_config(config)
    grid_shape = _check_grid_shape(grid_shape)
    cells = grid_shape[0] * grid_shape[1]
    objective = _check_objective(objective, cells)
    params = _check_params(params)
    test_x = _check_grids("test_x", test_x, cells)
    views = view_augmentations(
        config.vote_augmentations, grid_shape, rng, dihedral=config.dihedral, colors=config.colors
    )
    return vote(_predict_views(objective, params, test_x, grid_shape, views))


# ------------------------------------------------------------------------------------ scoring
def pass_at(
    candidates: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray
) -> tuple[bool, bool]:
    """ARC's score of one task: ``(pass@1, pass@2)``.

    Args:
        candidates: ``[t, 2, L]`` two attempts per test input.
        targets: ``[t, L]`` the true outputs (the whole canvas is compared, PAD included, so
            a wrong size is wrong).

    Returns:
        pass@1: every test input's first attempt is exact; pass@2: every test input has an
        exact attempt among its two.

    Raises:
        ValueError: mismatched or malformed shapes.
    """
    cand = torch.as_tensor(candidates).cpu()
    tgt = torch.as_tensor(targets).cpu()
    if cand.ndim != 3 or cand.shape[1] != 2 or cand.shape[0] < 1:
        raise ValueError(f"candidates must be [t, 2, L] with t >= 1, got {tuple(cand.shape)}")
    if tgt.shape != (cand.shape[0], cand.shape[2]):
        raise ValueError(
            f"targets must be [t, L] = {[cand.shape[0], cand.shape[2]]}, got {list(tgt.shape)}"
        )
    right = (cand == tgt[:, None, :]).all(dim=-1)  # [t, 2]
    return bool(right[:, 0].all()), bool(right.any(dim=1).all())


# ---------------------------------------------------------------------------------- tasks
class TTTTask(NamedTuple):
    """One task to adapt on and answer: demos and test pairs as ``[n, L]`` token grids."""

    task_id: str
    support_x: torch.Tensor
    """``[k, L]`` demo inputs."""
    support_y: torch.Tensor
    """``[k, L]`` demo outputs."""
    test_x: torch.Tensor
    """``[t, L]`` test inputs."""
    test_y: torch.Tensor
    """``[t, L]`` test outputs."""


class TaskResult(NamedTuple):
    """The outcome of one task."""

    task_id: str
    pass1: bool
    pass2: bool
    candidates: torch.Tensor
    """``[t, 2, L]`` the two attempts per test input."""
    counts: torch.Tensor
    """``[t, 2]`` votes for each attempt."""
    loo_accuracy: float | None
    """Leave-one-out demo accuracy (first attempt), or ``None`` when off or ``k < 2``."""


def tasks_from_batch(batch: FewShotBatch) -> list[TTTTask]:
    """The tasks of a :class:`FewShotBatch`: its support pairs as demos, its query pairs as tests
    (a task passes only if every query pair is answered)."""
    if not isinstance(batch, FewShotBatch):
        raise TypeError(f"batch must be a FewShotBatch, got {type(batch).__name__}")
    return [
        TTTTask(
            str(int(batch.task_ids[i])),
            batch.support_x[i],
            batch.support_y[i],
            batch.query_x[i],
            batch.query_y[i],
        )
        for i in range(batch.num_tasks)
    ]


def tasks_from_arc(tasks: Sequence[ARCTask], grid_shape: Sequence[int]) -> list[TTTTask]:
    """Real ARC tasks as token grids on the model's canvas ``(H, W)`` (content at the top-left).

    Raises:
        ValueError: a grid larger than the canvas, naming the task, the pair and both sizes.
    """
    height, width = _check_grid_shape(grid_shape)
    if isinstance(tasks, ARCTask) or not isinstance(tasks, Sequence):
        raise TypeError("tasks must be a sequence of ARCTask")
    out = []
    for task in tasks:
        if not isinstance(task, ARCTask):
            raise TypeError(f"tasks must hold ARCTask, got {type(task).__name__}")
        packed = {}
        for split in ("train", "test"):
            pairs = getattr(task, split)
            for side, column in (("input", 0), ("output", 1)):
                canvas = np.full((len(pairs), height, width), PAD, dtype=np.int64)
                for index, pair in enumerate(pairs):
                    grid = np.asarray(pair[column])
                    h, w = grid.shape
                    if h > height or w > width:
                        raise ValueError(
                            f"ARC task {task.task_id}: {split}[{index}].{side} is {h}x{w}, "
                            f"larger than the model canvas {height}x{width}"
                        )
                    canvas[index, :h, :w] = grid.astype(np.int64) + COLOR_OFFSET
                packed[split, side] = torch.from_numpy(canvas.reshape(len(pairs), -1))
        out.append(
            TTTTask(
                task.task_id,
                packed["train", "input"],
                packed["train", "output"],
                packed["test", "input"],
                packed["test", "output"],
            )
        )
    return out


def evaluate_task(
    objective: Objective,
    params: Mapping[str, torch.Tensor],
    task: TTTTask,
    grid_shape: Sequence[int],
    config: TTTConfig,
    rng: np.random.Generator,
) -> TaskResult:
    """Fine-tune on a task's demos, answer its tests by voting, and score pass@1 / pass@2.

    ``params`` is not modified. With ``config.leave_one_out`` and ``k >= 2`` demos, also
    fine-tunes ``k`` times on ``k - 1`` demos and scores the held-out demo (first attempt).
    """
    config = _check_config(config)
    grid_shape = _check_grid_shape(grid_shape)
    cells = grid_shape[0] * grid_shape[1]
    if not isinstance(task, TTTTask):
        raise TypeError(f"task must be a TTTTask, got {type(task).__name__}")
    support_x = _check_grids(f"task {task.task_id} support_x", task.support_x, cells)
    support_y = _check_grids(
        f"task {task.task_id} support_y", task.support_y, cells, rows=len(support_x)
    )
    test_x = _check_grids(f"task {task.task_id} test_x", task.test_x, cells)
    test_y = _check_grids(f"task {task.task_id} test_y", task.test_y, cells, rows=len(test_x))
    tuned = test_time_train(objective, params, support_x, support_y, grid_shape, config, rng)
    candidates, counts = predict_with_voting(objective, tuned, test_x, grid_shape, config, rng)
    pass1, pass2 = pass_at(candidates, test_y)
    loo = None
    if config.leave_one_out and len(support_x) >= 2:
        right = 0
        for held in range(len(support_x)):
            keep = torch.arange(len(support_x)) != held
            loo_params = test_time_train(
                objective, params, support_x[keep], support_y[keep], grid_shape, config, rng
            )
            loo_cand, _ = predict_with_voting(
                objective, loo_params, support_x[held : held + 1], grid_shape, config, rng
            )
            right += int(pass_at(loo_cand, support_y[held : held + 1])[0])
        loo = right / len(support_x)
    return TaskResult(task.task_id, pass1, pass2, candidates, counts, loo)


def evaluate_tasks(
    objective: Objective,
    params: Mapping[str, torch.Tensor],
    tasks: FewShotBatch | Sequence[ARCTask] | Sequence[TTTTask],
    grid_shape: Sequence[int],
    config: TTTConfig,
    rng: np.random.Generator,
) -> tuple[list[TaskResult], dict[str, float]]:
    """:func:`evaluate_task` over a :class:`FewShotBatch`, real ARC tasks, or :class:`TTTTask` s.

    Every task starts from the same ``params`` (tasks do not see each other's fine-tuning).

    Returns:
        ``(results, summary)``; the summary holds ``tasks`` (count), ``pass1`` and ``pass2``
        (fractions of tasks in ``[0, 1]``) and ``loo_accuracy`` (mean over tasks that have it,
        NaN if none).

    Raises:
        ValueError: an ARC grid larger than the canvas (naming the task and sizes), an empty
            task list, or any per-task error.
    """
    if isinstance(tasks, FewShotBatch):
        items = tasks_from_batch(tasks)
    elif isinstance(tasks, Sequence) and tasks and all(isinstance(t, ARCTask) for t in tasks):
        items = tasks_from_arc(tasks, grid_shape)
    elif isinstance(tasks, Sequence) and all(isinstance(t, TTTTask) for t in tasks):
        items = list(tasks)
    else:
        raise TypeError("tasks must be a FewShotBatch, a list of ARCTask or a list of TTTTask")
    if not items:
        raise ValueError("tasks must hold at least one task")
    results = [evaluate_task(objective, params, task, grid_shape, config, rng) for task in items]
    loos = [r.loo_accuracy for r in results if r.loo_accuracy is not None]
    summary = {
        "tasks": float(len(results)),
        "pass1": sum(r.pass1 for r in results) / len(results),
        "pass2": sum(r.pass2 for r in results) / len(results),
        "loo_accuracy": float(np.mean(loos)) if loos else float("nan"),
    }
    return results, summary
