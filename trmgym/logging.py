"""Run logging: TensorBoard scalars/images, a rich progress bar, and console tables.

Scalars use namespaced keys as Stable-Baselines3 does: ``train/…`` (losses), ``rollout/…``
(training episodes), ``halt/…`` (halting), ``eval/…`` (held-out evaluation) and ``cl/…``
(continual-learning metrics). A run also writes its configuration (Text tab, ``config``) and,
when it ends, its hyper-parameters and final metrics (HPARAMS tab): :meth:`RunLogger.log_start`,
:meth:`RunLogger.log_hparams`.
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from collections.abc import Mapping
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
        events: ``False`` writes no TensorBoard events but prints (a finished run started
            again: its events are all written already).
    """

    def __init__(
        self,
        run_dir: str | Path,
        total_steps: int,
        *,
        enabled: bool = True,
        write: bool = True,
        events: bool = True,
    ) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = (
            SummaryWriter(log_dir=str(Path(run_dir) / "tb")) if write and events else _NoWriter()
        )
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

    # ------------------------------------------------------- TensorBoard: configuration, hparams
    def log_start(self, config: Mapping[str, Any], resumed_from: int | None) -> None:
        """Mark this process's start in the event file; on a fresh start also write ``config``.

        Args:
            config: the run's configuration (:meth:`~trmgym.experiment.ContinualRun.run_config`),
                shown once, as YAML, under the Text tab's ``config``: a resumed run has the same.
            resumed_from: the global step of the checkpoint this process resumes from; ``None``
                for a fresh start (no checkpoint).

        The mark is the ``SessionLog.START`` event that ``SummaryWriter(purge_step=...)`` writes:
        TensorBoard's Python loader (``--load_fast=false``, EventAccumulator) then drops what
        earlier processes logged from its step on, so the steps a killed process logged after its
        last checkpoint, logged again now, show once (its Rust data server drops a tag's later
        points by itself when a step comes again). Everything up to the checkpoint's step was
        logged before the checkpoint was written, so the mark goes one step after it; without a
        checkpoint, at step 0 (a process killed before its first checkpoint left nothing to keep).
        """
        if isinstance(self.writer, _NoWriter):
            return
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog

        step = 0 if resumed_from is None else resumed_from + 1
        start = Event(session_log=SessionLog(status=SessionLog.START))
        self.writer._get_file_writer().add_event(start, step)
        if resumed_from is None:
            self.writer.add_text("config", config_markdown(config), 0)
        self.writer.flush()  # the configuration survives even a process killed at once

    def log_hparams(self, results: Mapping[str, Any], step: int) -> None:
        """This run's row in the HPARAMS tab: :func:`hparams_of` ``results`` and its final
        metrics, logged as scalars ``cl/<metric>`` (:func:`final_metrics`) at ``step``.

        Written into the run's own event file, so the tab's metric columns are this run's
        scalars. TensorBoard keeps the first session info of a run, so a completed run started
        again (same configuration, same results) adds no second row.
        """
        self.scalars(final_metrics(results), step)
        if isinstance(self.writer, _NoWriter):
            return
        writer = self.writer._get_file_writer()
        for summary in hparams_summaries(hparams_of(results)):
            writer.add_summary(summary, step)
        self.writer.flush()


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


# ------------------------------------------------------------------------------ hparams
#: hyper-parameter values the HPARAMS tab can show
HParam = str | int | float | bool


def flat_settings(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as one level, ``{"dqn": {"gamma": 0.9}}`` -> ``{"dqn.gamma": 0.9}``, in
    their order; lists, ``None`` and empty dicts are leaves."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flat_settings(value, name))
        else:
            flat[name] = value
    return flat


def _hparam_values(config: Mapping[str, Any], prefix: str) -> dict[str, HParam]:
    """The str, number and bool leaves of ``config`` (:func:`flat_settings`); keys starting with
    ``_`` (Hydra's ``_target_``, ``_partial_``: how it is built, not a setting) left out."""
    values = {}
    for key, value in flat_settings(config, prefix).items():
        if any(part.startswith("_") for part in key.split(".")):
            continue
        if isinstance(value, bool | str) or (
            isinstance(value, numbers.Real) and math.isfinite(value)
        ):
            values[key] = value
    return values


def hparams_of(results: Mapping[str, Any]) -> dict[str, HParam]:
    """A run's configuration as flat hyper-parameters for TensorBoard's HPARAMS tab.

    From a results.json dict: ``experiment``, ``seed``, ``sequence`` (the task names, joined),
    ``tasks`` (their number), ``strategy`` and ``strategy.<key>``, ``plugins`` (names, joined)
    and ``plugin.<name>.<key>``, ``run.<key>`` (the settings, ``threads`` aside: not
    configuration) and ``agent.<key>`` (nested keys joined by dots: ``agent.dqn.gamma``;
    ``agent.model.<field>`` is the network actually built, ``model_config``). Only str, int,
    float and bool values: lists and null are left out.
    """
    names = list(results["sequence"])
    hparams: dict[str, HParam] = {
        "experiment": str(results.get("experiment", "")),
        "seed": int(results["seed"]),
        "sequence": ", ".join(names),
        "tasks": len(names),
        "strategy": str(results.get("strategy")),
    }
    strategy = {k: v for k, v in (results.get("strategy_config") or {}).items() if k != "name"}
    hparams.update(_hparam_values(strategy, "strategy"))
    plugins = results.get("plugins") or []
    if plugins:
        hparams["plugins"] = ", ".join(str(p["name"]) for p in plugins)
    for plugin in plugins:
        hparams.update(_hparam_values(plugin.get("config") or {}, f"plugin.{plugin['name']}"))
    settings = {k: v for k, v in (results.get("settings") or {}).items() if k != "threads"}
    hparams.update(_hparam_values(settings, "run"))
    agent = dict(results.get("agent") or {})
    if "model_config" in agent:  # the network built, in place of the overrides asked for
        agent["model"] = agent.pop("model_config")
    hparams.update(_hparam_values(agent, "agent"))
    return hparams


def final_metrics(results: Mapping[str, Any]) -> dict[str, float | None]:
    """The run's metrics (``avg_accuracy``, ``avg_forgetting``, ``bwt``, ``fwt``, ... of
    results.json) as TensorBoard tags ``cl/<metric>``; undefined ones are ``None``."""
    return {f"cl/{name}": value for name, value in results["metrics"].items()}


def hparams_summaries(hparams: Mapping[str, HParam]) -> list[Any]:
    """The HParams plugin's session start and end summaries (status: success) of one run.

    Built as ``torch.utils.tensorboard.summary.hparams`` builds them, but with two differences:
    bools stay bools (torch stores them as numbers), and no ``Experiment`` summary: TensorBoard
    takes the first one it finds for the whole log directory, so in a folder of runs with
    different strategies the other strategies' keys would have no column. Without it the tab
    gathers every run's hyper-parameters and offers every scalar as a metric column.
    """
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    start = plugin_data_pb2.SessionStartInfo()
    for key, value in hparams.items():
        if isinstance(value, bool):  # before numbers: a bool is an int
            start.hparams[key].bool_value = value
        elif isinstance(value, str):
            start.hparams[key].string_value = value
        elif isinstance(value, numbers.Real):
            start.hparams[key].number_value = float(value)
        else:
            raise TypeError(f"hparam {key!r} must be a str, int, float or bool, got {value!r}")
    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.Status.Value("STATUS_SUCCESS"))
    return [
        Summary(
            value=[
                Summary.Value(
                    tag=tag,
                    metadata=metadata.create_summary_metadata(
                        plugin_data_pb2.HParamsPluginData(**{field: info})
                    ),
                )
            ]
        )
        for tag, field, info in (
            (metadata.SESSION_START_INFO_TAG, "session_start_info", start),
            (metadata.SESSION_END_INFO_TAG, "session_end_info", end),
        )
    ]


def config_markdown(config: Mapping[str, Any]) -> str:
    """``config`` as a YAML code block in Markdown, for TensorBoard's Text tab."""
    import yaml

    return "```yaml\n" + yaml.safe_dump(dict(config), sort_keys=False) + "```"


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
