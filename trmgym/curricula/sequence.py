"""Task sequences: what a continual run trains on, in order.

A :class:`TaskSpec` names one task — a registered trmgym env id, its constructor arguments,
training-only and evaluation-only overrides (e.g. Sudoku's ``split``, ARC's ``pairs``), and
``reset`` options fixed for every episode (e.g. one ARCGen program by ``task_id``). A
:class:`TaskSequence` is an ordered list of uniquely named specs, read from a
``configs/sequence/*.yaml`` node::

    name: quickstart
    tasks:
      - {name: recolour, id: trmgym/ARCGen-v0, families: [colour_map], options: {task_id: 0}}
      - {name: sudoku4, id: trmgym/Sudoku-v0, size: 4, train: {split: train}, eval: {split: test}}
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from trmgym.checks import positive_int

#: keys of a task entry that are not env constructor arguments
RESERVED_KEYS = ("id", "name", "train", "eval", "options", "train_steps", "holdout")
#: env arguments that choose which puzzles a split holds; an entry setting any of them in its
#: ``train``/``eval`` sections has explicit splits, so no automatic held-out split is added
SPLIT_KEYS = ("split", "pairs", "holdout")


def _trmgym_ids() -> list[str]:
    return sorted(env_id for env_id in gym.registry if env_id.startswith("trmgym/"))


@dataclass
class TaskSpec:
    """One task of a sequence: an env id, its arguments, and train/eval overrides."""

    name: str
    """Display name (unique within a sequence)."""
    env_id: str
    """A registered trmgym env id."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Env arguments shared by training and evaluation."""
    train_kwargs: dict[str, Any] = field(default_factory=dict)
    """Arguments only for training (e.g. ``augment: true``)."""
    eval_kwargs: dict[str, Any] = field(default_factory=dict)
    """Arguments only for evaluation (e.g. ``split: test``)."""
    options: dict[str, Any] = field(default_factory=dict)
    """``reset`` options of every episode (e.g. ``task_id: 3`` picks one ARCGen program)."""
    train_steps: int | None = None
    """This task's training budget in optimizer steps; ``None``: the run's ``run.train_steps``."""
    holdout: bool = True
    """Evaluate on puzzles disjoint from the training puzzles. When the entry has no explicit
    splits (no ``split``/``pairs``/``holdout`` in ``train``/``eval``), the env family's own
    held-out split is added (its source's ``held_out_kwargs``): Sudoku ``split=train|test`` (base
    puzzles, so augmented copies never cross), ARC ``pairs=demos|test``, others
    ``holdout=train|test`` (a fixed hash of each puzzle). ``False`` opts out: evaluation then
    draws from the training pool."""

    def __post_init__(self) -> None:
        if self.env_id not in _trmgym_ids():
            raise ValueError(
                f"task {self.name!r}: env_id must be one of {_trmgym_ids()}, got {self.env_id!r}"
            )
        positive_int(self.train_steps, f"task {self.name!r}: train_steps", allow_none=True)
        if not isinstance(self.holdout, bool):
            raise ValueError(
                f"task {self.name!r}: holdout must be true or false, got {self.holdout!r}"
            )

    @property
    def explicit_splits(self) -> bool:
        """Whether the entry chooses its training and evaluation puzzles itself."""
        return any(k in self.train_kwargs or k in self.eval_kwargs for k in SPLIT_KEYS)

    def env_kwargs(self, *, train: bool) -> dict[str, Any]:
        """Constructor arguments of the task's training (or evaluation) env."""
        kwargs = {**self.kwargs, **(self.train_kwargs if train else self.eval_kwargs)}
        if self.holdout and not self.explicit_splits:
            kwargs.update(self.held_out_kwargs()[0 if train else 1])
        return kwargs

    def held_out_kwargs(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The env family's (training, evaluation) split arguments (see :attr:`holdout`)."""
        from gymnasium.envs.registration import load_env_creator

        env_cls = load_env_creator(gym.spec(self.env_id).vector_entry_point)
        return env_cls.source_cls.held_out_kwargs

    def make_vec(
        self, num_envs: int, *, train: bool, max_steps: int, canvas: tuple[int, int] | None
    ) -> gym.vector.VectorEnv:
        """The task's native vector env (training: target exposed, same-step autoreset)."""
        kwargs = self.env_kwargs(train=train)
        if canvas is not None:
            kwargs["canvas"] = tuple(canvas)
        return gym.make_vec(
            self.env_id,
            num_envs=num_envs,
            expose_target=train,
            autoreset_mode="same_step" if train else "next_step",
            max_episode_steps=max_steps,
            **kwargs,
        )

    def check(self, probes: Sequence[Mapping[str, Any]] = ()) -> None:
        """Build the task's training and evaluation envs and check its reset options (and any
        extra evaluation ``probes`` over them), so a bad argument fails before any training.

        Raises:
            ValueError: naming the task and the bad argument or option.
        """
        for train in (True, False):
            try:
                env = self.make_vec(1, train=train, max_steps=1, canvas=None)
            except (TypeError, ValueError) as error:
                side = "train" if train else "eval"
                raise ValueError(f"task {self.name!r} ({side} env): {error}") from None
            source = env.unwrapped.source
            env.close()
            for extra in [{}, *(probes if not train else ())]:
                options = {**self.options, **dict(extra)}
                try:
                    source.check_options(options)
                except (TypeError, ValueError) as error:
                    what = "run.difficulty_probe" if extra else "options"
                    raise ValueError(f"task {self.name!r}: {what} {options}: {error}") from None

    def playable_on(self, other: TaskSpec) -> bool:
        """Whether this task's puzzles can be drawn by ``other``'s training env through per-row
        reset options: the same env id and training arguments, and this task's options set every
        option key of ``other``'s (an override merges over the env's base options and cannot
        unset a key)."""
        return (
            self.env_id == other.env_id
            and self.env_kwargs(train=True) == other.env_kwargs(train=True)
            and set(other.options) <= set(self.options)
        )

    def native_shape(self) -> tuple[int, int]:
        """The task's grid shape without a canvas."""
        env = self.make_vec(1, train=False, max_steps=1, canvas=None)
        shape = env.single_observation_space["grid"].shape
        env.close()
        return int(shape[0]), int(shape[1])

    @classmethod
    def from_mapping(cls, entry: Mapping[str, Any], where: str = "task") -> TaskSpec:
        """Build from a config entry
        ``{id, name?, train?, eval?, options?, train_steps?, holdout?, **env}``.

        ``where`` names the entry in error messages (e.g. ``sequence.tasks[2]``); ``None`` values
        are dropped so a config can leave an argument at its default.
        """
        if not isinstance(entry, Mapping) or "id" not in entry:
            raise ValueError(f"{where} must be a mapping with an 'id' key (one of {_trmgym_ids()})")
        entry = dict(entry)
        env_id = entry.pop("id")
        if env_id not in _trmgym_ids():
            raise ValueError(f"{where}.id must be one of {_trmgym_ids()}, got {env_id!r}")
        name = str(entry.pop("name", None) or env_id.split("/")[-1])
        sections = {}
        for key in ("train", "eval", "options"):
            value = entry.pop(key, None) or {}
            if not isinstance(value, Mapping):
                raise ValueError(f"{where}.{key} must be a mapping, got {value!r}")
            sections[key] = dict(value)
        steps = positive_int(
            entry.pop("train_steps", None), f"{where}.train_steps", allow_none=True
        )
        holdout = entry.pop("holdout", True)
        if not isinstance(holdout, bool):
            raise ValueError(f"{where}.holdout must be true or false, got {holdout!r}")
        for key in ("max_steps", "max_episode_steps"):
            if key in entry:
                raise ValueError(
                    f"{where}.{key}: a run's step limit is run.max_reasoning_steps (null: each "
                    "env's own default for its action mode), not an env key"
                )
        kwargs = {k: v for k, v in entry.items() if v is not None}
        return cls(
            name=name,
            env_id=env_id,
            kwargs=kwargs,
            train_kwargs=sections["train"],
            eval_kwargs=sections["eval"],
            options=sections["options"],
            train_steps=steps,
            holdout=holdout,
        )


class TaskSequence:
    """An ordered list of uniquely named :class:`TaskSpec`.

    Args:
        tasks: the specs, in training order (at least one).
        name: the sequence's name (recorded in results).
    """

    def __init__(self, tasks: list[TaskSpec], name: str = "sequence") -> None:
        if not tasks:
            raise ValueError("a task sequence needs at least one task")
        names = [task.name for task in tasks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"task names must be unique within a sequence; repeated: {duplicates}")
        self.tasks, self.name = list(tasks), name

    @classmethod
    def from_config(cls, node: Mapping[str, Any], where: str = "sequence") -> TaskSequence:
        """From ``{name, tasks: [...]}`` (a ``configs/sequence/*.yaml`` node as a dict)."""
        entries = node.get("tasks") if isinstance(node, Mapping) else None
        if not entries:
            raise ValueError(f"{where}.tasks is empty or missing; list at least one task")
        tasks = [TaskSpec.from_mapping(e, f"{where}.tasks[{k}]") for k, e in enumerate(entries)]
        return cls(tasks, str(node.get("name", "sequence")))

    @property
    def names(self) -> list[str]:
        return [task.name for task in self.tasks]

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[TaskSpec]:
        return iter(self.tasks)

    def __getitem__(self, index: int) -> TaskSpec:
        return self.tasks[index]
