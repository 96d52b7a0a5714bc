"""The curiosity plugin: training envs get extrinsic + coef * bonus, evaluation envs do not; its
state crosses chunks and checkpoints exactly; bad settings name curiosity.<key>."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import trmgym  # noqa: F401 - registers the env ids
from trmgym.experiment import ContinualRun
from trmgym.plugins.curiosity import Curiosity

from ..tiny_run import AGENT, SETTINGS, TASKS, interrupt_after_saves


def _maze(num_envs: int = 4) -> gym.vector.VectorEnv:
    return gym.make_vec(
        "trmgym/Maze-v0", num_envs=num_envs, size=5, action_mode="walk", reward="sparse"
    )


def test_training_envs_are_shaped_and_evaluation_envs_are_not() -> None:
    plugin = Curiosity("count", coef=0.5, args={"hash": "exact", "beta": 2.0})
    env = _maze()
    assert plugin.wrap_env(env, None, train=False) is env
    wrapped = plugin.wrap_env(env, None, train=True)
    wrapped.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(5):
        _, reward, _, _, info = wrapped.step(rng.integers(0, 4, 4))
        np.testing.assert_allclose(
            reward, info["extrinsic_reward"] + 0.5 * info["intrinsic_reward"]
        )
        assert (info["intrinsic_reward"] > 0).any()
    scalars = plugin.metrics(None)
    assert scalars["curiosity/intrinsic_reward"] > 0
    assert plugin.metrics(None)["curiosity/intrinsic_reward"] is None  # reset after logging


def test_one_bonus_serves_every_chunk_and_carries_its_pending_transitions() -> None:
    plugin = Curiosity("rnd", update_every=3, args={"hidden_size": 16, "embedding_size": 8}, seed=1)
    first = plugin.wrap_env(_maze(), None, train=True)
    first.reset(seed=0)
    for _ in range(2):  # two steps: pending, no update yet
        first.step(np.zeros(4, dtype=np.int64))
    plugin.on_chunk_end(0, 2, 8)
    second = plugin.wrap_env(_maze(), None, train=True)
    assert second.bonus is first.bonus
    second.reset(seed=1)
    assert second.last_losses == {}
    second.step(np.ones(4, dtype=np.int64))  # the third step since the last update trains
    assert set(second.last_losses) == {"train/rnd_loss"}


def test_state_loaded_before_the_first_env_is_applied_when_the_bonus_is_built() -> None:
    def trained() -> Curiosity:
        plugin = Curiosity("count", args={"hash": "exact"})
        env = plugin.wrap_env(_maze(), None, train=True)
        env.reset(seed=0)
        for a in range(3):
            env.step(np.full(4, a, dtype=np.int64))
        plugin.on_chunk_end(0, 3, 12)
        return plugin

    saved = trained().state_dict()
    fresh = Curiosity("count", args={"hash": "exact"})
    fresh.load_state_dict(saved)
    env = fresh.wrap_env(_maze(), None, train=True)
    assert fresh.bonus.counts == trained().bonus.counts and fresh.bonus.counts
    obs, _ = env.reset(seed=5)
    assert fresh.bonus.count(obs).shape == (4,)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bonus": "icm"}, r"curiosity.bonus must be one of \['count', 'rnd', 'surprise', 'comb"),
        ({"coef": -1.0}, "curiosity.coef must be a finite float >= 0"),
        ({"update_every": 0}, "curiosity.update_every must be an int >= 1"),
        ({"bonus": "combined"}, "curiosity.parts must be given with curiosity.bonus=combined"),
        ({"parts": {"a": {"bonus": "count"}}}, "curiosity.parts must be given with"),
        (
            {"bonus": "combined", "parts": {"a": {"bonus": "counts"}}},
            r"curiosity.parts.a.bonus must be one of \['count', 'rnd', 'surprise'\]",
        ),
        (
            {"bonus": "combined", "parts": {"a": {"bonus": "count", "wieght": 2}}},
            r"curiosity.parts.a has unknown keys \['wieght'\]",
        ),
    ],
)
def test_bad_settings_name_the_key(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Curiosity(**kwargs)


def test_a_bad_bonus_argument_names_curiosity_args() -> None:
    plugin = Curiosity("count", args={"bits": 0})
    with pytest.raises(ValueError, match="curiosity.args: bits must be"):
        plugin.wrap_env(_maze(), None, train=True)
    plugin = Curiosity("count", args={"beeta": 1.0})
    with pytest.raises(ValueError, match="curiosity.args: .*beeta"):
        plugin.wrap_env(_maze(), None, train=True)


def test_combined_weights_its_parts() -> None:
    plugin = Curiosity(
        "combined",
        coef=1.0,
        parts={
            "a": {"bonus": "count", "weight": 2.0, "args": {"hash": "exact"}},
            "b": {"bonus": "count", "weight": 0.5, "args": {"hash": "exact", "beta": 4.0}},
        },
    )
    env = plugin.wrap_env(_maze(2), None, train=True)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.zeros(2, dtype=np.int64))
    assert plugin.bonus.weights == {"a": 2.0, "b": 0.5}
    # first visits pay each part's beta
    np.testing.assert_allclose(info["intrinsic_reward"], 2.0 * 1.0 + 0.5 * 4.0)


def _run(run_dir: Path, plugin: Curiosity) -> dict:
    return ContinualRun(
        TASKS, AGENT, {"name": "naive"}, SETTINGS, run_dir, console=False, plugins=[plugin]
    ).run()


@pytest.mark.slow
def test_a_resumed_run_with_curiosity_is_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TRM's halting DQN learns from the shaped reward; cut after the first checkpoint (a
    pending transition in the wrapper: 3 steps a chunk, an update every 2), resumed, the run and
    the bonus end exactly as an uninterrupted one."""

    def plugin() -> Curiosity:
        return Curiosity("rnd", update_every=2, args={"hidden_size": 16, "embedding_size": 8})

    whole_plugin = plugin()
    whole = _run(tmp_path / "whole", whole_plugin)
    interrupt_after_saves(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "cut", plugin())
    resumed_plugin = plugin()
    resumed = _run(tmp_path / "cut", resumed_plugin)
    for key in ("accuracy_matrix", "curves", "env_steps"):
        assert resumed[key] == whole[key], key
    a, b = whole_plugin.state_dict()["wrapper"], resumed_plugin.state_dict()["wrapper"]
    assert a["steps_since_update"] == b["steps_since_update"]
    for name, tensor in a["bonus"]["predictor"].items():
        assert torch.equal(tensor, b["bonus"]["predictor"][name]), name


def _cli(*overrides: str):  # noqa: ANN202 - a CompletedProcess
    """``trmgym run`` in a fresh interpreter (the one-line errors happen in ``main``)."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "trmgym.cli", "run", *overrides],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.slow
def test_trmgym_run_with_curiosity_records_it_and_logs_its_scalars(tmp_path: Path) -> None:
    import json

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    done = _cli(
        "experiment=smoke",
        "curiosity=count",
        "curiosity.coef=0.2",
        "console=false",
        f"hydra.run.dir={run}",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((run / "results.json").read_text())
    (record,) = results["plugins"]
    assert record["name"] == "curiosity" and record["config"]["bonus"] == "count"
    assert record["config"]["coef"] == 0.2
    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    values = [e.value for e in events.Scalars("curiosity/intrinsic_reward")]
    assert values and all(v > 0 for v in values)
    bad = _cli(
        "experiment=smoke",
        "curiosity=count",
        "curiosity.bonus=counts",
        "console=false",
        f"hydra.run.dir={tmp_path / 'bad'}",
    )
    assert bad.returncode != 0
    assert "curiosity.bonus must be one of ['count', 'rnd', 'surprise', 'combined']" in (
        bad.stderr + bad.stdout
    )
    # a bad bonus argument is refused when the run is built, in one line, leaving no directory
    late = _cli(
        "experiment=smoke",
        "curiosity=count",
        "curiosity.args.bits=0",
        "console=false",
        f"hydra.run.dir={tmp_path / 'late'}",
    )
    assert late.returncode == 2
    assert late.stderr == "trmgym run: curiosity.args: bits must be an int >= 1, got 0\n"
    assert not (tmp_path / "late").exists()


def test_curiosity_with_bce_halting_is_refused_and_check_tasks_builds_the_bonus() -> None:
    from trmgym.agents.trm_agent import TRMAgentConfig
    from trmgym.config import check_curiosity

    with pytest.raises(ValueError, match="agent.halting=bce: the TRM agent learns from the rew"):
        check_curiosity(Curiosity("count"), TRMAgentConfig(halting="bce"))
    check_curiosity(Curiosity("count"), TRMAgentConfig(halting="dqn"))
    from trmgym.agents.baseline_configs import RandomAgentConfig, SB3PPOConfig

    # the random agent learns nothing either: such a run was labelled a curiosity run
    with pytest.raises(ValueError, match="curiosity=count with agent=random: the random agent"):
        check_curiosity(Curiosity("count"), RandomAgentConfig())
    check_curiosity(Curiosity("count"), SB3PPOConfig())
    from trmgym.curricula.sequence import TaskSpec

    maze = TaskSpec("m", "trmgym/Maze-v0", {"size": 5, "action_mode": "walk"})
    Curiosity("count", args={"obs_keys": ["position"]}).check_tasks([maze])
    sudoku = TaskSpec("s", "trmgym/Sudoku-v0", {"size": 4})
    with pytest.raises(ValueError, match="curiosity.args: obs_keys: unknown key 'position'"):
        Curiosity("count", args={"obs_keys": ["position"]}).check_tasks([maze, sudoku])


@pytest.mark.slow
def test_sb3_ppo_with_curiosity_on_a_walk_maze_resumes_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SB3 path: the plugin wraps each chunk's env before the SB3 adapter (same-step
    autoreset: final observations rated), PPO learns from the shaped reward, and a run cut after
    its first checkpoint finishes as an uninterrupted one, bonus state included."""
    from trmgym.agents.baselines import SB3PPOConfig
    from trmgym.curricula.sequence import TaskSpec
    from trmgym.experiment import RunSettings

    task = TaskSpec(
        "maze5", "trmgym/Maze-v0", {"size": 5, "action_mode": "walk", "reward": "sparse"}
    )
    agent = SB3PPOConfig(
        n_steps=3,
        batch_size=24,
        n_epochs=1,
        embed_dim=4,
        channels=8,
        features_dim=32,
        net_arch=[32],
        deterministic_eval=False,
    )
    settings = RunSettings(
        train_steps=6, batch_size=8, max_reasoning_steps=None, eval_episodes=8, eval_every=3
    )

    def run(run_dir: Path, plugin: Curiosity) -> dict:
        return ContinualRun(
            [task],
            agent,
            {"name": "naive"},
            settings,
            run_dir,
            seed=3,
            device="cpu",
            console=False,
            plugins=[plugin],
        ).run()

    def plugin() -> Curiosity:
        return Curiosity("count", update_every=2, args={"hash": "exact", "episodic": True})

    whole_plugin = plugin()
    whole = run(tmp_path / "whole", whole_plugin)
    assert whole_plugin.bonus.episode_counts  # the bonus rated the SB3 agent's steps
    interrupt_after_saves(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", plugin())
    resumed_plugin = plugin()
    resumed = run(tmp_path / "cut", resumed_plugin)
    for key in ("accuracy_matrix", "curves", "env_steps", "metrics"):
        assert resumed[key] == whole[key], key
    assert resumed_plugin.bonus.episode_counts == whole_plugin.bonus.episode_counts


def test_a_curiosity_is_labelled_by_its_config_choice_not_its_bonus() -> None:
    """curiosity=episodic_count configures the count bonus: the banner said `curiosity count`."""
    from trmgym.config import build_curiosity

    node = {
        "_target_": "trmgym.plugins.curiosity.Curiosity",
        "bonus": "count",
        "args": {"episodic": True},
    }
    assert build_curiosity(node, name="episodic_count").label == "episodic_count"
    assert build_curiosity(node).label == "count"  # built in Python, no config choice
