"""Notebook widgets of luzwidget: the run dashboard, live plots, and static figures.

Importing this package loads anywidget/ipywidgets; the headless core never does.
"""

from __future__ import annotations

from luzwidget.widgets.dashboard import Dashboard, LivePlot
from luzwidget.widgets.figures import records_figure

__all__ = ["Dashboard", "LivePlot", "records_figure"]
