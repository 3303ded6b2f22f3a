"""How a run drives its loop generator: blocking, in a thread, and at each event boundary.

A :class:`Driver` is the moving part of a :class:`~luzwidget.Run`: it owns the loop
generator, the background thread, the boundary policy (the inbox of queued commands and
where to pause: :mod:`luzwidget.control.boundary`) and Ctrl-C
(:mod:`luzwidget.control.interrupts`); what the run shows is its base,
:class:`~luzwidget.control.shown.Shown`.

While a drive is active, every command (from another thread, or from a callback) is
queued and applied in the order given at the next event boundary; none is lost or
merged. A pause stops the drive there. A start queued behind it resumes once the pause
has been settled (listeners see it); a start queued while the run steps to a target
waits for that target; a start queued while the run goes to its end is already done.
"""

from __future__ import annotations

import contextlib
import threading
import traceback
from collections.abc import Callable
from typing import Any

import torch

from luzwidget.control.boundary import Boundary, Command, Control
from luzwidget.control.breakpoints import Breakpoints
from luzwidget.control.features import Features
from luzwidget.control.interrupts import CtrlC
from luzwidget.control.shown import Shown
from luzwidget.core.context import Context
from luzwidget.core.engine import Fault, engine_of
from luzwidget.core.events import Event
from luzwidget.core.exceptions import RunStateError, StopFit
from luzwidget.core.flags import LoopFlags
from luzwidget.core.loop import Loop, alive, chain
from luzwidget.core.report import report
from luzwidget.core.states import Outcome, RunState, Until, stop_condition

__all__ = ["Driver"]


class Driver(Shown):
    """Drives one run's loop; holds what the run shows (state, reason, error, events...).

    Parameters
    ----------
    owner
        The :class:`~luzwidget.Run`, passed to listeners and to ``finish``.
    ctx
        The run's context.
    make_loop
        Builds the loop generator from the context (fit, evaluate or predict loop).
    finish
        Called with the run when the loop ends; its return value is ``result``.
    features
        The run's features (the boundary policy of several processes, the NaN/inf watch).
    """

    def __init__(
        self,
        owner: Any,
        ctx: Context,
        make_loop: Callable[[Context], Loop],
        finish: Callable[[Any], Any] | None,
        features: Features,
    ) -> None:
        super().__init__(owner)
        self.ctx, self.features = ctx, features
        self.background = False  # how the run was last driven (retry/skip go on that way)
        self.make_loop, self.finish_fn = make_loop, finish
        self._gen: Loop | None = None
        self._fault: Fault | None = None
        self._finished = False
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None  # the background thread, while it drives
        self._driving: threading.Thread | None = None  # whichever thread drives now
        engine = engine_of(ctx)
        self._flags: LoopFlags = engine.flags  # shared with the loop: listening, in user code
        engine.on_pause = self.pause  # Context.pause() (from a callback) lands here
        engine.on_nonfinite = self._nonfinite_loss  # Metrics saw a NaN/inf epoch loss
        bps = Breakpoints(on_change=self.wake, features=features)
        self.boundary = Boundary(ctx, self._flags, bps, self._apply, self._stop_now, features)

    @property
    def breakpoints(self) -> Breakpoints:
        """The run's breakpoints; the boundary policy checks them at each event."""
        return self.boundary.breakpoints

    @breakpoints.setter
    def breakpoints(self, value: Breakpoints) -> None:
        self.boundary.breakpoints = value

    # -- commands (from Run) ---------------------------------------------------------------
    def drive_here(self, target: Until | None) -> None:
        """Drive in this thread until done, paused or failed; Ctrl-C pauses cleanly."""
        ctrl_c = CtrlC(self.boundary.request_interrupt, lambda: self._flags.in_user_code)
        with ctrl_c.installed():  # restored only once the state is settled
            with self._lock:
                self._ready_to_drive()
                self._claim(threading.current_thread(), background=False)
            self._serve(lambda: self._drive(target), ctrl_c)

    def drive_until(self, until: Until, breakpoints: bool = True) -> None:
        """Drive here until ``until(event)``; ``breakpoints=False``: none on the way."""
        saved = self.boundary.breakpoints
        if not breakpoints:
            self.boundary.breakpoints = Breakpoints(on_change=self.wake)
        try:
            self.drive_here(until)
        finally:
            self.boundary.breakpoints = saved

    @property
    def stepping(self) -> bool:
        """Whether the current drive steps to a target (someone looks at each stop)."""
        return self.boundary.target is not None

    def drive_first(self, loop: Loop, last: Event) -> None:
        """Drive ``loop`` here before the rest of the run, up to its ``last`` event.

        Its events go through the same machinery (faults, ``events``); the run's own loop
        stays suspended where it was, and unless ``loop`` fails, state, reason and
        ``interrupted`` are afterwards what they were.
        """
        reason, interrupted = self.reason, self.interrupted
        self._gen = chain(loop, self._gen)
        self.drive_here(stop_condition(last, 1))
        if self.state == RunState.PAUSED:
            self._set_state(RunState.PAUSED, reason)
            self.interrupted = interrupted

    def finished(self) -> None:
        """Settle as done without driving anything (a model loaded from a file)."""
        self._settle(self._finish(), notify=False)

    def start(self, target: Until | None) -> None:
        """Drive in a background thread; while a drive is active, queue the start."""
        with self._lock:
            if self._driving is not None:
                self.boundary.queue(Control("start", target=target))
                return
            self._ready_to_drive()
            thread = threading.Thread(
                target=self._thread_main, args=(target,), daemon=True, name="luzwidget-run"
            )
            self._thread = thread
            self._claim(thread, background=True)
        thread.start()

    def pause(self, reason: str = "paused") -> None:
        """Pause the active drive at its next event boundary; a no-op when nothing drives."""
        with self._lock:
            if self._driving is not None:
                self.boundary.queue(Control("pause", reason))

    def stop(self) -> None:
        """Queue a stop for the active drive, or end the run here (``on_fit_end`` runs)."""
        with self._lock:
            if self._driving is not None:
                self.boundary.queue(Control("stop"))
                return
            if self.state == RunState.DONE:
                return
            self._fault, self.error = None, None
            self._claim(threading.current_thread(), background=self.background)
        self._serve(self._stop_now if self._gen is not None else self._finish, None)

    def resolve(self, action: str) -> None:
        """After an error: mark the failed step to ``"retry"`` or ``"skip"``; now paused."""
        fault = self._fault
        if self.state != RunState.ERROR or fault is None:
            if self.state == RunState.ERROR:
                raise RunStateError(f"the run cannot go on after this error: {self.error}")
            raise RunStateError(
                f"{action}() is for a run stopped on an error; this one is {self.state}."
            )
        fault.action = action
        self._fault, self.error, self.error_traceback = None, None, ""
        self._set_state(RunState.PAUSED, f"{action} after the error")

    def extend(self) -> None:
        """A done run becomes ready again (a new loop from the context as it is)."""
        with self._lock:
            self._gen = None
            self._set_state(RunState.READY)

    # -- time travel (luzwidget.travel.snapshots): a rewind swaps the suspended loop ---------------
    def replace_loop(self, loop: Loop | None, reason: str) -> None:
        """Drop the suspended loop for ``loop`` (None: a fresh one at the next drive) and
        settle as paused; for a run that nothing drives (ready, paused, error or done)."""
        with self._lock:
            if self._driving is not None:
                raise RunStateError("the run is training; run.pause() or run.wait() first.")
            old, self._gen, self._finished = self._gen, loop, False
            self._fault, self.error, self.error_traceback = None, None, ""
            self.interrupted = False
        if old is not None and hasattr(old, "close"):
            with contextlib.suppress(Exception):
                old.close()
        self._set_state(RunState.PAUSED, reason)

    def submit(self, command: Callable[[], None]) -> None:
        """Apply an edit now, or at the next boundary if another thread drives."""
        with self._lock:
            driving = self._driving
            instep = self.features.instep  # rank 0 of several: at an agreed boundary
            relayed = instep is not None and instep.leads
            if driving is not None and (relayed or driving is not threading.current_thread()):
                self.boundary.queue(command)
                return
        command()

    def wait(self, timeout: float | None) -> RunState:
        """Wait for the background thread to let go; return the state."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.state

    def wake(self) -> None:
        """Make the loop yield at its next event (something to look at there)."""
        self._flags.listening = True

    # -- state -----------------------------------------------------------------------------
    def _ready_to_drive(self) -> None:
        if self.state == RunState.ERROR:
            raise RunStateError(
                f"the run is stopped on an error: {self.error}\nFix the cause, then call "
                "run.retry() to redo what failed, or run.skip() to drop the batch."
            )
        if self.state == RunState.DONE:
            raise RunStateError(
                f"the run is done at epoch {self.ctx.epoch} of max_epochs "
                f"{self.ctx.max_epochs}; raise max_epochs first (run.edit('max_epochs', n), or "
                "the dashboard's box), then go on; or run.extend(epochs=n)."
            )
        if self.state == RunState.RUNNING:
            raise RunStateError(
                "the run is already training in the background; run.pause() or run.wait() first."
            )
        if self._gen is None:
            self._gen, self._finished = self.make_loop(self.ctx), False

    def _claim(self, thread: threading.Thread, background: bool) -> None:
        self._driving, self.background = thread, background
        self._set_state(RunState.RUNNING)

    def _settle(self, outcome: Outcome, notify: bool = True) -> None:
        self.interrupted = outcome.interrupted
        if outcome.state == RunState.DONE:
            self._gen = None
        self._set_state(outcome.state, outcome.reason, notify)

    # -- driving ---------------------------------------------------------------------------
    def _thread_main(self, target: Until | None) -> None:
        # OpenMP keeps its thread count per thread: a new thread would ignore the caller's
        # torch.set_num_threads(n) and run (and spin) a team of the default size.
        torch.set_num_threads(torch.get_num_threads())
        if self._serve(lambda: self._drive(target), None).state == RunState.ERROR:
            report(
                f"the run stopped on an error: {self.error}\n"
                "Inspect run.error and run.ctx, fix the cause, then run.retry() or run.skip()."
            )

    def _serve(self, body: Callable[[], Outcome], ctrl_c: CtrlC | None) -> Outcome:
        """Run ``body``, then what was queued meanwhile, in order; settle and let go atomically."""
        outcome = self._guarded(body, ctrl_c)
        while True:
            with self._lock:
                if not self.boundary.inbox:
                    self._settle(outcome, notify=False)
                    self._driving = self._thread = None
                    break
                command = self.boundary.inbox.popleft()
            outcome = self._after(outcome, command, ctrl_c)
        self._notify()
        return outcome

    def _after(self, outcome: Outcome, command: Command, ctrl_c: CtrlC | None) -> Outcome:
        """Apply a command left in the inbox once the drive has stopped."""
        if not isinstance(command, Control):
            self._apply(command)
            return outcome
        resumable = outcome.state == RunState.PAUSED
        if command.kind == "start" and resumable:
            self._settle(outcome)  # the pause is seen before the run goes on
            self._set_state(RunState.RUNNING)
            return self._guarded(lambda: self._drive(command.target), ctrl_c)
        if command.kind == "stop" and (resumable or outcome.state == RunState.ERROR):
            self._fault, self.error = None, None
            return self._guarded(self._stop_now, ctrl_c)
        if command.kind == "start":
            self.notice = f"a queued start was not applied: the run is {outcome.state}"
        return outcome  # a pause, or a stop after the end: the run already stopped

    def _guarded(self, body: Callable[[], Outcome], ctrl_c: CtrlC | None) -> Outcome:
        try:
            if ctrl_c is not None:
                ctrl_c.arm()
            return body()
        except KeyboardInterrupt:
            return self._interrupted_outside()
        except BaseException as exc:
            return self._died(exc)
        finally:
            if ctrl_c is not None:
                ctrl_c.disarm()
            self.boundary.interrupted = False  # a press after the last boundary pauses nothing

    def _drive(self, target: Until | None) -> Outcome:
        """Call ``next()`` on the loop until it ends, pauses or faults; return the outcome."""
        gen = self._gen
        assert gen is not None
        self.boundary.target = target
        self._flags.listening = True
        with torch.enable_grad():  # the loop sets grad mode itself; a caller's no_grad is not ours
            for item in gen:
                if type(item) is Fault:
                    return self._on_fault(item)
                self._record(item)
                outcome = self.boundary.at(item)  # events come only while we listen
                if outcome is not None:
                    return outcome
        return self._finish()

    def _on_fault(self, fault: Fault) -> Outcome:
        if fault.interrupted:
            fault.action = "retry"
            reason = (
                f"interrupted (Ctrl-C) during the {fault.stage} of epoch {self.ctx.epoch}, "
                f"batch {self.ctx.iter}; gradients were discarded and run.resume() redoes "
                "this step from its start"
            )
            report(reason)
            return Outcome(RunState.PAUSED, reason, interrupted=True)
        self._fault = fault
        fault.error.run = self.owner  # type: ignore[attr-defined]  # a LuzwidgetError
        self.error = fault.error
        self.error_traceback = "".join(traceback.format_exception(fault.cause))
        return Outcome(RunState.ERROR, str(fault.error))

    def _stop_now(self) -> Outcome:
        """Throw StopFit into the loop so it ends as luz does, then run it to the end."""
        gen = self._gen
        assert gen is not None
        try:
            item = gen.throw(StopFit("stopped by the user"))
        except (StopIteration, StopFit):
            return self._finish()
        while True:
            if type(item) is Fault:
                return self._on_fault(item)
            self._record(item)
            try:
                item = next(gen)
            except StopIteration:
                return self._finish()

    def _finish(self) -> Outcome:
        if self.finish_fn is not None:
            self.result = self.finish_fn(self.owner)
        self._finished = True
        return Outcome(RunState.DONE)

    def _died(self, exc: BaseException) -> Outcome:
        self._gen = self._gen if alive(self._gen) else None
        self.error = exc
        self.error_traceback = "".join(traceback.format_exception(exc))
        return Outcome(RunState.ERROR, f"{type(exc).__name__}: {exc}")

    def _interrupted_outside(self) -> Outcome:
        if alive(self._gen):
            reason = "interrupted (Ctrl-C) between events; run.resume() goes on"
            return Outcome(RunState.PAUSED, reason, interrupted=True)
        if self._finished:
            return Outcome(RunState.DONE)
        return self._died(RunStateError("Ctrl-C arrived at a point the loop could not recover."))

    def _apply(self, command: Callable[[], None]) -> None:
        """Run a queued edit; one that fails now is reported, never breaks the run."""
        try:
            command()
        except Exception as exc:
            self.notice = f"an edit could not be applied: {exc}"
            report(self.notice)

    def _nonfinite_loss(self, reason: str) -> None:
        if self.breakpoints.nonfinite_loss:
            self.pause(reason)
