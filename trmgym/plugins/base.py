"""The training-loop seam: plugins with no-op hooks that return values, and their ordered list.

Everything that changes *how* an agent trains on a task sequence — continual strategies, curiosity
(intrinsic rewards), curricula (per-row reset options), memory writes, meta-learning — is a
:class:`Plugin`. A run holds an ordered :class:`Plugins` list and calls its hooks; a hook returns a
value (or ``None``) and never reaches into the trainer (the plugin shape of Avalanche's
``SupervisedPlugin`` and Syllabus' curriculum contract, without mutable trainer access).

Hooks, in the order a run calls them::

    before_task(i) -> TaskDirective | None         a task begins (e.g. a fresh agent)
    wrap_env(env, task, train) -> env              each env a task builds (training and evaluation)
    reset_options(rows) -> [options | None] | None options of the next puzzle of each given row
    observe(grid, target, task)                    puzzles the agent starts on while training
    replay_batch() -> PuzzleMemory | None          extra supervised puzzles for this update
    penalty(model) -> Tensor | None                a regulariser added to this update's loss
    on_episodes_end(task, rows, solved, cell_accuracy, steps, options)   finished episodes
    on_chunk_end(task, step, env_steps)            a training chunk ended (global step)
    metrics(model) -> {key: value} | None          scalars logged after each training chunk
    after_task(i, model, loss_fn)                  the task's training is over (consolidation)
    results() -> {key: value} | None               results.json[<plugin name>] at the end
    state_dict() / load_state_dict(state)          checkpointed by plugin name

:class:`Plugins` combines the answers: directives are OR-ed, envs are wrapped in list order, per-row
options are merged (a later plugin wins on a shared key), replay batches are concatenated,
penalties summed and metrics merged (a key given twice is an error).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

__all__ = ["Plugin", "Plugins", "PuzzleMemory", "TaskDirective"]


class PuzzleMemory(NamedTuple):
    """A batch of supervised puzzles: grids, targets ``[n, H, W]`` and task labels ``[n]``."""

    grid: np.ndarray
    target: np.ndarray
    task: np.ndarray


class TaskDirective(NamedTuple):
    """What a plugin asks of the run when a task begins."""

    fresh_agent: bool = False
    """Start the task from a new, untrained agent (the ``scratch`` reference)."""


class Plugin:
    """A training plugin: every hook is a no-op; subclasses override the ones they need.

    Attributes:
        name: the plugin's key in checkpoints and results; unique within a run.
    """

    name: str = "plugin"

    # ------------------------------------------------------------------ task boundaries
    def before_task(self, task_index: int) -> TaskDirective | None:
        """Task ``task_index`` (0-based position in the sequence) is about to be trained."""
        return None

    def after_task(
        self,
        task_index: int,
        model: nn.Module,
        loss_fn: Callable[[PuzzleMemory], torch.Tensor],
    ) -> None:
        """Training on ``task_index`` is over; ``loss_fn(batch)`` is the model's supervised loss."""

    # ------------------------------------------------------------------------------ envs
    def wrap_env(self, env: Any, task: Any, train: bool) -> Any:
        """Return ``env`` or a Gymnasium (vector) wrapper around it.

        Args:
            env: the task's vector env (``num_envs`` puzzles).
            task: the :class:`~trmgym.curricula.TaskSpec` it was built from.
            train: ``True`` for the training env, ``False`` for evaluation envs.
        """
        return env

    def reset_options(self, rows: np.ndarray) -> Sequence[Mapping[str, Any] | None] | None:
        """Reset options of the next puzzle of each row in ``rows`` (``[k]`` int indices).

        Returns ``None`` (no preference) or one mapping (or ``None``) per row, e.g.
        ``[{"blanks": 6}, ...]``; they are merged over the task's own options. The trainer asks
        when a row starts a puzzle, for the puzzle *after* it (the env draws the next puzzle the
        moment the current one ends); every new training env (one per chunk of
        ``run.eval_every`` steps) asks for all its rows twice: their first puzzles, then the next
        ones. Choices not yet drawn when a chunk ends are dropped; :meth:`on_episodes_end`
        receives the options each finished puzzle was actually drawn with.
        """
        return None

    def on_episodes_end(
        self,
        task: int,
        rows: np.ndarray,
        solved: np.ndarray,
        cell_accuracy: np.ndarray,
        steps: np.ndarray,
        options: Sequence[Mapping[str, Any] | None],
    ) -> None:
        """Training episodes ended on ``rows`` (``[k]``) of task ``task``.

        Args:
            task: the task's index in the sequence.
            rows: batch rows whose puzzle ended (halted or truncated).
            solved: ``[k]`` bool, exact answer at the end.
            cell_accuracy: ``[k]`` float in [0, 1].
            steps: ``[k]`` int, reasoning steps taken.
            options: the per-row reset options each finished puzzle was drawn with (what
                :meth:`reset_options` chose for it, merged over the plugins), ``None`` where no
                plugin chose (the task's own options) — the level or task to credit the outcome to.
        """

    # -------------------------------------------------------------------------- updates
    def observe(self, grid: np.ndarray, target: np.ndarray, task: np.ndarray) -> None:
        """Puzzles the agent just started on: ``grid``, ``target`` ``[n, H, W]``, ``task`` ``[n]``."""

    def replay_batch(self) -> PuzzleMemory | None:
        """Extra supervised puzzles mixed into the next update (``None``: none)."""
        return None

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        """A scalar added to the next update's loss (``None``: none)."""
        return None

    # --------------------------------------------------------------------------- logging
    def on_chunk_end(self, task_index: int, step: int, env_steps: int) -> None:
        """A training chunk of task ``task_index`` ended at global optimizer step ``step``
        (counted over the whole sequence), after ``env_steps`` env steps in the run so far (all
        puzzles of all ranks: one optimizer step is ``run.batch_size`` env steps). Called before
        :meth:`metrics`, and before the chunk's checkpoint."""

    # ------------------------------------------------------------------------ evaluation
    def adapted(
        self, agent: Any, grid: np.ndarray, task: np.ndarray | None
    ) -> contextlib.AbstractContextManager[None] | None:
        """A context in which ``agent`` answers held-out puzzles ``grid`` (``[n, H, W]`` ints,
        task labels ``task`` ``[n]`` or ``None``): test-time adaptation, e.g. memory-based
        parameter adaptation (Sprechmann et al. 2018). Entered inside the agent's evaluation
        weights (``eval_weights()``) before the first step of an evaluation and left after its
        last; whatever it changes in the agent it must restore on exit, exactly. ``None``: the
        agent as it is. TRM agents only."""
        return None

    def results(self) -> Mapping[str, Any] | None:
        """What the plugin adds to results.json, under its :attr:`name` (``None``: nothing);
        plain JSON values. A name that is already a results.json key is refused."""
        return None

    def metrics(self, model: nn.Module) -> Mapping[str, float | None] | None:
        """Scalars to log after each training chunk, keyed ``<room>/<name>`` (e.g.
        ``memory/occupancy``); ``None`` values are undefined and not logged."""
        return None

    # ------------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly (tensors, numpy arrays and plain values)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""


class Plugins(Sequence[Plugin]):
    """An ordered list of plugins, called as one.

    Args:
        plugins: the run's plugins, in calling order; names must be unique.

    Raises:
        TypeError: an entry is not a :class:`Plugin`.
        ValueError: two plugins share a name.
    """

    def __init__(self, plugins: Sequence[Plugin]) -> None:
        plugins = list(plugins)
        for k, plugin in enumerate(plugins):
            if not isinstance(plugin, Plugin):
                raise TypeError(
                    f"plugins[{k}] must be a trmgym Plugin, got {type(plugin).__name__}"
                )
        names = [p.name for p in plugins]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(
                f"plugin names must be unique within a run (they key the checkpoint; the "
                f"strategy is a plugin named after it, e.g. 'replay'); repeated: {repeated}"
            )
        self._plugins = plugins
        # only plugins that override a hook are asked (the per-step hooks run every step)
        self._options = [p for p in plugins if _overrides(p, "reset_options")]
        self._episodes = [p for p in plugins if _overrides(p, "on_episodes_end")]

    def __getitem__(self, index: int) -> Plugin:  # type: ignore[override]
        return self._plugins[index]

    def __len__(self) -> int:
        return len(self._plugins)

    def __iter__(self) -> Iterator[Plugin]:
        return iter(self._plugins)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self._plugins]

    @property
    def chooses_options(self) -> bool:
        """Whether any plugin chooses per-row reset options."""
        return bool(self._options)

    # ------------------------------------------------------------------ task boundaries
    def before_task(self, task_index: int) -> TaskDirective:
        fresh = False
        for plugin in self._plugins:
            directive = plugin.before_task(task_index)
            fresh |= bool(directive is not None and directive.fresh_agent)
        return TaskDirective(fresh_agent=fresh)

    def after_task(
        self, task_index: int, model: nn.Module, loss_fn: Callable[[PuzzleMemory], torch.Tensor]
    ) -> None:
        for plugin in self._plugins:
            plugin.after_task(task_index, model, loss_fn)

    # ------------------------------------------------------------------------------ envs
    def wrap_env(self, env: Any, task: Any, train: bool) -> Any:
        for plugin in self._plugins:
            wrapped = plugin.wrap_env(env, task, train)
            if wrapped is None:
                raise TypeError(f"plugin {plugin.name!r}: wrap_env must return an env, got None")
            env = wrapped
        return env

    def reset_options(self, rows: np.ndarray) -> list[dict[str, Any] | None] | None:
        """Per-row options merged over the plugins (later wins), or ``None`` when none chose."""
        merged: list[dict[str, Any] | None] | None = None
        for plugin in self._options:
            chosen = plugin.reset_options(rows)
            if chosen is None:
                continue
            if isinstance(chosen, Mapping | str | bytes) or not isinstance(chosen, Sequence):
                raise TypeError(
                    f"plugin {plugin.name!r}: reset_options must return None or a list with one "
                    f"mapping (or None) per row, got {type(chosen).__name__}"
                )
            if len(chosen) != len(rows):
                raise ValueError(
                    f"plugin {plugin.name!r}: reset_options returned {len(chosen)} entries for "
                    f"{len(rows)} rows; allowed: one mapping or None per row"
                )
            if merged is None:
                merged = [None] * len(rows)
            for k, options in enumerate(chosen):
                if options is None:
                    continue
                if not isinstance(options, Mapping):
                    raise TypeError(
                        f"plugin {plugin.name!r}: reset_options entry {k} must be a mapping or "
                        f"None, got {options!r}"
                    )
                merged[k] = {**(merged[k] or {}), **dict(options)}
        return merged

    def on_episodes_end(
        self,
        task: int,
        rows: np.ndarray,
        solved: np.ndarray,
        cell_accuracy: np.ndarray,
        steps: np.ndarray,
        options: Sequence[Mapping[str, Any] | None],
    ) -> None:
        for plugin in self._episodes:
            plugin.on_episodes_end(task, rows, solved, cell_accuracy, steps, options)

    # -------------------------------------------------------------------------- updates
    def observe(self, grid: np.ndarray, target: np.ndarray, task: np.ndarray) -> None:
        for plugin in self._plugins:
            plugin.observe(grid, target, task)

    def replay_batch(self) -> PuzzleMemory | None:
        batches = [b for b in (p.replay_batch() for p in self._plugins) if b is not None]
        if len(batches) <= 1:
            return batches[0] if batches else None
        return PuzzleMemory(*(np.concatenate(column) for column in zip(*batches)))

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        total = None
        for plugin in self._plugins:
            term = plugin.penalty(model)
            if term is None:
                continue
            if not isinstance(term, torch.Tensor) or term.numel() != 1:
                raise TypeError(
                    f"plugin {plugin.name!r}: penalty must return None or a scalar tensor, got "
                    f"{type(term).__name__}{tuple(term.shape) if torch.is_tensor(term) else ''}"
                )
            if not bool(torch.isfinite(term.detach()).all()):
                raise FloatingPointError(
                    f"plugin {plugin.name!r}: penalty is {float(term.detach())}; a non-finite "
                    "loss would turn every weight into NaN"
                )
            total = term.reshape(()) if total is None else total + term.reshape(())
        return total

    # ------------------------------------------------------------------------ evaluation
    @contextlib.contextmanager
    def adapted(self, agent: Any, grid: np.ndarray, task: np.ndarray | None) -> Iterator[None]:
        """Every plugin's :meth:`Plugin.adapted` context, entered in plugin order."""
        with contextlib.ExitStack() as stack:
            for plugin in self._plugins:
                context = plugin.adapted(agent, grid, task)
                if context is not None:
                    stack.enter_context(context)
            yield

    # --------------------------------------------------------------------------- logging
    def on_chunk_end(self, task_index: int, step: int, env_steps: int) -> None:
        for plugin in self._plugins:
            plugin.on_chunk_end(task_index, step, env_steps)

    def results(self) -> dict[str, Any]:
        """``{plugin name: its results block}`` of the plugins that have one."""
        blocks = {}
        for plugin in self._plugins:
            block = plugin.results()
            if block is None:
                continue
            if not isinstance(block, Mapping):
                raise TypeError(
                    f"plugin {plugin.name!r}: results must return None or a mapping, got "
                    f"{type(block).__name__}"
                )
            blocks[plugin.name] = dict(block)
        return blocks

    def metrics(self, model: nn.Module) -> dict[str, float | None]:
        """Every plugin's :meth:`Plugin.metrics`, merged."""
        merged: dict[str, float | None] = {}
        for plugin in self._plugins:
            values = plugin.metrics(model)
            if values is None:
                continue
            if not isinstance(values, Mapping):
                raise TypeError(
                    f"plugin {plugin.name!r}: metrics must return None or a mapping of scalar "
                    f"values, got {type(values).__name__}"
                )
            repeated = sorted(set(values) & set(merged))
            if repeated:
                raise ValueError(f"plugin {plugin.name!r}: metrics {repeated} are logged twice")
            merged.update(values)
        return merged

    # ------------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, dict[str, Any]]:
        """``{plugin name: its state}``."""
        return {p.name: p.state_dict() for p in self._plugins}

    def load_state_dict(self, states: Mapping[str, Mapping[str, Any]]) -> None:
        """Restore every plugin from ``{name: state}``; a missing or extra name is an error."""
        missing = [p.name for p in self._plugins if p.name not in states]
        extra = sorted(set(states) - set(self.names))
        if missing or extra:
            raise ValueError(
                f"checkpoint plugins {sorted(states)} do not match this run's {self.names} "
                f"(missing: {missing}, unknown: {extra})"
            )
        for plugin in self._plugins:
            plugin.load_state_dict(states[plugin.name])


def _overrides(plugin: Plugin, hook: str) -> bool:
    """Whether ``plugin`` implements ``hook`` (in its class or set on the instance)."""
    return hook in vars(plugin) or getattr(type(plugin), hook) is not getattr(Plugin, hook)
