"""The inspector part (``parts/inspector.js``): one summary row per context field, and diffs."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from luzwidget.core.states import RunState
from luzwidget.core.summaries import FIELD_ORDER, WeightWatch, summarize

if TYPE_CHECKING:
    from luzwidget.control.run import Run

__all__ = ["INSPECT_EVERY_S", "Inspector", "OnDemandPart"]

INSPECT_EVERY_S = 0.5
"""While running, the inspector is refreshed at most this often (it reads tensors)."""


class Inspector:
    """Summaries of the context's fields; sends the rows that changed, highlights while stepping.

    ``rows`` is what the browser shows; ``hl`` the fields that changed since the run last
    held still (only while paused or failed: highlights are for stepping). They are compared
    with the rows of the last pause, not with a reading taken while the step ran, so the
    same click lights the same rows however the ticks fell.
    """

    def __init__(self) -> None:
        self.rows: dict[str, str] = {}
        self.hl: list[str] = []
        self.weights = WeightWatch()
        self._n = -1  # run.n_events at the last look while not running
        self._base: dict[str, str] = {}  # the rows at that look
        self._t = -math.inf

    def snapshot(self) -> dict[str, Any]:
        """Everything, for a new view."""
        return {"order": list(self.rows), "rows": dict(self.rows), "hl": self.hl}

    def part(self, run: Run, state: str, full: bool) -> dict[str, Any] | None:
        """The rows, order and highlights that changed since the last call (None: nothing)."""
        now = time.monotonic()
        running = state == RunState.RUNNING
        if running and not full and now - self._t < INSPECT_EVERY_S:
            return None
        self._t = now
        rows = self._read(run, running)
        old_hl = self.hl
        if state not in (RunState.PAUSED, RunState.ERROR):
            self.hl = []
        elif run.n_events != self._n and self._base:
            self.hl = [k for k, v in rows.items() if self._base.get(k) != v]
        if not running:
            self._n, self._base = run.n_events, rows
        out: dict[str, Any] = {}
        changed = {k: v for k, v in rows.items() if self.rows.get(k) != v}
        if changed:
            out["rows"] = changed
        if list(rows) != list(self.rows):
            out["order"] = list(rows)
        if self.hl != old_hl:
            out["hl"] = self.hl
        self.rows = rows
        return out or None

    def _read(self, run: Run, running: bool) -> dict[str, str]:
        ctx = run.ctx
        names = [n for n in FIELD_ORDER if ctx.has_trait(n)]
        names += sorted(set(ctx.trait_names()) - set(names))
        rows = {name: summarize(name, getattr(ctx, name), stats=True) for name in names}
        if not running:  # gradients and weight changes: only when the tensors hold still
            rows["model"] = rows.get("model", "None") + self.weights.look(ctx.model)
        return rows


class OnDemandPart:
    """A panel computed only while it is open (the Layers and Batch panels).

    Subclasses implement ``_subscribe()`` and ``_unsubscribe()`` (what the run does for the
    panel only while it is open) and ``_build(state)``: the part now, or None when nothing is
    new. ``_n`` and ``_t`` are the run's event count and the time of the last reading; opening
    resets them, so the next tick reads. A closed panel sends ``{"open": False}`` once.
    """

    def __init__(self, run: Run) -> None:
        self.run = run
        self.open = False
        self.sent: dict[str, Any] | None = None
        self._n = -1
        self._t = -math.inf

    def set_open(self, value: bool) -> None:
        """Open (subscribe what the panel needs, read at the next tick) or close it."""
        if value == self.open:
            return
        self.open = value
        if value:
            self._subscribe()
            self._n, self._t = -1, -math.inf
        else:
            self._unsubscribe()

    def _subscribe(self) -> None:
        raise NotImplementedError

    def _unsubscribe(self) -> None:
        raise NotImplementedError

    def _build(self, state: str) -> dict[str, Any] | None:
        raise NotImplementedError

    def close(self) -> None:
        """The dashboard goes away: let go of what the panel subscribed to."""
        self.set_open(False)

    def part(self, state: str, full: bool) -> dict[str, Any] | None:
        """The part when it changed since the last call (everything when ``full``)."""
        out = self._closed() if not self.open else self._build(state)
        if out is None:
            return self.sent if full else None
        if out == self.sent and not full:
            return None
        self.sent = out
        return out

    def _closed(self) -> dict[str, Any] | None:
        return {"open": False} if self.sent is None or self.sent.get("open") else None
