"""SB3 VecEnv throughput: trmgym's SB3VecEnv over the native batched env against SB3's DummyVecEnv
of single envs. Prints one JSON line.

    python benchmarks/bench_sb3_adapter.py [--batch 64] [--steps 200] [--repeats 5] [--ppo-steps 0]

Both step the same env (Maze 9x9 in edit mode by default, ``--env``) with ``B`` rows and the same
precomputed uniform random edit actions (about one in 30 halts, so puzzles end and are reset by
each VecEnv's own autoreset: resets are part of the measured work). Each repeat times ``--steps``
calls of ``step`` on a fresh env; the figure is the median over ``--repeats`` of env-steps per
second (``B`` per call), and ``speedup`` is the adapter's median over DummyVecEnv's, measured in
the same process. ``--ppo-steps N`` also times ``PPO.learn(N)`` (env steps, an SB3 PPO with the
token-grid extractor, ``n_steps=16``) on each VecEnv, which includes the network's work.
Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import stable_baselines3
import torch
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

import trmgym
from trmgym.agents.baselines import SB3PPOConfig, make_baseline_agent
from trmgym.agents.sb3_vec_env import SB3VecEnv

ENVS = {
    "maze": ("trmgym/Maze-v0", {"size": 9}),
    "sudoku": ("trmgym/Sudoku-v0", {"size": 9, "blanks": 45}),
}


def adapter(env_id: str, kwargs: dict, batch: int, limit: int) -> VecEnv:
    native = gym.make_vec(
        env_id,
        num_envs=batch,
        autoreset_mode="same_step",
        max_episode_steps=limit,
        action_mode="edit",
        **kwargs,
    )
    env = SB3VecEnv(native)
    env.seed(0)
    return env


def dummy(env_id: str, kwargs: dict, batch: int, limit: int) -> VecEnv:
    def make() -> gym.Env:
        return gym.make(env_id, max_episode_steps=limit, action_mode="edit", **kwargs)

    env = DummyVecEnv([make] * batch)
    env.seed(0)
    return env


def steps_per_second(env: VecEnv, actions: np.ndarray) -> float:
    env.reset()
    env.step(actions[0])  # warm-up
    start = time.perf_counter()
    for row in actions:
        env.step(row)
    seconds = time.perf_counter() - start
    env.close()
    return actions.size / seconds


def ppo_steps_per_second(env: VecEnv, steps: int, batch: int) -> float:
    agent = make_baseline_agent(
        SB3PPOConfig(n_steps=16, batch_size=16 * batch, n_epochs=1),
        observation_space=env.observation_space,
        action_space=env.action_space,
        num_envs=batch,
        seed=0,
        device="cpu",
    )
    start = time.perf_counter()
    agent.algo.set_env(env, force_reset=True)
    agent.algo.learn(steps)
    seconds = time.perf_counter() - start
    env.close()
    return agent.num_timesteps / seconds


def median_rate(measure: Callable[[], float], repeats: int) -> tuple[float, list[float]]:
    rates = [measure() for _ in range(repeats)]
    return statistics.median(rates), rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=sorted(ENVS), default="maze")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200, help="step calls per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--limit", type=int, default=82, help="reasoning-step limit")
    parser.add_argument("--ppo-steps", type=int, default=0, help="env steps of PPO.learn (0: skip)")
    args = parser.parse_args()
    env_id, kwargs = ENVS[args.env]
    n = adapter(env_id, kwargs, 1, args.limit).action_space.n
    rng = np.random.default_rng(0)
    actions = rng.integers(0, n - 1, size=(args.steps, args.batch))
    actions[rng.random(actions.shape) < 1 / 30] = n - 1  # halt now and then

    result: dict = {
        "benchmark": "sb3_adapter",
        "env": env_id,
        "env_kwargs": {**kwargs, "action_mode": "edit", "max_episode_steps": args.limit},
        "batch": args.batch,
        "steps_per_repeat": args.steps,
        "repeats": args.repeats,
    }
    for name, build in (("adapter", adapter), ("dummy_vec_env", dummy)):
        median, rates = median_rate(
            lambda build=build: steps_per_second(
                build(env_id, kwargs, args.batch, args.limit), actions
            ),
            args.repeats,
        )
        result[f"{name}_env_steps_per_s"] = median
        result[f"{name}_repeats"] = rates
    result["speedup"] = result["adapter_env_steps_per_s"] / result["dummy_vec_env_env_steps_per_s"]
    if args.ppo_steps:
        for name, build in (("adapter", adapter), ("dummy_vec_env", dummy)):
            median, rates = median_rate(
                lambda build=build: ppo_steps_per_second(
                    build(env_id, kwargs, args.batch, args.limit), args.ppo_steps, args.batch
                ),
                args.repeats,
            )
            result[f"ppo_{name}_env_steps_per_s"] = median
            result[f"ppo_{name}_repeats"] = rates
        result["ppo_speedup"] = (
            result["ppo_adapter_env_steps_per_s"] / result["ppo_dummy_vec_env_env_steps_per_s"]
        )
    result.update(
        {
            "trmgym": trmgym.__version__,
            "stable_baselines3": stable_baselines3.__version__,
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        }
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
