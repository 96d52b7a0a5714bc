"""The TRM step is a pure function of its parameters: ``torch.func`` can transform it.

Meta-learning (MAML's per-task adaptation, batched over tasks) needs ``functional_call`` + ``vmap``
over stacked parameter sets and ``grad`` through the step; value checks that read tensors inside
``forward`` (``bool(tensor)``) raise under ``vmap``, so they live at the agent boundary.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, stack_module_state, vmap

from trmgym.agents.trm import TRM, TRMConfig
from trmgym.envs.tokens import VOCAB_SIZE

SEQ = 16


def models(count: int, **overrides) -> list[TRM]:
    out = []
    for seed in range(count):
        torch.manual_seed(seed)
        out.append(TRM(TRMConfig.tiny(seq_len=SEQ, num_task_embeddings=2, **overrides)).eval())
    return out


@pytest.mark.parametrize(
    "overrides",
    [{}, {"pos_encoding": "rowcol", "grid_height": 4, "grid_width": 4}, {"block": "mlp_mixer"}],
)
def test_vmapped_forward_over_three_parameter_sets_equals_a_loop(overrides: dict) -> None:
    nets = models(3, **overrides)
    params, buffers = stack_module_state(nets)
    base = nets[0]
    x = torch.randint(0, VOCAB_SIZE, (5, SEQ), generator=torch.Generator().manual_seed(1))
    task = torch.tensor([0, 1, 0, 1, 1])
    carry = base.initial_carry(5)

    def step(p, b):
        out = functional_call(base, (p, b), (x, carry, task))
        return out.logits, out.q_halt, out.features, out.carry.y, out.carry.z

    batched = vmap(step)(params, buffers)
    for k, net in enumerate(nets):
        out = net(x, carry, task)
        looped = (out.logits, out.q_halt, out.features, out.carry.y, out.carry.z)
        for got, want in zip(batched, looped):
            torch.testing.assert_close(got[k], want, atol=1e-6, rtol=1e-6)


def test_grad_through_the_step_matches_autograd() -> None:
    net = models(1)[0]
    params = {k: v.detach() for k, v in net.named_parameters()}
    x = torch.randint(0, VOCAB_SIZE, (3, SEQ), generator=torch.Generator().manual_seed(2))
    y = torch.randint(0, VOCAB_SIZE, (3, SEQ), generator=torch.Generator().manual_seed(3))
    carry = net.initial_carry(3)

    def loss(p):
        out = functional_call(net, p, (x, carry))
        return net.cross_entropy(out.logits, y)

    grads = grad(loss)(params)
    net.zero_grad()
    net.cross_entropy(net(x, carry).logits, y).backward()
    for name, param in net.named_parameters():
        if param.grad is None:  # no gradient path (e.g. the halting head): grad gives zeros
            assert torch.count_nonzero(grads[name]) == 0
        else:
            torch.testing.assert_close(grads[name], param.grad, atol=1e-6, rtol=1e-5)


class ConstantReader(nn.Module):
    """A cycle reader that adds a learned vector to z (a stand-in for a memory read)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.zeros(dim))
        self.calls = 0

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.value.expand_as(z)


def test_cycle_reader_is_read_in_every_cycle_and_a_zero_read_changes_nothing() -> None:
    config = TRMConfig.tiny(seq_len=SEQ, h_cycles=3)
    torch.manual_seed(0)
    plain = TRM(config)
    reader = ConstantReader(config.hidden_size)
    torch.manual_seed(0)
    injected = TRM(config, cycle_reader=reader)
    injected.load_state_dict(plain.state_dict(), strict=False)
    x = torch.randint(0, VOCAB_SIZE, (2, SEQ), generator=torch.Generator().manual_seed(4))
    carry = plain.initial_carry(2)
    torch.testing.assert_close(injected(x, carry).logits, plain(x, carry).logits)
    assert reader.calls == config.h_cycles  # once per reasoning cycle
    with torch.no_grad():
        reader.value.fill_(0.5)
    assert not torch.allclose(injected(x, carry).logits, plain(x, carry).logits)
    # the reader's parameters are the model's: an optimizer over model.parameters() trains them
    assert any(p is reader.value for p in injected.parameters())
    with pytest.raises(TypeError, match="cycle_reader"):
        TRM(config, cycle_reader=lambda y, z: z)
