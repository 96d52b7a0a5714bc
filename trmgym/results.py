"""Run results on disk: reading and checking ``results.json``, finding runs, aggregating seeds.

:func:`load_results` reads a run's ``results.json`` (DESIGN.md's schema, written by
:mod:`trmgym.experiment` through :func:`write_results`) and checks the keys and shapes that reports
read, naming the file in every error. Undefined metrics (BWT of a one-task run, ...) are ``null``
in the file and ``None`` here, never 0 and never NaN (which is not JSON). :func:`find_runs` finds
run directories below a folder (a Hydra multirun), and :func:`aggregate_groups` groups runs by
configuration — everything but the seed — and gives, per metric, the mean, the sample standard
deviation and a 95% Student-t confidence interval over the runs where the metric is defined.
Plots and the HTML report live in :mod:`trmgym.report`.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trmgym import metrics

__all__ = [
    "METRIC_NAMES",
    "RESULTS_FILE",
    "aggregate",
    "aggregate_groups",
    "as_matrix",
    "check_reference",
    "find_runs",
    "forward_transfer",
    "json_ready",
    "load_results",
    "results_path",
    "summary_stats",
    "t_critical",
    "validate_results",
    "write_results",
]

RESULTS_FILE = "results.json"
REQUIRED_KEYS = ("sequence", "strategy", "seed", "accuracy_matrix", "metrics")
METRIC_NAMES = ("avg_accuracy", "avg_forgetting", "bwt", "fwt", "avg_reasoning_steps")
# Two-sided 95% Student-t critical values t_{0.975, df} for df = 1..30; 1.96 (normal) beyond.
_T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
          2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
          2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip


# --------------------------------------------------------------------------------- loading
def results_path(run: str | Path) -> Path:
    """``run`` itself when it is a file, else ``run/results.json``."""
    path = Path(run)
    return path if path.is_file() else path / RESULTS_FILE


def as_matrix(value: Any, key: str, size: int, source: str) -> np.ndarray:
    """A ``size x size`` float array from nested lists (``None`` -> NaN), or ValueError naming ``source``."""
    rows = value if isinstance(value, list) else [None]
    if len(rows) != size or not all(isinstance(row, list) and len(row) == size for row in rows):
        raise ValueError(
            f"{source}: {key} must be a square T x T matrix with T = {size} (one row and column "
            f"per task in 'sequence'), got {json.dumps(value)[:80]}"
        )
    for entry in (entry for row in rows for entry in row):
        if entry is not None and (isinstance(entry, bool) or not isinstance(entry, numbers.Real)):
            raise ValueError(f"{source}: {key} must hold numbers or null, got {entry!r}")
    return np.array([[np.nan if v is None else float(v) for v in row] for row in value])


def validate_results(results: Any, source: str) -> dict[str, Any]:
    """Check the keys and shapes that reports read; a copy of ``results``, or ValueError naming ``source``."""
    if not isinstance(results, Mapping):
        raise ValueError(f"{source}: results must be a JSON object, got {type(results).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in results]
    if missing:
        raise ValueError(
            f"{source}: missing key(s) {missing}; a results.json needs {list(REQUIRED_KEYS)}"
        )
    names = results["sequence"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{source}: 'sequence' must be a non-empty list of task names")
    if not isinstance(results["metrics"], Mapping):
        raise ValueError(f"{source}: 'metrics' must be an object of metric name -> value")
    size = len(names)
    for key in ("accuracy_matrix", "cell_accuracy_matrix", "reasoning_steps_matrix"):
        if key == "accuracy_matrix" or results.get(key) is not None:
            as_matrix(results[key], key, size, source)
    curves = results.get("curves")
    if curves is not None and (
        not isinstance(curves, list)
        or len(curves) != size
        or not all(isinstance(c, list) for c in curves)
    ):
        raise ValueError(f"{source}: 'curves' must be a list of {size} per-task lists")
    return dict(results)


def load_results(run: str | Path) -> dict[str, Any]:
    """Read and validate ``results.json`` of a run directory (or the file itself).

    Raises:
        ValueError: naming the path, if the file is missing, not JSON, lacks a required key
            (``sequence``, ``strategy``, ``seed``, ``accuracy_matrix``, ``metrics``) or holds a
            matrix that is not ``T x T``.
    """
    path = results_path(run)
    if not path.is_file():
        raise ValueError(
            f"{path}: no such results file (expected a run directory or its {RESULTS_FILE})"
        )
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    return validate_results(results, str(path))


def json_ready(value: Any) -> Any:
    """``value`` as plain JSON data: numpy scalars and arrays become Python numbers and lists, and
    NaN or infinite floats become ``None`` (JSON has no NaN; an undefined value is ``null``)."""
    if isinstance(value, Mapping):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_ready(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_results(run_dir: str | Path, results: Mapping[str, Any]) -> Path:
    """Write ``results`` to ``run_dir/results.json`` atomically, undefined values as ``null``.

    Returns:
        The path written. The file never holds NaN or Infinity (see :func:`json_ready`).
    """
    path = Path(run_dir) / RESULTS_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(json_ready(results), indent=2, allow_nan=False), encoding="utf-8")
    tmp.replace(path)
    return path


# ------------------------------------------------------------------------------- aggregate
def t_critical(df: int) -> float:
    """Two-sided 95% Student-t critical value for ``df`` degrees of freedom (1.96 beyond 30)."""
    if isinstance(df, bool) or not isinstance(df, numbers.Integral) or df < 1:
        raise ValueError(f"df must be an int >= 1, got {df!r}")
    return _T_975[df - 1] if df <= len(_T_975) else 1.96


def summary_stats(values: Sequence[float | None]) -> dict[str, Any]:
    """``n``, mean, sample std (ddof 1) and the 95% t confidence interval of the defined values.

    ``None`` and NaN entries (a metric undefined for that run) are left out, not counted as 0:
    ``n`` is the number of defined values. ``std`` and the interval are ``None`` for fewer than
    two of them (undefined), ``mean`` too for none.
    """
    defined = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    data = np.asarray(defined, dtype=np.float64)
    n = int(data.size)
    stats: dict[str, Any] = {"n": n, "mean": float(data.mean()) if n else None}
    stats.update(dict.fromkeys(("std", "ci95", "ci95_low", "ci95_high")))
    if n >= 2:
        std = float(data.std(ddof=1))
        half = t_critical(n - 1) * std / math.sqrt(n)
        stats.update(
            std=std, ci95=half, ci95_low=stats["mean"] - half, ci95_high=stats["mean"] + half
        )
    return stats


def _aggregate(loaded: list[tuple[Path, dict[str, Any]]], label: str) -> dict[str, Any]:
    names = list(METRIC_NAMES)
    for _, results in loaded:
        names += sorted(set(results["metrics"]) - set(names))
    table: dict[str, Any] = {}
    for name in names:
        values = []
        for path, results in loaded:
            value = results["metrics"].get(name)
            finite = isinstance(value, numbers.Real) and math.isfinite(value)
            if value is not None and (isinstance(value, bool) or not finite):
                raise ValueError(
                    f"{path}: metrics.{name} must be a finite number or null, got {value!r}"
                )
            # one entry per run, in the order of "seeds": None where undefined, never 0
            values.append(None if value is None else float(value))
        table[name] = {**summary_stats(values), "values": values}

    def distinct(key: str) -> Any:
        seen = [r.get(key) for _, r in loaded]
        unique = [v for k, v in enumerate(seen) if v not in seen[:k]]
        return unique[0] if len(unique) == 1 else unique

    return {
        "label": label,
        "n": len(loaded),
        "runs": [str(p.parent) for p, _ in loaded],
        "seeds": [r["seed"] for _, r in loaded],
        "experiment": distinct("experiment"),
        "strategy": distinct("strategy"),
        "sequence": distinct("sequence"),
        "metrics": table,
    }


def _load_all(run_dirs: Iterable[str | Path]) -> list[tuple[Path, dict[str, Any]]]:
    loaded = [(results_path(d), load_results(d)) for d in run_dirs]
    if not loaded:
        raise ValueError("run_dirs must name at least one run directory holding a results.json")
    return loaded


def aggregate(run_dirs: Iterable[str | Path]) -> dict[str, Any]:
    """Mean, std and 95% confidence interval of every metric over several runs (e.g. seeds).

    Returns:
        ``{"label", "n", "runs", "seeds", "experiment", "strategy", "sequence", "metrics"}`` where
        ``metrics[name]`` is :func:`summary_stats` of the runs' non-null values plus ``values``
        (one per run, in the order of ``seeds``, ``None`` where the metric is undefined): a metric
        null in some runs is aggregated over the others (``n`` counts them), and one null in
        every run has ``n = 0`` and ``mean = None``.
        ``experiment`` / ``strategy`` / ``sequence`` are lists when the runs disagree.

    Raises:
        ValueError: if no run is given or a results.json is missing or malformed (named).
    """
    loaded = _load_all(run_dirs)
    labels = sorted({f"{r.get('experiment', 'run')} / {r['strategy']}" for _, r in loaded})
    return _aggregate(loaded, ", ".join(labels))


#: overrides that do not change how a run trains, left out when runs are grouped
_NOT_CONFIGURATION = ("seed", "console", "run.reference")


def _overrides(run_dir: Path) -> list[str] | None:
    """A run's Hydra command-line overrides (``.hydra/overrides.yaml``), if any, but the seed and
    those that only change what is printed (``console``)."""
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    import yaml

    try:
        items = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error})") from None
    return [str(o) for o in items if str(o).split("=", 1)[0].lstrip("+~") not in _NOT_CONFIGURATION]


def aggregate_groups(run_dirs: Iterable[str | Path]) -> list[dict[str, Any]]:
    """:func:`aggregate` per configuration: runs that differ only in their seed form a group.

    A group's configuration is the run's experiment, strategy (and its arguments), plugins,
    tasks, settings and agent, plus its Hydra overrides other than ``seed`` (which carry e.g. strategy arguments); its label is
    those overrides, or ``experiment / strategy``.
    """
    groups: dict[str, tuple[str, list[tuple[Path, dict[str, Any]]]]] = {}
    for path, results in _load_all(run_dirs):
        overrides = _overrides(path.parent)
        config = {
            k: results.get(k)
            for k in (
                "experiment",
                "strategy",
                "strategy_config",
                "plugins",
                "tasks",
                "sequence",
                "settings",
                "agent",
            )
        }
        if isinstance(config["settings"], Mapping):  # the FT reference does not change training
            config["settings"] = {k: v for k, v in config["settings"].items() if k != "reference"}
        key = json.dumps({**config, "overrides": overrides}, sort_keys=True, default=str)
        label = (
            " ".join(overrides or [])
            or f"{results.get('experiment', 'run')} / {results['strategy']}"
        )
        groups.setdefault(key, (label, []))[1].append((path, results))
    labels = [label for label, _ in groups.values()]
    return [
        _aggregate(runs, label if labels.count(label) == 1 else f"{label} #{k}")
        for k, (label, runs) in enumerate(groups.values())
    ]


# ------------------------------------------------------------------------ forward transfer
def _task_curves(results: Mapping[str, Any], start: list[float], source: str) -> list[list[float]]:
    curves = results.get("curves")
    if not curves or any(not curve for curve in curves):
        raise ValueError(f"{source}: needs 'curves' with at least one evaluation per task")
    for j, curve in enumerate(curves):
        if any(v is None for v in curve):
            raise ValueError(f"{source}: curves[{j}] has a null (unmeasured) evaluation")
    return [[first, *(float(v) for v in curve)] for first, curve in zip(start, curves)]


def _measured(value: Any, where: str, source: str) -> float:
    """``value`` as a float, or ValueError naming ``where`` when it is null (never read as 0)."""
    if value is None:
        raise ValueError(
            f"{source}: {where} is null (not measured); forward transfer needs each task's "
            "accuracy before its training"
        )
    return float(value)


#: what must match between a run and its forward-transfer reference (when both record it)
_COMPARABLE_TASK_KEYS = (
    "env_id",
    "kwargs",
    "train_kwargs",
    "eval_kwargs",
    "options",
    "train_steps",
)
_COMPARABLE_SETTINGS = (
    "train_steps",
    "eval_every",
    "batch_size",
    "max_reasoning_steps",
    "task_labels",
    "canvas",
)


def check_reference(
    reference: Mapping[str, Any] | str | Path, run: Mapping[str, Any]
) -> dict[str, Any]:
    """Load (if a path) and check a forward-transfer reference for ``run``.

    The reference must be a ``strategy=scratch`` run of the same task names and, where both
    record them, the same task definitions and budgets (``tasks[j]``: env id, arguments, options,
    ``train_steps``; ``settings``: steps, evaluation period, batch size, step limit, task labels,
    canvas); otherwise the two learning curves measure different things.

    Raises:
        ValueError: naming the reference and the first field that differs.
    """
    source = "reference"
    if not isinstance(reference, Mapping):
        source = str(results_path(reference))
        reference = load_results(reference)
    if reference.get("strategy") != "scratch":
        raise ValueError(
            f"{source}: the forward-transfer reference must be a run with strategy=scratch on "
            f"the same sequence (trmgym run strategy=scratch ...), got strategy "
            f"{reference.get('strategy')!r}"
        )
    if list(reference["sequence"]) != list(run["sequence"]):
        raise ValueError(
            f"{source}: the reference's tasks {reference['sequence']} differ from the run's "
            f"{list(run['sequence'])}"
        )
    mine, theirs = run.get("tasks") or [], reference.get("tasks") or []
    for j, (a, b) in enumerate(zip(mine, theirs)):
        for key in _COMPARABLE_TASK_KEYS:
            if key in a and key in b and a[key] != b[key]:
                raise ValueError(
                    f"{source}: tasks[{j}].{key} differs from the run's "
                    f"({b[key]!r} vs {a[key]!r}); run the scratch reference with the same sequence"
                )
    mine, theirs = run.get("settings") or {}, reference.get("settings") or {}
    for key in _COMPARABLE_SETTINGS:
        if key in mine and key in theirs and mine[key] != theirs[key]:
            raise ValueError(
                f"{source}: run.{key} differs from the run's ({theirs[key]!r} vs {mine[key]!r}); "
                f"run the scratch reference with the same run.* settings"
            )
    return dict(reference)


def _sample_times(results: Mapping[str, Any], lengths: list[int]) -> list[list[float]] | None:
    """Each task's curve sample times in [0, 1]: 0, then the end of every training chunk.

    Chunks are ``settings.eval_every`` steps, the last one cut at the task's budget, so the last
    interval may be shorter. ``None`` (equal spacing) when the results do not record budgets.
    """
    settings, tasks = results.get("settings") or {}, results.get("tasks") or []
    every = settings.get("eval_every")
    if not every or len(tasks) != len(lengths):
        return None
    times = []
    for task, length in zip(tasks, lengths):
        budget = task.get("train_steps") or settings.get("train_steps")
        if not budget:
            return None
        ends = list(range(every, budget, every)) + [budget]
        if len(ends) + 1 != length:
            return None
        times.append([0.0, *(end / budget for end in ends)])
    return times


def forward_transfer(
    results: Mapping[str, Any], reference: Mapping[str, Any] | str | Path
) -> dict[str, Any]:
    """Continual World's normalised forward transfer of a run against a ``scratch`` reference run.

    Each task's curve starts with its accuracy before its training — ``R[j-1][j]`` in the run
    (``random_init_accuracy[0]`` for the first task), the untrained agent's
    ``random_init_accuracy[j]`` in the reference, where every task starts from a fresh agent —
    followed by the evaluations after each training chunk, placed at the chunk's end (a last
    chunk shorter than ``eval_every`` gives a shorter last interval);
    :func:`trmgym.metrics.forward_transfer_auc` compares their areas.

    Args:
        results: the run's results (a dict as in ``results.json``).
        reference: a run with ``strategy: scratch`` on the same task names (a dict, a run
            directory or its results.json).

    Returns:
        ``{"ft": mean, "ft_per_task": [...], "reference": path-or-None}``; ``ft_per_task[j]`` is
        ``None`` where the reference was perfect from its first sample (``AUC_ref = 1``: the
        normalised transfer is undefined) and ``ft`` is the mean over the other tasks, ``None``
        when there are none.

    Raises:
        ValueError: if the reference is not a scratch run of the same sequence, or curves or a
            starting accuracy are missing (the message names the file).
    """
    source = "reference" if isinstance(reference, Mapping) else str(results_path(reference))
    reference = check_reference(reference, results)
    R, b = results["accuracy_matrix"], results.get("random_init_accuracy")
    b_ref = reference.get("random_init_accuracy")
    if b is None or b_ref is None:
        raise ValueError("forward transfer needs random_init_accuracy in both runs")
    size = len(R)
    start = [_measured(b[0], "random_init_accuracy[0]", "results")]
    start += [
        _measured(R[j - 1][j], f"accuracy_matrix[{j - 1}][{j}]", "results") for j in range(1, size)
    ]
    curves = _task_curves(results, start, "results")
    reference_start = [
        _measured(v, f"random_init_accuracy[{j}]", source) for j, v in enumerate(b_ref)
    ]
    reference_curves = _task_curves(reference, reference_start, source)
    per_task, mean = metrics.forward_transfer_auc(
        curves,
        reference_curves,
        _sample_times(results, [len(c) for c in curves]),
        _sample_times(reference, [len(c) for c in reference_curves]),
    )
    return {
        "ft": mean,
        "ft_per_task": per_task,
        "reference": None if source == "reference" else source,
    }


# ------------------------------------------------------------------------------- finding
def _natural(path: Path) -> list[Any]:
    # Hydra numbers multirun jobs 0, 1, ..., 10: sort them as numbers, not as text.
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(path))]


def find_runs(root: str | Path) -> list[Path]:
    """Run directories (holding results.json) at ``root`` or one or two levels below, sorted."""
    root = Path(root)
    if (root / RESULTS_FILE).is_file():
        return [root]
    found = [*root.glob(f"*/{RESULTS_FILE}"), *root.glob(f"*/*/{RESULTS_FILE}")]
    return sorted((p.parent for p in found), key=_natural)
