"""Tests of the Tiny Recursive Model network, its losses and the parameter EMA."""

from __future__ import annotations

import math

import pytest
import torch

from trmgym.agents.layers import MixerBlock, rms_norm, swiglu_width
from trmgym.agents.trm import (
    EMA,
    TRM,
    TRMCarry,
    TRMConfig,
    softmax_cross_entropy,
    stablemax_cross_entropy,
    token_cross_entropy,
)
from trmgym.envs.tokens import PAD, VOCAB_SIZE

SEQ = 16  # a 4x4 grid


def make_model(seed: int = 0, **overrides) -> TRM:
    torch.manual_seed(seed)
    return TRM(TRMConfig.tiny(seq_len=SEQ, **overrides))


def random_tokens(batch: int, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB_SIZE, (batch, SEQ), generator=gen)


# ------------------------------------------------------------------------------ config
def test_presets_have_the_documented_sizes() -> None:
    tiny = TRMConfig.tiny()  # what `trmgym run` builds by default (agent.size=tiny)
    assert (tiny.hidden_size, tiny.num_heads, tiny.expansion) == (64, 4, 4.0)
    assert (tiny.h_cycles, tiny.l_cycles, tiny.num_layers, tiny.puzzle_emb_len) == (2, 2, 2, 4)
    small = TRMConfig.small()
    assert (small.hidden_size, small.num_heads, small.expansion) == (128, 4, 4.0)
    assert (small.h_cycles, small.l_cycles, small.puzzle_emb_len) == (3, 4, 8)
    paper = TRMConfig.paper()
    assert (paper.hidden_size, paper.num_heads, paper.expansion) == (512, 8, 4.0)
    assert (paper.h_cycles, paper.l_cycles, paper.num_layers) == (3, 6, 2)
    assert TRMConfig.tiny(l_cycles=5).l_cycles == 5
    # The paper's attention model has ~7M parameters; the SwiGLU width matches its rounding.
    assert swiglu_width(512, 4.0) == 1536
    params = sum(p.numel() for p in TRM(paper).parameters())
    assert 6.5e6 < params < 7.5e6


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (dict(hidden_size=0), "hidden_size"),
        (dict(hidden_size=64, num_heads=3), "num_heads"),
        (dict(h_cycles=0), "h_cycles"),
        (dict(l_cycles=1.5), "l_cycles"),
        (dict(block="conv"), "block"),
        (dict(loss="focal"), "loss"),
        (dict(forward_dtype="float16"), "forward_dtype"),
        (dict(pos_encoding="sinusoid"), "pos_encoding"),
        (dict(block="mlp_mixer", pos_encoding="rope"), "rope"),
        (dict(pos_encoding="rowcol"), "grid_height"),
        (dict(grid_height=3, grid_width=3), "grid_height"),
        (dict(num_task_embeddings=-1), "num_task_embeddings"),
        (dict(num_task_embeddings=2, puzzle_emb_len=0), "puzzle_emb_len"),
        (dict(expansion=0), "expansion"),
    ],
)
def test_config_rejects_bad_fields_naming_them(overrides: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        TRMConfig.tiny(seq_len=SEQ, **overrides)


def test_model_rejects_bad_inputs() -> None:
    model = make_model(num_task_embeddings=2)
    carry = model.initial_carry(2)
    with pytest.raises(TypeError, match="x must be"):
        model(torch.zeros(2, SEQ), carry)
    with pytest.raises(ValueError, match="x must have shape"):
        model(torch.zeros(2, SEQ + 1, dtype=torch.long), carry)
    with pytest.raises(ValueError, match="tokens must lie"):  # value checks: at the boundary
        model.check_inputs(torch.full((2, SEQ), VOCAB_SIZE), carry)
    with pytest.raises(ValueError, match="carry"):
        model(torch.zeros(3, SEQ, dtype=torch.long), carry)
    with pytest.raises(ValueError, match="task_ids must lie in 0..1"):
        model.check_inputs(torch.zeros(2, SEQ, dtype=torch.long), carry, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="mask"):
        model.reset_carry(carry, torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="batch_size"):
        model.initial_carry(0)
    with pytest.raises(TypeError, match="config"):
        TRM({"hidden_size": 64})


# ------------------------------------------------------------------------------ shapes
@pytest.mark.parametrize(
    "overrides",
    [
        dict(),
        dict(block="mlp_mixer"),
        dict(block="mlp_mixer", pos_encoding="rowcol", grid_height=4, grid_width=4),
        dict(pos_encoding="rowcol", grid_height=2, grid_width=8, num_task_embeddings=3),
        dict(num_task_embeddings=3),
        dict(block="mlp_mixer", num_task_embeddings=3),
        dict(forward_dtype="bfloat16", num_task_embeddings=3),
    ],
)
def test_output_shapes(overrides: dict) -> None:
    model = make_model(**overrides)
    config = model.config
    batch = 3
    carry = model.initial_carry(batch)
    prefix = 4 if config.num_task_embeddings else 0
    assert config.prefix_len == prefix
    assert carry.y.shape == carry.z.shape == (batch, SEQ + prefix, 64)
    out = model(random_tokens(batch), carry, torch.tensor([0, 2, 1]))
    assert out.logits.shape == (batch, SEQ, VOCAB_SIZE)
    assert out.logits.dtype == out.q_halt.dtype == torch.float32
    assert out.q_halt.shape == (batch,)
    assert out.features.shape == (batch, 2 * 64)
    assert out.carry.y.shape == carry.y.shape and out.carry.y.dtype == torch.float32
    assert torch.isfinite(out.logits).all()
    # Post-norm blocks leave every position of y and z with unit root mean square.
    rms = out.carry.z.pow(2).mean(-1).sqrt()
    torch.testing.assert_close(rms, torch.ones_like(rms), atol=2e-2, rtol=0)


def test_grid_input_equals_flat_input_and_task_embedding_matters() -> None:
    model = make_model(num_task_embeddings=2)
    with torch.no_grad():
        model.task_embedding.normal_()
    x = random_tokens(2)
    carry = model.initial_carry(2)
    flat = model(x, carry, torch.tensor([0, 0]))
    grid = model(x.view(2, 4, 4), carry, torch.tensor([0, 0]))
    torch.testing.assert_close(flat.logits, grid.logits)
    other = model(x, carry, torch.tensor([1, 1]))
    assert not torch.allclose(flat.logits, other.logits)


def test_mixer_block_uses_every_position() -> None:
    torch.manual_seed(0)
    block = MixerBlock(16, 2, 2.0, seq_len=5, kind="mlp_mixer")
    h = torch.randn(1, 5, 16, requires_grad=True)
    block(h)[0, 0].sum().backward()
    # Output position 0 depends on every input position through the token-mixing MLP.
    assert (h.grad[0].abs().sum(-1) > 0).all()
    torch.testing.assert_close(
        rms_norm(torch.full((2, 4), 3.0)), torch.ones(2, 4), atol=1e-4, rtol=0
    )


# ------------------------------------------------------------------------------ gradients
def test_gradients_reach_parameters_and_carry_is_detached() -> None:
    model = make_model(num_task_embeddings=2)
    carry = model.initial_carry(2)
    out = model(random_tokens(2), carry, torch.tensor([0, 1]))
    assert not out.carry.y.requires_grad and not out.carry.z.requires_grad
    assert out.carry.y.grad_fn is None and out.carry.z.grad_fn is None
    loss = softmax_cross_entropy(out.logits, random_tokens(2, seed=5)) + out.q_halt.sum()
    loss.backward()
    for name, param in model.named_parameters():
        if name.startswith("task_embedding"):
            # Only the rows of the tasks in the batch get gradient.
            assert param.grad is not None and param.grad.abs().sum() > 0
        elif name.startswith("halt_head.weight"):
            assert param.grad is not None  # zero-initialised, but reached
        else:
            assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_only_the_last_cycle_is_backpropagated() -> None:
    model = make_model(h_cycles=3, l_cycles=2)
    config = model.config
    forward_calls = [0]
    backward_calls = [0]
    for block in model.blocks:
        block.register_forward_hook(lambda *_: forward_calls.__setitem__(0, forward_calls[0] + 1))
        block.register_full_backward_hook(
            lambda *_: backward_calls.__setitem__(0, backward_calls[0] + 1)
        )
    out = model(random_tokens(2), model.initial_carry(2))
    per_cycle = config.num_layers * (config.l_cycles + 1)
    assert forward_calls[0] == config.h_cycles * per_cycle
    out.logits.sum().backward()
    assert backward_calls[0] == per_cycle


def test_no_grad_cycles_build_no_graph() -> None:
    # With T cycles the autograd graph is that of one cycle: T=1 and T=4 give the same node count.
    def graph_size(h_cycles: int) -> int:
        model = make_model(h_cycles=h_cycles)
        out = model(random_tokens(2), model.initial_carry(2))
        seen, stack = set(), [out.logits.grad_fn]
        while stack:
            node = stack.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            stack.extend(next_fn for next_fn, _ in node.next_functions)
        return len(seen)

    assert graph_size(1) == graph_size(4) > 50


def test_initial_carry_is_a_fixed_buffer_and_reset_restores_it() -> None:
    model = make_model()
    names = {name for name, _ in model.named_parameters()}
    assert "y_init" not in names and "z_init" not in names
    assert {"y_init", "z_init"} <= set(model.state_dict())
    first, second = model.initial_carry(3), model.initial_carry(3)
    torch.testing.assert_close(first.y, second.y)
    assert not torch.allclose(first.y, first.z)
    torch.testing.assert_close(first.y[1, 5], model.y_init)
    out = model(random_tokens(3), first)
    reset = model.reset_carry(out.carry, torch.tensor([True, False, True]))
    torch.testing.assert_close(reset.y[0], first.y[0])
    torch.testing.assert_close(reset.z[2], first.z[2])
    torch.testing.assert_close(reset.y[1], out.carry.y[1])
    assert isinstance(reset, TRMCarry)
    # A training step leaves the initial state untouched.
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    out.logits.sum().backward()
    optimizer.step()
    torch.testing.assert_close(model.initial_carry(3).y, first.y)


def test_same_seed_gives_same_model_and_outputs() -> None:
    x = random_tokens(2)
    outs = []
    for _ in range(2):
        model = make_model(seed=7, num_task_embeddings=2)
        outs.append(model(x, model.initial_carry(2), torch.tensor([1, 0])))
    torch.testing.assert_close(outs[0].logits, outs[1].logits, rtol=0, atol=0)
    torch.testing.assert_close(outs[0].carry.z, outs[1].carry.z, rtol=0, atol=0)
    other = make_model(seed=8, num_task_embeddings=2)
    assert not torch.allclose(other(x, other.initial_carry(2)).logits, outs[0].logits)


# ------------------------------------------------------------------------------ losses
def test_stablemax_cross_entropy_matches_hand_computation() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.0], [0.5, 3.0, -3.0]])
    targets = torch.tensor([0, 2])
    # s = [3, 1/2, 1] -> p0 = 3/4.5;  s = [1.5, 4, 1/4] -> p2 = 0.25/5.75.
    expected = torch.tensor([math.log(4.5 / 3.0), math.log(5.75 / 0.25)])
    per_row = stablemax_cross_entropy(logits, targets, reduction="none")
    torch.testing.assert_close(per_row, expected.float())
    torch.testing.assert_close(stablemax_cross_entropy(logits, targets), expected.mean().float())


def test_stablemax_gradient_is_finite_at_one() -> None:
    logits = torch.tensor([[1.0, -1.0, 1.0]], requires_grad=True)
    stablemax_cross_entropy(logits, torch.tensor([1])).backward()
    assert torch.isfinite(logits.grad).all()


def test_softmax_cross_entropy_ignores_pad_targets() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 7, generator=gen)
    targets = torch.tensor([[1, 2, PAD, 3, PAD], [PAD, 4, 5, 6, 1]])
    valid = targets != PAD
    expected = torch.nn.functional.cross_entropy(logits[valid], targets[valid])
    torch.testing.assert_close(softmax_cross_entropy(logits, targets, ignore_index=PAD), expected)
    per_cell = softmax_cross_entropy(logits, targets, ignore_index=PAD, reduction="none")
    assert per_cell.shape == (2, 5) and (per_cell[~valid] == 0).all()
    assert token_cross_entropy(logits, targets, "stablemax", PAD, "sum").ndim == 0
    with pytest.raises(ValueError, match="reduction"):
        softmax_cross_entropy(logits, targets, reduction="avg")
    with pytest.raises(ValueError, match="kind"):
        token_cross_entropy(logits, targets, "hinge")


# ------------------------------------------------------------------------------ EMA
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit notices on compile import
def test_ema_follows_the_exponential_average() -> None:
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, mu=0.5)
    for value in (4.0, 8.0):
        with torch.no_grad():
            model.weight.fill_(value)
        ema.update(model)
    # 0 -> 0.5*0 + 0.5*4 = 2 -> 0.5*2 + 0.5*8 = 5
    assert ema.shadow["weight"].item() == pytest.approx(5.0)
    with ema.swap(model):
        assert model.weight.item() == pytest.approx(5.0)
    assert model.weight.item() == pytest.approx(8.0)
    state = ema.state_dict()
    ema.update(model)
    ema.load_state_dict(state)
    assert ema.shadow["weight"].item() == pytest.approx(5.0) and ema.num_updates == 2
    ema.copy_to(model)
    assert model.weight.item() == pytest.approx(5.0)
    # A torch.compile wrapper (not compiled until called) matches its model's parameter names.
    ema.update(torch.compile(model))
    assert ema.shadow["weight"].item() == pytest.approx(5.0)
    with pytest.raises(ValueError, match="mu"):
        EMA(model, mu=1.0)
    with pytest.raises(ValueError, match="do not match"):
        ema.update(torch.nn.Linear(2, 2))


# ------------------------------------------------------------------------------ learning
@pytest.mark.parametrize("block", ["attention", "mlp_mixer"])
def test_tiny_model_overfits_a_fixed_batch(block: str) -> None:
    model = make_model(block=block, h_cycles=1, l_cycles=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    x = random_tokens(4, seed=3)
    targets = random_tokens(4, seed=4)
    losses = []
    for _ in range(50):
        out = model(x, model.initial_carry(4))
        loss = softmax_cross_entropy(out.logits, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0]
