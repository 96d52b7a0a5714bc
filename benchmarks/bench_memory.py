"""Quality and speed benchmark of the associative memory bank (``trmgym.memory.AssociativeMemory``).

(a) Exact-key recall at 4,096 slots x 64-d random unit-norm keys: the share of stored keys whose
read's top slot is their own (argmax) and whose read value has cosine > 0.99 with the stored one.

(b) Large mode at 100k x 64: queries/s of one read of a batch (median of ``--repeats``), for the
faiss index and for the exact torch path, and recall@1 of faiss against the exact search (top slot
equal), for queries that are stored keys plus noise of relative norm ``--noise`` (the memory's use:
retrieve what resembles a stored state) and for uniformly random queries (the worst case for any
approximate index: random 64-d data has no structure to exploit). Also the build times: the first
write of all keys (exact search until the index is trained, then k-means and adding every key),
:meth:`rebuild_index`, and an overwrite of 1,000 slots in the full bank (faiss ``remove_ids`` and
``add_with_ids``).

Usage::

    python benchmarks/bench_memory.py [--capacity 100000] [--batch 1024] [--repeats 3]

Prints one JSON line. Timings depend on the machine's load: the JSON records torch's and faiss's
thread counts and the load average at the start.
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
import torch.nn.functional as F

from trmgym.memory import AssociativeMemory


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--recall-capacity", type=int, default=4096, help="slots in part (a)")
    p.add_argument("--capacity", type=int, default=100_000, help="slots in part (b)")
    p.add_argument("--key-dim", type=int, default=64)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--batch", type=int, default=1024, help="queries per timed read")
    p.add_argument("--repeats", type=int, default=3, help="timed reads (median reported)")
    p.add_argument("--noise", type=float, default=0.5, help="relative norm of the query noise")
    p.add_argument("--nlist", type=int, default=0, help="faiss lists (0: sqrt(capacity))")
    p.add_argument("--nprobe", type=int, default=16, help="faiss lists searched")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for name in ("recall_capacity", "capacity", "key_dim", "heads", "batch", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def unit_rows(count: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    rows = torch.randn(count, dim, generator=generator)
    return rows / rows.norm(dim=1, keepdim=True)


def noisy(keys: torch.Tensor, noise: float, generator: torch.Generator) -> torch.Tensor:
    """``keys`` plus a random direction of norm ``noise * |key|``."""
    return keys + noise * keys.norm(dim=1, keepdim=True) * unit_rows(*keys.shape, generator)


def exact_key_recall(args: argparse.Namespace, generator: torch.Generator) -> dict[str, Any]:
    """Part (a): a full bank read back with its own keys."""
    capacity, dim = args.recall_capacity, args.key_dim
    memory = AssociativeMemory(
        capacity, key_dim=dim, value_dim=dim, num_heads=args.heads, forget_threshold=1.0
    )
    keys, values = unit_rows(capacity, dim, generator), torch.randn(capacity, dim)
    slots = memory.write(keys, values)
    start = time.perf_counter()
    read = memory.read(keys)
    seconds = time.perf_counter() - start
    cosine = F.cosine_similarity(read.values, values)
    return {
        "capacity": capacity,
        "key_dim": dim,
        "num_heads": args.heads,
        "temperature": memory.temperature,
        "top_k": memory.top_k,
        "argmax_recall": (read.slots == slots).float().mean().item(),
        "cosine_recall": (cosine > 0.99).float().mean().item(),
        "min_cosine": cosine.min().item(),
        "read_seconds": round(seconds, 4),
    }


def timed_reads(memory: AssociativeMemory, queries: torch.Tensor, repeats: int) -> float:
    """Median seconds of one untracked read of ``queries`` (after one warm-up read)."""
    memory.read(queries, track=False)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        memory.read(queries, track=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def large_mode(args: argparse.Namespace, generator: torch.Generator) -> dict[str, Any]:
    """Part (b): faiss against exact search at ``--capacity`` slots."""
    capacity, dim = args.capacity, args.key_dim
    options = {
        "key_dim": dim,
        "value_dim": dim,
        "num_heads": args.heads,
        "forget_threshold": 1.0,
        "faiss_nlist": args.nlist or None,
        "faiss_nprobe": args.nprobe,
        "seed": args.seed,
    }
    keys, values = unit_rows(capacity, dim, generator), torch.randn(capacity, dim)
    fast = AssociativeMemory(capacity, index="faiss", **options)
    exact = AssociativeMemory(capacity, index="exact", **options)
    start = time.perf_counter()
    fast.write(keys, values)
    first_write = time.perf_counter() - start
    exact.write(keys, values)
    start = time.perf_counter()
    fast.rebuild_index()
    rebuild = time.perf_counter() - start

    picked = torch.randint(capacity, (args.batch,), generator=generator)
    query_sets = {
        f"stored_keys_noise_{args.noise}": noisy(keys[picked], args.noise, generator),
        "stored_keys_noise_0.25": noisy(keys[picked], 0.25, generator),
        "random": unit_rows(args.batch, dim, generator),
    }
    recall = {}
    for name, queries in query_sets.items():
        truth = exact.read(queries, track=False).slots
        recall[name] = (fast.read(queries, track=False).slots == truth).float().mean().item()
    queries = query_sets[f"stored_keys_noise_{args.noise}"]
    faiss_seconds = timed_reads(fast, queries, args.repeats)
    exact_seconds = timed_reads(exact, queries, args.repeats)

    start = time.perf_counter()
    fast.write(unit_rows(1000, dim, generator), torch.randn(1000, dim))
    overwrite = time.perf_counter() - start
    return {
        "capacity": capacity,
        "key_dim": dim,
        "batch": args.batch,
        "top_k": fast.top_k,
        "faiss": {
            "index": f"IndexIVFFlat(nlist={fast.faiss_nlist}, nprobe={fast.faiss_nprobe})",
            "queries_per_second": round(args.batch / faiss_seconds),
            "recall_at_1": recall,
            "first_write_seconds": round(first_write, 3),
            "rebuild_index_seconds": round(rebuild, 3),
            "overwrite_1000_seconds": round(overwrite, 4),
        },
        "exact": {"queries_per_second": round(args.batch / exact_seconds)},
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        import faiss
    except ImportError:
        sys.exit("bench_memory needs faiss: pip install 'trmgym[faiss]'")
    generator = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)  # the values' draws (not what is measured)
    start = time.perf_counter()
    result = {
        "load_average_1min": os.getloadavg()[0],
        "torch_threads": torch.get_num_threads(),
        "faiss_threads": faiss.omp_get_max_threads(),
        "exact_key_recall": exact_key_recall(args, generator),
        "large": large_mode(args, generator),
    }
    result["total_seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
