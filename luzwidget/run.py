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
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import torch

from luzwidget.breakpoints import Breakpoints, Until, until
from luzwidget.context import Context, Fault
from luzwidget.edits import Edits
from luzwidget.events import Event
from luzwidget.exceptions import ConfigError, RunStateError, StopFit
from luzwidget.interrupts import ctrl_c_pauses
from luzwidget.loop import Item

__all__ = ["Run"]

Listener = Callable[["Run"], None]


class Run(Edits):
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

    # -- internals ---------------------------------------------------------------------
    def _set_state(self, state: str, reason: str = "", notify: bool = True) -> None:
        self.state = state
        self.reason = reason
        if notify:
            self._notify()

    def _notify(self) -> None:
        for listener in list(self._listeners):
            with contextlib.suppress(Exception):
                listener(self)

    def _ready_to_drive(self) -> None:
        if self.state == "error":
            raise RunStateError(
                f"the run is stopped on an error: {self.error}\nFix the cause, then call "
                "run.retry() to redo what failed, or run.skip() to drop the batch."
            )
        if self.state == "done":
            raise RunStateError("the run is done; run.extend(epochs=n) continues it.")
        if self.state == "running":
            raise RunStateError(
                "the run is already training in the background; run.pause() or run.wait() first."
            )
        if self._gen is None:
            self._gen = self._make_loop(self.ctx)

    def _blocking(self, stop_at: Until | None) -> None:
        with self._lock:
            self._ready_to_drive()
            self._background = False
            self._set_state("running")
        outcome: tuple[str, str] = ("paused", "")
        try:
            with ctrl_c_pauses(self.ctx._guard, self._request_interrupt):
                outcome = self._drive(stop_at)
        except KeyboardInterrupt:
            outcome = self._interrupted_outside()
        except BaseException as exc:
            outcome = self._died(exc)
        self._settle(outcome)

    def _drive_thread(self, stop_at: Until | None) -> None:
        # OpenMP keeps its thread count per thread: a new thread would ignore the caller's
        # torch.set_num_threads(n) and run (and spin) a team of the default size.
        torch.set_num_threads(torch.get_num_threads())
        outcome: tuple[str, str]
        try:
            outcome = self._drive(stop_at)
        except BaseException as exc:
            outcome = self._died(exc)
        while True:  # apply what was queued meanwhile; then settle and let go, atomically
            with self._lock:
                pending = list(self._inbox)
                self._inbox.clear()
                if not pending:
                    self._settle(outcome, notify=False)
                    self._thread = None
                    break
            for command in pending:
                self._apply(command)
        self._notify()
        if outcome[0] == "error":
            print(
                f"[luzwidget] the run stopped on an error: {self.error}\n"
                "Inspect run.error and run.ctx, fix the cause, then run.retry() or run.skip().",
                file=sys.stderr,
            )

    def _drive(self, stop_at: Until | None) -> tuple[str, str]:
        """Call ``next()`` on the loop until it ends, pauses or faults; return the outcome."""
        gen = self._gen
        assert gen is not None
        events = self.events
        self._listen[0] = True
        with torch.enable_grad():  # the loop sets grad mode itself; a caller's no_grad is not ours
            for item in gen:
                if type(item) is Fault:
                    return self._on_fault(item)
                self.event = item
                self.n_events += 1
                events.append(item)
                outcome = self._at_boundary(item, stop_at)  # events come only while we listen
                if outcome is not None:
                    return outcome
        return self._finish()

    def _at_boundary(self, event: Event, stop_at: Until | None) -> tuple[str, str] | None:
        """Apply queued commands and decide whether to stop here; None means go on."""
        while self._inbox:
            self._apply(self._inbox.popleft())
        if self._stop_requested:
            self._stop_requested = False
            return self._stop_now()
        where = f"after {event.value} (epoch {self.ctx.epoch}, batch {self.ctx.iter})"
        if self._interrupted:
            self._interrupted = False
            reason = f"interrupted (Ctrl-C) {where}; run.resume() goes on from here"
            print(f"[luzwidget] {reason}", file=sys.stderr)  # as _on_fault says it
            return "paused", reason
        if self._pause_reason is not None:
            reason, self._pause_reason = self._pause_reason, None
            return "paused", f"{reason} {where}"
        if self.breakpoints:
            hit = self.breakpoints.hit(event, self.ctx)
            if hit is not None:
                return "paused", hit
        if stop_at is not None and stop_at(event):
            return "paused", f"stepped to {event.value}"
        # Clear first, then look again: a pause/stop/Ctrl-C requested meanwhile (another
        # thread, a signal handler) sets the flag after this line and is not lost.
        self._listen[0] = False
        if (
            self._inbox
            or self.breakpoints
            or stop_at is not None
            or self._pause_reason is not None
            or self._stop_requested
            or self._interrupted
        ):
            self._listen[0] = True
        return None

    def _on_fault(self, fault: Fault) -> tuple[str, str]:
        if fault.interrupted:
            fault.action = "retry"
            reason = (
                f"interrupted (Ctrl-C) during the {fault.stage} of epoch {self.ctx.epoch}, "
                f"batch {self.ctx.iter}; gradients were discarded and run.resume() redoes "
                "this step from its start"
            )
            print(f"[luzwidget] {reason}", file=sys.stderr)
            return "paused", reason
        self._fault = fault
        fault.error.run = self  # type: ignore[attr-defined]
        self.error = fault.error
        self.error_traceback = "".join(traceback.format_exception(fault.cause))
        return "error", str(fault.error)

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

    def _stop_now(self) -> tuple[str, str]:
        """Throw StopFit into the loop so it ends as luz does, then run it to the end."""
        gen = self._gen
        try:
            item = gen.throw(StopFit("stopped by the user"))  # type: ignore[union-attr]
        except (StopIteration, StopFit):
            return self._finish()
        while True:
            if type(item) is Fault:
                return self._on_fault(item)
            self.event = item
            self.n_events += 1
            self.events.append(item)
            try:
                item = next(gen)  # type: ignore[arg-type]
            except StopIteration:
                return self._finish()

    def _finish(self) -> tuple[str, str]:
        if self._finish_fn is not None:
            self.result = self._finish_fn(self)
        return "done", ""

    def _died(self, exc: BaseException) -> tuple[str, str]:
        self._gen = self._gen if _alive(self._gen) else None
        self.error = exc
        self.error_traceback = "".join(traceback.format_exception(exc))
        return "error", f"{type(exc).__name__}: {exc}"

    def _interrupted_outside(self) -> tuple[str, str]:
        if _alive(self._gen):
            return "paused", "interrupted (Ctrl-C) between events; run.resume() goes on"
        return self._died(RunStateError("Ctrl-C arrived at a point the loop could not recover."))

    def _settle(self, outcome: tuple[str, str], notify: bool = True) -> None:
        state, reason = outcome
        self.interrupted = reason.startswith("interrupted")
        if state == "done":
            self._gen = None
        self._set_state(state, reason, notify)

    def _apply(self, command: Callable[[], None]) -> None:
        """Run a queued command; one that fails now (e.g. max_epochs fell below the epoch
        reached meanwhile) is reported, never allowed to break the run."""
        try:
            command()
        except Exception as exc:
            self.notice = f"an edit could not be applied: {exc}"
            print(f"[luzwidget] {self.notice}", file=sys.stderr)

    def _submit(self, command: Callable[[], None]) -> None:
        with self._lock:
            thread = self._thread
            if thread is not None and thread is not threading.current_thread():
                self._inbox.append(command)
                self._listen[0] = True
                return
        command()

    def _recheck(self) -> None:
        self._listen[0] = True

    def _request_interrupt(self) -> bool:
        """Pause at the next event because of Ctrl-C; True if that was asked already."""
        asked, self._interrupted = self._interrupted, True
        self._listen[0] = True
        return asked


def _alive(gen: Any) -> bool:
    return gen is not None and inspect.getgeneratorstate(gen) == inspect.GEN_SUSPENDED


def _until(target: Event | str | None, n: int) -> Until | None:
    return None if target is None else until(target, n)
