"""Notebook widgets of luzwidget: the run dashboard (``run.dashboard()``).

Importing this package loads anywidget/ipywidgets; the headless core never does. The core's
one door in is :meth:`luzwidget.Run.dashboard`, which imports it lazily.
"""

from __future__ import annotations

from luzwidget.widgets.dashboard import Dashboard

__all__ = ["Dashboard"]
