"""The ``memory`` few-shot method: scoped bank reads, support states, the batched episodic loss
against one bank per task, and the method inside the few-shot run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from trmgym.agents.memory_reader import MemoryConfig
from trmgym.memory import AssociativeMemory
from trmgym.meta.episodic import EpisodicLearner, attach_memory
from trmgym.meta.fewshot import FEWSHOT_FILE, FewShotSplits, best_method, run_fewshot
from trmgym.meta.tasks import FewShotBatch, TRMObjective, arcgen_batch

from .test_fewshot import AGENT, CONFIG, META, model

pytestmark = pytest.mark.usefixtures("one_thread")


def learner(seed: int = 0, **memory) -> EpisodicLearner:
    torch.manual_seed(seed)
    net = model()
    attach_memory(net, MemoryConfig(**memory), seed)
    with torch.no_grad():  # a gate that matters, so the reads change the answers
        net.cycle_reader.gate.fill_(1.0)
    return EpisodicLearner(TRMObjective(net))


def batch(tasks: int = 3, k: int = 2, q: int = 2, seed: int = 0) -> FewShotBatch:
    splits = FewShotSplits(CONFIG)
    rng = np.random.default_rng(seed)
    return arcgen_batch(splits.source, splits.train_ids[:tasks], k, q, rng)


def one(b: FewShotBatch, i: int) -> FewShotBatch:
    return FewShotBatch(*(t[i : i + 1] for t in b))


# ------------------------------------------------------------------------------ the bank
def test_clear_frees_every_slot_and_reads_find_nothing() -> None:
    bank = AssociativeMemory(8, key_dim=4, value_dim=4, num_heads=1, forget_threshold=1.0)
    bank.write(torch.randn(5, 4), torch.randn(5, 4), task=1)
    assert bank.clear() == 5 and len(bank) == 0 and not bank.used.any()
    read = bank.read(torch.randn(2, 4))
    assert not read.found.any() and torch.equal(read.values, torch.zeros(2, 4))
    assert bank.writes == 5  # the counters survive a clear
    bank.write(torch.randn(8, 4), torch.randn(8, 4))  # the whole capacity is free again
    assert len(bank) == 8


@pytest.mark.parametrize("top_k", [None, 4])
def test_a_scoped_read_sees_only_its_tasks_slots(top_k: int | None) -> None:
    bank = AssociativeMemory(8, key_dim=4, value_dim=2, num_heads=1, top_k=top_k, index="exact")
    keys = torch.eye(4)
    values = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 0.0]])
    bank.write(keys, values, task=[0, 0, 1, 2])
    # row 0 asks with task 2's key but is scoped to task 1: it reads task 1's only slot
    queries = torch.stack([keys[3], keys[0], keys[2]]).requires_grad_(True)
    read = bank.read(queries, scope=[1, 2, 5])
    assert read.found.tolist() == [True, True, False]
    assert read.values[0].tolist() == [3.0, 0.0] and read.values[1].tolist() == [4.0, 0.0]
    assert read.values[2].tolist() == [0.0, 0.0]  # no slot of task 5: zeros, not NaN
    assert read.slots.tolist() == [2, 3, -1]
    read.values.sum().backward()
    assert torch.isfinite(queries.grad).all()
    # unscoped, row 0 finds its own key's slot
    assert bank.read(keys[3:4]).slots.tolist() == [3]


def test_a_scope_has_the_rows_shape_and_int_dtype() -> None:
    bank = AssociativeMemory(4, key_dim=4, value_dim=2, num_heads=1)
    bank.write(torch.randn(2, 4), torch.randn(2, 4)[:, :2], task=0)
    with pytest.raises(ValueError, match=r"scope must have shape \[3\]"):
        bank.read(torch.randn(3, 4), scope=[0, 1])
    with pytest.raises(TypeError, match="scope must be"):
        bank.read(torch.randn(1, 4), scope=torch.tensor([0.5]))


# --------------------------------------------------------------------------- the learner
def test_attach_memory_keeps_the_trms_seeded_weights() -> None:
    torch.manual_seed(0)
    plain = model()
    torch.manual_seed(0)
    net = model()
    attach_memory(net, MemoryConfig(), 0)
    for name, value in plain.state_dict().items():
        assert torch.equal(net.state_dict()[name], value), name
    with pytest.raises(ValueError, match="cycle reader already"):
        attach_memory(net, MemoryConfig(), 0)
    with pytest.raises(ValueError, match="needs a TRM with a MemoryReader"):
        EpisodicLearner(TRMObjective(model()))
    with pytest.raises(ValueError, match=r"agent\.memory\.num_heads"):
        attach_memory(model(), MemoryConfig(num_heads=5, key_dim=5), 0)


def test_support_values_hold_the_answer_and_keys_only_the_input() -> None:
    episodic = learner()
    b = batch(tasks=1, k=2)
    sx, sy = b.support_x[0], b.support_y[0]
    keys, values = episodic.support_states(sx, sy)
    assert keys.shape == (2, 64) and values.shape == (2, 32)
    other = torch.where(sy > 1, sy + 1, sy).clamp(max=sy.max())  # another answer, same input
    assert not torch.equal(other, sy)
    keys2, values2 = episodic.support_states(sx, other)
    assert torch.equal(keys, keys2)
    assert not torch.allclose(values, values2)


def test_the_batched_loss_equals_one_bank_per_task() -> None:
    episodic, b = learner(), batch(tasks=3, k=2, q=2)
    params = list(episodic.model.parameters())
    loss = episodic.loss(b)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    per_task = sum(episodic.loss(one(b, i)) for i in range(3)) / 3  # equal grids per task
    expected = torch.autograd.grad(per_task, params, allow_unused=True)
    assert sum(g is not None for g in grads) > len(params) // 2
    assert float(loss.detach()) == pytest.approx(float(per_task.detach()), rel=1e-5)
    for got, want in zip(grads, expected):
        assert (got is None) == (want is None)
        if got is not None:
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    assert len(episodic.reader.memory) == 0  # the bank is left empty
    reader_grad = torch.autograd.grad(episodic.loss(b), episodic.reader.out.weight)[0]
    assert reader_grad.abs().sum() > 0  # the query reads train the reader


def test_accuracy_reads_each_tasks_own_demos_only() -> None:
    episodic, b = learner(), batch(tasks=3, k=2, q=3)
    together = episodic.query_logits(b)
    alone = torch.cat([episodic.query_logits(one(b, i)) for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)
    assert torch.equal(
        episodic.accuracy(b),
        (together.argmax(-1) == b.query_y.flatten(0, 1)).all(-1).float().view(3, 3).mean(1),
    )
    # the reads change the answers: without its demos a query's logits differ
    params = episodic.objective.params()
    with torch.no_grad():
        bare = episodic.objective.step_logits(params, b.query_x[0])[-1]
    assert not torch.allclose(bare, together[:3])
    assert len(episodic.reader.memory) == 0


def test_a_scoped_row_keeps_its_slot_when_other_tasks_match_better() -> None:
    # top_k=1: an unscoped search would pick the other task's closer key for every row
    bank = AssociativeMemory(8, key_dim=4, value_dim=2, num_heads=1, top_k=1, index="exact")
    query = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    keys = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [1.0, 0.1, 0.0, 0.0]])
    bank.write(keys, torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]), task=[0, 1, 0])
    assert bank.read(query).slots.tolist() == [0]
    read = bank.read(query, scope=1)
    assert read.slots.tolist() == [1] and read.values.tolist() == [[2.0, 0.0]]


def test_more_support_states_than_the_bank_holds_are_refused(tmp_path: Path) -> None:
    episodic = learner(capacity=4)
    with pytest.raises(ValueError, match=r"agent\.memory\.capacity: 3 tasks x 2 demos = 6"):
        episodic.accuracy(batch(tasks=3, k=2))
    assert len(episodic.reader.memory) == 0
    # the run refuses it before any method runs: the largest batch is the held-out split's
    # 2 tasks x 2 demos (META: 2 tasks x 2 shots); forgetting starts above 3 of 4 slots
    config = replace(CONFIG, methods=["pretrained", "memory"], arc_tasks=0)
    agent = replace(AGENT, memory=MemoryConfig(capacity=4))
    with pytest.raises(ValueError, match=r"agent\.memory\.capacity: a batch writes up to 4"):
        run_fewshot(config, META, agent, tmp_path, seed=0, make_model=model, say=lambda _: None)
    assert not (tmp_path / FEWSHOT_FILE).exists()
    heads = replace(AGENT, memory=MemoryConfig(num_heads=3, key_dim=6))
    with pytest.raises(ValueError, match=r"agent\.memory\.num_heads"):
        run_fewshot(config, META, heads, tmp_path, seed=0, make_model=model, say=lambda _: None)


# ------------------------------------------------------------------------------ in the run
def test_the_memory_method_is_scored_at_step_zero_and_never_the_ttt_base(tmp_path: Path) -> None:
    config = replace(CONFIG, methods=["pretrained", "memory", "ttt"], arc_tasks=0)
    agent = replace(AGENT, memory=MemoryConfig(capacity=64))
    doc = run_fewshot(config, META, agent, tmp_path, seed=0, make_model=model, say=lambda _: None)
    entries = doc["methods"]["memory"]
    assert {(e["split"], e["k_shot"]) for e in entries} == {
        (s, k) for s in ("heldout_params", "heldout_families") for k in (1, 2)
    }
    assert all(e["steps"] == [0] and len(e["accuracy"]) == 1 for e in entries)
    assert doc["config"]["memory"]["capacity"] == 64
    assert doc["ttt_base"] == "pretrained"
    state = torch.load(tmp_path / "checkpoints" / "fewshot_memory.pt", weights_only=True)
    assert "cycle_reader.gate" in state
    # the same run again resumes nothing and gives the same numbers
    again = run_fewshot(
        config, META, agent, tmp_path / "b", seed=0, make_model=model, say=lambda _: None
    )
    assert again["methods"]["memory"] == entries
    # another bank is another configuration
    with pytest.raises(ValueError, match=r"memory\.capacity was 64, now 4096"):
        run_fewshot(config, META, AGENT, tmp_path, seed=0, make_model=model, say=lambda _: None)
    assert json.loads((tmp_path / FEWSHOT_FILE).read_text())["complete"]


def test_best_method_never_picks_memory() -> None:
    entry = {"split": "heldout_params", "k_shot": 2, "steps": [0], "accuracy": [0.9]}
    low = {"split": "heldout_params", "k_shot": 2, "steps": [0, 5], "accuracy": [0.0, 0.1]}
    assert best_method({"memory": [entry], "pretrained": [low]}, 2) == "pretrained"


def test_a_scoped_read_of_a_faiss_bank_searches_exactly() -> None:
    pytest.importorskip("faiss")
    bank = AssociativeMemory(256, key_dim=8, value_dim=2, num_heads=1, index="faiss", faiss_nlist=2)
    torch.manual_seed(0)
    keys = torch.randn(200, 8)
    bank.write(keys, torch.arange(400.0).view(200, 2), task=torch.arange(200) % 4)
    assert bank._faiss_index is not None  # the index has been trained
    read = bank.read(keys[:8], scope=torch.arange(8) % 4)
    assert read.slots.tolist() == list(range(8))  # each row's own key, in its own scope
    bank.clear()
    assert not bank.read(keys[:2], scope=0).found.any()
