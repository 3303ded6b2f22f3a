"""The loops as generators: at every event they call the callbacks, then ``yield`` the event.

Nothing else pauses a run: a paused run is a generator nobody calls ``next()`` on. When
something raises, the loop does not die: it yields a :class:`~luzwidget.core.engine.Fault`
and waits, context intact, for the run to say ``"retry"`` or ``"skip"``. Control flow
(``StopFit``, ``StopEpoch``) travels as exceptions, as in luz. The order of events is the
one drawn in the :class:`~luzwidget.core.events.Event` docstring.

Grad mode is set around each piece of work, never held across a ``yield``: a paused
generator leaves the caller's thread as it found it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from typing import Any

import torch

from luzwidget.core.checks import check_target_shape
from luzwidget.core.context import Context
from luzwidget.core.data import epoch_batches, split_batch
from luzwidget.core.engine import (
    FIT_CONTROL,
    NO_CONTROL,
    PASS_THROUGH,
    Engine,
    Fault,
    SkipBatch,
    rng_state,
)
from luzwidget.core.events import Event
from luzwidget.core.exceptions import EarlyStop, StepError, StopEpoch, StopFit

__all__ = ["Item", "evaluate_loop", "fit_loop", "interrupt_loop", "predict_loop"]

Item = Event | Fault
Loop = Generator[Item, None, None]
E = Event


# -- firing events ---------------------------------------------------------------------


def fire(engine: Engine, event: Event) -> Iterable[Item]:
    """Call the callbacks of ``event``, then yield it; on a fault, yield it and obey.

    The one fast-path rule: an event nobody listens to (no callback, and the driver not
    listening, see :class:`~luzwidget.core.flags.LoopFlags`) costs a lookup and nothing else.
    A free-running loop skips the yields too, which saves a resume of every enclosing
    generator per event.
    """
    if engine.table[event] or engine.flags.listening:
        return _fire(engine, event)
    return ()


def _fire(engine: Engine, event: Event) -> Loop:
    fault = engine.dispatch(event)
    while fault is not None:
        engine.apply_handlers(fault)
        yield fault
        if fault.action == "skip":
            if event.in_batch:
                raise SkipBatch
            break
        fault = engine.dispatch(event, fault.done)
    if engine.flags.listening:
        yield event


def _guarded(
    engine: Engine, body: Callable[..., Loop], args: tuple[Any, ...], rng: Any, event: Any = None
) -> Loop:
    """Run ``body(*args)``, a step that calls user code; on an exception, yield a fault
    naming the stage it was in (``engine.flags.stage``), then redo the step from its start.

    ``body`` marks the user code it calls with ``flags.in_user_code`` (where a second
    Ctrl-C may interrupt at once) and its stage with ``flags.stage``. Control flow
    (``PASS_THROUGH``) goes through untouched.
    """
    flags = engine.flags
    while True:
        try:
            yield from body(*args)
            return
        except PASS_THROUGH:
            raise
        except BaseException as exc:
            flags.in_user_code = False
            yield from engine.step_fault(flags.stage, exc, rng, event)


# -- the fit ---------------------------------------------------------------------------


def fit_loop(ctx: Context, engine: Engine, begun: bool = False) -> Loop:
    """Train from ``ctx.epoch + 1`` to ``ctx.max_epochs``, validating after each epoch.

    ``begun``: the fit began already (``on_fit_begin`` ran), e.g. after a rewind to an
    epoch end; the loop goes on with the next epoch.
    """
    engine.flags.check_target = True  # the first training loss checks the target's shape
    engine.control = FIT_CONTROL
    engine.told_nonfinite = False  # a NaN loss is reported once per fit
    try:
        if not begun:
            yield from fire(engine, E.on_fit_begin)
        while ctx.epoch < ctx.max_epochs:
            ctx.epoch += 1
            ctx.iter = 0  # as luz: reset before on_epoch_begin
            try:
                yield from _epoch(ctx, engine)
            except EarlyStop:
                if ctx.epoch >= ctx.min_epochs:
                    raise
    except StopFit as stop:
        if isinstance(stop, EarlyStop):
            yield from fire(engine, E.on_early_stopping)
    yield from fire(engine, E.on_fit_end)


def interrupt_loop(ctx: Context, engine: Engine) -> Loop:
    """What ends a blocking fit the user interrupted (luz): ``on_interrupt``, ``on_fit_end``.

    Driven like any loop (faults, ``run.events``), while the interrupted fit stays
    suspended and can go on afterwards.
    """
    yield from fire(engine, E.on_interrupt)
    yield from fire(engine, E.on_fit_end)


def _epoch(ctx: Context, engine: Engine) -> Loop:
    try:
        ctx.data = ctx.train_data
        yield from fire(engine, E.on_epoch_begin)
        yield from fire(engine, E.on_train_begin)
        yield from _batches(ctx, engine, ctx.train_data, E.on_train_batch_begin, _train_batch)
        yield from fire(engine, E.on_train_end)
        if ctx.valid_data is not None:
            yield from _validate(ctx, engine)
    except StopEpoch:
        pass
    yield from fire(engine, E.on_epoch_end)


def _validate(ctx: Context, engine: Engine) -> Loop:
    ctx.data = ctx.valid_data
    yield from fire(engine, E.on_valid_begin)
    yield from _batches(ctx, engine, ctx.valid_data, E.on_valid_batch_begin, _valid_batch)
    yield from fire(engine, E.on_valid_end)


def evaluate_loop(ctx: Context, engine: Engine) -> Loop:
    """The validation loop alone, as epoch 1 (luz's ``evaluate``)."""
    engine.control = NO_CONTROL
    ctx.model.eval()
    ctx.training = False
    ctx.epoch = 1
    yield from _validate(ctx, engine)


def _batches(
    ctx: Context,
    engine: Engine,
    loader: Iterable[Any],
    first: Event,
    one: Callable[[Context, Engine], Loop],
) -> Loop:
    """Run ``one(ctx, engine)`` for each batch of ``loader``; a failing loader yields a fault.

    A retry loads the failed batch again where the loader allows it (see
    :func:`~luzwidget.core.data.epoch_batches`); a skip goes on with the next batch.
    """
    it, replay, limit = epoch_batches(loader)
    i = ctx.iter = 0
    skipped: list[int] = []  # where Metrics counts batches (a NaN loss's batch)
    engine.skipped = skipped
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except Exception as exc:
            fault = _data_fault(ctx, exc, first, i + 1, limit)
            engine.apply_handlers(fault)
            yield fault
            if replay is not None and fault.action == "retry":
                replay.again = True
            continue
        i += 1
        put = engine.putter()
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
            yield from one(ctx, engine)
        except SkipBatch:
            skipped.append(i)
            zero_grads(ctx)


def _data_fault(ctx: Context, exc: Exception, first: Event, batch: int, limit: str) -> Fault:
    detail = ""
    if limit:
        detail = f"run.retry() cannot load this batch again ({limit}); it goes on with the next."
    err = StepError("loading the next batch", first, exc, ctx.epoch, batch, detail)
    err.__cause__ = exc
    return Fault(err, exc, first, "data")


# -- one batch -------------------------------------------------------------------------
#
# The training step is the hot path (once per batch and optimizer), so it reads and writes
# the context's values through the engine: ``tv[name]`` is ``ctx.name``, and
# ``put(name, value)`` is ``ctx.name = value`` (a plain store unless that field is
# observed; see Engine.putter). The putter is fetched again after an event that may have
# run callbacks, before the next stores. Together this keeps the loop's own cost to a few
# microseconds per batch.


def _train_batch(ctx: Context, engine: Engine) -> Loop:
    tv = engine.values
    yield from fire(engine, E.on_train_batch_begin)
    if tv["step"] is not None:
        rng = rng_state(tv["device"])
        yield from _guarded(engine, _custom_step, (ctx, engine, True), rng, E.on_train_batch_end)
    else:
        optimizers = tv["optimizers"]
        several = len(optimizers) > 1
        if several:
            ctx.loss = {}
        for name, opt in optimizers.items():
            put = engine.putter()
            put("opt_nm", name)
            put("opt", opt)
            # The RNG state (~1.5 µs), so that a redo draws the same dropout masks.
            rng = rng_state(tv["device"])
            yield from _guarded(
                engine, _train_step, (ctx, engine, name if several else None, opt), rng
            )
            yield from fire(engine, E.on_train_batch_after_step)
    yield from fire(engine, E.on_train_batch_end)


def _train_step(ctx: Context, engine: Engine, name: str | None, opt: torch.optim.Optimizer) -> Loop:
    """luz's default step for one optimizer, up to and including ``step_opt(opt)``."""
    flags, tv = engine.flags, engine.values
    put = engine.putter()
    flags.stage = "forward"
    flags.in_user_code = True
    pred = tv["model"](tv["input"]) if tv["autocast"] is None else _forward(ctx)
    flags.in_user_code = False
    put("pred", pred)
    yield from fire(engine, E.on_train_batch_after_pred)
    put = engine.putter()
    flags.stage = "loss"
    flags.in_user_code = True
    if flags.check_target:  # the first training batch of a fit only: a flag, no per-batch cost
        flags.check_target = False  # once: a retry or skip after it goes on unchecked
        check_target_shape(tv["loss_fn"], pred, tv["target"])
    loss = _loss(tv, pred)
    flags.in_user_code = False
    put("loss_grad", loss)
    put("loss", loss.detach() if name is None else {**tv["loss"], name: loss.detach()})
    yield from fire(engine, E.on_train_batch_after_loss)
    yield from fire(engine, E.on_train_batch_before_backward)
    flags.stage = "backward"
    for each in tv["optimizers"].values():  # every optimizer's: luz zeroed only opt's
        each.zero_grad()
    flags.in_user_code = True
    tv["backward"](tv["loss_grad"])
    flags.in_user_code = False
    yield from fire(engine, E.on_train_batch_before_step)
    flags.stage = "step"  # not user code: an optimizer step is never cut in half
    tv["step_opt"](opt)


def _valid_batch(ctx: Context, engine: Engine) -> Loop:
    yield from fire(engine, E.on_valid_batch_begin)
    if ctx.step is not None:
        yield from _guarded(engine, _custom_step, (ctx, engine, False), None, E.on_valid_batch_end)
    else:
        optimizers = ctx.optimizers or {None: None}
        several = len(optimizers) > 1
        if several:
            ctx.loss = {}
        for name, opt in optimizers.items():
            ctx.opt_nm = name
            ctx.opt = opt
            yield from _guarded(engine, _valid_step, (ctx, engine, name if several else None), None)
    yield from fire(engine, E.on_valid_batch_end)


def _valid_step(ctx: Context, engine: Engine, name: str | None) -> Loop:
    flags = engine.flags
    flags.stage = "forward"
    flags.in_user_code = True
    with torch.no_grad():
        pred = _forward(ctx)
    flags.in_user_code = False
    ctx.pred = pred
    yield from fire(engine, E.on_valid_batch_after_pred)
    flags.stage = "loss"
    flags.in_user_code = True
    with torch.no_grad():
        loss = _loss(engine.values, pred)
    flags.in_user_code = False
    ctx.loss_grad = loss
    _set_loss(ctx, name, loss)
    yield from fire(engine, E.on_valid_batch_after_loss)


def _custom_step(ctx: Context, engine: Engine, training: bool) -> Loop:
    """The module's own ``step()``: one call; a fault redoes the whole step."""
    flags = engine.flags
    flags.stage = "custom"
    flags.in_user_code = True
    with torch.set_grad_enabled(training):
        ctx.step()
    flags.in_user_code = False
    yield from ()


# -- prediction ------------------------------------------------------------------------


def predict_loop(
    ctx: Context, engine: Engine, predict: Callable[[Any], Any], out: list[Any]
) -> Loop:
    """Call ``predict(input)`` on each batch of ``ctx.data`` under no_grad; append to ``out``."""
    engine.control = NO_CONTROL
    ctx.model.eval()
    ctx.training = False
    yield from fire(engine, E.on_predict_begin)
    yield from _batches(
        ctx, engine, ctx.data, E.on_predict_batch_begin, lambda c, e: _predict(c, e, predict, out)
    )
    yield from fire(engine, E.on_predict_end)


def _predict(ctx: Context, engine: Engine, predict: Callable[[Any], Any], out: list[Any]) -> Loop:
    yield from fire(engine, E.on_predict_batch_begin)
    yield from _guarded(
        engine, _predict_step, (ctx, engine, predict, out), None, E.on_predict_batch_end
    )
    yield from fire(engine, E.on_predict_batch_end)


def _predict_step(
    ctx: Context, engine: Engine, predict: Callable[[Any], Any], out: list[Any]
) -> Loop:
    flags = engine.flags
    flags.stage = "predict"
    flags.in_user_code = True
    with torch.no_grad():
        pred = predict(ctx.input)
    flags.in_user_code = False
    ctx.pred = pred
    out.append(pred)
    yield from ()


# -- helpers ---------------------------------------------------------------------------


def _forward(ctx: Context) -> Any:
    autocast = ctx.autocast
    if autocast is None:
        return ctx.model(ctx.input)
    with autocast():
        return ctx.model(ctx.input)


def _loss(tv: dict[str, Any], pred: Any) -> torch.Tensor:
    """``loss_fn(pred, target)``, checked; ``tv`` is the context's values (Engine.values)."""
    target, autocast = tv["target"], tv["autocast"]
    if autocast is None:
        loss = tv["loss_fn"](pred, target)
    else:
        with autocast():
            loss = tv["loss_fn"](pred, target)
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
