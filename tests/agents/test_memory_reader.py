"""The memory reader inside the TRM: gradients, an empty bank's no-op, tracked reads, writes,
the EMA, checkpoints, torch.func and the config."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch
from torch.func import functional_call, stack_module_state, vmap

from trmgym.agents.memory_reader import MemoryConfig, MemoryReader, WritePolicy
from trmgym.agents.trm import TRM, TRMConfig
from trmgym.agents.trm_agent import TRMAgent, TRMAgentConfig
from trmgym.checkpoint import from_tensors, to_tensors
from trmgym.envs.tokens import VOCAB_SIZE

SEQ = 16
MEMORY = MemoryConfig(capacity=32, key_dim=16, num_heads=4, top_k=8)
CANVAS = (3, 3)
AGENT = TRMAgentConfig(
    size="tiny",
    model={"hidden_size": 32, "num_heads": 2, "h_cycles": 2, "l_cycles": 1},
    halting="bce",
    memory=MemoryConfig(capacity=16, key_dim=8, num_heads=2, top_k=4),
)


def reader_trm(seed: int = 0, **overrides) -> TRM:
    config = TRMConfig.tiny(seq_len=SEQ, num_task_embeddings=2, **overrides)
    torch.manual_seed(seed)
    reader = MemoryReader(MEMORY, config.hidden_size, cycles_per_step=config.h_cycles)
    return TRM(config, cycle_reader=reader)


def fill(reader: MemoryReader, count: int = 10, seed: int = 0, task: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    keys = torch.randn(count, reader.memory.key_dim, generator=generator)
    values = torch.randn(count, reader.memory.value_dim, generator=generator)
    reader.memory.write(keys, values, task=task)


def inputs(batch: int = 4, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, VOCAB_SIZE, (batch, SEQ), generator=generator)
    y = torch.randint(0, VOCAB_SIZE, (batch, SEQ), generator=generator)
    return x, y, torch.arange(batch) % 2


def observation(batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    grid = rng.integers(1, 12, size=(batch, *CANVAS))
    return {"grid": grid, "answer": grid.copy(), "task_id": np.zeros(batch, dtype=np.int64)}


def bank_state(agent: TRMAgent) -> dict[str, torch.Tensor]:
    return {
        k: v.clone()
        for k, v in agent.model.state_dict().items()
        if k.startswith("cycle_reader.memory.") and isinstance(v, torch.Tensor)
    }


# --------------------------------------------------------------------------- the network
def test_gradient_reaches_the_gate_the_query_and_the_output_projection() -> None:
    model = reader_trm()
    reader = model.cycle_reader
    fill(reader)
    x, y, task = inputs()
    model.cross_entropy(model(x, model.initial_carry(4), task).logits, y).backward()
    assert reader.gate.grad is not None and reader.gate.grad.abs().item() > 0
    assert reader.query.weight.grad.abs().sum().item() > 0
    assert reader.out.weight.grad.abs().sum().item() > 0
    assert reader.gate.item() == pytest.approx(0.01)  # starts near zero
    # the bank is buffers: no gradient, no optimizer
    assert not any(name.startswith("cycle_reader.memory") for name, _ in model.named_parameters())


@pytest.mark.parametrize("recorded", [False, True])
def test_an_empty_bank_leaves_the_logits_exactly_unchanged(recorded: bool) -> None:
    config = TRMConfig.tiny(seq_len=SEQ, num_task_embeddings=2)
    torch.manual_seed(0)
    plain = TRM(config)
    model = reader_trm()
    model.load_state_dict(plain.state_dict(), strict=False)  # the same TRM weights
    x, _, task = inputs()
    carry = plain.initial_carry(4)
    reader = model.cycle_reader
    with reader.step(task, record=recorded):
        out = model(x, carry, task)
    want = plain(x, carry, task)
    assert torch.equal(out.logits, want.logits) and torch.equal(out.q_halt, want.q_halt)
    assert torch.equal(out.carry.z, want.carry.z)
    assert reader.memory.reads == (4 if recorded else 0)  # one tracked read of 4 rows, or none
    fill(reader)  # a bank with entries does change the output
    assert not torch.equal(model(x, carry, task).logits, want.logits)


def test_one_tracked_read_per_step_with_the_task_and_a_record_of_the_last_cycle() -> None:
    model = reader_trm(h_cycles=3)
    reader = model.cycle_reader
    fill(reader, task=1)
    x, _, task = inputs()
    model(x, model.initial_carry(4), task)  # outside a step: pure reads
    assert (reader.memory.reads, reader.memory.clock, reader.record) == (0, 10, None)
    with reader.step(task, record=True):
        model(x, model.initial_carry(4), task)
    assert reader.memory.reads == 4 and reader.memory.clock == 11  # 3 cycles, one tracked read
    assert reader.memory.hit_rate == pytest.approx(0.5)  # rows of task 1 hit the task-1 slots
    record = reader.record
    assert record.keys.shape == (4, MEMORY.key_dim) and record.values.shape == (4, 64)
    assert not record.keys.requires_grad and torch.equal(record.task, task)
    with reader.step(task, record=False), torch.no_grad():  # evaluation: untouched
        model(x, model.initial_carry(4), task)
    assert reader.memory.reads == 4 and reader.record is record


def test_vmap_reads_purely_and_a_recorded_step_under_a_transform_is_refused() -> None:
    models = [reader_trm(seed).eval() for seed in range(3)]
    for k, model in enumerate(models):
        fill(model.cycle_reader, seed=k)
    params, buffers = stack_module_state(models)
    x, _, task = inputs()
    carry = models[0].initial_carry(4)

    def logits(p, b):
        return functional_call(models[0], (p, b), (x, carry, task)).logits

    batched = vmap(logits)(params, buffers)
    for k, model in enumerate(models):
        torch.testing.assert_close(batched[k], model(x, carry, task).logits)
    with models[0].cycle_reader.step(task), pytest.raises(RuntimeError, match="torch.func"):
        vmap(logits)(params, buffers)


# ----------------------------------------------------------------------------- the agent
def test_the_agent_with_memory_has_the_same_network_as_without() -> None:
    plain = TRMAgent(dataclasses.replace(AGENT, memory=None), canvas=CANVAS, seed=5, device="cpu")
    agent = TRMAgent(AGENT, canvas=CANVAS, seed=5, device="cpu")
    with_reader = agent.model.state_dict()
    for name, value in plain.model.state_dict().items():
        assert torch.equal(with_reader[name], value), name
    obs = observation(3)
    action, _ = agent.act(obs, agent.initial_carry(3))
    want, _ = plain.act(obs, plain.initial_carry(3))
    assert np.array_equal(action["answer"], want["answer"])


def test_step_writes_only_the_exactly_answered_rows_with_the_policy_task() -> None:
    agent = TRMAgent(AGENT, canvas=CANVAS, seed=0, device="cpu")
    reader = agent.memory_reader
    obs = observation(4)
    action, _ = agent.act(obs, agent.initial_carry(4), learn=True)
    target = action["answer"].copy()
    target[[1, 3]] = (target[[1, 3]] + 1) % VOCAB_SIZE  # rows 1 and 3 answered wrongly
    reader.write_policy = WritePolicy("step", task=2)
    keys = reader.record.keys.clone()
    agent.learn(target, np.array([0.1, 0.2, 0.3, 0.4]), np.zeros(4, dtype=bool))
    bank = reader.memory
    assert len(bank) == 2 and bank.writes == 2
    used = torch.nonzero(bank.used).squeeze(1)
    assert torch.equal(bank.keys[used], keys[[0, 2]])
    assert bank.task[used].tolist() == [2, 2]
    assert bank.reward[used].tolist() == pytest.approx([0.1, 0.3])  # importance: the reward
    reader.write_policy = WritePolicy("episode", task=2)  # episode writes are the strategy's
    agent.act(obs, agent.initial_carry(4), learn=True)
    agent.learn(target, np.zeros(4), np.ones(4, dtype=bool))
    assert bank.writes == 2
    reader.write_policy = None  # no policy: nothing written
    agent.act(obs, agent.initial_carry(4), learn=True)
    agent.learn(target, np.zeros(4), np.ones(4, dtype=bool))
    assert bank.writes == 2


def test_the_ema_never_averages_or_swaps_the_bank() -> None:
    agent = TRMAgent(AGENT, canvas=CANVAS, seed=0, device="cpu")
    reader = agent.memory_reader
    assert not any("memory" in name for name in agent.update_rule.ema.shadow)
    obs = observation(4)
    for _ in range(3):
        action, _ = agent.act(obs, agent.initial_carry(4), learn=True)
        reader.write_policy = WritePolicy("step", task=0)
        agent.learn(action["answer"], np.ones(4), np.zeros(4, dtype=bool))  # every row correct
    assert len(reader.memory) == 12
    live = bank_state(agent)
    keys = reader.memory.keys
    with agent.eval_weights():
        assert reader.memory.keys is keys  # the live bank, not a copy
        for name, value in bank_state(agent).items():
            assert torch.equal(value, live[name]), name
        shadow = agent.update_rule.ema.shadow["cycle_reader.gate"]
        assert torch.equal(reader.gate.detach(), shadow)  # the reader's weights are averaged
        agent.act(obs, agent.initial_carry(4))  # evaluation reads do not touch the bank
    for name, value in bank_state(agent).items():
        assert torch.equal(value, live[name]), name


def test_a_checkpoint_restores_the_bank_bit_exactly_and_it_goes_on_identically() -> None:
    agent = TRMAgent(AGENT, canvas=CANVAS, seed=0, device="cpu")
    obs = observation(4)
    reader = agent.memory_reader
    for _ in range(6):  # overfill (capacity 16): evictions, forgetting, LRU stamps
        action, _ = agent.act(obs, agent.initial_carry(4), learn=True)
        reader.write_policy = WritePolicy("step", task=1)
        agent.learn(action["answer"], np.ones(4), np.zeros(4, dtype=bool))
    assert reader.memory.evictions > 0
    again = TRMAgent(AGENT, canvas=CANVAS, seed=9, device="cpu")
    again.load_state_dict(saved_and_loaded(agent.state_dict()))
    for name, value in bank_state(agent).items():
        assert torch.equal(bank_state(again)[name], value), name
    banks = (agent.memory_reader.memory, again.memory_reader.memory)
    for attribute in ("clock", "writes", "reads", "evictions", "forgotten", "hits", "_size"):
        assert getattr(banks[0], attribute) == getattr(banks[1], attribute), attribute
    for each in (agent, again):  # the same steps from here: the same bank
        action, _ = each.act(obs, each.initial_carry(4), learn=True)
        each.memory_reader.write_policy = WritePolicy("step", task=1)
        each.learn(action["answer"], np.ones(4), np.zeros(4, dtype=bool))
    for name, value in bank_state(agent).items():
        assert torch.equal(bank_state(again)[name], value), name


def saved_and_loaded(state: dict) -> dict:
    """``state`` through a checkpoint file, loaded as trmgym loads them (``weights_only``)."""
    buffer = io.BytesIO()
    torch.save(to_tensors(state), buffer)
    buffer.seek(0)
    return from_tensors(torch.load(buffer, weights_only=True))


# ---------------------------------------------------------------------------- the config
def test_memory_config_from_a_mapping_and_bad_values_name_their_key() -> None:
    config = TRMAgentConfig(memory={"capacity": 128, "replacement": "importance"})
    assert config.memory == MemoryConfig(capacity=128, replacement="importance")
    assert dataclasses.asdict(config)["memory"]["importance_weights"] == [0.3, 0.5, 0.2]
    with pytest.raises(ValueError, match=r"agent\.memory\.capasity is not a memory setting"):
        TRMAgentConfig(memory={"capasity": 128})
    with pytest.raises(ValueError, match=r"agent\.memory\.replacement must be one of"):
        MemoryConfig(replacement="fifo")
    with pytest.raises(ValueError, match=r"agent\.memory\.capacity must be an int >= 1"):
        MemoryConfig(capacity=0)
    with pytest.raises(ValueError, match=r"agent\.memory\.num_heads=3 must divide value_dim=32"):
        TRMAgent(
            dataclasses.replace(AGENT, memory=MemoryConfig(key_dim=6, num_heads=3)),
            canvas=CANVAS,
            device="cpu",
        )
