"""A run: the loop generator plus the controls to step, pause, resume, edit and stop it.

Every way of training drives the same generator (:mod:`luzwidget.core.loop`): ``fit()`` calls
:meth:`Run.resume` until the end, ``step()`` until a condition, and :meth:`Run.start`
does the same in a background thread so a notebook stays live. The driving itself is a
:class:`~luzwidget.control.driver.Driver` the run holds; commands from other
threads (a widget, another cell) are queued there and applied in order by the driving
thread at the next event boundary, never in the middle of a step. Edits are validated at
once in the caller's thread (a refused edit raises and changes nothing). Time travel and
insight are features the composition root installs (``run.features``); the members that
reach them live in :mod:`luzwidget.control.run_features`.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from luzwidget.control.breakpoints import Breakpoints
from luzwidget.control.driver import Driver
from luzwidget.control.edits import field_edit, lr_edit
from luzwidget.control.features import Features
from luzwidget.control.run_features import RunFeatures
from luzwidget.control.shown import Listener
from luzwidget.control.skip import SkipRestOfBatch
from luzwidget.core.context import MAX_EPOCHS, Context, check_callbacks
from luzwidget.core.engine import engine_of
from luzwidget.core.events import Event
from luzwidget.core.exceptions import ConfigError, RunStateError
from luzwidget.core.loop import Loop
from luzwidget.core.states import RunState, stop_condition
from luzwidget.core.values import quote

if TYPE_CHECKING:
    from luzwidget.widgets.dashboard import Dashboard

__all__ = ["Run", "RunState"]

T = TypeVar("T")


class _Driven(Generic[T]):
    """A run attribute that lives on its driver (read, and for ``breakpoints`` replaced)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, run: Run | None, owner: type | None = None) -> T:
        return getattr(run._driver, self.name)  # type: ignore[union-attr, no-any-return]  # read on runs; a T

    def __set__(self, run: Run, value: T) -> None:
        setattr(run._driver, self.name, value)


class Run(RunFeatures):
    """A training run that can be stepped, paused, resumed, edited and stopped.

    Create one with ``setup(...).run(data, ...)`` (same arguments as ``fit``); nothing
    runs until you ask.

    Attributes
    ----------
    ctx : Context
        Everything the loop knows, to inspect and (through the methods here) to edit.
    state : RunState
        ``"ready"``, ``"running"``, ``"paused"``, ``"error"`` or ``"done"`` (a
        :class:`~luzwidget.control.driver.RunState`, equal to those strings).
    error : Exception or None
        In state ``"error"``: what failed, naming the callback or stage, event, epoch, batch.
    event : Event or None
        The last event seen while stepping or paused (a free run does not hand its events
        over one by one); ``events`` holds the last 100 seen, ``n_events`` counts them.
    breakpoints : Breakpoints
        Events and conditions at which the run pauses by itself.
    result : object
        What the run produced once done (a ``Fitted`` for a fit).
    reason : str
        Why the run paused or stopped (a breakpoint, a step target, Ctrl-C, ...).
    interrupted : bool
        True when Ctrl-C caused the last pause.
    notice : str
        The last queued command that could not be applied at the boundary.
    features : Features
        What the composition root installed: time travel, insight, several processes,
        serving (see :mod:`luzwidget.control.features`).
    """

    state: _Driven[RunState] = _Driven()
    error: _Driven[BaseException | None] = _Driven()
    error_traceback: _Driven[str] = _Driven()
    reason: _Driven[str] = _Driven()
    interrupted: _Driven[bool] = _Driven()
    notice: _Driven[str] = _Driven()
    event: _Driven[Event | None] = _Driven()
    events: _Driven[deque[Event]] = _Driven()
    n_events: _Driven[int] = _Driven()
    result: _Driven[Any] = _Driven()

    def __init__(
        self,
        ctx: Context,
        make_loop: Callable[[Context], Loop],
        finish: Callable[[Run], Any] | None = None,
    ) -> None:
        self.ctx = ctx
        self.features = Features()
        self._driver = Driver(self, ctx, make_loop, finish, self.features)
        self._dashboards: dict[Any, Dashboard] = {}

    @property
    def breakpoints(self) -> Breakpoints:
        """Events and conditions at which the run pauses by itself."""
        return self._driver.breakpoints

    @breakpoints.setter
    def breakpoints(self, value: Breakpoints) -> None:
        if not isinstance(value, Breakpoints):
            raise ConfigError(f"breakpoints must be a Breakpoints, got {value!r}.")
        value.features = self.features  # its nonfinite check is this run's
        self._driver.breakpoints = value

    @classmethod
    def finished(cls, ctx: Context, finish: Callable[[Run], Any] | None = None) -> Run:
        """A run that is done already (a model loaded from a file): nothing to step, and
        ``result`` is ``finish(run)``."""
        run = cls(ctx, _no_loop, finish)
        run._driver.finished()
        return run

    # -- driving -----------------------------------------------------------------------
    def resume(self) -> None:
        """Run here (blocking) until done, paused or failed. Ctrl-C pauses cleanly.

        Like the other commands it returns None, so that a cell ending with it does not
        display the run (and its dashboard) again. A finished run goes on if ``max_epochs``
        allows more epochs (raised with :meth:`edit`, or after early stopping).
        """
        self._go_on_if_done()
        self._driver.drive_here(None)

    def step(self, what: Event | str | None = None, n: int | None = None) -> Event | None:
        """Run here until the next event, ``n`` batches or epochs, or a given event.

        Parameters
        ----------
        what
            ``"event"``: the next event (the default, unless only ``n`` is given).
            ``"batch"``: to the end of the next batch (training or validation).
            ``"epoch"``: to the end of the next epoch. An :class:`Event` (or its name): to
            the next time it fires.
        n
            How many of them (default 1). ``step(n=10)`` alone steps ten batches.

        Returns
        -------
        Event or None
            The event the run stopped after (None if it had nothing left to do).

        Examples
        --------
        >>> run.step()                                # one event
        >>> run.step(n=10)                            # ten batches
        >>> run.step("epoch")                         # to the end of the epoch
        >>> run.step(Event.on_train_batch_after_loss) # to the next loss
        """
        if what is None:
            what = "event" if n is None else "batch"
        until = stop_condition(what, 1 if n is None else n)
        self._go_on_if_done()
        self._driver.drive_here(until)
        return self.event

    def start(self, until: Event | str | None = None, n: int = 1) -> None:
        """Train in a background thread and return at once (a notebook stays live).

        ``start()`` runs to the end; ``start(until="batch")`` (or ``"epoch"``, an event)
        stops there, as :meth:`step` does. Use :meth:`pause`, :meth:`stop` or the
        dashboard to control it; the kernel's Interrupt button does not reach it. Called
        while the run trains, the start is queued behind what was asked before: after a
        :meth:`pause` it resumes, after a ``start(until=...)`` it steps again.
        """
        target = None if until is None else stop_condition(until, n)
        self._go_on_if_done()
        self._driver.start(target)

    def wait(self, timeout: float | None = None) -> RunState:
        """Wait for the background thread to pause or finish; return the state."""
        return self._driver.wait(timeout)

    def pause(self, reason: str = "paused") -> None:
        """Pause at the next event boundary (from any thread, a callback or a widget).

        A run that is not training has nothing to pause: the call does nothing.
        """
        self._driver.pause(reason)

    def stop(self) -> None:
        """End the run gracefully: ``on_fit_end`` runs and the result is kept."""
        self._driver.stop()

    def retry(self, background: bool | None = None) -> None:
        """After an error: redo what failed (once you fixed the cause) and go on.

        The run goes on the way it was driven when it failed (in the background after
        :meth:`start`, here after :meth:`resume`); ``background`` chooses explicitly.
        """
        self._resolve("retry", background)

    def skip(self, background: bool | None = None) -> None:
        """Abandon the current batch (its gradients discarded) and go on.

        After an error: the failed step is dropped. At a pause inside a batch, before its
        optimizer steps (a breakpoint, a NaN pause, a step): the rest of the batch does not
        run and its metrics are not updated. The run goes on as :meth:`retry` says.

        Raises
        ------
        RunStateError
            If the run is neither stopped on an error nor paused inside a batch.
        """
        if self.state == RunState.PAUSED and self.event is not None and self.event.mid_batch:
            self.add_callback(SkipRestOfBatch(self))
            self._go_on(background)
            return
        if self.state != RunState.ERROR:
            where = self.event.value if self.event is not None else "no event"
            raise RunStateError(
                f"skip() abandons a failed step, or a batch the run is paused inside (before "
                f"its optimizer step); the run is {self.state} after {where}. Step to a batch "
                "event first, or use stop()."
            )
        self._resolve("skip", background)

    def extend(self, epochs: int | None = None) -> None:
        """Make a finished run ready to train on (optimizer state kept); drive it again.

        ``epochs`` more epochs, or (None) up to ``max_epochs`` as raised since the end
        (``run.edit("max_epochs", n)``). ``resume()``, ``step()`` and ``start()`` do it
        themselves when ``max_epochs`` allows more epochs.

        Raises
        ------
        ConfigError
            If ``epochs`` is not a positive int (or would take ``max_epochs`` past
            :data:`~luzwidget.core.context.MAX_EPOCHS`), or is None while ``max_epochs``
            allows no more epochs.
        RunStateError
            If the run is not finished.
        """
        if epochs is not None and (
            not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1
        ):
            raise ConfigError(f"epochs must be a positive int or None, got {quote(epochs)}.")
        if epochs is not None and self.ctx.epoch + epochs > MAX_EPOCHS:
            raise ConfigError(
                f"extend: epochs={quote(epochs)} would take max_epochs past {MAX_EPOCHS} "
                "(2**63 - 1); give fewer epochs."
            )
        if self.state != RunState.DONE:
            raise RunStateError(
                f"extend() continues a finished run; this one is {self.state}. "
                "Raise the limit with run.edit('max_epochs', n) instead."
            )
        if epochs is None and self.ctx.max_epochs <= self.ctx.epoch:
            raise ConfigError(
                f"extend(): the run is done at epoch {self.ctx.epoch} of max_epochs "
                f"{self.ctx.max_epochs}; give epochs=n, or raise max_epochs first."
            )
        if epochs is not None:
            self.ctx.max_epochs = self.ctx.epoch + epochs
        self._driver.extend()

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(run)`` after every state change (from whichever thread drives)."""
        self._driver.listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        with contextlib.suppress(ValueError):
            self._driver.listeners.remove(listener)

    # -- edits: checked now, applied at the next event boundary ---------------------------
    def set_lr(self, lr: Any, opt_name: str | None = None, keep_ratios: bool = False) -> None:
        """Set the learning rate of one optimizer (or all), at the next event boundary.

        Parameters
        ----------
        lr
            The new learning rate, a finite number > 0.
        opt_name
            The optimizer to change, by name; None changes every optimizer.
        keep_ratios
            What happens to an optimizer with several parameter groups. False (the
            default, as torch users and luz expect of "set the lr"): every group gets
            ``lr``. True: every group is scaled by the same factor, so that the first
            group gets ``lr`` and the ratios between groups stay (e.g. a backbone at a
            tenth of the head's lr stays at a tenth). With one group both are the same.

        Raises
        ------
        ConfigError
            If ``lr`` is not a finite positive number, ``opt_name`` is unknown or
            ``keep_ratios`` is not a bool (or True while a first group's lr is 0).
        """
        self._driver.submit(lr_edit(self.ctx, lr, opt_name, keep_ratios))

    def edit(self, field: str, value: Any) -> None:
        """Change ``max_epochs``, ``min_epochs``, ``verbose``, ``loss_fn``, ``weight_decay``
        (L2, in every optimizer's groups) or ``batch_size`` (the training loader, re-made at
        the next epoch's start). Checked now, applied at the next event boundary.

        Raises
        ------
        ConfigError
            If the field cannot be edited or the value is refused (nothing changes).
        """
        self._driver.submit(field_edit(self.ctx, field, value))

    def add_callback(self, callback: Any) -> None:
        """Add a callback (checked now, active from the next event boundary).

        Raises
        ------
        ConfigError
            If ``callback`` is a class, has no ``on_<event>`` methods or a bad one.
        """
        check_callbacks([callback])
        self._driver.submit(lambda: setattr(self.ctx, "callbacks", [*self.ctx.callbacks, callback]))

    def remove_callback(self, callback: Any) -> None:
        """Remove a callback instance, or every callback of a class."""

        def match(cb: Any) -> bool:
            return cb is callback or (isinstance(callback, type) and isinstance(cb, callback))

        ctx = self.ctx
        if not any(match(cb) for cb in ctx.callbacks):
            names = ", ".join(type(cb).__name__ for cb in ctx.callbacks)
            raise ConfigError(f"{callback!r} is not a callback of this run; it has: {names}.")
        self._driver.submit(
            lambda: setattr(ctx, "callbacks", [cb for cb in ctx.callbacks if not match(cb)])
        )

    # -- display -----------------------------------------------------------------------
    def show_loop(self) -> None:
        """Print each event in loop order, indented by nesting, with the callbacks that run
        there, in the order they run (as fastai's ``show_training_loop``)."""
        print(engine_of(self.ctx).loop_text())

    def dashboard(self, parts: Any = None, image_shape: tuple[int, ...] | None = None) -> Dashboard:
        """The notebook dashboard of this run: controls, progress, inspector, plots, log.

        The same widget is returned each time (display it again for another view);
        ``parts`` picks a subset, e.g. ``("progress", "plots")``; ``image_shape``
        (``(H, W)`` or ``(C, H, W)``) says how its Batch panel draws one input item.
        Loads the widget libraries on first use: the rest of luzwidget runs without them.
        """
        key = None if parts is None else tuple(parts)
        widget = self._dashboards.get(key)
        if widget is None:
            from luzwidget.widgets import Dashboard

            widget = Dashboard(self, parts=parts, image_shape=image_shape)
            self._dashboards[key] = widget
        elif image_shape is not None:
            widget.set_image_shape(image_shape)
        return widget

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.dashboard()._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        ctx = self.ctx
        where = f"epoch {ctx.epoch}/{ctx.max_epochs}, batch {ctx.iter}"
        last = f", after {self.event.value}" if self.event is not None else ""
        return f"<Run {self.state}: {where}{last}>"

    # -- internals -----------------------------------------------------------------------
    def _resolve(self, action: str, background: bool | None) -> None:
        self._driver.resolve(action)
        self._go_on(background)

    def _go_on_if_done(self) -> None:
        """A finished run whose ``max_epochs`` allows more epochs becomes ready again."""
        if self.state == RunState.DONE and self.ctx.max_epochs > self.ctx.epoch:
            self._driver.extend()

    def _go_on(self, background: bool | None) -> None:
        if background is None:
            background = self._driver.background
        if background:
            self.start()
        else:
            self.resume()


def _no_loop(ctx: Context) -> Loop:
    yield from ()  # a generator, as the driver expects (it may throw() into it)
