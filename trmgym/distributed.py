"""Data-parallel training of one run over several processes with ``torch.distributed``.

Launch any ``trmgym run`` under ``torchrun`` and it trains data-parallel::

    torchrun --standalone --nproc_per_node 2 -m trmgym.cli run experiment=smoke \\
        hydra.run.dir=runs/ddp

Every process (rank) holds the same network; the run's batch (``run.batch_size``, the *global*
batch) is split evenly over the ranks, each rank steps its own share of the puzzles, and the
gradients are averaged over the ranks before clipping and the optimizer step
(:func:`average_gradients`, an all-reduce: what :class:`torch.nn.parallel.DistributedDataParallel`
does, without its forward hooks — the agent calls several entry points of the network per step and
runs part of the recursion without gradients, which DDP's bucketing does not follow). So one
update with ``W`` ranks equals one update of a single process on the combined batch (checked to
``1e-5`` in ``tests/test_distributed.py``). Replay sampling is sharded (each rank keeps and
samples its own buffers: the DQN's transitions, a strategy's reservoir); evaluation is sharded
over the same fixed held-out puzzles and its counts summed (:func:`shard`, :func:`sum_over_ranks`),
so the accuracy matrix does not depend on the number of ranks. Checkpoints and every file of the
run directory are written by rank 0 alone; the checkpoint holds every rank's own state
(buffers, random generators), so a run resumes exactly on the same number of ranks and resumes
on a different number (see :func:`rank_state_for`).

Backends: ``gloo`` on CPU (the CI test), ``nccl`` on CUDA (each rank takes ``cuda:LOCAL_RANK``).
Without ``torchrun`` (``WORLD_SIZE`` unset or 1) nothing here does anything.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

__all__ = [
    "World",
    "all_ready",
    "average_gradients",
    "gather_objects",
    "gather_to_main",
    "init_from_env",
    "rank_state_for",
    "shard",
    "shutdown",
    "sum_over_ranks",
    "world",
]

#: whether :func:`init_from_env` created the process group (then :func:`shutdown` destroys it)
_OWNED = False


@dataclass(frozen=True)
class World:
    """This process's place in a data-parallel run."""

    rank: int = 0
    """Index of this process, ``0 <= rank < size``."""
    size: int = 1
    """Processes in the run (1: not distributed)."""
    local_rank: int = 0
    """Index on this machine (the CUDA device a rank takes)."""

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world() -> World:
    """The current :class:`World` (``World()`` when no process group is initialised)."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return World()


def init_from_env(device: str = "cpu") -> World:
    """Join the process group described by ``torchrun``'s environment (``WORLD_SIZE``, ``RANK``,
    ``MASTER_ADDR``/``MASTER_PORT``); a no-op returning ``World()`` outside ``torchrun``.

    Args:
        device: the run's ``device`` setting; ``"cuda..."`` (or ``"auto"`` with CUDA present)
            selects the ``nccl`` backend and ``cuda:LOCAL_RANK``, anything else ``gloo``.

    Raises:
        ValueError: ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` are not integers.
    """
    if dist.is_available() and dist.is_initialized():  # a group set up by the caller
        return world()
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as error:
        raise ValueError(
            f"WORLD_SIZE, RANK and LOCAL_RANK must be integers (set by torchrun): {error}"
        ) from None
    if size <= 1:
        return World()
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=size)
    global _OWNED
    _OWNED = True
    return World(rank, size, local_rank)


def shutdown() -> None:
    """Leave the process group :func:`init_from_env` joined, after every rank got here.

    Call it once a run has finished on every rank. The barrier first keeps a fast rank from
    tearing its connections down while a slow one still talks to it (a gloo rank left alone
    can abort with "terminate called without an active exception"); destroying the group
    before the interpreter exits keeps gloo's worker threads from outliving it. A group set up
    by the caller is left to the caller; outside a data-parallel run nothing happens.
    """
    global _OWNED
    if not (_OWNED and dist.is_available() and dist.is_initialized()):
        return
    dist.barrier()
    dist.destroy_process_group()
    _OWNED = False


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Replace each parameter's gradient by its mean over the ranks (in place, one all-reduce).

    A parameter that has a gradient on some rank but not on another gets zeros on the others
    (a rank whose batch did not reach it contributed nothing); one with no gradient anywhere
    keeps ``None``, so the optimizer skips it exactly as in a single process.
    """
    w = world()
    if not w.distributed:
        return
    params = [p for p in parameters if p.requires_grad]
    if not params:
        return
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.uint8)
    device = params[0].device
    has = has.to(device)
    dist.all_reduce(has, op=dist.ReduceOp.MAX)
    used = [p for p, flag in zip(params, has.tolist()) if flag]
    if not used:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in used]
    flat = torch.cat([g.reshape(-1).to(torch.float32) for g in grads])
    dist.all_reduce(flat)
    flat /= w.size
    offset = 0
    for p, g in zip(used, grads):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).to(p.dtype).clone()
        offset += n


def sum_over_ranks(values: np.ndarray | list[float]) -> np.ndarray:
    """The elementwise sum of ``values`` over the ranks (float64; ``values`` itself when not
    distributed)."""
    array = np.asarray(values, dtype=np.float64)
    if not world().distributed:
        return array
    tensor = torch.from_numpy(array.copy())
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor)
    return tensor.cpu().numpy()


def max_over_ranks(value: int) -> int:
    """The largest ``value`` over the ranks."""
    if not world().distributed:
        return int(value)
    tensor = torch.tensor([int(value)], dtype=torch.int64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


def all_ready(flag: bool) -> bool:
    """``True`` when ``flag`` holds on every rank (a collective decision: a step that all-reduces
    must be taken by all ranks or none)."""
    if not world().distributed:
        return bool(flag)
    return bool(sum_over_ranks([0.0 if flag else 1.0])[0] == 0)


def gather_objects(value: Any) -> list[Any]:
    """``[value of rank 0, value of rank 1, ...]`` on every rank (``[value]`` alone)."""
    w = world()
    if not w.distributed:
        return [value]
    out: list[Any] = [None] * w.size
    dist.all_gather_object(out, value)
    return out


def gather_to_main(value: Any) -> list[Any] | None:
    """``[value of rank 0, value of rank 1, ...]`` on rank 0, ``None`` on the others
    (``[value]`` alone): what rank 0 needs to write every rank's state into one file."""
    w = world()
    if not w.distributed:
        return [value]
    out: list[Any] | None = [None] * w.size if w.is_main else None
    dist.gather_object(value, out, dst=0)
    return out


def to_cpu(value: Any) -> Any:
    """``value`` with every tensor inside dicts, lists and tuples copied to the CPU (before
    sending a state to another rank, which may sit on another machine)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_cpu(v) for v in value]
    if type(value) is tuple:
        return tuple(to_cpu(v) for v in value)
    return value


def barrier() -> None:
    """Wait for every rank (nothing when not distributed)."""
    if world().distributed:
        dist.barrier()


def shard(n: int, w: World | None = None) -> np.ndarray:
    """The indices of ``range(n)`` this rank owns: contiguous, sizes differing by at most one
    (``np.array_split``), covering ``range(n)`` exactly once over the ranks."""
    w = w or world()
    return np.array_split(np.arange(n), w.size)[w.rank]


def local_batch(batch_size: int, w: World | None = None) -> int:
    """This rank's share of the global ``run.batch_size``.

    Raises:
        ValueError: ``batch_size`` is not a multiple of the number of ranks (unequal shares
            would weigh the ranks' puzzles unequally in the averaged gradient).
    """
    w = w or world()
    if batch_size % w.size:
        raise ValueError(
            f"run.batch_size={batch_size} must be a multiple of the number of processes "
            f"({w.size}) in a data-parallel run; allowed: "
            f"{[w.size * k for k in range(1, 4)]}, ..."
        )
    return batch_size // w.size


def rank_state_for(saved_states: list[Any], w: World | None = None) -> tuple[Any, bool]:
    """The saved per-rank state this rank resumes from, and whether it is its own.

    A checkpoint written by ``W_saved`` ranks resumes on ``W`` ranks: rank ``r`` takes saved rank
    ``r``'s state when ``r < W_saved`` (exact when ``W == W_saved``); a rank beyond the saved
    ones starts from a copy of saved rank ``r mod W_saved`` (the weights and optimizer are the
    same on every rank; the copied buffers and random generators are re-seeded by the caller);
    the states of saved ranks ``>= W`` are dropped, with a warning naming what is lost.
    """
    w = w or world()
    n = len(saved_states)
    if n == 0:
        raise ValueError("the checkpoint holds no rank state")
    if w.is_main and n > w.size:
        warnings.warn(
            f"resuming a run checkpointed on {n} processes on {w.size}: the replay buffers of "
            f"ranks {list(range(w.size, n))} are dropped",
            stacklevel=2,
        )
    if w.rank < n:
        return saved_states[w.rank], True
    return saved_states[w.rank % n], False
