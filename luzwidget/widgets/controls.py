"""The controls part (``parts/controls.js``): the run's state and which buttons act now."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from luzwidget.states import RunState
from luzwidget.widgets.commands import button_states

if TYPE_CHECKING:
    from luzwidget.run import Run

__all__ = ["BLOCKING_HINT", "status_part"]

BLOCKING_HINT = (
    "Training runs inside a cell, so the buttons act when the cell ends. "
    "Use run.start() to train in the background and keep them live."
)


def status_part(run: Run, state: str, blocking: bool) -> dict[str, Any]:
    """The ``status`` part: state, enabled buttons, start label, last event, hint.

    ``blocking``: a cell drives the run on the main thread, so the kernel handles no button
    until the cell ends; every button is off and the hint says why.
    """
    blocked = state == RunState.RUNNING and blocking
    return {
        "state": state,
        "buttons": button_states("blocked" if blocked else state),
        "start_label": "Start" if state == RunState.READY else "Resume",
        "event": run.event.value if run.event is not None else None,
        "hint": BLOCKING_HINT if blocked else "",
    }
