"""Speed benchmark of the TRM network: seconds per act step and achieved matmul FLOP/s.

One *act step* is what a training loop does per env step: one forward over the T cycles (T-1
without gradient), the loss (token cross-entropy + the paper's BCE halting loss), backward
through the last cycle, and an AdamW step. The FLOP count is analytic (matmuls only): the forward
of all T cycles plus ~2x the forward of the last cycle (and heads) for the backward. The same run
times a 512x2048 @ 2048x512 matmul (8192^3 on a GPU), also right before every timed step, so the
achieved rate can be read as a fraction of what this (possibly shared) machine delivers then.

Usage::

    python benchmarks/bench_trm.py --hidden 512 --h-cycles 3 --l-cycles 6 --batch 8 --seq 81 \\
        --device cpu --repeats 4 [--compile] [--bf16]

Prints one JSON line. On CUDA it also reports bf16 eager and bf16 compiled figures (``variants``);
use ``--batch 768`` for the paper's GPU batch size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict
from typing import Any

import torch
import torch.nn.functional as F

from trmgym.agents.layers import swiglu_width
from trmgym.agents.trm import TRM, TRMConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hidden", type=int, default=512, help="hidden size D")
    p.add_argument("--heads", type=int, default=8, help="attention heads")
    p.add_argument("--expansion", type=float, default=4.0, help="SwiGLU expansion")
    p.add_argument("--layers", type=int, default=2, help="blocks in the network")
    p.add_argument("--h-cycles", type=int, default=3, help="T")
    p.add_argument("--l-cycles", type=int, default=6, help="n")
    p.add_argument("--block", choices=("attention", "mlp_mixer"), default="attention")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=81, help="grid cells per puzzle")
    p.add_argument("--task-embeddings", type=int, default=1, help="0 = no prefix positions")
    p.add_argument("--puzzle-emb-len", type=int, default=16, help="prefix positions")
    p.add_argument("--loss", choices=("softmax", "stablemax"), default="softmax")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=4, help="timed act steps (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed act steps first")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for the matmuls")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    args = p.parse_args(argv)
    for name in ("hidden", "heads", "layers", "h_cycles", "l_cycles", "batch", "seq", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def make_config(args: argparse.Namespace, bf16: bool) -> TRMConfig:
    """The TRMConfig the arguments describe."""
    return TRMConfig(
        seq_len=args.seq,
        hidden_size=args.hidden,
        num_heads=args.heads,
        expansion=args.expansion,
        num_layers=args.layers,
        h_cycles=args.h_cycles,
        l_cycles=args.l_cycles,
        block=args.block,
        num_task_embeddings=args.task_embeddings,
        puzzle_emb_len=args.puzzle_emb_len,
        loss=args.loss,
        forward_dtype="bfloat16" if bf16 else "float32",
    )


def act_step_flops(config: TRMConfig, batch: int) -> dict[str, float]:
    """Analytic matmul FLOPs (2 per multiply-add) of one act step."""
    dim, length = config.hidden_size, config.total_len
    tokens = batch * length
    inner = swiglu_width(dim, config.expansion)
    channel_mlp = 2 * tokens * dim * (3 * inner)  # gate+up (2*inner) and down (inner)
    if config.block == "attention":
        projections = 2 * tokens * dim * (4 * dim)  # qkv (3D) and output (D)
        scores = 2 * 2 * batch * length * length * dim  # QK^T and attention @ V, all heads
        mixing = projections + scores
    else:
        seq_inner = swiglu_width(length, config.expansion)
        mixing = 2 * batch * dim * length * (3 * seq_inner)
    net_call = config.num_layers * (mixing + channel_mlp)
    cycle = (config.l_cycles + 1) * net_call
    heads = 2 * batch * config.seq_len * dim * config.vocab_size + 2 * batch * dim
    forward = config.h_cycles * cycle + heads
    backward = 2 * (cycle + heads)
    return {"forward": forward, "backward": backward, "total": forward + backward}


def peak_shape(device: torch.device) -> tuple[int, int, int]:
    """(m, k, n) of the reference matmul: 512x2048 @ 2048x512 on CPU; a GPU needs a bigger one."""
    return (8192, 8192, 8192) if device.type == "cuda" else (512, 2048, 512)


def matmul_peak(device: torch.device, dtype: torch.dtype, repeats: int = 10) -> float:
    """Best FLOP/s of the :func:`peak_shape` matmul on ``device`` right now."""
    m, k, n = peak_shape(device)
    a = torch.randn(m, k, device=device, dtype=dtype)
    b = torch.randn(k, n, device=device, dtype=dtype)
    inner = 10 if device.type == "cuda" else 4
    best = float("inf")
    for _ in range(repeats + 1):  # best of several: the machine may be shared
        sync(device)
        start = time.perf_counter()
        for _ in range(inner):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - start) / inner)
    return 2 * m * k * n / best


def sync(device: torch.device) -> None:
    """Wait for queued GPU work so wall-clock timings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_act_steps(
    args: argparse.Namespace, device: torch.device, bf16: bool, compiled: bool
) -> dict[str, Any]:
    """Build a model and time ``args.repeats`` act steps after ``args.warmup`` untimed ones."""
    torch.manual_seed(0)
    config = make_config(args, bf16)
    model = TRM(config).to(device)
    runner = torch.compile(model) if compiled else model
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-4, weight_decay=0.1, fused=device.type == "cuda"
    )
    x = torch.randint(1, config.vocab_size, (args.batch, args.seq), device=device)
    targets = torch.randint(1, config.vocab_size, (args.batch, args.seq), device=device)
    task_ids = torch.zeros(args.batch, dtype=torch.long, device=device)
    carry = model.initial_carry(args.batch, device)

    def act_step(carry: Any) -> Any:
        out = runner(x, carry, task_ids)
        token_loss = model.cross_entropy(out.logits, targets)
        correct = (out.logits.argmax(-1) == targets).all(-1).float()
        halt_loss = F.binary_cross_entropy_with_logits(out.q_halt, correct)
        (token_loss + 0.5 * halt_loss).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return out.carry

    start = time.perf_counter()
    for _ in range(max(args.warmup, 3 if compiled else 0)):
        carry = act_step(carry)
    sync(device)
    warmup_s = time.perf_counter() - start
    flops = act_step_flops(config, args.batch)["total"]
    peak_dtype = torch.bfloat16 if bf16 and device.type == "cuda" else torch.float32
    times, ratios = [], []
    for _ in range(args.repeats):
        # A peak measured right before each step: on a shared machine the ratio of the two
        # is steadier than either number alone.
        peak = matmul_peak(device, peak_dtype, repeats=3)
        sync(device)
        start = time.perf_counter()
        carry = act_step(carry)
        sync(device)
        times.append(time.perf_counter() - start)
        ratios.append(flops / times[-1] / peak)
    seconds = statistics.median(times)
    return {
        "fwd_bwd_s_per_act_step": seconds,
        "min_s_per_act_step": min(times),
        "samples_per_s": args.batch / seconds,
        "achieved_flops_per_s": flops / seconds,
        "flops_per_act_step": flops,
        "ratio_to_adjacent_matmul_peak": statistics.median(ratios),
        "warmup_s": warmup_s,
        "bf16": bf16,
        "compiled": compiled,
        "params": sum(p.numel() for p in model.parameters()),
        "config": asdict(config),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print one JSON line."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    peak_dtype = torch.bfloat16 if args.bf16 and device.type == "cuda" else torch.float32
    peak_before = matmul_peak(device, peak_dtype)
    main_run = time_act_steps(args, device, args.bf16, args.compile)
    peak_after = matmul_peak(device, peak_dtype)
    peak = max(peak_before, peak_after)
    result: dict[str, Any] = {
        "benchmark": "trm_act_step",
        **{k: main_run[k] for k in main_run if k != "config"},
        "matmul_peak_flops_per_s": peak,
        "matmul_peak_dtype": str(peak_dtype).removeprefix("torch."),
        "matmul_peak_shape": peak_shape(device),
        "ratio_to_best_matmul_peak": main_run["achieved_flops_per_s"] / peak,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "args": vars(args),
    }
    if device.type == "cuda":
        bf16_peak = matmul_peak(device, torch.bfloat16)
        variants = {}
        for name, compiled in (("bf16_eager", False), ("bf16_compiled", True)):
            if args.bf16 and args.compile == compiled:
                run = main_run
            else:
                run = time_act_steps(args, device, True, compiled)
            variants[name] = {
                "fwd_bwd_s_per_act_step": run["fwd_bwd_s_per_act_step"],
                "samples_per_s": run["samples_per_s"],
                "achieved_flops_per_s": run["achieved_flops_per_s"],
                "ratio_to_bf16_matmul_peak": run["achieved_flops_per_s"] / bf16_peak,
                "ratio_to_adjacent_matmul_peak": run["ratio_to_adjacent_matmul_peak"],
                "warmup_s": run["warmup_s"],
            }
        result["bf16_matmul_peak_flops_per_s"] = bf16_peak
        result["variants"] = variants
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
