"""Run reports: accuracy-matrix heatmap, learning curves, self-contained HTML reports, sweep tables.

``trmgym report RUN_DIR`` reads a run's ``results.json`` (DESIGN.md's schema, written by
:mod:`trmgym.experiment`), writes ``plots/accuracy_matrix.png`` and ``plots/curves.png`` (and
``plots/curriculum.png`` when a curriculum scheduler recorded its ``curriculum`` block) and a
single-file ``report.html`` (images embedded as data URIs, inline CSS, no scripts, nothing fetched),
and prints the metrics. ``trmgym report FOLDER [FOLDER ...]`` finds every run at any depth below
(a Hydra multirun ``runs/<exp>/multirun/<timestamp>/<job>/`` included), groups them by
configuration — everything but the seed — and writes ``report.json`` and ``report.html`` into the
first folder: per group and metric the mean and interquartile mean with 95% stratified-bootstrap
intervals, and the probability of improvement between groups (Agarwal et al. 2021, NeurIPS, through
rliable; see :func:`trmgym.results.sweep_report`), then prints a markdown table.

The run report recomputes the metrics from the saved accuracy matrix with
:func:`trmgym.metrics.summarize` and flags any stored value that differs by more than ``1e-9``,
so a hand-edited or stale ``results.json`` shows itself. Undefined metrics (``null``: BWT,
forgetting and FWT of a one-task run, ...) and unmeasured matrix cells show as "n/a" everywhere,
with the reason said once beside the table. Plots are drawn on matplotlib's Agg
canvas directly (no pyplot, no display, no global backend switch).
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import math
import numbers
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imsave
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from trmgym import metrics
from trmgym.atomic import write_atomic, write_text_atomic
from trmgym.comparison import bound_sign
from trmgym.logging import (
    NOT_MEASURED_NOTE,
    add_note,
    flat_settings,
    is_missing,
    matrix_table,
    metrics_table,
)
from trmgym.results import (
    DEFAULT_REPS,
    METRIC_NAMES,
    MISMATCH_TOLERANCE,
    RESULTS_FILE,
    _flatten,
    _natural,
    as_matrix,
    bootstrap_stats,
    check_metrics,
    forward_transfer,
    json_ready,
    load_results,
    results_path,
    sweep_report,
    task_budget,
    validate_results,
)

__all__ = [
    "REPORT_FILE",
    "aggregate_table",
    "check_metrics",
    "curriculum_block",
    "main",
    "plot_accuracy_matrix",
    "plot_curriculum",
    "plot_curves",
    "sweep_markdown",
    "write_plots",
    "write_report",
    "write_sweep_html",
    "write_sweep_report",
]

#: the sweep report written into the folder given to ``trmgym report``
REPORT_FILE = "report.json"
#: the columns of the printed sweep table
TABLE_METRICS = ("avg_accuracy", "avg_forgetting", "bwt", "fwt")

_DPI = 100


def _coerce(results: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(results, str | os.PathLike):
        return load_results(results)
    return validate_results(results, "results")


# ----------------------------------------------------------------------------------- plots
def _finish(figure: Figure, path: str | Path | None) -> np.ndarray:
    """Save ``figure`` as PNG (when ``path``) and return its pixels as ``[H, W, 3]`` uint8."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # the pixels drawn above, as savefig would write them (it would draw the figure again)
        write_atomic(  # a report being read never shows half a picture
            path,
            lambda handle: imsave(
                handle, pixels, format="png", origin="upper", dpi=figure.dpi,
                metadata={"Software": None},
            ),
        )  # fmt: skip
    return pixels[..., :3].copy()


def _title(results: Mapping[str, Any]) -> str:
    return f"{results.get('experiment', 'run')} · {results['strategy']} · seed {results['seed']}"


def plot_accuracy_matrix(
    results: Mapping[str, Any] | str | Path, path: str | Path | None = None
) -> np.ndarray:
    """Heatmap of the accuracy matrix (rows: after training task i; columns: evaluated on task j).

    Args:
        results: a results dict, or a run directory / results.json path.
        path: where to write the PNG (parents created); ``None`` only returns the pixels.

    Returns:
        The figure as an ``[H, W, 3]`` uint8 RGB array (for TensorBoard images).
    """
    results = _coerce(results)
    names = results["sequence"]
    size = len(names)
    matrix = as_matrix(results["accuracy_matrix"], "accuracy_matrix", size, "results")
    side = min(4.0 + 0.7 * size, 16.0)
    figure = Figure(figsize=(side + 1.2, side), dpi=_DPI, layout="constrained")
    axes = figure.add_subplot()
    cmap = colormaps["viridis"].with_extremes(bad="#d9d9d9")  # grey: not measured
    image = axes.imshow(np.ma.masked_invalid(matrix), vmin=0.0, vmax=1.0, cmap=cmap)
    figure.colorbar(image, ax=axes, label="exact-solve accuracy")
    ticks = np.arange(size)
    # parse_math=False: a task name with '$' must show as typed, not as mathtext (or crash).
    axes.set_xticks(ticks, names, rotation=45, ha="right", parse_math=False)
    axes.set_yticks(ticks, names, parse_math=False)
    axes.set_xlabel("evaluated on task j")
    axes.set_ylabel("after training task i")
    axes.set_title(_title(results), parse_math=False)
    text = {"ha": "center", "va": "center", "fontsize": 10 if size <= 8 else 7}
    for (i, j), value in np.ndenumerate(matrix if size <= 25 else np.empty((0, 0))):
        if not np.isnan(value):  # viridis is dark below ~0.6: white text there, black above
            axes.text(j, i, f"{value:.2f}", color="white" if value < 0.6 else "black", **text)
    return _finish(figure, path)


def plot_curves(
    results: Mapping[str, Any] | str | Path, path: str | Path | None = None
) -> np.ndarray:
    """Per-task learning curves over normalised training time, plus the final-row accuracies.

    Task ``j``'s curve is its accuracy after each training chunk, at ``x = (k + 1) / n`` for chunk
    ``k`` of ``n``; a star at ``x = "final"`` marks ``R[T-1][j]``, the accuracy after the whole
    sequence, so the drop from a curve's end to its star is that task's forgetting.

    Args:
        results: a results dict, or a run directory / results.json path.
        path: where to write the PNG (parents created); ``None`` only returns the pixels.

    Returns:
        The figure as an ``[H, W, 3]`` uint8 RGB array.
    """
    results = _coerce(results)
    names = results["sequence"]
    size = len(names)
    matrix = as_matrix(results["accuracy_matrix"], "accuracy_matrix", size, "results")
    curves = results.get("curves") or [[] for _ in names]
    figure = Figure(figsize=(7.5, 4.8), dpi=_DPI, layout="constrained")
    axes = figure.add_subplot()
    palette = colormaps["tab10" if size <= 10 else "tab20"]
    final_x, star = 1.08, {"marker": "*", "s": 160, "edgecolors": "black", "linewidths": 0.6}
    for j, (name, curve) in enumerate(zip(names, curves)):
        colour = palette(j % palette.N)
        values = np.array([np.nan if v is None else float(v) for v in curve])
        x = np.arange(1, values.size + 1) / max(values.size, 1)
        marker = "o" if values.size <= 20 else None
        axes.plot(x, values, color=colour, marker=marker, markersize=4, label=name)
        if not np.isnan(matrix[-1, j]):
            axes.scatter([final_x], [matrix[-1, j]], color=colour, zorder=3, **star)
    axes.scatter([], [], color="white", label="after all tasks", **star)
    axes.axvline(1.04, color="grey", linewidth=0.5, linestyle=":")
    axes.set_xlim(0.0, final_x + 0.04)
    axes.set_ylim(-0.03, 1.03)
    axes.set_xticks([0.0, 0.25, 0.5, 0.75, 1.0, final_x], ["0", ".25", ".5", ".75", "1", "final"])
    axes.set_xlabel("fraction of the task's training (chunk / chunks)")
    axes.set_ylabel("exact-solve accuracy on the task")
    axes.set_title(_title(results) + " — learning curves", parse_math=False)
    legend = axes.legend(fontsize=8, loc="best", ncols=1 if size <= 8 else 2)
    for text in legend.get_texts():
        text.set_parse_math(False)
    return _finish(figure, path)


def _level_text(options: Any) -> str:
    """A level's option dict as ``"blanks=12, size=7"`` (anything else as JSON)."""
    if isinstance(options, Mapping):
        return ", ".join(f"{key}={_plain(value)}" for key, value in options.items())
    return _plain(options)


def _plain(value: Any) -> str:
    """``value`` as it reads in results.json: a string as itself, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _series(value: Any, key: str, length: int | None, source: str) -> np.ndarray:
    """A list of numbers or null as a float array (null -> NaN), or ValueError naming ``key``."""
    if not isinstance(value, list) or (length is not None and len(value) != length):
        size = "a list" if length is None else f"a list of {length}"
        raise ValueError(
            f"{source}: {key} must be {size} numbers or null, got {_plain(value)[:80]}"
        )
    for entry in value:
        if entry is not None and (isinstance(entry, bool) or not isinstance(entry, numbers.Real)):
            raise ValueError(f"{source}: {key} must hold numbers or null, got {entry!r}")
    return np.array([np.nan if v is None else float(v) for v in value], dtype=np.float64)


def curriculum_block(results: Mapping[str, Any], source: str = "results") -> dict[str, Any]:
    """A run's ``curriculum`` block checked and with its history as arrays.

    Returns:
        A copy of the block, ``level_names`` filled in from ``levels`` when absent, plus the
        history as arrays: ``env_steps`` ``[N]``, ``current_level`` ``[N]`` (NaN where null) and
        ``probabilities`` ``[N, L]``, and the task starts' ``start_env_steps`` ``[S]``,
        ``start_level`` ``[S]`` and ``start_probabilities`` ``[S, L]`` (empty in results written
        before they were recorded).

    Raises:
        ValueError: naming ``source`` and the key, if the block is missing or malformed.
    """
    block = results.get("curriculum")
    if not isinstance(block, Mapping):
        raise ValueError(f"{source}: 'curriculum' must be an object, got {_plain(block)[:80]}")
    block = dict(block)
    levels = block.get("levels")
    if not isinstance(levels, list) or not levels:
        raise ValueError(f"{source}: curriculum.levels must be a non-empty list of option dicts")
    names = block.setdefault("level_names", [_level_text(level) for level in levels])
    if not isinstance(names, list) or [type(name) for name in names] != [str] * len(levels):
        raise ValueError(
            f"{source}: curriculum.level_names must be {len(levels)} strings, one per level"
        )
    history = block.get("history")
    if not isinstance(history, Mapping):
        raise ValueError(f"{source}: curriculum.history must be an object")
    env_steps = _series(history.get("env_steps"), "curriculum.history.env_steps", None, source)
    count = env_steps.size
    if np.isnan(env_steps).any():
        raise ValueError(f"{source}: curriculum.history.env_steps must be numbers, not null")
    level = history.get("level", [None] * count)
    block["current_level"] = current = _series(level, "curriculum.history.level", count, source)
    known = current[~np.isnan(current)]
    if ((known < 0) | (known >= len(levels)) | (known != np.round(known))).any():
        raise ValueError(
            f"{source}: curriculum.history.level must hold level indices 0..{len(levels) - 1} "
            f"or null, got {_plain(level)[:80]}"
        )
    rows = history.get("probabilities")
    if not isinstance(rows, list) or len(rows) != count:
        raise ValueError(
            f"{source}: curriculum.history.probabilities must hold one list per record ({count})"
        )
    key = "curriculum.history.probabilities[]"
    probabilities = [_series(row, key, len(levels), source) for row in rows]
    block["probabilities"] = np.array(probabilities).reshape(count, len(levels))
    block["env_steps"] = env_steps
    starts = _series(
        history.get("start_env_steps", []), "curriculum.history.start_env_steps", None, source
    )
    if np.isnan(starts).any():
        raise ValueError(f"{source}: curriculum.history.start_env_steps must be numbers, not null")
    start_level = history.get("start_level", [None] * starts.size)
    block["start_level"] = _series(
        start_level, "curriculum.history.start_level", starts.size, source
    )
    start_rows = history.get("start_probabilities", [])
    if not isinstance(start_rows, list) or len(start_rows) != starts.size:
        raise ValueError(
            f"{source}: curriculum.history.start_probabilities must hold one list per task start "
            f"({starts.size})"
        )
    key = "curriculum.history.start_probabilities[]"
    block["start_probabilities"] = np.array(
        [_series(row, key, len(levels), source) for row in start_rows]
    ).reshape(starts.size, len(levels))
    block["start_env_steps"] = starts
    _series([block.get("threshold")], "curriculum.threshold", 1, source)
    reached = block.get("steps_to_threshold") or {}
    if not isinstance(reached, Mapping):
        raise ValueError(f"{source}: curriculum.steps_to_threshold must map curricula to steps")
    _series(list(reached.values()), "curriculum.steps_to_threshold", None, source)
    speedups = block.get("speedup") or {}
    if not isinstance(speedups, Mapping):
        raise ValueError(f"{source}: curriculum.speedup must map curricula to ratios")
    for name, entry in speedups.items():
        if entry is None:
            continue
        ratio = entry.get("ratio") if isinstance(entry, Mapping) else None
        if (
            not isinstance(entry, Mapping)
            or isinstance(ratio, bool)
            or not isinstance(ratio, numbers.Real)
            or not math.isfinite(ratio)
            or ratio <= 0
            or not isinstance(entry.get("lower_bound"), bool)
            or not isinstance(entry.get("upper_bound", False), bool)
            or (entry.get("lower_bound") and entry.get("upper_bound"))
        ):
            raise ValueError(
                f"{source}: curriculum.speedup.{name} must be null or "
                f"{{ratio: number > 0, lower_bound: bool, upper_bound: bool}} (not both true), "
                f"got {_plain(entry)[:80]}"
            )
    budget = block.get("budget_env_steps")
    if budget is not None and (
        isinstance(budget, bool) or not isinstance(budget, int) or budget < 1
    ):
        raise ValueError(
            f"{source}: curriculum.budget_env_steps must be a positive int or null, "
            f"got {_plain(budget)[:80]}"
        )
    curves = block.get("curves") or {}
    if not isinstance(curves, Mapping):
        raise ValueError(f"{source}: curriculum.curves must map curricula to their curves")
    for name, curve in curves.items():
        where = f"curriculum.curves.{name}"
        if not isinstance(curve, Mapping):
            raise ValueError(f"{source}: {where} must be an object with env_steps and accuracy")
        steps = _series(curve.get("env_steps"), f"{where}.env_steps", None, source)
        _series(curve.get("accuracy"), f"{where}.accuracy", steps.size, source)
    return block


def _per_chunk(block: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(edges, probabilities, level)`` to draw each record over the training chunk it closes,
    as "post" steps.

    A record (``history``) is taken at the end of a chunk: what the scheduler reached during it,
    so chunk ``k`` spans ``(env_steps[k-1], env_steps[k]]``, the first from 0. A level reached
    within a chunk shows from that chunk's start (the resolution is one chunk,
    ``run.eval_every`` steps). The last value is repeated so that the last chunk shows.
    """
    steps = block["env_steps"]
    if steps.size == 0:
        return steps, block["probabilities"], block["current_level"]
    edges = np.concatenate([[0.0], steps]) if steps[0] > 0 else np.concatenate([steps[:1], steps])
    p, level = block["probabilities"], block["current_level"]
    return edges, np.concatenate([p, p[-1:]]), np.concatenate([level, level[-1:]])


def plot_curriculum(
    results: Mapping[str, Any] | str | Path, path: str | Path | None = None
) -> np.ndarray:
    """The curriculum's sampling probabilities over training and, when the run compared
    curricula, each one's eval accuracy on the hardest level.

    Left: the probability of each level over env steps (stacked, so a column sums to 1), each
    record drawn over the training chunk it closes (:func:`_per_chunk`), with the scheduler's
    current level as a black step line on a twin axis (ramps; staged schedulers and samplers
    record none and get no line). Right, only with ``curves``: accuracy over
    env steps per compared curriculum, the threshold dashed, and where each first reached it
    marked with a diamond and a dotted vertical line (legend: "never" if it did not).

    Args:
        results: a results dict with a ``curriculum`` block, or a run directory / results.json.
        path: where to write the PNG (parents created); ``None`` only returns the pixels.

    Returns:
        The figure as an ``[H, W, 3]`` uint8 RGB array.

    Raises:
        ValueError: if there is no ``curriculum`` block or it is malformed (names the key).
    """
    results = _coerce(results)
    block = curriculum_block(results)
    names = block["level_names"]
    curves = block.get("curves") or {}
    figure = Figure(figsize=(14.0 if curves else 7.5, 4.8), dpi=_DPI, layout="constrained")
    grid = figure.subplots(1, 2 if curves else 1, squeeze=False)[0]
    axes = grid[0]
    palette = colormaps["tab10" if len(names) <= 10 else "tab20"]
    colours = [palette(k % palette.N) for k in range(len(names))]
    edges, probabilities, current = _per_chunk(block)
    axes.stackplot(edges, probabilities.T, labels=names, colors=colours, alpha=0.85, step="post")
    axes.set_ylim(0.0, 1.0)
    axes.set_xlabel("env steps")
    axes.set_ylabel("sampling probability")
    axes.set_title(f"{_title(results)} — curriculum {block.get('name')}", parse_math=False)
    handles, labels = axes.get_legend_handles_labels()
    if not np.isnan(current).all():
        twin = axes.twinx()
        (line,) = twin.plot(edges, current, color="black", drawstyle="steps-post")
        twin.set_ylim(-0.5, len(names) - 0.5)
        twin.set_yticks(np.arange(len(names)), names, parse_math=False, fontsize=8)
        handles, labels = [*handles, line], [*labels, "current level"]
    # Below the panel: the stacked areas fill it, so any place inside would hide some of them.
    where = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.13), "ncols": min(len(labels), 5)}
    legend = axes.legend(handles, labels, fontsize=8, **where)
    for text in legend.get_texts():
        text.set_parse_math(False)
    if curves:
        _plot_comparison(grid[1], block, curves)
    return _finish(figure, path)


def _plot_comparison(axes: Any, block: Mapping[str, Any], curves: Mapping[str, Any]) -> None:
    """The right panel of :func:`plot_curriculum`: accuracy per compared curriculum."""
    palette = colormaps["tab10" if len(curves) <= 10 else "tab20"]
    threshold, reached = block.get("threshold"), block.get("steps_to_threshold") or {}
    for k, (name, curve) in enumerate(curves.items()):
        colour = palette(k % palette.N)
        accuracy = [np.nan if v is None else float(v) for v in curve["accuracy"]]
        steps = reached.get(name)
        label = f"{name} ({'never' if steps is None else f'{steps:,} steps'})"
        axes.plot(curve["env_steps"], accuracy, color=colour, marker="o", markersize=3, label=label)
        if steps is not None and threshold is not None:
            axes.axvline(steps, color=colour, linewidth=0.8, linestyle=":")
            axes.scatter(
                [steps], [threshold], color=colour, marker="D", edgecolors="black", zorder=3
            )
    if threshold is not None:
        axes.axhline(threshold, color="grey", linestyle="--", linewidth=1.0)
    axes.set_ylim(-0.03, 1.03)
    axes.set_xlabel("env steps")
    axes.set_ylabel("exact-solve accuracy")
    level = block.get("level")
    title = "compared curricula"
    title += f": accuracy on {_level_text(level)}" if isinstance(level, Mapping) else ""
    title += f", threshold {threshold:g}" if threshold is not None else ""
    axes.set_title(title, parse_math=False)
    legend = axes.legend(fontsize=8, loc="best", title="env steps to threshold", title_fontsize=8)
    for text in legend.get_texts():
        text.set_parse_math(False)


def write_plots(
    run_dir: str | Path, *, images: dict[str, np.ndarray] | None = None
) -> dict[str, Path]:
    """Write ``plots/accuracy_matrix.png`` and ``plots/curves.png`` for a run directory, and
    ``plots/curriculum.png`` when its results.json has a ``curriculum`` block.

    Args:
        run_dir: the run directory (or its results.json).
        images: a dict to fill with each plot's pixels, ``[H, W, 3]`` uint8 under the same keys
            as the paths (what TensorBoard is given), so no figure is drawn twice.

    Returns:
        ``{"accuracy_matrix": path, "curves": path}``, plus ``"curriculum": path`` if written.

    Raises:
        ValueError: naming results.json, if it is missing or malformed.
    """
    results = load_results(run_dir)
    plots = results_path(run_dir).parent / "plots"
    paths = {"accuracy_matrix": plots / "accuracy_matrix.png", "curves": plots / "curves.png"}
    if "curriculum" in results:  # checked first: a malformed block names the file, drawing nothing
        curriculum_block(results, str(results_path(run_dir)))
        paths["curriculum"] = plots / "curriculum.png"
    drawn = {
        "accuracy_matrix": plot_accuracy_matrix(results, paths["accuracy_matrix"]),
        "curves": plot_curves(results, paths["curves"]),
    }
    if "curriculum" in paths:
        drawn["curriculum"] = plot_curriculum(results, paths["curriculum"])
    if images is not None:
        images.update(drawn)
    return paths


# ---------------------------------------------------------------------------------- report
def _fmt(value: Any, digits: int = 4) -> str:
    """A value as escaped HTML text: reals to ``digits`` places, None/NaN as n/a, others as JSON."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return f"{float(value):.{digits}f}"
    text = value if isinstance(value, str | numbers.Integral) else json.dumps(value, sort_keys=True)
    return html.escape(str(text))


def _note(text: str | None) -> str:
    """A footnote paragraph (escaped), or nothing."""
    return "" if text is None else f'<p class="note">{html.escape(text)}</p>'


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """An HTML table; ``headers`` are plain text, cells already-escaped HTML."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>\n" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>"


def _matrix_html(names: list[str], matrix: np.ndarray, digits: int, scale: float) -> str:
    """A matrix table with rows "after training task i", cells shaded by ``value / scale``."""
    rows = []
    for name, values in zip(names, matrix):
        cells = [f"<b>{html.escape(name)}</b>"]
        for value in values:
            shade = 0.08 + 0.62 * min(max(value / scale, 0.0), 1.0) if value == value else 0.0
            cells.append(
                f'<span style="background:rgba(46,125,50,{shade:.2f})">{_fmt(value, digits)}</span>'
            )
        rows.append(cells)
    note = NOT_MEASURED_NOTE if np.isnan(matrix).any() else None
    return _table(["after \\ on", *names], rows) + _note(note)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:.25em .6em}
td{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}td span{display:block}
.bad{color:#c00;font-weight:bold}pre{background:#f6f6f6;padding:1em;overflow:auto}
.note{color:#555;font-size:.9em;margin-top:-1em}img{max-width:100%;border:1px solid #eee}"""


def _metrics_html(results: Mapping[str, Any]) -> str:
    rows, reason = check_metrics(results)
    parts = []
    if reason is not None:
        parts.append(f'<p class="bad">Could not recompute the metrics: {html.escape(reason)}</p>')
    cells, undefined = [], []
    for row in rows:
        old, new = row["stored"], row["recomputed"]
        both = all(isinstance(v, numbers.Real) and math.isfinite(v) for v in (old, new))
        flag = '<span class="bad">MISMATCH</span>' if row["mismatch"] else ("ok" if both else "")
        stored = f'<span class="bad">{_fmt(old)}</span>' if row["mismatch"] else _fmt(old)
        diff = f"{abs(float(old) - float(new)):.2e}" if both else ""
        cells.append([html.escape(row["metric"]), stored, _fmt(new), diff, flag])
        checked = row["metric"] in METRIC_NAMES or row["metric"].startswith("forgetting[")
        if is_missing(old) or (checked and reason is None and is_missing(new)):
            undefined.append(row["metric"])
    parts.append(_table(["metric", "stored", "recomputed", "|difference|", "check"], cells))
    parts.append(_note(metrics.undefined_note(undefined)))
    bad = [row["metric"] for row in rows if row["mismatch"]]
    if bad:
        parts.append(
            f'<p class="bad">Stored metrics differ from those recomputed from the accuracy matrix by '
            f"more than {MISMATCH_TOLERANCE:g}: {html.escape(', '.join(bad))}</p>"
        )
    return "\n".join(parts)


def _setting(value: Any) -> str:
    """A setting as escaped HTML text, exactly as results.json holds it (no rounding)."""
    return html.escape(value if isinstance(value, str) else json.dumps(value, default=str))


def _settings_rows(config: Mapping[str, Any]) -> list[list[str]]:
    """``[key, value]`` rows of nested settings (keys joined by dots), Hydra's ``_target_`` and
    ``_partial_`` left out (how the object is built, not a setting)."""
    return [
        [html.escape(key), _setting(value)]
        for key, value in flat_settings(config).items()
        if not any(part.startswith("_") for part in key.split("."))
    ]


def _settings_html(results: Mapping[str, Any]) -> str:
    """The strategy and its settings (``strategy_config``), the plugins with theirs, and the run
    settings (``settings``), as tables."""
    e = html.escape
    strategy = dict(results.get("strategy_config") or {})
    name = strategy.pop("name", results.get("strategy"))
    parts = [f"<h2>Strategy and settings</h2>\n<h3>Strategy: {e(str(name))}</h3>"]
    rows = _settings_rows(strategy)
    if "_target_" in strategy:
        rows.insert(0, ["class", _setting(strategy["_target_"])])
    if rows:
        parts.append(_table(["setting", "value"], rows))
    elif "strategy_config" in results:
        parts.append("<p>No arguments: its defaults.</p>")
    else:
        parts.append("<p>n/a: this results.json does not record the strategy's settings.</p>")
    if plugins := results.get("plugins") or []:
        rows = [
            [
                e(str(plugin.get("name"))),
                _fmt(plugin.get("class")),
                "n/a"
                if plugin.get("config") is None
                else "<br>".join(f"{k}: {v}" for k, v in _settings_rows(plugin["config"])),
            ]
            for plugin in plugins
        ]
        parts += [
            "<h3>Plugins (after the strategy, in order)</h3>",
            _table(["plugin", "class", "settings"], rows),
        ]
        if any(plugin.get("config") is None for plugin in plugins):
            parts.append(_note("n/a: not recorded (the run was not given the plugin's arguments)"))
    if results.get("settings"):
        parts += [
            "<h3>Run settings</h3>",
            _table(["setting", "value"], _settings_rows(results["settings"])),
        ]
    return "\n".join(parts)


def _image_html(name: str, path: Path) -> str:
    """A PNG embedded as a data URI, so report.html stays one self-contained file."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<p><img src="data:image/png;base64,{data}" alt="{html.escape(name)}"></p>'


def _curriculum_html(results: Mapping[str, Any], image: Path) -> str:
    """The "Curriculum" section: its plot, the env steps each compared curriculum took to reach
    the threshold ("never" if it did not), and the levels' final sampling probabilities."""
    e, block = html.escape, curriculum_block(results)
    names, steps = block["level_names"], block["env_steps"]
    parts = [
        f"<h2>Curriculum: {e(_plain(block.get('name')))}</h2>",
        f"<p>{len(names)} levels: {e(' · '.join(names))}.</p>",
        _image_html("curriculum", image),
    ]
    if "steps_to_threshold" in block:
        level = None if block.get("level") is None else _level_text(block["level"])
        threshold = block.get("threshold")
        level, threshold = _fmt(level), "n/a" if threshold is None else _setting(threshold)
        main, speedups = block.get("name"), block.get("speedup") or {}
        reached_by = block["steps_to_threshold"]

        def times(name: str) -> str:
            if name == main:
                return "n/a (never reached)" if reached_by.get(main) is None else "1 (reference)"
            if name not in speedups:
                return "n/a"
            entry = speedups[name]
            if entry is None:
                if reached_by.get(main) is None and reached_by.get(name) is None:
                    return "n/a (neither reached it)"
                return f"n/a ({e(_plain(main))} never reached it)"  # written before upper bounds
            return bound_sign(entry) + f"{entry['ratio']:.2f}×"

        rows = [
            [e(name), level, threshold, "never" if reached is None else _fmt(reached), times(name)]
            for name, reached in block["steps_to_threshold"].items()
        ]
        headers = [
            "curriculum",
            "level",
            "threshold",
            "env steps to threshold",
            "its steps / main's",
        ]
        budget = block.get("budget_env_steps")
        note = "the env steps until eval accuracy on the level first reached the threshold"
        if budget is not None:
            note += f" within the budget of {budget:,} env steps"
        if any(entry is not None and entry["lower_bound"] for entry in speedups.values()):
            note += "; ≥: that curriculum never reached it, so it needed more than the budget"
        if any(entry is not None and entry.get("upper_bound") for entry in speedups.values()):
            note += (
                f"; ≤: {e(_plain(main))} never reached it (it needed more than the budget), so "
                "the other's steps / that budget bounds the ratio from above"
            )
        parts += ["<h3>Compared curricula</h3>", _table(headers, rows), _note(note)]
    if steps.size:
        final = block["probabilities"][-1]
        rows = [[str(k), e(name), _fmt(p)] for k, (name, p) in enumerate(zip(names, final))]
        current = block["current_level"][-1]
        at = f"after {int(steps[-1]):,} env steps"
        if not np.isnan(current):
            at += f"; current level {e(names[int(current)])}"
        parts += [
            f"<h3>Final sampling probabilities ({at})</h3>",
            _table(["#", "level", "probability"], rows),
        ]
    else:
        parts.append("<p>n/a: no training chunk was recorded.</p>")
    return "\n".join(parts)


FEWSHOT_FILE = "fewshot.json"


def load_fewshot(run_dir: str | Path) -> dict[str, Any]:
    """A few-shot run's ``fewshot.json`` (:mod:`trmgym.meta.fewshot`), checked for its keys."""
    path = Path(run_dir)
    path = path if path.name == FEWSHOT_FILE else path / FEWSHOT_FILE
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable few-shot result ({error})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("methods"), dict):
        raise ValueError(f"{path}: no 'methods' mapping; not written by a few-shot run")
    return doc


def plot_fewshot(doc: Mapping[str, Any], path: str | Path | None = None) -> np.ndarray:
    """Query exact accuracy against adaptation steps, one panel per split and support size ``k``,
    one line per method with its 95% bootstrap band (a method scored at one step count — ``ttt``
    at its fine-tuning steps, ``memory`` at 0 — is a star)."""
    panels = sorted(
        {(e["split"], e["k_shot"]) for entries in doc["methods"].values() for e in entries},
        key=lambda p: (p[0], p[1]),
    )
    cols = max(1, len({k for _, k in panels}))
    splits = sorted({s for s, _ in panels})
    figure = Figure(figsize=(3.6 * cols, 2.8 * max(1, len(splits))), dpi=100)
    grid: dict[tuple[str, int], Any] = {}  # one axes per panel, every method drawn into it
    for split, k in panels:
        col = sorted({kk for s, kk in panels if s == split}).index(k)
        grid[split, k] = figure.add_subplot(len(splits), cols, splits.index(split) * cols + col + 1)
    for name, entries in doc["methods"].items():
        for entry in entries:
            axes = grid[entry["split"], entry["k_shot"]]
            steps, accuracy = entry["steps"], entry["accuracy"]
            marker = "*" if len(steps) == 1 else "o"
            axes.plot(steps, accuracy, marker=marker, label=name, markersize=4)
            bands = [c for c in entry["ci95"] if c is not None]
            if len(bands) == len(steps) and len(steps) > 1:
                low, high = zip(*bands)
                axes.fill_between(steps, low, high, alpha=0.15)
            axes.set_title(f"{entry['split']}, k={entry['k_shot']}", fontsize=9)
            axes.set_ylim(-0.02, 1.02)
            axes.set_xlabel("adaptation steps", fontsize=8)
            axes.set_ylabel("query exact accuracy", fontsize=8)
    for axes in figure.axes:
        axes.legend(fontsize=6)
    figure.tight_layout()
    return _finish(figure, path)


def fewshot_html(doc: Mapping[str, Any], image: Path | None) -> str:
    """The few-shot section: one table per split and ``k`` (methods x steps, mean [CI])."""
    e = html.escape
    parts = ["<h2>Few-shot transfer (query exact accuracy)</h2>"]
    if doc.get("ttt_base"):
        parts.append(f"<p>ttt runs on the best method: {e(str(doc['ttt_base']))}</p>")
    groups: dict[tuple[str, int], list[tuple[str, Mapping[str, Any]]]] = {}
    for name, entries in doc["methods"].items():
        for entry in entries:
            groups.setdefault((entry["split"], entry["k_shot"]), []).append((name, entry))
    for (split, k), rows in sorted(groups.items()):
        steps = sorted({s for _, entry in rows for s in entry["steps"]})
        body = []
        for name, entry in rows:
            cells = dict(zip(entry["steps"], zip(entry["accuracy"], entry["ci95"])))
            row = [e(name), str(entry.get("tasks", ""))]
            for s in steps:
                if s not in cells:
                    row.append("")
                    continue
                value, ci = cells[s]
                interval = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
                row.append(f"{value:.3f}{interval}")
            body.append(row)
        parts.append(f"<h3>{e(split)}, k = {k}</h3>")
        parts.append(_table(["method", "tasks", *(f"{s} steps" for s in steps)], body))
    if image is not None:
        parts.append(_image_html("few-shot transfer", image))
    return "\n".join(parts)


def find_fewshot_runs(paths: Sequence[Path]) -> list[Path]:
    """Folders holding ``fewshot.json`` at or below ``paths`` (or the folder of a given
    ``fewshot.json``), sorted, each once; a run directory's own subfolders are not searched."""
    found: list[Path] = []
    for path in paths:
        if path.is_file():
            found += [path.parent] if path.name == FEWSHOT_FILE else []
            continue
        for folder, subfolders, files in os.walk(path):
            if FEWSHOT_FILE in files:
                found.append(Path(folder))
                subfolders.clear()
    return sorted(set(found), key=_natural)


def fewshot_sweep(paths: Sequence[Path], *, reps: int = DEFAULT_REPS, seed: int = 0) -> dict:
    """Few-shot runs below ``paths`` pooled over seeds: runs whose ``fewshot.json`` records the
    same configuration but for the seed form a group; per method, split, ``k`` and step, the
    mean query accuracy over the group's seeds with a 95% bootstrap interval
    (:func:`trmgym.results.bootstrap_stats`, Agarwal et al. 2021).

    Returns:
        ``{"groups": {name: {"n_runs", "runs", "seeds", "config", "methods": {method: [{"split",
        "k_shot", "steps", "accuracy" (means), "ci95", "values" (per step, per run)}]}}},
        "n_found", "skipped": [{"path", "reason"}], "unfinished": [run directories whose
        fewshot.json is not complete]}``. A seed found twice in a group counts once (the
        first by path; the repeat is skipped with its reason).
    """
    skipped: list[dict[str, str]] = []
    unfinished: list[str] = []
    grouped: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    found = find_fewshot_runs(paths)
    for folder in found:
        try:
            doc = load_fewshot(folder)
        except ValueError as error:
            skipped.append({"path": str(folder / FEWSHOT_FILE), "reason": str(error)})
            continue
        if not doc.get("complete"):
            unfinished.append(str(folder))
            continue
        config = dict(doc.get("config") or {})
        run_seed = config.pop("seed", None)
        key = json.dumps(config, sort_keys=True, default=str)
        runs = grouped.setdefault(key, [])
        if any((d.get("config") or {}).get("seed") == run_seed for _, d in runs):
            reason = f"seed {run_seed} is already in its group"
            skipped.append({"path": str(folder / FEWSHOT_FILE), "reason": reason})
            continue
        runs.append((folder, doc))
    flat = {  # the configuration keys, as results.group_names reads them
        key: {
            k: json.dumps(v, sort_keys=True, default=str)
            for k, v in _flatten(json.loads(key)).items()
        }
        for key in grouped
    }
    groups: dict[str, Any] = {}
    for key, runs in grouped.items():
        distinct = {
            k: v
            for k, v in flat[key].items()
            if any(other.get(k, object()) != v for other in flat.values())
        }
        name = ",".join(f"{k}={v}" for k, v in sorted(distinct.items())) or "fewshot"
        groups[name] = {
            "n_runs": len(runs),
            "runs": [str(folder) for folder, _ in runs],
            "seeds": [(doc.get("config") or {}).get("seed") for _, doc in runs],
            "config": distinct,
            "methods": _pooled_methods([doc for _, doc in runs], reps=reps, seed=seed),
        }
    return json_ready(
        {"groups": groups, "n_found": len(found), "skipped": skipped, "unfinished": unfinished}
    )


def _pooled_methods(docs: Sequence[Mapping[str, Any]], *, reps: int, seed: int) -> dict:
    pooled: dict[str, list[dict[str, Any]]] = {}
    for method, entries in docs[0]["methods"].items():
        for entry in entries:
            where = (entry["split"], entry["k_shot"])
            runs = [
                next(
                    (e for e in d["methods"].get(method, []) if (e["split"], e["k_shot"]) == where),
                    None,
                )
                for d in docs
            ]
            means, intervals, values = [], [], []
            for step in entry["steps"]:
                scores = [
                    None
                    if run is None or step not in run["steps"]
                    else run["accuracy"][run["steps"].index(step)]
                    for run in runs
                ]
                stats = bootstrap_stats(scores, reps=reps, seed=seed)
                means.append(stats["mean"])
                intervals.append(stats["ci95"])
                values.append(scores)
            pooled.setdefault(method, []).append(
                {
                    "split": entry["split"],
                    "k_shot": entry["k_shot"],
                    "steps": list(entry["steps"]),
                    "accuracy": means,
                    "ci95": intervals,
                    "values": values,
                    "tasks": entry.get("tasks", ""),
                }
            )
    return pooled


def fewshot_sweep_markdown(report: Mapping[str, Any]) -> str:
    """Per group, heldout_params at its largest k: methods x steps, mean [95% CI] over seeds."""
    lines = [
        f"found {report['n_found']} {FEWSHOT_FILE}: {len(report['skipped'])} skipped, "
        f"{len(report['unfinished'])} unfinished"
    ]
    lines += [f"skipped {s['path']}: {s['reason']}" for s in report["skipped"]]
    lines += [
        f"unfinished {p}: fewshot.json not complete (the same command resumes it)"
        for p in report["unfinished"]
    ]
    for name, group in report["groups"].items():
        entries = [
            (method, e)
            for method, es in group["methods"].items()
            for e in es
            if e["split"] == "heldout_params"
        ]
        if not entries:
            continue
        k = max(e["k_shot"] for _, e in entries)
        rows = [(m, e) for m, e in entries if e["k_shot"] == k]
        steps = sorted({s for _, e in rows for s in e["steps"]})
        lines += [
            "",
            f"{name}: {group['n_runs']} seed(s) {group['seeds']}; heldout_params, k = {k}, "
            "query exact accuracy, mean [95% CI]",
            "",
            "| method | " + " | ".join(f"{s} steps" for s in steps) + " |",
            "|" + " --- |" * (len(steps) + 1),
        ]
        for method, e in rows:
            cells = dict(zip(e["steps"], zip(e["accuracy"], e["ci95"])))
            shown = []
            for s in steps:
                if s not in cells or cells[s][0] is None:
                    shown.append("")
                    continue
                mean, ci = cells[s]
                shown.append(f"{mean:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
            lines.append(f"| {method} | " + " | ".join(shown) + " |")
    return "\n".join(lines) + "\n"


def write_fewshot_sweep(report: Mapping[str, Any], folder: Path) -> Path:
    """Write ``report_fewshot.json`` and ``report_fewshot.html`` (a section per group, with its
    pooled plot) into ``folder``; returns the JSON's path."""
    plots = folder / "plots"
    parts = [f"<h1>{html.escape('trmgym few-shot sweep report: ' + str(folder))}</h1>"]
    for k, (name, group) in enumerate(report["groups"].items()):
        plots.mkdir(exist_ok=True)
        image = plots / f"fewshot_group{k}.png"
        plot_fewshot(group, image)
        parts.append(f"<h2>{html.escape(name)}: {group['n_runs']} seed(s) {group['seeds']}</h2>")
        parts.append(fewshot_html(group, image))
    _write_html(folder / "report_fewshot.html", "trmgym few-shot sweep report", parts)
    text = json.dumps(json_ready(report), indent=2, allow_nan=False)
    return _write_text(folder / "report_fewshot.json", text + "\n")


def fewshot_matrix_html(results: Mapping[str, Any]) -> str:
    """``eval.fewshot``: few-shot accuracy of the run's model before training and after each task
    (rows), per split and ``k`` (columns), after the most adaptation steps."""
    e = html.escape
    rows_in = [("before training", results.get("fewshot_init"))]
    rows_in += [
        (f"after {name}", row) for name, row in zip(results["sequence"], results["fewshot_matrix"])
    ]
    columns = sorted(
        {(split, k) for _, row in rows_in if row for split, by_k in row.items() for k in by_k}
    )
    steps = (results.get("fewshot_eval") or {}).get("steps") or ["?"]
    body = []
    for label, row in rows_in:
        cells = []
        for split, k in columns:
            values = (row or {}).get(split, {}).get(k)
            cells.append(_fmt(values[-1], 3) if values else "n/a")
        body.append([e(label), *cells])
    headers = ["", *(f"{split} {k}" for split, k in columns)]
    title = f"<h2>Few-shot transfer after each task (exact accuracy after {steps[-1]} steps)</h2>"
    return title + "\n" + _table(headers, body)


def write_fewshot_report(run_dir: str | Path) -> Path:
    """Write ``plots/fewshot.png`` and a ``report.html`` for a few-shot run directory."""
    folder = Path(run_dir)
    doc = load_fewshot(folder)
    (folder / "plots").mkdir(exist_ok=True)
    image = folder / "plots" / "fewshot.png"
    plot_fewshot(doc, image)
    config = json.dumps(doc.get("config"), indent=2, default=str)
    heldout = json.dumps(doc.get("heldout_tasks"), default=str)
    parts = [
        f"<h1>{html.escape('trmgym few-shot transfer: ' + folder.name)}</h1>",
        fewshot_html(doc, image),
        f"<h2>Held-out tasks</h2>\n<pre>{html.escape(heldout)}</pre>",
        f"<h2>Configuration</h2>\n<pre>{html.escape(config)}</pre>",
        f"<p>wall time: {_fmt(doc.get('wall_time_s'), 1)} s; complete: {doc.get('complete')}</p>",
    ]
    return _write_html(folder / "report.html", "trmgym few-shot report", parts)


def write_report(run_dir: str | Path, plots: Mapping[str, Path] | None = None) -> Path:
    """Write a self-contained ``report.html`` (and the plots) for a run directory.

    Args:
        run_dir: the run directory (or its results.json).
        plots: what :func:`write_plots` returned for it, when it has just written them (they
            are embedded as they are); by default the plots are written first.

    Returns:
        The path of ``report.html``.

    Raises:
        ValueError: if results.json is missing or malformed (the message names it).
    """
    results = load_results(run_dir)
    folder = results_path(run_dir).parent
    plots = dict(plots) if plots is not None else write_plots(folder)
    names, e = results["sequence"], html.escape
    tasks = results.get("tasks") or [{"name": name} for name in names]
    settings = results.get("settings") or {}

    def budget(task: Mapping[str, Any]) -> str:
        """The optimizer steps the task trained for (after ``run.budget_scale``)."""
        if not settings.get("train_steps"):
            return "n/a"
        steps = task_budget(settings, task)
        scale = settings.get("budget_scale", 1)
        own = task.get("train_steps") or settings["train_steps"]
        return f"{steps:,}" + ("" if scale == 1 else f" ({own:,} × {scale:g})")

    rows = [
        [str(k), _fmt(t.get("name")), _fmt(t.get("env_id"))]
        + [_fmt(t.get(key, {})) for key in ("kwargs", "options", "train_kwargs", "eval_kwargs")]
        + [budget(t)]
        for k, t in enumerate(tasks)
    ]
    headers = ["#", "task", "env id", "kwargs", "reset options", "train kwargs", "eval kwargs"]
    parts = [
        f"<h1>{e(_title(results))}</h1>\n<h2>Sequence</h2>",
        _table([*headers, "train steps"], rows),
        _settings_html(results),
        "<h2>Metrics</h2>",
        _metrics_html(results),
    ]
    steps_scale = float(results.get("max_reasoning_steps") or 1.0)
    for key, title, digits, scale in [
        ("accuracy_matrix", "Accuracy matrix (exact solve)", 3, 1.0),
        ("cell_accuracy_matrix", "Cell-accuracy matrix", 3, 1.0),
        ("reasoning_steps_matrix", "Mean reasoning steps", 2, max(steps_scale, 1e-12)),
    ]:
        if results.get(key) is not None:
            matrix = as_matrix(results[key], key, len(names), "results")
            parts += [f"<h2>{title}</h2>", _matrix_html(names, matrix, digits, scale)]
    if results.get("random_init_accuracy") is not None:
        baseline = zip(names, results["random_init_accuracy"])
        text = ", ".join(f"{e(name)} {_fmt(b, 3)}" for name, b in baseline)
        parts.append(f"<p>Random-init accuracy b<sub>j</sub> (for FWT): {text}</p>")
    if results.get("fewshot_matrix") is not None:
        parts.append(fewshot_matrix_html(results))
    if probes := results.get("difficulty_probe") or []:
        keys = [k for k in probes[0] if k != "options"]
        rows = [[_fmt(p.get("options")), *(_fmt(p.get(k)) for k in keys)] for p in probes]
        parts += [
            f"<h2>Difficulty probe (last task: {e(names[-1])})</h2>",
            _table(["options", *keys], rows),
        ]
    curriculum_png = plots.pop("curriculum", None)
    parts.append("<h2>Plots</h2>")
    parts += [_image_html(name, path) for name, path in plots.items()]
    if curriculum_png is not None:
        parts.append(_curriculum_html(results, curriculum_png))
    agent = json.dumps(results.get("agent"), indent=2, default=str)
    parts.append(f"<h2>Agent</h2>\n<pre>{e(agent)}</pre>")
    info = [
        ("device", results.get("device")),
        ("wall time (s)", results.get("wall_time_s")),
        ("env steps", results.get("env_steps")),
        ("seed", results["seed"]),
    ]
    info += [(f"version: {k}", v) for k, v in (results.get("versions") or {}).items()]
    parts += ["<h2>Run</h2>", _table(["", "value"], [[e(k), _fmt(v, 1)] for k, v in info])]
    return _write_html(folder / "report.html", "trmgym report: " + _title(results), parts)


def _write_html(out: Path, title: str, parts: Sequence[str]) -> Path:
    """Write a self-contained HTML page of ``parts`` (already-escaped HTML) to ``out``, atomically."""
    document = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n"
        "<body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
    return write_text_atomic(out, document)


def aggregate_table(aggregate: Mapping[str, Any]) -> Table:
    """A rich table of one :func:`aggregate` result: n, mean, std and 95% CI per metric.

    ``n`` counts the runs where the metric is defined; "n/a" marks a metric undefined in every run
    (reason from :func:`trmgym.metrics.undefined_note`) or a spread of fewer than two values, both
    said once in the caption.
    """
    table = Table(title=f"{aggregate.get('label', 'aggregate')} (runs: {aggregate['n']})")
    table.add_column("metric", style="bold")
    for column in ("n", "mean", "std", "95% CI"):
        table.add_column(column, justify="right")
    for name, stats in aggregate["metrics"].items():
        mean, std, half = (_fmt(stats[k]) for k in ("mean", "std", "ci95"))
        ci = (
            "n/a"
            if stats["ci95"] is None
            else f"±{half} [{_fmt(stats['ci95_low'])}, {_fmt(stats['ci95_high'])}]"
        )
        table.add_row(name, str(stats["n"]), mean, std, ci)
    stats = aggregate["metrics"]
    add_note(table, metrics.undefined_note(n for n, v in stats.items() if v["mean"] is None))
    if any(v["mean"] is not None and v["ci95"] is None for v in stats.values()):
        add_note(table, "n/a: std and 95% CI need the metric defined in at least 2 runs")
    return table


# ---------------------------------------------------------------------------------- sweeps
def _direction(metric: str, better: str | None) -> str:
    return metric if better is None else f"{metric} ({better} is better)"


def _interval(
    stats: Mapping[str, Any], point: str = "mean", ci: str = "ci95", form: str = "{:.3f}"
) -> str:
    """``"mean [low, high]"`` of one group metric, each value as ``form``; "n/a" when
    undefined in every run."""
    if stats[point] is None:
        return "n/a"
    text = form.format(stats[point])
    if stats[ci] is not None:
        text += f" [{form.format(stats[ci][0])}, {form.format(stats[ci][1])}]"
    if stats["n_undefined"]:
        text += f" ({stats['n_undefined']} null)"
    return text


def _notes(report: Mapping[str, Any], metric_names: Iterable[str]) -> list[str]:
    """Why cells read "n/a", and what a missing interval or a "null" count means."""
    chosen = list(metric_names)
    cells = [
        (name, stats)
        for group in report["groups"].values()
        for name, stats in group["metrics"].items()
        if name in chosen
    ]
    notes = [metrics.undefined_note(n for n, s in cells if s["mean"] is None)]
    if any(s["mean"] is not None and s["ci95"] is None for _, s in cells):
        notes.append("no interval: it needs the metric defined in at least 2 runs")
    if any(s["mean"] is not None and s["n_undefined"] for _, s in cells):
        notes.append("(k null): the metric is undefined in k runs, left out, not counted as 0")
    return [note for note in notes if note]


#: what a "≥" before a pooled value means
LOWER_BOUND_NOTE = (
    "≥: a curriculum that never reached the threshold within its budget needed more than it, so "
    "its env steps count at the budget and a speedup over it at budget / the main curriculum's "
    "env steps: lower bounds, and so is a mean or IQM over them"
)
#: what a "≤" before a speedup means, and why a pool with both signs has no value
UPPER_BOUND_NOTE = (
    "≤: where the main curriculum never reached the threshold, it needed more than its budget, "
    "so the speedup over it (the other's env steps / the main curriculum's budget) is an upper "
    "bound, and so is a mean or IQM over them; such seeds are kept, not dropped. n/a (bounds "
    "both ways): lower and upper bounds in one pool bound nothing"
)
COMPARISON_HEADERS = (
    "group",
    "n",
    "curriculum comparison",
    "mean [95% CI]",
    "IQM [95% CI]",
    "per run",
)


def _comparison_rows(name: str, group: Mapping[str, Any]) -> list[list[str]]:
    """A group's pooled curriculum comparison (:func:`trmgym.results.comparison_report`) as
    plain-text rows: each compared curriculum's speedup, then each curriculum's env steps."""
    compared = group.get("curriculum_comparison")
    if compared is None:
        return []
    main, threshold = _plain(compared["main"]), _plain(compared["threshold"])
    labelled = [
        (f"speedup {arm} / {main} to {threshold}", stats, "{:.2f}", "{:.3f}")
        for arm, stats in compared["speedup"].items()
    ]
    labelled += [
        (f"{curriculum}: env steps to {threshold}", stats, "{:,.0f}", "{:,.0f}")
        for curriculum, stats in compared["steps_to_threshold"].items()
    ]
    rows = []
    for label, stats, form, pooled in labelled:
        upper = stats.get("upper_bound") or [None] * len(stats["values"])
        bound = "≥ " if stats["n_lower_bound"] else ("≤ " if stats.get("n_upper_bound") else "")
        per_run = [
            "n/a" if value is None else ("≥" if low else "≤" if high else "") + form.format(value)
            for value, low, high in zip(stats["values"], stats["lower_bound"], upper)
        ]
        mean, iqm = (
            ("n/a (bounds both ways)",) * 2
            if stats.get("mixed_bounds")
            else (
                bound + _interval(stats, form=pooled),
                bound + _interval(stats, "iqm", "iqm_ci95", form=pooled),
            )
        )
        rows.append(
            [
                name,
                str(len(stats["values"])),
                label,
                mean,
                iqm,
                "; ".join(per_run),  # env steps have thousands separators
            ]
        )
    return rows


def sweep_markdown(report: Mapping[str, Any], where: str = "") -> str:
    """The sweep report as markdown: found/skipped counts, then per group ``n`` and the mean
    [95% bootstrap CI] of avg_accuracy, avg_forgetting, BWT and FWT, the pooled curriculum
    speedups of groups that compare curricula, then the probability of improvement on
    avg_accuracy. ``report`` is :func:`trmgym.results.sweep_report`'s result."""
    lines = [
        f"found {report['n_found']} {RESULTS_FILE}{where}: {report['n_read']} read, "
        f"{len(report['skipped']) - report.get('n_repeats', 0)} skipped"
        + (
            f", {report['n_repeats']} repeated seed{'s' * (report['n_repeats'] != 1)} left out"
            if report.get("n_repeats")
            else ""
        )
    ]
    lines += [f"skipped {item['path']}: {item['reason']}" for item in report["skipped"]]
    lines += [
        f"unfinished {path}: a checkpoint but no {RESULTS_FILE} (interrupted or still running; "
        "the same command resumes it): not in any group"
        for path in report.get("unfinished", [])
    ]
    lines += [
        f"diverged {item['path']}: {item['message']} (resuming repeats it): not in any group"
        for item in report.get("diverged", [])
    ]
    lines += [
        f"failed {item['path']}: no results.json and no checkpoint; its cli.log ends: "
        f"{item['message']}"
        for item in report.get("failed", [])
    ]
    lines += [
        f"mismatch {item['path']}: {item['metric']} stored {_fmt(item['stored'], 6)}, "
        f"recomputed from its accuracy matrix {_fmt(item['recomputed'], 6)} (the stored value "
        "is pooled)"
        for item in report.get("mismatches", [])
    ]
    better = {m: s["better"] for g in report["groups"].values() for m, s in g["metrics"].items()}
    headers = ["group", "n", *(_direction(m, better.get(m)) for m in TABLE_METRICS)]
    lines += ["", "| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    for name, group in report["groups"].items():
        cells = [name, str(group["n_runs"])]
        cells += [_interval(group["metrics"][m]) for m in TABLE_METRICS]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    notes = _notes(report, TABLE_METRICS)
    lines += ["", *notes] if notes else []
    compared = [row for name, g in report["groups"].items() for row in _comparison_rows(name, g)]
    if compared:
        lines += ["", "| " + " | ".join(COMPARISON_HEADERS) + " |"]
        lines.append("|" + " --- |" * len(COMPARISON_HEADERS))
        lines += [
            "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in row) + " |"
            for row in compared
        ]
        if any("≥" in row[-1] for row in compared):
            lines += ["", LOWER_BOUND_NOTE]
        if any("≤" in row[-1] for row in compared):
            lines += ["", UPPER_BOUND_NOTE]
    pairs = report["probability_of_improvement"]["pairs"]
    if pairs:
        lines += ["", "| x | y | P(x > y) on avg_accuracy (higher is better) | 95% CI |"]
        lines.append("| --- | --- | --- | --- |")
        for pair in pairs:
            p, ci = pair["p_x_better"], pair["ci95"]
            cells = [
                pair["x"],
                pair["y"],
                "n/a" if p is None else f"{p:.3f}",
                "n/a" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines).rstrip() + "\n"


def _group_html(name: str, group: Mapping[str, Any]) -> str:
    e = html.escape
    rows = []
    for metric, stats in group["metrics"].items():
        values = ", ".join(_fmt(v, 3) for v in stats["values"])
        defined = f"{stats['n_defined']} / {stats['n_defined'] + stats['n_undefined']}"
        ci, iqm_ci = stats["ci95"], stats["iqm_ci95"]
        rows.append(
            [
                e(metric),
                e(stats["better"] or "—"),
                defined,
                _fmt(stats["mean"]),
                "n/a" if ci is None else f"[{_fmt(ci[0])}, {_fmt(ci[1])}]",
                _fmt(stats["iqm"]),
                "n/a" if iqm_ci is None else f"[{_fmt(iqm_ci[0])}, {_fmt(iqm_ci[1])}]",
                values,
            ]
        )
    headers = ["metric", "better", "defined", "mean", "95% CI", "IQM", "IQM 95% CI", "per run"]
    report = {"groups": {name: group}}
    parts = [
        f"<h2>{e(name)}</h2>",
        f"<p>{group['n_runs']} run(s), seeds {e(json.dumps(group['seeds']))}; "
        f"configuration: <code>{e(json.dumps(group['config'], sort_keys=True))}</code></p>",
        _table(headers, rows),
        *(_note(note) for note in _notes(report, group["metrics"])),
    ]
    compared = _comparison_rows(name, group)
    if compared:
        parts += [
            "<h3>Curriculum comparison, pooled over the seeds</h3>",
            _table(COMPARISON_HEADERS[2:], [[e(c) for c in row[2:]] for row in compared]),
        ]
        if any("≥" in row[-1] for row in compared):
            parts.append(_note(LOWER_BOUND_NOTE))
        if any("≤" in row[-1] for row in compared):
            parts.append(_note(UPPER_BOUND_NOTE))
    parts.append(
        "<h3>Mean accuracy matrix (exact solve, over the runs that measured each cell)</h3>"
    )
    names = group["sequence"]
    matrix = as_matrix(group["accuracy_matrix_mean"], "accuracy_matrix_mean", len(names), name)
    parts.append(_matrix_html(names, matrix, 3, 1.0))
    parts.append("<details><summary>runs</summary><ul>")
    parts += [f"<li>{e(run)}</li>" for run in group["runs"]]
    parts.append("</ul></details>")
    return "\n".join(parts)


def write_sweep_html(report: Mapping[str, Any], folder: str | Path) -> Path:
    """Write the sweep's self-contained ``report.html`` into ``folder`` (inline CSS, no scripts).

    Per group: every metric's mean and IQM with 95% stratified-bootstrap intervals (Agarwal et
    al. 2021, NeurIPS), which way it improves, its per-run values, and the mean accuracy matrix;
    then the probability-of-improvement table and the skipped runs with their reasons.

    Returns:
        The path written.
    """
    e, boot = html.escape, report["bootstrap"]
    summary_metrics = list(
        dict.fromkeys(m for g in report["groups"].values() for m in g["metrics"])
    )
    better = {m: s["better"] for g in report["groups"].values() for m, s in g["metrics"].items()}
    rows = [
        [e(name), str(group["n_runs"])]
        + [
            e(_interval(group["metrics"][m])) if m in group["metrics"] else ""
            for m in summary_metrics
        ]
        for name, group in report["groups"].items()
    ]
    headers = [
        "group",
        "n",
        *(_direction(m, better.get(m)) + ": mean [95% CI]" for m in summary_metrics),
    ]
    parts = [
        "<h1>trmgym sweep report</h1>",
        f"<p>{report['n_found']} results.json found, {report['n_read']} read, "
        f"{len(report['skipped'])} skipped"
        + (
            f"; {len(report['unfinished'])} unfinished run(s) (a checkpoint, no results.json) "
            f"in no group: {e(', '.join(report['unfinished']))}"
            if report.get("unfinished")
            else ""
        )
        + (
            f"; {len(report['failed'])} job(s) with no results.json nor checkpoint (failed when "
            "started), in no group: "
            + e("; ".join(f"{d['path']}: {d['message']}" for d in report["failed"]))
            if report.get("failed")
            else ""
        )
        + (
            f"; {len(report['diverged'])} run(s) whose training diverged (diverged.json), in no "
            "group: " + e("; ".join(f"{d['path']}: {d['message']}" for d in report["diverged"]))
            if report.get("diverged")
            else ""
        )
        + f". Intervals: {e(boot['method'])}, "
        f"{boot['reps']} replications, seed {boot['seed']} — R. Agarwal et al., "
        "“Deep Reinforcement Learning at the Edge of the Statistical Precipice”, NeurIPS 2021. "
        "IQM: interquartile mean (mean of the middle 50% of runs).</p>",
        "<h2>Summary</h2>",
        _table(headers, rows),
        *(_note(note) for note in _notes(report, summary_metrics)),
    ]
    if report.get("mismatches"):
        parts.append(
            '<p class="bad">Stored metrics that differ from those recomputed from the run\'s own '
            f"accuracy matrix by more than {MISMATCH_TOLERANCE:g} (the stored values are pooled "
            "above): "
            + e(
                "; ".join(
                    f"{m['path']}: {m['metric']} stored {_fmt(m['stored'])}, recomputed "
                    f"{_fmt(m['recomputed'])}"
                    for m in report["mismatches"]
                )
            )
            + "</p>"
        )
    poi = report["probability_of_improvement"]
    if poi["pairs"]:
        poi_rows = [
            [e(p["x"]), e(p["y"]), _fmt(p["p_x_better"], 3)]
            + [
                "n/a"
                if p["ci95"] is None
                else f"[{_fmt(p['ci95'][0], 3)}, {_fmt(p['ci95'][1], 3)}]"
            ]
            + [str(p["n_x"]), str(p["n_y"])]
            for p in poi["pairs"]
        ]
        parts += [
            f"<h2>Probability of improvement on {e(poi['metric'])} ({e(poi['better'])} is better)</h2>",
            _table(["x", "y", "P(x > y)", "95% CI", "runs x", "runs y"], poi_rows),
            _note(poi["definition"]),
        ]
    parts += [_group_html(name, group) for name, group in report["groups"].items()]
    if report["skipped"]:
        skipped = [[e(item["path"]), e(item["reason"])] for item in report["skipped"]]
        parts += ["<h2>Skipped</h2>", _table(["results.json", "reason"], skipped)]
    document = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>trmgym sweep report</title><style>{_CSS}</style></head>\n"
        "<body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
    return _write_text(Path(folder) / "report.html", document)


def _write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (a reader never sees half a file)."""
    return write_text_atomic(path, text)


def _report_folder(paths: Sequence[Path], run_file: str = RESULTS_FILE) -> Path:
    """Where the sweep report goes: the first folder given, unless it is a run directory (it
    holds ``run_file``; its report.html is the run's own), then the folders' common parent."""
    first = paths[0].parent if paths[0].is_file() else paths[0]
    if not (first / run_file).is_file():
        return first
    common = Path(os.path.commonpath([str(p.resolve()) for p in paths]))
    common = common.parent if common.is_file() else common
    if (common / run_file).is_file():
        raise ValueError(
            f"{common} is a run directory: give the folder that holds the runs, so the sweep's "
            "report.html does not replace the run's own"
        )
    return common


def write_sweep_report(
    paths: Sequence[str | Path], *, reps: int = DEFAULT_REPS, seed: int = 0
) -> tuple[dict[str, Any], Path]:
    """Compute :func:`trmgym.results.sweep_report` and write ``report.json`` and ``report.html``.

    They go into the first folder in ``paths`` (the folders' common parent when the first is a
    run directory). ``report.json`` never holds NaN: undefined values are ``null``.

    Returns:
        ``(report, path of report.json)``.

    Raises:
        ValueError: if no readable run is found (the message lists the skipped ones) or
            ``reps``/``seed`` is out of range.
    """
    paths = [Path(p) for p in paths]
    report = sweep_report(paths, reps=reps, seed=seed)
    if not report["groups"]:
        reasons = "; ".join(f"{s['path']}: {s['reason']}" for s in report["skipped"])
        where = ", ".join(map(str, paths))
        stopped = [
            f"unfinished {path} (the same command resumes it)" for path in report["unfinished"]
        ]
        stopped += [f"diverged {d['path']} ({d['message']})" for d in report["diverged"]]
        stopped += [f"failed {d['path']} ({d['message']})" for d in report["failed"]]
        raise ValueError(
            f"{where}: no readable {RESULTS_FILE} at any depth"
            + (f" ({reasons})" if reasons else "")
            + (f"; {'; '.join(stopped)}" if stopped else "")
        )
    folder = _report_folder(paths)
    text = json.dumps(json_ready(report), indent=2, allow_nan=False)
    out = _write_text(folder / REPORT_FILE, text + "\n")
    write_sweep_html(report, folder)
    return report, out


def _report_run(run_dir: Path, reference: Path | None, console: Console) -> None:
    """One run: (re)write its plots and report.html, print its matrix, metrics and checks."""
    results = load_results(run_dir)
    report = write_report(run_dir)
    title = f"{_title(results)}: accuracy matrix (exact solve)"
    console.print(matrix_table(results["sequence"], results["accuracy_matrix"], title))
    console.print(metrics_table(results["metrics"]))
    rows, reason = check_metrics(results)
    if reason is not None:
        console.print(f"[yellow]could not recompute the metrics: {escape(reason)}[/yellow]")
    for row in (r for r in rows if r["mismatch"]):
        text = f"{row['metric']} stored {row['stored']!r}, recomputed {row['recomputed']!r}"
        console.print(f"[red]mismatch: {escape(text)}[/red]")
    if reference is not None:
        transfer = forward_transfer(results, reference)
        per_task = ", ".join(_fmt(v, 3) for v in transfer["ft_per_task"])
        console.print(f"forward transfer (vs {reference}): {_fmt(transfer['ft'])}")
        console.print(f"  per task: {per_task}")
        if None in (transfer["ft"], *transfer["ft_per_task"]):
            console.print(metrics.undefined_note(["ft"]))
    console.print(f"report: {report}")


def main(argv: Sequence[str] | None = None) -> int:
    """``trmgym report PATH [PATH ...] [--reps N] [--seed S]``: report one run, or a sweep.

    One run directory (or its results.json): (re)write its plots and report.html and print the
    metrics. A folder of runs at any depth (a Hydra multirun, ``runs/`` ...) or several paths:
    find every results.json (:func:`trmgym.results.scan_runs`, broken ones listed and skipped),
    group runs that differ only in their seed, and write ``report.json`` and ``report.html``
    (:func:`write_sweep_report`; bootstrap intervals after Agarwal et al. 2021), then print the
    markdown table of :func:`sweep_markdown`.
    """
    parser = argparse.ArgumentParser(
        prog="trmgym report", description="Report one trmgym run, or every run below folders."
    )
    parser.add_argument("paths", nargs="+", type=Path, help="run directories or folders of runs")
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="a strategy=scratch run of the same sequence: print Continual World's forward "
        "transfer of the (single) run against it",
    )

    def at_least(low: int) -> Any:
        def parse(text: str) -> int:  # refused by argparse (exit 2) before anything is read
            try:
                value = int(text)
            except ValueError:
                value = None
            if value is None or value < low:
                raise argparse.ArgumentTypeError(f"must be an int >= {low}, got {text!r}")
            return value

        return parse

    parser.add_argument(
        "--reps",
        type=at_least(1),
        default=DEFAULT_REPS,
        help=f"bootstrap replications per interval (default {DEFAULT_REPS})",
    )
    parser.add_argument(
        "--seed", type=at_least(0), default=0, help="seed of the bootstrap draws (default 0)"
    )
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    console = Console(highlight=False)
    try:
        for path in args.paths:
            if not path.exists():
                raise ValueError(f"{path}: no such file or directory")
            if path.is_file() and path.name not in (RESULTS_FILE, FEWSHOT_FILE):
                raise ValueError(
                    f"{path}: a file that is neither {RESULTS_FILE} nor {FEWSHOT_FILE}; give a "
                    "run directory, one of those files, or a folder of runs"
                )
        single = args.paths[0]
        if len(args.paths) == 1 and not results_path(single).is_file():
            fewshot = single if single.name == FEWSHOT_FILE else single / FEWSHOT_FILE
            if fewshot.is_file():
                console.print(f"report: {write_fewshot_report(fewshot.parent)}")
                return 0
        if len(args.paths) == 1 and results_path(args.paths[0]).is_file():
            _report_run(results_path(args.paths[0]).parent, args.reference, console)
            return 0
        if args.reference is not None:
            raise ValueError("--reference needs exactly one run directory (or results.json)")
        sys.stderr.write(f"trmgym report: {args.reps} bootstrap replications per interval\n")
        few = fewshot_sweep(args.paths, reps=args.reps, seed=args.seed)
        try:
            report, out = write_sweep_report(args.paths, reps=args.reps, seed=args.seed)
        except ValueError:
            if not few["groups"]:  # neither kind of run: the continual report's reasons
                raise
        else:
            where = " below " + ", ".join(map(str, args.paths))
            sys.stdout.write(sweep_markdown(report, where))
            sys.stdout.write(f"report: {out} and {out.with_name('report.html')}\n")
        if few["groups"]:  # few-shot runs (fewshot.json), pooled over seeds
            sys.stdout.write(fewshot_sweep_markdown(few))
            written = write_fewshot_sweep(few, _report_folder(args.paths, FEWSHOT_FILE))
            sys.stdout.write(f"report: {written} and {written.with_suffix('.html')}\n")
        return 0
    except ValueError as error:
        raise SystemExit(f"trmgym report: error: {error}") from None


if __name__ == "__main__":
    raise SystemExit(main())
