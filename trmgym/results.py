"""Run results on disk: reading and checking ``results.json``, finding runs, aggregating seeds.

:func:`load_results` reads a run's ``results.json`` (DESIGN.md's schema, written by
:mod:`trmgym.experiment` through :func:`write_results`) and checks the keys and shapes that reports
read, naming the file in every error. Undefined metrics (BWT of a one-task run, ...) are ``null``
in the file and ``None`` here, never 0 and never NaN (which is not JSON). :func:`find_runs` finds
run directories at any depth below a folder (a Hydra multirun, a tree of sweeps) and
:func:`scan_runs` reads them, listing the broken ones with their reason instead of stopping.
:func:`group_runs` groups runs by configuration — everything but the seed.
:func:`sweep_report` compares the groups as Agarwal et al. 2021 ("Deep Reinforcement Learning at
the Edge of the Statistical Precipice", NeurIPS) recommend, through their library rliable: mean
and interquartile mean with stratified-bootstrap intervals, and the probability of improvement.
:func:`aggregate` and :func:`aggregate_groups` keep the older summary: mean, sample standard
deviation and a 95% Student-t interval per metric. Plots and HTML live in :mod:`trmgym.report`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import numbers
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trmgym import metrics
from trmgym.atomic import write_text_atomic

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_REPS",
    "METRIC_BETTER",
    "METRIC_NAMES",
    "RESULTS_FILE",
    "aggregate",
    "aggregate_groups",
    "as_matrix",
    "bootstrap_stats",
    "check_comparison_block",
    "check_metric_values",
    "comparison_report",
    "check_reference",
    "find_runs",
    "forward_transfer",
    "group_names",
    "group_runs",
    "improvement_probability",
    "json_ready",
    "load_results",
    "results_path",
    "scan_runs",
    "summary_stats",
    "sweep_report",
    "t_critical",
    "task_budget",
    "validate_results",
    "write_results",
]

RESULTS_FILE = "results.json"
#: written when training diverged (:class:`trmgym.experiment.TrainingDiverged`), removed when
#: the run finishes: where and why, so that ``trmgym report`` and a restart can say so
DIVERGED_FILE = "diverged.json"
REQUIRED_KEYS = ("sequence", "strategy", "seed", "accuracy_matrix", "metrics")
METRIC_NAMES = ("avg_accuracy", "avg_forgetting", "bwt", "fwt", "avg_reasoning_steps")
#: stored and recomputed metrics further apart than this are a mismatch (:func:`check_metrics`)
MISMATCH_TOLERANCE = 1e-9
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
    """Check the keys and shapes that reports read; a copy of ``results`` (keys that older files
    name differently under their current names), or ValueError naming ``source``."""
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
    seed = results.get("seed")  # groups pool runs by seed: "zero", null or 1.0 passed as seeds
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"{source}: 'seed' must be an int >= 0, got {seed!r}")
    results = _renamed_keys(results)
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
    return results


def _renamed_keys(results: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``results`` with the keys of older results.json files under their current names;
    ``results`` itself is not modified.

    Migration: a ``difficulty_probe`` entry called the most reasoning steps any episode took
    ``max_reasoning_steps``, the name the top level (and ``settings``) gives the step limit
    ``run.max_reasoning_steps``; files written since call it ``most_reasoning_steps``.
    """
    results = dict(results)
    probes = results.get("difficulty_probe")
    if isinstance(probes, list):
        results["difficulty_probe"] = [
            {("most_reasoning_steps" if k == "max_reasoning_steps" else k): v for k, v in p.items()}
            if isinstance(p, Mapping) and "most_reasoning_steps" not in p
            else p
            for p in probes
        ]
    return results


def load_results(run: str | Path) -> dict[str, Any]:
    """Read and validate ``results.json`` of a run directory (or the file itself).

    Raises:
        ValueError: naming the path, if the file is missing, not JSON, lacks a required key
            (``sequence``, ``strategy``, ``seed``, ``accuracy_matrix``, ``metrics``), holds a
            matrix that is not ``T x T``, or cannot be read.
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
    except OSError as error:
        raise ValueError(f"{path}: cannot be read ({error.strerror or error})") from None
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


def _last_line(log: Path) -> str:
    """The last non-empty line of a run's cli.log (what a failed job said), or why there is none."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    except OSError:
        return "no results.json, no checkpoint and no readable cli.log"
    said = [line for line in lines if line]
    return said[-1] if said else "no results.json, no checkpoint; its cli.log is empty"


def write_diverged(run_dir: str | Path, record: Mapping[str, Any]) -> Path:
    """Write ``record`` (``task``, ``chunk``, ``env_steps``, ``message``) as
    ``run_dir/diverged.json`` (:data:`DIVERGED_FILE`), atomically."""
    return write_text_atomic(
        Path(run_dir) / DIVERGED_FILE, json.dumps(json_ready(record), indent=2)
    )


def read_diverged(run_dir: str | Path) -> dict[str, Any] | None:
    """The record of ``run_dir/diverged.json``, ``None`` when there is none. A file that cannot
    be read or parsed still marks the run diverged: its ``message`` says what is wrong with it."""
    path = Path(run_dir) / DIVERGED_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return {"message": f"{DIVERGED_FILE} unreadable ({error})"}
    if not isinstance(record, dict) or not isinstance(record.get("message"), str):
        return {"message": f"{DIVERGED_FILE} holds no message"}
    return record


def write_results(run_dir: str | Path, results: Mapping[str, Any]) -> Path:
    """Write ``results`` to ``run_dir/results.json`` atomically, undefined values as ``null``.

    Returns:
        The path written. The file never holds NaN or Infinity (see :func:`json_ready`).
    """
    text = json.dumps(json_ready(results), indent=2, allow_nan=False)
    return write_text_atomic(Path(run_dir) / RESULTS_FILE, text)


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


def check_metric_values(results: Mapping[str, Any], source: str) -> None:
    """Raise ValueError naming ``source`` unless every ``metrics`` value is a finite number or null."""
    for name, value in results["metrics"].items():
        finite = isinstance(value, numbers.Real) and math.isfinite(value)
        if value is not None and (isinstance(value, bool) or not finite):
            raise ValueError(
                f"{source}: metrics.{name} must be a finite number or null, got {value!r}"
            )


def _metric(results: Mapping[str, Any], name: str) -> float | None:
    """A checked metric as a float; ``None`` where it is null or absent (undefined, never 0)."""
    value = results["metrics"].get(name)
    return None if value is None else float(value)


def _aggregate(loaded: list[tuple[Path, dict[str, Any]]], label: str) -> dict[str, Any]:
    names = list(METRIC_NAMES)
    for _, results in loaded:
        names += sorted(set(results["metrics"]) - set(names))
    for path, results in loaded:
        check_metric_values(results, str(path))
    table: dict[str, Any] = {}
    for name in names:
        # one entry per run, in the order of "seeds": None where undefined, never 0
        values = [_metric(results, name) for _, results in loaded]
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
#: ``run`` settings that change only what is shown or how fast, never the results: left out of
#: the resume guard (a run may resume with other values) and of a report's grouping
DISPLAY_ONLY = ("threads", "log_every")
_NOT_CONFIGURATION = ("seed", "console", "run.reference", *(f"run.{k}" for k in DISPLAY_ONLY))
#: results.json keys that configure a run (everything that makes two runs comparable but the seed)
_CONFIGURATION_KEYS = (
    "experiment",
    "strategy",
    "strategy_config",
    "plugins",
    "tasks",
    "sequence",
    "settings",
    "agent",
    "fewshot_eval",  # the few-shot probe's protocol, where a run has one
)


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


def _configuration(results: Mapping[str, Any]) -> dict[str, Any]:
    """What a run was configured to do, but its seed: the keys that make runs comparable.

    Built from the values the run recorded, never from how its command line spelled them: the
    order of Hydra overrides, ``++key`` for ``key``, or a curriculum's levels written as
    ``{blanks: [4, 8]}`` or ``[{blanks: 4}, {blanks: 8}]`` (compared here as the run's
    expanded ``curriculum.levels``) never split one configuration into two groups.
    """
    config = {key: results.get(key) for key in _CONFIGURATION_KEYS}
    block = results.get("curriculum")
    levels = block.get("levels") if isinstance(block, Mapping) else None
    if isinstance(config["plugins"], list) and isinstance(levels, list):
        config["plugins"] = [_with_levels(record, levels) for record in config["plugins"]]
    if isinstance(config["settings"], Mapping):  # neither the FT reference nor display-only
        config["settings"] = {  # change what is trained
            k: v for k, v in config["settings"].items() if k not in ("reference", *DISPLAY_ONLY)
        }
    if isinstance(block, Mapping) and "speedup" in block:  # speedups at one threshold pool
        config["curriculum_comparison"] = {
            "main": block.get("name"),
            "threshold": block.get("threshold"),
            "against": sorted(block["speedup"]),
        }
    return config


def _with_levels(record: Any, levels: list[Any]) -> Any:
    """A plugin record whose config lists ``levels``, with the run's expanded levels."""
    config = record.get("config") if isinstance(record, Mapping) else None
    if not isinstance(config, Mapping) or "levels" not in config:
        return record
    return {**record, "config": {**config, "levels": levels}}


def group_runs(loaded: Iterable[tuple[Path, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Group loaded runs that differ only in their seed, in order of first appearance.

    Args:
        loaded: ``(results.json path, results)`` pairs, e.g. from :func:`scan_runs`.

    Runs are grouped by what they recorded (:func:`_configuration`), not by the text of their
    Hydra overrides, which spells one configuration in many ways.

    Returns:
        One ``{"config", "overrides", "runs"}`` per configuration: ``config`` holds the run's
        experiment, strategy (and its arguments), plugins, tasks, sequence, settings and agent;
        ``overrides`` the Hydra overrides of its first run but ``seed`` (``None`` without
        ``.hydra/``), which name the group; ``runs`` the ``(path, results)`` pairs of the group.

    Raises:
        ValueError: naming the file, if a ``.hydra/overrides.yaml`` is not valid YAML.
    """
    groups: dict[str, dict[str, Any]] = {}
    for path, results in loaded:
        config = _configuration(results)
        key = json.dumps(config, sort_keys=True, default=str)
        group = groups.setdefault(
            key, {"config": config, "overrides": _overrides(path.parent), "runs": []}
        )
        group["runs"].append((path, results))
    return list(groups.values())


def aggregate_groups(run_dirs: Iterable[str | Path]) -> list[dict[str, Any]]:
    """:func:`aggregate` per configuration: runs that differ only in their seed form a group.

    A group's configuration is the run's experiment, strategy (and its arguments), plugins,
    tasks, settings and agent (:func:`group_runs`); its label is its first run's Hydra overrides
    other than ``seed``, or ``experiment / strategy``.
    """
    groups = group_runs(_load_all(run_dirs))
    labels = []
    for group in groups:
        results = group["runs"][0][1]
        default = f"{results.get('experiment', 'run')} / {results['strategy']}"
        labels.append(" ".join(group["overrides"] or []) or default)
    return [
        _aggregate(group["runs"], label if labels.count(label) == 1 else f"{label} #{k}")
        for k, (label, group) in enumerate(zip(labels, groups))
    ]


# ---------------------------------------------------------------------------------- sweeps
#: which way each metric improves: "higher", "lower" (forgetting) or None (no better direction:
#: fewer reasoning steps is cheaper but not better unless the accuracy holds)
METRIC_BETTER: dict[str, str | None] = {
    "avg_accuracy": "higher",
    "avg_forgetting": "lower",
    "bwt": "higher",
    "fwt": "higher",
    "avg_reasoning_steps": None,
    "ft": "higher",
}
DEFAULT_REPS = 2000
#: above this many groups, probability of improvement compares only groups differing in strategy
ALL_PAIRS_UP_TO = 8
_STRATEGY_KEYS = ("strategy", "strategy_config", "plugins")
_NAME_VALUE_CHARS = 40


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``{"a.b": leaf}``; a list of records with distinct names (the plugins)
    as a dict by name (``plugins.curriculum.class``); other lists and scalars are leaves."""
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        names = [v.get("name") for v in value]
        if all(isinstance(n, str) for n in names) and len(set(names)) == len(names):
            value = {n: {k: x for k, x in v.items() if k != "name"} for n, v in zip(names, value)}
    if not isinstance(value, Mapping) or not value:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key in sorted(value, key=str):
        flat.update(_flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _show(value: Any) -> str:
    """A config value for a group name: as typed when short, else cut with a hash of the rest."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if len(text) <= _NAME_VALUE_CHARS:
        return text
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    return f"{text[: _NAME_VALUE_CHARS - 12]}…#{digest}"


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def group_names(groups: Sequence[Mapping[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """A readable, unique, deterministic name per :func:`group_runs` group, and what it says.

    The name starts with ``strategy=<strategy>`` (as the run recorded it), then the overrides
    not shared by every group, sorted, comma-separated (``strategy=replay,run.batch_size=64``). When that does not tell the groups
    apart, every configuration key whose value differs between groups is added
    (``settings.batch_size=64``); values longer than 40 characters are cut and tagged with a
    hash; a name still shared gets ``#<index>``. Returns ``(name, {key: value})`` per group.
    """
    overrides = [list(g["overrides"] or []) for g in groups]
    shared = set.intersection(*map(set, overrides)) if overrides else set()
    parts: list[dict[str, Any]] = []
    for group, own in zip(groups, overrides):
        # the strategy always, as the run recorded it — an override every group shares
        # (`strategy=replay` in each job) left a group with no name at all
        part = {"strategy": group["config"]["strategy"]}
        distinct = [o for o in own if o not in shared and _override_key(o) != "strategy"]
        for override in sorted(distinct):
            key, _, value = override.partition("=")
            part[key] = value
        parts.append(part)
    if len({json.dumps(p, sort_keys=True) for p in parts}) < len(parts):
        flat = [_flatten(g["config"]) for g in groups]
        keys = sorted({k for f in flat for k in f}, key=_natural_text)
        missing = object()
        for key in keys:
            if len({json.dumps(f.get(key, missing), default=repr) for f in flat}) > 1:
                for part, config in zip(parts, flat):
                    if key in config and key not in part:
                        part[key] = config[key]
    names = [",".join(f"{k}={_show(v)}" for k, v in part.items()) for part in parts]
    return [
        (name if names.count(name) == 1 else f"{name}#{k}", part)
        for k, (name, part) in enumerate(zip(names, parts))
    ]


class _NumpySeed:
    """Seed numpy's global RNG for one block, then restore its state.

    rliable 1.2 draws its bootstrap indices with ``np.random.choice`` (its ``random_state``
    argument reaches arch but not those draws), so seeding the global RNG is what makes its
    intervals reproducible; restoring the state leaves the caller's random stream untouched.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __enter__(self) -> None:
        self.state = np.random.get_state()
        np.random.seed(self.seed)

    def __exit__(self, *exc: object) -> None:
        np.random.set_state(self.state)


def _check_bootstrap(reps: int, seed: int) -> None:
    for name, value, low in (("reps", reps, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def _mean_and_iqm(scores: np.ndarray) -> np.ndarray:
    from rliable import metrics as rly_metrics

    return np.array([rly_metrics.aggregate_mean(scores), rly_metrics.aggregate_iqm(scores)])


def _mean_twice(scores: np.ndarray) -> np.ndarray:
    # Below 4 runs the IQM trims nothing (scipy cuts int(0.25 n) per end): it is the mean of every
    # resample, and scipy's trim_mean costs ~7x the mean per bootstrap replication.
    from rliable import metrics as rly_metrics

    mean = rly_metrics.aggregate_mean(scores)
    return np.array([mean, mean])


def _defined(values: Iterable[float | None]) -> np.ndarray:
    """The defined values as a ``[runs, 1]`` score array (one "task": the metric of the run)."""
    kept = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return np.asarray(kept, dtype=np.float64).reshape(-1, 1)


def bootstrap_stats(
    values: Sequence[float | None], *, reps: int = DEFAULT_REPS, seed: int = 0
) -> dict[str, Any]:
    """Mean and interquartile mean (IQM) of one metric over runs, with 95% bootstrap intervals.

    Follows Agarwal et al. 2021, "Deep Reinforcement Learning at the Edge of the Statistical
    Precipice" (NeurIPS): percentile intervals from rliable's stratified bootstrap
    (``rliable.library.get_interval_estimates`` with ``rliable.metrics.aggregate_mean`` and
    ``aggregate_iqm``) over the runs' scores, shaped ``[runs, 1]``. numpy's global RNG is seeded
    with ``seed`` for the call and restored after it, so equal inputs give equal intervals.

    Args:
        values: the metric of each run (e.g. seeds of one group); ``None``/NaN (undefined for
            that run) are left out and counted, never read as 0.
        reps: bootstrap replications (int >= 1).
        seed: seed of the bootstrap draws (int >= 0).

    Returns:
        ``{"mean", "ci95", "iqm", "iqm_ci95", "n_defined", "n_undefined", "values"}``: ``mean``
        equals ``numpy.mean`` of the defined values; ``ci95`` / ``iqm_ci95`` are ``[low, high]``;
        ``values`` lists every run's value (``None`` where undefined). ``mean`` and ``iqm`` are
        ``None`` with no defined value, the intervals with fewer than two.

    Raises:
        ValueError: if ``reps`` or ``seed`` is not an int in range.
    """
    _check_bootstrap(reps, seed)
    listed = [None if v is None or math.isnan(float(v)) else float(v) for v in values]
    scores = _defined(listed)
    n = scores.shape[0]
    stats: dict[str, Any] = {"mean": None, "ci95": None, "iqm": None, "iqm_ci95": None}
    if n >= 2:
        from rliable import library

        with _NumpySeed(seed):
            points, intervals = library.get_interval_estimates(
                {"metric": scores}, _mean_and_iqm if n >= 4 else _mean_twice, reps=reps
            )
        (low_mean, low_iqm), (high_mean, high_iqm) = intervals["metric"]
        stats.update(ci95=[low_mean, high_mean], iqm_ci95=[low_iqm, high_iqm])
        stats.update(mean=points["metric"][0], iqm=points["metric"][1])
    elif n == 1:
        stats.update(mean=scores[0, 0], iqm=scores[0, 0])
    stats.update(n_defined=n, n_undefined=len(listed) - n, values=listed)
    return json_ready(stats)


def improvement_probability(
    x_values: Sequence[float | None],
    y_values: Sequence[float | None],
    *,
    reps: int = DEFAULT_REPS,
    seed: int = 0,
) -> dict[str, Any]:
    """Probability that a run of X scores higher than a run of Y, with its 95% bootstrap interval.

    ``rliable.metrics.probability_of_improvement`` (Agarwal et al. 2021, NeurIPS): the
    Mann-Whitney U statistic over all ``(x, y)`` run pairs divided by their number, ties counting
    one half, so ``P(X > Y) + P(Y > X) = 1`` and ``0.5`` means no difference. The interval is
    rliable's independent stratified bootstrap (each group resampled on its own), with numpy's
    global RNG seeded as in :func:`bootstrap_stats`. Use it on a higher-is-better metric.

    Args:
        x_values, y_values: the metric of each run of X and of Y; ``None``/NaN are left out.
        reps, seed: as in :func:`bootstrap_stats`.

    Returns:
        ``{"p_x_better", "ci95", "n_x", "n_y"}``: ``p_x_better`` is ``None`` when a group has no
        defined value, ``ci95`` (``[low, high]``) when either has fewer than two.
    """
    _check_bootstrap(reps, seed)
    x, y = _defined(x_values), _defined(y_values)
    result: dict[str, Any] = {"p_x_better": None, "ci95": None, "n_x": len(x), "n_y": len(y)}
    if len(x) and len(y):
        from rliable import library
        from rliable import metrics as rly_metrics

        result["p_x_better"] = rly_metrics.probability_of_improvement(x, y)
        if len(x) >= 2 and len(y) >= 2:
            with _NumpySeed(seed):
                _, intervals = library.get_interval_estimates(
                    {"poi": [x, y]}, rly_metrics.probability_of_improvement, reps=reps
                )
            result["ci95"] = intervals["poi"].reshape(2)
    return json_ready(result)


def _differs_only_in_strategy(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    def rest(group: Mapping[str, Any]) -> str:
        config = {k: v for k, v in group["config"].items() if k not in _STRATEGY_KEYS}
        overrides = [
            o for o in group["overrides"] or [] if _override_key(o).split(".")[0] != "strategy"
        ]
        return json.dumps([config, overrides], sort_keys=True, default=str)

    return rest(a) == rest(b)


def _mean_matrix(runs: Sequence[tuple[Path, dict[str, Any]]]) -> list[list[float | None]]:
    """Cell-wise mean accuracy matrix of a group over the runs that measured each cell."""
    size = len(runs[0][1]["sequence"])
    stack = np.stack(
        [as_matrix(r["accuracy_matrix"], "accuracy_matrix", size, str(p)) for p, r in runs]
    )
    counts = np.isfinite(stack).sum(axis=0)
    sums = np.where(np.isfinite(stack), stack, 0.0).sum(axis=0)
    return json_ready(np.where(counts > 0, sums / np.maximum(counts, 1), np.nan))


def _one_run_per_seed(
    runs: list[tuple[Path, dict[str, Any]]], group: str, skipped: list[dict[str, str]]
) -> list[tuple[Path, dict[str, Any]]]:
    """The first run of each seed (in path order); each repeat goes to ``skipped`` with its
    reason. Two runs of one configuration and seed (the same grid point run twice, say under two
    launchers, or with another thread count) are not independent samples: counted twice they
    would narrow every interval."""
    kept: dict[Any, Path] = {}
    out = []
    for path, results in runs:
        seed = results["seed"]
        if seed in kept:
            skipped.append(
                {
                    "path": str(path),
                    "reason": f"seed {seed} repeats {kept[seed]} in group {group}: each seed "
                    "counts once in a group's statistics",
                }
            )
            continue
        kept[seed] = path
        out.append((path, results))
    return out


def check_comparison_block(results: Mapping[str, Any], source: str) -> None:
    """Raise ValueError naming ``source`` unless a curriculum comparison in ``results`` (the
    ``curriculum`` block of ``trmgym.comparison.summarize``) has what a sweep report pools:
    ``name`` (the main curriculum) a string, ``threshold`` a number in (0, 1],
    ``budget_env_steps`` (when there) an int >= 1, ``steps_to_threshold`` ints >= 1 or null and
    ``speedup`` null or ``{"ratio": finite > 0, "lower_bound": bool, "upper_bound": bool}`` (not
    both true; ``upper_bound`` may be missing, as in results written before it was recorded) per
    curriculum named by a string. A run without a comparison passes."""
    block = results.get("curriculum")
    if not isinstance(block, Mapping) or "speedup" not in block:
        return

    def positive_int(value: Any) -> bool:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1

    if not isinstance(block.get("name"), str) or not block["name"].strip():
        raise ValueError(
            f"{source}: curriculum.name must name the main curriculum, got {block.get('name')!r}"
        )
    threshold = block.get("threshold")
    if (
        not isinstance(threshold, numbers.Real)
        or isinstance(threshold, bool)
        or not 0 < threshold <= 1  # NaN fails this too
    ):
        raise ValueError(
            f"{source}: curriculum.threshold must be a number in (0, 1], got {threshold!r}"
        )
    if "budget_env_steps" in block and not positive_int(block["budget_env_steps"]):
        raise ValueError(
            f"{source}: curriculum.budget_env_steps must be an int >= 1, got "
            f"{block['budget_env_steps']!r}"
        )
    reached, speedups = block.get("steps_to_threshold"), block["speedup"]
    if not isinstance(reached, Mapping) or not isinstance(speedups, Mapping):
        raise ValueError(
            f"{source}: curriculum.steps_to_threshold and curriculum.speedup must be mappings "
            "of curriculum names"
        )
    for name in [*reached, *speedups]:
        if not isinstance(name, str) or not name.strip() or "\n" in name:
            raise ValueError(f"{source}: curriculum names must be one-line strings, got {name!r}")
    for name, steps in reached.items():
        if steps is not None and not positive_int(steps):
            raise ValueError(
                f"{source}: curriculum.steps_to_threshold.{name} must be an int >= 1 or null, "
                f"got {steps!r}"
            )
    for name, speedup in speedups.items():
        if speedup is None:
            continue
        ratio = speedup.get("ratio") if isinstance(speedup, Mapping) else None
        bound = speedup.get("lower_bound") if isinstance(speedup, Mapping) else None
        upper = speedup.get("upper_bound", False) if isinstance(speedup, Mapping) else None
        if (
            not isinstance(ratio, numbers.Real)
            or isinstance(ratio, bool)
            or not math.isfinite(ratio)
            or ratio <= 0
            or not isinstance(bound, bool)
            or not isinstance(upper, bool)
            or (bound and upper)
        ):
            raise ValueError(
                f"{source}: curriculum.speedup.{name} must be null or "
                f'{{"ratio": a finite number > 0, "lower_bound": true|false, "upper_bound": '
                f"true|false}} (not both true), got {speedup!r}"
            )


def _bounded_stats(
    values: Sequence[float | None],
    bounds: Sequence[bool | None],
    reps: int,
    seed: int,
    upper: Sequence[bool | None] | None = None,
) -> dict[str, Any]:
    """:func:`bootstrap_stats` of ``values``, with which of them are lower bounds (``bounds``)
    and which upper bounds (``upper``). Bounds both ways make no pooled value: a mean over a
    lower and an upper bound bounds nothing, so ``mean``, ``iqm`` and their intervals are then
    ``None`` and ``mixed_bounds`` is true (the per-run ``values`` stay)."""
    upper = [None] * len(values) if upper is None else list(upper)
    stats = {
        **bootstrap_stats(values, reps=reps, seed=seed),
        "n_lower_bound": sum(1 for bound in bounds if bound),
        "lower_bound": list(bounds),
        "n_upper_bound": sum(1 for bound in upper if bound),
        "upper_bound": upper,
    }
    stats["mixed_bounds"] = bool(stats["n_lower_bound"] and stats["n_upper_bound"])
    if stats["mixed_bounds"]:
        stats.update(mean=None, ci95=None, iqm=None, iqm_ci95=None)
    return stats


def comparison_report(
    runs: Sequence[Mapping[str, Any]], *, reps: int = DEFAULT_REPS, seed: int = 0
) -> dict[str, Any] | None:
    """A group's curriculum comparisons pooled over its seeds (``None`` when no run has one).

    Per compared curriculum, the speedup (its env steps to the threshold / the main
    curriculum's: the "uniform / ramp" of a curriculum paper) and, per curriculum, the env steps
    to the threshold: mean and IQM with 95% stratified-bootstrap intervals
    (:func:`bootstrap_stats`, Agarwal et al. 2021). A curriculum that never reached the
    threshold within its budget needed more than the budget: its steps count at the budget and
    a speedup over it at budget / the main curriculum's steps, both lower bounds, marked in
    ``lower_bound`` and counted in ``n_lower_bound`` (a mean with any is a lower bound too).
    Where only the main curriculum never reached it, the speedup over it is an upper bound (the
    other's steps / the main's budget), marked in ``upper_bound`` and counted in
    ``n_upper_bound``: a seed on which the main curriculum failed is never dropped, which would
    favour it. Bounds both ways in one pool give no pooled value (``mixed_bounds``). Where
    neither reached it, the speedup is undefined (left out, counted in ``n_undefined``); so are
    steps never reached in a run that does not record its budget.
    :func:`group_runs` groups runs by main curriculum, threshold and compared curricula, so
    every run of a group has a comparison of the same kind.

    Args:
        runs: the group's results (checked by :func:`check_comparison_block`), one per seed.
        reps, seed: as in :func:`bootstrap_stats`.

    Returns:
        ``{"main", "threshold", "speedup": {name: stats}, "steps_to_threshold": {name: stats}}``,
        stats being :func:`bootstrap_stats`'s plus ``n_lower_bound`` and ``lower_bound`` (per
        run: whether its value is a bound, ``None`` where undefined), ``n_upper_bound`` and
        ``upper_bound`` likewise, and ``mixed_bounds``.
    """
    blocks = [r.get("curriculum") for r in runs]
    blocks = [b if isinstance(b, Mapping) and "speedup" in b else None for b in blocks]
    present = [b for b in blocks if b is not None]
    if not present:
        return None
    compared = list(dict.fromkeys(n for b in present for n in b["speedup"]))
    everyone = list(dict.fromkeys(n for b in present for n in b["steps_to_threshold"]))
    speedups = {}
    for name in compared:
        entries = [None if b is None else b["speedup"].get(name) for b in blocks]
        speedups[name] = _bounded_stats(
            [None if e is None else float(e["ratio"]) for e in entries],
            [None if e is None else bool(e["lower_bound"]) for e in entries],
            reps,
            seed,
            [None if e is None else bool(e.get("upper_bound", False)) for e in entries],
        )
    steps = {}
    for name in everyone:
        values, bounds = [], []
        for block in blocks:
            reached = None if block is None else block["steps_to_threshold"].get(name)
            budget = None if block is None else block.get("budget_env_steps")
            never = block is not None and reached is None and budget is not None
            values.append(budget if never else reached)
            bounds.append(never if values[-1] is not None else None)
        steps[name] = _bounded_stats(values, bounds, reps, seed)
    first = present[0]
    return json_ready(
        {
            "main": first["name"],
            "threshold": first["threshold"],
            "speedup": speedups,
            "steps_to_threshold": steps,
        }
    )


def sweep_report(
    paths: Iterable[str | Path], *, reps: int = DEFAULT_REPS, seed: int = 0
) -> dict[str, Any]:
    """Find every run below ``paths``, group them by configuration and compare the groups.

    Runs differing only in their seed form a group (:func:`group_runs`, named by
    :func:`group_names`). Per group and metric (``METRIC_NAMES`` and any other metric the runs
    record): mean and IQM with 95% stratified-bootstrap intervals (:func:`bootstrap_stats`,
    Agarwal et al. 2021). Probability of improvement on ``avg_accuracy`` (higher is better)
    for every pair of groups when there are at most 8, else for the pairs differing only in
    strategy (strategy, its arguments, plugins and ``strategy*`` overrides).

    Args:
        paths: folders searched at any depth, or results.json files (:func:`scan_runs`).
        reps: bootstrap replications per interval (int >= 1).
        seed: seed of every bootstrap call (int >= 0): the report is deterministic.

    Returns:
        JSON-ready ``{"groups": {name: {"n_runs", "runs", "seeds", "config", "sequence",
        "accuracy_matrix_mean", "metrics": {metric: {"better", "mean", "ci95", "iqm",
        "iqm_ci95", "n_defined", "n_undefined", "values"}}, "curriculum_comparison" (runs with
        a curriculum comparison only: :func:`comparison_report`)}}, "n_found", "n_read",
        "skipped": [{"path", "reason"}] (unreadable files, and repeats of a seed within a group:
        each seed counts once), "mismatches": [{"path", "metric", "stored", "recomputed"}: a
        pooled run's stored metric that differs from the one :func:`check_metrics` recomputes
        from its accuracy matrix (an edited or corrupt results.json; its stored value is what is
        pooled)], "unfinished": [run directories with a checkpoint but no
        results.json, in no group: the same command resumes them], "failed": [{"path",
        "message"}: job directories with a cli.log but no results.json nor checkpoint (a job
        that failed when it started, or one starting now), with the log's last line],
        "diverged": [{"path",
        "message"}: runs whose training diverged (diverged.json), in no group],
        "probability_of_improvement": {"metric", "better",
        "definition", "pairs": [{"x", "y", "p_x_better", "ci95", "n_x", "n_y"}]}, "bootstrap"}``,
        no NaN anywhere (undefined is ``null``). ``config`` holds what tells the group apart,
        ``values`` one entry per run in the order of ``runs``.

    Raises:
        ValueError: if ``reps`` or ``seed`` is out of range.
    """
    _check_bootstrap(reps, seed)
    unfinished: list[Path] = []
    loaded, skipped, n_found = scan_runs(paths, unfinished)
    stopped = [(path, read_diverged(path)) for path in unfinished]
    has_checkpoint = {path: (path / "checkpoints" / "last.pt").is_file() for path in unfinished}
    unreadable = len(skipped)
    groups = group_runs(loaded)
    named = sorted(zip(group_names(groups), groups), key=lambda item: _natural_text(item[0][0]))
    report_groups: dict[str, Any] = {}
    mismatches: list[dict[str, Any]] = []
    for (name, distinct), group in named:
        runs = _one_run_per_seed(group["runs"], name, skipped)
        group["runs"] = runs
        for path, results in runs:  # what `trmgym report <run>` checks, for every pooled run
            rows, _ = check_metrics(results)
            mismatches += [
                {
                    "path": str(path.parent),
                    **{k: row[k] for k in ("metric", "stored", "recomputed")},
                }
                for row in rows
                if row["mismatch"]
            ]
        metric_names = list(METRIC_NAMES)
        for _, results in runs:
            metric_names += sorted(set(results["metrics"]) - set(metric_names))
        report_groups[name] = {
            "n_runs": len(runs),
            "runs": [str(path.parent) for path, _ in runs],
            "seeds": [results["seed"] for _, results in runs],
            "config": distinct,
            "sequence": group["config"]["sequence"],
            "accuracy_matrix_mean": _mean_matrix(runs),
            "metrics": {
                metric: {
                    "better": METRIC_BETTER.get(metric),
                    **bootstrap_stats([_metric(r, metric) for _, r in runs], reps=reps, seed=seed),
                }
                for metric in metric_names
            },
        }
        compared = comparison_report([r for _, r in runs], reps=reps, seed=seed)
        if compared is not None:
            report_groups[name]["curriculum_comparison"] = compared
    pairs = []
    for i, ((x_name, _), x_group) in enumerate(named):
        for (y_name, _), y_group in named[i + 1 :]:
            if len(named) > ALL_PAIRS_UP_TO and not _differs_only_in_strategy(x_group, y_group):
                continue
            x_values, y_values = (
                report_groups[n]["metrics"]["avg_accuracy"]["values"] for n in (x_name, y_name)
            )
            comparison = improvement_probability(x_values, y_values, reps=reps, seed=seed)
            pairs.append({"x": x_name, "y": y_name, **comparison})
    return json_ready(
        {
            "groups": report_groups,
            "n_found": n_found,
            "n_read": len(loaded),
            "n_repeats": len(skipped) - unreadable,
            "skipped": skipped,
            "mismatches": mismatches,
            "unfinished": [
                str(path) for path, why in stopped if why is None and has_checkpoint[path]
            ],
            "failed": [
                {"path": str(path), "message": _last_line(path / "cli.log")}
                for path, why in stopped
                if why is None and not has_checkpoint[path]
            ],
            "diverged": [
                {"path": str(path), "message": why["message"]}
                for path, why in stopped
                if why is not None
            ],
            "probability_of_improvement": {
                "metric": "avg_accuracy",
                "better": "higher",
                "definition": "p_x_better = P(a run of x has a higher avg_accuracy than a run of y), "
                "ties counting 1/2; > 0.5 favours x, < 0.5 favours y",
                "pairs": pairs,
            },
            "bootstrap": {
                "method": "rliable stratified bootstrap, percentile intervals (Agarwal et al. 2021)",
                "confidence": 0.95,
                "reps": reps,
                "seed": seed,
            },
        }
    )


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
    "budget_scale",
    "eval_every",
    "eval_episodes",
    "batch_size",
    "max_reasoning_steps",
    "task_labels",
    "canvas",
)


def task_budget(settings: Mapping[str, Any], task: Mapping[str, Any]) -> int:
    """The optimizer steps a task of a results.json trained for: its ``train_steps`` (else
    ``settings.train_steps``) times ``settings.budget_scale``, rounded, at least 1 — what
    :class:`trmgym.experiment.ContinualRun` runs."""
    budget = task.get("train_steps") or settings["train_steps"]
    return max(1, round(budget * settings.get("budget_scale", 1)))


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

    Chunks are ``settings.eval_every`` steps, the last one cut at the task's budget (scaled by
    ``settings.budget_scale``, :func:`task_budget`), so the last interval may be shorter.
    ``None`` (equal spacing) when the results do not record budgets; a warning when they do but
    the curves do not fit them.
    """
    settings, tasks = results.get("settings") or {}, results.get("tasks") or []
    every = settings.get("eval_every")
    if not every or len(tasks) != len(lengths) or not settings.get("train_steps"):
        return None
    times = []
    for j, (task, length) in enumerate(zip(tasks, lengths)):
        budget = task_budget(settings, task)
        ends = list(range(every, budget, every)) + [budget]
        if len(ends) + 1 != length:
            log.warning(
                "forward transfer: task %d's curve has %d points, its budget of %d steps in "
                "chunks of %d gives %d; its samples are spaced equally",
                j,
                length,
                budget,
                every,
                len(ends) + 1,
            )
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
def _natural_text(text: str) -> list[Any]:
    # Hydra numbers multirun jobs 0, 1, ..., 10: sort them as numbers, not as text.
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def _natural(path: Path) -> list[Any]:
    return _natural_text(str(path))


def _walk_runs(
    root: Path, errors: list[dict[str, str]], unfinished: list[Path] | None = None
) -> list[Path]:
    """Folders holding results.json at ``root`` or any depth below; unreadable folders ->
    ``errors``; folders with a checkpoint (``checkpoints/last.pt``), a ``diverged.json`` or a
    ``cli.log`` but no results.json — runs that have not finished — -> ``unfinished``."""

    def unreadable(error: OSError) -> None:
        errors.append({"path": str(error.filename), "reason": f"cannot list ({error.strerror})"})

    found = []
    for folder, subfolders, files in os.walk(root, onerror=unreadable):
        if RESULTS_FILE in files:
            found.append(Path(folder))
            subfolders.clear()  # a run's own checkpoints/, tb/, plots/, .hydra/ hold no runs
        elif "fewshot.json" in files:  # a few-shot run: `trmgym report` pools those apart
            subfolders.clear()
        elif (
            DIVERGED_FILE in files
            or "cli.log" in files  # a job that failed before its first checkpoint leaves its log
            or (
                "checkpoints" in subfolders and (Path(folder) / "checkpoints" / "last.pt").is_file()
            )
        ):
            if unfinished is not None:
                unfinished.append(Path(folder))
            subfolders.clear()  # its compare/<name>/ runs are part of it, not runs of their own
    if unfinished is not None:
        unfinished.sort(key=_natural)
    return sorted(found, key=_natural)


def find_runs(root: str | Path) -> list[Path]:
    """Run directories (folders holding results.json) at ``root`` or at any depth below, sorted.

    A Hydra multirun puts runs at ``runs/<experiment>/multirun/<timestamp>/<job>/``; all are found.
    The search does not enter a run directory (its ``checkpoints/``, ``tb/``, ...) nor follow
    symbolic links to folders. Job numbers sort as numbers (``2`` before ``10``).
    """
    return _walk_runs(Path(root), [])


def _reason(error: ValueError, path: Path) -> str:
    """An error message without its leading ``"<path>: "`` (the path is said beside it)."""
    text, prefix = str(error), f"{path}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def scan_runs(
    paths: Iterable[str | Path], unfinished: list[Path] | None = None
) -> tuple[list[tuple[Path, dict[str, Any]]], list[dict[str, str]], int]:
    """Find and read every run below ``paths``, skipping (not stopping at) broken ones.

    Args:
        paths: folders searched at any depth (:func:`find_runs`), or results.json files.

    Returns:
        ``(loaded, skipped, n_found)``: ``loaded`` holds ``(results.json path, results)`` of every
        readable run, each once, in path order; ``skipped`` one ``{"path", "reason"}`` per
        results.json that is unreadable, not JSON, fails validation (a missing key, a matrix that
        is not T x T, a metric that is not a finite number or null) or whose
        ``.hydra/overrides.yaml`` is not YAML, and per folder that could not be listed;
        ``n_found`` counts the results.json files found (read or skipped). ``unfinished``,
        when given, gets the run directories below ``paths`` that hold a checkpoint or a
        ``diverged.json`` but no results.json (interrupted, still running or diverged: a
        group's seed may be missing).
    """
    run_dirs: list[Path] = []
    skipped: list[dict[str, str]] = []
    for path in map(Path, paths):
        found = [path.parent] if path.is_file() else _walk_runs(path, skipped, unfinished)
        run_dirs += [d for d in found if d not in run_dirs]
    loaded = []
    for run_dir in run_dirs:
        path = run_dir / RESULTS_FILE
        try:
            results = load_results(run_dir)
            check_metric_values(results, str(path))
            check_comparison_block(results, str(path))
            _, unrecomputable = check_metrics(results)
            if unrecomputable is not None:  # what the single-run report says it cannot check
                raise ValueError(f"its metrics cannot be recomputed: {unrecomputable}")
            _overrides(run_dir)
        except ValueError as error:
            skipped.append({"path": str(path), "reason": _reason(error, path)})
        else:
            loaded.append((path, results))
    return loaded, skipped, len(run_dirs)
