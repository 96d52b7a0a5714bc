"""A two-task continual run small enough for unit tests (seconds on a CPU), and a Ctrl-C helper."""

from __future__ import annotations

import pytest

from trmgym.agents.trm_agent import TRMAgentConfig
from trmgym.experiment import ContinualRun, RunSettings
from trmgym.runner import TaskSpec

TASKS = [
    TaskSpec(
        name,
        "trmgym/ARCGen-v0",
        {"families": ["colour_map"], "tasks_per_family": 2, "min_size": 3, "max_size": 3},
        options={"task_id": k},
    )
    for k, name in enumerate(["recolour", "recolour-b"])
]
AGENT = TRMAgentConfig(
    size="tiny",
    model={"hidden_size": 32, "num_heads": 2, "h_cycles": 1, "l_cycles": 1},
    dqn={"learning_starts": 16, "batch_size": 32, "buffer_size": 512},
)
SETTINGS = RunSettings(
    train_steps=6, batch_size=8, max_reasoning_steps=3, eval_episodes=8, eval_every=3
)


def interrupt_after_saves(monkeypatch: pytest.MonkeyPatch, saves: int) -> None:
    """Make the next run raise KeyboardInterrupt (a Ctrl-C) right after its ``saves``-th
    checkpoint; the patch is undone by the first interrupt."""
    calls = {"n": 0}
    original = ContinualRun._save

    def save_then_die(self: ContinualRun, state: dict) -> None:
        original(self, state)
        calls["n"] += 1
        if calls["n"] == saves:
            monkeypatch.setattr(ContinualRun, "_save", original)
            raise KeyboardInterrupt

    monkeypatch.setattr(ContinualRun, "_save", save_then_die)
