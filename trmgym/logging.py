"""Run logging: TensorBoard scalars/images, a rich progress bar, and console tables.

Scalars use namespaced keys as Stable-Baselines3 does: ``train/…`` (losses), ``rollout/…``
(training episodes), ``halt/…`` (halting), ``eval/…`` (held-out evaluation) and ``cl/…``
(continual-learning metrics).
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from trmgym.metrics import undefined_note

#: the run's progress lines; ``trmgym run`` writes INFO to the run's cli.log (Hydra job logging)
log = logging.getLogger("trmgym.run")


class RunLogger:
    """Writes TensorBoard events under ``run_dir/tb`` and shows the run's progress.

    On a terminal: a rich progress bar (steps, elapsed, ETA). Otherwise (``make run > log``, a
    batch job): one plain line per chunk, flushed as it is written (task i/T, step, train exact,
    last eval accuracy, elapsed, ETA). Every line also goes to the ``trmgym.run`` logger, which
    ``trmgym run`` writes to the run's cli.log.

    Args:
        run_dir: the run directory.
        total_steps: optimizer steps of the whole run (for the progress bar).
        enabled: ``False`` silences the console but for the run directory and the results path
            (``console=false``; TensorBoard is still written).
        write: ``False`` writes no TensorBoard events and prints nothing (the ranks other than 0
            of a data-parallel run).
    """

    def __init__(
        self, run_dir: str | Path, total_steps: int, *, enabled: bool = True, write: bool = True
    ) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tb")) if write else _NoWriter()
        self.console = Console(highlight=False, quiet=not enabled, soft_wrap=True)
        self.enabled, self.write = enabled, write
        self.total = total_steps
        #: a live bar on a terminal; plain lines per chunk elsewhere
        self.live = enabled and self.console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
            disable=not self.live,
        )
        self.bar = self.progress.add_task("training", total=total_steps, status="")
        self.progress.start()
        self._started, self._first_step = time.perf_counter(), 0

    def banner(self, lines: list[str], *, quiet: bool = False) -> None:
        """Say what the run is (run dir, device, tasks, strategy; where it resumes): printed
        with the console on, the first line (the run directory) only with it off."""
        for line in lines:
            log.info(line)
        if quiet or not self.write:
            return
        for line in lines if self.enabled else lines[:1]:
            self._say(line)

    def chunk_done(self, description: str, step: int, values: dict[str, float | None]) -> None:
        """A chunk ended at global ``step``: update the bar, or print one line without a
        terminal; log the line either way."""
        shown = " | ".join(f"{k} {v:.3f}" for k, v in values.items() if not is_missing(v))
        elapsed = time.perf_counter() - self._started
        done = step - self._first_step
        eta = elapsed / done * (self.total - step) if done > 0 else float("nan")
        line = (
            f"{description} | step {step}/{self.total} | {shown} | elapsed "
            f"{_clock(elapsed)} | eta {_clock(eta)}"
        )
        log.info(line)
        self.progress.update(self.bar, description=description, status=shown)
        if self.enabled and self.write and not self.live:
            self._say(line)

    def finished(self, line: str) -> None:
        """The last line of a run (where its results are): printed even with the console off."""
        log.info(line)
        if self.write:
            self.progress.stop()
            self._say(line)

    def _say(self, line: str) -> None:
        if self.live:
            self.progress.console.print(line, soft_wrap=True)
        else:  # not rich: no wrapping at 80 columns, no markup, flushed now for `tail -f`
            print(line, flush=True)

    def scalars(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            if value is not None and np.isfinite(value):
                self.writer.add_scalar(key, float(value), step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        """An ``[H, W, 3]`` uint8 image."""
        self.writer.add_image(tag, image, step, dataformats="HWC")

    def advance(self, steps: int, description: str, status: str) -> None:
        self.progress.update(self.bar, advance=steps, description=description, status=status)

    def set_completed(self, steps: int) -> None:
        """The run starts (or resumes) at global step ``steps``."""
        self.progress.update(self.bar, completed=steps)
        self._started, self._first_step = time.perf_counter(), steps

    def print(self, *objects: Any) -> None:
        self.console.print(*objects)

    def close(self) -> None:
        self.progress.stop()
        self.writer.flush()
        self.writer.close()


def _clock(seconds: float) -> str:
    """``h:mm:ss`` (``-:--:--`` when unknown)."""
    if not math.isfinite(seconds):
        return "-:--:--"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class _NoWriter:
    """A SummaryWriter that writes nothing."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


#: footnote under a matrix with unmeasured cells (an unfinished run, or a task evaluated lazily)
NOT_MEASURED_NOTE = "n/a: not measured"
#: a footnote wider than its table widens the table up to this many columns, then wraps
_NOTE_WIDTH = 64


def add_note(table: Table, note: str | None) -> Table:
    """Put ``note`` (e.g. why values are "n/a") under ``table``, left-aligned; ``None``: nothing."""
    if note:
        table.caption = note if table.caption is None else f"{table.caption}\n{note}"
        table.caption_justify = "left"
        table.min_width = max(table.min_width or 0, min(len(note), _NOTE_WIDTH))
    return table


def is_missing(value: Any) -> bool:
    """``True`` for an undefined or unmeasured value: ``None`` or a NaN float."""
    return value is None or (isinstance(value, numbers.Real) and math.isnan(float(value)))


def matrix_table(names: list[str], matrix: list[list[float | None]], title: str) -> Table:
    """A rich table of an accuracy matrix (rows: after training task i; columns: task j).

    Unmeasured cells (``None`` / NaN) show as "n/a", explained once in the caption.
    """
    table = Table(title=title, show_lines=False)
    table.add_column("after \\ on", style="bold")
    for name in names:
        table.add_column(name, justify="right")
    missing = False
    for name, row in zip(names, matrix):
        cells = ["n/a" if is_missing(v) else f"{v:.3f}" for v in row]
        missing |= "n/a" in cells
        table.add_row(name, *cells)
    return add_note(table, NOT_MEASURED_NOTE if missing else None)


def metrics_table(metrics: dict[str, Any], title: str = "metrics") -> Table:
    """A two-column rich table of scalar metrics.

    Undefined metrics (``None`` / NaN, e.g. BWT of a one-task run) show as "n/a", with the reason
    said once in the caption (:func:`trmgym.metrics.undefined_note`). Values that are not
    scalars (lists, dicts) are left out.
    """
    table = Table(title=title)
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    undefined = []
    for key, value in metrics.items():
        if is_missing(value):
            table.add_row(key, "n/a")
            undefined.append(key)
        elif isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_):
            table.add_row(key, str(value))
        elif isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_):
            table.add_row(key, f"{float(value):.4f}")
    return add_note(table, undefined_note(undefined))
