"""The few-shot transfer protocol: which initialisation adapts fastest to a new task from k demos?

Held-out tasks come in three splits, none of which is ever seen in meta-training (checked at
construction, :meth:`FewShotSplits.check_disjoint`):

- ``heldout_params``: ARCGen tasks of the meta-training families with held-out parameters — the
  family's programs after the first ``train_tasks_per_family`` in its seeded order, which differ
  from every meta-training program (a family with too few programs is refused);
- ``heldout_families``: ARCGen tasks of families never meta-trained on;
- ``arc``: real ARC-AGI-1 evaluation tasks (the hard case) whose grids all fit the canvas; their
  training pairs are the support set and their test pairs the query set.

Methods (each an initialisation plus an adaptation rule; all adapt by plain SGD on the support
set, at ``fewshot.finetune_lr`` for the untrained and multi-task initialisations and at the
meta-learned rule's own inner learning rate for the meta-learned ones):

- ``scratch``: the seeded random initialisation;
- ``pretrained``: multi-task training on every support and query pair of the meta-training
  batches (same tasks, pairs, optimiser and number of updates as the meta-learners);
- ``maml``, ``fomaml``, ``anil``, ``metasgd``: :class:`~trmgym.meta.maml.MAML` meta-training
  (Finn et al. 2017; first-order; Raghu et al. 2020; Li et al. 2017);
- ``memory``: the TRM with an associative memory bank (``agent.memory``; its defaults when null),
  multi-task trained like ``pretrained`` but reading each task's support states; it adapts by
  writing a task's support states into the bank and reading them at query time, with no gradient
  step, so it is scored at step 0 only (:mod:`trmgym.meta.episodic`);
- ``ttt``: test-time training with augmentation voting (:mod:`trmgym.meta.ttt`) on top of the
  best gradient-adapted method (highest ``heldout_params`` accuracy at 5 steps with the most
  demos; ``memory`` is not a candidate: its bank is not fine-tuned).

Scores are exact accuracy — the fraction of query grids answered exactly — after each of
``fewshot.steps`` adaptation steps with each ``k`` of ``fewshot.k_shots`` support demos, averaged
over the split's tasks with a 95% percentile-bootstrap interval over tasks. ``ttt`` is scored
ARC's way (pass@1 of its top-voted answer per query grid).

Written to the run directory: ``fewshot.json``::

    {"methods": {name: [{"split": s, "k_shot": k, "steps": [...], "accuracy": [...],
                          "ci95": [[lo, hi], ...], "tasks": n}, ...]},
     "heldout_tasks": {"heldout_params": [ids...], "heldout_families": [ids...], "arc": [ids...]},
     "meta_training_tasks": [ids...], "best": name, "config": {...}, "complete": bool}

``plots/fewshot.png``, a section of ``report.html`` and TensorBoard scalars
(``fewshot/<split>/<method>/k<k>`` over adaptation steps; ``meta/<method>/loss`` over updates).
A run started again skips the methods already in ``fewshot.json`` (resume granularity: one
method); one with a different configuration is refused, naming the first differing key.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import as_completed
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from trmgym.agents.memory_reader import MemoryConfig
from trmgym.agents.trm import TRM
from trmgym.agents.trm_agent import gradient_update
from trmgym.agents.update import GradientUpdate
from trmgym.atomic import write_atomic, write_text_atomic
from trmgym.envs.arc_data import load_arc_tasks
from trmgym.envs.arcgen import ARCGenSource, _program_order
from trmgym.envs.arcgen_families import FAMILIES
from trmgym.envs.tokens import COLOR_OFFSET, PAD
from trmgym.meta.episodic import EpisodicLearner, attach_memory, check_memory_method
from trmgym.meta.maml import ALGORITHMS, MAML
from trmgym.meta.settings import FewShotConfig, MetaConfig, protocol_dict
from trmgym.meta.tasks import FewShotBatch, TRMObjective, arcgen_batch, fixed_arcgen_batch
from trmgym.workers import spawn_pool, stop_workers

__all__ = [
    "FEWSHOT_FILE",
    "SPLITS",
    "FewShotSplits",
    "TransferProbe",
    "evaluate_method",
    "evaluate_splits",
    "pack_batches",
    "run_fewshot",
]

FEWSHOT_FILE = "fewshot.json"
SPLITS = ("heldout_params", "heldout_families", "arc")


# ------------------------------------------------------------------------------------- splits
class FewShotSplits:
    """The meta-training tasks and the held-out splits of one :class:`FewShotConfig`.

    One :class:`~trmgym.envs.arcgen.ARCGenSource` over ``families + heldout_families`` with
    ``train_tasks_per_family + heldout_tasks_per_family`` tasks per family; task ``i < train``
    of a meta-training family is a meta-training task, the rest are ``heldout_params``; every
    task of a held-out family with index ``< heldout_tasks_per_family`` is ``heldout_families``.
    """

    def __init__(self, config: FewShotConfig) -> None:
        self.config = config
        train, held = config.train_tasks_per_family, config.heldout_tasks_per_family
        self.source = ARCGenSource(
            families=[*config.families, *config.heldout_families],
            tasks_per_family=train + held,
            task_seed=config.task_seed,
            min_size=config.min_size,
            max_size=config.max_size,
            num_demos=1,
        )
        per = train + held
        seen = range(len(config.families))
        self.train_ids = np.array([f * per + i for f in seen for i in range(train)], np.int64)
        self.heldout: dict[str, np.ndarray] = {
            "heldout_params": np.array(
                [f * per + i for f in seen for i in range(train, per)], np.int64
            )
        }
        if config.heldout_families:
            first = len(config.families)
            families = range(first, first + len(config.heldout_families))
            self.heldout["heldout_families"] = np.array(
                [f * per + i for f in families for i in range(held)], np.int64
            )
        self.arc = arc_tasks_fitting(config.max_size, config.arc_tasks)
        self.check_disjoint()

    def programs(self, task_ids: np.ndarray) -> set[tuple[str, int]]:
        """``(family, program index)`` of each task (the program, not the input style)."""
        per = self.source.tasks_per_family
        out = set()
        for task in task_ids.tolist():
            family = self.source.families[task // per]
            order = _program_order(FAMILIES[family], self.source.task_seed, per)
            out.add((family, order[task % per]))
        return out

    def check_disjoint(self) -> None:
        """Raise if a held-out task shares its program with a meta-training task."""
        train = self.programs(self.train_ids)
        for split, ids in self.heldout.items():
            shared = train & self.programs(ids)
            if shared:
                raise ValueError(f"{split} shares programs with meta-training: {sorted(shared)}")

    def heldout_batches(self, rng: np.random.Generator) -> dict[str, list[FewShotBatch]]:
        """Each split's held-out tasks: ARCGen splits as one batch with ``max(k_shots)`` support
        and ``query`` query pairs; ARC tasks one batch each (their own pairs).

        Every ARCGen pair has its own generator (:func:`fixed_arcgen_batch`, one seed drawn from
        ``rng``): a split's query grids, and the first ``k`` demos of each task, do not depend on
        ``k_shots`` or on the other split, so ``k = 1`` is scored on the same pairs whichever
        other k a run lists."""
        config = self.config
        seed = int(rng.integers(2**63))
        out: dict[str, list[FewShotBatch]] = {
            split: [
                fixed_arcgen_batch(
                    self.source,
                    ids,
                    max(config.k_shots),
                    config.query,
                    seed,
                    stream=SPLITS.index(split),
                )
            ]
            for split, ids in self.heldout.items()
        }
        if self.arc:
            out["arc"] = arc_batches(self.arc, config.max_size, max(config.k_shots))
        return out

    def heldout_ids(self) -> dict[str, list[Any]]:
        ids: dict[str, list[Any]] = {s: v.tolist() for s, v in self.heldout.items()}
        if self.arc:
            ids["arc"] = [task.task_id for task in self.arc]
        return ids


def arc_tasks_fitting(max_size: int, count: int) -> list[Any]:
    """The first ``count`` ARC-AGI-1 evaluation tasks (by id) whose grids all fit ``max_size``."""
    if count == 0:
        return []
    fitting = [
        task
        for task in load_arc_tasks("arc-agi-1", "evaluation")
        if all(max(grid.shape) <= max_size for pair in task.train + task.test for grid in pair)
    ]
    return fitting[:count]


def _canvas(grids: Sequence[np.ndarray], size: int) -> torch.Tensor:
    out = np.full((len(grids), size, size), PAD, dtype=np.int64)
    for i, grid in enumerate(grids):
        h, w = grid.shape
        out[i, :h, :w] = np.asarray(grid, dtype=np.int64) + COLOR_OFFSET
    return torch.from_numpy(out.reshape(len(grids), size * size))


def arc_batches(tasks: Sequence[Any], size: int, max_k: int) -> list[FewShotBatch]:
    """Real ARC tasks as few :class:`FewShotBatch` es: tasks with the same number of support
    pairs (their first ``min(len(train), max_k)``) and of test pairs share a batch, in task order
    within it, so adaptation is vmapped over them."""
    groups: dict[tuple[int, int], list[FewShotBatch]] = {}
    for task in tasks:
        batch = arc_batch(task, size)
        shots = min(batch.shots, max_k)
        groups.setdefault((shots, batch.query_x.shape[1]), []).append(batch.take(shots))
    return [
        FewShotBatch(*(torch.cat(parts) for parts in zip(*group)))
        for _, group in sorted(groups.items())
    ]


def arc_batch(task: Any, size: int) -> FewShotBatch:
    """One real ARC task as a one-task :class:`FewShotBatch` (train pairs support, test query)."""
    sx = _canvas([p[0] for p in task.train], size)[None]
    sy = _canvas([p[1] for p in task.train], size)[None]
    qx = _canvas([p[0] for p in task.test], size)[None]
    qy = _canvas([p[1] for p in task.test], size)[None]
    task_id = zlib.crc32(task.task_id.encode())
    return FewShotBatch(sx, sy, qx, qy, torch.tensor([task_id], dtype=torch.int64))


# ------------------------------------------------------------------------------------- training
def _learner(method: str, objective: TRMObjective, meta: MetaConfig, finetune_lr: float) -> MAML:
    """The adaptation rule of ``method`` (SGD fine-tuning of every weight for the baselines)."""
    if method in ALGORITHMS:
        return MAML.from_name(
            method,
            objective,
            inner_lr=meta.inner_lr,
            inner_steps=meta.inner_steps,
            backend=meta.backend,
        )
    return MAML(objective, inner_lr=finetune_lr, inner_steps=1, adapt="all")


def train_method(
    method: str,
    learner: MAML | EpisodicLearner,
    splits: FewShotSplits,
    meta: MetaConfig,
    agent: Any,
    seed: int,
    log: Callable[[str, float, int], None],
) -> GradientUpdate | None:
    """Meta-train (or multi-task train) ``learner`` in place; ``None`` for ``scratch``.

    Every trained method sees the same sequence of meta-batches: ``rng`` is seeded by ``seed``
    alone, so ``pretrained`` and the meta-learners differ only in how they use the pairs.
    """
    if method == "scratch":
        return None
    # the agent's own update rule, on MAML's parameters (the TRM's, and the reader's for memory)
    rule = gradient_update(learner if isinstance(learner, MAML) else learner.model, agent)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    objective = learner.objective
    device = next(objective.model.parameters()).device
    running = 0.0
    for step in range(1, meta.meta_steps + 1):
        ids = rng.choice(splits.train_ids, size=meta.meta_batch, replace=False)
        batch = arcgen_batch(splits.source, ids, meta.train_shots, meta.query, rng).to(device)
        if isinstance(learner, EpisodicLearner):
            loss = learner.loss(batch)
        elif method == "pretrained":
            x = torch.cat([batch.support_x, batch.query_x], 1).flatten(0, 1)
            y = torch.cat([batch.support_y, batch.query_y], 1).flatten(0, 1)
            loss = objective.loss(objective.params(), x, y)
        else:
            loss, _ = learner.meta_loss(batch)
        rule.step(loss)
        running += float(loss.detach())
        if step % meta.log_every == 0 or step == meta.meta_steps:
            span = step % meta.log_every or meta.log_every
            log(f"meta/{method}/loss", running / span, step)
            running = 0.0
    return rule


def bootstrap_ci(values: np.ndarray, seed: int = 0, reps: int = 2000) -> list[float] | None:
    """95% percentile-bootstrap interval of the mean of ``values`` (None for fewer than 2)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return None
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (reps, values.size))].mean(axis=1)
    return [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]


#: tasks per vmapped adaptation call in evaluation (memory grows with it: one copy of the
#: adapted weights and their gradient per task)
EVAL_CHUNK = 64


def pack_batches(batches: Sequence[FewShotBatch]) -> tuple[FewShotBatch, torch.Tensor]:
    """One batch of the tasks of ``batches`` (all with the same ``k``), and its query mask.

    Query sets shorter than the longest are padded by repeating their first pair; the mask
    ``[tasks, q]`` (bool) marks the real ones, so each task is scored on its own grids only.

    Raises:
        ValueError: no batches, or batches with different ``k``.
    """
    if not batches:
        raise ValueError("pack_batches needs at least one batch")
    if len({b.shots for b in batches}) != 1:
        raise ValueError(f"batches must share k, got k = {[b.shots for b in batches]}")
    q = max(int(b.query_x.shape[1]) for b in batches)
    parts, masks = [], []
    for b in batches:
        n, have = b.num_tasks, int(b.query_x.shape[1])
        qx, qy = (torch.cat([t, t[:, :1].expand(-1, q - have, -1)], 1) for t in b[2:4])
        parts.append(b._replace(query_x=qx, query_y=qy))
        mask = torch.zeros(n, q, dtype=torch.bool, device=b.query_x.device)
        mask[:, :have] = True
        masks.append(mask)
    packed = FewShotBatch(*(torch.cat(column, 0) for column in zip(*parts)))
    return packed, torch.cat(masks, 0)


def evaluate_splits(
    learner: MAML,
    groups: Mapping[str, Sequence[FewShotBatch]],
    k: int,
    steps: Sequence[int],
    chunk: int = EVAL_CHUNK,
) -> dict[str, np.ndarray]:
    """``{split: [tasks, len(steps)]}`` query exact accuracy after each number of adaptation steps
    on ``k`` support demos; tasks with fewer than ``k`` demos are left out, and so is a split
    with none left.

    Every task of every split adapts in the same vmapped call (``chunk`` tasks at most per call;
    query sets of different sizes are padded and masked, :func:`pack_batches`): on a small TRM
    one call costs ~2 s of fixed overhead on 2 CPU cores, more than 8 tasks' compute.
    """
    device = next(learner.objective.model.parameters()).device
    owners, kept = [], []
    for split, group in groups.items():
        for batch in group:
            if batch.shots >= k:
                kept.append(batch.take(k).to(device))
                owners += [split] * batch.num_tasks
    if not kept:
        return {}
    packed, mask = pack_batches(kept)
    rows = []
    for lo in range(0, packed.num_tasks, chunk):
        part = FewShotBatch(*(t[lo : lo + chunk] for t in packed))
        curve = learner.adaptation_curve(part, list(steps), query_mask=mask[lo : lo + chunk])
        rows.append(curve.detach().cpu().numpy())
    scores = np.concatenate(rows, 0)
    names = np.array(owners)
    return {split: scores[names == split] for split in groups if (names == split).any()}


def evaluate_method(
    learner: MAML, batches: Sequence[FewShotBatch], k: int, steps: Sequence[int]
) -> np.ndarray | None:
    """``[tasks, len(steps)]`` query exact accuracy after each number of adaptation steps on
    ``k`` support demos; tasks with fewer than ``k`` demos are left out (``None``: none left)."""
    return evaluate_splits(learner, {"tasks": batches}, k, steps).get("tasks")


def _entry(split: str, k: int, steps: Sequence[int], scores: np.ndarray, seed: int) -> dict:
    return {
        "split": split,
        "k_shot": k,
        "steps": list(steps),
        "accuracy": [float(v) for v in scores.mean(axis=0)],
        "ci95": [bootstrap_ci(scores[:, j], seed) for j in range(scores.shape[1])],
        "tasks": int(scores.shape[0]),
    }


def _ttt_entries(
    objective: TRMObjective,
    batches: Mapping[str, Sequence[FewShotBatch]],
    config: FewShotConfig,
    seed: int,
) -> list[dict]:
    """``ttt`` entries: per split, with the most demos (``max(k_shots)``; a test-time fine-tune
    per task is not vmapped, so the other ``k`` are left out), the query grids' first-attempt exact accuracy at
    ``ttt.steps`` fine-tuning steps (comparable with the other methods), and ARC's task-level
    ``pass1`` / ``pass2`` (every query grid of a task right, one or two attempts)."""
    from trmgym.meta.ttt import TTTConfig, evaluate_tasks

    settings = config.ttt
    ttt_config = TTTConfig(**asdict(settings))
    shape = (config.max_size, config.max_size)
    device = next(objective.model.parameters()).device
    params = {name: value.detach() for name, value in objective.params().items()}
    entries = []
    for split, group in batches.items():
        for k in config.k_shots[-1:]:  # the most demos only: one fine-tune per task is costly
            grids, passes = [], []
            for index, batch in enumerate(group):
                if batch.shots < k:
                    continue
                rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2, k, index)))
                batch = batch.take(k).to(device)
                results, _ = evaluate_tasks(objective, params, batch, shape, ttt_config, rng)
                for i, result in enumerate(results):
                    first = (result.candidates[:, 0] == batch.query_y[i]).all(-1)
                    grids.append(float(first.float().mean()))
                    passes.append((result.pass1, result.pass2))
            if grids:
                entry = _entry(split, k, [settings.steps], np.array(grids)[:, None], seed)
                entry["pass1"] = float(np.mean([p[0] for p in passes]))
                entry["pass2"] = float(np.mean([p[1] for p in passes]))
                entries.append(entry)
    return entries


class TransferProbe:
    """Few-shot transfer of a live model, measured after each task of a continual run.

    ``eval.fewshot=true``: after each task (and once before any training) the run's model, with
    its evaluation weights, is adapted by SGD at ``fewshot.finetune_lr`` (default
    ``meta.inner_lr``) on the held-out tasks' support sets, and scored as in the few-shot
    experiment; the model itself is never changed (adaptation is functional). results.json gets
    ``fewshot_matrix[i][split][k]`` — the accuracy per adaptation step after task ``i`` — and
    ``fewshot_init`` for the untrained model.

    Args:
        config: the protocol; its ``methods`` are ignored (the run's own model is the method).
        meta: ``inner_lr`` and ``supervision_steps`` are read.
        seed: seed of the held-out pairs.

    Raises:
        ValueError: the model's canvas is not the ``fewshot.max_size`` square (:meth:`check_model`).
    """

    def __init__(self, config: FewShotConfig, meta: MetaConfig, seed: int) -> None:
        self.config, self.meta = config, meta
        self.finetune_lr = config.finetune_lr if config.finetune_lr is not None else meta.inner_lr
        self.splits = FewShotSplits(config)
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3,)))
        self.batches = self.splits.heldout_batches(rng)

    def check_model(self, model: Any) -> None:
        """Refuse a model that is not a TRM over the ``max_size`` square canvas."""
        size = self.config.max_size
        config = getattr(model, "config", None)
        if not isinstance(model, TRM) or config.seq_len != size * size:
            cells = getattr(config, "seq_len", None)
            raise ValueError(
                f"eval.fewshot needs the TRM agent on a {size}x{size} canvas (fewshot.max_size="
                f"{size}, {size * size} cells), got a model of {cells} cells: set run.canvas="
                f"[{size},{size}] or fewshot.max_size to the run's canvas side"
            )

    def settings(self) -> dict[str, Any]:
        """What the probe measures, for results.json and the resume guard."""
        return {
            "fewshot": protocol_dict(self.config),
            "finetune_lr": self.finetune_lr,
            "supervision_steps": self.meta.supervision_steps,
            "heldout_tasks": self.splits.heldout_ids(),
        }

    def evaluate(self, model: TRM) -> dict[str, dict[str, list[float]]]:
        """``{split: {"k<k>": [accuracy after each of fewshot.steps]}}`` for ``model``."""
        self.check_model(model)
        objective = TRMObjective(model, self.meta.supervision_steps)
        learner = MAML(objective, inner_lr=self.finetune_lr, inner_steps=1, adapt="all")
        out: dict[str, dict[str, list[float]]] = {}
        for k in self.config.k_shots:
            for split, scores in evaluate_splits(
                learner, self.batches, k, self.config.steps
            ).items():
                out.setdefault(split, {})[f"k{k}"] = [float(v) for v in scores.mean(axis=0)]
        return {split: out[split] for split in self.batches if split in out}


# ------------------------------------------------------------------------------------- the run
def memory_config(agent: Any) -> MemoryConfig:
    """The ``memory`` method's bank: ``agent.memory``, or :class:`MemoryConfig` defaults."""
    memory = getattr(agent, "memory", None)
    return memory if memory is not None else MemoryConfig()


def check_memory(
    config: FewShotConfig, meta: MetaConfig, memory: MemoryConfig, hidden: int
) -> None:
    """Refuse a bank the ``memory`` method cannot use: its ``num_heads`` must divide the TRM's
    width ``hidden`` and the largest batch of support states must fit below its forgetting
    threshold (a meta-batch, ``meta_batch x train_shots``; the largest held-out batch, a split's
    tasks x ``max(k_shots)``). Raises ``ValueError`` naming ``agent.memory.<key>``."""
    k = max(config.k_shots)
    heldout = (
        max(len(config.families), len(config.heldout_families)) * config.heldout_tasks_per_family
    )
    largest = max(meta.meta_batch * meta.train_shots, heldout * k, config.arc_tasks * k)
    check_memory_method(memory, hidden, largest)


def config_dict(config: FewShotConfig, meta: MetaConfig, agent: Any, seed: int) -> dict[str, Any]:
    """The settings a ``fewshot.json`` is written with (the resume guard compares them); the
    ``memory`` method's bank (:func:`memory_config`) only where that method runs."""
    out = {
        "seed": seed,
        "fewshot": protocol_dict(config),
        "meta": asdict(meta),
        "agent": {k: v for k, v in asdict(agent).items() if k not in ("dqn", "memory", "halting")},
    }
    if "memory" in config.methods:
        out["memory"] = asdict(memory_config(agent))
    return out


def check_resumable(run_dir: str | Path, settings: Mapping[str, Any]) -> dict[str, Any] | None:
    """The saved ``fewshot.json`` of ``run_dir`` (``None`` if there is none).

    Raises:
        ValueError: it was written with other settings (naming the first differing key), or it
            is not readable.
    """
    path = Path(run_dir) / FEWSHOT_FILE
    if not path.is_file():
        return None
    # a leaf of trmgym's core would be a layering break: compare JSON trees here
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); start a new run directory") from None
    found = _first_difference(saved.get("config"), json.loads(json.dumps(settings)))
    if found is not None:
        key, old, new = found
        raise ValueError(
            f"{run_dir} holds a few-shot run with a different configuration: {key} was "
            f"{old!r}, now {new!r}; start a new run directory"
        )
    return saved


def _first_difference(saved: Any, current: Any, path: str = "") -> tuple[str, Any, Any] | None:
    if isinstance(saved, dict) and isinstance(current, dict):
        for key in sorted(set(saved) | set(current), key=str):
            found = _first_difference(
                saved.get(key), current.get(key), f"{path}.{key}" if path else str(key)
            )
            if found is not None:
                return found
        return None
    return None if saved == current else (path or "<root>", saved, current)


#: relative cost of each method at the defaults (the longest start first in a worker pool)
_COST = {"maml": 6, "metasgd": 6, "fomaml": 4, "anil": 3.5, "memory": 3, "pretrained": 2.5}


class _MethodJob(NamedTuple):
    """Everything one method needs to train and be scored, picklable for a worker process."""

    config: FewShotConfig
    meta: MetaConfig
    agent: Any
    seed: int
    make_model: Callable[[], TRM]
    splits: FewShotSplits
    batches: dict[str, list[FewShotBatch]]
    memory: MemoryConfig
    checkpoints: Path

    def run(self, method: str, scalars: Callable[[str, float, int], None]) -> list[dict]:
        """Train ``method`` from the seeded init, score it, save its weights; its entries."""
        config, meta, seed, batches = self.config, self.meta, self.seed, self.batches
        torch.manual_seed(seed)
        model = self.make_model()
        if method == "memory":
            attach_memory(model, self.memory, seed)
        objective = TRMObjective(model, meta.supervision_steps)
        finetune_lr = config.finetune_lr if config.finetune_lr is not None else meta.inner_lr
        learner: MAML | EpisodicLearner = (
            EpisodicLearner(objective)
            if method == "memory"
            else _learner(method, objective, meta, finetune_lr)
        )
        rule = train_method(method, learner, self.splits, meta, self.agent, seed, scalars)
        context = rule.eval_weights() if rule is not None else contextlib.nullcontext()
        scored: dict[tuple[str, int], tuple[np.ndarray, list[int]]] = {}
        with context:
            for k in config.k_shots:
                if isinstance(learner, EpisodicLearner):  # no gradient step: step 0 only
                    for split, group in batches.items():
                        scores = learner.evaluate(group, k)
                        if scores is not None:
                            scored[split, k] = scores, [0]
                else:
                    for split, scores in evaluate_splits(learner, batches, k, config.steps).items():
                        scored[split, k] = scores, list(config.steps)
            weights = model.state_dict()
            write_atomic(self.checkpoints / f"fewshot_{method}.pt", partial(torch.save, weights))
        return [  # in the order split, then k
            _entry(split, k, scored[split, k][1], scored[split, k][0], seed)
            for split in batches
            for k in config.k_shots
            if (split, k) in scored
        ]


def _worker_run(job: _MethodJob, method: str) -> tuple[list[dict], list[tuple], float]:
    """One method in a worker: its entries, its TensorBoard points and its seconds."""
    logged: list[tuple[str, float, int]] = []
    tic = time.perf_counter()
    entries = job.run(method, lambda tag, value, step: logged.append((tag, value, step)))
    return entries, logged, time.perf_counter() - tic


def _check_picklable(make_model: Callable[[], TRM], workers: int) -> None:
    try:
        pickle.dumps(make_model)
    except Exception as error:  # noqa: BLE001 -- any pickling failure means the same thing
        raise ValueError(
            f"fewshot.workers={workers} runs methods in other processes, so make_model must be "
            f"picklable (a module-level function or functools.partial), got {make_model!r} "
            f"({error}); or set fewshot.workers=1"
        ) from None


def _run_in_workers(
    job: _MethodJob,
    methods: Sequence[str],
    workers: int,
    threads: int,
    scalars: Callable[[str, float, int], None],
    record: Callable[[str, list[dict], float], None],
) -> None:
    """Run ``methods`` in ``workers`` spawned processes (the costliest first) of ``threads``
    torch threads each; every finished method is recorded (and saved) as it ends."""
    order = sorted(methods, key=lambda m: -_COST.get(m, 1.0))
    pool = spawn_pool(workers, threads)
    try:
        futures = {pool.submit(_worker_run, job, method): method for method in order}
        for future in as_completed(futures):
            entries, logged, seconds = future.result()
            for point in logged:
                scalars(*point)
            record(futures[future], entries, seconds)
    except BaseException:
        stop_workers(pool)
        raise
    pool.shutdown()


def run_fewshot(
    config: FewShotConfig,
    meta: MetaConfig,
    agent: Any,
    run_dir: str | Path,
    *,
    seed: int = 0,
    make_model: Callable[[], TRM],
    say: Callable[[str], None] = print,
    scalars: Callable[[str, float, int], None] | None = None,
) -> dict[str, Any]:
    """Meta-train every method of ``config.methods`` and evaluate it; write ``fewshot.json``.

    Args:
        config, meta: the protocol and the meta-training settings.
        agent: the agent config (its optimiser settings form every method's update rule; its
            ``memory``, or :class:`MemoryConfig` defaults when null, is the ``memory`` method's
            bank).
        run_dir: where ``fewshot.json``, ``checkpoints/fewshot_<method>.pt`` go.
        seed: one seed for the initialisation (the same for every method), the meta-batches and
            the held-out pairs.
        make_model: builds the (seeded) TRM of the canvas ``max_size x max_size``.
        say: where progress lines go; scalars: ``(tag, value, step)`` to TensorBoard.

    Returns:
        The ``fewshot.json`` document.

    Raises:
        ValueError: a run directory holding a few-shot run of another configuration, a bank
            the ``memory`` method cannot use (:func:`check_memory`), or ``fewshot.workers > 1``
            with a ``make_model`` that cannot be pickled, before anything runs.
        Exception: whatever a method raised in a worker process (the methods finished before
            it are saved; a run started again resumes after them).
    """
    run_dir = Path(run_dir)
    scalars = scalars or (lambda tag, value, step: None)
    path = run_dir / FEWSHOT_FILE
    if config.workers > 1:
        _check_picklable(make_model, config.workers)
    memory = memory_config(agent)
    if "memory" in config.methods:
        check_memory(config, meta, memory, make_model().config.hidden_size)
    settings = config_dict(config, meta, agent, seed)
    saved = check_resumable(run_dir, settings)
    doc: dict[str, Any] = {"methods": {}, "config": settings, "complete": False}
    if saved is not None:
        doc = saved
        if doc.get("complete"):
            say(f"already finished ({FEWSHOT_FILE})")
            return doc
    splits = FewShotSplits(config)
    doc["heldout_tasks"] = splits.heldout_ids()
    doc["meta_training_tasks"] = splits.train_ids.tolist()
    batches = splits.heldout_batches(
        np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3,)))
    )
    checkpoints = run_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    pending = []
    for method in [m for m in config.methods if m != "ttt"]:
        if method in doc["methods"]:
            say(f"{method}: done already, skipped")
        else:
            pending.append(method)
    job = _MethodJob(config, meta, agent, seed, make_model, splits, batches, memory, checkpoints)

    def record(method: str, entries: list[dict], seconds: float) -> None:
        doc["methods"][method] = entries
        # in the configured order whatever order the workers finish in (best_method's tie rule)
        doc["methods"] = {m: doc["methods"][m] for m in config.methods if m in doc["methods"]}
        for entry in entries:
            tag = f"fewshot/{entry['split']}/{method}/k{entry['k_shot']}"
            for s, acc in zip(entry["steps"], entry["accuracy"]):
                scalars(tag, acc, s)
        _write(path, doc)  # saved before it is announced: an interrupt after the line loses nothing
        say(f"{method}: {_summary(entries)} ({seconds:.0f} s)")

    # every method gets the same threads whether it runs in a worker or here (one pending
    # method, or workers=1): its numbers do not depend on how many methods are left to run
    threads = max(1, torch.get_num_threads() // config.workers)
    if min(config.workers, len(pending)) <= 1:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            for method in pending:
                tic = time.perf_counter()
                entries = job.run(method, scalars)
                record(method, entries, time.perf_counter() - tic)
        finally:
            torch.set_num_threads(before)
    else:
        _run_in_workers(job, pending, min(config.workers, len(pending)), threads, scalars, record)
    doc["best"] = best_method(doc["methods"], max(config.k_shots))
    if "ttt" in config.methods and "ttt" not in doc["methods"]:
        best = doc["best"] or "scratch"
        torch.manual_seed(seed)
        model = make_model()
        weights = checkpoints / f"fewshot_{best}.pt"
        if weights.is_file():
            model.load_state_dict(torch.load(weights, weights_only=True))
        tic = time.perf_counter()
        objective = TRMObjective(model, meta.supervision_steps)
        doc["methods"]["ttt"] = _ttt_entries(objective, batches, config, seed)
        for entry in doc["methods"]["ttt"]:
            tag = f"fewshot/{entry['split']}/ttt/k{entry['k_shot']}"
            scalars(tag, entry["accuracy"][0], entry["steps"][0])
        doc["ttt_base"] = best
        say(f"ttt on {best}: {_summary(doc['methods']['ttt'])} ({time.perf_counter() - tic:.0f} s)")
    doc["complete"] = True
    doc["wall_time_s"] = doc.get("wall_time_s", 0.0) + time.perf_counter() - started
    _write(path, doc)
    return doc


def best_method(methods: Mapping[str, list[dict]], k: int, steps: int = 5) -> str | None:
    """The method with the highest ``heldout_params`` accuracy after ``steps`` steps with ``k``
    demos (the last scored step at or below ``steps``; a tie goes to the method listed first;
    ``ttt`` and ``memory`` are not candidates); ``None`` if none was scored."""
    best, best_value = None, -1.0
    for name, entries in methods.items():
        if name in ("ttt", "memory"):
            continue
        for entry in entries:
            if entry["split"] != "heldout_params" or entry["k_shot"] != k:
                continue
            points = [a for s, a in zip(entry["steps"], entry["accuracy"]) if s <= steps]
            if points and points[-1] > best_value:
                best, best_value = name, points[-1]
    return best


def _summary(entries: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for entry in entries:
        if entry["split"] == "heldout_params" and entry["k_shot"] == max(
            e["k_shot"] for e in entries
        ):
            points = ", ".join(f"{s}:{a:.3f}" for s, a in zip(entry["steps"], entry["accuracy"]))
            parts.append(f"heldout_params k={entry['k_shot']} steps->accuracy {points}")
    return "; ".join(parts) or "no heldout_params entry"


def _write(path: Path, doc: Mapping[str, Any]) -> None:
    write_text_atomic(path, json.dumps(doc, indent=2))
