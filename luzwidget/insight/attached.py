"""A callback that is in a run only while something wants it, and knows when it comes and goes.

The on-demand views of a run (:mod:`luzwidget.insight.layers`,
:mod:`luzwidget.insight.nonfinite`) cost nothing while nobody asks: their callback is not in
the run's callbacks, so the dispatch table has no entry for it, and their forward hooks are
not installed. Wanting one adds it with ``run.add_callback`` (applied at once on a paused
run, at the next event boundary on a run training in another thread);
:meth:`OnDemand.joined` and :meth:`OnDemand.left` are then called on the thread that drives
the run, at that boundary, so hooks are never installed or removed in the middle of a
forward pass."""

from __future__ import annotations

from typing import Any

from luzwidget.core.callback import Callback

__all__ = ["InsightState", "OnDemand", "insight_of"]


class OnDemand(Callback):
    """A callback that adds itself to ``run`` while :meth:`want` says so.

    Subclasses override :meth:`joined` (now in the run's callbacks) and :meth:`left` (out
    of them), and the ``on_<event>`` methods they need, as any callback.
    """

    run_bound = True  # luzwidget's own, for this run only: a branch does not copy it

    def __init__(self, run: Any) -> None:
        self.run = run
        self.wanted = False
        self.present = False
        self._observing = False
        self._adding = self._removing = False  # an add/remove_callback of ours is queued

    def want(self, on: bool, now: bool = False) -> None:
        """Be in the run's callbacks (``True``) or out of them (``False``), from any thread.

        ``now``: change the context's callbacks at once, not through the run's queue (from
        a callback's own method, on the driving thread: under several processes the queue
        of rank 0 is relayed to a boundary agreed with the other ranks, and a callback
        that is each rank's own must not wait for one).
        """
        if on == self.wanted:
            return
        self.wanted = on
        ctx = self.run.ctx
        if on and not self._observing:
            ctx.observe(self._callbacks_changed, "callbacks")
            self._observing = True
        inside = any(cb is self for cb in ctx.callbacks)
        if on and not inside and not self._adding:
            self._adding = True
            if now:
                ctx.callbacks = [*ctx.callbacks, self]
            else:
                self.run.add_callback(self)
        elif not on and inside and not self._removing:
            self._removing = True
            if now:
                ctx.callbacks = [cb for cb in ctx.callbacks if cb is not self]
            else:
                self.run.remove_callback(self)
        # Otherwise a change is still queued; _callbacks_changed puts it right when it lands.

    def joined(self) -> None:
        """Called, on the driving thread, once the callback is in the run's callbacks."""

    def left(self) -> None:
        """Called, on the driving thread, once the callback is out of the run's callbacks."""

    def _callbacks_changed(self, change: Any) -> None:
        ctx = self.run.ctx
        new = list(change["new"])
        count = sum(cb is self for cb in new)
        if count:
            self._adding = False
        else:
            self._removing = False
        if count != int(self.wanted):  # a queued add or remove overtaken by another want()
            others = [cb for cb in new if cb is not self]
            ctx.callbacks = [*others, self] if self.wanted else others
            return
        if count and not self.present:
            self.present = True
            self.joined()
        elif not count and self.present:
            self.present = False
            self.left()
        if not (self.wanted or self._adding or self._removing) and self._observing:
            ctx.unobserve(self._callbacks_changed, "callbacks")
            self._observing = False


class InsightState:
    """What a run's insight feature keeps: its on-demand views, one of each kind, made on
    first use (see :func:`luzwidget.insight.layers.tracker`)."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.views: dict[type[OnDemand], OnDemand] = {}


def insight_of(run: Any) -> InsightState:
    """The insight state of ``run`` (its ``features.insight``).

    Raises
    ------
    ConfigError
        If the run has no insight feature (a Run built by hand).
    """
    state: InsightState = run.features.require(
        "insight", InsightState, "this run has no layer views"
    )
    return state
