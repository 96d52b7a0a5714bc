"""Tests of the halting heads: TRM's BCE rule and halting as DQN over {continue, halt}."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from trmgym.agents.halting import (
    CONTINUE,
    HALT,
    BCEHalting,
    DQNHalting,
    DQNHaltingConfig,
    QNetwork,
    answer_statistics,
)
from trmgym.checkpoint import from_tensors, to_tensors

MODEL_HIDDEN = 16
FEATURE_DIM = 2 * MODEL_HIDDEN + 3  # (pooled y, pooled z, 3 answer statistics), as the agent's
MAX_STEPS = 4


def make_dqn(seed: int = 0, feature_dim: int = FEATURE_DIM, **overrides) -> DQNHalting:
    settings = dict(hidden=32, batch_size=16, learning_starts=0, buffer_size=256)
    return DQNHalting(
        feature_dim, MAX_STEPS, DQNHaltingConfig(**{**settings, **overrides}), seed=seed
    )


def random_transitions(n: int, seed: int, feature_dim: int = FEATURE_DIM, state: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    return dict(
        features=rng.standard_normal((n, feature_dim)).astype(np.float32),
        step=rng.integers(0, MAX_STEPS, n),
        state=np.zeros((n, state), dtype=np.float32),
        action=rng.integers(0, 2, n),
        reward=rng.standard_normal(n).astype(np.float32),
        next_features=rng.standard_normal((n, feature_dim)).astype(np.float32),
        next_step=rng.integers(0, MAX_STEPS, n),
        next_state=np.zeros((n, state), dtype=np.float32),
        done=(rng.random(n) < 0.3).astype(np.float32),
    )


def via_checkpoint(state: dict) -> dict:
    """The round trip a run's checkpoint takes: safe tensors, torch.save, weights-only load."""
    handle = io.BytesIO()
    torch.save(to_tensors(state), handle)
    handle.seek(0)
    return from_tensors(torch.load(handle, weights_only=True))


# ------------------------------------------------------------------------ answer statistics
def test_answer_statistics_values() -> None:
    # two puzzles of two cells over three tokens; top probabilities chosen by construction
    probs = torch.tensor([[[0.5, 0.25, 0.25], [0.8, 0.1, 0.1]], [[0.2, 0.7, 0.1], [0.1, 0.1, 0.8]]])
    logits = probs.log().requires_grad_(True)
    first = answer_statistics(logits, None)
    assert not first.requires_grad
    torch.testing.assert_close(first[:, 0], torch.tensor([0.65, 0.75]))
    torch.testing.assert_close(first[:, 1], torch.tensor([0.5, 0.7]))
    torch.testing.assert_close(first[:, 2], torch.ones(2))  # nothing to compare with: all new
    previous = torch.tensor([[0, 0], [1, 0]])  # row 0 unchanged; row 1 changed one of two cells
    torch.testing.assert_close(answer_statistics(logits, previous)[:, 2], torch.tensor([0.0, 0.5]))


# ------------------------------------------------------------------------------------ BCE
def test_bce_decides_halt_exactly_when_logit_is_positive() -> None:
    q = torch.tensor([-2.0, -1e-6, 0.0, 1e-6, 3.0], requires_grad=True)
    decision = BCEHalting().decide(q)
    assert decision.dtype == torch.bool
    assert decision.tolist() == [False, False, False, True, True]
    assert not decision.requires_grad


def test_bce_loss_value() -> None:
    halting = BCEHalting()
    zero = halting.loss(torch.zeros(4), torch.tensor([True, False, True, False]))
    assert zero.item() == pytest.approx(np.log(2.0))
    q = torch.tensor([2.0, -1.0])
    expected = -(np.log(1 / (1 + np.exp(-2.0))) + np.log(1 - 1 / (1 + np.exp(1.0)))) / 2
    assert halting.loss(q, torch.tensor([1, 0])).item() == pytest.approx(expected, rel=1e-6)


def test_bce_training_separates_correct_from_wrong_answers() -> None:
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(256, 4, generator=gen)
    correct = features[:, 0] + 0.5 * features[:, 1] > 0  # linearly separable
    torch.manual_seed(0)
    q_halt = torch.nn.Linear(4, 1)
    optimizer = torch.optim.Adam(q_halt.parameters(), lr=0.05)
    halting = BCEHalting()
    losses = []
    for _ in range(150):
        loss = halting.loss(q_halt(features).squeeze(-1), correct)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert losses[-1] < 0.2
    accuracy = (halting.decide(q_halt(features).squeeze(-1)) == correct).float().mean()
    assert accuracy > 0.95


# ------------------------------------------------------------------------------------ DQN
def test_epsilon_decays_linearly_then_stays_constant() -> None:
    dqn = make_dqn(eps_start=0.8, eps_end=0.2, eps_decay_steps=4)
    features = torch.zeros(3, FEATURE_DIM)
    step, state = torch.zeros(3, dtype=torch.long), dqn.initial_state(3)
    seen = [dqn.epsilon]
    for _ in range(6):
        dqn.decide(features, step, state, explore=True)
        seen.append(dqn.epsilon)
    assert seen == pytest.approx([0.8, 0.65, 0.5, 0.35, 0.2, 0.2, 0.2])
    # greedy decisions do not advance the schedule
    dqn.decide(features, step, state, explore=False)
    assert dqn.acting_steps == 6


def test_full_exploration_halts_half_the_time_reproducibly() -> None:
    def halts(seed: int) -> np.ndarray:
        dqn = make_dqn(seed=seed, eps_start=1.0, eps_end=1.0)
        n = 4000
        halt, q, _ = dqn.decide(
            torch.randn(n, FEATURE_DIM, generator=torch.Generator().manual_seed(1)),
            torch.zeros(n, dtype=torch.long),
            dqn.initial_state(n),
            explore=True,
        )
        assert q.shape == (n, 2)
        return halt.numpy()

    first = halts(3)
    assert first.dtype == bool
    assert abs(first.mean() - 0.5) < 0.03
    np.testing.assert_array_equal(first, halts(3))
    assert (first != halts(4)).any()


def test_greedy_decision_is_argmax_q() -> None:
    dqn = make_dqn()
    features = torch.randn(64, FEATURE_DIM, generator=torch.Generator().manual_seed(2))
    steps = torch.arange(64) % (MAX_STEPS + 1)
    halt, q, _ = dqn.decide(features, steps, dqn.initial_state(64), explore=False)
    np.testing.assert_array_equal(halt.numpy(), (q[:, HALT] > q[:, CONTINUE]).numpy())


def test_learn_returns_nothing_while_warming_up() -> None:
    dqn = make_dqn(learning_starts=20)
    assert dqn.learn() == {}  # empty buffer
    dqn.store(**random_transitions(19, seed=0))
    before = [p.detach().clone() for p in dqn.q.parameters()]
    assert dqn.learn() == {}
    for old, new in zip(before, dqn.q.parameters()):
        assert torch.equal(old, new)
    dqn.store(**random_transitions(1, seed=1))
    metrics = dqn.learn()
    assert set(metrics) == {"halt/td_loss", "halt/q_mean", "halt/epsilon"}
    assert metrics["halt/td_loss"] > 0


def test_target_network_is_soft_updated_with_tau() -> None:
    tau = 0.25
    dqn = make_dqn(tau=tau, lr=1e-2)
    dqn.store(**random_transitions(64, seed=0))
    for _ in range(2):  # the second update starts from a target that already lags the online net
        old_target = [p.detach().clone() for p in dqn.q_target.parameters()]
        assert dqn.learn()
        for old, online, target in zip(old_target, dqn.q.parameters(), dqn.q_target.parameters()):
            torch.testing.assert_close(target, (1 - tau) * old + tau * online.detach())
    moved = [not torch.equal(a, b) for a, b in zip(dqn.q.parameters(), dqn.q_target.parameters())]
    assert any(moved)  # soft, not a hard copy
    assert all(not p.requires_grad for p in dqn.q_target.parameters())


def toy_halting_mdp(n: int, rng: np.random.Generator) -> dict:
    """Halting pays 1 from step 2 on and 0 before; continuing costs 0.01. Features are constant,
    so only the step index tells the states apart."""
    step = rng.integers(0, MAX_STEPS, n)
    action = rng.integers(0, 2, n)
    halt = action == HALT
    last = step + 1 >= MAX_STEPS  # the step limit ends the episode either way
    return dict(
        features=np.ones((n, FEATURE_DIM), dtype=np.float32),
        step=step,
        state=np.zeros((n, 1), dtype=np.float32),
        action=action,
        reward=np.where(halt, (step >= 2).astype(np.float32), -0.01).astype(np.float32),
        next_features=np.ones((n, FEATURE_DIM), dtype=np.float32),
        next_step=np.minimum(step + 1, MAX_STEPS),
        next_state=np.zeros((n, 1), dtype=np.float32),
        done=(halt | last).astype(np.float32),
    )


def test_dqn_learns_the_optimal_halting_step_on_a_toy_mdp() -> None:
    dqn = make_dqn(gamma=0.9, tau=0.1, lr=3e-3, batch_size=64, buffer_size=2048)
    dqn.store(**toy_halting_mdp(2048, np.random.default_rng(0)))
    losses = [dqn.learn()["halt/td_loss"] for _ in range(400)]
    assert np.mean(losses[-20:]) < 0.2 * np.mean(losses[:20])
    steps = torch.arange(MAX_STEPS)
    features = torch.ones(MAX_STEPS, FEATURE_DIM)
    halt, q, _ = dqn.decide(features, steps, dqn.initial_state(MAX_STEPS), explore=False)
    # optimal: keep thinking at steps 0 and 1, halt from step 2 on
    assert halt.tolist() == [False, False, True, True]
    # and the Q table is the Bellman solution: halting is terminal; continuing at the last step
    # is truncated (terminal); otherwise Q(t, continue) = -0.01 + 0.9 * max_a Q(t + 1, a)
    bellman = torch.tensor([[-0.01 + 0.9 * 0.89, 0.0], [0.89, 0.0], [0.89, 1.0], [-0.01, 1.0]])
    torch.testing.assert_close(q, bellman, atol=0.05, rtol=0)


@pytest.mark.parametrize(
    "q_head",
    [
        "mlp",
        "gru",
        "attention",
    ],
)
def test_q_heads_give_two_q_values_on_the_agents_features(q_head: str) -> None:
    dqn = make_dqn(q_head=q_head)
    batch = 8
    gen = torch.Generator().manual_seed(0)
    state = dqn.initial_state(batch)
    states = [state]
    for step in range(3):
        features = torch.randn(batch, FEATURE_DIM, generator=gen)
        steps = torch.full((batch,), step)
        halt, q, state = dqn.decide(features, steps, state, explore=False)
        assert q.shape == (batch, 2) and torch.isfinite(q).all()
        assert halt.shape == (batch,) and halt.dtype == torch.bool
        states.append(state)
    if q_head == "gru":
        assert state.shape == (batch, 32)
        for before, after in zip(states, states[1:]):
            assert not torch.allclose(before, after)
    else:
        assert all(torch.equal(s, states[0]) for s in states)


def test_q_network_clamps_steps_beyond_the_limit() -> None:
    torch.manual_seed(0)
    net = QNetwork(feature_dim=6, max_steps=MAX_STEPS, kind="mlp", hidden=8)
    features = torch.randn(1, 6)
    at_limit, _ = net(features, torch.tensor([MAX_STEPS]), torch.zeros(1, 1))
    beyond, _ = net(features, torch.tensor([MAX_STEPS + 7]), torch.zeros(1, 1))
    torch.testing.assert_close(at_limit, beyond)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (dict(q_head="lstm"), "q_head"),
        (dict(hidden=0), "hidden"),
        (dict(hidden=1.5), "hidden"),
        (dict(eps_decay_steps=0), "eps_decay_steps"),
        (dict(buffer_size=True), "buffer_size"),
        (dict(batch_size=-4), "batch_size"),
        (dict(learning_starts=-1), "learning_starts"),
        (dict(gamma=1.5), "gamma"),
        (dict(tau=-0.1), "tau"),
        (dict(eps_start=2.0), "eps_start"),
        (dict(eps_end=-0.5), "eps_end"),
        (dict(lr=0.0), "lr"),
    ],
)
def test_config_errors_name_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"agent\.dqn\.{field} must"):
        DQNHaltingConfig(**overrides)


def test_attention_head_width_is_checked_by_the_config() -> None:
    with pytest.raises(ValueError, match=r"agent\.dqn\.hidden must be divisible by 4"):
        DQNHaltingConfig(q_head="attention", hidden=30)  # 4 attention heads need hidden % 4 == 0


def test_different_seeds_initialise_differently_and_leave_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a, b, a_again = make_dqn(seed=0), make_dqn(seed=1), make_dqn(seed=0)
    torch.testing.assert_close(torch.rand(3), expected)
    wa, wb, wa2 = (d.q.project.weight for d in (a, b, a_again))
    assert torch.equal(wa, wa2)
    assert not torch.equal(wa, wb)


@pytest.mark.parametrize("q_head", ["mlp", "gru"])
def test_state_dict_round_trip_restores_everything(q_head: str) -> None:
    state_width = 32 if q_head == "gru" else 1
    original = make_dqn(seed=0, q_head=q_head, eps_decay_steps=50)
    original.store(**random_transitions(40, seed=0, state=state_width))
    for _ in range(5):
        original.learn()
    probe = torch.randn(6, FEATURE_DIM, generator=torch.Generator().manual_seed(5))
    steps, state = torch.arange(6) % MAX_STEPS, original.initial_state(6)
    for _ in range(3):
        original.decide(probe, steps, state, explore=True)

    restored = make_dqn(seed=99, q_head=q_head, eps_decay_steps=50)
    restored.load_state_dict(via_checkpoint(original.state_dict()))

    assert restored.acting_steps == original.acting_steps == 3
    assert restored.epsilon == original.epsilon
    assert len(restored.buffer) == len(original.buffer) == 40
    assert restored.buffer.pos == original.buffer.pos
    for name, array in original.buffer.data.items():
        np.testing.assert_array_equal(restored.buffer.data[name], array)
    for net in ("q", "q_target"):
        for key, value in getattr(original, net).state_dict().items():
            assert torch.equal(getattr(restored, net).state_dict()[key], value), (net, key)
    # the next epsilon-greedy draws, Q values and TD update are identical
    many = torch.randn(200, FEATURE_DIM, generator=torch.Generator().manual_seed(6))
    many_steps, many_state = torch.zeros(200, dtype=torch.long), original.initial_state(200)
    halt_a, q_a, s_a = original.decide(many, many_steps, many_state, explore=True)
    halt_b, q_b, s_b = restored.decide(many, many_steps, many_state, explore=True)
    assert torch.equal(halt_a, halt_b) and torch.equal(q_a, q_b) and torch.equal(s_a, s_b)
    assert original.learn() == restored.learn()
    for a, b in zip(original.q.parameters(), restored.q.parameters()):
        assert torch.equal(a, b)
