"""What a fault says: the texts of the errors the engine turns exceptions into.

Kept apart from :mod:`luzwidget.core.engine` (which decides *when* something is a fault) so
that the hot path's module stays short; nothing here runs unless something failed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from luzwidget.core.events import Event
from luzwidget.core.exceptions import StopEpoch, StopFit

if TYPE_CHECKING:
    from luzwidget.core.context import Context

__all__ = ["WHAT", "Control", "describe_io", "misplaced", "no_graph_hint", "nth_batch"]

Control = dict[type[BaseException], frozenset[Event]]
_ENDING = (Event.on_early_stopping, Event.on_interrupt, Event.on_fit_end)

_MEANS = {
    StopFit: "skips the remaining epochs (on_fit_end still runs)",
    StopEpoch: "skips the rest of the current epoch (on_epoch_end still runs)",
}


def nth_batch(position: int, skipped: list[int]) -> int:
    """The batch number of the ``position``-th (0-based) batch that was not skipped."""
    batch, left, gone = 0, position, set(skipped)
    while True:
        batch += 1
        if batch not in gone:
            if left == 0:
                return batch
            left -= 1


def misplaced(exc: BaseException, event: Event, control: Control) -> str:
    """Why control flow ``exc`` means nothing at ``event``, and where it would."""
    kind = StopFit if isinstance(exc, StopFit) else StopEpoch
    name = type(exc).__name__
    if not control.get(kind):
        where = (
            "it is allowed only while fit() trains, and this loop (evaluate or predict) does not"
        )
    elif kind is StopFit:
        where = "it is allowed from on_fit_begin up to on_epoch_end"
    else:
        where = "it is allowed inside an epoch, from on_epoch_begin up to on_valid_end"
    if event in _ENDING:
        what = "the fit has already ended"
    elif kind is StopEpoch and event is Event.on_epoch_end:
        what = "the epoch has already ended"
    elif kind is StopEpoch and event is Event.on_fit_begin:
        what = "no epoch has started yet"
    else:
        what = "there is nothing for it to stop"
    return (
        f"{name} {_MEANS[kind]}; at {event.value} {what}, so it has no meaning there "
        f"({where}). Fix the callback (do not raise {name} at {event.value}), then "
        "run.retry() calls it again, or run.skip() goes on without the rest of this event."
    )


WHAT = {
    "forward": "model(input)",
    "loss": "loss_fn(pred, target)",
    "backward": "backward(loss)",
    "step": "the optimizer step",
    "custom": "the module's step(ctx)",
    "predict": "predict(input)",
}


def _describe(value: Any, target: bool = False) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)}, {str(value.dtype)[6:]}, on {value.device}"
    if value is None and target:
        return "None (the batch has no target: the loader must yield (input, target) pairs)"
    return type(value).__name__


def describe_io(ctx: Context, stage: str) -> str:
    parts = [f"input: {_describe(ctx.input)}"]
    if stage == "predict":  # the target plays no part
        return parts[0]
    if stage != "forward":
        parts.append(f"pred: {_describe(ctx.pred)}")
    parts.append(f"target: {_describe(ctx.target, target=True)}")
    return "; ".join(parts)


def no_graph_hint(loss: Any) -> str:
    """Why ``ctx.loss_grad`` may have no graph to follow: a callback changed it."""
    if not isinstance(loss, torch.Tensor) or loss.requires_grad:
        return ""
    return (
        "\nctx.loss_grad does not require grad. Callbacks run under torch.no_grad() (as in "
        "luz), so a callback that computes a new ctx.loss_grad (or ctx.pred), e.g. "
        "ctx.loss_grad = ctx.loss_grad * 0 at on_train_batch_before_backward, builds a tensor "
        "with no graph. Wrap the change in `with torch.enable_grad():`, then run.retry()."
    )
