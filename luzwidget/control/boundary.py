"""The boundary policy: what a drive does at each event it yields (pause, stop, go on).

A :class:`Boundary` is the driver's inbox of queued commands and the rules applied to it
at every event boundary: queued edits are applied in order, a queued pause or stop ends
the drive there, Ctrl-C pauses at the first boundary after the press, then breakpoints,
then the step target. :class:`~luzwidget.control.driver.Driver` owns one and asks it at each
event; how the loop is driven (here or in a thread, errors, Ctrl-C's signal handler) stays
in the driver.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from luzwidget.control.breakpoints import Breakpoints
from luzwidget.control.features import Features
from luzwidget.core.context import Context
from luzwidget.core.events import Event
from luzwidget.core.flags import LoopFlags
from luzwidget.core.report import report
from luzwidget.core.states import Outcome, RunState, Until

__all__ = ["STOP", "Boundary", "Command", "Control"]


@dataclass(frozen=True)
class Control:
    """A queued ``pause``, ``start`` or ``stop`` (edits are queued as plain callables)."""

    kind: str
    reason: str = ""
    target: Until | None = None


Command = Callable[[], None] | Control

STOP = Outcome(RunState.DONE, "stop")
"""What :meth:`Boundary.at` decides for a queued stop (then it ends the loop there)."""


class Boundary:
    """The inbox, the step target and the Ctrl-C request; decides at each event boundary.

    Parameters
    ----------
    ctx
        The run's context (where the run is, for the reasons it gives).
    flags
        The loop's flags, shared with the loop: ``listening`` makes it yield at its next event.
    breakpoints
        The run's breakpoints.
    apply
        Applies a queued edit (the driver reports one that fails).
    stop_now
        Ends the loop as a stop does; its outcome ends the drive.
    features
        The run's features: with several processes (``features.instep``), a command is
        relayed to a boundary agreed with the other ranks, and each decision is followed.
    """

    def __init__(
        self,
        ctx: Context,
        flags: LoopFlags,
        breakpoints: Breakpoints,
        apply: Callable[[Callable[[], None]], None],
        stop_now: Callable[[], Outcome],
        features: Features | None = None,
    ) -> None:
        self.ctx, self.flags, self.breakpoints = ctx, flags, breakpoints
        self.inbox: deque[Command] = deque()
        self.target: Until | None = None  # the step target of the current drive
        self.interrupted = False  # Ctrl-C asked to pause at the next event
        self._apply, self._stop_now = apply, stop_now
        self.features = features if features is not None else Features()

    def queue(self, command: Command) -> None:
        """Queue a command for the next boundary and make the loop yield there."""
        instep = self.features.instep
        if instep is not None and instep.leads and instep.relay(command):
            return
        self.inbox.append(command)
        self.flags.listening = True

    def deliver(self, commands: list[Command]) -> None:
        """Queue ``commands`` to apply at this very event (several processes: a command
        held for a boundary agreed with the other ranks, now reached)."""
        self.inbox.extend(commands)
        self.flags.listening = True

    def listen(self) -> None:
        """Make the loop yield at its next event (in step with other ranks: each event)."""
        self.flags.listening = True

    def busy(self) -> bool:
        """Whether the loop must stop at events: commands queued, breakpoints, a step
        target, or Ctrl-C."""
        return bool(self.inbox or self.breakpoints or self.target is not None or self.interrupted)

    def request_interrupt(self) -> bool:
        """Pause at the next event because of Ctrl-C; True if that was asked already."""
        asked, self.interrupted = self.interrupted, True
        self.flags.listening = True
        return asked

    def at(self, event: Event) -> Outcome | None:
        """Apply queued commands in order and decide whether to stop here; None: go on."""
        outcome = self._decide(event)
        instep = self.features.instep
        if instep is not None:
            outcome = instep.follow(event, outcome)
        return self._stop_now() if outcome is STOP else outcome

    def _decide(self, event: Event) -> Outcome | None:
        inbox = self.inbox
        while inbox:
            head = inbox[0]
            if not isinstance(head, Control):
                inbox.popleft()
                self._apply(head)
                continue
            if head.kind == "start":
                if self.target is not None:
                    break  # it waits until the current step target is reached
                inbox.popleft()
                self.target = head.target  # going to the end already; maybe to a target now
                continue
            inbox.popleft()
            if head.kind == "stop":
                return STOP
            return Outcome(RunState.PAUSED, f"{head.reason} {self.where(event)}")
        if self.interrupted:
            self.interrupted = False
            reason = f"interrupted (Ctrl-C) {self.where(event)}; run.resume() goes on from here"
            report(reason)  # as the driver's _on_fault says it
            return Outcome(RunState.PAUSED, reason, interrupted=True)
        if self.breakpoints:
            hit = self.breakpoints.hit(event, self.ctx)
            if hit is not None:
                return Outcome(RunState.PAUSED, hit)
        if self.target is not None and self.target(event):
            return Outcome(RunState.PAUSED, f"stepped to {event.value}")
        # Clear first, then look again: a command or Ctrl-C arriving meanwhile (another
        # thread, a signal handler) sets the flag after this line and is not lost.
        self.flags.listening = False
        if self.busy():
            self.flags.listening = True
        return None

    def where(self, event: Event) -> str:
        """Where the run is at ``event``, as the reasons say it."""
        return f"after {event.value} (epoch {self.ctx.epoch}, batch {self.ctx.iter})"
