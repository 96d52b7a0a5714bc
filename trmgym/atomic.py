"""Atomic file writes that Ctrl-C cannot cut in half.

Every file a run writes for others to read (``results.json``, ``fewshot.json``, checkpoints,
``report.html``) goes to a temporary file in the same folder, is flushed to disk and renamed over
its name: a reader sees the old file or the new one, never half of one.

Ctrl-C (SIGINT) is held while a file is written and delivered when the write is done. Without
this, a ``KeyboardInterrupt`` landing inside a library's own clean-up is turned into another
error: ``torch.save`` interrupted in its zip writer raises ``RuntimeError: [enforce fail at
inline_container.cc] unexpected pos``, so an interrupted run printed a traceback and exited 1
instead of 130 with the command that resumes it. A write takes milliseconds; a second Ctrl-C
during it is delivered once, after it.

Where the write is not ours (a library's clean-up on the way out), :func:`surfaced_interrupts`
turns an error that a Ctrl-C caused back into the ``KeyboardInterrupt`` it was.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "deferred_interrupt",
    "interrupted",
    "surfaced_interrupts",
    "write_atomic",
    "write_text_atomic",
]


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold SIGINT for the block, then hand it to the handler that was installed before.

    Only the main thread receives signals, so elsewhere (and where SIGINT is ignored, as in a
    comparison's workers) the block runs as it is. When the block raises, its error propagates
    and a Ctrl-C received meanwhile is still delivered after the handler is restored — the
    error then chains to it, and the caller's Ctrl-C handling runs.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):  # SIG_IGN, SIG_DFL or None (installed outside Python)
        yield
        return
    received: list[tuple[int, Any]] = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append((signum, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            previous(*received[0])  # the default handler raises KeyboardInterrupt here


def write_atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(handle)`` on ``path + ".tmp"``, fsync it and rename it over ``path``.

    Ctrl-C is held until the file is in place (:func:`deferred_interrupt`). On any error the
    temporary file is removed and ``path`` is left as it was.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with deferred_interrupt():
        try:
            with open(tmp, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`write_atomic`)."""
    data = text.encode("utf-8")
    return write_atomic(path, lambda handle: handle.write(data))


def interrupted(error: BaseException) -> bool:
    """Whether ``error`` is, or was raised while handling, a ``KeyboardInterrupt`` (its
    ``__cause__`` / ``__context__`` chain)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


@contextlib.contextmanager
def surfaced_interrupts() -> Iterator[None]:
    """Re-raise an error that a Ctrl-C caused as ``KeyboardInterrupt`` (chained to it), so that
    an interrupted run is reported as interrupted (exit 130, how to resume), not as a crash.
    Usable as a decorator."""
    try:
        yield
    except Exception as error:
        if interrupted(error):
            raise KeyboardInterrupt from error
        raise
