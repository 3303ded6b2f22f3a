"""Gradient accumulation: one optimizer step per ``k`` training batches (``fit(...,
accumulate=k)``).

Each batch's loss is divided by the size of its group (``k``, or fewer for the last group
of an epoch), so a step follows the mean gradient of the group's batches. The gradients of
the batches before the last are kept aside (a per-optimizer copy, added to in place), not
left in ``.grad``: a batch that fails and is retried starts again from exactly the group's
gradients so far, and a skipped one adds nothing. The last batch of a group puts them back
into ``.grad`` before its backward, so the sum is the one a hand-written loop gets (bit for
bit) and, under DDP, the one that is synchronised: the other batches run under DDP's
``no_sync`` (``require_backward_grad_sync = False``), so only a group's last batch
communicates.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from luzwidget.core.exceptions import ConfigError

if TYPE_CHECKING:
    from luzwidget.core.context import Context

__all__ = ["Accumulation", "check_accumulate", "optimizer_steps", "steps_now"]


def check_accumulate(value: Any) -> int:
    """``value`` if it is an int >= 1 (batches per optimizer step); else ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"accumulate={value!r}: expected an int >= 1, the number of batches whose "
            "gradients add up to one optimizer step (1: a step per batch), e.g. accumulate=4."
        )
    return value


class Accumulation:
    """The accumulation of one epoch's training pass, ``k`` batches per step.

    Attributes
    ----------
    k : int
        Batches per optimizer step.
    n : int or None
        Batches in the epoch (None: the loader has no length; the last group is then
        stepped after the last batch, by :meth:`pending`).
    first, steps : bool
        Whether the current batch begins, and ends (steps the optimizers), its group.
    size : int
        Batches in the current group: the loss is divided by it.
    """

    __slots__ = ("custom", "ddp", "done", "first", "k", "n", "size", "stash", "steps")

    def __init__(self, k: int, n: int | None, model: Any, custom: bool = False) -> None:
        self.k, self.n, self.custom = k, n, custom
        ddp = isinstance(model, torch.nn.parallel.DistributedDataParallel)
        self.ddp = model if ddp and not custom else None  # a custom step syncs every batch
        self.first = self.steps = False
        self.size = k
        self.done = 0  # batches of the current group so far, the current one included
        self.stash: dict[int, tuple[Any, list[torch.Tensor], list[torch.Tensor | None]]] = {}

    def plan(self, i: int) -> None:
        """Place batch ``i`` (1-based) in its group; a group's first batch starts afresh."""
        k, n = self.k, self.n
        start = (i - 1) // k * k + 1
        end = start + k - 1 if n is None else min(start + k - 1, n)
        self.first, self.steps, self.size = i == start, i == end, end - start + 1
        self.done = i - start + 1
        if self.first:
            self.stash.clear()
        if self.ddp is not None:
            self.ddp.require_backward_grad_sync = self.steps  # what DDP.no_sync() sets

    def keep(self, opt: torch.optim.Optimizer) -> None:
        """Add ``opt``'s gradients to the group's and clear them (a batch that does not step)."""
        _, params, kept = self._entry(opt)
        pairs = []
        for j, p in enumerate(params):
            grad = p.grad
            if grad is None:
                continue
            if kept[j] is None:
                kept[j] = grad.detach().clone()
            else:
                pairs.append((kept[j], grad))
            p.grad = None
        if pairs:
            torch._foreach_add_([a for a, _ in pairs], [b for _, b in pairs])

    def restore(self, opt: torch.optim.Optimizer) -> None:
        """Put the group's gradients (a copy) into ``opt``'s ``.grad``, before the last
        batch's backward adds its own."""
        _, params, kept = self.stash.get(id(opt), (None, (), ()))
        for p, grad in zip(params, kept, strict=True):
            if grad is not None:
                p.grad = grad.clone()

    def add_into(self, opt: torch.optim.Optimizer) -> None:
        """Add the group's gradients to ``opt``'s ``.grad`` after the last batch's backward
        (a custom step, whose backward comes before luzwidget sees the optimizer)."""
        _, params, kept = self.stash.get(id(opt), (None, (), ()))
        for p, grad in zip(params, kept, strict=True):
            if grad is not None:
                p.grad = grad.clone() if p.grad is None else p.grad.add_(grad)

    def leftover(self) -> list[torch.optim.Optimizer]:
        """After the last batch of a loader without length, if its group did not step: the
        optimizers to step now, their gradients put back, rescaled from ``k`` batches to
        the group's (each batch's loss was divided by ``k``)."""
        if self.n is not None or self.steps or not self.stash:
            return []
        scale = self.k / self.done
        for _, params, kept in self.stash.values():
            for p, grad in zip(params, kept, strict=True):
                if grad is not None:
                    p.grad = grad.mul_(scale)
        optimizers = [opt for opt, _, _ in self.stash.values()]
        self.stash.clear()
        self.steps = True
        return optimizers

    def _entry(self, opt: torch.optim.Optimizer) -> tuple[Any, list[Any], list[Any]]:
        entry = self.stash.get(id(opt))
        if entry is None:
            params = [p for g in opt.param_groups for p in g["params"]]
            entry = self.stash[id(opt)] = (opt, params, [None] * len(params))
        return entry


def steps_now(ctx: Context) -> bool:
    """Whether the current training batch steps the optimizers (always, without
    accumulation): per-step schedulers and the gradient scaler act only then."""
    engine = ctx._engine
    accum = None if engine is None else engine.accum
    return accum is None or accum.steps


def optimizer_steps(ctx: Context, accumulate: int | None = None) -> int | None:
    """Optimizer steps per epoch: ``ceil(batches / accumulate)`` (None without a length)."""
    try:
        n = len(ctx.train_data)
    except TypeError:
        return None
    k = ctx.accumulate if accumulate is None else accumulate
    return math.ceil(n / k)
