"""What the loop does when something raises: luz's handlers, faults of the step, RNG rewind.

A fault never kills the loop: the generator yields a :class:`~luzwidget.context.Fault`
and waits for the run to say ``"retry"`` or ``"skip"``.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import torch

from luzwidget.context import Context, Fault
from luzwidget.events import Event
from luzwidget.exceptions import StepError, StopEpoch, StopFit

__all__ = [
    "EPOCH_EVENTS",
    "SkipBatch",
    "apply_handlers",
    "rng_state",
    "set_rng_state",
    "step_fault",
]

E = Event
EPOCH_EVENTS = frozenset(
    e for e in Event if e.value.startswith(("on_train", "on_valid", "on_epoch"))
)
"""The events inside an epoch: where ``epoch_handlers`` apply."""


class SkipBatch(Exception):  # noqa: N818  (a signal, not an error)
    """Abandon the current batch (its gradients are discarded) and go on with the next."""


def apply_handlers(ctx: Context, fault: Fault) -> None:
    """luz's handlers: a matching ``epoch_handlers`` entry ends the epoch, ``handlers`` the fit."""
    exc = fault.cause
    if fault.interrupted:
        return
    if fault.event in EPOCH_EVENTS:
        for cls, handler in ctx.epoch_handlers.items():
            if isinstance(exc, cls):
                handler(ctx, exc)
                raise StopEpoch(f"{type(exc).__name__} handled by epoch_handlers") from exc
    for cls, handler in ctx.handlers.items():
        if isinstance(exc, cls):
            handler(ctx, exc)
            raise StopFit(f"{type(exc).__name__} handled by handlers") from exc


def step_fault(
    ctx: Context, stage: str, exc: BaseException, rng: Any, event: Event | None = None
) -> Generator[Fault, None, None]:
    """Yield a fault for ``exc`` raised in ``stage``; on return the step is redone cleanly.

    No optimizer step of this batch and optimizer has been applied yet, so redoing it from
    the forward pass (gradients zeroed, RNG rewound to ``rng``) applies each step once and
    draws the same random numbers: a retried run ends bit-identical to one that never failed.
    """
    event = event or _NEXT_EVENT[ctx.training][stage]
    detail = _describe_io(ctx, with_pred=stage != "forward")
    err = StepError(_WHAT[stage], event, exc, ctx.epoch, ctx.iter or 0, detail)
    err.__cause__ = exc
    fault = Fault(err, exc, event, stage)
    apply_handlers(ctx, fault)
    yield fault
    for opt in ctx.optimizers.values():
        opt.zero_grad()
    if rng is not None:
        set_rng_state(rng)
    if fault.action == "skip":
        raise SkipBatch


_WHAT = {
    "forward": "model(input)",
    "loss": "loss_fn(pred, target)",
    "backward": "backward(loss)",
    "step": "the optimizer step",
    "custom": "the module's step(ctx)",
}
_NEXT_EVENT = {
    True: {
        "forward": E.on_train_batch_after_pred,
        "loss": E.on_train_batch_after_loss,
        "backward": E.on_train_batch_before_step,
        "step": E.on_train_batch_after_step,
    },
    False: {"forward": E.on_valid_batch_after_pred, "loss": E.on_valid_batch_after_loss},
}


def _describe(value: Any, target: bool = False) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)}, {str(value.dtype)[6:]}, on {value.device}"
    if value is None and target:
        return "None (the batch has no target: the loader must yield (input, target) pairs)"
    return type(value).__name__


def _describe_io(ctx: Context, with_pred: bool) -> str:
    parts = [f"input: {_describe(ctx.input)}"]
    if with_pred:
        parts.append(f"pred: {_describe(ctx.pred)}")
    parts.append(f"target: {_describe(ctx.target, target=True)}")
    return "; ".join(parts)


def _cpu_rng() -> tuple[torch.Tensor, None]:
    return torch.default_generator.get_state(), None


def rng_state(device: torch.device | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The RNG states a step draws from (CPU, and CUDA when training there)."""
    if device is None or device.type != "cuda":
        return _cpu_rng()
    return torch.default_generator.get_state(), torch.cuda.get_rng_state(device)


def set_rng_state(state: tuple[torch.Tensor, torch.Tensor | None]) -> None:
    """Restore what :func:`rng_state` returned."""
    cpu, cuda = state
    torch.default_generator.set_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda)
