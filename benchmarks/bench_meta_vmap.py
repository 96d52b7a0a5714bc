"""Meta-training throughput of MAML on the tiny TRM: tasks vmapped against a Python loop.

One *outer step* is :meth:`trmgym.meta.MAML.meta_loss` over a meta-batch of few-shot tasks (inner
loop on each task's support set, query loss of the adapted parameters), its backward (second order
by default) and an Adam step over ``maml.parameters()``. Throughput is tasks per second: outer
steps x meta-batch / wall time, the median of ``--repeats`` timed runs of ``--steps`` outer steps
each, after ``--warmup`` untimed steps, for ``vectorize=True`` (``torch.func.vmap`` over tasks)
and ``vectorize=False`` (a loop over tasks), and their ratio. The grids are random tokens (the
cost does not depend on them).

Usage::

    python benchmarks/bench_meta_vmap.py [--algorithm maml] [--seq 36] [--meta-batch 16] \\
        [--k 3] [--q 2] [--inner-steps 1] [--steps 3] [--repeats 3] [--threads 0]

Prints one JSON line. Timings depend on the machine's load: the JSON records the torch thread
count and the load average at the start.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

import torch

from trmgym.agents.trm import TRM, TRMConfig
from trmgym.meta import ALGORITHMS, MAML, FewShotBatch, TRMObjective


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algorithm", choices=tuple(ALGORITHMS), default="maml")
    p.add_argument("--seq", type=int, default=36, help="grid cells per puzzle")
    p.add_argument(
        "--meta-batch", type=int, default=8, help="tasks per outer step (meta.meta_batch)"
    )
    p.add_argument("--k", type=int, default=3, help="support pairs per task")
    p.add_argument("--q", type=int, default=2, help="query pairs per task")
    p.add_argument("--inner-steps", type=int, default=1)
    p.add_argument("--inner-lr", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=3, help="outer steps per timed run")
    p.add_argument("--repeats", type=int, default=3, help="timed runs (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed outer steps first")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for name in ("seq", "meta_batch", "k", "q", "inner_steps", "steps", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0 or args.threads < 0:
        p.error("--warmup and --threads must be >= 0")
    return args


def make_batch(args: argparse.Namespace, vocab: int, device: torch.device) -> FewShotBatch:
    """A meta-batch of random token grids."""
    g = torch.Generator().manual_seed(args.seed)
    grids = [
        torch.randint(1, vocab, (args.meta_batch, n, args.seq), generator=g)
        for n in (args.k, args.k, args.q, args.q)
    ]
    return FewShotBatch(*grids, torch.arange(args.meta_batch)).to(device)


def throughput(args: argparse.Namespace, vectorize: bool, device: torch.device) -> dict[str, Any]:
    """Tasks/s of meta-training with or without vmap over the tasks."""
    torch.manual_seed(args.seed)
    model = TRM(TRMConfig.tiny(seq_len=args.seq)).to(device)
    maml = MAML.from_name(
        args.algorithm,
        TRMObjective(model),
        inner_lr=args.inner_lr,
        inner_steps=args.inner_steps,
        vectorize=vectorize,
    )
    optimizer = torch.optim.Adam(maml.parameters(), lr=1e-4)
    batch = make_batch(args, model.config.vocab_size, device)

    def outer_step() -> float:
        loss, _ = maml.meta_loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    start = time.perf_counter()
    for _ in range(args.warmup):
        outer_step()
    warmup_s = time.perf_counter() - start
    runs = []
    for _ in range(args.repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(args.steps):
            outer_step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        runs.append(args.steps * args.meta_batch / (time.perf_counter() - start))
    return {
        "tasks_per_s": statistics.median(runs),
        "tasks_per_s_runs": runs,
        "warmup_s": warmup_s,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    load = os.getloadavg()[0]
    vmapped = throughput(args, True, device)
    looped = throughput(args, False, device)
    result = {
        "benchmark": "meta_vmap",
        "vectorize_true": vmapped,
        "vectorize_false": looped,
        "vmap_speedup": vmapped["tasks_per_s"] / looped["tasks_per_s"],
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average_1min": load,
        "args": vars(args),
    }
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
