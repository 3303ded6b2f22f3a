"""The loss of each sample of the current batch (``run.sample_losses()``), on demand.

Nothing is computed while the run trains: asked at a pause, the batch's prediction
(``ctx.pred``, once the forward ran) goes through the loss function again, without
gradients, one loss per sample:

- a loss module with a ``reduction`` (``nn.CrossEntropyLoss()``, ``nn.MSELoss()``...): a
  copy with ``reduction="none"``, its output averaged over all but the first dimension
  (the mean a sample's loss has within ``reduction="mean"``);
- a function that takes ``reduction=`` (``F.cross_entropy``): called with ``"none"``;
- anything else (a module's own ``loss`` method, a lambda, a Hugging Face model's own
  loss): called sample by sample, each on a slice of one (dict and tuple batches are
  sliced by the batch rules of :mod:`luzwidget.core.batches`; a model that computes its
  own loss runs once per sample).

Before the forward (at ``on_train_batch_begin``) the prediction is made by a forward pass
that changes nothing: without gradients, the random streams and the module buffers
(BatchNorm's running statistics) put back afterwards.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from luzwidget.core.batches import call, count, output_loss, prediction
from luzwidget.core.engine import rng_state, set_rng_state
from luzwidget.core.events import Event

if TYPE_CHECKING:
    from luzwidget.core.context import Context

__all__ = ["fresh", "per_sample", "sample_losses"]


def fresh(event: Event | None) -> bool:
    """Whether ``ctx.pred`` is the current batch's after ``event`` (not at a batch's first
    event, where it still holds the batch before's)."""
    return event is not None and not event.is_batch_begin


def sample_losses(ctx: Context, fresh: bool) -> torch.Tensor | None:
    """One loss per sample of ``ctx``'s batch (float32 on the CPU), or None without a
    batch or a loss function. ``fresh``: ``ctx.pred`` is this batch's."""
    x, target, loss_fn = ctx.input, ctx.target, ctx.loss_fn
    if x is None or loss_fn is None or ctx.model is None:
        return None
    n = count(target, x)
    with torch.no_grad():
        if loss_fn is output_loss:
            return _one_by_one_forward(ctx, x, n)
        pred = ctx.pred if fresh and ctx.pred is not None else _quiet_forward(ctx, x)
        return per_sample(loss_fn, prediction(pred), target, n)


def per_sample(loss_fn: Any, pred: Any, target: Any, n: int) -> torch.Tensor:
    """``loss_fn(pred, target)`` per sample: ``n`` losses (see the module's docstring)."""
    if isinstance(loss_fn, torch.nn.Module) and isinstance(
        getattr(loss_fn, "reduction", None), str
    ):
        none = copy.copy(loss_fn)
        setattr(none, "reduction", "none")  # noqa: B010  (a loss module's own attribute)
        return _per_row(none(pred, target), n)
    try:
        return _per_row(loss_fn(pred, target, reduction="none"), n)
    except TypeError:
        pass
    return torch.stack(
        [torch.as_tensor(loss_fn(take(pred, i, n), take(target, i, n))).float().reshape(())
         for i in range(n)]
    ).cpu()  # fmt: skip


def _per_row(losses: Any, n: int) -> torch.Tensor:
    out = torch.as_tensor(losses).float()
    if out.ndim == 0 or out.shape[0] != n:
        raise ValueError(f"a per-sample loss of shape {tuple(out.shape)} for {n} samples")
    return out.reshape(n, -1).mean(1).cpu()


def take(value: Any, i: int, n: int) -> Any:
    """Sample ``i`` of a batch part of ``n`` samples, kept as a batch of one: tensors with
    ``n`` rows are sliced, dicts, tuples and lists part by part, anything else kept."""
    if isinstance(value, torch.Tensor):
        return value[i : i + 1] if value.ndim and value.shape[0] == n else value
    if isinstance(value, Mapping):
        return {k: take(v, i, n) for k, v in value.items()}
    if isinstance(value, tuple | list):
        if len(value) == n and value and not isinstance(value[0], torch.Tensor):
            return type(value)([value[i]])  # a list of samples
        return type(value)(take(v, i, n) for v in value)
    return value


def _quiet_forward(ctx: Context, x: Any) -> Any:
    """The model's output for ``x``, leaving the random streams and buffers as they were."""
    model = ctx.model
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    state = rng_state(ctx.device)
    try:
        if ctx.autocast is None:
            return call(model, x)
        with ctx.autocast():
            return call(model, x)
    finally:
        set_rng_state(state)
        for buffer, kept in buffers:
            buffer.copy_(kept)


def _one_by_one_forward(ctx: Context, x: Any, n: int) -> torch.Tensor:
    """A model that computes its own loss: one quiet forward per sample."""
    out = []
    for i in range(n):
        pred = _quiet_forward(ctx, take(x, i, n))
        out.append(torch.as_tensor(output_loss(pred, None)).detach().float().reshape(()))
    return torch.stack(out).cpu()
