"""Benchmark of Sudoku generation: unique puzzles per second from scratch, and draws per second.

Prints one JSON object. "generate" rows time :func:`trmgym.envs.sudoku_gen.generate_puzzles`
(random solution grids, digging, final uniqueness check; no cache involved); "sample" rows time
:meth:`SudokuSource.sample` from an in-memory pool (augmentation, reveals, split hash).

    python benchmarks/bench_sudoku_gen.py --count 2000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from trmgym.envs import sudoku_gen
from trmgym.envs.sudoku import DEFAULT_BLANKS, MAX_BLANKS, SudokuSource


def time_generation(size: int, blanks: int, count: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    sudoku_gen.generate_puzzles(size, blanks, 16, rng)  # warm-up (geometry tables)
    start = time.perf_counter()
    puzzles, _ = sudoku_gen.generate_puzzles(size, blanks, count, rng)
    seconds = time.perf_counter() - start
    assert np.all((puzzles == 0).sum(axis=(1, 2)) == blanks)
    return {
        "size": size,
        "blanks": blanks,
        "count": count,
        "seconds": round(seconds, 3),
        "puzzles_per_second": round(count / seconds, 1),
    }


def time_sampling(size: int, batch: int, seed: int) -> dict[str, float]:
    source = SudokuSource(size=size, pool_size=256, cache=False)
    source.pool()
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for blanks in (DEFAULT_BLANKS[size], DEFAULT_BLANKS[size] // 2):
        source.sample(rng, batch, {"blanks": blanks})
    seconds = time.perf_counter() - start
    return {"size": size, "batch": batch, "draws_per_second": round(2 * batch / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="puzzles per 9x9 measurement")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cases = [(4, DEFAULT_BLANKS[4]), (6, DEFAULT_BLANKS[6]), (9, 45), (9, 50), (9, MAX_BLANKS[9])]
    generate = [
        time_generation(size, blanks, args.count if size == 9 else 4 * args.count, args.seed)
        for size, blanks in cases
    ]
    sample = [time_sampling(size, 4096, args.seed) for size in (4, 6, 9)]
    print(
        json.dumps(
            {
                "benchmark": "sudoku_gen",
                "generate": generate,
                "sample": sample,
                "numpy": np.__version__,
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
