"""One run directory, one process writing it: an exclusive lock held while a run uses it.

Two runs writing one directory at once — the same command started twice, a sweep started again
while its first start still runs, a worker orphaned by a killed parent — would interleave their
checkpoints, TensorBoard events and results.json, and a run that has not checkpointed yet could
have its ``.hydra/config.yaml`` overwritten by another configuration. :func:`hold` takes an
exclusive, non-blocking ``flock`` on the run's lock file, :data:`LOCK_FILE`, and raises
:class:`RunDirInUse` when another process holds it (nothing else is read or written then). The
kernel releases the lock when the holding process ends, however it ends (``kill -9``
included): the file left behind is not a lock, and the next start takes it.

A regular file, not the directory: on NFS Linux sends ``flock`` on a regular file to the server
(as a POSIX lock), so two machines of a cluster sharing ``hydra.sweep.dir`` exclude each other;
a directory's ``flock`` would only be seen on one machine. Where the file system refuses locks
(``ENOLCK``, ``ENOSYS``, ``EOPNOTSUPP``: some parallel file systems) the run goes on unlocked
with a warning in its log; where ``fcntl`` does not exist (Windows) nothing is locked.

Holding is re-entrant within a process (the command line holds a run's directory from its
start-up check to its end, and :meth:`trmgym.experiment.ContinualRun.run` holds it again).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_FILE", "RunDirError", "RunDirInUse", "hold", "holding", "release", "unlocked"]

#: the file whose flock marks a run directory in use (it stays; only the lock is released)
LOCK_FILE = ".trmgym.lock"

log = logging.getLogger(__name__)
#: the warning logged when a run directory's file system refuses locks (path, reason)
UNLOCKED = (
    "%s: its file system refuses locks (%s), so a second start in it while this run runs "
    "would not be refused"
)

_held: dict[str, list[int]] = {}  # resolved path -> [file descriptor (-1: unlocked), depth]
_guard = threading.Lock()
_refused: dict[str, str] = {}  # resolved path -> why its file system refused the lock


class RunDirError(RuntimeError):
    """A run directory that cannot be used (:func:`hold`); it is left as it was."""


class RunDirInUse(RunDirError):
    """Another process holds the run directory (:func:`hold`)."""


def _lock(path: Path) -> int:
    """An open descriptor of ``path``'s lock file, flocked; -1 where locks are unsupported."""
    try:
        fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise RunDirError(f"{path}: cannot write in it ({error.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(fd)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise RunDirInUse(
                f"{path} is in use by another trmgym process (a run started twice, or a sweep "
                "started again while its first start runs); wait for it to end, or give this "
                "run another directory (hydra.run.dir / hydra.sweep.dir)"
            ) from None
        log.warning(UNLOCKED, path, error.strerror)
        _refused[str(path.resolve())] = error.strerror
        return -1
    except BaseException:
        os.close(fd)
        raise
    return fd


def unlocked(run_dir: str | os.PathLike) -> str | None:
    """Why this process holds ``run_dir`` without a lock (its file system refused it: the
    error's text), or ``None`` (locked, or not held)."""
    key = str(Path(run_dir).resolve())
    with _guard:
        entry = _held.get(key)
        return _refused.get(key) if entry is not None and entry[0] < 0 else None


def holding(run_dir: str | os.PathLike) -> bool:
    """Whether this process holds ``run_dir`` (:func:`hold`)."""
    with _guard:
        return str(Path(run_dir).resolve()) in _held


@contextlib.contextmanager
def hold(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold ``run_dir`` (created if missing) for the ``with`` block; yields it.

    Raises:
        RunDirInUse: another process holds it — nothing has been written then.
        RunDirError: the directory cannot be created or written (e.g. read-only).
    """
    path = Path(run_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirError(f"{path}: cannot create it ({error.strerror})") from None
    key = str(path.resolve())
    with _guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
        else:
            _held[key] = [_lock(path) if fcntl is not None else -1, 1]
    try:
        yield path
    finally:
        with _guard:
            entry = _held.get(key)
            if entry is not None:  # None: released early (:func:`release`)
                entry[1] -= 1
                if entry[1] == 0:
                    del _held[key]
                    if entry[0] >= 0:
                        os.close(entry[0])  # closing the descriptor releases the flock


def release(run_dir: str | os.PathLike) -> None:
    """Give up ``run_dir`` now, however many :func:`hold` blocks hold it (their ends then do
    nothing): a refused start deleting the directory it made closes the lock file first (on
    NFS a deleted file still open stays as ``.nfsXXXX`` and the directory cannot go)."""
    with _guard:
        entry = _held.pop(str(Path(run_dir).resolve()), None)
    if entry is not None and entry[0] >= 0:
        os.close(entry[0])
