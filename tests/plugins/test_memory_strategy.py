"""strategy=memory and memory_replay: what is written, persistence across tasks, the agent.memory
requirement, checkpoints and exact resume, and a CLI run's results and TensorBoard scalars."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.tiny_run import AGENT, SETTINGS, TASKS, interrupt_after_saves
from trmgym import checkpoint
from trmgym.agents.memory_reader import MemoryConfig
from trmgym.agents.trm import TRM, TRMConfig
from trmgym.agents.trm_agent import TRMAgent
from trmgym.experiment import ContinualRun
from trmgym.plugins import Memory, MemoryReplay, Plugins, PuzzleMemory, make_strategy

ROOT = Path(__file__).resolve().parents[2]
CANVAS = (3, 3)
MEMORY_AGENT = dataclasses.replace(
    AGENT, memory=MemoryConfig(capacity=64, key_dim=16, num_heads=2, top_k=8)
)


def observation(batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    grid = rng.integers(1, 12, size=(batch, *CANVAS))
    return {"grid": grid, "answer": grid.copy(), "task_id": np.zeros(batch, dtype=np.int64)}


def train_step(
    agent: TRMAgent, plugins: Plugins, *, reward: np.ndarray | None = None, seed: int = 0
) -> None:
    """One act + learn as the TaskTrainer does it (the plugins' penalty inside the update)."""
    batch = 4
    action, _ = agent.act(observation(batch, seed), agent.initial_carry(batch), learn=True)
    reward = np.arange(1, batch + 1, dtype=np.float32) if reward is None else reward
    agent.learn(action["answer"], reward, np.ones(batch, dtype=bool), penalty=plugins.penalty)


def ended(plugins: Plugins, task: int, rows: list[int], solved: list[bool]) -> None:
    n = len(rows)
    plugins.on_episodes_end(
        task, np.array(rows), np.array(solved), np.ones(n), np.ones(n, np.int64), [None] * n
    )


def memory_agent(seed: int = 0) -> TRMAgent:
    return TRMAgent(MEMORY_AGENT, canvas=CANVAS, seed=seed, device="cpu")


# ------------------------------------------------------------------------------- writes
def test_episode_writes_only_the_solved_rows_with_the_task_index() -> None:
    agent, strategy = memory_agent(), Memory()
    plugins = Plugins([strategy])
    bank = agent.memory_reader.memory
    plugins.before_task(1)
    train_step(agent, plugins)  # every row answered "correctly": step mode would write all
    assert len(bank) == 0  # episode mode writes at the episode's end only
    record = agent.memory_reader.record
    ended(plugins, 1, rows=[0, 2, 3], solved=[True, False, True])
    used = torch.nonzero(bank.used).squeeze(1)
    assert bank.writes == 2 and len(bank) == 2
    assert torch.equal(bank.keys[used], record.keys[[0, 3]])
    assert torch.equal(bank.values[used], record.values[[0, 3]])
    assert bank.task[used].tolist() == [1, 1]
    assert bank.reward[used].tolist() == [1.0, 4.0]  # importance: the last step's reward
    ended(plugins, 1, rows=[1], solved=[False])
    assert bank.writes == 2


def test_step_writes_every_update_with_the_current_task() -> None:
    agent, strategy = memory_agent(), Memory(write_every="step")
    plugins = Plugins([strategy])
    plugins.before_task(2)
    train_step(agent, plugins)  # the targets are the answers: all 4 rows exactly right
    bank = agent.memory_reader.memory
    assert bank.writes == 4 and set(bank.task[bank.used].tolist()) == {2}
    ended(plugins, 2, rows=[0, 1], solved=[True, True])  # no second write of the episodes
    assert bank.writes == 4


def test_the_bank_persists_across_tasks() -> None:
    agent, strategy = memory_agent(), Memory()
    plugins = Plugins([strategy])
    loss_fn = lambda batch: torch.zeros(())  # noqa: E731
    for task in range(3):
        plugins.before_task(task)
        for step in range(2):
            train_step(agent, plugins, seed=step)
            ended(plugins, task, rows=[0, 1], solved=[True, True])
        plugins.after_task(task, agent.model, loss_fn)
        bank = agent.memory_reader.memory
        assert bank.writes == 4 * (task + 1) and len(bank) == 4 * (task + 1)
    assert sorted(bank.task[bank.used].tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    assert bank.hit_rate is None  # no task labels in this agent: reads carry no task
    metrics = plugins.metrics(agent.model)
    assert metrics == {
        "memory/occupancy": 12 / 64,
        "memory/hit_rate": None,
        "memory/evictions": 0.0,
        "memory/writes": 12.0,
        "memory/adaptations_reverted": 0.0,
    }
    # a bank that loses its contents between updates (a fresh agent) is refused
    with pytest.raises(RuntimeError, match="replaced or reset"):
        train_step(memory_agent(), plugins)


def test_memory_replay_writes_the_bank_and_replays_puzzles() -> None:
    strategy = make_strategy(
        {"name": "memory_replay", "write_every": "step", "memory_size": 8},
        grid_shape=CANVAS,
        seed=0,
        sampler=None,
        batch_size=4,
        num_tasks=2,
    )
    assert type(strategy) is MemoryReplay and strategy.replay_batch_size == 2
    agent, plugins = memory_agent(), Plugins([strategy])
    plugins.before_task(0)
    grid = np.ones((4, *CANVAS), dtype=np.int64)
    plugins.observe(grid, grid, np.zeros(4, dtype=np.int64))
    plugins.before_task(1)
    assert isinstance(plugins.replay_batch(), PuzzleMemory)
    train_step(agent, plugins)
    train_step(agent, plugins)
    assert agent.memory_reader.memory.writes == 8
    state = checkpoint.from_tensors(checkpoint.to_tensors(strategy.state_dict()))
    # both strategies' state: the reservoir, and the bank's writes as last seen (in penalty)
    assert state["bank_writes"] == 4 and "memory" in state
    again = make_strategy(
        {"name": "memory_replay", "write_every": "step", "memory_size": 8},
        grid_shape=CANVAS,
        seed=5,
        sampler=None,
        batch_size=4,
    )
    again.load_state_dict(state)
    assert again.bank_writes == 4 and len(again.memory) == 4 and again.current == 1


# ------------------------------------------------------------------- agent.memory needed
def test_a_memory_strategy_without_agent_memory_fails_naming_it(tmp_path: Path) -> None:
    model = TRM(TRMConfig.tiny(seq_len=9))
    with pytest.raises(ValueError, match=r"strategy=memory .*agent\.memory is null"):
        Memory().penalty(model)
    with pytest.raises(ValueError, match=r"strategy.write_every must be one of"):
        Memory(write_every="task")
    # trmgym run: refused at start-up, before anything is written
    from tests.core.test_configs import composed
    from trmgym.config import build_run

    for strategy in ("memory", "memory_replay"):
        cfg = composed("experiment=smoke", f"strategy={strategy}", "agent/memory=none")
        assert cfg.agent.memory is None
        with pytest.raises(ValueError, match=rf"strategy={strategy} .*agent\.memory is null"):
            build_run(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    # the strategies select the bank themselves; a bank no strategy writes is said to be unused
    assert composed("experiment=smoke", "strategy=memory").agent.memory.capacity == 4096
    with pytest.warns(UserWarning, match="strategy=naive never writes the bank"):
        build_run(composed("experiment=smoke", "agent/memory=bank"), tmp_path / "naive")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_run(composed("experiment=smoke", "strategy=memory"), tmp_path / "memory")


# ----------------------------------------------------------------------- exact resume
class WriteEnded(Memory):
    """Writes every ended episode (the tiny run solves too few puzzles to fill a bank)."""

    name = "write_ended"

    def on_episodes_end(self, task, rows, solved, cell_accuracy, steps, options) -> None:
        super().on_episodes_end(task, rows, np.ones(len(rows), bool), cell_accuracy, steps, options)


def make_run(run_dir: Path) -> ContinualRun:
    strategy = {"name": "write_ended", "_target_": f"{__name__}.WriteEnded"}
    return ContinualRun(
        TASKS, MEMORY_AGENT, strategy, SETTINGS, run_dir, seed=3, device="cpu", console=False
    )


def saved_bank(run_dir: Path) -> dict:
    saved = checkpoint.load_latest(run_dir / "checkpoints")
    return {k: v for k, v in saved["agent"]["model"].items() if "cycle_reader.memory" in k}


def test_a_memory_run_interrupted_then_resumed_equals_the_uninterrupted_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = make_run(tmp_path / "whole").run()
    interrupt_after_saves(monkeypatch, 4)  # inside task 1, after its first chunk
    with pytest.raises(KeyboardInterrupt):
        make_run(tmp_path / "split").run()
    resumed = make_run(tmp_path / "split").run()
    for key in ("accuracy_matrix", "cell_accuracy_matrix", "metrics", "curves", "env_steps"):
        assert resumed[key] == reference[key], key
    whole, split = saved_bank(tmp_path / "whole"), saved_bank(tmp_path / "split")
    assert int(whole["cycle_reader.memory.used"].sum()) > 0  # the bank was written
    assert set(whole) == set(split)
    for name, value in whole.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(split[name], value), name
        else:  # the extra state: counters, clock, generator
            assert value.keys() == split[name].keys()
            for key, item in value.items():
                same = torch.equal(item, split[name][key]) if torch.is_tensor(item) else None
                assert same if same is not None else item == split[name][key], key


# ------------------------------------------------------------------------------- the CLI
@pytest.mark.slow
def test_trmgym_run_with_memory_records_it_and_logs_memory_scalars(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trmgym.cli",
            "run",
            "experiment=smoke",
            "strategy=memory",
            "agent.memory.capacity=256",
            "device=cpu",
            "console=false",
            f"hydra.run.dir={run_dir}",
            "run.train_steps=10",
            "run.batch_size=8",
            "run.eval_episodes=8",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    results = json.loads((run_dir / "results.json").read_text())
    assert results["strategy"] == "memory"
    assert results["strategy_config"]["write_every"] == "episode"
    memory = results["agent"]["memory"]
    assert memory == {**dataclasses.asdict(MemoryConfig()), "capacity": 256}
    events = EventAccumulator(str(run_dir / "tb"))
    events.Reload()
    scalars = {
        tag: [(e.step, e.value) for e in events.Scalars(tag)]
        for tag in events.Tags()["scalars"]
        if tag.startswith("memory/")
    }
    # two tasks of 10 steps in chunks of eval_every=20: one chunk each, logged at its end
    assert {tag: [s for s, _ in values] for tag, values in scalars.items()} == {
        tag: [10, 20]
        for tag in (
            "memory/occupancy",
            "memory/hit_rate",
            "memory/evictions",
            "memory/writes",
            "memory/adaptations_reverted",
        )
    }
    occupancy = [value for _, value in scalars["memory/occupancy"]]
    writes = [value for _, value in scalars["memory/writes"]]
    assert occupancy == pytest.approx([min(w, 256) / 256 for w in writes])
    assert all(0.0 <= value <= 1.0 for _, value in scalars["memory/hit_rate"])
