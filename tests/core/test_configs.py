"""Every shipped config composes, validates and builds its envs (no training)."""

from __future__ import annotations

import dataclasses

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from trmgym.agents.trm_agent import TRMAgentConfig
from trmgym.cli import config_dir, task_spec
from trmgym.curricula.sequence import TaskSequence
from trmgym.experiment import RunSettings
from trmgym.plugins.strategies import make_strategy
from trmgym.runner import common_canvas

SEQUENCES = sorted(p.stem for p in (config_dir() / "sequence").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))
STRATEGIES = sorted(p.stem for p in (config_dir() / "strategy").glob("*.yaml"))
ENVS = sorted(p.stem for p in (config_dir() / "env").glob("*.yaml"))


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def build(cfg) -> None:
    values = OmegaConf.to_container(cfg, resolve=False)
    RunSettings(**values["run"])
    TRMAgentConfig(**OmegaConf.to_container(cfg.agent, resolve=True))
    if cfg.get("sequence") is None:
        tasks = [task_spec(cfg.env, "env")]
    else:
        tasks = TaskSequence.from_config(OmegaConf.to_container(cfg.sequence, resolve=True)).tasks
    canvas = common_canvas(tasks, tuple(cfg.run.canvas) if cfg.run.canvas else None)
    strategy = OmegaConf.to_container(cfg.strategy, resolve=True)
    make_strategy(strategy, grid_shape=canvas, seed=0, sampler=lambda task, n: None)


def test_the_default_is_the_quickstart() -> None:
    cfg = composed()
    assert cfg.sequence.name == "quickstart" and len(cfg.sequence.tasks) >= 3


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiments_build(experiment: str) -> None:
    build(composed(f"experiment={experiment}"))


@pytest.mark.parametrize("sequence", SEQUENCES)
def test_sequences_build(sequence: str) -> None:
    build(composed("experiment=continual", f"sequence={sequence}"))


@pytest.mark.parametrize("env", ENVS)
def test_envs_build(env: str) -> None:
    build(composed("experiment=single_task", f"env={env}"))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_strategies_build(strategy: str) -> None:
    build(composed(f"strategy={strategy}"))


def test_single_task_acceptance_command_composes() -> None:
    cfg = composed(
        "experiment=single_task",
        "env=sudoku",
        "env.size=4",
        "env.blanks=8",
        "agent=trm",
        "agent.halting=dqn",
        "device=cpu",
        "seed=0",
    )
    assert cfg.env.size == 4 and cfg.agent.halting == "dqn" and cfg.get("sequence") is None
    assert {f.name for f in dataclasses.fields(RunSettings)} >= set(cfg.run)
