"""Tests of the TRM agent: acting, deep-supervision learning, halting, carries and checkpoints."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from trmgym.agents.halting import DQNHalting
from trmgym.agents.trm_agent import AgentCarry, TRMAgent, TRMAgentConfig, resolve_device
from trmgym.checkpoint import from_tensors, to_tensors
from trmgym.envs.tokens import DIGIT_BLANK, DIGIT_OFFSET, VOCAB_SIZE
from trmgym.plugins import PuzzleMemory

CANVAS = (4, 4)
CELLS = CANVAS[0] * CANVAS[1]
TINY_MODEL = {"h_cycles": 1, "l_cycles": 1, "hidden_size": 32, "num_heads": 2}
SMALL_DQN = {"hidden": 32, "batch_size": 16, "learning_starts": 8, "buffer_size": 512}


def make_agent(halting: str = "bce", *, seed: int = 0, max_steps: int = 4, **overrides) -> TRMAgent:
    settings = dict(size="tiny", model=dict(TINY_MODEL), halting=halting, dqn=dict(SMALL_DQN))
    config = TRMAgentConfig(**{**settings, **overrides})
    return TRMAgent(config, canvas=CANVAS, max_steps=max_steps, seed=seed, device="cpu")


def puzzle_batch(batch: int, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Sudoku-like toy puzzles: the target holds digits 1-4, the grid blanks a few cells."""
    rng = np.random.default_rng(seed)
    target = DIGIT_OFFSET + rng.integers(1, 5, size=(batch, *CANVAS))
    grid = np.where(rng.random((batch, *CANVAS)) < 0.3, DIGIT_BLANK, target)
    obs = {"grid": grid.astype(np.int64), "task_id": np.zeros(batch, dtype=np.int64)}
    return obs, target.astype(np.int64)


def params(agent: TRMAgent) -> list[torch.Tensor]:
    return [p.detach().clone() for p in agent.model.parameters()]


def one_update(agent: TRMAgent, obs, target, carry=None, **learn_kwargs) -> dict[str, float]:
    batch = len(target)
    carry = agent.initial_carry(batch) if carry is None else carry
    agent.act(obs, carry, explore=True, learn=True)
    return agent.learn(target, np.zeros(batch), np.ones(batch, dtype=bool), **learn_kwargs)


# -------------------------------------------------------------------------------- devices
def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_resolve_device_refuses_cuda_without_cuda(device: str) -> None:
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device(device)
    with pytest.raises(ValueError, match="CUDA is not available"):
        TRMAgent(TRMAgentConfig(model=dict(TINY_MODEL)), canvas=CANVAS, device=device)


# --------------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (dict(halting="ppo"), "agent.halting"),
        (dict(size="huge"), "agent.size"),
        (dict(lr=0.0), "agent.lr"),
        (dict(lr=-1e-3), "agent.lr"),
        (dict(lr="fast"), "agent.lr"),
        (dict(weight_decay=-0.1), "agent.weight_decay"),
        (dict(grad_clip=-1.0), "agent.grad_clip"),
        (dict(halt_loss_weight=-0.5), "agent.halt_loss_weight"),
        (dict(beta2=1.0), "agent.beta2"),
        (dict(ema_decay=1.0), "agent.ema_decay"),
        (dict(warmup_steps=-1), "agent.warmup_steps"),
        (dict(dqn={"gamma": 2.0}), "gamma"),
        (dict(dqn={"q_head": "lstm"}), "q_head"),
    ],
)
def test_config_errors_name_the_key(overrides: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        TRMAgentConfig(**overrides)


def test_config_accepts_a_dqn_dict() -> None:
    config = TRMAgentConfig(dqn={"q_head": "gru", "gamma": 0.5})
    assert config.dqn.q_head == "gru" and config.dqn.gamma == 0.5


def test_model_overrides_and_halting_choice_reach_the_agent() -> None:
    bce, dqn = make_agent("bce"), make_agent("dqn", max_steps=6)
    assert bce.model_config.hidden_size == 32 and bce.model_config.seq_len == CELLS
    assert (bce.model_config.grid_height, bce.model_config.grid_width) == CANVAS
    assert bce.dqn is None
    assert isinstance(dqn.dqn, DQNHalting) and dqn.dqn.max_steps == 6
    assert dqn.dqn.config.hidden == 32


# --------------------------------------------------------------------------------- acting
@pytest.mark.parametrize("halting", ["bce", "dqn"])
def test_act_returns_a_batched_env_action_and_advances_the_carry(halting: str) -> None:
    agent = make_agent(halting)
    obs, _ = puzzle_batch(8)
    carry = agent.initial_carry(8)
    assert isinstance(carry, AgentCarry)
    assert carry.steps.tolist() == [0] * 8 and (carry.answer == -1).all()
    action, carry = agent.act(obs, carry)
    assert set(action) == {"answer", "halt"}
    answer, halt = action["answer"], action["halt"]
    assert answer.shape == (8, *CANVAS) and answer.dtype == np.int64
    assert answer.min() >= 0 and answer.max() < VOCAB_SIZE
    assert halt.shape == (8,) and halt.dtype == np.int64 and set(halt.tolist()) <= {0, 1}
    assert carry.steps.tolist() == [1] * 8
    np.testing.assert_array_equal(carry.answer.numpy(), answer.reshape(8, -1))
    _, carry = agent.act(obs, carry)
    assert carry.steps.tolist() == [2] * 8


def test_greedy_acting_is_deterministic_and_seeded() -> None:
    obs, _ = puzzle_batch(8)
    runs = []
    for seed in (0, 0, 1):
        agent = make_agent("dqn", seed=seed)
        action, _ = agent.act(obs, agent.initial_carry(8))
        runs.append(action)
    np.testing.assert_array_equal(runs[0]["answer"], runs[1]["answer"])
    np.testing.assert_array_equal(runs[0]["halt"], runs[1]["halt"])
    assert not np.array_equal(runs[0]["answer"], runs[2]["answer"])


@pytest.mark.parametrize("halting", ["bce", "dqn"])
def test_the_last_allowed_step_forces_halt(halting: str) -> None:
    max_steps = 3
    # ε = 0 so the DQN head halts only where its Q says so (or at the limit)
    agent = make_agent(
        halting, max_steps=max_steps, dqn={**SMALL_DQN, "eps_start": 0.0, "eps_end": 0.0}
    )
    obs, _ = puzzle_batch(16)
    carry = agent.initial_carry(16)
    halts = []
    for _ in range(max_steps):
        action, carry = agent.act(obs, carry, explore=True)
        halts.append(action["halt"])
    assert halts[-1].tolist() == [1] * 16
    if halting == "bce":  # q_halt starts near -5: the fresh classifier never halts by itself
        assert halts[0].tolist() == [0] * 16 and halts[1].tolist() == [0] * 16
    # puzzles already past the limit (not reset) keep being told to halt
    action, _ = agent.act(obs, carry)
    assert action["halt"].tolist() == [1] * 16


@pytest.mark.parametrize(
    "q_head",
    [
        "mlp",
        "gru",
        "attention",
    ],
)
def test_every_q_head_acts_and_learns_inside_the_agent(q_head: str) -> None:
    agent = make_agent("dqn", dqn={**SMALL_DQN, "q_head": q_head, "learning_starts": 8})
    obs, target = puzzle_batch(8)
    one_update(agent, obs, target)
    metrics = one_update(agent, obs, target)
    assert metrics["halt/td_loss"] >= 0


def test_reset_carry_resets_only_masked_rows() -> None:
    agent = make_agent("dqn", dqn={**SMALL_DQN, "q_head": "gru"})
    obs, _ = puzzle_batch(6)
    fresh = agent.initial_carry(6)
    _, carry = agent.act(obs, fresh)
    _, carry = agent.act(obs, carry)
    assert not torch.equal(carry.q_state, fresh.q_state)  # the GRU state moved
    mask = np.array([True, False, True, False, False, True])
    reset = agent.reset_carry(carry, mask)
    rows, keep = torch.from_numpy(mask), torch.from_numpy(~mask)
    assert reset.steps.tolist() == [0, 2, 0, 2, 2, 0]
    assert (reset.answer[rows] == -1).all()
    assert torch.equal(reset.answer[keep], carry.answer[keep])
    for name in ("y", "z"):
        assert torch.equal(getattr(reset.trm, name)[rows], getattr(fresh.trm, name)[rows])
        assert torch.equal(getattr(reset.trm, name)[keep], getattr(carry.trm, name)[keep])
    assert torch.equal(reset.q_state[rows], fresh.q_state[rows])
    assert torch.equal(reset.q_state[keep], carry.q_state[keep])
    # a torch mask works too, and an all-false mask changes nothing
    again = agent.reset_carry(carry, torch.from_numpy(mask))
    assert torch.equal(again.steps, reset.steps)
    assert agent.reset_carry(carry, np.zeros(6, dtype=bool)) is carry


# ------------------------------------------------------------------------------- learning
def test_learn_needs_a_preceding_learning_act() -> None:
    agent = make_agent()
    obs, target = puzzle_batch(8)
    with pytest.raises(RuntimeError, match="act"):
        agent.learn(target, np.zeros(8), np.ones(8, dtype=bool))
    agent.act(obs, agent.initial_carry(8))  # learn=False keeps no graph
    with pytest.raises(RuntimeError, match="act"):
        agent.learn(target, np.zeros(8), np.ones(8, dtype=bool))
    one_update(agent, obs, target)
    with pytest.raises(RuntimeError, match="act"):  # one learn per learning act
        agent.learn(target, np.zeros(8), np.ones(8, dtype=bool))


@pytest.mark.parametrize("halting", ["bce", "dqn"])
def test_learn_reports_metrics_and_changes_parameters(halting: str) -> None:
    agent = make_agent(halting, warmup_steps=10, lr=2e-3)
    obs, target = puzzle_batch(8)
    before = params(agent)
    metrics = one_update(agent, obs, target)
    expected = {
        "train/loss",
        "train/ce",
        "train/exact",
        "train/cell_accuracy",
        "train/grad_norm",
        "train/lr",
    }
    assert expected <= set(metrics)
    assert ("halt/bce_loss" in metrics) == (halting == "bce")
    assert metrics["train/ce"] > 0 and 0 <= metrics["train/cell_accuracy"] <= 1
    assert metrics["train/lr"] == pytest.approx(2e-3 / 10)  # first of 10 warm-up steps
    if halting == "bce":
        weight = agent.config.halt_loss_weight
        assert metrics["train/loss"] == pytest.approx(
            metrics["train/ce"] + weight * metrics["halt/bce_loss"], rel=1e-5
        )
    else:
        assert metrics["train/loss"] == pytest.approx(metrics["train/ce"], rel=1e-6)
    assert agent.updates == 1
    changed = [not torch.equal(a, b) for a, b in zip(before, agent.model.parameters())]
    assert sum(changed) >= len(changed) // 2


@pytest.mark.parametrize("halting", ["bce", "dqn"])
def test_cross_entropy_falls_on_a_fixed_batch(halting: str) -> None:
    def losses(seed: int) -> list[float]:
        agent = make_agent(halting, seed=seed, warmup_steps=0, lr=3e-3)
        obs, target = puzzle_batch(16, seed=1)
        return [one_update(agent, obs, target)["train/ce"] for _ in range(30)]

    curve = losses(0)
    assert np.mean(curve[-5:]) < 0.5 * np.mean(curve[:5])
    assert curve == losses(0)  # same seed, same curve


def test_dqn_transitions_enter_replay_when_their_next_state_is_known() -> None:
    agent = make_agent("dqn")
    obs, target = puzzle_batch(8)
    carry = agent.initial_carry(8)
    done = np.array([True, True, True, False, False, False, False, False])
    _, carry = agent.act(obs, carry, explore=True, learn=True)
    agent.learn(target, np.full(8, -0.01), done)
    assert len(agent.dqn.buffer) == 3  # finished puzzles are terminal transitions right away
    np.testing.assert_array_equal(agent.dqn.buffer.data["done"][:3], np.ones(3))
    carry = agent.reset_carry(carry, done)
    agent.act(obs, carry, explore=True, learn=True)
    assert len(agent.dqn.buffer) == 8  # the five open ones got their next state
    stored = agent.dqn.buffer.data
    np.testing.assert_array_equal(stored["done"][3:8], np.zeros(5))
    np.testing.assert_array_equal(stored["step"][3:8], np.zeros(5))
    np.testing.assert_array_equal(stored["next_step"][3:8], np.ones(5))
    np.testing.assert_allclose(stored["reward"][:8], np.full(8, -0.01))
    agent.begin_chunk()  # a new env: in-flight steps are forgotten
    with pytest.raises(RuntimeError, match="act"):
        agent.learn(target, np.zeros(8), done)


def test_dqn_halting_head_learns_once_warm() -> None:
    agent = make_agent("dqn", dqn={**SMALL_DQN, "learning_starts": 16})
    obs, target = puzzle_batch(8)
    first, second = one_update(agent, obs, target), one_update(agent, obs, target)
    assert "halt/td_loss" not in first  # 8 transitions: still warming up
    assert {"halt/td_loss", "halt/q_mean", "halt/epsilon"} <= set(second)


def test_replay_adds_a_weighted_replay_loss() -> None:
    agent = make_agent("dqn")
    obs, target = puzzle_batch(8)
    replay_obs, replay_target = puzzle_batch(4, seed=3)
    replay = PuzzleMemory(replay_obs["grid"], replay_target, np.zeros(4, dtype=np.int64))
    metrics = one_update(agent, obs, target, replay=replay)
    assert metrics["train/replay_ce"] > 0
    # four replayed puzzles next to a batch of eight weigh half
    assert metrics["train/loss"] == pytest.approx(
        metrics["train/ce"] + 0.5 * metrics["train/replay_ce"], rel=1e-5
    )
    assert "train/replay_ce" not in one_update(agent, obs, target)


def test_penalty_is_added_and_reported() -> None:
    agent = make_agent("dqn")
    obs, target = puzzle_batch(8)
    seen: list[torch.nn.Module] = []

    def penalty(model: torch.nn.Module) -> torch.Tensor:
        seen.append(model)
        return 0.01 * sum(p.pow(2).sum() for p in model.parameters())

    expected = float(penalty(agent.model))
    metrics = one_update(agent, obs, target, penalty=penalty)
    assert seen[-1] is agent.model
    assert metrics["train/penalty"] == pytest.approx(expected, rel=1e-6)
    assert metrics["train/loss"] == pytest.approx(metrics["train/ce"] + expected, rel=1e-5)
    none = one_update(agent, obs, target, penalty=lambda model: None)
    assert "train/penalty" not in none


def test_eval_weights_swap_in_the_ema_and_back() -> None:
    agent = make_agent("bce", warmup_steps=0)
    obs, target = puzzle_batch(8)
    for _ in range(3):
        one_update(agent, obs, target)
    live = params(agent)
    with agent.eval_weights() as model:
        inside = [p.detach().clone() for p in model.parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(live, inside))
    assert all(torch.equal(a, b) for a, b in zip(live, agent.model.parameters()))


# ----------------------------------------------------------------------------- checkpoint
@pytest.mark.parametrize("halting", ["bce", "dqn"])
def test_checkpoint_round_trip_is_bit_exact(halting: str) -> None:
    obs, target = puzzle_batch(8)
    original = make_agent(halting, seed=0, warmup_steps=3)
    for _ in range(4):
        one_update(original, obs, target)
    original.begin_chunk()  # checkpoints are taken between training chunks
    handle = io.BytesIO()
    torch.save(to_tensors(original.state_dict()), handle)
    handle.seek(0)
    state = from_tensors(torch.load(handle, weights_only=True))

    restored = make_agent(halting, seed=7, warmup_steps=3)
    restored.load_state_dict(state)
    assert restored.updates == original.updates == 4
    for a, b in zip(original.model.parameters(), restored.model.parameters()):
        assert torch.equal(a, b)

    carry_a, carry_b = original.initial_carry(8), restored.initial_carry(8)
    for _ in range(2):
        action_a, carry_a = original.act(obs, carry_a, explore=True, learn=True)
        action_b, carry_b = restored.act(obs, carry_b, explore=True, learn=True)
        np.testing.assert_array_equal(action_a["answer"], action_b["answer"])
        np.testing.assert_array_equal(action_a["halt"], action_b["halt"])
        done = np.zeros(8, dtype=bool)
        metrics_a = original.learn(target, np.full(8, -0.01), done)
        metrics_b = restored.learn(target, np.full(8, -0.01), done)
        assert metrics_a == metrics_b
    with original.eval_weights(), restored.eval_weights():
        greedy_a, _ = original.act(obs, original.initial_carry(8))
        greedy_b, _ = restored.act(obs, restored.initial_carry(8))
    np.testing.assert_array_equal(greedy_a["answer"], greedy_b["answer"])


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow
@pytest.mark.parametrize("halting", ["bce", "dqn"])
def test_training_on_sudoku_4x4_improves_evaluation(halting: str) -> None:
    from trmgym.runner import TaskSpec, TaskTrainer, evaluate

    task = TaskSpec("sudoku4", "trmgym/Sudoku-v0", {"size": 4, "blanks": 4})
    agent = make_agent(
        halting, warmup_steps=10, dqn={**SMALL_DQN, "batch_size": 32, "learning_starts": 32}
    )

    def held_out() -> float:
        result = evaluate(agent, task, episodes=64, seed=123, max_steps=4, canvas=CANVAS)
        assert 1 <= result.reasoning_steps <= 4 and result.most_reasoning_steps <= 4
        return result.cell_accuracy

    untrained = held_out()
    trainer = TaskTrainer(agent, task, batch_size=32, max_steps=4, canvas=CANVAS, seed=1)
    metrics = trainer.train(150)
    trainer.close()
    assert metrics["train/cell_accuracy"] > 0.7
    trained = held_out()
    assert trained > untrained + 0.3
    assert trained > 0.7


@pytest.mark.parametrize(
    ("model", "tasks", "message"),
    [
        (
            {"num_heads": 5},  # the preset's hidden_size is settable there too: both named
            0,
            "agent.model.hidden_size (64) must be divisible by agent.model.num_heads (5)",
        ),
        (
            {"pos_encoding": "rope", "block": "mlp_mixer"},
            0,
            "agent.model.pos_encoding='rope' needs agent.model.block='attention'; use 'learned' "
            "or 'rowcol'",
        ),
        (  # num_task_embeddings comes from the sequence's task count, not agent.model
            {"puzzle_emb_len": 0},
            3,
            "agent.model.puzzle_emb_len must be >= 1 when num_task_embeddings > 0, got 0",
        ),
        (
            {"num_task_embeddings": 2, "puzzle_emb_len": 0},
            0,
            "agent.model.puzzle_emb_len must be >= 1 when agent.model.num_task_embeddings > 0, "
            "got 0",
        ),
    ],
)
def test_model_errors_name_every_field_where_it_is_set(
    model: dict, tasks: int, message: str
) -> None:
    from trmgym.agents.trm_agent import model_config

    config = TRMAgentConfig(size="tiny", model=model)
    with pytest.raises(ValueError) as refused:
        model_config(config, (4, 4), tasks, torch.device("cpu"))
    assert str(refused.value) == message
