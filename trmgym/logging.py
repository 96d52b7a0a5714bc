"""Run logging: TensorBoard scalars/images, a rich progress bar, and console tables.

Scalars use namespaced keys as Stable-Baselines3 does: ``train/…`` (losses), ``rollout/…``
(training episodes), ``halt/…`` (halting), ``eval/…`` (held-out evaluation) and ``cl/…``
(continual-learning metrics).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


class RunLogger:
    """Writes TensorBoard events under ``run_dir/tb`` and drives a rich progress bar.

    Args:
        run_dir: the run directory.
        total_steps: optimizer steps of the whole run (for the progress bar).
        enabled: ``False`` silences the console (TensorBoard is still written).
    """

    def __init__(self, run_dir: str | Path, total_steps: int, *, enabled: bool = True) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tb"))
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


def matrix_table(names: list[str], matrix: list[list[float]], title: str) -> Table:
    """A rich table of an accuracy matrix (rows: after training task i; columns: task j)."""
    table = Table(title=title, show_lines=False)
    table.add_column("after \\ on", style="bold")
    for name in names:
        table.add_column(name, justify="right")
    for name, row in zip(names, matrix):
        table.add_row(
            name,
            *(
                "" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3f}"
                for v in row
            ),
        )
    return table


def metrics_table(metrics: dict[str, Any], title: str = "metrics") -> Table:
    """A two-column rich table of scalar metrics."""
    table = Table(title=title)
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
        elif value is None:
            table.add_row(key, "n/a")
    return table
