"""Limits and defaults that the Python side and the dashboard's front end share.

This is the one Python source for them. The front end (``js/src``) cannot import Python and
keeps its own copies; change both together:

- :data:`LOG_MAX`: ``js/src/store.js`` (``const LOG_MAX = 300``).
- :data:`STREAM_CAPACITY`, :data:`STREAM_BETA`: ``js/src/store.js``'s initial state
  (``stream: { capacity: 2000, beta: 0.98 }``); every snapshot then sends the run's values.
- :data:`SET_COLORS`: ``js/src/dashboard.css`` (``--lw-train``, ``--lw-valid`` fallbacks) and
  ``js/src/parts/plots.js`` (the same fallbacks again).
"""

from __future__ import annotations

__all__ = ["LOG_MAX", "SET_COLORS", "STREAM_BETA", "STREAM_CAPACITY"]

LOG_MAX = 300
"""Event-log entries kept for a snapshot (the browser keeps as many)."""

STREAM_CAPACITY = 2000
"""Points kept per per-batch loss stream before neighbours are averaged in pairs."""

STREAM_BETA = 0.98
"""EMA smoothing of the per-batch loss stream."""

SET_COLORS = {"train": "#1976d2", "valid": "#ef6c00"}
"""Line colours by set (``fitted.plot()`` and the dashboard)."""
