"""One batch, as generators: luz's default training step, validation, a module's own
``step(ctx)``, prediction.

The training step is the hot path (once per batch and optimizer), so it reads and writes
the context's values through the engine: ``tv[name]`` is ``ctx.name``, and
``put(name, value)`` is ``ctx.name = value`` (a plain store unless that field is
observed; see Engine.putter). The putter is fetched again after an event that may have
run callbacks, before the next stores. Together this keeps the loop's own cost to a few
microseconds per batch. A plain tensor input calls the model inline; any other structure
goes through :func:`~luzwidget.core.batches.call` (the call rule).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import torch

from luzwidget.core.batches import call, call_error, left_out, output_loss, prediction
from luzwidget.core.checks import checked_loss
from luzwidget.core.context import Context
from luzwidget.core.engine import Engine, rng_state
from luzwidget.core.events import Event
from luzwidget.core.firing import Loop, fire, guarded
from luzwidget.core.pieces import step_call
from luzwidget.core.report import report

__all__ = ["predict_batch", "train_batch", "valid_batch", "zero_grads"]

E = Event
Tensor = torch.Tensor


def train_batch(ctx: Context, engine: Engine) -> Loop:
    """One training batch: the module's own step, or luz's step per optimizer."""
    tv = engine.values
    accum = engine.accum
    if accum is not None:
        accum.plan(tv["iter"])
    yield from fire(engine, E.on_train_batch_begin)
    if tv["step"] is not None:
        rng = rng_state(tv["device"])
        yield from guarded(engine, _custom_step, (ctx, engine, True), rng, E.on_train_batch_end)
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
            yield from guarded(
                engine, _train_step, (ctx, engine, name if several else None, opt), rng
            )
            if accum is None or accum.steps:  # no step, no after_step (accumulation)
                yield from fire(engine, E.on_train_batch_after_step)
    yield from fire(engine, E.on_train_batch_end)


def _train_step(ctx: Context, engine: Engine, name: str | None, opt: torch.optim.Optimizer) -> Loop:
    """luz's default step for one optimizer, up to and including ``step_opt(opt)``."""
    flags, tv = engine.flags, engine.values
    put = engine.putter()
    flags.stage = "forward"
    flags.in_user_code = True
    x = tv["input"]
    try:
        if type(x) is Tensor and tv["autocast"] is None:
            pred = tv["model"](x)
        else:
            pred = _forward(engine, tv["model"], x, flags.check_target)
    except TypeError as exc:
        _explain(tv["model"], x, exc)
    flags.in_user_code = False
    put("pred", pred)
    yield from fire(engine, E.on_train_batch_after_pred)
    put = engine.putter()
    flags.stage = "loss"
    flags.in_user_code = True
    check = flags.check_target  # a loader's first batch: a flag, no per-batch cost
    if check:
        flags.check_target = False  # once per pass: a retry or skip after it goes on unchecked
    loss = _loss(tv, pred, check)
    flags.in_user_code = False
    put("loss_grad", loss)
    put("loss", loss.detach() if name is None else {**tv["loss"], name: loss.detach()})
    yield from fire(engine, E.on_train_batch_after_loss)
    yield from fire(engine, E.on_train_batch_before_backward)
    flags.stage = "backward"
    for each in tv["optimizers"].values():  # every optimizer's: luz zeroed only opt's
        each.zero_grad()
    accum = engine.accum
    flags.in_user_code = True
    if accum is None:
        tv["backward"](tv["loss_grad"])
    else:
        if accum.steps:
            accum.restore(opt)  # the group's gradients, which this backward adds to
        tv["backward"](tv["loss_grad"] / accum.size)
    flags.in_user_code = False
    if accum is not None and not accum.steps:
        accum.keep(opt)
        return
    yield from fire(engine, E.on_train_batch_before_step)
    flags.stage = "step"  # not user code: an optimizer step is never cut in half
    tv["step_opt"](opt)


def valid_batch(ctx: Context, engine: Engine) -> Loop:
    """One validation batch: the module's own step, or the forward and loss per optimizer."""
    yield from fire(engine, E.on_valid_batch_begin)
    if ctx.step is not None:
        yield from guarded(engine, _custom_step, (ctx, engine, False), None, E.on_valid_batch_end)
    else:
        optimizers = ctx.optimizers or {None: None}
        several = len(optimizers) > 1
        if several:
            ctx.loss = {}
        for name, opt in optimizers.items():
            ctx.opt_nm = name
            ctx.opt = opt
            yield from guarded(engine, _valid_step, (ctx, engine, name if several else None), None)
    yield from fire(engine, E.on_valid_batch_end)


def _valid_step(ctx: Context, engine: Engine, name: str | None) -> Loop:
    flags, tv = engine.flags, engine.values
    flags.stage = "forward"
    flags.in_user_code = True
    x = tv["input"]
    with torch.no_grad():
        try:
            pred = _forward(engine, tv["model"], x, flags.check_target)
        except TypeError as exc:
            _explain(tv["model"], x, exc)
    flags.in_user_code = False
    ctx.pred = pred
    yield from fire(engine, E.on_valid_batch_after_pred)
    flags.stage = "loss"
    flags.in_user_code = True
    check = flags.check_target
    flags.check_target = False
    with torch.no_grad():
        loss = _loss(tv, pred, check)
    flags.in_user_code = False
    ctx.loss_grad = loss
    ctx.loss = loss if name is None else {**ctx.loss, name: loss}
    yield from fire(engine, E.on_valid_batch_after_loss)


def _custom_step(ctx: Context, engine: Engine, training: bool) -> Loop:
    """The module's own ``step()``: one call; a fault redoes the whole step. While
    training it gets the pieces of the default step (:mod:`luzwidget.core.pieces`)."""
    flags = engine.flags
    flags.stage = "custom"
    flags.in_user_code = True
    with torch.set_grad_enabled(training):
        step_call(engine, training, ctx.step)
    flags.in_user_code = False
    yield from ()


# -- prediction ------------------------------------------------------------------------


def predict_batch(
    ctx: Context, engine: Engine, predict: Callable[..., Any], out: list[Any]
) -> Loop:
    """One prediction batch: ``predict`` called with the input (the call rule), under
    no_grad; its prediction (a ``ModelOutput``'s logits) appended to ``out``."""
    yield from fire(engine, E.on_predict_batch_begin)
    yield from guarded(
        engine, _predict_step, (ctx, engine, predict, out), None, E.on_predict_batch_end
    )
    yield from fire(engine, E.on_predict_batch_end)


def _predict_step(
    ctx: Context, engine: Engine, predict: Callable[..., Any], out: list[Any]
) -> Loop:
    flags = engine.flags
    flags.stage = "predict"
    flags.in_user_code = True
    x = ctx.input
    if flags.check_target:
        flags.check_target = False
        _say_left_out(engine, predict, x)
    with torch.no_grad():
        try:
            pred = call(predict, x)
        except TypeError as exc:
            _explain(predict, x, exc)
    flags.in_user_code = False
    ctx.pred = pred
    out.append(prediction(pred))
    yield from ()


# -- helpers ---------------------------------------------------------------------------


def _forward(engine: Engine, model: Any, x: Any, first: bool = False) -> Any:
    """``model`` called with ``x`` by the call rule, under the run's autocast; on a
    loader's ``first`` batch, the keys of a dict input that ``forward`` does not take
    are named (once a run)."""
    if first:
        _say_left_out(engine, model, x)
    autocast = engine.values["autocast"]
    if autocast is None:
        return call(model, x)
    with autocast():
        return call(model, x)


def _loss(tv: dict[str, Any], pred: Any, check: bool) -> torch.Tensor:
    """``loss_fn(pred, target)``, checked; ``tv`` is the context's values (Engine.values).

    The loss sees a ``ModelOutput``'s logits, unless it is the model's own loss. With
    ``check`` (a loader's first batch), a broadcast of pred against target is refused.
    """
    target, autocast, loss_fn = tv["target"], tv["autocast"], tv["loss_fn"]
    if type(pred) is not Tensor and loss_fn is not output_loss:
        pred = prediction(pred)
    if check and loss_fn is not output_loss:
        if autocast is None:
            loss = checked_loss(loss_fn, pred, target)
        else:
            with autocast():
                loss = checked_loss(loss_fn, pred, target)
    elif autocast is None:
        loss = loss_fn(pred, target)
    else:
        with autocast():
            loss = loss_fn(pred, target)
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(
            f"the loss must be a scalar tensor, but loss_fn returned {shape}. Reduce it "
            "(e.g. reduction='mean', or .mean()) so that backward() has one number to follow."
        )
    return loss


def _say_left_out(engine: Engine, fn: Any, x: Any) -> None:
    if isinstance(x, Mapping):
        text = left_out(fn, x)
        if text and text not in engine.told:
            engine.told.add(text)
            report(text)


def _explain(fn: Any, x: Any, exc: TypeError) -> NoReturn:
    """Raise ``exc``, or, if the call itself did not fit ``fn``'s signature, the
    TypeError naming both and the fix (:func:`~luzwidget.core.batches.call_error`)."""
    explained = call_error(fn, x, exc)
    if explained is None:
        raise exc
    raise explained from exc


def zero_grads(ctx: Context) -> None:
    """Zero the gradients of every optimizer (luz zeroed only the current one's)."""
    for opt in ctx.optimizers.values():
        opt.zero_grad()
