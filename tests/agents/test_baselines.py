"""The SB3 adapter (SB3VecEnv), the token-grid extractor and the baseline agents."""

from __future__ import annotations

import io
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.utils import check_for_correct_spaces
from stable_baselines3.common.vec_env import DummyVecEnv, VecCheckNan

import trmgym  # noqa: F401 - registers the env ids
from trmgym import checkpoint
from trmgym.agents.baselines import (
    RandomAgent,
    RandomAgentConfig,
    SB3Agent,
    SB3DQNConfig,
    SB3MaskablePPOConfig,
    SB3PPOConfig,
    TokenGridExtractor,
    make_baseline_agent,
    sample_actions,
)
from trmgym.agents.sb3_vec_env import SB3VecEnv
from trmgym.envs.sudoku import SudokuVectorEnv

MAZE = {"size": 5, "action_mode": "edit"}
SUDOKU = {"size": 4, "blanks": 4, "action_mode": "edit", "expose_target": True}


def native(num_envs: int, limit: int = 6, env_id: str = "trmgym/Maze-v0", **kwargs):
    return gym.make_vec(
        env_id,
        num_envs=num_envs,
        autoreset_mode="same_step",
        max_episode_steps=limit,
        **(kwargs or MAZE),
    )


def sudoku_env(num_envs: int = 8, seed: int = 0, limit: int = 17) -> SB3VecEnv:
    return SB3VecEnv(
        native(num_envs, limit, "trmgym/Sudoku-v0", **SUDOKU), seed=seed, task_label=0, num_labels=1
    )


def edit_actions(rng: np.random.Generator, n: int, halt: int, t: int) -> np.ndarray:
    actions = rng.integers(0, halt, size=n)
    actions[(np.arange(n) + t) % 9 == 8] = halt  # some puzzles halt, others run into the limit
    return actions


# ------------------------------------------------------------------------------- adapter
def test_adapter_equals_a_dummy_vec_env_of_single_envs() -> None:
    """One row: the native batch of 1 and SB3's DummyVecEnv over the single env draw the same
    puzzles from the same seed, so whole trajectories (autoresets included) must agree."""
    adapter = SB3VecEnv(native(1), seed=3)
    dummy = DummyVecEnv([lambda: gym.make("trmgym/Maze-v0", max_episode_steps=6, **MAZE)])
    dummy.seed(3)
    obs_a, obs_d = adapter.reset(), dummy.reset()
    halt = adapter.action_space.n - 1
    rng = np.random.default_rng(0)
    endings = {"halted": 0, "truncated": 0}
    for t in range(60):
        for key in obs_d:
            np.testing.assert_array_equal(obs_a[key], obs_d[key])
        actions = edit_actions(rng, 1, halt, t)
        obs_a, reward_a, done_a, infos_a = adapter.step(actions)
        obs_d, reward_d, done_d, infos_d = dummy.step(actions)
        np.testing.assert_allclose(reward_a, reward_d)
        np.testing.assert_array_equal(done_a, done_d)
        mine, theirs = infos_a[0], infos_d[0]
        for key in ("solved", "cell_accuracy", "steps"):
            assert mine[key] == theirs[key], (t, key)
        if done_a[0]:
            assert mine["TimeLimit.truncated"] == theirs["TimeLimit.truncated"]
            endings["truncated" if mine["TimeLimit.truncated"] else "halted"] += 1
            for key, value in theirs["terminal_observation"].items():
                np.testing.assert_array_equal(mine["terminal_observation"][key], value)
    assert endings["halted"] > 0 and endings["truncated"] > 0


def test_terminal_observation_and_infos_describe_the_finished_puzzle() -> None:
    env = SB3VecEnv(native(6, limit=3), seed=1)
    obs = env.reset()
    assert len(env.reset_infos) == 6 and env.reset_infos[0]["steps"] == 0
    assert env.reset_infos[0]["solved"] is False  # no env poses a solved puzzle
    halt = env.action_space.n - 1
    # row 0 halts at once; the others write token 7 into cell 0 every step, then hit the limit
    write = 0 * 26 + 7
    for step in range(1, 4):
        actions = np.full(6, write)
        actions[0] = halt if step == 1 else write
        obs, _, dones, infos = env.step(actions)
        if step == 1:
            assert dones.tolist() == [True] + [False] * 5
            assert infos[0]["TimeLimit.truncated"] is False and infos[0]["steps"] == 1
    assert dones[1:].all()
    for row in range(1, 6):
        info = infos[row]
        assert info["TimeLimit.truncated"] is True and info["steps"] == 3  # the finished one
        assert info["terminal_observation"]["answer"][0, 0] == 7  # what the agent wrote
        np.testing.assert_array_equal(obs["answer"][row], obs["grid"][row])  # a fresh puzzle
    assert "terminal_observation" not in infos[0]  # row 0 is in its second puzzle, not done


def test_adapter_passes_sb3_checks_and_learns() -> None:
    env = SB3VecEnv(native(4, limit=5), seed=0)
    check_for_correct_spaces(env, env.observation_space, env.action_space)
    checked = VecCheckNan(env, raise_exception=True, check_inf=True)
    model = PPO("MultiInputPolicy", checked, n_steps=8, batch_size=16, n_epochs=1, seed=0)
    model.learn(64)
    assert model.num_timesteps == 64
    assert env.has_attr("render_mode")
    # masks exist exactly when the env has them (edit mode gains them with the envs' masks)
    assert env.has_attr("action_masks") == hasattr(env.env.unwrapped, "action_masks")
    assert not env.has_attr("no_such_method")
    with pytest.raises(AttributeError, match="no_such_method"):
        env.env_method("no_such_method")


class IntrinsicReward(gym.vector.VectorWrapper):
    """A curiosity-like wrapper: puts a per-row ``intrinsic_reward`` column in the info."""

    def step(self, actions):  # noqa: ANN001, ANN201
        obs, reward, terminated, truncated, info = self.env.step(actions)
        info = {**info, "intrinsic_reward": np.arange(self.num_envs, dtype=np.float64) / 10}
        return obs, reward, terminated, truncated, info


def test_intrinsic_reward_and_labels_reach_every_row() -> None:
    env = SB3VecEnv(IntrinsicReward(native(3)), seed=0, task_label=2, num_labels=4)
    assert env.observation_space["task_id"] == spaces.Discrete(4)
    obs = env.reset()
    assert obs["task_id"].tolist() == [2, 2, 2]
    obs, _, _, infos = env.step(np.zeros(3, dtype=np.int64))
    assert [info["intrinsic_reward"] for info in infos] == [0.0, 0.1, 0.2]
    assert obs["task_id"].tolist() == [2, 2, 2]


class MaskedSudoku(SudokuVectorEnv):
    """Sudoku in edit mode with ``action_masks()``: only writes into blank cells, and halt."""

    def action_masks(self) -> np.ndarray:
        vocab = 26
        blank = (self.core.grid == 11).reshape(self.num_envs, -1)  # 11: an empty Sudoku cell
        masks = np.repeat(blank, vocab, axis=1)
        return np.concatenate([masks, np.ones((self.num_envs, 1), dtype=bool)], axis=1)


def masked_env(num_envs: int = 8, seed: int = 0) -> SB3VecEnv:
    env = MaskedSudoku(num_envs, autoreset_mode="same_step", max_episode_steps=17, **SUDOKU)
    return SB3VecEnv(env, seed=seed)


def test_action_masks_pass_through_and_maskable_ppo_respects_them() -> None:
    env = masked_env()
    env.reset()
    assert env.has_attr("action_masks")
    rows = env.env_method("action_masks")
    assert len(rows) == 8 and rows[0].shape == (env.action_space.n,)
    np.testing.assert_array_equal(np.stack(rows), env.action_masks())
    pytest.importorskip("sb3_contrib")
    agent = SB3Agent(
        SB3MaskablePPOConfig(n_steps=4, batch_size=32, n_epochs=1),
        observation_space=env.observation_space,
        action_space=env.action_space,
        num_envs=8,
        seed=0,
        device="cpu",
    )
    assert agent.learn_chunk(env, 64).env_steps == 64
    obs = env.reset()
    masks = env.action_masks()
    actions, _ = agent.act(obs, None, action_masks=masks)
    assert masks[np.arange(8), actions].all()


def test_maskable_ppo_without_sb3_contrib_names_the_install(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setitem(sys.modules, "sb3_contrib", None)  # import fails
    env = masked_env()
    with pytest.raises(RuntimeError, match=r"sb3-contrib.*pip install 'trmgym\[sb3\]'"):
        SB3Agent(
            SB3MaskablePPOConfig(),
            observation_space=env.observation_space,
            action_space=env.action_space,
            num_envs=8,
        )


# ---------------------------------------------------------------------------- extractor
def test_token_grid_extractor_shapes_and_errors() -> None:
    env = sudoku_env(num_envs=2)
    extractor = TokenGridExtractor(env.observation_space, embed_dim=4, channels=8, features_dim=24)
    assert extractor.grid_keys == ["answer", "grid"] and extractor.other_keys == ["task_id"]
    obs = env.reset()
    batch = {
        "grid": torch.as_tensor(obs["grid"], dtype=torch.float32),
        "answer": torch.as_tensor(obs["answer"], dtype=torch.float32),
        "task_id": torch.zeros(2, 1),
    }
    assert extractor(batch).shape == (2, 24)
    with pytest.raises(ValueError, match="2-D integer Box"):
        TokenGridExtractor(spaces.Dict({"x": spaces.Box(0, 1, (3,))}))


# ------------------------------------------------------------------------------- agents
def roundtrip(state: dict) -> dict:
    """Through a checkpoint file as the run writes it (weights_only load)."""
    buffer = io.BytesIO()
    torch.save(checkpoint.to_tensors(state), buffer)
    buffer.seek(0)
    return checkpoint.from_tensors(torch.load(buffer, weights_only=True))


def build(config, seed: int = 0):  # noqa: ANN001, ANN201
    env = sudoku_env()
    return make_baseline_agent(
        config,
        observation_space=env.observation_space,
        action_space=env.action_space,
        num_envs=8,
        seed=seed,
        device="cpu",
    )


CONFIGS = [
    SB3PPOConfig(n_steps=4, batch_size=32, n_epochs=2),
    SB3DQNConfig(learning_starts=16, buffer_size=256, batch_size=16, target_update_interval=32),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_resume_at_a_chunk_boundary_is_exact(config) -> None:  # noqa: ANN001
    """Two chunks in one go equal one chunk, a checkpoint round trip into a new agent, and the
    second chunk: weights, optimizer, counters, replay buffer and random draws."""
    whole = build(config)
    for chunk in (1, 2):
        whole.learn_chunk(sudoku_env(seed=chunk), 48, task_progress=(48 * (chunk - 1), 96))
    first = build(config)
    first.learn_chunk(sudoku_env(seed=1), 48, task_progress=(0, 96))
    saved = roundtrip(first.state_dict())
    torch.manual_seed(123), np.random.seed(123)  # noqa: NPY002 - what a restart disturbs
    resumed = build(config, seed=5)
    resumed.load_state_dict(saved)
    resumed.learn_chunk(sudoku_env(seed=2), 48, task_progress=(48, 96))
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert whole.num_timesteps == resumed.num_timesteps == 96
    assert whole.algo._n_updates == resumed.algo._n_updates > 0
    obs = sudoku_env(seed=9).reset()
    np.testing.assert_array_equal(whole.act(obs, None)[0], resumed.act(obs, None)[0])


def test_dqn_exploration_runs_over_the_task_budget() -> None:
    agent = build(SB3DQNConfig(learning_starts=8, buffer_size=64, exploration_fraction=0.5))
    agent.learn_chunk(sudoku_env(), 40, task_progress=(0, 160))
    assert agent.algo.exploration_rate == pytest.approx(1 - 0.95 * 40 / 80)
    agent.learn_chunk(sudoku_env(seed=1), 40, task_progress=(40, 160))
    assert agent.algo.exploration_rate == pytest.approx(1 - 0.95 * 80 / 80)
    agent.learn_chunk(sudoku_env(seed=2), 8, task_progress=(0, 160))  # a new task: explore again
    assert agent.algo.exploration_rate == pytest.approx(1 - 0.95 * 8 / 80)


def test_an_sb3_agent_needs_a_discrete_action_space() -> None:
    env = SB3VecEnv(native(2, env_id="trmgym/Sudoku-v0", size=4, blanks=4), seed=0)
    with pytest.raises(TypeError, match="agent=sb3_ppo needs a Discrete action space"):
        SB3Agent(
            SB3PPOConfig(),
            observation_space=env.observation_space,
            action_space=env.action_space,
            num_envs=2,
        )


@pytest.mark.parametrize(
    ("config", "key"),
    [
        (lambda: SB3PPOConfig(n_steps=0), "agent.n_steps"),
        (lambda: SB3PPOConfig(gamma=1.5), "agent.gamma"),
        (lambda: SB3DQNConfig(exploration_final_eps=-0.1), "agent.exploration_final_eps"),
        (lambda: SB3PPOConfig(net_arch=[0]), "agent.net_arch"),
        (lambda: SB3PPOConfig(name="a2c"), "agent.name"),
        (lambda: SB3PPOConfig(batch_size=1), "agent.batch_size must be an int >= 2"),
    ],
)
def test_bad_agent_settings_name_the_key(config, key: str) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        config()


def test_random_agent_samples_its_space_and_is_seeded() -> None:
    env = sudoku_env()
    a = RandomAgent(env.action_space, seed=4)
    b = RandomAgent(env.action_space, seed=4)
    obs = env.reset()
    first = a.act(obs)[0]
    np.testing.assert_array_equal(first, b.act(obs)[0])
    assert first.shape == (8,) and ((first >= 0) & (first < env.action_space.n)).all()
    state = roundtrip(a.state_dict())
    again = RandomAgent(env.action_space, seed=0)
    again.load_state_dict(state)
    np.testing.assert_array_equal(a.act(obs)[0], again.act(obs)[0])
    assert a.learn_chunk(env, 40).env_steps == 40
    grid_space = native(1, env_id="trmgym/Sudoku-v0", size=4, blanks=4).single_action_space
    grid = sample_actions(grid_space, 3, np.random.default_rng(0))
    assert grid["answer"].shape == (3, 4, 4) and set(grid["halt"].tolist()) <= {0, 1}
    assert all(
        grid_space.contains({"answer": grid["answer"][k], "halt": grid["halt"][k]})
        for k in range(3)
    )


def test_stochastic_evaluation_samples_the_policy_and_dqn_stays_greedy() -> None:
    """``agent.deterministic_eval=false`` draws PPO's actions from the policy (different draws on
    the same observations); DQN's action is greedy either way; a non-bool is named."""
    env = sudoku_env(num_envs=64)
    obs = env.reset()
    greedy = build(SB3PPOConfig(n_steps=4, batch_size=32))
    sampled = build(SB3PPOConfig(n_steps=4, batch_size=32, deterministic_eval=False))
    np.testing.assert_array_equal(greedy.act(obs)[0], greedy.act(obs)[0])
    draws = [sampled.act(obs)[0] for _ in range(2)]
    assert (draws[0] != draws[1]).any()  # an untrained policy spreads over many actions
    dqn = build(SB3DQNConfig(learning_starts=16, buffer_size=256, deterministic_eval=False))
    np.testing.assert_array_equal(dqn.act(obs)[0], dqn.act(obs)[0])
    with pytest.raises(ValueError, match="agent.deterministic_eval must be true or false"):
        SB3PPOConfig(deterministic_eval="no")


@pytest.mark.parametrize(
    ("config", "name"),
    [
        (SB3PPOConfig, "sb3_dqn"),  # ran PPO, recorded and grouped as DQN
        (SB3DQNConfig, "sb3_ppo"),
        (RandomAgentConfig, "sb3_ppo"),
        (SB3PPOConfig, "random"),  # ran the random agent with PPO's keys ignored
        (SB3MaskablePPOConfig, "sb3_ppo"),
    ],
)
def test_agent_name_cannot_relabel_or_switch_the_agent(config, name: str) -> None:  # noqa: ANN001
    with pytest.raises(
        ValueError,
        match=rf"agent\.name is fixed by the agent= choice .* got '{name}': choose the agent with agent={name} instead",
    ):
        config(name=name)


def test_ppo_refuses_chunks_shorter_than_a_rollout_and_warns_of_untrained_steps() -> None:
    """Every chunk of run.eval_every steps starts a new rollout: with agent.n_steps above every
    chunk PPO played the whole budget and never trained, in silence."""
    from trmgym.config import RunSettings
    from trmgym.experiment import check_rollouts

    settings = RunSettings(train_steps=40, batch_size=16, eval_every=10)
    with pytest.raises(
        ValueError,
        match=r"agent\.n_steps=50 is longer than every chunk of task 'a' \(run\.eval_every=10, its budget 40 steps\)",
    ):
        check_rollouts(SB3PPOConfig(n_steps=50), settings, [40], ["a"])
    with pytest.raises(ValueError, match="of task 'short'"):  # a task shorter than one rollout
        check_rollouts(SB3PPOConfig(n_steps=10), settings, [40, 5], ["a", "short"])
    with pytest.warns(UserWarning, match=r"13 of 65 steps are played but not trained on"):
        check_rollouts(SB3PPOConfig(n_steps=4), settings, [40, 25], ["a", "b"])  # 2 x 4 + 5 x 1
    with pytest.raises(ValueError, match=r"agent\.n_steps x run\.batch_size must be >= 2"):
        check_rollouts(
            SB3PPOConfig(n_steps=1), RunSettings(batch_size=1, eval_every=10), [40], ["a"]
        )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_rollouts(SB3PPOConfig(n_steps=5), settings, [40, 20], ["a", "b"])  # divides all
        check_rollouts(SB3DQNConfig(), settings, [7], ["a"])  # DQN trains per step
