"""One run directory, one process writing it: an exclusive lock held while a run uses it.

Two runs writing one directory at once — the same command started twice, a sweep started again
while its first start still runs, a worker orphaned by a killed parent — would interleave their
checkpoints, TensorBoard events and results.json, and a run that has not checkpointed yet could
have its ``.hydra/config.yaml`` overwritten by another configuration. :func:`hold` takes an
exclusive, non-blocking ``flock`` on the directory itself (no lock file is written, so a refused
start leaves the directory exactly as it was) and raises :class:`RunDirInUse` when another
process holds it. The kernel releases the lock when the holding process ends, however it ends
(``kill -9`` included), so there is never a stale lock to delete.

Holding is re-entrant within a process (the command line holds a run's directory from its
start-up check to its end, and :meth:`trmgym.experiment.ContinualRun.run` holds it again).
Where ``fcntl`` does not exist (Windows) nothing is locked.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None  # type: ignore[assignment]

__all__ = ["RunDirInUse", "hold"]

_held: dict[str, list[int]] = {}  # resolved path -> [file descriptor, depth]
_guard = threading.Lock()


class RunDirInUse(RuntimeError):
    """Another process holds the run directory (:func:`hold`)."""


@contextlib.contextmanager
def hold(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold ``run_dir`` (created if missing) for the ``with`` block; yields it.

    Raises:
        RunDirInUse: another process holds it — nothing has been written then.
    """
    path = Path(run_dir)
    path.mkdir(parents=True, exist_ok=True)
    key = str(path.resolve())
    with _guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
        elif fcntl is not None:
            fd = os.open(key, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunDirInUse(
                    f"{path} is in use by another trmgym process (a run started twice, or a "
                    "sweep started again while its first start runs); wait for it to end, or "
                    "give this run another directory (hydra.run.dir / hydra.sweep.dir)"
                ) from None
            except BaseException:
                os.close(fd)
                raise
            _held[key] = [fd, 1]
    try:
        yield path
    finally:
        with _guard:
            entry = _held.get(key)
            if entry is not None:
                entry[1] -= 1
                if entry[1] == 0:
                    del _held[key]
                    os.close(entry[0])  # closing the last descriptor releases the flock
