"""Curricula inside whole runs: results.json's block, exact resume, rehearsal, comparisons."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trmgym.curricula.schedulers import LearningProgress, Rehearsal
from trmgym.experiment import ContinualRun

from ..tiny_run import AGENT, SETTINGS, TASKS, interrupt_after_saves

pytestmark = pytest.mark.slow

#: the tiny ARCGen tasks, as levels of one env (programs 0 and 1)
LEVELS = [{"task_id": 0}, {"task_id": 1}]


def _run(run_dir: Path, plugin, tasks=TASKS[:1]) -> dict:  # noqa: ANN001
    return ContinualRun(
        tasks, AGENT, {"name": "naive"}, SETTINGS, run_dir, console=False, plugins=[plugin]
    ).run()


def test_results_hold_the_block_and_a_resumed_run_is_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = _run(tmp_path / "whole", LearningProgress(LEVELS, seed=5))
    block = whole["curriculum"]
    assert block["name"] == "lp" and block["level_names"] == ["task_id=0", "task_id=1"]
    history = block["history"]
    assert history["step"] == [3, 6]  # one record per chunk, at the global optimizer step
    assert history["env_steps"] == [3 * 8, 6 * 8]  # batch 8
    assert all(abs(sum(p) - 1) < 1e-12 for p in history["probabilities"])

    interrupt_after_saves(monkeypatch, 1)  # Ctrl-C after the first chunk's checkpoint
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "cut", LearningProgress(LEVELS, seed=5))
    resumed = _run(tmp_path / "cut", LearningProgress(LEVELS, seed=5))
    for key in ("curriculum", "accuracy_matrix", "curves", "env_steps"):
        assert resumed[key] == whole[key], key


def test_rehearsal_records_its_mix_of_tasks_per_chunk(
    tmp_path: Path,
) -> None:
    results = _run(tmp_path / "r", Rehearsal(ratio=0.5, seed=1), tasks=TASKS)
    block = results["curriculum"]
    assert block["name"] == "rehearsal" and block["ratio"] == 0.5
    # task 0 trains alone; during task 1 half the puzzles are task 0's
    assert block["history"]["probabilities"] == [[1.0, 0.0], [1.0, 0.0], [0.5, 0.5], [0.5, 0.5]]
    assert block["level_names"] == ["task=0", "task=1"]


def _tiny_comparison(run_dir: Path, comparison: str, threads: int) -> subprocess.CompletedProcess:
    """A 6-step ramp on 4x4 Sudoku with ``curriculum_comparison=<comparison>``, run to its end."""
    command = [
        sys.executable, "-m", "trmgym.cli", "run", "experiment=single_task", "env=sudoku",
        "env.size=4", "env.blanks=2", "run.train_steps=6", "run.eval_every=3",
        "run.eval_episodes=8", "run.batch_size=8", "run.max_reasoning_steps=2",
        "+agent.model.hidden_size=32", "+agent.model.num_heads=2", "curriculum=ramp",
        "curriculum.levels={blanks:[1,2]}", f"curriculum_comparison={comparison}",
        "console=false", "device=cpu", f"run.threads={threads}", f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def test_curriculum_comparison_runs_each_curriculum_and_records_steps_to_threshold(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "cmp"
    done = _tiny_comparison(run_dir, "{against:[uniform,plr],threshold:0.01}", threads=2)
    assert done.returncode == 0, done.stderr[-2000:]
    main = json.loads((run_dir / "results.json").read_text())
    block = main["curriculum"]
    assert block["name"] == "ramp" and block["threshold"] == 0.01
    assert set(block["steps_to_threshold"]) == {"ramp", "uniform", "plr"}
    assert block["level"] == {"size": 4, "blanks": 2}
    assert block["runs"] == {"uniform": "compare/uniform", "plr": "compare/plr"}
    for name in ("uniform", "plr"):
        arm = json.loads((run_dir / "compare" / name / "results.json").read_text())
        assert arm["curriculum"]["name"] == name
        assert arm["curriculum"]["levels"] == block["levels"]  # the same levels
        assert arm["seed"] == main["seed"] and arm["settings"] == main["settings"]
        assert block["curves"][name]["accuracy"] == arm["curves"][0]
        reached = [
            s for s, a in zip(block["curves"][name]["env_steps"], arm["curves"][0]) if a >= 0.01
        ]
        assert block["steps_to_threshold"][name] == (reached[0] if reached else None)
    assert block["curves"]["ramp"]["env_steps"] == [24, 48]
    assert block["budget_env_steps"] == 48
    assert "curriculum comparison: ramp " in (run_dir / "cli.log").read_text()
    # the values are tested on scripted curves (test_summarize_bounds_each_curriculum_by_its_own_
    # budget); here: one entry per compared curriculum, undefined where the ramp never got there
    mine = block["steps_to_threshold"]["ramp"]
    assert set(block["speedup"]) == {"uniform", "plr"}
    for name in ("uniform", "plr"):
        theirs = block["steps_to_threshold"][name]
        speedup = block["speedup"][name]
        if mine is None:
            assert speedup is None
        else:
            assert speedup["lower_bound"] is (theirs is None)
            assert speedup["ratio"] == pytest.approx((theirs or 48) / mine)
    assert (run_dir / "plots" / "curriculum.png").is_file()
    assert "Curriculum" in (run_dir / "report.html").read_text()
    # workers=2 (the default) on run.threads=2: the compared runs trained in another process,
    # one after the other, each writing its own log; every curriculum on one thread
    assert (
        "uniform, plr train in 1 other process beside this run" in (run_dir / "cli.log").read_text()
    )
    for name in ("uniform", "plr"):
        log = (run_dir / "compare" / name / "cli.log").read_text()
        assert f"strategy naive + curriculum {name}" in log
        assert "torch threads 1 (curriculum_comparison.workers=2 share 2" in log
        arm = json.loads((run_dir / "compare" / name / "results.json").read_text())
        assert [start["torch_threads"] for start in arm["starts"]] == [1]
    assert [start["torch_threads"] for start in main["starts"]] == [1]


#: a tiny comparison long enough to interrupt while both curricula train
LONG_COMPARISON = [
    "experiment=single_task", "env=sudoku", "env.size=4", "env.blanks=2",
    "run.train_steps=160", "run.eval_every=3", "run.eval_episodes=8", "run.batch_size=8",
    "run.max_reasoning_steps=2", "+agent.model.hidden_size=32", "+agent.model.num_heads=2",
    "curriculum=ramp", "curriculum.levels={blanks:[1,2]}", "console=false", "device=cpu",
    "run.threads=2",
]  # fmt: skip


def _comparison_command(run_dir: Path, workers: int) -> list[str]:
    return [
        sys.executable, "-m", "trmgym.cli", "run", *LONG_COMPARISON,
        f"curriculum_comparison={{against:[uniform],threshold:0.5,workers:{workers}}}",
        f"hydra.run.dir={run_dir}",
    ]  # fmt: skip


def _start_comparison(run_dir: Path) -> subprocess.Popen:
    """The side-by-side comparison (workers=2) started in the background, pipes captured."""
    return subprocess.Popen(
        _comparison_command(run_dir, 2),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        # a background job of a non-interactive shell ignores SIGINT: give the run Ctrl-C back
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _same_numbers(a: dict, b: dict) -> None:
    for key in ("accuracy_matrix", "curves", "env_steps"):
        assert a[key] == b[key], key
    for key in ("steps_to_threshold", "curves", "speedup", "history"):
        assert a["curriculum"].get(key) == b["curriculum"].get(key), key


def test_curricula_trained_side_by_side_match_one_after_the_other_and_resume_exactly(
    tmp_path: Path,
) -> None:
    """workers=2 on run.threads=2 gives each curriculum one thread: the numbers of workers=1 on
    run.threads=1, whatever runs beside it; Ctrl-C while both train ends the worker too, and
    the same command resumes both to the uninterrupted numbers."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    serial = tmp_path / "serial"
    command = [*_comparison_command(serial, 1), "run.threads=1"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    main_log = (serial / "cli.log").read_text()
    assert "beside this run" not in main_log  # one after the other
    assert "uniform trains first, one after the other in this process" in main_log
    # the compared run's lines are in its own log, not the main run's
    assert "strategy naive + curriculum uniform" in (serial / "compare/uniform/cli.log").read_text()
    assert "curriculum uniform" not in main_log.replace("uniform trains first", "")

    cut = tmp_path / "cut"
    process = _start_comparison(cut)
    checkpoints = [cut / "checkpoints" / "last.pt", cut / "compare" / "uniform" / "checkpoints"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (
        checkpoints[0].exists() and (checkpoints[1] / "last.pt").exists()
    ):
        time.sleep(0.05)  # interrupt once both have a checkpoint
    process.send_signal(signal.SIGINT)  # the main process only: it ends its worker
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err  # 54 chunks: not finished 0.05 s after the first
    assert "Traceback" not in err
    assert not (cut / "results.json").exists()
    arm_saved = (checkpoints[1] / "last.pt").stat().st_mtime_ns
    time.sleep(1.0)
    assert (checkpoints[1] / "last.pt").stat().st_mtime_ns == arm_saved  # the worker is gone

    again = subprocess.run(
        _comparison_command(cut, 2), capture_output=True, text=True, env=env, timeout=600
    )
    assert again.returncode == 0, again.stderr[-2000:]
    whole, resumed = (json.loads((d / "results.json").read_text()) for d in (serial, cut))
    _same_numbers(resumed, whole)
    for name in ("uniform",):
        arms = [
            json.loads((d / "compare" / name / "results.json").read_text()) for d in (serial, cut)
        ]
        _same_numbers(arms[1], arms[0])
        assert [s["torch_threads"] for s in arms[1]["starts"]] == [1, 1]  # resumed, not rerun
    assert [start["torch_threads"] for start in resumed["starts"]] == [1, 1]  # 2 threads / 2
    assert "uniform trains in 1 other process beside this run" in (cut / "cli.log").read_text()


def test_workers_above_the_threads_given_say_so_and_log_apart(tmp_path: Path) -> None:
    """workers=2 on run.threads=1 trains the compared run first, in this process (never more
    processes than threads), says so, and still gives it its own cli.log and no output."""
    run_dir = tmp_path / "w2t1"
    done = _tiny_comparison(run_dir, "{against:[uniform],threshold:0.5,workers:2}", threads=1)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "compare/uniform" not in done.stdout + done.stderr  # console=false: nothing of it
    main_log = (run_dir / "cli.log").read_text()
    assert (
        "uniform trains first, one after the other in this process "
        "(curriculum_comparison.workers=2 on 1 torch thread (run.threads): give run.threads >= 2"
    ) in main_log
    arm_log = (run_dir / "compare" / "uniform" / "cli.log").read_text()
    assert "strategy naive + curriculum uniform" in arm_log
    assert "torch threads 1" in arm_log
    assert "strategy naive + curriculum uniform" not in main_log
    assert "strategy naive + curriculum ramp" in main_log  # the main run logs after it, as before


#: the command line every refused comparison below is added to
BAD_BASE = [
    "experiment=single_task", "env=sudoku", "env.size=4", "env.blanks=2", "console=false",
    "device=cpu",
]  # fmt: skip
RAMP = ["curriculum=ramp", "curriculum.levels={blanks:[1,2]}"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["curriculum_comparison={against:[uniform]}"],
            "curriculum_comparison needs a curriculum to compare (e.g. curriculum=ramp); "
            "curriculum is null",
        ),
        (
            [*RAMP, "curriculum_comparison={against:[uniform],threshold:0}"],
            "curriculum_comparison.threshold must be a number in (0, 1], got 0",
        ),
        (
            [*RAMP, "curriculum_comparison={against:[uniform],treshold:0.5}"],
            "curriculum_comparison.treshold: no such key; allowed keys: ['against', 'threshold', "
            "'workers']",
        ),
        (
            [*RAMP, "curriculum_comparison={against:[uniform],workers:0}"],
            "curriculum_comparison.workers must be an int >= 1, got 0",
        ),
        (
            [*RAMP, "curriculum_comparison={against:[uniform],workers:true}"],
            "curriculum_comparison.workers must be an int >= 1, got True",
        ),
        (
            [*RAMP, "curriculum_comparison={against:[uniform],workers:1.5}"],
            "curriculum_comparison.workers must be an int >= 1, got 1.5",
        ),
        (  # every job of a sweep is checked before the first one starts
            ["-m", *RAMP,
             "curriculum_comparison={against:[uniform],threshold:0.5},{against:[uniform],"
             "threshold:0}"],
            "curriculum_comparison.threshold must be a number in (0, 1], got 0",
        ),
    ],
)  # fmt: skip
def test_a_bad_comparison_is_refused_at_start_up_before_hydra_makes_anything(
    tmp_path: Path,
    overrides: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Refused by the start-up checks (in this process: nothing of Hydra's is set up yet), with
    no run or sweep directory made."""
    from trmgym.cli import main

    monkeypatch.chdir(tmp_path)
    where = "hydra.sweep.dir=sweep" if "-m" in overrides else "hydra.run.dir=run"
    with pytest.raises(SystemExit) as stop:
        main(["run", *BAD_BASE, where, *overrides])
    assert stop.value.code == 2
    line = capsys.readouterr().err
    assert line.startswith(f"trmgym run: {message}") and line.count("\n") == 1, line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            [*RAMP, "curriculum_comparison={against:[ramp]}"],
            "the run's own curriculum",
        ),
        (  # named by the config chosen, not by its class (arc_stages is a Staged)
            ["curriculum=arc_stages", "curriculum.stages=[[{blanks:1}],[{blanks:2}]]",
             "curriculum_comparison={against:[arc_stages]}"],
            "lists 'arc_stages', the run's own curriculum",
        ),
        (
            ["curriculum=plr", "curriculum.levels={blanks:[1,2]}", "curriculum.temprature=2"],
            "curriculum.temprature: no such key; allowed keys of curriculum=plr: levels, score, "
            "temperature,",
        ),
        (
            [*RAMP, "curriculum_comparison={against:[unifrom]}"],
            "no curriculum 'unifrom'; allowed: ['arc_stages', 'lp', 'plr', 'ramp'",
        ),
    ],
)  # fmt: skip
def test_a_bad_comparison_is_refused_in_one_line_before_anything_runs(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    """Refused when the run is built (a subprocess: Hydra has set up the run's logging by then)."""
    run_dir = tmp_path / "bad"
    command = [
        sys.executable, "-m", "trmgym.cli", "run", *BAD_BASE, f"hydra.run.dir={run_dir}",
        *overrides,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert message in done.stderr.strip().splitlines()[-1]
    assert not run_dir.exists()


def test_curricula_are_named_by_their_config_not_their_class(tmp_path: Path) -> None:
    """arc_stages and staged are both a Staged: a run of one compared with the other is allowed,
    and results.json, the log line and the compared run name each by its config."""
    run_dir = tmp_path / "named"
    command = [
        sys.executable, "-m", "trmgym.cli", "run", "experiment=single_task", "env=sudoku",
        "env.size=4", "env.blanks=2", "run.train_steps=4", "run.eval_every=2",
        "run.eval_episodes=8", "run.batch_size=8", "run.max_reasoning_steps=2",
        "+agent.model.hidden_size=32", "+agent.model.num_heads=2", "curriculum=arc_stages",
        "curriculum.stages=[[{blanks:1}],[{blanks:2}]]",
        "curriculum_comparison={against:[staged],threshold:0.01,workers:1}",
        "console=false", "device=cpu", "run.threads=1", f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    block = json.loads((run_dir / "results.json").read_text())["curriculum"]
    assert block["name"] == "arc_stages"
    assert list(block["steps_to_threshold"]) == ["arc_stages", "staged"]
    assert list(block["speedup"]) == ["staged"]
    arm = json.loads((run_dir / "compare" / "staged" / "results.json").read_text())
    assert arm["curriculum"]["name"] == "staged"
    # the name labels results only: not in the recorded configuration, so a comparison run
    # before names were recorded still resumes
    (record,) = [p for p in arm["plugins"] if p["name"] == "curriculum"]
    assert "name" not in record["config"]
    # started again: every curriculum finished, so nothing trains and nothing is rewritten
    kept = (
        (run_dir / "results.json").read_bytes(),
        (run_dir / "compare" / "staged" / "results.json").read_bytes(),
    )
    again = subprocess.run(
        [*command[:-2], "run.threads=2", command[-1]],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    assert "already finished (results.json), skipped" in again.stdout
    assert kept == (
        (run_dir / "results.json").read_bytes(),
        (run_dir / "compare" / "staged" / "results.json").read_bytes(),
    )


def test_a_killed_worker_is_one_line_naming_the_run_and_the_same_command_resumes(
    tmp_path: Path,
) -> None:
    """A compared run's worker killed mid-run (as the kernel's out-of-memory killer would): the
    main run trains to its end, then says in one line which run did not finish, exits 1 with
    no traceback and no results.json; the same command resumes the lost run from its last
    checkpoint and finishes."""
    import psutil

    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    run_dir = tmp_path / "run"
    process = _start_comparison(run_dir)
    arm = run_dir / "compare" / "uniform" / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not arm.exists():
        time.sleep(0.05)
    workers = [
        child
        for child in psutil.Process(process.pid).children()
        if "resource_tracker" not in " ".join(child.cmdline())
    ]
    assert len(workers) == 1, [w.cmdline() for w in workers]
    workers[0].kill()
    out, err = process.communicate(timeout=600)
    assert process.returncode == 1, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("trmgym run: curriculum_comparison: a worker process ended abruptly")
    assert "before uniform finished" in err and str(run_dir / "compare/uniform/cli.log") in err
    assert not (run_dir / "results.json").exists()
    assert (run_dir / "checkpoints" / "last.pt").exists()  # the main run trained to its end

    again = subprocess.run(
        _comparison_command(run_dir, 2), capture_output=True, text=True, env=env, timeout=600
    )
    assert again.returncode == 0, again.stderr[-2000:]
    uniform = json.loads((run_dir / "compare" / "uniform" / "results.json").read_text())
    assert len(uniform["starts"]) == 2  # resumed from its checkpoint, not run again
    main = json.loads((run_dir / "results.json").read_text())
    assert set(main["curriculum"]["steps_to_threshold"]) == {"ramp", "uniform"}


def test_a_failed_compared_run_names_every_run_that_did_not_finish(tmp_path: Path) -> None:
    """uniform failed while lp still trained (and is stopped with it): the line names both;
    a dead worker (BrokenProcessPool on every unfinished future) blames no single run."""
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool
    from types import SimpleNamespace

    from trmgym.cli import ComparedRun, compared_run_error

    names = ("uniform", "lp", "plr")
    arms = {n: ComparedRun(SimpleNamespace(run_dir=tmp_path / n), {}) for n in names}
    futures = {n: Future() for n in names}
    futures["plr"].set_result({})  # finished
    failure = ValueError("levels do not fit")
    futures["uniform"].set_exception(failure)  # lp: still running
    line = str(compared_run_error(futures, arms, "uniform", failure))
    assert line.startswith(
        "curriculum_comparison: the uniform run failed (ValueError: levels do not fit; its "
        f"traceback: {tmp_path / 'uniform' / 'cli.log'}); stopped unfinished: lp;"
    )
    assert "plr" not in line and "\n" not in line

    broken = {n: Future() for n in names}
    broken["plr"].set_result({})
    for n in ("uniform", "lp"):
        broken[n].set_exception(BrokenProcessPool("a child process terminated abruptly"))
    line = str(compared_run_error(broken, arms, "uniform", broken["uniform"].exception()))
    assert "ended abruptly (killed, or out of memory?) before uniform, lp finished" in line
    assert str(tmp_path / "lp" / "cli.log") in line and "plr" not in line


def test_a_compared_run_failing_in_the_main_process_is_one_line(tmp_path: Path) -> None:
    """workers=1: the compared runs train first, in the main process; one that cannot start
    (its directory held by another process) ends the command in one line, as from a worker,
    naming the compared runs not trained, and leaves that directory alone."""
    from tests.core.test_rundir import holder

    run_dir = tmp_path / "serial"
    other = holder(run_dir / "compare" / "uniform")
    try:
        done = _tiny_comparison(run_dir, "{against:[uniform,plr],threshold:0.5,workers:1}", 1)
    finally:
        other.kill()
        other.wait(timeout=30)
    assert done.returncode == 1, done.stderr[-2000:]
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(
        f"trmgym run: curriculum_comparison: the uniform run: {run_dir / 'compare' / 'uniform'} "
        "is in use by another trmgym process"
    )
    assert line.endswith("; stopped unfinished: plr"), line
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in (run_dir / "compare" / "uniform").iterdir()) == [".trmgym.lock"]
    assert not (run_dir / "compare" / "plr" / "results.json").exists()
