"""trmgym.workers: spawned pools whose workers get their thread share and end with their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from trmgym.workers import THREAD_ENV_VARS, spawn_pool

ROOT = Path(__file__).resolve().parents[1]


def thread_settings() -> dict:
    """Run in a worker: what it was started with."""
    import torch

    return {
        "env": {name: os.environ.get(name) for name in THREAD_ENV_VARS},
        "torch": torch.get_num_threads(),
        "sigint": signal.getsignal(signal.SIGINT) == signal.SIG_IGN,
    }


def sleep_and_say(path: str) -> None:
    """Run in a worker: write its pid to ``path``, then sleep far longer than any test waits."""
    Path(path).write_text(str(os.getpid()))
    time.sleep(120)


def test_a_worker_starts_with_its_share_in_torch_and_in_the_openmp_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the parent's own share
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    pool = spawn_pool(1, 1)
    try:
        seen = pool.submit(thread_settings).result(timeout=120)
    finally:
        pool.shutdown()
    assert seen == {"env": dict.fromkeys(THREAD_ENV_VARS, "1"), "torch": 1, "sigint": True}
    assert os.environ["OMP_NUM_THREADS"] == "2"  # this process's own are as they were
    assert "MKL_NUM_THREADS" not in os.environ


def test_a_worker_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    """A ``kill -9`` of the parent (no chance to end its workers) leaves no worker training on:
    the worker sees its parent gone and ends itself within seconds, not after its job."""
    said = tmp_path / "pid"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from trmgym.workers import spawn_pool; "
            "from tests.test_workers import sleep_and_say; "
            f"spawn_pool(1, 1).submit(sleep_and_say, {str(said)!r}); time.sleep(120)",
        ],
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (said.exists() and said.read_text()):
            time.sleep(0.05)
        worker = psutil.Process(int(said.read_text()))
        assert worker.is_running()
        parent.kill()
        parent.wait(timeout=30)
        gone, alive = psutil.wait_procs([worker], timeout=10)
        assert not alive, "the worker outlived its killed parent by 10 s"
    finally:
        parent.kill()
        for child in psutil.Process().children(recursive=True):
            child.kill()
