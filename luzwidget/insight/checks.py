"""The sentinel's checks that cost more than a flag: the first optimizer steps, the gradient
norm, the ranks' weights, the labels, the optimizers against the model. Each callback here
is in the run only while its check looks (see :mod:`luzwidget.insight.sentinel`)."""

from __future__ import annotations

import statistics
from collections import deque
from typing import TYPE_CHECKING, Any

import torch

from luzwidget.core.batches import prediction
from luzwidget.core.compiled import named_parameters
from luzwidget.insight.attached import OnDemand

if TYPE_CHECKING:
    from luzwidget.core.context import Context
    from luzwidget.insight.sentinel import Sentinel

__all__ = [
    "FirstSteps",
    "GradExplosion",
    "RankDrift",
    "bad_labels",
    "optimizer_mismatch",
    "parameter_names",
]

IGNORED_LABEL = -100
"""The label torch's and Hugging Face's losses ignore by default (padding, masked tokens)."""


def parameter_names(model: Any) -> dict[int, str]:
    """``id(parameter) -> name`` of the user's module (no DDP or compile prefix)."""
    return {id(p): n for n, p in named_parameters(model)}


def optimizer_mismatch(ctx: Context) -> tuple[str, tuple[str, str], str] | None:
    """``(check, culprit, message)`` for the first trainable parameter no optimizer holds
    or optimizer parameter the model does not have; None when they go together."""
    if ctx.model is None or not ctx.optimizers:
        return None
    names = parameter_names(ctx.model)
    held: dict[int, str] = {}
    for opt_name, opt in ctx.optimizers.items():
        for group in opt.param_groups:
            for p in group["params"]:
                held.setdefault(id(p), opt_name)
                if id(p) not in names:
                    shape = "x".join(map(str, p.shape)) or "scalar"
                    return ("not_in_model", ("optimizer", opt_name),
                            f"optimizer {opt_name!r} holds a parameter of shape {shape} that "
                            "is not the model's (built before the model was copied, moved or "
                            "wrapped?): its steps change nothing the model uses")  # fmt: skip
    for n, p in named_parameters(ctx.model):
        if p.requires_grad and id(p) not in held:
            return ("not_in_optimizer", ("parameter", n),
                    f"parameter {n} is trainable but in no optimizer: its gradient is computed "
                    "and never used. Add it to an optimizer, or freeze it "
                    "(p.requires_grad_(False))")  # fmt: skip
    return None


def bad_labels(pred: Any, target: Any, loss_fn: Any) -> str | None:
    """What is wrong with integer ``target`` labels for class scores ``pred``, or None.

    Scores are ``(N, C, ...)`` with labels ``(N, ...)`` (torch's convention) or ``(N, ...,
    C)`` (Hugging Face's logits); ``-100`` and the loss's ``ignore_index`` are allowed."""
    scores = prediction(pred)
    if not isinstance(scores, torch.Tensor) or not isinstance(target, torch.Tensor):
        return None
    if not scores.is_floating_point() or target.is_floating_point() or target.dtype == torch.bool:
        return None
    if scores.ndim != target.ndim + 1 or target.numel() == 0:
        return None
    if scores.shape[:1] + scores.shape[2:] == target.shape:
        classes = scores.shape[1]
    elif scores.shape[:-1] == target.shape:
        classes = scores.shape[-1]
    else:
        return None
    if classes < 2:
        return None
    ignored = {IGNORED_LABEL, getattr(loss_fn, "ignore_index", IGNORED_LABEL)}
    with torch.no_grad():
        t = target.detach()
        allowed = (t >= 0) & (t < classes)
        for value in ignored:
            allowed |= t == value
        if bool(allowed.all()):
            return None
        wrong = t[~allowed]
        low, high = int(wrong.min()), int(wrong.max())
    return (f"labels run from {low} to {high}, outside the output's {classes} classes "
            f"(0 to {classes - 1}): an off-by-one, or an output layer too small")  # fmt: skip


class FirstSteps(OnDemand):
    """In the run for a fit's first optimizer steps: gradients that never arrive, all
    gradients zero, a step that changes nothing."""

    weight = 5_000

    def __init__(self, run: Any, sentinel: Sentinel) -> None:
        super().__init__(run)
        self.sentinel = sentinel
        self.left_steps = 0
        self._before: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._names: dict[int, str] = {}

    def start(self, steps: int) -> None:
        """Look at the next ``steps`` optimizer steps."""
        checks = self.sentinel.checks
        self.left_steps = steps
        wanted = steps > 0 and any(checks[c] for c in ("no_grad", "no_update", "zero_grads"))
        self.want(wanted, now=True)

    def on_train_batch_before_step(self, ctx: Context) -> None:
        opt, checks = ctx.opt, self.sentinel.checks
        if opt is None:
            return
        self._names = names = parameter_names(ctx.model)
        params = [p for g in opt.param_groups for p in g["params"] if p.requires_grad]
        missing = [p for p in params if p.grad is None]
        if checks["no_grad"] and missing and len(missing) < len(params):
            name = names.get(id(missing[0]), "?")
            self.sentinel.found("no_grad", ("parameter", name),
                                f"parameter {name} has no gradient after backward: the loss "
                                "does not reach it (a layer left out of forward, a detached "
                                "branch, a tensor that is not a Parameter)", ctx)  # fmt: skip
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            self._before = []
            return
        with torch.no_grad():
            nonzero = torch.stack([g.ne(0).any() for g in grads]).to("cpu")
            finite = bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())
        if checks["zero_grads"] and finite and not bool(nonzero.any()):
            self.sentinel.found("zero_grads", ("optimizer", str(ctx.opt_nm)),
                                f"every gradient of optimizer {ctx.opt_nm!r} is exactly zero: "
                                "nothing will learn (a loss that does not depend on the "
                                "outputs, dead activations, a zeroed loss)", ctx)  # fmt: skip
        stepped = [p for p, nz in zip((p for p in params if p.grad is not None), nonzero.tolist(),
                                      strict=True) if nz and _lr_of(opt, p) > 0]  # fmt: skip
        self._before = [(p, p.detach().clone()) for p in stepped] if finite else []

    def on_fit_end(self, ctx: Context) -> None:
        self.want(False, now=True)  # a fit of no step: nothing more to look at

    def on_train_batch_after_step(self, ctx: Context) -> None:
        before, self._before = self._before, []
        if before and self.sentinel.checks["no_update"]:
            with torch.no_grad():
                if all(torch.equal(p, kept) for p, kept in before):
                    self.sentinel.found("no_update", ("optimizer", str(ctx.opt_nm)),
                                        f"optimizer {ctx.opt_nm!r} stepped with non-zero "
                                        "gradients and lr > 0 and changed no weight (does it "
                                        "hold the parameters the model uses?)", ctx)  # fmt: skip
        self.left_steps -= 1
        if self.left_steps <= 0:
            self.want(False, now=True)


def _lr_of(opt: torch.optim.Optimizer, p: torch.Tensor) -> float:
    for group in opt.param_groups:
        if any(q is p for q in group["params"]):
            lr = group.get("lr", 0.0)
            return float(lr) if isinstance(lr, int | float) else float(torch.as_tensor(lr))
    return 0.0


class GradExplosion(OnDemand):
    """Every optimizer step: the gradient norm against the median of the last ``window``
    (opt-in: it syncs with the device at every step)."""

    weight = 5_000
    window = 100

    def __init__(self, run: Any, sentinel: Sentinel) -> None:
        super().__init__(run)
        self.sentinel = sentinel
        self.norms: deque[float] = deque(maxlen=self.window)

    def on_fit_begin(self, ctx: Context) -> None:
        self.norms.clear()

    def on_train_batch_before_step(self, ctx: Context) -> None:
        grads = [(n, p.grad) for n, p in named_parameters(ctx.model) if p.grad is not None]
        if not grads:
            return
        with torch.no_grad():
            device = grads[0][1].device
            norms = torch.stack([torch.linalg.vector_norm(g).float().to(device) for _, g in grads])
            total = float(torch.linalg.vector_norm(norms))  # the one host sync
        if total != total or total == float("inf"):
            return  # a non-finite gradient: breakpoints.nonfinite's to find
        if total == 0 and self.sentinel.checks["zero_grads"]:
            self.sentinel.found("zero_grads", ("optimizer", str(ctx.opt_nm)),
                                f"every gradient of optimizer {ctx.opt_nm!r} is exactly zero "
                                "at this step", ctx)  # fmt: skip
        if len(self.norms) >= 10:
            median = statistics.median(self.norms)
            if median > 0 and total > self.sentinel.explosion * median:
                name = grads[int(norms.argmax())][0]
                self.sentinel.found("grad_explosion", ("parameter", name),
                                    f"the gradient norm {total:.3g} is {total / median:.1f}x the "
                                    f"median of the last {len(self.norms)} steps ({median:.3g}); "
                                    f"the largest is {name}'s", ctx)  # fmt: skip
        self.norms.append(total)


class RankDrift(OnDemand):
    """Every ``rank_every`` optimizer steps, under several processes: a checksum of each
    parameter all-reduced (max and min), so ranks whose weights drifted apart are named."""

    weight = 5_000

    def __init__(self, run: Any, sentinel: Sentinel) -> None:
        super().__init__(run)
        self.sentinel = sentinel
        self.steps = 0

    def on_fit_begin(self, ctx: Context) -> None:
        self.steps = 0

    def on_train_batch_after_step(self, ctx: Context) -> None:
        self.steps += 1
        if self.steps % self.sentinel.rank_every:
            return
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_initialized():
            return
        named = list(named_parameters(ctx.model))
        with torch.no_grad():  # a sum and a sum of squares per parameter, on its device
            sums = [
                torch.stack([(w := p.detach().double()).sum(), (w * w).sum()]) for _, p in named
            ]
            mine = torch.cat([s.to(sums[0].device) for s in sums])
            both = torch.cat([mine, -mine])
            dist.all_reduce(both, op=dist.ReduceOp.MAX)
            high, low = both[: len(mine)], -both[len(mine) :]
            differ = (high != low).reshape(-1, 2).any(1).cpu()
        if bool(differ.any()):
            name = named[int(differ.nonzero()[0, 0])][0]
            self.sentinel.found("rank_drift", ("parameter", name),
                                f"the ranks' weights differ (first: {name}), though data "
                                "parallel training keeps them equal: a rank stepped on its own, "
                                "or its gradients were not synchronised", ctx)  # fmt: skip
