"""Behavioural tests of the continual-learning strategies (``trmgym.plugins.strategies``).

The strategies are hook objects; these tests drive their hooks by hand (no trainer) with tiny
numpy puzzles whose cell values encode the task and row they came from, and with a one-layer
``nn.Linear`` whose loss gradients are known in closed form (for the EWC Fisher).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from trmgym.plugins.strategies import (
    EWC,
    STRATEGIES,
    Multitask,
    PuzzleMemory,
    Replay,
    Scratch,
    Strategy,
    TaskDirective,
    make_strategy,
)

GRID = (2, 2)
#: Row codes of :func:`tagged` puzzles: ``task * CODE_STRIDE + row`` (fits the int8 memory).
CODE_STRIDE = 40


def task_sampler(task: int, n: int) -> PuzzleMemory:
    """Fresh puzzles whose every cell (grid and target) holds the task index."""
    return PuzzleMemory(np.full((n, *GRID), task), np.full((n, *GRID), task), np.full(n, task))


def build(
    config: dict[str, Any],
    *,
    batch_size: int = 64,
    seed: int = 0,
    sampler: Callable[[int, int], PuzzleMemory] | None = task_sampler,
) -> Strategy:
    return make_strategy(config, grid_shape=GRID, seed=seed, sampler=sampler, batch_size=batch_size)


def tagged(task: int, start: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` puzzles of ``task``: grid cells hold a unique code, the target holds its negation."""
    assert start + n <= CODE_STRIDE
    codes = task * CODE_STRIDE + start + np.arange(n)
    grid = np.broadcast_to(codes[:, None, None], (n, *GRID)).astype(np.int64)
    return grid, -grid, np.full(n, task, dtype=np.int64)


def row_codes(batch: PuzzleMemory) -> np.ndarray:
    """The code of each replayed row, after checking the row is one consistent tagged puzzle."""
    flat = batch.grid.reshape(len(batch.grid), -1)
    assert (flat == flat[:, :1]).all(), "a replayed grid mixes cells of different puzzles"
    np.testing.assert_array_equal(batch.target, -batch.grid)
    codes = flat[:, 0]
    np.testing.assert_array_equal(codes // CODE_STRIDE, batch.task)
    return codes


def filled_replay(
    *, seed: int = 0, memory_size: int = 64, batch_size: int = 8, **config: Any
) -> Replay:
    """A replay strategy that saw 30 puzzles of task 0 and is now at task 1 (nothing observed)."""
    strategy = build(
        {"name": "replay", "memory_size": memory_size, **config}, batch_size=batch_size, seed=seed
    )
    assert isinstance(strategy, Replay)
    strategy.before_task(0)
    strategy.observe(*tagged(0, 0, 30))
    strategy.before_task(1)
    return strategy


def assert_batches_equal(first: PuzzleMemory | None, second: PuzzleMemory | None) -> None:
    assert (first is None) == (second is None)
    if first is not None and second is not None:
        for a, b in zip(first, second):
            np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- make_strategy


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("naive", Strategy),
        ("scratch", Scratch),
        ("replay", Replay),
        ("multitask", Multitask),
        ("ewc", EWC),
    ],
)
def test_make_strategy_builds_each_name(name: str, cls: type[Strategy]) -> None:
    strategy = build({"name": name}, seed=5)
    assert type(strategy) is cls
    assert strategy.name == name
    assert strategy.sampler is task_sampler
    assert strategy.rng.random() == np.random.default_rng(5).random()


def test_strategy_names_are_the_registry() -> None:
    assert STRATEGIES == (
        "naive",
        "replay",
        "ewc",
        "multitask",
        "scratch",
        "memory",
        "memory_replay",
    )


def test_make_strategy_defaults_to_naive_and_keeps_the_config() -> None:
    assert type(build({})) is Strategy
    config = {"name": "replay", "memory_size": 8}
    build(config)
    assert config == {"name": "replay", "memory_size": 8}


def test_make_strategy_unknown_name_lists_the_choices() -> None:
    with pytest.raises(
        ValueError,
        match=r"strategy must be one of \['naive', 'replay', 'ewc', 'multitask', 'scratch', "
        r"'memory', 'memory_replay'\], got 'sgd'",
    ):
        build({"name": "sgd"})


@pytest.mark.parametrize("name", STRATEGIES)
def test_make_strategy_unknown_argument(name: str) -> None:
    with pytest.raises(ValueError, match=rf"bad arguments for strategy '{name}': .*'mixx'"):
        build({"name": name, "mixx": 0.5})


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "10"])
def test_replay_memory_size_must_be_a_positive_int(value: Any) -> None:
    with pytest.raises(ValueError, match=r"strategy\.memory_size must be an int >= 1"):
        build({"name": "replay", "memory_size": value})


@pytest.mark.parametrize("name", ["replay", "multitask"])
def test_mixing_strategies_check_the_batch_size(name: str) -> None:
    with pytest.raises(ValueError, match=r"strategy\.batch_size must be an int >= 1, got 0"):
        build({"name": name}, batch_size=0)


@pytest.mark.parametrize("name", ["replay", "multitask"])
@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan")])
def test_mix_ratio_out_of_range(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=r"strategy\.mix_ratio must be a number in \[0, 1\], got "):
        build({"name": name, "mix_ratio": value})


@pytest.mark.parametrize("name", ["replay", "multitask"])
@pytest.mark.parametrize("value", [True, False, "0.5"])
def test_mix_ratio_must_be_a_number(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=r"strategy\.mix_ratio must be a number in \[0, 1\]"):
        build({"name": name, "mix_ratio": value})


@pytest.mark.parametrize("name", ["replay", "multitask"])
@pytest.mark.parametrize("value", ["half", None])
def test_mix_ratio_non_number_error_names_the_field(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=r"strategy\.mix_ratio"):
        build({"name": name, "mix_ratio": value})


@pytest.mark.parametrize(
    ("mix_ratio", "batch_size", "expected"),
    [
        (0.5, 64, 32),
        (0.25, 10, 2),  # round(2.5) == 2: Python rounds half to even
        (0.75, 2, 2),  # round(1.5) == 2
        (0.01, 64, 1),
        (1, 7, 7),
        (1.0, 64, 64),
        (0, 64, 0),
    ],
)
def test_mix_ratio_sets_the_mixed_count(mix_ratio: float, batch_size: int, expected: int) -> None:
    assert expected == round(mix_ratio * batch_size)
    replay = filled_replay(mix_ratio=mix_ratio, batch_size=batch_size)
    multitask = build({"name": "multitask", "mix_ratio": mix_ratio}, batch_size=batch_size)
    multitask.before_task(0)
    multitask.before_task(1)
    assert replay.replay_batch_size == multitask.replay_batch_size == expected
    for strategy in (replay, multitask):
        batch = strategy.replay_batch()
        if expected == 0:
            assert batch is None
        else:
            assert batch is not None
            assert [len(field_) for field_ in batch] == [expected] * 3


@settings(max_examples=40, deadline=None)
@given(st.floats(0, 1), st.integers(1, 256))
def test_replay_batch_length_is_round_of_ratio_times_batch(mix_ratio: float, batch: int) -> None:
    expected = round(mix_ratio * batch)
    if mix_ratio > 0 and expected == 0:  # would silently switch replay off: refused
        with pytest.raises(ValueError, match="mixes in no puzzle at all"):
            build({"name": "replay", "mix_ratio": mix_ratio}, batch_size=batch)
        return
    strategy = build({"name": "replay", "memory_size": 4, "mix_ratio": mix_ratio}, batch_size=batch)
    strategy.before_task(0)
    strategy.observe(*tagged(0, 0, 4))
    strategy.before_task(1)
    replayed = strategy.replay_batch()
    assert (0 if replayed is None else len(replayed.task)) == expected


# --------------------------------------------------------------------------- Replay


def test_replay_is_empty_until_a_past_task_exists() -> None:
    strategy = build({"name": "replay", "memory_size": 16, "mix_ratio": 0.5}, batch_size=8)
    assert strategy.replay_batch() is None  # empty memory
    strategy.before_task(0)
    strategy.observe(*tagged(0, 0, 10))
    assert len(strategy.memory) == 10
    assert strategy.replay_batch() is None  # only the current task is stored
    strategy.before_task(1)
    batch = strategy.replay_batch()
    assert batch is not None and len(batch.task) == 4
    assert set(batch.task.tolist()) == {0}


def test_replay_returns_only_past_rows_exactly_as_observed() -> None:
    strategy = filled_replay()
    strategy.observe(*tagged(1, 0, 30))
    assert strategy.memory.counts() == {0: 30, 1: 30}  # 30 < quota 32: nothing evicted
    seen: set[int] = set()
    for _ in range(60):
        batch = strategy.replay_batch()
        assert batch is not None
        assert [a.dtype for a in batch] == [np.dtype(np.int64)] * 3
        assert batch.grid.shape == (4, *GRID) and batch.target.shape == (4, *GRID)  # 0.5 * 8
        codes = row_codes(batch)
        assert set(batch.task.tolist()) == {0}
        assert ((codes >= 0) & (codes < 30)).all()
        seen.update(codes.tolist())
    assert len(seen) >= 25  # sampling covers the memory, not a handful of rows


def test_replay_with_only_past_false_mixes_in_the_current_task() -> None:
    strategy = filled_replay(only_past=False)
    strategy.observe(*tagged(1, 0, 30))
    tasks: set[int] = set()
    for _ in range(20):
        batch = strategy.replay_batch()
        assert batch is not None
        row_codes(batch)
        tasks.update(batch.task.tolist())
    assert tasks == {0, 1}


def test_replay_only_past_is_not_fooled_by_later_tasks() -> None:
    strategy = filled_replay()
    strategy.observe(*tagged(1, 0, 20))
    strategy.before_task(2)
    tasks: set[int] = set()
    for _ in range(30):
        batch = strategy.replay_batch()
        assert batch is not None
        row_codes(batch)
        tasks.update(batch.task.tolist())
    assert tasks == {0, 1}


def test_replay_task_quota_balances_the_memory() -> None:
    strategy = build({"name": "replay", "memory_size": 20})
    strategy.before_task(0)
    strategy.observe(*tagged(0, 0, 39))
    assert strategy.memory.counts() == {0: 20}
    strategy.before_task(1)
    strategy.observe(*tagged(1, 0, 39))
    assert strategy.memory.counts() == {0: 10, 1: 10}
    stored = strategy.memory.data["task"][: len(strategy.memory)]
    assert np.bincount(stored).tolist() == [10, 10]


def test_replay_without_quota_keeps_one_shared_reservoir() -> None:
    strategy = build({"name": "replay", "memory_size": 20, "task_quota": False})
    strategy.before_task(0)
    strategy.observe(*tagged(0, 0, 39))
    strategy.before_task(1)
    strategy.observe(*tagged(1, 0, 39))
    assert strategy.memory.counts() == {-1: 20}
    stored = strategy.memory.data["task"][:20]
    assert 0 < int((stored == 1).sum()) < 20  # a uniform sample of both streams


def test_replay_rejects_puzzles_of_another_shape() -> None:
    strategy = build({"name": "replay", "memory_size": 8})
    grid = np.zeros((3, 3, 3), dtype=np.int64)
    with pytest.raises(ValueError, match=r"field 'grid' must have shape \[n, 2, 2\]"):
        strategy.observe(grid, grid, np.zeros(3, dtype=np.int64))


def replay_run(strategy: Strategy, rounds: int = 4) -> list[PuzzleMemory | None]:
    """Alternate observing new task-1 puzzles and drawing replay batches."""
    batches: list[PuzzleMemory | None] = []
    for k in range(rounds):
        strategy.observe(*tagged(1, 5 * k, 5))
        batches.extend(strategy.replay_batch() for _ in range(2))
    return batches


def test_replay_same_seed_same_batches() -> None:
    first = replay_run(filled_replay(seed=7, memory_size=16))
    second = replay_run(filled_replay(seed=7, memory_size=16))
    other = replay_run(filled_replay(seed=8, memory_size=16))
    for a, b in zip(first, second):
        assert_batches_equal(a, b)
    assert any(
        not np.array_equal(a.grid, b.grid)
        for a, b in zip(first, other)
        if a is not None and b is not None
    )


def test_replay_state_round_trip_resumes_exactly() -> None:
    original = filled_replay(seed=3, memory_size=16)
    original.observe(*tagged(1, 0, 12))
    original.replay_batch()
    state = copy.deepcopy(original.state_dict())
    assert state["current"] == 1 and state["tasks_seen"] == [0, 1]

    restored = build({"name": "replay", "memory_size": 16}, batch_size=8, seed=99)
    restored.load_state_dict(state)
    assert restored.current == 1 and restored.tasks_seen == [0, 1]
    assert restored.memory.counts() == original.memory.counts()

    # Observing (reservoir draws) and replaying (index draws) continue identically.
    for a, b in zip(replay_run(original, rounds=3), replay_run(restored, rounds=3)):
        assert a is not None
        assert set(a.task.tolist()) == {0}
        assert_batches_equal(a, b)


def test_replay_state_dict_is_a_snapshot() -> None:
    strategy = filled_replay(memory_size=16)
    state = strategy.state_dict()
    before = copy.deepcopy(state)
    replay_run(strategy)
    np.testing.assert_array_equal(state["memory"]["data"]["grid"], before["memory"]["data"]["grid"])
    assert state["rng"] == before["rng"] and state["memory"]["seen"] == before["memory"]["seen"]


# --------------------------------------------------------------------------- Multitask


def test_multitask_needs_a_sampler() -> None:
    with pytest.raises(ValueError, match="multitask needs a sampler of fresh puzzles"):
        build({"name": "multitask"}, sampler=None)
    with pytest.raises(ValueError, match="multitask needs a sampler"):
        Multitask()


def test_multitask_has_no_batch_during_the_first_task() -> None:
    strategy = build({"name": "multitask", "mix_ratio": 0.5})
    assert strategy.replay_batch() is None
    strategy.before_task(0)
    assert strategy.replay_batch() is None


def test_multitask_draws_fresh_puzzles_of_earlier_tasks_only() -> None:
    calls: list[tuple[int, int]] = []

    def sampler(task: int, n: int) -> PuzzleMemory:
        calls.append((task, n))
        return task_sampler(task, n)

    strategy = build({"name": "multitask", "mix_ratio": 0.5}, sampler=sampler)
    strategy.before_task(0)
    strategy.before_task(1)
    batch = strategy.replay_batch()
    assert batch is not None and calls == [(0, 32)]
    assert batch.grid.shape == (32, *GRID)
    assert (batch.task == 0).all() and (batch.grid == 0).all() and (batch.target == 0).all()

    strategy.before_task(2)
    strategy.before_task(3)
    tasks: set[int] = set()
    for _ in range(50):
        calls.clear()
        batch = strategy.replay_batch()
        assert batch is not None and len(batch.task) == 32
        # One sampler call per drawn task, each asking for a positive share of the 32.
        assert sum(n for _, n in calls) == 32 and all(n > 0 for _, n in calls)
        assert len({t for t, _ in calls}) == len(calls)
        np.testing.assert_array_equal(batch.grid, batch.task[:, None, None] * np.ones(GRID))
        tasks.update(batch.task.tolist())
    assert tasks == {0, 1, 2}


def test_multitask_default_ratio_matches_the_batch() -> None:
    strategy = build({"name": "multitask"}, batch_size=12)
    strategy.before_task(0)
    strategy.before_task(1)
    batch = strategy.replay_batch()
    assert batch is not None and len(batch.task) == 12


def test_multitask_on_a_revisited_task_replays_the_others() -> None:
    strategy = build({"name": "multitask"}, batch_size=200)
    for task in (0, 1, 0):
        strategy.before_task(task)
    batch = strategy.replay_batch()
    assert batch is not None and set(batch.task.tolist()) == {1}
    assert strategy.tasks_seen == [0, 1] and strategy.current == 0


def test_memory_size_accepts_numpy_integers() -> None:
    strategy = build({"name": "replay", "memory_size": np.int64(12)})
    assert isinstance(strategy, Replay) and strategy.memory.capacity == 12


def test_multitask_same_seed_same_batches() -> None:
    def batches(seed: int) -> list[PuzzleMemory | None]:
        strategy = build({"name": "multitask", "mix_ratio": 0.25}, seed=seed)
        for task in range(4):
            strategy.before_task(task)
        return [strategy.replay_batch() for _ in range(5)]

    for a, b in zip(batches(11), batches(11)):
        assert_batches_equal(a, b)
    assert any(
        not np.array_equal(a.task, b.task)
        for a, b in zip(batches(11), batches(12))
        if a is not None and b is not None
    )


# --------------------------------------------------------------------------- EWC


def linear_loss(model: nn.Module) -> Callable[[PuzzleMemory], torch.Tensor]:
    """Mean output of ``model`` over puzzles whose grid is ``[n, 1, 2]``.

    For ``nn.Linear(2, 1)`` and a batch whose cells all hold ``c`` the gradients are
    ``dL/dweight = [[c, c]]`` and ``dL/dbias = [1]``.
    """

    def loss_fn(batch: PuzzleMemory) -> torch.Tensor:
        x = torch.as_tensor(batch.grid, dtype=torch.float32).reshape(len(batch.grid), -1)
        return model(x).mean()

    return loss_fn


def constant_sampler(values: list[float], calls: list[tuple[int, int]] | None = None):
    """A sampler whose successive batches hold ``values[0]``, ``values[1]``, ... in every cell."""
    queue = list(values)

    def sampler(task: int, n: int) -> PuzzleMemory:
        if calls is not None:
            calls.append((task, n))
        c = queue.pop(0)
        return PuzzleMemory(np.full((n, 1, 2), c), np.zeros((n, 1, 2)), np.full(n, task))

    return sampler


def tiny_model(seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(2, 1)


def make_ewc(sampler: Callable[[int, int], PuzzleMemory], *, seed: int = 0, **config: Any) -> EWC:
    strategy = build({"name": "ewc", **config}, sampler=sampler, seed=seed)
    assert isinstance(strategy, EWC)
    return strategy


def test_ewc_penalty_is_none_before_any_task_ends() -> None:
    strategy = make_ewc(task_sampler)
    assert strategy.penalty(tiny_model()) is None
    assert strategy.fisher == {} and strategy.anchor == {}


def test_ewc_fisher_is_the_mean_squared_gradient_over_batches() -> None:
    calls: list[tuple[int, int]] = []
    model = tiny_model()
    strategy = make_ewc(
        constant_sampler([1.0, 2.0, 3.0], calls), fisher_batches=3, fisher_batch_size=5
    )
    strategy.after_task(4, model, linear_loss(model))
    assert calls == [(4, 5)] * 3
    # Mean of squares (1 + 4 + 9) / 3, not the square of the mean gradient (4).
    torch.testing.assert_close(strategy.fisher["weight"], torch.full((1, 2), 14 / 3))
    torch.testing.assert_close(strategy.fisher["bias"], torch.ones(1))
    assert all(p.grad is None for p in model.parameters())
    torch.testing.assert_close(strategy.anchor["weight"], model.weight.detach())
    torch.testing.assert_close(strategy.anchor["bias"], model.bias.detach())
    anchor = strategy.anchor["weight"].clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    torch.testing.assert_close(strategy.anchor["weight"], anchor)  # a copy, not an alias


def test_ewc_penalty_is_zero_at_the_anchor_and_quadratic_around_it() -> None:
    model = tiny_model()
    strategy = make_ewc(constant_sampler([2.0]), fisher_batches=1, ewc_lambda=10.0)
    strategy.after_task(0, model, linear_loss(model))
    fisher_w, fisher_b = 4.0, 1.0

    at_anchor = strategy.penalty(model)
    assert at_anchor is not None and at_anchor.item() == 0.0

    delta_w, delta_b = torch.tensor([[0.5, -1.0]]), torch.tensor([2.0])
    with torch.no_grad():
        model.weight.add_(delta_w)
        model.bias.add_(delta_b)
    expected = 0.5 * 10.0 * (fisher_w * (0.25 + 1.0) + fisher_b * 4.0)
    penalty = strategy.penalty(model)
    assert penalty is not None
    assert penalty.item() == pytest.approx(expected)
    penalty.backward()  # it is a regulariser: d/dθ = λ F (θ − θ*)
    torch.testing.assert_close(model.weight.grad, 10.0 * fisher_w * delta_w)
    torch.testing.assert_close(model.bias.grad, 10.0 * fisher_b * delta_b)


def test_ewc_with_zero_lambda_penalises_nothing() -> None:
    model = tiny_model()
    strategy = make_ewc(constant_sampler([1.0]), fisher_batches=1, ewc_lambda=0)
    strategy.after_task(0, model, linear_loss(model))
    with torch.no_grad():
        model.weight.add_(3.0)
    penalty = strategy.penalty(model)
    assert penalty is not None and penalty.item() == 0.0


@pytest.mark.parametrize(
    ("gamma", "expected_w", "expected_b"), [(0.5, 4.5, 1.5), (1.0, 5.0, 2.0), (0.0, 4.0, 1.0)]
)
def test_ewc_gamma_merges_the_fisher_across_tasks(
    gamma: float, expected_w: float, expected_b: float
) -> None:
    model = tiny_model()
    # Task 0 batches hold 1 (F_w = 1, F_b = 1); task 1 batches hold 2 (F_w = 4, F_b = 1).
    strategy = make_ewc(constant_sampler([1.0, 2.0]), fisher_batches=1, gamma=gamma)
    strategy.after_task(0, model, linear_loss(model))
    with torch.no_grad():
        model.weight.add_(0.25)
    strategy.after_task(1, model, linear_loss(model))
    torch.testing.assert_close(strategy.fisher["weight"], torch.full((1, 2), expected_w))
    torch.testing.assert_close(strategy.fisher["bias"], torch.full((1,), expected_b))
    # θ* moves to the weights at the latest consolidation.
    torch.testing.assert_close(strategy.anchor["weight"], model.weight.detach())
    penalty = strategy.penalty(model)
    assert penalty is not None and penalty.item() == 0.0


def test_ewc_skips_frozen_and_unknown_parameters() -> None:
    model = tiny_model()
    model.bias.requires_grad_(False)
    strategy = make_ewc(constant_sampler([1.0]), fisher_batches=1)
    strategy.after_task(0, model, linear_loss(model))
    assert set(strategy.fisher) == set(strategy.anchor) == {"weight"}
    # A model whose parameter names match nothing consolidated gets no penalty.
    assert strategy.penalty(nn.Sequential(nn.Linear(2, 1))) is None


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"ewc_lambda": -1}, r"strategy\.ewc_lambda must be a number >= 0, got -1"),
        ({"ewc_lambda": float("nan")}, r"strategy\.ewc_lambda must be a number >= 0, got nan"),
        ({"ewc_lambda": "x"}, r"strategy\.ewc_lambda must be a number >= 0, got 'x'"),
        ({"ewc_lambda": True}, r"strategy\.ewc_lambda must be a number >= 0, got True"),
        ({"gamma": -0.1}, r"strategy\.gamma must be a number in \[0, 1\], got -0\.1"),
        ({"gamma": 1.5}, r"strategy\.gamma must be a number in \[0, 1\], got 1\.5"),
        ({"fisher_batches": 0}, r"strategy\.fisher_batches must be an int >= 1, got 0"),
        ({"fisher_batches": True}, r"strategy\.fisher_batches must be an int >= 1, got True"),
        ({"fisher_batch_size": 0}, r"strategy\.fisher_batch_size must be an int >= 1, got 0"),
    ],
)
def test_ewc_rejects_bad_settings(config: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_ewc(task_sampler, **config)


def test_ewc_needs_a_sampler() -> None:
    with pytest.raises(ValueError, match="ewc needs a sampler"):
        build({"name": "ewc"}, sampler=None)


def test_ewc_rejects_a_fractional_number_of_fisher_batches() -> None:
    with pytest.raises(ValueError, match=r"strategy\.fisher_batches"):
        make_ewc(task_sampler, fisher_batches=1.5)


def test_ewc_state_round_trip() -> None:
    model = tiny_model()
    original = make_ewc(constant_sampler([1.0, 3.0]), fisher_batches=2, ewc_lambda=4.0, seed=2)
    original.before_task(0)
    original.after_task(0, model, linear_loss(model))
    state = original.state_dict()

    restored = make_ewc(task_sampler, ewc_lambda=4.0, seed=9)
    restored.load_state_dict(state)
    assert restored.tasks_seen == [0]
    assert restored.rng.random() == original.rng.random()
    for name in ("weight", "bias"):
        torch.testing.assert_close(restored.fisher[name], original.fisher[name])
        torch.testing.assert_close(restored.anchor[name], original.anchor[name])
        assert restored.fisher[name] is not original.fisher[name]  # loaded as copies

    with torch.no_grad():
        model.weight.add_(torch.tensor([[1.0, -2.0]]))
    # F_w = (1 + 9) / 2 = 5: penalty 0.5 * 4 * 5 * (1 + 4) = 50.
    expected = original.penalty(model)
    assert expected is not None and expected.item() == pytest.approx(50.0)
    got = restored.penalty(model)
    assert got is not None and got.item() == pytest.approx(50.0)


# --------------------------------------------------------------------------- Scratch and naive


def test_scratch_asks_for_a_fresh_agent_after_the_first_task() -> None:
    strategy = build({"name": "scratch"})
    assert strategy.before_task(0) == TaskDirective(fresh_agent=False)
    assert strategy.before_task(1) == TaskDirective(fresh_agent=True)
    assert strategy.before_task(2).fresh_agent is True
    assert strategy.before_task(1).fresh_agent is True
    assert strategy.tasks_seen == [0, 1, 2]


def test_naive_is_a_no_op() -> None:
    strategy = build({"name": "naive"})

    def loss_fn(batch: PuzzleMemory) -> torch.Tensor:
        raise AssertionError("naive must not evaluate the loss")

    model = tiny_model()
    weights = model.weight.detach().clone()
    for task in (2, 0, 2, 1):
        assert strategy.before_task(task).fresh_agent is False
        strategy.observe(*tagged(0, 0, 3))
        assert strategy.replay_batch() is None
        assert strategy.penalty(model) is None
        strategy.after_task(task, model, loss_fn)
    assert strategy.tasks_seen == [2, 0, 1]
    torch.testing.assert_close(model.weight.detach(), weights)


def test_base_state_round_trip_restores_rng_and_tasks() -> None:
    original = build({"name": "scratch"}, seed=4)
    for task in (0, 1):
        original.before_task(task)
    original.rng.random(3)
    restored = build({"name": "scratch"}, seed=0)
    restored.load_state_dict(copy.deepcopy(original.state_dict()))
    assert restored.tasks_seen == [0, 1]
    np.testing.assert_array_equal(restored.rng.random(4), original.rng.random(4))
    assert restored.before_task(2).fresh_agent is True and restored.tasks_seen == [0, 1, 2]


def test_a_leftover_replay_batch_size_points_to_mix_ratio() -> None:
    with pytest.raises(ValueError, match="replay_batch_size was replaced by strategy.mix_ratio"):
        build({"name": "replay", "replay_batch_size": 32})


@pytest.mark.parametrize("value", [float("inf"), -float("inf")])
def test_infinite_settings_are_refused(value: float) -> None:
    with pytest.raises(ValueError, match=r"strategy\.ewc_lambda must be a number >= 0"):
        build({"name": "ewc", "ewc_lambda": value})


def test_state_without_current_task_loads_as_the_last_seen() -> None:
    strategy = build({"name": "multitask"})
    state = strategy.state_dict()
    state.update(tasks_seen=[0, 1])
    del state["current"]  # a checkpoint from before `current` was saved
    strategy.load_state_dict(state)
    assert strategy.current == 1


# ------------------------------------------------------------ faults found from outside
class ForwardingReplay(Replay):
    """A user's strategy whose constructor forwards ``**kwargs`` to its base."""

    name = "forwarding"

    def __init__(self, *, boost: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.boost = boost


def test_a_strategy_forwarding_kwargs_gets_exactly_what_its_bases_take() -> None:
    strategy = make_strategy(
        {"name": "forwarding", "_target_": f"{__name__}.ForwardingReplay", "boost": 2.0},
        grid_shape=GRID,
        seed=0,
        sampler=task_sampler,
        batch_size=8,
        num_tasks=2,
    )
    assert isinstance(strategy, ForwardingReplay) and strategy.boost == 2.0
    assert strategy.replay_batch_size == 4 and strategy.memory.data["grid"].shape[1:] == GRID


@pytest.mark.parametrize("name", ["replay", "multitask"])
def test_a_mix_ratio_that_rounds_to_no_puzzle_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match=r"strategy.mix_ratio=0.5 with run.batch_size=1 mixes in"):
        make_strategy(
            {"name": name, "mix_ratio": 0.5},
            grid_shape=GRID,
            seed=0,
            sampler=task_sampler,
            batch_size=1,
        )
    assert (
        make_strategy(
            {"name": name, "mix_ratio": 0.0}, grid_shape=GRID, seed=0, sampler=task_sampler
        ).replay_batch_size
        == 0
    )


def test_ewc_state_loaded_on_the_cpu_follows_the_model_to_its_device() -> None:
    model = nn.Linear(2, 1, bias=False)
    trained = make_ewc(constant_sampler([1.0]), fisher_batches=1)
    trained.after_task(0, model, lambda batch: model(torch.ones(1, 2)).sum())
    restored = make_ewc(constant_sampler([1.0]), fisher_batches=1)
    restored.load_state_dict(copy.deepcopy(trained.state_dict()))  # tensors on the CPU
    on_meta = copy.deepcopy(model).to("meta")  # stands in for a CUDA model
    penalty = restored.penalty(on_meta)
    assert penalty.device.type == "meta"
    assert restored.fisher["weight"].device.type == "meta"
