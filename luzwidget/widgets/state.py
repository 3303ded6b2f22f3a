"""What the dashboard shows, read from a run and turned into snapshot and delta messages.

This module is headless (no widget library): :class:`Collector` reads the run and its
context on the main thread and returns plain JSON-safe dicts; the widget only sends them.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any

from luzwidget.data import loader_len
from luzwidget.events import Event
from luzwidget.limits import LOG_MAX, STREAM_BETA, STREAM_CAPACITY
from luzwidget.run import RunState
from luzwidget.widgets.commands import Ack, button_states, format_lr
from luzwidget.widgets.feed import DashboardFeed
from luzwidget.widgets.stream import DownsampledSeries, json_points, losses_to_floats, number
from luzwidget.widgets.summaries import FIELD_ORDER, WeightWatch, fmt_number, summarize

__all__ = ["Collector"]

EVENTS_LOGGED_PER_TICK = 40
"""At a pause, up to this many events since the last pause are listed; more are counted."""

BLOCKING_HINT = (
    "Training runs inside a cell, so the buttons act when the cell ends. "
    "Use run.start() to train in the background and keep them live."
)

INSPECT_EVERY_S = 0.5
"""While running, the inspector is refreshed at most this often (it reads tensors)."""


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Collector:
    """Reads a run for the dashboard; builds snapshots and deltas (main thread only).

    Parameters
    ----------
    run : Run
        The run shown (``state``, ``ctx``, ``events``, ``n_events``, ``breakpoints``...).
    feed : DashboardFeed
        The callback that collects the per-batch loss.
    capacity : int, default 2000
        Points kept per loss stream.
    beta : float, default 0.98
        EMA smoothing of the loss stream.
    """

    def __init__(
        self,
        run: Any,
        feed: DashboardFeed,
        capacity: int = STREAM_CAPACITY,
        beta: float = STREAM_BETA,
    ):
        self.run, self.feed = run, feed
        self.capacity, self.beta = capacity, beta
        self.series: dict[str, DownsampledSeries] = {}
        self.records_q: deque[Any] = deque()
        self.records_reset = False
        self.points: dict[tuple[str, str, int], float | None] = {}
        self.log: deque[dict[str, Any]] = deque(maxlen=LOG_MAX)
        self.acks: deque[Ack] = deque()
        self.sent: dict[str, Any] = {}
        self.rows: dict[str, str] = {}
        self.hl: list[str] = []
        self.weights = WeightWatch()
        self._inspect_n = -1
        self._inspect_t = -math.inf
        self._seen = self._n_events()
        self._new_log: list[dict[str, Any]] = []
        self._was_running = False
        self._state = run.state
        self._rate = 0.0
        self._rate_mark = (time.monotonic(), 0)
        self._elapsed = 0.0

    # -- inputs from other threads ------------------------------------------------------
    def on_records(self, change: Any) -> None:
        """Observer of ``ctx.records`` (may run on the training thread): queue what was added."""
        added = change.get("added") if isinstance(change, dict) else getattr(change, "added", None)
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
        state = self.run.state
        stream = self._drain_stream(state)
        records = self._drain_records()
        if self.records_reset:
            self.records_reset, full = False, True
            self.points = {k: v for k, v in self.points.items() if self._still_logged(k)}
        parts = {
            "status": self._status(state),
            "error": self._error(),
            "progress": self._progress(state),
            "config": self._config(),
        }
        inspector = self._inspect(state, full)
        acks = self._drain_acks()
        self._events_log(state)
        log, self._new_log = self._new_log, []
        if full:
            return self._snapshot(parts, acks)
        msg: dict[str, Any] = {"type": "update"}
        for key, value in parts.items():
            if self.sent.get(key, ...) != value:
                self.sent[key] = msg[key] = value
        extra = {"inspector": inspector, "records": records, "stream": stream, "log": log}
        msg.update((key, value) for key, value in extra.items() if value)
        if acks:
            msg["acks"] = acks
        return msg if len(msg) > 1 else None

    def _snapshot(self, parts: dict[str, Any], acks: list[dict[str, Any]]) -> dict[str, Any]:
        """Everything a new view needs (bounded: the stream is downsampled, the log capped)."""
        self.sent = dict(parts)
        msg = {
            "type": "snapshot",
            "events": [e.value for e in Event],
            "capacity": self.capacity,
            "beta": self.beta,
            **parts,
            "inspector": {"order": list(self.rows), "rows": dict(self.rows), "hl": self.hl},
            "records": [[s, m, e, v] for (s, m, e), v in self.points.items()],
            "stream": {name: s.points() for name, s in self.series.items()},
            "log": list(self.log),
        }
        if acks:
            msg["acks"] = acks
        return msg

    def _drain_acks(self) -> list[dict[str, Any]]:
        acks = []
        for _ in range(len(self.acks)):
            ack = self.acks.popleft()
            self._log("ok" if ack.ok else "refused", ack.message)
            acks.append(ack.to_json())
        return acks

    # -- parts ----------------------------------------------------------------------------
    def _n_events(self) -> int:
        return int(getattr(self.run, "n_events", 0) or 0)

    def _drain_stream(self, state: str) -> dict[str, Any]:
        q = self.feed.losses
        items = [q.popleft() for _ in range(len(q))]
        out: dict[str, Any] = {}
        for name, (xs, ys) in losses_to_floats(items).items():
            series = self.series.get(name)
            if series is None:
                series = self.series[name] = DownsampledSeries(self.capacity, self.beta)
            pts = series.add(xs, ys)
            if pts[0]:
                out[name] = pts
        if state != RunState.RUNNING:
            for name, series in self.series.items():
                tail = series.flush()
                if tail[0]:
                    prev = out.get(name, ([], [], []))
                    out[name] = tuple(a + b for a, b in zip(prev, tail, strict=True))
        return {name: json_points(pts) for name, pts in out.items()}

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

    def _status(self, state: str) -> dict[str, Any]:
        event = getattr(self.run, "event", None)
        blocking = state == RunState.RUNNING and self.feed.blocking
        return {
            "state": state,
            # a cell drives the run: the kernel handles no button until the cell ends
            "buttons": button_states("blocked" if blocking else state),
            "start_label": "Start" if state == RunState.READY else "Resume",
            "event": event.value if isinstance(event, Event) else event,
            "hint": BLOCKING_HINT if blocking else "",
        }

    def _error(self) -> dict[str, str] | None:
        err = getattr(self.run, "error", None)
        if err is None or self.run.state != RunState.ERROR:
            return None
        return {
            "type": type(err).__name__,
            "message": str(err),
            "traceback": str(getattr(self.run, "error_traceback", "") or ""),
        }

    def _progress(self, state: str) -> dict[str, Any]:
        ctx = self.run.ctx
        n_train, n_valid = loader_len(ctx.train_data) or 0, loader_len(ctx.valid_data) or 0
        training = bool(ctx.training) or ctx.epoch == 0  # before epoch 1: training comes first
        n_batches = loader_len(ctx.data) if ctx.epoch else n_train or None
        it = ctx.iter if isinstance(ctx.iter, int) else 0
        per_epoch = n_train + n_valid
        within = min((it + (0 if training else n_train)) / per_epoch, 1.0) if per_epoch else 0
        epoch_frac = (max(ctx.epoch - 1, 0) + within) / ctx.max_epochs if ctx.max_epochs else 0
        loss = " · ".join(
            f"{name} {fmt_number(s.last)} (EMA {fmt_number(s.last_ema)})"
            for name, s in self.series.items()
        )
        metrics = []
        for set_name in ("train", "valid"):
            _, last = ctx.history.last(set_name)
            if last:
                metrics.append([set_name, [[k, fmt_number(v)] for k, v in last.items()]])
        return {
            "epoch_frac": round(min(epoch_frac, 1.0), 4),
            "epoch": ctx.epoch,
            "max_epochs": ctx.max_epochs,
            "min_epochs": ctx.min_epochs,
            "iter": it,
            "n_batches": n_batches,
            "phase": "train" if training else "valid",
            "rate_text": self._timing(state, (n_batches or 0) - it, per_epoch, n_valid),
            "loss_text": loss,
            "metrics": metrics,
        }

    def _timing(self, state: str, left_in_loop: int, per_epoch: int, n_valid: int) -> str:
        """``"412 batches/s · epoch ETA 0:21 · fit ETA 2:10"`` (or the time trained)."""
        ctx = self.run.ctx
        now = time.monotonic()
        count = self.feed.n_train + self.feed.n_valid
        t0, c0 = self._rate_mark
        running = state == RunState.RUNNING
        if running and self._was_running and now > t0:
            inst = (count - c0) / (now - t0)
            self._rate = inst if self._rate == 0 else 0.6 * self._rate + 0.4 * inst
            self._elapsed += now - t0
        self._rate_mark, self._was_running = (now, count), running
        if running and self._rate > 0:
            left = left_in_loop + (n_valid if ctx.training else 0)
            fit_left = left + max(ctx.max_epochs - ctx.epoch, 0) * per_epoch
            return (
                f"{fmt_number(round(self._rate, 1))} batches/s · "
                f"epoch ETA {_clock(left / self._rate)} · fit ETA {_clock(fit_left / self._rate)}"
            )
        return f"trained for {_clock(self._elapsed)}" if self._elapsed else ""

    def _config(self) -> dict[str, Any]:
        run, ctx = self.run, self.run.ctx
        bps = getattr(run, "breakpoints", None)
        events = getattr(bps, "events", None)
        if events is None:  # a breakpoints object without .events: ask for each
            events = [e for e in Event if bps is not None and e in bps]
        return {
            "optimizers": [
                {
                    "name": name,
                    "lr": format_lr(opt.param_groups[0]["lr"]) if opt.param_groups else "",
                }
                for name, opt in (ctx.optimizers or {}).items()
            ],
            "max_epochs": str(ctx.max_epochs),
            "min_epochs": str(ctx.min_epochs),
            "verbose": bool(ctx.verbose),
            "breakpoints": sorted(e.value for e in events),
            "nonfinite_loss": bool(getattr(bps, "nonfinite_loss", False)),
        }

    def _inspect(self, state: str, full: bool) -> dict[str, Any] | None:
        now = time.monotonic()
        running = state == RunState.RUNNING
        if running and not full and now - self._inspect_t < INSPECT_EVERY_S:
            return None
        self._inspect_t = now
        ctx = self.run.ctx
        names = [n for n in FIELD_ORDER if ctx.has_trait(n)]
        names += sorted(set(ctx.trait_names()) - set(names))
        rows = {}
        for name in names:
            rows[name] = summarize(name, getattr(ctx, name), stats=True)
        if not running:
            rows["model"] = rows.get("model", "None") + self.weights.look(ctx.model)
        n = self._n_events()
        old_hl = self.hl
        if state not in (RunState.PAUSED, RunState.ERROR):  # highlights are for stepping
            self.hl = []
        elif n != self._inspect_n and self.rows:
            self.hl = [k for k, v in rows.items() if self.rows.get(k) != v]
        if not running:
            self._inspect_n = n
        changed = {k: v for k, v in rows.items() if self.rows.get(k) != v}
        order_changed = list(rows) != list(self.rows)
        self.rows = rows
        out: dict[str, Any] = {}
        if changed:
            out["rows"] = changed
        if order_changed:
            out["order"] = list(rows)
        if self.hl != old_hl:
            out["hl"] = self.hl
        return out or None

    def _log(self, kind: str, text: str, n: int | None = None) -> None:
        entry: dict[str, Any] = {"kind": kind, "text": text}
        if n is not None:
            entry["n"] = n
        self.log.append(entry)
        self._new_log.append(entry)

    def _events_log(self, state: str) -> None:
        """At a pause, list the events since the last pause (or count them if many)."""
        ctx = self.run.ctx
        if state != RunState.RUNNING:
            n = self._n_events()
            d, self._seen = n - self._seen, n
            if 0 < d <= EVENTS_LOGGED_PER_TICK:
                recent = list(getattr(self.run, "events", []))[-d:]
                first = n - len(recent) + 1
                for i, event in enumerate(recent):
                    self._log("event", str(getattr(event, "value", event)), first + i)
            elif d > 0:
                self._log("info", f"… {d:,} events")
        if state != self._state:
            self._state = state
            if state != RunState.RUNNING:
                reason = str(getattr(self.run, "reason", "") or "")
                if not reason and state == RunState.PAUSED and self.run.event is not None:
                    reason = f"at {getattr(self.run.event, 'value', self.run.event)}"
                where = f"epoch {ctx.epoch}, batch {ctx.iter or 0}"
                kind = {RunState.PAUSED: "pause", RunState.ERROR: "error"}.get(state, "info")
                text = f"{state}: {reason}" if reason else state
                if reason.startswith(state):  # "paused after ..." says it already
                    text = reason
                self._log(kind, text if "epoch" in text else f"{text} ({where})")
