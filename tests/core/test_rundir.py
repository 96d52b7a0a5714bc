"""trmgym.rundir: one process at a time writes a run directory."""

from __future__ import annotations

import errno
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from trmgym import rundir
from trmgym.rundir import RunDirInUse

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(rundir.fcntl is None, reason="no flock on this platform")

IN_USE = (
    "is in use by another trmgym process (a run started twice, or a sweep started again while "
    "its first start runs); wait for it to end, or give this run another directory "
    "(hydra.run.dir / hydra.sweep.dir)"
)


def holder(run_dir: Path) -> subprocess.Popen:
    """Another process holding ``run_dir`` until killed; returns once it holds it."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from trmgym.rundir import hold\n"
            f"with hold({str(run_dir)!r}):\n    print('held', flush=True); time.sleep(300)",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "held"
    return process


def test_holding_is_re_entrant_in_a_process_and_exclusive_across_processes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with rundir.hold(run_dir), rundir.hold(run_dir):  # the CLI, then ContinualRun.run
        pass
    other = holder(run_dir)  # released above: another process may take it
    try:
        with pytest.raises(RunDirInUse, match=r"run is in use by another trmgym process"):
            with rundir.hold(run_dir):
                pass
        other.send_signal(signal.SIGKILL)  # however the holder ends, the kernel releases it
        other.wait(timeout=30)
        with rundir.hold(run_dir) as held:
            assert held == run_dir and rundir.holding(run_dir)
        assert not rundir.holding(run_dir)
        assert sorted(p.name for p in run_dir.iterdir()) == [rundir.LOCK_FILE]  # not a lock now
    finally:
        other.kill()


def test_release_gives_the_directory_up_inside_nested_holds(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with rundir.hold(run_dir), rundir.hold(run_dir):
        rundir.release(run_dir)  # a refused start deleting its directory closes the lock first
        assert not rundir.holding(run_dir)
        other = holder(run_dir)  # another process may take it at once
        other.kill()
        other.wait(timeout=30)
    assert not rundir.holding(run_dir)  # the holds' ends did nothing more
    rundir.release(run_dir)  # not held: nothing to do


def test_the_same_directory_by_another_path_is_the_same_lock(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "link").symlink_to(run_dir, target_is_directory=True)
    other = holder(tmp_path / "link")
    try:
        for path in (run_dir, tmp_path / "other" / ".." / "run"):
            with pytest.raises(RunDirInUse):
                with rundir.hold(path):
                    pass
    finally:
        other.kill()
        other.wait(timeout=30)


def test_a_file_system_without_locks_runs_unlocked_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(rundir.fcntl, "flock", no_locks)
    with rundir.hold(tmp_path / "run"), rundir.hold(tmp_path / "run"):
        assert rundir.holding(tmp_path / "run")
    assert not rundir.holding(tmp_path / "run")
    assert "refuses locks (No locks available)" in caplog.text
    assert rundir.unlocked(tmp_path / "run") is None  # not held now

    # a compared run in a worker: the warning reaches its own cli.log once that is open
    from types import SimpleNamespace

    from trmgym.comparison import _train_logged

    arm = SimpleNamespace(run=lambda: {"done": True})
    with rundir.hold(tmp_path / "arm") as folder:
        assert rundir.unlocked(folder) == "No locks available"
        assert _train_logged(lambda: arm, folder, "note") == {"done": True}
    assert "refuses locks (No locks available)" in (tmp_path / "arm" / "cli.log").read_text()


def test_a_directory_that_cannot_be_written_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*args: object, **kwargs: object) -> int:  # a read-only directory (as non-root)
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(rundir.os, "open", refused)
    with pytest.raises(rundir.RunDirError, match=r"run: cannot write in it \(Permission denied\)"):
        with rundir.hold(tmp_path / "run"):
            pass
    assert not rundir.holding(tmp_path / "run")


def test_a_second_start_in_a_running_directory_is_refused_and_leaves_it_as_it_is(
    tmp_path: Path,
) -> None:
    """Another configuration in the directory of a run that has just started (its cli.log
    alone, no checkpoint, so the resume check would let it in): one line, exit 2; no line of it
    is logged into that cli.log (not even its start-up warning), nothing is overwritten and the
    directory is not removed as a failed start (its bad value is never reached)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "cli.log").write_text("the first run's log\n")
    other = holder(run_dir)
    try:
        before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
        done = subprocess.run(
            [sys.executable, "-m", "trmgym.cli", "run", "experiment=single_task", "env=sudoku",
             "env.size=4", "curriculum=ramp", "curriculum.levels={blanks:[1,80]}",
             "demo.episodes=2", "device=cpu", "console=false", f"hydra.run.dir={run_dir}"],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().splitlines()[-1] == f"trmgym run: {run_dir} {IN_USE}"
        assert "warning: demo.episodes" in done.stderr  # printed, as every start-up warning
        assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
    finally:
        other.kill()
        other.wait(timeout=30)
    with rundir.hold(run_dir):  # the holder is gone: the directory is free again
        pass
