"""trmgym.rundir: one process at a time writes a run directory."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from trmgym import rundir
from trmgym.rundir import RunDirInUse

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(rundir.fcntl is None, reason="no flock on this platform")


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
            assert held == run_dir
        assert sorted(p.name for p in run_dir.iterdir()) == []  # no lock file is left
    finally:
        other.kill()


def test_a_second_start_in_a_running_directory_is_refused_and_leaves_it_as_it_is(
    tmp_path: Path,
) -> None:
    """The same directory with another configuration while a run holds it: one line, exit 2,
    and neither its files nor its .hydra/config.yaml are touched (the run has no checkpoint
    yet, so the resume check alone would have let the second start overwrite them)."""
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("seed: 0\n")
    other = holder(run_dir)
    try:
        before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
        done = subprocess.run(
            [sys.executable, "-m", "trmgym.cli", "run", "experiment=smoke", "seed=7",
             "device=cpu", "console=false", f"hydra.run.dir={run_dir}"],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().splitlines() == [
            f"trmgym run: {run_dir} is in use by another trmgym process (a run started twice, "
            "or a sweep started again while its first start runs); wait for it to end, or "
            "give this run another directory (hydra.run.dir / hydra.sweep.dir)"
        ]
        after = {
            p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != "cli.log"
        }
        assert after == before
    finally:
        other.kill()
        other.wait(timeout=30)
    with rundir.hold(run_dir):  # the holder is gone: the directory is free again
        pass
