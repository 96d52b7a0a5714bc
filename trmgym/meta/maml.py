"""The MAML family as one algorithm with options, on ``torch.func`` (no per-task model copies).

Each task of a :class:`~trmgym.meta.tasks.FewShotBatch` is adapted in an *inner loop* of
``inner_steps`` gradient steps on its support set, starting from the shared (outer) parameters;
the *outer loop* minimises the mean query-set loss of the adapted parameters over the tasks. The
inner loop is written with ``torch.func.grad`` over a parameter dict and ``functional_call``, and
batched over the tasks with ``torch.func.vmap``: the model is never copied.

Variants (:data:`ALGORITHMS`, :meth:`MAML.from_name`):

* ``maml`` — Finn, Abbeel & Levine, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
  Networks", ICML 2017: the meta-gradient differentiates through the inner updates (second order).
* ``fomaml`` — first-order MAML (same paper, section 5.2): the inner gradients are detached, so the
  meta-gradient is the query-loss gradient at the adapted parameters; exactly the second-order
  (Hessian-vector) term is dropped.
* ``anil`` — Raghu et al., "Rapid Learning or Feature Reuse?", ICLR 2020: the inner loop adapts only
  the output head (parameters whose names start with a prefix of ``head``, default
  ``("lm_head.",)``); the body is held fixed in the inner loop and trained by the outer loop.
* ``metasgd`` — Li et al., "Meta-SGD: Learning to Learn Quickly for Few-Shot Learning", 2017: a
  learned inner learning rate of each adapted parameter's shape (initialised to ``inner_lr``) is an
  ``nn.Parameter`` of :class:`MAML` trained by the outer loop.

**The TRM's no-gradient cycles.** With a :class:`~trmgym.meta.tasks.TRMObjective` the inner
gradient flows through the last reasoning cycle of each supervision step only (the first
``h_cycles - 1`` cycles run under ``torch.no_grad``, the carry between steps is detached). MAML's
second-order term is therefore that of this truncated gradient: the no-grad cycles are a fixed,
parameter-dependent input transform whose dependence on the parameters is ignored, in the inner
and in the outer loop alike, exactly as in the TRM's own training.

**Attention kernel.** Second-order gradients through the fused CPU flash-attention kernel are not
implemented in PyTorch (``aten::_scaled_dot_product_flash_attention_for_cpu_backward``) and vmap has
no batching rule for it, so every inner loop and meta-loss here runs inside
``torch.nn.attention.sdpa_kernel(SDPBackend.MATH)`` (the plain-math attention, differentiable
twice and batchable). The model itself is unchanged.

**Where vmap can go.** The TRM's step is transform-safe, and so is a TRM whose ``cycle_reader`` is
a :class:`~trmgym.agents.memory_reader.MemoryReader` reading a non-empty bank with the exact
top-k index (checked by the tests: vmapped and looped meta-losses agree in value and gradient).
Two cases are not covered: a *recorded* reader step (inside ``MemoryReader.step(record=True)``,
the agent's training step, which updates the bank's bookkeeping) refuses every ``torch.func``
transform by design, ``grad`` included, so the inner loop (vmapped or looped) must run outside
it; and a faiss-indexed bank (from 100k slots, when faiss is installed) is untested under vmap
here. ``vectorize=False`` loops over the tasks in Python (same values, still ``torch.func.grad``
per task) for anything vmap cannot batch.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import grad, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel

from trmgym.checks import boolean
from trmgym.meta.tasks import FewShotBatch, check_count, detached, exact

__all__ = ["ALGORITHMS", "MAML", "check_backend"]

Params = dict[str, torch.Tensor]

ALGORITHMS: dict[str, dict[str, Any]] = {
    "maml": {"first_order": False, "adapt": "all", "learn_inner_lr": False},
    "fomaml": {"first_order": True, "adapt": "all", "learn_inner_lr": False},
    "anil": {"first_order": False, "adapt": "head", "learn_inner_lr": False},
    "metasgd": {"first_order": False, "adapt": "all", "learn_inner_lr": True},
}
"""Name -> the :class:`MAML` options that make it that algorithm."""

ADAPT = ("all", "head")
BACKENDS = ("torchfunc", "learn2learn")


def _check_bool(name: str, value: object) -> bool:
    return boolean(value, f"meta.{name}")


def _lr_key(name: str) -> str:
    """A parameter name as an ``nn.ParameterDict`` key (dots are not allowed there)."""
    return name.replace(".", "__")


def _math_attention() -> contextlib.AbstractContextManager[None]:
    return sdpa_kernel(SDPBackend.MATH)


def check_backend(backend: str) -> Any:
    """The module behind ``meta.backend`` (``None`` for ``torchfunc``, which is torch itself).

    Raises:
        ValueError: an unknown backend.
        ImportError: ``learn2learn`` is not importable (it does not build on Python >= 3.11).
    """
    if backend not in BACKENDS:
        raise ValueError(f"meta.backend must be one of {list(BACKENDS)}, got {backend!r}")
    if backend == "torchfunc":
        return None
    try:
        import learn2learn
    except ImportError as error:
        raise ImportError(
            "meta.backend='learn2learn' needs the learn2learn package, which is not installed "
            "(learn2learn 0.2.0 does not build on Python >= 3.11, its issue #413); use "
            "meta.backend='torchfunc', the default"
        ) from error
    return learn2learn


class MAML(nn.Module):
    """MAML, first-order MAML, ANIL and Meta-SGD over an objective of explicit parameters.

    Args:
        objective: anything with ``loss(params, x, y) -> scalar``, ``predict(params, x) -> [n, L]``
            and ``params() -> dict`` of the live parameters (e.g.
            :class:`~trmgym.meta.tasks.TRMObjective`); one task's grids are ``[n, L]``. Its module
            (the objective itself if an ``nn.Module``, else its ``model`` attribute) is registered
            as the submodule ``model``, so :meth:`parameters` holds the outer parameters.
        inner_lr: inner-loop SGD step size (a finite float > 0); Meta-SGD's initial rate.
        inner_steps: inner-loop steps of :meth:`meta_loss` (an int >= 1).
        first_order: detach the inner gradients (first-order MAML).
        adapt: ``"all"`` parameters in the inner loop, or ``"head"`` only (ANIL).
        head: parameter-name prefixes of the head (``adapt="head"``); each must match a parameter.
        learn_inner_lr: Meta-SGD's learned per-parameter inner rates.
        vectorize: ``vmap`` over tasks (``True``) or a Python loop (``False``); same results.
        backend: ``"torchfunc"`` (default) or ``"learn2learn"`` (MAML / FOMAML only, needs the
            optional ``learn2learn`` package, which does not build on Python >= 3.11).

    Raises:
        TypeError: the objective lacks ``loss``/``predict``/``params`` or a module.
        ValueError: an option is out of range, naming ``meta.<field>`` and the allowed values.
        ImportError: ``backend="learn2learn"`` without learn2learn installed.
    """

    def __init__(
        self,
        objective: Any,
        *,
        inner_lr: float = 0.1,
        inner_steps: int = 1,
        first_order: bool = False,
        adapt: str = "all",
        head: Sequence[str] = ("lm_head.",),
        learn_inner_lr: bool = False,
        vectorize: bool = True,
        backend: str = "torchfunc",
    ) -> None:
        super().__init__()
        for method in ("loss", "predict", "params"):
            if not callable(getattr(objective, method, None)):
                raise TypeError(
                    f"objective must have loss(params, x, y), predict(params, x) and params(); "
                    f"{type(objective).__name__} has no {method}()"
                )
        module = (
            objective if isinstance(objective, nn.Module) else getattr(objective, "model", None)
        )
        if not isinstance(module, nn.Module):
            raise TypeError(
                "objective must be an nn.Module or have a `model` nn.Module attribute holding its "
                f"parameters, got {type(objective).__name__}"
            )
        # the objective is kept out of the module tree (it may itself be the module): the
        # parameters are registered once, under ``model``
        self.__dict__["objective"] = objective
        self.model = module
        if (
            isinstance(inner_lr, bool)
            or not isinstance(inner_lr, (int, float))
            or not math.isfinite(inner_lr)
            or inner_lr <= 0
        ):
            raise ValueError(f"meta.inner_lr must be a finite float > 0, got {inner_lr!r}")
        self.inner_lr = float(inner_lr)
        try:
            self.inner_steps = check_count("meta.inner_steps", inner_steps)
        except ValueError:
            raise ValueError(f"meta.inner_steps must be an int >= 1, got {inner_steps!r}") from None
        self.first_order = _check_bool("first_order", first_order)
        self.learn_inner_lr = _check_bool("learn_inner_lr", learn_inner_lr)
        self.vectorize = _check_bool("vectorize", vectorize)
        if adapt not in ADAPT:
            raise ValueError(f"meta.adapt must be one of {ADAPT}, got {adapt!r}")
        self.adapt_mode = adapt
        if isinstance(head, str) or not isinstance(head, Sequence) or not head:
            raise ValueError(
                f"meta.head must be a non-empty tuple of parameter-name prefixes, got {head!r}"
            )
        if not all(isinstance(p, str) and p for p in head):
            raise ValueError(f"meta.head prefixes must be non-empty strings, got {head!r}")
        self.head = tuple(head)
        if backend not in BACKENDS:
            raise ValueError(f"meta.backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend

        names = list(objective.params())
        if not names:
            raise ValueError("objective.params() is empty: there is nothing to adapt")
        outer = {id(p) for p in self.model.parameters()}
        if not all(id(v) in outer for v in objective.params().values()):
            raise TypeError("objective.params() must be the live parameters of its model")
        if adapt == "head":
            for prefix in self.head:
                if not any(n.startswith(prefix) for n in names):
                    raise ValueError(
                        f"meta.head prefix {prefix!r} matches no parameter; parameters: {names}"
                    )
            self.adapted_names = [n for n in names if n.startswith(self.head)]
        else:
            self.adapted_names = names
        params = objective.params()
        self.inner_lrs = nn.ParameterDict(
            {
                _lr_key(n): nn.Parameter(torch.full_like(params[n].detach(), self.inner_lr))
                for n in self.adapted_names
            }
            if learn_inner_lr
            else {}
        )
        self._l2l: tuple[Any, ...] = ()
        if backend == "learn2learn":
            self._l2l = (self._learn2learn(),)

    # ------------------------------------------------------------------------ construction
    @classmethod
    def from_name(cls, name: str, objective: Any, **options: Any) -> MAML:
        """The algorithm ``name`` of :data:`ALGORITHMS`; ``options`` are the other arguments.

        An option that contradicts the named algorithm (e.g. ``fomaml`` with
        ``first_order=False``) is refused.
        """
        if name not in ALGORITHMS:
            raise ValueError(f"name must be one of {tuple(ALGORITHMS)}, got {name!r}")
        fixed = ALGORITHMS[name]
        for key, value in options.items():
            if key in fixed and value != fixed[key]:
                raise ValueError(
                    f"{key}={value!r} contradicts the algorithm {name!r} "
                    f"(which sets {key}={fixed[key]!r})"
                )
        return cls(objective, **{**options, **fixed})

    def _learn2learn(self) -> Any:
        l2l = check_backend("learn2learn")
        if self.adapt_mode != "all" or self.learn_inner_lr:
            raise ValueError(
                "meta.backend='learn2learn' runs MAML and first-order MAML only; "
                "ANIL (meta.adapt='head') and Meta-SGD (meta.learn_inner_lr=True) need "
                "meta.backend='torchfunc'"
            )
        return l2l.algorithms.MAML(self.model, lr=self.inner_lr, first_order=self.first_order)

    # ------------------------------------------------------------------------ inner loop
    def inner_rates(self) -> dict[str, nn.Parameter]:
        """Meta-SGD's learned inner rates by adapted-parameter name (``{}`` without them)."""
        return {n: self.inner_lrs[_lr_key(n)] for n in self.adapted_names if self.learn_inner_lr}

    def _lrs(self, detach: bool) -> dict[str, torch.Tensor | float]:
        if not self.learn_inner_lr:
            return dict.fromkeys(self.adapted_names, self.inner_lr)
        return {n: (lr.detach() if detach else lr) for n, lr in self.inner_rates().items()}

    def _inner_step(
        self,
        params: Mapping[str, torch.Tensor],
        x: torch.Tensor,
        y: torch.Tensor,
        lrs: Mapping[str, torch.Tensor | float],
        first_order: bool,
    ) -> Params:
        adapted = {n: params[n] for n in self.adapted_names}

        def support_loss(fast: Params) -> torch.Tensor:
            return self.objective.loss({**params, **fast}, x, y)

        grads = grad(support_loss)(adapted)
        if first_order:
            grads = {n: g.detach() for n, g in grads.items()}
        return {**params, **{n: adapted[n] - lrs[n] * grads[n] for n in self.adapted_names}}

    def adapt(
        self,
        params: Mapping[str, torch.Tensor],
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        steps: int | None = None,
    ) -> Params:
        """The parameters after ``steps`` inner-loop SGD steps on one task's support set.

        Args:
            params: the starting parameters (usually ``objective.params()``, the outer ones).
            support_x: ``[k, L]`` support inputs of ONE task.
            support_y: ``[k, L]`` support outputs.
            steps: inner steps (an int >= 0; ``None``: ``inner_steps``).

        Returns:
            A dict with every name of ``params``; the adapted ones (all, or the head's with
            ``adapt="head"``) are differentiable w.r.t. ``params`` (and Meta-SGD's rates) through
            the inner gradients, unless ``first_order``.
        """
        steps = self.inner_steps if steps is None else check_count("steps", steps, low=0)
        lrs = self._lrs(detach=False)
        current = dict(params)
        with _math_attention():
            for _ in range(steps):
                current = self._inner_step(current, support_x, support_y, lrs, self.first_order)
        return current

    # ------------------------------------------------------------------------ outer loop
    def meta_loss(self, batch: FewShotBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """The outer-loop loss: mean over tasks of the query loss after the inner loop.

        Args:
            batch: ``support_x``/``support_y`` ``[tasks, k, L]``, ``query_x``/``query_y``
                ``[tasks, q, L]``.

        Returns:
            ``(loss, metrics)``: a scalar differentiable w.r.t. :meth:`parameters` (call
            ``backward`` or hand it to an update rule) and ``meta/query_loss``,
            ``meta/query_exact`` (fraction of query grids exactly right after adaptation) and
            ``meta/tasks``.
        """
        if not isinstance(batch, FewShotBatch):
            raise TypeError(f"batch must be a FewShotBatch, got {type(batch).__name__}")
        if self.backend == "learn2learn":
            return self._meta_loss_learn2learn(batch)
        params = self.objective.params()
        lrs = self._lrs(detach=False)

        def task(sx, sy, qx, qy):
            current = params
            for _ in range(self.inner_steps):
                current = self._inner_step(current, sx, sy, lrs, self.first_order)
            loss = self.objective.loss(current, qx, qy)
            with torch.no_grad():
                right = exact(self.objective.predict(current, qx), qy).float().mean()
            return loss, right

        with _math_attention():
            losses, right = self._per_task(task, batch)
        loss = losses.mean()
        metrics = {
            "meta/query_loss": float(loss.detach()),
            "meta/query_exact": float(right.mean()),
            "meta/tasks": float(batch.num_tasks),
        }
        return loss, metrics

    def _per_task(
        self, fn: Callable[..., Any], batch: FewShotBatch, *extra: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        args = (batch.support_x, batch.support_y, batch.query_x, batch.query_y, *extra)
        if self.vectorize:
            return vmap(fn, randomness="same")(*args)
        outs = [fn(*(a[i] for a in args)) for i in range(batch.num_tasks)]
        return tuple(torch.stack(column) for column in zip(*outs))

    def _meta_loss_learn2learn(self, batch: FewShotBatch) -> tuple[torch.Tensor, dict[str, float]]:
        (maml,) = self._l2l
        losses = []
        with _math_attention():
            for i in range(batch.num_tasks):
                learner = maml.clone()
                for _ in range(self.inner_steps):
                    fast = dict(learner.module.named_parameters())
                    learner.adapt(self.objective.loss(fast, batch.support_x[i], batch.support_y[i]))
                fast = dict(learner.module.named_parameters())
                losses.append(self.objective.loss(fast, batch.query_x[i], batch.query_y[i]))
        loss = torch.stack(losses).mean()
        return loss, {"meta/query_loss": float(loss.detach()), "meta/tasks": float(len(losses))}

    # ------------------------------------------------------------------------ evaluation
    def adaptation_curve(
        self,
        batch: FewShotBatch,
        checkpoints: Sequence[int],
        params: Mapping[str, torch.Tensor] | None = None,
        query_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Query exact accuracy after ``s`` inner steps, for each ``s`` of ``checkpoints``.

        One inner-loop trajectory of ``max(checkpoints)`` SGD steps per task on its support set
        (the adapted parameters, at ``inner_lr`` or Meta-SGD's learned rates), scored on the
        query set at each checkpoint; ``0`` scores the unadapted parameters. It runs without an
        outer graph (first-order, detached, under ``torch.no_grad``), batched over tasks.

        Args:
            batch: the tasks (``[tasks, k, L]`` support, ``[tasks, q, L]`` query).
            checkpoints: strictly increasing ints >= 0.
            params: starting parameters (``None``: ``objective.params()``).
            query_mask: ``[tasks, q]`` bool, the query grids that count (``None``: all). Tasks
                with fewer query grids than others are padded to ``q`` and batched together;
                every task needs at least one grid that counts.

        Returns:
            ``[tasks, len(checkpoints)]`` float: the fraction of each task's query grids (those
            of ``query_mask``) exactly right.

        Raises:
            ValueError: ``checkpoints`` is empty, not ints, negative or not strictly increasing;
                ``query_mask`` is not a bool tensor of the query set's shape with a grid per task.
        """
        points = list(checkpoints) if isinstance(checkpoints, Sequence) else None
        if (
            not points
            or any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in points)
            or any(b <= a for a, b in zip(points, points[1:]))
        ):
            raise ValueError(
                "checkpoints must be a non-empty, strictly increasing list of ints >= 0, "
                f"got {checkpoints!r}"
            )
        shape = tuple(batch.query_x.shape[:2])
        if query_mask is None:
            query_mask = torch.ones(shape, dtype=torch.bool, device=batch.query_x.device)
        elif (
            not isinstance(query_mask, torch.Tensor)
            or query_mask.dtype != torch.bool
            or tuple(query_mask.shape) != shape
            or not bool(query_mask.any(dim=1).all())
        ):
            raise ValueError(
                f"query_mask must be a bool tensor of shape {shape} (tasks, query grids) with at "
                f"least one True per task, got {query_mask!r}"
            )
        start = detached(self.objective.params() if params is None else params)
        lrs = self._lrs(detach=True)

        def task(sx, sy, qx, qy, mask):
            current, done, scores = start, 0, []
            for point in points:
                for _ in range(point - done):
                    current = self._inner_step(current, sx, sy, lrs, first_order=True)
                done = point
                right = exact(self.objective.predict(current, qx), qy) & mask
                scores.append(right.float().sum() / mask.float().sum())
            return (torch.stack(scores),)

        with torch.no_grad(), _math_attention():  # torch.func.grad ignores the outer no_grad
            (curve,) = self._per_task(task, batch, query_mask)
        return curve
