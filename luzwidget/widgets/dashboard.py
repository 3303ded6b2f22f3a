"""The dashboard widget: controls, progress, inspector, edits, live plots and event log."""

from __future__ import annotations

import contextlib
import threading
import uuid
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets
from ipywidgets import widget_serialization

from luzwidget.core.report import report
from luzwidget.core.states import RunState
from luzwidget.widgets._library import STATIC, PlotlyLibrary, plotly_library
from luzwidget.widgets.collector import Collector
from luzwidget.widgets.commands import handle_command
from luzwidget.widgets.feed import DashboardFeed
from luzwidget.widgets.playground_panel import PlaygroundPanel
from luzwidget.widgets.publisher import Publisher
from luzwidget.widgets.static import static_html
from luzwidget.widgets.travel import travel_view

if TYPE_CHECKING:
    from luzwidget.control.run import Run

__all__ = ["PARTS", "Dashboard"]


PARTS = (
    "controls",
    "progress",
    "travel",
    "plots",
    "edits",
    "inspector",
    "log",
    "layers",
    "batch",
    "history",
    "playground",
)
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
    image_shape : tuple of int, optional
        ``(H, W)`` or ``(C, H, W)``: how the Batch panel draws one input item.

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
        self,
        run: Run,
        *,
        parts: Any = None,
        interval: float = 0.1,
        image_shape: tuple[int, ...] | None = None,
        **kwargs: Any,
    ) -> None:
        chosen = list(PARTS if parts is None else parts)
        unknown = sorted(set(chosen) - set(PARTS))
        if unknown:
            raise ValueError(f"parts: unknown {unknown}; choose from {list(PARTS)}.")
        super().__init__(_lib=plotly_library(), _uid=uuid.uuid4().hex, parts=chosen, **kwargs)
        self._ready = False
        self._want_snapshot = False
        self._interval = interval
        self._image_shape = image_shape
        self._shown: dict[int, tuple[Run, DashboardFeed, Collector]] = {}
        self._display_id: str | None = None
        self._static_state: str | None = None
        self._publisher = Publisher(self._loop_tick, interval)
        self._publisher.on_sleep = self._on_sleep
        self._attach(run)
        self.on_msg(self._on_msg)
        self._shell = _register_cell_hook(self._after_cell)
        self._publisher.wake()

    def _attach(self, run: Run) -> None:
        """Show ``run``: its feed callback, records observer and state listener (made once
        per run shown; a run shown before keeps feeding its collector, so that switching
        back finds its whole loss stream)."""
        self._run = run
        known = self._shown.get(id(run))
        if known is not None:
            self._feed, self._collector = known[1], known[2]
            return
        self._feed = DashboardFeed(
            self._direct_tick,
            self._publisher.wake,
            self._interval,
            direct=self._publisher.loop is not None,
        )
        self._collector = Collector(
            run, self._feed, image_shape=self._image_shape, playground="playground" in self.parts
        )
        self._collector.travel.wake = self._publisher.wake  # branches training elsewhere
        self._shown[id(run)] = (run, self._feed, self._collector)
        if "edits" in self.parts and run.state != RunState.DONE:
            # "Pause on NaN/inf loss" starts ticked where it can be unticked (no cost per
            # batch: see Breakpoints.nonfinite_loss); a headless run keeps it off.
            run.breakpoints.nonfinite_loss = True
        run.add_callback(self._feed)  # at the next event boundary when it trains
        run.ctx.observe(self._collector.on_records, "records")
        run.add_listener(self._on_state)

    def _detach(self) -> None:
        for run, feed, collector in self._shown.values():
            if any(cb is feed for cb in run.ctx.callbacks):
                run.remove_callback(feed)
            with contextlib.suppress(ValueError):
                run.ctx.unobserve(collector.on_records, "records")
            run.remove_listener(self._on_state)
            collector.travel.close()
            collector.close()  # the Layers and Batch panels' subscriptions
        self._shown.clear()

    def drive(self, run: Run) -> None:
        """Show and control ``run`` from now on (a branch of the same family, say); the
        views redraw from a full snapshot of it."""
        if run is self._run:
            return
        opened = [name for name, panel in self._collector.panels.items() if panel.open]
        self._collector.close()  # the run left keeps its feed, not the panels' cost
        self._attach(run)
        for name in opened:  # the browser still shows them open
            self._collector.panels[name].set_open(True)
        self._want_snapshot = True
        self._publisher.wake()

    @property
    def run(self) -> Run:
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
        if "status" in msg:
            self._refresh_static()
        return msg

    def _loop_tick(self) -> bool:
        sent = self.tick()
        return sent is not None or self._run.state == RunState.RUNNING

    def _direct_tick(self) -> None:
        try:
            self._publisher.ticked()
            self.tick()
        except Exception as exc:  # the training loop must never see a dashboard bug
            report("dashboard update failed", error=exc)

    def _on_sleep(self) -> None:
        self._feed.sleeping = True

    def _after_cell(self, *_: Any) -> None:
        self._publisher.wake()

    def _on_state(self, _: Any) -> None:
        # Run listener: called by whichever thread drives the run, at every state change;
        # sent at once, not at the next tick (a click's effect shows when it happens).
        self._publisher.wake(urgent=True)
        if self._display_id is not None and threading.current_thread() is threading.main_thread():
            # A cell drives the run: publish now, inside the cell (its output is updated then).
            self.tick()
            self._refresh_static()

    # -- messages from the browser --------------------------------------------------------
    def _on_msg(self, _: Any, content: Any, buffers: Any = None) -> None:
        if not isinstance(content, dict):
            return
        if content.get("cmd") == "hello":
            self._ready = self._want_snapshot = True
        else:
            collector = self._collector
            collector.commanding += 1  # the event log waits for this command's ack
            try:
                view = travel_view(self)  # the time-travel part's own (widgets/travel.py)
                ack = handle_command(self._run, content, collector.panels, view)
                self._collector.add_ack(ack)  # a branch command switched to the branch's
            finally:
                collector.commanding -= 1
        self._feed.sleeping = False
        self._publisher.wake(urgent=True)  # the ack goes out now

    def panel(self, name: str, open: bool = True) -> None:
        """Open (or close) the ``"layers"``, ``"batch"``, ``"history"`` (Layers over time) or
        ``"playground"`` panel, as clicking its title does.

        A closed panel costs the run nothing; an open one reads the model or the batch at
        each pause and step, and while training at most twice a second.
        """
        panels = self._collector.panels
        if name not in panels:
            raise ValueError(f"name: unknown panel {name!r}; choose from {sorted(panels)}.")
        panels[name].set_open(bool(open))
        self._publisher.wake()

    def playground(self, dims: Any = None, open: bool = True) -> None:
        """Show the Playground panel for the input features ``dims`` (one or two indices,
        e.g. ``(0, 1)``; None: the first one or two), the others held at their mean.

        Raises
        ------
        ConfigError
            If ``dims`` is not one or two distinct feature indices.
        """
        panel = self._collector.panels["playground"]
        if isinstance(panel, PlaygroundPanel):
            panel.set_dims(dims)
        panel.set_open(bool(open))
        self._publisher.wake()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # Displayed: send a snapshot at the next tick, even before the browser says hello
        # (in a blocking cell the kernel reads no message until the cell ends).
        self._ready = self._want_snapshot = True
        self._publisher.wake()
        return self._bundle(super()._repr_mimebundle_(**kwargs))

    def _bundle(self, bundle: Any) -> Any:
        """Add the static text/html next to the widget view: what viewers without JS show."""
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if isinstance(data, dict):
            data["text/html"] = self.static_html()
            self._static_state = self._run.state
        return bundle

    def _ipython_display_(self) -> None:
        # display(dash) or a last-line dashboard: shown with a display id, so the static
        # text/html can be updated in place when the run ends (see tick()).
        from IPython.display import display

        if self._display_id is None:
            self._display_id = uuid.uuid4().hex
        bundle = self._repr_mimebundle_()
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        display(data, metadata=metadata, raw=True, display_id=self._display_id)

    def static_html(self) -> str:
        """The dashboard as static HTML (state, metrics table, SVG curves), no JavaScript."""
        stream = {name: s.points() for name, s in self._collector.series.items()}
        return static_html(self._run, stream)

    def _refresh_static(self) -> None:
        """At a run's end, rewrite the shown output so its text/html holds the final state."""
        state = self._run.state
        if self._display_id is None or state == self._static_state:
            return
        if state not in (RunState.DONE, RunState.ERROR):
            return
        from IPython.display import update_display

        bundle = self._bundle(super()._repr_mimebundle_())
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        update_display(data, metadata=metadata, raw=True, display_id=self._display_id)

    def close(self) -> None:
        """Stop publishing, detach from the run and close the widget."""
        if not hasattr(self, "_publisher"):  # __init__ failed half-way
            super().close()
            return
        if self._publisher.closed:
            return
        self._publisher.close()
        self._detach()
        if self._shell is not None:
            with contextlib.suppress(ValueError):
                self._shell.events.unregister("post_run_cell", self._after_cell)
            self._shell = None
        super().close()


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
