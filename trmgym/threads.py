"""Thread budgets: each run's share of the machine's cores for torch, OpenMP and MKL.

torch starts one intra-op thread per core. Several runs of a sweep on one machine
(``hydra/launcher=joblib``) then run N jobs x C threads on C cores, and every job slows down
waiting for the others' threads. ``run.threads=auto`` (the default) gives each job
``usable cores // concurrent jobs`` threads, the number of concurrent jobs read from the Hydra
launcher's config; ``run.threads=N`` sets exactly N. (joblib's loky workers already start with
``OMP_NUM_THREADS = cpu_count // n_jobs``, which torch reads, and Ray sets it to a task's
``num_cpus``: ``auto`` makes that choice explicit, the same under every launcher, and logs it.)

=====================  ======================================================================
launcher               concurrent jobs sharing a machine's cores
=====================  ======================================================================
single run, ``basic``  1 (jobs run one after the other)
``joblib``             ``hydra.launcher.n_jobs`` (``-1``: every core, ``-2``: all but one ...)
``ray``                a task per ``num_cpus`` free CPUs; a job gets
                       ``hydra.launcher.ray.remote.num_cpus`` threads (Ray's default: 1)
=====================  ======================================================================

Under ``torchrun`` the share is divided again by the run's processes on the machine
(``LOCAL_WORLD_SIZE``).

A single run (no sweep, no ``torchrun``) also leaves out the cores other processes keep busy
when it starts (:func:`busy_cores`, measured over a quarter of a second): on a 2-core laptop with
a browser spinning one core, two torch threads wait on each other at every barrier and a tiny
model runs about 2x slower, one thread runs at full speed. A sweep's jobs are not measured (they
would count each other; the launcher's share already accounts for them).

The thread count sets the order of float reductions, so a seed's numbers are bit-identical for a
given thread count only: ``results.json`` records ``torch_threads``; give ``run.threads=N`` to
make reruns bit-identical whatever the machine's load.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
from collections.abc import Mapping
from typing import Any

from trmgym.workers import THREAD_ENV_VARS

__all__ = [
    "AUTO",
    "THREAD_ENV_VARS",
    "apply_threads",
    "busy_cores",
    "check_threads",
    "concurrent_jobs",
    "local_processes",
    "resolve_threads",
    "usable_cores",
]

AUTO = "auto"


def check_threads(value: Any, label: str = "run.threads") -> int | str:
    """``value`` as ``"auto"`` or an int >= 1 (a string of digits too), else ValueError."""
    if isinstance(value, str):
        text = value.strip()
        if text == AUTO:
            return AUTO
        if text.isdigit() and int(text) >= 1:
            return int(text)
    elif isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1:
        return int(value)
    raise ValueError(f'{label} must be "auto" or an int >= 1, got {value!r}')


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity; ``os.cpu_count()`` where unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no sched_getaffinity
        return max(1, os.cpu_count() or 1)


def busy_cores(interval: float = 0.25) -> float:
    """Cores of this process's affinity kept busy by other processes: the summed utilisation of
    those cores over ``interval`` seconds (psutil), in cores (e.g. 1.02 with one busy loop
    running). This process sleeps meanwhile, so what is measured is the others' load."""
    import psutil

    percents = psutil.cpu_percent(interval=interval, percpu=True)
    try:
        cpus = [c for c in os.sched_getaffinity(0) if c < len(percents)]
    except (AttributeError, OSError):
        cpus = list(range(len(percents)))
    return sum(percents[c] for c in cpus) / 100.0


def local_processes() -> int:
    """Processes of one data-parallel run on this machine (``torchrun``'s ``LOCAL_WORLD_SIZE``;
    1 outside ``torchrun``)."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def _get(node: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(node, Mapping) and not hasattr(node, "get"):
            return None
        node = node.get(key)
    return node


def _multirun(hydra_cfg: Any) -> bool:
    return str(_get(hydra_cfg, "mode") or "").endswith("MULTIRUN")


def concurrent_jobs(hydra_cfg: Any, cores: int) -> int:
    """How many jobs of this sweep run at once on this machine (1 for a single run).

    Args:
        hydra_cfg: the running job's Hydra config (``HydraConfig.get()``: its ``mode`` and
            ``launcher``), a mapping of the same shape, or None outside Hydra.
        cores: the usable cores, the meaning of joblib's negative ``n_jobs``.
    """
    if not _multirun(hydra_cfg):
        return 1
    launcher = _get(hydra_cfg, "launcher")
    n_jobs = _get(launcher, "n_jobs")
    if n_jobs is not None:  # joblib: -1 is every core, -2 all but one, ...
        return int(n_jobs) if n_jobs > 0 else max(1, cores + 1 + int(n_jobs))
    num_cpus = _ray_num_cpus(launcher)
    if num_cpus is not None:  # Ray starts a task wherever num_cpus CPUs are free
        return max(1, cores // num_cpus)
    return 1  # the basic launcher runs jobs one after the other


def _ray_num_cpus(launcher: Any) -> int | None:
    """CPUs Ray reserves per task (its default: 1), or None when ``launcher`` is not Ray's."""
    if _get(launcher, "ray") is None:
        return None
    num_cpus = _get(launcher, "ray", "remote", "num_cpus")
    return 1 if num_cpus is None else max(1, math.floor(float(num_cpus)))


def resolve_threads(
    setting: Any, hydra_cfg: Any = None, cores: int | None = None, busy: float | None = None
) -> tuple[int, str]:
    """The threads of one run for ``run.threads`` = ``setting``, and why (a line for the log).

    ``"auto"``: ``max(1, cores // concurrent jobs)`` (:func:`concurrent_jobs`) — under Ray, the
    task's ``num_cpus`` (at most the cores); for a single run, ``max(1, cores - round(busy))``
    with ``busy`` the cores other processes keep busy (measured by :func:`busy_cores` when
    None); an int: itself.

    Raises:
        ValueError: ``setting`` is neither ``"auto"`` nor an int >= 1, naming ``run.threads``.
    """
    setting = check_threads(setting)
    if setting != AUTO:
        return int(setting), f"run.threads={setting}"
    cores = usable_cores() if cores is None else cores
    launcher = _get(hydra_cfg, "launcher")
    num_cpus = _ray_num_cpus(launcher)
    if _multirun(hydra_cfg) and _get(launcher, "n_jobs") is None and num_cpus is not None:
        return min(num_cpus, cores), f"run.threads=auto: the Ray task's num_cpus={num_cpus}"
    jobs = concurrent_jobs(hydra_cfg, cores)
    ranks = local_processes()
    if jobs == 1 and ranks == 1:
        busy = busy_cores() if busy is None else float(busy)
        taken = min(cores - 1, round(busy))
        reason = f"run.threads=auto: {cores} usable cores"
        if taken > 0:
            reason += f", {taken} busy with other processes ({busy:.2f} cores in use)"
        return max(1, cores - taken), reason
    reason = f"run.threads=auto: {cores} usable cores / {jobs} concurrent job{'s' * (jobs != 1)}"
    if ranks > 1:
        reason += f" / {ranks} data-parallel processes on this machine"
    return max(1, cores // (jobs * ranks)), reason


def apply_threads(threads: int) -> dict[str, int]:
    """Set torch's intra-op (and, where still allowed, inter-op) threads and the OpenMP/MKL
    variables that processes started by the run inherit; returns what torch now reports."""
    import torch

    threads = int(check_threads(threads))
    torch.set_num_threads(threads)
    # allowed once per process, before any inter-op work: a reused worker keeps its count
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(threads)
    for name in THREAD_ENV_VARS:
        os.environ[name] = str(threads)
    return {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()}
