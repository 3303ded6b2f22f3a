"""The Layers part (``parts/layers.js``): one row per parameter, only while the panel is open.

While the panel is closed nothing is computed and the run's
:class:`~luzwidget.insight.layers.LayerTracker` is not subscribed (its callback is not in the run).
Opening it subscribes the tracker as a sampled reader and reads the norms: at every pause
or step (each step's update recorded, as ``run.layers()`` has it), and while the run trains
at most every :data:`~luzwidget.widgets.inspector.INSPECT_EVERY_S` seconds. Then the
panel asks the tracker for one step per reading (:meth:`LayerTracker.request`): the
weights are copied before that step only, not before every step, and the table is
computed on the driving thread at that batch's end (this thread must not read gradients
that backward and ``zero_grad`` replace meanwhile: that crashed the process), then sent
at the next tick. The part names the step whose update it shows (``update_of``,
``[epoch, batch]``; the panel says "Δw of epoch E, batch B"): at a pause after a free run,
the last step recorded.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from luzwidget.core.states import RunState
from luzwidget.insight.layers import LayerTracker, layers
from luzwidget.insight.trackers import tracker
from luzwidget.widgets.inspector import INSPECT_EVERY_S, OnDemandPart

if TYPE_CHECKING:
    import pandas as pd

    from luzwidget.control.run import Run

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
    """What ``breakpoints.nonfinite`` (or the sentinel) found, while the run is paused
    there, else None.

    ``{"kind": "output" | "gradient" | "loss" | "parameter" | "module" | "optimizer",
    "name": module, parameter or optimizer name}``.
    """
    sentinel = getattr(run.breakpoints, "sentinel", None)
    culprit = getattr(sentinel, "origin", None)
    if culprit is not None and state == RunState.PAUSED and run.reason.startswith("sentinel"):
        return {"kind": culprit[0], "name": culprit[1]}
    watch = getattr(run.breakpoints, "watch", None)
    origin = getattr(watch, "origin", None)
    if origin is None or state != RunState.PAUSED or not run.reason.startswith("non-finite"):
        return None
    return {"kind": origin[0], "name": origin[1]}


def _update_of(table: pd.DataFrame) -> list[int] | None:
    """``[epoch, batch]`` of the step whose update ``table`` shows, if any."""
    recorded = table.attrs.get("update_of")
    return None if recorded is None else list(recorded)


class LayersPanel(OnDemandPart):
    """Builds the ``layers`` part: ``{"open", "fields", "rows", "origin", "update_of"}``.

    Parameters
    ----------
    run : Run
        The run shown.
    """

    name = "layers"

    def _subscribe(self) -> None:
        layer_tracker = tracker(self.run, LayerTracker)
        layer_tracker.subscribe(sampled=True)
        layer_tracker.take()  # a table computed while the panel was closed is stale

    def _unsubscribe(self) -> None:
        tracker(self.run, LayerTracker).unsubscribe(sampled=True)

    def _build(self, state: str) -> dict[str, Any] | None:
        run = self.run
        now = time.monotonic()
        layer_tracker = tracker(run, LayerTracker)
        if state == RunState.RUNNING:
            if now - self._t >= INSPECT_EVERY_S:  # a reading is due: ask the driving thread
                layer_tracker.request()
                self._t = now
            table = layer_tracker.take()
            if table is None:
                return None
        elif run.n_events == self._n and self.sent is not None and self.sent.get("open"):
            origin = nonfinite_origin(run, state)
            if origin == self.sent.get("origin"):
                return None
            table = self._read()
        else:
            layer_tracker.record_pending()  # paused right before a step a free run skipped
            self._t, self._n = now, run.n_events
            table = self._read()
        return {
            "open": True,
            "fields": list(LAYER_FIELDS),
            "rows": self._rows(table),
            "origin": nonfinite_origin(run, state),
            "update_of": None if table is None else _update_of(table),
        }

    def _read(self) -> pd.DataFrame | None:
        """The table now (the run is not training meanwhile), or None without a model."""
        return None if self.run.ctx.model is None else layers(self.run, arm=False, latest=True)

    def _rows(self, frame: pd.DataFrame | None) -> list[list[Any]]:
        if frame is None:
            return []
        table: list[dict[Any, Any]] = frame.to_dict("records")
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
