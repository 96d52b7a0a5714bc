"""The ``trmgym`` command: ``trmgym run …`` (a Hydra app) and ``trmgym demo …``.

``trmgym run`` composes ``configs/config.yaml`` with command-line overrides (``env=maze
env.size=11 seed=3``, ``--cfg job``, ``--multirun``), exactly like any Hydra application. The
configs ship inside the package (``trmgym.configs``), so a clone with an editable install and an
installed wheel find them the same way.

A multirun's jobs are named by their overrides below ``hydra.sweep.dir``
(``seed=1,strategy=replay``: :func:`sweep_subdir`), so starting the same sweep again with the same
``hydra.sweep.dir`` skips the finished jobs, resumes the interrupted ones from their checkpoints
and runs the new ones. ``run.threads`` sets each job's share of the cores (:mod:`trmgym.threads`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import gymnasium as gym
import numpy as np
from hydra.errors import CompactHydraException
from omegaconf import OmegaConf

import trmgym
from trmgym.atomic import surfaced_interrupts, write_text_atomic

COMMANDS = ("run", "demo", "report")
#: exit status of a command line or configuration refused before anything ran (argparse's)
USAGE_EXIT = 2
#: exit status after Ctrl-C (128 + SIGINT, what a shell reports)
INTERRUPTED_EXIT = 130
#: warnings of the command-line check, printed before Hydra starts and logged to cli.log by run()
STARTUP_WARNINGS: list[str] = []
#: the OmegaConf resolver naming a sweep's job directories (``hydra.sweep.subdir``)
SUBDIR_RESOLVER = "trmgym.sweep_subdir"
#: longest job directory name kept as is (file systems allow 255 bytes)
MAX_SUBDIR = 160

log = logging.getLogger(__name__)  # Hydra's job logging writes it to the run's cli.log


def config_dir() -> Path:
    """Absolute path of the packaged Hydra configs."""
    return Path(str(resources.files("trmgym.configs")))


def env_kwargs(env_cfg: Any) -> tuple[str, dict[str, Any]]:
    """Split an ``env`` config node into its Gymnasium id and (training) constructor keywords."""
    from trmgym.config import task_spec

    task = task_spec(env_cfg, "env")
    return task.env_id, {**task.kwargs, **task.train_kwargs}


def sweep_subdir(override_dirname: str | None, job_num: int | str) -> str:
    """A multirun job's directory below ``hydra.sweep.dir`` (the ``trmgym.sweep_subdir`` resolver).

    The job's overrides (``hydra.job.override_dirname``, e.g. ``seed=1,strategy=replay``) rather
    than its number, which shifts when the grid changes, so a sweep started again with more seeds
    finds each earlier job's directory. ``/`` and other characters unfit for a file name are
    %-escaped; a name over ``MAX_SUBDIR`` characters is cut and ends with a hash of the whole.
    The job number when the job has no overrides.
    """
    if not override_dirname:
        return str(job_num)
    name = quote(str(override_dirname), safe="=,+-_.~@:[]")
    if len(name) > MAX_SUBDIR:
        digest = hashlib.sha1(name.encode()).hexdigest()[:16]
        name = f"{name[: MAX_SUBDIR - 17]}-{digest}"
    return name


OmegaConf.register_new_resolver(SUBDIR_RESOLVER, sweep_subdir, replace=True)


class SweepJobError(CompactHydraException):
    """A multirun job refused before training (a bad value, another configuration's directory).

    Hydra records it as the job's failure and, after the sweep, prints its one-line message
    under ``Error executing job with overrides: [...]``, whichever launcher ran the job.
    """


def run(cfg: Any) -> dict[str, Any]:
    """Build the run described by ``cfg`` (:func:`trmgym.config.build_run`), then train it.

    A bad value is reported as one line naming its key (``trmgym run: run.batch_size must be an
    int >= 1, got 0``) before any training; ``HYDRA_FULL_ERROR=1`` shows the traceback instead.
    A run directory that holds a checkpoint of a different configuration is refused the same way,
    and so is one another process is running in (:mod:`trmgym.rundir`; that directory is left
    as it is). A multirun job whose directory already holds results.json of the same
    configuration is skipped (its results are returned); one with only checkpoints resumes from
    them.
    """
    import contextlib

    with contextlib.ExitStack() as held:  # the run directory, held until the run ends
        return _run(cfg, held)


def _run(cfg: Any, held: Any) -> dict[str, Any]:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from trmgym import checkpoint, rundir
    from trmgym.config import build_run
    from trmgym.experiment import TrainingDiverged
    from trmgym.results import RESULTS_FILE

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    job_label = f"job {hydra_cfg.job.num}: " if in_sweep else ""
    try:
        # first of all, before a line is logged into it: the directory may be another
        # process's (torchrun: rank 0 alone writes, and holds, the run's directory)
        if os.environ.get("RANK", "0").strip() in ("", "0"):
            held.enter_context(rundir.hold(run_dir))
    except rundir.RunDirError as error:  # leave that directory exactly as it is
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        message = f"trmgym run: {job_label}{error}"
        if in_sweep:  # Hydra prints it after the sweep, naming the job
            raise SweepJobError(message) from None
        print(message, file=sys.stderr, flush=True)
        raise SystemExit(USAGE_EXIT) from None
    for warning in STARTUP_WARNINGS:  # printed already, before Hydra set up the log
        log.info("warning: %s", warning)
    fewshot = cfg.get("fewshot") is not None and cfg.get("sequence") is None
    try:
        if fewshot:  # a few-shot experiment: checked, then run after .hydra/ is written
            return _fewshot_run(cfg, run_dir, hydra_cfg, job_label)
        job = _build_with_warnings(build_run, cfg, run_dir, job_label)
        run_dir = job.run_dir  # under torchrun: rank 0's directory, on every rank
        if (run_dir / "fewshot.json").is_file():
            raise ValueError(
                f"{run_dir} holds a few-shot run (fewshot.json), not a continual one; start a "
                "new run directory (e.g. a different hydra.run.dir)"
            )
        saved = checkpoint.load_latest(run_dir / "checkpoints")
        # a run directory belongs to one configuration: check before .hydra/ is (re)written
        job.check_resumable(saved)
        arms = compared_runs(cfg, job, run_dir)  # checked now: nothing trains before
        # finished: nothing to train, and nothing to rewrite — a start with other display or
        # thread settings must not relabel results trained with the first ones (a comparison
        # adding curricula not run yet goes on: they train, the main block is rewritten)
        arms_done = all((arm.run.run_dir / RESULTS_FILE).is_file() for arm in arms.values())
        if (in_sweep or arms_done) and (run_dir / RESULTS_FILE).is_file():
            results = finished_results(run_dir, saved)
            message = f"{job_label}already finished ({RESULTS_FILE}), skipped"
            log.info("%s: %s", message, run_dir)
            print(message, flush=True)
            return results
    except (ValueError, TypeError, RuntimeError) as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        message = f"trmgym run: {job_label}{error}"
        if in_sweep:  # a SystemExit would kill a Ray worker (retried, then lost): fail the job
            log.error(message)
            raise SweepJobError(message) from None
        remove_failed_start(run_dir)
        print(message, file=sys.stderr, flush=True)
        raise SystemExit(USAGE_EXIT) from None
    except KeyboardInterrupt:  # before the run started: nothing worth keeping
        if not in_sweep:
            remove_failed_start(run_dir)
        raise
    main = job.world.is_main  # a data-parallel run: rank 0 alone prints and writes
    job.threads_note = use_threads(job.settings.threads, hydra_cfg, label=job_label)
    if main:
        save_hydra_files(cfg, run_dir)
    try:
        if arms:  # the compared curricula, each in its own directory
            results = run_with_comparison(job, arms, cfg, run_dir)
        else:
            results = job.run()
    except (ComparedRunError, TrainingDiverged) as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        message = f"trmgym run: {job_label}{error}"
        log.info(message)  # to cli.log only: Hydra's console handler would print it twice
        if in_sweep:
            raise SweepJobError(message) from None
        print(message, file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        if in_sweep or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(interrupted_message(run_dir, hydra_cfg), file=sys.stderr, flush=True)
        raise SystemExit(INTERRUPTED_EXIT) from None
    from trmgym import distributed

    distributed.shutdown()  # every rank finished: leave the process group together
    return results


@surfaced_interrupts()  # Ctrl-C in a library's clean-up: still an interrupt
def _build_with_warnings(build: Callable[..., Any], cfg: Any, run_dir: Path, label: str) -> Any:
    """``build(cfg, run_dir)``, its warnings (e.g. a memory bank no strategy writes to) printed
    one line each, as start-up warnings are, and kept in the run's cli.log."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        job = build(cfg, run_dir)
    for warning in caught:
        line = f"trmgym run: {label}warning: {warning.message}"
        print(line, file=sys.stderr, flush=True)
        log.info("warning: %s", warning.message)  # cli.log (the console has it already)
    return job


def _fewshot_run(cfg: Any, run_dir: Path, hydra_cfg: Any, job_label: str) -> dict[str, Any]:
    """A few-shot experiment (:mod:`trmgym.fewshot_job`): settings and a resumed directory are
    checked before .hydra/ is written; errors propagate to :func:`run`'s handler."""
    from hydra.types import RunMode

    from trmgym.checkpoint import LAST, PREVIOUS
    from trmgym.fewshot_job import check_fewshot, run_fewshot_job
    from trmgym.meta.fewshot import check_resumable, config_dict
    from trmgym.results import RESULTS_FILE

    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    fewshot, meta, agent = check_fewshot(cfg)
    continual = [run_dir / RESULTS_FILE, run_dir / "checkpoints" / LAST]
    continual.append(run_dir / "checkpoints" / PREVIOUS)
    if any(path.is_file() for path in continual):
        raise ValueError(
            f"{run_dir} holds a continual run (results.json or checkpoints/last.pt), not a "
            "few-shot one; start a new run directory (e.g. a different hydra.run.dir)"
        )
    saved = check_resumable(run_dir, config_dict(fewshot, meta, agent, int(cfg.seed)))
    if in_sweep and saved is not None and saved.get("complete"):
        print(f"{job_label}already finished (fewshot.json), skipped", flush=True)
        return saved
    use_threads(cfg.run.threads, hydra_cfg, label=job_label)
    save_hydra_files(cfg, run_dir)

    def say(line: str) -> None:
        log.info(line)
        if cfg.console:
            print(f"{job_label}{line}", flush=True)

    try:
        return run_fewshot_job(cfg, run_dir, say)
    except KeyboardInterrupt:
        if in_sweep or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(
            f"interrupted; `trmgym run` with the same overrides and hydra.run.dir={run_dir} "
            "resumes after the last finished method",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(INTERRUPTED_EXIT) from None


def compared_runs(cfg: Any, job: Any, run_dir: Path) -> dict[str, ComparedRun]:
    """The runs of ``curriculum_comparison.against``, built and checked (empty without one).

    Raises:
        ValueError: a bad comparison (:func:`trmgym.comparison.check_comparison`), the
            main curriculum listed again, or a compared run directory of another configuration.
    """
    from trmgym import checkpoint
    from trmgym import comparison as compare
    from trmgym.config import build_run

    if cfg.get("curriculum_comparison") is None:
        return {}
    against, _ = compare.check_comparison(cfg)
    from trmgym.curricula.schedulers import Rehearsal, Scheduler

    curriculum = curriculum_of(job)
    if not isinstance(curriculum, Scheduler) or isinstance(curriculum, Rehearsal):
        raise ValueError(
            "curriculum_comparison compares curricula over the levels of one task; "
            f"curriculum={getattr(curriculum, 'label', type(curriculum).__name__)} has no levels "
            "(choose ramp, uniform, staged, arc_stages, lp or plr)"
        )
    main = curriculum.label
    if main in against:
        raise ValueError(
            f"curriculum_comparison.against lists {main!r}, the run's own curriculum; list the "
            "others only"
        )
    arms = {}
    for name in against:
        # resolved to plain values here, in the Hydra context: the run is built from exactly
        # what a worker process builds it from again, so a bad value fails now, not in a worker
        arm_cfg = OmegaConf.to_container(
            compare.arm_config(cfg, name, curriculum.levels), resolve=True
        )
        arm = build_run(OmegaConf.create(arm_cfg), run_dir / compare.COMPARE_DIR / name)
        arm.check_resumable(checkpoint.load_latest(arm.run_dir / "checkpoints"))
        arm.threads_note = "as the main run"
        arms[name] = ComparedRun(arm, arm_cfg)
    return arms


def curriculum_of(job: Any) -> Any:
    """The run's curriculum plugin (a curiosity plugin may follow it), or ``None``."""
    from trmgym.curricula.schedulers import Scheduler

    return next((p for p in job.plugins if isinstance(p, Scheduler)), None)


class ComparedRun(NamedTuple):
    """A compared curriculum's run, built and checked, and the plain config (resolved) it was
    built from (a worker process builds it again from that)."""

    run: Any
    config: dict[str, Any]


class ComparedRunError(RuntimeError):
    """A compared curriculum's run failed while the main run trained (its traceback is in its
    own cli.log); the main run's checkpoints are kept."""


def run_with_comparison(
    job: Any, arms: dict[str, ComparedRun], cfg: Any, run_dir: Path
) -> dict[str, Any]:
    """Train ``job`` and the compared runs ``arms`` (:func:`compared_runs`); returns ``job``'s
    results, with the comparison in their curriculum block.

    With ``curriculum_comparison.workers`` > 1 (and no ``torchrun``) the compared runs train in
    spawned processes while ``job`` trains here, every one of them on ``run.threads // workers``
    torch threads; the main run waits for them at its end. Otherwise they run first, one after
    the other, then ``job``. A compared run that fails raises here, after the main run trained
    (its checkpoints are kept: the same command resumes it and runs the failed one again).
    """
    import torch

    from trmgym import comparison as compare
    from trmgym import workers as pool_of

    say = (lambda line: print(line, flush=True)) if job.console else (lambda line: None)
    asked = compare.comparison_workers(cfg)
    given = torch.get_num_threads()
    # never more processes than the threads this job was given (a sweep's share, run.threads=1)
    workers = min(asked, given)
    if workers == 1 or job.world.distributed:
        if job.world.distributed:  # every rank trains every curriculum, in step (DDP)
            finished = {name: arm.run.run() for name, arm in arms.items()}
        else:
            why = (
                f"curriculum_comparison.workers={asked} on {given} torch thread (run.threads): "
                "give run.threads >= 2 to train them beside this run"
                if asked > 1
                else "curriculum_comparison.workers=1"
            )
            line = (
                f"curriculum_comparison: {', '.join(arms)} train{'s' * (len(arms) == 1)} first, "
                f"one after the other in this process ({why}; logs: "
                f"{run_dir / compare.COMPARE_DIR}/<name>/cli.log)"
            )
            log.info(line)
            say(line)
            finished = {}
            for name, arm in arms.items():
                try:
                    finished[name] = compare.run_here(arm.run, "as the main run")
                except Exception as error:  # noqa: BLE001 - one line, as from a worker
                    later = [n for n in arms if n not in finished and n != name]
                    kept = (
                        "its checkpoints are kept; the main run has not trained yet; the same "
                        "command resumes it and trains the others"
                    )
                    raise arm_failed(arms, name, error, later, kept) from error
        compare_with(job, lambda: finished, cfg, run_dir)
        return job.run()
    threads = max(1, given // workers)
    note = f"curriculum_comparison.workers={workers} share {given}" + (
        "" if job.threads_note is None else f": {job.threads_note}"
    )
    processes = min(workers - 1, len(arms))
    pool = pool_of.spawn_pool(processes, threads)
    try:
        futures = {}
        for name, arm in arms.items():
            futures[name] = pool.submit(
                compare.run_compared, arm.config, str(arm.run.run_dir), note
            )
        line = (
            f"curriculum_comparison: {', '.join(arms)} train{'s' * (len(arms) == 1)} in "
            f"{processes} other process{'es' * (processes > 1)} beside this run (logs: "
            f"{run_dir / compare.COMPARE_DIR}/<name>/cli.log)"
        )
        log.info(line)
        say(line)

        def finished() -> dict[str, dict[str, Any]]:
            waiting = [name for name, future in futures.items() if not future.done()]
            if waiting:
                line = f"curriculum_comparison: waiting for {', '.join(waiting)}"
                log.info(line)
                say(line)
            results = {}
            for name, future in futures.items():
                try:
                    results[name] = future.result()
                except KeyboardInterrupt:  # this process's own Ctrl-C (workers ignore it)
                    raise
                except BaseException as error:  # noqa: BLE001 - a SystemExit in a worker too
                    raise compared_run_error(futures, arms, name, error) from error
            return results

        compare_with(job, finished, cfg, run_dir)
        job.threads_note = note
        torch.set_num_threads(threads)
        try:
            results = job.run()
        finally:
            torch.set_num_threads(given)
    except BaseException:
        pool_of.stop_workers(pool)
        raise
    pool.shutdown()
    return results


def compared_run_error(
    futures: dict[str, Any], arms: dict[str, ComparedRun], name: str, error: BaseException
) -> ComparedRunError:
    """The one-line error for compared run ``name`` whose future raised ``error``, naming every
    compared run that did not finish (the caller then stops the workers of the others).

    A worker process that died (a kill, out of memory) breaks the whole pool: every unfinished
    future then raises ``BrokenProcessPool``, so no one run is blamed for it.
    """
    from concurrent.futures.process import BrokenProcessPool

    def finished(future: Any) -> bool:  # never blocks: a future not done yet did not finish
        return future.done() and not future.cancelled() and future.exception() is None

    unfinished = [n for n, future in futures.items() if not finished(future)]
    logs = ", ".join(str(arms[n].run.run_dir / "cli.log") for n in unfinished)
    kept = "this run's checkpoints and theirs are kept, and the same command resumes every run"
    if isinstance(error, BrokenProcessPool):
        return ComparedRunError(
            f"curriculum_comparison: a worker process ended abruptly (killed, or out of memory?) "
            f"before {', '.join(unfinished)} finished (logs: {logs}); {kept}"
        )
    return arm_failed(arms, name, error, [n for n in unfinished if n != name], kept)


def arm_failed(
    arms: dict[str, ComparedRun], name: str, error: BaseException, others: list[str], kept: str
) -> ComparedRunError:
    """The one-line error for compared run ``name`` that raised ``error``; ``others``: the
    compared runs stopped unfinished with it; ``kept``: what is kept and how to resume."""
    from trmgym.rundir import RunDirError

    stopped = f"; stopped unfinished: {', '.join(others)}" if others else ""
    if isinstance(error, RunDirError):  # refused before anything was written: no traceback
        return ComparedRunError(f"curriculum_comparison: the {name} run: {error}{stopped}")
    return ComparedRunError(
        f"curriculum_comparison: the {name} run failed ({type(error).__name__}: {error}; its "
        f"traceback: {arms[name].run.run_dir / 'cli.log'}){stopped}; {kept}"
    )


def compare_with(
    job: Any, arms: Callable[[], dict[str, dict[str, Any]]], cfg: Any, run_dir: Path
) -> None:
    """Have ``job`` add the comparison with the compared runs' results (``arms()``: waits for
    them to finish) to its curriculum block."""
    from trmgym import comparison as compare

    _, threshold = compare.check_comparison(cfg)
    main = curriculum_of(job).label

    def add(results: dict[str, Any]) -> None:
        summary = compare.summarize(main, results, arms(), threshold, run_dir)
        results["curriculum"].update(summary)
        log.info("curriculum comparison: %s", compare.describe(summary))

    job.on_results = add


def remove_failed_start(run_dir: Path) -> None:
    """Delete the directory Hydra made for a run refused at start-up, when this process holds it
    (:mod:`trmgym.rundir`) and it holds nothing but its log and lock file (a resumed run's
    directory, with checkpoints, is never touched), and the folders
    above it that this left empty (``runs/<experiment>/``), up to the working directory."""
    import logging as std_logging

    from trmgym.rundir import LOCK_FILE, holding, release

    if not holding(run_dir):  # another process's directory (or another rank's): not ours
        return
    ours = ("cli.log", LOCK_FILE)  # the lock file too: this process holds it
    if not run_dir.is_dir() or any(p.name not in ours for p in run_dir.iterdir()):
        return
    root = std_logging.getLogger()
    for handler in list(root.handlers):  # Hydra's file handler holds cli.log open
        if isinstance(handler, std_logging.FileHandler):
            handler.close()
            root.removeHandler(handler)  # it would reopen the file on the next record
    for path in run_dir.iterdir():  # the lock file while still held: no other start takes it
        path.unlink()
    release(run_dir)  # then closed: NFS drops a deleted file only when it is closed
    try:
        run_dir.rmdir()
    except OSError:  # something appeared meanwhile (an NFS .nfsXXXX): leave the directory
        return
    cwd = Path.cwd().resolve()
    parent = run_dir.resolve().parent
    while parent != cwd and cwd in parent.parents and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def interrupted_message(run_dir: Path, hydra_cfg: Any) -> str:
    """What Ctrl-C prints: where the run stopped and the command that resumes it."""
    import shlex

    from trmgym import checkpoint

    try:
        saved = checkpoint.load_latest(run_dir / "checkpoints")
    except Exception:  # noqa: BLE001 - interrupted while writing it: say what is sure
        saved = None
    where = "before its first checkpoint (it starts over)"
    if saved is not None:
        progress = json.loads(saved["progress"])
        where = f"at its last checkpoint (task {progress['task'] + 1}, chunk {progress['chunk']})"
    overrides = [o for o in hydra_cfg.overrides.task if not o.startswith("hydra.run.dir=")]
    # the user's --config-dir (a sequence or experiment of their own may live there)
    config_dirs = [
        ["--config-dir", str(source.path).removeprefix("file://")]
        for source in hydra_cfg.runtime.get("config_sources") or []
        if source.get("provider") == "command-line" and source.get("schema") == "file"
    ]
    command = shlex.join(
        ["trmgym", "run", *sum(config_dirs, []), *overrides, f"hydra.run.dir={run_dir}"]
    )
    return f"interrupted; the same command resumes {run_dir} {where}:\n  {command}"


def use_threads(setting: int | str, hydra_cfg: Any, *, label: str = "") -> str:
    """Give this job its threads (``run.threads``, :mod:`trmgym.threads`); returns why that many
    (the run's start-up banner shows it), also logged to the run's cli.log."""
    from trmgym.threads import apply_threads, resolve_threads

    threads, reason = resolve_threads(setting, hydra_cfg)
    torch_threads = apply_threads(threads)
    line = (
        f"{label}threads: torch intra-op {torch_threads['intra_op']}, inter-op "
        f"{torch_threads['inter_op']}, OMP/MKL {threads} ({reason})"
    )
    log.info(line)
    return reason


def finished_results(run_dir: Path, saved: dict[str, Any] | None) -> dict[str, Any]:
    """The results of a finished job whose checkpoint passed the resume check; its plots and
    report.html are written again when the job was stopped after results.json but before them.

    Raises:
        ValueError: the directory has results.json but no checkpoint, so the configuration it
            was run with cannot be compared with this one.
    """
    from trmgym import report
    from trmgym.results import load_results

    if saved is None:
        raise ValueError(
            f"{run_dir} holds results.json but no checkpoints/, so whether it was run with this "
            "configuration cannot be checked; delete its results.json to run the job again, or "
            "give the sweep another hydra.sweep.dir"
        )
    results = load_results(run_dir)
    if not (run_dir / "report.html").is_file():  # stopped between results.json and the report
        report.write_plots(run_dir)
        report.write_report(run_dir)
        log.info("%s: plots and report.html written again", run_dir)
    return results


def save_hydra_files(cfg: Any, run_dir: Path) -> None:
    """Write ``.hydra/{config,hydra,overrides}.yaml`` as Hydra would (``hydra.output_subdir`` is
    null in ``configs/config.yaml`` so that Hydra does not write them before the resume check)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    hydra_cfg = HydraConfig.get()
    folder = run_dir / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    saved = cfg.copy()
    with open_dict(saved):  # resolved, so build_run can rebuild the run from this file alone
        saved.experiment_name = str(cfg.experiment_name)
    files = {  # what OmegaConf.save writes, each file atomically
        "config.yaml": saved,
        "hydra.yaml": OmegaConf.create({"hydra": hydra_cfg}),
        "overrides.yaml": OmegaConf.create(list(hydra_cfg.overrides.task)),
    }
    for name, node in files.items():
        write_text_atomic(folder / name, OmegaConf.to_yaml(node))


def scripted_step(
    answer: np.ndarray, target: np.ndarray, cells: int, rng: np.random.Generator
) -> np.ndarray:
    """Fix ``cells`` randomly chosen wrong cells of ``answer`` — a stand-in reasoner for the demo."""
    answer = answer.copy()
    wrong = np.argwhere(answer != target)
    if len(wrong):
        pick = wrong[rng.permutation(len(wrong))[:cells]]
        answer[pick[:, 0], pick[:, 1]] = target[pick[:, 0], pick[:, 1]]
    return answer


def demo(cfg: Any) -> dict[str, Any]:
    """Play a few episodes of the configured env with a scripted reasoner and print every step.

    ``cfg`` is composed by :func:`checked_config` (no Hydra app: the demo writes nothing)."""
    from rich.console import Console

    from trmgym.checks import positive_int

    console = Console(highlight=False)
    positive_int(cfg.demo.episodes, "demo.episodes")
    if isinstance(cfg.demo.cells_per_step, bool) or cfg.demo.cells_per_step < 0:
        raise ValueError(f"demo.cells_per_step must be an int >= 0, got {cfg.demo.cells_per_step}")
    env_id, kwargs = env_kwargs(cfg.env)
    kwargs.update(expose_target=True, render_mode="ansi")
    env = gym.make(env_id, **kwargs)
    limit = env.unwrapped.max_steps
    rng = np.random.default_rng(cfg.seed)
    summary = {"env": env_id, "episodes": []}
    for episode in range(int(cfg.demo.episodes)):
        obs, info = env.reset(seed=int(cfg.seed) + episode)
        wrong = int(np.sum(obs["answer"] != info["target"]))
        per_step = int(cfg.demo.cells_per_step) or max(1, -(-wrong // max(limit - 2, 1)))
        console.rule(f"{env_id}  episode {episode}  ({wrong} cells to fix, {per_step} per step)")
        print(env.render(), end="")
        total, done = 0.0, False
        while not done:
            answer = scripted_step(obs["answer"], info["target"], per_step, rng)
            halt = int(np.array_equal(answer, info["target"]))
            obs, reward, terminated, truncated, info = env.step({"answer": answer, "halt": halt})
            total += reward
            done = terminated or truncated
            console.print(
                f"step {info['steps']}: reward {reward:+.3f}{' (halted)' if terminated else ''}"
            )
            print(env.render(), end="")
        console.print(
            f"steps={info['steps']} solved={info['solved']} return={total:.3f} "
            f"({'halted' if terminated else 'truncated'})"
        )
        summary["episodes"].append(
            {"steps": info["steps"], "solved": info["solved"], "return": total}
        )
    env.close()
    return summary


def _hydra_app(task: Any) -> None:
    """Run ``task`` (:func:`run`) as a Hydra app over ``configs/config.yaml``.

    ``task`` itself is the task function, a module-level function: the joblib and Ray launchers
    pickle it by reference, and a worker that unpickles it imports ``trmgym.cli`` (registering
    :data:`SUBDIR_RESOLVER`).
    """
    import hydra

    import trmgym.config  # noqa: F401  (stores the schemas the YAML groups build on)

    hydra.main(config_path=str(config_dir()), config_name="config", version_base="1.3")(task)()


USAGE = """usage: trmgym {run,demo,report} [args ...]   (trmgym --version)

  run    train and evaluate the configured experiment (`trmgym run --help`, `--cfg job`)
  report (re)write plots and report.html of a run, or aggregate seeds below a folder
  demo   show the configured env with a scripted reasoner (e.g. `trmgym demo env=maze`)"""

DEMO_HELP = """usage: trmgym demo [env=arc|arcgen|maze|sudoku] [env.<key>=value ...] [seed=N]
                   [demo.episodes=N] [demo.cells_per_step=N]

Plays demo.episodes puzzles of the env with a scripted reasoner that fixes a few wrong cells
per step, and prints every step (ansi rendering). Writes nothing to disk. The env's keys are
its constructor arguments, e.g. env=maze env.size=11 or env=sudoku env.size=4 env.blanks=6
(`trmgym run env=maze --cfg job` shows an env node with its defaults)."""


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``trmgym`` console script.

    A command line refused before anything runs (an unknown command, a bad override, an override
    the experiment does not use) prints one line naming the key and exits with status 2; Ctrl-C
    prints one line (how to resume, once the run has started) and exits with status 130.
    """
    try:
        _main(argv)
    except KeyboardInterrupt:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print("interrupted", file=sys.stderr, flush=True)
        raise SystemExit(INTERRUPTED_EXIT) from None


def _main(argv: list[str] | None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("--version", "-V") or argv[1:2] == ["--version"]:
        print(f"trmgym {trmgym.__version__}")
        return
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        fail(f"trmgym: unknown command {command!r}; allowed: {', '.join(COMMANDS)}")
    if command == "report":
        from trmgym.report import main as report_main

        raise SystemExit(report_main(rest))
    if command == "demo" and any(a in ("-h", "--help") for a in rest):
        print(DEMO_HELP)
        return
    cfg = checked_config(command, rest)
    if command == "demo":
        try:
            demo(cfg)
        except (ValueError, TypeError) as error:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            fail(f"trmgym demo: {error}")
        return
    from trmgym.startup import multirun_overrides, parse_command_line

    args, hydra_argv = parse_command_line(rest)
    if args.multirun:  # keys under a swept group, as each job has them
        flags = hydra_argv[: len(hydra_argv) - len(args.overrides)]
        hydra_argv = [*flags, *multirun_overrides(args, config_dir())]
    sys.argv = ["trmgym run", *hydra_argv]
    _hydra_app(run)


def fail(message: str) -> None:
    """Print ``message`` (one line) to stderr and exit with :data:`USAGE_EXIT`."""
    print(message, file=sys.stderr, flush=True)
    raise SystemExit(USAGE_EXIT)


def checked_config(command: str, argv: list[str]) -> Any:
    """``command``'s configuration for ``argv``, composed and checked before anything runs
    (:func:`trmgym.startup.check_command_line`); warnings are printed one line each."""
    import warnings

    from trmgym.startup import UsageError, check_command_line, parse_command_line

    args, _ = parse_command_line(argv)
    if command == "demo" and (args.multirun or args.cfg):
        fail("trmgym demo: --multirun and --cfg are for trmgym run")
    if os.environ.get("HYDRA_FULL_ERROR") == "1" and command == "run":
        return None  # Hydra's own errors, with their tracebacks
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            cfg = check_command_line(command, args, config_dir())
        except UsageError as error:
            fail(f"trmgym {command}: {error}")
    for warning in caught:
        print(f"trmgym {command}: warning: {warning.message}", file=sys.stderr, flush=True)
        STARTUP_WARNINGS.append(str(warning.message))
    return cfg


if __name__ == "__main__":
    # `python -m trmgym.cli`: run the imported module's main, so that the task functions Hydra's
    # launchers pickle are trmgym.cli.run (importable in a worker), not __main__.run
    from trmgym.cli import main as _main

    _main()
