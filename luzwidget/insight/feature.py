"""Seeing inside the model as a run's feature: what the composition root installs
(``run.features.insight``): ``run.layers()``, ``run.activations()``, the check behind
``run.breakpoints.nonfinite`` and the sentinel (``run.breakpoints.sentinel``, see
:mod:`luzwidget.insight.sentinel`). Each view costs nothing until asked for (see
:mod:`luzwidget.insight.attached`); the sentinel's default checks cost a few flag reads
per batch."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from luzwidget.core.exceptions import ConfigError
from luzwidget.insight.attached import InsightState
from luzwidget.insight.history import WHATS, HistoryTracker
from luzwidget.insight.layers import activations, layers
from luzwidget.insight.nonfinite import NonfiniteWatch
from luzwidget.insight.sentinel import Sentinel
from luzwidget.insight.trackers import tracker

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Insight", "install", "preview"]


class Insight(InsightState):
    """A run's layer views, NaN/inf watch and sentinel."""

    def __init__(self, run: Any) -> None:
        super().__init__(run)
        self.watch = NonfiniteWatch(run)
        self.sentinel = Sentinel(run)
        self.chosen = False  # track_layers() was called: layer_history() starts nothing

    def layers(self) -> pd.DataFrame:
        """See :meth:`luzwidget.Run.layers`."""
        return layers(self.run)

    def activations(self) -> pd.DataFrame:
        """See :meth:`luzwidget.Run.activations`."""
        return activations(self.run)

    def layer_history(self) -> pd.DataFrame:
        """See :meth:`luzwidget.Run.layer_history` (the first call starts the recording,
        unless ``track_layers`` was called)."""
        history = tracker(self.run, HistoryTracker)
        if not self.chosen:
            self.chosen = True
            history.track(True)
        return history.frame()

    def layer_histograms(self, name: str, what: str) -> pd.DataFrame:
        """See :meth:`luzwidget.Run.layer_histograms`."""
        if what not in WHATS:
            raise ConfigError(f"layer_histograms: what must be one of {list(WHATS)}, got {what!r}.")
        history = tracker(self.run, HistoryTracker)
        known = history.names(what)
        if known and name not in known:
            raise ConfigError(
                f"layer_histograms: no {what} histogram of {name!r}; the layers with one: {known}."
            )
        return history.histograms(name, what)

    def track_layers(self, on: bool, every_s: float | None) -> None:
        """See :meth:`luzwidget.Run.track_layers`."""
        ok = isinstance(every_s, int | float) and 0 <= every_s < math.inf
        if every_s is not None and not ok:
            raise ConfigError(
                f"track_layers: every_s must be a number of seconds >= 0, got {every_s!r}."
            )
        history = tracker(self.run, HistoryTracker)
        if every_s is not None:
            history.every_s = float(every_s)
        self.chosen = True
        history.track(bool(on))

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
