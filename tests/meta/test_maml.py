"""MAML, first-order MAML, ANIL and Meta-SGD against hand-unrolled autograd; vmap against a loop."""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from trmgym.agents.memory_reader import MemoryConfig, MemoryReader
from trmgym.agents.trm import TRM, TRMConfig
from trmgym.agents.update import GradientUpdate
from trmgym.meta import ALGORITHMS, MAML, FewShotBatch, TRMObjective

torch.set_num_threads(1)

VOCAB, CELLS, SEQ = 5, 4, 16


class MLP(nn.Module):
    """Per-cell classifier: embedding -> tanh(body) -> lm_head."""

    def __init__(self, vocab: int = VOCAB, hidden: int = 8) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.body = nn.Linear(hidden, hidden)
        self.lm_head = nn.Linear(hidden, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lm_head(torch.tanh(self.body(self.embed(x))))


class MLPObjective:
    """The MLP as a pure function of its parameters (the interface MAML needs)."""

    def __init__(self, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.model = MLP().double()

    def params(self) -> dict[str, torch.Tensor]:
        return dict(self.model.named_parameters())

    def logits(self, params, x):
        return torch.func.functional_call(self.model, dict(params), (x,))

    def loss(self, params, x, y):
        logits = self.logits(params, x)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    def predict(self, params, x):
        return self.logits(params, x).argmax(-1)


def random_batch(tasks: int, k: int, q: int, length: int, vocab: int, seed: int) -> FewShotBatch:
    g = torch.Generator().manual_seed(seed)
    grids = [torch.randint(1, vocab, (tasks, n, length), generator=g) for n in (k, k, q, q)]
    return FewShotBatch(*grids, torch.arange(tasks))


def permutation_batch(tasks: int = 3) -> FewShotBatch:
    """Each task maps every token through a fixed permutation: the MLP can fit it exactly."""
    xs, ys = [], []
    for t in range(tasks):
        perm = torch.roll(torch.arange(VOCAB), t + 1)
        x = torch.stack([torch.roll(torch.arange(CELLS), s) for s in range(4)])
        xs.append(x)
        ys.append(perm[x])
    x, y = torch.stack(xs), torch.stack(ys)
    return FewShotBatch(x[:, :2], y[:, :2], x[:, 2:], y[:, 2:], torch.arange(tasks))


def tiny_trm(seed: int = 0, reader: bool = False) -> TRMObjective:
    torch.manual_seed(seed)
    config = TRMConfig.tiny(seq_len=SEQ)
    cycle_reader = None
    if reader:
        memory = MemoryConfig(capacity=16, key_dim=16, num_heads=4, top_k=4)
        cycle_reader = MemoryReader(memory, config.hidden_size, cycles_per_step=config.h_cycles)
        cycle_reader.memory.write(torch.randn(5, 16), torch.randn(5, config.hidden_size), task=0)
    return TRMObjective(TRM(config, cycle_reader=cycle_reader))


def unrolled_meta_loss(objective, batch, lrs, steps, first_order=False):
    """The MAML meta-loss written out with torch.autograd.grad (create_graph for second order).

    ``lrs`` maps each adapted name to its step size (a float or a tensor).
    """
    params = objective.params()
    names = list(lrs)
    losses = []
    with sdpa_kernel(SDPBackend.MATH):
        for i in range(batch.num_tasks):
            current = dict(params)
            for _ in range(steps):
                loss = objective.loss(current, batch.support_x[i], batch.support_y[i])
                grads = torch.autograd.grad(
                    loss,
                    [current[n] for n in names],
                    create_graph=not first_order,
                    allow_unused=True,
                )
                for name, g in zip(names, grads):
                    g = torch.zeros_like(current[name]) if g is None else g
                    current[name] = current[name] - lrs[name] * (g.detach() if first_order else g)
            losses.append(objective.loss(current, batch.query_x[i], batch.query_y[i]))
    return torch.stack(losses).mean()


def grads_of(loss, tensors):
    out = torch.autograd.grad(loss, tensors, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for t, g in zip(tensors, out)]


def assert_grads_close(got, want, atol=1e-5, rtol=1e-5):
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=atol, rtol=rtol)


# ---------------------------------------------------------------------------- second order
@pytest.mark.parametrize("steps", [1, 2])
def test_mlp_meta_gradient_equals_the_unrolled_second_order_gradient(steps: int) -> None:
    objective = MLPObjective()
    batch = random_batch(3, 3, 2, CELLS, VOCAB, seed=1)
    maml = MAML(objective, inner_lr=0.5, inner_steps=steps)
    params = list(objective.params().values())
    loss, metrics = maml.meta_loss(batch)
    want_loss = unrolled_meta_loss(objective, batch, dict.fromkeys(objective.params(), 0.5), steps)
    torch.testing.assert_close(loss, want_loss, atol=1e-10, rtol=1e-10)
    assert metrics["meta/query_loss"] == pytest.approx(float(loss.detach()))
    assert_grads_close(grads_of(loss, params), grads_of(want_loss, params))


@pytest.mark.parametrize("steps", [1, 2])
def test_trm_meta_gradient_equals_the_unrolled_second_order_gradient(steps: int) -> None:
    objective = tiny_trm()
    batch = random_batch(2, 2, 2, SEQ, 12, seed=2)
    maml = MAML(objective, inner_lr=0.1, inner_steps=steps)
    params = list(objective.params().values())
    loss, _ = maml.meta_loss(batch)
    want_loss = unrolled_meta_loss(objective, batch, dict.fromkeys(objective.params(), 0.1), steps)
    torch.testing.assert_close(loss, want_loss, atol=1e-5, rtol=1e-5)
    got, want = grads_of(loss, params), grads_of(want_loss, params)
    assert_grads_close(got, want, atol=1e-5, rtol=1e-4)
    first = unrolled_meta_loss(
        objective, batch, dict.fromkeys(objective.params(), 0.1), steps, first_order=True
    )
    # the second-order term is there: the first-order gradient is a different one
    assert any((a - b).abs().max() > 1e-4 for a, b in zip(want, grads_of(first, params)))


# ---------------------------------------------------------------------------- first order
def test_first_order_is_the_query_gradient_at_the_adapted_parameters() -> None:
    objective = MLPObjective()
    batch = random_batch(3, 3, 2, CELLS, VOCAB, seed=3)
    lr, names = 0.5, list(objective.params())
    params = list(objective.params().values())
    fomaml = MAML.from_name("fomaml", objective, inner_lr=lr, inner_steps=2)
    assert fomaml.first_order
    loss, _ = fomaml.meta_loss(batch)
    got = grads_of(loss, params)
    # by hand: adapt with plain autograd, then differentiate the query loss w.r.t. the adapted
    # parameters as leaves (no path back through the inner updates)
    want = [torch.zeros_like(p) for p in params]
    for i in range(batch.num_tasks):
        current = {n: p.detach().clone() for n, p in objective.params().items()}
        for _ in range(2):
            leaves = {n: t.requires_grad_() for n, t in current.items()}
            g = torch.autograd.grad(
                objective.loss(leaves, batch.support_x[i], batch.support_y[i]),
                list(leaves.values()),
            )
            current = {n: (leaves[n] - lr * gi).detach() for n, gi in zip(names, g)}
        leaves = {n: t.requires_grad_() for n, t in current.items()}
        query = objective.loss(leaves, batch.query_x[i], batch.query_y[i]) / batch.num_tasks
        for j, g in enumerate(torch.autograd.grad(query, list(leaves.values()))):
            want[j] += g
    assert_grads_close(got, want, atol=1e-10, rtol=1e-8)
    second, _ = MAML(objective, inner_lr=lr, inner_steps=2).meta_loss(batch)
    torch.testing.assert_close(second, loss)  # same value, different gradient
    assert any((a - b).abs().max() > 1e-4 for a, b in zip(got, grads_of(second, params)))


# ---------------------------------------------------------------------------- ANIL
def test_anil_adapts_only_the_head_and_the_body_still_gets_outer_gradients() -> None:
    objective = MLPObjective()
    batch = random_batch(3, 3, 2, CELLS, VOCAB, seed=4)
    anil = MAML.from_name("anil", objective, inner_lr=0.5, inner_steps=2)
    assert anil.adapted_names == ["lm_head.weight", "lm_head.bias"]
    params = objective.params()
    adapted = anil.adapt(params, batch.support_x[0], batch.support_y[0])
    for name, value in params.items():
        if name.startswith("lm_head."):
            assert (adapted[name] - value).abs().max() > 1e-4, name
        else:
            assert torch.equal(adapted[name], value), name
    loss, _ = anil.meta_loss(batch)
    got = grads_of(loss, list(params.values()))
    head = {n: 0.5 for n in params if n.startswith("lm_head.")}
    want = grads_of(unrolled_meta_loss(objective, batch, head, 2), list(params.values()))
    assert_grads_close(got, want, atol=1e-10, rtol=1e-8)
    body = dict(zip(params, got))
    assert body["body.weight"].abs().max() > 1e-6 and body["embed.weight"].abs().max() > 1e-6


# ---------------------------------------------------------------------------- Meta-SGD
def test_meta_sgd_learns_per_parameter_inner_rates() -> None:
    objective = MLPObjective()
    batch = random_batch(3, 3, 2, CELLS, VOCAB, seed=5)
    msgd = MAML.from_name("metasgd", objective, inner_lr=0.3, inner_steps=2)
    lrs = msgd.inner_rates()
    assert list(lrs) == list(objective.params())
    owned = {id(p) for p in msgd.parameters()}
    assert all(id(lr) in owned for lr in lrs.values())
    assert all(id(p) in owned for p in objective.params().values())
    for name, lr in lrs.items():
        assert isinstance(lr, nn.Parameter) and lr.shape == objective.params()[name].shape
        assert torch.equal(lr, torch.full_like(lr, 0.3))
    # the adaptation uses the learned rates: different rates per parameter, checked by hand
    with torch.no_grad():
        for j, lr in enumerate(lrs.values()):
            lr.mul_(1.0 + 0.5 * j)
    loss, _ = msgd.meta_loss(batch)
    tensors = [*objective.params().values(), *lrs.values()]
    want_loss = unrolled_meta_loss(objective, batch, lrs, 2)
    torch.testing.assert_close(loss, want_loss, atol=1e-10, rtol=1e-10)
    got = grads_of(loss, tensors)
    assert_grads_close(got, grads_of(want_loss, tensors), atol=1e-10, rtol=1e-8)
    assert all(g.abs().max() > 0 for g in got[len(lrs) :])
    # a zero rate freezes that parameter in the inner loop
    with torch.no_grad():
        lrs["body.weight"].zero_()
    adapted = msgd.adapt(objective.params(), batch.support_x[0], batch.support_y[0])
    assert torch.equal(adapted["body.weight"], objective.params()["body.weight"])
    assert not torch.equal(adapted["body.bias"], objective.params()["body.bias"])


def test_an_update_rule_trains_the_model_and_the_rates_and_state_dict_round_trips() -> None:
    objective = MLPObjective()
    msgd = MAML.from_name("metasgd", objective, inner_lr=0.3)
    before = {k: v.clone() for k, v in msgd.state_dict().items()}
    rule = GradientUpdate(msgd, lr=1e-2, warmup_steps=0, ema_decay=0.0)
    rule.step(msgd.meta_loss(random_batch(2, 2, 2, CELLS, VOCAB, seed=6))[0])
    after = msgd.state_dict()
    assert set(after) == set(before)
    assert not torch.equal(after["model.body.weight"], before["model.body.weight"])
    assert not torch.equal(after["inner_lrs.body__weight"], before["inner_lrs.body__weight"])
    fresh = MAML.from_name("metasgd", MLPObjective(seed=1), inner_lr=0.3)
    fresh.load_state_dict(after)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, after[key]), key


# ---------------------------------------------------------------------------- vmap vs loop
@pytest.mark.parametrize(
    "name,make",
    [
        pytest.param("maml", lambda: MLPObjective(), id="maml-mlp"),
        pytest.param("metasgd", lambda: MLPObjective(), id="metasgd-mlp"),
        pytest.param("maml", lambda: tiny_trm(), id="maml-trm"),
        # a non-empty memory bank read in every cycle vmaps too
        pytest.param("anil", lambda: tiny_trm(reader=True), id="anil-trm-memory"),
    ],
)
def test_vmapped_and_looped_meta_loss_agree(name: str, make) -> None:
    objective = make()
    trm = isinstance(objective, TRMObjective)
    batch = random_batch(3, 2, 2, SEQ if trm else CELLS, 12 if trm else VOCAB, seed=7)
    results = []
    for vectorize in (True, False):
        maml = MAML.from_name(name, objective, inner_lr=0.1, inner_steps=1, vectorize=vectorize)
        tensors = list(maml.parameters())
        loss, metrics = maml.meta_loss(batch)
        results.append((loss, grads_of(loss, tensors), metrics))
    (loss_v, grads_v, met_v), (loss_l, grads_l, met_l) = results
    torch.testing.assert_close(loss_v, loss_l, atol=1e-5, rtol=1e-5)
    assert_grads_close(grads_v, grads_l)
    assert met_v == pytest.approx(met_l, abs=1e-5)
    assert any(g.abs().max() > 0 for g in grads_v)


# ---------------------------------------------------------------------------- curve
def test_adaptation_curve_starts_unadapted_follows_the_inner_loop_and_learns() -> None:
    objective = MLPObjective()
    batch = permutation_batch()
    maml = MAML(objective, inner_lr=1.0)
    params = objective.params()
    curve = maml.adaptation_curve(batch, [0, 3, 300])
    assert curve.shape == (3, 3) and curve.dtype == torch.float32
    unadapted = (objective.predict(params, batch.query_x) == batch.query_y).all(-1).float()
    torch.testing.assert_close(curve[:, 0], unadapted.mean(-1))
    assert curve[:, 0].max() < 1.0  # not solved before adapting ...
    assert torch.equal(curve[:, 2], torch.ones(3))  # ... solved after the inner loop
    for i in range(batch.num_tasks):  # the checkpoint is the 3-step adaptation of that task
        adapted = maml.adapt(params, batch.support_x[i], batch.support_y[i], 3)
        right = (objective.predict(adapted, batch.query_x[i]) == batch.query_y[i]).all(-1)
        assert curve[i, 1] == right.float().mean()
    assert all(p.grad is None for p in params.values())  # no outer graph was built


def test_adaptation_curve_scores_only_the_masked_query_grids() -> None:
    objective = MLPObjective()
    batch = permutation_batch()
    maml = MAML(objective, inner_lr=1.0)
    params = objective.params()
    # task 0 counts only its first query grid, task 1 only its second, task 2 both
    mask = torch.tensor([[True, False], [False, True], [True, True]])
    curve = maml.adaptation_curve(batch, [0, 3], query_mask=mask)
    for i in range(batch.num_tasks):
        adapted = maml.adapt(params, batch.support_x[i], batch.support_y[i], 3)
        for j, state in enumerate((params, adapted)):
            right = (objective.predict(state, batch.query_x[i]) == batch.query_y[i]).all(-1)
            assert curve[i, j] == right[mask[i]].float().mean()
    # an all-True mask is the default
    torch.testing.assert_close(
        maml.adaptation_curve(batch, [0, 3], query_mask=torch.ones(3, 2, dtype=torch.bool)),
        maml.adaptation_curve(batch, [0, 3]),
    )


@pytest.mark.parametrize(
    "mask",
    [
        torch.ones(3, 2),  # not bool
        torch.ones(3, 3, dtype=torch.bool),  # wrong shape
        torch.tensor([[True, True], [False, False], [True, False]]),  # a task with no grid
        [[True, True]] * 3,  # not a tensor
    ],
)
def test_adaptation_curve_refuses_a_bad_query_mask(mask) -> None:
    with pytest.raises(ValueError, match=r"query_mask must be a bool tensor of shape \(3, 2\)"):
        MAML(MLPObjective()).adaptation_curve(permutation_batch(), [0, 1], query_mask=mask)


@pytest.mark.parametrize("bad", [[3, 1], [-1, 2], [], [2, 2], [1.0], 5])
def test_adaptation_curve_refuses_bad_checkpoints(bad) -> None:
    maml = MAML(MLPObjective())
    with pytest.raises(ValueError, match="checkpoints"):
        maml.adaptation_curve(permutation_batch(), bad)


# ---------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"inner_lr": 0.0}, "meta.inner_lr"),
        ({"inner_lr": True}, "meta.inner_lr"),
        ({"inner_lr": float("nan")}, "meta.inner_lr"),
        ({"inner_steps": 1.0}, "meta.inner_steps"),
        ({"inner_steps": 0}, "meta.inner_steps"),
        ({"first_order": 1}, "meta.first_order"),
        ({"learn_inner_lr": "yes"}, "meta.learn_inner_lr"),
        ({"vectorize": None}, "meta.vectorize"),
        ({"adapt": "body"}, "meta.adapt"),
        ({"adapt": "head", "head": ("nope.",)}, "meta.head"),
        ({"adapt": "head", "head": "lm_head."}, "meta.head"),
        ({"adapt": "head", "head": ()}, "meta.head"),
        ({"backend": "jax"}, "meta.backend"),
    ],
)
def test_bad_arguments_raise_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        MAML(MLPObjective(), **kwargs)


def test_bad_names_objectives_and_batches_are_refused() -> None:
    with pytest.raises(ValueError, match="name must be one of"):
        MAML.from_name("reptile", MLPObjective())
    with pytest.raises(ValueError, match="first_order=False contradicts the algorithm 'fomaml'"):
        MAML.from_name("fomaml", MLPObjective(), first_order=False)
    with pytest.raises(TypeError, match="predict"):
        MAML(object())
    with pytest.raises(TypeError, match="FewShotBatch"):
        MAML(MLPObjective()).meta_loss((1, 2, 3, 4))
    assert set(ALGORITHMS) == {"maml", "fomaml", "anil", "metasgd"}


@pytest.mark.skipif(
    importlib.util.find_spec("learn2learn") is not None, reason="learn2learn is installed"
)
def test_learn2learn_backend_without_the_package_says_why() -> None:
    with pytest.raises(ImportError, match=r"meta\.backend.*#413.*torchfunc"):
        MAML(MLPObjective(), backend="learn2learn")


@pytest.mark.parametrize("first_order", [False, True])
def test_learn2learn_backend_matches_torchfunc(first_order: bool) -> None:
    pytest.importorskip(
        "learn2learn",
        reason="learn2learn is optional (0.2.0 does not build on Python >= 3.11, its issue #413)",
    )
    objective = MLPObjective()
    batch = random_batch(3, 3, 2, CELLS, VOCAB, seed=8)
    params = list(objective.params().values())
    out = []
    for backend in ("torchfunc", "learn2learn"):
        maml = MAML(
            objective, inner_lr=0.5, inner_steps=2, first_order=first_order, backend=backend
        )
        loss, _ = maml.meta_loss(batch)
        out.append((loss, grads_of(loss, params)))
    torch.testing.assert_close(out[0][0], out[1][0])
    assert_grads_close(out[0][1], out[1][1], atol=1e-8, rtol=1e-6)
