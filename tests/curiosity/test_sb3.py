"""IntrinsicReward is an ordinary Gymnasium wrapper: SB3's env checker and PPO use it unchanged."""

from __future__ import annotations

import warnings

import gymnasium as gym
import pytest

import trmgym  # noqa: F401 - registers the envs
from trmgym.curiosity import RND, CombinedBonus, CountBonus, IntrinsicReward

sb3 = pytest.importorskip("stable_baselines3")
from stable_baselines3.common.env_checker import check_env  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402


def edit_maze_with_rnd(update_every: int = 64) -> IntrinsicReward:
    env = gym.make("trmgym/Maze-v0", action_mode="edit")
    bonus = CombinedBonus(
        {"rnd": RND(env.observation_space, seed=0), "count": CountBonus(env.observation_space)},
        weights={"count": 0.1},
    )
    return IntrinsicReward(env, bonus, coef=0.01, update_every=update_every)


def test_wrapped_env_passes_the_sb3_env_checker() -> None:
    wrapped = edit_maze_with_rnd()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SB3's advice on int Box observations, not failures
        check_env(wrapped, warn=False)


def test_wrapped_walk_maze_passes_gymnasiums_env_checker() -> None:
    from gymnasium.utils.env_checker import check_env as gym_check_env

    env = gym.make("trmgym/Maze-v0", size=7, action_mode="walk", reward="sparse")
    # the checker wants equal rewards after equal seeded resets (a frozen bonus rates without
    # counting) and rebuilds the env from env.spec around the same bonus (which a bonus with
    # per-row state, e.g. episodic counts, refuses while the first wrapper is alive)
    bonus = CountBonus(env.observation_space, obs_keys=["position"], frozen=True)
    wrapped = IntrinsicReward(env, bonus, coef=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "most likely has a wrapper applied": it has, on purpose
        gym_check_env(wrapped, skip_render_check=True)


def test_ppo_trains_through_the_wrapper_and_the_bonus_learns_online() -> None:
    wrapped = edit_maze_with_rnd(update_every=64)
    rnd = wrapped.bonus.bonuses["rnd"]
    venv = DummyVecEnv([lambda: wrapped])
    model = sb3.PPO(
        "MultiInputPolicy", venv, n_steps=128, batch_size=64, n_epochs=1, seed=0, device="cpu"
    )
    model.learn(total_timesteps=256)
    assert model.num_timesteps == 256
    assert rnd.updates == 256 // 64  # one training step of the bonus per 64 env steps
    assert wrapped.bonus.bonuses["count"].counts  # visits were counted
    assert set(wrapped.last_losses) == {"train/rnd/rnd_loss", "train/count/distinct_codes"}
