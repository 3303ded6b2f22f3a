"""The one channel for the messages luzwidget itself prints: ``[luzwidget] ...`` on stderr.

Every line the library writes for the user (Ctrl-C, a background error, an edit that
could not be applied, early stopping, restored weights) goes through :func:`report`, so
they all look alike and land in one stream that a notebook shows and a script can
separate from its own output.
"""

from __future__ import annotations

import sys

__all__ = ["PREFIX", "report"]

PREFIX = "[luzwidget]"


def report(message: str) -> None:
    """Print ``[luzwidget] message`` on stderr (flushed, so it shows before a traceback)."""
    print(f"{PREFIX} {message}", file=sys.stderr, flush=True)
