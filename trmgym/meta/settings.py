"""Settings of the meta-learning room: the ``meta`` node (meta-training) and the ``fewshot`` node
(the few-shot transfer protocol, :mod:`trmgym.meta.fewshot`), checked at construction with errors
naming the key and the allowed values."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from trmgym.envs.arcgen_families import FAMILIES, FAMILY_NAMES
from trmgym.meta.tasks import check_count

__all__ = ["BACKENDS", "METHODS", "FewShotConfig", "MetaConfig", "TTTSettings"]

#: the MAML family's algorithms (:data:`trmgym.meta.maml.ALGORITHMS`)
META_ALGORITHMS = ("maml", "fomaml", "anil", "metasgd")
#: settings of the ``fewshot`` node that change how a run executes, not what it measures
EXECUTION_KEYS = ("workers",)
#: every few-shot method
METHODS = ("scratch", "pretrained", *META_ALGORITHMS, "memory", "ttt")
BACKENDS = ("torchfunc", "learn2learn")


def _check_list(name: str, value: Any, allowed: Sequence[str] | None = None) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"{name} must be a list, got {value!r}")
    items = list(value)
    if allowed is not None:
        bad = [v for v in items if v not in allowed]
        if bad:
            raise ValueError(f"{name} lists {bad[0]!r}; allowed: {list(allowed)}")
    if len(set(map(str, items))) != len(items):
        raise ValueError(f"{name} lists an entry twice: {items}")
    return items


def _check_number(name: str, value: Any, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


@dataclass
class MetaConfig:
    """Meta-training settings (the ``meta`` node): MAML's inner and outer loop.

    The outer update is the agent's update rule (:class:`~trmgym.agents.update.GradientUpdate`
    with ``agent.lr``, warm-up, clipping and EMA), shared by every trained method.
    """

    backend: str = "torchfunc"
    """``torchfunc`` (torch.func, the default) or ``learn2learn`` (only if it imports)."""
    meta_steps: int = 400
    """Outer-loop updates of every trained method (400 of 8 tasks: the same compute as 200 of 16,
    and MAML's lead over multi-task pretraining is larger and steadier across seeds: the README's
    measured figures)."""
    meta_batch: int = 8
    """Tasks per outer update."""
    train_shots: int = 3
    """Support pairs per meta-training task."""
    query: int = 2
    """Query pairs per meta-training task."""
    inner_lr: float = 0.1
    """Inner-loop SGD learning rate (Meta-SGD's initial per-parameter rate)."""
    inner_steps: int = 1
    """Inner-loop steps in meta-training."""
    supervision_steps: int = 1
    """TRM supervision steps per prediction (carry detached between them)."""
    log_every: int = 25
    """Outer updates between TensorBoard points of the meta-training loss."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"meta.backend must be one of {list(BACKENDS)}, got {self.backend!r}")
        for name in ("meta_steps", "meta_batch", "train_shots", "query", "inner_steps"):
            check_count(f"meta.{name}", getattr(self, name))
        check_count("meta.supervision_steps", self.supervision_steps)
        check_count("meta.log_every", self.log_every)
        _check_number("meta.inner_lr", self.inner_lr)


@dataclass
class TTTSettings:
    """Test-time training settings (``fewshot.ttt``); see :class:`trmgym.meta.ttt.TTTConfig`.

    The TRM reads no demonstrations, so an augmentation keeps a task's rule only if the rule
    commutes with it: a colour permutation turns a colour map into another map, a quarter turn
    turns a left-right flip into an up-down one. ``dihedral`` / ``colors`` switch them off.
    """

    steps: int = 25
    """Fine-tuning steps per task (the ``steps`` the ``ttt`` entries report)."""
    optimizer: str = "sgd"
    """``sgd`` (the meta-learned inits are tuned for SGD steps) or ``adam``."""
    lr: float = 0.1
    """Learning rate."""
    batch_size: int = 8
    """Augmented pairs per step (8: half the fine-tuning compute of 16)."""
    augmentations: int = 8
    """Augmented copies of the demos trained on (copy 0: identity)."""
    vote_augmentations: int = 8
    """Views of each test input voted over (view 0: identity)."""
    dihedral: bool = True
    """Augment with the 8 dihedral transforms."""
    colors: bool = False
    """Augment with colour permutations (colour 0 fixed); off by default: they change a colour
    map, the commonest ARCGen rule."""


@dataclass
class FewShotConfig:
    """The few-shot protocol (the ``fewshot`` node)."""

    families: list[str] = field(default_factory=lambda: ["colour_map", "translate", "count_to_bar"])
    """Meta-training families (each needs more programs than the two task counts below)."""
    heldout_families: list[str] = field(default_factory=lambda: ["flip", "gravity"])
    """Families never meta-trained on (the ``heldout_families`` split); may be empty."""
    train_tasks_per_family: int = 64
    """Meta-training tasks (programs) per family."""
    heldout_tasks_per_family: int = 8
    """Held-out tasks per family in each ARCGen split."""
    task_seed: int = 0
    """Seed of the ARCGen task parameters."""
    min_size: int = 3
    """Smallest grid side."""
    max_size: int = 6
    """Largest grid side; the model's canvas is ``max_size x max_size``."""
    arc_tasks: int = 8
    """Real ARC-AGI-1 evaluation tasks whose grids fit the canvas (at most this many, in id order;
    0: no ``arc`` split)."""
    k_shots: list[int] = field(default_factory=lambda: [1, 2, 3])
    """Support sizes evaluated."""
    steps: list[int] = field(default_factory=lambda: [0, 1, 5, 10, 25])
    """Adaptation steps at which the query accuracy is scored."""
    query: int = 4
    """Query pairs per held-out ARCGen task."""
    methods: list[str] = field(
        default_factory=lambda: ["scratch", "pretrained", "maml", "fomaml", "anil", "memory", "ttt"]
    )
    """Methods to compare, from :data:`METHODS`."""
    finetune_lr: float | None = None
    """SGD learning rate with which ``scratch`` and ``pretrained`` adapt; null: meta.inner_lr."""
    ttt: TTTSettings = field(default_factory=TTTSettings)
    workers: int = 2
    """Processes that train and score the methods side by side (``ttt`` runs after them, in the
    main process). Each gets ``run.threads // workers`` torch threads (at least 1), so
    ``workers=2`` on ``run.threads=2`` gives every method the numbers of a one-thread run. On 2
    CPU cores a small TRM gains little from a second thread (~1.1x) and ~1.5x from a second
    process. 1: one method after another in this process. An execution setting, like
    ``run.threads``: not part of the resume guard."""

    def __post_init__(self) -> None:
        if isinstance(self.ttt, Mapping):
            unknown = sorted(set(self.ttt) - set(TTTSettings.__dataclass_fields__))
            if unknown:
                raise ValueError(
                    f"fewshot.ttt.{unknown[0]} is not a TTT setting; allowed: "
                    f"{sorted(TTTSettings.__dataclass_fields__)}"
                )
            self.ttt = TTTSettings(**self.ttt)
        self.families = _check_list("fewshot.families", self.families, FAMILY_NAMES)
        if not self.families:
            raise ValueError("fewshot.families must name at least one family")
        self.heldout_families = _check_list(
            "fewshot.heldout_families", self.heldout_families, FAMILY_NAMES
        )
        both = sorted(set(self.families) & set(self.heldout_families))
        if both:
            raise ValueError(
                f"fewshot.heldout_families must not repeat a meta-training family, got {both}"
            )
        for name in ("train_tasks_per_family", "heldout_tasks_per_family", "query"):
            check_count(f"fewshot.{name}", getattr(self, name))
        check_count("fewshot.workers", self.workers)
        check_count("fewshot.task_seed", self.task_seed, 0)
        check_count("fewshot.arc_tasks", self.arc_tasks, 0)
        check_count("fewshot.max_size", self.max_size, 3)
        check_count("fewshot.min_size", self.min_size, 3)
        if self.min_size > self.max_size or self.max_size > 30:
            raise ValueError(
                f"fewshot.min_size..max_size must satisfy 3 <= min_size <= max_size <= 30, "
                f"got {self.min_size}..{self.max_size}"
            )
        self.k_shots = [check_count("fewshot.k_shots", k) for k in self.k_shots]
        self.steps = [check_count("fewshot.steps", s, 0) for s in self.steps]
        for name in ("k_shots", "steps"):
            values = getattr(self, name)
            if not values or values != sorted(set(values)):
                raise ValueError(
                    f"fewshot.{name} must be a non-empty increasing list, got {values}"
                )
        self.methods = _check_list("fewshot.methods", self.methods, METHODS)
        if not self.methods:
            raise ValueError(f"fewshot.methods must list at least one of {list(METHODS)}")
        if self.finetune_lr is not None:
            _check_number("fewshot.finetune_lr", self.finetune_lr)
        for name in ("steps", "batch_size", "augmentations", "vote_augmentations"):
            check_count(f"fewshot.ttt.{name}", getattr(self.ttt, name))
        _check_number("fewshot.ttt.lr", self.ttt.lr)
        if self.ttt.optimizer not in ("sgd", "adam"):
            raise ValueError(
                f"fewshot.ttt.optimizer must be one of ['sgd', 'adam'], got {self.ttt.optimizer!r}"
            )
        for name in ("dihedral", "colors"):
            if not isinstance(getattr(self.ttt, name), bool):
                raise ValueError(
                    f"fewshot.ttt.{name} must be true or false, got {getattr(self.ttt, name)!r}"
                )
        for family in self.families:
            need = self.train_tasks_per_family + self.heldout_tasks_per_family
            have = FAMILIES[family].num_programs
            if have < need:
                raise ValueError(
                    f"fewshot.families: {family!r} has {have} programs, fewer than "
                    f"train_tasks_per_family + heldout_tasks_per_family = {need}, so its held-out "
                    f"tasks would repeat meta-training programs; move it to heldout_families or "
                    f"lower the task counts"
                )


def protocol_dict(config: FewShotConfig) -> dict[str, Any]:
    """``config`` as a dict without its execution settings (:data:`EXECUTION_KEYS`): what the
    resume guards compare and ``fewshot.json`` records."""
    return {k: v for k, v in asdict(config).items() if k not in EXECUTION_KEYS}
