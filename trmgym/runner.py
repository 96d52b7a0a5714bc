"""The continual loop: train on task i, evaluate on all tasks, record the accuracy matrix.

A run is a sequence of tasks (one task for ``experiment=single_task``). For each task the agent
trains on a batched env that exposes targets, one reasoning step per env step (deep supervision),
refilling each batch slot as soon as its puzzle ends. After each task it is evaluated on fixed,
seeded held-out puzzles of *every* task with the target hidden — row i of the accuracy matrix
(exact solve) and of the cell-accuracy matrix — and the current task is also evaluated periodically
during training (the curves behind forward-transfer AUC).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import trmgym  # registers the env ids
from trmgym.curricula.sequence import TaskSpec
from trmgym.distributed import World, max_over_ranks, shard, sum_over_ranks
from trmgym.plugins import Plugins, PuzzleMemory


@dataclass
class Evaluation:
    """Results of evaluating an agent on one task's held-out puzzles."""

    accuracy: float
    """Exact-solve rate at the end of each episode (halt or step limit)."""
    cell_accuracy: float
    """Mean final cell accuracy."""
    reasoning_steps: float
    """Mean reasoning steps taken."""
    most_reasoning_steps: int
    """Most reasoning steps taken by any one episode (at most the step limit,
    ``run.max_reasoning_steps``). Older results.json files call it ``max_reasoning_steps`` in
    their ``difficulty_probe`` entries; :func:`trmgym.results.load_results` renames it."""


@torch.no_grad()
def evaluate(
    agent: Any,
    task: TaskSpec,
    *,
    episodes: int,
    seed: int,
    max_steps: int,
    canvas: tuple[int, int] | None,
    task_label: int | None = None,
    options: dict[str, Any] | None = None,
    plugins: Plugins | None = None,
    world: World | None = None,
) -> Evaluation:
    """Greedy evaluation of ``agent`` on ``episodes`` seeded held-out puzzles of ``task``.

    ``agent`` is the TRM agent or an :class:`~trmgym.agents.baseline_configs.EnvLearner` (both answer
    ``initial_carry``, ``act`` and ``eval_weights``; an agent with ``wants_action_masks`` gets
    the env's ``action_masks()`` with every step).

    The env hides the target. Each batch slot plays exactly one puzzle; the EMA weights are used
    when the agent has them. ``options`` go to ``reset`` (e.g. ``{"blanks": 4}``); ``plugins``
    may wrap the env (``wrap_env(env, task, train=False)``).

    In a data-parallel run (``world`` with more than one rank) every rank draws the same
    ``episodes`` puzzles, the agent plays only this rank's share of them
    (:func:`~trmgym.distributed.shard`; the other rows keep their answer and never halt, so they
    cost no draws), and the counts are summed over the ranks: the result does not depend on the
    number of ranks, and every rank returns it. A collective call: every rank must make it.
    """
    env = task.make_vec(episodes, train=False, max_steps=max_steps, canvas=canvas)
    env = (plugins or Plugins([])).wrap_env(env, task, False)
    obs, _ = env.reset(seed=seed, options={**task.options, **(options or {})} or None)
    if task_label is not None:
        obs["task_id"] = np.full(episodes, task_label)
    owned = shard(episodes, world) if world is not None and world.distributed else None
    mine = np.arange(episodes) if owned is None else owned
    carry = agent.initial_carry(len(mine))
    masks_of = action_masks_of(env) if getattr(agent, "wants_action_masks", False) else None
    finished = np.zeros(len(mine), dtype=bool)
    solved = np.zeros(len(mine), dtype=bool)
    cells = np.zeros(len(mine))
    steps = np.zeros(len(mine), dtype=np.int64)
    # test-time adaptation sees every drawn puzzle, on every rank: the same adapted weights
    adapted = (plugins or Plugins([])).adapted(agent, obs["grid"], obs.get("task_id"))
    with agent.eval_weights(), adapted:
        for _ in range(max_steps):
            if finished.all():
                break
            if masks_of is not None:  # MaskablePPO: the env's valid actions
                action, carry = agent.act(obs, carry, action_masks=masks_of())
            elif owned is None:
                action, carry = agent.act(obs, carry)
            else:
                local, carry = agent.act({k: v[owned] for k, v in obs.items()}, carry)
                # rows of other ranks: keep their answer, never halt (the loop ends first)
                action = {"answer": obs["answer"].copy(), "halt": np.zeros(episodes, np.int64)}
                action["answer"][owned] = local["answer"]
                action["halt"][owned] = local["halt"]
            obs, _, terminated, truncated, info = env.step(action)
            if task_label is not None:
                obs["task_id"] = np.full(episodes, task_label)
            ended = (terminated | truncated)[mine] & ~finished
            solved[ended] = info["solved"][mine][ended]
            cells[ended] = info["cell_accuracy"][mine][ended]
            steps[ended] = info["steps"][mine][ended]
            finished |= ended
    env.close()
    if owned is None:
        return Evaluation(
            float(solved.mean()), float(cells.mean()), float(steps.mean()), int(steps.max())
        )
    total = sum_over_ranks([solved.sum(), cells.sum(), steps.sum()])
    most = max_over_ranks(int(steps.max()) if len(steps) else 0)
    return Evaluation(
        float(total[0] / episodes), float(total[1] / episodes), float(total[2] / episodes), most
    )


class TaskTrainer:
    """Trains an agent on one task's batched env, one reasoning step per optimizer step.

    The run's plugins wrap the training env, choose each new puzzle's reset options (per row, at
    autoreset), see the puzzles the agent starts on, add replayed puzzles and penalties to each
    update, and hear of every finished episode. The env state (puzzles in flight, carries)
    persists across :meth:`train` calls, so training can be split into chunks (for periodic
    evaluation and checkpoints).

    A plugin may send a row's next puzzle to another task of ``sequence`` with the reserved
    option ``{"task": j}`` (:class:`~trmgym.curricula.schedulers.Rehearsal`): the row then draws
    with task ``j``'s reset options, carries task ``j``'s label, and its puzzles are observed
    as task ``j``'s. Task ``j`` must be the same env with the same training arguments as the
    current task (one training env serves both); anything else is refused, naming both tasks.
    """

    def __init__(
        self,
        agent: Any,
        task: TaskSpec,
        *,
        batch_size: int,
        max_steps: int,
        canvas: tuple[int, int] | None,
        seed: int,
        plugins: Plugins | None = None,
        task_label: int | None = None,
        task_index: int = 0,
        sequence: Sequence[TaskSpec] | None = None,
    ) -> None:
        plugins = plugins if plugins is not None else Plugins([])
        self.task_index = task_index
        self.sequence = list(sequence) if sequence is not None else None
        #: per row, the task of the puzzle in flight and of the one after it (``{"task": j}``)
        self.row_task = np.full(batch_size, task_index, dtype=np.int64)
        self.next_row_task = self.row_task.copy()
        self._same_env: dict[int, bool] = {task_index: True}
        self.agent, self.task, self.task_label, self.plugins = agent, task, task_label, plugins
        env = task.make_vec(batch_size, train=True, max_steps=max_steps, canvas=canvas)
        self.env = plugins.wrap_env(env, task, True)
        rows = np.arange(batch_size)
        #: per row, the plugins' options of the puzzle in flight and of the one after it (the
        #: env draws a row's next puzzle the moment the current one ends)
        self.current_options: list[dict[str, Any] | None] = [None] * batch_size
        self.next_options: list[dict[str, Any] | None] = [None] * batch_size
        if plugins.chooses_options:  # the first puzzles' options, before they are drawn
            self._choose_options(rows)
            self.current_options = list(self.next_options)
            self.row_task = self.next_row_task.copy()
        self.obs, info = self.env.reset(seed=seed, options=task.options or None)
        if plugins.chooses_options:  # and the options of each row's next puzzle
            self._choose_options(rows)
        self.target = info["target"]
        self.carry = agent.initial_carry(batch_size)
        self.env_steps = 0
        self.episodes = 0
        self.solved = 0
        self.episode_steps = 0

    def _label(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.task_label is not None:  # labels are task indices (rehearsed rows: their own)
            labels = np.full(len(obs["grid"]), self.task_label)
            other = self.row_task != self.task_index
            labels[other] = self.row_task[other]
            obs = {**obs, "task_id": labels}
        return obs

    def _task_options(self, chosen: dict[str, Any], row: int) -> dict[str, Any] | None:
        """Env options of a row's next puzzle; resolves the reserved ``task`` key."""
        from trmgym.curricula.schedulers import TASK_KEY

        if TASK_KEY not in chosen:
            self.next_row_task[row] = self.task_index
            return chosen
        chosen = dict(chosen)
        j = chosen.pop(TASK_KEY)
        count = len(self.sequence) if self.sequence is not None else 1
        if isinstance(j, bool) or not isinstance(j, int | np.integer) or not 0 <= j < count:
            raise ValueError(
                f"option {TASK_KEY!r} must be a task index in 0..{count - 1} of the sequence, "
                f"got {j!r}"
            )
        j = int(j)
        if j not in self._same_env:
            self._same_env[j] = self.sequence[j].playable_on(self.task)
        if not self._same_env[j]:
            other = self.sequence[j]
            raise ValueError(
                f"task {other.name!r} ({other.env_id} {other.env_kwargs(train=True)}) cannot be "
                f"played on task {self.task.name!r}'s training env ({self.task.env_id} "
                f"{self.task.env_kwargs(train=True)}): a row can switch to a task that differs "
                f"only in its reset options (and sets every option key of this task's "
                f"{sorted(self.task.options)})"
            )
        self.next_row_task[row] = j
        if j == self.task_index:
            return chosen or None
        return {**self.sequence[j].options, **chosen}

    def _choose_options(self, rows: np.ndarray) -> None:
        options = self.plugins.reset_options(rows)
        if options is None:
            options = [None] * len(rows)
        try:
            for row, chosen in zip(rows.tolist(), options):
                if chosen is None:
                    self.next_row_task[row] = self.task_index
            env_options = [
                None if chosen is None else self._task_options(chosen, row)
                for row, chosen in zip(rows.tolist(), options)
            ]
            self.env.unwrapped.set_options(env_options, rows)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"reset options chosen by plugins {self.plugins.names} for task "
                f"{self.task.name!r}: {error}"
            ) from None
        for row, chosen in zip(rows.tolist(), options):
            self.next_options[row] = chosen

    def train(
        self, steps: int, on_step: Callable[[dict[str, float]], None] | None = None
    ) -> dict[str, float]:
        """Run ``steps`` env/optimizer steps; returns the last step's metrics."""
        metrics: dict[str, float] = {}
        plugins = self.plugins
        for _ in range(steps):
            obs = self._label(self.obs)
            fresh = (self.carry.steps == 0).cpu().numpy()
            if fresh.any():
                tasks = self.row_task[fresh]
                plugins.observe(obs["grid"][fresh], self.target[fresh], tasks)
            action, self.carry = self.agent.act(obs, self.carry, explore=True, learn=True)
            self.obs, reward, terminated, truncated, info = self.env.step(action)
            done = terminated | truncated
            metrics = self.agent.learn(
                self.target, reward, done, replay=plugins.replay_batch(), penalty=plugins.penalty
            )
            if done.any():
                self._episodes_end(np.flatnonzero(done), info["final_info"])
            self.carry = self.agent.reset_carry(self.carry, done)
            self.target = info["target"]
            self.env_steps += len(done)
            if on_step is not None:
                on_step(metrics)
        return metrics

    def _episodes_end(self, rows: np.ndarray, final: np.ndarray) -> None:
        solved = np.array([bool(final[row]["solved"]) for row in rows])
        cells = np.array([float(final[row]["cell_accuracy"]) for row in rows])
        steps = np.array([int(final[row]["steps"]) for row in rows], dtype=np.int64)
        self.solved += int(solved.sum())
        self.episode_steps += int(steps.sum())
        self.episodes += len(rows)
        finished = [self.current_options[row] for row in rows.tolist()]
        for row in rows.tolist():  # the rows' new puzzles were drawn with their next options
            self.current_options[row] = self.next_options[row]
        self.row_task[rows] = self.next_row_task[rows]
        self.plugins.on_episodes_end(self.task_index, rows, solved, cells, steps, finished)
        if self.plugins.chooses_options:
            self._choose_options(rows)

    def rollout_stats(self) -> dict[str, float | None]:
        """Solve rate and mean steps of training episodes since the last call (``None`` for
        both when no episode ended: undefined, not zero)."""
        ended = self.episodes
        stats = {
            "rollout/solve_rate": self.solved / ended if ended else None,
            "rollout/reasoning_steps": self.episode_steps / ended if ended else None,
            "rollout/episodes": float(self.episodes),
        }
        self.solved = self.episodes = self.episode_steps = 0
        return stats

    def close(self) -> None:
        self.env.close()


class PuzzleSampler:
    """Fresh training puzzles of any task of a sequence, placed on the common canvas.

    Used by strategies (multitask batches, EWC's Fisher). Draws come from one seeded generator
    whose state is checkpointed with the run; training puzzles (``train=True`` envs).
    """

    def __init__(self, tasks: list[TaskSpec], canvas: tuple[int, int], seed: int) -> None:
        self.tasks, self.canvas = tasks, canvas
        self.rng = np.random.default_rng(seed)
        self._sources: dict[int, Any] = {}

    def __call__(self, task_index: int, n: int) -> PuzzleMemory:
        from trmgym.envs.core import place
        from trmgym.envs.draw import draw_puzzles

        if task_index not in self._sources:
            env = self.tasks[task_index].make_vec(1, train=True, max_steps=1, canvas=self.canvas)
            core = env.unwrapped.core
            self._sources[task_index] = (core.source, core.holdout)
            env.close()
        source, holdout = self._sources[task_index]
        options = source.check_options(self.tasks[task_index].options)
        # the training envs' own draw: never a puzzle solved at reset, only the training split
        batch = draw_puzzles(source, self.rng, n, options, holdout)
        return PuzzleMemory(
            place(batch.grid, self.canvas), place(batch.target, self.canvas), np.full(n, task_index)
        )


def common_canvas(tasks: list[TaskSpec], canvas: tuple[int, int] | None) -> tuple[int, int]:
    """The canvas every task is placed on: ``canvas`` if given (checked), else the largest grid."""
    shapes = [task.native_shape() for task in tasks]
    needed = (max(s[0] for s in shapes), max(s[1] for s in shapes))
    if canvas is None:
        return needed
    canvas = (int(canvas[0]), int(canvas[1]))
    for task, shape in zip(tasks, shapes):
        if shape[0] > canvas[0] or shape[1] > canvas[1]:
            raise ValueError(
                f"canvas={canvas} is smaller than task {task.name!r}'s grid {shape}; "
                f"allowed: canvas >= {needed}"
            )
    return canvas


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``(fn(), seconds)``."""
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


# ------------------------------------------------------------------------- baseline agents
#: the action modes each kind of agent plays (the TRM answers whole grids)
AGENT_ACTION_MODES = {
    "trm": ("grid",),
    "sb3_ppo": ("edit", "walk"),
    "sb3_dqn": ("edit", "walk"),
    "sb3_maskable_ppo": ("edit", "walk"),
    "random": ("grid", "edit", "walk"),
}
#: the strategies a baseline agent can train under (the others use the TRM's model or replay)
BASELINE_STRATEGIES = ("naive", "scratch")
#: plugin hooks a self-training agent never calls: a plugin relying on one is refused
_TRM_ONLY_HOOKS = ("reset_options", "observe", "replay_batch", "penalty", "adapted")


def action_mode(task: TaskSpec) -> str:
    """The task's action mode (``grid`` unless its env arguments say otherwise)."""
    return str(task.env_kwargs(train=True).get("action_mode") or "grid")


def step_limit(task: TaskSpec, canvas: tuple[int, int], setting: int | None) -> int:
    """The reasoning-step limit of ``task``: ``setting`` (``run.max_reasoning_steps``) when
    given. For ``None``, one a perfect agent finishes within: the env's own default where the
    env has one (``max_episode_steps=None``; the larger of the training and evaluation envs'),
    else ``trmgym.DEFAULT_MAX_STEPS`` in grid mode and ``H * W + 1`` of the canvas in edit and
    walk modes (a write or a move per cell, then the halt)."""
    if setting is not None:
        return int(setting)
    limits = []
    for train in (True, False):
        try:
            env = task.make_vec(1, train=train, max_steps=None, canvas=canvas)
        except (TypeError, ValueError):  # an env that needs an explicit limit
            break
        limits.append(int(env.unwrapped.max_episode_steps))
        env.close()
    else:
        return max(limits)
    if action_mode(task) == "grid":
        return int(trmgym.DEFAULT_MAX_STEPS)
    return int(canvas[0]) * int(canvas[1]) + 1


def check_agent_fits(
    agent_name: str,
    tasks: Sequence[TaskSpec],
    *,
    strategy: str | None,
    plugins: Sequence[Any],
    distributed: bool,
) -> None:
    """Refuse, before any training, an agent the run cannot train.

    Raises:
        ValueError: naming ``agent`` and ``env.action_mode`` (the task) with the allowed
            combinations; for a baseline agent, naming ``strategy`` (only naive and scratch),
            ``curriculum`` or another plugin that needs the TRM's training loop, or a
            data-parallel (torchrun) start; ``agent=sb3_maskable_ppo`` on an env without
            ``action_masks()``.
    """
    allowed = AGENT_ACTION_MODES.get(agent_name, AGENT_ACTION_MODES["trm"])
    combos = "; ".join(f"agent={a}: {'|'.join(m)}" for a, m in AGENT_ACTION_MODES.items())
    for k, task in enumerate(tasks):
        mode = action_mode(task)
        if mode not in allowed:
            where = "env.action_mode" if len(tasks) == 1 else f"sequence.tasks[{k}].action_mode"
            raise ValueError(
                f"agent={agent_name} cannot play {where}={mode} (task {task.name!r}); allowed "
                f"combinations: {combos}"
            )
    if agent_name == "trm":
        return
    if distributed:
        raise ValueError(
            f"agent={agent_name} trains in one process; torchrun (data-parallel) runs need "
            "agent=trm: start it without torchrun"
        )
    if agent_name == "sb3_maskable_ppo":
        for task in tasks:
            env = task.make_vec(1, train=True, max_steps=1, canvas=None)
            masks = action_masks_of(env)
            env.close()
            if masks is None:
                raise ValueError(
                    f"agent=sb3_maskable_ppo needs an env with action_masks(); task "
                    f"{task.name!r} ({task.env_id}, env.action_mode={action_mode(task)}) has "
                    "none: use agent=sb3_ppo, or an env version that masks its actions"
                )
    if strategy not in BASELINE_STRATEGIES:
        raise ValueError(
            f"strategy={strategy} needs the TRM agent's model or replay; with agent={agent_name} "
            f"allowed: {', '.join(f'strategy={s}' for s in BASELINE_STRATEGIES)}"
        )
    for plugin in plugins:  # the run's plugins after the strategy
        hooks = [h for h in _TRM_ONLY_HOOKS if _plugin_overrides(plugin, h)]
        if not hooks:
            continue
        if plugin.name == "curriculum":
            raise ValueError(
                f"curriculum={getattr(plugin, 'kind', plugin.name)} chooses each row's reset "
                f"options in the TRM's training loop; agent={agent_name} trains on whole "
                "batches of the task's own options: leave the curriculum out (no curriculum= "
                "override; experiment=single_task where an experiment chooses one) or use "
                "agent=trm"
            )
        raise ValueError(
            f"plugin {plugin.name!r} implements {', '.join(hooks)}, which agent={agent_name} "
            "never calls (its training loop is SB3's); allowed with baseline agents: plugins "
            "that wrap envs (wrap_env), hear of finished episodes or log metrics"
        )


def _plugin_overrides(plugin: Any, hook: str) -> bool:
    from trmgym.plugins.base import Plugin

    return hook in vars(plugin) or getattr(type(plugin), hook) is not getattr(Plugin, hook)


def agent_spaces(task: TaskSpec, canvas: tuple[int, int], num_labels: int) -> tuple[Any, Any]:
    """``(observation space, action space)`` a baseline agent sees on ``task``: the env's
    spaces on ``canvas``, with ``task_id`` as ``Discrete(num_labels)`` (the same for every task
    of a sequence, :func:`~trmgym.agents.sb3_vec_env.labelled_observation_space`)."""
    from trmgym.agents.sb3_vec_env import labelled_observation_space

    env = task.make_vec(1, train=True, max_steps=1, canvas=canvas)
    spaces = (
        labelled_observation_space(env.single_observation_space, num_labels),
        env.single_action_space,
    )
    env.close()
    return spaces


def action_masks_of(env: Any) -> Any:
    """The env's ``action_masks`` method (through wrappers), or ``None`` when it has none."""
    masks = getattr(env, "action_masks", None)
    if masks is None and hasattr(env, "unwrapped"):
        masks = getattr(env.unwrapped, "action_masks", None)
    return masks


class EnvLearnerTrainer:
    """One training chunk of a self-training agent (:class:`~trmgym.agents.baseline_configs.EnvLearner`)
    on one task: the task's training env (target exposed, same-step autoreset) built fresh,
    wrapped by the run's plugins (``wrap_env(env, task, True)``) and then by
    :class:`~trmgym.agents.sb3_vec_env.SB3VecEnv`, reset with ``seed`` and the task's options.
    Finished episodes go to the plugins' ``on_episodes_end`` and to :meth:`rollout_stats`.

    Args:
        agent: the learner.
        task: the task.
        batch_size: puzzles stepped together.
        max_steps: the task's step limit.
        canvas: the run's common canvas.
        seed: the seed of the env's first reset.
        plugins: the run's plugins.
        task_label: the label the agent sees (the task's index; 0 without labels).
        num_labels: labels of the run (tasks with labels; 1 without).
        task_index: the task's index in the sequence.
    """

    def __init__(
        self,
        agent: Any,
        task: TaskSpec,
        *,
        batch_size: int,
        max_steps: int,
        canvas: tuple[int, int],
        seed: int,
        plugins: Plugins,
        task_label: int,
        num_labels: int,
        task_index: int,
    ) -> None:
        from trmgym.agents.sb3_vec_env import SB3VecEnv

        self.agent, self.plugins, self.task_index = agent, plugins, task_index
        env = task.make_vec(batch_size, train=True, max_steps=max_steps, canvas=canvas)
        self.vec_env = SB3VecEnv(
            plugins.wrap_env(env, task, True),
            seed=seed,
            options=task.options or None,
            task_label=task_label,
            num_labels=num_labels,
            on_episodes_end=self._episodes_end,
        )
        self.env_steps = 0
        self.episodes = self.solved = self.episode_steps = 0

    def train(
        self,
        env_steps: int,
        *,
        task_progress: tuple[int, int],
        on_progress: Callable[[int, dict[str, float]], None] | None = None,
    ) -> dict[str, float]:
        """Let the agent learn for its ``env_steps`` share; returns its last logged scalars."""
        result = self.agent.learn_chunk(
            self.vec_env, env_steps, task_progress=task_progress, on_progress=on_progress
        )
        self.env_steps += int(result.env_steps)
        return dict(result.metrics)

    def _episodes_end(
        self, rows: np.ndarray, solved: np.ndarray, cells: np.ndarray, steps: np.ndarray
    ) -> None:
        self.episodes += len(rows)
        self.solved += int(solved.sum())
        self.episode_steps += int(steps.sum())
        self.plugins.on_episodes_end(
            self.task_index, rows, solved, cells, steps, [None] * len(rows)
        )

    rollout_stats = TaskTrainer.rollout_stats

    def close(self) -> None:
        self.vec_env.close()
