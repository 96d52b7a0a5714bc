"""Compare curricula on one experiment: env steps until the held-out accuracy reaches a threshold.

``curriculum_comparison: {against: [uniform], threshold: 0.8}`` in a single-task run with a
``curriculum`` runs the same configuration under each curriculum of ``against`` (same seed, model,
budget, levels) in ``<run dir>/compare/<name>/``, each a complete run directory of its own
(results.json, checkpoints, cli.log: an interrupted comparison resumes). They train beside the
main run in spawned processes (``curriculum_comparison.workers``, :func:`run_compared`), or
before it, one after the other (``workers=1``). The main run's results.json then gets, in its
``curriculum`` block::

    "steps_to_threshold": {"ramp": 38400, "uniform": null},   # env steps, null: never reached
    "threshold": 0.8,
    "budget_env_steps": 96000,            # the main run's budget (optimizer steps * batch)
    "speedup": {"uniform": {"ratio": 2.5, "lower_bound": true, "upper_bound": false}},
    "level": {"blanks": 14},              # the evaluated level: the task's own options
    "curves": {"ramp": {"env_steps": [...], "accuracy": [...]}, ...},
    "runs": {"uniform": "compare/uniform"}

The accuracy is the exact-solve rate on the task's held-out puzzles, evaluated every
``run.eval_every`` optimizer steps (the run's learning curve); one optimizer step is
``run.batch_size`` env steps. Steps to threshold are the env steps at the first evaluation at or
above the threshold — a resolution of ``eval_every * batch_size`` env steps.

``speedup[name]`` is ``steps_to_threshold[name] / steps_to_threshold[main]``: how many times as
many env steps ``name`` needed as the main curriculum (the "uniform / ramp" of a curriculum
paper). When ``name`` never reached the threshold it needed more than its budget, so the ratio is
``name``'s budget / ``steps_to_threshold[main]`` with ``lower_bound: true`` (the true speedup is
larger); when the main curriculum never reached it but ``name`` did, the main curriculum needed
more than its budget, so the ratio is ``steps_to_threshold[name]`` / the main's budget with
``upper_bound: true`` (the true speedup is smaller: the main curriculum was the slower one, or no
faster); when neither reached it, the speedup is undefined: ``null``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from trmgym.checks import positive_int

log = logging.getLogger(__name__)

__all__ = [
    "COMPARE_DIR",
    "budget_env_steps",
    "check_comparison",
    "comparison_workers",
    "run_compared",
    "describe",
    "curve",
    "bound_sign",
    "speedup",
    "steps_to_threshold",
    "summarize",
]

#: the folder of the compared runs inside the main run directory
COMPARE_DIR = "compare"


def _budget(results: dict[str, Any]) -> int:
    """The single task's budget in optimizer steps."""
    from trmgym.results import task_budget

    return task_budget(results["settings"], results["tasks"][0])


def budget_env_steps(results: dict[str, Any]) -> int:
    """The single task's training budget in env steps (optimizer steps * ``run.batch_size``)."""
    return _budget(results) * int(results["settings"]["batch_size"])


def curve(results: dict[str, Any]) -> dict[str, list[float]]:
    """The single task's learning curve: ``{"env_steps": [...], "accuracy": [...]}``.

    Evaluation ``k`` (0-based) follows optimizer step ``min((k + 1) * eval_every, budget)``.
    """
    settings = results["settings"]
    budget = _budget(results)
    accuracy = [float(a) for a in results["curves"][0]]
    steps = [min((k + 1) * settings["eval_every"], budget) for k in range(len(accuracy))]
    return {"env_steps": [s * settings["batch_size"] for s in steps], "accuracy": accuracy}


def steps_to_threshold(results: dict[str, Any], threshold: float) -> int | None:
    """Env steps until the held-out accuracy first reached ``threshold``; ``None``: never."""
    points = curve(results)
    for env_steps, accuracy in zip(points["env_steps"], points["accuracy"]):
        if accuracy >= threshold:
            return int(env_steps)
    return None


def speedup(
    main: int | None, other: int | None, budget: int, main_budget: int | None = None
) -> dict[str, Any] | None:
    """``other / main`` env steps to threshold: ``{"ratio", "lower_bound", "upper_bound"}``.

    Args:
        main: env steps the main curriculum needed (``None``: never reached).
        other: env steps the compared curriculum needed (``None``: never reached).
        budget: the compared curriculum's budget in env steps (its bound when it never reached).
        main_budget: the main curriculum's budget (its bound when it never reached); default
            ``budget``.

    Returns:
        ``None`` when neither reached the threshold (no ratio is defined). ``lower_bound`` true
        when only ``other`` never did (it needed more than ``budget``, so the speedup is at least
        ``budget / main``); ``upper_bound`` true when only ``main`` never did (it needed more
        than ``main_budget``, so the speedup is at most ``other / main_budget``).

    Raises:
        ValueError: steps that are not positive, or beyond their budget.
    """
    main_budget = budget if main_budget is None else main_budget
    for name, value in (("budget", budget), ("main_budget", main_budget)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"speedup: {name} must be a positive int of env steps, got {value!r}")
    for name, value, bound in (("main", main, main_budget), ("other", other, budget)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"speedup: {name} must be an int of env steps or None, got {value!r}")
        if value is not None and not 0 < value <= bound:
            raise ValueError(
                f"speedup: {name} must be in 1..{bound} env steps or None, got {value}"
            )
    if main is None and other is None:
        return None
    if main is None:
        return {"ratio": other / main_budget, "lower_bound": False, "upper_bound": True}
    if other is None:
        return {"ratio": budget / main, "lower_bound": True, "upper_bound": False}
    return {"ratio": other / main, "lower_bound": False, "upper_bound": False}


def describe(block: dict[str, Any]) -> str:
    """One line for the log from :func:`summarize`'s entries, e.g. ``ramp 86,400 env steps to
    exact >= 0.8; uniform never in 128,000 (ramp >= 1.48x as fast)``."""
    reached, speedups = block["steps_to_threshold"], block["speedup"]
    names = list(reached)
    main = names[0]

    def steps(name: str) -> str:
        value = reached[name]
        return f"never in {block['budget_env_steps']:,}" if value is None else f"{value:,}"

    parts = [f"{main} {steps(main)} env steps to exact >= {block['threshold']:g}"]
    for name in names[1:]:
        entry = speedups.get(name)
        if entry is None:
            parts.append(f"{name} {steps(name)}")
            continue
        bound = bound_sign(entry, ">= ", "<= ")
        parts.append(f"{name} {steps(name)} ({main} {bound}{entry['ratio']:.2f}x as fast)")
    return "; ".join(parts)


def bound_sign(entry: Any, lower: str = "≥ ", upper: str = "≤ ") -> str:
    """``lower`` before a speedup that is a lower bound, ``upper`` before an upper bound (a
    results.json written before upper bounds were recorded has none), else ``""``."""
    if entry.get("lower_bound"):
        return lower
    return upper if entry.get("upper_bound") else ""


def check_comparison(cfg: DictConfig) -> tuple[list[str], float]:
    """``(against, threshold)`` of ``cfg.curriculum_comparison``, checked.

    Raises:
        ValueError: a sequence run, no ``curriculum``, a threshold outside (0, 1], an empty or
            repeated ``against``, the main curriculum listed in it, or ``workers`` not an int
            >= 1.
    """
    from trmgym.config import CurriculumComparison

    node = cfg.curriculum_comparison
    if not isinstance(node, DictConfig | dict):
        raise ValueError(
            "curriculum_comparison must be null or a mapping {against: [names], threshold: x}, "
            f"got {node!r}"
        )
    allowed = list(CurriculumComparison.__dataclass_fields__)
    unknown = sorted(set(node) - set(allowed))
    if unknown:
        raise ValueError(
            f"curriculum_comparison.{unknown[0]}: no such key; allowed keys: {allowed}"
        )
    raw = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    if "against" in raw and not isinstance(raw["against"], list):
        raise ValueError(
            "curriculum_comparison.against must be a list of configs/curriculum names (e.g. "
            f"[uniform, lp, plr]), got {raw['against']!r}"
        )
    if "threshold" in raw and (
        isinstance(raw["threshold"], bool) or not isinstance(raw["threshold"], int | float)
    ):
        raise ValueError(
            f"curriculum_comparison.threshold must be a number in (0, 1], got {raw['threshold']!r}"
        )
    if "workers" in raw:
        positive_int(raw["workers"], "curriculum_comparison.workers")
    node = OmegaConf.merge(OmegaConf.structured(CurriculumComparison), raw)
    if cfg.get("sequence") is not None:
        raise ValueError(
            "curriculum_comparison compares curricula on one task: it needs a single-task run "
            "(sequence: null, e.g. experiment=single_task)"
        )
    if cfg.get("curriculum") is None:
        raise ValueError(
            "curriculum_comparison needs a curriculum to compare (e.g. curriculum=ramp); "
            "curriculum is null"
        )
    threshold = node.threshold
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not (math.isfinite(threshold) and 0 < threshold <= 1)
    ):
        raise ValueError(
            f"curriculum_comparison.threshold must be a number in (0, 1], got {threshold!r}"
        )
    against = [str(name) for name in node.against or []]
    if not against or len(set(against)) != len(against):
        raise ValueError(
            "curriculum_comparison.against must list distinct curricula (configs/curriculum "
            f"names, e.g. [uniform, lp, plr]), got {against}"
        )
    return against, float(threshold)


def arm_config(cfg: DictConfig, name: str, levels: list[dict[str, Any]]) -> DictConfig:
    """``cfg`` with ``curriculum`` replaced by the ``configs/curriculum/<name>`` node (composed
    through Hydra, so a ``--config-dir`` of the user's is searched), over the main curriculum's
    ``levels`` (a staged curriculum gets them as one level per stage, in order; a staged main
    curriculum's stages, flattened, are the others' levels), with the main curriculum's ``seed``
    when it sets one, and no comparison of its own.

    Raises:
        ValueError: no such curriculum (naming the choices), or one that is not over levels
            (``rehearsal``).
    """
    from hydra import compose
    from hydra.errors import MissingConfigException

    try:
        composed = compose(config_name="config", overrides=[f"curriculum={name}"])
    except MissingConfigException as error:
        choices = _choices()
        raise ValueError(
            f"curriculum_comparison.against: no curriculum {name!r}; allowed: {choices} "
            f"({str(error).splitlines()[0]})"
        ) from None
    node = OmegaConf.to_container(composed.curriculum, resolve=True)
    if "levels" in node:
        node["levels"] = [dict(level) for level in levels]
    elif "stages" in node:
        main_stages = OmegaConf.to_container(cfg.curriculum, resolve=True).get("stages")
        node["stages"] = main_stages or [[dict(level)] for level in levels]
    else:
        raise ValueError(
            f"curriculum_comparison.against: {name!r} does not choose among levels (it has "
            "neither levels nor stages), so it cannot be compared on the same levels"
        )
    node["name"] = name  # its label in results.json (build_curriculum), not its class's kind
    main = OmegaConf.to_container(cfg.curriculum, resolve=True)
    if main.get("seed") is not None:
        node["seed"] = main["seed"]
    arm = cfg.copy()
    with open_dict(arm):
        arm.curriculum = node
        arm.curriculum_comparison = None
    return arm


def _choices() -> list[str]:
    from importlib import resources

    folder = resources.files("trmgym.configs") / "curriculum"
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def summarize(
    main: str,
    main_results: dict[str, Any],
    arms: dict[str, dict[str, Any]],
    threshold: float,
    run_dir: Path,
) -> dict[str, Any]:
    """The comparison's entries of the main run's ``curriculum`` block (see the module doc)."""
    everything = {main: main_results, **arms}
    task = main_results["tasks"][0]
    reached = {name: steps_to_threshold(results, threshold) for name, results in everything.items()}
    speedups: dict[str, dict[str, Any] | None] = {}
    for name, results in arms.items():
        budget = budget_env_steps(results)  # the arm's own: its lower bound, its range
        try:
            speedups[name] = speedup(
                reached[main], reached[name], budget, budget_env_steps(main_results)
            )
        except ValueError as error:  # never lose the finished runs over a ratio
            log.warning("curriculum comparison: no speedup for %r: %s", name, error)
            speedups[name] = None
    return {
        "steps_to_threshold": reached,
        "threshold": threshold,
        "budget_env_steps": budget_env_steps(main_results),
        "speedup": speedups,
        "level": {**task.get("kwargs", {}), **task.get("options", {})},
        "curves": {name: curve(results) for name, results in everything.items()},
        "runs": {name: f"{COMPARE_DIR}/{name}" for name in arms},
    }


def comparison_workers(cfg: DictConfig) -> int:
    """``cfg.curriculum_comparison.workers`` (default 2), checked by :func:`check_comparison`."""
    from trmgym.config import CurriculumComparison

    check_comparison(cfg)
    return int(cfg.curriculum_comparison.get("workers", CurriculumComparison.workers))


#: the line format of a compared run's cli.log (Hydra's default job log format)
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"


def run_compared(config: dict[str, Any], run_dir: str, note: str) -> dict[str, Any]:
    """Train one compared curriculum in a worker process; returns its results.

    Args:
        config: the compared run's config (:func:`arm_config`), resolved to plain values (a
            worker has no Hydra context for ``${hydra:...}``).
        run_dir: its directory, ``<main run dir>/compare/<name>``; its log lines go to
            ``cli.log`` there, as a main run's do.
        note: why it has the threads it has (its start-up banner).
    """
    from trmgym import rundir
    from trmgym.config import build_run

    # nothing of it to this worker's stderr (the main run's terminal): a line of hold() waits
    # for the compared run's cli.log, which is written only once the directory is held
    logging.getLogger().addHandler(logging.NullHandler())
    with rundir.hold(run_dir) as folder:  # before a line is logged into it
        return _train_logged(lambda: build_run(OmegaConf.create(config), folder), folder, note)


def run_here(run: Any, note: str) -> dict[str, Any]:
    """Train one compared curriculum's built ``run`` in this process (``workers=1``: one after
    the other, before the main run); returns its results.

    As in a worker (:func:`run_compared`), its lines go to its own ``cli.log`` and its output
    nowhere: the main run's log handlers (its ``cli.log``, the terminal) are set aside while it
    trains, and put back after.
    """
    from trmgym import rundir

    root = logging.getLogger()
    main_handlers = list(root.handlers)
    with rundir.hold(run.run_dir) as folder:
        for handler in main_handlers:
            root.removeHandler(handler)
        try:
            return _train_logged(lambda: run, folder, note)
        finally:
            for handler in main_handlers:
                root.addHandler(handler)


def _train_logged(build: Callable[[], Any], folder: Path, note: str) -> dict[str, Any]:
    """Build (``build()``) and train a compared run in its held directory ``folder``, logging to
    its ``cli.log`` and printing nothing."""
    from trmgym import rundir

    handler = logging.FileHandler(folder / "cli.log")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    refused = rundir.unlocked(folder)
    if refused is not None:  # said again, now that the run's cli.log takes it
        log.warning(rundir.UNLOCKED, folder, refused)
    logging.captureWarnings(True)  # warnings go to this run's cli.log, not the terminal
    # the terminal is the main run's (its live bar): this run's lines, printed or not, are logged
    quiet = open(os.devnull, "w")  # noqa: SIM115 - closed below
    try:
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            arm = build()
            arm.console = False
            arm.threads_note = note
            return arm.run()
    except BaseException:
        log.exception("the compared run %s failed", folder.name)
        raise
    finally:
        logging.captureWarnings(False)
        root.setLevel(level)
        root.removeHandler(handler)
        handler.close()
        quiet.close()
