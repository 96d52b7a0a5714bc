"""Environment throughput: the native batched env against Gymnasium's SyncVectorEnv, and
unique 9x9 Sudoku generated per second. Prints one JSON line.

    python benchmarks/bench_envs.py [--batch 1024] [--steps 64] [--sync-steps 16]

Both vector envs step B = 1024 Sudoku 9x9 puzzles (45 blanks) in grid mode with the same
precomputed actions (the current drafts, never halting, so each puzzle truncates after 16 steps and
is autoreset: resets are part of the measured work). Throughput is env-steps per second (B per
call); ``vector_speedup`` is their ratio measured in the same process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import gymnasium as gym
import numpy as np

import trmgym
from trmgym.envs import sudoku_gen

ENV_ID = "trmgym/Sudoku-v0"
KWARGS = {"size": 9, "blanks": 45}


def steps_per_second(env: gym.vector.VectorEnv, steps: int, batch: int) -> float:
    obs, _ = env.reset(seed=0)
    action = {"answer": obs["answer"].copy(), "halt": np.zeros(batch, dtype=np.int64)}
    env.step(action)  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        env.step(action)
    seconds = time.perf_counter() - start
    env.close()
    return steps * batch / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=64, help="calls timed on the native env")
    parser.add_argument("--sync-steps", type=int, default=16, help="calls timed on SyncVectorEnv")
    parser.add_argument(
        "--generate", type=int, default=1000, help="9x9 puzzles generated from scratch"
    )
    args = parser.parse_args()

    native = gym.make_vec(
        ENV_ID, num_envs=args.batch, vectorization_mode="vector_entry_point", **KWARGS
    )
    native_rate = steps_per_second(native, args.steps, args.batch)
    sync = gym.make_vec(ENV_ID, num_envs=args.batch, vectorization_mode="sync", **KWARGS)
    sync_rate = steps_per_second(sync, args.sync_steps, args.batch)

    rng = np.random.default_rng(0)
    sudoku_gen.generate_puzzles(9, 45, 16, rng)  # warm-up
    start = time.perf_counter()
    puzzles, _ = sudoku_gen.generate_puzzles(9, 45, args.generate, rng)
    gen_seconds = time.perf_counter() - start
    counts = sudoku_gen.count_solutions(puzzles)
    if not np.all(counts == 1):
        raise SystemExit("generated puzzles without a unique solution")

    print(
        json.dumps(
            {
                "benchmark": "envs",
                "env": ENV_ID,
                "batch": args.batch,
                "batched_steps_per_s": round(native_rate, 1),
                "sync_vector_steps_per_s": round(sync_rate, 1),
                "vector_speedup": round(native_rate / sync_rate, 2),
                "sudoku9_blanks": 45,
                "sudoku9_unique_generated_per_s": round(args.generate / gen_seconds, 1),
                "cpu_count": os.cpu_count(),
                "machine": platform.machine(),
                "trmgym": trmgym.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
