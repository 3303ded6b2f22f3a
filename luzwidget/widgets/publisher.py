"""A throttled ticker on the kernel's main event loop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

__all__ = ["Publisher", "main_loop"]

log = logging.getLogger("luzwidget.widgets")


def main_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread (the kernel's, in Jupyter), or None headless."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Publisher:
    """Call ``tick()`` on the main thread at most every ``min_gap`` seconds.

    While ``tick()`` returns True (something is going on) it is called again after
    ``interval`` seconds; once it returns False the publisher sleeps until :meth:`wake`
    (main thread) or :meth:`wake_threadsafe` (any thread). Without an event loop (tests,
    scripts) nothing is scheduled: call ``tick()`` yourself.

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
        self._handle: asyncio.TimerHandle | None = None
        self._last = -float("inf")
        self.on_sleep: Callable[[], None] | None = None
        self.closed = False

    @property
    def active(self) -> bool:
        """True while a tick is scheduled."""
        return self._handle is not None

    def wake(self, soon: bool = True) -> None:
        """Schedule a tick (main thread); a no-op if one is already scheduled."""
        if self.loop is None or self.closed or self._handle is not None:
            return
        delay = max(0.0, self._last + self.min_gap - time.monotonic()) if soon else self.interval
        self._handle = self.loop.call_later(delay, self._run)

    def wake_threadsafe(self) -> None:
        """Schedule a tick from any thread (e.g. the training thread)."""
        if self.loop is not None and not self.closed:
            try:
                self.loop.call_soon_threadsafe(self.wake)
            except RuntimeError:  # loop closed: the kernel is shutting down
                pass

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
        except Exception:  # never let a dashboard bug kill the kernel's loop
            log.exception("[luzwidget] dashboard update failed")
            keep = False
        if keep:
            self._handle = self.loop.call_later(self.interval, self._run)  # type: ignore[union-attr]
        elif self.on_sleep is not None:
            self.on_sleep()

    def close(self) -> None:
        """Stop ticking for good."""
        self.closed = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
