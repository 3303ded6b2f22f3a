"""The Playground part (``parts/playground.js``): what a small model predicts across its
input space, only while the panel is open.

For models with one or two input features (or two that ``dashboard.playground(dims=...)``
names): decision regions coloured by class and confidence, or the fitted function, over a
grid spanning the training data, with the training and validation points; for an
``nn.Sequential`` MLP, each hidden unit's output as a small map (see
:mod:`luzwidget.insight.playground`). The panel starts open when the training inputs have
one or two features, closed otherwise.

While it is closed nothing is computed and the run's
:class:`~luzwidget.insight.playground.PlaygroundTracker` is not in the run. Open, the view
is read at every pause or step, and while the run trains at most every
:data:`~luzwidget.widgets.inspector.INSPECT_EVERY_S` seconds: the panel asks the tracker
(:meth:`~luzwidget.insight.playground.PlaygroundTracker.request`), which computes it on the
driving thread at the end of the next training batch. The points are sent when they change
(and in every snapshot), not with every reading.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from luzwidget.core.states import RunState
from luzwidget.insight.playground import (
    MAX_POINTS,
    PlaygroundTracker,
    check_dims,
    data_points,
    playground_view,
)
from luzwidget.insight.trackers import tracker
from luzwidget.widgets.inspector import INSPECT_EVERY_S, OnDemandPart

if TYPE_CHECKING:
    from luzwidget.control.run import Run

__all__ = ["PlaygroundPanel", "playable"]

_POINTS = ("train", "valid")


def playable(run: Run) -> bool:
    """Whether the run's training inputs are a table of one or two features and (unless it
    trains now) the model takes them: a GAN's or a sequence model's does not."""
    found = data_points(run.ctx.train_data, 2)
    if found is None or found[0].shape[1] not in (1, 2) or run.ctx.model is None:
        return False
    if run.state == RunState.RUNNING:  # the weights change meanwhile: trust the data
        return True
    try:
        return playground_view(run.ctx, size=2) is not None
    except Exception:
        return False


class PlaygroundPanel(OnDemandPart):
    """Builds the ``playground`` part: ``{"open", "view", "train"?, "valid"?, "note"}``.

    ``view`` is :func:`~luzwidget.insight.playground.playground_view` without its points
    (None: nothing to draw, ``note`` says why); ``train`` and ``valid`` (``{"x", "y"?,
    "label"?}`` or None) come when they changed since last sent and in every snapshot.

    Parameters
    ----------
    run : Run
        The run shown.
    """

    name = "playground"

    def __init__(self, run: Run) -> None:
        super().__init__(run)
        self.points: dict[str, Any] = {}  # the points last read (sent with every snapshot)
        self._points_sent: dict[str, Any] = {}

    @property
    def dims(self) -> tuple[int, ...] | None:
        """The input features drawn (None: the first one or two)."""
        return tracker(self.run, PlaygroundTracker).dims

    def set_dims(self, dims: Any) -> None:
        """Draw the input features ``dims`` (one or two indices; None: the first ones).

        Raises
        ------
        ConfigError
            If ``dims`` is not one or two distinct feature indices.
        """
        tracker(self.run, PlaygroundTracker).dims = check_dims(dims)
        self._n, self._t = -1, float("-inf")  # read again at the next tick

    def _subscribe(self) -> None:
        view = tracker(self.run, PlaygroundTracker)
        view.subscribe()
        view.take()  # a view computed before is stale

    def _unsubscribe(self) -> None:
        tracker(self.run, PlaygroundTracker).unsubscribe()

    def _build(self, state: str) -> dict[str, Any] | None:
        run, now = self.run, time.monotonic()
        view_tracker = tracker(run, PlaygroundTracker)
        if state == RunState.RUNNING:
            if now - self._t >= INSPECT_EVERY_S:  # a reading is due: ask the driving thread
                view_tracker.request()
                self._t = now
            view = view_tracker.take()
            if view is None:
                return None
        elif run.n_events == self._n and self.sent is not None and self.sent.get("open"):
            return None
        else:
            self._t, self._n = now, run.n_events
            view = view_tracker.read() if run.ctx.model is not None else None
        return self._message(view)

    def _message(self, view: dict[str, Any] | None) -> dict[str, Any]:
        note = ""
        error = tracker(self.run, PlaygroundTracker).error
        if view is None and error:
            note = f"The model could not be evaluated on the grid of its inputs ({error})."
        elif view is None:
            note = (
                "Nothing to draw: the training inputs must be a table of 1 or 2 features, "
                "or name two with run.dashboard().playground(dims=(i, j))."
            )
        else:
            self.points = {key: view.pop(key) for key in _POINTS}
        return {"open": True, "view": view, "note": note, "max_points": MAX_POINTS}

    def part(self, state: str, full: bool) -> dict[str, Any] | None:
        """As :meth:`OnDemandPart.part`, with the points when they changed (or ``full``)."""
        out = super().part(state, full)
        if out is None or not out.get("open"):
            return out
        if full or self.points != self._points_sent:
            self._points_sent = dict(self.points)
            return {**out, **self.points}
        return out

    def set_open(self, value: bool) -> None:
        """Open or close the panel (see :meth:`OnDemandPart.set_open`)."""
        if value and not self.open:
            self._points_sent = {}
        super().set_open(value)
