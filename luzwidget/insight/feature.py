"""Seeing inside the model as a run's feature: what the composition root installs
(``run.features.insight``): ``run.layers()``, ``run.activations()``, the check behind
``run.breakpoints.nonfinite`` and the sentinel (``run.breakpoints.sentinel``, see
:mod:`luzwidget.insight.sentinel`). Each view costs nothing until asked for (see
:mod:`luzwidget.insight.attached`); the sentinel's default checks cost a few flag reads
per batch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from luzwidget.insight.attached import InsightState
from luzwidget.insight.layers import activations, layers
from luzwidget.insight.nonfinite import NonfiniteWatch
from luzwidget.insight.sentinel import Sentinel

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Insight", "install", "preview"]


class Insight(InsightState):
    """A run's layer views, NaN/inf watch and sentinel."""

    def __init__(self, run: Any) -> None:
        super().__init__(run)
        self.watch = NonfiniteWatch(run)
        self.sentinel = Sentinel(run)

    def layers(self) -> pd.DataFrame:
        """See :meth:`luzwidget.Run.layers`."""
        return layers(self.run)

    def activations(self) -> pd.DataFrame:
        """See :meth:`luzwidget.Run.activations`."""
        return activations(self.run)

    def detach(self) -> None:
        """Take the views out of the run: hooks removed, callbacks gone (at the next event
        boundary while it trains)."""
        self.watch.enabled = False
        self.sentinel.disable("all")
        for view in self.views.values():
            view.want(False)
        self.views.clear()
        if self.run.features.insight is self:
            self.run.features.insight = None


def preview() -> list[Any]:
    """The callbacks insight puts in every run of a fit, as ``show_loop`` shows them for a
    fit not built yet (never called: they have no run)."""
    return [Sentinel.__new__(Sentinel)]


def install(run: Any) -> Insight:
    """Give ``run`` its layer views and NaN/inf watch."""
    insight = Insight(run)
    run.features.insight = insight
    return insight
