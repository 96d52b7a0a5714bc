"""Continual runs with baseline agents (SB3 PPO / DQN, random): results, budgets, refusals, resume."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from tests.tiny_run import AGENT, SETTINGS, TASKS, interrupt_after_saves
from trmgym.agents.baselines import RandomAgentConfig, SB3DQNConfig, SB3PPOConfig
from trmgym.curricula.sequence import TaskSpec
from trmgym.experiment import ContinualRun, RunSettings
from trmgym.plugins import Plugin
from trmgym.runner import check_agent_fits

ROOT = Path(__file__).resolve().parents[2]

EDIT_TASKS = [
    TaskSpec(
        name,
        "trmgym/Sudoku-v0",
        {"size": 4, "blanks": blanks, "action_mode": "edit"},
        train_kwargs={"split": "train"},
        eval_kwargs={"split": "test", "augment": False},
    )
    for name, blanks in (("easy", 2), ("harder", 3))
]
BASELINE_SETTINGS = RunSettings(
    train_steps=6, batch_size=8, max_reasoning_steps=None, eval_episodes=8, eval_every=3
)
SMALL = {"embed_dim": 4, "channels": 8, "features_dim": 32, "net_arch": [32]}
PPO_CONFIG = SB3PPOConfig(n_steps=3, batch_size=24, n_epochs=1, **SMALL)
DQN_CONFIG = SB3DQNConfig(
    learning_starts=16, buffer_size=128, batch_size=16, target_update_interval=16, **SMALL
)


@pytest.fixture(autouse=True)
def _one_thread():  # noqa: ANN202 - tiny nets run fastest on one thread
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def baseline_run(
    run_dir: Path, agent=PPO_CONFIG, strategy: str = "naive", **kwargs
) -> ContinualRun:  # noqa: ANN001
    return ContinualRun(
        kwargs.pop("tasks", EDIT_TASKS),
        agent,
        {"name": strategy},
        kwargs.pop("settings", BASELINE_SETTINGS),
        run_dir,
        seed=3,
        device="cpu",
        console=False,
        **kwargs,
    )


@pytest.fixture(scope="module")
def trm_results_keys(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The keys of a TRM run's results (tests/tiny_run.py's two tasks)."""
    shortest = dataclasses.replace(SETTINGS, train_steps=1, eval_every=1, eval_episodes=2)
    results = ContinualRun(
        TASKS,
        AGENT,
        {"name": "naive"},
        shortest,
        tmp_path_factory.mktemp("trm"),
        seed=3,
        device="cpu",
        console=False,
    ).run()
    return set(results)


# ------------------------------------------------------------------------------ results
def test_sb3_ppo_through_the_cli_writes_results(tmp_path: Path, trm_results_keys: set) -> None:
    """A subprocess `trmgym run` with agent=sb3_ppo: 240 env steps, results.json, TB, report."""
    run_dir = tmp_path / "ppo"
    args = [
        "experiment=single_task",
        "agent=sb3_ppo",
        "env=sudoku",
        "env.size=4",
        "env.blanks=4",
        "env.action_mode=edit",
        "run.train_steps=30",
        "run.batch_size=8",
        "run.eval_every=15",
        "run.eval_episodes=8",
        "agent.n_steps=5",
        "agent.batch_size=40",
        "agent.net_arch=[32]",
        "device=cpu",
        "console=false",
        "run.threads=1",
        f"hydra.run.dir={run_dir}",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "trmgym.cli", "run", *args],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((run_dir / "results.json").read_text())
    assert set(results) == trm_results_keys  # the TRM's schema, key for key
    assert results["env_steps"] == 30 * 8  # run.train_steps * run.batch_size
    assert (
        results["agent"]["name"] == "sb3_ppo" and results["agent"]["model_config"]["parameters"] > 0
    )
    assert results["settings"]["max_reasoning_steps"] is None and results["strategy"] == "naive"
    # null: a limit a perfect agent finishes within (4 writes, then halt), at most 4 * 4 + 1
    assert 4 + 1 <= results["max_reasoning_steps"] <= 17
    (row,) = results["accuracy_matrix"]
    assert 0 <= row[0] <= 1 and 0 <= results["cell_accuracy_matrix"][0][0] <= 1
    assert 1 <= results["reasoning_steps_matrix"][0][0] <= results["max_reasoning_steps"]
    assert len(results["curves"][0]) == 2 and results["metrics"]["bwt"] is None
    assert 0 <= results["metrics"]["avg_accuracy"] <= 1
    assert (run_dir / "report.html").is_file() and list((run_dir / "tb").iterdir())


def test_a_continual_sb3_run_writes_the_trm_schema_and_scalars(
    tmp_path: Path, trm_results_keys: set
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    job = baseline_run(tmp_path / "ppo")
    # max_reasoning_steps null: the env's own default, or H * W + 1; a perfect agent fits in
    assert 2 + 1 <= job.step_limits[0] <= 17 and 3 + 1 <= job.step_limits[1] <= 17
    results = job.run()
    assert set(results) == trm_results_keys
    assert results["sequence"] == ["easy", "harder"] and results["env_steps"] == 2 * 6 * 8
    assert np.asarray(results["accuracy_matrix"], dtype=float).shape == (2, 2)
    assert [len(curve) for curve in results["curves"]] == [2, 2]
    assert set(results["metrics"]) == {
        "avg_accuracy",
        "avg_forgetting",
        "bwt",
        "fwt",
        "avg_reasoning_steps",
    }
    events = EventAccumulator(str(tmp_path / "ppo" / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/approx_kl", "rollout/solve_rate", "eval/accuracy"} <= tags
    assert "cl/avg_accuracy" in tags


def test_random_agent_is_the_floor_and_seeded(tmp_path: Path) -> None:
    first = baseline_run(tmp_path / "a", RandomAgentConfig()).run()
    second = baseline_run(tmp_path / "b", RandomAgentConfig()).run()
    assert first["accuracy_matrix"] == [[0.0, 0.0], [0.0, 0.0]]  # random edits never solve
    assert first["cell_accuracy_matrix"] == second["cell_accuracy_matrix"]
    assert all(0 < c < 1 for row in first["cell_accuracy_matrix"] for c in row)
    assert first["env_steps"] == 2 * 6 * 8


def test_scratch_trains_a_fresh_agent_per_task(tmp_path: Path) -> None:
    job = baseline_run(tmp_path, DQN_CONFIG, strategy="scratch")
    results = job.run()
    assert results["strategy"] == "scratch" and results["env_steps"] == 2 * 6 * 8
    assert job.agent.num_timesteps == 6 * 8  # the last task's agent saw only its own steps


class Recorder(Plugin):
    """Wraps training envs (recording the calls) and hears finished episodes."""

    name = "recorder"

    def __init__(self) -> None:
        self.wrapped: list[tuple[str, bool, str]] = []
        self.ended = 0

    def wrap_env(self, env, task, train):  # noqa: ANN001, ANN201
        self.wrapped.append((task.name, train, type(env).__name__))
        return gym.wrappers.vector.RecordEpisodeStatistics(env) if train else env

    def on_episodes_end(self, task, rows, solved, cell_accuracy, steps, options):  # noqa: ANN001, ANN201
        assert (steps >= 1).all() and (steps <= 17).all() and options == [None] * len(rows)
        self.ended += len(rows)


def test_plugins_wrap_each_fresh_training_env_before_the_adapter(tmp_path: Path) -> None:
    recorder = Recorder()
    baseline_run(tmp_path, plugins=[recorder]).run()
    training = [w for w in recorder.wrapped if w[1]]
    assert len(training) == 4  # two chunks per task, a fresh env each
    assert all(kind == "SudokuVectorEnv" for _, _, kind in training)  # the native env itself
    assert recorder.ended > 0


@pytest.mark.parametrize("agent", [PPO_CONFIG, DQN_CONFIG], ids=["sb3_ppo", "sb3_dqn"])
def test_resume_after_interruption_is_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, agent
) -> None:  # noqa: ANN001
    reference = baseline_run(tmp_path / "whole", agent).run()
    interrupt_after_saves(monkeypatch, 1)  # mid task 0, between its two chunks
    with pytest.raises(KeyboardInterrupt):
        baseline_run(tmp_path / "split", agent).run()
    resumed = baseline_run(tmp_path / "split", agent).run()
    for key in (
        "accuracy_matrix",
        "cell_accuracy_matrix",
        "reasoning_steps_matrix",
        "curves",
        "env_steps",
        "metrics",
        "random_init_accuracy",
    ):
        assert resumed[key] == reference[key], key
    assert [s["chunk"] for s in resumed["starts"]] == [0, 1]


# ----------------------------------------------------------------------------- refusals
class Steering(Plugin):
    name = "curriculum"
    kind = "ramp"

    def reset_options(self, rows):  # noqa: ANN001, ANN201
        return [{"blanks": 2} for _ in rows]


class Replaying(Plugin):
    name = "my-replay"

    def replay_batch(self):  # noqa: ANN201
        return None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"agent": AGENT},
            r"agent=trm cannot play sequence\.tasks\[0\]\.action_mode=edit \(task 'easy'\); "
            r"allowed combinations: agent=trm: grid; agent=sb3_ppo: edit\|walk",
        ),
        (
            {"tasks": TASKS},
            r"agent=sb3_ppo cannot play sequence\.tasks\[0\]\.action_mode=grid",
        ),
        (
            {"tasks": EDIT_TASKS[:1], "agent": AGENT},
            r"agent=trm cannot play env\.action_mode=edit",
        ),
        (
            {"strategy": "replay"},
            r"strategy=replay needs the TRM agent's model or replay; with agent=sb3_ppo allowed: "
            r"strategy=naive, strategy=scratch",
        ),
        ({"strategy": "ewc", "agent": DQN_CONFIG}, r"strategy=ewc .* agent=sb3_dqn"),
        (
            {"plugins": [Steering()]},
            r"curriculum=ramp .* leave the curriculum out \(no curriculum= override",
        ),
        ({"plugins": [Replaying()]}, r"plugin 'my-replay' implements replay_batch"),
    ],
)
def test_bad_combinations_are_refused_before_training(
    tmp_path: Path, kwargs: dict, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        baseline_run(tmp_path, **kwargs)
    assert not tmp_path.joinpath("checkpoints").exists()


def test_torchrun_and_unmasked_envs_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"agent=sb3_dqn trains in one process; torchrun"):
        check_agent_fits("sb3_dqn", EDIT_TASKS, strategy="naive", plugins=[], distributed=True)
    monkeypatch.setattr("trmgym.runner.action_masks_of", lambda env: None)  # an env without
    with pytest.raises(ValueError, match=r"agent=sb3_maskable_ppo needs an env with action_masks"):
        check_agent_fits(
            "sb3_maskable_ppo", EDIT_TASKS, strategy="naive", plugins=[], distributed=False
        )


def test_the_cli_refuses_an_sb3_agent_on_grid_mode_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "trmgym.cli",
            "run",
            "experiment=single_task",
            "agent=sb3_dqn",
            "device=cpu",
            f"hydra.run.dir={tmp_path / 'x'}",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "trmgym run: agent=sb3_dqn cannot play env.action_mode=grid (task 'sudoku4x4'); allowed "
        "combinations: agent=trm: grid; agent=sb3_ppo: edit|walk; agent=sb3_dqn: edit|walk; "
        "agent=sb3_maskable_ppo: edit|walk; agent=random: grid|edit|walk"
    ]
    assert not (tmp_path / "x").exists()


def test_random_agent_plays_grid_mode_too(tmp_path: Path) -> None:
    results = baseline_run(tmp_path, RandomAgentConfig(), tasks=TASKS, settings=SETTINGS).run()
    assert results["env_steps"] == 2 * 6 * 8 and results["max_reasoning_steps"] == 3
    assert all(0 <= a <= 1 for row in results["accuracy_matrix"] for a in row)


def test_a_null_step_limit_is_the_env_default_in_grid_mode(tmp_path: Path) -> None:
    settings = dataclasses.replace(SETTINGS, max_reasoning_steps=None)
    job = ContinualRun(TASKS, AGENT, {"name": "naive"}, settings, tmp_path, device="cpu")
    assert job.step_limits == [16, 16] and job.agent.max_steps == 16  # trmgym.DEFAULT_MAX_STEPS


def test_a_saved_plain_config_is_typed_by_its_agent_name(tmp_path: Path) -> None:
    """A run's saved .hydra/config.yaml (plain YAML) builds again: the agent node is checked
    against the schema its ``name`` picks."""
    from omegaconf import OmegaConf
    from omegaconf.errors import ConfigKeyError

    from trmgym.config import build_run

    def plain(agent: dict) -> object:
        return OmegaConf.create(
            {
                "experiment_name": "saved",
                "env": {"id": "trmgym/Sudoku-v0", "size": 4, "blanks": 2, "action_mode": "edit"},
                "agent": agent,
                "strategy": {"name": "naive"},
                "run": {"train_steps": 2, "batch_size": 4, "max_reasoning_steps": None},
                "device": "cpu",
            }
        )

    job = build_run(plain({"name": "sb3_dqn", "buffer_size": 64}), tmp_path)
    assert isinstance(job.agent_config, SB3DQNConfig) and job.agent_config.buffer_size == 64
    with pytest.raises(ConfigKeyError, match="n_steps"):
        build_run(plain({"name": "sb3_dqn", "n_steps": 3}), tmp_path)  # a PPO key
