"""What a run shows: its state and why, its error, its result, the events it went through.

:class:`Shown` is the part of the :class:`~luzwidget.control.driver.Driver` that only
records; ``run.state``, ``run.reason``, ``run.error``... read it, and listeners hear of
every state change.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any

from luzwidget.core.events import Event
from luzwidget.core.states import RunState

__all__ = ["Listener", "Shown"]

Listener = Callable[[Any], None]


class Shown:
    """State, reason, error, result and recent events of one run, and its listeners.

    Parameters
    ----------
    owner
        What listeners are called with (the :class:`~luzwidget.Run`).
    """

    def __init__(self, owner: Any) -> None:
        self.owner = owner
        self.state, self.reason, self.interrupted = RunState.READY, "", False
        self.error: BaseException | None = None
        self.error_traceback = ""
        self.notice = ""
        self.result: Any = None
        self.event: Event | None = None
        self.events: deque[Event] = deque(maxlen=100)
        self.n_events = 0
        self.listeners: list[Listener] = []

    def _set_state(self, state: RunState, reason: str = "", notify: bool = True) -> None:
        self.state, self.reason = state, reason
        if notify:
            self._notify()

    def _notify(self) -> None:
        for listener in list(self.listeners):
            with contextlib.suppress(Exception):
                listener(self.owner)

    def _record(self, event: Event) -> None:
        self.event = event
        self.n_events += 1
        self.events.append(event)
