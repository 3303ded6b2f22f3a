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

import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from luzwidget.core.accumulate import Accumulation
from luzwidget.core.context import Context
from luzwidget.core.data import loader_len, split_batch
from luzwidget.core.engine import FIT_CONTROL, NO_CONTROL, Engine, Fault, SkipBatch
from luzwidget.core.epochs import epoch_batches
from luzwidget.core.events import Event
from luzwidget.core.exceptions import EarlyStop, StepError, StopEpoch, StopFit
from luzwidget.core.firing import Item, Loop, fire, guarded
from luzwidget.core.indices import source_of
from luzwidget.core.rebatch import apply_pending
from luzwidget.core.step import predict_batch, train_batch, valid_batch, zero_grads

__all__ = [
    "Inside",
    "Item",
    "Loop",
    "alive",
    "chain",
    "evaluate_loop",
    "fire",
    "fit_loop",
    "guarded",
    "interrupt_loop",
    "predict_loop",
    "zero_grads",
]

E = Event


# -- the fit ---------------------------------------------------------------------------


@dataclass
class Inside:
    """Where a fit restored inside an epoch's training pass goes on: after training batch
    ``iter`` of epoch ``ctx.epoch``, with the pass's ``batches`` iterator (advanced that
    far), its ``state`` (what a retry and ``ctx.indices`` use), the ``limit`` of a retry
    and the batches ``skipped`` so far (see :mod:`luzwidget.travel.resume`)."""

    batches: Iterator[Any]
    state: Any
    iter: int
    limit: str = ""
    skipped: list[int] = field(default_factory=list)


def fit_loop(
    ctx: Context, engine: Engine, begun: bool = False, inside: Inside | None = None
) -> Loop:
    """Train from ``ctx.epoch + 1`` to ``ctx.max_epochs``, validating after each epoch.

    ``begun``: the fit began already (``on_fit_begin`` ran), e.g. after a rewind to an
    epoch end; the loop goes on with the next epoch. ``inside``: it goes on inside epoch
    ``ctx.epoch``'s training pass, after the batch ``inside`` names (a direct restore).
    """
    engine.control = FIT_CONTROL
    if not begun:
        engine.told_nonfinite = False  # a NaN loss is reported once per fit (not per replay)
    try:
        if not begun:
            yield from fire(engine, E.on_fit_begin)
        while inside is not None or ctx.epoch < ctx.max_epochs:
            if inside is None:
                ctx.epoch += 1
                ctx.iter = 0  # as luz: reset before on_epoch_begin
            try:
                yield from _epoch(ctx, engine, inside)
            except EarlyStop:
                if ctx.epoch >= ctx.min_epochs:
                    raise
            inside = None
    except StopFit as stop:
        if isinstance(stop, EarlyStop):
            yield from fire(engine, E.on_early_stopping)
    yield from fire(engine, E.on_fit_end)
    if engine.pieces is not None:
        engine.pieces.close()  # a custom step's optimizer hooks


def interrupt_loop(ctx: Context, engine: Engine) -> Loop:
    """What ends a blocking fit the user interrupted (luz): ``on_interrupt``, ``on_fit_end``.

    Driven like any loop (faults, ``run.events``), while the interrupted fit stays
    suspended and can go on afterwards.
    """
    yield from fire(engine, E.on_interrupt)
    yield from fire(engine, E.on_fit_end)


def _epoch(ctx: Context, engine: Engine, inside: Inside | None = None) -> Loop:
    try:
        if inside is None and engine.rebatch is not None:
            apply_pending(ctx)  # a batch size edited since: the loader re-made
        ctx.data = ctx.train_data
        if inside is None:
            yield from fire(engine, E.on_epoch_begin)
            yield from fire(engine, E.on_train_begin)
        yield from _train(ctx, engine, inside)
        yield from fire(engine, E.on_train_end)
        if ctx.valid_data is not None:
            yield from _validate(ctx, engine)
    except StopEpoch:
        pass
    yield from fire(engine, E.on_epoch_end)


def _train(ctx: Context, engine: Engine, inside: Inside | None = None) -> Loop:
    """The training batches of an epoch, accumulated ``ctx.accumulate`` to a step."""
    k = ctx.accumulate
    if k > 1:
        custom = ctx.step is not None
        engine.accum = Accumulation(k, loader_len(ctx.train_data), ctx.model, custom)
    try:
        yield from _batches(
            ctx, engine, ctx.train_data, E.on_train_batch_begin, train_batch, inside
        )
        if engine.accum is not None:
            yield from _leftover(ctx, engine, engine.accum)
    finally:
        engine.accum = None


def _leftover(ctx: Context, engine: Engine, accum: Accumulation) -> Loop:
    """Step the last group of a loader without length, which no batch closed."""
    for opt in accum.leftover():
        ctx.opt, ctx.opt_nm = opt, next(n for n, o in ctx.optimizers.items() if o is opt)
        yield from fire(engine, E.on_train_batch_before_step)
        ctx.step_opt(opt)
        yield from fire(engine, E.on_train_batch_after_step)


def _validate(ctx: Context, engine: Engine) -> Loop:
    ctx.data = ctx.valid_data
    yield from fire(engine, E.on_valid_begin)
    yield from _batches(ctx, engine, ctx.valid_data, E.on_valid_batch_begin, valid_batch)
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
    inside: Inside | None = None,
) -> Loop:
    """Run ``one(ctx, engine)`` for each batch of ``loader``; a failing loader yields a fault.

    A retry loads the failed batch again where the loader allows it (see
    :func:`~luzwidget.core.data.epoch_batches`); a skip goes on with the next batch.
    ``inside``: the pass goes on after the batch it names, with its iterator.
    """
    it, replay, limit = _pass(ctx, engine, loader, inside)
    skipped = engine.skipped  # where Metrics counts batches (a NaN loss's batch)
    tv = engine.values
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except Exception as exc:
            if replay is not None:
                replay.failed = True  # ctx.indices: the batch delivered last is still current
            fault = _data_fault(ctx, exc, first, tv["iter"] + 1, limit)
            engine.apply_handlers(fault)
            yield fault
            if replay is not None and fault.action == "retry":
                replay.again = True
            continue
        i = tv["iter"] + 1  # a resumed loader may have set where the epoch goes on
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


def _pass(
    ctx: Context, engine: Engine, loader: Iterable[Any], inside: Inside | None
) -> tuple[Iterator[Any], Any, str]:
    """A pass's batch iterator, its retry state and limit: a new epoch of ``loader``, or
    the one ``inside`` goes on with; ``ctx.iter``, the skipped batches and the batch
    source (``ctx.indices``) set for it."""
    if inside is None:
        it, replay, limit = epoch_batches(loader)
        ctx.iter = 0
        engine.skipped = []
        engine.flags.check_target = True  # the first loss checks pred against target
    else:
        it, replay, limit = inside.batches, inside.state, inside.limit
        ctx.iter = inside.iter
        engine.skipped = list(inside.skipped)
        engine.flags.check_target = False  # checked at the pass's first batch already
    engine.source = source_of(loader, replay)
    return it, replay, limit


def _data_fault(ctx: Context, exc: Exception, first: Event, batch: int, limit: str) -> Fault:
    detail = ""
    if limit:
        detail = f"run.retry() cannot load this batch again ({limit}); it goes on with the next."
    err = StepError("loading the next batch", first, exc, ctx.epoch, batch, detail)
    err.__cause__ = exc
    return Fault(err, exc, first, "data")


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
        ctx,
        engine,
        ctx.data,
        E.on_predict_batch_begin,
        lambda c, e: predict_batch(c, e, predict, out),
    )
    yield from fire(engine, E.on_predict_end)


def chain(first: Loop, then: Loop | None) -> Loop:
    """``first``, then ``then`` (a suspended loop goes on where it was)."""
    yield from first
    if then is not None:
        yield from then


def alive(gen: Any) -> bool:
    """A loop that can still be driven: not started yet, or suspended at an event."""
    if gen is None:
        return False
    return inspect.getgeneratorstate(gen) in (inspect.GEN_CREATED, inspect.GEN_SUSPENDED)
