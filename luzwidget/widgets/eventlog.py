"""The event-log part (``parts/log.js``): events while stepping, state changes, acks, errors.

Each entry is ``{"kind", "text"}``, plus ``"n"`` (the event's number) for an event and
``"where"`` (``"epoch 2 · batch 5"``) for a state change. Entries are built from what the run
says in structured form (its ``state``, ``reason``, ``events``, ``n_events``), never by
reading its text.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from luzwidget.core.limits import LOG_MAX
from luzwidget.core.states import RunState

if TYPE_CHECKING:
    from luzwidget.control.run import Run
    from luzwidget.widgets.commands import Ack

__all__ = ["EVENTS_LOGGED_PER_TICK", "EventLog", "error_part"]

EVENTS_LOGGED_PER_TICK = 40
"""At a pause, up to this many events since the last pause are listed; more are counted."""

EVENTS_BEFORE_PAUSE = 8
"""When more were counted, the last this many events before the pause are still listed."""

_KIND: dict[str, str] = {RunState.PAUSED: "pause", RunState.ERROR: "error"}
"""The entry kind of a state change, by the state entered (else "info")."""


class EventLog:
    """The last :data:`~luzwidget.core.limits.LOG_MAX` entries, and those added since the
    last drain.

    Parameters
    ----------
    run : Run
        The run followed (its event count and state when the log starts).
    """

    def __init__(self, run: Run) -> None:
        self.entries: deque[dict[str, Any]] = deque(maxlen=LOG_MAX)
        self._new: list[dict[str, Any]] = []
        self._seen = run.n_events
        self._state: str = run.state

    def add(self, kind: str, text: str, n: int | None = None, where: str | None = None) -> None:
        """Log one entry (``kind``: event, info, ok, refused, pause or error)."""
        entry: dict[str, Any] = {"kind": kind, "text": text}
        if n is not None:
            entry["n"] = n
        if where is not None:
            entry["where"] = where
        self.entries.append(entry)
        self._new.append(entry)

    def add_ack(self, ack: Ack) -> None:
        """Log the answer to a command."""
        self.add("ok" if ack.ok else "refused", ack.message)

    def follow(self, run: Run, state: str) -> None:
        """Log what happened since the last call: the events (when not running), a new state.

        A run that ran and paused again between two calls (a quick step) is in the same state
        as before, but it moved: its events and its new pause are logged all the same.
        """
        moved = self._events(run) if state != RunState.RUNNING else False
        if state != self._state or moved:
            self._state = state
            if state != RunState.RUNNING:
                reason = run.reason
                ctx = run.ctx
                where = f"epoch {ctx.epoch} · batch {ctx.iter or 0}"
                self.add(
                    _KIND.get(state, "info"), f"{state}: {reason}" if reason else state, None, where
                )

    def _events(self, run: Run) -> bool:
        """Log the events since the last look; whether there were any."""
        n = run.n_events
        d, self._seen = n - self._seen, n
        if d <= 0:
            return False
        shown = d if d <= EVENTS_LOGGED_PER_TICK else EVENTS_BEFORE_PAUSE
        recent = list(run.events)[-shown:]
        first = n - len(recent) + 1
        if len(recent) < d:  # the numbers go on where the last entry left off: no jump
            start = n - d + 1
            self.add("info", f"… {first - start:,} events (#{start:,}-#{first - 1:,})")
        for i, event in enumerate(recent):
            self.add("event", event.value, first + i)
        return True

    def drain(self) -> list[dict[str, Any]]:
        """The entries added since the last drain (for an update)."""
        new, self._new = self._new, []
        return new

    def snapshot(self) -> list[dict[str, Any]]:
        """Every entry kept (for a new view)."""
        return list(self.entries)


def error_part(run: Run) -> dict[str, str] | None:
    """The error box: the exception's type, message and traceback while the run failed."""
    err = run.error
    if err is None or run.state != RunState.ERROR:
        return None
    return {
        "type": type(err).__name__,
        "message": str(err),
        "traceback": str(run.error_traceback or ""),
    }
