"""What a module's own ``step(ctx)`` calls so that the built-ins still act inside it.

While a custom step trains, ``ctx.backward``, ``ctx.step_opt`` and ``ctx.autocast`` are
the pieces of the default step, with everything that hooks into them:

* ``ctx.backward(loss)`` fires ``on_train_batch_before_backward``, divides the loss by the
  accumulation group's size and calls the run's backward (``MixedPrecision`` scales there);
* ``ctx.step_opt(opt)`` sets ``ctx.opt``/``ctx.opt_nm``, fires
  ``on_train_batch_before_step`` (``GradientClip`` clips there), steps (through the
  gradient scaler with ``MixedPrecision``), fires ``on_train_batch_after_step``; with
  accumulation it steps only at a group's last batch and keeps the gradients otherwise;
* ``with ctx.autocast():`` enters the run's autocast (``MixedPrecision``), or nothing.

The inner events' callbacks run inside the step (the run cannot pause there). Where a
built-in is active and the step goes around a piece (``opt.step()`` directly, a backward
that did not go through ``ctx.backward``, the model run outside ``ctx.autocast()`` with
``MixedPrecision``), the step is refused before the optimizer moves, naming what to call.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from luzwidget.core.events import Event

if TYPE_CHECKING:
    from luzwidget.core.engine import Engine

__all__ = [
    "Pieces",
    "PiecesError",
    "default_backward",
    "default_step_opt",
    "pieces_of",
    "step_call",
]

# The defaults, as callables that add no Python frame per batch: Tensor.backward(loss) is
# loss.backward(), and methodcaller("step")(opt) is opt.step().
default_backward = torch.Tensor.backward
default_step_opt = operator.methodcaller("step")

E = Event
_INNER = (
    E.on_train_batch_before_backward,
    E.on_train_batch_before_step,
    E.on_train_batch_after_step,
)


class PiecesError(RuntimeError):
    """A custom step went around a piece that an active built-in needs."""


class Pieces:
    """The pieces of one run's custom training step; :meth:`enter` / :meth:`leave` put
    them in ``ctx`` around each call of ``step(ctx)``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.real: tuple[Any, Any, Any] = (None, None, None)
        self.active = False  # inside a custom training step
        self.stepping = False  # inside the real step_opt: opt.step() is ours
        self.backwarded = False  # a backward went through ctx.backward in this step
        self.autocast_entered = False
        self.guard = False  # a built-in needs the pieces: refuse going around them
        self.hooked: dict[int, Any] = {}  # id(opt) -> the step pre-hook's handle

    def enter(self) -> None:
        """Put the pieces in the context for one custom training step."""
        values = self.engine.values
        self.real = (values["backward"], values["step_opt"], values["autocast"])
        self.guard = self._needed()
        if self.guard:
            self._hook_optimizers()
        values["backward"], values["step_opt"] = self.backward, self.step_opt
        values["autocast"] = self.autocast
        self.active, self.backwarded, self.autocast_entered = True, False, False  # per call

    def leave(self) -> None:
        """Give the context its own backward, step_opt and autocast back."""
        values = self.engine.values
        values["backward"], values["step_opt"], values["autocast"] = self.real
        self.active = False

    def close(self) -> None:
        """Remove the optimizers' hooks (the fit ended)."""
        for handle in self.hooked.values():
            handle.remove()
        self.hooked.clear()

    # -- the pieces ----------------------------------------------------------------------
    def backward(self, loss: torch.Tensor) -> None:
        """``ctx.backward(loss)`` inside a custom step."""
        engine = self.engine
        engine.putter()("loss_grad", loss)
        if engine.table[E.on_train_batch_before_backward]:
            engine.call(E.on_train_batch_before_backward)
        accum = engine.accum
        self.real[0](loss if accum is None else loss / accum.size)
        self.backwarded = True

    def step_opt(self, opt: torch.optim.Optimizer) -> None:
        """``ctx.step_opt(opt)`` inside a custom step."""
        engine, ctx = self.engine, self.engine.ctx
        self._check_went_through()
        name = next((n for n, o in ctx.optimizers.items() if o is opt), None)
        put = engine.putter()
        put("opt", opt)
        put("opt_nm", name)
        accum = engine.accum
        if accum is not None:
            if not accum.steps:
                accum.keep(opt)
                return
            accum.add_into(opt)
        if engine.table[E.on_train_batch_before_step]:
            engine.call(E.on_train_batch_before_step)
        self.stepping = True
        try:
            self.real[1](opt)
        finally:
            self.stepping = False
        if engine.table[E.on_train_batch_after_step]:
            engine.call(E.on_train_batch_after_step)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """``ctx.autocast()`` inside a custom step: the run's autocast, or nothing."""
        self.autocast_entered = True
        make = self.real[2]
        return contextlib.nullcontext() if make is None else make()

    # -- going around them ---------------------------------------------------------------
    def _needed(self) -> bool:
        engine, (backward, step_opt, autocast) = self.engine, self.real
        return (
            engine.accum is not None
            or bool(self._acting())
            or not _is_default(backward, default_backward)
            or not _is_default(step_opt, default_step_opt)
            or autocast is not None
        )

    def _hook_optimizers(self) -> None:
        for opt in self.engine.ctx.optimizers.values():
            if id(opt) not in self.hooked:
                self.hooked[id(opt)] = opt.register_step_pre_hook(self._pre_step)

    def _pre_step(self, opt: Any, args: Any, kwargs: Any) -> None:
        if self.active and self.guard and not self.stepping:
            raise PiecesError(
                f"the module's step() called {type(opt).__name__}.step() directly, so "
                f"{self._who()} cannot act. In step(), call ctx.backward(loss) and "
                "ctx.step_opt(opt) instead of loss.backward() and opt.step()."
            )

    def _check_went_through(self) -> None:
        if not self.guard:
            return
        if not self.backwarded:
            raise PiecesError(
                "the module's step() called ctx.step_opt(opt) after a backward that did not "
                f"go through ctx.backward(loss), so {self._who()} cannot act. Call "
                "ctx.backward(loss) instead of loss.backward()."
            )
        if self.real[2] is not None and not self.autocast_entered:
            raise PiecesError(
                "mixed precision is on, but the module's step() ran the model outside "
                "`with ctx.autocast():`. Compute the prediction and the loss inside it."
            )

    def _acting(self) -> list[str]:
        """The callbacks at the inner events that change the step (``acts_on_step``)."""
        table = self.engine.table
        owners = [getattr(fn, "__self__", fn) for e in _INNER for fn in table[e]]
        return [type(cb).__name__ for cb in owners if getattr(cb, "acts_on_step", False)]

    def _who(self) -> str:
        engine = self.engine
        names = self._acting()
        if engine.accum is not None:
            names.append(f"accumulate={engine.accum.k}")
        backward, step_opt = self.real[0], self.real[1]
        if not _is_default(step_opt, default_step_opt) or not _is_default(
            backward, default_backward
        ):
            names.append("the run's own backward/step_opt (e.g. MixedPrecision)")
        return ", ".join(dict.fromkeys(names)) or "the built-ins"


def _is_default(fn: Any, default: Any) -> bool:
    """``fn`` is ``default``, or a copy of it (a branch deep-copies the context's fields)."""
    return fn is default or (type(fn) is type(default) and repr(fn) == repr(default))


def step_call(engine: Engine, training: bool, step: Callable[[], Any]) -> None:
    """Call a custom ``step()`` with the pieces in place while training."""
    if not training:  # validation: only `with ctx.autocast():` has a meaning
        values = engine.values
        saved = values["autocast"]
        values["autocast"] = saved or contextlib.nullcontext
        try:
            step()
        finally:
            values["autocast"] = saved
        return
    pieces = pieces_of(engine)
    pieces.enter()
    try:
        step()
    finally:
        pieces.leave()


def pieces_of(engine: Engine) -> Pieces:
    """The pieces of ``engine``'s run, made on first use."""
    pieces = engine.pieces
    if pieces is None:
        pieces = engine.pieces = Pieces(engine)
    return pieces
