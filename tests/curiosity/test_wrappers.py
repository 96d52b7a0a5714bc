"""IntrinsicReward / IntrinsicRewardVector on trmgym's Maze envs (single and native vector)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import trmgym  # noqa: F401 - registers the envs (tests only: the curiosity room never imports it)
from tests.curiosity.helpers import small_space
from trmgym.checkpoint import load, save_atomic
from trmgym.curiosity import (
    RND,
    CombinedBonus,
    CountBonus,
    ForwardModelSurprise,
    IntrinsicReward,
    IntrinsicRewardVector,
)


def keep_answer(obs: dict[str, np.ndarray], halt: int | np.ndarray = 0) -> dict[str, np.ndarray]:
    """The grid action that proposes the current draft again (the state repeats)."""
    return {"answer": obs["answer"].copy(), "halt": np.asarray(halt)}


def maze(**kwargs: object) -> gym.Env:
    return gym.make("trmgym/Maze-v0", **kwargs)


def test_reward_is_extrinsic_plus_coef_times_bonus_exactly() -> None:
    plain, env = maze(), maze()
    wrapped = IntrinsicReward(
        env, CountBonus(env.observation_space, hash="exact", beta=2.0), coef=0.25
    )
    obs, _ = wrapped.reset(seed=3)
    plain_obs, _ = plain.reset(seed=3)
    for visit in range(1, 5):
        obs, reward, _, _, info = wrapped.step(keep_answer(obs))
        plain_obs, plain_reward, _, _, _ = plain.step(keep_answer(plain_obs))
        assert info["extrinsic_reward"] == plain_reward
        assert info["intrinsic_reward"] == 2.0 / np.sqrt(visit)  # the same state, visit n
        assert reward == plain_reward + 0.25 * info["intrinsic_reward"]


def test_reset_observations_are_never_rated() -> None:
    env = maze()
    counts = CountBonus(env.observation_space, hash="exact")
    wrapped = IntrinsicReward(env, counts)
    for episode in range(3):
        obs, _ = wrapped.reset(seed=episode)
        obs, _, terminated, _, _ = wrapped.step(keep_answer(obs, halt=1))
        assert terminated
    assert sum(counts.counts.values()) == 3  # one rated step per episode, no reset counted


def test_online_training_every_update_every_steps_unless_frozen() -> None:
    env = maze()
    rnd = RND(env.observation_space, seed=0)
    wrapped = IntrinsicReward(env, rnd, update_every=4)
    obs, _ = wrapped.reset(seed=0)
    for _ in range(9):
        obs, *_ = wrapped.step(keep_answer(obs))
    assert rnd.updates == 2 and set(wrapped.last_losses) == {"train/rnd_loss"}
    assert len(wrapped.state_dict()["pending"]["obs"]["grid"]) == 1

    frozen = RND(env.observation_space, seed=0, frozen=True)
    before = copy.deepcopy(frozen.state_dict())
    wrapped = IntrinsicReward(maze(), frozen, update_every=1)
    obs, _ = wrapped.reset(seed=0)
    for _ in range(3):
        obs, *_ = wrapped.step(keep_answer(obs))
    assert frozen.updates == 0 and wrapped.state_dict()["pending"] is None
    for name, tensor in before["predictor"].items():
        assert np.array_equal(tensor.numpy(), frozen.predictor.state_dict()[name].numpy())


def test_wrapper_state_round_trip_resumes_exactly() -> None:
    def make(seed: int) -> IntrinsicReward:
        env = maze()
        return IntrinsicReward(
            env, RND(env.observation_space, seed=seed, learning_rate=1e-3), update_every=3
        )

    original = make(0)
    obs, _ = original.reset(seed=1)
    for _ in range(4):  # one update done, one transition pending
        obs, *_ = original.step(keep_answer(obs))
    restored = make(7)
    restored.load_state_dict(copy.deepcopy(original.state_dict()))
    runs = []
    for wrapped in (original, restored):
        obs, _ = wrapped.reset(seed=2)
        rewards = []
        for _ in range(6):
            obs, reward, *_ = wrapped.step(keep_answer(obs))
            rewards.append((reward, dict(wrapped.last_losses)))
        runs.append(rewards)
    assert runs[0] == runs[1]


def test_bad_arguments_name_the_field() -> None:
    env = maze()
    counts = CountBonus(env.observation_space)
    with pytest.raises(ValueError, match="coef must be a finite float >= 0, got -0.5"):
        IntrinsicReward(env, counts, coef=-0.5)
    with pytest.raises(ValueError, match="update_every must be an int >= 1, got 0"):
        IntrinsicReward(env, counts, update_every=0)
    with pytest.raises(TypeError, match="bonus must be an IntrinsicBonus .* got str"):
        IntrinsicReward(env, "rnd")
    with pytest.raises(
        ValueError, match=r"env.observation_space\['answer'\] is Box.*built for shape \(3, 3\)"
    ):
        IntrinsicReward(env, CountBonus(small_space()))
    with pytest.raises(RuntimeError, match="call reset"):
        IntrinsicReward(env, counts).step(env.action_space.sample())


@pytest.mark.parametrize("vectorization_mode", [None, "sync"])  # trmgym's native, Gymnasium's
def test_vector_wrapper_skips_the_next_step_autoreset_rows(vectorization_mode: str | None) -> None:
    env = gym.make_vec("trmgym/Maze-v0", num_envs=4, vectorization_mode=vectorization_mode)
    counts = CountBonus(env.single_observation_space, hash="exact")
    wrapped = IntrinsicRewardVector(env, counts, coef=0.5, update_every=100)
    obs, _ = wrapped.reset(seed=0)
    halt = np.array([1, 1, 0, 0])
    obs, reward, terminated, _, info = wrapped.step(keep_answer(obs, halt))
    assert terminated.tolist() == [True, True, False, False]
    assert info["intrinsic_reward"].tolist() == [1.0] * 4  # the finishing step is a transition
    obs, reward, terminated, _, info = wrapped.step(keep_answer(obs, np.zeros(4, dtype=np.int64)))
    # rows 0 and 1 autoreset: no transition, no bonus, nothing counted, nothing stored
    assert info["intrinsic_reward"].tolist() == [0.0, 0.0, 1 / np.sqrt(2), 1 / np.sqrt(2)]
    assert reward.tolist() == (info["extrinsic_reward"] + 0.5 * info["intrinsic_reward"]).tolist()
    assert reward[:2].tolist() == [0.0, 0.0]
    assert sum(counts.counts.values()) == 6
    assert counts.count(obs)[:2].tolist() == [0, 0]  # the new puzzles' first observations
    assert len(wrapped.state_dict()["pending"]["obs"]["grid"]) == 6
    assert info["_intrinsic_reward"].all() and info["_extrinsic_reward"].all()
    obs, _, _, _, info = wrapped.step(keep_answer(obs, np.zeros(4, dtype=np.int64)))
    assert info["intrinsic_reward"].tolist() == [1.0, 1.0, 1 / np.sqrt(3), 1 / np.sqrt(3)]


def test_vector_wrapper_rates_the_final_observation_in_same_step_mode() -> None:
    env = gym.make_vec("trmgym/Maze-v0", num_envs=4, autoreset_mode="same_step")
    counts = CountBonus(env.single_observation_space, hash="exact")
    wrapped = IntrinsicRewardVector(env, counts)
    obs, _ = wrapped.reset(seed=0)
    obs, _, terminated, _, info = wrapped.step(keep_answer(obs, np.array([1, 0, 0, 0])))
    final = {key: value[None] for key, value in info["final_obs"][0].items()}
    assert counts.count(final).tolist() == [1]
    assert counts.count({key: value[:1] for key, value in obs.items()}).tolist() == [0]
    _, _, _, _, info = wrapped.step(keep_answer(obs, np.zeros(4, dtype=np.int64)))
    # row 0 now starts from the new puzzle: its first transition is a first visit
    assert info["intrinsic_reward"][0] == 1.0


def test_vector_wrapper_trains_the_bonus_online() -> None:
    env = gym.make_vec("trmgym/Maze-v0", num_envs=4)
    rnd = RND(env.single_observation_space, seed=0)
    wrapped = IntrinsicRewardVector(env, rnd, update_every=2)
    obs, _ = wrapped.reset(seed=0)
    for _ in range(4):
        obs, *_ = wrapped.step(keep_answer(obs, np.zeros(4, dtype=np.int64)))
    assert rnd.updates == 2 and wrapped.last_losses["train/rnd_loss"] > 0


def test_vector_wrapper_resumes_exactly_from_a_weights_only_checkpoint(tmp_path: Path) -> None:
    """Every bonus's state goes through trmgym's checkpoint files (torch.load weights_only)."""

    def make(seed: int) -> IntrinsicRewardVector:
        env = gym.make_vec("trmgym/Maze-v0", num_envs=2)
        space, actions = env.single_observation_space, env.single_action_space
        bonus = CombinedBonus(
            {
                "rnd": RND(space, seed=seed, learning_rate=1e-3),
                "count": CountBonus(space, seed=seed),
                "icm": ForwardModelSurprise(space, actions, seed=seed),
            }
        )
        return IntrinsicRewardVector(env, bonus, update_every=2)

    def run(wrapped: IntrinsicRewardVector, seed: int, steps: int, halt_at: int) -> list[Any]:
        obs, _ = wrapped.reset(seed=seed)
        seen = []
        for step in range(steps):
            halt = np.full(2, int(step == halt_at), dtype=np.int64)
            obs, reward, *_ = wrapped.step(keep_answer(obs, halt))
            seen.append((reward.tolist(), dict(wrapped.last_losses)))
        return seen

    original = make(0)
    run(original, seed=4, steps=3, halt_at=1)  # an update done, a transition pending
    path = save_atomic(original.state_dict(), tmp_path)
    restored = make(5)
    restored.load_state_dict(load(path))
    runs = [run(wrapped, seed=6, steps=5, halt_at=2) for wrapped in (original, restored)]
    assert runs[0] == runs[1]


def test_a_bonus_with_per_row_state_serves_one_live_wrapper_at_a_time() -> None:
    """Two single-env wrappers around one episodic bonus would share one row's table (one env's
    episode end would empty the other's counts): refused, until the first is closed."""
    from trmgym.curiosity import CountBonus, IntrinsicReward

    def maze() -> gym.Env:
        return gym.make("trmgym/Maze-v0", size=5, action_mode="walk")

    first = maze()
    episodic = CountBonus(first.observation_space, episodic=True)
    held = IntrinsicReward(first, episodic)
    with pytest.raises(ValueError, match="keeps state per env row .* give each env its own bonus"):
        IntrinsicReward(maze(), episodic)
    held.close()
    IntrinsicReward(maze(), episodic)  # released by close
    lifelong = CountBonus(first.observation_space)
    IntrinsicReward(maze(), lifelong)
    IntrinsicReward(maze(), lifelong)  # lifelong counts are shared on purpose


def test_wrappers_pass_action_masks_through() -> None:
    from trmgym.curiosity import CountBonus, IntrinsicReward, IntrinsicRewardVector

    single = gym.make("trmgym/Maze-v0", size=5, action_mode="walk")
    wrapped = IntrinsicReward(single, CountBonus(single.observation_space))
    wrapped.reset(seed=0)
    np.testing.assert_array_equal(wrapped.action_masks(), single.unwrapped.action_masks())
    vec = gym.make_vec("trmgym/Maze-v0", num_envs=3, size=5, action_mode="walk")
    wrapped_vec = IntrinsicRewardVector(vec, CountBonus(vec.single_observation_space))
    wrapped_vec.reset(seed=0)
    np.testing.assert_array_equal(wrapped_vec.action_masks(), vec.action_masks())
    assert wrapped_vec.action_masks().shape == (3, 5)
