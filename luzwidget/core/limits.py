"""Limits and defaults that the Python side and the dashboard's front end share.

This is the one source for them. The front end (``js/src``) gets :data:`LOG_MAX`,
:data:`STREAM_CAPACITY` and :data:`STREAM_BETA` in every snapshot (``log_max``, ``capacity``,
``beta``) and keeps no copy; the stream is thinned by the kernel alone. Only the colours are
copied, because CSS needs them before any message:

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

SET_COLORS = {"train": "#1976d2", "valid": "#e65100"}
"""Line colours by set (``fitted.plot()`` and the dashboard); at least 3:1 on white."""
