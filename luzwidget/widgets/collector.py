"""What the dashboard shows, read from a run and turned into snapshot and delta messages.

This module is headless (no widget library): :class:`Collector` drains what the run and
its feed produced, asks each part's builder for its piece, and returns plain JSON-safe
dicts holding only what changed; the widget only sends them. One Python part per
front-end part (``js/src/parts``):

========================  ======================================================
``status`` (controls.js)  :func:`luzwidget.widgets.controls.status_part`
``progress``              :class:`luzwidget.widgets.progress.Progress`
``config`` (edits.js)     :func:`luzwidget.widgets.commands.edit_values`
``inspector``             :class:`luzwidget.widgets.inspector.Inspector`
``records``, ``stream``   here, with :class:`luzwidget.widgets.stream.DownsampledSeries`
``log``, ``error``        :class:`luzwidget.widgets.eventlog.EventLog`, ``error_part``
``layers``                :class:`luzwidget.widgets.layers_panel.LayersPanel`
``batch``                 :class:`luzwidget.widgets.batch_panel.BatchPanel`
``history``               :class:`luzwidget.widgets.history_panel.HistoryPanel`
``playground``            :class:`luzwidget.widgets.playground_panel.PlaygroundPanel`
``travel`` (travel.js)    :class:`luzwidget.widgets.travel.Travel`
========================  ======================================================
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from luzwidget.core.events import Event
from luzwidget.core.limits import LOG_MAX, STREAM_BETA, STREAM_CAPACITY
from luzwidget.core.states import RunState
from luzwidget.widgets.batch_panel import BatchPanel
from luzwidget.widgets.commands import Ack, edit_values
from luzwidget.widgets.controls import status_part
from luzwidget.widgets.eventlog import EventLog, error_part
from luzwidget.widgets.history_panel import HistoryPanel
from luzwidget.widgets.inspector import Inspector
from luzwidget.widgets.layers_panel import LayersPanel
from luzwidget.widgets.playground_panel import PlaygroundPanel, playable
from luzwidget.widgets.progress import Progress
from luzwidget.widgets.stream import DownsampledSeries, losses_to_floats, number, stream_delta
from luzwidget.widgets.travel import Travel

if TYPE_CHECKING:
    from luzwidget.control.run import Run
    from luzwidget.widgets.feed import DashboardFeed

__all__ = ["MAX_MARKS", "Collector"]

MAX_MARKS = 50
"""lr-edit markers kept for the loss plot (the latest)."""


class Collector:
    """Drains a run's queues and builds snapshots and deltas for the dashboard (main thread).

    Parameters
    ----------
    run : Run
        The run shown.
    feed : DashboardFeed
        The callback that collects the per-batch loss.
    capacity : int, default 2000
        Points kept per loss stream (:data:`~luzwidget.core.limits.STREAM_CAPACITY`).
    beta : float, default 0.98
        EMA smoothing of the loss stream (:data:`~luzwidget.core.limits.STREAM_BETA`).
    image_shape : tuple of int, optional
        How the Batch panel reshapes one input item to draw it (default: guessed).
    playground : bool, default True
        Whether the Playground panel starts open when the inputs have 1 or 2 features.
    """

    def __init__(
        self,
        run: Run,
        feed: DashboardFeed,
        capacity: int = STREAM_CAPACITY,
        beta: float = STREAM_BETA,
        image_shape: tuple[int, ...] | None = None,
        playground: bool = True,
    ):
        self.run, self.feed = run, feed
        self.capacity, self.beta = capacity, beta
        self.series: dict[str, DownsampledSeries] = {}
        self._stream_held: dict[str, tuple[int, int]] = {}  # (points, halvings) the views hold
        self.records_q: deque[Any] = deque()
        self.records_reset = False
        self.points: dict[tuple[str, str, int], float | None] = {}
        self.acks: deque[Ack] = deque()
        self.commanding = 0  # commands being applied now (Dashboard._on_msg, any thread)
        self.marks: list[list[Any]] = []  # [batch, label]: where lr was edited (loss plot)
        self._new_marks: list[list[Any]] = []
        self.sent: dict[str, Any] = {}
        self.progress = Progress()
        self.inspector = Inspector()
        self.log = EventLog(run)
        self.panels: dict[str, LayersPanel | BatchPanel | HistoryPanel | PlaygroundPanel] = {
            "layers": LayersPanel(run),
            "batch": BatchPanel(run, image_shape),
            "history": HistoryPanel(run),  # Layers over time
            "playground": PlaygroundPanel(run),
        }
        if playground and playable(run):  # 1 or 2 input features: the Playground panel starts open
            self.panels["playground"].set_open(True)

        self.travel = Travel(run, feed)  # time travel: snapshots, branches, rewinds

    def close(self) -> None:
        """Let go of what the panels subscribed to in the run."""
        for panel in self.panels.values():
            panel.close()

    # -- inputs from other threads ------------------------------------------------------
    def on_records(self, change: Mapping[str, Any]) -> None:
        """Observer of ``ctx.records`` (may run on the training thread): queue what was added.

        ``ctx.log`` sends a change (a traitlets ``Bunch``, a dict) with ``added``; a change
        without it (``ctx.records`` replaced) makes the next message a full snapshot.
        """
        added = change.get("added")
        if added is None:
            self.records_reset = True
        else:
            self.records_q.append(added)

    def add_ack(self, ack: Ack) -> None:
        """Queue the answer to a command (any thread: comms may run in a subshell thread)."""
        self.acks.append(ack)

    # -- the tick -----------------------------------------------------------------------
    def collect(self, full: bool = False) -> dict[str, Any] | None:
        """Drain what the run produced; return a snapshot (``full``), a delta, or None."""
        run = self.run
        state = run.state
        self.travel.follow(self)  # a rewind cuts the stream and makes this a snapshot
        stream = self._drain_stream(state)
        records = self._drain_records()
        if self.records_reset:
            self.records_reset, full = False, True
            self.points = {k: v for k, v in self.points.items() if self._still_logged(k)}
        parts = {
            "status": status_part(run, state, self.feed.blocking),
            "error": error_part(run),
            "progress": self.progress.part(run, self.feed, self.series, state),
            "config": edit_values(run),
            "travel": self.travel.part(full),
        }
        inspector = self.inspector.part(run, state, full)
        panels = {name: panel.part(state, full) for name, panel in self.panels.items()}
        acks = self._drain_acks()
        if not self.commanding:
            # A command still being applied logs its ack first: a run that it resumed and
            # that paused again at once is followed at the next tick, after that ack.
            self.log.follow(run, state)
        log = self.log.drain()
        if full:
            return self._snapshot({**parts, **panels}, acks)
        msg: dict[str, Any] = {"type": "update"}
        for key, value in parts.items():
            if self.sent.get(key, ...) != value:
                self.sent[key] = msg[key] = value
        extra = {"inspector": inspector, "records": records, "stream": stream, "log": log}
        extra.update(panels)
        msg.update((key, value) for key, value in extra.items() if value)
        if acks:
            msg["acks"] = acks
        if self._new_marks:
            msg["marks"], self._new_marks = self._new_marks, []
        return msg if len(msg) > 1 else None

    def _snapshot(self, parts: dict[str, Any], acks: list[dict[str, Any]]) -> dict[str, Any]:
        """Everything a new view needs (bounded: the stream is downsampled, the log capped)."""
        self.sent = dict(parts)
        self._stream_held = {name: (len(s), s.halvings) for name, s in self.series.items()}
        msg = {
            "type": "snapshot",
            "events": [e.value for e in Event],
            "capacity": self.capacity,
            "beta": self.beta,
            **parts,
            "inspector": self.inspector.snapshot(),
            "records": [[s, m, e, v] for (s, m, e), v in self.points.items()],
            "stream": {name: s.points() for name, s in self.series.items()},
            "log_max": LOG_MAX,
            "log": self.log.snapshot(),
            "marks": self.marks,
        }
        self._new_marks = []
        if acks:
            msg["acks"] = acks
        return msg

    def _drain_acks(self) -> list[dict[str, Any]]:
        acks = []
        for _ in range(len(self.acks)):
            ack = self.acks.popleft()
            self.log.add_ack(ack)
            acks.append(ack.to_json())
            if ack.mark is not None:
                mark = [self.feed.n_train, ack.mark]
                self.marks = [*self.marks[-(MAX_MARKS - 1) :], mark]
                self._new_marks.append(mark)
        return acks

    def _drain_stream(self, state: str) -> dict[str, Any]:
        """New loss points, downsampled here (the one authority: the browser only follows)."""
        q = self.feed.losses
        items = [q.popleft() for _ in range(len(q))]
        for name, (xs, ys) in losses_to_floats(items).items():
            series = self.series.get(name)
            if series is None:
                series = self.series[name] = DownsampledSeries(self.capacity, self.beta)
            series.add(xs, ys)
        out: dict[str, Any] = {}
        for name, series in self.series.items():
            if state != RunState.RUNNING:
                series.flush()
            delta = stream_delta(series, *self._stream_held.get(name, (0, 0)))
            if delta is not None:
                out[name] = delta
            self._stream_held[name] = (len(series), series.halvings)
        return out

    def _drain_records(self) -> list[list[Any]]:
        new = []
        q = self.records_q
        for _ in range(len(q)):
            added = q.popleft()
            if added.get("what") != "metrics" or not isinstance(added.get("value"), dict):
                continue
            set_name, epoch = added.get("set"), int(added.get("index") or 0)
            for metric, value in added["value"].items():
                v = number(value)
                self.points[(set_name, metric, epoch)] = v
                new.append([set_name, metric, epoch, v])
        return new

    def _still_logged(self, key: tuple[str, str, int]) -> bool:
        set_name, metric, epoch = key
        return metric in self.run.ctx.history.metrics(set_name, epoch, default={})
