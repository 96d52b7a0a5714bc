"""Run reports: accuracy-matrix heatmap, learning curves, a self-contained HTML report, seed tables.

``trmgym report RUN_DIR`` reads a run's ``results.json`` (DESIGN.md's schema, written by
:mod:`trmgym.experiment`), writes ``plots/accuracy_matrix.png`` and ``plots/curves.png`` and a
single-file ``report.html`` (images embedded as data URIs, inline CSS, no scripts, nothing fetched),
and prints the metrics. ``trmgym report MULTIRUN_DIR`` (or several run directories) groups the runs
found one or two levels below by configuration — everything but the seed — and prints, per group,
the mean, sample standard deviation and a 95% Student-t confidence interval of each metric,
written to ``aggregate.json`` as ``{"groups": [aggregate(...), ...]}`` (see :mod:`trmgym.results`).

The report recomputes the metrics from the saved accuracy matrix with
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
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from trmgym import metrics
from trmgym.logging import (
    NOT_MEASURED_NOTE,
    add_note,
    is_missing,
    matrix_table,
    metrics_table,
)
from trmgym.results import (
    METRIC_NAMES,
    RESULTS_FILE,
    aggregate_groups,
    as_matrix,
    find_runs,
    forward_transfer,
    json_ready,
    load_results,
    results_path,
    validate_results,
)

__all__ = [
    "aggregate_table",
    "check_metrics",
    "main",
    "plot_accuracy_matrix",
    "plot_curves",
    "write_plots",
    "write_report",
]

MISMATCH_TOLERANCE = 1e-9
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
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png", dpi=_DPI, metadata={"Software": None})
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


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


def write_plots(run_dir: str | Path) -> dict[str, Path]:
    """Write ``plots/accuracy_matrix.png`` and ``plots/curves.png`` for a run directory.

    Returns:
        ``{"accuracy_matrix": path, "curves": path}``.
    """
    results = load_results(run_dir)
    plots = results_path(run_dir).parent / "plots"
    paths = {"accuracy_matrix": plots / "accuracy_matrix.png", "curves": plots / "curves.png"}
    plot_accuracy_matrix(results, paths["accuracy_matrix"])
    plot_curves(results, paths["curves"])
    return paths


# ---------------------------------------------------------------------------------- report
def check_metrics(results: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """Compare the stored metrics with :func:`trmgym.metrics.summarize` of the saved matrix.

    Returns:
        ``(rows, error)``: one row per metric (and per-task forgetting) with ``metric``,
        ``stored``, ``recomputed`` and ``mismatch`` (differ by more than 1e-9, or only one is
        missing); ``error`` is the reason the metrics could not be recomputed, else ``None``.
    """
    stored = dict(results["metrics"])
    steps = results.get("reasoning_steps_matrix")
    try:
        fresh = metrics.summarize(
            results["accuracy_matrix"],
            results.get("random_init_accuracy"),
            reasoning_steps=steps[-1] if steps else None,
        )
    except (TypeError, ValueError) as error:
        fresh, reason = {}, str(error)
    else:
        reason = None
    pairs = [(name, stored.get(name), fresh.get(name), True) for name in METRIC_NAMES]
    # Metrics summarize does not compute (e.g. a forward-transfer AUC) are shown, not checked.
    pairs += [(name, stored[name], None, False) for name in sorted(set(stored) - set(METRIC_NAMES))]
    if reason is None and isinstance(results.get("forgetting"), list):
        saved = results["forgetting"]
        for j, value in enumerate(fresh["forgetting"]):
            label = f"forgetting[{results['sequence'][j]}]"
            pairs.append((label, saved[j] if j < len(saved) else None, value, True))
    rows = []
    for name, old, new, checked in pairs:
        if reason is not None or not checked:
            mismatch = False
        elif isinstance(old, numbers.Real) and isinstance(new, numbers.Real):
            mismatch = not abs(float(old) - float(new)) <= MISMATCH_TOLERANCE
        else:
            mismatch = (old is None) != (new is None) or not isinstance(old, numbers.Real | None)
        rows.append({"metric": name, "stored": old, "recomputed": new, "mismatch": mismatch})
    return rows, reason


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


def write_report(run_dir: str | Path) -> Path:
    """Write a self-contained ``report.html`` (and the plots) for a run directory.

    Returns:
        The path of ``report.html``.

    Raises:
        ValueError: if results.json is missing or malformed (the message names it).
    """
    results = load_results(run_dir)
    folder = results_path(run_dir).parent
    plots = write_plots(folder)
    names, e = results["sequence"], html.escape
    tasks = results.get("tasks") or [{"name": name} for name in names]
    rows = [
        [str(k), _fmt(t.get("name")), _fmt(t.get("env_id"))]
        + [_fmt(t.get(key, {})) for key in ("kwargs", "train_kwargs", "eval_kwargs")]
        for k, t in enumerate(tasks)
    ]
    parts = [
        f"<h1>{e(_title(results))}</h1>\n<h2>Sequence</h2>",
        _table(["#", "task", "env id", "kwargs", "train kwargs", "eval kwargs"], rows),
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
    if probes := results.get("difficulty_probe") or []:
        keys = [k for k in probes[0] if k != "options"]
        rows = [[_fmt(p.get("options")), *(_fmt(p.get(k)) for k in keys)] for p in probes]
        parts += [
            f"<h2>Difficulty probe (last task: {e(names[-1])})</h2>",
            _table(["options", *keys], rows),
        ]
    parts.append("<h2>Plots</h2>")
    for name, path in plots.items():
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(f'<p><img src="data:image/png;base64,{data}" alt="{e(name)}"></p>')
    config = {"settings": results.get("settings"), "agent": results.get("agent")}
    parts.append(
        f"<h2>Configuration</h2>\n<pre>{e(json.dumps(config, indent=2, default=str))}</pre>"
    )
    info = [
        ("device", results.get("device")),
        ("wall time (s)", results.get("wall_time_s")),
        ("env steps", results.get("env_steps")),
        ("seed", results["seed"]),
    ]
    info += [(f"version: {k}", v) for k, v in (results.get("versions") or {}).items()]
    parts += ["<h2>Run</h2>", _table(["", "value"], [[e(k), _fmt(v, 1)] for k, v in info])]
    document = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{e('trmgym report: ' + _title(results))}</title><style>{_CSS}</style></head>\n"
        "<body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
    out = folder / "report.html"
    tmp = out.with_suffix(".html.tmp")
    tmp.write_text(document, encoding="utf-8")
    tmp.replace(out)
    return out


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


def main(argv: Sequence[str] | None = None) -> int:
    """``trmgym report PATH [PATH ...]``: report one run, or aggregate several.

    One run directory (or its results.json): (re)write its plots and report.html and print the
    metrics. A directory of runs (a Hydra multirun folder; searched one or two levels deep) or
    several paths: print the aggregate table of each configuration and write ``aggregate.json``
    into the given directory (the paths' common parent when several are given).
    """
    parser = argparse.ArgumentParser(
        prog="trmgym report", description="Report one trmgym run, or aggregate several."
    )
    parser.add_argument("paths", nargs="+", type=Path, help="run directories or multirun folders")
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="a strategy=scratch run of the same sequence: print Continual World's forward "
        "transfer of the (single) run against it",
    )
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    console = Console(highlight=False)
    try:
        for path in args.paths:
            if not path.exists():
                raise ValueError(f"{path}: no such file or directory")
        single = len(args.paths) == 1 and results_path(args.paths[0]).is_file()
        if single:
            run_dir = results_path(args.paths[0]).parent
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
            if args.reference is not None:
                transfer = forward_transfer(results, args.reference)
                per_task = ", ".join(_fmt(v, 3) for v in transfer["ft_per_task"])
                console.print(f"forward transfer (vs {args.reference}): {_fmt(transfer['ft'])}")
                console.print(f"  per task: {per_task}")
                if None in (transfer["ft"], *transfer["ft_per_task"]):
                    console.print(metrics.undefined_note(["ft"]))
            console.print(f"report: {report}")
            return 0
        if args.reference is not None:
            raise ValueError("--reference needs exactly one run directory (or results.json)")
        run_dirs = []
        for path in args.paths:
            found = [path.parent] if path.is_file() else find_runs(path)
            if not found:
                raise ValueError(f"{path}: no {RESULTS_FILE} in it or one or two levels below")
            run_dirs += [d for d in found if d not in run_dirs]
        groups = aggregate_groups(run_dirs)
        for group in groups:
            console.print(aggregate_table(group))
        folder = (
            args.paths[0]
            if len(args.paths) == 1
            else Path(os.path.commonpath([str(p.resolve()) for p in args.paths]))
        )
        out = folder / "aggregate.json"
        text = json.dumps(json_ready({"groups": groups}), indent=2, allow_nan=False)
        out.write_text(text, encoding="utf-8")
        console.print(f"aggregate: {out}")
        return 0
    except ValueError as error:
        raise SystemExit(f"trmgym report: error: {error}") from None


if __name__ == "__main__":
    raise SystemExit(main())
