"""The ``trmgym`` command: ``trmgym run …`` (a Hydra app) and ``trmgym demo …``.

``trmgym run`` composes ``configs/config.yaml`` with command-line overrides (``env=maze
env.size=11 seed=3``, ``--cfg job``, ``--multirun``), exactly like any Hydra application. The
configs ship inside the package (``trmgym.configs``), so a clone with an editable install and an
installed wheel find them the same way.
"""

from __future__ import annotations

import os
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import trmgym

COMMANDS = ("run", "demo", "report")


def config_dir() -> Path:
    """Absolute path of the packaged Hydra configs."""
    return Path(str(resources.files("trmgym.configs")))


def env_kwargs(env_cfg: Any) -> tuple[str, dict[str, Any]]:
    """Split an ``env`` config node into its Gymnasium id and (training) constructor keywords."""
    from trmgym.config import task_spec

    task = task_spec(env_cfg, "env")
    return task.env_id, {**task.kwargs, **task.train_kwargs}


def run(cfg: Any) -> dict[str, Any]:
    """Build the run described by ``cfg`` (:func:`trmgym.config.build_run`), then train it.

    A bad value is reported as one line naming its key (``trmgym run: run.batch_size must be an
    int >= 1, got 0``) before any training; ``HYDRA_FULL_ERROR=1`` shows the traceback instead.
    """
    from hydra.core.hydra_config import HydraConfig

    from trmgym import checkpoint
    from trmgym.config import build_run

    run_dir = HydraConfig.get().runtime.output_dir
    try:
        job = build_run(cfg, run_dir)
        # a run directory belongs to one configuration: check before .hydra/ is (re)written
        job.check_resumable(checkpoint.load_latest(Path(run_dir) / "checkpoints"))
    except (ValueError, TypeError, RuntimeError) as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        raise SystemExit(f"trmgym run: {error}") from None
    save_hydra_files(cfg, Path(run_dir))
    return job.run()


def save_hydra_files(cfg: Any, run_dir: Path) -> None:
    """Write ``.hydra/{config,hydra,overrides}.yaml`` as Hydra would (``hydra.output_subdir`` is
    null in ``configs/config.yaml`` so that Hydra does not write them before the resume check)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    hydra_cfg = HydraConfig.get()
    folder = run_dir / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    saved = cfg.copy()
    with open_dict(saved):  # resolved, so build_run can rebuild the run from this file alone
        saved.experiment_name = str(cfg.experiment_name)
    OmegaConf.save(saved, folder / "config.yaml")
    OmegaConf.save(OmegaConf.create({"hydra": hydra_cfg}), folder / "hydra.yaml")
    OmegaConf.save(OmegaConf.create(list(hydra_cfg.overrides.task)), folder / "overrides.yaml")


def scripted_step(
    answer: np.ndarray, target: np.ndarray, cells: int, rng: np.random.Generator
) -> np.ndarray:
    """Fix ``cells`` randomly chosen wrong cells of ``answer`` — a stand-in reasoner for the demo."""
    answer = answer.copy()
    wrong = np.argwhere(answer != target)
    if len(wrong):
        pick = wrong[rng.permutation(len(wrong))[:cells]]
        answer[pick[:, 0], pick[:, 1]] = target[pick[:, 0], pick[:, 1]]
    return answer


def demo(cfg: Any) -> dict[str, Any]:
    """Play a few episodes of the configured env with a scripted reasoner and print them."""
    from rich.console import Console

    console = Console(highlight=False)
    env_id, kwargs = env_kwargs(cfg.env)
    kwargs.update(expose_target=True, render_mode="ansi")
    env = gym.make(env_id, **kwargs)
    limit = env.spec.max_episode_steps or trmgym.DEFAULT_MAX_STEPS
    rng = np.random.default_rng(cfg.seed)
    summary = {"env": env_id, "episodes": []}
    for episode in range(int(cfg.demo.episodes)):
        obs, info = env.reset(seed=int(cfg.seed) + episode)
        wrong = int(np.sum(obs["answer"] != info["target"]))
        per_step = int(cfg.demo.cells_per_step) or max(1, -(-wrong // max(limit - 2, 1)))
        console.rule(f"{env_id}  episode {episode}  ({wrong} cells to fix, {per_step} per step)")
        print(env.render(), end="")
        total, done = 0.0, False
        while not done:
            answer = scripted_step(obs["answer"], info["target"], per_step, rng)
            halt = int(np.array_equal(answer, info["target"]))
            obs, reward, terminated, truncated, info = env.step({"answer": answer, "halt": halt})
            total += reward
            done = terminated or truncated
        print(env.render(), end="")
        console.print(
            f"steps={info['steps']} solved={info['solved']} return={total:.3f} "
            f"({'halted' if terminated else 'truncated'})"
        )
        summary["episodes"].append(
            {"steps": info["steps"], "solved": info["solved"], "return": total}
        )
    env.close()
    return summary


def _hydra_app(task: Any) -> None:
    import hydra

    import trmgym.config  # noqa: F401  (stores the schemas the YAML groups build on)

    @hydra.main(config_path=str(config_dir()), config_name="config", version_base="1.3")
    def app(cfg: Any) -> None:
        task(cfg)

    app()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``trmgym`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(
            "usage: trmgym {run,demo,report} [args ...]\n\n"
            "  run    train and evaluate the configured experiment (`trmgym run --cfg job` prints it)\n"
            "  report (re)write plots and report.html of a run, or aggregate seeds below a folder\n"
            "  demo   show the configured env with a scripted reasoner (e.g. `trmgym demo env=maze`)\n"
            f"\ntrmgym {trmgym.__version__}"
        )
        if argv and argv[0] not in ("-h", "--help"):
            raise SystemExit(f"unknown command {argv[0]!r}; allowed: {list(COMMANDS)}")
        return
    command, overrides = argv[0], argv[1:]
    if command == "report":
        from trmgym.report import main as report_main

        raise SystemExit(report_main(overrides))
    sys.argv = [f"trmgym {command}", *overrides]
    _hydra_app(run if command == "run" else demo)


if __name__ == "__main__":
    main()
