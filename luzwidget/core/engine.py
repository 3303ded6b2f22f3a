"""The engine under a context: who runs at each event, faults, handlers, RNG rewind, flags.

The :class:`~luzwidget.core.context.Context` holds the data; an :class:`Engine` drives it. It
keeps the dispatch table (the callbacks' real ``on_*`` overrides, per event), calls them
(:meth:`Engine.dispatch`), applies luz's ``handlers`` / ``epoch_handlers``, turns an
exception of the step into a :class:`Fault` the loop yields (:meth:`Engine.step_fault`)
and holds the flags the loop and its driver share (:class:`LoopFlags`). It is the one
privileged reader of the context's trait storage, so the loop's hot path stays fast.

A fault never kills the loop: the generator yields a :class:`Fault` and waits for the
run to say ``"retry"`` or ``"skip"``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, final

import torch
from traitlets import All

from luzwidget.core.dispatch import build_dispatch_table
from luzwidget.core.events import Event
from luzwidget.core.exceptions import CallbackError, RunStateError, StepError, StopEpoch, StopFit
from luzwidget.core.faults import WHAT, Control, describe_io, misplaced, no_graph_hint, nth_batch
from luzwidget.core.flags import LoopFlags
from luzwidget.core.report import report
from luzwidget.core.traits import Live

if TYPE_CHECKING:
    from luzwidget.core.accumulate import Accumulation
    from luzwidget.core.context import Context
    from luzwidget.core.indices import BatchSource
    from luzwidget.core.pieces import Pieces

__all__ = [
    "EPOCH_EVENTS",
    "FIT_CONTROL",
    "LOOP_ORDER",
    "NO_CONTROL",
    "PASS_THROUGH",
    "Engine",
    "Fault",
    "SkipBatch",
    "engine_of",
    "rng_state",
    "set_rng_state",
]

E = Event
EPOCH_EVENTS = frozenset(e for e in Event if e.in_epoch)
"""The events inside an epoch: where ``epoch_handlers`` apply."""

_ENDING = (E.on_early_stopping, E.on_interrupt, E.on_fit_end)
_PREDICT = tuple(e for e in Event if e.is_predict)
LOOP_ORDER = (*(e for e in Event if e not in _ENDING and e not in _PREDICT), *_ENDING, *_PREDICT)
"""Every event in the order the loops fire them (fit, then predict)."""


class SkipBatch(Exception):  # noqa: N818  (a signal, not an error)
    """Abandon the current batch (its gradients are discarded) and go on with the next."""


PASS_THROUGH = (StopFit, StopEpoch, GeneratorExit, SkipBatch)
"""Control flow: what travels through callbacks and the step untouched, never a fault."""

FIT_CONTROL: Control = {
    StopFit: frozenset({E.on_fit_begin, *EPOCH_EVENTS}),
    StopEpoch: EPOCH_EVENTS - {E.on_epoch_end},
}
"""Where the fit loop gives ``StopFit`` and ``StopEpoch`` a meaning (``Engine.control``).

Raised by a callback anywhere else (``StopFit`` once the fit has ended, ``StopEpoch``
outside an epoch's body), they are a fault naming the callback and the event.
"""
NO_CONTROL: Control = {}
"""The evaluate and predict loops: neither ``StopFit`` nor ``StopEpoch`` means anything."""


@final  # the loop and the driver test `type(item) is Fault`
class Fault:
    """An exception the loop caught at an event boundary; the loop waits for a decision.

    The loop yields a ``Fault`` instead of an :class:`Event` and stays suspended, with the
    context intact, until the run sets :attr:`action` and calls ``next()`` again.

    Attributes
    ----------
    error : LuzwidgetError
        What went wrong, with the callback or stage, the event, the epoch and the batch.
    cause : BaseException
        The original exception (``error.__cause__``).
    event : Event
        The event being fired (callbacks) or about to fire (the step).
    stage : str
        ``"callback"``, ``"control"`` (a callback raised ``StopFit``/``StopEpoch`` where it
        means nothing), ``"forward"``, ``"loss"``, ``"backward"``, ``"step"``, ``"custom"``,
        ``"predict"`` or ``"data"``.
    action : str or None
        Set by the run: ``"retry"`` redoes the failed part, ``"skip"`` abandons the batch
        (or, outside a batch, the rest of the event's callbacks).
    """

    __slots__ = ("action", "cause", "done", "error", "event", "stage")

    def __init__(
        self,
        error: BaseException,
        cause: BaseException,
        event: Event,
        stage: str = "callback",
        done: frozenset[Any] = frozenset(),
    ) -> None:
        self.error, self.cause, self.event, self.stage = error, cause, event, stage
        self.done = done
        self.action: str | None = None

    @property
    def interrupted(self) -> bool:
        """True if the user interrupted (Ctrl-C) rather than an error happening."""
        return isinstance(self.cause, KeyboardInterrupt)

    def __repr__(self) -> str:
        return f"<Fault {self.stage} at {self.event}: {type(self.cause).__name__}>"


class Engine:
    """Dispatch, faults and flags for one context; build it with :func:`engine_of`.

    Attributes
    ----------
    ctx : Context
        The context driven.
    values : dict
        The context's trait storage: ``values[name]`` is ``ctx.name`` (read it on the hot path).
    table : dict
        For each event, the callbacks' bound methods to call, in order.
    flags : LoopFlags
        Shared with the driver.
    on_pause : callable or None
        ``on_pause(reason)``: set by the run driving this context; ``ctx.pause()`` calls it.
    control : dict
        For ``StopFit`` and ``StopEpoch``, the events where the running loop gives them a
        meaning (:data:`FIT_CONTROL`, or :data:`NO_CONTROL` in evaluate and predict).
    on_nonfinite : callable or None
        ``on_nonfinite(reason)``: set by the run; called when a loop's loss was not finite
        (it pauses there if ``run.breakpoints.nonfinite_loss`` is on).
    skipped : list of int
        The batches of the current pass over the data that were skipped (``run.skip()``).
    told_nonfinite : bool
        Whether this fit has reported a non-finite loss already (it is said once).
    accum : Accumulation or None
        The gradient accumulation of the training pass under way (None: a step per batch,
        and outside training); see :mod:`luzwidget.core.accumulate`.
    source : BatchSource or None
        Where the batches of the pass under way come from (its dataset and the iterator
        state that knows the current batch's indices; see :mod:`luzwidget.core.indices`).
    """

    __slots__ = (
        "accum",
        "control",
        "ctx",
        "flags",
        "live",
        "on_nonfinite",
        "on_pause",
        "pieces",
        "rebatch",
        "skipped",
        "source",
        "table",
        "told",
        "told_nonfinite",
        "values",
    )

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.values: dict[str, Any] = ctx._trait_values
        self.table: dict[Event, tuple[Callable[[Context], Any], ...]] = {}
        self.set_callbacks(ctx.callbacks)
        self.flags = LoopFlags()
        self.live = frozenset(n for n, t in type(ctx).class_traits().items() if isinstance(t, Live))
        self.on_pause: Callable[[str], None] | None = None
        self.control = FIT_CONTROL
        self.on_nonfinite: Callable[[str], None] | None = None
        self.skipped: list[int] = []
        self.told_nonfinite = False
        self.told: set[str] = set()  # notes said once per run (e.g. a dict batch's keys left out)
        self.accum: Accumulation | None = None
        self.pieces: Pieces | None = None  # a custom step's pieces (core.pieces), on first use
        self.source: BatchSource | None = None  # the pass's batches (ctx.indices reads it)
        self.rebatch: int | None = None  # a batch size for the next epoch (core.rebatch)
        ctx._engine = self

    def set_callbacks(self, callbacks: list[Any]) -> None:
        """Rebuild the table for ``callbacks`` (in place: a running loop holds it)."""
        self.table.update(build_dispatch_table(callbacks))

    def putter(self) -> Callable[[str, Any], None]:
        """How the loop stores per-batch fields: straight into the trait values (a C call,
        ~10x cheaper than an attribute) unless one of them is observed, then by setattr.

        Fetch it again after an event ran callbacks: one may have started observing.
        """
        notifiers = self.ctx._trait_notifiers
        if notifiers and (All in notifiers or not self.live.isdisjoint(notifiers)):
            return self.ctx.__setattr__
        return self.values.__setitem__

    # -- callbacks -----------------------------------------------------------------------
    def dispatch(
        self, event: Event, done: frozenset[Any] | None = None, checked: bool = True
    ) -> Fault | None:
        """Call the callbacks of ``event`` (skipping those in ``done``); return a fault.

        Control flow (:data:`PASS_THROUGH`) propagates where the loop gives it a meaning
        (:attr:`control`); anything else, Ctrl-C and misplaced control flow included, is
        returned as a :class:`Fault` whose ``done`` holds the callbacks that already ran,
        so a retry calls only the failed one and those after it. ``checked=False`` lets all
        control flow through (``ctx.call_callbacks``: the caller gives it its meaning).
        """
        fns = self.table[event]
        if not fns:
            return None
        ctx, flags = self.ctx, self.flags
        interruptible = flags.in_user_code
        grad = torch.is_grad_enabled()
        i = 0  # index of the callback being called
        try:
            flags.in_user_code = True
            # The context manager torch.no_grad() costs ~1.5 µs; the flag itself ~0.2 µs.
            torch._C._set_grad_enabled(False)
            if done is None:
                for fn in fns:
                    fn(ctx)
                    i += 1
            else:
                for fn in fns:
                    if fn not in done:
                        fn(ctx)
                    i += 1
        except PASS_THROUGH as exc:
            if not checked or self._meaningful(exc, event):
                raise
            return self._callback_fault(fns, i, event, exc, misplaced(exc, event, self.control))
        except BaseException as exc:
            return self._callback_fault(fns, i, event, exc)
        finally:
            torch._C._set_grad_enabled(grad)
            flags.in_user_code = interruptible
        return None

    def _meaningful(self, exc: BaseException, event: Event) -> bool:
        """Whether control flow ``exc`` raised at ``event`` means something to the loop."""
        for kind, events in self.control.items():
            if isinstance(exc, kind):
                return event in events
        return not isinstance(exc, StopFit | StopEpoch)  # GeneratorExit, SkipBatch

    def _callback_fault(
        self,
        fns: tuple[Callable[[Context], Any], ...],
        i: int,
        event: Event,
        exc: BaseException,
        note: str = "",
    ) -> Fault:
        cb = getattr(fns[i], "__self__", fns[i])
        ctx = self.ctx
        err = CallbackError(cb, event, exc, ctx.epoch, ctx.iter or 0, note)
        err.__cause__ = exc
        stage = "control" if note else "callback"
        return Fault(err, exc, event, stage, frozenset(fns[:i]))

    def call(self, event: Event) -> None:
        """Call the callbacks of ``event`` now, raising what fails (``ctx.call_callbacks``)."""
        fault = self.dispatch(event, checked=False)
        if fault is not None:
            raise fault.error from fault.cause

    def pause(self, reason: str) -> None:
        """Ask the run driving this context to pause at the next event boundary."""
        if self.on_pause is None:
            raise RunStateError(
                "ctx.pause() needs a Run; this context is not driven by one. Call it from a "
                "callback of a run (setup(...).run(...)), or call run.pause() on the run."
            )
        self.on_pause(reason)

    def nonfinite_loss(self, mode: str, position: int, value: Any) -> None:
        """The loss average of ``mode`` ("train" or "valid") is not finite; the first bad
        batch loss was the ``position``-th (0-based) to reach the batch's end. Say so once
        per fit, naming epoch and batch, and tell the run (which may pause here)."""
        batch = nth_batch(position, self.skipped)
        what = "training" if mode == "train" else "validation"
        reason = (
            f"the {what} loss became {value} at epoch {self.ctx.epoch}, batch {batch} (the "
            "first batch whose loss was not finite)"
        )
        if not self.told_nonfinite:
            self.told_nonfinite = True
            report(
                f"{reason}: the weights may be NaN now. Lower the learning rate, clip the "
                "gradients (GradientClip), or find where it comes from with "
                "run.breakpoints.nonfinite = True."
            )
        if self.on_nonfinite is not None:
            self.on_nonfinite(reason)

    def loop_text(self) -> str:
        """Each event in loop order, indented by nesting, with the callbacks run there."""
        lines = []
        for event in LOOP_ORDER:
            names = [type(getattr(fn, "__self__", fn)).__name__ for fn in self.table[event]]
            label = "  " * event.depth + event.value
            lines.append(f"{label:<38} {', '.join(names) or '-'}".rstrip())
        return "\n".join(lines)

    # -- faults --------------------------------------------------------------------------
    def apply_handlers(self, fault: Fault) -> None:
        """luz's handlers: an ``epoch_handlers`` match ends the epoch, ``handlers`` the fit."""
        ctx, exc = self.ctx, fault.cause
        if fault.interrupted or fault.stage == "control":  # a callback's bug, not the data's
            return
        if fault.event.in_epoch:
            for cls, handler in ctx.epoch_handlers.items():
                if isinstance(exc, cls):
                    handler(ctx, exc)
                    raise StopEpoch(f"{type(exc).__name__} handled by epoch_handlers") from exc
        for cls, handler in ctx.handlers.items():
            if isinstance(exc, cls):
                handler(ctx, exc)
                raise StopFit(f"{type(exc).__name__} handled by handlers") from exc

    def step_fault(
        self, stage: str, exc: BaseException, rng: Any, event: Event | None = None
    ) -> Generator[Fault, None, None]:
        """Yield a fault for ``exc`` raised in ``stage``; on return the step is redone cleanly.

        No optimizer step of this batch and optimizer has been applied yet, so redoing it
        from the forward pass (gradients zeroed, RNG rewound to ``rng``) applies each step
        once and draws the same random numbers: a retried run ends bit-identical to one
        that never failed.
        """
        ctx = self.ctx
        event = event or _NEXT_EVENT[ctx.training][stage]
        detail = describe_io(ctx, stage)
        if stage == "backward":
            detail += no_graph_hint(ctx.loss_grad)
        err = StepError(WHAT[stage], event, exc, ctx.epoch, ctx.iter or 0, detail)
        err.__cause__ = exc
        fault = Fault(err, exc, event, stage)
        self.apply_handlers(fault)
        yield fault
        for opt in ctx.optimizers.values():
            opt.zero_grad()
        if rng is not None:
            set_rng_state(rng)
        if fault.action == "skip":
            raise SkipBatch


def engine_of(ctx: Context) -> Engine:
    """The engine of ``ctx``, made on first use (every context has at most one)."""
    engine = ctx._engine
    return engine if engine is not None else Engine(ctx)


_NEXT_EVENT = {
    True: {
        "forward": E.on_train_batch_after_pred,
        "loss": E.on_train_batch_after_loss,
        "backward": E.on_train_batch_before_step,
        "step": E.on_train_batch_after_step,
    },
    False: {"forward": E.on_valid_batch_after_pred, "loss": E.on_valid_batch_after_loss},
}


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
