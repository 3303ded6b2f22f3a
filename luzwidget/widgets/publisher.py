"""A throttled ticker on the kernel's main event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable

from luzwidget.core.report import report

__all__ = ["Publisher", "main_loop"]


def main_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread (the kernel's, in Jupyter), or None headless."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Publisher:
    """Call ``tick()`` on the main thread's event loop, at most every ``min_gap`` seconds.

    While ``tick()`` returns True (something is going on) it is called again after
    ``interval`` seconds; once it returns False the publisher sleeps until :meth:`wake`
    (from any thread). Without an event loop (tests, scripts) nothing is scheduled: call
    ``tick()`` yourself. Create it on the thread that runs the loop.

    Parameters
    ----------
    tick : callable () -> bool
        Publishes once; returns whether to keep ticking.
    interval : float, default 0.1
        Seconds between ticks while active (10 Hz).
    min_gap : float, default 0.05
        Least time between two ticks, also after a wake (so at most 20 ticks/s).
    loop : asyncio event loop or None
        Where to schedule; default: the loop running in the calling thread.
    """

    def __init__(
        self,
        tick: Callable[[], bool],
        interval: float = 0.1,
        min_gap: float = 0.05,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._tick = tick
        self.interval = interval
        self.min_gap = min_gap
        self.loop = loop if loop is not None else main_loop()
        self._thread = threading.get_ident()  # the loop's thread: where ticks run
        self._handle: asyncio.TimerHandle | None = None
        self._last = -float("inf")
        self.on_sleep: Callable[[], None] | None = None
        self.closed = False

    @property
    def active(self) -> bool:
        """True while a tick is scheduled."""
        return self._handle is not None

    def wake(self, urgent: bool = False) -> None:
        """Schedule a tick soon; a no-op if one is already scheduled. Any thread.

        ``urgent`` (an ack to send, a state change): tick at once, even within ``min_gap``
        of the last tick or with a later tick already scheduled, so a click's effect is
        shown when it happens rather than at the next tick.

        Comm messages may be handled off the main thread (ipykernel 7 runs them in a
        subshell thread while the main shell is busy), so a wake from another thread goes
        through ``call_soon_threadsafe``, which also wakes the sleeping loop.
        """
        if self.loop is None or self.closed:
            return
        if threading.get_ident() != self._thread:
            # RuntimeError: the loop is closed (the kernel is shutting down)
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self._schedule, urgent)
            return
        self._schedule(urgent)

    def _schedule(self, urgent: bool = False) -> None:
        if self.closed:
            return
        if self._handle is not None:
            if not urgent or self._handle.when() <= self.loop.time():  # type: ignore[union-attr]
                return
            self._handle.cancel()  # due later: tick now instead
        delay = 0.0 if urgent else max(0.0, self._last + self.min_gap - time.monotonic())
        self._handle = self.loop.call_later(delay, self._run)  # type: ignore[union-attr]  # wake() saw a loop

    def ticked(self) -> None:
        """Note that a tick just happened (ticks driven from elsewhere count too)."""
        self._last = time.monotonic()

    def _run(self) -> None:
        self._handle = None
        if self.closed:
            return
        self.ticked()
        try:
            keep = self._tick()
        except Exception as exc:  # never let a dashboard bug kill the kernel's loop
            report("dashboard update failed", error=exc)
            keep = False
        if keep:
            self._handle = self.loop.call_later(self.interval, self._run)  # type: ignore[union-attr]  # _run runs on the loop
        elif self.on_sleep is not None:
            self.on_sleep()

    def close(self) -> None:
        """Stop ticking for good."""
        self.closed = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
