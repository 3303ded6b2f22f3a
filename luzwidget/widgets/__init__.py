"""Notebook widgets of luzwidget: the run dashboard (``run.dashboard()``).

``Dashboard`` loads anywidget/ipywidgets on first use (a module ``__getattr__``), so the
headless parts here (``collector``, ``commands``, ``summaries``...) import without them: a
training process serving its run (``luzwidget.remote``) reuses them. The core's one door
in is :meth:`luzwidget.Run.dashboard`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Dashboard"]


def __getattr__(name: str) -> Any:
    if name == "Dashboard":
        from luzwidget.widgets.dashboard import Dashboard

        return Dashboard
    raise AttributeError(f"module 'luzwidget.widgets' has no attribute {name!r}")
