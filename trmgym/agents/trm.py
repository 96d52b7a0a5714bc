"""The Tiny Recursive Model (TRM) network, its losses and a parameter EMA.

Re-implemented from the description in "Less is More: Recursive Reasoning with Tiny Networks"
(Jolicoeur-Martineau, 2025, arXiv:2510.04871). One small network of ``num_layers`` post-norm
blocks is applied recursively to three ``[batch, seq, hidden]`` states: the embedded puzzle ``x``,
the current answer ``y`` and a latent reasoning state ``z``. One call of :meth:`TRM.forward` is one
*supervision step* (one env step in trmgym)::

    repeat T = h_cycles times:                       # all but the last without gradient
        repeat n = l_cycles times: z = net(z + y + x)   # think: refine the latent
        y = net(y + z)                                  # act: refine the answer (no x)
    logits = head(y);  q_halt = halt_head(y[:, 0]);  carry = (y, z).detach()

Deep supervision (up to N_sup such steps per puzzle, the carry handed from one to the next) and the
halting policy are the agent's business; this module provides the step, the ``bce`` halting logit
of the paper (``q_halt``; halt when it predicts the answer is correct) and pooled features for a
separate DQN halting head.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from trmgym.agents.layers import MixerBlock, RotaryEmbedding, lecun_normal_
from trmgym.envs.tokens import VOCAB_SIZE

__all__ = [
    "EMA",
    "TRM",
    "TRMCarry",
    "TRMConfig",
    "TRMOutput",
    "softmax_cross_entropy",
    "stablemax_cross_entropy",
    "token_cross_entropy",
]

BLOCKS = ("attention", "mlp_mixer")
POS_ENCODINGS = ("auto", "rope", "learned", "rowcol", "none")
LOSSES = ("softmax", "stablemax")
FORWARD_DTYPES = ("float32", "bfloat16")
REDUCTIONS = ("mean", "sum", "none")


@dataclass
class TRMConfig:
    """Architecture of a :class:`TRM`. Defaults are the paper's configuration on a 9x9 grid."""

    vocab_size: int = VOCAB_SIZE
    """Number of input/output tokens (trmgym's shared vocabulary by default)."""
    seq_len: int = 81
    """Cells per puzzle, H*W of the (canvas) grid, flattened row-major."""
    grid_height: int | None = None
    """Grid rows H; needed by ``pos_encoding="rowcol"``; if set with grid_width, H*W == seq_len."""
    grid_width: int | None = None
    """Grid columns W; see grid_height."""
    hidden_size: int = 512
    """Width D of every token state (x, y, z)."""
    num_heads: int = 8
    """Attention heads (must divide hidden_size; head width must be even for RoPE)."""
    expansion: float = 4.0
    """SwiGLU width multiplier (inner width ~ 2/3 * expansion * D)."""
    h_cycles: int = 3
    """T: answer-update cycles per supervision step; the first T-1 run without gradient."""
    l_cycles: int = 6
    """n: latent updates z = net(z + y + x) per cycle, before each y = net(y + z)."""
    num_layers: int = 2
    """Blocks in the single shared network."""
    block: str = "attention"
    """Token mixing: "attention" (RoPE self-attention) or "mlp_mixer" (MLP over the sequence)."""
    pos_encoding: str = "auto"
    """"rope", "learned", "rowcol" (learned row + column tables), "none"; "auto" picks rope for
    attention and learned for mlp_mixer."""
    num_task_embeddings: int = 0
    """Number of tasks with a learned embedding (0 = none and no prefix positions)."""
    puzzle_emb_len: int = 16
    """Prefix positions holding the task embedding (used when num_task_embeddings > 0)."""
    rope_theta: float = 10000.0
    """RoPE frequency base."""
    rms_norm_eps: float = 1e-5
    """RMSNorm epsilon."""
    loss: str = "softmax"
    """Cross-entropy used by :meth:`TRM.cross_entropy`: "softmax" or "stablemax"."""
    forward_dtype: str = "float32"
    """Matmul dtype: "float32", or "bfloat16" (autocast; states and carry stay float32). bfloat16
    is for GPUs (and CPUs with AMX/AVX512-BF16); on an AVX2 CPU its matmuls are ~50x slower."""

    def __post_init__(self) -> None:
        counts = ("vocab_size", "seq_len", "hidden_size", "num_heads", "h_cycles", "l_cycles")
        for name in (*counts, "num_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("expansion", "rope_theta", "rms_norm_eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        for name, value, allowed in (
            ("block", self.block, BLOCKS),
            ("pos_encoding", self.pos_encoding, POS_ENCODINGS),
            ("loss", self.loss, LOSSES),
            ("forward_dtype", self.forward_dtype, FORWARD_DTYPES),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})"
            )
        for name in ("num_task_embeddings", "puzzle_emb_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        if self.num_task_embeddings > 0 and self.puzzle_emb_len < 1:
            raise ValueError(
                f"puzzle_emb_len must be >= 1 when num_task_embeddings > 0, "
                f"got {self.puzzle_emb_len}"
            )
        pos = self.resolved_pos_encoding
        if pos == "rope" and self.block != "attention":
            raise ValueError(
                "pos_encoding='rope' needs block='attention'; use 'learned' or 'rowcol'"
            )
        if pos == "rope" and (self.hidden_size // self.num_heads) % 2:
            raise ValueError(
                f"pos_encoding='rope' needs an even head width, got hidden_size/num_heads = "
                f"{self.hidden_size // self.num_heads}"
            )
        dims = (self.grid_height, self.grid_width)
        if any(d is not None for d in dims):
            if any(d is None or d < 1 for d in dims):
                raise ValueError(f"grid_height and grid_width must both be >= 1, got {dims}")
            if dims[0] * dims[1] != self.seq_len:
                raise ValueError(
                    f"grid_height * grid_width must equal seq_len ({self.seq_len}), got {dims}"
                )
        elif pos == "rowcol":
            raise ValueError("pos_encoding='rowcol' needs grid_height and grid_width")

    @property
    def resolved_pos_encoding(self) -> str:
        """The position encoding actually used (``"auto"`` resolved by block kind)."""
        if self.pos_encoding != "auto":
            return self.pos_encoding
        return "rope" if self.block == "attention" else "learned"

    @property
    def prefix_len(self) -> int:
        """Number of task-embedding prefix positions (0 without task embeddings)."""
        return self.puzzle_emb_len if self.num_task_embeddings > 0 else 0

    @property
    def total_len(self) -> int:
        """Positions of the states y and z: prefix_len + seq_len."""
        return self.prefix_len + self.seq_len

    @classmethod
    def tiny(cls, **overrides: Any) -> TRMConfig:
        """A CPU-sized model (D=64, 4 heads, expansion 4, T=2, n=2), ``trmgym run``'s default
        (``agent.size=tiny``); keyword arguments override fields."""
        base = dict(hidden_size=64, num_heads=4, expansion=4.0, h_cycles=2, l_cycles=2)
        return cls(**{**base, "puzzle_emb_len": 4, **overrides})

    @classmethod
    def small(cls, **overrides: Any) -> TRMConfig:
        """A laptop-sized model (D=128, T=3, n=4); keyword arguments override fields."""
        base = dict(hidden_size=128, num_heads=4, expansion=4.0, h_cycles=3, l_cycles=4)
        return cls(**{**base, "puzzle_emb_len": 8, **overrides})

    @classmethod
    def paper(cls, **overrides: Any) -> TRMConfig:
        """The paper's model (D=512, 8 heads, expansion 4, T=3, n=6, 2 layers, ~7M params)."""
        base = dict(hidden_size=512, num_heads=8, expansion=4.0, h_cycles=3, l_cycles=6)
        return cls(**{**base, "num_layers": 2, **overrides})


class TRMCarry(NamedTuple):
    """Recurrent state handed from one supervision step to the next."""

    y: torch.Tensor
    """Answer state, ``[batch, prefix_len + seq_len, hidden]``."""
    z: torch.Tensor
    """Latent reasoning state, same shape as ``y``."""


class TRMOutput(NamedTuple):
    """What one supervision step returns."""

    logits: torch.Tensor
    """Per-cell token logits ``[batch, seq_len, vocab]`` (float32), read from y."""
    q_halt: torch.Tensor
    """Halting logit ``[batch]`` (float32): the paper's ``bce`` halting, "is y already right?"."""
    carry: TRMCarry
    """The new (y, z), detached from the graph."""
    features: torch.Tensor
    """``[batch, 2 * hidden]`` = (mean of y, mean of z) over positions, for a DQN halting head.
    Attached to the graph: detach it to keep a TD loss out of the network."""


class TRM(nn.Module):
    """Tiny Recursive Model: one small network applied recursively to (x, y, z).

    Args:
        config: The architecture.
        cycle_reader: optional module read inside every reasoning cycle (see
            :attr:`cycle_reader`); ``None`` (default) leaves the recursion unchanged.

    Example:
        >>> model = TRM(TRMConfig.tiny(seq_len=16))
        >>> carry = model.initial_carry(2)
        >>> out = model(torch.zeros(2, 16, dtype=torch.long), carry)
        >>> out.logits.shape, out.q_halt.shape
        (torch.Size([2, 16, 26]), torch.Size([2]))
    """

    def __init__(self, config: TRMConfig, cycle_reader: nn.Module | None = None) -> None:
        super().__init__()
        if not isinstance(config, TRMConfig):
            raise TypeError(f"config must be a TRMConfig, got {type(config).__name__}")
        if cycle_reader is not None and not isinstance(cycle_reader, nn.Module):
            raise TypeError(
                f"cycle_reader must be None or an nn.Module, got {type(cycle_reader).__name__}"
            )
        self.config = config
        #: optional module read in every reasoning cycle: ``cycle_reader(y, z)`` -> a tensor
        #: broadcastable to z ``[batch, prefix_len + seq_len, hidden]``, added to z after the n
        #: latent updates and before the answer update (the memory bank's injection point)
        self.cycle_reader = cycle_reader
        dim, length = config.hidden_size, config.total_len
        self.pos_encoding = config.resolved_pos_encoding
        # Embeddings are stored at std 1/sqrt(D) and scaled by sqrt(D), so x has unit-size
        # entries like the RMS-normalised y and z (tiny inputs stall learning at 0% accuracy).
        self.embed_scale = math.sqrt(dim)
        self.token_embedding = nn.Parameter(lecun_normal_(torch.empty(config.vocab_size, dim)))
        if config.num_task_embeddings > 0:
            # Zero start: an unseen or unknown task (task_ids=None) reads as the blank prefix.
            self.task_embedding = nn.Parameter(
                torch.zeros(config.num_task_embeddings, config.prefix_len, dim)
            )
        if self.pos_encoding == "learned":
            self.position_embedding = nn.Parameter(lecun_normal_(torch.empty(length, dim)))
        elif self.pos_encoding == "rowcol":
            # Separate row and column tables make the grid's symmetries (flips, transposes)
            # expressible as permutations of a few vectors; std 1/sqrt(2D) each so the sum is
            # 1/sqrt(D) like a token embedding.
            std = 1.0 / math.sqrt(2 * dim)
            height, width = config.grid_height, config.grid_width
            self.row_embedding = nn.Parameter(lecun_normal_(torch.empty(height, dim), std))
            self.col_embedding = nn.Parameter(lecun_normal_(torch.empty(width, dim), std))
            if config.prefix_len:
                self.prefix_position_embedding = nn.Parameter(
                    lecun_normal_(torch.empty(config.prefix_len, dim), 1.0 / math.sqrt(dim))
                )
        elif self.pos_encoding == "rope":
            self.rotary = RotaryEmbedding(dim // config.num_heads, length, config.rope_theta)
        self.blocks = nn.ModuleList(
            MixerBlock(
                dim, config.num_heads, config.expansion, length, config.block, config.rms_norm_eps
            )
            for _ in range(config.num_layers)
        )
        self.lm_head = nn.Linear(dim, config.vocab_size, bias=False)
        lecun_normal_(self.lm_head.weight)
        self.halt_head = nn.Linear(dim, 1)
        with torch.no_grad():
            # Start by (almost) never halting, so early training sees full-length reasoning.
            self.halt_head.weight.zero_()
            self.halt_head.bias.fill_(-5.0)
        # Fixed, non-trainable starting states (one vector broadcast over positions); saved in
        # the state dict so a checkpoint restores exactly the same initial carry.
        self.register_buffer("y_init", lecun_normal_(torch.empty(dim), 1.0))
        self.register_buffer("z_init", lecun_normal_(torch.empty(dim), 1.0))

    # ----------------------------------------------------------------------------- carry
    def initial_carry(self, batch_size: int, device: torch.device | str | None = None) -> TRMCarry:
        """The fixed starting (y, z), each ``[batch_size, total_len, hidden]`` float32."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        shape = (batch_size, self.config.total_len, self.config.hidden_size)
        device = self.y_init.device if device is None else torch.device(device)
        return TRMCarry(
            self.y_init.to(device).expand(shape).clone(),
            self.z_init.to(device).expand(shape).clone(),
        )

    def reset_carry(self, carry: TRMCarry, mask: torch.Tensor) -> TRMCarry:
        """Return ``carry`` with the rows where ``mask`` (bool ``[batch]``) is True reset."""
        y, z = carry
        if mask.dtype != torch.bool or mask.shape != y.shape[:1]:
            raise ValueError(
                f"mask must be a bool tensor of shape ({y.shape[0]},), "
                f"got {mask.dtype} {tuple(mask.shape)}"
            )
        rows = mask.to(y.device).view(-1, 1, 1)
        return TRMCarry(
            torch.where(rows, self.y_init.to(y.dtype), y),
            torch.where(rows, self.z_init.to(z.dtype), z),
        )

    # ----------------------------------------------------------------------------- forward
    def forward(
        self, x: torch.Tensor, carry: TRMCarry, task_ids: torch.Tensor | None = None
    ) -> TRMOutput:
        """Run one supervision step: T cycles of (n latent updates, one answer update).

        Args:
            x: Puzzle tokens ``[batch, seq_len]`` (or ``[batch, H, W]``), ints in ``0..vocab-1``.
            carry: (y, z) from :meth:`initial_carry` or the previous step.
            task_ids: ``[batch]`` task indices for the task embedding; ``None`` uses the blank
                (zero) prefix; ignored when the model has no task embeddings.

        Returns:
            A :class:`TRMOutput`; only its logits, q_halt and features carry gradient, and
            only through the last cycle.

        Only shapes are checked here (:meth:`check_shapes`), so the step is a pure function of
        the parameters that ``torch.func.functional_call``, ``grad`` and ``vmap`` can transform;
        token and task ranges are checked by :meth:`check_inputs` at the caller's boundary.
        """
        x = self.check_shapes(x, carry, task_ids)
        autocast = (
            torch.autocast(device_type=x.device.type, dtype=torch.bfloat16)
            if self.config.forward_dtype == "bfloat16"
            else contextlib.nullcontext()
        )
        with autocast:
            inputs = self._embed(x, task_ids)
            rotary = self.rotary() if self.pos_encoding == "rope" else None
            y, z = carry
            # Backpropagating through only the last cycle is the paper's replacement for HRM's
            # one-step fixed-point gradient: the earlier cycles just move (y, z) closer.
            with torch.no_grad():
                for _ in range(self.config.h_cycles - 1):
                    y, z = self._cycle(y, z, inputs, rotary)
            y, z = self._cycle(y, z, inputs, rotary)
            prefix = self.config.prefix_len
            logits = self.lm_head(y[:, prefix:]).float()
            halt_state = y[:, 0] if prefix else y.mean(dim=1)
            q_halt = self.halt_head(halt_state).squeeze(-1).float()
            features = torch.cat((y.mean(dim=1), z.mean(dim=1)), dim=-1).float()
        return TRMOutput(logits, q_halt, TRMCarry(y.detach(), z.detach()), features)

    def _cycle(
        self,
        y: torch.Tensor,
        z: torch.Tensor,
        inputs: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        for _ in range(self.config.l_cycles):
            z = self._net(z + y + inputs, rotary)
        if self.cycle_reader is not None:
            # the injection point: e.g. a memory read, added to the latent before the answer step
            z = z + self.cycle_reader(y, z)
        return self._net(y + z, rotary), z

    def _net(
        self, h: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor] | None
    ) -> torch.Tensor:
        for block in self.blocks:
            h = block(h, rotary)
        return h

    def _embed(self, x: torch.Tensor, task_ids: torch.Tensor | None) -> torch.Tensor:
        config = self.config
        embedded = F.embedding(x, self.token_embedding)
        if config.prefix_len:
            if task_ids is None:
                prefix = embedded.new_zeros(x.shape[0], config.prefix_len, config.hidden_size)
            else:
                prefix = self.task_embedding[task_ids.to(x.device)].to(embedded.dtype)
            embedded = torch.cat((prefix, embedded), dim=1)
        if self.pos_encoding == "learned":
            position = self.position_embedding
        elif self.pos_encoding == "rowcol":
            grid = self.row_embedding[:, None, :] + self.col_embedding[None, :, :]
            position = grid.reshape(config.seq_len, -1)
            if config.prefix_len:
                position = torch.cat((self.prefix_position_embedding, position), dim=0)
        else:
            return self.embed_scale * embedded
        # (token + position) / sqrt(2) keeps the per-entry variance of a single embedding.
        return (self.embed_scale / math.sqrt(2.0)) * (embedded + position)

    def check_shapes(
        self, x: torch.Tensor, carry: TRMCarry, task_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Check dtypes and shapes (no tensor values: safe under ``torch.func`` transforms).

        Returns ``x`` flattened to ``[batch, seq_len]``.

        Raises:
            TypeError: ``x`` is not an int32/int64 tensor.
            ValueError: a shape does not match the config.
        """
        config = self.config
        if not isinstance(x, torch.Tensor) or x.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"x must be an int32/int64 tensor, got {getattr(x, 'dtype', type(x))}")
        if x.dim() == 3:
            x = x.reshape(x.shape[0], -1)
        if x.dim() != 2 or x.shape[1] != config.seq_len:
            raise ValueError(
                f"x must have shape [batch, {config.seq_len}] (or [batch, H, W] with "
                f"H*W={config.seq_len}), got {tuple(x.shape)}"
            )
        expected = (x.shape[0], config.total_len, config.hidden_size)
        if len(carry) != 2 or any(tuple(s.shape) != expected for s in carry):
            raise ValueError(
                f"carry must be (y, z), each of shape {expected}, "
                f"got {[tuple(s.shape) for s in carry]}"
            )
        if task_ids is not None and config.num_task_embeddings > 0:
            if task_ids.shape != (x.shape[0],) or task_ids.is_floating_point():
                raise ValueError(
                    f"task_ids must be an int tensor of shape ({x.shape[0]},), "
                    f"got {task_ids.dtype} {tuple(task_ids.shape)}"
                )
        return x

    def check_inputs(
        self, x: torch.Tensor, carry: TRMCarry, task_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Full validation of a step's inputs: :meth:`check_shapes` plus token and task ranges.

        The value checks read tensors (a device sync, and impossible under ``vmap``), so
        :meth:`forward` does not run them: callers at the boundary (the agent) do, once per batch.

        Raises:
            TypeError, ValueError: naming the input and the allowed range.
        """
        config = self.config
        x = self.check_shapes(x, carry, task_ids)
        if bool(((x < 0) | (x >= config.vocab_size)).any()):
            raise ValueError(f"x tokens must lie in 0..{config.vocab_size - 1}")
        if task_ids is not None and config.num_task_embeddings > 0:
            if bool(((task_ids < 0) | (task_ids >= config.num_task_embeddings)).any()):
                raise ValueError(
                    f"task_ids must lie in 0..{config.num_task_embeddings - 1} "
                    f"(num_task_embeddings={config.num_task_embeddings})"
                )
        return x

    def cross_entropy(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        ignore_index: int | None = None,
        reduction: str = "mean",
    ) -> torch.Tensor:
        """Token cross-entropy of the kind named by ``config.loss`` (see :func:`token_cross_entropy`)."""
        return token_cross_entropy(logits, targets, self.config.loss, ignore_index, reduction)


# --------------------------------------------------------------------------------- losses
def _nll(
    logprobs: torch.Tensor, targets: torch.Tensor, ignore_index: int | None, reduction: str
) -> torch.Tensor:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if targets.shape != logprobs.shape[:-1]:
        raise ValueError(
            f"targets must have shape {tuple(logprobs.shape[:-1])}, got {tuple(targets.shape)}"
        )
    targets = targets.long()
    valid = torch.ones_like(targets, dtype=torch.bool)
    if ignore_index is not None:
        valid = targets != ignore_index
        targets = torch.where(valid, targets, 0)
    picked = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    losses = torch.where(valid, -picked, 0.0).float()
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / valid.sum().clamp(min=1)


def softmax_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Softmax cross-entropy over the last dimension, computed in float32.

    Args:
        logits: ``[..., vocab]``.
        targets: Integer classes of shape ``logits.shape[:-1]``.
        ignore_index: Target value contributing no loss (e.g. ``tokens.PAD``); ``None`` = none.
        reduction: ``"mean"`` over non-ignored targets, ``"sum"``, or ``"none"`` (per target,
            0 where ignored).

    Returns:
        The loss as float32.
    """
    return _nll(F.log_softmax(logits.float(), dim=-1), targets, ignore_index, reduction)


def stablemax_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy under stablemax (Prieto et al., 2025), computed in float64.

    Stablemax replaces ``exp`` with ``s(v) = v + 1`` for ``v >= 0`` and ``1 / (1 - v)`` otherwise,
    so probabilities are ``s(v_i) / sum_j s(v_j)``; the TRM paper uses it against the softmax
    collapse that ends training on small data. Arguments and return as
    :func:`softmax_cross_entropy`.
    """
    values = logits.double()
    # clamp keeps the unused branch finite at v = 1, where 1/(1 - v) would give inf * 0 = nan.
    scores = torch.where(values >= 0, values + 1.0, 1.0 / (1.0 - values.clamp(max=0.0)))
    logprobs = scores.log() - scores.sum(dim=-1, keepdim=True).log()
    return _nll(logprobs, targets, ignore_index, reduction)


def token_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    kind: str = "softmax",
    ignore_index: int | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Dispatch to :func:`softmax_cross_entropy` or :func:`stablemax_cross_entropy` by ``kind``."""
    if kind == "softmax":
        return softmax_cross_entropy(logits, targets, ignore_index, reduction)
    if kind == "stablemax":
        return stablemax_cross_entropy(logits, targets, ignore_index, reduction)
    raise ValueError(f"kind must be one of {LOSSES}, got {kind!r}")


# ----------------------------------------------------------------------------------- EMA
class EMA:
    """Exponential moving average of a model's parameters: ``shadow = mu*shadow + (1-mu)*param``.

    The paper evaluates with an EMA of the weights (mu = 0.999), which it reports as important
    against overfitting on small data.

    Args:
        model: The model whose (floating-point) parameters are tracked.
        mu: Decay in ``[0, 1)``.
    """

    def __init__(self, model: nn.Module, mu: float = 0.999) -> None:
        if not isinstance(mu, (int, float)) or not 0.0 <= mu < 1.0:
            raise ValueError(f"mu must lie in [0, 1), got {mu!r}")
        self.mu = float(mu)
        self.num_updates = 0
        self.shadow: dict[str, torch.Tensor] = {
            name: p.detach().clone() for name, p in self._params(model).items()
        }

    @staticmethod
    def _params(model: nn.Module) -> dict[str, torch.Tensor]:
        # Names without torch.compile's wrapper prefix, so a model and its compiled view match.
        return {
            name.removeprefix("_orig_mod."): p
            for name, p in model.named_parameters()
            if p.is_floating_point()
        }

    def _matched(self, model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
        params = self._params(model)
        if params.keys() != self.shadow.keys():
            missing = sorted(set(self.shadow) ^ set(params))[:5]
            raise ValueError(f"model parameters do not match the EMA's (differing: {missing})")
        return [(self.shadow[name], params[name]) for name in self.shadow]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the shadow weights a step ``1 - mu`` towards ``model``'s current weights."""
        for shadow, param in self._matched(model):
            shadow.lerp_(param.detach().to(shadow.dtype), 1.0 - self.mu)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite ``model``'s parameters with the shadow weights."""
        for shadow, param in self._matched(model):
            param.copy_(shadow)

    @contextlib.contextmanager
    def swap(self, model: nn.Module) -> Iterator[nn.Module]:
        """Context manager: ``model`` holds the EMA weights inside, its own weights after."""
        backup = {name: p.detach().clone() for name, p in self._params(model).items()}
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, param in self._params(model).items():
                    param.copy_(backup[name])

    def state_dict(self) -> dict[str, Any]:
        """A checkpointable dict (tensors and numbers only; loads with ``weights_only=True``)."""
        return {
            "mu": self.mu,
            "num_updates": self.num_updates,
            "shadow": {k: v.clone() for k, v in self.shadow.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; the parameter names must match."""
        if set(state["shadow"]) != set(self.shadow):
            raise ValueError("EMA state_dict parameter names do not match this EMA's")
        self.mu = float(state["mu"])
        self.num_updates = int(state["num_updates"])
        for name, value in state["shadow"].items():
            self.shadow[name].copy_(value)
