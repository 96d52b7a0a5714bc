"""The TRM agent: one env step is one TRM supervision step, and halting is learned.

Each call of :meth:`TRMAgent.act` runs one supervision step of the Tiny Recursive Model
(Jolicoeur-Martineau 2025) on a batch of puzzles — T cycles of latent and answer refinement, starting
from the carry of the previous step — and returns the answer (the argmax tokens) and a halting
decision as a batched env action. :meth:`TRMAgent.learn` then applies *deep supervision*: the
cross-entropy of that step's answer against the target (exposed by training envs only) plus the
halting loss (``bce``: the paper's correctness classifier; ``dqn``: Q-learning from the env reward,
see :mod:`trmgym.agents.halting`), one AdamW step with warm-up and clipping, and an EMA update.
The carry is detached between steps, so each step is its own small backward pass.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch

from trmgym.agents.halting import (
    HALTING_MODES,
    BCEHalting,
    DQNHalting,
    DQNHaltingConfig,
    HaltingTransitions,
    answer_statistics,
)
from trmgym.agents.memory_reader import MemoryConfig, MemoryReader
from trmgym.agents.trm import TRM, TRMCarry, TRMConfig
from trmgym.agents.update import GradientUpdate, UpdateRule

SIZES = ("tiny", "small", "paper")


def resolve_device(device: str) -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU; ``"cuda"`` without CUDA is an error."""
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device must be one of ['auto', 'cpu', 'cuda'], got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available; use device=cpu or auto")
    return torch.device(device)


@dataclass
class TRMAgentConfig:
    """Arguments of :class:`TRMAgent` (the ``agent`` config group)."""

    size: str = "tiny"
    """Model preset: "tiny" (D=64), "small" (D=128) or "paper" (D=512, T=3, n=6)."""
    model: dict[str, Any] = field(default_factory=dict)
    """Overrides of :class:`~trmgym.agents.trm.TRMConfig` fields, e.g. {"h_cycles": 2}."""
    halting: str = "dqn"
    """Halting rule: "dqn" (Q-learning from the env reward) or "bce" (TRM's classifier)."""
    dqn: DQNHaltingConfig = field(default_factory=DQNHaltingConfig)
    """DQN halting hyper-parameters (used when halting="dqn")."""
    halt_loss_weight: float = 0.5
    """Weight of the BCE halting loss next to the answer cross-entropy."""
    lr: float = 1e-3
    """AdamW learning rate after warm-up."""
    weight_decay: float = 0.1
    """AdamW weight decay."""
    beta2: float = 0.95
    """AdamW second-moment decay (beta1 = 0.9)."""
    warmup_steps: int = 100
    """Optimizer steps of linear learning-rate warm-up."""
    grad_clip: float = 1.0
    """Gradient-norm clip (0 disables)."""
    ema_decay: float = 0.999
    """EMA decay of the weights used for evaluation (0 disables the EMA)."""
    compile: bool = False
    """Wrap the network with torch.compile."""
    memory: MemoryConfig | None = None
    """An associative memory bank read in every reasoning cycle (:mod:`trmgym.agents.memory_reader`;
    ``agent/memory=bank`` on the command line); ``None``: no memory. A memory strategy writes it."""

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ValueError(f"agent.size must be one of {list(SIZES)}, got {self.size!r}")
        if self.halting not in HALTING_MODES:
            raise ValueError(
                f"agent.halting must be one of {list(HALTING_MODES)}, got {self.halting!r}"
            )
        if isinstance(self.dqn, dict):
            self.dqn = DQNHaltingConfig(**self.dqn)
        if isinstance(self.memory, dict):
            unknown = sorted(set(self.memory) - set(MemoryConfig.__dataclass_fields__))
            if unknown:
                raise ValueError(
                    f"agent.memory.{unknown[0]} is not a memory setting; allowed: "
                    f"{sorted(MemoryConfig.__dataclass_fields__)}"
                )
            self.memory = MemoryConfig(**self.memory)
        if self.memory is not None and not isinstance(self.memory, MemoryConfig):
            raise ValueError(
                f"agent.memory must be null or a memory config, got {type(self.memory).__name__}"
            )
        for name in ("lr", "halt_loss_weight", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
                or (name == "lr" and value == 0)
            ):
                raise ValueError(
                    f"agent.{name} must be a finite number {'> 0' if name == 'lr' else '>= 0'}, "
                    f"got {value!r}"
                )
        if not 0 <= self.beta2 < 1:
            raise ValueError(f"agent.beta2 must lie in [0, 1), got {self.beta2}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"agent.ema_decay must lie in [0, 1), got {self.ema_decay}")
        if self.warmup_steps < 0:
            raise ValueError(f"agent.warmup_steps must be >= 0, got {self.warmup_steps}")


def gradient_update(module: torch.nn.Module, config: TRMAgentConfig) -> GradientUpdate:
    """The agent config's optimiser (``lr``, ``weight_decay``, ``beta2``, ``warmup_steps``,
    ``grad_clip``, ``ema_decay``) as a :class:`GradientUpdate` of ``module``'s parameters."""
    return GradientUpdate(
        module,
        lr=config.lr,
        weight_decay=config.weight_decay,
        beta2=config.beta2,
        warmup_steps=config.warmup_steps,
        grad_clip=config.grad_clip,
        ema_decay=config.ema_decay,
    )


def model_config(
    config: TRMAgentConfig, canvas: tuple[int, int], num_tasks: int, device: torch.device
) -> TRMConfig:
    """The :class:`TRMConfig` an agent config builds for a ``canvas`` (H, W): the ``size`` preset,
    the canvas as sequence, ``num_tasks`` task embeddings, then ``config.model`` overrides;
    bfloat16 matmuls by default on CUDA."""
    overrides: dict[str, Any] = {
        "seq_len": canvas[0] * canvas[1],
        "grid_height": canvas[0],
        "grid_width": canvas[1],
        "num_task_embeddings": int(num_tasks),
    }
    derived = set(overrides) - set(config.model)  # from the env and the sequence, not the user
    overrides.update(config.model)
    if device.type == "cuda":
        overrides.setdefault("forward_dtype", "bfloat16")
    try:
        return getattr(TRMConfig, config.size)(**overrides)
    except ValueError as error:  # TRMConfig names its own fields: say where each one is set
        settable = "|".join(sorted(set(TRMConfig.__dataclass_fields__) - derived, key=len)[::-1])
        message = re.sub(rf"(?<![\w.])({settable})(?!\w)", r"agent.model.\1", str(error))
        raise ValueError(message) from None


class AgentCarry(NamedTuple):
    """Per-puzzle recurrent state of the agent between reasoning steps."""

    trm: TRMCarry
    """(y, z) of the network."""
    q_state: torch.Tensor
    """Recurrent state of the DQN Q-head (``gru``; zeros otherwise)."""
    steps: torch.Tensor
    """Reasoning steps taken on the current puzzle ``[B]``."""
    answer: torch.Tensor
    """The previous answer tokens ``[B, L]`` (for the answer-change statistic)."""


class _StepOutput(NamedTuple):
    """The graph of the last learning step, kept for :meth:`TRMAgent.learn`."""

    logits: torch.Tensor
    q_halt: torch.Tensor


class TRMAgent:
    """A Tiny Recursive Model that answers puzzles step by step and learns when to stop.

    Args:
        config: agent hyper-parameters.
        canvas: ``(H, W)`` of the env's grids.
        max_steps: the env's reasoning-step limit.
        num_tasks: tasks with a learned embedding (0: none).
        seed: seeds initialisation and all of the agent's random draws.
        device: "auto", "cpu" or "cuda".
        update_rule: ``update_rule(model) -> UpdateRule``, how losses become new weights; default
            :class:`~trmgym.agents.update.GradientUpdate` from the config's optimiser settings
            (the meta-learning room supplies its own).
    """

    def __init__(
        self,
        config: TRMAgentConfig | None = None,
        *,
        canvas: tuple[int, int],
        max_steps: int = 16,
        num_tasks: int = 0,
        seed: int = 0,
        device: str = "auto",
        update_rule: Callable[[torch.nn.Module], UpdateRule] | None = None,
    ) -> None:
        self.config = config or TRMAgentConfig()
        self.device = resolve_device(device)
        self.canvas = (int(canvas[0]), int(canvas[1]))
        self.max_steps = int(max_steps)
        self.model_config = model_config(self.config, self.canvas, num_tasks, self.device)
        torch.manual_seed(seed)
        #: the memory bank's reader (``config.memory``), ``None`` without memory
        self.memory_reader = self._memory_reader(seed)
        self.model = TRM(self.model_config, cycle_reader=self.memory_reader).to(self.device)
        if self.config.compile and self.memory_reader is not None:
            # Python bookkeeping and the bank's index stay eager. Applied here, not as a
            # decorator: torch.compiler.disable imports torch._dynamo (seconds at start-up)
            self.memory_reader.forward = torch.compiler.disable(self.memory_reader.forward)
        self.network = torch.compile(self.model) if self.config.compile else self.model
        c = self.config
        self.update_rule: UpdateRule = (
            update_rule(self.model) if update_rule is not None else gradient_update(self.model, c)
        )
        self.bce = BCEHalting()
        feature_dim = 2 * self.model_config.hidden_size + 3
        self.dqn = (
            DQNHalting(feature_dim, self.max_steps, c.dqn, device=self.device, seed=seed + 1)
            if c.halting == "dqn"
            else None
        )
        self.transitions = HaltingTransitions(self.dqn) if self.dqn is not None else None
        self._step: _StepOutput | None = None

    def _memory_reader(self, seed: int) -> MemoryReader | None:
        """The memory reader of ``config.memory``, built from its own random stream, so the
        TRM's weights are the same with and without memory (the memory ablation)."""
        memory = self.config.memory
        if memory is None:
            return None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 2)
            try:
                return MemoryReader(
                    memory,
                    self.model_config.hidden_size,
                    cycles_per_step=self.model_config.h_cycles,
                    seed=seed + 2,
                )
            except ValueError as error:  # e.g. num_heads not dividing the hidden size
                raise ValueError(f"agent.memory.{error}") from None

    @property
    def updates(self) -> int:
        """Optimizer steps taken (by the update rule)."""
        return self.update_rule.updates

    # ------------------------------------------------------------------------------- carries
    def initial_carry(self, batch_size: int) -> AgentCarry:
        """The starting carry of ``batch_size`` fresh puzzles."""
        q_state = (
            self.dqn.initial_state(batch_size)
            if self.dqn
            else torch.zeros(batch_size, 1, device=self.device)
        )
        return AgentCarry(
            self.model.initial_carry(batch_size, self.device),
            q_state,
            torch.zeros(batch_size, dtype=torch.long, device=self.device),
            torch.full(
                (batch_size, self.model_config.seq_len), -1, dtype=torch.long, device=self.device
            ),
        )

    def reset_carry(self, carry: AgentCarry, mask: np.ndarray | torch.Tensor) -> AgentCarry:
        """Reset the rows where ``mask`` is true (puzzles that just ended)."""
        mask = torch.as_tensor(
            mask if isinstance(mask, torch.Tensor) else np.asarray(mask),
            dtype=torch.bool,
            device=self.device,
        )
        if not bool(mask.any()):
            return carry
        rows = mask.view(-1, 1)
        return AgentCarry(
            self.model.reset_carry(carry.trm, mask),
            torch.where(rows, torch.zeros_like(carry.q_state), carry.q_state),
            torch.where(mask, torch.zeros_like(carry.steps), carry.steps),
            torch.where(rows, torch.full_like(carry.answer, -1), carry.answer),
        )

    # --------------------------------------------------------------------------------- acting
    def to_device(self, array: Any) -> torch.Tensor:
        """A batch (numpy array or tensor) on the agent's device; on CUDA copied through pinned
        memory without blocking (env observations and replayed puzzles come from numpy)."""
        if isinstance(array, torch.Tensor):
            return array.to(self.device)
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor

    def _tensor_obs(self, obs: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor | None]:
        grid = self.to_device(np.asarray(obs["grid"])).reshape(len(obs["grid"]), -1)
        task = None
        if self.model_config.num_task_embeddings:
            task = self.to_device(np.asarray(obs["task_id"])).long()
        return grid.long(), task

    def act(
        self,
        obs: dict[str, np.ndarray],
        carry: AgentCarry,
        *,
        explore: bool = False,
        learn: bool = False,
    ) -> tuple[dict[str, np.ndarray], AgentCarry]:
        """One reasoning step on a batch: ``({"answer": [B,H,W], "halt": [B]}, new carry)``.

        With ``learn=True`` the step keeps its graph for the next :meth:`learn` call and, with a
        memory reader, makes the step's one tracked memory read and records its states.
        """
        grid, task = self._tensor_obs(obs)
        self.model.check_inputs(grid, carry.trm, task)  # the boundary: forward checks shapes only
        memory_step = (
            self.memory_reader.step(task, record=learn, inputs=grid if learn else None)
            if self.memory_reader is not None
            else contextlib.nullcontext()
        )
        with torch.set_grad_enabled(learn), memory_step:
            out = self.network(grid, carry.trm, task)
        answer = out.logits.detach().argmax(dim=-1)
        summary = torch.cat(
            (out.features.detach(), answer_statistics(out.logits, carry.answer)), dim=-1
        )
        if self.dqn is not None:
            halt, _, q_state = self.dqn.decide(summary, carry.steps, carry.q_state, explore=explore)
        else:
            halt, q_state = self.bce.decide(out.q_halt), carry.q_state
        # the last allowed step ends the episode anyway; halting there collects the solve bonus
        halt = halt | (carry.steps + 1 >= self.max_steps)
        if learn:
            if self.transitions is not None:
                self.transitions.complete(summary, carry.steps, carry.q_state)
                self.transitions.record(summary, carry.steps, carry.q_state, halt)
            self._step = _StepOutput(out.logits, out.q_halt)
        action = {
            "answer": answer.view(-1, *self.canvas).cpu().numpy(),
            "halt": halt.long().cpu().numpy(),
        }
        return action, AgentCarry(out.carry, q_state, carry.steps + 1, answer)

    # ------------------------------------------------------------------------------- learning
    def begin_chunk(self) -> None:
        """Forget in-flight steps (a new training env starts; open transitions are dropped)."""
        self._step = None
        if self.transitions is not None:
            self.transitions.clear()
        if self.memory_reader is not None:
            self.memory_reader.clear_record()

    def supervised_loss(
        self, grid: np.ndarray, target: np.ndarray, task: np.ndarray | None
    ) -> torch.Tensor:
        """Cross-entropy of one reasoning step from a fresh carry (replay, Fisher estimates)."""
        n = len(grid)
        x = self.to_device(np.asarray(grid)).reshape(n, -1).long()
        task_t = None
        if self.model_config.num_task_embeddings and task is not None:
            task_t = self.to_device(np.asarray(task)).long()
        carry = self.model.initial_carry(n, self.device)
        self.model.check_inputs(x, carry, task_t)
        out = self.network(x, carry, task_t)
        y = self.to_device(np.asarray(target)).reshape(n, -1).long()
        return self.model.cross_entropy(out.logits, y)

    def learn(
        self,
        target: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        *,
        replay: Any = None,
        penalty: Callable[[torch.nn.Module], torch.Tensor | None] | None = None,
    ) -> dict[str, float]:
        """Deep supervision on the last :meth:`act` (``learn=True``) and a halting update.

        The step's loss (:meth:`step_loss`) goes to the update rule; the halting transitions of
        the step go to the DQN, which takes one TD update. With a memory reader, the step's
        outcome (exactly right or not, reward) is then committed to it, where a memory strategy
        writes from (:meth:`~trmgym.agents.memory_reader.MemoryReader.commit`).

        Args:
            target: ``[B, H, W]`` target tokens of the puzzles that step acted on.
            reward: ``[B]`` env rewards of that step.
            done: ``[B]`` whether each puzzle ended (halted or truncated) at that step.
            replay: optional extra supervised puzzles (``grid``, ``target``, ``task`` fields),
                trained from a fresh carry on top of the current batch (experience replay).
            penalty: optional ``penalty(model) -> loss`` added to the loss (e.g. EWC).

        Returns:
            ``train/...`` and ``halt/...`` metrics of the step.

        Raises:
            RuntimeError: no ``act(..., learn=True)`` since the last call.
        """
        if self._step is None:
            raise RuntimeError("learn() needs a preceding act(..., learn=True)")
        step, self._step = self._step, None
        loss, metrics = self.step_loss(step, target, replay=replay, penalty=penalty)
        metrics.update(self.update_rule.step(loss))
        reward_t = torch.as_tensor(np.asarray(reward), dtype=torch.float32, device=self.device)
        if self.memory_reader is not None:  # after the update: writes never touch a live graph
            target_t = self.to_device(np.asarray(target)).reshape(len(target), -1).long()
            self.memory_reader.commit(self._correct(step, target), reward_t, target_t)
        if self.transitions is not None:
            done_t = torch.as_tensor(np.asarray(done), dtype=torch.bool, device=self.device)
            self.transitions.finish(reward_t, done_t)
            metrics.update(self.dqn.learn())
        return metrics

    def _correct(self, step: _StepOutput, target: np.ndarray) -> torch.Tensor:
        """``[B]`` bool: the step's answer is exactly the target."""
        target_t = self.to_device(np.asarray(target)).reshape(len(target), -1).long()
        return (step.logits.detach().argmax(-1) == target_t).all(dim=-1)

    def step_loss(
        self,
        step: _StepOutput,
        target: np.ndarray,
        *,
        replay: Any = None,
        penalty: Callable[[torch.nn.Module], torch.Tensor | None] | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The deep-supervision loss of one step: answer cross-entropy, replayed puzzles' CE
        (weighted per puzzle), a plugin penalty and, with ``bce`` halting, the halting loss."""
        target_t = self.to_device(np.asarray(target)).reshape(len(target), -1).long()
        ce = self.model.cross_entropy(step.logits, target_t)
        answer = step.logits.detach().argmax(-1)
        correct = (answer == target_t).all(dim=-1)
        loss = ce
        metrics: dict[str, float] = {}
        if replay is not None:
            replay_ce = self.supervised_loss(replay.grid, replay.target, replay.task)
            # each replayed puzzle weighs as much as a current one; the current batch stays whole
            loss = loss + replay_ce * (len(replay.grid) / len(target))
            metrics["train/replay_ce"] = float(replay_ce.detach())
        if penalty is not None:
            extra = penalty(self.model)
            if extra is not None:
                loss = loss + extra
                metrics["train/penalty"] = float(extra.detach())
        if self.dqn is None:
            halt_loss = self.bce.loss(step.q_halt, correct)
            loss = loss + self.config.halt_loss_weight * halt_loss
            metrics["halt/bce_loss"] = float(halt_loss.detach())
        metrics.update(
            {
                "train/loss": float(loss.detach()),
                "train/ce": float(ce.detach()),
                "train/exact": float(correct.float().mean()),
                "train/cell_accuracy": float((answer == target_t).float().mean()),
            }
        )
        return loss, metrics

    # ----------------------------------------------------------------------------- evaluation
    def eval_weights(self):  # noqa: ANN201 - a context manager
        """Context manager: the update rule's evaluation weights (the EMA when it keeps one)."""
        return self.update_rule.eval_weights()

    # ----------------------------------------------------------------------------- checkpoint
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly (tensors, numpy arrays and plain values)."""
        return {
            "config": asdict(self.config),
            "model": self.model.state_dict(),
            "update_rule": self.update_rule.state_dict(),
            "dqn": self.dqn.state_dict() if self.dqn else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.update_rule.load_state_dict(state["update_rule"])
        if self.dqn is not None:
            self.dqn.load_state_dict(state["dqn"])
        self.begin_chunk()
