"""Ctrl-C during a write: the file is finished and in place, then the interrupt is delivered.

CI caught the fault this guards: a SIGINT landing inside ``torch.save``'s zip writer became
``RuntimeError: [enforce fail at inline_container.cc:672] unexpected pos 64 vs 0``, so an
interrupted comparison printed a traceback and exited 1 instead of 130 with the resume command.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest
import torch

from tests.tiny_run import AGENT, SETTINGS, TASKS
from trmgym import checkpoint
from trmgym.atomic import (
    deferred_interrupt,
    interrupted,
    surfaced_interrupts,
    write_atomic,
    write_text_atomic,
)
from trmgym.experiment import ContinualRun
from trmgym.results import RESULTS_FILE, write_results


@pytest.fixture(autouse=True)
def _python_handles_ctrl_c():
    """A suite started in the background (``make test &``) inherits SIGINT ignored: give the
    default handler back for each test, and whatever was there after."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def test_a_ctrl_c_inside_the_block_is_delivered_after_it() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupt():
            ctrl_c()
            ctrl_c()  # a second one is not delivered twice
            done.append("rest of the block")
    assert done == ["rest of the block"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with deferred_interrupt():  # nothing received: nothing raised
        done.append("again")
    assert done == ["rest of the block", "again"]


def test_the_block_s_own_error_propagates_and_the_interrupt_follows_it() -> None:
    with pytest.raises(KeyboardInterrupt) as caught:
        with deferred_interrupt():
            ctrl_c()
            raise OSError("disk full")
    assert isinstance(caught.value.__context__, OSError)
    with pytest.raises(OSError, match="disk full"):  # without a Ctrl-C: the error itself
        with deferred_interrupt():
            raise OSError("disk full")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_ignored_sigint_stays_ignored_and_a_custom_handler_gets_it_after() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a comparison's worker
    with deferred_interrupt():
        ctrl_c()
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    got = []
    handler = lambda signum, frame: got.append(signum)  # noqa: E731
    signal.signal(signal.SIGINT, handler)
    with deferred_interrupt():
        ctrl_c()
        assert got == []  # held
    assert got == [signal.SIGINT]
    assert signal.getsignal(signal.SIGINT) is handler


def test_outside_the_main_thread_the_block_just_runs() -> None:
    seen = []

    def worker() -> None:
        with deferred_interrupt():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [signal.default_int_handler]  # not replaced (only the main thread may)


def test_write_atomic_finishes_the_file_then_raises(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    write_text_atomic(path, "old")

    def write(handle) -> None:
        handle.write(b'{"half": ')
        ctrl_c()
        handle.write(b"1}")

    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, write)
    assert json.loads(path.read_text()) == {"half": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.json"]  # no temporary left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    write_text_atomic(path, "old")

    def write(handle) -> None:
        handle.write(b"new, half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, write)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.json"]


def test_results_json_is_whole_after_a_ctrl_c_during_its_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_dumps = json.dumps

    def dumps_then_ctrl_c(*args, **kwargs) -> str:
        text = real_dumps(*args, **kwargs)
        ctrl_c()
        return text

    monkeypatch.setattr("trmgym.results.json.dumps", dumps_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupt():  # as a write does: the interrupt lands mid-way
            write_results(tmp_path, {"metrics": {"bwt": 0.5}})
    assert json.loads((tmp_path / RESULTS_FILE).read_text()) == {"metrics": {"bwt": 0.5}}


def test_a_checkpoint_interrupted_while_torch_saves_it_is_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint.save_atomic({"step": 1}, tmp_path)
    real_save = torch.save

    def save_with_ctrl_c(obj, handle, *args, **kwargs) -> None:
        ctrl_c()  # lands inside the writer: before the fix the save was lost (or a RuntimeError)
        real_save(obj, handle, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_with_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_atomic({"step": 2, "w": torch.arange(3.0)}, tmp_path)
    monkeypatch.setattr(torch, "save", real_save)
    state = checkpoint.load(tmp_path / checkpoint.LAST)
    assert state["step"] == 2 and state["w"].tolist() == [0.0, 1.0, 2.0]
    assert checkpoint.load(tmp_path / checkpoint.PREVIOUS)["step"] == 1
    assert checkpoint.remove_temporaries(tmp_path) == []


def test_an_error_raised_while_handling_a_ctrl_c_is_an_interrupt() -> None:
    def cleanup_fails_after_ctrl_c() -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("unexpected pos 64 vs 0") from None  # context kept

    with pytest.raises(RuntimeError) as caught:
        cleanup_fails_after_ctrl_c()
    assert interrupted(caught.value)
    assert not interrupted(RuntimeError("a real failure"))
    with pytest.raises(KeyboardInterrupt) as surfaced:
        with surfaced_interrupts():
            cleanup_fails_after_ctrl_c()
    assert isinstance(surfaced.value.__cause__, RuntimeError)
    with pytest.raises(RuntimeError, match="a real failure"):
        with surfaced_interrupts():
            raise RuntimeError("a real failure")


def test_a_run_whose_save_fails_because_of_a_ctrl_c_is_interrupted_and_resumes_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def make(run_dir: Path) -> ContinualRun:
        return ContinualRun(TASKS, AGENT, {"name": "naive"}, SETTINGS, run_dir, device="cpu")

    whole = make(tmp_path / "whole").run()
    original = ContinualRun._save
    calls = {"n": 0}

    def save_fails_on_ctrl_c(self: ContinualRun, state: dict) -> None:
        original(self, state)
        calls["n"] += 1
        if calls["n"] == 2:
            monkeypatch.setattr(ContinualRun, "_save", original)
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt:
                raise RuntimeError("enforce fail at inline_container.cc") from None

    monkeypatch.setattr(ContinualRun, "_save", save_fails_on_ctrl_c)
    with pytest.raises(KeyboardInterrupt):  # not the RuntimeError: the CLI says how to resume
        make(tmp_path / "cut").run()
    resumed = make(tmp_path / "cut").run()
    assert resumed["accuracy_matrix"] == whole["accuracy_matrix"]
    assert resumed["metrics"] == whole["metrics"]


def test_a_plot_interrupted_while_saved_is_a_whole_png(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matplotlib.figure import Figure
    from matplotlib.image import imread

    from trmgym import report

    real_imsave = report.imsave  # the PNG writer of report._finish

    def imsave_with_ctrl_c(*args, **kwargs):
        ctrl_c()
        return real_imsave(*args, **kwargs)

    monkeypatch.setattr(report, "imsave", imsave_with_ctrl_c)
    figure = Figure(figsize=(2, 1))
    figure.add_subplot().plot([0, 1], [1, 0])
    path = tmp_path / "plots" / "curve.png"
    with pytest.raises(KeyboardInterrupt):
        report._finish(figure, path)
    assert imread(path).shape[:2] == (report._DPI * 1, report._DPI * 2)
    assert sorted(p.name for p in path.parent.iterdir()) == ["curve.png"]
