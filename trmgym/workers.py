"""Spawned worker processes that train side by side, and how to end them at once.

Used by the few-shot methods (``fewshot.workers``) and the compared curricula
(``curriculum_comparison.workers``). Workers are *spawned* (a fresh interpreter, never a fork
of a process that already holds torch's thread pools), each with a fixed torch thread count, so
a run's numbers are those of a run with that many threads whatever runs beside it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import time
from concurrent.futures import ProcessPoolExecutor

import torch

__all__ = ["STOP_WAIT_S", "spawn_pool", "stop_workers", "worker_start"]

#: seconds to wait for workers to end after an interrupt, per stage
STOP_WAIT_S = 5.0


def worker_start(threads: int) -> None:
    """A worker's initializer: ``threads`` intra-op and inter-op torch threads, and Ctrl-C
    ignored: a terminal sends it to every process of the group, and the parent alone decides
    (it ends its workers, :func:`stop_workers`, and says how to resume) — no traceback from a
    worker, no worker half-way through a checkpoint it was told to drop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # allowed once per process
        torch.set_num_interop_threads(threads)


def spawn_pool(workers: int, threads: int) -> ProcessPoolExecutor:
    """``workers`` spawned processes of ``threads`` torch threads each."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=worker_start,
        initargs=(threads,),
    )


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """End the workers now and drop what is queued (an interrupt or a failed job): a worker
    would otherwise finish its job and go on to the one queued next to it, and the
    interpreter's exit would wait for them."""
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())  # gone after shutdown
    manager = getattr(pool, "_executor_manager_thread", None)
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    # The pool's manager thread sees the workers die and reaps them too: a join racing it can
    # return at once with the exit status taken by the other thread (waitpid: ECHILD), leaving
    # the worker listed as running. Wait for the manager, then until each exit status is known.
    if manager is not None:
        manager.join(STOP_WAIT_S)
    deadline = time.monotonic() + STOP_WAIT_S
    for process in processes:
        while process.exitcode is None and time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                process.join(0.05)
        if process.exitcode is None:  # ignored the terminate: end it for good
            with contextlib.suppress(Exception):
                process.kill()
                process.join(STOP_WAIT_S)
