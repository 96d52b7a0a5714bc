"""``trmgym run`` of a few-shot experiment: a ``fewshot`` node and no ``sequence``.

Builds the protocol (:class:`~trmgym.meta.settings.FewShotConfig`) and the meta-training
settings (:class:`~trmgym.meta.settings.MetaConfig`) from the composed config, the TRM of the
``agent`` node on the ``fewshot.max_size`` square canvas, runs :func:`trmgym.meta.fewshot.run_fewshot`
and writes TensorBoard scalars (``tb/``), ``plots/fewshot.png`` and ``report.html``.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from trmgym.atomic import surfaced_interrupts

__all__ = ["check_fewshot", "fewshot_settings", "run_fewshot_job"]


def fewshot_settings(node: Any) -> Any:
    """The ``fewshot`` node as a :class:`FewShotConfig`; an unknown key is named with the allowed
    ones (``ValueError``)."""
    from trmgym.meta.settings import FewShotConfig

    values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise ValueError(f"fewshot must be a mapping of settings, got {values!r}")
    allowed = sorted(f.name for f in dataclasses.fields(FewShotConfig))
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ValueError(f"fewshot.{unknown[0]} is not a few-shot setting; allowed: {allowed}")
    return FewShotConfig(**values)


def check_fewshot(cfg: Any) -> tuple[Any, Any, Any]:
    """``(fewshot, meta, agent)`` settings of a few-shot run, checked before anything runs.

    Raises:
        ValueError: a bad setting (named), an agent other than the TRM, or a memory bank the
            ``memory`` method cannot use.
    """
    from trmgym.agents.trm_agent import TRMAgentConfig

    fewshot = fewshot_settings(cfg.fewshot)
    meta = OmegaConf.to_object(cfg.meta)
    agent = OmegaConf.to_object(cfg.agent)
    if not isinstance(agent, TRMAgentConfig):
        raise ValueError(
            "a few-shot experiment meta-trains the TRM network: use agent=trm, "
            f"got agent={getattr(agent, 'name', type(agent).__name__)}"
        )
    tasks = len(fewshot.families) * fewshot.train_tasks_per_family
    if set(fewshot.methods) - {"scratch"} and meta.meta_batch > tasks:  # drawn without replacement
        raise ValueError(
            f"meta.meta_batch must be <= the meta-training tasks, {tasks} here "
            f"({len(fewshot.families)} fewshot.families x fewshot.train_tasks_per_family "
            f"{fewshot.train_tasks_per_family}), got {meta.meta_batch}"
        )
    if agent.memory is not None and "memory" not in fewshot.methods:
        raise ValueError(
            "agent.memory configures the bank of the `memory` few-shot method, which "
            f"fewshot.methods={fewshot.methods} does not list: add memory, or use agent/memory=none"
        )
    if "memory" in fewshot.methods:
        import torch

        from trmgym.agents.trm_agent import model_config
        from trmgym.meta.fewshot import check_memory, memory_config

        hidden = model_config(agent, (fewshot.max_size,) * 2, 0, torch.device("cpu")).hidden_size
        check_memory(fewshot, meta, memory_config(agent), hidden)
    if meta.backend == "learn2learn":
        from trmgym.meta.maml import check_backend

        try:
            check_backend(meta.backend)
        except ImportError as error:
            raise ValueError(str(error)) from None
    return fewshot, meta, agent


def build_model(config: Any, device: Any) -> Any:
    """A TRM of ``config`` on ``device`` (module level, so worker processes can unpickle it)."""
    from trmgym.agents.trm import TRM

    return TRM(config).to(device)


@surfaced_interrupts()  # Ctrl-C in a library's clean-up: still an interrupt
def run_fewshot_job(cfg: Any, run_dir: Path, say: Any = print) -> dict[str, Any]:
    """Run the few-shot experiment of ``cfg`` in ``run_dir``; returns the ``fewshot.json`` doc."""
    import torch
    from torch.utils.tensorboard import SummaryWriter

    from trmgym.agents.trm_agent import model_config, resolve_device
    from trmgym.meta.fewshot import run_fewshot
    from trmgym.report import write_fewshot_report

    fewshot, meta, agent = check_fewshot(cfg)
    device = resolve_device(cfg.device)
    canvas = (fewshot.max_size, fewshot.max_size)
    config = model_config(agent, canvas, 0, device)

    make_model = functools.partial(build_model, config, device)  # picklable, for the workers
    say(f"run directory: {run_dir}")
    say(
        f"few-shot transfer: methods {fewshot.methods}, meta-training on {fewshot.families} "
        f"({fewshot.train_tasks_per_family} tasks each), {meta.meta_steps} outer steps; "
        f"device {device}"
    )
    writer = SummaryWriter(log_dir=str(run_dir / "tb"))
    try:
        doc = run_fewshot(
            fewshot,
            meta,
            agent,
            run_dir,
            seed=int(cfg.seed),
            make_model=make_model,
            say=say,
            scalars=lambda tag, value, step: writer.add_scalar(tag, value, step),
        )
    finally:
        writer.close()
    report = write_fewshot_report(run_dir)
    say(f"results: {run_dir / 'fewshot.json'}")
    say(f"report: {report}")
    torch.set_grad_enabled(True)
    return doc
