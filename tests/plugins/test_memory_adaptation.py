"""strategy=memory's local adaptation at evaluation (MbPA): the puzzles stored behind the bank's
slots, retrieval, the adapted weights and their exact restoration, and the settings' checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.plugins.test_memory_strategy import ended, memory_agent, observation, train_step
from trmgym.agents.memory_reader import SlotEpisodes
from trmgym.plugins import Memory, Plugins
from trmgym.plugins.strategies import _retrieve


def tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the model's parameters and buffers (its state without the bank's extra state)."""
    return {k: v.clone() for k, v in model.state_dict().items() if torch.is_tensor(v)}


def filled(strategy: Memory, tasks: tuple[int, ...] = (0, 1)) -> tuple[Memory, Plugins, object]:
    """A memory agent whose bank holds 4 solved puzzles of each of ``tasks``."""
    agent = memory_agent()
    plugins = Plugins([strategy])
    for task in tasks:
        plugins.before_task(task)
        train_step(agent, plugins, seed=task)
        ended(plugins, task, rows=[0, 1, 2, 3], solved=[True] * 4)
    return agent, plugins


# ------------------------------------------------------------------------------- stored puzzles
def test_each_solved_puzzle_is_stored_at_the_slot_its_state_took() -> None:
    agent, strategy = memory_agent(), Memory()
    plugins = Plugins([strategy])
    plugins.before_task(1)
    obs = observation(4, seed=0)
    train_step(agent, plugins)  # the targets are the step's own answers
    targets = agent.memory_reader.record.targets
    ended(plugins, 1, rows=[0, 3], solved=[True, True])
    bank = agent.memory_reader.memory
    slots = torch.nonzero(bank.used).squeeze(1).numpy()
    inputs, stored_targets, tasks = strategy.episodes.get(slots)
    assert np.array_equal(inputs, obs["grid"].reshape(4, -1)[[0, 3]])
    assert np.array_equal(stored_targets, targets[[0, 3]].numpy())
    assert tasks.tolist() == [1, 1] and inputs.dtype == np.int64


def test_step_writes_store_their_puzzles_too() -> None:
    agent, strategy = memory_agent(), Memory(write_every="step")
    plugins = Plugins([strategy])
    plugins.before_task(0)
    train_step(agent, plugins, seed=3)
    slots = torch.nonzero(agent.memory_reader.memory.used).squeeze(1).numpy()
    inputs, _, tasks = strategy.episodes.get(slots)
    assert len(slots) == 4 and np.array_equal(inputs, observation(4, 3)["grid"].reshape(4, -1))
    assert tasks.tolist() == [0] * 4


def test_stored_puzzles_round_trip_through_the_strategy_state() -> None:
    strategy = Memory()
    agent, plugins = filled(strategy)
    state = plugins.state_dict()
    fresh = Memory()
    Plugins([fresh]).load_state_dict(state)
    fresh.penalty(agent.model)  # the first update attaches them to the reader
    assert agent.memory_reader.episodes is fresh.episodes
    for name in ("inputs", "targets", "tasks"):
        assert np.array_equal(getattr(fresh.episodes, name), getattr(strategy.episodes, name))
    with pytest.raises(ValueError, match="a checkpoint of 64 slots for a bank of 8"):
        SlotEpisodes(8).load_state_dict(strategy.episodes.state_dict())


def test_a_bank_of_another_canvas_is_refused() -> None:
    episodes = SlotEpisodes(4)
    episodes.put(torch.tensor([0]), torch.zeros(1, 9), torch.zeros(1, 9), 0)
    with pytest.raises(ValueError, match="grids of 9 cells, got 4"):
        episodes.put(torch.tensor([1]), torch.zeros(1, 4), torch.zeros(1, 4), 0)
    with pytest.raises(RuntimeError, match="nothing has been stored"):
        SlotEpisodes(4).get(np.array([0]))


# ------------------------------------------------------------------------------- retrieval
def test_retrieval_takes_the_most_retrieved_stored_puzzles_in_a_fixed_order() -> None:
    keys = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.7, 0.7]])
    queries = torch.tensor([[1.0, 0.05], [1.0, -0.05], [0.05, 1.0]])
    # neighbours=2: q0 -> 0, 1; q1 -> 0, 1; q2 -> 2, 3. Votes 2, 2, 1, 1, 0
    local = _retrieve(queries, keys, neighbours=2, size=10)
    assert local.tolist()[:2] == [0, 1]  # two votes each; 0 is the more similar in total
    assert sorted(local.tolist()[2:]) == [2, 3] and 4 not in local.tolist()
    assert _retrieve(queries, keys, neighbours=2, size=1).tolist() == [0]
    # more neighbours than stored puzzles: every one is retrieved
    assert sorted(_retrieve(queries, keys, neighbours=50, size=10).tolist()) == [0, 1, 2, 3, 4]


def test_with_task_labels_a_puzzle_retrieves_only_its_own_tasks_stored_puzzles() -> None:
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.1, 0.9]])
    queries = torch.tensor([[1.0, 0.0]])  # nearest: key 0, but only keys 1 and 2 are its task's
    allowed = torch.tensor([[False, True, True]])
    assert _retrieve(queries, keys, 1, 10, allowed).tolist() == [2]
    assert _retrieve(queries, keys, 5, 10, allowed).tolist() == [2, 1]
    assert _retrieve(queries, keys, 5, 10, torch.zeros(1, 3, dtype=torch.bool)).tolist() == []


def test_puzzles_of_a_task_with_nothing_stored_are_answered_unadapted() -> None:
    strategy = Memory(adapt_steps=3, adapt_lr=1e-2)
    agent, plugins = filled(strategy, tasks=(0,))
    weights = tensors(agent.model)
    grid = np.ones((2, 3, 3), np.int64)
    with plugins.adapted(agent, grid, np.array([1, 1])):  # task 1 wrote nothing
        assert all(torch.equal(v, weights[k]) for k, v in tensors(agent.model).items())
    with plugins.adapted(agent, grid, np.array([0, 0])):  # task 0 did
        assert any(not torch.equal(v, weights[k]) for k, v in tensors(agent.model).items())


# ------------------------------------------------------------------------------- adaptation
def test_adaptation_changes_the_weights_inside_and_restores_everything_exactly() -> None:
    strategy = Memory(adapt_steps=3, adapt_lr=1e-2)
    agent, plugins = filled(strategy)
    model, bank = agent.model, agent.memory_reader.memory
    for p in model.parameters():  # gradients left over from training must survive
        p.grad = torch.full_like(p, 0.5)
    weights = tensors(model)
    extra = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in bank.get_extra_state().items()}
    slots = torch.nonzero(bank.used).squeeze(1).numpy()
    inputs, targets, tasks = strategy.episodes.get(slots)
    before = float(agent.supervised_loss(inputs, targets, tasks))
    with plugins.adapted(agent, inputs.reshape(-1, 3, 3), tasks):
        moved = any(not torch.equal(v, tensors(model)[k]) for k, v in weights.items())
        inside = float(agent.supervised_loss(inputs, targets, tasks))
    assert moved and inside < before  # the local set is fitted better inside
    for key, value in tensors(model).items():
        assert torch.equal(value, weights[key]), key
    assert all(torch.equal(p.grad, torch.full_like(p, 0.5)) for p in model.parameters())
    for key, value in bank.get_extra_state().items():  # counters and clock: no tracked read
        same = torch.equal(value, extra[key]) if torch.is_tensor(value) else value == extra[key]
        assert same, key


def test_an_adaptation_that_raises_its_own_loss_is_dropped_and_counted() -> None:
    """Adam's first steps at a high adapt_lr overshoot (5 steps once took a solved task's exact
    accuracy from 0.99 to 0.03): such weights are dropped, the puzzles answered unadapted."""
    strategy = Memory(adapt_steps=1, adapt_lr=10.0)  # one huge step: the local loss rises
    agent, plugins = filled(strategy)
    model = agent.model
    weights = tensors(model)
    slots = torch.nonzero(agent.memory_reader.memory.used).squeeze(1).numpy()
    inputs, _, tasks = strategy.episodes.get(slots)
    with plugins.adapted(agent, inputs.reshape(-1, 3, 3), tasks):
        assert all(torch.equal(v, weights[k]) for k, v in tensors(model).items())
    assert (strategy.adaptations, strategy.adaptations_reverted) == (1, 1)
    assert plugins.metrics(model)["memory/adaptations_reverted"] == 1.0
    good = Memory(adapt_steps=3, adapt_lr=1e-2)  # the local loss falls: kept, not counted
    agent, plugins = filled(good)
    with plugins.adapted(agent, inputs.reshape(-1, 3, 3), tasks):
        assert any(not torch.equal(v, weights[k]) for k, v in tensors(agent.model).items())
    assert (good.adaptations, good.adaptations_reverted) == (1, 0)
    state = good.state_dict()  # the counts are checkpointed; older checkpoints start at 0
    assert (state["adaptations"], state["adaptations_reverted"]) == (1, 0)
    restored = Memory()
    restored.load_state_dict({k: v for k, v in state.items() if not k.startswith("adaptations")})
    assert (restored.adaptations, restored.adaptations_reverted) == (0, 0)


def test_an_exception_inside_still_restores_the_weights() -> None:
    strategy = Memory(adapt_steps=2, adapt_lr=1e-2)
    agent, plugins = filled(strategy)
    weights = tensors(agent.model)
    with pytest.raises(KeyError), plugins.adapted(agent, np.ones((2, 3, 3), np.int64), None):
        raise KeyError("boom")
    for key, value in tensors(agent.model).items():
        assert torch.equal(value, weights[key]), key


def test_no_adaptation_without_steps_or_stored_puzzles() -> None:
    agent, plugins = filled(Memory(adapt_steps=0))
    assert plugins[0].adapted(agent, np.ones((2, 3, 3), np.int64), None) is None
    empty = Memory()
    assert empty.adapted(memory_agent(), np.ones((2, 3, 3), np.int64), None) is None


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("adapt_steps", -1, "strategy.adapt_steps must be an integer >= 0"),
        ("adapt_steps", 2.5, "strategy.adapt_steps must be an integer >= 0"),
        ("adapt_steps", True, "strategy.adapt_steps must be an integer >= 0"),
        ("neighbours", 0, "strategy.neighbours must be an integer >= 1"),
        ("adapt_batch", 0, "strategy.adapt_batch must be an integer >= 1"),
        ("adapt_lr", 0.0, r"strategy.adapt_lr must be a finite number > 0"),
        ("adapt_lr", float("nan"), r"strategy.adapt_lr must be a finite number > 0"),
        ("adapt_lr", "fast", r"strategy.adapt_lr must be a finite number > 0"),
        ("adapt_l2", -1.0, r"strategy.adapt_l2 must be a finite number >= 0"),
    ],
)
def test_bad_adaptation_settings_are_refused_naming_the_key(
    key: str, value: object, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        Memory(**{key: value})


def test_the_adaptation_loss_fits_every_reasoning_step() -> None:
    from trmgym.plugins.strategies import _deep_supervision_loss

    agent, _ = filled(Memory())
    agent.max_steps = 3
    grid = observation(4, seed=5)["grid"]
    target = np.roll(grid, 1, axis=1)
    x, y = torch.as_tensor(grid).reshape(4, -1), torch.as_tensor(target).reshape(4, -1)
    carry, losses = agent.model.initial_carry(4, agent.device), []
    for _ in range(3):  # by hand: three steps, each from the last one's (detached) carry
        out = agent.network(x, carry, None)
        losses.append(agent.model.cross_entropy(out.logits, y))
        carry = out.carry
    expected = sum(losses) / 3
    assert torch.allclose(_deep_supervision_loss(agent, grid, target, None), expected)
    assert not torch.allclose(losses[0], losses[2])  # the steps differ: all three count
