"""The one channel for the messages luzwidget itself prints: ``[luzwidget] ...`` on stderr.

Every line the library writes for the user (Ctrl-C, a background error, an edit that
could not be applied, early stopping, restored weights, a dashboard bug with its
traceback) goes through :func:`report`, so they all look alike and land in one stream that
a notebook shows and a script can separate from its own output. What a user asked to see
(``run.show_loop()``, the progress callback's bars and metrics lines, as luz prints them)
is output, not a message, and is printed where it belongs.
"""

from __future__ import annotations

import sys
import traceback

__all__ = ["PREFIX", "report"]

PREFIX = "[luzwidget]"


def report(message: str, error: BaseException | None = None) -> None:
    """Print ``[luzwidget] message`` on stderr (flushed, so it shows before a traceback).

    Parameters
    ----------
    message
        What happened, in one line or a few.
    error
        An unexpected exception (a bug) behind the message: its traceback follows it.
    """
    text = f"{PREFIX} {message}"
    if error is not None:
        text += "\n" + "".join(traceback.format_exception(error)).rstrip()
    print(text, file=sys.stderr, flush=True)
