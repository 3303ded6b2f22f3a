"""The Layers part (``parts/layers.js``): one row per parameter, only while the panel is open.

While the panel is closed nothing is computed and the run's
:class:`~luzwidget.layers.LayerTracker` is not subscribed (its callback is not in the run).
Opening it subscribes the tracker as a sampled reader and reads the norms: at every pause
or step (each step's update recorded, as ``run.layers()`` has it), and while the run trains
at most every :data:`~luzwidget.widgets.inspector.INSPECT_EVERY_S` seconds. Then the
weights are copied only for the steps the panel asks for (about two per reading, the
last one half an interval before the reading is due), not before every step, and the
update columns show the last recorded step's ‖Δw‖, which the part names (``update_of``,
``[epoch, batch]``; the panel says "Δw of epoch E, batch B").
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from luzwidget.layers import LayerTracker, layers, tracker
from luzwidget.states import RunState
from luzwidget.widgets.inspector import INSPECT_EVERY_S

if TYPE_CHECKING:
    from luzwidget.run import Run

__all__ = ["LAYER_FIELDS", "LayersPanel", "nonfinite_origin"]

LAYER_FIELDS = (
    "name",
    "shape",
    "norm",
    "grad_norm",
    "update_norm",
    "update_ratio",
    "nonfinite",
)
"""The columns sent, in order (each row is a list in this order)."""


def _json_number(value: Any, nan: str | None = None) -> float | str | None:
    """A float, ``"inf"``/``"-inf"``, or for NaN ``nan`` (None: not known, shown as a dash)."""
    f = float(value)
    if math.isfinite(f):
        return f
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return nan


def nonfinite_origin(run: Run, state: str) -> dict[str, str] | None:
    """What ``breakpoints.nonfinite`` found, while the run is paused there, else None.

    ``{"kind": "output" | "gradient" | "loss", "name": module or parameter name}``.
    """
    watch = getattr(run.breakpoints, "watch", None)
    origin = getattr(watch, "origin", None)
    if origin is None or state != RunState.PAUSED or not run.reason.startswith("non-finite"):
        return None
    return {"kind": origin[0], "name": origin[1]}


class LayersPanel:
    """Builds the ``layers`` part: ``{"open", "fields", "rows", "origin", "update_of"}``.

    Parameters
    ----------
    run : Run
        The run shown.
    """

    name = "layers"

    def __init__(self, run: Run) -> None:
        self.run = run
        self.open = False
        self.sent: dict[str, Any] | None = None
        self._n = -1
        self._t = -math.inf
        self._asked = False

    def set_open(self, value: bool) -> None:
        """Open (subscribe the layer tracker) or close (unsubscribe) the panel."""
        if value == self.open:
            return
        self.open = value
        layer_tracker = tracker(self.run, LayerTracker)
        if value:
            layer_tracker.subscribe(sampled=True)
            layer_tracker.request()  # for the first reading while running
            self._n, self._t = -1, -math.inf  # read at the next tick
        else:
            layer_tracker.unsubscribe(sampled=True)

    def close(self) -> None:
        """The dashboard goes away: let go of the tracker."""
        self.set_open(False)

    def part(self, state: str, full: bool) -> dict[str, Any] | None:
        """The part when it changed since the last call (everything when ``full``)."""
        out = self._build(state)
        if out is None:
            return self.sent if full else None
        if out == self.sent and not full:
            return None
        self.sent = out
        return out

    def _build(self, state: str) -> dict[str, Any] | None:
        if not self.open:
            return {"open": False} if self.sent is None or self.sent.get("open") else None
        run = self.run
        now = time.monotonic()
        layer_tracker = tracker(run, LayerTracker)
        if state == RunState.RUNNING:
            if now - self._t < INSPECT_EVERY_S:
                if not self._asked and now - self._t >= INSPECT_EVERY_S / 2:
                    layer_tracker.request()  # a step recorded shortly before the reading
                    self._asked = True
                return None
            layer_tracker.request()  # in case no tick comes before the next reading
            self._asked = False
        elif run.n_events == self._n and self.sent is not None and self.sent.get("open"):
            origin = nonfinite_origin(run, state)
            if origin == self.sent.get("origin"):
                return None
        else:
            layer_tracker.record_pending()  # paused right before a step a free run skipped
        self._t, self._n = now, run.n_events
        rows = self._rows()
        return {
            "open": True,
            "fields": list(LAYER_FIELDS),
            "rows": rows,
            "origin": nonfinite_origin(run, state),
            "update_of": list(layer_tracker.recorded or ()) or None,
        }

    def _rows(self) -> list[list[Any]]:
        model = self.run.ctx.model
        if model is None:
            return []
        table: list[dict[Any, Any]] = layers(self.run, arm=False, latest=True).to_dict("records")
        return [
            [
                row["name"],
                "x".join(map(str, row["shape"])) or "scalar",
                _json_number(row["norm"], "NaN"),  # a weight always has a norm
                # NaN for a gradient or update: none (yet), unless the values are NaN
                *(
                    _json_number(row[col], "NaN" if row["nonfinite"] else None)
                    for col in ("grad_norm", "update_norm", "update_ratio")
                ),
                int(row["nonfinite"]),
            ]
            for row in table
        ]
