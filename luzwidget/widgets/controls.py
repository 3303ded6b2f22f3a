"""The controls part (``parts/controls.js``): the run's state and which buttons act now."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from luzwidget.core.states import RunState
from luzwidget.travel.state import TravelState
from luzwidget.widgets.commands import button_states, can_skip

if TYPE_CHECKING:
    from luzwidget.control.run import Run

__all__ = ["BLOCKING_HINT", "can_go_back", "status_part"]

BLOCKING_HINT = (
    "Training runs inside a cell, so the buttons act when the cell ends. "
    "Use run.start() to train in the background and keep them live."
)


def status_part(run: Run, state: str, blocking: bool) -> dict[str, Any]:
    """The ``status`` part: state, enabled buttons, start label, last event, hint.

    The start label is "Start", "Resume", or "Continue" on a finished run whose
    ``max_epochs`` was raised (Start and the step buttons then go on from there).

    ``blocking``: a cell drives the run on the main thread, so the kernel handles no button
    until the cell ends; every button is off and the hint says why.
    """
    blocked = state == RunState.RUNNING and blocking
    buttons = button_states("blocked" if blocked else state)
    label = "Start" if state == RunState.READY else "Resume"
    buttons["skip"] = not blocked and can_skip(run, state)
    if state == RunState.DONE and run.ctx.max_epochs > run.ctx.epoch:
        # max_epochs was raised after the end: Start continues it (Run.start goes on)
        buttons.update(button_states(RunState.READY), stop=False)
        label = "Continue"
    back = not blocked and can_go_back(run, state)
    buttons.update(step_back=back, find_nan=back, find_spike=back)
    return {
        "state": state,
        "buttons": buttons,
        "start_label": label,
        "event": run.event.value if run.event is not None else None,
        "hint": BLOCKING_HINT if blocked else "",
    }


def can_go_back(run: Run, state: str) -> bool:
    """Whether Step back and the find buttons act now: a run that keeps what going back
    needs (automatic snapshots), stopped after its first event."""
    travel = run.features.travel
    kept = isinstance(travel, TravelState) and travel.backwards is not None
    stopped = state in (RunState.PAUSED, RunState.DONE, RunState.ERROR)
    return kept and stopped and run.event is not None
