"""The "Layers over time" part (``parts/history.js``): sampled layer statistics as deltas.

While the panel is closed nothing is computed: the run's
:class:`~luzwidget.insight.history.HistoryTracker` is not subscribed for it (its callback
is not in the run unless ``run.track_layers()`` or ``run.layer_history()`` asked). Opening
it subscribes the tracker, which samples every stepped batch and, while the run trains
freely, one batch every :data:`~luzwidget.insight.history.EVERY_S` seconds on the driving
thread. The part sends only the samples it has not sent yet (``cols``), at most every
:data:`~luzwidget.widgets.inspector.INSPECT_EVERY_S` seconds while the run trains, and
everything again (``reset``) for a new view or after a rewind dropped samples.

The heatmap shows one histogram series, ``pick`` (``"acts|<module>"``,
``"weights|<parameter>"`` or ``"grads|<parameter>"``): its counts are sent with each
column, and all of them again when the person picks another
(``{"cmd": "panel", "name": "history", "open": true, "pick": ...}``).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from luzwidget.core.states import RunState
from luzwidget.insight.history import DEAD, SATURATED, WHATS, HistoryTracker, Sample
from luzwidget.insight.trackers import tracker
from luzwidget.widgets.inspector import INSPECT_EVERY_S, OnDemandPart

if TYPE_CHECKING:
    from luzwidget.control.run import Run

__all__ = ["HistoryPanel"]

_DEAD_TYPES = {t.__name__ for t in DEAD}
_SAT_TYPES = {t.__name__ for t in SATURATED}


def _num(value: float) -> float | None:
    return value if math.isfinite(value) else None


class HistoryPanel(OnDemandPart):
    """Builds the ``history`` part.

    ``{"open", "reset", "max", "params", "dead", "sat", "choices", "pick", "edges",
    "cols"}``: ``params`` the parameters (``cols[i][4]`` their update ratios, in order),
    ``dead`` and ``sat`` the ReLU-like and Tanh/Sigmoid modules (``cols[i][5]``,
    ``cols[i][6]``: their shares), ``cols[i] = [seq, step, epoch, batch, ratios, dead,
    sat, counts of pick]``; ``reset``: drop the columns held before.

    Parameters
    ----------
    run : Run
        The run shown.
    """

    name = "history"

    def __init__(self, run: Run) -> None:
        super().__init__(run)
        self.picked: str | None = None
        self._seq = 0  # the last sample sent
        self._gen = -1  # the tracker's gen when it was sent
        self._repick = False

    def _subscribe(self) -> None:
        tracker(self.run, HistoryTracker).subscribe()
        self._seq, self._gen = 0, -1  # a view opened now gets everything kept

    def _unsubscribe(self) -> None:
        tracker(self.run, HistoryTracker).unsubscribe()

    def pick(self, key: str) -> None:
        """Show ``key``'s histograms (``"<what>|<name>"``) from the next tick."""
        what, _, name = key.partition("|")
        if what not in WHATS or not name:
            raise ValueError(f"pick: expected '<what>|<name>' with what in {list(WHATS)}")
        self.picked, self._repick = key, True

    def part(self, state: str, full: bool) -> dict[str, Any] | None:
        """As :meth:`OnDemandPart.part`; a new view (``full``) gets every column kept."""
        if full and self.open:
            self._seq, self._gen = 0, -1
            self._t = -math.inf
        return super().part(state, full)

    def _build(self, state: str) -> dict[str, Any] | None:
        history = tracker(self.run, HistoryTracker)
        now = time.monotonic()
        if state == RunState.RUNNING and now - self._t < INSPECT_EVERY_S:
            return None
        reset = history.gen != self._gen or self._repick
        kept = history.kept()
        new = [s for s in kept if reset or s.seq > self._seq]
        if not new and not reset:
            return None
        self._t = now
        self._gen, self._repick = history.gen, False
        if new:
            self._seq = new[-1].seq
        latest = kept[-1] if kept else None
        params = list(latest.params) if latest else []
        dead = [n for n, m in latest.modules.items() if m[0] in _DEAD_TYPES] if latest else []
        sat = [n for n, m in latest.modules.items() if m[0] in _SAT_TYPES] if latest else []
        choices = {what: history.names(what) for what in WHATS}
        pick = self._pick(choices)
        key = tuple(pick.split("|", 1)[::-1]) if pick else None
        edges = history.edges.get(key) if key else None  # type: ignore[arg-type]
        return {
            "open": True,
            "reset": reset,
            "max": history.max_samples,
            "params": params,
            "dead": dead,
            "sat": sat,
            "choices": choices,
            "pick": pick,
            "edges": list(edges) if edges else None,
            "cols": [self._col(s, params, dead, sat, key) for s in new],
        }

    def _pick(self, choices: dict[str, list[str]]) -> str | None:
        """The series shown: the person's, else the first hidden module's outputs."""
        if self.picked is not None:
            what, _, name = self.picked.partition("|")
            if name in choices.get(what, []):
                return self.picked
        acts = [n for n in choices["acts"] if n != "(model)"] or choices["acts"]
        if acts:
            return f"acts|{acts[0]}"
        weights = choices["weights"]
        return f"weights|{weights[0]}" if weights else None

    @staticmethod
    def _col(s: Sample, params: list[str], dead: list[str], sat: list[str], key: Any) -> list[Any]:
        nan = (math.nan,) * 5
        counts = s.hists.get(key) if key else None
        return [
            s.seq,
            s.step,
            s.epoch,
            s.batch,
            [_num(s.params.get(n, nan)[4]) for n in params],
            [_num(s.modules.get(n, nan)[3]) for n in dead],
            [_num(s.modules.get(n, nan)[4]) for n in sat],
            None if counts is None else counts.tolist(),
        ]
