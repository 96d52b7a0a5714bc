"""Run logging: TensorBoard scalars/images, a rich progress bar, and console tables.

Scalars use namespaced keys as Stable-Baselines3 does: ``train/…`` (losses), ``rollout/…``
(training episodes), ``halt/…`` (halting), ``eval/…`` (held-out evaluation) and ``cl/…``
(continual-learning metrics).
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from trmgym.metrics import undefined_note


class RunLogger:
    """Writes TensorBoard events under ``run_dir/tb`` and drives a rich progress bar.

    Args:
        run_dir: the run directory.
        total_steps: optimizer steps of the whole run (for the progress bar).
        enabled: ``False`` silences the console (TensorBoard is still written).
        write: ``False`` writes no TensorBoard events either (the ranks other than 0 of a
            data-parallel run).
    """

    def __init__(
        self, run_dir: str | Path, total_steps: int, *, enabled: bool = True, write: bool = True
    ) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tb")) if write else _NoWriter()
        self.console = Console(highlight=False, quiet=not enabled)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
            disable=not enabled,
        )
        self.bar = self.progress.add_task("training", total=total_steps, status="")
        self.progress.start()

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
        self.progress.update(self.bar, completed=steps)

    def print(self, *objects: Any) -> None:
        self.console.print(*objects)

    def close(self) -> None:
        self.progress.stop()
        self.writer.flush()
        self.writer.close()


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
