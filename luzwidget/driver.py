"""How a run drives its loop generator: blocking, in a thread, and at each event boundary.

:class:`Driver` is the machinery behind :class:`~luzwidget.Run`'s commands: it calls
``next()`` on the loop, applies the commands queued by other threads at event boundaries,
decides where to pause (a request, Ctrl-C, a breakpoint, a step target), turns faults into
the ``"error"`` state, and settles the state when driving ends.
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
from luzwidget.context import Context
from luzwidget.engine import Engine, Fault, LoopFlags
from luzwidget.events import Event
from luzwidget.exceptions import RunStateError, StopFit
from luzwidget.interrupts import ctrl_c_pauses
from luzwidget.loop import Item

__all__ = ["Driver"]

Listener = Callable[[Any], None]


class Driver:
    """The driving internals of :class:`~luzwidget.Run` (a mixin; ``Run`` sets the state)."""

    ctx: Context
    state: str
    error: BaseException | None
    error_traceback: str
    reason: str
    interrupted: bool
    notice: str
    event: Event | None
    events: deque[Event]
    n_events: int
    breakpoints: Breakpoints
    result: Any
    _make_loop: Callable[[Context], Iterator[Item]]
    _finish_fn: Callable[[Any], Any] | None
    _gen: Iterator[Item] | None
    _fault: Fault | None
    _inbox: deque[Callable[[], None]]
    _engine: Engine
    _flags: LoopFlags
    _pause_reason: str | None
    _interrupted: bool
    _stop_requested: bool
    _lock: threading.RLock
    _thread: threading.Thread | None
    _background: bool
    _listeners: list[Listener]

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
            with ctrl_c_pauses(self._flags, self._request_interrupt):
                outcome = self._drive(stop_at)
        except KeyboardInterrupt:
            outcome = self._interrupted_outside()
        except BaseException as exc:
            outcome = self._died(exc)
        self._settle(outcome)

    def _drive_first(self, loop: Iterator[Item], last: Event) -> None:
        """Drive ``loop`` here before the rest of the run, up to its ``last`` event.

        Its events go through the same machinery (faults, ``events``); the run's own loop
        stays suspended where it was, and unless ``loop`` fails, state, reason and
        ``interrupted`` are afterwards what they were.
        """
        reason, interrupted = self.reason, self.interrupted
        self._gen = _chain(loop, self._gen)
        self._blocking(until(last, 1))
        if self.state == "paused":
            self._set_state("paused", reason)
            self.interrupted = interrupted

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
        self._flags.listening = True
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
        self._flags.listening = False
        if (
            self._inbox
            or self.breakpoints
            or stop_at is not None
            or self._pause_reason is not None
            or self._stop_requested
            or self._interrupted
        ):
            self._flags.listening = True
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
                self._flags.listening = True
                return
        command()

    def _recheck(self) -> None:
        self._flags.listening = True

    def _request_interrupt(self) -> bool:
        """Pause at the next event because of Ctrl-C; True if that was asked already."""
        asked, self._interrupted = self._interrupted, True
        self._flags.listening = True
        return asked


def _chain(first: Iterator[Item], then: Iterator[Item] | None) -> Iterator[Item]:
    yield from first
    if then is not None:
        yield from then


def _alive(gen: Any) -> bool:
    return gen is not None and inspect.getgeneratorstate(gen) == inspect.GEN_SUSPENDED
