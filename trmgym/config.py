"""Structured configs of ``trmgym run``: dataclass schemas in Hydra's ConfigStore, and the build.

The schemas are the single source of defaults. Each YAML group in ``configs/`` starts from a
stored schema (its defaults list names it) and holds only comments and values that differ from the
schema on purpose, so ``trmgym run`` and the Python API build the same objects:

====================  ==========================  ============================================
stored as             schema                      built by
====================  ==========================  ============================================
``base_config``       :class:`TrmgymConfig`       :func:`build_run` -> ``ContinualRun``
``agent/base_trm``    :class:`TRMAgentConfig`     ``OmegaConf.to_object``
``agent/base_sb3_*``  ``SB3PPOConfig``, ...        ``OmegaConf.to_object`` (SB3 PPO, DQN,
                      (``baseline_configs``)      MaskablePPO; ``agent/base_random``: random)
``agent/memory/       :class:`MemoryConfig`       (``agent.memory``, built with the agent)
base_bank``
``strategy/base_*``   :class:`NaiveConfig`, ...   ``make_strategy``: its ``_target_`` class,
                                                  completed with the run-time arguments
(root ``run``)        :class:`RunSettings`        ``OmegaConf.to_object``
(root ``plugins``)    ``_target_`` nodes          ``hydra.utils.instantiate``
====================  ==========================  ============================================

Typed fields make Hydra refuse a misspelt key (``run.batch_sise=8``) or a value of the wrong type
(``seed=abc``) while composing, naming the key; range checks live in the dataclasses'
``__post_init__`` (and the strategies' constructors) and run in :func:`build_run`, before any
training. ``env`` and ``sequence`` stay untyped: their keys are env constructor arguments, checked
by :class:`~trmgym.curricula.sequence.TaskSpec`.

Importing this module registers the schemas (:func:`register_configs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from trmgym.agents.baseline_configs import (
    BASELINE_AGENTS,
    BaselineAgentConfig,
    RandomAgentConfig,
)
from trmgym.agents.memory_reader import MemoryConfig
from trmgym.agents.trm_agent import TRMAgentConfig
from trmgym.checks import positive_int
from trmgym.meta.settings import FewShotConfig, MetaConfig
from trmgym.threads import check_threads

if TYPE_CHECKING:
    from trmgym.curricula.sequence import TaskSpec
    from trmgym.experiment import ContinualRun
    from trmgym.plugins import Plugin

__all__ = [
    "AGENT_SCHEMAS",
    "DemoConfig",
    "EWCConfig",
    "MemoryReplayConfig",
    "MemoryStrategyConfig",
    "MultitaskConfig",
    "NaiveConfig",
    "ReplayConfig",
    "STRATEGY_SCHEMAS",
    "RunSettings",
    "ScratchConfig",
    "StrategyConfig",
    "TrmgymConfig",
    "build_plugins",
    "build_run",
    "build_tasks",
    "check_memory",
    "register_configs",
    "task_spec",
    "typed",
]

_STRATEGIES = "trmgym.plugins.strategies"


# ----------------------------------------------------------------------------- run settings
@dataclass
class RunSettings:
    """Budgets and evaluation of a run (the ``run`` config node)."""

    train_steps: int = 2000
    """Optimizer steps (= env steps of the whole batch) per task. The budget of a baseline
    agent (``agent=sb3_*``, ``random``) is the same number of env steps: ``train_steps *
    batch_size`` per task, so a TRM and a baseline with the same ``run`` settings see as many
    puzzle steps."""
    batch_size: int = 128
    """Puzzles trained in parallel."""
    max_reasoning_steps: int | None = 8
    """Reasoning steps per puzzle before truncation (the env's step limit); null: a limit a
    perfect agent finishes within, per task — the env's own default where it has one, else
    ``trmgym.DEFAULT_MAX_STEPS`` (16) in grid mode and ``H * W + 1`` of the canvas in edit and
    walk modes (one write or move per cell, then halt); the baseline agents' configs choose
    null (:func:`trmgym.runner.step_limit`)."""
    eval_episodes: int = 500
    """Held-out puzzles per task and evaluation."""
    eval_every: int = 250
    """Optimizer steps per chunk: a current-task evaluation and a checkpoint after each."""
    canvas: list[int] | None = None
    """Common (H, W) for every task; None: the largest task grid."""
    task_labels: bool = True
    """Give the agent the task's index in the sequence (a learned task embedding)."""
    difficulty_probe: list[dict[str, Any]] = field(default_factory=list)
    """Extra final evaluations of the last task with reset options (e.g. [{blanks: 4}])."""
    reference: str | None = None
    """A ``strategy=scratch`` run of the same sequence (its directory or results.json): adds
    Continual World's forward transfer ``metrics.ft`` (and ``forward_transfer``) to the results."""
    threads: Any = "auto"
    """torch intra-op threads (and OMP/MKL threads of child processes): "auto" (the usable cores
    divided among the jobs a sweep runs at once, less those other processes keep busy for a
    single run, :mod:`trmgym.threads`) or an int >= 1."""
    budget_scale: float = 1.0
    """Multiplies every task's training budget, the per-task ``train_steps`` of a sequence
    included (rounded, at least 1 step): ``run.budget_scale=0.1`` for a quick try of any
    experiment. Part of the configuration (results.json records it)."""
    log_every: int = 25
    """Optimizer steps between training scalars in TensorBoard (display only: a run may resume
    with another value)."""

    def __post_init__(self) -> None:
        for name in (
            "train_steps",
            "batch_size",
            "eval_episodes",
            "eval_every",
            "log_every",
        ):
            positive_int(getattr(self, name), f"run.{name}")
        if self.max_reasoning_steps is not None:
            positive_int(self.max_reasoning_steps, "run.max_reasoning_steps")
        scale = self.budget_scale
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0 < scale < 1e6:
            raise ValueError(f"run.budget_scale must be a number > 0, got {scale!r}")
        self.threads = check_threads(self.threads, "run.threads")
        if self.reference is not None and not isinstance(self.reference, str | Path):
            raise ValueError(
                f"run.reference must be null or the path of a scratch run, got {self.reference!r}"
            )
        if self.canvas is not None and (len(self.canvas) != 2 or min(self.canvas) < 1):
            raise ValueError(
                f"run.canvas must be null or [H, W] with H, W >= 1, got {self.canvas!r}"
            )


# ------------------------------------------------------------------------------- strategies
@dataclass
class StrategyConfig:
    """The base of every strategy schema (the type of the root's ``strategy`` node).

    A strategy node is a partial of its class: ``grid_shape``, ``seed``, ``sampler`` and
    ``batch_size`` are supplied by the run (see
    :func:`~trmgym.plugins.strategies.make_strategy`). Argument ranges are checked by the
    strategy classes when the run is built.
    """

    _target_: str = f"{_STRATEGIES}.Strategy"
    """The strategy class (a :class:`~trmgym.plugins.strategies.Strategy`), as a dotted path."""
    _partial_: bool = True
    """Hydra builds a partial: the run-time arguments come from the run."""
    name: str = "naive"
    """The strategy's name in results.json (``strategy``)."""


@dataclass
class NaiveConfig(StrategyConfig):
    """Naive fine-tuning: train each task in turn, nothing else."""


@dataclass
class ScratchConfig(StrategyConfig):
    """A fresh agent for every task: the single-task reference for forward transfer."""

    _target_: str = f"{_STRATEGIES}.Scratch"
    name: str = "scratch"


@dataclass
class ReplayConfig(StrategyConfig):
    """Experience replay from a reservoir with per-task quotas (Chaudhry et al. 2019)."""

    _target_: str = f"{_STRATEGIES}.Replay"
    name: str = "replay"
    memory_size: int = 2000
    """Puzzles kept in the reservoir (split evenly among tasks when ``task_quota``)."""
    mix_ratio: float = 0.5
    """Replayed puzzles per current puzzle, in [0, 1]: ``round(mix_ratio * run.batch_size)`` are
    added to every update on top of the full current-task batch."""
    task_quota: bool = True
    """Balance the memory across tasks."""
    only_past: bool = True
    """Replay only tasks before the current one."""


@dataclass
class MultitaskConfig(StrategyConfig):
    """Joint training on fresh puzzles of every earlier task (the upper reference)."""

    _target_: str = f"{_STRATEGIES}.Multitask"
    name: str = "multitask"
    mix_ratio: float = 1.0
    """Earlier-task puzzles per current puzzle, in [0, 1] (``round(mix_ratio * run.batch_size)``
    per update, on top of the full current-task batch)."""


@dataclass
class EWCConfig(StrategyConfig):
    """Online elastic weight consolidation (Kirkpatrick et al. 2017, Schwarz et al. 2018)."""

    _target_: str = f"{_STRATEGIES}.EWC"
    name: str = "ewc"
    ewc_lambda: float = 1.0e8
    """Penalty strength λ of ``λ/2 Σ F (θ − θ*)²`` (``configs/strategy/ewc.yaml`` sets the value
    measured on the quickstart sequence)."""
    gamma: float = 1.0
    """Decay of earlier tasks' Fisher, in [0, 1] (1: a plain sum over tasks)."""
    fisher_batches: int = 8
    """Batches of fresh puzzles used to estimate the Fisher after each task."""
    fisher_batch_size: int = 64
    """Puzzles per Fisher batch."""


@dataclass
class MemoryStrategyConfig(StrategyConfig):
    """The associative memory bank as a strategy: solved puzzles' states are written to the
    agent's bank, which persists across tasks (needs ``agent.memory``)."""

    _target_: str = f"{_STRATEGIES}.Memory"
    name: str = "memory"
    write_every: str = "episode"
    """"episode": each solved puzzle's last step, when its episode ends (the env's solved flag);
    "step": every training step's rows whose answer is exactly the target."""
    adapt_steps: int = 60
    """Local adaptation at evaluation (memory-based parameter adaptation, Sprechmann et al.
    2018): Adam steps on the stored puzzles the held-out puzzles retrieve, before answering them
    (0: none; the bank is then only read inside the reasoning cycles)."""
    adapt_lr: float = 2e-3
    """Adam learning rate of the local adaptation (> 0)."""
    neighbours: int = 32
    """Stored puzzles each held-out puzzle retrieves (cosine on the reader's keys)."""
    adapt_batch: int = 64
    """Stored puzzles in the local set (the most retrieved)."""
    adapt_l2: float = 0.0
    """Weight of MbPA's pull towards the evaluation weights, ``adapt_l2/2 * ||theta - theta_eval||^2``."""


@dataclass
class MemoryReplayConfig(ReplayConfig):
    """The memory bank and experience replay together (both strategies' keys)."""

    _target_: str = f"{_STRATEGIES}.MemoryReplay"
    name: str = "memory_replay"
    write_every: str = "episode"
    """As :attr:`MemoryStrategyConfig.write_every`."""
    adapt_steps: int = 60
    """As :attr:`MemoryStrategyConfig.adapt_steps` (and the other ``adapt_*``/``neighbours``)."""
    adapt_lr: float = 2e-3
    neighbours: int = 32
    adapt_batch: int = 64
    adapt_l2: float = 0.0


#: the stored schema of each strategy, by ``name``
STRATEGY_SCHEMAS: dict[str, type[StrategyConfig]] = {
    "naive": NaiveConfig,
    "scratch": ScratchConfig,
    "replay": ReplayConfig,
    "multitask": MultitaskConfig,
    "ewc": EWCConfig,
    "memory": MemoryStrategyConfig,
    "memory_replay": MemoryReplayConfig,
}


# ------------------------------------------------------------------------------------- root
@dataclass
class DemoConfig:
    """What ``trmgym demo`` shows (the ``demo`` node)."""

    episodes: int = 2
    """Puzzles shown."""
    cells_per_step: int = 0
    """Cells the scripted reasoner fixes per step (0: spread over the step limit)."""


@dataclass
class CurriculumComparison:
    """Run the same experiment under other curricula and compare (``curriculum_comparison``).

    Each curriculum of ``against`` (a ``configs/curriculum`` name) runs with the same seed,
    model, budget and levels in ``<run dir>/compare/<name>/``, beside the main run (``workers``);
    the main run's results.json then gets ``curriculum.steps_to_threshold``: per curriculum, the
    env steps until the held-out accuracy of the task (the env's own options: the hardest level)
    first reached ``threshold`` (``null``: never). Single-task runs only.
    """

    against: list[str] = field(default_factory=lambda: ["uniform"])
    """The curricula to compare with (``configs/curriculum`` names, e.g. ``[uniform, lp, plr]``)."""
    threshold: float = 0.8
    """The exact-accuracy threshold, in (0, 1]."""
    workers: int = 2
    """Processes that train the curricula side by side: the main run in this process, the
    compared ones in ``workers - 1`` spawned processes (one after another when there are more
    of them), each writing its log to ``compare/<name>/cli.log``. Every curriculum gets
    ``run.threads // workers`` torch threads (at least 1), alone or beside others, so its
    numbers do not depend on what runs at the same time; ``workers=2`` on ``run.threads=2``
    gives every curriculum the numbers of a one-thread run (``experiment=curriculum_sudoku``:
    7 min 41 s on 2 cores, against 17 min 17 s one after the other on 2 threads). Never more
    processes than ``run.threads``. 1 (or ``run.threads=1``): the compared curricula one after
    the other in this process, then the main run, each with ``run.threads``, logging to the main
    cli.log. Under ``torchrun`` they always run one after the other. An execution setting, like
    ``run.threads``: not part of the resume guard."""


@dataclass
class EvalSettings:
    """What is measured besides the accuracy matrix (the ``eval`` node)."""

    fewshot: bool = False
    """After each task of a continual run, evaluate few-shot transfer on the ``fewshot`` node's
    held-out tasks (``fewshot_matrix`` in results.json); needs an ``arcgen`` sequence whose canvas
    is the ``fewshot.max_size`` square."""


@dataclass
class TrmgymConfig:
    """The root config of ``trmgym run`` and ``trmgym demo`` (stored as ``base_config``)."""

    experiment_name: str = "${hydra:runtime.choices.experiment}"
    """A name for results.json and the run directory (default: the chosen experiment)."""
    seed: int = 0
    """The run seed: every random draw of the run derives from it."""
    device: str = "auto"
    """"auto" (CUDA when present), "cpu", "cuda" or "cuda:<index>"."""
    console: bool = True
    """Print a progress bar and tables."""
    env: Any = MISSING
    """The task of a single-task run (``sequence: null``): ``{id, name, train, eval, **env}``."""
    sequence: Any = None
    """The task list of a continual run, ``{name, tasks: [...]}``; null: the single task ``env``."""
    agent: Any = MISSING
    """The agent: the TRM (``agent=trm``, the default: model size, halting, optimiser, EMA) or
    a baseline (``agent=sb3_ppo|sb3_dqn|sb3_maskable_ppo|random``); each node is typed by its
    own schema (:data:`AGENT_SCHEMAS`)."""
    strategy: StrategyConfig = MISSING
    """The continual-learning strategy (a partial of a strategy class; the YAML default picks
    ``naive``)."""
    plugins: list[Any] = field(default_factory=list)
    """More training plugins, ``_target_`` nodes instantiated and run after the strategy, in
    order (:class:`~trmgym.plugins.base.Plugin`)."""
    curriculum: Any = None
    """A curriculum scheduler (:mod:`trmgym.curricula.schedulers`; a ``configs/curriculum``
    choice, a ``_target_`` node), run after the strategy and ``plugins``; null: none."""
    curiosity: Any = None
    """An intrinsic reward added to the training env's reward
    (:class:`trmgym.plugins.curiosity.Curiosity`; a ``configs/curiosity`` choice, a ``_target_``
    node), run after the curriculum; null: none."""
    curriculum_comparison: Any = None
    """Compare the curriculum with others on the same experiment: ``{against: [names],
    threshold: x}`` (:class:`CurriculumComparison` gives the keys and defaults); null: no
    comparison. (Typed ``Any``: OmegaConf cannot merge a mapping into an optional structured
    node that is null.)"""
    run: RunSettings = field(default_factory=RunSettings)
    """Budgets and evaluation."""
    eval: EvalSettings = field(default_factory=EvalSettings)
    """Extra evaluations of a continual run (``eval.fewshot``)."""
    meta: MetaConfig = field(default_factory=MetaConfig)
    """Meta-training settings (:class:`trmgym.meta.settings.MetaConfig`): inner/outer loop."""
    fewshot: Any = None
    """The few-shot transfer protocol (:class:`trmgym.meta.settings.FewShotConfig`); a run with
    a ``fewshot`` node and no ``sequence`` is a few-shot experiment (``experiment=fewshot_arcgen``,
    :mod:`trmgym.meta.fewshot`); null: none."""
    demo: DemoConfig = field(default_factory=DemoConfig)
    """``trmgym demo`` settings."""


#: the stored schema of each agent, by the name of its ``configs/agent`` file
AGENT_SCHEMAS: dict[str, type] = {"trm": TRMAgentConfig, **BASELINE_AGENTS}


def agent_schema(node: Any) -> type:
    """The schema of an ``agent`` node: a baseline's by its ``name``, else the TRM's."""
    name = node.get("name") if hasattr(node, "get") else None
    return BASELINE_AGENTS.get(name, TRMAgentConfig) if name is not None else TRMAgentConfig


def register_configs() -> None:
    """Store the schemas in Hydra's ConfigStore (called on import; storing twice is harmless)."""
    store = ConfigStore.instance()
    store.store(name="base_config", node=TrmgymConfig)
    store.store(group="agent", name="base_trm", node=TRMAgentConfig)
    for name, schema in BASELINE_AGENTS.items():
        store.store(group="agent", name=f"base_{name}", node=schema)
    store.store(group="agent/memory", name="base_bank", node=MemoryConfig)
    store.store(group="fewshot", name="base_fewshot", node=FewShotConfig)
    for name, schema in STRATEGY_SCHEMAS.items():
        store.store(group="strategy", name=f"base_{name}", node=schema)


register_configs()


# ------------------------------------------------------------------------------------ build
def task_spec(node: Any, where: str) -> TaskSpec:
    """A :class:`~trmgym.curricula.sequence.TaskSpec` from an env-style config node.

    Args:
        node: an ``env`` node (or one entry of ``sequence.tasks``), a DictConfig or a mapping.
        where: the node's key, named in error messages (e.g. ``"env"``).
    """
    from trmgym.curricula.sequence import TaskSpec

    entry = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    return TaskSpec.from_mapping(entry, where)


def build_tasks(cfg: DictConfig) -> list[TaskSpec]:
    """The run's tasks: ``sequence.tasks`` in order, or the single task ``env``."""
    from trmgym.curricula.sequence import TaskSequence

    if cfg.get("sequence") is None:
        return [task_spec(cfg.env, "env")]
    return TaskSequence.from_config(OmegaConf.to_container(cfg.sequence, resolve=True)).tasks


def build_plugins(nodes: Any) -> list[Plugin]:
    """Instantiate the ``plugins`` list (``_target_`` nodes), checking each is a Plugin."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from trmgym.plugins import Plugin

    plugins = []
    for index, node in enumerate(nodes or []):
        if not isinstance(node, DictConfig | dict) or "_target_" not in node:
            raise ValueError(f"plugins[{index}] must be a node with a _target_, got {node!r}")
        try:
            plugin = instantiate(node, _convert_="all")
        except InstantiationException as error:
            raise ValueError(f"plugins[{index}] cannot be built: {error}") from None
        if not isinstance(plugin, Plugin):
            raise TypeError(
                f"plugins[{index}] ({node['_target_']}) must build a trmgym Plugin, "
                f"got {type(plugin).__name__}"
            )
        plugins.append(plugin)
    return plugins


#: the root keys that each build one plugin from a ``_target_`` node, and their choices
PLUGIN_GROUPS = {
    "curriculum": "ramp|uniform|staged|arc_stages|lp|plr|rehearsal",
    "curiosity": "count|episodic_count|rnd|surprise|combined",
}


def plugin_node(cfg: DictConfig, group: str = "curriculum") -> dict[str, Any]:
    """The ``curriculum`` (or ``curiosity``) node as a dict (what results.json records of it)."""
    node = cfg[group]
    if isinstance(node, DictConfig | dict) and node and "_target_" not in node:
        # e.g. ~curriculum under an experiment whose own body sets curriculum keys
        raise ValueError(
            f"{group} sets {sorted(map(str, node))} but no {group} is chosen: choose one "
            f"({group}={PLUGIN_GROUPS[group]}); to train without a {group}, use an experiment "
            f"that chooses none (e.g. experiment=single_task with the same env)"
        )
    if not isinstance(node, DictConfig | dict) or "_target_" not in node:
        raise ValueError(
            f"{group} must be null or a node with a _target_ (a configs/{group} choice: "
            f"{group}={PLUGIN_GROUPS[group]}), got {node!r}"
        )
    return (
        OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    )


def curriculum_node(cfg: DictConfig) -> dict[str, Any]:
    """The ``curriculum`` node as a dict (what results.json records of it)."""
    return plugin_node(cfg, "curriculum")


def build_plugin_node(node: dict[str, Any], group: str, seed: int, purpose: int) -> Plugin:
    """Instantiate a ``curriculum`` or ``curiosity`` node; a bad argument names ``<group>.<key>``.

    Its seed is derived from the run ``seed`` and ``purpose`` unless the node sets ``seed`` (the
    derived value is not written into the node: results.json records the node as configured,
    so runs that differ only in their seed group together in reports).
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from trmgym.experiment import seed_for
    from trmgym.plugins import Plugin

    node = dict(node)
    if node.get("seed") is None:
        node["seed"] = seed_for(int(seed), purpose)

    try:
        plugin = instantiate(node, _convert_="all")
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, ValueError | TypeError):
            message = str(cause)
            if isinstance(cause, TypeError) and "unexpected keyword argument" in message:
                key = message.rsplit("'", 2)[-2]
                message = (
                    f"{group}.{key} is not an argument of {node['_target_']} (an experiment "
                    f"that chose another {group} may set it: drop it with '~{group}.{key}')"
                )
            raise ValueError(message) from None
        raise ValueError(f"{group} cannot be built: {error}") from None
    if not isinstance(plugin, Plugin):
        raise TypeError(
            f"{group} ({node['_target_']}) must build a trmgym Plugin, got {type(plugin).__name__}"
        )
    return plugin


def build_curriculum(node: dict[str, Any], seed: int = 0, name: str | None = None) -> Plugin:
    """Instantiate a ``curriculum`` node (:func:`build_plugin_node`).

    Its ``label`` (the name results.json and comparisons give it) is the node's own ``name`` key
    when it sets one (a compared run's: its ``configs/curriculum`` name), else ``name`` (the
    run's ``curriculum=`` choice), else the scheduler's kind.

    Raises:
        ValueError: ``curriculum.name`` not a non-empty one-line string.
    """
    from trmgym.experiment import CURRICULUM_PURPOSE

    node = dict(node)
    label = node.pop("name", None)
    if label is not None and (not isinstance(label, str) or not label.strip() or "\n" in label):
        raise ValueError(
            f"curriculum.name must be a non-empty one-line string (the curriculum's name in "
            f"results.json), got {label!r}"
        )
    plugin = build_plugin_node(node, "curriculum", seed, CURRICULUM_PURPOSE)
    label = label or name
    if label is not None and hasattr(plugin, "label"):
        plugin.label = label
    return plugin


def group_choice(group: str = "curriculum") -> str | None:
    """The ``<group>=`` choice (``curriculum``, ``curiosity``) of the Hydra job running now
    (``None`` outside one, or when the node was written inline)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    choice = HydraConfig.get().runtime.choices.get(group)
    return None if choice in (None, "null") else str(choice)


def build_curiosity(node: dict[str, Any], seed: int = 0, name: str | None = None) -> Plugin:
    """Instantiate a ``curiosity`` node (:func:`build_plugin_node`); its ``label`` (what the
    banner shows) is ``name`` (the run's ``curiosity=`` choice: ``episodic_count``, not the
    ``count`` bonus it configures) or else the bonus's kind."""
    from trmgym.experiment import CURIOSITY_PURPOSE

    plugin = build_plugin_node(node, "curiosity", seed, CURIOSITY_PURPOSE)
    plugin.label = name or getattr(plugin, "kind", "curiosity")
    return plugin


def typed(cfg: Any) -> DictConfig:
    """``cfg`` (a plain mapping or DictConfig with the root's keys) checked against the schemas.

    The strategy node is checked against the built-in schema of its ``name``; a strategy of your
    own (a :class:`StrategyConfig` subclass stored in the ConfigStore, named by its YAML's
    defaults list) is only known to Hydra's composition, so build such runs from composed
    configs.
    """
    schema = OmegaConf.structured(TrmgymConfig)
    strategy = cfg.get("strategy") or {}
    name = strategy.get("name", "naive") if hasattr(strategy, "get") else None
    if name in STRATEGY_SCHEMAS:
        schema.strategy = OmegaConf.structured(STRATEGY_SCHEMAS[name])
    schema.agent = OmegaConf.structured(agent_schema(cfg.get("agent") or {}))
    return OmegaConf.merge(schema, cfg)


def build_run(cfg: DictConfig, run_dir: str | Path) -> ContinualRun:
    """Everything ``trmgym run`` does before training: check the config and build the run.

    Args:
        cfg: a config composed from ``configs/config.yaml`` (inside a Hydra app, or by
            ``hydra.compose`` with the Hydra config set, which ``experiment_name`` reads), or any
            config with its keys, e.g. a run's saved ``.hydra/config.yaml``, which is checked
            against :class:`TrmgymConfig` first.
        run_dir: the run directory (results, checkpoints, events; resumed when it holds a
            checkpoint). Nothing is written there until :meth:`ContinualRun.run`.

    Returns:
        The built run; ``build_run(cfg, run_dir).run()`` trains and evaluates it.

    Raises:
        ValueError: a value out of range, naming its key (e.g. ``run.batch_size``,
            ``agent.halting``, ``agent.dqn.buffer_size``, ``strategy.mix_ratio``), or a memory
            strategy with ``agent.memory`` null (:func:`check_memory`).
        TypeError: a ``plugins`` entry that does not build a Plugin, or a strategy
            ``_target_`` that is not a Strategy class.
        omegaconf.errors.OmegaConfBaseException: an unknown key or a value of the wrong type in a
            config that was not composed against the schemas (a composed one was refused by
            Hydra already, naming the key).
    """
    from trmgym.experiment import ContinualRun

    if OmegaConf.get_type(cfg) is not TrmgymConfig:
        cfg = typed(cfg)
    settings: RunSettings = OmegaConf.to_object(cfg.run)
    agent: TRMAgentConfig | BaselineAgentConfig = OmegaConf.to_object(cfg.agent)
    tasks = build_tasks(cfg)
    strategy = OmegaConf.to_container(cfg.strategy, resolve=True)
    plugins = build_plugins(cfg.plugins)
    plugin_configs = [OmegaConf.to_container(node, resolve=True) for node in cfg.plugins or []]
    if cfg.get("curriculum") is not None:
        node = curriculum_node(cfg)
        curriculum = build_curriculum(node, seed=int(cfg.seed), name=group_choice("curriculum"))
        check = getattr(curriculum, "check_tasks", None)
        if check is not None:  # levels the envs refuse fail now, not at the first reset
            check(tasks)
        plugins.append(curriculum)
        # its name labels results only: not configuration (a run recorded without it resumes)
        plugin_configs.append({k: v for k, v in node.items() if k != "name"})
    if cfg.get("curiosity") is not None:
        node = plugin_node(cfg, "curiosity")
        curiosity = build_curiosity(node, seed=int(cfg.seed), name=group_choice("curiosity"))
        check_curiosity(curiosity, agent)
        curiosity.check_tasks(tasks)  # bad bonus arguments fail now, not at the first chunk
        plugins.append(curiosity)
        plugin_configs.append(node)
    job = ContinualRun(
        tasks,
        agent,
        strategy,
        settings,
        run_dir,
        seed=cfg.seed,
        device=cfg.device,
        experiment=cfg.experiment_name,
        console=cfg.console,
        plugins=plugins,
        plugin_configs=plugin_configs,
        transfer_probe=transfer_probe(cfg),
    )
    check_memory(job)
    return job


def transfer_probe(cfg: DictConfig) -> Any:
    """``eval.fewshot=true``: the :class:`~trmgym.meta.fewshot.TransferProbe` of the ``fewshot``
    node (its defaults when the node is null) and ``meta``; ``None`` when off."""
    if not cfg.eval.fewshot:
        return None
    from trmgym.fewshot_job import fewshot_settings
    from trmgym.meta.fewshot import TransferProbe

    return TransferProbe(
        fewshot_settings(cfg.get("fewshot")), OmegaConf.to_object(cfg.meta), int(cfg.seed)
    )


def check_curiosity(curiosity: Plugin, agent: Any) -> None:
    """Curiosity shapes the training reward; the TRM agent learns from rewards only through its
    DQN halting head, so with ``agent.halting=bce`` the bonus would change nothing.

    Raises:
        ValueError: curiosity with the TRM agent and ``agent.halting`` other than ``dqn``, or
            with the random agent.
    """
    name = getattr(curiosity, "label", getattr(curiosity, "kind", "on"))
    if isinstance(agent, RandomAgentConfig):
        raise ValueError(
            f"curiosity={name} with agent=random: the random agent learns nothing from any "
            "reward, so the bonus would change nothing (and the run would be labelled a "
            "curiosity run); use a Stable-Baselines3 agent (agent=sb3_ppo|sb3_dqn|"
            "sb3_maskable_ppo), or drop curiosity for the random floor"
        )
    if isinstance(agent, TRMAgentConfig) and agent.halting != "dqn":
        raise ValueError(
            f"curiosity={name} with agent.halting={agent.halting}: "
            "the TRM agent learns from the reward only through its DQN halting head, so the "
            "bonus would change nothing; use agent.halting=dqn or a Stable-Baselines3 agent "
            "(agent=sb3_ppo|sb3_dqn|sb3_maskable_ppo)"
        )


def check_memory(job: ContinualRun) -> None:
    """A memory strategy needs the agent's bank; a bank no plugin writes is said to be unused.

    Raises:
        ValueError: a memory strategy with ``agent.memory`` null, naming ``agent.memory``.
    """
    import warnings

    from trmgym.plugins.strategies import Memory

    writers = [p for p in job.plugins if isinstance(p, Memory)]
    for writer in writers:
        writer.reader_of(job.agent.model)
    if getattr(job.agent_config, "memory", None) is not None and not writers:
        warnings.warn(
            f"agent.memory is set but strategy={job.strategy.name} never writes the bank: it "
            "stays empty and the reader adds nothing (strategy=memory or memory_replay write it)",
            UserWarning,
            stacklevel=2,
        )
