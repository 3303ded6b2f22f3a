"""The time-travel part (``parts/travel.js``, ``parts/overlay.js``): snapshots, family, commands.

Headless like the collector. :class:`Travel` builds the ``travel`` part of a dashboard's
messages: the run's snapshots (a timeline: epoch, batch, where on the loss stream's x axis)
and its family (the run, its branches and theirs, see :func:`luzwidget.travel.branches.family`),
each with its per-epoch metrics, so the browser overlays the other runs' curves. It also
keeps the loss stream true to a rewind: the run's store tells it (``store.watchers``), it
drops the feed's pending losses and sets its batch count back at once, and at the next tick
cuts the stream's series to the batches left and makes that message a full snapshot.
:func:`travel_command` answers the part's buttons (``{"cmd": "travel", "action": ...}``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from luzwidget.control import commands, wire
from luzwidget.core.exceptions import EditError
from luzwidget.storage.snapstore import Snapshot
from luzwidget.travel.branches import describe, family
from luzwidget.travel.snapshots import batches_of
from luzwidget.travel.state import TravelState, travel_of
from luzwidget.widgets.commands import View, format_lr
from luzwidget.widgets.stream import DownsampledSeries, number
from luzwidget.widgets.timeline import Timeline

if TYPE_CHECKING:
    from luzwidget.control.run import Run
    from luzwidget.widgets.collector import Collector
    from luzwidget.widgets.feed import DashboardFeed

__all__ = ["Travel", "cut_series", "travel_view"]


class Travel:
    """The ``travel`` part of one dashboard's view of ``run`` (fed by ``feed``).

    ``wake`` is called (from any thread) when another run of the family logs an epoch or
    changes state, so the overlay follows branches training in the background.
    """

    def __init__(self, run: Run, feed: DashboardFeed, wake: Callable[[], None] | None = None):
        self.run, self.feed, self.wake = run, feed, wake
        self.offset = (batches_of(run) or 0) - feed.n_train  # run batches -> stream x
        self.cut: float | None = None
        self._seeded = False
        self._watched: dict[int, Run] = {}
        self.state = _state_of(run)  # None: a run without time travel (built by hand)
        self.timeline = Timeline(self.offset)
        if self.state is not None:
            self.state.watchers.append(self.rewound)

    # -- a rewind ------------------------------------------------------------------------
    def rewound(self, _: Snapshot) -> None:
        """Store watcher (the thread that rewound, the run paused): the stream goes back."""
        left = max(0, (batches_of(self.run) or 0) - self.offset)
        self.feed.losses.clear()  # a replay's batches are already in the series
        self.feed.n_train = left
        self.cut = left

    def follow(self, collector: Collector) -> None:
        """At a tick, before the collector drains: the metrics logged before the view came
        (first tick: a branch switched to has its parent's epochs), and a rewind's cut."""
        if not self._seeded:
            self._seeded = True
            for set_name, metric, epoch, value in self.run.ctx.history.rows():
                collector.points.setdefault((set_name, metric, epoch), number(value))
        if self.cut is None:
            return
        cut, self.cut = self.cut, None
        for name, series in list(collector.series.items()):
            collector.series[name] = cut_series(series, cut)
        collector.records_reset = True  # this tick sends a full snapshot

    # -- the part ------------------------------------------------------------------------
    def part(self, full: bool = False) -> dict[str, Any]:
        """Snapshots and family of the run, as ``parts/travel.js`` shows them: the
        timeline's delta (:class:`~luzwidget.widgets.timeline.Timeline`; ``full``: all of
        it, for a new view); every run of the family with its curves, but this run's own
        (the plots have them)."""
        if self.state is None:
            return {"timeline": self.timeline.delta([], full), "family": [], "rewinds": 0}
        members = family(self.run)
        self._watch([m for _, m in members])
        return {
            "timeline": self.timeline.delta(self.state.store.list(), full),
            "family": [
                {
                    "name": name,
                    "label": describe(member) or "the first run",
                    "this": member is self.run,
                    "state": str(member.state),
                    "epoch": int(member.ctx.epoch),
                    "curves": {} if member is self.run else curves(member),
                }
                for name, member in members
            ],
            "rewinds": self.state.rewinds,
        }

    def _watch(self, members: list[Run]) -> None:
        for member in members:
            if member is self.run or id(member) in self._watched:
                continue
            self._watched[id(member)] = member
            member.ctx.observe(self._changed, "records")
            member.add_listener(self._changed)

    def _changed(self, *_: Any) -> None:
        if self.wake is not None:
            self.wake()

    def close(self) -> None:
        """Stop watching the run's store and the family's other runs."""
        watchers = self.state.watchers if self.state is not None else []
        if self.rewound in watchers:
            watchers.remove(self.rewound)
        for member in self._watched.values():
            with contextlib.suppress(ValueError):
                member.ctx.unobserve(self._changed, "records")
            member.remove_listener(self._changed)
        self._watched.clear()


def _state_of(run: Run) -> TravelState | None:
    travel = run.features.travel
    return travel if isinstance(travel, TravelState) else None


def curves(run: Run) -> dict[str, dict[str, list[list[Any]]]]:
    """``{metric: {set: [[epoch, value], ...]}}`` of a run's logged metrics."""
    out: dict[str, dict[str, list[list[Any]]]] = {}
    sets = (run.ctx.records.get("metrics") or {}).items()
    for set_name, entries in list(sets):
        for epoch, values in enumerate(list(entries or []), 1):
            if not isinstance(values, dict):
                continue
            for metric, value in values.items():
                out.setdefault(metric, {}).setdefault(set_name, []).append([epoch, number(value)])
    return out


def cut_series(series: DownsampledSeries, last_x: float) -> DownsampledSeries:
    """A copy of ``series`` holding only its points at x <= ``last_x`` (bucket width and
    EMA carried on from the last point kept)."""
    series.flush()
    keep = sum(1 for x in series.x if x <= last_x)
    out = DownsampledSeries(series.capacity, series.beta)
    out.bucket, out.halvings = series.bucket, series.halvings
    out.x, out.y, out.ema = series.x[:keep], series.y[:keep], series.ema[:keep]
    out.count = int(last_x)
    if keep:
        out.last, out.last_ema = out.y[-1], out.ema[-1]
        # the EMA's state: its bias-corrected value times (1 - beta**n), n points seen
        n = min(series._n_finite, int(last_x))
        out._n_finite = n
        out._corr = series.beta**n
        out._avg = out.last_ema * (1 - out._corr) if math.isfinite(out.last_ema) else 0.0
    return out


# -- commands ------------------------------------------------------------------------------


def travel_view(dashboard: Any) -> View:
    """The time-travel part's commands for ``dashboard``: ``{"cmd": "travel", "action": ...}``.

    ``snapshot`` takes one now, labelled ``"marked"`` (queued while training); ``rewind``
    and ``branch`` go to snapshot number ``snapshot`` (its number in the dashboard's
    timeline, :meth:`Timeline.number`; default: for a rewind the last one
    before now, for a branch the latest; ``branch`` with an optional ``lr`` typed as text),
    a branch then being driven by the dashboard; ``drive`` switches the dashboard to the
    family's run named ``run`` ("main", "branch 1"...). All but ``drive`` are calls of the
    command table.
    """

    def view(run: Run, msg: Mapping[str, Any]) -> str | None:
        if msg.get("cmd") != "travel":
            return None
        action = wire.name(msg.get("action"), "action")
        if action == "snapshot":
            return commands.call(run, "snapshot", {"label": "marked"}).message  # evicted last
        if action == "rewind":
            chosen = _index(dashboard, run, msg.get("snapshot"))
            return commands.call(run, "rewind", {"snapshot": _before_now(run, chosen)}).message
        if action == "branch":
            lr = msg.get("lr")
            chosen = _index(dashboard, run, msg.get("snapshot"))
            args = {"snapshot": chosen, "lr": None if lr in (None, "") else lr}
            new: Run = commands.call(run, "branch", args).value
            dashboard.drive(new)
            name = next(n for n, m in family(new) if m is new)
            said = "" if args["lr"] is None else f" (lr {format_lr(wire.number(lr, 'lr'))})"
            where = describe(new).split(" from ")[-1]
            return f"{name}{said} made from {where}; the controls drive it"
        if action == "drive":
            name = wire.name(msg.get("run"), "run")
            found = dict(family(run))
            if name not in found:
                raise EditError(
                    f"run: no run {wire.quote(name)} in this family; there are {list(found)}."
                )
            dashboard.drive(found[name])
            return f"the controls drive {name}"
        raise EditError(
            f"travel: unknown action {wire.quote(action)}; expected snapshot, rewind, branch or "
            "drive."
        )

    return view


def _index(dashboard: Any, run: Run, number: Any) -> Any:
    """The store index of the timeline's snapshot ``number`` (None stays None)."""
    if number is None:
        return None
    travel: Travel = dashboard._collector.travel
    return travel.timeline.index(number, travel_of(run).store.list())


def _before_now(run: Run, chosen: Any) -> Any:
    """The snapshot a rewind goes to: the one chosen, else the last taken before where the
    run is now (None: the latest)."""
    if chosen is not None:
        return chosen
    now = batches_of(run)
    snaps = travel_of(run).store.list()
    earlier = [
        i
        for i, s in enumerate(snaps)
        if s.batches is not None and now is not None and s.batches < now
    ]
    return earlier[-1] if earlier else None
