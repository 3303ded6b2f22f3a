"""plotly.js as a widget of its own, created once per kernel and shared by every plot."""

from __future__ import annotations

import pathlib

import anywidget

__all__ = ["STATIC", "PlotlyLibrary", "plotly_library"]

STATIC = pathlib.Path(__file__).resolve().parent.parent / "static"
"""The built front-end bundles (``js/build.mjs`` writes them; they are committed)."""


class PlotlyLibrary(anywidget.AnyWidget):
    """Ships plotly.js to the browser once per kernel.

    anywidget sends a widget's ``_esm`` with every model it creates, so each plot-bearing
    widget referencing this one (a ``widget_serialization`` trait) instead of bundling
    plotly.js keeps the ~1.2 MB on the wire once. Use :func:`plotly_library`.
    """

    _esm = STATIC / "plotly.js"


_library: PlotlyLibrary | None = None


def plotly_library() -> PlotlyLibrary:
    """The kernel's :class:`PlotlyLibrary` (created on first use, again if it was closed)."""
    global _library
    if _library is None or _library.comm is None:
        _library = PlotlyLibrary()
    return _library
