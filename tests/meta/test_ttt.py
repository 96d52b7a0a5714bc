"""Test-time training with augmentation voting (trmgym.meta.ttt)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trmgym.agents.trm import TRM, TRMConfig
from trmgym.envs.arc_data import load_arc_tasks
from trmgym.envs.arcgen import ARCGenSource
from trmgym.envs.augment import augment_grids, dihedral, unaugment_grids
from trmgym.envs.tokens import PAD
from trmgym.meta import ttt
from trmgym.meta.tasks import TRMObjective, arcgen_batch

torch.set_num_threads(1)


def random_grids(rng: np.random.Generator, n: int, canvas: tuple[int, int]) -> np.ndarray:
    """``[n, H*W]`` token grids of random non-square sizes at the top-left of the canvas."""
    height, width = canvas
    grids = np.full((n, height, width), PAD, dtype=np.int64)
    for i in range(n):
        h = int(rng.integers(1, min(height, width) + 1))
        w = int(rng.integers(1, min(height, width) + 1))
        if h == w and w > 1:
            w -= 1
        grids[i, :h, :w] = rng.integers(1, 11, size=(h, w))
    return grids.reshape(n, -1)


def content(flat: np.ndarray, canvas: tuple[int, int]) -> np.ndarray:
    grid = np.asarray(flat).reshape(canvas)
    filled = grid != PAD
    return grid[: int(filled.any(1).sum()), : int(filled.any(0).sum())]


class RuleObjective:
    """A parameter-free 'model' that answers every input by a known rule on its content."""

    def __init__(self, rule, canvas: tuple[int, int]) -> None:
        self.rule, self.canvas = rule, canvas

    def loss(self, params, x, y):  # never called with steps=0 (no trainable params)
        raise AssertionError("RuleObjective has nothing to train")

    def predict(self, params, x):
        out = np.full((len(x), *self.canvas), PAD, dtype=np.int64)
        for i, row in enumerate(x.cpu().numpy()):
            answer = self.rule(content(row, self.canvas))
            out[i, : answer.shape[0], : answer.shape[1]] = answer
        return torch.from_numpy(out.reshape(len(x), -1))


def upscale(grid: np.ndarray) -> np.ndarray:
    """Each cell becomes a 2x2 block: commutes with every dihedral transform and colour map."""
    return np.kron(grid, np.ones((2, 2), dtype=grid.dtype))


# ------------------------------------------------------------------------------ augmentation
def test_augment_demos_is_exactly_invertible_and_fixes_black() -> None:
    rng = np.random.default_rng(3)
    canvas = (6, 6)
    x, y = random_grids(rng, 5, canvas), random_grids(rng, 5, canvas)
    views = ttt.view_augmentations(8, canvas, np.random.default_rng(11))
    x_aug, y_aug = ttt.augment_demos(x, y, canvas, 8, np.random.default_rng(11))
    assert x_aug.shape == (40, 36) and y_aug.shape == (40, 36)
    assert views[0] == ttt.Augmentation()  # identity first: the demos themselves
    assert sorted(v.transform for v in views) == list(range(8))  # all 8 on a square canvas
    assert sum(v.color_perm != tuple(range(10)) for v in views) >= 6  # colours really permuted
    for c, view in enumerate(views):
        assert view.color_perm[0] == 0  # black (token 1) stays black
        rows = slice(5 * c, 5 * c + 5)
        for grids, augmented in ((x, x_aug[rows]), (y, y_aug[rows])):
            grids3 = grids.reshape(5, *canvas)
            expected = augment_grids(grids3, [view] * 5).reshape(5, -1)
            np.testing.assert_array_equal(augmented.numpy(), expected)
            back = unaugment_grids(augmented.numpy().reshape(5, *canvas), [view] * 5)
            np.testing.assert_array_equal(back.reshape(5, -1), grids)
            # black cells count is unchanged and the geometry is np's dihedral transform
            assert (augmented.numpy() == 1).sum() == (grids == 1).sum()
            for i in range(5):
                moved = dihedral(content(grids[i], canvas), view.transform)
                recoloured = np.asarray(view.color_perm)[moved - 1] + 1
                np.testing.assert_array_equal(content(augmented[i].numpy(), canvas), recoloured)
    # a demo's input and output share one augmentation per copy
    for c in range(8):
        assert views[c] == ttt.view_augmentations(8, canvas, np.random.default_rng(11))[c]


def test_non_square_canvas_uses_only_shape_keeping_transforms() -> None:
    views = ttt.view_augmentations(12, (3, 5), np.random.default_rng(0))
    assert {v.transform for v in views} == {0, 2, 4, 5}
    x = random_grids(np.random.default_rng(1), 4, (3, 3))  # 3x3 content fits a 3x5 canvas
    x = np.pad(x.reshape(4, 3, 3), ((0, 0), (0, 0), (0, 2))).reshape(4, 15)
    x_aug, _ = ttt.augment_demos(x, x, (3, 5), 12, np.random.default_rng(0))
    assert x_aug.shape == (48, 15)
    only_identity = ttt.view_augmentations(5, (4, 4), np.random.default_rng(0), dihedral=False)
    assert {v.transform for v in only_identity} == {0}


def test_predictions_in_augmented_frames_map_back_exactly() -> None:
    canvas = (8, 8)
    rng = np.random.default_rng(7)
    test_x = random_grids(rng, 3, (4, 4))  # content <= 4x4, answers <= 8x8
    test_x = np.pad(test_x.reshape(3, 4, 4), ((0, 0), (0, 4), (0, 4))).reshape(3, 64)
    objective = RuleObjective(upscale, canvas)
    config = ttt.TTTConfig(steps=0, vote_augmentations=8)
    candidates, counts = ttt.predict_with_voting(
        objective, {}, test_x, canvas, config, np.random.default_rng(0)
    )
    # every view — 8 transforms with colour permutations — inverts to the one true answer
    assert counts[:, 0].tolist() == [8, 8, 8] and counts[:, 1].tolist() == [0, 0, 0]
    for i in range(3):
        truth = upscale(content(test_x[i], (8, 8)))
        np.testing.assert_array_equal(content(candidates[i, 0].numpy(), canvas), truth)


# ------------------------------------------------------------------------------------ voting
def test_vote_majority_ties_and_top2_order() -> None:
    a, b, c = torch.full((4,), 1), torch.full((4,), 2), torch.full((4,), 3)
    # test 0: c twice, b three times, a once -> b then c
    # test 1: a, b, b, a, c, c -> three-way tie of 2: first appearance wins (a, then b)
    # test 2: all a -> a, and the second attempt repeats a with 0 votes
    predictions = torch.stack(
        [
            torch.stack([c, a, a]),
            torch.stack([b, b, a]),
            torch.stack([c, b, a]),
            torch.stack([b, a, a]),
            torch.stack([a, c, a]),
            torch.stack([b, c, a]),
        ]
    )
    candidates, counts = ttt.vote(predictions)
    assert candidates.shape == (3, 2, 4) and counts.shape == (3, 2)
    assert candidates[0, 0].tolist() == b.tolist() and candidates[0, 1].tolist() == c.tolist()
    assert counts[0].tolist() == [3, 2]
    assert candidates[1, 0].tolist() == a.tolist() and candidates[1, 1].tolist() == b.tolist()
    assert counts[1].tolist() == [2, 2]
    assert candidates[2, 0].tolist() == a.tolist() and candidates[2, 1].tolist() == a.tolist()
    assert counts[2].tolist() == [6, 0]
    # the identity view (view 0) wins a 1-1 tie
    one_each, _ = ttt.vote(torch.stack([c[None], a[None]]))
    assert one_each[0, 0].tolist() == c.tolist() and one_each[0, 1].tolist() == a.tolist()


def test_vote_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="predictions"):
        ttt.vote(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="predictions"):
        ttt.vote(torch.zeros(0, 1, 4))


# ----------------------------------------------------------------------------------- scoring
def test_pass_at_needs_every_test_input() -> None:
    right0, right1 = torch.tensor([1, 2, 0, 0]), torch.tensor([3, 3, 3, 0])
    wrong = torch.tensor([5, 5, 5, 5])
    targets = torch.stack([right0, right1])
    second_only = torch.stack([torch.stack([right0, wrong]), torch.stack([wrong, right1])])
    assert ttt.pass_at(second_only, targets) == (False, True)
    both_first = torch.stack([torch.stack([right0, wrong]), torch.stack([right1, wrong])])
    assert ttt.pass_at(both_first, targets) == (True, True)
    one_missed = torch.stack([torch.stack([right0, right0]), torch.stack([wrong, wrong])])
    assert ttt.pass_at(one_missed, targets) == (False, False)
    # a wrong size (PAD where the target has a cell) is wrong
    short = torch.tensor([1, 2, 0, 0])
    assert ttt.pass_at(torch.stack([short, short])[None], torch.tensor([[1, 2, 1, 0]])) == (
        False,
        False,
    )
    with pytest.raises(ValueError, match="targets"):
        ttt.pass_at(second_only, targets[:1])


# ----------------------------------------------------------------------------- fine-tuning
@pytest.fixture(scope="module")
def colour_map_setup():
    source = ARCGenSource(
        families=["colour_map"], tasks_per_family=2, task_seed=0, min_size=3, max_size=4
    )
    batch = arcgen_batch(source, [0, 1], k=3, q=2, rng=np.random.default_rng(0))
    torch.manual_seed(0)
    model = TRM(TRMConfig.tiny(seq_len=16, hidden_size=32, num_heads=2, num_layers=1))
    return TRMObjective(model), batch


def test_ttt_reduces_demo_loss_and_leaves_params_untouched(colour_map_setup) -> None:
    objective, batch = colour_map_setup
    params = objective.params()
    before = {name: value.detach().clone() for name, value in params.items()}
    # a colour map commutes with the dihedral group, not with colour permutations
    config = ttt.TTTConfig(steps=40, lr=3e-3, batch_size=8, augmentations=8, colors=False)
    tuned = ttt.test_time_train(
        objective, params, batch.support_x[0], batch.support_y[0], (4, 4), config,
        np.random.default_rng(1),
    )  # fmt: skip
    for name, value in params.items():
        assert torch.equal(value, before[name]), f"{name} was modified in place"
        assert tuned[name].data_ptr() != value.data_ptr()
        assert not tuned[name].requires_grad
    with torch.no_grad():
        demo_before = objective.loss(before, batch.support_x[0], batch.support_y[0]).item()
        demo_after = objective.loss(tuned, batch.support_x[0], batch.support_y[0]).item()
        query_before = objective.loss(before, batch.query_x[0], batch.query_y[0]).item()
        query_after = objective.loss(tuned, batch.query_x[0], batch.query_y[0]).item()
    assert demo_after < 0.2 * demo_before
    assert query_after < 0.5 * query_before  # the rule, not just the demos
    zero = ttt.test_time_train(
        objective, params, batch.support_x[0], batch.support_y[0], (4, 4),
        ttt.TTTConfig(steps=0), np.random.default_rng(1),
    )  # fmt: skip
    assert all(torch.equal(zero[name], before[name]) for name in before)


def test_evaluate_tasks_on_a_few_shot_batch(colour_map_setup) -> None:
    objective, batch = colour_map_setup
    config = ttt.TTTConfig(steps=40, lr=3e-3, batch_size=8, augmentations=4, colors=False)
    untrained = ttt.TTTConfig(steps=0, vote_augmentations=4, colors=False)
    results, summary = ttt.evaluate_tasks(
        objective, objective.params(), batch, (4, 4), config, np.random.default_rng(2)
    )
    assert [r.task_id for r in results] == ["0", "1"]
    assert summary["tasks"] == 2 and 0.0 <= summary["pass1"] <= summary["pass2"] <= 1.0
    for r in results:
        assert r.candidates.shape == (2, 2, 16) and r.loo_accuracy is None
        assert r.pass1 == ttt.pass_at(r.candidates, batch.query_y[int(r.task_id)])[0]
    _, base = ttt.evaluate_tasks(
        objective, objective.params(), batch, (4, 4), untrained, np.random.default_rng(2)
    )
    assert base["pass2"] == 0.0  # a random tiny TRM does not solve a colour map untrained
    assert summary["pass2"] > base["pass2"]  # fine-tuning on the demos does


def test_leave_one_out_diagnostic() -> None:
    canvas = (8, 8)
    rng = np.random.default_rng(4)
    xs = np.pad(random_grids(rng, 4, (4, 4)).reshape(4, 4, 4), ((0, 0), (0, 4), (0, 4)))
    answers = [upscale(content(g, canvas)) for g in xs]
    ys = np.stack([np.pad(a, ((0, 8 - a.shape[0]), (0, 8 - a.shape[1]))) for a in answers])
    task = ttt.TTTTask(
        "upscale",
        torch.from_numpy(xs[:3].reshape(3, 64)),
        torch.from_numpy(ys[:3].reshape(3, 64)),
        torch.from_numpy(xs[3:].reshape(1, 64)),
        torch.from_numpy(ys[3:].reshape(1, 64)),
    )
    config = ttt.TTTConfig(steps=0, vote_augmentations=4, leave_one_out=True)
    good = ttt.evaluate_task(
        RuleObjective(upscale, canvas), {}, task, canvas, config, np.random.default_rng(0)
    )
    assert (good.pass1, good.pass2, good.loo_accuracy) == (True, True, 1.0)
    lazy = ttt.evaluate_task(
        RuleObjective(lambda g: g, canvas), {}, task, canvas, config, np.random.default_rng(0)
    )
    assert (lazy.pass1, lazy.pass2, lazy.loo_accuracy) == (False, False, 0.0)
    off = ttt.evaluate_task(
        RuleObjective(upscale, canvas), {}, task, canvas, ttt.TTTConfig(steps=0),
        np.random.default_rng(0),
    )  # fmt: skip
    assert off.loo_accuracy is None


# -------------------------------------------------------------------------------- real ARC
def arc_oracle(task):
    """Answers an input that is a dihedral transform of a test input with the same transform
    of its true output (as a model that solved the task would, in the augmented frame)."""

    def rule(grid: np.ndarray) -> np.ndarray:
        for test_in, test_out in task.test:
            for transform in range(8):
                moved = dihedral(np.asarray(test_in, dtype=np.int64) + 1, transform)
                if moved.shape == grid.shape and np.array_equal(moved, grid):
                    return dihedral(np.asarray(test_out, dtype=np.int64) + 1, transform)
        return grid

    return rule


def test_scoring_on_a_real_arc_evaluation_task() -> None:
    (task,) = load_arc_tasks("arc-agi-1", "evaluation", ["6ea4a07e"])  # 3x3 grids, 2 tests
    assert len(task.test) == 2
    canvas = (3, 3)
    config = ttt.TTTConfig(steps=0, vote_augmentations=8, colors=False)
    results, summary = ttt.evaluate_tasks(
        RuleObjective(arc_oracle(task), canvas), {}, [task], canvas, config,
        np.random.default_rng(0),
    )  # fmt: skip
    assert (results[0].task_id, results[0].pass1, results[0].pass2) == ("6ea4a07e", True, True)
    assert summary["pass1"] == 1.0 and summary["pass2"] == 1.0
    for i, (_, out) in enumerate(task.test):
        np.testing.assert_array_equal(content(results[0].candidates[i, 0].numpy(), canvas), out + 1)
    # answering with the input itself fails the task
    _, copy_summary = ttt.evaluate_tasks(
        RuleObjective(lambda g: g, canvas), {}, [task], canvas, config, np.random.default_rng(0)
    )
    assert copy_summary["pass2"] == 0.0


# ------------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"steps": -1}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"lr": 0.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"batch_size": 0}, "batch_size"),
        ({"augmentations": 0}, "augmentations"),
        ({"vote_augmentations": 0}, "vote_augmentations"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"colors": "yes"}, "colors"),
        ({"leave_one_out": 1}, "leave_one_out"),
    ],
)
def test_config_validation_names_the_field(kwargs, field) -> None:
    with pytest.raises(ValueError, match=field):
        ttt.TTTConfig(**kwargs)


def test_bad_arguments_raise_naming_them(colour_map_setup) -> None:
    objective, batch = colour_map_setup
    params, config, rng = objective.params(), ttt.TTTConfig(steps=1), np.random.default_rng(0)
    (big,) = load_arc_tasks("arc-agi-1", "evaluation", ["be03b35f"])  # 5x5 inputs
    with pytest.raises(ValueError, match=r"be03b35f.*5x5.*canvas 4x4"):
        ttt.evaluate_tasks(objective, params, [big], (4, 4), config, rng)
    with pytest.raises(ValueError, match="seq_len 16"):
        ttt.test_time_train(
            objective, params, torch.ones(2, 25, dtype=torch.long),
            torch.ones(2, 25, dtype=torch.long), (5, 5), config, rng,
        )  # fmt: skip
    with pytest.raises(ValueError, match="grid_shape"):
        ttt.test_time_train(
            objective, params, batch.support_x[0], batch.support_y[0], (4,), config, rng
        )
    with pytest.raises(ValueError, match="support_y|y must hold 3"):
        ttt.test_time_train(
            objective, params, batch.support_x[0], batch.support_y[0, :2], (4, 4), config, rng
        )
    with pytest.raises(ValueError, match="tokens in 0..25"):
        ttt.augment_demos(torch.full((1, 16), 99), torch.ones(1, 16), (4, 4), 2, rng)
    with pytest.raises(ValueError, match="count"):
        ttt.augment_demos(batch.support_x[0], batch.support_y[0], (4, 4), 0, rng)
    with pytest.raises(TypeError, match="config"):
        ttt.test_time_train(
            objective, params, batch.support_x[0], batch.support_y[0], (4, 4), {"steps": 1}, rng
        )
    with pytest.raises(TypeError, match="objective"):
        ttt.test_time_train(
            object(), params, batch.support_x[0], batch.support_y[0], (4, 4), config, rng
        )
    with pytest.raises(TypeError, match="rng"):
        ttt.predict_with_voting(objective, params, batch.query_x[0], (4, 4), config, 0)
