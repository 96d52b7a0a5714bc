"""Wall time of one sweep on one machine: jobs in turn, in parallel, and in parallel oversubscribed.

The same sweep (``experiment=smoke``, ``strategy=naive,replay seed=0,1,2`` by default: 6 jobs)
runs three ways, each in a fresh sweep directory:

- ``basic``: Hydra's basic launcher, one job after the other, each with every core
  (``run.threads=auto``);
- ``joblib_auto``: ``hydra/launcher=joblib hydra.launcher.n_jobs=N`` with ``run.threads=auto``,
  so each job gets ``cores // N`` threads;
- ``joblib_oversubscribed``: the same with ``run.threads=<cores>``, torch's default outside a
  sweep: N jobs x cores threads.

Usage::

    python benchmarks/bench_sweep.py [--n-jobs 2] [--strategies naive,replay] [--seeds 0,1,2]
        [--repeats 1] [-- extra overrides, e.g. run.train_steps=20]

Prints one JSON line: each variant's wall times (median over ``--repeats``, variants taken in
turn so that a change in the machine's load hits all of them), the threads its jobs chose (from
their ``cli.log``), and the ratios ``basic / joblib_auto`` (the speed-up of running jobs in
parallel) and ``joblib_oversubscribed / joblib_auto`` (the cost of oversubscription). An untimed
one-job run first fills the puzzle caches. Time it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trmgym.threads import usable_cores  # noqa: E402  (this checkout, not an installed copy)

THREADS_LINE = re.compile(r"threads: torch intra-op (\d+)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line (overrides after ``--`` go to every job)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-jobs", type=int, default=2, help="joblib jobs at once")
    p.add_argument("--strategies", default="naive,replay", help="the strategy=... sweep")
    p.add_argument("--seeds", default="0,1,2", help="the seed=... sweep")
    p.add_argument("--experiment", default="smoke")
    p.add_argument("--repeats", type=int, default=1, help="timed sweeps per variant (median)")
    p.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    p.add_argument("overrides", nargs="*", help="more overrides for every job, after --")
    args = p.parse_args(argv)
    if args.n_jobs < 1 or args.repeats < 1:
        p.error("--n-jobs and --repeats must be >= 1")
    return args


def trmgym_run(overrides: list[str], cwd: Path) -> float:
    """Run ``trmgym run`` (this checkout) with ``overrides``; its wall time in seconds."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "trmgym.cli", "run", *overrides],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"trmgym run {' '.join(overrides)} failed:\n{done.stderr[-3000:]}")
    return wall


def job_threads(sweep_dir: Path) -> list[int]:
    """The torch threads each job of a sweep reported in its cli.log."""
    found = []
    for log in sorted(sweep_dir.glob("*/cli.log")):
        match = THREADS_LINE.search(log.read_text())
        if match:
            found.append(int(match.group(1)))
    return found


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Time the three variants and print the JSON line."""
    args = parse_args(argv)
    cores = usable_cores()
    base = [
        f"experiment={args.experiment}",
        "device=cpu",
        "console=false",
        *args.overrides,
    ]
    grid = [f"strategy={args.strategies}", f"seed={args.seeds}"]
    jobs = len(args.strategies.split(",")) * len(args.seeds.split(","))
    joblib = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.n_jobs}"]
    variants = {
        "basic": ["run.threads=auto"],
        "joblib_auto": [*joblib, "run.threads=auto"],
        "joblib_oversubscribed": [*joblib, f"run.threads={cores}"],
    }
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        # untimed: fill the puzzle caches (and the OS file cache) with one job
        trmgym_run([*base, f"hydra.run.dir={workdir / 'warmup'}"], workdir)
        walls: dict[str, list[float]] = {name: [] for name in variants}
        threads: dict[str, list[int]] = {}
        for repeat in range(args.repeats):
            for name, extra in variants.items():
                sweep_dir = workdir / f"{name}-{repeat}"
                overrides = ["-m", *base, *grid, *extra, f"hydra.sweep.dir={sweep_dir}"]
                walls[name].append(trmgym_run(overrides, workdir))
                finished = len(list(sweep_dir.glob("*/results.json")))
                if finished != jobs:
                    raise SystemExit(f"{name}: {finished} of {jobs} jobs wrote results.json")
                threads[name] = sorted(set(job_threads(sweep_dir)))
    median = {name: statistics.median(values) for name, values in walls.items()}
    report = {
        "benchmark": "sweep",
        "jobs": jobs,
        "usable_cores": cores,
        "n_jobs": args.n_jobs,
        "overrides": [*base, *grid],
        "repeats": args.repeats,
        "variants": {
            name: {
                "wall_s": round(median[name], 2),
                "wall_s_all": [round(w, 2) for w in walls[name]],
                "torch_threads_per_job": threads[name],
                "launcher_overrides": variants[name],
            }
            for name in variants
        },
        "ratios": {
            "basic/joblib_auto": round(median["basic"] / median["joblib_auto"], 3),
            "joblib_oversubscribed/joblib_auto": round(
                median["joblib_oversubscribed"] / median["joblib_auto"], 3
            ),
        },
    }
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
