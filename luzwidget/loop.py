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

from luzwidget.checks import check_target_shape
from luzwidget.context import Context, Fault
from luzwidget.data import split_batch
from luzwidget.events import Event
from luzwidget.exceptions import EarlyStop, StepError, StopEpoch, StopFit
from luzwidget.faults import SkipBatch, apply_handlers, rng_state, step_fault

__all__ = ["Item", "evaluate_loop", "fit_loop", "predict_loop"]

Item = Event | Fault
Loop = Generator[Item, None, None]
E = Event


_PASS = (StopFit, StopEpoch, GeneratorExit, SkipBatch)
_BATCH_EVENTS = frozenset(e for e in Event if "_batch_" in e.value)


# -- firing events ---------------------------------------------------------------------


def fire(ctx: Context, event: Event) -> Loop:
    """Call the callbacks of ``event``, then yield it; on a fault, yield it and obey.

    The event is yielded only while the driver listens (``ctx._listen[0]``): a free-running
    loop skips the yields, which saves a resume of every enclosing generator per event.
    """
    fault = ctx._dispatch(event)
    while fault is not None:
        apply_handlers(ctx, fault)
        yield fault
        if fault.action == "skip":
            if event in _BATCH_EVENTS:
                raise SkipBatch
            break
        fault = ctx._dispatch(event, fault.done)
    if ctx._listen[0]:
        yield event


# -- the fit ---------------------------------------------------------------------------


def fit_loop(ctx: Context) -> Loop:
    """Train from ``ctx.epoch + 1`` to ``ctx.max_epochs``, validating after each epoch."""
    ctx._check_target = True  # the first training loss checks the target's shape, once
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
    i = ctx.iter = 0
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except Exception as exc:
            err = StepError("loading the next batch", first, exc, ctx.epoch, i + 1)
            err.__cause__ = exc
            fault = Fault(err, exc, first, "data")
            apply_handlers(ctx, fault)
            yield fault
            continue  # retry and skip both ask the loader for the next batch
        i += 1
        put = ctx._putter()
        put("iter", i)
        put("batch", batch)
        if type(batch) is tuple and len(batch) == 2:  # the common case, inlined
            put("input", batch[0])
            put("target", batch[1])
        else:
            input_, target = split_batch(batch)
            put("input", input_)
            put("target", target)
        try:
            yield from one(ctx)
        except SkipBatch:
            zero_grads(ctx)


# -- one batch -------------------------------------------------------------------------
#
# The training step is the hot path (once per batch and optimizer), so it reads and writes
# the context's values directly: ``tv[name]`` is ``ctx.name``, and ``put(name, value)`` is
# ``ctx.name = value`` (a plain store unless that field is observed; see Context._putter).
# Events without callbacks are skipped unless the driver listens (``fire`` would do nothing
# else). Together this keeps the loop's own cost to a few microseconds per batch.


def _train_batch(ctx: Context) -> Loop:
    table, listen, tv = ctx._table, ctx._listen, ctx._trait_values
    if table[E.on_train_batch_begin] or listen[0]:
        yield from fire(ctx, E.on_train_batch_begin)
    if tv["step"] is not None:
        yield from _custom_step(ctx, E.on_train_batch_end, training=True)
    else:
        optimizers = tv["optimizers"]
        several = len(optimizers) > 1
        if several:
            ctx.loss = {}
        for name, opt in optimizers.items():
            put = ctx._putter()
            put("opt_nm", name)
            put("opt", opt)
            yield from _train_step(ctx, name if several else None, opt)
    if table[E.on_train_batch_end] or listen[0]:
        yield from fire(ctx, E.on_train_batch_end)


def _train_step(ctx: Context, name: str | None, opt: torch.optim.Optimizer) -> Loop:
    """luz's default step for one optimizer; a fault redoes it from the forward pass."""
    table, listen, guard, tv = ctx._table, ctx._listen, ctx._guard, ctx._trait_values
    put = ctx._putter()
    device = tv["device"]  # the RNG state (~1.5 µs), so that a redo draws the same dropout masks
    rng = rng_state(device)
    while True:
        stage = "forward"
        try:
            guard[0] = True
            pred = tv["model"](tv["input"]) if tv["autocast"] is None else _forward(ctx)
            guard[0] = False
            put("pred", pred)
            if table[E.on_train_batch_after_pred] or listen[0]:
                yield from fire(ctx, E.on_train_batch_after_pred)
                put = ctx._putter()
            stage = "loss"
            guard[0] = True
            if ctx._check_target:  # first batch of the fit only (a flag, no per-batch cost)
                ctx._check_target = False  # once: a retry or skip after it goes on unchecked
                check_target_shape(tv["loss_fn"], pred, tv["target"])
            loss = _loss(ctx, pred)
            guard[0] = False
            put("loss_grad", loss)
            put("loss", loss.detach() if name is None else {**tv["loss"], name: loss.detach()})
            if table[E.on_train_batch_after_loss] or listen[0]:
                yield from fire(ctx, E.on_train_batch_after_loss)
            if table[E.on_train_batch_before_backward] or listen[0]:
                yield from fire(ctx, E.on_train_batch_before_backward)
                put = ctx._putter()
            stage = "backward"
            for each in tv["optimizers"].values():  # every optimizer's: luz zeroed only opt's
                each.zero_grad()
            guard[0] = True
            tv["backward"](tv["loss_grad"])
            guard[0] = False
            if table[E.on_train_batch_before_step] or listen[0]:
                yield from fire(ctx, E.on_train_batch_before_step)
            stage = "step"
            tv["step_opt"](opt)
            break
        except _PASS:
            raise
        except BaseException as exc:
            guard[0] = False
            yield from step_fault(ctx, stage, exc, rng)
            put = ctx._putter()
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
            yield from step_fault(ctx, stage, exc, None)


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
            yield from step_fault(ctx, "custom", exc, rng, before)


# -- prediction ------------------------------------------------------------------------


def predict_loop(ctx: Context, predict: Callable[[Any], Any], out: list[Any]) -> Loop:
    """Call ``predict(input)`` on each batch of ``ctx.data`` under no_grad; append to ``out``."""
    ctx.model.eval()
    ctx.training = False
    yield from fire(ctx, E.on_predict_begin)
    yield from _batches(
        ctx, ctx.data, E.on_predict_batch_begin, lambda c: _predict(c, predict, out)
    )
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
                raise SkipBatch from None
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
    tv = ctx._trait_values
    target = tv["target"]
    autocast = tv["autocast"]
    if autocast is None:
        loss = tv["loss_fn"](pred, target)
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
