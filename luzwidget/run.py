"""A run: the loop generator plus the controls to step, pause, resume and stop it.

Every way of training drives the same generator (:mod:`luzwidget.loop`): ``fit()`` calls
:meth:`Run.resume` until the end, ``step()`` until a condition, and :meth:`Run.start`
does the same in a background thread so a notebook stays live. Commands from other
threads (a widget, another cell) are queued and applied by the driving thread at the
next event boundary, never in the middle of a step.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from luzwidget.breakpoints import Breakpoints, Until, until
from luzwidget.context import Context, Fault
from luzwidget.driver import Driver, Listener
from luzwidget.edits import Edits
from luzwidget.events import Event
from luzwidget.exceptions import ConfigError, RunStateError
from luzwidget.loop import Item
from luzwidget.nonfinite import NonfiniteWatch  # luzwidget.nonfinite

__all__ = ["Run"]


class Run(Driver, Edits):
    """A training run that can be stepped, paused, resumed, edited and stopped.

    Create one with ``setup(...).run(data, ...)`` (same arguments as ``fit``); nothing
    runs until you ask.

    Attributes
    ----------
    ctx : Context
        Everything the loop knows, to inspect and (through the methods here) to edit.
    state : str
        ``"ready"``, ``"running"``, ``"paused"``, ``"error"`` or ``"done"``.
    error : Exception or None
        In state ``"error"``: what failed, naming the callback or stage, event, epoch, batch.
    event : Event or None
        The last event that fired; ``events`` holds the last 100, ``n_events`` counts all.
    breakpoints : Breakpoints
        Events and conditions at which the run pauses by itself.
    result : object
        What the run produced once done (a ``Fitted`` for a fit).
    reason : str
        Why the run paused or stopped (a breakpoint, a step target, Ctrl-C, ...).
    notice : str
        The last edit that was queued but could not be applied at the boundary.
    """

    def __init__(
        self,
        ctx: Context,
        make_loop: Callable[[Context], Iterator[Item]],
        finish: Callable[[Run], Any] | None = None,
    ) -> None:
        self.ctx = ctx
        self.state = "ready"
        self.error: BaseException | None = None
        self.error_traceback = ""
        self.reason = ""
        self.interrupted = False
        self.notice = ""
        self.event: Event | None = None
        self.events: deque[Event] = deque(maxlen=100)
        self.n_events = 0
        self.breakpoints = Breakpoints(on_change=self._recheck)
        self.breakpoints.watch = NonfiniteWatch(self)  # luzwidget.nonfinite
        self.result: Any = None
        self._make_loop = make_loop
        self._finish_fn = finish
        self._gen: Iterator[Item] | None = None
        self._fault: Fault | None = None
        self._inbox: deque[Callable[[], None]] = deque()
        self._listen = ctx._listen  # [bool] shared with the loop: yield at events?
        self._pause_reason: str | None = None
        self._interrupted = False
        self._stop_requested = False
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._background = False
        self._listeners: list[Listener] = []
        self._dashboards: dict[Any, Any] = {}
        ctx._pause_hook = self.pause

    # -- driving -----------------------------------------------------------------------
    def resume(self) -> None:
        """Run here (blocking) until done, paused or failed. Ctrl-C pauses cleanly.

        Like the other commands it returns None, so that a cell ending with it does not
        display the run (and its dashboard) again.
        """
        self._blocking(None)

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
        self._blocking(until(what, 1 if n is None else n))
        return self.event

    def start(self, until: Event | str | None = None, n: int = 1) -> None:
        """Train in a background thread and return at once (a notebook stays live).

        ``start()`` runs to the end; ``start(until="batch")`` (or ``"epoch"``, an event)
        stops there, as :meth:`step` does. Use :meth:`pause`, :meth:`stop` or the
        dashboard to control it; the kernel's Interrupt button does not reach it.
        """
        stop_at = _until(until, n)
        with self._lock:
            if self._thread is not None:
                return
            self._ready_to_drive()
            self._background = True
            self._set_state("running")
            thread = threading.Thread(
                target=self._drive_thread,
                args=(stop_at,),
                daemon=True,
                name="luzwidget-run",
            )
            self._thread = thread
        thread.start()

    def wait(self, timeout: float | None = None) -> str:
        """Wait for the background thread to pause or finish; return the state."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.state

    def pause(self, reason: str = "paused") -> None:
        """Pause at the next event boundary (from any thread, a callback or a widget)."""
        self._pause_reason = reason
        self._listen[0] = True

    def stop(self) -> None:
        """End the run gracefully: ``on_fit_end`` runs and the result is kept."""
        with self._lock:
            thread, gen = self._thread, self._gen
            other_thread = thread is not None and thread is not threading.current_thread()
            from_callback = gen is not None and (
                inspect.getgeneratorstate(gen) == inspect.GEN_RUNNING
            )  # type: ignore[arg-type]
            if other_thread or from_callback:  # stop at the next event boundary
                self._stop_requested = True
                self._listen[0] = True
                return
        if self.state == "done":
            return
        if self._gen is None:
            self._settle(self._finish())
            return
        self._fault = None
        self.error = None
        self._settle(self._stop_now())

    def retry(self, background: bool | None = None) -> None:
        """After an error: redo what failed (once you fixed the cause) and go on.

        The run goes on the way it was driven when it failed (in the background after
        :meth:`start`, here after :meth:`resume`); ``background`` chooses explicitly.
        """
        self._resolve("retry", background)

    def skip(self, background: bool | None = None) -> None:
        """After an error: abandon the current batch (gradients discarded) and go on."""
        self._resolve("skip", background)

    def extend(self, epochs: int) -> None:
        """Continue a finished run for ``epochs`` more epochs (optimizer state kept)."""
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise ConfigError(f"epochs must be a positive int, got {epochs!r}.")
        if self.state != "done":
            raise RunStateError(
                f"extend() continues a finished run; this one is {self.state}. "
                "Raise the limit with run.edit('max_epochs', n) instead."
            )
        self.ctx.max_epochs = self.ctx.epoch + epochs
        self._gen = None
        self._set_state("ready")

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(run)`` after every state change (from whichever thread drives)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    # -- seeing inside the model (luzwidget.layers) ------------------------------------
    def layers(self) -> Any:
        """A DataFrame, one row per parameter: norms, gradient norms, the last update.

        Columns ``name, module, optimizer, shape, numel, norm, grad_norm, update_norm,
        update_ratio, nonfinite``: ‖w‖, ‖grad‖ (NaN without a gradient), ‖Δw‖ of the last
        optimizer step and ‖Δw‖/‖w‖, and the count of NaN or infinite values in the weight
        and its gradient. Norms are computed now; the update is known only for a step
        taken after a ``layers()`` call (which arms the recording until the run pauses or
        ends again) or while a view subscribes: the first call shows NaN updates, and so
        does a call after a free run nobody armed (the weights changed since the last
        recorded step). See :mod:`luzwidget.layers`.
        """
        from luzwidget.layers import layers

        return layers(self)

    def activations(self) -> Any:
        """A DataFrame, one row per module: shape, mean, std and non-finite count of its
        last output (finite values only in mean and std), recorded by forward hooks while
        armed as :meth:`layers` is; empty until a forward pass ran after the first call."""
        from luzwidget.layers import activations

        return activations(self)

    # -- display -----------------------------------------------------------------------
    def dashboard(self, parts: Any = None) -> Any:
        """The notebook dashboard of this run: controls, progress, inspector, plots, log.

        The same widget is returned each time (display it again for another view);
        ``parts`` picks a subset, e.g. ``("progress", "plots")``. Loads the widget
        libraries on first use: the rest of luzwidget runs without them.
        """
        key = None if parts is None else tuple(parts)
        widget = self._dashboards.get(key)
        if widget is None:
            from luzwidget.widgets import Dashboard

            widget = self._dashboards[key] = Dashboard(self, parts=parts)
        return widget

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.dashboard()._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        ctx = self.ctx
        where = f"epoch {ctx.epoch}/{ctx.max_epochs}, batch {ctx.iter}"
        last = f", after {self.event.value}" if self.event is not None else ""
        return f"<Run {self.state}: {where}{last}>"

    # -- internals (the driving machinery is in luzwidget.driver) -----------------------
    def _resolve(self, action: str, background: bool | None) -> None:
        fault = self._fault
        if self.state != "error" or fault is None:
            if self.state == "error":
                raise RunStateError(f"the run cannot go on after this error: {self.error}")
            raise RunStateError(
                f"{action}() is for a run stopped on an error; this one is {self.state}."
            )
        fault.action = action
        self._fault = None
        self.error = None
        self.error_traceback = ""
        self._set_state("paused", f"{action} after the error")
        if background is None:
            background = self._background
        if background:
            self.start()
        else:
            self.resume()


def _until(target: Event | str | None, n: int) -> Until | None:
    return None if target is None else until(target, n)
