"""Ctrl-C while a run is driven in the foreground: pause at the next event boundary."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from luzwidget.engine import LoopFlags

__all__ = ["ctrl_c_pauses"]


@contextlib.contextmanager
def ctrl_c_pauses(flags: LoopFlags, request: Any) -> Iterator[None]:
    """While driving on the main thread, Ctrl-C pauses at the next event boundary.

    That point is always consistent, so an interrupted run resumes bit-identical. A
    second Ctrl-C interrupts user code (forward, loss, backward, a callback: where
    ``flags.in_user_code`` is true) at once; that step is redone from its start on resume. A third
    one interrupts anywhere. ``request()`` asks the run to pause at the next event and
    returns whether it had been asked already.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    presses = [0]

    def handler(signum: int, frame: Any) -> None:
        presses[0] += 1
        if not request():
            presses[0] = 1
            print(
                "[luzwidget] Ctrl-C: pausing at the next event (press again to interrupt "
                "the current step at once).",
                file=sys.stderr,
            )
        elif flags.in_user_code or presses[0] >= 3:
            raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main interpreter, or signals unavailable
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
