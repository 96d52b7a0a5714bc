"""One continual run from a composed config: tasks in turn, evaluation, checkpoints, results.

:class:`ContinualRun` drives :mod:`trmgym.runner` over a task sequence and owns the run directory:
``results.json`` (DESIGN.md's schema), TensorBoard events under ``tb/``, and checkpoints under
``checkpoints/``. Training is cut into chunks of ``eval_every`` optimizer steps; each chunk starts
from a training env reset with a seed derived from (run seed, task, chunk) and fresh carries, and
ends with an evaluation of the current task (the learning curve) and a checkpoint. Because every
chunk starts from state that is either derived from the config or saved in the checkpoint, a run
killed at any point and started again on the same directory finishes with identical results.
"""

from __future__ import annotations

import json
import platform
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

import trmgym
from trmgym import checkpoint, distributed, metrics, report, rundir
from trmgym import results as results_io
from trmgym.agents.baseline_configs import BaselineAgentConfig, EnvLearner
from trmgym.agents.trm_agent import TRMAgent, TRMAgentConfig
from trmgym.atomic import surfaced_interrupts
from trmgym.config import RunSettings
from trmgym.logging import RunLogger, matrix_table, metrics_table
from trmgym.plugins import Plugin, Plugins, Strategy, make_strategy
from trmgym.runner import (
    EnvLearnerTrainer,
    Evaluation,
    PuzzleSampler,
    TaskSpec,
    TaskTrainer,
    agent_spaces,
    check_agent_fits,
    common_canvas,
    evaluate,
    step_limit,
)


def seed_for(*keys: int) -> int:
    """A 31-bit seed derived from integers (run seed, task, chunk, purpose)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0] & 0x7FFFFFFF)


EVAL_PURPOSE, TRAIN_PURPOSE, SAMPLER_PURPOSE, STRATEGY_PURPOSE = 1, 2, 3, 4
#: the seeds of a data-parallel rank's own draws (training puzzles, buffers' sampling)
RANK_PURPOSE, DQN_PURPOSE, TORCH_PURPOSE = 5, 6, 7
CURRICULUM_PURPOSE = 8
CURIOSITY_PURPOSE = 9


def cpu_kernels() -> str:
    """The machine and the vector instructions torch's CPU kernels use (``"x86_64 AVX512"``).

    Bit-reproducibility holds for a seed and thread count on one kind of CPU: torch picks its
    kernels by the CPU's instruction set, and other kernels round float sums differently, so a
    run resumed or repeated on another CPU follows another (equally valid) trajectory.
    """
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):  # an older torch
        capability = "unknown"
    return f"{platform.machine()} {capability}"


#: the largest run seed: an int64 (torch's generators overflow past 2**64 - 1 once a purpose or
#: rank is mixed in)
MAX_SEED = 2**63 - 1


class TrainingDiverged(RuntimeError):
    """The agent's weights became NaN or infinite: every number after it would be meaningless
    (a NaN network solves nothing, so it "forgets" nothing). The last checkpoint, written before
    the chunk that diverged, is kept."""


def check_rollouts(
    agent_config: Any, settings: RunSettings, budgets: Sequence[int], names: Sequence[str]
) -> None:
    """PPO trains on whole rollouts of ``agent.n_steps`` steps per row, and every chunk of
    ``run.eval_every`` steps starts a new one: refuse a task none of whose chunks holds a rollout
    (it would play its budget and never train), and warn of the steps played but not trained on.

    Raises:
        ValueError: naming ``agent.n_steps``, ``run.eval_every`` and the task.
    """
    n_steps = getattr(agent_config, "n_steps", None)
    if not isinstance(agent_config, BaselineAgentConfig) or n_steps is None:
        return
    if n_steps * settings.batch_size < 2:  # SB3 needs two transitions per rollout
        raise ValueError(
            f"agent.n_steps x run.batch_size must be >= 2 (a PPO rollout), got {n_steps} x "
            f"{settings.batch_size}"
        )
    untrained = 0
    for name, budget in zip(names, budgets, strict=True):
        chunks = [
            min(settings.eval_every, budget - start)
            for start in range(0, budget, settings.eval_every)
        ]
        if max(chunks) < n_steps:
            raise ValueError(
                f"agent.n_steps={n_steps} is longer than every chunk of task {name!r} "
                f"(run.eval_every={settings.eval_every}, its budget {budget} steps): each chunk "
                "starts a new rollout, so PPO would play the task without training once; lower "
                "agent.n_steps or raise run.eval_every"
            )
        untrained += sum(size % n_steps for size in chunks)
    if untrained:
        warnings.warn(
            f"agent.n_steps={n_steps} does not divide every chunk (run.eval_every="
            f"{settings.eval_every}, task budgets {list(budgets)}): {untrained} of "
            f"{sum(budgets)} steps are played but not trained on (each chunk starts a new "
            "rollout); choose agent.n_steps dividing run.eval_every and the budgets",
            stacklevel=3,
        )


def check_finite_weights(agent: Any, task: str, chunk: int, shown: Mapping[str, Any]) -> None:
    """Raise :class:`TrainingDiverged` if any parameter of ``agent.model`` or of the DQN halting
    head's Q-networks (torch modules; other models are not checked) is NaN or infinite after
    chunk ``chunk`` of ``task``."""
    import torch

    halting = getattr(agent, "dqn", None)  # the DQN halting head's Q-networks too
    modules = {
        "": getattr(agent, "model", None),
        "dqn.q.": getattr(halting, "q", None),
        "dqn.q_target.": getattr(halting, "q_target", None),
    }
    bad = [
        prefix + name
        for prefix, module in modules.items()
        if isinstance(module, torch.nn.Module)
        for name, p in module.named_parameters()
        if not torch.isfinite(p).all()
    ]
    if bad:
        raise TrainingDiverged(
            f"training diverged: {len(bad)} weight tensor(s) of the agent are NaN or infinite "
            f"after chunk {chunk + 1} of task {task!r} (first: {bad[0]}; the chunk's last "
            f"{', '.join(f'{k} {v}' for k, v in shown.items()) or 'values: none'}); lower "
            "agent.lr or agent.grad_clip. Checkpoints from before this chunk are kept"
        )


class ContinualRun:
    """Trains one agent on ``tasks`` in turn and measures forgetting and transfer.

    Args:
        tasks: the sequence.
        agent_config: the agent: TRM hyper-parameters, or a baseline's
            (:class:`~trmgym.agents.baseline_configs.SB3PPOConfig`, ``SB3DQNConfig``,
            ``SB3MaskablePPOConfig``, ``RandomAgentConfig``): an
            :class:`~trmgym.agents.baseline_configs.EnvLearner` that trains itself on each chunk's env
            for ``eval_every * batch_size`` env steps (its budget: ``train_steps * batch_size``
            env steps per task, what the TRM plays), evaluated and checkpointed as the TRM is.
        strategy_config: ``{"name": ..., **arguments}`` of the continual strategy.
        settings: budgets and evaluation.
        run_dir: where results, events and checkpoints go (resumes from its checkpoint).
        seed: the run seed.
        device: "auto", "cpu" or "cuda".
        experiment: a name for results.json.
        console: print progress and tables.
        plugins: training plugins run after the strategy, in this order (see
            :mod:`trmgym.plugins.base`); their states are checkpointed by name.
        plugin_configs: the arguments each plugin was built from (``trmgym run`` passes its
            ``plugins`` nodes); recorded in results.json and the checkpoint, so resuming with
            other plugin arguments is refused. Without them only names and classes are compared.

    Under ``torchrun`` the run trains data-parallel (:mod:`trmgym.distributed`):
    ``settings.batch_size`` is the global batch, split evenly over the ranks; each rank draws its
    own training puzzles and keeps its own buffers, gradients are averaged, evaluations are
    sharded and summed, and rank 0 alone writes the run directory (rank 0's ``run_dir`` is used
    by every rank).

    Raises:
        ValueError: before any training: a bad task, seed or setting; an agent that cannot play
            a task's ``action_mode`` (the TRM plays grid mode; SB3 agents edit and walk modes),
            or a baseline agent with a strategy other than naive or scratch, a curriculum, a
            plugin needing the TRM's loop, or under torchrun (naming the key).
        RuntimeError: ``agent=sb3_maskable_ppo`` without sb3-contrib (with the install command).
    """

    def __init__(
        self,
        tasks: list[TaskSpec],
        agent_config: TRMAgentConfig | BaselineAgentConfig,
        strategy_config: dict[str, Any],
        settings: RunSettings,
        run_dir: str | Path,
        *,
        seed: int = 0,
        device: str = "auto",
        experiment: str = "run",
        console: bool = True,
        plugins: Sequence[Plugin] = (),
        plugin_configs: Sequence[dict[str, Any] | None] | None = None,
        transfer_probe: Any = None,
    ) -> None:
        if not tasks:
            raise ValueError("the task sequence is empty; give at least one task")
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names}")
        if (
            isinstance(seed, bool)
            or not isinstance(seed, int | np.integer)
            or not 0 <= seed <= MAX_SEED
        ):
            raise ValueError(f"seed must be an int in [0, 2**63 - 1], got {seed!r}")
        if not isinstance(console, bool):
            raise ValueError(f"console must be true or false, got {console!r}")
        #: this process's place in a data-parallel run (``World()``: a single process)
        self.world = distributed.init_from_env(device)
        if self.world.distributed:
            self.local_batch = distributed.local_batch(settings.batch_size, self.world)
            run_dir = distributed.gather_objects(str(run_dir))[0]  # rank 0's directory
            if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
                device = f"cuda:{self.world.local_rank}"
        else:
            self.local_batch = settings.batch_size
        for k, task in enumerate(tasks):  # bad arguments and options fail before any training
            probes = settings.difficulty_probe if k == len(tasks) - 1 else ()
            task.check(probes)
        self.tasks, self.settings, self.seed = tasks, settings, int(seed)
        self.run_dir = Path(run_dir)
        self.experiment, self.console = experiment, console
        self.canvas = common_canvas(tasks, tuple(settings.canvas) if settings.canvas else None)
        #: each task's reasoning-step limit (``run.max_reasoning_steps``, or per task when null)
        self.step_limits = [step_limit(t, self.canvas, settings.max_reasoning_steps) for t in tasks]
        #: a scratch run of the same sequence and settings, for forward transfer (checked now)
        self.reference = (
            None
            if settings.reference is None
            else results_io.check_reference(
                settings.reference,
                {
                    "sequence": names,
                    "tasks": [asdict(t) for t in tasks],
                    "settings": asdict(settings),
                },
            )
        )
        #: per-task training budgets and the global step at which each task starts
        scaled = {"train_steps": settings.train_steps, "budget_scale": settings.budget_scale}
        self.budgets = [
            results_io.task_budget(scaled, {"train_steps": t.train_steps}) for t in tasks
        ]
        self.offsets = [int(x) for x in np.cumsum([0, *self.budgets])]
        check_rollouts(agent_config, settings, self.budgets, [t.name for t in tasks])
        self.agent_config, self.device = agent_config, device
        self.strategy_config = dict(strategy_config)
        #: ``trm`` or a baseline's name (``sb3_ppo``, ``sb3_dqn``, ``sb3_maskable_ppo``, ``random``)
        self.agent_name = getattr(agent_config, "name", "trm")
        check_agent_fits(
            self.agent_name,
            tasks,
            strategy=self.strategy_config.get("name"),
            plugins=list(plugins),
            distributed=self.world.distributed,
        )
        self.agent = self._new_agent()
        #: ``eval.fewshot``: a :class:`trmgym.meta.fewshot.TransferProbe` run after each task
        self.transfer_probe = transfer_probe
        if transfer_probe is not None:
            if self.agent_name != "trm":
                raise ValueError(
                    f"eval.fewshot adapts the TRM network; agent={self.agent_name} has none"
                )
            transfer_probe.check_model(self.agent.model)
        self.sampler = PuzzleSampler(tasks, self.canvas, self._seed(SAMPLER_PURPOSE))
        self.strategy: Strategy = make_strategy(
            self.strategy_config,
            grid_shape=self.canvas,
            seed=self._seed(STRATEGY_PURPOSE),
            sampler=self.sampler,
            batch_size=self.local_batch,
            num_tasks=len(tasks),
        )
        #: every training plugin of the run, the strategy first
        self.plugins = Plugins([self.strategy, *plugins])
        if plugin_configs is not None and len(plugin_configs) != len(plugins):
            raise ValueError(
                f"plugin_configs has {len(plugin_configs)} entries for {len(plugins)} plugins"
            )
        #: what results.json and the resume guard record of the plugins after the strategy
        self.plugin_records = [
            {
                "name": p.name,
                "class": f"{type(p).__module__}.{type(p).__qualname__}",
                "config": None if plugin_configs is None else plugin_configs[k],
            }
            for k, p in enumerate(plugins)
        ]
        #: why the run has its threads (``trmgym run`` sets it; shown in the start-up banner)
        self.threads_note: str | None = None
        #: called with the finished results before results.json is written (``trmgym run``
        #: adds a curriculum comparison's figures there)
        self.on_results: Callable[[dict[str, Any]], None] | None = None
        # a plugin state that could not be restored must fail now, not at the first checkpoint
        checkpoint.to_tensors(self.plugins.state_dict(), "plugins")

    # --------------------------------------------------------------------------- building
    def _seed(self, *keys: int) -> int:
        """A seed derived from the run seed and ``keys``; in a data-parallel run also from the
        rank, so ranks draw different puzzles (rank 0 of one process keeps the plain seeds)."""
        if not self.world.distributed:
            return seed_for(self.seed, *keys)
        return seed_for(self.seed, *keys, RANK_PURPOSE, self.world.rank)

    def _new_agent(self) -> TRMAgent | EnvLearner:
        labels = len(self.tasks) if self.settings.task_labels else 0
        if isinstance(self.agent_config, BaselineAgentConfig):
            from trmgym.agents.baselines import make_baseline_agent  # SB3: imported when used

            observation_space, action_space = agent_spaces(self.tasks[0], self.canvas, labels)
            for k, task in enumerate(self.tasks[1:], start=1):  # one policy plays every task
                other = agent_spaces(task, self.canvas, labels)[1]
                if other != action_space:
                    raise ValueError(
                        f"agent={self.agent_name}: task {task.name!r} has action space {other}, "
                        f"task {self.tasks[0].name!r} {action_space}; one policy needs one "
                        f"action space: give every task the same action_mode (sequence.tasks"
                        f"[{k}].action_mode) and canvas (run.canvas)"
                    )
            return make_baseline_agent(
                self.agent_config,
                observation_space=observation_space,
                action_space=action_space,
                num_envs=self.local_batch,
                seed=self.seed,
                device=self.device,
            )
        agent = TRMAgent(
            self.agent_config,
            canvas=self.canvas,
            max_steps=max(self.step_limits),
            num_tasks=labels,
            seed=self.seed,  # the same initial weights on every rank
            device=self.device,
        )
        if self.world.distributed:
            self._reseed_rank(agent)
        return agent

    def _reseed_rank(self, agent: TRMAgent) -> None:
        """Give this rank its own exploration and replay-sampling draws."""
        if agent.dqn is not None:
            agent.dqn.rng = np.random.default_rng(self._seed(DQN_PURPOSE))
        torch.manual_seed(self._seed(TORCH_PURPOSE))

    def label(self, task_index: int) -> int | None:
        return task_index if self.settings.task_labels else None

    def evaluate(self, agent: TRMAgent, task_index: int, options: dict | None = None) -> Evaluation:
        s = self.settings
        return evaluate(
            agent,
            self.tasks[task_index],
            episodes=s.eval_episodes,
            seed=seed_for(self.seed, task_index, EVAL_PURPOSE),
            max_steps=self.step_limits[task_index],
            canvas=self.canvas,
            task_label=self.label(task_index),
            options=options,
            plugins=self.plugins,
            world=self.world,
        )

    # ------------------------------------------------------------------------------ state
    def run_config(self) -> dict[str, Any]:
        """Everything that determines this run's results, as plain JSON values.

        Stored in every checkpoint; a run directory resumed with a different value is refused
        (:meth:`check_resumable`). Display-only settings (``console``) and ``run.threads`` are not part of it: a run may
        resume with another thread count, then it is a valid run but not bit-identical to an
        uninterrupted one (the thread count sets the order of float reductions).
        """
        return json.loads(
            json.dumps(
                {
                    "experiment": self.experiment,
                    "seed": self.seed,
                    # the kind only: a run may resume on another GPU, or on another rank's
                    "device": self.agent.device.type,
                    "sequence": [asdict(t) for t in self.tasks],
                    # threads are not configuration (a run may resume with others), but they
                    # set the rounding of float reductions: results.json records torch_threads
                    "run": {
                        k: v
                        for k, v in asdict(self.settings).items()
                        if k not in results_io.DISPLAY_ONLY
                    },
                    "agent": asdict(self.agent_config),
                    "strategy": self.strategy_config,
                    "plugins": self.plugin_records,
                    # only when on: runs without it keep the configuration they always had
                    **(
                        {"eval": {"fewshot": self.transfer_probe.settings()}}
                        if self.transfer_probe is not None
                        else {}
                    ),
                },
                default=str,
            )
        )

    def check_resumable(self, saved: dict[str, Any] | None) -> None:
        """Refuse to resume a checkpoint written with a different configuration.

        Raises:
            ValueError: naming the first differing key and both values; raised before anything
                is written to the run directory.
        """
        if saved is None:
            return
        where = self.run_dir / "checkpoints"
        if "config" not in saved:
            raise ValueError(
                f"{where} was written by an older trmgym without its configuration, so resuming "
                "it cannot be checked; start the run in a new directory"
            )
        saved_config, current = json.loads(saved["config"]), self.run_config()
        found = checkpoint.first_difference(saved_config, current)
        if found is not None:
            key, before, now = found
            names = [
                (c.get("strategy") or {}).get("name") if isinstance(c, dict) else None
                for c in (saved_config, current)
            ]
            if key.startswith("strategy.") and names[0] != names[1]:  # by name, not its class
                key, before, now = "strategy", names[0], names[1]
            for k, record in enumerate(self.plugin_records):  # the config's own name for it
                prefix = f"plugins[{k}].config"
                if record["name"] == "curriculum" and key.startswith(prefix):
                    key = "curriculum" + key[len(prefix) :]
            raise ValueError(
                f"{self.run_dir} holds a run with a different configuration: {key} was "
                f"{before!r} there and is {now!r} now. Resume it with the same settings, or "
                "start a new run directory (e.g. a different hydra.run.dir, or hydra.sweep.dir "
                "for a sweep)"
            )

    def _fresh_state(self) -> dict[str, Any]:
        T = len(self.tasks)
        return {
            "task": 0,
            "chunk": 0,
            "accuracy_matrix": [[None] * T for _ in range(T)],
            "cell_accuracy_matrix": [[None] * T for _ in range(T)],
            "steps_matrix": [[None] * T for _ in range(T)],
            "random_init_accuracy": None,
            "fewshot_init": None,
            "fewshot_matrix": [None] * T,
            "curves": [[] for _ in range(T)],
            "env_steps": 0,
            "wall_time_s": 0.0,
            "done": False,
        }

    def _rank_state(self) -> dict[str, Any]:
        """What this process alone holds: weights and optimizer (the same on every rank),
        buffers and random generators (a rank's own)."""
        return {
            "agent": self.agent.state_dict(),
            "plugins": self.plugins.state_dict(),
            "torch_rng": torch.random.get_rng_state(),
            "sampler_rng": self.sampler.rng.bit_generator.state,
        }

    def _save(self, state: dict[str, Any]) -> None:
        """Write a checkpoint (rank 0). In a data-parallel run every rank's state is gathered
        into it: rank 0's at the top, as a single process writes it, the others' in ``ranks``."""
        mine = self._rank_state()
        if self.world.distributed:  # tensors as a checkpoint holds them, moved to the CPU
            mine = distributed.to_cpu(checkpoint.to_tensors(mine, "rank state"))
        states = distributed.gather_to_main(mine)
        if states is None:  # not rank 0
            return
        checkpoint.save_atomic(
            {
                "progress": json.dumps(state),
                "config": json.dumps(self.run_config()),
                **states[0],
                "world_size": len(states),
                "ranks": states[1:],
            },
            self.run_dir / "checkpoints",
        )

    def load_checkpoint(self) -> dict[str, Any] | None:
        """Restore the agent, plugins and generators from the run directory's latest checkpoint
        (after checking it belongs to this configuration); returns its progress (``task``,
        ``chunk``, the matrices so far, ...) or ``None`` when there is none. For analyses of a
        trained run, e.g. evaluating it again with a part of the agent switched off."""
        saved = checkpoint.load_latest(self.run_dir / "checkpoints")
        self.check_resumable(saved)
        return self._restore(saved)

    def _restore(self, saved: dict[str, Any] | None) -> dict[str, Any] | None:
        if saved is None:
            return None
        ranks = [
            {k: saved[k] for k in ("agent", "plugins", "torch_rng", "sampler_rng")},
            *saved.get("ranks", []),
        ]
        mine, own = distributed.rank_state_for(ranks, self.world)
        self.agent.load_state_dict(mine["agent"])
        self.plugins.load_state_dict(mine["plugins"])
        torch.random.set_rng_state(mine["torch_rng"])
        self.sampler.rng.bit_generator.state = mine["sampler_rng"]
        if not own:  # a rank the checkpoint did not have: its own draws from here on
            progress = json.loads(saved["progress"])
            resumed = (progress["task"], progress["chunk"])
            self.sampler.rng = np.random.default_rng(self._seed(SAMPLER_PURPOSE, *resumed))
            if self.agent.dqn is not None:
                self.agent.dqn.rng = np.random.default_rng(self._seed(DQN_PURPOSE, *resumed))
            torch.manual_seed(self._seed(TORCH_PURPOSE, *resumed))
        return json.loads(saved["progress"])

    # -------------------------------------------------------------------------------- run
    def run(self) -> dict[str, Any]:
        """Run (or resume) the sequence; returns the results dict also written to results.json.

        Raises:
            trmgym.rundir.RunDirInUse: another process is running in ``run_dir`` (nothing is
                written then).
        """
        with surfaced_interrupts():  # Ctrl-C in a library's clean-up: still an interrupt
            if not self.world.is_main:  # rank 0 alone writes the directory, and holds it
                return self._run()
            with rundir.hold(self.run_dir):
                return self._run()

    def _run(self) -> dict[str, Any]:
        s, T = self.settings, len(self.tasks)
        saved = checkpoint.load_latest(self.run_dir / "checkpoints")
        self.check_resumable(saved)  # before anything is written
        if self.world.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            # held (run()): what a kill left half-written is no other process's save
            checkpoint.remove_temporaries(self.run_dir / "checkpoints")
        state = self._restore(saved) or self._fresh_state()
        #: started again after it had finished: results are rewritten, nothing is logged again
        finished = state["task"] >= T
        # provenance: the processes and threads of every (re)start that trained, and where
        state.setdefault("starts", [])
        if not finished:
            state["starts"].append(
                {
                    "task": state["task"],
                    "chunk": state["chunk"],
                    "world_size": self.world.size,
                    "torch_threads": torch.get_num_threads(),
                    # which kernels ran: another CPU's (AVX2 vs AVX512) rounds differently
                    "cpu": cpu_kernels(),
                }
            )
        total = self.offsets[-1]
        main = self.world.is_main  # rank 0 alone prints and writes files
        done = min(self.offsets[state["task"]] + state["chunk"] * s.eval_every, total)
        logger = RunLogger(
            self.run_dir, total, enabled=self.console and main, write=main, events=not finished
        )
        logger.banner(self._banner(state, saved is not None, done), quiet=not main)
        logger.set_completed(done)
        started = time.perf_counter() - state["wall_time_s"]
        try:
            # TensorBoard: the configuration (Text tab), and a restart mark hiding what a killed
            # process logged after its checkpoint
            logger.log_start(self.run_config(), None if saved is None else done)
            if state["random_init_accuracy"] is None:
                initial = [self.evaluate(self.agent, j) for j in range(T)]
                state["random_init_accuracy"] = [e.accuracy for e in initial]
            if self.transfer_probe is not None and state.get("fewshot_init") is None:
                state["fewshot_init"] = self._probe(logger, 0)
            while state["task"] < T:
                i = state["task"]
                budget = self.budgets[i]
                chunks = -(-budget // s.eval_every)
                if state["chunk"] == 0 and self.plugins.before_task(i).fresh_agent:
                    self.agent = self._new_agent()
                while state["chunk"] < chunks:
                    c = state["chunk"]
                    steps = min(s.eval_every, budget - c * s.eval_every)
                    shown = self._train_chunk(i, c, steps, state, logger)
                    try:
                        check_finite_weights(self.agent, self.tasks[i].name, c, shown)
                    except TrainingDiverged as error:
                        if main:  # for `trmgym report` and the next start: where, and why
                            record = {"task": i, "task_name": self.tasks[i].name, "chunk": c}
                            record.update(env_steps=state["env_steps"], message=str(error))
                            results_io.write_diverged(self.run_dir, record)
                        raise
                    current = self.evaluate(self.agent, i)
                    state["curves"][i].append(current.accuracy)
                    global_step = self.offsets[i] + c * s.eval_every + steps
                    logger.chunk_done(
                        f"task {i + 1}/{T} {self.tasks[i].name}",
                        global_step,
                        {**shown, "eval accuracy": current.accuracy},
                    )
                    logger.scalars(
                        {
                            "eval/accuracy": current.accuracy,
                            "eval/cell_accuracy": current.cell_accuracy,
                            "eval/reasoning_steps": current.reasoning_steps,
                        },
                        global_step,
                    )
                    state["chunk"] = c + 1
                    state["wall_time_s"] = time.perf_counter() - started
                    self._save(state)
                self.plugins.after_task(i, self.agent.model, self._loss_fn(i))
                for j in range(T):
                    result = self.evaluate(self.agent, j)
                    state["accuracy_matrix"][i][j] = result.accuracy
                    state["cell_accuracy_matrix"][i][j] = result.cell_accuracy
                    state["steps_matrix"][i][j] = result.reasoning_steps
                logger.scalars(
                    {
                        f"cl/accuracy_on_{self.tasks[j].name}": state["accuracy_matrix"][i][j]
                        for j in range(T)
                    },
                    self.offsets[i + 1],
                )
                if self.transfer_probe is not None:
                    state.setdefault("fewshot_matrix", [None] * T)[i] = self._probe(
                        logger, self.offsets[i + 1]
                    )
                state["task"], state["chunk"] = i + 1, 0
                state["wall_time_s"] = time.perf_counter() - started
                self._save(state)
            results = self._results(state, logger)
        finally:
            logger.close()
        return results

    def _banner(self, state: dict[str, Any], resumed: bool, done: int) -> list[str]:
        """What a run says when it starts: where it writes, on what, what it trains."""
        T = len(self.tasks)
        strategy = self.strategy_config.get("name")
        keys = {
            k: v for k, v in self.strategy_config.items() if not k.startswith("_") and k != "name"
        }
        tasks = ", ".join(f"{t.name} ({b})" for t, b in zip(self.tasks, self.budgets))
        lines = [
            f"trmgym {trmgym.__version__} | run dir {self.run_dir}",
            f"device {self.agent.device} | torch threads {torch.get_num_threads()}"
            + (f" ({self.threads_note})" if self.threads_note else "")
            + " | "
            f"seed {self.seed} | batch {self.settings.batch_size}"
            + (f" over {self.world.size} processes" if self.world.distributed else ""),
            f"{self.experiment}: {T} task{'s' * (T != 1)}, optimizer steps {tasks}"
            + (
                f" = env steps x{self.settings.batch_size} (agent={self.agent_name})"
                if isinstance(self.agent, EnvLearner)
                else ""
            )
            + (
                f" (budget_scale {self.settings.budget_scale:g})"
                if self.settings.budget_scale != 1
                else ""
            ),
            f"strategy {strategy}"
            + (" (" + ", ".join(f"{k}={v}" for k, v in keys.items()) + ")" if keys else "")
            + "".join(
                f" + {p.name}"
                + (f" {getattr(p, 'label', p.kind)}" if getattr(p, "kind", None) else "")
                for p in list(self.plugins)[1:]
            ),
        ]
        if resumed:
            i = min(state["task"], T - 1)
            where = (
                f"task {state['task'] + 1}/{T} {self.tasks[i].name}"
                if state["task"] < T
                else "the end (every task trained)"
            )
            lines.append(f"resuming from {where}, step {done} of {self.offsets[-1]}")
        diverged = results_io.read_diverged(self.run_dir)
        if diverged is not None and state["task"] < T:
            lines.append(
                f"warning: this run diverged before ({results_io.DIVERGED_FILE}: "
                f"{diverged['message']}); resuming repeats the same steps unless the code "
                "changed: to change agent.lr or agent.grad_clip, start a new run directory"
            )
        return lines

    def _loss_fn(self, task_index: int):  # noqa: ANN202
        label = self.label(task_index)

        def loss(batch: Any) -> torch.Tensor:
            task = None if label is None else np.full(len(batch.grid), label)
            return self.agent.supervised_loss(batch.grid, batch.target, task)

        return loss

    def _train_chunk(
        self, i: int, c: int, steps: int, state: dict[str, Any], logger: RunLogger
    ) -> dict[str, float | None]:
        """Train task ``i``'s chunk ``c`` for ``steps`` steps; returns what the chunk's line shows."""
        if isinstance(self.agent, EnvLearner):
            return self._learn_chunk(i, c, steps, state, logger)
        s = self.settings
        trainer = TaskTrainer(
            self.agent,
            self.tasks[i],
            batch_size=self.local_batch,
            max_steps=self.step_limits[i],
            canvas=self.canvas,
            seed=self._seed(i, c, TRAIN_PURPOSE),
            task_label=self.label(i),
            task_index=i,
            plugins=self.plugins,
            sequence=self.tasks,
        )
        self.agent.begin_chunk()
        base = self.offsets[i] + c * s.eval_every
        every, done_steps, shown = s.log_every, 0, 0

        def on_step(step_metrics: dict[str, float]) -> None:
            nonlocal done_steps, shown
            done_steps += 1
            if done_steps % every == 0 or done_steps == steps:
                logger.scalars(step_metrics, base + done_steps)
            if done_steps % min(every, 25) == 0 or done_steps == steps:
                curve = state["curves"][i]
                last_eval = f" | eval accuracy {curve[-1]:.3f}" if curve else ""
                logger.advance(
                    done_steps - shown,
                    f"task {i + 1}/{len(self.tasks)} {self.tasks[i].name}",
                    f"ce {step_metrics.get('train/ce', float('nan')):.3f} "
                    f"train exact {step_metrics.get('train/exact', float('nan')):.2f}{last_eval}",
                )
                shown = done_steps

        last = trainer.train(steps, on_step)
        state["env_steps"] += int(distributed.sum_over_ranks([trainer.env_steps])[0])
        self.plugins.on_chunk_end(i, base + steps, state["env_steps"])
        logger.scalars(
            {**trainer.rollout_stats(), **self.plugins.metrics(self.agent.model)}, base + steps
        )
        trainer.close()
        return {"train exact": last.get("train/exact")}

    def _learn_chunk(
        self, i: int, c: int, steps: int, state: dict[str, Any], logger: RunLogger
    ) -> dict[str, float | None]:
        """A self-training agent's chunk: ``steps * batch_size`` env steps on a fresh env.

        The env is built, wrapped by the plugins and seeded as the TRM's chunk env; scalars the
        agent logs (``train/…``, ``rollout/…``) reach TensorBoard at the optimizer step their
        env steps correspond to (``env steps // batch_size``)."""
        s, batch = self.settings, self.local_batch
        if c == 0:
            state["task_env_steps"] = 0
        trainer = EnvLearnerTrainer(
            self.agent,
            self.tasks[i],
            batch_size=batch,
            max_steps=self.step_limits[i],
            canvas=self.canvas,
            seed=self._seed(i, c, TRAIN_PURPOSE),
            plugins=self.plugins,
            task_label=i if self.settings.task_labels else 0,
            num_labels=len(self.tasks) if self.settings.task_labels else 1,
            task_index=i,
        )
        base = self.offsets[i] + c * s.eval_every
        label = f"task {i + 1}/{len(self.tasks)} {self.tasks[i].name}"
        shown = logged = 0

        def on_progress(env_steps: int, values: dict[str, float]) -> None:
            nonlocal shown, logged
            done = min(steps, env_steps // batch)
            if done - logged >= s.log_every:
                logger.scalars(values, base + done)
                logged = done
            if done > shown:
                logger.advance(done - shown, label, f"{trainer.episodes} episodes")
                shown = done

        metrics = trainer.train(
            steps * batch,
            task_progress=(state.get("task_env_steps", 0), self.budgets[i] * batch),
            on_progress=on_progress,
        )
        if steps > shown:
            logger.advance(steps - shown, label, f"{trainer.episodes} episodes")
        state["env_steps"] += trainer.env_steps
        state["task_env_steps"] = state.get("task_env_steps", 0) + trainer.env_steps
        self.plugins.on_chunk_end(i, base + steps, state["env_steps"])
        rollout = trainer.rollout_stats()
        logger.scalars(
            {**metrics, **rollout, **self.plugins.metrics(self.agent.model)}, base + steps
        )
        trainer.close()
        return {"train solve rate": rollout["rollout/solve_rate"]}

    def _probe(self, logger: RunLogger, step: int) -> dict[str, dict[str, list[float]]]:
        """Few-shot transfer of the agent's evaluation weights (``eval.fewshot``); TensorBoard
        gets the accuracy after the most adaptation steps, per split and ``k``."""
        with self.agent.eval_weights():
            row = self.transfer_probe.evaluate(self.agent.model)
        last = self.transfer_probe.config.steps[-1]
        logger.scalars(
            {
                f"fewshot/{split}/{k}_steps{last}": values[-1]
                for split, by_k in row.items()
                for k, values in by_k.items()
            },
            step,
        )
        return row

    def _results(self, state: dict[str, Any], logger: RunLogger) -> dict[str, Any]:
        s, T = self.settings, len(self.tasks)
        R = state["accuracy_matrix"]
        summary = metrics.summarize(
            R, state["random_init_accuracy"], reasoning_steps=state["steps_matrix"][T - 1]
        )
        probes = []
        for options in s.difficulty_probe:
            result = self.evaluate(self.agent, T - 1, options=dict(options))
            probes.append({"options": dict(options), **asdict(result)})
        results = {
            "experiment": self.experiment,
            "sequence": [t.name for t in self.tasks],
            "tasks": [asdict(t) for t in self.tasks],
            "strategy": self.strategy_config.get("name"),
            "strategy_config": self.strategy_config,
            "plugins": self.plugin_records,
            "seed": self.seed,
            "accuracy_matrix": R,
            "cell_accuracy_matrix": state["cell_accuracy_matrix"],
            "reasoning_steps_matrix": state["steps_matrix"],
            "random_init_accuracy": state["random_init_accuracy"],
            **(
                {
                    "fewshot_matrix": state["fewshot_matrix"],
                    "fewshot_init": state["fewshot_init"],
                    "fewshot_eval": {
                        k: v for k, v in self.transfer_probe.settings().items() if k != "fewshot"
                    }
                    | {
                        "steps": self.transfer_probe.config.steps,
                        "k_shots": self.transfer_probe.config.k_shots,
                    },
                }
                if self.transfer_probe is not None
                else {}
            ),
            "curves": state["curves"],
            "metrics": {
                k: summary[k]
                for k in ("avg_accuracy", "avg_forgetting", "bwt", "fwt", "avg_reasoning_steps")
            },
            "forgetting": summary.get("forgetting"),
            # the step limit; with run.max_reasoning_steps null, the largest task's own
            "max_reasoning_steps": max(self.step_limits),
            "difficulty_probe": probes,
            "settings": asdict(s),
            # the resolved network: every TRMConfig field actually built (presets + overrides)
            "agent": {
                **asdict(self.agent_config),
                "model_config": asdict(self.agent.model_config),
            },
            "env_steps": state["env_steps"],
            "wall_time_s": state["wall_time_s"],
            "device": str(self.agent.device),
            "world_size": self.world.size,
            "torch_threads": torch.get_num_threads(),
            # every start of the run: a resumed run may have used other processes or threads
            "starts": state["starts"],
            "versions": {
                "trmgym": trmgym.__version__,
                "torch": torch.__version__,
                "numpy": np.__version__,
                "python": platform.python_version(),
            },
        }
        for name, block in self.plugins.results().items():
            if name in results:
                raise ValueError(
                    f"plugin {name!r}: its results block would replace results.json's own "
                    f"{name!r}; give the plugin another name"
                )
            results[name] = block
        if self.on_results is not None:
            self.on_results(results)
        if self.reference is not None:
            transfer = results_io.forward_transfer(results, self.reference)
            transfer["reference"] = str(s.reference)
            results["metrics"]["ft"] = transfer["ft"]
            results["forward_transfer"] = transfer
        if not self.world.is_main:
            return results
        path = results_io.write_results(self.run_dir, results)
        # finished after all (a resume with other code): the mark of a divergence is history
        (self.run_dir / results_io.DIVERGED_FILE).unlink(missing_ok=True)
        logger.log_hparams(results, self.offsets[-1])  # TensorBoard's HPARAMS tab
        images: dict[str, Any] = {}  # each figure drawn once: the PNG and TensorBoard's image
        plots = report.write_plots(self.run_dir, images=images)
        logger.image("cl/accuracy_matrix", images["accuracy_matrix"], self.offsets[-1])
        logger.image("cl/curves", images["curves"], self.offsets[-1])
        if isinstance(results.get("curriculum"), dict) and results["curriculum"].get("history"):
            logger.image("curriculum/plot", images["curriculum"], self.offsets[-1])
        html = report.write_report(self.run_dir, plots)
        names = [t.name for t in self.tasks]
        logger.print(matrix_table(names, R, "accuracy matrix (exact solve)"))
        logger.print(metrics_table(results["metrics"]))
        for probe in probes:
            logger.print(
                f"probe {probe['options']}: accuracy {probe['accuracy']:.3f}, "
                f"mean reasoning steps {probe['reasoning_steps']:.2f}"
            )
        logger.print(f"plots: {', '.join(str(p) for p in plots.values())}\nreport: {html}")
        logger.finished(f"results: {path} (wall time {state['wall_time_s']:.0f} s)")
        return results
