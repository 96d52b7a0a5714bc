"""Building blocks of the Tiny Recursive Model: RMSNorm, SwiGLU, RoPE attention, mixer block.

The block follows the recipe of "Less is More: Recursive Reasoning with Tiny Networks"
(Jolicoeur-Martineau, 2025), itself inherited from the Hierarchical Reasoning Model (Wang et al.,
2025): a post-norm transformer block (parameter-free RMSNorm after each residual sum), a SwiGLU
MLP, and either non-causal self-attention with rotary position embeddings or — for small fixed
grids such as Sudoku — an MLP applied across the sequence dimension (MLP-Mixer style token mixing).

Everything is batch-major (``[batch, seq, hidden]``), uses fused projections and
``F.scaled_dot_product_attention``, and contains no Python loop over tokens, so it runs fast in
eager mode on CPU and GPU, under ``torch.autocast`` and under ``torch.compile``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MixerBlock",
    "RotaryEmbedding",
    "SelfAttention",
    "SwiGLU",
    "TokenMixingMLP",
    "apply_rotary",
    "lecun_normal_",
    "rms_norm",
    "swiglu_width",
]

# Standard deviation of a unit normal truncated to [-2, 2]; dividing by it makes the truncated
# draw have the requested standard deviation (torch's trunc_normal_ does not correct for this).
_TRUNCATED_STD = 0.8796256610342398


def lecun_normal_(tensor: torch.Tensor, std: float | None = None) -> torch.Tensor:
    """Fill ``tensor`` in place from a normal truncated at two standard deviations.

    Args:
        tensor: The tensor to fill (a weight of shape ``[out, in]`` or an embedding table).
        std: Target standard deviation of the filled values; ``None`` means LeCun's
            ``1 / sqrt(fan_in)`` with ``fan_in = tensor.shape[-1]``. ``0`` fills with zeros.

    Returns:
        ``tensor``, for chaining.
    """
    if std is None:
        std = 1.0 / math.sqrt(tensor.shape[-1])
    with torch.no_grad():
        if std == 0:
            return tensor.zero_()
        nn.init.trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0)
        return tensor.mul_(std / _TRUNCATED_STD)


def rms_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Parameter-free RMSNorm over the last dimension, computed in float32.

    Args:
        x: Any tensor; normalised over its last dimension.
        eps: Added to the mean square before the reciprocal square root.

    Returns:
        A tensor of ``x``'s shape and dtype whose rows have unit root mean square.
    """
    return F.rms_norm(x.float(), (x.shape[-1],), eps=eps).to(x.dtype)


def swiglu_width(dim: int, expansion: float) -> int:
    """Inner width of a SwiGLU MLP: ``2/3 * expansion * dim`` rounded up.

    The 2/3 keeps the gated MLP's parameter count equal to a plain MLP with the same expansion.
    Widths above 256 are rounded up to a multiple of 256 (as in the paper's models, so the paper
    configuration has its ~7M parameters); smaller ones to a multiple of 32.
    """
    raw = max(1, round(expansion * dim * 2 / 3))
    multiple = 256 if raw > 256 else 32
    return -(-raw // multiple) * multiple


class SwiGLU(nn.Module):
    """Gated MLP ``down(silu(gate(x)) * up(x))`` over the last dimension (Shazeer, 2020).

    Args:
        dim: Input and output width.
        expansion: Width multiplier before the 2/3 correction (see :func:`swiglu_width`).
    """

    def __init__(self, dim: int, expansion: float) -> None:
        super().__init__()
        self.inner = swiglu_width(dim, expansion)
        self.gate_up = nn.Linear(dim, 2 * self.inner, bias=False)
        self.down = nn.Linear(self.inner, dim, bias=False)
        lecun_normal_(self.gate_up.weight)
        lecun_normal_(self.down.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the MLP to ``x`` of shape ``[..., dim]``."""
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class TokenMixingMLP(nn.Module):
    """SwiGLU MLP across the sequence dimension of ``[batch, seq, hidden]`` tensors.

    Used instead of self-attention by the paper's TRM-MLP variant: every output position is a
    learned gated mixture of all input positions, the same mixing for every hidden channel.

    Args:
        seq_len: Fixed sequence length (including any prefix positions).
        expansion: Width multiplier of the hidden layer (see :func:`swiglu_width`).
    """

    def __init__(self, seq_len: int, expansion: float) -> None:
        super().__init__()
        self.inner = swiglu_width(seq_len, expansion)
        self.gate_up = nn.Parameter(lecun_normal_(torch.empty(2 * self.inner, seq_len)))
        self.down = nn.Parameter(lecun_normal_(torch.empty(seq_len, self.inner)))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Mix ``h`` of shape ``[batch, seq_len, hidden]`` along its sequence dimension."""
        # One GEMM over the (batch, channel) rows of the transposed view; measured faster on
        # CPU than broadcasting the weight from the left (W @ h) as a batched matmul.
        gate, up = F.linear(h.transpose(1, 2), self.gate_up).chunk(2, dim=-1)
        return F.linear(F.silu(gate) * up, self.down).transpose(1, 2)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding tables (Su et al., 2021) for a fixed sequence length.

    Args:
        head_dim: Width of one attention head (even).
        seq_len: Number of positions.
        theta: Base of the geometric frequency ladder.
    """

    def __init__(self, head_dim: int, seq_len: int, theta: float = 10000.0) -> None:
        super().__init__()
        inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)  # [seq, head_dim], halves rotate together
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the ``(cos, sin)`` tables, each ``[seq_len, head_dim]``."""
        return self.cos, self.sin


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate query/key heads ``x`` of shape ``[..., seq, head_dim]`` by their positions."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return (x * cos + rotated * sin).to(x.dtype)


class SelfAttention(nn.Module):
    """Non-causal multi-head self-attention with optional RoPE, via ``scaled_dot_product_attention``.

    Args:
        hidden_size: Model width (divisible by ``num_heads``).
        num_heads: Number of attention heads.
    """

    def __init__(self, hidden_size: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size, bias=False)
        self.out = nn.Linear(hidden_size, hidden_size, bias=False)
        lecun_normal_(self.qkv.weight)
        lecun_normal_(self.out.weight)

    def forward(
        self, h: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Attend over ``h`` of shape ``[batch, seq, hidden]``; ``rotary`` is ``(cos, sin)``."""
        batch, seq, hidden = h.shape
        qkv = self.qkv(h).view(batch, seq, 3, self.num_heads, self.head_dim)
        qkv = qkv.permute(2, 0, 3, 1, 4)  # [3, B, heads, S, hd]
        query_key, value = qkv[:2], qkv[2]
        if rotary is not None:
            query_key = apply_rotary(query_key, *rotary)  # queries and keys in one pass
        query, key = query_key.unbind(0)
        attended = F.scaled_dot_product_attention(query, key, value)
        return self.out(attended.transpose(1, 2).reshape(batch, seq, hidden))


class MixerBlock(nn.Module):
    """One post-norm block: token mixing (attention or MLP) then a SwiGLU channel MLP.

    ``h = norm(h + mix(h)); h = norm(h + mlp(h))`` with parameter-free RMSNorm, so every position
    leaves the block with unit root mean square — which is what lets the same block be applied
    recursively dozens of times without the state growing.

    Args:
        hidden_size: Model width.
        num_heads: Attention heads (ignored by the ``"mlp_mixer"`` kind).
        expansion: SwiGLU width multiplier, used by both MLPs.
        seq_len: Full sequence length including prefix positions (used by ``"mlp_mixer"``).
        kind: ``"attention"`` or ``"mlp_mixer"``.
        eps: RMSNorm epsilon.
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        expansion: float,
        seq_len: int,
        kind: str = "attention",
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if kind not in ("attention", "mlp_mixer"):
            raise ValueError(f"kind must be 'attention' or 'mlp_mixer', got {kind!r}")
        self.kind = kind
        self.eps = eps
        self.mixer: nn.Module = (
            SelfAttention(hidden_size, num_heads)
            if kind == "attention"
            else TokenMixingMLP(seq_len, expansion)
        )
        self.mlp = SwiGLU(hidden_size, expansion)

    def forward(
        self, h: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Apply the block to ``h`` of shape ``[batch, seq, hidden]``."""
        mixed = self.mixer(h, rotary) if self.kind == "attention" else self.mixer(h)
        h = rms_norm(h + mixed, self.eps)
        return rms_norm(h + self.mlp(h), self.eps)
