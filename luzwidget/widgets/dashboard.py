"""The dashboard widget: controls, progress, inspector, edits, live plots and event log."""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import Any

import anywidget
import traitlets
from ipywidgets import widget_serialization

from luzwidget.run import RunState
from luzwidget.widgets._library import STATIC, PlotlyLibrary, plotly_library
from luzwidget.widgets.commands import handle_command
from luzwidget.widgets.feed import DashboardFeed
from luzwidget.widgets.publisher import Publisher
from luzwidget.widgets.state import Collector

__all__ = ["PARTS", "Dashboard", "LivePlot"]

log = logging.getLogger("luzwidget.widgets")

PARTS = ("controls", "progress", "plots", "edits", "inspector", "log")
"""Every part a dashboard can show, in display order."""


class Dashboard(anywidget.AnyWidget):
    """Control, inspect, edit and plot a :class:`~luzwidget.Run` live in a notebook.

    Python sends at most one message per tick (10 Hz while the run is busy, nothing when it
    is idle), holding only what changed; the browser answers commands (buttons, edits) with
    custom messages that the run applies at its next event boundary.

    Parameters
    ----------
    run : Run
        The run to show.
    parts : sequence of str, optional
        Which parts to show (default: all of :data:`PARTS`).
    interval : float, default 0.1
        Seconds between updates while the run is busy.

    Examples
    --------
    >>> dash = Dashboard(run)        # doctest: +SKIP
    >>> dash                         # doctest: +SKIP  (shows it; or run.dashboard())
    """

    _esm = STATIC / "dashboard.js"
    _css = STATIC / "dashboard.css"
    _lib = traitlets.Instance(PlotlyLibrary).tag(sync=True, **widget_serialization)
    _uid = traitlets.Unicode().tag(sync=True)
    parts = traitlets.List(traitlets.Unicode(), help="Parts shown (list of str).").tag(sync=True)

    def __init__(
        self, run: Any, *, parts: Any = None, interval: float = 0.1, **kwargs: Any
    ) -> None:
        chosen = list(PARTS if parts is None else parts)
        unknown = sorted(set(chosen) - set(PARTS))
        if unknown:
            raise ValueError(f"parts: unknown {unknown}; choose from {list(PARTS)}.")
        super().__init__(_lib=plotly_library(), _uid=uuid.uuid4().hex, parts=chosen, **kwargs)
        self._run = run
        self._ready = False
        self._want_snapshot = False
        self.messages_sent = 0
        self._publisher = Publisher(self._loop_tick, interval)
        self._feed = DashboardFeed(
            self._direct_tick,
            self._publisher.wake_threadsafe,
            interval,
            direct=self._publisher.loop is not None,
        )
        self._publisher.on_sleep = self._on_sleep
        self._collector = Collector(run, self._feed)
        _attach(run, self._feed)
        run.ctx.observe(self._collector.on_records, "records")
        if hasattr(run, "add_listener"):
            run.add_listener(self._on_state)
        self.on_msg(self._on_msg)
        self._shell = _register_cell_hook(self._after_cell)
        self._publisher.wake()

    @property
    def run(self) -> Any:
        """The run shown."""
        return self._run

    # -- publishing -----------------------------------------------------------------------
    def tick(self) -> dict[str, Any] | None:
        """Publish once: send at most one message holding everything that changed.

        Called by the kernel's event loop while the run is busy, by the training loop when
        it runs on the main thread, or by hand headless. Returns the message sent, if any.
        """
        full = self._want_snapshot
        self._want_snapshot = False
        msg = self._collector.collect(full=full)
        if msg is None or not (self._ready or full):
            return None
        self.send(msg)
        self.messages_sent += 1
        return msg

    def _loop_tick(self) -> bool:
        sent = self.tick()
        return sent is not None or self._run.state == RunState.RUNNING

    def _direct_tick(self) -> None:
        try:
            self._publisher.ticked()
            self.tick()
        except Exception:  # the training loop must never see a dashboard bug
            log.exception("[luzwidget] dashboard update failed")

    def _on_sleep(self) -> None:
        self._feed.sleeping = True

    def _after_cell(self, *_: Any) -> None:
        self._publisher.wake()

    def _on_state(self, _: Any) -> None:
        # Run listener: called by whichever thread drives the run, at every state change.
        self._publisher.wake_threadsafe()

    # -- messages from the browser --------------------------------------------------------
    def _on_msg(self, _: Any, content: Any, buffers: Any = None) -> None:
        if not isinstance(content, dict):
            return
        if content.get("cmd") == "hello":
            self._ready = self._want_snapshot = True
        else:
            self._collector.add_ack(handle_command(self._run, content))
        self._feed.sleeping = False
        self._publisher.wake()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # Displayed: send a snapshot at the next tick, even before the browser says hello
        # (in a blocking cell the kernel reads no message until the cell ends).
        self._ready = self._want_snapshot = True
        self._publisher.wake()
        return super()._repr_mimebundle_(**kwargs)

    def close(self) -> None:
        """Stop publishing, detach from the run and close the widget."""
        if not hasattr(self, "_publisher"):  # __init__ failed half-way
            super().close()
            return
        if self._publisher.closed:
            return
        self._publisher.close()
        run = self._run
        _detach(run, self._feed)
        with contextlib.suppress(ValueError):
            run.ctx.unobserve(self._collector.on_records, "records")
        if hasattr(run, "remove_listener"):
            run.remove_listener(self._on_state)
        if self._shell is not None:
            with contextlib.suppress(ValueError):
                self._shell.events.unregister("post_run_cell", self._after_cell)
            self._shell = None
        super().close()


class LivePlot(Dashboard):
    """Progress and live plots of a run, without controls (e.g. for a blocking ``fit()``)."""

    def __init__(self, run: Any, **kwargs: Any) -> None:
        kwargs.setdefault("parts", ("progress", "plots"))
        super().__init__(run, **kwargs)


def _attach(run: Any, feed: DashboardFeed) -> None:
    """Add the feed to the run's callbacks (at the next event boundary when it trains)."""
    if hasattr(run, "add_callback"):
        run.add_callback(feed)
    else:
        run.ctx.callbacks = [*run.ctx.callbacks, feed]


def _detach(run: Any, feed: DashboardFeed) -> None:
    if not any(cb is feed for cb in run.ctx.callbacks):
        return
    if hasattr(run, "remove_callback"):
        run.remove_callback(feed)
    else:
        run.ctx.callbacks = [cb for cb in run.ctx.callbacks if cb is not feed]


def _register_cell_hook(fn: Any) -> Any:
    """Call ``fn`` after every cell (user code may have stepped or edited the run)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None or not hasattr(shell, "events"):
        return None
    shell.events.register("post_run_cell", fn)
    return shell
