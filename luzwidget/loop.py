"""The loops as generators: at every event they call the callbacks, then ``yield`` the event.

Nothing else pauses a run: a paused run is a generator nobody calls ``next()`` on. When
something raises, the loop does not die: it yields a :class:`~luzwidget.context.Fault`
and waits, context intact, for the run to say ``"retry"`` or ``"skip"``. Control flow
(``StopFit``, ``StopEpoch``) travels as exceptions, as in luz. The order of events is the
one drawn in the :class:`~luzwidget.events.Event` docstring.

Grad mode is set around each piece of work, never held across a ``yield``: a paused
generator leaves the caller's thread as it found it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from typing import Any

import torch

from luzwidget.context import Context, Fault
from luzwidget.data import split_batch
from luzwidget.events import Event
from luzwidget.exceptions import EarlyStop, StepError, StopEpoch, StopFit

__all__ = ["Item", "evaluate_loop", "fit_loop", "predict_loop"]

Item = Event | Fault
Loop = Generator[Item, None, None]
E = Event


class _SkipBatch(Exception):  # noqa: N818  (a signal, not an error)
    """Abandon the current batch (its gradients are discarded) and go on with the next."""


_PASS = (StopFit, StopEpoch, GeneratorExit, _SkipBatch)
_BATCH_EVENTS = frozenset(e for e in Event if "_batch_" in e.value)
_EPOCH_EVENTS = frozenset(
    e for e in Event if e.value.startswith(("on_train", "on_valid", "on_epoch"))
)


# -- firing events ---------------------------------------------------------------------


def fire(ctx: Context, event: Event) -> Loop:
    """Call the callbacks of ``event``, then yield it; on a fault, yield it and obey.

    The event is yielded only while the driver listens (``ctx._listen[0]``): a free-running
    loop skips the yields, which saves a resume of every enclosing generator per event.
    """
    fault = ctx._dispatch(event)
    while fault is not None:
        _apply_handlers(ctx, fault)
        yield fault
        if fault.action == "skip":
            if event in _BATCH_EVENTS:
                raise _SkipBatch
            break
        fault = ctx._dispatch(event, fault.done)
    if ctx._listen[0]:
        yield event


def _apply_handlers(ctx: Context, fault: Fault) -> None:
    """luz's handlers: a matching ``epoch_handlers`` entry ends the epoch, ``handlers`` the fit."""
    exc = fault.cause
    if fault.interrupted:
        return
    if fault.event in _EPOCH_EVENTS:
        for cls, handler in ctx.epoch_handlers.items():
            if isinstance(exc, cls):
                handler(ctx, exc)
                raise StopEpoch(f"{type(exc).__name__} handled by epoch_handlers") from exc
    for cls, handler in ctx.handlers.items():
        if isinstance(exc, cls):
            handler(ctx, exc)
            raise StopFit(f"{type(exc).__name__} handled by handlers") from exc


# -- the fit ---------------------------------------------------------------------------


def fit_loop(ctx: Context) -> Loop:
    """Train from ``ctx.epoch + 1`` to ``ctx.max_epochs``, validating after each epoch."""
    try:
        yield from fire(ctx, E.on_fit_begin)
        while ctx.epoch < ctx.max_epochs:
            ctx.epoch += 1
            ctx.iter = 0  # as luz: reset before on_epoch_begin
            try:
                yield from _epoch(ctx)
            except EarlyStop:
                if ctx.epoch >= ctx.min_epochs:
                    raise
    except StopFit as stop:
        if isinstance(stop, EarlyStop):
            yield from fire(ctx, E.on_early_stopping)
    yield from fire(ctx, E.on_fit_end)


def _epoch(ctx: Context) -> Loop:
    try:
        ctx.data = ctx.train_data
        yield from fire(ctx, E.on_epoch_begin)
        yield from fire(ctx, E.on_train_begin)
        yield from _batches(ctx, ctx.train_data, E.on_train_batch_begin, _train_batch)
        yield from fire(ctx, E.on_train_end)
        if ctx.valid_data is not None:
            yield from _validate(ctx)
    except StopEpoch:
        pass
    yield from fire(ctx, E.on_epoch_end)


def _validate(ctx: Context) -> Loop:
    ctx.data = ctx.valid_data
    yield from fire(ctx, E.on_valid_begin)
    yield from _batches(ctx, ctx.valid_data, E.on_valid_batch_begin, _valid_batch)
    yield from fire(ctx, E.on_valid_end)


def evaluate_loop(ctx: Context) -> Loop:
    """The validation loop alone, as epoch 1 (luz's ``evaluate``)."""
    ctx.model.eval()
    ctx.training = False
    ctx.epoch = 1
    yield from _validate(ctx)


def _batches(
    ctx: Context, loader: Iterable[Any], first: Event, one: Callable[[Context], Loop]
) -> Loop:
    """Run ``one(ctx)`` for each batch of ``loader``; a failing loader yields a fault."""
    it = iter(loader)
    ctx.iter = 0
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except Exception as exc:
            err = StepError("loading the next batch", first, exc, ctx.epoch, ctx.iter + 1)
            err.__cause__ = exc
            fault = Fault(err, exc, first, "data")
            _apply_handlers(ctx, fault)
            yield fault
            continue  # retry and skip both ask the loader for the next batch
        ctx.iter += 1
        ctx.batch = batch
        if type(batch) is tuple and len(batch) == 2:  # the common case, inlined
            ctx.input, ctx.target = batch
        else:
            ctx.input, ctx.target = split_batch(batch)
        try:
            yield from one(ctx)
        except _SkipBatch:
            zero_grads(ctx)


# -- one batch -------------------------------------------------------------------------


def _train_batch(ctx: Context) -> Loop:
    table, listen = ctx._table, ctx._listen
    if table[E.on_train_batch_begin] or listen[0]:
        yield from fire(ctx, E.on_train_batch_begin)
    if ctx.step is not None:
        yield from _custom_step(ctx, E.on_train_batch_end, training=True)
    else:
        optimizers = ctx.optimizers
        several = len(optimizers) > 1
        if several:
            ctx.loss = {}
        for name, opt in optimizers.items():
            ctx.opt_nm = name
            ctx.opt = opt
            yield from _train_step(ctx, name if several else None, opt)
    if table[E.on_train_batch_end] or listen[0]:
        yield from fire(ctx, E.on_train_batch_end)


def _train_step(ctx: Context, name: str | None, opt: torch.optim.Optimizer) -> Loop:
    """luz's default step for one optimizer; a fault redoes it from the forward pass.

    Events without callbacks are skipped unless the driver listens (``fire`` would do
    nothing else); this is the hot path, run once per batch and optimizer.
    """
    table, listen, guard = ctx._table, ctx._listen, ctx._guard
    rng = rng_state(ctx.device)  # ~1 µs: a redo draws the same dropout masks
    while True:
        stage = "forward"
        try:
            guard[0] = True
            pred = _forward(ctx)
            guard[0] = False
            ctx.pred = pred
            if table[E.on_train_batch_after_pred] or listen[0]:
                yield from fire(ctx, E.on_train_batch_after_pred)
            stage = "loss"
            guard[0] = True
            loss = _loss(ctx, pred)
            guard[0] = False
            ctx.loss_grad = loss
            _set_loss(ctx, name, loss.detach())
            if table[E.on_train_batch_after_loss] or listen[0]:
                yield from fire(ctx, E.on_train_batch_after_loss)
            if table[E.on_train_batch_before_backward] or listen[0]:
                yield from fire(ctx, E.on_train_batch_before_backward)
            stage = "backward"
            zero_grads(ctx)
            guard[0] = True
            ctx.backward(ctx.loss_grad)
            guard[0] = False
            if table[E.on_train_batch_before_step] or listen[0]:
                yield from fire(ctx, E.on_train_batch_before_step)
            stage = "step"
            ctx.step_opt(opt)
            break
        except _PASS:
            raise
        except BaseException as exc:
            guard[0] = False
            yield from _step_fault(ctx, stage, exc, rng)
    if table[E.on_train_batch_after_step] or listen[0]:
        yield from fire(ctx, E.on_train_batch_after_step)


def _valid_batch(ctx: Context) -> Loop:
    yield from fire(ctx, E.on_valid_batch_begin)
    if ctx.step is not None:
        yield from _custom_step(ctx, E.on_valid_batch_end, training=False)
    else:
        optimizers = ctx.optimizers or {None: None}
        several = len(optimizers) > 1
        if several:
            ctx.loss = {}
        for name, opt in optimizers.items():
            ctx.opt_nm = name
            ctx.opt = opt
            yield from _valid_step(ctx, name if several else None)
    yield from fire(ctx, E.on_valid_batch_end)


def _valid_step(ctx: Context, name: str | None) -> Loop:
    guard = ctx._guard
    while True:
        stage = "forward"
        try:
            guard[0] = True
            with torch.no_grad():
                pred = _forward(ctx)
            guard[0] = False
            ctx.pred = pred
            yield from fire(ctx, E.on_valid_batch_after_pred)
            stage = "loss"
            guard[0] = True
            with torch.no_grad():
                loss = _loss(ctx, pred)
            guard[0] = False
            ctx.loss_grad = loss
            _set_loss(ctx, name, loss)
            yield from fire(ctx, E.on_valid_batch_after_loss)
            return
        except _PASS:
            raise
        except BaseException as exc:
            guard[0] = False
            yield from _step_fault(ctx, stage, exc, None)


def _custom_step(ctx: Context, before: Event, training: bool) -> Loop:
    """The module's own ``step()``: one guarded call; a fault redoes the whole step."""
    guard = ctx._guard
    rng = rng_state(ctx.device) if training else None
    while True:
        try:
            guard[0] = True
            with torch.set_grad_enabled(training):
                ctx.step()
            guard[0] = False
            return
        except _PASS:
            raise
        except BaseException as exc:
            guard[0] = False
            yield from _step_fault(ctx, "custom", exc, rng, before)


def _step_fault(
    ctx: Context, stage: str, exc: BaseException, rng: Any, event: Event | None = None
) -> Loop:
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
    _apply_handlers(ctx, fault)
    yield fault
    zero_grads(ctx)
    if rng is not None:
        set_rng_state(rng)
    if fault.action == "skip":
        raise _SkipBatch


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


# -- prediction ------------------------------------------------------------------------


def predict_loop(ctx: Context, predict: Callable[[Any], Any], out: list[Any]) -> Loop:
    """Call ``predict(input)`` on each batch of ``ctx.data`` under no_grad; append to ``out``."""
    ctx.model.eval()
    ctx.training = False
    yield from fire(ctx, E.on_predict_begin)
    yield from _batches(ctx, ctx.data, E.on_predict_batch_begin, lambda c: _predict(c, predict, out))
    yield from fire(ctx, E.on_predict_end)


def _predict(ctx: Context, predict: Callable[[Any], Any], out: list[Any]) -> Loop:
    yield from fire(ctx, E.on_predict_batch_begin)
    guard = ctx._guard
    while True:
        try:
            guard[0] = True
            with torch.no_grad():
                pred = predict(ctx.input)
            guard[0] = False
            break
        except _PASS:
            raise
        except BaseException as exc:
            guard[0] = False
            err = StepError("predict(input)", E.on_predict_batch_end, exc, 0, ctx.iter or 0)
            err.__cause__ = exc
            fault = Fault(err, exc, E.on_predict_batch_end, "forward")
            yield fault
            if fault.action == "skip":
                raise _SkipBatch from None
    ctx.pred = pred
    out.append(pred)
    yield from fire(ctx, E.on_predict_batch_end)


# -- helpers ---------------------------------------------------------------------------


def _forward(ctx: Context) -> Any:
    autocast = ctx.autocast
    if autocast is None:
        return ctx.model(ctx.input)
    with autocast():
        return ctx.model(ctx.input)


def _loss(ctx: Context, pred: Any) -> torch.Tensor:
    target = ctx.target
    autocast = ctx.autocast
    if autocast is None:
        loss = ctx.loss_fn(pred, target)
    else:
        with autocast():
            loss = ctx.loss_fn(pred, target)
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(
            f"the loss must be a scalar tensor, but loss_fn returned {shape}. Reduce it "
            "(e.g. reduction='mean', or .mean()) so that backward() has one number to follow."
        )
    return loss


def _set_loss(ctx: Context, name: str | None, loss: torch.Tensor) -> None:
    if name is None:
        ctx.loss = loss
    else:
        ctx.loss = {**ctx.loss, name: loss}


def zero_grads(ctx: Context) -> None:
    """Zero the gradients of every optimizer (luz zeroed only the current one's)."""
    for opt in ctx.optimizers.values():
        opt.zero_grad()


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


def rng_state(device: torch.device | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The RNG states a step draws from (CPU, and CUDA when training there)."""
    cuda = None
    if device is not None and device.type == "cuda":
        cuda = torch.cuda.get_rng_state(device)
    return torch.default_generator.get_state(), cuda


def set_rng_state(state: tuple[torch.Tensor, torch.Tensor | None]) -> None:
    """Restore what :func:`rng_state` returned."""
    cpu, cuda = state
    torch.default_generator.set_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda)
