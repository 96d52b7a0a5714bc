"""Spawned worker processes that train side by side, and how to end them at once.

Used by the few-shot methods (``fewshot.workers``) and the compared curricula
(``curriculum_comparison.workers``). Workers are *spawned* (a fresh interpreter, never a fork
of a process that already holds torch's thread pools), each with a fixed torch thread count, so
a run's numbers are those of a run with that many threads whatever runs beside it.

- A worker starts with ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` set to
  its thread count (read when those libraries load, before any initializer runs), not the
  parent's.
- A worker ends itself (SIGTERM, as :func:`stop_workers` would) when its parent is gone — a
  ``kill -9`` of the parent, an out-of-memory kill — instead of training on, orphaned, in a
  directory the next start of the same command resumes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

__all__ = [
    "PARENT_POLL_S",
    "STOP_WAIT_S",
    "THREAD_ENV_VARS",
    "WorkerPool",
    "spawn_pool",
    "stop_workers",
    "worker_start",
]

#: seconds to wait for workers to end after an interrupt, per stage
STOP_WAIT_S = 5.0
#: seconds between a worker's checks that its parent still runs
PARENT_POLL_S = 1.0
#: read by OpenMP, MKL and OpenBLAS when a process loads them
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def worker_start(threads: int, parent: int | None = None) -> None:
    """A worker's initializer: ``threads`` intra-op and inter-op torch threads, and Ctrl-C
    ignored: a terminal sends it to every process of the group, and the parent alone decides
    (it ends its workers, :func:`stop_workers`, and says how to resume) — no traceback from a
    worker, no worker half-way through a checkpoint it was told to drop.

    With ``parent`` (the parent's pid), a daemon thread checks every :data:`PARENT_POLL_S` s
    that the worker's parent is still that process, and sends the worker SIGTERM when not.
    """
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # allowed once per process
        torch.set_num_interop_threads(threads)
    if parent is not None:
        threading.Thread(target=_end_with_parent, args=(parent,), daemon=True).start()


def _end_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)  # checkpoints are atomic: the last complete one stays


class WorkerPool(ProcessPoolExecutor):
    """A spawn-context :class:`ProcessPoolExecutor` whose workers start with ``threads`` torch
    threads (:func:`worker_start`) and the OpenMP/MKL/OpenBLAS variables set to ``threads``.

    Python starts a pool's processes from :meth:`submit`, so the variables are set in this
    process's environment for the length of each call and restored after.
    """

    def __init__(self, workers: int, threads: int) -> None:
        super().__init__(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=worker_start,
            initargs=(threads, os.getpid()),
        )
        self.threads = threads

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        saved = {name: os.environ.get(name) for name in THREAD_ENV_VARS}
        os.environ.update({name: str(self.threads) for name in THREAD_ENV_VARS})
        try:
            return super().submit(fn, *args, **kwargs)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def spawn_pool(workers: int, threads: int) -> WorkerPool:
    """``workers`` spawned processes of ``threads`` torch threads each (:class:`WorkerPool`)."""
    return WorkerPool(workers, threads)


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
