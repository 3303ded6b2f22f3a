"""Ctrl-C while a run is driven in the foreground: pause at the next event boundary.

Kept apart from :mod:`luzwidget.control.driver` because it is the one part that deals with
signals: the driver says when the loop is live (:meth:`CtrlC.arm`, :meth:`CtrlC.disarm`)
and this module decides what a press means at that instant.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from luzwidget.core.report import report

__all__ = ["CtrlC"]


class CtrlC:
    """What Ctrl-C does during one blocking drive.

    While the loop is live, the first press pauses at the next event boundary (always a
    consistent point, so the run resumes bit-identical); a second press interrupts user
    code (forward, loss, backward, a callback: where ``in_user_code()`` is true) at once,
    and that step is redone from its start on resume; a third interrupts anywhere.

    While the loop is not live (before it starts, and while the run settles its state) a
    press never raises: it is remembered and pauses the next drive of this call at its
    first event. The handler stays installed until the state is settled, so no press can
    leave a run marked ``"running"`` with nothing driving it.

    Parameters
    ----------
    request
        Asks the run to pause at the next event; returns whether that was asked already.
    in_user_code
        True while user code runs (there a press can interrupt at once).
    """

    def __init__(self, request: Callable[[], bool], in_user_code: Callable[[], bool]) -> None:
        self._request = request
        self._in_user_code = in_user_code
        self._live = False
        self._pending = False
        self._presses = 0

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Install the handler (main thread only); restore the previous one on exit."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        try:
            previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main interpreter, or signals unavailable
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def arm(self) -> None:
        """The loop is live now; a press remembered meanwhile asks for a pause."""
        self._presses = 0
        self._live = True
        if self._pending:
            self._pending = False
            self._press()

    def disarm(self) -> None:
        """The loop stopped; until the next :meth:`arm`, presses are only remembered."""
        self._live = False

    def _handler(self, signum: int, frame: Any) -> None:
        if self._live:
            self._press()
        else:
            self._pending = True

    def _press(self) -> None:
        self._presses += 1
        if not self._request():
            self._presses = 1
            report(
                "Ctrl-C: pausing at the next event (press again to interrupt the current "
                "step at once)."
            )
        elif self._in_user_code() or self._presses >= 3:
            self._live = False  # raise once; what handles it runs with the loop stopped
            raise KeyboardInterrupt
