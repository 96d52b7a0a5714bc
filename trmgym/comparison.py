"""Compare curricula on one experiment: env steps until the held-out accuracy reaches a threshold.

``curriculum_comparison: {against: [uniform], threshold: 0.8}`` in a single-task run with a
``curriculum`` runs, before the main run, the same configuration under each curriculum of
``against`` (same seed, model, budget, levels) in ``<run dir>/compare/<name>/``, each a complete
run directory of its own (results.json, checkpoints: an interrupted comparison resumes). The main
run's results.json then gets, in its ``curriculum`` block::

    "steps_to_threshold": {"ramp": 38400, "uniform": null},   # env steps, null: never reached
    "threshold": 0.8,
    "level": {"blanks": 14},              # the evaluated level: the task's own options
    "curves": {"ramp": {"env_steps": [...], "accuracy": [...]}, ...},
    "runs": {"uniform": "compare/uniform"}

The accuracy is the exact-solve rate on the task's held-out puzzles, evaluated every
``run.eval_every`` optimizer steps (the run's learning curve); one optimizer step is
``run.batch_size`` env steps. Steps to threshold are the env steps at the first evaluation at or
above the threshold — a resolution of ``eval_every * batch_size`` env steps.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

__all__ = ["COMPARE_DIR", "check_comparison", "curve", "steps_to_threshold", "summarize"]

#: the folder of the compared runs inside the main run directory
COMPARE_DIR = "compare"


def curve(results: dict[str, Any]) -> dict[str, list[float]]:
    """The single task's learning curve: ``{"env_steps": [...], "accuracy": [...]}``.

    Evaluation ``k`` (0-based) follows optimizer step ``min((k + 1) * eval_every, budget)``.
    """
    settings = results["settings"]
    task = results["tasks"][0]
    budget = max(
        1,
        round(
            (task.get("train_steps") or settings["train_steps"]) * settings.get("budget_scale", 1)
        ),
    )
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


def check_comparison(cfg: DictConfig) -> tuple[list[str], float]:
    """``(against, threshold)`` of ``cfg.curriculum_comparison``, checked.

    Raises:
        ValueError: a sequence run, no ``curriculum``, a threshold outside (0, 1], an empty or
            repeated ``against``, or the main curriculum listed in it.
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
    return {
        "steps_to_threshold": {
            name: steps_to_threshold(results, threshold) for name, results in everything.items()
        },
        "threshold": threshold,
        "level": {**task.get("kwargs", {}), **task.get("options", {})},
        "curves": {name: curve(results) for name, results in everything.items()},
        "runs": {name: f"{COMPARE_DIR}/{name}" for name in arms},
    }
