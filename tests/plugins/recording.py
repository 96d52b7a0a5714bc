"""A plugin that records every hook call: for tests of the seam (order, state, resume)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from trmgym.plugins import Plugin, PuzzleMemory, TaskDirective


class RecordingPlugin(Plugin):
    """Appends one event per hook call; its event log is its checkpointed state.

    Args:
        name: the plugin's name.
        path: if given, the events are written there as JSON after every task (for subprocess
            tests, which read the file a CLI run leaves behind).
        options: if given, ``reset_options`` asks for these options for every row.
    """

    def __init__(
        self, name: str = "recorder", path: str | None = None, options: dict | None = None
    ) -> None:
        self.name = name
        self.path = path
        self.options = options
        self.events: list[list[Any]] = []
        self.per_step = {"replay_batch": 0, "penalty": 0}

    def before_task(self, task_index: int) -> TaskDirective | None:
        self.events.append(["before_task", task_index])
        return None

    def after_task(self, task_index: int, model: Any, loss_fn: Any) -> None:
        self.events.append(["after_task", task_index])
        if self.path is not None:
            Path(self.path).write_text(json.dumps(self.state_dict()))

    def wrap_env(self, env: Any, task: Any, train: bool) -> Any:
        self.events.append(["wrap_env", task.name, train, env.num_envs])
        return env

    def reset_options(self, rows: np.ndarray) -> list[dict | None] | None:
        self.events.append(["reset_options", [int(r) for r in rows]])
        return None if self.options is None else [dict(self.options) for _ in rows]

    def on_episodes_end(self, task, rows, solved, cell_accuracy, steps, options) -> None:
        assert solved.dtype == bool and steps.dtype == np.int64
        assert len(rows) == len(solved) == len(cell_accuracy) == len(steps) == len(options)
        assert all(o == self.options for o in options)
        self.events.append(
            ["episodes_end", int(task), [int(r) for r in rows], [int(s) for s in steps]]
        )

    def observe(self, grid: np.ndarray, target: np.ndarray, task: np.ndarray) -> None:
        self.events.append(["observe", len(grid), int(task[0])])

    def replay_batch(self) -> PuzzleMemory | None:
        self.per_step["replay_batch"] += 1
        return None

    def penalty(self, model: Any) -> None:
        self.per_step["penalty"] += 1
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"events": json.loads(json.dumps(self.events)), "per_step": dict(self.per_step)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.events = [list(e) for e in state["events"]]
        self.per_step = {k: int(v) for k, v in state["per_step"].items()}
